/* The redis-cluster store on the event loop (its own client, async_cluster.c) against a real 3+3 Redis
 * Cluster: the async conformance suite, MOVED and ASK while redis-cli --cluster reshard moves 600 slots under
 * 64 calls in flight, ASK during a migration done by hand, CLUSTERDOWN while a slot is unserved, a seed that
 * refuses connections, the password kept out of messages, replica reads, a master SIGKILLed under load
 * with wait=1 (every acknowledged save still readable), and the whole cluster down (a master and its replica
 * killed: CLUSTERDOWN everywhere, cluster-require-full-coverage yes) until they are back, and TRYAGAIN: Redis
 * answers it only to multi-key commands, which sessions never send, so the client's command path
 * (tether__acluster_command) sends MGET/DEL across a slot a migration has split. */
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
#include <uv.h>

#include "cluster_util.h"
#include "conformance_async.h"
#include "store/async_conn.h"
#include "tether/metrics.h"
#include "tether/session.h"
#include "tether/store.h"
#include "tether/store_async.h"

static char url[256];
static uv_loop_t loop;

typedef struct res {
  int done, rc;
  char *json;
  uint64_t at_ms; /* when it completed */
} res;

static void got(void *arg, int rc, char *json, size_t len) {
  (void)len;
  res *r = arg;
  r->done = 1;
  r->rc = rc;
  r->json = json;
  r->at_ms = (uint64_t)tether_now_ms();
}

static void done(void *arg, int rc) { got(arg, rc, NULL, 0); }

static void wait_all(res *r, int n, int ms) {
  uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000;
  for (;;) {
    int all = 1;
    for (int i = 0; i < n; i++) all &= r[i].done;
    if (all) return;
    if (uv_hrtime() > end) fail_msg("calls not done within %d ms", ms);
    uv_run(&loop, UV_RUN_ONCE);
  }
}

static tether_astore *open_async(const char *u) {
  tether_astore *a = NULL;
  if (tether_astore_open(&loop, u, &a) < 0) fail_msg("open %s: %s", u, tether_last_error());
  assert_true(tether_astore_native(a));
  return a;
}

static void close_async(tether_astore *a) {
  tether_astore_close(a);
  for (int i = 0; i < 2000 && uv_run(&loop, UV_RUN_NOWAIT); i++) tt_sleep_ms(1);
}

static void set_ok(tether_astore *a, const char *sid, const char *json) {
  res r = {0};
  assert_int_equal(tether_astore_set(a, sid, json, strlen(json), 0, done, &r), 0);
  wait_all(&r, 1, 10000);
  if (r.rc != 0) fail_msg("set: %s", tether_strerror(r.rc));
}

static void get_expect(tether_astore *a, const char *sid, const char *want) {
  res r = {0};
  assert_int_equal(tether_astore_get(a, sid, got, &r), 0);
  wait_all(&r, 1, 10000);
  if (r.rc != 0) fail_msg("get: %s (%s)", tether_strerror(r.rc), tether_last_error());
  assert_string_equal(r.json, want);
  free(r.json);
}

/* ---- MOVED and ASK during redis-cli --cluster reshard, 64 calls in flight ---- */

enum { SESSIONS = 400, IN_FLIGHT = 64 };
static char sids[SESSIONS][TETHER_SID_LEN + 1];
static int version[SESSIONS]; /* the last value written and acknowledged */
static int writing[SESSIONS]; /* the value being written, 0 when none */
static _Atomic int reshard_done, reshard_status;
static int calls, failures, running, next_call;
static char reshard_cmd[512];

static void *reshard(void *arg) {
  (void)arg;
  reshard_status = tt_system("%s", reshard_cmd);
  reshard_done = 1;
  return NULL;
}

typedef struct slotcall {
  tether_astore *a;
  int i, write;
  char json[32];
} slotcall;

static void issue_call(slotcall *c);

static void call_done(slotcall *c, int rc, char *json) {
  calls++;
  if (rc != 0) {
    failures++;
    print_error("call on %s failed: %s\n", sids[c->i], tether_last_error());
  } else if (c->write) {
    version[c->i] = writing[c->i];
  } else {
    char want[32];
    snprintf(want, sizeof(want), "{\"v\":%d}", version[c->i]);
    if (strcmp(json, want) != 0) {
      failures++;
      print_error("read %s: %s, want %s\n", sids[c->i], json, want);
    }
  }
  if (c->write) writing[c->i] = 0;
  free(json);
  if (running)
    issue_call(c);
  else
    free(c);
}

