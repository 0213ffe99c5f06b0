/* tether-app (src/app/main.c), end to end: the real binary on a real redis-server, driven with libcurl
 * and raw sockets.
 *   - the routes and their JSON: /whoami counts visits, /cart appends, /login regenerates the id (the old
 *     cookie names no session any more) and keeps visits and cart, /logout destroys, /, 400/404/405;
 *   - /metrics: tether_app_requests_total and libtether's tether_sessions_* counters move as they should;
 *   - the store goes away (redis-server SIGKILLed): /health and /whoami answer 503 with a reason in JSON;
 *     when redis-server returns on the same port the app recovers by itself;
 *   - SIGTERM while a request is in flight: it is finished, then the app exits 0;
 *   - bad options: a clear message and exit status 2. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "balancer.h"

#ifndef TETHER_APP_BIN
#error "TETHER_APP_BIN must name the tether-app binary"
#endif

#define SECRET "app-test-secret"

typedef struct app_proc {
  pid_t pid;
  int port;
  char name[32];
  char log[512];
} app_proc;

static struct {
  char *dir;
  tt_server redis;
  app_proc app;
} W;

/* ---- processes ---- */

static int app_start(app_proc *a, const char *name, const char *sessions) {
  memset(a, 0, sizeof(*a));
  snprintf(a->name, sizeof(a->name), "%s", name);
  snprintf(a->log, sizeof(a->log), "%s/%s.log", W.dir, name);
  a->port = tt_free_port();
  char listen_at[32];
  snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%d", a->port);
  char *argv[] = {TETHER_APP_BIN, "--listen",       listen_at,  "--name", a->name,
                  "--sessions",   (char *)sessions, "--secret", SECRET,   NULL};
  a->pid = tt_spawn(argv, a->log, NULL);
  if (a->pid < 0 || !tt_wait_port(a->port, 10000)) {
    fprintf(stderr, "tether-app %s did not start on %d; its log:\n", name, a->port);
    tt_system("tail -n 20 '%s' >&2", a->log);
    if (a->pid > 0) tt_kill(a->pid, SIGKILL);
    a->pid = 0;
    return -1;
  }
  return 0;
}

/* Waits up to timeout_ms for the process to exit; its exit status (128+signal when killed), or -1 after a
 * SIGKILL when it did not exit in time. */
