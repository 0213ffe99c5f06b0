/* A client connection's request state, against real processes on loopback: an idle keep-alive connection
 * holds none (it comes from the worker's free list when a request begins and goes back when the connection
 * idles), so these tests make connections go idle and active again in shuffled orders, from different
 * clients and through a trusted proxy, pipeline requests, and close connections while idle and while a
 * request is in flight; over TLS too, where an idle connection also gives its memory BIOs back to a pool
 * that the next connection with bytes to move takes them from. Every answer and access log line must be its own
 * request's: a state given back dirty, or handed to two connections, shows up as another client's address or path.
 * (Under ASan, a use after free or a leak fails the run.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <unistd.h>

#include "balancer.h"

#define NCONN 24
#define ROUNDS 4

static tb_backend b1;
static tb_tether T;
static int tls_port;

static int setup(void **state) {
  (void)state;
  tb_curl_init();
  if (tb_backend_start(&b1, "b1", 0) < 0) return -1;
  tb_tether_init(&T, 1);
  if (tt_system("cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem "
                "-out cert.pem -days 2 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1",
                T.dir) != 0)
    return -1;
  tls_port = tt_free_port();
  tb_tether_write_conf(&T,
                       "listen 127.0.0.1:%d ssl;\nssl_certificate %s/cert.pem;\nssl_certificate_key %s/key.pem;\n"
                       "set_real_ip_from 127.0.0.2;\n"
                       "access_log %s/access.log json;\n"
                       "keepalive_timeout 60s;\n"
                       "upstream app {\n  server %s max_fails=0;\n  keepalive 4;\n}\n"
                       "location / { proxy_set_header X-Real-IP $remote_addr; proxy_pass http://app; }\n"
                       "location /here { return 200 \"here\"; }\n",
                       tls_port, T.dir, T.dir, T.dir, b1.addr);
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

/* Connection i's source address: every fourth one is the trusted proxy, which names another client. */
static void source_of(int i, char *src, size_t cap) {
  if (i % 4 == 0)
    snprintf(src, cap, "127.0.0.2");
  else
    snprintf(src, cap, "127.0.0.%d", 10 + i);
}

/* The client the balancer must see for connection i in round r. */
static void client_of(int i, int r, char *ip, size_t cap) {
  if (i % 4 == 0)
    snprintf(ip, cap, "10.9.%d.%d", r, i);
  else
    source_of(i, ip, cap);
}

static void send_request(tb_conn *c, int i, int r) {
  char req[256];
  if (i % 4 == 0)
    snprintf(req, sizeof(req), "GET /headers/%d/%d HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.9.%d.%d\r\n\r\n", i, r, r,
             i);
  else
    snprintf(req, sizeof(req), "GET /headers/%d/%d HTTP/1.1\r\nHost: x\r\n\r\n", i, r);
  assert_int_equal(tb_send_str(c->fd, req), 0);
}

static void check_answer(tb_conn *c, int i, int r) {
  tb_raw a;
  assert_int_equal(tb_conn_read_response(c, 0, &a), 0);
  assert_int_equal(a.status, 200);
  char want[128], ip[32];
  snprintf(want, sizeof(want), "GET /headers/%d/%d HTTP/1.1\n", i, r);
  if (strncmp(a.body, want, strlen(want)) != 0) fail_msg("connection %d round %d got: %.60s", i, r, a.body);
  client_of(i, r, ip, sizeof(ip));
  snprintf(want, sizeof(want), "\nX-Real-IP: %s\n", ip);
  if (strstr(a.body, want) == NULL) fail_msg("connection %d round %d: no %s in %s", i, r, want + 1, a.body);
  if (i % 4 != 0) { /* a direct client: its own address, and no one else's */
    snprintf(want, sizeof(want), "\nX-Forwarded-For: %s\n", ip);
    if (strstr(a.body, want) == NULL) fail_msg("connection %d round %d: no %s in %s", i, r, want + 1, a.body);
  }
  tb_raw_free(&a);
}

/* Connections go idle and active again in a different order each round (all requests of a round are in
 * flight together, then all connections idle); some sit a round out. */
