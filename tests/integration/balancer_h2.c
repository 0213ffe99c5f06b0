/* HTTP/2 at the edge, against real processes on loopback: tether with `listen ... ssl http2` (ALPN h2) and a
 * plain `listen ... http2` (prior knowledge), scripted HTTP/1.1 backends behind. Clients: libcurl (HTTP/2 over
 * TLS and prior knowledge), nghttp and h2load (nghttp2-client), and raw frames written by hand here (HPACK
 * literals without Huffman; the answers' header blocks decoded with nghttp2's inflater) for what a well-behaved
 * client library refuses to send: the h2-to-h1 smuggling shapes of RFC 9113 section 8.2 and the floods
 * (Rapid Reset, CONTINUATION, HPACK bombs, SETTINGS, PING and empty DATA, zero-window slowloris). Each
 * refusal is checked on the wire, and the backend's request counter shows that nothing refused reached it. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <nghttp2/nghttp2.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "balancer.h"
#include "h2_raw.h"

/* A field the balancer adds to every answer (add_header), its name in mixed case. */
#define LONG_NAME "X-A-Response-Field-In-Mixed-Case-Added-By-The-Balancer"
static tb_backend b1, b2;
static tb_tether T;  /* default limits */
static tb_tether T2; /* small limits: keepalive_requests, send_timeout */
static char pki[512];
static int tls_port, h2c_port, lim_port;

static int setup(void **state) {
  (void)state;
  signal(SIGPIPE, SIG_IGN);
  tb_curl_init();
  if (tb_make_pki(pki, sizeof(pki)) != 0) return -1;
  if (tb_backend_start(&b1, "b1", 0) < 0 || tb_backend_start(&b2, "b2", 0) < 0) return -1;
  tls_port = tt_free_port();
  h2c_port = tt_free_port();
  lim_port = tt_free_port();
  tb_tether_init(&T, 1);
  tb_tether_write_conf(&T,
                       "listen 127.0.0.1:%d ssl http2;\nlisten 127.0.0.1:%d http2;\n"
                       "ssl_certificate %s/ec.pem;\nssl_certificate_key %s/ec.key;\n"
                       "access_log %s/access.log;\nclient_max_body_size 0;\n"
                       "upstream app {\n  server %s max_fails=0;\n  server %s max_fails=0;\n"
                       "  sticky cookie srv_id;\n  sticky_secret h2-tests-sticky-secret-0123456789;\n}\n"
                       "location / { proxy_pass http://app; add_header %s yes; }\n",
                       tls_port, h2c_port, pki, pki, T.dir, b1.addr, b2.addr, LONG_NAME);
  if (tb_tether_run(&T) < 0) return -1;
  tb_tether_init(&T2, 1);
  tb_tether_write_conf(&T2,
                       "listen 127.0.0.1:%d http2;\nhttp2_max_concurrent_streams 4;\nkeepalive_requests "
                       "10;\nsend_timeout 1s;\nhttp2_recv_timeout 1s;\n"
                       "upstream app {\n  server %s max_fails=0;\n}\nlocation / { proxy_pass http://app; }\n",
                       lim_port, b1.addr);
  return tb_tether_run(&T2);
}

static int teardown(void **state) {
  (void)state;
  int st = tb_tether_stop(&T, 15000), st2 = tb_tether_stop(&T2, 15000);
  int san = tb_log_has_sanitizer_report(T.log) || tb_log_has_sanitizer_report(T2.log);
  tb_tether_cleanup(&T);
  tb_tether_cleanup(&T2);
  tb_backend_cleanup(&b1);
  tb_backend_cleanup(&b2);
  if (getenv("TB_KEEP") == NULL) tt_rmrf(pki);
  return st != 0 || st2 != 0 || san ? -1 : 0;
}

/* ---- the backends' request counters ---- */

static long backend_requests(const tb_backend *b) {
  tb_resp r;
  long n = -1;
  if (tb_get(NULL, b->port, "/stats", &r) == 200 && r.body) {
    const char *p = strstr(r.body, "requests=");
    if (p) n = strtol(p + 9, NULL, 10);
  }
  tb_resp_free(&r);
  return n;
}

