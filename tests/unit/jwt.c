/* Unit tests of src/lib/jwt*.c (jwt.c, jwt_sig.c and jwt_sign.c included, to reach their statics): the RFC vectors (RFC
 * 7515 A.1-A.3, RFC 7520 4.1-4.4, RFC 8037 A.4), a negative test for each attack in shared/reference/jwt.md, tampered,
 * truncated, expired and not-yet-valid tokens, wrong keys, claims (aud, iss, sub, leeway bounds), key specifications
 * (env:, files, PEM, JWKS with kid), signing as jsonwebtoken does, the JSON scanner against jansson, and
 * verification from several threads at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "../../src/lib/jwt.c"
#include "../../src/lib/jwt_sig.c"
#include "../../src/lib/jwt_sign.c"
#include "procs.h"
#include "sign_json.h"
#include "vectors/jwt_vectors.h"

/* ---- helpers ---- */

static int64_t fixed_clock(void *arg) { return *(int64_t *)arg; }

static int64_t clock_ms; /* what the verifiers built by verifier() see */

static tether_jwt_verifier *verifier_opts(tether_jwt_verify_options *o) {
  o->clock = fixed_clock;
  o->clock_arg = &clock_ms;
  tether_jwt_verifier *v = NULL;
  assert_int_equal(tether_jwt_verifier_new(o, &v), 0);
  return v;
}

static tether_jwt_verifier *verifier(void) {
  tether_jwt_verify_options o;
  tether_jwt_verify_options_init(&o);
  return verifier_opts(&o);
}

static int verify(const tether_jwt_verifier *v, const char *tok) {
  return tether_jwt_verify(v, tok, strlen(tok), NULL);
}

#define assert_jwt(rc, want)                                                                                           \
  do {                                                                                                                 \
    int rc_ = (rc), want_ = (want);                                                                                    \
    if (rc_ != want_) {                                                                                                \
      fprintf(stderr, "got %s (%d), want %s: %s\n", tether_jwt_reason(rc_), rc_, tether_jwt_reason(want_),             \
              tether_last_error());                                                                                    \
      fail();                                                                                                          \
    }                                                                                                                  \
  } while (0)

/* A key made from a JWK, for signing tokens by hand. */
static tether__jwt_key_list jwk_keys(const char *jwk, tether_jwt_alg alg) {
  tether__jwt_crypto_init();
  tether__jwt_key_list l = {0};
  assert_int_equal(tether__jwt_jwk_load(jwk, strlen(jwk), alg, NULL, &l), 1);
  return l;
}

static tether__jwt_key_list secret_key(const char *secret, tether_jwt_alg alg) {
  tether__jwt_crypto_init();
  tether__jwt_key_list l = {0};
  assert_int_equal(tether__jwt_key_set_secret(tether__jwt_keys_push(&l), secret, strlen(secret), alg), 0);
  return l;
}

/* header and payload JSON texts, signed with k (NULL: the signature is "sig" as given). */
static char *craft(const char *header, const char *payload, const tether__jwt_key *k) {
  int err = 0;
  char *t = jws_compact(k, header, strlen(header), payload, strlen(payload), &err);
  assert_non_null(t);
  return t;
}

static char *b64(const char *s) {
  char *out = malloc(strlen(s) * 2 + 4);
  tether__base64url_encode((const uint8_t *)s, strlen(s), out);
  return out;
}

/* "H.P.S" from JSON texts and a raw signature segment. */
static char *unsigned_token(const char *header, const char *payload, const char *sig) {
  char *h = b64(header), *p = b64(payload);
  char *t = tether__asprintf("%s.%s.%s", h, p, sig);
  free(h);
  free(p);
  return t;
}

static char *pem_of(EVP_PKEY *pkey, int private) {
  BIO *bio = BIO_new(BIO_s_mem());
  if (private)
    assert_int_equal(PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL), 1);
  else
    assert_int_equal(PEM_write_bio_PUBKEY(bio, pkey), 1);
  char *data;
  long n = BIO_get_mem_data(bio, &data);
  char *s = tether__strndup(data, (size_t)n);
  BIO_free(bio);
  return s;
}

