/* add_header's lines, expanded per request and put on each response its status allows. */
#include "add_header.h"

#include "../conn.h"
#include "../worker.h"
#include "rewrite.h"

const tether__cf_add_headers *tether__add_headers_of(const tether__config *cf, const tether__cf_location *loc) {
  return loc && loc->add_headers.defined ? &loc->add_headers : &cf->add_headers;
}

/* What a header line can carry: no control characters but tab ($arg_ and $cookie_ values are raw bytes). */
static int value_ok(const char *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)v[i] < 0x20 && v[i] != '\t') || v[i] == 0x7f) return 0;
  return 1;
}

void tether__add_headers_prepare(tether__client *c, const tether__cf_add_headers *h, const tether__h1_msg *m,
                                 const tether_jwt_claims *claims) {
  static const tether__h1_msg none = {.method = {"", 0}, .target = {"", 0}, .path = {"", 0}};
  tether__buf *b = &c->added;
  b->len = 0;
  c->added_always = 0;
  c->added_ready = 1;
  if (h->nadd == 0) return;
  tether__fwd x = {.claims = claims,
                   .conn_ip = c->ip,
                   .remote_addr = c->peer,
                   .scheme = c->scheme ? c->scheme : c->io.filter ? "https" : "http"};
  int line = 0;
  for (int i = 0; i < h->nadd; i++) {
    const tether__cf_add_header *a = &h->add[i];
    size_t start = b->len;
    tether__put_s(b, a->name);
    tether__put(b, ": ", 2);
    size_t vstart = b->len;
    tether__put_value(b, a->value, a->nvalue, m ? m : &none, &x);
    if (b->len == vstart || !value_ok(b->data + vstart, b->len - vstart)) { /* nginx: an empty value adds nothing */
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
  case 200: case 201: case 204: case 206: case 301: case 302: case 303: case 304: case 307: case 308:
    return 1;
  default:
    return 0;
  }
}

void tether__add_headers_put(tether__client *c, int status, tether__buf *b) {
  if (!c->added_ready) tether__add_headers_prepare(c, &(c->rt ? c->rt : c->w->rt)->cf->add_headers, NULL, NULL);
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
