/* The balancer's HTTP/1.1 parser: valid messages, every smuggling and limit case, chunked framing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/balancer/http1.c"

static const tether__h1_limits lim = TETHER__H1_DEFAULT_LIMITS;

static int req(const char *s, tether__h1_msg *m) { return tether__h1_parse_request(s, strlen(s), &lim, m); }
static int resp(const char *s, int head, tether__h1_msg *m) {
  return tether__h1_parse_response(s, strlen(s), &lim, head, m);
}

static void test_simple_get(void **state) {
  (void)state;
  tether__h1_msg m;
  const char *s = "GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nUser-Agent:  curl/7  \r\n\r\n";
  assert_int_equal(req(s, &m), (int)strlen(s));
  assert_true(tether__h1_token_eq(m.method, "GET"));
  assert_int_equal(m.target.n, 6);
  assert_memory_equal(m.target.p, "/a?b=c", 6);
  assert_int_equal(m.version_minor, 1);
  assert_int_equal(m.nheaders, 2);
  assert_int_equal(m.headers[1].value.n, 6); /* trimmed */
  assert_true(m.keep_alive);
  assert_int_equal(m.framing, TETHER__H1_NO_BODY);
  assert_memory_equal(m.host.p, "example.com", 11);
}

static void test_incremental(void **state) {
  (void)state;
  const char *s = "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
  size_t head = strlen(s) - 5;
  tether__h1_msg m;
  for (size_t n = 0; n < head; n++) assert_int_equal(tether__h1_parse_request(s, n, &lim, &m), 0);
  assert_int_equal(tether__h1_parse_request(s, strlen(s), &lim, &m), (int)head);
  assert_int_equal(m.framing, TETHER__H1_LENGTH);
  assert_int_equal(m.content_length, 5);
}

static void test_lf_only_and_leading_crlf(void **state) {
  (void)state;
  tether__h1_msg m;
  assert_true(req("GET / HTTP/1.1\nHost: h\n\n", &m) > 0);
  assert_true(req("\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", &m) > 0);
  assert_true(tether__h1_token_eq(m.method, "GET"));
}

static void test_keep_alive_rules(void **state) {
  (void)state;
  tether__h1_msg m;
  assert_true(req("GET / HTTP/1.0\r\n\r\n", &m) > 0);
  assert_false(m.keep_alive);
  assert_true(req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &m) > 0);
  assert_true(m.keep_alive);
  assert_true(req("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n", &m) > 0);
  assert_false(m.keep_alive);
  assert_true(req("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", &m) > 0);
  assert_true(m.upgrade);
  assert_true(req("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", &m) > 0);
  assert_true(m.expect_continue);
}