static int wait_exit(pid_t pid, int timeout_ms) {
  int st;
  for (int waited = 0; waited <= timeout_ms; waited += 10) {
    if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    tt_sleep_ms(10);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return -1;
}

/* SIGTERM; the exit status, with the log's tail when it is not 0 or holds a sanitizer report. */
static int app_stop(app_proc *a) {
  if (a->pid <= 0) return -1;
  kill(a->pid, SIGTERM);
  int st = wait_exit(a->pid, 15000);
  a->pid = 0;
  if (st != 0 || tb_log_has_sanitizer_report(a->log)) {
    fprintf(stderr, "tether-app %s exit status %d; log tail:\n", a->name, st);
    tt_system("tail -n 40 '%s' >&2", a->log);
  }
  return st;
}

/* Runs tether-app with args to completion; its exit status, stdout and stderr in out_file. */
static int app_run(const char *out_file, const char *const *args) {
  char *argv[16];
  int n = 0;
  argv[n++] = TETHER_APP_BIN;
  for (int i = 0; args[i] && n < 15; i++) argv[n++] = (char *)args[i];
  argv[n] = NULL;
  unlink(out_file);
  pid_t pid = tt_spawn(argv, out_file, NULL);
  assert_true(pid > 0);
  return wait_exit(pid, 10000);
}

/* ---- HTTP ---- */

/* A client's cookie jar: the connect.sid pair of the last Set-Cookie ("" before any). */
typedef struct jar {
  char cookie[512];
} jar;

/* The first Set-Cookie's name=value in a response head, into out ("" when none). */
static void set_cookie_of(const char *head, char *out, size_t cap) {
  out[0] = '\0';
  for (const char *p = head; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
    if (strncasecmp(p, "Set-Cookie:", 11) != 0) continue;
    p += 11;
    while (*p == ' ') p++;
    size_t n = strcspn(p, ";\r\n");
    if (n >= cap) n = cap - 1;
    memcpy(out, p, n);
    out[n] = '\0';
    return;
  }
}

/* One request with the jar's cookie (jar may be NULL); the jar takes any Set-Cookie. ctype "json",
 * "form" or NULL. Returns the status. */
static long call(int port, const char *method, const char *path, jar *j, const char *ctype, const char *body,
                 tb_resp *r) {
  char cookie_h[600], ctype_h[96];
  const char *hdrs[3] = {NULL, NULL, NULL};
  int n = 0;
  if (j && j->cookie[0]) {
    snprintf(cookie_h, sizeof(cookie_h), "Cookie: %s", j->cookie);
    hdrs[n++] = cookie_h;
  }
  if (ctype) {
    snprintf(ctype_h, sizeof(ctype_h), "Content-Type: %s",
             strcmp(ctype, "json") == 0 ? "application/json" : "application/x-www-form-urlencoded");
    hdrs[n++] = ctype_h;
  }
  tb_request(NULL, method, port, path, body ? body : (strcmp(method, "POST") == 0 ? "" : NULL), body ? strlen(body) : 0,
             hdrs, r);
  if (j) {
    char sc[512];
    set_cookie_of(r->head, sc, sizeof(sc));
    if (sc[0]) snprintf(j->cookie, sizeof(j->cookie), "%s", sc);
  }
  return r->status;
}

static json_t *parse_json(const tb_resp *r) {
  json_error_t e;
  json_t *j = json_loads(r->body, 0, &e);
  if (j == NULL) fprintf(stderr, "not JSON (%s): status %ld, body %s\n", e.text, r->status, r->body);
  assert_non_null(j);
  return j;
}

/* A JSON request expected to answer want_status; its parsed body. */
static json_t *call_json(int port, const char *method, const char *path, jar *j, const char *body, long want_status) {
  tb_resp r;
  long st = call(port, method, path, j, body ? "json" : NULL, body, &r);
  if (st != want_status)
    fprintf(stderr, "%s %s: status %ld, want %ld; body: %s\n", method, path, st, want_status, r.body);
  assert_int_equal(st, want_status);
  assert_non_null(strstr(r.head, "application/json"));
  json_t *v = parse_json(&r);
  tb_resp_free(&r);
  return v;
}

static const char *jstr(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  if (!json_is_string(v)) fprintf(stderr, "member %s is not a string\n", key);
  assert_true(json_is_string(v));
  return json_string_value(v);
}

static json_int_t jint(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  assert_true(json_is_integer(v));
  return json_integer_value(v);
}

/* The whoami answer's cart as "a,b,c". */
static void cart_str(json_t *w, char *out, size_t cap) {
  json_t *cart = json_object_get(w, "cart"), *item;
  assert_true(json_is_array(cart));
  size_t i, len = 0;
  out[0] = '\0';
  json_array_foreach(cart, i, item) {
    assert_true(json_is_string(item));
    len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "," : "", json_string_value(item));
    assert_true(len < cap);
  }
}

/* Checks a whoami-shaped answer: exactly its five members, from this app. */
static void check_whoami(json_t *w, const char *server, json_int_t visits, const char *user, const char *cart) {
  assert_int_equal(json_object_size(w), 5);
  assert_string_equal(jstr(w, "server"), server);
  assert_int_equal(strlen(jstr(w, "session_id")), 32);
  assert_int_equal(jint(w, "visits"), visits);
  if (user)
    assert_string_equal(jstr(w, "user"), user);
  else
    assert_true(json_is_null(json_object_get(w, "user")));
  char c[512];
  cart_str(w, c, sizeof(c));
  assert_string_equal(c, cart);
}

/* Whether redis holds sess:<id>. */
static int redis_has(const char *id) {
  struct timeval tv = {3, 0};
  redisContext *c = redisConnectWithTimeout("127.0.0.1", W.redis.port, tv);
  assert_true(c && !c->err);
  redisReply *r = redisCommand(c, "EXISTS sess:%s", id);
  assert_non_null(r);
  int has = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
  freeReplyObject(r);
  redisFree(c);
  return has;
}

