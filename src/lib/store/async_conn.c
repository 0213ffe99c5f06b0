/* libtether: one pipelined Redis connection on a libuv loop (async_conn.h).
 *
 * Commands wait in a FIFO. A command is formatted into the output buffer when it is sent; a prepare handle
 * writes the buffer once per loop turn, just before the loop polls, so whatever the callbacks of one turn
 * sent leaves in one write. Replies are parsed with hiredis's reader and complete the commands in order.
 * One timer watches the oldest command: past its deadline the connection is failed, as is every command on
 * it (the blocking store's rule: a command that timed out may still run, the caller learns it did not
 * answer in time). A failed connection backs off 50 ms doubling to 2 s; meanwhile sends fail at once with
 * TETHER_EUNAVAIL, then the next send connects again. AUTH, SELECT and READONLY are the first commands of
 * each connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "../util.h"
#include "async_conn.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
#define READ_BUF 65536

enum { C_IDLE, C_RESOLVING, C_CONNECTING, C_READY };

struct tether__aconn {
  uv_loop_t *loop;
  tether__aconn_conf cf; /* host, user and password copied */
  void (*freed)(void *);
  void *owner;
  int state, closing;
  int open_handles; /* the timer and the prepare handle, until their close callbacks */
  int gai_pending;  /* a name resolution whose callback has not run */
  uv_tcp_t *tcp;    /* its own allocation: it outlives the connection it served until its close callback */
  uv_connect_t connect_req;
  uv_getaddrinfo_t gai;
  uv_timer_t timer;
  uv_prepare_t flush;
  redisReader *reader;
  redisReply reply;     /* the reply being read when it is not inside an array: reused (reply_new) */
  tether__buf out;      /* formatted commands not yet handed to the socket */
  uv_write_t write_req; /* at most one write in progress */
  char *writing;        /* its bytes */
  int write_busy;
  tether__acmd *head, *tail; /* in the order sent */
  char *rbuf;
  uint64_t read_us; /* when the last read returned */
  int backoff_ms;
  uint64_t retry_at_us;
  char down_msg[400];
};

static void maybe_free(tether__aconn *k) {
  if (!k->closing || k->open_handles > 0 || k->tcp != NULL || k->gai_pending) return;
  if (k->reader) redisReaderFree(k->reader);
  free(k->reply.str);
  tether__buf_free(&k->out);
  free(k->rbuf);
  free((char *)k->cf.host);
  free((char *)k->cf.user);
  if (k->cf.password) {
    explicit_bzero((char *)k->cf.password, strlen(k->cf.password));
    free((char *)k->cf.password);
  }
  void (*freed)(void *) = k->freed;
  void *owner = k->owner;
  free(k);
  if (freed) freed(owner);
}

static void tcp_closed(uv_handle_t *h) {
  tether__aconn *k = h->data;
  if (k->tcp == (uv_tcp_t *)h) k->tcp = NULL;
  free(h);
  maybe_free(k);
}

/* Fails every command with rc (message already set) and drops the connection; backs off unless closing. */
static void conn_fail(tether__aconn *k, int rc) {
  snprintf(k->down_msg, sizeof(k->down_msg), "%s", tether_last_error());
  if (k->tcp && k->state != C_IDLE && k->state != C_RESOLVING) {
    uv_close((uv_handle_t *)k->tcp, tcp_closed); /* freed in its close callback; a new connection gets a new one */
  } else if (k->tcp) {
    free(k->tcp);
    k->tcp = NULL;
  }
  if (k->state == C_RESOLVING) uv_cancel((uv_req_t *)&k->gai);
  k->state = C_IDLE;
  k->out.len = 0;
  if (k->reader) {
    redisReaderFree(k->reader);
    k->reader = NULL;
  }
  if (!k->closing) {
    k->backoff_ms =
        k->backoff_ms ? (k->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : k->backoff_ms * 2) : BACKOFF_MIN_MS;
    k->retry_at_us = tether__mono_us() + (uint64_t)k->backoff_ms * 1000;
  }
  uv_timer_stop(&k->timer);
  tether__acmd *c = k->head;
  k->head = k->tail = NULL;
  while (c) {
    tether__acmd *next = c->next; /* a callback may free c, or send again (and find the connection backing off) */
    if (c->done) {
      tether__fail(rc, "%s", k->down_msg);
      c->done(c, rc, NULL);
    } else {
      free(c);
    }
    c = next;
  }
}

