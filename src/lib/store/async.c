/* libtether: stores on a libuv loop (include/tether/store_async.h).
 *
 * redis://: one TCP connection, commands in a FIFO. A command is formatted into the output buffer when it is
 * issued; a prepare handle writes the buffer once per loop turn, just before the loop polls, so whatever
 * the callbacks of one turn issued leaves in one write. Replies are parsed with hiredis's reader and
 * complete the commands in order. One timer watches the oldest command: past its deadline the connection
 * is failed, as is every command on it (the blocking store's rule: a command that timed out may still
 * run, the caller learns it did not answer in time). A failed connection backs off 50 ms doubling to 2 s;
 * meanwhile calls fail at once with TETHER_EUNAVAIL, then the next call connects again. AUTH and SELECT
 * are the first commands of each connection.
 *
 * Other stores: the blocking call runs on libuv's thread pool; its error message is carried back to the
 * loop's thread for the callback. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "../util.h"
#include "store_impl.h"
#include "tether/store_async.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
#define READ_BUF 65536

enum { CMD_GET, CMD_SET, CMD_TOUCH, CMD_DESTROY, CMD_PING, CMD_SETUP };
enum { C_IDLE, C_RESOLVING, C_CONNECTING, C_READY, C_CLOSING };

typedef struct acmd {
  struct acmd *next;
  int kind;
  int mode; /* CMD_SET: tether_write_mode */
  tether_store_op op;
  tether_astore_get_cb get_cb;
  tether_astore_cb cb;
  void *arg;
  uint64_t start_us, deadline_us;
  char sid[8]; /* the start of the session id, for messages */
} acmd;

typedef struct awork { /* thread-pool call */
  uv_work_t req;
  tether_astore *a;
  int kind;
  int mode; /* CMD_SET: tether_write_mode */
  char *sid, *json;
  size_t len;
  int64_t expires_ms;
  tether_astore_get_cb get_cb;
  tether_astore_cb cb;
  void *arg;
  int rc;
  char msg[512];
} awork;

struct tether_astore {
  uv_loop_t *loop;
  tether_store *st;
  int native, closing, owned; /* owned: opened from a URL, closed with the handle */
  int open_handles;           /* native: handles not yet closed */
  int works;                  /* thread-pool calls not yet completed */
  int gai_pending;            /* a name resolution whose callback has not run */
  tether__redis_conf rc;
  /* the connection */
  int state;
  uv_tcp_t *tcp; /* its own allocation: it outlives the connection it served until its close callback */
  uv_connect_t connect_req;
  uv_getaddrinfo_t gai;
  uv_timer_t timer;
  uv_prepare_t flush;
  redisReader *reader;
  tether__buf out;      /* formatted commands not yet handed to the socket */
  uv_write_t write_req; /* at most one write in progress */
  char *writing;        /* its bytes */
  int write_busy;
  acmd *head, *tail; /* in the order sent */
  char *rbuf;
  int backoff_ms;
  uint64_t retry_at_us;
  char down_msg[400];
};

/* ---- completion ---- */

static void complete(tether_astore *a, acmd *c, int rc, const redisReply *rep) {
  char *json = NULL;
  size_t len = 0;
  if (rc == 0 && rep) {
    if (c->kind == CMD_GET) {
      rc = tether__redis_get_reply(rep, "redis", a->rc.prefix, c->sid, a->rc.max_value, &json, &len);
    } else if (c->kind == CMD_PING && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") != 0) {
      rc = tether__fail(TETHER_ESTORE, "redis: PING: unexpected answer");
    } else if (rep->type == REDIS_REPLY_ERROR) {
      static const char *const names[] = {"GET", "SET", "EXPIRE", "DEL", "PING"};
      rc = tether__fail(TETHER_ESTORE, "redis: %s %s%s...: %.*s", names[c->kind], a->rc.prefix, c->sid, (int)rep->len,
                        rep->str);
    } else if (c->kind == CMD_SET) {
      rc = tether__redis_set_reply(rep, c->mode);
    }
  }
  if (c->kind != CMD_PING) tether__store_observe(a->st, c->op, c->start_us, rc);
  if (rc == 0) {
    if (c->kind == CMD_SET)
      tether__count(a->st, TETHER__C_SAVED);
    else if (c->kind == CMD_TOUCH)
      tether__count(a->st, TETHER__C_TOUCHED);
    else if (c->kind == CMD_DESTROY)
      tether__count(a->st, TETHER__C_DESTROYED);
  }
  if (c->kind == CMD_GET)
    c->get_cb(c->arg, rc, json, len);
  else
    c->cb(c->arg, rc);
}

