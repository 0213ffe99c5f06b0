/* libtether: the Redis and Redis Sentinel stores, in connect-redis v7's wire format.
 *   redis://[user:pass@]host[:port][/db][?params]
 *   redis-sentinel://host[:port][,host[:port]...]/mastername[/db][?params]
 * Parameters: prefix (key prefix, default "sess:"), timeout_ms (each command, 1000), connect_timeout_ms
 * (1000), pool (most connections open at once, 16), max_value (bytes a read fetches at most, 1 MiB; 0: no
 * limit): a read is GETRANGE key 0 max_value, so a larger value (TETHER_E2BIG, a corrupt session to
 * tether_session_load) is never transferred whole; an empty string reads as a missing key.
 * Keys are <prefix><sid> and values the session's JSON: set = SET key json EX ttl, get = GET, touch =
 * EXPIRE key ttl, destroy = DEL, with ttl from tether__ttl_seconds (86400 without expiry; <= 0 deletes).
 *
 * One handle serves many threads through a mutex-protected pool of synchronous hiredis connections: a
 * call takes one, uses it and gives it back; a connection that failed is dropped, never reused. When a
 * server cannot be reached, new connection attempts back off (50 ms doubling to 2 s) and calls fail fast
 * with TETHER_EUNAVAIL meanwhile, rather than each waiting for a connect timeout.
 * Sentinel: the master is what `SENTINEL get-master-addr-by-name` says (sentinels asked in turn), checked
 * with ROLE on every new connection; a failed connection, a READONLY reply or a node that is no longer the
 * master sends us back to the sentinels. Credentials in the URL are for the data nodes, not the
 * sentinels. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "../util.h"
#include "store_impl.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
#define REDIS_PORT 6379
#define SENTINEL_PORT 26379
#define REDIS_MAX_VALUE (1024L * 1024) /* bytes a read fetches at most (libtether's session size limit) */

typedef struct rconn {
  struct rconn *next; /* in the idle list */
  redisContext *ctx;
  uint64_t gen; /* the store's generation when it was made: older ones are dropped */
} rconn;

typedef struct rstore {
  pthread_mutex_t lock;
  pthread_cond_t changed; /* a connection went back to the pool or was dropped */
  rconn *idle;            /* connections ready for use */
  int nconn;              /* connections open or being opened, idle or in use */
  int pool;               /* most connections open at once */
  char *name;             /* "redis" or "redis-sentinel MASTERNAME", for messages */
  char *sentinel_name;    /* "redis-sentinel MASTERNAME: sentinel", for messages about sentinels */
  char *prefix;           /* key prefix */
  int timeout_ms;         /* each command */
  int connect_timeout_ms;
  long max_value; /* reads fetch at most this many bytes; 0: no limit */
  char *user;     /* NULL or "": AUTH with the password alone */
  char *password; /* NULL: no AUTH */
  int db;         /* SELECT after connecting when not 0 */
  int sentinel;   /* redis-sentinel:// */
  char *master_name;
  tether__url_host sentinels[TETHER__URL_MAX_HOSTS];
  size_t nsentinels;
  size_t next_sentinel; /* the one that answered last, asked first */
  char *host;           /* the node we talk to (sentinel: the last master named; NULL before) */
  int port;
  int stale;            /* sentinel: ask the sentinels again before the next connection */
  uint64_t gen;         /* bumped when the master changes: connections to the old one are dropped */
  int backoff_ms;       /* 0 while the server is reachable */
  uint64_t retry_at_us; /* monotonic: while backing off, no new connection before this */
  int probing;          /* while backing off, one call tries to connect and the others fail fast */
  char down_msg[512];   /* why the last attempt failed, repeated while backing off */
} rstore;

/* ---- helpers ---- */

static struct timeval tv_ms(int ms) { return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000}; }

/* Writing to a socket the server closed raises SIGPIPE, which would kill the application. As libpq does,
 * block it in this thread for the duration of a call and swallow one that we caused. */
void tether__sigpipe_block(tether__sigpipe_guard *g) {
  sigset_t set, old, pending;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, &old);
  g->was_blocked = sigismember(&old, SIGPIPE);
  g->was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
}

