/* libtether: the memcached store, a ring of memcached nodes with replicas kept by Tether itself.
 *
 *   memcached://h1:p1,h2:p2,h3:p3?replicas=2&prefix=sess:&timeout_ms=500&connect_timeout_ms=500
 *              &retry_ms=1000&pool=8&tombstone_s=3600
 *
 *   replicas            copies of each session (1..number of nodes, default 2 or 1 with one node)
 *   prefix              key prefix (default "sess:"; printable ASCII without spaces, at most 64 bytes)
 *   timeout_ms          each command (default 500)
 *   connect_timeout_ms  each connection attempt (default 500)
 *   retry_ms            how long a node that failed is skipped before it is tried again (default 1000)
 *   pool                connections per node (default 8)
 *   tombstone_s         how long a destroyed session's tombstone is kept (default 3600)
 * A port left out is 11211.
 *
 * Placement is nginx's `hash $key consistent` over the node names "host:port" (tether_ketama), so the
 * preference list of a key is the ring walk from its point. libmemcached is only a client for one node
 * at a time: its own distribution and NUMBER_OF_REPLICAS lose writes when a node dies.
 *
 * Writes go to the first `replicas` nodes of the walk that are not marked down; a node that fails an
 * operation is marked down for retry_ms (then one caller probes it). A write succeeds when one node took
 * it. Reads ask the first replicas+1 live nodes, return the newest version, and repair (best effort,
 * before returning) the nodes that hold an older version, or miss it while being one of the replicas;
 * repairs use CAS or ADD so they never overwrite a write that raced them. Destroy writes a tombstone,
 * so a node that missed it (partitioned, then back with its old data) cannot resurrect the session
 * while the tombstone lives: tombstone_s should outlast the longest partition to be survived (an hour
 * by default rather than a minute; a tombstone is ~150 bytes per node).
 * Write modes: an upsert SETs the replicas; a create-only write ADDs them (TETHER_EEXIST when every node
 * that answered had the key, a tombstone included); an update-only write reads the copies and needs a live
 * session among them (a tombstone or nothing: TETHER_ENOTFOUND), then replaces each copy read by CAS and
 * ADDs the replicas that missed it, so a destroy racing the update always wins (memcached's replace would
 * overwrite a tombstone and bring the session back).
 * Touch is memcached's touch on the nodes a read would ask, so it never overwrites a newer write; it
 * leaves expires_ms below as written, so a repair after touches gives its copy the older expiry (or
 * skips it when that has passed; the other copies still serve the session).
 *
 * Stored values (the format of every item under the prefix):
 *   "T1 <version> <expires_ms> v <json>"   a session
 *   "T1 <version> <expires_ms> x"          a tombstone (destroyed or expired by a write)
 * version: microseconds since the Unix epoch at the write, made strictly increasing within the process
 *   (writers in several processes rely on their clocks agreeing); the greatest wins, ties go to the
 *   greater bytes so every reader picks the same copy.
 * expires_ms: the absolute expiry given to the write (epoch ms; a write without expiry gets now + 1 day),
 *   so that a repair gives the copy it writes the same remaining lifetime.
 * Anything else under the prefix is ECORRUPT when no node has a valid copy. */
#include <errno.h>
#include <inttypes.h>
#include <libmemcached/memcached.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../util.h"
#include "store_impl.h"
#include "tether/hash.h"

#define MC_MAX_NODES TETHER__URL_MAX_HOSTS
#define MC_MAX_POOL 64
#define MC_ITEM_MAX 1048576  /* memcached's default item size limit (-I 1m) */
#define MC_ITEM_OVERHEAD 128 /* item header, key, flags and CAS around the value (72 bytes measured) */
#define MC_REL_MAX 2592000   /* memcached reads an expiration above 30 days as a Unix time */
#define MC_PREFIX_MAX 64

typedef struct mc_client {
  memcached_st *mc; /* exactly one server */
  uint64_t gen;     /* the node's generation when it was created */
} mc_client;

typedef struct mc_node {
  char *name; /* "host:port", the node's name on the ring */
  char *host;
  int port;
  pthread_mutex_t lock;         /* guards idle, nidle, nopen and gen */
  pthread_cond_t freed;         /* a client went back to idle, or was closed */
  mc_client *idle[MC_MAX_POOL]; /* connected clients ready for use */
  size_t nidle;
  size_t nopen;               /* clients in existence, idle or in use */
  uint64_t gen;               /* bumped on failure: older clients are closed, not reused */
  _Atomic int64_t down_until; /* monotonic ms before which the node is skipped; 0 when up */
} mc_node;

typedef struct mcstore {
  mc_node nodes[MC_MAX_NODES];
  size_t n;
  tether_ketama *ring;
  size_t replicas;
  char *prefix;
  long timeout_ms;
  long connect_timeout_ms;
  long retry_ms;
  long tombstone_s;
  size_t pool;
} mcstore;