/* Requests both backends received, not counting the /stats calls that read it. */
static long served_total(void) { return backend_requests(&b1) + backend_requests(&b2); }

/* One request as a raw header block on a new connection to the prior-knowledge listener. */
static void raw_request(const char *const *kv, int flags, outcome *o) {
  raw r;
  assert_int_equal(raw_open(&r, h2c_port, NULL, 0), 0);
  uint8_t b[8192];
  size_t n = block(b, kv);
  assert_int_equal(frame(&r, F_HEADERS, END_HEADERS | flags, 1, b, n), 0);
  if (!(flags & END_STREAM)) frame(&r, F_DATA, END_STREAM, 1, "x", 1);
  wait_stream(&r, 1, o);
  raw_close(&r);
}

#define REQ(...)                                                                                                       \
  (const char *const[]) {                                                                                              \
    ":method", "GET", ":scheme", "http", ":path", "/headers", ":authority", "127.0.0.1", __VA_ARGS__                   \
  }

/* ---- clients ---- */

/* A GET with libcurl over HTTP/2 (over TLS with ALPN, or by prior knowledge); the HTTP version it spoke. */
static long curl_h2(const char *url, const char *const *headers, tb_sink *out, long *version) {
  CURL *h = curl_easy_init();
  char ca[600];
  snprintf(ca, sizeof(ca), "%s/ca.pem", pki);
  struct curl_slist *hl = NULL;
  for (int i = 0; headers && headers[i]; i++) hl = curl_slist_append(hl, headers[i]);
  out->len = 0;
  out->data[0] = '\0';
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_CAINFO, ca);
  curl_easy_setopt(h, CURLOPT_HTTP_VERSION,
                   strncmp(url, "https", 5) == 0 ? (long)CURL_HTTP_VERSION_2TLS
                                                 : (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, tb_sink_collect);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
  long status = 0;
  if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(h, CURLINFO_HTTP_VERSION, version);
  curl_slist_free_all(hl);
  curl_easy_cleanup(h);
  return status;
}

/* Runs a shell command; its output into out (truncated). The exit status. */
static int run(char *out, size_t cap, const char *fmt, ...) {
  char cmd[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof(cmd), fmt, ap);
  va_end(ap);
  FILE *p = popen(cmd, "r");
  if (p == NULL) return -1;
  size_t n = fread(out, 1, cap - 1, p);
  out[n] = '\0';
  return pclose(p);
}

/* ---- tests: the protocol ---- */

static void test_curl_alpn_h2(void **state) {
  (void)state;
  char url[128];
  snprintf(url, sizeof(url), "https://localhost:%d/headers", tls_port);
  tb_sink s;
  long v = 0;
  assert_int_equal(curl_h2(url, (const char *const[]){"Cookie: a=1", "X-Test: yes", NULL}, &s, &v), 200);
  assert_int_equal(v, CURL_HTTP_VERSION_2_0);
  assert_non_null(strstr(s.data, "GET /headers HTTP/1.1\n"));
  assert_non_null(strstr(s.data, "Host: localhost:"));
  assert_non_null(strstr(s.data, "X-Forwarded-Proto: https"));
  assert_non_null(strstr(s.data, "x-test: yes"));
}

static void test_curl_prior_knowledge(void **state) {
  (void)state;
  char url[128];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/", h2c_port);
  tb_sink s;
  long v = 0;
  assert_int_equal(curl_h2(url, NULL, &s, &v), 200);
  assert_int_equal(v, CURL_HTTP_VERSION_2_0);
  assert_true(strcmp(s.data, "b1\n") == 0 || strcmp(s.data, "b2\n") == 0);
}

/* The answer's fields become HEADERS fields with lowercase names (the HTTP/1.1 head's names are handed to nghttp2
 * as they are, and its copy lowercases them); the connection-specific ones are left out. */
