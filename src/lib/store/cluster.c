/* libtether: the Redis Cluster store, in connect-redis v7's wire format (the same keys, JSON and TTLs as
 * redis://, so node-redis's createCluster and Tether share sessions).
 *   redis-cluster://[user:pass@]host[:port][,host[:port]...][?params]
 * Any of the hosts (seeds) can bootstrap the slot map. Parameters: prefix, timeout_ms, connect_timeout_ms,
 * max_value as for redis://; pool (idle connections kept per node, 8); wait (after each write, WAIT N
 * replicas, 0); wait_timeout_ms (500); read_from (master|replica: reads from a replica, after READONLY);
 * retry_ms (how long a call keeps retrying through TRYAGAIN, CLUSTERDOWN, a slot no node serves or a node
 * that cannot be reached, 2000); max_redirects (MOVED/ASK followed per call, 5).
 *
 * The slot map comes from CLUSTER SHARDS (CLUSTER SLOTS on servers without it) of the first node that
 * answers, known masters first and then the seeds. A call hashes its key (CRC16, {hash tags}), sends the
 * command to the slot's master on one of that node's pooled connections, and follows the answer: MOVED
 * points the slot at the named node, rereads the map and retries; ASK sends ASKING and the command to the
 * named node, once; TRYAGAIN, CLUSTERDOWN and unreachable nodes reread the map and retry with backoff (10 ms
 * doubling to 200 ms) until retry_ms has passed. With wait=N, WAIT N wait_timeout_ms is pipelined after the
 * write; fewer confirmations fail the write (TETHER_EUNAVAIL, counted in wait_failures): the master has it,
 * but a failover now could lose it. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "../util.h"
#include "cluster.h"
#include "store_impl.h"

#define REDIS_PORT 6379
#define MAX_VALUE (1024L * 1024)
#define BACKOFF_MIN_MS 10
#define BACKOFF_MAX_MS 200

typedef struct cconn {
  struct cconn *next; /* in the node's idle list */
  redisContext *ctx;
} cconn;

typedef struct cnode {
  char *host;
  int port;
  pthread_mutex_t lock; /* the idle list */
  cconn *idle;
  int nidle;
  _Atomic uint64_t errors;     /* failed exchanges (unreachable, timeout, broken connection) */
  _Atomic uint64_t calls;      /* exchanges, for the latency average */
  _Atomic uint64_t lat_sum_us; /* their total time */
} cnode;

typedef struct cstore {
  tether_store *st;        /* for the counters */
  pthread_mutex_t lock;    /* nodes and the map */
  pthread_mutex_t refresh; /* one map read at a time */
  cnode **nodes;           /* never freed before the store: pointers stay valid */
  size_t nnodes;
  uint16_t master[TETHER__CLUSTER_SLOTS];  /* index into nodes, or TETHER__CLUSTER_NONE */
  uint16_t replica[TETHER__CLUSTER_SLOTS]; /* the same, for read_from=replica */
  int have_map;
  uint64_t refreshed_us; /* monotonic time of the last map read that succeeded */
  tether__url_host seeds[TETHER__URL_MAX_HOSTS];
  size_t nseeds;
  char *prefix;
  int timeout_ms, connect_timeout_ms, pool;
  long max_value;
  char *user, *password;
  int wait_n, wait_timeout_ms;
  int replica_reads; /* read_from=replica */
  int retry_ms, max_redirects;
} cstore;

static struct timeval tv_ms(int ms) { return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000}; }

/* ---- nodes and their connections ---- */

static cnode *node_get(cstore *c, const char *host, int port, size_t *index) {
  pthread_mutex_lock(&c->lock);
  size_t i = 0;
  while (i < c->nnodes && !(c->nodes[i]->port == port && strcmp(c->nodes[i]->host, host) == 0)) i++;
  if (i == c->nnodes) {
    cnode *n = tether__calloc(1, sizeof(*n));
    n->host = tether__strdup(host);
    n->port = port;
    pthread_mutex_init(&n->lock, NULL);
    c->nodes = tether__realloc(c->nodes, (c->nnodes + 1) * sizeof(*c->nodes));
    c->nodes[c->nnodes++] = n;
  }
  cnode *n = c->nodes[i];
  pthread_mutex_unlock(&c->lock);
  if (index) *index = i;
  return n;
}

