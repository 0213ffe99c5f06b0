/* libtether: redis-cluster:// on a libuv loop (async_conn.h), by the blocking store's rules (cluster.c)
 * without blocking a thread.
 *
 * Each handle has one pipelined connection (async_conn.c) per node it talks to, and its own slot map, read
 * with CLUSTER SHARDS (CLUSTER SLOTS on servers without it) over one of those connections: the node that
 * gave the last map first, then the others in turn, seeds included. One map read at a time: calls that need
 * a map wait for it, and a MOVED during a read asks for one more. A call hashes its key (CRC16, {hash
 * tags}), sends the command to the slot's master (a replica after READONLY for reads with
 * read_from=replica) and follows the answer:
 *   - MOVED points the slot at the named node, asks for a map read and sends again at once;
 *   - ASK sends ASKING and the command to the named node (both in one write);
 *   - TRYAGAIN, CLUSTERDOWN, a slot no node serves and a node that cannot be reached or does not answer
 *     in time ask for a map read and send again after a backoff (10 ms doubling to 200 ms), until retry_ms
 *     after the call began;
 *   - at most max_redirects MOVED/ASK per call.
 * With wait=N, one WAIT N wait_timeout_ms follows the writes one turn of the loop sent to a node (a WAIT
 * blocks its connection until it answers, and it confirms every earlier write of the connection): fewer
 * confirmations fail each of those calls (TETHER_EUNAVAIL, counted in wait_failures). Redirects, map reads
 * and per-node errors and latency are counted in the store, as the blocking client counts them. A health
 * check (tether_astore_ping) PINGs one master, in turn (the slot map read first if there is none). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "../util.h"
#include "async_conn.h"
#include "cluster.h"

#define BACKOFF_MIN_MS 10
#define BACKOFF_MAX_MS 200
#define OWNER(p, type, field) ((type *)(void *)((char *)(p)-offsetof(type, field)))

static const char SHARDS[] = "*2\r\n$7\r\nCLUSTER\r\n$6\r\nSHARDS\r\n";
static const char SLOTS[] = "*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n";
static const char ASKING[] = "*1\r\n$6\r\nASKING\r\n";
static const char *const NAMES[] = {"GET", "SET", "EXPIRE", "DEL", "PING", "command"};

typedef struct cop cop;

typedef struct wgroup { /* one WAIT for the writes one turn of the loop sent to a node */
  tether__acmd cmd;
  cop *ops; /* through gnext */
} wgroup;

typedef struct anode {
  wgroup *open; /* this turn's writes, whose WAIT is not sent yet */
  char *host;
  int port;
  int readonly;        /* a replica's connection, for read_from=replica */
  tether__aconn *conn; /* NULL until first used */
  void *metrics;       /* the store's node: per-node errors and latency */
} anode;

enum { V_DONE, V_NOW, V_LATER }; /* what a call does once its replies are in */

struct cop { /* a call */
  tether__acmd cmd, asking;
  tether__acluster *k;
  cop *next;  /* waiting for a map, or for its retry time */
  cop *gnext; /* in its WAIT's group */
  int kind, mode;
  tether_astore_get_cb get_cb;
  tether_astore_cb cb;
  tether__acluster_cb raw_cb; /* TETHER__ACMD_RAW */
  redisReply *rep;            /* its reply, while cmd_done runs */
  void *arg;
  char *req; /* the command, formatted once, sent again on a retry */
  size_t reqlen;
  unsigned slot;
  uint64_t start_us, deadline_us, retry_at_us, sent_us;
  int backoff_ms, redirects, inflight, verdict, rc;
  long long acked; /* WAIT's answer */
  anode *to, *ask; /* the node of the exchange; the node an ASK named, for the next one */
  char *json;
  size_t len;
  char sid[8];   /* the start of the session id, for messages */
  char why[400]; /* the message of rc */
};

struct tether__acluster {
  uv_loop_t *loop;
  tether_store *st;
  tether__cluster_conf cf;
  void (*freed)(void *);
  void *owner;
  anode **nodes;
  size_t nnodes;
  uint16_t master[TETHER__CLUSTER_SLOTS];  /* index into nodes, or TETHER__CLUSTER_NONE */
  uint16_t replica[TETHER__CLUSTER_SLOTS]; /* a READONLY connection's node, for read_from=replica */
  int have_map, closing;
  int live; /* connections and the timer not yet released */
  /* the map read in flight */
  int refreshing, again, shards;
  size_t from, tries; /* nodes[from] first; how many were asked */
  size_t asked;       /* the node asked now */
  tether__acmd refresh;
  char refresh_why[400];
  cop *waiting;      /* calls waiting for a map */
  cop *retry;        /* calls waiting for their retry time */
  uv_timer_t timer;  /* the earliest retry time */
  uv_prepare_t prep; /* sends the WAITs of the turn */
  char wait_cmd[64];
  size_t wait_len;
  unsigned ping_slot;
};

