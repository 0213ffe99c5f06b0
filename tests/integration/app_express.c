/* The seed's Express app (tests/interop/express/app.js: express-session + connect-redis v7 + redis) as a
 * fourth backend behind the balancer, next to three tether-apps: one redis-server, one secret. The
 * balancer (one worker, round robin) sends consecutive requests of one user to app1, app2, app3 and the
 * Express app in turn; the user's session (id, visits, user, cart) goes on whoever answers: a login made
 * through tether-app is seen by Express and the other way, visits grow by exactly one per /whoami, the
 * cart is kept, and after a login the old cookie names no session on any of the four. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "balancer.h"

#ifndef TETHER_APP_BIN
#error "TETHER_APP_BIN must name the tether-app binary"
#endif
#ifndef TETHER_INTEROP_DIR
#error "TETHER_INTEROP_DIR must name tests/interop"
#endif

#define SECRET "peer-secret-shared-by-all-four"
#define NAPPS 4 /* app1..app3 and the Express app */

typedef struct peer {
  pid_t pid;
  int port;
  char name[32];
  char log[512];
} peer;

static struct {
  char *dir;
  tt_server redis;
  peer app[NAPPS];
  tb_tether lb;
  int have_node;
} W;

static const char *const names[NAPPS] = {"app1", "app2", "app3", "express"};

static int peer_start(peer *p, const char *name) {
  snprintf(p->name, sizeof(p->name), "%s", name);
  snprintf(p->log, sizeof(p->log), "%s/%s.log", W.dir, name);
  p->port = tt_free_port();
  char listen_at[32];
  snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%d", p->port);
  int is_node = strcmp(name, "express") == 0;
  char *app_argv[] = {TETHER_APP_BIN, "--listen",  listen_at,  "--name", p->name,
                      "--sessions",   W.redis.url, "--secret", SECRET,   NULL};
  char *node_argv[] = {"node",     TETHER_INTEROP_DIR "/express/app.js",
                       "--listen", listen_at,
                       "--name",   p->name,
                       "--redis",  W.redis.url,
                       "--secret", SECRET,
                       NULL};
  p->pid = tt_spawn(is_node ? node_argv : app_argv, p->log, NULL);
  if (p->pid < 0 || !tt_wait_port(p->port, is_node ? 30000 : 10000)) {
    fprintf(stderr, "%s did not start on port %d; its log:\n", name, p->port);
    tt_system("tail -n 30 '%s' >&2", p->log);
    if (p->pid > 0) tt_kill(p->pid, SIGKILL);
    p->pid = 0;
    return -1;
  }
  return 0;
}

/* SIGTERM and the exit status (-1 when it had to be killed). */
static int peer_stop(peer *p) {
  if (p->pid <= 0) return 0;
  kill(p->pid, SIGTERM);
  int st = -1, s;
  for (int waited = 0; waited < 15000; waited += 10) {
    if (waitpid(p->pid, &s, WNOHANG) == p->pid) {
      st = WIFEXITED(s) ? WEXITSTATUS(s) : 128 + WTERMSIG(s);
      break;
    }
    tt_sleep_ms(10);
  }
  if (st == -1) {
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
  }
  if (st != 0 || tb_log_has_sanitizer_report(p->log)) {
    fprintf(stderr, "%s exit status %d; log tail:\n", p->name, st);
    tt_system("tail -n 40 '%s' >&2", p->log);
  }
  p->pid = 0;
  return st;
}

/* ---- one user ---- */

typedef struct user {
  char cookie[512]; /* connect.sid=... from the last Set-Cookie */
  char id[64];      /* the session id answers named last */
  json_int_t visits;
  char name[64];  /* "" before login */
  char cart[256]; /* "a,b" */
  int served[NAPPS];
  char trail[1024]; /* who answered, in order, for messages */
  int by[64];       /* who answered each request */
  int nreq;
} user;

static int index_of(const char *server) {
  for (int i = 0; i < NAPPS; i++)
    if (strcmp(server, names[i]) == 0) return i;
  return -1;
}

static void take_cookie(user *u, const char *head) {
  for (const char *p = head; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
    if (strncasecmp(p, "Set-Cookie:", 11) != 0) continue;
    p += 11;
    while (*p == ' ') p++;
    size_t n = strcspn(p, ";\r\n");
    assert_true(n < sizeof(u->cookie));
    memcpy(u->cookie, p, n);
    u->cookie[n] = '\0';
    assert_int_equal(strncmp(u->cookie, "connect.sid=s%3A", 16), 0);
    return;
  }
}

