/* Interop with npm jsonwebtoken 9 (the seed's login() and authenticate), through a Node co-process
 * (tests/interop/jwt/peer.js) on pipes:
 *   a) a token signed exactly as login() does (jwt.sign({ userId, role }, JWT_SECRET, { expiresIn: '1h' }))
 *      verifies in libtether, claims and all;
 *   b) a token libtether signs passes jwt.verify in Node, and is byte-for-byte the token jsonwebtoken signs
 *      for the same payload, secret and second;
 *   c) tokens jsonwebtoken refuses (expired, not yet valid, wrong secret, tampered, audience, issuer,
 *      subject, malformed, unsigned, algorithm confusion) libtether refuses with the matching reason;
 *   d) RS256, PS256, ES256 and ES384 with PEM keys made in the test (Node's crypto for RSA, in SPKI/PKCS#8
 *      and PKCS#1 forms; the openssl CLI for EC), signed on either side and verified on the other;
 *   e) tether-app (src/app/main.c) with --jwt-secret: the token of its POST /login?token=1 passes the
 *      seed's jwt.verify(token, secret) with the same claims (and is jwt.sign's token byte for byte), and a
 *      token from the seed's login() is accepted by its GET /api/me. */
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#ifdef TETHER_APP_BIN
#include <curl/curl.h>
#endif

#include "procs.h"
#include "sign_json.h"
#include "tether/jwt.h"
#include "util.h"

#ifndef TETHER_INTEROP_JWT_DIR
#error "TETHER_INTEROP_JWT_DIR must name tests/interop/jwt"
#endif

#define JWT_SECRET "interop-jwt-secret-of-the-seed-0123456789"
#define PEER_TIMEOUT_MS 20000

static struct {
  int have_node;
  pid_t pid;
  int to_peer, from_peer;
  tether__buf in; /* bytes read from the peer, not yet consumed */
  char *dir;      /* key files */
} P;

/* ---- the Node peer ---- */

static int peer_start(void) {
  int to[2], from[2];
  if (pipe(to) < 0 || pipe(from) < 0) return -1;
  P.pid = fork();
  if (P.pid < 0) return -1;
  if (P.pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(to[0], 0);
    dup2(from[1], 1);
    close(to[0]), close(to[1]), close(from[0]), close(from[1]);
    execlp("node", "node", TETHER_INTEROP_JWT_DIR "/peer.js", (char *)NULL);
    _exit(127);
  }
  close(to[0]);
  close(from[1]);
  P.to_peer = to[1];
  P.from_peer = from[0];
  return 0;
}

static void peer_stop(void) {
  if (P.pid <= 0) return;
  close(P.to_peer);
  close(P.from_peer);
  tt_kill(P.pid, SIGTERM);
  P.pid = 0;
  tether__buf_free(&P.in);
}

/* Sends one request (stolen) and reads one answer line, within PEER_TIMEOUT_MS. */
static json_t *peer_call(json_t *req) {
  char *line = json_dumps(req, JSON_COMPACT);
  json_decref(req);
  size_t n = strlen(line);
  line = tether__realloc(line, n + 2);
  line[n++] = '\n';
  for (size_t off = 0; off < n;) {
    ssize_t w = write(P.to_peer, line + off, n - off);
    if (w <= 0) {
      free(line);
      fail_msg("cannot write to the Node peer");
    }
    off += (size_t)w;
  }
  free(line);
  uint64_t deadline = tether__mono_us() + PEER_TIMEOUT_MS * 1000ull;
  char *nl;
  while ((nl = P.in.len ? memchr(P.in.data, '\n', P.in.len) : NULL) == NULL) {
    uint64_t now = tether__mono_us();
    if (now >= deadline) fail_msg("the Node peer did not answer in %d ms", PEER_TIMEOUT_MS);
    struct pollfd pfd = {.fd = P.from_peer, .events = POLLIN};
    if (poll(&pfd, 1, (int)((deadline - now) / 1000) + 1) <= 0) continue;
    char buf[8192];
    ssize_t r = read(P.from_peer, buf, sizeof(buf));
    if (r <= 0) fail_msg("the Node peer closed its output");
    tether__buf_append(&P.in, buf, (size_t)r);
  }
  size_t len = (size_t)(nl - P.in.data);
  json_error_t err;
  json_t *ans = json_loadb(P.in.data, len, 0, &err);
  memmove(P.in.data, nl + 1, P.in.len - len - 1);
  P.in.len -= len + 1;
  if (ans == NULL) fail_msg("the Node peer's answer is not JSON: %s", err.text);
  const char *e = json_string_value(json_object_get(ans, "error"));
  if (e != NULL) fail_msg("the Node peer failed: %s", e);
  return ans;
}

