/* The admin listener's dashboard: GET / and its script are self-contained (nothing fetched from elsewhere,
 * a strict Content-Security-Policy) and need no token; GET /events streams the status once a second as
 * Server-Sent Events, under the admin API's rules (the token), shows an admin action at the next event, is
 * bounded in number, and does not hold up a stop. Real tether and backends on loopback, raw sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "balancer.h"

#define TOKEN "dashboard-admin-token-0123456789"
#define TOKEN_ENV "TB_DASHBOARD_TOKEN"

static tb_backend b1, b2;
static tb_tether T;

static int group_setup(void **state) {
  (void)state;
  tb_curl_init();
  setenv(TOKEN_ENV, TOKEN, 1);
  return tb_backend_start(&b1, "b1", 0) || tb_backend_start(&b2, "b2", 0);
}

static int group_teardown(void **state) {
  (void)state;
  tb_backend_cleanup(&b1);
  tb_backend_cleanup(&b2);
  return 0;
}

static int test_teardown(void **state) {
  (void)state;
  tb_tether_cleanup(&T);
  return 0;
}

static void start(const char *extra) {
  assert_int_equal(tb_tether_start(&T, 2,
                                   "%supstream web {\n  server %s;\n  server %s;\n  sticky cookie srv_id;\n"
                                   "  sticky_secret dashboard-test-secret-0123;\n  session_monitor connect.sid;\n}\n"
                                   "location / { proxy_pass http://web; }\n",
                                   extra, b1.addr, b2.addr),
                   0);
}

static void stop_clean(void) {
  assert_int_equal(tb_tether_stop(&T, 15000), 0);
  assert_false(tb_log_has_sanitizer_report(T.log));
}

/* ---- an event stream read from a raw socket ---- */

typedef struct stream {
  int fd;
  char *buf;
  size_t len, cap;
} stream;

static int stream_open(stream *s, const char *auth) {
  memset(s, 0, sizeof(*s));
  s->fd = tb_connect(T.admin, 3000);
  if (s->fd < 0) return -1;
  char req[512];
  snprintf(req, sizeof(req), "GET /events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s%s%s\r\n", T.admin,
           auth ? "Authorization: Bearer " : "", auth ? auth : "", auth ? "\r\n" : "");
  return tb_send_str(s->fd, req);
}

/* Reads until the stream holds n events (after its head) or timeout_ms pass; the number of events. */
static int stream_events(stream *s, int n, int timeout_ms) {
  long long end = tb_now_ms() + timeout_ms;
  for (;;) {
    int count = 0;
    for (const char *p = s->buf ? strstr(s->buf, "\r\n\r\n") : NULL; p && (p = strstr(p, "\ndata: ")); p++) count++;
    if (count >= n || tb_now_ms() >= end) return count;
    if (s->len + 4097 > s->cap) s->buf = realloc(s->buf, s->cap = s->cap * 2 + 8192);
    ssize_t k = read(s->fd, s->buf + s->len, 4096);
    if (k <= 0) return count;
    s->len += (size_t)k;
    s->buf[s->len] = '\0';
  }
}

/* The last complete event's JSON. */
static json_t *stream_last(const stream *s) {
  const char *last = NULL;
  for (const char *p = strstr(s->buf, "\ndata: "); p; p = strstr(p + 1, "\ndata: "))
    if (strstr(p, "\n\n")) last = p;
  assert_non_null(last);
  const char *e = strstr(last, "\n\n");
  json_error_t err;
  json_t *j = json_loadb(last + 7, (size_t)(e - last - 7), 0, &err);
  if (j == NULL) fprintf(stderr, "event is not JSON (%s): %.*s\n", err.text, (int)(e - last - 7), last + 7);
  assert_non_null(j);
  return j;
}

static void stream_close(stream *s) {
  if (s->fd >= 0) close(s->fd);
  free(s->buf);
  s->fd = -1;
  s->buf = NULL;
}

