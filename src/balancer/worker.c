/* The balancer's worker threads: a libuv loop each, SO_REUSEPORT listeners, reload and graceful stop. */
#include "worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../lib/util.h"

const double tether__latency_bounds_s[TETHER__LATENCY_NB] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                           0.1,    0.25,  0.5,    1,     2.5,  5,    10};

int tether__listen_socket(const tether__addr *a, int backlog) {
  (void)backlog;
  int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
      bind(fd, (const struct sockaddr *)&a->sa, a->len) < 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  return fd;
}

static void rebuild_balance(tether__worker *w) {
  if (w->bs) {
    for (size_t k = 0; w->bs[k].current; k++) free(w->bs[k].current);
    free(w->bs);
  }
  size_t n = w->rt->cf->nupstreams;
  w->bs = tether__calloc(n + 1, sizeof(*w->bs)); /* the last one stays zero: the end marker */
  for (size_t k = 0; k < n; k++) {
    w->bs[k].current = tether__calloc(w->rt->cf->upstreams[k].nservers + 1, sizeof(int));
    w->bs[k].rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)(w->id + 1) * 0xbf58476d1ce4e5b9ull) ^ k;
  }
}

#define ACCEPT_RETRY_MS 1000 /* out of descriptors: accept again after this, or when a client of ours closes */
#define ACCEPT_BATCH 64     /* accepts per readiness, so one busy listener does not starve the loop */

static void on_acceptable(uv_poll_t *p, int status, int events);

static void accept_resume(uv_timer_t *t) {
  tether__worker *w = t->data;
  if (w->stopping) return;
  for (int i = 0; i < w->nlisteners; i++) uv_poll_start(&w->listeners[i], UV_READABLE, on_acceptable);
}

/* A descriptor of ours was freed: try again now. Between such moments a paused worker stays off the
 * descriptor table, so the admin listener's reserve (given up on another thread) is not taken from it. */
void tether__worker_fd_freed(tether__worker *w) {
  if (!w->accept_paused || w->stopping) return;
  uv_timer_stop(&w->accept_timer);
  accept_resume(&w->accept_timer);
}

/* Out of descriptors (EMFILE, ENFILE) or kernel memory: stop watching the listeners for a while. Clients
 * wait in the backlog until a descriptor is free. libuv's answer (its "EMFILE trick") accepts and closes
 * whatever is pending: a reset for every client that was waiting. */
static void accept_pause(tether__worker *w, int err) {
  for (int i = 0; i < w->nlisteners; i++) uv_poll_stop(&w->listeners[i]);
  uv_timer_start(&w->accept_timer, accept_resume, ACCEPT_RETRY_MS, 0);
  if (!w->accept_paused)
    tether__log(TETHER_LOG_WARN, "worker %d: accept: %s: paused, new clients wait in the backlog (see "
                "worker_rlimit_nofile)", w->id, strerror(err));
  w->accept_paused = 1;
}

static void on_acceptable(uv_poll_t *p, int status, int events) {
  (void)events;
  tether__worker *w = p->data;
  uv_os_fd_t lfd;
  if (status < 0 || w->stopping || uv_fileno((uv_handle_t *)p, &lfd) < 0) return;
  for (int i = 0; i < ACCEPT_BATCH; i++) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) accept_pause(w, errno);
      return;
    }
    if (w->accept_paused) tether__log(TETHER_LOG_INFO, "worker %d: accepting again", w->id);
    w->accept_paused = 0;
    tether__client_accept(w, fd);
  }
}

static void flush_cb(uv_timer_t *t) { tether__access_log_flush(t->data); }

static void grace_over(uv_timer_t *t) {
  tether__worker *w = t->data;
  tether__worker_close_all(w);
  uv_close((uv_handle_t *)&w->stop_timer, NULL);
}

