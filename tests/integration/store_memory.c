/* The memory store: conformance, LRU bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conformance.h"
#include "tether/store.h"

static void test_lru_bound(void **state) {
  (void)state;
  tether_store *st;
  assert_int_equal(tether_store_open("memory:?max=3", &st), 0);
  const char *ids[] = {"aaaa", "bbbb", "cccc", "dddd"};
  for (int i = 0; i < 3; i++) assert_int_equal(tether_store_set(st, ids[i], "{}", 2, 0), 0);
  char *json;
  size_t len;
  assert_int_equal(tether_store_get(st, "aaaa", &json, &len), 0); /* aaaa is now the most recent */
  free(json);
  assert_int_equal(tether_store_set(st, "dddd", "{}", 2, 0), 0); /* evicts bbbb */
  assert_int_equal(tether_store_get(st, "bbbb", &json, &len), TETHER_ENOTFOUND);
  assert_int_equal(tether_store_get(st, "aaaa", &json, &len), 0);
  free(json);
  tether_store_close(st);
}

static void test_bad_urls(void **state) {
  (void)state;
  tether_store *st;
  assert_int_equal(tether_store_open("memory:?max=0", &st), TETHER_EINVAL);
  assert_non_null(strstr(tether_last_error(), "max"));
  assert_int_equal(tether_store_open("memory:?size=3", &st), TETHER_EINVAL);
  assert_non_null(strstr(tether_last_error(), "unknown URL parameter 'size'"));
  assert_int_equal(tether_store_open("memory:/x", &st), TETHER_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_lru_bound), cmocka_unit_test(test_bad_urls)};
  int failed = cmocka_run_group_tests_name("memory", tests, NULL, NULL);
  failed += tt_conformance_run("memory conformance", "memory:");
  return failed ? 1 : 0;
}