static double metric_of(int port, const char *name_labels) {
  tb_resp r;
  assert_int_equal(tb_get(NULL, port, "/metrics", &r), 200);
  double v = tb_metric(r.body, name_labels);
  tb_resp_free(&r);
  return v;
}

/* ---- tests ---- */

static void test_whoami_counts_and_cart_appends(void **state) {
  (void)state;
  int port = W.app.port;
  jar j = {{0}};
  json_t *w = call_json(port, "GET", "/whoami", &j, NULL, 200);
  check_whoami(w, "a1", 1, NULL, "");
  char id[64];
  snprintf(id, sizeof(id), "%s", jstr(w, "session_id"));
  json_decref(w);
  assert_int_equal(strncmp(j.cookie, "connect.sid=s%3A", 16), 0);
  assert_non_null(strstr(j.cookie, id));
  assert_true(redis_has(id));

  w = call_json(port, "GET", "/whoami", &j, NULL, 200);
  check_whoami(w, "a1", 2, NULL, "");
  assert_string_equal(jstr(w, "session_id"), id);
  json_decref(w);

  w = call_json(port, "POST", "/cart", &j, "{\"item\":\"book\"}", 200);
  check_whoami(w, "a1", 2, NULL, "book"); /* the cart answers without counting a visit */
  json_decref(w);
  w = call_json(port, "POST", "/cart", &j, "{\"item\":\"pen\"}", 200);
  check_whoami(w, "a1", 2, NULL, "book,pen");
  json_decref(w);
  w = call_json(port, "GET", "/whoami", &j, NULL, 200);
  check_whoami(w, "a1", 3, NULL, "book,pen");
  assert_string_equal(jstr(w, "session_id"), id);
  json_decref(w);

  /* a client without the cookie gets its own session */
  jar other = {{0}};
  w = call_json(port, "GET", "/whoami", &other, NULL, 200);
  check_whoami(w, "a1", 1, NULL, "");
  assert_string_not_equal(jstr(w, "session_id"), id);
  json_decref(w);
}

static void test_login_regenerates_and_keeps(void **state) {
  (void)state;
  int port = W.app.port;
  jar j = {{0}};
  json_t *w = call_json(port, "GET", "/whoami", &j, NULL, 200);
  json_decref(w);
  w = call_json(port, "GET", "/whoami", &j, NULL, 200);
  char old_id[64];
  snprintf(old_id, sizeof(old_id), "%s", jstr(w, "session_id"));
  json_decref(w);
  json_decref(call_json(port, "POST", "/cart", &j, "{\"item\":\"lamp\"}", 200));
  jar before = j;
  double missing0 = metric_of(port, "tether_sessions_missing_total{store=\"redis\"}");

  w = call_json(port, "POST", "/login", &j, "{\"user\":\"alice\"}", 200);
  check_whoami(w, "a1", 2, "alice", "lamp");
  char new_id[64];
  snprintf(new_id, sizeof(new_id), "%s", jstr(w, "session_id"));
  json_decref(w);
  assert_string_not_equal(new_id, old_id);
  assert_string_not_equal(j.cookie, before.cookie);
  assert_non_null(strstr(j.cookie, new_id));
  assert_false(redis_has(old_id));
  assert_true(redis_has(new_id));

  /* the new cookie carries on */
  w = call_json(port, "GET", "/whoami", &j, NULL, 200);
  check_whoami(w, "a1", 3, "alice", "lamp");
  assert_string_equal(jstr(w, "session_id"), new_id);
  json_decref(w);

  /* the old cookie names no session: a fresh, anonymous one (counted as missing) */
  w = call_json(port, "GET", "/whoami", &before, NULL, 200);
  check_whoami(w, "a1", 1, NULL, "");
  assert_string_not_equal(jstr(w, "session_id"), old_id);
  assert_string_not_equal(jstr(w, "session_id"), new_id);
  json_decref(w);
  assert_true(metric_of(port, "tether_sessions_missing_total{store=\"redis\"}") == missing0 + 1);

  /* a bad login changes nothing */
  w = call_json(port, "POST", "/login", &j, "{\"user\":\"\"}", 400);
  assert_non_null(strstr(jstr(w, "error"), "user name"));
  json_decref(w);
  w = call_json(port, "POST", "/login", &j, "{\"name\":\"alice\"}", 400);
  json_decref(w);
  w = call_json(port, "GET", "/whoami", &j, NULL, 200);
  check_whoami(w, "a1", 4, "alice", "lamp");
  json_decref(w);
}

