/* Maglev tables and the bounded-load cap: even spread, about 1/N of keys move when a server goes,
 * weights respected, the walk visits every server once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tether/hash.h"

static const char *names10[] = {"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80", "10.0.0.5:80",
                                "10.0.0.6:80", "10.0.0.7:80", "10.0.0.8:80", "10.0.0.9:80", "10.0.0.10:80"};

static void key_of(int i, char *buf, size_t n, size_t *len) { *len = (size_t)snprintf(buf, n, "user-%d", i); }

static void test_spread(void **state) {
  (void)state;
  for (size_t n = 3; n <= 10; n += 1) {
    tether_maglev *m;
    assert_int_equal(tether_maglev_new(names10, NULL, n, 0, &m), 0);
    int count[10] = {0};
    for (int i = 0; i < 100000; i++) {
      char k[32];
      size_t kl;
      key_of(i, k, sizeof(k), &kl);
      count[tether_maglev_server(m, k, kl)]++;
    }
    double mean = 100000.0 / (double)n;
    for (size_t s = 0; s < n; s++)
      if (count[s] < mean * 0.9 || count[s] > mean * 1.1)
        fail_msg("%zu servers: server %zu got %d keys (mean %.0f)", n, s, count[s], mean);
    tether_maglev_free(m);
  }
}

static void test_removal_moves_one_nth(void **state) {
  (void)state;
  tether_maglev *a, *b;
  assert_int_equal(tether_maglev_new(names10, NULL, 10, 0, &a), 0);
  assert_int_equal(tether_maglev_new(names10, NULL, 9, 0, &b), 0); /* the last server removed */
  int moved = 0;
  for (int i = 0; i < 100000; i++) {
    char k[32];
    size_t kl;
    key_of(i, k, sizeof(k), &kl);
    size_t sa = tether_maglev_server(a, k, kl), sb = tether_maglev_server(b, k, kl);
    if (sa != 9 && sa != sb) moved++; /* keys of surviving servers that moved anyway */
  }
  /* Maglev moves a little more than the removed server's keys: allow 5% of all keys */
  if (moved > 5000) fail_msg("%d keys of surviving servers moved", moved);
  tether_maglev_free(a);
  tether_maglev_free(b);
}

static void test_weights_and_walk(void **state) {
  (void)state;
  uint32_t w[3] = {1, 2, 1};
  tether_maglev *m;
  assert_int_equal(tether_maglev_new(names10, w, 3, 0, &m), 0);
  int count[3] = {0};
  for (int i = 0; i < 100000; i++) {
    char k[32];
    size_t kl;
    key_of(i, k, sizeof(k), &kl);
    count[tether_maglev_server(m, k, kl)]++;
  }
  assert_true(count[1] > 45000 && count[1] < 55000);
  size_t order[3];
  assert_int_equal(tether_maglev_walk(m, "x", 1, order, 3), 3);
  assert_int_equal(order[0], tether_maglev_server(m, "x", 1));
  assert_true(order[0] != order[1] && order[1] != order[2] && order[0] != order[2]);
  tether_maglev_free(m);
  assert_int_equal(tether_maglev_new(names10, NULL, 0, 0, &m), TETHER_EINVAL);
  assert_int_equal(tether_maglev_new(names10, NULL, 3, 100, &m), TETHER_EINVAL); /* not a prime */
}

static void test_bounded_cap(void **state) {
  (void)state;
  assert_int_equal(tether_bounded_cap(1, 3, 125), 1);
  assert_int_equal(tether_bounded_cap(30, 3, 125), 13); /* ceil(1.25 * 10) */
  assert_int_equal(tether_bounded_cap(30, 3, 100), 10);
  assert_int_equal(tether_bounded_cap(31, 3, 100), 11);
  assert_int_equal(tether_bounded_cap(0, 0, 125), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_spread), cmocka_unit_test(test_removal_moves_one_nth),
                                     cmocka_unit_test(test_weights_and_walk), cmocka_unit_test(test_bounded_cap)};
  return cmocka_run_group_tests_name("maglev", tests, NULL, NULL);
}