/* jwt.sign(payload, key, options): a malloc'd token. payload and options are JSON texts. */
static char *node_sign(const char *payload, const char *key, const char *options) {
  json_t *req = json_pack("{s:s,s:o,s:s,s:o}", "op", "sign", "payload", json_loads(payload, 0, NULL), "key", key,
                          "options", json_loads(options ? options : "{}", 0, NULL));
  json_t *ans = peer_call(req);
  char *tok = tether__strdup(json_string_value(json_object_get(ans, "token")));
  json_decref(ans);
  return tok;
}

/* jwt.verify(token, key, options): the answer {ok, payload | name, message}. */
static json_t *node_verify(const char *token, const char *key, const char *options) {
  json_t *req = json_pack("{s:s,s:s,s:s,s:o}", "op", "verify", "token", token, "key", key, "options",
                          json_loads(options ? options : "{}", 0, NULL));
  return peer_call(req);
}

/* jsonwebtoken's error message -> libtether's reason. */
static const char *reason_of(const char *message) {
  static const struct {
    const char *prefix, *reason;
  } map[] = {{"jwt expired", "expired"},
             {"jwt not active", "not_yet_valid"},
             {"invalid signature", "bad_signature"},
             {"jwt malformed", "malformed"},
             {"jwt signature is required", "unsigned"},
             {"invalid algorithm", "alg_mismatch"},
             {"jwt audience invalid", "bad_audience"},
             {"jwt issuer invalid", "bad_issuer"},
             {"jwt subject invalid", "bad_subject"}};
  for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
    if (strncmp(message, map[i].prefix, strlen(map[i].prefix)) == 0) return map[i].reason;
  return "unmapped";
}

#define NEED_NODE()                                                                                                    \
  do {                                                                                                                 \
    if (!P.have_node) skip();                                                                                          \
  } while (0)

static tether_jwt_verifier *verifier_for(const char *spec, const char *alg, const char *audience, const char *issuer,
                                         const char *subject) {
  tether_jwt_verify_options o;
  tether_jwt_verify_options_init(&o);
  if (audience) o.audience[0] = audience, o.audience_count = 1;
  o.issuer = issuer;
  o.subject = subject;
  tether_jwt_verifier *v;
  assert_int_equal(tether_jwt_verifier_new(&o, &v), 0);
  if (tether_jwt_verifier_add_key(v, spec, alg, NULL) != 1) fail_msg("key %s: %s", spec, tether_last_error());
  return v;
}

static int64_t fixed_clock(void *arg) { return *(int64_t *)arg; }

/* ---- a) and b) ---- */