static void arm_timer_at(tether__aconn *k, uint64_t now);
static void on_prepare(uv_prepare_t *p);

static void on_timer(uv_timer_t *t) {
  tether__aconn *k = t->data;
  uint64_t now = tether__mono_us();
  if (k->state == C_RESOLVING || k->state == C_CONNECTING) {
    conn_fail(k, tether__fail(TETHER_ETIMEDOUT, "%s %s:%d: connect: no answer within %d ms", k->cf.who, k->cf.host,
                              k->cf.port, k->cf.connect_timeout_ms));
    return;
  }
  if (k->head && k->head->deadline_us <= now) {
    conn_fail(k, tether__fail(TETHER_ETIMEDOUT, "%s %s:%d: no answer within %d ms", k->cf.who, k->cf.host, k->cf.port,
                              k->cf.timeout_ms + k->head->extra_ms));
    return;
  }
  arm_timer_at(k, now);
}

/* The timer watches the oldest command (the FIFO's head has the earliest deadline). now: tether__mono_us(),
 * read once by the caller for everything it does. */
static void arm_timer_at(tether__aconn *k, uint64_t now) {
  if (k->head == NULL || k->state != C_READY) return;
  uint64_t ms = k->head->deadline_us > now ? (k->head->deadline_us - now + 999) / 1000 : 0;
  uv_timer_start(&k->timer, on_timer, ms, 0);
}

static int write_fail(tether__aconn *k, int status) {
  int rc = tether__fail(TETHER_EUNAVAIL, "%s %s:%d: write: %s", k->cf.who, k->cf.host, k->cf.port, uv_strerror(status));
  conn_fail(k, rc);
  return rc;
}

static void on_written(uv_write_t *req, int status) {
  tether__aconn *k = req->data;
  free(k->writing);
  k->writing = NULL;
  k->write_busy = 0;
  if (status < 0 && status != UV_ECANCELED && k->state == C_READY) {
    write_fail(k, status);
    return;
  }
  if (k->out.len && k->state == C_READY) uv_prepare_start(&k->flush, on_prepare);
}

static void flush_out(tether__aconn *k) {
  if (k->state != C_READY || k->write_busy || k->out.len == 0) return;
  uv_buf_t b = uv_buf_init(k->out.data, (unsigned)k->out.len);
  int n = uv_try_write((uv_stream_t *)k->tcp, &b, 1);
  if (n < 0 && n != UV_EAGAIN) {
    write_fail(k, n);
    return;
  }
  size_t done = n > 0 ? (size_t)n : 0;
  if (done == k->out.len) {
    k->out.len = 0;
    return;
  }
  /* the rest waits in the socket's queue: hand libuv a copy and keep collecting */
  size_t rest = k->out.len - done;
  k->writing = tether__malloc(rest);
  memcpy(k->writing, k->out.data + done, rest);
  k->out.len = 0;
  uv_buf_t wb = uv_buf_init(k->writing, (unsigned)rest);
  k->write_req.data = k;
  k->write_busy = 1;
  int rc = uv_write(&k->write_req, (uv_stream_t *)k->tcp, &wb, 1, on_written);
  if (rc < 0) {
    free(k->writing);
    k->writing = NULL;
    k->write_busy = 0;
    write_fail(k, rc);
  }
}

static void on_prepare(uv_prepare_t *p) {
  tether__aconn *k = p->data;
  uv_prepare_stop(p);
  flush_out(k);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  tether__aconn *k = h->data;
  *buf = uv_buf_init(k->rbuf, READ_BUF);
}

static int protocol_fail(tether__aconn *k) {
  int rc = tether__fail(TETHER_EUNAVAIL, "%s %s:%d: protocol error: %s", k->cf.who, k->cf.host, k->cf.port,
                        k->reader->errstr);
  conn_fail(k, rc);
  return rc;
}

/* ---- reply objects: hiredis's reader with lighter ones ----
 * A reply that is not inside an array (every session command's: a GET's string, SET's status, nil, an
 * integer or an error) is the connection's own object, reused, instead of a calloc'd one per reply; only its
 * string is malloc'd (and a GET's is taken from it by tether__redis_get_reply). Arrays and their elements are
 * allocated as hiredis's own are, so freeReplyObject frees them. The reused object is told apart by its
 * element pointer, which no other reply without elements has. */
static char reused_mark;
#define REUSED ((redisReply **)(void *)&reused_mark)
#define IS_REUSED(r) ((r)->element == REUSED)

