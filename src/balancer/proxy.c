/* The balancer's connections: a client connection reads requests, a request is routed to an upstream
 * server (a pooled keep-alive connection or a new one), its bytes are streamed both ways with
 * backpressure, and the connection goes back to the pool. One close path per connection. */
#include <arpa/inet.h>
#include <errno.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/util.h"
#include "persist/persist.h"
#include "proxyproto.h"
#include "rewrite.h"
#include "uri.h"
#include "tether/jwt.h"
#include "tether/session.h"
#include "worker.h"

#define READ_CHUNK 16384
#define MAX_PENDING (256 * 1024) /* queued bytes on one side before the other side stops reading */
#define REPLAY_MAX (64 * 1024)   /* request bytes kept for a retry on another server */

enum { CS_HEAD = 0, CS_BODY, CS_WAIT, CS_TUNNEL, CS_LINGER };

#define LINGER_TIMEOUT_MS 5000 /* nginx's lingering_timeout: silence that ends a lingering close */
#define LINGER_TIME_MS 30000   /* nginx's lingering_time: the longest one */
enum { US_CONNECTING = 0, US_SENDING, US_IDLE, US_TUNNEL };

struct tether__client {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_shutdown_t shut; /* a lingering close */
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
  tether__buf replay; /* bytes sent upstream, while they fit REPLAY_MAX */
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
  size_t pending;               /* bytes queued to the client socket */
  int paused;                   /* reading stopped for backpressure */
  int closing;
  int served;            /* requests started on this connection */
  int starting, restart; /* in start_request; a pipelined request is next (see start_request) */
};

struct tether__upconn {
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  uv_timer_t timer;
  tether__worker *w;
  tether__server_state *srv;
  tether__pool *pool; /* set while idle in a pool */
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
  size_t pending;
  int paused;
  int closing;
};

typedef struct wreq {
  uv_write_t req;
  void *owner; /* tether__client or tether__upconn */
  int to_client;
  size_t len;
  char data[];
} wreq;

static tether__h1_msg scratch_msg[TETHER__MAX_WORKERS]; /* one parse at a time per worker */

static void client_close(tether__client *c);
static void client_end(tether__client *c);
static void up_close(tether__upconn *u, int failed);
static void client_next(tether__client *c);
static void dispatch(tether__client *c);
static void up_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void client_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void forward_request_body(tether__client *c);
static void finish_request(tether__client *c);

/* ---- buffers and writes ---- */

static void grow(char **buf, size_t *cap, size_t need) {
  if (*cap >= need) return;
  size_t n = *cap ? *cap : 4096;
  while (n < need) n *= 2;
  *buf = tether__realloc(*buf, n);
  *cap = n;
}

static void consume(char *buf, size_t *len, size_t n) {
  if (n >= *len) {
    *len = 0;
    return;
  }
  memmove(buf, buf + n, *len - n);
  *len -= n;
}

static void on_written(uv_write_t *req, int status);

/* Writes len bytes: directly when nothing is queued (uv_try_write), the rest copied into a request. */
static int send_bytes(uv_stream_t *s, void *owner, int to_client, size_t *pending, const char *data, size_t len) {
  if (len == 0) return 0;
  if (*pending == 0) {
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int n = uv_try_write(s, &b, 1);
    if (n > 0) {
      data += n;
      len -= (size_t)n;
    } else if (n != UV_EAGAIN && n != UV_ENOSYS) {
      return n;
    }
    if (len == 0) return 0;
  }
  wreq *w = tether__malloc(sizeof(*w) + len);
  w->owner = owner;
  w->to_client = to_client;
  w->len = len;
  memcpy(w->data, data, len);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
  int rc = uv_write(&w->req, s, &b, 1, on_written);
  if (rc < 0) {
    free(w);
    return rc;
  }
  *pending += len;
  return 0;
}

static void client_resume(tether__client *c);
static void up_resume(tether__upconn *u);

static void on_written(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  if (w->to_client) {
    tether__client *c = w->owner;
    c->pending -= w->len;
    if (status < 0) {
      free(w);
      if (!c->closing) client_close(c);
      return;
    }
    free(w);
    if (c->closing) return;
    if (c->up && c->up->paused && c->pending < MAX_PENDING / 2) up_resume(c->up);
    if (c->pending == 0 && c->resp_done && !c->keep_alive) client_end(c);
  } else {
    tether__upconn *u = w->owner;
    u->pending -= w->len;
    free(w);
    if (u->closing) return;
    if (status < 0) {
      up_close(u, 1);
      return;
    }
    if (u->c && u->c->paused && u->pending < MAX_PENDING / 2) client_resume(u->c);
  }
}

static int to_client(tether__client *c, const char *data, size_t len) {
  c->bytes_sent += len;
  return send_bytes((uv_stream_t *)&c->tcp, c, 1, &c->pending, data, len);
}

static int to_upstream(tether__upconn *u, const char *data, size_t len) {
  return send_bytes((uv_stream_t *)&u->tcp, u, 0, &u->pending, data, len);
}

/* Clients read into the worker's one read buffer; bytes are then kept per connection only while they
 * wait to be used, so an idle keep-alive connection holds no buffer at all. */
static void alloc_client(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  tether__client *c = h->data;
  *buf = uv_buf_init(c->w->rbuf, sizeof(c->w->rbuf));
}

static void alloc_up(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  tether__upconn *u = h->data;
  *buf = uv_buf_init(u->w->rbuf, sizeof(u->w->rbuf));
}

static void on_client_shutdown(uv_shutdown_t *req, int status) {
  (void)req;
  (void)status; /* the lingering reads decide when to close */
}

static void client_timeout(uv_timer_t *t);

/* Closing after an answer while the client may still be sending (a body we did not read, a refused
 * request): as nginx's lingering close, our side is shut down once the answer is written, and what the
 * client still sends is read and dropped until it closes, stays silent LINGER_TIMEOUT_MS, or
 * LINGER_TIME_MS pass, so that unread bytes do not turn the close into a reset that destroys the answer. */
static void client_end(tether__client *c) {
  if (c->closing || c->state == CS_LINGER) return;
  if (c->req_done || c->state == CS_TUNNEL) {
    client_close(c);
    return;
  }
  c->state = CS_LINGER;
  c->in_len = 0;
  if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_client_shutdown) < 0) {
    client_close(c);
    return;
  }
  c->linger_until_ms = tether_now_ms() + LINGER_TIME_MS;
  client_resume(c);
  uv_timer_start(&c->timer, client_timeout, LINGER_TIMEOUT_MS, 0);
}

static void client_pause(tether__client *c) {
  if (!c->paused && !c->closing) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->paused = 1;
  }
}

static void arm_body_timer(tether__client *c);

static void client_resume(tether__client *c) {
  if (c->paused && !c->closing) {
    c->paused = 0;
    uv_read_start((uv_stream_t *)&c->tcp, alloc_client, client_on_read);
    if (c->state == CS_BODY && c->active) arm_body_timer(c);
  }
}

static void up_pause(tether__upconn *u) {
  if (!u->paused && !u->closing) {
    uv_read_stop((uv_stream_t *)&u->tcp);
    u->paused = 1;
  }
}

static void up_resume(tether__upconn *u) {
  if (u->paused && !u->closing) {
    u->paused = 0;
    uv_read_start((uv_stream_t *)&u->tcp, alloc_up, up_on_read);
  }
}

