/* The admin listener: GET /metrics (Prometheus text), GET /status (JSON), GET / (the dashboard page) with
 * GET /events (the status as Server-Sent Events, once a second), and
 * POST /upstreams/NAME/servers/ADDR/{drain,enable,disable}, PUT /upstreams/NAME/servers/ADDR/weight.
 * It accepts by itself (a readable poll on the listening socket and accept4) with one descriptor held in
 * reserve, so it still answers when the workers' clients hold every descriptor the process may open. */
#include "admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../lib/util.h"
#include "http1.h"
#include "persist/persist.h"

#define ADMIN_TIMEOUT_MS 10000      /* for a request to arrive whole, then for its answer to be taken */
#define ADMIN_RETRY_MS 100          /* out of descriptors even with the reserve: accept again after this */
#define EVENTS_EVERY_MS 1000        /* GET /events: one status event a second */
#define EVENTS_MAX 16               /* streams open at once; more get 503 */
#define EVENTS_BACKLOG (256 * 1024) /* a stream whose reader is this far behind is closed */

typedef struct admin_conn {
  uv_tcp_t tcp;
  uv_timer_t timer; /* ADMIN_TIMEOUT_MS: idle connections do not stay */
  tether__control *ctl;
  char buf[8192];
  size_t len;
  int done;
  int closing;                              /* handles whose close callback is still due */
  char peer[64];                            /* for the log */
  struct tether__admin_listener *stream_of; /* GET /events: the listener whose stream list holds it */
  struct admin_conn *stream_next;
} admin_conn;

/* The listening socket, polled for readability; freed once its handles have closed (a reload that moves
 * it opens the next one at once). */
struct tether__admin_listener {
  uv_poll_t poll;
  uv_timer_t retry; /* accepting paused: out of descriptors */
  int fd;
  int reserve; /* an open /dev/null given up to accept one admin connection, or -1 */
  int closing;
  tether__control *ctl;
  admin_conn *streams; /* GET /events streams open on it */
  int nstreams;
};

static const char *class_names[TETHER__NCLASSES] = {"1xx", "2xx", "3xx", "4xx", "5xx", "error"};
static const char *admin_names[] = {"up", "drain", "disabled"};

static uint64_t sum_class(const tether__server_state *s, int cls, int nworkers) {
  uint64_t n = 0;
  for (int i = 0; i < nworkers; i++) n += atomic_load_explicit(&s->per_worker[i].requests[cls], memory_order_relaxed);
  return n;
}

static uint64_t sum_field(const tether__server_state *s, int which, int nworkers) {
  uint64_t n = 0;
  for (int i = 0; i < nworkers; i++)
    n += which == 0 ? atomic_load_explicit(&s->per_worker[i].connect_errors, memory_order_relaxed)
                    : atomic_load_explicit(&s->per_worker[i].retries, memory_order_relaxed);
  return n;
}

/* Up as a balancer sees it: configured in, health checks passing, not failed passively. */
static int server_up(const tether__server_state *s, const tether__cf_server *cf, int64_t now) {
  return !cf->down && atomic_load(&s->health_up) && atomic_load(&s->down_until_ms) <= now;
}

/* session_monitor's counts, for the upstreams that have one. */
static void session_metrics(tether__buf *b, const tether__control *ctl) {
  static const char *const names[TETHER__SESS_COUNT][2] = {
      {"started", "Responses that gave a session to a client that came without one (session_monitor)."},
      {"replaced", "Responses that replaced the session a client came with: lost sessions (session_monitor)."},
      {"expected", "Session ids replaced on an expected= path, such as a login (session_monitor)."},
      {"presented", "Responses to requests that carried the session cookie (session_monitor)."}};
  const tether__runtime *rt = ctl->rt;
  for (int e = 0; e < TETHER__SESS_COUNT; e++) {
    tether__buf_appendf(b, "# HELP tether_session_%s_total %s\n# TYPE tether_session_%s_total counter\n", names[e][0],
                        names[e][1], names[e][0]);
    for (size_t k = 0; k < rt->cf->nupstreams; k++) {
      if (rt->cf->upstreams[k].monitor.cookie[0] == '\0') continue;
      for (size_t i = 0; i < rt->cf->upstreams[k].nservers; i++) {
        const tether__server_state *s = rt->ups[k].servers[i];
        uint64_t n = 0;
        for (int w = 0; w < ctl->nworkers; w++)
          n += atomic_load_explicit(&s->per_worker[w].sessions[e], memory_order_relaxed);
        tether__buf_appendf(b, "tether_session_%s_total{upstream=\"%s\",server=\"%s\"} %llu\n", names[e][0],
                            s->upstream, s->name, (unsigned long long)n);
      }
    }
  }
}

