/* The admin API's defences and descriptor exhaustion, against real processes on loopback: a bare
 * admin_listen port binds loopback only, off loopback a bearer token is required (and checked), cross-site
 * writes (a foreign Origin, a form content type) and DNS-rebound Host names are refused, idle admin
 * connections close; worker_rlimit_nofile, the soft limit raised by default, and with every descriptor taken
 * by idle clients, clients wait in the backlog (no reset) while the admin API still answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "balancer.h"

#define TOKEN "s3cret-admin-token-0123456789"
#define TOKEN_ENV "TB_ADMIN_TOKEN"

static tb_backend b1;
static tb_tether T; /* the tether of the test running */

static int group_setup(void **state) {
  (void)state;
  tb_curl_init();
  setenv(TOKEN_ENV, TOKEN, 1);
  return tb_backend_start(&b1, "b1", 0);
}

static int group_teardown(void **state) {
  (void)state;
  tb_backend_cleanup(&b1);
  return 0;
}

static int test_teardown(void **state) {
  (void)state;
  tb_tether_cleanup(&T);
  return 0;
}

static void stop_clean(tb_tether *t) {
  assert_int_equal(tb_tether_stop(t, 15000), 0);
  assert_false(tb_log_has_sanitizer_report(t->log));
  tb_tether_cleanup(t);
}

/* Writes t->conf whole (tb_tether_write_conf always writes its own admin_listen line). */
static void write_conf(tb_tether *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void write_conf(tb_tether *t, const char *fmt, ...) {
  FILE *f = fopen(t->conf, "w");
  assert_non_null(f);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(f, fmt, ap);
  va_end(ap);
  fclose(f);
}

/* Whether a TCP connection to ip:port is accepted (127.0.0.2 is local too, but not 127.0.0.1). */
static int reachable(const char *ip, int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, ip, &a.sin_addr);
  int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
  close(fd);
  return ok;
}

/* A request on the admin port with extra headers; the status, the response head into *head when not NULL. */
static long admin_req(const char *method, const char *path, const char *body, const char *const *hdrs, char **head) {
  tb_resp r;
  long st = tb_request(NULL, method, T.admin, path, body, body ? strlen(body) : 0, hdrs, &r);
  if (head) {
    *head = r.head;
    r.head = NULL;
  }
  tb_resp_free(&r);
  return st;
}

/* b1's admin state in /status, as seen with the given headers (the token when one is needed). */
static char *b1_state(const char *const *hdrs) {
  tb_resp r;
  static char state[32];
  state[0] = '\0';
  if (tb_request(NULL, "GET", T.admin, "/status", NULL, 0, hdrs, &r) == 200) {
    json_t *root = json_loads(r.body, 0, NULL);
    json_t *s = json_array_get(json_object_get(json_array_get(json_object_get(root, "upstreams"), 0), "servers"), 0);
    snprintf(state, sizeof(state), "%s", json_string_value(json_object_get(s, "state")));
    json_decref(root);
  }
  tb_resp_free(&r);
  return state;
}

/* ---- where it listens ---- */

/* `admin_listen PORT;` binds 127.0.0.1, while `listen PORT;` still binds every address. */
static void test_bare_port_is_loopback(void **state) {
  (void)state;
  tb_tether_init(&T, 1);
  write_conf(&T, "worker_processes 1;\nlisten %d;\nadmin_listen %d;\nupstream app { server %s; }\n", T.port, T.admin,
             b1.addr);
  assert_int_equal(tb_tether_run(&T), 0);
  assert_true(reachable("127.0.0.1", T.admin));
  assert_false(reachable("127.0.0.2", T.admin));
  assert_true(reachable("127.0.0.2", T.port));
  assert_true(tb_file_waits_for(T.log, "admin API on 127.0.0.1:", 5000));
  assert_string_equal(b1_state(NULL), "up");
  stop_clean(&T);
}

/* Off loopback the configuration needs a token; a missing, empty or short one is refused with file:line,
 * and the token never shows. */
