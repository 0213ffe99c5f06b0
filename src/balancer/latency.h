/* Latency histograms: fixed bucket bounds (seconds, roughly log-scale, 0.5 ms to 10 s, and one bucket above),
 * counted with relaxed atomics by the worker that saw the request and summed by whoever reads them. The
 * balancer keeps one for all requests (per worker) and one per server (in its per-worker counters). */
#ifndef TETHER_BALANCER_LATENCY_H
#define TETHER_BALANCER_LATENCY_H

#include <jansson.h>
#include <stdint.h>

#include "../lib/util.h"
#include "runtime-t.h"

extern const double tether__latency_bounds_s[TETHER__LATENCY_NB];

/* Counts a duration of `us` microseconds into buckets[TETHER__LATENCY_NB + 1] and its sum. */
void tether__latency_count(_Atomic uint64_t *buckets, _Atomic uint64_t *sum_us, uint64_t us);

/* A server's histogram for GET /status: {"counts": [...], "sum_us": N}; the bounds are the status's "le". */
json_t *tether__server_latency_json(const tether__server_state *s, int nworkers);

/* tether_upstream_response_seconds{upstream,server}: every server of the runtime, Prometheus text. */
void tether__server_latency_metrics(tether__buf *b, const tether__runtime *rt, int nworkers);

#endif
