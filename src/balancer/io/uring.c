/* Plain TCP connections over io_uring (see uring.h).
 *
 * A connection's work is noted (the to-do list) as the owner asks for it, and turned into SQEs just before
 * the loop polls (a uv_prepare handle): every write of the turn to one socket becomes one send, and every
 * socket's sends and receive arming go to the kernel in one io_uring_enter. Completions are read when the
 * ring's descriptor is readable (a uv_poll handle) and right after that submission (sends done inline).
 * A connection keeps at most one send in flight (ordering), and one multishot receive while it reads; a pause
 * cancels the receive, and what completes after it is held until the resume. Closing cancels everything of
 * the socket and closes it once the last completion came, so the kernel never writes into freed memory. */
#include "uring.h"

#include <errno.h>
#include <liburing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../lib/util.h"

#define RING_ENTRIES 512
#define CQ_ENTRIES 8192 /* multishot receives post one completion per buffer filled */
/* Provided receive buffers per worker (a power of two), 8 MiB in all. A receive that finds none ends (ENOBUFS)
 * and is armed again at the back of the to-do list; with 256 of 16 KiB, 2,000 busy clients on one core kept
 * running out, and the ones that lost most waited past 2 s (wrk timeouts; p99 1.4 s against 0.12-0.32 s now). */
#define NBUFS 2048
#define BUF_SIZE 4096
#define BGID 0
#define OP_RECV 1u
#define OP_SEND 2u
#define OP_MASK 7u
#define TURNS 4 /* submit and reap rounds per loop turn, before libuv polls */

typedef struct held {
  struct held *next;
  ssize_t n; /* bytes, or UV_EOF or an error */
  char data[];
} held;

struct tether__uio {
  tether__uring *r;
  tether__io *io;
  int fd;
  unsigned reading : 1, recv_armed : 1, recv_cancel : 1, sending : 1, shut : 1, ended : 1, cancel_all : 1, in_todo : 1;
  int ops;                /* SQEs whose last completion has not come */
  unsigned long armed_in; /* the submission that takes the receive to the kernel */
  char *out, *next;       /* in flight [out_off, out_len), and queued behind it */
  size_t out_len, out_off, out_cap, next_len, next_cap;
  held *held, **held_tail;
  uv_close_cb close_cb; /* closing */
  struct tether__uio *todo_next;
};
typedef struct tether__uio uio;

struct tether__uring {
  struct io_uring ring;
  uv_loop_t *loop;
  uv_poll_t poll;
  uv_prepare_t prepare;
  struct io_uring_buf_ring *br;
  char *bufs;
  uio *todo, **todo_tail; /* first in, first out: connections re-armed after ENOBUFS take their turn */
  long ops;
  unsigned long submits; /* io_uring_submit calls so far */
};

static void submit(tether__uring *r) {
  io_uring_submit(&r->ring);
  r->submits++;
}

static void keep_loop(tether__uring *r) {
  if (r->ops > 0 || r->todo)
    uv_ref((uv_handle_t *)&r->poll);
  else
    uv_unref((uv_handle_t *)&r->poll);
}

static void todo(uio *u) {
  if (u->in_todo) return;
  u->in_todo = 1;
  u->todo_next = NULL;
  if (u->r->todo == NULL) u->r->todo_tail = &u->r->todo;
  *u->r->todo_tail = u;
  u->r->todo_tail = &u->todo_next;
  uv_ref((uv_handle_t *)&u->r->poll);
}

static void ops_add(uio *u, int d) {
  u->ops += d;
  u->r->ops += d;
}

static struct io_uring_sqe *sqe_for(uio *u, uint64_t data) {
  struct io_uring_sqe *s = io_uring_get_sqe(&u->r->ring);
  if (s == NULL) {
    submit(u->r);
    s = io_uring_get_sqe(&u->r->ring);
  }
  if (s != NULL) io_uring_sqe_set_data64(s, data);
  return s;
}

