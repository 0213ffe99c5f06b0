/* The redis-sentinel store against real servers: a master, a replica and three sentinels (quorum 2).
 * Conformance through the sentinels, discovery details, then a failover: the master is killed, the
 * sentinels promote the replica, and the store finds it by itself with the sessions that had
 * replicated. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "conformance.h"
#include "procs.h"
#include "tether/session.h"
#include "tether/store.h"

#define MASTER_NAME "mymaster"

static tt_server master, replica, sentinels[3];
static char url[1024]; /* redis-sentinel://s1,s2,s3/mymaster */

/* ---- helpers ---- */

static redisContext *raw_connect(int port) {
  struct timeval tv = {2, 0};
  redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
  if (c == NULL || c->err) {
    if (c) redisFree(c);
    return NULL;
  }
  redisSetTimeout(c, tv);
  return c;
}

/* A command's reply on a short-lived connection, or NULL. */
static redisReply *raw_once(int port, const char *fmt, ...) {
  redisContext *c = raw_connect(port);
  if (c == NULL) return NULL;
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = redisvCommand(c, fmt, ap);
  va_end(ap);
  redisFree(c);
  return r;
}

/* The number of elements of an array reply (-1 on anything else). */
static int raw_count(int port, const char *fmt) {
  redisReply *r = raw_once(port, fmt);
  int n = r && r->type == REDIS_REPLY_ARRAY ? (int)r->elements : -1;
  if (r) freeReplyObject(r);
  return n;
}

static int info_has(int port, const char *section, const char *needle) {
  redisReply *r = raw_once(port, "INFO %s", section);
  int ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, needle) != NULL;
  if (r) freeReplyObject(r);
  return ok;
}

/* The port the sentinel on sport names as the master, or 0. */
static int sentinel_master_port(int sport) {
  redisReply *r = raw_once(sport, "SENTINEL get-master-addr-by-name %s", MASTER_NAME);
  int port = 0;
  if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[1]->type == REDIS_REPLY_STRING)
    port = atoi(r->element[1]->str);
  if (r) freeReplyObject(r);
  return port;
}

/* Waits (bounded) until replication is up and each sentinel knows the replica and the two other
 * sentinels, which a failover needs. */
static int wait_topology(int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 100) {
    int ok = info_has(master.port, "replication", "connected_slaves:1") &&
             info_has(replica.port, "replication", "master_link_status:up");
    for (int i = 0; ok && i < 3; i++) {
      ok = raw_count(sentinels[i].port, "SENTINEL replicas " MASTER_NAME) == 1 &&
           raw_count(sentinels[i].port, "SENTINEL sentinels " MASTER_NAME) == 2;
    }
    if (ok) return 1;
    tt_sleep_ms(100);
  }
  return 0;
}

static tether_store *open_ok(const char *u) {
  tether_store *st = NULL;
  int rc = tether_store_open(u, &st);
  if (rc < 0) fail_msg("open %s: %s", u, tether_last_error());
  return st;
}

static int set_json(tether_store *st, const char *sid, const char *json) {
  return tether_store_set(st, sid, json, strlen(json), tether_now_ms() + 600000);
}

/* ---- tests ---- */

/* The store writes to the master the sentinels name, with the usual key and TTL. */
static void test_discovery(void **state) {
  (void)state;
  tether_store *st = open_ok(url);
  assert_string_equal(tether_store_kind(st), "redis-sentinel");
  char sid[TETHER_SID_LEN + 1];
  tether_session_id_generate(sid);
  assert_int_equal(set_json(st, sid, "{\"cookie\":{},\"d\":1}"), 0);
  redisReply *r = raw_once(master.port, "GET sess:%s", sid);
  assert_non_null(r);
  assert_int_equal(r->type, REDIS_REPLY_STRING);
  assert_string_equal(r->str, "{\"cookie\":{},\"d\":1}");
  freeReplyObject(r);
  tether_store_close(st);
}

