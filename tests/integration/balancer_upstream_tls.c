/* TLS from the balancer to its servers, against real peers on loopback: a single-process nginx serving TLS on
 * three ports (a certificate of the test's CA with an intermediate; a self-signed one; one that requires a client
 * certificate) and plain HTTP on a fourth, in front of the scripted backend, with certificates made by the test with
 * `openssl`. nginx hands what it saw of the TLS connection to the backend in headers ($ssl_server_name,
 * $connection/$connection_requests, $ssl_session_reused, $ssl_client_verify), and /headers echoes them back.
 *
 * Verification passes with the right CA and name and fails (502, the reason in the error log) with a wrong CA, a
 * wrong name or too short a depth; a failed server is skipped for the next; verify off takes a self-signed
 * certificate; SNI is sent only with proxy_ssl_server_name on; mutual TLS; kept-alive TLS connections are reused
 * and sessions resumed, but not across a reload that changes the settings; WebSocket passes; health checks speak
 * TLS, and follow a reload that changes the scheme;
 * refused combinations name file:line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "balancer.h"

static tb_backend b1;
static char pki[512]; /* certificates, and nginx's directory */
static pid_t nginx_pid;
static int p_ok, p_self, p_mtls; /* nginx's TLS ports */
static int p_plain;              /* and its plain one */

static int make_pki(void) {
  return tt_system(
      "cd '%s' && set -e; exec >/dev/null 2>&1\n"
      "ec='-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes'\n"
      "openssl req -x509 $ec -keyout ca.key -out ca.pem -days 2 -subj /CN=tether-up-root\n"
      "openssl req -x509 $ec -keyout ca2.key -out ca2.pem -days 2 -subj /CN=tether-up-other-root\n"
      "openssl req $ec -keyout int.key -out int.csr -subj /CN=tether-up-intermediate\n"
      "printf 'basicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign,cRLSign\\n' > int.ext\n"
      "openssl x509 -req -in int.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out int.pem -days 2 -extfile int.ext\n"
      "openssl req $ec -keyout srv.key -out srv.csr -subj /CN=tether-up-server\n"
      "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > srv.ext\n"
      "openssl x509 -req -in srv.csr -CA int.pem -CAkey int.key -CAcreateserial -out srv.crt -days 2 -extfile srv.ext\n"
      "cat srv.crt int.pem > srv.pem\n"
      "openssl req -x509 $ec -keyout self.key -out self.pem -days 2 -subj /CN=self.test "
      "  -addext subjectAltName=DNS:self.test\n"
      "openssl req $ec -keyout client.key -out client.csr -subj /CN=tether-client\n"
      "printf 'extendedKeyUsage=clientAuth\\n' > client.ext\n"
      "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 "
      "  -extfile client.ext\n"
      "openssl pkey -in client.key -aes256 -passout pass:secret -out locked.key\n",
      pki);
}

