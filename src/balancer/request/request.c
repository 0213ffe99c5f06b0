/* The request layer's entry. */
#include "request.h"

#include <string.h>

#include "../answer.h"
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

int tether__request_begin(tether__client *c, const tether__h1_msg *m, int head_len) {
  tether__worker *w = c->w;
  const tether__config *cf = c->rt->cf;
  take_head(c, m);
  tether__real_client(c, cf, m);
  int status = refused(cf, m);
  const tether__cf_location *loc = status ? NULL : tether__route(cf, m, &w->scratch_path, &status);
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
  tether__persist_request(ur, m, (const struct sockaddr *)&c->rq->real, claims, &c->rq->pr);
  tether__monitor_request(&ur->cf->monitor, m, w->scratch_path.data, w->scratch_path.len, &c->rq->mon);
  tether__fwd x = {.cf = cf,
                   .loc = loc,
                   .ur = ur,
                   .claims = claims,
                   .conn_ip = c->ip,
                   .remote_addr = c->rq->peer,
                   .scheme = c->scheme,
                   .upgrade = c->upgrade};
  tether__rewrite_request(m, &x, &c->rq->replay);
  c->replay_ok = 1;
  return 1;
}