void tether__sigpipe_restore(const tether__sigpipe_guard *g) {
  sigset_t set, pending;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  if (!g->was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR) {
    }
  }
  if (!g->was_blocked) pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

/* The error of a failed hiredis call: a timeout, an unreachable server, or a broken protocol. err_no is
 * errno right after the call; who names the kind of node ("redis", "redis-sentinel NAME: sentinel"). */
static int io_fail(const rstore *r, const char *who, const char *host, int port, const redisContext *c, int err_no,
                   const char *what) {
  if (c->err == REDIS_ERR_IO &&
      (err_no == EAGAIN || err_no == EWOULDBLOCK || err_no == ETIMEDOUT || err_no == EINPROGRESS)) {
    int connecting = strcmp(what, "connect") == 0;
    return tether__fail(TETHER_ETIMEDOUT, "%s %s:%d: %s: no answer within %d ms", who, host, port, what,
                        connecting ? r->connect_timeout_ms : r->timeout_ms);
  }
  int code = c->err == REDIS_ERR_PROTOCOL || c->err == REDIS_ERR_OOM ? TETHER_ESTORE : TETHER_EUNAVAIL;
  return tether__fail(code, "%s %s:%d: %s: %s", who, host, port, what, c->errstr[0] ? c->errstr : "connection error");
}

static int node_connect(const rstore *r, const char *who, const char *host, int port, redisContext **out) {
  *out = NULL;
  errno = 0;
  redisContext *c = redisConnectWithTimeout(host, port, tv_ms(r->connect_timeout_ms));
  int err_no = errno;
  if (c == NULL) return tether__fail(TETHER_EUNAVAIL, "%s %s:%d: connect: out of memory", who, host, port);
  if (c->err) {
    int rc = io_fail(r, who, host, port, c, err_no, "connect");
    redisFree(c);
    return rc == TETHER_ETIMEDOUT ? rc : TETHER_EUNAVAIL;
  }
  if (redisSetTimeout(c, tv_ms(r->timeout_ms)) != REDIS_OK) {
    int rc = tether__fail(TETHER_EUNAVAIL, "%s %s:%d: setting the timeout: %s", who, host, port, c->errstr);
    redisFree(c);
    return rc;
  }
  *out = c;
  return 0;
}

/* One command on a connection that is not pooled (setup, sentinel queries). An error reply fails too. */
static int setup_command(const rstore *r, const char *who, redisContext *c, int argc, const char **argv,
                         redisReply **out) {
  errno = 0;
  redisReply *rep = redisCommandArgv(c, argc, argv, NULL);
  int err_no = errno;
  *out = NULL;
  if (rep == NULL) return io_fail(r, who, c->tcp.host, c->tcp.port, c, err_no, argv[0]);
  if (rep->type == REDIS_REPLY_ERROR) {
    int rc = tether__fail(TETHER_ESTORE, "%s %s:%d: %s: %.*s", who, c->tcp.host, c->tcp.port, argv[0], (int)rep->len,
                          rep->str);
    freeReplyObject(rep);
    return rc;
  }
  *out = rep;
  return 0;
}

/* AUTH, ROLE (sentinel: it must be the master) and SELECT on a new data connection. */
static int node_prepare(const rstore *r, redisContext *c) {
  redisReply *rep;
  int rc;
  if (r->password) {
    int with_user = r->user && *r->user;
    const char *argv[] = {"AUTH", with_user ? r->user : r->password, r->password};
    if ((rc = setup_command(r, r->name, c, with_user ? 3 : 2, argv, &rep)) < 0) return rc;
    freeReplyObject(rep);
  }
  if (r->sentinel) {
    const char *argv[] = {"ROLE"};
    if ((rc = setup_command(r, r->name, c, 1, argv, &rep)) < 0) return rc;
    const char *role =
        rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 && rep->element[0]->type == REDIS_REPLY_STRING
            ? rep->element[0]->str
            : "?";
    if (strcmp(role, "master") != 0)
      rc = tether__fail(TETHER_EUNAVAIL, "%s %s:%d: not the master (ROLE says %s)", r->name, c->tcp.host, c->tcp.port,
                        role);
    freeReplyObject(rep);
    if (rc < 0) return rc;
  }
  if (r->db != 0) {
    char db[16];
    snprintf(db, sizeof(db), "%d", r->db);
    const char *argv[] = {"SELECT", db};
    if ((rc = setup_command(r, r->name, c, 2, argv, &rep)) < 0) return rc;
    freeReplyObject(rep);
  }
  return 0;
}

