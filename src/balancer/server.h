/* A server's health and weight as the balancer sees them: admin state, active checks, passive failures
 * (max_fails within fail_timeout), slow start. Thread-safe (atomics). */
#ifndef TETHER_BALANCER_SERVER_H
#define TETHER_BALANCER_SERVER_H

#include "runtime-t.h"

/* Whether a server may take new (unbound) requests now, and whether it may take requests bound to it by
 * persistence (draining servers may). */
int tether__server_usable(const tether__server_state *s, const tether__cf_server *cf, int64_t now_ms);
int tether__server_usable_bound(const tether__server_state *s, const tether__cf_server *cf, int64_t now_ms);
/* Effective weight now (slow start ramps it up after recovery). */
int tether__server_weight(const tether__server_state *s, const tether__cf_server *cf, int64_t now_ms);

/* Passive health: a failure (connect error, reset, timeout) and a success. */
void tether__server_failed(tether__server_state *s, const tether__cf_server *cf, int64_t now_ms);
void tether__server_succeeded(tether__server_state *s);

#endif