static void free_conns(cconn *k) {
  while (k) {
    cconn *next = k->next;
    redisFree(k->ctx);
    free(k);
    k = next;
  }
}

/* The error of a failed hiredis call on a node: a timeout, an unreachable node or a broken protocol. */
static int io_fail(const char *host, int port, const redisContext *ctx, int err_no, const char *what, int ms) {
  if (ctx->err == REDIS_ERR_IO &&
      (err_no == EAGAIN || err_no == EWOULDBLOCK || err_no == ETIMEDOUT || err_no == EINPROGRESS))
    return tether__fail(TETHER_ETIMEDOUT, "redis-cluster %s:%d: %s: no answer within %d ms", host, port, what, ms);
  int code = ctx->err == REDIS_ERR_PROTOCOL || ctx->err == REDIS_ERR_OOM ? TETHER_ESTORE : TETHER_EUNAVAIL;
  return tether__fail(code, "redis-cluster %s:%d: %s: %s", host, port, what,
                      ctx->errstr[0] ? ctx->errstr : "connection error");
}

static int setup_command(const char *host, int port, redisContext *ctx, int argc, const char **argv, int ms) {
  errno = 0;
  redisReply *rep = redisCommandArgv(ctx, argc, argv, NULL);
  if (rep == NULL) return io_fail(host, port, ctx, errno, argv[0], ms);
  int rc = 0;
  if (rep->type == REDIS_REPLY_ERROR)
    rc = tether__fail(TETHER_ESTORE, "redis-cluster %s:%d: %s: %.*s", host, port, argv[0], (int)rep->len, rep->str);
  freeReplyObject(rep);
  return rc;
}

/* A new connection to host:port, authenticated; READONLY for replica reads. */
static int node_connect(const cstore *c, const char *host, int port, int readonly, redisContext **out) {
  *out = NULL;
  errno = 0;
  redisContext *ctx = redisConnectWithTimeout(host, port, tv_ms(c->connect_timeout_ms));
  int err_no = errno;
  if (ctx == NULL) return tether__fail(TETHER_EUNAVAIL, "redis-cluster %s:%d: connect: out of memory", host, port);
  int rc = 0;
  /* WAIT holds the reply for up to wait_timeout_ms: the read timeout allows for it */
  int ms = c->timeout_ms + (c->wait_n ? c->wait_timeout_ms : 0);
  if (ctx->err)
    rc = io_fail(host, port, ctx, err_no, "connect", c->connect_timeout_ms);
  else if (redisSetTimeout(ctx, tv_ms(ms)) != REDIS_OK)
    rc = tether__fail(TETHER_EUNAVAIL, "redis-cluster %s:%d: setting the timeout: %s", host, port, ctx->errstr);
  if (rc == 0 && c->password) {
    int with_user = c->user && *c->user;
    const char *argv[] = {"AUTH", with_user ? c->user : c->password, c->password};
    rc = setup_command(host, port, ctx, with_user ? 3 : 2, argv, ms);
  }
  if (rc == 0 && readonly) {
    const char *argv[] = {"READONLY"};
    rc = setup_command(host, port, ctx, 1, argv, ms);
  }
  if (rc < 0) {
    redisFree(ctx);
    return rc;
  }
  *out = ctx;
  return 0;
}

static int take(cstore *c, cnode *n, cconn **out, int *reused) {
  pthread_mutex_lock(&n->lock);
  cconn *k = n->idle;
  if (k) {
    n->idle = k->next;
    n->nidle--;
  }
  pthread_mutex_unlock(&n->lock);
  *reused = k != NULL;
  if (k == NULL) {
    redisContext *ctx;
    int rc = node_connect(c, n->host, n->port, c->replica_reads, &ctx);
    if (rc < 0) return rc;
    k = tether__calloc(1, sizeof(*k));
    k->ctx = ctx;
  }
  k->next = NULL;
  *out = k;
  return 0;
}

static void give(cstore *c, cnode *n, cconn *k) {
  pthread_mutex_lock(&n->lock);
  if (n->nidle < c->pool) {
    k->next = n->idle;
    n->idle = k;
    n->nidle++;
    k = NULL;
  }
  pthread_mutex_unlock(&n->lock);
  free_conns(k);
}