static void test_refused(void **state) {
  (void)state;
  tether__h1_msg m;
  static const struct {
    const char *in;
    int status;
  } cases[] = {
      {"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", -400},
      {"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", -400},
      {"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", -400},
      {"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\n", -400},
      {"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\n", -400},
      {"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", -400},
      {"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n", -400},
      {"GET / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", -400},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n", -400},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", -400},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", -400},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", -501},
      {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", -400},
      {"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", -400}, /* obs-fold */
      {"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", -400},    /* bare CR */
      {"GET / HTTP/1.1\r\nHost: h\r\nX\r: a\r\n\r\n", -400},     /* bare CR in a name */
      {"GET / HTTP/1.1\r\nHost: h\r\nX: \ra\r\n\r\n", -400},     /* bare CR before a value */
      {"GET / HTTP/1.1\r\nHost: h\r\nX: a \r\r\n\r\n", -400},    /* bare CR after a value */
      {"GET / HTTP/1.1\r\nHost: h\r\nX:\r\r\n\r\n", -400},       /* bare CR as the value */
      {"GET / HTTP/1.1\r\nHost: h\r\n\r\r\n\r\n", -400},         /* bare CR as a line */
      {"GET / HTTP/1.1\r\nHost: h\r\nX : a\r\n\r\n", -400},      /* space before colon */
      {"GET / HTTP/1.1\r\nHost: h\r\nX\x01Y: a\r\n\r\n", -400},  /* control in name */
      {"GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n", -400},   /* DEL in value */
      {"GET / HTTP/1.1\r\nHost: h\r\n: a\r\n\r\n", -400},        /* empty name */
      {"GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", -400},
      {"GET / HTTP/1.1\r\n\r\n", -400},                       /* no Host */
      {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", -400}, /* two Hosts */
      {"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", -400},
      {"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", -400},  /* bad method */
      {"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", -400}, /* double space */
      {"GET / HTTP/2.0\r\nHost: h\r\n\r\n", -400},
      {"GET / HTTP/1.10\r\nHost: h\r\n\r\n", -400},
      {"GET / http/1.1\r\nHost: h\r\n\r\n", -400},
      {"GET /\r\n\r\n", -400},                     /* HTTP/0.9 */
      {"GET x HTTP/1.1\r\nHost: h\r\n\r\n", -400}, /* target form */
      {"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n", -400},
      {"GET * HTTP/1.1\r\nHost: h\r\n\r\n", -400},
      {"GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n", -400},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    int rc = req(cases[i].in, &m);
    if (rc != cases[i].status) fail_msg("case %zu: %d, expected %d: %s", i, rc, cases[i].status, cases[i].in);
  }
  assert_true(req("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", &m) > 0);
  assert_true(req("GET http://h/x HTTP/1.1\r\nHost: h\r\n\r\n", &m) > 0);
  assert_true(req("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", &m) > 0);
  assert_int_equal(req("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &m), -501);
}

/* Transfer-Encoding values: the verdict of tether__h1_parse_request, then what nginx 1.22.1 (return 200)
 * and HAProxy 2.6.12 (in front of a backend; "fwd": it forwarded the request with that TE) answered to
 * the same POST with a "0" chunk on loopback. Tether is stricter than HAProxy about empty list elements,
 * and answers 400 rather than nginx's 501 to malformed lists and to chunked not last (RFC 9112 6.3). */
static void test_transfer_encoding(void **state) {
  (void)state;
  static const struct {
    const char *te; /* one or more header values, separated by '|' for several lines */
    int status;     /* 0: accepted as chunked */
  } cases[] = {
      {"chunked", 0},            /* nginx 200, haproxy fwd */
      {"Chunked", 0},            /* nginx 200, haproxy fwd */
      {"CHUNKED", 0},            /* nginx 200, haproxy fwd */
      {" chunked\t", 0},         /* nginx 501 (it trims no HTAB), haproxy fwd "chunked" */
      {"chunked x", -400},       /* nginx 501, haproxy 400 */
      {"chunked chunked", -400}, /* nginx 501, haproxy 400 */
      {"chunked;", -400},        /* nginx 501, haproxy 400 */
      {"chunked;foo", -400},     /* nginx 501, haproxy 400 */
      {"chunked;q=1", -400},     /* nginx 501, haproxy 400 */
      {"chunked ; q=1", -400},   /* nginx 501, haproxy 400 */
      {"chunked;q=\"1\"", -400},
      {"gzip, chunked", -501},     /* nginx 501, haproxy 422 */
      {"gzip;q=1, chunked", -501}, /* nginx 501, haproxy 422 */
      {"gzip ; level = \"a\\\"b\" , chunked", -501},
      {"gzip|chunked", -501},      /* two lines, one list: nginx 400 (duplicate header), haproxy 422 */
      {"x-custom, chunked", -501}, /* nginx 501, haproxy 422 */
      {"chunked, gzip", -400},     /* nginx 501, haproxy 400 */
      {"chunked|gzip", -400},      /* nginx 400, haproxy 400 */
      {"chunked, chunked", -400},  /* nginx 501, haproxy 400 */
      {"chunked|chunked", -400},   /* nginx 400, haproxy 400 */
      {"chunked|Chunked", -400},
      {"gzip", -400},          /* nginx 501, haproxy 400 */
      {"deflate", -400},       /* nginx 501, haproxy 400 */
      {"xchunked", -501},      /* nginx 501, haproxy 400 */
      {"identity", -501},      /* nginx 501, haproxy 400 */
      {"chunked,", -400},      /* nginx 501, haproxy fwd "chunked," as is: the desync we refuse */
      {", chunked", -400},     /* nginx 501, haproxy 422 */
      {"gzip,,chunked", -400}, /* nginx 501, haproxy 422 */
      {"", -400},              /* nginx 501, haproxy 400 */
      {"\"chunked\"", -400},   /* nginx 501, haproxy 400 */
      {"chunked\x0b", -400},   /* nginx 501, haproxy 400 */
      {"chu nked", -400},      /* nginx 501, haproxy 400 */
      {"chunked;a=\"unterminated", -400},
      {"chunked;a=", -400}, /* nginx 501, haproxy 400 */
      {"chunked;=b", -400},
      {"gzip;a=b;c=\"d\", chunked", -501},
      {"\xe2\x80\x8b"
       "chunked",
       -400}, /* a zero-width space before the name */
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char buf[512], *w = buf;
    w += sprintf(w, "POST / HTTP/1.1\r\nHost: h\r\n");
    const char *v = cases[i].te;
    for (;;) {
      const char *bar = strchr(v, '|');
      size_t n = bar ? (size_t)(bar - v) : strlen(v);
      w += sprintf(w, "Transfer-Encoding: %.*s\r\n", (int)n, v);
      if (!bar) break;
      v = bar + 1;
    }
    strcpy(w, "\r\n");
    tether__h1_msg m;
    int rc = req(buf, &m);
    int want = cases[i].status ? cases[i].status : (int)strlen(buf);
    if (rc != want) fail_msg("TE case %zu (%s): %d, expected %d", i, cases[i].te, rc, want);
    if (rc > 0) assert_int_equal(m.framing, TETHER__H1_CHUNKED);
  }
}

static void test_targets(void **state) {
  (void)state;
  static const struct {
    const char *line;             /* method and target */
    const char *path, *authority; /* NULL path: 400 */
  } cases[] = {
      {"GET /a?b", "/a?b", "h"},
      {"GET http://example.com/api/users?x=1", "/api/users?x=1", "example.com"},
      {"GET HTTP://Example.com:8080/x", "/x", "Example.com:8080"},
      {"GET https://h", "/", "h"},
      {"GET hTtPs://h/", "/", "h"},
      {"GET http://10.0.0.1:80/a", "/a", "10.0.0.1:80"},
      {"GET http://[::1]:8080/a", "/a", "[::1]:8080"},
      {"GET http://[v1.fe80::a+en1]/", "/", "[v1.fe80::a+en1]"},
      {"GET http://a-b_c~d!$&'()*+,;=/", "/", "a-b_c~d!$&'()*+,;="},
      {"OPTIONS *", "*", "h"},
      {"GET http:///api/users", NULL, NULL},
      {"GET http://", NULL, NULL},
      {"GET http://:80/", NULL, NULL},
      {"GET http://u@h/", NULL, NULL},
      {"GET http://u:p@h/", NULL, NULL},
      {"GET http://h@/", NULL, NULL},
      {"GET http://h:/", NULL, NULL},
      {"GET http://h:x/", NULL, NULL},
      {"GET http://h:65536/", NULL, NULL},
      {"GET http://h:000080/", NULL, NULL},
      {"GET http://h%41/", NULL, NULL},
      {"GET http://h\\x/", NULL, NULL},
      {"GET http://[::1/", NULL, NULL},
      {"GET http://[]/", NULL, NULL},
      {"GET http://h?x=1", NULL, NULL},
      {"GET http:/h/", NULL, NULL},
      {"GET http:h/", NULL, NULL},
      {"GET ftp://h/", NULL, NULL},
      {"GET httpx://h/", NULL, NULL},
      {"GET //h/", "//h/", "h"},
      {"GET h:80", NULL, NULL},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char buf[512];
    snprintf(buf, sizeof(buf), "%s HTTP/1.1\r\nHost: h\r\n\r\n", cases[i].line);
    tether__h1_msg m;
    int rc = req(buf, &m);
    if (cases[i].path == NULL) {
      if (rc != -400) fail_msg("target case %zu (%s): %d, expected -400", i, cases[i].line, rc);
      continue;
    }
    if (rc <= 0) fail_msg("target case %zu (%s): %d", i, cases[i].line, rc);
    if (m.path.n != strlen(cases[i].path) || memcmp(m.path.p, cases[i].path, m.path.n) != 0)
      fail_msg("target case %zu: path %.*s", i, (int)m.path.n, m.path.p);
    if (m.authority.n != strlen(cases[i].authority) || memcmp(m.authority.p, cases[i].authority, m.authority.n) != 0)
      fail_msg("target case %zu: authority %.*s", i, (int)m.authority.n, m.authority.p);
  }
  tether__h1_msg m;
  assert_true(req("GET / HTTP/1.0\r\n\r\n", &m) > 0);
  assert_null(m.authority.p);
  assert_true(req("GET http://a/b HTTP/1.0\r\n\r\n", &m) > 0);
  assert_memory_equal(m.authority.p, "a", 1);
}

static void test_response_te(void **state) {
  (void)state;
  tether__h1_msg m;
  assert_true(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 0, &m) > 0);
  assert_int_equal(m.framing, TETHER__H1_CHUNKED);
  assert_true(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 0, &m) > 0);
  assert_int_equal(m.framing, TETHER__H1_CHUNKED);
  assert_true(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 0, &m) > 0);
  assert_int_equal(m.framing, TETHER__H1_UNTIL_CLOSE);
  assert_false(m.keep_alive);
  assert_true(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 0, &m) > 0);
  assert_int_equal(m.framing, TETHER__H1_UNTIL_CLOSE);
  assert_true(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: x-custom;a=1\r\n\r\n", 0, &m) > 0);
  assert_int_equal(m.framing, TETHER__H1_UNTIL_CLOSE);
  static const char *bad[] = {"chunked x", "chunked;", "chunked;q=1", "chunked, chunked",
                              "chunked,",  "",         "\"chunked\""};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char buf[256];
    snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\nTransfer-Encoding: %s\r\n\r\n", bad[i]);
    if (resp(buf, 0, &m) != -502) fail_msg("response TE case %zu (%s) accepted", i, bad[i]);
  }
}

