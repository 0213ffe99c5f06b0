/* The balancer's connection types, shared by its layers (types only, as HAProxy's *-t.h headers, so that
 * nothing includes in a circle). A client connection (tether__client) carries one request at a time over
 * HTTP/1.1; a server connection (tether__upconn) carries one exchange at a time and idles in its pool.
 *
 * Data flows one way: transport (io/) -> protocol (proto/h1.c) -> request (request/) -> persistence and
 * balancing -> upstream (upstream/) -> back to the client through the transport. Where a lower layer must
 * tell a higher one something (a request is over, a connection must be cut), it calls through the
 * protocol's operations in `proto`, never the protocol's functions by name. */
#ifndef TETHER_BALANCER_CONN_T_H
#define TETHER_BALANCER_CONN_T_H

#include <stdint.h>
#include <sys/socket.h>

#include "../lib/util.h"
#include "http1.h"
#include "io/transport.h"
#include "persist/persist-t.h"
#include "runtime-t.h"

#define TETHER__MAX_PENDING (256 * 1024) /* queued bytes on one side before the other side stops reading */
#define TETHER__REPLAY_MAX (64 * 1024)   /* request bytes kept for a retry on another server */

typedef struct tether__worker tether__worker;
typedef struct tether__client tether__client;
typedef struct tether__upconn tether__upconn;

/* Client connection states. */
enum { TETHER__CS_HEAD = 0, TETHER__CS_BODY, TETHER__CS_WAIT, TETHER__CS_TUNNEL, TETHER__CS_LINGER };
/* Server connection states. */
enum { TETHER__US_CONNECTING = 0, TETHER__US_SENDING, TETHER__US_IDLE, TETHER__US_TUNNEL };

/* What the protocol layer does for the layers under it. */
typedef struct tether__proto_ops {
  void (*finished)(tether__client *c); /* the request is over: the next one, or the end of the connection */
  void (*abort)(tether__client *c);    /* the connection must go now (a write failed, an answer broke off) */
  void (*resume)(tether__client *c);
  void (*send_body)(tether__client *c); /* stream the request body the client has sent so far to c->up */
} tether__proto_ops;

struct tether__client {
  tether__io io; /* first */
  uv_timer_t timer;
  uv_shutdown_t shut; /* a lingering close */
  const tether__proto_ops *proto;
  int64_t linger_until_ms;
  int64_t body_deadline_ms; /* client_body_time: the body must be in by then (0: no bound) */
  tether__worker *w;
  tether__client *prev, *next; /* in the worker's list */
  int state;
  char *in; /* bytes read and not yet consumed */
  size_t in_len, in_cap;
  /* the request in progress */
  tether__runtime *rt; /* referenced while a request is in progress */
  int active;          /* a request is in progress */
  int ups, srv;        /* upstream and server indexes in rt */
  uint8_t tried[TETHER__CF_MAX_SERVERS];
  int tries;
  tether__upconn *up;
  tether__h1_body reqbody;
  int req_done;   /* the whole request was read */
  int keep_alive; /* the client connection may carry another request */
  int version_minor, is_head, idempotent, upgrade;
  tether__buf replay; /* bytes sent upstream, while they fit TETHER__REPLAY_MAX */
  int replay_ok;
  int resp_started; /* bytes of a final (or 101) response went to the client */
  int sent_interim; /* a 1xx went to the client: the request is bound to this server */
  int resp_done;
  int status;
  uint64_t bytes_sent;
  uint64_t start_us;
  char method[16];
  char target[200];
  char peer[64];                /* the client's address (or the trusted X-Forwarded-For one) */
  const char *scheme;           /* "http", or what a trusted proxy's X-Forwarded-Proto says */
  const char *server_name;      /* the server that last took the request (the access log's "server") */
  char ip[64];                  /* the client's address as text (the PROXY header's when trusted) */
  struct sockaddr_storage addr; /* the socket's peer */
  struct sockaddr_storage real; /* the client: addr, or what a trusted proxy said */
  tether__persist_req pr;       /* what persistence found in the request */
  int closing;
  int listener;          /* the address it came in on: an index in the configuration's listen */
  int served;            /* requests started on this connection */
  int starting, restart; /* in the request loop; a pipelined request is next */
};

struct tether__upconn {
  tether__io io; /* first */
  uv_connect_t connect_req;
  uv_timer_t timer;
  tether__worker *w;
  tether__server_state *srv;
  struct tether__pool *pool; /* set while idle in a pool */
  tether__upconn *pool_next, *pool_prev;
  tether__client *c; /* attached client, NULL when idle */
  int state;
  int head_done; /* the response head was forwarded */
  char *in;
  size_t in_len, in_cap;
  tether__h1_body body; /* response body framing */
  int resp_keep_alive;
  int reused;
  int got_bytes;
  int closing;
};

#endif
