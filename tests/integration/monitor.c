/* The balancer's session-loss monitor (session_monitor) against real applications and a real kill: three
 * instances of the seed's Express app (express-session, tests/interop/express/app.js), of its Flask app
 * (Flask-Session under gunicorn, tests/interop/flask/app.py, sessions in the process) or of tether-app behind
 * the balancer, users with their own cookies, then one instance killed (gunicorn's whole process group). The users keep
 * their own count of what happened to their session (the ground truth: the session id every answer names); the
 * balancer's tether_session_{started,replaced,expected,presented}_total must match it exactly:
 *   - in-memory sessions with sticky cookies: the users bound to the killed instance lose theirs;
 *   - a shared Redis store with round robin: nobody loses anything, and the monitor says so.
 * A login (which regenerates the id) is on an expected= path: counted as expected, not as a loss. */
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

#define SECRET "monitor-test-secret-0123456789"
#define NAPPS 3
#define NUSERS 15
#define MAX_COOKIES 4

typedef enum app_kind { EXPRESS_MEMORY, TETHER_MEMORY, EXPRESS_REDIS, FLASK_MEMORY } app_kind;

static struct {
  char *dir;
  int have_node;
  int have_flask;     /* gunicorn, and Debian's python3-flask-session for it */
  const char *cookie; /* the session cookie of the apps under test: connect.sid, or Flask's "session" */
  tt_server redis;
} W;

typedef struct app {
  pid_t pid;
  int port;
  char name[32];
  char log[512];
} app;

static int app_start(app *a, app_kind kind, int i) {
  snprintf(a->name, sizeof(a->name), "app%d", i + 1);
  snprintf(a->log, sizeof(a->log), "%s/%s-%d.log", W.dir, a->name, (int)kind);
  a->port = tt_free_port();
  char listen_at[32];
  snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%d", a->port);
  char *tether_argv[] = {TETHER_APP_BIN, "--listen",  listen_at,  "--name", a->name,
                         "--sessions",   "memory://", "--secret", SECRET,   NULL};
  char *node_argv[] = {"node",     TETHER_INTEROP_DIR "/express/app.js",
                       "--listen", listen_at,
                       "--name",   a->name,
                       "--secret", SECRET,
                       "--store",  kind == EXPRESS_MEMORY ? "memory" : "redis",
                       "--redis",  kind == EXPRESS_REDIS ? W.redis.url : "redis://127.0.0.1:1",
                       NULL};
  char env_name[48], env_secret[64], chdir_to[600];
  snprintf(env_name, sizeof(env_name), "LAB_NAME=%s", a->name);
  snprintf(env_secret, sizeof(env_secret), "LAB_SECRET=%s", SECRET);
  snprintf(chdir_to, sizeof(chdir_to), "%s/flask", TETHER_INTEROP_DIR);
  /* as tether-lab runs it (src/lab/apps.c): one worker, as the seed does, with threads */
  char *flask_argv[] = {"gunicorn", "--workers", "1",       "--threads", "4",
                        "--bind",   listen_at,   "--chdir", chdir_to,    "--graceful-timeout",
                        "2",        "--env",     env_name,  "--env",     "LAB_STORE=memory",
                        "--env",    env_secret,  "app:app", NULL};
  char **argv = kind == TETHER_MEMORY ? tether_argv : kind == FLASK_MEMORY ? flask_argv : node_argv;
  a->pid = tt_spawn(argv, a->log, NULL);
  if (a->pid < 0 || !tt_wait_port(a->port, kind == TETHER_MEMORY ? 10000 : 30000)) {
    fprintf(stderr, "%s did not start on port %d; its log:\n", a->name, a->port);
    tt_system("tail -n 30 '%s' >&2", a->log);
    if (a->pid > 0) tt_kill(a->pid, SIGKILL);
    a->pid = 0;
    return -1;
  }
  return 0;
}

static void app_stop(app *a, int sig) {
  if (a->pid > 0) kill(-a->pid, sig); /* its process group (tt_spawn): gunicorn's worker goes with its master */
  if (a->pid > 0) tt_kill(a->pid, sig);
  a->pid = 0;
}

