/* PROXY protocol v1 and v2 headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/balancer/proxyproto.c"

static int parse(const char *s, size_t n, struct sockaddr_storage *ss) { return tether__proxyproto_parse(s, n, ss); }

static void test_v1(void **state) {
  (void)state;
  struct sockaddr_storage ss;
  const char *h = "PROXY TCP4 192.0.2.1 192.0.2.2 56324 443\r\nGET / HTTP/1.1\r\n";
  int n = parse(h, strlen(h), &ss);
  assert_int_equal(n, 42);
  assert_int_equal(ss.ss_family, AF_INET);
  char ip[64];
  inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip));
  assert_string_equal(ip, "192.0.2.1");
  assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 56324);
  h = "PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n";
  assert_int_equal(parse(h, strlen(h), &ss), (int)strlen(h));
  assert_int_equal(ss.ss_family, AF_INET6);
  h = "PROXY UNKNOWN\r\n";
  assert_int_equal(parse(h, strlen(h), &ss), (int)strlen(h));
  assert_int_equal(ss.ss_family, AF_UNSPEC);
  for (size_t k = 0; k < 20; k++) assert_int_equal(parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", k, &ss), 0);
  static const char *bad[] = {
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",    /* no CR */
      "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", /* two spaces */
      "PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",  "PROXY TCP4 ::1 ::1 1 2\r\n",
      "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",   "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (parse(bad[i], strlen(bad[i]), &ss) != -1) fail_msg("accepted: %s", bad[i]);
  char longline[200];
  memset(longline, 'x', sizeof(longline));
  memcpy(longline, "PROXY ", 6);
  assert_int_equal(parse(longline, sizeof(longline), &ss), -1);
  assert_int_equal(parse("GET / HTTP/1.1\r\n", 16, &ss), -2);
  assert_int_equal(parse("POST /", 6, &ss), -2);
}

static void test_v2(void **state) {
  (void)state;
  struct sockaddr_storage ss;
  unsigned char h[64] = {'\r', '\n', '\r', '\n', 0, '\r', '\n', 'Q', 'U', 'I', 'T',  '\n', 0x21, 0x11,
                         0,    12,   10,   1,    2, 3,    10,   9,   9,   9,   0x1f, 0x90, 0x01, 0xbb};
  assert_int_equal(parse((char *)h, 28, &ss), 28);
  assert_int_equal(ss.ss_family, AF_INET);
  assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 8080);
  for (size_t k = 0; k < 28; k++) assert_int_equal(parse((char *)h, k, &ss), 0);
  h[12] = 0x20; /* LOCAL */
  assert_int_equal(parse((char *)h, 28, &ss), 28);
  assert_int_equal(ss.ss_family, AF_UNSPEC);
  h[12] = 0x31; /* version 3 */
  assert_int_equal(parse((char *)h, 28, &ss), -1);
  h[12] = 0x21;
  h[15] = 4; /* too short for IPv4 addresses */
  assert_int_equal(parse((char *)h, 28, &ss), -1);
  h[14] = 0xff; /* absurd length */
  assert_int_equal(parse((char *)h, 28, &ss), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_v1), cmocka_unit_test(test_v2)};
  return cmocka_run_group_tests_name("proxyproto", tests, NULL, NULL);
}