/* A dead sentinel first in the list: the next one answers. */
static void test_dead_sentinel(void **state) {
  (void)state;
  char u[1024];
  int dead = tt_free_port();
  snprintf(u, sizeof(u), "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d/" MASTER_NAME "/2", dead, sentinels[1].port);
  tether_store *st = open_ok(u);
  char sid[TETHER_SID_LEN + 1];
  tether_session_id_generate(sid);
  assert_int_equal(set_json(st, sid, "{\"cookie\":{},\"db\":2}"), 0);
  redisContext *c = raw_connect(master.port);
  assert_non_null(c);
  freeReplyObject(redisCommand(c, "SELECT 2"));
  redisReply *r = redisCommand(c, "GET sess:%s", sid);
  assert_non_null(r);
  assert_int_equal(r->type, REDIS_REPLY_STRING);
  freeReplyObject(r);
  redisFree(c);
  tether_store_close(st);
}

/* Sentinels that do not monitor that name, or none that answer: a clear error, quickly. */
static void test_unknown_master(void **state) {
  (void)state;
  char u[1024];
  snprintf(u, sizeof(u), "redis-sentinel://127.0.0.1:%d/othername", sentinels[0].port);
  tether_store *st = open_ok(u);
  tether_log_set_level(TETHER_LOG_ERROR);
  assert_int_equal(tether_store_ping(st), TETHER_EUNAVAIL);
  assert_non_null(strstr(tether_last_error(), "othername"));
  tether_store_close(st);

  snprintf(u, sizeof(u), "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d/" MASTER_NAME, tt_free_port(), tt_free_port());
  st = open_ok(u);
  int64_t t0 = tether_now_ms();
  assert_int_equal(tether_store_ping(st), TETHER_EUNAVAIL);
  assert_true(tether_now_ms() - t0 < 2000);
  assert_non_null(strstr(tether_last_error(), "no sentinel named the master"));
  assert_non_null(strstr(tether_last_error(), "Connection refused"));
  tether_log_set_level(TETHER_LOG_WARN);
  tether_store_close(st);
}