/* One request through the balancer as this user: the answer, checked to be a whoami from one of the four,
 * with the server noted. */
static json_t *ask(user *u, const char *method, const char *path, const char *json_body) {
  char cookie_h[600];
  const char *hdrs[3] = {NULL, NULL, NULL};
  int n = 0;
  if (u->cookie[0]) {
    snprintf(cookie_h, sizeof(cookie_h), "Cookie: %s", u->cookie);
    hdrs[n++] = cookie_h;
  }
  if (json_body) hdrs[n++] = "Content-Type: application/json";
  tb_resp r;
  long st = tb_request(NULL, method, W.lb.port, path, json_body, json_body ? strlen(json_body) : 0, hdrs, &r);
  if (st != 200) fprintf(stderr, "%s %s: status %ld: %s\n", method, path, st, r.body);
  assert_int_equal(st, 200);
  take_cookie(u, r.head);
  json_error_t e;
  json_t *w = json_loads(r.body, 0, &e);
  if (w == NULL) fprintf(stderr, "%s %s: not JSON (%s): %s\n", method, path, e.text, r.body);
  assert_non_null(w);
  tb_resp_free(&r);
  assert_int_equal(json_object_size(w), strcmp(path, "/logout") == 0 ? 2 : 5);
  json_t *server = json_object_get(w, "server");
  assert_true(json_is_string(server));
  int i = index_of(json_string_value(server));
  assert_true(i >= 0);
  u->served[i]++;
  size_t len = strlen(u->trail);
  snprintf(u->trail + len, sizeof(u->trail) - len, "%s%s:%s", len ? " " : "", path + 1, names[i]);
  assert_true(u->nreq < 64);
  u->by[u->nreq++] = i;
  return w;
}

/* The answer agrees with what this user's session should hold. */
static void check(user *u, json_t *w) {
  json_t *id = json_object_get(w, "session_id"), *visits = json_object_get(w, "visits"),
         *name = json_object_get(w, "user"), *cart = json_object_get(w, "cart");
  assert_true(json_is_string(id));
  assert_true(json_is_integer(visits));
  assert_true(json_is_array(cart));
  char c[256] = "", *server = json_dumps(json_object_get(w, "server"), JSON_ENCODE_ANY);
  size_t k, len = 0;
  json_t *item;
  json_array_foreach(cart, k, item) {
    assert_true(json_is_string(item));
    len += (size_t)snprintf(c + len, sizeof(c) - len, "%s%s", k ? "," : "", json_string_value(item));
  }
  int ok = strcmp(json_string_value(id), u->id) == 0 && json_integer_value(visits) == u->visits &&
           strcmp(c, u->cart) == 0 &&
           (u->name[0] ? json_is_string(name) && strcmp(json_string_value(name), u->name) == 0 : json_is_null(name));
  if (!ok) {
    char *got = json_dumps(w, JSON_COMPACT);
    fprintf(stderr, "answer from %s: %s\n  want id %s visits %lld user %s cart [%s]\n  so far: %s\n", server, got,
            u->id, (long long)u->visits, u->name[0] ? u->name : "null", u->cart, u->trail);
    free(got);
  }
  free(server);
  assert_true(ok);
}

static void whoami(user *u) {
  json_t *w = ask(u, "GET", "/whoami", NULL);
  u->visits++;
  check(u, w);
  json_decref(w);
}

static void add_to_cart(user *u, const char *item) {
  char body[128];
  snprintf(body, sizeof(body), "{\"item\":\"%s\"}", item);
  json_t *w = ask(u, "POST", "/cart", body);
  size_t len = strlen(u->cart);
  snprintf(u->cart + len, sizeof(u->cart) - len, "%s%s", len ? "," : "", item);
  check(u, w);
  json_decref(w);
}

/* Logs in; returns the index of the server that did it. The id changes, the rest stays. */
static int login(user *u, const char *name) {
  char body[128];
  snprintf(body, sizeof(body), "{\"user\":\"%s\"}", name);
  char old_id[64];
  snprintf(old_id, sizeof(old_id), "%s", u->id);
  json_t *w = ask(u, "POST", "/login", body);
  int by = index_of(json_string_value(json_object_get(w, "server")));
  const char *id = json_string_value(json_object_get(w, "session_id"));
  assert_non_null(id);
  assert_string_not_equal(id, old_id);
  assert_int_equal(strlen(id), 32);
  snprintf(u->id, sizeof(u->id), "%s", id);
  snprintf(u->name, sizeof(u->name), "%s", name);
  check(u, w);
  json_decref(w);
  return by;
}

