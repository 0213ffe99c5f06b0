/* libtether: store dispatch by URL scheme, per-store metrics and latency histograms. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../util.h"
#include "store_impl.h"

const uint32_t tether_latency_bounds_us[TETHER_LATENCY_BUCKETS] = {50,   100,   250,   500,   1000,   2500,
                                                                   5000, 10000, 25000, 50000, 100000, 1000000};

static const struct {
  const char *prefix; /* what the URL starts with */
  const tether__store_ops *ops;
} schemes[] = {
    {"memory:", &tether__store_memory},
    {"sqlite:", &tether__store_sqlite},
    {"redis://", &tether__store_redis},
    {"redis-sentinel://", &tether__store_redis_sentinel},
    {"redis-cluster://", &tether__store_redis_cluster},
    {"memcached://", &tether__store_memcached},
    {"postgres://", &tether__store_postgres},
    {"postgresql://", &tether__store_postgres},
    {"dual:", &tether__store_dual},
    {"jwt:", &tether__store_jwt},
};

static const tether__store_api api;

int tether_store_open(const char *url, tether_store **out) {
  *out = NULL;
  if (url == NULL || *url == '\0') return tether__fail(TETHER_EINVAL, "store URL is empty");
  const tether__store_ops *ops = NULL;
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(schemes); i++) {
    if (strncasecmp(url, schemes[i].prefix, strlen(schemes[i].prefix)) == 0) {
      ops = schemes[i].ops;
      break;
    }
  }
  if (ops == NULL) {
    char *shown = tether__url_redact(url);
    int rc = tether__fail(TETHER_EINVAL,
                          "store URL '%.64s': unknown scheme (expected memory:, sqlite:PATH, redis://, "
                          "redis-sentinel://, redis-cluster://, memcached://, postgres://, dual:LOCAL+SHARED or jwt:)",
                          shown);
    free(shown);
    return rc;
  }
  tether_store *st = tether__calloc(1, sizeof(*st));
  st->ops = ops;
  st->api = &api;
  st->url = tether__url_redact(url);
  int rc = ops->open(st, url);
  if (rc < 0) {
    free(st->url);
    free(st);
    return rc;
  }
  *out = st;
  return 0;
}

void tether_store_close(tether_store *st) {
  if (st == NULL) return;
  st->ops->close(st);
  free(st->url);
  free(st);
}

void tether__store_observe(tether_store *st, tether_store_op op, uint64_t start_us, int rc) {
  tether__store_observe_span(st, op, start_us, tether__mono_us(), rc);
}

void tether__store_observe_span(tether_store *st, tether_store_op op, uint64_t start_us, uint64_t end_us, int rc) {
  uint64_t us = end_us > start_us ? end_us - start_us : 0;
  size_t b = 0;
  while (b < TETHER_LATENCY_BUCKETS && us > tether_latency_bounds_us[b]) b++;
  atomic_fetch_add_explicit(&st->lat_buckets[op][b], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&st->lat_count[op], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&st->lat_sum_us[op], us, memory_order_relaxed);
  if (rc < 0 && rc != TETHER_ENOTFOUND && rc != TETHER_EEXIST) {
    tether__count(st, TETHER__C_ERRORS);
    /* an outage fails every call: warn at most once a second per store, the counter has the rest */
    int64_t now = tether_now_ms(), last = atomic_load_explicit(&st->last_warn_ms, memory_order_relaxed);
    if (now - last < 1000 || !atomic_compare_exchange_strong(&st->last_warn_ms, &last, now)) return;
    tether__log(TETHER_LOG_WARN, "store %s: %s failed: %s", st->ops->kind,
                op == TETHER_OP_GET     ? "get"
                : op == TETHER_OP_SET   ? "set"
                : op == TETHER_OP_TOUCH ? "touch"
                                        : "destroy",
                tether_last_error());
  }
}

int tether__store_check_sid(const char *sid) {
  if (sid == NULL || !tether__sid_valid(sid))
    return tether__fail(TETHER_EINVAL, "invalid session id (1-128 base64url characters expected)");
  return 0;
}

int tether_store_get(tether_store *st, const char *sid, char **json, size_t *len) {
  *json = NULL;
  if (len) *len = 0;
  int rc = tether__store_check_sid(sid);
  if (rc < 0) return rc;
  size_t n = 0;
  uint64_t t0 = tether__mono_us();
  rc = st->ops->get(st, sid, json, &n);
  tether__store_observe(st, TETHER_OP_GET, t0, rc);
  if (len) *len = n;
  return rc;
}

int tether_store_set(tether_store *st, const char *sid, const char *json, size_t len, int64_t expires_ms) {
  return tether_store_write(st, sid, json, len, expires_ms, TETHER_WRITE_UPSERT);
}

