/* libtether: JSON Web Tokens (compact JWS) on OpenSSL 3's EVP.
 *
 * The verification path, in order: size cap; split on the two dots (a third is malformed); the header,
 * either one of the few exact headers the configured algorithms produce (memcmp, no decoding) or strictly
 * decoded and parsed; the candidate keys by alg (pinned by the key) and kid; the signature over the
 * received text; then the claims. JSON is parsed by a small validating scanner that handles the common
 * flat objects without allocating, and hands anything else (nested objects, escaped member names, long
 * numbers, many members) to jansson with JSON_REJECT_DUPLICATES; both agree on what is valid (the fuzz
 * harness checks it). HMAC runs on a per-thread EVP_MAC_CTX keyed once; RSA and ECDSA on a per-thread
 * EVP_PKEY_CTX initialised once per key. */
#include "tether/jwt.h"

#include <math.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "util.h"

#define JWT_MAX_DATE 253402300799LL /* 9999-12-31T23:59:59Z */
#define JWT_MAX_KID 256
#define JWT_MAX_SIG 1024 /* RSA up to 8192 bits */
#define JWT_MAX_KEYFILE (1 << 20)
#define JWT_HEADER_MEMBERS 16

/* ---- algorithms ---- */

enum family { FAM_NONE = 0, FAM_HMAC, FAM_RSA, FAM_PSS, FAM_EC, FAM_EDDSA };

static const struct alg_info {
  const char *name;
  enum family fam;
  const char *md; /* digest name for OpenSSL */
  int nid;        /* EC: the curve */
  size_t coord;   /* EC: bytes per coordinate (and per r, s) */
} algs[TETHER_JWT_ALG_COUNT] = {
    [TETHER_JWT_ALG_UNKNOWN] = {"unknown", FAM_NONE, NULL, 0, 0},
    [TETHER_JWT_HS256] = {"HS256", FAM_HMAC, "SHA256", 0, 0},
    [TETHER_JWT_HS384] = {"HS384", FAM_HMAC, "SHA384", 0, 0},
    [TETHER_JWT_HS512] = {"HS512", FAM_HMAC, "SHA512", 0, 0},
    [TETHER_JWT_RS256] = {"RS256", FAM_RSA, "SHA256", 0, 0},
    [TETHER_JWT_RS384] = {"RS384", FAM_RSA, "SHA384", 0, 0},
    [TETHER_JWT_RS512] = {"RS512", FAM_RSA, "SHA512", 0, 0},
    [TETHER_JWT_PS256] = {"PS256", FAM_PSS, "SHA256", 0, 0},
    [TETHER_JWT_PS384] = {"PS384", FAM_PSS, "SHA384", 0, 0},
    [TETHER_JWT_PS512] = {"PS512", FAM_PSS, "SHA512", 0, 0},
    [TETHER_JWT_ES256] = {"ES256", FAM_EC, "SHA256", NID_X9_62_prime256v1, 32},
    [TETHER_JWT_ES384] = {"ES384", FAM_EC, "SHA384", NID_secp384r1, 48},
    [TETHER_JWT_ES512] = {"ES512", FAM_EC, "SHA512", NID_secp521r1, 66},
    [TETHER_JWT_EDDSA] = {"EdDSA", FAM_EDDSA, NULL, 0, 0},
};

const char *tether_jwt_alg_name(tether_jwt_alg alg) {
  if ((int)alg <= 0 || alg >= TETHER_JWT_ALG_COUNT) return "unknown";
  return algs[alg].name;
}

tether_jwt_alg tether_jwt_alg_from_name(const char *name) {
  if (name == NULL) return TETHER_JWT_ALG_UNKNOWN;
  for (int a = 1; a < TETHER_JWT_ALG_COUNT; a++)
    if (strcmp(name, algs[a].name) == 0) return (tether_jwt_alg)a;
  return TETHER_JWT_ALG_UNKNOWN;
}

static tether_jwt_alg alg_from_span(const char *s, size_t n) {
  for (int a = 1; a < TETHER_JWT_ALG_COUNT; a++)
    if (strlen(algs[a].name) == n && memcmp(s, algs[a].name, n) == 0) return (tether_jwt_alg)a;
  return TETHER_JWT_ALG_UNKNOWN;
}

/* ---- results ---- */

static const struct {
  int code;
  const char *reason;
  const char *message;
} results[] = {
    {TETHER_JWT_OK, "ok", "ok"},
    {TETHER_JWT_ETOOLARGE, "too_large", "jwt too large"},
    {TETHER_JWT_EMALFORMED, "malformed", "jwt malformed"},
    {TETHER_JWT_EENCODING, "bad_encoding", "jwt is not strict base64url"},
    {TETHER_JWT_EDUPLICATE, "duplicate_key", "jwt has a duplicate member name"},
    {TETHER_JWT_EUNSIGNED, "unsigned", "jwt signature is required"},
    {TETHER_JWT_EALG, "alg_mismatch", "invalid algorithm"},
    {TETHER_JWT_ECRIT, "crit_header", "jwt has a critical header parameter"},
    {TETHER_JWT_ENOKEY, "no_key", "no key for the jwt's kid"},
    {TETHER_JWT_ESIGNATURE, "bad_signature", "invalid signature"},
    {TETHER_JWT_EBADDATE, "bad_date", "invalid exp, nbf or iat value"},
    {TETHER_JWT_EEXPIRED, "expired", "jwt expired"},
    {TETHER_JWT_ENOTYET, "not_yet_valid", "jwt not active"},
    {TETHER_JWT_EIATFUTURE, "issued_in_future", "jwt issued in the future"},
    {TETHER_JWT_ENOEXP, "missing_exp", "jwt has no exp"},
    {TETHER_JWT_EISSUER, "bad_issuer", "jwt issuer invalid"},
    {TETHER_JWT_EAUDIENCE, "bad_audience", "jwt audience invalid"},
    {TETHER_JWT_ESUBJECT, "bad_subject", "jwt subject invalid"},
};

const char *tether_jwt_reason(int code) {
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(results); i++)
    if (results[i].code == code) return results[i].reason;
  return "error";
}

const char *tether_jwt_message(int code) {
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(results); i++)
    if (results[i].code == code) return results[i].message;
  return tether_strerror(code);
}

/* ---- base64url ---- */

/* Strict base64url, without a message (the callers say which part was bad): libtether's one decoder. */
static int b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap) {
  return tether__base64url_decode_quiet(in, n, out, cap);
}

/* For tests/fuzz/fuzz_jwt.c: the decoder jwt.c uses, compared there with tether__base64url_decode. */
int tether__jwt_b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap);
int tether__jwt_b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap) {
  return b64url_decode(in, n, out, cap);
}

/* ---- JSON: a validating scanner for flat objects, and walkers over text already validated ---- */

enum { JT_STRING = 1, JT_INT, JT_REAL, JT_TRUE, JT_FALSE, JT_NULL, JT_ARRAY, JT_OBJECT };
#define JT_KEY_ESC 0x80 /* the member name has escapes */
#define JT_VAL_ESC 0x40 /* the string value has escapes */
#define JT_TYPE(t) ((t)&0x0f)

/* SCAN_COMPLEX: valid as far as seen, but jansson must decide (and the walkers extract). */
enum { SCAN_OK = 0, SCAN_COMPLEX = 1, SCAN_INVALID = -1, SCAN_DUP = -2 };

typedef struct tether_jwt__member member_t;

static inline int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static inline int is_digit(char c) { return c >= '0' && c <= '9'; }

