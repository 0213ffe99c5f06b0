/* The redis-cluster store against a real 3+3 Redis Cluster: conformance, hash slots as the server computes
 * them, the wire format on the owning node, every redirect path driven for real (MOVED after a slot moved,
 * ASK during a migration, TRYAGAIN for MGET/DEL across a half-migrated slot, CLUSTERDOWN while a slot is unserved, a
 * seed that refuses connections, a master SIGKILLed with wait=1), metrics, and the password kept out of messages. */
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

#include "cluster_util.h"
#include "conformance.h"
#include "procs.h"
#include "store/cluster.h"
#include "tether/metrics.h"
#include "tether/session.h"
#include "tether/store.h"
#include "tether/store_async.h"
#include <uv.h>

static char url[256];

/* ---- helpers ---- */

static tether_store *open_ok(const char *u) {
  tether_store *st = NULL;
  if (tether_store_open(u, &st) < 0) fail_msg("open %s: %s", u, tether_last_error());
  return st;
}

static void set_ok(tether_store *st, const char *sid, const char *json) {
  int rc = tether_store_set(st, sid, json, strlen(json), 0);
  if (rc != 0) fail_msg("set: %s (%s)", tether_strerror(rc), tether_last_error());
}

static void get_expect(tether_store *st, const char *sid, const char *want) {
  char *json = NULL;
  int rc = tether_store_get(st, sid, &json, NULL);
  if (rc != 0) fail_msg("get: %s (%s)", tether_strerror(rc), tether_last_error());
  assert_string_equal(json, want);
  free(json);
}

/* ---- tests ---- */

static void test_slots(void **state) {
  (void)state;
  assert_int_equal(tether__cluster_slot("123456789", 9), 0x31C3 & 16383); /* CRC16/XMODEM check value */
  const char *keys[] = {"sess:abc",
                        "{user1000}.following",
                        "{user1000}.followers",
                        "foo{}{bar}",
                        "foo{{bar}}zap",
                        "foo{bar}{zap}",
                        "a{",
                        "}b{c}",
                        "sess:{x}y",
                        ""};
  for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
    redisReply *r = raw(nodes[0].port, "CLUSTER KEYSLOT %s", keys[i]);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    if ((unsigned)r->integer != tether__cluster_slot(keys[i], strlen(keys[i])))
      fail_msg("slot of '%s': server %lld, ours %u", keys[i], r->integer,
               tether__cluster_slot(keys[i], strlen(keys[i])));
    freeReplyObject(r);
  }
}

static void test_wire_format(void **state) {
  (void)state;
  tether_store *st = open_ok(url);
  char sid[TETHER_SID_LEN + 1];
  tether_session_id_generate(sid);
  const char *v = "{\"cookie\":{\"originalMaxAge\":60000},\"user\":\"bob\"}";
  assert_int_equal(tether_store_set(st, sid, v, strlen(v), tether_now_ms() + 60000), 0);
  int o = owner(nodes[0].port, sid_slot(sid));
  redisReply *r = raw(nodes[o].port, "GET sess:%s", sid);
  assert_int_equal(r->type, REDIS_REPLY_STRING);
  assert_string_equal(r->str, v);
  freeReplyObject(r);
  r = raw(nodes[o].port, "TTL sess:%s", sid);
  assert_true(r->integer >= 59 && r->integer <= 60);
  freeReplyObject(r);
  assert_string_equal(tether_store_kind(st), "redis-cluster");
  tether_store_close(st);
}

static void test_moved(void **state) {
  (void)state;
  tether_store *st = open_ok(url);
  char sid[TETHER_SID_LEN + 1];
  tether_session_id_generate(sid);
  set_ok(st, sid, "{\"moved\":1}");
  unsigned slot = sid_slot(sid);
  int src = owner(nodes[0].port, slot), dst = other_master(src);
  char *src_id = node_id(nodes[src].port), *dst_id = node_id(nodes[dst].port), s[16], key[160];
  snprintf(s, sizeof(s), "%u", slot);
  snprintf(key, sizeof(key), "sess:%s", sid);
  raw_ok(nodes[dst].port, "CLUSTER SETSLOT %s IMPORTING %s", s, src_id);
  raw_ok(nodes[src].port, "CLUSTER SETSLOT %s MIGRATING %s", s, dst_id);
  redisReply *r = raw(nodes[src].port, "MIGRATE 127.0.0.1 %d %s 0 5000", nodes[dst].port, key);
  assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
  freeReplyObject(r);
  setslot_node(slot, dst_id);
  tether_metrics m0, m1;
  tether_store_metrics(st, &m0);
  get_expect(st, sid, "{\"moved\":1}"); /* the store's map still says src: MOVED */
  set_ok(st, sid, "{\"moved\":2}");
  tether_store_metrics(st, &m1);
  assert_true(m1.redirects >= m0.redirects + 1);
  assert_true(m1.map_refreshes >= m0.map_refreshes + 1);
  assert_int_equal(m1.errors, 0);
  r = raw(nodes[dst].port, "GET %s", key);
  assert_string_equal(r->str, "{\"moved\":2}");
  freeReplyObject(r);
  free(src_id);
  free(dst_id);
  tether_store_close(st);
}

