/* Who the client is and how it came, as proxies we trust (set_real_ip_from) report it. */
#ifndef TETHER_BALANCER_REQUEST_REALIP_H
#define TETHER_BALANCER_REQUEST_REALIP_H

#include "../conn-t.h"

/* Whether an address is a set_real_ip_from peer. */
int tether__trusted_peer(const tether__config *cf, const struct sockaddr *sa);
/* c->rq->peer and c->rq->real: the rightmost X-Forwarded-For entry not itself trusted, when the connection comes
 * from a trusted proxy (and the PROXY protocol is not what names the client); c->scheme: a trusted proxy's
 * X-Forwarded-Proto, else "http". */
void tether__real_client(tether__client *c, const tether__config *cf, const tether__h1_msg *m);

#endif
