/* Which server and location a request is for: nginx's normalized path against the configured prefixes. */
#ifndef TETHER_BALANCER_REQUEST_ROUTE_H
#define TETHER_BALANCER_REQUEST_ROUTE_H

#include "../../lib/util.h"
#include "../config.h"
#include "../http1.h"

/* Locations see the path as nginx's $uri: decoded, slashes merged, dot segments resolved, so that
 * "/%61pi/me", "//api/me" or "/x/../api/me" meet "location /api/" as the server will read them (the server
 * receives the original target). An exact match wins, else the longest prefix (case-sensitive, as nginx).
 * Returns the location (NULL: none) or sets *status for a path that cannot be routed (400). scratch holds
 * the normalized path (scratch->len bytes, 0 for "*"). */
const tether__cf_location *tether__route(const tether__config *cf, const tether__cf_vserver *vs,
                                         const tether__h1_msg *m, tether__buf *scratch, int *status);

/* The virtual server for a host name (a Host header or an SNI name; NULL: none was sent) among the servers on
 * listener (an index in cf->listen), as nginx orders names: the exact name, the longest wildcard starting
 * with "*." (or ".x"), the longest ending with ".*", else the address's default server. The name is
 * compared lower-cased, without a port or a trailing dot. Returns an index in cf->vservers. */
int tether__vserver_select(const tether__config *cf, int listener, const char *host, size_t n);
/* The same without the default: -1 when no server has a matching name. */
int tether__vserver_find(const tether__config *cf, int listener, const char *host, size_t n);
/* The listener's default server. */
int tether__vserver_default(const tether__config *cf, int listener);

#endif