static void on_call_get(void *arg, int rc, char *json, size_t len) {
  (void)len;
  call_done(arg, rc, json);
}

static void on_call_set(void *arg, int rc) { call_done(arg, rc, NULL); }

static void issue_call(slotcall *c) {
  do /* a session nobody is writing: reads know what they must see */
    c->i = next_call++ % SESSIONS;
  while (writing[c->i]);
  c->write = next_call % 2;
  if (c->write) {
    writing[c->i] = version[c->i] + 1;
    snprintf(c->json, sizeof(c->json), "{\"v\":%d}", writing[c->i]);
    assert_int_equal(tether_astore_set(c->a, sids[c->i], c->json, strlen(c->json), 0, on_call_set, c), 0);
  } else {
    assert_int_equal(tether_astore_get(c->a, sids[c->i], on_call_get, c), 0);
  }
}

static void test_reshard_under_load(void **state) {
  (void)state;
  tether_astore *a = open_async(url);
  res r[SESSIONS];
  memset(r, 0, sizeof(r));
  for (int i = 0; i < SESSIONS; i++) {
    tether_session_id_generate(sids[i]);
    version[i] = 1;
    assert_int_equal(tether_astore_set(a, sids[i], "{\"v\":1}", 7, 0, done, &r[i]), 0);
  }
  wait_all(r, SESSIONS, 10000);
  for (int i = 0; i < SESSIONS; i++) assert_int_equal(r[i].rc, 0);
  /* 600 slots from the master of slot 0 to another, while the calls run */
  int src = owner(nodes[0].port, 0), dst = other_master(src);
  char *src_id = node_id(nodes[src].port), *dst_id = node_id(nodes[dst].port);
  snprintf(reshard_cmd, sizeof(reshard_cmd),
           "redis-cli --cluster reshard 127.0.0.1:%d --cluster-from %s --cluster-to %s --cluster-slots 600 "
           "--cluster-yes --cluster-pipeline 10 >/dev/null 2>&1",
           nodes[src].port, src_id, dst_id);
  free(src_id);
  free(dst_id);
  /* redis-cli refuses to reshard ("Nodes don't agree about configuration") until every node has heard of the
   * last slot move by gossip: wait, bounded, for its own check to pass */
  int agreed = 0;
  for (int i = 0; i < 100 && !agreed; i++) {
    agreed = tt_system("redis-cli --cluster check 127.0.0.1:%d >/dev/null 2>&1", nodes[src].port) == 0;
    if (!agreed) tt_sleep_ms(100);
  }
  assert_true(agreed);
  tether_metrics m0, m1;
  tether_store_metrics(tether_astore_store(a), &m0);
  running = 1;
  for (int k = 0; k < IN_FLIGHT; k++) {
    slotcall *c = calloc(1, sizeof(*c));
    c->a = a;
    issue_call(c);
  }
  pthread_t th;
  pthread_create(&th, NULL, reshard, NULL);
  uint64_t t0 = uv_hrtime(), end = t0 + 60ULL * 1000000000;
  while (!reshard_done && uv_hrtime() < end) uv_run(&loop, UV_RUN_ONCE);
  uint64_t after = uv_hrtime() + 300ULL * 1000000; /* and a little more on the new map */
  while (uv_hrtime() < after) uv_run(&loop, UV_RUN_ONCE);
  running = 0;
  while (uv_run(&loop, UV_RUN_ONCE) && calls < 1000000) {
    int busy = 0;
    for (int i = 0; i < SESSIONS; i++) busy |= writing[i];
    if (!busy) break;
  }
  pthread_join(th, NULL);
  assert_true(reshard_done);
  assert_int_equal(reshard_status, 0); /* the move itself went through */
  tether_store_metrics(tether_astore_store(a), &m1);
  print_message("reshard of 600 slots under %d calls in flight: %d calls in %.1f s, %d failed; %llu redirects, "
                "%llu map reads\n",
                IN_FLIGHT, calls, (double)(uv_hrtime() - t0) / 1e9, failures,
                (unsigned long long)(m1.redirects - m0.redirects),
                (unsigned long long)(m1.map_refreshes - m0.map_refreshes));
  assert_int_equal(failures, 0);
  assert_true(m1.redirects > m0.redirects);
  assert_true(m1.map_refreshes > m0.map_refreshes);
  assert_int_equal(owner(nodes[0].port, 0), dst); /* the slots did move */
  for (int i = 0; i < SESSIONS; i++) {            /* every session, at its last acknowledged value */
    char want[32];
    snprintf(want, sizeof(want), "{\"v\":%d}", version[i]);
    get_expect(a, sids[i], want);
  }
  close_async(a);
}