static void test_limits(void **state) {
  (void)state;
  tether__h1_msg m;
  tether__h1_limits small = {.max_head = 200, .max_uri = 50, .max_headers = 3};
  char buf[1024];
  snprintf(buf, sizeof(buf), "GET /%060d HTTP/1.1\r\nHost: h\r\n\r\n", 0);
  assert_int_equal(tether__h1_parse_request(buf, strlen(buf), &small, &m), -414);
  /* an unfinished request line that is already too long */
  memset(buf, 'a', 200);
  memcpy(buf, "GET /", 5);
  assert_int_equal(tether__h1_parse_request(buf, 100, &small, &m), -414);
  /* an unfinished head past max_head */
  snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: h\r\nX: %0250d", 0);
  assert_int_equal(tether__h1_parse_request(buf, strlen(buf), &small, &m), -431);
  const char *many = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
  assert_int_equal(tether__h1_parse_request(many, strlen(many), &small, &m), -431);
}

static void test_pipelined(void **state) {
  (void)state;
  const char *s = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nokGET /3 "
                  "HTTP/1.1\r\nHost: h\r\n\r\n";
  size_t off = 0, len = strlen(s);
  const char *targets[] = {"/1", "/2", "/3"};
  for (int k = 0; k < 3; k++) {
    tether__h1_msg m;
    int n = tether__h1_parse_request(s + off, len - off, &lim, &m);
    assert_true(n > 0);
    assert_memory_equal(m.target.p, targets[k], 2);
    off += (size_t)n;
    tether__h1_body b;
    tether__h1_body_init(&b, &m);
    off += (size_t)tether__h1_body_feed(&b, s + off, len - off);
    assert_true(b.done);
  }
  assert_int_equal(off, len);
}

