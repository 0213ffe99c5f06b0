/* libtether: JSON Web Tokens (compact JWS) on OpenSSL 3's EVP: the algorithms and the result names. The
 * rest is in jwt_key.c (keys), jwt_sig.c (signatures), jwt_claims.c (claims), jwt_verify.c (the verifier)
 * and jwt_sign.c (the signer); jwt_impl.h says what they share.
 *
 * The verification path, in order: size cap; split on the two dots (a third is malformed); the header,
 * either one of the few exact headers the configured algorithms produce (memcmp, no decoding) or strictly
 * decoded and parsed; the candidate keys by alg (pinned by the key) and kid; the signature over the
 * received text; then the claims. JSON is parsed by json.c's validating scanner, which handles the common
 * flat objects without allocating, and hands anything else (nested objects, escaped member names, long
 * numbers, many members) to jansson with JSON_REJECT_DUPLICATES; both agree on what is valid (the fuzz
 * harness checks it). HMAC runs on mac.c's per-thread keyed contexts; RSA and ECDSA on a per-thread
 * EVP_PKEY_CTX initialised once per key. */
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "jwt_impl.h"
#include "util.h"

/* ---- algorithms ---- */

const struct tether__jwt_alg_info tether__jwt_algs[TETHER_JWT_ALG_COUNT] = {
    [TETHER_JWT_ALG_UNKNOWN] = {"unknown", TETHER__FAM_NONE, NULL, 0, 0},
    [TETHER_JWT_HS256] = {"HS256", TETHER__FAM_HMAC, "SHA256", 0, 0},
    [TETHER_JWT_HS384] = {"HS384", TETHER__FAM_HMAC, "SHA384", 0, 0},
    [TETHER_JWT_HS512] = {"HS512", TETHER__FAM_HMAC, "SHA512", 0, 0},
    [TETHER_JWT_RS256] = {"RS256", TETHER__FAM_RSA, "SHA256", 0, 0},
    [TETHER_JWT_RS384] = {"RS384", TETHER__FAM_RSA, "SHA384", 0, 0},
    [TETHER_JWT_RS512] = {"RS512", TETHER__FAM_RSA, "SHA512", 0, 0},
    [TETHER_JWT_PS256] = {"PS256", TETHER__FAM_PSS, "SHA256", 0, 0},
    [TETHER_JWT_PS384] = {"PS384", TETHER__FAM_PSS, "SHA384", 0, 0},
    [TETHER_JWT_PS512] = {"PS512", TETHER__FAM_PSS, "SHA512", 0, 0},
    [TETHER_JWT_ES256] = {"ES256", TETHER__FAM_EC, "SHA256", NID_X9_62_prime256v1, 32},
    [TETHER_JWT_ES384] = {"ES384", TETHER__FAM_EC, "SHA384", NID_secp384r1, 48},
    [TETHER_JWT_ES512] = {"ES512", TETHER__FAM_EC, "SHA512", NID_secp521r1, 66},
    [TETHER_JWT_EDDSA] = {"EdDSA", TETHER__FAM_EDDSA, NULL, 0, 0},
};

const char *tether_jwt_alg_name(tether_jwt_alg alg) {
  if ((int)alg <= 0 || alg >= TETHER_JWT_ALG_COUNT) return "unknown";
  return tether__jwt_algs[alg].name;
}

tether_jwt_alg tether_jwt_alg_from_name(const char *name) {
  if (name == NULL) return TETHER_JWT_ALG_UNKNOWN;
  for (int a = 1; a < TETHER_JWT_ALG_COUNT; a++)
    if (strcmp(name, tether__jwt_algs[a].name) == 0) return (tether_jwt_alg)a;
  return TETHER_JWT_ALG_UNKNOWN;
}

tether_jwt_alg tether__jwt_alg_from_span(const char *s, size_t n) {
  for (int a = 1; a < TETHER_JWT_ALG_COUNT; a++)
    if (strlen(tether__jwt_algs[a].name) == n && memcmp(s, tether__jwt_algs[a].name, n) == 0) return (tether_jwt_alg)a;
  return TETHER_JWT_ALG_UNKNOWN;
}

/* ---- results ---- */

static const struct {
  int code;
  const char *reason;
  const char *message;
} results[] = {
    {TETHER_JWT_OK, "ok", "ok"},
    {TETHER_JWT_ETOOLARGE, "too_large", "jwt too large"},
    {TETHER_JWT_EMALFORMED, "malformed", "jwt malformed"},
    {TETHER_JWT_EENCODING, "bad_encoding", "jwt is not strict base64url"},
    {TETHER_JWT_EDUPLICATE, "duplicate_key", "jwt has a duplicate member name"},
    {TETHER_JWT_EUNSIGNED, "unsigned", "jwt signature is required"},
    {TETHER_JWT_EALG, "alg_mismatch", "invalid algorithm"},
    {TETHER_JWT_ECRIT, "crit_header", "jwt has a critical header parameter"},
    {TETHER_JWT_ENOKEY, "no_key", "no key for the jwt's kid"},
    {TETHER_JWT_ESIGNATURE, "bad_signature", "invalid signature"},
    {TETHER_JWT_EBADDATE, "bad_date", "invalid exp, nbf or iat value"},
    {TETHER_JWT_EEXPIRED, "expired", "jwt expired"},
    {TETHER_JWT_ENOTYET, "not_yet_valid", "jwt not active"},
    {TETHER_JWT_EIATFUTURE, "issued_in_future", "jwt issued in the future"},
    {TETHER_JWT_ENOEXP, "missing_exp", "jwt has no exp"},
    {TETHER_JWT_EISSUER, "bad_issuer", "jwt issuer invalid"},
    {TETHER_JWT_EAUDIENCE, "bad_audience", "jwt audience invalid"},
    {TETHER_JWT_ESUBJECT, "bad_subject", "jwt subject invalid"},
};

const char *tether_jwt_reason(int code) {
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(results); i++)
    if (results[i].code == code) return results[i].reason;
  return "error";
}

const char *tether_jwt_message(int code) {
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(results); i++)
    if (results[i].code == code) return results[i].message;
  return tether_strerror(code);
}

/* ---- base64url ---- */

/* For tests/fuzz/fuzz_jwt.c: the decoder jwt.c uses, compared there with tether__base64url_decode. */
int tether__jwt_b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap) {
  return tether__base64url_decode_quiet(in, n, out, cap);
}

/* ---- the digests, fetched once ---- */

EVP_MD *tether__jwt_alg_md[TETHER_JWT_ALG_COUNT];
static pthread_once_t crypto_once = PTHREAD_ONCE_INIT;
static _Atomic uint64_t next_id = 1;

static void crypto_fetch(void) {
  for (int a = 1; a < TETHER_JWT_ALG_COUNT; a++)
    if (tether__jwt_algs[a].md != NULL) tether__jwt_alg_md[a] = EVP_MD_fetch(NULL, tether__jwt_algs[a].md, NULL);
}

void tether__jwt_crypto_init(void) { pthread_once(&crypto_once, crypto_fetch); }

uint64_t tether__jwt_new_id(void) { return atomic_fetch_add(&next_id, 1); }
