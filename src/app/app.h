/* tether-app: the interfaces between its parts. main.c reads the options and starts the workers;
 * server.c runs each worker (a libuv loop driving a libmicrohttpd daemon) and routes each request;
 * sessions.c answers the routes that load and commit a session; job.c carries a request waiting while
 * the store works; tokens.c answers the token flow (no store); form.c reads request bodies; respond.c
 * sends the answers. Dependencies go main -> server -> sessions/tokens -> job -> respond, never back. */
#ifndef TETHER_APP_H
#define TETHER_APP_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tether/jwt.h"
#include "tether/session.h"
#include "tether/store.h"
#include "tether/store_async.h"

#define MAX_BODY 65536

enum { R_INDEX = 0, R_WHOAMI, R_LOGIN, R_LOGOUT, R_CART, R_HEALTH, R_METRICS, R_API_ME, R_OTHER, R_COUNT };

typedef struct app {
  const char *name;
  char *name_json; /* name as a JSON string ("..."), NULL when it is not UTF-8 */
  tether_store *store;
  tether_sessions *sessions;
  tether_jwt_signer *signer;             /* NULL: no JWT secret, token mode answers 501 */
  tether_jwt_verifier *verifier;         /* HS256 with the same secret, built once; NULL with signer */
  tether_trusted_proxies trusted;        /* --trust-proxy: peers whose X-Forwarded-Proto is believed */
  const char *dashboard_url;             /* --dashboard-url: the page links to it; NULL: no link */
  _Atomic uint64_t requests[R_COUNT][6]; /* route x status class */
} app;

extern app the_app;          /* app.c */
extern _Atomic int stopping; /* answers say Connection: close */

/* One worker thread: its loop, its daemon on the shared listening socket, its store handle. */
typedef struct worker {
  pthread_t thread;
  uv_loop_t loop;
  uv_poll_t poll;     /* the daemon's epoll set */
  uv_timer_t timer;   /* the daemon's next timeout */
  uv_async_t stop;    /* the main thread asks it to finish */
  uv_timer_t drain;   /* while stopping: waits for the requests in flight */
  uv_idle_t kick;     /* a store answer is in: run the daemon before the loop sleeps again */
  uv_idle_cb on_kick; /* what kick runs (server.c), so that job.c needs nothing of it */
  int64_t drain_until_ms;
  struct MHD_Daemon *d;
  tether_astore *astore;
  int in_flight;           /* this worker's requests between their head and their completion */
  struct request *waiting; /* requests waiting for the store */
  int n_waiting;           /* how many */
  int progress;            /* the daemon's last run called this app (see arm_daemon_timer) */
} worker;

typedef struct request {
  char *body;
  size_t len;
  int too_large;
  /* a request waiting for the store: what it will answer */
  worker *w;
  struct MHD_Connection *conn;
  const char *ctype;
  int route, form, started, ready, waiting, in_handler;
  int verbose; /* /health?verbose from a loopback client: the store's details too */
  int secure;  /* the request is secure (a trusted proxy said https) */
  tether_session *s;
  int status, err;
  json_t *answer;
  char *html, *set_cookie;
  char *json; /* a JSON answer already printed (with its newline), else answer is sent */
  const char *location;
  char detail[512];              /* the store's message when err < 0 */
  int pending;                   /* a store call will call back with this request */
  int orphan;                    /* its connection is gone: the pending callback frees it */
  int abandoned;                 /* answered without the store (stopping): the pending callback drops its result */
  struct request *sprev, *snext; /* in the worker's waiting list */
} request;

/* ---- answers (respond.c) ---- */

/* One extra response header (name, value), or none. */
typedef struct header {
  const char *name, *value;
} header;

enum MHD_Result send_text_h(struct MHD_Connection *conn, int route, int status, const char *type, const char *body,
                            const char *set_cookie, const char *location, header extra);
enum MHD_Result send_text(struct MHD_Connection *conn, int route, int status, const char *type, const char *body,
                          const char *set_cookie, const char *location);
/* Sends a JSON answer already printed (text: malloc'd, taken). */
enum MHD_Result send_json_text(struct MHD_Connection *conn, int route, int status, char *text, const char *set_cookie);
/* Sends j (stolen; NULL, as json_pack gives for text that is not UTF-8, answers 500). */
enum MHD_Result send_json_h(struct MHD_Connection *conn, int route, int status, json_t *j, const char *set_cookie,
                            header extra);
enum MHD_Result send_json(struct MHD_Connection *conn, int route, int status, json_t *j, const char *set_cookie);
/* What went wrong, for the operator's log (at most one line a second). */
void log_detail(const char *what, const char *detail);
enum MHD_Result store_error(struct MHD_Connection *conn, int route, int code, const char *detail);
/* Cuts s at its first byte that does not continue valid UTF-8. */
void utf8_clip(char *s);

/* ---- request bodies (form.c) ---- */

/* "application/x-www-form-urlencoded" value of key, decoded; or a JSON body's string member (malloc'd). */
char *body_field(const request *rq, const char *ctype, const char *key);
/* 1 to max bytes, no control characters. */
int valid_text(const char *s, size_t max);
/* valid_text, and UTF-8 (what a JSON string can hold). */
int valid_utf8_text(const char *s, size_t max);

/* ---- requests waiting for the store (job.c) ---- */

void job_fail(request *rq, int rc);
/* First thing in every store callback: whether the request still wants the result. */
int job_enter(request *rq);
/* The answer is ready: hand the connection back to the daemon (or answer at once, still in the handler). */
void job_done(request *rq);
enum MHD_Result job_answer(request *rq);
/* Commits rq->s, then job_done. */
void job_commit(request *rq);
void request_free(request *rq);
void unlink_waiting(request *rq);

/* ---- the session routes (sessions.c) ---- */

/* Starts the store work of a request (/health: a ping; the others: load, apply the route, commit);
 * answers at once when it completed without waiting, else leaves the request unanswered until the store
 * calls back. */
enum MHD_Result start_job(request *rq, struct MHD_Connection *conn, int route, int form, const char *cookie);

/* ---- tokens (tokens.c) ---- */

int tokens_setup(const char *secret, int weak_secret_ok);
int wants_token(struct MHD_Connection *conn, const request *rq, const char *ctype);
enum MHD_Result token_login(struct MHD_Connection *conn, const request *rq, const char *ctype);
enum MHD_Result api_me(struct MHD_Connection *conn);

/* ---- the command line (options.c) ---- */

typedef struct options {
  const char *listen_at; /* IP:PORT */
  const char *url;       /* the session store */
  tether_session_options so;
  int threads;
  int weak_secret_ok;
} options;

/* Reads the command line into o (and the_app's name, trusted proxies and tokens). -1 to go on, or the
 * status to exit with (0 after --help; 2 with a message on stderr). */
int options_parse(int argc, char **argv, options *o);

/* ---- the workers (server.c) ---- */

/* Starts a worker thread serving the listening socket. 0 or -1. */
int worker_start(worker *w, int listener);

#endif
