/* Persistence over balancing: the one place that decides a request's server when a policy is configured,
 * and counts the outcome (tether_persistence_total{upstream,outcome,reason}). */
#include "persist.h"

#include <stdlib.h>
#include <string.h>

#include "../../lib/util.h"
#include "../balance/balance.h"

const char *const tether__outcome_names[TETHER__OUT_COUNT][2] = {
    {"hit", ""}, {"new", ""}, {"break", "down"}, {"break", "drain"}, {"break", "unknown"}, {"break", "overload"}};

int tether__persist_build(tether__upstream_rt *u) {
  const tether__cf_upstream *cu = u->cf;
  if (cu->persist.kind == TETHER__PERSIST_NONE) return 0;
  struct tether__persist_rt *p = tether__calloc(1, sizeof(*p));
  u->persist = p;
  for (size_t i = 0; i < cu->nservers; i++)
    if (!cu->servers[i].backup) p->total_weight += cu->servers[i].weight;
  switch (cu->persist.kind) {
  case TETHER__PERSIST_COOKIE:
    return tether__cookie_values(u);
  case TETHER__PERSIST_APP_COOKIE:
  case TETHER__PERSIST_HASH: {
    if (cu->persist.kind == TETHER__PERSIST_HASH && cu->persist.method == TETHER__HASH_MODULO) return 0;
    /* the ring holds the primaries in configuration order; backups stay out, as in nginx */
    const char *names[TETHER__CF_MAX_SERVERS];
    uint32_t weights[TETHER__CF_MAX_SERVERS];
    size_t n = 0;
    for (size_t i = 0; i < cu->nservers; i++) {
      if (cu->servers[i].backup) continue;
      names[n] = cu->servers[i].name;
      weights[n] = (uint32_t)cu->servers[i].weight;
      n++;
    }
    if (cu->persist.kind == TETHER__PERSIST_HASH && cu->persist.method == TETHER__HASH_MAGLEV)
      return tether_maglev_new(names, weights, n, 0, &p->maglev);
    return tether_ketama_new(names, weights, n, &p->ring);
  }
  default:
    return 0;
  }
}

void tether__persist_free(tether__upstream_rt *u) {
  struct tether__persist_rt *p = u->persist;
  if (p == NULL) return;
  tether_ketama_free(p->ring);
  tether_maglev_free(p->maglev);
  free(p->values);
  free(p);
  u->persist = NULL;
}

void tether__persist_request(const tether__upstream_rt *u, const tether__h1_msg *m, const struct sockaddr *client,
                             const tether_jwt_claims *claims, tether__persist_req *pr) {
  memset(pr, 0, sizeof(*pr));
  pr->bound = -1;
  switch (u->cf->persist.kind) {
  case TETHER__PERSIST_COOKIE:
    tether__cookie_request(u, m, pr, tether_now_ms() / 1000);
    break;
  case TETHER__PERSIST_IP_HASH:
    tether__iphash_request(client, pr);
    break;
  case TETHER__PERSIST_HASH:
  case TETHER__PERSIST_APP_COOKIE:
    tether__chash_request(u, m, client, claims, pr);
    break;
  default:
    break;
  }
}

static int drain_expired(const tether__upstream_rt *u, const tether__server_state *s, int64_t now) {
  if (atomic_load_explicit(&s->admin, memory_order_relaxed) != TETHER__ADMIN_DRAIN || u->cf->drain_timeout_ms <= 0)
    return 0;
  return now - atomic_load_explicit(&s->drain_since_ms, memory_order_relaxed) >= u->cf->drain_timeout_ms;
}

/* Walks a hash policy's preference order: the first server usable for bound requests, not past its drain
 * timeout and under the bounded-load cap. */
