/* The session-loss monitor's classification (persist/monitor.c), driven by real request and response heads
 * read with the balancer's own parser: Express's signed cookie and a rotated secret, several Set-Cookie
 * headers, expected= paths, Flask's cookie, libtether's JWT cookie (re-signed on every save: compared by its
 * jti claim), deletions, hostile and malformed cookies, and cookie dates.
 * Its configuration (session_monitor) through the configuration reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/balancer/persist/monitor.c"
#include "../../src/lib/store/store_impl.h"
#include "../../src/lib/util.h"
#include "config.h"
#include "tether/jwt.h"

#define NOW 1796000000000LL /* 2026-11-29 */

static const tether__h1_limits lim = TETHER__H1_DEFAULT_LIMITS;

static tether__cf_monitor mon(const char *cookie, const char *const *expected) {
  tether__cf_monitor mc;
  memset(&mc, 0, sizeof(mc));
  snprintf(mc.cookie, sizeof(mc.cookie), "%s", cookie);
  for (int i = 0; expected && expected[i]; i++)
    snprintf(mc.expected[mc.nexpected++], sizeof(mc.expected[0]), "%s", expected[i]);
  return mc;
}

/* The outcome of one exchange: the request's Cookie header (NULL: none) on path, and the response's
 * Set-Cookie lines ("" : none), each ending in "\r\n". */
static int classify(const tether__cf_monitor *mc, const char *path, const char *cookie, const char *set_cookies) {
  char req[8192], resp[8192];
  snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: h\r\n%s%s%s\r\n", path, cookie ? "Cookie: " : "",
           cookie ? cookie : "", cookie ? "\r\n" : "");
  snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n%s\r\n", set_cookies);
  tether__h1_msg m, r;
  assert_true(tether__h1_parse_request(req, strlen(req), &lim, &m) > 0);
  const char *q = strchr(path, '?');
  size_t plen = q ? (size_t)(q - path) : strlen(path);
  tether__monitor_req mr;
  tether__monitor_request(mc, &m, path, plen, &mr);
  assert_true(tether__h1_parse_response(resp, strlen(resp), &lim, 0, &r) > 0);
  return tether__monitor_response(mc, &mr, &r, NOW);
}

#define SID "connect.sid"
#define EXPRESS_A "s%3AaZ3-kq_9Hn1x7T0yQwErTyUiOpAsDfGh.Qm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5"
#define EXPRESS_A_ROTATED "s%3AaZ3-kq_9Hn1x7T0yQwErTyUiOpAsDfGh.ZGlmZmVyZW50c2lnbmF0dXJld2l0aGFub3RoZXJrZXk"
#define EXPRESS_B "s%3AbBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB.Qm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5"

static void test_express(void **state) {
  (void)state;
  tether__cf_monitor mc = mon(SID, NULL);
  /* no cookie in, one set: started */
  assert_int_equal(classify(&mc, "/", NULL, "Set-Cookie: " SID "=" EXPRESS_A "; Path=/; HttpOnly\r\n"),
                   TETHER__SESS_STARTED);
  /* other cookies in, but not this one */
  assert_int_equal(classify(&mc, "/", "a=1; connect.sidx=2", "Set-Cookie: " SID "=" EXPRESS_A "; Path=/\r\n"),
                   TETHER__SESS_STARTED);
  /* the same cookie set again (express-session refreshes Expires): kept */
  assert_int_equal(classify(&mc, "/", SID "=" EXPRESS_A, "Set-Cookie: " SID "=" EXPRESS_A "; Path=/\r\n"),
                   TETHER__SESS_KEPT);
  /* no Set-Cookie at all: kept, with or without a cookie */
  assert_int_equal(classify(&mc, "/", SID "=" EXPRESS_A, ""), TETHER__SESS_KEPT);
  assert_int_equal(classify(&mc, "/", NULL, ""), TETHER__SESS_KEPT);
  /* a rotated secret re-signs the same id: kept; encoded or not, it is the same id */
  assert_int_equal(classify(&mc, "/", SID "=" EXPRESS_A, "Set-Cookie: " SID "=" EXPRESS_A_ROTATED "; Path=/\r\n"),
                   TETHER__SESS_KEPT);
  assert_int_equal(
      classify(&mc, "/", SID "=s:aZ3-kq_9Hn1x7T0yQwErTyUiOpAsDfGh.x", "Set-Cookie: " SID "=" EXPRESS_A_ROTATED "\r\n"),
      TETHER__SESS_KEPT);
  /* another id: the server lost the session */
  assert_int_equal(
      classify(&mc, "/", "theme=dark; " SID "=" EXPRESS_A, "Set-Cookie: " SID "=" EXPRESS_B "; Path=/\r\n"),
      TETHER__SESS_REPLACED);
  /* the hashes themselves */
  assert_true(tether__session_id_hash((tether__slice){EXPRESS_A, strlen(EXPRESS_A)}) ==
              tether__session_id_hash((tether__slice){"\"" EXPRESS_A_ROTATED "\"", strlen(EXPRESS_A_ROTATED) + 2}));
  assert_true(tether__session_id_hash((tether__slice){"s:a.x", 5}) == tether__session_id_hash((tether__slice){"a", 1}));
  assert_true(tether__session_id_hash((tether__slice){"s:a.x", 5}) != tether__session_id_hash((tether__slice){"b", 1}));
}

