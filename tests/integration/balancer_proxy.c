/* The balancer as an HTTP/1.1 proxy, against real processes on loopback: one tether (1 worker) in front
 * of two scripted backends. Keep-alive reuse, chunked both ways, pipelining, WebSocket, 100-continue,
 * HEAD/204/304, HTTP/1.0, X-Forwarded-*, set_real_ip_from, every smuggling and limit case (400, 414,
 * 431, 413, 408 and a closed connection), malformed responses (502), retries of idempotent requests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include "balancer.h"

static tb_backend b1, b2;
static tb_tether T;

static int setup(void **state) {
  (void)state;
  tb_curl_init();
  if (tb_backend_start(&b1, "b1", 0) < 0 || tb_backend_start(&b2, "b2", 0) < 0) return -1;
  tb_tether_init(&T, 1);
  tb_tether_write_conf(&T,
                       "client_header_timeout 1s;\n"
                       "client_max_body_size 1m;\n"
                       "keepalive_timeout 10s;\n"
                       "proxy_read_timeout 1s;\n"
                       "set_real_ip_from 127.0.0.1;\n"
                       "forwarded on;\n"
                       "access_log %s/access.log;\n"
                       "upstream app {\n"
                       "  server %s max_fails=0;\n"
                       "  server %s max_fails=0;\n"
                       "  keepalive 16;\n"
                       "}\n"
                       "location / { proxy_pass http://app; }\n"
                       "location = /tether-ping { return 200 pong; }\n",
                       T.dir, b1.addr, b2.addr);
  return tb_tether_run(&T);
}

static int teardown(void **state) {
  (void)state;
  int st = tb_tether_stop(&T, 15000);
  int san = tb_log_has_sanitizer_report(T.log);
  tb_tether_cleanup(&T);
  tb_backend_cleanup(&b1);
  tb_backend_cleanup(&b2);
  if (st != 0 || san) {
    fprintf(stderr, "tether exited with %d%s\n", st, san ? " and a sanitizer report" : "");
    return -1;
  }
  return 0;
}

/* A request on a fresh connection that must be refused with status, the connection then closed. */
static void expect_refused_len(const char *req, size_t n, int status, const char *what) {
  tb_raw r;
  int closed = 0;
  int rc = tb_raw_exchange(T.port, req, n, &r, &closed);
  if (rc != 0 || r.status != status || !closed)
    fprintf(stderr, "case %s: rc %d status %d (want %d) closed %d\n", what, rc, r.status, status, closed);
  assert_int_equal(rc, 0);
  assert_int_equal(r.status, status);
  assert_true(closed);
  tb_raw_free(&r);
}

static void expect_refused(const char *req, int status, const char *what) {
  expect_refused_len(req, strlen(req), status, what);
}

/* tether still answers after whatever came before */
static void assert_alive(void) {
  tb_resp r;
  assert_int_equal(tb_get(NULL, T.port, "/", &r), 200);
  assert_true(strcmp(r.body, "b1\n") == 0 || strcmp(r.body, "b2\n") == 0);
  tb_resp_free(&r);
}

/* ---- ordinary proxying ---- */

static void test_basic_and_return(void **state) {
  (void)state;
  int seen1 = 0, seen2 = 0;
  for (int i = 0; i < 6; i++) {
    tb_resp r;
    assert_int_equal(tb_get(NULL, T.port, "/", &r), 200);
    seen1 += strcmp(r.body, "b1\n") == 0;
    seen2 += strcmp(r.body, "b2\n") == 0;
    tb_resp_free(&r);
  }
  assert_int_equal(seen1, 3);
  assert_int_equal(seen2, 3);
  tb_resp r;
  assert_int_equal(tb_get(NULL, T.port, "/tether-ping", &r), 200);
  assert_string_equal(r.body, "pong\n");
  tb_resp_free(&r);
  assert_int_equal(tb_get(NULL, T.port, "/status?code=404", &r), 404);
  tb_resp_free(&r);
  assert_int_equal(tb_get(NULL, T.port, "/status?code=503", &r), 503);
  tb_resp_free(&r);
}