static void test_logout_destroys(void **state) {
  (void)state;
  int port = W.app.port;
  jar j = {{0}};
  json_t *w = call_json(port, "POST", "/login", &j, "{\"user\":\"bob\"}", 200);
  check_whoami(w, "a1", 0, "bob", "");
  char id[64];
  snprintf(id, sizeof(id), "%s", jstr(w, "session_id"));
  json_decref(w);
  assert_true(redis_has(id));
  w = call_json(port, "POST", "/logout", &j, "{}", 200);
  assert_true(json_is_true(json_object_get(w, "ok")));
  assert_string_equal(jstr(w, "server"), "a1");
  json_decref(w);
  assert_false(redis_has(id));
  w = call_json(port, "GET", "/whoami", &j, NULL, 200);
  check_whoami(w, "a1", 1, NULL, "");
  assert_string_not_equal(jstr(w, "session_id"), id);
  json_decref(w);
}

static void test_index_and_form_login(void **state) {
  (void)state;
  int port = W.app.port;
  jar j = {{0}};
  tb_resp r;
  assert_int_equal(call(port, "GET", "/", &j, NULL, NULL, &r), 200);
  assert_non_null(strstr(r.head, "text/html"));
  assert_non_null(strstr(r.body, "<span id=\"server\">a1</span>"));
  assert_non_null(strstr(r.body, "<span id=\"visits\">1</span>"));
  assert_non_null(strstr(r.body, "action=\"/login\""));
  tb_resp_free(&r);
  char before[512];
  snprintf(before, sizeof(before), "%s", j.cookie);

  /* the page's form: urlencoded, answered with 303 to / and the new cookie */
  assert_int_equal(call(port, "POST", "/login", &j, "form", "user=Zo%C3%AB+%3Cb%3E", &r), 303);
  assert_non_null(strstr(r.head, "Location: /"));
  tb_resp_free(&r);
  assert_string_not_equal(j.cookie, before);
  assert_int_equal(call(port, "POST", "/cart", &j, "form", "item=tea", &r), 303);
  tb_resp_free(&r);
  assert_int_equal(call(port, "GET", "/", &j, NULL, NULL, &r), 200);
  assert_non_null(strstr(r.body, "<span id=\"visits\">2</span>"));
  assert_non_null(strstr(r.body, "<span id=\"user\">Zo\xc3\xab &lt;b&gt;</span>")); /* escaped */
  assert_non_null(strstr(r.body, "<span id=\"cart\">tea</span>"));
  assert_non_null(strstr(r.body, "action=\"/logout\""));
  tb_resp_free(&r);
  assert_int_equal(call(port, "POST", "/logout", &j, "form", "", &r), 303);
  tb_resp_free(&r);
  assert_int_equal(call(port, "GET", "/", &j, NULL, NULL, &r), 200);
  assert_non_null(strstr(r.body, "<span id=\"visits\">1</span>"));
  assert_null(strstr(r.body, "id=\"user\""));
  tb_resp_free(&r);
}

static void test_methods_and_errors(void **state) {
  (void)state;
  int port = W.app.port;
  json_t *v = call_json(port, "GET", "/nope", NULL, NULL, 404);
  assert_string_equal(jstr(v, "error"), "not found");
  json_decref(v);
  json_decref(call_json(port, "POST", "/whoami", NULL, "{}", 405));
  json_decref(call_json(port, "GET", "/login", NULL, NULL, 405));
  json_decref(call_json(port, "GET", "/cart", NULL, NULL, 405));
  json_decref(call_json(port, "DELETE", "/logout", NULL, NULL, 405));
  v = call_json(port, "POST", "/cart", NULL, "{\"item\":\"\"}", 400);
  assert_non_null(strstr(jstr(v, "error"), "item"));
  json_decref(v);
  json_decref(call_json(port, "POST", "/cart", NULL, "not json", 400));
  /* a body over 64 KiB */
  size_t n = 70000;
  char *big = malloc(n + 1);
  memset(big, 'x', n);
  memcpy(big, "{\"item\":\"", 9);
  big[n] = '\0';
  json_decref(call_json(port, "POST", "/cart", NULL, big, 413));
  free(big);
  /* X-Served-By on every answer */
  tb_resp r;
  assert_int_equal(tb_get(NULL, port, "/health", &r), 200);
  assert_non_null(strstr(r.head, "X-Served-By: a1"));
  tb_resp_free(&r);
}