static json_t *server_of(json_t *status, const char *name) {
  json_t *ups = json_object_get(status, "upstreams"), *u = json_array_get(ups, 0);
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(u, "servers"), i,
                     v) if (strcmp(json_string_value(json_object_get(v, "name")), name) == 0) return v;
  return NULL;
}

/* ---- tests ---- */

static void test_page_is_self_contained(void **state) {
  (void)state;
  start("");
  tb_resp page, js;
  assert_int_equal(tb_get(NULL, T.admin, "/", &page), 200);
  assert_int_equal(tb_get(NULL, T.admin, "/dashboard.js", &js), 200);
  assert_non_null(strcasestr(page.head, "\nContent-Type: text/html; charset=utf-8"));
  assert_non_null(strcasestr(js.head, "\nContent-Type: text/javascript"));
  assert_non_null(strcasestr(page.head, "\nContent-Security-Policy: default-src 'none'; script-src 'self';"));
  assert_non_null(strstr(page.body, "<script src=\"/dashboard.js\"></script>"));
  assert_non_null(strstr(page.body, "<meta name=\"viewport\""));
  assert_non_null(strstr(js.body, "fetch('/events'"));
  /* nothing comes from another host: no absolute URL in either */
  const char *bodies[] = {page.body, js.body};
  for (int i = 0; i < 2; i++) {
    assert_null(strstr(bodies[i], "http://"));
    assert_null(strstr(bodies[i], "https://"));
    assert_null(strstr(bodies[i], "//cdn"));
  }
  tb_resp_free(&page);
  tb_resp_free(&js);
  stop_clean();
}

static void test_events_once_a_second(void **state) {
  (void)state;
  start("");
  for (int i = 0; i < 10; i++) {
    tb_resp r;
    assert_int_equal(tb_get(NULL, T.port, "/", &r), 200);
    tb_resp_free(&r);
  }
  stream s;
  assert_int_equal(stream_open(&s, NULL), 0);
  long long t0 = tb_now_ms();
  assert_int_equal(stream_events(&s, 1, 3000), 1);
  assert_non_null(strstr(s.buf, "HTTP/1.1 200 OK\r\n"));
  assert_non_null(strcasestr(s.buf, "\nContent-Type: text/event-stream\r\n"));
  assert_int_equal(stream_events(&s, 3, 4000), 3);
  long long took = tb_now_ms() - t0;
  fprintf(stderr, "  3 events in %lld ms\n", took);
  assert_true(took >= 1700 && took < 3500); /* the first at once, then one a second */
  json_t *j = stream_last(&s);
  json_t *v1 = server_of(j, b1.addr), *v2 = server_of(j, b2.addr);
  assert_non_null(v1);
  assert_non_null(v2);
  assert_string_equal(json_string_value(json_object_get(v1, "state")), "up");
  json_int_t ok = json_integer_value(json_object_get(json_object_get(v1, "requests"), "2xx")) +
                  json_integer_value(json_object_get(json_object_get(v2, "requests"), "2xx"));
  assert_int_equal(ok, 10);
  assert_true(json_is_object(json_object_get(v1, "sessions")));
  assert_true(json_is_object(json_object_get(json_array_get(json_object_get(j, "upstreams"), 0), "persistence")));
  assert_int_equal(json_array_size(json_object_get(json_object_get(j, "latency"), "counts")),
                   json_array_size(json_object_get(json_object_get(j, "latency"), "le")) + 1);
  json_decref(j);
  /* an action through the admin API shows at the next event */
  char path[128];
  snprintf(path, sizeof(path), "/upstreams/web/servers/%s/drain", b2.addr);
  assert_int_equal(tb_admin_send(&T, "POST", path, NULL, NULL), 200);
  assert_int_equal(stream_events(&s, 5, 3000), 5);
  j = stream_last(&s);
  assert_string_equal(json_string_value(json_object_get(server_of(j, b2.addr), "state")), "drain");
  json_decref(j);
  stream_close(&s);
  stop_clean();
}