static uint64_t tag(uio *u, unsigned op) { return (uint64_t)(uintptr_t)u | op; }

static void recycle(tether__uring *r, unsigned bid) {
  io_uring_buf_ring_add(r->br, r->bufs + (size_t)bid * BUF_SIZE, BUF_SIZE, (unsigned short)bid,
                        io_uring_buf_ring_mask(NBUFS), 0);
  io_uring_buf_ring_advance(r->br, 1);
}

static void hold(uio *u, ssize_t n, const char *data) {
  held *h = tether__malloc(sizeof(*h) + (n > 0 ? (size_t)n : 0));
  h->next = NULL;
  h->n = n;
  if (n > 0) memcpy(h->data, data, (size_t)n);
  if (u->held == NULL) u->held_tail = &u->held;
  *u->held_tail = h;
  u->held_tail = &h->next;
}

/* Bytes read go to the filter (TLS) when there is one, which reads them in place, else to the owner. */
static void deliver(tether__io *io, ssize_t n, char *data) {
  if (io->filter)
    io->filter->read(io, n, data);
  else
    io->on_read(io, n, data);
}

static void on_recv(uio *u, int res, unsigned flags) {
  tether__uring *r = u->r;
  char *buf = NULL;
  unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
  if (flags & IORING_CQE_F_BUFFER) buf = r->bufs + (size_t)bid * BUF_SIZE;
  if (!(flags & IORING_CQE_F_MORE)) {
    u->recv_armed = 0;
    u->recv_cancel = 0;
    ops_add(u, -1);
    todo(u); /* re-armed there while the owner reads */
  }
  if (res != -ENOBUFS && res != -ECANCELED && u->close_cb == NULL && !u->ended) {
    ssize_t n = res > 0 ? res : res == 0 ? UV_EOF : res; /* libuv's codes are -errno on Linux */
    if (n < 0) u->ended = 1;
    if (u->reading && u->held == NULL)
      deliver(u->io, n, buf);
    else
      hold(u, n, buf);
  }
  if (buf) recycle(r, bid);
}

static void on_sent(uio *u, int res) {
  tether__io *io = u->io;
  ops_add(u, -1);
  u->sending = 0;
  if (u->close_cb) return;
  if (res <= 0) { /* what is queued will not go: the owner hears of it once */
    io->pending = 0;
    u->out_len = u->out_off = u->next_len = 0;
    io->on_written(io, res < 0 ? res : UV_EPIPE);
    return;
  }
  io->pending -= (size_t)res;
  u->out_off += (size_t)res;
  todo(u); /* the rest, what was queued behind, or the shutdown */
  if (u->out_off < u->out_len) return;
  u->out_len = u->out_off = 0;
  if (u->next_len == 0) { /* all written: an idle connection keeps no buffer */
    free(u->out);
    free(u->next);
    u->out = u->next = NULL;
    u->out_cap = u->next_cap = 0;
  }
  io->on_written(io, 0);
}

static void on_cqe(uint64_t data, int res, unsigned flags) {
  if (data == 0) return; /* a cancellation's own */
  uio *u = (uio *)(uintptr_t)(data & ~(uint64_t)OP_MASK);
  if ((data & OP_MASK) == OP_SEND)
    on_sent(u, res);
  else
    on_recv(u, res, flags);
  if (u->close_cb && u->ops == 0) todo(u);
}

static int reap_ready(tether__uring *r) {
  int n = 0;
  while (io_uring_cq_ready(&r->ring)) {
    unsigned head;
    struct io_uring_cqe *c;
    uint64_t data = 0;
    int res = 0;
    unsigned flags = 0;
    io_uring_for_each_cqe(&r->ring, head, c) {
      data = c->user_data;
      res = c->res;
      flags = c->flags;
      break;
    }
    io_uring_cq_advance(&r->ring, 1);
    on_cqe(data, res, flags);
    n++;
  }
  return n;
}

/* Completions one at a time: an owner's callback may look at the ones still unread (tether__uring_quiet).
 * Those that found the completion queue full wait in the kernel (IORING_SQ_CQ_OVERFLOW) until it is asked. */