static void test_metrics(void **state) {
  (void)state;
  int port = W.app.port;
  const char *whoami_2xx = "tether_app_requests_total{app=\"a1\",route=\"/whoami\",code_class=\"2xx\"}";
  const char *cart_4xx = "tether_app_requests_total{app=\"a1\",route=\"/cart\",code_class=\"4xx\"}";
  const char *created = "tether_sessions_created_total{store=\"redis\"}";
  const char *loaded = "tether_sessions_loaded_total{store=\"redis\"}";
  const char *saved = "tether_sessions_saved_total{store=\"redis\"}";
  tb_resp r;
  assert_int_equal(tb_get(NULL, port, "/metrics", &r), 200);
  assert_non_null(strstr(r.head, "text/plain"));
  assert_non_null(strstr(r.body, "# TYPE tether_app_requests_total counter"));
  assert_non_null(strstr(r.body, "# TYPE tether_sessions_created_total counter"));
  assert_non_null(strstr(r.body, "tether_store_latency_seconds_bucket{store=\"redis\""));
  assert_non_null(strstr(r.body, "tether_store_errors_total{store=\"redis\"}"));
  double w0 = tb_metric(r.body, whoami_2xx), c0 = tb_metric(r.body, cart_4xx), cr0 = tb_metric(r.body, created),
         l0 = tb_metric(r.body, loaded), s0 = tb_metric(r.body, saved);
  tb_resp_free(&r);
  assert_true(w0 >= 0 && c0 >= 0 && cr0 >= 0 && l0 >= 0 && s0 >= 0);

  jar j = {{0}};
  for (int i = 0; i < 3; i++) json_decref(call_json(port, "GET", "/whoami", &j, NULL, 200));
  json_decref(call_json(port, "POST", "/cart", &j, "{}", 400));
  assert_int_equal(tb_get(NULL, port, "/metrics", &r), 200);
  assert_true(tb_metric(r.body, whoami_2xx) == w0 + 3);
  assert_true(tb_metric(r.body, cart_4xx) == c0 + 1);
  assert_true(tb_metric(r.body, created) == cr0 + 1); /* one new session, */
  assert_true(tb_metric(r.body, loaded) == l0 + 3);   /* found again by the 2nd, 3rd whoami and the cart */
  assert_true(tb_metric(r.body, saved) == s0 + 3);    /* each whoami changed it */
  tb_resp_free(&r);
}

static json_t *health(int port, long *status) {
  tb_resp r;
  *status = tb_get(NULL, port, "/health", &r);
  json_t *v = r.status ? parse_json(&r) : NULL;
  tb_resp_free(&r);
  return v;
}

