/* Stores on a libuv loop (tether/store_async.h) against a real redis-server: the native pipelined client
 * (values readable by the blocking store and the other way round, connect-redis's TTLs, many commands in
 * flight answered in order, AUTH and SELECT, a value that is not a session, the server killed and
 * restarted, the server hung past the timeout, close with commands pending) and the thread-pool path for
 * another store (sqlite). */
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
#include <uv.h>

#include "conformance_async.h"
#include "procs.h"
#include "session_test.h"
#include "tether/session.h"
#include "tether/store.h"
#include "tether/store_async.h"

static tt_server srv;
static uv_loop_t loop;

typedef struct result {
  int done, rc;
  char *json;
  size_t len;
  int order; /* when it completed, among the results of one test */
} result;

static int completions;

static void got(void *arg, int rc, char *json, size_t len) {
  result *r = arg;
  r->done = 1;
  r->rc = rc;
  r->json = json;
  r->len = len;
  r->order = completions++;
  if (rc < 0 && rc != TETHER_ENOTFOUND) assert_true(tether_last_error()[0] != '\0');
}

static void done(void *arg, int rc) { got(arg, rc, NULL, 0); }

/* Runs the loop until *n results are done or ms pass; returns the results done. */
static void run_until(result *res, int n, int ms) {
  uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000;
  for (;;) {
    int all = 1;
    for (int i = 0; i < n; i++) all &= res[i].done;
    if (all) return;
    if (uv_hrtime() > end) fail_msg("results not done within %d ms", ms);
    uv_run(&loop, UV_RUN_NOWAIT);
    tt_sleep_ms(1);
  }
}

static void drain_loop(void) {
  for (int i = 0; i < 2000 && uv_run(&loop, UV_RUN_NOWAIT); i++) tt_sleep_ms(1);
}

static tether_astore *open_async(const char *url) {
  tether_astore *a = NULL;
  int rc = tether_astore_open(&loop, url, &a);
  if (rc < 0) fail_msg("open %s: %s", url, tether_last_error());
  return a;
}

static redisContext *raw_connect(int port) {
  redisContext *c = redisConnect("127.0.0.1", port);
  assert_non_null(c);
  if (c->err) fail_msg("hiredis: %s", c->errstr);
  return c;
}

static void new_sid(char *sid) { tether_session_id_generate(sid); }

