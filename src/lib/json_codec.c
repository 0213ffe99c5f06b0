/* libtether: JSON as JSON.stringify writes it, and a check for text already in that form.
 *
 * Numbers follow ECMA-262's Number::toString: the fewest significant digits that read back as the same
 * double (found with printf's correctly rounded %.*e and strtod, the neighbours of each candidate tried
 * too, for the doubles whose rounding interval is lopsided), laid out without an exponent from 1e-6 up to
 * 1e21. Strings escape '"', '\\' and the control characters (\b \f \n \r \t, else \u00xx in lower case),
 * nothing else. tests/fuzz/fuzz_json_codec.c holds this against jansson, tests/interop/json_codec.js
 * against Node's own JSON.stringify. */
#include "json_codec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "json.h"

#define MAX_DEPTH 64 /* deeper values are left to jansson */
#define MAX_MEMBERS TETHER__JSON_MAX_MEMBERS
#define EXACT_INT 9007199254740992LL /* 2^53 */

static inline int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Adds delta (+1 or -1) to the decimal digit string d in place; 0 when the length would change. */
static int digits_step(char *d, size_t k, int delta) {
  for (size_t i = k; i-- > 0;) {
    int v = d[i] - '0' + delta;
    if (v >= 0 && v <= 9) {
      d[i] = (char)('0' + v);
      return i > 0 || d[0] != '0';
    }
    d[i] = delta > 0 ? '0' : '9';
  }
  return 0;
}

/* Does digits d (k of them) times 10^exp read back as v? Written without a decimal point, so that the
 * locale's does not matter to strtod. */
static int reads_back(const char *d, size_t k, int exp, double v) {
  char t[64];
  snprintf(t, sizeof(t), "%.*se%d", (int)k, d, exp);
  return strtod(t, NULL) == v;
}

/* The shortest digits of v > 0 (finite) into d, and the decimal exponent n of the point: v = 0.d * 10^n. */
static size_t shortest(double v, char d[24], int *n) {
  char buf[48];
  for (int p = 1; p <= 17; p++) {
    snprintf(buf, sizeof(buf), "%.*e", p - 1, v);
    size_t k = 0;
    const char *c = buf;
    for (; *c && *c != 'e'; c++)
      if (is_digit(*c)) d[k++] = *c;
    int e = atoi(c + 1);
    int exp = e - p + 1;
    int ok = reads_back(d, k, exp, v);
    if (!ok && p < 17) { /* the nearest p digits miss, but a neighbour may still round to v */
      char alt[24];
      for (int delta = -1; delta <= 1 && !ok; delta += 2) {
        memcpy(alt, d, k);
        if (digits_step(alt, k, delta) && reads_back(alt, k, exp, v)) {
          memcpy(d, alt, k);
          ok = 1;
        }
      }
    }
    if (ok || p == 17) {
      while (k > 1 && d[k - 1] == '0') k--;
      *n = e + 1;
      return k;
    }
  }
  return 0; /* not reached */
}

size_t tether__json_number(double v, char out[TETHER__JSON_NUMBER_MAX]) {
  if (!isfinite(v)) return (size_t)snprintf(out, TETHER__JSON_NUMBER_MAX, "null");
  if (v == 0) return (size_t)snprintf(out, TETHER__JSON_NUMBER_MAX, "0");
  size_t o = 0;
  if (v < 0) {
    out[o++] = '-';
    v = -v;
  }
  char d[24];
  int n;
  size_t k = shortest(v, d, &n);
  if ((int)k <= n && n <= 21) { /* an integer: the digits, then zeros */
    memcpy(out + o, d, k);
    o += k;
    for (int z = (int)k; z < n; z++) out[o++] = '0';
  } else if (n > 0 && n <= 21) { /* a point inside the digits */
    memcpy(out + o, d, (size_t)n);
    o += (size_t)n;
    out[o++] = '.';
    memcpy(out + o, d + n, k - (size_t)n);
    o += k - (size_t)n;
  } else if (n > -6 && n <= 0) { /* 0.000ddd */
    out[o++] = '0';
    out[o++] = '.';
    for (int z = 0; z < -n; z++) out[o++] = '0';
    memcpy(out + o, d, k);
    o += k;
  } else { /* d.ddde+x */
    out[o++] = d[0];
    if (k > 1) {
      out[o++] = '.';
      memcpy(out + o, d + 1, k - 1);
      o += k - 1;
    }
    o += (size_t)snprintf(out + o, TETHER__JSON_NUMBER_MAX - o, "e%c%d", n - 1 < 0 ? '-' : '+', abs(n - 1));
  }
  out[o] = '\0';
  return o;
}