static void free_list(rconn *c) {
  while (c) {
    rconn *next = c->next;
    redisFree(c->ctx);
    free(c);
    c = next;
  }
}

/* Detaches the idle connections (under the lock); the caller frees them after unlocking. */
static rconn *take_idle_locked(rstore *r) {
  rconn *list = r->idle;
  for (rconn *c = list; c; c = c->next) r->nconn--;
  r->idle = NULL;
  return list;
}

/* ---- sentinel ---- */

/* Asks the sentinels in turn where the master is. */
static int discover(rstore *r, char **host, int *port) {
  pthread_mutex_lock(&r->lock);
  size_t first = r->next_sentinel;
  pthread_mutex_unlock(&r->lock);
  tether__buf why = {0};
  for (size_t k = 0; k < r->nsentinels; k++) {
    size_t i = (first + k) % r->nsentinels;
    redisContext *c;
    redisReply *rep = NULL;
    int rc = node_connect(r, r->sentinel_name, r->sentinels[i].host, r->sentinels[i].port, &c);
    if (rc == 0) {
      const char *argv[] = {"SENTINEL", "get-master-addr-by-name", r->master_name};
      rc = setup_command(r, r->sentinel_name, c, 3, argv, &rep);
      if (rc == 0 && rep->type == REDIS_REPLY_NIL) {
        rc = tether__fail(TETHER_EUNAVAIL, "%s %s:%d: does not monitor a master called '%s'", r->sentinel_name,
                          c->tcp.host, c->tcp.port, r->master_name);
      } else if (rc == 0) {
        long p = 0;
        int ok = rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 && rep->element[0]->type == REDIS_REPLY_STRING &&
                 rep->element[1]->type == REDIS_REPLY_STRING;
        if (ok) p = strtol(rep->element[1]->str, NULL, 10);
        if (ok && p > 0 && p <= 65535) {
          *host = tether__strndup(rep->element[0]->str, rep->element[0]->len);
          *port = (int)p;
        } else {
          rc = tether__fail(TETHER_ESTORE, "%s %s:%d: unexpected answer to SENTINEL get-master-addr-by-name",
                            r->sentinel_name, c->tcp.host, c->tcp.port);
        }
      }
      if (rep) freeReplyObject(rep);
      redisFree(c);
    }
    if (rc == 0) {
      pthread_mutex_lock(&r->lock);
      r->next_sentinel = i;
      pthread_mutex_unlock(&r->lock);
      tether__buf_free(&why);
      return 0;
    }
    tether__buf_appendf(&why, "%s%s", why.len ? "; " : "", tether_last_error());
  }
  int rc = tether__fail(TETHER_EUNAVAIL, "%s: no sentinel named the master (%s)", r->name,
                        why.data ? why.data : "no sentinels");
  tether__buf_free(&why);
  return rc;
}

/* Records the master the sentinels named; returns the generation connections to it belong to. */
static uint64_t set_master(rstore *r, const char *host, int port) {
  rconn *old = NULL;
  pthread_mutex_lock(&r->lock);
  int changed = r->host == NULL || strcmp(r->host, host) != 0 || r->port != port;
  if (changed) {
    if (r->host)
      tether__log(TETHER_LOG_WARN, "%s: master is now %s:%d (was %s:%d)", r->name, host, port, r->host, r->port);
    else
      tether__log(TETHER_LOG_INFO, "%s: master is %s:%d", r->name, host, port);
    free(r->host);
    r->host = tether__strdup(host);
    r->port = port;
    r->gen++;
    old = take_idle_locked(r);
    pthread_cond_broadcast(&r->changed);
  }
  r->stale = 0;
  uint64_t gen = r->gen;
  pthread_mutex_unlock(&r->lock);
  free_list(old);
  return gen;
}

/* host:port failed as master: the next connection asks the sentinels first. */
static void forget_master(rstore *r, const char *host, int port) {
  pthread_mutex_lock(&r->lock);
  if (r->host && strcmp(r->host, host) == 0 && r->port == port) r->stale = 1;
  pthread_mutex_unlock(&r->lock);
}

