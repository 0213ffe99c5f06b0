/* Path normalization (src/balancer/uri.c): the results nginx 1.22.1 gives as $uri for the same targets
 * (tests/integration/uri_nginx.c checks them against a running nginx), errors, and the output buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/balancer/uri.c"

static const struct {
  const char *in, *out; /* out NULL: 400 */
} cases[] = {
    {"/", "/"},
    {"/api/me", "/api/me"},
    {"/%61pi/me", "/api/me"},
    {"//api/me", "/api/me"},
    {"///api///me//", "/api/me/"},
    {"/./api/me", "/api/me"},
    {"/x/../api/me", "/api/me"},
    {"/%2e/api/me", "/api/me"},
    {"/%2E%2E/x", NULL},
    {"/api%2Fme", "/api/me"},
    {"/api%2f%2fme", "/api/me"},
    {"/a/%2e%2e/b", "/b"},
    {"/a/.%2e/b", "/b"},
    {"/a/%2e./b", "/b"},
    {"/../x", NULL},
    {"/%2e%2e/x", NULL},
    {"/..", NULL},
    {"//..", NULL},
    {"/a/../..", NULL},
    {"/a/../../b", NULL},
    {"/a/b/../../..", NULL},
    {"/a/b/../..", "/"},
    {"/a/%00", NULL},
    {"/a%00b", NULL},
    {"/a%zz", NULL},
    {"/a%4", NULL},
    {"/a%", NULL},
    {"/a%g0", NULL},
    {"/a?x=%00", "/a"},
    {"/a?x=%zz", "/a"},
    {"/a?", "/a"},
    {"/a/..?x", "/"},
    {"/a/.?x", "/a/"},
    {"/a#frag", "/a"},
    {"/a/b/..", "/a/"},
    {"/a/b/../", "/a/"},
    {"/a/.", "/a/"},
    {"/a/./", "/a/"},
    {"/a/", "/a/"},
    {"/a//", "/a/"},
    {"/.", "/"},
    {"/./", "/"},
    {"/...", "/..."},
    {"/a/...", "/a/..."},
    {"/a/.../b", "/a/.../b"},
    {"/.a/..b/b..", "/.a/..b/b.."},
    {"/a.", "/a."},
    {"/a..", "/a.."},
    {"/%25", "/%"},
    {"/%2541", "/%41"},
    {"/%25%32%35", "/%25"},
    {"/a%3Fb", "/a?b"},
    {"/a%3fb?c", "/a?b"},
    {"/a%23b", "/a#b"},
    {"/%C3%A9t%C3%A9", "/\xc3\xa9t\xc3\xa9"},
    {"/%e2%82%ac", "/\xe2\x82\xac"},
    {"/\xc3\xa9", "/\xc3\xa9"},
    {"/%ff", "/\xff"},
    {"/a+b", "/a+b"},
    {"/a%20b", "/a b"},
    {"/%0a", "/\n"},
    {"/A/b", "/A/b"},
    {"/a;b=c/d", "/a;b=c/d"},
    {"/a/%2F/b", "/a/b"},
    {"/a\\b", "/a\\b"},
    {"/a/.%2F", "/a/"},
    {"/a/..%2Fb", "/b"},
    {"/..%2F", NULL},
};

static void test_cases(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char out[256];
    int n = tether__uri_normalize(cases[i].in, strlen(cases[i].in), out, sizeof(out));
    if (cases[i].out == NULL) {
      if (n != -400) fail_msg("case %zu (%s): %d, expected -400", i, cases[i].in, n);
      continue;
    }
    if (n < 0 || (size_t)n != strlen(cases[i].out) || memcmp(out, cases[i].out, (size_t)n) != 0)
      fail_msg("case %zu (%s): %d \"%.*s\", expected \"%s\"", i, cases[i].in, n, n > 0 ? n : 0, out, cases[i].out);
  }
}

static void test_refused(void **state) {
  (void)state;
  char out[64];
  static const char *bad[] = {"", "a", "*", "http://h/", "/a b", "/a\tb", "/a\x7f", "?x"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (tether__uri_normalize(bad[i], strlen(bad[i]), out, sizeof(out)) != -400) fail_msg("accepted: %s", bad[i]);
  assert_int_equal(tether__uri_normalize("/a\0b", 4, out, sizeof(out)), -400); /* a raw NUL */
}

static void test_capacity(void **state) {
  (void)state;
  char out[8];
  /* cap == n always fits; shorter ones fit when the result does */
  assert_int_equal(tether__uri_normalize("/abcdefg", 8, out, 8), 8);
  assert_int_equal(tether__uri_normalize("/abcdefgh", 9, out, 8), -414);
  assert_int_equal(tether__uri_normalize("/%61%62%63", 10, out, 4), 4);
  assert_memory_equal(out, "/abc", 4);
  assert_int_equal(tether__uri_normalize("/a/b/../c", 9, out, 5), -414); /* "/a/b/" is written first */
  assert_int_equal(tether__uri_normalize("/a?long-query", 13, out, 2), 2);
}

/* The result is a fixed point unless it holds a '%' or a '?' or '#' that came from an escape. */
static void test_idempotent(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char a[256], b[256];
    int n = tether__uri_normalize(cases[i].in, strlen(cases[i].in), a, sizeof(a));
    if (n < 0 || memchr(a, '%', (size_t)n) || memchr(a, '?', (size_t)n) || memchr(a, '#', (size_t)n)) continue;
    int ok = 1;
    for (int k = 0; k < n; k++) ok &= (unsigned char)a[k] > 0x20 && a[k] != 0x7f;
    if (!ok) continue; /* decoded controls and spaces are not valid raw input */
    int m = tether__uri_normalize(a, (size_t)n, b, sizeof(b));
    assert_int_equal(m, n);
    assert_memory_equal(a, b, (size_t)n);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cases),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_capacity),
      cmocka_unit_test(test_idempotent),
  };
  return cmocka_run_group_tests_name("uri", tests, NULL, NULL);
}
