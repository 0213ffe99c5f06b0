/* libtether internals shared across files (prefix tether__). */
#ifndef TETHER_UTIL_H
#define TETHER_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tether/common.h"

#define TETHER__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define TETHER__UNUSED(x) ((void)(x))

/* Allocation failure is fatal, decided once here. */
void *tether__malloc(size_t n);
void *tether__calloc(size_t n, size_t size);
void *tether__realloc(void *p, size_t n);
char *tether__strdup(const char *s);
char *tether__strndup(const char *s, size_t n);
char *tether__asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Records the message of a failure for tether_last_error() and returns code, so that
 * `return tether__fail(TETHER_EINVAL, "bad port '%s'", p);` reads as one step. */
int tether__fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tether__clear_error(void);

void tether__log(tether_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Base64: standard alphabet without padding (cookie signatures) and base64url without padding. Both
 * return the encoded length; the output is NUL-terminated and needs 4*ceil(n/3)+1 bytes. */
size_t tether__base64_encode(const uint8_t *in, size_t n, char *out);
size_t tether__base64url_encode(const uint8_t *in, size_t n, char *out);
/* Strict base64url decoding: no padding, canonical trailing bits. Returns length or TETHER_EINVAL. */
int tether__base64url_decode(const char *in, size_t n, uint8_t *out, size_t cap);
/* The same without a message (hot paths that report their own). */
int tether__base64url_decode_quiet(const char *in, size_t n, uint8_t *out, size_t cap);

/* Fills buf from the OS CSPRNG (getrandom), aborting if the kernel cannot give randomness. */
void tether__random(void *buf, size_t n);

/* Constant-time comparison of two equal-length buffers: 1 when equal. */
int tether__ct_equal(const void *a, const void *b, size_t n);

/* Monotonic clock in microseconds, for latency measurements. */
uint64_t tether__mono_us(void);

/* ISO-8601 with milliseconds in UTC ("2026-11-30T10:01:40.570Z"), as JavaScript's Date.toJSON; and back.
 * Parsing accepts what Date.parse gives for such strings; returns TETHER_EINVAL on anything else. */
void tether__iso8601(int64_t ms, char out[32]);
int tether__parse_iso8601(const char *s, int64_t *ms);
/* HTTP date ("Mon, 30 Nov 2026 10:01:40 GMT"), as Date.toUTCString. */
void tether__http_date(int64_t ms, char out[40]);

/* A growable byte buffer. */
typedef struct tether__buf {
  char *data; /* NUL-terminated when len > 0 */
  size_t len; /* bytes used */
  size_t cap; /* bytes allocated */
} tether__buf;
/* Room for n more bytes and the terminating NUL. */
void tether__buf_reserve(tether__buf *b, size_t n);
/* Inline: a session's JSON and Set-Cookie are written in dozens of short pieces (a literal's copy is a move). */
static inline void tether__buf_append(tether__buf *b, const void *p, size_t n) {
  if (b->len + n + 1 > b->cap) tether__buf_reserve(b, n);
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
}
void tether__buf_appendf(tether__buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tether__buf_free(tether__buf *b);

/* Session ids that reach a store: 1..128 characters from the base64url alphabet. A signed id from an
 * older deployment may be longer or differ; anything else is refused before it becomes a key. */
int tether__sid_valid(const char *sid);

/* RFC 9110 (formerly RFC 7230) tchar: 1 for the characters of a token (methods, header and cookie names,
 * transfer codings), 0 for every other byte. A table, for parsers that test one byte at a time. */
extern const uint8_t tether__tchar[256];
/* 1 when s is a non-empty token. */
int tether__token_valid(const char *s);

/* The value of a hexadecimal digit (either case), or -1. */
static inline int tether__hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

#endif