static void test_events_follow_the_token(void **state) {
  (void)state;
  start("admin_auth_token env:" TOKEN_ENV ";\n");
  /* the page is static and holds nothing: served without the token; the data is not */
  tb_resp r;
  assert_int_equal(tb_get(NULL, T.admin, "/", &r), 200);
  tb_resp_free(&r);
  stream s;
  assert_int_equal(stream_open(&s, NULL), 0);
  stream_events(&s, 1, 1500);
  assert_non_null(s.buf);
  assert_non_null(strstr(s.buf, "HTTP/1.1 401 "));
  assert_null(strstr(s.buf, "data: "));
  stream_close(&s);
  assert_int_equal(stream_open(&s, "wrong-token-wrong-token-wrong"), 0);
  stream_events(&s, 1, 1500);
  assert_non_null(strstr(s.buf, "HTTP/1.1 401 "));
  stream_close(&s);
  assert_int_equal(stream_open(&s, TOKEN), 0);
  assert_int_equal(stream_events(&s, 1, 3000), 1);
  assert_non_null(strstr(s.buf, "HTTP/1.1 200 OK\r\n"));
  stream_close(&s);
  assert_false(tb_file_contains(T.log, TOKEN));
  stop_clean();
}

static void test_streams_are_bounded_and_stop(void **state) {
  (void)state;
  start("");
  stream s[17];
  for (int i = 0; i < 16; i++) {
    assert_int_equal(stream_open(&s[i], NULL), 0);
    assert_int_equal(stream_events(&s[i], 1, 3000), 1);
  }
  assert_int_equal(stream_open(&s[16], NULL), 0);
  stream_events(&s[16], 1, 1500);
  assert_non_null(s[16].buf);
  assert_non_null(strstr(s[16].buf, "HTTP/1.1 503 "));
  stream_close(&s[16]);
  /* a stream that goes away frees its place */
  stream_close(&s[0]);
  tt_sleep_ms(200);
  assert_int_equal(stream_open(&s[0], NULL), 0);
  assert_int_equal(stream_events(&s[0], 1, 3000), 1);
  /* the metrics still answer, and a stop with 16 streams open ends them and exits at once */
  char *m = tb_admin_get(&T, "/metrics");
  assert_non_null(m);
  free(m);
  long long t0 = tb_now_ms();
  stop_clean();
  assert_true(tb_now_ms() - t0 < 5000);
  for (int i = 0; i < 16; i++) stream_close(&s[i]);
}

/* A quantile of a server's latency histogram ({"counts"}, bounds "le" from the status), interpolated within
 * its bucket as the page and Prometheus do; -1 when the server has no whole answer yet. */
static double server_quantile(json_t *status, json_t *server, double q) {
  json_t *le = json_object_get(json_object_get(status, "latency"), "le");
  json_t *counts = json_object_get(json_object_get(server, "latency"), "counts");
  assert_int_equal(json_array_size(counts), json_array_size(le) + 1);
  double n = 0, seen = 0;
  for (size_t i = 0; i < json_array_size(counts); i++) n += (double)json_integer_value(json_array_get(counts, i));
  if (n == 0) return -1;
  for (size_t i = 0; i < json_array_size(counts); i++) {
    double c = (double)json_integer_value(json_array_get(counts, i));
    if (c > 0 && seen + c >= q * n) {
      if (i == json_array_size(le)) return json_real_value(json_array_get(le, i - 1));
      double lo = i ? json_real_value(json_array_get(le, i - 1)) : 0, hi = json_real_value(json_array_get(le, i));
      return lo + (hi - lo) * (q * n - seen) / c;
    }
    seen += c;
  }
  return -1;
}

/* One server answers in about 200 ms, the other at once: each one's p50 and p99, in /status, in the event
 * stream and in tether_upstream_response_seconds on /metrics, say so. */