static void test_forwarded_headers(void **state) {
  (void)state;
  /* from an untrusted address: X-Forwarded-For is appended to, Forwarded names the peer, the client's own
   * X-Forwarded-Proto/Host are replaced */
  tb_conn c;
  assert_int_equal(tb_conn_open_from(&c, "127.0.0.3", T.port, 3000), 0);
  assert_int_equal(tb_send_str(c.fd, "GET /headers HTTP/1.1\r\nHost: example.test:8080\r\n"
                                     "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n"
                                     "X-Forwarded-Host: evil.test\r\nForwarded: for=1.1.1.1\r\n\r\n"),
                   0);
  tb_raw r;
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.body, "X-Forwarded-For: 203.0.113.7, 127.0.0.3\n"));
  assert_non_null(strstr(r.body, "X-Forwarded-Proto: http\n"));
  assert_non_null(strstr(r.body, "X-Forwarded-Host: example.test:8080\n"));
  assert_non_null(strstr(r.body, "Forwarded: for=127.0.0.3;proto=http;host=\"example.test:8080\"\n"));
  assert_null(strstr(r.body, "https"));
  assert_null(strstr(r.body, "evil.test"));
  assert_null(strstr(r.body, "1.1.1.1"));
  assert_non_null(strstr(r.body, "Host: example.test:8080\n"));
  tb_raw_free(&r);
  tb_conn_close(&c);

  /* from 127.0.0.1 (set_real_ip_from): the rightmost untrusted X-Forwarded-For entry is the client */
  assert_int_equal(tb_conn_open(&c, T.port, 3000), 0);
  assert_int_equal(tb_send_str(c.fd, "GET /headers HTTP/1.1\r\nHost: h\r\n"
                                     "X-Forwarded-For: 198.51.100.9, 127.0.0.1\r\n\r\n"),
                   0);
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_non_null(strstr(r.body, "X-Forwarded-For: 198.51.100.9, 127.0.0.1, 127.0.0.1\n"));
  assert_non_null(strstr(r.body, "Forwarded: for=198.51.100.9;proto=http;host=\"h\"\n"));
  tb_raw_free(&r);
  /* the next request on the same connection, without the header, is the peer's own again */
  assert_int_equal(tb_send_str(c.fd, "GET /headers HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  if (strstr(r.body, "Forwarded: for=127.0.0.1;") == NULL) fprintf(stderr, "second request saw:\n%s", r.body);
  assert_non_null(strstr(r.body, "X-Forwarded-For: 127.0.0.1\n"));
  assert_non_null(strstr(r.body, "Forwarded: for=127.0.0.1;proto=http;host=\"h\"\n"));
  tb_raw_free(&r);
  tb_conn_close(&c);

  /* hop-by-hop headers are not forwarded */
  assert_int_equal(tb_conn_open(&c, T.port, 3000), 0);
  assert_int_equal(tb_send_str(c.fd, "GET /headers HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Hop\r\n"
                                     "Keep-Alive: timeout=5\r\nTE: trailers\r\nX-Kept: yes\r\n\r\n"),
                   0);
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_null(strstr(r.body, "Keep-Alive:"));
  assert_null(strstr(r.body, "TE:"));
  assert_non_null(strstr(r.body, "X-Kept: yes\n"));
  tb_raw_free(&r);
  tb_conn_close(&c);
}

/* The access log names the real client (set_real_ip_from) and is written within about a second. */
static void test_access_log(void **state) {
  (void)state;
  const char *h[] = {"X-Forwarded-For: 192.0.2.44", NULL};
  tb_resp r;
  assert_int_equal(tb_request(NULL, "GET", T.port, "/conn?logged", NULL, 0, h, &r), 200);
  tb_resp_free(&r);
  char path[600];
  snprintf(path, sizeof(path), "%s/access.log", T.dir);
  int found = 0;
  for (int i = 0; i < 40 && !found; i++) {
    found = tb_file_contains(path, "192.0.2.44 - - [") && tb_file_contains(path, "\"GET /conn?logged HTTP/1.1\" 200");
    if (!found) tt_sleep_ms(100);
  }
  assert_true(found);
}

/* Collects distinct "bN ID" answers of /conn. */
static int distinct_conns(char seen[][32], int *nseen, const char *body) {
  for (int i = 0; i < *nseen; i++)
    if (strcmp(seen[i], body) == 0) return 0;
  snprintf(seen[(*nseen)++], 32, "%s", body);
  return 1;
}

static void test_keepalive_reuse(void **state) {
  (void)state;
  char seen[256][32];
  int nseen = 0;
  void *h = tb_curl_new();
  for (int i = 0; i < 100; i++) { /* one client connection */
    tb_resp r;
    assert_int_equal(tb_get(h, T.port, "/conn", &r), 200);
    distinct_conns(seen, &nseen, r.body);
    tb_resp_free(&r);
  }
  tb_curl_free(h);
  for (int i = 0; i < 100; i++) { /* a new client connection each time */
    tb_resp r;
    assert_int_equal(tb_get(NULL, T.port, "/conn", &r), 200);
    distinct_conns(seen, &nseen, r.body);
    tb_resp_free(&r);
  }
  /* 200 requests over a handful of server connections (one or two per backend) */
  if (nseen > 4)
    for (int i = 0; i < nseen; i++) fprintf(stderr, "  %s", seen[i]);
  assert_true(nseen >= 2);
  assert_true(nseen <= 4);
}

static void test_chunked_request(void **state) {
  (void)state;
  tb_conn c;
  assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
  /* sent in pieces, across the chunk framing */
  const char *parts[] = {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r", "\nhel",
                         "lo\r\n6\r\n world\r\n0\r\nX-T", "railer: 1\r\n\r\n"};
  for (size_t i = 0; i < 4; i++) {
    assert_int_equal(tb_send_str(c.fd, parts[i]), 0);
    tt_sleep_ms(30);
  }
  tb_raw r;
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "hello world");
  assert_non_null(strstr(r.head, "X-Request-Framing: chunked"));
  tb_raw_free(&r);
  /* a larger chunked body through libcurl */
  size_t n = 200000;
  char *big = malloc(n);
  for (size_t i = 0; i < n; i++) big[i] = (char)('A' + i % 23);
  const char *h[] = {"Transfer-Encoding: chunked", "Expect:", NULL};
  tb_resp cr;
  assert_int_equal(tb_request(NULL, "POST", T.port, "/echo", big, n, h, &cr), 200);
  assert_int_equal(cr.len, n);
  assert_memory_equal(cr.body, big, n);
  assert_non_null(strstr(cr.head, "X-Request-Framing: chunked"));
  tb_resp_free(&cr);
  free(big);
  /* and the connection above still carries requests */
  assert_int_equal(tb_send_str(c.fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_int_equal(r.status, 200);
  tb_raw_free(&r);
  tb_conn_close(&c);
}

static void test_chunked_response(void **state) {
  (void)state;
  tb_conn c;
  assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
  for (int round = 0; round < 2; round++) {
    assert_int_equal(tb_send_str(c.fd, "GET /chunked?n=5 HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    tb_raw r;
    assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.framing, TETHER__H1_CHUNKED);
    assert_non_null(strstr(r.head, "Transfer-Encoding: chunked\r\n"));
    char *body, *trailers;
    tb_dechunk(r.body, r.body_len, &body, &trailers);
    assert_non_null(strstr(body, "line 0\n"));
    assert_non_null(strstr(body, "line 4\n"));
    assert_null(strstr(body, "line 5\n"));
    assert_non_null(strstr(trailers, "X-Trailer: done\r\n"));
    free(body);
    free(trailers);
    tb_raw_free(&r);
  }
  tb_conn_close(&c);
  /* libcurl decodes it the same */
  tb_resp cr;
  assert_int_equal(tb_get(NULL, T.port, "/chunked?n=300", &cr), 200);
  assert_non_null(strstr(cr.body, "line 299\n"));
  tb_resp_free(&cr);
}

static void test_big_bodies(void **state) {
  (void)state;
  tb_resp r;
  size_t n = 3000000;
  assert_int_equal(tb_get(NULL, T.port, "/big?n=3000000", &r), 200);
  assert_int_equal(r.len, n);
  int ok = 1;
  for (size_t i = 0; i < n && ok; i++) ok = r.body[i] == (char)('a' + i % 26);
  assert_true(ok);
  tb_resp_free(&r);
  size_t m = 900000;
  char *big = malloc(m);
  for (size_t i = 0; i < m; i++) big[i] = (char)('0' + i % 10);
  assert_int_equal(tb_request(NULL, "POST", T.port, "/echo", big, m, NULL, &r), 200);
  assert_int_equal(r.len, m);
  assert_memory_equal(r.body, big, m);
  tb_resp_free(&r);
  free(big);
}

static void test_pipelining(void **state) {
  (void)state;
  tb_conn c;
  assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
  const char *reqs = "GET /delay?ms=150 HTTP/1.1\r\nHost: x\r\n\r\n"
                     "GET /conn HTTP/1.1\r\nHost: x\r\n\r\n"
                     "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                     "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
                     "GET /status?code=204 HTTP/1.1\r\nHost: x\r\n\r\n"
                     "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n"
                     "GET /headers?last HTTP/1.1\r\nHost: x\r\n\r\n";
  assert_int_equal(tb_send_str(c.fd, reqs), 0);
  tb_raw r;
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_int_equal(r.status, 200);
  assert_true(strcmp(r.body, "b1\n") == 0 || strcmp(r.body, "b2\n") == 0);
  tb_raw_free(&r);
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_int_equal(r.status, 200);
  assert_true(strncmp(r.body, "b1 ", 3) == 0 || strncmp(r.body, "b2 ", 3) == 0);
  tb_raw_free(&r);
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_string_equal(r.body, "abc");
  tb_raw_free(&r);
  assert_int_equal(tb_conn_read_response(&c, 1, &r), 0);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.body_len, 0);
  tb_raw_free(&r);
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_int_equal(r.status, 204);
  tb_raw_free(&r);
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_string_equal(r.body, "xyz");
  tb_raw_free(&r);
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_non_null(strstr(r.body, "GET /headers?last HTTP/1.1\n"));
  tb_raw_free(&r);
  tb_conn_close(&c);
}

static void test_websocket(void **state) {
  (void)state;
  tb_conn c;
  assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
  assert_int_equal(tb_send_str(c.fd,
                               "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                               "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"),
                   0);
  tb_raw r;
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_int_equal(r.status, 101);
  assert_non_null(strcasestr(r.head, "Upgrade: websocket"));
  assert_non_null(strcasestr(r.head, "Connection: upgrade"));
  tb_raw_free(&r);
  /* raw bytes both ways, small and then larger than the socket buffers */
  size_t n = 600000;
  char *out = malloc(n), *in = malloc(n);
  for (size_t i = 0; i < n; i++) out[i] = (char)(i * 7 + 3);
  assert_int_equal(tb_send(c.fd, "\x81\x05hello", 7), 0);
  size_t got = c.len;
  memcpy(in, c.buf, c.len);
  c.len = 0;
  while (got < 7) {
    ssize_t k = recv(c.fd, in + got, 7 - got, 0);
    assert_true(k > 0);
    got += (size_t)k;
  }
  assert_memory_equal(in, "\x81\x05hello", 7);
  /* interleave sending and receiving so neither side's buffers fill */
  size_t sent = 0;
  got = 0;
  while (got < n) {
    if (sent < n) {
      size_t k = n - sent < 32768 ? n - sent : 32768;
      assert_int_equal(tb_send(c.fd, out + sent, k), 0);
      sent += k;
    }
    struct pollfd p = {.fd = c.fd, .events = POLLIN};
    while (got < n && poll(&p, 1, sent < n ? 0 : 3000) > 0) {
      ssize_t k = recv(c.fd, in + got, n - got, 0);
      assert_true(k > 0);
      got += (size_t)k;
    }
    if (sent == n && got < n) assert_true(poll(&p, 1, 3000) > 0);
  }
  assert_memory_equal(in, out, n);
  free(out);
  free(in);
  tb_conn_close(&c);
}

static void test_expect_continue(void **state) {
  (void)state;
  tb_conn c;
  assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
  assert_int_equal(tb_send_str(c.fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n"
                                     "Expect: 100-continue\r\n\r\n"),
                   0);
  tb_raw r;
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0); /* the interim answer, before any body is sent */
  assert_int_equal(r.status, 100);
  tb_raw_free(&r);
  assert_int_equal(tb_send_str(c.fd, "hello there"), 0);
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "hello there");
  tb_raw_free(&r);
  tb_conn_close(&c);
  /* an HTTP/1.0 client never sees a 1xx (RFC 9110, 15.2), even when the server sends one */
  assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
  assert_int_equal(tb_send_str(c.fd, "POST /echo HTTP/1.0\r\nHost: x\r\nContent-Length: 11\r\n"
                                     "Expect: 100-continue\r\n\r\nhello there"),
                   0);
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "hello there");
  tb_raw_free(&r);
  tb_conn_close(&c);
  /* the server invites the body with a 100, then dies: the client still gets a final answer, a 502 */
  assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
  assert_int_equal(tb_send_str(c.fd, "POST /continue-drop HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                     "Expect: 100-continue\r\n\r\n"),
                   0);
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_int_equal(r.status, 100);
  tb_raw_free(&r);
  assert_int_equal(tb_send_str(c.fd, "hello"), 0);
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_int_equal(r.status, 502);
  tb_raw_free(&r);
  tb_conn_close(&c);
  /* libcurl's own 100-continue handshake */
  size_t n = 2 * 1024 * 100;
  char *big = malloc(n);
  memset(big, 'q', n);
  const char *h[] = {"Expect: 100-continue", NULL};
  tb_resp cr;
  assert_int_equal(tb_request(NULL, "PUT", T.port, "/echo", big, n, h, &cr), 200);
  assert_int_equal(cr.len, n);
  assert_non_null(strstr(cr.head, "100 Continue"));
  tb_resp_free(&cr);
  free(big);
}

static void test_bodyless_responses(void **state) {
  (void)state;
  tb_conn c;
  assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
  struct {
    const char *req;
    int head, status;
  } steps[] = {
      {"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", 1, 200},
      {"HEAD /big?n=100000 HTTP/1.1\r\nHost: x\r\n\r\n", 1, 200},
      {"HEAD /chunked HTTP/1.1\r\nHost: x\r\n\r\n", 1, 200},
      {"GET /status?code=204 HTTP/1.1\r\nHost: x\r\n\r\n", 0, 204},
      {"GET /status?code=304 HTTP/1.1\r\nHost: x\r\n\r\n", 0, 304},
      {"HEAD /status?code=404 HTTP/1.1\r\nHost: x\r\n\r\n", 1, 404},
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0, 200},
  };
  for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
    assert_int_equal(tb_send_str(c.fd, steps[i].req), 0);
    tb_raw r;
    assert_int_equal(tb_conn_read_response(&c, steps[i].head, &r), 0);
    assert_int_equal(r.status, steps[i].status);
    if (i == 1) assert_non_null(strstr(r.head, "Content-Length: 100000\r\n"));
    if (i < 6)
      assert_int_equal(r.body_len, 0);
    else
      assert_true(strcmp(r.body, "b1\n") == 0 || strcmp(r.body, "b2\n") == 0);
    tb_raw_free(&r);
  }
  /* nothing stray follows */
  assert_int_equal(c.len, 0);
  tb_conn_close(&c);
}