/* What a node made of one command. */
enum { MC_OK, MC_MISS, MC_REFUSED, MC_ERROR, MC_FAIL };
/* MC_OK: done (or found); MC_MISS: no such key; MC_REFUSED: ADD or CAS lost a race; MC_ERROR: the node
 * answered with an error (too big, out of memory); MC_FAIL: the node did not answer (marked down). */

typedef enum mc_cmd { CMD_GET, CMD_SET, CMD_ADD, CMD_CAS, CMD_TOUCH } mc_cmd;

typedef struct mc_op {
  mc_cmd cmd;
  const char *key;
  size_t klen;
  const char *val; /* SET, ADD, CAS */
  size_t vlen;
  time_t exp;   /* SET, ADD, CAS, TOUCH: memcached expiration */
  uint64_t cas; /* CAS */
  memcached_return_t rc;
  char *raw; /* GET: the value (malloc'd) */
  size_t rawlen;
  uint64_t got_cas;
} mc_op;

/* One node's answer to a read. */
typedef struct mc_copy {
  mc_node *node;
  int state; /* MC_OK (found) or MC_MISS */
  char *raw;
  size_t rawlen;
  uint64_t cas;
  int valid; /* raw parses as the format above */
  int tomb;
  uint64_t version;
  int64_t expires_ms;
  size_t json_off; /* where the JSON starts in raw (sessions only) */
} mc_copy;

static int64_t mono_ms(void) { return (int64_t)(tether__mono_us() / 1000); }

/* ---- versions and the value format ---- */

static _Atomic uint64_t last_version;

static uint64_t next_version(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t now = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
  uint64_t old = atomic_load(&last_version), v;
  do {
    v = now > old ? now : old + 1;
  } while (!atomic_compare_exchange_weak(&last_version, &old, v));
  return v;
}

