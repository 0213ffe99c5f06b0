/* TLS at the edge, against real processes on loopback: certificates made by the test with `openssl` (a root,
 * an intermediate, an ECDSA P-256 and an RSA 2048 leaf), libcurl and `openssl s_client` as clients, a
 * scripted backend behind. TLS 1.2 and 1.3 work; TLS 1.0/1.1 and suites without forward secrecy are refused;
 * both key types and the whole chain are served; a session resumes by ticket on another instance that
 * shares the ticket key file; a SIGHUP swaps the certificate under load without failing a request, and a bad
 * one is refused with the old kept; the scheme reaches the server and the sticky cookie is Secure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#include "balancer.h"

static tb_backend b1;
static tb_tether T;
static char pki[512]; /* the certificates' directory */
static int tls_port;

static int setup(void **state) {
  (void)state;
  tb_curl_init();
  if (tb_make_pki(pki, sizeof(pki)) != 0) return -1;
  if (tb_backend_start(&b1, "b1", 0) < 0) return -1;
  tls_port = tt_free_port();
  tb_tether_init(&T, 1);
  tb_tether_write_conf(&T,
                       "listen 127.0.0.1:%d ssl;\n"
                       "ssl_certificate %s/ec.pem;\nssl_certificate_key %s/ec.key;\n"
                       "ssl_certificate %s/rsa.pem;\nssl_certificate_key %s/rsa.key;\n"
                       "ssl_session_ticket_key %s/ticket.key;\n"
                       "upstream app {\n  server %s max_fails=0;\n  keepalive 8;\n"
                       "  sticky cookie srv_id;\n  sticky_secret tls-tests-sticky-secret;\n}\n"
                       "location / { proxy_pass http://app; }\n",
                       tls_port, pki, pki, pki, pki, pki, b1.addr);
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

/* One HTTPS GET with libcurl, trusting the test root; the body (and head) into out. Returns the status (0:
 * no answer) and the TLS version curl negotiated. */
static long https_get(int port, const char *path, long sslversion, tb_sink *out, tb_sink *head) {
  CURL *h = curl_easy_init();
  char url[256], ca[600];
  snprintf(url, sizeof(url), "https://127.0.0.1:%d%s", port, path);
  snprintf(ca, sizeof(ca), "%s/ca.pem", pki);
  out->len = 0;
  out->data[0] = '\0';
  head->len = 0;
  head->data[0] = '\0';
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_CAINFO, ca);
  curl_easy_setopt(h, CURLOPT_SSLVERSION, sslversion);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, tb_sink_collect);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, tb_sink_collect);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, head);
  long status = 0;
  CURLcode rc = curl_easy_perform(h);
  if (rc == CURLE_OK)
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  else
    fprintf(stderr, "curl: %s\n", curl_easy_strerror(rc));
  curl_easy_cleanup(h);
  return status;
}

/* openssl s_client with args against the TLS port (the request given as input); its output into out. */
static int s_client(int port, const char *args, const char *out) {
  return tt_system("printf 'GET /headers HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' | timeout 10 "
                   "openssl s_client -connect 127.0.0.1:%d -CAfile '%s/ca.pem' -ign_eof %s > '%s' 2>&1",
                   port, pki, args, out);
}

static void test_tls12_and_tls13(void **state) {
  (void)state;
  static tb_sink body, head;
  long versions[] = {CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2,
                     CURL_SSLVERSION_TLSv1_3 | CURL_SSLVERSION_MAX_TLSv1_3};
  for (int i = 0; i < 2; i++) {
    assert_int_equal(https_get(tls_port, "/headers", versions[i], &body, &head), 200);
    assert_non_null(strstr(body.data, "X-Forwarded-Proto: https"));
    /* the sticky cookie of a TLS client is Secure */
    assert_non_null(strstr(head.data, "srv_id="));
    assert_non_null(strstr(head.data, "; Secure"));
  }
  /* the plain listener still speaks plain HTTP, with its own scheme and no Secure */
  tb_resp r;
  assert_int_equal(tb_get(NULL, T.port, "/headers", &r), 200);
  assert_non_null(strstr(r.body, "X-Forwarded-Proto: http\n"));
  assert_null(strstr(r.head, "; Secure"));
  tb_resp_free(&r);
}

