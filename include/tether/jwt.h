/* Tether: JSON Web Tokens. Compact JWS signing and verification (RFC 7515/7518/7519/8037) on OpenSSL 3.
 *
 * Typical verification (a verifier is built once and shared by every thread):
 *   tether_jwt_verify_options o;
 *   tether_jwt_verify_options_init(&o);          // leeway 30 s, max token 8 KiB
 *   o.audience[0] = "api"; o.audience_count = 1;  // optional checks
 *   tether_jwt_verifier *v;
 *   tether_jwt_verifier_new(&o, &v);
 *   tether_jwt_verifier_add_key(v, "env:JWT_SECRET", "HS256", NULL);   // or a PEM or JWKS file
 *   tether_jwt_claims *c = tether_jwt_claims_new();  // once per thread, reused for every request
 *   ...per request:
 *   int rc = tether_jwt_verify(v, token, token_len, c);
 *   if (rc < 0) -> 401 with tether_jwt_reason(rc) as the metric label, tether_last_error() for the log
 *   char role[64];
 *   if (tether_jwt_claim_text(c, "role", role, sizeof(role)) >= 0) -> use it
 *   ...at the end:
 *   tether_jwt_claims_free(c);
 *
 * The algorithm is pinned by the key: a token is checked only against configured keys of the algorithm
 * its header names, so an RSA or EC public key never verifies an HS* token and "none" is never accepted.
 * Signing mirrors npm jsonwebtoken's jwt.sign(payload, secret, { expiresIn }). See docs/jwt.md. */
#ifndef TETHER_JWT_H
#define TETHER_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tether_jwt_alg {
  TETHER_JWT_ALG_UNKNOWN = 0, /* also "none": never accepted */
  TETHER_JWT_HS256,
  TETHER_JWT_HS384,
  TETHER_JWT_HS512,
  TETHER_JWT_RS256,
  TETHER_JWT_RS384,
  TETHER_JWT_RS512,
  TETHER_JWT_PS256,
  TETHER_JWT_PS384,
  TETHER_JWT_PS512,
  TETHER_JWT_ES256,
  TETHER_JWT_ES384,
  TETHER_JWT_ES512,
  TETHER_JWT_EDDSA, /* Ed25519 */
  TETHER_JWT_ALG_COUNT
} tether_jwt_alg;

/* "HS256", ... "EdDSA"; "unknown" for anything else. */
TETHER_EXTERN const char *tether_jwt_alg_name(tether_jwt_alg alg);
/* The algorithm named exactly (case-sensitive, as in a JWS header), or TETHER_JWT_ALG_UNKNOWN. */
TETHER_EXTERN tether_jwt_alg tether_jwt_alg_from_name(const char *name);

/* Why a token was refused. Each is a negative value distinct from the TETHER_E* codes, so verification
 * returns 0 or exactly one of these; tether_last_error() then holds a message with the details. */
typedef enum tether_jwt_error {
  TETHER_JWT_OK = 0,
  TETHER_JWT_ETOOLARGE = -1001,  /* "too_large": longer than max_token_size (checked before parsing) */
  TETHER_JWT_EMALFORMED = -1002, /* "malformed": not three segments, header or claims not a JSON object */
  TETHER_JWT_EENCODING = -1003,  /* "bad_encoding": not strict base64url (padding, bad characters,
                                  * non-canonical trailing bits) */
  TETHER_JWT_EDUPLICATE = -1004, /* "duplicate_key": a member name repeated in the header or claims */
  TETHER_JWT_EUNSIGNED = -1005,  /* "unsigned": alg "none" or an empty signature */
  TETHER_JWT_EALG = -1006,       /* "alg_mismatch": no configured key has the token's algorithm, or the
                                  * algorithm is unknown */
  TETHER_JWT_ECRIT = -1007,      /* "crit_header": a "crit" header parameter (extensions not understood) */
  TETHER_JWT_ENOKEY = -1008,     /* "no_key": the token's kid names no configured key */
  TETHER_JWT_ESIGNATURE = -1009, /* "bad_signature": wrong length, ECDSA r or s outside [1, n-1], or
                                  * the signature does not verify */
  TETHER_JWT_EBADDATE = -1010,   /* "bad_date": exp, nbf or iat not a number in [0, 253402300799] */
  TETHER_JWT_EEXPIRED = -1011,   /* "expired": now >= exp + leeway */
  TETHER_JWT_ENOTYET = -1012,    /* "not_yet_valid": nbf > now + leeway */
  TETHER_JWT_EIATFUTURE = -1013, /* "issued_in_future": iat > now + leeway */
  TETHER_JWT_ENOEXP = -1014,     /* "missing_exp": no exp while require_exp is set */
  TETHER_JWT_EISSUER = -1015,    /* "bad_issuer" */
  TETHER_JWT_EAUDIENCE = -1016,  /* "bad_audience" */
  TETHER_JWT_ESUBJECT = -1017,   /* "bad_subject" */
} tether_jwt_error;

