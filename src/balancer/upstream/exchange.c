/* One exchange with a server. */
#include "exchange.h"

#include <stdlib.h>
#include <string.h>

#include "../answer.h"
#include "../balance/balance.h"
#include "../conn.h"
#include "../io/deadline.h"
#include "../io/tls.h"
#include "../persist/monitor.h"
#include "../persist/persist.h"
#include "../request/finish.h"
#include "../request/rewrite.h"
#include "../tls/context.h"
#include "../worker.h"
#include "pool.h"
#include "tunnel.h"

static void on_server_read(tether__io *io, ssize_t nread, const char *data);
static void server_closed(tether__upconn *u, ssize_t err);

static int class_of(int status) {
  return status < 200   ? TETHER__CLASS_1XX
         : status < 300 ? TETHER__CLASS_2XX
         : status < 400 ? TETHER__CLASS_3XX
         : status < 500 ? TETHER__CLASS_4XX
                        : TETHER__CLASS_5XX;
}

/* ---- timers ---- */

/* Passive health: the request's server failed it (c->srv still names it). */
static void server_failure(tether__client *c) {
  const tether__upstream_rt *ur = &c->rt->ups[c->ups];
  tether__server_failed(ur->servers[c->srv], &ur->cf->servers[c->srv], tether_now_ms());
}

/* The server is done with this request without a whole answer: counted, and released. */
static void server_gave_up(tether__client *c) {
  tether__server_state *srv = c->rt->ups[c->ups].servers[c->srv];
  server_failure(c);
  atomic_fetch_sub_explicit(&srv->active, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&srv->per_worker[c->w->id].requests[TETHER__CLASS_ERR], 1, memory_order_relaxed);
  c->srv = -1;
}

/* A response that broke (an invalid head, a reset or a timeout halfway): the server is counted as failed,
 * and the client gets a 502 if nothing of the answer has left yet, else its connection is cut. */
static void response_broke(tether__client *c, tether__upconn *u, int status) {
  c->keep_alive = 0;
  if (c->srv >= 0) server_gave_up(c);
  tether__up_close(u);
  if (c->resp_started)
    c->proto->abort(c);
  else
    tether__respond(c, status, NULL, 0);
}

static void server_timeout(uv_timer_t *t) {
  tether__upconn *u = t->data;
  if (!tether__deadline_due(t, &u->due, server_timeout)) return;
  tether__client *c = u->c;
  if (c == NULL) {
    tether__up_close(u);
  } else if (u->state == TETHER__US_CONNECTING) {
    tether__exchange_failed(c, 504, 1);
  } else {
    tether__log(TETHER_LOG_INFO, "upstream %s: %s timed out %s", u->srv->upstream, u->srv->name,
                u->io.pending ? "taking the request" : "answering");
    response_broke(c, u, 504);
  }
}

static void arm_server(tether__upconn *u, int64_t ms) { tether__deadline_set(&u->timer, &u->due, server_timeout, ms); }

/* While request bytes wait to be taken, proxy_send_timeout runs between two writes (nginx); then
 * proxy_read_timeout between two reads. */
static void arm_exchange(tether__upconn *u, const tether__config *cf) {
  arm_server(u, u->io.pending ? cf->proxy_send_timeout_ms : cf->proxy_read_timeout_ms);
}

/* ---- sending ---- */

void tether__exchange_sending(tether__upconn *u) {
  if (u->state == TETHER__US_SENDING && !u->got_bytes && u->c) arm_exchange(u, u->c->rt->cf);
}

static void on_server_written(tether__io *io, int status) {
  tether__upconn *u = io->owner;
  if (u->closing) return;
  tether__client *c = u->c;
  if (status < 0) {
    /* A write can fail before the read side hears of the reset (libuv reports it first, at the next turn):
     * the exchange ends here, or the client would wait for a server connection that is gone. */
    if (c == NULL)
      tether__up_close(u);
    else if (u->state == TETHER__US_TUNNEL)
      tether__tunnel_server_closed(u);
    else if (!u->got_bytes)
      server_closed(u, status);
    else /* an answer has begun (an early 413, say): it goes on, but the connection is not reused */
      u->write_failed = 1;
    return;
  }
  if (c == NULL) return;
  if (u->state == TETHER__US_SENDING && !u->got_bytes) arm_exchange(u, c->rt->cf);
  if (c->io.paused && u->io.pending < TETHER__MAX_PENDING / 2) c->proto->resume(c);
}