/* ---- answers of our own ---- */

static const char *reason(int status) {
  switch (status) {
  case 200:
    return "OK";
  case 400:
    return "Bad Request";
  case 404:
    return "Not Found";
  case 408:
    return "Request Timeout";
  case 413:
    return "Content Too Large";
  case 414:
    return "URI Too Long";
  case 431:
    return "Request Header Fields Too Large";
  case 501:
    return "Not Implemented";
  case 502:
    return "Bad Gateway";
  case 503:
    return "Service Unavailable";
  case 504:
    return "Gateway Timeout";
  default:
    return "Error";
  }
}

static void count_status(tether__worker *w, int status) {
  int k = status == 400 ? 0 : status == 408 ? 1 : status == 413 ? 2 : status == 414 ? 3 : status == 431 ? 4 : 5;
  atomic_fetch_add_explicit(&w->errors_by_status[k], 1, memory_order_relaxed);
}

/* Answers with a short text and, for errors, closes the connection once it is written. */
static void respond(tether__client *c, int status, const char *body, int keep) {
  char head[512];
  if (body == NULL) body = reason(status);
  size_t blen = strlen(body);
  c->keep_alive = keep && c->keep_alive;
  int n = snprintf(head, sizeof(head),
                   "HTTP/1.1 %d %s\r\nServer: tether\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n",
                   status, reason(status), blen + 1, c->keep_alive ? "" : "Connection: close\r\n");
  c->status = status;
  c->resp_started = 1;
  if (status >= 400) count_status(c->w, status);
  if (to_client(c, head, (size_t)n) < 0 ||
      (!c->is_head && (to_client(c, body, blen) < 0 || to_client(c, "\n", 1) < 0))) {
    client_close(c);
    return;
  }
  c->resp_done = 1;
  finish_request(c);
}

/* Answers with a body and extra header lines of our own (edge authentication). */
static void respond_with(tether__client *c, int status, const char *type, const char *extra, const char *body) {
  tether__buf b = {0};
  size_t blen = strlen(body);
  tether__buf_appendf(&b, "HTTP/1.1 %d %s\r\nServer: tether\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
                      status,
                      status == 401   ? "Unauthorized"
                      : status == 403 ? "Forbidden"
                                      : reason(status),
                      type, blen, extra, c->keep_alive ? "" : "Connection: close\r\n");
  if (!c->is_head) tether__buf_append(&b, body, blen);
  c->status = status;
  c->resp_started = 1;
  count_status(c->w, status);
  int rc = to_client(c, b.data, b.len);
  tether__buf_free(&b);
  if (rc < 0) {
    client_close(c);
    return;
  }
  c->resp_done = 1;
  finish_request(c);
}

/* Reads and drops a body we answer without proxying, so the connection stays in sync (or closes). */
static void skip_body(tether__client *c, const tether__h1_msg *m, int n) {
  tether__h1_body_init(&c->reqbody, m);
  consume(c->in, &c->in_len, (size_t)n);
  int64_t k = tether__h1_body_feed(&c->reqbody, c->in, c->in_len);
  if (k < 0 || !c->reqbody.done) {
    c->keep_alive = 0;
    c->in_len = 0;
  } else {
    consume(c->in, &c->in_len, (size_t)k);
  }
  c->req_done = 1;
}

/* The token of a request: "Authorization: Bearer ..." or, with auth_jwt_cookie, that cookie. */
static int bearer_token(const tether__h1_msg *m, const tether__cf_jwt *j, char *out, size_t cap) {
  tether__slice a = tether__h1_header_get(m, "authorization");
  if (a.p && a.n > 7 && strncasecmp(a.p, "Bearer ", 7) == 0) {
    size_t i = 7;
    while (i < a.n && a.p[i] == ' ') i++;
    if (a.n - i == 0 || a.n - i >= cap) return a.n - i >= cap ? -2 : -1;
    memcpy(out, a.p + i, a.n - i);
    out[a.n - i] = '\0';
    return (int)(a.n - i);
  }
  if (j->cookie[0]) {
    for (size_t h = 0; h < m->nheaders; h++) {
      if (!tether__h1_token_eq(m->headers[h].name, "cookie")) continue;
      char hdr[8192];
      size_t hl = m->headers[h].value.n < sizeof(hdr) - 1 ? m->headers[h].value.n : sizeof(hdr) - 1;
      memcpy(hdr, m->headers[h].value.p, hl);
      hdr[hl] = '\0';
      int n = tether_cookie_get(hdr, j->cookie, out, cap);
      if (n > 0) return n;
      if (n == TETHER_E2BIG) return -2;
    }
  }
  return -1;
}

/* Edge authentication: 0 when the request may go on (claims verified into the worker's scratch), or the
 * request has been answered (401/403). */
static int authenticate(tether__client *c, const tether__h1_msg *m, const tether__cf_jwt *j, int n) {
  tether__worker *w = c->w;
  char *token = w->jwt_token;
  int tl = bearer_token(m, j, token, sizeof(w->jwt_token));
  int rc = tl == -1   ? 1
           : tl == -2 ? TETHER_JWT_ETOOLARGE
                      : tether_jwt_verify(j->verifier, token, (size_t)tl, w->claims);
  if (rc == 0 && !tether__claim_headers_ok(j, w->claims)) rc = 2; /* a claim no header can carry */
  int slot = rc == 0                        ? 0
             : rc == 1                      ? TETHER__JWT_MISSING
             : rc == 2                      ? TETHER__JWT_BAD_CLAIM
             : (rc <= -1001 && rc >= -1017) ? -rc - 1000
                                            : TETHER__JWT_OTHER;
  atomic_fetch_add_explicit(&w->jwt_results[slot], 1, memory_order_relaxed);
  if (rc == 0) return 0;
  skip_body(c, m, n);
  char extra[512];
  if (rc == 1) { /* RFC 6750: no error code when the request carried no token */
    snprintf(extra, sizeof(extra), "WWW-Authenticate: Bearer realm=\"%s\"\r\n", j->realm);
    respond_with(c, 401, "application/json", extra, "{\"error\":\"Invalid token\"}");
  } else if (rc == TETHER_JWT_EAUDIENCE) {
    snprintf(extra, sizeof(extra),
             "WWW-Authenticate: Bearer realm=\"%s\", error=\"insufficient_scope\", "
             "error_description=\"%s\"\r\n",
             j->realm, tether_jwt_message(rc));
    respond_with(c, 403, "application/json", extra, "{\"error\":\"Forbidden\"}");
  } else {
    snprintf(extra, sizeof(extra),
             "WWW-Authenticate: Bearer realm=\"%s\", error=\"invalid_token\", "
             "error_description=\"%s\"\r\n",
             j->realm, rc == 2 ? "a claim cannot be carried in a header" : tether_jwt_message(rc));
    respond_with(c, 401, "application/json", extra, "{\"error\":\"Invalid token\"}");
  }
  return -1;
}

/* ---- timers ---- */