/* A short reason name for a result of tether_jwt_verify, usable as a metric label ("ok", "expired",
 * "bad_signature", ...; "error" for codes that are not tether_jwt_error values). Never NULL. */
TETHER_EXTERN const char *tether_jwt_reason(int code);
/* A fixed human message for a result ("jwt expired", "invalid signature", ...), in jsonwebtoken's words
 * where it has them. Never NULL. */
TETHER_EXTERN const char *tether_jwt_message(int code);

/* Wall clock in milliseconds since the Unix epoch; tests inject a fixed one. */
typedef int64_t (*tether_jwt_clock_fn)(void *arg);

#define TETHER_JWT_MAX_AUDIENCES 8
#define TETHER_JWT_DEFAULT_LEEWAY_S 30
#define TETHER_JWT_MAX_LEEWAY_S 300
#define TETHER_JWT_DEFAULT_MAX_TOKEN 8192
#define TETHER_JWT_MAX_MAX_TOKEN 65536

typedef struct tether_jwt_verify_options {
  int64_t leeway_s;                               /* clock tolerance for exp, nbf and iat; default 30, at most 300 */
  int require_exp;                                /* refuse tokens without exp (default 0, as jsonwebtoken) */
  const char *issuer;                             /* iss must equal it; NULL: not checked */
  const char *audience[TETHER_JWT_MAX_AUDIENCES]; /* aud (string or array) must contain one of them */
  size_t audience_count;                          /* 0: aud not checked */
  const char *subject;                            /* sub must equal it; NULL: not checked */
  size_t max_token_size;                          /* bytes; default 8192, at most 65536 */
  tether_jwt_clock_fn clock;                      /* NULL: tether_now_ms() */
  void *clock_arg;
  int weak_secret_ok; /* accept HS256/384/512 secrets shorter than TETHER_JWT_MIN_SECRET (32) bytes; default 0:
                       * adding one fails with TETHER_EINVAL (RFC 7518 section 3.2) */
  int cache;          /* remember the last 1024 verified RSA, ECDSA and EdDSA tokens per thread (by SHA-256 of the whole
                       * token), so a client sending its token again skips the signature check; the claims are still
                       * checked every time. Default 0 (off) */
} tether_jwt_verify_options;

/* HS* secrets shorter than this many bytes are refused (RFC 7518 section 3.2: at least the hash size; 256
 * bits for HS256) unless explicitly allowed: weak_secret_ok for verifiers, TETHER_JWT_WEAK_SECRET_OK for
 * signers. The error message never contains the secret. */
#define TETHER_JWT_MIN_SECRET 32

/* Fills the defaults above. */
TETHER_EXTERN void tether_jwt_verify_options_init(tether_jwt_verify_options *opts);

typedef struct tether_jwt_verifier tether_jwt_verifier;

/* Copies the options (strings included). TETHER_EINVAL for a leeway outside [0, 300] or a size outside
 * [64, 65536]. The verifier has no key yet: add at least one before verifying. */
TETHER_EXTERN int tether_jwt_verifier_new(const tether_jwt_verify_options *opts, tether_jwt_verifier **out);
TETHER_EXTERN void tether_jwt_verifier_free(tether_jwt_verifier *v);