static void test_ask(void **state) {
  (void)state;
  tether_store *st = open_ok(url);
  char a[TETHER_SID_LEN + 1], b[TETHER_SID_LEN + 1];
  tether_session_id_generate(a);
  set_ok(st, a, "{\"ask\":1}");
  unsigned slot = sid_slot(a);
  do /* another session in the same slot, written during the migration */
    tether_session_id_generate(b);
  while (sid_slot(b) != slot);
  int src = owner(nodes[0].port, slot), dst = other_master(src);
  char *src_id = node_id(nodes[src].port), *dst_id = node_id(nodes[dst].port), s[16], key[160];
  snprintf(s, sizeof(s), "%u", slot);
  snprintf(key, sizeof(key), "sess:%s", a);
  raw_ok(nodes[dst].port, "CLUSTER SETSLOT %s IMPORTING %s", s, src_id);
  raw_ok(nodes[src].port, "CLUSTER SETSLOT %s MIGRATING %s", s, dst_id);
  redisReply *r = raw(nodes[src].port, "MIGRATE 127.0.0.1 %d %s 0 5000", nodes[dst].port, key);
  assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
  freeReplyObject(r);
  tether_metrics m0, m1;
  tether_store_metrics(st, &m0);
  get_expect(st, a, "{\"ask\":1}"); /* src no longer has it: ASK dst */
  set_ok(st, b, "{\"ask\":2}");     /* a new key in a migrating slot goes to dst, through ASK */
  tether_store_metrics(st, &m1);
  assert_true(m1.redirects >= m0.redirects + 2);
  assert_int_equal(m1.errors, 0);
  r = raw(nodes[dst].port, "ASKING"); /* (own connection: just to show where b is) */
  freeReplyObject(r);
  setslot_node(slot, dst_id);
  get_expect(st, b, "{\"ask\":2}");
  free(src_id);
  free(dst_id);
  tether_store_close(st);
}

/* ---- TRYAGAIN: a multi-key command whose keys a migration split ---- */

static split mig;
static int mig_delay_ms;

static void *finish_later(void *arg) {
  (void)arg;
  tt_sleep_ms(mig_delay_ms);
  split_finish(&mig);
  return NULL;
}

static int cluster_cmd(tether_store *st, const char *cmd, const char *a, const char *b, redisReply **out) {
  const char *argv[] = {cmd, a, b};
  return tether__cluster_command(st, a, 0, 3, argv, NULL, out);
}

