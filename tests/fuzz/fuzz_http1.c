/* libFuzzer harness for the balancer's HTTP/1.1 parser. The first byte picks request, response or
 * chunked body; besides not crashing, the parser must agree with itself: a head found in a prefix of the
 * input is the head found in the whole, a body fed byte by byte ends where it ends fed at once, and a
 * request's path lies in its target (or is the static "/"), its authority in the head, and both are usable. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/balancer/http1.c"
#include "../../src/balancer/uri.c"

static const tether__h1_limits lim = {.max_head = 4096, .max_uri = 1024, .max_headers = 50};

static void check_body(const tether__h1_msg *m, const char *p, size_t n) {
  tether__h1_body a, b;
  tether__h1_body_init(&a, m);
  tether__h1_body_init(&b, m);
  int64_t whole = tether__h1_body_feed(&a, p, n);
  int64_t bytewise = 0;
  for (size_t i = 0; i < n && !b.done; i++) {
    int64_t r = tether__h1_body_feed(&b, p + i, 1);
    if (r < 0) {
      bytewise = r;
      break;
    }
    bytewise += r;
  }
  if (m->framing == TETHER__H1_UNTIL_CLOSE) return;
  if (whole >= 0 && bytewise >= 0 && (whole != bytewise || a.done != b.done)) abort();
  if ((whole < 0) != (bytewise < 0)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int mode = data[0] % 3;
  const char *p = (const char *)data + 1;
  size_t n = size - 1;
  char *copy = malloc(n ? n : 1); /* exact-size copy so ASan sees any read past the end */
  memcpy(copy, p, n);
  static tether__h1_msg m, m2;
  if (mode == 2) {
    tether__h1_msg fake = {.framing = TETHER__H1_CHUNKED};
    check_body(&fake, copy, n);
    free(copy);
    return 0;
  }
  int r = mode == 0 ? tether__h1_parse_request(copy, n, &lim, &m) : tether__h1_parse_response(copy, n, &lim, 0, &m);
  if (r > 0) {
    if ((size_t)r > n || m.head_len != (size_t)r) abort();
    for (size_t i = 0; i < m.nheaders; i++)
      if (m.headers[i].name.n == 0 || m.headers[i].name.p < copy ||
          m.headers[i].value.p + m.headers[i].value.n > copy + r)
        abort();
    if (mode == 0) {
      /* path: in the target, or the static "/" of an absolute-form target without one; authority: in
       * the target or the Host value; both then normalize without reading past them */
      int in_target = m.path.p >= m.target.p && m.path.p + m.path.n <= m.target.p + m.target.n;
      if (m.path.n == 0 || (!in_target && !(m.path.n == 1 && m.path.p[0] == '/'))) abort();
      if (m.authority.p && (m.authority.p < copy || m.authority.p + m.authority.n > copy + r)) abort();
      if (m.target.p[0] != '/' && m.target.p[0] != '*' && m.authority.n == 0) abort();
      char norm[1024];
      int u = tether__uri_normalize(m.path.p, m.path.n, norm, sizeof(norm));
      if (u > 0 && norm[0] != '/') abort();
    }
    check_body(&m, copy + r, n - (size_t)r);
    /* a prefix either needs more bytes, or finds the same head, or is refused for a reason the whole
     * input is refused for too (limits apply to what has arrived) */
    size_t cut = n / 2;
    int r2 =
        mode == 0 ? tether__h1_parse_request(copy, cut, &lim, &m2) : tether__h1_parse_response(copy, cut, &lim, 0, &m2);
    if (r2 > 0 && r2 != r) abort();
  }
  free(copy);
  return 0;
}
