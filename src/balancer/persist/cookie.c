/* Sticky cookie (NGINX Plus `sticky cookie`, HAProxy `cookie NAME insert`): the balancer sets a cookie
 * naming the server, opaque to the client: the server's `cookie=` id, or an HMAC of the server's identity
 * (its `route=`, else its address as written) under a key nobody outside knows: `sticky_secret`, or the
 * random key of the sticky_key_file. A value depends on its server alone, so adding or removing other
 * servers moves nobody. A value that names no server is ignored and the client rebalanced with a fresh
 * cookie; a client can never aim at an address. With maxidle/maxlife the value carries dates:
 * ID|LAST|FIRST (seconds, base 36). */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/util.h"
#include "persist.h"
#include "tether/session.h"

int tether__cookie_key_needed(const tether__cf_upstream *cu) {
  if (cu->persist.kind != TETHER__PERSIST_COOKIE || cu->sticky_secret[0]) return 0;
  for (size_t i = 0; i < cu->nservers; i++)
    if (cu->servers[i].cookie_id[0] == '\0') return 1;
  return 0;
}

int tether__cookie_values(tether__upstream_rt *u) {
  const tether__cf_upstream *cu = u->cf;
  struct tether__persist_rt *p = u->persist;
  p->values = tether__calloc(cu->nservers, sizeof(*p->values));
  uint8_t key[32];
  if (cu->sticky_secret[0]) {
    SHA256((const uint8_t *)cu->sticky_secret, strlen(cu->sticky_secret), key);
  } else if (cu->sticky_key_set) {
    memcpy(key, cu->sticky_key, sizeof(key));
  } else if (RAND_bytes(key, sizeof(key)) != 1) { /* parsed but never loaded (tests): this runtime's own key */
    fprintf(stderr, "tether: no random bytes for a sticky cookie key\n");
    abort(); /* never a key made of names, and never empty values that a cookie could match */
  }
  for (size_t i = 0; i < cu->nservers; i++) {
    const tether__cf_server *s = &cu->servers[i];
    if (s->cookie_id[0]) {
      snprintf(p->values[i], sizeof(p->values[i]), "%s", s->cookie_id);
      continue;
    }
    const char *id = s->route[0] ? s->route : s->name;
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    HMAC(EVP_sha256(), key, sizeof(key), (const uint8_t *)id, strlen(id), mac, &maclen);
    char b64[32];
    tether__base64url_encode(mac, 12, b64); /* 96 bits: 16 characters */
    snprintf(p->values[i], sizeof(p->values[i]), "%s", b64);
  }
  OPENSSL_cleanse(key, sizeof(key));
  return 0;
}

static int parse_b36(const char *s, size_t n, int64_t *out) {
  int64_t v = 0;
  if (n == 0 || n > 10) return -1;
  for (size_t i = 0; i < n; i++) {
    int d = s[i] >= '0' && s[i] <= '9' ? s[i] - '0' : s[i] >= 'a' && s[i] <= 'z' ? s[i] - 'a' + 10 : -1;
    if (d < 0) return -1;
    v = v * 36 + d;
  }
  *out = v;
  return 0;
}