static void test_response_names(void **state) {
  (void)state;
  char out[8192], want[128];
  assert_int_equal(
      run(out, sizeof(out), "curl -sS --http2-prior-knowledge -D - -o /dev/null http://127.0.0.1:%d/", h2c_port), 0);
  assert_non_null(strstr(out, "HTTP/2 200"));
  snprintf(want, sizeof(want), "\n%s: yes", LONG_NAME);
  for (char *p = want; *p; p++) *p = (char)tolower((unsigned char)*p);
  assert_non_null(strstr(out, want));
  assert_non_null(strstr(out, "\ncontent-length: 3"));
  assert_null(strstr(out, "\nconnection:"));
}

/* HTTP/1.1 still works on a plain http2 listener; Upgrade: h2c is not honoured (no 101) nor forwarded. */
static void test_upgrade_h2c_ignored(void **state) {
  (void)state;
  const char req[] = "GET /headers HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                     "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n";
  tb_raw r;
  int closed = 0;
  assert_int_equal(tb_raw_exchange(h2c_port, req, sizeof(req) - 1, &r, &closed), 0);
  assert_int_equal(r.status, 200);
  assert_null(strstr(r.body, "Upgrade"));
  assert_null(strstr(r.body, "HTTP2-Settings"));
  tb_raw_free(&r);
}

/* Cookie fields are joined with "; " (RFC 9113 section 8.2.3), :authority is the Host, te: trailers is fine. */
static void test_cookies_joined(void **state) {
  (void)state;
  outcome o;
  raw_request(REQ("cookie", "a=1", "x-mid", "m", "cookie", "b=2", "te", "trailers", NULL), END_STREAM, &o);
  assert_int_equal(o.status, 200);
  assert_non_null(strstr(o.body, "Cookie: a=1; b=2\n"));
  assert_non_null(strstr(o.body, "Host: 127.0.0.1\n"));
  assert_null(strstr(o.body, "te:"));
}

/* The request head is made from the block as the HTTP/1.1 head it stands for: the host field is the Host when
 * there is no :authority (which wins over it), the fields keep their order; without either, refused (as
 * HTTP/1.1 without Host); a value or a path with a control character never reaches the server. */
static void test_head_from_block(void **state) {
  (void)state;
  outcome o;
  raw_request((const char *const[]){":method", "GET", ":scheme", "http", ":path", "/headers", "x-b", "2", "host",
                                    "h.example", "x-a", "1", NULL},
              END_STREAM, &o);
  assert_int_equal(o.status, 200);
  assert_non_null(strstr(o.body, "Host: h.example\n"));
  char *b = strstr(o.body, "x-b: 2\n"), *a = strstr(o.body, "x-a: 1\n");
  assert_true(a && b && b < a);
  raw_request(REQ("host", "other.example", NULL), END_STREAM, &o);
  assert_int_equal(o.status, 200);
  assert_non_null(strstr(o.body, "Host: 127.0.0.1\n"));
  assert_null(strstr(o.body, "other.example"));
  long before = served_total();
  raw_request((const char *const[]){":method", "GET", ":scheme", "http", ":path", "/headers", NULL}, END_STREAM, &o);
  assert_true(o.rst || o.status == 400); /* nghttp2 resets it first */
  raw_request(REQ("x-ctl", "a\x01b", NULL), END_STREAM, &o);
  assert_true(o.rst || o.status == 400 || (o.status == 200 && strstr(o.body, "x-ctl") == NULL));
  long ctl_served = o.status == 200; /* nghttp2 may drop the field itself */
  raw_request((const char *const[]){":method", "GET", ":scheme", "http", ":path", "/a\x7f", ":authority", "h", NULL},
              END_STREAM, &o);
  assert_true(o.rst || o.status == 400);
  assert_int_equal(served_total() - before, 2 + ctl_served); /* the /stats calls */
}