/* Kill the master: the store carries on with the promoted replica by itself. */
static void test_failover(void **state) {
  (void)state;
  enum { N = 50 };
  tether_store *st = open_ok(url);
  char sids[N][TETHER_SID_LEN + 1], v[128];
  for (int i = 0; i < N; i++) {
    tether_session_id_generate(sids[i]);
    snprintf(v, sizeof(v), "{\"cookie\":{},\"i\":%d}", i);
    int rc = set_json(st, sids[i], v);
    if (rc != 0) fail_msg("set %d: %s", i, tether_last_error());
  }
  /* the sessions reached the replica before the crash */
  redisReply *w = raw_once(master.port, "WAIT 1 2000");
  assert_non_null(w);
  assert_int_equal(w->type, REDIS_REPLY_INTEGER);
  assert_true(w->integer >= 1);
  freeReplyObject(w);

  tether_log_set_level(TETHER_LOG_ERROR);
  int64_t t0 = tether_now_ms();
  tt_server_stop(&master, SIGKILL);
  int ok_writes = 0, failed = 0, rc = -1;
  double slowest = 0;
  int64_t promoted_at = 0; /* when a sentinel first named the replica */
  char sid[TETHER_SID_LEN + 1];
  /* bounded: at most ~30 s, each call bounded by its timeouts */
  for (int i = 0; i < 3000 && tether_now_ms() - t0 < 30000; i++) {
    tether_session_id_generate(sid);
    int64_t c0 = tether_now_ms();
    rc = set_json(st, sid, "{\"cookie\":{},\"after\":1}");
    char *json = NULL;
    int grc = tether_store_get(st, sids[i % N], &json, NULL);
    free(json);
    double dt = (double)(tether_now_ms() - c0) / 1000.0;
    if (dt > slowest) slowest = dt;
    if (rc == 0 && grc == 0) break;
    if (promoted_at == 0 && sentinel_master_port(sentinels[0].port) == replica.port) promoted_at = tether_now_ms();
    if (rc != TETHER_EUNAVAIL && rc != TETHER_ETIMEDOUT && rc != TETHER_ESTORE)
      fail_msg("set during failover: %s (%s)", tether_strerror(rc), tether_last_error());
    failed++;
    tt_sleep_ms(50);
  }
  tether_log_set_level(TETHER_LOG_WARN);
  int64_t back_at = tether_now_ms();
  print_message("failover: writing again %.1f s after the crash, %.1f s after the sentinels named the new master "
                "(%d failed calls, slowest %.2f s)\n",
                (double)(back_at - t0) / 1000.0, promoted_at ? (double)(back_at - promoted_at) / 1000.0 : 0.0, failed,
                slowest);
  if (rc != 0) fail_msg("no write succeeded within 30 s: %s", tether_last_error());
  /* the store notices by itself: within its longest backoff (2 s) of the sentinels knowing */
  if (promoted_at) assert_true(back_at - promoted_at < 3000);
  assert_true(slowest < 5.0);

  /* the replica is now the master, and the store writes there */
  int named = 0;
  for (int i = 0; i < 50 && (named = sentinel_master_port(sentinels[0].port)) != replica.port; i++) tt_sleep_ms(100);
  assert_int_equal(named, replica.port);
  redisReply *r = raw_once(replica.port, "GET sess:%s", sid);
  assert_non_null(r);
  assert_int_equal(r->type, REDIS_REPLY_STRING);
  freeReplyObject(r);

  /* every session written before the crash is there */
  for (int i = 0; i < N; i++) {
    char *json = NULL;
    snprintf(v, sizeof(v), "{\"cookie\":{},\"i\":%d}", i);
    rc = tether_store_get(st, sids[i], &json, NULL);
    if (rc != 0) fail_msg("session %d after failover: %s (%s)", i, tether_strerror(rc), tether_last_error());
    assert_string_equal(json, v);
    free(json);
  }
  /* and it keeps working: writes, touches, deletes */
  for (int i = 0; i < 20; i++) {
    tether_session_id_generate(sid);
    assert_int_equal(set_json(st, sid, "{\"cookie\":{},\"more\":1}"), 0);
    assert_int_equal(tether_store_touch(st, sid, "{}", 2, tether_now_ms() + 60000), 0);
    assert_int_equal(tether_store_destroy(st, sid), 0);
    ok_writes++;
  }
  assert_int_equal(ok_writes, 20);
  assert_int_equal(tether_store_ping(st), 0);
  tether_store_close(st);
}

int main(void) {
  if (tt_redis_start(&master, 0) != 0) return 1;
  if (tt_redis_start_replica(&replica, 0, master.port) != 0) return 1;
  for (int i = 0; i < 3; i++)
    if (tt_sentinel_start(&sentinels[i], 0, MASTER_NAME, master.port, 2) != 0) return 1;
  int rc = 1;
  if (!wait_topology(20000)) {
    fprintf(stderr, "the sentinels did not see the replica and each other within 20 s\n");
    goto out;
  }
  snprintf(url, sizeof(url), "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d/" MASTER_NAME, sentinels[0].port,
           sentinels[1].port, sentinels[2].port);
  int failed = tt_conformance_run("redis-sentinel conformance", url);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_discovery), cmocka_unit_test(test_dead_sentinel), cmocka_unit_test(test_unknown_master),
      cmocka_unit_test(test_failover), /* last: it kills the master */
  };
  failed += cmocka_run_group_tests_name("redis-sentinel", tests, NULL, NULL);
  rc = failed ? 1 : 0;
out:
  for (int i = 0; i < 3; i++) tt_server_cleanup(&sentinels[i]);
  tt_server_cleanup(&replica);
  tt_server_cleanup(&master);
  return rc;
}