/* ---- the connection ---- */

static void maybe_free(tether_astore *a) {
  if (!a->closing || a->open_handles > 0 || a->works > 0 || a->tcp != NULL || a->gai_pending) return;
  if (a->reader) redisReaderFree(a->reader);
  tether__buf_free(&a->out);
  free(a->rbuf);
  if (a->owned) tether_store_close(a->st);
  free(a);
}

static void tcp_closed(uv_handle_t *h) {
  tether_astore *a = h->data;
  if (a->tcp == (uv_tcp_t *)h) a->tcp = NULL;
  free(h);
  maybe_free(a);
}

/* Fails every command with rc (message already set) and drops the connection; backs off unless closing. */
static void conn_fail(tether_astore *a, int rc) {
  snprintf(a->down_msg, sizeof(a->down_msg), "%s", tether_last_error());
  if (a->tcp && a->state != C_IDLE && a->state != C_RESOLVING) {
    uv_close((uv_handle_t *)a->tcp, tcp_closed);
    /* the handle is freed in its close callback; a new connection gets a new one */
  } else if (a->tcp) {
    free(a->tcp);
    a->tcp = NULL;
  }
  if (a->state == C_RESOLVING) uv_cancel((uv_req_t *)&a->gai);
  a->state = C_IDLE;
  a->out.len = 0;
  if (a->reader) {
    redisReaderFree(a->reader);
    a->reader = NULL;
  }
  if (!a->closing) {
    a->backoff_ms =
        a->backoff_ms ? (a->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : a->backoff_ms * 2) : BACKOFF_MIN_MS;
    a->retry_at_us = tether__mono_us() + (uint64_t)a->backoff_ms * 1000;
  }
  uv_timer_stop(&a->timer);
  acmd *c = a->head;
  a->head = a->tail = NULL;
  while (c) {
    acmd *next = c->next;
    if (c->kind != CMD_SETUP) {
      tether__fail(rc, "%s", a->down_msg);
      complete(a, c, rc, NULL);
    }
    free(c);
    c = next;
  }
}

static void arm_timer(tether_astore *a);
static void on_prepare(uv_prepare_t *p);

static void on_timer(uv_timer_t *t) {
  tether_astore *a = t->data;
  uint64_t now = tether__mono_us();
  if (a->state == C_RESOLVING || a->state == C_CONNECTING) {
    conn_fail(a, tether__fail(TETHER_ETIMEDOUT, "redis %s:%d: connect: no answer within %d ms", a->rc.host, a->rc.port,
                              a->rc.connect_timeout_ms));
    return;
  }
  if (a->head && a->head->deadline_us <= now) {
    conn_fail(a, tether__fail(TETHER_ETIMEDOUT, "redis %s:%d: no answer within %d ms", a->rc.host, a->rc.port,
                              a->rc.timeout_ms));
    return;
  }
  arm_timer(a);
}

/* The timer watches the oldest command (the FIFO's head has the earliest deadline). */
static void arm_timer(tether_astore *a) {
  if (a->head == NULL || a->state != C_READY) return;
  uint64_t now = tether__mono_us();
  uint64_t ms = a->head->deadline_us > now ? (a->head->deadline_us - now + 999) / 1000 : 0;
  uv_timer_start(&a->timer, on_timer, ms, 0);
}

