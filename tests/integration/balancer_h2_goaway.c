/* Graceful GOAWAY on stop (SIGTERM) and reload (SIGHUP), with raw HTTP/2 frames against a real tether and a
 * slow scripted HTTP/1.1 backend on loopback: with a stream in flight, the signal brings a GOAWAY (NO_ERROR)
 * whose last-stream-id is that stream, before its answer; the stream is answered whole; a stream the client
 * opens after the GOAWAY is refused (never answered, never forwarded); then the connection ends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <signal.h>
#include <unistd.h>

#include "balancer.h"
#include "h2_raw.h"

static tb_backend b1;

static int setup(void **state) {
  (void)state;
  signal(SIGPIPE, SIG_IGN);
  return tb_backend_start(&b1, "b1", 0);
}

static int teardown(void **state) {
  (void)state;
  tb_backend_cleanup(&b1);
  return 0;
}

static long backend_requests(void) {
  tb_resp r;
  long n = -1;
  if (tb_get(NULL, b1.port, "/stats", &r) == 200 && r.body) {
    const char *p = strstr(r.body, "requests=");
    if (p) n = strtol(p + 9, NULL, 10);
  }
  tb_resp_free(&r);
  return n;
}

static int start(tb_tether *t, int *port) {
  *port = tt_free_port();
  tb_tether_init(t, 1);
  tb_tether_write_conf(t,
                       "listen 127.0.0.1:%d http2;\nshutdown_timeout 10s;\n"
                       "upstream app {\n  server %s max_fails=0;\n}\nlocation / { proxy_pass http://app; }\n",
                       *port, b1.addr);
  return tb_tether_run(t);
}

/* What the client saw, in order. */
typedef struct seen {
  int frames;      /* frames read */
  int goaway_at;   /* the GOAWAY's place (0: none) */
  int goaway_code; /* + 1 */
  uint32_t goaway_last;
  int answer_at;  /* the place of stream 1's HEADERS */
  int status;     /* stream 1's :status */
  char body[256]; /* stream 1's DATA */
  size_t len;
  int done;          /* stream 1 ended (END_STREAM) */
  int late_answered; /* HEADERS or DATA for stream 3 (opened after the GOAWAY) */
  int late_reset;    /* RST_STREAM for stream 3 (+ code) */
  int ended;         /* the connection ended */
} seen;

/* Stream 1 (a slow GET) in flight, then signum; after the GOAWAY the client opens stream 3. */
static void drive(tb_tether *t, int port, int signum, seen *s) {
  memset(s, 0, sizeof(*s));
  raw r;
  assert_int_equal(raw_open(&r, port, NULL, 0), 0);
  uint8_t b[512], b3[512];
  size_t n = block(b, (const char *const[]){":method", "GET", ":scheme", "http", ":path", "/delay?ms=1000",
                                            ":authority", "h", NULL});
  size_t n3 =
      block(b3, (const char *const[]){":method", "GET", ":scheme", "http", ":path", "/", ":authority", "h", NULL});
  assert_int_equal(frame(&r, F_HEADERS, END_HEADERS | END_STREAM, 1, b, n), 0);
  usleep(300000); /* the request is at the backend */
  kill(t->pid, signum);
  frm f;
  while (next_frame(&r, &f) == 0) {
    s->frames++;
    if (f.type == F_SETTINGS && !(f.flags & 1)) frame(&r, F_SETTINGS, 1, 0, NULL, 0);
    if (f.type == F_GOAWAY && !s->goaway_at) {
      s->goaway_at = s->frames;
      s->goaway_last = (uint32_t)(f.p[0] << 24 | f.p[1] << 16 | f.p[2] << 8 | f.p[3]) & 0x7fffffff;
      s->goaway_code = 1 + (f.p[4] << 24 | f.p[5] << 16 | f.p[6] << 8 | f.p[7]);
      frame(&r, F_HEADERS, END_HEADERS | END_STREAM, 3, b3, n3); /* too late */
    }
    if (f.id == 3 && (f.type == F_HEADERS || f.type == F_DATA)) s->late_answered = 1;
    if (f.id == 3 && f.type == F_RST) s->late_reset = 1 + (f.p[0] << 24 | f.p[1] << 16 | f.p[2] << 8 | f.p[3]);
    if (f.type == F_HEADERS) {
      int status = headers_status(&r, &f);
      if (f.id == 1) s->answer_at = s->frames, s->status = status;
    }
    if (f.id == 1 && f.type == F_DATA && s->len + f.n < sizeof(s->body)) {
      memcpy(s->body + s->len, f.p, f.n);
      s->len += f.n;
    }
    if (f.id == 1 && (f.type == F_HEADERS || f.type == F_DATA) && (f.flags & END_STREAM)) s->done = 1;
  }
  s->ended = 1;
  raw_close(&r);
}

static void check(const seen *s, long forwarded) {
  assert_true(s->goaway_at > 0);
  assert_int_equal(s->goaway_code, 1 + NGHTTP2_NO_ERROR);
  assert_int_equal(s->goaway_last, 1);
  assert_true(s->goaway_at < s->answer_at); /* at the signal, not after the answer */
  assert_int_equal(s->status, 200);
  assert_string_equal(s->body, "b1\n");
  assert_true(s->done);
  assert_false(s->late_answered);
  assert_int_equal(forwarded, 1); /* stream 1 only */
  assert_true(s->ended);
}

static void test_goaway_on_stop(void **state) {
  (void)state;
  tb_tether t;
  int port;
  assert_int_equal(start(&t, &port), 0);
  long before = backend_requests();
  seen s;
  drive(&t, port, SIGTERM, &s);
  long forwarded = backend_requests() - before - 1;
  int st = tb_tether_wait(&t, 15000);
  int san = tb_log_has_sanitizer_report(t.log);
  tb_tether_cleanup(&t);
  check(&s, forwarded);
  assert_int_equal(st, 0);
  assert_false(san);
}

static void test_goaway_on_reload(void **state) {
  (void)state;
  tb_tether t;
  int port;
  assert_int_equal(start(&t, &port), 0);
  long before = backend_requests();
  seen s;
  drive(&t, port, SIGHUP, &s);
  long forwarded = backend_requests() - before - 1;
  raw r; /* a new connection is served by the new generation */
  assert_int_equal(raw_open(&r, port, NULL, 0), 0);
  uint8_t b[512];
  size_t n =
      block(b, (const char *const[]){":method", "GET", ":scheme", "http", ":path", "/", ":authority", "h", NULL});
  frame(&r, F_HEADERS, END_HEADERS | END_STREAM, 1, b, n);
  outcome o;
  wait_stream(&r, 1, &o);
  raw_close(&r);
  int st = tb_tether_stop(&t, 15000);
  int san = tb_log_has_sanitizer_report(t.log);
  tb_tether_cleanup(&t);
  check(&s, forwarded);
  assert_int_equal(o.status, 200);
  assert_int_equal(st, 0);
  assert_false(san);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_goaway_on_stop),
      cmocka_unit_test(test_goaway_on_reload),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
