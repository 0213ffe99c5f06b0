/* Unit tests of src/lib/util.c: base64 and strict base64url, ISO-8601 and HTTP dates (checked against
 * JavaScript's Date through the generated vectors), constant-time compare, TTLs, session id checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/store_impl.h"
#include "util.h"
#include "vectors/cookie_vectors.h"

/* RFC 4648 section 10, without the padding (neither encoder emits it). */
static const struct {
  const char *in;
  const char *out;
} rfc4648[] = {{"", ""},           {"f", "Zg"},          {"fo", "Zm8"},         {"foo", "Zm9v"},
               {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}};

static void test_base64_rfc4648(void **state) {
  (void)state;
  char out[64];
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(rfc4648); i++) {
    size_t n = strlen(rfc4648[i].in);
    assert_int_equal(tether__base64_encode((const uint8_t *)rfc4648[i].in, n, out), strlen(rfc4648[i].out));
    assert_string_equal(out, rfc4648[i].out);
    assert_int_equal(tether__base64url_encode((const uint8_t *)rfc4648[i].in, n, out), strlen(rfc4648[i].out));
    assert_string_equal(out, rfc4648[i].out);
    uint8_t back[16];
    int m = tether__base64url_decode(rfc4648[i].out, strlen(rfc4648[i].out), back, sizeof(back));
    assert_int_equal(m, (int)n);
    assert_memory_equal(back, rfc4648[i].in, n);
  }
}

static void test_base64_alphabets(void **state) {
  (void)state;
  const uint8_t a[] = {0xfb, 0xef, 0xbe, 0xfb, 0xff};
  char out[16];
  assert_int_equal(tether__base64_encode(a, sizeof(a), out), 7);
  assert_string_equal(out, "+++++/8");
  assert_int_equal(tether__base64url_encode(a, sizeof(a), out), 7);
  assert_string_equal(out, "-----_8");
  uint8_t back[8];
  assert_int_equal(tether__base64url_decode("-----_8", 7, back, sizeof(back)), 5);
  assert_memory_equal(back, a, 5);
  /* every byte value round-trips, at every length 0..300 */
  uint8_t data[300], dec[300];
  char enc[401];
  for (size_t i = 0; i < sizeof(data); i++) data[i] = (uint8_t)(i * 167 + 13);
  for (size_t n = 0; n <= sizeof(data); n++) {
    size_t e = tether__base64url_encode(data, n, enc);
    assert_int_equal(e, (n * 4 + 2) / 3);
    assert_int_equal(strlen(enc), e);
    assert_int_equal(tether__base64url_decode(enc, e, dec, sizeof(dec)), (int)n);
    assert_memory_equal(dec, data, n);
  }
}

static void test_base64url_strict(void **state) {
  (void)state;
  uint8_t out[32];
  static const char *bad[] = {
      "Zg==",  /* padding */
      "Zm8=",  /* padding */
      "Zm9v=", /* padding, impossible length */
      "Z",     /* impossible length */
      "Zm9vY", /* impossible length */
      "Zh",    /* non-canonical: trailing bits set */
      "Zm9",   /* non-canonical */
      "Zm+v",  /* standard alphabet */
      "Zm/v",  /* standard alphabet */
      "Zm 9v", /* space */
      "Zm9v\n", "Zm.v", "Zm\x80v", "Zm9v\t",
  };
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(bad); i++) {
    int rc = tether__base64url_decode(bad[i], strlen(bad[i]), out, sizeof(out));
    if (rc != TETHER_EINVAL) fail_msg("'%s' decoded (%d)", bad[i], rc);
    assert_true(strstr(tether_last_error(), "base64url") != NULL);
  }
  /* an embedded NUL is a bad character, not the end */
  assert_int_equal(tether__base64url_decode("Zm\0v", 4, out, sizeof(out)), TETHER_EINVAL);
  /* canonical forms of the same prefixes are fine */
  assert_int_equal(tether__base64url_decode("Zg", 2, out, sizeof(out)), 1);
  assert_int_equal(tether__base64url_decode("Zm8", 3, out, sizeof(out)), 2);
  assert_int_equal(tether__base64url_decode("", 0, out, sizeof(out)), 0);
  /* too small an output buffer */
  assert_int_equal(tether__base64url_decode("Zm9vYmFy", 8, out, 5), TETHER_E2BIG);
  assert_int_equal(tether__base64url_decode("Zm9vYmFy", 8, out, 6), 6);
}