/* ---- the pool ---- */

/* Opens and prepares a data connection (sentinel: to the master, asking the sentinels when needed). */
static int open_conn(rstore *r, redisContext **out, uint64_t *gen) {
  char failed_msg[512] = "";
  char *failed_host = NULL;
  int failed_port = 0, failed_rc = 0, rc = 0;
  for (int attempt = 0; attempt < 2; attempt++) {
    pthread_mutex_lock(&r->lock);
    int cached = r->host && !r->stale;
    char *host = cached ? tether__strdup(r->host) : NULL;
    int port = r->port;
    *gen = r->gen;
    pthread_mutex_unlock(&r->lock);
    if (!cached) {
      if ((rc = discover(r, &host, &port)) < 0) break;
      *gen = set_master(r, host, port);
      if (failed_host && strcmp(host, failed_host) == 0 && port == failed_port) {
        /* the sentinels still name the node that just failed: report that failure */
        free(host);
        rc = tether__fail(failed_rc, "%s", failed_msg);
        break;
      }
    }
    redisContext *c;
    rc = node_connect(r, r->name, host, port, &c);
    if (rc == 0 && (rc = node_prepare(r, c)) < 0) redisFree(c);
    if (rc == 0) {
      free(host);
      free(failed_host);
      *out = c;
      return 0;
    }
    if (!r->sentinel || !cached) {
      free(host);
      break;
    }
    /* the master we knew failed: ask the sentinels at once, they may know of a failover */
    snprintf(failed_msg, sizeof(failed_msg), "%s", tether_last_error());
    failed_rc = rc;
    forget_master(r, host, port);
    free(failed_host);
    failed_host = host;
    failed_port = port;
  }
  free(failed_host);
  return rc;
}