static void on_written(uv_write_t *req, int status) {
  tether_astore *a = req->data;
  free(a->writing);
  a->writing = NULL;
  a->write_busy = 0;
  if (status < 0 && status != UV_ECANCELED && a->state == C_READY) {
    conn_fail(a, tether__fail(TETHER_EUNAVAIL, "redis %s:%d: write: %s", a->rc.host, a->rc.port, uv_strerror(status)));
    return;
  }
  if (a->out.len && a->state == C_READY) uv_prepare_start(&a->flush, on_prepare);
}

static void flush_out(tether_astore *a) {
  if (a->state != C_READY || a->write_busy || a->out.len == 0) return;
  uv_buf_t b = uv_buf_init(a->out.data, (unsigned)a->out.len);
  int n = uv_try_write((uv_stream_t *)a->tcp, &b, 1);
  if (n < 0 && n != UV_EAGAIN) {
    conn_fail(a, tether__fail(TETHER_EUNAVAIL, "redis %s:%d: write: %s", a->rc.host, a->rc.port, uv_strerror(n)));
    return;
  }
  size_t done = n > 0 ? (size_t)n : 0;
  if (done == a->out.len) {
    a->out.len = 0;
    return;
  }
  /* the rest waits in the socket's queue: hand libuv a copy and keep collecting */
  size_t rest = a->out.len - done;
  a->writing = tether__malloc(rest);
  memcpy(a->writing, a->out.data + done, rest);
  a->out.len = 0;
  uv_buf_t wb = uv_buf_init(a->writing, (unsigned)rest);
  a->write_req.data = a;
  a->write_busy = 1;
  int rc = uv_write(&a->write_req, (uv_stream_t *)a->tcp, &wb, 1, on_written);
  if (rc < 0) {
    free(a->writing);
    a->writing = NULL;
    a->write_busy = 0;
    conn_fail(a, tether__fail(TETHER_EUNAVAIL, "redis %s:%d: write: %s", a->rc.host, a->rc.port, uv_strerror(rc)));
  }
}

static void on_prepare(uv_prepare_t *p) {
  tether_astore *a = p->data;
  uv_prepare_stop(p);
  flush_out(a);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  tether_astore *a = h->data;
  *buf = uv_buf_init(a->rbuf, READ_BUF);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  tether_astore *a = s->data;
  if (n == 0) return;
  if (n < 0) {
    if (a->head == NULL) { /* an idle connection closed (server timeout, proxy, restart): not an outage */
      int backoff = a->backoff_ms;
      conn_fail(a, tether__fail(TETHER_EUNAVAIL, "redis %s:%d: idle connection closed", a->rc.host, a->rc.port));
      a->backoff_ms = backoff;
      a->retry_at_us = 0;
      return;
    }
    conn_fail(a, tether__fail(TETHER_EUNAVAIL, "redis %s:%d: %s", a->rc.host, a->rc.port,
                              n == UV_EOF ? "the server closed the connection" : uv_strerror((int)n)));
    return;
  }
  if (redisReaderFeed(a->reader, a->rbuf, (size_t)n) != REDIS_OK) {
    conn_fail(
        a, tether__fail(TETHER_EUNAVAIL, "redis %s:%d: protocol error: %s", a->rc.host, a->rc.port, a->reader->errstr));
    return;
  }
  for (;;) {
    void *r = NULL;
    if (redisReaderGetReply(a->reader, &r) != REDIS_OK) {
      conn_fail(a, tether__fail(TETHER_EUNAVAIL, "redis %s:%d: protocol error: %s", a->rc.host, a->rc.port,
                                a->reader->errstr));
      return;
    }
    if (r == NULL) break;
    redisReply *rep = r;
    acmd *c = a->head;
    if (c == NULL) {
      freeReplyObject(rep);
      conn_fail(a, tether__fail(TETHER_EUNAVAIL, "redis %s:%d: a reply nobody asked for", a->rc.host, a->rc.port));
      return;
    }
    a->head = c->next;
    if (a->head == NULL) a->tail = NULL;
    if (c->kind == CMD_SETUP) {
      int bad = rep->type == REDIS_REPLY_ERROR;
      char why[256];
      if (bad) snprintf(why, sizeof(why), "%.*s", (int)rep->len, rep->str);
      freeReplyObject(rep);
      free(c);
      if (bad) {
        conn_fail(a, tether__fail(TETHER_EUNAVAIL, "redis %s:%d: connection setup: %s", a->rc.host, a->rc.port, why));
        return;
      }
      continue;
    }
    a->backoff_ms = 0;
    complete(a, c, 0, rep);
    freeReplyObject(rep);
    free(c);
    if (a->state != C_READY) return; /* the callback closed the handle */
  }
  if (a->head)
    arm_timer(a);
  else
    uv_timer_stop(&a->timer);
}

