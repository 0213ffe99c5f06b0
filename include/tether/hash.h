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
TETHER_EXTERN int tether_ketama_new(const char *const *names, const uint32_t *weights, size_t n,
                                    tether_ketama **out);
TETHER_EXTERN void tether_ketama_free(tether_ketama *ring);

/* The server index that owns key. */
TETHER_EXTERN size_t tether_ketama_server(const tether_ketama *ring, const void *key, size_t len);

/* The servers in ring order from key's point: each server once, the owner first. Writes at most max
 * indexes into out and returns how many (min(max, number of servers)). */
TETHER_EXTERN size_t tether_ketama_walk(const tether_ketama *ring, const void *key, size_t len,
                                        size_t *out, size_t max);

TETHER_EXTERN size_t tether_ketama_points(const tether_ketama *ring);

#ifdef __cplusplus
}
#endif
#endif