static void test_tryagain(void **state) {
  (void)state;
  char u[300];
  /* a short retry_ms: the command keeps getting TRYAGAIN and gives up with that error */
  split_slot("t1", &mig);
  snprintf(u, sizeof(u), "%s?retry_ms=150", url);
  tether_store *quick = open_ok(u);
  redisReply *rep = NULL;
  int64_t t0 = tether_now_ms();
  int rc = cluster_cmd(quick, "MGET", "{t1}a", "{t1}b", &rep);
  int64_t took = tether_now_ms() - t0;
  assert_int_equal(rc, TETHER_EUNAVAIL);
  assert_null(rep);
  print_message("TRYAGAIN, retry_ms=150: MGET gave up after %lld ms: %s\n", (long long)took, tether_last_error());
  assert_non_null(strstr(tether_last_error(), "MGET: TRYAGAIN"));
  assert_true(took < 1000);
  tether_metrics m;
  tether_store_metrics(quick, &m);
  assert_true(m.tryagain >= 2);
  tether_store_close(quick);
  /* the default retry_ms: TRYAGAIN until the migration ends, then MOVED to the new owner and the answer */
  tether_store *st = open_ok(url);
  const char *which[] = {"MGET", "DEL"};
  const char *tags[] = {"t1", "t2"};
  for (int i = 0; i < 2; i++) {
    char ka[16], kb[16];
    snprintf(ka, sizeof(ka), "{%s}a", tags[i]);
    snprintf(kb, sizeof(kb), "{%s}b", tags[i]);
    if (i > 0) split_slot(tags[i], &mig);
    tether_metrics m0, m1;
    tether_store_metrics(st, &m0);
    pthread_t th;
    mig_delay_ms = 300;
    pthread_create(&th, NULL, finish_later, NULL);
    t0 = tether_now_ms();
    rc = cluster_cmd(st, which[i], ka, kb, &rep);
    took = tether_now_ms() - t0;
    pthread_join(th, NULL);
    if (rc != 0) fail_msg("%s during a migration: %s", which[i], tether_last_error());
    tether_store_metrics(st, &m1);
    print_message("TRYAGAIN, %s: %llu TRYAGAIN and %llu redirects, answered after %lld ms\n", which[i],
                  (unsigned long long)(m1.tryagain - m0.tryagain), (unsigned long long)(m1.redirects - m0.redirects),
                  (long long)took);
    assert_true(m1.tryagain > m0.tryagain);
    assert_true(took >= 250 && took < 2000);
    if (i == 0) {
      assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
      assert_int_equal(rep->elements, 2);
      assert_string_equal(rep->element[0]->str, "A");
      assert_string_equal(rep->element[1]->str, "B");
    } else {
      assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
      assert_int_equal(rep->integer, 2);
    }
    freeReplyObject(rep);
  }
  tether_store_close(st);
}

static int async_done;

static void on_fallback_get(void *arg, int rc, char *json, size_t len) {
  (void)arg, (void)len;
  if (rc != 0) fail_msg("async get with CLUSTER SLOTS only: %s", tether_last_error());
  assert_string_equal(json, "{\"slots\":1}");
  free(json);
  async_done = 1;
}

/* CLUSTER SLOTS when CLUSTER SHARDS is refused: a user whose ACL allows only the older command. */
static void test_slots_fallback(void **state) {
  (void)state;
  for (int k = 0; k < NODES; k++) /* ACLs are per node */
    raw_ok(nodes[k].port, "ACL SETUSER %s on >%s ~* &* +@all -cluster|shards", "old", "oldpw");
  redisContext *c = redisConnect("127.0.0.1", nodes[1].port);
  assert_true(c && !c->err);
  redisReply *r = redisCommand(c, "AUTH old oldpw");
  freeReplyObject(r);
  r = redisCommand(c, "CLUSTER SHARDS"); /* what the store asks first */
  assert_int_equal(r->type, REDIS_REPLY_ERROR);
  assert_true(strncmp(r->str, "NOPERM", 6) == 0);
  freeReplyObject(r);
  redisFree(c);
  char u[300], sid[TETHER_SID_LEN + 1];
  snprintf(u, sizeof(u), "redis-cluster://old:oldpw@127.0.0.1:%d", nodes[1].port);
  tether_store *st = open_ok(u);
  tether_session_id_generate(sid);
  set_ok(st, sid, "{\"slots\":1}");
  get_expect(st, sid, "{\"slots\":1}");
  tether_metrics m;
  tether_store_metrics(st, &m);
  assert_true(m.map_refreshes >= 1);
  assert_int_equal(m.errors, 0);
  tether_store_close(st);
  /* and on the event loop */
  uv_loop_t loop;
  uv_loop_init(&loop);
  tether_astore *a;
  assert_int_equal(tether_astore_open(&loop, u, &a), 0);
  async_done = 0;
  assert_int_equal(tether_astore_get(a, sid, on_fallback_get, NULL), 0);
  while (!async_done) uv_run(&loop, UV_RUN_ONCE);
  tether_astore_close(a);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  for (int k = 0; k < NODES; k++) raw_ok(nodes[k].port, "ACL DELUSER %s%s", "old", "");
}

static unsigned down_slot;
static int down_owner;

static void *readd_later(void *arg) {
  (void)arg;
  tt_sleep_ms(400);
  redisReply *r = raw(nodes[down_owner].port, "CLUSTER ADDSLOTS %u", down_slot);
  freeReplyObject(r);
  return NULL;
}

