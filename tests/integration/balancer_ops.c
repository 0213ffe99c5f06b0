/* The balancer in operation, against real processes on loopback: `tether -t`, balancing shares per
 * weight, backup servers, no server left (503), the admin API (drain/disable/enable/weight, /status,
 * /metrics), a backend killed with SIGKILL under load (retries, health checks, recovery), reload under
 * load (and a bad configuration refused), graceful stop, and nginx's http { server { } } shape. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <jansson.h>
#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "balancer.h"

static tb_backend b1, b2, b3;
static tb_tether T; /* the tether of the test running */

static int group_setup(void **state) {
  (void)state;
  tb_curl_init();
  if (tb_backend_start(&b1, "b1", 0) < 0 || tb_backend_start(&b2, "b2", 0) < 0 || tb_backend_start(&b3, "b3", 0) < 0)
    return -1;
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  tb_backend_cleanup(&b1);
  tb_backend_cleanup(&b2);
  tb_backend_cleanup(&b3);
  return 0;
}

/* Stops tether (SIGTERM): exit 0 and no sanitizer report. */
static void stop_clean(tb_tether *t) {
  assert_int_equal(tb_tether_stop(t, 15000), 0);
  assert_false(tb_log_has_sanitizer_report(t->log));
  tb_tether_cleanup(t);
}

/* Which backend answered "/": 1, 2, 3, or 0. */
static int who(const char *body) {
  if (strcmp(body, "b1\n") == 0) return 1;
  if (strcmp(body, "b2\n") == 0) return 2;
  if (strcmp(body, "b3\n") == 0) return 3;
  return 0;
}

/* n GETs of "/" (a fresh connection each, or curl's kept one); counts per backend in count[1..3], failures in
 * count[0]. */
static void sample(int port, int n, int count[4], void *curl) {
  memset(count, 0, 4 * sizeof(int));
  for (int i = 0; i < n; i++) {
    tb_resp r;
    long st = tb_get(curl, port, "/", &r);
    count[st == 200 ? who(r.body) : 0]++;
    tb_resp_free(&r);
  }
}

/* Passive health counts what docs/configuration.md says it counts: a reset halfway through a response and
 * an invalid response head each take a server with max_fails=1 out for fail_timeout. */
static void test_passive_health_counts_broken_responses(void **state) {
  (void)state;
  const char *kinds[] = {"cut", "junk"};
  for (int k = 0; k < 2; k++) {
    assert_int_equal(tb_tether_start(&T, 1,
                                     "upstream app {\n  server %s max_fails=1 fail_timeout=30s;\n"
                                     "  server %s max_fails=1 fail_timeout=30s;\n}\n"
                                     "location / { proxy_pass http://app; }\n",
                                     b1.addr, b2.addr),
                     0);
    assert_int_equal(tb_server_up(&T, "app", &b1), 1);
    char path[64];
    snprintf(path, sizeof(path), "/bad?kind=%s", kinds[k]);
    /* round robin: the first request goes to b1, which breaks it */
    tb_resp r;
    long st = tb_get(NULL, T.port, path, &r);
    tb_resp_free(&r);
    assert_true(st != 200 || k == 0); /* a cut answer may have shown its 200 before the reset */
    if (tb_server_up(&T, "app", &b1) != 0) fprintf(stderr, "%s did not take b1 out\n", kinds[k]);
    assert_int_equal(tb_server_up(&T, "app", &b1), 0);
    assert_int_equal(tb_server_up(&T, "app", &b2), 1);
    int count[4];
    sample(T.port, 6, count, NULL);
    assert_int_equal(count[2], 6); /* b1 is out for fail_timeout */
    stop_clean(&T);
  }
}

/* proxy_send_timeout: a server that stops taking the request body times out between two writes, long
 * before proxy_read_timeout. */
static void test_proxy_send_timeout(void **state) {
  (void)state;
  assert_int_equal(tb_tether_start(&T, 1,
                                   "client_max_body_size 64m;\nproxy_send_timeout 500ms;\nproxy_read_timeout 20s;\n"
                                   "upstream app { server %s max_fails=0; }\nlocation / { proxy_pass http://app; }\n",
                                   b1.addr),
                   0);
  size_t n = 32u << 20; /* more than the kernel buffers between the balancer and the server hold */
  char *body = malloc(n);
  assert_non_null(body);
  memset(body, 'x', n);
  long long t0 = tb_now_ms();
  tb_resp r;
  long st = tb_request(NULL, "POST", T.port, "/stall?ms=10000", body, n, NULL, &r);
  long long took = tb_now_ms() - t0;
  tb_resp_free(&r);
  free(body);
  if (st != 504 || took > 5000) fprintf(stderr, "status %ld after %lld ms\n", st, took);
  assert_int_equal(st, 504);
  assert_true(took < 5000);
  stop_clean(&T);
}

/* ---- tether -t ---- */