static char *write_tmp(const char *dir, const char *name, const char *content) {
  char *path = tether__asprintf("%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  fputs(content, f);
  fclose(f);
  return path;
}

/* ---- RFC vectors ---- */

static void test_rfc7515_a1_hs256(void **state) {
  (void)state;
  tether_jwt_verifier *v = verifier();
  assert_int_equal(tether_jwt_verifier_add_jwk(v, RFC7515_A1_JWK, strlen(RFC7515_A1_JWK), 0), 1);
  clock_ms = (int64_t)(RFC7515_EXP - 600) * 1000;
  tether_jwt_claims *c = tether_jwt_claims_new();
  assert_jwt(tether_jwt_verify(v, RFC7515_A1_TOKEN, strlen(RFC7515_A1_TOKEN), c), 0);
  size_t n;
  const char *p = tether_jwt_claims_payload(c, &n);
  assert_int_equal(n, strlen(RFC7515_PAYLOAD));
  assert_memory_equal(p, RFC7515_PAYLOAD, n);
  char buf[64];
  assert_int_equal(tether_jwt_claim_text(c, "iss", buf, sizeof(buf)), 3);
  assert_string_equal(buf, "joe");
  assert_int_equal(tether_jwt_claim_text(c, "http://example.com/is_root", buf, sizeof(buf)), 4);
  assert_string_equal(buf, "true");
  assert_int_equal(tether_jwt_claim_text(c, "exp", buf, sizeof(buf)), 10);
  assert_string_equal(buf, "1300819380");
  assert_int_equal(tether_jwt_claim_text(c, "sub", buf, sizeof(buf)), TETHER_ENOTFOUND);
  assert_int_equal(tether_jwt_claims_alg(c), TETHER_JWT_HS256);
  json_t *j = tether__jwt_claims_json(c);
  assert_string_equal(json_string_value(json_object_get(j, "iss")), "joe");
  assert_true(json_is_true(json_object_get(j, "http://example.com/is_root")));
  /* the header the RFC signed (CR LF, typ first) is what was verified, not a re-serialisation */
  uint8_t hdr[64];
  assert_int_equal(tether__base64url_decode(RFC7515_A1_TOKEN, 40, hdr, sizeof(hdr)), strlen(RFC7515_A1_HEADER));
  assert_memory_equal(hdr, RFC7515_A1_HEADER, strlen(RFC7515_A1_HEADER));
  /* exp with the default leeway of 30 s: valid until exp + 29, expired from exp + 30 */
  clock_ms = (int64_t)(RFC7515_EXP + 29) * 1000 + 999;
  assert_jwt(tether_jwt_verify(v, RFC7515_A1_TOKEN, strlen(RFC7515_A1_TOKEN), c), 0);
  clock_ms = (int64_t)(RFC7515_EXP + 30) * 1000;
  assert_jwt(tether_jwt_verify(v, RFC7515_A1_TOKEN, strlen(RFC7515_A1_TOKEN), c), TETHER_JWT_EEXPIRED);
  assert_non_null(strstr(tether_last_error(), "2011-03-22T18:43:00"));
  assert_null(tether__jwt_claims_json(c));
  assert_int_equal(tether_jwt_claim_text(c, "iss", buf, sizeof(buf)), TETHER_ENOTFOUND);
  /* the real clock: long expired */
  tether_jwt_verifier *rv;
  assert_int_equal(tether_jwt_verifier_new(NULL, &rv), 0);
  assert_int_equal(tether_jwt_verifier_add_jwk(rv, RFC7515_A1_JWK, strlen(RFC7515_A1_JWK), 0), 1);
  assert_jwt(verify(rv, RFC7515_A1_TOKEN), TETHER_JWT_EEXPIRED);
  tether_jwt_verifier_free(rv);
  tether_jwt_claims_free(c);
  tether_jwt_verifier_free(v);
}

static void test_rfc7515_a1_noncanonical(void **state) {
  (void)state;
  tether_jwt_verifier *v = verifier();
  tether_jwt_verifier_add_jwk(v, RFC7515_A1_JWK, strlen(RFC7515_A1_JWK), 0);
  clock_ms = (int64_t)RFC7515_EXP * 1000;
  char tok[sizeof(RFC7515_A1_TOKEN) + 4];
  size_t n = strlen(RFC7515_A1_TOKEN);
  /* ...EjXl, EjXm, EjXn decode to the same bytes as ...EjXk: a strict verifier refuses them */
  for (const char *c = "lmn"; *c; c++) {
    memcpy(tok, RFC7515_A1_TOKEN, n + 1);
    assert_int_equal(tok[n - 1], 'k');
    tok[n - 1] = *c;
    assert_jwt(verify(v, tok), TETHER_JWT_EENCODING);
  }
  /* padding */
  snprintf(tok, sizeof(tok), "%s=", RFC7515_A1_TOKEN);
  assert_jwt(verify(v, tok), TETHER_JWT_EENCODING);
  /* base64 (not url) characters, in the signature and in the payload */
  char *t = tether__strdup(RFC7515_A1_TOKEN);
  *strchr(t, '-') = '+';
  assert_jwt(verify(v, t), TETHER_JWT_EENCODING);
  free(t);
  char *std = tether__asprintf("%s", RFC7515_A2_TOKEN);
  std[25] = '/'; /* inside the payload segment */
  tether_jwt_verifier_add_jwk(v, RFC7515_A2_JWK, strlen(RFC7515_A2_JWK), 0);
  assert_jwt(verify(v, std), TETHER_JWT_ESIGNATURE); /* the signature covers the text: checked first */
  free(std);
  /* a header with padding, and one with a non-canonical last character */
  assert_jwt(verify(v, "eyJhbGciOiJIUzI1NiJ9=.e30.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"), TETHER_JWT_EENCODING);
  char *h = b64("{\"alg\":\"HS256\",\"xy\":1}"); /* 22 bytes: the last character carries 4 unused bits */
  size_t hl = strlen(h);
  assert_int_equal(hl % 4, 2);
  h[hl - 1] = h[hl - 1] == 'A' ? 'B' : h[hl - 1] == 'Q' ? 'R' : h[hl - 1] == 'g' ? 'h' : 'x';
  char *nt = tether__asprintf("%s.e30.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", h);
  assert_jwt(verify(v, nt), TETHER_JWT_EENCODING);
  free(nt);
  free(h);
  tether_jwt_verifier_free(v);
}

static void test_rfc7515_a2_rs256(void **state) {
  (void)state;
  clock_ms = (int64_t)(RFC7515_EXP - 1) * 1000;
  tether_jwt_verifier *v = verifier();
  assert_int_equal(tether_jwt_verifier_add_jwk(v, RFC7515_A2_JWK, strlen(RFC7515_A2_JWK), 0), 1);
  assert_jwt(verify(v, RFC7515_A2_TOKEN), 0);
  /* RSASSA-PKCS1-v1_5 is deterministic: signing the same input gives the RFC's signature */
  tether__jwt_key_list l = jwk_keys(RFC7515_A2_JWK, TETHER_JWT_RS256);
  assert_true(l.k[0].has_private);
  const char *d2 = strrchr(RFC7515_A2_TOKEN, '.');
  uint8_t sig[512];
  int sl = tether__jwt_sig_sign(&l.k[0], RFC7515_A2_TOKEN, (size_t)(d2 - RFC7515_A2_TOKEN), sig, sizeof(sig));
  assert_int_equal(sl, 256);
  char out[400];
  tether__base64url_encode(sig, (size_t)sl, out);
  assert_string_equal(out, d2 + 1);
  /* the same key as a PEM public key */
  char *pem = pem_of(l.k[0].pkey, 0);
  tether_jwt_verifier *pv = verifier();
  assert_int_equal(tether_jwt_verifier_add_pem(pv, pem, strlen(pem), 0, NULL), 1);
  assert_jwt(verify(pv, RFC7515_A2_TOKEN), 0);
  assert_jwt(verify(pv, RFC7515_A1_TOKEN), TETHER_JWT_EALG); /* an RSA key never verifies HS256 */
  free(pem);
  tether_jwt_verifier_free(pv);
  tether__jwt_keys_free(&l);
  tether_jwt_verifier_free(v);
}

static void test_rfc7515_a3_es256(void **state) {
  (void)state;
  clock_ms = (int64_t)(RFC7515_EXP - 1) * 1000;
  tether_jwt_verifier *v = verifier();
  assert_int_equal(tether_jwt_verifier_add_jwk(v, RFC7515_A3_JWK, strlen(RFC7515_A3_JWK), 0), 1);
  assert_int_equal(v->keys.k[0].alg, TETHER_JWT_ES256);
  assert_jwt(verify(v, RFC7515_A3_TOKEN), 0);
  /* ECDSA is randomised: sign anew and verify, twice, different bytes */
  tether__jwt_key_list l = jwk_keys(RFC7515_A3_JWK, 0);
  char *t1 = craft("{\"alg\":\"ES256\"}", RFC7515_PAYLOAD, &l.k[0]);
  char *t2 = craft("{\"alg\":\"ES256\"}", RFC7515_PAYLOAD, &l.k[0]);
  assert_string_not_equal(t1, t2);
  assert_jwt(verify(v, t1), 0);
  assert_jwt(verify(v, t2), 0);
  free(t1);
  free(t2);
  tether__jwt_keys_free(&l);
  tether_jwt_verifier_free(v);
}

static void jws_expect(const tether_jwt_verifier *v, const char *tok, const char *payload) {
  uint8_t out[512];
  size_t n = 0;
  assert_jwt(tether_jws_verify(v, tok, strlen(tok), out, sizeof(out), &n), 0);
  assert_int_equal(n, strlen(payload));
  assert_memory_equal(out, payload, n);
}

static void test_rfc7520(void **state) {
  (void)state;
  tether_jwt_verifier *v = verifier();
  assert_int_equal(tether_jwt_verifier_add_jwk(v, RFC7520_RSA_JWK, strlen(RFC7520_RSA_JWK), 0), 1);
  jws_expect(v, RFC7520_4_1_TOKEN, RFC7520_PAYLOAD);
  /* pinned: the RSA key was added for RS256, so the PS384 example is refused until a PS384 key is added */
  uint8_t out[512];
  size_t n;
  assert_jwt(tether_jws_verify(v, RFC7520_4_2_TOKEN, strlen(RFC7520_4_2_TOKEN), out, sizeof(out), &n), TETHER_JWT_EALG);
  assert_int_equal(tether_jwt_verifier_add_jwk(v, RFC7520_RSA_JWK, strlen(RFC7520_RSA_JWK), TETHER_JWT_PS384), 1);
  jws_expect(v, RFC7520_4_2_TOKEN, RFC7520_PAYLOAD);
  assert_int_equal(tether_jwt_verifier_add_jwk(v, RFC7520_EC_JWK, strlen(RFC7520_EC_JWK), 0), 1);
  jws_expect(v, RFC7520_4_3_TOKEN, RFC7520_PAYLOAD);
  assert_int_equal(tether_jwt_verifier_add_jwk(v, RFC7520_HMAC_JWK, strlen(RFC7520_HMAC_JWK), 0), 1);
  jws_expect(v, RFC7520_4_4_TOKEN, RFC7520_PAYLOAD);
  assert_int_equal(tether_jwt_verifier_key_count(v), 4);
  /* too small a buffer for the payload */
  assert_int_equal(tether_jws_verify(v, RFC7520_4_4_TOKEN, strlen(RFC7520_4_4_TOKEN), out, 10, &n), TETHER_E2BIG);
  /* not JSON, so not a JWT */
  assert_jwt(verify(v, RFC7520_4_4_TOKEN), TETHER_JWT_EMALFORMED);
  /* 4.1 is deterministic */
  tether__jwt_key_list l = jwk_keys(RFC7520_RSA_JWK, 0);
  const char *d2 = strrchr(RFC7520_4_1_TOKEN, '.');
  uint8_t sig[512];
  int sl = tether__jwt_sig_sign(&l.k[0], RFC7520_4_1_TOKEN, (size_t)(d2 - RFC7520_4_1_TOKEN), sig, sizeof(sig));
  char enc[400];
  tether__base64url_encode(sig, (size_t)sl, enc);
  assert_string_equal(enc, d2 + 1);
  tether__jwt_keys_free(&l);
  /* a JWKS holding all three, selected by kid: two keys share the cookbook's kid */
  char *jwks = tether__asprintf("{\"keys\":[%s,%s,%s]}", RFC7520_RSA_JWK, RFC7520_EC_JWK, RFC7520_HMAC_JWK);
  tether_jwt_verifier *kv = verifier();
  assert_int_equal(tether_jwt_verifier_add_jwk(kv, jwks, strlen(jwks), 0), 3);
  jws_expect(kv, RFC7520_4_1_TOKEN, RFC7520_PAYLOAD);
  jws_expect(kv, RFC7520_4_3_TOKEN, RFC7520_PAYLOAD);
  jws_expect(kv, RFC7520_4_4_TOKEN, RFC7520_PAYLOAD);
  free(jwks);
  tether_jwt_verifier_free(kv);
  tether_jwt_verifier_free(v);
}

static void test_rfc8037_ed25519(void **state) {
  (void)state;
  tether_jwt_verifier *v = verifier();
  assert_int_equal(tether_jwt_verifier_add_jwk(v, RFC8037_A2_JWK, strlen(RFC8037_A2_JWK), 0), 1);
  assert_int_equal(v->keys.k[0].alg, TETHER_JWT_EDDSA);
  jws_expect(v, RFC8037_A4_TOKEN, RFC8037_PAYLOAD);
  /* Ed25519 is deterministic: the private key (A.1) reproduces A.4 */
  tether__jwt_key_list l = jwk_keys(RFC8037_A1_JWK, 0);
  const char *d2 = strrchr(RFC8037_A4_TOKEN, '.');
  uint8_t sig[128];
  assert_int_equal(tether__jwt_sig_sign(&l.k[0], RFC8037_A4_TOKEN, (size_t)(d2 - RFC8037_A4_TOKEN), sig, sizeof(sig)),
                   64);
  char enc[100];
  tether__base64url_encode(sig, 64, enc);
  assert_string_equal(enc, d2 + 1);
  /* a flipped bit anywhere in the signature */
  char *t = tether__strdup(RFC8037_A4_TOKEN);
  char *s = strrchr(t, '.') + 10;
  *s = *s == 'A' ? 'B' : 'A';
  uint8_t out[64];
  size_t n;
  assert_jwt(tether_jws_verify(v, t, strlen(t), out, sizeof(out), &n), TETHER_JWT_ESIGNATURE);
  free(t);
  /* a private JWK whose x is not its public key */
  const char *bad = "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":\"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A\","
                    "\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}";
  assert_int_equal(tether_jwt_verifier_add_jwk(v, bad, strlen(bad), 0), TETHER_EINVAL);
  tether__jwt_keys_free(&l);
  tether_jwt_verifier_free(v);
}

/* ---- attacks (shared/reference/jwt.md) ---- */

static const char *const SECRET = "interop-secret-that-is-long-enough-0123456789";

static void test_attack_alg_none(void **state) {
  (void)state;
  clock_ms = tether_now_ms();
  tether_jwt_verifier *v = verifier();
  tether_jwt_verifier_add_secret(v, SECRET, strlen(SECRET), 0, NULL);
  const char *payload = "{\"userId\":1,\"role\":\"admin\"}";
  for (const char *const *a = (const char *const[]){"none", "None", "NONE", "nOnE", NULL}; *a; a++) {
    char *hdr = tether__asprintf("{\"alg\":\"%s\",\"typ\":\"JWT\"}", *a);
    char *t = unsigned_token(hdr, payload, "");
    assert_jwt(verify(v, t), TETHER_JWT_EUNSIGNED);
    free(t);
    t = unsigned_token(hdr, payload, "c2lnbmF0dXJl"); /* "signature" */
    assert_jwt(verify(v, t), TETHER_JWT_EUNSIGNED);
    free(t);
    free(hdr);
  }
  /* an escaped "none" is still none */
  char *t = unsigned_token("{\"alg\":\"\\u006eone\"}", payload, "");
  assert_jwt(verify(v, t), TETHER_JWT_EUNSIGNED);
  free(t);
  /* HS256 with the signature stripped */
  t = unsigned_token("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, "");
  assert_jwt(verify(v, t), TETHER_JWT_EUNSIGNED);
  free(t);
  /* no alg, alg not a string, an unknown alg */
  t = unsigned_token("{\"typ\":\"JWT\"}", payload, "AAAA");
  assert_jwt(verify(v, t), TETHER_JWT_EMALFORMED);
  free(t);
  t = unsigned_token("{\"alg\":256}", payload, "AAAA");
  assert_jwt(verify(v, t), TETHER_JWT_EMALFORMED);
  free(t);
  t = unsigned_token("{\"alg\":\"HS257\"}", payload, "AAAA");
  assert_jwt(verify(v, t), TETHER_JWT_EALG);
  free(t);
  t = unsigned_token("{\"alg\":\"hs256\"}", payload, "AAAA");
  assert_jwt(verify(v, t), TETHER_JWT_EALG);
  free(t);
  tether_jwt_verifier_free(v);
}

static void test_attack_alg_confusion(void **state) {
  (void)state;
  clock_ms = tether_now_ms();
  EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  assert_non_null(rsa);
  assert_non_null(ec);
  const char *payload = "{\"userId\":1,\"role\":\"admin\"}";
  for (int i = 0; i < 2; i++) {
    char *pub = pem_of(i == 0 ? rsa : ec, 0);
    tether_jwt_verifier *v = verifier();
    assert_int_equal(tether_jwt_verifier_add_pem(v, pub, strlen(pub), 0, NULL), 1);
    /* the attacker uses the public key's PEM text (and its DER) as an HMAC secret */
    for (tether_jwt_alg a = TETHER_JWT_HS256; a <= TETHER_JWT_HS512; a++) {
      tether__jwt_key_list l = secret_key(pub, a);
      char *hdr = tether__asprintf("{\"alg\":\"%s\",\"typ\":\"JWT\"}", tether__jwt_algs[a].name);
      char *t = craft(hdr, payload, &l.k[0]);
      assert_jwt(verify(v, t), TETHER_JWT_EALG);
      free(t);
      free(hdr);
      tether__jwt_keys_free(&l);
    }
    /* configuring the PEM as a secret is refused outright */
    char dir_tpl[] = "/tmp/tether-jwt-XXXXXX";
    char *dir = mkdtemp(dir_tpl);
    char *path = write_tmp(dir, "pub.pem", pub);
    assert_int_equal(tether_jwt_verifier_add_key(v, path, "HS256", NULL), TETHER_EINVAL);
    assert_non_null(strstr(tether_last_error(), "PEM"));
    unlink(path);
    rmdir(dir);
    free(path);
    free(pub);
    tether_jwt_verifier_free(v);
  }
  /* the other way round: an HS256 verifier and RS256/ES256 tokens */
  tether_jwt_verifier *hv = verifier();
  tether_jwt_verifier_add_secret(hv, SECRET, strlen(SECRET), TETHER_JWT_HS256, NULL);
  tether__jwt_key_list l = {0};
  assert_int_equal(tether__jwt_key_set_pkey(tether__jwt_keys_push(&l), rsa, TETHER_JWT_RS256), 0);
  char *t = craft("{\"alg\":\"RS256\"}", payload, &l.k[0]);
  assert_jwt(verify(hv, t), TETHER_JWT_EALG);
  free(t);
  tether__jwt_keys_free(&l);
  EVP_PKEY_free(ec);
  tether_jwt_verifier_free(hv);
}

static void test_attack_kid(void **state) {
  (void)state;
  clock_ms = tether_now_ms();
  const char *payload = "{\"userId\":1}";
  static const char *const evil[] = {"../../../../../../dev/null",
                                     "/dev/null",
                                     "' OR '1'='1",
                                     "x' UNION SELECT 'k",
                                     "|cat /etc/passwd",
                                     "$(touch /tmp/pwned)",
                                     "key1 ",
                                     "",
                                     "KEY1"};
  /* keys with kids: an unknown kid selects nothing */
  tether_jwt_verifier *v = verifier();
  tether_jwt_verifier_add_secret(v, SECRET, strlen(SECRET), 0, "key1");
  tether_jwt_verifier_add_secret(v, "second secret of enough length 0123", 35, 0, "key2");
  tether__jwt_key_list empty = secret_key("x", TETHER_JWT_HS256); /* what an attacker might guess for /dev/null */
  tether__jwt_key_list good = secret_key(SECRET, TETHER_JWT_HS256);
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(evil); i++) {
    json_t *h = json_pack("{s:s,s:s}", "alg", "HS256", "kid", evil[i]);
    char *hs = json_dumps(h, JSON_COMPACT);
    char *t = craft(hs, payload, &empty.k[0]);
    assert_jwt(verify(v, t), TETHER_JWT_ENOKEY);
    free(t);
    t = craft(hs, payload, &good.k[0]); /* even with the right key's signature: kid names no key */
    assert_jwt(verify(v, t), TETHER_JWT_ENOKEY);
    free(t);
    free(hs);
    json_decref(h);
  }
  char *t = craft("{\"alg\":\"HS256\",\"kid\":\"key1\"}", payload, &good.k[0]);
  assert_jwt(verify(v, t), 0);
  free(t);
  t = craft("{\"alg\":\"HS256\",\"kid\":\"key2\"}", payload, &good.k[0]); /* key2 is another secret */
  assert_jwt(verify(v, t), TETHER_JWT_ESIGNATURE);
  free(t);
  t = craft("{\"alg\":\"HS256\",\"kid\":123}", payload, &good.k[0]);
  assert_jwt(verify(v, t), TETHER_JWT_EMALFORMED);
  free(t);
  /* a key without a kid: the token's kid selects nothing, the configured key still decides */
  tether_jwt_verifier *nv = verifier();
  tether_jwt_verifier_add_secret(nv, SECRET, strlen(SECRET), 0, NULL);
  t = craft("{\"alg\":\"HS256\",\"kid\":\"../../../../dev/null\"}", payload, &empty.k[0]);
  assert_jwt(verify(nv, t), TETHER_JWT_ESIGNATURE);
  free(t);
  tether__jwt_keys_free(&empty);
  tether__jwt_keys_free(&good);
  tether_jwt_verifier_free(nv);
  tether_jwt_verifier_free(v);
}

static void test_attack_embedded_keys(void **state) {
  (void)state;
  clock_ms = tether_now_ms();
  const char *payload = "{\"userId\":1,\"role\":\"admin\"}";
  tether__jwt_key_list legit = jwk_keys(RFC7515_A3_JWK, 0);
  EVP_PKEY *attacker = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  tether__jwt_key_list evil = {0};
  assert_int_equal(tether__jwt_key_set_pkey(tether__jwt_keys_push(&evil), attacker, 0), 0);
  tether_jwt_verifier *v = verifier();
  tether_jwt_verifier_add_jwk(v, RFC7515_A3_JWK, strlen(RFC7515_A3_JWK), 0);
  /* the attacker's key in jwk, or behind jku / x5u / x5c: never fetched, never trusted */
  static const char *const headers[] = {
      "{\"alg\":\"ES256\",\"jwk\":{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}}",
      "{\"alg\":\"ES256\",\"jku\":\"http://127.0.0.1:9/jwks.json\"}",
      "{\"alg\":\"ES256\",\"x5u\":\"http://127.0.0.1:9/cert.pem\"}",
      "{\"alg\":\"ES256\",\"x5c\":[\"MIIB\"]}",
  };
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(headers); i++) {
    char *t = craft(headers[i], payload, &evil.k[0]);
    assert_jwt(verify(v, t), TETHER_JWT_ESIGNATURE);
    free(t);
    t = craft(headers[i], payload, &legit.k[0]); /* ignored when the configured key signed */
    assert_jwt(verify(v, t), 0);
    free(t);
  }
  /* crit: extensions we do not understand are refused, whoever signed */
  char *t = craft("{\"alg\":\"ES256\",\"crit\":[\"exp\"],\"exp\":1}", payload, &legit.k[0]);
  assert_jwt(verify(v, t), TETHER_JWT_ECRIT);
  free(t);
  t = craft("{\"alg\":\"ES256\",\"b64\":false,\"crit\":[\"b64\"]}", payload, &legit.k[0]);
  assert_jwt(verify(v, t), TETHER_JWT_ECRIT);
  free(t);
  t = craft("{\"alg\":\"ES256\",\"crit\":[],\"jwk\":{\"kty\":\"EC\"}}", payload, &legit.k[0]); /* jansson path */
  assert_jwt(verify(v, t), TETHER_JWT_ECRIT);
  free(t);
  tether__jwt_keys_free(&legit);
  tether__jwt_keys_free(&evil);
  tether_jwt_verifier_free(v);
}