/* ---- users, with their own cookie jar and their own account of their session ---- */

typedef struct user {
  char names[MAX_COOKIES][32];
  char values[MAX_COOKIES][256];
  int ncookies;
  char id[64];     /* the session id the last answer named ("" : none yet) */
  char server[32]; /* who answered last */
} user;

/* What the users saw, to compare with the balancer's counts. */
typedef struct truth {
  int started;   /* answers that set a session for a user who came without one */
  int lost;      /* answers that named another session than the one the user came with */
  int regen;     /* logins: the id changes on purpose */
  int presented; /* requests that carried the session cookie */
} truth;

static const char *jar_get(const user *u, const char *name) {
  for (int i = 0; i < u->ncookies; i++)
    if (strcmp(u->names[i], name) == 0) return u->values[i];
  return NULL;
}

/* Applies one Set-Cookie line (after "Set-Cookie:") as a browser would, for what these apps send. */
static void jar_set(user *u, const char *line) {
  while (*line == ' ') line++;
  const char *eq = strchr(line, '=');
  assert_non_null(eq);
  size_t nl = (size_t)(eq - line), vl = strcspn(eq + 1, ";\r\n");
  const char *rest = eq + 1 + vl;
  size_t restl = strcspn(rest, "\r\n");
  int deleted = vl == 0 || (strcasestr(rest, "Max-Age=0") && strcasestr(rest, "Max-Age=0") < rest + restl) ||
                (strcasestr(rest, "1970") && strcasestr(rest, "1970") < rest + restl);
  int i = 0;
  while (i < u->ncookies && !(strlen(u->names[i]) == nl && strncmp(u->names[i], line, nl) == 0)) i++;
  if (deleted) {
    if (i < u->ncookies) {
      memmove(&u->names[i], &u->names[i + 1], (size_t)(u->ncookies - i - 1) * sizeof(u->names[0]));
      memmove(&u->values[i], &u->values[i + 1], (size_t)(u->ncookies - i - 1) * sizeof(u->values[0]));
      u->ncookies--;
    }
    return;
  }
  if (i == u->ncookies) {
    assert_true(u->ncookies < MAX_COOKIES && nl < sizeof(u->names[0]));
    snprintf(u->names[u->ncookies++], sizeof(u->names[0]), "%.*s", (int)nl, line);
  }
  assert_true(vl < sizeof(u->values[0]));
  snprintf(u->values[i], sizeof(u->values[0]), "%.*s", (int)vl, eq + 1);
}