static void test_token_config_checks(void **state) {
  (void)state;
  tb_tether_init(&T, 1);
  char out[600], want[700];
  snprintf(out, sizeof(out), "%s/check.out", T.dir);
  const char *args[] = {"-t", "-c", T.conf, NULL};
  write_conf(&T, "listen 127.0.0.1:%d;\nupstream app { server %s; }\nadmin_listen 0.0.0.0:%d;\n", T.port, b1.addr,
             T.admin);
  assert_int_equal(tb_tether_cmd(out, args), 1);
  snprintf(want, sizeof(want), "%s:3: admin_listen 0.0.0.0:%d is not a loopback address", T.conf, T.admin);
  assert_true(tb_file_contains(out, want));
  write_conf(&T, "listen 127.0.0.1:%d;\nupstream app { server %s; }\nadmin_listen *:%d;\n", T.port, b1.addr, T.admin);
  assert_int_equal(tb_tether_cmd(out, args), 1);

  static const struct {
    const char *value; /* NULL: unset */
    const char *error;
  } cases[] = {{NULL, "TB_ADMIN_TOKEN_CASE is not set"},
               {"", "TB_ADMIN_TOKEN_CASE is empty"},
               {"short-0123456", "TB_ADMIN_TOKEN_CASE is too short"},
               {"has a space 0123456789", "must be printable ASCII without spaces"}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    if (cases[i].value)
      setenv("TB_ADMIN_TOKEN_CASE", cases[i].value, 1);
    else
      unsetenv("TB_ADMIN_TOKEN_CASE");
    write_conf(&T,
               "listen 127.0.0.1:%d;\nadmin_listen 0.0.0.0:%d;\n\nadmin_auth_token env:TB_ADMIN_TOKEN_CASE;\n"
               "upstream app { server %s; }\n",
               T.port, T.admin, b1.addr);
    assert_int_equal(tb_tether_cmd(out, args), 1);
    snprintf(want, sizeof(want), "%s:4: admin_auth_token: ", T.conf);
    assert_true(tb_file_contains(out, want));
    assert_true(tb_file_contains(out, cases[i].error));
    assert_false(tb_file_contains(out, "is not a loopback address")); /* one error, not two */
    if (cases[i].value && cases[i].value[0]) assert_false(tb_file_contains(out, cases[i].value));
  }
  unsetenv("TB_ADMIN_TOKEN_CASE");
  write_conf(&T,
             "listen 127.0.0.1:%d;\nadmin_listen 0.0.0.0:%d;\nadmin_auth_token 'env:" TOKEN_ENV "';\n"
             "upstream app { server %s; }\n",
             T.port, T.admin, b1.addr);
  assert_int_equal(tb_tether_cmd(out, args), 0);
  assert_false(tb_file_contains(out, TOKEN));
}

/* ---- authentication ---- */

static void check_token_required(void) {
  char *head = NULL;
  assert_int_equal(admin_req("GET", "/status", NULL, NULL, &head), 401);
  assert_non_null(strstr(head, "WWW-Authenticate: Bearer"));
  free(head);
  static const char *const wrong[][2] = {{"Authorization: Bearer " TOKEN "x", NULL},
                                         {"Authorization: Bearer s3cret-admin-token-012345678", NULL},
                                         {"Authorization: Bearer ", NULL},
                                         {"Authorization: Basic " TOKEN, NULL},
                                         {"Authorization: " TOKEN, NULL}};
  for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++)
    assert_int_equal(admin_req("GET", "/metrics", NULL, wrong[i], NULL), 401);
  char path[256];
  snprintf(path, sizeof(path), "/upstreams/app/servers/%s/disable", b1.addr);
  static const char *const json[] = {"Content-Type: application/json", NULL};
  assert_int_equal(admin_req("POST", path, "", json, NULL), 401);
  static const char *const good[] = {"Authorization: Bearer " TOKEN, NULL};
  assert_string_equal(b1_state(good), "up");
  static const char *const good_json[] = {"Authorization: bearer " TOKEN, "Content-Type: application/json", NULL};
  assert_int_equal(admin_req("POST", path, "", good_json, NULL), 200);
  assert_string_equal(b1_state(good), "disabled");
  snprintf(path, sizeof(path), "/upstreams/app/servers/%s/enable", b1.addr);
  assert_int_equal(admin_req("POST", path, "", good_json, NULL), 200);
  assert_string_equal(b1_state(good), "up");
}

