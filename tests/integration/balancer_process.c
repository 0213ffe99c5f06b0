/* The balancer as a server process: `pid FILE`, SIGUSR1 reopening the access log after a rotation,
 * `user USER GROUP` dropping root once the ports are bound, `tether -V`, and `--help` agreeing with
 * man tether (docs/man/tether.8.scd). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <signal.h>
#include <unistd.h>

#include "balancer.h"

static tb_backend b1;
static tb_tether T;

static int group_setup(void **state) {
  (void)state;
  tb_curl_init();
  return tb_backend_start(&b1, "b1", 0);
}

static int group_teardown(void **state) {
  (void)state;
  tb_backend_cleanup(&b1);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  tb_tether_cleanup(&T);
  return 0;
}

static long get_root(void) {
  tb_resp r;
  long st = tb_get(NULL, T.port, "/", &r);
  tb_resp_free(&r);
  return st;
}

/* Whether path holds s within timeout_ms (the access log is written in batches, about every second). */
static int eventually_contains(const char *path, const char *s, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 100) {
    if (tb_file_contains(path, s)) return 1;
    usleep(100 * 1000);
  }
  return 0;
}

static void test_pid_file_and_usr1(void **state) {
  (void)state;
  tb_tether_init(&T, 1);
  char pid[600], log[600], rotated[600];
  snprintf(pid, sizeof(pid), "%s/tether.pid", T.dir);
  snprintf(log, sizeof(log), "%s/access.log", T.dir);
  snprintf(rotated, sizeof(rotated), "%s/access.log.1", T.dir);
  tb_tether_write_conf(&T,
                       "pid %s;\naccess_log %s;\nupstream app { server %s; }\nlocation / { proxy_pass http://app; }\n",
                       pid, log, b1.addr);
  assert_int_equal(tb_tether_run(&T), 0);
  /* the pid file follows the ports' opening by a moment (become_server: once the ports are bound) */
  FILE *f = NULL;
  for (int waited = 0; waited < 10000 && (f = fopen(pid, "r")) == NULL; waited += 20) usleep(20 * 1000);
  assert_non_null(f);
  int written = 0;
  assert_int_equal(fscanf(f, "%d", &written), 1);
  fclose(f);
  assert_int_equal(written, (int)T.pid);

  assert_int_equal(get_root(), 200);
  assert_true(eventually_contains(log, "GET / ", 10000));
  assert_int_equal(rename(log, rotated), 0); /* what logrotate does, then its postrotate */
  assert_int_equal(kill(T.pid, SIGUSR1), 0);
  assert_true(eventually_contains(T.log, "logs reopened", 10000));
  assert_int_equal(get_root(), 200);
  assert_true(eventually_contains(log, "GET / ", 10000));
  assert_int_equal(tb_tether_stop(&T, 15000), 0);
  assert_false(tb_log_has_sanitizer_report(T.log));
  assert_int_equal(access(pid, F_OK), -1); /* removed on a graceful stop */
}

/* Root's habit: bind, then become the user. Skipped when the test does not run as root. */
static void test_user_drops_root(void **state) {
  (void)state;
  if (geteuid() != 0) skip();
  tb_tether_init(&T, 2);
  tb_tether_write_conf(&T, "user nobody nogroup;\nupstream app { server %s; }\nlocation / { proxy_pass http://app; }\n",
                       b1.addr);
  assert_int_equal(tb_tether_run(&T), 0);
  char status[64], line[256];
  snprintf(status, sizeof(status), "/proc/%d/status", (int)T.pid);
  int uid = -1, euid = -1, gid = -1;
  /* the ports answer as soon as they are bound; the drop follows a moment later */
  for (int tries = 0; tries < 100 && uid != 65534; tries++) {
    if (tries) tt_sleep_ms(50);
    FILE *f = fopen(status, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
      if (strncmp(line, "Uid:", 4) == 0) sscanf(line + 4, "%d %d", &uid, &euid);
      if (strncmp(line, "Gid:", 4) == 0) sscanf(line + 4, "%d", &gid);
    }
    fclose(f);
  }
  assert_int_equal(uid, 65534);
  assert_int_equal(euid, 65534);
  assert_int_equal(gid, 65534);
  assert_int_equal(get_root(), 200);
  assert_int_equal(tb_tether_stop(&T, 15000), 0);
}

/* A user or group that does not exist is a configuration error: `tether -t` says so. */
static void test_user_unknown_refused(void **state) {
  (void)state;
  tb_tether_init(&T, 1);
  tb_tether_write_conf(
      &T, "user no-such-user-here;\nupstream app { server %s; }\nlocation / { proxy_pass http://app; }\n", b1.addr);
  char out[600];
  snprintf(out, sizeof(out), "%s/t.txt", T.dir);
  const char *args[] = {"-t", "-c", T.conf, NULL};
  assert_int_equal(tb_tether_cmd(out, args), 1);
  assert_true(tb_file_contains(out, "no user \"no-such-user-here\""));
}

static void test_version(void **state) {
  (void)state;
  char *dir = tt_tmpdir("balancer-V");
  char out[600];
  snprintf(out, sizeof(out), "%s/out.txt", dir);
  const char *args[] = {"-V", NULL};
  assert_int_equal(tb_tether_cmd(out, args), 0);
  assert_true(tb_file_contains(out, "tether 0."));
  assert_true(tb_file_contains(out, "OpenSSL: OpenSSL 3"));
  assert_true(tb_file_contains(out, "libuv: 1."));
  tt_system("rm -rf '%s'", dir);
  free(dir);
}

/* Every option --help lists is in the man page's OPTIONS, in scdoc's bold (*-c*, *--config*). */
static void test_help_agrees_with_man(void **state) {
  (void)state;
  char *dir = tt_tmpdir("balancer-help");
  char out[600], line[512];
  snprintf(out, sizeof(out), "%s/out.txt", dir);
  const char *args[] = {"--help", NULL};
  assert_int_equal(tb_tether_cmd(out, args), 0);
  FILE *f = fopen(out, "r");
  assert_non_null(f);
  int options = 0;
  while (fgets(line, sizeof(line), f)) {
    if (strncmp(line, "  -", 3) != 0) continue;
    for (char *tok = strtok(line, " ,\n"); tok; tok = strtok(NULL, " ,\n")) {
      if (tok[0] != '-') break;
      char bold[80];
      snprintf(bold, sizeof(bold), "*%s*", tok);
      if (!tb_file_contains(TETHER_MAN_PAGE, bold)) fail_msg("--help lists %s, man tether does not", tok);
      options++;
    }
  }
  fclose(f);
  assert_true(options >= 5);
  assert_true(tb_file_contains(out, "USR1"));
  assert_true(tb_file_contains(TETHER_MAN_PAGE, "*USR1*"));
  tt_system("rm -rf '%s'", dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_pid_file_and_usr1, teardown),
      cmocka_unit_test_teardown(test_user_drops_root, teardown),
      cmocka_unit_test_teardown(test_user_unknown_refused, teardown),
      cmocka_unit_test(test_version),
      cmocka_unit_test(test_help_agrees_with_man),
  };
  return cmocka_run_group_tests_name("balancer process", tests, group_setup, group_teardown);
}