static void client_timeout(uv_timer_t *t) {
  tether__client *c = t->data;
  if (c->state == CS_LINGER) {
    client_close(c);
    return;
  }
  if (c->state == CS_HEAD && c->in_len == 0 && !c->active) { /* idle keep-alive connection */
    client_close(c);
    return;
  }
  if (c->state == CS_HEAD && !c->active) { /* a head not complete in time (slowloris): 408, then close */
    c->keep_alive = 0;
    c->is_head = 0;           /* of the previous request */
    respond(c, 408, NULL, 0); /* no request is in progress: finish_request will not close it */
    if (!c->closing && c->pending == 0) client_close(c);
    return;
  }
  if (!c->resp_started) {
    c->keep_alive = 0;
    if (c->up) up_close(c->up, 0);
    respond(c, c->state == CS_HEAD || c->state == CS_BODY ? 408 : 504, NULL, 0);
  } else {
    client_close(c);
  }
}

static void arm_client(tether__client *c, int64_t ms) {
  if (!c->closing) uv_timer_start(&c->timer, client_timeout, (uint64_t)(ms > 0 ? ms : 1), 0);
}

/* A body must keep coming (client_body_timeout between reads, as nginx) and must arrive whole within
 * client_body_time: trickling a byte now and then cannot hold a connection and a server forever. */
static void arm_body_timer(tether__client *c) {
  int64_t ms = c->rt->cf->client_body_timeout_ms;
  if (c->body_deadline_ms) {
    int64_t left = c->body_deadline_ms - tether_now_ms();
    if (left < ms) ms = left;
  }
  arm_client(c, ms);
}

/* ---- client connections ---- */

static void client_free(uv_handle_t *h) {
  tether__client *c = h->data;
  if (uv_is_closing((uv_handle_t *)&c->timer) && c->timer.data == NULL) {
    free(c->in);
    tether__buf_free(&c->replay);
    free(c);
  } else {
    c->tcp.data = NULL; /* the timer's callback frees */
  }
}

static void client_timer_closed(uv_handle_t *h) {
  tether__client *c = h->data;
  c->timer.data = NULL;
  if (c->tcp.data == NULL) {
    free(c->in);
    tether__buf_free(&c->replay);
    free(c);
  }
}

static void client_close(tether__client *c) {
  if (c->closing) return;
  c->closing = 1;
  tether__worker *w = c->w;
  if (c->up) {
    tether__upconn *u = c->up;
    c->up = NULL;
    u->c = NULL;
    up_close(u, 0);
  }
  if (c->active) finish_request(c);
  if (c->prev)
    c->prev->next = c->next;
  else
    w->clients = c->next;
  if (c->next) c->next->prev = c->prev;
  atomic_fetch_sub_explicit(&w->active_connections, 1, memory_order_relaxed);
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, client_timer_closed);
  uv_close((uv_handle_t *)&c->tcp, client_free);
  tether__worker_fd_freed(w);
}

static void peer_text(const struct sockaddr_storage *ss, char *out, size_t cap) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (ss->ss_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, ip, sizeof(ip));
  else if (ss->ss_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, ip, sizeof(ip));
  snprintf(out, cap, "%s", ip);
}

void tether__client_accept(tether__worker *w, int fd) {
  tether__client *c = tether__calloc(1, sizeof(*c));
  c->w = w;
  uv_tcp_init(&w->loop, &c->tcp);
  uv_timer_init(&w->loop, &c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  c->next = w->clients;
  if (w->clients) w->clients->prev = c;
  w->clients = c;
  c->keep_alive = 1;
  c->srv = -1;
  atomic_fetch_add_explicit(&w->active_connections, 1, memory_order_relaxed);
  if (uv_tcp_open(&c->tcp, fd) < 0) {
    close(fd);
    client_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  int len = sizeof(c->addr);
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->addr, &len) == 0) peer_text(&c->addr, c->ip, sizeof(c->ip));
  c->real = c->addr;
  memcpy(c->peer, c->ip, sizeof(c->peer));
  atomic_fetch_add_explicit(&w->accepted, 1, memory_order_relaxed);
  arm_client(c, w->rt->cf->client_header_timeout_ms);
  uv_read_start((uv_stream_t *)&c->tcp, alloc_client, client_on_read);
}

/* ---- the request head ---- */

static int trusted_peer(const tether__config *cf, const struct sockaddr_storage *ss) {
  for (size_t i = 0; i < cf->nreal_ip_from; i++)
    if (tether__cidr_match(&cf->real_ip_from[i], (const struct sockaddr *)ss)) return 1;
  return 0;
}

/* The client address a trusted proxy reports: the rightmost X-Forwarded-For entry not itself trusted. */
static void real_ip(tether__client *c, const tether__h1_msg *m) {
  const tether__config *cf = c->rt->cf;
  if (cf->nreal_ip_from == 0 || cf->real_ip_proxy_protocol) return;
  if (!trusted_peer(cf, &c->addr)) return;
  tether__slice xff = tether__h1_header_get(m, "x-forwarded-for");
  if (xff.p == NULL) return;
  size_t end = xff.n;
  while (end > 0) {
    size_t start = end;
    while (start > 0 && xff.p[start - 1] != ',') start--;
    size_t a = start, b = end;
    while (a < b && (xff.p[a] == ' ' || xff.p[a] == '\t')) a++;
    while (b > a && (xff.p[b - 1] == ' ' || xff.p[b - 1] == '\t')) b--;
    char ip[64];
    if (b - a == 0 || b - a >= sizeof(ip)) return;
    memcpy(ip, xff.p + a, b - a);
    ip[b - a] = '\0';
    tether__cidr probe;
    if (tether__cidr_parse(ip, &probe) < 0) return;
    snprintf(c->peer, sizeof(c->peer), "%s", ip);
    c->real = probe.net;
    if (!trusted_peer(cf, &probe.net)) return;
    end = start > 0 ? start - 1 : 0;
  }
}

/* Heads are assembled with plain copies: no format parsing on the hot path. */
static void put(tether__buf *b, const void *p, size_t n) {
  if (n) tether__buf_append(b, p, n); /* an empty reason phrase is a NULL slice */
}
static void put_s(tether__buf *b, const char *s) { tether__buf_append(b, s, strlen(s)); }
static void put_lit_header(tether__buf *b, const char *name, const char *value, size_t vn) {
  tether__put_header(b, (tether__slice){name, strlen(name)}, value, vn);
}
static void put_uint(tether__buf *b, unsigned v) {
  char d[16];
  size_t i = sizeof(d);
  do d[--i] = (char)('0' + v % 10);
  while ((v /= 10) != 0);
  put(b, d + i, sizeof(d) - i);
}
/* A bounded, NUL-terminated copy of a slice (the access log's method and target). */
static void copy_text(char *out, size_t cap, tether__slice s) {
  size_t n = s.n < cap - 1 ? s.n : cap - 1;
  memcpy(out, s.p, n);
  out[n] = '\0';
}

/* The location for a normalized path: an exact match, else the longest prefix (case-sensitive, as nginx). */
static const tether__cf_location *route(const tether__config *cf, const char *path, size_t n) {
  const tether__cf_location *best = NULL;
  size_t best_len = 0;
  for (size_t i = 0; i < cf->nlocations; i++) {
    const tether__cf_location *l = &cf->locations[i];
    size_t pl = strlen(l->prefix);
    if (l->exact) {
      if (pl == n && memcmp(path, l->prefix, pl) == 0) return l;
    } else if (pl <= n && memcmp(path, l->prefix, pl) == 0 && (best == NULL || pl > best_len)) {
      best = l;
      best_len = pl;
    }
  }
  return best;
}

