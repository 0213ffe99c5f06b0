/* libtether: HMAC on per-thread keyed contexts. OpenSSL 3's one-shot HMAC() fetches the digest and sets the
 * key on every call (~1.2 us); a context keyed once only re-initialises (~0.2 us). A thread keeps a few
 * (rotation lists and key sets are short); the oldest is replaced past that. */
#include "mac.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define MAC_SLOTS 8

typedef struct mac_slot {
  uint8_t *key; /* a copy, compared to find the slot; NULL: empty */
  size_t keylen;
  tether__mac_md md;
  EVP_MAC_CTX *ctx;
} mac_slot;

typedef struct mac_cache {
  mac_slot slot[MAC_SLOTS];
  unsigned next;  /* eviction cursor */
  int registered; /* the thread-exit destructor knows this cache */
} mac_cache;

static const char *const md_names[] = {"SHA256", "SHA384", "SHA512"};

static _Thread_local mac_cache macs;
static pthread_key_t mac_key;
static pthread_once_t mac_once = PTHREAD_ONCE_INIT;
static EVP_MAC *hmac_alg;

static void slot_clear(mac_slot *s) {
  if (s->key) {
    explicit_bzero(s->key, s->keylen);
    free(s->key);
  }
  EVP_MAC_CTX_free(s->ctx);
  memset(s, 0, sizeof(*s));
}

static void cache_destroy(void *arg) {
  mac_cache *c = arg;
  for (int i = 0; i < MAC_SLOTS; i++) slot_clear(&c->slot[i]);
  c->registered = 0;
}

static void mac_init_once(void) {
  hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
  pthread_key_create(&mac_key, cache_destroy);
}

void tether__mac_thread_cleanup(void) {
  if (!macs.registered) return;
  pthread_setspecific(mac_key, NULL);
  cache_destroy(&macs);
}

static mac_slot *slot_find(tether__mac_md md, const void *key, size_t keylen) {
  for (int i = 0; i < MAC_SLOTS; i++) {
    mac_slot *s = &macs.slot[i];
    if (s->key && s->md == md && s->keylen == keylen && memcmp(s->key, key, keylen) == 0) return s;
  }
  return NULL;
}

static mac_slot *slot_new(tether__mac_md md, const void *key, size_t keylen) {
  pthread_once(&mac_once, mac_init_once);
  if (hmac_alg == NULL) return NULL;
  if (!macs.registered) {
    pthread_setspecific(mac_key, &macs);
    macs.registered = 1;
  }
  EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(hmac_alg);
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)md_names[md], 0),
                         OSSL_PARAM_construct_end()};
  if (ctx == NULL || EVP_MAC_init(ctx, key, keylen, params) != 1) {
    ERR_clear_error();
    EVP_MAC_CTX_free(ctx);
    return NULL;
  }
  mac_slot *s = &macs.slot[macs.next++ % MAC_SLOTS];
  slot_clear(s);
  s->key = tether__malloc(keylen ? keylen : 1);
  memcpy(s->key, key, keylen);
  s->keylen = keylen;
  s->md = md;
  s->ctx = ctx;
  return s;
}

int tether__hmac(tether__mac_md md, const void *key, size_t keylen, const void *in, size_t n, uint8_t *out) {
  mac_slot *s = slot_find(md, key, keylen);
  if (s == NULL) s = slot_new(md, key, keylen);
  size_t len = 0;
  if (s != NULL) {
    if (EVP_MAC_init(s->ctx, NULL, 0, NULL) == 1 && EVP_MAC_update(s->ctx, in, n) == 1 &&
        EVP_MAC_final(s->ctx, out, &len, TETHER__MAC_MAX) == 1)
      return (int)len;
    ERR_clear_error();
    slot_clear(s);
  }
  /* no context could be made or used: the one-shot call */
  unsigned int olen = 0;
  const EVP_MD *evp = md == TETHER__MAC_SHA256 ? EVP_sha256() : md == TETHER__MAC_SHA384 ? EVP_sha384() : EVP_sha512();
  if (HMAC(evp, key, (int)keylen, in, n, out, &olen) == NULL) {
    ERR_clear_error();
    return -1;
  }
  return (int)olen;
}