/* One request as this user: the answer's session id and server, checked against what the user knows. */
static void ask(int lb_port, user *u, const char *method, const char *path, const char *json_body, truth *t) {
  char cookie_h[1200] = "Cookie: ";
  for (int i = 0; i < u->ncookies; i++)
    snprintf(cookie_h + strlen(cookie_h), sizeof(cookie_h) - strlen(cookie_h), "%s%s=%s", i ? "; " : "", u->names[i],
             u->values[i]);
  const char *hdrs[3] = {NULL, NULL, NULL};
  int n = 0;
  if (u->ncookies) hdrs[n++] = cookie_h;
  if (json_body) hdrs[n++] = "Content-Type: application/json";
  int had_session = jar_get(u, W.cookie) != NULL;
  t->presented += had_session;
  tb_resp r;
  long st = tb_request(NULL, method, lb_port, path, json_body, json_body ? strlen(json_body) : 0, hdrs, &r);
  if (st != 200) fprintf(stderr, "%s %s: status %ld: %s\n", method, path, st, r.body ? r.body : "");
  assert_int_equal(st, 200);
  int set_session = 0;
  for (const char *p = r.head; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
    if (strncasecmp(p, "Set-Cookie:", 11) == 0) {
      const char *name = p + 11 + strspn(p + 11, " ");
      set_session |= strncmp(name, W.cookie, strlen(W.cookie)) == 0 && name[strlen(W.cookie)] == '=';
      jar_set(u, p + 11);
    }
  json_error_t e;
  json_t *w = json_loads(r.body, 0, &e);
  if (w == NULL) fprintf(stderr, "%s %s: not JSON (%s): %s\n", method, path, e.text, r.body);
  assert_non_null(w);
  const char *id = json_string_value(json_object_get(w, "session_id"));
  const char *server = json_string_value(json_object_get(w, "server"));
  assert_non_null(id);
  assert_non_null(server);
  if (!had_session && set_session) t->started++;
  if (had_session && strcmp(id, u->id) != 0) {
    if (strcmp(path, "/login") == 0)
      t->regen++;
    else
      t->lost++;
  }
  snprintf(u->id, sizeof(u->id), "%s", id);
  snprintf(u->server, sizeof(u->server), "%s", server);
  json_decref(w);
  tb_resp_free(&r);
}

/* The balancer's count of one metric, summed over the upstream's servers. */
static long sum_metric(tb_tether *lb, const char *metric, const app *apps) {
  char *m = tb_admin_get(lb, "/metrics");
  assert_non_null(m);
  long sum = 0;
  for (int i = 0; i < NAPPS; i++) {
    char key[256];
    snprintf(key, sizeof(key), "%s{upstream=\"apps\",server=\"127.0.0.1:%d\"}", metric, apps[i].port);
    double v = tb_metric(m, key);
    if (v < 0) fprintf(stderr, "no %s in:\n%s\n", key, m);
    assert_true(v >= 0);
    sum += (long)v;
  }
  free(m);
  return sum;
}

static void check_counts(tb_tether *lb, const app *apps, const truth *t) {
  long started = sum_metric(lb, "tether_session_started_total", apps);
  long replaced = sum_metric(lb, "tether_session_replaced_total", apps);
  long expected = sum_metric(lb, "tether_session_expected_total", apps);
  long presented = sum_metric(lb, "tether_session_presented_total", apps);
  fprintf(stderr, "  users:    started %d, lost %d, logins %d, requests with the cookie %d\n", t->started, t->lost,
          t->regen, t->presented);
  fprintf(stderr, "  balancer: started %ld, replaced %ld, expected %ld, presented %ld\n", started, replaced, expected,
          presented);
  assert_int_equal(started, t->started);
  assert_int_equal(replaced, t->lost);
  assert_int_equal(expected, t->regen);
  assert_int_equal(presented, t->presented);
}

/* Users with sessions, a login for one in three, one instance killed, and everyone back. */
static void kill_run(app_kind kind, int sticky) {
  W.cookie = kind == FLASK_MEMORY ? "session" : "connect.sid";
  app apps[NAPPS];
  memset(apps, 0, sizeof(apps));
  for (int i = 0; i < NAPPS; i++) assert_int_equal(app_start(&apps[i], kind, i), 0);
  tb_tether lb;
  assert_int_equal(tb_tether_start(&lb, 2,
                                   "upstream apps {\n"
                                   "  server 127.0.0.1:%d max_fails=1 fail_timeout=60s;\n"
                                   "  server 127.0.0.1:%d max_fails=1 fail_timeout=60s;\n"
                                   "  server 127.0.0.1:%d max_fails=1 fail_timeout=60s;\n"
                                   "  %s\n"
                                   "  session_monitor %s expected=/login;\n}\n"
                                   "location / { proxy_pass http://apps; }\n",
                                   apps[0].port, apps[1].port, apps[2].port, sticky ? "sticky cookie srv_id;" : "",
                                   W.cookie),
                   0);
  static user users[NUSERS];
  memset(users, 0, sizeof(users));
  truth t = {0};
  for (int i = 0; i < NUSERS; i++) {
    ask(lb.port, &users[i], "GET", "/whoami", NULL, &t);
    ask(lb.port, &users[i], "GET", "/whoami", NULL, &t);
    if (i % 3 == 0) ask(lb.port, &users[i], "POST", "/login", "{\"user\":\"alice\"}", &t);
    ask(lb.port, &users[i], "GET", "/whoami", NULL, &t);
  }
  assert_int_equal(t.started, NUSERS);
  assert_int_equal(t.lost, 0);
  assert_int_equal(t.regen, (NUSERS + 2) / 3);
  check_counts(&lb, apps, &t);
  /* the instance the first user is on goes away without a word */
  int victim = users[0].server[3] - '1';
  assert_true(victim >= 0 && victim < NAPPS);
  int on_victim = 0;
  for (int i = 0; i < NUSERS; i++) on_victim += sticky && strcmp(users[i].server, apps[victim].name) == 0;
  app_stop(&apps[victim], SIGKILL);
  for (int round = 0; round < 2; round++)
    for (int i = 0; i < NUSERS; i++) ask(lb.port, &users[i], "GET", "/whoami", NULL, &t);
  fprintf(stderr, "%s, %s: %s killed, %d of %d users were bound to it\n",
          kind == EXPRESS_MEMORY  ? "express (memory)"
          : kind == TETHER_MEMORY ? "tether-app (memory://)"
          : kind == FLASK_MEMORY  ? "flask (in the process)"
                                  : "express (redis)",
          sticky ? "sticky cookie" : "round robin", apps[victim].name, on_victim, NUSERS);
  if (kind == EXPRESS_REDIS)
    assert_int_equal(t.lost, 0); /* a shared store loses nothing */
  else
    assert_int_equal(t.lost, on_victim); /* exactly the users of the killed instance */
  assert_true(kind == EXPRESS_REDIS || t.lost > 0);
  check_counts(&lb, apps, &t);
  assert_int_equal(tb_tether_stop(&lb, 15000), 0);
  tb_tether_cleanup(&lb);
  for (int i = 0; i < NAPPS; i++) app_stop(&apps[i], SIGTERM);
}

static void test_express_memory_sticky(void **state) {
  (void)state;
  if (!W.have_node) skip();
  kill_run(EXPRESS_MEMORY, 1);
}

static void test_tether_app_memory_sticky(void **state) {
  (void)state;
  kill_run(TETHER_MEMORY, 1);
}

static void test_flask_memory_sticky(void **state) {
  (void)state;
  if (!W.have_flask) skip();
  kill_run(FLASK_MEMORY, 1);
}

static void test_express_redis_round_robin(void **state) {
  (void)state;
  if (!W.have_node) skip();
  kill_run(EXPRESS_REDIS, 0);
}

/* ---- setup ---- */

static int setup(void **state) {
  (void)state;
  tb_curl_init();
  W.have_node = tt_system("command -v node >/dev/null 2>&1") == 0;
  if (!W.have_node) fprintf(stderr, "SKIP (Express): node is not on PATH; the Express app needs Node.js 20+\n");
  if (W.have_node && access(TETHER_INTEROP_DIR "/node_modules/express-session/package.json", R_OK) != 0) {
    fprintf(stderr, "%s/node_modules is missing: run scripts/deps (npm ci in tests/interop)\n", TETHER_INTEROP_DIR);
    return -1;
  }
  /* gunicorn runs Debian's /usr/bin/python3, with python3-flask-session (scripts/deps installs both) */
  W.have_flask = access("/usr/bin/gunicorn", X_OK) == 0 &&
                 tt_system("/usr/bin/python3 -c 'import flask_session, redis' >/dev/null 2>&1") == 0;
  if (!W.have_flask) {
    fprintf(stderr, "gunicorn or python3-flask-session is missing: run scripts/deps\n");
    return -1;
  }
  W.dir = tt_tmpdir("monitor");
  return tt_redis_start(&W.redis, 0);
}

static int teardown(void **state) {
  (void)state;
  tt_server_cleanup(&W.redis);
  if (W.dir && getenv("TB_KEEP") == NULL) tt_rmrf(W.dir);
  free(W.dir);
  W.dir = NULL;
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_express_memory_sticky),
      cmocka_unit_test(test_tether_app_memory_sticky),
      cmocka_unit_test(test_flask_memory_sticky),
      cmocka_unit_test(test_express_redis_round_robin),
  };
  return cmocka_run_group_tests_name("the session-loss monitor against real apps with a kill", tests, setup, teardown);
}