static void test_round_trip_and_wire_format(void **state) {
  (void)state;
  tether_astore *a = open_async(srv.url);
  assert_true(tether_astore_native(a));
  assert_string_equal(tether_store_kind(tether_astore_store(a)), "redis");
  char sid[TETHER_SID_LEN + 1];
  new_sid(sid);
  const char *json = "{\"cookie\":{\"originalMaxAge\":60000},\"visits\":1,\"bytes\":\"\\u0000\\r\\n*$\"}";
  result r[6] = {{0}};
  int64_t expires = tether_now_ms() + 60000;
  assert_int_equal(tether_astore_get(a, sid, got, &r[0]), 0); /* before it exists */
  assert_int_equal(tether_astore_set(a, sid, json, strlen(json), expires, done, &r[1]), 0);
  assert_int_equal(tether_astore_get(a, sid, got, &r[2]), 0);
  run_until(r, 3, 5000);
  assert_int_equal(r[0].rc, TETHER_ENOTFOUND);
  assert_null(r[0].json);
  assert_int_equal(r[1].rc, 0);
  assert_int_equal(r[2].rc, 0);
  assert_int_equal(r[2].len, strlen(json));
  assert_string_equal(r[2].json, json);
  free(r[2].json);

  /* connect-redis's key and TTL, read by the blocking store and by hiredis */
  redisContext *c = raw_connect(srv.port);
  redisReply *t = redisCommand(c, "TTL sess:%s", sid);
  assert_true(t->integer >= 59 && t->integer <= 60);
  freeReplyObject(t);
  tether_store *st = NULL;
  assert_int_equal(tether_store_open(srv.url, &st), 0);
  char *back = NULL;
  size_t blen = 0;
  assert_int_equal(tether_store_get(st, sid, &back, &blen), 0);
  assert_string_equal(back, json);
  free(back);
  /* and the other way round, then touch (EXPIRE) and destroy (DEL) */
  assert_int_equal(tether_store_set(st, sid, "{\"cookie\":{},\"b\":2}", 19, 0), 0);
  assert_int_equal(tether_astore_get(a, sid, got, &r[3]), 0);
  assert_int_equal(tether_astore_touch(a, sid, "{}", 2, tether_now_ms() + 5000, done, &r[4]), 0);
  run_until(r + 3, 2, 5000);
  assert_string_equal(r[3].json, "{\"cookie\":{},\"b\":2}");
  free(r[3].json);
  assert_int_equal(r[4].rc, 0);
  t = redisCommand(c, "TTL sess:%s", sid);
  assert_true(t->integer >= 4 && t->integer <= 5);
  freeReplyObject(t);
  assert_int_equal(tether_astore_destroy(a, sid, done, &r[5]), 0);
  run_until(r + 5, 1, 5000);
  assert_int_equal(r[5].rc, 0);
  assert_int_equal(tether_store_get(st, sid, &back, &blen), TETHER_ENOTFOUND);

  /* metrics are the store's */
  tether_metrics m;
  tether_store_metrics(tether_astore_store(a), &m);
  assert_int_equal(m.saved, 1);
  assert_int_equal(m.touched, 1);
  assert_int_equal(m.destroyed, 1);
  assert_int_equal(m.latency[TETHER_OP_GET].count, 3);

  /* bad ids are refused at once, without a callback */
  result never = {0};
  assert_int_equal(tether_astore_get(a, "../etc", got, &never), TETHER_EINVAL);
  assert_int_equal(tether_astore_set(a, "", "{}", 2, 0, done, &never), TETHER_EINVAL);
  drain_loop();
  assert_false(never.done);
  tether_store_close(st);
  redisFree(c);
  tether_astore_close(a);
  drain_loop();
}

/* The server closes an idle connection (its timeout, a proxy, CLIENT KILL): the next call reconnects at
 * once; it is not an outage to back off from. */
static void test_idle_close_is_not_an_outage(void **state) {
  (void)state;
  tether_astore *a = open_async(srv.url);
  char sid[TETHER_SID_LEN + 1];
  new_sid(sid);
  result r[2] = {{0}};
  assert_int_equal(tether_astore_get(a, sid, got, &r[0]), 0);
  run_until(r, 1, 5000);
  assert_int_equal(r[0].rc, TETHER_ENOTFOUND);
  redisContext *c = raw_connect(srv.port);
  freeReplyObject(redisCommand(c, "CLIENT KILL TYPE normal SKIPME yes"));
  redisFree(c);
  for (int i = 0; i < 20; i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    tt_sleep_ms(1);
  }
  int rc = tether_astore_get(a, sid, got, &r[1]);
  if (rc < 0) fail_msg("refused after an idle close: %s", tether_last_error());
  run_until(r + 1, 1, 5000);
  assert_int_equal(r[1].rc, TETHER_ENOTFOUND);
  tether_astore_close(a);
  drain_loop();
}

/* 2000 commands issued in one turn: one connection, all answered, in order, each with its own value. */
static void test_pipelined_in_order(void **state) {
  (void)state;
  enum { N = 1000 };
  tether_astore *a = open_async(srv.url);
  static result res[2 * N];
  static char sids[N][TETHER_SID_LEN + 1];
  memset(res, 0, sizeof(res));
  completions = 0;
  redisContext *c = raw_connect(srv.port);
  redisReply *before = redisCommand(c, "INFO clients");
  freeReplyObject(before);
  for (int i = 0; i < N; i++) {
    new_sid(sids[i]);
    char json[64];
    int n = snprintf(json, sizeof(json), "{\"cookie\":{},\"i\":%d}", i);
    assert_int_equal(tether_astore_set(a, sids[i], json, (size_t)n, 0, done, &res[2 * i]), 0);
    assert_int_equal(tether_astore_get(a, sids[i], got, &res[2 * i + 1]), 0);
  }
  run_until(res, 2 * N, 20000);
  for (int i = 0; i < N; i++) {
    char json[64];
    snprintf(json, sizeof(json), "{\"cookie\":{},\"i\":%d}", i);
    assert_int_equal(res[2 * i].rc, 0);
    assert_int_equal(res[2 * i + 1].rc, 0);
    assert_string_equal(res[2 * i + 1].json, json);
    assert_int_equal(res[2 * i].order, 2 * i);
    assert_int_equal(res[2 * i + 1].order, 2 * i + 1);
    free(res[2 * i + 1].json);
  }
  /* one client connection did it all (plus ours) */
  redisReply *info = redisCommand(c, "CLIENT LIST");
  int conns = 0;
  for (const char *p = info->str; (p = strstr(p, "id=")) != NULL; p++) conns++;
  freeReplyObject(info);
  assert_int_equal(conns, 2);
  redisFree(c);
  tether_astore_close(a);
  drain_loop();
}