/* Every address (0.0.0.0) with a token: requests without it, or with another, get 401. */
static void test_token_off_loopback(void **state) {
  (void)state;
  tb_tether_init(&T, 1);
  write_conf(&T,
             "worker_processes 1;\nlisten 127.0.0.1:%d;\nadmin_listen 0.0.0.0:%d;\nadmin_auth_token env:" TOKEN_ENV
             ";\nupstream app { server %s; }\n",
             T.port, T.admin, b1.addr);
  assert_int_equal(tb_tether_run(&T), 0);
  check_token_required();
  /* a token makes any Host acceptable: the name an operator reaches the host by */
  static const char *const named[] = {"Authorization: Bearer " TOKEN, "Host: lb1.internal.example:9901", NULL};
  assert_int_equal(admin_req("GET", "/status", NULL, named, NULL), 200);
  assert_false(tb_file_contains(T.log, TOKEN));
  stop_clean(&T);
}

/* On loopback a configured token is required too. */
static void test_token_on_loopback(void **state) {
  (void)state;
  assert_int_equal(
      tb_tether_start(&T, 1, "admin_auth_token env:" TOKEN_ENV ";\nupstream app { server %s; }\n", b1.addr), 0);
  check_token_required();
  assert_false(tb_file_contains(T.log, TOKEN));
  stop_clean(&T);
}

/* A reload moves the admin API (a bare port: loopback) and adds a token; one that would expose it without
 * a token is refused and the running configuration stays. */
static void test_reload_moves_admin(void **state) {
  (void)state;
  assert_int_equal(tb_tether_start(&T, 1, "upstream app { server %s; }\n", b1.addr), 0);
  int old = T.admin, moved;
  do moved = tt_free_port();
  while (moved == old || moved == T.port);
  write_conf(&T,
             "worker_processes 1;\nlisten 127.0.0.1:%d;\nadmin_listen %d;\nadmin_auth_token env:" TOKEN_ENV
             ";\nupstream app { server %s; }\n",
             T.port, moved, b1.addr);
  kill(T.pid, SIGHUP);
  assert_true(tt_wait_port(moved, 5000));
  T.admin = moved;
  check_token_required();
  assert_false(reachable("127.0.0.1", old));
  assert_false(reachable("127.0.0.2", moved));
  write_conf(&T, "worker_processes 1;\nlisten 127.0.0.1:%d;\nadmin_listen 0.0.0.0:%d;\nupstream app { server %s; }\n",
             T.port, old, b1.addr);
  kill(T.pid, SIGHUP);
  for (int i = 0; i < 100 && !tb_file_contains(T.log, "reload refused"); i++) tt_sleep_ms(50);
  assert_true(tb_file_contains(T.log, "is not a loopback address"));
  assert_false(reachable("127.0.0.1", old));
  static const char *const good[] = {"Authorization: Bearer " TOKEN, NULL};
  assert_string_equal(b1_state(good), "up");
  assert_false(tb_file_contains(T.log, TOKEN));
  stop_clean(&T);
}

/* ---- cross-site requests and DNS rebinding ---- */

