/* The demo in a real browser. Starts what `make run` starts, on free ports: three tether-apps (app1..app3)
 * sharing one SQLite store and the balancer in front of them (examples/demo.conf's upstream), then runs
 * browser.js, which drives Debian's headless chromium through puppeteer-core: open /, log in with the form,
 * reload ten times (the counter goes up by one each time whatever app answers), SIGTERM the app that
 * served the last page, reload (the counter goes on). All of it over HTTPS, as `make run` serves it: a
 * certificate of a local CA made here with openssl, which chromium trusts by its SPKI hash
 * (--ignore-certificate-errors-spki-list); the apps run with --cookie-secure auto behind the balancer, so the
 * session cookie must be Secure there, and not on the plain listen. Here we check that exactly that app stopped, with
 * exit status 0, and that the others and the balancer stop cleanly too. The screenshot is saved under
 * TETHER_BROWSER_OUT.
 * Skips (exit 0, "SKIP:") only when chromium is not installed and cannot be installed on this machine. */
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

#ifndef TETHER_APP_BIN
#error "TETHER_APP_BIN must name the tether-app binary"
#endif
#ifndef TETHER_BROWSER_DIR
#error "TETHER_BROWSER_DIR must name tests/browser"
#endif
#ifndef TETHER_BROWSER_OUT
#error "TETHER_BROWSER_OUT must name the test's output directory"
#endif

#define CHROMIUM "/usr/bin/chromium"
#define NAPPS 3
#define NODE_TIMEOUT_MS 150000

typedef struct app_proc {
  pid_t pid;
  int port;
  char name[16];
  char log[512];
  int status; /* exit status once reaped, -1 before */
} app_proc;

static struct {
  char *dir;
  int tls_port;  /* the balancer's https listen */
  char spki[64]; /* base64 SHA-256 of the certificate's SubjectPublicKeyInfo */
  app_proc app[NAPPS];
  tb_tether lb;
} W;

static int app_start(app_proc *a, int i, const char *sessions) {
  snprintf(a->name, sizeof(a->name), "app%d", i + 1);
  snprintf(a->log, sizeof(a->log), "%s/%s.log", W.dir, a->name);
  a->port = tt_free_port();
  a->status = -1;
  char listen_at[32];
  snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%d", a->port);
  char *argv[] = {TETHER_APP_BIN,    "--listen", listen_at,
                  "--name",          a->name,    "--sessions",
                  (char *)sessions,  "--secret", "browser-test-secret",
                  "--cookie-secure", "auto",     "--trust-proxy",
                  "127.0.0.1/32",    NULL};
  a->pid = tt_spawn(argv, a->log, NULL);
  if (a->pid < 0 || !tt_wait_port(a->port, 10000)) {
    fprintf(stderr, "%s did not start; its log:\n", a->name);
    tt_system("tail -n 20 '%s' >&2", a->log);
    return -1;
  }
  return 0;
}

/* Reaps the app when it has exited (status kept); 1 when it has. */
static int app_reaped(app_proc *a) {
  if (a->pid <= 0) return a->status >= 0;
  int st;
  if (waitpid(a->pid, &st, WNOHANG) != a->pid) return 0;
  a->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  a->pid = 0;
  return 1;
}

static int app_stop(app_proc *a) {
  if (a->pid > 0) {
    kill(a->pid, SIGTERM);
    for (int waited = 0; waited < 15000 && !app_reaped(a); waited += 10) tt_sleep_ms(10);
    if (a->pid > 0) {
      kill(a->pid, SIGKILL);
      waitpid(a->pid, NULL, 0);
      a->pid = 0;
      a->status = -1;
    }
  }
  if (a->status != 0 || tb_log_has_sanitizer_report(a->log)) {
    fprintf(stderr, "%s exit status %d; log tail:\n", a->name, a->status);
    tt_system("tail -n 40 '%s' >&2", a->log);
  }
  return a->status;
}

