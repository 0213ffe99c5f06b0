/* nginx's weighted positions, shared by ip_hash and hash. */
#include "persist.h"

int tether__persist_by_weight(const tether__cf_upstream *cu, unsigned w) {
  for (size_t i = 0; i < cu->nservers; i++) {
    if (cu->servers[i].backup) continue;
    if (w < (unsigned)cu->servers[i].weight) return (int)i;
    w -= (unsigned)cu->servers[i].weight;
  }
  return -1;
}
