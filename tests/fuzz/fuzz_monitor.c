/* libFuzzer harness: the session-loss monitor (persist/monitor.c): the request's Cookie header, its path,
 * and the response's Set-Cookie headers, one per line:
 *   line 1: the Cookie header value; line 2: the path; every further line: a Set-Cookie value.
 * Each Set-Cookie line is also read as a cookie date. Values may be JWTs (compared by their jti or sid claim,
 * read from the base64url payload; the claim finder also runs on the path line as a raw payload). Checks: the
 * outcome is one of the four, it does not depend on anything but its inputs, a session is never replaced
 * without a cookie or started with one, a claim found lies within its input, and a date that parses lies
 * between 1601 and year 10000. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "persist/monitor.c"

#define MAX_LINES 32
#define Y1601_MS (-11644473600000LL)
#define Y10000_MS 253402300800000LL

static tether__h1_header header(const char *name, const char *p, size_t n) {
  return (tether__h1_header){{name, strlen(name)}, {p, n}};
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = (const char *)data, *end = p + size;
  tether__slice lines[MAX_LINES + 2];
  int n = 0;
  while (p <= end && n < MAX_LINES + 2) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *e = nl ? nl : end;
    lines[n++] = (tether__slice){p, (size_t)(e - p)};
    p = e + 1;
  }
  if (n < 2) return 0;
  tether__cf_monitor mc;
  memset(&mc, 0, sizeof(mc));
  strcpy(mc.cookie, "connect.sid");
  strcpy(mc.expected[0], "/login");
  strcpy(mc.expected[1], "=/logout");
  mc.nexpected = 2;
  static tether__h1_msg req, resp;
  req.nheaders = 1;
  req.headers[0] = header("Cookie", lines[0].p, lines[0].n);
  resp.nheaders = 0;
  for (int i = 2; i < n; i++) {
    resp.headers[resp.nheaders++] = header(i % 3 ? "Set-Cookie" : "set-cookie", lines[i].p, lines[i].n);
    int64_t ms;
    if (tether__cookie_date(lines[i].p, lines[i].n, &ms) == 0 && (ms < Y1601_MS || ms >= Y10000_MS)) abort();
  }
  /* the JWT claim finder, on the path line as a raw payload: what it finds lies within its input */
  tether__slice claim;
  if (top_level_string(lines[1].p, lines[1].n, "jti", &claim) == 1 &&
      (claim.p < lines[1].p || claim.p + claim.n > lines[1].p + lines[1].n))
    abort();
  tether__monitor_req mr, again;
  tether__monitor_request(&mc, &req, lines[1].p, lines[1].n, &mr);
  tether__monitor_request(&mc, &req, lines[1].p, lines[1].n, &again);
  if (memcmp(&mr, &again, sizeof(mr)) != 0 || !mr.on) abort();
  int ev = tether__monitor_response(&mc, &mr, &resp, 1796000000000LL);
  if (ev != TETHER__SESS_KEPT && ev != TETHER__SESS_STARTED && ev != TETHER__SESS_REPLACED &&
      ev != TETHER__SESS_EXPECTED)
    abort();
  if (ev != tether__monitor_response(&mc, &mr, &resp, 1796000000000LL)) abort();
  if (!mr.presented && (ev == TETHER__SESS_REPLACED || ev == TETHER__SESS_EXPECTED)) abort();
  if (mr.presented && ev == TETHER__SESS_STARTED) abort();
  if (ev == TETHER__SESS_EXPECTED && !mr.expected) abort();
  return 0;
}