static void test_idle_and_active_again(void **state) {
  (void)state;
  static tb_conn c[NCONN];
  for (int i = 0; i < NCONN; i++) {
    char src[32];
    source_of(i, src, sizeof(src));
    assert_int_equal(tb_conn_open_from(&c[i], src, T.port, 5000), 0);
  }
  for (int r = 0; r < ROUNDS; r++) {
    for (int k = 0; k < NCONN; k++) {
      int i = (k * 7 + r * 5) % NCONN;
      if ((i + r) % 5 != 0) send_request(&c[i], i, r);
    }
    for (int k = 0; k < NCONN; k++) {
      int i = (k * 7 + r * 5) % NCONN;
      if ((i + r) % 5 != 0) check_answer(&c[i], i, r);
    }
  }
  for (int i = 0; i < NCONN; i++) tb_conn_close(&c[i]);
  /* every request's access log line names its own client (the log is written every second) */
  usleep(1500 * 1000);
  char path[600];
  snprintf(path, sizeof(path), "%s/access.log", T.dir);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char line[2048];
  int seen = 0;
  while (fgets(line, sizeof(line), f)) {
    int i, r;
    const char *u = strstr(line, "\"uri\":\"/headers/");
    if (u == NULL || sscanf(u, "\"uri\":\"/headers/%d/%d\"", &i, &r) != 2) continue;
    char ip[32], want[64];
    client_of(i, r, ip, sizeof(ip));
    snprintf(want, sizeof(want), "\"client\":\"%s\"", ip);
    if (strstr(line, want) == NULL) fail_msg("access log: %s has not %s", line, want);
    if (strstr(line, "\"method\":\"GET\"") == NULL) fail_msg("access log: %s", line);
    seen++;
  }
  fclose(f);
  int want_lines = 0;
  for (int r = 0; r < ROUNDS; r++)
    for (int i = 0; i < NCONN; i++) want_lines += (i + r) % 5 != 0;
  assert_int_equal(seen, want_lines);
}

/* Pipelined requests share the connection's state one after the other, answered in order; the
 * connection then idles and does it again, the last request closing it. */
static void test_pipelined_then_idle(void **state) {
  (void)state;
  tb_conn c;
  assert_int_equal(tb_conn_open_from(&c, "127.0.0.2", T.port, 5000), 0);
  for (int batch = 0; batch < 2; batch++) {
    char reqs[2048];
    size_t n = 0;
    for (int j = 0; j < 5; j++) {
      /* the proxy names a client on some requests only: the others are the proxy's own */
      if (j % 2 == 0)
        n += (size_t)snprintf(reqs + n, sizeof(reqs) - n,
                              "GET /headers/p%d/%d HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.8.%d.%d\r\n%s\r\n", batch,
                              j, batch, j, batch == 1 && j == 4 ? "Connection: close\r\n" : "");
      else
        n += (size_t)snprintf(reqs + n, sizeof(reqs) - n, "GET /here/%d HTTP/1.1\r\nHost: x\r\n\r\n", j);
    }
    assert_int_equal(tb_send(c.fd, reqs, n), 0);
    for (int j = 0; j < 5; j++) {
      tb_raw a;
      assert_int_equal(tb_conn_read_response(&c, 0, &a), 0);
      assert_int_equal(a.status, 200);
      char want[96];
      if (j % 2 == 0) {
        snprintf(want, sizeof(want), "GET /headers/p%d/%d HTTP/1.1\n", batch, j);
        if (strncmp(a.body, want, strlen(want)) != 0) fail_msg("pipelined %d/%d got: %.60s", batch, j, a.body);
        snprintf(want, sizeof(want), "\nX-Real-IP: 10.8.%d.%d\n", batch, j);
        if (strstr(a.body, want) == NULL) fail_msg("pipelined %d/%d: no %s in %s", batch, j, want + 1, a.body);
      } else {
        assert_int_equal(strncmp(a.body, "here", 4), 0);
      }
      tb_raw_free(&a);
    }
    if (batch == 0) usleep(200 * 1000); /* idle between the batches */
  }
  assert_true(tb_conn_closed_within(&c, 2000));
  tb_conn_close(&c);
}

/* Connections closed by their clients while idle, while a request waits for the server, and halfway through
 * a head: the balancer stays up, forgets them all, and serves the next ones. */
