/* Server connections: their one close path, and the per-worker pools of idle keep-alive ones. */
#ifndef TETHER_BALANCER_UPSTREAM_POOL_H
#define TETHER_BALANCER_UPSTREAM_POOL_H

#include "../conn-t.h"

/* Closes a server connection (detaching its client). */
void tether__up_close(tether__upconn *u);
/* Gives a connection whose response ended cleanly back to its server's pool, or closes it (keepalive off or
 * full, bytes left over, stopping). */
void tether__up_release(tether__upconn *u, const tether__cf_upstream *cu);
/* An idle connection to srv that is safe to reuse, taken out of its pool; NULL when none. Idle connections
 * with bytes to read (a response nobody asked for, which would answer the next request, maybe another
 * client's) or closed by the server are closed, never reused; so are those made with another TLS context than
 * tls_ctx (the upstream's now: NULL for plain; a reload or a change of scheme gives a new one). */
tether__upconn *tether__pool_take(tether__worker *w, tether__server_state *srv, const void *tls_ctx);

#endif
