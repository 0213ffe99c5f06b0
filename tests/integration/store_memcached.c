/* The memcached store over three real memcached: conformance, placement on nginx's consistent hash, the
 * value format, size and corruption errors, and failures: a killed node (each of the three in turn), a
 * partitioned node that comes back with old data (SIGSTOP/SIGCONT), a destroy it missed, and all nodes
 * down. Numbers (reads and writes that succeeded out of 200) are printed. */
#include <libmemcached/memcached.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conformance.h"
#include "procs.h"
#include "tether/hash.h"
#include "tether/session.h"
#include "tether/store.h"

enum { NODES = 3, SESSIONS = 200 };

static tt_server nodes[NODES];
static char names[NODES][64]; /* "127.0.0.1:port", in URL order */
static int stopped[NODES];    /* SIGSTOPped by a test */

/* The ring's URL with extra parameters ("" for none). */
static void make_url(char *buf, size_t cap, const char *params) {
  snprintf(buf, cap, "memcached://%s,%s,%s?%s", names[0], names[1], names[2], params);
}

static tether_store *open_url(const char *params) {
  char url[512];
  make_url(url, sizeof(url), params);
  tether_store *st = NULL;
  if (tether_store_open(url, &st) != 0) fail_msg("open %s: %s", url, tether_last_error());
  return st;
}

/* The failure tests put sessions in place with generous timeouts (the machine may be loaded: a spurious
 * timeout would leave a node without them), then use short ones so that a stopped node costs little. */
static tether_store *open_setup(size_t replicas) {
  char params[128];
  snprintf(params, sizeof(params), "replicas=%zu&timeout_ms=5000&connect_timeout_ms=5000", replicas);
  return open_url(params);
}

static tether_store *open_fast(size_t replicas) {
  char params[128];
  snprintf(params, sizeof(params), "replicas=%zu&timeout_ms=1000&connect_timeout_ms=1000&retry_ms=300", replicas);
  return open_url(params);
}

static void node_stop(int i) {
  assert_int_equal(kill(nodes[i].pid, SIGSTOP), 0);
  stopped[i] = 1;
}

static void node_cont(int i) {
  if (stopped[i] && nodes[i].pid > 0) kill(nodes[i].pid, SIGCONT);
  stopped[i] = 0;
}

static void node_restart(int i) {
  if (nodes[i].pid == 0 && tt_memcached_start(&nodes[i], nodes[i].port) != 0) fail_msg("restart node %d", i);
}

/* Every test starts with the three nodes running (a failed test may have left one stopped or dead). */
static int all_up(void **state) {
  (void)state;
  for (int i = 0; i < NODES; i++) {
    node_cont(i);
    node_restart(i);
  }
  return 0;
}

/* ---- direct access to one node, to look at what the store wrote ---- */

static memcached_st *raw_client(int i) {
  memcached_st *mc = memcached_create(NULL);
  memcached_server_add(mc, "127.0.0.1", (in_port_t)nodes[i].port);
  memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, 2000);
  return mc;
}

static char *raw_get(int i, const char *key) {
  memcached_st *mc = raw_client(i);
  size_t len;
  uint32_t flags;
  memcached_return_t rc;
  char *v = memcached_get(mc, key, strlen(key), &len, &flags, &rc);
  char *out = v ? strndup(v, len) : NULL;
  free(v);
  memcached_free(mc);
  return out;
}

static void raw_set(int i, const char *key, const char *val) {
  memcached_st *mc = raw_client(i);
  assert_int_equal(memcached_set(mc, key, strlen(key), val, strlen(val), 60, 0), MEMCACHED_SUCCESS);
  memcached_free(mc);
}

/* ---- sessions ---- */

static char sids[SESSIONS][TETHER_SID_LEN + 1];

static void fresh_sids(void) {
  for (int i = 0; i < SESSIONS; i++) tether_session_id_generate(sids[i]);
}

static void value_of(char *buf, size_t cap, int i, int version) {
  snprintf(buf, cap, "{\"cookie\":{\"originalMaxAge\":600000},\"i\":%d,\"v\":%d}", i, version);
}

