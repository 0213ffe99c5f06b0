/* libtether: the client-side store. The whole session travels in the cookie as a compact HS256 JWT
 * {"jti": id, "iat": s, "exp": s (when the session expires), "sess": <express-session JSON>}, signed with
 * the first session secret and verified with any of them, by libtether's JWT signer and verifier (built
 * once per session manager: tether__jwt_codec). Nothing is stored server-side. URL: jwt: */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../jwt_impl.h"
#include "../util.h"
#include "store_impl.h"

#define JWT_COOKIE_MAX 4096                                                  /* what browsers keep per cookie */
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

struct tether__jwt_codec {
  tether_jwt_signer *signer;     /* the first secret */
  tether_jwt_verifier *verifier; /* every secret */
};

int tether__jwt_codec_new(const char *const *secrets, size_t n, tether__jwt_codec **out) {
  *out = NULL;
  if (n == 0) return tether__fail(TETHER_EINVAL, "jwt store: no secret");
  tether__jwt_codec *c = tether__calloc(1, sizeof(*c));
  tether_jwt_verify_options o;
  tether_jwt_verify_options_init(&o);
  o.weak_secret_ok = 1; /* session secrets are express's, often shorter than 32 bytes */
  int rc = tether_jwt_signer_new_secret_ex(secrets[0], strlen(secrets[0]), TETHER_JWT_HS256, NULL,
                                           TETHER_JWT_WEAK_SECRET_OK, &c->signer);
  if (rc == 0) rc = tether_jwt_verifier_new(&o, &c->verifier);
  for (size_t i = 0; i < n && rc >= 0; i++)
    rc = tether_jwt_verifier_add_secret(c->verifier, secrets[i], strlen(secrets[i]), TETHER_JWT_HS256, NULL);
  if (rc < 0) {
    tether__jwt_codec_free(c);
    return rc;
  }
  *out = c;
  return 0;
}

void tether__jwt_codec_free(tether__jwt_codec *c) {
  if (c == NULL) return;
  tether_jwt_signer_free(c->signer);
  tether_jwt_verifier_free(c->verifier);
  free(c);
}

char *tether__jwt_cookie_encode(const tether__jwt_codec *c, const char *sid, const char *json, int64_t expires_ms,
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
  char *tok = NULL;
  int rc = tether__jwt_sign_raw(c->signer, payload, strlen(payload), &tok); /* header: jwt_header_b64 */
  free(payload);
  if (rc < 0) {
    *err = rc;
    return NULL;
  }
  if (strlen(tok) > JWT_COOKIE_MAX) {
    *err =
        tether__fail(TETHER_E2BIG, "jwt store: session needs a %zu-byte cookie, more than the %d bytes browsers keep",
                     strlen(tok), JWT_COOKIE_MAX);
    free(tok);
    return NULL;
  }
  return tok;
}

int tether__jwt_cookie_decode(const tether__jwt_codec *c, const char *token, char **sid, char **json) {
  *sid = NULL;
  *json = NULL;
  size_t tlen = strlen(token);
  if (tlen > JWT_COOKIE_MAX) return tether__fail(TETHER_E2BIG, "jwt cookie longer than %d bytes", JWT_COOKIE_MAX);
  /* Algorithm pinned: only the exact header this store writes is accepted (no alg negotiation). */
  size_t hlen = sizeof(jwt_header_b64) - 1;
  if (tlen <= hlen || memcmp(token, jwt_header_b64, hlen) != 0 || token[hlen] != '.')
    return tether__fail(TETHER_EINVAL, "jwt cookie: unexpected header");
  uint8_t payload[JWT_COOKIE_MAX];
  size_t plen = 0;
  int vrc = tether_jws_verify(c->verifier, token, tlen, payload, sizeof(payload), &plen);
  if (vrc < 0) return tether__fail(TETHER_EINVAL, "jwt cookie: %s", tether_jwt_message(vrc));
  json_error_t jerr;
  json_t *claims = json_loadb((const char *)payload, plen, JSON_REJECT_DUPLICATES, &jerr);
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
