/* libtether internals shared by the JWT files:
 *   jwt.c         algorithms, result names, the digests fetched once
 *   jwt_key.c     keys: secrets, PEM, JWK and JWKS, key specifications
 *   jwt_sig.c     signatures: per-thread verification contexts, the verified-token cache
 *   jwt_claims.c  the claims object: loading, registered-claim checks, accessors
 *   jwt_verify.c  the verifier: header, key choice, signature, then the claims
 *   jwt_sign.c    the signer
 * Each calls only the ones above it (and json.c, mac.c, util.c). */
#ifndef TETHER_JWT_IMPL_H
#define TETHER_JWT_IMPL_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "json.h"
#include "tether/jwt.h"

#define TETHER__JWT_MAX_KID 256
#define TETHER__JWT_MAX_SIG 1024 /* RSA up to 8192 bits */

/* ---- jwt.c: algorithms ---- */

enum tether__jwt_family {
  TETHER__FAM_NONE = 0,
  TETHER__FAM_HMAC,
  TETHER__FAM_RSA,
  TETHER__FAM_PSS,
  TETHER__FAM_EC,
  TETHER__FAM_EDDSA
};

struct tether__jwt_alg_info {
  const char *name;
  enum tether__jwt_family fam;
  const char *md; /* digest name for OpenSSL */
  int nid;        /* EC: the curve */
  size_t coord;   /* EC: bytes per coordinate (and per r, s) */
};
extern const struct tether__jwt_alg_info tether__jwt_algs[TETHER_JWT_ALG_COUNT];
/* The digests of the algorithms, fetched once by tether__jwt_crypto_init() (implicit fetches cost on every
 * call); NULL for EdDSA. */
extern EVP_MD *tether__jwt_alg_md[TETHER_JWT_ALG_COUNT];
void tether__jwt_crypto_init(void);
/* The algorithm named by s[0..n), or TETHER_JWT_ALG_UNKNOWN. */
tether_jwt_alg tether__jwt_alg_from_span(const char *s, size_t n);
/* For tests/fuzz/fuzz_jwt.c: the strict base64url decoder the JWT code uses (jwt.c), and the scanner's
 * verdict on a text as claims are scanned (jwt_claims.c). */
int tether__jwt_b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap);
int tether__jwt_scan_verdict(const char *p, size_t n);
/* A new identity for a key or verifier in the per-thread caches; never reused. */
uint64_t tether__jwt_new_id(void);

/* ---- jwt_key.c: keys ---- */

typedef struct tether__jwt_key {
  tether_jwt_alg alg;
  char *kid; /* NULL: matches tokens with any kid or none */
  size_t kid_len;
  uint8_t *secret; /* HMAC */
  size_t secret_len;
  EVP_PKEY *pkey; /* everything else */
  int has_private;
  size_t sig_len;    /* the exact signature length this key produces */
  uint8_t order[66]; /* EC: the group order n, big-endian, coord bytes */
  uint64_t id;       /* names the key in the per-thread caches; never reused */
} tether__jwt_key;

typedef struct tether__jwt_key_list {
  tether__jwt_key *k;
  size_t n;
} tether__jwt_key_list;

void tether__jwt_key_clear(tether__jwt_key *k);
void tether__jwt_keys_free(tether__jwt_key_list *l);
tether__jwt_key *tether__jwt_keys_push(tether__jwt_key_list *l);
int tether__jwt_key_set_kid(tether__jwt_key *k, const char *kid, size_t len);
/* TETHER_EINVAL (with a message that never shows a key) for an HS* secret under TETHER_JWT_MIN_SECRET bytes. */
int tether__jwt_keys_check_strength(const tether__jwt_key_list *l);
int tether__jwt_key_set_secret(tether__jwt_key *k, const void *secret, size_t len, tether_jwt_alg alg);
/* Binds an EVP_PKEY to an algorithm (the given one, or the key type's default); takes ownership. */
int tether__jwt_key_set_pkey(tether__jwt_key *k, EVP_PKEY *pkey, tether_jwt_alg alg);
int tether__jwt_pem_load(const char *pem, size_t len, EVP_PKEY **out);
/* A JWK or a JWKS ({"keys":[...]}) into l: the number of keys added, or an error. */
int tether__jwt_jwk_load(const char *json, size_t len, tether_jwt_alg alg, const char *want_kid,
                         tether__jwt_key_list *l);