/* Writes version v of every session; returns how many writes succeeded. */
static int write_all(tether_store *st, int v) {
  char buf[128];
  int ok = 0;
  for (int i = 0; i < SESSIONS; i++) {
    value_of(buf, sizeof(buf), i, v);
    int rc = tether_store_set(st, sids[i], buf, strlen(buf), tether_now_ms() + 600000);
    if (rc == 0)
      ok++;
    else
      print_message("  set %d: %s (%s)\n", i, tether_strerror(rc), tether_last_error());
  }
  return ok;
}

/* Reads every session; returns how many gave exactly version v (v < 0: how many were not found). */
static int read_all(tether_store *st, int v, int *stale) {
  char buf[128];
  int ok = 0;
  *stale = 0;
  for (int i = 0; i < SESSIONS; i++) {
    char *json = NULL;
    size_t len;
    int rc = tether_store_get(st, sids[i], &json, &len);
    if (v < 0) {
      if (rc == TETHER_ENOTFOUND)
        ok++;
      else if (rc == 0)
        ++*stale;
    } else if (rc == 0) {
      value_of(buf, sizeof(buf), i, v);
      if (strcmp(json, buf) == 0)
        ok++;
      else
        ++*stale;
    } else {
      print_message("  get %d: %s (%s)\n", i, tether_strerror(rc), tether_last_error());
    }
    free(json);
  }
  return ok;
}

static void key_of(char *buf, size_t cap, const char *sid) { snprintf(buf, cap, "sess:%s", sid); }

/* The first n nodes of key's walk on the ring. */
static void preference(const char *key, size_t *out, size_t n) {
  const char *nm[NODES] = {names[0], names[1], names[2]};
  tether_ketama *r = NULL;
  assert_int_equal(tether_ketama_new(nm, NULL, NODES, &r), 0);
  assert_int_equal(tether_ketama_walk(r, key, strlen(key), out, n), n);
  tether_ketama_free(r);
}

/* ---- tests ---- */

