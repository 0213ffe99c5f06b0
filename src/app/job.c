/* tether-app: a request waiting while the session store works: its answer, the daemon's wake-up when the
 * store is done, and its end when the connection went away first. */
#include <stdio.h>
#include <stdlib.h>

#include "app.h"

void job_fail(request *rq, int rc) {
  rq->err = rc;
  snprintf(rq->detail, sizeof(rq->detail), "%s", tether_last_error());
  utf8_clip(rq->detail);
}

void request_free(request *rq) {
  tether_session_free(rq->s);
  json_decref(rq->answer);
  free(rq->html);
  free(rq->json);
  free(rq->set_cookie);
  free(rq->body);
  free(rq);
}

void unlink_waiting(request *rq) {
  rq->w->n_waiting--;
  if (rq->sprev)
    rq->sprev->snext = rq->snext;
  else if (rq->w->waiting == rq)
    rq->w->waiting = rq->snext;
  if (rq->snext) rq->snext->sprev = rq->sprev;
  rq->sprev = rq->snext = NULL;
}

/* First thing in every store callback: whether the request still wants the result. One whose connection
 * is gone is freed here; one already answered (stopping) is freed with its connection. */
int job_enter(request *rq) {
  rq->pending = 0;
  if (rq->orphan) {
    request_free(rq);
    return 0;
  }
  return !rq->abandoned;
}

/* The answer is ready: hand the connection back to the daemon (or answer at once, still in the handler). */
void job_done(request *rq) {
  if (rq->s) {
    tether_session_free(rq->s);
    rq->s = NULL;
  }
  rq->ready = 1;
  if (rq->waiting && !rq->in_handler) {
    rq->waiting = 0;
    unlink_waiting(rq);
    if (!uv_is_active((uv_handle_t *)&rq->w->kick)) uv_idle_start(&rq->w->kick, rq->w->on_kick);
  }
}

enum MHD_Result job_answer(request *rq) {
  struct MHD_Connection *conn = rq->conn;
  enum MHD_Result res;
  if (rq->err < 0) {
    json_decref(rq->answer);
    res = store_error(conn, rq->route, rq->err, rq->detail);
  } else if (rq->json) {
    res = send_json_text(conn, rq->route, rq->status, rq->json, rq->set_cookie);
    rq->json = NULL;
  } else if (rq->html) {
    res = send_text(conn, rq->route, rq->status, "text/html; charset=utf-8", rq->html, rq->set_cookie, rq->location);
  } else {
    res = send_json(conn, rq->route, rq->status, rq->answer, rq->set_cookie);
  }
  rq->answer = NULL;
  free(rq->html);
  free(rq->json);
  free(rq->set_cookie);
  rq->html = rq->json = rq->set_cookie = NULL;
  return res;
}

static void on_committed(void *arg, int rc, char *set_cookie) {
  request *rq = arg;
  if (!job_enter(rq)) {
    free(set_cookie);
    return;
  }
  rq->set_cookie = set_cookie;
  if (rc < 0) job_fail(rq, rc);
  job_done(rq);
}

void job_commit(request *rq) {
  rq->pending = 1;
  int rc = tether_session_commit_async(rq->s, rq->w->astore, on_committed, rq);
  if (rc < 0) {
    rq->pending = 0;
    job_fail(rq, rc);
    job_done(rq);
  }
}
