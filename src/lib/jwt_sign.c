/* libtether: the JWT signer, as npm jsonwebtoken's jwt.sign(payload, secret, { expiresIn }). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "jwt_impl.h"
#include "util.h"

struct tether_jwt_signer {
  tether__jwt_key key;
  tether_jwt_clock_fn clock;
  void *clock_arg;
};

static int signer_from(tether__jwt_key_list *l, int rc, const char *kid, int flags, tether_jwt_signer **out) {
  *out = NULL;
  if (rc >= 0 && !(flags & TETHER_JWT_WEAK_SECRET_OK)) rc = tether__jwt_keys_check_strength(l);
  if (rc >= 0 && l->n != 1)
    rc = tether__fail(TETHER_EINVAL, "jwt signer: the key set has %zu keys: name one with kid", l->n);
  if (rc >= 0 && !l->k[0].has_private)
    rc = tether__fail(TETHER_EINVAL, "jwt signer: a public key cannot sign (give the private key)");
  if (rc >= 0 && kid != NULL && l->k[0].kid == NULL) rc = tether__jwt_key_set_kid(&l->k[0], kid, strlen(kid));
  if (rc < 0) {
    tether__jwt_keys_free(l);
    return rc;
  }
  tether_jwt_signer *s = tether__calloc(1, sizeof(*s));
  s->key = l->k[0];
  free(l->k);
  *out = s;
  return 0;
}

int tether_jwt_signer_new(const char *spec, const char *alg, const char *kid, tether_jwt_signer **out) {
  return tether_jwt_signer_new_ex(spec, alg, kid, 0, out);
}

int tether_jwt_signer_new_ex(const char *spec, const char *alg, const char *kid, int flags, tether_jwt_signer **out) {
  tether__jwt_key_list l = {0};
  int rc = tether__jwt_keys_from_spec(spec, alg, kid, &l);
  return signer_from(&l, rc, NULL, flags, out);
}

int tether_jwt_signer_new_secret(const void *secret, size_t len, tether_jwt_alg alg, const char *kid,
                                 tether_jwt_signer **out) {
  return tether_jwt_signer_new_secret_ex(secret, len, alg, kid, 0, out);
}

int tether_jwt_signer_new_secret_ex(const void *secret, size_t len, tether_jwt_alg alg, const char *kid, int flags,
                                    tether_jwt_signer **out) {
  tether__jwt_crypto_init();
  tether__jwt_key_list l = {0};
  int rc = tether__jwt_key_set_secret(tether__jwt_keys_push(&l), secret, len, alg);
  return signer_from(&l, rc, kid, flags, out);
}

int tether_jwt_signer_new_pem(const char *pem, size_t len, tether_jwt_alg alg, const char *kid,
                              tether_jwt_signer **out) {
  tether__jwt_crypto_init();
  tether__jwt_key_list l = {0};
  EVP_PKEY *pkey;
  int rc = tether__jwt_pem_load(pem, len, &pkey);
  if (rc == 0) rc = tether__jwt_key_set_pkey(tether__jwt_keys_push(&l), pkey, alg);
  return signer_from(&l, rc, kid, 0, out);
}

void tether_jwt_signer_free(tether_jwt_signer *s) {
  if (s == NULL) return;
  tether__jwt_key_clear(&s->key);
  free(s);
}

void tether_jwt_signer_set_clock(tether_jwt_signer *s, tether_jwt_clock_fn clock, void *arg) {
  s->clock = clock;
  s->clock_arg = arg;
}

tether_jwt_alg tether_jwt_signer_alg(const tether_jwt_signer *s) { return s ? s->key.alg : TETHER_JWT_ALG_UNKNOWN; }

/* header.payload (both JSON texts) signed: a malloc'd compact JWS, or NULL with *err set. */
static char *jws_compact(const tether__jwt_key *k, const char *header, size_t hn, const char *payload, size_t pn,
                         int *err) {
  size_t cap = (hn + 2) / 3 * 4 + 1 + (pn + 2) / 3 * 4 + 1 + (TETHER__JWT_MAX_SIG + 2) / 3 * 4 + 2;
  char *tok = tether__malloc(cap);
  size_t o = tether__base64url_encode((const uint8_t *)header, hn, tok);
  tok[o++] = '.';
  o += tether__base64url_encode((const uint8_t *)payload, pn, tok + o);
  uint8_t sig[TETHER__JWT_MAX_SIG];
  int sl = tether__jwt_sig_sign(k, tok, o, sig, sizeof(sig));
  if (sl < 0) {
    *err = sl;
    free(tok);
    return NULL;
  }
  tok[o++] = '.';
  tether__base64url_encode(sig, (size_t)sl, tok + o);
  return tok;
}