static void test_iso8601_vectors(void **state) {
  (void)state;
  for (size_t i = 0; i < TV_COUNT(tv_date_vectors); i++) {
    const tv_date *v = &tv_date_vectors[i];
    char iso[32];
    tether__iso8601(v->ms, iso);
    if (strcmp(iso, v->iso) != 0) fail_msg("%lld: '%s', JavaScript says '%s'", (long long)v->ms, iso, v->iso);
    int64_t back = -42;
    assert_int_equal(tether__parse_iso8601(v->iso, &back), 0);
    assert_int_equal(back, v->ms);
  }
}

static void test_iso8601_parse_forms(void **state) {
  (void)state;
  int64_t ms;
  /* express-session's stored expires, as JSON.stringify writes a Date */
  assert_int_equal(tether__parse_iso8601("2026-11-30T10:01:40.570Z", &ms), 0);
  assert_int_equal(ms, 1796032900570LL);
  assert_int_equal(tether__parse_iso8601("2026-11-30T10:01:40Z", &ms), 0);
  assert_int_equal(ms, 1796032900000LL);
  assert_int_equal(tether__parse_iso8601("2026-11-30T10:01:40.5Z", &ms), 0);
  assert_int_equal(ms, 1796032900500LL);
  assert_int_equal(tether__parse_iso8601("2026-11-30T10:01:40.57Z", &ms), 0);
  assert_int_equal(ms, 1796032900570LL);
  /* more than 3 fraction digits: truncated, as Date.parse does */
  assert_int_equal(tether__parse_iso8601("2026-11-30T10:01:40.5709Z", &ms), 0);
  assert_int_equal(ms, 1796032900570LL);
  /* Date.parse also accepts day 31 of a short month and rolls over (2026-02-31 is March 3rd) */
  assert_int_equal(tether__parse_iso8601("2026-02-31T00:00:00.000Z", &ms), 0);
  assert_int_equal(ms, 1772496000000LL);
  static const char *bad[] = {
      "",
      "2026-11-30",
      "2026-11-30T10:01:40.570",       /* no zone: Date.parse would take local time */
      "2026-11-30T10:01:40.570+02:00", /* offsets are not what toJSON writes */
      "2026-11-30T10:01:40.570z",
      "2026-13-01T00:00:00.000Z",
      "2026-00-01T00:00:00.000Z",
      "2026-11-00T00:00:00.000Z",
      "2026-11-32T00:00:00.000Z",
      "2026-11-30T25:00:00.000Z",
      "2026-11-30T10:60:00.000Z",
      "2026-11-30T10:01:60.000Z",
      "2026-11-30T10:01:40.Z",
      "2026-11-30T10:01:40.570Zjunk",
      "2026-11-30T10:01:40.57aZ",
      "abcd-11-30T10:01:40.570Z",
      "2026-11-30 10:01:40.570Z",
      "2026/11/30T10:01:40.570Z",
      "2026-1-30T10:01:40.570Z",
      "+02026-11-30T10:01:40.570Z",
      "Mon, 30 Nov 2026 10:01:40 GMT",
      "2026-11-30T10:01:4",
  };
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(bad); i++) {
    ms = 7;
    if (tether__parse_iso8601(bad[i], &ms) != TETHER_EINVAL) fail_msg("'%s' parsed as %lld", bad[i], (long long)ms);
    assert_int_equal(ms, 7); /* untouched on failure */
  }
}

static void test_iso8601_round_trip(void **state) {
  (void)state;
  /* every millisecond offset and a spread of dates from 1970 to 9999 */
  uint64_t x = 88172645463325252ULL;
  for (int i = 0; i < 20000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    int64_t ms = (int64_t)(x % 253402300800000ULL);
    char iso[32];
    tether__iso8601(ms, iso);
    assert_int_equal(strlen(iso), 24);
    int64_t back;
    assert_int_equal(tether__parse_iso8601(iso, &back), 0);
    assert_int_equal(back, ms);
  }
  /* out of JavaScript's range: clamped to a fixed width, never a crash */
  char iso[32], http[40];
  tether__iso8601(INT64_MAX, iso);
  assert_int_equal(strlen(iso), 24);
  tether__iso8601(INT64_MIN, iso);
  assert_int_equal(strlen(iso), 24);
  tether__http_date(INT64_MAX, http);
  tether__http_date(INT64_MIN, http);
}

