/* The layer below a transport filter (io/transport.h), for the TLS harnesses: the bytes the filter sends to the
 * socket are counted, never sent. Included once, after the filter's source. */
#ifndef TETHER_FUZZ_RAW_IO_H
#define TETHER_FUZZ_RAW_IO_H

#include <stdlib.h>

static size_t raw_written, raw_shutdowns; /* what reached the socket */

int tether__io_write_raw(tether__io *io, const char *data, size_t len) {
  (void)io;
  if (len > 0 && data == NULL) abort();
  raw_written += len;
  return 0;
}

int tether__io_shutdown_raw(tether__io *io, uv_shutdown_t *req) {
  (void)io;
  (void)req;
  raw_shutdowns++;
  return 0;
}

#endif
