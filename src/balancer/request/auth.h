/* Edge authentication (auth_jwt): the seed's authenticate() middleware at the balancer. */
#ifndef TETHER_BALANCER_REQUEST_AUTH_H
#define TETHER_BALANCER_REQUEST_AUTH_H

#include "../conn-t.h"

/* 0 when the request may go on (its claims verified into the worker's), or -1 when it has been answered
 * (401/403). head_len: the head's length in c->in (a refused request's body is skipped). */
int tether__authenticate(tether__client *c, const tether__h1_msg *m, const tether__cf_jwt *j, int head_len);

#endif
