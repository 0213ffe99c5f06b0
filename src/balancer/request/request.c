/* The request layer's entry. */
#include "request.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "../answer.h"
#include "../conn.h"
#include "../io/tls.h"
#include "../persist/monitor.h"
#include "../persist/persist.h"
#include "../worker.h"
#include "auth.h"
#include "realip.h"
#include "rewrite.h"
#include "route.h"

/* A bounded, NUL-terminated copy of a slice (the access log's method and target). */
static void copy_text(char *out, size_t cap, tether__slice s) {
  size_t n = s.n < cap - 1 ? s.n : cap - 1;
  memcpy(out, s.p, n);
  out[n] = '\0';
}

static int method_idempotent(tether__slice m) {
  return tether__h1_token_eq(m, "GET") || tether__h1_token_eq(m, "HEAD") || tether__h1_token_eq(m, "OPTIONS") ||
         tether__h1_token_eq(m, "PUT") || tether__h1_token_eq(m, "DELETE") || tether__h1_token_eq(m, "TRACE");
}

/* Upgrades are forwarded for WebSocket over HTTP/1.1 only: h2c (RFC 9113 section 3.1 retires it) and
 * other protocols would switch the server connection to something the balancer does not speak. */
static int websocket_upgrade(const tether__h1_msg *m) {
  if (!m->upgrade || m->version_minor != 1) return 0;
  return tether__h1_token_eq(tether__h1_header_get(m, "upgrade"), "websocket");
}

static size_t header_count(const tether__h1_msg *m, const char *name) {
  size_t n = 0;
  for (size_t i = 0; i < m->nheaders; i++) n += tether__h1_token_eq(m->headers[i].name, name);
  return n;
}

/* What the head says about the exchange, kept for the rest of the request. */
static void take_head(tether__client *c, const tether__h1_msg *m) {
  copy_text(c->rq->method, sizeof(c->rq->method), m->method);
  copy_text(c->rq->target, sizeof(c->rq->target), m->target);
  c->version_minor = m->version_minor;
  c->keep_alive = m->keep_alive && !c->w->stopping;
  c->is_head = m->is_head;
  c->idempotent = method_idempotent(m->method);
  c->upgrade = websocket_upgrade(m);
  c->server_name = NULL;
}

/* Requests refused before routing: 0, or the status to answer (closing). */
static int refused(const tether__config *cf, const tether__h1_msg *m) {
  if (header_count(m, "connection") > TETHER__HOP_MAX) return 400; /* no one needs that many; bound the work */
  if (header_count(m, "authorization") > 1) return 400;            /* which one would the server believe? */
  if (cf->client_max_body_size && m->framing == TETHER__H1_LENGTH && m->content_length > cf->client_max_body_size)
    return 413;
  return 0;
}

/* The virtual server, as nginx's ngx_http_set_virtual_server: the server whose name the request's host (the
 * absolute-form target's, else Host; "" without one) matches among the servers on the accepting address; when
 * none matches, the connection's server: the one SNI chose over TLS, else the address's default. Over TLS with
 * SNI, a host that matches another server than the SNI chose gets 421 Misdirected Request (RFC 9110 section
 * 15.5.20). nginx answers 421 there only when the host's server verifies client certificates, and otherwise
 * serves the host's server under the SNI server's certificate; Tether always refuses, so that a server's
 * requests only come over a handshake made with that server's certificate and TLS settings. Two names of one
 * server are no mismatch. */
static const tether__cf_vserver *request_server(tether__client *c, const tether__config *cf, const tether__h1_msg *m,
                                                int *status) {
  tether__slice h = m->authority.p ? m->authority : m->host;
  int v = tether__vserver_find(cf, c->listener, h.p, h.p ? h.n : 0);
  const char *sni = tether__tls_servername(&tether__client_conn(c)->io);
  int s = sni ? tether__vserver_select(cf, c->listener, sni, strlen(sni)) : -1;
  if (v < 0)
    v = s >= 0 ? s : tether__vserver_default(cf, c->listener);
  else if (s >= 0 && v != s && *status == 0)
    *status = 421;
  return &cf->vservers[v];
}

/* Where a relative redirect points, as nginx's absolute_redirect and port_in_redirect make it: the
 * connection's scheme, the Host (or the address the client reached), and the port unless the scheme's own. */
