/* The session-loss monitor: a request's session cookie against the Set-Cookie of its response. */
#include "monitor.h"

#include <string.h>

#include "../../lib/util.h"
#include "persist.h"

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull
#define JWT_ID_SALT 0x6a77742d6a746921ull /* a token's id never hashes like the same text as a whole cookie */

static tether__slice trim(const char *p, size_t n) {
  while (n && (*p == ' ' || *p == '\t')) p++, n--;
  while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
  return (tether__slice){p, n};
}

static int lower_eq(tether__slice s, const char *lit) {
  size_t n = strlen(lit);
  if (s.n != n) return 0;
  for (size_t i = 0; i < n; i++)
    if ((s.p[i] | 0x20) != lit[i]) return 0;
  return 1;
}

/* A value without the double quotes RFC 6265 allows around it. */
static tether__slice unquote(tether__slice v) {
  if (v.n >= 2 && v.p[0] == '"' && v.p[v.n - 1] == '"') return (tether__slice){v.p + 1, v.n - 2};
  return v;
}

static uint64_t fnv1a(const char *p, size_t n) {
  uint64_t h = FNV_OFFSET;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * FNV_PRIME;
  return h;
}

/* A compact JWS (RFC 7515): HEADER.PAYLOAD.SIGNATURE, each non-empty base64url, the header a JSON object
 * ("eyJ" is base64url for '{"'). The payload's part is returned in *payload. */
static int is_compact_jws(tether__slice v, tether__slice *payload) {
  if (v.n < 8 || memcmp(v.p, "eyJ", 3) != 0) return 0;
  size_t dots[2], ndots = 0;
  for (size_t i = 0; i < v.n; i++) {
    char c = v.p[i];
    if (c == '.') {
      if (ndots == 2) return 0;
      dots[ndots++] = i;
    } else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
      return 0;
    }
  }
  if (ndots != 2 || dots[1] == dots[0] + 1 || dots[1] + 1 == v.n) return 0;
  *payload = (tether__slice){v.p + dots[0] + 1, dots[1] - dots[0] - 1};
  return 1;
}

/* ---- a JWT's top-level claims, without allocating ---- */

static size_t skip_ws(const char *p, size_t n, size_t i) {
  while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')) i++;
  return i;
}

/* A string at p[i] == '"': the index past its closing quote (escapes skipped, not decoded), or 0. */
static size_t skip_string(const char *p, size_t n, size_t i) {
  for (i++; i < n; i++) {
    if (p[i] == '\\')
      i++;
    else if (p[i] == '"')
      return i + 1;
  }
  return 0;
}

/* A value at p[i]: the index past it, or 0. Objects and arrays are skipped by their brackets (strings inside
 * them too); scalars run to the next delimiter. Not a validator: the application decides whether the token is
 * valid; this only finds its claims. */
static size_t skip_value(const char *p, size_t n, size_t i) {
  if (i >= n) return 0;
  if (p[i] == '"') return skip_string(p, n, i);
  if (p[i] != '{' && p[i] != '[') {
    size_t s = i;
    while (i < n && p[i] != ',' && p[i] != '}' && p[i] != ']' && p[i] != ' ' && p[i] != '\t' && p[i] != '\n' &&
           p[i] != '\r' && p[i] != '"' && p[i] != '{' && p[i] != '[' && p[i] != ':')
      i++;
    return i > s ? i : 0;
  }
  size_t depth = 0;
  while (i < n) {
    if (p[i] == '"') {
      i = skip_string(p, n, i);
      if (i == 0) return 0;
      continue;
    }
    if (p[i] == '{' || p[i] == '[') depth++;
    if ((p[i] == '}' || p[i] == ']') && --depth == 0) return i + 1;
    i++;
  }
  return 0;
}

/* The string value of the top-level member called name (3 bytes, written without escapes) of the object p[0..n)
 * into *v: 1; 0 when it is absent or not a string; -1 when the text is not an object or has it twice. */
static int top_level_string(const char *p, size_t n, const char *name, tether__slice *v) {
  size_t i = skip_ws(p, n, 0);
  int found = 0;
  if (i >= n || p[i] != '{') return -1;
  i = skip_ws(p, n, i + 1);
  if (i < n && p[i] == '}') return skip_ws(p, n, i + 1) == n ? 0 : -1;
  for (;;) {
    if (i >= n || p[i] != '"') return -1;
    size_t k = i + 1, e = skip_string(p, n, i);
    if (e == 0) return -1;
    int is_name = e - 1 - k == 3 && memcmp(p + k, name, 3) == 0;
    i = skip_ws(p, n, e);
    if (i >= n || p[i] != ':') return -1;
    i = skip_ws(p, n, i + 1);
    size_t vs = i;
    i = skip_value(p, n, i);
    if (i == 0) return -1;
    if (is_name) {
      if (found) return -1; /* which one would the application read? */
      found = p[vs] == '"' ? 1 : 2;
      if (found == 1) *v = (tether__slice){p + vs + 1, i - vs - 2};
    }
    i = skip_ws(p, n, i);
    if (i < n && p[i] == ',') {
      i = skip_ws(p, n, i + 1);
      continue;
    }
    if (i >= n || p[i] != '}' || skip_ws(p, n, i + 1) != n) return -1;
    return found == 1;
  }
}