static void test_http10(void **state) {
  (void)state;
  tb_raw r;
  int closed = 0;
  assert_int_equal(tb_raw_exchange(T.port, "GET / HTTP/1.0\r\n\r\n", 18, &r, &closed), 0);
  assert_int_equal(r.status, 200);
  assert_true(strcmp(r.body, "b1\n") == 0 || strcmp(r.body, "b2\n") == 0);
  assert_true(closed);
  tb_raw_free(&r);
  /* the server sees HTTP/1.0 */
  const char *q = "GET /headers HTTP/1.0\r\n\r\n";
  assert_int_equal(tb_raw_exchange(T.port, q, strlen(q), &r, &closed), 0);
  assert_non_null(strstr(r.body, "GET /headers HTTP/1.0\n"));
  assert_true(closed);
  tb_raw_free(&r);
  /* a chunked body cannot go to an HTTP/1.0 client: it runs until close */
  q = "GET /chunked?n=3 HTTP/1.0\r\n\r\n";
  assert_int_equal(tb_raw_exchange(T.port, q, strlen(q), &r, &closed), 0);
  assert_int_equal(r.status, 200);
  assert_null(strcasestr(r.head, "chunked"));
  assert_non_null(strstr(r.body, "line 2\n"));
  assert_true(closed);
  tb_raw_free(&r);
  /* HTTP/1.0 keep-alive */
  tb_conn c;
  assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(tb_send_str(c.fd, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), 0);
    assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strcasestr(r.head, "Connection: keep-alive"));
    tb_raw_free(&r);
  }
  tb_conn_close(&c);
}