/* A connection failed: close it and the node's idle ones, which most likely broke the same way. */
static void drop(cnode *n, cconn *k) {
  pthread_mutex_lock(&n->lock);
  cconn *idle = n->idle;
  n->idle = NULL;
  n->nidle = 0;
  pthread_mutex_unlock(&n->lock);
  free_conns(k);
  free_conns(idle);
}

/* One exchange with a node: [ASKING,] the command [, WAIT], sent in one write. *acked: WAIT's count. A broken
 * pooled connection (the node restarted) gets one more try on a new one. */
static int node_exec(cstore *c, cnode *n, int asking, int wait, int argc, const char **argv, const size_t *lens,
                     redisReply **out, long long *acked) {
  uint64_t t0 = tether__mono_us();
  int rc;
  *out = NULL;
  for (int attempt = 0;; attempt++) {
    cconn *k;
    int reused;
    if ((rc = take(c, n, &k, &reused)) < 0) break;
    if (asking) redisAppendCommand(k->ctx, "ASKING");
    redisAppendCommandArgv(k->ctx, argc, argv, lens);
    if (wait) redisAppendCommand(k->ctx, "WAIT %d %d", c->wait_n, c->wait_timeout_ms);
    redisReply *reps[3] = {NULL, NULL, NULL};
    int want = 1 + (asking != 0) + (wait != 0), got = 0;
    errno = 0;
    while (got < want && redisGetReply(k->ctx, (void **)&reps[got]) == REDIS_OK) got++;
    if (got < want) {
      rc = io_fail(n->host, n->port, k->ctx, errno, argv[0], c->timeout_ms);
      for (int i = 0; i < got; i++) freeReplyObject(reps[i]);
      drop(n, k);
      if (reused && attempt == 0 && rc != TETHER_ETIMEDOUT) continue;
      break;
    }
    give(c, n, k);
    int at = asking ? 1 : 0;
    if (asking) freeReplyObject(reps[0]);
    *out = reps[at];
    if (wait) {
      *acked = reps[at + 1]->type == REDIS_REPLY_INTEGER ? reps[at + 1]->integer : -1;
      freeReplyObject(reps[at + 1]);
    }
    break;
  }
  atomic_fetch_add_explicit(&n->calls, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&n->lat_sum_us, tether__mono_us() - t0, memory_order_relaxed);
  if (rc < 0) atomic_fetch_add_explicit(&n->errors, 1, memory_order_relaxed);
  return rc;
}

/* ---- the slot map ---- */

/* Asks one node for the map: CLUSTER SHARDS, or CLUSTER SLOTS when the server does not know it. */
static int read_map(cstore *c, const char *host, int port, tether__cluster_map *m) {
  redisContext *ctx;
  int rc = node_connect(c, host, port, 0, &ctx);
  if (rc < 0) return rc;
  rc = tether__fail(TETHER_ESTORE, "redis-cluster %s:%d: no slot map", host, port);
  for (int shards = 1; shards >= 0; shards--) {
    errno = 0;
    redisReply *rep = redisCommand(ctx, shards ? "CLUSTER SHARDS" : "CLUSTER SLOTS");
    if (rep == NULL) {
      rc = io_fail(host, port, ctx, errno, "CLUSTER", c->timeout_ms);
      break;
    }
    int unknown = rep->type == REDIS_REPLY_ERROR && shards && tether__cluster_no_shards(rep->str);
    if (rep->type == REDIS_REPLY_ERROR && !unknown)
      rc = tether__fail(TETHER_ESTORE, "redis-cluster %s:%d: CLUSTER %s: %.*s", host, port, shards ? "SHARDS" : "SLOTS",
                        (int)rep->len, rep->str);
    else if (!unknown && tether__cluster_map_parse(rep, shards, m) < 0)
      rc = tether__fail(TETHER_ESTORE, "redis-cluster %s:%d: CLUSTER %s: unexpected reply", host, port,
                        shards ? "SHARDS" : "SLOTS");
    else if (!unknown && m->nmasters == 0) {
      tether__cluster_map_free(m);
      rc = tether__fail(TETHER_EUNAVAIL, "redis-cluster %s:%d: no master serves any slot", host, port);
    } else if (!unknown)
      rc = 0;
    freeReplyObject(rep);
    if (!unknown) break;
  }
  redisFree(ctx);
  return rc;
}