static void test_cross_site_writes(void **state) {
  (void)state;
  assert_int_equal(tb_tether_start(&T, 1, "upstream app { server %s; }\n", b1.addr), 0);
  char path[256], origin[128];
  snprintf(path, sizeof(path), "/upstreams/app/servers/%s/disable", b1.addr);
  /* what a plain HTML form on another site sends */
  static const char *const form[] = {"Origin: http://evil.example", "Content-Type: text/plain", NULL};
  assert_int_equal(admin_req("POST", path, "x", form, NULL), 403);
  static const char *const foreign[][3] = {{"Origin: http://evil.example", "Content-Type: application/json", NULL},
                                           {"Origin: null", "Content-Type: application/json", NULL},
                                           {"Origin: http://127.0.0.1", "Content-Type: application/json", NULL}};
  for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++)
    assert_int_equal(admin_req("POST", path, "", foreign[i], NULL), 403);
  static const char *const forms[][2] = {{"Content-Type: text/plain", NULL},
                                         {"Content-Type: Text/Plain; charset=utf-8", NULL},
                                         {"Content-Type: application/x-www-form-urlencoded", NULL},
                                         {"Content-Type: multipart/form-data; boundary=x", NULL}};
  for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++)
    assert_int_equal(admin_req("POST", path, "", forms[i], NULL), 415);
  char weight[256];
  snprintf(weight, sizeof(weight), "/upstreams/app/servers/%s/weight", b1.addr);
  assert_int_equal(admin_req("PUT", weight, "7", form, NULL), 403);
  assert_int_equal(admin_req("PUT", weight, "7", forms[0], NULL), 415);
  /* DNS rebinding: the attacker's name resolves to us; same-origin, so Origin matches Host */
  static const char *const rebound[] = {"Host: rebind.evil.example:8081", "Origin: http://rebind.evil.example:8081",
                                        "Content-Type: application/json", NULL};
  assert_int_equal(admin_req("POST", path, "", rebound, NULL), 403);
  static const char *const rebound_read[] = {"Host: rebind.evil.example", NULL};
  assert_int_equal(admin_req("GET", "/status", NULL, rebound_read, NULL), 403);
  assert_int_equal(admin_req("GET", "/metrics", NULL, rebound_read, NULL), 403);
  assert_string_equal(b1_state(NULL), "up");
  /* IP literals and localhost are fine, and so is our own origin */
  static const char *const local_hosts[][2] = {
      {"Host: localhost", NULL}, {"Host: [::1]:1234", NULL}, {"Host: 127.0.0.1", NULL}};
  for (size_t i = 0; i < sizeof(local_hosts) / sizeof(local_hosts[0]); i++)
    assert_int_equal(admin_req("GET", "/status", NULL, local_hosts[i], NULL), 200);
  snprintf(origin, sizeof(origin), "Origin: http://127.0.0.1:%d", T.admin);
  const char *const own[] = {origin, "Content-Type: application/json", NULL};
  assert_int_equal(admin_req("POST", path, "", own, NULL), 200);
  assert_string_equal(b1_state(NULL), "disabled");
  assert_int_equal(tb_admin_send(&T, "PUT", weight, "3", NULL), 200);
  static const char *const no_type[] = {"Content-Type:", NULL}; /* curl -X POST: no body, no type */
  snprintf(path, sizeof(path), "/upstreams/app/servers/%s/enable", b1.addr);
  assert_int_equal(admin_req("POST", path, "", no_type, NULL), 200);
  assert_string_equal(b1_state(NULL), "up");
  stop_clean(&T);
}

/* ---- idle admin connections ---- */

static void test_idle_admin_closes(void **state) {
  (void)state;
  assert_int_equal(tb_tether_start(&T, 1, "upstream app { server %s; }\n", b1.addr), 0);
  tb_conn silent, partial;
  assert_int_equal(tb_conn_open(&silent, T.admin, 20000), 0);
  assert_int_equal(tb_conn_open(&partial, T.admin, 20000), 0);
  assert_int_equal(tb_send_str(partial.fd, "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n"), 0);
  long long t0 = tb_now_ms();
  assert_false(tb_conn_closed_within(&silent, 7000));
  assert_true(tb_conn_closed_within(&silent, 6000));
  assert_true(tb_conn_closed_within(&partial, 1000));
  long long took = tb_now_ms() - t0;
  assert_true(took >= 9000 && took < 13000);
  tb_conn_close(&silent);
  tb_conn_close(&partial);
  assert_string_equal(b1_state(NULL), "up");
  stop_clean(&T);
}

/* ---- descriptor limits ---- */

