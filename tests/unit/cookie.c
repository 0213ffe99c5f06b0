/* Unit tests of src/lib/cookie.c against what the Node peers produce (tests/unit/vectors): signing
 * equals cookie-signature, unsigning accepts any configured secret and nothing else, parsing equals
 * jshttp/cookie's parse(), and session ids are uid-safe's 24 random bytes in base64url. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tether/session.h"
#include "util.h"
#include "vectors/cookie_vectors.h"

static void test_sign_vectors(void **state) {
  (void)state;
  char out[512];
  for (size_t i = 0; i < TV_COUNT(tv_sign_vectors); i++) {
    const tv_sign *v = &tv_sign_vectors[i];
    int n = tether_cookie_sign(v->value, v->secret, out, sizeof(out));
    assert_int_equal(n, (int)strlen(v->signed_value));
    if (strcmp(out, v->signed_value) != 0)
      fail_msg("sign('%s', '%s') = '%s', cookie-signature says '%s'", v->value, v->secret, out, v->signed_value);
  }
}

static void test_sign_too_small(void **state) {
  (void)state;
  char out[64];
  const char *value = "AAAAAAAAAAAAAAAAAAAA"; /* 20 + 1 + 43 = 64 characters: needs 65 bytes */
  assert_int_equal(tether_cookie_sign(value, "s", out, 64), TETHER_E2BIG);
  char out2[65];
  assert_int_equal(tether_cookie_sign(value, "s", out2, sizeof(out2)), 64);
  assert_int_equal(strlen(out2), 64);
}

static void test_unsign_vectors(void **state) {
  (void)state;
  char out[512];
  for (size_t i = 0; i < TV_COUNT(tv_sign_vectors); i++) {
    const tv_sign *v = &tv_sign_vectors[i];
    /* alone, and as the last of several secrets (rotation) */
    const char *one[] = {v->secret};
    const char *several[] = {"first", "second", v->secret};
    int n = tether_cookie_unsign(v->signed_value, one, 1, out, sizeof(out));
    assert_int_equal(n, (int)strlen(v->value));
    assert_string_equal(out, v->value);
    n = tether_cookie_unsign(v->signed_value, several, 3, out, sizeof(out));
    assert_int_equal(n, (int)strlen(v->value));
    assert_string_equal(out, v->value);
    const char *others[] = {"first", "second"};
    assert_int_equal(tether_cookie_unsign(v->signed_value, others, 2, out, sizeof(out)), TETHER_EINVAL);
  }
}

static void test_unsign_rotation(void **state) {
  (void)state;
  char signed_old[256], signed_new[256], out[256];
  const char *id = "kX3J0bUw2pQ-hq_Zsc9aN1eT7vYbLmRo";
  tether_cookie_sign(id, "old secret", signed_old, sizeof(signed_old));
  tether_cookie_sign(id, "new secret", signed_new, sizeof(signed_new));
  const char *rotated[] = {"new secret", "old secret"};
  assert_int_equal(tether_cookie_unsign(signed_old, rotated, 2, out, sizeof(out)), 32);
  assert_string_equal(out, id);
  assert_int_equal(tether_cookie_unsign(signed_new, rotated, 2, out, sizeof(out)), 32);
  assert_string_equal(out, id);
  const char *only_new[] = {"new secret"};
  assert_int_equal(tether_cookie_unsign(signed_old, only_new, 1, out, sizeof(out)), TETHER_EINVAL);
  assert_int_equal(tether_cookie_unsign(signed_old, rotated, 0, out, sizeof(out)), TETHER_EINVAL);
}