static void test_config_check(void **state) {
  (void)state;
  char *dir = tt_tmpdir("balancer-t");
  char conf[600], out[600];
  snprintf(conf, sizeof(conf), "%s/ok.conf", dir);
  snprintf(out, sizeof(out), "%s/out.txt", dir);
  FILE *f = fopen(conf, "w");
  fprintf(f, "worker_processes 2;\nlisten 127.0.0.1:8080;\nupstream app {\n  server 127.0.0.1:9001 weight=2;\n"
             "  server 127.0.0.1:9002 backup;\n  health_check uri=/health interval=1s;\n  keepalive 8;\n}\n"
             "location / { proxy_pass http://app; }\n");
  fclose(f);
  const char *ok_args[] = {"-t", "-c", conf, NULL};
  assert_int_equal(tb_tether_cmd(out, ok_args), 0);
  assert_false(tb_log_has_sanitizer_report(out));
  assert_true(tb_file_contains(out, "configuration OK"));

  snprintf(conf, sizeof(conf), "%s/bad.conf", dir);
  f = fopen(conf, "w");
  fprintf(f, "worker_processes 1;\n"                    /* 1 */
             "listen 127.0.0.1:8080;\n"                 /* 2 */
             "upstream app {\n"                         /* 3 */
             "  server 127.0.0.1:9001 weight=0;\n"      /* 4: weight out of range */
             "  bogus_directive on;\n"                  /* 5: unknown */
             "}\n"                                      /* 6 */
             "location / { proxy_pass http://nope; }\n" /* 7: no such upstream */
             "client_header_timeout 10parsecs;\n"       /* 8: bad time */
             "client_max_body_size lots;\n"             /* 9: bad size */
             "io_uring maybe;\n");                      /* 10: on or off */
  fclose(f);
  const char *bad_args[] = {"-t", "-c", conf, NULL};
  assert_int_equal(tb_tether_cmd(out, bad_args), 1);
  assert_false(tb_file_contains(out, "configuration OK"));
  int lines[] = {4, 5, 7, 8, 9, 10};
  for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
    char where[700];
    snprintf(where, sizeof(where), "%s:%d: ", conf, lines[i]);
    if (!tb_file_contains(out, where)) tt_system("cat '%s' >&2", out);
    assert_true(tb_file_contains(out, where));
  }
  assert_true(tb_file_contains(out, "bogus_directive"));
  assert_true(tb_file_contains(out, "\"io_uring\" takes on or off, got \"maybe\""));
  assert_false(tb_log_has_sanitizer_report(out));

  /* nginx's words do what nginx's do, or are refused with file:line */
  snprintf(conf, sizeof(conf), "%s/agree.conf", dir);
  f = fopen(conf, "w");
  fprintf(f, "worker_processes 2;\nerror_log stderr warn;\nevents { worker_connections 1024; }\n"
             "http {\n  client_header_buffer_size 32k;\n  large_client_header_buffers 4 8k;\n"
             "  proxy_send_timeout 30s;\n  upstream app { server 127.0.0.1:9001; }\n"
             "  server {\n    listen 127.0.0.1:8080 backlog=511 reuseport;\n    server_name example.test;\n"
             "    location / { proxy_pass http://app/; }\n  }\n}\n");
  fclose(f);
  const char *agree_args[] = {"-t", "-c", conf, NULL};
  assert_int_equal(tb_tether_cmd(out, agree_args), 0);
  assert_true(tb_file_contains(out, "configuration OK"));
  snprintf(conf, sizeof(conf), "%s/refused.conf", dir);
  f = fopen(conf, "w");
  fprintf(f, "worker_processes 65;\n"                             /* 1: above 64 */
             "listen 127.0.0.1:8080 backlog=0;\n"                 /* 2: bad backlog */
             "error_log stderr loud;\n"                           /* 3: no such level */
             "large_client_header_buffers 8 256k;\n"              /* 4: more than one 1m buffer */
             "upstream app { server 127.0.0.1:9001; }\n"          /* 5 */
             "location /api/ { proxy_pass http://app/v1/; }\n"    /* 6: a URI in proxy_pass */
             "location = /old { return 301 https://$hots/; }\n"); /* 7: no such variable */
  fclose(f);
  const char *refused_args[] = {"-t", "-c", conf, NULL};
  assert_int_equal(tb_tether_cmd(out, refused_args), 1);
  assert_false(tb_file_contains(out, "configuration OK"));
  for (int line = 1; line <= 7; line++) {
    if (line == 5) continue;
    char where[700];
    snprintf(where, sizeof(where), "%s:%d: ", conf, line);
    if (!tb_file_contains(out, where)) tt_system("cat '%s' >&2", out);
    assert_true(tb_file_contains(out, where));
  }

  /* a missing file, and a syntax error */
  snprintf(conf, sizeof(conf), "%s/missing.conf", dir);
  const char *missing[] = {"-t", "-c", conf, NULL};
  assert_int_equal(tb_tether_cmd(out, missing), 1);
  snprintf(conf, sizeof(conf), "%s/syntax.conf", dir);
  f = fopen(conf, "w");
  fprintf(f, "listen 127.0.0.1:8080;\nupstream app {\n  server 127.0.0.1:9001\n}\n");
  fclose(f);
  const char *syntax[] = {"-t", "-c", conf, NULL};
  assert_int_equal(tb_tether_cmd(out, syntax), 1);
  char where[700];
  snprintf(where, sizeof(where), "%s:3: ", conf);
  assert_true(tb_file_contains(out, where));
  assert_false(tb_log_has_sanitizer_report(out)); /* the words of a directive cut short are freed */

  const char *version[] = {"--version", NULL};
  assert_int_equal(tb_tether_cmd(out, version), 0);
  assert_true(tb_file_contains(out, "tether "));
  const char *help[] = {"--help", NULL};
  assert_int_equal(tb_tether_cmd(out, help), 0);
  assert_true(tb_file_contains(out, "usage"));
  tt_rmrf(dir);
  free(dir);
}

