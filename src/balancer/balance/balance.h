/* Balance algorithms, one file each: they pick among candidate servers (usable, not yet tried). */
#ifndef TETHER_BALANCER_BALANCE_H
#define TETHER_BALANCER_BALANCE_H

#include "../runtime-t.h"

typedef struct tether__candidates {
  int idx[TETHER__CF_MAX_SERVERS];    /* server indexes in the upstream */
  int weight[TETHER__CF_MAX_SERVERS]; /* effective weights */
  int n;
} tether__candidates;

int tether__rr_pick(const tether__upstream_rt *u, tether__balance_state *bs, const tether__candidates *c);
int tether__leastconn_pick(const tether__upstream_rt *u, tether__balance_state *bs, const tether__candidates *c);
int tether__p2c_pick(const tether__upstream_rt *u, tether__balance_state *bs, const tether__candidates *c);

/* Picks a server for an unbound request: among usable primaries by the upstream's algorithm, else among
 * usable backups; skips those in `tried` (a bitmap of server indexes, may be NULL). -1 when none. */
int tether__balance_pick(const tether__upstream_rt *u, tether__balance_state *bs, const uint8_t *tried, int64_t now_ms);

#endif
