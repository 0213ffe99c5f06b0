/* The request head a server receives: rebuilt from the parsed head, with the balancer's own headers. */
#include "rewrite.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "../conn.h"
#include "../persist/persist.h"
#include "../worker.h"
#include "route.h"

#define CLAIM_VALUE_MAX 512

void tether__put_header(tether__buf *b, tether__slice name, const char *value, size_t vn) {
  tether__buf_reserve(b, name.n + vn + 4);
  memcpy(b->data + b->len, name.p, name.n);
  b->len += name.n;
  b->data[b->len++] = ':';
  b->data[b->len++] = ' ';
  if (vn) memcpy(b->data + b->len, value, vn);
  b->len += vn;
  b->data[b->len++] = '\r';
  b->data[b->len++] = '\n';
  b->data[b->len] = '\0';
}

static void put_lit_header(tether__buf *b, const char *name, const char *value, size_t vn) {
  tether__put_header(b, (tether__slice){name, strlen(name)}, value, vn);
}

/* ---- hop-by-hop ---- */

/* Told apart by length first: most names are none of them. */
static int always_hop(tether__slice n) {
  switch (n.n) {
  case 2:
    return tether__h1_token_eq(n, "te");
  case 7:
    return tether__h1_token_eq(n, "upgrade");
  case 10:
    return tether__h1_token_eq(n, "connection") || tether__h1_token_eq(n, "keep-alive");
  case 14:
    return tether__h1_token_eq(n, "http2-settings");
  case 16:
    return tether__h1_token_eq(n, "proxy-connection");
  case 18:
    return tether__h1_token_eq(n, "proxy-authenticate");
  case 19:
    return tether__h1_token_eq(n, "proxy-authorization");
  default:
    return 0;
  }
}

static int listed_in(tether__slice v, tether__slice name) {
  size_t pos = 0;
  tether__slice t;
  while (tether__h1_next_element(v, &pos, &t)) {
    if (t.n != name.n) continue;
    size_t k = 0;
    while (k < name.n && tolower((unsigned char)t.p[k]) == tolower((unsigned char)name.p[k])) k++;
    if (k == name.n) return 1;
  }
  return 0;
}

/* A Connection value that lists only keep-alive and close (the usual one): 1, and *close when close is one. */
static int plain_connection(tether__slice v, int *close) {
  int has_close = 0;
  size_t pos = 0;
  tether__slice t;
  while (tether__h1_next_element(v, &pos, &t)) {
    if (tether__h1_token_eq(t, "close"))
      has_close = 1;
    else if (!tether__h1_token_eq(t, "keep-alive"))
      return 0;
  }
  *close |= has_close;
  return 1;
}

void tether__hop_init(tether__hop *h, const tether__h1_msg *m) {
  h->m = m;
  h->n = 0;
  h->overflow = 0;
  h->close = 0;
  for (size_t i = 0; i < m->nheaders; i++) {
    if (!tether__h1_token_eq(m->headers[i].name, "connection")) continue;
    /* keep-alive is always hop-by-hop: such a value adds at most "close" to compare names with */
    if (plain_connection(m->headers[i].value, &h->close)) continue;
    if (h->n == TETHER__HOP_MAX)
      h->overflow = 1;
    else
      h->conn[h->n++] = m->headers[i].value;
  }
}

int tether__hop_by_hop(const tether__hop *h, tether__slice name) {
  if (always_hop(name)) return 1;
  if (h->close && tether__h1_token_eq(name, "close")) return 1;
  if (h->n == 0) return 0;
  /* the framing travels with the bytes the balancer forwards as they are: a Connection header cannot take
   * it away (that would desynchronise the next hop), nor the Host an HTTP/1.1 request needs */
  if (tether__h1_token_eq(name, "content-length") || tether__h1_token_eq(name, "transfer-encoding") ||
      tether__h1_token_eq(name, "host"))
    return 0;
  for (int i = 0; i < h->n; i++)
    if (listed_in(h->conn[i], name)) return 1;
  if (h->overflow) /* more Connection headers than gathered: read them all */
    for (size_t i = 0; i < h->m->nheaders; i++)
      if (tether__h1_token_eq(h->m->headers[i].name, "connection") && listed_in(h->m->headers[i].value, name)) return 1;
  return 0;
}