static void test_store_outage_and_recovery(void **state) {
  (void)state;
  int port = W.app.port;
  long st;
  json_t *h = health(port, &st);
  assert_int_equal(st, 200);
  assert_string_equal(jstr(h, "status"), "ok");
  assert_string_equal(jstr(h, "store"), "redis");
  json_decref(h);
  jar j = {{0}};
  json_decref(call_json(port, "GET", "/whoami", &j, NULL, 200));
  double errors0 = metric_of(port, "tether_store_errors_total{store=\"redis\"}");

  int rport = W.redis.port;
  tt_server_stop(&W.redis, SIGKILL);
  h = health(port, &st);
  assert_int_equal(st, 503);
  assert_string_equal(jstr(h, "status"), "unavailable");
  assert_string_equal(jstr(h, "server"), "a1");
  const char *reason = jstr(h, "reason");
  fprintf(stderr, "health while redis is down: %s\n", reason);
  assert_true(strlen(reason) > 0);
  json_decref(h);
  /* a request that needs the store: 503 with a JSON error, fast (the store fails fast while backing off) */
  long long t0 = tb_now_ms();
  json_t *e = call_json(port, "GET", "/whoami", &j, NULL, 503);
  assert_string_equal(jstr(e, "error"), "session store unavailable");
  assert_true(strlen(jstr(e, "detail")) > 0);
  json_decref(e);
  e = call_json(port, "POST", "/login", &j, "{\"user\":\"carol\"}", 503);
  json_decref(e);
  e = call_json(port, "GET", "/whoami", NULL, NULL, 503); /* a new visitor too */
  json_decref(e);
  assert_true(tb_now_ms() - t0 < 5000);
  assert_true(metric_of(port, "tether_store_errors_total{store=\"redis\"}") > errors0);
  assert_true(metric_of(port, "tether_app_requests_total{app=\"a1\",route=\"/whoami\",code_class=\"5xx\"}") >= 2);

  /* redis-server comes back (empty: it keeps nothing on disk); the app recovers without help */
  assert_int_equal(tt_redis_start(&W.redis, rport), 0);
  long long until = tb_now_ms() + 15000;
  do {
    h = health(port, &st);
    json_decref(h);
    if (st == 200) break;
    tt_sleep_ms(100);
  } while (tb_now_ms() < until);
  assert_int_equal(st, 200);
  fprintf(stderr, "recovered %lld ms after redis-server came back\n", tb_now_ms() + 15000 - until);
  json_t *w = call_json(port, "GET", "/whoami", &j, NULL, 200);
  check_whoami(w, "a1", 1, NULL, ""); /* the old session died with that redis-server */
  json_decref(w);
  w = call_json(port, "GET", "/whoami", &j, NULL, 200);
  check_whoami(w, "a1", 2, NULL, "");
  json_decref(w);
}