/* Locations see the path as nginx's $uri: decoded, slashes merged, dot segments resolved, so that
 * "/%61pi/me", "//api/me" or "/x/../api/me" meet "location /api/" as the server will read them. The
 * original target is what the server receives. Returns the location (NULL: none), or sets *status. */
static const tether__cf_location *route_request(tether__worker *w, const tether__config *cf, const tether__h1_msg *m,
                                                int *status) {
  *status = 0;
  if (m->path.n == 1 && m->path.p[0] == '*') return route(cf, "*", 1); /* OPTIONS *: no location */
  tether__buf *pb = &w->scratch_path;
  pb->len = 0;
  tether__buf_reserve(pb, m->path.n);
  int n = tether__uri_normalize(m->path.p, m->path.n, pb->data, m->path.n + 1);
  if (n < 0) {
    *status = -n;
    return NULL;
  }
  return route(cf, pb->data, (size_t)n);
}

/* Upgrades are forwarded for WebSocket over HTTP/1.1 only: h2c (RFC 9113 section 3.1 retires it) and
 * other protocols would switch the server connection to something the balancer does not speak. */
static int websocket_upgrade(const tether__h1_msg *m) {
  if (!m->upgrade || m->version_minor != 1) return 0;
  return tether__h1_token_eq(tether__h1_header_get(m, "upgrade"), "websocket");
}

static size_t header_count(const tether__h1_msg *m, const char *name) {
  size_t n = 0;
  for (size_t i = 0; i < m->nheaders; i++) n += tether__h1_token_eq(m->headers[i].name, name);
  return n;
}

static int method_idempotent(tether__slice m) {
  return tether__h1_token_eq(m, "GET") || tether__h1_token_eq(m, "HEAD") || tether__h1_token_eq(m, "OPTIONS") ||
         tether__h1_token_eq(m, "PUT") || tether__h1_token_eq(m, "DELETE") || tether__h1_token_eq(m, "TRACE");
}

static void start_request_once(tether__client *c);

/* Requests answered at once (a return location, a 404, an error) would recurse through finish_request
 * and client_next for each pipelined request after them, and overflow the stack: nested calls only ask
 * the outer one to go on. */
static void start_request(tether__client *c) {
  if (c->starting) {
    c->restart = 1;
    return;
  }
  c->starting = 1;
  do {
    c->restart = 0;
    start_request_once(c);
  } while (c->restart && !c->closing);
  c->starting = 0;
}

/* A complete head is in c->in: check it, route it, and start the request. */
static void start_request_once(tether__client *c) {
  tether__worker *w = c->w;
  tether__h1_msg *m = &scratch_msg[w->id];
  tether__config *cf = w->rt->cf;
  if (c->served == 0 && cf->real_ip_proxy_protocol && trusted_peer(cf, &c->addr)) {
    /* a PROXY protocol header from a trusted proxy: the client is the address it names */
    struct sockaddr_storage src;
    int pp = tether__proxyproto_parse(c->in, c->in_len, &src);
    if (pp == 0) return;
    if (pp == -1) {
      c->served = 1;
      c->in_len = 0;
      c->keep_alive = 0;
      c->active = 1;
      c->rt = w->rt;
      tether__runtime_ref(c->rt);
      c->start_us = tether__mono_us();
      c->srv = -1;
      snprintf(c->method, sizeof(c->method), "-");
      c->target[0] = '\0';
      respond(c, 400, "invalid PROXY protocol header", 0);
      return;
    }
    if (pp > 0) {
      if (src.ss_family != AF_UNSPEC) {
        peer_text(&src, c->ip, sizeof(c->ip));
        c->real = src;
      }
      consume(c->in, &c->in_len, (size_t)pp);
    }
    c->served = 1;
    if (c->in_len == 0) return;
  }
  tether__h1_limits lim = {.max_head = cf->client_header_buffer, .max_uri = cf->large_uri, .max_headers = 100};
  int n = tether__h1_parse_request(c->in, c->in_len, &lim, m);
  if (n == 0) return;
  c->served++;
  c->active = 1;
  c->rt = w->rt;
  tether__runtime_ref(c->rt);
  c->start_us = tether__mono_us();
  c->resp_started = c->resp_done = c->sent_interim = 0;
  c->req_done = 0;
  c->status = 0;
  c->bytes_sent = 0;
  c->tries = 0;
  c->srv = -1;
  memset(c->tried, 0, sizeof(c->tried));
  c->method[0] = c->target[0] = '\0';
  atomic_fetch_add_explicit(&w->requests, 1, memory_order_relaxed);
  if (n < 0) {
    c->keep_alive = 0;
    c->in_len = 0;
    snprintf(c->method, sizeof(c->method), "-");
    respond(c, -n, NULL, 0);
    return;
  }
  copy_text(c->method, sizeof(c->method), m->method);
  copy_text(c->target, sizeof(c->target), m->target);
  c->version_minor = m->version_minor;
  c->keep_alive = m->keep_alive && !w->stopping;
  c->is_head = m->is_head;
  c->idempotent = method_idempotent(m->method);
  c->upgrade = websocket_upgrade(m);
  c->server_name = NULL;
  memcpy(c->peer, c->ip, sizeof(c->peer));
  /* a PROXY header's address holds for the connection; X-Forwarded-For is read per request */
  if (!c->rt->cf->real_ip_proxy_protocol) c->real = c->addr;
  real_ip(c, m);
  c->scheme = "http";
  if (trusted_peer(cf, &c->addr)) { /* a proxy we trust says how the client came (TLS ended there) */
    const char *proto = tether__forwarded_proto(m);
    if (proto) c->scheme = proto;
  }
  if (header_count(m, "connection") > TETHER__HOP_MAX) { /* no one needs that many; bound the work */
    c->keep_alive = 0;
    c->in_len = 0;
    respond(c, 400, NULL, 0);
    return;
  }
  if (header_count(m, "authorization") > 1) { /* which one would the server believe? */
    c->keep_alive = 0;
    c->in_len = 0;
    respond(c, 400, "more than one Authorization header", 0);
    return;
  }
  if (cf->client_max_body_size && m->framing == TETHER__H1_LENGTH && m->content_length > cf->client_max_body_size) {
    c->in_len = 0;
    respond(c, 413, NULL, 0);
    return;
  }
  int bad_path;
  const tether__cf_location *loc = route_request(w, cf, m, &bad_path);
  if (bad_path) {
    c->keep_alive = 0;
    c->in_len = 0;
    respond(c, bad_path, NULL, 0);
    return;
  }
  const tether_jwt_claims *claims = NULL;
  if (loc && loc->jwt.enabled) {
    if (authenticate(c, m, &loc->jwt, n) < 0) return;
    claims = w->claims;
  }
  if (loc == NULL || loc->upstream < 0) {
    int status = loc ? loc->return_status : 404;
    skip_body(c, m, n);
    respond(c, status, loc && loc->return_body[0] ? loc->return_body : NULL, 1);
    return;
  }
  c->ups = loc->upstream;
  tether__cf_upstream *u = &cf->upstreams[c->ups];
  tether__persist_request(&c->rt->ups[c->ups], m, (const struct sockaddr *)&c->real, claims, &c->pr);
  (void)u;
  tether__fwd x = {.cf = cf, .loc = loc, .ur = &c->rt->ups[c->ups], .claims = claims, .conn_ip = c->ip,
                   .remote_addr = c->peer, .scheme = c->scheme, .upgrade = c->upgrade};
  tether__rewrite_request(m, &x, &c->replay);
  c->replay_ok = 1;
  tether__h1_body_init(&c->reqbody, m);
  consume(c->in, &c->in_len, (size_t)n);
  c->state = CS_BODY;
  c->req_done = c->reqbody.done;
  c->body_deadline_ms = cf->client_body_time_ms > 0 ? tether_now_ms() + cf->client_body_time_ms : 0;
  if (c->req_done)
    uv_timer_stop(&c->timer);
  else
    arm_body_timer(c); /* from the head on, not from the first body byte */
  dispatch(c);
}

