/* The balancer as a trustworthy edge, against real processes on loopback: what a client may and may not
 * make a server believe. Claim headers are the balancer's alone in every location; proxy_set_header does
 * what nginx does; hop-by-hop headers stop at the balancer both ways; only WebSocket upgrades pass; a
 * trusted proxy's X-Forwarded-Proto is kept, anyone else's replaced; a pooled server connection with
 * stray bytes is never reused; a status line without a reason phrase is forwarded; access log lines stay
 * well formed whatever the client sends; a trickled body cannot hold a connection forever.
 * (TB_TETHER_BIN=path runs the same tests against another build.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "balancer.h"
#include "sign_json.h"
#include "tether/jwt.h"

#define SECRET "edge-tests-secret-of-at-least-32-bytes!"

static tb_backend b1;
static tb_tether T;

static int setup(void **state) {
  (void)state;
  tb_curl_init();
  setenv("TETHER_EDGE_SECRET", SECRET, 1);
  if (tb_backend_start(&b1, "b1", 0) < 0) return -1;
  tb_tether_init(&T, 1);
  tb_tether_write_conf(&T,
                       "client_body_timeout 10s;\n"
                       "client_body_time 1s;\n"
                       "set_real_ip_from 127.0.0.2;\n"
                       "access_log %s/access.log json;\n"
                       "upstream app {\n  server %s max_fails=0;\n  keepalive 8;\n}\n"
                       "location / { proxy_pass http://app; }\n"
                       "location /headers/api {\n"
                       "  auth_jwt \"api\";\n"
                       "  auth_jwt_key env:TETHER_EDGE_SECRET HS256;\n"
                       "  auth_jwt_claim_header userId X-User-Id;\n"
                       "  auth_jwt_claim_header role X-Role;\n"
                       "  proxy_pass http://app;\n"
                       "}\n"
                       "location /headers/open { auth_jwt off; proxy_pass http://app; }\n"
                       "location /api/ {\n"
                       "  auth_jwt \"api\";\n"
                       "  auth_jwt_key env:TETHER_EDGE_SECRET HS256;\n"
                       "  proxy_pass http://app;\n"
                       "}\n"
                       "location /admin { return 403; }\n"
                       "location /headers/set {\n"
                       "  proxy_set_header X-Real-IP $remote_addr;\n"
                       "  proxy_set_header X-Drop \"\";\n"
                       "  proxy_set_header X-Combo \"$scheme://$host$request_uri\";\n"
                       "  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
                       "  proxy_set_header X-Empty $http_x_absent;\n"
                       "  proxy_pass http://app;\n"
                       "}\n",
                       T.dir, b1.addr);
  return tb_tether_run(&T);
}

static int teardown(void **state) {
  (void)state;
  int st = tb_tether_stop(&T, 15000);
  int san = tb_log_has_sanitizer_report(T.log);
  tb_tether_cleanup(&T);
  tb_backend_cleanup(&b1);
  if (st != 0 || san) {
    fprintf(stderr, "tether exited with %d%s\n", st, san ? " and a sanitizer report" : "");
    return -1;
  }
  return 0;
}

/* Whether the backend's /headers answer holds the line "Name: value" (value NULL: any value). */
static int saw_header(const char *body, const char *name, const char *value) {
  size_t nl = strlen(name);
  for (const char *p = body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
    if (strncasecmp(p, name, nl) != 0 || p[nl] != ':') continue;
    if (value == NULL) return 1;
    const char *v = p + nl + 1;
    while (*v == ' ') v++;
    size_t vl = strcspn(v, "\n");
    if (vl == strlen(value) && memcmp(v, value, vl) == 0) return 1;
  }
  return 0;
}

static char *token(json_t *payload) {
  tether_jwt_signer *sg;
  assert_int_equal(tether_jwt_signer_new("env:TETHER_EDGE_SECRET", "HS256", NULL, &sg), 0);
  char *tok = NULL;
  assert_int_equal(tt_sign_json(sg, payload, 3600, &tok), 0);
  json_decref(payload);
  tether_jwt_signer_free(sg);
  return tok;
}