static void test_login_token_from_node(void **state) {
  (void)state;
  NEED_NODE();
  int64_t before = tether_now_ms() / 1000;
  char *tok = node_sign("{\"userId\":42,\"role\":\"admin\"}", JWT_SECRET, "{\"expiresIn\":\"1h\"}");
  tether_jwt_verifier *v = verifier_for("env:JWT_SECRET", "HS256", NULL, NULL, NULL);
  tether_jwt_claims *c = tether_jwt_claims_new();
  int rc = tether_jwt_verify(v, tok, strlen(tok), c);
  if (rc != 0) fail_msg("libtether refused jsonwebtoken's token: %s", tether_last_error());
  char buf[64];
  assert_int_equal(tether_jwt_claim_text(c, "userId", buf, sizeof(buf)), 2);
  assert_string_equal(buf, "42");
  assert_int_equal(tether_jwt_claim_text(c, "role", buf, sizeof(buf)), 5);
  assert_string_equal(buf, "admin");
  int64_t iat = 0, exp = 0;
  assert_int_equal(tether_jwt_claim_int(c, "iat", &iat), 0);
  assert_int_equal(tether_jwt_claim_int(c, "exp", &exp), 0);
  assert_int_equal(exp - iat, 3600);
  assert_true(iat >= before && iat <= tether_now_ms() / 1000);
  tether_jwt_claims_free(c);
  tether_jwt_verifier_free(v);
  free(tok);
}

static void test_token_from_libtether(void **state) {
  (void)state;
  NEED_NODE();
  tether_jwt_signer *s;
  assert_int_equal(tether_jwt_signer_new("env:JWT_SECRET", "HS256", NULL, &s), 0);
  json_t *payload = json_pack("{s:i,s:s}", "userId", 7, "role", "user");
  char *tok;
  int64_t before = tether_now_ms() / 1000;
  assert_int_equal(tt_sign_json(s, payload, 3600, &tok), 0);
  json_t *ans = node_verify(tok, JWT_SECRET, NULL);
  if (!json_is_true(json_object_get(ans, "ok")))
    fail_msg("jwt.verify refused libtether's token: %s", json_string_value(json_object_get(ans, "message")));
  json_t *p = json_object_get(ans, "payload");
  assert_int_equal(json_integer_value(json_object_get(p, "userId")), 7);
  assert_string_equal(json_string_value(json_object_get(p, "role")), "user");
  json_int_t iat = json_integer_value(json_object_get(p, "iat"));
  assert_int_equal(json_integer_value(json_object_get(p, "exp")) - iat, 3600);
  assert_true(iat >= before && iat <= tether_now_ms() / 1000);
  json_decref(ans);
  free(tok);
  /* the same second, payload and secret: the same bytes as jsonwebtoken */
  int64_t now_ms = 1796032000123LL;
  tether_jwt_signer_set_clock(s, fixed_clock, &now_ms);
  assert_int_equal(tt_sign_json(s, payload, 3600, &tok), 0);
  char *node_tok =
      node_sign("{\"userId\":7,\"role\":\"user\",\"iat\":1796032000}", JWT_SECRET, "{\"expiresIn\":\"1h\"}");
  assert_string_equal(tok, node_tok);
  free(node_tok);
  free(tok);
  /* other algorithms of the family, and a kid */
  tether_jwt_signer_free(s);
  assert_int_equal(tether_jwt_signer_new("env:JWT_SECRET", "HS512", "key-2026", &s), 0);
  assert_int_equal(tt_sign_json(s, payload, 60, &tok), 0);
  ans = node_verify(tok, JWT_SECRET, "{\"algorithms\":[\"HS512\"]}");
  assert_true(json_is_true(json_object_get(ans, "ok")));
  json_decref(ans);
  free(tok);
  json_decref(payload);
  tether_jwt_signer_free(s);
}

/* ---- c) ---- */

static char *b64(const char *s) {
  char *out = tether__malloc(strlen(s) * 2 + 4);
  tether__base64url_encode((const uint8_t *)s, strlen(s), out);
  return out;
}