int tether_store_write(tether_store *st, const char *sid, const char *json, size_t len, int64_t expires_ms,
                       tether_write_mode mode) {
  int rc = tether__store_check_sid(sid);
  if (rc < 0) return rc;
  if (mode != TETHER_WRITE_UPSERT && mode != TETHER_WRITE_CREATE && mode != TETHER_WRITE_UPDATE)
    return tether__fail(TETHER_EINVAL, "store write: unknown mode %d", (int)mode);
  uint64_t t0 = tether__mono_us();
  rc = st->ops->set(st, sid, json, len, expires_ms, (int)mode);
  tether__store_observe(st, TETHER_OP_SET, t0, rc);
  if (rc == 0) tether__count(st, TETHER__C_SAVED);
  return rc;
}

int tether_store_touch(tether_store *st, const char *sid, const char *json, size_t len, int64_t expires_ms) {
  int rc = tether__store_check_sid(sid);
  if (rc < 0) return rc;
  uint64_t t0 = tether__mono_us();
  rc = st->ops->touch ? st->ops->touch(st, sid, json, len, expires_ms)
                      : st->ops->set(st, sid, json, len, expires_ms, TETHER_WRITE_UPDATE);
  if (rc == TETHER_ENOTFOUND) rc = 0; /* a missing session stays missing */
  tether__store_observe(st, TETHER_OP_TOUCH, t0, rc);
  if (rc == 0) tether__count(st, TETHER__C_TOUCHED);
  return rc;
}

int tether_store_destroy(tether_store *st, const char *sid) {
  int rc = tether__store_check_sid(sid);
  if (rc < 0) return rc;
  uint64_t t0 = tether__mono_us();
  rc = st->ops->destroy(st, sid);
  tether__store_observe(st, TETHER_OP_DESTROY, t0, rc);
  if (rc == 0) tether__count(st, TETHER__C_DESTROYED);
  return rc;
}

int tether_store_purge(tether_store *st) { return st->ops->purge ? st->ops->purge(st) : 0; }

int tether_store_ping(tether_store *st) { return st->ops->ping ? st->ops->ping(st) : 0; }

const char *tether_store_kind(const tether_store *st) { return st->ops->kind; }

char *tether_url_redact(const char *url) { return url ? tether__url_redact(url) : NULL; }

const char *tether_store_url(const tether_store *st) { return st->url; }

int tether_store_client_side(const tether_store *st) { return st->ops->client_side; }

void tether_store_metrics(const tether_store *cst, tether_metrics *m) {
  tether_store *st = (tether_store *)cst;
  memset(m, 0, sizeof(*m));
#define LOAD(i) atomic_load_explicit(&st->counters[i], memory_order_relaxed)
  m->created = LOAD(TETHER__C_CREATED);
  m->loaded = LOAD(TETHER__C_LOADED);
  m->missing = LOAD(TETHER__C_MISSING);
  m->saved = LOAD(TETHER__C_SAVED);
  m->touched = LOAD(TETHER__C_TOUCHED);
  m->destroyed = LOAD(TETHER__C_DESTROYED);
  m->errors = LOAD(TETHER__C_ERRORS);
  m->reads_local = LOAD(TETHER__C_READS_LOCAL);
  m->reads_shared = LOAD(TETHER__C_READS_SHARED);
  m->revoked = LOAD(TETHER__C_REVOKED);
  m->oversized = LOAD(TETHER__C_OVERSIZED);
  m->redirects = LOAD(TETHER__C_REDIRECTS);
  m->map_refreshes = LOAD(TETHER__C_MAP_REFRESHES);
  m->wait_failures = LOAD(TETHER__C_WAIT_FAILURES);
  m->tryagain = LOAD(TETHER__C_TRYAGAIN);
#undef LOAD
  for (int op = 0; op < TETHER_OP_COUNT; op++) {
    for (int b = 0; b <= TETHER_LATENCY_BUCKETS; b++)
      m->latency[op].buckets[b] = atomic_load_explicit(&st->lat_buckets[op][b], memory_order_relaxed);
    m->latency[op].count = atomic_load_explicit(&st->lat_count[op], memory_order_relaxed);
    m->latency[op].sum_us = atomic_load_explicit(&st->lat_sum_us[op], memory_order_relaxed);
  }
}

static const tether__store_api api = {.open = tether_store_open,
                                      .close = tether_store_close,
                                      .get = tether_store_get,
                                      .write = tether_store_write,
                                      .destroy = tether_store_destroy,
                                      .purge = tether_store_purge,
                                      .ping = tether_store_ping};