static size_t skip_ws(const char *p, size_t n, size_t i) {
  while (i < n && is_ws(p[i])) i++;
  return i;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int hex4(const char *p, uint32_t *out) {
  uint32_t v = 0;
  for (int k = 0; k < 4; k++) {
    int d = hexval(p[k]);
    if (d < 0) return -1;
    v = v << 4 | (uint32_t)d;
  }
  *out = v;
  return 0;
}

/* Length of the well-formed UTF-8 sequence at p (jansson's rules: no overlong forms, no surrogates,
 * nothing above U+10FFFF), or 0. */
static size_t utf8_seq(const uint8_t *p, size_t n) {
  uint8_t c = p[0];
  size_t len;
  uint32_t cp;
  if (c < 0x80) return 1;
  if (c < 0xC2) return 0;
  if (c < 0xE0)
    len = 2, cp = c & 0x1F;
  else if (c < 0xF0)
    len = 3, cp = c & 0x0F;
  else if (c < 0xF5)
    len = 4, cp = c & 0x07;
  else
    return 0;
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (p[i] & 0x3F);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return len;
}

/* A string starting at p[*pos] == '"'; on success *pos is past the closing quote. */
static int scan_string(const char *p, size_t n, size_t *pos, int *esc) {
  size_t i = *pos + 1;
  *esc = 0;
  while (i < n) {
    uint8_t c = (uint8_t)p[i];
    if (c == '"') {
      *pos = i + 1;
      return SCAN_OK;
    }
    if (c < 0x20) return SCAN_INVALID;
    if (c == '\\') {
      *esc = 1;
      if (i + 1 >= n) return SCAN_INVALID;
      char e = p[i + 1];
      if (e == 'u') {
        uint32_t cp, lo;
        if (i + 6 > n || hex4(p + i + 2, &cp) < 0) return SCAN_INVALID;
        i += 6;
        if (cp == 0 || (cp >= 0xDC00 && cp <= 0xDFFF)) return SCAN_INVALID; /* NUL; a lone low surrogate */
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (i + 6 > n || p[i] != '\\' || p[i + 1] != 'u' || hex4(p + i + 2, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
            return SCAN_INVALID;
          i += 6;
        }
        continue;
      }
      if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' && e != 't')
        return SCAN_INVALID;
      i += 2;
      continue;
    }
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t l = utf8_seq((const uint8_t *)p + i, n - i);
    if (l == 0) return SCAN_INVALID;
    i += l;
  }
  return SCAN_INVALID;
}

/* A number per RFC 8259. Integers of more than 18 digits and numbers with an exponent or more than 64
 * characters are left to jansson, which refuses what overflows. */
static int scan_number(const char *p, size_t n, size_t *pos, uint8_t *type) {
  size_t i = *pos, s = *pos;
  if (p[i] == '-') i++;
  if (i >= n) return SCAN_INVALID;
  size_t ds = i;
  if (p[i] == '0') {
    i++;
    if (i < n && is_digit(p[i])) return SCAN_INVALID;
  } else if (is_digit(p[i])) {
    while (i < n && is_digit(p[i])) i++;
  } else {
    return SCAN_INVALID;
  }
  size_t digits = i - ds;
  int real = 0, complex = 0;
  if (i < n && p[i] == '.') {
    real = 1;
    i++;
    if (i >= n || !is_digit(p[i])) return SCAN_INVALID;
    while (i < n && is_digit(p[i])) i++;
  }
  if (i < n && (p[i] == 'e' || p[i] == 'E')) {
    complex = 1;
    i++;
    if (i < n && (p[i] == '+' || p[i] == '-')) i++;
    if (i >= n || !is_digit(p[i])) return SCAN_INVALID;
    while (i < n && is_digit(p[i])) i++;
  }
  *pos = i;
  *type = real ? JT_REAL : JT_INT;
  if (complex || (!real && digits > 18) || i - s > 64) return SCAN_COMPLEX;
  return SCAN_OK;
}

static int scan_literal(const char *p, size_t n, size_t *pos, uint8_t *type) {
  static const struct {
    const char *text;
    size_t len;
    uint8_t type;
  } lits[] = {{"true", 4, JT_TRUE}, {"false", 5, JT_FALSE}, {"null", 4, JT_NULL}};
  for (size_t k = 0; k < TETHER__ARRAY_SIZE(lits); k++) {
    if (n - *pos >= lits[k].len && memcmp(p + *pos, lits[k].text, lits[k].len) == 0) {
      *pos += lits[k].len;
      *type = lits[k].type;
      return SCAN_OK;
    }
  }
  return SCAN_INVALID;
}

/* A scalar value; '[' and '{' are not scalars (SCAN_COMPLEX). */
static int scan_scalar(const char *p, size_t n, size_t *pos, uint8_t *type, int *esc) {
  char c = p[*pos];
  *esc = 0;
  if (c == '"') {
    *type = JT_STRING;
    return scan_string(p, n, pos, esc);
  }
  if (c == '-' || is_digit(c)) return scan_number(p, n, pos, type);
  if (c == 't' || c == 'f' || c == 'n') return scan_literal(p, n, pos, type);
  if (c == '[' || c == '{') return SCAN_COMPLEX;
  return SCAN_INVALID;
}

/* An array of scalars. */
static int scan_array(const char *p, size_t n, size_t *pos) {
  size_t i = skip_ws(p, n, *pos + 1);
  if (i < n && p[i] == ']') {
    *pos = i + 1;
    return SCAN_OK;
  }
  int complex = 0;
  for (;;) {
    if (i >= n) return SCAN_INVALID;
    uint8_t t;
    int esc;
    int r = scan_scalar(p, n, &i, &t, &esc);
    if (r == SCAN_INVALID) return r;
    if (r == SCAN_COMPLEX) {
      if (i < n && (p[i] == '[' || p[i] == '{')) return SCAN_COMPLEX; /* nested: not scanned further */
      complex = 1;
    }
    i = skip_ws(p, n, i);
    if (i >= n) return SCAN_INVALID;
    if (p[i] == ']') break;
    if (p[i] != ',') return SCAN_INVALID;
    i = skip_ws(p, n, i + 1);
  }
  *pos = i + 1;
  return complex ? SCAN_COMPLEX : SCAN_OK;
}

/* Validates a whole text as one JSON object whose values are scalars or arrays of scalars, with member
 * names free of escapes, at most max members and none repeated; fills m. */
static int scan_object(const char *p, size_t n, member_t *m, int max, int *count) {
  size_t i = skip_ws(p, n, 0);
  int k = 0, complex = 0;
  *count = 0;
  if (i >= n || p[i] != '{') return SCAN_COMPLEX;
  i = skip_ws(p, n, i + 1);
  if (i < n && p[i] == '}') {
    i++;
  } else {
    for (;;) {
      if (i >= n || p[i] != '"') return SCAN_INVALID;
      size_t ks = i + 1;
      int kesc, vesc;
      if (scan_string(p, n, &i, &kesc) != SCAN_OK) return SCAN_INVALID;
      size_t klen = i - 1 - ks;
      i = skip_ws(p, n, i);
      if (i >= n || p[i] != ':') return SCAN_INVALID;
      i = skip_ws(p, n, i + 1);
      if (i >= n) return SCAN_INVALID;
      size_t vs = i;
      uint8_t t;
      int r;
      if (p[i] == '[') {
        t = JT_ARRAY;
        vesc = 0;
        r = scan_array(p, n, &i);
      } else {
        r = scan_scalar(p, n, &i, &t, &vesc);
      }
      if (r == SCAN_INVALID) return r;
      if (r == SCAN_COMPLEX) {
        if (i < n && (p[i] == '{' || p[i] == '[')) return SCAN_COMPLEX; /* stopped at a nested value */
        complex = 1;
      }
      if (kesc || k == max) return SCAN_COMPLEX;
      for (int j = 0; j < k; j++)
        if (m[j].key_len == klen && memcmp(p + m[j].key, p + ks, klen) == 0) return SCAN_DUP;
      m[k].key = (uint32_t)ks;
      m[k].key_len = (uint32_t)klen;
      if (t == JT_STRING) {
        m[k].value = (uint32_t)vs + 1;
        m[k].value_len = (uint32_t)(i - vs - 2);
      } else {
        m[k].value = (uint32_t)vs;
        m[k].value_len = (uint32_t)(i - vs);
      }
      m[k].type = (uint8_t)(t | (vesc ? JT_VAL_ESC : 0));
      k++;
      i = skip_ws(p, n, i);
      if (i >= n) return SCAN_INVALID;
      if (p[i] == '}') {
        i++;
        break;
      }
      if (p[i] != ',') return SCAN_INVALID;
      i = skip_ws(p, n, i + 1);
    }
  }
  if (skip_ws(p, n, i) != n) return SCAN_INVALID;
  *count = k;
  return complex ? SCAN_COMPLEX : SCAN_OK;
}

/* For tests/fuzz/fuzz_jwt.c: the scanner's verdict on a text (SCAN_*). */
int tether__jwt_scan_verdict(const char *p, size_t n);
int tether__jwt_scan_verdict(const char *p, size_t n) {
  member_t m[TETHER_JWT_CLAIMS_MEMBERS];
  int count;
  return scan_object(p, n, m, TETHER_JWT_CLAIMS_MEMBERS, &count);
}

/* The walkers below only run over text that the scanner or jansson accepted. */

static size_t skip_string_v(const char *p, size_t n, size_t i) {
  for (i++; i < n; i++) {
    if (p[i] == '\\')
      i++;
    else if (p[i] == '"')
      return i + 1;
  }
  return n;
}

static size_t skip_value_v(const char *p, size_t n, size_t i, uint8_t *type) {
  char c = p[i];
  if (c == '"') {
    *type = JT_STRING;
    return skip_string_v(p, n, i);
  }
  if (c == '{' || c == '[') {
    *type = c == '{' ? JT_OBJECT : JT_ARRAY;
    int depth = 0;
    while (i < n) {
      c = p[i];
      if (c == '"') {
        i = skip_string_v(p, n, i);
        continue;
      }
      if (c == '{' || c == '[') depth++;
      if ((c == '}' || c == ']') && --depth == 0) return i + 1;
      i++;
    }
    return n;
  }
  if (c == 't' || c == 'n') {
    *type = c == 't' ? JT_TRUE : JT_NULL;
    return i + 4 <= n ? i + 4 : n;
  }
  if (c == 'f') {
    *type = JT_FALSE;
    return i + 5 <= n ? i + 5 : n;
  }
  *type = JT_INT;
  while (i < n && (is_digit(p[i]) || p[i] == '-' || p[i] == '+' || p[i] == '.' || p[i] == 'e' || p[i] == 'E')) {
    if (!is_digit(p[i]) && p[i] != '-') *type = JT_REAL;
    i++;
  }
  return i;
}

typedef struct walker {
  const char *p;
  size_t n, i;
} walker;

static void walk_begin(walker *w, const char *p, size_t n) {
  w->p = p;
  w->n = n;
  w->i = skip_ws(p, n, 0);
  if (w->i < n && p[w->i] == '{') w->i++;
}

/* The next member of a validated object: 1 and *m filled, or 0 at the end. */
static int walk_next(walker *w, member_t *m) {
  const char *p = w->p;
  size_t n = w->n, i = skip_ws(p, n, w->i);
  if (i < n && p[i] == ',') i = skip_ws(p, n, i + 1);
  if (i >= n || p[i] != '"') return 0;
  size_t ks = i + 1;
  i = skip_string_v(p, n, i);
  size_t klen = i - 1 - ks;
  i = skip_ws(p, n, i);
  if (i < n && p[i] == ':') i++;
  i = skip_ws(p, n, i);
  if (i >= n) return 0;
  size_t vs = i;
  uint8_t t;
  i = skip_value_v(p, n, i, &t);
  m->key = (uint32_t)ks;
  m->key_len = (uint32_t)klen;
  uint8_t flags = memchr(p + ks, '\\', klen) ? JT_KEY_ESC : 0;
  if (t == JT_STRING) {
    m->value = (uint32_t)vs + 1;
    m->value_len = (uint32_t)(i - vs - 2);
    if (memchr(p + vs + 1, '\\', m->value_len)) flags |= JT_VAL_ESC;
  } else {
    m->value = (uint32_t)vs;
    m->value_len = (uint32_t)(i - vs);
  }
  m->type = (uint8_t)(t | flags);
  w->i = i;
  return 1;
}

/* Decodes the next character of a validated JSON string body into UTF-8 (1 to 4 bytes). */
static size_t jstr_next(const char *s, size_t n, size_t *i, uint8_t out[4]) {
  if (s[*i] != '\\') {
    out[0] = (uint8_t)s[(*i)++];
    return 1;
  }
  char e = *i + 1 < n ? s[*i + 1] : '\\';
  uint32_t cp;
  switch (e) {
  case 'b':
    cp = '\b';
    break;
  case 'f':
    cp = '\f';
    break;
  case 'n':
    cp = '\n';
    break;
  case 'r':
    cp = '\r';
    break;
  case 't':
    cp = '\t';
    break;
  case 'u':
    if (*i + 6 > n || hex4(s + *i + 2, &cp) < 0) cp = 0xFFFD;
    *i += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF && *i + 8 <= n && s[*i + 2] == '\\' && s[*i + 3] == 'u') {
      uint32_t lo;
      if (hex4(s + *i + 4, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        *i += 6;
      }
    }
    break;
  default:
    cp = (uint8_t)e;
    break;
  }
  *i += 2;
  if (cp < 0x80) {
    out[0] = (uint8_t)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (uint8_t)(0xC0 | cp >> 6);
    out[1] = (uint8_t)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (uint8_t)(0xE0 | cp >> 12);
    out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    out[2] = (uint8_t)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (uint8_t)(0xF0 | cp >> 18);
  out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
  out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
  out[3] = (uint8_t)(0x80 | (cp & 0x3F));
  return 4;
}

/* Does the (possibly escaped) string body s equal the bytes t? */
static int jstr_equal(const char *s, size_t n, int esc, const char *t, size_t tn) {
  if (!esc) return n == tn && memcmp(s, t, n) == 0;
  size_t i = 0, o = 0;
  uint8_t u[4];
  while (i < n) {
    size_t k = jstr_next(s, n, &i, u);
    if (o + k > tn || memcmp(t + o, u, k) != 0) return 0;
    o += k;
  }
  return o == tn;
}

/* Unescapes a string body into out (cap bytes, NUL-terminated): its length, or -1 when it does not fit. */
static long jstr_unescape(const char *s, size_t n, int esc, char *out, size_t cap) {
  if (!esc) {
    if (n + 1 > cap) return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    return (long)n;
  }
  size_t i = 0, o = 0;
  uint8_t u[4];
  while (i < n) {
    size_t k = jstr_next(s, n, &i, u);
    if (o + k + 1 > cap) return -1;
    memcpy(out + o, u, k);
    o += k;
  }
  out[o] = '\0';
  return (long)o;
}

static int member_is(const char *p, const member_t *m, const char *name, size_t nlen) {
  return jstr_equal(p + m->key, m->key_len, (m->type & JT_KEY_ESC) != 0, name, nlen);
}

/* ---- per-thread MAC and signature contexts ---- */

typedef struct tls_slot {
  uint64_t key_id;    /* 0: empty */
  EVP_MAC_CTX *mac;   /* HMAC keyed with the secret */
  EVP_PKEY_CTX *pctx; /* RSA, RSA-PSS, ECDSA: verify-initialised */
} tls_slot;

/* Verified tokens (verify_options.cache): SHA-256 of the whole token text, direct-mapped. */
#define VCACHE_SIZE 1024
typedef struct vcache_entry {
  uint64_t verifier_id; /* 0: empty */
  uint8_t digest[32];
  int key_index;
} vcache_entry;

#define TLS_SLOTS 16
typedef struct tls_cache {
  tls_slot slot[TLS_SLOTS];
  unsigned next;        /* eviction cursor */
  int registered;       /* the thread-exit destructor knows this cache */
  vcache_entry *vcache; /* VCACHE_SIZE entries, allocated on first use */
} tls_cache;

static _Thread_local tls_cache tls;
static pthread_key_t tls_key;
static pthread_once_t crypto_once = PTHREAD_ONCE_INIT;
static EVP_MD *alg_md[TETHER_JWT_ALG_COUNT]; /* fetched once: implicit fetches cost on every call */
static EVP_MAC *hmac_mac;
static _Atomic uint64_t next_key_id = 1;

static void slot_clear(tls_slot *s) {
  EVP_MAC_CTX_free(s->mac);
  EVP_PKEY_CTX_free(s->pctx);
  memset(s, 0, sizeof(*s));
}

static void tls_destroy(void *arg) {
  tls_cache *c = arg;
  for (int i = 0; i < TLS_SLOTS; i++) slot_clear(&c->slot[i]);
  free(c->vcache);
  c->vcache = NULL;
  c->registered = 0;
}

static void tls_register(void) {
  if (tls.registered) return;
  pthread_setspecific(tls_key, &tls);
  tls.registered = 1;
}

/* The index of the key that verified this token before, or -1. */
static int vcache_lookup(uint64_t verifier_id, const uint8_t digest[32]) {
  if (tls.vcache == NULL) return -1;
  uint64_t h;
  memcpy(&h, digest, sizeof(h));
  const vcache_entry *e = &tls.vcache[h % VCACHE_SIZE];
  return e->verifier_id == verifier_id && memcmp(e->digest, digest, 32) == 0 ? e->key_index : -1;
}

static void vcache_store(uint64_t verifier_id, const uint8_t digest[32], int key_index) {
  if (tls.vcache == NULL) {
    tls_register();
    tls.vcache = tether__calloc(VCACHE_SIZE, sizeof(vcache_entry));
  }
  uint64_t h;
  memcpy(&h, digest, sizeof(h));
  vcache_entry *e = &tls.vcache[h % VCACHE_SIZE];
  e->verifier_id = verifier_id;
  memcpy(e->digest, digest, 32);
  e->key_index = key_index;
}

static void crypto_init(void) {
  for (int a = 1; a < TETHER_JWT_ALG_COUNT; a++)
    if (algs[a].md != NULL) alg_md[a] = EVP_MD_fetch(NULL, algs[a].md, NULL);
  hmac_mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  pthread_key_create(&tls_key, tls_destroy);
}

void tether_jwt_thread_cleanup(void) {
  if (!tls.registered) return;
  pthread_setspecific(tls_key, NULL);
  tls_destroy(&tls);
}

/* ---- keys ---- */

typedef struct jwt_key {
  tether_jwt_alg alg;
  char *kid; /* NULL: matches tokens with any kid or none */
  size_t kid_len;
  uint8_t *secret; /* HMAC */
  size_t secret_len;
  EVP_PKEY *pkey; /* everything else */
  int has_private;
  size_t sig_len;    /* the exact signature length this key produces */
  uint8_t order[66]; /* EC: the group order n, big-endian, coord bytes */
  uint64_t id;       /* names the key in the per-thread caches; never reused */
} jwt_key;

typedef struct key_list {
  jwt_key *k;
  size_t n;
} key_list;

static void key_clear(jwt_key *k) {
  if (k->secret) OPENSSL_clear_free(k->secret, k->secret_len);
  EVP_PKEY_free(k->pkey);
  free(k->kid);
  memset(k, 0, sizeof(*k));
}

static void key_list_free(key_list *l) {
  for (size_t i = 0; i < l->n; i++) key_clear(&l->k[i]);
  free(l->k);
  l->k = NULL;
  l->n = 0;
}

static jwt_key *key_list_push(key_list *l) {
  l->k = tether__realloc(l->k, (l->n + 1) * sizeof(jwt_key));
  jwt_key *k = &l->k[l->n++];
  memset(k, 0, sizeof(*k));
  k->id = atomic_fetch_add(&next_key_id, 1);
  return k;
}

static int set_kid(jwt_key *k, const char *kid, size_t len) {
  if (kid == NULL) return 0;
  if (len > JWT_MAX_KID) return tether__fail(TETHER_EINVAL, "jwt key: kid longer than %d bytes", JWT_MAX_KID);
  k->kid = tether__strndup(kid, len);
  k->kid_len = len;
  return 0;
}

/* RFC 7518 3.2: an HMAC key must be at least as long as the hash; we ask 32 bytes of every HS* key. The
 * message never shows the key. */
static int keys_check_strength(const key_list *l) {
  for (size_t i = 0; i < l->n; i++) {
    const jwt_key *k = &l->k[i];
    if (k->secret && algs[k->alg].fam == FAM_HMAC && k->secret_len < TETHER_JWT_MIN_SECRET)
      return tether__fail(TETHER_EINVAL,
                          "jwt key: the %s secret is %zu bytes; at least %d are required (RFC 7518 section 3.2), "
                          "unless weak secrets are explicitly allowed",
                          algs[k->alg].name, k->secret_len, TETHER_JWT_MIN_SECRET);
  }
  return 0;
}

static int key_set_secret(jwt_key *k, const void *secret, size_t len, tether_jwt_alg alg) {
  if (alg == TETHER_JWT_ALG_UNKNOWN) alg = TETHER_JWT_HS256;
  if (alg >= TETHER_JWT_ALG_COUNT || algs[alg].fam != FAM_HMAC)
    return tether__fail(TETHER_EINVAL, "jwt key: a secret can only be used with HS256, HS384 or HS512, not %s",
                        tether_jwt_alg_name(alg));
  if (len == 0) return tether__fail(TETHER_EINVAL, "jwt key: the secret is empty");
  k->alg = alg;
  k->secret = tether__malloc(len);
  memcpy(k->secret, secret, len);
  k->secret_len = len;
  k->has_private = 1;
  k->sig_len = (size_t)EVP_MD_get_size(alg_md[alg]);
  return 0;
}

static int pkey_has_private(EVP_PKEY *pkey) {
  BIGNUM *bn = NULL;
  int type = EVP_PKEY_get_base_id(pkey);
  if (type == EVP_PKEY_RSA || type == EVP_PKEY_RSA_PSS) {
    if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_D, &bn) && bn != NULL) {
      BN_clear_free(bn);
      return 1;
    }
  } else if (type == EVP_PKEY_EC) {
    if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, &bn) && bn != NULL) {
      BN_clear_free(bn);
      return 1;
    }
  } else if (type == EVP_PKEY_ED25519) {
    size_t len = 0;
    if (EVP_PKEY_get_raw_private_key(pkey, NULL, &len) == 1 && len > 0) return 1;
  }
  ERR_clear_error();
  return 0;
}