static void test_closed_idle_and_in_flight(void **state) {
  (void)state;
  static tb_conn c[NCONN];
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < NCONN; i++) {
      assert_int_equal(tb_conn_open_from(&c[i], "127.0.0.11", T.port, 5000), 0); /* as connection 1 */
      send_request(&c[i], 1, round);
      check_answer(&c[i], 1, round);
    }
    for (int i = 0; i < NCONN; i++) {
      if (i % 3 == 1) assert_int_equal(tb_send_str(c[i].fd, "GET /delay?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
      if (i % 3 == 2) assert_int_equal(tb_send_str(c[i].fd, "GET /headers HTTP/1.1\r\nHo"), 0);
    }
    usleep(50 * 1000);
    for (int i = 0; i < NCONN; i++) tb_conn_close(&c[i]); /* idle, in flight, or mid-head */
  }
  usleep(500 * 1000); /* the delayed answers come back to closed connections */
  tb_resp r;
  assert_int_equal(tb_get(NULL, T.port, "/", &r), 200);
  tb_resp_free(&r);
  char *m = tb_admin_get(&T, "/metrics");
  assert_non_null(m);
  assert_true(tb_metric(m, "tether_active_connections") <= 1); /* libcurl's may still be open */
  free(m);
}

/* TLS connections kept alive by libcurl go idle and active again in turns (more of them than the pool keeps
 * BIOs for), each answer its own; then pipelined requests over TLS. */
static void test_tls_idle_and_active_again(void **state) {
  (void)state;
  enum { N = 20 };
  CURL *h[N];
  static tb_sink body;
  char ca[600], url[256];
  snprintf(ca, sizeof(ca), "%s/cert.pem", T.dir);
  for (int i = 0; i < N; i++) {
    h[i] = curl_easy_init();
    curl_easy_setopt(h[i], CURLOPT_CAINFO, ca);
    curl_easy_setopt(h[i], CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(h[i], CURLOPT_WRITEFUNCTION, tb_sink_collect);
    curl_easy_setopt(h[i], CURLOPT_WRITEDATA, &body);
  }
  for (int r = 0; r < 3; r++) {
    for (int k = 0; k < N; k++) {
      int i = (k * 7 + r * 3) % N;
      snprintf(url, sizeof(url), "https://127.0.0.1:%d/headers/t%d/%d", tls_port, i, r);
      curl_easy_setopt(h[i], CURLOPT_URL, url);
      body.len = 0;
      body.data[0] = '\0';
      assert_int_equal(curl_easy_perform(h[i]), CURLE_OK);
      long status = 0, connects = -1;
      curl_easy_getinfo(h[i], CURLINFO_RESPONSE_CODE, &status);
      curl_easy_getinfo(h[i], CURLINFO_NUM_CONNECTS, &connects);
      assert_int_equal(status, 200);
      if (r > 0) assert_int_equal(connects, 0); /* the kept-alive connection */
      char want[64];
      snprintf(want, sizeof(want), "GET /headers/t%d/%d HTTP/1.1\n", i, r);
      if (strncmp(body.data, want, strlen(want)) != 0) fail_msg("TLS %d/%d got: %.60s", i, r, body.data);
      assert_non_null(strstr(body.data, "\nX-Forwarded-Proto: https\n"));
    }
  }
  for (int i = 0; i < N; i++) curl_easy_cleanup(h[i]);
  char out[600];
  snprintf(out, sizeof(out), "%s/pipelined.out", T.dir);
  assert_int_equal(tt_system("printf 'GET /headers/pipe1 HTTP/1.1\\r\\nHost: x\\r\\n\\r\\nGET /here HTTP/1.1\\r\\n"
                             "Host: x\\r\\n\\r\\nGET /headers/pipe3 HTTP/1.1\\r\\nHost: x\\r\\nConnection: close"
                             "\\r\\n\\r\\n' | timeout 10 openssl s_client -connect 127.0.0.1:%d -CAfile '%s' -quiet "
                             "-ign_eof > '%s' 2>&1",
                             tls_port, ca, out),
                   0);
  FILE *f = fopen(out, "r");
  assert_non_null(f);
  static char all[16384];
  size_t n = fread(all, 1, sizeof(all) - 1, f);
  all[n] = '\0';
  fclose(f);
  const char *p1 = strstr(all, "GET /headers/pipe1 HTTP/1.1\n");
  const char *p2 = p1 ? strstr(p1, "\r\n\r\nhere") : NULL;
  const char *p3 = p2 ? strstr(p2, "GET /headers/pipe3 HTTP/1.1\n") : NULL;
  if (p3 == NULL) fail_msg("pipelined over TLS: %s", all);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_idle_and_active_again),
      cmocka_unit_test(test_pipelined_then_idle),
      cmocka_unit_test(test_closed_idle_and_in_flight),
      cmocka_unit_test(test_tls_idle_and_active_again),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
