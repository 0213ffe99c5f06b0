/* libtether: the JWT verifier. A token is checked against the configured keys of the algorithm its header
 * names (pinned by the key, so an RSA or EC public key never verifies an HS* token and "none" is never
 * accepted), then its claims (jwt_claims.c). */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jwt_impl.h"
#include "util.h"

#define JWT_HEADER_MEMBERS 16

/* ---- the verifier ---- */

void tether_jwt_verify_options_init(tether_jwt_verify_options *o) {
  memset(o, 0, sizeof(*o));
  o->leeway_s = TETHER_JWT_DEFAULT_LEEWAY_S;
  o->max_token_size = TETHER_JWT_DEFAULT_MAX_TOKEN;
}

int tether_jwt_verifier_new(const tether_jwt_verify_options *o, tether_jwt_verifier **out) {
  tether_jwt_verify_options def;
  *out = NULL;
  if (o == NULL) {
    tether_jwt_verify_options_init(&def);
    o = &def;
  }
  if (o->leeway_s < 0 || o->leeway_s > TETHER_JWT_MAX_LEEWAY_S)
    return tether__fail(TETHER_EINVAL, "jwt: leeway %lld s is outside [0, %d]", (long long)o->leeway_s,
                        TETHER_JWT_MAX_LEEWAY_S);
  size_t max = o->max_token_size ? o->max_token_size : TETHER_JWT_DEFAULT_MAX_TOKEN;
  if (max < 64 || max > TETHER_JWT_MAX_MAX_TOKEN)
    return tether__fail(TETHER_EINVAL, "jwt: max token size %zu is outside [64, %d]", max, TETHER_JWT_MAX_MAX_TOKEN);
  if (o->audience_count > TETHER_JWT_MAX_AUDIENCES)
    return tether__fail(TETHER_EINVAL, "jwt: at most %d audiences", TETHER_JWT_MAX_AUDIENCES);
  for (size_t i = 0; i < o->audience_count; i++)
    if (o->audience[i] == NULL) return tether__fail(TETHER_EINVAL, "jwt: audience %zu is NULL", i);
  tether__jwt_crypto_init();
  for (int a = 1; a < TETHER_JWT_ALG_COUNT; a++)
    if (tether__jwt_algs[a].md != NULL && tether__jwt_alg_md[a] == NULL)
      return tether__fail(TETHER_EINVAL, "jwt: OpenSSL has no %s digest", tether__jwt_algs[a].md);
  tether_jwt_verifier *v = tether__calloc(1, sizeof(*v));
  v->leeway_s = o->leeway_s;
  v->require_exp = o->require_exp;
  v->issuer = o->issuer ? tether__strdup(o->issuer) : NULL;
  v->subject = o->subject ? tether__strdup(o->subject) : NULL;
  for (size_t i = 0; i < o->audience_count; i++) v->audience[i] = tether__strdup(o->audience[i]);
  v->audience_count = o->audience_count;
  v->max_token = max;
  v->clock = o->clock;
  v->clock_arg = o->clock_arg;
  v->cache = o->cache != 0;
  v->weak_secret_ok = o->weak_secret_ok != 0;
  v->id = tether__jwt_new_id();
  *out = v;
  return 0;
}

void tether_jwt_verifier_free(tether_jwt_verifier *v) {
  if (v == NULL) return;
  tether__jwt_keys_free(&v->keys);
  free(v->issuer);
  free(v->subject);
  for (size_t i = 0; i < v->audience_count; i++) free(v->audience[i]);
  free(v);
}

size_t tether_jwt_verifier_key_count(const tether_jwt_verifier *v) { return v ? v->keys.n : 0; }

static void add_known(tether_jwt_verifier *v, const char *json, tether_jwt_alg alg) {
  tether__jwt_known_header *h = &v->known[v->nknown];
  h->len = tether__base64url_encode((const uint8_t *)json, strlen(json), h->b64);
  h->alg = alg;
  for (size_t i = 0; i < v->nknown; i++)
    if (v->known[i].len == h->len && memcmp(v->known[i].b64, h->b64, h->len) == 0) return;
  v->nknown++;
}

