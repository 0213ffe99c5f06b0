/* libtether: the claims of a verified JWT. The payload is decoded into an object the caller reuses (inline
 * for usual sizes), indexed by json.c's scanner (or parsed by jansson when it is not flat), checked against
 * the verifier's options (exp, nbf, iat, aud, iss, sub), and read member by member without jansson. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jwt_impl.h"
#include "util.h"

#define JWT_MAX_DATE 253402300799LL /* 9999-12-31T23:59:59Z */

/* For tests/fuzz/fuzz_jwt.c: the scanner's verdict on a text (TETHER__SCAN_*), as claims are scanned. */
int tether__jwt_scan_verdict(const char *p, size_t n) {
  tether__json_member m[TETHER__JWT_CLAIMS_MEMBERS];
  int count;
  return tether__json_scan_object(p, n, m, TETHER__JWT_CLAIMS_MEMBERS, &count);
}

static char *claims_buf(const tether_jwt_claims *c) { return c->payload_cap ? c->payload : (char *)c->inline_buf; }

void tether__jwt_claims_init(tether_jwt_claims *c) {
  c->payload = NULL;
  c->payload_len = 0;
  c->payload_cap = 0;
  c->json = NULL;
  c->nmembers = 0;
  c->valid = 0;
  c->alg = TETHER_JWT_ALG_UNKNOWN;
  c->key_index = -1;
}

void tether__jwt_claims_release(tether_jwt_claims *c) {
  json_decref(c->json);
  free(c->payload_cap ? c->payload : NULL);
  tether__jwt_claims_init(c);
}

tether_jwt_claims *tether_jwt_claims_new(void) {
  tether_jwt_claims *c = tether__malloc(sizeof(*c));
  tether__jwt_claims_init(c);
  return c;
}

void tether_jwt_claims_free(tether_jwt_claims *c) {
  if (c == NULL) return;
  tether__jwt_claims_release(c);
  free(c);
}

void tether__jwt_claims_reset(tether_jwt_claims *c) {
  json_decref(c->json);
  c->json = NULL;
  c->valid = 0;
  c->nmembers = 0;
  c->payload_len = 0;
}

/* Finds top-level member name in the verified claims. */
static int claims_find(const tether_jwt_claims *c, const char *name, size_t nlen, tether__json_member *out) {
  const char *p = claims_buf(c);
  if (c->nmembers >= 0) {
    for (int i = 0; i < c->nmembers; i++) {
      if (tether__json_member_is(p, &c->member[i], name, nlen)) {
        *out = c->member[i];
        return 1;
      }
    }
    return 0;
  }
  tether__json_walker w;
  tether__json_walk_begin(&w, p, c->payload_len);
  while (tether__json_walk_next(&w, out))
    if (tether__json_member_is(p, out, name, nlen)) return 1;
  return 0;
}

/* A numeric date in [0, JWT_MAX_DATE]: 0, or -1 when it is not one. */
static int date_value(const char *p, const tether__json_member *m, double *out) {
  const char *s = p + m->value;
  size_t n = m->value_len;
  if (TETHER__JSON_TYPE(m->type) == TETHER__JSON_INT) {
    if (n == 0 || s[0] == '-' || n > 12) return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) v = v * 10 + (s[i] - '0');
    if (v > JWT_MAX_DATE) return -1;
    *out = (double)v;
    return 0;
  }
  if (TETHER__JSON_TYPE(m->type) != TETHER__JSON_REAL) return -1;
  char small[72];
  char *text = n < sizeof(small) ? small : tether__malloc(n + 1);
  memcpy(text, s, n);
  text[n] = '\0';
  double d = strtod(text, NULL);
  if (text != small) free(text);
  if (!isfinite(d) || d < 0 || d > (double)JWT_MAX_DATE) return -1;
  *out = d;
  return 0;
}