static void install(cstore *c, const tether__cluster_map *m) {
  size_t *idx = tether__malloc((m->naddrs + 1) * sizeof(*idx));
  for (size_t i = 0; i < m->naddrs; i++) node_get(c, m->addrs[i].host, m->addrs[i].port, &idx[i]);
  pthread_mutex_lock(&c->lock);
  for (size_t s = 0; s < TETHER__CLUSTER_SLOTS; s++) {
    c->master[s] = m->master[s] == TETHER__CLUSTER_NONE ? TETHER__CLUSTER_NONE : (uint16_t)idx[m->master[s]];
    c->replica[s] = m->replica[s] == TETHER__CLUSTER_NONE ? TETHER__CLUSTER_NONE : (uint16_t)idx[m->replica[s]];
  }
  c->have_map = 1;
  c->refreshed_us = tether__mono_us();
  pthread_mutex_unlock(&c->lock);
  free(idx);
}

/* Rereads the map unless someone did after `since` (monotonic us): the masters we know, then the seeds. */
static int refresh(cstore *c, uint64_t since) {
  pthread_mutex_lock(&c->refresh);
  pthread_mutex_lock(&c->lock);
  int fresh = c->have_map && c->refreshed_us > since;
  size_t n = c->nnodes;
  tether__url_host *cand = tether__calloc(n + c->nseeds, sizeof(*cand));
  size_t ncand = 0;
  for (size_t i = 0; !fresh && i < n; i++) cand[ncand++] = (tether__url_host){c->nodes[i]->host, c->nodes[i]->port};
  pthread_mutex_unlock(&c->lock);
  for (size_t i = 0; !fresh && i < c->nseeds; i++) cand[ncand++] = c->seeds[i];
  int rc = 0;
  if (!fresh) {
    tether__buf why = {0};
    rc = TETHER_EUNAVAIL;
    for (size_t i = 0; i < ncand && rc < 0; i++) {
      tether__cluster_map m;
      rc = read_map(c, cand[i].host, cand[i].port, &m);
      if (rc == 0) {
        install(c, &m);
        tether__cluster_map_free(&m);
        tether__count(c->st, TETHER__C_MAP_REFRESHES);
      } else if (why.len < 400) {
        tether__buf_appendf(&why, "%s%s", why.len ? "; " : "", tether_last_error());
      }
    }
    if (rc < 0)
      rc = tether__fail(TETHER_EUNAVAIL, "redis-cluster: no node gave a slot map (%s)", why.data ? why.data : "none");
    tether__buf_free(&why);
  }
  free(cand);
  pthread_mutex_unlock(&c->refresh);
  return rc;
}

/* The node for a slot (a replica for reads with read_from=replica), reading the map first if there is none. */
static cnode *route(cstore *c, unsigned slot, int read) {
  pthread_mutex_lock(&c->lock);
  int have = c->have_map;
  pthread_mutex_unlock(&c->lock);
  if (!have && refresh(c, 0) < 0) return NULL;
  pthread_mutex_lock(&c->lock);
  uint16_t i =
      read && c->replica_reads && c->replica[slot] != TETHER__CLUSTER_NONE ? c->replica[slot] : c->master[slot];
  cnode *n = i == TETHER__CLUSTER_NONE ? NULL : c->nodes[i];
  pthread_mutex_unlock(&c->lock);
  if (n == NULL && have) tether__fail(TETHER_EUNAVAIL, "redis-cluster: no node serves slot %u", slot);
  return n;
}

/* "MOVED 3999 127.0.0.1:6381" / "ASK ...": the node named. */
static cnode *redirect_target(cstore *c, const redisReply *rep, size_t *index) {
  const char *h;
  size_t hlen;
  int port;
  if (tether__cluster_redirect(rep->str, rep->len, &h, &hlen, &port) < 0) return NULL;
  char *host = tether__strndup(h, hlen);
  cnode *n = node_get(c, host, port, index);
  free(host);
  return n;
}

static int starts(const redisReply *rep, const char *word) {
  size_t n = strlen(word);
  return rep->type == REDIS_REPLY_ERROR && rep->len >= n && strncmp(rep->str, word, n) == 0;
}