/* ---- balancing ---- */

static void test_weighted_shares(void **state) {
  (void)state;
  assert_int_equal(tb_tether_start(&T, 2,
                                   "upstream app { server %s weight=2; server %s; keepalive 8; }\n"
                                   "location / { proxy_pass http://app; }\n",
                                   b1.addr, b2.addr),
                   0);
  int count[4];
  sample(T.port, 300, count, NULL); /* a new connection each: both workers serve */
  fprintf(stderr, "  weight 2:1 over 300: b1 %d, b2 %d\n", count[1], count[2]);
  assert_int_equal(count[0], 0);
  assert_int_equal(count[1] + count[2], 300);
  assert_true(count[1] >= 185 && count[1] <= 215);
  void *h = tb_curl_new();
  sample(T.port, 30, count, h); /* one connection, one worker: smooth round robin is exact */
  tb_curl_free(h);
  assert_int_equal(count[1], 20);
  assert_int_equal(count[2], 10);
  stop_clean(&T);

  /* random two: weights still steer the draw */
  assert_int_equal(tb_tether_start(&T, 1,
                                   "upstream app { server %s weight=3; server %s; random two; }\n"
                                   "location / { proxy_pass http://app; }\n",
                                   b1.addr, b2.addr),
                   0);
  sample(T.port, 200, count, NULL);
  fprintf(stderr, "  random two, weight 3:1 over 200: b1 %d, b2 %d\n", count[1], count[2]);
  assert_int_equal(count[0], 0);
  assert_true(count[1] > count[2] && count[2] > 0);
  stop_clean(&T);

  /* least_conn: sequential requests tie, and ties go round robin */
  assert_int_equal(tb_tether_start(&T, 1,
                                   "upstream app { server %s; server %s; least_conn; }\n"
                                   "location / { proxy_pass http://app; }\n",
                                   b1.addr, b2.addr),
                   0);
  sample(T.port, 40, count, NULL);
  assert_int_equal(count[0], 0);
  assert_int_equal(count[1], 20);
  assert_int_equal(count[2], 20);
  stop_clean(&T);
}

static void test_backup_and_no_server(void **state) {
  (void)state;
  int dead1 = tt_free_port(), dead2 = tt_free_port();
  /* the primary is dead: the first request is retried on the backup, the next ones go there directly */
  assert_int_equal(
      tb_tether_start(&T, 1,
                      "upstream app { server 127.0.0.1:%d max_fails=1 fail_timeout=30s; server %s backup; }\n"
                      "location / { proxy_pass http://app; }\n",
                      dead1, b1.addr),
      0);
  int count[4];
  sample(T.port, 5, count, NULL);
  assert_int_equal(count[1], 5);
  char *m = tb_admin_get(&T, "/metrics");
  char key[200];
  snprintf(key, sizeof(key), "tether_upstream_connect_errors_total{upstream=\"app\",server=\"127.0.0.1:%d\"}", dead1);
  assert_true(tb_metric(m, key) >= 1);
  free(m);
  stop_clean(&T);

  /* every server dead: 502 for the first request (the connections failed), then 503 */
  assert_int_equal(
      tb_tether_start(&T, 1,
                      "upstream app { server 127.0.0.1:%d fail_timeout=30s; server 127.0.0.1:%d fail_timeout=30s; }\n"
                      "location / { proxy_pass http://app; }\n",
                      dead1, dead2),
      0);
  tb_resp r;
  assert_int_equal(tb_get(NULL, T.port, "/", &r), 502);
  tb_resp_free(&r);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(tb_get(NULL, T.port, "/", &r), 503);
    assert_string_equal(r.body, "no server is available\n");
    tb_resp_free(&r);
  }
  stop_clean(&T);

  /* every server marked down by health checks: 503 from the start */
  assert_int_equal(tb_tether_start(&T, 1,
                                   "upstream app { server 127.0.0.1:%d; server 127.0.0.1:%d;"
                                   " health_check uri=/health interval=200ms timeout=200ms; }\n"
                                   "location / { proxy_pass http://app; }\n",
                                   dead1, dead2),
                   0);
  tb_backend d1 = {.port = dead1}, d2 = {.port = dead2};
  snprintf(d1.addr, sizeof(d1.addr), "127.0.0.1:%d", dead1);
  snprintf(d2.addr, sizeof(d2.addr), "127.0.0.1:%d", dead2);
  for (int i = 0; i < 50 && (tb_server_up(&T, "app", &d1) != 0 || tb_server_up(&T, "app", &d2) != 0); i++)
    tt_sleep_ms(50);
  assert_true(tb_server_up(&T, "app", &d1) == 0);
  assert_true(tb_server_up(&T, "app", &d2) == 0);
  assert_int_equal(tb_get(NULL, T.port, "/", &r), 503);
  tb_resp_free(&r);
  stop_clean(&T);
}

/* A server that accepts connections and never answers: every health check times out. With the timeout twice
 * the interval, the timeout and the next tick fall due in the same millisecond and fire in one turn of the
 * loop, the timeout first; the tick must not reinitialise the connection whose close is still pending
 * (libuv's assertion aborted the balancer). */
