/* libtether: a strict JSON scanner for flat objects, and walkers over text already validated.
 *
 * The scanner validates a whole text as one object whose values are scalars or arrays of scalars, with
 * member names free of escapes, without allocating; anything else (nested objects, escaped member names,
 * long numbers, too many members) it calls TETHER__SCAN_COMPLEX and leaves to jansson, and both agree on
 * what is valid (tests/fuzz/fuzz_jwt.c checks it). The walkers only run over text that the scanner or
 * jansson accepted. */
#include "json.h"

#include <string.h>

#include "util.h"

static inline int is_digit(char c) { return c >= '0' && c <= '9'; }

size_t tether__json_skip_ws(const char *p, size_t n, size_t i) {
  while (i < n && tether__json_is_ws(p[i])) i++;
  return i;
}

static int hex4(const char *p, uint32_t *out) {
  uint32_t v = 0;
  for (int k = 0; k < 4; k++) {
    int d = tether__hexval(p[k]);
    if (d < 0) return -1;
    v = v << 4 | (uint32_t)d;
  }
  *out = v;
  return 0;
}

/* Length of the well-formed UTF-8 sequence at p (jansson's rules: no overlong forms, no surrogates,
 * nothing above U+10FFFF), or 0. */
size_t tether__utf8_seq(const uint8_t *p, size_t n) {
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
      return TETHER__SCAN_OK;
    }
    if (c < 0x20) return TETHER__SCAN_INVALID;
    if (c == '\\') {
      *esc = 1;
      if (i + 1 >= n) return TETHER__SCAN_INVALID;
      char e = p[i + 1];
      if (e == 'u') {
        uint32_t cp, lo;
        if (i + 6 > n || hex4(p + i + 2, &cp) < 0) return TETHER__SCAN_INVALID;
        i += 6;
        if (cp == 0 || (cp >= 0xDC00 && cp <= 0xDFFF)) return TETHER__SCAN_INVALID; /* NUL; a lone low surrogate */
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (i + 6 > n || p[i] != '\\' || p[i + 1] != 'u' || hex4(p + i + 2, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
            return TETHER__SCAN_INVALID;
          i += 6;
        }
        continue;
      }
      if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' && e != 't')
        return TETHER__SCAN_INVALID;
      i += 2;
      continue;
    }
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t l = tether__utf8_seq((const uint8_t *)p + i, n - i);
    if (l == 0) return TETHER__SCAN_INVALID;
    i += l;
  }
  return TETHER__SCAN_INVALID;
}

/* A number per RFC 8259. Integers of more than 18 digits and numbers with an exponent or more than 64
 * characters are left to jansson, which refuses what overflows. */
static int scan_number(const char *p, size_t n, size_t *pos, uint8_t *type) {
  size_t i = *pos, s = *pos;
  if (p[i] == '-') i++;
  if (i >= n) return TETHER__SCAN_INVALID;
  size_t ds = i;
  if (p[i] == '0') {
    i++;
    if (i < n && is_digit(p[i])) return TETHER__SCAN_INVALID;
  } else if (is_digit(p[i])) {
    while (i < n && is_digit(p[i])) i++;
  } else {
    return TETHER__SCAN_INVALID;
  }
  size_t digits = i - ds;
  int real = 0, complex = 0;
  if (i < n && p[i] == '.') {
    real = 1;
    i++;
    if (i >= n || !is_digit(p[i])) return TETHER__SCAN_INVALID;
    while (i < n && is_digit(p[i])) i++;
  }
  if (i < n && (p[i] == 'e' || p[i] == 'E')) {
    complex = 1;
    i++;
    if (i < n && (p[i] == '+' || p[i] == '-')) i++;
    if (i >= n || !is_digit(p[i])) return TETHER__SCAN_INVALID;
    while (i < n && is_digit(p[i])) i++;
  }
  *pos = i;
  *type = real ? TETHER__JSON_REAL : TETHER__JSON_INT;
  if (complex || (!real && digits > 18) || i - s > 64) return TETHER__SCAN_COMPLEX;
  return TETHER__SCAN_OK;
}

static int scan_literal(const char *p, size_t n, size_t *pos, uint8_t *type) {
  static const struct {
    const char *text;
    size_t len;
    uint8_t type;
  } lits[] = {{"true", 4, TETHER__JSON_TRUE}, {"false", 5, TETHER__JSON_FALSE}, {"null", 4, TETHER__JSON_NULL}};
  for (size_t k = 0; k < TETHER__ARRAY_SIZE(lits); k++) {
    if (n - *pos >= lits[k].len && memcmp(p + *pos, lits[k].text, lits[k].len) == 0) {
      *pos += lits[k].len;
      *type = lits[k].type;
      return TETHER__SCAN_OK;
    }
  }
  return TETHER__SCAN_INVALID;
}

