/* libtether: Prometheus text exposition of a store's metrics. */
#include <stdio.h>
#include <string.h>

#include "store/store_impl.h"
#include "util.h"

static const char *op_names[TETHER_OP_COUNT] = {"get", "set", "touch", "destroy"};

static void counter(tether__buf *b, const char *name, const char *help, const char *kind, uint64_t v) {
  tether__buf_appendf(b, "# HELP %s %s\n# TYPE %s counter\n%s{store=\"%s\"} %llu\n", name, help, name, name, kind,
                      (unsigned long long)v);
}

int tether_metrics_prometheus(const tether_store *st, char *out, size_t cap) {
  tether_metrics m;
  tether_store_metrics(st, &m);
  const char *k = tether_store_kind(st);
  tether__buf b = {0};
  counter(&b, "tether_sessions_created_total", "Sessions generated.", k, m.created);
  counter(&b, "tether_sessions_loaded_total", "Sessions found in the store.", k, m.loaded);
  counter(&b, "tether_sessions_missing_total",
          "Validly signed cookies whose session the store did not have (lost sessions).", k, m.missing);
  counter(&b, "tether_sessions_saved_total", "Sessions written.", k, m.saved);
  counter(&b, "tether_sessions_touched_total", "Session expiries refreshed.", k, m.touched);
  counter(&b, "tether_sessions_destroyed_total", "Sessions deleted.", k, m.destroyed);
  counter(&b, "tether_sessions_revoked_total",
          "Writes refused because the session was destroyed meanwhile (a logout racing a request).", k, m.revoked);
  counter(&b, "tether_sessions_oversized_total", "Stored sessions over the size limit, treated as corrupt.", k,
          m.oversized);
  counter(&b, "tether_store_errors_total", "Failed store operations.", k, m.errors);
  if (strcmp(k, "dual") == 0) {
    tether__buf_appendf(&b,
                        "# HELP tether_store_reads_total Reads answered per tier of the dual store.\n"
                        "# TYPE tether_store_reads_total counter\n"
                        "tether_store_reads_total{store=\"dual\",tier=\"local\"} %llu\n"
                        "tether_store_reads_total{store=\"dual\",tier=\"shared\"} %llu\n",
                        (unsigned long long)m.reads_local, (unsigned long long)m.reads_shared);
  }
  if (strcmp(k, "redis-cluster") == 0) {
    counter(&b, "tether_store_redirects_total", "MOVED and ASK redirections followed.", k, m.redirects);
    counter(&b, "tether_store_map_refreshes_total", "Cluster slot maps read.", k, m.map_refreshes);
    counter(&b, "tether_store_wait_failures_total", "Writes that fewer than wait=N replicas confirmed in time.", k,
            m.wait_failures);
    counter(&b, "tether_store_tryagain_total", "TRYAGAIN answers retried (keys split by a slot migration).", k,
            m.tryagain);
  }
  if (st->ops->metrics_text) st->ops->metrics_text(st, &b);
  tether__buf_appendf(&b, "# HELP tether_store_latency_seconds Latency of store operations.\n"
                          "# TYPE tether_store_latency_seconds histogram\n");
  for (int op = 0; op < TETHER_OP_COUNT; op++) {
    uint64_t cum = 0;
    for (int i = 0; i < TETHER_LATENCY_BUCKETS; i++) {
      cum += m.latency[op].buckets[i];
      tether__buf_appendf(&b, "tether_store_latency_seconds_bucket{store=\"%s\",op=\"%s\",le=\"%g\"} %llu\n", k,
                          op_names[op], tether_latency_bounds_us[i] / 1e6, (unsigned long long)cum);
    }
    cum += m.latency[op].buckets[TETHER_LATENCY_BUCKETS];
    tether__buf_appendf(&b, "tether_store_latency_seconds_bucket{store=\"%s\",op=\"%s\",le=\"+Inf\"} %llu\n", k,
                        op_names[op], (unsigned long long)cum);
    tether__buf_appendf(&b, "tether_store_latency_seconds_sum{store=\"%s\",op=\"%s\"} %.6f\n", k, op_names[op],
                        m.latency[op].sum_us / 1e6);
    tether__buf_appendf(&b, "tether_store_latency_seconds_count{store=\"%s\",op=\"%s\"} %llu\n", k, op_names[op],
                        (unsigned long long)m.latency[op].count);
  }
  int n = (int)b.len;
  if (cap > 0) {
    size_t c = b.len < cap - 1 ? b.len : cap - 1;
    if (c) memcpy(out, b.data, c);
    out[c] = '\0';
  }
  tether__buf_free(&b);
  return n;
}