static void test_several_set_cookies(void **state) {
  (void)state;
  tether__cf_monitor mc = mon(SID, NULL);
  /* other cookies around it do not count; the one for this name does */
  assert_int_equal(classify(&mc, "/", SID "=" EXPRESS_A,
                            "Set-Cookie: srv_id=abc; Path=/\r\nSet-Cookie: " SID "=" EXPRESS_B
                            "; Path=/\r\nSet-Cookie: lang=en\r\n"),
                   TETHER__SESS_REPLACED);
  assert_int_equal(classify(&mc, "/", SID "=" EXPRESS_A, "Set-Cookie: srv_id=abc\r\nSet-Cookie: lang=en\r\n"),
                   TETHER__SESS_KEPT);
  /* the last one wins, as in the browser: a deletion then a new id is a replacement */
  assert_int_equal(
      classify(&mc, "/", SID "=" EXPRESS_A, "Set-Cookie: " SID "=; Max-Age=0\r\nSet-Cookie: " SID "=" EXPRESS_B "\r\n"),
      TETHER__SESS_REPLACED);
  /* a new id then the old one again: the client keeps the old one */
  assert_int_equal(classify(&mc, "/", SID "=" EXPRESS_A,
                            "Set-Cookie: " SID "=" EXPRESS_B "\r\nSet-Cookie: " SID "=" EXPRESS_A "\r\n"),
                   TETHER__SESS_KEPT);
  /* a new id then its deletion: the client ends with none */
  assert_int_equal(classify(&mc, "/", SID "=" EXPRESS_A,
                            "Set-Cookie: " SID "=" EXPRESS_B "\r\nSet-Cookie: " SID "=x; Max-Age=0\r\n"),
                   TETHER__SESS_KEPT);
}

static void test_expected_paths(void **state) {
  (void)state;
  static const char *const exp[] = {"/login", "=/logout", NULL};
  tether__cf_monitor mc = mon(SID, exp);
  const char *set_b = "Set-Cookie: " SID "=" EXPRESS_B "; Path=/\r\n";
  /* "/login" is a prefix, as nginx's `location /login` */
  assert_int_equal(classify(&mc, "/login", SID "=" EXPRESS_A, set_b), TETHER__SESS_EXPECTED);
  assert_int_equal(classify(&mc, "/login/sso?next=/", SID "=" EXPRESS_A, set_b), TETHER__SESS_EXPECTED);
  assert_int_equal(classify(&mc, "/loginx", SID "=" EXPRESS_A, set_b), TETHER__SESS_EXPECTED);
  /* "=/logout" is exact */
  assert_int_equal(classify(&mc, "/logout", SID "=" EXPRESS_A, set_b), TETHER__SESS_EXPECTED);
  assert_int_equal(classify(&mc, "/logout?all=1", SID "=" EXPRESS_A, set_b), TETHER__SESS_EXPECTED);
  assert_int_equal(classify(&mc, "/logout/x", SID "=" EXPRESS_A, set_b), TETHER__SESS_REPLACED);
  /* elsewhere a replacement is a loss; case matters, as in nginx */
  assert_int_equal(classify(&mc, "/cart", SID "=" EXPRESS_A, set_b), TETHER__SESS_REPLACED);
  assert_int_equal(classify(&mc, "/LOGIN", SID "=" EXPRESS_A, set_b), TETHER__SESS_REPLACED);
  assert_int_equal(classify(&mc, "/", SID "=" EXPRESS_A, set_b), TETHER__SESS_REPLACED);
  /* a first session on an expected path is still started; the same id there is kept */
  assert_int_equal(classify(&mc, "/login", NULL, set_b), TETHER__SESS_STARTED);
  assert_int_equal(classify(&mc, "/login", SID "=" EXPRESS_B, set_b), TETHER__SESS_KEPT);
}

