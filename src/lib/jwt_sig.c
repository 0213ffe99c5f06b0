/* libtether: JWT signatures. Verification runs on per-thread EVP_PKEY_CTXs initialised once per key (RSA,
 * RSA-PSS, ECDSA) and HMAC on mac.c's keyed contexts; verified asymmetric tokens can be remembered per
 * thread (verify_options.cache). */
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "jwt_impl.h"
#include "mac.h"
#include "util.h"

/* ---- per-thread signature contexts (HMAC contexts are mac.c's) ---- */

typedef struct tls_slot {
  uint64_t key_id;    /* 0: empty */
  EVP_PKEY_CTX *pctx; /* RSA, RSA-PSS, ECDSA: verify-initialised */
} tls_slot;

/* Verified tokens (verify_options.cache): SHA-256 of the whole token text, direct-mapped. */
#define VCACHE_SIZE 1024
typedef struct vcache_entry {
  uint64_t verifier_id; /* 0: empty */
  uint8_t digest[32];
  int key_index;
} vcache_entry;

#define TLS_SLOTS 16
typedef struct tls_cache {
  tls_slot slot[TLS_SLOTS];
  unsigned next;        /* eviction cursor */
  int registered;       /* the thread-exit destructor knows this cache */
  vcache_entry *vcache; /* VCACHE_SIZE entries, allocated on first use */
} tls_cache;

static _Thread_local tls_cache tls;
static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void slot_clear(tls_slot *s) {
  EVP_PKEY_CTX_free(s->pctx);
  memset(s, 0, sizeof(*s));
}

static void tls_destroy(void *arg) {
  tls_cache *c = arg;
  for (int i = 0; i < TLS_SLOTS; i++) slot_clear(&c->slot[i]);
  free(c->vcache);
  c->vcache = NULL;
  c->registered = 0;
}

static void tls_key_create(void) { pthread_key_create(&tls_key, tls_destroy); }

static void tls_register(void) {
  if (tls.registered) return;
  pthread_once(&tls_once, tls_key_create);
  pthread_setspecific(tls_key, &tls);
  tls.registered = 1;
}

/* The index of the key that verified this token before, or -1. */
int tether__jwt_vcache_lookup(uint64_t verifier_id, const uint8_t digest[32]) {
  if (tls.vcache == NULL) return -1;
  uint64_t h;
  memcpy(&h, digest, sizeof(h));
  const vcache_entry *e = &tls.vcache[h % VCACHE_SIZE];
  return e->verifier_id == verifier_id && memcmp(e->digest, digest, 32) == 0 ? e->key_index : -1;
}

void tether__jwt_vcache_store(uint64_t verifier_id, const uint8_t digest[32], int key_index) {
  if (tls.vcache == NULL) {
    tls_register();
    tls.vcache = tether__calloc(VCACHE_SIZE, sizeof(vcache_entry));
  }
  uint64_t h;
  memcpy(&h, digest, sizeof(h));
  vcache_entry *e = &tls.vcache[h % VCACHE_SIZE];
  e->verifier_id = verifier_id;
  memcpy(e->digest, digest, 32);
  e->key_index = key_index;
}

void tether_jwt_thread_cleanup(void) {
  tether__mac_thread_cleanup();
  if (!tls.registered) return;
  pthread_setspecific(tls_key, NULL);
  tls_destroy(&tls);
}

/* ---- signatures ---- */