/* Takes a connection from the pool, or opens one; *reused says it was pooled (it may have gone stale). */
static int take(rstore *r, rconn **out, int *reused) {
  *out = NULL;
  *reused = 0;
  pthread_mutex_lock(&r->lock);
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += r->timeout_ms / 1000;
  deadline.tv_nsec += (long)(r->timeout_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  while (r->idle == NULL && r->nconn >= r->pool) {
    if (pthread_cond_timedwait(&r->changed, &r->lock, &deadline) == ETIMEDOUT && r->idle == NULL &&
        r->nconn >= r->pool) {
      pthread_mutex_unlock(&r->lock);
      return tether__fail(TETHER_ETIMEDOUT, "%s: all %d pooled connections stayed busy for %d ms", r->name, r->pool,
                          r->timeout_ms);
    }
  }
  if (r->idle) {
    rconn *c = r->idle;
    r->idle = c->next;
    c->next = NULL;
    pthread_mutex_unlock(&r->lock);
    *out = c;
    *reused = 1;
    return 0;
  }
  if (r->backoff_ms > 0 && (r->probing || tether__mono_us() < r->retry_at_us)) {
    uint64_t now = tether__mono_us();
    int wait_ms = r->retry_at_us > now ? (int)((r->retry_at_us - now + 999) / 1000) : 0;
    int rc = tether__fail(TETHER_EUNAVAIL, "%s (reconnecting: next attempt in %d ms)", r->down_msg, wait_ms);
    pthread_mutex_unlock(&r->lock);
    return rc;
  }
  int probe = r->backoff_ms > 0;
  r->probing |= probe;
  r->nconn++;
  pthread_mutex_unlock(&r->lock);

  redisContext *ctx = NULL;
  uint64_t gen = 0;
  int rc = open_conn(r, &ctx, &gen);

  pthread_mutex_lock(&r->lock);
  if (probe) r->probing = 0;
  if (rc < 0) {
    r->nconn--;
    pthread_cond_broadcast(&r->changed);
    if (r->backoff_ms == 0) tether__log(TETHER_LOG_WARN, "%s; reconnecting with backoff", tether_last_error());
    r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (r->backoff_ms > BACKOFF_MAX_MS) r->backoff_ms = BACKOFF_MAX_MS;
    r->retry_at_us = tether__mono_us() + (uint64_t)r->backoff_ms * 1000;
    snprintf(r->down_msg, sizeof(r->down_msg), "%s", tether_last_error());
    pthread_mutex_unlock(&r->lock);
    return rc;
  }
  if (r->backoff_ms > 0) {
    tether__log(TETHER_LOG_INFO, "%s %s:%d: reconnected", r->name, ctx->tcp.host, ctx->tcp.port);
    r->backoff_ms = 0;
  }
  pthread_mutex_unlock(&r->lock);
  rconn *c = tether__calloc(1, sizeof(*c));
  c->ctx = ctx;
  c->gen = gen;
  *out = c;
  return 0;
}

/* Gives a healthy connection back (one to an old master is closed instead). */
static void give(rstore *r, rconn *c) {
  pthread_mutex_lock(&r->lock);
  if (c->gen == r->gen) {
    c->next = r->idle;
    r->idle = c;
    c = NULL;
  } else {
    r->nconn--;
  }
  pthread_cond_signal(&r->changed);
  pthread_mutex_unlock(&r->lock);
  free_list(c);
}

/* Closes a connection that failed, and the idle ones: they most likely broke the same way. */
static void drop(rstore *r, rconn *c) {
  pthread_mutex_lock(&r->lock);
  r->nconn--;
  rconn *idle = take_idle_locked(r);
  pthread_cond_broadcast(&r->changed);
  pthread_mutex_unlock(&r->lock);
  free_list(c);
  free_list(idle);
}

/* Runs one command. A pooled connection that turns out broken (server restarted) and a READONLY reply
 * (sentinel: the master was demoted) get one more try on a new connection; every command we send is
 * idempotent. Error replies come back as replies. */
static int run(rstore *r, int argc, const char **argv, const size_t *lens, redisReply **out) {
  tether__sigpipe_guard guard;
  tether__sigpipe_block(&guard);
  int rc;
  *out = NULL;
  for (int attempt = 0;; attempt++) {
    rconn *c;
    int reused;
    if ((rc = take(r, &c, &reused)) < 0) break;
    errno = 0;
    redisReply *rep = redisCommandArgv(c->ctx, argc, argv, lens);
    int err_no = errno;
    if (rep == NULL) {
      rc = io_fail(r, r->name, c->ctx->tcp.host, c->ctx->tcp.port, c->ctx, err_no, argv[0]);
      drop(r, c);
      if (reused && attempt == 0 && rc != TETHER_ETIMEDOUT) continue;
      break;
    }
    if (r->sentinel && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "READONLY", 8) == 0) {
      rc = tether__fail(TETHER_EUNAVAIL, "%s %s:%d: %s: %.*s", r->name, c->ctx->tcp.host, c->ctx->tcp.port, argv[0],
                        (int)rep->len, rep->str);
      freeReplyObject(rep);
      forget_master(r, c->ctx->tcp.host, c->ctx->tcp.port);
      drop(r, c);
      if (attempt == 0) continue;
      break;
    }
    give(r, c);
    *out = rep;
    rc = 0;
    break;
  }
  tether__sigpipe_restore(&guard);
  return rc;
}

/* ---- the store operations ---- */

static char *make_key(const rstore *r, const char *sid) { return tether__asprintf("%s%s", r->prefix, sid); }

/* An error reply as TETHER_ESTORE; the key is shown with only the start of the session id. */
static int reply_fail(const rstore *r, const redisReply *rep, const char *what, const char *sid) {
  return tether__fail(TETHER_ESTORE, "%s: %s %s%.6s...: %.*s", r->name, what, r->prefix, sid, (int)rep->len, rep->str);
}