/* Whether the next request's turn is backend i: a strict round robin over 4 repeats every 4 requests. */
static int next_is(const user *u, int i) {
  assert_true(u->nreq >= NAPPS);
  return u->by[u->nreq - NAPPS] == i;
}

/* ---- the test ---- */

static void test_session_follows_the_user_across_four_backends(void **state) {
  (void)state;
  if (!W.have_node) skip();
  user u;
  memset(&u, 0, sizeof(u));
  /* a first visit makes the session: its id is what every later answer must name */
  json_t *w = ask(&u, "GET", "/whoami", NULL);
  snprintf(u.id, sizeof(u.id), "%s", json_string_value(json_object_get(w, "session_id")));
  u.visits = 1;
  check(&u, w);
  json_decref(w);
  for (int i = 0; i < 3; i++) whoami(&u); /* four requests: the balancer's turn is known from here on */
  add_to_cart(&u, "book");
  char before_login[512];
  snprintf(before_login, sizeof(before_login), "%s", u.cookie);

  /* a login through a tether-app: its turn comes every 4 requests (a strict round robin, checked below) */
  while (next_is(&u, 3)) whoami(&u);
  int by1 = login(&u, "alice");
  for (int i = 0; i < 8; i++) whoami(&u); /* Express and the others carry on with tether-app's session */
  add_to_cart(&u, "pen");
  /* and a login through the Express app, that the tether-apps carry on */
  while (!next_is(&u, 3)) whoami(&u);
  int by2 = login(&u, "bob");
  for (int i = 0; i < 8; i++) whoami(&u);
  fprintf(stderr, "served: %s\n", u.trail);
  fprintf(stderr, "logins by %s and %s; final visits %lld, cart [%s]\n", names[by1], names[by2], (long long)u.visits,
          u.cart);
  assert_true(by1 != 3);
  assert_int_equal(by2, 3);

  /* round robin over the four: every backend answered, in strict turn */
  for (int i = 4; i < u.nreq; i++) assert_int_equal(u.by[i], u.by[i - 4]);
  for (int i = 0; i < NAPPS; i++) assert_true(u.served[i] >= 5);

  /* the cookie from before the login names no session, wherever it lands */
  user stale;
  memset(&stale, 0, sizeof(stale));
  for (int i = 0; i < NAPPS; i++) {
    snprintf(stale.cookie, sizeof(stale.cookie), "%s", before_login);
    w = ask(&stale, "GET", "/whoami", NULL);
    assert_int_equal(json_integer_value(json_object_get(w, "visits")), 1);
    assert_true(json_is_null(json_object_get(w, "user")));
    assert_int_equal(json_array_size(json_object_get(w, "cart")), 0);
    assert_string_not_equal(json_string_value(json_object_get(w, "session_id")), u.id);
    json_decref(w);
  }
  for (int i = 0; i < NAPPS; i++) assert_true(stale.served[i] == 1);

  /* log out through whoever is next: the session is gone for all four */
  w = ask(&u, "POST", "/logout", "{}");
  assert_true(json_is_true(json_object_get(w, "ok")));
  json_decref(w);
  for (int i = 0; i < NAPPS; i++) {
    w = ask(&u, "GET", "/whoami", NULL);
    assert_int_equal(json_integer_value(json_object_get(w, "visits")), 1);
    assert_true(json_is_null(json_object_get(w, "user")));
    json_decref(w);
    u.cookie[0] = '\0'; /* each a newcomer */
  }
}

/* The seed's settings (cookie.secure, and `trust proxy` for the balancer in front) behind a balancer whose
 * own trusted peer (127.0.0.2, a TLS terminator) says the client came over https: Express sets its Secure
 * cookie. Anyone else's X-Forwarded-Proto is replaced, so no Secure cookie is set over plain http. */
