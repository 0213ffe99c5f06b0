/* tether-app: the seed's token flow, without the session store: POST /login in token mode signs an HS256
 * token (login()), GET /api/me verifies a bearer token (authenticate). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"

#define TOKEN_TTL_S 3600 /* the seed's expiresIn: '1h' */
#define BEARER_REALM "Bearer realm=\"tether-app\""
#define TOKEN_ROLE "user" /* the role of every token login: decided here, never by the client */

static int is_yes(const char *v) { return strcmp(v, "1") == 0 || strcmp(v, "true") == 0; }

/* Token mode for POST /login: ?token=1, a JSON body's "token": true, or a form field token=1. */
int wants_token(struct MHD_Connection *conn, const request *rq, const char *ctype) {
  const char *q = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "token");
  if (q && is_yes(q)) return 1;
  if (rq->body == NULL) return 0;
  if (ctype && strncmp(ctype, "application/json", 16) == 0) {
    json_t *j = json_loadb(rq->body, rq->len, JSON_REJECT_DUPLICATES, NULL);
    int yes = json_is_true(json_object_get(j, "token"));
    json_decref(j);
    return yes;
  }
  char *v = body_field(rq, ctype, "token");
  int yes = v && is_yes(v);
  free(v);
  return yes;
}

static enum MHD_Result tokens_not_configured(struct MHD_Connection *conn, int route) {
  return send_json(conn, route, 501,
                   json_pack("{s:s}", "error", "token login is not configured (--jwt-secret or JWT_SECRET)"), NULL);
}

/* login(): {"token": jwt.sign({ userId, role }, JWT_SECRET, { expiresIn: '1h' })}. No session, no cookie.
 * The role is the server's (every token user is "user"): a client naming its own role would sign itself
 * any privilege, so a "role" in the request is ignored. */
enum MHD_Result token_login(struct MHD_Connection *conn, const request *rq, const char *ctype) {
  if (the_app.signer == NULL) return tokens_not_configured(conn, R_LOGIN);
  char *user = body_field(rq, ctype, "user");
  int status = 400;
  json_t *answer = NULL;
  if (user == NULL || !valid_text(user, 64)) {
    answer = json_pack("{s:s}", "error", "a user name (1-64 characters) is required");
  } else {
    json_t *payload = json_pack("{s:s,s:s}", "userId", user, "role", TOKEN_ROLE);
    char *text = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
    char *token = NULL;
    if (payload == NULL) { /* jansson refuses text that is not UTF-8 */
      answer = json_pack("{s:s}", "error", "the user name must be UTF-8");
    } else if (text == NULL || tether_jwt_sign(the_app.signer, text, strlen(text), TOKEN_TTL_S, &token) < 0) {
      status = 500;
      log_detail("signing a token", tether_last_error());
      answer = json_pack("{s:s}", "error", "cannot sign the token");
    } else {
      status = 200;
      answer = json_pack("{s:s}", "token", token);
    }
    json_decref(payload);
    free(text);
    free(token);
  }
  free(user);
  return send_json(conn, R_LOGIN, status, answer, NULL);
}

/* 401 with RFC 6750's challenge: the error only when a token was presented (rc < 0), and the seed's body. */
static enum MHD_Result unauthorized(struct MHD_Connection *conn, int rc) {
  char challenge[256];
  if (rc < 0)
    snprintf(challenge, sizeof(challenge), "%s, error=\"invalid_token\", error_description=\"%s\"", BEARER_REALM,
             tether_jwt_message(rc)); /* fixed messages, without quotes or backslashes */
  else
    snprintf(challenge, sizeof(challenge), "%s", BEARER_REALM);
  return send_json_h(conn, R_API_ME, 401, json_pack("{s:s}", "error", "Invalid token"), NULL,
                     (header){"WWW-Authenticate", challenge});
}

/* authenticate + the claims: GET /api/me with Authorization: Bearer TOKEN. */
enum MHD_Result api_me(struct MHD_Connection *conn) {
  if (the_app.verifier == NULL) return tokens_not_configured(conn, R_API_ME);
  const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  if (auth == NULL || strncasecmp(auth, "Bearer", 6) != 0 || (auth[6] != ' ' && auth[6] != '\t' && auth[6] != '\0'))
    return unauthorized(conn, 0); /* no bearer credentials at all */
  const char *token = auth + 6;
  while (*token == ' ' || *token == '\t') token++;
  size_t len = strlen(token);
  while (len > 0 && (token[len - 1] == ' ' || token[len - 1] == '\t')) len--;
  if (len == 0) return unauthorized(conn, 0);
  tether_jwt_claims *c = tether_jwt_claims_new();
  int rc = c ? tether_jwt_verify(the_app.verifier, token, len, c) : TETHER_ENOMEM;
  if (rc < 0) {
    tether_jwt_claims_free(c);
    return unauthorized(conn, rc);
  }
  size_t plen;
  const char *payload = tether_jwt_claims_payload(c, &plen);
  json_t *claims = payload ? json_loadb(payload, plen, 0, NULL) : NULL;
  json_t *answer = claims ? json_pack("{s:s,s:o}", "server", the_app.name, "user", claims) : NULL;
  tether_jwt_claims_free(c);
  if (answer == NULL)
    return send_json(conn, R_API_ME, 500, json_pack("{s:s}", "error", "cannot read the token's claims"), NULL);
  return send_json(conn, R_API_ME, 200, answer, NULL);
}

/* The signer and the verifier for API tokens: HS256 pinned, the secret's bytes as given (as jsonwebtoken
 * takes process.env.JWT_SECRET), the default leeway. */
int tokens_setup(const char *secret, int weak_secret_ok) {
  tether_jwt_verify_options o;
  tether_jwt_verify_options_init(&o);
  o.weak_secret_ok = weak_secret_ok;
  int rc = tether_jwt_signer_new_secret_ex(secret, strlen(secret), TETHER_JWT_HS256, NULL,
                                           weak_secret_ok ? TETHER_JWT_WEAK_SECRET_OK : 0, &the_app.signer);
  if (rc == 0) rc = tether_jwt_verifier_new(&o, &the_app.verifier);
  if (rc == 0) rc = tether_jwt_verifier_add_secret(the_app.verifier, secret, strlen(secret), TETHER_JWT_HS256, NULL);
  return rc < 0 ? rc : 0;
}