/* Finding 1: a client's own claim headers reached the server wherever no auth_jwt applied. */
static void test_claim_headers_everywhere(void **state) {
  (void)state;
  const char *spoof[] = {"X-User-Id: admin", "x-role: superuser", NULL};
  const char *paths[] = {"/headers", "/headers/open", "/headers/set"};
  for (size_t i = 0; i < 3; i++) {
    tb_resp r;
    assert_int_equal(tb_request(NULL, "GET", T.port, paths[i], NULL, 0, spoof, &r), 200);
    if (saw_header(r.body, "X-User-Id", NULL) || saw_header(r.body, "X-Role", NULL))
      fprintf(stderr, "%s forwarded a client's claim header:\n%s", paths[i], r.body);
    assert_false(saw_header(r.body, "X-User-Id", NULL));
    assert_false(saw_header(r.body, "X-Role", NULL));
    tb_resp_free(&r);
  }
  /* where auth applies, the header says what the token says, and only that */
  char *tok = token(json_pack("{s:s,s:s}", "userId", "u42", "role", "user"));
  char auth[2048];
  snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
  const char *h[] = {auth, "X-User-Id: admin", "X-Role: superuser", NULL};
  tb_resp r;
  assert_int_equal(tb_request(NULL, "GET", T.port, "/headers/api", NULL, 0, h, &r), 200);
  assert_true(saw_header(r.body, "X-User-Id", "u42"));
  assert_true(saw_header(r.body, "X-Role", "user"));
  assert_false(saw_header(r.body, "X-User-Id", "admin"));
  assert_false(saw_header(r.body, "X-Role", "superuser"));
  tb_resp_free(&r);
  free(tok);
}

/* Finding 14: a claim a header cannot carry was silently changed ("ad\tmin" became "admin"). */
static void test_claim_with_control_characters(void **state) {
  (void)state;
  const char *bad[] = {"ad\tmin", "a\r\nX-Injected: 1", "nul\x01"};
  for (size_t i = 0; i < 3; i++) {
    char *tok = token(json_pack("{s:s,s:s}", "userId", bad[i], "role", "user"));
    char auth[2048];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
    const char *h[] = {auth, NULL};
    tb_resp r;
    long st = tb_request(NULL, "GET", T.port, "/headers/api", NULL, 0, h, &r);
    if (st != 401) fprintf(stderr, "claim %zu: status %ld\n%s", i, st, r.body ? r.body : "");
    assert_int_equal(st, 401);
    assert_non_null(strstr(r.head, "invalid_token"));
    tb_resp_free(&r);
    free(tok);
  }
  char *m = tb_admin_get(&T, "/metrics");
  assert_true(tb_metric(m, "tether_jwt_total{result=\"claim_header\"}") >= 3);
  free(m);
}

/* Finding 14: two Authorization headers: the first was verified and both were forwarded. */
static void test_two_authorization_headers(void **state) {
  (void)state;
  char *tok = token(json_pack("{s:s}", "userId", "u1"));
  char auth[2048];
  snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
  const char *h[] = {auth, "Authorization: Basic YWRtaW46YWRtaW4=", NULL};
  const char *paths[] = {"/headers/api", "/headers"};
  for (size_t i = 0; i < 2; i++) {
    tb_resp r;
    long st = tb_request(NULL, "GET", T.port, paths[i], NULL, 0, h, &r);
    assert_int_equal(st, 400);
    tb_resp_free(&r);
  }
  free(tok);
}

/* proxy_set_header: replaced, removed, computed; an empty result sends nothing (nginx). */
static void test_proxy_set_header(void **state) {
  (void)state;
  const char *h[] = {"X-Drop: secret", "X-Real-IP: 6.6.6.6", "X-Forwarded-For: 192.0.2.1", NULL};
  tb_resp r;
  assert_int_equal(tb_request(NULL, "GET", T.port, "/headers/set?a=1", NULL, 0, h, &r), 200);
  assert_false(saw_header(r.body, "X-Drop", NULL));
  assert_true(saw_header(r.body, "X-Real-IP", "127.0.0.1"));
  char combo[128];
  snprintf(combo, sizeof(combo), "http://127.0.0.1/headers/set?a=1");
  if (!saw_header(r.body, "X-Combo", combo)) fprintf(stderr, "%s", r.body);
  assert_true(saw_header(r.body, "X-Combo", combo));
  assert_true(saw_header(r.body, "X-Forwarded-For", "192.0.2.1, 127.0.0.1"));
  assert_false(saw_header(r.body, "X-Empty", NULL));
  tb_resp_free(&r);
  /* directives Tether cannot honour are refused with file:line, never accepted and ignored */
  char conf[600], out[600];
  snprintf(conf, sizeof(conf), "%s/refused.conf", T.dir);
  snprintf(out, sizeof(out), "%s/refused.out", T.dir);
  FILE *f = fopen(conf, "w");
  fprintf(f, "listen 127.0.0.1:1;\n"                       /* 1 */
             "upstream app { server 127.0.0.1:2; }\n"      /* 2 */
             "location / {\n"                              /* 3 */
             "  proxy_pass http://app;\n"                  /* 4 */
             "  proxy_set_header Content-Length 5;\n"      /* 5 */
             "  proxy_set_header Connection keep-alive;\n" /* 6 */
             "  proxy_set_header X-A $no_such_variable;\n" /* 7 */
             "  proxy_http_version 1.0;\n"                 /* 8 */
             "  proxy_set_header Connection \"\";\n"       /* 9: the keep-alive recipe: fine */
             "}\n");
  fclose(f);
  const char *args[] = {"-t", "-c", conf, NULL};
  assert_int_equal(tb_tether_cmd(out, args), 1);
  int lines[] = {5, 6, 7, 8};
  for (size_t i = 0; i < 4; i++) {
    char where[700];
    snprintf(where, sizeof(where), "%s:%d: ", conf, lines[i]);
    if (!tb_file_contains(out, where)) tt_system("cat '%s' >&2", out);
    assert_true(tb_file_contains(out, where));
  }
  char where[700];
  snprintf(where, sizeof(where), "%s:9: ", conf);
  assert_false(tb_file_contains(out, where));
}

