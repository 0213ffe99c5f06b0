/* Memory a configuration owns. Its lists (servers, upstreams, server blocks, locations, header lists, ...)
 * grow as the file is read, to what the file uses: a configuration with one location holds one, not the 128
 * it may have, so a parse, a reload and the fuzzer touch kilobytes rather than megabytes. Every block is on
 * cf->owned, so tether__config_release frees them all in one walk, and a level that inherits another level's
 * list (proxy_set_header, add_header) shares the block rather than copying or owning it. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/util.h"
#include "config-int.h"

struct tether__cf_block {
  struct tether__cf_block *next, **pprev; /* on cf->owned */
  size_t size;                            /* bytes of data */
  max_align_t data[];
};

#define DATA_OFFSET offsetof(struct tether__cf_block, data)

/* A list of n holds n rounded up to a power of two: it needs room when n is 0 or a power of two. */
static size_t room_for(size_t n) {
  if (n & (n - 1)) return 0;
  return n ? 2 * n : 1;
}

void *tether__cf_grow(tether__config *cf, void *list, size_t n, size_t size) {
  size_t cap = room_for(n);
  if (cap == 0) {
    memset((char *)list + n * size, 0, size);
    return list;
  }
  struct tether__cf_block *b = list ? (struct tether__cf_block *)((char *)list - DATA_OFFSET) : NULL;
  if (b) { /* unlinked while realloc may move it */
    *b->pprev = b->next;
    if (b->next) b->next->pprev = b->pprev;
  }
  b = tether__realloc(b, DATA_OFFSET + cap * size);
  b->size = cap * size;
  memset((char *)b->data + n * size, 0, size); /* the room past it is touched only when used */
  b->next = cf->owned;
  b->pprev = &cf->owned;
  if (cf->owned) cf->owned->pprev = &b->next;
  cf->owned = b;
  return b->data;
}

void *tether__conf_grow(void *list, size_t n, size_t size) {
  size_t cap = room_for(n);
  if (cap) list = tether__realloc(list, cap * size);
  memset((char *)list + n * size, 0, size);
  return list;
}

void tether__cf_free_owned(tether__config *cf) {
  while (cf->owned) {
    struct tether__cf_block *b = cf->owned;
    cf->owned = b->next;
    free(b);
  }
}

size_t tether__cf_owned_bytes(const tether__config *cf) {
  size_t n = 0;
  for (const struct tether__cf_block *b = cf->owned; b; b = b->next) n += b->size;
  return n;
}
