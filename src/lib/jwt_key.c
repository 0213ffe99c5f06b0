/* libtether: JWT keys. HMAC secrets, PEM keys and certificates, JWKs and JWKS, and the key specifications
 * (env:, file:, literal:) that name them, each bound to one algorithm. */
#include <errno.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "jwt_impl.h"
#include "util.h"

#define JWT_MAX_KEYFILE (1 << 20)

/* ---- keys ---- */

void tether__jwt_key_clear(tether__jwt_key *k) {
  if (k->secret) OPENSSL_clear_free(k->secret, k->secret_len);
  EVP_PKEY_free(k->pkey);
  free(k->kid);
  memset(k, 0, sizeof(*k));
}

void tether__jwt_keys_free(tether__jwt_key_list *l) {
  for (size_t i = 0; i < l->n; i++) tether__jwt_key_clear(&l->k[i]);
  free(l->k);
  l->k = NULL;
  l->n = 0;
}

tether__jwt_key *tether__jwt_keys_push(tether__jwt_key_list *l) {
  l->k = tether__realloc(l->k, (l->n + 1) * sizeof(tether__jwt_key));
  tether__jwt_key *k = &l->k[l->n++];
  memset(k, 0, sizeof(*k));
  k->id = tether__jwt_new_id();
  return k;
}

int tether__jwt_key_set_kid(tether__jwt_key *k, const char *kid, size_t len) {
  if (kid == NULL) return 0;
  if (len > TETHER__JWT_MAX_KID)
    return tether__fail(TETHER_EINVAL, "jwt key: kid longer than %d bytes", TETHER__JWT_MAX_KID);
  k->kid = tether__strndup(kid, len);
  k->kid_len = len;
  return 0;
}

/* RFC 7518 3.2: an HMAC key must be at least as long as the hash; we ask 32 bytes of every HS* key. The
 * message never shows the key. */
int tether__jwt_keys_check_strength(const tether__jwt_key_list *l) {
  for (size_t i = 0; i < l->n; i++) {
    const tether__jwt_key *k = &l->k[i];
    if (k->secret && tether__jwt_algs[k->alg].fam == TETHER__FAM_HMAC && k->secret_len < TETHER_JWT_MIN_SECRET)
      return tether__fail(TETHER_EINVAL,
                          "jwt key: the %s secret is %zu bytes; at least %d are required (RFC 7518 section 3.2), "
                          "unless weak secrets are explicitly allowed",
                          tether__jwt_algs[k->alg].name, k->secret_len, TETHER_JWT_MIN_SECRET);
  }
  return 0;
}

int tether__jwt_key_set_secret(tether__jwt_key *k, const void *secret, size_t len, tether_jwt_alg alg) {
  if (alg == TETHER_JWT_ALG_UNKNOWN) alg = TETHER_JWT_HS256;
  if (alg >= TETHER_JWT_ALG_COUNT || tether__jwt_algs[alg].fam != TETHER__FAM_HMAC)
    return tether__fail(TETHER_EINVAL, "jwt key: a secret can only be used with HS256, HS384 or HS512, not %s",
                        tether_jwt_alg_name(alg));
  if (len == 0) return tether__fail(TETHER_EINVAL, "jwt key: the secret is empty");
  k->alg = alg;
  k->secret = tether__malloc(len);
  memcpy(k->secret, secret, len);
  k->secret_len = len;
  k->has_private = 1;
  k->sig_len = (size_t)EVP_MD_get_size(tether__jwt_alg_md[alg]);
  return 0;
}

static int pkey_has_private(EVP_PKEY *pkey) {
  BIGNUM *bn = NULL;
  int type = EVP_PKEY_get_base_id(pkey);
  if (type == EVP_PKEY_RSA || type == EVP_PKEY_RSA_PSS) {
    if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_D, &bn) && bn != NULL) {
      BN_clear_free(bn);
      return 1;
    }
  } else if (type == EVP_PKEY_EC) {
    if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, &bn) && bn != NULL) {
      BN_clear_free(bn);
      return 1;
    }
  } else if (type == EVP_PKEY_ED25519) {
    size_t len = 0;
    if (EVP_PKEY_get_raw_private_key(pkey, NULL, &len) == 1 && len > 0) return 1;
  }
  ERR_clear_error();
  return 0;
}