static void test_flask(void **state) {
  (void)state;
  tether__cf_monitor mc = mon("session", NULL);
  /* flask-session: a random id (uuid4, or token_urlsafe), "ID.SIG" with SESSION_USE_SIGNER; compared whole */
  const char *set1 = "Set-Cookie: session=7b1c9d3e-2f4a-4b6c-8d0e-1f2a3b4c5d6e; Expires=Sat, 05 Dec 2026 "
                     "11:00:00 GMT; HttpOnly; Path=/\r\n";
  assert_int_equal(classify(&mc, "/whoami", NULL, set1), TETHER__SESS_STARTED);
  assert_int_equal(classify(&mc, "/whoami", "session=7b1c9d3e-2f4a-4b6c-8d0e-1f2a3b4c5d6e", set1), TETHER__SESS_KEPT);
  assert_int_equal(classify(&mc, "/whoami", "session=0d5e6f70-0000-4000-8000-000000000000", set1),
                   TETHER__SESS_REPLACED);
  /* signed ids: a new signature is a new value (flask-session cannot read the old one with a new key) */
  assert_int_equal(classify(&mc, "/", "session=Zm9vYmFy.sigA", "Set-Cookie: session=Zm9vYmFy.sigA; Path=/\r\n"),
                   TETHER__SESS_KEPT);
  assert_int_equal(classify(&mc, "/", "session=Zm9vYmFy.sigA", "Set-Cookie: session=Zm9vYmFy.sigB; Path=/\r\n"),
                   TETHER__SESS_REPLACED);
  /* the names are case-sensitive: "Session" is another cookie */
  assert_int_equal(classify(&mc, "/", "Session=abc", "Set-Cookie: session=abc\r\n"), TETHER__SESS_STARTED);
  assert_int_equal(classify(&mc, "/", "session=abc", "Set-Cookie: Session=def\r\n"), TETHER__SESS_KEPT);
}

/* ---- JWT session cookies ---- */

#define TSID "tether.sid"

/* A token of the jwt: store for session sid, its content json, signed with secret: made by libtether's own
 * encoder, as tether-app sets it. */
static char *store_token(const char *secret, const char *sid, const char *json) {
  tether__jwt_codec *c;
  assert_int_equal(tether__jwt_codec_new(&secret, 1, &c), 0);
  int e = 0;
  char *tok = tether__jwt_cookie_encode(c, sid, json, NOW + 3600000, &e);
  assert_non_null(tok);
  tether__jwt_codec_free(c);
  return tok;
}

