/* Routing: the virtual server by name (nginx's order), then the location on the normalized path. */
#include "route.h"

#include <ctype.h>
#include <string.h>

#include "../uri.h"

/* nginx's host key: lower-cased, without the port and without a trailing dot. (size_t)-1 when it does not
 * fit (no server name is that long). */
static size_t host_key(const char *p, size_t n, char *out, size_t cap) {
  if (n && p[0] == '[') { /* an IPv6 literal keeps its brackets */
    const char *e = memchr(p, ']', n);
    n = e ? (size_t)(e - p) + 1 : n;
  } else {
    const char *colon = memchr(p, ':', n);
    if (colon) n = (size_t)(colon - p);
  }
  if (n && p[n - 1] == '.') n--;
  if (n >= cap) return (size_t)-1;
  for (size_t i = 0; i < n; i++) out[i] = (char)tolower((unsigned char)p[i]);
  out[n] = '\0';
  return n;
}

/* How well name matches host: 3 exact; 2 a leading wildcard ("*.x", ".x"), 1 a trailing one ("x.*"), with
 * the wildcard's fixed part's length in *len; 0 no match. */
static int name_match(const char *name, const char *host, size_t n, size_t *len) {
  size_t k = strlen(name);
  if (name[0] == '*' || (name[0] == '.' && k > 1)) {
    const char *suffix = name[0] == '*' ? name + 1 : name; /* ".example.com" */
    size_t sl = strlen(suffix);
    *len = sl;
    if (name[0] == '.' && n == sl - 1 && memcmp(host, suffix + 1, n) == 0) return 2; /* .x also names x */
    return n > sl && memcmp(host + n - sl, suffix, sl) == 0 ? 2 : 0;
  }
  if (k > 2 && name[k - 1] == '*' && name[k - 2] == '.') {
    *len = k - 1;
    return n > k - 1 && memcmp(host, name, k - 1) == 0 ? 1 : 0;
  }
  return k == n && memcmp(name, host, n) == 0 ? 3 : 0;
}

int tether__vserver_find(const tether__config *cf, int listener, const char *host, size_t n) {
  char key[256] = "";
  if ((size_t)listener >= cf->nlisten) listener = 0; /* listeners change only on restart */
  n = host ? host_key(host, n, key, sizeof(key)) : 0;
  if (n == (size_t)-1) return -1;
  int best = -1, best_kind = 0;
  size_t best_len = 0;
  for (size_t v = 0; v < cf->nvservers; v++) {
    const tether__cf_vserver *vs = &cf->vservers[v];
    if (!(vs->listens & (1u << listener))) continue;
    for (int i = 0; i < (vs->nnames ? vs->nnames : 1); i++) {
      size_t len = 0;
      int kind = name_match(vs->nnames ? vs->names[i] : "", key, n, &len);
      /* exact first, then the longest leading wildcard, then the longest trailing one; ties: the first server */
      if (kind > best_kind || (kind && kind == best_kind && kind < 3 && len > best_len)) {
        best = (int)v;
        best_kind = kind;
        best_len = len;
      }
    }
  }
  return best;
}

int tether__vserver_default(const tether__config *cf, int listener) {
  return cf->listen_default[(size_t)listener < cf->nlisten ? listener : 0];
}

int tether__vserver_select(const tether__config *cf, int listener, const char *host, size_t n) {
  int v = tether__vserver_find(cf, listener, host, n);
  return v >= 0 ? v : tether__vserver_default(cf, listener);
}

static const tether__cf_location *longest_prefix(const tether__config *cf, const tether__cf_vserver *vs,
                                                 const char *path, size_t n) {
  const tether__cf_location *best = NULL;
  size_t best_len = 0;
  for (size_t i = vs->first_location; i < vs->first_location + vs->nlocations; i++) {
    const tether__cf_location *l = &cf->locations[i];
    size_t pl = strlen(l->prefix);
    if (l->exact) {
      if (pl == n && memcmp(path, l->prefix, pl) == 0) return l;
    } else if (pl <= n && memcmp(path, l->prefix, pl) == 0 && (best == NULL || pl > best_len)) {
      best = l;
      best_len = pl;
    }
  }
  return best;
}

const tether__cf_location *tether__route(const tether__config *cf, const tether__cf_vserver *vs,
                                         const tether__h1_msg *m, tether__buf *scratch, int *status) {
  *status = 0;
  scratch->len = 0;
  if (m->path.n == 1 && m->path.p[0] == '*') return longest_prefix(cf, vs, "*", 1); /* OPTIONS *: no location */
  tether__buf_reserve(scratch, m->path.n);
  int n = tether__uri_normalize(m->path.p, m->path.n, scratch->data, m->path.n + 1);
  if (n < 0) {
    *status = -n;
    return NULL;
  }
  scratch->len = (size_t)n;
  return longest_prefix(cf, vs, scratch->data, (size_t)n);
}