static int string_member_is(const char *p, const tether__json_member *m, const char *want) {
  return TETHER__JSON_TYPE(m->type) == TETHER__JSON_STRING &&
         tether__json_str_equal(p + m->value, m->value_len, (m->type & TETHER__JSON_VAL_ESC) != 0, want, strlen(want));
}

static int audience_ok(const tether_jwt_verifier *v, const char *p, const tether__json_member *aud) {
  if (TETHER__JSON_TYPE(aud->type) == TETHER__JSON_STRING) {
    for (size_t a = 0; a < v->audience_count; a++)
      if (string_member_is(p, aud, v->audience[a])) return 1;
    return 0;
  }
  if (TETHER__JSON_TYPE(aud->type) != TETHER__JSON_ARRAY) return 0;
  size_t end = aud->value + aud->value_len, i = aud->value + 1;
  for (;;) {
    i = tether__json_skip_ws(p, end, i);
    if (i < end && p[i] == ',') i = tether__json_skip_ws(p, end, i + 1);
    if (i >= end || p[i] == ']') return 0;
    uint8_t t;
    size_t e = tether__json_skip_value(p, end, i, &t);
    if (t == TETHER__JSON_STRING) {
      tether__json_member el = {
          .value = (uint32_t)i + 1, .value_len = (uint32_t)(e - i - 2), .type = TETHER__JSON_STRING};
      if (memchr(p + i + 1, '\\', el.value_len)) el.type |= TETHER__JSON_VAL_ESC;
      for (size_t a = 0; a < v->audience_count; a++)
        if (string_member_is(p, &el, v->audience[a])) return 1;
    }
    i = e;
  }
}

static int fail_date(int code, const char *what, double when, int64_t now, int64_t leeway) {
  char w[32], n[32];
  tether__iso8601((int64_t)(when * 1000), w);
  tether__iso8601(now * 1000, n);
  return tether__fail(code, "%s (%s %s, now %s, leeway %lld s)", tether_jwt_message(code), what, w, n,
                      (long long)leeway);
}

enum { C_EXP, C_NBF, C_IAT, C_ISS, C_AUD, C_SUB, C_COUNT };

static const char registered[C_COUNT][4] = {"exp", "nbf", "iat", "iss", "aud", "sub"};

/* The registered claims, in one pass over the member index. */
static void claims_registered(const tether_jwt_claims *c, tether__json_member found[C_COUNT], int have[C_COUNT]) {
  const char *p = claims_buf(c);
  if (c->nmembers < 0) {
    for (int k = 0; k < C_COUNT; k++) have[k] = claims_find(c, registered[k], 3, &found[k]);
    return;
  }
  for (int i = 0; i < c->nmembers; i++) {
    const tether__json_member *m = &c->member[i];
    if (m->type & TETHER__JSON_KEY_ESC) {
      for (int k = 0; k < C_COUNT; k++)
        if (tether__json_member_is(p, m, registered[k], 3)) found[k] = *m, have[k] = 1;
      continue;
    }
    if (m->key_len != 3) continue;
    const char *n = p + m->key;
    for (int k = 0; k < C_COUNT; k++) {
      if (n[0] == registered[k][0] && n[1] == registered[k][1] && n[2] == registered[k][2]) {
        found[k] = *m;
        have[k] = 1;
        break;
      }
    }
  }
}