/* Runs browser.js (in its own process group, with chromium under it); its exit status. */
static int run_browser(const char *log) {
  char cfg[2048];
  int n = snprintf(cfg, sizeof(cfg),
                   "{\"url\":\"https://127.0.0.1:%d\",\"plain\":\"http://127.0.0.1:%d\",\"spki\":\"%s\","
                   "\"out\":\"%s\",\"apps\":{",
                   W.tls_port, W.lb.port, W.spki, TETHER_BROWSER_OUT);
  for (int i = 0; i < NAPPS; i++)
    n += snprintf(cfg + n, sizeof(cfg) - (size_t)n, "%s\"%s\":{\"pid\":%d,\"port\":%d}", i ? "," : "", W.app[i].name,
                  (int)W.app[i].pid, W.app[i].port);
  snprintf(cfg + n, sizeof(cfg) - (size_t)n, "}}");
  char *argv[] = {"node", TETHER_BROWSER_DIR "/browser.js", cfg, NULL};
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
  fprintf(stderr, "browser.js did not finish in %d s\n", NODE_TIMEOUT_MS / 1000);
  kill(-pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return -1;
}

static void test_demo_in_a_browser(void **state) {
  (void)state;
  char log[600];
  snprintf(log, sizeof(log), "%s/browser.log", TETHER_BROWSER_OUT);
  unlink(log);
  int st = run_browser(log);
  tt_system("cat '%s' >&2", log);
  assert_int_equal(st, 0);
  assert_true(tb_file_contains(log, "PASS:"));

  /* the app the browser stopped has exited, cleanly; the others still run */
  int stopped = -1;
  for (int i = 0; i < NAPPS; i++) {
    char line[64];
    snprintf(line, sizeof(line), "stopped %s pid %d", W.app[i].name, (int)W.app[i].pid);
    if (tb_file_contains(log, line)) stopped = i;
  }
  assert_true(stopped >= 0);
  for (int waited = 0; waited < 5000 && !app_reaped(&W.app[stopped]); waited += 10) tt_sleep_ms(10);
  fprintf(stderr, "%s exited with status %d after SIGTERM\n", W.app[stopped].name, W.app[stopped].status);
  assert_int_equal(W.app[stopped].status, 0);
  assert_false(tb_log_has_sanitizer_report(W.app[stopped].log));
  for (int i = 0; i < NAPPS; i++)
    if (i != stopped) assert_false(app_reaped(&W.app[i]));
}

/* ---- setup ---- */

/* 1 when chromium is missing but Debian has it to install (then the test fails: run scripts/deps). */
static int chromium_installable(void) {
  return tt_system("apt-cache policy chromium 2>/dev/null | grep -q 'Candidate: [0-9]'") == 0;
}

/* A local CA and a certificate it signs for 127.0.0.1 (as scripts/demo makes), and the certificate's SPKI hash. */
static int make_cert(void) {
  int rc = tt_system(
      "cd '%s' && { "
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 "
      "-subj /CN=tether-browser-ca -addext basicConstraints=critical,CA:TRUE && "
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr "
      "-subj /CN=localhost && "
      "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth\\n' > server.ext && "
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -sha256 "
      "-extfile server.ext -out server.pem && "
      "openssl x509 -in server.pem -pubkey -noout | openssl pkey -pubin -outform der | "
      "openssl dgst -sha256 -binary | base64 > spki.txt; } > openssl.log 2>&1",
      W.dir);
  char path[600];
  snprintf(path, sizeof(path), "%s/spki.txt", W.dir);
  FILE *f = rc == 0 ? fopen(path, "r") : NULL;
  if (f == NULL || fgets(W.spki, sizeof(W.spki), f) == NULL || strlen(W.spki) < 44) {
    fprintf(stderr, "openssl could not make the test's certificate; its log:\n");
    tt_system("cat '%s/openssl.log' >&2", W.dir);
    if (f) fclose(f);
    return -1;
  }
  fclose(f);
  W.spki[strcspn(W.spki, "\n")] = '\0';
  return 0;
}

static int setup_world(void) {
  tb_curl_init();
  if (access(TETHER_BROWSER_DIR "/node_modules/puppeteer-core/package.json", R_OK) != 0) {
    fprintf(stderr, "%s/node_modules is missing: run scripts/deps (npm ci in tests/browser)\n", TETHER_BROWSER_DIR);
    return -1;
  }
  if (mkdir(TETHER_BROWSER_OUT, 0755) < 0 && errno != EEXIST) {
    perror(TETHER_BROWSER_OUT);
    return -1;
  }
  W.dir = tt_tmpdir("browser");
  char sessions[600];
  snprintf(sessions, sizeof(sessions), "sqlite:%s/sessions.db", W.dir);
  if (make_cert() < 0) return -1;
  for (int i = 0; i < NAPPS; i++)
    if (app_start(&W.app[i], i, sessions) < 0) return -1;
  /* examples/demo.conf's upstream and scripts/demo's https listen, on this test's ports */
  W.tls_port = tt_free_port();
  if (tb_tether_start(
          &W.lb, 2,
          "listen 127.0.0.1:%d ssl http2;\nssl_certificate %s/server.pem;\nssl_certificate_key %s/server.key;\n"
          "upstream apps {\n"
          "    server 127.0.0.1:%d;\n    server 127.0.0.1:%d;\n    server 127.0.0.1:%d;\n"
          "    health_check uri=/health interval=1s fails=1 passes=2;\n"
          "    keepalive 32;\n}\n"
          "location / { proxy_pass http://apps; }\n",
          W.tls_port, W.dir, W.dir, W.app[0].port, W.app[1].port, W.app[2].port) < 0)
    return -1;
  return tt_wait_port(W.tls_port, 10000) ? 0 : -1;
}

static int teardown_world(void) {
  int bad = 0;
  if (W.lb.pid > 0 && tb_tether_stop(&W.lb, 15000) != 0) bad = 1;
  tb_tether_cleanup(&W.lb);
  for (int i = 0; i < NAPPS; i++)
    if ((W.app[i].pid > 0 || W.app[i].status >= 0) && app_stop(&W.app[i]) != 0) bad = 1;
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
  if (access(CHROMIUM, X_OK) != 0) {
    if (chromium_installable()) {
      fprintf(stderr, "%s is missing but Debian has it: run scripts/deps (it installs chromium)\n", CHROMIUM);
      return 1;
    }
    printf("SKIP: %s is not installed and no chromium package can be installed on this machine\n", CHROMIUM);
    return 0;
  }
  if (tt_system("command -v node >/dev/null 2>&1") != 0) {
    fprintf(stderr, "node is not on PATH: the browser test drives chromium from Node.js (scripts/deps installs it)\n");
    return 1;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_demo_in_a_browser),
  };
  return cmocka_run_group_tests_name("the demo in a real browser", tests, setup, teardown);
}