static int reap(tether__uring *r) {
  int n = reap_ready(r);
  for (int k = 0; k < 64 && io_uring_cq_has_overflow(&r->ring); k++) {
    io_uring_get_events(&r->ring);
    n += reap_ready(r);
  }
  return n;
}

static void finish_close(uio *u) {
  tether__io *io = u->io;
  while (u->held) {
    held *h = u->held;
    u->held = h->next;
    free(h);
  }
  free(u->out);
  free(u->next);
  uv_close((uv_handle_t *)&io->tcp, u->close_cb);
  io->uio = NULL;
  free(u);
}

static void deliver_held(uio *u) {
  while (u->held && u->reading && u->close_cb == NULL) {
    held *h = u->held;
    u->held = h->next;
    deliver(u->io, h->n, h->data);
    free(h);
  }
}

static int start_send(uio *u) {
  if (u->out_off >= u->out_len) { /* the queued bytes go next */
    char *b = u->out;
    size_t cap = u->out_cap;
    u->out = u->next;
    u->out_cap = u->next_cap;
    u->out_len = u->next_len;
    u->out_off = 0;
    u->next = b;
    u->next_cap = cap;
    u->next_len = 0;
  }
  struct io_uring_sqe *s = sqe_for(u, tag(u, OP_SEND));
  if (s == NULL) return -1;
  io_uring_prep_send(s, u->fd, u->out + u->out_off, u->out_len - u->out_off, MSG_NOSIGNAL);
  u->sending = 1;
  ops_add(u, 1);
  return 0;
}

static int flush_reads(uio *u) {
  struct io_uring_sqe *s;
  if (u->reading && !u->recv_armed && !u->ended) {
    if ((s = sqe_for(u, tag(u, OP_RECV))) == NULL) return -1;
    io_uring_prep_recv_multishot(s, u->fd, NULL, 0, 0);
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = BGID;
    u->recv_armed = 1;
    u->armed_in = u->r->submits;
    ops_add(u, 1);
  } else if (!u->reading && u->recv_armed && !u->recv_cancel) {
    if ((s = sqe_for(u, 0)) == NULL) return -1;
    io_uring_prep_cancel64(s, tag(u, OP_RECV), 0);
    u->recv_cancel = 1;
  }
  return 0;
}

/* Turns what the connection needs into SQEs; -1 when the submission queue had no room (next turn). */
static int flush(uio *u) {
  if (u->close_cb) {
    if (u->ops == 0) {
      finish_close(u);
    } else if (!u->cancel_all) {
      struct io_uring_sqe *s = sqe_for(u, 0);
      if (s == NULL) return -1;
      io_uring_prep_cancel_fd(s, u->fd, IORING_ASYNC_CANCEL_ALL);
      u->cancel_all = 1;
    }
    return 0;
  }
  deliver_held(u);
  /* The owner closed while reading what was held (an end or error after its data, a tunnel's peer gone): the
   * close put the connection back on the to-do list, so it finishes when its turn comes there. Finishing it here
   * freed it while still listed, and that turn freed it again (a double free under load). */
  if (u->close_cb) {
    todo(u);
    return 0;
  }
  if (flush_reads(u) < 0) return -1;
  if (!u->sending && (u->out_off < u->out_len || u->next_len) && start_send(u) < 0) return -1;
  if (u->shut && !u->sending && u->next_len == 0) {
    shutdown(u->fd, SHUT_WR);
    u->shut = 0;
  }
  return 0;
}

static void run_todo(tether__uring *r) {
  uio *later = NULL;
  while (r->todo) {
    uio *u = r->todo;
    r->todo = u->todo_next;
    u->in_todo = 0;
    if (flush(u) < 0 && !u->in_todo) { /* listed again by the owner's callback: it is retried from there */
      u->todo_next = later;
      later = u;
    }
  }
  while (later) {
    uio *u = later;
    later = u->todo_next;
    todo(u);
  }
}

