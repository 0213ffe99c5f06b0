/* The redis store against a real redis-server: conformance, connect-redis's wire format (read back with
 * hiredis), AUTH, database selection, URL errors, a server crash and restart, a hung server, the pool
 * bound, and data in the store that is not a session. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "conformance.h"
#include "procs.h"
#include "tether/session.h"
#include "tether/store.h"

static tt_server srv; /* shared by the tests that do not stop it */

/* ---- helpers ---- */

static redisContext *raw_connect(int port) {
  redisContext *c = redisConnect("127.0.0.1", port);
  assert_non_null(c);
  if (c->err) fail_msg("hiredis connect to %d: %s", port, c->errstr);
  return c;
}

static redisReply *raw(redisContext *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = redisvCommand(c, fmt, ap);
  va_end(ap);
  if (r == NULL) fail_msg("hiredis %s: %s", fmt, c->errstr);
  return r;
}

static long long raw_int(redisContext *c, const char *fmt, const char *arg) {
  redisReply *r = raw(c, fmt, arg);
  if (r->type != REDIS_REPLY_INTEGER)
    fail_msg("%s: expected an integer, got type %d %s", fmt, r->type, r->str ? r->str : "");
  long long v = r->integer;
  freeReplyObject(r);
  return v;
}

static tether_store *open_ok(const char *url) {
  tether_store *st = NULL;
  int rc = tether_store_open(url, &st);
  if (rc < 0) fail_msg("open %s: %s", url, tether_last_error());
  return st;
}

static void set_ok(tether_store *st, const char *sid, const char *json, int64_t expires_ms) {
  int rc = tether_store_set(st, sid, json, strlen(json), expires_ms);
  if (rc != 0) fail_msg("set: %s (%s)", tether_strerror(rc), tether_last_error());
}

static int set_json(tether_store *st, const char *sid, const char *json) {
  return tether_store_set(st, sid, json, strlen(json), 0);
}

static void get_expect(tether_store *st, const char *sid, const char *want) {
  char *json = NULL;
  size_t len = 0;
  int rc = tether_store_get(st, sid, &json, &len);
  if (rc != 0) fail_msg("get: %s (%s)", tether_strerror(rc), tether_last_error());
  assert_string_equal(json, want);
  assert_int_equal(len, strlen(want));
  free(json);
}

/* Log lines, checked for secrets. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[65536];

static void capture_log(tether_log_level level, const char *msg, void *arg) {
  (void)level, (void)arg;
  pthread_mutex_lock(&log_lock);
  size_t n = strlen(log_text);
  snprintf(log_text + n, sizeof(log_text) - n, "%s\n", msg);
  pthread_mutex_unlock(&log_lock);
}

static void log_capture_start(void) {
  log_text[0] = '\0';
  tether_log_set(capture_log, NULL);
  tether_log_set_level(TETHER_LOG_DEBUG);
}

static void log_capture_stop_quiet(void) {
  tether_log_set(NULL, NULL);
  tether_log_set_level(TETHER_LOG_WARN);
}

/* TT_SHOW_LOG=1 in the environment prints what was captured. */
static void log_capture_stop(void) {
  if (getenv("TT_SHOW_LOG")) fprintf(stderr, "%s", log_text);
  log_capture_stop_quiet();
}

/* A test's own server (killed, restarted, stopped, given a password), stopped even when the test fails. */
static tt_server extra;

static int cleanup_extra(void **state) {
  (void)state;
  tt_server_cleanup(&extra);
  memset(&extra, 0, sizeof(extra));
  log_capture_stop_quiet();
  return 0;
}

static double elapsed_s(int64_t t0_ms) { return (double)(tether_now_ms() - t0_ms) / 1000.0; }

/* ---- wire format ---- */