static void put_origin(tether__buf *b, tether__client *c, const tether__h1_msg *m, const tether__fwd *x) {
  static const tether__key_part host = {.type = TETHER__KEY_HOST};
  struct sockaddr_storage ss;
  int len = sizeof(ss), tls = tether__client_conn(c)->io.filter != NULL, port = 0;
  char ip[64] = "";
  if (uv_tcp_getsockname(&tether__client_conn(c)->io.tcp, (struct sockaddr *)&ss, &len) == 0) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
    char a[INET6_ADDRSTRLEN] = "";
    if (ss.ss_family == AF_INET6) {
      inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
      snprintf(ip, sizeof(ip), "[%s]", a);
      port = ntohs(s6->sin6_port);
    } else {
      inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
      port = ntohs(s4->sin_port);
    }
    if (port == (tls ? 443 : 80)) port = 0;
  }
  tether__put_s(b, tls ? "https://" : "http://");
  size_t start = b->len;
  tether__put_value(b, &host, 1, m, x);
  if (b->len == start) tether__put_s(b, ip);
  if (port) tether__buf_appendf(b, ":%d", port);
}

/* return ...: the text or the redirect, with the request's values (no return: the 404 nginx gives where no
 * location matches). */
static void answer_return(tether__client *c, const tether__cf_return *r, const tether__h1_msg *m, const tether__fwd *x,
                          int head_len) {
  tether__skip_body(c, m, head_len);
  if (r == NULL || r->nvalue == 0) {
    tether__respond(c, r ? r->status : 404, NULL, 1);
    return;
  }
  tether__buf v = {0};
  tether__put_value(&v, r->value, r->nvalue, m, x);
  if (!TETHER__REDIRECT(r->status)) {
    tether__respond(c, r->status, v.data ? v.data : "", 1);
  } else {
    if (v.len && v.data[0] == '/') { /* a relative URL */
      tether__buf abs = {0};
      put_origin(&abs, c, m, x);
      tether__put(&abs, v.data, v.len);
      tether__buf_free(&v);
      v = abs;
    }
    if (!tether__no_ctl(v.data, v.len)) /* raw $arg_ or $cookie_ bytes cannot end the header */
      tether__respond(c, 500, "the redirect's URL has control characters", 0);
    else
      tether__respond_redirect(c, r->status, v.data ? v.data : "");
  }
  tether__buf_free(&v);
}

int tether__request_begin(tether__client *c, const tether__h1_msg *m, int head_len) {
  tether__worker *w = c->w;
  const tether__config *cf = c->rt->cf;
  take_head(c, m);
  tether__real_client(c, cf, m);
  int status = refused(cf, m);
  const tether__cf_vserver *vs = request_server(c, cf, m, &status);
  const tether__cf_location *loc = status ? NULL : tether__route(cf, vs, m, &w->scratch_path, &status);
  /* nginx's phases: a server's return comes before any location, a location's before its auth_jwt */
  const tether__cf_return *ret = vs->ret.status ? &vs->ret : loc && loc->ret.status ? &loc->ret : NULL;
  tether__add_headers_prepare(c, tether__add_headers_of(vs, vs->ret.status ? NULL : loc), m, NULL);
  tether__fwd x = {.cf = cf,
                   .server_name = vs->nnames ? vs->names[0] : "",
                   .loc = loc,
                   .conn_ip = c->ip,
                   .remote_addr = c->rq->peer,
                   .scheme = c->scheme,
                   .upgrade = c->upgrade};
  if (status) {
    if (status != 413) c->keep_alive = 0;
    c->in_len = 0;
    tether__respond(c, status,
                    status == 400 && header_count(m, "authorization") > 1 ? "more than one Authorization header" : NULL,
                    0);
    return 0;
  }
  if (ret || loc == NULL || loc->upstream < 0) {
    answer_return(c, ret, m, &x, head_len);
    return 0;
  }
  if (loc->jwt.enabled) {
    if (tether__authenticate(c, m, &loc->jwt, head_len) < 0) return 0;
    x.claims = w->claims;
    tether__add_headers_prepare(c, tether__add_headers_of(vs, loc), m, x.claims); /* with $jwt_claim_ values */
  }
  c->ups = loc->upstream;
  x.ur = &c->rt->ups[c->ups];
  tether__persist_request(x.ur, m, (const struct sockaddr *)&c->rq->real, x.claims, &c->rq->pr);
  tether__monitor_request(&x.ur->cf->monitor, m, w->scratch_path.data, w->scratch_path.len, &c->rq->mon);
  tether__rewrite_request(m, &x, &c->rq->replay);
  c->replay_ok = 1;
  return 1;
}
