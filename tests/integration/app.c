/* tether-app (src/app/main.c), end to end: the real binary on a real redis-server, driven with libcurl
 * and raw sockets.
 *   - the routes and their JSON: /whoami counts visits, /cart appends, /login regenerates the id (the old
 *     cookie names no session any more) and keeps visits and cart, /logout destroys, /, 400/404/405;
 *   - /metrics: tether_app_requests_total and libtether's tether_sessions_* counters move as they should;
 *   - the store goes away (redis-server SIGKILLed): /health and /whoami answer 503 with a reason in JSON;
 *     when redis-server returns on the same port the app recovers by itself;
 *   - SIGTERM while a request is in flight: it is finished, then the app exits 0;
 *   - bad options: a clear message and exit status 2;
 *   - API tokens (a second app with --jwt-secret): POST /login in token mode (?token=1, "token": true, form
 *     token=1) answers {"token"} signed HS256 with the seed's claims and exp - iat = 3600, without touching
 *     the session store or setting a cookie; GET /api/me answers the verified claims, and 401 with RFC
 *     6750's WWW-Authenticate and the seed's body for missing, tampered, foreign, expired, unsigned or
 *     malformed tokens; without a JWT secret both answer 501. */
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
#include "sign_json.h"
#include "tether/jwt.h"
#include "util.h"

#ifndef TETHER_APP_BIN
#error "TETHER_APP_BIN must name the tether-app binary"
#endif

#define SECRET "app-test-secret"
#define JWT_SECRET "app-test-jwt-secret-0123456789abcdef"
#define REALM "Bearer realm=\"tether-app\""

typedef struct app_proc {
  pid_t pid;
  int port;
  char name[32];
  char log[512];
} app_proc;

static struct {
  char *dir;
  tt_server redis;
  app_proc app;  /* no JWT secret */
  app_proc tapp; /* --jwt-secret JWT_SECRET, same store */
} W;

/* ---- processes ---- */

