/* The client as trusted proxies report it. */
#include "realip.h"

#include <stdio.h>
#include <string.h>

#include "../conn.h"
#include "rewrite.h"

int tether__trusted_peer(const tether__config *cf, const struct sockaddr *sa) {
  for (size_t i = 0; i < cf->nreal_ip_from; i++)
    if (tether__cidr_match(&cf->real_ip_from[i], sa)) return 1;
  return 0;
}

/* The client address a trusted proxy reports: the rightmost X-Forwarded-For entry not itself trusted. */
static void forwarded_for(tether__client *c, const tether__config *cf, const tether__h1_msg *m) {
  tether__slice xff = tether__h1_header_get(m, "x-forwarded-for");
  if (xff.p == NULL) return;
  size_t end = xff.n;
  while (end > 0) {
    size_t start = end;
    while (start > 0 && xff.p[start - 1] != ',') start--;
    size_t a = start, b = end;
    while (a < b && (xff.p[a] == ' ' || xff.p[a] == '\t')) a++;
    while (b > a && (xff.p[b - 1] == ' ' || xff.p[b - 1] == '\t')) b--;
    char ip[64];
    if (b - a == 0 || b - a >= sizeof(ip)) return;
    memcpy(ip, xff.p + a, b - a);
    ip[b - a] = '\0';
    tether__cidr probe;
    if (tether__cidr_parse(ip, &probe) < 0) return;
    snprintf(c->rq->peer, sizeof(c->rq->peer), "%s", ip);
    c->rq->real = probe.net;
    if (!tether__trusted_peer(cf, (const struct sockaddr *)&probe.net)) return;
    end = start > 0 ? start - 1 : 0;
  }
}

void tether__real_client(tether__client *c, const tether__config *cf, const tether__h1_msg *m) {
  /* c->rq->peer is c->ip already; a PROXY header's address holds for the connection; X-Forwarded-For is read
   * per request */
  memcpy(&c->rq->real, cf->real_ip_proxy_protocol ? &c->src : &c->addr, sizeof(tether__sockaddr));
  c->scheme = tether__client_conn(c)->io.filter ? "https" : "http"; /* the filter is TLS */
  if (cf->nreal_ip_from == 0 || !tether__trusted_peer(cf, &c->addr.sa)) return;
  if (!cf->real_ip_proxy_protocol) forwarded_for(c, cf, m);
  const char *proto = tether__forwarded_proto(m); /* a proxy we trust says how the client came (TLS ended there) */
  if (proto) c->scheme = proto;
}