static void test_health_check_timeouts(void **state) {
  (void)state;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  assert_true(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(fd, 128) == 0 &&
              getsockname(fd, (struct sockaddr *)&a, &len) == 0);
  assert_int_equal(tb_tether_start(&T, 1,
                                   "upstream app { server 127.0.0.1:%d;"
                                   " health_check uri=/health interval=100ms timeout=200ms; }\n"
                                   "location / { proxy_pass http://app; }\n",
                                   ntohs(a.sin_port)),
                   0);
  tt_sleep_ms(3000); /* about 30 checks, each timed out */
  tb_resp r;
  assert_int_equal(tb_get(NULL, T.port, "/", &r), 503); /* the server is down, and the balancer is up */
  tb_resp_free(&r);
  stop_clean(&T);
  close(fd);
}

/* ---- admin API ---- */

static json_t *status_json(tb_tether *t) {
  char *body = tb_admin_get(t, "/status");
  assert_non_null(body);
  json_error_t err;
  json_t *root = json_loads(body, 0, &err);
  if (root == NULL) fprintf(stderr, "status is not JSON: %s\n%s\n", err.text, body);
  free(body);
  assert_non_null(root);
  return root;
}

/* The server object called addr in upstream "app". */
static json_t *status_server(json_t *root, const char *addr) {
  json_t *ups = json_object_get(root, "upstreams");
  for (size_t i = 0; i < json_array_size(ups); i++) {
    json_t *u = json_array_get(ups, i);
    if (strcmp(json_string_value(json_object_get(u, "name")), "app") != 0) continue;
    json_t *ss = json_object_get(u, "servers");
    for (size_t k = 0; k < json_array_size(ss); k++) {
      json_t *s = json_array_get(ss, k);
      if (strcmp(json_string_value(json_object_get(s, "name")), addr) == 0) return s;
    }
  }
  return NULL;
}

static void assert_state(tb_tether *t, const tb_backend *b, const char *state, int weight) {
  json_t *root = status_json(t);
  json_t *s = status_server(root, b->addr);
  assert_non_null(s);
  assert_string_equal(json_string_value(json_object_get(s, "state")), state);
  assert_int_equal(json_integer_value(json_object_get(s, "weight")), weight);
  json_decref(root);
}

/* Whether /status says the active health checks of b are "passing" or "failing". */
static int health_is(tb_tether *t, const tb_backend *b, const char *want) {
  json_t *root = status_json(t);
  json_t *s = status_server(root, b->addr);
  int yes = s && strcmp(json_string_value(json_object_get(s, "health")), want) == 0;
  json_decref(root);
  return yes;
}

static void action(tb_tether *t, const char *method, const tb_backend *b, const char *what, const char *body,
                   long want) {
  char path[256];
  snprintf(path, sizeof(path), "/upstreams/app/servers/%s/%s", b->addr, what);
  char *out = NULL;
  long st = tb_admin_send(t, method, path, body, &out);
  if (st != want) fprintf(stderr, "%s %s: %ld %s\n", method, path, st, out ? out : "");
  free(out);
  assert_int_equal(st, want);
}

static void test_admin_api(void **state) {
  (void)state;
  assert_int_equal(tb_tether_start(&T, 1,
                                   "upstream app { server %s; server %s; keepalive 4; }\n"
                                   "location / { proxy_pass http://app; }\n",
                                   b1.addr, b2.addr),
                   0);
  int count[4];
  void *h = tb_curl_new();
  sample(T.port, 10, count, h);
  assert_int_equal(count[1], 5);
  json_t *root = status_json(&T);
  assert_int_equal(json_integer_value(json_object_get(root, "generation")), 1);
  json_t *s = status_server(root, b1.addr);
  assert_non_null(s);
  assert_string_equal(json_string_value(json_object_get(s, "state")), "up");
  assert_int_equal(json_integer_value(json_object_get(s, "weight")), 1);
  assert_true(json_integer_value(json_object_get(json_object_get(s, "requests"), "2xx")) >= 5);
  json_decref(root);

  action(&T, "POST", &b1, "disable", NULL, 200);
  assert_state(&T, &b1, "disabled", 1);
  sample(T.port, 10, count, h);
  assert_int_equal(count[2], 10);
  action(&T, "POST", &b1, "enable", NULL, 200);
  assert_state(&T, &b1, "up", 1);
  sample(T.port, 10, count, h);
  assert_int_equal(count[1], 5);

  action(&T, "POST", &b2, "drain", NULL, 200);
  assert_state(&T, &b2, "drain", 1);
  sample(T.port, 10, count, h);
  assert_int_equal(count[1], 10);
  action(&T, "POST", &b2, "enable", NULL, 200);

  action(&T, "PUT", &b1, "weight", "3", 200);
  assert_state(&T, &b1, "up", 3);
  sample(T.port, 40, count, h);
  assert_int_equal(count[1], 30);
  assert_int_equal(count[2], 10);

  /* refusals */
  action(&T, "PUT", &b1, "weight", "0", 400);
  action(&T, "PUT", &b1, "weight", "abc", 400);
  action(&T, "PUT", &b1, "weight", "", 400);
  action(&T, "GET", &b1, "disable", NULL, 405);
  action(&T, "POST", &b1, "weight", "2", 405);
  action(&T, "POST", &b1, "explode", NULL, 404);
  tb_backend nobody = {0};
  snprintf(nobody.addr, sizeof(nobody.addr), "127.0.0.1:1");
  action(&T, "POST", &nobody, "disable", NULL, 404);
  char *out = NULL;
  assert_int_equal(tb_admin_send(&T, "POST", "/nowhere", "", &out), 404);
  free(out);
  assert_state(&T, &b1, "up", 3);

  /* metrics */
  char *m = tb_admin_get(&T, "/metrics");
  assert_non_null(m);
  char key[256];
  snprintf(key, sizeof(key), "tether_requests_total{upstream=\"app\",server=\"%s\",code_class=\"2xx\"}", b1.addr);
  assert_true(tb_metric(m, key) >= 40);
  snprintf(key, sizeof(key), "tether_server_up{upstream=\"app\",server=\"%s\"}", b2.addr);
  assert_true(tb_metric(m, key) == 1);
  assert_true(tb_metric(m, "tether_active_connections") >= 0);
  assert_true(tb_metric(m, "tether_request_duration_seconds_count") >= 80);
  assert_true(tb_metric(m, "tether_request_duration_seconds_bucket{le=\"+Inf\"}") >= 80);
  assert_non_null(strstr(m, "# TYPE tether_request_duration_seconds histogram"));
  free(m);

  /* every server out of service: 503 */
  action(&T, "POST", &b1, "disable", NULL, 200);
  action(&T, "POST", &b2, "disable", NULL, 200);
  tb_resp r;
  assert_int_equal(tb_get(h, T.port, "/", &r), 503);
  tb_resp_free(&r);
  action(&T, "POST", &b2, "enable", NULL, 200);
  assert_int_equal(tb_get(h, T.port, "/", &r), 200);
  assert_string_equal(r.body, "b2\n");
  tb_resp_free(&r);
  tb_curl_free(h);
  stop_clean(&T);
}

