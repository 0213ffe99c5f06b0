/* libtether internals: JSON exactly as JavaScript's JSON.stringify writes it (the session wire format
 * shared with express-session and connect-redis), and a check that text already is in that form, so that
 * stored values can be kept as they are instead of being parsed and printed again. */
#ifndef TETHER_JSON_CODEC_H
#define TETHER_JSON_CODEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "json.h"
#include "util.h"

#define TETHER__JSON_NUMBER_MAX 32 /* room for any number's text and its NUL */

/* JSON.stringify's text for a number: the shortest digits that read back as v, in Number::toString's
 * layout (no exponent from 1e-6 up to 1e21, "-0" as "0"); NaN and the infinities as "null". The length. */
size_t tether__json_number(double v, char out[TETHER__JSON_NUMBER_MAX]);
/* An integer: exact up to 2^53 in magnitude; beyond, the double JavaScript would hold, as it prints it. */
size_t tether__json_int(int64_t v, char out[TETHER__JSON_NUMBER_MAX]);
/* A string (UTF-8, n bytes) with its quotes, escaped as JSON.stringify does. */
void tether__json_write_string(tether__buf *b, const char *s, size_t n);
/* A jansson value as JSON.stringify writes the same value (members in their order). */
void tether__json_write(tether__buf *b, const json_t *v);

/* 1 when p[0..n) is one JSON value exactly as JSON.stringify writes it and as jansson reads it (no
 * whitespace, shortest numbers, only the escapes JSON.stringify makes, UTF-8, no NUL, no repeated member
 * names); 0 otherwise, including for what is valid but written differently, or nested deeper or wider
 * than this check goes: the caller then asks jansson. */
int tether__json_canonical(const char *p, size_t n);

/* The same for an object, with its members' places into m (a string value with its quotes): their number,
 * or -1 when the text is not an object in that form (or has more than TETHER__JSON_MAX_MEMBERS). */
#define TETHER__JSON_MAX_MEMBERS 32 /* wider objects are left to jansson (the repeated-name check is quadratic) */
int tether__json_canonical_object(const char *p, size_t n, tether__json_member m[TETHER__JSON_MAX_MEMBERS]);

/* 1 when s[0..n) is UTF-8 as jansson accepts it (no overlong forms, surrogates or NUL bytes). */
int tether__utf8_valid(const char *s, size_t n);

#endif