/* A scalar value; '[' and '{' are not scalars (TETHER__SCAN_COMPLEX). */
static int scan_scalar(const char *p, size_t n, size_t *pos, uint8_t *type, int *esc) {
  char c = p[*pos];
  *esc = 0;
  if (c == '"') {
    *type = TETHER__JSON_STRING;
    return scan_string(p, n, pos, esc);
  }
  if (c == '-' || is_digit(c)) return scan_number(p, n, pos, type);
  if (c == 't' || c == 'f' || c == 'n') return scan_literal(p, n, pos, type);
  if (c == '[' || c == '{') return TETHER__SCAN_COMPLEX;
  return TETHER__SCAN_INVALID;
}

/* An array of scalars. */
static int scan_array(const char *p, size_t n, size_t *pos) {
  size_t i = tether__json_skip_ws(p, n, *pos + 1);
  if (i < n && p[i] == ']') {
    *pos = i + 1;
    return TETHER__SCAN_OK;
  }
  int complex = 0;
  for (;;) {
    if (i >= n) return TETHER__SCAN_INVALID;
    uint8_t t;
    int esc;
    int r = scan_scalar(p, n, &i, &t, &esc);
    if (r == TETHER__SCAN_INVALID) return r;
    if (r == TETHER__SCAN_COMPLEX) {
      if (i < n && (p[i] == '[' || p[i] == '{')) return TETHER__SCAN_COMPLEX; /* nested: not scanned further */
      complex = 1;
    }
    i = tether__json_skip_ws(p, n, i);
    if (i >= n) return TETHER__SCAN_INVALID;
    if (p[i] == ']') break;
    if (p[i] != ',') return TETHER__SCAN_INVALID;
    i = tether__json_skip_ws(p, n, i + 1);
  }
  *pos = i + 1;
  return complex ? TETHER__SCAN_COMPLEX : TETHER__SCAN_OK;
}

/* Validates a whole text as one JSON object whose values are scalars or arrays of scalars, with member
 * names free of escapes, at most max members and none repeated; fills m. */
int tether__json_scan_object(const char *p, size_t n, tether__json_member *m, int max, int *count) {
  size_t i = tether__json_skip_ws(p, n, 0);
  int k = 0, complex = 0;
  *count = 0;
  if (i >= n || p[i] != '{') return TETHER__SCAN_COMPLEX;
  i = tether__json_skip_ws(p, n, i + 1);
  if (i < n && p[i] == '}') {
    i++;
  } else {
    for (;;) {
      if (i >= n || p[i] != '"') return TETHER__SCAN_INVALID;
      size_t ks = i + 1;
      int kesc, vesc;
      if (scan_string(p, n, &i, &kesc) != TETHER__SCAN_OK) return TETHER__SCAN_INVALID;
      size_t klen = i - 1 - ks;
      i = tether__json_skip_ws(p, n, i);
      if (i >= n || p[i] != ':') return TETHER__SCAN_INVALID;
      i = tether__json_skip_ws(p, n, i + 1);
      if (i >= n) return TETHER__SCAN_INVALID;
      size_t vs = i;
      uint8_t t;
      int r;
      if (p[i] == '[') {
        t = TETHER__JSON_ARRAY;
        vesc = 0;
        r = scan_array(p, n, &i);
      } else {
        r = scan_scalar(p, n, &i, &t, &vesc);
      }
      if (r == TETHER__SCAN_INVALID) return r;
      if (r == TETHER__SCAN_COMPLEX) {
        if (i < n && (p[i] == '{' || p[i] == '[')) return TETHER__SCAN_COMPLEX; /* stopped at a nested value */
        complex = 1;
      }
      if (kesc || k == max) return TETHER__SCAN_COMPLEX;
      for (int j = 0; j < k; j++)
        if (m[j].key_len == klen && memcmp(p + m[j].key, p + ks, klen) == 0) return TETHER__SCAN_DUP;
      m[k].key = (uint32_t)ks;
      m[k].key_len = (uint32_t)klen;
      if (t == TETHER__JSON_STRING) {
        m[k].value = (uint32_t)vs + 1;
        m[k].value_len = (uint32_t)(i - vs - 2);
      } else {
        m[k].value = (uint32_t)vs;
        m[k].value_len = (uint32_t)(i - vs);
      }
      m[k].type = (uint8_t)(t | (vesc ? TETHER__JSON_VAL_ESC : 0));
      k++;
      i = tether__json_skip_ws(p, n, i);
      if (i >= n) return TETHER__SCAN_INVALID;
      if (p[i] == '}') {
        i++;
        break;
      }
      if (p[i] != ',') return TETHER__SCAN_INVALID;
      i = tether__json_skip_ws(p, n, i + 1);
    }
  }
  if (tether__json_skip_ws(p, n, i) != n) return TETHER__SCAN_INVALID;
  *count = k;
  return complex ? TETHER__SCAN_COMPLEX : TETHER__SCAN_OK;
}