/* ---- smuggling, abuse and limits ---- */

static void test_smuggling_400(void **state) {
  (void)state;
  static const struct {
    const char *what, *req;
    int status;
  } cases[] = {
      {"CL+TE", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       400},
      {"TE+CL", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
       400},
      {"differing CL", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400},
      {"CL list", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!", 400},
      {"CL sign", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello", 400},
      {"CL negative", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400},
      {"CL hex", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello", 400},
      {"CL huge", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400},
      {"TE gzip", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nhello", 400},
      {"TE chunked not last", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
       400},
      {"TE twice",
       "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       400},
      {"TE quoted", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n", 400},
      {"TE empty", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\n\r\n", 400},
      {"TE in HTTP/1.0", "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"TE unknown (501)", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501},
      {"chunk size not hex",
       "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400},
      {"chunk size negative",
       "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", 400},
      {"chunk size overflow",
       "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n",
       400},
      {"chunk size space",
       "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", 400},
      {"chunk data overrun",
       "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", 400},
      {"chunk LF only", "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n", 400},
      {"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: b\r\n  c\r\n\r\n", 400},
      {"obs-fold first", "GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400},
      {"bare CR in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: b\rc\r\n\r\n", 400},
      {"bare CR line end", "GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n", 400},
      {"space before colon", "GET / HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n", 400},
      {"space in name", "GET / HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n", 400},
      {"control in name", "GET / HTTP/1.1\r\nHost: x\r\nX\001A: b\r\n\r\n", 400},
      {"empty name", "GET / HTTP/1.1\r\nHost: x\r\n: b\r\n\r\n", 400},
      {"no colon", "GET / HTTP/1.1\r\nHost: x\r\nX-A b\r\n\r\n", 400},
      {"DEL in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: b\177\r\n\r\n", 400},
      {"bad method", "G@T / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"method with space", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"bad version 1.2", "GET / HTTP/1.2\r\nHost: x\r\n\r\n", 400},
      {"bad version 2.0", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 400},
      {"lowercase version", "GET / http/1.1\r\nHost: x\r\n\r\n", 400},
      {"version junk", "GET / HTTP/1.1x\r\nHost: x\r\n\r\n", 400},
      {"no version", "GET /\r\nHost: x\r\n\r\n", 400},
      {"bad target", "GET foo HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"CONNECT", "CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n", 400},
      {"no Host", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n", 400},
      {"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
      {"Host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
      {"binary garbage", "\x16\x03\x01\x02\x05\x01\x03\x03\xfc\x03\x03\r\n\r\n", 400},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    expect_refused(cases[i].req, cases[i].status, cases[i].what);
  /* a NUL inside a value */
  static const char nul[] = "GET / HTTP/1.1\r\nHost: x\r\nX-A: b\0c\r\n\r\n";
  expect_refused_len(nul, sizeof(nul) - 1, 400, "NUL in value");
  assert_alive();
}

/* The classic attack: a request hidden in a body must never reach a server as a request of its own. */
static void test_smuggled_request_not_forwarded(void **state) {
  (void)state;
  tb_resp before;
  assert_int_equal(tb_get(NULL, b1.port, "/stats", &before), 200);
  long req_before = atol(strstr(before.body, "requests=") + 9);
  tb_resp_free(&before);
  const char *req = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 48\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
  expect_refused(req, 400, "CL.TE with a hidden request");
  tb_resp after;
  assert_int_equal(tb_get(NULL, b1.port, "/stats", &after), 200);
  long req_after = atol(strstr(after.body, "requests=") + 9);
  tb_resp_free(&after);
  assert_int_equal(req_after, req_before + 1); /* only our own /stats */
}

static char *repeat(char ch, size_t n) {
  char *s = malloc(n + 1);
  memset(s, ch, n);
  s[n] = '\0';
  return s;
}

static void test_limits(void **state) {
  (void)state;
  /* a header section past client_header_buffer (16k by default): 431 */
  char *big = repeat('a', 20000);
  char *req = malloc(21000);
  snprintf(req, 21000, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", big);
  expect_refused(req, 431, "header section too large");
  /* the same, never finished */
  snprintf(req, 21000, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: %s", big);
  expect_refused(req, 431, "unfinished header section too large");
  /* too many header lines: 431 */
  size_t off = (size_t)snprintf(req, 21000, "GET / HTTP/1.1\r\nHost: x\r\n");
  for (int i = 0; i < 120; i++) off += (size_t)snprintf(req + off, 21000 - off, "X-H%d: v\r\n", i);
  snprintf(req + off, 21000 - off, "\r\n");
  expect_refused(req, 431, "too many headers");
  /* a URI longer than 8k: 414 */
  char *uri = repeat('u', 9000);
  snprintf(req, 21000, "GET /%s HTTP/1.1\r\nHost: x\r\n\r\n", uri);
  expect_refused(req, 414, "URI too long");
  free(uri);
  free(big);
  free(req);
  /* a declared body past client_max_body_size (1m): 413 at once */
  expect_refused("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n", 413, "Content-Length too large");
  /* a chunked body that grows past it: 413 once it does */
  tb_conn c;
  assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
  assert_int_equal(tb_send_str(c.fd, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"), 0);
  char chunk[8200];
  int n = snprintf(chunk, sizeof(chunk), "2000\r\n");
  memset(chunk + n, 'z', 8192);
  memcpy(chunk + n + 8192, "\r\n", 2);
  size_t clen = (size_t)n + 8194, sent = 0;
  int answered = 0;
  for (int i = 0; i < 200 && !answered; i++) { /* up to 1.6 MB, stopping once tether answers */
    if (tb_send(c.fd, chunk, clen) < 0) break;
    sent += 8192;
    struct pollfd p = {.fd = c.fd, .events = POLLIN};
    answered = poll(&p, 1, sent > 1000000 ? 20 : 0) > 0;
  }
  tb_raw r;
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_int_equal(r.status, 413);
  assert_true(sent > 1024 * 1024);
  tb_raw_free(&r);
  assert_true(tb_conn_closed_within(&c, 2000));
  tb_conn_close(&c);
  assert_alive();
}

/* A refused request whose body keeps coming: the client sends all of it, then reads its 413. Closing at once
 * would reset the connection under the client (its sends fail, the answer is lost); tether shuts its side
 * and drops what comes (a lingering close), then closes when the client does. */
static void test_lingering_close(void **state) {
  (void)state;
  enum { BODY = 8 * 1024 * 1024 };
  tb_conn c;
  assert_int_equal(tb_conn_open(&c, T.port, 10000), 0);
  char head[128];
  snprintf(head, sizeof(head), "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", BODY);
  assert_int_equal(tb_send_str(c.fd, head), 0);
  tt_sleep_ms(200); /* the 413 is written and tether would close here */
  char *chunk = malloc(65536);
  memset(chunk, 'b', 65536);
  size_t sent = 0;
  while (sent < BODY && tb_send(c.fd, chunk, 65536) == 0) sent += 65536;
  free(chunk);
  print_message("sent %zu of %d body bytes after the answer\n", sent, BODY);
  assert_int_equal(sent, BODY);
  tb_raw r;
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_int_equal(r.status, 413);
  tb_raw_free(&r);
  assert_true(tb_conn_closed_within(&c, 2000)); /* our FIN came after the answer */
  tb_conn_close(&c);
  assert_alive();
}

static void test_slowloris_408(void **state) {
  (void)state;
  tb_conn c;
  assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
  long long t0 = tb_now_ms();
  assert_int_equal(tb_send_str(c.fd, "GET / HTTP/1.1\r\nHost: x\r\n"), 0);
  int answered = 0;
  for (int i = 0; i < 20 && !answered; i++) { /* a header line every 200 ms, never the end of the head */
    struct pollfd p = {.fd = c.fd, .events = POLLIN};
    answered = poll(&p, 1, 200) > 0;
    if (!answered && tb_send_str(c.fd, "X-Slow: 1\r\n") < 0) break;
  }
  tb_raw r;
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  long long took = tb_now_ms() - t0;
  assert_int_equal(r.status, 408);
  assert_true(took >= 900 && took < 3000);
  tb_raw_free(&r);
  assert_true(tb_conn_closed_within(&c, 2000));
  tb_conn_close(&c);
  /* a connection that sends nothing at all is closed too */
  assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
  assert_true(tb_conn_closed_within(&c, 3000));
  tb_conn_close(&c);
  /* after a first request, a slow second head gets the same */
  assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
  assert_int_equal(tb_send_str(c.fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_int_equal(r.status, 200);
  tb_raw_free(&r);
  assert_int_equal(tb_send_str(c.fd, "GET / HTTP/1.1\r\n"), 0);
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_int_equal(r.status, 408);
  tb_raw_free(&r);
  assert_true(tb_conn_closed_within(&c, 2000));
  tb_conn_close(&c);
}

static void test_bad_responses_502(void **state) {
  (void)state;
  const char *kinds[] = {"cl2", "te_cl", "space", "fold", "status", "bare_cr", "junk"};
  for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
    char path[64];
    snprintf(path, sizeof(path), "/bad?kind=%s", kinds[i]);
    tb_resp r;
    long st = tb_get(NULL, T.port, path, &r);
    if (st != 502) fprintf(stderr, "bad response %s: status %ld\n", kinds[i], st);
    assert_int_equal(st, 502);
    tb_resp_free(&r);
  }
  /* a chunked body that goes bad right after its head: 502 when the head has not left yet (it came with
   * the body's first bytes), else the client connection is cut */
  tb_conn c;
  assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
  assert_int_equal(tb_send_str(c.fd, "GET /bad?kind=chunk HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
  tb_raw r;
  int rc = tb_conn_read_response(&c, 0, &r);
  assert_true(rc == -1 || r.status == 502);
  tb_raw_free(&r);
  assert_true(tb_conn_closed_within(&c, 2000));
  tb_conn_close(&c);
  /* bytes past a response's body never reach a later request: that server connection is not reused */
  assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(tb_send_str(c.fd, "GET /bad?kind=extra HTTP/1.1\r\nHost: x\r\n\r\n"
                                       "GET /conn HTTP/1.1\r\nHost: x\r\n\r\n"),
                     0);
    assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
    assert_string_equal(r.body, "ok");
    tb_raw_free(&r);
    assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
    assert_true(strncmp(r.body, "b1 ", 3) == 0 || strncmp(r.body, "b2 ", 3) == 0);
    tb_raw_free(&r);
  }
  tb_conn_close(&c);
  assert_alive();
}

/* A reset before the response head: idempotent requests go to the other server, others get 502. */
static void test_retry_on_reset(void **state) {
  (void)state;
  for (int i = 0; i < 10; i++) {
    tb_resp r;
    assert_int_equal(tb_get(NULL, T.port, "/drop?name=b1", &r), 200);
    assert_string_equal(r.body, "b2\n");
    tb_resp_free(&r);
    assert_int_equal(tb_request(NULL, "PUT", T.port, "/drop?name=b1", "x", 1, NULL, &r), 200);
    assert_string_equal(r.body, "b2\n");
    tb_resp_free(&r);
  }
  int ok = 0, bad = 0;
  for (int i = 0; i < 6; i++) {
    tb_resp r;
    long st = tb_request(NULL, "POST", T.port, "/drop?name=b1", "x", 1, NULL, &r);
    ok += st == 200;
    bad += st == 502;
    tb_resp_free(&r);
  }
  assert_int_equal(ok + bad, 6);
  assert_true(ok >= 1 && bad >= 1);
  /* a body larger than the socket buffers, cut by the server: an answer, not a hang */
  size_t n = 800000;
  char *big = malloc(n);
  memset(big, 'p', n);
  ok = bad = 0;
  for (int i = 0; i < 24; i++) { /* the reset lands at a different point of the upload each time */
    tb_resp r;
    const char *h[] = {"Expect:", NULL};
    char path[64];
    snprintf(path, sizeof(path), "/drop?name=b1&ms=%d", i % 6);
    long long t0 = tb_now_ms();
    long st = tb_request(NULL, "POST", T.port, path, big, n, h, &r);
    assert_true(tb_now_ms() - t0 < 5000);
    ok += st == 200;
    bad += st == 502 || st == 0; /* 0: tether closed while curl was still sending */
    tb_resp_free(&r);
  }
  free(big);
  assert_int_equal(ok + bad, 24);
  assert_true(ok >= 1);
  assert_alive();
}

/* Sum of a metric over both backends (label "server" last but one: code_class may follow). */
static double metric_sum(const char *fmt_key) {
  char *m = tb_admin_get(&T, "/metrics");
  double sum = 0;
  const tb_backend *bs[2] = {&b1, &b2};
  for (int i = 0; i < 2; i++) {
    char key[256];
    snprintf(key, sizeof(key), fmt_key, bs[i]->addr);
    double v = tb_metric(m, key);
    if (v > 0) sum += v;
  }
  free(m);
  return sum;
}

/* Once every client is gone, no connection and no request is left counted. */
static void assert_settles(void) {
  double conns = -1, active = -1;
  for (int i = 0; i < 100; i++) {
    char *m = tb_admin_get(&T, "/metrics");
    conns = tb_metric(m, "tether_active_connections");
    free(m);
    active = metric_sum("tether_server_active_requests{upstream=\"app\",server=\"%s\"}");
    if (conns == 0 && active == 0) break;
    tt_sleep_ms(30);
  }
  if (conns != 0 || active != 0) fprintf(stderr, "connections %g, requests in flight %g\n", conns, active);
  assert_true(conns == 0);
  assert_true(active == 0);
}

static void close_reset(tb_conn *c) {
  struct linger lg = {1, 0};
  setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  tb_conn_close(c);
}

/* Clients that go away at every stage of a request, politely or with a reset. */
static void test_client_aborts(void **state) {
  (void)state;
  char *body = repeat('b', 100000);
  for (int i = 0; i < 40; i++) {
    tb_conn c;
    assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
    switch (i % 8) {
    case 0: /* in the middle of a large response */
      tb_send_str(c.fd, "GET /big?n=5000000 HTTP/1.1\r\nHost: x\r\n\r\n");
      for (size_t got = 0; got < 70000;) {
        char tmp[16384];
        ssize_t k = recv(c.fd, tmp, sizeof(tmp), 0);
        if (k <= 0) break;
        got += (size_t)k;
      }
      break;
    case 1: /* while the server thinks */
      tb_send_str(c.fd, "GET /delay?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n");
      tt_sleep_ms(50);
      break;
    case 2: /* in the middle of a request body */
      tb_send_str(c.fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 500000\r\n\r\n");
      tb_send(c.fd, body, 100000);
      tt_sleep_ms(20);
      break;
    case 3: /* in a tunnel */
      tb_send_str(c.fd, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n");
      tb_send(c.fd, body, 50000);
      tt_sleep_ms(20);
      break;
    case 4: /* in the middle of a head */
      tb_send_str(c.fd, "GET / HTTP/1.1\r\nHost: x\r\nX-Half: ");
      tt_sleep_ms(10);
      break;
    case 5: /* with pipelined requests still queued */
      for (int k = 0; k < 5; k++) tb_send_str(c.fd, "GET /delay?ms=50 HTTP/1.1\r\nHost: x\r\n\r\n");
      tt_sleep_ms(60);
      break;
    case 6: /* while the connection to the server is being made or reused */
      tb_send_str(c.fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      break;
    case 7: /* a chunked request body cut mid-chunk */
      tb_send_str(c.fd, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n100000\r\n");
      tb_send(c.fd, body, 30000);
      tt_sleep_ms(20);
      break;
    }
    if (i % 2)
      close_reset(&c);
    else
      tb_conn_close(&c);
  }
  free(body);
  tt_sleep_ms(400); /* the servers finish what they were doing */
  assert_alive();
  assert_settles();
}

/* Many pipelined requests answered by tether itself, in one read: no unbounded recursion. */
static void test_pipeline_flood(void **state) {
  (void)state;
  const char *one = "GET /tether-ping HTTP/1.1\r\nHost: x\r\n\r\n";
  size_t n = 3000, ol = strlen(one);
  char *reqs = malloc(n * ol);
  for (size_t i = 0; i < n; i++) memcpy(reqs + i * ol, one, ol);
  tb_conn c;
  assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
  assert_int_equal(tb_send(c.fd, reqs, n * ol), 0);
  free(reqs);
  for (size_t i = 0; i < n; i++) {
    tb_raw r;
    assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
    assert_int_equal(r.status, 200);
    tb_raw_free(&r);
  }
  tb_conn_close(&c);
  /* and the same through the servers */
  n = 300;
  one = "GET /conn HTTP/1.1\r\nHost: x\r\n\r\n";
  ol = strlen(one);
  reqs = malloc(n * ol);
  for (size_t i = 0; i < n; i++) memcpy(reqs + i * ol, one, ol);
  assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
  assert_int_equal(tb_send(c.fd, reqs, n * ol), 0);
  free(reqs);
  for (size_t i = 0; i < n; i++) {
    tb_raw r;
    assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
    assert_int_equal(r.status, 200);
    tb_raw_free(&r);
  }
  tb_conn_close(&c);
  assert_alive();
}

/* A client that half-closes after its request still gets the answer. */
static void test_half_close(void **state) {
  (void)state;
  tb_conn c;
  assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
  assert_int_equal(tb_send_str(c.fd, "GET /delay?ms=100 HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
  shutdown(c.fd, SHUT_WR);
  tb_raw r;
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_int_equal(r.status, 200);
  tb_raw_free(&r);
  assert_true(tb_conn_closed_within(&c, 2000));
  tb_conn_close(&c);
}

/* A WebSocket session that ends normally is a 1xx answer in the metrics, not a failure. */
static void test_websocket_metrics(void **state) {
  (void)state;
  const char *err = "tether_requests_total{upstream=\"app\",server=\"%s\",code_class=\"error\"}";
  const char *info = "tether_requests_total{upstream=\"app\",server=\"%s\",code_class=\"1xx\"}";
  double err0 = metric_sum(err), info0 = metric_sum(info);
  tb_conn c;
  assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
  assert_int_equal(
      tb_send_str(c.fd, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"), 0);
  tb_raw r;
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_int_equal(r.status, 101);
  tb_raw_free(&r);
  tb_conn_close(&c);
  tt_sleep_ms(100);
  assert_settles();
  assert_true(metric_sum(err) == err0);
  assert_true(metric_sum(info) == info0 + 1);
}

/* A server slower than proxy_read_timeout: 504. */
static void test_read_timeout_504(void **state) {
  (void)state;
  long long t0 = tb_now_ms();
  tb_resp r;
  assert_int_equal(tb_get(NULL, T.port, "/delay?ms=1800", &r), 504);
  long long took = tb_now_ms() - t0;
  tb_resp_free(&r);
  assert_true(took >= 900 && took < 1700);
  assert_alive();
  assert_settles();
}

/* A client that reads slowly: tether stops reading the server and resumes, and nothing is lost. */
static void test_slow_reader(void **state) {
  (void)state;
  tb_conn c;
  assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
  size_t n = 4000000;
  assert_int_equal(tb_send_str(c.fd, "GET /big?n=4000000 HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
  tt_sleep_ms(300); /* every buffer on the way fills up */
  char *buf = malloc(n + 4096);
  size_t got = 0, head = 0;
  int rounds = 0;
  while (head == 0 || got < head + n) {
    ssize_t k = recv(c.fd, buf + got, (n + 4096 - got) < 32768 ? n + 4096 - got : 32768, 0);
    assert_true(k > 0);
    got += (size_t)k;
    if (head == 0) {
      char *e = memmem(buf, got, "\r\n\r\n", 4);
      if (e) head = (size_t)(e + 4 - buf);
    }
    if (++rounds % 16 == 0) tt_sleep_ms(20);
  }
  assert_int_equal(got, head + n);
  assert_non_null(memmem(buf, head, "Content-Length: 4000000\r\n", 25));
  int ok = 1;
  for (size_t i = 0; i < n && ok; i++) ok = buf[head + i] == (char)('a' + i % 26);
  assert_true(ok);
  free(buf);
  tb_conn_close(&c);
}

/* The admin listener takes no nonsense either. */
static void test_admin_abuse(void **state) {
  (void)state;
  static const struct {
    const char *req;
    int status;
  } cases[] = {
      {"garbage\r\n\r\n", 400},
      {"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
      {"PUT /upstreams/app/servers/x/weight HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", 400},
      {"DELETE /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n", 405},
      {"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\nGET /status HTTP/1.1\r\nHost: x\r\n\r\n", 200},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    tb_raw r;
    int closed = 0;
    assert_int_equal(tb_raw_exchange(T.admin, cases[i].req, strlen(cases[i].req), &r, &closed), 0);
    assert_int_equal(r.status, cases[i].status);
    assert_true(closed);
    tb_raw_free(&r);
  }
  char *big = malloc(9000);
  int n = snprintf(big, 9000, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ");
  memset(big + n, 'a', 9000 - (size_t)n);
  tb_raw r;
  int closed = 0;
  assert_int_equal(tb_raw_exchange(T.admin, big, 9000, &r, &closed), 0);
  assert_int_equal(r.status, 431);
  tb_raw_free(&r);
  free(big);
  for (int i = 0; i < 20; i++) { /* gone before the answer, or halfway through the request */
    tb_conn c;
    assert_int_equal(tb_conn_open(&c, T.admin, 2000), 0);
    tb_send_str(c.fd, i % 2 ? "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" : "GET /metr");
    if (i % 4 < 2)
      close_reset(&c);
    else
      tb_conn_close(&c);
  }
  char *m = tb_admin_get(&T, "/metrics");
  assert_non_null(m);
  free(m);
}

/* Everything one byte at a time, both ways: the request head and chunked body, the response head,
 * chunked body and trailers. */
static void test_byte_at_a_time(void **state) {
  (void)state;
  tb_conn c;
  assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
  const char *req = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "4\r\nbyte\r\n6;x=y\r\n-wise!\r\n0\r\nX-T: 1\r\n\r\n";
  for (size_t i = 0; req[i]; i++) {
    assert_int_equal(tb_send(c.fd, req + i, 1), 0);
    if (i % 8 == 0) tt_sleep_ms(1);
  }
  tb_raw r;
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "byte-wise!");
  tb_raw_free(&r);
  assert_int_equal(tb_send_str(c.fd, "GET /trickle?n=4 HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_int_equal(r.status, 200);
  char *body, *trailers;
  tb_dechunk(r.body, r.body_len, &body, &trailers);
  assert_non_null(strstr(body, "line 3\n"));
  assert_non_null(strstr(trailers, "X-Trailer: done"));
  free(body);
  free(trailers);
  tb_raw_free(&r);
  /* the server connection went back to the pool in a clean state: the next request works */
  assert_int_equal(tb_send_str(c.fd, "GET /conn HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_int_equal(r.status, 200);
  tb_raw_free(&r);
  tb_conn_close(&c);
}

/* A server that answers before reading the request body, and one that closes after its answer, in the
 * middle of pipelined requests. */
static void test_early_answer_and_close(void **state) {
  (void)state;
  tb_conn c;
  assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
  assert_int_equal(tb_send_str(c.fd, "GET /close HTTP/1.1\r\nHost: x\r\n\r\nGET /conn HTTP/1.1\r\nHost: x\r\n\r\n"
                                     "GET /close HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"),
                   0);
  for (int i = 0; i < 4; i++) {
    tb_raw r;
    assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.head, "Connection: close")); /* the server's close is not the client's */
    tb_raw_free(&r);
  }
  tb_conn_close(&c);
  /* an answer before the whole body went to the server: forwarded; the client connection then closes
   * when tether had not yet read the whole body (it cannot be skipped safely), else it goes on */
  char *body = repeat('e', 300000);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
    assert_int_equal(tb_send_str(c.fd, "POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n"), 0);
    tb_send(c.fd, body, 300000); /* may fail once tether has closed */
    tb_raw r;
    assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "early\n");
    tb_raw_free(&r);
    if (!tb_conn_closed_within(&c, 300)) {
      assert_int_equal(tb_send_str(c.fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
      assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
      assert_int_equal(r.status, 200);
      tb_raw_free(&r);
    }
    tb_conn_close(&c);
  }
  free(body);
  assert_alive();
  tt_sleep_ms(100);
  assert_settles();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic_and_return),
      cmocka_unit_test(test_forwarded_headers),
      cmocka_unit_test(test_access_log),
      cmocka_unit_test(test_keepalive_reuse),
      cmocka_unit_test(test_chunked_request),
      cmocka_unit_test(test_chunked_response),
      cmocka_unit_test(test_big_bodies),
      cmocka_unit_test(test_pipelining),
      cmocka_unit_test(test_websocket),
      cmocka_unit_test(test_expect_continue),
      cmocka_unit_test(test_bodyless_responses),
      cmocka_unit_test(test_http10),
      cmocka_unit_test(test_smuggling_400),
      cmocka_unit_test(test_smuggled_request_not_forwarded),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_lingering_close),
      cmocka_unit_test(test_slowloris_408),
      cmocka_unit_test(test_bad_responses_502),
      cmocka_unit_test(test_retry_on_reset),
      cmocka_unit_test(test_client_aborts),
      cmocka_unit_test(test_pipeline_flood),
      cmocka_unit_test(test_half_close),
      cmocka_unit_test(test_websocket_metrics),
      cmocka_unit_test(test_read_timeout_504),
      cmocka_unit_test(test_slow_reader),
      cmocka_unit_test(test_admin_abuse),
      cmocka_unit_test(test_byte_at_a_time),
      cmocka_unit_test(test_early_answer_and_close),
  };
  return cmocka_run_group_tests_name("balancer proxy", tests, setup, teardown);
}