static void test_wire_format(void **state) {
  (void)state;
  tether_store *st = open_ok(srv.url);
  redisContext *c = raw_connect(srv.port);
  char sid[TETHER_SID_LEN + 1], key[64];
  tether_session_id_generate(sid);
  snprintf(key, sizeof(key), "sess:%s", sid);
  const char *v = "{\"cookie\":{\"originalMaxAge\":60000,\"expires\":\"2030-01-01T00:00:00.000Z\",\"httpOnly\":true,"
                  "\"path\":\"/\"},\"user\":\"bob\"}";

  /* SET key json EX ttl, ttl rounded up from the expiry */
  set_ok(st, sid, v, tether_now_ms() + 60000);
  redisReply *r = raw(c, "GET %s", key);
  assert_int_equal(r->type, REDIS_REPLY_STRING);
  assert_string_equal(r->str, v);
  freeReplyObject(r);
  long long ttl = raw_int(c, "TTL %s", key);
  assert_true(ttl >= 59 && ttl <= 60);
  assert_string_equal(tether_store_kind(st), "redis");

  /* no expiry: a day */
  set_ok(st, sid, v, 0);
  ttl = raw_int(c, "TTL %s", key);
  assert_true(ttl >= 86399 && ttl <= 86400);

  /* touch = EXPIRE: the TTL moves, the value stays */
  assert_int_equal(tether_store_touch(st, sid, v, strlen(v), tether_now_ms() + 120000), 0);
  ttl = raw_int(c, "TTL %s", key);
  assert_true(ttl >= 119 && ttl <= 120);
  get_expect(st, sid, v);
  /* touching a session that is gone is a no-op, as in connect-redis */
  char other[TETHER_SID_LEN + 1];
  tether_session_id_generate(other);
  assert_int_equal(tether_store_touch(st, other, v, strlen(v), tether_now_ms() + 120000), 0);

  /* an expiry in the past deletes; destroy = DEL */
  set_ok(st, sid, v, tether_now_ms() - 1);
  assert_int_equal(raw_int(c, "EXISTS %s", key), 0);
  set_ok(st, sid, v, 0);
  assert_int_equal(tether_store_destroy(st, sid), 0);
  assert_int_equal(raw_int(c, "EXISTS %s", key), 0);

  /* a session written by connect-redis (same key, same JSON) reads back as is */
  freeReplyObject(raw(c, "SET %s %s EX 100", key, v));
  get_expect(st, sid, v);
  tether_store_close(st);

  /* a custom prefix */
  char url[600];
  snprintf(url, sizeof(url), "%s?prefix=myapp%%3A", srv.url);
  st = open_ok(url);
  tether_session_id_generate(sid);
  set_ok(st, sid, "{\"cookie\":{},\"p\":1}", 0);
  snprintf(key, sizeof(key), "myapp:%s", sid);
  assert_int_equal(raw_int(c, "EXISTS %s", key), 1);
  snprintf(key, sizeof(key), "sess:%s", sid);
  assert_int_equal(raw_int(c, "EXISTS %s", key), 0);
  get_expect(st, sid, "{\"cookie\":{},\"p\":1}");
  tether_store_close(st);
  redisFree(c);
}

/* ---- AUTH ---- */

