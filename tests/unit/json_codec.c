/* Unit tests: JSON as JSON.stringify writes it (src/lib/json_codec.c), and a session's data kept as its
 * members' text (src/lib/session_data.c). The expected texts are what Node 20 prints for the same value
 * (tests/interop/json_codec.c checks thousands more against Node itself). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <math.h>

#include "json_codec.h"
#include "tether/session.h"
#include "tether/store.h"

static void test_numbers(void **state) {
  (void)state;
  static const struct {
    double v;
    const char *js;
  } cases[] = {
      {0, "0"},
      {-0.0, "0"},
      {1, "1"},
      {-1, "-1"},
      {0.1, "0.1"},
      {0.1 + 0.2, "0.30000000000000004"},
      {1.0 / 3, "0.3333333333333333"},
      {1e21, "1e+21"},
      {1e20, "100000000000000000000"},
      {123456789012345680000.0, "123456789012345680000"},
      {1e-6, "0.000001"},
      {1e-7, "1e-7"},
      {1.5e-7, "1.5e-7"},
      {5e-324, "5e-324"},
      {-5e-324, "-5e-324"},
      {1.7976931348623157e308, "1.7976931348623157e+308"},
      {2.2250738585072014e-308, "2.2250738585072014e-308"},
      {9007199254740993.0, "9007199254740992"},
      {18446744073709551616.0, "18446744073709552000"},
      {4.35, "4.35"},
      {1e300, "1e+300"},
      {123e-20, "1.23e-18"},
      {0.0000125, "0.0000125"},
      {999999999999999900000.0, "999999999999999900000"},
      {NAN, "null"},
      {INFINITY, "null"},
      {-INFINITY, "null"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char out[TETHER__JSON_NUMBER_MAX];
    size_t n = tether__json_number(cases[i].v, out);
    assert_string_equal(out, cases[i].js);
    assert_int_equal(n, strlen(cases[i].js));
  }
  char out[TETHER__JSON_NUMBER_MAX];
  tether__json_int(INT64_MAX, out);
  assert_string_equal(out, "9223372036854776000"); /* the double JavaScript would hold */
  tether__json_int(-9007199254740992LL, out);
  assert_string_equal(out, "-9007199254740992");
  tether__json_int(INT64_MIN, out);
  assert_string_equal(out, "-9223372036854776000");
}

static void test_strings(void **state) {
  (void)state;
  tether__buf b = {0};
  const char in[] = "q\" b\\ s/ \b\f\n\r\t \x01\x1f\x7f zo\xc3\xab \xe2\x80\xa8 \xf0\x9f\x98\x80";
  tether__json_write_string(&b, in, sizeof(in) - 1);
  assert_string_equal(b.data,
                      "\"q\\\" b\\\\ s/ \\b\\f\\n\\r\\t \\u0001\\u001f\x7f zo\xc3\xab \xe2\x80\xa8 \xf0\x9f\x98\x80\"");
  tether__buf_free(&b);
}

static void test_canonical(void **state) {
  (void)state;
  static const char *yes[] = {"0",
                              "-1",
                              "0.1",
                              "1e+21",
                              "5e-324",
                              "100000000000000000000",
                              "\"a\\u001fb\"",
                              "\"\\n\"",
                              "[]",
                              "{}",
                              "{\"a\":[1,{\"b\":null}],\"c\":\"\\\"\"}",
                              "true",
                              "-2.5"};
  static const char *no[] = {"-0",          "01",          "1.0",         "1e2",
                             "1E+21",       "0.10",        " 1",          "[1, 2]",
                             "{\"a\" :1}",  "\"\\/\"",     "\"\\u001F\"", "\"\\u000a\"",
                             "\"\\u0041\"", "\"\\u0000\"", "\"\\ud800\"", "{\"a\":1,\"a\":2}",
                             "\"\xff\"",    "\"\x01\"",    "1e400",       "[1,]",
                             "nul"};
  for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
    if (!tether__json_canonical(yes[i], strlen(yes[i]))) fail_msg("refused %s", yes[i]);
  for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
    if (tether__json_canonical(no[i], strlen(no[i]))) fail_msg("accepted %s", no[i]);
}