static int hash_pick(const tether__upstream_rt *u, const tether__persist_req *pr, int64_t now, int *outcome) {
  int order[64];
  int n = u->cf->persist.kind == TETHER__PERSIST_IP_HASH ? tether__iphash_walk(u, pr, order, 64)
                                                         : tether__chash_walk(u, pr, order, 64);
  uint64_t cap = 0;
  if (u->cf->balance_factor) {
    uint64_t total = 1;
    size_t usable = 0;
    for (size_t i = 0; i < u->cf->nservers; i++) {
      if (u->cf->servers[i].backup || !tether__server_usable_bound(u->servers[i], &u->cf->servers[i], now)) continue;
      int a = atomic_load_explicit(&u->servers[i]->active, memory_order_relaxed);
      total += a > 0 ? (uint64_t)a : 0;
      usable++;
    }
    cap = tether_bounded_cap(total, usable, (unsigned)u->cf->balance_factor);
  }
  *outcome = TETHER__OUT_HIT;
  for (int k = 0; k < n; k++) {
    int i = order[k];
    const tether__server_state *s = u->servers[i];
    int why = -1;
    if (!tether__server_usable_bound(s, &u->cf->servers[i], now))
      why = TETHER__OUT_BREAK_DOWN;
    else if (drain_expired(u, s, now))
      why = TETHER__OUT_BREAK_DRAIN;
    else if (cap && (uint64_t)atomic_load_explicit(&s->active, memory_order_relaxed) >= cap)
      why = TETHER__OUT_BREAK_OVERLOAD;
    if (why < 0) return i;
    if (*outcome == TETHER__OUT_HIT) *outcome = why; /* the first reason the owner was passed over */
  }
  return -1;
}

int tether__persist_pick(const tether__upstream_rt *u, tether__persist_req *pr, tether__balance_state *bs, int worker,
                         int64_t now) {
  const tether__cf_persist *cp = &u->cf->persist;
  int outcome = TETHER__OUT_NEW, idx = -1;
  switch (cp->kind) {
  case TETHER__PERSIST_NONE:
    return tether__balance_pick(u, bs, NULL, now);
  case TETHER__PERSIST_COOKIE:
    if (pr->bound >= 0) {
      const tether__server_state *s = u->servers[pr->bound];
      if (tether__server_usable_bound(s, &u->cf->servers[pr->bound], now) && !drain_expired(u, s, now)) {
        outcome = TETHER__OUT_HIT;
        idx = pr->bound;
        break;
      }
      outcome = drain_expired(u, s, now) ? TETHER__OUT_BREAK_DRAIN : TETHER__OUT_BREAK_DOWN;
      if (cp->strict) {
        atomic_fetch_add_explicit(&u->state->outcomes[worker][outcome], 1, memory_order_relaxed);
        return -2;
      }
    } else if (pr->unknown) {
      outcome = TETHER__OUT_BREAK_UNKNOWN;
    }
    idx = tether__balance_pick(u, bs, NULL, now);
    pr->set_cookie = idx >= 0;
    pr->first_seen = 0; /* a new binding starts its life now */
    break;
  default:
    if (!pr->have_key) { /* app_cookie before the app has set its cookie */
      idx = tether__balance_pick(u, bs, NULL, now);
      break;
    }
    idx = hash_pick(u, pr, now, &outcome);
    if (idx < 0) idx = tether__balance_pick(u, bs, NULL, now); /* nothing on the ring: as nginx, round robin */
    break;
  }
  atomic_fetch_add_explicit(&u->state->outcomes[worker][outcome], 1, memory_order_relaxed);
  return idx;
}

int tether__persist_retry(const tether__upstream_rt *u, tether__persist_req *pr, const uint8_t *tried, int worker,
                          int first_retry, int64_t now) {
  const tether__cf_persist *cp = &u->cf->persist;
  if (cp->kind == TETHER__PERSIST_NONE) return -1;
  /* the server persistence chose failed: the request moves, and that is a break */
  if (first_retry)
    atomic_fetch_add_explicit(&u->state->outcomes[worker][TETHER__OUT_BREAK_DOWN], 1, memory_order_relaxed);
  if (cp->kind == TETHER__PERSIST_COOKIE || !pr->have_key) return -1;
  /* hash policies retry along their own order, as nginx does, so the next request goes where this one did */
  int order[64];
  int n = cp->kind == TETHER__PERSIST_IP_HASH ? tether__iphash_walk(u, pr, order, 64)
                                              : tether__chash_walk(u, pr, order, 64);
  for (int k = 0; k < n; k++) {
    int i = order[k];
    if (i < 0 || tried[i]) continue;
    if (tether__server_usable_bound(u->servers[i], &u->cf->servers[i], now)) return i;
  }
  return -1;
}