/* Adds keys from a key specification (the same words as the balancer's auth_jwt_key):
 *   env:NAME            the content of environment variable NAME
 *   file:PATH, /PATH, ./PATH, ../PATH   the content of a file
 *   literal:TEXT        the secret TEXT
 *   anything else       the secret itself (refused when it names an existing file: write ./NAME)
 * A content is a PEM key or certificate when it contains "-----BEGIN ", a JWK or JWKS when it starts with
 * '{', and otherwise an HMAC secret (a file's one trailing newline is not part of it). alg pins the
 * algorithm ("HS256", "RS256", ... NULL: HS256 for a secret, from the key type for PEM (RSA: RS256,
 * EC: ES256/ES384/ES512 by curve, Ed25519: EdDSA) and for JWKs without an "alg" member). kid (may be
 * NULL) names the key for tokens that carry a kid; a JWK's own "kid" is used for JWKS keys. Keys must be
 * added before the verifier is shared between threads. Returns the number of keys added, or
 * TETHER_EINVAL with a message (unreadable file, encrypted PEM, RSA key under 2048 bits, an algorithm the
 * key cannot do, ...). */
TETHER_EXTERN int tether_jwt_verifier_add_key(tether_jwt_verifier *v, const char *spec, const char *alg,
                                              const char *kid);
/* The same from memory. add_secret: alg TETHER_JWT_ALG_UNKNOWN means HS256. add_pem: a public key,
 * private key or certificate. add_jwk: one JWK or a JWKS ({"keys":[...]}); keys whose "use" is not "sig"
 * and key types other than oct, RSA, EC and OKP/Ed25519 are skipped. */
TETHER_EXTERN int tether_jwt_verifier_add_secret(tether_jwt_verifier *v, const void *secret, size_t len,
                                                 tether_jwt_alg alg, const char *kid);
TETHER_EXTERN int tether_jwt_verifier_add_pem(tether_jwt_verifier *v, const char *pem, size_t len, tether_jwt_alg alg,
                                              const char *kid);
TETHER_EXTERN int tether_jwt_verifier_add_jwk(tether_jwt_verifier *v, const char *json, size_t len, tether_jwt_alg alg);
TETHER_EXTERN size_t tether_jwt_verifier_key_count(const tether_jwt_verifier *v);

/* What a verified token carries: an object of the library's (its layout is private). Make one with
 * tether_jwt_claims_new(), pass it to any number of tether_jwt_verify() calls (each replaces the previous
 * token's claims) and free it at the end. Usual payloads (up to 1 KiB) live inside the object, so verifying
 * into one that is reused (one per thread) allocates nothing in the common case. Not thread-safe: one per
 * thread. */
typedef struct tether_jwt_claims tether_jwt_claims;

/* Never NULL (allocation failure is fatal). */
TETHER_EXTERN tether_jwt_claims *tether_jwt_claims_new(void);
TETHER_EXTERN void tether_jwt_claims_free(tether_jwt_claims *c);

/* Verifies a compact JWS JWT (token need not be NUL-terminated) and its claims: size, strict base64url,
 * header (alg, kid, crit), signature over the header and payload text exactly as received, then nbf,
 * exp, iat, require_exp, aud, iss, sub. claims may be NULL. Returns 0 or a tether_jwt_error (negative).
 * Thread-safe: any number of threads may verify with one verifier at once. */
TETHER_EXTERN int tether_jwt_verify(const tether_jwt_verifier *v, const char *token, size_t len,
                                    tether_jwt_claims *claims);

/* Verifies a compact JWS whose payload is any bytes (no claim checks, e.g. RFC 8037's example): copies the
 * payload into out (cap bytes) and sets *out_len. TETHER_E2BIG when it does not fit. */
TETHER_EXTERN int tether_jws_verify(const tether_jwt_verifier *v, const char *token, size_t len, uint8_t *out,
                                    size_t cap, size_t *out_len);

/* Copies claim NAME (a top-level member) as text into buf (NUL-terminated): a string's value unescaped
 * (UTF-8; it may contain any character but NUL, so sanitize before putting it in a header), a number,
 * true, false or null as its JSON text, an array or object as compact JSON. Returns its length,
 * TETHER_ENOTFOUND when absent (or no token), TETHER_E2BIG when cap is too small. */
TETHER_EXTERN int tether_jwt_claim_text(const tether_jwt_claims *c, const char *name, char *buf, size_t cap);
/* Claim NAME as an integer (a JSON number without fraction or exponent, within int64) into *out: 0,
 * TETHER_ENOTFOUND when absent (or no token), TETHER_EINVAL when it is not such an integer. */