int tether__redis_get_reply(struct redisReply *rep, const char *who, const char *prefix, const char *sid,
                            long max_value, char **json, size_t *len) {
  if (rep->type == REDIS_REPLY_STRING && max_value > 0 && rep->len == 0) return TETHER_ENOTFOUND;
  if (rep->type == REDIS_REPLY_STRING && max_value > 0 && rep->len > (size_t)max_value)
    return tether__fail(TETHER_E2BIG, "%s: the value at %s%.6s... is over max_value=%ld bytes (not fetched)", who,
                        prefix, sid, max_value);
  if (rep->type == REDIS_REPLY_STRING) { /* hiredis's malloc'd, NUL-terminated copy: taken, not copied again */
    *json = rep->str;
    *len = rep->len;
    rep->str = NULL;
    rep->len = 0;
    return 0;
  }
  if (rep->type == REDIS_REPLY_NIL) return TETHER_ENOTFOUND;
  if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "WRONGTYPE", 9) == 0)
    return tether__fail(TETHER_ECORRUPT, "%s: the value at %s%.6s... is not a string (%.*s)", who, prefix, sid,
                        (int)rep->len, rep->str);
  if (rep->type == REDIS_REPLY_ERROR)
    return tether__fail(TETHER_ESTORE, "%s: GET %s%.6s...: %.*s", who, prefix, sid, (int)rep->len, rep->str);
  return tether__fail(TETHER_ECORRUPT, "%s: GET %s%.6s... gave a reply of type %d, not a string", who, prefix, sid,
                      rep->type);
}

int tether__redis_get_argv(const char *key, long max_value, char range_end[24], const char **argv) {
  if (max_value <= 0) {
    argv[0] = "GET";
    argv[1] = key;
    return 2;
  }
  /* one byte more than the limit: a reply that long says the value is over it, without fetching it all
   * (written without printf: every GET on a loop comes here) */
  char t[24];
  size_t k = 0, o = 0;
  for (unsigned long u = (unsigned long)max_value; u; u /= 10) t[k++] = (char)('0' + u % 10);
  while (k) range_end[o++] = t[--k];
  range_end[o] = '\0';
  argv[0] = "GETRANGE";
  argv[1] = key;
  argv[2] = "0";
  argv[3] = range_end;
  return 4;
}

static int redis_get(tether_store *st, const char *sid, char **json, size_t *len) {
  rstore *r = st->impl;
  char *key = make_key(r, sid), end[24];
  const char *argv[4];
  int argc = tether__redis_get_argv(key, r->max_value, end, argv);
  redisReply *rep;
  int rc = run(r, argc, argv, NULL, &rep);
  free(key);
  if (rc < 0) return rc;
  rc = tether__redis_get_reply(rep, r->name, r->prefix, sid, r->max_value, json, len);
  freeReplyObject(rep);
  return rc;
}

static int del_key(rstore *r, const char *sid) {
  char *key = make_key(r, sid);
  const char *argv[] = {"DEL", key};
  redisReply *rep;
  int rc = run(r, 2, argv, NULL, &rep);
  free(key);
  if (rc < 0) return rc;
  if (rep->type == REDIS_REPLY_ERROR) rc = reply_fail(r, rep, "DEL", sid);
  freeReplyObject(rep);
  return rc;
}

int tether__redis_set_reply(const struct redisReply *rep, int mode) {
  if (rep->type != REDIS_REPLY_NIL) return 0;
  return mode == TETHER_WRITE_UPDATE ? TETHER_ENOTFOUND : mode == TETHER_WRITE_CREATE ? TETHER_EEXIST : 0;
}

static int redis_set(tether_store *st, const char *sid, const char *json, size_t len, int64_t expires_ms, int mode) {
  rstore *r = st->impl;
  int64_t ttl = tether__ttl_seconds(expires_ms, tether_now_ms());
  if (ttl <= 0) return del_key(r, sid); /* connect-redis: an expired session is destroyed */
  char *key = make_key(r, sid);
  char ex[24];
  snprintf(ex, sizeof(ex), "%lld", (long long)ttl);
  /* NX: only a new session; XX: only one still there (a destroyed session is never written back) */
  const char *cond = mode == TETHER_WRITE_CREATE ? "NX" : "XX";
  const char *argv[] = {"SET", key, json, "EX", ex, cond};
  const size_t lens[] = {3, strlen(key), len, 2, strlen(ex), 2};
  redisReply *rep;
  int rc = run(r, mode == TETHER_WRITE_UPSERT ? 5 : 6, argv, lens, &rep);
  free(key);
  if (rc < 0) return rc;
  if (rep->type == REDIS_REPLY_ERROR)
    rc = reply_fail(r, rep, "SET", sid);
  else
    rc = tether__redis_set_reply(rep, mode);
  freeReplyObject(rep);
  return rc;
}

