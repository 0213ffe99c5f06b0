/* libtether internals: Redis Cluster's hash slots and slot maps, for the redis-cluster store. */
#ifndef TETHER_STORE_CLUSTER_H
#define TETHER_STORE_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "store_impl.h"

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
/* The node a "MOVED <slot> <host>:<port>" or "ASK ..." error names (host not NUL-terminated; an IPv6 host
 * keeps its colons). 0, or -1 for another shape. */
int tether__cluster_redirect(const char *str, size_t len, const char **host, size_t *hlen, int *port);

/* A CLUSTER SHARDS error after which CLUSTER SLOTS is asked instead: a server without SHARDS (before 7.0)
 * or a user whose ACL allows SLOTS only. */
int tether__cluster_no_shards(const char *err);

/* Any command on the slot of key, through the blocking store's routing, redirects and retries (for tests:
 * multi-key commands, which sessions never send, are what draws TRYAGAIN). write: WAIT after it with wait=N.
 * Error replies other than the cluster's come back as *out; the caller frees it with freeReplyObject. */
int tether__cluster_command(tether_store *st, const char *key, int write, int argc, const char **argv,
                            const size_t *lens, struct redisReply **out);

/* The redis-cluster store's settings (cluster.c), for the asynchronous client; -1 for any other store. The
 * strings belong to the store. */
typedef struct tether__cluster_conf {
  const tether__url_host *seeds;
  size_t nseeds;
  const char *prefix;
  const char *user;     /* NULL: AUTH with the password alone */
  const char *password; /* NULL: no AUTH */
  int timeout_ms, connect_timeout_ms;
  long max_value;
  int wait_n, wait_timeout_ms;
  int replica_reads; /* read_from=replica */
  int retry_ms, max_redirects;
} tether__cluster_conf;
int tether__cluster_conf_get(const tether_store *st, tether__cluster_conf *out);
/* The store's per-node metrics (errors, latency), which the asynchronous client adds to: a reference to a
 * node, valid while the store is open, and one exchange with it. */
void *tether__cluster_node_ref(tether_store *st, const char *host, int port);
void tether__cluster_node_observe(void *ref, uint64_t us, int failed);

#endif