static void on_connect(uv_connect_t *req, int status) {
  tether_astore *a = req->data;
  if (status == UV_ECANCELED || a->state != C_CONNECTING) return;
  if (status < 0) {
    conn_fail(a,
              tether__fail(TETHER_EUNAVAIL, "redis %s:%d: connect: %s", a->rc.host, a->rc.port, uv_strerror(status)));
    return;
  }
  a->state = C_READY;
  uv_tcp_nodelay(a->tcp, 1);
  uv_read_start((uv_stream_t *)a->tcp, on_alloc, on_read);
  /* commands issued while connecting now get their deadlines from here */
  uint64_t deadline = tether__mono_us() + (uint64_t)a->rc.timeout_ms * 1000;
  for (acmd *c = a->head; c; c = c->next)
    if (c->deadline_us < deadline) c->deadline_us = deadline;
  flush_out(a);
  arm_timer(a);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  tether_astore *a = req->data;
  a->gai_pending = 0;
  if (status == UV_ECANCELED || status == UV_EAI_CANCELED || a->state != C_RESOLVING) {
    if (res) uv_freeaddrinfo(res);
    maybe_free(a);
    return;
  }
  if (status < 0 || res == NULL) {
    if (res) uv_freeaddrinfo(res);
    conn_fail(a, tether__fail(TETHER_EUNAVAIL, "redis %s:%d: resolving the host: %s", a->rc.host, a->rc.port,
                              uv_strerror(status)));
    return;
  }
  a->tcp = tether__calloc(1, sizeof(*a->tcp));
  uv_tcp_init(a->loop, a->tcp);
  a->tcp->data = a;
  a->state = C_CONNECTING;
  a->connect_req.data = a;
  int rc = uv_tcp_connect(&a->connect_req, a->tcp, res->ai_addr, on_connect);
  uv_freeaddrinfo(res);
  if (rc < 0)
    conn_fail(a, tether__fail(TETHER_EUNAVAIL, "redis %s:%d: connect: %s", a->rc.host, a->rc.port, uv_strerror(rc)));
}

static void push(tether_astore *a, acmd *c) {
  c->next = NULL;
  if (a->tail)
    a->tail->next = c;
  else
    a->head = c;
  a->tail = c;
}

static void append_command(tether_astore *a, int argc, const char **argv, const size_t *lens) {
  char *cmd = NULL;
  int n = redisFormatCommandArgv(&cmd, argc, argv, lens);
  if (n > 0) tether__buf_append(&a->out, cmd, (size_t)n);
  free(cmd);
}

static void setup_command(tether_astore *a, int argc, const char **argv) {
  acmd *c = tether__calloc(1, sizeof(*c));
  c->kind = CMD_SETUP;
  c->deadline_us = tether__mono_us() + (uint64_t)(a->rc.connect_timeout_ms + a->rc.timeout_ms) * 1000;
  push(a, c);
  append_command(a, argc, argv, NULL);
}