/* Runs a command on the key's node, following the cluster's answers (see the top of the file). Error replies
 * other than the cluster's come back as replies. */
static int run(cstore *c, const char *key, int read, int write, int argc, const char **argv, const size_t *lens,
               redisReply **out) {
  tether__sigpipe_guard guard;
  tether__sigpipe_block(&guard);
  unsigned slot = tether__cluster_slot(key, strlen(key));
  uint64_t deadline = tether__mono_us() + (uint64_t)c->retry_ms * 1000;
  int backoff = BACKOFF_MIN_MS, redirects = 0, rc;
  cnode *ask = NULL;
  for (;;) {
    uint64_t seen = tether__mono_us();
    cnode *n = ask ? ask : route(c, slot, read);
    long long acked = 0;
    redisReply *rep = NULL;
    rc = n ? node_exec(c, n, ask != NULL, write && c->wait_n, argc, argv, lens, &rep, &acked) : TETHER_EUNAVAIL;
    ask = NULL;
    if (rc == 0 && (starts(rep, "MOVED ") || starts(rep, "ASK "))) {
      size_t idx;
      cnode *to = redirect_target(c, rep, &idx);
      int moved = rep->str[0] == 'M';
      if (to == NULL || ++redirects > c->max_redirects) {
        rc = tether__fail(TETHER_ESTORE, "redis-cluster: %s: %s%.*s", argv[0],
                          to ? "too many redirects, the last: " : "", (int)rep->len, rep->str);
        freeReplyObject(rep);
        break;
      }
      tether__count(c->st, TETHER__C_REDIRECTS);
      freeReplyObject(rep);
      if (moved) {
        pthread_mutex_lock(&c->lock);
        c->master[slot] = (uint16_t)idx;
        pthread_mutex_unlock(&c->lock);
        refresh(c, seen); /* other slots most likely moved too; a failure keeps what MOVED said */
      } else {
        ask = to;
      }
      continue;
    }
    if (rc == 0 && (starts(rep, "TRYAGAIN") || starts(rep, "CLUSTERDOWN"))) {
      if (rep->str[0] == 'T') tether__count(c->st, TETHER__C_TRYAGAIN);
      rc = tether__fail(TETHER_EUNAVAIL, "redis-cluster %s:%d: %s: %.*s", n->host, n->port, argv[0], (int)rep->len,
                        rep->str);
      freeReplyObject(rep);
    } else if (rc == 0) {
      if (write && c->wait_n && rep->type != REDIS_REPLY_ERROR && acked < c->wait_n) {
        tether__count(c->st, TETHER__C_WAIT_FAILURES);
        rc = tether__fail(TETHER_EUNAVAIL, "redis-cluster %s:%d: %s: WAIT: %lld of %d replicas confirmed within %d ms",
                          n->host, n->port, argv[0], acked, c->wait_n, c->wait_timeout_ms);
        freeReplyObject(rep);
        break;
      }
      *out = rep;
      break;
    } else if (rc != TETHER_EUNAVAIL && rc != TETHER_ETIMEDOUT) {
      break;
    }
    /* the cluster is changing (failover, resharding) or a node is gone: wait a little, reread, retry */
    uint64_t now = tether__mono_us();
    if (now + (uint64_t)backoff * 1000 > deadline) break;
    nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = (long)backoff * 1000000L}, NULL);
    backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    refresh(c, seen);
  }
  tether__sigpipe_restore(&guard);
  return rc;
}

int tether__cluster_command(tether_store *st, const char *key, int write, int argc, const char **argv,
                            const size_t *lens, redisReply **out) {
  *out = NULL;
  if (st->ops != &tether__store_redis_cluster)
    return tether__fail(TETHER_EINVAL, "%s: not a redis-cluster store", st->ops->kind);
  return run(st->impl, key, 0, write, argc, argv, lens, out);
}

/* ---- the store operations ---- */

static char *make_key(const cstore *c, const char *sid) { return tether__asprintf("%s%s", c->prefix, sid); }

static int reply_fail(const cstore *c, const redisReply *rep, const char *what, const char *sid) {
  return tether__fail(TETHER_ESTORE, "redis-cluster: %s %s%.6s...: %.*s", what, c->prefix, sid, (int)rep->len,
                      rep->str);
}