/* header.payload.sig with payload (JSON text) as given and a signature nobody checks. */
static void forged(const char *payload, char *out, size_t cap) {
  char b64[4400];
  assert_true(strlen(payload) * 4 / 3 + 4 < sizeof(b64));
  tether__base64url_encode((const uint8_t *)payload, strlen(payload), b64);
  snprintf(out, cap, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.%s.c2lnbmF0dXJl", b64);
}

static int classify_values(const tether__cf_monitor *mc, const char *in, const char *set) {
  char cookie[6000], sc[6000];
  snprintf(cookie, sizeof(cookie), "%s=%s", mc->cookie, in);
  snprintf(sc, sizeof(sc), "Set-Cookie: %s=%s; Path=/; HttpOnly\r\n", mc->cookie, set);
  return classify(mc, "/cart", cookie, sc);
}

static void test_jwt(void **state) {
  (void)state;
  tether__cf_monitor mc = mon(TSID, NULL);
  static const char *const sid = "Jq3xv0GQ2m9y1t8wB7pZk4LrC5dN6eHa", *const other = "Zz9yv0GQ2m9y1t8wB7pZk4LrC5dN6eHb";
  /* the store re-signs on every save: other bytes, the same jti; kept */
  char *a1 = store_token("keyboard cat", sid, "{\"visits\":1}");
  char *a2 = store_token("keyboard cat", sid, "{\"visits\":2,\"cart\":[\"item0\"]}");
  char *a_rotated = store_token("a new secret", sid, "{\"visits\":3}");
  char *b = store_token("keyboard cat", other, "{\"visits\":1}");
  assert_string_not_equal(a1, a2);
  assert_int_equal(classify(&mc, "/", NULL, "Set-Cookie: " TSID "=x\r\n"), TETHER__SESS_STARTED);
  assert_int_equal(classify_values(&mc, a1, a2), TETHER__SESS_KEPT);
  assert_int_equal(classify_values(&mc, a2, a_rotated), TETHER__SESS_KEPT);
  /* a new session (an expired or rejected token, an app that lost it) has a new jti */
  assert_int_equal(classify_values(&mc, a2, b), TETHER__SESS_REPLACED);
  /* quoted, as RFC 6265 allows */
  char quoted[4200];
  snprintf(quoted, sizeof(quoted), "\"%s\"", a2);
  assert_int_equal(classify_values(&mc, a1, quoted), TETHER__SESS_KEPT);

  /* OpenID Connect's "sid" when there is no "jti", from a token signed by the public API */
  tether_jwt_signer *sg;
  assert_int_equal(tether_jwt_signer_new("literal:0123456789abcdef0123456789abcdef", "HS256", NULL, &sg), 0);
  char *s1, *s2, *s3;
#define P_S1 "{\"sid\":\"s-1\",\"n\":1}"
#define P_S2 "{\"n\":2,\"sid\":\"s-1\"}"
#define P_S3 "{\"n\":2,\"sid\":\"s-2\"}"
  assert_int_equal(tether_jwt_sign(sg, P_S1, strlen(P_S1), 60, &s1), 0);
  assert_int_equal(tether_jwt_sign(sg, P_S2, strlen(P_S2), 120, &s2), 0);
  assert_int_equal(tether_jwt_sign(sg, P_S3, strlen(P_S3), 120, &s3), 0);
  assert_int_equal(classify_values(&mc, s1, s2), TETHER__SESS_KEPT);
  assert_int_equal(classify_values(&mc, s1, s3), TETHER__SESS_REPLACED);
  tether_jwt_signer_free(sg);

  /* the claim is read from the payload, not checked: a forged signature still names its session */
  char f1[4500], f2[4500];
  forged("{\"jti\":\"J\",\"iat\":1}", f1, sizeof(f1));
  forged("{\"iat\":2,\"sess\":{\"jti\":\"nested\"},\"jti\":\"J\"}", f2, sizeof(f2));
  assert_int_equal(classify_values(&mc, f1, f2), TETHER__SESS_KEPT);
  /* spaces, and brackets, quotes and claim names inside strings and nested values, do not confuse it */
  forged(" { \"sess\" : {\"a\":\"}\\\"{\",\"jti\":[\"K\"]} ,\n\"jti\" : \"J\" , \"x\":[1,{\"y\":2}], \"n\":-1.5e3 } ",
         f2, sizeof(f2));
  assert_int_equal(classify_values(&mc, f1, f2), TETHER__SESS_KEPT);
  /* jti wins over sid; a nested jti is not the token's */
  forged("{\"sid\":\"K\",\"jti\":\"J\"}", f2, sizeof(f2));
  assert_int_equal(classify_values(&mc, f1, f2), TETHER__SESS_KEPT);
  forged("{\"sid\":\"K\",\"iat\":3}", f2, sizeof(f2));
  assert_int_equal(classify_values(&mc, f1, f2), TETHER__SESS_REPLACED);
  forged("{\"sess\":{\"jti\":\"J\"}}", f2, sizeof(f2));
  assert_int_equal(classify_values(&mc, f1, f2), TETHER__SESS_REPLACED);
  /* without a usable claim the token is compared whole: a re-signing is then a replacement */
  static const char *const no_id[] = {
      "{\"iat\":1}",                    /* no id */
      "{\"jti\":7}",                    /* not a string */
      "{\"jti\":\"\"}",                 /* empty */
      "{\"jti\":\"J\",\"jti\":\"K\"}",  /* duplicate: which one would the app read? */
      "[\"jti\",\"J\"]",                /* not an object */
      "{\"jti\":\"J\"",                 /* not JSON */
      "{\"jti\":\"J\"} x",              /* text after the object */
      "{\"a\":{\"b\":1},\"jti\":\"J\"", /* unterminated */
      "{\"jti\":\"J\",}",               /* a trailing comma */
  };
  for (size_t i = 0; i < sizeof(no_id) / sizeof(no_id[0]); i++) {
    char t1[4500];
    forged(no_id[i], t1, sizeof(t1));
    uint64_t h;
    tether__slice v = {t1, strlen(t1)};
    if (jwt_session_id_hash(v, &h)) fail_msg("an id read from %s", no_id[i]);
    assert_int_equal(classify_values(&mc, t1, t1), TETHER__SESS_KEPT);
    assert_int_equal(classify_values(&mc, t1, f1), TETHER__SESS_REPLACED);
  }
  /* not compact JWS: compared whole, no crash */
  static const char *const shapes[] = {"eyJ",
                                       "eyJhbGciOiJub25lIn0.eyJqdGkiOiJKIn0",
                                       "eyJ.eyJqdGkiOiJKIn0.",
                                       "eyJhbGciOiJub25lIn0..c2ln",
                                       "eyJhbGciOiJub25lIn0.eyJqdGkiOiJKIn0.c2ln.x",
                                       "eyJhbGciOiJub25lIn0.eyJqdGkiOiJKIn0=.c2ln",
                                       "eyJhbGciOiJub25lIn0.!!!.c2ln"};
  for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
    uint64_t h;
    tether__slice v = {shapes[i], strlen(shapes[i])};
    if (jwt_session_id_hash(v, &h)) fail_msg("an id read from %s", shapes[i]);
  }
  /* a payload over TETHER__MONITOR_JWT_MAX bytes is compared whole */
  char big[TETHER__MONITOR_JWT_MAX + 64], t_big[4500];
  memset(big, 'x', sizeof(big));
  static const char head[] = "{\"jti\":\"J\",\"p\":\"";
  memcpy(big, head, sizeof(head) - 1);
  memcpy(big + sizeof(big) - 3, "\"}", 3);
  forged(big, t_big, sizeof(t_big));
  assert_int_equal(classify_values(&mc, f1, t_big), TETHER__SESS_REPLACED);
  free(a1), free(a2), free(a_rotated), free(b), free(s1), free(s2), free(s3);
}