/* ---- ASK while a slot is half migrated ---- */

static void test_ask(void **state) {
  (void)state;
  tether_astore *a = open_async(url);
  char s1[TETHER_SID_LEN + 1], s2[TETHER_SID_LEN + 1], s[16], key[160];
  tether_session_id_generate(s1);
  set_ok(a, s1, "{\"ask\":1}");
  unsigned slot = sid_slot(s1);
  do tether_session_id_generate(s2);
  while (sid_slot(s2) != slot);
  int src = owner(nodes[0].port, slot), dst = other_master(src);
  char *src_id = node_id(nodes[src].port), *dst_id = node_id(nodes[dst].port);
  snprintf(s, sizeof(s), "%u", slot);
  snprintf(key, sizeof(key), "sess:%s", s1);
  raw_ok(nodes[dst].port, "CLUSTER SETSLOT %s IMPORTING %s", s, src_id);
  raw_ok(nodes[src].port, "CLUSTER SETSLOT %s MIGRATING %s", s, dst_id);
  redisReply *rep = raw(nodes[src].port, "MIGRATE 127.0.0.1 %d %s 0 5000", nodes[dst].port, key);
  assert_int_not_equal(rep->type, REDIS_REPLY_ERROR);
  freeReplyObject(rep);
  tether_metrics m0, m1;
  tether_store_metrics(tether_astore_store(a), &m0);
  get_expect(a, s1, "{\"ask\":1}"); /* src no longer has it: ASK dst */
  set_ok(a, s2, "{\"ask\":2}");     /* a new key in a migrating slot: ASK dst */
  tether_store_metrics(tether_astore_store(a), &m1);
  assert_true(m1.redirects >= m0.redirects + 2);
  assert_int_equal(m1.errors, m0.errors);
  rep = raw(nodes[src].port, "EXISTS sess:%s", s2);
  assert_int_equal(rep->integer, 0); /* it went to dst, not src */
  freeReplyObject(rep);
  setslot_node(slot, dst_id);
  get_expect(a, s2, "{\"ask\":2}"); /* MOVED now */
  free(src_id);
  free(dst_id);
  close_async(a);
}

/* ---- CLUSTERDOWN while a slot is unserved ---- */

static unsigned down_slot;
static int down_owner;

static void readd(uv_timer_t *t) {
  (void)t;
  freeReplyObject(raw(nodes[down_owner].port, "CLUSTER ADDSLOTS %u", down_slot));
}

/* Handles that read the map while the slot was served send to its owner and get CLUSTERDOWN back. */
static void test_clusterdown(void **state) {
  (void)state;
  char sid[TETHER_SID_LEN + 1], u[300];
  tether_session_id_generate(sid);
  tether_astore *a = open_async(url);
  set_ok(a, sid, "{\"down\":1}");
  snprintf(u, sizeof(u), "%s?retry_ms=0", url); /* no retry: the caller sees the reply */
  tether_astore *quick = open_async(u);
  snprintf(u, sizeof(u), "%s?retry_ms=8000", url); /* a long one waits for the slot */
  tether_astore *patient = open_async(u);
  get_expect(quick, sid, "{\"down\":1}");
  get_expect(patient, sid, "{\"down\":1}");
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
  res r = {0};
  assert_int_equal(tether_astore_get(quick, sid, got, &r), 0);
  wait_all(&r, 1, 5000);
  assert_int_equal(r.rc, TETHER_EUNAVAIL);
  assert_non_null(strstr(tether_last_error(), "CLUSTERDOWN"));
  close_async(quick);
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  uv_timer_start(&t, readd, 400, 0);
  int64_t t0 = tether_now_ms();
  get_expect(patient, sid, "{\"down\":1}");
  int64_t took = tether_now_ms() - t0;
  print_message("CLUSTERDOWN: the read waited %lld ms for the slot to be served again\n", (long long)took);
  assert_true(took >= 350);
  uv_close((uv_handle_t *)&t, NULL);
  close_async(patient);
  close_async(a);
  cluster_settle();
}

