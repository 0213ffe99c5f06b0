/* Virtual servers against a real tether: several server blocks on shared plain and TLS addresses, with
 * certificates made by the test with `openssl` (one per server: a.example, b.example and a default one).
 * Plain HTTP picks the server by Host (exact, wildcards, the default for an unknown or missing Host); TLS picks
 * it by SNI, checked with `openssl s_client -servername` (the certificate served) and libcurl verifying the
 * name; a Host that selects another server than the SNI did is a 421; include brings in a server and a glob of
 * locations, and a reload re-reads them; configuration mistakes are refused with file:line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "balancer.h"

static tb_backend b1;
static tb_tether T;
static char pki[400]; /* certificates and the included files */
static int tls_port;

static int make_pki(void) {
  char *dir = tt_tmpdir("vhost-pki");
  snprintf(pki, sizeof(pki), "%s", dir);
  free(dir);
  return tt_system(
      "cd '%s' && set -e; exec >/dev/null 2>&1\n"
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 "
      "  -subj /CN=tether-vhost-root\n"
      "leaf() {\n"
      "  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1.key -out $1.csr -subj "
      "/CN=tether-$1\n"
      "  printf 'subjectAltName=%%s\\n' \"$2\" > $1.ext\n"
      "  openssl x509 -req -in $1.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $1.pem -days 2 -extfile $1.ext\n"
      "}\n"
      "leaf a 'DNS:a.example,DNS:*.a.example'\n"
      "leaf b 'DNS:b.example,DNS:*.b.example'\n"
      "leaf dflt 'DNS:default.test,IP:127.0.0.1'\n"
      "openssl rand 80 > ticket.key\n"
      "mkdir b-locations\n",
      pki);
}