/* Starts tether-app with these options and up to 4 extra arguments (NULL-terminated, may be NULL). */
static int app_start_with(app_proc *a, const char *name, const char *sessions, const char *const *extra) {
  memset(a, 0, sizeof(*a));
  snprintf(a->name, sizeof(a->name), "%s", name);
  snprintf(a->log, sizeof(a->log), "%s/%s.log", W.dir, name);
  a->port = tt_free_port();
  char listen_at[32];
  snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%d", a->port);
  char *argv[16] = {TETHER_APP_BIN, "--listen",       listen_at,  "--name", a->name,
                    "--sessions",   (char *)sessions, "--secret", SECRET,   NULL};
  for (int i = 0, n = 9; extra && extra[i] && i < 4; i++) argv[n++] = (char *)extra[i];
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

static int app_start(app_proc *a, const char *name, const char *sessions) {
  return app_start_with(a, name, sessions, NULL);
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

/* A request head of the size browsers send (one 4,096-byte cookie, the most a browser keeps, beside the
 * session cookie and a browser's usual headers) is served, the login that answers the biggest head (a
 * Set-Cookie) too; a head too large for the connection's memory gets a 431, in JSON while the answer still
 * fits, never a 200 after the first 431. */
static long big_head(int port, const char *method, const char *path, const char *body, size_t pad, const jar *j,
                     tb_resp *r) {
  static const char *browser[] = {
      "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
      "Safari/537.36",
      "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,"
      "application/signed-exchange;v=b3;q=0.7",
      "Accept-Language: en-GB,en;q=0.9,fr;q=0.8,de;q=0.7",
      "Accept-Encoding: gzip, deflate, br",
      "Referer: http://127.0.0.1/some/page?with=a&query=string",
      "Sec-Ch-Ua: \"Chromium\";v=\"120\", \"Not_A Brand\";v=\"8\"",
      "Content-Type: application/json"};
  char *cookie = malloc(pad + 600);
  int n = snprintf(cookie, 600, "Cookie: pref=");
  memset(cookie + n, 'x', pad);
  snprintf(cookie + n + pad, 600 - (size_t)n, "; %s", j->cookie);
  const char *hdrs[10] = {cookie};
  for (size_t i = 0; i < sizeof(browser) / sizeof(browser[0]); i++) hdrs[1 + i] = browser[i];
  long st = tb_request(NULL, method, port, path, body, body ? strlen(body) : 0, hdrs, r);
  free(cookie);
  return st;
}

static void test_big_request_heads(void **state) {
  (void)state;
  int port = W.app.port;
  jar j = {{0}};
  json_t *w = call_json(port, "GET", "/whoami", &j, NULL, 200);
  char id[64];
  snprintf(id, sizeof(id), "%s", jstr(w, "session_id"));
  json_decref(w);
  tb_resp r;
  assert_int_equal(big_head(port, "GET", "/whoami", NULL, 4096, &j, &r), 200);
  w = parse_json(&r);
  check_whoami(w, "a1", 2, NULL, "");
  assert_string_equal(jstr(w, "session_id"), id);
  json_decref(w);
  tb_resp_free(&r);
  assert_int_equal(big_head(port, "POST", "/login", "{\"user\":\"ann\"}", 4096, &j, &r), 200);
  assert_non_null(strstr(r.head, "Set-Cookie: connect.sid="));
  tb_resp_free(&r);

  int json_431 = 0, refused = 0;
  for (size_t pad = 4096; pad <= 8192; pad += 64) {
    long st = big_head(port, "GET", "/whoami", NULL, pad, &j, &r);
    if (st != 200 && st != 431 && st != 0) fail_msg("a %zu-byte cookie: status %ld", pad, st);
    if (st == 200 && refused) fail_msg("a %zu-byte cookie served after a smaller one was refused", pad);
    if (st != 200) refused = 1;
    if (st == 431 && strstr(r.body, "\"error\":\"request header fields too large\"")) json_431++;
    tb_resp_free(&r);
  }
  assert_true(refused);
  assert_true(json_431 > 0);
  /* far over: libmicrohttpd's own 431 */
  assert_int_equal(big_head(port, "GET", "/whoami", NULL, 32768, &j, &r), 431);
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
  assert_null(json_object_get(h, "reason")); /* anonymous clients are not told the store's host */
  assert_null(json_object_get(h, "store_url"));
  json_decref(h);
  /* ?verbose from loopback: the details */
  tb_resp vr;
  assert_int_equal(tb_get(NULL, port, "/health?verbose", &vr), 503);
  h = parse_json(&vr);
  const char *reason = jstr(h, "reason");
  fprintf(stderr, "health while redis is down: %s\n", reason);
  assert_true(strlen(reason) > 0);
  tb_resp_free(&vr);
  json_decref(h);
  char portstr[16];
  snprintf(portstr, sizeof(portstr), "%d", rport);
  /* a request that needs the store: 503 with a JSON error, fast (the store fails fast while backing off) */
  long long t0 = tb_now_ms();
  tb_resp er;
  assert_int_equal(call(port, "GET", "/whoami", &j, NULL, NULL, &er), 503);
  json_t *e = parse_json(&er);
  assert_string_equal(jstr(e, "error"), "session store unavailable");
  assert_null(json_object_get(e, "detail"));
  if (strstr(er.body, portstr) || strstr(er.body, "127.0.0.1")) fail_msg("503 body tells the store: %s", er.body);
  tb_resp_free(&er);
  json_decref(e);
  assert_true(tb_file_contains(W.app.log, portstr)); /* the details went to the log */
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

/* SIGTERM while a request waits on a store that does not answer (redis-server stopped, a 30 s command
 * timeout): after the 10 s grace period the request gets a 503 and the app exits 0, nothing left hanging. */
/* CPU ticks (user + system) a process has used. */
static long cpu_ticks(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *p = strrchr(buf, ')'); /* fields after the command name */
  long ut = 0, st = 0;
  if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &ut, &st) != 2) return -1;
  return ut + st;
}

/* A request waiting for the store is not suspended: its connection stays on libmicrohttpd's ready list.
 * The loop must neither spin while it waits nor hold back the other connections: a head read in several
 * steps, pipelined requests, and the waiting request itself once the store answers. */
static void test_waiting_requests_do_not_hold_others(void **state) {
  (void)state;
  tt_server r = {0};
  assert_int_equal(tt_redis_start(&r, 0), 0);
  char url[600];
  snprintf(url, sizeof(url), "%s?timeout_ms=30000", r.url);
  app_proc a;
  const char *one[] = {"--threads", "1", NULL}; /* every connection on the one loop */
  assert_int_equal(app_start_with(&a, "wait", url, one), 0);
  tb_resp ok;
  assert_int_equal(tb_get(NULL, a.port, "/whoami", &ok), 200);
  tb_resp_free(&ok);
  kill(r.pid, SIGSTOP);
  tb_conn w, b, p;
  assert_int_equal(tb_conn_open(&w, a.port, 5000), 0);
  assert_int_equal(tb_send_str(w.fd, "GET /whoami HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
  tt_sleep_ms(200);
  long t0 = cpu_ticks(a.pid);
  tt_sleep_ms(1000);
  long spent = cpu_ticks(a.pid) - t0;
  print_message("CPU while a request waits: %ld ticks in 1 s\n", spent);
  assert_true(t0 >= 0 && spent < 15); /* a busy loop takes what it can of a core (100 ticks a second) */

  /* an 8 KiB header: more than the first read takes (half the connection's 12 KiB), so libmicrohttpd
   * needs a second run that no callback announces */
  size_t pad = 8192;
  char *req = malloc(pad + 128);
  int n = snprintf(req, 128, "GET /nope HTTP/1.1\r\nHost: t\r\nX-Pad: ");
  memset(req + n, 'x', pad);
  snprintf(req + n + pad, 128, "\r\n\r\n");
  assert_int_equal(tb_conn_open(&b, a.port, 5000), 0);
  long long t1 = tb_now_ms();
  assert_int_equal(tb_send_str(b.fd, req), 0);
  tb_raw resp;
  assert_int_equal(tb_conn_read_response(&b, 0, &resp), 0);
  long long waited = tb_now_ms() - t1;
  print_message("a big head answered in %lld ms while a request waits\n", waited);
  assert_int_equal(resp.status, 404);
  assert_true(waited < 1000);
  tb_raw_free(&resp);
  free(req);
  tb_conn_close(&b);

  assert_int_equal(tb_conn_open(&p, a.port, 5000), 0);
  assert_int_equal(tb_send_str(p.fd, "GET /nope HTTP/1.1\r\nHost: t\r\n\r\nGET /api/me HTTP/1.1\r\nHost: t\r\n\r\n"),
                   0);
  assert_int_equal(tb_conn_read_response(&p, 0, &resp), 0);
  assert_int_equal(resp.status, 404);
  tb_raw_free(&resp);
  assert_int_equal(tb_conn_read_response(&p, 0, &resp), 0);
  assert_int_equal(resp.status, 501); /* no JWT secret */
  tb_raw_free(&resp);
  tb_conn_close(&p);

  kill(r.pid, SIGCONT);
  assert_int_equal(tb_conn_read_response(&w, 0, &resp), 0);
  assert_int_equal(resp.status, 200);
  tb_raw_free(&resp);
  tb_conn_close(&w);
  assert_int_equal(app_stop(&a), 0);
  tt_server_stop(&r, SIGTERM);
  tt_server_cleanup(&r);
}

static void test_sigterm_with_a_hung_store(void **state) {
  (void)state;
  tt_server r = {0};
  assert_int_equal(tt_redis_start(&r, 0), 0);
  char url[600];
  snprintf(url, sizeof(url), "%s?timeout_ms=30000", r.url);
  app_proc a;
  const char *one[] = {"--threads", "1", NULL};
  assert_int_equal(app_start_with(&a, "hung", url, one), 0);
  long got = 0; /* connected (a loaded machine may need a second try: the reason is printed) */
  for (int i = 0; i < 20 && got != 200; i++) {
    tb_resp ok;
    got = tb_get(NULL, a.port, "/whoami", &ok);
    if (got != 200) print_message("warm-up /whoami: %ld %.200s\n", got, ok.body ? ok.body : "");
    tb_resp_free(&ok);
    if (got != 200) tt_sleep_ms(100);
  }
  assert_int_equal(got, 200);
  kill(r.pid, SIGSTOP);
  tb_conn c;
  assert_int_equal(tb_conn_open(&c, a.port, 20000), 0);
  assert_int_equal(tb_send_str(c.fd, "GET /whoami HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
  tt_sleep_ms(300);
  long long t0 = tb_now_ms();
  kill(a.pid, SIGTERM);
  tb_raw resp;
  assert_int_equal(tb_conn_read_response(&c, 0, &resp), 0);
  long long waited = tb_now_ms() - t0;
  print_message("answered %d after %lld ms: %.120s\n", resp.status, waited, resp.body);
  assert_int_equal(resp.status, 503);
  assert_null(strstr(resp.body, "grace period")); /* the reason goes to the log, not to the client */
  assert_true(waited >= 9000 && waited < 14000);
  tb_raw_free(&resp);
  tb_conn_close(&c);
  int st = wait_exit(a.pid, 10000);
  if (st != 0) tt_system("tail -n 40 '%s' >&2", a.log);
  assert_int_equal(st, 0);
  assert_false(tb_log_has_sanitizer_report(a.log));
  assert_true(tb_file_contains(a.log, "grace period"));
  kill(r.pid, SIGCONT);
  tt_server_stop(&r, SIGTERM);
  tt_server_cleanup(&r);
}

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
      {{"--help", NULL}, 0, "GET /api/me"},
      {{"--secret", "s", "--cookie-secure", "sometimes", NULL}, 2, "--cookie-secure takes auto, on or off"},
      {{"--secret", "s", "--cookie-secure=maybe", NULL}, 2, "--cookie-secure takes auto, on or off"},
      {{"--secret", "s", "--trust-proxy", "10.0.0.0/33", NULL}, 2, "--trust-proxy"},
      {{"--secret", "s", "--trust-proxy", "proxy.example", NULL}, 2, "--trust-proxy"},
      {{"--secret", "s", "--absolute-timeout", "soon", NULL}, 2, "--absolute-timeout takes seconds"},
      {{"--secret", "s", "--dashboard-url", "javascript:alert(1)", NULL}, 2, "--dashboard-url takes an http://"},
      {{"--secret", "s", "--dashboard-url", "http://x/\"><script>", NULL}, 2, "--dashboard-url takes an http://"},
      {{"--secret", "s", "--jwt-secret", "env:TETHER_APP_TEST_NO_SUCH_VAR", NULL},
       2,
       "environment variable TETHER_APP_TEST_NO_SUCH_VAR is not set"},
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

static int head_value(const char *head, const char *name, char *out, size_t cap);

/* Secrets and passwords given on the command line never show in what tether-app prints. */
static void test_secrets_not_echoed(void **state) {
  (void)state;
  char out[600];
  snprintf(out, sizeof(out), "%s/secrets.out", W.dir);
  char listen_at[32];
  snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%d", tt_free_port());
  static const struct {
    const char *args[8];
    const char *says, *secret;
  } cases[] = {
      {{"--sessions", "redis://:PASSWORD8f3a@127.0.0.1:99999", NULL}, "--sessions redis://:***@", "PASSWORD8f3a"},
      {{"--sessions", "redis://u:PASSWORD8f3a@127.0.0.1:6379/x", NULL}, "database 'x'", "PASSWORD8f3a"},
      {{"--sessions", "redis-sentinel://:PASSWORD8f3a@127.0.0.1:1", NULL}, "no master name", "PASSWORD8f3a"},
      {{"--sessions", "postgres://u:PASSWORD8f3a@127.0.0.1:5432/db?bogus=1", NULL}, "bogus", "PASSWORD8f3a"},
      {{"--sessions", "memcached://u:PASSWORD8f3a@127.0.0.1:11211", NULL}, "user and password", "PASSWORD8f3a"},
      {{"--sessions", "dual:memory:+redis://:PASSWORD8f3a@127.0.0.1:99999", NULL}, "port", "PASSWORD8f3a"},
      {{"--sessions", "rediss://:PASSWORD8f3a@127.0.0.1:6379", NULL}, "unknown scheme", "PASSWORD8f3a"},
      {{"--sessions", "memory:", "--jwt-secret", "short-jwt-secret-7c1d", NULL}, "32", "short-jwt-secret-7c1d"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const char *args[14] = {"--listen", listen_at, "--secret", "cookie-secret-5e2b"};
    for (size_t k = 0; cases[i].args[k]; k++) args[4 + k] = cases[i].args[k];
    int st = app_run(out, args);
    if (st != 2 || !tb_file_contains(out, cases[i].says) || tb_file_contains(out, cases[i].secret) ||
        tb_file_contains(out, "cookie-secret-5e2b")) {
      fprintf(stderr, "case %zu: exit %d, want 2 with \"%s\" and without the secret; output:\n", i, st, cases[i].says);
      tt_system("cat '%s' >&2", out);
      fail();
    }
  }
  /* a weak JWT secret is accepted when explicitly allowed */
  app_proc e;
  const char *weak[] = {"--jwt-secret", "short-jwt-secret-7c1d", "--weak-secret-ok", NULL};
  assert_int_equal(app_start_with(&e, "w1", "memory:", weak), 0);
  assert_false(tb_file_contains(e.log, "short-jwt-secret-7c1d"));
  assert_int_equal(app_stop(&e), 0);
}

/* --cookie-secure on behind a trusted proxy: the cookie only in answer to a request the proxy says is
 * HTTPS, and only when that proxy is the immediate peer. */
static void test_secure_cookie_behind_proxy(void **state) {
  (void)state;
  app_proc p;
  const char *extra[] = {"--cookie-secure", "on", "--trust-proxy", "127.0.0.1/32", NULL};
  assert_int_equal(app_start_with(&p, "p1", "memory:", extra), 0);
  const char *https[] = {"X-Forwarded-Proto: https", NULL};
  const char *http[] = {"X-Forwarded-Proto: http", NULL};
  tb_resp r;
  char sc[512];
  /* the trusted proxy says https: Set-Cookie, Secure */
  assert_int_equal(tb_get_from("127.0.0.1", p.port, "/whoami", https, &r), 200);
  assert_int_equal(head_value(r.head, "Set-Cookie", sc, sizeof(sc)), 0);
  assert_non_null(strstr(sc, "; Secure"));
  tb_resp_free(&r);
  /* the trusted proxy says http, or says nothing: no cookie */
  assert_int_equal(tb_get_from("127.0.0.1", p.port, "/whoami", http, &r), 200);
  assert_int_equal(head_value(r.head, "Set-Cookie", sc, sizeof(sc)), -1);
  tb_resp_free(&r);
  assert_int_equal(tb_get_from("127.0.0.1", p.port, "/whoami", NULL, &r), 200);
  assert_int_equal(head_value(r.head, "Set-Cookie", sc, sizeof(sc)), -1);
  tb_resp_free(&r);
  /* a peer that is not a trusted proxy claims https: not believed, no cookie */
  assert_int_equal(tb_get_from("127.0.0.2", p.port, "/whoami", https, &r), 200);
  assert_int_equal(head_value(r.head, "Set-Cookie", sc, sizeof(sc)), -1);
  tb_resp_free(&r);
  assert_int_equal(app_stop(&p), 0);

  /* auto: Secure iff the request is secure */
  const char *autox[] = {"--cookie-secure=auto", "--trust-proxy", "127.0.0.1/32", NULL};
  assert_int_equal(app_start_with(&p, "p2", "memory:", autox), 0);
  assert_int_equal(tb_get_from("127.0.0.1", p.port, "/whoami", https, &r), 200);
  assert_int_equal(head_value(r.head, "Set-Cookie", sc, sizeof(sc)), 0);
  assert_non_null(strstr(sc, "; Secure"));
  tb_resp_free(&r);
  assert_int_equal(tb_get_from("127.0.0.2", p.port, "/whoami", https, &r), 200);
  assert_int_equal(head_value(r.head, "Set-Cookie", sc, sizeof(sc)), 0);
  assert_null(strstr(sc, "Secure"));
  tb_resp_free(&r);
  assert_int_equal(app_stop(&p), 0);
}

/* --dashboard-url (or TETHER_DASHBOARD_URL): the page links to the balancer's dashboard; without either, no
 * link. */
static void test_dashboard_link(void **state) {
  (void)state;
  tb_resp r;
  assert_int_equal(tb_get(NULL, W.app.port, "/", &r), 200);
  assert_null(strstr(r.body, "id=\"dashboard\""));
  assert_null(strstr(r.body, "8081"));
  tb_resp_free(&r);
  app_proc p;
  const char *extra[] = {"--dashboard-url", "http://127.0.0.1:8081/?a=1&b=2", NULL};
  assert_int_equal(app_start_with(&p, "d1", "memory:", extra), 0);
  assert_int_equal(tb_get(NULL, p.port, "/", &r), 200);
  assert_non_null(strstr(r.body, "<a id=\"dashboard\" href=\"http://127.0.0.1:8081/?a=1&amp;b=2\">"));
  tb_resp_free(&r);
  assert_int_equal(app_stop(&p), 0);
  setenv("TETHER_DASHBOARD_URL", "https://lb.example:8081/", 1);
  int rc = app_start_with(&p, "d2", "memory:", NULL);
  unsetenv("TETHER_DASHBOARD_URL");
  assert_int_equal(rc, 0);
  assert_int_equal(tb_get(NULL, p.port, "/", &r), 200);
  assert_non_null(strstr(r.body, "<a id=\"dashboard\" href=\"https://lb.example:8081/\">"));
  tb_resp_free(&r);
  assert_int_equal(app_stop(&p), 0);
}

/* The /whoami answer is printed from the session's stored text: a name that JSON must escape comes out
 * escaped, and one that is not UTF-8 (no JSON string can hold it) answers 500 rather than bad JSON. */
static void test_whoami_name_escaped(void **state) {
  (void)state;
  app_proc p;
  const char *odd = "Zo\xc3\xab \"q\" \\ </b>";
  const char *extra[] = {"--name", odd, NULL};
  assert_int_equal(app_start_with(&p, "e1", "memory:", extra), 0);
  jar j = {""};
  json_t *w = call_json(p.port, "GET", "/whoami", &j, NULL, 200);
  assert_string_equal(jstr(w, "server"), odd);
  json_decref(w);
  json_decref(call_json(p.port, "POST", "/cart", &j, "{\"item\":\"a\\\"b\"}", 200));
  w = call_json(p.port, "GET", "/whoami", &j, NULL, 200);
  assert_string_equal(json_string_value(json_array_get(json_object_get(w, "cart"), 0)), "a\"b");
  json_decref(w);
  assert_int_equal(app_stop(&p), 0);
  const char *bad[] = {"--name", "bad\xff", NULL};
  assert_int_equal(app_start_with(&p, "e2", "memory:", bad), 0);
  w = call_json(p.port, "GET", "/whoami", &j, NULL, 500);
  assert_string_equal(jstr(w, "error"), "the answer could not be encoded");
  json_decref(w);
  assert_int_equal(app_stop(&p), 0);
}

/* --absolute-timeout: a busy session still ends that long after it was created. */
static void test_absolute_timeout(void **state) {
  (void)state;
  app_proc p;
  const char *extra[] = {"--absolute-timeout", "2", NULL};
  assert_int_equal(app_start_with(&p, "x1", W.redis.url, extra), 0);
  jar j = {{0}};
  json_t *w = call_json(p.port, "GET", "/whoami", &j, NULL, 200);
  check_whoami(w, "x1", 1, NULL, "");
  json_decref(w);
  tt_sleep_ms(1000);
  w = call_json(p.port, "GET", "/whoami", &j, NULL, 200);
  check_whoami(w, "x1", 2, NULL, "");
  json_decref(w);
  tt_sleep_ms(1300);
  w = call_json(p.port, "GET", "/whoami", &j, NULL, 200); /* 2.3 s after creation: over */
  check_whoami(w, "x1", 1, NULL, "");
  json_decref(w);
  assert_int_equal(app_stop(&p), 0);
}

/* ---- API tokens ---- */

/* A response header's value (the first one named name), into out; 0 or -1 when absent. */
static int head_value(const char *head, const char *name, char *out, size_t cap) {
  size_t nl = strlen(name);
  for (const char *p = head; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
    if (strncasecmp(p, name, nl) != 0 || p[nl] != ':') continue;
    p += nl + 1;
    while (*p == ' ') p++;
    size_t n = strcspn(p, "\r\n");
    if (n >= cap) n = cap - 1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
  }
  return -1;
}

/* GET (or another method) with an optional Authorization header value. */
static long call_auth(int port, const char *method, const char *path, const char *auth, tb_resp *r) {
  char auth_h[9000];
  const char *hdrs[2] = {NULL, NULL};
  if (auth) {
    snprintf(auth_h, sizeof(auth_h), "Authorization: %s", auth);
    hdrs[0] = auth_h;
  }
  return tb_request(NULL, method, port, path, NULL, 0, hdrs, r);
}

/* A token-mode login (ctype "json" or "form") expected to answer 200 with exactly {"token": ...} and no
 * cookie; the token (malloc'd). */
static char *token_login(int port, const char *path, const char *ctype, const char *body) {
  tb_resp r;
  long st = call(port, "POST", path, NULL, ctype, body, &r);
  if (st != 200) fprintf(stderr, "POST %s %s: status %ld; body: %s\n", path, body, st, r.body);
  assert_int_equal(st, 200);
  assert_non_null(strstr(r.head, "application/json"));
  char sc[512];
  assert_int_equal(head_value(r.head, "Set-Cookie", sc, sizeof(sc)), -1);
  json_t *v = parse_json(&r);
  assert_int_equal(json_object_size(v), 1);
  char *tok = strdup(jstr(v, "token"));
  json_decref(v);
  char want[1024];
  snprintf(want, sizeof(want), "{\"token\":\"%s\"}\n", tok);
  assert_string_equal(r.body, want); /* the seed's shape, byte for byte */
  tb_resp_free(&r);
  return tok;
}

static tether_jwt_verifier *verifier_of(const char *secret) {
  tether_jwt_verify_options o;
  tether_jwt_verify_options_init(&o);
  o.leeway_s = 0;
  tether_jwt_verifier *v;
  assert_int_equal(tether_jwt_verifier_new(&o, &v), 0);
  assert_int_equal(tether_jwt_verifier_add_secret(v, secret, strlen(secret), TETHER_JWT_HS256, NULL), 1);
  return v;
}

/* The token is HS256 with JWT_SECRET, header {"alg":"HS256","typ":"JWT"}, claims exactly
 * {"userId":user,"role":role,"iat":I,"exp":I+3600} with I within [t0, now]; returns I. */
static long long check_token(const char *tok, const char *user, const char *role, long long t0) {
  const char *hdr = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"; /* {"alg":"HS256","typ":"JWT"} */
  assert_int_equal(strncmp(tok, hdr, strlen(hdr)), 0);
  assert_int_equal(tok[strlen(hdr)], '.');
  tether_jwt_verifier *v = verifier_of(JWT_SECRET);
  tether_jwt_claims *c = tether_jwt_claims_new();
  int rc = tether_jwt_verify(v, tok, strlen(tok), c);
  if (rc != 0) fail_msg("the app's token does not verify: %s", tether_last_error());
  int64_t iat_claim = 0;
  assert_int_equal(tether_jwt_claim_int(c, "iat", &iat_claim), 0);
  long long iat = iat_claim;
  assert_true(iat >= t0 && iat <= tether_now_ms() / 1000);
  json_t *user_j = json_string(user);
  char *user_text = json_dumps(user_j, JSON_ENCODE_ANY | JSON_COMPACT);
  json_decref(user_j);
  char want[512];
  snprintf(want, sizeof(want), "{\"userId\":%s,\"role\":\"%s\",\"iat\":%lld,\"exp\":%lld}", user_text, role, iat,
           iat + 3600);
  free(user_text);
  size_t len;
  const char *payload = tether_jwt_claims_payload(c, &len);
  assert_int_equal(len, strlen(want));
  assert_memory_equal(payload, want, len);
  tether_jwt_claims_free(c);
  tether_jwt_verifier_free(v);
  return iat;
}

static void test_token_login_modes(void **state) {
  (void)state;
  int port = W.tapp.port;
  const char *created = "tether_sessions_created_total{store=\"redis\"}";
  double created0 = metric_of(port, created);
  long long t0 = tether_now_ms() / 1000;
  struct timeval tv = {3, 0};
  redisContext *rc = redisConnectWithTimeout("127.0.0.1", W.redis.port, tv);
  assert_true(rc && !rc->err);
  redisReply *rr = redisCommand(rc, "DBSIZE");
  long long keys0 = rr->integer;
  freeReplyObject(rr);

  char *tok = token_login(port, "/login", "json", "{\"user\":\"alice\",\"token\":true}");
  check_token(tok, "alice", "user", t0);
  free(tok);
  /* the role is the server's: a client asking for one gets "user" all the same */
  tok = token_login(port, "/login?token=1", "json", "{\"user\":\"bob\",\"role\":\"admin\"}");
  check_token(tok, "bob", "user", t0);
  free(tok);
  tok = token_login(port, "/login", "form", "user=carol&token=1&role=ops");
  check_token(tok, "carol", "user", t0);
  free(tok);
  tok = token_login(port, "/login?token=1", "json", "{\"user\":\"eve\",\"role\":\"\"}");
  check_token(tok, "eve", "user", t0);
  free(tok);
  tok = token_login(port, "/login?token=1", "form", "user=Zo%C3%AB+%3Cb%3E");
  check_token(tok, "Zo\xc3\xab <b>", "user", t0);
  free(tok);

  /* no session was created, loaded or stored */
  rr = redisCommand(rc, "DBSIZE");
  assert_int_equal(rr->integer, keys0);
  freeReplyObject(rr);
  assert_true(metric_of(port, created) == created0);

  /* a token login with a session cookie leaves that session as it was (no new id, no user, no cookie) */
  jar j = {{0}};
  json_t *w = call_json(port, "GET", "/whoami", &j, NULL, 200);
  char id[64];
  snprintf(id, sizeof(id), "%s", jstr(w, "session_id"));
  json_decref(w);
  jar before = j;
  tb_resp r;
  assert_int_equal(call(port, "POST", "/login?token=1", &j, "json", "{\"user\":\"dave\"}", &r), 200);
  tb_resp_free(&r);
  assert_string_equal(j.cookie, before.cookie);
  w = call_json(port, "GET", "/whoami", &j, NULL, 200);
  check_whoami(w, "t1", 2, NULL, "");
  assert_string_equal(jstr(w, "session_id"), id);
  json_decref(w);

  /* the same validation as a session login, and nothing signed */
  static const struct {
    const char *path, *ctype, *body, *error;
  } bad[] = {
      {"/login", "json", "{\"token\":true}", "user name"},
      {"/login", "json", "{\"token\":true,\"user\":\"\"}", "user name"},
      {"/login?token=1", "json", "{\"user\":\"a\\u0001b\"}", "user name"},
      {"/login?token=1", "form", "user=", "user name"},
      {"/login", "form", "user=%FF&token=1", "UTF-8"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(call(port, "POST", bad[i].path, NULL, bad[i].ctype, bad[i].body, &r), 400);
    char sc[512];
    assert_int_equal(head_value(r.head, "Set-Cookie", sc, sizeof(sc)), -1);
    json_t *e = parse_json(&r);
    if (strstr(jstr(e, "error"), bad[i].error) == NULL) fail_msg("case %zu: %s", i, r.body);
    assert_null(json_object_get(e, "token"));
    json_decref(e);
    tb_resp_free(&r);
  }

  /* session mode is unchanged when token mode is not asked for, on this app too */
  jar s = {{0}};
  w = call_json(port, "POST", "/login", &s, "{\"user\":\"frank\",\"token\":false}", 200);
  check_whoami(w, "t1", 0, "frank", "");
  json_decref(w);
  assert_int_equal(strncmp(s.cookie, "connect.sid=s%3A", 16), 0);
  w = call_json(port, "POST", "/login?token=0", &s, "{\"user\":\"grace\"}", 200);
  check_whoami(w, "t1", 0, "grace", "");
  json_decref(w);
  assert_int_equal(call(port, "POST", "/login", &s, "form", "user=heidi&token=0", &r), 303);
  tb_resp_free(&r);
  redisFree(rc);
}

/* Checks a 401 from /api/me: the seed's body and exactly this challenge. */
static void check_401(const char *what, const char *auth, const char *challenge) {
  tb_resp r;
  long st = call_auth(W.tapp.port, "GET", "/api/me", auth, &r);
  char got[512] = "";
  head_value(r.head, "WWW-Authenticate", got, sizeof(got));
  fprintf(stderr, "  %-16s %ld  WWW-Authenticate: %s\n", what, st, got);
  if (st != 401 || strcmp(got, challenge) != 0)
    fail_msg("%s: status %ld, WWW-Authenticate '%s', want 401 and '%s'", what, st, got, challenge);
  assert_string_equal(r.body, "{\"error\":\"Invalid token\"}\n");
  assert_non_null(strstr(r.head, "application/json"));
  char sc[512];
  assert_int_equal(head_value(r.head, "Set-Cookie", sc, sizeof(sc)), -1);
  tb_resp_free(&r);
}

static void check_401_token(const char *what, const char *tok, const char *description) {
  char auth[4096], challenge[512];
  snprintf(auth, sizeof(auth), "Bearer %s", tok);
  snprintf(challenge, sizeof(challenge), "%s, error=\"invalid_token\", error_description=\"%s\"", REALM, description);
  check_401(what, auth, challenge);
}

static int64_t fixed_clock(void *arg) { return *(int64_t *)arg; }

static void test_api_me(void **state) {
  (void)state;
  int port = W.tapp.port;
  const char *me_2xx = "tether_app_requests_total{app=\"t1\",route=\"/api/me\",code_class=\"2xx\"}";
  const char *me_4xx = "tether_app_requests_total{app=\"t1\",route=\"/api/me\",code_class=\"4xx\"}";
  const char *other_4xx = "tether_app_requests_total{app=\"t1\",route=\"other\",code_class=\"4xx\"}";
  const char *created = "tether_sessions_created_total{store=\"redis\"}";
  double ok0 = metric_of(port, me_2xx), bad0 = metric_of(port, me_4xx), other0 = metric_of(port, other_4xx),
         created0 = metric_of(port, created);
  long long t0 = tether_now_ms() / 1000;
  char *tok = token_login(port, "/login?token=1", "json", "{\"user\":\"alice\",\"role\":\"admin\"}");
  long long iat = check_token(tok, "alice", "user", t0); /* the server's role, whatever was asked */
  char auth[1024], want[512];
  snprintf(auth, sizeof(auth), "Bearer %s", tok);
  snprintf(want, sizeof(want),
           "{\"server\":\"t1\",\"user\":{\"userId\":\"alice\",\"role\":\"user\",\"iat\":%lld,\"exp\":%lld}}\n", iat,
           iat + 3600);
  tb_resp r;
  assert_int_equal(call_auth(port, "GET", "/api/me", auth, &r), 200);
  assert_string_equal(r.body, want);
  assert_non_null(strstr(r.head, "X-Served-By: t1"));
  char sc[512];
  assert_int_equal(head_value(r.head, "Set-Cookie", sc, sizeof(sc)), -1);
  tb_resp_free(&r);
  snprintf(auth, sizeof(auth), "bearer   %s", tok); /* the scheme is case-insensitive (RFC 7235) */
  assert_int_equal(call_auth(port, "GET", "/api/me", auth, &r), 200);
  assert_string_equal(r.body, want);
  tb_resp_free(&r);

  /* a token the seed's login() would make (a numeric userId), signed with libtether */
  tether_jwt_signer *s;
  assert_int_equal(tether_jwt_signer_new_secret(JWT_SECRET, strlen(JWT_SECRET), TETHER_JWT_HS256, NULL, &s), 0);
  json_t *payload = json_pack("{s:i,s:s}", "userId", 42, "role", "user");
  char *seed_tok;
  assert_int_equal(tt_sign_json(s, payload, 3600, &seed_tok), 0);
  snprintf(auth, sizeof(auth), "Bearer %s", seed_tok);
  assert_int_equal(call_auth(port, "GET", "/api/me", auth, &r), 200);
  json_t *v = parse_json(&r);
  json_t *user = json_object_get(v, "user");
  assert_int_equal(json_integer_value(json_object_get(user, "userId")), 42);
  assert_string_equal(json_string_value(json_object_get(user, "role")), "user");
  json_decref(v);
  tb_resp_free(&r);
  free(seed_tok);
  tether_jwt_signer_free(s);

  /* refusals */
  check_401("no header", NULL, REALM);
  check_401("Bearer, empty", "Bearer", REALM);
  check_401("Bearer, blanks", "Bearer    ", REALM);
  check_401("Basic", "Basic YWxpY2U6cHc=", REALM);
  char *bad = strdup(tok);
  char *sig = strrchr(bad, '.') + 1;
  sig[0] = sig[0] == 'A' ? 'B' : 'A';
  check_401_token("tampered sig", bad, "invalid signature");
  free(bad);
  assert_int_equal(
      tether_jwt_signer_new_secret_ex("another-secret", 14, TETHER_JWT_HS256, NULL, TETHER_JWT_WEAK_SECRET_OK, &s), 0);
  char *foreign;
  assert_int_equal(tt_sign_json(s, payload, 3600, &foreign), 0);
  check_401_token("wrong secret", foreign, "invalid signature");
  free(foreign);
  tether_jwt_signer_free(s);
  assert_int_equal(tether_jwt_signer_new_secret(JWT_SECRET, strlen(JWT_SECRET), TETHER_JWT_HS256, NULL, &s), 0);
  int64_t two_hours_ago = tether_now_ms() - 7200 * 1000LL;
  tether_jwt_signer_set_clock(s, fixed_clock, &two_hours_ago);
  char *expired;
  assert_int_equal(tt_sign_json(s, payload, 3600, &expired), 0); /* exp an hour ago: beyond the leeway */
  check_401_token("expired", expired, "jwt expired");
  free(expired);
  tether_jwt_signer_free(s);
  assert_int_equal(tether_jwt_signer_new_secret(JWT_SECRET, strlen(JWT_SECRET), TETHER_JWT_HS512, NULL, &s), 0);
  char *hs512;
  assert_int_equal(tt_sign_json(s, payload, 3600, &hs512), 0); /* the right secret, but HS256 is pinned */
  check_401_token("HS512", hs512, "invalid algorithm");
  free(hs512);
  tether_jwt_signer_free(s);
  char h[64], p[128];
  const char *none_h = "{\"alg\":\"none\",\"typ\":\"JWT\"}", *none_p = "{\"userId\":\"alice\",\"role\":\"admin\"}";
  tether__base64url_encode((const uint8_t *)none_h, strlen(none_h), h);
  tether__base64url_encode((const uint8_t *)none_p, strlen(none_p), p);
  char none[256];
  snprintf(none, sizeof(none), "%s.%s.", h, p);
  check_401_token("alg none", none, "jwt signature is required");
  check_401_token("malformed", "abc", "jwt malformed");
  json_decref(payload);

  /* only GET (and HEAD) */
  snprintf(auth, sizeof(auth), "Bearer %s", tok);
  assert_int_equal(call_auth(port, "POST", "/api/me", auth, &r), 405);
  tb_resp_free(&r);
  free(tok);

  /* counted under its own route, and no session was made */
  assert_true(metric_of(port, me_2xx) == ok0 + 3);
  assert_true(metric_of(port, me_4xx) == bad0 + 11);
  assert_true(metric_of(port, other_4xx) == other0);
  assert_true(metric_of(port, created) == created0);
}

static void test_tokens_not_configured(void **state) {
  (void)state;
  int port = W.app.port; /* started without a JWT secret */
  const char *want = "{\"error\":\"token login is not configured (--jwt-secret or JWT_SECRET)\"}\n";
  static const struct {
    const char *path, *ctype, *body;
  } modes[] = {
      {"/login?token=1", "json", "{\"user\":\"alice\"}"},
      {"/login", "json", "{\"user\":\"alice\",\"token\":true}"},
      {"/login", "form", "user=alice&token=1"},
  };
  tb_resp r;
  char sc[512];
  for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
    assert_int_equal(call(port, "POST", modes[i].path, NULL, modes[i].ctype, modes[i].body, &r), 501);
    assert_string_equal(r.body, want);
    assert_int_equal(head_value(r.head, "Set-Cookie", sc, sizeof(sc)), -1);
    tb_resp_free(&r);
  }
  assert_int_equal(call_auth(port, "GET", "/api/me", "Bearer abc.def.ghi", &r), 501);
  assert_string_equal(r.body, want);
  tb_resp_free(&r);
  json_decref(call_json(port, "POST", "/api/me", NULL, "{}", 405));
  /* session login still works there */
  jar j = {{0}};
  json_t *w = call_json(port, "POST", "/login", &j, "{\"user\":\"ivan\"}", 200);
  check_whoami(w, "a1", 0, "ivan", "");
  json_decref(w);

  /* JWT_SECRET in the environment configures it as --jwt-secret does */
  app_proc e;
  setenv("JWT_SECRET", JWT_SECRET, 1);
  int rc = app_start(&e, "e1", "memory:");
  unsetenv("JWT_SECRET");
  assert_int_equal(rc, 0);
  char *tok = token_login(e.port, "/login?token=1", "json", "{\"user\":\"judy\"}");
  check_token(tok, "judy", "user", tether_now_ms() / 1000 - 5);
  free(tok);
  assert_true(tb_file_contains(e.log, "API tokens on (HS256)"));
  assert_int_equal(app_stop(&e), 0);
  assert_false(tb_log_has_sanitizer_report(e.log));
}

/* ---- setup ---- */

static int setup(void **state) {
  (void)state;
  unsetenv("TETHER_SECRET");
  unsetenv("JWT_SECRET");
  tb_curl_init();
  W.dir = tt_tmpdir("app");
  if (tt_redis_start(&W.redis, 0) < 0) return -1;
  if (app_start(&W.app, "a1", W.redis.url) < 0) {
    tt_server_cleanup(&W.redis);
    return -1;
  }
  const char *jwt[] = {"--jwt-secret", JWT_SECRET, NULL};
  if (app_start_with(&W.tapp, "t1", W.redis.url, jwt) < 0) {
    app_stop(&W.app);
    tt_server_cleanup(&W.redis);
    return -1;
  }
  return 0;
}

static int teardown(void **state) {
  (void)state;
  int st = app_stop(&W.app), st2 = app_stop(&W.tapp);
  tt_server_cleanup(&W.redis);
  if (W.dir && getenv("TB_KEEP") == NULL) tt_rmrf(W.dir);
  free(W.dir);
  W.dir = NULL;
  tether_jwt_thread_cleanup();
  return st == 0 && st2 == 0 ? 0 : -1; /* the apps must stop cleanly (and, under ASan, without leaks) */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_whoami_counts_and_cart_appends),
      cmocka_unit_test(test_login_regenerates_and_keeps),
      cmocka_unit_test(test_logout_destroys),
      cmocka_unit_test(test_index_and_form_login),
      cmocka_unit_test(test_methods_and_errors),
      cmocka_unit_test(test_big_request_heads),
      cmocka_unit_test(test_metrics),
      cmocka_unit_test(test_token_login_modes),
      cmocka_unit_test(test_api_me),
      cmocka_unit_test(test_tokens_not_configured),
      cmocka_unit_test(test_store_outage_and_recovery),
      cmocka_unit_test(test_sigterm_finishes_in_flight),
      cmocka_unit_test(test_sigterm_with_a_hung_store),
      cmocka_unit_test(test_waiting_requests_do_not_hold_others),
      cmocka_unit_test(test_bad_options),
      cmocka_unit_test(test_secrets_not_echoed),
      cmocka_unit_test(test_secure_cookie_behind_proxy),
      cmocka_unit_test(test_dashboard_link),
      cmocka_unit_test(test_whoami_name_escaped),
      cmocka_unit_test(test_absolute_timeout),
  };
  return cmocka_run_group_tests_name("tether-app", tests, setup, teardown);
}