/* Finding 10: hop-by-hop headers, those named by Connection, and h2c upgrades stop at the balancer. */
static void test_hop_by_hop(void **state) {
  (void)state;
  tb_raw r;
  int closed;
  const char *req = "GET /headers HTTP/1.1\r\nHost: x\r\nConnection: X-Secret-Hop, Upgrade, HTTP2-Settings\r\n"
                    "X-Secret-Hop: 1\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nKeep-Alive: 300\r\n"
                    "TE: trailers\r\nX-Kept: yes\r\nConnection: close\r\n\r\n";
  assert_int_equal(tb_raw_exchange(T.port, req, strlen(req), &r, &closed), 0);
  assert_int_equal(r.status, 200);
  char *body = strndup(r.body, r.body_len);
  if (saw_header(body, "X-Secret-Hop", NULL) || saw_header(body, "Upgrade", NULL)) fprintf(stderr, "%s", body);
  assert_false(saw_header(body, "X-Secret-Hop", NULL));
  assert_false(saw_header(body, "Upgrade", NULL));
  assert_false(saw_header(body, "HTTP2-Settings", NULL));
  assert_false(saw_header(body, "Keep-Alive", NULL));
  assert_false(saw_header(body, "TE", NULL));
  assert_true(saw_header(body, "X-Kept", "yes"));
  free(body);
  tb_raw_free(&r);
  /* the usual Connection value, keep-alive and close only: a field named close is hop-by-hop all the same */
  const char *ka = "GET /headers HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive , close\r\nClose: 1\r\n"
                   "Keep: yes\r\n\r\n";
  assert_int_equal(tb_raw_exchange(T.port, ka, strlen(ka), &r, &closed), 0);
  assert_int_equal(r.status, 200);
  body = strndup(r.body, r.body_len);
  assert_false(saw_header(body, "Close", NULL));
  assert_true(saw_header(body, "Keep", "yes"));
  free(body);
  tb_raw_free(&r);
  /* an HTTP/1.0 "upgrade" is no upgrade, nor is anything but websocket */
  const char *req10 = "GET /ws HTTP/1.0\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
  assert_int_equal(tb_raw_exchange(T.port, req10, strlen(req10), &r, &closed), 0);
  assert_int_equal(r.status, 400); /* the backend says "no upgrade" */
  tb_raw_free(&r);
  const char *h2c = "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
  assert_int_equal(tb_raw_exchange(T.port, h2c, strlen(h2c), &r, &closed), 0);
  assert_int_equal(r.status, 400);
  tb_raw_free(&r);
  /* the other way: the server's hop-by-hop headers do not reach the client */
  tb_resp cr;
  assert_int_equal(tb_get(NULL, T.port, "/bad?kind=hop", &cr), 200);
  assert_non_null(strstr(cr.head, "X-Kept: yes"));
  assert_null(strstr(cr.head, "X-Secret-Hop"));
  assert_null(strstr(cr.head, "Keep-Alive"));
  assert_null(strstr(cr.head, "Proxy-Connection"));
  assert_null(strstr(cr.head, "Upgrade"));
  tb_resp_free(&cr);
}