static redisReply *reply_new(const redisReadTask *t, int type) {
  tether__aconn *k = t->privdata;
  redisReply *r;
  if (t->parent == NULL && type != REDIS_REPLY_ARRAY) {
    r = &k->reply;
    free(r->str); /* an earlier reply's string nobody took (it is normally freed by reply_release) */
    *r = (redisReply){.element = REUSED};
  } else {
    r = tether__calloc(1, sizeof(*r));
  }
  r->type = type;
  if (t->parent) ((redisReply *)t->parent->obj)->element[t->idx] = r;
  return r;
}

static void *create_string(const redisReadTask *t, char *str, size_t len) {
  redisReply *r = reply_new(t, t->type);
  r->str = tether__malloc(len + 1);
  memcpy(r->str, str, len);
  r->str[len] = '\0';
  r->len = len;
  return r;
}

static void *create_array(const redisReadTask *t, int n) {
  redisReply *r = reply_new(t, REDIS_REPLY_ARRAY);
  if (n > 0) r->element = tether__calloc((size_t)n, sizeof(*r->element));
  r->elements = n > 0 ? (size_t)n : 0;
  return r;
}

static void *create_integer(const redisReadTask *t, long long v) {
  redisReply *r = reply_new(t, REDIS_REPLY_INTEGER);
  r->integer = v;
  return r;
}

static void *create_nil(const redisReadTask *t) { return reply_new(t, REDIS_REPLY_NIL); }

static void reply_release(void *obj) {
  redisReply *r = obj;
  if (r == NULL) return;
  if (!IS_REUSED(r)) {
    freeReplyObject(r);
    return;
  }
  free(r->str);
  r->str = NULL;
}

static redisReplyObjectFunctions reply_fns = {create_string, create_array, create_integer, create_nil, reply_release};

/* One reply: completes the oldest command. -1 when the connection failed or closed meanwhile. */
static int on_reply(tether__aconn *k, redisReply *rep) {
  tether__acmd *c = k->head;
  if (c == NULL) {
    reply_release(rep);
    conn_fail(k,
              tether__fail(TETHER_EUNAVAIL, "%s %s:%d: a reply nobody asked for", k->cf.who, k->cf.host, k->cf.port));
    return -1;
  }
  k->head = c->next;
  if (k->head == NULL) k->tail = NULL;
  if (c->done == NULL) { /* setup */
    int bad = rep->type == REDIS_REPLY_ERROR;
    char why[256];
    if (bad) snprintf(why, sizeof(why), "%.*s", (int)rep->len, rep->str);
    reply_release(rep);
    free(c);
    if (bad) {
      conn_fail(
          k, tether__fail(TETHER_EUNAVAIL, "%s %s:%d: connection setup: %s", k->cf.who, k->cf.host, k->cf.port, why));
      return -1;
    }
    return 0;
  }
  k->backoff_ms = 0;
  c->done_us = k->read_us;
  c->done(c, 0, rep);
  reply_release(rep);
  return k->state == C_READY ? 0 : -1; /* a callback may have closed the connection */
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  tether__aconn *k = s->data;
  if (n == 0) return;
  if (n < 0) {
    if (k->head == NULL) { /* an idle connection closed (server timeout, proxy, restart): not an outage */
      int backoff = k->backoff_ms;
      conn_fail(k,
                tether__fail(TETHER_EUNAVAIL, "%s %s:%d: idle connection closed", k->cf.who, k->cf.host, k->cf.port));
      k->backoff_ms = backoff;
      k->retry_at_us = 0;
      return;
    }
    conn_fail(k, tether__fail(TETHER_EUNAVAIL, "%s %s:%d: %s", k->cf.who, k->cf.host, k->cf.port,
                              n == UV_EOF ? "the server closed the connection" : uv_strerror((int)n)));
    return;
  }
  k->read_us = tether__mono_us(); /* the replies' completion time, and the timer's now */
  if (redisReaderFeed(k->reader, k->rbuf, (size_t)n) != REDIS_OK) {
    protocol_fail(k);
    return;
  }
  for (;;) {
    void *r = NULL;
    if (redisReaderGetReply(k->reader, &r) != REDIS_OK) {
      protocol_fail(k);
      return;
    }
    if (r == NULL) break;
    if (on_reply(k, r) < 0) return;
  }
  if (k->head)
    arm_timer_at(k, k->read_us);
  else
    uv_timer_stop(&k->timer);
}

