/* One exchange with a server: pick it (persistence, then balancing), connect or reuse a pooled
 * connection, send the request, read the response and stream it back, retry where that is safe. */
#ifndef TETHER_BALANCER_UPSTREAM_EXCHANGE_H
#define TETHER_BALANCER_UPSTREAM_EXCHANGE_H

#include "../conn-t.h"

/* Sends the request (c->replay holds its head, the protocol streams the body) to a server of c->ups. */
void tether__dispatch(tether__client *c);
/* The server could not take or answer the request: another server when the request can be replayed,
 * else `status` (or the connection is cut once the answer has begun). count_failure: it counts against the
 * server's passive health. */
void tether__exchange_failed(tether__client *c, int status, int count_failure);

/* Request bytes were just queued to the server: while they wait, proxy_send_timeout runs. */
void tether__exchange_sending(tether__upconn *u);

#endif