/* Binds an EVP_PKEY to an algorithm (the given one, or the key type's default); takes ownership. */
int tether__jwt_key_set_pkey(tether__jwt_key *k, EVP_PKEY *pkey, tether_jwt_alg alg) {
  int type = EVP_PKEY_get_base_id(pkey);
  tether_jwt_alg def;
  int ok_rsa = 0, ok_pss = 0;
  char group[64] = "";
  if (type == EVP_PKEY_RSA) {
    def = TETHER_JWT_RS256, ok_rsa = ok_pss = 1;
  } else if (type == EVP_PKEY_RSA_PSS) {
    def = TETHER_JWT_PS256, ok_pss = 1;
  } else if (type == EVP_PKEY_EC) {
    size_t glen = 0;
    if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), &glen)) group[0] = 0;
    if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)
      def = TETHER_JWT_ES256;
    else if (strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0)
      def = TETHER_JWT_ES384;
    else if (strcmp(group, "secp521r1") == 0 || strcmp(group, "P-521") == 0)
      def = TETHER_JWT_ES512;
    else {
      EVP_PKEY_free(pkey);
      return tether__fail(TETHER_EINVAL, "jwt key: EC curve '%s' is not P-256, P-384 or P-521", group);
    }
  } else if (type == EVP_PKEY_ED25519) {
    def = TETHER_JWT_EDDSA;
  } else {
    EVP_PKEY_free(pkey);
    return tether__fail(TETHER_EINVAL, "jwt key: unsupported key type %s (RSA, EC P-256/384/521 and Ed25519 are)",
                        OBJ_nid2sn(type));
  }
  if (alg == TETHER_JWT_ALG_UNKNOWN) alg = def;
  enum tether__jwt_family fam = alg < TETHER_JWT_ALG_COUNT ? tether__jwt_algs[alg].fam : TETHER__FAM_NONE;
  int fits = (fam == TETHER__FAM_RSA && ok_rsa) || (fam == TETHER__FAM_PSS && ok_pss) ||
             ((fam == TETHER__FAM_EC || fam == TETHER__FAM_EDDSA) && alg == def);
  if (!fits) {
    EVP_PKEY_free(pkey);
    return tether__fail(TETHER_EINVAL, "jwt key: a %s key cannot be used with %s (it does %s)",
                        type == EVP_PKEY_EC ? group : OBJ_nid2sn(type), tether_jwt_alg_name(alg),
                        tether_jwt_alg_name(def));
  }
  if (fam == TETHER__FAM_RSA || fam == TETHER__FAM_PSS) {
    int bits = EVP_PKEY_get_bits(pkey);
    if (bits < 2048 || bits > TETHER__JWT_MAX_SIG * 8) {
      EVP_PKEY_free(pkey);
      return tether__fail(TETHER_EINVAL, "jwt key: RSA keys must have 2048 to %d bits, this one has %d",
                          TETHER__JWT_MAX_SIG * 8, bits);
    }
    k->sig_len = (size_t)EVP_PKEY_get_size(pkey);
  } else if (fam == TETHER__FAM_EC) {
    EC_GROUP *g = EC_GROUP_new_by_curve_name(tether__jwt_algs[alg].nid);
    if (g == NULL || BN_bn2binpad(EC_GROUP_get0_order(g), k->order, (int)tether__jwt_algs[alg].coord) < 0) {
      EC_GROUP_free(g);
      EVP_PKEY_free(pkey);
      return tether__fail(TETHER_EINVAL, "jwt key: cannot read the order of the curve of %s",
                          tether__jwt_algs[alg].name);
    }
    EC_GROUP_free(g);
    k->sig_len = 2 * tether__jwt_algs[alg].coord;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    int valid = c != NULL && EVP_PKEY_public_check(c) == 1;
    EVP_PKEY_CTX_free(c);
    if (!valid) {
      ERR_clear_error();
      EVP_PKEY_free(pkey);
      return tether__fail(TETHER_EINVAL, "jwt key: the EC public key is not a valid point of its curve");
    }
  } else {
    k->sig_len = 64;
  }
  k->alg = alg;
  k->pkey = pkey;
  k->has_private = pkey_has_private(pkey);
  return 0;
}

