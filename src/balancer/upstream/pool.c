/* Server connections and their pools, per worker. Each server has an idle list (most recently used first);
 * the servers of one upstream form a group, which counts its busy connections (an exchange, a tunnel or a
 * connect on them) and decides how many idle ones stay:
 * - `keepalive N` (nginx): at most N idle connections per upstream and worker; one given back to a full
 *   cache pushes the upstream's least recently used one out.
 * - no `keepalive` (the default): the pool follows demand, as HAProxy's idle connection management does.
 *   Busy and idle together stay within what recent load needed: the most busy at once in this period
 *   (POOL_PERIOD_MS), or the estimate of the periods before, which moves halfway to each period's peak
 *   (HAProxy's est_need_conns over pool-purge-delay 5s). At each period's end the idle ones above that close,
 *   least recently used first: after a burst of 2,000 the pool halves every period once the load goes.
 *   Bounds: at least max(POOL_MIN, servers) connections are kept, at most pool_max_idle idle.
 * - `keepalive 0`: none.
 * Whatever the mode, a connection idle for keepalive_timeout closes, and one that carried keepalive_requests
 * exchanges or was opened keepalive_time ago is not kept. */
#include "pool.h"

#include <stdlib.h>
#include <string.h>

#include "../io/deadline.h"
#include "../io/listen.h"
#include "../worker.h"

#define POOL_PERIOD_MS 5000 /* the adaptive pool's demand window, and how often its surplus closes */
#define POOL_MIN 16         /* the adaptive pool keeps at least this many (or one per server) */
#define UP_IN_KEEP 4096     /* the response buffer an idle connection keeps (tether__grow's first size) */

typedef struct pool_group pool_group;

struct tether__pool {
  tether__server_state *srv;
  pool_group *g;
  tether__upconn *head, *tail; /* idle: most recently used first */
  int count;
};

/* One upstream's pools in one worker. */
struct pool_group {
  const void *key; /* the upstream's state, kept across reloads by name */
  tether__worker *w;
  tether__pool **pools; /* its servers' */
  int npools;
  int idle, busy;
  int peak;            /* most busy at once in this period */
  int need;            /* what the past periods needed (HAProxy's est_need_conns) */
  uint64_t period_end; /* loop time */
  int keep_min, max_idle;
  uv_timer_t timer; /* the adaptive pool's period, while connections idle */
  uint8_t timer_init, timer_closed;
};

typedef struct tether__pools {
  tether__pool **pools;
  int npools;
  pool_group **groups;
  int ngroups;
} tether__pools;

static uint64_t loop_now(const pool_group *g) { return uv_now(&g->w->loop); }

/* Demand: one period's peak goes into the estimate, as often as periods went by (at most a few: an estimate
 * halves toward the load each time, so more change nothing). */
static void roll(pool_group *g) {
  uint64_t now = loop_now(g);
  for (int i = 0; i < 16 && now >= g->period_end; i++) {
    int half = (g->need + g->peak) / 2;
    g->need = half > g->peak ? half : g->peak;
    g->peak = g->busy;
    g->period_end += POOL_PERIOD_MS;
  }
  if (now >= g->period_end) g->period_end = now + POOL_PERIOD_MS;
}

/* How many idle connections the adaptive pool may hold now. */
static int adaptive_room(const pool_group *g) {
  int want = g->need > g->peak ? g->need : g->peak;
  if (want < g->keep_min) want = g->keep_min;
  int room = want - g->busy;
  return room < g->max_idle ? room : g->max_idle;
}

static pool_group *group_for(tether__pools *ps, tether__worker *w, const void *key) {
  for (int i = 0; i < ps->ngroups; i++)
    if (ps->groups[i]->key == key) return ps->groups[i];
  pool_group *g = tether__calloc(1, sizeof(*g));
  g->key = key;
  g->w = w;
  g->period_end = uv_now(&w->loop) + POOL_PERIOD_MS;
  ps->groups = tether__realloc(ps->groups, (size_t)(ps->ngroups + 1) * sizeof(*ps->groups));
  ps->groups[ps->ngroups++] = g;
  return g;
}

