/* Tether: session stores. One interface, one implementation per file, chosen by URL:
 *   memory:                         in-process hash table with TTL and LRU bound
 *   sqlite:PATH                     the embedded default (WAL, several processes may share the file)
 *   redis://[user:pass@]host:port[/db]
 *   redis-sentinel://host:port[,host:port]/mastername[/db]
 *   memcached://h1:p1,h2:p2,h3:p3?replicas=N
 *   postgres://... (or postgresql://...)
 *   dual:LOCAL+SHARED               migration: write both, read LOCAL then SHARED
 *   jwt:                            client-side: the session travels in a signed cookie, no store
 * Each store takes its own query parameters (timeouts, pool size, key prefix...), listed in
 * docs/sessions.md; an unknown parameter is an error. Every call is thread-safe. */
#ifndef TETHER_STORE_H
#define TETHER_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tether_store tether_store;

/* Opens a store. On failure returns TETHER_EINVAL with a message naming what is wrong in the URL, or
 * the error of the first connection attempt. Stores that reach a server connect lazily where they can:
 * an unreachable server at open time is not fatal (the first operation reports it). */
TETHER_EXTERN int tether_store_open(const char *url, tether_store **out);

TETHER_EXTERN void tether_store_close(tether_store *store);

/* Reads the JSON of session sid into *json (malloc'd, NUL-terminated; free() it) and its length.
 * TETHER_ENOTFOUND when the store has no such (unexpired) session. */
TETHER_EXTERN int tether_store_get(tether_store *store, const char *sid, char **json, size_t *len);

/* Writes a session. expires_ms is the absolute expiry (epoch ms) or 0 for none, in which case the store
 * keeps it for a day (connect-redis's rule). An expiry in the past deletes the session. An upsert: the
 * same as tether_store_write(..., TETHER_WRITE_UPSERT). */
TETHER_EXTERN int tether_store_set(tether_store *store, const char *sid, const char *json, size_t len,
                                   int64_t expires_ms);

/* How a write treats the session already in the store (or its absence). */
typedef enum tether_write_mode {
  TETHER_WRITE_UPSERT = 0, /* create or replace (tether_store_set) */
  TETHER_WRITE_CREATE,     /* create only: TETHER_EEXIST when the session is there (Redis SET NX, SQL INSERT,
                            * memcached add) */
  TETHER_WRITE_UPDATE      /* replace only: TETHER_ENOTFOUND when the session is gone (destroyed, expired),
                            * which is never created again (Redis SET XX, SQL UPDATE, memcached CAS) */
} tether_write_mode;

/* tether_store_set with a mode. Saving a session that was loaded from the store must use
 * TETHER_WRITE_UPDATE, so that a request in flight while the session is destroyed (logout) cannot write
 * it back; tether_session_commit does. */
TETHER_EXTERN int tether_store_write(tether_store *store, const char *sid, const char *json, size_t len,
                                     int64_t expires_ms, tether_write_mode mode);

/* Refreshes a session's expiry without rewriting its data where the store can (Redis EXPIRE). json is
 * the session's current value, for stores that must rewrite it. A session that is not in the store is
 * left absent (never created); that is not an error. */
TETHER_EXTERN int tether_store_touch(tether_store *store, const char *sid, const char *json, size_t len,
                                     int64_t expires_ms);

TETHER_EXTERN int tether_store_destroy(tether_store *store, const char *sid);

/* Deletes expired sessions now (stores that expire by themselves return 0). Returns the count. */
TETHER_EXTERN int tether_store_purge(tether_store *store);

/* Checks that the store works (a round trip). 0 or an error with tether_last_error() set. */
TETHER_EXTERN int tether_store_ping(tether_store *store);

/* A copy of a store URL (malloc'd; free() it) with every password replaced by "***", for messages. */
TETHER_EXTERN char *tether_url_redact(const char *url);

/* The store's kind ("redis", "sqlite", ...) and its URL without any password. */
TETHER_EXTERN const char *tether_store_kind(const tether_store *store);
TETHER_EXTERN const char *tether_store_url(const tether_store *store);

/* True for stores that keep the session in the cookie itself (jwt:). */
TETHER_EXTERN int tether_store_client_side(const tether_store *store);

#ifdef __cplusplus
}
#endif
#endif