static void test_attack_psychic_signatures(void **state) {
  (void)state;
  clock_ms = tether_now_ms();
  for (tether_jwt_alg a = TETHER_JWT_ES256; a <= TETHER_JWT_ES512; a++) {
    const char *curve = a == TETHER_JWT_ES256 ? "P-256" : a == TETHER_JWT_ES384 ? "P-384" : "P-521";
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
    tether__jwt_key_list l = {0};
    assert_int_equal(tether__jwt_key_set_pkey(tether__jwt_keys_push(&l), pk, 0), 0);
    tether__jwt_key *k = &l.k[0];
    char *pub = pem_of(k->pkey, 0);
    tether_jwt_verifier *v = verifier();
    assert_int_equal(tether_jwt_verifier_add_pem(v, pub, strlen(pub), 0, NULL), 1);
    size_t c = tether__jwt_algs[a].coord;
    char *hdr = tether__asprintf("{\"alg\":\"%s\"}", tether__jwt_algs[a].name);
    char *good = craft(hdr, "{\"u\":1}", k);
    assert_jwt(verify(v, good), 0);
    char *prefix = tether__strndup(good, (size_t)(strrchr(good, '.') - good));
    uint8_t sig[132];
    char enc[200];
    /* r = s = 0 (CVE-2022-21449), r = s = n, r = n + 1, and 0 with a valid s */
    for (int variant = 0; variant < 5; variant++) {
      uint8_t r[66], s[66];
      memset(r, 0, c);
      memset(s, 0, c);
      if (variant == 1) memcpy(r, k->order, c), memcpy(s, k->order, c);
      if (variant == 2) {
        memcpy(r, k->order, c);
        for (size_t i = c; i-- > 0;)
          if (++r[i] != 0) break;
        memcpy(s, r, c);
      }
      if (variant == 3) {
        uint8_t real[132];
        tether__base64url_decode(strrchr(good, '.') + 1, strlen(strrchr(good, '.') + 1), real, sizeof(real));
        memcpy(s, real + c, c); /* r = 0 */
      }
      if (variant == 4) memset(r, 0xff, c), memset(s, 0xff, c);
      assert_false(ec_scalar_ok(r, k->order, c) && ec_scalar_ok(s, k->order, c));
      memcpy(sig, r, c);
      memcpy(sig + c, s, c);
      tether__base64url_encode(sig, 2 * c, enc);
      char *t = tether__asprintf("%s.%s", prefix, enc);
      assert_jwt(verify(v, t), TETHER_JWT_ESIGNATURE);
      free(t);
    }
    /* a DER signature where raw r||s belongs, and a truncated one */
    uint8_t der[200];
    size_t dl = sizeof(der);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit_ex(md, NULL, tether__jwt_algs[a].md, NULL, NULL, k->pkey, NULL), 1);
    assert_int_equal(EVP_DigestSign(md, der, &dl, (const uint8_t *)prefix, strlen(prefix)), 1);
    EVP_MD_CTX_free(md);
    tether__base64url_encode(der, dl, enc);
    char *t = tether__asprintf("%s.%s", prefix, enc);
    assert_jwt(verify(v, t), TETHER_JWT_ESIGNATURE);
    free(t);
    t = tether__strndup(good, strlen(good) - 4);
    assert_int_not_equal(verify(v, t), 0);
    free(t);
    free(prefix);
    free(good);
    free(hdr);
    free(pub);
    tether__jwt_keys_free(&l);
    tether_jwt_verifier_free(v);
  }
}