/* Binds an EVP_PKEY to an algorithm (the given one, or the key type's default); takes ownership. */
static int key_set_pkey(jwt_key *k, EVP_PKEY *pkey, tether_jwt_alg alg) {
  int type = EVP_PKEY_get_base_id(pkey);
  tether_jwt_alg def;
  int ok_rsa = 0, ok_pss = 0;
  char group[64] = "";
  if (type == EVP_PKEY_RSA) {
    def = TETHER_JWT_RS256, ok_rsa = ok_pss = 1;
  } else if (type == EVP_PKEY_RSA_PSS) {
    def = TETHER_JWT_PS256, ok_pss = 1;
  } else if (type == EVP_PKEY_EC) {
    size_t glen = 0;
    if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), &glen)) group[0] = 0;
    if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)
      def = TETHER_JWT_ES256;
    else if (strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0)
      def = TETHER_JWT_ES384;
    else if (strcmp(group, "secp521r1") == 0 || strcmp(group, "P-521") == 0)
      def = TETHER_JWT_ES512;
    else {
      EVP_PKEY_free(pkey);
      return tether__fail(TETHER_EINVAL, "jwt key: EC curve '%s' is not P-256, P-384 or P-521", group);
    }
  } else if (type == EVP_PKEY_ED25519) {
    def = TETHER_JWT_EDDSA;
  } else {
    EVP_PKEY_free(pkey);
    return tether__fail(TETHER_EINVAL, "jwt key: unsupported key type %s (RSA, EC P-256/384/521 and Ed25519 are)",
                        OBJ_nid2sn(type));
  }
  if (alg == TETHER_JWT_ALG_UNKNOWN) alg = def;
  enum family fam = alg < TETHER_JWT_ALG_COUNT ? algs[alg].fam : FAM_NONE;
  int fits =
      (fam == FAM_RSA && ok_rsa) || (fam == FAM_PSS && ok_pss) || ((fam == FAM_EC || fam == FAM_EDDSA) && alg == def);
  if (!fits) {
    EVP_PKEY_free(pkey);
    return tether__fail(TETHER_EINVAL, "jwt key: a %s key cannot be used with %s (it does %s)",
                        type == EVP_PKEY_EC ? group : OBJ_nid2sn(type), tether_jwt_alg_name(alg),
                        tether_jwt_alg_name(def));
  }
  if (fam == FAM_RSA || fam == FAM_PSS) {
    int bits = EVP_PKEY_get_bits(pkey);
    if (bits < 2048 || bits > JWT_MAX_SIG * 8) {
      EVP_PKEY_free(pkey);
      return tether__fail(TETHER_EINVAL, "jwt key: RSA keys must have 2048 to %d bits, this one has %d",
                          JWT_MAX_SIG * 8, bits);
    }
    k->sig_len = (size_t)EVP_PKEY_get_size(pkey);
  } else if (fam == FAM_EC) {
    EC_GROUP *g = EC_GROUP_new_by_curve_name(algs[alg].nid);
    if (g == NULL || BN_bn2binpad(EC_GROUP_get0_order(g), k->order, (int)algs[alg].coord) < 0) {
      EC_GROUP_free(g);
      EVP_PKEY_free(pkey);
      return tether__fail(TETHER_EINVAL, "jwt key: cannot read the order of the curve of %s", algs[alg].name);
    }
    EC_GROUP_free(g);
    k->sig_len = 2 * algs[alg].coord;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    int valid = c != NULL && EVP_PKEY_public_check(c) == 1;
    EVP_PKEY_CTX_free(c);
    if (!valid) {
      ERR_clear_error();
      EVP_PKEY_free(pkey);
      return tether__fail(TETHER_EINVAL, "jwt key: the EC public key is not a valid point of its curve");
    }
  } else {
    k->sig_len = 64;
  }
  k->alg = alg;
  k->pkey = pkey;
  k->has_private = pkey_has_private(pkey);
  return 0;
}

static int no_passphrase(char *buf, size_t size, size_t *len, const OSSL_PARAM params[], void *arg) {
  TETHER__UNUSED(buf), TETHER__UNUSED(size), TETHER__UNUSED(params), TETHER__UNUSED(arg);
  *len = 0;
  return 0;
}

