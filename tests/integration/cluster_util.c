/* Helpers of the Redis Cluster tests: raw commands to the nodes, who owns a slot, moving a slot by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "cluster_util.h"
#include "store/cluster.h"

tt_server nodes[NODES];

redisReply *raw(int port, const char *fmt, ...) {
  redisContext *c = redisConnect("127.0.0.1", port);
  if (c == NULL || c->err) fail_msg("hiredis connect to %d", port);
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = redisvCommand(c, fmt, ap);
  va_end(ap);
  if (r == NULL) fail_msg("hiredis %s on %d: %s", fmt, port, c->errstr);
  redisFree(c);
  return r;
}

void raw_ok(int port, const char *fmt, const char *a, const char *b) {
  redisReply *r = raw(port, fmt, a, b);
  if (r->type == REDIS_REPLY_ERROR) fail_msg("%s on %d: %s", fmt, port, r->str);
  freeReplyObject(r);
}

char *node_id(int port) {
  redisReply *r = raw(port, "CLUSTER MYID");
  char *id = strdup(r->str);
  freeReplyObject(r);
  return id;
}

int owner(int ask_port, unsigned slot) {
  redisReply *r = raw(ask_port, "CLUSTER SLOTS");
  int port = 0;
  for (size_t i = 0; i < r->elements; i++) {
    redisReply *e = r->element[i];
    if ((unsigned)e->element[0]->integer <= slot && slot <= (unsigned)e->element[1]->integer)
      port = (int)e->element[2]->element[1]->integer;
  }
  freeReplyObject(r);
  for (int i = 0; i < NODES; i++)
    if (nodes[i].port == port) return i;
  fail_msg("no owner for slot %u", slot);
  return -1;
}

unsigned sid_slot(const char *sid) {
  char key[160];
  snprintf(key, sizeof(key), "sess:%s", sid);
  return tether__cluster_slot(key, strlen(key));
}

int other_master(int i) {
  for (int k = 0; k < NODES; k++) {
    redisReply *r = raw(nodes[k].port, "ROLE");
    int master = strcmp(r->element[0]->str, "master") == 0;
    freeReplyObject(r);
    if (master && k != i && nodes[k].pid) return k;
  }
  fail_msg("no other master");
  return -1;
}

void cluster_settle(void) {
  for (int i = 0; i < 150; i++, tt_sleep_ms(100)) {
    int ok = 1;
    for (int k = 0; k < NODES && ok; k++) {
      if (nodes[k].pid == 0) continue;
      redisReply *r = raw(nodes[k].port, "CLUSTER INFO");
      ok = r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_state:ok") != NULL;
      freeReplyObject(r);
    }
    if (ok) return;
  }
  fail_msg("the cluster did not settle (cluster_state:ok on every node) within 15 s");
}

void setslot_node(unsigned slot, const char *dst_id) {
  char s[16];
  snprintf(s, sizeof(s), "%u", slot);
  for (int k = 0; k < NODES; k++) {
    if (nodes[k].pid == 0) continue;
    redisReply *r = raw(nodes[k].port, "CLUSTER SETSLOT %s NODE %s", s, dst_id);
    freeReplyObject(r); /* replicas refuse: they learn it from their master */
  }
}

void split_slot(const char *tag, split *sp) {
  char ka[32], s[16];
  snprintf(ka, sizeof(ka), "{%s}a", tag);
  snprintf(sp->kb, sizeof(sp->kb), "{%s}b", tag);
  sp->slot = tether__cluster_slot(ka, strlen(ka));
  sp->src = owner(nodes[0].port, sp->slot);
  sp->dst = other_master(sp->src);
  char *src_id = node_id(nodes[sp->src].port), *dst_id = node_id(nodes[sp->dst].port);
  snprintf(sp->dst_id, sizeof(sp->dst_id), "%s", dst_id);
  snprintf(s, sizeof(s), "%u", sp->slot);
  raw_ok(nodes[sp->src].port, "SET %s %s", ka, "A");
  raw_ok(nodes[sp->src].port, "SET %s %s", sp->kb, "B");
  raw_ok(nodes[sp->dst].port, "CLUSTER SETSLOT %s IMPORTING %s", s, src_id);
  raw_ok(nodes[sp->src].port, "CLUSTER SETSLOT %s MIGRATING %s", s, dst_id);
  redisReply *r = raw(nodes[sp->src].port, "MIGRATE 127.0.0.1 %d %s 0 5000", nodes[sp->dst].port, ka);
  if (r->type == REDIS_REPLY_ERROR) fail_msg("MIGRATE %s: %s", ka, r->str);
  freeReplyObject(r);
  r = raw(nodes[sp->src].port, "MGET %s %s", ka, sp->kb);
  if (r->type != REDIS_REPLY_ERROR || strncmp(r->str, "TRYAGAIN", 8) != 0)
    fail_msg("MGET %s %s on the migrating node: no TRYAGAIN", ka, sp->kb);
  freeReplyObject(r);
  free(src_id);
  free(dst_id);
}

void split_finish(const split *sp) {
  redisReply *r = raw(nodes[sp->src].port, "MIGRATE 127.0.0.1 %d %s 0 5000", nodes[sp->dst].port, sp->kb);
  freeReplyObject(r);
  setslot_node(sp->slot, sp->dst_id);
}