static void test_clusterdown(void **state) {
  (void)state;
  char sid[TETHER_SID_LEN + 1], u[300];
  tether_session_id_generate(sid);
  tether_store *st = open_ok(url);
  set_ok(st, sid, "{\"down\":1}");
  down_slot = sid_slot(sid);
  down_owner = owner(nodes[0].port, down_slot);
  for (int k = 0; k < NODES; k++) freeReplyObject(raw(nodes[k].port, "CLUSTER DELSLOTS %u", down_slot));
  int failing = 0;
  for (int i = 0; i < 50 && !failing; i++, tt_sleep_ms(50)) {
    redisReply *r = raw(nodes[down_owner].port, "GET sess:%s", sid);
    failing = r->type == REDIS_REPLY_ERROR && strncmp(r->str, "CLUSTERDOWN", 11) == 0;
    freeReplyObject(r);
  }
  assert_true(failing);
  /* a short retry_ms gives up */
  snprintf(u, sizeof(u), "%s?retry_ms=150", url);
  tether_store *quick = open_ok(u);
  int64_t t0 = tether_now_ms();
  char *json = NULL;
  assert_int_equal(tether_store_get(quick, sid, &json, NULL), TETHER_EUNAVAIL);
  assert_true(tether_now_ms() - t0 < 1000);
  tether_store_close(quick);
  /* the default keeps trying through the outage */
  snprintf(u, sizeof(u), "%s?retry_ms=8000", url);
  tether_store *patient = open_ok(u);
  pthread_t th;
  pthread_create(&th, NULL, readd_later, NULL);
  t0 = tether_now_ms();
  get_expect(patient, sid, "{\"down\":1}");
  int64_t took = tether_now_ms() - t0;
  pthread_join(th, NULL);
  print_message("CLUSTERDOWN: the read waited %lld ms for the slot to be served again\n", (long long)took);
  assert_true(took >= 350);
  tether_store_close(patient);
  tether_store_close(st);
  cluster_settle();
}

static void test_refused_seed(void **state) {
  (void)state;
  char u[300];
  snprintf(u, sizeof(u), "redis-cluster://127.0.0.1:%d,127.0.0.1:%d", tt_free_port(), nodes[1].port);
  tether_store *st = open_ok(u);
  char sid[TETHER_SID_LEN + 1];
  tether_session_id_generate(sid);
  set_ok(st, sid, "{\"seed\":1}");
  get_expect(st, sid, "{\"seed\":1}");
  assert_int_equal(tether_store_ping(st), 0);
  char text[16384];
  tether_metrics_prometheus(st, text, sizeof(text));
  assert_non_null(strstr(text, "tether_store_map_refreshes_total{store=\"redis-cluster\"}"));
  assert_non_null(strstr(text, "tether_store_node_latency_seconds_count{store=\"redis-cluster\",node=\"127.0.0.1:"));
  tether_store_close(st);
  /* no seed at all */
  snprintf(u, sizeof(u), "redis-cluster://127.0.0.1:%d?retry_ms=0", tt_free_port());
  st = open_ok(u);
  assert_int_equal(tether_store_set(st, sid, "{}", 2, 0), TETHER_EUNAVAIL);
  assert_non_null(strstr(tether_last_error(), "no node gave a slot map"));
  tether_store_close(st);
}

static void test_url_errors(void **state) {
  (void)state;
  tether_store *st = NULL;
  assert_int_equal(tether_store_open("redis-cluster://127.0.0.1:1?read_from=nearest", &st), TETHER_EINVAL);
  assert_int_equal(tether_store_open("redis-cluster://127.0.0.1:1/3", &st), TETHER_EINVAL);
  assert_int_equal(tether_store_open("redis-cluster://127.0.0.1:1?wait=99", &st), TETHER_EINVAL);
  assert_int_equal(tether_store_open("redis-cluster://u:s3cr3t@127.0.0.1:1?bogus=1", &st), TETHER_EINVAL);
  assert_null(strstr(tether_last_error(), "s3cr3t"));
  assert_int_equal(tether_store_open("redis-cluster://u:s3cr3t@127.0.0.1:1?retry_ms=0", &st), 0);
  assert_null(strstr(tether_store_url(st), "s3cr3t"));
  assert_int_equal(tether_store_ping(st), TETHER_EUNAVAIL);
  assert_null(strstr(tether_last_error(), "s3cr3t"));
  tether_store_close(st);
}

