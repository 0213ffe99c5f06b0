/* libtether internals: the interface every store implements, URL parsing, and shared helpers. */
#ifndef TETHER_STORE_IMPL_H
#define TETHER_STORE_IMPL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "tether/metrics.h"
#include "tether/store.h"

/* Counters kept per store; session.c and store.c increment them. */
typedef enum tether__counter {
  TETHER__C_CREATED = 0,
  TETHER__C_LOADED,
  TETHER__C_MISSING,
  TETHER__C_SAVED,
  TETHER__C_TOUCHED,
  TETHER__C_DESTROYED,
  TETHER__C_ERRORS,
  TETHER__C_READS_LOCAL,
  TETHER__C_READS_SHARED,
  TETHER__C_REVOKED,
  TETHER__C_OVERSIZED,
  TETHER__C_REDIRECTS,     /* redis-cluster: MOVED and ASK replies followed */
  TETHER__C_MAP_REFRESHES, /* redis-cluster: slot maps read */
  TETHER__C_WAIT_FAILURES, /* redis-cluster wait=N: writes fewer than N replicas confirmed in time */
  TETHER__C_TRYAGAIN,      /* redis-cluster: TRYAGAIN answers (a multi-key command during a migration) retried */
  TETHER__C_COUNT
} tether__counter;

struct tether__buf;

typedef struct tether__store_ops {
  const char *kind; /* "redis", "sqlite", ... as tether_store_kind() returns */
  /* Parses url (the whole URL as given) and sets st->impl; fails with TETHER_EINVAL and a message
   * naming the bad part. */
  int (*open)(tether_store *st, const char *url);
  void (*close)(tether_store *st);
  int (*get)(tether_store *st, const char *sid, char **json, size_t *len);
  /* mode: tether_write_mode; UPDATE of a missing session is TETHER_ENOTFOUND, CREATE of an existing one
   * TETHER_EEXIST */
  int (*set)(tether_store *st, const char *sid, const char *json, size_t len, int64_t expires_ms, int mode);
  /* never creates a missing session; 0 then */
  int (*touch)(tether_store *st, const char *sid, const char *json, size_t len, int64_t expires_ms);
  int (*destroy)(tether_store *st, const char *sid);
  int (*purge)(tether_store *st); /* NULL: the store expires entries by itself */
  int (*ping)(tether_store *st);
  int client_side; /* jwt: sessions live in the cookie */
  /* NULL, or appends the store's own Prometheus lines (redis-cluster: per-node errors and latency) */
  void (*metrics_text)(const tether_store *st, struct tether__buf *b);
} tether__store_ops;

/* The public calls, for stores made of stores (dual:): handed to them in tether_store, so that they do not
 * call back into store.c by name (no file depends on another in a circle). */
typedef struct tether__store_api {
  int (*open)(const char *url, tether_store **out);
  void (*close)(tether_store *st);
  int (*get)(tether_store *st, const char *sid, char **json, size_t *len);
  int (*write)(tether_store *st, const char *sid, const char *json, size_t len, int64_t expires_ms,
               tether_write_mode mode);
  int (*destroy)(tether_store *st, const char *sid);
  int (*purge)(tether_store *st);
  int (*ping)(tether_store *st);
} tether__store_api;

struct tether_store {
  const tether__store_ops *ops;
  const tether__store_api *api; /* the public calls (see above) */
  void *impl;                   /* the implementation's state */
  char *url;                    /* as given, with any password replaced by "***" */
  _Atomic uint64_t counters[TETHER__C_COUNT];
  _Atomic uint64_t lat_buckets[TETHER_OP_COUNT][TETHER_LATENCY_BUCKETS + 1];
  _Atomic uint64_t lat_count[TETHER_OP_COUNT];
  _Atomic uint64_t lat_sum_us[TETHER_OP_COUNT];
  _Atomic int64_t last_warn_ms; /* failures are logged at most once a second */
};

extern const tether__store_ops tether__store_memory;
extern const tether__store_ops tether__store_sqlite;
extern const tether__store_ops tether__store_redis;
extern const tether__store_ops tether__store_redis_sentinel;
extern const tether__store_ops tether__store_redis_cluster;
extern const tether__store_ops tether__store_memcached;
extern const tether__store_ops tether__store_postgres;
extern const tether__store_ops tether__store_dual;
extern const tether__store_ops tether__store_jwt;

static inline void tether__count(tether_store *st, tether__counter c) {
  atomic_fetch_add_explicit(&st->counters[c], 1, memory_order_relaxed);
}

/* store.c: what every call records (latency, errors with a rate-limited warning) and the id check. */
void tether__store_observe(tether_store *st, tether_store_op op, uint64_t start_us, int rc);
/* The same, ended at end_us (tether__mono_us's clock) rather than now. */
void tether__store_observe_span(tether_store *st, tether_store_op op, uint64_t start_us, uint64_t end_us, int rc);
int tether__store_check_sid(const char *sid);