static int no_passphrase(char *buf, size_t size, size_t *len, const OSSL_PARAM params[], void *arg) {
  TETHER__UNUSED(buf), TETHER__UNUSED(size), TETHER__UNUSED(params), TETHER__UNUSED(arg);
  *len = 0;
  return 0;
}

int tether__jwt_pem_load(const char *pem, size_t len, EVP_PKEY **out) {
  *out = NULL;
  if (memmem(pem, len, "ENCRYPTED", 9) != NULL)
    return tether__fail(TETHER_EINVAL, "jwt key: the PEM key is encrypted (give it unencrypted)");
  EVP_PKEY *pkey = NULL;
  if (memmem(pem, len, "-----BEGIN CERTIFICATE-----", 27) != NULL) {
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    if (x != NULL) pkey = X509_get_pubkey(x);
    X509_free(x);
    BIO_free(bio);
  } else {
    OSSL_DECODER_CTX *d = OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, NULL, 0, NULL, NULL);
    if (d != NULL) {
      OSSL_DECODER_CTX_set_passphrase_cb(d, no_passphrase, NULL);
      const unsigned char *data = (const unsigned char *)pem;
      size_t left = len;
      if (!OSSL_DECODER_from_data(d, &data, &left)) pkey = NULL;
    }
    OSSL_DECODER_CTX_free(d);
  }
  if (pkey == NULL) {
    unsigned long e = ERR_peek_last_error();
    char why[256];
    ERR_error_string_n(e, why, sizeof(why));
    ERR_clear_error();
    return tether__fail(TETHER_EINVAL, "jwt key: not a PEM public key, private key or certificate (%s)",
                        e ? why : "no key found");
  }
  *out = pkey;
  return 0;
}

/* ---- JWK ---- */

static int jwk_bytes(json_t *jwk, const char *name, int required, uint8_t **out, size_t *len) {
  *out = NULL;
  *len = 0;
  json_t *v = json_object_get(jwk, name);
  if (v == NULL) return required ? tether__fail(TETHER_EINVAL, "jwk: missing \"%s\"", name) : 0;
  if (!json_is_string(v)) return tether__fail(TETHER_EINVAL, "jwk: \"%s\" is not a string", name);
  size_t n = json_string_length(v);
  uint8_t *buf = tether__malloc(n / 4 * 3 + 3);
  int m = tether__base64url_decode_quiet(json_string_value(v), n, buf, n / 4 * 3 + 3);
  if (m <= 0) {
    free(buf);
    return tether__fail(TETHER_EINVAL, "jwk: \"%s\" is not canonical unpadded base64url", name);
  }
  *out = buf;
  *len = (size_t)m;
  return 1;
}

static int bld_bn(OSSL_PARAM_BLD *b, const char *param, const uint8_t *v, size_t n, BIGNUM **keep) {
  BIGNUM *bn = BN_bin2bn(v, (int)n, NULL);
  if (bn == NULL || !OSSL_PARAM_BLD_push_BN(b, param, bn)) {
    BN_free(bn);
    return -1;
  }
  *keep = bn;
  return 0;
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *b, int selection) {
  OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(b);
  EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
  EVP_PKEY *pkey = NULL;
  if (params == NULL || c == NULL || EVP_PKEY_fromdata_init(c) <= 0 ||
      EVP_PKEY_fromdata(c, &pkey, selection, params) <= 0)
    pkey = NULL;
  EVP_PKEY_CTX_free(c);
  OSSL_PARAM_free(params);
  return pkey;
}