static void test_bad_urls(void **state) {
  (void)state;
  static const struct {
    const char *url;
    const char *msg; /* a part of the message */
  } bad[] = {
      {"memcached://", "names no node"},
      {"memcached://127.0.0.1:1,127.0.0.1:2?replicas=3", "replicas=3 but the URL names 2 nodes"},
      {"memcached://127.0.0.1:1?replicas=0", "replicas"},
      {"memcached://127.0.0.1:1?replicas=two", "replicas"},
      {"memcached://127.0.0.1:1?timeout_ms=0", "timeout_ms"},
      {"memcached://127.0.0.1:1?connect_timeout_ms=-5", "connect_timeout_ms"},
      {"memcached://127.0.0.1:1?retry_ms=x", "retry_ms"},
      {"memcached://127.0.0.1:1?pool=0", "pool"},
      {"memcached://127.0.0.1:1?servers=2", "unknown URL parameter 'servers'"},
      {"memcached://127.0.0.1:1/db", "takes no path"},
      {"memcached://user:s3cret@127.0.0.1:1", "not supported"},
      {"memcached://user:s3cret@", "names no node"},
      {"memcached://127.0.0.1:1,127.0.0.1:1", "named twice"},
      {"memcached://127.0.0.1:99999", "port"},
      {"memcached://127.0.0.1:1?prefix=a%20b", "prefix"},
      {"memcached://127.0.0.1:1?prefix=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "prefix"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    tether_store *st = (tether_store *)&st;
    int rc = tether_store_open(bad[i].url, &st);
    if (rc != TETHER_EINVAL) fail_msg("%s: expected EINVAL, got %s", bad[i].url, tether_strerror(rc));
    assert_null(st);
    if (strstr(tether_last_error(), bad[i].msg) == NULL)
      fail_msg("%s: message '%s' lacks '%s'", bad[i].url, tether_last_error(), bad[i].msg);
    assert_null(strstr(tether_last_error(), "s3cret"));
  }
  /* good ones: one node (replicas defaults to 1), a default port, every parameter */
  tether_store *st = NULL;
  assert_int_equal(tether_store_open("memcached://127.0.0.1", &st), 0);
  assert_string_equal(tether_store_kind(st), "memcached");
  tether_store_close(st);
  assert_int_equal(tether_store_open("memcached://127.0.0.1:1,127.0.0.1:2?replicas=2&prefix=app:&timeout_ms=100&"
                                     "connect_timeout_ms=100&retry_ms=0&pool=2&tombstone_s=60",
                                     &st),
                   0);
  tether_store_close(st);
}

/* A session lands on the first two nodes of its walk, in the documented format; a destroy leaves
 * tombstones there. */
static void test_placement_and_format(void **state) {
  (void)state;
  tether_store *st = open_url("replicas=2");
  for (int n = 0; n < 20; n++) {
    char sid[TETHER_SID_LEN + 1], key[64];
    tether_session_id_generate(sid);
    key_of(key, sizeof(key), sid);
    size_t pref[NODES];
    preference(key, pref, NODES);
    const char *v = "{\"cookie\":{},\"x\":1}";
    assert_int_equal(tether_store_set(st, sid, v, strlen(v), 0), 0);
    for (size_t k = 0; k < NODES; k++) {
      char *raw = raw_get((int)pref[k], key);
      if (k < 2) {
        assert_non_null(raw);
        unsigned long long ver;
        long long exp;
        int off = 0;
        assert_int_equal(sscanf(raw, "T1 %llu %lld v %n", &ver, &exp, &off), 2);
        assert_true(off > 0);
        assert_string_equal(raw + off, v);
        assert_true(exp > tether_now_ms() + 86000000LL && exp <= tether_now_ms() + 86400000LL); /* a day */
      } else {
        assert_null(raw); /* not on the third */
      }
      free(raw);
    }
    assert_int_equal(tether_store_destroy(st, sid), 0);
    for (size_t k = 0; k < 2; k++) {
      char *raw = raw_get((int)pref[k], key);
      assert_non_null(raw);
      assert_true(strncmp(raw, "T1 ", 3) == 0 && raw[strlen(raw) - 1] == 'x' && raw[strlen(raw) - 2] == ' ');
      free(raw);
    }
    char *json = NULL;
    assert_int_equal(tether_store_get(st, sid, &json, NULL), TETHER_ENOTFOUND);
  }
  tether_store_close(st);
}

static void test_too_big(void **state) {
  (void)state;
  tether_store *st = open_url("replicas=2");
  char sid[TETHER_SID_LEN + 1];
  tether_session_id_generate(sid);
  size_t n = 1024 * 1024;
  char *v = malloc(n + 1);
  memset(v, 'a', n);
  v[0] = '"';
  v[n - 1] = '"';
  v[n] = '\0';
  assert_int_equal(tether_store_set(st, sid, v, n, 0), TETHER_E2BIG);
  assert_non_null(strstr(tether_last_error(), "more than a memcached item holds"));
  /* just under the limit the store computes, memcached takes it */
  n = 1024 * 1024 - 400;
  v[n - 1] = '"';
  v[n] = '\0';
  assert_int_equal(tether_store_set(st, sid, v, n, 0), 0);
  char *json = NULL;
  size_t len = 0;
  assert_int_equal(tether_store_get(st, sid, &json, &len), 0);
  assert_int_equal(len, n);
  free(json);
  free(v);
  tether_store_close(st);
}

/* Data that is not ours: ECORRUPT when no node has a valid copy; a valid copy wins and repairs it. */
static void test_corrupt(void **state) {
  (void)state;
  tether_store *st = open_url("replicas=2");
  char sid[TETHER_SID_LEN + 1], key[64];
  tether_session_id_generate(sid);
  key_of(key, sizeof(key), sid);
  for (int i = 0; i < NODES; i++) raw_set(i, key, "{\"not\":\"ours\"}");
  char *json = NULL;
  assert_int_equal(tether_store_get(st, sid, &json, NULL), TETHER_ECORRUPT);
  assert_non_null(strstr(tether_last_error(), "not a Tether session"));
  const char *bad[] = {"T1 12 34 v",       "T1 x 34 v {}", "T1 12 34 y {}",
                       "T1 12 34 x extra", "T2 1 2 v {}",  "T1 99999999999999999999999 1 v {}",
                       "T1 1  2 v {}"};
  for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
    for (int i = 0; i < NODES; i++) raw_set(i, key, bad[b]);
    int rc = tether_store_get(st, sid, &json, NULL);
    if (rc != TETHER_ECORRUPT) fail_msg("'%s' gave %s", bad[b], tether_strerror(rc));
  }
  size_t pref[NODES];
  preference(key, pref, NODES);
  raw_set((int)pref[1], key, "T1 5 99999999999999 v {\"ok\":1}");
  assert_int_equal(tether_store_get(st, sid, &json, NULL), 0);
  assert_string_equal(json, "{\"ok\":1}");
  free(json);
  char *raw = raw_get((int)pref[0], key); /* the replica ahead of it was repaired */
  assert_string_equal(raw, "T1 5 99999999999999 v {\"ok\":1}");
  free(raw);
  tether_store_close(st);
}