/* The header tether_jwt_sign writes, {"alg":ALG,"typ":"JWT"[,"kid":KID]}, then header.payload signed. */
static int sign_text(const tether_jwt_signer *s, const char *payload, size_t pn, char **token) {
  json_t *hdr = json_object();
  json_object_set_new(hdr, "alg", json_string(tether__jwt_algs[s->key.alg].name));
  json_object_set_new(hdr, "typ", json_string("JWT"));
  if (s->key.kid) json_object_set_new(hdr, "kid", json_stringn(s->key.kid, s->key.kid_len));
  char *h = json_dumps(hdr, JSON_COMPACT);
  json_decref(hdr);
  int err = 0;
  if (h == NULL)
    err = tether__fail(TETHER_EINVAL, "jwt sign: the header cannot be serialised");
  else
    *token = jws_compact(&s->key, h, strlen(h), payload, pn, &err);
  free(h);
  return *token ? 0 : err;
}

int tether__jwt_sign_raw(const tether_jwt_signer *s, const char *payload, size_t n, char **token) {
  *token = NULL;
  if (s == NULL) return tether__fail(TETHER_EINVAL, "jwt sign: no signer");
  return sign_text(s, payload, n, token);
}

/* jsonwebtoken's iat and exp, added to claims (an object of the caller's). */
static int add_dates(const tether_jwt_signer *s, json_t *claims, int64_t expires_in_s) {
  json_t *iat_in = json_object_get(claims, "iat");
  if (iat_in != NULL && !json_is_number(iat_in))
    return tether__fail(TETHER_EINVAL, "jwt sign: \"iat\" should be a number of seconds");
  if (expires_in_s != TETHER_JWT_NO_EXPIRY && json_object_get(claims, "exp") != NULL)
    return tether__fail(TETHER_EINVAL, "jwt sign: expires_in given but the payload already has \"exp\"");
  int64_t now_ms = s->clock ? s->clock(s->clock_arg) : tether_now_ms();
  int64_t iat = now_ms >= 0 ? now_ms / 1000 : -((-now_ms + 999) / 1000);
  /* jsonwebtoken: timestamp = payload.iat || now; the payload's own iat keeps its place */
  if (iat_in != NULL && json_number_value(iat_in) != 0) {
    if (expires_in_s != TETHER_JWT_NO_EXPIRY && !json_is_integer(iat_in))
      return tether__fail(TETHER_EINVAL, "jwt sign: a fractional \"iat\" cannot take expires_in");
    iat = json_is_integer(iat_in) ? json_integer_value(iat_in) : iat;
  } else {
    json_object_set_new(claims, "iat", json_integer(iat));
  }
  if (expires_in_s != TETHER_JWT_NO_EXPIRY) {
    if ((expires_in_s > 0 && iat > INT64_MAX - expires_in_s) || (expires_in_s < 0 && iat < INT64_MIN - expires_in_s))
      return tether__fail(TETHER_EINVAL, "jwt sign: iat + expires_in overflows");
    json_object_set_new(claims, "exp", json_integer(iat + expires_in_s));
  }
  return 0;
}

int tether_jwt_sign(const tether_jwt_signer *s, const char *payload, size_t len, int64_t expires_in_s, char **token) {
  *token = NULL;
  json_t *claims = payload ? json_loadb(payload, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
  int rc = 0;
  if (s == NULL || !json_is_object(claims)) rc = tether__fail(TETHER_EINVAL, "jwt sign: payload must be a JSON object");
  if (rc == 0) rc = add_dates(s, claims, expires_in_s);
  char *p = rc == 0 ? json_dumps(claims, JSON_COMPACT) : NULL;
  json_decref(claims);
  if (rc == 0 && p == NULL) rc = tether__fail(TETHER_EINVAL, "jwt sign: payload cannot be serialised");
  if (rc == 0) rc = sign_text(s, p, strlen(p), token);
  free(p);
  return rc;
}
