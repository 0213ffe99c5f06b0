/* tether-app: the worker threads (a libuv loop each, driving a libmicrohttpd daemon on its epoll set, all
 * accepting from one listening socket) and the routing of each request. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "app.h"
#include "xalloc.h"

/* Each connection's libmicrohttpd memory pool: the request head, a copy of its Cookie header, a 64-byte
 * record per header, cookie and query argument, then the answer's head. libmicrohttpd 0.9.75 zeroes the
 * whole pool after every request (and half of it again when it answers), so its size is paid per request:
 * 12 KiB holds a browser's largest cookie (4,096 bytes) beside the session cookie and a browser's usual
 * headers. */
#define CONNECTION_MEMORY 12288
/* What an answer's head needs of the pool (status line, Date, Content-Type, X-Served-By, Cache-Control,
 * Set-Cookie, Location, Content-Length, Connection): a head that would leave less gets a 431 first. */
#define ANSWER_ROOM 512

static const char *route_names[R_COUNT] = {"/",       "/whoami",  "/login",  "/logout", "/cart",
                                           "/health", "/metrics", "/api/me", "other"};

static void run_daemon(worker *w);

static void on_kick(uv_idle_t *h) {
  uv_idle_stop(h);
  run_daemon(h->data);
}

/* The immediate peer's address as text ("" when unknown). */
static void peer_ip(struct MHD_Connection *conn, char *out, size_t cap) {
  out[0] = '\0';
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  const struct sockaddr *sa = ci ? ci->client_addr : NULL;
  if (sa && sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
  else if (sa && sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)cap);
}

static int peer_is_loopback(struct MHD_Connection *conn) {
  char ip[64];
  peer_ip(conn, ip, sizeof(ip));
  tether_trusted_proxies lo = {0};
  tether_trusted_proxies_add(&lo, "127.0.0.0/8");
  tether_trusted_proxies_add(&lo, "::1");
  return tether_trusted_proxies_contains(&lo, ip);
}

/* Whether the request head leaves the answer too little of the connection's memory: then libmicrohttpd
 * would close the connection without an answer, so a 431 is sent while it still fits. */
static int head_too_large(struct MHD_Connection *conn) {
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
  if (ci == NULL) return 0;
  const char *cookie = NULL;
  size_t cookie_len = 0;
  MHD_lookup_connection_value_n(conn, MHD_HEADER_KIND, "Cookie", 6, &cookie, &cookie_len);
  int n = MHD_get_connection_values(conn, MHD_HEADER_KIND | MHD_COOKIE_KIND | MHD_GET_ARGUMENT_KIND, NULL, NULL);
  /* 256: the pool's rounding and the request line's share, measured */
  size_t used = 256 + ci->header_size + (cookie ? cookie_len + 1 : 0) + 64 * (size_t)(n > 0 ? n : 0);
  return used + ANSWER_ROOM + strlen(the_app.name) > CONNECTION_MEMORY;
}

static int route_of(const char *url) {
  static const int routes[] = {R_INDEX, R_WHOAMI, R_LOGIN, R_LOGOUT, R_CART, R_HEALTH, R_METRICS, R_API_ME};
  for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
    if (strcmp(url, route_names[routes[i]]) == 0) return routes[i];
  return R_OTHER;
}

/* GET /metrics: this app's requests by route and status class, then the store's metrics. */
static enum MHD_Result metrics(struct MHD_Connection *conn) {
  char *out = NULL;
  size_t n = 0;
  FILE *f = xmemstream(&out, &n);
  fprintf(f, "# HELP tether_app_requests_total Requests answered, by route and status class.\n"
             "# TYPE tether_app_requests_total counter\n");
  static const char *classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
  for (int r = 0; r < R_COUNT; r++)
    for (int k = 0; k < 5; k++)
      fprintf(f, "tether_app_requests_total{app=\"%s\",route=\"%s\",code_class=\"%s\"} %llu\n", the_app.name,
              route_names[r], classes[k], (unsigned long long)atomic_load(&the_app.requests[r][k]));
  int need = tether_metrics_prometheus(the_app.store, NULL, 0);
  char *m = xmalloc((size_t)need + 1);
  tether_metrics_prometheus(the_app.store, m, (size_t)need + 1);
  fputs(m, f);
  free(m);
  xmemstream_close(f);
  enum MHD_Result rc = send_text(conn, R_METRICS, 200, "text/plain; version=0.0.4", out, NULL, NULL);
  free(out);
  return rc;
}