static void test_weak_protocols_and_suites_refused(void **state) {
  (void)state;
  char out[600];
  snprintf(out, sizeof(out), "%s/s_client.out", pki);
  /* the client offers them (its own security level lowered), the server must say no */
  const char *refused[] = {"-tls1 -cipher DEFAULT@SECLEVEL=0",
                           "-tls1_1 -cipher DEFAULT@SECLEVEL=0",
                           "-tls1_2 -cipher AES128-SHA@SECLEVEL=0",
                           "-tls1_2 -cipher ECDHE-RSA-AES128-SHA@SECLEVEL=0",
                           "-tls1_2 -cipher AES128-GCM-SHA256@SECLEVEL=0",
                           "-tls1_2 -cipher 'RC4:NULL:eNULL@SECLEVEL=0'"};
  for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
    s_client(tls_port, refused[i], out);
    int handshook = tb_file_contains(out, "Verify return code: 0") && !tb_file_contains(out, "Cipher is (NONE)");
    if (handshook) fprintf(stderr, "s_client %s was served\n", refused[i]);
    assert_false(handshook);
  }
  /* and the good ones are served */
  assert_int_equal(s_client(tls_port, "-tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256", out), 0);
  assert_true(tb_file_contains(out, "Cipher is ECDHE-ECDSA-AES128-GCM-SHA256"));
}

static void test_both_key_types_and_the_chain(void **state) {
  (void)state;
  char out[600];
  snprintf(out, sizeof(out), "%s/s_client.out", pki);
  assert_int_equal(s_client(tls_port, "-tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256 -showcerts", out), 0);
  assert_true(tb_file_contains(out, "CN = tether-test-rsa"));
  assert_true(tb_file_contains(out, "Verify return code: 0 (ok)"));
  assert_int_equal(s_client(tls_port, "-tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256 -showcerts", out), 0);
  assert_true(tb_file_contains(out, "CN = tether-test-ec"));
  /* the whole chain: leaf and intermediate */
  assert_true(tb_file_contains(out, " 1 s:CN = tether-test-intermediate"));
  assert_true(tb_file_contains(out, "Verify return code: 0 (ok)"));
}

/* Resumption across a fleet: tickets sealed by one instance open on another with the same key file. */
static void test_resumption_across_instances(void **state) {
  (void)state;
  tb_tether t2, t3;
  int p2 = tt_free_port(), p3 = tt_free_port();
  const char *conf = "listen 127.0.0.1:%d ssl;\nssl_certificate %s/ec.pem;\nssl_certificate_key %s/ec.key;\n"
                     "ssl_session_ticket_key %s/%s;\nupstream app { server %s; }\n"
                     "location / { proxy_pass http://app; }\n";
  assert_int_equal(tb_tether_start(&t2, 1, conf, p2, pki, pki, pki, "ticket.key", b1.addr), 0);
  assert_int_equal(tb_tether_start(&t3, 1, conf, p3, pki, pki, pki, "other.key", b1.addr), 0);
  const char *versions[] = {"-tls1_2", "-tls1_3"};
  for (int v = 0; v < 2; v++) {
    char out[600], sess[600], args[1400];
    snprintf(out, sizeof(out), "%s/resume.out", pki);
    snprintf(sess, sizeof(sess), "%s/session.pem", pki);
    snprintf(args, sizeof(args), "%s -sess_out '%s'", versions[v], sess);
    assert_int_equal(s_client(tls_port, args, out), 0);
    assert_true(tb_file_contains(out, "New,"));
    snprintf(args, sizeof(args), "%s -sess_in '%s'", versions[v], sess);
    assert_int_equal(s_client(p2, args, out), 0);
    if (!tb_file_contains(out, "Reused,")) tt_system("grep -E 'New,|Reused,' '%s' >&2", out);
    assert_true(tb_file_contains(out, "Reused,"));
    assert_int_equal(s_client(p3, args, out), 0); /* another key: a full handshake */
    assert_true(tb_file_contains(out, "New,"));
  }
  assert_int_equal(tb_tether_stop(&t2, 10000), 0);
  assert_int_equal(tb_tether_stop(&t3, 10000), 0);
  tb_tether_cleanup(&t2);
  tb_tether_cleanup(&t3);
}

typedef struct load {
  atomic_int stop;
  atomic_int ok, failed;
} load;

static void *load_main(void *arg) {
  load *l = arg;
  static tb_sink body, head;
  for (int i = 0; i < 2000 && !atomic_load(&l->stop); i++) { /* bounded in count, and stopped by the test */
    long st = https_get(tls_port, "/", CURL_SSLVERSION_TLSv1_2, &body, &head);
    if (st == 200)
      atomic_fetch_add(&l->ok, 1);
    else
      atomic_fetch_add(&l->failed, 1);
  }
  return NULL;
}

/* A certificate swapped by SIGHUP under load: no request fails, new connections get the new certificate; a
 * configuration whose key cannot be read is refused and the running one keeps serving. */