static void on_prepare(uv_prepare_t *p) {
  tether__uring *r = p->data;
  for (int turn = 0; turn < TURNS; turn++) {
    run_todo(r);
    if (io_uring_sq_ready(&r->ring) == 0) break;
    submit(r);
    if (reap(r) == 0) break;
  }
  run_todo(r);
  if (io_uring_sq_ready(&r->ring)) submit(r);
  keep_loop(r);
}

static void on_ring(uv_poll_t *p, int status, int events) {
  (void)status;
  (void)events;
  reap(p->data);
}

static int buffers_init(tether__uring *r) {
  size_t rsz = NBUFS * sizeof(struct io_uring_buf);
  void *mem = mmap(NULL, rsz, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) return -errno;
  struct io_uring_buf_reg reg = {.ring_addr = (uintptr_t)mem, .ring_entries = NBUFS, .bgid = BGID};
  int rc = io_uring_register_buf_ring(&r->ring, &reg, 0);
  if (rc < 0) {
    munmap(mem, rsz);
    return rc;
  }
  r->br = mem;
  io_uring_buf_ring_init(r->br);
  r->bufs = tether__malloc((size_t)NBUFS * BUF_SIZE);
  for (unsigned i = 0; i < NBUFS; i++)
    io_uring_buf_ring_add(r->br, r->bufs + (size_t)i * BUF_SIZE, BUF_SIZE, (unsigned short)i,
                          io_uring_buf_ring_mask(NBUFS), (int)i);
  io_uring_buf_ring_advance(r->br, NBUFS);
  return 0;
}

/* What the kernel must do for this transport, tried on a socket pair before any connection relies on it (a kernel
 * before 6.0 refuses multishot receives): one byte, then the end. 0, or the error the kernel gave. */
