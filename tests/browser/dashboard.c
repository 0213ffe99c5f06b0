/* The balancer's dashboard (GET / on the admin listener) in a real browser: Debian's chromium driven by
 * puppeteer-core (dashboard.js), with three tether-apps keeping sessions in memory behind a sticky cookie and
 * a session_monitor. The page shows every server, drains one from its button, and, when the test kills an
 * app its users were bound to, shows the session-loss figure rise over the event stream. A screenshot goes to
 * the build's tests/browser/output/dashboard.png and is checked not to be blank. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "balancer.h"

#define CHROMIUM "/usr/bin/chromium"
#define NAPPS 3
#define NODE_TIMEOUT_MS 150000

static struct {
  char *dir;
  pid_t app[NAPPS];
  int port[NAPPS];
  tb_tether lb;
} W;

static int app_start(int i) {
  char name[16], log[600], listen_at[32];
  snprintf(name, sizeof(name), "app%d", i + 1);
  snprintf(log, sizeof(log), "%s/%s.log", W.dir, name);
  W.port[i] = tt_free_port();
  snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%d", W.port[i]);
  char *argv[] = {TETHER_APP_BIN,
                  "--listen",
                  listen_at,
                  "--name",
                  name,
                  "--sessions",
                  "memory://",
                  "--secret",
                  "dashboard-browser-secret",
                  NULL};
  W.app[i] = tt_spawn(argv, log, NULL);
  return W.app[i] > 0 && tt_wait_port(W.port[i], 10000) ? 0 : -1;
}

/* Runs dashboard.js (in its own process group, with chromium under it); its exit status. */
static int run_browser(const char *log) {
  char cfg[1024];
  int n = snprintf(cfg, sizeof(cfg),
                   "{\"lb\":\"http://127.0.0.1:%d\",\"admin\":\"http://127.0.0.1:%d\",\"out\":\"%s\",\"apps\":[",
                   W.lb.port, W.lb.admin, TETHER_BROWSER_OUT);
  for (int i = 0; i < NAPPS; i++)
    n += snprintf(cfg + n, sizeof(cfg) - (size_t)n, "%s{\"name\":\"app%d\",\"pid\":%d,\"addr\":\"127.0.0.1:%d\"}",
                  i ? "," : "", i + 1, (int)W.app[i], W.port[i]);
  snprintf(cfg + n, sizeof(cfg) - (size_t)n, "]}");
  char *argv[] = {"node", TETHER_BROWSER_DIR "/dashboard.js", cfg, NULL};
  pid_t pid = tt_spawn(argv, log, NULL);
  assert_true(pid > 0);
  int st;
  for (int waited = 0; waited < NODE_TIMEOUT_MS; waited += 50) {
    if (waitpid(pid, &st, WNOHANG) == pid) {
      kill(-pid, SIGKILL); /* anything chromium left behind */
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    tt_sleep_ms(50);
  }
  fprintf(stderr, "dashboard.js did not finish in %d s\n", NODE_TIMEOUT_MS / 1000);
  kill(-pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return -1;
}

static void test_dashboard_in_a_browser(void **state) {
  (void)state;
  char log[600];
  snprintf(log, sizeof(log), "%s/dashboard.log", TETHER_BROWSER_OUT);
  unlink(log);
  int st = run_browser(log);
  tt_system("cat '%s' >&2", log);
  assert_int_equal(st, 0);
  assert_true(tb_file_contains(log, "PASS:"));
  /* what the page showed agrees with the balancer's own count */
  char *m = tb_admin_get(&W.lb, "/metrics");
  double replaced = 0;
  for (int i = 0; i < NAPPS; i++) {
    char key[160];
    snprintf(key, sizeof(key), "tether_session_replaced_total{upstream=\"apps\",server=\"127.0.0.1:%d\"}", W.port[i]);
    replaced += tb_metric(m, key);
  }
  free(m);
  assert_true(replaced >= 1);
}

static int setup(void **state) {
  (void)state;
  tb_curl_init();
  if (access(TETHER_BROWSER_DIR "/node_modules/puppeteer-core/package.json", R_OK) != 0) {
    fprintf(stderr, "%s/node_modules is missing: run scripts/deps (npm ci in tests/browser)\n", TETHER_BROWSER_DIR);
    return -1;
  }
  if (mkdir(TETHER_BROWSER_OUT, 0755) < 0 && errno != EEXIST) return -1;
  W.dir = tt_tmpdir("dashboard");
  for (int i = 0; i < NAPPS; i++)
    if (app_start(i) < 0) return -1;
  return tb_tether_start(&W.lb, 2,
                         "upstream apps {\n"
                         "    server 127.0.0.1:%d max_fails=1 fail_timeout=60s;\n"
                         "    server 127.0.0.1:%d max_fails=1 fail_timeout=60s;\n"
                         "    server 127.0.0.1:%d max_fails=1 fail_timeout=60s;\n"
                         "    sticky cookie srv_id;\n    sticky_secret dashboard-browser-sticky-0123;\n"
                         "    session_monitor connect.sid expected=/login;\n}\n"
                         "location / { proxy_pass http://apps; }\n",
                         W.port[0], W.port[1], W.port[2]);
}

static int teardown(void **state) {
  (void)state;
  int bad = W.lb.pid > 0 && tb_tether_stop(&W.lb, 15000) != 0;
  tb_tether_cleanup(&W.lb);
  for (int i = 0; i < NAPPS; i++)
    if (W.app[i] > 0) tt_kill(W.app[i], SIGTERM);
  if (W.dir && getenv("TB_KEEP") == NULL) tt_rmrf(W.dir);
  free(W.dir);
  return bad ? -1 : 0;
}

int main(void) {
  if (access(CHROMIUM, X_OK) != 0) {
    printf("SKIP: %s is not installed (scripts/deps installs chromium)\n", CHROMIUM);
    return tt_system("apt-cache policy chromium 2>/dev/null | grep -q 'Candidate: [0-9]'") == 0 ? 1 : 0;
  }
  if (tt_system("command -v node >/dev/null 2>&1") != 0) {
    fprintf(stderr, "node is not on PATH: the browser test drives chromium from Node.js (scripts/deps installs it)\n");
    return 1;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dashboard_in_a_browser),
  };
  return cmocka_run_group_tests_name("the balancer's dashboard in a real browser", tests, setup, teardown);
}