static enum MHD_Result handle(struct MHD_Connection *conn, const char *url, const char *method, request *rq) {
  int route = route_of(url);
  int is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0, is_post = strcmp(method, "POST") == 0;

  if (route == R_HEALTH) {
    const char *v = NULL;
    size_t vlen = 0;
    rq->verbose = MHD_lookup_connection_value_n(conn, MHD_GET_ARGUMENT_KIND, "verbose", 7, &v, &vlen) == MHD_YES &&
                  peer_is_loopback(conn);
    return start_job(rq, conn, route, 0, NULL);
  }
  if (route == R_METRICS) return metrics(conn);
  if (route == R_OTHER) return send_json(conn, route, 404, json_pack("{s:s}", "error", "not found"), NULL);
  if ((route == R_INDEX || route == R_WHOAMI || route == R_API_ME) && !is_get)
    return send_json(conn, route, 405, json_pack("{s:s}", "error", "use GET"), NULL);
  if ((route == R_LOGIN || route == R_LOGOUT || route == R_CART) && !is_post)
    return send_json(conn, route, 405, json_pack("{s:s}", "error", "use POST"), NULL);
  if (rq->too_large) return send_json(conn, route, 413, json_pack("{s:s}", "error", "body too large"), NULL);
  if (route == R_API_ME) return api_me(conn);

  const char *cookie = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Cookie");
  const char *ctype = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
  if (route == R_LOGIN && wants_token(conn, rq, ctype)) return token_login(conn, rq, ctype);
  int form = ctype == NULL || strncmp(ctype, "application/json", 16) != 0;
  rq->ctype = ctype;
  /* no TLS here: secure only through a trusted proxy (the peer's address is only printed when one may be) */
  const char *xfp =
      the_app.trusted.count ? MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Forwarded-Proto") : NULL;
  char ip[64] = "";
  if (xfp) peer_ip(conn, ip, sizeof(ip));
  rq->secure = tether_request_is_secure(0, ip, xfp, &the_app.trusted);
  return start_job(rq, conn, route, form, cookie);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
  (void)version;
  worker *w = cls;
  request *rq = *con_cls;
  if (rq == NULL) {
    if (head_too_large(conn)) {
      w->progress = 1;
      return send_json(conn, route_of(url), 431, json_pack("{s:s}", "error", "request header fields too large"), NULL);
    }
    rq = xcalloc(1, sizeof(*rq));
    rq->w = w;
    *con_cls = rq;
    w->in_flight++;
    return MHD_YES;
  }
  if (rq->started && !rq->ready) return MHD_YES; /* still waiting for the store */
  if (rq->ready) {
    w->progress = 1; /* an answer to write: the daemon runs again at once */
    return job_answer(rq);
  }
  if (*upload_size) {
    w->progress = 1; /* a body read in part: more may wait in the socket */
    if (rq->len + *upload_size > MAX_BODY) {
      rq->too_large = 1;
    } else {
      rq->body = xrealloc(rq->body, rq->len + *upload_size + 1);
      memcpy(rq->body + rq->len, upload, *upload_size);
      rq->len += *upload_size;
      rq->body[rq->len] = '\0';
    }
    *upload_size = 0;
    return MHD_YES;
  }
  enum MHD_Result res = handle(conn, url, method, rq);
  if (!rq->waiting) w->progress = 1; /* answered at once (else nothing to write until the store answers) */
  return res;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode t) {
  (void)conn;
  (void)t;
  worker *w = cls;
  request *rq = *con_cls;
  w->progress = 1;
  if (rq) {
    if (rq->waiting) unlink_waiting(rq);
    if (rq->pending)
      rq->orphan = 1; /* a store call still refers to it: its callback frees it */
    else
      request_free(rq);
    w->in_flight--;
  }
  *con_cls = NULL;
}

/* ---- the worker threads ---- */

static void arm_daemon_timer(worker *w);

