/* libFuzzer harness: libtether's JWT verifier (src/lib/jwt.c). The first byte picks what the rest is:
 *   0: a token as a client might send it, verified with HS256 (kid k1), ES256, RS256 and EdDSA keys;
 *   1: claims JSON, signed here with HS256 so the claims parser is reached; the fast scanner's verdict
 *      and the verifier's result must agree with jansson (JSON_REJECT_DUPLICATES), and every claim read
 *      back through tether_jwt_claim_text must match jansson's value;
 *   2: a header JSON, signed here: a token verifies only when jansson sees an object with alg HS256 and
 *      no crit;
 *   3: base64url text: the verifier's table-driven decoder agrees with tether__base64url_decode. */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jwt_impl.h"
#include "tether/jwt.h"
#include "util.h"

static const char SECRET[] = "fuzz-secret-0123456789-0123456789";
static const char ES256_JWK[] =
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
    "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}";
static const char ED25519_JWK[] =
    "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}";

static tether_jwt_verifier *verifier;
static int64_t now_ms = 1300819000000LL; /* before RFC 7515's exp, so its examples verify */

static int64_t fixed_clock(void *arg) { return *(int64_t *)arg; }

static void setup(void) {
  tether_jwt_verify_options o;
  tether_jwt_verify_options_init(&o);
  o.clock = fixed_clock;
  o.clock_arg = &now_ms;
  o.cache = 1; /* the RFC 7515 A.3 seed verifies, so the cache of verified tokens is reached too */
  if (tether_jwt_verifier_new(&o, &verifier) != 0 ||
      tether_jwt_verifier_add_secret(verifier, SECRET, strlen(SECRET), TETHER_JWT_HS256, NULL) != 1 ||
      tether_jwt_verifier_add_secret(verifier, SECRET, strlen(SECRET), TETHER_JWT_HS384, "k1") != 1 ||
      tether_jwt_verifier_add_jwk(verifier, ES256_JWK, strlen(ES256_JWK), 0) != 1 ||
      tether_jwt_verifier_add_jwk(verifier, ED25519_JWK, strlen(ED25519_JWK), 0) != 1)
    abort();
}

static int is_jwt_error(int rc) { return rc <= TETHER_JWT_ETOOLARGE && rc >= TETHER_JWT_ESUBJECT; }

/* b64(header).b64(payload).b64(HMAC-SHA256) */
static char *sign(const char *header, size_t hn, const char *payload, size_t pn) {
  char *tok = malloc((hn + 2) / 3 * 4 + (pn + 2) / 3 * 4 + 64);
  size_t o = tether__base64url_encode((const uint8_t *)header, hn, tok);
  tok[o++] = '.';
  o += tether__base64url_encode((const uint8_t *)payload, pn, tok + o);
  uint8_t mac[EVP_MAX_MD_SIZE];
  unsigned int maclen = 0;
  HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const uint8_t *)tok, o, mac, &maclen);
  tok[o++] = '.';
  tether__base64url_encode(mac, maclen, tok + o);
  return tok;
}

/* Every member jansson sees reads back the same through the claims accessors. */
static void check_claims(tether_jwt_claims *c, json_t *want) {
  const char *name;
  json_t *value;
  char buf[256];
  json_object_foreach(want, name, value) {
    int n = tether_jwt_claim_text(c, name, buf, sizeof(buf));
    if (n == TETHER_E2BIG) continue;
    if (n < 0) abort();
    if (json_is_string(value) &&
        ((size_t)n != json_string_length(value) || memcmp(buf, json_string_value(value), (size_t)n) != 0))
      abort();
    if (json_is_integer(value) && strtoll(buf, NULL, 10) != json_integer_value(value)) abort();
    if (json_is_true(value) && strcmp(buf, "true") != 0) abort();
    if (json_is_null(value) && strcmp(buf, "null") != 0) abort();
    if (json_is_object(value) || json_is_array(value)) {
      json_t *back = json_loads(buf, 0, NULL);
      if (!json_equal(back, value)) abort();
      json_decref(back);
    }
  }
  if (!json_equal(tether__jwt_claims_json(c), want)) abort();
}