char *tether__metrics_text(tether__control *ctl) {
  tether__buf b = {0};
  int64_t now = tether_now_ms();
  tether__runtime *rt = ctl->rt;
  tether__buf_appendf(&b, "# HELP tether_requests_total Requests answered by upstream servers, by status class.\n"
                          "# TYPE tether_requests_total counter\n");
  for (size_t k = 0; k < rt->cf->nupstreams; k++)
    for (size_t i = 0; i < rt->cf->upstreams[k].nservers; i++) {
      tether__server_state *s = rt->ups[k].servers[i];
      for (int cls = 0; cls < TETHER__NCLASSES; cls++)
        tether__buf_appendf(&b, "tether_requests_total{upstream=\"%s\",server=\"%s\",code_class=\"%s\"} %llu\n",
                            s->upstream, s->name, class_names[cls],
                            (unsigned long long)sum_class(s, cls, ctl->nworkers));
    }
  tether__buf_appendf(&b, "# HELP tether_persistence_total Requests by persistence outcome: hit, new, or break "
                          "with a reason (down, drain, unknown, overload).\n# TYPE tether_persistence_total counter\n");
  for (size_t k = 0; k < rt->cf->nupstreams; k++) {
    if (rt->cf->upstreams[k].persist.kind == TETHER__PERSIST_NONE) continue;
    tether__upstream_state *us = rt->ups[k].state;
    for (int o = 0; o < TETHER__OUT_COUNT; o++) {
      uint64_t n = 0;
      for (int i = 0; i < ctl->nworkers; i++) n += atomic_load_explicit(&us->outcomes[i][o], memory_order_relaxed);
      tether__buf_appendf(&b, "tether_persistence_total{upstream=\"%s\",outcome=\"%s\",reason=\"%s\"} %llu\n", us->name,
                          tether__outcome_names[o][0], tether__outcome_names[o][1], (unsigned long long)n);
    }
  }
  tether__buf_appendf(&b, "# HELP tether_server_up Whether a server is up (configured in, passing health checks).\n"
                          "# TYPE tether_server_up gauge\n");
  for (size_t k = 0; k < rt->cf->nupstreams; k++)
    for (size_t i = 0; i < rt->cf->upstreams[k].nservers; i++) {
      tether__server_state *s = rt->ups[k].servers[i];
      tether__buf_appendf(&b, "tether_server_up{upstream=\"%s\",server=\"%s\"} %d\n", s->upstream, s->name,
                          server_up(s, &rt->cf->upstreams[k].servers[i], now));
    }
  tether__buf_appendf(&b, "# HELP tether_server_active_requests Requests in flight per server.\n"
                          "# TYPE tether_server_active_requests gauge\n");
  for (size_t k = 0; k < rt->cf->nupstreams; k++)
    for (size_t i = 0; i < rt->cf->upstreams[k].nservers; i++) {
      tether__server_state *s = rt->ups[k].servers[i];
      tether__buf_appendf(&b, "tether_server_active_requests{upstream=\"%s\",server=\"%s\"} %d\n", s->upstream, s->name,
                          atomic_load(&s->active));
    }
  tether__buf_appendf(&b, "# HELP tether_upstream_connect_errors_total Failed connections to servers.\n"
                          "# TYPE tether_upstream_connect_errors_total counter\n");
  for (size_t k = 0; k < rt->cf->nupstreams; k++)
    for (size_t i = 0; i < rt->cf->upstreams[k].nservers; i++) {
      tether__server_state *s = rt->ups[k].servers[i];
      tether__buf_appendf(&b, "tether_upstream_connect_errors_total{upstream=\"%s\",server=\"%s\"} %llu\n", s->upstream,
                          s->name, (unsigned long long)sum_field(s, 0, ctl->nworkers));
    }
  tether__buf_appendf(&b, "# HELP tether_upstream_retries_total Requests retried on another server.\n"
                          "# TYPE tether_upstream_retries_total counter\n");
  for (size_t k = 0; k < rt->cf->nupstreams; k++)
    for (size_t i = 0; i < rt->cf->upstreams[k].nservers; i++) {
      tether__server_state *s = rt->ups[k].servers[i];
      tether__buf_appendf(&b, "tether_upstream_retries_total{upstream=\"%s\",server=\"%s\"} %llu\n", s->upstream,
                          s->name, (unsigned long long)sum_field(s, 1, ctl->nworkers));
    }
  session_metrics(&b, ctl);
  tether__server_latency_metrics(&b, rt, ctl->nworkers);
  int64_t active = 0;
  uint64_t accepted = 0, requests = 0, requests_h2 = 0, errs[6] = {0}, buckets[TETHER__LATENCY_NB + 1] = {0},
           sum_us = 0;
  for (int i = 0; i < ctl->nworkers; i++) {
    tether__worker *w = &ctl->workers[i];
    active += atomic_load(&w->active_connections);
    accepted += atomic_load(&w->accepted);
    requests += atomic_load(&w->requests);
    requests_h2 += atomic_load(&w->requests_h2);
    for (int e = 0; e < 6; e++) errs[e] += atomic_load(&w->errors_by_status[e]);
    for (int k = 0; k <= TETHER__LATENCY_NB; k++) buckets[k] += atomic_load(&w->latency_buckets[k]);
    sum_us += atomic_load(&w->latency_sum_us);
  }
  tether__buf_appendf(&b,
                      "# HELP tether_active_connections Open client connections.\n"
                      "# TYPE tether_active_connections gauge\ntether_active_connections %lld\n"
                      "# HELP tether_connections_total Client connections accepted.\n"
                      "# TYPE tether_connections_total counter\ntether_connections_total %llu\n"
                      "# HELP tether_http_requests_total Requests received, by protocol (h2: HTTP/2 streams).\n"
                      "# TYPE tether_http_requests_total counter\n"
                      "tether_http_requests_total{protocol=\"http/1.1\"} %llu\n"
                      "tether_http_requests_total{protocol=\"h2\"} %llu\n",
                      (long long)active, (unsigned long long)accepted, (unsigned long long)(requests - requests_h2),
                      (unsigned long long)requests_h2);
  static const char *err_names[6] = {"400", "408", "413", "414", "431", "other"};
  tether__buf_appendf(&b, "# HELP tether_refused_requests_total Requests the balancer answered itself with an error.\n"
                          "# TYPE tether_refused_requests_total counter\n");
  for (int e = 0; e < 6; e++)
    tether__buf_appendf(&b, "tether_refused_requests_total{status=\"%s\"} %llu\n", err_names[e],
                        (unsigned long long)errs[e]);
  tether__buf_appendf(&b, "# HELP tether_request_duration_seconds Time from a request's head to its last byte.\n"
                          "# TYPE tether_request_duration_seconds histogram\n");
  uint64_t cum = 0;
  for (int k = 0; k < TETHER__LATENCY_NB; k++) {
    cum += buckets[k];
    tether__buf_appendf(&b, "tether_request_duration_seconds_bucket{le=\"%g\"} %llu\n", tether__latency_bounds_s[k],
                        (unsigned long long)cum);
  }
  cum += buckets[TETHER__LATENCY_NB];
  tether__buf_appendf(&b, "tether_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
  tether__buf_appendf(&b, "tether_request_duration_seconds_sum %.6f\ntether_request_duration_seconds_count %llu\n",
                      sum_us / 1e6, (unsigned long long)cum);
  tether__buf_appendf(&b, "# HELP tether_jwt_total Edge authentication results (auth_jwt): ok or the reason a "
                          "request was refused.\n# TYPE tether_jwt_total counter\n");
  for (int r = 0; r < TETHER__JWT_RESULTS; r++) {
    uint64_t n = 0;
    for (int i = 0; i < ctl->nworkers; i++) n += atomic_load(&ctl->workers[i].jwt_results[r]);
    const char *label = r == 0                       ? "ok"
                        : r == TETHER__JWT_MISSING   ? "missing"
                        : r == TETHER__JWT_OTHER     ? "error"
                        : r == TETHER__JWT_BAD_CLAIM ? "claim_header"
                                                     : tether_jwt_reason(-(r + 1000));
    if (n || r == 0 || r == TETHER__JWT_MISSING)
      tether__buf_appendf(&b, "tether_jwt_total{result=\"%s\"} %llu\n", label, (unsigned long long)n);
  }
  tether__buf_appendf(&b,
                      "# HELP tether_config_generation Configuration loads so far (reloads + 1).\n"
                      "# TYPE tether_config_generation gauge\ntether_config_generation %llu\n"
                      "# HELP tether_config_reload_failures_total Reloads refused because the configuration had "
                      "errors.\n# TYPE tether_config_reload_failures_total counter\n"
                      "tether_config_reload_failures_total %llu\n"
                      "# HELP tether_config_last_reload_success Whether the last reload (or the start) succeeded.\n"
                      "# TYPE tether_config_last_reload_success gauge\ntether_config_last_reload_success %d\n",
                      (unsigned long long)rt->generation, (unsigned long long)ctl->reload_failures,
                      !ctl->last_reload_failed);
  return b.data;
}

/* Per upstream, with persistence: its outcomes so far, as "hit", "new", "break_down", ... */
static json_t *persistence_json(const tether__upstream_state *us, int nworkers) {
  json_t *o = json_object();
  for (int k = 0; k < TETHER__OUT_COUNT; k++) {
    uint64_t n = 0;
    for (int w = 0; w < nworkers; w++) n += atomic_load_explicit(&us->outcomes[w][k], memory_order_relaxed);
    char key[32];
    snprintf(key, sizeof(key), "%s%s%s", tether__outcome_names[k][0], tether__outcome_names[k][1][0] ? "_" : "",
             tether__outcome_names[k][1]);
    json_object_set_new(o, key, json_integer((json_int_t)n));
  }
  return o;
}

/* Per server, with session_monitor: started, replaced, expected, presented. */
static json_t *sessions_json(const tether__server_state *s, int nworkers) {
  static const char *const names[TETHER__SESS_COUNT] = {"started", "replaced", "expected", "presented"};
  json_t *o = json_object();
  for (int e = 0; e < TETHER__SESS_COUNT; e++) {
    uint64_t n = 0;
    for (int w = 0; w < nworkers; w++) n += atomic_load_explicit(&s->per_worker[w].sessions[e], memory_order_relaxed);
    json_object_set_new(o, names[e], json_integer((json_int_t)n));
  }
  return o;
}

/* The request duration histogram: bucket bounds (seconds) and the count in each (the last: above them). */
static json_t *latency_json(const tether__control *ctl) {
  json_t *o = json_object(), *le = json_array(), *counts = json_array();
  for (int k = 0; k <= TETHER__LATENCY_NB; k++) {
    uint64_t n = 0;
    for (int i = 0; i < ctl->nworkers; i++) n += atomic_load(&ctl->workers[i].latency_buckets[k]);
    if (k < TETHER__LATENCY_NB) json_array_append_new(le, json_real(tether__latency_bounds_s[k]));
    json_array_append_new(counts, json_integer((json_int_t)n));
  }
  json_object_set_new(o, "le", le);
  json_object_set_new(o, "counts", counts);
  return o;
}

static char *status_text(tether__control *ctl, size_t flags) {
  int64_t now = tether_now_ms();
  tether__runtime *rt = ctl->rt;
  json_t *root = json_object();
  json_object_set_new(root, "generation", json_integer((json_int_t)rt->generation));
  json_object_set_new(root, "workers", json_integer(ctl->nworkers));
  int64_t active = 0;
  for (int i = 0; i < ctl->nworkers; i++) active += atomic_load(&ctl->workers[i].active_connections);
  json_object_set_new(root, "active_connections", json_integer(active));
  json_t *ups = json_array();
  for (size_t k = 0; k < rt->cf->nupstreams; k++) {
    const tether__cf_upstream *u = &rt->cf->upstreams[k];
    json_t *ju = json_object();
    json_object_set_new(ju, "name", json_string(u->name));
    static const char *algos[] = {"round_robin", "least_conn", "random_two"};
    json_object_set_new(ju, "balance", json_string(algos[u->balance]));
    json_t *servers = json_array();
    for (size_t i = 0; i < u->nservers; i++) {
      tether__server_state *s = rt->ups[k].servers[i];
      const tether__cf_server *cs = &u->servers[i];
      json_t *js = json_object();
      int adm = atomic_load(&s->admin);
      const char *state = adm != TETHER__ADMIN_UP ? admin_names[adm] : server_up(s, cs, now) ? "up" : "down";
      json_object_set_new(js, "name", json_string(s->name));
      json_object_set_new(js, "state", json_string(state));
      json_object_set_new(js, "health", json_string(atomic_load(&s->health_up) ? "passing" : "failing"));
      json_object_set_new(js, "weight", json_integer(atomic_load(&s->weight)));
      json_object_set_new(js, "backup", json_boolean(cs->backup));
      json_object_set_new(js, "active", json_integer(atomic_load(&s->active)));
      json_t *req = json_object();
      for (int cls = 0; cls < TETHER__NCLASSES; cls++)
        json_object_set_new(req, class_names[cls], json_integer((json_int_t)sum_class(s, cls, ctl->nworkers)));
      json_object_set_new(js, "requests", req);
      json_object_set_new(js, "connect_errors", json_integer((json_int_t)sum_field(s, 0, ctl->nworkers)));
      json_object_set_new(js, "retries", json_integer((json_int_t)sum_field(s, 1, ctl->nworkers)));
      if (u->monitor.cookie[0]) json_object_set_new(js, "sessions", sessions_json(s, ctl->nworkers));
      json_object_set_new(js, "latency", tether__server_latency_json(s, ctl->nworkers));
      json_array_append_new(servers, js);
    }
    json_object_set_new(ju, "servers", servers);
    if (u->persist.kind != TETHER__PERSIST_NONE)
      json_object_set_new(ju, "persistence", persistence_json(rt->ups[k].state, ctl->nworkers));
    json_array_append_new(ups, ju);
  }
  json_object_set_new(root, "upstreams", ups);
  json_object_set_new(root, "latency", latency_json(ctl));
  char *out = json_dumps(root, flags | JSON_PRESERVE_ORDER);
  json_decref(root);
  return out;
}

char *tether__status_json(tether__control *ctl) { return status_text(ctl, JSON_INDENT(2)); }

/* Takes the reserve descriptor back when it was given up (and nothing else took its place since). */
static void reserve_take(struct tether__admin_listener *l) {
  if (l == NULL || l->reserve >= 0) return;
  l->reserve = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void conn_closed(uv_handle_t *h) {
  admin_conn *a = h->data;
  if (--a->closing == 0) free(a);
}

static void conn_close(admin_conn *a) {
  if (a->closing) return;
  if (a->stream_of) { /* out of its listener's list of streams */
    admin_conn **pp = &a->stream_of->streams;
    while (*pp != a) pp = &(*pp)->stream_next;
    *pp = a->stream_next;
    a->stream_of->nstreams--;
    a->stream_of = NULL;
  }
  a->closing = 2;
  uv_close((uv_handle_t *)&a->tcp, conn_closed);
  uv_close((uv_handle_t *)&a->timer, conn_closed);
  reserve_take(a->ctl->listener); /* the descriptor just closed may be the reserve's */
}

static void conn_timeout(uv_timer_t *t) { conn_close(t->data); }

static void written(uv_write_t *req, int status) {
  (void)status;
  admin_conn *a = req->data;
  free(req);
  conn_close(a);
}

static void reply_hdr(admin_conn *a, int status, const char *extra, const char *type, const char *body) {
  a->done = 1;
  uv_read_stop((uv_stream_t *)&a->tcp);
  uv_timer_start(&a->timer, conn_timeout, ADMIN_TIMEOUT_MS, 0);
  const char *reason = status == 200   ? "OK"
                       : status == 400 ? "Bad Request"
                       : status == 401 ? "Unauthorized"
                       : status == 403 ? "Forbidden"
                       : status == 404 ? "Not Found"
                       : status == 405 ? "Method Not Allowed"
                       : status == 415 ? "Unsupported Media Type"
                       : status == 503 ? "Service Unavailable"
                                       : "Error";
  size_t blen = strlen(body);
  char *msg =
      tether__asprintf("HTTP/1.1 %d %s\r\n%sContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                       status, reason, extra, type, blen, body);
  uv_write_t *req = tether__malloc(sizeof(*req) + strlen(msg));
  memcpy((char *)(req + 1), msg, strlen(msg));
  uv_buf_t buf = uv_buf_init((char *)(req + 1), (unsigned)strlen(msg));
  free(msg);
  req->data = a;
  if (uv_write(req, (uv_stream_t *)&a->tcp, &buf, 1, written) < 0) {
    free(req);
    conn_close(a);
  }
}

static void reply(admin_conn *a, int status, const char *type, const char *body) {
  reply_hdr(a, status, "", type, body);
}

/* ---- GET /events: the status once a second, as Server-Sent Events ---- */

static void stream_written(uv_write_t *req, int status) {
  admin_conn *a = req->data;
  free(req);
  if (status < 0) conn_close(a);
}

static void stream_write(admin_conn *a, const char *text) {
  size_t n = strlen(text);
  uv_write_t *req = tether__malloc(sizeof(*req) + n);
  memcpy((char *)(req + 1), text, n);
  uv_buf_t buf = uv_buf_init((char *)(req + 1), (unsigned)n);
  req->data = a;
  if (uv_write(req, (uv_stream_t *)&a->tcp, &buf, 1, stream_written) < 0) {
    free(req);
    conn_close(a);
  }
}

static void event_tick(uv_timer_t *t) {
  admin_conn *a = t->data;
  if (uv_stream_get_write_queue_size((uv_stream_t *)&a->tcp) > EVENTS_BACKLOG) { /* nobody reads it */
    conn_close(a);
    return;
  }
  char *json = status_text(a->ctl, JSON_COMPACT); /* one line: an event is "data: LINE" and a blank line */
  char *event = tether__asprintf("data: %s\n\n", json);
  free(json);
  stream_write(a, event);
  free(event);
}

static void events_start(admin_conn *a) {
  struct tether__admin_listener *l = a->ctl->listener;
  if (l == NULL || l->nstreams >= EVENTS_MAX) {
    reply_hdr(a, 503, "Retry-After: 5\r\n", "text/plain", "too many event streams are open\n");
    return;
  }
  a->done = 1; /* reading goes on, to see the client go */
  a->stream_of = l;
  a->stream_next = l->streams;
  l->streams = a;
  l->nstreams++;
  stream_write(a, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
                  "Connection: close\r\n\r\n");
  if (a->closing) return;
  event_tick(&a->timer);
  if (!a->closing) uv_timer_start(&a->timer, event_tick, EVENTS_EVERY_MS, EVENTS_EVERY_MS);
}

/* GET / and its script: static, holding no data, so served without the token (the page asks for it and
 * sends it with every request it makes). */
static int dashboard_asset(admin_conn *a, const tether__h1_msg *m, const char *path) {
  int page = strcmp(path, "/") == 0, script = strcmp(path, "/dashboard.js") == 0;
  if (!(page || script) || !tether__h1_token_eq(m->method, "GET")) return 0;
  reply_hdr(a, 200,
            "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
            "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; "
            "connect-src 'self'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'\r\n",
            page ? "text/html; charset=utf-8" : "text/javascript; charset=utf-8",
            page ? tether__dashboard_html : tether__dashboard_js);
  return 1;
}

/* ---- who may ask ---- */

/* Compared as SHA-256 digests with CRYPTO_memcmp: the time taken says nothing of the token, not even
 * its length. */
static int token_ok(const char *want, tether__slice auth) {
  if (auth.p == NULL || auth.n < 7 || strncasecmp(auth.p, "Bearer ", 7) != 0) return 0;
  tether__slice got = {auth.p + 7, auth.n - 7};
  while (got.n && got.p[0] == ' ') got.p++, got.n--;
  unsigned char dw[SHA256_DIGEST_LENGTH], dg[SHA256_DIGEST_LENGTH];
  SHA256((const unsigned char *)want, strlen(want), dw);
  SHA256((const unsigned char *)got.p, got.n, dg);
  return CRYPTO_memcmp(dw, dg, sizeof(dw)) == 0;
}

/* An IP literal or localhost, with an optional port: names a DNS rebinding attack cannot point at us. */
static int host_is_literal(tether__slice h) {
  char host[80];
  if (h.n == 0 || h.n >= sizeof(host)) return 0;
  memcpy(host, h.p, h.n);
  host[h.n] = '\0';
  char *port = NULL;
  if (host[0] == '[') {
    char *rb = strchr(host, ']');
    if (rb == NULL || (rb[1] != '\0' && rb[1] != ':')) return 0;
    if (rb[1] == ':') port = rb + 2;
    *rb = '\0';
    struct in6_addr a6;
    if (inet_pton(AF_INET6, host + 1, &a6) != 1) return 0;
  } else {
    char *colon = strchr(host, ':');
    if (colon) *colon = '\0', port = colon + 1;
    struct in_addr a4;
    if (strcasecmp(host, "localhost") != 0 && inet_pton(AF_INET, host, &a4) != 1) return 0;
  }
  if (port && (*port == '\0' || strspn(port, "0123456789") != strlen(port))) return 0;
  return 1;
}

/* The content types a cross-site HTML form (or a no-cors fetch) can send without a CORS preflight. */
static int form_type(tether__slice ct) {
  static const char *const forms[] = {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"};
  size_t n = 0;
  while (n < ct.n && ct.p[n] != ';' && ct.p[n] != ' ' && ct.p[n] != '\t') n++;
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(forms); i++)
    if (tether__h1_token_eq((tether__slice){ct.p, n}, forms[i])) return 1;
  return 0;
}

/* Whether a request may go on; if not, it has been answered. Never logs a header's value. */
static int allowed(admin_conn *a, tether__h1_msg *m, const char *path) {
  const tether__config *cf = a->ctl->rt->cf;
  int status = 0;
  const char *why = NULL;
  int write = !tether__h1_token_eq(m->method, "GET") && !tether__h1_token_eq(m->method, "HEAD");
  if (cf->admin_token[0] && !token_ok(cf->admin_token, tether__h1_header_get(m, "authorization"))) {
    status = 401, why = "a valid bearer token is required";
  } else if (!cf->admin_token[0] && m->host.p && !host_is_literal(m->host)) {
    status = 403, why = "the Host must be an IP address or localhost (or configure admin_auth_token)";
  } else if (write) {
    tether__slice origin = tether__h1_header_get(m, "origin");
    tether__slice ct = tether__h1_header_get(m, "content-type");
    if (origin.p && (m->host.p == NULL || origin.n != 7 + m->host.n || strncasecmp(origin.p, "http://", 7) != 0 ||
                     strncasecmp(origin.p + 7, m->host.p, m->host.n) != 0))
      status = 403, why = "cross-origin requests may not change anything";
    else if (ct.p && form_type(ct))
      status = 415, why = "form content types are refused (send none, or application/json)";
  }
  if (status == 0) return 1;
  tether__log(TETHER_LOG_WARN, "admin: %d for %.*s %s from %s: %s", status, (int)m->method.n, m->method.p, path,
              a->peer, why);
  char *body = tether__asprintf("%s\n", why);
  reply_hdr(a, status, status == 401 ? "WWW-Authenticate: Bearer realm=\"tether admin\"\r\n" : "", "text/plain", body);
  free(body);
  return 0;
}

/* POST /upstreams/NAME/servers/ADDR/ACTION or PUT .../weight */
static void server_action(admin_conn *a, tether__slice method, const char *path, const char *body) {
  char up[64], srv[64], action[32];
  if (sscanf(path, "/upstreams/%63[^/]/servers/%63[^/]/%31[a-z]", up, srv, action) != 3) {
    reply(a, 404, "text/plain", "unknown path\n");
    return;
  }
  tether__server_state *s = tether__server_find(up, srv);
  if (s == NULL) {
    reply(a, 404, "text/plain", "no such upstream or server\n");
    return;
  }
  if (strcmp(action, "weight") == 0) {
    if (!tether__h1_token_eq(method, "PUT")) return reply(a, 405, "text/plain", "use PUT\n");
    char *end;
    long wgt = strtol(body, &end, 10);
    while (*end == ' ' || *end == '\n' || *end == '\r') end++;
    if (*body == '\0' || *end != '\0' || wgt < 1 || wgt > 1000)
      return reply(a, 400, "text/plain", "weight must be 1-1000\n");
    atomic_store(&s->weight, (int)wgt);
  } else {
    if (!tether__h1_token_eq(method, "POST")) return reply(a, 405, "text/plain", "use POST\n");
    if (strcmp(action, "drain") == 0) {
      atomic_store(&s->admin, TETHER__ADMIN_DRAIN);
      atomic_store(&s->drain_since_ms, tether_now_ms());
    } else if (strcmp(action, "enable") == 0) {
      if (atomic_load(&s->admin) != TETHER__ADMIN_UP) atomic_store(&s->up_since_ms, tether_now_ms());
      atomic_store(&s->admin, TETHER__ADMIN_UP);
    } else if (strcmp(action, "disable") == 0) {
      atomic_store(&s->admin, TETHER__ADMIN_DISABLED);
    } else {
      return reply(a, 404, "text/plain", "actions: drain, enable, disable, weight\n");
    }
  }
  tether__log(TETHER_LOG_INFO, "admin: %s %s/%s", action, up, srv);
  char *json = tether__asprintf("{\"upstream\":\"%s\",\"server\":\"%s\",\"state\":\"%s\",\"weight\":%d}\n", up, srv,
                                admin_names[atomic_load(&s->admin)], atomic_load(&s->weight));
  reply(a, 200, "application/json", json);
  free(json);
}

static void handle(admin_conn *a, tether__h1_msg *m, const char *body) {
  char path[256];
  snprintf(path, sizeof(path), "%.*s", (int)(m->target.n < 255 ? m->target.n : 255), m->target.p);
  char *q = strchr(path, '?');
  if (q) *q = '\0';
  if (dashboard_asset(a, m, path) || !allowed(a, m, path)) return;
  if (strcmp(path, "/metrics") == 0 || strcmp(path, "/status") == 0) {
    if (!tether__h1_token_eq(m->method, "GET")) return reply(a, 405, "text/plain", "use GET\n");
    int metrics = path[1] == 'm';
    char *text = metrics ? tether__metrics_text(a->ctl) : tether__status_json(a->ctl);
    reply(a, 200, metrics ? "text/plain; version=0.0.4" : "application/json", text);
    free(text);
  } else if (strcmp(path, "/events") == 0) {
    if (!tether__h1_token_eq(m->method, "GET")) return reply(a, 405, "text/plain", "use GET\n");
    events_start(a);
  } else if (strncmp(path, "/upstreams/", 11) == 0) {
    server_action(a, m->method, path, body);
  } else {
    reply(a, 404, "text/plain",
          "admin: GET / (dashboard), GET /events, GET /metrics, GET /status, "
          "POST /upstreams/NAME/servers/ADDR/ACTION\n");
  }
}

static void alloc_cb(uv_handle_t *h, size_t s, uv_buf_t *buf) {
  (void)s;
  admin_conn *a = h->data;
  *buf = uv_buf_init(a->buf + a->len, (unsigned)(sizeof(a->buf) - 1 - a->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  admin_conn *a = s->data;
  if (a->done) {
    if (n < 0 && a->stream_of) conn_close(a); /* an event stream's reader went away */
    return;
  }
  if (n < 0) {
    conn_close(a);
    return;
  }
  a->len += (size_t)n;
  a->buf[a->len] = '\0';
  tether__h1_limits lim = {.max_head = sizeof(a->buf) - 1, .max_uri = 1024, .max_headers = 50};
  tether__h1_msg *m = tether__malloc(sizeof(*m));
  int rc = tether__h1_parse_request(a->buf, a->len, &lim, m);
  if (rc < 0)
    reply(a, 400, "text/plain", "bad request\n");
  else if (rc > 0) {
    size_t need = m->framing == TETHER__H1_LENGTH ? (size_t)m->content_length : 0;
    if (m->framing == TETHER__H1_CHUNKED || need > 1024)
      reply(a, 400, "text/plain", "body too large\n");
    else if (a->len - (size_t)rc >= need) {
      char body[1100];
      memcpy(body, a->buf + rc, need);
      body[need] = '\0';
      handle(a, m, body);
    } else if (a->len >= sizeof(a->buf) - 1) {
      reply(a, 400, "text/plain", "bad request\n");
    }
  } else if (a->len >= sizeof(a->buf) - 1) {
    reply(a, 431, "text/plain", "too large\n");
  }
  free(m);
}

static void conn_start(tether__control *ctl, int fd, const struct sockaddr_storage *ss) {
  admin_conn *a = tether__calloc(1, sizeof(*a));
  a->ctl = ctl;
  uv_tcp_init(ctl->loop, &a->tcp);
  uv_timer_init(ctl->loop, &a->timer);
  a->tcp.data = a;
  a->timer.data = a;
  const void *ip = ss->ss_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
                                             : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
  if (inet_ntop(ss->ss_family, ip, a->peer, sizeof(a->peer)) == NULL) snprintf(a->peer, sizeof(a->peer), "?");
  if (uv_tcp_open(&a->tcp, fd) < 0) {
    close(fd);
    conn_close(a);
    return;
  }
  uv_timer_start(&a->timer, conn_timeout, ADMIN_TIMEOUT_MS, 0);
  uv_read_start((uv_stream_t *)&a->tcp, alloc_cb, on_read);
}

static void on_acceptable(uv_poll_t *p, int status, int events);

static void retry_accept(uv_timer_t *t) {
  struct tether__admin_listener *l = t->data;
  reserve_take(l);
  uv_poll_start(&l->poll, UV_READABLE, on_acceptable);
}

/* Accepts what is pending. Out of descriptors, the reserve makes room for one admin connection; when it is
 * already spent, accepting pauses for ADMIN_RETRY_MS and the client waits in the backlog (libuv's own
 * answer to EMFILE would accept and close, a reset for whoever was waiting). */
static void on_acceptable(uv_poll_t *p, int status, int events) {
  (void)events;
  struct tether__admin_listener *l = p->data;
  if (status < 0) return;
  for (int i = 0; i < 32; i++) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0 && (errno == EMFILE || errno == ENFILE) && l->reserve >= 0) {
      close(l->reserve);
      l->reserve = -1;
      len = sizeof(ss);
      fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    }
    if (fd < 0) {
      int e = errno;
      reserve_take(l);
      if (e == EINTR || e == ECONNABORTED) continue;
      if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
        uv_poll_stop(&l->poll);
        uv_timer_start(&l->retry, retry_accept, ADMIN_RETRY_MS, 0);
      } else if (e != EAGAIN && e != EWOULDBLOCK) {
        tether__log(TETHER_LOG_WARN, "admin: accept: %s", strerror(e));
      }
      return;
    }
    conn_start(l->ctl, fd, &ss);
  }
}

static void listener_closed(uv_handle_t *h) {
  struct tether__admin_listener *l = h->data;
  if (--l->closing == 0) free(l);
}

static int listen_fd(const tether__addr *addr) {
  int fd = socket(addr->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
      bind(fd, (const struct sockaddr *)&addr->sa, addr->len) < 0 || listen(fd, 128) < 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  return fd;
}

int tether__admin_start(tether__control *ctl) {
  const tether__config *cf = ctl->rt->cf;
  const tether__addr *addr = &cf->admin;
  if (addr->len == 0) return 0;
  int fd = listen_fd(addr);
  if (fd < 0) {
    tether__log(TETHER_LOG_ERROR, "admin_listen %s: %s", addr->text, strerror(-fd));
    return fd;
  }
  struct tether__admin_listener *l = tether__calloc(1, sizeof(*l));
  l->ctl = ctl;
  l->fd = fd;
  l->reserve = -1;
  reserve_take(l);
  uv_poll_init(ctl->loop, &l->poll, fd);
  uv_timer_init(ctl->loop, &l->retry);
  l->poll.data = l;
  l->retry.data = l;
  uv_poll_start(&l->poll, UV_READABLE, on_acceptable);
  ctl->listener = l;
  tether__log(TETHER_LOG_INFO, "admin API on %s (%s)", addr->text,
              cf->admin_token[0] ? "bearer token required" : "no token: loopback, IP or localhost Host only");
  return 0;
}

void tether__admin_stop(tether__control *ctl) {
  struct tether__admin_listener *l = ctl->listener;
  if (l == NULL) return;
  ctl->listener = NULL;
  while (l->streams) conn_close(l->streams); /* unlinks it */
  l->closing = 2;
  uv_close((uv_handle_t *)&l->poll, listener_closed);
  uv_close((uv_handle_t *)&l->retry, listener_closed);
  close(l->fd);
  if (l->reserve >= 0) close(l->reserve);
}