/* ---- load loops ---- */

typedef struct load {
  int port;
  const char *path;
  atomic_int stop;
  int max;            /* requests at most */
  long long deadline; /* and time at most */
  atomic_long ok, fail, per[4];
  pthread_t th;
  int running;
} load;

static void *load_main(void *arg) {
  load *l = arg;
  void *h = tb_curl_new();
  for (int i = 0; i < l->max && !atomic_load(&l->stop) && tb_now_ms() < l->deadline; i++) {
    tb_resp r;
    long st = tb_get(h, l->port, l->path, &r);
    if (st == 200) {
      atomic_fetch_add(&l->ok, 1);
      atomic_fetch_add(&l->per[who(r.body)], 1);
    } else {
      atomic_fetch_add(&l->fail, 1);
      fprintf(stderr, "  load: GET %s -> %ld\n", l->path, st);
    }
    tb_resp_free(&r);
  }
  tb_curl_free(h);
  return NULL;
}

static load loads[2]; /* the load loops of the test running (stopped by its teardown if it fails) */

static void load_start(load *l, int port, int max, int ms) {
  memset(l, 0, sizeof(*l));
  l->running = 1;
  l->port = port;
  l->path = "/";
  l->max = max;
  l->deadline = tb_now_ms() + ms;
  pthread_create(&l->th, NULL, load_main, l);
}

static void load_stop(load *l) {
  if (!l->running) return;
  atomic_store(&l->stop, 1);
  pthread_join(l->th, NULL);
  l->running = 0;
}

static void test_sigkill_under_load(void **state) {
  (void)state;
  assert_int_equal(tb_tether_start(&T, 2,
                                   "upstream app {\n"
                                   "  server %s max_fails=1 fail_timeout=1s;\n"
                                   "  server %s max_fails=1 fail_timeout=1s;\n"
                                   "  health_check uri=/health interval=250ms timeout=1s fails=1 passes=1;\n"
                                   "  keepalive 16;\n"
                                   "}\n"
                                   "location / { proxy_pass http://app; }\n",
                                   b1.addr, b2.addr),
                   0);
  for (int i = 0; i < 2; i++) load_start(&loads[i], T.port, 20000, 20000);
  tt_sleep_ms(400);
  assert_true(atomic_load(&loads[0].per[2]) > 0);
  tb_backend_stop(&b2, SIGKILL);
  long long killed = tb_now_ms();
  /* passive health (a refused connection) and the health checks mark it down */
  while ((tb_server_up(&T, "app", &b2) != 0 || !health_is(&T, &b2, "failing")) && tb_now_ms() - killed < 5000)
    tt_sleep_ms(50);
  assert_true(tb_server_up(&T, "app", &b2) == 0);
  assert_true(health_is(&T, &b2, "failing"));
  fprintf(stderr, "  b2 marked down %lld ms after SIGKILL\n", tb_now_ms() - killed);
  tt_sleep_ms(300);
  long b2_before = atomic_load(&loads[0].per[2]) + atomic_load(&loads[1].per[2]);
  /* back on the same port: the health checks bring it back, and traffic follows */
  assert_int_equal(tb_backend_start(&b2, "b2", b2.port), 0);
  long long restarted = tb_now_ms();
  while ((tb_server_up(&T, "app", &b2) != 1 || !health_is(&T, &b2, "passing")) && tb_now_ms() - restarted < 5000)
    tt_sleep_ms(50);
  assert_true(tb_server_up(&T, "app", &b2) == 1);
  assert_true(health_is(&T, &b2, "passing"));
  while (atomic_load(&loads[0].per[2]) + atomic_load(&loads[1].per[2]) < b2_before + 20 &&
         tb_now_ms() - restarted < 5000)
    tt_sleep_ms(20);
  for (int i = 0; i < 2; i++) load_stop(&loads[i]);
  long ok = loads[0].ok + loads[1].ok, fail = loads[0].fail + loads[1].fail;
  long b2_after = loads[0].per[2] + loads[1].per[2];
  fprintf(stderr, "  under load: %ld ok, %ld failed; b2 answered %ld before the restart, %ld after\n", ok, fail,
          b2_before, b2_after - b2_before);
  assert_true(ok > 200);
  assert_true(fail <= 2); /* at most the requests in flight at the kill, one per load loop */
  assert_true(b2_after >= b2_before + 20);
  tb_resp r;
  assert_int_equal(tb_get(NULL, T.port, "/", &r), 200);
  tb_resp_free(&r);
  stop_clean(&T);
}