static void b36(int64_t v, char *out) {
  char tmp[16];
  int n = 0;
  do {
    int d = (int)(v % 36);
    tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
    v /= 36;
  } while (v > 0 && n < 15);
  for (int i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  out[n] = '\0';
}

void tether__cookie_request(const tether__upstream_rt *u, const tether__h1_msg *m, tether__persist_req *pr,
                            int64_t now_s) {
  const tether__cf_persist *cp = &u->cf->persist;
  char val[256];
  int n = TETHER_ENOTFOUND;
  /* the first Cookie header that carries the cookie wins (several headers may come from HTTP/2 peers) */
  for (size_t i = 0; i < m->nheaders && n < 0; i++) {
    if (!tether__h1_token_eq(m->headers[i].name, "cookie")) continue;
    char hdr[8192];
    size_t hl = m->headers[i].value.n < sizeof(hdr) - 1 ? m->headers[i].value.n : sizeof(hdr) - 1;
    memcpy(hdr, m->headers[i].value.p, hl);
    hdr[hl] = '\0';
    n = tether_cookie_get(hdr, cp->cookie, val, sizeof(val));
  }
  if (n < 0) return; /* no binding yet */
  const char *bar = memchr(val, '|', (size_t)n);
  size_t idlen = bar ? (size_t)(bar - val) : (size_t)n;
  int dated = cp->maxidle_s > 0 || cp->maxlife_s > 0;
  pr->unknown = 1;
  if (dated) {
    /* ID|LAST|FIRST; a cookie without dates, with bad ones, or with dates from the future is stale */
    const char *bar2 = bar ? memchr(bar + 1, '|', (size_t)(val + n - bar - 1)) : NULL;
    int64_t last, first;
    if (bar2 == NULL || parse_b36(bar + 1, (size_t)(bar2 - bar - 1), &last) < 0 ||
        parse_b36(bar2 + 1, (size_t)(val + n - bar2 - 1), &first) < 0)
      return;
    if (last > now_s + 86400 || first > last) return;
    if (cp->maxidle_s > 0 && now_s - last > cp->maxidle_s) return;
    if (cp->maxlife_s > 0 && now_s - first > cp->maxlife_s) return;
    pr->last_seen = last;
    pr->first_seen = first;
  } else if (bar) {
    return;
  }
  for (size_t i = 0; i < u->cf->nservers; i++) {
    if (strlen(u->persist->values[i]) == idlen && memcmp(u->persist->values[i], val, idlen) == 0) {
      pr->bound = (int)i;
      pr->unknown = 0;
      /* maxidle: refresh the date once a quarter of the idle time has passed */
      if (cp->maxidle_s > 0 && now_s - pr->last_seen >= (cp->maxidle_s / 4 > 0 ? cp->maxidle_s / 4 : 1))
        pr->set_cookie = 1;
      return;
    }
  }
}

char *tether__persist_set_cookie(const tether__upstream_rt *u, const tether__persist_req *pr, int idx, int64_t now_ms,
                                 int tls) {
  const tether__cf_persist *cp = &u->cf->persist;
  if (cp->kind != TETHER__PERSIST_COOKIE || !pr->set_cookie || idx < 0) return NULL;
  int64_t now_s = now_ms / 1000;
  tether__buf b = {0};
  tether__buf_appendf(&b, "%s=%s", cp->cookie, u->persist->values[idx]);
  if (cp->maxidle_s > 0 || cp->maxlife_s > 0) {
    char last[16], first[16];
    b36(now_s, last);
    b36(pr->bound == idx && pr->first_seen > 0 ? pr->first_seen : now_s, first);
    tether__buf_appendf(&b, "|%s|%s", last, first);
  }
  if (cp->expires_s >= 0) {
    char date[40];
    tether__http_date(now_ms + cp->expires_s * 1000, date);
    tether__buf_appendf(&b, "; Expires=%s; Max-Age=%lld", date, (long long)cp->expires_s);
  }
  if (cp->domain[0]) tether__buf_appendf(&b, "; Domain=%s", cp->domain);
  tether__buf_appendf(&b, "; Path=%s", cp->path);
  if (cp->httponly) tether__buf_appendf(&b, "; HttpOnly");
  if (cp->secure || tls) tether__buf_appendf(&b, "; Secure");
  static const char *ss[] = {NULL, "Strict", "Lax", "None"};
  if (cp->samesite) tether__buf_appendf(&b, "; SameSite=%s", ss[cp->samesite]);
  return b.data;
}

size_t tether__persist_strip_cookie(const tether__upstream_rt *u, tether__slice v, char *out, size_t cap) {
  const char *name = u->cf->persist.cookie;
  size_t nl = strlen(name), o = 0, i = 0;
  while (i < v.n) {
    size_t j = i;
    while (j < v.n && v.p[j] != ';') j++;
    size_t a = i, e = j;
    while (a < e && (v.p[a] == ' ' || v.p[a] == '\t')) a++;
    size_t k = a;
    while (k < e && v.p[k] != '=') k++;
    size_t ke = k;
    while (ke > a && (v.p[ke - 1] == ' ' || v.p[ke - 1] == '\t')) ke--;
    int ours = ke - a == nl && memcmp(v.p + a, name, nl) == 0;
    if (!ours && e > a && o + (e - a) + 2 < cap) {
      if (o) {
        out[o++] = ';';
        out[o++] = ' ';
      }
      memcpy(out + o, v.p + a, e - a);
      o += e - a;
    }
    i = j + 1;
  }
  return o;
}
