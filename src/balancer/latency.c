/* Latency histograms (see latency.h). */
#include "latency.h"

const double tether__latency_bounds_s[TETHER__LATENCY_NB] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                             0.1,    0.25,  0.5,    1,     2.5,  5,     10};

/* Microsecond bounds, so that the request path compares integers. */
static const uint64_t bounds_us[TETHER__LATENCY_NB] = {500,    1000,   2500,   5000,    10000,   25000,   50000,
                                                       100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};

void tether__latency_count(_Atomic uint64_t *buckets, _Atomic uint64_t *sum_us, uint64_t us) {
  int b = 0;
  while (b < TETHER__LATENCY_NB && us > bounds_us[b]) b++;
  atomic_fetch_add_explicit(&buckets[b], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(sum_us, us, memory_order_relaxed);
}

/* The server's buckets and sum, over the workers. */
static uint64_t server_sum(const tether__server_state *s, int nworkers, uint64_t counts[TETHER__LATENCY_NB + 1]) {
  uint64_t sum = 0;
  for (int k = 0; k <= TETHER__LATENCY_NB; k++) counts[k] = 0;
  for (int w = 0; w < nworkers; w++) {
    const tether__wcounters *wc = &s->per_worker[w];
    for (int k = 0; k <= TETHER__LATENCY_NB; k++)
      counts[k] += atomic_load_explicit(&wc->latency[k], memory_order_relaxed);
    sum += atomic_load_explicit(&wc->latency_sum_us, memory_order_relaxed);
  }
  return sum;
}

json_t *tether__server_latency_json(const tether__server_state *s, int nworkers) {
  uint64_t counts[TETHER__LATENCY_NB + 1];
  uint64_t sum = server_sum(s, nworkers, counts);
  json_t *o = json_object(), *a = json_array();
  for (int k = 0; k <= TETHER__LATENCY_NB; k++) json_array_append_new(a, json_integer((json_int_t)counts[k]));
  json_object_set_new(o, "counts", a);
  json_object_set_new(o, "sum_us", json_integer((json_int_t)sum));
  return o;
}

void tether__server_latency_metrics(tether__buf *b, const tether__runtime *rt, int nworkers) {
  tether__buf_appendf(b, "# HELP tether_upstream_response_seconds Time from a request's head to the last byte of "
                         "a server's whole answer, per server.\n# TYPE tether_upstream_response_seconds histogram\n");
  for (size_t k = 0; k < rt->cf->nupstreams; k++)
    for (size_t i = 0; i < rt->cf->upstreams[k].nservers; i++) {
      const tether__server_state *s = rt->ups[k].servers[i];
      uint64_t counts[TETHER__LATENCY_NB + 1], cum = 0;
      uint64_t sum = server_sum(s, nworkers, counts);
      for (int j = 0; j <= TETHER__LATENCY_NB; j++) {
        char le[16];
        cum += counts[j];
        if (j < TETHER__LATENCY_NB)
          snprintf(le, sizeof(le), "%g", tether__latency_bounds_s[j]);
        else
          snprintf(le, sizeof(le), "+Inf");
        tether__buf_appendf(b,
                            "tether_upstream_response_seconds_bucket{upstream=\"%s\",server=\"%s\",le=\"%s\"} %llu\n",
                            s->upstream, s->name, le, (unsigned long long)cum);
      }
      tether__buf_appendf(b,
                          "tether_upstream_response_seconds_sum{upstream=\"%s\",server=\"%s\"} %.6f\n"
                          "tether_upstream_response_seconds_count{upstream=\"%s\",server=\"%s\"} %llu\n",
                          s->upstream, s->name, sum / 1e6, s->upstream, s->name, (unsigned long long)cum);
    }
}
