/* ip_hash, as nginx 1.22 computes it: the first three bytes of an IPv4 address (all 16 of IPv6) folded
 * into a state that starts at 89 (state = (state * 113 + byte) % 6271), then a weighted pick over the
 * servers in configuration order. An unusable server makes another round on the same state; after 20
 * rounds the request is balanced normally. */
#include <netinet/in.h>
#include <string.h>

#include "persist.h"

void tether__iphash_request(const struct sockaddr *client, tether__persist_req *pr) {
  if (client->sa_family == AF_INET) {
    memcpy(pr->ip, &((const struct sockaddr_in *)client)->sin_addr, 3);
    pr->ip_len = 3;
  } else if (client->sa_family == AF_INET6) {
    memcpy(pr->ip, &((const struct sockaddr_in6 *)client)->sin6_addr, 16);
    pr->ip_len = 16;
  } else {
    memset(pr->ip, 0, 3);
    pr->ip_len = 3;
  }
  pr->have_key = 1;
}

int tether__iphash_walk(const tether__upstream_rt *u, const tether__persist_req *pr, int *order, int max) {
  const tether__cf_upstream *cu = u->cf;
  unsigned total = (unsigned)u->persist->total_weight;
  if (total == 0) return 0;
  unsigned hash = 89;
  int n = 0;
  for (int round = 0; round < 20 && n < max; round++) {
    for (int i = 0; i < pr->ip_len; i++) hash = (hash * 113 + pr->ip[i]) % 6271;
    int s = tether__persist_by_weight(cu, hash % total);
    int seen = 0;
    for (int k = 0; k < n && !seen; k++) seen = order[k] == s;
    if (s >= 0 && !seen) order[n++] = s;
  }
  return n;
}