static void test_attack_oversized(void **state) {
  (void)state;
  clock_ms = tether_now_ms();
  tether_jwt_verifier *v = verifier();
  tether_jwt_verifier_add_secret(v, SECRET, strlen(SECRET), 0, NULL);
  /* many dots (CVE-2025-30204): refused by size before any parsing, and by structure below the cap */
  size_t big = 1 << 20;
  char *dots = malloc(big + 1);
  memset(dots, '.', big);
  dots[big] = '\0';
  assert_jwt(tether_jwt_verify(v, dots, big, NULL), TETHER_JWT_ETOOLARGE);
  assert_jwt(tether_jwt_verify(v, dots, 8192, NULL), TETHER_JWT_EMALFORMED);
  assert_jwt(tether_jwt_verify(v, dots, 8193, NULL), TETHER_JWT_ETOOLARGE);
  assert_jwt(verify(v, "a.b.c.d"), TETHER_JWT_EMALFORMED);
  assert_jwt(verify(v, "a.b"), TETHER_JWT_EMALFORMED);
  assert_jwt(verify(v, ""), TETHER_JWT_EMALFORMED);
  assert_jwt(verify(v, ".."), TETHER_JWT_EMALFORMED);
  assert_jwt(tether_jwt_verify(v, NULL, 0, NULL), TETHER_JWT_EMALFORMED);
  free(dots);
  /* a valid token just under and just over a configured cap */
  tether__jwt_key_list l = secret_key(SECRET, TETHER_JWT_HS256);
  char *t = craft("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", "{\"userId\":1}", &l.k[0]);
  tether_jwt_verify_options o;
  tether_jwt_verify_options_init(&o);
  o.max_token_size = strlen(t);
  tether_jwt_verifier *sv = verifier_opts(&o);
  tether_jwt_verifier_add_secret(sv, SECRET, strlen(SECRET), 0, NULL);
  assert_jwt(verify(sv, t), 0);
  o.max_token_size = strlen(t) - 1;
  tether_jwt_verifier *tv = verifier_opts(&o);
  tether_jwt_verifier_add_secret(tv, SECRET, strlen(SECRET), 0, NULL);
  assert_jwt(verify(tv, t), TETHER_JWT_ETOOLARGE);
  /* the default cap is 8 KiB; bounds on the option */
  o.max_token_size = 65537;
  tether_jwt_verifier *bad;
  assert_int_equal(tether_jwt_verifier_new(&o, &bad), TETHER_EINVAL);
  o.max_token_size = 10;
  assert_int_equal(tether_jwt_verifier_new(&o, &bad), TETHER_EINVAL);
  /* a large signed payload (over the inline buffer, under the cap) verifies */
  tether__buf b = {0};
  tether__buf_append(&b, "{\"pad\":\"", 8);
  for (int i = 0; i < 5000; i++) tether__buf_append(&b, "x", 1);
  tether__buf_append(&b, "\",\"u\":2}", 8);
  char *bt = craft("{\"alg\":\"HS256\"}", b.data, &l.k[0]);
  tether_jwt_claims *c = tether_jwt_claims_new();
  assert_jwt(tether_jwt_verify(v, bt, strlen(bt), c), 0);
  char u[8];
  assert_int_equal(tether_jwt_claim_text(c, "u", u, sizeof(u)), 1);
  assert_int_equal(tether_jwt_claim_text(c, "pad", u, sizeof(u)), TETHER_E2BIG);
  assert_jwt(tether_jwt_verify(v, t, strlen(t), c), 0); /* reuse after a big one */
  assert_int_equal(tether_jwt_claim_text(c, "userId", u, sizeof(u)), 1);
  tether_jwt_claims_free(c);
  tether__buf_free(&b);
  free(bt);
  free(t);
  tether__jwt_keys_free(&l);
  tether_jwt_verifier_free(sv);
  tether_jwt_verifier_free(tv);
  tether_jwt_verifier_free(v);
}

static void test_attack_duplicates(void **state) {
  (void)state;
  clock_ms = tether_now_ms();
  tether_jwt_verifier *v = verifier();
  tether_jwt_verifier_add_secret(v, SECRET, strlen(SECRET), 0, NULL);
  tether__jwt_key_list l = secret_key(SECRET, TETHER_JWT_HS256);
  static const char *const payloads[] = {
      "{\"role\":\"user\",\"role\":\"admin\"}",
      "{\"exp\":1,\"exp\":99999999999}",
      "{\"role\":\"user\",\"r\\u006fle\":\"admin\"}", /* the same name, escaped: jansson decides */
      "{\"a\":{\"b\":1,\"b\":2}}",                    /* nested */
      "{\"sub\":\"x\",\"x\":[1,2],\"sub\":\"y\"}",
  };
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(payloads); i++) {
    char *t = craft("{\"alg\":\"HS256\"}", payloads[i], &l.k[0]);
    assert_jwt(verify(v, t), TETHER_JWT_EDUPLICATE);
    free(t);
  }
  char *t = craft("{\"alg\":\"HS256\",\"alg\":\"HS256\"}", "{}", &l.k[0]);
  assert_jwt(verify(v, t), TETHER_JWT_EDUPLICATE);
  free(t);
  t = craft("{\"alg\":\"none\",\"alg\":\"HS256\"}", "{}", &l.k[0]);
  assert_jwt(verify(v, t), TETHER_JWT_EDUPLICATE);
  free(t);
  t = craft("{\"alg\":\"HS256\",\"\\u0061lg\":\"none\"}", "{}", &l.k[0]);
  assert_jwt(verify(v, t), TETHER_JWT_EDUPLICATE);
  free(t);
  tether__jwt_keys_free(&l);
  tether_jwt_verifier_free(v);
}

static void test_attack_dates(void **state) {
  (void)state;
  clock_ms = 1796032000000LL;
  tether_jwt_verifier *v = verifier();
  tether_jwt_verifier_add_secret(v, SECRET, strlen(SECRET), 0, NULL);
  tether__jwt_key_list l = secret_key(SECRET, TETHER_JWT_HS256);
  static const struct {
    const char *payload;
    int want;
  } cases[] = {
      {"{\"exp\":1e400}", TETHER_JWT_EMALFORMED},                /* overflows a double: not JSON for jansson */
      {"{\"exp\":99999999999999999999}", TETHER_JWT_EMALFORMED}, /* overflows int64 (libjwt #283) */
      {"{\"exp\":9223372036854775807}", TETHER_JWT_EBADDATE},    /* INT64_MAX: exp + leeway must not wrap */
      {"{\"exp\":253402300800}", TETHER_JWT_EBADDATE},           /* year 10000 */
      {"{\"exp\":253402300799}", 0},
      {"{\"exp\":-1}", TETHER_JWT_EBADDATE},
      {"{\"exp\":\"1796035600\"}", TETHER_JWT_EBADDATE},
      {"{\"exp\":null}", TETHER_JWT_EBADDATE},
      {"{\"exp\":true}", TETHER_JWT_EBADDATE},
      {"{\"exp\":[1796035600]}", TETHER_JWT_EBADDATE},
      {"{\"exp\":1.7960356e9}", 0},
      {"{\"exp\":1796031970.5}", 0},                 /* now < exp + 30 */
      {"{\"exp\":1796031970}", TETHER_JWT_EEXPIRED}, /* now == exp + 30 */
      {"{\"exp\":1e300}", TETHER_JWT_EBADDATE},
      {"{\"nbf\":1796032030}", 0}, /* nbf == now + leeway */
      {"{\"nbf\":1796032031}", TETHER_JWT_ENOTYET},
      {"{\"nbf\":1796032030.5}", TETHER_JWT_ENOTYET},
      {"{\"nbf\":-5}", TETHER_JWT_EBADDATE},
      {"{\"iat\":1796032030}", 0},
      {"{\"iat\":1796032031}", TETHER_JWT_EIATFUTURE},
      {"{\"iat\":\"now\"}", TETHER_JWT_EBADDATE},
      {"{\"nbf\":1796032031,\"exp\":1}", TETHER_JWT_ENOTYET}, /* jsonwebtoken checks nbf first */
  };
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(cases); i++) {
    char *t = craft("{\"alg\":\"HS256\"}", cases[i].payload, &l.k[0]);
    int rc = verify(v, t);
    if (rc != cases[i].want) fprintf(stderr, "case %zu: %s\n", i, cases[i].payload);
    assert_jwt(rc, cases[i].want);
    free(t);
  }
  /* the leeway is bounded (jsonwebtoken #1021): at most 5 minutes */
  tether_jwt_verify_options o;
  tether_jwt_verify_options_init(&o);
  tether_jwt_verifier *bad;
  o.leeway_s = 301;
  assert_int_equal(tether_jwt_verifier_new(&o, &bad), TETHER_EINVAL);
  o.leeway_s = -1;
  assert_int_equal(tether_jwt_verifier_new(&o, &bad), TETHER_EINVAL);
  o.leeway_s = 300;
  tether_jwt_verifier *wide = verifier_opts(&o);
  tether_jwt_verifier_add_secret(wide, SECRET, strlen(SECRET), 0, NULL);
  o.leeway_s = 0;
  tether_jwt_verifier *strict = verifier_opts(&o);
  tether_jwt_verifier_add_secret(strict, SECRET, strlen(SECRET), 0, NULL);
  char *t = craft("{\"alg\":\"HS256\"}", "{\"exp\":1796031800}", &l.k[0]); /* expired 200 s ago */
  assert_jwt(verify(wide, t), 0);
  assert_jwt(verify(strict, t), TETHER_JWT_EEXPIRED);
  assert_jwt(verify(v, t), TETHER_JWT_EEXPIRED);
  free(t);
  t = craft("{\"alg\":\"HS256\"}", "{\"exp\":1796032000}", &l.k[0]); /* exp == now: jsonwebtoken says expired */
  assert_jwt(verify(strict, t), TETHER_JWT_EEXPIRED);
  free(t);
  tether__jwt_keys_free(&l);
  tether_jwt_verifier_free(wide);
  tether_jwt_verifier_free(strict);
  tether_jwt_verifier_free(v);
}