static int cluster_get(tether_store *st, const char *sid, char **json, size_t *len) {
  cstore *c = st->impl;
  char *key = make_key(c, sid), end[24];
  const char *argv[4];
  int argc = tether__redis_get_argv(key, c->max_value, end, argv);
  redisReply *rep;
  int rc = run(c, key, 1, 0, argc, argv, NULL, &rep);
  free(key);
  if (rc < 0) return rc;
  rc = tether__redis_get_reply(rep, "redis-cluster", c->prefix, sid, c->max_value, json, len);
  freeReplyObject(rep);
  return rc;
}

/* A command that answers an integer or status (DEL, EXPIRE): only an error reply fails. */
static int simple(cstore *c, const char *sid, int write, int argc, const char **argv) {
  redisReply *rep;
  int rc = run(c, argv[1], 0, write, argc, argv, NULL, &rep);
  if (rc < 0) return rc;
  if (rep->type == REDIS_REPLY_ERROR) rc = reply_fail(c, rep, argv[0], sid);
  freeReplyObject(rep);
  return rc;
}

static int del_key(cstore *c, const char *sid) {
  char *key = make_key(c, sid);
  const char *argv[] = {"DEL", key};
  int rc = simple(c, sid, 1, 2, argv);
  free(key);
  return rc;
}

static int cluster_set(tether_store *st, const char *sid, const char *json, size_t len, int64_t expires_ms, int mode) {
  cstore *c = st->impl;
  int64_t ttl = tether__ttl_seconds(expires_ms, tether_now_ms());
  if (ttl <= 0) return del_key(c, sid); /* connect-redis: an expired session is destroyed */
  char *key = make_key(c, sid);
  char ex[24];
  snprintf(ex, sizeof(ex), "%lld", (long long)ttl);
  const char *argv[] = {"SET", key, json, "EX", ex, mode == TETHER_WRITE_CREATE ? "NX" : "XX"};
  const size_t lens[] = {3, strlen(key), len, 2, strlen(ex), 2};
  redisReply *rep;
  int rc = run(c, key, 0, 1, mode == TETHER_WRITE_UPSERT ? 5 : 6, argv, lens, &rep);
  free(key);
  if (rc < 0) return rc;
  rc = rep->type == REDIS_REPLY_ERROR ? reply_fail(c, rep, "SET", sid) : tether__redis_set_reply(rep, mode);
  freeReplyObject(rep);
  return rc;
}

static int cluster_touch(tether_store *st, const char *sid, const char *json, size_t len, int64_t expires_ms) {
  cstore *c = st->impl;
  TETHER__UNUSED(json);
  TETHER__UNUSED(len);
  int64_t ttl = tether__ttl_seconds(expires_ms, tether_now_ms());
  if (ttl <= 0) return del_key(c, sid);
  char *key = make_key(c, sid);
  char ex[24];
  snprintf(ex, sizeof(ex), "%lld", (long long)ttl);
  const char *argv[] = {"EXPIRE", key, ex};
  int rc = simple(c, sid, 1, 3, argv); /* 0 (no such key) is not an error, as for connect-redis */
  free(key);
  return rc;
}

static int cluster_destroy(tether_store *st, const char *sid) { return del_key(st->impl, sid); }

/* Reads the map and PINGs every master in it. */
static int cluster_ping(tether_store *st) {
  cstore *c = st->impl;
  int rc = refresh(c, tether__mono_us());
  uint16_t seen[64];
  size_t nseen = 0;
  for (unsigned s = 0; rc == 0 && s < TETHER__CLUSTER_SLOTS; s++) {
    pthread_mutex_lock(&c->lock);
    uint16_t i = c->master[s];
    cnode *n = i == TETHER__CLUSTER_NONE ? NULL : c->nodes[i];
    pthread_mutex_unlock(&c->lock);
    size_t k = 0;
    while (k < nseen && seen[k] != i) k++;
    if (n == NULL || k < nseen || nseen == 64) continue;
    seen[nseen++] = i;
    const char *argv[] = {"PING"};
    redisReply *rep;
    long long acked;
    if ((rc = node_exec(c, n, 0, 0, 1, argv, NULL, &rep, &acked)) < 0) break;
    if (rep->type != REDIS_REPLY_STATUS || strcmp(rep->str, "PONG") != 0)
      rc = tether__fail(TETHER_ESTORE, "redis-cluster %s:%d: PING: %.*s", n->host, n->port, (int)rep->len,
                        rep->str ? rep->str : "");
    freeReplyObject(rep);
  }
  return rc;
}

