/* Server connections and their idle pools. */
#include "pool.h"

#include <stdlib.h>
#include <string.h>

#include "../io/listen.h"
#include "../worker.h"

#define IDLE_TIMEOUT_MS 60000 /* an idle pooled connection is closed after this */

static tether__pool *pool_for(tether__worker *w, tether__server_state *srv, int create) {
  for (int i = 0; i < w->npools; i++)
    if (w->pools[i].srv == srv) return &w->pools[i];
  if (!create) return NULL;
  if (w->npools == w->cap_pools) {
    w->cap_pools = w->cap_pools ? w->cap_pools * 2 : 8;
    w->pools = tether__realloc(w->pools, (size_t)w->cap_pools * sizeof(*w->pools));
    /* idle connections point at their pool: fix them after the move */
    for (int i = 0; i < w->npools; i++)
      for (tether__upconn *u = w->pools[i].head; u; u = u->pool_next) u->pool = &w->pools[i];
  }
  tether__pool *p = &w->pools[w->npools++];
  memset(p, 0, sizeof(*p));
  p->srv = srv;
  return p;
}

static void pool_remove(tether__upconn *u) {
  tether__pool *p = u->pool;
  if (p == NULL) return;
  if (u->pool_prev)
    u->pool_prev->pool_next = u->pool_next;
  else
    p->head = u->pool_next;
  if (u->pool_next) u->pool_next->pool_prev = u->pool_prev;
  u->pool_next = u->pool_prev = NULL;
  u->pool = NULL;
  p->count--;
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
  pool_remove(u);
  if (u->c) {
    u->c->up = NULL;
    u->c = NULL;
  }
  uv_timer_stop(&u->timer);
  uv_close((uv_handle_t *)&u->timer, up_timer_closed);
  tether__io_close(&u->io, up_free);
  tether__listen_fd_freed(u->w);
}

static void idle_timeout(uv_timer_t *t) { tether__up_close(t->data); }

void tether__up_release(tether__upconn *u, const tether__cf_upstream *cu) {
  tether__worker *w = u->w;
  if (u->c) {
    u->c->up = NULL;
    u->c = NULL;
  }
  tether__pool *p = pool_for(w, u->srv, 1);
  if (cu->keepalive <= 0 || p->count >= cu->keepalive || u->in_len > 0 || w->stopping || u->io.pending > 0) {
    tether__up_close(u);
    return;
  }
  u->state = TETHER__US_IDLE;
  free(u->in); /* an idle connection keeps no buffer */
  u->in = NULL;
  u->in_cap = 0;
  u->pool = p;
  u->pool_prev = NULL;
  u->pool_next = p->head;
  if (p->head) p->head->pool_prev = u;
  p->head = u;
  p->count++;
  tether__io_resume(&u->io); /* an idle connection keeps reading to notice the server closing it */
  uv_timer_start(&u->timer, idle_timeout, IDLE_TIMEOUT_MS, 0);
}

tether__upconn *tether__pool_take(tether__worker *w, tether__server_state *srv, const void *tls_ctx) {
  tether__pool *p = pool_for(w, srv, 0);
  while (p && p->head) {
    tether__upconn *u = p->head;
    pool_remove(u);
    int quiet = u->tls_ctx != tls_ctx ? 0 : u->in_len == 0 ? tether__io_quiet(&u->io) : -1;
    if (quiet == 1) {
      uv_timer_stop(&u->timer);
      return u;
    }
    if (quiet < 0)
      tether__log(TETHER_LOG_WARN, "upstream %s: %s sent bytes on an idle connection; closed it", srv->upstream,
                  srv->name);
    tether__up_close(u);
  }
  return NULL;
}

void tether__worker_drop_pools(tether__worker *w) {
  for (int i = 0; i < w->npools; i++)
    while (w->pools[i].head) tether__up_close(w->pools[i].head);
}