/* ---- TRYAGAIN: MGET/DEL across a slot a migration split ---- */

static split mig;

static void finish_migration(uv_timer_t *t) {
  (void)t;
  split_finish(&mig);
}

typedef struct rawres {
  int done, rc;
  long long integer;
  char a[8], b[8];
  char why[300];
} rawres;

static void raw_done(void *arg, int rc, redisReply *rep) {
  rawres *r = arg;
  r->done = 1;
  r->rc = rc;
  snprintf(r->why, sizeof(r->why), "%s", rc < 0 ? tether_last_error() : "");
  if (rc == 0 && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 && rep->element[0]->str && rep->element[1]->str) {
    snprintf(r->a, sizeof(r->a), "%s", rep->element[0]->str);
    snprintf(r->b, sizeof(r->b), "%s", rep->element[1]->str);
  }
  r->integer = rc == 0 && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
}

static void client_freed(void *owner) { *(int *)owner = 1; }

/* cmd key-a key-b through a client on the loop; finished migration after delay_ms (0: never). */
static rawres raw_call(const char *u, const char *cmd, const char *tag, int delay_ms, tether_metrics *dm) {
  tether_store *st = NULL;
  if (tether_store_open(u, &st) < 0) fail_msg("open: %s", tether_last_error());
  int freed = 0;
  tether__acluster *k = tether__acluster_new(&loop, st, client_freed, &freed);
  char req[128];
  int n = snprintf(req, sizeof(req), "*3\r\n$%zu\r\n%s\r\n$%zu\r\n{%s}a\r\n$%zu\r\n{%s}b\r\n", strlen(cmd), cmd,
                   strlen(tag) + 3, tag, strlen(tag) + 3, tag);
  char key[32];
  snprintf(key, sizeof(key), "{%s}a", tag);
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  if (delay_ms) uv_timer_start(&t, finish_migration, (uint64_t)delay_ms, 0);
  rawres r = {0};
  tether_metrics m0;
  tether_store_metrics(st, &m0);
  tether__acluster_command(k, key, req, (size_t)n, raw_done, &r);
  uint64_t end = uv_hrtime() + 5000000000ull;
  while (!r.done && uv_hrtime() < end) uv_run(&loop, UV_RUN_ONCE);
  assert_true(r.done);
  tether_store_metrics(st, dm);
  dm->tryagain -= m0.tryagain;
  dm->redirects -= m0.redirects;
  uv_close((uv_handle_t *)&t, NULL);
  tether__acluster_close(k);
  while (!freed) uv_run(&loop, UV_RUN_ONCE);
  tether_store_close(st);
  return r;
}

static void test_tryagain(void **state) {
  (void)state;
  char u[300];
  tether_metrics dm;
  split_slot("t1", &mig);
  snprintf(u, sizeof(u), "%s?retry_ms=150", url); /* keeps getting TRYAGAIN, gives up */
  int64_t t0 = tether_now_ms();
  rawres r = raw_call(u, "MGET", "t1", 0, &dm);
  int64_t took = tether_now_ms() - t0;
  print_message("TRYAGAIN on the loop, retry_ms=150: MGET gave up after %lld ms (%llu TRYAGAIN): %s\n", (long long)took,
                (unsigned long long)dm.tryagain, r.why);
  assert_int_equal(r.rc, TETHER_EUNAVAIL);
  assert_non_null(strstr(r.why, "TRYAGAIN"));
  assert_true(dm.tryagain >= 2);
  assert_true(took < 1000);
  /* the default retry_ms: TRYAGAIN until the migration ends 300 ms in, then the answer */
  t0 = tether_now_ms();
  r = raw_call(url, "MGET", "t1", 300, &dm);
  took = tether_now_ms() - t0;
  if (r.rc != 0) fail_msg("MGET during a migration: %s", r.why);
  print_message("TRYAGAIN on the loop, MGET: %llu TRYAGAIN, %llu redirects, answered after %lld ms\n",
                (unsigned long long)dm.tryagain, (unsigned long long)dm.redirects, (long long)took);
  assert_true(dm.tryagain >= 1);
  assert_true(took >= 250 && took < 2000);
  assert_string_equal(r.a, "A");
  assert_string_equal(r.b, "B");
  split_slot("t2", &mig);
  r = raw_call(url, "DEL", "t2", 300, &dm);
  if (r.rc != 0) fail_msg("DEL during a migration: %s", r.why);
  print_message("TRYAGAIN on the loop, DEL: %llu TRYAGAIN, %llu redirects\n", (unsigned long long)dm.tryagain,
                (unsigned long long)dm.redirects);
  assert_true(dm.tryagain >= 1);
  assert_int_equal(r.integer, 2);
}