static void test_unsign_rejects(void **state) {
  (void)state;
  const char *secrets[] = {"keyboard cat"};
  const char *id = "kX3J0bUw2pQ-hq_Zsc9aN1eT7vYbLmRo";
  char good[256], bad[300], out[256];
  int n = tether_cookie_sign(id, secrets[0], good, sizeof(good));
  assert_int_equal(tether_cookie_unsign(good, secrets, 1, out, sizeof(out)), 32);

  /* every single-character change of the id or of the signature is refused */
  for (int i = 0; i < n; i++) {
    if (good[i] == '.') continue;
    strcpy(bad, good);
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    if (tether_cookie_unsign(bad, secrets, 1, out, sizeof(out)) != TETHER_EINVAL)
      fail_msg("tampered at %d: '%s' accepted", i, bad);
  }
  /* truncated signature (each length), an extra character, padding, nothing */
  for (int cut = 1; cut <= TETHER_SIG_LEN; cut++) {
    strcpy(bad, good);
    bad[n - cut] = '\0';
    assert_int_equal(tether_cookie_unsign(bad, secrets, 1, out, sizeof(out)), TETHER_EINVAL);
  }
  snprintf(bad, sizeof(bad), "%sA", good);
  assert_int_equal(tether_cookie_unsign(bad, secrets, 1, out, sizeof(out)), TETHER_EINVAL);
  snprintf(bad, sizeof(bad), "%s=", good);
  assert_int_equal(tether_cookie_unsign(bad, secrets, 1, out, sizeof(out)), TETHER_EINVAL);
  /* the signature of another value, the id alone, no dot, empty, only a dot */
  char other[256];
  tether_cookie_sign("another-id", secrets[0], other, sizeof(other));
  snprintf(bad, sizeof(bad), "%s%s", id, strrchr(other, '.'));
  assert_int_equal(tether_cookie_unsign(bad, secrets, 1, out, sizeof(out)), TETHER_EINVAL);
  assert_int_equal(tether_cookie_unsign(id, secrets, 1, out, sizeof(out)), TETHER_EINVAL);
  assert_true(strstr(tether_last_error(), "signature") != NULL);
  assert_int_equal(tether_cookie_unsign("", secrets, 1, out, sizeof(out)), TETHER_EINVAL);
  assert_int_equal(tether_cookie_unsign(".", secrets, 1, out, sizeof(out)), TETHER_EINVAL);
  /* the signature moved before the id */
  snprintf(bad, sizeof(bad), "%s.%s", strrchr(good, '.') + 1, id);
  assert_int_equal(tether_cookie_unsign(bad, secrets, 1, out, sizeof(out)), TETHER_EINVAL);
  /* a value too long for the output */
  assert_int_equal(tether_cookie_unsign(good, secrets, 1, out, 10), TETHER_E2BIG);
}

static void test_unsign_empty_value(void **state) {
  (void)state;
  /* "" signed is ".sig": cookie-signature gives "" back, which express-session treats as no cookie */
  const char *secrets[] = {"keyboard cat"};
  char s[128], out[16];
  tether_cookie_sign("", secrets[0], s, sizeof(s));
  assert_int_equal(s[0], '.');
  assert_int_equal(tether_cookie_unsign(s, secrets, 1, out, sizeof(out)), 0);
  assert_string_equal(out, "");
}

static void test_parse_vectors(void **state) {
  (void)state;
  char out[1024];
  size_t checked = 0;
  for (size_t i = 0; i < TV_COUNT(tv_parse_vectors); i++) {
    const tv_parse *v = &tv_parse_vectors[i];
    memset(out, 0x55, sizeof(out));
    int n = tether_cookie_get(v->header, v->name, out, sizeof(out));
    if (!v->found) {
      if (n != TETHER_ENOTFOUND) fail_msg("header '%s': '%s' found as '%s'", v->header, v->name, out);
    } else {
      if (n < 0) fail_msg("header '%s': '%s' not found (%d), jshttp/cookie says '%s'", v->header, v->name, n, v->value);
      if (strcmp(out, v->value) != 0 || (size_t)n != strlen(v->value))
        fail_msg("header '%s': '%s' = '%s' (%d), jshttp/cookie says '%s'", v->header, v->name, out, n, v->value);
    }
    checked++;
  }
  assert_true(checked > 200);
}