/* The calling thread's verify-initialised context for an RSA, RSA-PSS or ECDSA key, or NULL. */
static tls_slot *tls_slot_for(const tether__jwt_key *k) {
  for (int i = 0; i < TLS_SLOTS; i++)
    if (tls.slot[i].key_id == k->id) return &tls.slot[i];
  int v = -1;
  for (int i = 0; i < TLS_SLOTS && v < 0; i++)
    if (tls.slot[i].key_id == 0) v = i;
  if (v < 0) v = (int)(tls.next++ % TLS_SLOTS);
  tls_slot *s = &tls.slot[v];
  slot_clear(s);
  tls_register();
  enum tether__jwt_family fam = tether__jwt_algs[k->alg].fam;
  s->pctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
  int ok = s->pctx != NULL && EVP_PKEY_verify_init(s->pctx) == 1 &&
           EVP_PKEY_CTX_set_signature_md(s->pctx, tether__jwt_alg_md[k->alg]) == 1;
  if (ok && fam == TETHER__FAM_RSA) ok = EVP_PKEY_CTX_set_rsa_padding(s->pctx, RSA_PKCS1_PADDING) == 1;
  if (ok && fam == TETHER__FAM_PSS)
    ok = EVP_PKEY_CTX_set_rsa_padding(s->pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(s->pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(s->pctx, tether__jwt_alg_md[k->alg]) == 1;
  if (!ok) {
    ERR_clear_error();
    slot_clear(s);
    return NULL;
  }
  s->key_id = k->id;
  return s;
}

static int hmac(const tether__jwt_key *k, const char *in, size_t n, uint8_t *out, size_t *outlen) {
  tether__mac_md md = k->alg == TETHER_JWT_HS512   ? TETHER__MAC_SHA512
                      : k->alg == TETHER_JWT_HS384 ? TETHER__MAC_SHA384
                                                   : TETHER__MAC_SHA256;
  int len = tether__hmac(md, k->secret, k->secret_len, in, n, out);
  if (len < 0) return -1;
  *outlen = (size_t)len;
  return 0;
}

/* DER INTEGER of a big-endian unsigned value (not zero). */
static size_t der_int(uint8_t *out, const uint8_t *v, size_t n) {
  while (n > 1 && v[0] == 0) v++, n--;
  size_t pad = v[0] & 0x80 ? 1 : 0, o = 0;
  out[o++] = 0x02;
  out[o++] = (uint8_t)(n + pad);
  if (pad) out[o++] = 0;
  memcpy(out + o, v, n);
  return o + n;
}

/* r or s as received: must lie in [1, n-1] (CVE-2022-21449 accepted zeros). */
static int ec_scalar_ok(const uint8_t *v, const uint8_t *order, size_t n) {
  uint8_t any = 0;
  for (size_t i = 0; i < n; i++) any |= v[i];
  return any != 0 && memcmp(v, order, n) < 0;
}

/* 1 when sig is a valid signature of in[0..n) under k, else 0. */
int tether__jwt_sig_verify(const tether__jwt_key *k, const char *in, size_t n, const uint8_t *sig, size_t siglen) {
  enum tether__jwt_family fam = tether__jwt_algs[k->alg].fam;
  if (siglen != k->sig_len) return 0;
  if (fam == TETHER__FAM_HMAC) {
    uint8_t mac[TETHER__MAC_MAX];
    size_t maclen = 0;
    return hmac(k, in, n, mac, &maclen) == 0 && maclen == siglen && CRYPTO_memcmp(mac, sig, siglen) == 0;
  }
  if (fam == TETHER__FAM_EDDSA) {
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md != NULL && EVP_DigestVerifyInit_ex(md, NULL, NULL, NULL, NULL, k->pkey, NULL) == 1 &&
             EVP_DigestVerify(md, sig, siglen, (const uint8_t *)in, n) == 1;
    EVP_MD_CTX_free(md);
    if (!ok) ERR_clear_error();
    return ok;
  }
  uint8_t der[2 * (3 + 66) + 3];
  const uint8_t *s = sig;
  if (fam == TETHER__FAM_EC) {
    size_t c = tether__jwt_algs[k->alg].coord;
    if (!ec_scalar_ok(sig, k->order, c) || !ec_scalar_ok(sig + c, k->order, c)) return 0;
    uint8_t body[2 * (3 + 66)];
    size_t bl = der_int(body, sig, c);
    bl += der_int(body + bl, sig + c, c);
    size_t o = 0;
    der[o++] = 0x30;
    if (bl > 127) der[o++] = 0x81;
    der[o++] = (uint8_t)bl;
    memcpy(der + o, body, bl);
    s = der;
    siglen = o + bl;
  }
  uint8_t dg[EVP_MAX_MD_SIZE];
  unsigned int dlen = 0;
  tls_slot *slot = tls_slot_for(k);
  int ok = slot != NULL && EVP_Digest(in, n, dg, &dlen, tether__jwt_alg_md[k->alg], NULL) == 1 &&
           EVP_PKEY_verify(slot->pctx, s, siglen, dg, dlen) == 1;
  if (!ok) ERR_clear_error();
  return ok;
}

/* Signs in[0..n) with k into sig (JWS form: raw r||s for ECDSA); returns the length or an error. */
int tether__jwt_sig_sign(const tether__jwt_key *k, const char *in, size_t n, uint8_t *sig, size_t cap) {
  enum tether__jwt_family fam = tether__jwt_algs[k->alg].fam;
  if (fam == TETHER__FAM_HMAC) {
    uint8_t mac[TETHER__MAC_MAX];
    size_t maclen = 0;
    if (hmac(k, in, n, mac, &maclen) < 0 || maclen > cap) return tether__fail(TETHER_EINVAL, "jwt: HMAC failed");
    memcpy(sig, mac, maclen);
    return (int)maclen;
  }
  if (!k->has_private) return tether__fail(TETHER_EINVAL, "jwt: a public key cannot sign");
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  EVP_PKEY_CTX *pctx = NULL;
  uint8_t der[TETHER__JWT_MAX_SIG + 16];
  size_t len = sizeof(der);
  int ok = md != NULL && EVP_DigestSignInit_ex(md, &pctx, fam == TETHER__FAM_EDDSA ? NULL : tether__jwt_algs[k->alg].md,
                                               NULL, NULL, k->pkey, NULL) == 1;
  if (ok && fam == TETHER__FAM_PSS)
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, tether__jwt_alg_md[k->alg]) == 1;
  ok = ok && EVP_DigestSign(md, der, &len, (const uint8_t *)in, n) == 1;
  EVP_MD_CTX_free(md);
  if (!ok) {
    ERR_clear_error();
    return tether__fail(TETHER_EINVAL, "jwt: %s signing failed", tether__jwt_algs[k->alg].name);
  }
  if (fam != TETHER__FAM_EC) {
    if (len > cap) return tether__fail(TETHER_EINVAL, "jwt: signature too long");
    memcpy(sig, der, len);
    return (int)len;
  }
  size_t c = tether__jwt_algs[k->alg].coord;
  const uint8_t *p = der;
  ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
  const BIGNUM *r = NULL, *s = NULL;
  if (es != NULL) ECDSA_SIG_get0(es, &r, &s);
  ok = es != NULL && 2 * c <= cap && BN_bn2binpad(r, sig, (int)c) == (int)c &&
       BN_bn2binpad(s, sig + c, (int)c) == (int)c;
  ECDSA_SIG_free(es);
  if (!ok) return tether__fail(TETHER_EINVAL, "jwt: cannot convert the ECDSA signature");
  return (int)(2 * c);
}
