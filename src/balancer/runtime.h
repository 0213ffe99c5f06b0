/* The balancer's shared state: one runtime per configuration generation (immutable, reference counted,
 * swapped on reload), over server states that outlive reloads (health, failures, in-flight counts,
 * counters), so a reload neither forgets a dead server nor resets the metrics. */
#ifndef TETHER_BALANCER_RUNTIME_H
#define TETHER_BALANCER_RUNTIME_H

#include "runtime-t.h"
#include "server.h"

/* Builds a runtime for cf (taking ownership of it), reusing the server states of servers that keep
 * their upstream and name. Main thread only. refs starts at 1. */
tether__runtime *tether__runtime_new(tether__config *cf);
void tether__runtime_ref(tether__runtime *rt);
void tether__runtime_unref(tether__runtime *rt);
/* Frees every server state (at exit, once no runtime is left). */
void tether__runtime_shutdown(void);
/* Looks up a server state by upstream and server name (admin API); NULL when unknown. */
tether__server_state *tether__server_find(const char *upstream, const char *server);
tether__upstream_state *tether__upstream_find(const char *name);
/* Every server state in registration order (for metrics); returns the count. */
size_t tether__server_all(tether__server_state ***out);

#endif
