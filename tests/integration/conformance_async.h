/* The store conformance suite on the event loop (tether/store_async.h): every asynchronous store passes it. */
#ifndef TETHER_TEST_CONFORMANCE_ASYNC_H
#define TETHER_TEST_CONFORMANCE_ASYNC_H

/* Runs the suite (as a cmocka group named name) against a store reached by url, each test on its own loop.
 * Returns the number of failed tests. */
int tt_conformance_async_run(const char *name, const char *url);

#endif