static void test_auth_and_select(void **state) {
  (void)state;
  tt_server a = {0};
  assert_int_equal(tt_redis_start(&a, 0), 0);
  redisContext *c = raw_connect(a.port);
  freeReplyObject(redisCommand(c, "ACL SETUSER alice on >wonderland ~* &* +@all"));
  freeReplyObject(redisCommand(c, "CONFIG SET requirepass %s", "s3cret-pw"));
  redisFree(c);
  char url[256], sid[TETHER_SID_LEN + 1];
  new_sid(sid);
  result r[4] = {{0}};
  snprintf(url, sizeof(url), "redis://alice:wonderland@127.0.0.1:%d/3", a.port);
  tether_astore *as = open_async(url);
  assert_int_equal(tether_astore_set(as, sid, "{\"cookie\":{}}", 13, 0, done, &r[0]), 0);
  run_until(r, 1, 5000);
  assert_int_equal(r[0].rc, 0);
  tether_astore_close(as);
  /* it went to database 3 */
  c = raw_connect(a.port);
  freeReplyObject(redisCommand(c, "AUTH s3cret-pw"));
  freeReplyObject(redisCommand(c, "SELECT 3"));
  redisReply *e = redisCommand(c, "EXISTS sess:%s", sid);
  assert_int_equal(e->integer, 1);
  freeReplyObject(e);
  /* a value that is not a string is corrupt, not a crash */
  freeReplyObject(redisCommand(c, "LPUSH sess:listy x"));
  redisFree(c);
  snprintf(url, sizeof(url), "redis://:s3cret-pw@127.0.0.1:%d/3", a.port);
  as = open_async(url);
  assert_int_equal(tether_astore_get(as, "listy", got, &r[1]), 0);
  run_until(r + 1, 1, 5000);
  assert_int_equal(r[1].rc, TETHER_ECORRUPT);
  tether_astore_close(as);
  /* a wrong password fails the commands with the server's reason, never showing the password */
  snprintf(url, sizeof(url), "redis://:wrong-pw-1234@127.0.0.1:%d", a.port);
  as = open_async(url);
  assert_int_equal(tether_astore_get(as, sid, got, &r[2]), 0);
  run_until(r + 2, 1, 5000);
  assert_int_equal(r[2].rc, TETHER_EUNAVAIL);
  assert_non_null(strstr(tether_last_error(), "setup"));
  assert_null(strstr(tether_last_error(), "wrong-pw-1234"));
  tether_astore_close(as);
  drain_loop();
  tt_server_stop(&a, SIGTERM);
  tt_server_cleanup(&a);
}

/* The server killed with commands in flight: they fail, calls fail fast while backing off, and the
 * handle works again once the server is back. */