static int pem_load(const char *pem, size_t len, EVP_PKEY **out) {
  *out = NULL;
  if (memmem(pem, len, "ENCRYPTED", 9) != NULL)
    return tether__fail(TETHER_EINVAL, "jwt key: the PEM key is encrypted (give it unencrypted)");
  EVP_PKEY *pkey = NULL;
  if (memmem(pem, len, "-----BEGIN CERTIFICATE-----", 27) != NULL) {
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    if (x != NULL) pkey = X509_get_pubkey(x);
    X509_free(x);
    BIO_free(bio);
  } else {
    OSSL_DECODER_CTX *d = OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, NULL, 0, NULL, NULL);
    if (d != NULL) {
      OSSL_DECODER_CTX_set_passphrase_cb(d, no_passphrase, NULL);
      const unsigned char *data = (const unsigned char *)pem;
      size_t left = len;
      if (!OSSL_DECODER_from_data(d, &data, &left)) pkey = NULL;
    }
    OSSL_DECODER_CTX_free(d);
  }
  if (pkey == NULL) {
    unsigned long e = ERR_peek_last_error();
    char why[256];
    ERR_error_string_n(e, why, sizeof(why));
    ERR_clear_error();
    return tether__fail(TETHER_EINVAL, "jwt key: not a PEM public key, private key or certificate (%s)",
                        e ? why : "no key found");
  }
  *out = pkey;
  return 0;
}

/* ---- JWK ---- */

static int jwk_bytes(json_t *jwk, const char *name, int required, uint8_t **out, size_t *len) {
  *out = NULL;
  *len = 0;
  json_t *v = json_object_get(jwk, name);
  if (v == NULL) return required ? tether__fail(TETHER_EINVAL, "jwk: missing \"%s\"", name) : 0;
  if (!json_is_string(v)) return tether__fail(TETHER_EINVAL, "jwk: \"%s\" is not a string", name);
  size_t n = json_string_length(v);
  uint8_t *buf = tether__malloc(n / 4 * 3 + 3);
  int m = b64url_decode(json_string_value(v), n, buf, n / 4 * 3 + 3);
  if (m <= 0) {
    free(buf);
    return tether__fail(TETHER_EINVAL, "jwk: \"%s\" is not canonical unpadded base64url", name);
  }
  *out = buf;
  *len = (size_t)m;
  return 1;
}

static int bld_bn(OSSL_PARAM_BLD *b, const char *param, const uint8_t *v, size_t n, BIGNUM **keep) {
  BIGNUM *bn = BN_bin2bn(v, (int)n, NULL);
  if (bn == NULL || !OSSL_PARAM_BLD_push_BN(b, param, bn)) {
    BN_free(bn);
    return -1;
  }
  *keep = bn;
  return 0;
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *b, int selection) {
  OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(b);
  EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
  EVP_PKEY *pkey = NULL;
  if (params == NULL || c == NULL || EVP_PKEY_fromdata_init(c) <= 0 ||
      EVP_PKEY_fromdata(c, &pkey, selection, params) <= 0)
    pkey = NULL;
  EVP_PKEY_CTX_free(c);
  OSSL_PARAM_free(params);
  return pkey;
}

static int jwk_rsa(json_t *jwk, EVP_PKEY **out) {
  static const struct {
    const char *jwk, *param;
  } parts[] = {{"n", OSSL_PKEY_PARAM_RSA_N},          {"e", OSSL_PKEY_PARAM_RSA_E},
               {"d", OSSL_PKEY_PARAM_RSA_D},          {"p", OSSL_PKEY_PARAM_RSA_FACTOR1},
               {"q", OSSL_PKEY_PARAM_RSA_FACTOR2},    {"dp", OSSL_PKEY_PARAM_RSA_EXPONENT1},
               {"dq", OSSL_PKEY_PARAM_RSA_EXPONENT2}, {"qi", OSSL_PKEY_PARAM_RSA_COEFFICIENT1}};
  BIGNUM *bn[8] = {0};
  OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
  int rc = 0, have_d = 0;
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(parts) && rc == 0; i++) {
    uint8_t *v;
    size_t n;
    int r = jwk_bytes(jwk, parts[i].jwk, i < 2, &v, &n);
    if (r < 0)
      rc = r;
    else if (r > 0 && (i < 3 || have_d)) {
      if (i == 2) have_d = 1;
      if (bld_bn(b, parts[i].param, v, n, &bn[i]) < 0) rc = tether__fail(TETHER_EINVAL, "jwk: bad RSA member");
    }
    if (v) OPENSSL_clear_free(v, n);
  }
  if (rc == 0) {
    *out = pkey_fromdata("RSA", b, have_d ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY);
    if (*out == NULL) rc = tether__fail(TETHER_EINVAL, "jwk: OpenSSL refused the RSA key");
  }
  OSSL_PARAM_BLD_free(b);
  for (size_t i = 0; i < 8; i++) BN_clear_free(bn[i]);
  ERR_clear_error();
  return rc;
}

static int jwk_ec(json_t *jwk, const char *crv, EVP_PKEY **out) {
  const char *group;
  size_t coord;
  if (strcmp(crv, "P-256") == 0)
    group = "prime256v1", coord = 32;
  else if (strcmp(crv, "P-384") == 0)
    group = "secp384r1", coord = 48;
  else if (strcmp(crv, "P-521") == 0)
    group = "secp521r1", coord = 66;
  else
    return tether__fail(TETHER_EINVAL, "jwk: EC curve '%s' is not P-256, P-384 or P-521", crv);
  uint8_t *x = NULL, *y = NULL, *d = NULL;
  size_t xn, yn, dn = 0;
  int rc = 0;
  if (jwk_bytes(jwk, "x", 1, &x, &xn) < 0 || jwk_bytes(jwk, "y", 1, &y, &yn) < 0 || jwk_bytes(jwk, "d", 0, &d, &dn) < 0)
    rc = TETHER_EINVAL;
  else if (xn != coord || yn != coord || (d != NULL && dn != coord))
    rc = tether__fail(TETHER_EINVAL, "jwk: %s coordinates must be %zu bytes", crv, coord);
  OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
  BIGNUM *priv = NULL;
  uint8_t pub[1 + 2 * 66];
  if (rc == 0) {
    pub[0] = 0x04;
    memcpy(pub + 1, x, coord);
    memcpy(pub + 1 + coord, y, coord);
    if (!OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
        !OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * coord) ||
        (d != NULL && bld_bn(b, OSSL_PKEY_PARAM_PRIV_KEY, d, dn, &priv) < 0))
      rc = tether__fail(TETHER_EINVAL, "jwk: bad EC key");
  }
  if (rc == 0) {
    *out = pkey_fromdata("EC", b, d ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY);
    if (*out == NULL)
      rc = tether__fail(TETHER_EINVAL, "jwk: OpenSSL refused the %s key (is the point on the curve?)", crv);
  }
  OSSL_PARAM_BLD_free(b);
  BN_clear_free(priv);
  free(x);
  free(y);
  if (d) OPENSSL_clear_free(d, dn);
  ERR_clear_error();
  return rc;
}

static int jwk_okp(json_t *jwk, const char *crv, EVP_PKEY **out) {
  if (strcmp(crv, "Ed25519") != 0) return tether__fail(TETHER_EINVAL, "jwk: OKP curve '%s' is not Ed25519", crv);
  uint8_t *x = NULL, *d = NULL;
  size_t xn, dn = 0;
  int rc = 0;
  if (jwk_bytes(jwk, "x", 1, &x, &xn) < 0 || jwk_bytes(jwk, "d", 0, &d, &dn) < 0)
    rc = TETHER_EINVAL;
  else if (xn != 32 || (d != NULL && dn != 32))
    rc = tether__fail(TETHER_EINVAL, "jwk: Ed25519 keys are 32 bytes");
  if (rc == 0) {
    *out = d ? EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, d, dn)
             : EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, xn);
    uint8_t pub[32];
    size_t pn = sizeof(pub);
    if (*out == NULL)
      rc = tether__fail(TETHER_EINVAL, "jwk: OpenSSL refused the Ed25519 key");
    else if (d && (EVP_PKEY_get_raw_public_key(*out, pub, &pn) != 1 || pn != 32 || memcmp(pub, x, 32) != 0)) {
      EVP_PKEY_free(*out);
      *out = NULL;
      rc = tether__fail(TETHER_EINVAL, "jwk: Ed25519 \"x\" is not the public key of \"d\"");
    }
  }
  free(x);
  if (d) OPENSSL_clear_free(d, dn);
  ERR_clear_error();
  return rc;
}

/* One JWK into l. Returns 1 when added, 0 when skipped (not for signatures, or an unsupported type),
 * or an error. */
static int jwk_one(json_t *jwk, tether_jwt_alg alg, const char *want_kid, key_list *l) {
  if (!json_is_object(jwk)) return tether__fail(TETHER_EINVAL, "jwk: a key is not a JSON object");
  const char *kty = json_string_value(json_object_get(jwk, "kty"));
  const char *use = json_string_value(json_object_get(jwk, "use"));
  json_t *jkid = json_object_get(jwk, "kid");
  json_t *jalg = json_object_get(jwk, "alg");
  if (kty == NULL) return tether__fail(TETHER_EINVAL, "jwk: missing \"kty\"");
  if (jkid != NULL && !json_is_string(jkid)) return tether__fail(TETHER_EINVAL, "jwk: \"kid\" is not a string");
  if (want_kid != NULL && (jkid == NULL || strcmp(json_string_value(jkid), want_kid) != 0)) return 0;
  if (use != NULL && strcmp(use, "sig") != 0) return 0;
  if (jalg != NULL) {
    if (!json_is_string(jalg)) return tether__fail(TETHER_EINVAL, "jwk: \"alg\" is not a string");
    tether_jwt_alg a = tether_jwt_alg_from_name(json_string_value(jalg));
    if (a == TETHER_JWT_ALG_UNKNOWN) return 0; /* an algorithm we do not do (RSA-OAEP, ...) */
    if (alg != TETHER_JWT_ALG_UNKNOWN && a != alg)
      return tether__fail(TETHER_EINVAL, "jwk: the key says \"alg\":\"%s\" but %s was asked", algs[a].name,
                          tether_jwt_alg_name(alg));
    alg = a;
  }
  const char *crv = json_string_value(json_object_get(jwk, "crv"));
  EVP_PKEY *pkey = NULL;
  jwt_key *k = key_list_push(l);
  int rc;
  if (strcmp(kty, "oct") == 0) {
    uint8_t *secret;
    size_t n;
    rc = jwk_bytes(jwk, "k", 1, &secret, &n);
    if (rc > 0) {
      rc = key_set_secret(k, secret, n, alg);
      OPENSSL_clear_free(secret, n);
    }
  } else if (strcmp(kty, "RSA") == 0) {
    rc = jwk_rsa(jwk, &pkey);
    if (rc == 0) rc = key_set_pkey(k, pkey, alg);
  } else if (strcmp(kty, "EC") == 0 || strcmp(kty, "OKP") == 0) {
    if (crv == NULL)
      rc = tether__fail(TETHER_EINVAL, "jwk: missing \"crv\"");
    else
      rc = kty[0] == 'E' ? jwk_ec(jwk, crv, &pkey) : jwk_okp(jwk, crv, &pkey);
    if (rc == 0) rc = key_set_pkey(k, pkey, alg);
  } else {
    key_clear(k);
    l->n--;
    return 0;
  }
  if (rc == 0 && jkid != NULL) rc = set_kid(k, json_string_value(jkid), json_string_length(jkid));
  if (rc < 0) {
    key_clear(k);
    l->n--;
    return rc;
  }
  return 1;
}

