/* The request layer: a parsed head becomes a request for a location: checked, routed on the normalized
 * path, authenticated, bound by persistence, and rewritten for the server. */
#ifndef TETHER_BALANCER_REQUEST_REQUEST_H
#define TETHER_BALANCER_REQUEST_REQUEST_H

#include "../config.h"
#include "../conn-t.h"
#include "../http1.h"

/* The limits a request head is parsed under (an HTTP/2 stream's head counts as the HTTP/1.1 head it stands for). */
static inline tether__h1_limits tether__request_limits(const tether__config *cf) {
  return (tether__h1_limits){.max_head = cf->client_header_buffer, .max_uri = cf->large_uri, .max_headers = 100};
}

/* Takes the request whose head m (head_len bytes at the start of c->in; 0 when the protocol made it apart from
 * c->in, as HTTP/2 does) the protocol has just parsed.
 * Returns 1 when it goes to a server (c->ups, c->rq->pr and c->rq->replay are set; the body still follows in
 * c->in), 0 when the balancer has answered it itself. */
int tether__request_begin(tether__client *c, const tether__h1_msg *m, int head_len);

#endif