/* redis:// (not sentinel): where and how the store connects, for the asynchronous client (async.c).
 * Returns -1 for any other store. The strings belong to the store. */
typedef struct tether__redis_conf {
  const char *host;
  int port;
  const char *user;     /* NULL: AUTH with the password alone */
  const char *password; /* NULL: no AUTH */
  int db;
  const char *prefix;
  int timeout_ms;
  int connect_timeout_ms;
  long max_value; /* > 0: reads fetch at most this many bytes (GETRANGE); longer values are TETHER_E2BIG */
} tether__redis_conf;
int tether__redis_conf_get(const tether_store *st, tether__redis_conf *out);
/* A GET's reply as a session: 0 with the value (rep's string, taken from it), TETHER_ENOTFOUND, or an error naming who
 * ("redis"), the key and the reply; shared by the blocking store and the asynchronous client. With
 * max_value > 0 the read was GETRANGE key 0 max_value: an empty string is a missing key, and a reply longer
 * than max_value is a value over the limit (TETHER_E2BIG), not fetched whole. */
struct redisReply;
int tether__redis_get_reply(struct redisReply *rep, const char *who, const char *prefix, const char *sid,
                            long max_value, char **json, size_t *len);
/* The read command for a key: GET, or GETRANGE key 0 max_value. argv needs 4 slots; returns argc. */
int tether__redis_get_argv(const char *key, long max_value, char range_end[24], const char **argv);

/* redis.c: writing to a socket the server closed raises SIGPIPE; a blocking call blocks it in its thread and
 * swallows one it caused (as libpq does). */
typedef struct tether__sigpipe_guard {
  int was_blocked; /* SIGPIPE was already blocked in this thread */
  int was_pending; /* one was already pending: not ours to swallow */
} tether__sigpipe_guard;
void tether__sigpipe_block(tether__sigpipe_guard *g);
void tether__sigpipe_restore(const tether__sigpipe_guard *g);

/* A SET [NX|XX] reply (not an error reply): 0, or TETHER_ENOTFOUND (XX) / TETHER_EEXIST (NX) for nil. */
int tether__redis_set_reply(const struct redisReply *rep, int mode);

/* connect-redis's TTL rule: seconds until expires_ms rounded up, or 86400 when there is no expiry.
 * A result <= 0 means the session has expired and must be deleted, not written. */
int64_t tether__ttl_seconds(int64_t expires_ms, int64_t now_ms);

/* ---- URLs ---- */

#define TETHER__URL_MAX_HOSTS 16
#define TETHER__URL_MAX_PARAMS 16

typedef struct tether__url_host {
  char *host; /* without brackets for IPv6 literals */
  int port;   /* 0 when absent */
} tether__url_host;

typedef struct tether__url {
  char *scheme;   /* lower-case, without ':' */
  char *user;     /* percent-decoded, or NULL */
  char *password; /* percent-decoded, or NULL */
  tether__url_host hosts[TETHER__URL_MAX_HOSTS];
  size_t nhosts;
  char *path; /* after the authority, without the leading '/', percent-decoded ("" when none);
               * for URLs without "//" (sqlite:PATH) everything before '?' */
  struct {
    char *key;
    char *value;
  } params[TETHER__URL_MAX_PARAMS];
  size_t nparams;
} tether__url;

/* Parses scheme://[user[:password]@]host[:port][,host[:port]...][/path][?k=v&...] and
 * scheme:opaque[?k=v&...]. Messages name the URL part at fault. */
int tether__url_parse(const char *text, tether__url *url);
void tether__url_free(tether__url *url);
/* Fails with a message for any parameter not in allowed (NULL-terminated). */
int tether__url_check_params(const tether__url *url, const char *const *allowed);
const char *tether__url_param(const tether__url *url, const char *key);
/* An integer parameter within [min, max], or def when absent. */
int tether__url_param_int(const tether__url *url, const char *key, long def, long min, long max, long *out);
/* A copy of text with the password replaced by "***". */
char *tether__url_redact(const char *text);

/* ---- pieces of the client-side store used by session.c ---- */

/* The signer (the first secret) and the verifier (every secret, weak ones allowed) of the cookies, built
 * once by the session manager that holds the secrets. */
typedef struct tether__jwt_codec tether__jwt_codec;
int tether__jwt_codec_new(const char *const *secrets, size_t n, tether__jwt_codec **out);
void tether__jwt_codec_free(tether__jwt_codec *c);
/* Encodes a session (its JSON) as the cookie value: a compact HS256 JWT signed with the first secret. Returns
 * a malloc'd token, or NULL with TETHER_E2BIG set in *err when it would exceed 4096 bytes. */
char *tether__jwt_cookie_encode(const tether__jwt_codec *c, const char *sid, const char *json, int64_t expires_ms,
                                int *err);
/* Verifies a token with any of the secrets and checks its expiry; gives the sid and the JSON. */
int tether__jwt_cookie_decode(const tether__jwt_codec *c, const char *token, char **sid, char **json);

#endif