/* A JWK or a JWKS ({"keys":[...]}). */
static int jwk_load(const char *json, size_t len, tether_jwt_alg alg, const char *want_kid, key_list *l) {
  json_error_t err;
  json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
  if (doc == NULL) return tether__fail(TETHER_EINVAL, "jwk: not JSON: %s (line %d)", err.text, err.line);
  json_t *keys = json_object_get(doc, "keys");
  int added = 0, rc = 0;
  if (json_is_array(keys)) {
    size_t i;
    json_t *jwk;
    json_array_foreach(keys, i, jwk) {
      rc = jwk_one(jwk, alg, want_kid, l);
      if (rc < 0) break;
      added += rc;
    }
  } else if (json_is_object(doc) && json_object_get(doc, "kty") != NULL) {
    rc = jwk_one(doc, alg, want_kid, l);
    added = rc > 0 ? rc : 0;
  } else {
    rc = tether__fail(TETHER_EINVAL, "jwk: neither a JWK (\"kty\") nor a JWKS (\"keys\")");
  }
  json_decref(doc);
  if (rc < 0) return rc;
  if (added == 0)
    return want_kid ? tether__fail(TETHER_EINVAL, "jwks: no signature key with kid '%s'", want_kid)
                    : tether__fail(TETHER_EINVAL, "jwks: no usable signature key");
  return added;
}

/* ---- key specifications ---- */

enum content { CONTENT_SECRET, CONTENT_PEM, CONTENT_JWK };

static int read_file(const char *path, char **data, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return tether__fail(TETHER_EINVAL, "jwt key: cannot open '%s': %s", path, strerror(errno));
  char *buf = tether__malloc(JWT_MAX_KEYFILE + 1);
  size_t n = fread(buf, 1, JWT_MAX_KEYFILE + 1, f);
  int bad = ferror(f);
  fclose(f);
  if (bad || n > JWT_MAX_KEYFILE) {
    free(buf);
    return tether__fail(TETHER_EINVAL, "jwt key: '%s' is unreadable or larger than %d bytes", path, JWT_MAX_KEYFILE);
  }
  buf[n] = '\0';
  *data = buf;
  *len = n;
  return 0;
}

/* Resolves a key specification to its bytes and what they are. */
static int spec_resolve(const char *spec, tether_jwt_alg alg, char **data, size_t *len, enum content *kind) {
  int classify = 1, is_file = 0;
  if (spec == NULL || spec[0] == '\0') return tether__fail(TETHER_EINVAL, "jwt key: empty key specification");
  if (strncmp(spec, "env:", 4) == 0) {
    const char *v = getenv(spec + 4);
    if (v == NULL || v[0] == '\0')
      return tether__fail(TETHER_EINVAL, "jwt key: environment variable %s is not set", spec + 4);
    *data = tether__strdup(v);
    *len = strlen(v);
  } else if (strncmp(spec, "file:", 5) == 0 || spec[0] == '/' || strncmp(spec, "./", 2) == 0 ||
             strncmp(spec, "../", 3) == 0) {
    int rc = read_file(spec[0] == 'f' ? spec + 5 : spec, data, len);
    if (rc < 0) return rc;
    is_file = 1;
  } else {
    struct stat st;
    if (strncmp(spec, "literal:", 8) == 0)
      spec += 8;
    else if (stat(spec, &st) == 0)
      return tether__fail(TETHER_EINVAL,
                          "jwt key: the key specification names an existing file: write ./NAME for the file or "
                          "literal:SECRET for the secret");
    *data = tether__strdup(spec);
    *len = strlen(spec);
    classify = 0;
  }
  *kind = CONTENT_SECRET;
  if (classify) {
    size_t i = 0;
    while (i < *len && is_ws((*data)[i])) i++;
    if (memmem(*data, *len, "-----BEGIN ", 11) != NULL)
      *kind = CONTENT_PEM;
    else if (i < *len && (*data)[i] == '{')
      *kind = CONTENT_JWK;
  }
  if (*kind == CONTENT_SECRET && is_file && *len > 0 && (*data)[*len - 1] == '\n') {
    (*len)--;
    if (*len > 0 && (*data)[*len - 1] == '\r') (*len)--;
  }
  if (*kind == CONTENT_PEM && alg != TETHER_JWT_ALG_UNKNOWN && algs[alg].fam == FAM_HMAC) {
    OPENSSL_clear_free(*data, *len);
    *data = NULL;
    return tether__fail(TETHER_EINVAL, "jwt key: %s%s is a PEM key; it cannot be an %s secret",
                        is_file ? "file " : "the key", is_file ? spec + (spec[0] == 'f' ? 5 : 0) : "", algs[alg].name);
  }
  return 0;
}

static int parse_alg_arg(const char *name, tether_jwt_alg *alg) {
  *alg = TETHER_JWT_ALG_UNKNOWN;
  if (name == NULL || name[0] == '\0') return 0;
  *alg = tether_jwt_alg_from_name(name);
  if (*alg == TETHER_JWT_ALG_UNKNOWN)
    return tether__fail(TETHER_EINVAL,
                        "jwt key: unknown algorithm '%s' (HS256/384/512, RS256/384/512, "
                        "PS256/384/512, ES256/384/512, EdDSA)",
                        name);
  return 0;
}

/* Loads the keys a specification names into l (a JWKS may give several). */
static int keys_from_spec(const char *spec, const char *alg_name, const char *kid, key_list *l) {
  pthread_once(&crypto_once, crypto_init);
  tether_jwt_alg alg;
  int rc = parse_alg_arg(alg_name, &alg);
  if (rc < 0) return rc;
  char *data = NULL;
  size_t len = 0;
  enum content kind = CONTENT_SECRET;
  rc = spec_resolve(spec, alg, &data, &len, &kind);
  if (rc < 0) return rc;
  if (kind == CONTENT_JWK) {
    rc = jwk_load(data, len, alg, kid, l);
  } else {
    jwt_key *k = key_list_push(l);
    if (kind == CONTENT_SECRET) {
      rc = key_set_secret(k, data, len, alg);
    } else {
      EVP_PKEY *pkey;
      rc = pem_load(data, len, &pkey);
      if (rc == 0) rc = key_set_pkey(k, pkey, alg);
    }
    if (rc == 0) rc = set_kid(k, kid, kid ? strlen(kid) : 0);
    if (rc < 0) {
      key_clear(k);
      l->n--;
    } else {
      rc = 1;
    }
  }
  OPENSSL_clear_free(data, len);
  return rc;
}

/* ---- signatures ---- */

static tls_slot *tls_slot_for(const jwt_key *k) {
  for (int i = 0; i < TLS_SLOTS; i++)
    if (tls.slot[i].key_id == k->id) return &tls.slot[i];
  int v = -1;
  for (int i = 0; i < TLS_SLOTS && v < 0; i++)
    if (tls.slot[i].key_id == 0) v = i;
  if (v < 0) v = (int)(tls.next++ % TLS_SLOTS);
  tls_slot *s = &tls.slot[v];
  slot_clear(s);
  tls_register();
  enum family fam = algs[k->alg].fam;
  int ok;
  if (fam == FAM_HMAC) {
    OSSL_PARAM params[2] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)algs[k->alg].md, 0),
                            OSSL_PARAM_construct_end()};
    s->mac = EVP_MAC_CTX_new(hmac_mac);
    ok = s->mac != NULL && EVP_MAC_init(s->mac, k->secret, k->secret_len, params) == 1;
  } else {
    s->pctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
    ok = s->pctx != NULL && EVP_PKEY_verify_init(s->pctx) == 1 &&
         EVP_PKEY_CTX_set_signature_md(s->pctx, alg_md[k->alg]) == 1;
    if (ok && fam == FAM_RSA) ok = EVP_PKEY_CTX_set_rsa_padding(s->pctx, RSA_PKCS1_PADDING) == 1;
    if (ok && fam == FAM_PSS)
      ok = EVP_PKEY_CTX_set_rsa_padding(s->pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
           EVP_PKEY_CTX_set_rsa_pss_saltlen(s->pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
           EVP_PKEY_CTX_set_rsa_mgf1_md(s->pctx, alg_md[k->alg]) == 1;
  }
  if (!ok) {
    ERR_clear_error();
    slot_clear(s);
    return NULL;
  }
  s->key_id = k->id;
  return s;
}

static int hmac(const jwt_key *k, const char *in, size_t n, uint8_t *out, size_t *outlen) {
  tls_slot *s = tls_slot_for(k);
  if (s == NULL) return -1;
  if (EVP_MAC_init(s->mac, NULL, 0, NULL) != 1 || EVP_MAC_update(s->mac, (const uint8_t *)in, n) != 1 ||
      EVP_MAC_final(s->mac, out, outlen, EVP_MAX_MD_SIZE) != 1) {
    ERR_clear_error();
    slot_clear(s);
    return -1;
  }
  return 0;
}

/* DER INTEGER of a big-endian unsigned value (not zero). */
static size_t der_int(uint8_t *out, const uint8_t *v, size_t n) {
  while (n > 1 && v[0] == 0) v++, n--;
  size_t pad = v[0] & 0x80 ? 1 : 0, o = 0;
  out[o++] = 0x02;
  out[o++] = (uint8_t)(n + pad);
  if (pad) out[o++] = 0;
  memcpy(out + o, v, n);
  return o + n;
}

/* r or s as received: must lie in [1, n-1] (CVE-2022-21449 accepted zeros). */
static int ec_scalar_ok(const uint8_t *v, const uint8_t *order, size_t n) {
  uint8_t any = 0;
  for (size_t i = 0; i < n; i++) any |= v[i];
  return any != 0 && memcmp(v, order, n) < 0;
}

/* 1 when sig is a valid signature of in[0..n) under k, else 0. */
static int sig_verify(const jwt_key *k, const char *in, size_t n, const uint8_t *sig, size_t siglen) {
  enum family fam = algs[k->alg].fam;
  if (siglen != k->sig_len) return 0;
  if (fam == FAM_HMAC) {
    uint8_t mac[EVP_MAX_MD_SIZE];
    size_t maclen = 0;
    return hmac(k, in, n, mac, &maclen) == 0 && maclen == siglen && CRYPTO_memcmp(mac, sig, siglen) == 0;
  }
  if (fam == FAM_EDDSA) {
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md != NULL && EVP_DigestVerifyInit_ex(md, NULL, NULL, NULL, NULL, k->pkey, NULL) == 1 &&
             EVP_DigestVerify(md, sig, siglen, (const uint8_t *)in, n) == 1;
    EVP_MD_CTX_free(md);
    if (!ok) ERR_clear_error();
    return ok;
  }
  uint8_t der[2 * (3 + 66) + 3];
  const uint8_t *s = sig;
  if (fam == FAM_EC) {
    size_t c = algs[k->alg].coord;
    if (!ec_scalar_ok(sig, k->order, c) || !ec_scalar_ok(sig + c, k->order, c)) return 0;
    uint8_t body[2 * (3 + 66)];
    size_t bl = der_int(body, sig, c);
    bl += der_int(body + bl, sig + c, c);
    size_t o = 0;
    der[o++] = 0x30;
    if (bl > 127) der[o++] = 0x81;
    der[o++] = (uint8_t)bl;
    memcpy(der + o, body, bl);
    s = der;
    siglen = o + bl;
  }
  uint8_t dg[EVP_MAX_MD_SIZE];
  unsigned int dlen = 0;
  tls_slot *slot = tls_slot_for(k);
  int ok = slot != NULL && EVP_Digest(in, n, dg, &dlen, alg_md[k->alg], NULL) == 1 &&
           EVP_PKEY_verify(slot->pctx, s, siglen, dg, dlen) == 1;
  if (!ok) ERR_clear_error();
  return ok;
}

/* Signs in[0..n) with k into sig (JWS form: raw r||s for ECDSA); returns the length or an error. */
static int sig_sign(const jwt_key *k, const char *in, size_t n, uint8_t *sig, size_t cap) {
  enum family fam = algs[k->alg].fam;
  if (fam == FAM_HMAC) {
    uint8_t mac[EVP_MAX_MD_SIZE];
    size_t maclen = 0;
    if (hmac(k, in, n, mac, &maclen) < 0 || maclen > cap) return tether__fail(TETHER_EINVAL, "jwt: HMAC failed");
    memcpy(sig, mac, maclen);
    return (int)maclen;
  }
  if (!k->has_private) return tether__fail(TETHER_EINVAL, "jwt: a public key cannot sign");
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  EVP_PKEY_CTX *pctx = NULL;
  uint8_t der[JWT_MAX_SIG + 16];
  size_t len = sizeof(der);
  int ok = md != NULL &&
           EVP_DigestSignInit_ex(md, &pctx, fam == FAM_EDDSA ? NULL : algs[k->alg].md, NULL, NULL, k->pkey, NULL) == 1;
  if (ok && fam == FAM_PSS)
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, alg_md[k->alg]) == 1;
  ok = ok && EVP_DigestSign(md, der, &len, (const uint8_t *)in, n) == 1;
  EVP_MD_CTX_free(md);
  if (!ok) {
    ERR_clear_error();
    return tether__fail(TETHER_EINVAL, "jwt: %s signing failed", algs[k->alg].name);
  }
  if (fam != FAM_EC) {
    if (len > cap) return tether__fail(TETHER_EINVAL, "jwt: signature too long");
    memcpy(sig, der, len);
    return (int)len;
  }
  size_t c = algs[k->alg].coord;
  const uint8_t *p = der;
  ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
  const BIGNUM *r = NULL, *s = NULL;
  if (es != NULL) ECDSA_SIG_get0(es, &r, &s);
  ok = es != NULL && 2 * c <= cap && BN_bn2binpad(r, sig, (int)c) == (int)c &&
       BN_bn2binpad(s, sig + c, (int)c) == (int)c;
  ECDSA_SIG_free(es);
  if (!ok) return tether__fail(TETHER_EINVAL, "jwt: cannot convert the ECDSA signature");
  return (int)(2 * c);
}