static void write_file(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void write_file(const char *name, const char *fmt, ...) {
  char path[700], tmp[710];
  snprintf(path, sizeof(path), "%s/%s", pki, name);
  snprintf(tmp, sizeof(tmp), "%s.new", path);
  FILE *f = fopen(tmp, "w");
  assert_non_null(f);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(f, fmt, ap);
  va_end(ap);
  fclose(f);
  assert_int_equal(rename(tmp, path), 0);
}

static int setup(void **state) {
  (void)state;
  tb_curl_init();
  if (make_pki() != 0) return -1;
  if (tb_backend_start(&b1, "b1", 0) < 0) return -1;
  tb_tether_init(&T, 1);
  do tls_port = tt_free_port();
  while (tls_port == T.port || tls_port == T.admin);
  write_file("b-locations/1-root.conf", "location / { return 200 \"b\"; }\n");
  write_file("b-locations/2-only.conf", "location /only-b { return 200 \"b-only\"; }\n");
  write_file("c-server.conf",
             "server {\n  listen 127.0.0.1:%d;\n  server_name c.example;\n"
             "  location / { return 200 \"c\"; }\n}\n",
             T.port);
  snprintf(T.conf, sizeof(T.conf), "%s/tether.conf", pki); /* include is relative to the main file's directory */
  FILE *f = fopen(T.conf, "w");
  if (f == NULL) return -1;
  fprintf(f,
          "worker_processes 1;\nadmin_listen 127.0.0.1:%d;\n"
          "upstream app { server %s max_fails=0; }\n"
          "ssl_certificate %s/dflt.pem;\nssl_certificate_key %s/dflt.key;\n"
          "ssl_session_ticket_key %s/ticket.key;\n" /* shared: a session could open on every server */
          "server {\n"
          "  listen 127.0.0.1:%d;\n  listen 127.0.0.1:%d ssl;\n  server_name default.test;\n"
          "  location / { return 200 \"default\"; }\n"
          "  location /headers { proxy_pass http://app; proxy_set_header X-Host $host; }\n"
          "}\n"
          "server {\n"
          "  listen 127.0.0.1:%d;\n  listen 127.0.0.1:%d;\n  server_name a.example *.a.example;\n"
          "  ssl_certificate %s/a.pem;\n  ssl_certificate_key %s/a.key;\n  ssl_protocols TLSv1.3;\n"
          "  location / { return 200 \"a\"; }\n  location /only-a { return 200 \"a-only\"; }\n"
          "  location /headers { proxy_pass http://app; proxy_set_header X-Host $host; }\n"
          "}\n"
          "server {\n"
          "  listen 127.0.0.1:%d;\n  listen 127.0.0.1:%d default_server;\n  server_name .b.example www.b.*;\n"
          "  ssl_certificate %s/b.pem;\n  ssl_certificate_key %s/b.key;\n"
          "  include b-locations/*.conf;\n"
          "}\n"
          "include c-server.conf;\n",
          T.admin, b1.addr, pki, pki, pki, T.port, tls_port, T.port, tls_port, pki, pki, T.port, tls_port, pki, pki);
  fclose(f);
  return tb_tether_run(&T);
}

static int teardown(void **state) {
  (void)state;
  int st = tb_tether_stop(&T, 15000);
  int san = tb_log_has_sanitizer_report(T.log);
  tb_tether_cleanup(&T);
  tb_backend_cleanup(&b1);
  if (getenv("TB_KEEP") == NULL) tt_rmrf(pki);
  return st != 0 || san ? -1 : 0;
}

/* A plain request with the given Host line ("" for none, HTTP/1.0): the status, the body (without its last line
 * break) into body. */
static int plain(const char *host_line, const char *path, char *body, size_t cap) {
  char req[512];
  snprintf(req, sizeof(req), "GET %s HTTP/1.%d\r\n%s%sConnection: close\r\n\r\n", path, host_line[0] ? 1 : 0, host_line,
           host_line[0] ? "\r\n" : "");
  tb_raw r = {0};
  int closed = 0;
  if (tb_raw_exchange(T.port, req, strlen(req), &r, &closed) < 0) return -1;
  snprintf(body, cap, "%.*s", (int)r.body_len, r.body ? r.body : "");
  size_t n = strlen(body);
  if (n && body[n - 1] == '\n') body[n - 1] = '\0'; /* return's text ends with a line break */
  int status = r.status;
  tb_raw_free(&r);
  return status;
}

static void test_host_picks_the_server(void **state) {
  (void)state;
  static const struct {
    const char *host, *path, *want;
  } cases[] = {
      {"Host: a.example", "/", "a"},
      {"Host: A.Example.:8080", "/", "a"},      /* case, port and a trailing dot do not matter */
      {"Host: deep.x.a.example", "/", "a"},     /* *.a.example */
      {"Host: a.example", "/only-a", "a-only"}, /* the server's own locations */
      {"Host: b.example", "/only-a", "b"},      /* ... not another's */
      {"Host: b.example", "/only-b", "b-only"}, /* locations from an included glob */
      {"Host: x.b.example", "/", "b"},          /* .b.example */
      {"Host: www.b.test", "/", "b"},           /* www.b.* */
      {"Host: c.example", "/", "c"},            /* a server from an included file */
      {"Host: default.test", "/", "default"},
      {"Host: unknown.test", "/", "default"}, /* the address's first server: no default_server on it */
      {"", "/", "default"},                   /* no Host: the default too */
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char body[256];
    int status = plain(cases[i].host, cases[i].path, body, sizeof(body));
    if (status != 200 || strcmp(body, cases[i].want) != 0)
      fail_msg("%s %s: %d \"%s\", wanted \"%s\"", cases[i].host, cases[i].path, status, body, cases[i].want);
  }
  /* $host without a Host is the server's name, as nginx */
  char body[4096];
  assert_int_equal(plain("", "/headers", body, sizeof(body)), 200);
  if (strstr(body, "X-Host: default.test") == NULL) fail_msg("%s", body);
  assert_int_equal(plain("Host: A.example:1", "/headers", body, sizeof(body)), 200);
  if (strstr(body, "X-Host: a.example") == NULL) fail_msg("%s", body);
}

/* openssl s_client with SNI name ("" : none) and more options, the request's Host host; its output into out. */
static int s_client_with(const char *sni, const char *more, const char *host, const char *path, const char *out) {
  char opt[1200];
  if (sni[0])
    snprintf(opt, sizeof(opt), "-servername %s %s", sni, more);
  else
    snprintf(opt, sizeof(opt), "-noservername %s", more);
  return tt_system("printf 'GET %s HTTP/1.1\\r\\nHost: %s\\r\\nConnection: close\\r\\n\\r\\n' | timeout 10 "
                   "openssl s_client -connect 127.0.0.1:%d -CAfile '%s/ca.pem' -ign_eof %s > '%s' 2>&1",
                   path, host, tls_port, pki, opt, out);
}

static int s_client(const char *sni, const char *host, const char *path, const char *out) {
  return s_client_with(sni, "", host, path, out);
}

static void expect(const char *out, const char *what) {
  if (!tb_file_contains(out, what)) {
    tt_system("cat '%s' >&2", out);
    fail_msg("no \"%s\" in the output", what);
  }
}

static void test_sni_picks_the_certificate_and_server(void **state) {
  (void)state;
  char out[600];
  snprintf(out, sizeof(out), "%s/s_client.out", pki);
  static const struct {
    const char *sni, *host, *path, *cn, *answer;
  } cases[] = {
      {"a.example", "a.example", "/only-a", "CN = tether-a", "a-only"},
      {"x.a.example", "a.example", "/", "CN = tether-a", "\r\n\r\na"}, /* two names of one server */
      {"b.example", "b.example", "/only-b", "CN = tether-b", "b-only"},
      {"default.test", "default.test", "/", "CN = tether-dflt", "default"},
      {"unknown.test", "b.example", "/", "CN = tether-b", "\r\n\r\nb"}, /* default_server on the TLS address */
      {"", "b.example", "/", "CN = tether-b", "\r\n\r\nb"},             /* no SNI: the default server */
      {"", "a.example", "/", "CN = tether-b", "\r\n\r\na"},             /* no SNI: Host picks, as nginx */
      {"a.example", "unknown.test", "/", "CN = tether-a", "\r\n\r\na"}, /* no server's name: SNI's server */
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    s_client(cases[i].sni, cases[i].host, cases[i].path, out);
    char subject[100];
    snprintf(subject, sizeof(subject), "subject=%s", cases[i].cn);
    expect(out, subject);
    expect(out, "HTTP/1.1 200 OK");
    expect(out, cases[i].answer);
  }
  /* the certificates verify for their names (libcurl, the name resolved to the test's address) */
  static const char *const names[] = {"a.example", "www.a.example", "b.example"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    CURL *h = curl_easy_init();
    char url[256], ca[600], resolve[300];
    snprintf(url, sizeof(url), "https://%s:%d/", names[i], tls_port);
    snprintf(ca, sizeof(ca), "%s/ca.pem", pki);
    snprintf(resolve, sizeof(resolve), "%s:%d:127.0.0.1", names[i], tls_port);
    struct curl_slist *rs = curl_slist_append(NULL, resolve);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CAINFO, ca);
    curl_easy_setopt(h, CURLOPT_RESOLVE, rs);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    curl_slist_free_all(rs);
    if (rc != CURLE_OK || status != 200) fail_msg("%s: %s, %ld", names[i], curl_easy_strerror(rc), status);
  }
}