static void connect_server(tether__client *c, tether__pool *p, const tether__cf_server *cs);

/* A reused connection that failed before any answer: most likely the server closed it as the request left
 * (its idle timeout). The same server gets the request again on a new connection, not counted as a try
 * (nginx's cached peer), when that is safe: an idempotent request, or none of its bytes taken. 1 when so. */
static int retry_fresh(tether__client *c, tether__upconn *u, int nothing_sent) {
  if (!u->reused || u->got_bytes || u->pool == NULL || !c->replay_ok || c->resp_started || c->sent_interim ||
      c->w->stopping || (!c->idempotent && !nothing_sent))
    return 0;
  tether__pool *p = u->pool;
  const tether__upstream_rt *ur = &c->rt->ups[c->ups];
  tether__log(TETHER_LOG_INFO, "upstream %s: %s closed a kept-alive connection; the request goes on a new one",
              u->srv->upstream, u->srv->name);
  tether__up_close(u);
  connect_server(c, p, &ur->cf->servers[c->srv]);
  return 1;
}

/* Sends what the request has so far (the replay buffer holds every byte sent) and then streams the rest. */
static void send_request(tether__upconn *u) {
  tether__client *c = u->c;
  u->state = TETHER__US_SENDING;
  if (tether__to_server(u, c->rq->replay.data, c->rq->replay.len) < 0) {
    if (!retry_fresh(c, u, 1)) tether__exchange_failed(c, 502, 1);
    return;
  }
  arm_exchange(u, c->rt->cf);
  tether__io_read_start(&u->io);
  c->proto->send_body(c);
}

/* An https server: the request goes once the handshake is over. A failed handshake (the certificate's check, an
 * alert, a server that does not speak TLS) fails the connection like a refused connect: another server, passive
 * health counts it, and the client gets a 502 when none is left. */
static void on_handshake(tether__io *io, int status, const char *why) {
  tether__upconn *u = io->owner;
  if (u->closing) return;
  tether__client *c = u->c;
  if (c == NULL) {
    tether__up_close(u);
    return;
  }
  if (status < 0) {
    tether__log(TETHER_LOG_ERROR, "upstream %s: TLS handshake with %s failed: %s", u->srv->upstream, u->srv->name, why);
    tether__exchange_failed(c, 502, 1);
    return;
  }
  send_request(u);
}

static void start_tls(tether__upconn *u, tether__client *c) {
  arm_server(u, c->rt->cf->proxy_connect_timeout_ms); /* the handshake gets its own, as in nginx */
  void *ssl = tether__tls_client_new(u->tls_ctx, c->srv);
  if (ssl == NULL || tether__tls_connect(&u->io, ssl, on_handshake) < 0 || tether__io_read_start(&u->io) < 0) {
    tether__log(TETHER_LOG_ERROR, "upstream %s: cannot start TLS with %s", u->srv->upstream, u->srv->name);
    tether__exchange_failed(c, 502, 1);
  }
}

static void on_connect(uv_connect_t *req, int status) {
  tether__upconn *u = req->data;
  if (u->closing) return;
  tether__client *c = u->c;
  if (c == NULL) {
    tether__up_close(u);
    return;
  }
  if (status < 0) {
    tether__exchange_failed(c, status == UV_ETIMEDOUT ? 504 : 502, 1);
    return;
  }
  tether__io_nodelay(&u->io);
  if (u->tls_ctx)
    start_tls(u, c);
  else
    send_request(u);
}

