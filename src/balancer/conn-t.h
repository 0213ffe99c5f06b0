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

#include <netinet/in.h>
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
  /* a request head made apart from c->in (an HTTP/2 stream's, from its header block), or refused with status */
  void (*request)(tether__client *c, const struct tether__h1_msg *m, int status);
} tether__proto_ops;

/* What only a request in progress needs (and a closing connection while it lingers): taken from the worker's
 * free list when a request begins and given back when the connection goes idle, so that an idle keep-alive
 * connection holds none of it. */
typedef struct tether__req {
  struct tether__req *next_free; /* in the worker's free list */
  tether__buf replay;            /* bytes sent upstream, while they fit TETHER__REPLAY_MAX (its capacity stays) */
  uv_shutdown_t shut;            /* a lingering close */
  int64_t linger_until_ms;
  int64_t body_deadline_ms; /* client_body_time: the body must be in by then (0: no bound) */
  uint8_t tried[TETHER__CF_MAX_SERVERS];
  tether__h1_body reqbody;
  char method[16];
  char target[200];
  char peer[64];                /* the client's address (or the trusted X-Forwarded-For one) */
  struct sockaddr_storage real; /* the client: the connection's, or what a trusted proxy said */
  tether__persist_req pr;       /* what persistence found in the request */
  tether__monitor_req mon;      /* what the session monitor found in it */
} tether__req;

/* A client's IPv4 or IPv6 address in 28 bytes (a sockaddr_storage takes 128). */
typedef union tether__sockaddr {
  struct sockaddr sa;
  struct sockaddr_in in;
  struct sockaddr_in6 in6;
} tether__sockaddr;

/* An idle keep-alive connection is this struct and nothing else (no input buffer, no tether__req). */
struct tether__client {
  tether__io io; /* first */
  uv_timer_t timer;
  uint64_t due; /* the timer's deadline in the loop's time, 0: none (io/deadline.h; h2.c starts it itself) */
  const tether__proto_ops *proto;
  tether__worker *w;
  tether__client *prev, *next; /* in the worker's list */
  char *in;                    /* bytes read and not yet consumed */
  size_t in_len, in_cap;
  tether__req *rq; /* while a request is in progress (tether__client_req) */
  /* the request in progress */
  tether__runtime *rt; /* referenced while a request is in progress */
  tether__upconn *up;
  const char *scheme;      /* "http", or what a trusted proxy's X-Forwarded-Proto says */
  const char *server_name; /* the server that last took the request (the access log's "server") */
  uint64_t bytes_sent;
  uint64_t start_us;
  int state;
  int ups, srv; /* upstream and server indexes in rt */
  int tries;
  int status;
  int served;   /* requests started on this connection */
  int listener; /* the address it came in on: an index in the configuration's listen */
  uint8_t version_minor, is_head, idempotent, upgrade;
  uint8_t active;       /* a request is in progress */
  uint8_t req_done;     /* the whole request was read */
  uint8_t keep_alive;   /* the client connection may carry another request */
  uint8_t replay_ok;    /* rq->replay holds every byte sent upstream */
  uint8_t resp_started; /* bytes of a final (or 101) response went to the client */
  uint8_t sent_interim; /* a 1xx went to the client: the request is bound to this server */
  uint8_t resp_done;
  uint8_t closing;
  uint8_t starting, restart; /* in the request loop; a pipelined request is next */
  tether__sockaddr addr;     /* the socket's peer */
  tether__sockaddr src;      /* the client: addr, or what a trusted PROXY protocol header said */
  char ip[INET6_ADDRSTRLEN]; /* src as text */
  /* add_header's lines for this request's answer ("Name: value\r\n" each), prepared once per request */
  tether__buf added;
  uint32_t added_always; /* bit i: line i of added goes with every status (add_header ... always) */
  uint8_t added_ready;   /* added was prepared for this request */
  uint8_t proto_chosen;  /* HTTP/2 or not was decided (proto/h2.c's tether__h2_detect) */
  tether__client *conn;  /* an HTTP/2 stream's client: the connection it is a stream of (NULL: a connection) */
  struct tether__h2 *h2; /* an HTTP/2 connection's session (proto/h2.c) */
};

struct tether__upconn {
  tether__io io; /* first */
  uv_connect_t connect_req;
  uv_timer_t timer;
  uint64_t due;         /* the deadline of the exchange, or of the idle time in the pool (io/deadline.h) */
  uv_timer_cb on_timer; /* the timer's one callback (upstream/exchange.c's): the pool sets deadlines with it */
  tether__worker *w;
  tether__server_state *srv;
  struct tether__pool *pool;             /* its server's pool in this worker: idle in it, or counted busy by it */
  tether__upconn *pool_next, *pool_prev; /* in the pool's idle list, most recently used first */
  uint64_t idle_since;                   /* loop time it went idle (the least recently used goes first) */
  uint64_t born;                         /* loop time it was opened (keepalive_time) */
  int requests;                          /* exchanges it carried (keepalive_requests) */
  int idle;                              /* in the idle list */
  tether__client *c;                     /* attached client, NULL when idle */
  int state;
  int head_done; /* the response head was forwarded */
  char *in;
  size_t in_len, in_cap;
  tether__h1_body body; /* response body framing */
  int resp_keep_alive;
  int reused;
  int got_bytes;
  int write_failed; /* a request write failed after the answer began: not reused */
  int closing;
  void *tls_ctx; /* the client SSL_CTX it was made with (its upstream's, https), NULL: plain */
};

#endif