static void test_deletions(void **state) {
  (void)state;
  tether__cf_monitor mc = mon(SID, NULL);
  static const char *const deletions[] = {
      "Set-Cookie: " SID "=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT\r\n",            /* express's clearCookie */
      "Set-Cookie: " SID "=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/\r\n", /* werkzeug */
      "Set-Cookie: " SID "=deleted; expires=Thursday, 01-Jan-70 00:00:01 GMT; Max-Age=0\r\n", /* PHP */
      "Set-Cookie: " SID "=" EXPRESS_B "; Max-Age=-1\r\n",
      "Set-Cookie: " SID "=" EXPRESS_B "; max-age=00\r\n",
      "Set-Cookie: " SID "=" EXPRESS_B "; Expires=Sun, 06 Nov 1994 08:49:37 GMT\r\n",
      "Set-Cookie: " SID "=\r\n",
      "Set-Cookie: " SID "=\"\"; Path=/\r\n",
      "Set-Cookie: " SID "=  ;Path=/\r\n",
  };
  for (size_t i = 0; i < sizeof(deletions) / sizeof(deletions[0]); i++) {
    if (classify(&mc, "/logout", SID "=" EXPRESS_A, deletions[i]) != TETHER__SESS_KEPT) fail_msg("%s", deletions[i]);
    if (classify(&mc, "/", NULL, deletions[i]) != TETHER__SESS_KEPT) fail_msg("%s", deletions[i]);
  }
  /* not deletions: a future date, Max-Age wins over Expires, invalid attributes are ignored */
  static const char *const sets[] = {
      "Set-Cookie: " SID "=" EXPRESS_B "; Expires=Sat, 05 Dec 2037 10:00:00 GMT\r\n",
      "Set-Cookie: " SID "=" EXPRESS_B "; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=3600\r\n",
      "Set-Cookie: " SID "=" EXPRESS_B "; Max-Age=abc\r\n",
      "Set-Cookie: " SID "=" EXPRESS_B "; Max-Age=\r\n",
      "Set-Cookie: " SID "=" EXPRESS_B "; Expires=yesterday\r\n",
      "Set-Cookie: " SID "=" EXPRESS_B "; Expires\r\n",
  };
  for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++)
    if (classify(&mc, "/", SID "=" EXPRESS_A, sets[i]) != TETHER__SESS_REPLACED) fail_msg("%s", sets[i]);
}

