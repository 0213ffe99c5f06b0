/* Unit tests of src/lib/mac.c: HMAC from precomputed key states equals RFC 4231's vectors and OpenSSL's
 * one-shot HMAC() for keys shorter than, as long as and longer than the digest's block, for messages across
 * block boundaries, for more keys than a thread keeps, and on other threads. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mac.h"

static void hex(const uint8_t *p, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", p[i]);
}

/* RFC 4231 test cases 1 (a 20-byte key) and 6 (a 131-byte key: hashed first). */
static void test_rfc4231(void **state) {
  (void)state;
  static const char *const want1[] = {
      "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
      "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6",
      ("87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
       "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854")};
  static const char *const want6[] = {
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
      "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c60c2ef6ab4030fe8296248df163f44952",
      ("80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352"
       "6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598")};
  uint8_t key1[20], key6[131], out[TETHER__MAC_MAX];
  char h[2 * TETHER__MAC_MAX + 1];
  memset(key1, 0x0b, sizeof(key1));
  memset(key6, 0xaa, sizeof(key6));
  const char *msg6 = "Test Using Larger Than Block-Size Key - Hash Key First";
  for (int md = TETHER__MAC_SHA256; md <= TETHER__MAC_SHA512; md++) {
    int n = tether__hmac((tether__mac_md)md, key1, sizeof(key1), "Hi There", 8, out);
    assert_int_equal(n, (int)strlen(want1[md]) / 2);
    hex(out, (size_t)n, h);
    assert_string_equal(h, want1[md]);
    n = tether__hmac((tether__mac_md)md, key6, sizeof(key6), msg6, strlen(msg6), out);
    hex(out, (size_t)n, h);
    assert_string_equal(h, want6[md]);
  }
  assert_int_equal(tether__hmac((tether__mac_md)7, key1, sizeof(key1), "x", 1, out), -1);
}

/* Against HMAC() for 12 keys (more than the 8 a thread keeps, so states are evicted and made again) of
 * 0-200 bytes and messages of 0-300 bytes. */
static void check_against_openssl(void) {
  static const size_t klens[] = {0, 1, 20, 32, 63, 64, 65, 100, 127, 128, 129, 200};
  static const size_t mlens[] = {0, 1, 55, 56, 63, 64, 65, 111, 112, 127, 128, 129, 300};
  const EVP_MD *evp[] = {EVP_sha256(), EVP_sha384(), EVP_sha512()};
  uint8_t key[200 + 12], msg[300], a[TETHER__MAC_MAX], b[EVP_MAX_MD_SIZE]; /* key + k: 12 different keys */
  for (size_t i = 0; i < sizeof(key); i++) key[i] = (uint8_t)(i * 7 + 3);
  for (size_t i = 0; i < sizeof(msg); i++) msg[i] = (uint8_t)(i * 13 + 1);
  for (int round = 0; round < 2; round++)
    for (size_t k = 0; k < sizeof(klens) / sizeof(klens[0]); k++)
      for (int md = TETHER__MAC_SHA256; md <= TETHER__MAC_SHA512; md++)
        for (size_t m = 0; m < sizeof(mlens) / sizeof(mlens[0]); m++) {
          unsigned blen = 0;
          int n = tether__hmac((tether__mac_md)md, key + k, klens[k], msg, mlens[m], a);
          assert_non_null(HMAC(evp[md], key + k, (int)klens[k], msg, mlens[m], b, &blen));
          assert_int_equal(n, (int)blen);
          if (memcmp(a, b, blen) != 0)
            fail_msg("md %d, key of %zu bytes, message of %zu bytes: differs from HMAC()", md, klens[k], mlens[m]);
        }
}

static void test_against_openssl(void **state) {
  (void)state;
  check_against_openssl();
  tether__mac_thread_cleanup();
  check_against_openssl(); /* the states are made again after a cleanup */
}

static void *thread_main(void *arg) {
  (void)arg;
  check_against_openssl();
  return NULL; /* the thread's states are freed at its exit */
}

static void test_threads(void **state) {
  (void)state;
  pthread_t th[2];
  for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, thread_main, NULL), 0);
  check_against_openssl();
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rfc4231),
      cmocka_unit_test(test_against_openssl),
      cmocka_unit_test(test_threads),
  };
  int rc = cmocka_run_group_tests_name("mac", tests, NULL, NULL);
  tether__mac_thread_cleanup();
  return rc;
}