static void test_auth(void **state) {
  (void)state;
  tt_server *a = &extra;
  assert_int_equal(tt_redis_start(a, 0), 0);
  redisContext *c = raw_connect(a->port);
  freeReplyObject(raw(c, "ACL SETUSER alice on >wonderland ~* &* +@all"));
  freeReplyObject(raw(c, "CONFIG SET requirepass %s", "s3cret-pw"));
  log_capture_start();

  char url[600];
  char sid[TETHER_SID_LEN + 1];
  tether_session_id_generate(sid);

  /* the default user with a password */
  snprintf(url, sizeof(url), "redis://:s3cret-pw@127.0.0.1:%d", a->port);
  tether_store *st = open_ok(url);
  assert_null(strstr(tether_store_url(st), "s3cret-pw"));
  assert_non_null(strstr(tether_store_url(st), "***"));
  set_ok(st, sid, "{\"cookie\":{},\"a\":1}", 0);
  get_expect(st, sid, "{\"cookie\":{},\"a\":1}");
  tether_store_close(st);

  /* an ACL user: AUTH user pass */
  snprintf(url, sizeof(url), "redis://alice:wonderland@127.0.0.1:%d", a->port);
  st = open_ok(url);
  get_expect(st, sid, "{\"cookie\":{},\"a\":1}");
  assert_int_equal(tether_store_ping(st), 0);
  tether_store_close(st);

  /* a wrong password: a clear error that does not show the password, fast failures after it */
  snprintf(url, sizeof(url), "redis://:wrong-pw-1234@127.0.0.1:%d", a->port);
  st = open_ok(url);
  char *json = NULL;
  size_t len;
  int rc = tether_store_get(st, sid, &json, &len);
  assert_int_equal(rc, TETHER_ESTORE);
  const char *msg = tether_last_error();
  assert_non_null(strstr(msg, "AUTH"));
  assert_non_null(strstr(msg, "WRONGPASS"));
  assert_null(strstr(msg, "wrong-pw-1234"));
  rc = tether_store_set(st, sid, "{}", 2, 0);
  assert_true(rc == TETHER_EUNAVAIL || rc == TETHER_ESTORE); /* EUNAVAIL while backing off */
  assert_non_null(strstr(tether_last_error(), "WRONGPASS"));
  tether_store_close(st);

  /* no password at all */
  snprintf(url, sizeof(url), "redis://127.0.0.1:%d", a->port);
  st = open_ok(url);
  assert_int_equal(tether_store_set(st, sid, "{}", 2, 0), TETHER_ESTORE);
  assert_non_null(strstr(tether_last_error(), "NOAUTH"));
  tether_store_close(st);

  log_capture_stop();
  assert_null(strstr(log_text, "wrong-pw-1234"));
  assert_null(strstr(log_text, "s3cret-pw"));
  assert_null(strstr(log_text, "wonderland"));
  redisFree(c);
}

/* ---- /db ---- */

static void test_db(void **state) {
  (void)state;
  char url[600];
  snprintf(url, sizeof(url), "%s/3", srv.url);
  tether_store *st = open_ok(url);
  char sid[TETHER_SID_LEN + 1];
  tether_session_id_generate(sid);
  set_ok(st, sid, "{\"cookie\":{},\"db\":3}", 0);
  redisContext *c = raw_connect(srv.port);
  char key[64];
  snprintf(key, sizeof(key), "sess:%s", sid);
  assert_int_equal(raw_int(c, "EXISTS %s", key), 0);
  freeReplyObject(raw(c, "SELECT 3"));
  redisReply *r = raw(c, "GET %s", key);
  assert_int_equal(r->type, REDIS_REPLY_STRING);
  assert_string_equal(r->str, "{\"cookie\":{},\"db\":3}");
  freeReplyObject(r);
  tether_store_close(st);
  redisFree(c);

  snprintf(url, sizeof(url), "%s/0", srv.url);
  st = open_ok(url);
  char *json = NULL;
  assert_int_equal(tether_store_get(st, sid, &json, NULL), TETHER_ENOTFOUND);
  tether_store_close(st);
}

/* ---- URLs ---- */