/* The chosen server's TLS settings apply from the client hello on: its protocols (a is TLS 1.3 only), and its
 * sessions, which resume on it and not on another server. */
static void test_server_tls_settings(void **state) {
  (void)state;
  char out[600], more[1200];
  snprintf(out, sizeof(out), "%s/s_client.out", pki);
  s_client_with("a.example", "-tls1_2", "a.example", "/", out);
  assert_false(tb_file_contains(out, "HTTP/1.1 200"));
  s_client_with("b.example", "-tls1_2", "b.example", "/", out);
  expect(out, "HTTP/1.1 200 OK");
  snprintf(more, sizeof(more), "-sess_out '%s/a.sess'", pki);
  s_client_with("a.example", more, "a.example", "/", out);
  expect(out, "HTTP/1.1 200 OK");
  snprintf(more, sizeof(more), "-sess_in '%s/a.sess'", pki);
  s_client_with("a.example", more, "a.example", "/", out);
  expect(out, "Reused, TLSv1.3");
  expect(out, "\r\n\r\na");
  s_client_with("b.example", more, "b.example", "/", out);
  expect(out, "New, TLSv1.3");
  expect(out, "subject=CN = tether-b");
}

/* A Host that selects another server than the SNI did: 421 Misdirected Request, and nothing is served. */
static void test_host_sni_mismatch_is_421(void **state) {
  (void)state;
  char out[600];
  snprintf(out, sizeof(out), "%s/s_client.out", pki);
  static const struct {
    const char *sni, *host;
  } cases[] = {
      {"a.example", "b.example"},
      {"b.example", "x.a.example"},
      {"a.example", "default.test"},
      {"unknown.test", "a.example"}, /* the SNI chose the default (b) */
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    s_client(cases[i].sni, cases[i].host, "/", out);
    expect(out, "HTTP/1.1 421 Misdirected Request");
  }
  /* plain HTTP has no SNI: any Host is fine there */
  char body[64];
  assert_int_equal(plain("Host: b.example", "/", body, sizeof(body)), 200);
}

/* A reload re-reads the included files: a changed server takes effect, the others keep working. */
/* One HTTPS GET of https://a.example/ on a kept handle (libcurl reuses its connection); the status, and how
 * many new connections it took into *connects. */
static long https_a(CURL *h, long *connects) {
  char url[256], ca[600];
  snprintf(url, sizeof(url), "https://a.example:%d/", tls_port);
  snprintf(ca, sizeof(ca), "%s/ca.pem", pki);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_CAINFO, ca);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  long status = 0;
  if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, connects);
  return status;
}

