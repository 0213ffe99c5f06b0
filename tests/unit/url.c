/* Unit tests of src/lib/store/url.c: store URLs that parse, every malformed one refused with a message
 * naming the bad part (and never quoting the password), parameters, and redaction. */
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

static void parse_ok(const char *text, tether__url *u) {
  int rc = tether__url_parse(text, u);
  if (rc != 0) fail_msg("'%s' refused: %s", text, tether_last_error());
}

static void test_simple(void **state) {
  (void)state;
  tether__url u;
  parse_ok("redis://127.0.0.1:6379", &u);
  assert_string_equal(u.scheme, "redis");
  assert_null(u.user);
  assert_null(u.password);
  assert_int_equal(u.nhosts, 1);
  assert_string_equal(u.hosts[0].host, "127.0.0.1");
  assert_int_equal(u.hosts[0].port, 6379);
  assert_string_equal(u.path, "");
  assert_int_equal(u.nparams, 0);
  tether__url_free(&u);

  parse_ok("REDIS://Cache-1.example.com", &u);
  assert_string_equal(u.scheme, "redis"); /* scheme lower-cased, host kept */
  assert_string_equal(u.hosts[0].host, "Cache-1.example.com");
  assert_int_equal(u.hosts[0].port, 0);
  tether__url_free(&u);

  parse_ok("redis://h:1/", &u);
  assert_int_equal(u.hosts[0].port, 1);
  assert_string_equal(u.path, "");
  tether__url_free(&u);

  parse_ok("redis://h:65535/15", &u);
  assert_int_equal(u.hosts[0].port, 65535);
  assert_string_equal(u.path, "15");
  tether__url_free(&u);
}

static void test_userinfo(void **state) {
  (void)state;
  tether__url u;
  parse_ok("redis://app%40corp:p%3Ass%2Fw%25rd%20x@cache:6380/2?timeout_ms=100&prefix=app%3Asess%3A", &u);
  assert_string_equal(u.user, "app@corp");
  assert_string_equal(u.password, "p:ss/w%rd x");
  assert_string_equal(u.hosts[0].host, "cache");
  assert_int_equal(u.hosts[0].port, 6380);
  assert_string_equal(u.path, "2");
  assert_int_equal(u.nparams, 2);
  assert_string_equal(tether__url_param(&u, "timeout_ms"), "100");
  assert_string_equal(tether__url_param(&u, "prefix"), "app:sess:");
  assert_null(tether__url_param(&u, "pool"));
  tether__url_free(&u);

  parse_ok("redis://:only-password@h", &u);
  assert_string_equal(u.user, "");
  assert_string_equal(u.password, "only-password");
  tether__url_free(&u);

  parse_ok("redis://default:@h", &u);
  assert_string_equal(u.user, "default");
  assert_string_equal(u.password, "");
  tether__url_free(&u);

  parse_ok("redis://alice@h", &u);
  assert_string_equal(u.user, "alice");
  assert_null(u.password);
  tether__url_free(&u);

  /* an unescaped '@' in the password: the last '@' ends the userinfo */
  parse_ok("redis://u:p@ss@h:1", &u);
  assert_string_equal(u.password, "p@ss");
  assert_string_equal(u.hosts[0].host, "h");
  tether__url_free(&u);
}