/* ---- upstream connections ---- */

static tether__pool *pool_for(tether__worker *w, tether__server_state *srv, int create) {
  for (int i = 0; i < w->npools; i++)
    if (w->pools[i].srv == srv) return &w->pools[i];
  if (!create) return NULL;
  if (w->npools == w->cap_pools) {
    w->cap_pools = w->cap_pools ? w->cap_pools * 2 : 8;
    w->pools = tether__realloc(w->pools, (size_t)w->cap_pools * sizeof(*w->pools));
    /* idle connections point at their pool: fix them after the move */
    for (int i = 0; i < w->npools; i++)
      for (tether__upconn *u = w->pools[i].head; u; u = u->pool_next) u->pool = &w->pools[i];
  }
  tether__pool *p = &w->pools[w->npools++];
  memset(p, 0, sizeof(*p));
  p->srv = srv;
  return p;
}

static void pool_remove(tether__upconn *u) {
  tether__pool *p = u->pool;
  if (p == NULL) return;
  if (u->pool_prev)
    u->pool_prev->pool_next = u->pool_next;
  else
    p->head = u->pool_next;
  if (u->pool_next) u->pool_next->pool_prev = u->pool_prev;
  u->pool_next = u->pool_prev = NULL;
  u->pool = NULL;
  p->count--;
}

static void up_free(uv_handle_t *h) {
  tether__upconn *u = h->data;
  if (u->timer.data == NULL) {
    free(u->in);
    free(u);
  } else {
    u->tcp.data = NULL;
  }
}

static void up_timer_closed(uv_handle_t *h) {
  tether__upconn *u = h->data;
  u->timer.data = NULL;
  if (u->tcp.data == NULL) {
    free(u->in);
    free(u);
  }
}

static void up_close(tether__upconn *u, int failed) {
  if (u->closing) return;
  u->closing = 1;
  pool_remove(u);
  (void)failed;
  if (u->c) {
    u->c->up = NULL;
    u->c = NULL;
  }
  uv_timer_stop(&u->timer);
  uv_close((uv_handle_t *)&u->timer, up_timer_closed);
  uv_close((uv_handle_t *)&u->tcp, up_free);
  tether__worker_fd_freed(u->w);
}

static void up_idle_timeout(uv_timer_t *t) { up_close(t->data, 0); }

/* Gives a connection whose response ended cleanly back to its server's pool. */
static void up_release(tether__upconn *u, const tether__cf_upstream *cu) {
  tether__worker *w = u->w;
  if (u->c) {
    u->c->up = NULL;
    u->c = NULL;
  }
  tether__pool *p = pool_for(w, u->srv, 1);
  if (cu->keepalive <= 0 || p->count >= cu->keepalive || u->in_len > 0 || w->stopping || u->pending > 0) {
    up_close(u, 0);
    return;
  }
  u->state = US_IDLE;
  free(u->in); /* an idle connection keeps no buffer */
  u->in = NULL;
  u->in_cap = 0;
  u->pool = p;
  u->pool_prev = NULL;
  u->pool_next = p->head;
  if (p->head) p->head->pool_prev = u;
  p->head = u;
  p->count++;
  up_resume(u); /* an idle connection keeps reading to notice the server closing it */
  uv_timer_start(&u->timer, up_idle_timeout, 60000, 0);
}

static void retry_or_fail(tether__client *c, int status, int count_failure);

static void up_connect_timeout(uv_timer_t *t) {
  tether__upconn *u = t->data;
  tether__client *c = u->c;
  if (c == NULL) {
    up_close(u, 1);
    return;
  }
  if (u->state == US_CONNECTING) {
    retry_or_fail(c, 504, 1);
  } else if (!c->resp_started) { /* read timeout before the response head */
    c->keep_alive = 0;
    tether__server_failed(u->srv, &c->rt->cf->upstreams[c->ups].servers[c->srv], tether_now_ms());
    up_close(u, 1);
    respond(c, 504, NULL, 0);
  } else {
    up_close(u, 1);
    client_close(c);
  }
}

static void arm_up(tether__upconn *u, int64_t ms) {
  uv_timer_start(&u->timer, up_connect_timeout, (uint64_t)(ms > 0 ? ms : 1), 0);
}

static void up_on_connect(uv_connect_t *req, int status);

/* Sends what the request has so far (the replay buffer holds every byte sent) and then streams the rest. */
static void up_send_request(tether__upconn *u) {
  tether__client *c = u->c;
  u->state = US_SENDING;
  arm_up(u, c->rt->cf->proxy_read_timeout_ms);
  if (to_upstream(u, c->replay.data, c->replay.len) < 0) {
    retry_or_fail(c, 502, 1);
    return;
  }
  uv_read_start((uv_stream_t *)&u->tcp, alloc_up, up_on_read);
  forward_request_body(c);
}

/* An idle pooled connection must have nothing to say: bytes waiting on it are a response nobody asked for
 * (it would answer the next request, maybe another client's), and an end of file means the server closed
 * it. Either way it is closed, never reused. The read callback may not have run yet in this loop turn, so
 * the socket itself is asked. */
static int idle_clean(tether__upconn *u) {
  if (u->in_len > 0) return 0;
  uv_os_fd_t fd;
  if (uv_fileno((uv_handle_t *)&u->tcp, &fd) < 0) return 0;
  char b;
  ssize_t n;
  do n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 1;
  if (n > 0)
    tether__log(TETHER_LOG_WARN, "upstream %s: %s sent bytes on an idle connection; closed it", u->srv->upstream,
                u->srv->name);
  return 0;
}