static void run_daemon(worker *w) {
  w->progress = 0;
  MHD_run(w->d);
  arm_daemon_timer(w);
}

static void on_daemon_timer(uv_timer_t *t) { run_daemon(t->data); }

/* While a request waits for the store its connection stays on the daemon's ready list, so the daemon
 * always asks to run again at once. It does, as long as its last run gave this app something to do (an
 * answer queued, a body read in part, a request ended: the next run writes the answer, reads what came
 * meanwhile); otherwise it waits for its epoll set, a store answer (the kick) or 1 ms, whichever comes
 * first, rather than spin. */
static void arm_daemon_timer(worker *w) {
  MHD_UNSIGNED_LONG_LONG ms;
  if (MHD_get_timeout(w->d, &ms) == MHD_YES)
    uv_timer_start(&w->timer, on_daemon_timer, ms == 0 && w->n_waiting > 0 && !w->progress ? 1 : ms, 0);
  else
    uv_timer_stop(&w->timer);
}

static void on_daemon_events(uv_poll_t *p, int status, int events) {
  (void)status;
  (void)events;
  run_daemon(p->data);
}

static void worker_close_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* Stopping: no new connections (quiesced daemon, listening socket shut down), requests in flight finish
 * (up to 10 s), then the daemon stops and the loop ends. */
static void on_drain(uv_timer_t *t) {
  worker *w = t->data;
  run_daemon(w);
  if (w->in_flight > 0 && tether_now_ms() < w->drain_until_ms) return;
  uv_timer_stop(t);
  /* past the grace period, requests still waiting for the store are answered 503 (the store's late
   * answers are dropped), so that no connection is left unanswered when the daemon stops */
  while (w->waiting) {
    request *rq = w->waiting;
    unlink_waiting(rq);
    rq->waiting = 0;
    rq->abandoned = 1;
    rq->ready = 1;
    rq->err = TETHER_EUNAVAIL;
    snprintf(rq->detail, sizeof(rq->detail), "stopping: the session store did not answer within the grace period");
  }
  MHD_run(w->d);
  MHD_run(w->d);
  uv_poll_stop(&w->poll); /* the daemon closes its epoll set */
  MHD_stop_daemon(w->d);
  w->d = NULL;
  tether_astore_close(w->astore);
  uv_walk(&w->loop, worker_close_walk, NULL);
}

static void on_stop(uv_async_t *a) {
  worker *w = a->data;
  MHD_socket l = MHD_quiesce_daemon(w->d);
  /* refuse new connections at once (Linux: a listening socket shut down stops listening), so that a
   * balancer retries them elsewhere; the socket is closed after every daemon has stopped */
  if (l != MHD_INVALID_SOCKET) shutdown(l, SHUT_RDWR);
  w->drain_until_ms = tether_now_ms() + 10000;
  uv_timer_start(&w->drain, on_drain, 0, 10);
}

static void *worker_main(void *arg) {
  worker *w = arg;
  uv_run(&w->loop, UV_RUN_DEFAULT);
  uv_loop_close(&w->loop);
  return NULL;
}

int worker_start(worker *w, int listener) {
  uv_loop_init(&w->loop);
  if (tether_astore_wrap(&w->loop, the_app.store, &w->astore) < 0) return -1;
  w->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, w, MHD_OPTION_LISTEN_SOCKET,
                          listener, MHD_OPTION_NOTIFY_COMPLETED, on_completed, w, MHD_OPTION_CONNECTION_TIMEOUT,
                          (unsigned)75, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY, MHD_OPTION_END);
  if (w->d == NULL) return -1;
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(w->d, MHD_DAEMON_INFO_EPOLL_FD);
  if (info == NULL) return -1;
  uv_poll_init(&w->loop, &w->poll, info->epoll_fd);
  uv_timer_init(&w->loop, &w->timer);
  uv_timer_init(&w->loop, &w->drain);
  uv_async_init(&w->loop, &w->stop, on_stop);
  uv_idle_init(&w->loop, &w->kick);
  w->on_kick = on_kick;
  w->poll.data = w->timer.data = w->drain.data = w->stop.data = w->kick.data = w;
  uv_poll_start(&w->poll, UV_READABLE, on_daemon_events);
  arm_daemon_timer(w);
  return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : -1;
}
