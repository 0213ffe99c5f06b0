/* The scheme everywhere, against real processes on loopback (certificates made by the test with `openssl`,
 * libcurl and an OpenSSL client, a scripted backend behind): add_header at the server and location levels
 * with nginx's inheritance, its status rule and `always` on the balancer's own answers (502, 400, return);
 * return's redirects with variables (a relative URL made absolute, a server-level return sending a plain
 * listener's clients to https); the scheme reaching the servers in X-Forwarded-Proto and Forwarded on TLS and
 * plain listeners; the sticky cookie's Secure, SameSite and HttpOnly; WebSocket through a TLS listener. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include "balancer.h"

static tb_backend b1;
static tb_tether T; /* a plain and a TLS listener */
static tb_tether R; /* a plain listener whose server { } sends everything to https */
static char pki[512];
static int tls_port;

#define HSTS "Strict-Transport-Security: max-age=63072000\r\n"

static int setup(void **state) {
  (void)state;
  tb_curl_init();
  if (tb_make_pki(pki, sizeof(pki)) != 0) return -1;
  if (tb_backend_start(&b1, "b1", 0) < 0) return -1;
  tls_port = tt_free_port();
  int dead = tt_free_port(); /* nothing listens there: a 502 */
  tb_tether_init(&T, 1);
  tb_tether_write_conf(&T,
                       "ssl_certificate %s/ec.pem;\nssl_certificate_key %s/ec.key;\n"
                       "forwarded on;\n"
                       "add_header X-Http-Level replaced-by-the-server-level;\n"
                       "upstream app {\n  server %s max_fails=0;\n  sticky cookie srv_id samesite=strict;\n"
                       "  sticky_secret scheme-tests-sticky-secret;\n}\n"
                       "upstream dead { server 127.0.0.1:%d max_fails=0; }\n"
                       "server {\n"
                       "  listen 127.0.0.1:%d ssl;\n"
                       "  add_header Strict-Transport-Security \"max-age=63072000\" always;\n"
                       "  add_header X-Scheme $scheme;\n"
                       "  add_header X-Req \"$request_method $request_uri from $remote_addr for $http_x_who\";\n"
                       "  add_header X-Empty $http_x_absent;\n"
                       "  location / { proxy_pass http://app; }\n"
                       "  location /headers/own { add_header X-Own yes; proxy_pass http://app; }\n"
                       "  location /dead { proxy_pass http://dead; }\n"
                       "  location = /ping { return 200 \"pong $host\"; }\n"
                       "  location = /empty { return 204 \"no body goes with a 204\"; }\n"
                       "  location = /old { return 301 https://$host$request_uri; }\n"
                       "  location = /rel { return 302 /new?from=$arg_from; }\n"
                       "  location = /bare { return https://example.com/bare; }\n"
                       "  location = /both { return 307 https://example.com/both; proxy_pass http://app; }\n"
                       "}\n",
                       pki, pki, b1.addr, dead, tls_port);
  if (tb_tether_run(&T) < 0) return -1;
  return tb_tether_start(&R, 1,
                         "server {\n  return 301 https://$host$request_uri;\n"
                         "  add_header X-Always a always;\n}\n");
}

static int teardown(void **state) {
  (void)state;
  int st = tb_tether_stop(&T, 15000), st2 = tb_tether_stop(&R, 15000);
  int san = tb_log_has_sanitizer_report(T.log) || tb_log_has_sanitizer_report(R.log);
  tb_tether_cleanup(&T);
  tb_tether_cleanup(&R);
  tb_backend_cleanup(&b1);
  if (getenv("TB_KEEP") == NULL) tt_rmrf(pki);
  return st != 0 || st2 != 0 || san ? -1 : 0;
}

/* One HTTPS GET trusting the test root, no redirect followed; body and head into out and head. */
static long https_get(const char *path, tb_sink *body, tb_sink *head) {
  CURL *h = curl_easy_init();
  char url[256], ca[600];
  snprintf(url, sizeof(url), "https://127.0.0.1:%d%s", tls_port, path);
  snprintf(ca, sizeof(ca), "%s/ca.pem", pki);
  body->len = head->len = 0;
  body->data[0] = head->data[0] = '\0';
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_CAINFO, ca);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, tb_sink_collect);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, tb_sink_collect);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, head);
  long status = 0;
  if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(h);
  return status;
}