static void dispatch(tether__client *c) {
  tether__worker *w = c->w;
  tether__upstream_rt *ur = &c->rt->ups[c->ups];
  int64_t now = tether_now_ms();
  int tries_max = c->rt->cf->proxy_next_upstream_tries;
  if (tries_max == 0) tries_max = (int)ur->cf->nservers;
  int idx;
  if (c->tries == 0) {
    idx = tether__persist_pick(ur, &c->pr, &w->bs[c->ups], w->id, now);
    if (idx == -2) { /* sticky cookie ... strict: the bound server is gone and the client must not move */
      c->keep_alive = 0;
      respond(c, 503, "the server this session is bound to is unavailable", 0);
      return;
    }
  } else {
    /* a retry of a request begun before a reload: w->bs is sized for the new configuration's upstreams
     * and servers, so balance this one pick on a scratch state of the request's own configuration */
    int scratch[TETHER__CF_MAX_SERVERS + 1] = {0};
    tether__balance_state own = {.current = scratch, .rng = (uint64_t)now * 0x9e3779b97f4a7c15ull | 1};
    tether__balance_state *bs = c->rt == w->rt ? &w->bs[c->ups] : &own;
    idx = -1;
    if (c->tries < tries_max) {
      /* a request began before a reload keeps to its own configuration's servers */
      if (c->rt == w->rt) idx = tether__persist_retry(ur, &c->pr, c->tried, w->id, c->tries == 1, now);
      if (idx < 0) idx = tether__balance_pick(ur, bs, c->tried, now);
    }
    c->pr.set_cookie = 1; /* the binding moves with the retry */
    c->pr.first_seen = 0;
  }
  if (idx < 0) {
    c->keep_alive = 0;
    respond(c, c->tries ? 502 : 503, c->tries ? NULL : "no server is available", 0);
    return;
  }
  c->srv = idx;
  c->server_name = ur->servers[idx]->name;
  c->tried[idx] = 1;
  c->tries++;
  tether__server_state *srv = ur->servers[idx];
  atomic_fetch_add_explicit(&srv->active, 1, memory_order_relaxed);
  tether__pool *p = pool_for(w, srv, 0);
  while (p && p->head) {
    tether__upconn *u = p->head;
    pool_remove(u);
    if (!idle_clean(u)) {
      up_close(u, 0);
      continue;
    }
    uv_timer_stop(&u->timer);
    u->c = c;
    c->up = u;
    u->reused = 1;
    u->got_bytes = 0;
    u->head_done = 0;
    up_send_request(u);
    return;
  }
  tether__upconn *u = tether__calloc(1, sizeof(*u));
  u->w = w;
  u->srv = srv;
  u->c = c;
  c->up = u;
  uv_tcp_init(&w->loop, &u->tcp);
  uv_timer_init(&w->loop, &u->timer);
  u->tcp.data = u;
  u->timer.data = u;
  u->connect_req.data = u;
  u->state = US_CONNECTING;
  const tether__cf_server *cs = &ur->cf->servers[idx];
  int rc = uv_tcp_connect(&u->connect_req, &u->tcp, (const struct sockaddr *)&cs->addr.sa, up_on_connect);
  if (rc < 0) {
    retry_or_fail(c, 502, 1);
    return;
  }
  arm_up(u, c->rt->cf->proxy_connect_timeout_ms);
}

static void up_on_connect(uv_connect_t *req, int status) {
  tether__upconn *u = req->data;
  if (u->closing) return;
  tether__client *c = u->c;
  if (c == NULL) {
    up_close(u, 0);
    return;
  }
  if (status < 0) {
    retry_or_fail(c, status == UV_ETIMEDOUT ? 504 : 502, 1);
    return;
  }
  uv_tcp_nodelay(&u->tcp, 1);
  up_send_request(u);
}

/* The server could not take or answer the request: another server if the request can be replayed. */
static void retry_or_fail(tether__client *c, int status, int count_failure) {
  tether__upconn *u = c->up;
  tether__upstream_rt *ur = &c->rt->ups[c->ups];
  tether__server_state *srv = ur->servers[c->srv];
  atomic_fetch_sub_explicit(&srv->active, 1, memory_order_relaxed);
  const tether__cf_server *cs = &ur->cf->servers[c->srv];
  c->srv = -1;
  tether__wcounters *wc = &srv->per_worker[c->w->id];
  if (count_failure) {
    tether__server_failed(srv, cs, tether_now_ms());
    atomic_fetch_add_explicit(&wc->connect_errors, 1, memory_order_relaxed);
  }
  int was_connecting = u && u->state == US_CONNECTING;
  int got = u && u->got_bytes;
  if (u) up_close(u, count_failure);
  int replayable = c->replay_ok && !c->resp_started && !c->sent_interim && !got && (was_connecting || c->idempotent);
  if (replayable && !c->w->stopping) {
    atomic_fetch_add_explicit(&wc->retries, 1, memory_order_relaxed);
    dispatch(c);
    return;
  }
  atomic_fetch_add_explicit(&wc->requests[TETHER__CLASS_ERR], 1, memory_order_relaxed);
  if (c->resp_started) {
    client_close(c);
    return;
  }
  c->keep_alive = 0;
  respond(c, status, NULL, 0);
}

/* The whole body is in: from now on the server's timeouts apply, not the client's. */
static void body_received(tether__client *c) {
  c->state = CS_WAIT;
  uv_timer_stop(&c->timer);
}

/* Moves request body bytes from the client buffer to the server. */
static void forward_request_body(tether__client *c) {
  tether__upconn *u = c->up;
  if (u == NULL || u->state == US_CONNECTING || c->req_done) {
    if (c->req_done && c->state == CS_BODY) body_received(c);
    return;
  }
  if (c->in_len == 0) return;
  int64_t k = tether__h1_body_feed(&c->reqbody, c->in, c->in_len);
  if (k < 0) {
    c->keep_alive = 0;
    up_close(u, 0);
    if (!c->resp_started)
      respond(c, 400, NULL, 0);
    else
      client_close(c);
    return;
  }
  uint64_t limit = c->rt->cf->client_max_body_size;
  if (limit && c->reqbody.total > limit) {
    c->keep_alive = 0;
    up_close(u, 0);
    if (!c->resp_started)
      respond(c, 413, NULL, 0);
    else
      client_close(c);
    return;
  }
  if (k > 0) {
    if (c->replay_ok) {
      if (c->replay.len + (size_t)k <= REPLAY_MAX)
        tether__buf_append(&c->replay, c->in, (size_t)k);
      else
        c->replay_ok = 0;
    }
    if (to_upstream(u, c->in, (size_t)k) < 0) {
      retry_or_fail(c, 502, 1);
      return;
    }
    consume(c->in, &c->in_len, (size_t)k);
  }
  if (c->reqbody.done) {
    c->req_done = 1;
    body_received(c);
  } else if (u->pending > MAX_PENDING) {
    client_pause(c); /* the server is slow to take the body: not the client's time */
    uv_timer_stop(&c->timer);
  }
}

/* ---- the response ---- */

static int class_of(int status) {
  return status < 200   ? TETHER__CLASS_1XX
         : status < 300 ? TETHER__CLASS_2XX
         : status < 400 ? TETHER__CLASS_3XX
         : status < 500 ? TETHER__CLASS_4XX
                        : TETHER__CLASS_5XX;
}