static void test_server_killed_and_back(void **state) {
  (void)state;
  tt_server k = {0};
  assert_int_equal(tt_redis_start(&k, 0), 0);
  tether_astore *a = open_async(k.url);
  char sid[TETHER_SID_LEN + 1];
  new_sid(sid);
  result r[3] = {{0}};
  assert_int_equal(tether_astore_set(a, sid, "{\"cookie\":{}}", 13, 0, done, &r[0]), 0);
  run_until(r, 1, 5000);
  assert_int_equal(r[0].rc, 0);
  int port = k.port;
  tt_server_stop(&k, SIGKILL);
  assert_int_equal(tether_astore_get(a, sid, got, &r[1]), 0);
  run_until(r + 1, 1, 5000);
  assert_int_equal(r[1].rc, TETHER_EUNAVAIL);
  print_message("server gone: %s\n", tether_last_error());
  /* while backing off: refused at once */
  result fast = {0};
  int rc = tether_astore_get(a, sid, got, &fast);
  assert_true(rc == TETHER_EUNAVAIL || rc == 0);
  if (rc == 0) run_until(&fast, 1, 5000);
  tt_server_cleanup(&k);
  assert_int_equal(tt_redis_start(&k, port), 0);
  /* back: within the longest backoff the calls succeed again (the data died with the server) */
  uint64_t end = uv_hrtime() + 5000000000ull;
  int ok = 0;
  while (!ok && uv_hrtime() < end) {
    result t = {0};
    if (tether_astore_get(a, sid, got, &t) == 0) {
      run_until(&t, 1, 5000);
      ok = t.rc == TETHER_ENOTFOUND;
    }
    if (!ok) {
      uv_run(&loop, UV_RUN_NOWAIT);
      tt_sleep_ms(20);
    }
  }
  assert_true(ok);
  assert_int_equal(tether_astore_set(a, sid, "{\"cookie\":{}}", 13, 0, done, &r[2]), 0);
  run_until(r + 2, 1, 5000);
  assert_int_equal(r[2].rc, 0);
  tether_astore_close(a);
  drain_loop();
  tt_server_stop(&k, SIGTERM);
  tt_server_cleanup(&k);
}

/* A hung server (SIGSTOP): the commands fail with a timeout after timeout_ms, not forever. */
static void test_hung_server_times_out(void **state) {
  (void)state;
  tt_server h = {0};
  assert_int_equal(tt_redis_start(&h, 0), 0);
  char url[600], sid[TETHER_SID_LEN + 1];
  snprintf(url, sizeof(url), "%s?timeout_ms=300", h.url);
  tether_astore *a = open_async(url);
  new_sid(sid);
  result r[3] = {{0}};
  assert_int_equal(tether_astore_set(a, sid, "{\"cookie\":{}}", 13, 0, done, &r[0]), 0);
  run_until(r, 1, 5000);
  kill(h.pid, SIGSTOP);
  uint64_t t0 = uv_hrtime();
  assert_int_equal(tether_astore_get(a, sid, got, &r[1]), 0);
  assert_int_equal(tether_astore_get(a, sid, got, &r[2]), 0);
  run_until(r + 1, 2, 5000);
  double ms = (double)(uv_hrtime() - t0) / 1e6;
  print_message("hung server: both failed after %.0f ms: %s\n", ms, tether_last_error());
  assert_int_equal(r[1].rc, TETHER_ETIMEDOUT);
  assert_int_equal(r[2].rc, TETHER_ETIMEDOUT);
  assert_true(ms >= 250 && ms < 2000);
  kill(h.pid, SIGCONT);
  tether_astore_close(a);
  drain_loop();
  tt_server_stop(&h, SIGTERM);
  tt_server_cleanup(&h);
}

/* Close with commands pending: each callback runs once with an error, nothing leaks. */
static void test_close_with_pending(void **state) {
  (void)state;
  tether_astore *a = open_async(srv.url);
  char sid[TETHER_SID_LEN + 1];
  new_sid(sid);
  result r[50] = {{0}};
  for (int i = 0; i < 50; i++) assert_int_equal(tether_astore_get(a, sid, got, &r[i]), 0);
  tether_astore_close(a);
  for (int i = 0; i < 50; i++) {
    assert_true(r[i].done);
    assert_int_equal(r[i].rc, TETHER_EUNAVAIL);
  }
  drain_loop();
}

