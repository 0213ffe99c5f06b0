/* Smooth weighted round robin, as nginx: each pick adds every candidate's weight to its current value,
 * takes the largest, and subtracts the total from it. Spreads weights evenly (a,a,b not a,b,a... bursts). */
#include "balance.h"

int tether__rr_pick(const tether__upstream_rt *u, tether__balance_state *bs, const tether__candidates *c) {
  (void)u;
  int best = -1, total = 0;
  for (int k = 0; k < c->n; k++) {
    int i = c->idx[k];
    bs->current[i] += c->weight[k];
    total += c->weight[k];
    if (best < 0 || bs->current[i] > bs->current[best]) best = i;
  }
  if (best >= 0) bs->current[best] -= total;
  return best;
}
