/* The request layer's entry. */
#include "request.h"

#include <string.h>

#include "../answer.h"
#include "../io/tls.h"
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
  copy_text(c->method, sizeof(c->method), m->method);
  copy_text(c->target, sizeof(c->target), m->target);
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
  const char *sni = tether__tls_servername(&c->io);
  int s = sni ? tether__vserver_select(cf, c->listener, sni, strlen(sni)) : -1;
  if (v < 0)
    v = s >= 0 ? s : tether__vserver_default(cf, c->listener);
  else if (s >= 0 && v != s && *status == 0)
    *status = 421;
  return &cf->vservers[v];
}

int tether__request_begin(tether__client *c, const tether__h1_msg *m, int head_len) {
  tether__worker *w = c->w;
  const tether__config *cf = c->rt->cf;
  take_head(c, m);
  tether__real_client(c, cf, m);
  int status = refused(cf, m);
  const tether__cf_vserver *vs = request_server(c, cf, m, &status);
  const tether__cf_location *loc = status ? NULL : tether__route(cf, vs, m, &w->scratch_path, &status);
  if (status) {
    if (status != 413) c->keep_alive = 0;
    c->in_len = 0;
    tether__respond(c, status,
                    status == 400 && header_count(m, "authorization") > 1 ? "more than one Authorization header" : NULL,
                    0);
    return 0;
  }
  const tether_jwt_claims *claims = NULL;
  if (loc && loc->jwt.enabled) {
    if (tether__authenticate(c, m, &loc->jwt, head_len) < 0) return 0;
    claims = w->claims;
  }
  if (loc == NULL || loc->upstream < 0) {
    tether__skip_body(c, m, head_len);
    tether__respond(c, loc ? loc->return_status : 404, loc && loc->return_body[0] ? loc->return_body : NULL, 1);
    return 0;
  }
  c->ups = loc->upstream;
  const tether__upstream_rt *ur = &c->rt->ups[c->ups];
  tether__persist_request(ur, m, (const struct sockaddr *)&c->real, claims, &c->pr);
  tether__fwd x = {.cf = cf,
                   .server_name = vs->nnames ? vs->names[0] : "",
                   .loc = loc,
                   .ur = ur,
                   .claims = claims,
                   .conn_ip = c->ip,
                   .remote_addr = c->peer,
                   .scheme = c->scheme,
                   .upgrade = c->upgrade};
  tether__rewrite_request(m, &x, &c->replay);
  c->replay_ok = 1;
  return 1;
}