/* An expiry beyond 30 days is sent as a Unix time (memcached would read a relative 60 days as 1970). */
static void test_long_ttl(void **state) {
  (void)state;
  tether_store *st = open_url("replicas=2");
  char sid[TETHER_SID_LEN + 1];
  tether_session_id_generate(sid);
  const char *v = "{\"cookie\":{},\"long\":true}";
  int64_t exp = tether_now_ms() + 60LL * 86400 * 1000;
  assert_int_equal(tether_store_set(st, sid, v, strlen(v), exp), 0);
  assert_int_equal(tether_store_touch(st, sid, v, strlen(v), exp + 1000), 0);
  tt_sleep_ms(1100);
  char *json = NULL;
  assert_int_equal(tether_store_get(st, sid, &json, NULL), 0);
  assert_string_equal(json, v);
  free(json);
  /* past 2038, where memcached's 32-bit expiration ends: kept until then */
  exp = tether_now_ms() + 100LL * 365 * 86400 * 1000;
  assert_int_equal(tether_store_set(st, sid, v, strlen(v), exp), 0);
  json = NULL;
  assert_int_equal(tether_store_get(st, sid, &json, NULL), 0);
  assert_string_equal(json, v);
  free(json);
  tether_store_close(st);
}

/* Kill each node in turn: every session stays readable and writable, and once the node is back (empty)
 * reads give the newest version. */
static void test_kill_each_node(void **state) {
  (void)state;
  for (int victim = 0; victim < NODES; victim++) {
    tether_store *setup = open_setup(2), *st = open_fast(2);
    fresh_sids();
    assert_int_equal(write_all(setup, 1), SESSIONS);
    tether_store_close(setup);
    tt_server_stop(&nodes[victim], SIGKILL);
    int stale;
    int64_t t0 = tether_now_ms();
    int reads = read_all(st, 1, &stale);
    int64_t t1 = tether_now_ms();
    int writes = write_all(st, 2);
    int64_t t2 = tether_now_ms();
    int reads2 = read_all(st, 2, &stale);
    int64_t t3 = tether_now_ms();
    print_message("node %d killed: reads %d/%d (%lld ms), overwrites %d/%d (%lld ms), reads of them %d/%d (%lld ms)\n",
                  victim, reads, SESSIONS, (long long)(t1 - t0), writes, SESSIONS, (long long)(t2 - t1), reads2,
                  SESSIONS, (long long)(t3 - t2));
    assert_int_equal(reads, SESSIONS);
    assert_int_equal(writes, SESSIONS);
    assert_int_equal(reads2, SESSIONS);
    assert_true(t3 - t0 < 10000);
    node_restart(victim);
    tt_sleep_ms(400); /* past retry_ms: the node is asked again */
    int back = read_all(st, 2, &stale);
    print_message("node %d restarted empty: reads %d/%d newest, %d stale\n", victim, back, SESSIONS, stale);
    assert_int_equal(back, SESSIONS);
    assert_int_equal(stale, 0);
    assert_int_equal(write_all(st, 3), SESSIONS);
    assert_int_equal(read_all(st, 3, &stale), SESSIONS);
    tether_store_close(st);
  }
}

/* Counts the sessions whose copy on node i is older than version v while i is one of the `replicas`
 * nodes of its walk (copies a first-answer-wins read could return). */
static int stale_copies(int i, int v, size_t replicas) {
  char key[64], want[128];
  int n = 0;
  for (int s = 0; s < SESSIONS; s++) {
    key_of(key, sizeof(key), sids[s]);
    size_t pref[NODES];
    preference(key, pref, NODES);
    int holds = 0;
    for (size_t k = 0; k < replicas + 1; k++) holds |= pref[k] == (size_t)i;
    if (!holds) continue;
    char *raw = raw_get(i, key);
    value_of(want, sizeof(want), s, v);
    if (raw && v > 0 && strstr(raw, want) == NULL) n++;
    if (raw && v < 0 && raw[strlen(raw) - 1] != 'x') n++;
    free(raw);
  }
  return n;
}