static int64_t feed_all(tether__h1_body *b, const char *s, size_t n, int bytewise) {
  if (!bytewise) return tether__h1_body_feed(b, s, n);
  int64_t total = 0;
  for (size_t i = 0; i < n && !b->done; i++) {
    int64_t r = tether__h1_body_feed(b, s + i, 1);
    if (r < 0) return r;
    total += r;
  }
  return total;
}

static void test_chunked(void **state) {
  (void)state;
  tether__h1_msg m = {.framing = TETHER__H1_CHUNKED};
  const char *good =
      "5\r\nhello\r\n1a;ext=1;q=\"x\"\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nTrailer: v\r\nT2: w\r\n\r\nNEXT";
  for (int bytewise = 0; bytewise < 2; bytewise++) {
    tether__h1_body b;
    tether__h1_body_init(&b, &m);
    int64_t n = feed_all(&b, good, strlen(good), bytewise);
    assert_int_equal(n, (int64_t)strlen(good) - 4);
    assert_true(b.done);
    assert_int_equal(b.total, 31);
  }
  static const char *bad[] = {
      "x\r\n",                   /* not hex */
      "\r\n",                    /* empty size */
      "5 \r\nhello\r\n",         /* space after size */
      "5\nhello\r\n",            /* LF without CR */
      "5\r\nhelloX\r\n",         /* data longer than the size */
      "fffffffffffffffffff\r\n", /* overflow */
      "-1\r\n",
      "0\r\nBad Trailer: x\r\n\r\n", /* space in trailer name */
      "0\r\n\r\r\n",
      "3\r\nabc\r\n0\r\n :x\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    tether__h1_body b;
    tether__h1_body_init(&b, &m);
    int64_t n = tether__h1_body_feed(&b, bad[i], strlen(bad[i]));
    if (n != -400) fail_msg("bad chunked case %zu accepted (%lld)", i, (long long)n);
  }
}

