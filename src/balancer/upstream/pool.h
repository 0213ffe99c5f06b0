/* Server connections: their one close path, and the per-worker pools that keep idle ones for reuse (the
 * policy, nginx's `keepalive N` or the default that follows demand, is described in pool.c). */
#ifndef TETHER_BALANCER_UPSTREAM_POOL_H
#define TETHER_BALANCER_UPSTREAM_POOL_H

#include "../conn-t.h"

typedef struct tether__pool tether__pool;

/* Server idx of ur's pool in this worker (made on first use). */
tether__pool *tether__pool_of(tether__worker *w, const tether__upstream_rt *ur, int idx);
/* A new connection to the pool's server: counted busy by it from now on. */
void tether__pool_adopt(tether__pool *p, tether__upconn *u);
/* Closes a server connection (detaching its client). */
void tether__up_close(tether__upconn *u);
/* Gives a connection whose response ended cleanly back to its pool, or closes it (reuse off, the pool full,
 * keepalive_requests or keepalive_time reached, bytes left over, stopping). */
void tether__up_release(tether__upconn *u, const tether__cf_upstream *cu);
/* An idle connection of the pool that is safe to reuse, now counted busy; NULL when none. Idle connections
 * with bytes to read (a response nobody asked for, which would answer the next request, maybe another
 * client's) or closed by the server are closed, never reused; so are those made with another TLS context than
 * tls_ctx (the upstream's now: NULL for plain; a reload or a change of scheme gives a new one). */
tether__upconn *tether__pool_take(tether__pool *p, const void *tls_ctx);

#endif