static int redis_touch(tether_store *st, const char *sid, const char *json, size_t len, int64_t expires_ms) {
  rstore *r = st->impl;
  TETHER__UNUSED(json);
  TETHER__UNUSED(len);
  int64_t ttl = tether__ttl_seconds(expires_ms, tether_now_ms());
  if (ttl <= 0) return del_key(r, sid);
  char *key = make_key(r, sid);
  char ex[24];
  snprintf(ex, sizeof(ex), "%lld", (long long)ttl);
  const char *argv[] = {"EXPIRE", key, ex};
  redisReply *rep;
  int rc = run(r, 3, argv, NULL, &rep);
  free(key);
  if (rc < 0) return rc;
  /* 0 (no such key) is not an error: connect-redis ignores it too */
  if (rep->type == REDIS_REPLY_ERROR) rc = reply_fail(r, rep, "EXPIRE", sid);
  freeReplyObject(rep);
  return rc;
}

static int redis_destroy(tether_store *st, const char *sid) { return del_key(st->impl, sid); }

static int redis_ping(tether_store *st) {
  rstore *r = st->impl;
  const char *argv[] = {"PING"};
  redisReply *rep;
  int rc = run(r, 1, argv, NULL, &rep);
  if (rc < 0) return rc;
  if (rep->type == REDIS_REPLY_ERROR)
    rc = tether__fail(TETHER_ESTORE, "%s: PING: %.*s", r->name, (int)rep->len, rep->str);
  else if (rep->type != REDIS_REPLY_STATUS || strcmp(rep->str, "PONG") != 0)
    rc = tether__fail(TETHER_ESTORE, "%s: PING: unexpected answer", r->name);
  freeReplyObject(rep);
  return rc;
}

/* ---- opening and closing ---- */

static void rstore_free(rstore *r) {
  free_list(r->idle);
  free(r->name);
  free(r->sentinel_name);
  free(r->prefix);
  free(r->user);
  if (r->password) {
    explicit_bzero(r->password, strlen(r->password));
    free(r->password);
  }
  free(r->master_name);
  for (size_t i = 0; i < r->nsentinels; i++) free(r->sentinels[i].host);
  free(r->host);
  pthread_cond_destroy(&r->changed);
  pthread_mutex_destroy(&r->lock);
  free(r);
}

/* A database number: digits only. */
static int parse_db(const tether_store *st, const char *kind, const char *s, int *db) {
  long v = 0;
  size_t n = strlen(s);
  int ok = n > 0 && n <= 9;
  for (size_t i = 0; ok && i < n; i++) {
    ok = s[i] >= '0' && s[i] <= '9';
    v = v * 10 + (s[i] - '0');
  }
  if (!ok) return tether__fail(TETHER_EINVAL, "%s store URL '%s': database '%s' is not a number", kind, st->url, s);
  *db = (int)v;
  return 0;
}

/* The host part and path: redis:// has one host and an optional db; redis-sentinel:// has sentinels, the
 * master's name and an optional db. */
static int parse_target(tether_store *st, rstore *r, tether__url *u) {
  const char *kind = r->sentinel ? "redis-sentinel" : "redis";
  if (u->nhosts == 0) return tether__fail(TETHER_EINVAL, "%s store URL '%s': no host", kind, st->url);
  if (!r->sentinel) {
    if (u->nhosts > 1)
      return tether__fail(TETHER_EINVAL,
                          "%s store URL '%s': %zu hosts given, one expected (use redis-sentinel:// "
                          "for several)",
                          kind, st->url, u->nhosts);
    r->host = tether__strdup(u->hosts[0].host);
    r->port = u->hosts[0].port ? u->hosts[0].port : REDIS_PORT;
    return *u->path ? parse_db(st, kind, u->path, &r->db) : 0;
  }
  for (size_t i = 0; i < u->nhosts; i++) {
    r->sentinels[i].host = tether__strdup(u->hosts[i].host);
    r->sentinels[i].port = u->hosts[i].port ? u->hosts[i].port : SENTINEL_PORT;
  }
  r->nsentinels = u->nhosts;
  char *slash = strchr(u->path, '/');
  size_t nl = slash ? (size_t)(slash - u->path) : strlen(u->path);
  if (nl == 0)
    return tether__fail(TETHER_EINVAL, "%s store URL '%s': no master name (redis-sentinel://host:port/NAME[/db])", kind,
                        st->url);
  r->master_name = tether__strndup(u->path, nl);
  r->stale = 1;
  return slash ? parse_db(st, kind, slash + 1, &r->db) : 0;
}