/* ---- ordinary failures ---- */

static void test_tampered_truncated_wrong_key(void **state) {
  (void)state;
  clock_ms = 1796032000000LL;
  tether_jwt_signer *s;
  assert_int_equal(tether_jwt_signer_new_secret(SECRET, strlen(SECRET), 0, NULL, &s), 0);
  tether_jwt_signer_set_clock(s, fixed_clock, &clock_ms);
  json_t *payload = json_pack("{s:i,s:s}", "userId", 42, "role", "user");
  char *tok;
  assert_int_equal(tt_sign_json(s, payload, 3600, &tok), 0);
  tether_jwt_verifier *v = verifier();
  tether_jwt_verifier_add_secret(v, SECRET, strlen(SECRET), 0, NULL);
  assert_jwt(verify(v, tok), 0);
  /* every single-character change in header, payload and signature */
  size_t n = strlen(tok);
  char *t = tether__strdup(tok);
  for (size_t i = 0; i < n; i++) {
    if (t[i] == '.') continue;
    char orig = t[i];
    t[i] = orig == 'A' ? 'B' : 'A';
    assert_int_not_equal(verify(v, t), 0);
    t[i] = orig;
  }
  /* the role elevated in the payload, re-encoded, old signature kept */
  char *d1 = strchr(t, '.'), *d2 = strrchr(t, '.');
  char *evil = b64("{\"userId\":42,\"role\":\"admin\",\"iat\":1796032000,\"exp\":1796035600}");
  char *forged = tether__asprintf("%.*s.%s%s", (int)(d1 - t), t, evil, d2);
  assert_jwt(verify(v, forged), TETHER_JWT_ESIGNATURE);
  free(forged);
  free(evil);
  /* every truncation */
  for (size_t i = 0; i < n; i++) assert_int_not_equal(tether_jwt_verify(v, tok, i, NULL), 0);
  /* a trailing byte, and whitespace around */
  char *longer = tether__asprintf("%s ", tok);
  assert_int_not_equal(verify(v, longer), 0);
  free(longer);
  longer = tether__asprintf(" %s", tok);
  assert_int_not_equal(verify(v, longer), 0);
  free(longer);
  /* wrong secrets, wrong algorithms of the same family */
  tether_jwt_verifier *w = verifier();
  tether_jwt_verifier_add_secret(w, "another secret entirely, 0123456789", 35, 0, NULL);
  assert_jwt(verify(w, tok), TETHER_JWT_ESIGNATURE);
  tether_jwt_verifier *w384 = verifier();
  tether_jwt_verifier_add_secret(w384, SECRET, strlen(SECRET), TETHER_JWT_HS384, NULL);
  assert_jwt(verify(w384, tok), TETHER_JWT_EALG);
  /* rotation: two secrets, either verifies */
  tether_jwt_verifier_add_secret(w, SECRET, strlen(SECRET), 0, NULL);
  tether_jwt_claims *c = tether_jwt_claims_new();
  assert_jwt(tether_jwt_verify(w, tok, strlen(tok), c), 0);
  assert_int_equal(tether_jwt_claims_key_index(c), 1);
  tether_jwt_claims_free(c);
  /* a verifier without keys */
  tether_jwt_verifier *none = verifier();
  assert_jwt(verify(none, tok), TETHER_JWT_ENOKEY);
  tether_jwt_verifier_free(none);
  free(t);
  free(tok);
  json_decref(payload);
  tether_jwt_signer_free(s);
  tether_jwt_verifier_free(w);
  tether_jwt_verifier_free(w384);
  tether_jwt_verifier_free(v);
}

static void test_claim_checks(void **state) {
  (void)state;
  clock_ms = 1796032000000LL;
  tether__jwt_key_list l = secret_key(SECRET, TETHER_JWT_HS256);
  tether_jwt_verify_options o;
  tether_jwt_verify_options_init(&o);
  o.issuer = "https://auth.example.com";
  o.audience[0] = "api";
  o.audience[1] = "admin";
  o.audience_count = 2;
  o.subject = "42";
  o.require_exp = 1;
  tether_jwt_verifier *v = verifier_opts(&o);
  tether_jwt_verifier_add_secret(v, SECRET, strlen(SECRET), 0, NULL);
  static const struct {
    const char *payload;
    int want;
  } cases[] = {
      {"{\"iss\":\"https://auth.example.com\",\"aud\":\"api\",\"sub\":\"42\",\"exp\":1796035600}", 0},
      {"{\"iss\":\"https:\\/\\/auth.example.com\",\"aud\":\"admin\",\"sub\":\"4\\u0032\",\"exp\":1796035600}", 0},
      {"{\"iss\":\"https://auth.example.com\",\"aud\":[\"x\",\"api\"],\"sub\":\"42\",\"exp\":1796035600}", 0},
      {"{\"iss\":\"https://auth.example.com\",\"aud\":[1,{\"a\":\"api\"},\"api\"],\"sub\":\"42\",\"exp\":1796035600}",
       0},
      {"{\"iss\":\"https://auth.example.com\",\"aud\":\"api\",\"sub\":\"42\"}", TETHER_JWT_ENOEXP},
      {"{\"iss\":\"https://auth.example.com\",\"aud\":\"web\",\"sub\":\"42\",\"exp\":1796035600}",
       TETHER_JWT_EAUDIENCE},
      {"{\"iss\":\"https://auth.example.com\",\"aud\":[],\"sub\":\"42\",\"exp\":1796035600}", TETHER_JWT_EAUDIENCE},
      {"{\"iss\":\"https://auth.example.com\",\"aud\":[\"ap\"],\"sub\":\"42\",\"exp\":1796035600}",
       TETHER_JWT_EAUDIENCE},
      {"{\"iss\":\"https://auth.example.com\",\"aud\":7,\"sub\":\"42\",\"exp\":1796035600}", TETHER_JWT_EAUDIENCE},
      {"{\"iss\":\"https://auth.example.com\",\"sub\":\"42\",\"exp\":1796035600}", TETHER_JWT_EAUDIENCE},
      {"{\"iss\":\"https://evil.example.com\",\"aud\":\"api\",\"sub\":\"42\",\"exp\":1796035600}", TETHER_JWT_EISSUER},
      {"{\"aud\":\"api\",\"sub\":\"42\",\"exp\":1796035600}", TETHER_JWT_EISSUER},
      {"{\"iss\":[\"https://auth.example.com\"],\"aud\":\"api\",\"sub\":\"42\",\"exp\":1796035600}",
       TETHER_JWT_EISSUER},
      {"{\"iss\":\"https://auth.example.com\",\"aud\":\"api\",\"sub\":42,\"exp\":1796035600}", TETHER_JWT_ESUBJECT},
      {"{\"iss\":\"https://auth.example.com\",\"aud\":\"api\",\"exp\":1796035600}", TETHER_JWT_ESUBJECT},
      {"{\"iss\":\"https://auth.example.com\",\"aud\":\"web\",\"exp\":1796031000}", TETHER_JWT_EEXPIRED}, /* first */
      {"[1,2]", TETHER_JWT_EMALFORMED},
      {"\"string\"", TETHER_JWT_EMALFORMED},
      {"{\"a\":1", TETHER_JWT_EMALFORMED},
      {"{\"a\":1}x", TETHER_JWT_EMALFORMED},
      {"", TETHER_JWT_EMALFORMED},
  };
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(cases); i++) {
    char *t = craft("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", cases[i].payload, &l.k[0]);
    int rc = verify(v, t);
    if (rc != cases[i].want) fprintf(stderr, "case %zu: %s\n", i, cases[i].payload);
    assert_jwt(rc, cases[i].want);
    free(t);
  }
  tether__jwt_keys_free(&l);
  tether_jwt_verifier_free(v);
}

static void test_claims_access(void **state) {
  (void)state;
  clock_ms = 1796032000000LL;
  tether__jwt_key_list l = secret_key(SECRET, TETHER_JWT_HS256);
  tether_jwt_verifier *v = verifier();
  tether_jwt_verifier_add_secret(v, SECRET, strlen(SECRET), 0, NULL);
  const char *payload =
      "{ \"name\" : \"Ren\\u00e9e \\\"R\\\" \\ud83d\\ude00\\n\", \"n\": -12.5e0,\"ok\":false,"
      "\"z\":null, \"list\": [ 1, \"a b\" , true ], \"obj\":{\"k\": [ {} ] } , \"big\":12345678901234567890.5}";
  char *t = craft("{\"alg\":\"HS256\"}", payload, &l.k[0]);
  tether_jwt_claims *c = tether_jwt_claims_new();
  assert_jwt(tether_jwt_verify(v, t, strlen(t), c), 0);
  char buf[128];
  assert_int_equal(tether_jwt_claim_text(c, "name", buf, sizeof(buf)), strlen("Ren\xc3\xa9"
                                                                              "e \"R\" \xf0\x9f\x98\x80\n"));
  assert_string_equal(buf, "Ren\xc3\xa9"
                           "e \"R\" \xf0\x9f\x98\x80\n");
  assert_int_equal(tether_jwt_claim_text(c, "name", buf, 5), TETHER_E2BIG);
  assert_int_equal(tether_jwt_claim_text(c, "n", buf, sizeof(buf)), 7);
  assert_string_equal(buf, "-12.5e0");
  tether_jwt_claim_text(c, "ok", buf, sizeof(buf));
  assert_string_equal(buf, "false");
  tether_jwt_claim_text(c, "z", buf, sizeof(buf));
  assert_string_equal(buf, "null");
  tether_jwt_claim_text(c, "list", buf, sizeof(buf));
  assert_string_equal(buf, "[1,\"a b\",true]");
  tether_jwt_claim_text(c, "obj", buf, sizeof(buf));
  assert_string_equal(buf, "{\"k\":[{}]}");
  tether_jwt_claim_text(c, "big", buf, sizeof(buf));
  assert_string_equal(buf, "12345678901234567890.5");
  assert_int_equal(tether_jwt_claim_text(c, "nope", buf, sizeof(buf)), TETHER_ENOTFOUND);
  json_t *j = tether__jwt_claims_json(c);
  assert_non_null(j);
  assert_ptr_equal(j, tether__jwt_claims_json(c)); /* built once, borrowed */
  assert_int_equal(json_object_size(j), 7);
  free(t);
  /* the fast path (flat claims), and more members than the index holds */
  t = craft("{\"alg\":\"HS256\"}", "{\"userId\":42,\"role\":\"admin\",\"aud\":[\"a\",\"b\"]}", &l.k[0]);
  assert_jwt(tether_jwt_verify(v, t, strlen(t), c), 0);
  assert_null(c->json);
  assert_int_equal(c->nmembers, 3);
  tether_jwt_claim_text(c, "aud", buf, sizeof(buf));
  assert_string_equal(buf, "[\"a\",\"b\"]");
  free(t);
  tether__buf b = {0};
  tether__buf_append(&b, "{", 1);
  for (int i = 0; i < 40; i++) tether__buf_appendf(&b, "%s\"k%d\":%d", i ? "," : "", i, i);
  tether__buf_append(&b, "}", 1);
  t = craft("{\"alg\":\"HS256\"}", b.data, &l.k[0]);
  assert_jwt(tether_jwt_verify(v, t, strlen(t), c), 0);
  assert_int_equal(c->nmembers, -1);
  assert_int_equal(tether_jwt_claim_text(c, "k39", buf, sizeof(buf)), 2);
  assert_string_equal(buf, "39");
  free(t);
  tether__buf_free(&b);
  tether_jwt_claims_free(c);
  tether__jwt_keys_free(&l);
  tether_jwt_verifier_free(v);
}

