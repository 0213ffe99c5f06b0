/* Interop on a real 3+3 Redis Cluster: sessions libtether's redis-cluster store writes are read by
 * connect-redis 7 over node-redis 4's createCluster (cluster_peer.js), and the other way round: the same keys
 * (sess:<id>), the same JSON and the same TTL. */
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

int main(void) {
  if (tt_redis_cluster_start(nodes, 3, 1) != 0) return 1;
  snprintf(url, sizeof(url), "redis-cluster://127.0.0.1:%d", nodes[2].port);
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_tether_writes_node_reads),
                                     cmocka_unit_test(test_node_writes_tether_reads)};
  int failed = cmocka_run_group_tests_name("interop redis-cluster", tests, NULL, NULL);
  for (int i = 0; i < 6; i++) tt_server_cleanup(&nodes[i]);
  return failed ? 1 : 0;
}
