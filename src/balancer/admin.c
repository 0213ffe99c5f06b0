/* The admin listener: GET /metrics (Prometheus text), GET /status (JSON), and
 * POST /upstreams/NAME/servers/ADDR/{drain,enable,disable}, PUT /upstreams/NAME/servers/ADDR/weight. */
#include "admin.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/util.h"
#include "http1.h"
#include "persist/persist.h"

typedef struct admin_conn {
  uv_tcp_t tcp;
  tether__control *ctl;
  char buf[8192];
  size_t len;
  int done;
} admin_conn;

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
                            s->upstream, s->name, class_names[cls], (unsigned long long)sum_class(s, cls, ctl->nworkers));
    }
  tether__buf_appendf(&b, "# HELP tether_persistence_total Requests by persistence outcome: hit, new, or break "
                          "with a reason (down, drain, unknown, overload).\n# TYPE tether_persistence_total counter\n");
  for (size_t k = 0; k < rt->cf->nupstreams; k++) {
    if (rt->cf->upstreams[k].persist.kind == TETHER__PERSIST_NONE) continue;
    tether__upstream_state *us = rt->ups[k].state;
    for (int o = 0; o < TETHER__OUT_COUNT; o++) {
      uint64_t n = 0;
      for (int i = 0; i < ctl->nworkers; i++) n += atomic_load_explicit(&us->outcomes[i][o], memory_order_relaxed);
      tether__buf_appendf(&b, "tether_persistence_total{upstream=\"%s\",outcome=\"%s\",reason=\"%s\"} %llu\n",
                          us->name, tether__outcome_names[o][0], tether__outcome_names[o][1], (unsigned long long)n);
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
      tether__buf_appendf(&b, "tether_server_active_requests{upstream=\"%s\",server=\"%s\"} %d\n", s->upstream,
                          s->name, atomic_load(&s->active));
    }
  tether__buf_appendf(&b, "# HELP tether_upstream_connect_errors_total Failed connections to servers.\n"
                          "# TYPE tether_upstream_connect_errors_total counter\n");
  for (size_t k = 0; k < rt->cf->nupstreams; k++)
    for (size_t i = 0; i < rt->cf->upstreams[k].nservers; i++) {
      tether__server_state *s = rt->ups[k].servers[i];
      tether__buf_appendf(&b, "tether_upstream_connect_errors_total{upstream=\"%s\",server=\"%s\"} %llu\n",
                          s->upstream, s->name, (unsigned long long)sum_field(s, 0, ctl->nworkers));
    }
  tether__buf_appendf(&b, "# HELP tether_upstream_retries_total Requests retried on another server.\n"
                          "# TYPE tether_upstream_retries_total counter\n");
  for (size_t k = 0; k < rt->cf->nupstreams; k++)
    for (size_t i = 0; i < rt->cf->upstreams[k].nservers; i++) {
      tether__server_state *s = rt->ups[k].servers[i];
      tether__buf_appendf(&b, "tether_upstream_retries_total{upstream=\"%s\",server=\"%s\"} %llu\n", s->upstream,
                          s->name, (unsigned long long)sum_field(s, 1, ctl->nworkers));
    }
  int64_t active = 0;
  uint64_t accepted = 0, requests = 0, errs[6] = {0}, buckets[TETHER__LATENCY_NB + 1] = {0}, sum_us = 0;
  for (int i = 0; i < ctl->nworkers; i++) {
    tether__worker *w = &ctl->workers[i];
    active += atomic_load(&w->active_connections);
    accepted += atomic_load(&w->accepted);
    requests += atomic_load(&w->requests);
    for (int e = 0; e < 6; e++) errs[e] += atomic_load(&w->errors_by_status[e]);
    for (int k = 0; k <= TETHER__LATENCY_NB; k++) buckets[k] += atomic_load(&w->latency_buckets[k]);
    sum_us += atomic_load(&w->latency_sum_us);
  }
  tether__buf_appendf(&b,
                      "# HELP tether_active_connections Open client connections.\n"
                      "# TYPE tether_active_connections gauge\ntether_active_connections %lld\n"
                      "# HELP tether_connections_total Client connections accepted.\n"
                      "# TYPE tether_connections_total counter\ntether_connections_total %llu\n"
                      "# HELP tether_http_requests_total Requests received.\n"
                      "# TYPE tether_http_requests_total counter\ntether_http_requests_total %llu\n",
                      (long long)active, (unsigned long long)accepted, (unsigned long long)requests);
  static const char *err_names[6] = {"400", "408", "413", "414", "431", "other"};
  tether__buf_appendf(&b, "# HELP tether_refused_requests_total Requests the balancer answered itself with an error.\n"
                          "# TYPE tether_refused_requests_total counter\n");
  for (int e = 0; e < 6; e++)
    tether__buf_appendf(&b, "tether_refused_requests_total{status=\"%s\"} %llu\n", err_names[e], (unsigned long long)errs[e]);
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
  tether__buf_appendf(&b, "# HELP tether_config_generation Configuration loads so far (reloads + 1).\n"
                          "# TYPE tether_config_generation gauge\ntether_config_generation %llu\n",
                      (unsigned long long)rt->generation);
  return b.data;
}

