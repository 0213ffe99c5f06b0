/* libtether internals: a strict, non-allocating JSON scanner for flat objects (JWT headers and claims),
 * and walkers that extract members and strings from text already validated. */
#ifndef TETHER_JSON_H
#define TETHER_JSON_H

#include <stddef.h>
#include <stdint.h>

/* Value types of a member; the flags say a name or string value has escapes. */
enum {
  TETHER__JSON_STRING = 1,
  TETHER__JSON_INT,
  TETHER__JSON_REAL,
  TETHER__JSON_TRUE,
  TETHER__JSON_FALSE,
  TETHER__JSON_NULL,
  TETHER__JSON_ARRAY,
  TETHER__JSON_OBJECT
};
#define TETHER__JSON_KEY_ESC 0x80 /* the member name has escapes */
#define TETHER__JSON_VAL_ESC 0x40 /* the string value has escapes */
#define TETHER__JSON_TYPE(t) ((t)&0x0f)

/* TETHER__SCAN_COMPLEX: valid as far as seen, but jansson must decide (and the walkers extract). */
enum { TETHER__SCAN_OK = 0, TETHER__SCAN_COMPLEX = 1, TETHER__SCAN_INVALID = -1, TETHER__SCAN_DUP = -2 };

/* A top-level member: offsets into the text. A string's value excludes its quotes. */
typedef struct tether__json_member {
  uint32_t key, key_len, value, value_len;
  uint8_t type; /* TETHER__JSON_* | the escape flags */
} tether__json_member;

/* Length of the well-formed UTF-8 sequence at p (jansson's rules), or 0. */
size_t tether__utf8_seq(const uint8_t *p, size_t n);

static inline int tether__json_is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
size_t tether__json_skip_ws(const char *p, size_t n, size_t i);

/* Validates a whole text as one JSON object whose values are scalars or arrays of scalars, with member
 * names free of escapes, at most max members and none repeated; fills m and *count. TETHER__SCAN_*. */
int tether__json_scan_object(const char *p, size_t n, tether__json_member *m, int max, int *count);

/* Over validated text: the end of the string or value starting at i (and the value's type). */
size_t tether__json_skip_string(const char *p, size_t n, size_t i);
size_t tether__json_skip_value(const char *p, size_t n, size_t i, uint8_t *type);

/* The members of a validated object, one by one. */
typedef struct tether__json_walker {
  const char *p;
  size_t n, i;
} tether__json_walker;
void tether__json_walk_begin(tether__json_walker *w, const char *p, size_t n);
/* The next member: 1 and *m filled, or 0 at the end. */
int tether__json_walk_next(tether__json_walker *w, tether__json_member *m);

/* Does the (possibly escaped) string body s equal the bytes t? */
int tether__json_str_equal(const char *s, size_t n, int esc, const char *t, size_t tn);
/* Unescapes a string body into out (cap bytes, NUL-terminated): its length, or -1 when it does not fit. */
long tether__json_str_unescape(const char *s, size_t n, int esc, char *out, size_t cap);
/* Is the member's name the bytes name[0..nlen)? */
int tether__json_member_is(const char *p, const tether__json_member *m, const char *name, size_t nlen);

#endif
