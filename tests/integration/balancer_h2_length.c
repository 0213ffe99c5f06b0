/* HTTP/2 request bodies against their content-length (RFC 9113 section 8.1.1), with raw frames against a real
 * tether and a scripted HTTP/1.1 backend on loopback. A stream whose DATA disagrees with its content-length is
 * reset (PROTOCOL_ERROR) and the server never receives a complete request: a body up to 16 KiB is held whole
 * until END_STREAM (nothing at all reaches the server), a larger one streams but its last byte waits for
 * END_STREAM (the server's connection is closed on a mismatch). The backend's /stats counts the heads it read
 * (requests=) and the requests it read whole (complete=). */
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
static tb_tether T;
static int port;

static int setup(void **state) {
  (void)state;
  signal(SIGPIPE, SIG_IGN);
  if (tb_backend_start(&b1, "b1", 0) < 0) return -1;
  port = tt_free_port();
  tb_tether_init(&T, 1);
  tb_tether_write_conf(&T,
                       "listen 127.0.0.1:%d http2;\nclient_max_body_size 0;\nclient_body_timeout 2s;\n"
                       "upstream app {\n  server %s max_fails=0;\n  keepalive 8;\n}\n"
                       "location / { proxy_pass http://app; }\n",
                       port, b1.addr);
  return tb_tether_run(&T);
}

static int teardown(void **state) {
  (void)state;
  int st = tb_tether_stop(&T, 15000);
  int san = tb_log_has_sanitizer_report(T.log);
  tb_tether_cleanup(&T);
  tb_backend_cleanup(&b1);
  return st != 0 || san ? -1 : 0;
}

/* The backend's counter KEY ("requests" or "complete"), the /stats call that reads it included. */
static long stat_of(const char *key) {
  tb_resp r;
  long n = -1;
  char k[32];
  snprintf(k, sizeof(k), "%s=", key);
  if (tb_get(NULL, b1.port, "/stats", &r) == 200 && r.body) {
    const char *p = strstr(r.body, k);
    if (p) n = strtol(p + strlen(k), NULL, 10);
  }
  tb_resp_free(&r);
  return n;
}

typedef struct counts {
  long requests, complete;
} counts;

static counts now_counts(void) {
  usleep(300000); /* whatever was forwarded has reached the backend */
  counts c = {stat_of("requests"), stat_of("complete")};
  return c;
}

/* A POST /echo with this content-length, the body in pieces (pieces[i] bytes each, END_STREAM on the last
 * one when end), then what became of the stream. */
static void post(const char *cl, const size_t *pieces, int npieces, int end, outcome *o) {
  raw r;
  assert_int_equal(raw_open(&r, port, NULL, 0), 0);
  uint8_t b[512];
  size_t n = block(b, (const char *const[]){":method", "POST", ":scheme", "http", ":path", "/echo", ":authority", "h",
                                            "content-length", cl, NULL});
  assert_int_equal(frame(&r, F_HEADERS, END_HEADERS, 1, b, n), 0);
  static uint8_t body[1 << 18];
  memset(body, 'a', sizeof(body));
  int rc = 0;
  for (int i = 0; i < npieces && rc == 0; i++) rc = send_data(&r, 1, body, pieces[i], end && i == npieces - 1);
  if (rc > 0) {
    memset(o, 0, sizeof(*o));
    o->rst = rc;
  } else {
    wait_stream(&r, 1, o);
  }
  raw_close(&r);
}

/* Refused: a reset with PROTOCOL_ERROR and no answer; the backend read no complete request, and (held bodies)
 * not even a head. */
static void refused(const char *cl, const size_t *pieces, int npieces, int held) {
  counts before = now_counts();
  outcome o;
  post(cl, pieces, npieces, 1, &o);
  assert_int_equal(o.rst, 1 + NGHTTP2_PROTOCOL_ERROR);
  assert_int_equal(o.status, 0);
  counts after = now_counts();
  assert_int_equal(after.complete - before.complete, 2); /* the two /stats calls between */
  if (held) assert_int_equal(after.requests - before.requests, 2);
}

/* ---- small bodies: held whole ---- */