int tether__jwt_claims_check(const tether_jwt_verifier *v, const tether_jwt_claims *c) {
  const char *p = claims_buf(c);
  tether__json_member found[C_COUNT];
  int have[C_COUNT] = {0};
  claims_registered(c, found, have);
  double when[3] = {0, 0, 0}; /* exp, nbf, iat */
  for (int k = C_EXP; k <= C_IAT; k++)
    if (have[k] && date_value(p, &found[k], &when[k]) < 0)
      return tether__fail(TETHER_JWT_EBADDATE, "invalid %s value: a number of seconds in [0, %lld] is expected",
                          registered[k], JWT_MAX_DATE);
  double exp = when[C_EXP], nbf = when[C_NBF], iat = when[C_IAT];
  int64_t now_ms = v->clock ? v->clock(v->clock_arg) : tether_now_ms();
  int64_t now = now_ms >= 0 ? now_ms / 1000 : -((-now_ms + 999) / 1000);
  int64_t lw = v->leeway_s;
  if (have[C_NBF] && nbf > (double)(now + lw)) return fail_date(TETHER_JWT_ENOTYET, "nbf", nbf, now, lw);
  if (have[C_EXP] && (double)now >= exp + (double)lw) return fail_date(TETHER_JWT_EEXPIRED, "exp", exp, now, lw);
  if (!have[C_EXP] && v->require_exp) return tether__fail(TETHER_JWT_ENOEXP, "jwt has no exp and one is required");
  if (have[C_IAT] && iat > (double)(now + lw)) return fail_date(TETHER_JWT_EIATFUTURE, "iat", iat, now, lw);
  if (v->audience_count > 0 && (!have[C_AUD] || !audience_ok(v, p, &found[C_AUD])))
    return tether__fail(TETHER_JWT_EAUDIENCE, "jwt audience invalid. expected: %s%s", v->audience[0],
                        v->audience_count > 1 ? " or another configured audience" : "");
  if (v->issuer && (!have[C_ISS] || !string_member_is(p, &found[C_ISS], v->issuer)))
    return tether__fail(TETHER_JWT_EISSUER, "jwt issuer invalid. expected: %s", v->issuer);
  if (v->subject && (!have[C_SUB] || !string_member_is(p, &found[C_SUB], v->subject)))
    return tether__fail(TETHER_JWT_ESUBJECT, "jwt subject invalid. expected: %s", v->subject);
  return 0;
}

/* Decodes and parses the payload into c. */
int tether__jwt_claims_load(tether_jwt_claims *c, const char *b64, size_t n) {
  size_t need = n / 4 * 3 + 3;
  if (need > TETHER__JWT_CLAIMS_INLINE && need > c->payload_cap) {
    free(c->payload_cap ? c->payload : NULL);
    c->payload = tether__malloc(need);
    c->payload_cap = need;
  }
  char *buf = claims_buf(c);
  int len = tether__base64url_decode_quiet(b64, n, (uint8_t *)buf,
                                           c->payload_cap ? c->payload_cap : TETHER__JWT_CLAIMS_INLINE);
  if (len < 0) return tether__fail(TETHER_JWT_EENCODING, "jwt payload is not strict base64url");
  c->payload_len = (size_t)len;
  int count;
  int r = tether__json_scan_object(buf, (size_t)len, c->member, TETHER__JWT_CLAIMS_MEMBERS, &count);
  if (r == TETHER__SCAN_DUP) return tether__fail(TETHER_JWT_EDUPLICATE, "jwt claims have a duplicate member name");
  if (r == TETHER__SCAN_INVALID) return tether__fail(TETHER_JWT_EMALFORMED, "jwt malformed: claims are not JSON");
  if (r == TETHER__SCAN_OK) {
    c->nmembers = count;
    return 0;
  }
  /* jansson skips a NUL byte after some tokens ({"a":1\0}); JSON has no place for one */
  if (memchr(buf, '\0', (size_t)len) != NULL)
    return tether__fail(TETHER_JWT_EMALFORMED, "jwt malformed: NUL byte in the claims");
  json_error_t err;
  c->json = json_loadb(buf, (size_t)len, JSON_REJECT_DUPLICATES, &err);
  if (c->json == NULL && json_error_code(&err) == json_error_duplicate_key)
    return tether__fail(TETHER_JWT_EDUPLICATE, "jwt claims have a duplicate member name");
  if (c->json == NULL) return tether__fail(TETHER_JWT_EMALFORMED, "jwt malformed: claims are not JSON: %s", err.text);
  if (!json_is_object(c->json)) return tether__fail(TETHER_JWT_EMALFORMED, "jwt malformed: claims are not an object");
  tether__json_walker w;
  tether__json_walk_begin(&w, buf, (size_t)len);
  tether__json_member m;
  count = 0;
  while (tether__json_walk_next(&w, &m)) {
    if (count == TETHER__JWT_CLAIMS_MEMBERS) {
      count = -1;
      break;
    }
    c->member[count++] = m;
  }
  c->nmembers = count;
  return 0;
}

