/* After a 101 (WebSocket), bytes flow both ways untouched until either side closes. */
#ifndef TETHER_BALANCER_UPSTREAM_TUNNEL_H
#define TETHER_BALANCER_UPSTREAM_TUNNEL_H

#include "../conn-t.h"

void tether__tunnel_start(tether__client *c, tether__upconn *u);
/* Bytes from the client, and from the server. */
void tether__tunnel_from_client(tether__client *c, const char *data, size_t n);
void tether__tunnel_from_server(tether__upconn *u, const char *data, size_t n);
/* The server closed (or failed). */
void tether__tunnel_server_closed(tether__upconn *u);

#endif
