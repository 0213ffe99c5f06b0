/* An HTTP/2 request header block made into an HTTP/1.1 request head, field by field, with the checks of
 * RFC 9113 section 8.2 that keep h2-to-h1 smuggling out: no connection-specific field (connection, keep-alive,
 * proxy-connection, transfer-encoding, upgrade), te only "trailers", no CR, LF or NUL, lowercase token names,
 * pseudo-headers first, once each and known, a :path that is origin-form (or "*" for OPTIONS), one
 * content-length of digits. nghttp2 checks most of these itself (its HTTP messaging is on); this is the second
 * line, where the HTTP/1.1 text is made. No event loop here: the fuzz harness drives it (tests/fuzz/fuzz_h2.c). */
#ifndef TETHER_BALANCER_PROTO_H2_HEAD_H
#define TETHER_BALANCER_PROTO_H2_HEAD_H

#include <stddef.h>
#include <stdint.h>

#include "../../lib/util.h"

typedef struct tether__h2_head {
  tether__buf fields;     /* the regular fields, "name: value\r\n" each */
  tether__buf authority;  /* :authority, else host */
  tether__buf path;       /* :path */
  tether__buf cookie;     /* cookie fields, joined with "; " (RFC 9113 section 8.2.3) */
  char method[16];        /* :method */
  size_t list_size;       /* the decoded header list, as SETTINGS_MAX_HEADER_LIST_SIZE counts it */
  int64_t content_length; /* -1: none */
  int regular_seen;       /* a regular field came: no pseudo-header after it */
} tether__h2_head;

#define TETHER__H2_FIELD_BAD -1       /* malformed: the stream is reset (PROTOCOL_ERROR) */
#define TETHER__H2_FIELD_TOO_LARGE -2 /* past http2_max_field_size or http2_max_header_size */

void tether__h2_head_init(tether__h2_head *hd);
/* One field of the block: 0, or one of the codes above. */
int tether__h2_head_field(tether__h2_head *hd, const uint8_t *n, size_t nn, const uint8_t *v, size_t vn,
                          size_t max_field, size_t max_list);
/* The block is complete: the HTTP/1.1 head into out (appended). The body follows with Content-Length when the
 * client gave one, else chunked (*chunked = 1) unless the stream ended with its HEADERS. -1: refused (no
 * :method or :path, CONNECT, a :path not origin-form). */
int tether__h2_head_build(const tether__h2_head *hd, int end_stream, tether__buf *out, int *chunked);
/* Empty again for the next block, its buffers kept. */
void tether__h2_head_reset(tether__h2_head *hd);
void tether__h2_head_free(tether__h2_head *hd);

#endif
