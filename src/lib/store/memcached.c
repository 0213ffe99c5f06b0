/* libtether: the memcached store (not built yet). */
#include "../util.h"
#include "store_impl.h"

static int stub_open(tether_store *st, const char *url) {
  TETHER__UNUSED(st), TETHER__UNUSED(url);
  return tether__fail(TETHER_ENOTSUP, "memcached store: not built yet");
}

static void stub_close(tether_store *st) { TETHER__UNUSED(st); }

const tether__store_ops tether__store_memcached = {.kind = "memcached", .open = stub_open, .close = stub_close};