static int probe(tether__uring *r) {
  int sv[2], rc = -EIO, got = 0;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
  struct io_uring_sqe *s = io_uring_get_sqe(&r->ring);
  io_uring_prep_recv_multishot(s, sv[0], NULL, 0, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = BGID;
  io_uring_sqe_set_data64(s, 1);
  if (write(sv[1], "x", 1) == 1 && shutdown(sv[1], SHUT_WR) == 0 && io_uring_submit(&r->ring) == 1) {
    for (int k = 0; k < 4; k++) { /* the byte, then the end (no IORING_CQE_F_MORE) */
      struct io_uring_cqe *c;
      struct __kernel_timespec ts = {.tv_sec = 1, .tv_nsec = 0};
      if (io_uring_wait_cqe_timeout(&r->ring, &c, &ts) < 0) break;
      int res = c->res;
      unsigned flags = c->flags;
      io_uring_cqe_seen(&r->ring, c);
      if (flags & IORING_CQE_F_BUFFER) recycle(r, flags >> IORING_CQE_BUFFER_SHIFT);
      if (res < 0) rc = res;
      got += res == 1;
      if (!(flags & IORING_CQE_F_MORE)) break;
    }
    if (got == 1 && rc == -EIO) rc = 0;
  }
  close(sv[0]);
  close(sv[1]);
  return rc;
}

tether__uring *tether__uring_new(uv_loop_t *loop, char *why, size_t len) {
  tether__uring *r = tether__calloc(1, sizeof(*r));
  struct io_uring_params p;
  memset(&p, 0, sizeof(p));
  p.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_CQSIZE;
  p.cq_entries = CQ_ENTRIES;
  int rc = io_uring_queue_init_params(RING_ENTRIES, &r->ring, &p);
  if (rc == -EINVAL) { /* a kernel before 6.0: no single issuer */
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = CQ_ENTRIES;
    rc = io_uring_queue_init_params(RING_ENTRIES, &r->ring, &p);
  }
  if (rc < 0) {
    snprintf(why, len, "io_uring_queue_init failed: %s", strerror(-rc));
    free(r);
    return NULL;
  }
  if ((rc = buffers_init(r)) < 0) {
    snprintf(why, len, "registering a provided buffer ring failed: %s", strerror(-rc));
    io_uring_queue_exit(&r->ring);
    free(r);
    return NULL;
  }
  if ((rc = probe(r)) < 0) {
    snprintf(why, len, "a multishot receive failed: %s", strerror(-rc));
    tether__uring_free(r);
    return NULL;
  }
  r->loop = loop;
  uv_poll_init(loop, &r->poll, r->ring.ring_fd);
  r->poll.data = r;
  uv_poll_start(&r->poll, UV_READABLE, on_ring);
  uv_unref((uv_handle_t *)&r->poll);
  uv_prepare_init(loop, &r->prepare);
  r->prepare.data = r;
  uv_prepare_start(&r->prepare, on_prepare);
  uv_unref((uv_handle_t *)&r->prepare);
  loop->data = r;
  return r;
}

void tether__uring_stop(tether__uring *r) {
  r->loop->data = NULL;
  uv_close((uv_handle_t *)&r->poll, NULL);
  uv_close((uv_handle_t *)&r->prepare, NULL);
}

void tether__uring_free(tether__uring *r) {
  io_uring_queue_exit(&r->ring);
  munmap(r->br, NBUFS * sizeof(struct io_uring_buf));
  free(r->bufs);
  free(r);
}

int tether__uring_attach(tether__io *io) {
  tether__uring *r = io->tcp.loop->data;
  uv_os_fd_t fd;
  if (r == NULL || io->pending || uv_is_active((uv_handle_t *)&io->tcp) || uv_fileno((uv_handle_t *)&io->tcp, &fd) < 0)
    return 0;
  uio *u = tether__calloc(1, sizeof(*u));
  u->r = r;
  u->io = io;
  u->fd = fd;
  io->uio = u;
  return 1;
}

int tether__uring_write(tether__io *io, const char *data, size_t len) {
  uio *u = io->uio;
  if (u->next_len + len > u->next_cap) {
    u->next_cap = u->next_len + len > 2 * u->next_cap ? u->next_len + len : 2 * u->next_cap;
    u->next = tether__realloc(u->next, u->next_cap);
  }
  memcpy(u->next + u->next_len, data, len);
  u->next_len += len;
  io->pending += len;
  todo(u);
  return 0;
}

void tether__uring_read_start(tether__io *io) {
  io->uio->reading = 1;
  todo(io->uio);
}

void tether__uring_pause(tether__io *io) {
  io->uio->reading = 0;
  todo(io->uio);
}

void tether__uring_shutdown(tether__io *io) {
  io->uio->shut = 1;
  todo(io->uio);
}

void tether__uring_send_now(tether__io *io) {
  uio *u = io->uio;
  if (!u->sending && u->out_off >= u->out_len && u->next_len > 0)
    (void)send(u->fd, u->next, u->next_len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

void tether__uring_close(tether__io *io, uv_close_cb cb) {
  io->uio->close_cb = cb;
  io->uio->reading = 0;
  todo(io->uio);
}

/* The multishot receive stays armed on an idle connection, so whatever the server sent is in a completion
 * already, or in the kernel's work for this thread (the ring says so: IORING_SQ_TASKRUN), then run first. */
int tether__uring_quiet(tether__io *io) {
  uio *u = io->uio;
  if (u->held) return u->held->n > 0 ? -1 : 0;
  if (u->ended) return 0;
  if (!u->recv_armed || u->recv_cancel || u->armed_in == u->r->submits) return 2; /* the socket is asked */
  if (IO_URING_READ_ONCE(*u->r->ring.sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW))
    io_uring_get_events(&u->r->ring);
  unsigned head;
  struct io_uring_cqe *c;
  io_uring_for_each_cqe(&u->r->ring, head, c) {
    if (c->user_data != tag(u, OP_RECV) || c->res == -ENOBUFS || c->res == -ECANCELED) continue;
    return c->res > 0 ? -1 : 0;
  }
  return 1;
}