char *tether__status_json(tether__control *ctl) {
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
      json_array_append_new(servers, js);
    }
    json_object_set_new(ju, "servers", servers);
    json_array_append_new(ups, ju);
  }
  json_object_set_new(root, "upstreams", ups);
  char *out = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(root);
  return out;
}

static void conn_closed(uv_handle_t *h) { free(h->data); }

static void written(uv_write_t *req, int status) {
  (void)status;
  admin_conn *a = req->data;
  free(req);
  uv_close((uv_handle_t *)&a->tcp, conn_closed);
}

static void reply(admin_conn *a, int status, const char *type, const char *body) {
  a->done = 1;
  uv_read_stop((uv_stream_t *)&a->tcp);
  const char *reason = status == 200 ? "OK" : status == 400 ? "Bad Request" : status == 404 ? "Not Found"
                       : status == 405 ? "Method Not Allowed" : "Error";
  size_t blen = strlen(body);
  char *msg = tether__asprintf("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                               status, reason, type, blen, body);
  uv_write_t *req = tether__malloc(sizeof(*req) + strlen(msg));
  memcpy((char *)(req + 1), msg, strlen(msg));
  uv_buf_t buf = uv_buf_init((char *)(req + 1), (unsigned)strlen(msg));
  free(msg);
  req->data = a;
  if (uv_write(req, (uv_stream_t *)&a->tcp, &buf, 1, written) < 0) {
    free(req);
    uv_close((uv_handle_t *)&a->tcp, conn_closed);
  }
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
    if (*body == '\0' || *end != '\0' || wgt < 1 || wgt > 1000) return reply(a, 400, "text/plain", "weight must be 1-1000\n");
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
  if (strcmp(path, "/metrics") == 0 || strcmp(path, "/status") == 0) {
    if (!tether__h1_token_eq(m->method, "GET")) return reply(a, 405, "text/plain", "use GET\n");
    int metrics = path[1] == 'm';
    char *text = metrics ? tether__metrics_text(a->ctl) : tether__status_json(a->ctl);
    reply(a, 200, metrics ? "text/plain; version=0.0.4" : "application/json", text);
    free(text);
  } else if (strncmp(path, "/upstreams/", 11) == 0) {
    server_action(a, m->method, path, body);
  } else {
    reply(a, 404, "text/plain", "admin: GET /metrics, GET /status, POST /upstreams/NAME/servers/ADDR/ACTION\n");
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
  if (a->done) return;
  if (n < 0) {
    uv_close((uv_handle_t *)&a->tcp, conn_closed);
    return;
  }
  a->len += (size_t)n;
  a->buf[a->len] = '\0';
  tether__h1_limits lim = {.max_head = sizeof(a->buf) - 1, .max_uri = 1024, .max_headers = 50};
  tether__h1_msg *m = tether__malloc(sizeof(*m));
  int rc = tether__h1_parse_request(a->buf, a->len, &lim, m);
  if (rc < 0) reply(a, 400, "text/plain", "bad request\n");
  else if (rc > 0) {
    size_t need = m->framing == TETHER__H1_LENGTH ? (size_t)m->content_length : 0;
    if (m->framing == TETHER__H1_CHUNKED || need > 1024) reply(a, 400, "text/plain", "body too large\n");
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

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  tether__control *ctl = server->data;
  admin_conn *a = tether__calloc(1, sizeof(*a));
  a->ctl = ctl;
  uv_tcp_init(ctl->loop, &a->tcp);
  a->tcp.data = a;
  if (uv_accept(server, (uv_stream_t *)&a->tcp) < 0) {
    uv_close((uv_handle_t *)&a->tcp, conn_closed);
    return;
  }
  uv_read_start((uv_stream_t *)&a->tcp, alloc_cb, on_read);
}

int tether__admin_start(tether__control *ctl) {
  const tether__addr *addr = &ctl->rt->cf->admin;
  if (addr->len == 0) return 0;
  uv_tcp_init(ctl->loop, &ctl->admin);
  ctl->admin.data = ctl;
  int rc = uv_tcp_bind(&ctl->admin, (const struct sockaddr *)&addr->sa, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&ctl->admin, 128, on_connection);
  if (rc < 0) {
    tether__log(TETHER_LOG_ERROR, "admin_listen %s: %s", addr->text, uv_strerror(rc));
    uv_close((uv_handle_t *)&ctl->admin, NULL);
    return rc;
  }
  ctl->admin_open = 1;
  return 0;
}

void tether__admin_stop(tether__control *ctl) {
  if (ctl->admin_open) uv_close((uv_handle_t *)&ctl->admin, NULL);
  ctl->admin_open = 0;
}