static void cluster_metrics_text(const tether_store *st, tether__buf *b) {
  cstore *c = st->impl;
  pthread_mutex_lock(&c->lock);
  tether__buf_appendf(b, "# HELP tether_store_node_errors_total Failed exchanges with each cluster node.\n"
                         "# TYPE tether_store_node_errors_total counter\n");
  for (size_t i = 0; i < c->nnodes; i++)
    tether__buf_appendf(b, "tether_store_node_errors_total{store=\"redis-cluster\",node=\"%s:%d\"} %llu\n",
                        c->nodes[i]->host, c->nodes[i]->port,
                        (unsigned long long)atomic_load_explicit(&c->nodes[i]->errors, memory_order_relaxed));
  tether__buf_appendf(b, "# HELP tether_store_node_latency_seconds Time of exchanges with each cluster node.\n"
                         "# TYPE tether_store_node_latency_seconds summary\n");
  for (size_t i = 0; i < c->nnodes; i++) {
    cnode *n = c->nodes[i];
    tether__buf_appendf(b, "tether_store_node_latency_seconds_sum{store=\"redis-cluster\",node=\"%s:%d\"} %.6f\n",
                        n->host, n->port, atomic_load_explicit(&n->lat_sum_us, memory_order_relaxed) / 1e6);
    tether__buf_appendf(b, "tether_store_node_latency_seconds_count{store=\"redis-cluster\",node=\"%s:%d\"} %llu\n",
                        n->host, n->port, (unsigned long long)atomic_load_explicit(&n->calls, memory_order_relaxed));
  }
  pthread_mutex_unlock(&c->lock);
}

/* ---- for the asynchronous client (async_cluster.c) ---- */

int tether__cluster_conf_get(const tether_store *st, tether__cluster_conf *out) {
  if (st->ops != &tether__store_redis_cluster) return -1;
  const cstore *c = st->impl;
  *out = (tether__cluster_conf){.seeds = c->seeds,
                                .nseeds = c->nseeds,
                                .prefix = c->prefix,
                                .user = c->user,
                                .password = c->password,
                                .timeout_ms = c->timeout_ms,
                                .connect_timeout_ms = c->connect_timeout_ms,
                                .max_value = c->max_value,
                                .wait_n = c->wait_n,
                                .wait_timeout_ms = c->wait_timeout_ms,
                                .replica_reads = c->replica_reads,
                                .retry_ms = c->retry_ms,
                                .max_redirects = c->max_redirects};
  return 0;
}

void *tether__cluster_node_ref(tether_store *st, const char *host, int port) {
  return node_get(st->impl, host, port, NULL);
}

void tether__cluster_node_observe(void *ref, uint64_t us, int failed) {
  cnode *n = ref;
  atomic_fetch_add_explicit(&n->calls, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&n->lat_sum_us, us, memory_order_relaxed);
  if (failed) atomic_fetch_add_explicit(&n->errors, 1, memory_order_relaxed);
}

/* ---- opening and closing ---- */

static void cstore_free(cstore *c) {
  for (size_t i = 0; i < c->nnodes; i++) {
    free_conns(c->nodes[i]->idle);
    pthread_mutex_destroy(&c->nodes[i]->lock);
    free(c->nodes[i]->host);
    free(c->nodes[i]);
  }
  free(c->nodes);
  for (size_t i = 0; i < c->nseeds; i++) free(c->seeds[i].host);
  free(c->prefix);
  free(c->user);
  if (c->password) {
    explicit_bzero(c->password, strlen(c->password));
    free(c->password);
  }
  pthread_mutex_destroy(&c->refresh);
  pthread_mutex_destroy(&c->lock);
  free(c);
}