/* ---- weak HMAC secrets (RFC 7518 section 3.2) ---- */

static void test_weak_secrets(void **state) {
  (void)state;
  static const char weak[] = "hunter2-is-thirty-one-bytes-lon"; /* 31 bytes */
  assert_int_equal(strlen(weak), 31);
  const tether_jwt_alg hs[] = {TETHER_JWT_HS256, TETHER_JWT_HS384, TETHER_JWT_HS512};
  for (size_t i = 0; i < 3; i++) {
    tether_jwt_verifier *v = verifier();
    assert_int_equal(tether_jwt_verifier_add_secret(v, weak, strlen(weak), hs[i], NULL), TETHER_EINVAL);
    assert_null(strstr(tether_last_error(), weak));
    assert_non_null(strstr(tether_last_error(), "32"));
    assert_int_equal(tether_jwt_verifier_key_count(v), 0);
    tether_jwt_verifier_free(v);
    tether_jwt_signer *s = NULL;
    assert_int_equal(tether_jwt_signer_new_secret(weak, strlen(weak), hs[i], NULL, &s), TETHER_EINVAL);
    assert_null(strstr(tether_last_error(), weak));
    assert_null(s);
    assert_int_equal(tether_jwt_signer_new_secret_ex(weak, strlen(weak), hs[i], NULL, TETHER_JWT_WEAK_SECRET_OK, &s),
                     0);
    tether_jwt_signer_free(s);
  }
  /* through key specifications and JWKs too */
  tether_jwt_verifier *v = verifier();
  char *spec = tether__asprintf("literal:%s", weak);
  assert_int_equal(tether_jwt_verifier_add_key(v, spec, NULL, NULL), TETHER_EINVAL);
  assert_null(strstr(tether_last_error(), weak));
  tether_jwt_signer *s = NULL;
  assert_int_equal(tether_jwt_signer_new(spec, NULL, NULL, &s), TETHER_EINVAL);
  assert_null(strstr(tether_last_error(), weak));
  assert_int_equal(tether_jwt_verifier_add_jwk(v, "{\"kty\":\"oct\",\"k\":\"YmJi\"}", 25, 0), TETHER_EINVAL);
  assert_int_equal(tether_jwt_verifier_add_secret(v, SECRET, strlen(SECRET), 0, NULL), 1); /* 32+ bytes: fine */
  tether_jwt_verifier_free(v);
  /* the explicit opt-out, as the balancer's configuration sets it */
  tether_jwt_verify_options o;
  tether_jwt_verify_options_init(&o);
  assert_int_equal(o.weak_secret_ok, 0);
  o.weak_secret_ok = 1;
  assert_int_equal(tether_jwt_verifier_new(&o, &v), 0);
  assert_int_equal(tether_jwt_verifier_add_key(v, spec, NULL, NULL), 1);
  tether_jwt_verifier_free(v);
  /* a PEM given where a secret is expected: the message does not quote it */
  setenv("TETHER_TEST_JWT_PEM", "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n", 1);
  assert_int_equal(tether_jwt_signer_new("env:TETHER_TEST_JWT_PEM", "HS256", NULL, &s), TETHER_EINVAL);
  assert_null(strstr(tether_last_error(), "MIIEvQ"));
  free(spec);
}

/* ---- signing ---- */

static void test_sign_like_jsonwebtoken(void **state) {
  (void)state;
  /* node -e "jwt.sign({userId:42,role:'admin'},'s',{expiresIn:'1h'})" with Date.now() at 1796032000123 */
  static const char node_token[] =
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VySWQiOjQyLCJyb2xlIjoiYWRtaW4iLCJpYXQiOjE3OTYwMzIwMDAsImV4cCI6MTc5Nj"
      "AzNTYwMH0.r7N_cqbo5rxG1uKGqDRiCsnimEML0LysANfiDRTajMw";
  int64_t now = 1796032000123LL;
  tether_jwt_signer *s;
  assert_int_equal(tether_jwt_signer_new("literal:s", NULL, NULL, &s), TETHER_EINVAL); /* 1 byte: too weak */
  assert_int_equal(tether_jwt_signer_new_ex("literal:s", NULL, NULL, TETHER_JWT_WEAK_SECRET_OK, &s), 0);
  tether_jwt_signer_set_clock(s, fixed_clock, &now);
  assert_int_equal(tether_jwt_signer_alg(s), TETHER_JWT_HS256);
  json_t *payload = json_pack("{s:i,s:s}", "userId", 42, "role", "admin");
  char *tok;
  assert_int_equal(tt_sign_json(s, payload, 3600, &tok), 0);
  assert_string_equal(tok, node_token);
  free(tok);
  /* an iat in the payload keeps its place and anchors exp; an exp and expires_in together are refused */
  json_t *p2 = json_pack("{s:i,s:i}", "iat", 1000, "u", 1);
  assert_int_equal(tt_sign_json(s, p2, 60, &tok), 0);
  char *dot = strchr(tok, '.');
  uint8_t pl[128];
  int n = tether__base64url_decode(dot + 1, (size_t)(strrchr(tok, '.') - dot - 1), pl, sizeof(pl));
  assert_int_equal(n, (int)strlen("{\"iat\":1000,\"u\":1,\"exp\":1060}"));
  assert_memory_equal(pl, "{\"iat\":1000,\"u\":1,\"exp\":1060}", (size_t)n);
  free(tok);
  json_object_set_new(p2, "exp", json_integer(5));
  assert_int_equal(tt_sign_json(s, p2, 60, &tok), TETHER_EINVAL);
  assert_null(tok);
  assert_int_equal(tt_sign_json(s, p2, TETHER_JWT_NO_EXPIRY, &tok), 0);
  free(tok);
  json_t *arr = json_array();
  assert_int_equal(tt_sign_json(s, arr, 60, &tok), TETHER_EINVAL);
  json_decref(arr);
  json_decref(p2);
  tether_jwt_signer_free(s);
  /* every algorithm signs what the matching verifier accepts; kid goes into the header */
  static const struct {
    tether_jwt_alg alg;
    const char *type, *param;
  } gen[] = {{TETHER_JWT_RS256, "RSA", NULL},   {TETHER_JWT_RS512, "RSA", NULL},    {TETHER_JWT_PS256, "RSA", NULL},
             {TETHER_JWT_PS512, "RSA", NULL},   {TETHER_JWT_ES256, "EC", "P-256"},  {TETHER_JWT_ES384, "EC", "P-384"},
             {TETHER_JWT_ES512, "EC", "P-521"}, {TETHER_JWT_EDDSA, "ED25519", NULL}};
  EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  assert_non_null(rsa);
  clock_ms = tether_now_ms();
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(gen); i++) {
    EVP_PKEY *pk;
    if (gen[i].param)
      pk = EVP_PKEY_Q_keygen(NULL, NULL, gen[i].type, gen[i].param);
    else if (strcmp(gen[i].type, "RSA") == 0)
      pk = rsa, EVP_PKEY_up_ref(rsa);
    else
      pk = EVP_PKEY_Q_keygen(NULL, NULL, gen[i].type);
    assert_non_null(pk);
    char *priv = pem_of(pk, 1), *pub = pem_of(pk, 0);
    assert_int_equal(tether_jwt_signer_new_pem(priv, strlen(priv), gen[i].alg, "k-1", &s), 0);
    assert_int_equal(tether_jwt_signer_new_pem(pub, strlen(pub), gen[i].alg, NULL, &(tether_jwt_signer *){NULL}),
                     TETHER_EINVAL); /* a public key cannot sign */
    assert_int_equal(tt_sign_json(s, payload, 60, &tok), 0);
    tether_jwt_verifier *v = verifier();
    assert_int_equal(tether_jwt_verifier_add_pem(v, pub, strlen(pub), gen[i].alg, "k-1"), 1);
    tether_jwt_claims *c = tether_jwt_claims_new();
    assert_jwt(tether_jwt_verify(v, tok, strlen(tok), c), 0);
    assert_int_equal(tether_jwt_claims_alg(c), gen[i].alg);
    tether_jwt_claims_free(c);
    uint8_t hdr[128];
    int hn = tether__base64url_decode(tok, (size_t)(strchr(tok, '.') - tok), hdr, sizeof(hdr));
    char *want =
        tether__asprintf("{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"k-1\"}", tether__jwt_algs[gen[i].alg].name);
    assert_int_equal(hn, (int)strlen(want));
    assert_memory_equal(hdr, want, (size_t)hn);
    free(want);
    free(tok);
    free(priv);
    free(pub);
    tether_jwt_signer_free(s);
    tether_jwt_verifier_free(v);
    EVP_PKEY_free(pk);
  }
  EVP_PKEY_free(rsa);
  json_decref(payload);
}

/* ---- keys ---- */

