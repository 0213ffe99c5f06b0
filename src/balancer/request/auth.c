/* Edge authentication. */
#include "auth.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../answer.h"
#include "../worker.h"
#include "rewrite.h"
#include "tether/session.h"

/* The token of a request: "Authorization: Bearer ..." or, with auth_jwt_cookie, that cookie. */
static int bearer_token(const tether__h1_msg *m, const tether__cf_jwt *j, char *out, size_t cap) {
  tether__slice a = tether__h1_header_get(m, "authorization");
  if (a.p && a.n > 7 && strncasecmp(a.p, "Bearer ", 7) == 0) {
    size_t i = 7;
    while (i < a.n && a.p[i] == ' ') i++;
    if (a.n - i == 0 || a.n - i >= cap) return a.n - i >= cap ? -2 : -1;
    memcpy(out, a.p + i, a.n - i);
    out[a.n - i] = '\0';
    return (int)(a.n - i);
  }
  if (j->cookie[0]) {
    for (size_t h = 0; h < m->nheaders; h++) {
      if (!tether__h1_token_eq(m->headers[h].name, "cookie")) continue;
      char hdr[8192];
      size_t hl = m->headers[h].value.n < sizeof(hdr) - 1 ? m->headers[h].value.n : sizeof(hdr) - 1;
      memcpy(hdr, m->headers[h].value.p, hl);
      hdr[hl] = '\0';
      int n = tether_cookie_get(hdr, j->cookie, out, cap);
      if (n > 0) return n;
      if (n == TETHER_E2BIG) return -2;
    }
  }
  return -1;
}

#define NO_TOKEN 1  /* the request carried none */
#define BAD_CLAIM 2 /* verified, but a claim no header can carry */

static void refuse(tether__client *c, const tether__cf_jwt *j, int rc) {
  char extra[512];
  if (rc == NO_TOKEN) { /* RFC 6750: no error code when the request carried no token */
    snprintf(extra, sizeof(extra), "WWW-Authenticate: Bearer realm=\"%s\"\r\n", j->realm);
    tether__respond_with(c, 401, "application/json", extra, "{\"error\":\"Invalid token\"}");
  } else if (rc == TETHER_JWT_EAUDIENCE) {
    snprintf(extra, sizeof(extra),
             "WWW-Authenticate: Bearer realm=\"%s\", error=\"insufficient_scope\", error_description=\"%s\"\r\n",
             j->realm, tether_jwt_message(rc));
    tether__respond_with(c, 403, "application/json", extra, "{\"error\":\"Forbidden\"}");
  } else {
    snprintf(extra, sizeof(extra),
             "WWW-Authenticate: Bearer realm=\"%s\", error=\"invalid_token\", error_description=\"%s\"\r\n", j->realm,
             rc == BAD_CLAIM ? "a claim cannot be carried in a header" : tether_jwt_message(rc));
    tether__respond_with(c, 401, "application/json", extra, "{\"error\":\"Invalid token\"}");
  }
}

int tether__authenticate(tether__client *c, const tether__h1_msg *m, const tether__cf_jwt *j, int head_len) {
  tether__worker *w = c->w;
  char *token = w->jwt_token;
  int tl = bearer_token(m, j, token, sizeof(w->jwt_token));
  int rc = tl == -1   ? NO_TOKEN
           : tl == -2 ? TETHER_JWT_ETOOLARGE
                      : tether_jwt_verify(j->verifier, token, (size_t)tl, w->claims);
  if (rc == 0 && !tether__claim_headers_ok(j, w->claims)) rc = BAD_CLAIM;
  int slot = rc == 0                        ? 0
             : rc == NO_TOKEN               ? TETHER__JWT_MISSING
             : rc == BAD_CLAIM              ? TETHER__JWT_BAD_CLAIM
             : (rc <= -1001 && rc >= -1017) ? -rc - 1000
                                            : TETHER__JWT_OTHER;
  atomic_fetch_add_explicit(&w->jwt_results[slot], 1, memory_order_relaxed);
  if (rc == 0) return 0;
  tether__skip_body(c, m, head_len);
  refuse(c, j, rc);
  return -1;
}