static void test_bad_urls(void **state) {
  (void)state;
  static const struct {
    const char *url;
    const char *says; /* part of the message */
  } cases[] = {
      {"redis://127.0.0.1:99999", "port"},
      {"redis://127.0.0.1:port", "bad port 'port'"},
      {"redis://127.0.0.1:6379?bogus=1", "unknown URL parameter 'bogus'"},
      {"redis://127.0.0.1:6379/abc", "database 'abc' is not a number"},
      {"redis://127.0.0.1:6379/1/2", "database '1/2'"},
      {"redis://127.0.0.1:6379/-1", "database '-1'"},
      {"redis://127.0.0.1:6379?timeout_ms=0", "timeout_ms"},
      {"redis://127.0.0.1:6379?connect_timeout_ms=soon", "connect_timeout_ms"},
      {"redis://127.0.0.1:6379?pool=0", "pool"},
      {"redis://127.0.0.1:1,127.0.0.1:2", "one expected"},
      {"redis://", "no host"},
      {"redis://u:topsecret@127.0.0.1:99999", "port"},
      {"redis://:topsecret@127.0.0.1:99999", "port"},
      {"redis://:topsecret@127.0.0.1:port", "port"},
      {"redis://:topsecret@[::1:6379", "host"},
      {"redis://:topsecret@127.0.0.1:6379?bogus=topsecret", "bogus"},
      {"redis-sentinel://:topsecret@127.0.0.1:99999/m", "port"},
      {"redis-sentinel://:topsecret@127.0.0.1:26379", "no master name"},
      {"redis://u:topsecret@127.0.0.1:6379/x", "database 'x'"},
      {"redis://u:top%zzsecret@127.0.0.1:6379", "user or password"},
      {"redis-sentinel://127.0.0.1:26379", "no master name"},
      {"redis-sentinel://127.0.0.1:26379/mymaster/x", "database 'x'"},
      {"redis-sentinel://127.0.0.1:26379/mymaster?foo=1", "unknown URL parameter 'foo'"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    tether_store *st = NULL;
    int rc = tether_store_open(cases[i].url, &st);
    if (rc != TETHER_EINVAL) fail_msg("%s: expected EINVAL, got %s", cases[i].url, tether_strerror(rc));
    assert_null(st);
    const char *msg = tether_last_error();
    if (strstr(msg, cases[i].says) == NULL)
      fail_msg("%s: message '%s' does not say '%s'", cases[i].url, msg, cases[i].says);
    if (strstr(msg, "topsecret") || strstr(msg, "zzsecret"))
      fail_msg("%s: message shows the password: %s", cases[i].url, msg);
  }
}

/* ---- crash and restart ---- */

static int is_unavailable(int rc) { return rc == TETHER_EUNAVAIL || rc == TETHER_ETIMEDOUT || rc == TETHER_ESTORE; }

static void test_restart(void **state) {
  (void)state;
  tt_server *r = &extra;
  assert_int_equal(tt_redis_start(r, 0), 0);
  char port[16];
  snprintf(port, sizeof(port), ":%d", r->port);
  tether_store *st = open_ok(r->url);
  char sid[TETHER_SID_LEN + 1];
  tether_session_id_generate(sid);
  for (int i = 0; i < 5; i++) set_ok(st, sid, "{\"cookie\":{},\"n\":1}", 0); /* pooled connections */
  assert_int_equal(tether_store_ping(st), 0);

  log_capture_start();
  tt_server_stop(r, SIGKILL);
  int failures = 0;
  for (int i = 0; i < 20; i++) {
    int64_t t0 = tether_now_ms();
    char *json = NULL;
    int rc = (i % 3 == 0)   ? set_json(st, sid, "{\"cookie\":{},\"n\":2}")
             : (i % 3 == 1) ? tether_store_get(st, sid, &json, NULL)
                            : tether_store_ping(st);
    double dt = elapsed_s(t0);
    if (!is_unavailable(rc)) fail_msg("op %d while down: %s (%s)", i, tether_strerror(rc), tether_last_error());
    if (dt >= 2.0) fail_msg("op %d took %.2f s", i, dt);
    assert_null(json);
    assert_non_null(strstr(tether_last_error(), port));
    failures++;
    tt_sleep_ms(50);
  }
  assert_int_equal(failures, 20);

  assert_int_equal(tt_redis_start(r, r->port), 0);
  int64_t t0 = tether_now_ms();
  int rc = -1;
  while (rc != 0 && tether_now_ms() - t0 < 10000) {
    rc = set_json(st, sid, "{\"cookie\":{},\"n\":3}");
    if (rc != 0) tt_sleep_ms(50);
  }
  log_capture_stop();
  if (rc != 0) fail_msg("not back after 10 s: %s", tether_last_error());
  assert_true(elapsed_s(t0) < 5.0);
  get_expect(st, sid, "{\"cookie\":{},\"n\":3}");
  assert_int_equal(tether_store_ping(st), 0);
  assert_non_null(strstr(log_text, "reconnecting with backoff"));
  tether_store_close(st);
}

/* A server that accepts connections but never answers: each call gives up after timeout_ms. */
static void test_hung_server(void **state) {
  (void)state;
  tt_server *r = &extra;
  assert_int_equal(tt_redis_start(r, 0), 0);
  char url[600];
  snprintf(url, sizeof(url), "%s?timeout_ms=300&connect_timeout_ms=300", r->url);
  tether_store *st = open_ok(url);
  char sid[TETHER_SID_LEN + 1];
  tether_session_id_generate(sid);
  set_ok(st, sid, "{\"cookie\":{}}", 0);
  log_capture_start();
  kill(r->pid, SIGSTOP);
  for (int i = 0; i < 3; i++) {
    int64_t t0 = tether_now_ms();
    char *json = NULL;
    int rc = tether_store_get(st, sid, &json, NULL);
    double dt = elapsed_s(t0);
    if (rc != TETHER_ETIMEDOUT && rc != TETHER_EUNAVAIL)
      fail_msg("got %s (%s)", tether_strerror(rc), tether_last_error());
    assert_true(dt < 1.5);
    if (i == 0) {
      assert_int_equal(rc, TETHER_ETIMEDOUT);
      assert_non_null(strstr(tether_last_error(), "no answer within 300 ms"));
    }
  }
  kill(r->pid, SIGCONT);
  int64_t t0 = tether_now_ms();
  int rc = -1;
  while (rc != 0 && tether_now_ms() - t0 < 5000) {
    rc = set_json(st, sid, "{\"cookie\":{},\"ok\":1}");
    if (rc != 0) tt_sleep_ms(50);
  }
  log_capture_stop();
  assert_int_equal(rc, 0);
  get_expect(st, sid, "{\"cookie\":{},\"ok\":1}");
  tether_store_close(st);
}

/* ---- the pool ---- */

typedef struct pool_arg {
  tether_store *st;
  int id;
  int bad;
} pool_arg;

static void *pool_worker(void *p) {
  pool_arg *a = p;
  char sid[TETHER_SID_LEN + 1], v[64];
  tether_session_id_generate(sid);
  for (int i = 0; i < 50; i++) {
    snprintf(v, sizeof(v), "{\"cookie\":{},\"w\":%d,\"i\":%d}", a->id, i);
    if (tether_store_set(a->st, sid, v, strlen(v), 0) != 0) a->bad++;
    char *json = NULL;
    if (tether_store_get(a->st, sid, &json, NULL) != 0 || strcmp(json, v) != 0) a->bad++;
    free(json);
  }
  return NULL;
}

static int client_count(redisContext *c) {
  redisReply *r = raw(c, "CLIENT LIST");
  int n = 0;
  for (const char *p = r->str; p && *p; p++) n += *p == '\n';
  freeReplyObject(r);
  return n;
}

/* Six threads through a pool of two connections: all succeed, and no more than two are opened. */
static void test_pool_bound(void **state) {
  (void)state;
  tt_server *r = &extra;
  assert_int_equal(tt_redis_start(r, 0), 0);
  char url[600];
  snprintf(url, sizeof(url), "%s?pool=2", r->url);
  tether_store *st = open_ok(url);
  enum { W = 6 };
  pthread_t t[W];
  pool_arg args[W];
  for (int i = 0; i < W; i++) {
    args[i] = (pool_arg){.st = st, .id = i};
    pthread_create(&t[i], NULL, pool_worker, &args[i]);
  }
  for (int i = 0; i < W; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < W; i++) assert_int_equal(args[i].bad, 0);
  redisContext *c = raw_connect(r->port);
  int n = client_count(c) - 1; /* this one */
  assert_true(n >= 1 && n <= 2);
  redisFree(c);
  tether_store_close(st);
}

/* ---- data that is not a session ---- */

static tether_sessions *make_sessions(tether_store *st) {
  tether_session_options o;
  tether_session_options_init(&o);
  o.secret[0] = "keyboard cat";
  o.secret_count = 1;
  o.store = st;
  o.cookie.max_age_ms = 3600000;
  tether_sessions *m = NULL;
  assert_int_equal(tether_sessions_new(&o, &m), 0);
  return m;
}

/* Loads the session a validly signed cookie names: a new session starts and it counts as missing. */
static void expect_new_session(tether_store *st, tether_sessions *m, const char *sid) {
  char signed_val[256], cookie[300];
  assert_true(tether_cookie_sign(sid, "keyboard cat", signed_val, sizeof(signed_val)) > 0);
  snprintf(cookie, sizeof(cookie), "connect.sid=s%%3A%s", signed_val);
  tether_metrics before, after;
  tether_store_metrics(st, &before);
  tether_session *s = NULL;
  int rc = tether_session_load(m, cookie, &s);
  if (rc != 0) fail_msg("load: %s (%s)", tether_strerror(rc), tether_last_error());
  assert_true(tether_session_is_new(s));
  assert_string_not_equal(tether_session_id(s), sid);
  tether_session_free(s);
  tether_store_metrics(st, &after);
  assert_int_equal(after.missing, before.missing + 1);
}

static void test_corrupt(void **state) {
  (void)state;
  tether_store *st = open_ok(srv.url);
  tether_sessions *m = make_sessions(st);
  redisContext *c = raw_connect(srv.port);
  char sid[TETHER_SID_LEN + 1], key[64];
  log_capture_start();

  /* a list at the key */
  tether_session_id_generate(sid);
  snprintf(key, sizeof(key), "sess:%s", sid);
  freeReplyObject(raw(c, "RPUSH %s a b", key));
  char *json = NULL;
  assert_int_equal(tether_store_get(st, sid, &json, NULL), TETHER_ECORRUPT);
  assert_null(json);
  assert_non_null(strstr(tether_last_error(), "not a string"));
  assert_null(strstr(tether_last_error(), sid)); /* the full id is a credential */
  expect_new_session(st, m, sid);

  /* a string that is not JSON */
  tether_session_id_generate(sid);
  snprintf(key, sizeof(key), "sess:%s", sid);
  freeReplyObject(raw(c, "SET %s %s", key, "not json {"));
  get_expect(st, sid, "not json {");
  expect_new_session(st, m, sid);
  log_capture_stop();
  assert_non_null(strstr(log_text, "not a string"));

  redisFree(c);
  tether_sessions_free(m);
  tether_store_close(st);
}

/* A 50 MB value under a session's key: a new session, quickly, and counted. */
static void test_oversized_value(void **state) {
  (void)state;
  tether_store *st = open_ok(srv.url);
  tt_oversized_session(st);
  tether_store_close(st);
}

int main(void) {
  if (tt_redis_start(&srv, 0) != 0) return 1;
  int failed = tt_conformance_run("redis conformance", srv.url);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_wire_format),
      cmocka_unit_test_teardown(test_auth, cleanup_extra),
      cmocka_unit_test(test_db),
      cmocka_unit_test(test_bad_urls),
      cmocka_unit_test_teardown(test_restart, cleanup_extra),
      cmocka_unit_test_teardown(test_hung_server, cleanup_extra),
      cmocka_unit_test_teardown(test_pool_bound, cleanup_extra),
      cmocka_unit_test_teardown(test_corrupt, cleanup_extra),
      cmocka_unit_test(test_oversized_value),
  };
  failed += cmocka_run_group_tests_name("redis", tests, NULL, NULL);
  tt_server_cleanup(&srv);
  return failed ? 1 : 0;
}