static void test_write_jansson(void **state) {
  (void)state;
  json_t *v = json_loads("{\"b\":1.0,\"a\":[1E2,-0.0,0.5,\"\\/\\u00e9\"],\"big\":12345678901234567}", 0, NULL);
  assert_non_null(v);
  tether__buf b = {0};
  tether__json_write(&b, v);
  assert_string_equal(b.data, "{\"b\":1,\"a\":[100,0,0.5,\"/\xc3\xa9\"],\"big\":12345678901234568}");
  tether__buf_free(&b);
  json_decref(v);
}

/* A stored session: members in JSON.stringify's form come back as their bytes; other forms are normalized
 * and are no modification. */
static void test_session_keeps_stored_text(void **state) {
  (void)state;
  tether_store *st;
  assert_int_equal(tether_store_open("memory:", &st), 0);
  tether_session_options o;
  tether_session_options_init(&o);
  o.secret[0] = "codec";
  o.secret_count = 1;
  o.cookie.max_age_ms = 60000;
  o.store = st;
  tether_sessions *m;
  assert_int_equal(tether_sessions_new(&o, &m), 0);
  static const char *const stored[][2] = {
      {"{\"cookie\":{\"originalMaxAge\":60000,\"expires\":\"2099-01-01T00:00:00.000Z\",\"httpOnly\":true,\"path\":"
       "\"/\"},\"n\":1e+21,\"p\":0.1,\"s\":\"\\u001f\\\"\",\"big\":100000000000000000000}",
       "{\"n\":1e+21,\"p\":0.1,\"s\":\"\\u001f\\\"\",\"big\":100000000000000000000}"},
      {"{ \"cookie\" : {\"originalMaxAge\":6e4,\"expires\":\"2099-01-01T00:00:00.000Z\",\"path\":\"\\/\"} , "
       "\"n\" : 1.0, \"s\":\"\\u00e9\\/\" }",
       "{\"n\":1,\"s\":\"\xc3\xa9/\"}"},
  };
  for (size_t i = 0; i < 2; i++) {
    const char *sid = "codecSessionId0123456789abcdefgh";
    assert_int_equal(tether_store_set(st, sid, stored[i][0], strlen(stored[i][0]), tether_now_ms() + 60000), 0);
    char val[128], header[256];
    assert_true(tether_cookie_sign(sid, "codec", val, sizeof(val)) > 0);
    snprintf(header, sizeof(header), "connect.sid=s:%s", val);
    tether_session *s;
    assert_int_equal(tether_session_load(m, header, &s), 0);
    assert_false(tether_session_is_new(s));
    char *data = tether_session_data_json(s);
    assert_string_equal(data, stored[i][1]);
    free(data);
    int64_t n = 0;
    assert_int_equal(tether_session_get_int(s, "n", &n), i == 0 ? TETHER_ENOTFOUND : 0);
    assert_int_equal(n, i == 0 ? 0 : 1);
    assert_int_equal(tether_session_get_int(s, "big", &n), TETHER_ENOTFOUND); /* past int64 */
    tether_metrics before, after;
    tether_store_metrics(st, &before);
    char *sc = NULL;
    assert_int_equal(tether_session_commit(s, &sc), 0);
    free(sc);
    tether_store_metrics(st, &after);
    assert_int_equal(after.saved, before.saved); /* not modified: touched only */
    tether_session_free(s);
  }
  tether_sessions_free(m);
  tether_store_close(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_numbers),
      cmocka_unit_test(test_strings),
      cmocka_unit_test(test_canonical),
      cmocka_unit_test(test_write_jansson),
      cmocka_unit_test(test_session_keeps_stored_text),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