const char *tether__forwarded_proto(const tether__h1_msg *m) {
  tether__slice v = tether__h1_header_get(m, "x-forwarded-proto");
  if (v.p == NULL) return NULL;
  size_t n = 0;
  while (n < v.n && v.p[n] != ',') n++;
  while (n > 0 && (v.p[n - 1] == ' ' || v.p[n - 1] == '\t')) n--;
  tether__slice first = {v.p, n};
  if (tether__h1_token_eq(first, "https")) return "https";
  if (tether__h1_token_eq(first, "http")) return "http";
  return NULL;
}

/* ---- values ---- */

static int is_claim_header(const tether__config *cf, tether__slice name) {
  for (int i = 0; i < cf->nclaim_headers; i++)
    if (tether__h1_token_eq(name, cf->claim_headers[i])) return 1;
  return 0;
}

static const tether__cf_headers *set_headers(const tether__fwd *x) {
  return x->loc && x->loc->headers.defined ? &x->loc->headers : &x->cf->headers;
}

static const tether__cf_set_header *set_header(const tether__cf_headers *hs, tether__slice name) {
  for (int i = 0; i < hs->nset; i++)
    if (tether__h1_token_eq(name, hs->set[i].name)) return &hs->set[i];
  return NULL;
}

static int named(const tether__cf_headers *hs, const char *name) {
  return set_header(hs, (tether__slice){name, strlen(name)}) != NULL;
}

/* The Host without its port, lower-cased (nginx's $host). */
static void put_host(tether__buf *b, tether__slice host) {
  size_t n = host.n;
  if (n && host.p[0] == '[') { /* an IPv6 literal keeps its brackets */
    const char *e = memchr(host.p, ']', n);
    n = e ? (size_t)(e - host.p) + 1 : n;
  } else {
    const char *colon = memchr(host.p, ':', n);
    if (colon) n = (size_t)(colon - host.p);
  }
  tether__buf_reserve(b, n);
  for (size_t i = 0; i < n; i++) b->data[b->len++] = (char)tolower((unsigned char)host.p[i]);
  b->data[b->len] = '\0';
}

static void put_xff(tether__buf *b, const tether__h1_msg *m, const tether__fwd *x) {
  tether__slice xff = tether__h1_header_get(m, "x-forwarded-for");
  if (xff.p && xff.n) {
    tether__put(b, xff.p, xff.n);
    tether__put(b, ", ", 2);
  }
  tether__put_s(b, x->conn_ip);
}

static void put_var(tether__buf *b, const tether__key_part *k, const tether__h1_msg *m, const tether__fwd *x) {
  tether__slice v;
  switch (k->type) {
  case TETHER__KEY_TEXT:
    tether__put_s(b, k->text);
    break;
  case TETHER__KEY_REMOTE_ADDR:
    tether__put_s(b, x->remote_addr);
    break;
  case TETHER__KEY_HTTP:
    v = tether__h1_header_get(m, k->text);
    if (v.p) tether__put(b, v.p, v.n);
    break;
  case TETHER__KEY_COOKIE:
    if (tether__raw_cookie(m, k->text, &v)) tether__put(b, v.p, v.n);
    break;
  case TETHER__KEY_ARG:
    if (tether__query_arg(m->target, k->text, &v)) tether__put(b, v.p, v.n);
    break;
  case TETHER__KEY_REQUEST_URI:
    tether__put(b, m->target.p, m->target.n);
    break;
  case TETHER__KEY_JWT_CLAIM: {
    char claim[CLAIM_VALUE_MAX];
    int n = x->claims ? tether_jwt_claim_text(x->claims, k->text, claim, sizeof(claim)) : -1;
    if (n > 0) tether__put(b, claim, (size_t)n);
    break;
  }
  case TETHER__KEY_HOST: /* nginx's $host: the request's host, else the server's name */
    if (m->host.p)
      put_host(b, m->host);
    else if (x->server_name)
      tether__put_s(b, x->server_name);
    break;
  case TETHER__KEY_SCHEME:
    tether__put_s(b, x->scheme);
    break;
  case TETHER__KEY_PROXY_ADD_XFF:
    put_xff(b, m, x);
    break;
  case TETHER__KEY_METHOD:
    tether__put(b, m->method.p, m->method.n);
    break;
  }
}