static void test_http_date_vectors(void **state) {
  (void)state;
  for (size_t i = 0; i < TV_COUNT(tv_date_vectors); i++) {
    const tv_date *v = &tv_date_vectors[i];
    char http[40];
    tether__http_date(v->ms, http);
    if (strcmp(http, v->http) != 0) fail_msg("%lld: '%s', JavaScript says '%s'", (long long)v->ms, http, v->http);
  }
}

static void test_ct_equal(void **state) {
  (void)state;
  uint8_t a[64], b[64];
  for (int i = 0; i < 64; i++) a[i] = b[i] = (uint8_t)i;
  assert_true(tether__ct_equal(a, b, 64));
  assert_true(tether__ct_equal(a, b, 0));
  for (int i = 0; i < 64; i++) {
    for (int bit = 0; bit < 8; bit++) {
      b[i] ^= (uint8_t)(1u << bit);
      assert_false(tether__ct_equal(a, b, 64));
      b[i] ^= (uint8_t)(1u << bit);
    }
  }
  assert_true(tether__ct_equal("abc", "abd", 2));
}

static void test_ttl_seconds(void **state) {
  (void)state;
  const int64_t now = 1796032900570LL;
  assert_int_equal(tether__ttl_seconds(0, now), 86400);   /* no expiry: a day, as connect-redis */
  assert_int_equal(tether__ttl_seconds(now + 1, now), 1); /* rounded up */
  assert_int_equal(tether__ttl_seconds(now + 999, now), 1);
  assert_int_equal(tether__ttl_seconds(now + 1000, now), 1);
  assert_int_equal(tether__ttl_seconds(now + 1001, now), 2);
  assert_int_equal(tether__ttl_seconds(now + 3600000, now), 3600);
  assert_int_equal(tether__ttl_seconds(now + 86400000 + 1, now), 86401);
  assert_true(tether__ttl_seconds(now, now) <= 0); /* expired: delete, do not write */
  assert_true(tether__ttl_seconds(now - 1, now) <= 0);
  assert_true(tether__ttl_seconds(1, now) <= 0);
}

static void test_sid_valid(void **state) {
  (void)state;
  char id[130];
  assert_true(tether__sid_valid("a"));
  assert_true(tether__sid_valid("AZaz09-_"));
  memset(id, 'x', 128);
  id[128] = '\0';
  assert_true(tether__sid_valid(id));
  id[128] = 'x';
  id[129] = '\0';
  assert_false(tether__sid_valid(id));
  assert_false(tether__sid_valid(""));
  assert_false(tether__sid_valid("a b"));
  assert_false(tether__sid_valid("a.b"));
  assert_false(tether__sid_valid("a+b"));
  assert_false(tether__sid_valid("a/b"));
  assert_false(tether__sid_valid("sess:x"));
  assert_false(tether__sid_valid("\xc3\xa9"));
}

static void test_buf_and_errors(void **state) {
  (void)state;
  tether__buf b = {0};
  for (int i = 0; i < 1000; i++) tether__buf_appendf(&b, "%d,", i);
  assert_int_equal(b.len, strlen(b.data));
  assert_true(strncmp(b.data, "0,1,2,", 6) == 0);
  char big[2000];
  memset(big, 'z', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  size_t before = b.len;
  tether__buf_appendf(&b, "%s", big); /* longer than the formatter's small buffer */
  assert_int_equal(b.len, before + sizeof(big) - 1);
  tether__buf_free(&b);
  assert_null(b.data);
  assert_int_equal(tether__fail(TETHER_E2BIG, "value of %d bytes", 5000), TETHER_E2BIG);
  assert_string_equal(tether_last_error(), "value of 5000 bytes");
  tether__clear_error();
  assert_string_equal(tether_last_error(), "");
  assert_string_equal(tether_strerror(TETHER_ENOTFOUND), "ENOTFOUND");
  assert_string_equal(tether_strerror(-12345), "EUNKNOWN");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_base64_rfc4648),      cmocka_unit_test(test_base64_alphabets),
      cmocka_unit_test(test_base64url_strict),    cmocka_unit_test(test_iso8601_vectors),
      cmocka_unit_test(test_iso8601_parse_forms), cmocka_unit_test(test_iso8601_round_trip),
      cmocka_unit_test(test_http_date_vectors),   cmocka_unit_test(test_ct_equal),
      cmocka_unit_test(test_ttl_seconds),         cmocka_unit_test(test_sid_valid),
      cmocka_unit_test(test_buf_and_errors),
  };
  return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
