/* The balancer's workers: one thread and one libuv loop each, with its own SO_REUSEPORT listeners, its own
 * pools of idle upstream connections and its own counters. Connections never move between workers. */
#ifndef TETHER_BALANCER_WORKER_H
#define TETHER_BALANCER_WORKER_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "../lib/util.h"
#include "config.h"
#include "conn-t.h"
#include "http1.h"
#include "latency.h"
#include "runtime.h"
#include "tether/jwt.h"

#define TETHER__JWT_MISSING 18 /* jwt_results slots: 0 ok, 1..17 -tether_jwt_error - 1000, then these */
#define TETHER__JWT_OTHER 19
#define TETHER__JWT_BAD_CLAIM 20 /* verified, but a claim header cannot carry a claim's value */
#define TETHER__JWT_RESULTS 21

struct tether__worker {
  int id;
  uv_loop_t loop;
  uv_thread_t thread;
  uv_async_t wakeup;      /* reload or stop requested */
  uv_poll_t listeners[8]; /* readable: accept4 here (see accept_pause in worker.c) */
  int nlisteners;
  int listen_fds[8];                  /* opened by the main thread (SO_REUSEPORT), adopted here */
  tether__runtime *rt;                /* current configuration (a reference held) */
  _Atomic(tether__runtime *) next_rt; /* set by the main thread on reload */
  _Atomic int stop;                   /* 1: graceful stop requested */
  int stopping;                       /* this loop has started stopping */
  uv_timer_t stop_timer;              /* grace period */
  uv_timer_t flush_timer;             /* access log */
  tether__balance_state *bs;          /* per upstream of rt */
  struct tether__pools *pools;        /* server connections, idle and busy (upstream/pool.c) */
  tether__client *clients;            /* every open client connection */
  tether__req *free_reqs;             /* request states to reuse (proto/h1.c) */
  int nfree_reqs;
  /* counters read by the admin thread */
  _Atomic int64_t active_connections;
  _Atomic uint64_t accepted;
  _Atomic uint64_t requests;
  _Atomic uint64_t requests_h2;         /* of them, HTTP/2 streams */
  _Atomic uint64_t errors_by_status[6]; /* 400,408,413,414,431,other 4xx/5xx answered by us */
  _Atomic uint64_t latency_buckets[TETHER__LATENCY_NB + 1];
  _Atomic uint64_t latency_sum_us;
  tether__buf scratch_out;                           /* response heads are assembled here */
  tether__buf scratch_log;                           /* access log lines are assembled here */
  tether__buf scratch_path;                          /* the normalized path of the request being routed */
  tether__h1_msg msg;                                /* the head being parsed (one at a time per worker) */
  char rbuf[65536];                                  /* every client read lands here first */
  tether_jwt_claims *claims;                         /* the claims of the token verified last (edge authentication) */
  char jwt_token[16384];                             /* the token being verified */
  _Atomic uint64_t jwt_results[TETHER__JWT_RESULTS]; /* ok, each tether_jwt_error, missing, other */
  char *log_buf;                                     /* access log lines not yet written */
  size_t log_len, log_cap;
  uv_timer_t accept_timer;                                 /* accepting paused: out of descriptors */
  int accept_paused;                                       /* since the last successful accept (logged once) */
  void (*accept)(tether__worker *w, int fd, int listener); /* takes an accepted client socket (the protocol's) */
};

/* Starts n workers on the listening sockets (already bound, SO_REUSEPORT, one set per worker). */
int tether__workers_start(tether__worker *ws, int n, tether__runtime *rt);
/* Hands a new runtime to every worker (each takes its own reference). */
void tether__workers_reload(tether__worker *ws, int n, tether__runtime *rt);
/* Graceful stop: listeners close, idle connections close, in-flight requests get grace_ms. Joins. */
void tether__workers_stop(tether__worker *ws, int n);

/* proto/h1.c */
void tether__client_accept(tether__worker *w, int fd, int listener); /* fd: accepted on listen[listener] */
/* A reload: HTTP/2 connections get GOAWAY (their streams finish; clients reconnect to the new settings). */
void tether__worker_h2_goaway(tether__worker *w);
void tether__worker_close_idle(tether__worker *w); /* stopping: close what carries no request */
void tether__worker_close_all(tether__worker *w);  /* grace period over */
void tether__worker_drop_pools(tether__worker *w); /* stopping: idle server connections close */
void tether__worker_free_pools(tether__worker *w); /* stopped (the loop has ended) */
void tether__worker_free_reqs(tether__worker *w);  /* stopped: the request states kept for reuse */

/* log.c */
int tether__access_log_open(const char *path);
void tether__access_log_close(void);
void tether__access_log_flush(tether__worker *w);
void tether__access_log_line(tether__worker *w, const char *line, size_t n);
void tether__log_escape(tether__buf *b, const char *s, int json); /* client bytes in a log line */
void tether__log_request(tether__client *c, uint64_t us);         /* the line of a request ending now */

/* Opens a listening socket with SO_REUSEPORT (libuv 1.44 has no flag for it) and listen()'s backlog (the
 * kernel caps it at net.core.somaxconn). Returns fd or -errno. */
int tether__listen_socket(const tether__addr *a, int backlog);

#endif