static void test_hostile(void **state) {
  (void)state;
  tether__cf_monitor mc = mon(SID, NULL);
  const char *set_b = "Set-Cookie: " SID "=" EXPRESS_B "\r\n";
  /* an empty cookie is no cookie: the session is started */
  assert_int_equal(classify(&mc, "/", SID "=", set_b), TETHER__SESS_STARTED);
  assert_int_equal(classify(&mc, "/", SID "=\"\"", set_b), TETHER__SESS_STARTED);
  /* the first cookie of the name counts, as the application reads it */
  assert_int_equal(classify(&mc, "/", SID "=" EXPRESS_B "; " SID "=" EXPRESS_A, set_b), TETHER__SESS_KEPT);
  /* odd signed shapes: no '.', a '.' right after the prefix, only the prefix; compared whole, no crash */
  assert_int_equal(classify(&mc, "/", SID "=s:", "Set-Cookie: " SID "=s:\r\n"), TETHER__SESS_KEPT);
  assert_int_equal(classify(&mc, "/", SID "=s%3A.", "Set-Cookie: " SID "=s%3A.x\r\n"), TETHER__SESS_REPLACED);
  assert_int_equal(classify(&mc, "/", SID "=s%3", "Set-Cookie: " SID "=s%3\r\n"), TETHER__SESS_KEPT);
  assert_int_equal(classify(&mc, "/", SID "=s%3Aabc", "Set-Cookie: " SID "=s%3Aabd\r\n"), TETHER__SESS_REPLACED);
  /* a Set-Cookie without '=' is not a cookie (RFC 6265 section 5.2); nor a name that only starts the same */
  assert_int_equal(classify(&mc, "/", SID "=" EXPRESS_A, "Set-Cookie: " SID "\r\nSet-Cookie: ;;;\r\n"),
                   TETHER__SESS_KEPT);
  assert_int_equal(classify(&mc, "/", SID "=" EXPRESS_A, "Set-Cookie: " SID "x=1\r\nSet-Cookie: x" SID "=1\r\n"),
                   TETHER__SESS_KEPT);
  assert_int_equal(classify(&mc, "/", SID "=" EXPRESS_A, "Set-Cookie: " SID " = " EXPRESS_B " ;;; ; =; x\r\n"),
                   TETHER__SESS_REPLACED);
  /* a long value */
  char big[6000], cookie[6100];
  memset(big, 'A', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  snprintf(cookie, sizeof(cookie), SID "=%s", big);
  assert_int_equal(classify(&mc, "/", cookie, set_b), TETHER__SESS_REPLACED);
  /* no monitor: always kept */
  tether__cf_monitor off = mon("", NULL);
  assert_int_equal(classify(&off, "/", NULL, set_b), TETHER__SESS_KEPT);
}

static void test_cookie_dates(void **state) {
  (void)state;
  static const struct {
    const char *text;
    int64_t ms; /* -1: refused */
  } cases[] = {
      {"Thu, 01 Jan 1970 00:00:00 GMT", 0},
      {"Thu, 01 Jan 1970 00:00:01 GMT", 1000},
      {"Sun, 06 Nov 1994 08:49:37 GMT", 784111777000},
      {"Sunday, 06-Nov-94 08:49:37 GMT", 784111777000},
      {"Sun Nov  6 08:49:37 1994", 784111777000},
      {"6 november 1994 8:49:37", 784111777000},
      {"Sat, 29 Feb 2020 23:59:59 GMT", 1583020799000},
      {"Wed, 31 Dec 2069 00:00:00 GMT", 3155673600000},
      {"01 Jan 1601 00:00:00", -11644473600000},
      {"Fri, 31 Dec 9999 23:59:59 GMT", 253402300799000},
      {"Sat, 29 Feb 2021 00:00:00 GMT", -1},
      {"Thu, 01 Jan 1600 00:00:00 GMT", -1},
      {"Thu, 01 Jan 1970 24:00:00 GMT", -1},
      {"Thu, 01 Jan 1970 00:60:00 GMT", -1},
      {"Thu, 32 Jan 1970 00:00:00 GMT", -1},
      {"Thu, 01 Foo 1970 00:00:00 GMT", -1},
      {"Thu, 01 Jan 00:00:00 GMT", -1},
      {"", -1},
      {"123:45:67", -1},
      {"1 jan 19700 00:00:00", -1},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    int64_t ms = -1;
    int rc = tether__cookie_date(cases[i].text, strlen(cases[i].text), &ms);
    if (cases[i].ms == -1 && rc != -1) fail_msg("\"%s\" accepted as %lld", cases[i].text, (long long)ms);
    if (cases[i].ms != -1 && (rc != 0 || ms != cases[i].ms))
      fail_msg("\"%s\": rc %d, %lld, wanted %lld", cases[i].text, rc, (long long)ms, (long long)cases[i].ms);
  }
}

/* ---- the directive ---- */

static tether__config cf;
static char err[4096];

static int parse(const char *upstream_lines) {
  char text[2048];
  snprintf(text, sizeof(text),
           "listen 8080;\nupstream b {\n server 127.0.0.1:1;\n%s}\nlocation / { proxy_pass http://b; }\n",
           upstream_lines);
  tether__config_release(&cf); /* the previous one's lists */
  return tether__config_parse("t.conf", text, strlen(text), &cf, err, sizeof(err));
}

static void test_directive(void **state) {
  (void)state;
  assert_int_equal(parse(" session_monitor connect.sid expected=/login,=/logout;\n"), 0);
  assert_string_equal(cf.upstreams[0].monitor.cookie, "connect.sid");
  assert_int_equal(cf.upstreams[0].monitor.nexpected, 2);
  assert_string_equal(cf.upstreams[0].monitor.expected[0], "/login");
  assert_string_equal(cf.upstreams[0].monitor.expected[1], "=/logout");
  assert_int_equal(cf.upstreams[0].monitor.line, 4);
  assert_int_equal(parse(" session_monitor session;\n sticky cookie srv_id;\n"), 0);
  assert_int_equal(cf.upstreams[0].monitor.nexpected, 0);
  assert_int_equal(parse(""), 0);
  assert_string_equal(cf.upstreams[0].monitor.cookie, "");
  static const struct {
    const char *lines;
    const char *want;
  } bad[] = {
      {" session_monitor;\n", "t.conf:4: \"session_monitor\" takes a cookie name"},
      {" session_monitor a b;\n", "t.conf:4: \"session_monitor\" takes a cookie name"},
      {" session_monitor a expected=/x extra;\n", "t.conf:4: \"session_monitor\" takes a cookie name"},
      {" session_monitor \"a b\";\n", "t.conf:4: session_monitor: cookie name \"a b\" is not a token"},
      {" session_monitor a expected=;\n", "t.conf:4: session_monitor: expected= takes paths"},
      {" session_monitor a expected=login;\n", "got \"login\""},
      {" session_monitor a expected=/a,,/b;\n", "got \"\""},
      {" session_monitor a expected=/a?x;\n", "got \"/a?x\""},
      {" session_monitor a expected==;\n", "got \"=\""},
      {" session_monitor a expected=/1,/2,/3,/4,/5,/6,/7,/8,/9,/10,/11,/12,/13,/14,/15,/16,/17;\n", "at most 16"},
      {" session_monitor a;\n session_monitor b;\n", "t.conf:5: \"session_monitor\" is duplicate (line 4)"},
      {" session_monitor a { }\n", "\"session_monitor\" takes no block"},
      {" sticky cookie srv_id;\n session_monitor srv_id;\n", "t.conf:5: session_monitor watches the application's"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    if (parse(bad[i].lines) != -1) fail_msg("accepted: %s", bad[i].lines);
    if (strstr(err, bad[i].want) == NULL) fail_msg("%s: wanted \"%s\" in:\n%s", bad[i].lines, bad[i].want, err);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_express),
      cmocka_unit_test(test_several_set_cookies),
      cmocka_unit_test(test_expected_paths),
      cmocka_unit_test(test_flask),
      cmocka_unit_test(test_deletions),
      cmocka_unit_test(test_hostile),
      cmocka_unit_test(test_cookie_dates),
      cmocka_unit_test(test_directive),
      cmocka_unit_test(test_jwt),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