static void dispatch(cop *op);
static void later(cop *op);
static void refresh_start(tether__acluster *k);

/* ---- nodes ---- */

static void maybe_free(tether__acluster *k) {
  if (!k->closing || k->live > 0) return;
  for (size_t i = 0; i < k->nnodes; i++) {
    free(k->nodes[i]->host);
    free(k->nodes[i]);
  }
  free(k->nodes);
  void (*freed)(void *) = k->freed;
  void *owner = k->owner;
  free(k);
  freed(owner);
}

static void released(void *owner) {
  tether__acluster *k = owner;
  k->live--;
  maybe_free(k);
}

static void handle_closed(uv_handle_t *h) { released(h->data); }

static uint16_t node_find(tether__acluster *k, const char *host, size_t hlen, int port, int readonly) {
  for (size_t i = 0; i < k->nnodes; i++) {
    anode *n = k->nodes[i];
    if (n->port == port && n->readonly == readonly && strlen(n->host) == hlen && memcmp(n->host, host, hlen) == 0)
      return (uint16_t)i;
  }
  anode *n = tether__calloc(1, sizeof(*n));
  n->host = tether__strndup(host, hlen);
  n->port = port;
  n->readonly = readonly;
  n->metrics = tether__cluster_node_ref(k->st, n->host, port);
  k->nodes = tether__realloc(k->nodes, (k->nnodes + 1) * sizeof(*k->nodes));
  k->nodes[k->nnodes] = n;
  return (uint16_t)k->nnodes++;
}

static int node_send(tether__acluster *k, anode *n, tether__acmd *c, const char *cmd, size_t len) {
  if (n->conn == NULL) {
    const tether__aconn_conf cf = {.who = "redis-cluster",
                                   .host = n->host,
                                   .port = n->port,
                                   .user = k->cf.user,
                                   .password = k->cf.password,
                                   .readonly = n->readonly,
                                   .timeout_ms = k->cf.timeout_ms,
                                   .connect_timeout_ms = k->cf.connect_timeout_ms};
    n->conn = tether__aconn_new(k->loop, &cf, released, k);
    k->live++;
  }
  return tether__aconn_send(n->conn, c, cmd, len);
}

/* ---- the slot map ---- */

static void install(tether__acluster *k, const tether__cluster_map *m) {
  uint16_t *mi = tether__malloc((m->naddrs + 1) * sizeof(*mi)), *ri = tether__malloc((m->naddrs + 1) * sizeof(*ri));
  for (size_t i = 0; i < m->naddrs; i++) {
    const tether__cluster_addr *a = &m->addrs[i];
    mi[i] = node_find(k, a->host, strlen(a->host), a->port, 0);
    ri[i] = k->cf.replica_reads ? node_find(k, a->host, strlen(a->host), a->port, 1) : TETHER__CLUSTER_NONE;
  }
  for (size_t s = 0; s < TETHER__CLUSTER_SLOTS; s++) {
    k->master[s] = m->master[s] == TETHER__CLUSTER_NONE ? TETHER__CLUSTER_NONE : mi[m->master[s]];
    k->replica[s] = m->replica[s] == TETHER__CLUSTER_NONE ? TETHER__CLUSTER_NONE : ri[m->replica[s]];
  }
  k->have_map = 1;
  free(mi);
  free(ri);
}

/* The map read is over: calls waiting for a map go, or back off. */
static void refresh_end(tether__acluster *k, int ok) {
  k->refreshing = 0;
  cop *w = k->waiting, *rev = NULL;
  k->waiting = NULL;
  while (w) { /* oldest first */
    cop *next = w->next;
    w->next = rev;
    rev = w;
    w = next;
  }
  if (k->again && ok) {
    k->again = 0;
    refresh_start(k);
  }
  while (rev) {
    cop *next = rev->next;
    rev->next = NULL;
    if (ok) {
      dispatch(rev);
    } else {
      rev->rc = TETHER_EUNAVAIL;
      snprintf(rev->why, sizeof(rev->why), "redis-cluster: no node gave a slot map (%.300s)", k->refresh_why);
      later(rev);
    }
    rev = next;
  }
}