/* Rewrites the response head into b (the caller sends it, with the first body bytes when it can). */
static void build_head(tether__client *c, tether__h1_msg *m, tether__buf *b) {
  put_s(b, "HTTP/1.1 ");
  put_uint(b, (unsigned)m->status);
  put(b, " ", 1);
  put(b, m->reason.p, m->reason.n);
  put(b, "\r\n", 2);
  char *sticky = NULL;
  const tether__upstream_rt *ur = c->rt ? &c->rt->ups[c->ups] : NULL;
  if (ur && m->status >= 200 && c->srv >= 0) {
    const tether__cf_persist *cp = &ur->cf->persist;
    sticky = tether__persist_set_cookie(ur, &c->pr, c->srv, tether_now_ms());
    if (sticky && cp->preserve) { /* the server set the cookie itself: leave it alone */
      size_t nl = strlen(cp->cookie);
      for (size_t i = 0; i < m->nheaders && sticky; i++)
        if (tether__h1_token_eq(m->headers[i].name, "set-cookie") && m->headers[i].value.n > nl &&
            memcmp(m->headers[i].value.p, cp->cookie, nl) == 0 && m->headers[i].value.p[nl] == '=') {
          free(sticky);
          sticky = NULL;
        }
    }
  }
  int nocache = sticky && ur->cf->persist.nocache;
  tether__hop hop;
  tether__hop_init(&hop, m);
  for (size_t i = 0; i < m->nheaders; i++) {
    const tether__h1_header *h = &m->headers[i];
    if (nocache && tether__h1_token_eq(h->name, "cache-control")) continue;
    if (m->status == 101 && tether__h1_token_eq(h->name, "upgrade")) {
      tether__put_header(b, h->name, h->value.p, h->value.n);
      continue;
    }
    if (tether__hop_by_hop(&hop, h->name)) continue;
    tether__put_header(b, h->name, h->value.p, h->value.n);
  }
  if (sticky) {
    put_lit_header(b, "Set-Cookie", sticky, strlen(sticky));
    /* a shared cache must not hand one client's binding to everyone */
    if (nocache) put_s(b, "Cache-Control: private\r\n");
    free(sticky);
  }
  if (m->status == 101) {
    put_s(b, "Connection: upgrade\r\n");
  } else if (m->status >= 200) {
    if (m->framing == TETHER__H1_UNTIL_CLOSE) c->keep_alive = 0;
    if (!c->keep_alive)
      put_s(b, "Connection: close\r\n");
    else if (c->version_minor == 0)
      put_s(b, "Connection: keep-alive\r\n");
  }
  put(b, "\r\n", 2);
  if (m->status >= 200 || m->status == 101)
    c->resp_started = 1; /* after a 1xx a failure still gets its 502 */
  else
    c->sent_interim = 1;
}

static int forward_head(tether__client *c, tether__h1_msg *m) {
  tether__buf *b = &c->w->scratch_out;
  b->len = 0;
  build_head(c, m, b);
  return to_client(c, b->data, b->len);
}

static void start_tunnel(tether__client *c, tether__upconn *u) {
  c->state = CS_TUNNEL;
  u->state = US_TUNNEL;
  uv_timer_stop(&u->timer);
  uv_timer_stop(&c->timer);
  /* bytes that came after the heads belong to the other side */
  if (u->in_len) {
    to_client(c, u->in, u->in_len);
    u->in_len = 0;
  }
  if (c->in_len) {
    to_upstream(u, c->in, c->in_len);
    c->in_len = 0;
  }
  c->paused = 0;
  uv_read_start((uv_stream_t *)&c->tcp, alloc_client, client_on_read);
}

static void response_done(tether__client *c, tether__upconn *u) {
  tether__upstream_rt *ur = &c->rt->ups[c->ups];
  tether__server_state *srv = ur->servers[c->srv];
  atomic_fetch_sub_explicit(&srv->active, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&srv->per_worker[c->w->id].requests[class_of(c->status)], 1, memory_order_relaxed);
  tether__server_succeeded(srv);
  c->srv = -1;
  c->resp_done = 1;
  if (u->resp_keep_alive && c->req_done && u->pending == 0)
    up_release(u, ur->cf);
  else {
    if (!c->req_done) c->keep_alive = 0; /* the rest of the body cannot be skipped safely */
    up_close(u, 0);
  }
  finish_request(c);
}

/* Parses and forwards what the server sent. */
static void up_process(tether__upconn *u) {
  tether__client *c = u->c;
  while (!u->closing && c && !c->closing) {
    if (!u->head_done) {
      tether__h1_msg *m = &scratch_msg[u->w->id];
      tether__config *cf = c->rt->cf;
      tether__h1_limits lim = {.max_head = cf->client_header_buffer * 2, .max_uri = 1 << 20, .max_headers = 100};
      int n = tether__h1_parse_response(u->in, u->in_len, &lim, c->is_head, m);
      if (n == 0) return;
      if (n < 0) {
        tether__log(TETHER_LOG_WARN, "upstream %s: invalid response head from %s", u->srv->upstream, u->srv->name);
        c->keep_alive = 0;
        tether__server_state *srv = u->srv;
        atomic_fetch_sub_explicit(&srv->active, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&srv->per_worker[c->w->id].requests[TETHER__CLASS_ERR], 1, memory_order_relaxed);
        c->srv = -1;
        up_close(u, 1);
        if (c->resp_started)
          client_close(c);
        else
          respond(c, 502, NULL, 0);
        return;
      }
      if (m->status < 200 && m->status != 101) { /* 100 Continue and friends: forward, then the real one */
        /* never to an HTTP/1.0 client, which does not know them (RFC 9110, 15.2) */
        if (c->version_minor > 0 && forward_head(c, m) < 0) return client_close(c);
        consume(u->in, &u->in_len, (size_t)n);
        continue;
      }
      c->status = m->status;
      if (m->status == 101 && !c->upgrade) {
        c->keep_alive = 0;
        up_close(u, 1);
        respond(c, 502, NULL, 0);
        return;
      }
      u->resp_keep_alive = m->keep_alive;
      tether__h1_body_init(&u->body, m);
      u->head_done = 1;
      if (m->status == 101) {
        if (forward_head(c, m) < 0) return client_close(c);
        consume(u->in, &u->in_len, (size_t)n);
        start_tunnel(c, u);
        return;
      }
      /* the head and the body bytes that came with it leave in one write */
      tether__buf *hb = &c->w->scratch_out;
      hb->len = 0;
      build_head(c, m, hb);
      int64_t k = tether__h1_body_feed(&u->body, u->in + n, u->in_len - (size_t)n);
      if (k < 0) {
        c->keep_alive = 0;
        up_close(u, 1);
        respond(c, 502, NULL, 0);
        return;
      }
      tether__buf_append(hb, u->in + n, (size_t)k);
      if (to_client(c, hb->data, hb->len) < 0) return client_close(c);
      consume(u->in, &u->in_len, (size_t)n + (size_t)k);
      if (u->body.done) {
        response_done(c, u);
        return;
      }
      continue;
    }
    if (u->body.done) {
      response_done(c, u);
      return;
    }
    if (u->in_len == 0) return;
    int64_t k = tether__h1_body_feed(&u->body, u->in, u->in_len);
    if (k < 0) {
      c->keep_alive = 0;
      up_close(u, 1);
      client_close(c);
      return;
    }
    if (k > 0 && to_client(c, u->in, (size_t)k) < 0) {
      client_close(c);
      return;
    }
    consume(u->in, &u->in_len, (size_t)k);
    if (u->body.done) {
      response_done(c, u);
      return;
    }
    if (c->pending > MAX_PENDING) up_pause(u);
    return;
  }
}