static int parse_u64(const char **p, const char *end, uint64_t *out) {
  const char *s = *p;
  uint64_t v = 0;
  if (s == end || *s < '0' || *s > '9') return -1;
  for (; s < end && *s >= '0' && *s <= '9'; s++) {
    if (v > (UINT64_MAX - 9) / 10) return -1;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  *p = s;
  *out = v;
  return 0;
}

static int parse_copy(mc_copy *c) {
  const char *p = c->raw, *end = c->raw + c->rawlen;
  uint64_t version, expires;
  if (c->rawlen < 3 || memcmp(p, "T1 ", 3) != 0) return -1;
  p += 3;
  if (parse_u64(&p, end, &version) < 0 || p == end || *p++ != ' ') return -1;
  if (parse_u64(&p, end, &expires) < 0 || expires > INT64_MAX || p == end || *p++ != ' ') return -1;
  if (p + 1 == end && *p == 'x') {
    c->tomb = 1;
  } else if (p + 1 < end && p[0] == 'v' && p[1] == ' ') {
    c->json_off = (size_t)(p + 2 - c->raw);
  } else {
    return -1;
  }
  c->version = version;
  c->expires_ms = (int64_t)expires;
  c->valid = 1;
  return 0;
}

/* a is newer than b (both valid). */
static int newer(const mc_copy *a, const mc_copy *b) {
  if (a->version != b->version) return a->version > b->version;
  size_t n = a->rawlen < b->rawlen ? a->rawlen : b->rawlen;
  int c = memcmp(a->raw, b->raw, n);
  return c != 0 ? c > 0 : a->rawlen > b->rawlen;
}

/* memcached's expiration for a TTL: relative up to 30 days, a Unix time beyond, which memcached parses
 * as a 32-bit integer (so expiries past January 2038 become January 2038). */
static time_t mc_expiration(int64_t ttl_s, int64_t now_ms) {
  if (ttl_s <= MC_REL_MAX) return (time_t)ttl_s;
  int64_t at = now_ms / 1000 + ttl_s;
  return (time_t)(at < INT32_MAX ? at : INT32_MAX);
}

/* ---- nodes: health and connections ---- */

static void mark_down(mcstore *m, mc_node *nd, const char *why) {
  int64_t until = mono_ms() + m->retry_ms;
  if (until <= 0) until = 1;
  if (atomic_exchange(&nd->down_until, until) == 0)
    tether__log(TETHER_LOG_WARN, "memcached store: node %s failed (%s); skipping it for %ld ms", nd->name, why,
                m->retry_ms);
}

static void mark_up(mc_node *nd) {
  if (atomic_load(&nd->down_until) != 0 && atomic_exchange(&nd->down_until, 0) != 0)
    tether__log(TETHER_LOG_INFO, "memcached store: node %s is back", nd->name);
}

/* Whether to send a command to nd now. Once a down node's retry time has passed, the first caller to
 * ask probes it; the others keep skipping it until that probe succeeds or retry_ms more pass. */
static int node_usable(mcstore *m, mc_node *nd) {
  int64_t d = atomic_load(&nd->down_until);
  if (d == 0) return 1;
  int64_t now = mono_ms();
  if (now < d) return 0;
  int64_t next = now + m->retry_ms;
  return atomic_compare_exchange_strong(&nd->down_until, &d, next > 0 ? next : 1);
}

static mc_client *client_new(mcstore *m, mc_node *nd, uint64_t gen) {
  mc_client *c = tether__calloc(1, sizeof(*c));
  c->gen = gen;
  c->mc = memcached_create(NULL);
  if (c->mc == NULL) {
    tether__log(TETHER_LOG_ERROR, "memcached store: out of memory creating a client");
    abort();
  }
  memcached_server_add(c->mc, nd->host, (in_port_t)nd->port);
  memcached_behavior_set(c->mc, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, (uint64_t)m->connect_timeout_ms);
  memcached_behavior_set(c->mc, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, (uint64_t)m->timeout_ms);
  memcached_behavior_set(c->mc, MEMCACHED_BEHAVIOR_RCV_TIMEOUT, (uint64_t)m->timeout_ms * 1000);
  memcached_behavior_set(c->mc, MEMCACHED_BEHAVIOR_SND_TIMEOUT, (uint64_t)m->timeout_ms * 1000);
  memcached_behavior_set(c->mc, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
  memcached_behavior_set(c->mc, MEMCACHED_BEHAVIOR_SUPPORT_CAS, 1);
  return c;
}

static void client_free(mc_client *c) {
  memcached_free(c->mc);
  free(c);
}

static int client_acquire(mcstore *m, mc_node *nd, mc_client **out) {
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  long wait_ms = m->timeout_ms + m->connect_timeout_ms + 100;
  deadline.tv_sec += wait_ms / 1000;
  deadline.tv_nsec += (wait_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  mc_client *c = NULL;
  pthread_mutex_lock(&nd->lock);
  while (nd->nidle == 0 && nd->nopen >= m->pool) {
    if (pthread_cond_timedwait(&nd->freed, &nd->lock, &deadline) == ETIMEDOUT) {
      pthread_mutex_unlock(&nd->lock);
      return tether__fail(TETHER_ETIMEDOUT, "all %zu connections busy for %ld ms", m->pool, wait_ms);
    }
  }
  if (nd->nidle > 0)
    c = nd->idle[--nd->nidle];
  else
    nd->nopen++;
  uint64_t gen = nd->gen;
  pthread_mutex_unlock(&nd->lock);
  *out = c ? c : client_new(m, nd, gen);
  return 0;
}

enum { REL_KEEP, REL_CLOSE, REL_FAILED };

/* Gives a client back. REL_CLOSE closes it (its connection may hold an unread answer); REL_FAILED also
 * closes the node's idle clients, whose connections are as dead as this one's. */
static void client_release(mc_node *nd, mc_client *c, int how) {
  mc_client *drop[MC_MAX_POOL + 1];
  size_t ndrop = 0;
  pthread_mutex_lock(&nd->lock);
  if (how == REL_FAILED) {
    nd->gen++;
    while (nd->nidle > 0) drop[ndrop++] = nd->idle[--nd->nidle];
    nd->nopen -= ndrop;
  }
  if (how != REL_KEEP || c->gen != nd->gen) {
    drop[ndrop++] = c;
    nd->nopen--;
  } else {
    nd->idle[nd->nidle++] = c;
  }
  pthread_cond_broadcast(&nd->freed);
  pthread_mutex_unlock(&nd->lock);
  for (size_t i = 0; i < ndrop; i++) client_free(drop[i]);
}

static int classify(memcached_return_t rc) {
  switch (rc) {
  case MEMCACHED_SUCCESS:
  case MEMCACHED_STORED:
  case MEMCACHED_DELETED:
    return MC_OK;
  case MEMCACHED_NOTFOUND:
  case MEMCACHED_END:
    return MC_MISS;
  case MEMCACHED_NOTSTORED:
  case MEMCACHED_DATA_EXISTS:
    return MC_REFUSED;
  case MEMCACHED_E2BIG:
  case MEMCACHED_SERVER_ERROR:
  case MEMCACHED_SERVER_MEMORY_ALLOCATION_FAILURE:
  case MEMCACHED_CLIENT_ERROR:
    return MC_ERROR;
  default:
    return MC_FAIL;
  }
}

/* GET with the item's CAS. libmemcached reports some read failures as NOTFOUND; its last error
 * tells them apart from a real miss. */
static memcached_return_t do_get(memcached_st *mc, mc_op *op) {
  const char *keys[1] = {op->key};
  size_t lens[1] = {op->klen};
  memcached_return_t rc = memcached_mget(mc, keys, lens, 1);
  if (rc != MEMCACHED_SUCCESS) return rc;
  memcached_result_st res;
  if (memcached_result_create(mc, &res) == NULL) return MEMCACHED_MEMORY_ALLOCATION_FAILURE;
  memcached_result_st *r = memcached_fetch_result(mc, &res, &rc);
  if (r != NULL) {
    size_t n = memcached_result_length(r);
    op->raw = n ? tether__strndup(memcached_result_value(r), n) : tether__strdup("");
    op->rawlen = n;
    op->got_cas = memcached_result_cas(r);
    memcached_return_t end = MEMCACHED_END;
    int extra = 0; /* one key, one value: anything more means the connection is out of step */
    while (extra < 4 && memcached_fetch_result(mc, &res, &end) != NULL) extra++;
    rc = extra ? MEMCACHED_PROTOCOL_ERROR : end == MEMCACHED_END || end == MEMCACHED_NOTFOUND ? MEMCACHED_SUCCESS : end;
    if (rc != MEMCACHED_SUCCESS) {
      free(op->raw);
      op->raw = NULL;
    }
  } else if (rc == MEMCACHED_END || rc == MEMCACHED_NOTFOUND) {
    memcached_return_t last = memcached_last_error(mc);
    rc = last == MEMCACHED_SUCCESS || last == MEMCACHED_NOTFOUND || last == MEMCACHED_END ? MEMCACHED_NOTFOUND : last;
  }
  memcached_result_free(&res);
  return rc;
}

static void note(tether__buf *errs, const mc_node *nd, const char *what) {
  if (errs) tether__buf_appendf(errs, "%s%s: %s", errs->len ? "; " : "", nd->name, what);
}

/* Runs one command on one node, keeping the node's health and connections up to date. */
static int node_run(mcstore *m, mc_node *nd, mc_op *op, tether__buf *errs) {
  mc_client *c = NULL;
  op->rc = MEMCACHED_FAILURE;
  if (client_acquire(m, nd, &c) < 0) {
    note(errs, nd, tether_last_error());
    return MC_FAIL;
  }
  memcached_st *mc = c->mc;
  switch (op->cmd) {
  case CMD_GET:
    op->rc = do_get(mc, op);
    break;
  case CMD_SET:
    op->rc = memcached_set(mc, op->key, op->klen, op->val, op->vlen, op->exp, 0);
    break;
  case CMD_ADD:
    op->rc = memcached_add(mc, op->key, op->klen, op->val, op->vlen, op->exp, 0);
    break;
  case CMD_CAS:
    op->rc = memcached_cas(mc, op->key, op->klen, op->val, op->vlen, op->exp, 0, op->cas);
    break;
  case CMD_TOUCH:
    op->rc = memcached_touch(mc, op->key, op->klen, op->exp);
    break;
  }
  int cls = classify(op->rc);
  char why[160] = "";
  if (cls == MC_ERROR || cls == MC_FAIL) {
    int e = memcached_last_error_errno(mc);
    snprintf(why, sizeof(why), "%s%s%s%s", memcached_strerror(mc, op->rc), e ? " (" : "", e ? strerror(e) : "",
             e ? ")" : "");
    note(errs, nd, why);
  }
  client_release(nd, c, cls == MC_FAIL ? REL_FAILED : cls == MC_ERROR ? REL_CLOSE : REL_KEEP);
  if (cls == MC_FAIL)
    mark_down(m, nd, why);
  else
    mark_up(nd);
  return cls;
}

/* ---- the replica protocol ---- */

static char *make_key(const mcstore *m, const char *sid, size_t *klen) {
  char *key = tether__asprintf("%s%s", m->prefix, sid);
  *klen = strlen(key);
  return key;
}

static size_t walk(const mcstore *m, const char *key, size_t klen, size_t order[MC_MAX_NODES]) {
  return tether_ketama_walk(m->ring, key, klen, order, m->n);
}

static int all_down(const mcstore *m, const char *what) {
  int64_t soonest = INT64_MAX, now = mono_ms();
  for (size_t i = 0; i < m->n; i++) {
    int64_t d = atomic_load(&m->nodes[i].down_until);
    if (d != 0 && d < soonest) soonest = d;
  }
  return tether__fail(TETHER_EUNAVAIL, "memcached store: %s: every node is down (next retry in %" PRId64 " ms)", what,
                      soonest == INT64_MAX || soonest < now ? 0 : soonest - now);
}

/* Writes raw to the first `replicas` live nodes of key's walk, with SET or (create-only) ADD: TETHER_EEXIST
 * when every node that answered already had the key. */
static int write_replicas_cmd(mcstore *m, mc_cmd cmd, const char *key, size_t klen, const char *raw, size_t rawlen,
                              int64_t ttl_s, const char *what) {
  size_t order[MC_MAX_NODES], nwalk = walk(m, key, klen, order), took = 0, tried = 0, refused = 0;
  int big = 0, answered_error = 0;
  tether__buf errs = {0};
  mc_op op = {
      .cmd = cmd, .key = key, .klen = klen, .val = raw, .vlen = rawlen, .exp = mc_expiration(ttl_s, tether_now_ms())};
  for (size_t i = 0; i < nwalk && took + refused < m->replicas; i++) {
    mc_node *nd = &m->nodes[order[i]];
    if (!node_usable(m, nd)) continue;
    tried++;
    int cls = node_run(m, nd, &op, &errs);
    if (cls == MC_OK)
      took++;
    else if (cls == MC_REFUSED)
      refused++;
    else if (cls == MC_ERROR && op.rc == MEMCACHED_E2BIG)
      big = 1;
    else if (cls == MC_ERROR)
      answered_error = 1;
  }
  int rc = 0;
  if (took == 0 && tried == 0) {
    rc = all_down(m, what);
  } else if (took == 0 && refused > 0) {
    rc = TETHER_EEXIST;
  } else if (took == 0) {
    rc = tether__fail(big              ? TETHER_E2BIG
                      : answered_error ? TETHER_ESTORE
                                       : TETHER_EUNAVAIL,
                      "memcached store: %s of %s: no node took it (%s)", what, key, errs.data ? errs.data : "");
  } else if (took < m->replicas) {
    tether__log(TETHER_LOG_INFO, "memcached store: %s of %s reached %zu of %zu replicas (%s)", what, key, took,
                m->replicas, errs.data ? errs.data : "too few live nodes");
  }
  tether__buf_free(&errs);
  return rc;
}

static int write_replicas(mcstore *m, const char *key, size_t klen, const char *raw, size_t rawlen, int64_t ttl_s,
                          const char *what) {
  return write_replicas_cmd(m, CMD_SET, key, klen, raw, rawlen, ttl_s, what);
}

static int write_tombstone(mcstore *m, const char *key, size_t klen, const char *what) {
  char raw[96];
  int64_t now = tether_now_ms();
  int n = snprintf(raw, sizeof(raw), "T1 %" PRIu64 " %" PRId64 " x", next_version(), now + m->tombstone_s * 1000);
  return write_replicas(m, key, klen, raw, (size_t)n, m->tombstone_s, what);
}

/* Asks the first replicas+1 live nodes of key's walk. Returns how many answered (copies[0..n) in walk
 * order), or an error when fewer than `replicas` did and none had the key. */
static int read_copies(mcstore *m, const char *key, size_t klen, mc_copy copies[MC_MAX_NODES], size_t *ncopies) {
  size_t order[MC_MAX_NODES], nwalk = walk(m, key, klen, order), want = m->replicas + 1, n = 0, tried = 0;
  int found = 0;
  tether__buf errs = {0};
  for (size_t i = 0; i < nwalk && n < want; i++) {
    mc_node *nd = &m->nodes[order[i]];
    if (!node_usable(m, nd)) continue;
    tried++;
    mc_op op = {.cmd = CMD_GET, .key = key, .klen = klen};
    int cls = node_run(m, nd, &op, &errs);
    if (cls != MC_OK && cls != MC_MISS) continue;
    mc_copy *c = &copies[n++];
    memset(c, 0, sizeof(*c));
    c->node = nd;
    c->state = cls;
    if (cls == MC_OK) {
      c->raw = op.raw;
      c->rawlen = op.rawlen;
      c->cas = op.got_cas;
      parse_copy(c);
      found = 1;
    }
  }
  *ncopies = n;
  int rc = 0;
  if (tried == 0) {
    rc = all_down(m, "get");
  } else if (!found && n < m->replicas && n < m->n) {
    /* The nodes that would hold the session did not answer: not knowing is not "not found". */
    rc = tether__fail(TETHER_EUNAVAIL, "memcached store: get of %s: only %zu of %zu replicas answered (%s)", key, n,
                      m->replicas, errs.data ? errs.data : "");
  } else if (errs.len) {
    tether__log(TETHER_LOG_INFO, "memcached store: get of %s: %s", key, errs.data);
  }
  tether__buf_free(&errs);
  return rc;
}

/* Brings the copies that are older than best, or missing from a replica, up to best. CAS and ADD make
 * a repair lose against any write that happened since the read. */
static void repair(mcstore *m, const char *key, size_t klen, mc_copy *copies, size_t n, const mc_copy *best) {
  int64_t now = tether_now_ms();
  int64_t ttl = tether__ttl_seconds(best->expires_ms, now);
  if (ttl <= 0) return;
  mc_op op = {.key = key, .klen = klen, .val = best->raw, .vlen = best->rawlen, .exp = mc_expiration(ttl, now)};
  for (size_t k = 0; k < n; k++) {
    mc_copy *c = &copies[k];
    if (c == best) continue;
    if (c->state == MC_OK && (!c->valid || newer(best, c))) {
      op.cmd = CMD_CAS;
      op.cas = c->cas;
    } else if (c->state == MC_MISS && !best->tomb && k < m->replicas) {
      op.cmd = CMD_ADD;
    } else {
      continue;
    }
    int cls = node_run(m, c->node, &op, NULL);
    tether__log(TETHER_LOG_INFO, "memcached store: repair of %s on %s (%s): %s", key, c->node->name,
                op.cmd == CMD_ADD ? "missing"
                : c->valid        ? "older version"
                                  : "unreadable",
                cls == MC_OK        ? "done"
                : cls == MC_REFUSED ? "raced by a write"
                                    : "failed");
  }
}

/* ---- the store's operations ---- */

static int mc_get(tether_store *st, const char *sid, char **json, size_t *len) {
  mcstore *m = st->impl;
  size_t klen, n = 0;
  char *key = make_key(m, sid, &klen);
  mc_copy copies[MC_MAX_NODES];
  int rc = read_copies(m, key, klen, copies, &n);
  const mc_copy *best = NULL, *corrupt = NULL;
  for (size_t k = 0; k < n; k++) {
    const mc_copy *c = &copies[k];
    if (c->state != MC_OK) continue;
    if (!c->valid)
      corrupt = corrupt ? corrupt : c;
    else if (best == NULL || newer(c, best))
      best = c;
  }
  if (rc < 0) {
    /* fewer than the replicas answered, all without the key */
  } else if (best == NULL && corrupt != NULL) {
    rc = tether__fail(TETHER_ECORRUPT,
                      "memcached store: the value of %s on %s is not a Tether session (%zu bytes: %.16s)", key,
                      corrupt->node->name, corrupt->rawlen, corrupt->raw);
  } else if (best == NULL || best->tomb) {
    rc = TETHER_ENOTFOUND;
  } else {
    *len = best->rawlen - best->json_off;
    *json = tether__strndup(best->raw + best->json_off, *len);
  }
  if (best) repair(m, key, klen, copies, n, best);
  for (size_t k = 0; k < n; k++) free(copies[k].raw);
  free(key);
  return rc;
}

static void free_copies(mc_copy *copies, size_t n) {
  for (size_t k = 0; k < n; k++) free(copies[k].raw);
}

/* An update-only write: the session must be there, live (not a tombstone), on the nodes a read asks. Each
 * copy read is replaced by CAS, and replicas that miss it get an ADD, so a destroy's tombstone written
 * after our read always wins (our CAS fails) and a destroyed session is never written back. When every
 * node refused (a write raced ours), read again, a few times. */
static int update_replicas(mcstore *m, const char *key, size_t klen, const char *raw, size_t rawlen, int64_t ttl_s) {
  for (int attempt = 0; attempt < 4; attempt++) {
    mc_copy copies[MC_MAX_NODES];
    size_t n = 0;
    int rc = read_copies(m, key, klen, copies, &n);
    const mc_copy *best = NULL;
    for (size_t k = 0; k < n; k++)
      if (copies[k].state == MC_OK && copies[k].valid && (best == NULL || newer(&copies[k], best))) best = &copies[k];
    if (rc == 0 && (best == NULL || best->tomb)) rc = TETHER_ENOTFOUND;
    if (rc < 0) {
      free_copies(copies, n);
      return rc;
    }
    size_t took = 0, refused = 0;
    tether__buf errs = {0};
    mc_op op = {.key = key, .klen = klen, .val = raw, .vlen = rawlen, .exp = mc_expiration(ttl_s, tether_now_ms())};
    for (size_t k = 0; k < n; k++) {
      mc_copy *c = &copies[k];
      if (c->state == MC_OK) {
        op.cmd = CMD_CAS;
        op.cas = c->cas;
      } else if (k < m->replicas) {
        op.cmd = CMD_ADD;
      } else {
        continue;
      }
      int cls = node_run(m, c->node, &op, &errs);
      if (cls == MC_OK)
        took++;
      else if (cls == MC_REFUSED || cls == MC_MISS)
        refused++;
    }
    free_copies(copies, n);
    if (took > 0) {
      if (errs.len) tether__log(TETHER_LOG_INFO, "memcached store: update of %s: %s", key, errs.data);
      tether__buf_free(&errs);
      return 0;
    }
    if (refused == 0) {
      rc = tether__fail(TETHER_EUNAVAIL, "memcached store: update of %s: no node took it (%s)", key,
                        errs.data ? errs.data : "");
      tether__buf_free(&errs);
      return rc;
    }
    tether__buf_free(&errs);
  }
  return tether__fail(TETHER_ETIMEDOUT, "memcached store: update of %s: kept losing races with other writes", key);
}

static int mc_set(tether_store *st, const char *sid, const char *json, size_t len, int64_t expires_ms, int mode) {
  mcstore *m = st->impl;
  int64_t now = tether_now_ms();
  int64_t ttl = tether__ttl_seconds(expires_ms, now);
  size_t klen;
  char *key = make_key(m, sid, &klen);
  int rc;
  if (ttl <= 0) {
    rc = write_tombstone(m, key, klen, "set (expired)");
    free(key);
    return rc;
  }
  char hdr[96];
  int hl = snprintf(hdr, sizeof(hdr), "T1 %" PRIu64 " %" PRId64 " v ", next_version(),
                    expires_ms ? expires_ms : now + ttl * 1000);
  size_t rawlen = (size_t)hl + len;
  if (klen + rawlen + MC_ITEM_OVERHEAD > MC_ITEM_MAX) {
    rc = tether__fail(TETHER_E2BIG,
                      "memcached store: session %s is %zu bytes of JSON, more than a memcached item holds "
                      "(at most %zu bytes with this key)",
                      sid, len, (size_t)(MC_ITEM_MAX - MC_ITEM_OVERHEAD) - klen - (size_t)hl);
    free(key);
    return rc;
  }
  char *raw = tether__malloc(rawlen);
  memcpy(raw, hdr, (size_t)hl);
  memcpy(raw + hl, json, len);
  if (mode == TETHER_WRITE_UPDATE)
    rc = update_replicas(m, key, klen, raw, rawlen, ttl);
  else
    rc = write_replicas_cmd(m, mode == TETHER_WRITE_CREATE ? CMD_ADD : CMD_SET, key, klen, raw, rawlen, ttl, "set");
  free(raw);
  free(key);
  return rc;
}

static int mc_touch(tether_store *st, const char *sid, const char *json, size_t len, int64_t expires_ms) {
  mcstore *m = st->impl;
  int64_t now = tether_now_ms();
  int64_t ttl = tether__ttl_seconds(expires_ms, now);
  size_t klen;
  char *key = make_key(m, sid, &klen);
  TETHER__UNUSED(json);
  TETHER__UNUSED(len);
  if (ttl <= 0) {
    int rc = write_tombstone(m, key, klen, "touch (expired)");
    free(key);
    return rc;
  }
  /* The nodes a read asks: a copy left past the replicas by a failover gets its expiry refreshed too. */
  size_t order[MC_MAX_NODES], nwalk = walk(m, key, klen, order), answered = 0, tried = 0;
  tether__buf errs = {0};
  mc_op op = {.cmd = CMD_TOUCH, .key = key, .klen = klen, .exp = mc_expiration(ttl, now)};
  for (size_t i = 0; i < nwalk && answered < m->replicas + 1; i++) {
    mc_node *nd = &m->nodes[order[i]];
    if (!node_usable(m, nd)) continue;
    tried++;
    int cls = node_run(m, nd, &op, &errs);
    if (cls == MC_OK || cls == MC_MISS) answered++;
  }
  int rc = 0;
  if (tried == 0)
    rc = all_down(m, "touch");
  else if (answered == 0)
    rc = tether__fail(TETHER_EUNAVAIL, "memcached store: touch of %s: no node answered (%s)", key,
                      errs.data ? errs.data : "");
  else if (errs.len)
    tether__log(TETHER_LOG_INFO, "memcached store: touch of %s: %s", key, errs.data);
  tether__buf_free(&errs);
  free(key);
  /* express-session's touch of a missing session is a no-op, not an error. */
  return rc;
}

static int mc_destroy(tether_store *st, const char *sid) {
  mcstore *m = st->impl;
  size_t klen;
  char *key = make_key(m, sid, &klen);
  int rc = write_tombstone(m, key, klen, "destroy");
  free(key);
  return rc;
}

/* A round trip to every node (down ones included): 0 when at least one answers. */
static int mc_ping(tether_store *st) {
  mcstore *m = st->impl;
  size_t klen, up = 0;
  char *key = make_key(m, "__tether_ping__", &klen);
  tether__buf errs = {0};
  for (size_t i = 0; i < m->n; i++) {
    mc_op op = {.cmd = CMD_GET, .key = key, .klen = klen};
    int cls = node_run(m, &m->nodes[i], &op, &errs);
    free(op.raw);
    if (cls == MC_OK || cls == MC_MISS) up++;
  }
  int rc = 0;
  if (up == 0)
    rc = tether__fail(TETHER_EUNAVAIL, "memcached store: no node answered (%s)", errs.data ? errs.data : "");
  else if (errs.len)
    tether__log(TETHER_LOG_WARN, "memcached store: %zu of %zu nodes answered (%s)", up, m->n, errs.data);
  tether__buf_free(&errs);
  free(key);
  return rc;
}

/* ---- opening and closing ---- */

static int parse_prefix(mcstore *m, const tether__url *url) {
  const char *p = tether__url_param(url, "prefix");
  if (p == NULL) p = "sess:";
  size_t n = strlen(p);
  if (n > MC_PREFIX_MAX)
    return tether__fail(TETHER_EINVAL, "memcached store: prefix is %zu bytes, at most %d allowed", n, MC_PREFIX_MAX);
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f)
      return tether__fail(TETHER_EINVAL,
                          "memcached store: prefix '%s' has a character memcached keys cannot hold (byte %zu)", p, i);
  m->prefix = tether__strdup(p);
  return 0;
}

static int parse_nodes(mcstore *m, const tether__url *url, const char *text) {
  if (url->nhosts == 0)
    return tether__fail(TETHER_EINVAL, "memcached store: URL '%s' names no node (memcached://host:port[,host:port...])",
                        text);
  if (url->user)
    return tether__fail(TETHER_EINVAL, "memcached store: URL '%s': user and password are not supported (no SASL)",
                        text);
  if (*url->path != '\0') return tether__fail(TETHER_EINVAL, "memcached store: takes no path, got '/%s'", url->path);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  for (size_t i = 0; i < url->nhosts; i++) {
    mc_node *nd = &m->nodes[i];
    pthread_mutex_init(&nd->lock, NULL);
    pthread_cond_init(&nd->freed, &ca);
    nd->host = tether__strdup(url->hosts[i].host);
    nd->port = url->hosts[i].port ? url->hosts[i].port : 11211;
    nd->name = strchr(nd->host, ':') ? tether__asprintf("[%s]:%d", nd->host, nd->port)
                                     : tether__asprintf("%s:%d", nd->host, nd->port);
    m->n = i + 1; /* from here mcstore_free() frees it */
    for (size_t j = 0; j < i; j++)
      if (strcmp(m->nodes[j].name, nd->name) == 0) {
        pthread_condattr_destroy(&ca);
        return tether__fail(TETHER_EINVAL, "memcached store: node %s is named twice", nd->name);
      }
  }
  pthread_condattr_destroy(&ca);
  return 0;
}

static int parse_config(mcstore *m, const tether__url *url, const char *text) {
  static const char *const allowed[] = {"replicas", "prefix",      "timeout_ms", "connect_timeout_ms",
                                        "retry_ms", "tombstone_s", "pool",       NULL};
  long replicas, pool;
  int rc = parse_nodes(m, url, text);
  if (rc == 0) rc = tether__url_check_params(url, allowed);
  if (rc == 0 && tether__url_param(url, "replicas")) {
    rc = tether__url_param_int(url, "replicas", 2, 1, 1000, &replicas);
    if (rc == 0 && (size_t)replicas > m->n)
      rc = tether__fail(TETHER_EINVAL, "memcached store: replicas=%ld but the URL names %zu node%s", replicas, m->n,
                        m->n == 1 ? "" : "s");
  } else {
    replicas = m->n < 2 ? (long)m->n : 2;
  }
  if (rc == 0) rc = tether__url_param_int(url, "timeout_ms", 500, 1, 600000, &m->timeout_ms);
  if (rc == 0) rc = tether__url_param_int(url, "connect_timeout_ms", 500, 1, 600000, &m->connect_timeout_ms);
  if (rc == 0) rc = tether__url_param_int(url, "retry_ms", 1000, 0, 3600000, &m->retry_ms);
  if (rc == 0) rc = tether__url_param_int(url, "tombstone_s", 3600, 1, MC_REL_MAX, &m->tombstone_s);
  if (rc == 0) rc = tether__url_param_int(url, "pool", 8, 1, MC_MAX_POOL, &pool);
  if (rc == 0) rc = parse_prefix(m, url);
  if (rc < 0) return rc;
  m->replicas = (size_t)replicas;
  m->pool = (size_t)pool;
  const char *names[MC_MAX_NODES];
  for (size_t i = 0; i < m->n; i++) names[i] = m->nodes[i].name;
  return tether_ketama_new(names, NULL, m->n, &m->ring);
}

static void mcstore_free(mcstore *m) {
  for (size_t i = 0; i < m->n; i++) {
    mc_node *nd = &m->nodes[i];
    while (nd->nidle > 0) client_free(nd->idle[--nd->nidle]);
    pthread_cond_destroy(&nd->freed);
    pthread_mutex_destroy(&nd->lock);
    free(nd->name);
    free(nd->host);
  }
  tether_ketama_free(m->ring);
  free(m->prefix);
  free(m);
}

static int mc_open(tether_store *st, const char *text) {
  tether__url url;
  int rc = tether__url_parse(text, &url);
  if (rc < 0) return rc;
  mcstore *m = tether__calloc(1, sizeof(*m));
  char *shown = tether__url_redact(text); /* messages end up in logs */
  rc = parse_config(m, &url, shown);
  free(shown);
  tether__url_free(&url);
  if (rc < 0) {
    mcstore_free(m);
    return rc;
  }
  st->impl = m;
  return 0;
}

static void mc_close(tether_store *st) { mcstore_free(st->impl); }

const tether__store_ops tether__store_memcached = {
    .kind = "memcached",
    .open = mc_open,
    .close = mc_close,
    .get = mc_get,
    .set = mc_set,
    .touch = mc_touch,
    .destroy = mc_destroy,
    .ping = mc_ping,
};
