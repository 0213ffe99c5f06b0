/* Server connection reuse, against real processes on loopback: the scripted backends count the connections
 * they accepted and those open now, which is what the balancer's pool looks like from the server's side.
 * - The default (no `keepalive`): a second request reuses the first one's connection; a burst of N at once
 *   leaves N open and a second burst reuses them all; the pool then shrinks to what demand needs, period by
 *   period, and to nothing after keepalive_timeout.
 * - A server that closes idle connections (as nginx's keepalive_timeout does), probed at and around its
 *   timeout: no client ever sees an error, GET or POST; one that closes a kept connection as a request
 *   arrives: a GET goes again on a new connection, a POST is not sent twice.
 * - `keepalive N` caps the idle connections of the whole upstream at N (nginx), `keepalive 0` keeps none,
 *   keepalive_requests and keepalive_time end a connection's reuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "balancer.h"

#define BURST 40

static tb_backend b1, b2;
static tb_tether T;

/* A backend of its own for each test (its counters start at zero), and tether with the upstream's lines. */
static void start(int idle_ms, int two, const char *upstream_lines) {
  memset(&b1, 0, sizeof(b1));
  memset(&b2, 0, sizeof(b2));
  b1.idle_ms = b2.idle_ms = idle_ms;
  assert_int_equal(tb_backend_start(&b1, "b1", 0), 0);
  if (two) assert_int_equal(tb_backend_start(&b2, "b2", 0), 0);
  char servers[128];
  snprintf(servers, sizeof(servers), "server %s max_fails=0;%s%s%s", b1.addr, two ? " server " : "", two ? b2.addr : "",
           two ? " max_fails=0;" : "");
  tb_tether_init(&T, 1);
  tb_tether_write_conf(&T,
                       "access_log %s/access.log;\n"
                       "upstream app { %s %s }\n"
                       "location / { proxy_pass http://app; }\n",
                       T.dir, servers, upstream_lines);
  assert_int_equal(tb_tether_run(&T), 0);
}

static int test_teardown(void **state) {
  (void)state;
  int st = tb_tether_stop(&T, 15000);
  int san = tb_log_has_sanitizer_report(T.log);
  tb_tether_cleanup(&T);
  tb_backend_cleanup(&b1);
  tb_backend_cleanup(&b2);
  return st != 0 || san ? -1 : 0;
}

/* A counter of the backend's /stats ("connections", "requests", "open"), asked directly (not through tether);
 * "open" leaves out the connection that asks. */
static long stat_of(const tb_backend *b, const char *key) {
  tb_resp r;
  long v = -1;
  char k[32];
  snprintf(k, sizeof(k), "%s=", key);
  if (tb_get(NULL, b->port, "/stats", &r) == 200 && r.body && strstr(r.body, k))
    v = strtol(strstr(r.body, k) + strlen(k), NULL, 10);
  tb_resp_free(&r);
  return strcmp(key, "open") == 0 && v > 0 ? v - 1 : v;
}

/* Open connections once they settle at want (a closed connection's thread notices a moment later), or the
 * last count after timeout_ms. */
static long open_settles(const tb_backend *b, long want, int timeout_ms) {
  long long end = tb_now_ms() + timeout_ms;
  long n;
  while ((n = stat_of(b, "open")) != want && tb_now_ms() < end) tt_sleep_ms(50);
  return n;
}

/* n requests in flight together, each on its own client connection; every answer must be a 200. */
static void burst(int n, const char *path) {
  static tb_conn c[BURST];
  char req[256];
  snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
  for (int i = 0; i < n; i++) {
    assert_int_equal(tb_conn_open(&c[i], T.port, 5000), 0);
    assert_int_equal(tb_send_str(c[i].fd, req), 0);
  }
  for (int i = 0; i < n; i++) {
    tb_raw r;
    assert_int_equal(tb_conn_read_response(&c[i], 0, &r), 0);
    assert_int_equal(r.status, 200);
    tb_raw_free(&r);
    tb_conn_close(&c[i]);
  }
}

static void get_ok(const char *path, char *body, size_t cap) {
  tb_resp r;
  assert_int_equal(tb_get(NULL, T.port, path, &r), 200);
  if (body) snprintf(body, cap, "%s", r.body);
  tb_resp_free(&r);
}

