/* Small helpers over the connection types that every layer uses: input buffers and sending. */
#ifndef TETHER_BALANCER_CONN_H
#define TETHER_BALANCER_CONN_H

#include <string.h>

#include "conn-t.h"

/* Grows a buffer to hold need bytes (doubling from 4 KiB). */
static inline void tether__grow(char **buf, size_t *cap, size_t need) {
  if (*cap >= need) return;
  size_t n = *cap ? *cap : 4096;
  while (n < need) n *= 2;
  *buf = tether__realloc(*buf, n);
  *cap = n;
}

/* Drops the first n bytes of a buffer. */
static inline void tether__consume(char *buf, size_t *len, size_t n) {
  if (n >= *len) {
    *len = 0;
    return;
  }
  memmove(buf, buf + n, *len - n);
  *len -= n;
}

static inline void tether__append_in(char **buf, size_t *len, size_t *cap, const char *data, size_t n) {
  tether__grow(buf, cap, *len + n);
  memcpy(*buf + *len, data, n);
  *len += n;
}

/* The client's connection: itself, or for an HTTP/2 stream the connection it is a stream of (its socket,
 * its TLS, its addresses). */
static inline const tether__client *tether__client_conn(const tether__client *c) { return c->conn ? c->conn : c; }

/* Response bytes to the client (counted for the access log). */
static inline int tether__to_client(tether__client *c, const char *data, size_t len) {
  c->bytes_sent += len;
  return tether__io_write(&c->io, data, len);
}

/* A response head the balancer made (head_len bytes, then body bytes up to len) for a server's head m: to a
 * transport that takes heads parsed (an HTTP/2 stream) as such, else as bytes. */
static inline int tether__head_to_client(tether__client *c, const struct tether__h1_msg *m, const char *data,
                                         size_t head_len, size_t len) {
  c->bytes_sent += len;
  if (c->io.filter && c->io.filter->head) return c->io.filter->head(&c->io, m, data, head_len, len);
  return tether__io_write(&c->io, data, len);
}

static inline int tether__to_server(tether__upconn *u, const char *data, size_t len) {
  return tether__io_write(&u->io, data, len);
}

/* Heads are assembled with plain copies: no format parsing on the hot path. */
static inline void tether__put(tether__buf *b, const void *p, size_t n) {
  if (n) tether__buf_append(b, p, n); /* an empty reason phrase is a NULL slice */
}
static inline void tether__put_s(tether__buf *b, const char *s) { tether__buf_append(b, s, strlen(s)); }
static inline void tether__put_uint(tether__buf *b, unsigned v) {
  char d[16];
  size_t i = sizeof(d);
  do d[--i] = (char)('0' + v % 10);
  while ((v /= 10) != 0);
  tether__put(b, d + i, sizeof(d) - i);
}

#endif
