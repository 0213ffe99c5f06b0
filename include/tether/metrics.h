/* Tether: session and store metrics, as a struct and as Prometheus text. */
#ifndef TETHER_METRICS_H
#define TETHER_METRICS_H

#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Store operations with a latency histogram. */
typedef enum tether_store_op {
  TETHER_OP_GET = 0,
  TETHER_OP_SET,
  TETHER_OP_TOUCH,
  TETHER_OP_DESTROY,
  TETHER_OP_COUNT
} tether_store_op;

/* Upper bounds of the latency buckets, in microseconds (the last bucket is +Inf). */
#define TETHER_LATENCY_BUCKETS 12
TETHER_EXTERN extern const uint32_t tether_latency_bounds_us[TETHER_LATENCY_BUCKETS];

typedef struct tether_histogram {
  uint64_t buckets[TETHER_LATENCY_BUCKETS + 1]; /* counts per bucket, not cumulative; last is +Inf */
  uint64_t count;                               /* observations */
  uint64_t sum_us;                              /* sum of observations, microseconds */
} tether_histogram;

/* A snapshot of one store's counters. "missing" counts lost sessions: a validly signed cookie whose
 * session the store no longer has (see docs/sessions.md). */
typedef struct tether_metrics {
  uint64_t created;       /* new sessions generated (no valid cookie, or regenerate) */
  uint64_t loaded;        /* sessions found in the store */
  uint64_t missing;       /* valid cookie, session not in the store: a lost session */
  uint64_t saved;         /* successful writes */
  uint64_t touched;       /* successful TTL refreshes */
  uint64_t destroyed;     /* successful deletes */
  uint64_t errors;        /* failed store operations (unreachable, timeout, error reply, corrupt data) */
  uint64_t reads_local;   /* dual store: reads answered by LOCAL */
  uint64_t reads_shared;  /* dual store: reads answered by SHARED (LOCAL missed) */
  uint64_t revoked;       /* commits that found their session destroyed meanwhile (logout): nothing saved */
  uint64_t oversized;     /* stored sessions over the size limit, treated as corrupt (a new session) */
  uint64_t redirects;     /* redis-cluster: MOVED and ASK redirections followed */
  uint64_t map_refreshes; /* redis-cluster: slot maps read (CLUSTER SHARDS or SLOTS) */
  uint64_t wait_failures; /* redis-cluster wait=N: writes that fewer than N replicas confirmed in time (errors) */
  uint64_t tryagain;      /* redis-cluster: TRYAGAIN answers (keys split by a slot migration), retried */
  tether_histogram latency[TETHER_OP_COUNT];
} tether_metrics;

typedef struct tether_store tether_store;

/* Copies the current counters of a store (thread-safe; counters are atomic). */
TETHER_EXTERN void tether_store_metrics(const tether_store *store, tether_metrics *out);

/* Appends Prometheus text exposition of a store's metrics to buf (NUL-terminated, truncated to cap).
 * Returns the length the full text needs, like snprintf. Metric names:
 *   tether_sessions_{created,loaded,missing,saved,touched,destroyed,revoked,oversized}_total{store=...}
 *   tether_store_errors_total{store=...}
 *   tether_store_reads_total{store=...,tier="local"|"shared"}        (dual store only)
 *   tether_store_latency_seconds{store=...,op="get"|"set"|"touch"|"destroy"} (histogram)
 *   redis-cluster only: tether_store_{redirects,map_refreshes,wait_failures,tryagain}_total{store=...},
 *   tether_store_node_errors_total{store=...,node="host:port"},
 *   tether_store_node_latency_seconds_{sum,count}{store=...,node="host:port"} */
TETHER_EXTERN int tether_metrics_prometheus(const tether_store *store, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