tether__pool *tether__pool_of(tether__worker *w, const tether__upstream_rt *ur, int idx) {
  tether__server_state *srv = ur->servers[idx];
  if (w->pools == NULL) w->pools = tether__calloc(1, sizeof(*w->pools));
  tether__pools *ps = w->pools;
  for (int i = 0; i < ps->npools; i++)
    if (ps->pools[i]->srv == srv) return ps->pools[i];
  pool_group *g = group_for(ps, w, ur->state);
  tether__pool *p = tether__calloc(1, sizeof(*p));
  p->srv = srv;
  p->g = g;
  ps->pools = tether__realloc(ps->pools, (size_t)(ps->npools + 1) * sizeof(*ps->pools));
  ps->pools[ps->npools++] = p;
  g->pools = tether__realloc(g->pools, (size_t)(g->npools + 1) * sizeof(*g->pools));
  g->pools[g->npools++] = p;
  return p;
}

static void busy_one_more(pool_group *g) {
  roll(g);
  if (++g->busy > g->peak) g->peak = g->busy;
}

void tether__pool_adopt(tether__pool *p, tether__upconn *u) {
  u->pool = p;
  u->born = loop_now(p->g);
  busy_one_more(p->g);
}

static void idle_remove(tether__upconn *u) {
  tether__pool *p = u->pool;
  if (u->pool_prev)
    u->pool_prev->pool_next = u->pool_next;
  else
    p->head = u->pool_next;
  if (u->pool_next)
    u->pool_next->pool_prev = u->pool_prev;
  else
    p->tail = u->pool_prev;
  u->pool_next = u->pool_prev = NULL;
  u->idle = 0;
  p->count--;
  p->g->idle--;
}

/* The connection and its timer close apart; whichever closes last frees. */
static void up_free(uv_handle_t *h) {
  tether__upconn *u = h->data;
  if (u->timer.data == NULL) {
    free(u->in);
    free(u);
  } else {
    u->io.tcp.data = NULL;
  }
}

static void up_timer_closed(uv_handle_t *h) {
  tether__upconn *u = h->data;
  u->timer.data = NULL;
  if (u->io.tcp.data == NULL) {
    free(u->in);
    free(u);
  }
}

void tether__up_close(tether__upconn *u) {
  if (u->closing) return;
  u->closing = 1;
  if (u->idle)
    idle_remove(u);
  else if (u->pool)
    u->pool->g->busy--;
  u->pool = NULL;
  if (u->c) {
    u->c->up = NULL;
    u->c = NULL;
  }
  uv_timer_stop(&u->timer);
  uv_close((uv_handle_t *)&u->timer, up_timer_closed);
  tether__io_close(&u->io, up_free);
  tether__listen_fd_freed(u->w);
}

/* The upstream's least recently used idle connection closes (a full cache, or the adaptive pool's surplus). */
static void close_oldest(pool_group *g) {
  tether__upconn *oldest = NULL;
  for (int i = 0; i < g->npools; i++) {
    tether__upconn *t = g->pools[i]->tail;
    if (t && (oldest == NULL || t->idle_since < oldest->idle_since)) oldest = t;
  }
  if (oldest) tether__up_close(oldest);
}

static void period_tick(uv_timer_t *t) {
  pool_group *g = t->data;
  roll(g);
  int room = adaptive_room(g);
  while (g->idle > (room > 0 ? room : 0)) close_oldest(g);
  if (g->idle == 0) uv_timer_stop(&g->timer);
}

static void period_start(pool_group *g) {
  if (g->timer_closed) return;
  if (!g->timer_init) {
    uv_timer_init(&g->w->loop, &g->timer);
    uv_unref((uv_handle_t *)&g->timer); /* busy connections keep the loop alive, not their pool */
    g->timer.data = g;
    g->timer_init = 1;
  }
  if (!uv_is_active((uv_handle_t *)&g->timer)) uv_timer_start(&g->timer, period_tick, POOL_PERIOD_MS, POOL_PERIOD_MS);
}