static void test_ipv6_and_hosts(void **state) {
  (void)state;
  tether__url u;
  parse_ok("redis://[::1]:6380/3", &u);
  assert_string_equal(u.hosts[0].host, "::1");
  assert_int_equal(u.hosts[0].port, 6380);
  assert_string_equal(u.path, "3");
  tether__url_free(&u);

  parse_ok("redis://u:p@[2001:db8::7]", &u);
  assert_string_equal(u.hosts[0].host, "2001:db8::7");
  assert_int_equal(u.hosts[0].port, 0);
  tether__url_free(&u);

  parse_ok("memcached://a:11211,b.example:11212,[::1]:11213,127.0.0.1?replicas=2", &u);
  assert_int_equal(u.nhosts, 4);
  assert_string_equal(u.hosts[0].host, "a");
  assert_int_equal(u.hosts[0].port, 11211);
  assert_string_equal(u.hosts[1].host, "b.example");
  assert_int_equal(u.hosts[1].port, 11212);
  assert_string_equal(u.hosts[2].host, "::1");
  assert_int_equal(u.hosts[2].port, 11213);
  assert_string_equal(u.hosts[3].host, "127.0.0.1");
  assert_int_equal(u.hosts[3].port, 0);
  assert_string_equal(tether__url_param(&u, "replicas"), "2");
  tether__url_free(&u);

  parse_ok("redis-sentinel://s1:26379,s2:26380,s3/mymaster/1", &u);
  assert_int_equal(u.nhosts, 3);
  assert_string_equal(u.path, "mymaster/1");
  tether__url_free(&u);

  /* exactly the maximum number of hosts */
  char text[512] = "memcached://";
  for (int i = 0; i < TETHER__URL_MAX_HOSTS; i++)
    snprintf(text + strlen(text), sizeof(text) - strlen(text), "%sh%d:%d", i ? "," : "", i, 1000 + i);
  parse_ok(text, &u);
  assert_int_equal(u.nhosts, TETHER__URL_MAX_HOSTS);
  assert_string_equal(u.hosts[15].host, "h15");
  assert_int_equal(u.hosts[15].port, 1015);
  tether__url_free(&u);
}

static void test_opaque_and_params(void **state) {
  (void)state;
  tether__url u;
  parse_ok("sqlite:/var/lib/tether/sessions.db?timeout_ms=250&table=s", &u);
  assert_string_equal(u.scheme, "sqlite");
  assert_int_equal(u.nhosts, 0);
  assert_string_equal(u.path, "/var/lib/tether/sessions.db");
  assert_string_equal(tether__url_param(&u, "table"), "s");
  long v;
  assert_int_equal(tether__url_param_int(&u, "timeout_ms", 1000, 1, 60000, &v), 0);
  assert_int_equal(v, 250);
  assert_int_equal(tether__url_param_int(&u, "pool", 4, 1, 64, &v), 0);
  assert_int_equal(v, 4); /* absent: the default */
  assert_int_equal(tether__url_param_int(&u, "timeout_ms", 1000, 1, 100, &v), TETHER_EINVAL);
  assert_non_null(strstr(tether_last_error(), "timeout_ms=250"));
  assert_int_equal(tether__url_param_int(&u, "table", 1, 1, 100, &v), TETHER_EINVAL);
  static const char *const allowed[] = {"timeout_ms", "table", NULL};
  static const char *const fewer[] = {"timeout_ms", NULL};
  assert_int_equal(tether__url_check_params(&u, allowed), 0);
  assert_int_equal(tether__url_check_params(&u, fewer), TETHER_EINVAL);
  assert_non_null(strstr(tether_last_error(), "unknown URL parameter 'table'"));
  assert_non_null(strstr(tether_last_error(), "known: timeout_ms"));
  tether__url_free(&u);

  parse_ok("sqlite:relative%20name.db", &u);
  assert_string_equal(u.path, "relative name.db");
  tether__url_free(&u);

  parse_ok("memory:", &u);
  assert_string_equal(u.scheme, "memory");
  assert_string_equal(u.path, "");
  tether__url_free(&u);

  /* empty pairs are skipped; a key without '=' has an empty value; %-escapes in both */
  parse_ok("memory:?&max=5&&flag&k%20ey=v%26al", &u);
  assert_int_equal(u.nparams, 3);
  assert_string_equal(tether__url_param(&u, "max"), "5");
  assert_string_equal(tether__url_param(&u, "flag"), "");
  assert_string_equal(tether__url_param(&u, "k ey"), "v&al");
  tether__url_free(&u);

  parse_ok("postgres://tether:pw@db.internal:5432/sessions?sslmode=disable", &u);
  assert_string_equal(u.scheme, "postgres");
  assert_string_equal(u.path, "sessions");
  tether__url_free(&u);

  /* integers: bounds, junk, overflow */
  parse_ok("memory:?a=-5&b=12x&c=99999999999999999999&d=", &u);
  assert_int_equal(tether__url_param_int(&u, "a", 0, -10, 10, &v), 0);
  assert_int_equal(v, -5);
  assert_int_equal(tether__url_param_int(&u, "b", 0, 0, 100, &v), TETHER_EINVAL);
  assert_int_equal(tether__url_param_int(&u, "c", 0, 0, 100, &v), TETHER_EINVAL);
  assert_int_equal(tether__url_param_int(&u, "d", 0, 0, 100, &v), TETHER_EINVAL);
  tether__url_free(&u);
}

