/* The session data calls of tether/session.h (src/lib/session_data.c): each member type, the JSON text
 * forms, order, and that a change is a modification exactly when the data's JSON changed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "members.h"
#include "tether/session.h"
#include "tether/store.h"

typedef struct fixture {
  tether_store *st;
  tether_sessions *m;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  assert_int_equal(tether_store_open("memory:", &f->st), 0);
  tether_session_options o;
  tether_session_options_init(&o);
  o.secret[0] = "data-secret";
  o.secret_count = 1;
  o.cookie.max_age_ms = 60000;
  o.store = f->st;
  assert_int_equal(tether_sessions_new(&o, &f->m), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  tether_sessions_free(f->m);
  tether_store_close(f->st);
  free(f);
  return 0;
}

static tether_session *fresh(fixture *f) {
  tether_session *s = NULL;
  assert_int_equal(tether_session_load(f->m, NULL, &s), 0);
  return s;
}

static void assert_data(const tether_session *s, const char *want) {
  char *got = tether_session_data_json(s);
  assert_string_equal(got, want);
  free(got);
}

static void test_members(void **state) {
  tether_session *s = fresh(*state);
  assert_int_equal(tether_session_count(s), 0);
  assert_data(s, "{}");
  assert_int_equal(tether_session_set_string(s, "user", "zo\xc3\xab"), 0);
  assert_int_equal(tether_session_set_int(s, "visits", 41), 0);
  assert_int_equal(tether_session_set_bool(s, "admin", 0), 0);
  assert_int_equal(tether_session_set_json(s, "cart", "[\"book\",{\"sku\":\"C3\"}]"), 0);
  assert_int_equal(tether_session_count(s), 4);
  assert_true(tether_session_has(s, "admin"));
  assert_false(tether_session_has(s, "nobody"));
  assert_string_equal(tether_session_get_string(s, "user"), "zo\xc3\xab");
  assert_null(tether_session_get_string(s, "visits")); /* not a string */
  int64_t v = -1;
  assert_int_equal(tether_session_get_int(s, "visits", &v), 0);
  assert_int_equal(v, 41);
  assert_int_equal(tether_session_get_int(s, "user", &v), TETHER_ENOTFOUND);
  assert_int_equal(v, 0);
  char *cart = tether_session_get_json(s, "cart");
  assert_string_equal(cart, "[\"book\",{\"sku\":\"C3\"}]");
  free(cart);
  assert_null(tether_session_get_json(s, "nobody"));
  assert_data(s, "{\"user\":\"zo\xc3\xab\",\"visits\":41,\"admin\":false,\"cart\":[\"book\",{\"sku\":\"C3\"}]}");
  assert_int_equal(tether_session_remove(s, "admin"), 0);
  assert_int_equal(tether_session_remove(s, "admin"), TETHER_ENOTFOUND);
  assert_int_equal(tether_session_count(s), 3);
  tether_session_free(s);
}

static void test_refused(void **state) {
  tether_session *s = fresh(*state);
  assert_int_equal(tether_session_set_string(s, "user", "\xff"), TETHER_EINVAL);
  assert_int_equal(tether_session_set_string(s, "\xff", "bob"), TETHER_EINVAL);
  assert_int_equal(tether_session_set_json(s, "x", "{not json"), TETHER_EINVAL);
  assert_int_equal(tether_session_array_append_string(s, "cart", "\xc3"), TETHER_EINVAL);
  assert_int_equal(tether_session_merge_json(s, "[1]"), TETHER_EINVAL);
  assert_int_equal(tether_session_replace_json(s, "\"text\""), TETHER_EINVAL);
  assert_int_equal(tether_session_count(s), 0); /* nothing changed */
  tether_session_free(s);
}

static void test_arrays(void **state) {
  tether_session *s = fresh(*state);
  assert_int_equal(tether_session_array_length(s, "cart"), TETHER_ENOTFOUND);
  assert_int_equal(tether_session_set_string(s, "cart", "not an array"), 0);
  assert_int_equal(tether_session_array_length(s, "cart"), TETHER_ENOTFOUND);
  assert_int_equal(tether_session_array_append_string(s, "cart", "book"), 0); /* replaces the string */
  assert_int_equal(tether_session_array_append_string(s, "cart", "pen"), 0);
  assert_int_equal(tether_session_array_length(s, "cart"), 2);
  assert_data(s, "{\"cart\":[\"book\",\"pen\"]}");
  tether_session_free(s);
}

