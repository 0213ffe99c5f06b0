/* libtether: stores on a libuv loop (include/tether/store_async.h).
 *
 * redis://: one pipelined connection (async_conn.c). redis-cluster://: one per node (async_cluster.c).
 * Other stores: the blocking call runs on libuv's thread pool; its error message is carried back to the
 * loop's thread for the callback. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "../util.h"
#include "async_conn.h"
#include "store_impl.h"
#include "tether/store_async.h"

typedef struct awork { /* thread-pool call */
  uv_work_t req;
  tether_astore *a;
  int kind;
  int mode; /* TETHER__ACMD_SET: tether_write_mode */
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
  int works;                  /* thread-pool calls not yet completed */
  tether__redis_conf rc;
  tether__aconn *conn;  /* redis://, until released */
  tether__acluster *cl; /* redis-cluster://, until released */
};

typedef struct rcall { /* a redis:// call on the connection */
  tether__acmd base;
  tether_astore *a;
  int kind, mode;
  tether_astore_get_cb get_cb;
  tether_astore_cb cb;
  void *arg;
  char sid[8]; /* the start of the session id, for messages */
} rcall;

static void maybe_free(tether_astore *a) {
  if (!a->closing || a->works > 0 || a->conn != NULL || a->cl != NULL) return;
  if (a->owned) tether_store_close(a->st);
  free(a);
}

static void conn_freed(void *owner) {
  tether_astore *a = owner;
  a->conn = NULL;
  maybe_free(a);
}

static void cluster_freed(void *owner) {
  tether_astore *a = owner;
  a->cl = NULL;
  maybe_free(a);
}

/* ---- redis:// ---- */

static void rcmd_done(tether__acmd *base, int rc, redisReply *rep) {
  rcall *c = (rcall *)base;
  tether_astore *a = c->a;
  char *json = NULL;
  size_t len = 0;
  if (rc == 0)
    rc = tether__acmd_result(c->kind, c->mode, "redis", a->rc.prefix, c->sid, a->rc.max_value, rep, &json, &len);
  tether__acall_finish(a->st, c->kind, c->base.sent_us, c->base.done_us, rc, json, len, c->get_cb, c->cb, c->arg);
  free(c);
}

static int issue(tether_astore *a, int kind, int mode, const char *sid, const char *json, size_t len,
                 int64_t expires_ms, tether_astore_get_cb get_cb, tether_astore_cb cb, void *arg) {
  rcall *c = tether__malloc(sizeof(*c));
  *c = (rcall){.base.done = rcmd_done, .a = a, .kind = kind, .mode = mode, .get_cb = get_cb, .cb = cb, .arg = arg};
  size_t sl = strnlen(sid, sizeof(c->sid) - 2);
  memcpy(c->sid, sid, sl); /* the start, for messages; the rest of c->sid is zero */
  int rc =
      tether__aconn_send_call(a->conn, &c->base, kind, mode, a->rc.prefix, sid, json, len, expires_ms, a->rc.max_value);
  if (rc < 0) {
    free(c);
    if (kind != TETHER__ACMD_PING) /* counted as the blocking store does */
      tether__store_observe(a->st,
                            kind == TETHER__ACMD_GET     ? TETHER_OP_GET
                            : kind == TETHER__ACMD_SET   ? TETHER_OP_SET
                            : kind == TETHER__ACMD_TOUCH ? TETHER_OP_TOUCH
                                                         : TETHER_OP_DESTROY,
                            tether__mono_us(), rc);
  }
  return rc;
}

/* ---- thread-pool calls (every other store) ---- */

