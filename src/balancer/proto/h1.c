/* The HTTP/1.1 side of a client connection: bytes in, requests out, one at a time (pipelined requests wait
 * in the buffer), with the connection's timers: the head (slowloris), the body (client_body_timeout and
 * client_body_time), keep-alive, and nginx's lingering close. One close path per connection. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../answer.h"
#include "../conn.h"
#include "../io/deadline.h"
#include "../io/listen.h"
#include "../io/tls.h"
#include "../proxyproto.h"
#include "../request/finish.h"
#include "../request/realip.h"
#include "../request/request.h"
#include "../request/route.h"
#include "../upstream/exchange.h"
#include "../upstream/pool.h"
#include "../upstream/tunnel.h"
#include "../worker.h"
#include "h2.h"

#define LINGER_TIMEOUT_MS 5000 /* nginx's lingering_timeout: silence that ends a lingering close */
#define LINGER_TIME_MS 30000   /* nginx's lingering_time: the longest one */
#define FREE_REQS_MAX 128      /* request states a worker keeps for reuse (more are freed after a burst) */
#define REPLAY_KEEP 4096       /* the replay buffer capacity a reused request state keeps */

static void client_close(tether__client *c);
static void start_request(tether__client *c);
static void client_timeout(uv_timer_t *t);
static void forward_body(tether__client *c);
static void client_request(tether__client *c, const tether__h1_msg *m, int status);

/* ---- the request state, only while a request is in progress ---- */

/* The connection's request state: its own, or one from the worker's free list (a request on a kept-alive
 * connection costs no allocation), or a new one. Zeroed, except the replay buffer's capacity. */
static tether__req *req_take(tether__client *c) {
  if (c->rq) return c->rq;
  tether__worker *w = c->w;
  tether__req *r = w->free_reqs;
  if (r == NULL) {
    r = tether__calloc(1, sizeof(*r));
  } else {
    w->free_reqs = r->next_free;
    w->nfree_reqs--;
    tether__buf replay = r->replay;
    memset(r, 0, sizeof(*r));
    r->replay = replay;
  }
  c->rq = r;
  return r;
}

/* The connection goes idle (or is freed): its request state goes back to the worker. */
static void req_release(tether__client *c) {
  tether__req *r = c->rq;
  if (r == NULL) return;
  c->rq = NULL;
  tether__worker *w = c->w;
  if (w->nfree_reqs >= FREE_REQS_MAX) {
    tether__buf_free(&r->replay);
    free(r);
    return;
  }
  if (r->replay.cap > REPLAY_KEEP) tether__buf_free(&r->replay);
  r->replay.len = 0;
  r->next_free = w->free_reqs;
  w->free_reqs = r;
  w->nfree_reqs++;
}

void tether__worker_free_reqs(tether__worker *w) {
  while (w->free_reqs) {
    tether__req *r = w->free_reqs;
    w->free_reqs = r->next_free;
    tether__buf_free(&r->replay);
    free(r);
  }
  w->nfree_reqs = 0;
}

/* ---- timers ---- */

static void arm_client(tether__client *c, int64_t ms) {
  if (!c->closing) tether__deadline_set(&c->timer, &c->due, client_timeout, ms);
}

static void disarm_client(tether__client *c) { tether__deadline_clear(&c->due); }

/* A body must keep coming (client_body_timeout between reads, as nginx) and must arrive whole within
 * client_body_time: trickling a byte now and then cannot hold a connection and a server forever. */
static void arm_body_timer(tether__client *c) {
  int64_t ms = c->rt->cf->client_body_timeout_ms;
  if (c->rq->body_deadline_ms) {
    int64_t left = c->rq->body_deadline_ms - tether_now_ms();
    if (left < ms) ms = left;
  }
  arm_client(c, ms);
}