static int jwk_rsa(json_t *jwk, EVP_PKEY **out) {
  static const struct {
    const char *jwk, *param;
  } parts[] = {{"n", OSSL_PKEY_PARAM_RSA_N},          {"e", OSSL_PKEY_PARAM_RSA_E},
               {"d", OSSL_PKEY_PARAM_RSA_D},          {"p", OSSL_PKEY_PARAM_RSA_FACTOR1},
               {"q", OSSL_PKEY_PARAM_RSA_FACTOR2},    {"dp", OSSL_PKEY_PARAM_RSA_EXPONENT1},
               {"dq", OSSL_PKEY_PARAM_RSA_EXPONENT2}, {"qi", OSSL_PKEY_PARAM_RSA_COEFFICIENT1}};
  BIGNUM *bn[8] = {0};
  OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
  int rc = 0, have_d = 0;
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(parts) && rc == 0; i++) {
    uint8_t *v;
    size_t n;
    int r = jwk_bytes(jwk, parts[i].jwk, i < 2, &v, &n);
    if (r < 0)
      rc = r;
    else if (r > 0 && (i < 3 || have_d)) {
      if (i == 2) have_d = 1;
      if (bld_bn(b, parts[i].param, v, n, &bn[i]) < 0) rc = tether__fail(TETHER_EINVAL, "jwk: bad RSA member");
    }
    if (v) OPENSSL_clear_free(v, n);
  }
  if (rc == 0) {
    *out = pkey_fromdata("RSA", b, have_d ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY);
    if (*out == NULL) rc = tether__fail(TETHER_EINVAL, "jwk: OpenSSL refused the RSA key");
  }
  OSSL_PARAM_BLD_free(b);
  for (size_t i = 0; i < 8; i++) BN_clear_free(bn[i]);
  ERR_clear_error();
  return rc;
}

static int jwk_ec(json_t *jwk, const char *crv, EVP_PKEY **out) {
  const char *group;
  size_t coord;
  if (strcmp(crv, "P-256") == 0)
    group = "prime256v1", coord = 32;
  else if (strcmp(crv, "P-384") == 0)
    group = "secp384r1", coord = 48;
  else if (strcmp(crv, "P-521") == 0)
    group = "secp521r1", coord = 66;
  else
    return tether__fail(TETHER_EINVAL, "jwk: EC curve '%s' is not P-256, P-384 or P-521", crv);
  uint8_t *x = NULL, *y = NULL, *d = NULL;
  size_t xn, yn, dn = 0;
  int rc = 0;
  if (jwk_bytes(jwk, "x", 1, &x, &xn) < 0 || jwk_bytes(jwk, "y", 1, &y, &yn) < 0 || jwk_bytes(jwk, "d", 0, &d, &dn) < 0)
    rc = TETHER_EINVAL;
  else if (xn != coord || yn != coord || (d != NULL && dn != coord))
    rc = tether__fail(TETHER_EINVAL, "jwk: %s coordinates must be %zu bytes", crv, coord);
  OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
  BIGNUM *priv = NULL;
  uint8_t pub[1 + 2 * 66];
  if (rc == 0) {
    pub[0] = 0x04;
    memcpy(pub + 1, x, coord);
    memcpy(pub + 1 + coord, y, coord);
    if (!OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
        !OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * coord) ||
        (d != NULL && bld_bn(b, OSSL_PKEY_PARAM_PRIV_KEY, d, dn, &priv) < 0))
      rc = tether__fail(TETHER_EINVAL, "jwk: bad EC key");
  }
  if (rc == 0) {
    *out = pkey_fromdata("EC", b, d ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY);
    if (*out == NULL)
      rc = tether__fail(TETHER_EINVAL, "jwk: OpenSSL refused the %s key (is the point on the curve?)", crv);
  }
  OSSL_PARAM_BLD_free(b);
  BN_clear_free(priv);
  free(x);
  free(y);
  if (d) OPENSSL_clear_free(d, dn);
  ERR_clear_error();
  return rc;
}