static void test_reload_swaps_certificates(void **state) {
  (void)state;
  load l = {0};
  pthread_t th;
  pthread_create(&th, NULL, load_main, &l);
  tt_sleep_ms(300);
  char conf[700];
  snprintf(conf, sizeof(conf), "%s", T.conf);
  tt_system("sed -i 's#%s/rsa.pem#%s/rsa2.pem#; s#%s/rsa.key#%s/rsa2.key#' '%s'", pki, pki, pki, pki, conf);
  kill(T.pid, SIGHUP);
  tt_sleep_ms(500);
  char out[600];
  snprintf(out, sizeof(out), "%s/reload.out", pki);
  assert_int_equal(s_client(tls_port, "-tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256", out), 0);
  assert_true(tb_file_contains(out, "CN = tether-test-rsa2"));
  /* a key with a passphrase: refused, clearly, and the running configuration stays */
  tt_system("sed -i 's#%s/rsa2.key#%s/locked.key#' '%s'", pki, pki, conf);
  kill(T.pid, SIGHUP);
  tt_sleep_ms(500);
  assert_true(tb_file_contains(T.log, "passphrase"));
  assert_int_equal(s_client(tls_port, "-tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256", out), 0);
  assert_true(tb_file_contains(out, "CN = tether-test-rsa2"));
  tt_sleep_ms(300);
  atomic_store(&l.stop, 1);
  pthread_join(th, NULL);
  fprintf(stderr, "reload under load: %d ok, %d failed\n", atomic_load(&l.ok), atomic_load(&l.failed));
  assert_true(atomic_load(&l.ok) > 10);
  assert_int_equal(atomic_load(&l.failed), 0);
  tt_system("sed -i 's#%s/locked.key#%s/rsa2.key#' '%s'", pki, pki, conf);
  kill(T.pid, SIGHUP);
  tt_sleep_ms(300);
}

/* What nginx accepts but Tether cannot honour, or will not, is refused with file:line. */
static void test_refused_directives(void **state) {
  (void)state;
  char conf[600], out[600];
  snprintf(conf, sizeof(conf), "%s/refused.conf", pki);
  snprintf(out, sizeof(out), "%s/refused.out", pki);
  FILE *f = fopen(conf, "w");
  fprintf(f,
          "listen 127.0.0.1:1 ssl;\n"           /* 1 */
          "ssl_certificate %s/ec.pem;\n"        /* 2 */
          "ssl_certificate_key %s/ec.key;\n"    /* 3 */
          "ssl_protocols TLSv1 TLSv1.2;\n"      /* 4 */
          "ssl_dhparam /etc/dhparam.pem;\n"     /* 5 */
          "ssl_stapling on;\n"                  /* 6 */
          "ssl_session_cache shared:SSL:10m;\n" /* 7 */
          "location / { return 200; }\n",
          pki, pki);
  fclose(f);
  const char *args[] = {"-t", "-c", conf, NULL};
  assert_int_equal(tb_tether_cmd(out, args), 1);
  for (int line = 4; line <= 7; line++) {
    char where[700];
    snprintf(where, sizeof(where), "%s:%d: ", conf, line);
    if (!tb_file_contains(out, where)) tt_system("cat '%s' >&2", out);
    assert_true(tb_file_contains(out, where));
  }
  /* an ssl listener without a certificate, and a passphrase-protected key */
  f = fopen(conf, "w");
  fprintf(f, "listen 127.0.0.1:1 ssl;\nlocation / { return 200; }\n");
  fclose(f);
  assert_int_equal(tb_tether_cmd(out, args), 1);
  assert_true(tb_file_contains(out, "no \"ssl_certificate\""));
  f = fopen(conf, "w");
  fprintf(f,
          "listen 127.0.0.1:1 ssl;\nssl_certificate %s/rsa.pem;\nssl_certificate_key %s/locked.key;\n"
          "location / { return 200; }\n",
          pki, pki);
  fclose(f);
  assert_int_equal(tb_tether_cmd(out, args), 1);
  assert_true(tb_file_contains(out, "refused.conf:2: ssl_certificate_key"));
  assert_true(tb_file_contains(out, "passphrase"));
  assert_false(tb_file_contains(out, "secret"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tls12_and_tls13),
      cmocka_unit_test(test_weak_protocols_and_suites_refused),
      cmocka_unit_test(test_both_key_types_and_the_chain),
      cmocka_unit_test(test_resumption_across_instances),
      cmocka_unit_test(test_reload_swaps_certificates),
      cmocka_unit_test(test_refused_directives),
  };
  return cmocka_run_group_tests_name("balancer TLS", tests, setup, teardown);
}
