/* libtether: nginx's consistent hash (`hash KEY consistent`): 160 CRC32 points per weight unit on a ring,
 * a key owned by the first point at or after its CRC32. Used by the balancer and the memcached ring. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "../util.h"
#include "tether/hash.h"

typedef struct point {
  uint32_t hash;
  uint32_t server; /* index in configuration order */
  uint32_t seq;    /* generation order, to keep nginx's stable sort on ties */
} point;

struct tether_ketama {
  point *points;
  size_t npoints;
  size_t nservers;
};

uint32_t tether_crc32(const void *data, size_t len) { return (uint32_t)crc32(0L, (const Bytef *)data, (uInt)len); }

static int cmp_point(const void *a, const void *b) {
  const point *x = a, *y = b;
  if (x->hash != y->hash) return x->hash < y->hash ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* CRC32 over host, a zero byte, then port: nginx splits "host:port" at the last ':' followed by digits
 * only, and uses the path of "unix:" names with no port. */
static uint32_t base_hash(const char *name) {
  size_t len = strlen(name);
  const char *host = name, *port = "";
  size_t hl = len, pl = 0;
  if (len >= 5 && strncasecmp(name, "unix:", 5) == 0) {
    host = name + 5;
    hl = len - 5;
  } else {
    for (size_t j = 0; j < len; j++) {
      char c = name[len - j - 1];
      if (c == ':') {
        hl = len - j - 1;
        port = name + len - j;
        pl = j;
        break;
      }
      if (c < '0' || c > '9') break;
    }
  }
  uLong crc = crc32(0L, (const Bytef *)host, (uInt)hl);
  crc = crc32(crc, (const Bytef *)"", 1);
  return (uint32_t)crc32(crc, (const Bytef *)port, (uInt)pl);
}

int tether_ketama_new(const char *const *names, const uint32_t *weights, size_t n, tether_ketama **out) {
  *out = NULL;
  if (n == 0) return tether__fail(TETHER_EINVAL, "consistent hash: no servers");
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t w = weights ? weights[i] : 1;
    if (w == 0 || w > 1000)
      return tether__fail(TETHER_EINVAL, "consistent hash: weight of '%s' must be 1-1000", names[i]);
    total += (size_t)w * 160;
  }
  tether_ketama *r = tether__calloc(1, sizeof(*r));
  r->points = tether__malloc(total * sizeof(point));
  r->nservers = n;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t base = base_hash(names[i]);
    uint32_t prev = 0;
    size_t np = (size_t)(weights ? weights[i] : 1) * 160;
    for (size_t j = 0; j < np; j++) {
      uint8_t le[4] = {(uint8_t)prev, (uint8_t)(prev >> 8), (uint8_t)(prev >> 16), (uint8_t)(prev >> 24)};
      uint32_t h = (uint32_t)crc32(base, le, 4);
      r->points[k].hash = h;
      r->points[k].server = (uint32_t)i;
      r->points[k].seq = (uint32_t)k;
      k++;
      prev = h;
    }
  }
  qsort(r->points, total, sizeof(point), cmp_point);
  size_t w = 0;
  for (size_t j = 1; j < total; j++)
    if (r->points[w].hash != r->points[j].hash) r->points[++w] = r->points[j];
  r->npoints = w + 1;
  *out = r;
  return 0;
}

void tether_ketama_free(tether_ketama *r) {
  if (r == NULL) return;
  free(r->points);
  free(r);
}

static size_t find_point(const tether_ketama *r, uint32_t hash) {
  size_t lo = 0, hi = r->npoints;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (hash > r->points[mid].hash)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo % r->npoints;
}

size_t tether_ketama_server(const tether_ketama *r, const void *key, size_t len) {
  return r->points[find_point(r, tether_crc32(key, len))].server;
}

size_t tether_ketama_walk(const tether_ketama *r, const void *key, size_t len, size_t *out, size_t max) {
  size_t want = max < r->nservers ? max : r->nservers, got = 0;
  size_t p = find_point(r, tether_crc32(key, len));
  for (size_t step = 0; step < r->npoints && got < want; step++) {
    uint32_t s = r->points[(p + step) % r->npoints].server;
    int seen = 0;
    for (size_t i = 0; i < got && !seen; i++) seen = out[i] == s;
    if (!seen) out[got++] = s;
  }
  return got;
}

size_t tether_ketama_points(const tether_ketama *r) { return r->npoints; }