/* Without `keepalive`, two requests one after the other (each on a new client connection) share one server
 * connection. */
static void test_default_reuses(void **state) {
  (void)state;
  start(0, 0, "");
  long before = stat_of(&b1, "connections");
  char one[64], two[64];
  get_ok("/conn", one, sizeof(one));
  get_ok("/conn", two, sizeof(two));
  assert_string_equal(one, two);
  /* the backend accepted tether's connection and our second /stats call, nothing else */
  assert_int_equal(stat_of(&b1, "connections") - before, 2);
  assert_int_equal(open_settles(&b1, 1, 2000), 1);
}

/* A burst of BURST requests at once: the pool keeps them all (above its minimum of 16), a second burst opens
 * nothing new, and keepalive_timeout closes them all. */
static void test_burst_kept_then_timed_out(void **state) {
  (void)state;
  start(0, 0, "keepalive_timeout 2s;");
  burst(BURST, "/delay?ms=300");
  assert_int_equal(open_settles(&b1, BURST, 2000), BURST);
  long accepted = stat_of(&b1, "connections");
  burst(BURST, "/delay?ms=300");
  assert_int_equal(stat_of(&b1, "connections") - accepted, 1); /* the /stats call only */
  assert_int_equal(open_settles(&b1, BURST, 1000), BURST);
  assert_int_equal(open_settles(&b1, 0, 4000), 0);
  get_ok("/", NULL, 0); /* and a new one when needed */
}

/* When demand falls, the surplus goes period by period (5 s): after a burst of BURST and nothing since, the
 * estimate halves each period toward the minimum of 16 kept. */
static void test_surplus_shrinks(void **state) {
  (void)state;
  start(0, 0, "");
  burst(BURST, "/delay?ms=200");
  assert_int_equal(open_settles(&b1, BURST, 2000), BURST);
  long long t0 = tb_now_ms();
  /* the burst's period ends within 5 s; the next one keeps half (20), then the minimum (16) */
  long n = open_settles(&b1, BURST / 2, 13000);
  assert_int_equal(n, BURST / 2);
  assert_true(tb_now_ms() - t0 >= 4000);
  assert_int_equal(open_settles(&b1, 16, 7000), 16);
  tt_sleep_ms(5500); /* and never below the minimum */
  assert_int_equal(stat_of(&b1, "open"), 16);
  long accepted = stat_of(&b1, "connections");
  burst(16, "/delay?ms=200");
  assert_int_equal(stat_of(&b1, "connections") - accepted, 1); /* the /stats call only */
}

/* A server that closes connections idle for 150 ms: requests sent before, at and after that moment, on
 * connections it may be closing as the request arrives. GETs go again on a new connection; a POST (sent at
 * waits clear of the edge) goes on a connection the balancer knows is open. No client sees an error. */
static void test_server_closes_idle(void **state) {
  (void)state;
  start(150, 0, "");
  static const int waits[] = {0, 100, 140, 145, 148, 150, 152, 155, 160, 200, 300};
  int nwaits = (int)(sizeof(waits) / sizeof(waits[0]));
  for (int i = 0; i < 3 * nwaits; i++) {
    tt_sleep_ms(waits[i % nwaits]);
    tb_resp r;
    /* POSTs only away from the 150 ms edge: a POST sent as the server closes (its FIN still in flight) cannot
     * be known to fail safely and is not sent again, by Tether as by nginx; under a sanitizer's slowness a
     * 145 ms wait reached the server after its close */
    int edge = waits[i % nwaits] >= 140 && waits[i % nwaits] < 160;
    long st = i % 4 == 3 && !edge ? tb_request(NULL, "POST", T.port, "/echo", "body", 4, NULL, &r)
                                  : tb_get(NULL, T.port, "/conn", &r);
    if (st != 200) fail_msg("request %d after %d ms idle: %ld", i, waits[i % nwaits], st);
    tb_resp_free(&r);
  }
  assert_false(tb_file_contains(T.log, "] error: "));
  char log[600];
  snprintf(log, sizeof(log), "%s/access.log", T.dir);
  assert_false(tb_file_contains(log, "\" 502 "));
}

/* A kept connection the server closes as the next request arrives (the backend's /oneshot): a GET goes again
 * on a new connection to the same server (the only one), a POST is not sent twice and gets a 502. */