static void connect_server(tether__client *c, tether__pool *p, const tether__cf_server *cs) {
  tether__worker *w = c->w;
  tether__upconn *u = tether__calloc(1, sizeof(*u));
  u->w = w;
  u->srv = c->rt->ups[c->ups].servers[c->srv];
  u->c = c;
  c->up = u;
  tether__io_init(&u->io, &w->loop, u, w->rbuf, sizeof(w->rbuf), on_server_read, on_server_written);
  uv_timer_init(&w->loop, &u->timer);
  u->io.tcp.data = u;
  u->timer.data = u;
  u->on_timer = server_timeout;
  u->connect_req.data = u;
  u->state = TETHER__US_CONNECTING;
  u->tls_ctx = c->rt->ups[c->ups].cf->tls_ctx;
  tether__pool_adopt(p, u);
  if (tether__io_connect(&u->io, &u->connect_req, (const struct sockaddr *)&cs->addr.sa, on_connect) < 0) {
    tether__exchange_failed(c, 502, 1);
    return;
  }
  arm_server(u, c->rt->cf->proxy_connect_timeout_ms);
}

/* The server for this try: persistence's on the first, then the policy's order or the balancer's pick;
 * -1 when none is left, -2 when `strict` refuses to move a bound client. */
static int pick_server(tether__client *c, int64_t now) {
  tether__worker *w = c->w;
  tether__upstream_rt *ur = &c->rt->ups[c->ups];
  if (c->tries == 0) return tether__persist_pick(ur, &c->rq->pr, &w->bs[c->ups], w->id, now);
  int tries_max = c->rt->cf->proxy_next_upstream_tries;
  if (tries_max == 0) tries_max = (int)ur->cf->nservers;
  /* a retry of a request begun before a reload: w->bs is sized for the new configuration's upstreams and
   * servers, so balance this one pick on a scratch state of the request's own configuration */
  int scratch[TETHER__CF_MAX_SERVERS + 1] = {0};
  tether__balance_state own = {.current = scratch, .rng = (uint64_t)now * 0x9e3779b97f4a7c15ull | 1};
  tether__balance_state *bs = c->rt == w->rt ? &w->bs[c->ups] : &own;
  int idx = -1;
  if (c->tries < tries_max) {
    /* a request begun before a reload keeps to its own configuration's servers */
    if (c->rt == w->rt) idx = tether__persist_retry(ur, &c->rq->pr, c->rq->tried, w->id, c->tries == 1, now);
    if (idx < 0) idx = tether__balance_pick(ur, bs, c->rq->tried, now);
  }
  c->rq->pr.set_cookie = 1; /* the binding moves with the retry */
  c->rq->pr.first_seen = 0;
  return idx;
}

void tether__dispatch(tether__client *c) {
  tether__upstream_rt *ur = &c->rt->ups[c->ups];
  int idx = pick_server(c, tether_now_ms());
  if (idx < 0) {
    c->keep_alive = 0;
    if (idx == -2) /* sticky cookie ... strict: the bound server is gone and the client must not move */
      tether__respond(c, 503, "the server this session is bound to is unavailable", 0);
    else
      tether__respond(c, c->tries ? 502 : 503, c->tries ? NULL : "no server is available", 0);
    return;
  }
  c->srv = idx;
  c->server_name = ur->servers[idx]->name;
  c->rq->tried[idx] = 1;
  c->tries++;
  tether__server_state *srv = ur->servers[idx];
  atomic_fetch_add_explicit(&srv->active, 1, memory_order_relaxed);
  tether__pool *p = tether__pool_of(c->w, ur, idx);
  tether__upconn *u = tether__pool_take(p, ur->cf->tls_ctx);
  if (u == NULL) {
    connect_server(c, p, &ur->cf->servers[idx]);
    return;
  }
  u->c = c;
  c->up = u;
  u->reused = 1;
  u->got_bytes = 0;
  u->head_done = 0;
  send_request(u);
}