static int collect(void *arg, const char *key) {
  char *out = arg;
  strcat(out, key);
  strcat(out, ",");
  return strcmp(key, "c") == 0 ? 7 : 0;
}

static void test_json_forms_and_order(void **state) {
  tether_session *s = fresh(*state);
  assert_int_equal(tether_session_replace_json(s, "{\"b\":1,\"a\":2}"), 0);
  assert_int_equal(tether_session_merge_json(s, "{\"a\":3,\"c\":true,\"d\":null}"), 0);
  assert_data(s, "{\"b\":1,\"a\":3,\"c\":true,\"d\":null}");
  char keys[64] = "";
  assert_int_equal(tether_session_foreach_key(s, collect, keys), 7); /* stopped at "c" */
  assert_string_equal(keys, "b,a,c,");
  assert_int_equal(tether_session_replace_json(s, "{\"z\":0}"), 0);
  assert_data(s, "{\"z\":0}");
  tether_session_free(s);
}

/* express-session's hash rule holds through the calls: the same value again is no modification. */
static void test_modification_is_by_value(void **state) {
  fixture *f = *state;
  tether_session *s = fresh(f);
  tether_session_set_int(s, "n", 1);
  char *sc = NULL;
  assert_int_equal(tether_session_commit(s, &sc), 0);
  assert_non_null(sc);
  char cookie[256];
  snprintf(cookie, sizeof(cookie), "%.*s", (int)strcspn(sc, ";"), sc);
  free(sc);
  tether_session_free(s);

  tether_metrics before, after;
  tether_store_metrics(f->st, &before);
  assert_int_equal(tether_session_load(f->m, cookie, &s), 0);
  assert_false(tether_session_is_new(s));
  tether_session_set_int(s, "n", 1); /* the value it had */
  sc = NULL;
  assert_int_equal(tether_session_commit(s, &sc), 0);
  free(sc);
  tether_session_free(s);
  tether_store_metrics(f->st, &after);
  assert_int_equal(after.saved - before.saved, 0);
}

/* A stored session's data text taken from its text as it is (the load's modification hash) equals the one
 * written member by member, or is not taken (NULL) when the text does not start with the cookie. */
static void test_text_after(void **state) {
  (void)state;
  static const struct {
    const char *stored, *want; /* want NULL: not taken from the text */
  } cases[] = {
      {"{\"cookie\":{\"path\":\"/\"},\"n\":1,\"s\":\"x\"}", "{\"n\":1,\"s\":\"x\"}"},
      {"{\"cookie\":{},\"_tetherCreated\":5,\"n\":[1,{\"a\":null}]}", "{\"n\":[1,{\"a\":null}]}"},
      {"{\"cookie\":{},\"_tetherCreated\":5}", "{}"},
      {"{\"cookie\":{}}", "{}"},
      {"{\"cookie\":{},\"a\\\"b\":1,\"\\u001f\":true}", "{\"a\\\"b\":1,\"\\u001f\":true}"},
      {"{\"n\":1,\"cookie\":{}}", NULL},
      {"{\"cookie\":{},\"n\":1,\"_tetherCreated\":5}", NULL},
      {"{\"cookie\": {},\"n\":1}", NULL},
      {"{\"cookie\":{},\"n\":1.0}", NULL},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    tether__sdata d = {0};
    const char *p = cases[i].stored;
    assert_int_equal(tether__sdata_parse(&d, p, strlen(p), 0), 0);
    char *after = tether__sdata_text_after(&d, p, strlen(p), "cookie", "_tetherCreated");
    tether__sdata_del(&d, "cookie");
    tether__sdata_del(&d, "_tetherCreated");
    char *written = tether__sdata_text(&d);
    if (cases[i].want == NULL) {
      if (after != NULL) fail_msg("%s: taken as '%s'", p, after);
    } else {
      if (after == NULL) fail_msg("%s: not taken", p);
      assert_string_equal(after, cases[i].want);
      assert_string_equal(after, written);
    }
    free(after);
    free(written);
    tether__sdata_clear(&d);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_members, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_arrays, setup, teardown),
      cmocka_unit_test_setup_teardown(test_json_forms_and_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_modification_is_by_value, setup, teardown),
      cmocka_unit_test(test_text_after),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