static void test_reload_under_load(void **state) {
  (void)state;
  const char *two = "upstream app { server %s; server %s; keepalive 8; }\nlocation / { proxy_pass http://app; }\n";
  const char *three = "access_log %s/access.log;\n"
                      "upstream app { server %s; server %s; server %s weight=2; keepalive 8; }\n"
                      "location / { proxy_pass http://app; }\n";
  assert_int_equal(tb_tether_start(&T, 2, two, b1.addr, b2.addr), 0);
  for (int i = 0; i < 2; i++) load_start(&loads[i], T.port, 20000, 20000);
  tt_sleep_ms(200);
  for (int i = 0; i < 6; i++) {
    if (i % 2 == 0)
      tb_tether_write_conf(&T, three, T.dir, b1.addr, b2.addr, b3.addr);
    else
      tb_tether_write_conf(&T, two, b1.addr, b2.addr);
    kill(T.pid, SIGHUP);
    tt_sleep_ms(250);
  }
  /* a burst of reloads, faster than they can be carried out */
  for (int i = 0; i < 10; i++) kill(T.pid, SIGHUP);
  double gen = 0; /* wait until it settles (signals sent together may count once) */
  char *m = NULL;
  for (int stable = 0, i = 0; stable < 5 && i < 150; i++) {
    tt_sleep_ms(50);
    m = tb_admin_get(&T, "/metrics");
    double g = tb_metric(m, "tether_config_generation");
    free(m);
    stable = g == gen ? stable + 1 : 0;
    gen = g;
  }
  m = NULL;
  assert_true(gen >= 8);
  /* the last one had b2 and b1 only; now the one with b3, and it serves */
  tb_tether_write_conf(&T, three, T.dir, b1.addr, b2.addr, b3.addr);
  kill(T.pid, SIGHUP);
  long long t0 = tb_now_ms();
  while (tb_now_ms() - t0 < 3000) {
    free(m);
    m = tb_admin_get(&T, "/metrics");
    if (tb_metric(m, "tether_config_generation") == gen + 1) break;
    tt_sleep_ms(20);
  }
  assert_true(tb_metric(m, "tether_config_generation") == gen + 1);
  assert_true(tb_metric(m, "tether_config_reload_failures_total") == 0);
  assert_true(tb_metric(m, "tether_config_last_reload_success") == 1);
  free(m);
  long b3_before = atomic_load(&loads[0].per[3]) + atomic_load(&loads[1].per[3]);
  int count[4];
  sample(T.port, 40, count, NULL);
  assert_true(count[3] >= 10);
  assert_int_equal(count[0], 0);

  /* a bad configuration is refused, with its reason, and the running one keeps serving */
  FILE *f = fopen(T.conf, "a");
  fprintf(f, "upstream broken { server nowhere; }\n");
  fclose(f);
  kill(T.pid, SIGHUP);
  t0 = tb_now_ms();
  while (!tb_file_contains(T.log, "reload refused") && tb_now_ms() - t0 < 3000) tt_sleep_ms(20);
  assert_true(tb_file_contains(T.log, "reload refused"));
  char where[600];
  snprintf(where, sizeof(where), "%s:7: ", T.conf);
  assert_true(tb_file_contains(T.log, where));
  m = tb_admin_get(&T, "/metrics");
  assert_true(tb_metric(m, "tether_config_generation") == gen + 1);
  assert_true(tb_metric(m, "tether_config_reload_failures_total") == 1); /* what an alert watches */
  assert_true(tb_metric(m, "tether_config_last_reload_success") == 0);
  free(m);
  /* the next good reload clears it; the failure stays counted */
  tb_tether_write_conf(&T, three, T.dir, b1.addr, b2.addr, b3.addr);
  kill(T.pid, SIGHUP);
  m = NULL;
  for (t0 = tb_now_ms(); tb_now_ms() - t0 < 3000; tt_sleep_ms(20)) {
    free(m);
    m = tb_admin_get(&T, "/metrics");
    if (tb_metric(m, "tether_config_generation") == gen + 2) break;
  }
  assert_true(tb_metric(m, "tether_config_last_reload_success") == 1);
  assert_true(tb_metric(m, "tether_config_reload_failures_total") == 1);
  free(m);
  tt_sleep_ms(300);
  for (int i = 0; i < 2; i++) load_stop(&loads[i]);
  long ok = loads[0].ok + loads[1].ok, fail = loads[0].fail + loads[1].fail;
  long b3_total = loads[0].per[3] + loads[1].per[3];
  fprintf(stderr, "  reload under load: %ld ok, %ld failed, b3 %ld (%ld after the last reload)\n", ok, fail, b3_total,
          b3_total - b3_before);
  assert_int_equal(fail, 0);
  assert_true(ok > 200);
  assert_true(b3_total > b3_before);
  stop_clean(&T);
}