/* ---- the verifier ---- */

typedef struct known_header {
  char b64[48];
  size_t len;
  tether_jwt_alg alg;
} known_header;

struct tether_jwt_verifier {
  int64_t leeway_s;
  int require_exp;
  char *issuer;
  char *audience[TETHER_JWT_MAX_AUDIENCES];
  size_t audience_count;
  char *subject;
  size_t max_token;
  tether_jwt_clock_fn clock;
  void *clock_arg;
  int cache;          /* remember verified asymmetric tokens per thread */
  int weak_secret_ok; /* accept HS* secrets under TETHER_JWT_MIN_SECRET bytes */
  uint64_t id;        /* names the verifier in the per-thread cache; never reused */
  key_list keys;
  known_header known[2 * TETHER_JWT_ALG_COUNT]; /* {"alg":A,"typ":"JWT"} and {"alg":A} as base64url */
  size_t nknown;
};

void tether_jwt_verify_options_init(tether_jwt_verify_options *o) {
  memset(o, 0, sizeof(*o));
  o->leeway_s = TETHER_JWT_DEFAULT_LEEWAY_S;
  o->max_token_size = TETHER_JWT_DEFAULT_MAX_TOKEN;
}

int tether_jwt_verifier_new(const tether_jwt_verify_options *o, tether_jwt_verifier **out) {
  tether_jwt_verify_options def;
  *out = NULL;
  if (o == NULL) {
    tether_jwt_verify_options_init(&def);
    o = &def;
  }
  if (o->leeway_s < 0 || o->leeway_s > TETHER_JWT_MAX_LEEWAY_S)
    return tether__fail(TETHER_EINVAL, "jwt: leeway %lld s is outside [0, %d]", (long long)o->leeway_s,
                        TETHER_JWT_MAX_LEEWAY_S);
  size_t max = o->max_token_size ? o->max_token_size : TETHER_JWT_DEFAULT_MAX_TOKEN;
  if (max < 64 || max > TETHER_JWT_MAX_MAX_TOKEN)
    return tether__fail(TETHER_EINVAL, "jwt: max token size %zu is outside [64, %d]", max, TETHER_JWT_MAX_MAX_TOKEN);
  if (o->audience_count > TETHER_JWT_MAX_AUDIENCES)
    return tether__fail(TETHER_EINVAL, "jwt: at most %d audiences", TETHER_JWT_MAX_AUDIENCES);
  for (size_t i = 0; i < o->audience_count; i++)
    if (o->audience[i] == NULL) return tether__fail(TETHER_EINVAL, "jwt: audience %zu is NULL", i);
  pthread_once(&crypto_once, crypto_init);
  for (int a = 1; a < TETHER_JWT_ALG_COUNT; a++)
    if (algs[a].md != NULL && alg_md[a] == NULL)
      return tether__fail(TETHER_EINVAL, "jwt: OpenSSL has no %s digest", algs[a].md);
  if (hmac_mac == NULL) return tether__fail(TETHER_EINVAL, "jwt: OpenSSL has no HMAC");
  tether_jwt_verifier *v = tether__calloc(1, sizeof(*v));
  v->leeway_s = o->leeway_s;
  v->require_exp = o->require_exp;
  v->issuer = o->issuer ? tether__strdup(o->issuer) : NULL;
  v->subject = o->subject ? tether__strdup(o->subject) : NULL;
  for (size_t i = 0; i < o->audience_count; i++) v->audience[i] = tether__strdup(o->audience[i]);
  v->audience_count = o->audience_count;
  v->max_token = max;
  v->clock = o->clock;
  v->clock_arg = o->clock_arg;
  v->cache = o->cache != 0;
  v->weak_secret_ok = o->weak_secret_ok != 0;
  v->id = atomic_fetch_add(&next_key_id, 1);
  *out = v;
  return 0;
}

void tether_jwt_verifier_free(tether_jwt_verifier *v) {
  if (v == NULL) return;
  key_list_free(&v->keys);
  free(v->issuer);
  free(v->subject);
  for (size_t i = 0; i < v->audience_count; i++) free(v->audience[i]);
  free(v);
}

size_t tether_jwt_verifier_key_count(const tether_jwt_verifier *v) { return v ? v->keys.n : 0; }

static void add_known(tether_jwt_verifier *v, const char *json, tether_jwt_alg alg) {
  known_header *h = &v->known[v->nknown];
  h->len = tether__base64url_encode((const uint8_t *)json, strlen(json), h->b64);
  h->alg = alg;
  for (size_t i = 0; i < v->nknown; i++)
    if (v->known[i].len == h->len && memcmp(v->known[i].b64, h->b64, h->len) == 0) return;
  v->nknown++;
}