static void work_run(uv_work_t *req) {
  awork *w = req->data;
  char *json = NULL;
  size_t len = 0;
  switch (w->kind) {
  case TETHER__ACMD_GET:
    w->rc = tether_store_get(w->a->st, w->sid, &json, &len);
    w->json = json;
    w->len = len;
    break;
  case TETHER__ACMD_SET:
    w->rc = tether_store_write(w->a->st, w->sid, w->json, w->len, w->expires_ms, (tether_write_mode)w->mode);
    break;
  case TETHER__ACMD_TOUCH:
    w->rc = tether_store_touch(w->a->st, w->sid, w->json, w->len, w->expires_ms);
    break;
  case TETHER__ACMD_PING:
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
  if (w->kind == TETHER__ACMD_GET) {
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
    const tether__aconn_conf cf = {.who = "redis",
                                   .host = a->rc.host,
                                   .port = a->rc.port,
                                   .user = a->rc.user,
                                   .password = a->rc.password,
                                   .db = a->rc.db,
                                   .timeout_ms = a->rc.timeout_ms,
                                   .connect_timeout_ms = a->rc.connect_timeout_ms};
    a->conn = tether__aconn_new(loop, &cf, conn_freed, a);
  } else if ((a->cl = tether__acluster_new(loop, st, cluster_freed, a)) != NULL) {
    a->native = 1;
  }
  *out = a;
  return 0;
}

void tether_astore_close(tether_astore *a) {
  if (a == NULL || a->closing) return;
  a->closing = 1;
  if (a->conn) tether__aconn_close(a->conn);
  if (a->cl) tether__acluster_close(a->cl);
  maybe_free(a);
}

/* One call: on the thread pool, the cluster client or the connection. */
static int call(tether_astore *a, int kind, int mode, const char *sid, const char *json, size_t len, int64_t expires_ms,
                tether_astore_get_cb get_cb, tether_astore_cb cb, void *arg) {
  if (a == NULL || a->closing) return tether__fail(TETHER_EINVAL, "store closed");
  if (kind != TETHER__ACMD_PING) {
    int rc = tether__store_check_sid(sid);
    if (rc < 0) return rc;
  }
  if (mode != TETHER_WRITE_UPSERT && mode != TETHER_WRITE_CREATE && mode != TETHER_WRITE_UPDATE)
    return tether__fail(TETHER_EINVAL, "store write: unknown mode %d", mode);
  if (!a->native) return work_queue(a, kind, sid, json, len, expires_ms, get_cb, cb, arg, mode);
  if (a->cl) return tether__acluster_call(a->cl, kind, mode, sid, json, len, expires_ms, get_cb, cb, arg);
  return issue(a, kind, mode, sid, json, len, expires_ms, get_cb, cb, arg);
}

int tether_astore_get(tether_astore *a, const char *sid, tether_astore_get_cb cb, void *arg) {
  return call(a, TETHER__ACMD_GET, TETHER_WRITE_UPSERT, sid, NULL, 0, 0, cb, NULL, arg);
}

int tether_astore_set(tether_astore *a, const char *sid, const char *json, size_t len, int64_t expires_ms,
                      tether_astore_cb cb, void *arg) {
  return call(a, TETHER__ACMD_SET, TETHER_WRITE_UPSERT, sid, json, len, expires_ms, NULL, cb, arg);
}

int tether_astore_write(tether_astore *a, const char *sid, const char *json, size_t len, int64_t expires_ms,
                        tether_write_mode mode, tether_astore_cb cb, void *arg) {
  return call(a, TETHER__ACMD_SET, (int)mode, sid, json, len, expires_ms, NULL, cb, arg);
}

int tether_astore_touch(tether_astore *a, const char *sid, const char *json, size_t len, int64_t expires_ms,
                        tether_astore_cb cb, void *arg) {
  return call(a, TETHER__ACMD_TOUCH, TETHER_WRITE_UPSERT, sid, json, len, expires_ms, NULL, cb, arg);
}

int tether_astore_destroy(tether_astore *a, const char *sid, tether_astore_cb cb, void *arg) {
  return call(a, TETHER__ACMD_DESTROY, TETHER_WRITE_UPSERT, sid, NULL, 0, 0, NULL, cb, arg);
}

int tether_astore_ping(tether_astore *a, tether_astore_cb cb, void *arg) {
  return call(a, TETHER__ACMD_PING, TETHER_WRITE_UPSERT, "ping", NULL, 0, 0, NULL, cb, arg);
}

tether_store *tether_astore_store(tether_astore *a) { return a->st; }

int tether_astore_native(const tether_astore *a) { return a->native; }