size_t tether__json_int(int64_t v, char out[TETHER__JSON_NUMBER_MAX]) {
  if (v > EXACT_INT || v < -EXACT_INT) return tether__json_number((double)v, out);
  char t[24];
  size_t k = 0;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do {
    t[k++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  size_t o = 0;
  if (v < 0) out[o++] = '-';
  while (k) out[o++] = t[--k];
  out[o] = '\0';
  return o;
}

void tether__json_write_string(tether__buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  tether__buf_reserve(b, n + 2);
  b->data[b->len++] = '"';
  size_t run = 0; /* bytes copied as they are, written in one go */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    tether__buf_append(b, s + run, i - run);
    run = i + 1;
    char e[6] = {'\\', 0};
    size_t el = 2;
    switch (c) {
    case '"':
    case '\\':
      e[1] = (char)c;
      break;
    case '\b':
      e[1] = 'b';
      break;
    case '\f':
      e[1] = 'f';
      break;
    case '\n':
      e[1] = 'n';
      break;
    case '\r':
      e[1] = 'r';
      break;
    case '\t':
      e[1] = 't';
      break;
    default:
      memcpy(e + 1, "u00", 3);
      e[4] = hex[c >> 4];
      e[5] = hex[c & 15];
      el = 6;
    }
    tether__buf_append(b, e, el);
  }
  tether__buf_append(b, s + run, n - run);
  tether__buf_append(b, "\"", 1);
}

void tether__json_write(tether__buf *b, const json_t *v) {
  char num[TETHER__JSON_NUMBER_MAX];
  switch (json_typeof(v)) {
  case JSON_OBJECT: {
    const char *k;
    json_t *m;
    int first = 1;
    tether__buf_append(b, "{", 1);
    json_object_foreach((json_t *)v, k, m) {
      if (!first) tether__buf_append(b, ",", 1);
      first = 0;
      tether__json_write_string(b, k, strlen(k));
      tether__buf_append(b, ":", 1);
      tether__json_write(b, m);
    }
    tether__buf_append(b, "}", 1);
    break;
  }
  case JSON_ARRAY:
    tether__buf_append(b, "[", 1);
    for (size_t i = 0; i < json_array_size(v); i++) {
      if (i) tether__buf_append(b, ",", 1);
      tether__json_write(b, json_array_get(v, i));
    }
    tether__buf_append(b, "]", 1);
    break;
  case JSON_STRING:
    tether__json_write_string(b, json_string_value(v), json_string_length(v));
    break;
  case JSON_INTEGER:
    tether__buf_append(b, num, tether__json_int((int64_t)json_integer_value(v), num));
    break;
  case JSON_REAL:
    tether__buf_append(b, num, tether__json_number(json_real_value(v), num));
    break;
  case JSON_TRUE:
    tether__buf_append(b, "true", 4);
    break;
  case JSON_FALSE:
    tether__buf_append(b, "false", 5);
    break;
  default:
    tether__buf_append(b, "null", 4);
  }
}

int tether__utf8_valid(const char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    size_t l = s[i] ? tether__utf8_seq((const uint8_t *)s + i, n - i) : 0;
    if (l == 0) return 0;
    i += l;
  }
  return 1;
}

/* ---- the check ---- */

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
/* Does any byte of x need a look: a control character, '"', '\\' or a byte of a multibyte character? */
static inline int special8(uint64_t x) {
  uint64_t q = x ^ (ONES * '"'), b = x ^ (ONES * '\\');
  return (((x - ONES * 0x20) | (q - ONES) | (b - ONES) | x) & HIGHS) != 0;
}

#ifdef __SSE2__
/* The bytes of p[0..16) that need a look, as a bit mask (bytes >= 0x80 are negative: below 0x20 too). */
static inline unsigned special16(const char *p) {
  __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
  __m128i m = _mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
                           _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))));
  return (unsigned)_mm_movemask_epi8(m);
}
#endif

/* A string at p[*i] == '"' written as JSON.stringify writes it. */
static int canon_string(const char *p, size_t n, size_t *i) {
  size_t k = *i + 1;
  while (k < n) {
#ifdef __SSE2__
    if (k + 16 <= n) { /* sixteen bytes at once, then straight to the first that needs a look */
      unsigned mask = special16(p + k);
      if (mask == 0) {
        k += 16;
        continue;
      }
      k += (size_t)__builtin_ctz(mask);
    } else
#endif
    {
      uint64_t x;
      if (k + 8 <= n && (memcpy(&x, p + k, 8), !special8(x))) { /* eight plain ASCII bytes at once */
        k += 8;
        continue;
      }
    }
    unsigned char c = (unsigned char)p[k];
    if (c == '"') {
      *i = k + 1;
      return 1;
    }
    if (c < 0x20) return 0;
    if (c == '\\') {
      if (k + 1 >= n) return 0;
      char e = p[k + 1];
      if (e == 'u') { /* only \u00xx, lower case, for a control character without a short form */
        if (k + 6 > n || p[k + 2] != '0' || p[k + 3] != '0' || (p[k + 4] != '0' && p[k + 4] != '1')) return 0;
        char h = p[k + 5];
        int lo = is_digit(h) ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : -1;
        int cp = (p[k + 4] - '0') * 16 + lo;
        if (lo < 0 || cp == 0 || cp == '\b' || cp == '\t' || cp == '\n' || cp == '\f' || cp == '\r') return 0;
        k += 6;
      } else if (e == '"' || e == '\\' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't') {
        k += 2;
      } else {
        return 0;
      }
      continue;
    }
    if (c < 0x80) {
      k++;
      continue;
    }
    size_t l = tether__utf8_seq((const uint8_t *)p + k, n - k);
    if (l == 0) return 0;
    k += l;
  }
  return 0;
}

