/* libFuzzer harness: the session JSON codec (src/lib/json_codec.c, src/lib/session_data.c) against jansson.
 *   - text the check calls JSON.stringify's form is read by jansson, and printing what jansson read gives
 *     the same bytes back;
 *   - whatever jansson reads prints as text in that form (when it is within the check's depth and width),
 *     which jansson reads back as the same value (numbers compared as the doubles JavaScript holds), and
 *     printing that again changes nothing;
 *   - a session's data taken apart by tether__sdata_parse prints back as jansson's value;
 *   - the first 8 bytes as a double print as text that reads back as that double and passes the check. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_codec.h"
#include "session_data.h"

static void fail(const char *what, const uint8_t *data, size_t size) {
  fprintf(stderr, "json_codec: %s for input of %zu bytes: %.*s\n", what, size, (int)(size > 300 ? 300 : size),
          (const char *)data);
  abort();
}

static double number(const json_t *v) {
  return json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v);
}

/* Equal values, members in the same order, numbers as JavaScript's doubles. */
static int same(const json_t *a, const json_t *b) {
  if (json_is_number(a) && json_is_number(b)) return number(a) == number(b);
  if (json_typeof(a) != json_typeof(b)) return 0;
  if (json_is_string(a))
    return json_string_length(a) == json_string_length(b) &&
           memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
  if (json_is_array(a)) {
    if (json_array_size(a) != json_array_size(b)) return 0;
    for (size_t i = 0; i < json_array_size(a); i++)
      if (!same(json_array_get(a, i), json_array_get(b, i))) return 0;
    return 1;
  }
  if (json_is_object(a)) {
    if (json_object_size(a) != json_object_size(b)) return 0;
    void *ia = json_object_iter((json_t *)a), *ib = json_object_iter((json_t *)b);
    for (; ia && ib; ia = json_object_iter_next((json_t *)a, ia), ib = json_object_iter_next((json_t *)b, ib))
      if (strcmp(json_object_iter_key(ia), json_object_iter_key(ib)) != 0 ||
          !same(json_object_iter_value(ia), json_object_iter_value(ib)))
        return 0;
    return 1;
  }
  return 1; /* true, false, null */
}

/* Within the check's reach: at most 64 levels deep, objects of at most 32 members. */
static int within(const json_t *v, int depth) {
  if (depth > 64) return 0;
  if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++)
      if (!within(json_array_get(v, i), depth + 1)) return 0;
  } else if (json_is_object(v)) {
    if (json_object_size(v) > 32) return 0;
    const char *k;
    json_t *m;
    json_object_foreach((json_t *)v, k, m) if (!within(m, depth + 1)) return 0;
  }
  return 1;
}

static char *print(const json_t *v, size_t *len) {
  tether__buf b = {0};
  tether__json_write(&b, v);
  *len = b.len;
  return b.data;
}

static void check_double(const uint8_t *data, size_t size) {
  double d;
  if (size < 8) return;
  memcpy(&d, data, 8);
  char out[TETHER__JSON_NUMBER_MAX];
  size_t n = tether__json_number(d, out);
  if (n != strlen(out)) fail("number length", data, 8);
  if (!isfinite(d)) {
    if (strcmp(out, "null") != 0) fail("non-finite number not null", data, 8);
    return;
  }
  if (strtod(out, NULL) != d) fail("number does not read back", data, 8);
  if (!tether__json_canonical(out, n)) fail("printed number fails the check", data, 8);
}

static void check_sdata(const char *p, size_t size, const json_t *j) {
  tether__sdata d = {0};
  int rc = tether__sdata_parse(&d, p, size, JSON_REJECT_DUPLICATES);
  if ((rc == 0) != json_is_object(j)) fail("sdata_parse and jansson disagree", (const uint8_t *)p, size);
  if (rc == 0) {
    char *text = tether__sdata_text(&d);
    json_t *back = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, NULL);
    if (back == NULL || !same(back, j)) fail("sdata text is not jansson's value", (const uint8_t *)p, size);
    json_decref(back);
    free(text);
    /* a stored session's data text made from its text as it is equals the one written member by member */
    char *after = tether__sdata_text_after(&d, p, size, "cookie", "_tetherCreated");
    if (after) {
      tether__sdata_del(&d, "cookie");
      tether__sdata_del(&d, "_tetherCreated");
      char *written = tether__sdata_text(&d);
      if (strcmp(after, written) != 0) fail("sdata text after the cookie differs", (const uint8_t *)p, size);
      free(written);
      free(after);
    }
  }
  tether__sdata_clear(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check_double(data, size);
  const char *p = (const char *)data;
  int canon = tether__json_canonical(p, size);
  json_t *j = json_loadb(p, size, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_REJECT_DUPLICATES, NULL);
  if (canon && j == NULL) fail("checked text that jansson refuses", data, size);
  if (j) {
    size_t len, len2;
    char *out = print(j, &len);
    if (canon && (len != size || memcmp(out, data, size) != 0)) fail("checked text prints differently", data, size);
    if (within(j, 0) && !tether__json_canonical(out, len)) fail("printed text fails the check", data, size);
    json_t *back = json_loadb(out, len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_REJECT_DUPLICATES, NULL);
    if (back == NULL || !same(j, back)) fail("printed text is not the same value", data, size);
    char *out2 = print(back, &len2);
    if (len2 != len || memcmp(out, out2, len) != 0) fail("printing is not idempotent", data, size);
    free(out2);
    json_decref(back);
    free(out);
  }
  check_sdata(p, size, j);
  json_decref(j);
  return 0;
}