static void test_sigterm_finishes_in_flight(void **state) {
  (void)state;
  app_proc a;
  assert_int_equal(app_start(&a, "term", W.redis.url), 0);
  /* an idle keep-alive connection must not hold the exit back */
  tb_conn idle;
  assert_int_equal(tb_conn_open(&idle, a.port, 5000), 0);
  assert_int_equal(tb_send_str(idle.fd, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
  tb_raw r;
  assert_int_equal(tb_conn_read_response(&idle, 0, &r), 0);
  assert_int_equal(r.status, 200);
  tb_raw_free(&r);

  /* the head and half the body of a request, then SIGTERM: the app waits for the rest */
  const char *body = "{\"item\":\"socks\"}";
  tb_conn c;
  assert_int_equal(tb_conn_open(&c, a.port, 10000), 0);
  char head[256];
  snprintf(head, sizeof(head),
           "POST /cart HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
           strlen(body));
  assert_int_equal(tb_send_str(c.fd, head), 0);
  assert_int_equal(tb_send(c.fd, body, 8), 0);
  tt_sleep_ms(300);
  kill(a.pid, SIGTERM);
  tt_sleep_ms(500);
  assert_int_equal(waitpid(a.pid, NULL, WNOHANG), 0); /* still running, for the request in flight */
  int fd = tb_connect(a.port, 2000);                  /* but no longer accepting: refused, not queued */
  if (fd >= 0) close(fd);
  assert_true(fd < 0);
  assert_int_equal(tb_send_str(c.fd, body + 8), 0);
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_int_equal(r.status, 200);
  assert_non_null(strcasestr(r.head, "Connection: close"));
  json_t *w = json_loads(r.body, 0, NULL);
  assert_non_null(w);
  check_whoami(w, "term", 0, NULL, "socks");
  json_decref(w);
  tb_raw_free(&r);
  tb_conn_close(&c);

  long long t0 = tb_now_ms();
  int st = wait_exit(a.pid, 15000);
  if (st != 0) tt_system("tail -n 40 '%s' >&2", a.log);
  assert_int_equal(st, 0);
  assert_true(tb_now_ms() - t0 < 5000);
  assert_true(tb_file_contains(a.log, "tether-app term: stopped"));
  assert_false(tb_file_contains(a.log, "MHD_quiesce_daemon")); /* libmicrohttpd refused to stop accepting */
  assert_false(tb_log_has_sanitizer_report(a.log));
  tb_conn_close(&idle);
}

typedef struct bad_case {
  const char *args[8];
  int status;
  const char *message;
} bad_case;

static void test_bad_options(void **state) {
  (void)state;
  char out[600];
  snprintf(out, sizeof(out), "%s/options.out", W.dir);
  const bad_case cases[] = {
      {{NULL}, 2, "a cookie secret is required"},
      {{"--secret", "s", "--listen", "nowhere", NULL}, 2, "--listen takes IP:PORT"},
      {{"--secret", "s", "--listen", "127.0.0.1:70000", NULL}, 2, "--listen takes IP:PORT, got 127.0.0.1:70000"},
      {{"--secret", "s", "--listen", "localhost:9001", NULL}, 2, "--listen takes IP:PORT"},
      {{"--secret", "s", "--sessions", "bogus:thing", NULL}, 2, "--sessions bogus:thing:"},
      {{"--secret", "s", "--sessions", "redis://127.0.0.1:notaport", NULL}, 2, "--sessions redis://"},
      {{"--secret", "s", "--max-age", "-5", NULL}, 2, "--max-age takes seconds"},
      {{"--secret", "s", "--max-age", "ten", NULL}, 2, "--max-age takes seconds"},
      {{"--secret", "s", "--threads", "zero", NULL}, 2, "--threads"},
      {{"--secret", "s", "--threads", "0", NULL}, 2, "--threads"},
      {{"--secret", "env:TETHER_APP_TEST_NO_SUCH_VAR", NULL},
       2,
       "environment variable TETHER_APP_TEST_NO_SUCH_VAR is not set"},
      {{"--bogus", NULL}, 2, "usage: tether-app"},
      {{"--secret", "s", "stray", NULL}, 2, "stray"},
      {{"--help", NULL}, 0, "usage: tether-app [options]"},
  };
  /* every case listens on a free port with a memory store, should it start by mistake (its own options win) */
  char listen_at[32];
  snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%d", tt_free_port());
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const char *args[14] = {"--listen", listen_at, "--sessions", "memory:"};
    for (size_t k = 0; cases[i].args[k]; k++) args[4 + k] = cases[i].args[k];
    int st = app_run(out, args);
    int ok = st == cases[i].status && tb_file_contains(out, cases[i].message);
    if (!ok) {
      fprintf(stderr, "case %zu (%s %s): exit %d, want %d with \"%s\"; output:\n", i,
              cases[i].args[0] ? cases[i].args[0] : "(no options)",
              cases[i].args[0] && cases[i].args[1] ? cases[i].args[1] : "", st, cases[i].status, cases[i].message);
      tt_system("cat '%s' >&2", out);
    }
    assert_true(ok);
    assert_false(tb_log_has_sanitizer_report(out));
  }
}

/* ---- setup ---- */

static int setup(void **state) {
  (void)state;
  unsetenv("TETHER_SECRET");
  tb_curl_init();
  W.dir = tt_tmpdir("app");
  if (tt_redis_start(&W.redis, 0) < 0) return -1;
  if (app_start(&W.app, "a1", W.redis.url) < 0) {
    tt_server_cleanup(&W.redis);
    return -1;
  }
  return 0;
}

static int teardown(void **state) {
  (void)state;
  int st = app_stop(&W.app);
  tt_server_cleanup(&W.redis);
  if (W.dir && getenv("TB_KEEP") == NULL) tt_rmrf(W.dir);
  free(W.dir);
  W.dir = NULL;
  return st == 0 ? 0 : -1; /* the app must stop cleanly (and, under ASan, without leaks) */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_whoami_counts_and_cart_appends),
      cmocka_unit_test(test_login_regenerates_and_keeps),
      cmocka_unit_test(test_logout_destroys),
      cmocka_unit_test(test_index_and_form_login),
      cmocka_unit_test(test_methods_and_errors),
      cmocka_unit_test(test_metrics),
      cmocka_unit_test(test_store_outage_and_recovery),
      cmocka_unit_test(test_sigterm_finishes_in_flight),
      cmocka_unit_test(test_bad_options),
  };
  return cmocka_run_group_tests_name("tether-app", tests, setup, teardown);
}