void tether__exchange_failed(tether__client *c, int status, int count_failure) {
  tether__upconn *u = c->up;
  if (u && retry_fresh(c, u, 0)) return;
  tether__upstream_rt *ur = &c->rt->ups[c->ups];
  tether__server_state *srv = ur->servers[c->srv];
  tether__wcounters *wc = &srv->per_worker[c->w->id];
  if (count_failure) {
    server_failure(c);
    atomic_fetch_add_explicit(&wc->connect_errors, 1, memory_order_relaxed);
  }
  atomic_fetch_sub_explicit(&srv->active, 1, memory_order_relaxed);
  c->srv = -1;
  int was_connecting = u && u->state == TETHER__US_CONNECTING;
  int got = u && u->got_bytes;
  if (u) tether__up_close(u);
  int replayable = c->replay_ok && !c->resp_started && !c->sent_interim && !got && (was_connecting || c->idempotent);
  if (replayable && !c->w->stopping) {
    atomic_fetch_add_explicit(&wc->retries, 1, memory_order_relaxed);
    tether__dispatch(c);
    return;
  }
  atomic_fetch_add_explicit(&wc->requests[TETHER__CLASS_ERR], 1, memory_order_relaxed);
  if (c->resp_started) {
    c->proto->abort(c);
    return;
  }
  c->keep_alive = 0;
  tether__respond(c, status, NULL, 0);
}

/* ---- the response ---- */

static void response_done(tether__client *c, tether__upconn *u) {
  tether__upstream_rt *ur = &c->rt->ups[c->ups];
  tether__server_state *srv = ur->servers[c->srv];
  tether__wcounters *wc = &srv->per_worker[c->w->id];
  atomic_fetch_sub_explicit(&srv->active, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&wc->requests[class_of(c->status)], 1, memory_order_relaxed);
  tether__latency_count(wc->latency, &wc->latency_sum_us, tether__mono_us() - c->start_us);
  tether__server_succeeded(srv);
  c->srv = -1;
  c->resp_done = 1;
  if (u->resp_keep_alive && !u->write_failed && c->req_done && u->io.pending == 0) {
    tether__up_release(u, ur->cf);
  } else {
    if (!c->req_done) c->keep_alive = 0; /* the rest of the body cannot be skipped safely */
    tether__up_close(u);
  }
  tether__request_finish(c);
}

/* session_monitor: what the response did to the application's session, counted for the server. */
static void monitor_session(tether__client *c, const tether__h1_msg *m) {
  if (!c->rq->mon.on) return;
  const tether__upstream_rt *ur = &c->rt->ups[c->ups];
  tether__wcounters *wc = &ur->servers[c->srv]->per_worker[c->w->id];
  if (c->rq->mon.presented) atomic_fetch_add_explicit(&wc->sessions[TETHER__SESS_PRESENTED], 1, memory_order_relaxed);
  int ev = tether__monitor_response(&ur->cf->monitor, &c->rq->mon, m, tether_now_ms());
  if (ev != TETHER__SESS_KEPT) atomic_fetch_add_explicit(&wc->sessions[ev], 1, memory_order_relaxed);
}

static int forward_head(tether__client *c, const tether__h1_msg *m, const char *body, size_t blen) {
  tether__buf *b = &c->w->scratch_out;
  b->len = 0;
  tether__rewrite_response(c, m, b);
  size_t head_len = b->len;
  tether__put(b, body, blen); /* the head and the body bytes that came with it leave in one write */
  return tether__head_to_client(c, m, b->data, head_len, b->len);
}

/* A whole response head is (maybe) in u->in: forward it. Returns 1 to go on with the body, 0 to wait for
 * more bytes, -1 when the exchange is over (answered, tunnelled or broken). */