static void test_nghttp_client(void **state) {
  (void)state;
  static char out[65536];
  int rc = run(out, sizeof(out), "nghttp -v -n http://127.0.0.1:%d/ 2>&1; nghttp -v https://127.0.0.1:%d/ 2>&1",
               h2c_port, tls_port);
  assert_int_equal(rc, 0);
  assert_non_null(strstr(out, ":status: 200"));
  assert_non_null(strstr(out, "x-backend: b"));
  assert_non_null(strstr(out, "END_STREAM"));
}

/* Request and response bodies stream both ways with flow control: 3 MB up (chunked: no content-length) and
 * back, past every window. */
static void test_bodies_flow(void **state) {
  (void)state;
  char cmd[4096], dir[300];
  snprintf(dir, sizeof(dir), "%s", T.dir);
  snprintf(
      cmd, sizeof(cmd),
      "head -c 3000000 /dev/urandom > %s/up.bin && curl -s --http2-prior-knowledge -T %s/up.bin "
      "http://127.0.0.1:%d/echo -o %s/down.bin && cmp %s/up.bin %s/down.bin && "
      "curl -sk --http2 --data-binary @%s/up.bin -H 'content-type: x/y' https://127.0.0.1:%d/echo | cmp - %s/up.bin"
      " && curl -sk --http2 'https://127.0.0.1:%d/big?n=5000000' | wc -c",
      dir, dir, h2c_port, dir, dir, dir, dir, tls_port, dir, tls_port);
  char out[256];
  assert_int_equal(run(out, sizeof(out), "%s", cmd), 0);
  assert_int_equal(atol(out), 5000000);
}

/* h2load -c10 -m100 -n2000: every answer comes, and a sticky cookie keeps every stream on its server. */
static void test_h2load_sticky(void **state) {
  (void)state;
  char url[128];
  snprintf(url, sizeof(url), "https://127.0.0.1:%d/", tls_port);
  tb_sink s;
  long v = 0;
  CURL *h = curl_easy_init(); /* the cookie b2 answered with */
  char cookie[256] = "";
  for (int i = 0; i < 10 && !cookie[0]; i++) {
    tb_sink body = {.len = 0};
    struct curl_slist *hl = NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, tb_sink_collect);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &s);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, tb_sink_collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    s.len = 0;
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    char *c = strstr(s.data, "set-cookie: srv_id=");
    if (c && strcmp(body.data, "b2\n") == 0) sscanf(c + 12, "%255[^;]", cookie);
    curl_slist_free_all(hl);
  }
  curl_easy_cleanup(h);
  (void)v;
  assert_true(cookie[0] != '\0');
  long before1 = backend_requests(&b1), before2 = backend_requests(&b2);
  static char out[8192];
  assert_int_equal(run(out, sizeof(out), "h2load -c10 -m100 -n2000 -H 'cookie: %s' %s 2>&1", cookie, url), 0);
  assert_non_null(strstr(out, "2000 succeeded, 0 failed, 0 errored"));
  assert_non_null(strstr(out, "status codes: 2000 2xx"));
  assert_int_equal(backend_requests(&b1) - before1, 1);    /* its /stats call */
  assert_int_equal(backend_requests(&b2) - before2, 2001); /* the 2000 streams and its /stats call */
}

/* A stream is retried as an HTTP/1.1 request is: b1 resets /drop?name=b1 without an answer, and the GET goes
 * to b2 (round robin picks b1 for one of every two). */
static void test_retry(void **state) {
  (void)state;
  long before1 = backend_requests(&b1);
  for (int i = 0; i < 4; i++) {
    outcome o;
    raw_request(
        (const char *const[]){":method", "GET", ":scheme", "http", ":path", "/drop?name=b1", ":authority", "h", NULL},
        END_STREAM, &o);
    assert_int_equal(o.status, 200);
    assert_string_equal(o.body, "b2\n");
  }
  assert_true(backend_requests(&b1) - before1 >= 3); /* it was tried (and its /stats calls) */
}

