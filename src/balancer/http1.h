/* The balancer's HTTP/1.1 parser: strict, incremental, in place. A head is parsed once it is complete
 * (the caller keeps appending bytes and asks again); names and values are slices into the caller's
 * buffer, nothing is copied. Bodies are framed by tether__h1_body_* (Content-Length, chunked with
 * trailers, or until close), validating chunked framing byte by byte so it can be forwarded as is.
 * Everything that request smuggling and header abuse are made of is refused with a status. */
#ifndef TETHER_BALANCER_HTTP1_H
#define TETHER_BALANCER_HTTP1_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct tether__slice {
  const char *p;
  size_t n;
} tether__slice;

#define TETHER__H1_MAX_HEADERS 100

typedef struct tether__h1_header {
  tether__slice name;
  tether__slice value; /* leading and trailing whitespace removed */
} tether__h1_header;

typedef struct tether__h1_limits {
  size_t max_head;    /* request line + headers (431 past it; 400 for a response's 502) */
  size_t max_uri;     /* request target (414 past it) */
  size_t max_headers; /* header count, at most TETHER__H1_MAX_HEADERS */
} tether__h1_limits;

#define TETHER__H1_DEFAULT_LIMITS                                                                                      \
  { .max_head = 16384, .max_uri = 8192, .max_headers = 100 }

/* How the body that follows the head is framed. */
typedef enum tether__h1_framing {
  TETHER__H1_NO_BODY = 0, /* nothing follows (GET without length, HEAD responses, 1xx/204/304) */
  TETHER__H1_LENGTH,      /* exactly content_length bytes */
  TETHER__H1_CHUNKED,     /* chunked, ended by a zero chunk and trailers */
  TETHER__H1_UNTIL_CLOSE  /* responses only: until the server closes */
} tether__h1_framing;

typedef struct tether__h1_msg {
  /* request line or status line */
  tether__slice method;    /* requests */
  tether__slice target;    /* requests: the request-target as sent */
  tether__slice path;      /* requests: what to route on, origin-form (path ["?" query]): the target itself
                            * in origin-form; in absolute-form what follows the authority ("/" when nothing
                            * does, a static string then, not in the buffer); "*" for OPTIONS *. Raw: not
                            * decoded nor normalized (see tether__uri_normalize in uri.h) */
  tether__slice authority; /* requests: host [":" port], the absolute-form target's (RFC 9112 section 3.2.2:
                            * it wins over Host), else the Host header value (may be empty; p == NULL when
                            * there is no Host, as in HTTP/1.0) */
  int status;              /* responses */
  tether__slice reason;    /* responses */
  int version_minor;       /* HTTP/1.x: 0 or 1 */
  tether__h1_header headers[TETHER__H1_MAX_HEADERS];
  size_t nheaders;
  size_t head_len; /* bytes of the head, CRLF CRLF included */
  /* what the headers mean */
  tether__h1_framing framing;
  uint64_t content_length;
  int keep_alive;      /* the connection may carry another message after this one */
  int expect_continue; /* Expect: 100-continue */
  int upgrade;         /* Connection: upgrade with an Upgrade header */
  tether__slice host;  /* Host header (requests) */
  int is_head;         /* method HEAD */
} tether__h1_msg;

/* Zeroes m but its header array (3 KiB, set as the headers are counted): what a parse starts from. */
static inline void tether__h1_msg_clear(tether__h1_msg *m) {
  memset(m, 0, offsetof(tether__h1_msg, headers));
  memset(&m->nheaders, 0, sizeof(*m) - offsetof(tether__h1_msg, nheaders));
}

/* Parses a request head from buf[0..len). Returns head_len (> 0) when complete, 0 when more bytes are
 * needed, or the negated HTTP status to answer before closing: -400 malformed or smuggling-shaped,
 * -414 target too long, -431 head too large or too many headers, -501 a transfer coding the balancer
 * does not forward.
 *
 * Transfer-Encoding (every such line is one list): it must be a valid list of codings (RFC 9112 section
 * 6.1: tokens with optional ";name=value" parameters, separated by commas and OWS, no empty element),
 * else 400. The body is chunked only when the list is exactly "chunked" (any case, OWS around it).
 * chunked twice, with parameters, or not last: 400. Other codings before a final chunked
 * ("gzip, chunked"): 501. No chunked at all: 501 when a coding is unknown ("xchunked"), 400 for a known
 * one ("gzip": the length cannot be determined, RFC 9112 section 6.3). With Content-Length, or in
 * HTTP/1.0: 400.
 *
 * Request target: origin-form ("/..."), "*" with OPTIONS, or absolute-form "http(s)://" authority
 * [path] where authority is host [":" port] with a non-empty reg-name, IPv4 or IP-literal host, no
 * userinfo and no percent-encoding; anything else (authority-form, CONNECT, "http:///x",
 * "http://u@h/", "http://h?q") is 400. m->path and m->authority are what to route on. */