static void keys_added(tether_jwt_verifier *v) {
  for (size_t i = 0; i < v->keys.n; i++) {
    char json[40];
    tether_jwt_alg a = v->keys.k[i].alg;
    snprintf(json, sizeof(json), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", tether__jwt_algs[a].name);
    add_known(v, json, a);
    snprintf(json, sizeof(json), "{\"alg\":\"%s\"}", tether__jwt_algs[a].name);
    add_known(v, json, a);
  }
}

static int verifier_take(tether_jwt_verifier *v, tether__jwt_key_list *l, int rc) {
  if (rc >= 0 && v == NULL) rc = tether__fail(TETHER_EINVAL, "jwt: no verifier");
  if (rc >= 0 && !v->weak_secret_ok) rc = tether__jwt_keys_check_strength(l);
  if (rc < 0) {
    tether__jwt_keys_free(l);
    return rc;
  }
  v->keys.k = tether__realloc(v->keys.k, (v->keys.n + l->n) * sizeof(tether__jwt_key));
  memcpy(v->keys.k + v->keys.n, l->k, l->n * sizeof(tether__jwt_key));
  v->keys.n += l->n;
  int added = (int)l->n;
  free(l->k);
  keys_added(v);
  return added;
}

int tether_jwt_verifier_add_key(tether_jwt_verifier *v, const char *spec, const char *alg, const char *kid) {
  tether__jwt_key_list l = {0};
  return verifier_take(v, &l, tether__jwt_keys_from_spec(spec, alg, kid, &l));
}

int tether_jwt_verifier_add_secret(tether_jwt_verifier *v, const void *secret, size_t len, tether_jwt_alg alg,
                                   const char *kid) {
  tether__jwt_key_list l = {0};
  tether__jwt_key *k = tether__jwt_keys_push(&l);
  int rc = tether__jwt_key_set_secret(k, secret, len, alg);
  if (rc == 0) rc = tether__jwt_key_set_kid(k, kid, kid ? strlen(kid) : 0);
  return verifier_take(v, &l, rc);
}

int tether_jwt_verifier_add_pem(tether_jwt_verifier *v, const char *pem, size_t len, tether_jwt_alg alg,
                                const char *kid) {
  tether__jwt_key_list l = {0};
  EVP_PKEY *pkey;
  int rc = tether__jwt_pem_load(pem, len, &pkey);
  if (rc == 0) {
    tether__jwt_key *k = tether__jwt_keys_push(&l);
    rc = tether__jwt_key_set_pkey(k, pkey, alg);
    if (rc == 0) rc = tether__jwt_key_set_kid(k, kid, kid ? strlen(kid) : 0);
  }
  return verifier_take(v, &l, rc);
}

int tether_jwt_verifier_add_jwk(tether_jwt_verifier *v, const char *json, size_t len, tether_jwt_alg alg) {
  tether__jwt_key_list l = {0};
  return verifier_take(v, &l, tether__jwt_jwk_load(json, len, alg, NULL, &l));
}

/* ---- verification ---- */

typedef struct header_info {
  tether_jwt_alg alg;
  int has_kid;
  char kid[TETHER__JWT_MAX_KID + 1];
  size_t kid_len; /* > TETHER__JWT_MAX_KID: too long to match any key */
} header_info;

static int header_from_json(json_t *j, header_info *h) {
  json_t *alg = json_object_get(j, "alg"), *kid = json_object_get(j, "kid");
  if (!json_is_string(alg)) return tether__fail(TETHER_JWT_EMALFORMED, "jwt malformed: header has no \"alg\" string");
  if (json_object_get(j, "crit") != NULL)
    return tether__fail(TETHER_JWT_ECRIT, "jwt header has \"crit\": extensions are not supported");
  const char *a = json_string_value(alg);
  if (strcasecmp(a, "none") == 0) return tether__fail(TETHER_JWT_EUNSIGNED, "jwt signature is required (alg none)");
  h->alg = tether_jwt_alg_from_name(a);
  if (h->alg == TETHER_JWT_ALG_UNKNOWN) return tether__fail(TETHER_JWT_EALG, "invalid algorithm '%.32s'", a);
  if (kid != NULL) {
    if (!json_is_string(kid)) return tether__fail(TETHER_JWT_EMALFORMED, "jwt malformed: \"kid\" is not a string");
    h->has_kid = 1;
    h->kid_len = json_string_length(kid);
    if (h->kid_len <= TETHER__JWT_MAX_KID) memcpy(h->kid, json_string_value(kid), h->kid_len + 1);
  }
  return 0;
}

static int header_from_members(const char *p, const tether__json_member *m, int count, header_info *h) {
  const tether__json_member *alg = NULL, *kid = NULL;
  for (int i = 0; i < count; i++) {
    if (tether__json_member_is(p, &m[i], "alg", 3))
      alg = &m[i];
    else if (tether__json_member_is(p, &m[i], "kid", 3))
      kid = &m[i];
    else if (tether__json_member_is(p, &m[i], "crit", 4))
      return tether__fail(TETHER_JWT_ECRIT, "jwt header has \"crit\": extensions are not supported");
  }
  if (alg == NULL || TETHER__JSON_TYPE(alg->type) != TETHER__JSON_STRING)
    return tether__fail(TETHER_JWT_EMALFORMED, "jwt malformed: header has no \"alg\" string");
  char a[16];
  long an =
      tether__json_str_unescape(p + alg->value, alg->value_len, (alg->type & TETHER__JSON_VAL_ESC) != 0, a, sizeof(a));
  if (an < 0) return tether__fail(TETHER_JWT_EALG, "invalid algorithm (%u bytes)", alg->value_len);
  if (strcasecmp(a, "none") == 0) return tether__fail(TETHER_JWT_EUNSIGNED, "jwt signature is required (alg none)");
  h->alg = tether__jwt_alg_from_span(a, (size_t)an);
  if (h->alg == TETHER_JWT_ALG_UNKNOWN) return tether__fail(TETHER_JWT_EALG, "invalid algorithm '%s'", a);
  if (kid != NULL) {
    if (TETHER__JSON_TYPE(kid->type) != TETHER__JSON_STRING)
      return tether__fail(TETHER_JWT_EMALFORMED, "jwt malformed: \"kid\" is not a string");
    h->has_kid = 1;
    long kn = tether__json_str_unescape(p + kid->value, kid->value_len, (kid->type & TETHER__JSON_VAL_ESC) != 0, h->kid,
                                        sizeof(h->kid));
    h->kid_len = kn < 0 ? TETHER__JWT_MAX_KID + 1 : (size_t)kn;
    if (kn < 0) h->kid[TETHER__JWT_MAX_KID] = '\0';
  }
  return 0;
}

static int header_parse(const tether_jwt_verifier *v, const char *b64, size_t n, header_info *h) {
  h->has_kid = 0;
  h->kid_len = 0;
  h->kid[0] = '\0';
  for (size_t i = 0; i < v->nknown; i++) {
    if (v->known[i].len == n && memcmp(v->known[i].b64, b64, n) == 0) {
      h->alg = v->known[i].alg;
      return 0;
    }
  }
  uint8_t small[1024];
  size_t cap = n / 4 * 3 + 3;
  uint8_t *buf = cap <= sizeof(small) ? small : tether__malloc(cap);
  int len = tether__base64url_decode_quiet(b64, n, buf, cap), rc;
  if (len < 0) {
    rc = tether__fail(TETHER_JWT_EENCODING, "jwt header is not strict base64url");
  } else {
    tether__json_member m[JWT_HEADER_MEMBERS];
    int count;
    const char *p = (const char *)buf;
    int r = tether__json_scan_object(p, (size_t)len, m, JWT_HEADER_MEMBERS, &count);
    if (r == TETHER__SCAN_OK) {
      rc = header_from_members(p, m, count, h);
    } else if (r == TETHER__SCAN_DUP) {
      rc = tether__fail(TETHER_JWT_EDUPLICATE, "jwt header has a duplicate member name");
    } else if (r == TETHER__SCAN_INVALID) {
      rc = tether__fail(TETHER_JWT_EMALFORMED, "jwt malformed: header is not JSON");
    } else if (memchr(p, '\0', (size_t)len) != NULL) {
      rc = tether__fail(TETHER_JWT_EMALFORMED, "jwt malformed: NUL byte in the header");
    } else {
      json_error_t err;
      json_t *j = json_loadb(p, (size_t)len, JSON_REJECT_DUPLICATES, &err);
      if (j == NULL && json_error_code(&err) == json_error_duplicate_key)
        rc = tether__fail(TETHER_JWT_EDUPLICATE, "jwt header has a duplicate member name");
      else if (!json_is_object(j))
        rc = tether__fail(TETHER_JWT_EMALFORMED, "jwt malformed: header is not a JSON object");
      else
        rc = header_from_json(j, h);
      json_decref(j);
    }
  }
  if (buf != small) free(buf);
  return rc;
}

static int kid_matches(const tether__jwt_key *k, const header_info *h) {
  return h->kid_len == k->kid_len && memcmp(h->kid, k->kid, k->kid_len) == 0;
}

/* Everything up to and including the signature. */
static int jws_check(const tether_jwt_verifier *v, const char *tok, size_t len, const char **payload,
                     size_t *payload_len, tether_jwt_alg *alg_out, int *key_index) {
  if (v == NULL) return tether__fail(TETHER_EINVAL, "jwt: no verifier");
  if (tok == NULL) return tether__fail(TETHER_JWT_EMALFORMED, "jwt must be provided");
  if (len > v->max_token)
    return tether__fail(TETHER_JWT_ETOOLARGE, "jwt of %zu bytes is larger than %zu", len, v->max_token);
  const char *d1 = memchr(tok, '.', len);
  const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
  if (d2 == NULL) return tether__fail(TETHER_JWT_EMALFORMED, "jwt malformed: not three segments");
  const char *sig_b64 = d2 + 1;
  size_t sig_b64_len = len - (size_t)(sig_b64 - tok);
  if (memchr(sig_b64, '.', sig_b64_len) != NULL)
    return tether__fail(TETHER_JWT_EMALFORMED, "jwt malformed: more than three segments");
  if (d1 == tok) return tether__fail(TETHER_JWT_EMALFORMED, "jwt malformed: empty header");
  header_info h;
  int rc = header_parse(v, tok, (size_t)(d1 - tok), &h);
  if (rc < 0) return rc;
  if (sig_b64_len == 0) return tether__fail(TETHER_JWT_EUNSIGNED, "jwt signature is required");
  if (sig_b64_len > (TETHER__JWT_MAX_SIG * 4 + 2) / 3)
    return tether__fail(TETHER_JWT_ESIGNATURE, "invalid signature: %zu characters is too long", sig_b64_len);
  uint8_t sig[TETHER__JWT_MAX_SIG + 3];
  int siglen = tether__base64url_decode_quiet(sig_b64, sig_b64_len, sig, sizeof(sig));
  if (siglen < 0) return tether__fail(TETHER_JWT_EENCODING, "jwt signature is not strict base64url");
  size_t signed_len = (size_t)(d2 - tok);
  /* the cache: the same token text, verified before by this verifier (never for HMAC: as cheap as a hash) */
  uint8_t digest[32];
  unsigned int dlen = 0;
  int cache = v->cache && tether__jwt_algs[h.alg].fam != TETHER__FAM_HMAC &&
              EVP_Digest(tok, len, digest, &dlen, tether__jwt_alg_md[TETHER_JWT_HS256], NULL) == 1;
  if (cache) {
    int idx = tether__jwt_vcache_lookup(v->id, digest);
    if (idx >= 0) {
      *payload = d1 + 1;
      *payload_len = (size_t)(d2 - d1 - 1);
      *alg_out = h.alg;
      *key_index = idx;
      return 0;
    }
  }
  int candidates = 0, kid_other_alg = 0, alg_other_kid = 0;
  for (size_t i = 0; i < v->keys.n; i++) {
    const tether__jwt_key *k = &v->keys.k[i];
    int kid_ok = !h.has_kid || k->kid == NULL || kid_matches(k, &h);
    if (k->alg != h.alg) {
      kid_other_alg |= h.has_kid && k->kid != NULL && kid_matches(k, &h);
      continue;
    }
    if (!kid_ok) {
      alg_other_kid = 1;
      continue;
    }
    candidates++;
    if (tether__jwt_sig_verify(k, tok, signed_len, sig, (size_t)siglen)) {
      if (cache) tether__jwt_vcache_store(v->id, digest, (int)i);
      *payload = d1 + 1;
      *payload_len = (size_t)(d2 - d1 - 1);
      *alg_out = h.alg;
      *key_index = (int)i;
      return 0;
    }
  }
  if (candidates > 0)
    return tether__fail(TETHER_JWT_ESIGNATURE, "invalid signature (%s)", tether__jwt_algs[h.alg].name);
  if (alg_other_kid && !kid_other_alg)
    return tether__fail(TETHER_JWT_ENOKEY, "no %s key has kid '%.64s'", tether__jwt_algs[h.alg].name, h.kid);
  if (v->keys.n == 0) return tether__fail(TETHER_JWT_ENOKEY, "jwt verifier has no key");
  return tether__fail(TETHER_JWT_EALG, "invalid algorithm: no configured key does %s", tether__jwt_algs[h.alg].name);
}

int tether_jws_verify(const tether_jwt_verifier *v, const char *token, size_t len, uint8_t *out, size_t cap,
                      size_t *out_len) {
  const char *p;
  size_t pn;
  tether_jwt_alg alg;
  int idx;
  int rc = jws_check(v, token, len, &p, &pn, &alg, &idx);
  if (rc < 0) return rc;
  int n = tether__base64url_decode_quiet(p, pn, out, cap);
  if (n == TETHER_E2BIG) return tether__fail(TETHER_E2BIG, "jws payload does not fit in %zu bytes", cap);
  if (n < 0) return tether__fail(TETHER_JWT_EENCODING, "jwt payload is not strict base64url");
  *out_len = (size_t)n;
  return 0;
}

/* ---- claims ---- */

int tether_jwt_verify(const tether_jwt_verifier *v, const char *token, size_t len, tether_jwt_claims *claims) {
  tether_jwt_claims local;
  tether_jwt_claims *c = claims;
  if (c == NULL) {
    c = &local;
    tether__jwt_claims_init(c);
  } else {
    tether__jwt_claims_reset(c);
  }
  const char *p;
  size_t pn;
  tether_jwt_alg alg;
  int idx;
  int rc = jws_check(v, token, len, &p, &pn, &alg, &idx);
  if (rc == 0) rc = tether__jwt_claims_load(c, p, pn);
  if (rc == 0) rc = tether__jwt_claims_check(v, c);
  if (rc == 0) {
    c->valid = 1;
    c->alg = alg;
    c->key_index = idx;
  }
  if (c == &local) tether__jwt_claims_release(c);
  return rc;
}
