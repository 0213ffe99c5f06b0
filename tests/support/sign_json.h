/* Tests build JWT payloads with jansson; tether_jwt_sign takes the payload as JSON text. */
#ifndef TT_SIGN_JSON_H
#define TT_SIGN_JSON_H

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "tether/jwt.h"

/* tether_jwt_sign of payload written compact (NULL or not an object: TETHER_EINVAL, as the signer says). */
static inline int tt_sign_json(const tether_jwt_signer *s, const json_t *payload, int64_t expires_in_s, char **token) {
  char *text = payload ? json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  int rc = tether_jwt_sign(s, text, text ? strlen(text) : 0, expires_in_s, token);
  free(text);
  return rc;
}

#endif