static void test_reload_rereads_includes(void **state) {
  (void)state;
  /* a TLS connection that SNI put on server a, kept alive across the reload */
  CURL *h = curl_easy_init();
  char resolve[300];
  snprintf(resolve, sizeof(resolve), "a.example:%d:127.0.0.1", tls_port);
  struct curl_slist *rs = curl_slist_append(NULL, resolve);
  curl_easy_setopt(h, CURLOPT_RESOLVE, rs);
  long connects = 0;
  assert_int_equal(https_a(h, &connects), 200);
  assert_int_equal(connects, 1);
  write_file("c-server.conf",
             "server {\n  listen 127.0.0.1:%d;\n  server_name c.example c2.example;\n"
             "  location / { return 200 \"c2\"; }\n}\n",
             T.port);
  kill(T.pid, SIGHUP);
  char body[64] = "";
  for (int i = 0; i < 50 && strcmp(body, "c2") != 0; i++) {
    tt_sleep_ms(100);
    plain("Host: c2.example", "/", body, sizeof(body));
  }
  assert_string_equal(body, "c2");
  assert_int_equal(plain("Host: a.example", "/", body, sizeof(body)), 200);
  assert_string_equal(body, "a");
  assert_int_equal(https_a(h, &connects), 200); /* the same connection, routed by the new configuration */
  assert_int_equal(connects, 0);
  curl_easy_cleanup(h);
  curl_slist_free_all(rs);
  /* a broken included file: the reload is refused and the running configuration stays */
  write_file("c-server.conf", "server {\n  listen 127.0.0.1:%d;\n  frobnicate;\n}\n", T.port);
  kill(T.pid, SIGHUP);
  tt_sleep_ms(500);
  char where[700];
  snprintf(where, sizeof(where), "%s/c-server.conf:3: unknown directive \"frobnicate\"", pki);
  assert_true(tb_file_contains(T.log, where));
  assert_int_equal(plain("Host: c2.example", "/", body, sizeof(body)), 200);
  assert_string_equal(body, "c2");
}

/* `tether -t` on a configuration, the output's expected lines (file:line: reason). */
static void refused(const char *conf_text, const char *const *want) {
  char conf[600], out[600];
  snprintf(conf, sizeof(conf), "%s/refused.conf", pki);
  snprintf(out, sizeof(out), "%s/refused.out", pki);
  FILE *f = fopen(conf, "w");
  fputs(conf_text, f);
  fclose(f);
  const char *args[] = {"-t", "-c", conf, NULL};
  assert_int_equal(tb_tether_cmd(out, args), 1);
  for (; *want; want++) {
    char line[800];
    snprintf(line, sizeof(line), *want, pki);
    expect(out, line);
  }
}

static void test_mistakes_are_refused(void **state) {
  (void)state;
  const char *dup_default[] = {"%1$s/refused.conf:2: a duplicate default server for 127.0.0.1:1 (the first is at "
                               "%1$s/refused.conf:1)",
                               NULL};
  refused("server { listen 127.0.0.1:1 default_server; location / { return 200; } }\n"
          "server { listen 127.0.0.1:1 default_server; location / { return 200; } }\n",
          dup_default);
  const char *dup_opts[] = {"%s/refused.conf:3: duplicate listen options for 127.0.0.1:1", NULL};
  refused("server { listen 127.0.0.1:1 backlog=64; location / { return 200; } }\n\n"
          "server { listen 127.0.0.1:1 backlog=128; location / { return 200; } }\n",
          dup_opts);
  const char *missing[] = {"%1$s/refused.conf:2: include %1$s/missing.conf: no such file", NULL};
  refused("server { listen 127.0.0.1:1; location / { return 200; } }\ninclude missing.conf;\n", missing);
  const char *inside[] = {"%s/b-locations/3-bad.conf:2: \"location\" takes a prefix", NULL};
  write_file("b-locations/3-bad.conf", "\nlocation { return 200; }\n");
  refused("server { listen 127.0.0.1:1; include b-locations/*.conf; }\n", inside);
  char bad[700];
  snprintf(bad, sizeof(bad), "%s/b-locations/3-bad.conf", pki);
  unlink(bad);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_host_picks_the_server),   cmocka_unit_test(test_sni_picks_the_certificate_and_server),
      cmocka_unit_test(test_server_tls_settings),     cmocka_unit_test(test_host_sni_mismatch_is_421),
      cmocka_unit_test(test_reload_rereads_includes), cmocka_unit_test(test_mistakes_are_refused),
  };
  return cmocka_run_group_tests_name("balancer virtual servers", tests, setup, teardown);
}
