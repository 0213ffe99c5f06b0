/* Unit tests of the store counters, latency histograms and their Prometheus text (src/lib/metrics.c,
 * src/lib/store/store.c) after memory-store and session operations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tether/metrics.h"
#include "tether/session.h"
#include "tether/store.h"

static const char *ops[TETHER_OP_COUNT] = {"get", "set", "touch", "destroy"};

static void quiet(tether_log_level level, const char *msg, void *arg) { (void)level, (void)msg, (void)arg; }

/* 3 sets, 2 gets (1 hit, 1 miss), 1 touch, 1 destroy on a memory store. */
static tether_store *exercise(void) {
  tether_store *st;
  assert_int_equal(tether_store_open("memory:", &st), 0);
  assert_int_equal(tether_store_set(st, "aaaa", "{}", 2, 0), 0);
  assert_int_equal(tether_store_set(st, "bbbb", "{}", 2, 0), 0);
  assert_int_equal(tether_store_set(st, "cccc", "{}", 2, tether_now_ms() + 60000), 0);
  char *json;
  size_t len;
  assert_int_equal(tether_store_get(st, "aaaa", &json, &len), 0);
  free(json);
  assert_int_equal(tether_store_get(st, "zzzz", &json, &len), TETHER_ENOTFOUND);
  assert_int_equal(tether_store_touch(st, "bbbb", "{}", 2, tether_now_ms() + 60000), 0);
  assert_int_equal(tether_store_destroy(st, "cccc"), 0);
  /* refused before reaching the store: not an operation, not counted */
  assert_int_equal(tether_store_get(st, "bad id", &json, &len), TETHER_EINVAL);
  return st;
}

static void test_counters_and_histograms(void **state) {
  (void)state;
  tether_store *st = exercise();
  tether_metrics m;
  tether_store_metrics(st, &m);
  assert_int_equal(m.saved, 3);
  assert_int_equal(m.touched, 1);
  assert_int_equal(m.destroyed, 1);
  assert_int_equal(m.errors, 0); /* a miss is not an error */
  assert_int_equal(m.created, 0);
  assert_int_equal(m.loaded, 0);
  assert_int_equal(m.missing, 0);
  const uint64_t want[TETHER_OP_COUNT] = {2, 3, 1, 1};
  for (int op = 0; op < TETHER_OP_COUNT; op++) {
    uint64_t sum = 0;
    for (int b = 0; b <= TETHER_LATENCY_BUCKETS; b++) sum += m.latency[op].buckets[b];
    assert_int_equal(m.latency[op].count, want[op]);
    assert_int_equal(sum, want[op]);
    assert_true(m.latency[op].sum_us < 10000000); /* in-process: well under 10 s in all */
  }
  for (int i = 1; i < TETHER_LATENCY_BUCKETS; i++)
    assert_true(tether_latency_bounds_us[i] > tether_latency_bounds_us[i - 1]);
  tether_store_close(st);
}

static void test_session_counters(void **state) {
  (void)state;
  tether_store *st;
  assert_int_equal(tether_store_open("memory:", &st), 0);
  tether_session_options o;
  tether_session_options_init(&o);
  o.secret[0] = "s";
  o.secret_count = 1;
  o.store = st;
  tether_sessions *m;
  assert_int_equal(tether_sessions_new(&o, &m), 0);
  /* created + saved */
  tether_session *s;
  char *sc;
  assert_int_equal(tether_session_load(m, NULL, &s), 0);
  tether_session_set_string(s, "u", "bob");
  assert_int_equal(tether_session_commit(s, &sc), 0);
  char hdr[256];
  snprintf(hdr, sizeof(hdr), "%.*s", (int)strcspn(sc, ";"), sc);
  char id[64];
  snprintf(id, sizeof(id), "%s", tether_session_id(s));
  free(sc);
  tether_session_free(s);
  /* loaded + touched, twice */
  for (int i = 0; i < 2; i++) {
    assert_int_equal(tether_session_load(m, hdr, &s), 0);
    assert_int_equal(tether_session_commit(s, &sc), 0);
    tether_session_free(s);
  }
  /* missing: the store lost it */
  assert_int_equal(tether_store_destroy(st, id), 0);
  assert_int_equal(tether_session_load(m, hdr, &s), 0);
  tether_session_free(s);
  /* an error: corrupt data in the store */
  assert_int_equal(tether_store_set(st, id, "garbage", 7, 0), 0);
  assert_int_equal(tether_session_load(m, hdr, &s), 0);
  tether_session_free(s);

  tether_metrics mt;
  tether_store_metrics(st, &mt);
  assert_int_equal(mt.created, 3); /* first request, lost, corrupt */
  assert_int_equal(mt.loaded, 2);
  assert_int_equal(mt.missing, 2);
  assert_int_equal(mt.saved, 2); /* the session, then the garbage */
  assert_int_equal(mt.touched, 2);
  assert_int_equal(mt.destroyed, 1);
  assert_int_equal(mt.errors, 1);
  assert_int_equal(mt.latency[TETHER_OP_GET].count, 4);
  tether_sessions_free(m);
  tether_store_close(st);

  /* a store error (the jwt store has nothing to look up) is counted */
  assert_int_equal(tether_store_open("jwt:", &st), 0);
  char *json;
  size_t len;
  assert_int_equal(tether_store_get(st, "abcd", &json, &len), TETHER_ENOTSUP);
  tether_store_metrics(st, &mt);
  assert_int_equal(mt.errors, 1);
  assert_int_equal(mt.latency[TETHER_OP_GET].count, 1);
  tether_store_close(st);
}