static void test_replica_reads(void **state) {
  (void)state;
  char u[300], sid[TETHER_SID_LEN + 1];
  snprintf(u, sizeof(u), "%s?read_from=replica&wait=1", url);
  tether_store *st = open_ok(u);
  tether_session_id_generate(sid);
  int rc = tether_store_set(st, sid, "{\"replica\":1}", 14, 0); /* wait=1: the replica has it on return */
  if (rc != 0) {
    unsigned slot = sid_slot(sid);
    int o = owner(nodes[0].port, slot);
    tt_system("redis-cli -p %d info replication >&2; redis-cli -p %d cluster nodes >&2", nodes[o].port, nodes[o].port);
    fail_msg("set: %s", tether_last_error());
  }
  get_expect(st, sid, "{\"replica\":1}");
  tether_metrics m;
  tether_store_metrics(st, &m);
  assert_int_equal(m.wait_failures, 0);
  tether_store_close(st);
}

/* ---- on the event loop ---- */

static int async_rc[2] = {1, 1};
static char *async_json;

static void on_set(void *arg, int rc) {
  (void)arg;
  async_rc[0] = rc;
}

static void on_get(void *arg, int rc, char *json, size_t len) {
  (void)arg, (void)len;
  async_rc[1] = rc;
  async_json = json;
}

