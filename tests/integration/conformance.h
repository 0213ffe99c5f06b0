/* The store conformance suite: every store passes the same tests. */
#ifndef TETHER_TEST_CONFORMANCE_H
#define TETHER_TEST_CONFORMANCE_H

/* Runs the suite (as a cmocka group named name) against a store reached by url. Returns the number of
 * failed tests. Needs the store's servers to be running. */
int tt_conformance_run(const char *name, const char *url);

/* Expiry tests sleep ~3 s each; a store that keeps whole seconds needs them. */
#endif