/* A number as Number::toString writes it. */
static int canon_number(const char *p, size_t n, size_t *i) {
  size_t s = *i, k = s, digits = 0, plain = 1;
  while (k < n && (is_digit(p[k]) || p[k] == '-' || p[k] == '+' || p[k] == '.' || p[k] == 'e')) {
    if (!is_digit(p[k]))
      plain = p[k] == '-' && k == s;
    else
      digits++;
    k++;
  }
  size_t len = k - s;
  if (len == 0 || len >= TETHER__JSON_NUMBER_MAX) return 0;
  *i = k;
  const char *d = p + s + (p[s] == '-');
  if (plain && digits >= 1 && digits <= 15) /* an integer of up to 15 digits is exact: only its form matters */
    return (digits == 1 || d[0] != '0') && !(p[s] == '-' && d[0] == '0');
  char t[TETHER__JSON_NUMBER_MAX], w[TETHER__JSON_NUMBER_MAX];
  memcpy(t, p + s, len);
  t[len] = '\0';
  /* strtod reads more than JSON allows, but only JSON's form can equal what tether__json_number writes */
  if (!is_digit(t[p[s] == '-'])) return 0;
  char *end;
  double v = strtod(t, &end);
  if (*end != '\0' || !isfinite(v)) return 0;
  return tether__json_number(v, w) == len && memcmp(w, t, len) == 0;
}

static int canon_value(const char *p, size_t n, size_t *i, int depth);

/* An object; at the top (out not NULL) its members' places are recorded too, values with their quotes. */
static int canon_object(const char *p, size_t n, size_t *i, int depth, tether__json_member *out) {
  size_t k = *i + 1, names[MAX_MEMBERS], lens[MAX_MEMBERS];
  int count = 0;
  if (k < n && p[k] == '}') {
    *i = k + 1;
    return 1;
  }
  for (;;) {
    if (k >= n || p[k] != '"' || count == MAX_MEMBERS) return 0;
    size_t ks = k;
    if (!canon_string(p, n, &k)) return 0;
    for (int j = 0; j < count; j++) /* one spelling per name: equal names are equal bytes */
      if (lens[j] == k - ks && memcmp(p + names[j], p + ks, k - ks) == 0) return 0;
    names[count] = ks;
    lens[count] = k - ks;
    if (k >= n || p[k] != ':') return 0;
    size_t vs = ++k;
    if (!canon_value(p, n, &k, depth + 1)) return 0;
    if (out)
      out[count] = (tether__json_member){.key = (uint32_t)ks + 1,
                                         .key_len = (uint32_t)(lens[count] - 2),
                                         .value = (uint32_t)vs,
                                         .value_len = (uint32_t)(k - vs),
                                         .type = memchr(p + ks, '\\', lens[count]) ? TETHER__JSON_KEY_ESC : 0};
    count++;
    if (k < n && p[k] == '}') {
      *i = k + 1;
      return count;
    }
    if (k >= n || p[k] != ',') return 0;
    k++;
  }
}

static int canon_array(const char *p, size_t n, size_t *i, int depth) {
  size_t k = *i + 1;
  if (k < n && p[k] == ']') {
    *i = k + 1;
    return 1;
  }
  for (;;) {
    if (!canon_value(p, n, &k, depth + 1)) return 0;
    if (k < n && p[k] == ']') {
      *i = k + 1;
      return 1;
    }
    if (k >= n || p[k] != ',') return 0;
    k++;
  }
}

static int canon_value(const char *p, size_t n, size_t *i, int depth) {
  if (*i >= n || depth > MAX_DEPTH) return 0;
  char c = p[*i];
  if (c == '"') return canon_string(p, n, i);
  if (c == '{') return canon_object(p, n, i, depth, NULL) != 0;
  if (c == '[') return canon_array(p, n, i, depth);
  if (c == '-' || is_digit(c)) return canon_number(p, n, i);
  static const char *const lits[] = {"true", "false", "null"};
  for (size_t l = 0; l < TETHER__ARRAY_SIZE(lits); l++) {
    size_t ll = strlen(lits[l]);
    if (n - *i >= ll && memcmp(p + *i, lits[l], ll) == 0) {
      *i += ll;
      return 1;
    }
  }
  return 0;
}

int tether__json_canonical(const char *p, size_t n) {
  size_t i = 0;
  return canon_value(p, n, &i, 0) && i == n;
}

int tether__json_canonical_object(const char *p, size_t n, tether__json_member m[TETHER__JSON_MAX_MEMBERS]) {
  size_t i = 0;
  if (n < 2 || n > UINT32_MAX || p[0] != '{') return -1;
  if (p[1] == '}') return n == 2 ? 0 : -1;
  int count = canon_object(p, n, &i, 0, m);
  return count > 0 && i == n ? count : -1;
}