static void test_small_exact(void **state) {
  (void)state;
  counts before = now_counts();
  outcome o;
  post("5", (const size_t[]){2, 3}, 2, 1, &o);
  assert_int_equal(o.status, 200);
  assert_string_equal(o.body, "aaaaa");
  counts after = now_counts();
  assert_int_equal(after.complete - before.complete, 3); /* the POST and the two /stats calls between */
}

static void test_small_more_data(void **state) { /* the whole length, then a byte more */
  (void)state;
  refused("3", (const size_t[]){3, 1}, 2, 1);
}

static void test_small_less_data(void **state) {
  (void)state;
  refused("3", (const size_t[]){1}, 1, 1);
}

static void test_zero_length_with_data(void **state) {
  (void)state;
  refused("0", (const size_t[]){1}, 1, 1);
}

/* The hold's edge: exactly 16 KiB is held, and answered. */
static void test_hold_limit(void **state) {
  (void)state;
  outcome o;
  post("16384", (const size_t[]){16384}, 1, 1, &o);
  assert_int_equal(o.status, 200);
  assert_int_equal(o.len, 16384);
  refused("16384", (const size_t[]){16384, 1}, 2, 1);
}

/* A held request whose body stops coming: reset (CANCEL) after client_body_timeout (2s), nothing forwarded, and
 * the connection goes on. */
static void test_held_body_stalls(void **state) {
  (void)state;
  counts before = now_counts();
  raw r;
  assert_int_equal(raw_open(&r, port, NULL, 0), 0);
  uint8_t b[512];
  size_t n = block(b, (const char *const[]){":method", "POST", ":scheme", "http", ":path", "/echo", ":authority", "h",
                                            "content-length", "10", NULL});
  assert_int_equal(frame(&r, F_HEADERS, END_HEADERS, 1, b, n), 0);
  assert_int_equal(send_data(&r, 1, (const uint8_t *)"abc", 3, 0), 0);
  long long t0 = tb_now_ms();
  outcome o;
  wait_stream(&r, 1, &o);
  long long el = tb_now_ms() - t0;
  assert_int_equal(o.rst, 1 + NGHTTP2_CANCEL);
  assert_true(el >= 1800 && el < 6000);
  n = block(b, (const char *const[]){":method", "GET", ":scheme", "http", ":path", "/", ":authority", "h", NULL});
  assert_int_equal(frame(&r, F_HEADERS, END_HEADERS | END_STREAM, 3, b, n), 0);
  wait_stream(&r, 3, &o);
  assert_int_equal(o.status, 200);
  raw_close(&r);
  counts after = now_counts();
  assert_int_equal(after.requests - before.requests, 3); /* the GET and the two /stats calls */
}

/* ---- large bodies: streamed, the last byte withheld ---- */

static void test_large_exact(void **state) {
  (void)state;
  counts before = now_counts();
  outcome o;
  post("200000", (const size_t[]){100000, 100000}, 2, 1, &o);
  assert_int_equal(o.status, 200);
  counts after = now_counts();
  assert_int_equal(after.complete - before.complete, 3);
}

static void test_large_more_data(void **state) {
  (void)state;
  refused("200000", (const size_t[]){200000, 1}, 2, 0);
  refused("20000", (const size_t[]){20000, 10}, 2, 0);
}

static void test_large_less_data(void **state) {
  (void)state;
  refused("200000", (const size_t[]){150000}, 1, 0);
  refused("200000", (const size_t[]){199999}, 1, 0);
}

/* After all this the server connections still serve (the broken ones were closed, not pooled). */
static void test_still_serves(void **state) {
  (void)state;
  for (int i = 0; i < 3; i++) {
    outcome o;
    post("4", (const size_t[]){4}, 1, 1, &o);
    assert_int_equal(o.status, 200);
    assert_string_equal(o.body, "aaaa");
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_small_exact),     cmocka_unit_test(test_small_more_data),
      cmocka_unit_test(test_small_less_data), cmocka_unit_test(test_zero_length_with_data),
      cmocka_unit_test(test_hold_limit),      cmocka_unit_test(test_held_body_stalls),
      cmocka_unit_test(test_large_exact),     cmocka_unit_test(test_large_more_data),
      cmocka_unit_test(test_large_less_data), cmocka_unit_test(test_still_serves),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
