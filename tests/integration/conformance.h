/* The store conformance suite: every store passes the same tests. */
#ifndef TETHER_TEST_CONFORMANCE_H
#define TETHER_TEST_CONFORMANCE_H

/* Runs the suite (as a cmocka group named name) against a store reached by url. Returns the number of
 * failed tests. Needs the store's servers to be running. */
int tt_conformance_run(const char *name, const char *url);

/* A ~50 MB value stored for a session: loading it gives a new session quickly (not parsed) and counts it
 * in tether_metrics.oversized. */
struct tether_store;
void tt_oversized_session(struct tether_store *st);

/* Expiry tests sleep ~3 s each; a store that keeps whole seconds needs them. */
#endif