/* The protocol in the metrics and in the access log ($server_protocol). */
static void test_metrics_and_log(void **state) {
  (void)state;
  outcome o;
  raw_request(REQ("x-log", "1", NULL), END_STREAM, &o);
  assert_int_equal(o.status, 200);
  char *m = tb_admin_get(&T, "/metrics");
  assert_non_null(m);
  assert_true(tb_metric(m, "tether_http_requests_total{protocol=\"h2\"}") >= 2000);
  free(m);
  char path[600];
  snprintf(path, sizeof(path), "%s/access.log", T.dir);
  for (int i = 0; i < 30 && !tb_file_contains(path, "\"GET /headers HTTP/2.0\" 200"); i++) usleep(100000);
  assert_true(tb_file_contains(path, "\"GET /headers HTTP/2.0\" 200"));
}

/* ---- tests: h2-to-h1 smuggling (RFC 9113 section 8.2) ---- */

static void refused(const char *const *kv, int flags) {
  long before = served_total();
  outcome o;
  raw_request(kv, flags, &o);
  assert_true(o.rst || o.status == 400 || o.goaway);
  assert_true(o.status == 0 || o.status == 400);
  assert_int_equal(served_total() - before, 2); /* only the two /stats calls */
}

static void test_smuggling_refused(void **state) {
  (void)state;
  refused(REQ("transfer-encoding", "chunked", NULL), END_STREAM);
  refused(REQ("connection", "keep-alive", NULL), END_STREAM);
  refused(REQ("keep-alive", "timeout=5", NULL), END_STREAM);
  refused(REQ("proxy-connection", "keep-alive", NULL), END_STREAM);
  refused(REQ("upgrade", "websocket", NULL), END_STREAM);
  refused(REQ("te", "gzip", NULL), END_STREAM);
  refused(REQ("X-Upper", "1", NULL), END_STREAM);
  refused(REQ("x-crlf", "a\r\nX-Injected: 1", NULL), END_STREAM);
  refused(REQ("x-lf", "a\nb", NULL), END_STREAM);
  refused(REQ("x-sp ace", "1", NULL), END_STREAM);
  refused(REQ("x-name\r\nx-injected", "1", NULL), END_STREAM);
  refused(REQ(":foo", "bar", NULL), END_STREAM);
  refused(REQ(":path", "/again", NULL), END_STREAM);
  refused((const char *const[]){":method", "GET", ":scheme", "http", "x-a", "1", ":path", "/", ":authority", "h", NULL},
          END_STREAM);
  refused((const char *const[]){":method", "GET", ":scheme", "http", ":path", "", ":authority", "h", NULL}, END_STREAM);
  refused((const char *const[]){":method", "GET", ":scheme", "http", ":path", "abc", ":authority", "h", NULL},
          END_STREAM);
  refused((const char *const[]){":method", "GET", ":scheme", "http", ":path", "*", ":authority", "h", NULL},
          END_STREAM);
  refused((const char *const[]){":method", "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET", ":scheme", "http", ":path", "/",
                                ":authority", "h", NULL},
          END_STREAM);
  refused((const char *const[]){":method", "GET", ":scheme", "http", ":path", "/ HTTP/1.1\r\nX: y", ":authority", "h",
                                NULL},
          END_STREAM);
  /* a NUL in a value */
  raw r;
  long before = served_total();
  assert_int_equal(raw_open(&r, h2c_port, NULL, 0), 0);
  uint8_t b[512];
  size_t n = block(b, REQ(NULL));
  n += hp_lit(b + n, 0, "x-nul", 5, "a\0b", 3);
  frame(&r, F_HEADERS, END_HEADERS | END_STREAM, 1, b, n);
  outcome o;
  wait_stream(&r, 1, &o);
  raw_close(&r);
  assert_true(o.rst && o.status == 0);
  assert_int_equal(served_total() - before, 2);
}

/* ---- tests: floods ---- */