void tether__put_value(tether__buf *b, const tether__key_part *parts, int n, const tether__h1_msg *m,
                       const tether__fwd *x) {
  for (int k = 0; k < n; k++) put_var(b, &parts[k], m, x);
}

/* A claim value (or any value from a request) a header can hold: no control characters (a tab or line break
 * would be trimmed, folded or split by the peer's parser, so the header would not say what the token says). */
int tether__no_ctl(const char *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)v[i];
    if (ch < 0x20 || ch == 0x7f) return 0;
  }
  return 1;
}

int tether__claim_headers_ok(const tether__cf_jwt *j, const tether_jwt_claims *claims) {
  for (int i = 0; i < j->nclaim_headers; i++) {
    char v[CLAIM_VALUE_MAX];
    int n = tether_jwt_claim_text(claims, j->claim_headers[i].claim, v, sizeof(v));
    if (n == TETHER_ENOTFOUND) continue; /* no such claim: no header */
    if (n < 0 || !tether__no_ctl(v, (size_t)n)) return 0;
  }
  return 1;
}

static void put_claim_headers(tether__buf *b, const tether__cf_jwt *j, const tether_jwt_claims *claims) {
  for (int i = 0; i < j->nclaim_headers; i++) {
    char v[CLAIM_VALUE_MAX];
    int n = tether_jwt_claim_text(claims, j->claim_headers[i].claim, v, sizeof(v));
    if (n >= 0 && tether__no_ctl(v, (size_t)n)) put_lit_header(b, j->claim_headers[i].header, v, (size_t)n);
  }
}

/* ---- the request ---- */

static void put_client_headers(const tether__h1_msg *m, const tether__fwd *x, const tether__cf_headers *hs,
                               tether__buf *b) {
  const tether__cf_upstream *u = x->ur->cf;
  int strip = u->persist.kind == TETHER__PERSIST_COOKIE && u->persist.indirect;
  tether__hop hop;
  tether__hop_init(&hop, m);
  for (size_t i = 0; i < m->nheaders; i++) {
    const tether__h1_header *h = &m->headers[i];
    if (tether__hop_by_hop(&hop, h->name)) continue;
    /* the balancer says who the client is and how it came */
    if (tether__h1_token_eq(h->name, "x-forwarded-for") || tether__h1_token_eq(h->name, "x-forwarded-proto") ||
        tether__h1_token_eq(h->name, "x-forwarded-host") || tether__h1_token_eq(h->name, "forwarded"))
      continue;
    if (is_claim_header(x->cf, h->name)) continue;         /* only the balancer speaks for the token, everywhere */
    if (set_header(hs, h->name)) continue;                 /* proxy_set_header replaces it (or removes it) */
    if (strip && tether__h1_token_eq(h->name, "cookie")) { /* indirect: the server never sees our cookie */
      char out[8192];
      size_t n = tether__persist_strip_cookie(x->ur, h->value, out, sizeof(out));
      if (n) put_lit_header(b, "Cookie", out, n);
      continue;
    }
    tether__put_header(b, h->name, h->value.p, h->value.n);
  }
}

static void put_set_headers(const tether__h1_msg *m, const tether__fwd *x, const tether__cf_headers *hs,
                            tether__buf *b) {
  for (int i = 0; i < hs->nset; i++) {
    const tether__cf_set_header *sh = &hs->set[i];
    if (sh->nvalue == 0) continue;
    size_t start = b->len;
    tether__put_s(b, sh->name);
    tether__put(b, ": ", 2);
    size_t vstart = b->len;
    tether__put_value(b, sh->value, sh->nvalue, m, x);
    if (b->len == vstart) { /* nginx: a value that comes out empty sends no header */
      b->len = start;
      continue;
    }
    tether__put(b, "\r\n", 2);
  }
}