static void client_timeout(uv_timer_t *t) {
  tether__client *c = t->data;
  if (!tether__deadline_due(t, &c->due, client_timeout)) return;
  if (c->state == TETHER__CS_LINGER || (c->state == TETHER__CS_HEAD && c->in_len == 0 && !c->active)) {
    client_close(c); /* the end of a lingering close, or an idle keep-alive connection */
  } else if (c->state == TETHER__CS_HEAD && !c->active) {
    c->keep_alive = 0;                /* a head not complete in time (slowloris): 408, then close */
    c->is_head = 0;                   /* of the previous request */
    tether__respond(c, 408, NULL, 0); /* no request is in progress: finishing will not close it */
    if (!c->closing && c->io.pending == 0) client_close(c);
  } else if (!c->resp_started) {
    c->keep_alive = 0;
    if (c->up) tether__up_close(c->up);
    tether__respond(c, c->state == TETHER__CS_HEAD || c->state == TETHER__CS_BODY ? 408 : 504, NULL, 0);
  } else {
    client_close(c);
  }
}

/* ---- reading and backpressure ---- */

static void client_pause(tether__client *c) { tether__io_pause(&c->io); }

static void client_resume(tether__client *c) {
  if (!c->io.paused || c->closing) return;
  tether__io_resume(&c->io);
  if (c->state == TETHER__CS_BODY && c->active) arm_body_timer(c);
}

/* The server is slow to take the body: not the client's time. */
static void client_hold(tether__client *c) {
  client_pause(c);
  disarm_client(c);
}

/* Closing after an answer while the client may still be sending (a body we did not read, a refused
 * request): as nginx's lingering close, our side is shut down once the answer is written, and what the
 * client still sends is read and dropped until it closes, stays silent LINGER_TIMEOUT_MS, or
 * LINGER_TIME_MS pass, so that unread bytes do not turn the close into a reset that destroys the answer. */
static void client_end(tether__client *c) {
  if (c->closing || c->state == TETHER__CS_LINGER) return;
  if (c->req_done || c->state == TETHER__CS_TUNNEL) {
    client_close(c);
    return;
  }
  c->state = TETHER__CS_LINGER;
  c->in_len = 0;
  tether__req *r = req_take(c); /* after a 408 between requests, there was none */
  if (tether__io_shutdown(&c->io, &r->shut) < 0) {
    client_close(c);
    return;
  }
  r->linger_until_ms = tether_now_ms() + LINGER_TIME_MS;
  client_resume(c);
  arm_client(c, LINGER_TIMEOUT_MS);
}

static void on_client_written(tether__io *io, int status) {
  tether__client *c = io->owner;
  if (c->closing) return;
  if (status < 0) {
    client_close(c);
    return;
  }
  if (c->up && c->up->io.paused && c->io.pending < TETHER__MAX_PENDING / 2) tether__io_resume(&c->up->io);
  if (c->io.pending == 0 && c->resp_done && !c->keep_alive) client_end(c);
}

/* ---- the request's end, and the next one ---- */

/* Keep-alive: serve a pipelined request already buffered, or wait for the next one. */
static void client_next(tether__client *c) {
  client_resume(c);
  if (c->in_len > 0) {
    arm_client(c, c->w->rt->cf->client_header_timeout_ms);
    start_request(c);
    return;
  }
  free(c->in); /* an idle connection keeps no buffer and no request state */
  c->in = NULL;
  c->in_cap = 0;
  req_release(c);
  tether__buf_free(&c->added);
  arm_client(c, c->w->rt->cf->keepalive_timeout_ms);
}

static void request_finished(tether__client *c) {
  c->state = TETHER__CS_HEAD;
  if (!c->keep_alive || c->w->stopping) {
    c->keep_alive = 0;
    c->in_len = 0;
    if (c->io.pending == 0) client_end(c);
    return; /* else the write callback ends it once the answer is written */
  }
  client_next(c);
}

static const tether__proto_ops h1_ops = {.finished = request_finished,
                                         .abort = client_close,
                                         .resume = client_resume,
                                         .send_body = forward_body,
                                         .request = client_request};

/* ---- the request body ---- */

/* The whole body is in: from now on the server's timeouts apply, not the client's. */
static void body_received(tether__client *c) {
  c->state = TETHER__CS_WAIT;
  disarm_client(c);
}

/* A body that breaks its framing or its limit: 400 or 413 while nothing was answered, else a cut. */
static void body_refused(tether__client *c, tether__upconn *u, int status) {
  c->keep_alive = 0;
  tether__up_close(u);
  if (!c->resp_started)
    tether__respond(c, status, NULL, 0);
  else
    client_close(c);
}

