/* libtether: the client-side store. The whole session travels in the cookie as a compact HS256 JWT
 * {"jti": id, "iat": s, "exp": s (when the session expires), "sess": <express-session JSON>}, signed with
 * the first session secret and verified with any of them. Nothing is stored server-side. URL: jwt: */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../util.h"
#include "store_impl.h"

#define JWT_COOKIE_MAX 4096 /* what browsers keep per cookie */
static const char jwt_header_b64[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"; /* {"alg":"HS256","typ":"JWT"} */

static int jwt_open(tether_store *st, const char *text) {
  if (strcmp(text, "jwt:") != 0 && strcasecmp(text, "jwt:") != 0)
    return tether__fail(TETHER_EINVAL, "jwt store: takes no path or parameters, got '%s' (use 'jwt:')", st->url);
  st->impl = NULL;
  return 0;
}

static void jwt_close(tether_store *st) { TETHER__UNUSED(st); }

static int jwt_unsupported(void) {
  return tether__fail(TETHER_ENOTSUP, "jwt store keeps sessions in the cookie; there is nothing to look up");
}

static int jwt_get(tether_store *st, const char *sid, char **json, size_t *len) {
  TETHER__UNUSED(st), TETHER__UNUSED(sid), TETHER__UNUSED(json), TETHER__UNUSED(len);
  return jwt_unsupported();
}

static int jwt_set(tether_store *st, const char *sid, const char *json, size_t len, int64_t expires_ms, int mode) {
  TETHER__UNUSED(st), TETHER__UNUSED(sid), TETHER__UNUSED(json), TETHER__UNUSED(len), TETHER__UNUSED(expires_ms);
  TETHER__UNUSED(mode);
  return jwt_unsupported();
}

static int jwt_destroy(tether_store *st, const char *sid) {
  TETHER__UNUSED(st), TETHER__UNUSED(sid);
  return 0; /* the client drops the cookie; nothing server-side to delete */
}

static void sign(const char *input, size_t n, const char *secret, char out[44]) {
  uint8_t mac[EVP_MAX_MD_SIZE];
  unsigned int maclen = 0;
  HMAC(EVP_sha256(), secret, (int)strlen(secret), (const uint8_t *)input, n, mac, &maclen);
  tether__base64url_encode(mac, maclen, out);
}

char *tether__jwt_cookie_encode(const char *sid, const char *json, int64_t expires_ms, const char *secret,
                                int *err) {
  json_error_t jerr;
  json_t *sess = json_loads(json, 0, &jerr);
  if (sess == NULL) {
    *err = tether__fail(TETHER_EINVAL, "jwt store: session is not JSON: %s", jerr.text);
    return NULL;
  }
  json_t *claims = json_object();
  json_object_set_new(claims, "jti", json_string(sid));
  json_object_set_new(claims, "iat", json_integer(tether_now_ms() / 1000));
  if (expires_ms) json_object_set_new(claims, "exp", json_integer((expires_ms + 999) / 1000));
  json_object_set_new(claims, "sess", sess);
  char *payload = json_dumps(claims, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(claims);
  size_t plen = strlen(payload);
  size_t hlen = sizeof(jwt_header_b64) - 1;
  size_t total = hlen + 1 + (plen + 2) / 3 * 4 + 1 + 43;
  char *tok = tether__malloc(total + 1);
  memcpy(tok, jwt_header_b64, hlen);
  tok[hlen] = '.';
  size_t n = hlen + 1 + tether__base64url_encode((const uint8_t *)payload, plen, tok + hlen + 1);
  free(payload);
  tok[n] = '.';
  sign(tok, n, secret, tok + n + 1);
  if (strlen(tok) > JWT_COOKIE_MAX) {
    *err = tether__fail(TETHER_E2BIG, "jwt store: session needs a %zu-byte cookie, more than the %d bytes browsers keep",
                        strlen(tok), JWT_COOKIE_MAX);
    free(tok);
    return NULL;
  }
  return tok;
}

int tether__jwt_cookie_decode(const char *token, const char *const *secrets, size_t n, char **sid, char **json) {
  *sid = NULL;
  *json = NULL;
  size_t tlen = strlen(token);
  if (tlen > JWT_COOKIE_MAX) return tether__fail(TETHER_E2BIG, "jwt cookie longer than %d bytes", JWT_COOKIE_MAX);
  const char *d1 = strchr(token, '.');
  const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
  if (d2 == NULL || strchr(d2 + 1, '.') != NULL) return tether__fail(TETHER_EINVAL, "jwt cookie: malformed");
  size_t hlen = (size_t)(d1 - token);
  /* Algorithm pinned: only the exact header this store writes is accepted (no alg negotiation). */
  if (hlen != sizeof(jwt_header_b64) - 1 || memcmp(token, jwt_header_b64, hlen) != 0)
    return tether__fail(TETHER_EINVAL, "jwt cookie: unexpected header");
  size_t signed_len = (size_t)(d2 - token);
  if (strlen(d2 + 1) != 43) return tether__fail(TETHER_EINVAL, "jwt cookie: bad signature length");
  int ok = 0;
  for (size_t i = 0; i < n; i++) {
    char sig[48];
    sign(token, signed_len, secrets[i], sig);
    ok |= tether__ct_equal(sig, d2 + 1, 43);
  }
  if (!ok) return tether__fail(TETHER_EINVAL, "jwt cookie: invalid signature");
  size_t plen_b64 = (size_t)(d2 - d1 - 1);
  uint8_t *payload = tether__malloc(plen_b64 + 1);
  int plen = tether__base64url_decode(d1 + 1, plen_b64, payload, plen_b64);
  if (plen < 0) {
    free(payload);
    return tether__fail(TETHER_EINVAL, "jwt cookie: payload is not base64url");
  }
  json_error_t jerr;
  json_t *claims = json_loadb((const char *)payload, (size_t)plen, JSON_REJECT_DUPLICATES, &jerr);
  free(payload);
  json_t *jti = json_object_get(claims, "jti");
  json_t *exp = json_object_get(claims, "exp");
  json_t *sess = json_object_get(claims, "sess");
  int rc = 0;
  if (!json_is_object(claims) || !json_is_string(jti) || !json_is_object(sess) || (exp && !json_is_integer(exp))) {
    rc = tether__fail(TETHER_EINVAL, "jwt cookie: claims are not a session");
  } else if (exp && (json_integer_value(exp) < 0 || json_integer_value(exp) > 253402300799)) {
    rc = tether__fail(TETHER_EINVAL, "jwt cookie: exp out of range");
  } else if (exp && json_integer_value(exp) * 1000 <= tether_now_ms()) {
    rc = tether__fail(TETHER_ENOTFOUND, "jwt cookie: expired");
  } else {
    *sid = tether__strdup(json_string_value(jti));
    *json = json_dumps(sess, JSON_COMPACT | JSON_PRESERVE_ORDER);
  }
  json_decref(claims);
  return rc;
}

const tether__store_ops tether__store_jwt = {
    .kind = "jwt",
    .open = jwt_open,
    .close = jwt_close,
    .get = jwt_get,
    .set = jwt_set,
    .destroy = jwt_destroy,
    .client_side = 1,
};
