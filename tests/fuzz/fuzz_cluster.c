/* libFuzzer harness: what a Redis Cluster node answers, as the redis-cluster stores read it. The input is
 * RESP (hiredis's reader, as on the wire); each reply is read as a CLUSTER SHARDS and a CLUSTER SLOTS answer
 * (tether__cluster_map_parse), and an error or string as a MOVED/ASK redirect (tether__cluster_redirect);
 * the raw bytes are hashed to a slot (tether__cluster_slot). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "store/cluster.h"

static void check_map(const redisReply *rep, int shards) {
  tether__cluster_map m;
  if (tether__cluster_map_parse(rep, shards, &m) < 0) return;
  for (size_t s = 0; s < TETHER__CLUSTER_SLOTS; s++) {
    if (m.master[s] != TETHER__CLUSTER_NONE && m.master[s] >= m.naddrs) abort();
    if (m.replica[s] != TETHER__CLUSTER_NONE && m.replica[s] >= m.naddrs) abort();
  }
  for (size_t i = 0; i < m.naddrs; i++)
    if (m.addrs[i].host == NULL) abort();
  tether__cluster_map_free(&m);
}

static void check_redirect(const redisReply *rep) {
  if (rep->type != REDIS_REPLY_ERROR && rep->type != REDIS_REPLY_STRING && rep->type != REDIS_REPLY_STATUS) return;
  const char *host;
  size_t hlen;
  int port;
  if (tether__cluster_redirect(rep->str, rep->len, &host, &hlen, &port) < 0) return;
  if (host < rep->str || host + hlen > rep->str + rep->len || port < 1 || port > 65535) abort();
}

/* Whether the input declares an array of more than 65,536 elements anywhere. hiredis 0.14 (Debian 12) has no
 * maxelements limit (hiredis 1.0 added one) and allocates a declared array up front, so `*2000000000` asks it
 * for 16 GB before a single element arrives: a finding in the library, not in what this harness checks. A
 * header can start anywhere (hiredis skips a bulk string's two terminator bytes without looking at them), so
 * every '*' counts. */
static int declares_huge_array(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (p[i] != '*') continue;
    size_t j = i + 1;
    if (j < n && (p[j] == '-' || p[j] == '+')) j++;
    uint64_t v = 0;
    while (j < n && p[j] >= '0' && p[j] <= '9' && v <= 65536) v = v * 10 + (uint64_t)(p[j++] - '0');
    if (v > 65536) return 1;
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (tether__cluster_slot((const char *)data, size) >= TETHER__CLUSTER_SLOTS) abort();
  if (declares_huge_array(data, size)) return 0;
  redisReader *r = redisReaderCreate();
  if (redisReaderFeed(r, (const char *)data, size) == REDIS_OK) {
    for (int i = 0; i < 16; i++) {
      void *rep = NULL;
      if (redisReaderGetReply(r, &rep) != REDIS_OK || rep == NULL) break;
      check_map(rep, 1);
      check_map(rep, 0);
      check_redirect(rep);
      freeReplyObject(rep);
    }
  }
  redisReaderFree(r);
  return 0;
}
