/* The plain TCP transport on libuv. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/util.h"
#include "transport.h"
#include "uring.h"

typedef struct wreq {
  uv_write_t req;
  tether__io *io;
  size_t len;
  char data[];
} wreq;

void tether__io_init(tether__io *io, uv_loop_t *loop, void *owner, char *rbuf, size_t rbuf_len,
                     tether__io_read_cb on_read, tether__io_write_cb on_written) {
  uv_tcp_init(loop, &io->tcp);
  io->owner = owner;
  io->rbuf = rbuf;
  io->rbuf_len = rbuf_len;
  io->pending = 0;
  io->paused = 0;
  io->closing = 0;
  io->on_read = on_read;
  io->on_written = on_written;
  io->filter = NULL;
  io->filter_state = NULL;
  io->uio = NULL;
}

/* Plain TCP goes over the worker's io_uring when it has one, from the first read or write on. */
static int on_ring(tether__io *io) { return io->uio != NULL || tether__uring_attach(io); }

int tether__io_open(tether__io *io, int fd, struct sockaddr_storage *peer) {
  int rc = uv_tcp_open(&io->tcp, fd);
  if (rc < 0) return rc;
  uv_tcp_nodelay(&io->tcp, 1);
  int len = sizeof(*peer);
  memset(peer, 0, sizeof(*peer));
  uv_tcp_getpeername(&io->tcp, (struct sockaddr *)peer, &len);
  return 0;
}

int tether__io_connect(tether__io *io, uv_connect_t *req, const struct sockaddr *sa, uv_connect_cb cb) {
  return uv_tcp_connect(req, &io->tcp, sa, cb);
}

void tether__io_nodelay(tether__io *io) { uv_tcp_nodelay(&io->tcp, 1); }

static void on_written(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  tether__io *io = w->io;
  io->pending -= w->len;
  free(w);
  if (!io->closing) io->on_written(io, status);
}

int tether__io_write(tether__io *io, const char *data, size_t len) {
  if (io->filter) return io->filter->write(io, data, len);
  return tether__io_write_raw(io, data, len);
}

int tether__io_write_raw(tether__io *io, const char *data, size_t len) {
  if (len == 0) return 0;
  if (on_ring(io)) return tether__uring_write(io, data, len);
  if (io->pending == 0) {
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&io->tcp, &b, 1);
    if (n > 0) {
      data += n;
      len -= (size_t)n;
    } else if (n != UV_EAGAIN && n != UV_ENOSYS) {
      return n;
    }
    if (len == 0) return 0;
  }
  wreq *w = tether__malloc(sizeof(*w) + len);
  w->io = io;
  w->len = len;
  memcpy(w->data, data, len);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
  int rc = uv_write(&w->req, (uv_stream_t *)&io->tcp, &b, 1, on_written);
  if (rc < 0) {
    free(w);
    return rc;
  }
  io->pending += len;
  return 0;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  tether__io *io = (tether__io *)h;
  *buf = uv_buf_init(io->rbuf, (unsigned)io->rbuf_len);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  tether__io *io = (tether__io *)s;
  if (io->closing || nread == 0) return;
  if (io->filter)
    io->filter->read(io, nread, buf->base);
  else
    io->on_read(io, nread, buf->base);
}

int tether__io_read_start(tether__io *io) {
  io->paused = 0;
  if (on_ring(io)) {
    tether__uring_read_start(io);
    return 0;
  }
  int rc = uv_read_start((uv_stream_t *)&io->tcp, alloc_cb, read_cb);
  return rc == UV_EALREADY ? 0 : rc;
}

void tether__io_pause(tether__io *io) {
  if (!io->paused && !io->closing) {
    if (io->uio)
      tether__uring_pause(io);
    else
      uv_read_stop((uv_stream_t *)&io->tcp);
    io->paused = 1;
  }
}

void tether__io_resume(tether__io *io) {
  if (!io->paused || io->closing) return;
  tether__io_read_start(io);
  if (io->filter) io->filter->drain(io);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)req;
  (void)status; /* the owner decides when to close (lingering reads) */
}

int tether__io_shutdown(tether__io *io, uv_shutdown_t *req) {
  if (io->filter) return io->filter->shutdown(io, req);
  return tether__io_shutdown_raw(io, req);
}

int tether__io_shutdown_raw(tether__io *io, uv_shutdown_t *req) {
  if (io->uio) {
    tether__uring_shutdown(io);
    return 0;
  }
  return uv_shutdown(req, (uv_stream_t *)&io->tcp, on_shutdown);
}

void tether__io_close(tether__io *io, uv_close_cb cb) {
  io->closing = 1;
  if (io->filter) {
    io->filter->free(io);
    if (io->uio) tether__uring_send_now(io); /* its close_notify, as libuv's try-write would have sent it */
  }
  io->filter = NULL;
  if (io->uio)
    tether__uring_close(io, cb);
  else
    uv_close((uv_handle_t *)&io->tcp, cb);
}

/* The read callback may not have run yet in this loop turn, so the socket itself is asked. */
int tether__io_quiet(tether__io *io) {
  uv_os_fd_t fd;
  int q = io->uio ? tether__uring_quiet(io) : 2;
  if (q < 2) return q;
  if (uv_fileno((uv_handle_t *)&io->tcp, &fd) < 0) return 0;
  char b;
  ssize_t n;
  do n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 1;
  return n > 0 ? -1 : 0;
}