/* Moves request body bytes from the client buffer to the server. */
static void forward_body(tether__client *c) {
  tether__upconn *u = c->up;
  if (u == NULL || u->state == TETHER__US_CONNECTING || c->req_done) {
    if (c->req_done && c->state == TETHER__CS_BODY) body_received(c);
    return;
  }
  if (c->in_len == 0) return;
  tether__req *r = c->rq;
  int64_t k = tether__h1_body_feed(&r->reqbody, c->in, c->in_len);
  uint64_t limit = c->rt->cf->client_max_body_size;
  if (k < 0 || (limit && r->reqbody.total > limit)) {
    body_refused(c, u, k < 0 ? 400 : 413);
    return;
  }
  if (k > 0) {
    if (c->replay_ok) {
      if (r->replay.len + (size_t)k <= TETHER__REPLAY_MAX)
        tether__buf_append(&r->replay, c->in, (size_t)k);
      else
        c->replay_ok = 0;
    }
    if (tether__to_server(u, c->in, (size_t)k) < 0) {
      tether__exchange_failed(c, 502, 1);
      return;
    }
    tether__exchange_sending(u);
    tether__consume(c->in, &c->in_len, (size_t)k);
  }
  if (r->reqbody.done) {
    c->req_done = 1;
    body_received(c);
  } else if (u->io.pending > TETHER__MAX_PENDING) {
    client_hold(c);
  }
}

/* ---- the request head ---- */

/* The connection's client, its address and its text (an IPv4 or IPv6 address, anything else as none). */
static void set_src(tether__client *c, const struct sockaddr_storage *ss) {
  memset(&c->src, 0, sizeof(c->src));
  snprintf(c->ip, sizeof(c->ip), "?");
  if (ss->ss_family == AF_INET) {
    memcpy(&c->src.in, ss, sizeof(c->src.in));
    inet_ntop(AF_INET, &c->src.in.sin_addr, c->ip, sizeof(c->ip));
  } else if (ss->ss_family == AF_INET6) {
    memcpy(&c->src.in6, ss, sizeof(c->src.in6));
    inet_ntop(AF_INET6, &c->src.in6.sin6_addr, c->ip, sizeof(c->ip));
  }
}

/* A request begins: it holds the configuration it started with, and counters start. */
static void request_open(tether__client *c) {
  tether__worker *w = c->w;
  tether__req *r = req_take(c);
  c->served++;
  if (c->served >= w->rt->cf->keepalive_requests) c->keep_alive = 0; /* nginx's keepalive_requests */
  c->active = 1;
  c->rt = w->rt;
  tether__runtime_ref(c->rt);
  c->start_us = tether__mono_us();
  c->resp_started = c->resp_done = c->sent_interim = 0;
  c->req_done = 0;
  c->status = 0;
  c->bytes_sent = 0;
  c->tries = 0;
  c->added_ready = 0;
  c->srv = -1;
  memset(r->tried, 0, sizeof(r->tried));
  r->method[0] = r->target[0] = '\0';
  memcpy(r->peer, c->ip, sizeof(c->ip));
}

/* A PROXY protocol header from a trusted proxy (the client is the address it names). Returns 1 to go on
 * with the request bytes, 0 when more bytes are needed or the connection was answered. */
static int proxy_header(tether__client *c) {
  struct sockaddr_storage src;
  int pp = tether__proxyproto_parse(c->in, c->in_len, &src);
  if (pp == 0) return 0;
  c->served = 1;
  if (pp < 0) {
    c->in_len = 0;
    c->keep_alive = 0;
    request_open(c);
    c->served = 1;
    snprintf(c->rq->method, sizeof(c->rq->method), "-");
    tether__respond(c, 400, "invalid PROXY protocol header", 0);
    return 0;
  }
  if (src.ss_family != AF_UNSPEC) set_src(c, &src);
  tether__consume(c->in, &c->in_len, (size_t)pp);
  return c->in_len > 0;
}

/* A request head, parsed: hands it to the request layer, then streams its body. head_len: its bytes at the start
 * of c->in (0 when the protocol made it apart: an HTTP/2 stream's); status: the head was refused with it. */
