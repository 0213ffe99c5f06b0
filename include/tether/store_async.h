/* Tether: session stores on an event loop (libuv), for servers that never block.
 *
 *   tether_astore *a;
 *   tether_astore_open(loop, "redis://127.0.0.1:6379", &a);
 *   tether_astore_get(a, sid, on_session, req);      // returns at once; on_session runs on the loop
 *   ...
 *   tether_astore_close(a);                          // pending callbacks still run (redis: TETHER_EUNAVAIL)
 *
 * redis:// URLs get a native client: one connection per handle, and every command issued in one turn of
 * the loop leaves in one write (pipelining, as node-redis does), so many sessions in flight cost Redis one
 * read and one write per turn instead of one per command. Same wire format, parameters, timeouts and
 * backoff as the blocking store (connect-redis's keys, SET ... EX, EXPIRE, DEL). redis-cluster:// URLs get
 * one such connection per node and the blocking store's rules (slot map, MOVED, ASK, TRYAGAIN, CLUSTERDOWN,
 * retry_ms, wait=N, read_from), without a thread waiting. Every other URL runs the blocking store's calls on
 * libuv's thread pool.
 *
 * Each call either returns 0 and calls its callback exactly once, later, on the loop's thread, or
 * returns a negative TETHER_E* code (with tether_last_error() set) and never calls it. In a callback,
 * tether_last_error() explains a negative rc. One handle belongs to one loop and its thread.
 * Metrics (counters, latency) are kept in the underlying store, tether_astore_store(). As in every libuv
 * program, ignore SIGPIPE (a write to a server that went away raises it). */
#ifndef TETHER_STORE_ASYNC_H
#define TETHER_STORE_ASYNC_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

struct uv_loop_s;
typedef struct tether_astore tether_astore;

/* rc: 0 with json (malloc'd, NUL-terminated, the callback owns it: free() it) and its length, or
 * TETHER_ENOTFOUND, or an error, with json NULL. */
typedef void (*tether_astore_get_cb)(void *arg, int rc, char *json, size_t len);
typedef void (*tether_astore_cb)(void *arg, int rc);

TETHER_EXTERN int tether_astore_open(struct uv_loop_s *loop, const char *url, tether_astore **out);
/* A handle over a store opened with tether_store_open (not closed with the handle): several loops (one per
 * thread) can each have their own handle, and connection, over one store and its metrics. */
TETHER_EXTERN int tether_astore_wrap(struct uv_loop_s *loop, tether_store *store, tether_astore **out);
/* redis://, redis-cluster://: fails what is still pending, before it returns; other stores: calls already on the thread
 * pool finish and call back. The handle is released once the loop has closed its handles and those calls
 * are done: keep running the loop. */
TETHER_EXTERN void tether_astore_close(tether_astore *a);

TETHER_EXTERN int tether_astore_get(tether_astore *a, const char *sid, tether_astore_get_cb cb, void *arg);
TETHER_EXTERN int tether_astore_set(tether_astore *a, const char *sid, const char *json, size_t len, int64_t expires_ms,
                                    tether_astore_cb cb, void *arg);
/* tether_store_write on the loop: SET ... NX (create) or XX (update) for redis://. rc TETHER_ENOTFOUND: an
 * update found the session gone (it was not written); TETHER_EEXIST: a create found it there. */
TETHER_EXTERN int tether_astore_write(tether_astore *a, const char *sid, const char *json, size_t len,
                                      int64_t expires_ms, tether_write_mode mode, tether_astore_cb cb, void *arg);
TETHER_EXTERN int tether_astore_touch(tether_astore *a, const char *sid, const char *json, size_t len,
                                      int64_t expires_ms, tether_astore_cb cb, void *arg);
TETHER_EXTERN int tether_astore_destroy(tether_astore *a, const char *sid, tether_astore_cb cb, void *arg);
/* A round trip to the store (health checks). */
TETHER_EXTERN int tether_astore_ping(tether_astore *a, tether_astore_cb cb, void *arg);

/* The store behind the handle: its kind, URL and metrics (tether_store_metrics). */
TETHER_EXTERN tether_store *tether_astore_store(tether_astore *a);
/* True when the handle talks to its servers itself (redis://, redis-cluster://), false when it uses the
 * thread pool. */
TETHER_EXTERN int tether_astore_native(const tether_astore *a);

#ifdef __cplusplus
}
#endif
#endif