static int start_nginx(void) {
  char conf[600], log[600];
  snprintf(conf, sizeof(conf), "%s/nginx.conf", pki);
  snprintf(log, sizeof(log), "%s/nginx.out", pki);
  FILE *f = fopen(conf, "w");
  if (f == NULL) return -1;
  const char *d = pki;
  fprintf(f,
          "daemon off; master_process off; worker_processes 1; error_log %s/error.log info; pid %s/nginx.pid;\n"
          "events { worker_connections 256; }\n"
          "http {\n"
          "  log_format tls '$server_port $ssl_protocol $http_user_agent $request_uri';\n"
          "  access_log %s/access.log tls;\n"
          "  client_body_temp_path %s; proxy_temp_path %s; fastcgi_temp_path %s; uwsgi_temp_path %s;\n"
          "  scgi_temp_path %s;\n"
          "  map $http_upgrade $conn_up { default upgrade; '' ''; }\n"
          "  proxy_http_version 1.1;\n"
          "  proxy_set_header Upgrade $http_upgrade;\n"
          "  proxy_set_header Connection $conn_up;\n"
          "  proxy_set_header X-SNI $ssl_server_name;\n"
          "  proxy_set_header X-TLS-Conn \"$connection/$connection_requests\";\n"
          "  proxy_set_header X-Reused $ssl_session_reused;\n"
          "  proxy_set_header X-Client \"$ssl_client_verify $ssl_client_s_dn\";\n"
          "  ssl_protocols TLSv1.2 TLSv1.3;\n"
          "  server { listen 127.0.0.1:%d ssl; ssl_certificate %s/srv.pem; ssl_certificate_key %s/srv.key;\n"
          "    location / { proxy_pass http://%s; } }\n"
          "  server { listen 127.0.0.1:%d ssl; ssl_certificate %s/self.pem; ssl_certificate_key %s/self.key;\n"
          "    ssl_protocols TLSv1.2;\n"
          "    location / { proxy_pass http://%s; } }\n"
          "  server { listen 127.0.0.1:%d ssl; ssl_certificate %s/srv.pem; ssl_certificate_key %s/srv.key;\n"
          "    ssl_verify_client on; ssl_client_certificate %s/ca.pem;\n"
          "    location / { proxy_pass http://%s; } }\n"
          "  server { listen 127.0.0.1:%d; location / { proxy_pass http://%s; } }\n"
          "}\n",
          d, d, d, d, d, d, d, d, p_ok, d, d, b1.addr, p_self, d, d, b1.addr, p_mtls, d, d, d, b1.addr, p_plain,
          b1.addr);
  fclose(f);
  char *argv[] = {"nginx", "-p", pki, "-c", conf, NULL};
  nginx_pid = tt_spawn(argv, log, NULL);
  if (nginx_pid <= 0 || !tt_wait_port(p_ok, 10000) || !tt_wait_port(p_self, 10000) || !tt_wait_port(p_mtls, 10000) ||
      !tt_wait_port(p_plain, 10000)) {
    fprintf(stderr, "nginx did not start\n");
    tt_system("cat '%s' '%s/error.log' >&2", log, pki);
    return -1;
  }
  return 0;
}

static int setup(void **state) {
  (void)state;
  tb_curl_init();
  char *dir = tt_tmpdir("upstream-tls");
  snprintf(pki, sizeof(pki), "%s", dir);
  free(dir);
  if (make_pki() != 0) return -1;
  if (tb_backend_start(&b1, "b1", 0) < 0) return -1;
  p_ok = tt_free_port();
  do p_self = tt_free_port();
  while (p_self == p_ok);
  do p_mtls = tt_free_port();
  while (p_mtls == p_ok || p_mtls == p_self);
  do p_plain = tt_free_port();
  while (p_plain == p_ok || p_plain == p_self || p_plain == p_mtls);
  return start_nginx();
}

static int teardown(void **state) {
  (void)state;
  if (nginx_pid > 0) tt_kill(nginx_pid, SIGTERM);
  tb_backend_cleanup(&b1);
  if (getenv("TB_KEEP") == NULL) tt_rmrf(pki);
  return 0;
}