/* The hash of a JWT session cookie's session id: its "jti" claim (libtether's jwt: store), else its "sid"
 * (OpenID Connect's session id), non-empty strings at the top level of the payload. The signature is not
 * checked: this only classifies, and a forged token can only change how its own response is counted. 0 when
 * the value is not such a token. */
static int jwt_session_id_hash(tether__slice v, uint64_t *h) {
  tether__slice b64, id = {NULL, 0};
  if (!is_compact_jws(v, &b64)) return 0;
  char payload[TETHER__MONITOR_JWT_MAX];
  int n = tether__base64url_decode_quiet(b64.p, b64.n, (uint8_t *)payload, sizeof(payload));
  if (n <= 0 || memchr(payload, '\0', (size_t)n) != NULL) return 0;
  int r = top_level_string(payload, (size_t)n, "jti", &id);
  if (r == 0) r = top_level_string(payload, (size_t)n, "sid", &id);
  if (r != 1 || id.n == 0) return 0;
  *h = fnv1a(id.p, id.n) ^ JWT_ID_SALT;
  return 1;
}

uint64_t tether__session_id_hash(tether__slice value) {
  tether__slice v = unquote(value);
  uint64_t h;
  if (jwt_session_id_hash(v, &h)) return h;
  size_t skip = 0;
  if (v.n >= 2 && v.p[0] == 's' && v.p[1] == ':')
    skip = 2;
  else if (v.n >= 4 && v.p[0] == 's' && v.p[1] == '%' && v.p[2] == '3' && (v.p[3] | 0x20) == 'a')
    skip = 4;
  if (skip) { /* express-session's signed value: the id is what comes before the signature's '.' */
    size_t dot = v.n;
    while (dot > skip && v.p[dot - 1] != '.') dot--;
    if (dot > skip + 1) v = (tether__slice){v.p + skip, dot - 1 - skip};
  }
  return fnv1a(v.p, v.n);
}

void tether__monitor_request(const tether__cf_monitor *mc, const tether__h1_msg *m, const char *path, size_t path_len,
                             tether__monitor_req *mr) {
  memset(mr, 0, sizeof(*mr));
  if (mc->cookie[0] == '\0') return;
  mr->on = 1;
  tether__slice v;
  if (tether__raw_cookie(m, mc->cookie, &v) && unquote(v).n > 0) {
    mr->presented = 1;
    mr->id = tether__session_id_hash(v);
  }
  for (int i = 0; i < mc->nexpected && !mr->expected; i++) {
    const char *e = mc->expected[i];
    int exact = e[0] == '=';
    e += exact;
    size_t n = strlen(e);
    mr->expected = (exact ? n == path_len : n <= path_len) && memcmp(path, e, n) == 0;
  }
}

/* ---- Set-Cookie ---- */

/* RFC 6265 section 5.2.2: "-"? DIGIT+, at most zero means the cookie expires now. -1: not a valid value. */
static int max_age_expired(tether__slice v) {
  size_t i = v.n && v.p[0] == '-';
  if (i == v.n) return -1;
  int nonzero = 0;
  for (size_t k = i; k < v.n; k++) {
    if (v.p[k] < '0' || v.p[k] > '9') return -1;
    nonzero |= v.p[k] != '0';
  }
  return i == 1 || !nonzero;
}

/* Whether the attributes after a Set-Cookie's name=value delete the cookie: Max-Age (the last valid one)
 * wins over Expires (the last parsable one), as RFC 6265 section 5.3 says. */
static int attributes_delete(const char *p, size_t n, int64_t now_ms) {
  int max_age = -1, expires = -1;
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    while (j < n && p[j] != ';') j++;
    tether__slice a = trim(p + i, j - i);
    const char *eq = memchr(a.p, '=', a.n);
    if (eq) {
      tether__slice name = trim(a.p, (size_t)(eq - a.p));
      tether__slice val = trim(eq + 1, a.n - (size_t)(eq - a.p) - 1);
      int64_t ms;
      if (lower_eq(name, "max-age")) {
        int r = max_age_expired(val);
        if (r >= 0) max_age = r;
      } else if (lower_eq(name, "expires") && tether__cookie_date(val.p, val.n, &ms) == 0) {
        expires = ms <= now_ms;
      }
    }
    i = j + 1;
  }
  return max_age >= 0 ? max_age : expires == 1;
}