/* Rapid Reset (CVE-2023-44487): streams opened and reset at once; over the budget, GOAWAY ENHANCE_YOUR_CALM. */
static void test_rapid_reset(void **state) {
  (void)state;
  raw r;
  assert_int_equal(raw_open(&r, h2c_port, NULL, 0), 0);
  uint8_t b[512];
  size_t n = block(b, (const char *const[]){":method", "GET", ":scheme", "http", ":path", "/delay?ms=2000",
                                            ":authority", "h", NULL});
  static const uint8_t cancel[4] = {0, 0, 0, 8};
  for (uint32_t i = 0; i < 3000; i++) {
    if (frame(&r, F_HEADERS, END_HEADERS | END_STREAM, 2 * i + 1, b, n) < 0) break;
    if (frame(&r, F_RST, 0, 2 * i + 1, cancel, 4) < 0) break;
  }
  outcome o;
  wait_stream(&r, 1u << 30, &o);
  raw_close(&r);
  assert_int_equal(o.goaway, 1 + NGHTTP2_ENHANCE_YOUR_CALM);
}

/* The CONTINUATION flood (2024): a header block that never ends is cut after a few frames. */
static void test_continuation_flood(void **state) {
  (void)state;
  long before = served_total();
  raw r;
  assert_int_equal(raw_open(&r, h2c_port, NULL, 0), 0);
  uint8_t b[512];
  size_t n = block(b, REQ(NULL));
  frame(&r, F_HEADERS, END_STREAM, 1, b, n);
  int sent = 0;
  for (; sent < 10000; sent++) {
    size_t k = hp_lit(b, 0, "x-c", 3, "v", 1);
    if (frame(&r, F_CONT, 0, 1, b, k) < 0) break;
  }
  outcome o;
  wait_stream(&r, 1, &o);
  raw_close(&r);
  assert_true(o.goaway || o.closed);
  assert_int_equal(o.status, 0);
  assert_int_equal(served_total() - before, 2);
}

/* An HPACK bomb: one big field in the dynamic table, referenced again and again (a byte each); past
 * http2_max_header_size the stream is reset (ENHANCE_YOUR_CALM), and the connection goes on. */
static void test_hpack_bomb(void **state) {
  (void)state;
  long before = served_total();
  raw r;
  assert_int_equal(raw_open(&r, h2c_port, NULL, 0), 0);
  static uint8_t b[16384];
  size_t n = block(b, REQ(NULL));
  static char big[4000];
  memset(big, 'a', sizeof(big));
  n += hp_lit(b + n, 0x40, "x-bomb", 6, big, sizeof(big));
  for (int i = 0; i < 1000; i++) b[n++] = 0x80 | 62; /* the dynamic table's newest entry */
  frame(&r, F_HEADERS, END_HEADERS | END_STREAM, 1, b, n);
  outcome o;
  wait_stream(&r, 1, &o);
  assert_int_equal(o.rst, 1 + NGHTTP2_ENHANCE_YOUR_CALM);
  n = block(b, REQ(NULL)); /* the same connection still serves */
  frame(&r, F_HEADERS, END_HEADERS | END_STREAM, 3, b, n);
  wait_stream(&r, 3, &o);
  assert_int_equal(o.status, 200);
  raw_close(&r);
  assert_int_equal(served_total() - before, 3);
}

/* Table-size abuse: a client that allows a 4 GB table gets answers all the same (the server's encoder keeps
 * 4096); a block that grows the server's decoding table past its SETTINGS is a COMPRESSION_ERROR. */
static void test_hpack_table_size(void **state) {
  (void)state;
  raw r;
  const uint32_t huge[2] = {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, 0xffffffffu};
  assert_int_equal(raw_open(&r, h2c_port, huge, 1), 0);
  uint8_t b[512];
  size_t n = block(b, REQ(NULL));
  frame(&r, F_HEADERS, END_HEADERS | END_STREAM, 1, b, n);
  outcome o;
  wait_stream(&r, 1, &o);
  assert_int_equal(o.status, 200);
  raw_close(&r);
  assert_int_equal(raw_open(&r, h2c_port, NULL, 0), 0);
  n = hp_int(b, 0x20, 5, 1u << 20); /* a dynamic table size update to 1 MB */
  n += block(b + n, REQ(NULL));
  frame(&r, F_HEADERS, END_HEADERS | END_STREAM, 1, b, n);
  wait_stream(&r, 1, &o);
  raw_close(&r);
  assert_int_equal(o.goaway, 1 + NGHTTP2_COMPRESSION_ERROR);
}