/* A request whose server resets it after a reload is retried under the configuration it began with,
 * while the worker already balances with the new one (fewer upstreams, fewer servers). */
static void test_reload_during_retry(void **state) {
  (void)state;
  const char *before = "upstream other { server %s; }\n"
                       "upstream app { server %s max_fails=0; server %s max_fails=0; server %s max_fails=0; }\n"
                       "location /other { proxy_pass http://other; }\n"
                       "location / { proxy_pass http://app; }\n";
  const char *after = "upstream app { server %s max_fails=0; }\nlocation / { proxy_pass http://app; }\n";
  assert_int_equal(tb_tether_start(&T, 1, before, b3.addr, b1.addr, b2.addr, b3.addr), 0);
  for (int round = 0; round < 2; round++) {
    if (round == 1) { /* back to the first shape, then the same again with one upstream kept */
      tb_tether_write_conf(&T, before, b3.addr, b1.addr, b2.addr, b3.addr);
      kill(T.pid, SIGHUP);
      tt_sleep_ms(300);
    }
    tb_conn c;
    assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
    /* round robin starts with b1, which holds the request 600 ms and resets it */
    assert_int_equal(tb_send_str(c.fd, "GET /drop?name=b1&ms=600 HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    tt_sleep_ms(200);
    if (round == 0)
      tb_tether_write_conf(&T, after, b2.addr);
    else
      tb_tether_write_conf(&T,
                           "upstream app { server %s max_fails=0; }\nupstream more { server %s; }\n"
                           "location / { proxy_pass http://app; }\nlocation /more { proxy_pass http://more; }\n",
                           b2.addr, b3.addr);
    kill(T.pid, SIGHUP);
    tb_raw r;
    assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_true(strcmp(r.body, "b2\n") == 0 || strcmp(r.body, "b3\n") == 0);
    tb_raw_free(&r);
    tb_conn_close(&c);
    int count[4];
    sample(T.port, 4, count, NULL);
    assert_int_equal(count[2], 4);
  }
  stop_clean(&T);
}

/* ---- stopping ---- */

static void test_graceful_stop(void **state) {
  (void)state;
  assert_int_equal(tb_tether_start(&T, 2,
                                   "shutdown_timeout 5s;\n"
                                   "upstream app { server %s; keepalive 4; }\nlocation / { proxy_pass http://app; }\n",
                                   b1.addr),
                   0);
  tb_conn busy, idle;
  assert_int_equal(tb_conn_open(&busy, T.port, 5000), 0);
  assert_int_equal(tb_conn_open(&idle, T.port, 5000), 0);
  tb_raw r;
  assert_int_equal(tb_send_str(idle.fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
  assert_int_equal(tb_conn_read_response(&idle, 0, &r), 0);
  tb_raw_free(&r);
  assert_int_equal(tb_send_str(busy.fd, "GET /delay?ms=1000 HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
  tt_sleep_ms(200);
  long long t0 = tb_now_ms();
  kill(T.pid, SIGTERM);
  /* the idle keep-alive connection is closed at once; new connections are refused */
  assert_true(tb_conn_closed_within(&idle, 1000));
  tb_conn_close(&idle);
  tt_sleep_ms(100);
  int fd = tb_connect(T.port, 1000);
  if (fd >= 0) close(fd);
  assert_true(fd < 0);
  /* the request in flight completes */
  assert_int_equal(tb_conn_read_response(&busy, 0, &r), 0);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "b1\n");
  assert_non_null(strstr(r.head, "Connection: close"));
  tb_raw_free(&r);
  assert_true(tb_conn_closed_within(&busy, 2000));
  tb_conn_close(&busy);
  assert_int_equal(tb_tether_wait(&T, 5000), 0);
  long long took = tb_now_ms() - t0;
  assert_true(took >= 600 && took < 4000);
  assert_false(tb_log_has_sanitizer_report(T.log));
  tb_tether_cleanup(&T);

  /* a request longer than the grace period is cut when it ends, and tether still exits 0 */
  assert_int_equal(tb_tether_start(&T, 1,
                                   "shutdown_timeout 500ms;\n"
                                   "upstream app { server %s; }\nlocation / { proxy_pass http://app; }\n",
                                   b1.addr),
                   0);
  assert_int_equal(tb_conn_open(&busy, T.port, 5000), 0);
  assert_int_equal(tb_send_str(busy.fd, "GET /delay?ms=3000 HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
  tt_sleep_ms(200);
  t0 = tb_now_ms();
  kill(T.pid, SIGTERM);
  assert_int_equal(tb_tether_wait(&T, 5000), 0);
  took = tb_now_ms() - t0;
  assert_true(took >= 400 && took < 2500);
  assert_true(tb_conn_closed_within(&busy, 1000));
  tb_conn_close(&busy);
  assert_false(tb_log_has_sanitizer_report(T.log));
  tb_tether_cleanup(&T);
}

/* nginx's shape: http { upstream { } server { listen; location { proxy_pass } } } */
static void test_nginx_shape(void **state) {
  (void)state;
  tb_tether_init(&T, 1);
  FILE *f = fopen(T.conf, "w");
  fprintf(f,
          "# pasted from nginx\n"
          "events { worker_connections 1024; }\n"
          "worker_processes 1;\n"
          "http {\n"
          "    upstream backend {\n"
          "        server %s weight=1 max_fails=3 fail_timeout=10s;\n"
          "        server %s;\n"
          "        keepalive 32;\n"
          "    }\n"
          "    server {\n"
          "        listen 127.0.0.1:%d;\n"
          "        admin_listen 127.0.0.1:%d;\n"
          "        server_name example.test;\n"
          "        location / {\n"
          "            proxy_pass http://backend;\n"
          "            proxy_http_version 1.1;\n"
          "            proxy_set_header Connection \"\";\n"
          "        }\n"
          "        location = /healthz { return 200 \"fine\"; }\n"
          "    }\n"
          "}\n",
          b1.addr, b2.addr, T.port, T.admin);
  fclose(f);
  assert_int_equal(tb_tether_run(&T), 0);
  int count[4];
  sample(T.port, 10, count, NULL);
  assert_int_equal(count[1], 5);
  assert_int_equal(count[2], 5);
  tb_resp r;
  assert_int_equal(tb_get(NULL, T.port, "/healthz", &r), 200);
  assert_string_equal(r.body, "fine\n");
  tb_resp_free(&r);
  stop_clean(&T);
}

/* The transport each worker runs, said at start: `io_uring off;` is epoll, `io_uring on;` io_uring where the
 * kernel allows it (/proc/sys/kernel/io_uring_disabled 0), and requests and keep-alive work on both. */
static void test_io_uring_choice(void **state) {
  (void)state;
  /* whether this machine lets a process make a ring at all (a kernel switch, or a container's seccomp
   * profile, may refuse it): then `on` must fall back to epoll and say why */
  struct io_uring ring;
  int disabled = io_uring_queue_init(8, &ring, 0) < 0;
  if (!disabled) io_uring_queue_exit(&ring);
  if (disabled) print_message("io_uring is refused here: the fallback is what is checked\n");
  const char *modes[] = {"off", "on"};
  for (int m = 0; m < 2; m++) {
    assert_int_equal(tb_tether_start(&T, 2,
                                     "io_uring %s;\nupstream app { server %s; server %s; keepalive 4; }\n"
                                     "location / { proxy_pass http://app; }\n",
                                     modes[m], b1.addr, b2.addr),
                     0);
    const char *want = m == 0 || disabled ? "worker 1: plain TCP over epoll (" : "worker 1: plain TCP over io_uring";
    assert_true(tb_file_waits_for(T.log, want, 5000));
    /* each worker logs its own line, in either order */
    assert_true(tb_file_waits_for(
        T.log, m == 0 ? "worker 0: plain TCP over epoll (io_uring off)" : "worker 0: plain TCP over", 5000));
    if (m == 1 && disabled) assert_true(tb_file_contains(T.log, "failed"));
    assert_false(tb_file_contains(T.log, m == 0 ? "over io_uring" : "(io_uring off)"));
    void *curl = tb_curl_new(); /* one kept-alive client connection, and pooled server connections */
    int count[4];
    sample(T.port, 20, count, curl);
    tb_curl_free(curl);
    assert_int_equal(count[0], 0);
    assert_int_equal(count[1], 10);
    assert_int_equal(count[2], 10);
    stop_clean(&T);
  }
}

/* After each test, passed or not: no load loop left running, no tether left behind, every backend up. */
static int test_teardown(void **state) {
  (void)state;
  for (int i = 0; i < 2; i++) load_stop(&loads[i]);
  tb_tether_cleanup(&T);
  tb_backend *bs[3] = {&b1, &b2, &b3}; /* one a failed test left killed comes back for the next */
  for (int i = 0; i < 3; i++)
    if (bs[i]->pid == 0 && tb_backend_start(bs[i], bs[i]->name, bs[i]->port) < 0) return -1;
  return 0;
}

/* argv[1], when given, runs only the tests whose name matches it. */
int main(int argc, char **argv) {
  if (argc > 1) cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_config_check, test_teardown),
      cmocka_unit_test_teardown(test_weighted_shares, test_teardown),
      cmocka_unit_test_teardown(test_backup_and_no_server, test_teardown),
      cmocka_unit_test_teardown(test_health_check_timeouts, test_teardown),
      cmocka_unit_test_teardown(test_admin_api, test_teardown),
      cmocka_unit_test_teardown(test_sigkill_under_load, test_teardown),
      cmocka_unit_test_teardown(test_reload_under_load, test_teardown),
      cmocka_unit_test_teardown(test_reload_during_retry, test_teardown),
      cmocka_unit_test_teardown(test_graceful_stop, test_teardown),
      cmocka_unit_test_teardown(test_nginx_shape, test_teardown),
      cmocka_unit_test_teardown(test_io_uring_choice, test_teardown),
      cmocka_unit_test_teardown(test_passive_health_counts_broken_responses, test_teardown),
      cmocka_unit_test_teardown(test_proxy_send_timeout, test_teardown),
  };
  return cmocka_run_group_tests_name("balancer operations", tests, group_setup, group_teardown);
}