static void why_append(tether__acluster *k, const char *msg) {
  size_t n = strlen(k->refresh_why);
  if (n < sizeof(k->refresh_why) - 1)
    snprintf(k->refresh_why + n, sizeof(k->refresh_why) - n, "%s%s", n ? "; " : "", msg);
}

static void refresh_next(tether__acluster *k) {
  while (k->tries < k->nnodes) {
    size_t i = (k->from + k->tries++) % k->nnodes; /* (MOVED may add nodes meanwhile) */
    anode *n = k->nodes[i];
    if (n->readonly) continue;
    k->asked = i;
    if (node_send(k, n, &k->refresh, k->shards ? SHARDS : SLOTS, k->shards ? sizeof(SHARDS) - 1 : sizeof(SLOTS) - 1) ==
        0)
      return;
    why_append(k, tether_last_error());
  }
  refresh_end(k, 0);
}

static void refresh_start(tether__acluster *k) {
  if (k->closing) return;
  if (k->refreshing) {
    k->again = 1;
    return;
  }
  k->refreshing = 1;
  k->again = 0;
  k->tries = 0;
  k->shards = 1;
  k->refresh_why[0] = '\0';
  refresh_next(k);
}

static void refresh_done(tether__acmd *c, int rc, redisReply *rep) {
  tether__acluster *k = OWNER(c, tether__acluster, refresh);
  if (k->closing) {
    k->refreshing = 0;
    return;
  }
  size_t asked = k->asked;
  const anode *n = k->nodes[asked];
  const char *what = k->shards ? "SHARDS" : "SLOTS";
  if (rc == 0 && rep->type == REDIS_REPLY_ERROR && k->shards && tether__cluster_no_shards(rep->str)) {
    k->shards = 0; /* an older server: ask it again, the other way */
    if (node_send(k, k->nodes[asked], &k->refresh, SLOTS, sizeof(SLOTS) - 1) < 0) {
      why_append(k, tether_last_error());
      refresh_next(k);
    }
    return;
  }
  tether__cluster_map m;
  if (rc == 0 && rep->type == REDIS_REPLY_ERROR)
    rc = tether__fail(TETHER_ESTORE, "redis-cluster %s:%d: CLUSTER %s: %.*s", n->host, n->port, what, (int)rep->len,
                      rep->str);
  else if (rc == 0 && tether__cluster_map_parse(rep, k->shards, &m) < 0)
    rc = tether__fail(TETHER_ESTORE, "redis-cluster %s:%d: CLUSTER %s: unexpected reply", n->host, n->port, what);
  else if (rc == 0 && m.nmasters == 0) {
    tether__cluster_map_free(&m);
    rc = tether__fail(TETHER_EUNAVAIL, "redis-cluster %s:%d: no master serves any slot", n->host, n->port);
  }
  if (rc < 0) {
    why_append(k, tether_last_error());
    refresh_next(k);
    return;
  }
  install(k, &m);
  tether__cluster_map_free(&m);
  tether__count(k->st, TETHER__C_MAP_REFRESHES);
  k->from = asked; /* it answered: ask it first next time */
  refresh_end(k, 1);
}

/* ---- calls ---- */

static int is_write(const cop *op) {
  return op->kind == TETHER__ACMD_SET || op->kind == TETHER__ACMD_TOUCH || op->kind == TETHER__ACMD_DESTROY;
}

static void finish(cop *op) {
  if (op->rc < 0) tether__fail(op->rc, "%s", op->why);
  if (op->kind == TETHER__ACMD_RAW)
    op->raw_cb(op->arg, op->rc, op->rc == 0 ? op->rep : NULL);
  else
    tether__acall_finish(op->k->st, op->kind, op->start_us, 0, op->rc, op->json, op->len, op->get_cb, op->cb, op->arg);
  free(op->req);
  free(op);
}

static void set_rc(cop *op, int rc) {
  op->rc = rc;
  snprintf(op->why, sizeof(op->why), "%s", tether_last_error());
}

static void on_timer(uv_timer_t *t);