/* PING, SETTINGS and empty DATA floods: over the budget, GOAWAY ENHANCE_YOUR_CALM (or the connection is cut
 * when its answers pile up unread). */
static void flood(int type) {
  raw r;
  assert_int_equal(raw_open(&r, h2c_port, NULL, 0), 0);
  uint8_t b[512];
  if (type == F_DATA) {
    size_t n = block(
        b, (const char *const[]){":method", "POST", ":scheme", "http", ":path", "/echo", ":authority", "h", NULL});
    frame(&r, F_HEADERS, END_HEADERS, 1, b, n);
  }
  memset(b, 0, 8);
  for (int i = 0; i < 5000; i++)
    if (frame(&r, type, 0, type == F_DATA ? 1 : 0, b, type == F_PING ? 8 : 0) < 0) break;
  outcome o;
  wait_stream(&r, 1u << 30, &o);
  raw_close(&r);
  assert_true(o.goaway == 1 + NGHTTP2_ENHANCE_YOUR_CALM || (o.closed && !o.goaway));
}

static void test_ping_flood(void **state) {
  (void)state;
  flood(F_PING);
}
static void test_settings_flood(void **state) {
  (void)state;
  flood(F_SETTINGS);
}
static void test_empty_data_flood(void **state) {
  (void)state;
  flood(F_DATA);
}

/* Zero-window slowloris: a client that never opens its window cannot hold the connection past send_timeout. */
static void test_zero_window(void **state) {
  (void)state;
  raw r;
  const uint32_t zero[2] = {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 0};
  assert_int_equal(raw_open(&r, lim_port, zero, 1), 0);
  uint8_t b[512];
  size_t n = block(
      b, (const char *const[]){":method", "GET", ":scheme", "http", ":path", "/big?n=300000", ":authority", "h", NULL});
  long long t0 = tb_now_ms();
  frame(&r, F_HEADERS, END_HEADERS | END_STREAM, 1, b, n);
  frm f;
  int got_headers = 0;
  while (next_frame(&r, &f) == 0) {
    if (f.type == F_HEADERS && f.id == 1) got_headers = 1;
    if (f.type == F_SETTINGS && !(f.flags & 1)) frame(&r, F_SETTINGS, 1, 0, NULL, 0);
  }
  long long el = tb_now_ms() - t0;
  raw_close(&r);
  assert_true(got_headers);
  assert_true(el >= 900 && el < 4500);
}

/* http2_recv_timeout: a frame that stops halfway ends the connection (and the connection waits for no less). */
static void test_recv_timeout(void **state) {
  (void)state;
  raw r;
  assert_int_equal(raw_open(&r, lim_port, NULL, 0), 0);
  long long t0 = tb_now_ms();
  assert_int_equal(send_all(r.fd, "\x00\x00\x08\x06", 4), 0); /* a PING's header, cut */
  frm f;
  while (next_frame(&r, &f) == 0)
    if (f.type == F_SETTINGS && !(f.flags & 1)) frame(&r, F_SETTINGS, 1, 0, NULL, 0);
  long long el = tb_now_ms() - t0;
  raw_close(&r);
  assert_true(el >= 900 && el < 4500);
}

