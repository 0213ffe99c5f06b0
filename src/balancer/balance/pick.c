/* The balancer's pick among usable servers, by the upstream's algorithm. */
#include "../server.h"
#include "balance.h"

int tether__balance_pick(const tether__upstream_rt *u, tether__balance_state *bs, const uint8_t *tried, int64_t now) {
  tether__candidates c;
  for (int backup = 0; backup < 2; backup++) {
    c.n = 0;
    for (size_t i = 0; i < u->cf->nservers; i++) {
      const tether__cf_server *cs = &u->cf->servers[i];
      if (cs->backup != backup || (tried && tried[i])) continue;
      if (!tether__server_usable(u->servers[i], cs, now)) continue;
      c.idx[c.n] = (int)i;
      c.weight[c.n] = tether__server_weight(u->servers[i], cs, now);
      c.n++;
    }
    if (c.n == 0) continue;
    switch (u->cf->balance) {
    case TETHER__BALANCE_LEAST_CONN:
      return tether__leastconn_pick(u, bs, &c);
    case TETHER__BALANCE_RANDOM_TWO:
      return tether__p2c_pick(u, bs, &c);
    default:
      return tether__rr_pick(u, bs, &c);
    }
  }
  return -1;
}