static int conn_start(tether_astore *a) {
  a->reader = redisReaderCreate();
  a->out.len = 0;
  if (a->rc.password) {
    if (a->rc.user && *a->rc.user)
      setup_command(a, 3, (const char *[]){"AUTH", a->rc.user, a->rc.password});
    else
      setup_command(a, 2, (const char *[]){"AUTH", a->rc.password});
  }
  if (a->rc.db) {
    char db[16];
    snprintf(db, sizeof(db), "%d", a->rc.db);
    setup_command(a, 2, (const char *[]){"SELECT", db});
  }
  char port[16];
  snprintf(port, sizeof(port), "%d", a->rc.port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  a->gai.data = a;
  a->state = C_RESOLVING;
  int rc = uv_getaddrinfo(a->loop, &a->gai, on_resolved, a->rc.host, port, &hints);
  if (rc < 0) {
    int code =
        tether__fail(TETHER_EUNAVAIL, "redis %s:%d: resolving the host: %s", a->rc.host, a->rc.port, uv_strerror(rc));
    a->state = C_IDLE;
    conn_fail(a, code);
    return code;
  }
  a->gai_pending = 1;
  uv_timer_start(&a->timer, on_timer, (uint64_t)a->rc.connect_timeout_ms, 0);
  return 0;
}

/* Queues one command of a caller. */
static int issue(tether_astore *a, int kind, tether_store_op op, const char *sid, int argc, const char **argv,
                 const size_t *lens, tether_astore_get_cb get_cb, tether_astore_cb cb, void *arg, int mode) {
  if (a->state == C_IDLE) {
    int rc = 0;
    if (a->gai_pending)
      rc = tether__fail(TETHER_EUNAVAIL, "%s", a->down_msg);
    else if (a->backoff_ms && tether__mono_us() < a->retry_at_us)
      rc = tether__fail(TETHER_EUNAVAIL, "%s (retrying in %d ms)", a->down_msg, a->backoff_ms);
    else
      rc = conn_start(a);
    if (rc < 0) {
      if (kind != CMD_PING)
        tether__store_observe(a->st, op, tether__mono_us(), rc); /* counted as the blocking store does */
      return rc;
    }
  }
  acmd *c = tether__malloc(sizeof(*c));
  c->kind = kind;
  c->mode = mode;
  c->op = op;
  c->get_cb = get_cb;
  c->cb = cb;
  c->arg = arg;
  c->start_us = tether__mono_us();
  c->deadline_us = c->start_us + (uint64_t)a->rc.timeout_ms * 1000;
  snprintf(c->sid, sizeof(c->sid), "%.6s", sid);
  int was_empty = a->head == NULL;
  push(a, c);
  append_command(a, argc, argv, lens);
  if (a->state == C_READY) {
    if (!uv_is_active((uv_handle_t *)&a->flush)) uv_prepare_start(&a->flush, on_prepare);
    if (was_empty) arm_timer(a);
  }
  return 0;
}

/* ---- thread-pool calls (every other store) ---- */

static void work_run(uv_work_t *req) {
  awork *w = req->data;
  char *json = NULL;
  size_t len = 0;
  switch (w->kind) {
  case CMD_GET:
    w->rc = tether_store_get(w->a->st, w->sid, &json, &len);
    w->json = json;
    w->len = len;
    break;
  case CMD_SET:
    w->rc = tether_store_write(w->a->st, w->sid, w->json, w->len, w->expires_ms, (tether_write_mode)w->mode);
    break;
  case CMD_TOUCH:
    w->rc = tether_store_touch(w->a->st, w->sid, w->json, w->len, w->expires_ms);
    break;
  case CMD_PING:
    w->rc = tether_store_ping(w->a->st);
    break;
  default:
    w->rc = tether_store_destroy(w->a->st, w->sid);
    break;
  }
  if (w->rc < 0) snprintf(w->msg, sizeof(w->msg), "%s", tether_last_error());
}

static void work_done(uv_work_t *req, int status) {
  awork *w = req->data;
  tether_astore *a = w->a;
  if (status == UV_ECANCELED)
    w->rc = tether__fail(TETHER_EUNAVAIL, "store closed");
  else if (w->rc < 0)
    tether__fail(w->rc, "%s", w->msg);
  if (w->kind == CMD_GET) {
    w->get_cb(w->arg, w->rc, w->rc == 0 ? w->json : NULL, w->rc == 0 ? w->len : 0);
    if (w->rc != 0) free(w->json);
  } else {
    free(w->json);
    w->cb(w->arg, w->rc);
  }
  free(w->sid);
  free(w);
  a->works--;
  maybe_free(a);
}

static int work_queue(tether_astore *a, int kind, const char *sid, const char *json, size_t len, int64_t expires_ms,
                      tether_astore_get_cb get_cb, tether_astore_cb cb, void *arg, int mode) {
  awork *w = tether__calloc(1, sizeof(*w));
  w->a = a;
  w->kind = kind;
  w->mode = mode;
  w->sid = tether__strdup(sid);
  if (json) {
    w->json = tether__malloc(len + 1);
    memcpy(w->json, json, len);
    w->json[len] = '\0';
  }
  w->len = len;
  w->expires_ms = expires_ms;
  w->get_cb = get_cb;
  w->cb = cb;
  w->arg = arg;
  w->req.data = w;
  int rc = uv_queue_work(a->loop, &w->req, work_run, work_done);
  if (rc < 0) {
    free(w->sid);
    free(w->json);
    free(w);
    return tether__fail(TETHER_EUNAVAIL, "queueing a store call: %s", uv_strerror(rc));
  }
  a->works++;
  return 0;
}

/* ---- the API ---- */

int tether_astore_open(uv_loop_t *loop, const char *url, tether_astore **out) {
  *out = NULL;
  if (loop == NULL) return tether__fail(TETHER_EINVAL, "no loop");
  tether_store *st;
  int rc = tether_store_open(url, &st);
  if (rc < 0) return rc;
  rc = tether_astore_wrap(loop, st, out);
  if (rc == 0)
    (*out)->owned = 1;
  else
    tether_store_close(st);
  return rc;
}

int tether_astore_wrap(uv_loop_t *loop, tether_store *st, tether_astore **out) {
  *out = NULL;
  if (loop == NULL || st == NULL) return tether__fail(TETHER_EINVAL, "no loop or no store");
  tether_astore *a = tether__calloc(1, sizeof(*a));
  a->loop = loop;
  a->st = st;
  if (tether__redis_conf_get(st, &a->rc) == 0) {
    a->native = 1;
    a->rbuf = tether__malloc(READ_BUF);
    uv_timer_init(loop, &a->timer);
    uv_prepare_init(loop, &a->flush);
    a->timer.data = a->flush.data = a;
    a->open_handles = 2;
  }
  *out = a;
  return 0;
}

static void handle_closed(uv_handle_t *h) {
  tether_astore *a = h->data;
  a->open_handles--;
  maybe_free(a);
}

void tether_astore_close(tether_astore *a) {
  if (a == NULL || a->closing) return;
  a->closing = 1;
  if (a->native) {
    if (a->state != C_IDLE || a->head) conn_fail(a, tether__fail(TETHER_EUNAVAIL, "store closed"));
    uv_close((uv_handle_t *)&a->timer, handle_closed);
    uv_close((uv_handle_t *)&a->flush, handle_closed);
  } else {
    maybe_free(a);
  }
}

static int check(tether_astore *a, const char *sid) {
  if (a == NULL || a->closing) return tether__fail(TETHER_EINVAL, "store closed");
  return tether__store_check_sid(sid);
}

int tether_astore_get(tether_astore *a, const char *sid, tether_astore_get_cb cb, void *arg) {
  int rc = check(a, sid);
  if (rc < 0) return rc;
  if (!a->native) return work_queue(a, CMD_GET, sid, NULL, 0, 0, cb, NULL, arg, 0);
  char *key = tether__asprintf("%s%s", a->rc.prefix, sid), end[24];
  const char *argv[4];
  int argc = tether__redis_get_argv(key, a->rc.max_value, end, argv);
  rc = issue(a, CMD_GET, TETHER_OP_GET, sid, argc, argv, NULL, cb, NULL, arg, 0);
  free(key);
  return rc;
}

static int del(tether_astore *a, int kind, tether_store_op op, const char *sid, tether_astore_cb cb, void *arg) {
  char *key = tether__asprintf("%s%s", a->rc.prefix, sid);
  const char *argv[] = {"DEL", key};
  int rc = issue(a, kind, op, sid, 2, argv, NULL, NULL, cb, arg, 0);
  free(key);
  return rc;
}

/* SET key json EX ttl [NX|XX], or EXPIRE key ttl (touch); an expiry in the past deletes (connect-redis's
 * rule). */
static int write_ttl(tether_astore *a, int kind, tether_store_op op, const char *sid, const char *json, size_t len,
                     int64_t expires_ms, int mode, tether_astore_cb cb, void *arg) {
  int rc = check(a, sid);
  if (rc < 0) return rc;
  if (mode != TETHER_WRITE_UPSERT && mode != TETHER_WRITE_CREATE && mode != TETHER_WRITE_UPDATE)
    return tether__fail(TETHER_EINVAL, "store write: unknown mode %d", mode);
  if (!a->native) return work_queue(a, kind, sid, json, len, expires_ms, NULL, cb, arg, mode);
  int64_t ttl = tether__ttl_seconds(expires_ms, tether_now_ms());
  if (ttl <= 0) return del(a, kind, op, sid, cb, arg);
  char ex[24];
  snprintf(ex, sizeof(ex), "%lld", (long long)ttl);
  char *key = tether__asprintf("%s%s", a->rc.prefix, sid);
  if (kind == CMD_SET) {
    const char *argv[] = {"SET", key, json, "EX", ex, mode == TETHER_WRITE_CREATE ? "NX" : "XX"};
    const size_t lens[] = {3, strlen(key), len, 2, strlen(ex), 2};
    rc = issue(a, kind, op, sid, mode == TETHER_WRITE_UPSERT ? 5 : 6, argv, lens, NULL, cb, arg, mode);
  } else {
    const char *argv[] = {"EXPIRE", key, ex};
    rc = issue(a, kind, op, sid, 3, argv, NULL, NULL, cb, arg, mode);
  }
  free(key);
  return rc;
}

int tether_astore_set(tether_astore *a, const char *sid, const char *json, size_t len, int64_t expires_ms,
                      tether_astore_cb cb, void *arg) {
  return write_ttl(a, CMD_SET, TETHER_OP_SET, sid, json, len, expires_ms, TETHER_WRITE_UPSERT, cb, arg);
}

int tether_astore_write(tether_astore *a, const char *sid, const char *json, size_t len, int64_t expires_ms,
                        tether_write_mode mode, tether_astore_cb cb, void *arg) {
  return write_ttl(a, CMD_SET, TETHER_OP_SET, sid, json, len, expires_ms, (int)mode, cb, arg);
}

int tether_astore_touch(tether_astore *a, const char *sid, const char *json, size_t len, int64_t expires_ms,
                        tether_astore_cb cb, void *arg) {
  return write_ttl(a, CMD_TOUCH, TETHER_OP_TOUCH, sid, json, len, expires_ms, TETHER_WRITE_UPSERT, cb, arg);
}

int tether_astore_destroy(tether_astore *a, const char *sid, tether_astore_cb cb, void *arg) {
  int rc = check(a, sid);
  if (rc < 0) return rc;
  if (!a->native) return work_queue(a, CMD_DESTROY, sid, NULL, 0, 0, NULL, cb, arg, 0);
  return del(a, CMD_DESTROY, TETHER_OP_DESTROY, sid, cb, arg);
}

int tether_astore_ping(tether_astore *a, tether_astore_cb cb, void *arg) {
  if (a == NULL || a->closing) return tether__fail(TETHER_EINVAL, "store closed");
  if (!a->native) return work_queue(a, CMD_PING, "ping", NULL, 0, 0, NULL, cb, arg, 0);
  const char *argv[] = {"PING"};
  return issue(a, CMD_PING, TETHER_OP_GET, "ping", 1, argv, NULL, NULL, cb, arg, 0);
}

tether_store *tether_astore_store(tether_astore *a) { return a->st; }

int tether_astore_native(const tether_astore *a) { return a->native; }