int tether__h1_parse_request(const char *buf, size_t len, const tether__h1_limits *lim, tether__h1_msg *m);

/* Parses a response head. req_is_head: the request was HEAD (no body follows whatever the headers say).
 * Returns head_len, 0 for more, or -502 when the response is malformed or too large. 1xx responses
 * (other than 101) are heads without a body; the caller forwards them and parses again.
 * Transfer-Encoding: a malformed list, chunked twice or with parameters, or with Content-Length is
 * 502; a list ending in chunked is chunked framing (other codings are the client's business); any
 * other list is read until close (RFC 9112 section 6.3). */
int tether__h1_parse_response(const char *buf, size_t len, const tether__h1_limits *lim, int req_is_head,
                              tether__h1_msg *m);

/* The value of the first header called name (case-insensitive), or a slice with p == NULL. */
tether__slice tether__h1_header_get(const tether__h1_msg *m, const char *name);

/* ---- bodies ---- */

typedef struct tether__h1_body {
  tether__h1_framing framing;
  uint64_t remaining;  /* LENGTH: bytes left; CHUNKED: bytes left in the current chunk's data */
  int state;           /* CHUNKED: where in the framing we are */
  uint64_t chunk_size; /* CHUNKED: size being parsed */
  size_t line_len;     /* CHUNKED: length of the size line or trailer line so far (bounded) */
  uint64_t total;      /* body bytes seen (data only for chunked) */
  int done;            /* the body is complete */
} tether__h1_body;

void tether__h1_body_init(tether__h1_body *b, const tether__h1_msg *m);

/* Consumes up to len bytes of body (framing included for chunked: they are forwarded verbatim).
 * Returns the number of bytes that belong to this body (< len when it ended inside buf; the rest is the
 * next message), or -400 for bad chunked framing. Sets b->done at the end. UNTIL_CLOSE never ends
 * here: the caller ends it at EOF. */
int64_t tether__h1_body_feed(tether__h1_body *b, const char *buf, size_t len);

/* The next comma-separated element of a header value from *pos on, trimmed of spaces and tabs, empty ones
 * skipped: 1 with *el set, 0 at the end. Start with *pos = 0. */
static inline int tether__h1_next_element(tether__slice v, size_t *pos, tether__slice *el) {
  while (*pos <= v.n) {
    size_t a = *pos, b = a;
    while (b < v.n && v.p[b] != ',') b++;
    *pos = b + 1;
    while (a < b && (v.p[a] == ' ' || v.p[a] == '\t')) a++;
    while (b > a && (v.p[b - 1] == ' ' || v.p[b - 1] == '\t')) b--;
    if (b > a) {
      *el = (tether__slice){v.p + a, b - a};
      return 1;
    }
  }
  return 0;
}

/* How many of the first bytes, eight at a time, hold no byte below 0x20 and no DEL: the rest of a field value is
 * looked at byte by byte (the bit tricks tell exactly whether a word has such a byte, not which). */
static inline size_t tether__h1_plain_words(const void *p, size_t n) {
  const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x, y;
    memcpy(&x, (const char *)p + i, 8);
    y = x ^ (ones * 0x7f);
    if (((x - ones * 0x20) & ~x & highs) | ((y - ones) & ~y & highs)) break;
  }
  return i;
}

/* Case-insensitive equality with a literal. Inline: called a few dozen times per request with literals, whose
 * length the compiler then knows, so that most calls end at the length check. Bytes that differ must differ
 * in the 0x20 bit alone and be a letter in its two cases ('^' and '~' differ so too, and stay unequal). */
static inline int tether__h1_token_eq(tether__slice s, const char *lit) {
  size_t n = strlen(lit);
  if (s.n != n) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned a = (unsigned char)s.p[i], d = a ^ (unsigned char)lit[i];
    if (d && (d != 0x20 || (a | 0x20u) - 'a' > (unsigned)('z' - 'a'))) return 0;
  }
  return 1;
}

#endif