/* Both sides refuse tok; jsonwebtoken's message maps to libtether's reason. */
static void both_refuse(const char *what, const char *tok, const char *node_key, const char *node_opts,
                        tether_jwt_verifier *v, const char *want) {
  json_t *ans = node_verify(tok, node_key, node_opts);
  if (json_is_true(json_object_get(ans, "ok"))) fail_msg("%s: jsonwebtoken accepted it", what);
  const char *msg = json_string_value(json_object_get(ans, "message"));
  const char *node_reason = reason_of(msg);
  int rc = tether_jwt_verify(v, tok, strlen(tok), NULL);
  fprintf(stderr, "  %-16s jsonwebtoken: %-36.36s libtether: %s\n", what, msg, tether_jwt_reason(rc));
  if (rc == 0) fail_msg("%s: libtether accepted it", what);
  if (strcmp(node_reason, want) != 0) fail_msg("%s: jsonwebtoken said '%s', expected %s", what, msg, want);
  if (strcmp(tether_jwt_reason(rc), want) != 0)
    fail_msg("%s: libtether said %s (%s), jsonwebtoken said '%s'", what, tether_jwt_reason(rc), tether_last_error(),
             msg);
  json_decref(ans);
}

static void test_rejections_match(void **state) {
  (void)state;
  NEED_NODE();
  long now = (long)(tether_now_ms() / 1000);
  tether_jwt_verifier *plain = verifier_for("env:JWT_SECRET", "HS256", NULL, NULL, NULL);
  char payload[128];
  snprintf(payload, sizeof(payload), "{\"userId\":1,\"role\":\"user\",\"iat\":%ld}", now - 7200);
  char *tok = node_sign(payload, JWT_SECRET, "{\"expiresIn\":\"1h\"}");
  both_refuse("expired", tok, JWT_SECRET, NULL, plain, "expired");
  free(tok);

  tok = node_sign("{\"userId\":1,\"role\":\"user\"}", JWT_SECRET, "{\"expiresIn\":\"1h\",\"notBefore\":\"1h\"}");
  both_refuse("not yet valid", tok, JWT_SECRET, NULL, plain, "not_yet_valid");
  free(tok);

  tok = node_sign("{\"userId\":1,\"role\":\"user\"}", "not-the-secret-0123456789", "{\"expiresIn\":\"1h\"}");
  both_refuse("wrong secret", tok, JWT_SECRET, NULL, plain, "bad_signature");
  free(tok);

  tok = node_sign("{\"userId\":1,\"role\":\"user\"}", JWT_SECRET, "{\"expiresIn\":\"1h\"}");
  char claims[128];
  snprintf(claims, sizeof(claims), "{\"userId\":1,\"role\":\"admin\",\"iat\":%ld,\"exp\":%ld}", now, now + 3600);
  char *evil = b64(claims);
  char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
  char *tampered = tether__asprintf("%.*s.%s%s", (int)(d1 - tok), tok, evil, d2);
  both_refuse("tampered", tampered, JWT_SECRET, NULL, plain, "bad_signature");
  free(tampered);
  free(evil);
  free(tok);

  tether_jwt_verifier *aud = verifier_for("env:JWT_SECRET", "HS256", "api", NULL, NULL);
  tok = node_sign("{\"userId\":1}", JWT_SECRET, "{\"expiresIn\":\"1h\",\"audience\":\"web\"}");
  both_refuse("audience", tok, JWT_SECRET, "{\"audience\":\"api\"}", aud, "bad_audience");
  free(tok);
  tok = node_sign("{\"userId\":1}", JWT_SECRET, "{\"expiresIn\":\"1h\",\"audience\":[\"web\",\"api\"]}");
  json_t *ok = node_verify(tok, JWT_SECRET, "{\"audience\":\"api\"}");
  assert_true(json_is_true(json_object_get(ok, "ok")));
  assert_int_equal(tether_jwt_verify(aud, tok, strlen(tok), NULL), 0);
  json_decref(ok);
  free(tok);

  tether_jwt_verifier *iss = verifier_for("env:JWT_SECRET", "HS256", NULL, "https://auth.example.com", NULL);
  tok = node_sign("{\"userId\":1}", JWT_SECRET, "{\"expiresIn\":\"1h\",\"issuer\":\"https://evil.example.com\"}");
  both_refuse("issuer", tok, JWT_SECRET, "{\"issuer\":\"https://auth.example.com\"}", iss, "bad_issuer");
  free(tok);

  tether_jwt_verifier *sub = verifier_for("env:JWT_SECRET", "HS256", NULL, NULL, "42");
  tok = node_sign("{\"userId\":1}", JWT_SECRET, "{\"expiresIn\":\"1h\",\"subject\":\"7\"}");
  both_refuse("subject", tok, JWT_SECRET, "{\"subject\":\"42\"}", sub, "bad_subject");
  free(tok);

  both_refuse("malformed", "abc", JWT_SECRET, NULL, plain, "malformed");
  both_refuse("malformed 2", "a.b", JWT_SECRET, NULL, plain, "malformed");

  char *h = b64("{\"alg\":\"none\",\"typ\":\"JWT\"}"), *p = b64("{\"userId\":1,\"role\":\"admin\"}");
  tok = tether__asprintf("%s.%s.", h, p);
  both_refuse("alg none", tok, JWT_SECRET, NULL, plain, "unsigned");
  free(tok);
  free(h);
  free(p);

  /* algorithm confusion: the RSA public key's PEM text as an HMAC secret */
  json_t *keys =
      peer_call(json_pack("{s:s,s:s,s:{s:i}}", "op", "keys", "type", "rsa", "options", "modulusLength", 2048));
  const char *pub = json_string_value(json_object_get(keys, "public"));
  char *pub_path = tether__asprintf("%s/confusion.pub.pem", P.dir);
  FILE *f = fopen(pub_path, "w");
  fputs(pub, f);
  fclose(f);
  tether_jwt_verifier *rsa = verifier_for(pub_path, NULL, NULL, NULL, NULL);
  tok = node_sign("{\"userId\":1,\"role\":\"admin\"}", pub, "{\"algorithm\":\"HS256\"}");
  both_refuse("alg confusion", tok, pub, NULL, rsa, "alg_mismatch");
  free(tok);
  free(pub_path);
  json_decref(keys);

  tether_jwt_verifier_free(rsa);
  tether_jwt_verifier_free(sub);
  tether_jwt_verifier_free(iss);
  tether_jwt_verifier_free(aud);
  tether_jwt_verifier_free(plain);
}