static void test_thread_pool_store(void **state) {
  (void)state;
  char *dir = tt_tmpdir("astore");
  char url[512], sid[TETHER_SID_LEN + 1];
  snprintf(url, sizeof(url), "sqlite:%s/s.db", dir);
  tether_astore *a = open_async(url);
  assert_false(tether_astore_native(a));
  new_sid(sid);
  result r[5] = {{0}};
  assert_int_equal(tether_astore_set(a, sid, "{\"cookie\":{},\"v\":1}", 19, tether_now_ms() + 60000, done, &r[0]), 0);
  run_until(r, 1, 5000);
  assert_int_equal(r[0].rc, 0);
  assert_int_equal(tether_astore_get(a, sid, got, &r[1]), 0);
  assert_int_equal(tether_astore_touch(a, sid, "{\"cookie\":{},\"v\":1}", 19, tether_now_ms() + 60000, done, &r[2]), 0);
  run_until(r + 1, 2, 5000);
  assert_string_equal(r[1].json, "{\"cookie\":{},\"v\":1}");
  free(r[1].json);
  assert_int_equal(r[2].rc, 0);
  assert_int_equal(tether_astore_destroy(a, sid, done, &r[3]), 0);
  run_until(r + 3, 1, 5000);
  assert_int_equal(tether_astore_get(a, sid, got, &r[4]), 0);
  run_until(r + 4, 1, 5000);
  assert_int_equal(r[4].rc, TETHER_ENOTFOUND);
  /* an error's message crosses from the pool's thread */
  tether_astore *bad = NULL;
  assert_int_equal(tether_astore_open(&loop, "sqlite:/proc/no/such/dir/s.db", &bad) < 0 || bad != NULL, 1);
  if (bad) {
    result e = {0};
    assert_int_equal(tether_astore_get(bad, sid, got, &e), 0);
    run_until(&e, 1, 5000);
    assert_true(e.rc < 0 && e.rc != TETHER_ENOTFOUND);
    assert_true(strlen(tether_last_error()) > 0);
    tether_astore_close(bad);
  }
  tether_astore_close(a);
  drain_loop();
  assert_int_equal(tether_astore_open(&loop, "nosuch://x", &bad), TETHER_EINVAL);
  tt_rmrf(dir);
  free(dir);
}

/* The session API on the loop: what the blocking calls do, with the same rules and the same wire data. */
typedef struct sres {
  int done, rc;
  tether_session *s;
  char *set_cookie;
} sres;

static void s_loaded(void *arg, int rc, tether_session *s) {
  sres *r = arg;
  r->done = 1;
  r->rc = rc;
  r->s = s;
}

static void s_committed(void *arg, int rc, char *set_cookie) {
  sres *r = arg;
  r->done = 1;
  r->rc = rc;
  r->set_cookie = set_cookie;
}

static void s_done(void *arg, int rc) {
  sres *r = arg;
  r->done = 1;
  r->rc = rc;
}

static void wait_s(sres *r) {
  uint64_t end = uv_hrtime() + 5000000000ull;
  while (!r->done && uv_hrtime() < end) {
    uv_run(&loop, UV_RUN_NOWAIT);
    tt_sleep_ms(1);
  }
  assert_true(r->done);
}