/* Finding 6: X-Forwarded-Proto is a trusted proxy's to say, and nobody else's. */
static void test_forwarded_proto(void **state) {
  (void)state;
  const char *h[] = {"X-Forwarded-Proto: https", NULL};
  tb_resp r;
  /* 127.0.0.2 is a set_real_ip_from peer (a TLS terminator in front) */
  assert_int_equal(tb_get_from("127.0.0.2", T.port, "/headers", h, &r), 200);
  assert_true(saw_header(r.body, "X-Forwarded-Proto", "https"));
  tb_resp_free(&r);
  assert_int_equal(tb_get_from("127.0.0.3", T.port, "/headers", h, &r), 200);
  assert_true(saw_header(r.body, "X-Forwarded-Proto", "http"));
  assert_false(saw_header(r.body, "X-Forwarded-Proto", "https"));
  tb_resp_free(&r);
  const char *junk[] = {"X-Forwarded-Proto: javascript", NULL};
  assert_int_equal(tb_get_from("127.0.0.2", T.port, "/headers", junk, &r), 200);
  assert_true(saw_header(r.body, "X-Forwarded-Proto", "http"));
  tb_resp_free(&r);
}

/* Finding 11: a second, unrequested response on a kept-alive server connection never answers a later
 * request, whoever sends it. */