/* A transient failure: again after a backoff, with a fresh map, unless the call is out of time. */
static void later(cop *op) {
  tether__acluster *k = op->k;
  uint64_t now = tether__mono_us();
  if (k->closing) {
    set_rc(op, tether__fail(TETHER_EUNAVAIL, "store closed"));
    finish(op);
    return;
  }
  if (now + (uint64_t)op->backoff_ms * 1000 > op->deadline_us) {
    finish(op);
    return;
  }
  op->retry_at_us = now + (uint64_t)op->backoff_ms * 1000;
  op->backoff_ms = op->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : op->backoff_ms * 2;
  op->next = k->retry;
  k->retry = op;
  uint64_t first = op->retry_at_us;
  for (cop *o = k->retry; o; o = o->next)
    if (o->retry_at_us < first) first = o->retry_at_us;
  uv_timer_start(&k->timer, on_timer, first > now ? (first - now + 999) / 1000 : 0, 0);
  refresh_start(k);
}

static void on_timer(uv_timer_t *t) {
  tether__acluster *k = t->data;
  uint64_t now = tether__mono_us(), first = UINT64_MAX;
  cop *due = NULL, **p = &k->retry;
  while (*p) {
    cop *op = *p;
    if (op->retry_at_us <= now + 500) {
      *p = op->next;
      op->next = due;
      due = op;
    } else {
      if (op->retry_at_us < first) first = op->retry_at_us;
      p = &op->next;
    }
  }
  if (k->retry) uv_timer_start(&k->timer, on_timer, (first - now + 999) / 1000, 0);
  while (due) {
    cop *next = due->next;
    dispatch(due);
    due = next;
  }
}

/* All of a call's replies are in. */
static void settle(cop *op) {
  tether__acluster *k = op->k;
  if (op->verdict == V_NOW) {
    dispatch(op);
  } else if (op->verdict == V_LATER) {
    later(op);
  } else {
    if (op->rc == 0 && is_write(op) && k->cf.wait_n && op->acked < k->cf.wait_n) {
      tether__count(k->st, TETHER__C_WAIT_FAILURES);
      if (op->acked < 0)
        set_rc(op, tether__fail(TETHER_EUNAVAIL,
                                "redis-cluster %s:%d: %s: written, but the connection failed before WAIT answered",
                                op->to->host, op->to->port, NAMES[op->kind]));
      else
        set_rc(op, tether__fail(
                       TETHER_EUNAVAIL, "redis-cluster %s:%d: %s: WAIT: %lld of %d replicas confirmed within %d ms",
                       op->to->host, op->to->port, NAMES[op->kind], op->acked, k->cf.wait_n, k->cf.wait_timeout_ms));
    }
    finish(op);
  }
}

static void part_done(cop *op) {
  if (--op->inflight == 0) settle(op);
}

static int starts(const redisReply *rep, const char *word) {
  size_t n = strlen(word);
  return rep->type == REDIS_REPLY_ERROR && rep->len >= n && strncmp(rep->str, word, n) == 0;
}

/* "MOVED 3999 127.0.0.1:6381" / "ASK ...": follow it. */
static void redirect(cop *op, const redisReply *rep) {
  tether__acluster *k = op->k;
  const char *host;
  size_t hlen;
  int port, bad = tether__cluster_redirect(rep->str, rep->len, &host, &hlen, &port) < 0;
  if (bad || ++op->redirects > k->cf.max_redirects) {
    op->verdict = V_DONE;
    set_rc(op, tether__fail(TETHER_ESTORE, "redis-cluster: %s: %s%.*s", NAMES[op->kind],
                            bad ? "" : "too many redirects, the last: ", (int)rep->len, rep->str));
    return;
  }
  tether__count(k->st, TETHER__C_REDIRECTS);
  uint16_t to = node_find(k, host, hlen, port, 0);
  if (rep->str[0] == 'M') {
    k->master[op->slot] = to;
    refresh_start(k); /* other slots most likely moved too */
  } else {
    op->ask = k->nodes[to];
  }
  op->verdict = V_NOW;
}

static void cmd_done(tether__acmd *c, int rc, redisReply *rep) {
  cop *op = OWNER(c, cop, cmd);
  tether__acluster *k = op->k;
  tether__cluster_node_observe(op->to->metrics, tether__mono_us() - op->sent_us, rc < 0);
  if (rc < 0) {
    op->verdict = V_LATER;
    set_rc(op, rc);
  } else if (starts(rep, "MOVED ") || starts(rep, "ASK ")) {
    redirect(op, rep);
  } else if (starts(rep, "TRYAGAIN") || starts(rep, "CLUSTERDOWN")) {
    if (rep->str[0] == 'T') tether__count(k->st, TETHER__C_TRYAGAIN);
    op->verdict = V_LATER;
    set_rc(op, tether__fail(TETHER_EUNAVAIL, "redis-cluster %s:%d: %s: %.*s", op->to->host, op->to->port,
                            NAMES[op->kind], (int)rep->len, rep->str));
  } else if (op->kind == TETHER__ACMD_RAW) {
    op->verdict = V_DONE;
    op->rc = 0;
    op->rep = rep; /* settled below, while rep lives */
  } else {
    op->verdict = V_DONE;
    int r = tether__acmd_result(op->kind, op->mode, "redis-cluster", k->cf.prefix, op->sid, k->cf.max_value, rep,
                                &op->json, &op->len);
    if (r < 0)
      set_rc(op, r);
    else
      op->rc = 0;
  }
  part_done(op);
}