static int response_head(tether__client *c, tether__upconn *u) {
  tether__h1_msg *m = &c->w->msg;
  const tether__config *cf = c->rt->cf;
  tether__h1_limits lim = {.max_head = cf->client_header_buffer * 2, .max_uri = 1 << 20, .max_headers = 100};
  int n = tether__h1_parse_response(u->in, u->in_len, &lim, c->is_head, m);
  if (n == 0) return 0;
  if (n < 0 || (m->status == 101 && !c->upgrade)) {
    tether__log(TETHER_LOG_WARN, "upstream %s: invalid response head from %s", u->srv->upstream, u->srv->name);
    response_broke(c, u, 502);
    return -1;
  }
  if (m->status < 200 && m->status != 101) { /* 100 Continue and friends: forward, then the real one */
    /* never to an HTTP/1.0 client, which does not know them (RFC 9110, 15.2) */
    int rc = c->version_minor > 0 ? forward_head(c, m, NULL, 0) : 0;
    tether__consume(u->in, &u->in_len, (size_t)n);
    if (rc < 0) c->proto->abort(c);
    return rc < 0 ? -1 : 1;
  }
  c->status = m->status;
  if (m->status != 101) monitor_session(c, m);
  u->resp_keep_alive = m->keep_alive;
  tether__h1_body_init(&u->body, m);
  u->head_done = 1;
  int64_t k = m->status == 101 ? 0 : tether__h1_body_feed(&u->body, u->in + n, u->in_len - (size_t)n);
  if (k < 0) {
    response_broke(c, u, 502);
    return -1;
  }
  if (forward_head(c, m, u->in + n, (size_t)k) < 0) {
    c->proto->abort(c);
    return -1;
  }
  tether__consume(u->in, &u->in_len, (size_t)n + (size_t)k);
  if (m->status == 101) {
    tether__tunnel_start(c, u);
    return -1;
  }
  return 1;
}

/* Body bytes in u->in: forward them. Returns 1 when the response is complete, 0 to wait, -1 when over. */
static int response_body(tether__client *c, tether__upconn *u) {
  if (u->body.done) return 1;
  if (u->in_len == 0) return 0;
  int64_t k = tether__h1_body_feed(&u->body, u->in, u->in_len);
  if (k < 0) {
    response_broke(c, u, 502);
    return -1;
  }
  if (k > 0 && tether__to_client(c, u->in, (size_t)k) < 0) {
    c->proto->abort(c);
    return -1;
  }
  tether__consume(u->in, &u->in_len, (size_t)k);
  if (u->body.done) return 1;
  if (c->io.pending > TETHER__MAX_PENDING) tether__io_pause(&u->io);
  return 0;
}

/* Parses and forwards what the server sent. */
static void relay(tether__upconn *u) {
  tether__client *c = u->c;
  while (!u->closing && c && !c->closing) {
    int rc = u->head_done ? response_body(c, u) : response_head(c, u);
    if (rc < 0) return;
    if (rc == 0 && !u->head_done) return;
    if (u->head_done && u->body.done) {
      response_done(c, u);
      return;
    }
    if (rc == 0) return;
  }
}

/* The server closed or failed while an exchange was on. */
static void server_closed(tether__upconn *u, ssize_t err) {
  tether__client *c = u->c;
  if (u->head_done && u->body.framing == TETHER__H1_UNTIL_CLOSE && err == UV_EOF) {
    u->body.done = 1;
    u->resp_keep_alive = 0;
    c->keep_alive = 0;
    response_done(c, u);
  } else if (!u->got_bytes) {
    /* a pooled connection the server had already closed, or a reset before any answer */
    tether__exchange_failed(c, 502, !u->reused);
  } else {
    tether__log(TETHER_LOG_INFO, "upstream %s: %s closed mid-response: %s", u->srv->upstream, u->srv->name,
                uv_strerror((int)err));
    response_broke(c, u, 502);
  }
}

static void on_server_read(tether__io *io, ssize_t nread, const char *data) {
  tether__upconn *u = io->owner;
  if (u->closing) return;
  tether__client *c = u->c;
  if (u->state == TETHER__US_IDLE || c == NULL) { /* an idle connection: the server closed it, or sent junk */
    tether__up_close(u);
    return;
  }
  if (u->state == TETHER__US_TUNNEL) {
    if (nread < 0)
      tether__tunnel_server_closed(u);
    else
      tether__tunnel_from_server(u, data, (size_t)nread);
    return;
  }
  if (nread < 0) {
    server_closed(u, nread);
    return;
  }
  u->got_bytes = 1;
  tether__append_in(&u->in, &u->in_len, &u->in_cap, data, (size_t)nread);
  arm_server(u, c->rt->cf->proxy_read_timeout_ms);
  relay(u);
}