static void test_stray_response(void **state) {
  (void)state;
  int smuggled = 0;
  for (int i = 0; i < 10; i++) {
    tb_resp r;
    assert_int_equal(tb_get(NULL, T.port, "/bad?kind=stray", &r), 200);
    assert_string_equal(r.body, "ok\n");
    tb_resp_free(&r);
    tt_sleep_ms(60); /* the stray response is in by now */
    assert_int_equal(tb_get(NULL, T.port, "/conn", &r), 200);
    smuggled += strstr(r.body, "smuggled") != NULL;
    tb_resp_free(&r);
  }
  /* pipelined: the next request is dispatched from inside the first one's response */
  for (int i = 0; i < 10; i++) {
    tb_conn c;
    assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
    assert_int_equal(tb_send_str(c.fd, "GET /bad?kind=stray HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    tb_raw r;
    assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
    tb_raw_free(&r);
    tt_sleep_ms(60);
    assert_int_equal(tb_send_str(c.fd, "GET /conn HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
    smuggled += r.body_len >= 8 && memmem(r.body, r.body_len, "smuggled", 8) != NULL;
    tb_raw_free(&r);
    tb_conn_close(&c);
  }
  /* the stray response comes while a request from another client waits to be read: both are ready when
   * the balancer looks (it is stopped meanwhile), and the request comes first */
  for (int i = 0; i < 3; i++) {
    tb_conn b;
    assert_int_equal(tb_conn_open(&b, T.port, 5000), 0);
    tb_raw r;
    assert_int_equal(tb_send_str(b.fd, "GET /conn HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_int_equal(tb_conn_read_response(&b, 0, &r), 0);
    tb_raw_free(&r);
    tb_resp a;
    assert_int_equal(tb_get(NULL, T.port, "/bad?kind=stray&ms=400", &a), 200);
    tb_resp_free(&a);
    kill(T.pid, SIGSTOP);
    tt_sleep_ms(100);
    assert_int_equal(tb_send_str(b.fd, "GET /conn HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    tt_sleep_ms(500); /* the stray response is in the server connection's socket now */
    kill(T.pid, SIGCONT);
    assert_int_equal(tb_conn_read_response(&b, 0, &r), 0);
    if (r.body_len >= 8 && memmem(r.body, r.body_len, "smuggled", 8) != NULL) smuggled++;
    tb_raw_free(&r);
    tb_conn_close(&b);
  }
  assert_int_equal(smuggled, 0);
}

/* Finding 12: "HTTP/1.1 200\r\n" (RFC 9112 allows an empty reason phrase). */
static void test_empty_reason_phrase(void **state) {
  (void)state;
  const char *kinds[] = {"noreason", "noreason_nosp"};
  for (int i = 0; i < 2; i++) {
    char path[64];
    snprintf(path, sizeof(path), "/bad?kind=%s", kinds[i]);
    tb_resp r;
    assert_int_equal(tb_get(NULL, T.port, path, &r), 200);
    assert_string_equal(r.body, "ok\n");
    assert_true(strncmp(r.head, "HTTP/1.1 200 \r\n", 15) == 0);
    tb_resp_free(&r);
  }
}

/* Finding 7: every access log line is valid JSON whatever the client sends, and names its server. */
static void test_access_log_escaped(void **state) {
  (void)state;
  const char *targets[] = {"/log\"quote", "/log\\back", "/log\xff\xfe", "/log%22}{\"x\":1"};
  for (size_t i = 0; i < 4; i++) {
    char req[256];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.2.3.4\r\nConnection: close\r\n\r\n", targets[i]);
    tb_raw r;
    int closed;
    assert_int_equal(tb_raw_exchange(T.port, req, (size_t)n, &r, &closed), 0);
    tb_raw_free(&r);
  }
  char path[600];
  snprintf(path, sizeof(path), "%s/access.log", T.dir);
  int lines = 0, logged = 0;
  for (int tries = 0; tries < 40 && logged < 4; tries++) {
    tt_sleep_ms(100);
    FILE *f = fopen(path, "r");
    if (f == NULL) continue;
    char line[4096];
    lines = logged = 0;
    while (fgets(line, sizeof(line), f)) {
      lines++;
      json_error_t e;
      json_t *j = json_loads(line, 0, &e);
      if (j == NULL) fprintf(stderr, "not JSON: %s", line);
      assert_non_null(j);
      const char *uri = json_string_value(json_object_get(j, "uri"));
      const char *server = json_string_value(json_object_get(j, "server"));
      assert_non_null(uri);
      assert_non_null(server);
      if (strncmp(uri, "/log", 4) == 0) {
        logged++;
        assert_string_equal(server, b1.addr);
      }
      json_decref(j);
    }
    fclose(f);
  }
  assert_int_equal(logged, 4);
  assert_true(lines >= 4);
}

/* A body trickled a byte at a time cannot hold a connection longer than client_body_time (1 s here),
 * though every byte comes well within client_body_timeout (10 s). */
static void test_trickled_body(void **state) {
  (void)state;
  tb_conn c;
  assert_int_equal(tb_conn_open(&c, T.port, 5000), 0);
  assert_int_equal(tb_send_str(c.fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"), 0);
  long long t0 = tb_now_ms();
  int got = 0;
  tb_raw r;
  for (int i = 0; i < 30 && !got; i++) { /* at most 30 bytes over 6 s */
    if (tb_send_str(c.fd, "x") < 0) break;
    tt_sleep_ms(200);
    struct timeval tv = {0, 1000};
    setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char b;
    if (recv(c.fd, &b, 1, MSG_PEEK) == 1) got = 1;
  }
  long long took = tb_now_ms() - t0;
  assert_true(got);
  struct timeval tv = {2, 0};
  setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  assert_int_equal(tb_conn_read_response(&c, 0, &r), 0);
  assert_int_equal(r.status, 408);
  tb_raw_free(&r);
  tb_conn_close(&c);
  if (took < 900 || took > 2500) fprintf(stderr, "408 after %lld ms\n", took);
  assert_true(took >= 900 && took <= 2500);
}

/* Findings 2 and 8: locations match the path as nginx normalizes it, whatever spelling the client uses;
 * the server still gets the target as sent. */
static void test_normalized_routing(void **state) {
  (void)state;
  const char *around[] = {"/%61pi/me",        "//api/me",        "/./api/me",          "/x/../api/me",
                          "/%2e/api/me",      "/api%2Fme",       "/api/./me",          "///api//me",
                          "/api/x/%2e%2e/me", "http://h/api/me", "HTTP://h:80//api/me"};
  for (size_t i = 0; i < sizeof(around) / sizeof(around[0]); i++) {
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", around[i]);
    tb_raw r;
    int closed;
    assert_int_equal(tb_raw_exchange(T.port, req, (size_t)n, &r, &closed), 0);
    if (r.status != 401) fprintf(stderr, "%s: status %d, want 401 from location /api/\n", around[i], r.status);
    assert_int_equal(r.status, 401);
    tb_raw_free(&r);
  }
  const char *admin[] = {"/admin", "/%61dmin", "//admin/x", "/x/../admin", "http://h/admin", "/./admin"};
  for (size_t i = 0; i < sizeof(admin) / sizeof(admin[0]); i++) {
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", admin[i]);
    tb_raw r;
    int closed;
    assert_int_equal(tb_raw_exchange(T.port, req, (size_t)n, &r, &closed), 0);
    if (r.status != 403) fprintf(stderr, "%s: status %d, want 403\n", admin[i], r.status);
    assert_int_equal(r.status, 403);
    tb_raw_free(&r);
  }
  /* refused: climbing above /, NUL, bad escapes, absolute-form without a host or with userinfo */
  const char *bad[] = {"/../api/me",           "/%2e%2e/x",       "/a/%00", "/a%zz", "/a%4", "http:///api/users",
                       "http://user@h/api/me", "http://h:99999/x"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: h\r\n\r\n", bad[i]);
    tb_raw r;
    int closed = 0;
    assert_int_equal(tb_raw_exchange(T.port, req, (size_t)n, &r, &closed), 0);
    if (r.status != 400 || !closed) fprintf(stderr, "%s: status %d closed %d\n", bad[i], r.status, closed);
    assert_int_equal(r.status, 400);
    assert_true(closed);
    tb_raw_free(&r);
  }
  /* the server receives the target as the client wrote it (nginx's proxy_pass without a URI) */
  const char *req = "GET /headers/x/../open/%61?q=%2e HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
  tb_raw r;
  int closed;
  assert_int_equal(tb_raw_exchange(T.port, req, strlen(req), &r, &closed), 0);
  assert_int_equal(r.status, 200);
  assert_true(r.body_len > 41 && strncmp(r.body, "GET /headers/x/../open/%61?q=%2e HTTP/1.1", 41) == 0);
  tb_raw_free(&r);
}

/* Finding 9: a Transfer-Encoding that is not exactly a final "chunked" is refused, never forwarded. */
static void test_transfer_encoding_refused(void **state) {
  (void)state;
  const char *tes[] = {"chunked x",   "chunked chunked",  "chunked;",    "chunked;foo", "gzip, chunked",
                       "chunked;q=1", "chunked, chunked", "\"chunked\"", "chunked,"};
  for (size_t i = 0; i < sizeof(tes) / sizeof(tes[0]); i++) {
    char req[256];
    int n = snprintf(req, sizeof(req),
                     "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: %s\r\n\r\n5\r\nhello\r\n0\r\n\r\n", tes[i]);
    tb_raw r;
    int closed = 0;
    assert_int_equal(tb_raw_exchange(T.port, req, (size_t)n, &r, &closed), 0);
    if ((r.status != 400 && r.status != 501) || !closed)
      fprintf(stderr, "TE \"%s\": status %d closed %d\n", tes[i], r.status, closed);
    assert_true(r.status == 400 || r.status == 501);
    assert_true(closed);
    tb_raw_free(&r);
  }
}

/* Finding 14: literal secrets were echoed in errors, and weak ones accepted. */
static void test_weak_secret_refused(void **state) {
  (void)state;
  char conf[600], out[600];
  snprintf(conf, sizeof(conf), "%s/weak.conf", T.dir);
  snprintf(out, sizeof(out), "%s/weak.out", T.dir);
  const char *body = "listen 127.0.0.1:1;\n"
                     "upstream app { server 127.0.0.1:2; }\n"
                     "location / {\n"
                     "  auth_jwt api;\n"
                     "  auth_jwt_key literal:Zq9xK2vBpL HS256%s;\n"
                     "  proxy_pass http://app;\n"
                     "}\n";
  FILE *f = fopen(conf, "w");
  fprintf(f, body, "");
  fclose(f);
  const char *args[] = {"-t", "-c", conf, NULL};
  assert_int_equal(tb_tether_cmd(out, args), 1);
  char where[700];
  snprintf(where, sizeof(where), "%s:4: ", conf);
  if (!tb_file_contains(out, where)) tt_system("cat '%s' >&2", out);
  assert_true(tb_file_contains(out, where));
  assert_false(tb_file_contains(out, "Zq9xK2vBpL"));
  f = fopen(conf, "w");
  fprintf(f, body, " weak_secret_ok");
  fclose(f);
  assert_int_equal(tb_tether_cmd(out, args), 0);
  assert_true(tb_file_contains(out, "configuration OK"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_claim_headers_everywhere),
      cmocka_unit_test(test_claim_with_control_characters),
      cmocka_unit_test(test_two_authorization_headers),
      cmocka_unit_test(test_proxy_set_header),
      cmocka_unit_test(test_hop_by_hop),
      cmocka_unit_test(test_forwarded_proto),
      cmocka_unit_test(test_stray_response),
      cmocka_unit_test(test_empty_reason_phrase),
      cmocka_unit_test(test_access_log_escaped),
      cmocka_unit_test(test_trickled_body),
      cmocka_unit_test(test_normalized_routing),
      cmocka_unit_test(test_transfer_encoding_refused),
      cmocka_unit_test(test_weak_secret_refused),
  };
  return cmocka_run_group_tests_name("balancer edge", tests, setup, teardown);
}