static int parse_params(rstore *r, tether__url *u) {
  static const char *const allowed[] = {"prefix", "timeout_ms", "connect_timeout_ms", "pool", "max_value", NULL};
  long timeout, connect_timeout, pool, max_value;
  int rc = tether__url_check_params(u, allowed);
  if (rc == 0) rc = tether__url_param_int(u, "timeout_ms", 1000, 1, 3600000, &timeout);
  if (rc == 0) rc = tether__url_param_int(u, "connect_timeout_ms", 1000, 1, 3600000, &connect_timeout);
  if (rc == 0) rc = tether__url_param_int(u, "pool", 16, 1, 1024, &pool);
  if (rc == 0) rc = tether__url_param_int(u, "max_value", REDIS_MAX_VALUE, 0, 512L * 1024 * 1024, &max_value);
  if (rc < 0) return rc;
  r->max_value = max_value;
  const char *prefix = tether__url_param(u, "prefix");
  r->prefix = tether__strdup(prefix ? prefix : "sess:");
  r->timeout_ms = (int)timeout;
  r->connect_timeout_ms = (int)connect_timeout;
  r->pool = (int)pool;
  return 0;
}

static int open_common(tether_store *st, const char *text, int sentinel) {
  const char *kind = sentinel ? "redis-sentinel" : "redis";
  tether__url u;
  int rc = tether__url_parse(text, &u);
  if (rc < 0) {
    /* the parser quotes the URL as given: say it again without the password */
    tether__url red;
    if (strcmp(text, st->url) != 0 && (rc = tether__url_parse(st->url, &red)) == 0) {
      tether__url_free(&red);
      rc = tether__fail(TETHER_EINVAL, "%s store URL '%s': bad user or password", kind, st->url);
    }
    return rc;
  }
  rstore *r = tether__calloc(1, sizeof(*r));
  pthread_mutex_init(&r->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&r->changed, &ca);
  pthread_condattr_destroy(&ca);
  r->sentinel = sentinel;
  rc = parse_target(st, r, &u);
  if (rc == 0) rc = parse_params(r, &u);
  if (rc == 0 && u.password) {
    r->password = tether__strdup(u.password);
    r->user = u.user ? tether__strdup(u.user) : NULL;
  }
  if (u.password) explicit_bzero(u.password, strlen(u.password));
  tether__url_free(&u);
  if (rc < 0) {
    rstore_free(r);
    return rc;
  }
  r->name = sentinel ? tether__asprintf("redis-sentinel %s", r->master_name) : tether__strdup("redis");
  r->sentinel_name = sentinel ? tether__asprintf("redis-sentinel %s: sentinel", r->master_name) : NULL;
  st->impl = r;
  return 0;
}

int tether__redis_conf_get(const tether_store *st, tether__redis_conf *out) {
  if (st->ops != &tether__store_redis) return -1;
  const rstore *r = st->impl;
  *out = (tether__redis_conf){.host = r->host,
                              .port = r->port,
                              .user = r->user,
                              .password = r->password,
                              .db = r->db,
                              .prefix = r->prefix,
                              .timeout_ms = r->timeout_ms,
                              .connect_timeout_ms = r->connect_timeout_ms,
                              .max_value = r->max_value};
  return 0;
}

static int redis_open(tether_store *st, const char *url) { return open_common(st, url, 0); }
static int sentinel_open(tether_store *st, const char *url) { return open_common(st, url, 1); }

static void redis_close(tether_store *st) { rstore_free(st->impl); }

const tether__store_ops tether__store_redis = {
    .kind = "redis",
    .open = redis_open,
    .close = redis_close,
    .get = redis_get,
    .set = redis_set,
    .touch = redis_touch,
    .destroy = redis_destroy,
    .ping = redis_ping,
};

const tether__store_ops tether__store_redis_sentinel = {
    .kind = "redis-sentinel",
    .open = sentinel_open,
    .close = redis_close,
    .get = redis_get,
    .set = redis_set,
    .touch = redis_touch,
    .destroy = redis_destroy,
    .ping = redis_ping,
};