/* One request on a fresh plain connection to port; the response into r (0, or -1 without one). */
static int raw(int port, const char *request, tb_raw *r) {
  return tb_raw_exchange(port, request, strlen(request), r, NULL);
}

static int has(const char *head, const char *line) { return strstr(head, line) != NULL; }

/* The server level's list on proxied answers, with its variables; a location with its own list drops it;
 * without `always` only the statuses nginx names get a header. */
static void test_add_header_on_proxied_answers(void **state) {
  (void)state;
  tb_raw r;
  assert_int_equal(raw(T.port, "GET /headers?q=1 HTTP/1.1\r\nHost: x\r\nX-Who: me\r\n\r\n", &r), 0);
  assert_int_equal(r.status, 200);
  assert_true(has(r.head, HSTS));
  assert_true(has(r.head, "X-Scheme: http\r\n"));
  assert_true(has(r.head, "X-Req: GET /headers?q=1 from 127.0.0.1 for me\r\n"));
  assert_false(has(r.head, "X-Empty")); /* a value that comes out empty adds nothing */
  assert_false(has(r.head, "X-Http-Level"));
  assert_false(has(r.body, "X-Scheme")); /* for the client, not the server */
  tb_raw_free(&r);
  /* the location's own list replaces the server's */
  assert_int_equal(raw(T.port, "GET /headers/own HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
  assert_int_equal(r.status, 200);
  assert_true(has(r.head, "X-Own: yes\r\n"));
  assert_false(has(r.head, "Strict-Transport-Security"));
  assert_false(has(r.head, "X-Scheme"));
  tb_raw_free(&r);
  /* a server's 404: only `always`; its 204 and 304: every one */
  assert_int_equal(raw(T.port, "GET /status?code=404 HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
  assert_int_equal(r.status, 404);
  assert_true(has(r.head, HSTS));
  assert_false(has(r.head, "X-Scheme"));
  tb_raw_free(&r);
  int codes[] = {204, 304};
  for (int i = 0; i < 2; i++) {
    char req[128];
    snprintf(req, sizeof(req), "GET /status?code=%d HTTP/1.1\r\nHost: x\r\n\r\n", codes[i]);
    assert_int_equal(raw(T.port, req, &r), 0);
    assert_int_equal(r.status, codes[i]);
    assert_true(has(r.head, HSTS));
    assert_true(has(r.head, "X-Scheme: http\r\n"));
    tb_raw_free(&r);
  }
}

/* `always` reaches the balancer's own answers: a 502, a 400 for a request it cannot parse, a return. */
static void test_add_header_on_own_answers(void **state) {
  (void)state;
  tb_raw r;
  assert_int_equal(raw(T.port, "GET /dead HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
  assert_int_equal(r.status, 502);
  assert_true(has(r.head, HSTS));
  assert_false(has(r.head, "X-Scheme"));
  tb_raw_free(&r);
  assert_int_equal(raw(T.port, "GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n", &r), 0);
  assert_int_equal(r.status, 400);
  assert_true(has(r.head, HSTS));
  tb_raw_free(&r);
  assert_int_equal(raw(T.port, "GET /ping HTTP/1.1\r\nHost: Example.COM:81\r\n\r\n", &r), 0);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "pong example.com\n");
  assert_true(has(r.head, HSTS));
  assert_true(has(r.head, "X-Scheme: http\r\n"));
  tb_raw_free(&r);
  /* a 204 has no body, and the connection goes on */
  tb_conn c;
  assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
  assert_int_equal(tb_send_str(c.fd, "GET /empty HTTP/1.1\r\nHost: x\r\n\r\nGET /ping HTTP/1.1\r\nHost: y\r\n\r\n"), 0);
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_int_equal(r.status, 204);
  assert_false(has(r.head, "Content-Length"));
  assert_true(has(r.head, "X-Scheme: http\r\n"));
  tb_raw_free(&r);
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "pong y\n");
  tb_raw_free(&r);
  tb_conn_close(&c);
}

/* return CODE URL with variables, a bare URL (302), a relative URL made absolute, return before
 * proxy_pass, and a HEAD without the page. */
static void test_redirects(void **state) {
  (void)state;
  tb_raw r;
  assert_int_equal(raw(T.port, "GET /old?a=1&b=2 HTTP/1.1\r\nHost: Example.ORG:8080\r\n\r\n", &r), 0);
  assert_int_equal(r.status, 301);
  assert_true(has(r.head, "Location: https://example.org/old?a=1&b=2\r\n"));
  assert_true(has(r.head, "Content-Type: text/html\r\n"));
  assert_true(has(r.body, "<center><h1>301 Moved Permanently</h1></center>"));
  assert_true(has(r.head, HSTS));
  assert_true(has(r.head, "X-Scheme: http\r\n"));
  tb_raw_free(&r);
  assert_int_equal(raw(T.port, "HEAD /old HTTP/1.1\r\nHost: a.example\r\n\r\n", &r), 0);
  assert_int_equal(r.status, 301);
  assert_true(has(r.head, "Location: https://a.example/old\r\n"));
  assert_int_equal(r.body_len, 0);
  tb_raw_free(&r);
  char req[256], want[256];
  snprintf(req, sizeof(req), "GET /rel?from=x HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", T.port);
  assert_int_equal(raw(T.port, req, &r), 0);
  assert_int_equal(r.status, 302);
  snprintf(want, sizeof(want), "Location: http://127.0.0.1:%d/new?from=x\r\n", T.port);
  assert_true(has(r.head, want));
  assert_true(has(r.body, "<center><h1>302 Found</h1></center>"));
  tb_raw_free(&r);
  assert_int_equal(raw(T.port, "GET /bare HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
  assert_int_equal(r.status, 302);
  assert_true(has(r.head, "Location: https://example.com/bare\r\n"));
  tb_raw_free(&r);
  assert_int_equal(raw(T.port, "GET /both HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
  assert_int_equal(r.status, 307);
  assert_true(has(r.head, "Location: https://example.com/both\r\n"));
  tb_raw_free(&r);
  /* over TLS, a relative URL stays on https and its port */
  static tb_sink body, head;
  assert_int_equal(https_get("/rel?from=y", &body, &head), 302);
  snprintf(want, sizeof(want), "Location: https://127.0.0.1:%d/new?from=y\r\n", tls_port);
  assert_true(has(head.data, want));
  assert_true(has(head.data, "X-Scheme: https\r\n"));
}

/* The classic plain listener: server { return 301 https://$host$request_uri; }, before any location. */
static void test_plain_listener_to_https(void **state) {
  (void)state;
  tb_raw r;
  const char *paths[] = {"/", "/any/path?q=1", "/a/../b?x=%41"};
  for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
    char req[256], want[256];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: shop.example\r\n\r\n", paths[i]);
    assert_int_equal(raw(R.port, req, &r), 0);
    assert_int_equal(r.status, 301);
    snprintf(want, sizeof(want), "Location: https://shop.example%s\r\n", paths[i]);
    assert_true(has(r.head, want));
    assert_true(has(r.head, "X-Always: a\r\n"));
    tb_raw_free(&r);
  }
}

/* X-Forwarded-Proto and Forwarded say how the client came; the sticky cookie is Secure over TLS only, and
 * carries HttpOnly and SameSite both ways. */
static void test_scheme_reaches_servers(void **state) {
  (void)state;
  static tb_sink body, head;
  assert_int_equal(https_get("/headers", &body, &head), 200);
  assert_true(has(body.data, "X-Forwarded-Proto: https\n"));
  assert_true(has(body.data, "Forwarded: for=127.0.0.1;proto=https;"));
  assert_true(has(head.data, "srv_id="));
  assert_true(has(head.data, "; Secure"));
  assert_true(has(head.data, "; HttpOnly"));
  assert_true(has(head.data, "; SameSite=Strict"));
  assert_true(has(head.data, HSTS));
  tb_raw r;
  assert_int_equal(raw(T.port, "GET /headers HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\n\r\n", &r), 0);
  assert_true(has(r.body, "X-Forwarded-Proto: http\n"));
  assert_true(has(r.body, "Forwarded: for=127.0.0.1;proto=http;"));
  assert_false(has(r.body, "https"));
  assert_true(has(r.head, "srv_id="));
  assert_false(has(r.head, "; Secure"));
  assert_true(has(r.head, "; HttpOnly"));
  assert_true(has(r.head, "; SameSite=Strict"));
  tb_raw_free(&r);
}

/* Reads a response head (up to the blank line) over TLS into out; what came after it stays in *extra. */
static int tls_read_head(SSL *s, char *out, size_t cap, size_t *extra) {
  size_t len = 0;
  while (len + 1 < cap) {
    int k = SSL_read(s, out + len, (int)(cap - 1 - len));
    if (k <= 0) return -1;
    len += (size_t)k;
    out[len] = '\0';
    char *end = strstr(out, "\r\n\r\n");
    if (end) {
      *extra = len - (size_t)(end + 4 - out);
      return 0;
    }
  }
  return -1;
}

static int tls_read_n(SSL *s, char *out, size_t n) {
  for (size_t got = 0; got < n;) {
    int k = SSL_read(s, out + got, (int)(n - got));
    if (k <= 0) return -1;
    got += (size_t)k;
  }
  return 0;
}

/* WebSocket through the TLS listener: the 101 (with the `always` header), then frames both ways, small and
 * larger than a TLS record. */
static void test_websocket_over_tls(void **state) {
  (void)state;
  char ca[600];
  snprintf(ca, sizeof(ca), "%s/ca.pem", pki);
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  assert_int_equal(SSL_CTX_load_verify_locations(ctx, ca, NULL), 1);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  int fd = tb_connect(tls_port, 5000);
  assert_true(fd >= 0);
  SSL *s = SSL_new(ctx);
  SSL_set_fd(s, fd);
  X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), "127.0.0.1");
  assert_int_equal(SSL_connect(s), 1);
  const char *up = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                   "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
  assert_int_equal(SSL_write(s, up, (int)strlen(up)), (int)strlen(up));
  char head[4096];
  size_t extra = 0;
  assert_int_equal(tls_read_head(s, head, sizeof(head), &extra), 0);
  assert_int_equal(extra, 0);
  assert_non_null(strstr(head, "HTTP/1.1 101 "));
  assert_non_null(strcasestr(head, "Upgrade: websocket\r\n"));
  assert_non_null(strcasestr(head, "Connection: upgrade\r\n"));
  assert_non_null(strstr(head, HSTS)); /* always: a 101 too */
  assert_null(strstr(head, "X-Scheme"));
  /* a masked text frame "hello", echoed by the server */
  const char hello[] = "\x81\x85\x01\x02\x03\x04"
                       "\x69\x67\x6f\x68\x6e";
  char back[16];
  assert_int_equal(SSL_write(s, hello, 11), 11);
  assert_int_equal(tls_read_n(s, back, 11), 0);
  assert_memory_equal(back, hello, 11);
  /* binary frames of 40 KiB: each spans several TLS records */
  size_t n = 40 * 1024 + 8;
  char *frame = malloc(n), *in = malloc(n);
  frame[0] = (char)0x82;
  frame[1] = (char)(0x80 | 127);
  memset(frame + 2, 0, 6);
  frame[8] = (char)((n - 14) >> 8);
  frame[9] = (char)((n - 14) & 0xff);
  for (int round = 0; round < 4; round++) {
    for (size_t i = 10; i < n; i++) frame[i] = (char)(i * 31 + (size_t)round);
    assert_int_equal(SSL_write(s, frame, (int)n), (int)n);
    assert_int_equal(tls_read_n(s, in, n), 0);
    assert_memory_equal(in, frame, n);
  }
  free(frame);
  free(in);
  const char bye[] = "\x88\x80\x00\x00\x00\x00";
  assert_int_equal(SSL_write(s, bye, 6), 6);
  assert_int_equal(tls_read_n(s, back, 6), 0);
  assert_memory_equal(back, bye, 6);
  SSL_shutdown(s);
  SSL_free(s);
  close(fd);
  SSL_CTX_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_add_header_on_proxied_answers),
      cmocka_unit_test(test_add_header_on_own_answers),
      cmocka_unit_test(test_redirects),
      cmocka_unit_test(test_plain_listener_to_https),
      cmocka_unit_test(test_scheme_reaches_servers),
      cmocka_unit_test(test_websocket_over_tls),
  };
  return cmocka_run_group_tests_name("balancer scheme", tests, setup, teardown);
}