static void keys_added(tether_jwt_verifier *v) {
  for (size_t i = 0; i < v->keys.n; i++) {
    char json[40];
    tether_jwt_alg a = v->keys.k[i].alg;
    snprintf(json, sizeof(json), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", algs[a].name);
    add_known(v, json, a);
    snprintf(json, sizeof(json), "{\"alg\":\"%s\"}", algs[a].name);
    add_known(v, json, a);
  }
}

static int verifier_take(tether_jwt_verifier *v, key_list *l, int rc) {
  if (rc >= 0 && v == NULL) rc = tether__fail(TETHER_EINVAL, "jwt: no verifier");
  if (rc >= 0 && !v->weak_secret_ok) rc = keys_check_strength(l);
  if (rc < 0) {
    key_list_free(l);
    return rc;
  }
  v->keys.k = tether__realloc(v->keys.k, (v->keys.n + l->n) * sizeof(jwt_key));
  memcpy(v->keys.k + v->keys.n, l->k, l->n * sizeof(jwt_key));
  v->keys.n += l->n;
  int added = (int)l->n;
  free(l->k);
  keys_added(v);
  return added;
}

int tether_jwt_verifier_add_key(tether_jwt_verifier *v, const char *spec, const char *alg, const char *kid) {
  key_list l = {0};
  return verifier_take(v, &l, keys_from_spec(spec, alg, kid, &l));
}

int tether_jwt_verifier_add_secret(tether_jwt_verifier *v, const void *secret, size_t len, tether_jwt_alg alg,
                                   const char *kid) {
  key_list l = {0};
  jwt_key *k = key_list_push(&l);
  int rc = key_set_secret(k, secret, len, alg);
  if (rc == 0) rc = set_kid(k, kid, kid ? strlen(kid) : 0);
  return verifier_take(v, &l, rc);
}

int tether_jwt_verifier_add_pem(tether_jwt_verifier *v, const char *pem, size_t len, tether_jwt_alg alg,
                                const char *kid) {
  key_list l = {0};
  EVP_PKEY *pkey;
  int rc = pem_load(pem, len, &pkey);
  if (rc == 0) {
    jwt_key *k = key_list_push(&l);
    rc = key_set_pkey(k, pkey, alg);
    if (rc == 0) rc = set_kid(k, kid, kid ? strlen(kid) : 0);
  }
  return verifier_take(v, &l, rc);
}

int tether_jwt_verifier_add_jwk(tether_jwt_verifier *v, const char *json, size_t len, tether_jwt_alg alg) {
  key_list l = {0};
  return verifier_take(v, &l, jwk_load(json, len, alg, NULL, &l));
}

/* ---- verification ---- */

typedef struct header_info {
  tether_jwt_alg alg;
  int has_kid;
  char kid[JWT_MAX_KID + 1];
  size_t kid_len; /* > JWT_MAX_KID: too long to match any key */
} header_info;

static int header_from_json(json_t *j, header_info *h) {
  json_t *alg = json_object_get(j, "alg"), *kid = json_object_get(j, "kid");
  if (!json_is_string(alg)) return tether__fail(TETHER_JWT_EMALFORMED, "jwt malformed: header has no \"alg\" string");
  if (json_object_get(j, "crit") != NULL)
    return tether__fail(TETHER_JWT_ECRIT, "jwt header has \"crit\": extensions are not supported");
  const char *a = json_string_value(alg);
  if (strcasecmp(a, "none") == 0) return tether__fail(TETHER_JWT_EUNSIGNED, "jwt signature is required (alg none)");
  h->alg = tether_jwt_alg_from_name(a);
  if (h->alg == TETHER_JWT_ALG_UNKNOWN) return tether__fail(TETHER_JWT_EALG, "invalid algorithm '%.32s'", a);
  if (kid != NULL) {
    if (!json_is_string(kid)) return tether__fail(TETHER_JWT_EMALFORMED, "jwt malformed: \"kid\" is not a string");
    h->has_kid = 1;
    h->kid_len = json_string_length(kid);
    if (h->kid_len <= JWT_MAX_KID) memcpy(h->kid, json_string_value(kid), h->kid_len + 1);
  }
  return 0;
}

static int header_from_members(const char *p, const member_t *m, int count, header_info *h) {
  const member_t *alg = NULL, *kid = NULL;
  for (int i = 0; i < count; i++) {
    if (member_is(p, &m[i], "alg", 3))
      alg = &m[i];
    else if (member_is(p, &m[i], "kid", 3))
      kid = &m[i];
    else if (member_is(p, &m[i], "crit", 4))
      return tether__fail(TETHER_JWT_ECRIT, "jwt header has \"crit\": extensions are not supported");
  }
  if (alg == NULL || JT_TYPE(alg->type) != JT_STRING)
    return tether__fail(TETHER_JWT_EMALFORMED, "jwt malformed: header has no \"alg\" string");
  char a[16];
  long an = jstr_unescape(p + alg->value, alg->value_len, (alg->type & JT_VAL_ESC) != 0, a, sizeof(a));
  if (an < 0) return tether__fail(TETHER_JWT_EALG, "invalid algorithm (%u bytes)", alg->value_len);
  if (strcasecmp(a, "none") == 0) return tether__fail(TETHER_JWT_EUNSIGNED, "jwt signature is required (alg none)");
  h->alg = alg_from_span(a, (size_t)an);
  if (h->alg == TETHER_JWT_ALG_UNKNOWN) return tether__fail(TETHER_JWT_EALG, "invalid algorithm '%s'", a);
  if (kid != NULL) {
    if (JT_TYPE(kid->type) != JT_STRING)
      return tether__fail(TETHER_JWT_EMALFORMED, "jwt malformed: \"kid\" is not a string");
    h->has_kid = 1;
    long kn = jstr_unescape(p + kid->value, kid->value_len, (kid->type & JT_VAL_ESC) != 0, h->kid, sizeof(h->kid));
    h->kid_len = kn < 0 ? JWT_MAX_KID + 1 : (size_t)kn;
    if (kn < 0) h->kid[JWT_MAX_KID] = '\0';
  }
  return 0;
}

static int header_parse(const tether_jwt_verifier *v, const char *b64, size_t n, header_info *h) {
  h->has_kid = 0;
  h->kid_len = 0;
  h->kid[0] = '\0';
  for (size_t i = 0; i < v->nknown; i++) {
    if (v->known[i].len == n && memcmp(v->known[i].b64, b64, n) == 0) {
      h->alg = v->known[i].alg;
      return 0;
    }
  }
  uint8_t small[1024];
  size_t cap = n / 4 * 3 + 3;
  uint8_t *buf = cap <= sizeof(small) ? small : tether__malloc(cap);
  int len = b64url_decode(b64, n, buf, cap), rc;
  if (len < 0) {
    rc = tether__fail(TETHER_JWT_EENCODING, "jwt header is not strict base64url");
  } else {
    member_t m[JWT_HEADER_MEMBERS];
    int count;
    const char *p = (const char *)buf;
    int r = scan_object(p, (size_t)len, m, JWT_HEADER_MEMBERS, &count);
    if (r == SCAN_OK) {
      rc = header_from_members(p, m, count, h);
    } else if (r == SCAN_DUP) {
      rc = tether__fail(TETHER_JWT_EDUPLICATE, "jwt header has a duplicate member name");
    } else if (r == SCAN_INVALID) {
      rc = tether__fail(TETHER_JWT_EMALFORMED, "jwt malformed: header is not JSON");
    } else if (memchr(p, '\0', (size_t)len) != NULL) {
      rc = tether__fail(TETHER_JWT_EMALFORMED, "jwt malformed: NUL byte in the header");
    } else {
      json_error_t err;
      json_t *j = json_loadb(p, (size_t)len, JSON_REJECT_DUPLICATES, &err);
      if (j == NULL && json_error_code(&err) == json_error_duplicate_key)
        rc = tether__fail(TETHER_JWT_EDUPLICATE, "jwt header has a duplicate member name");
      else if (!json_is_object(j))
        rc = tether__fail(TETHER_JWT_EMALFORMED, "jwt malformed: header is not a JSON object");
      else
        rc = header_from_json(j, h);
      json_decref(j);
    }
  }
  if (buf != small) free(buf);
  return rc;
}

static int kid_matches(const jwt_key *k, const header_info *h) {
  return h->kid_len == k->kid_len && memcmp(h->kid, k->kid, k->kid_len) == 0;
}

/* Everything up to and including the signature. */
static int jws_check(const tether_jwt_verifier *v, const char *tok, size_t len, const char **payload,
                     size_t *payload_len, tether_jwt_alg *alg_out, int *key_index) {
  if (v == NULL) return tether__fail(TETHER_EINVAL, "jwt: no verifier");
  if (tok == NULL) return tether__fail(TETHER_JWT_EMALFORMED, "jwt must be provided");
  if (len > v->max_token)
    return tether__fail(TETHER_JWT_ETOOLARGE, "jwt of %zu bytes is larger than %zu", len, v->max_token);
  const char *d1 = memchr(tok, '.', len);
  const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
  if (d2 == NULL) return tether__fail(TETHER_JWT_EMALFORMED, "jwt malformed: not three segments");
  const char *sig_b64 = d2 + 1;
  size_t sig_b64_len = len - (size_t)(sig_b64 - tok);
  if (memchr(sig_b64, '.', sig_b64_len) != NULL)
    return tether__fail(TETHER_JWT_EMALFORMED, "jwt malformed: more than three segments");
  if (d1 == tok) return tether__fail(TETHER_JWT_EMALFORMED, "jwt malformed: empty header");
  header_info h;
  int rc = header_parse(v, tok, (size_t)(d1 - tok), &h);
  if (rc < 0) return rc;
  if (sig_b64_len == 0) return tether__fail(TETHER_JWT_EUNSIGNED, "jwt signature is required");
  if (sig_b64_len > (JWT_MAX_SIG * 4 + 2) / 3)
    return tether__fail(TETHER_JWT_ESIGNATURE, "invalid signature: %zu characters is too long", sig_b64_len);
  uint8_t sig[JWT_MAX_SIG + 3];
  int siglen = b64url_decode(sig_b64, sig_b64_len, sig, sizeof(sig));
  if (siglen < 0) return tether__fail(TETHER_JWT_EENCODING, "jwt signature is not strict base64url");
  size_t signed_len = (size_t)(d2 - tok);
  /* the cache: the same token text, verified before by this verifier (never for HMAC: as cheap as a hash) */
  uint8_t digest[32];
  unsigned int dlen = 0;
  int cache = v->cache && algs[h.alg].fam != FAM_HMAC &&
              EVP_Digest(tok, len, digest, &dlen, alg_md[TETHER_JWT_HS256], NULL) == 1;
  if (cache) {
    int idx = vcache_lookup(v->id, digest);
    if (idx >= 0) {
      *payload = d1 + 1;
      *payload_len = (size_t)(d2 - d1 - 1);
      *alg_out = h.alg;
      *key_index = idx;
      return 0;
    }
  }
  int candidates = 0, kid_other_alg = 0, alg_other_kid = 0;
  for (size_t i = 0; i < v->keys.n; i++) {
    const jwt_key *k = &v->keys.k[i];
    int kid_ok = !h.has_kid || k->kid == NULL || kid_matches(k, &h);
    if (k->alg != h.alg) {
      kid_other_alg |= h.has_kid && k->kid != NULL && kid_matches(k, &h);
      continue;
    }
    if (!kid_ok) {
      alg_other_kid = 1;
      continue;
    }
    candidates++;
    if (sig_verify(k, tok, signed_len, sig, (size_t)siglen)) {
      if (cache) vcache_store(v->id, digest, (int)i);
      *payload = d1 + 1;
      *payload_len = (size_t)(d2 - d1 - 1);
      *alg_out = h.alg;
      *key_index = (int)i;
      return 0;
    }
  }
  if (candidates > 0) return tether__fail(TETHER_JWT_ESIGNATURE, "invalid signature (%s)", algs[h.alg].name);
  if (alg_other_kid && !kid_other_alg)
    return tether__fail(TETHER_JWT_ENOKEY, "no %s key has kid '%.64s'", algs[h.alg].name, h.kid);
  if (v->keys.n == 0) return tether__fail(TETHER_JWT_ENOKEY, "jwt verifier has no key");
  return tether__fail(TETHER_JWT_EALG, "invalid algorithm: no configured key does %s", algs[h.alg].name);
}

int tether_jws_verify(const tether_jwt_verifier *v, const char *token, size_t len, uint8_t *out, size_t cap,
                      size_t *out_len) {
  const char *p;
  size_t pn;
  tether_jwt_alg alg;
  int idx;
  int rc = jws_check(v, token, len, &p, &pn, &alg, &idx);
  if (rc < 0) return rc;
  int n = b64url_decode(p, pn, out, cap);
  if (n == TETHER_E2BIG) return tether__fail(TETHER_E2BIG, "jws payload does not fit in %zu bytes", cap);
  if (n < 0) return tether__fail(TETHER_JWT_EENCODING, "jwt payload is not strict base64url");
  *out_len = (size_t)n;
  return 0;
}

/* ---- claims ---- */

static char *claims_buf(const tether_jwt_claims *c) { return c->payload_cap ? c->payload : (char *)c->inline_buf; }

void tether_jwt_claims_init(tether_jwt_claims *c) {
  c->payload = NULL;
  c->payload_len = 0;
  c->payload_cap = 0;
  c->json = NULL;
  c->nmembers = 0;
  c->valid = 0;
  c->alg = TETHER_JWT_ALG_UNKNOWN;
  c->key_index = -1;
}

void tether_jwt_claims_free(tether_jwt_claims *c) {
  if (c == NULL) return;
  json_decref(c->json);
  free(c->payload_cap ? c->payload : NULL);
  tether_jwt_claims_init(c);
}

static void claims_reset(tether_jwt_claims *c) {
  json_decref(c->json);
  c->json = NULL;
  c->valid = 0;
  c->nmembers = 0;
  c->payload_len = 0;
}

/* Finds top-level member name in the verified claims. */
static int claims_find(const tether_jwt_claims *c, const char *name, size_t nlen, member_t *out) {
  const char *p = claims_buf(c);
  if (c->nmembers >= 0) {
    for (int i = 0; i < c->nmembers; i++) {
      if (member_is(p, &c->member[i], name, nlen)) {
        *out = c->member[i];
        return 1;
      }
    }
    return 0;
  }
  walker w;
  walk_begin(&w, p, c->payload_len);
  while (walk_next(&w, out))
    if (member_is(p, out, name, nlen)) return 1;
  return 0;
}

/* A numeric date in [0, JWT_MAX_DATE]: 0, or -1 when it is not one. */
static int date_value(const char *p, const member_t *m, double *out) {
  const char *s = p + m->value;
  size_t n = m->value_len;
  if (JT_TYPE(m->type) == JT_INT) {
    if (n == 0 || s[0] == '-' || n > 12) return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) v = v * 10 + (s[i] - '0');
    if (v > JWT_MAX_DATE) return -1;
    *out = (double)v;
    return 0;
  }
  if (JT_TYPE(m->type) != JT_REAL) return -1;
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

static int string_member_is(const char *p, const member_t *m, const char *want) {
  return JT_TYPE(m->type) == JT_STRING &&
         jstr_equal(p + m->value, m->value_len, (m->type & JT_VAL_ESC) != 0, want, strlen(want));
}

static int audience_ok(const tether_jwt_verifier *v, const char *p, const member_t *aud) {
  if (JT_TYPE(aud->type) == JT_STRING) {
    for (size_t a = 0; a < v->audience_count; a++)
      if (string_member_is(p, aud, v->audience[a])) return 1;
    return 0;
  }
  if (JT_TYPE(aud->type) != JT_ARRAY) return 0;
  size_t end = aud->value + aud->value_len, i = aud->value + 1;
  for (;;) {
    i = skip_ws(p, end, i);
    if (i < end && p[i] == ',') i = skip_ws(p, end, i + 1);
    if (i >= end || p[i] == ']') return 0;
    uint8_t t;
    size_t e = skip_value_v(p, end, i, &t);
    if (t == JT_STRING) {
      member_t el = {.value = (uint32_t)i + 1, .value_len = (uint32_t)(e - i - 2), .type = JT_STRING};
      if (memchr(p + i + 1, '\\', el.value_len)) el.type |= JT_VAL_ESC;
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
static void claims_registered(const tether_jwt_claims *c, member_t found[C_COUNT], int have[C_COUNT]) {
  const char *p = claims_buf(c);
  if (c->nmembers < 0) {
    for (int k = 0; k < C_COUNT; k++) have[k] = claims_find(c, registered[k], 3, &found[k]);
    return;
  }
  for (int i = 0; i < c->nmembers; i++) {
    const member_t *m = &c->member[i];
    if (m->type & JT_KEY_ESC) {
      for (int k = 0; k < C_COUNT; k++)
        if (member_is(p, m, registered[k], 3)) found[k] = *m, have[k] = 1;
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

static int claims_check(const tether_jwt_verifier *v, const tether_jwt_claims *c) {
  const char *p = claims_buf(c);
  member_t found[C_COUNT];
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
static int claims_load(tether_jwt_claims *c, const char *b64, size_t n) {
  size_t need = n / 4 * 3 + 3;
  if (need > TETHER_JWT_CLAIMS_INLINE && need > c->payload_cap) {
    free(c->payload_cap ? c->payload : NULL);
    c->payload = tether__malloc(need);
    c->payload_cap = need;
  }
  char *buf = claims_buf(c);
  int len = b64url_decode(b64, n, (uint8_t *)buf, c->payload_cap ? c->payload_cap : TETHER_JWT_CLAIMS_INLINE);
  if (len < 0) return tether__fail(TETHER_JWT_EENCODING, "jwt payload is not strict base64url");
  c->payload_len = (size_t)len;
  int count;
  int r = scan_object(buf, (size_t)len, c->member, TETHER_JWT_CLAIMS_MEMBERS, &count);
  if (r == SCAN_DUP) return tether__fail(TETHER_JWT_EDUPLICATE, "jwt claims have a duplicate member name");
  if (r == SCAN_INVALID) return tether__fail(TETHER_JWT_EMALFORMED, "jwt malformed: claims are not JSON");
  if (r == SCAN_OK) {
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
  walker w;
  walk_begin(&w, buf, (size_t)len);
  member_t m;
  count = 0;
  while (walk_next(&w, &m)) {
    if (count == TETHER_JWT_CLAIMS_MEMBERS) {
      count = -1;
      break;
    }
    c->member[count++] = m;
  }
  c->nmembers = count;
  return 0;
}

int tether_jwt_verify(const tether_jwt_verifier *v, const char *token, size_t len, tether_jwt_claims *claims) {
  tether_jwt_claims local;
  tether_jwt_claims *c = claims;
  if (c == NULL) {
    c = &local;
    tether_jwt_claims_init(c);
  } else {
    claims_reset(c);
  }
  const char *p;
  size_t pn;
  tether_jwt_alg alg;
  int idx;
  int rc = jws_check(v, token, len, &p, &pn, &alg, &idx);
  if (rc == 0) rc = claims_load(c, p, pn);
  if (rc == 0) rc = claims_check(v, c);
  if (rc == 0) {
    c->valid = 1;
    c->alg = alg;
    c->key_index = idx;
  }
  if (c == &local) tether_jwt_claims_free(c);
  return rc;
}

json_t *tether_jwt_claims_json(tether_jwt_claims *c) {
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
  member_t m;
  if (c == NULL || !c->valid || name == NULL || !claims_find(c, name, strlen(name), &m))
    return tether__fail(TETHER_ENOTFOUND, "jwt has no claim '%s'", name ? name : "");
  const char *p = claims_buf(c) + m.value;
  int t = JT_TYPE(m.type);
  long n;
  if (t == JT_STRING) {
    n = jstr_unescape(p, m.value_len, (m.type & JT_VAL_ESC) != 0, buf, cap);
  } else if (t == JT_ARRAY || t == JT_OBJECT) {
    size_t o = 0;
    n = 0;
    for (size_t i = 0; i < m.value_len && n >= 0;) {
      if (p[i] == '"') {
        size_t e = skip_string_v(p, m.value_len, i);
        if (o + (e - i) + 1 > cap)
          n = -1;
        else
          memcpy(buf + o, p + i, e - i), o += e - i;
        i = e;
      } else if (is_ws(p[i])) {
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
    n = jstr_unescape(p, m.value_len, 0, buf, cap);
  }
  if (n < 0) return tether__fail(TETHER_E2BIG, "jwt claim '%s' does not fit in %zu bytes", name, cap);
  return (int)n;
}

/* ---- signing ---- */

struct tether_jwt_signer {
  jwt_key key;
  tether_jwt_clock_fn clock;
  void *clock_arg;
};

static int signer_from(key_list *l, int rc, const char *kid, int flags, tether_jwt_signer **out) {
  *out = NULL;
  if (rc >= 0 && !(flags & TETHER_JWT_WEAK_SECRET_OK)) rc = keys_check_strength(l);
  if (rc >= 0 && l->n != 1)
    rc = tether__fail(TETHER_EINVAL, "jwt signer: the key set has %zu keys: name one with kid", l->n);
  if (rc >= 0 && !l->k[0].has_private)
    rc = tether__fail(TETHER_EINVAL, "jwt signer: a public key cannot sign (give the private key)");
  if (rc >= 0 && kid != NULL && l->k[0].kid == NULL) rc = set_kid(&l->k[0], kid, strlen(kid));
  if (rc < 0) {
    key_list_free(l);
    return rc;
  }
  tether_jwt_signer *s = tether__calloc(1, sizeof(*s));
  s->key = l->k[0];
  free(l->k);
  *out = s;
  return 0;
}

int tether_jwt_signer_new(const char *spec, const char *alg, const char *kid, tether_jwt_signer **out) {
  return tether_jwt_signer_new_ex(spec, alg, kid, 0, out);
}

int tether_jwt_signer_new_ex(const char *spec, const char *alg, const char *kid, int flags, tether_jwt_signer **out) {
  key_list l = {0};
  int rc = keys_from_spec(spec, alg, kid, &l);
  return signer_from(&l, rc, NULL, flags, out);
}

int tether_jwt_signer_new_secret(const void *secret, size_t len, tether_jwt_alg alg, const char *kid,
                                 tether_jwt_signer **out) {
  return tether_jwt_signer_new_secret_ex(secret, len, alg, kid, 0, out);
}

int tether_jwt_signer_new_secret_ex(const void *secret, size_t len, tether_jwt_alg alg, const char *kid, int flags,
                                    tether_jwt_signer **out) {
  pthread_once(&crypto_once, crypto_init);
  key_list l = {0};
  int rc = key_set_secret(key_list_push(&l), secret, len, alg);
  return signer_from(&l, rc, kid, flags, out);
}

int tether_jwt_signer_new_pem(const char *pem, size_t len, tether_jwt_alg alg, const char *kid,
                              tether_jwt_signer **out) {
  pthread_once(&crypto_once, crypto_init);
  key_list l = {0};
  EVP_PKEY *pkey;
  int rc = pem_load(pem, len, &pkey);
  if (rc == 0) rc = key_set_pkey(key_list_push(&l), pkey, alg);
  return signer_from(&l, rc, kid, 0, out);
}

void tether_jwt_signer_free(tether_jwt_signer *s) {
  if (s == NULL) return;
  key_clear(&s->key);
  free(s);
}

void tether_jwt_signer_set_clock(tether_jwt_signer *s, tether_jwt_clock_fn clock, void *arg) {
  s->clock = clock;
  s->clock_arg = arg;
}

tether_jwt_alg tether_jwt_signer_alg(const tether_jwt_signer *s) { return s ? s->key.alg : TETHER_JWT_ALG_UNKNOWN; }

/* header.payload (both JSON texts) signed: a malloc'd compact JWS, or NULL with *err set. */
static char *jws_compact(const jwt_key *k, const char *header, size_t hn, const char *payload, size_t pn, int *err) {
  size_t cap = (hn + 2) / 3 * 4 + 1 + (pn + 2) / 3 * 4 + 1 + (JWT_MAX_SIG + 2) / 3 * 4 + 2;
  char *tok = tether__malloc(cap);
  size_t o = tether__base64url_encode((const uint8_t *)header, hn, tok);
  tok[o++] = '.';
  o += tether__base64url_encode((const uint8_t *)payload, pn, tok + o);
  uint8_t sig[JWT_MAX_SIG];
  int sl = sig_sign(k, tok, o, sig, sizeof(sig));
  if (sl < 0) {
    *err = sl;
    free(tok);
    return NULL;
  }
  tok[o++] = '.';
  tether__base64url_encode(sig, (size_t)sl, tok + o);
  return tok;
}

int tether_jwt_sign(const tether_jwt_signer *s, const json_t *payload, int64_t expires_in_s, char **token) {
  *token = NULL;
  if (s == NULL || !json_is_object(payload)) return tether__fail(TETHER_EINVAL, "jwt sign: payload must be an object");
  json_t *iat_in = json_object_get(payload, "iat");
  if (iat_in != NULL && !json_is_number(iat_in))
    return tether__fail(TETHER_EINVAL, "jwt sign: \"iat\" should be a number of seconds");
  if (expires_in_s != TETHER_JWT_NO_EXPIRY && json_object_get(payload, "exp") != NULL)
    return tether__fail(TETHER_EINVAL, "jwt sign: expires_in given but the payload already has \"exp\"");
  int64_t now_ms = s->clock ? s->clock(s->clock_arg) : tether_now_ms();
  int64_t iat = now_ms >= 0 ? now_ms / 1000 : -((-now_ms + 999) / 1000);
  json_t *claims = json_copy((json_t *)payload);
  /* jsonwebtoken: timestamp = payload.iat || now; the payload's own iat keeps its place */
  if (iat_in != NULL && json_number_value(iat_in) != 0) {
    if (expires_in_s != TETHER_JWT_NO_EXPIRY && !json_is_integer(iat_in)) {
      json_decref(claims);
      return tether__fail(TETHER_EINVAL, "jwt sign: a fractional \"iat\" cannot take expires_in");
    }
    iat = json_is_integer(iat_in) ? json_integer_value(iat_in) : iat;
  } else {
    json_object_set_new(claims, "iat", json_integer(iat));
  }
  if (expires_in_s != TETHER_JWT_NO_EXPIRY) {
    if ((expires_in_s > 0 && iat > INT64_MAX - expires_in_s) || (expires_in_s < 0 && iat < INT64_MIN - expires_in_s)) {
      json_decref(claims);
      return tether__fail(TETHER_EINVAL, "jwt sign: iat + expires_in overflows");
    }
    json_object_set_new(claims, "exp", json_integer(iat + expires_in_s));
  }
  json_t *hdr = json_object();
  json_object_set_new(hdr, "alg", json_string(algs[s->key.alg].name));
  json_object_set_new(hdr, "typ", json_string("JWT"));
  if (s->key.kid) json_object_set_new(hdr, "kid", json_stringn(s->key.kid, s->key.kid_len));
  char *h = json_dumps(hdr, JSON_COMPACT);
  char *p = json_dumps(claims, JSON_COMPACT);
  json_decref(hdr);
  json_decref(claims);
  int err = 0;
  if (h == NULL || p == NULL)
    err = tether__fail(TETHER_EINVAL, "jwt sign: payload cannot be serialised");
  else
    *token = jws_compact(&s->key, h, strlen(h), p, strlen(p), &err);
  free(h);
  free(p);
  return *token ? 0 : err;
}