static void request_head(tether__client *c, const tether__h1_msg *m, int head_len, int status) {
  tether__worker *w = c->w;
  tether__config *cf = w->rt->cf;
  request_open(c);
  atomic_fetch_add_explicit(&w->requests, 1, memory_order_relaxed);
  if (c->conn) atomic_fetch_add_explicit(&w->requests_h2, 1, memory_order_relaxed);
  if (status) {
    c->keep_alive = 0;
    c->in_len = 0;
    snprintf(c->rq->method, sizeof(c->rq->method), "-");
    tether__respond(c, status, NULL, 0);
    return;
  }
  if (!tether__request_begin(c, m, head_len)) return;
  tether__h1_body_init(&c->rq->reqbody, m);
  tether__consume(c->in, &c->in_len, (size_t)head_len);
  c->state = TETHER__CS_BODY;
  c->req_done = c->rq->reqbody.done;
  c->rq->body_deadline_ms = cf->client_body_time_ms > 0 ? tether_now_ms() + cf->client_body_time_ms : 0;
  if (c->req_done)
    disarm_client(c);
  else
    arm_body_timer(c); /* from the head on, not from the first body byte */
  tether__dispatch(c);
}

static void client_request(tether__client *c, const tether__h1_msg *m, int status) {
  c->starting = 1; /* an answer given at once does not start another request from c->in */
  request_head(c, m, 0, status);
  c->starting = 0;
  if (c->restart && !c->closing) start_request(c);
}

/* A complete head is in c->in: parse it and hand it to the request layer. */
static void start_request_once(tether__client *c) {
  tether__worker *w = c->w;
  tether__h1_msg *m = &w->msg;
  tether__config *cf = w->rt->cf;
  if (c->served == 0 && cf->real_ip_proxy_protocol && tether__trusted_peer(cf, &c->addr.sa) && !proxy_header(c)) return;
  if (!c->proto_chosen && c->conn == NULL) {
    int h2 = tether__h2_detect(c);
    if (h2 < 0) return;
    c->proto_chosen = 1;
    if (h2) {
      tether__h2_start(c);
      return;
    }
  }
  tether__h1_limits lim = tether__request_limits(cf);
  int n = tether__h1_parse_request(c->in, c->in_len, &lim, m);
  if (n != 0) request_head(c, m, n > 0 ? n : 0, n < 0 ? -n : 0);
}

/* Requests answered at once (a return location, a 404, an error) would recurse through the request's end
 * and client_next for each pipelined request after them, and overflow the stack: nested calls only ask
 * the outer one to go on. */
static void start_request(tether__client *c) {
  if (c->starting) {
    c->restart = 1;
    return;
  }
  c->starting = 1;
  do {
    c->restart = 0;
    start_request_once(c);
  } while (c->restart && !c->closing);
  c->starting = 0;
}

/* ---- reading ---- */

static void client_read_error(tether__client *c, ssize_t nread) {
  if (nread == UV_EOF && c->active && c->req_done && c->state != TETHER__CS_TUNNEL) {
    /* a half-close after a complete request: answer it, then close */
    c->keep_alive = 0;
    client_pause(c);
    return;
  }
  if (c->state == TETHER__CS_TUNNEL && c->up) tether__up_close(c->up);
  client_close(c);
}

static void on_client_read(tether__io *io, ssize_t nread, const char *data) {
  tether__client *c = io->owner;
  if (c->closing) return;
  if (c->state == TETHER__CS_LINGER) { /* dropped; the end of it closes */
    if (nread < 0 || tether_now_ms() >= c->rq->linger_until_ms)
      client_close(c);
    else
      arm_client(c, LINGER_TIMEOUT_MS);
  } else if (nread < 0) {
    client_read_error(c, nread);
  } else if (c->state == TETHER__CS_TUNNEL) {
    tether__tunnel_from_client(c, data, (size_t)nread);
  } else {
    tether__append_in(&c->in, &c->in_len, &c->in_cap, data, (size_t)nread);
    if (c->state == TETHER__CS_HEAD) {
      /* an HTTP/2 stream's head comes whole (its connection times the frames): no head timer */
      if (!c->active && c->in_len == (size_t)nread && c->conn == NULL)
        arm_client(c, c->w->rt->cf->client_header_timeout_ms);
      start_request(c);
    } else if (c->state == TETHER__CS_BODY) {
      arm_body_timer(c);
      forward_body(c);
    } else if (c->in_len > c->rt->cf->client_header_buffer) {
      client_pause(c); /* TETHER__CS_WAIT: a pipelined request; keep it buffered, bounded */
    }
  }
}