static void group_done(tether__acmd *c, int rc, redisReply *rep) {
  wgroup *g = OWNER(c, wgroup, cmd);
  long long acked = rc == 0 && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
  for (cop *op = g->ops, *next; op; op = next) {
    next = op->gnext;
    op->acked = acked;
    part_done(op);
  }
  free(g);
}

/* Before the loop polls: each node's writes of this turn get their WAIT. */
static void on_prepare(uv_prepare_t *p) {
  tether__acluster *k = p->data;
  uv_prepare_stop(p);
  for (size_t i = 0; i < k->nnodes; i++) {
    anode *n = k->nodes[i];
    wgroup *g = n->open;
    if (g == NULL) continue;
    n->open = NULL;
    int rc = node_send(k, n, &g->cmd, k->wait_cmd, k->wait_len);
    if (rc == 0)
      tether__aconn_flush(n->conn); /* the connection's own flush may have run already this turn */
    else
      group_done(&g->cmd, rc, NULL);
  }
}

static void join_wait(tether__acluster *k, anode *n, cop *op) {
  if (n->open == NULL) {
    n->open = tether__calloc(1, sizeof(*n->open));
    n->open->cmd.done = group_done;
    n->open->cmd.extra_ms = k->cf.wait_timeout_ms;
  }
  op->gnext = n->open->ops;
  n->open->ops = op;
  op->inflight++;
  if (!uv_is_active((uv_handle_t *)&k->prep)) uv_prepare_start(&k->prep, on_prepare);
}

static void asking_done(tether__acmd *c, int rc, redisReply *rep) {
  (void)rc;
  (void)rep;
  part_done(OWNER(c, cop, asking));
}

/* Sends the call to the node its slot (or an ASK) names: [ASKING,] the command [, WAIT] in one write. */
static void dispatch(cop *op) {
  tether__acluster *k = op->k;
  if (k->closing) {
    set_rc(op, tether__fail(TETHER_EUNAVAIL, "store closed"));
    finish(op);
    return;
  }
  if (!k->have_map) {
    op->next = k->waiting;
    k->waiting = op;
    refresh_start(k);
    return;
  }
  uint16_t i = op->kind == TETHER__ACMD_GET && k->cf.replica_reads && k->replica[op->slot] != TETHER__CLUSTER_NONE
                   ? k->replica[op->slot]
                   : k->master[op->slot];
  anode *n = op->ask ? op->ask : i == TETHER__CLUSTER_NONE ? NULL : k->nodes[i];
  int asking = op->ask != NULL;
  op->ask = NULL;
  op->next = NULL;
  op->verdict = V_DONE;
  if (n == NULL) {
    set_rc(op, tether__fail(TETHER_EUNAVAIL, "redis-cluster: no node serves slot %u", op->slot));
    later(op);
    return;
  }
  op->to = n;
  op->sent_us = tether__mono_us();
  op->acked = 0;
  int rc = 0;
  if (asking && (rc = node_send(k, n, &op->asking, ASKING, sizeof(ASKING) - 1)) == 0) op->inflight++;
  if (rc == 0 && (rc = node_send(k, n, &op->cmd, op->req, op->reqlen)) == 0) op->inflight++;
  if (rc == 0 && is_write(op) && k->cf.wait_n) join_wait(k, n, op);
  if (op->inflight == 0) { /* the node cannot be reached (its connection backs off) */
    tether__cluster_node_observe(n->metrics, 0, 1);
    set_rc(op, rc);
    later(op);
  }
}

static cop *cop_new(tether__acluster *k, int kind, void *arg) {
  cop *op = tether__calloc(1, sizeof(*op));
  op->k = k;
  op->kind = kind;
  op->arg = arg;
  op->cmd.done = cmd_done;
  op->asking.done = asking_done;
  return op;
}

