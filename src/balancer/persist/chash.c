/* Hashing a request key: `hash KEY` (nginx's CRC32 rounds over the weights), `hash KEY consistent`
 * (nginx's ketama ring, so a user moving from nginx keeps the same mapping), `hash KEY maglev`, and
 * `sticky app_cookie NAME` (the ring over the value of the application's own session cookie). */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "../../lib/util.h"
#include "persist.h"

static void append(tether__persist_req *pr, const char *p, size_t n) {
  size_t room = sizeof(pr->key) - pr->key_len;
  if (n > room) n = room;
  memcpy(pr->key + pr->key_len, p, n);
  pr->key_len += n;
}

/* A cookie's raw value (as nginx's $cookie_NAME: no decoding), from every Cookie header in order. */
int tether__raw_cookie(const tether__h1_msg *m, const char *name, tether__slice *out) {
  size_t nl = strlen(name);
  for (size_t h = 0; h < m->nheaders; h++) {
    if (!tether__h1_token_eq(m->headers[h].name, "cookie")) continue;
    tether__slice v = m->headers[h].value;
    size_t i = 0;
    while (i < v.n) {
      size_t j = i;
      while (j < v.n && v.p[j] != ';') j++;
      size_t a = i;
      while (a < j && (v.p[a] == ' ' || v.p[a] == '\t')) a++;
      if (j - a > nl && memcmp(v.p + a, name, nl) == 0 && v.p[a + nl] == '=') {
        size_t b = j;
        while (b > a + nl + 1 && (v.p[b - 1] == ' ' || v.p[b - 1] == '\t')) b--;
        *out = (tether__slice){v.p + a + nl + 1, b - a - nl - 1};
        return 1;
      }
      i = j + 1;
    }
  }
  return 0;
}

int tether__query_arg(tether__slice target, const char *name, tether__slice *out) {
  const char *q = memchr(target.p, '?', target.n);
  if (q == NULL) return 0;
  size_t nl = strlen(name);
  const char *end = target.p + target.n, *p = q + 1;
  while (p < end) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *e = amp ? amp : end;
    if ((size_t)(e - p) >= nl && memcmp(p, name, nl) == 0 && (p + nl == e || p[nl] == '=')) {
      const char *v = p + nl == e ? e : p + nl + 1;
      *out = (tether__slice){v, (size_t)(e - v)};
      return 1;
    }
    p = e + 1;
  }
  return 0;
}

void tether__chash_request(const tether__upstream_rt *u, const tether__h1_msg *m, const struct sockaddr *client,
                           const tether_jwt_claims *claims, tether__persist_req *pr) {
  const tether__cf_persist *cp = &u->cf->persist;
  tether__slice v;
  if (cp->kind == TETHER__PERSIST_APP_COOKIE) {
    if (!tether__raw_cookie(m, cp->cookie, &v) || v.n == 0) return; /* the app has not set its cookie yet */
    append(pr, v.p, v.n);
  } else {
    for (int i = 0; i < cp->nkey; i++) {
      const tether__key_part *k = &cp->key[i];
      switch (k->type) {
      case TETHER__KEY_TEXT:
        append(pr, k->text, strlen(k->text));
        break;
      case TETHER__KEY_REMOTE_ADDR: {
        char ip[INET6_ADDRSTRLEN] = "";
        if (client->sa_family == AF_INET)
          inet_ntop(AF_INET, &((const struct sockaddr_in *)client)->sin_addr, ip, sizeof(ip));
        else if (client->sa_family == AF_INET6)
          inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)client)->sin6_addr, ip, sizeof(ip));
        append(pr, ip, strlen(ip));
        break;
      }
      case TETHER__KEY_HTTP:
        v = tether__h1_header_get(m, k->text);
        if (v.p) append(pr, v.p, v.n);
        break;
      case TETHER__KEY_COOKIE:
        if (tether__raw_cookie(m, k->text, &v)) append(pr, v.p, v.n);
        break;
      case TETHER__KEY_ARG:
        if (tether__query_arg(m->target, k->text, &v)) append(pr, v.p, v.n);
        break;
      case TETHER__KEY_REQUEST_URI:
        append(pr, m->target.p, m->target.n);
        break;
      default:
        break;                      /* header-only variables are refused in hash keys */
      case TETHER__KEY_JWT_CLAIM: { /* a verified claim (auth_jwt on the location); nothing otherwise */
        char claim[256];
        int n = claims ? tether_jwt_claim_text(claims, k->text, claim, sizeof(claim)) : -1;
        if (n > 0) append(pr, claim, (size_t)n);
        break;
      }
      }
    }
  }
  pr->key_hash = tether_crc32(pr->key, pr->key_len);
  pr->have_key = 1;
}

/* Ring index -> server index (the ring holds the primaries in configuration order). */
static int primary(const tether__cf_upstream *cu, size_t ring_index) {
  for (size_t i = 0; i < cu->nservers; i++) {
    if (cu->servers[i].backup) continue;
    if (ring_index-- == 0) return (int)i;
  }
  return -1;
}

/* nginx's `hash KEY`: round r adds (CRC32(r as decimal, when r > 0, then the key) >> 16) & 0x7fff to a
 * running total; the total modulo the weights picks. */
static int modulo_walk(const tether__upstream_rt *u, const tether__persist_req *pr, int *order, int max) {
  unsigned total_weight = (unsigned)u->persist->total_weight, total = 0;
  int n = 0;
  if (total_weight == 0) return 0;
  for (unsigned r = 0; r < 20 && n < max; r++) {
    uLong crc = crc32(0L, Z_NULL, 0);
    if (r > 0) {
      char digits[16];
      int dl = snprintf(digits, sizeof(digits), "%u", r);
      crc = crc32(crc, (const Bytef *)digits, (uInt)dl);
    }
    crc = crc32(crc, pr->key, (uInt)pr->key_len);
    total += ((unsigned)crc >> 16) & 0x7fff;
    int s = tether__persist_by_weight(u->cf, total % total_weight);
    int seen = 0;
    for (int k = 0; k < n && !seen; k++) seen = order[k] == s;
    if (s >= 0 && !seen) order[n++] = s;
  }
  return n;
}

int tether__chash_walk(const tether__upstream_rt *u, const tether__persist_req *pr, int *order, int max) {
  const tether__cf_persist *cp = &u->cf->persist;
  if (cp->kind == TETHER__PERSIST_HASH && cp->method == TETHER__HASH_MODULO) return modulo_walk(u, pr, order, max);
  size_t idx[64];
  size_t n = u->persist->maglev ? tether_maglev_walk(u->persist->maglev, pr->key, pr->key_len, idx, (size_t)max)
                                : tether_ketama_walk(u->persist->ring, pr->key, pr->key_len, idx, (size_t)max);
  for (size_t i = 0; i < n; i++) order[i] = primary(u->cf, idx[i]);
  return (int)n;
}
