/* The io_uring transport (io/uring.c, under io/tcp.c) on a real loopback TCP connection and a real ring: what
 * completes while the owner has paused reading is held, and handed over on the resume. The owner may answer and
 * close in that very callback (a tunnel whose client sent its last bytes and went away while the server's 101
 * was awaited); the connection then closes exactly once, its queued answer reaching the peer first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/transport.h"
#include "io/uring.h"

typedef struct owner {
  tether__io io;
  char rbuf[4096];
  char got[64];
  size_t got_len;
  int ends, closed, answer_and_close;
} owner;

static void closed(uv_handle_t *h) { ((owner *)((tether__io *)h)->owner)->closed++; }

static void on_read(tether__io *io, ssize_t n, const char *data) {
  owner *o = io->owner;
  if (n > 0) {
    assert_true(o->got_len + (size_t)n <= sizeof(o->got));
    memcpy(o->got + o->got_len, data, (size_t)n);
    o->got_len += (size_t)n;
    return;
  }
  o->ends++;
  if (o->answer_and_close) { /* the peer's end: the last words, then the close, from inside the callback */
    assert_int_equal(tether__io_write(io, "bye\n", 4), 0);
    tether__io_close(io, closed);
  }
}

static void on_written(tether__io *io, int status) {
  (void)io;
  (void)status;
}

/* A connected pair on 127.0.0.1: *a the accepted side (the transport's), *b the peer. */
static void tcp_pair(int *a, int *b) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(sa);
  assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
  assert_int_equal(listen(l, 1), 0);
  assert_int_equal(getsockname(l, (struct sockaddr *)&sa, &len), 0);
  *b = socket(AF_INET, SOCK_STREAM, 0);
  assert_int_equal(connect(*b, (struct sockaddr *)&sa, sizeof(sa)), 0);
  *a = accept(l, NULL, NULL);
  assert_true(*a >= 0);
  close(l);
}

static void turns(uv_loop_t *loop, int n) {
  for (int i = 0; i < n; i++) {
    uv_run(loop, UV_RUN_NOWAIT);
    usleep(2000);
  }
}

static void test_close_while_delivering_held(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  char why[256];
  tether__uring *r = tether__uring_new(&loop, why, sizeof(why));
  if (r == NULL) { /* the transport falls back to libuv there, and so does nothing here */
    fprintf(stderr, "no io_uring: %s\n", why);
    uv_loop_close(&loop);
    skip();
  }
  int a, b;
  tcp_pair(&a, &b);
  owner o;
  memset(&o, 0, sizeof(o));
  tether__io_init(&o.io, &loop, &o, o.rbuf, sizeof(o.rbuf), on_read, on_written);
  struct sockaddr_storage peer;
  assert_int_equal(tether__io_open(&o.io, a, &peer), 0);
  assert_int_equal(tether__io_read_start(&o.io), 0);
  assert_non_null(o.io.uio); /* on the ring */
  turns(&loop, 3);           /* the receive is armed */

  /* bytes and the end arrive while the owner has paused: held, nothing delivered */
  tether__io_pause(&o.io);
  assert_int_equal(send(b, "hello", 5, 0), 5);
  assert_int_equal(shutdown(b, SHUT_WR), 0);
  turns(&loop, 10);
  assert_int_equal(o.got_len, 0);
  assert_int_equal(o.ends, 0);

  /* the resume hands them over; at the end the owner answers and closes, inside the callback */
  o.answer_and_close = 1;
  tether__io_resume(&o.io);
  turns(&loop, 10);
  assert_int_equal(o.got_len, 5);
  assert_memory_equal(o.got, "hello", 5);
  assert_int_equal(o.ends, 1);
  assert_int_equal(o.closed, 1);
  assert_null(o.io.uio);

  /* the socket is closed: the peer reads the end; the answer queued before the close may or may not have gone */
  char buf[16];
  struct pollfd p = {.fd = b, .events = POLLIN};
  ssize_t n = 1;
  while (n > 0 && poll(&p, 1, 2000) == 1) n = recv(b, buf, sizeof(buf), 0);
  assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
  close(b);

  tether__uring_stop(r);
  uv_run(&loop, UV_RUN_DEFAULT);
  tether__uring_free(r);
  assert_int_equal(o.closed, 1); /* once */
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_close_while_delivering_held),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
