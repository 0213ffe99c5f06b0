/* The balancer's shared state: one runtime per configuration generation (immutable, reference counted,
 * swapped on reload), over server states that outlive reloads (health, failures, in-flight counts,
 * counters), so a reload neither forgets a dead server nor resets the metrics. */
#ifndef TETHER_BALANCER_RUNTIME_H
#define TETHER_BALANCER_RUNTIME_H

#include <stdatomic.h>
#include <stdint.h>

#include "config.h"

typedef enum tether__admin_state {
  TETHER__ADMIN_UP = 0,   /* in service */
  TETHER__ADMIN_DRAIN,    /* bound clients keep coming; no new ones */
  TETHER__ADMIN_DISABLED  /* out of service */
} tether__admin_state;

enum { TETHER__CLASS_1XX = 0, TETHER__CLASS_2XX, TETHER__CLASS_3XX, TETHER__CLASS_4XX, TETHER__CLASS_5XX,
       TETHER__CLASS_ERR, TETHER__NCLASSES };

/* Counters one worker writes and anyone reads (summed over workers). */
typedef struct tether__wcounters {
  _Atomic uint64_t requests[TETHER__NCLASSES]; /* by status class; ERR: no response from the server */
  _Atomic uint64_t connect_errors;
  _Atomic uint64_t retries;
  char pad[64];
} tether__wcounters;

typedef struct tether__server_state {
  char upstream[64];
  char name[64];             /* "host:port" as configured */
  _Atomic int admin;         /* tether__admin_state */
  _Atomic int health_up;     /* active checks say up (1 when checks are off) */
  _Atomic int health_streak; /* consecutive results in the current direction */
  _Atomic int fails;         /* passive failures in the current window */
  _Atomic int64_t fail_window_ms; /* start of that window */
  _Atomic int64_t down_until_ms;  /* passive: failed until then */
  _Atomic int64_t up_since_ms;    /* for slow start */
  _Atomic int weight;        /* runtime weight (admin API), from the configuration at first */
  _Atomic int active;        /* requests in flight, all workers */
  _Atomic int64_t drain_since_ms;
  int cfg_drain;             /* draining because the configuration says `drain` */
  tether__wcounters per_worker[TETHER__MAX_WORKERS];
} tether__server_state;

/* Per upstream, kept across reloads by name: persistence outcomes per worker. */
typedef struct tether__upstream_state {
  char name[64];
  _Atomic uint64_t outcomes[TETHER__MAX_WORKERS][8]; /* tether__outcome */
} tether__upstream_state;

struct tether__persist_rt;

typedef struct tether__upstream_rt {
  const tether__cf_upstream *cf;
  tether__server_state **servers; /* cf->nservers, in configuration order */
  int index;                       /* in the configuration */
  tether__upstream_state *state;
  struct tether__persist_rt *persist; /* the policy's precomputed tables (persist/persist.h) */
} tether__upstream_rt;

typedef struct tether__runtime {
  tether__config *cf;
  tether__upstream_rt *ups; /* cf->nupstreams */
  _Atomic int refs;
  uint64_t generation;      /* 1, 2, ... one per successful (re)load */
} tether__runtime;

/* Builds a runtime for cf (taking ownership of it), reusing the server states of servers that keep
 * their upstream and name. Main thread only. refs starts at 1. */
tether__runtime *tether__runtime_new(tether__config *cf);
void tether__runtime_ref(tether__runtime *rt);
void tether__runtime_unref(tether__runtime *rt);
/* Frees every server state (at exit, once no runtime is left). */
void tether__runtime_shutdown(void);
/* Looks up a server state by upstream and server name (admin API); NULL when unknown. */
tether__server_state *tether__server_find(const char *upstream, const char *server);
tether__upstream_state *tether__upstream_find(const char *name);
/* Every server state in registration order (for metrics); returns the count. */
size_t tether__server_all(tether__server_state ***out);

/* Whether a server may take new (unbound) requests now, and whether it may take requests bound to it by
 * persistence (draining servers may). */
int tether__server_usable(const tether__server_state *s, const tether__cf_server *cf, int64_t now_ms);
int tether__server_usable_bound(const tether__server_state *s, const tether__cf_server *cf, int64_t now_ms);
/* Effective weight now (slow start ramps it up after recovery). */
int tether__server_weight(const tether__server_state *s, const tether__cf_server *cf, int64_t now_ms);

/* Passive health: a failure (connect error, reset, timeout) and a success. */
void tether__server_failed(tether__server_state *s, const tether__cf_server *cf, int64_t now_ms);
void tether__server_succeeded(tether__server_state *s);

/* Per-worker balancing state for one upstream (smooth weighted round robin needs it). */
typedef struct tether__balance_state {
  int *current; /* per server */
  uint64_t rng; /* xorshift state for random two */
} tether__balance_state;

/* Picks a server for an unbound request: among usable primaries by the upstream's algorithm, else among
 * usable backups; skips those in `tried` (a bitmap of server indexes, may be NULL). -1 when none. */
int tether__balance_pick(const tether__upstream_rt *u, tether__balance_state *bs, const uint8_t *tried,
                         int64_t now_ms);

#endif
