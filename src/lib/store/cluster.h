/* libtether internals: Redis Cluster's hash slots and slot maps, for the redis-cluster store. */
#ifndef TETHER_STORE_CLUSTER_H
#define TETHER_STORE_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#define TETHER__CLUSTER_SLOTS 16384
#define TETHER__CLUSTER_NONE 0xffff /* a slot no node serves */

/* The hash slot of a key: CRC16 (XMODEM) of the key, or of its {hash tag} when it has a non-empty one, mod
 * 16384, as Redis Cluster computes it. */
unsigned tether__cluster_slot(const char *key, size_t len);

typedef struct tether__cluster_addr {
  char *host;
  int port;
} tether__cluster_addr;

/* Who serves each slot, as one node answered CLUSTER SHARDS or CLUSTER SLOTS. */
typedef struct tether__cluster_map {
  uint16_t master[TETHER__CLUSTER_SLOTS];  /* index into addrs, or TETHER__CLUSTER_NONE */
  uint16_t replica[TETHER__CLUSTER_SLOTS]; /* an online replica of that master, or TETHER__CLUSTER_NONE */
  tether__cluster_addr *addrs;
  size_t naddrs;
  size_t nmasters; /* masters that serve slots */
} tether__cluster_map;

struct redisReply;
/* Fills m from a CLUSTER SHARDS reply (shards != 0) or a CLUSTER SLOTS reply. Nodes are named by their IP
 * (the announced one); failed nodes are skipped. 0, or -1 for a reply of an unexpected shape. */
int tether__cluster_map_parse(const struct redisReply *rep, int shards, tether__cluster_map *m);
void tether__cluster_map_free(tether__cluster_map *m);

#endif