static int parse_params(tether_store *st, cstore *c, tether__url *u) {
  static const char *const allowed[] = {"prefix", "timeout_ms",      "connect_timeout_ms", "pool",     "max_value",
                                        "wait",   "wait_timeout_ms", "read_from",          "retry_ms", "max_redirects",
                                        NULL};
  long timeout, connect_timeout, pool, max_value, wait, wait_timeout, retry, redirects;
  int rc = tether__url_check_params(u, allowed);
  if (rc == 0) rc = tether__url_param_int(u, "timeout_ms", 1000, 1, 3600000, &timeout);
  if (rc == 0) rc = tether__url_param_int(u, "connect_timeout_ms", 1000, 1, 3600000, &connect_timeout);
  if (rc == 0) rc = tether__url_param_int(u, "pool", 8, 1, 1024, &pool);
  if (rc == 0) rc = tether__url_param_int(u, "max_value", MAX_VALUE, 0, 512L * 1024 * 1024, &max_value);
  if (rc == 0) rc = tether__url_param_int(u, "wait", 0, 0, 16, &wait);
  if (rc == 0) rc = tether__url_param_int(u, "wait_timeout_ms", 500, 1, 3600000, &wait_timeout);
  if (rc == 0) rc = tether__url_param_int(u, "retry_ms", 2000, 0, 3600000, &retry);
  if (rc == 0) rc = tether__url_param_int(u, "max_redirects", 5, 1, 100, &redirects);
  if (rc < 0) return rc;
  const char *from = tether__url_param(u, "read_from");
  if (from && strcmp(from, "master") != 0 && strcmp(from, "replica") != 0)
    return tether__fail(TETHER_EINVAL, "redis-cluster store URL '%s': read_from must be master or replica", st->url);
  if (*u->path)
    return tether__fail(TETHER_EINVAL, "redis-cluster store URL '%s': a cluster has no databases (no /path)", st->url);
  const char *prefix = tether__url_param(u, "prefix");
  c->prefix = tether__strdup(prefix ? prefix : "sess:");
  c->timeout_ms = (int)timeout;
  c->connect_timeout_ms = (int)connect_timeout;
  c->pool = (int)pool;
  c->max_value = max_value;
  c->wait_n = (int)wait;
  c->wait_timeout_ms = (int)wait_timeout;
  c->replica_reads = from && strcmp(from, "replica") == 0;
  c->retry_ms = (int)retry;
  c->max_redirects = (int)redirects;
  return 0;
}

static int cluster_open(tether_store *st, const char *text) {
  tether__url u;
  int rc = tether__url_parse(text, &u);
  if (rc < 0) {
    tether__url red; /* the parser quotes the URL as given: say it again without the password */
    if (strcmp(text, st->url) != 0 && (rc = tether__url_parse(st->url, &red)) == 0) {
      tether__url_free(&red);
      rc = tether__fail(TETHER_EINVAL, "redis-cluster store URL '%s': bad user or password", st->url);
    }
    return rc;
  }
  cstore *c = tether__calloc(1, sizeof(*c));
  c->st = st;
  pthread_mutex_init(&c->lock, NULL);
  pthread_mutex_init(&c->refresh, NULL);
  memset(c->master, 0xff, sizeof(c->master));
  memset(c->replica, 0xff, sizeof(c->replica));
  if (u.nhosts == 0) rc = tether__fail(TETHER_EINVAL, "redis-cluster store URL '%s': no host", st->url);
  for (size_t i = 0; rc == 0 && i < u.nhosts; i++) {
    c->seeds[i].host = tether__strdup(u.hosts[i].host);
    c->seeds[i].port = u.hosts[i].port ? u.hosts[i].port : REDIS_PORT;
    c->nseeds++;
  }
  if (rc == 0) rc = parse_params(st, c, &u);
  if (rc == 0 && u.password) {
    c->password = tether__strdup(u.password);
    c->user = u.user ? tether__strdup(u.user) : NULL;
  }
  if (u.password) explicit_bzero(u.password, strlen(u.password));
  tether__url_free(&u);
  if (rc < 0) {
    cstore_free(c);
    return rc;
  }
  st->impl = c;
  return 0;
}

static void cluster_close(tether_store *st) { cstore_free(st->impl); }

const tether__store_ops tether__store_redis_cluster = {
    .kind = "redis-cluster",
    .open = cluster_open,
    .close = cluster_close,
    .get = cluster_get,
    .set = cluster_set,
    .touch = cluster_touch,
    .destroy = cluster_destroy,
    .ping = cluster_ping,
    .metrics_text = cluster_metrics_text,
};