static void test_closed_as_request_arrives(void **state) {
  (void)state;
  start(0, 0, "");
  char one[64], two[64];
  get_ok("/oneshot", one, sizeof(one));
  get_ok("/conn", two, sizeof(two));
  assert_string_not_equal(one, two); /* answered on a new connection */
  get_ok("/oneshot", NULL, 0);
  long served = stat_of(&b1, "requests");
  tb_resp r;
  assert_int_equal(tb_request(NULL, "POST", T.port, "/echo", "once", 4, NULL, &r), 502);
  tb_resp_free(&r);
  assert_int_equal(stat_of(&b1, "requests") - served, 1); /* the /stats call: the POST was not served */
  get_ok("/conn", NULL, 0);
}

/* `keepalive 2` (nginx): at most 2 idle connections for the whole upstream (both servers), whatever the burst. */
static void test_keepalive_caps_upstream(void **state) {
  (void)state;
  start(0, 1, "keepalive 2;");
  burst(BURST, "/delay?ms=200");
  long long end = tb_now_ms() + 2000;
  long open = -1;
  while (tb_now_ms() < end && (open = stat_of(&b1, "open") + stat_of(&b2, "open")) != 2) tt_sleep_ms(50);
  assert_int_equal(open, 2);
  /* one request at a time, alternating servers: the two kept may both be one server's, so the other's first
   * request opens one (pushing the least recently used out); then nothing new is opened */
  long accepted = stat_of(&b1, "connections") + stat_of(&b2, "connections");
  for (int i = 0; i < 10; i++) get_ok("/", NULL, 0);
  long opened = stat_of(&b1, "connections") + stat_of(&b2, "connections") - accepted - 2; /* 2 /stats calls */
  assert_in_range(opened, 0, 1);
  end = tb_now_ms() + 2000;
  while (tb_now_ms() < end && (open = stat_of(&b1, "open") + stat_of(&b2, "open")) != 2) tt_sleep_ms(50);
  assert_int_equal(open, 2);
  assert_int_equal(stat_of(&b1, "open"), 1); /* and one to each server */
}

/* `keepalive 0`: every server connection closes after its answer (and the request says so). */
static void test_keepalive_zero(void **state) {
  (void)state;
  start(0, 0, "keepalive 0;");
  char one[64], two[64], head[512];
  get_ok("/conn", one, sizeof(one));
  get_ok("/conn", two, sizeof(two));
  assert_string_not_equal(one, two);
  get_ok("/headers", head, sizeof(head));
  assert_non_null(strstr(head, "\nConnection: close\n"));
  assert_int_equal(open_settles(&b1, 0, 2000), 0);
}

/* keepalive_requests 3: a connection carries 3 requests, then closes; keepalive_time 1s: no request after
 * the one that ends past that age. */
static void test_requests_and_time(void **state) {
  (void)state;
  start(0, 0, "keepalive_requests 3; keepalive_time 1s;");
  char body[7][64];
  for (int i = 0; i < 7; i++) get_ok("/conn", body[i], sizeof(body[i]));
  assert_string_equal(body[0], body[2]);
  assert_string_not_equal(body[2], body[3]);
  assert_string_equal(body[3], body[5]);
  assert_string_not_equal(body[5], body[6]);
  tt_sleep_ms(1200);
  char later[64], last[64];
  get_ok("/conn", later, sizeof(later)); /* the 7th's connection, reused once more: it ends past 1 s */
  get_ok("/conn", last, sizeof(last));
  assert_string_equal(later, body[6]);
  assert_string_not_equal(last, later);
}

int main(void) {
  tb_curl_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_default_reuses, test_teardown),
      cmocka_unit_test_teardown(test_burst_kept_then_timed_out, test_teardown),
      cmocka_unit_test_teardown(test_surplus_shrinks, test_teardown),
      cmocka_unit_test_teardown(test_server_closes_idle, test_teardown),
      cmocka_unit_test_teardown(test_closed_as_request_arrives, test_teardown),
      cmocka_unit_test_teardown(test_keepalive_caps_upstream, test_teardown),
      cmocka_unit_test_teardown(test_keepalive_zero, test_teardown),
      cmocka_unit_test_teardown(test_requests_and_time, test_teardown),
  };
  return cmocka_run_group_tests_name("balancer_pool", tests, NULL, NULL);
}
