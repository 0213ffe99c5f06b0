/* The balancer's shared state, types only (see runtime.h): server states that outlive reloads, and the
 * per-generation runtime over them. */
#ifndef TETHER_BALANCER_RUNTIME_T_H
#define TETHER_BALANCER_RUNTIME_T_H

#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "persist/persist-t.h"

typedef enum tether__admin_state {
  TETHER__ADMIN_UP = 0,  /* in service */
  TETHER__ADMIN_DRAIN,   /* bound clients keep coming; no new ones */
  TETHER__ADMIN_DISABLED /* out of service */
} tether__admin_state;

enum {
  TETHER__CLASS_1XX = 0,
  TETHER__CLASS_2XX,
  TETHER__CLASS_3XX,
  TETHER__CLASS_4XX,
  TETHER__CLASS_5XX,
  TETHER__CLASS_ERR,
  TETHER__NCLASSES
};

#define TETHER__LATENCY_NB 14 /* latency histogram buckets (bounds: tether__latency_bounds_s), plus one above */

/* Counters one worker writes and anyone reads (summed over workers). */
typedef struct tether__wcounters {
  _Atomic uint64_t requests[TETHER__NCLASSES]; /* by status class; ERR: no response from the server */
  _Atomic uint64_t connect_errors;
  _Atomic uint64_t retries;
  _Atomic uint64_t sessions[TETHER__SESS_COUNT];    /* session_monitor's counts, by TETHER__SESS_* */
  _Atomic uint64_t latency[TETHER__LATENCY_NB + 1]; /* whole answers by time from request head to last byte */
  _Atomic uint64_t latency_sum_us;
  char pad[64];
} tether__wcounters;

typedef struct tether__server_state {
  char upstream[64];
  char name[64];                  /* "host:port" as configured */
  _Atomic int admin;              /* tether__admin_state */
  _Atomic int health_up;          /* active checks say up (1 when checks are off) */
  _Atomic int health_streak;      /* consecutive results in the current direction */
  _Atomic int fails;              /* passive failures in the current window */
  _Atomic int64_t fail_window_ms; /* start of that window */
  _Atomic int64_t down_until_ms;  /* passive: failed until then */
  _Atomic int64_t up_since_ms;    /* for slow start */
  _Atomic int weight;             /* runtime weight (admin API), from the configuration at first */
  _Atomic int active;             /* requests in flight, all workers */
  _Atomic int64_t drain_since_ms;
  int cfg_drain; /* draining because the configuration says `drain` */
  tether__wcounters per_worker[TETHER__MAX_WORKERS];
} tether__server_state;

/* Per upstream, kept across reloads by name: persistence outcomes per worker. */
typedef struct tether__upstream_state {
  char name[64];
  _Atomic uint64_t outcomes[TETHER__MAX_WORKERS][TETHER__OUT_COUNT];
} tether__upstream_state;

struct tether__persist_rt;

typedef struct tether__upstream_rt {
  const tether__cf_upstream *cf;
  tether__server_state **servers; /* cf->nservers, in configuration order */
  int index;                      /* in the configuration */
  tether__upstream_state *state;
  struct tether__persist_rt *persist; /* the policy's precomputed tables (persist/persist.h) */
} tether__upstream_rt;

typedef struct tether__runtime {
  tether__config *cf;
  tether__upstream_rt *ups; /* cf->nupstreams */
  _Atomic int refs;
  uint64_t generation; /* 1, 2, ... one per successful (re)load */
} tether__runtime;

/* Per-worker balancing state for one upstream (smooth weighted round robin needs it). */
typedef struct tether__balance_state {
  int *current; /* per server */
  uint64_t rng; /* xorshift state for random two */
} tether__balance_state;

#endif