static void test_async(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  tether_astore *a;
  assert_int_equal(tether_astore_open(&loop, url, &a), 0);
  char sid[TETHER_SID_LEN + 1];
  tether_session_id_generate(sid);
  assert_true(tether_astore_native(a)); /* its own client: connections stay open, run until called back */
  assert_int_equal(tether_astore_set(a, sid, "{\"loop\":1}", 10, 0, on_set, NULL), 0);
  while (async_rc[0] == 1) uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(async_rc[0], 0);
  assert_int_equal(tether_astore_get(a, sid, on_get, NULL), 0);
  while (async_rc[1] == 1) uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(async_rc[1], 0);
  assert_string_equal(async_json, "{\"loop\":1}");
  free(async_json);
  tether_astore_close(a);
  uv_run(&loop, UV_RUN_DEFAULT); /* returns once the closed handle released its connections */
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- a master SIGKILLed under load: wait=1 and no wait side by side ---- */

enum { MAX_ACKED = 20000 };
typedef struct writer_t {
  tether_store *st;
  char (*acked)[TETHER_SID_LEN + 1];
  _Atomic int nacked, nfailed;
} writer_t;
static _Atomic int stop_writer;

static void *writer(void *arg) {
  writer_t *w = arg;
  for (int i = 0; !stop_writer && w->nacked < MAX_ACKED; i++) {
    char sid[TETHER_SID_LEN + 1];
    tether_session_id_generate(sid);
    if (tether_store_set(w->st, sid, "{\"w\":1}", 7, 0) == 0)
      memcpy(w->acked[w->nacked++], sid, sizeof(sid));
    else
      w->nfailed++;
  }
  return NULL;
}

/* Acknowledged writes the store no longer has. */
static int count_lost(tether_store *probe, writer_t *w) {
  int lost = 0;
  for (int i = 0; i < w->nacked; i++) {
    char *json = NULL;
    if (tether_store_get(probe, w->acked[i], &json, NULL) != 0) lost++;
    free(json);
  }
  return lost;
}

/* With wait=1 no acknowledged write may be lost. Without wait, the master acknowledges before its replica
 * has the write (replication is asynchronous): what it had not sent when it died is gone after the
 * failover. That count depends on timing (0 is common on loopback, where the replica is microseconds
 * behind): it is printed, not asserted. */
static void test_failover(void **state) {
  (void)state;
  char u[300], probe_sid[TETHER_SID_LEN + 1];
  writer_t safe = {0}, fast = {0};
  safe.acked = calloc(MAX_ACKED, sizeof(*safe.acked));
  fast.acked = calloc(MAX_ACKED, sizeof(*fast.acked));
  snprintf(u, sizeof(u), "%s?wait=1&retry_ms=5000", url);
  safe.st = open_ok(u);
  snprintf(u, sizeof(u), "%s?retry_ms=5000", url);
  fast.st = open_ok(u);
  snprintf(u, sizeof(u), "%s?retry_ms=10000", url);
  tether_store *probe = open_ok(u);
  do tether_session_id_generate(probe_sid);
  while (owner(nodes[1].port, sid_slot(probe_sid)) != 0);
  set_ok(probe, probe_sid, "{\"probe\":0}");
  pthread_t th[2];
  pthread_create(&th[0], NULL, writer, &safe);
  pthread_create(&th[1], NULL, writer, &fast);
  tt_sleep_ms(500);
  int before = safe.nacked, fast_before = fast.nacked;
  tether_log_set_level(TETHER_LOG_ERROR);
  int64_t t_kill = tether_now_ms();
  tt_server_stop(&nodes[0], SIGKILL);
  /* the availability window: a write to the dead master's slots, retried by the store until a replica took over */
  int rc = tether_store_set(probe, probe_sid, "{\"probe\":1}", 11, 0);
  int64_t window = tether_now_ms() - t_kill;
  if (rc != 0) fail_msg("no write to the dead master's slots within 10 s: %s", tether_last_error());
  /* the dead node comes back, as a replica of the new master: wait=1 writes to its slots succeed again */
  assert_int_equal(tt_redis_cluster_node_start(&nodes[0], nodes[0].port), 0);
  int64_t t_back = 0;
  for (int i = 0; i < 200 && !t_back; i++, tt_sleep_ms(50)) {
    redisReply *r = raw(nodes[0].port, "ROLE");
    if (strcmp(r->element[0]->str, "slave") == 0 && strcmp(r->element[3]->str, "connected") == 0)
      t_back = tether_now_ms();
    freeReplyObject(r);
  }
  tt_sleep_ms(500);
  stop_writer = 1;
  pthread_join(th[0], NULL);
  pthread_join(th[1], NULL);
  tether_log_set_level(TETHER_LOG_WARN);
  tether_metrics m;
  tether_store_metrics(safe.st, &m);
  int lost = count_lost(probe, &safe), fast_lost = count_lost(probe, &fast);
  print_message("failover (SIGKILL, cluster-node-timeout 1000): slots writable again after %lld ms; wait=1 writer: "
                "%d acknowledged (%d before the kill), %d failed (%llu WAIT failures); the old master was back as a "
                "replica %.1f s after the kill; lost %d of the acknowledged\n",
                (long long)window, (int)safe.nacked, before, (int)safe.nfailed, (unsigned long long)m.wait_failures,
                t_back ? (double)(t_back - t_kill) / 1000.0 : -1.0, lost);
  print_message("failover without wait: %d acknowledged (%d before the kill), %d failed; lost %d of the "
                "acknowledged\n",
                (int)fast.nacked, fast_before, (int)fast.nfailed, fast_lost);
  assert_int_equal(lost, 0);
  assert_true(fast.nacked > fast_before && fast_lost >= 0 && fast_lost <= fast.nacked);
  assert_true(window < 5000); /* the target is 3 s: measured 2.5-3 s here, see the message */
  get_expect(probe, probe_sid, "{\"probe\":1}");
  tether_store_close(probe);
  tether_store_close(safe.st);
  tether_store_close(fast.st);
  free(safe.acked);
  free(fast.acked);
}

int main(void) {
  if (tt_redis_cluster_start(nodes, MASTERS, 1) != 0) return 1;
  snprintf(url, sizeof(url), "redis-cluster://127.0.0.1:%d,127.0.0.1:%d", nodes[0].port, nodes[1].port);
  int failed = tt_conformance_run("redis-cluster conformance", url);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_slots),
      cmocka_unit_test(test_wire_format),
      cmocka_unit_test(test_url_errors),
      cmocka_unit_test(test_moved),
      cmocka_unit_test(test_ask),
      cmocka_unit_test(test_replica_reads),
      cmocka_unit_test(test_refused_seed),
      cmocka_unit_test(test_clusterdown),
      cmocka_unit_test(test_async),
      cmocka_unit_test(test_tryagain),
      cmocka_unit_test(test_slots_fallback),
      cmocka_unit_test(test_failover), /* last: it kills a master */
  };
  failed += cmocka_run_group_tests_name("redis-cluster", tests, NULL, NULL);
  for (int i = 0; i < NODES; i++) tt_server_cleanup(&nodes[i]);
  return failed ? 1 : 0;
}