/* The value of the line "name{labels} value" in text, or -1. */
static double sample(const char *text, const char *series) {
  size_t n = strlen(series);
  for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
    if (strncmp(p, series, n) == 0 && p[n] == ' ') return strtod(p + n + 1, NULL);
  }
  return -1;
}

static int has_line(const char *text, const char *line) {
  size_t n = strlen(line);
  for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
    if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0')) return 1;
  return 0;
}

static void test_prometheus(void **state) {
  (void)state;
  tether_store *st = exercise();
  int need = tether_metrics_prometheus(st, NULL, 0);
  assert_true(need > 0);
  char *text = malloc((size_t)need + 1);
  assert_int_equal(tether_metrics_prometheus(st, text, (size_t)need + 1), need);
  assert_int_equal(strlen(text), (size_t)need);
  assert_int_equal(text[need - 1], '\n');

  static const char *counters[] = {"tether_sessions_created_total", "tether_sessions_loaded_total",
                                   "tether_sessions_missing_total", "tether_sessions_saved_total",
                                   "tether_sessions_touched_total", "tether_sessions_destroyed_total",
                                   "tether_store_errors_total"};
  char line[256];
  for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
    /* HELP, then TYPE, then the sample */
    char help[160], type[160], value[160];
    snprintf(help, sizeof(help), "# HELP %s ", counters[i]);
    snprintf(type, sizeof(type), "# TYPE %s counter\n", counters[i]);
    snprintf(value, sizeof(value), "\n%s{store=\"memory\"} ", counters[i]);
    const char *h = strstr(text, help), *t = strstr(text, type), *v = strstr(text, value);
    if (!(h && t && v && h < t && t < v)) fail_msg("%s: HELP, TYPE and sample missing or out of order", counters[i]);
  }
  assert_int_equal(sample(text, "tether_sessions_saved_total{store=\"memory\"}"), 3);
  assert_int_equal(sample(text, "tether_sessions_touched_total{store=\"memory\"}"), 1);
  assert_int_equal(sample(text, "tether_sessions_destroyed_total{store=\"memory\"}"), 1);
  assert_int_equal(sample(text, "tether_store_errors_total{store=\"memory\"}"), 0);
  assert_null(strstr(text, "tether_store_reads_total")); /* dual store only */

  assert_true(has_line(text, "# TYPE tether_store_latency_seconds histogram"));
  assert_non_null(strstr(text, "# HELP tether_store_latency_seconds "));
  const double want[TETHER_OP_COUNT] = {2, 3, 1, 1};
  for (int op = 0; op < TETHER_OP_COUNT; op++) {
    /* cumulative buckets with increasing bounds, ending with +Inf == _count */
    double prev_le = -1, prev = 0;
    int seen = 0;
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "tether_store_latency_seconds_bucket{store=\"memory\",op=\"%s\",le=\"", ops[op]);
    for (const char *p = strstr(text, prefix); p; p = strstr(p + 1, prefix)) {
      const char *le = p + strlen(prefix);
      const char *close = strchr(le, '"');
      double v = strtod(strchr(close, ' ') + 1, NULL);
      assert_true(v >= prev);
      prev = v;
      seen++;
      if (strncmp(le, "+Inf", 4) == 0) {
        assert_int_equal(seen, TETHER_LATENCY_BUCKETS + 1);
        break;
      }
      double bound = strtod(le, NULL);
      assert_true(bound > prev_le);
      assert_true(bound * 1e6 > tether_latency_bounds_us[seen - 1] - 0.5 &&
                  bound * 1e6 < tether_latency_bounds_us[seen - 1] + 0.5);
      prev_le = bound;
    }
    assert_int_equal(seen, TETHER_LATENCY_BUCKETS + 1);
    snprintf(line, sizeof(line), "tether_store_latency_seconds_count{store=\"memory\",op=\"%s\"}", ops[op]);
    assert_true(sample(text, line) == want[op]);
    assert_true(prev == want[op]); /* +Inf == _count */
    snprintf(line, sizeof(line), "tether_store_latency_seconds_sum{store=\"memory\",op=\"%s\"}", ops[op]);
    double sum = sample(text, line);
    assert_true(sum >= 0 && sum < 10);
  }

  /* truncation: like snprintf, the full length, a NUL-terminated prefix */
  char small[100];
  memset(small, 'x', sizeof(small));
  assert_int_equal(tether_metrics_prometheus(st, small, sizeof(small)), need);
  assert_int_equal(strlen(small), sizeof(small) - 1);
  assert_memory_equal(small, text, sizeof(small) - 1);
  char one[1] = {'x'};
  assert_int_equal(tether_metrics_prometheus(st, one, 1), need);
  assert_int_equal(one[0], '\0');
  free(text);
  tether_store_close(st);
}

static void test_dual_reads_lines(void **state) {
  (void)state;
  tether_store *st;
  if (tether_store_open("dual:memory:+memory:", &st) != 0) skip(); /* the dual store may not parse this */
  char *text = malloc(65536);
  tether_metrics_prometheus(st, text, 65536);
  assert_non_null(strstr(text, "# TYPE tether_store_reads_total counter"));
  assert_true(sample(text, "tether_store_reads_total{store=\"dual\",tier=\"local\"}") >= 0);
  assert_true(sample(text, "tether_store_reads_total{store=\"dual\",tier=\"shared\"}") >= 0);
  free(text);
  tether_store_close(st);
}

int main(void) {
  tether_log_set(quiet, NULL);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_counters_and_histograms),
      cmocka_unit_test(test_session_counters),
      cmocka_unit_test(test_prometheus),
      cmocka_unit_test(test_dual_reads_lines),
  };
  return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
