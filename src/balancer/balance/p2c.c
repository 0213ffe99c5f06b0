/* Power of two choices (`random two`): two candidates drawn at random by weight, the one with fewer
 * in-flight requests wins. Nearly least_conn's balance without scanning every server. */
#include "balance.h"

static uint64_t next(tether__balance_state *bs) {
  uint64_t x = bs->rng ? bs->rng : 0x9e3779b97f4a7c15ull;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  bs->rng = x;
  return x;
}

static int draw(tether__balance_state *bs, const tether__candidates *c, int total) {
  int r = (int)(next(bs) % (uint64_t)total);
  for (int k = 0; k < c->n; k++) {
    if (r < c->weight[k]) return k;
    r -= c->weight[k];
  }
  return c->n - 1;
}

int tether__p2c_pick(const tether__upstream_rt *u, tether__balance_state *bs, const tether__candidates *c) {
  if (c->n == 1) return c->idx[0];
  int total = 0;
  for (int k = 0; k < c->n; k++) total += c->weight[k];
  int a = draw(bs, c, total), b = draw(bs, c, total);
  for (int guard = 0; b == a && guard < 8; guard++) b = draw(bs, c, total);
  if (b == a) b = (a + 1) % c->n;
  int ia = c->idx[a], ib = c->idx[b];
  long la = (long)atomic_load_explicit(&u->servers[ia]->active, memory_order_relaxed) * c->weight[b];
  long lb = (long)atomic_load_explicit(&u->servers[ib]->active, memory_order_relaxed) * c->weight[a];
  return la <= lb ? ia : ib;
}
