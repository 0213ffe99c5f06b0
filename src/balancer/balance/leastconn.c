/* Least connections, weighted (nginx's least_conn): the fewest in-flight requests per unit of weight,
 * ties broken by smooth round robin so equal servers still alternate. */
#include "balance.h"

int tether__leastconn_pick(const tether__upstream_rt *u, tether__balance_state *bs, const tether__candidates *c) {
  tether__candidates ties = {.n = 0};
  int best_active = 0, best_weight = 1;
  for (int k = 0; k < c->n; k++) {
    int i = c->idx[k];
    int a = atomic_load_explicit(&u->servers[i]->active, memory_order_relaxed);
    int w = c->weight[k];
    /* compare a/w < best_active/best_weight without division */
    if (ties.n == 0 || (long)a * best_weight < (long)best_active * w) {
      ties.n = 0;
      best_active = a;
      best_weight = w;
    } else if ((long)a * best_weight != (long)best_active * w) {
      continue;
    }
    ties.idx[ties.n] = i;
    ties.weight[ties.n] = w;
    ties.n++;
  }
  return ties.n == 1 ? ties.idx[0] : tether__rr_pick(u, bs, &ties);
}