static int jwk_okp(json_t *jwk, const char *crv, EVP_PKEY **out) {
  if (strcmp(crv, "Ed25519") != 0) return tether__fail(TETHER_EINVAL, "jwk: OKP curve '%s' is not Ed25519", crv);
  uint8_t *x = NULL, *d = NULL;
  size_t xn, dn = 0;
  int rc = 0;
  if (jwk_bytes(jwk, "x", 1, &x, &xn) < 0 || jwk_bytes(jwk, "d", 0, &d, &dn) < 0)
    rc = TETHER_EINVAL;
  else if (xn != 32 || (d != NULL && dn != 32))
    rc = tether__fail(TETHER_EINVAL, "jwk: Ed25519 keys are 32 bytes");
  if (rc == 0) {
    *out = d ? EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, d, dn)
             : EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, xn);
    uint8_t pub[32];
    size_t pn = sizeof(pub);
    if (*out == NULL)
      rc = tether__fail(TETHER_EINVAL, "jwk: OpenSSL refused the Ed25519 key");
    else if (d && (EVP_PKEY_get_raw_public_key(*out, pub, &pn) != 1 || pn != 32 || memcmp(pub, x, 32) != 0)) {
      EVP_PKEY_free(*out);
      *out = NULL;
      rc = tether__fail(TETHER_EINVAL, "jwk: Ed25519 \"x\" is not the public key of \"d\"");
    }
  }
  free(x);
  if (d) OPENSSL_clear_free(d, dn);
  ERR_clear_error();
  return rc;
}

/* One JWK into l. Returns 1 when added, 0 when skipped (not for signatures, or an unsupported type),
 * or an error. */
static int jwk_one(json_t *jwk, tether_jwt_alg alg, const char *want_kid, tether__jwt_key_list *l) {
  if (!json_is_object(jwk)) return tether__fail(TETHER_EINVAL, "jwk: a key is not a JSON object");
  const char *kty = json_string_value(json_object_get(jwk, "kty"));
  const char *use = json_string_value(json_object_get(jwk, "use"));
  json_t *jkid = json_object_get(jwk, "kid");
  json_t *jalg = json_object_get(jwk, "alg");
  if (kty == NULL) return tether__fail(TETHER_EINVAL, "jwk: missing \"kty\"");
  if (jkid != NULL && !json_is_string(jkid)) return tether__fail(TETHER_EINVAL, "jwk: \"kid\" is not a string");
  if (want_kid != NULL && (jkid == NULL || strcmp(json_string_value(jkid), want_kid) != 0)) return 0;
  if (use != NULL && strcmp(use, "sig") != 0) return 0;
  if (jalg != NULL) {
    if (!json_is_string(jalg)) return tether__fail(TETHER_EINVAL, "jwk: \"alg\" is not a string");
    tether_jwt_alg a = tether_jwt_alg_from_name(json_string_value(jalg));
    if (a == TETHER_JWT_ALG_UNKNOWN) return 0; /* an algorithm we do not do (RSA-OAEP, ...) */
    if (alg != TETHER_JWT_ALG_UNKNOWN && a != alg)
      return tether__fail(TETHER_EINVAL, "jwk: the key says \"alg\":\"%s\" but %s was asked", tether__jwt_algs[a].name,
                          tether_jwt_alg_name(alg));
    alg = a;
  }
  const char *crv = json_string_value(json_object_get(jwk, "crv"));
  EVP_PKEY *pkey = NULL;
  tether__jwt_key *k = tether__jwt_keys_push(l);
  int rc;
  if (strcmp(kty, "oct") == 0) {
    uint8_t *secret;
    size_t n;
    rc = jwk_bytes(jwk, "k", 1, &secret, &n);
    if (rc > 0) {
      rc = tether__jwt_key_set_secret(k, secret, n, alg);
      OPENSSL_clear_free(secret, n);
    }
  } else if (strcmp(kty, "RSA") == 0) {
    rc = jwk_rsa(jwk, &pkey);
    if (rc == 0) rc = tether__jwt_key_set_pkey(k, pkey, alg);
  } else if (strcmp(kty, "EC") == 0 || strcmp(kty, "OKP") == 0) {
    if (crv == NULL)
      rc = tether__fail(TETHER_EINVAL, "jwk: missing \"crv\"");
    else
      rc = kty[0] == 'E' ? jwk_ec(jwk, crv, &pkey) : jwk_okp(jwk, crv, &pkey);
    if (rc == 0) rc = tether__jwt_key_set_pkey(k, pkey, alg);
  } else {
    tether__jwt_key_clear(k);
    l->n--;
    return 0;
  }
  if (rc == 0 && jkid != NULL) rc = tether__jwt_key_set_kid(k, json_string_value(jkid), json_string_length(jkid));
  if (rc < 0) {
    tether__jwt_key_clear(k);
    l->n--;
    return rc;
  }
  return 1;
}