/* Starts tether on the configuration (after the listen lines). */
static void start(tb_tether *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void start(tb_tether *t, const char *fmt, ...) {
  char conf[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(conf, sizeof(conf), fmt, ap);
  va_end(ap);
  assert_int_equal(tb_tether_start(t, 1, "%s", conf), 0);
}

static void stop(tb_tether *t) {
  int st = tb_tether_stop(t, 10000);
  int san = tb_log_has_sanitizer_report(t->log);
  tb_tether_cleanup(t);
  assert_int_equal(st, 0);
  assert_false(san);
}

/* A GET through tether; the status, the body into r (freed by the caller). */
static long get(tb_tether *t, const char *path, tb_resp *r) { return tb_get(NULL, t->port, path, r); }

static void expect_log(tb_tether *t, const char *s) {
  if (!tb_file_contains(t->log, s)) {
    fprintf(stderr, "the log lacks \"%s\":\n", s);
    tt_system("tail -n 20 '%s' >&2", t->log);
  }
  assert_true(tb_file_contains(t->log, s));
}

/* Verification with the test's CA: the default name is the upstream's ($proxy_host); settings given outside the
 * location are inherited; SNI goes only with proxy_ssl_server_name on. */
static void test_verify_with_trusted_ca(void **state) {
  (void)state;
  tb_tether t;
  start(&t,
        "proxy_ssl_verify on;\nproxy_ssl_trusted_certificate %s/ca.pem;\n"
        "upstream localhost { server 127.0.0.1:%d; }\n"
        "upstream other { server 127.0.0.1:%d; }\n"
        "location / { proxy_pass https://localhost; proxy_ssl_server_name on; }\n"
        "location /headers/nosni { proxy_pass https://other; proxy_ssl_name localhost; }\n",
        pki, p_ok, p_ok);
  tb_resp r;
  assert_int_equal(get(&t, "/headers", &r), 200);
  if (strstr(r.body, "X-SNI: localhost") == NULL) fprintf(stderr, "%s", r.body);
  assert_non_null(strstr(r.body, "X-SNI: localhost\n"));
  tb_resp_free(&r);
  assert_int_equal(get(&t, "/headers/nosni", &r), 200);
  assert_null(strstr(r.body, "X-SNI")); /* nginx sends no header for an empty $ssl_server_name */
  assert_non_null(strstr(r.body, "X-TLS-Conn: "));
  tb_resp_free(&r);
  stop(&t);
}

/* A wrong CA, a wrong name, a chain deeper than proxy_ssl_verify_depth: 502, and the error log names the server
 * and OpenSSL's reason. A server that fails verification is skipped for the next one, and counted. */
static void test_verify_failures(void **state) {
  (void)state;
  tb_tether t;
  start(&t,
        "proxy_ssl_verify on;\nproxy_ssl_trusted_certificate %s/ca.pem;\nproxy_ssl_name localhost;\n"
        "upstream wrongca { server 127.0.0.1:%d; }\n"
        "upstream wrongname { server 127.0.0.1:%d; }\n"
        "upstream depth { server 127.0.0.1:%d; }\n"
        "upstream mixed { server 127.0.0.1:%d; server 127.0.0.1:%d; }\n"
        "location /headers/ca { proxy_pass https://wrongca; proxy_ssl_trusted_certificate %s/ca2.pem; }\n"
        "location /headers/name { proxy_pass https://wrongname; proxy_ssl_name wrong.test; }\n"
        "location /headers/depth { proxy_pass https://depth; proxy_ssl_verify_depth 0; }\n"
        "location / { proxy_pass https://mixed; }\n",
        pki, p_ok, p_ok, p_ok, p_self, p_ok, pki);
  tb_resp r;
  char line[256];
  assert_int_equal(get(&t, "/headers/ca", &r), 502);
  tb_resp_free(&r);
  snprintf(line, sizeof(line),
           "upstream wrongca: TLS handshake with 127.0.0.1:%d failed: certificate verify failed: ", p_ok);
  expect_log(&t, line);
  expect_log(&t, "unable to get local issuer certificate");
  assert_int_equal(get(&t, "/headers/name", &r), 502);
  tb_resp_free(&r);
  expect_log(&t, "upstream wrongname: TLS handshake with");
  expect_log(&t, "hostname mismatch");
  assert_int_equal(get(&t, "/headers/depth", &r), 502);
  tb_resp_free(&r);
  expect_log(&t, "certificate chain too long");
  /* the self-signed server fails verification: the request goes to the next one, every time */
  for (int i = 0; i < 4; i++) {
    assert_int_equal(get(&t, "/headers", &r), 200);
    tb_resp_free(&r);
  }
  snprintf(line, sizeof(line), "upstream mixed: TLS handshake with 127.0.0.1:%d failed: certificate verify failed",
           p_self);
  expect_log(&t, line);
  char *m = tb_admin_get(&t, "/metrics");
  snprintf(line, sizeof(line), "tether_upstream_connect_errors_total{upstream=\"mixed\",server=\"127.0.0.1:%d\"}",
           p_self);
  assert_true(tb_metric(m, line) >= 1);
  free(m);
  stop(&t);
}

/* Verification off takes a self-signed certificate; sessions are resumed (TLS 1.2 with the self-signed server,
 * TLS 1.3 with the other) unless proxy_ssl_session_reuse off. */
static void test_verify_off_and_sessions(void **state) {
  (void)state;
  tb_tether t;
  start(&t,
        "upstream self { server 127.0.0.1:%d; keepalive 0; }\n"
        "upstream t13 { server 127.0.0.1:%d; keepalive 0; }\n"
        "upstream fresh { server 127.0.0.1:%d; keepalive 0; }\n"
        "location / { proxy_pass https://self; }\n"
        "location /headers/t13 { proxy_pass https://t13; proxy_ssl_protocols TLSv1.3; }\n"
        "location /headers/fresh { proxy_pass https://fresh; proxy_ssl_session_reuse off; }\n",
        p_self, p_ok, p_self);
  tb_resp r;
  const char *paths[] = {"/headers", "/headers/t13", "/headers/fresh"};
  for (int p = 0; p < 3; p++) {
    for (int i = 0; i < 3; i++) { /* keepalive 0: a connection per request */
      assert_int_equal(get(&t, paths[p], &r), 200);
      const char *want = i == 0 || p == 2 ? "X-Reused: .\n" : "X-Reused: r\n";
      if (strstr(r.body, want) == NULL) fprintf(stderr, "%s #%d wants %s%s", paths[p], i, want, r.body);
      assert_non_null(strstr(r.body, want));
      tb_resp_free(&r);
    }
  }
  stop(&t);
}

/* A server that requires a client certificate: it sees the configured one; without one, nginx refuses. */
static void test_mutual_tls(void **state) {
  (void)state;
  tb_tether t;
  start(&t,
        "proxy_ssl_verify on;\nproxy_ssl_trusted_certificate %s/ca.pem;\nproxy_ssl_name localhost;\n"
        "upstream mtls { server 127.0.0.1:%d; }\n"
        "upstream nocert { server 127.0.0.1:%d; }\n"
        "location / { proxy_pass https://mtls; proxy_ssl_certificate %s/client.pem; "
        "proxy_ssl_certificate_key %s/client.key; }\n"
        "location /headers/nocert { proxy_pass https://nocert; }\n",
        pki, p_mtls, p_mtls, pki, pki);
  tb_resp r;
  assert_int_equal(get(&t, "/headers", &r), 200);
  if (strstr(r.body, "X-Client: SUCCESS CN=tether-client") == NULL) fprintf(stderr, "%s", r.body);
  assert_non_null(strstr(r.body, "X-Client: SUCCESS CN=tether-client\n"));
  tb_resp_free(&r);
  assert_int_equal(get(&t, "/headers/nocert", &r), 400);
  assert_non_null(strstr(r.body, "No required SSL certificate was sent"));
  tb_resp_free(&r);
  stop(&t);
}

/* keepalive: several requests, one TLS connection at the server (nginx's $connection stays, its request count
 * grows). */
static void test_keepalive_reuse(void **state) {
  (void)state;
  tb_tether t;
  start(&t,
        "upstream ka { server 127.0.0.1:%d; keepalive 4; }\n"
        "location / { proxy_pass https://ka; proxy_ssl_verify on; proxy_ssl_trusted_certificate %s/ca.pem; "
        "proxy_ssl_name localhost; }\n",
        p_ok, pki);
  tb_resp r;
  long conn = -1;
  for (int i = 1; i <= 5; i++) {
    assert_int_equal(get(&t, "/headers", &r), 200);
    const char *h = strstr(r.body, "X-TLS-Conn: ");
    assert_non_null(h);
    long c = 0, n = 0;
    assert_int_equal(sscanf(h + 12, "%ld/%ld", &c, &n), 2);
    if (conn < 0) conn = c;
    assert_int_equal(c, conn);
    assert_int_equal(n, i);
    tb_resp_free(&r);
  }
  stop(&t);
}

/* The nginx connection number and request count of a response through tether, or -1. */
static long tls_conn(tb_tether *t, long *requests) {
  tb_resp r;
  long c = -1;
  if (get(t, "/headers", &r) == 200) {
    const char *h = strstr(r.body, "X-TLS-Conn: ");
    if (h == NULL || sscanf(h + 12, "%ld/%ld", &c, requests) != 2) c = -1;
  }
  tb_resp_free(&r);
  return c;
}

static int reloaded(tb_tether *t, int generation) {
  char want[64];
  snprintf(want, sizeof(want), "configuration generation %d in service", generation);
  for (int i = 0; i < 50 && !tb_file_contains(t->log, want); i++) tt_sleep_ms(100);
  return tb_file_contains(t->log, want);
}

/* A reload builds new client contexts: pooled connections made with the old one are not reused (a connection
 * verified for the old proxy_ssl_name must not serve the new one), and the new settings apply at once. */
static void test_reload_rebuilds_context(void **state) {
  (void)state;
  tb_tether t;
  const char *conf = "upstream ka { server 127.0.0.1:%d; keepalive 4; }\n"
                     "location / { proxy_pass https://ka; proxy_ssl_verify on; "
                     "proxy_ssl_trusted_certificate %s/ca.pem; proxy_ssl_name %s; }\n";
  start(&t, conf, p_ok, pki, "localhost");
  long n1 = 0, n2 = 0, n3 = 0;
  long c1 = tls_conn(&t, &n1), c2 = tls_conn(&t, &n2);
  assert_true(c1 >= 0);
  assert_int_equal(c2, c1); /* kept alive */
  assert_int_equal(n2, n1 + 1);
  tb_tether_write_conf(&t, conf, p_ok, pki, "127.0.0.1"); /* an IP address: checked against the IP SAN */
  kill(t.pid, SIGHUP);
  assert_true(reloaded(&t, 2));
  long c3 = tls_conn(&t, &n3);
  assert_true(c3 >= 0);
  assert_true(c3 != c1); /* a new connection, with the new context */
  assert_int_equal(n3, 1);
  tb_tether_write_conf(&t, conf, p_ok, pki, "wrong.test");
  kill(t.pid, SIGHUP);
  assert_true(reloaded(&t, 3));
  tb_resp r;
  assert_int_equal(get(&t, "/headers", &r), 502);
  tb_resp_free(&r);
  expect_log(&t, "hostname mismatch");
  stop(&t);
}

/* A WebSocket upgrade through to an https server: the tunnel runs over the same TLS transport. */
static void test_websocket(void **state) {
  (void)state;
  tb_tether t;
  start(&t,
        "upstream ws { server 127.0.0.1:%d; }\n"
        "location / { proxy_pass https://ws; proxy_set_header Upgrade $http_upgrade; "
        "proxy_set_header Connection $connection_upgrade; }\n",
        p_ok);
  tb_conn c;
  assert_int_equal(tb_conn_open(&c, t.port, 5000), 0);
  assert_int_equal(
      tb_send_str(c.fd, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"), 0);
  tb_raw r;
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_int_equal(r.status, 101);
  tb_raw_free(&r);
  const char *msg = "hello over two TLS hops";
  assert_int_equal(tb_send_str(c.fd, msg), 0);
  char buf[64] = {0};
  size_t got = c.len; /* bytes that came with the head */
  if (got > sizeof(buf) - 1) got = sizeof(buf) - 1;
  memcpy(buf, c.buf, got);
  while (got < strlen(msg)) {
    ssize_t n = recv(c.fd, buf + got, sizeof(buf) - 1 - got, 0);
    if (n <= 0) break;
    got += (size_t)n;
  }
  assert_string_equal(buf, msg);
  tb_conn_close(&c);
  stop(&t);
}

static double server_up(tb_tether *t, const char *upstream, int port) {
  char *m = tb_admin_get(t, "/metrics"), key[256];
  snprintf(key, sizeof(key), "tether_server_up{upstream=\"%s\",server=\"127.0.0.1:%d\"}", upstream, port);
  double v = tb_metric(m, key);
  free(m);
  return v;
}

/* Waits up to 5 s for both servers' states. */
static int wait_states(tb_tether *t, int tls_up, int plain_up) {
  for (int i = 0; i < 50; i++) {
    if (server_up(t, "hc", p_ok) == tls_up && server_up(t, "hc", p_plain) == plain_up) return 1;
    tt_sleep_ms(100);
  }
  fprintf(stderr, "health: %g %g\n", server_up(t, "hc", p_ok), server_up(t, "hc", p_plain));
  return 0;
}

/* Health checks use the upstream's scheme: with https the TLS server is up and the plain one down; a reload to
 * http turns both around. */
static void test_health_checks(void **state) {
  (void)state;
  tb_tether t;
  const char *conf = "upstream hc { server 127.0.0.1:%d; server 127.0.0.1:%d;\n"
                     "  health_check uri=/health interval=200ms fails=1 passes=1; }\n"
                     "location / { proxy_pass %s://hc; }\n";
  start(&t, conf, p_ok, p_plain, "https");
  assert_true(wait_states(&t, 1, 0));
  char line[256];
  snprintf(line, sizeof(line), "server 127.0.0.1:%d is down (health check: TLS handshake failed: ", p_plain);
  expect_log(&t, line);
  char access[600], seen[64];
  snprintf(access, sizeof(access), "%s/access.log", pki);
  snprintf(seen, sizeof(seen), "%d TLSv1.3 tether-health /health", p_ok);           /* TLS, not plain HTTP */
  for (int i = 0; i < 50 && !tb_file_contains(access, seen); i++) tt_sleep_ms(100); /* nginx logs when done */
  assert_true(tb_file_contains(access, seen));
  tb_tether_write_conf(&t, conf, p_ok, p_plain, "http");
  kill(t.pid, SIGHUP);
  assert_true(wait_states(&t, 0, 1)); /* nginx answers plain HTTP on its TLS port with a 400 */
  stop(&t);
}

/* Refused combinations, each with file:line and a reason. */
static void test_refused(void **state) {
  (void)state;
  char conf[600], out[600];
  snprintf(conf, sizeof(conf), "%s/refused.conf", pki);
  snprintf(out, sizeof(out), "%s/refused.out", pki);
  FILE *f = fopen(conf, "w");
  fprintf(f, "listen 127.0.0.1:1;\n"                                                       /* 1 */
             "upstream app { server 127.0.0.1:2; }\n"                                      /* 2 */
             "upstream two { server 127.0.0.1:3; }\n"                                      /* 3 */
             "upstream three { server 127.0.0.1:4; }\n"                                    /* 4 */
             "location /a { proxy_pass https://app; }\n"                                   /* 5 */
             "location /b { proxy_pass http://app; }\n"                                    /* 6 */
             "location /c { proxy_pass https://two; }\n"                                   /* 7 */
             "location /d { proxy_pass https://two; proxy_ssl_name other; }\n"             /* 8 */
             "location /e { proxy_pass https://three; proxy_ssl_verify on; }\n"            /* 9 */
             "proxy_ssl_protocols TLSv1.1 TLSv1.2;\n"                                      /* 10 */
             "proxy_ssl_name $host;\n"                                                     /* 11 */
             "proxy_ssl_password_file /etc/keys.pass;\n"                                   /* 12 */
             "location /f { proxy_pass https://app; proxy_ssl_certificate /x/c.pem; }\n"); /* 13 */
  fclose(f);
  const char *args[] = {"-t", "-c", conf, NULL};
  assert_int_equal(tb_tether_cmd(out, args), 1);
  const struct {
    int line;
    const char *what;
  } want[] = {{6, "speaks one scheme"},
              {8, "other proxy_ssl_* settings"},
              {9, "no proxy_ssl_trusted_certificate for proxy_ssl_verify"},
              {10, "proxy_ssl_protocols TLSv1.1: refused"},
              {11, "variables are not supported"},
              {12, "unencrypted keys only"},
              {13, "no \"proxy_ssl_certificate_key\""}};
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
    char where[800];
    snprintf(where, sizeof(where), "%s:%d: ", conf, want[i].line);
    /* the reason on the line that names the place */
    int ok = tt_system("grep -F '%s' '%s' | grep -qF '%s'", where, out, want[i].what) == 0;
    if (!ok) {
      fprintf(stderr, "no \"%s\" at line %d:\n", want[i].what, want[i].line);
      tt_system("cat '%s' >&2", out);
    }
    assert_true(ok);
  }
  /* a client key with a passphrase, when the configuration is loaded */
  f = fopen(conf, "w");
  fprintf(f,
          "listen 127.0.0.1:1;\nupstream app { server 127.0.0.1:2; }\n"
          "location / { proxy_pass https://app;\n"
          "  proxy_ssl_certificate %s/client.pem;\n"
          "  proxy_ssl_certificate_key %s/locked.key; }\n",
          pki, pki);
  fclose(f);
  assert_int_equal(tb_tether_cmd(out, args), 1);
  assert_true(tb_file_contains(out, "refused.conf:4: proxy_ssl_certificate_key"));
  assert_true(tb_file_contains(out, "passphrase"));
  assert_false(tb_file_contains(out, "secret"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_verify_with_trusted_ca),
      cmocka_unit_test(test_verify_failures),
      cmocka_unit_test(test_verify_off_and_sessions),
      cmocka_unit_test(test_mutual_tls),
      cmocka_unit_test(test_keepalive_reuse),
      cmocka_unit_test(test_reload_rebuilds_context),
      cmocka_unit_test(test_websocket),
      cmocka_unit_test(test_health_checks),
      cmocka_unit_test(test_refused),
  };
  return cmocka_run_group_tests_name("balancer upstream TLS", tests, setup, teardown);
}