/* Whether the connection may carry another exchange at all. */
static int reusable(const tether__upconn *u, const tether__cf_upstream *cu) {
  return cu->keepalive != 0 && cu->keepalive_timeout_ms > 0 && u->requests < cu->keepalive_requests &&
         loop_now(u->pool->g) - u->born < (uint64_t)cu->keepalive_time_ms && u->in_len == 0 && u->io.pending == 0 &&
         !u->w->stopping;
}

/* Makes room for one more idle connection in the group: 1, or 0 when it must close instead. */
static int make_room(pool_group *g, const tether__cf_upstream *cu) {
  int room;
  if (cu->keepalive > 0) {
    room = cu->keepalive;
  } else {
    g->keep_min = (int)cu->nservers > POOL_MIN ? (int)cu->nservers : POOL_MIN;
    g->max_idle = cu->pool_max_idle;
    roll(g);
    room = adaptive_room(g);
  }
  if (room <= 0) return 0;
  while (g->idle >= room) close_oldest(g);
  return 1;
}

void tether__up_release(tether__upconn *u, const tether__cf_upstream *cu) {
  if (u->c) {
    u->c->up = NULL;
    u->c = NULL;
  }
  tether__pool *p = u->pool;
  pool_group *g = p->g;
  u->requests++;
  g->busy--;
  if (!reusable(u, cu) || !make_room(g, cu)) {
    u->pool = NULL; /* no longer counted */
    tether__up_close(u);
    return;
  }
  u->state = TETHER__US_IDLE;
  if (u->in_cap > UP_IN_KEEP) { /* an idle connection keeps no more than a first read's buffer for its next answer */
    free(u->in);
    u->in = NULL;
    u->in_cap = 0;
  }
  u->idle = 1;
  u->idle_since = loop_now(g);
  u->pool_prev = NULL;
  u->pool_next = p->head;
  if (p->head)
    p->head->pool_prev = u;
  else
    p->tail = u;
  p->head = u;
  p->count++;
  g->idle++;
  tether__io_resume(&u->io); /* an idle connection keeps reading to notice the server closing it */
  /* the exchange's timer, its callback closing a connection that has no client: no timer operation in steady use */
  tether__deadline_set(&u->timer, &u->due, u->on_timer, cu->keepalive_timeout_ms);
  if (cu->keepalive < 0) period_start(g);
}

tether__upconn *tether__pool_take(tether__pool *p, const void *tls_ctx) {
  while (p->head) {
    tether__upconn *u = p->head;
    idle_remove(u);
    int quiet = u->tls_ctx != tls_ctx ? 0 : u->in_len == 0 ? tether__io_quiet(&u->io) : -1;
    if (quiet == 1) {
      tether__deadline_clear(&u->due);
      busy_one_more(p->g);
      return u;
    }
    u->pool = NULL; /* neither idle nor busy: not counted */
    if (quiet < 0)
      tether__log(TETHER_LOG_WARN, "upstream %s: %s sent bytes on an idle connection; closed it", p->srv->upstream,
                  p->srv->name);
    tether__up_close(u);
  }
  return NULL;
}

void tether__worker_drop_pools(tether__worker *w) {
  tether__pools *ps = w->pools;
  if (ps == NULL) return;
  for (int i = 0; i < ps->npools; i++)
    while (ps->pools[i]->head) tether__up_close(ps->pools[i]->head);
  for (int i = 0; i < ps->ngroups; i++) {
    pool_group *g = ps->groups[i];
    if (g->timer_init && !g->timer_closed) uv_close((uv_handle_t *)&g->timer, NULL);
    g->timer_closed = 1;
  }
}

void tether__worker_free_pools(tether__worker *w) {
  tether__pools *ps = w->pools;
  if (ps == NULL) return;
  for (int i = 0; i < ps->npools; i++) free(ps->pools[i]);
  for (int i = 0; i < ps->ngroups; i++) {
    free(ps->groups[i]->pools);
    free(ps->groups[i]);
  }
  free(ps->pools);
  free(ps->groups);
  free(ps);
  w->pools = NULL;
}