/* A JWK or a JWKS ({"keys":[...]}). */
int tether__jwt_jwk_load(const char *json, size_t len, tether_jwt_alg alg, const char *want_kid,
                         tether__jwt_key_list *l) {
  json_error_t err;
  json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
  if (doc == NULL) return tether__fail(TETHER_EINVAL, "jwk: not JSON: %s (line %d)", err.text, err.line);
  json_t *keys = json_object_get(doc, "keys");
  int added = 0, rc = 0;
  if (json_is_array(keys)) {
    size_t i;
    json_t *jwk;
    json_array_foreach(keys, i, jwk) {
      rc = jwk_one(jwk, alg, want_kid, l);
      if (rc < 0) break;
      added += rc;
    }
  } else if (json_is_object(doc) && json_object_get(doc, "kty") != NULL) {
    rc = jwk_one(doc, alg, want_kid, l);
    added = rc > 0 ? rc : 0;
  } else {
    rc = tether__fail(TETHER_EINVAL, "jwk: neither a JWK (\"kty\") nor a JWKS (\"keys\")");
  }
  json_decref(doc);
  if (rc < 0) return rc;
  if (added == 0)
    return want_kid ? tether__fail(TETHER_EINVAL, "jwks: no signature key with kid '%s'", want_kid)
                    : tether__fail(TETHER_EINVAL, "jwks: no usable signature key");
  return added;
}

/* ---- key specifications ---- */

enum content { CONTENT_SECRET, CONTENT_PEM, CONTENT_JWK };

static int read_file(const char *path, char **data, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return tether__fail(TETHER_EINVAL, "jwt key: cannot open '%s': %s", path, strerror(errno));
  char *buf = tether__malloc(JWT_MAX_KEYFILE + 1);
  size_t n = fread(buf, 1, JWT_MAX_KEYFILE + 1, f);
  int bad = ferror(f);
  fclose(f);
  if (bad || n > JWT_MAX_KEYFILE) {
    free(buf);
    return tether__fail(TETHER_EINVAL, "jwt key: '%s' is unreadable or larger than %d bytes", path, JWT_MAX_KEYFILE);
  }
  buf[n] = '\0';
  *data = buf;
  *len = n;
  return 0;
}