/* keepalive_requests 10: the tenth stream is the last; GOAWAY names it, and it is answered. */
static void test_keepalive_requests(void **state) {
  (void)state;
  raw r;
  assert_int_equal(raw_open(&r, lim_port, NULL, 0), 0);
  uint8_t b[512];
  size_t n = block(b, REQ(NULL));
  outcome o;
  for (uint32_t id = 1; id <= 19; id += 2) {
    frame(&r, F_HEADERS, END_HEADERS | END_STREAM, id, b, n);
    wait_stream(&r, id, &o);
    assert_int_equal(o.status, 200);
  }
  assert_int_equal(o.goaway, 1 + NGHTTP2_NO_ERROR); /* with the tenth stream's answer */
  assert_int_equal(o.last, 19);
  frm f;
  int more = 0;
  while (next_frame(&r, &f) == 0) more += f.type == F_HEADERS; /* then the connection ends */
  raw_close(&r);
  assert_int_equal(more, 0);
}

/* http2_max_concurrent_streams 4: a client that opens 8 streams at once gets 4 served, the others refused
 * (and never forwarded). */
static void test_max_concurrent_streams(void **state) {
  (void)state;
  long before = backend_requests(&b1);
  raw r;
  assert_int_equal(raw_open(&r, lim_port, NULL, 0), 0);
  uint8_t b[512];
  size_t n = block(
      b, (const char *const[]){":method", "GET", ":scheme", "http", ":path", "/delay?ms=300", ":authority", "h", NULL});
  for (uint32_t id = 1; id <= 15; id += 2) frame(&r, F_HEADERS, END_HEADERS | END_STREAM, id, b, n);
  int answered = 0, refused = 0;
  frm f;
  while (answered + refused < 8 && next_frame(&r, &f) == 0) {
    answered += f.type == F_DATA && (f.flags & END_STREAM);
    refused += f.type == F_RST;
    if (f.type == F_GOAWAY) break;
  }
  raw_close(&r);
  assert_int_equal(answered, 4);
  assert_int_equal(refused, 4);
  assert_int_equal(backend_requests(&b1) - before, 4 + 1);
}

/* A reload ends HTTP/2 connections gracefully: the stream in progress is answered, then GOAWAY and the end. */
static void test_goaway_on_reload(void **state) {
  (void)state;
  raw r;
  assert_int_equal(raw_open(&r, lim_port, NULL, 0), 0);
  uint8_t b[512];
  size_t n = block(
      b, (const char *const[]){":method", "GET", ":scheme", "http", ":path", "/delay?ms=600", ":authority", "h", NULL});
  frame(&r, F_HEADERS, END_HEADERS | END_STREAM, 1, b, n);
  usleep(200000);
  kill(T2.pid, SIGHUP);
  outcome o;
  wait_stream(&r, 1, &o);
  assert_int_equal(o.status, 200);
  assert_string_equal(o.body, "b1\n");
  frm f;
  int goaway = 0;
  while (next_frame(&r, &f) == 0) goaway |= f.type == F_GOAWAY;
  raw_close(&r);
  assert_true(goaway || o.goaway);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_curl_alpn_h2),
      cmocka_unit_test(test_curl_prior_knowledge),
      cmocka_unit_test(test_response_names),
      cmocka_unit_test(test_upgrade_h2c_ignored),
      cmocka_unit_test(test_cookies_joined),
      cmocka_unit_test(test_head_from_block),
      cmocka_unit_test(test_nghttp_client),
      cmocka_unit_test(test_bodies_flow),
      cmocka_unit_test(test_h2load_sticky),
      cmocka_unit_test(test_metrics_and_log),
      cmocka_unit_test(test_smuggling_refused),
      cmocka_unit_test(test_rapid_reset),
      cmocka_unit_test(test_continuation_flood),
      cmocka_unit_test(test_hpack_bomb),
      cmocka_unit_test(test_hpack_table_size),
      cmocka_unit_test(test_ping_flood),
      cmocka_unit_test(test_settings_flood),
      cmocka_unit_test(test_empty_data_flood),
      cmocka_unit_test(test_zero_window),
      cmocka_unit_test(test_keepalive_requests),
      cmocka_unit_test(test_goaway_on_reload),
      cmocka_unit_test(test_recv_timeout),
      cmocka_unit_test(test_retry),
      cmocka_unit_test(test_max_concurrent_streams),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
