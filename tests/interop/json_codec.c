/* Interop: libtether writes session JSON byte for byte as Node's JSON.stringify does (the wire format
 * shared with express-session and connect-redis). json_codec.js prints JSON.stringify of thousands of
 * values (numbers at every layout edge and from random bit patterns, escapes, non-ASCII, carts of nested
 * objects); each line is read back (the text gives the exact double), written by libtether, and compared:
 * through the codec itself, through a session's data calls, and through a whole stored session. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "json_codec.h"
#include "tether/session.h"
#include "tether/store.h"
#include "util.h"

#define COUNT 4000

static char *node_lines(int count, unsigned seed, size_t *len) {
  char cmd[1024];
  snprintf(cmd, sizeof(cmd), "node '%s/json_codec.js' %d %u", TETHER_INTEROP_DIR, count, seed);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  tether__buf b = {0};
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0) tether__buf_append(&b, chunk, n);
  assert_int_equal(pclose(p), 0);
  assert_true(b.len > 0);
  *len = b.len;
  return b.data;
}

/* Each line, read by jansson and written by libtether, is the line; and the check says it is in form. */
static void test_codec_writes_what_node_writes(void **state) {
  (void)state;
  size_t len;
  /* JSON_CODEC_SEED and JSON_CODEC_COUNT run other values (longer runs by hand) */
  const char *seed = getenv("JSON_CODEC_SEED"), *count = getenv("JSON_CODEC_COUNT");
  char *text = node_lines(count ? atoi(count) : COUNT, seed ? (unsigned)atoi(seed) : 12345, &len);
  int lines = 0, objects = 0;
  for (char *line = text, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
    size_t n = (size_t)(nl - line);
    json_error_t err;
    json_t *v = json_loadb(line, n, JSON_DECODE_ANY, &err);
    if (v == NULL) /* integers past int64 (1e20 is written as one): as the doubles they are */
      v = json_loadb(line, n, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &err);
    if (v == NULL) fail_msg("jansson refused node's line %d: %.*s (%s)", lines + 1, (int)n, line, err.text);
    tether__buf out = {0};
    tether__json_write(&out, v);
    if (out.len != n || memcmp(out.data, line, n) != 0)
      fail_msg("line %d: node wrote %.*s, libtether %s", lines + 1, (int)n, line, out.data);
    if (!tether__json_canonical(line, n)) fail_msg("line %d: the check refuses node's %.*s", lines + 1, (int)n, line);
    if (json_is_real(v) || json_is_integer(v)) { /* the number alone, from the double */
      char num[TETHER__JSON_NUMBER_MAX];
      double d = json_is_real(v) ? json_real_value(v) : (double)json_integer_value(v);
      size_t k = tether__json_number(d, num);
      if (k != n || memcmp(num, line, n) != 0)
        fail_msg("line %d: node %.*s, libtether %s", lines + 1, (int)n, line, num);
    }
    objects += json_is_object(v);
    tether__buf_free(&out);
    json_decref(v);
    lines++;
  }
  assert_true(lines > (count ? atoi(count) : COUNT));
  assert_true(objects > COUNT / 10);
  free(text);
}

/* The same objects as a session's data: replace_json, then the data's text, and the stored session. */
static void test_session_data_is_node_text(void **state) {
  (void)state;
  tether_store *st;
  assert_int_equal(tether_store_open("memory:", &st), 0);
  tether_session_options o;
  tether_session_options_init(&o);
  o.secret[0] = "interop";
  o.secret_count = 1;
  o.store = st;
  tether_sessions *m;
  assert_int_equal(tether_sessions_new(&o, &m), 0);
  size_t len;
  char *text = node_lines(COUNT / 4, 777, &len);
  int checked = 0;
  for (char *line = text, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
    *nl = '\0';
    if (line[0] != '{' || strstr(line, "\"cookie\"")) continue;
    tether_session *s;
    assert_int_equal(tether_session_load(m, NULL, &s), 0);
    assert_int_equal(tether_session_replace_json(s, line), 0);
    char *data = tether_session_data_json(s);
    if (strcmp(data, line) != 0) fail_msg("data %s, node %s", data, line);
    char *stored = tether_session_serialize(s); /* {"cookie":{...}} then the same members */
    const char *members = strstr(stored, "},") ? strstr(stored, "},") + 2 : NULL;
    if (strcmp(line, "{}") != 0 && (members == NULL || strncmp(members, line + 1, strlen(line + 1)) != 0))
      fail_msg("stored %s, node's members %s", stored, line);
    free(stored);
    free(data);
    tether_session_free(s);
    checked++;
  }
  assert_true(checked > COUNT / 40);
  free(text);
  tether_sessions_free(m);
  tether_store_close(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_codec_writes_what_node_writes),
      cmocka_unit_test(test_session_data_is_node_text),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
