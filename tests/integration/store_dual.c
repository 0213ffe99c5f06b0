/* The dual store (migration step 2): conformance over sqlite + redis, read tiers, refill, the move of
 * sticky-era sessions into SHARED, and SHARED failing. */
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
#include "tether/session.h"
#include "tether/store.h"

static tt_server redis;
static char *dir;
static char local_url[600], shared_url[600], dual_url[1300];

static void open3(tether_store **dual, tether_store **local, tether_store **shared) {
  assert_int_equal(tether_store_open(dual_url, dual), 0);
  assert_int_equal(tether_store_open(local_url, local), 0);
  assert_int_equal(tether_store_open(shared_url, shared), 0);
}

static void close3(tether_store *a, tether_store *b, tether_store *c) {
  tether_store_close(a);
  tether_store_close(b);
  tether_store_close(c);
}

static char *get(tether_store *st, const char *sid) {
  char *json = NULL;
  size_t len;
  int rc = tether_store_get(st, sid, &json, &len);
  return rc == 0 ? json : NULL;
}

static void test_tiers_and_refill(void **state) {
  (void)state;
  tether_store *d, *l, *s;
  open3(&d, &l, &s);
  char sid[TETHER_SID_LEN + 1];
  tether_session_id_generate(sid);
  const char *v = "{\"cookie\":{},\"from\":\"shared\"}";
  /* a session another app server wrote to SHARED only */
  assert_int_equal(tether_store_set(s, sid, v, strlen(v), tether_now_ms() + 60000), 0);
  char *got = get(d, sid);
  assert_non_null(got);
  assert_string_equal(got, v);
  free(got);
  got = get(l, sid); /* refilled */
  assert_non_null(got);
  free(got);
  got = get(d, sid);
  free(got);
  tether_metrics m;
  tether_store_metrics(d, &m);
  assert_int_equal(m.reads_shared, 1);
  assert_int_equal(m.reads_local, 1);
  char text[8192];
  tether_metrics_prometheus(d, text, sizeof(text));
  assert_non_null(strstr(text, "tether_store_reads_total{store=\"dual\",tier=\"local\"} 1"));
  /* destroy removes both copies */
  assert_int_equal(tether_store_destroy(d, sid), 0);
  assert_null(get(l, sid));
  assert_null(get(s, sid));
  close3(d, l, s);
}

/* A sticky-era session lives in LOCAL only; one request during dual-write (even without a change) puts
 * it in SHARED, so the cut-over to SHARED only loses nothing. */
static void test_sticky_sessions_reach_shared(void **state) {
  (void)state;
  tether_store *d, *l, *s;
  open3(&d, &l, &s);
  tether_session_options o;
  tether_session_options_init(&o);
  o.secret[0] = "k";
  o.secret_count = 1;
  o.cookie.max_age_ms = 600000;
  o.store = l;
  tether_sessions *local_mgr, *dual_mgr, *shared_mgr;
  assert_int_equal(tether_sessions_new(&o, &local_mgr), 0);
  o.store = d;
  assert_int_equal(tether_sessions_new(&o, &dual_mgr), 0);
  o.store = s;
  assert_int_equal(tether_sessions_new(&o, &shared_mgr), 0);

  tether_session *sess;
  char *sc;
  assert_int_equal(tether_session_load(local_mgr, NULL, &sess), 0);
  tether_session_set_string(sess, "cart", "book");
  assert_int_equal(tether_session_commit(sess, &sc), 0);
  sc[strcspn(sc, ";")] = '\0';
  tether_session_free(sess);
  /* phase 2: an unmodified request through the dual store */
  assert_int_equal(tether_session_load(dual_mgr, sc, &sess), 0);
  assert_false(tether_session_is_new(sess));
  char *sc2;
  assert_int_equal(tether_session_commit(sess, &sc2), 0);
  free(sc2);
  tether_session_free(sess);
  /* phase 4: SHARED only */
  assert_int_equal(tether_session_load(shared_mgr, sc, &sess), 0);
  assert_false(tether_session_is_new(sess));
  assert_string_equal(tether_session_get_string(sess, "cart"), "book");
  tether_session_free(sess);
  free(sc);
  tether_sessions_free(local_mgr);
  tether_sessions_free(dual_mgr);
  tether_sessions_free(shared_mgr);
  close3(d, l, s);
}

/* SHARED down: writes report the error (SHARED is the source of truth), reads of LOCAL still work. */
static void test_shared_down(void **state) {
  (void)state;
  tether_store *d, *l, *s;
  open3(&d, &l, &s);
  char sid[TETHER_SID_LEN + 1];
  tether_session_id_generate(sid);
  const char *v = "{\"cookie\":{},\"n\":1}";
  assert_int_equal(tether_store_set(d, sid, v, strlen(v), 0), 0);
  tt_server_stop(&redis, SIGKILL);
  assert_true(tether_store_set(d, sid, v, strlen(v), 0) < 0);
  char *got = get(d, sid); /* LOCAL's copy: the failed write dropped nothing it had */
  assert_true(got == NULL || strcmp(got, v) == 0);
  free(got);
  assert_int_equal(tt_redis_start(&redis, redis.port), 0);
  int ok = 0;
  for (int i = 0; i < 100 && !ok; i++) {
    ok = tether_store_set(d, sid, v, strlen(v), 0) == 0;
    if (!ok) tt_sleep_ms(100);
  }
  assert_true(ok);
  close3(d, l, s);
}

int main(void) {
  dir = tt_tmpdir("dual");
  if (tt_redis_start(&redis, 0) < 0) return 1;
  snprintf(local_url, sizeof(local_url), "sqlite:%s/local.db", dir);
  snprintf(shared_url, sizeof(shared_url), "%s", redis.url);
  snprintf(dual_url, sizeof(dual_url), "dual:%s+%s", local_url, shared_url);
  int failed = tt_conformance_run("dual conformance", dual_url);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tiers_and_refill),
      cmocka_unit_test(test_sticky_sessions_reach_shared),
      cmocka_unit_test(test_shared_down),
  };
  failed += cmocka_run_group_tests_name("dual", tests, NULL, NULL);
  tt_server_cleanup(&redis);
  tt_rmrf(dir);
  free(dir);
  return failed ? 1 : 0;
}