/* A Set-Cookie value: 1 when it is for the cookie called name, with its value and whether it deletes it. */
static int set_cookie_for(tether__slice v, const char *name, int64_t now_ms, tether__slice *value, int *deleted) {
  const char *semi = memchr(v.p, ';', v.n);
  size_t pair = semi ? (size_t)(semi - v.p) : v.n;
  const char *eq = memchr(v.p, '=', pair);
  if (eq == NULL) return 0; /* RFC 6265 section 5.2: not a cookie */
  tether__slice n = trim(v.p, (size_t)(eq - v.p));
  if (n.n != strlen(name) || memcmp(n.p, name, n.n) != 0) return 0;
  *value = trim(eq + 1, pair - (size_t)(eq - v.p) - 1);
  *deleted = unquote(*value).n == 0 || (semi && attributes_delete(semi + 1, v.n - pair - 1, now_ms));
  return 1;
}

int tether__monitor_response(const tether__cf_monitor *mc, const tether__monitor_req *mr, const tether__h1_msg *resp,
                             int64_t now_ms) {
  if (!mr->on) return TETHER__SESS_KEPT;
  int found = 0, deleted = 0;
  tether__slice set = {NULL, 0};
  for (size_t i = 0; i < resp->nheaders; i++) {
    if (!tether__h1_token_eq(resp->headers[i].name, "set-cookie")) continue;
    tether__slice v;
    int del;
    if (set_cookie_for(resp->headers[i].value, mc->cookie, now_ms, &v, &del)) found = 1, set = v, deleted = del;
  }
  if (!found || deleted) return TETHER__SESS_KEPT;
  if (!mr->presented) return TETHER__SESS_STARTED;
  if (tether__session_id_hash(set) == mr->id) return TETHER__SESS_KEPT;
  return mr->expected ? TETHER__SESS_EXPECTED : TETHER__SESS_REPLACED;
}

/* ---- cookie-date (RFC 6265 section 5.1.1) ---- */

static int is_delimiter(unsigned char c) {
  return c == 0x09 || (c >= 0x20 && c <= 0x2f) || (c >= 0x3b && c <= 0x40) || (c >= 0x5b && c <= 0x60) ||
         (c >= 0x7b && c <= 0x7e);
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* min to max digits at t[*i] into *v, not followed by another digit. */
static int digits(const char *t, size_t n, size_t *i, int min, int max, int *v) {
  int k = 0;
  *v = 0;
  while (*i < n && k < max && is_digit(t[*i])) *v = *v * 10 + (t[(*i)++] - '0'), k++;
  return k >= min && !(*i < n && is_digit(t[*i]));
}

static int time_token(const char *t, size_t n, int hms[3]) {
  size_t i = 0;
  for (int k = 0; k < 3; k++) {
    if (k && (i >= n || t[i++] != ':')) return 0;
    if (!digits(t, n, &i, 1, 2, &hms[k])) return 0;
  }
  return 1;
}

static int month_token(const char *t, size_t n) {
  static const char names[] = "janfebmaraprmayjunjulaugsepoctnovdec";
  if (n < 3) return 0;
  for (int m = 0; m < 12; m++)
    if ((t[0] | 0x20) == names[3 * m] && (t[1] | 0x20) == names[3 * m + 1] && (t[2] | 0x20) == names[3 * m + 2])
      return m + 1;
  return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static int month_days(int y, int m) {
  static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return days[m - 1] + (m == 2 && leap);
}

int tether__cookie_date(const char *p, size_t n, int64_t *ms) {
  int hms[3] = {0}, day = 0, month = 0, year = 0, v;
  int have_time = 0, have_day = 0, have_year = 0;
  size_t i = 0;
  while (i < n) {
    while (i < n && is_delimiter((unsigned char)p[i])) i++;
    size_t s = i;
    while (i < n && !is_delimiter((unsigned char)p[i])) i++;
    const char *t = p + s;
    size_t tn = i - s, k = 0;
    if (tn == 0) break;
    if (!have_time && time_token(t, tn, hms))
      have_time = 1;
    else if (!have_day && digits(t, tn, &k, 1, 2, &v))
      have_day = 1, day = v;
    else if (!month && (v = month_token(t, tn)) != 0)
      month = v;
    else if (!have_year && (k = 0, digits(t, tn, &k, 2, 4, &v)))
      have_year = 1, year = v;
  }
  if (!have_time || !have_day || !month || !have_year) return -1;
  if (year >= 70 && year <= 99) year += 1900;
  if (year <= 69) year += 2000;
  if (year < 1601 || day < 1 || day > month_days(year, month) || hms[0] > 23 || hms[1] > 59 || hms[2] > 59) return -1;
  *ms = ((days_from_civil(year, month, day) * 24 + hms[0]) * 60 + hms[1]) * 60000 + (int64_t)hms[2] * 1000;
  return 0;
}