/* Each malformed URL: EINVAL, and the message contains what names the bad part. */
static const struct {
  const char *url;
  const char *names;
} bad_urls[] = {
    {"redis://h:abc", "bad port 'abc'"},
    {"redis://h:", "bad port ''"},
    {"redis://h:-1", "bad port '-1'"},
    {"redis://h:+80", "bad port '+80'"},
    {"redis://h:123456", "bad port '123456'"},
    {"redis://h:0", "port 0 out of range"},
    {"redis://h:00000", "port 0 out of range"},
    {"redis://h:70000", "port 70000 out of range"},
    {"redis://h:65536", "port 65536 out of range"},
    {"redis://h:1:2", "bad port '1:2'"},
    {"redis://[::1]:0", "port 0 out of range"},
    {"redis://[::1]:", "bad port ''"},
    {"redis://:6379", "empty host"},
    {"redis://u:p@:6379", "empty host"},
    {"redis://a,,b", "empty host"},
    {"redis://,a", "empty host"},
    {"redis://a:1,", "empty host after ','"},
    {"memcached://a:1,b:2,/x", "empty host after ','"},
    {"redis://[::1", "unclosed '['"},
    {"redis://[::1:6379/0", "unclosed '['"},
    {"redis://[::1]6379", "junk after ']'"},
    {"redis://[]:6379", "empty host"},
    {"redis://[zz::1]:6379", "IPv6"},
    {"redis://ho st", "bad character ' ' in host"},
    {"redis://h%41", "bad character '%' in host"},
    {"redis://h;x", "bad character ';' in host"},
    {"redis://u%ZZ:p@h", "bad escape in user or password"},
    {"redis://u:p%4@h", "bad escape in user or password"},
    {"redis://u:p%00@h", "bad escape in user or password"},
    {"redis://h/%G0", "bad %-escape in path"},
    {"sqlite:/tmp/a%", "bad %-escape in path"},
    {"sqlite:/tmp/a%00b", "bad %-escape in path"},
    {"redis://h?timeout_ms=%ZZ", "bad parameter 'timeout_ms=%ZZ'"},
    {"redis://h?=5", "bad parameter '=5'"},
    {"redis://h?a=1&%zz=2", "bad parameter '%zz=2'"},
    {"nocolon", "no scheme"},
    {":redis//h", "no scheme"},
    {"", "no scheme"},
};

static void test_malformed(void **state) {
  (void)state;
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(bad_urls); i++) {
    tether__url u;
    tether__clear_error();
    int rc = tether__url_parse(bad_urls[i].url, &u);
    if (rc != TETHER_EINVAL) {
      if (rc == 0) tether__url_free(&u);
      fail_msg("'%s': %d, expected EINVAL", bad_urls[i].url, rc);
    }
    if (strstr(tether_last_error(), bad_urls[i].names) == NULL)
      fail_msg("'%s': message '%s' does not say '%s'", bad_urls[i].url, tether_last_error(), bad_urls[i].names);
  }
}

static void test_too_many(void **state) {
  (void)state;
  tether__url u;
  char text[1024] = "memcached://";
  for (int i = 0; i <= TETHER__URL_MAX_HOSTS; i++)
    snprintf(text + strlen(text), sizeof(text) - strlen(text), "%sh%d:%d", i ? "," : "", i, 1000 + i);
  assert_int_equal(tether__url_parse(text, &u), TETHER_EINVAL);
  assert_non_null(strstr(tether_last_error(), "more than 16 hosts"));

  snprintf(text, sizeof(text), "memory:?");
  for (int i = 0; i <= TETHER__URL_MAX_PARAMS; i++)
    snprintf(text + strlen(text), sizeof(text) - strlen(text), "%sp%d=%d", i ? "&" : "", i, i);
  assert_int_equal(tether__url_parse(text, &u), TETHER_EINVAL);
  assert_non_null(strstr(tether_last_error(), "too many parameters"));
}