/* ---- a seed that refuses connections; the password never in a message ---- */

static void test_refused_seed_and_password(void **state) {
  (void)state;
  char u[300], sid[TETHER_SID_LEN + 1];
  snprintf(u, sizeof(u), "redis-cluster://127.0.0.1:%d,127.0.0.1:%d", tt_free_port(), nodes[1].port);
  tether_astore *a = open_async(u);
  tether_session_id_generate(sid);
  set_ok(a, sid, "{\"seed\":1}");
  get_expect(a, sid, "{\"seed\":1}");
  res r = {0};
  assert_int_equal(tether_astore_ping(a, done, &r), 0);
  wait_all(&r, 1, 5000);
  assert_int_equal(r.rc, 0);
  char text[16384];
  tether_metrics_prometheus(tether_astore_store(a), text, sizeof(text));
  assert_non_null(strstr(text, "tether_store_node_latency_seconds_count{store=\"redis-cluster\",node=\"127.0.0.1:"));
  close_async(a);
  snprintf(u, sizeof(u), "redis-cluster://u:s3cr3t@127.0.0.1:%d?retry_ms=0", tt_free_port());
  a = open_async(u);
  r = (res){0};
  assert_int_equal(tether_astore_set(a, sid, "{}", 2, 0, done, &r), 0);
  wait_all(&r, 1, 5000);
  assert_int_equal(r.rc, TETHER_EUNAVAIL);
  assert_non_null(strstr(tether_last_error(), "no node gave a slot map"));
  assert_null(strstr(tether_last_error(), "s3cr3t"));
  close_async(a);
}

static void test_replica_reads(void **state) {
  (void)state;
  char u[300], sid[TETHER_SID_LEN + 1];
  snprintf(u, sizeof(u), "%s?read_from=replica&wait=1", url);
  tether_astore *a = open_async(u);
  tether_session_id_generate(sid);
  set_ok(a, sid, "{\"replica\":1}"); /* wait=1: the replica has it once acknowledged */
  int before = 0;
  for (int i = MASTERS; i < NODES; i++) {
    redisReply *rep = raw(nodes[i].port, "INFO commandstats");
    const char *p = strstr(rep->str, "cmdstat_getrange:calls=");
    before += p ? atoi(p + 23) : 0;
    freeReplyObject(rep);
  }
  get_expect(a, sid, "{\"replica\":1}");
  int after = 0;
  for (int i = MASTERS; i < NODES; i++) {
    redisReply *rep = raw(nodes[i].port, "INFO commandstats");
    const char *p = strstr(rep->str, "cmdstat_getrange:calls=");
    after += p ? atoi(p + 23) : 0;
    freeReplyObject(rep);
  }
  assert_int_equal(after, before + 1); /* the read went to a replica */
  tether_metrics m;
  tether_store_metrics(tether_astore_store(a), &m);
  assert_int_equal(m.wait_failures, 0);
  close_async(a);
}

/* ---- a master SIGKILLed under load, wait=1 ---- */

enum { MAX_ACKED = 40000 };
static char (*acked)[TETHER_SID_LEN + 1];
static int nacked, nfailed, writers_on;
static uint64_t kill_ms, first_fail_ms, last_fail_ms;

typedef struct wcall {
  tether_astore *a;
  char sid[TETHER_SID_LEN + 1];
} wcall;

static void write_next(wcall *w);

static void on_written(void *arg, int rc) {
  wcall *w = arg;
  if (rc == 0 && nacked < MAX_ACKED) {
    memcpy(acked[nacked++], w->sid, sizeof(w->sid));
  } else if (rc != 0) {
    assert_true(rc == TETHER_EUNAVAIL || rc == TETHER_ETIMEDOUT);
    if (nfailed < 3 || getenv("TT_VERBOSE"))
      print_message("  failed at +%lld ms: %s\n", (long long)(tether_now_ms() - (int64_t)kill_ms), tether_last_error());
    nfailed++;
    last_fail_ms = (uint64_t)tether_now_ms();
    if (!first_fail_ms) first_fail_ms = last_fail_ms;
  }
  if (writers_on)
    write_next(w);
  else
    free(w);
}