/* Loads the keys a specification names into l (a JWKS may give several). */
int tether__jwt_keys_from_spec(const char *spec, const char *alg_name, const char *kid, tether__jwt_key_list *l);

/* ---- jwt_sig.c: signatures ---- */

/* 1 when sig is a valid signature of in[0..n) under k, else 0. */
int tether__jwt_sig_verify(const tether__jwt_key *k, const char *in, size_t n, const uint8_t *sig, size_t siglen);
/* Signs in[0..n) with k into sig (JWS form: raw r||s for ECDSA); returns the length or an error. */
int tether__jwt_sig_sign(const tether__jwt_key *k, const char *in, size_t n, uint8_t *sig, size_t cap);
/* Verified tokens (verify_options.cache), per thread: the index of the key that verified this token's
 * SHA-256 before, or -1; and recording one. */
int tether__jwt_vcache_lookup(uint64_t verifier_id, const uint8_t digest[32]);
void tether__jwt_vcache_store(uint64_t verifier_id, const uint8_t digest[32], int key_index);

/* ---- jwt_claims.c: the claims object ---- */

typedef struct tether__jwt_known_header {
  char b64[48];
  size_t len;
  tether_jwt_alg alg;
} tether__jwt_known_header;

struct tether_jwt_verifier {
  int64_t leeway_s;
  int require_exp;
  char *issuer;
  char *audience[TETHER_JWT_MAX_AUDIENCES];
  size_t audience_count;
  char *subject;
  size_t max_token;
  tether_jwt_clock_fn clock;
  void *clock_arg;
  int cache;          /* remember verified asymmetric tokens per thread */
  int weak_secret_ok; /* accept HS* secrets under TETHER_JWT_MIN_SECRET bytes */
  uint64_t id;        /* names the verifier in the per-thread cache; never reused */
  tether__jwt_key_list keys;
  tether__jwt_known_header known[2 * TETHER_JWT_ALG_COUNT]; /* {"alg":A,"typ":"JWT"} and {"alg":A} as base64url */
  size_t nknown;
};

/* Payloads up to TETHER__JWT_CLAIMS_INLINE bytes live inside the object, so that verifying into one that is
 * reused (one per worker thread) allocates nothing in the common case. */
#define TETHER__JWT_CLAIMS_INLINE 1024
#define TETHER__JWT_CLAIMS_MEMBERS 32

struct tether_jwt_claims {
  char *payload; /* the decoded claims JSON when malloc'd (else in inline_buf) */
  size_t payload_len;
  size_t payload_cap; /* bytes malloc'd, 0 when inline */
  json_t *json;       /* jansson's parse, when the scanner left the payload to it */
  int nmembers;       /* members indexed below; -1 when there were more */
  int valid;          /* 1 after a successful verification */
  tether_jwt_alg alg;
  int key_index;
  tether__json_member member[TETHER__JWT_CLAIMS_MEMBERS]; /* the top-level members */
  char inline_buf[TETHER__JWT_CLAIMS_INLINE];
};

void tether__jwt_claims_init(tether_jwt_claims *c);
/* Releases what c holds (not c itself). */
void tether__jwt_claims_release(tether_jwt_claims *c);
void tether__jwt_claims_reset(tether_jwt_claims *c);
/* Decodes and parses the payload (base64url text) into c. */
int tether__jwt_claims_load(tether_jwt_claims *c, const char *b64, size_t n);
/* exp, nbf, iat, aud, iss and sub against the verifier's options. */
int tether__jwt_claims_check(const tether_jwt_verifier *v, const tether_jwt_claims *c);
/* The claims as a jansson object, borrowed: owned by c, built on the first call; NULL without a token. */
json_t *tether__jwt_claims_json(tether_jwt_claims *c);

/* ---- jwt_sign.c ---- */

/* Signs payload[0..n) exactly as given (no iat or exp added) under the header tether_jwt_sign writes: for
 * callers that build the claims themselves (the jwt: session store). *token is malloc'd. */
int tether__jwt_sign_raw(const tether_jwt_signer *s, const char *payload, size_t n, char **token);

#endif
