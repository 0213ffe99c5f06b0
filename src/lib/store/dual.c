/* libtether: the migration store (the seed's step 2, dual-write). dual:LOCAL+SHARED writes every change to
 * both stores and reads LOCAL first, then SHARED (refilling LOCAL on a SHARED hit). It counts which tier
 * answered, so the move to SHARED only can be watched before it is made. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../util.h"
#include "store_impl.h"

typedef struct dual {
  const tether__store_api *api; /* the public calls, on LOCAL and SHARED */
  tether_store *local;
  tether_store *shared;
} dual;

/* Splits "LOCAL+SHARED" at the '+' that starts a store scheme, so '+' inside a path or password is kept. */
static const char *find_split(const char *s) {
  static const char *schemes[] = {"memory:",      "sqlite:",     "redis://",     "redis-sentinel://",
                                  "memcached://", "postgres://", "postgresql://"};
  for (const char *p = strchr(s, '+'); p; p = strchr(p + 1, '+'))
    for (size_t i = 0; i < TETHER__ARRAY_SIZE(schemes); i++)
      if (strncasecmp(p + 1, schemes[i], strlen(schemes[i])) == 0) return p;
  return NULL;
}

static int dual_open(tether_store *st, const char *text) {
  const char *spec = text + strlen("dual:");
  const char *plus = find_split(spec);
  if (plus == NULL || plus == spec)
    return tether__fail(TETHER_EINVAL, "dual store: expected dual:LOCAL+SHARED (two store URLs), got '%s'", st->url);
  char *left = tether__strndup(spec, (size_t)(plus - spec));
  dual *d = tether__calloc(1, sizeof(*d));
  d->api = st->api;
  int rc = 0;
  if (strncasecmp(left, "dual:", 5) == 0 || strncasecmp(plus + 1, "dual:", 5) == 0 || strncasecmp(left, "jwt:", 4) == 0)
    rc = tether__fail(TETHER_EINVAL, "dual store: LOCAL and SHARED must be server-side stores");
  if (rc == 0) rc = d->api->open(left, &d->local);
  if (rc == 0) rc = d->api->open(plus + 1, &d->shared);
  free(left);
  if (rc < 0) {
    d->api->close(d->local);
    free(d);
    return rc;
  }
  free(st->url);
  st->url = tether__asprintf("dual:%s+%s", d->local->url, d->shared->url);
  st->impl = d;
  return 0;
}

static void dual_close(tether_store *st) {
  dual *d = st->impl;
  d->api->close(d->local);
  d->api->close(d->shared);
  free(d);
}

static int64_t expires_of(const char *json, size_t len) {
  /* For refilling LOCAL with the expiry SHARED has: read cookie.expires back from the JSON. */
  json_error_t e;
  int64_t ms = 0;
  json_t *root = json_loadb(json, len, 0, &e);
  json_t *exp = json_object_get(json_object_get(root, "cookie"), "expires");
  if (json_is_string(exp) && tether__parse_iso8601(json_string_value(exp), &ms) < 0) ms = 0;
  json_decref(root);
  return ms;
}

static int dual_get(tether_store *st, const char *sid, char **json, size_t *len) {
  dual *d = st->impl;
  int rc = d->api->get(d->local, sid, json, len);
  if (rc == 0) {
    tether__count(st, TETHER__C_READS_LOCAL);
    return 0;
  }
  /* LOCAL failing is not fatal: SHARED is the source of truth being migrated to. */
  rc = d->api->get(d->shared, sid, json, len);
  if (rc == 0) {
    tether__count(st, TETHER__C_READS_SHARED);
    if (d->api->write(d->local, sid, *json, *len, expires_of(*json, *len), TETHER_WRITE_CREATE) < 0)
      tether__log(TETHER_LOG_INFO, "dual store: refilling LOCAL failed: %s", tether_last_error());
  }
  return rc;
}

/* Writes go to both; the write succeeds when SHARED took it (LOCAL is a cache being retired). An update
 * (the session was loaded) must find the session in one tier: one that lives only in LOCAL (written before
 * dual-write began) is created in SHARED, one destroyed in both stays destroyed. */
static int dual_set(tether_store *st, const char *sid, const char *json, size_t len, int64_t expires_ms, int mode) {
  dual *d = st->impl;
  int rl = d->api->write(d->local, sid, json, len, expires_ms, (tether_write_mode)mode);
  int rs = d->api->write(d->shared, sid, json, len, expires_ms, (tether_write_mode)mode);
  if (mode == TETHER_WRITE_UPDATE && rs == TETHER_ENOTFOUND && rl == 0)
    rs = d->api->write(d->shared, sid, json, len, expires_ms, TETHER_WRITE_CREATE);
  if (mode == TETHER_WRITE_UPDATE && rl == TETHER_ENOTFOUND) rl = 0; /* LOCAL is refilled by reads */
  if (mode == TETHER_WRITE_CREATE && rl == TETHER_EEXIST) rl = 0;
  if (rl < 0 && rs == 0) {
    /* LOCAL is read first: never leave an older copy there to be served. */
    tether__log(TETHER_LOG_INFO, "dual store: LOCAL write failed, dropping its copy");
    d->api->destroy(d->local, sid);
  }
  return rs;
}

/* A touch writes the whole session to SHARED (not just its expiry): a session that lived only in LOCAL
 * before dual-write began reaches SHARED on its next request, so switching to SHARED only loses no
 * active session. */
static int dual_touch(tether_store *st, const char *sid, const char *json, size_t len, int64_t expires_ms) {
  int rc = dual_set(st, sid, json, len, expires_ms, TETHER_WRITE_UPDATE);
  return rc == TETHER_ENOTFOUND ? 0 : rc; /* gone from both tiers: it stays gone */
}

static int dual_destroy(tether_store *st, const char *sid) {
  dual *d = st->impl;
  int rl = d->api->destroy(d->local, sid);
  int rs = d->api->destroy(d->shared, sid);
  return rs < 0 ? rs : rl;
}

static int dual_purge(tether_store *st) {
  dual *d = st->impl;
  int a = d->api->purge(d->local);
  int b = d->api->purge(d->shared);
  return (a < 0 ? 0 : a) + (b < 0 ? 0 : b);
}

static int dual_ping(tether_store *st) {
  dual *d = st->impl;
  return d->api->ping(d->shared);
}

const tether__store_ops tether__store_dual = {
    .kind = "dual",
    .open = dual_open,
    .close = dual_close,
    .get = dual_get,
    .set = dual_set,
    .touch = dual_touch,
    .destroy = dual_destroy,
    .purge = dual_purge,
    .ping = dual_ping,
};
