/* libtether internal: the bounded, fork-aware pool of blocking connections behind the sqlite and postgres
 * stores. Callers on any thread take a connection (an idle one, a new one while under the bound, or the
 * first one freed before their deadline) and give it back, kept or dropped. After fork() the child forgets
 * the parent's connections without touching them (they share the parent's sockets and locks) and opens
 * its own. After a failed connect, an optional backoff makes callers fail fast until the next attempt. */
#ifndef TETHER_STORE_POOL_H
#define TETHER_STORE_POOL_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

/* The link a store's connection struct holds as its first member. */
typedef struct tether__pool_conn {
  struct tether__pool_conn *next; /* idle list */
} tether__pool_conn;

typedef struct tether__pool_ops {
  int (*open)(void *owner, tether__pool_conn **out); /* a new connection, or an error code (message set) */
  void (*close)(tether__pool_conn *c);               /* must not block: it may run under the pool's lock */
  int (*alive)(tether__pool_conn *c);                /* an idle connection still usable? NULL: always */
} tether__pool_ops;

typedef struct tether__pool {
  pthread_mutex_t lock;    /* guards everything below */
  pthread_cond_t freed;    /* a connection went back to the idle list (or was closed) */
  tether__pool_conn *idle; /* connections ready for a caller */
  int nconns;              /* open connections, idle or in use */
  int max;                 /* bound on nconns */
  pid_t pid;               /* the process that opened the connections */
  const tether__pool_ops *ops;
  void *owner;        /* passed to ops->open */
  char *name;         /* "sqlite store '/path'", "postgres store host:port/db": starts the messages */
  int busy_ms;        /* the wait the "all connections busy" message names */
  int backoff_min_ms; /* 0: no backoff after a failed connect */
  int backoff_max_ms;
  int backoff_ms;       /* the current backoff, 0 after a successful connect */
  uint64_t retry_at_us; /* no connect attempt before this (monotonic) */
  char last_error[384]; /* why the last connect failed */
} tether__pool;

/* name is copied. backoff_min_ms 0: a failed connect is retried by the next caller at once. */
void tether__pool_init(tether__pool *p, const char *name, int max, int busy_ms, const tether__pool_ops *ops,
                       void *owner, int backoff_min_ms, int backoff_max_ms);
/* Closes the idle connections (none of them in a forked child: those are the parent's). The connections
 * in use must have been given back. */
void tether__pool_destroy(tether__pool *p);
/* Adds a connection opened outside the pool (at store open time) as idle. */
void tether__pool_add_idle(tether__pool *p, tether__pool_conn *c);
/* Takes a live idle connection, opens a new one while under the bound (unless backing off), or waits for
 * one until deadline_us (monotonic). *fresh (may be NULL) tells a new connection from a pooled one.
 * TETHER_ETIMEDOUT when every connection stayed busy, TETHER_EUNAVAIL while backing off, or open's error. */
int tether__pool_acquire(tether__pool *p, uint64_t deadline_us, tether__pool_conn **out, int *fresh);
/* Gives c back: idle again, or closed when drop. */
void tether__pool_release(tether__pool *p, tether__pool_conn *c, int drop);

#endif
