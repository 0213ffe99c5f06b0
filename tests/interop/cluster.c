/* Interop on a real 3+3 Redis Cluster: sessions libtether's redis-cluster store writes (blocking, and its
 * client on the event loop) are read by connect-redis 7 over node-redis 4's createCluster (cluster_peer.js),
 * and the other way round: the same keys (sess:<id>), the same JSON and the same TTL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "procs.h"
#include "tether/session.h"
#include "tether/store.h"
#include "tether/store_async.h"
#include <uv.h>

static tt_server nodes[6];
static char url[128];

/* Runs the peer and returns its stdout's first line (malloc'd). */
static char *peer(const char *fmt, ...) {
  char args[512], cmd[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof(args), fmt, ap);
  va_end(ap);
  snprintf(cmd, sizeof(cmd), "cd '%s' && node cluster_peer.js %s", TETHER_INTEROP_DIR, args);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  char *line = calloc(1, 65536);
  if (fgets(line, 65536, p) == NULL) line[0] = '\0';
  int st = pclose(p);
  if (st != 0) fail_msg("%s: exit %d", cmd, st);
  line[strcspn(line, "\n")] = '\0';
  return line;
}

static void test_tether_writes_node_reads(void **state) {
  (void)state;
  tether_store *st;
  assert_int_equal(tether_store_open(url, &st), 0);
  for (int i = 0; i < 6; i++) { /* 6 sessions: most likely on every master */
    char sid[TETHER_SID_LEN + 1], json[256], want[300];
    tether_session_id_generate(sid);
    snprintf(json, sizeof(json),
             "{\"cookie\":{\"originalMaxAge\":600000,\"expires\":\"2099-01-01T00:00:00.000Z\",\"httpOnly\":true,"
             "\"path\":\"/\"},\"user\":\"tether\",\"i\":%d}",
             i);
    assert_int_equal(tether_store_set(st, sid, json, strlen(json), tether_now_ms() + 600000), 0);
    char *out = peer("get %d %s", nodes[i % 3].port, sid);
    snprintf(want, sizeof(want), "{\"sess\":%s,\"ttl\":", json);
    if (strncmp(out, want, strlen(want)) != 0) fail_msg("node read %s, expected %s...", out, want);
    long ttl = strtol(out + strlen(want), NULL, 10);
    assert_true(ttl >= 570 && ttl <= 600); /* the Node peer starts per call: seconds pass under load */
    free(out);
  }
  tether_store_close(st);
}

static void test_node_writes_tether_reads(void **state) {
  (void)state;
  tether_store *st;
  assert_int_equal(tether_store_open(url, &st), 0);
  for (int i = 0; i < 3; i++) {
    char sid[TETHER_SID_LEN + 1];
    tether_session_id_generate(sid);
    char *out = peer("set %d %s 300000", nodes[i % 3].port, sid);
    assert_string_equal(out, "ok");
    free(out);
    char *json = NULL;
    assert_int_equal(tether_store_get(st, sid, &json, NULL), 0);
    assert_non_null(strstr(json, "\"user\":\"node\""));
    assert_non_null(strstr(json, "\"originalMaxAge\":300000"));
    free(json);
    out = peer("get %d %s", nodes[0].port, sid); /* connect-redis's TTL rule: 300 s */
    long ttl = strtol(strstr(out, "\"ttl\":") + 6, NULL, 10);
    assert_true(ttl >= 270 && ttl <= 300); /* a Node peer per call: seconds pass on a loaded machine */
    free(out);
  }
  tether_store_close(st);
}

/* ---- the client on the event loop ---- */

typedef struct res {
  int done, rc;
  char *json;
} res;

static void got(void *arg, int rc, char *json, size_t len) {
  (void)len;
  res *r = arg;
  r->done = 1;
  r->rc = rc;
  r->json = json;
}

static void done(void *arg, int rc) { got(arg, rc, NULL, 0); }

static void run_until_done(uv_loop_t *loop, res *r) {
  for (int i = 0; i < 100000 && !r->done; i++) uv_run(loop, UV_RUN_ONCE);
  assert_true(r->done);
}

static void test_loop_client_both_ways(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  tether_astore *a;
  assert_int_equal(tether_astore_open(&loop, url, &a), 0);
  assert_true(tether_astore_native(a));
  for (int i = 0; i < 6; i++) { /* written on the loop, read by Node */
    char sid[TETHER_SID_LEN + 1], json[256], want[300];
    tether_session_id_generate(sid);
    snprintf(json, sizeof(json), "{\"cookie\":{\"originalMaxAge\":600000,\"path\":\"/\"},\"user\":\"loop\",\"i\":%d}",
             i);
    res r = {0};
    assert_int_equal(tether_astore_set(a, sid, json, strlen(json), tether_now_ms() + 600000, done, &r), 0);
    run_until_done(&loop, &r);
    assert_int_equal(r.rc, 0);
    char *out = peer("get %d %s", nodes[i % 3].port, sid);
    snprintf(want, sizeof(want), "{\"sess\":%s,\"ttl\":", json);
    if (strncmp(out, want, strlen(want)) != 0) fail_msg("node read %s, expected %s...", out, want);
    long ttl = strtol(out + strlen(want), NULL, 10);
    assert_true(ttl >= 570 && ttl <= 600);
    free(out);
  }
  for (int i = 0; i < 3; i++) { /* written by Node, read on the loop */
    char sid[TETHER_SID_LEN + 1];
    tether_session_id_generate(sid);
    char *out = peer("set %d %s 300000", nodes[i % 3].port, sid);
    assert_string_equal(out, "ok");
    free(out);
    res r = {0};
    assert_int_equal(tether_astore_get(a, sid, got, &r), 0);
    run_until_done(&loop, &r);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.json, "\"user\":\"node\""));
    free(r.json);
  }
  tether_astore_close(a);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  if (tt_redis_cluster_start(nodes, 3, 1) != 0) return 1;
  snprintf(url, sizeof(url), "redis-cluster://127.0.0.1:%d", nodes[2].port);
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_tether_writes_node_reads),
                                     cmocka_unit_test(test_node_writes_tether_reads),
                                     cmocka_unit_test(test_loop_client_both_ways)};
  int failed = cmocka_run_group_tests_name("interop redis-cluster", tests, NULL, NULL);
  for (int i = 0; i < 6; i++) tt_server_cleanup(&nodes[i]);
  return failed ? 1 : 0;
}