static void test_parse_nul_and_limits(void **state) {
  (void)state;
  char out[64];
  /* decodeURIComponent gives a NUL here; a C string cannot, so the raw text is kept */
  assert_int_equal(tether_cookie_get("a=%00b", "a", out, sizeof(out)), 4);
  assert_string_equal(out, "%00b");
  assert_int_equal(tether_cookie_get("a=x%00", "a", out, sizeof(out)), 4);
  assert_string_equal(out, "x%00");
  assert_int_equal(tether_cookie_get(NULL, "a", out, sizeof(out)), TETHER_ENOTFOUND);
  assert_int_equal(tether_cookie_get("", "a", out, sizeof(out)), TETHER_ENOTFOUND);
  /* too long for the output: E2BIG, whatever the decoded length would be */
  assert_int_equal(tether_cookie_get("a=0123456789", "a", out, 10), TETHER_E2BIG);
  assert_int_equal(tether_cookie_get("a=0123456789", "a", out, 11), 10);
  assert_int_equal(tether_cookie_get("a=%41%41%41%41", "a", out, 13), 4);
  /* a very long header with the cookie at the end */
  size_t len = 100000;
  char *h = malloc(len + 32);
  assert_non_null(h);
  size_t o = 0;
  while (o < len) o += (size_t)sprintf(h + o, "x%zu=y; ", o);
  strcpy(h + o, "connect.sid=found");
  assert_int_equal(tether_cookie_get(h, "connect.sid", out, sizeof(out)), 5);
  assert_string_equal(out, "found");
  free(h);
}

/* The cookie express-session sends comes back in a Cookie header: parse, then unsign. */
static void test_signed_cookie_round_trip(void **state) {
  (void)state;
  char header[512], raw[512], id[256];
  for (size_t i = 0; i < TV_COUNT(tv_sign_vectors); i++) {
    const tv_sign *v = &tv_sign_vectors[i];
    snprintf(header, sizeof(header), "theme=dark; connect.sid=%s; lang=en", v->encoded);
    int n = tether_cookie_get(header, "connect.sid", raw, sizeof(raw));
    assert_int_equal(n, (int)strlen(v->signed_value) + 2);
    assert_true(strncmp(raw, "s:", 2) == 0);
    assert_string_equal(raw + 2, v->signed_value);
    const char *secrets[] = {v->secret};
    assert_int_equal(tether_cookie_unsign(raw + 2, secrets, 1, id, sizeof(id)), (int)strlen(v->value));
    assert_string_equal(id, v->value);
  }
}

static int cmp_ids(const void *a, const void *b) { return strcmp(a, b); }

static void test_session_id_generate(void **state) {
  (void)state;
  enum { N = 1000 };
  char(*ids)[TETHER_SID_LEN + 1] = calloc(N, sizeof(*ids));
  assert_non_null(ids);
  for (int i = 0; i < N; i++) {
    memset(ids[i], 0x55, sizeof(ids[i]));
    assert_int_equal(tether_session_id_generate(ids[i]), 0);
    assert_int_equal(strlen(ids[i]), TETHER_SID_LEN);
    for (int j = 0; j < TETHER_SID_LEN; j++) {
      char c = ids[i][j];
      assert_true((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_');
    }
    assert_true(tether__sid_valid(ids[i]));
    uint8_t raw[TETHER_SID_BYTES + 1];
    assert_int_equal(tether__base64url_decode(ids[i], TETHER_SID_LEN, raw, sizeof(raw)), TETHER_SID_BYTES);
  }
  qsort(ids, N, sizeof(*ids), cmp_ids);
  for (int i = 1; i < N; i++)
    if (strcmp(ids[i - 1], ids[i]) == 0) fail_msg("id %s drawn twice", ids[i]);
  free(ids);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sign_vectors),
      cmocka_unit_test(test_sign_too_small),
      cmocka_unit_test(test_unsign_vectors),
      cmocka_unit_test(test_unsign_rotation),
      cmocka_unit_test(test_unsign_rejects),
      cmocka_unit_test(test_unsign_empty_value),
      cmocka_unit_test(test_parse_vectors),
      cmocka_unit_test(test_parse_nul_and_limits),
      cmocka_unit_test(test_signed_cookie_round_trip),
      cmocka_unit_test(test_session_id_generate),
  };
  return cmocka_run_group_tests_name("cookie", tests, NULL, NULL);
}