static void test_sessions_on_the_loop(void **state) {
  (void)state;
  tether_store *st = NULL;
  assert_int_equal(tether_store_open(srv.url, &st), 0);
  tether_session_options o;
  tether_session_options_init(&o);
  o.secret[0] = "loop-secret";
  o.secret_count = 1;
  o.cookie.max_age_ms = 60000;
  o.store = st;
  tether_sessions *m = NULL;
  assert_int_equal(tether_sessions_new(&o, &m), 0);
  tether_astore *a = NULL;
  assert_int_equal(tether_astore_wrap(&loop, st, &a), 0);
  assert_true(tether_astore_native(a));

  /* a new session: nothing to fetch, modified, saved, a cookie */
  sres r = {0};
  assert_int_equal(tether_session_load_async(m, a, NULL, s_loaded, &r), 0);
  wait_s(&r);
  assert_int_equal(r.rc, 0);
  tether_session *s = r.s;
  assert_true(tether_session_is_new(s));
  tether_session_set_int(s, "visits", 1);
  sres c = {0};
  assert_int_equal(tether_session_commit_async(s, a, s_committed, &c), 0);
  wait_s(&c);
  assert_int_equal(c.rc, 0);
  assert_non_null(c.set_cookie);
  char cookie[512];
  snprintf(cookie, sizeof(cookie), "%.*s", (int)strcspn(c.set_cookie, ";"), c.set_cookie);
  free(c.set_cookie);
  char sid[TETHER_SID_LEN + 1];
  snprintf(sid, sizeof(sid), "%s", tether_session_id(s));
  tether_session_free(s);

  /* read back by the blocking API; then loaded on the loop, unmodified: touched (EXPIRE), no cookie */
  tether_session *b = NULL;
  assert_int_equal(tether_session_load(m, cookie, &b), 0);
  assert_false(tether_session_is_new(b));
  assert_int_equal(session_int(b, "visits"), 1);
  tether_session_free(b);
  memset(&r, 0, sizeof(r));
  assert_int_equal(tether_session_load_async(m, a, cookie, s_loaded, &r), 0);
  wait_s(&r);
  assert_int_equal(r.rc, 0);
  assert_false(tether_session_is_new(r.s));
  memset(&c, 0, sizeof(c));
  assert_int_equal(tether_session_commit_async(r.s, a, s_committed, &c), 0);
  wait_s(&c);
  assert_int_equal(c.rc, 0);
  assert_null(c.set_cookie);
  tether_metrics mt;
  tether_store_metrics(st, &mt);
  assert_int_equal(mt.touched, 1);

  /* regenerate: the old id is gone from the store, a new one is saved with a new cookie */
  sres g = {0};
  assert_int_equal(tether_session_regenerate_async(r.s, a, s_done, &g), 0);
  wait_s(&g);
  assert_int_equal(g.rc, 0);
  assert_string_not_equal(tether_session_id(r.s), sid);
  tether_session_set_string(r.s, "user", "alice");
  memset(&c, 0, sizeof(c));
  assert_int_equal(tether_session_commit_async(r.s, a, s_committed, &c), 0);
  wait_s(&c);
  assert_non_null(c.set_cookie);
  free(c.set_cookie);
  char *json = NULL;
  size_t len = 0;
  assert_int_equal(tether_store_get(st, sid, &json, &len), TETHER_ENOTFOUND);
  snprintf(sid, sizeof(sid), "%s", tether_session_id(r.s));
  assert_int_equal(tether_store_get(st, sid, &json, &len), 0);
  assert_non_null(strstr(json, "\"user\":\"alice\""));
  free(json);
  /* destroy: gone, and commit writes nothing */
  memset(&g, 0, sizeof(g));
  assert_int_equal(tether_session_destroy_async(r.s, a, s_done, &g), 0);
  wait_s(&g);
  assert_int_equal(g.rc, 0);
  memset(&c, 0, sizeof(c));
  assert_int_equal(tether_session_commit_async(r.s, a, s_committed, &c), 0);
  wait_s(&c);
  assert_null(c.set_cookie);
  assert_int_equal(tether_store_get(st, sid, &json, &len), TETHER_ENOTFOUND);
  tether_session_free(r.s);

  /* a round trip for health checks */
  sres p = {0};
  assert_int_equal(tether_astore_ping(a, s_done, &p), 0);
  wait_s(&p);
  assert_int_equal(p.rc, 0);
  tether_astore_close(a);
  drain_loop();
  tether_sessions_free(m);
  tether_store_close(st);
}

/* A logout racing 3 in-flight requests on the loop: their commits (update-only writes) find the session
 * gone, write nothing, send no cookie and are counted; the store does not have the session afterwards. */