size_t tether__json_skip_string(const char *p, size_t n, size_t i) {
  for (i++; i < n; i++) {
    if (p[i] == '\\')
      i++;
    else if (p[i] == '"')
      return i + 1;
  }
  return n;
}

size_t tether__json_skip_value(const char *p, size_t n, size_t i, uint8_t *type) {
  char c = p[i];
  if (c == '"') {
    *type = TETHER__JSON_STRING;
    return tether__json_skip_string(p, n, i);
  }
  if (c == '{' || c == '[') {
    *type = c == '{' ? TETHER__JSON_OBJECT : TETHER__JSON_ARRAY;
    int depth = 0;
    while (i < n) {
      c = p[i];
      if (c == '"') {
        i = tether__json_skip_string(p, n, i);
        continue;
      }
      if (c == '{' || c == '[') depth++;
      if ((c == '}' || c == ']') && --depth == 0) return i + 1;
      i++;
    }
    return n;
  }
  if (c == 't' || c == 'n') {
    *type = c == 't' ? TETHER__JSON_TRUE : TETHER__JSON_NULL;
    return i + 4 <= n ? i + 4 : n;
  }
  if (c == 'f') {
    *type = TETHER__JSON_FALSE;
    return i + 5 <= n ? i + 5 : n;
  }
  *type = TETHER__JSON_INT;
  while (i < n && (is_digit(p[i]) || p[i] == '-' || p[i] == '+' || p[i] == '.' || p[i] == 'e' || p[i] == 'E')) {
    if (!is_digit(p[i]) && p[i] != '-') *type = TETHER__JSON_REAL;
    i++;
  }
  return i;
}

void tether__json_walk_begin(tether__json_walker *w, const char *p, size_t n) {
  w->p = p;
  w->n = n;
  w->i = tether__json_skip_ws(p, n, 0);
  if (w->i < n && p[w->i] == '{') w->i++;
}

/* The next member of a validated object: 1 and *m filled, or 0 at the end. */
int tether__json_walk_next(tether__json_walker *w, tether__json_member *m) {
  const char *p = w->p;
  size_t n = w->n, i = tether__json_skip_ws(p, n, w->i);
  if (i < n && p[i] == ',') i = tether__json_skip_ws(p, n, i + 1);
  if (i >= n || p[i] != '"') return 0;
  size_t ks = i + 1;
  i = tether__json_skip_string(p, n, i);
  size_t klen = i - 1 - ks;
  i = tether__json_skip_ws(p, n, i);
  if (i < n && p[i] == ':') i++;
  i = tether__json_skip_ws(p, n, i);
  if (i >= n) return 0;
  size_t vs = i;
  uint8_t t;
  i = tether__json_skip_value(p, n, i, &t);
  m->key = (uint32_t)ks;
  m->key_len = (uint32_t)klen;
  uint8_t flags = memchr(p + ks, '\\', klen) ? TETHER__JSON_KEY_ESC : 0;
  if (t == TETHER__JSON_STRING) {
    m->value = (uint32_t)vs + 1;
    m->value_len = (uint32_t)(i - vs - 2);
    if (memchr(p + vs + 1, '\\', m->value_len)) flags |= TETHER__JSON_VAL_ESC;
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
int tether__json_str_equal(const char *s, size_t n, int esc, const char *t, size_t tn) {
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
long tether__json_str_unescape(const char *s, size_t n, int esc, char *out, size_t cap) {
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

int tether__json_member_is(const char *p, const tether__json_member *m, const char *name, size_t nlen) {
  if (!(m->type & TETHER__JSON_KEY_ESC)) /* the common case, asked in a chain of names: the length first */
    return m->key_len == nlen && memcmp(p + m->key, name, nlen) == 0;
  return tether__json_str_equal(p + m->key, m->key_len, (m->type & TETHER__JSON_KEY_ESC) != 0, name, nlen);
}
