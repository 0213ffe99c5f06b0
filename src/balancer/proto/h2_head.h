/* An HTTP/2 request header block made into the request head the HTTP/1.1 side works on (a parsed
 * tether__h1_msg, as tether__h1_parse_request makes it), field by field, with the checks of RFC 9113 section 8.2
 * that keep h2-to-h1 smuggling out: no connection-specific field (connection, keep-alive, proxy-connection,
 * transfer-encoding, upgrade), te only "trailers", no CR, LF or NUL, lowercase token names, pseudo-headers
 * first, once each and known, a :path that is origin-form (or "*" for OPTIONS), one content-length of digits.
 * nghttp2 checks most of these itself (its HTTP messaging is on); this is the second line. The head is the one
 * an HTTP/1.1 client would send for the block ("Host" from :authority, the fields in order, the cookie fields
 * joined, then Content-Length, or Transfer-Encoding: chunked for a body of unknown length) and gets the
 * HTTP/1.1 parser's answers (400, 414, 431) for what that parser refuses, without being printed and parsed
 * again. No event loop here: the fuzz harness drives it (tests/fuzz/fuzz_h2.c) against the parser. */
#ifndef TETHER_BALANCER_PROTO_H2_HEAD_H
#define TETHER_BALANCER_PROTO_H2_HEAD_H

#include <stddef.h>
#include <stdint.h>

#include "../../lib/util.h"
#include "../http1.h"

/* A regular field: offsets into the block's bytes (which move as they grow). */
typedef struct tether__h2_field {
  uint32_t name, nlen, value, vlen;
} tether__h2_field;

typedef struct tether__h2_head {
  tether__buf bytes;                                   /* the regular fields' names and values, one after the other */
  tether__h2_field fields[TETHER__H1_MAX_HEADERS + 1]; /* the first ones (the head takes no more) */
  size_t nfields;                                      /* regular fields, all of them */
  size_t fields_text;                                  /* their "name: value\r\n" lines' length, all of them */
  tether__buf authority;                               /* :authority, else host */
  tether__buf path;                                    /* :path */
  tether__buf cookie;                                  /* cookie fields, joined with "; " (RFC 9113 section 8.2.3) */
  char method[16];                                     /* :method */
  char length[24];                                     /* the Content-Length value the head carries */
  size_t list_size;       /* the decoded header list, as SETTINGS_MAX_HEADER_LIST_SIZE counts it */
  int64_t content_length; /* -1: none */
  int regular_seen;       /* a regular field came: no pseudo-header after it */
  int ctl;                /* a value holds a control character other than HTAB (the HTTP/1.1 parser's 400) */
} tether__h2_head;

#define TETHER__H2_FIELD_BAD -1       /* malformed: the stream is reset (PROTOCOL_ERROR) */
#define TETHER__H2_FIELD_TOO_LARGE -2 /* past http2_max_field_size or http2_max_header_size */

void tether__h2_head_init(tether__h2_head *hd);
/* One field of the block: 0, or one of the codes above. */
int tether__h2_head_field(tether__h2_head *hd, const uint8_t *n, size_t nn, const uint8_t *v, size_t vn,
                          size_t max_field, size_t max_list);
/* The block is complete: the request head into m, its slices into hd (valid until hd is reset or freed), framed
 * with the client's content-length, else chunked (*chunked = 1) unless the stream ended with its HEADERS.
 * Returns 0; TETHER__H2_FIELD_BAD to reset the stream (no :method or :path, CONNECT, a :path not origin-form);
 * or the negated status the HTTP/1.1 parser answers that head with under lim (-400, -414, -431). */
int tether__h2_head_msg(tether__h2_head *hd, int end_stream, const tether__h1_limits *lim, tether__h1_msg *m,
                        int *chunked);
/* Empty again for the next block, its buffers kept. */
void tether__h2_head_reset(tether__h2_head *hd);
void tether__h2_head_free(tether__h2_head *hd);

#endif