static void logout_race_on(const char *url) {
  tether_store *st = NULL;
  assert_int_equal(tether_store_open(url, &st), 0);
  tether_session_options o;
  tether_session_options_init(&o);
  o.secret[0] = "loop-secret";
  o.secret_count = 1;
  o.cookie.max_age_ms = 60000;
  o.store = st;
  tether_sessions *m = NULL;
  assert_int_equal(tether_sessions_new(&o, &m), 0);
  tether_astore *a = NULL;
  assert_int_equal(tether_astore_wrap(&loop, st, &a), 0);
  sres r = {0}, c = {0};
  assert_int_equal(tether_session_load_async(m, a, NULL, s_loaded, &r), 0);
  wait_s(&r);
  tether_session_set_string(r.s, "user", "bob");
  assert_int_equal(tether_session_commit_async(r.s, a, s_committed, &c), 0);
  wait_s(&c);
  assert_non_null(c.set_cookie);
  char cookie[512], sid[TETHER_SID_LEN + 1];
  snprintf(cookie, sizeof(cookie), "%.*s", (int)strcspn(c.set_cookie, ";"), c.set_cookie);
  snprintf(sid, sizeof(sid), "%s", tether_session_id(r.s));
  free(c.set_cookie);
  tether_session_free(r.s);

  enum { N = 3 };
  sres in[N] = {{0}}, done_[N] = {{0}};
  for (int i = 0; i < N; i++) {
    assert_int_equal(tether_session_load_async(m, a, cookie, s_loaded, &in[i]), 0);
    wait_s(&in[i]);
    assert_int_equal(in[i].rc, 0);
    assert_false(tether_session_is_new(in[i].s));
    tether_session_set_int(in[i].s, "cart", i);
  }
  sres lo = {0}, g = {0};
  assert_int_equal(tether_session_load_async(m, a, cookie, s_loaded, &lo), 0);
  wait_s(&lo);
  assert_int_equal(tether_session_destroy_async(lo.s, a, s_done, &g), 0);
  wait_s(&g);
  assert_int_equal(g.rc, 0);
  tether_session_free(lo.s);
  tether_metrics before, after;
  tether_store_metrics(st, &before);
  for (int i = 0; i < N; i++) assert_int_equal(tether_session_commit_async(in[i].s, a, s_committed, &done_[i]), 0);
  for (int i = 0; i < N; i++) {
    wait_s(&done_[i]);
    assert_int_equal(done_[i].rc, 0);
    assert_null(done_[i].set_cookie);
    tether_session_free(in[i].s);
  }
  char *json = NULL;
  size_t len = 0;
  assert_int_equal(tether_store_get(st, sid, &json, &len), TETHER_ENOTFOUND);
  tether_store_metrics(st, &after);
  assert_int_equal(after.revoked, before.revoked + N);
  tether_astore_close(a);
  drain_loop();
  tether_sessions_free(m);
  tether_store_close(st);
}

static void test_logout_race_on_the_loop(void **state) {
  (void)state;
  logout_race_on(srv.url); /* the native client: SET ... XX */
  char *dir = tt_tmpdir("astore-race");
  char url[512];
  snprintf(url, sizeof(url), "sqlite:%s/s.db", dir);
  logout_race_on(url); /* the thread pool */
  tt_rmrf(dir);
  free(dir);
}

static int setup(void **state) {
  (void)state;
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&loop);
  return tt_redis_start(&srv, 0);
}

static int teardown(void **state) {
  (void)state;
  drain_loop();
  tt_server_stop(&srv, SIGTERM);
  tt_server_cleanup(&srv);
  return uv_loop_close(&loop) == 0 ? 0 : -1;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip_and_wire_format), cmocka_unit_test(test_idle_close_is_not_an_outage),
      cmocka_unit_test(test_pipelined_in_order),         cmocka_unit_test(test_auth_and_select),
      cmocka_unit_test(test_server_killed_and_back),     cmocka_unit_test(test_hung_server_times_out),
      cmocka_unit_test(test_close_with_pending),         cmocka_unit_test(test_thread_pool_store),
      cmocka_unit_test(test_sessions_on_the_loop),       cmocka_unit_test(test_logout_race_on_the_loop),
  };
  int failed = cmocka_run_group_tests_name("store_async", tests, setup, teardown);
  /* the async conformance suite: the native client, and a store on the thread pool */
  tt_server r = {0};
  if (tt_redis_start(&r, 0) != 0) return 1;
  failed += tt_conformance_async_run("redis async conformance", r.url);
  tt_server_cleanup(&r);
  char *dir = tt_tmpdir("astore"), url[600];
  snprintf(url, sizeof(url), "sqlite:%s/conformance.db", dir);
  failed += tt_conformance_async_run("sqlite (thread pool) async conformance", url);
  tt_rmrf(dir);
  free(dir);
  return failed ? 1 : 0;
}