static void test_key_specs(void **state) {
  (void)state;
  clock_ms = tether_now_ms();
  char *dir = tt_tmpdir("jwt");
  tether_jwt_signer *s;
  assert_int_equal(tether_jwt_signer_new_secret(SECRET, strlen(SECRET), 0, NULL, &s), 0);
  json_t *payload = json_pack("{s:i}", "userId", 7);
  char *tok;
  assert_int_equal(tt_sign_json(s, payload, 60, &tok), 0);
  struct {
    const char *spec;
    int want;
  } ok[] = {{"env:TETHER_TEST_JWT_SECRET", 1},
            {"literal:interop-secret-that-is-long-enough-0123456789", 1},
            {"interop-secret-that-is-long-enough-0123456789", 1}};
  setenv("TETHER_TEST_JWT_SECRET", SECRET, 1);
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(ok); i++) {
    tether_jwt_verifier *v = verifier();
    assert_int_equal(tether_jwt_verifier_add_key(v, ok[i].spec, "HS256", NULL), ok[i].want);
    assert_jwt(verify(v, tok), 0);
    tether_jwt_verifier_free(v);
  }
  /* a secret file: its one trailing newline is not part of the secret */
  char *secret_nl = tether__asprintf("%s\n", SECRET);
  char *path = write_tmp(dir, "secret", secret_nl);
  char *fspec = tether__asprintf("file:%s", path);
  for (int i = 0; i < 2; i++) {
    tether_jwt_verifier *v = verifier();
    assert_int_equal(tether_jwt_verifier_add_key(v, i ? fspec : path, NULL, NULL), 1);
    assert_jwt(verify(v, tok), 0);
    tether_jwt_verifier_free(v);
  }
  /* errors, each with a message */
  tether_jwt_verifier *v = verifier();
  unsetenv("TETHER_TEST_JWT_UNSET");
  const char *bad[] = {"env:TETHER_TEST_JWT_UNSET", "/nonexistent/key.pem", "", "./nonexistent"};
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(bad); i++) {
    tether__clear_error();
    assert_int_equal(tether_jwt_verifier_add_key(v, bad[i], NULL, NULL), TETHER_EINVAL);
    assert_true(tether_last_error()[0] != '\0');
  }
  assert_int_equal(tether_jwt_verifier_add_key(v, "literal:x", "RS256", NULL), TETHER_EINVAL);
  assert_int_equal(tether_jwt_verifier_add_key(v, "literal:x", "HS999", NULL), TETHER_EINVAL);
  assert_int_equal(tether_jwt_verifier_add_key(v, "literal:", NULL, NULL), TETHER_EINVAL);
  /* a bare word that names an existing file is ambiguous */
  char cwd[512];
  assert_non_null(getcwd(cwd, sizeof(cwd)));
  assert_int_equal(chdir(dir), 0);
  assert_int_equal(tether_jwt_verifier_add_key(v, "secret", NULL, NULL), TETHER_EINVAL);
  assert_int_equal(tether_jwt_verifier_add_key(v, "./secret", NULL, NULL), 1);
  assert_int_equal(chdir(cwd), 0);
  /* PEM: RSA under 2048 bits, an encrypted key, a curve/alg mismatch, a certificate */
  EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
  char *sp = pem_of(small, 0);
  assert_int_equal(tether_jwt_verifier_add_pem(v, sp, strlen(sp), 0, NULL), TETHER_EINVAL);
  assert_non_null(strstr(tether_last_error(), "2048"));
  EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  BIO *bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, ec, EVP_aes_128_cbc(), NULL, 0, NULL, (void *)"pass");
  char *enc;
  long en = BIO_get_mem_data(bio, &enc);
  assert_int_equal(tether_jwt_verifier_add_pem(v, enc, (size_t)en, 0, NULL), TETHER_EINVAL);
  BIO_free(bio);
  char *ecpub = pem_of(ec, 0);
  assert_int_equal(tether_jwt_verifier_add_pem(v, ecpub, strlen(ecpub), TETHER_JWT_ES384, NULL), TETHER_EINVAL);
  assert_int_equal(tether_jwt_verifier_add_pem(v, ecpub, strlen(ecpub), TETHER_JWT_RS256, NULL), TETHER_EINVAL);
  assert_int_equal(tether_jwt_verifier_add_pem(v, ecpub, strlen(ecpub), TETHER_JWT_HS256, NULL), TETHER_EINVAL);
  assert_int_equal(tether_jwt_verifier_add_pem(v, "not a pem", 9, 0, NULL), TETHER_EINVAL);
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, ec);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const uint8_t *)"tether", -1, -1, 0);
  X509_set_issuer_name(x, X509_get_subject_name(x));
  assert_true(X509_sign(x, ec, EVP_sha256()) > 0);
  bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, x);
  char *cert;
  long cn = BIO_get_mem_data(bio, &cert);
  assert_int_equal(tether_jwt_verifier_add_pem(v, cert, (size_t)cn, 0, "cert"), 1);
  BIO_free(bio);
  X509_free(x);
  /* a JWKS file: kid selects; keys for encryption and unknown types are skipped */
  char *secret_b64 = b64(SECRET);
  char *jwks = tether__asprintf(
      "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"enc\",\"use\":\"enc\",\"k\":\"AAAA\"},"
      "{\"kty\":\"oct\",\"kid\":\"a\",\"k\":\"%s\"},"
      "{\"kty\":\"oct\",\"kid\":\"b\",\"alg\":\"HS384\",\"k\":\"YmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJi\"},"
      "{\"kty\":\"X448\",\"kid\":\"c\"},%s]}",
      secret_b64, RFC8037_A2_JWK);
  char *jpath = write_tmp(dir, "jwks.json", jwks);
  tether_jwt_verifier *jv = verifier();
  assert_int_equal(tether_jwt_verifier_add_key(jv, jpath, NULL, NULL), 3);
  assert_jwt(verify(jv, tok), 0);
  tether_jwt_verifier *kv = verifier();
  assert_int_equal(tether_jwt_verifier_add_key(kv, jpath, NULL, "a"), 1);
  assert_int_equal(tether_jwt_verifier_add_key(kv, jpath, NULL, "zzz"), TETHER_EINVAL);
  assert_int_equal(tether_jwt_verifier_add_key(kv, jpath, NULL, "enc"), TETHER_EINVAL);
  assert_jwt(verify(kv, tok), 0);
  /* a signer from a JWKS needs kid when it holds several keys, and a private key */
  tether_jwt_signer *js;
  assert_int_equal(tether_jwt_signer_new(jpath, NULL, NULL, &js), TETHER_EINVAL);
  assert_int_equal(tether_jwt_signer_new(jpath, NULL, "a", &js), 0);
  char *tok2;
  assert_int_equal(tt_sign_json(js, payload, 60, &tok2), 0);
  assert_jwt(verify(kv, tok2), 0); /* header kid "a" */
  free(tok2);
  tether_jwt_signer_free(js);
  char *pubjwks = write_tmp(dir, "pub.json", RFC8037_A2_JWK);
  assert_int_equal(tether_jwt_signer_new(pubjwks, NULL, NULL, &js), TETHER_EINVAL);
  const char *badjwk[] = {"{\"keys\":[{\"kty\":\"oct\",\"k\":\"a=\"}]}",
                          "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\"}]}",
                          "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}",
                          "{\"kty\":\"EC\",\"crv\":\"secp256k1\",\"x\":\"AAAA\",\"y\":\"AAAA\"}",
                          "{\"kty\":\"oct\",\"alg\":\"RS256\",\"k\":\"AAAA\"}",
                          "{\"keys\":{}}",
                          "{\"a\":1,\"a\":2}",
                          "[]",
                          "{\"keys\":[]}"};
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(badjwk); i++)
    assert_int_equal(tether_jwt_verifier_add_jwk(kv, badjwk[i], strlen(badjwk[i]), 0), TETHER_EINVAL);
  /* an EC point not on the curve */
  const char *offcurve = "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
                         "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a1\"}";
  assert_int_equal(tether_jwt_verifier_add_jwk(kv, offcurve, strlen(offcurve), 0), TETHER_EINVAL);
  unlink(pubjwks);
  unlink(jpath);
  unlink(path);
  free(pubjwks);
  free(jpath);
  free(jwks);
  free(secret_b64);
  free(ecpub);
  free(sp);
  EVP_PKEY_free(small);
  EVP_PKEY_free(ec);
  free(fspec);
  free(path);
  free(secret_nl);
  free(tok);
  json_decref(payload);
  tether_jwt_signer_free(s);
  tether_jwt_verifier_free(jv);
  tether_jwt_verifier_free(kv);
  tether_jwt_verifier_free(v);
  tt_rmrf(dir);
  free(dir);
}

/* ---- the JSON scanner agrees with jansson ---- */

static void test_scanner_vs_jansson(void **state) {
  (void)state;
  static const char *const texts[] = {
      "{}",
      " { } ",
      "{\"a\":1}",
      "{\"a\":-0}",
      "{\"a\":01}",
      "{\"a\":-}",
      "{\"a\":1.}",
      "{\"a\":.5}",
      "{\"a\":1e5}",
      "{\"a\":1E+5}",
      "{\"a\":1e}",
      "{\"a\":+1}",
      "{\"a\":9223372036854775807}",
      "{\"a\":9223372036854775808}",
      "{\"a\":123456789012345678}",
      "{\"a\":tru}",
      "{\"a\":truex}",
      "{\"a\":true1}",
      "{\"a\":nul}",
      "{\"a\":null}",
      "{\"a\":\"\\u0000\"}",
      "{\"a\":\"\\ud800\"}",
      "{\"a\":\"\\udc00\"}",
      "{\"a\":\"\\ud800\\udc00\"}",
      "{\"a\":\"\\ud800\\u0041\"}",
      "{\"a\":\"\\x\"}",
      "{\"a\":\"\\u12\"}",
      "{\"a\":\"\x01\"}",
      "{\"a\":\"\x7f\"}",
      "{\"a\":\"\xc3\xa9\"}",
      "{\"a\":\"\xc3\"}",
      "{\"a\":\"\xc0\x80\"}",
      "{\"a\":\"\xed\xa0\x80\"}",
      "{\"a\":\"\xf4\x90\x80\x80\"}",
      "{\"a\":\"\xf0\x9f\x98\x80\"}",
      "{\"a\":[]}",
      "{\"a\":[1,]}",
      "{\"a\":[,1]}",
      "{\"a\":[1 2]}",
      "{\"a\":[[1]]}",
      "{\"a\":{}}",
      "{\"a\":1,}",
      "{,}",
      "{\"a\" 1}",
      "{\"a\":1} x",
      "{\"a\":1}\n",
      "{\"a\":1}\x00",
      "[1]",
      "1",
      "",
      "{\"\":1}",
      "{\"a\":1,\"a\":2}",
      "{\"a\\n\":1}",
      "\xef\xbb\xbf{}",
      "{\"a\":1}}",
      "{\"a\":\"b\"\"c\":1}",
      "{\"a\":[\"x\",{\"y\":1}]}",
      "{\"a\":1.5,\"b\":[true,false,null,\"s\",-2]}",
  };
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(texts); i++) {
    size_t n = strlen(texts[i]);
    if (i == 46) n++; /* the embedded NUL */
    int verdict = tether__jwt_scan_verdict(texts[i], n);
    json_error_t err;
    json_t *j = json_loadb(texts[i], n, JSON_REJECT_DUPLICATES, &err);
    int jansson_ok = j != NULL && json_is_object(j);
    if (verdict == TETHER__SCAN_OK && !jansson_ok)
      fprintf(stderr, "scanner accepts, jansson refuses: %zu %s\n", i, texts[i]);
    if (verdict < 0 && jansson_ok) fprintf(stderr, "scanner refuses, jansson accepts: %zu %s\n", i, texts[i]);
    assert_false(verdict == TETHER__SCAN_OK && !jansson_ok);
    assert_false(verdict < 0 && jansson_ok);
    json_decref(j);
  }
  /* the flat common case takes the fast path */
  const char *flat = "{\"userId\":42,\"role\":\"admin\",\"iat\":1,\"exp\":2}";
  assert_int_equal(tether__jwt_scan_verdict(flat, strlen(flat)), TETHER__SCAN_OK);
}

