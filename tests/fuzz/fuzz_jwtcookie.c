/* libFuzzer harness: the client-side store's cookie (tether__jwt_cookie_decode) and the strict
 * base64url decoder under it. The first byte picks what the rest is:
 *   0: a token as a browser might send it;
 *   1: claims JSON, signed here so the claims parser is reached;
 *   2: a session JSON to encode, then decode: a round trip;
 *   3: base64url text: decoding is strict, so it re-encodes to exactly the input. */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_impl.h"
#include "util.h"

static const char *const secrets[] = {"keyboard cat", "old secret"};
static const char header_b64[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/* The codec of a session manager with the two secrets, built once. */
static tether__jwt_codec *codec(void) {
  static tether__jwt_codec *c;
  if (c == NULL && tether__jwt_codec_new(secrets, 2, &c) != 0) abort();
  return c;
}

static void decode(const char *token) {
  char *sid = NULL, *json = NULL;
  int rc = tether__jwt_cookie_decode(codec(), token, &sid, &json);
  if (rc == 0) {
    if (sid == NULL || json == NULL) abort();
    json_t *j = json_loads(json, 0, NULL);
    if (!json_is_object(j)) abort(); /* "sess" is an object */
    json_decref(j);
  } else if (sid != NULL || json != NULL) {
    abort();
  }
  free(sid);
  free(json);
}

static char *sign_claims(const char *claims, size_t n) {
  size_t hl = sizeof(header_b64) - 1;
  char *tok = malloc(hl + 1 + (n + 2) / 3 * 4 + 1 + 44 + 1);
  memcpy(tok, header_b64, hl);
  tok[hl] = '.';
  size_t len = hl + 1 + tether__base64url_encode((const uint8_t *)claims, n, tok + hl + 1);
  tok[len] = '.';
  uint8_t mac[EVP_MAX_MD_SIZE];
  unsigned int maclen = 0;
  HMAC(EVP_sha256(), secrets[1], (int)strlen(secrets[1]), (const uint8_t *)tok, len, mac, &maclen);
  tether__base64url_encode(mac, maclen, tok + len + 1);
  return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int mode = data[0] & 3;
  const char *rest = (const char *)data + 1;
  size_t n = size - 1;
  char *s = malloc(n + 1);
  memcpy(s, rest, n);
  s[n] = '\0';
  if (mode == 0) {
    decode(s);
  } else if (mode == 1) {
    char *tok = sign_claims(rest, n);
    decode(tok);
    free(tok);
  } else if (mode == 2) {
    int err = 0;
    char *tok =
        tether__jwt_cookie_encode(codec(), "kX3J0bUw2pQ-hq_Zsc9aN1eT7vYbLmRo", s, tether_now_ms() + 3600000, &err);
    json_t *in = json_loads(s, 0, NULL);
    if (tok != NULL) {
      char *sid = NULL, *json = NULL;
      int rc = tether__jwt_cookie_decode(codec(), tok, &sid, &json);
      /* what the store writes it reads back, unless the JSON was not an object */
      if (json_is_object(in) && (rc != 0 || strcmp(sid, "kX3J0bUw2pQ-hq_Zsc9aN1eT7vYbLmRo") != 0)) abort();
      if (rc == 0) {
        json_t *out = json_loads(json, 0, NULL);
        if (!json_equal(in, out)) abort();
        json_decref(out);
      }
      free(sid);
      free(json);
      free(tok);
    } else if (err != TETHER_EINVAL && err != TETHER_E2BIG) {
      abort();
    }
    json_decref(in);
  } else {
    uint8_t *out = malloc(n + 1);
    int m = tether__base64url_decode(rest, n, out, n + 1);
    if (m >= 0) {
      char *again = malloc(n + 4);
      if (tether__base64url_encode(out, (size_t)m, again) != n || memcmp(again, rest, n) != 0) abort();
      free(again);
    } else if (m != TETHER_EINVAL) {
      abort();
    }
    free(out);
  }
  free(s);
  return 0;
}
