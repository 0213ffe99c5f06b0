/* libtether: cookie parsing (jshttp/cookie), signing (cookie-signature) and session ids (uid-safe). */
#include <stdlib.h>
#include <string.h>

#include "mac.h"
#include "tether/session.h"
#include "util.h"

static int utf8_valid(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint64_t x;
    if (i + 8 <= n && (memcpy(&x, s + i, 8), (x & 0x8080808080808080ULL) == 0)) { /* eight ASCII bytes */
      i += 8;
      continue;
    }
    uint8_t c = s[i];
    size_t k;
    uint32_t cp;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      k = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      k = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      k = 3;
      cp = c & 0x07;
    } else {
      return 0;
    }
    if (i + k >= n) return 0;
    for (size_t j = 1; j <= k; j++) {
      if ((s[i + j] & 0xc0) != 0x80) return 0;
      cp = cp << 6 | (s[i + j] & 0x3f);
    }
    if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return 0;
    i += k + 1;
  }
  return 1;
}

/* decodeURIComponent, falling back to the raw text when it would throw (as jshttp/cookie's tryDecode). */
static int decode_value(const char *v, size_t n, char *out, size_t cap) {
  if (n + 1 > cap) return tether__fail(TETHER_E2BIG, "cookie value of %zu bytes is too long", n);
  if (memchr(v, '%', n) == NULL) goto raw;
  size_t o = 0, i = 0;
  while (i < n) { /* the text up to the next '%' is copied as it is */
    const char *pct = memchr(v + i, '%', n - i);
    size_t run = pct ? (size_t)(pct - (v + i)) : n - i;
    memcpy(out + o, v + i, run);
    o += run;
    i += run;
    if (i == n) break;
    if (i + 2 >= n) goto raw;
    int h = tether__hexval(v[i + 1]), l = tether__hexval(v[i + 2]);
    if (h < 0 || l < 0) goto raw;
    out[o++] = (char)(h << 4 | l);
    i += 3;
  }
  if (!utf8_valid((const uint8_t *)out, o) || memchr(out, '\0', o) != NULL) goto raw;
  out[o] = '\0';
  return (int)o;
raw:
  memcpy(out, v, n);
  out[n] = '\0';
  return (int)n;
}

static int is_ws(char c) { return c == ' ' || c == '\t'; }

int tether_cookie_get(const char *header, const char *name, char *out, size_t cap) {
  if (header == NULL) return TETHER_ENOTFOUND;
  size_t len = strlen(header), nlen = strlen(name), index = 0;
  while (index < len) {
    const char *eq = memchr(header + index, '=', len - index);
    if (eq == NULL) break;
    size_t eq_idx = (size_t)(eq - header);
    const char *semi = memchr(header + index, ';', len - index);
    size_t end_idx = semi ? (size_t)(semi - header) : len;
    if (end_idx < eq_idx) {
      /* "a; b=c": restart after the last ';' before this '=' */
      size_t j = eq_idx;
      while (j > index && header[j - 1] != ';') j--;
      index = j;
      continue;
    }
    size_t ks = index, ke = eq_idx;
    while (ks < ke && is_ws(header[ks])) ks++;
    while (ke > ks && is_ws(header[ke - 1])) ke--;
    if (ke - ks == nlen && memcmp(header + ks, name, nlen) == 0) {
      size_t vs = eq_idx + 1, ve = end_idx;
      while (vs < ve && is_ws(header[vs])) vs++;
      while (ve > vs && is_ws(header[ve - 1])) ve--;
      if (ve > vs && header[vs] == '"' && header[ve - 1] == '"') {
        /* jshttp/cookie 0.7 unquotes a value only when it starts and ends with '"' ('"' alone: "") */
        vs++;
        if (ve > vs) ve--;
      }
      return decode_value(header + vs, ve - vs, out, cap);
    }
    index = end_idx + 1;
  }
  return TETHER_ENOTFOUND;
}

/* HMAC-SHA256 of value under secret, as cookie-signature's base64 without padding (43 characters). */
static void hmac_b64(const char *value, size_t vlen, const char *secret, char sig[TETHER_SIG_LEN + 2]) {
  uint8_t mac[TETHER__MAC_MAX];
  int n = tether__hmac(TETHER__MAC_SHA256, secret, strlen(secret), value, vlen, mac);
  tether__base64_encode(mac, n > 0 ? (size_t)n : 0, sig);
}

int tether_cookie_sign(const char *value, const char *secret, char *out, size_t cap) {
  size_t vlen = strlen(value);
  char sig[TETHER_SIG_LEN + 2];
  if (vlen + 1 + TETHER_SIG_LEN + 1 > cap) return tether__fail(TETHER_E2BIG, "signed cookie does not fit");
  hmac_b64(value, vlen, secret, sig);
  memcpy(out, value, vlen);
  out[vlen] = '.';
  memcpy(out + vlen + 1, sig, TETHER_SIG_LEN + 1);
  return (int)(vlen + 1 + TETHER_SIG_LEN);
}

int tether_cookie_unsign(const char *input, const char *const *secrets, size_t n, char *out, size_t cap) {
  size_t ilen = strlen(input);
  const char *dot = strrchr(input, '.');
  if (dot == NULL) return tether__fail(TETHER_EINVAL, "signed cookie has no signature");
  size_t vlen = (size_t)(dot - input);
  if (vlen + 1 > cap) return tether__fail(TETHER_E2BIG, "signed cookie value is too long");
  int ok = 0;
  /* Re-sign with every secret and compare whole strings in constant time, as cookie-signature does;
   * the loop does not stop early so timing does not reveal which secret matched. */
  for (size_t i = 0; i < n; i++) {
    char sig[TETHER_SIG_LEN + 2];
    hmac_b64(input, vlen, secrets[i], sig);
    if (ilen - vlen - 1 == TETHER_SIG_LEN) ok |= tether__ct_equal(dot + 1, sig, TETHER_SIG_LEN);
  }
  if (!ok) return tether__fail(TETHER_EINVAL, "cookie signature invalid");
  memcpy(out, input, vlen);
  out[vlen] = '\0';
  return (int)vlen;
}

int tether_session_id_generate(char out[TETHER_SID_LEN + 1]) {
  uint8_t raw[TETHER_SID_BYTES];
  tether__random(raw, sizeof(raw));
  tether__base64url_encode(raw, sizeof(raw), out);
  return 0;
}
