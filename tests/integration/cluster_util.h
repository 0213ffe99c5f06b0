/* Helpers of the Redis Cluster tests (store_cluster.c, store_cluster_async.c): the nodes, raw commands to them,
 * who owns a slot, moving a slot by hand. */
#ifndef TETHER_TEST_CLUSTER_UTIL_H
#define TETHER_TEST_CLUSTER_UTIL_H

#include <hiredis/hiredis.h>

#include "procs.h"

enum { MASTERS = 3, NODES = 6 };
extern tt_server nodes[NODES]; /* the first MASTERS are the masters at the start */

/* A command on a new connection to 127.0.0.1:port; fails the test when the node does not answer. */
redisReply *raw(int port, const char *fmt, ...);
/* The same, failing the test on an error reply too. */
void raw_ok(int port, const char *fmt, const char *a, const char *b);
char *node_id(int port); /* malloc'd */
/* The node (index into nodes) that is master of slot now, from CLUSTER SLOTS on the node at ask_port. */
int owner(int ask_port, unsigned slot);
unsigned sid_slot(const char *sid); /* of sess:<sid> */
/* A live master other than nodes[i]. */
int other_master(int i);
/* Waits (up to 15 s) until every live node says cluster_state:ok: a slot served again, or a move, reaches the
 * others by gossip, and a test that comes next must not meet CLUSTERDOWN from the one before. */
void cluster_settle(void);
/* SETSLOT slot NODE dst on every live master: the move is final. */
void setslot_node(unsigned slot, const char *dst_id);

/* Slot {tag} half moved: {tag}a and {tag}b set on the slot's owner, the slot MIGRATING to another master
 * (IMPORTING there) and {tag}a migrated, so that the owner answers TRYAGAIN to a command on both keys
 * (checked). */
typedef struct split {
  unsigned slot;
  int src, dst; /* index into nodes */
  char dst_id[64];
  char kb[32]; /* the key still on src */
} split;
void split_slot(const char *tag, split *sp);
/* The rest of the move: {tag}b migrated, then SETSLOT NODE everywhere. */
void split_finish(const split *sp);

#endif