static void write_next(wcall *w) {
  tether_session_id_generate(w->sid);
  assert_int_equal(tether_astore_set(w->a, w->sid, "{\"w\":1}", 7, 0, on_written, w), 0);
}

static void run_ms(int ms) {
  uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000;
  while (uv_hrtime() < end)
    if (uv_run(&loop, UV_RUN_NOWAIT) == 0 || !writers_on) tt_sleep_ms(1); /* idle connections: do not block */
}

static void test_failover(void **state) {
  (void)state;
  char u[300];
  acked = calloc(MAX_ACKED, sizeof(*acked));
  snprintf(u, sizeof(u), "%s?wait=1&retry_ms=5000", url);
  tether_astore *a = open_async(u);
  int victim = owner(nodes[1].port, 5000);
  writers_on = 1;
  for (int k = 0; k < IN_FLIGHT; k++) {
    wcall *w = calloc(1, sizeof(*w));
    w->a = a;
    write_next(w);
  }
  run_ms(500);
  int before = nacked;
  tether_log_set_level(TETHER_LOG_ERROR);
  kill_ms = (uint64_t)tether_now_ms();
  tt_server_stop(&nodes[victim], SIGKILL);
  /* a replica takes over (cluster-node-timeout 1000); then the dead node comes back as its replica, so that
   * wait=1 writes to those slots are confirmed again */
  uint64_t promoted = 0, back = 0;
  for (int i = 0; i < 100 && !promoted; i++) {
    run_ms(100);
    int o = owner(nodes[victim == 1 ? 2 : 1].port, 5000);
    if (o != victim) promoted = (uint64_t)tether_now_ms();
  }
  assert_true(promoted);
  assert_int_equal(tt_redis_cluster_node_start(&nodes[victim], nodes[victim].port), 0);
  for (int i = 0; i < 100 && !back; i++) {
    run_ms(100);
    redisReply *r = raw(nodes[victim].port, "ROLE");
    if (strcmp(r->element[0]->str, "slave") == 0 && strcmp(r->element[3]->str, "connected") == 0)
      back = (uint64_t)tether_now_ms();
    freeReplyObject(r);
  }
  run_ms(1000);
  writers_on = 0;
  run_ms(1500);
  tether_log_set_level(TETHER_LOG_WARN);
  tether_metrics m;
  tether_store_metrics(tether_astore_store(a), &m);
  close_async(a);
  tether_astore *probe = open_async(url);
  int lost = 0;
  for (int i = 0; i < nacked; i += IN_FLIGHT) {
    res r[IN_FLIGHT];
    memset(r, 0, sizeof(r));
    int n = nacked - i < IN_FLIGHT ? nacked - i : IN_FLIGHT;
    for (int k = 0; k < n; k++) tether_astore_get(probe, acked[i + k], got, &r[k]);
    wait_all(r, n, 10000);
    for (int k = 0; k < n; k++) {
      lost += r[k].rc != 0;
      free(r[k].json);
    }
  }
  print_message("failover on the loop (SIGKILL, cluster-node-timeout 1000, wait=1, %d in flight): %d saves "
                "acknowledged (%d before the kill), %d failed (%llu WAIT failures), failures from +%lld ms to "
                "+%lld ms after the kill; replica promoted at +%lld ms, old master back as its replica at +%lld "
                "ms; lost %d of the acknowledged\n",
                IN_FLIGHT, nacked, before, nfailed, (unsigned long long)m.wait_failures,
                first_fail_ms ? (long long)(first_fail_ms - kill_ms) : -1LL,
                last_fail_ms ? (long long)(last_fail_ms - kill_ms) : -1LL, (long long)(promoted - kill_ms),
                back ? (long long)(back - kill_ms) : -1LL, lost);
  assert_int_equal(lost, 0);
  assert_true(nacked > before); /* it kept acknowledging */
  close_async(probe);
  free(acked);
}

/* ---- the whole cluster down: a master and its replica stopped (cluster-require-full-coverage yes) ---- */

static int down_nodes[2];