static void on_connect(uv_connect_t *req, int status) {
  tether__aconn *k = req->data;
  if (status == UV_ECANCELED || k->state != C_CONNECTING) return;
  if (status < 0) {
    conn_fail(k, tether__fail(TETHER_EUNAVAIL, "%s %s:%d: connect: %s", k->cf.who, k->cf.host, k->cf.port,
                              uv_strerror(status)));
    return;
  }
  k->state = C_READY;
  uv_tcp_nodelay(k->tcp, 1);
  uv_read_start((uv_stream_t *)k->tcp, on_alloc, on_read);
  /* commands sent while connecting now get their deadlines from here */
  uint64_t now = tether__mono_us();
  for (tether__acmd *c = k->head; c; c = c->next) {
    uint64_t deadline = now + (uint64_t)(k->cf.timeout_ms + c->extra_ms) * 1000;
    if (c->deadline_us < deadline) c->deadline_us = deadline;
  }
  flush_out(k);
  arm_timer_at(k, now);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  tether__aconn *k = req->data;
  k->gai_pending = 0;
  if (status == UV_ECANCELED || status == UV_EAI_CANCELED || k->state != C_RESOLVING) {
    if (res) uv_freeaddrinfo(res);
    maybe_free(k);
    return;
  }
  if (status < 0 || res == NULL) {
    if (res) uv_freeaddrinfo(res);
    conn_fail(k, tether__fail(TETHER_EUNAVAIL, "%s %s:%d: resolving the host: %s", k->cf.who, k->cf.host, k->cf.port,
                              uv_strerror(status)));
    return;
  }
  k->tcp = tether__calloc(1, sizeof(*k->tcp));
  uv_tcp_init(k->loop, k->tcp);
  k->tcp->data = k;
  k->state = C_CONNECTING;
  k->connect_req.data = k;
  int rc = uv_tcp_connect(&k->connect_req, k->tcp, res->ai_addr, on_connect);
  uv_freeaddrinfo(res);
  if (rc < 0)
    conn_fail(
        k, tether__fail(TETHER_EUNAVAIL, "%s %s:%d: connect: %s", k->cf.who, k->cf.host, k->cf.port, uv_strerror(rc)));
}

static void push(tether__aconn *k, tether__acmd *c) {
  c->next = NULL;
  if (k->tail)
    k->tail->next = c;
  else
    k->head = c;
  k->tail = c;
}

static void setup_command(tether__aconn *k, int argc, const char **argv) {
  tether__acmd *c = tether__calloc(1, sizeof(*c));
  c->deadline_us = tether__mono_us() + (uint64_t)(k->cf.connect_timeout_ms + k->cf.timeout_ms) * 1000;
  push(k, c);
  char *cmd = NULL;
  int n = redisFormatCommandArgv(&cmd, argc, argv, NULL);
  if (n > 0) tether__buf_append(&k->out, cmd, (size_t)n);
  free(cmd);
}