static void begin_stop(tether__worker *w) {
  if (w->stopping) return;
  w->stopping = 1;
  for (int i = 0; i < w->nlisteners; i++) {
    uv_close((uv_handle_t *)&w->listeners[i], NULL);
    close(w->listen_fds[i]);
  }
  uv_close((uv_handle_t *)&w->accept_timer, NULL);
  tether__worker_close_idle(w);
  uv_timer_init(&w->loop, &w->stop_timer);
  w->stop_timer.data = w;
  uv_timer_start(&w->stop_timer, grace_over, (uint64_t)w->rt->cf->shutdown_grace_ms, 0);
  uv_unref((uv_handle_t *)&w->stop_timer); /* in-flight requests keep the loop alive, not the timer */
  uv_close((uv_handle_t *)&w->wakeup, NULL);
  tether__access_log_flush(w);
  uv_close((uv_handle_t *)&w->flush_timer, NULL);
}

static void on_wakeup(uv_async_t *a) {
  tether__worker *w = a->data;
  tether__runtime *next = atomic_exchange(&w->next_rt, NULL);
  if (next) {
    tether__runtime *old = w->rt;
    w->rt = next;
    rebuild_balance(w);
    tether__runtime_unref(old);
  }
  if (atomic_load(&w->stop)) begin_stop(w);
}

static void worker_main(void *arg) {
  tether__worker *w = arg;
  uv_run(&w->loop, UV_RUN_DEFAULT);
  /* close whatever is left (a grace timer that never fired) and run the close callbacks */
  if (!uv_is_closing((uv_handle_t *)&w->stop_timer) && w->stopping) uv_close((uv_handle_t *)&w->stop_timer, NULL);
  uv_run(&w->loop, UV_RUN_DEFAULT);
}

int tether__workers_start(tether__worker *ws, int n, tether__runtime *rt) {
  for (int i = 0; i < n; i++) {
    tether__worker *w = &ws[i];
    w->id = i;
    w->claims = tether_jwt_claims_new();
    uv_loop_init(&w->loop);
    uv_async_init(&w->loop, &w->wakeup, on_wakeup);
    w->wakeup.data = w;
    uv_timer_init(&w->loop, &w->flush_timer);
    w->flush_timer.data = w;
    uv_timer_start(&w->flush_timer, flush_cb, 1000, 1000);
    uv_unref((uv_handle_t *)&w->flush_timer);
    tether__runtime_ref(rt);
    w->rt = rt;
    rebuild_balance(w);
    uv_timer_init(&w->loop, &w->accept_timer);
    w->accept_timer.data = w;
    for (int k = 0; k < w->nlisteners; k++) {
      int rc = listen(w->listen_fds[k], 4096) < 0 ? -errno : 0;
      if (rc == 0) rc = uv_poll_init(&w->loop, &w->listeners[k], w->listen_fds[k]);
      w->listeners[k].data = w;
      if (rc == 0) rc = uv_poll_start(&w->listeners[k], UV_READABLE, on_acceptable);
      if (rc < 0) {
        tether__log(TETHER_LOG_ERROR, "worker %d: listen: %s", i, uv_strerror(rc));
        return rc;
      }
    }
  }
  for (int i = 0; i < n; i++) {
    int rc = uv_thread_create(&ws[i].thread, worker_main, &ws[i]);
    if (rc < 0) return rc;
  }
  return 0;
}

void tether__workers_reload(tether__worker *ws, int n, tether__runtime *rt) {
  for (int i = 0; i < n; i++) {
    tether__runtime_ref(rt);
    tether__runtime *prev = atomic_exchange(&ws[i].next_rt, rt);
    if (prev) tether__runtime_unref(prev);
    uv_async_send(&ws[i].wakeup);
  }
}

void tether__workers_stop(tether__worker *ws, int n) {
  for (int i = 0; i < n; i++) {
    atomic_store(&ws[i].stop, 1);
    uv_async_send(&ws[i].wakeup);
  }
  for (int i = 0; i < n; i++) {
    uv_thread_join(&ws[i].thread);
    tether__worker *w = &ws[i];
    tether__runtime *pending = atomic_exchange(&w->next_rt, NULL);
    if (pending) tether__runtime_unref(pending);
    if (w->bs) {
      for (size_t k = 0; w->bs[k].current; k++) free(w->bs[k].current);
      free(w->bs);
    }
    free(w->pools);
    free(w->log_buf);
    tether_jwt_claims_free(w->claims);
    tether__buf_free(&w->scratch_out);
    tether__buf_free(&w->scratch_log);
    tether__buf_free(&w->scratch_path);
    tether__runtime_unref(w->rt);
    uv_loop_close(&w->loop);
  }
}