static void test_secure_cookie_behind_trusted_proxy(void **state) {
  (void)state;
  if (!W.have_node) skip();
  peer sec = {0};
  snprintf(sec.name, sizeof(sec.name), "express-secure");
  snprintf(sec.log, sizeof(sec.log), "%s/express-secure.log", W.dir);
  sec.port = tt_free_port();
  char listen_at[32];
  snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%d", sec.port);
  char *argv[] = {"node",     TETHER_INTEROP_DIR "/express/app.js",
                  "--listen", listen_at,
                  "--name",   sec.name,
                  "--redis",  W.redis.url,
                  "--secret", SECRET,
                  "--secure", "--trust-proxy",
                  "loopback", NULL};
  sec.pid = tt_spawn(argv, sec.log, NULL);
  assert_true(sec.pid > 0 && tt_wait_port(sec.port, 30000));
  tb_tether lb;
  assert_int_equal(tb_tether_start(&lb, 1,
                                   "set_real_ip_from 127.0.0.2;\n"
                                   "upstream secure { server 127.0.0.1:%d; }\n"
                                   "location / { proxy_pass http://secure; }\n",
                                   sec.port),
                   0);
  const char *https[] = {"X-Forwarded-Proto: https", NULL};
  tb_resp r;
  assert_int_equal(tb_get_from("127.0.0.2", lb.port, "/whoami", https, &r), 200);
  const char *sc = strcasestr(r.head, "\nSet-Cookie: connect.sid=");
  if (sc == NULL) fprintf(stderr, "no session cookie from the trusted proxy's https request:\n%s", r.head);
  assert_non_null(sc);
  assert_non_null(strstr(sc, "; Secure"));
  assert_non_null(strstr(sc, "; HttpOnly"));
  tb_resp_free(&r);
  /* an untrusted client's claim of https changes nothing */
  assert_int_equal(tb_get_from("127.0.0.3", lb.port, "/whoami", https, &r), 200);
  assert_null(strcasestr(r.head, "\nSet-Cookie: connect.sid="));
  tb_resp_free(&r);
  assert_int_equal(tb_tether_stop(&lb, 15000), 0);
  tb_tether_cleanup(&lb);
  assert_int_equal(peer_stop(&sec), 0);
}

/* ---- setup ---- */

static int setup_world(void) {
  tb_curl_init();
  W.have_node = tt_system("command -v node >/dev/null 2>&1") == 0;
  if (!W.have_node) {
    fprintf(stderr, "SKIP: node is not on PATH; the Express peer needs Node.js 20+\n");
    return 0;
  }
  if (access(TETHER_INTEROP_DIR "/node_modules/express-session/package.json", R_OK) != 0) {
    fprintf(stderr, "%s/node_modules is missing: run scripts/deps (npm ci in tests/interop)\n", TETHER_INTEROP_DIR);
    return -1;
  }
  W.dir = tt_tmpdir("app-express");
  if (tt_redis_start(&W.redis, 0) < 0) return -1;
  for (int i = 0; i < NAPPS; i++)
    if (peer_start(&W.app[i], names[i]) < 0) return -1;
  return tb_tether_start(&W.lb, 1,
                         "upstream apps {\n"
                         "    server 127.0.0.1:%d;\n    server 127.0.0.1:%d;\n"
                         "    server 127.0.0.1:%d;\n    server 127.0.0.1:%d;\n"
                         "    keepalive 8;\n}\n"
                         "location / { proxy_pass http://apps; }\n",
                         W.app[0].port, W.app[1].port, W.app[2].port, W.app[3].port);
}

static int teardown_world(void) {
  int bad = 0;
  if (W.lb.pid > 0 && tb_tether_stop(&W.lb, 15000) != 0) bad = 1;
  tb_tether_cleanup(&W.lb);
  for (int i = 0; i < NAPPS; i++)
    if (peer_stop(&W.app[i]) != 0) bad = 1;
  tt_server_cleanup(&W.redis);
  if (W.dir && getenv("TB_KEEP") == NULL) tt_rmrf(W.dir);
  free(W.dir);
  W.dir = NULL;
  return bad ? -1 : 0;
}

static int setup(void **state) {
  (void)state;
  if (setup_world() == 0) return 0;
  teardown_world(); /* cmocka skips the group teardown when the setup fails */
  return -1;
}

static int teardown(void **state) {
  (void)state;
  return teardown_world();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_session_follows_the_user_across_four_backends),
      cmocka_unit_test(test_secure_cookie_behind_trusted_proxy),
  };
  return cmocka_run_group_tests_name("tether-app and the seed's Express app behind the balancer", tests, setup,
                                     teardown);
}