static void start(cop *op) {
  op->start_us = tether__mono_us();
  op->deadline_us = op->start_us + (uint64_t)op->k->cf.retry_ms * 1000;
  op->backoff_ms = BACKOFF_MIN_MS;
  dispatch(op);
}

void tether__acluster_command(tether__acluster *k, const char *key, const char *req, size_t len, tether__acluster_cb cb,
                              void *arg) {
  cop *op = cop_new(k, TETHER__ACMD_RAW, arg);
  op->raw_cb = cb;
  op->req = tether__malloc(len);
  memcpy(op->req, req, len);
  op->reqlen = len;
  op->slot = tether__cluster_slot(key, strlen(key));
  start(op);
}

int tether__acluster_call(tether__acluster *k, int kind, int mode, const char *sid, const char *json, size_t len,
                          int64_t expires_ms, tether_astore_get_cb get_cb, tether_astore_cb cb, void *arg) {
  cop *op = cop_new(k, kind, arg);
  op->mode = mode;
  op->get_cb = get_cb;
  op->cb = cb;
  op->req = tether__acmd_format(kind, mode, k->cf.prefix, sid, json, len, expires_ms, k->cf.max_value, &op->reqlen);
  if (kind == TETHER__ACMD_PING) {
    op->slot = k->ping_slot;
    k->ping_slot = (k->ping_slot + 5461) % TETHER__CLUSTER_SLOTS; /* masters in turn */
  } else {
    char buf[256]; /* the key, to hash (on the stack and without printf: every call does it) */
    size_t pl = strlen(k->cf.prefix), sl = strlen(sid);
    char *key = pl + sl <= sizeof(buf) ? buf : tether__malloc(pl + sl);
    memcpy(key, k->cf.prefix, pl);
    memcpy(key + pl, sid, sl);
    op->slot = tether__cluster_slot(key, pl + sl);
    if (key != buf) free(key);
  }
  size_t n = strnlen(sid, sizeof(op->sid) - 2); /* the start of the id, for messages */
  memcpy(op->sid, sid, n);
  op->sid[n] = '\0';
  start(op);
  return 0;
}

/* ---- opening and closing ---- */

tether__acluster *tether__acluster_new(uv_loop_t *loop, tether_store *st, void (*freed)(void *), void *owner) {
  tether__cluster_conf cf;
  if (tether__cluster_conf_get(st, &cf) < 0) return NULL;
  tether__acluster *k = tether__calloc(1, sizeof(*k));
  k->loop = loop;
  k->st = st;
  k->cf = cf;
  k->freed = freed;
  k->owner = owner;
  memset(k->master, 0xff, sizeof(k->master));
  memset(k->replica, 0xff, sizeof(k->replica));
  for (size_t i = 0; i < cf.nseeds; i++) node_find(k, cf.seeds[i].host, strlen(cf.seeds[i].host), cf.seeds[i].port, 0);
  k->refresh.done = refresh_done;
  char n[16], ms[16];
  snprintf(n, sizeof(n), "%d", cf.wait_n);
  snprintf(ms, sizeof(ms), "%d", cf.wait_timeout_ms);
  k->wait_len = (size_t)snprintf(k->wait_cmd, sizeof(k->wait_cmd), "*3\r\n$4\r\nWAIT\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n",
                                 strlen(n), n, strlen(ms), ms);
  uv_timer_init(loop, &k->timer);
  uv_prepare_init(loop, &k->prep);
  k->timer.data = k->prep.data = k;
  k->live = 2;
  return k;
}

void tether__acluster_close(tether__acluster *k) {
  if (k->closing) return;
  k->closing = 1;
  cop *lists[] = {k->waiting, k->retry};
  k->waiting = k->retry = NULL;
  for (size_t l = 0; l < 2; l++) {
    for (cop *op = lists[l], *next; op; op = next) {
      next = op->next;
      set_rc(op, tether__fail(TETHER_EUNAVAIL, "store closed"));
      finish(op);
    }
  }
  for (size_t i = 0; i < k->nnodes; i++) { /* WAITs not sent: their writes are not confirmed */
    wgroup *g = k->nodes[i]->open;
    k->nodes[i]->open = NULL;
    if (g) group_done(&g->cmd, tether__fail(TETHER_EUNAVAIL, "store closed"), NULL);
  }
  uv_close((uv_handle_t *)&k->timer, handle_closed);
  uv_close((uv_handle_t *)&k->prep, handle_closed);
  for (size_t i = 0; i < k->nnodes; i++)
    if (k->nodes[i]->conn) tether__aconn_close(k->nodes[i]->conn);
}