static void up_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  tether__upconn *u = s->data;
  if (u->closing) return;
  tether__client *c = u->c;
  if (nread == 0) return;
  if (u->state == US_IDLE) { /* an idle connection: the server closed it, or sent junk */
    up_close(u, 0);
    return;
  }
  if (nread < 0) {
    if (c == NULL) {
      up_close(u, 0);
      return;
    }
    if (u->state == US_TUNNEL) {
      up_close(u, 0);
      c->keep_alive = 0;
      c->resp_done = 1;
      if (c->pending == 0) client_close(c);
      return;
    }
    if (u->head_done && u->body.framing == TETHER__H1_UNTIL_CLOSE && nread == UV_EOF) {
      u->body.done = 1;
      u->resp_keep_alive = 0;
      c->keep_alive = 0;
      response_done(c, u);
      return;
    }
    if (!u->got_bytes) {
      /* a pooled connection the server had already closed, or a reset before any answer */
      retry_or_fail(c, 502, !u->reused);
      return;
    }
    tether__log(TETHER_LOG_INFO, "upstream %s: %s closed mid-response: %s", u->srv->upstream, u->srv->name,
                uv_strerror((int)nread));
    tether__server_state *srv = u->srv;
    atomic_fetch_sub_explicit(&srv->active, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&srv->per_worker[c->w->id].requests[TETHER__CLASS_ERR], 1, memory_order_relaxed);
    c->srv = -1;
    up_close(u, 1);
    if (c->resp_started)
      client_close(c);
    else
      respond(c, 502, NULL, 0);
    return;
  }
  u->got_bytes = 1;
  if (u->state == US_TUNNEL) {
    if (c && to_client(c, buf->base, (size_t)nread) < 0)
      client_close(c);
    else if (c && c->pending > MAX_PENDING)
      up_pause(u);
    return;
  }
  grow(&u->in, &u->in_cap, u->in_len + (size_t)nread);
  memcpy(u->in + u->in_len, buf->base, (size_t)nread);
  u->in_len += (size_t)nread;
  if (c == NULL) {
    up_close(u, 0);
    return;
  }
  arm_up(u, c->rt->cf->proxy_read_timeout_ms);
  up_process(u);
}

/* ---- the client side ---- */

static void client_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  tether__client *c = s->data;
  if (c->closing) return;
  if (nread == 0) return;
  if (c->state == CS_LINGER) { /* dropped; the end of it closes */
    if (nread < 0 || tether_now_ms() >= c->linger_until_ms)
      client_close(c);
    else
      uv_timer_start(&c->timer, client_timeout, LINGER_TIMEOUT_MS, 0);
    return;
  }
  if (nread < 0) {
    if (nread == UV_EOF && c->active && c->req_done && c->state != CS_TUNNEL) {
      /* a half-close after a complete request: answer it, then close */
      c->keep_alive = 0;
      client_pause(c);
      return;
    }
    if (c->state == CS_TUNNEL && c->up) up_close(c->up, 0);
    client_close(c);
    return;
  }
  if (c->state == CS_TUNNEL) {
    if (c->up && to_upstream(c->up, buf->base, (size_t)nread) < 0)
      client_close(c);
    else if (c->up && c->up->pending > MAX_PENDING)
      client_pause(c);
    return;
  }
  grow(&c->in, &c->in_cap, c->in_len + (size_t)nread);
  memcpy(c->in + c->in_len, buf->base, (size_t)nread);
  c->in_len += (size_t)nread;
  if (c->state == CS_HEAD) {
    if (!c->active && c->in_len == (size_t)nread) arm_client(c, c->w->rt->cf->client_header_timeout_ms);
    start_request(c);
    return;
  }
  if (c->state == CS_BODY) {
    arm_body_timer(c);
    forward_request_body(c);
    if (c->state == CS_WAIT) uv_timer_stop(&c->timer);
    return;
  }
  /* CS_WAIT: a pipelined request; keep it buffered, bounded */
  if (c->in_len > c->rt->cf->client_header_buffer) client_pause(c);
}

static void log_request(tether__client *c) {
  tether__config *cf = c->rt->cf;
  if (cf->access_log[0] == '\0') return;
  uint64_t us = tether__mono_us() - c->start_us;
  char date[40], num[96];
  tether__http_date(tether_now_ms(), date);
  const char *server = c->server_name ? c->server_name : "-";
  int json = cf->access_log_json;
  tether__buf *b = &c->w->scratch_log;
  b->len = 0;
  if (json) {
    tether__buf_appendf(b, "{\"time\":\"%s\",\"client\":\"", date);
    tether__log_escape(b, c->peer, 1);
    put_s(b, "\",\"method\":\"");
    tether__log_escape(b, c->method, 1);
    put_s(b, "\",\"uri\":\"");
    tether__log_escape(b, c->target, 1);
    snprintf(num, sizeof(num), "\",\"status\":%d,\"bytes\":%llu,\"duration_ms\":%.3f,\"server\":\"", c->status,
             (unsigned long long)c->bytes_sent, us / 1000.0);
    put_s(b, num);
    tether__log_escape(b, server, 1);
    put_s(b, "\"}\n");
  } else {
    tether__log_escape(b, c->peer, 0);
    tether__buf_appendf(b, " - - [%s] \"", date);
    tether__log_escape(b, c->method, 0);
    put(b, " ", 1);
    tether__log_escape(b, c->target, 0);
    snprintf(num, sizeof(num), " HTTP/1.%d\" %d %llu \"-\" \"-\" %.3f \"", c->version_minor, c->status,
             (unsigned long long)c->bytes_sent, us / 1e6);
    put_s(b, num);
    tether__log_escape(b, server, 0);
    put_s(b, "\"\n");
  }
  tether__access_log_line(c->w, b->data, b->len);
}

/* The request is over (answered, or the connection is going away). */
static void finish_request(tether__client *c) {
  if (!c->active) return;
  tether__worker *w = c->w;
  c->active = 0;
  if (c->srv >= 0 && c->rt) { /* ended without the server's answer (the client went away), or a tunnel */
    tether__server_state *srv = c->rt->ups[c->ups].servers[c->srv];
    int cls = c->state == CS_TUNNEL ? TETHER__CLASS_1XX : TETHER__CLASS_ERR; /* a tunnel's answer was its 101 */
    atomic_fetch_sub_explicit(&srv->active, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&srv->per_worker[w->id].requests[cls], 1, memory_order_relaxed);
    c->srv = -1;
  }
  uint64_t us = tether__mono_us() - c->start_us;
  double s = us / 1e6;
  int b = 0;
  while (b < TETHER__LATENCY_NB && s > tether__latency_bounds_s[b]) b++;
  atomic_fetch_add_explicit(&w->latency_buckets[b], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&w->latency_sum_us, us, memory_order_relaxed);
  log_request(c);
  tether__runtime_unref(c->rt);
  c->rt = NULL;
  c->replay.len = 0;
  if (c->closing) return;
  c->state = CS_HEAD;
  if (!c->keep_alive || w->stopping) {
    c->keep_alive = 0;
    c->in_len = 0;
    if (c->pending == 0) client_end(c);
    return; /* else on_written ends it once the answer is written */
  }
  client_next(c);
}

/* Keep-alive: serve a pipelined request already buffered, or wait for the next one. */
static void client_next(tether__client *c) {
  client_resume(c);
  if (c->in_len > 0) {
    arm_client(c, c->w->rt->cf->client_header_timeout_ms);
    start_request(c);
    return;
  }
  free(c->in); /* an idle connection keeps no buffer */
  c->in = NULL;
  c->in_cap = 0;
  tether__buf_free(&c->replay);
  arm_client(c, c->w->rt->cf->keepalive_timeout_ms);
}

void tether__worker_close_idle(tether__worker *w) {
  tether__client *c = w->clients;
  while (c) {
    tether__client *next = c->next;
    if (!c->active && c->pending == 0)
      client_close(c);
    else
      c->keep_alive = 0;
    c = next;
  }
  tether__worker_drop_pools(w);
}

void tether__worker_close_all(tether__worker *w) {
  while (w->clients) client_close(w->clients);
  tether__worker_drop_pools(w);
}

void tether__worker_drop_pools(tether__worker *w) {
  for (int i = 0; i < w->npools; i++)
    while (w->pools[i].head) up_close(w->pools[i].head, 0);
}