json_t *tether__jwt_claims_json(tether_jwt_claims *c) {
  if (c == NULL || !c->valid) return NULL;
  if (c->json == NULL) c->json = json_loadb(claims_buf(c), c->payload_len, JSON_REJECT_DUPLICATES, NULL);
  return c->json;
}

const char *tether_jwt_claims_payload(const tether_jwt_claims *c, size_t *len) {
  if (c == NULL || !c->valid) {
    if (len) *len = 0;
    return NULL;
  }
  if (len) *len = c->payload_len;
  return claims_buf(c);
}

tether_jwt_alg tether_jwt_claims_alg(const tether_jwt_claims *c) {
  return c && c->valid ? c->alg : TETHER_JWT_ALG_UNKNOWN;
}

int tether_jwt_claims_key_index(const tether_jwt_claims *c) { return c && c->valid ? c->key_index : -1; }

int tether_jwt_claim_text(const tether_jwt_claims *c, const char *name, char *buf, size_t cap) {
  tether__json_member m;
  if (c == NULL || !c->valid || name == NULL || !claims_find(c, name, strlen(name), &m))
    return tether__fail(TETHER_ENOTFOUND, "jwt has no claim '%s'", name ? name : "");
  const char *p = claims_buf(c) + m.value;
  int t = TETHER__JSON_TYPE(m.type);
  long n;
  if (t == TETHER__JSON_STRING) {
    n = tether__json_str_unescape(p, m.value_len, (m.type & TETHER__JSON_VAL_ESC) != 0, buf, cap);
  } else if (t == TETHER__JSON_ARRAY || t == TETHER__JSON_OBJECT) {
    size_t o = 0;
    n = 0;
    for (size_t i = 0; i < m.value_len && n >= 0;) {
      if (p[i] == '"') {
        size_t e = tether__json_skip_string(p, m.value_len, i);
        if (o + (e - i) + 1 > cap)
          n = -1;
        else
          memcpy(buf + o, p + i, e - i), o += e - i;
        i = e;
      } else if (tether__json_is_ws(p[i])) {
        i++;
      } else if (o + 2 > cap) {
        n = -1;
      } else {
        buf[o++] = p[i++];
      }
    }
    if (n == 0) {
      buf[o] = '\0';
      n = (long)o;
    }
  } else {
    n = tether__json_str_unescape(p, m.value_len, 0, buf, cap);
  }
  if (n < 0) return tether__fail(TETHER_E2BIG, "jwt claim '%s' does not fit in %zu bytes", name, cap);
  return (int)n;
}

int tether_jwt_claim_int(const tether_jwt_claims *c, const char *name, int64_t *out) {
  tether__json_member m;
  if (c == NULL || !c->valid || name == NULL || !claims_find(c, name, strlen(name), &m))
    return tether__fail(TETHER_ENOTFOUND, "jwt has no claim '%s'", name ? name : "");
  const char *p = claims_buf(c) + m.value;
  size_t i = p[0] == '-' ? 1 : 0;
  uint64_t v = 0, lim = i ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  int ok = TETHER__JSON_TYPE(m.type) == TETHER__JSON_INT && m.value_len > i;
  for (; ok && i < m.value_len; i++) {
    unsigned d = (unsigned)(p[i] - '0');
    ok = d <= 9 && v <= (lim - d) / 10;
    v = v * 10 + d;
  }
  if (!ok) return tether__fail(TETHER_EINVAL, "jwt claim '%s' is not an integer in the int64 range", name);
  *out = p[0] == '-' ? (int64_t)(0 - v) : (int64_t)v;
  return 0;
}