/* ---- opening and closing ---- */

/* The connection and its timer close apart; whichever closes last frees. */
static void client_free(uv_handle_t *h) {
  tether__client *c = h->data;
  if (uv_is_closing((uv_handle_t *)&c->timer) && c->timer.data == NULL) {
    free(c->in);
    req_release(c);
    tether__buf_free(&c->added);
    free(c);
  } else {
    c->io.tcp.data = NULL; /* the timer's callback frees */
  }
}

static void client_timer_closed(uv_handle_t *h) {
  tether__client *c = h->data;
  c->timer.data = NULL;
  if (c->io.tcp.data == NULL) {
    free(c->in);
    req_release(c);
    tether__buf_free(&c->added);
    free(c);
  }
}

static void client_close(tether__client *c) {
  if (c->closing) return;
  c->closing = 1;
  tether__worker *w = c->w;
  if (c->up) {
    tether__upconn *u = c->up;
    c->up = NULL;
    u->c = NULL;
    tether__up_close(u);
  }
  if (c->active) tether__request_finish(c);
  if (c->h2) tether__h2_closed(c);
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, client_timer_closed);
  tether__io_close(&c->io, client_free);
  if (c->conn) return; /* a stream: not a connection of the worker's */
  if (c->prev)
    c->prev->next = c->next;
  else
    w->clients = c->next;
  if (c->next) c->next->prev = c->prev;
  atomic_fetch_sub_explicit(&w->active_connections, 1, memory_order_relaxed);
  tether__listen_fd_freed(w);
}

/* SNI during the handshake: the server the name selects on this address, in the configuration current then
 * (the connection keeps the context it switches to, across reloads). */
static void *pick_tls(void *owner, const char *name) {
  tether__client *c = owner;
  const tether__config *cf = c->w->rt->cf;
  return cf->vservers[tether__vserver_select(cf, c->listener, name, strlen(name))].tls_ctx;
}

void tether__client_accept(tether__worker *w, int fd, int listener) {
  tether__client *c = tether__calloc(1, sizeof(*c));
  c->w = w;
  c->proto = &h1_ops;
  tether__io_init(&c->io, &w->loop, c, w->rbuf, sizeof(w->rbuf), on_client_read, on_client_written);
  uv_timer_init(&w->loop, &c->timer);
  c->io.tcp.data = c;
  c->timer.data = c;
  c->next = w->clients;
  if (w->clients) w->clients->prev = c;
  w->clients = c;
  c->keep_alive = 1;
  c->srv = -1;
  atomic_fetch_add_explicit(&w->active_connections, 1, memory_order_relaxed);
  struct sockaddr_storage peer;
  if (tether__io_open(&c->io, fd, &peer) < 0) {
    close(fd);
    client_close(c);
    return;
  }
  const tether__config *cf = w->rt->cf;
  c->listener = listener;
  if ((size_t)listener < cf->nlisten && cf->listen_ssl[listener]) {
    void *ctx = cf->vservers[cf->listen_default[listener]].tls_ctx; /* SNI may choose another (pick_tls) */
    if (ctx == NULL || tether__tls_accept(&c->io, ctx) < 0) {
      client_close(c);
      return;
    }
    tether__tls_on_sni(&c->io, pick_tls, c);
  }
  set_src(c, &peer);
  c->addr = c->src;
  atomic_fetch_add_explicit(&w->accepted, 1, memory_order_relaxed);
  arm_client(c, w->rt->cf->client_header_timeout_ms);
  tether__io_read_start(&c->io);
}

void tether__worker_close_idle(tether__worker *w) {
  tether__client *c = w->clients;
  while (c) {
    tether__client *next = c->next;
    if (c->h2)
      tether__h2_goaway(c); /* the streams in progress finish; the session ends after them */
    else if (!c->active && c->io.pending == 0)
      client_close(c);
    else
      c->keep_alive = 0;
    c = next;
  }
  tether__worker_drop_pools(w);
}

void tether__worker_h2_goaway(tether__worker *w) {
  for (tether__client *c = w->clients; c; c = c->next)
    if (c->h2) tether__h2_goaway(c);
}

void tether__worker_close_all(tether__worker *w) {
  while (w->clients) client_close(w->clients);
  tether__worker_drop_pools(w);
}