static void test_responses(void **state) {
  (void)state;
  tether__h1_msg m;
  assert_true(resp("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", 0, &m) > 0);
  assert_int_equal(m.status, 200);
  assert_int_equal(m.framing, TETHER__H1_LENGTH);
  assert_true(resp("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", 1, &m) > 0);
  assert_int_equal(m.framing, TETHER__H1_NO_BODY); /* HEAD */
  assert_true(resp("HTTP/1.1 204 No Content\r\n\r\n", 0, &m) > 0);
  assert_int_equal(m.framing, TETHER__H1_NO_BODY);
  assert_true(resp("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", 0, &m) > 0);
  assert_int_equal(m.framing, TETHER__H1_NO_BODY);
  assert_true(resp("HTTP/1.1 100 Continue\r\n\r\n", 0, &m) > 0);
  assert_int_equal(m.framing, TETHER__H1_NO_BODY);
  assert_true(resp("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 0, &m) > 0);
  assert_true(m.upgrade);
  assert_true(resp("HTTP/1.1 200 OK\r\n\r\n", 0, &m) > 0);
  assert_int_equal(m.framing, TETHER__H1_UNTIL_CLOSE);
  assert_false(m.keep_alive);
  assert_true(resp("HTTP/1.1 200\r\nTransfer-Encoding: chunked\r\n\r\n", 0, &m) > 0);
  assert_int_equal(m.framing, TETHER__H1_CHUNKED);
  assert_true(resp("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", 0, &m) > 0);
  assert_false(m.keep_alive);
  assert_int_equal(resp("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 0, &m), -502);
  assert_int_equal(resp("HTTP/1.1 2000 OK\r\n\r\n", 0, &m), -502);
  assert_int_equal(resp("HTTP/1.1 20 OK\r\n\r\n", 0, &m), -502);
  assert_int_equal(resp("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", 0, &m), -502);
  assert_int_equal(resp("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 0, &m), -502);
  assert_int_equal(resp("ICY 200 OK\r\n\r\n", 0, &m), -502);
}

/* Case-insensitive equality: letters in either case, every other byte exactly (bytes 0x20 apart that are not
 * a letter's two cases stay unequal). */
static void test_token_eq(void **state) {
  (void)state;
  struct {
    const char *s, *lit;
    int eq;
  } cases[] = {{"Content-Length", "content-length", 1},
               {"CONTENT-LENGTH", "content-length", 1},
               {"content-length", "Content-Length", 1},
               {"content\\length", "content|length", 0},
               {"content\rlength", "content-length", 0},
               {"a^b", "a~b", 0},
               {"a~b", "a^b", 0},
               {"a@b", "a`b", 0},
               {"a[b", "a{b", 0},
               {"a]b", "a}b", 0},
               {"chunked", "chunkeD", 1},
               {"chunked", "chunke", 0},
               {"x", "y", 0},
               {"", "", 1},
               {"\x01", "!", 0}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    tether__slice sl = {cases[i].s, strlen(cases[i].s)};
    assert_int_equal(tether__h1_token_eq(sl, cases[i].lit), cases[i].eq);
  }
  for (int a = 0; a < 256; a++) /* every pair of single bytes against the plain definition */
    for (int b = 1; b < 256; b++) {
      char sa = (char)a, lit[2] = {(char)b, 0};
      int la = a >= 'A' && a <= 'Z' ? a + 32 : a, lb = b >= 'A' && b <= 'Z' ? b + 32 : b;
      assert_int_equal(tether__h1_token_eq((tether__slice){&sa, 1}, lit), la == lb);
    }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_simple_get),
      cmocka_unit_test(test_incremental),
      cmocka_unit_test(test_lf_only_and_leading_crlf),
      cmocka_unit_test(test_keep_alive_rules),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_pipelined),
      cmocka_unit_test(test_chunked),
      cmocka_unit_test(test_responses),
      cmocka_unit_test(test_transfer_encoding),
      cmocka_unit_test(test_targets),
      cmocka_unit_test(test_response_te),
      cmocka_unit_test(test_token_eq),
  };
  return cmocka_run_group_tests_name("http1", tests, NULL, NULL);
}