static void test_latency_per_server(void **state) {
  (void)state;
  start("");
  int on[2] = {0, 0};
  for (int i = 0; i < 60 && (on[0] < 6 || on[1] < 6); i++) {
    tb_resp r;
    assert_int_equal(tb_get(NULL, T.port, "/delay?ms=200&name=b1", &r), 200);
    on[strcmp(r.body, "b1\n") == 0 ? 0 : 1]++;
    tb_resp_free(&r);
  }
  fprintf(stderr, "  %d answers from the slow server, %d from the fast one\n", on[0], on[1]);
  assert_true(on[0] >= 6 && on[1] >= 6);
  char *text = tb_admin_get(&T, "/status");
  assert_non_null(text);
  json_t *j = json_loads(text, 0, NULL);
  free(text);
  assert_non_null(j);
  json_t *slow = server_of(j, b1.addr), *fast = server_of(j, b2.addr);
  double sp50 = server_quantile(j, slow, 0.5), sp99 = server_quantile(j, slow, 0.99);
  double fp50 = server_quantile(j, fast, 0.5), fp99 = server_quantile(j, fast, 0.99);
  fprintf(stderr, "  slow p50 %.0f ms p99 %.0f ms, fast p50 %.1f ms p99 %.1f ms\n", sp50 * 1e3, sp99 * 1e3, fp50 * 1e3,
          fp99 * 1e3);
  assert_true(sp50 >= 0.15 && sp50 <= 0.5 && sp99 >= 0.15);
  assert_true(fp50 >= 0 && fp50 < 0.05 && fp99 < 0.1);
  json_int_t sum_us = json_integer_value(json_object_get(json_object_get(slow, "latency"), "sum_us"));
  assert_true(sum_us >= on[0] * 195000LL); /* every slow answer took its 200 ms */
  json_decref(j);
  /* the same histogram in the event stream */
  stream s;
  assert_int_equal(stream_open(&s, NULL), 0);
  assert_int_equal(stream_events(&s, 1, 3000), 1);
  j = stream_last(&s);
  assert_true(server_quantile(j, server_of(j, b1.addr), 0.5) >= 0.15);
  assert_true(server_quantile(j, server_of(j, b2.addr), 0.5) < 0.05);
  json_decref(j);
  stream_close(&s);
  /* and on /metrics, per {upstream,server} */
  char *m = tb_admin_get(&T, "/metrics"), key[256];
  assert_non_null(m);
  assert_non_null(strstr(m, "# TYPE tether_upstream_response_seconds histogram\n"));
  snprintf(key, sizeof(key), "tether_upstream_response_seconds_bucket{upstream=\"web\",server=\"%s\",le=\"0.1\"}",
           b1.addr);
  assert_true(tb_metric(m, key) == 0);
  snprintf(key, sizeof(key), "tether_upstream_response_seconds_count{upstream=\"web\",server=\"%s\"}", b1.addr);
  assert_true(tb_metric(m, key) == on[0]);
  snprintf(key, sizeof(key), "tether_upstream_response_seconds_bucket{upstream=\"web\",server=\"%s\",le=\"0.1\"}",
           b2.addr);
  assert_true(tb_metric(m, key) == on[1]);
  snprintf(key, sizeof(key), "tether_upstream_response_seconds_sum{upstream=\"web\",server=\"%s\"}", b1.addr);
  assert_true(tb_metric(m, key) >= on[0] * 0.195);
  free(m);
  stop_clean();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_page_is_self_contained, test_teardown),
      cmocka_unit_test_teardown(test_events_once_a_second, test_teardown),
      cmocka_unit_test_teardown(test_events_follow_the_token, test_teardown),
      cmocka_unit_test_teardown(test_streams_are_bounded_and_stop, test_teardown),
      cmocka_unit_test_teardown(test_latency_per_server, test_teardown),
  };
  return cmocka_run_group_tests_name("the admin listener's dashboard and event stream", tests, group_setup,
                                     group_teardown);
}