/* ---- d) ---- */

static char *write_key(const char *name, const char *pem) {
  char *path = tether__asprintf("%s/%s", P.dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(pem, f);
  fclose(f);
  return path;
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char *buf = tether__malloc(65536);
  size_t n = fread(buf, 1, 65535, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

/* Node signs and libtether verifies; libtether signs and Node verifies; the other pair's key refuses. */
static void pem_round(const char *alg, const char *priv, const char *pub, const char *other_pub) {
  char *priv_path = write_key("k.pem", priv), *pub_path = write_key("k.pub.pem", pub);
  char *other_path = write_key("other.pub.pem", other_pub);
  char opts[96];
  snprintf(opts, sizeof(opts), "{\"algorithm\":\"%s\",\"expiresIn\":\"1h\"}", alg);
  char *tok = node_sign("{\"userId\":42,\"role\":\"admin\"}", priv, opts);
  tether_jwt_verifier *v = verifier_for(pub_path, alg, NULL, NULL, NULL);
  tether_jwt_claims *c = tether_jwt_claims_new();
  if (tether_jwt_verify(v, tok, strlen(tok), c) != 0) fail_msg("%s from Node: %s", alg, tether_last_error());
  assert_int_equal(tether_jwt_claims_alg(c), tether_jwt_alg_from_name(alg));
  char role[16];
  assert_int_equal(tether_jwt_claim_text(c, "role", role, sizeof(role)), 5);
  tether_jwt_claims_free(c);
  tether_jwt_verifier *wrong = verifier_for(other_path, alg, NULL, NULL, NULL);
  snprintf(opts, sizeof(opts), "{\"algorithms\":[\"%s\"]}", alg);
  char what[32];
  snprintf(what, sizeof(what), "%s wrong key", alg);
  both_refuse(what, tok, other_pub, opts, wrong, "bad_signature");
  free(tok);

  tether_jwt_signer *s;
  if (tether_jwt_signer_new(priv_path, alg, NULL, &s) != 0) fail_msg("%s signer: %s", alg, tether_last_error());
  json_t *payload = json_pack("{s:i,s:s}", "userId", 9, "role", "user");
  assert_int_equal(tt_sign_json(s, payload, 3600, &tok), 0);
  json_t *ans = node_verify(tok, pub, opts);
  if (!json_is_true(json_object_get(ans, "ok")))
    fail_msg("jwt.verify refused libtether's %s token: %s", alg, json_string_value(json_object_get(ans, "message")));
  assert_int_equal(json_integer_value(json_object_get(json_object_get(ans, "payload"), "userId")), 9);
  json_decref(ans);
  both_refuse(what, tok, other_pub, opts, wrong, "bad_signature");
  free(tok);
  json_decref(payload);
  tether_jwt_signer_free(s);
  tether_jwt_verifier_free(wrong);
  tether_jwt_verifier_free(v);
  unlink(priv_path), unlink(pub_path), unlink(other_path);
  free(priv_path), free(pub_path), free(other_path);
}

static void test_pem_keys_rsa(void **state) {
  (void)state;
  NEED_NODE();
  json_t *a = peer_call(json_pack("{s:s,s:s,s:{s:i}}", "op", "keys", "type", "rsa", "options", "modulusLength", 2048));
  json_t *b = peer_call(json_pack("{s:s,s:s,s:{s:i}}", "op", "keys", "type", "rsa", "options", "modulusLength", 2048));
  json_t *pkcs1 = peer_call(json_pack("{s:s,s:s,s:{s:i},s:s,s:s}", "op", "keys", "type", "rsa", "options",
                                      "modulusLength", 3072, "pub", "pkcs1", "priv", "pkcs1"));
#define K(j, m) json_string_value(json_object_get(j, m))
  assert_non_null(strstr(K(pkcs1, "private"), "BEGIN RSA PRIVATE KEY"));
  assert_non_null(strstr(K(pkcs1, "public"), "BEGIN RSA PUBLIC KEY"));
  pem_round("RS256", K(a, "private"), K(a, "public"), K(b, "public"));
  pem_round("PS256", K(a, "private"), K(a, "public"), K(b, "public"));
  pem_round("RS512", K(pkcs1, "private"), K(pkcs1, "public"), K(a, "public"));
#undef K
  json_decref(a);
  json_decref(b);
  json_decref(pkcs1);
}

static void test_pem_keys_ec(void **state) {
  (void)state;
  NEED_NODE();
  static const struct { const char *alg, *curve; } ec[] = {{"ES256", "P-256"}, {"ES384", "P-384"}};
  for (size_t i = 0; i < sizeof(ec) / sizeof(ec[0]); i++) {
    for (int k = 0; k < 2; k++) {
      assert_int_equal(tt_system("cd '%s' && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:%s -out ec%d.pem "
                                 "2>/dev/null && openssl pkey -in ec%d.pem -pubout -out ec%d.pub 2>/dev/null",
                                 P.dir, ec[i].curve, k, k, k),
                       0);
    }
    char p0[512], q0[512], q1[512];
    snprintf(p0, sizeof(p0), "%s/ec0.pem", P.dir);
    snprintf(q0, sizeof(q0), "%s/ec0.pub", P.dir);
    snprintf(q1, sizeof(q1), "%s/ec1.pub", P.dir);
    char *priv = slurp(p0), *pub = slurp(q0), *other = slurp(q1);
    pem_round(ec[i].alg, priv, pub, other);
    free(priv), free(pub), free(other);
  }
}

/* ---- e) ---- */

#ifdef TETHER_APP_BIN
static size_t collect(char *p, size_t size, size_t n, void *arg) {
  tether__buf_append(arg, p, size * n);
  return size * n;
}

/* One request to 127.0.0.1:port; the status, and the body (malloc'd, NUL-terminated) in *body. */
static long app_http(int port, const char *method, const char *path, const char *json_body, const char *bearer,
                     char **body) {
  CURL *c = curl_easy_init();
  assert_non_null(c);
  char url[256], auth[4096];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
  struct curl_slist *h = NULL;
  if (json_body) h = curl_slist_append(h, "Content-Type: application/json");
  if (bearer) {
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer);
    h = curl_slist_append(h, auth);
  }
  tether__buf out = {0};
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  if (json_body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, json_body);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  long status = 0;
  CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_OK)
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  else
    fprintf(stderr, "%s %s: %s\n", method, url, curl_easy_strerror(rc));
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  tether__buf_append(&out, "", 1);
  *body = out.data;
  return status;
}

/* SIGTERM, then its exit status within 15 s (-1 after a SIGKILL). */
static int app_stop(pid_t pid) {
  kill(pid, SIGTERM);
  int st;
  for (int waited = 0; waited < 15000; waited += 10) {
    if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    tt_sleep_ms(10);
  }
  tt_kill(pid, SIGKILL);
  return -1;
}

static void test_tether_app_tokens(void **state) {
  (void)state;
  NEED_NODE();
  int port = tt_free_port();
  char listen_at[32], *log = tether__asprintf("%s/tether-app.log", P.dir);
  snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%d", port);
  char *argv[] = {TETHER_APP_BIN, "--listen", listen_at,       "--name",       "jwt-app",  "--sessions",
                  "memory:",      "--secret", "cookie-secret", "--jwt-secret", JWT_SECRET, NULL};
  pid_t pid = tt_spawn(argv, log, NULL);
  if (pid < 0 || !tt_wait_port(port, 10000)) {
    tt_system("tail -n 20 '%s' >&2", log);
    if (pid > 0) tt_kill(pid, SIGKILL);
    fail_msg("tether-app did not start on %d", port);
  }

  /* tether-app's login() -> the seed's jwt.verify(token, process.env.JWT_SECRET) */
  int64_t before = tether_now_ms() / 1000;
  char *body;
  long st = app_http(port, "POST", "/login?token=1", "{\"user\":\"alice\",\"role\":\"admin\"}", NULL, &body);
  if (st != 200) fail_msg("POST /login?token=1: %ld %s", st, body);
  json_t *ans = json_loads(body, 0, NULL);
  free(body);
  assert_non_null(ans);
  assert_int_equal(json_object_size(ans), 1);
  char *tok = tether__strdup(json_string_value(json_object_get(ans, "token")));
  json_decref(ans);
  ans = node_verify(tok, JWT_SECRET, NULL);
  if (!json_is_true(json_object_get(ans, "ok")))
    fail_msg("jwt.verify refused tether-app's token: %s", json_string_value(json_object_get(ans, "message")));
  json_t *p = json_object_get(ans, "payload");
  assert_int_equal(json_object_size(p), 4);
  assert_string_equal(json_string_value(json_object_get(p, "userId")), "alice");
  assert_string_equal(json_string_value(json_object_get(p, "role")), "user"); /* the server's role, not the client's */
  json_int_t iat = json_integer_value(json_object_get(p, "iat"));
  assert_int_equal(json_integer_value(json_object_get(p, "exp")) - iat, 3600);
  assert_true(iat >= before && iat <= tether_now_ms() / 1000);
  char payload[128];
  snprintf(payload, sizeof(payload), "{\"userId\":\"alice\",\"role\":\"user\",\"iat\":%lld}", (long long)iat);
  char *node_tok = node_sign(payload, JWT_SECRET, "{\"expiresIn\":\"1h\"}");
  assert_string_equal(tok, node_tok); /* jwt.sign's bytes for the same claims and second */
  free(node_tok);
  json_decref(ans);

  /* the seed's login() -> tether-app's authenticate (GET /api/me) */
  node_tok = node_sign("{\"userId\":42,\"role\":\"user\"}", JWT_SECRET, "{\"expiresIn\":\"1h\"}");
  st = app_http(port, "GET", "/api/me", NULL, node_tok, &body);
  if (st != 200) fail_msg("GET /api/me with jsonwebtoken's token: %ld %s", st, body);
  ans = json_loads(body, 0, NULL);
  free(body);
  assert_non_null(ans);
  assert_string_equal(json_string_value(json_object_get(ans, "server")), "jwt-app");
  json_t *u = json_object_get(ans, "user");
  assert_int_equal(json_object_size(u), 4);
  assert_int_equal(json_integer_value(json_object_get(u, "userId")), 42);
  assert_string_equal(json_string_value(json_object_get(u, "role")), "user");
  assert_int_equal(json_integer_value(json_object_get(u, "exp")) - json_integer_value(json_object_get(u, "iat")), 3600);
  json_decref(ans);
  free(node_tok);
  /* and its own token round-trips there too; jsonwebtoken's token under another secret does not */
  st = app_http(port, "GET", "/api/me", NULL, tok, &body);
  assert_int_equal(st, 200);
  free(body);
  node_tok = node_sign("{\"userId\":42,\"role\":\"user\"}", "not-the-secret-0123456789", "{\"expiresIn\":\"1h\"}");
  st = app_http(port, "GET", "/api/me", NULL, node_tok, &body);
  assert_int_equal(st, 401);
  assert_string_equal(body, "{\"error\":\"Invalid token\"}\n");
  free(body);
  free(node_tok);
  free(tok);

  int exit_status = app_stop(pid);
  int sanitizer = tt_system("grep -q -E 'ERROR: (Address|Leak)Sanitizer|runtime error' '%s'", log) == 0;
  if (exit_status != 0 || sanitizer) tt_system("tail -n 40 '%s' >&2", log);
  assert_int_equal(exit_status, 0);
  assert_false(sanitizer);
  free(log);
}
#else
static void test_tether_app_tokens(void **state) {
  (void)state;
  skip(); /* built without tether-app */
}
#endif

/* ---- setup ---- */

static int group_setup(void **state) {
  (void)state;
  signal(SIGPIPE, SIG_IGN);
  setenv("JWT_SECRET", JWT_SECRET, 1);
#ifdef TETHER_APP_BIN
  curl_global_init(CURL_GLOBAL_DEFAULT);
#endif
  P.dir = tt_tmpdir("jwt-interop");
  P.have_node = tt_system("command -v node >/dev/null 2>&1") == 0 &&
                tt_system("[ -d '%s/node_modules/jsonwebtoken' ]", TETHER_INTEROP_JWT_DIR) == 0;
  if (!P.have_node) {
    fprintf(stderr, "node or tests/interop/jwt/node_modules is missing: skipping (npm ci in tests/interop/jwt)\n");
    return 0;
  }
  if (peer_start() < 0) return -1;
  /* one round trip proves the peer is up */
  json_t *ans = peer_call(json_pack("{s:s,s:{},s:s}", "op", "sign", "payload", "key", "x"));
  json_decref(ans);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  peer_stop();
  if (P.dir) tt_rmrf(P.dir);
  free(P.dir);
  tether_jwt_thread_cleanup();
#ifdef TETHER_APP_BIN
  curl_global_cleanup();
#endif
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_login_token_from_node), cmocka_unit_test(test_token_from_libtether),
      cmocka_unit_test(test_rejections_match),      cmocka_unit_test(test_pem_keys_rsa),
      cmocka_unit_test(test_pem_keys_ec),           cmocka_unit_test(test_tether_app_tokens),
  };
  return cmocka_run_group_tests_name("interop jwt (jsonwebtoken 9)", tests, group_setup, group_teardown);
}