/* Without worker_rlimit_nofile the soft limit goes up to the hard one (here lowered first for the child). */
static void test_nofile_default(void **state) {
  (void)state;
  struct rlimit saved, low;
  assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
  low = saved;
  low.rlim_cur = saved.rlim_max < 512 ? saved.rlim_max : 512;
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
  int rc = tb_tether_start(&T, 1, "upstream app { server %s; }\n", b1.addr);
  setrlimit(RLIMIT_NOFILE, &saved);
  assert_int_equal(rc, 0);
  char path[64], line[256], want[128];
  unsigned long long soft = 0;
  snprintf(path, sizeof(path), "/proc/%d/limits", (int)T.pid);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  while (fgets(line, sizeof(line), f))
    if (strncmp(line, "Max open files", 14) == 0) soft = strtoull(line + 14, NULL, 10);
  fclose(f);
  assert_int_equal(soft, (unsigned long long)saved.rlim_max);
  snprintf(want, sizeof(want), "file descriptor limit: %llu (hard %llu)", (unsigned long long)saved.rlim_max,
           (unsigned long long)saved.rlim_max);
  assert_true(tb_file_contains(T.log, want));
  stop_clean(&T);
}

#define NIDLE 100

/* Whether a connection is still quiet: no reset, no EOF, nothing to read. */
static int quiet(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  if (poll(&p, 1, 0) == 0) return 1;
  char c;
  ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static int get_ok(tb_conn *c) {
  tb_raw r;
  if (tb_send_str(c->fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n") < 0 || tb_conn_read_response(c, 0, &r) < 0) return 0;
  int ok = r.status == 200;
  tb_raw_free(&r);
  return ok;
}

/* 64 descriptors and 100 idle clients: the ones tether cannot accept wait in the backlog (no reset), the
 * admin API answers all along, and once the idle ones leave, the waiting ones and new ones are served. */
static void test_descriptors_exhausted(void **state) {
  (void)state;
  assert_int_equal(tb_tether_start(&T, 1, "worker_rlimit_nofile 64;\nupstream app { server %s; }\n", b1.addr), 0);
  assert_true(tb_file_contains(T.log, "file descriptor limit: 64 "));
  tb_resp r;
  assert_int_equal(tb_get(NULL, T.port, "/", &r), 200);
  tb_resp_free(&r);
  static tb_conn idle[NIDLE];
  for (int i = 0; i < NIDLE; i++) assert_int_equal(tb_conn_open(&idle[i], T.port, 5000), 0);
  tt_sleep_ms(500);
  for (int k = 0; k < 3; k++) { /* the reserve descriptor is spent and taken back each time */
    json_t *root = NULL;
    assert_int_equal(tb_get(NULL, T.admin, "/status", &r), 200);
    root = json_loads(r.body, 0, NULL);
    json_int_t active = json_integer_value(json_object_get(root, "active_connections"));
    assert_true(active > 0 && active < NIDLE); /* tether did run out */
    json_decref(root);
    tb_resp_free(&r);
  }
  for (int i = 0; i < NIDLE; i++) {
    if (!quiet(idle[i].fd)) fail_msg("client %d was reset or closed", i);
  }
  assert_true(tb_file_contains(T.log, "paused, new clients wait in the backlog"));
  /* the first ones were accepted; once they leave, the ones that waited are accepted and served */
  for (int i = 0; i < 60; i++) tb_conn_close(&idle[i]);
  for (int i = 60; i < NIDLE; i++)
    if (!get_ok(&idle[i])) fail_msg("client %d, which waited, got no answer", i);
  for (int i = 60; i < NIDLE; i++) tb_conn_close(&idle[i]);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(tb_get(NULL, T.port, "/", &r), 200);
    tb_resp_free(&r);
  }
  stop_clean(&T);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_bare_port_is_loopback, test_teardown),
      cmocka_unit_test_teardown(test_token_config_checks, test_teardown),
      cmocka_unit_test_teardown(test_token_off_loopback, test_teardown),
      cmocka_unit_test_teardown(test_token_on_loopback, test_teardown),
      cmocka_unit_test_teardown(test_reload_moves_admin, test_teardown),
      cmocka_unit_test_teardown(test_cross_site_writes, test_teardown),
      cmocka_unit_test_teardown(test_idle_admin_closes, test_teardown),
      cmocka_unit_test_teardown(test_nofile_default, test_teardown),
      cmocka_unit_test_teardown(test_descriptors_exhausted, test_teardown),
  };
  return cmocka_run_group_tests_name("balancer admin API and descriptors", tests, group_setup, group_teardown);
}
