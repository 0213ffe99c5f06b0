/* libtether: Maglev hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
 * Balancer", NSDI 2016), weighted by filling turns in proportion to weight. */
#include <stdlib.h>
#include <string.h>

#include "../util.h"
#include "tether/hash.h"

struct tether_maglev {
  uint32_t *table; /* slot -> server index */
  size_t size;
  size_t nservers;
};

static uint64_t fnv1a64(const char *s, uint64_t seed) {
  uint64_t h = 14695981039346656037ull ^ seed;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
  /* final avalanche (splitmix64) so similar names spread */
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

static int is_prime(size_t n) {
  if (n < 2) return 0;
  for (size_t d = 2; d * d <= n; d++)
    if (n % d == 0) return 0;
  return 1;
}

int tether_maglev_new(const char *const *names, const uint32_t *weights, size_t n, size_t size, tether_maglev **out) {
  *out = NULL;
  if (size == 0) size = TETHER_MAGLEV_SIZE;
  if (n == 0) return tether__fail(TETHER_EINVAL, "maglev: no servers");
  if (!is_prime(size) || size < n * 10)
    return tether__fail(TETHER_EINVAL, "maglev: table size must be a prime >= 10x servers");
  uint32_t maxw = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t w = weights ? weights[i] : 1;
    if (w == 0 || w > 1000) return tether__fail(TETHER_EINVAL, "maglev: weight of '%s' must be 1-1000", names[i]);
    if (w > maxw) maxw = w;
  }
  uint64_t *offset = tether__malloc(n * sizeof(uint64_t));
  uint64_t *skip = tether__malloc(n * sizeof(uint64_t));
  uint64_t *next = tether__calloc(n, sizeof(uint64_t));
  double *credit = tether__calloc(n, sizeof(double));
  for (size_t i = 0; i < n; i++) {
    offset[i] = fnv1a64(names[i], 0x5bd1e995) % size;
    skip[i] = fnv1a64(names[i], 0x27d4eb2f165667c5ull) % (size - 1) + 1;
  }
  tether_maglev *m = tether__calloc(1, sizeof(*m));
  m->table = tether__malloc(size * sizeof(uint32_t));
  memset(m->table, 0xff, size * sizeof(uint32_t));
  m->size = size;
  m->nservers = n;
  size_t filled = 0;
  while (filled < size) {
    for (size_t i = 0; i < n && filled < size; i++) {
      credit[i] += (double)(weights ? weights[i] : 1) / maxw;
      while (credit[i] >= 1.0 && filled < size) {
        credit[i] -= 1.0;
        uint64_t c;
        do {
          c = (offset[i] + next[i] * skip[i]) % size;
          next[i]++;
        } while (m->table[c] != UINT32_MAX);
        m->table[c] = (uint32_t)i;
        filled++;
      }
    }
  }
  free(offset);
  free(skip);
  free(next);
  free(credit);
  *out = m;
  return 0;
}

void tether_maglev_free(tether_maglev *m) {
  if (m == NULL) return;
  free(m->table);
  free(m);
}

size_t tether_maglev_server(const tether_maglev *m, const void *key, size_t len) {
  return m->table[tether_crc32(key, len) % m->size];
}

size_t tether_maglev_walk(const tether_maglev *m, const void *key, size_t len, size_t *out, size_t max) {
  size_t want = max < m->nservers ? max : m->nservers, got = 0;
  size_t slot = tether_crc32(key, len) % m->size;
  for (size_t step = 0; step < m->size && got < want; step++) {
    uint32_t s = m->table[(slot + step) % m->size];
    int seen = 0;
    for (size_t i = 0; i < got && !seen; i++) seen = out[i] == s;
    if (!seen) out[got++] = s;
  }
  return got;
}

uint64_t tether_bounded_cap(uint64_t total, size_t n, unsigned factor) {
  if (n == 0) return 0;
  if (factor < 100) factor = 100;
  /* ceil(factor/100 * total / n), at least 1 */
  uint64_t cap = (total * factor + (uint64_t)n * 100 - 1) / ((uint64_t)n * 100);
  return cap ? cap : 1;
}