TETHER_EXTERN int tether_jwt_claim_int(const tether_jwt_claims *c, const char *name, int64_t *out);

/* The decoded claims JSON exactly as signed (not NUL-terminated), and its length in *len: hand it to a JSON
 * parser for anything the accessors do not give. Owned by c, valid until the next verification into c.
 * NULL (and *len 0) when c holds no verified token. */
TETHER_EXTERN const char *tether_jwt_claims_payload(const tether_jwt_claims *c, size_t *len);
/* The algorithm of the verified token, and the index (in the order added) of the key that verified it. */
TETHER_EXTERN tether_jwt_alg tether_jwt_claims_alg(const tether_jwt_claims *c);
TETHER_EXTERN int tether_jwt_claims_key_index(const tether_jwt_claims *c);

/* ---- signing ---- */

typedef struct tether_jwt_signer tether_jwt_signer;

/* A signer from a key specification (as tether_jwt_verifier_add_key): a secret, a PEM private key, or a
 * JWK/JWKS with private members ("d"; kid selects the key of a JWKS with several). alg NULL: HS256 for a
 * secret, from the key type otherwise. kid (may be NULL) goes into the header. TETHER_EINVAL when the key
 * cannot sign (a public key) or cannot do alg, or for an HS* secret shorter than TETHER_JWT_MIN_SECRET. */
TETHER_EXTERN int tether_jwt_signer_new(const char *spec, const char *alg, const char *kid, tether_jwt_signer **out);
TETHER_EXTERN int tether_jwt_signer_new_secret(const void *secret, size_t len, tether_jwt_alg alg, const char *kid,
                                               tether_jwt_signer **out);
TETHER_EXTERN int tether_jwt_signer_new_pem(const char *pem, size_t len, tether_jwt_alg alg, const char *kid,
                                            tether_jwt_signer **out);
/* The same with flags: TETHER_JWT_WEAK_SECRET_OK accepts an HS* secret under TETHER_JWT_MIN_SECRET bytes
 * (which the calls above refuse with TETHER_EINVAL). */
#define TETHER_JWT_WEAK_SECRET_OK 1
TETHER_EXTERN int tether_jwt_signer_new_ex(const char *spec, const char *alg, const char *kid, int flags,
                                           tether_jwt_signer **out);
TETHER_EXTERN int tether_jwt_signer_new_secret_ex(const void *secret, size_t len, tether_jwt_alg alg, const char *kid,
                                                  int flags, tether_jwt_signer **out);
TETHER_EXTERN void tether_jwt_signer_free(tether_jwt_signer *s);
/* Replaces the clock (default tether_now_ms()); for tests. Not thread-safe against signing. */
TETHER_EXTERN void tether_jwt_signer_set_clock(tether_jwt_signer *s, tether_jwt_clock_fn clock, void *arg);
TETHER_EXTERN tether_jwt_alg tether_jwt_signer_alg(const tether_jwt_signer *s);

#define TETHER_JWT_NO_EXPIRY INT64_MIN

/* jwt.sign(payload, secret, { expiresIn }): header {"alg":ALG,"typ":"JWT"[,"kid":KID]}, the payload's
 * members in order, then iat = floor(now) (a number iat already in payload is kept, as jsonwebtoken does)
 * and exp = iat + expires_in_s unless it is TETHER_JWT_NO_EXPIRY. payload is the text of a JSON object
 * (len bytes, need not be NUL-terminated; no member name twice) without exp when expires_in_s is given;
 * it is written compact. *token is malloc'd (free() it). TETHER_EINVAL for a payload that is not such an
 * object. Thread-safe. */
TETHER_EXTERN int tether_jwt_sign(const tether_jwt_signer *s, const char *payload, size_t len, int64_t expires_in_s,
                                  char **token);

/* Frees the calling thread's cached MAC and signature contexts and verified tokens (also freed when the thread
 * exits). Optional: for tools that check for leaks at exit. */
TETHER_EXTERN void tether_jwt_thread_cleanup(void);

#ifdef __cplusplus
}
#endif
#endif
