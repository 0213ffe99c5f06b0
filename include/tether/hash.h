/* Tether: hashing shared by the balancer and the memcached ring.
 * The consistent hash is nginx's `hash ... consistent` (ketama over CRC32, 160 points per weight unit),
 * so a key maps to the same server name in nginx and in Tether. */
#ifndef TETHER_HASH_H
#define TETHER_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* IEEE CRC-32 (zlib's). */
TETHER_EXTERN uint32_t tether_crc32(const void *data, size_t len);

typedef struct tether_ketama tether_ketama;

/* Builds a ring over n servers named as in the configuration ("host:port"), each with its weight
 * (NULL: all 1). Returns TETHER_EINVAL for n == 0 or a zero weight. */
TETHER_EXTERN int tether_ketama_new(const char *const *names, const uint32_t *weights, size_t n, tether_ketama **out);
TETHER_EXTERN void tether_ketama_free(tether_ketama *ring);

/* The server index that owns key. */
TETHER_EXTERN size_t tether_ketama_server(const tether_ketama *ring, const void *key, size_t len);

/* The servers in ring order from key's point: each server once, the owner first. Writes at most max
 * indexes into out and returns how many (min(max, number of servers)). */
TETHER_EXTERN size_t tether_ketama_walk(const tether_ketama *ring, const void *key, size_t len, size_t *out,
                                        size_t max);

TETHER_EXTERN size_t tether_ketama_points(const tether_ketama *ring);

/* Maglev (Eisenbud et al., NSDI 2016): a lookup table of `size` slots (a prime, 65537 by default) filled
 * by each server's permutation in turns proportional to its weight. Even spread, O(1) lookup, and about
 * 1/N of keys move when one of N servers goes. */
typedef struct tether_maglev tether_maglev;

#define TETHER_MAGLEV_SIZE 65537

TETHER_EXTERN int tether_maglev_new(const char *const *names, const uint32_t *weights, size_t n, size_t size,
                                    tether_maglev **out);
TETHER_EXTERN void tether_maglev_free(tether_maglev *m);
TETHER_EXTERN size_t tether_maglev_server(const tether_maglev *m, const void *key, size_t len);
/* Servers in table order from key's slot, each once, the owner first (fallbacks when it is down). */
TETHER_EXTERN size_t tether_maglev_walk(const tether_maglev *m, const void *key, size_t len, size_t *out, size_t max);

/* Consistent hashing with bounded loads (Mirrokni et al.; HAProxy's hash-balance-factor): the most
 * in-flight requests one of n servers may hold when total are in flight (counting the new one), with
 * factor in percent of the mean (>= 100). */
TETHER_EXTERN uint64_t tether_bounded_cap(uint64_t total, size_t n, unsigned factor);

#ifdef __cplusplus
}
#endif
#endif