/* A node cut off (SIGSTOP) while sessions are updated comes back with its old values: every read must
 * give the newest version, and the reads repair it. */
static void partition_round(size_t replicas, int victim) {
  tether_store *setup = open_setup(replicas), *st = open_fast(replicas);
  fresh_sids();
  assert_int_equal(write_all(setup, 1), SESSIONS);
  tether_store_close(setup);
  node_stop(victim);
  int64_t t0 = tether_now_ms();
  int writes = write_all(st, 2);
  int64_t t1 = tether_now_ms();
  int stale;
  int reads_down = read_all(st, 2, &stale);
  int64_t t2 = tether_now_ms();
  node_cont(victim);
  int old = stale_copies(victim, 2, replicas);
  tt_sleep_ms(400); /* past retry_ms: the node is asked again */
  int reads = read_all(st, 2, &stale);
  int left = stale_copies(victim, 2, replicas);
  print_message("replicas=%zu, node %d stopped: writes %d/%d (%lld ms), reads %d/%d (%lld ms); continued with %d old "
                "copies: reads %d/%d newest, %d stale; old copies after the reads: %d\n",
                replicas, victim, writes, SESSIONS, (long long)(t1 - t0), reads_down, SESSIONS, (long long)(t2 - t1),
                old, reads, SESSIONS, stale, left);
  assert_int_equal(writes, SESSIONS);
  assert_int_equal(reads_down, SESSIONS);
  assert_true(t2 - t0 < 15000);
  assert_true(old > 0); /* the scenario happened: the node came back with old data */
  assert_int_equal(reads, SESSIONS);
  assert_int_equal(stale, 0);
  assert_int_equal(left, 0); /* repaired */
  tether_store_close(st);
}

static void test_partition_no_stale_reads(void **state) {
  (void)state;
  for (int victim = 0; victim < NODES; victim++) partition_round(2, victim);
  partition_round(1, 0); /* one replica: the stale node is the only owner, the read asks one more */
}

/* Sessions destroyed while a node is cut off stay destroyed when it comes back with them. */
static void destroy_round(size_t replicas, int victim) {
  tether_store *setup = open_setup(replicas), *st = open_fast(replicas);
  fresh_sids();
  assert_int_equal(write_all(setup, 1), SESSIONS);
  tether_store_close(setup);
  node_stop(victim);
  int destroyed = 0;
  for (int i = 0; i < SESSIONS; i++) destroyed += tether_store_destroy(st, sids[i]) == 0;
  node_cont(victim);
  int old = stale_copies(victim, -1, replicas);
  tt_sleep_ms(400);
  int resurrected;
  int gone = read_all(st, -1, &resurrected);
  int left = stale_copies(victim, -1, replicas);
  print_message("replicas=%zu, node %d stopped: destroys %d/%d; continued with %d live copies: %d/%d not found, %d "
                "resurrected; live copies after the reads: %d\n",
                replicas, victim, destroyed, SESSIONS, old, gone, SESSIONS, resurrected, left);
  assert_int_equal(destroyed, SESSIONS);
  assert_true(old > 0);
  assert_int_equal(gone, SESSIONS);
  assert_int_equal(resurrected, 0);
  assert_int_equal(left, 0);
  tether_store_close(st);
}

static void test_destroy_while_partitioned(void **state) {
  (void)state;
  destroy_round(2, 1);
  destroy_round(1, 2);
}

typedef struct worker {
  tether_store *st;
  int id;
  int ops, failed, wrong;
} worker;

static void *worker_run(void *p) {
  worker *w = p;
  char sid[TETHER_SID_LEN + 1], buf[128];
  tether_session_id_generate(sid);
  int64_t end = tether_now_ms() + 1500;
  for (int i = 0; i < 100000 && tether_now_ms() < end; i++) {
    snprintf(buf, sizeof(buf), "{\"cookie\":{},\"w\":%d,\"i\":%d}", w->id, i);
    w->ops += 2;
    if (tether_store_set(w->st, sid, buf, strlen(buf), 0) != 0) w->failed++;
    char *json = NULL;
    if (tether_store_get(w->st, sid, &json, NULL) != 0)
      w->failed++;
    else if (strcmp(json, buf) != 0)
      w->wrong++;
    free(json);
  }
  return NULL;
}

