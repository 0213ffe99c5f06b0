/* The request layer: a parsed head becomes a request for a location: checked, routed on the normalized
 * path, authenticated, bound by persistence, and rewritten for the server. */
#ifndef TETHER_BALANCER_REQUEST_REQUEST_H
#define TETHER_BALANCER_REQUEST_REQUEST_H

#include "../conn-t.h"

/* Takes the request whose head m (head_len bytes at the start of c->in) the protocol has just parsed.
 * Returns 1 when it goes to a server (c->ups, c->rq->pr and c->rq->replay are set; the body still follows in
 * c->in), 0 when the balancer has answered it itself. */
int tether__request_begin(tether__client *c, const tether__h1_msg *m, int head_len);

#endif