static void claims_case(const char *p, size_t n) {
  int verdict = tether__jwt_scan_verdict(p, n);
  json_t *j = json_loadb(p, n, JSON_REJECT_DUPLICATES, NULL);
  int object = json_is_object(j) && memchr(p, '\0', n) == NULL; /* jansson skips some NUL bytes; we refuse them */
  if (verdict == 0 && !object) abort();                         /* the scanner accepted what jansson refuses */
  if (verdict < 0 && object) abort();                           /* the scanner refused what jansson accepts */
  char *tok = sign("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", 27, p, n);
  tether_jwt_claims *c = tether_jwt_claims_new();
  int rc = tether_jwt_verify(verifier, tok, strlen(tok), c);
  if (rc != 0 && !is_jwt_error(rc) && rc != TETHER_JWT_ETOOLARGE) abort();
  if (!object && rc != TETHER_JWT_EMALFORMED && rc != TETHER_JWT_EDUPLICATE && rc != TETHER_JWT_ETOOLARGE) abort();
  if (object && (rc == TETHER_JWT_EMALFORMED || rc == TETHER_JWT_EDUPLICATE || rc == TETHER_JWT_ESIGNATURE ||
                 rc == TETHER_JWT_EENCODING))
    abort();
  if (rc == 0) check_claims(c, j);
  tether_jwt_claims_free(c);
  json_decref(j);
  free(tok);
}

static void header_case(const char *p, size_t n) {
  json_t *j = json_loadb(p, n, JSON_REJECT_DUPLICATES, NULL);
  char *tok = sign(p, n, "{}", 2);
  int rc = tether_jwt_verify(verifier, tok, strlen(tok), NULL);
  const char *alg = json_string_value(json_object_get(j, "alg"));
  json_t *kid = json_object_get(j, "kid");
  int good = json_is_object(j) && memchr(p, '\0', n) == NULL && alg != NULL && strcmp(alg, "HS256") == 0 &&
             json_object_get(j, "crit") == NULL && (kid == NULL || json_is_string(kid));
  if (rc == 0 && !good) abort();
  if ((!json_is_object(j) || memchr(p, '\0', n) != NULL) && rc != TETHER_JWT_EMALFORMED &&
      rc != TETHER_JWT_EDUPLICATE && rc != TETHER_JWT_ETOOLARGE)
    abort();
  if (good && rc != 0 && rc != TETHER_JWT_ETOOLARGE) abort(); /* the HS256 key has no kid: any kid is fine */
  json_decref(j);
  free(tok);
}

static void token_case(const char *p, size_t n) {
  tether_jwt_claims *c = tether_jwt_claims_new();
  int rc = tether_jwt_verify(verifier, p, n, c);
  if (rc != 0 && !is_jwt_error(rc)) abort();
  if (rc == 0) {
    json_t *j = tether__jwt_claims_json(c);
    if (!json_is_object(j)) abort();
    size_t len;
    if (tether_jwt_claims_payload(c, &len) == NULL) abort();
    check_claims(c, j);
  }
  tether_jwt_claims_free(c);
  uint8_t out[8192];
  size_t outlen;
  rc = tether_jws_verify(verifier, p, n, out, sizeof(out), &outlen);
  if (rc != 0 && !is_jwt_error(rc) && rc != TETHER_E2BIG) abort();
}

static void b64_case(const char *p, size_t n) {
  uint8_t *a = malloc(n + 1), *b = malloc(n + 1);
  int ra = tether__jwt_b64url_decode(p, n, a, n + 1);
  int rb = tether__base64url_decode(p, n, b, n + 1);
  if (ra != rb || (ra > 0 && memcmp(a, b, (size_t)ra) != 0)) abort();
  free(a);
  free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (verifier == NULL) setup();
  if (size < 1) return 0;
  const char *rest = (const char *)data + 1;
  size_t n = size - 1;
  switch (data[0] & 3) {
  case 0:
    token_case(rest, n);
    break;
  case 1:
    claims_case(rest, n);
    break;
  case 2:
    header_case(rest, n);
    break;
  default:
    b64_case(rest, n);
    break;
  }
  return 0;
}