/* Resolves a key specification to its bytes and what they are. */
static int spec_resolve(const char *spec, tether_jwt_alg alg, char **data, size_t *len, enum content *kind) {
  int classify = 1, is_file = 0;
  if (spec == NULL || spec[0] == '\0') return tether__fail(TETHER_EINVAL, "jwt key: empty key specification");
  if (strncmp(spec, "env:", 4) == 0) {
    const char *v = getenv(spec + 4);
    if (v == NULL || v[0] == '\0')
      return tether__fail(TETHER_EINVAL, "jwt key: environment variable %s is not set", spec + 4);
    *data = tether__strdup(v);
    *len = strlen(v);
  } else if (strncmp(spec, "file:", 5) == 0 || spec[0] == '/' || strncmp(spec, "./", 2) == 0 ||
             strncmp(spec, "../", 3) == 0) {
    int rc = read_file(spec[0] == 'f' ? spec + 5 : spec, data, len);
    if (rc < 0) return rc;
    is_file = 1;
  } else {
    struct stat st;
    if (strncmp(spec, "literal:", 8) == 0)
      spec += 8;
    else if (stat(spec, &st) == 0)
      return tether__fail(TETHER_EINVAL,
                          "jwt key: the key specification names an existing file: write ./NAME for the file or "
                          "literal:SECRET for the secret");
    *data = tether__strdup(spec);
    *len = strlen(spec);
    classify = 0;
  }
  *kind = CONTENT_SECRET;
  if (classify) {
    size_t i = 0;
    while (i < *len && tether__json_is_ws((*data)[i])) i++;
    if (memmem(*data, *len, "-----BEGIN ", 11) != NULL)
      *kind = CONTENT_PEM;
    else if (i < *len && (*data)[i] == '{')
      *kind = CONTENT_JWK;
  }
  if (*kind == CONTENT_SECRET && is_file && *len > 0 && (*data)[*len - 1] == '\n') {
    (*len)--;
    if (*len > 0 && (*data)[*len - 1] == '\r') (*len)--;
  }
  if (*kind == CONTENT_PEM && alg != TETHER_JWT_ALG_UNKNOWN && tether__jwt_algs[alg].fam == TETHER__FAM_HMAC) {
    OPENSSL_clear_free(*data, *len);
    *data = NULL;
    return tether__fail(TETHER_EINVAL, "jwt key: %s%s is a PEM key; it cannot be an %s secret",
                        is_file ? "file " : "the key", is_file ? spec + (spec[0] == 'f' ? 5 : 0) : "",
                        tether__jwt_algs[alg].name);
  }
  return 0;
}

static int parse_alg_arg(const char *name, tether_jwt_alg *alg) {
  *alg = TETHER_JWT_ALG_UNKNOWN;
  if (name == NULL || name[0] == '\0') return 0;
  *alg = tether_jwt_alg_from_name(name);
  if (*alg == TETHER_JWT_ALG_UNKNOWN)
    return tether__fail(TETHER_EINVAL,
                        "jwt key: unknown algorithm '%s' (HS256/384/512, RS256/384/512, "
                        "PS256/384/512, ES256/384/512, EdDSA)",
                        name);
  return 0;
}

/* Loads the keys a specification names into l (a JWKS may give several). */
int tether__jwt_keys_from_spec(const char *spec, const char *alg_name, const char *kid, tether__jwt_key_list *l) {
  tether__jwt_crypto_init();
  tether_jwt_alg alg;
  int rc = parse_alg_arg(alg_name, &alg);
  if (rc < 0) return rc;
  char *data = NULL;
  size_t len = 0;
  enum content kind = CONTENT_SECRET;
  rc = spec_resolve(spec, alg, &data, &len, &kind);
  if (rc < 0) return rc;
  if (kind == CONTENT_JWK) {
    rc = tether__jwt_jwk_load(data, len, alg, kid, l);
  } else {
    tether__jwt_key *k = tether__jwt_keys_push(l);
    if (kind == CONTENT_SECRET) {
      rc = tether__jwt_key_set_secret(k, data, len, alg);
    } else {
      EVP_PKEY *pkey;
      rc = tether__jwt_pem_load(data, len, &pkey);
      if (rc == 0) rc = tether__jwt_key_set_pkey(k, pkey, alg);
    }
    if (rc == 0) rc = tether__jwt_key_set_kid(k, kid, kid ? strlen(kid) : 0);
    if (rc < 0) {
      tether__jwt_key_clear(k);
      l->n--;
    } else {
      rc = 1;
    }
  }
  OPENSSL_clear_free(data, len);
  return rc;
}
