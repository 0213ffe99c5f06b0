/* Routing on the normalized path. */
#include "route.h"

#include <string.h>

#include "../uri.h"

static const tether__cf_location *longest_prefix(const tether__config *cf, const char *path, size_t n) {
  const tether__cf_location *best = NULL;
  size_t best_len = 0;
  for (size_t i = 0; i < cf->nlocations; i++) {
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

const tether__cf_location *tether__route(const tether__config *cf, const tether__h1_msg *m, tether__buf *scratch,
                                         int *status) {
  *status = 0;
  scratch->len = 0;
  if (m->path.n == 1 && m->path.p[0] == '*') return longest_prefix(cf, "*", 1); /* OPTIONS *: no location */
  tether__buf_reserve(scratch, m->path.n);
  int n = tether__uri_normalize(m->path.p, m->path.n, scratch->data, m->path.n + 1);
  if (n < 0) {
    *status = -n;
    return NULL;
  }
  scratch->len = (size_t)n;
  return longest_prefix(cf, scratch->data, (size_t)n);
}