static void test_message_hides_password(void **state) {
  (void)state;
  static const char *urls[] = {
      "redis://app:hunter2@h:99999",
      "redis://app:hunter2@h:x",
      "redis://app:hunter2@[::1",
      "redis://app:hunter2@a,,b",
      "redis://app:hunter2@h/%ZZ",
      "redis://app:hunter2@h?=1",
      "postgres://app:hunter2@db:5432/x?a=%",
  };
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(urls); i++) {
    tether__url u;
    assert_int_equal(tether__url_parse(urls[i], &u), TETHER_EINVAL);
    if (strstr(tether_last_error(), "hunter2") != NULL)
      fail_msg("'%s': message shows the password", tether_last_error());
    assert_non_null(strstr(tether_last_error(), "***"));
  }
}

static void test_store_open(void **state) {
  (void)state;
  tether_store *st = (tether_store *)1;
  assert_int_equal(tether_store_open("ftp://h", &st), TETHER_EINVAL);
  assert_null(st);
  assert_non_null(strstr(tether_last_error(), "unknown scheme"));
  assert_int_equal(tether_store_open("memcache://h:1", &st), TETHER_EINVAL);
  assert_non_null(strstr(tether_last_error(), "unknown scheme"));
  assert_int_equal(tether_store_open("", &st), TETHER_EINVAL);
  assert_non_null(strstr(tether_last_error(), "empty"));
  assert_int_equal(tether_store_open(NULL, &st), TETHER_EINVAL);
  assert_int_equal(tether_store_open("memory:?max=%ZZ", &st), TETHER_EINVAL);
  assert_non_null(strstr(tether_last_error(), "bad parameter"));
  assert_int_equal(tether_store_open("MEMORY:?max=7", &st), 0);
  assert_string_equal(tether_store_kind(st), "memory");
  tether_store_close(st);
  assert_int_equal(tether_store_open("jwt:", &st), 0);
  assert_true(tether_store_client_side(st));
  tether_store_close(st);
  assert_int_equal(tether_store_open("jwt:x", &st), TETHER_EINVAL);
}

static void test_redact(void **state) {
  (void)state;
  static const struct {
    const char *in, *out;
  } cases[] = {
      {"redis://u:pw@h:1/0", "redis://u:***@h:1/0"},
      {"redis://:pw@h", "redis://:***@h"},
      {"redis://default:@h", "redis://default:***@h"},
      {"redis://u@h", "redis://u@h"},
      {"redis://h:6379/0?timeout_ms=5", "redis://h:6379/0?timeout_ms=5"},
      {"sqlite:/var/x.db", "sqlite:/var/x.db"},
      {"memory:", "memory:"},
      {"jwt:", "jwt:"},
      {"postgres://u:p%40ss@db/x?sslmode=disable", "postgres://u:***@db/x?sslmode=disable"},
      {"redis://u:p@ss@h", "redis://u:***@h"},
      {"redis://u:pw@[::1]:6379", "redis://u:***@[::1]:6379"},
      {"memcached://u:pw@a:1,b:2", "memcached://u:***@a:1,b:2"},
      {"redis://h/0?x=a@b:c", "redis://h/0?x=a@b:c"},
      {"dual:redis://u:p1@h+redis://v:p2@k/1", "dual:redis://u:***@h+redis://v:***@k/1"},
      {"dual:memory:+postgres://u:p2@k/db", "dual:memory:+postgres://u:***@k/db"},
      {"", ""},
  };
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(cases); i++) {
    char *r = tether__url_redact(cases[i].in);
    if (strcmp(r, cases[i].out) != 0) fail_msg("redact('%s') = '%s', expected '%s'", cases[i].in, r, cases[i].out);
    free(r);
  }
  /* the store's URL as reported */
  tether_store *st;
  assert_int_equal(tether_store_open("memory:?max=3", &st), 0);
  assert_string_equal(tether_store_url(st), "memory:?max=3");
  tether_store_close(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_simple),
      cmocka_unit_test(test_userinfo),
      cmocka_unit_test(test_ipv6_and_hosts),
      cmocka_unit_test(test_opaque_and_params),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_too_many),
      cmocka_unit_test(test_message_hides_password),
      cmocka_unit_test(test_store_open),
      cmocka_unit_test(test_redact),
  };
  return cmocka_run_group_tests_name("url", tests, NULL, NULL);
}
