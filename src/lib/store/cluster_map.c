/* libtether: Redis Cluster's hash slots (CRC16 with hash tags) and slot maps read from CLUSTER SHARDS (Redis
 * 7) or CLUSTER SLOTS (older servers). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>

#include "../util.h"
#include "cluster.h"

/* CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as in Redis's crc16.c; a byte at a time from a
 * table computed once (every call hashes a key). */
static uint16_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
  for (unsigned v = 0; v < 256; v++) {
    uint16_t crc = (uint16_t)(v << 8);
    for (int b = 0; b < 8; b++) crc = crc & 0x8000 ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    crc_table[v] = crc;
  }
}

static uint16_t crc16(const char *p, size_t n) {
  pthread_once(&crc_once, crc_init);
  uint16_t crc = 0;
  for (size_t i = 0; i < n; i++) crc = (uint16_t)((crc << 8) ^ crc_table[((crc >> 8) ^ (unsigned char)p[i]) & 0xff]);
  return crc;
}

unsigned tether__cluster_slot(const char *key, size_t len) {
  const char *open = memchr(key, '{', len);
  if (open) {
    size_t from = (size_t)(open - key) + 1;
    const char *close = memchr(key + from, '}', len - from);
    if (close && close > key + from) /* "{}" is not a tag: the whole key is hashed */
      return crc16(key + from, (size_t)(close - key) - from) & (TETHER__CLUSTER_SLOTS - 1);
  }
  return crc16(key, len) & (TETHER__CLUSTER_SLOTS - 1);
}

static size_t addr_index(tether__cluster_map *m, const char *host, size_t hlen, long long port) {
  for (size_t i = 0; i < m->naddrs; i++)
    if (m->addrs[i].port == port && strlen(m->addrs[i].host) == hlen && memcmp(m->addrs[i].host, host, hlen) == 0)
      return i;
  m->addrs = tether__realloc(m->addrs, (m->naddrs + 1) * sizeof(*m->addrs));
  m->addrs[m->naddrs] = (tether__cluster_addr){.host = tether__strndup(host, hlen), .port = (int)port};
  return m->naddrs++;
}

static void assign(tether__cluster_map *m, long long from, long long to, size_t master, size_t replica) {
  if (from < 0 || to >= TETHER__CLUSTER_SLOTS || from > to) return;
  for (long long s = from; s <= to; s++) {
    m->master[s] = (uint16_t)master;
    m->replica[s] = (uint16_t)replica;
  }
}

/* A value in a flat key/value array (CLUSTER SHARDS' maps in RESP2), or NULL. */
static const redisReply *field(const redisReply *map, const char *name) {
  if (map->type != REDIS_REPLY_ARRAY) return NULL;
  for (size_t i = 0; i + 1 < map->elements; i += 2)
    if (map->element[i]->type == REDIS_REPLY_STRING && strcmp(map->element[i]->str, name) == 0)
      return map->element[i + 1];
  return NULL;
}

static int is_str(const redisReply *r, const char *s) {
  return r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, s);
}

/* One shard: {"slots": [from, to, ...], "nodes": [{"ip", "port", "role", "health", ...}, ...]}. */
static int parse_shard(const redisReply *shard, tether__cluster_map *m) {
  const redisReply *slots = field(shard, "slots"), *nodes = field(shard, "nodes");
  if (slots == NULL || nodes == NULL || slots->type != REDIS_REPLY_ARRAY || nodes->type != REDIS_REPLY_ARRAY) return -1;
  size_t master = TETHER__CLUSTER_NONE, replica = TETHER__CLUSTER_NONE;
  for (size_t i = 0; i < nodes->elements; i++) {
    const redisReply *n = nodes->element[i], *ip = field(n, "ip"), *port = field(n, "port");
    if (ip == NULL || ip->type != REDIS_REPLY_STRING || port == NULL || port->type != REDIS_REPLY_INTEGER) continue;
    if (!is_str(field(n, "health"), "online")) continue; /* failed, or loading its data */
    size_t k = addr_index(m, ip->str, ip->len, port->integer);
    if (is_str(field(n, "role"), "master"))
      master = k;
    else if (replica == TETHER__CLUSTER_NONE)
      replica = k;
  }
  if (master == TETHER__CLUSTER_NONE || slots->elements == 0) return 0;
  m->nmasters++;
  for (size_t i = 0; i + 1 < slots->elements; i += 2) {
    if (slots->element[i]->type != REDIS_REPLY_INTEGER || slots->element[i + 1]->type != REDIS_REPLY_INTEGER) return -1;
    assign(m, slots->element[i]->integer, slots->element[i + 1]->integer, master, replica);
  }
  return 0;
}

/* One range: [from, to, [ip, port, id, ...] (the master), [ip, port, id, ...] (replicas)...]. */
static int parse_range(const redisReply *r, tether__cluster_map *m) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 3) return -1;
  size_t idx[2] = {TETHER__CLUSTER_NONE, TETHER__CLUSTER_NONE};
  for (size_t i = 2; i < r->elements && i < 4; i++) {
    const redisReply *n = r->element[i];
    if (n->type != REDIS_REPLY_ARRAY || n->elements < 2 || n->element[0]->type != REDIS_REPLY_STRING ||
        n->element[1]->type != REDIS_REPLY_INTEGER)
      return -1;
    idx[i - 2] = addr_index(m, n->element[0]->str, n->element[0]->len, n->element[1]->integer);
  }
  if (r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_INTEGER) return -1;
  m->nmasters++; /* a master with several ranges counts once per range: only "is there one" matters */
  assign(m, r->element[0]->integer, r->element[1]->integer, idx[0], idx[1]);
  return 0;
}

int tether__cluster_map_parse(const redisReply *rep, int shards, tether__cluster_map *m) {
  memset(m, 0, sizeof(*m));
  memset(m->master, 0xff, sizeof(m->master));
  memset(m->replica, 0xff, sizeof(m->replica));
  if (rep->type != REDIS_REPLY_ARRAY) return -1;
  for (size_t i = 0; i < rep->elements; i++) {
    if ((shards ? parse_shard(rep->element[i], m) : parse_range(rep->element[i], m)) < 0) {
      tether__cluster_map_free(m);
      return -1;
    }
  }
  return 0;
}

void tether__cluster_map_free(tether__cluster_map *m) {
  for (size_t i = 0; i < m->naddrs; i++) free(m->addrs[i].host);
  free(m->addrs);
  m->addrs = NULL;
  m->naddrs = 0;
}

int tether__cluster_redirect(const char *str, size_t len, const char **host, size_t *hlen, int *port) {
  const char *sp = memchr(str, ' ', len);
  sp = sp ? memchr(sp + 1, ' ', len - (size_t)(sp + 1 - str)) : NULL;
  if (sp == NULL) return -1;
  const char *end = str + len, *colon = NULL;
  for (const char *p = sp + 1; p < end; p++)
    if (*p == ':') colon = p;
  if (colon == NULL || colon == end - 1 || end - colon > 6) return -1;
  long n = 0;
  for (const char *p = colon + 1; p < end; p++) {
    if (*p < '0' || *p > '9') return -1;
    n = n * 10 + (*p - '0');
  }
  if (n <= 0 || n > 65535) return -1;
  *host = sp + 1;
  *hlen = (size_t)(colon - sp - 1);
  *port = (int)n;
  return 0;
}

int tether__cluster_no_shards(const char *err) {
  return strncasecmp(err, "ERR unknown", 11) == 0 || strncmp(err, "NOPERM", 6) == 0;
}