static int conn_start(tether__aconn *k) {
  k->reader = redisReaderCreateWithFunctions(&reply_fns);
  if (k->reader) k->reader->privdata = k; /* redisReaderSetPrivdata casts to int */
  k->out.len = 0;
  if (k->cf.password) {
    if (k->cf.user && *k->cf.user)
      setup_command(k, 3, (const char *[]){"AUTH", k->cf.user, k->cf.password});
    else
      setup_command(k, 2, (const char *[]){"AUTH", k->cf.password});
  }
  if (k->cf.db) {
    char db[16];
    snprintf(db, sizeof(db), "%d", k->cf.db);
    setup_command(k, 2, (const char *[]){"SELECT", db});
  }
  if (k->cf.readonly) setup_command(k, 1, (const char *[]){"READONLY"});
  char port[16];
  snprintf(port, sizeof(port), "%d", k->cf.port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  k->gai.data = k;
  k->state = C_RESOLVING;
  int rc = uv_getaddrinfo(k->loop, &k->gai, on_resolved, k->cf.host, port, &hints);
  if (rc < 0) {
    int code = tether__fail(TETHER_EUNAVAIL, "%s %s:%d: resolving the host: %s", k->cf.who, k->cf.host, k->cf.port,
                            uv_strerror(rc));
    k->state = C_IDLE;
    conn_fail(k, code);
    return code;
  }
  k->gai_pending = 1;
  uv_timer_start(&k->timer, on_timer, (uint64_t)k->cf.connect_timeout_ms, 0);
  return 0;
}

/* Connects if needed and queues c; its command is then appended to k->out. */
static int send_begin(tether__aconn *k, tether__acmd *c) {
  if (k->closing) return tether__fail(TETHER_EUNAVAIL, "store closed");
  if (k->state == C_IDLE) {
    int rc = 0;
    if (k->gai_pending)
      rc = tether__fail(TETHER_EUNAVAIL, "%s", k->down_msg);
    else if (k->backoff_ms && tether__mono_us() < k->retry_at_us)
      rc = tether__fail(TETHER_EUNAVAIL, "%s (retrying in %d ms)", k->down_msg, k->backoff_ms);
    else
      rc = conn_start(k);
    if (rc < 0) return rc;
  }
  uint64_t now = tether__mono_us();
  c->sent_us = now;
  c->done_us = 0;
  c->deadline_us = now + (uint64_t)(k->cf.timeout_ms + c->extra_ms) * 1000;
  int was_empty = k->head == NULL;
  push(k, c);
  if (k->state == C_READY) {
    if (!uv_is_active((uv_handle_t *)&k->flush)) uv_prepare_start(&k->flush, on_prepare);
    if (was_empty) arm_timer_at(k, now);
  }
  return 0;
}

int tether__aconn_send(tether__aconn *k, tether__acmd *c, const char *cmd, size_t len) {
  int rc = send_begin(k, c);
  if (rc == 0) tether__buf_append(&k->out, cmd, len);
  return rc;
}

int tether__aconn_send_call(tether__aconn *k, tether__acmd *c, int kind, int mode, const char *prefix, const char *sid,
                            const char *json, size_t jlen, int64_t expires_ms, long max_value) {
  int rc = send_begin(k, c);
  if (rc == 0) tether__acmd_append(&k->out, kind, mode, prefix, sid, json, jlen, expires_ms, max_value);
  return rc;
}

void tether__aconn_flush(tether__aconn *k) { flush_out(k); }

static void handle_closed(uv_handle_t *h) {
  tether__aconn *k = h->data;
  k->open_handles--;
  maybe_free(k);
}

tether__aconn *tether__aconn_new(uv_loop_t *loop, const tether__aconn_conf *conf, void (*freed)(void *), void *owner) {
  tether__aconn *k = tether__calloc(1, sizeof(*k));
  k->loop = loop;
  k->cf = *conf;
  k->cf.host = tether__strdup(conf->host);
  k->cf.user = conf->user ? tether__strdup(conf->user) : NULL;
  k->cf.password = conf->password ? tether__strdup(conf->password) : NULL;
  k->freed = freed;
  k->owner = owner;
  k->rbuf = tether__malloc(READ_BUF);
  uv_timer_init(loop, &k->timer);
  uv_prepare_init(loop, &k->flush);
  k->timer.data = k->flush.data = k;
  k->open_handles = 2;
  return k;
}

void tether__aconn_close(tether__aconn *k) {
  if (k == NULL || k->closing) return;
  k->closing = 1;
  if (k->state != C_IDLE || k->head) conn_fail(k, tether__fail(TETHER_EUNAVAIL, "store closed"));
  uv_close((uv_handle_t *)&k->timer, handle_closed);
  uv_close((uv_handle_t *)&k->flush, handle_closed);
}

/* ---- the commands of the session calls ---- */

/* Decimal digits of v at p; their count. */
static size_t put_uint(char *p, unsigned long long v) {
  char t[20];
  size_t n = 0;
  do t[n++] = (char)('0' + v % 10);
  while ((v /= 10) != 0);
  for (size_t i = 0; i < n; i++) p[i] = t[n - 1 - i];
  return n;
}

/* A command in RESP appended to b, without printf (every session call formats one: hiredis's
 * redisFormatCommandArgv sprintf's each length). */
static void format(tether__buf *b, int argc, const char **argv, const size_t *lens) {
  size_t l[8], total = 24;
  if (argc > 8) abort(); /* the session calls have at most 6 words */
  for (int i = 0; i < argc; i++) {
    l[i] = lens ? lens[i] : strlen(argv[i]);
    total += 24 + l[i] + 2;
  }
  tether__buf_reserve(b, total);
  char *p = b->data + b->len;
  *p++ = '*';
  p += put_uint(p, (unsigned long long)argc);
  *p++ = '\r';
  *p++ = '\n';
  for (int i = 0; i < argc; i++) {
    *p++ = '$';
    p += put_uint(p, l[i]);
    *p++ = '\r';
    *p++ = '\n';
    memcpy(p, argv[i], l[i]);
    p += l[i];
    *p++ = '\r';
    *p++ = '\n';
  }
  *p = '\0';
  b->len = (size_t)(p - b->data);
}

void tether__acmd_append(tether__buf *b, int kind, int mode, const char *prefix, const char *sid, const char *json,
                         size_t jlen, int64_t expires_ms, long max_value) {
  if (kind == TETHER__ACMD_PING) {
    format(b, 1, (const char *[]){"PING"}, NULL);
    return;
  }
  size_t pl = strlen(prefix), sl = strlen(sid);
  char kbuf[256], *key = pl + sl < sizeof(kbuf) ? kbuf : tether__malloc(pl + sl + 1);
  memcpy(key, prefix, pl);
  memcpy(key + pl, sid, sl + 1);
  int64_t ttl =
      kind == TETHER__ACMD_SET || kind == TETHER__ACMD_TOUCH ? tether__ttl_seconds(expires_ms, tether_now_ms()) : 0;
  char ex[24];
  size_t exl = put_uint(ex, ttl > 0 ? (unsigned long long)ttl : 0); /* used only when positive */
  ex[exl] = '\0';
  if (kind == TETHER__ACMD_GET) {
    const char *argv[4];
    int argc = tether__redis_get_argv(key, max_value, ex, argv);
    format(b, argc, argv, NULL);
  } else if (kind == TETHER__ACMD_DESTROY || ttl <= 0) { /* an expired session is destroyed */
    format(b, 2, (const char *[]){"DEL", key}, (const size_t[]){3, pl + sl});
  } else if (kind == TETHER__ACMD_SET) {
    const char *argv[] = {"SET", key, json, "EX", ex, mode == TETHER_WRITE_CREATE ? "NX" : "XX"};
    const size_t lens[] = {3, pl + sl, jlen, 2, exl, 2};
    format(b, mode == TETHER_WRITE_UPSERT ? 5 : 6, argv, lens);
  } else {
    format(b, 3, (const char *[]){"EXPIRE", key, ex}, (const size_t[]){6, pl + sl, exl});
  }
  if (key != kbuf) free(key);
}

char *tether__acmd_format(int kind, int mode, const char *prefix, const char *sid, const char *json, size_t jlen,
                          int64_t expires_ms, long max_value, size_t *len) {
  tether__buf b = {0};
  tether__acmd_append(&b, kind, mode, prefix, sid, json, jlen, expires_ms, max_value);
  *len = b.len;
  return b.data;
}

int tether__acmd_result(int kind, int mode, const char *who, const char *prefix, const char *sid, long max_value,
                        redisReply *rep, char **json, size_t *len) {
  static const char *const names[] = {"GET", "SET", "EXPIRE", "DEL", "PING"};
  if (kind == TETHER__ACMD_GET) return tether__redis_get_reply(rep, who, prefix, sid, max_value, json, len);
  if (rep->type == REDIS_REPLY_ERROR)
    return tether__fail(TETHER_ESTORE, "%s: %s %s%.6s...: %.*s", who, names[kind], prefix, sid, (int)rep->len,
                        rep->str);
  if (kind == TETHER__ACMD_PING && (rep->type != REDIS_REPLY_STATUS || strcmp(rep->str, "PONG") != 0))
    return tether__fail(TETHER_ESTORE, "%s: PING: unexpected answer", who);
  if (kind == TETHER__ACMD_SET) return tether__redis_set_reply(rep, mode);
  return 0;
}

void tether__acall_finish(tether_store *st, int kind, uint64_t start_us, uint64_t end_us, int rc, char *json,
                          size_t len, tether_astore_get_cb get_cb, tether_astore_cb cb, void *arg) {
  static const tether_store_op ops[] = {TETHER_OP_GET, TETHER_OP_SET, TETHER_OP_TOUCH, TETHER_OP_DESTROY};
  static const tether__counter counted[] = {TETHER__C_COUNT, TETHER__C_SAVED, TETHER__C_TOUCHED, TETHER__C_DESTROYED};
  if (kind != TETHER__ACMD_PING) {
    tether__store_observe_span(st, ops[kind], start_us, end_us ? end_us : tether__mono_us(), rc);
    if (rc == 0 && kind != TETHER__ACMD_GET) tether__count(st, counted[kind]);
  }
  if (kind == TETHER__ACMD_GET)
    get_cb(arg, rc, rc == 0 ? json : NULL, rc == 0 ? len : 0);
  else
    cb(arg, rc);
  if (rc != 0 || kind != TETHER__ACMD_GET) free(json);
}