/* Eight threads share one handle while a node is killed under them: no operation fails, none reads a
 * value other than its own last write. */
static void test_threads_during_kill(void **state) {
  (void)state;
  enum { W = 8 };
  tether_store *st = open_url("replicas=2&timeout_ms=1000&connect_timeout_ms=1000&retry_ms=300&pool=2");
  pthread_t t[W];
  worker w[W];
  for (int i = 0; i < W; i++) {
    w[i] = (worker){.st = st, .id = i};
    pthread_create(&t[i], NULL, worker_run, &w[i]);
  }
  tt_sleep_ms(300);
  tt_server_stop(&nodes[1], SIGKILL);
  tt_sleep_ms(500);
  node_restart(1);
  int ops = 0, failed = 0, wrong = 0;
  for (int i = 0; i < W; i++) {
    pthread_join(t[i], NULL);
    ops += w[i].ops;
    failed += w[i].failed;
    wrong += w[i].wrong;
  }
  print_message("%d threads, node 1 killed and restarted under them: %d operations, %d failed, %d wrong\n", W, ops,
                failed, wrong);
  assert_true(ops > 0);
  assert_int_equal(failed, 0);
  assert_int_equal(wrong, 0);
  tether_store_close(st);
}

/* Every node dead: errors come back quickly, and the store works again once they return. */
static void test_all_down(void **state) {
  (void)state;
  tether_store *st = open_fast(2);
  char sid[TETHER_SID_LEN + 1];
  tether_session_id_generate(sid);
  for (int i = 0; i < NODES; i++) tt_server_stop(&nodes[i], SIGKILL);
  int64_t t0 = tether_now_ms();
  assert_int_equal(tether_store_set(st, sid, "{}", 2, 0), TETHER_EUNAVAIL);
  char *json = NULL;
  assert_int_equal(tether_store_get(st, sid, &json, NULL), TETHER_EUNAVAIL);
  assert_int_equal(tether_store_destroy(st, sid), TETHER_EUNAVAIL);
  assert_int_equal(tether_store_touch(st, sid, "{}", 2, 0), TETHER_EUNAVAIL);
  assert_int_equal(tether_store_ping(st), TETHER_EUNAVAIL);
  assert_true(tether_now_ms() - t0 < 3000);
  for (int i = 0; i < NODES; i++) node_restart(i);
  tt_sleep_ms(400);
  assert_int_equal(tether_store_ping(st), 0);
  assert_int_equal(tether_store_set(st, sid, "{}", 2, 0), 0);
  assert_int_equal(tether_store_get(st, sid, &json, NULL), 0);
  assert_string_equal(json, "{}");
  free(json);
  tether_store_close(st);
}

int main(void) {
  for (int i = 0; i < NODES; i++) {
    if (tt_memcached_start(&nodes[i], 0) != 0) return 1;
    snprintf(names[i], sizeof(names[i]), "127.0.0.1:%d", nodes[i].port);
  }
  tether_log_set_level(TETHER_LOG_ERROR); /* the failure tests make nodes fail on purpose */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_bad_urls, all_up),
      cmocka_unit_test_setup(test_placement_and_format, all_up),
      cmocka_unit_test_setup(test_too_big, all_up),
      cmocka_unit_test_setup(test_corrupt, all_up),
      cmocka_unit_test_setup(test_long_ttl, all_up),
      cmocka_unit_test_setup(test_kill_each_node, all_up),
      cmocka_unit_test_setup(test_partition_no_stale_reads, all_up),
      cmocka_unit_test_setup(test_destroy_while_partitioned, all_up),
      cmocka_unit_test_setup(test_threads_during_kill, all_up),
      cmocka_unit_test_setup(test_all_down, all_up),
  };
  int failed = cmocka_run_group_tests_name("memcached", tests, NULL, NULL);
  all_up(NULL);
  char url[512];
  make_url(url, sizeof(url), "replicas=2");
  failed += tt_conformance_run("memcached conformance", url);
  for (int i = 0; i < NODES; i++) {
    node_cont(i);
    tt_server_cleanup(&nodes[i]);
  }
  return failed ? 1 : 0;
}