void tether__rewrite_request(const tether__h1_msg *m, const tether__fwd *x, tether__buf *b) {
  const tether__cf_headers *hs = set_headers(x);
  b->len = 0;
  tether__put(b, m->method.p, m->method.n);
  tether__put(b, " ", 1);
  tether__put(b, m->target.p, m->target.n);
  tether__put_s(b, m->version_minor ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n");
  put_client_headers(m, x, hs, b);
  put_set_headers(m, x, hs, b);
  if (!named(hs, "X-Forwarded-For")) {
    tether__put_s(b, "X-Forwarded-For: ");
    put_xff(b, m, x);
    tether__put(b, "\r\n", 2);
  }
  if (x->claims) put_claim_headers(b, &x->loc->jwt, x->claims);
  if (!named(hs, "X-Forwarded-Proto")) {
    tether__put_s(b, "X-Forwarded-Proto: ");
    tether__put_s(b, x->scheme);
    tether__put(b, "\r\n", 2);
  }
  if (m->host.p && !named(hs, "X-Forwarded-Host")) put_lit_header(b, "X-Forwarded-Host", m->host.p, m->host.n);
  if (x->cf->add_forwarded && !named(hs, "Forwarded")) {
    int v6 = strchr(x->remote_addr, ':') != NULL;
    tether__buf_appendf(b, "Forwarded: for=%s%s%s;proto=%s", v6 ? "\"[" : "", x->remote_addr, v6 ? "]\"" : "",
                        x->scheme);
    if (m->host.p) tether__buf_appendf(b, ";host=\"%.*s\"", (int)m->host.n, m->host.p);
    tether__put(b, "\r\n", 2);
  }
  if (x->upgrade) {
    tether__slice up = tether__h1_header_get(m, "upgrade");
    tether__put_s(b, "Connection: upgrade\r\n");
    put_lit_header(b, "Upgrade", up.p, up.n);
  } else if (x->ur->cf->keepalive != 0 && m->version_minor == 1) {
    /* HTTP/1.1 keep-alive is the default: nothing to add */
  } else {
    tether__put_s(b, "Connection: close\r\n");
  }
  tether__put(b, "\r\n", 2);
}

/* ---- the response ---- */

/* add_header's lines, expanded per request and put on each response its status allows. */

const tether__cf_add_headers *tether__add_headers_of(const tether__cf_vserver *vs, const tether__cf_location *loc) {
  return loc && loc->add_headers.defined ? &loc->add_headers : &vs->add_headers;
}

void tether__add_headers_prepare(tether__client *c, const tether__cf_add_headers *h, const tether__h1_msg *m,
                                 const tether_jwt_claims *claims) {
  static const tether__h1_msg none = {.method = {"", 0}, .target = {"", 0}, .path = {"", 0}};
  tether__buf *b = &c->added;
  b->len = 0;
  c->added_always = 0;
  c->added_ready = 1;
  if (h->nadd == 0) return;
  const char *tls_scheme =
      tether__client_conn(c)->io.filter ? "https" : "http"; /* before any request: the connection's */
  tether__fwd x = {.claims = claims, .conn_ip = c->ip, .remote_addr = c->rq ? c->rq->peer : c->ip, .scheme = c->scheme};
  if (x.scheme == NULL) x.scheme = tls_scheme;
  int line = 0;
  for (int i = 0; i < h->nadd; i++) {
    const tether__cf_add_header *a = &h->add[i];
    size_t start = b->len;
    tether__put_s(b, a->name);
    tether__put(b, ": ", 2);
    size_t vstart = b->len;
    tether__put_value(b, a->value, a->nvalue, m ? m : &none, &x);
    /* nginx: an empty value adds nothing; one a request filled with control characters cannot be sent */
    if (b->len == vstart || !tether__no_ctl(b->data + vstart, b->len - vstart)) {
      b->len = start;
      continue;
    }
    tether__put(b, "\r\n", 2);
    if (a->always) c->added_always |= 1u << line;
    line++;
  }
}

/* nginx's ngx_http_headers_filter: the statuses every add_header goes with. */
static int plain_status(int status) {
  switch (status) {
  case 200:
  case 201:
  case 204:
  case 206:
  case 301:
  case 302:
  case 303:
  case 304:
  case 307:
  case 308:
    return 1;
  default:
    return 0;
  }
}

void tether__add_headers_put(tether__client *c, int status, tether__buf *b) {
  if (!c->added_ready) { /* no request was parsed (a 400, a 408): the address's default server's */
    const tether__config *cf = (c->rt ? c->rt : c->w->rt)->cf;
    tether__add_headers_prepare(c, &cf->vservers[tether__vserver_default(cf, c->listener)].add_headers, NULL, NULL);
  }
  if (c->added.len == 0) return;
  if (plain_status(status)) {
    tether__put(b, c->added.data, c->added.len);
    return;
  }
  const char *p = c->added.data, *end = p + c->added.len;
  for (int line = 0; p < end; line++) {
    const char *nl = memchr(p, '\n', (size_t)(end - p)); /* every line ends with \r\n: values have no \n */
    size_t n = (size_t)(nl - p) + 1;
    if (c->added_always & (1u << line)) tether__put(b, p, n);
    p += n;
  }
}

/* The sticky cookie to set with this response, unless the server set it itself (`preserve`). */
static char *sticky_cookie(const tether__client *c, const tether__upstream_rt *ur, const tether__h1_msg *m) {
  const tether__cf_persist *cp = &ur->cf->persist;
  char *sticky =
      tether__persist_set_cookie(ur, &c->rq->pr, c->srv, tether_now_ms(), tether__client_conn(c)->io.filter != NULL);
  if (sticky == NULL || !cp->preserve) return sticky;
  size_t nl = strlen(cp->cookie);
  for (size_t i = 0; i < m->nheaders; i++)
    if (tether__h1_token_eq(m->headers[i].name, "set-cookie") && m->headers[i].value.n > nl &&
        memcmp(m->headers[i].value.p, cp->cookie, nl) == 0 && m->headers[i].value.p[nl] == '=') {
      free(sticky);
      return NULL;
    }
  return sticky;
}

void tether__rewrite_response(tether__client *c, const tether__h1_msg *m, tether__buf *b) {
  tether__put_s(b, "HTTP/1.1 ");
  tether__put_uint(b, (unsigned)m->status);
  tether__put(b, " ", 1);
  tether__put(b, m->reason.p, m->reason.n);
  tether__put(b, "\r\n", 2);
  const tether__upstream_rt *ur = c->rt ? &c->rt->ups[c->ups] : NULL;
  char *sticky = ur && m->status >= 200 && c->srv >= 0 ? sticky_cookie(c, ur, m) : NULL;
  int nocache = sticky && ur->cf->persist.nocache;
  tether__hop hop;
  tether__hop_init(&hop, m);
  for (size_t i = 0; i < m->nheaders; i++) {
    const tether__h1_header *h = &m->headers[i];
    if (nocache && tether__h1_token_eq(h->name, "cache-control")) continue;
    int upgrade = m->status == 101 && tether__h1_token_eq(h->name, "upgrade");
    if (!upgrade && tether__hop_by_hop(&hop, h->name)) continue;
    tether__put_header(b, h->name, h->value.p, h->value.n);
  }
  if (sticky) {
    put_lit_header(b, "Set-Cookie", sticky, strlen(sticky));
    /* a shared cache must not hand one client's binding to everyone */
    if (nocache) tether__put_s(b, "Cache-Control: private\r\n");
    free(sticky);
  }
  if (m->status >= 200 || m->status == 101) tether__add_headers_put(c, m->status, b);
  if (m->status == 101) {
    tether__put_s(b, "Connection: upgrade\r\n");
  } else if (m->status >= 200) {
    if (m->framing == TETHER__H1_UNTIL_CLOSE) c->keep_alive = 0;
    if (!c->keep_alive)
      tether__put_s(b, "Connection: close\r\n");
    else if (c->version_minor == 0)
      tether__put_s(b, "Connection: keep-alive\r\n");
  }
  tether__put(b, "\r\n", 2);
  if (m->status >= 200 || m->status == 101)
    c->resp_started = 1; /* after a 1xx a failure still gets its 502 */
  else
    c->sent_interim = 1;
}