/* The verifier's base64url decoder is util.c's, only faster: same results on the same inputs. */
static void test_b64url_same_as_util(void **state) {
  (void)state;
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=. \x80";
  uint64_t x = 0x9e3779b97f4a7c15ull;
  char in[64];
  uint8_t a[64], b[64];
  for (int iter = 0; iter < 200000; iter++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    size_t n = (size_t)(x % 41);
    int clean = (x >> 8) % 4 != 0; /* mostly valid characters, so canonical and length rules are reached */
    for (size_t i = 0; i < n; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      in[i] = alphabet[x % (clean ? 64 : sizeof(alphabet) - 1)];
    }
    size_t cap = (x >> 20) % 2 ? sizeof(a) : n / 2;
    int ra = tether__base64url_decode_quiet(in, n, a, cap), rb = tether__base64url_decode(in, n, b, cap);
    assert_int_equal(ra, rb);
    if (ra > 0) assert_memory_equal(a, b, (size_t)ra);
  }
}

/* The opt-in cache of verified tokens: hits skip only the signature, never the claims. */
static void test_verified_cache(void **state) {
  (void)state;
  clock_ms = (int64_t)(RFC7515_EXP - 100) * 1000;
  tether_jwt_verify_options o;
  tether_jwt_verify_options_init(&o);
  o.cache = 1;
  tether_jwt_verifier *v = verifier_opts(&o);
  tether_jwt_verifier_add_jwk(v, RFC7515_A1_JWK, strlen(RFC7515_A1_JWK), 0);
  tether_jwt_verifier_add_jwk(v, RFC7515_A3_JWK, strlen(RFC7515_A3_JWK), 0);
  uint8_t d[32];
  assert_int_equal(EVP_Digest(RFC7515_A3_TOKEN, strlen(RFC7515_A3_TOKEN), d, NULL, EVP_sha256(), NULL), 1);
  assert_int_equal(tether__jwt_vcache_lookup(v->id, d), -1);
  assert_jwt(verify(v, RFC7515_A3_TOKEN), 0);
  assert_int_equal(tether__jwt_vcache_lookup(v->id, d), 1); /* the second key verified it */
  tether_jwt_claims *c = tether_jwt_claims_new();
  assert_jwt(tether_jwt_verify(v, RFC7515_A3_TOKEN, strlen(RFC7515_A3_TOKEN), c), 0); /* a hit */
  assert_int_equal(tether_jwt_claims_key_index(c), 1);
  char iss[8];
  assert_int_equal(tether_jwt_claim_text(c, "iss", iss, sizeof(iss)), 3);
  tether_jwt_claims_free(c);
  /* claims are checked on hits too */
  clock_ms = (int64_t)(RFC7515_EXP + 60) * 1000;
  assert_jwt(verify(v, RFC7515_A3_TOKEN), TETHER_JWT_EEXPIRED);
  clock_ms = (int64_t)(RFC7515_EXP - 100) * 1000;
  /* another token text is another entry: a changed signature character is checked, and refused */
  char *t = tether__strdup(RFC7515_A3_TOKEN);
  char *last = t + strlen(t) - 3;
  *last = *last == 'A' ? 'B' : 'A';
  assert_jwt(verify(v, t), TETHER_JWT_ESIGNATURE);
  free(t);
  /* HMAC is never cached (as cheap as the hash), and another verifier does not see this one's entries */
  assert_jwt(verify(v, RFC7515_A1_TOKEN), 0);
  assert_int_equal(EVP_Digest(RFC7515_A1_TOKEN, strlen(RFC7515_A1_TOKEN), d, NULL, EVP_sha256(), NULL), 1);
  assert_int_equal(tether__jwt_vcache_lookup(v->id, d), -1);
  tether_jwt_verifier *other = verifier_opts(&o);
  EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  char *pem = pem_of(pk, 0);
  tether_jwt_verifier_add_pem(other, pem, strlen(pem), 0, NULL);
  assert_jwt(verify(other, RFC7515_A3_TOKEN), TETHER_JWT_ESIGNATURE);
  free(pem);
  EVP_PKEY_free(pk);
  tether_jwt_verifier_free(other);
  tether_jwt_verifier_free(v);
}

/* ---- threads ---- */

typedef struct thread_arg {
  const tether_jwt_verifier *v;
  const char *tokens[3];
  int failures;
} thread_arg;

static void *verify_loop(void *p) {
  thread_arg *a = p;
  tether_jwt_claims *c = tether_jwt_claims_new();
  char buf[32];
  for (int i = 0; i < 1500; i++) {
    const char *t = a->tokens[i % 3];
    if (tether_jwt_verify(a->v, t, strlen(t), c) != 0)
      a->failures++;
    else if (tether_jwt_claim_text(c, "userId", buf, sizeof(buf)) != 2 || strcmp(buf, "42") != 0)
      a->failures++;
  }
  tether_jwt_claims_free(c);
  return NULL;
}

static void test_threads(void **state) {
  (void)state;
  clock_ms = tether_now_ms();
  tether_jwt_verify_options o;
  tether_jwt_verify_options_init(&o);
  o.cache = 1; /* half the threads below use the cache of verified tokens */
  tether_jwt_verifier *v = verifier(), *cv = verifier_opts(&o);
  for (int i = 0; i < 2; i++) {
    tether_jwt_verifier_add_secret(i ? cv : v, SECRET, strlen(SECRET), 0, NULL);
    tether_jwt_verifier_add_jwk(i ? cv : v, RFC7515_A3_JWK, strlen(RFC7515_A3_JWK), 0);
    tether_jwt_verifier_add_jwk(i ? cv : v, RFC7515_A2_JWK, strlen(RFC7515_A2_JWK), 0);
  }
  tether__jwt_key_list hs = secret_key(SECRET, TETHER_JWT_HS256), es = jwk_keys(RFC7515_A3_JWK, 0),
                       rs = jwk_keys(RFC7515_A2_JWK, 0);
  thread_arg arg = {.v = v};
  char *t0 = craft("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", "{\"userId\":42}", &hs.k[0]);
  char *t1 = craft("{\"alg\":\"ES256\",\"typ\":\"JWT\"}", "{\"userId\":42}", &es.k[0]);
  char *t2 = craft("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", "{\"userId\":42}", &rs.k[0]);
  arg.tokens[0] = t0, arg.tokens[1] = t1, arg.tokens[2] = t2;
  thread_arg args[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    args[i] = arg;
    if (i % 2) args[i].v = cv;
    assert_int_equal(pthread_create(&th[i], NULL, verify_loop, &args[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(args[i].failures, 0);
  }
  free(t0);
  free(t1);
  free(t2);
  tether__jwt_keys_free(&hs);
  tether__jwt_keys_free(&es);
  tether__jwt_keys_free(&rs);
  tether_jwt_verifier_free(v);
  tether_jwt_verifier_free(cv);
  tether_jwt_thread_cleanup();
}

static void test_reasons(void **state) {
  (void)state;
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(results); i++) {
    for (size_t j = i + 1; j < TETHER__ARRAY_SIZE(results); j++) {
      assert_int_not_equal(results[i].code, results[j].code);
      assert_string_not_equal(results[i].reason, results[j].reason);
    }
    for (const char *p = results[i].reason; *p; p++) assert_true((*p >= 'a' && *p <= 'z') || *p == '_');
  }
  assert_string_equal(tether_jwt_reason(TETHER_JWT_EEXPIRED), "expired");
  assert_string_equal(tether_jwt_reason(TETHER_JWT_ENOTYET), "not_yet_valid");
  assert_string_equal(tether_jwt_reason(TETHER_JWT_ESIGNATURE), "bad_signature");
  assert_string_equal(tether_jwt_reason(TETHER_JWT_EALG), "alg_mismatch");
  assert_string_equal(tether_jwt_reason(TETHER_EINVAL), "error");
  assert_string_equal(tether_jwt_message(TETHER_JWT_EEXPIRED), "jwt expired");
  assert_string_equal(tether_jwt_message(TETHER_JWT_ENOTYET), "jwt not active");
  assert_string_equal(tether_jwt_alg_name(TETHER_JWT_EDDSA), "EdDSA");
  assert_int_equal(tether_jwt_alg_from_name("PS384"), TETHER_JWT_PS384);
  assert_int_equal(tether_jwt_alg_from_name("none"), TETHER_JWT_ALG_UNKNOWN);
  assert_string_equal(tether_jwt_alg_name((tether_jwt_alg)99), "unknown");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rfc7515_a1_hs256),
      cmocka_unit_test(test_rfc7515_a1_noncanonical),
      cmocka_unit_test(test_rfc7515_a2_rs256),
      cmocka_unit_test(test_rfc7515_a3_es256),
      cmocka_unit_test(test_rfc7520),
      cmocka_unit_test(test_rfc8037_ed25519),
      cmocka_unit_test(test_attack_alg_none),
      cmocka_unit_test(test_attack_alg_confusion),
      cmocka_unit_test(test_attack_kid),
      cmocka_unit_test(test_attack_embedded_keys),
      cmocka_unit_test(test_attack_psychic_signatures),
      cmocka_unit_test(test_attack_oversized),
      cmocka_unit_test(test_attack_duplicates),
      cmocka_unit_test(test_attack_dates),
      cmocka_unit_test(test_tampered_truncated_wrong_key),
      cmocka_unit_test(test_claim_checks),
      cmocka_unit_test(test_claims_access),
      cmocka_unit_test(test_weak_secrets),
      cmocka_unit_test(test_sign_like_jsonwebtoken),
      cmocka_unit_test(test_key_specs),
      cmocka_unit_test(test_scanner_vs_jansson),
      cmocka_unit_test(test_b64url_same_as_util),
      cmocka_unit_test(test_verified_cache),
      cmocka_unit_test(test_threads),
      cmocka_unit_test(test_reasons),
  };
  int failed = cmocka_run_group_tests_name("jwt", tests, NULL, NULL);
  tether_jwt_thread_cleanup();
  return failed;
}
