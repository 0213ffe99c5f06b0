/* Accepting clients: each worker watches its own SO_REUSEPORT listening sockets and accepts for itself, so
 * that running out of descriptors pauses accepting instead of resetting whoever waits. */
#include "listen.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "../worker.h"

#define ACCEPT_RETRY_MS 1000 /* out of descriptors: accept again after this, or when a client of ours closes */
#define ACCEPT_BATCH 64      /* accepts per readiness, so one busy listener does not starve the loop */

static void on_acceptable(uv_poll_t *p, int status, int events);

static void accept_resume(uv_timer_t *t) {
  tether__worker *w = t->data;
  if (w->stopping) return;
  for (int i = 0; i < w->nlisteners; i++) uv_poll_start(&w->listeners[i], UV_READABLE, on_acceptable);
}

/* A descriptor of ours was freed: try again now. Between such moments a paused worker stays off the
 * descriptor table, so the admin listener's reserve (given up on another thread) is not taken from it. */
void tether__listen_fd_freed(tether__worker *w) {
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
    tether__log(TETHER_LOG_WARN,
                "worker %d: accept: %s: paused, new clients wait in the backlog (see "
                "worker_rlimit_nofile)",
                w->id, strerror(err));
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
    w->accept(w, fd, (int)(p - w->listeners));
  }
}

int tether__listen_start(tether__worker *w) {
  uv_timer_init(&w->loop, &w->accept_timer);
  w->accept_timer.data = w;
  for (int k = 0; k < w->nlisteners; k++) {
    int rc = uv_poll_init(&w->loop, &w->listeners[k], w->listen_fds[k]); /* listening already (main.c) */
    w->listeners[k].data = w;
    if (rc == 0) rc = uv_poll_start(&w->listeners[k], UV_READABLE, on_acceptable);
    if (rc < 0) return rc;
  }
  return 0;
}

void tether__listen_stop(tether__worker *w) {
  for (int i = 0; i < w->nlisteners; i++) {
    uv_close((uv_handle_t *)&w->listeners[i], NULL);
    close(w->listen_fds[i]);
  }
  uv_close((uv_handle_t *)&w->accept_timer, NULL);
}