static void restart_pair(uv_timer_t *t) {
  (void)t;
  for (int i = 0; i < 2; i++)
    assert_int_equal(tt_redis_cluster_node_start(&nodes[down_nodes[i]], nodes[down_nodes[i]].port), 0);
}

static void test_whole_cluster_down(void **state) {
  (void)state;
  /* a master with a replica, and a session on another master */
  int m = -1, rep = -1;
  for (int i = 0; i < NODES && rep < 0; i++) {
    redisReply *r = raw(nodes[i].port, "ROLE");
    if (strcmp(r->element[0]->str, "master") == 0 && r->element[2]->elements > 0) {
      int port = atoi(r->element[2]->element[0]->element[1]->str);
      for (int k = 0; k < NODES; k++)
        if (nodes[k].port == port) m = i, rep = k;
    }
    freeReplyObject(r);
  }
  assert_true(rep >= 0);
  char sid[TETHER_SID_LEN + 1], u[300];
  do tether_session_id_generate(sid);
  while (owner(nodes[m].port, sid_slot(sid)) == m);
  int healthy = owner(nodes[m].port, sid_slot(sid));
  snprintf(u, sizeof(u), "%s?retry_ms=0", url);
  tether_astore *quick = open_async(u);
  snprintf(u, sizeof(u), "%s?retry_ms=20000", url);
  tether_astore *patient = open_async(u);
  set_ok(patient, sid, "{\"whole\":1}");
  get_expect(quick, sid, "{\"whole\":1}");
  down_nodes[0] = m;
  down_nodes[1] = rep;
  tether_log_set_level(TETHER_LOG_ERROR);
  tt_server_stop(&nodes[rep], SIGKILL);
  tt_server_stop(&nodes[m], SIGKILL);
  int failing = 0; /* the other masters refuse every key once they see the slots unserved */
  for (int i = 0; i < 100 && !failing; i++, tt_sleep_ms(100)) {
    redisReply *r = raw(nodes[healthy].port, "GET sess:%s", sid);
    failing = r->type == REDIS_REPLY_ERROR && strncmp(r->str, "CLUSTERDOWN", 11) == 0;
    freeReplyObject(r);
  }
  assert_true(failing);
  res r = {0};
  assert_int_equal(tether_astore_get(quick, sid, got, &r), 0);
  wait_all(&r, 1, 5000);
  assert_int_equal(r.rc, TETHER_EUNAVAIL);
  assert_non_null(strstr(tether_last_error(), "CLUSTERDOWN"));
  close_async(quick);
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  uv_timer_start(&t, restart_pair, 300, 0);
  int64_t t0 = tether_now_ms();
  r = (res){0};
  assert_int_equal(tether_astore_get(patient, sid, got, &r), 0);
  wait_all(&r, 1, 30000);
  int64_t took = tether_now_ms() - t0;
  tether_log_set_level(TETHER_LOG_WARN);
  print_message("whole cluster down (a master and its replica SIGKILLed): a read of a healthy master's session "
                "waited %lld ms, through the restart of both, and %s\n",
                (long long)took, r.rc == 0 ? "succeeded" : tether_last_error());
  assert_int_equal(r.rc, 0);
  assert_string_equal(r.json, "{\"whole\":1}");
  free(r.json);
  uv_close((uv_handle_t *)&t, NULL);
  close_async(patient);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  if (tt_redis_cluster_start(nodes, MASTERS, 1) != 0) return 1;
  uv_loop_init(&loop);
  snprintf(url, sizeof(url), "redis-cluster://127.0.0.1:%d,127.0.0.1:%d", nodes[0].port, nodes[1].port);
  int failed = tt_conformance_async_run("redis-cluster async conformance", url);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ask),
      cmocka_unit_test(test_reshard_under_load),
      cmocka_unit_test(test_clusterdown),
      cmocka_unit_test(test_tryagain),
      cmocka_unit_test(test_refused_seed_and_password),
      cmocka_unit_test(test_replica_reads),
      cmocka_unit_test(test_failover),           /* kills a master */
      cmocka_unit_test(test_whole_cluster_down), /* last: kills a master and its replica */
  };
  failed += cmocka_run_group_tests_name("redis-cluster on the loop", tests, NULL, NULL);
  uv_loop_close(&loop);
  for (int i = 0; i < NODES; i++) tt_server_cleanup(&nodes[i]);
  return failed ? 1 : 0;
}
