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
#include "io/listen.h"
#include "io/uring.h"

int tether__listen_socket(const tether__addr *a, int backlog) {
  int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
      bind(fd, (const struct sockaddr *)&a->sa, a->len) < 0 || listen(fd, backlog) < 0) {
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

static void flush_cb(uv_timer_t *t) { tether__access_log_flush(t->data); }

static void grace_over(uv_timer_t *t) {
  tether__worker *w = t->data;
  tether__worker_close_all(w);
  uv_close((uv_handle_t *)&w->stop_timer, NULL);
}

static void begin_stop(tether__worker *w) {
  if (w->stopping) return;
  w->stopping = 1;
  tether__listen_stop(w);
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
    tether__worker_h2_goaway(w);
  }
  if (atomic_load(&w->stop)) begin_stop(w);
}

/* Plain TCP over io_uring unless `io_uring off;` or the kernel refuses; made on the worker's thread, the
 * ring's only submitter. */
static tether__uring *ring_start(tether__worker *w) {
  char why[160] = "io_uring off";
  tether__uring *r = w->rt->cf->io_uring ? tether__uring_new(&w->loop, why, sizeof(why)) : NULL;
  if (r)
    tether__log(TETHER_LOG_INFO, "worker %d: plain TCP over io_uring", w->id);
  else
    tether__log(TETHER_LOG_INFO, "worker %d: plain TCP over epoll (%s)", w->id, why);
  return r;
}

static void worker_main(void *arg) {
  tether__worker *w = arg;
  tether__uring *r = ring_start(w);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  if (r) tether__uring_stop(r);
  /* close whatever is left (a grace timer that never fired) and run the close callbacks */
  if (!uv_is_closing((uv_handle_t *)&w->stop_timer) && w->stopping) uv_close((uv_handle_t *)&w->stop_timer, NULL);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  if (r) tether__uring_free(r);
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
    w->accept = tether__client_accept;
    int rc = tether__listen_start(w);
    if (rc < 0) {
      tether__log(TETHER_LOG_ERROR, "worker %d: listen: %s", i, uv_strerror(rc));
      return rc;
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
    tether__worker_free_pools(w);
    free(w->log_buf);
    tether_jwt_claims_free(w->claims);
    tether__buf_free(&w->scratch_out);
    tether__buf_free(&w->scratch_log);
    tether__buf_free(&w->scratch_path);
    tether__worker_free_reqs(w);
    tether__runtime_unref(w->rt);
    uv_loop_close(&w->loop);
  }
}
