/* libtether: HMAC from per-thread precomputed key states. OpenSSL 3's one-shot HMAC() fetches the digest and
 * sets the key on every call (~1.2 us); its EVP_MAC context, keyed once, still duplicates a provider digest
 * context (a malloc and a cleansed free) and goes through three EVP layers on every call. HMAC only needs
 * the digest's state after the key's inner and outer pad blocks: a thread keeps those for each of its last
 * few keys (rotation lists and key sets are short), and a call copies a state, hashes the message and
 * finishes: two compression blocks for a short message, no allocation. The SHA-2 block functions are
 * OpenSSL's (deprecated in 3.0 in favour of EVP, but the only API with a copyable state; they keep the
 * SHA-NI / AVX2 code). */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "mac.h"

#include <openssl/sha.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define MAC_SLOTS 8
#define MAC_BLOCK_MAX 128 /* SHA-512's block */

typedef union sha_state {
  SHA256_CTX s256;
  SHA512_CTX s512; /* SHA-384 too */
} sha_state;

typedef struct mac_slot {
  uint8_t *key; /* a copy, compared to find the slot; NULL: empty */
  size_t keylen;
  tether__mac_md md;
  sha_state inner; /* after (key ^ ipad) */
  sha_state outer; /* after (key ^ opad) */
} mac_slot;

typedef struct mac_cache {
  mac_slot slot[MAC_SLOTS];
  unsigned next;  /* eviction cursor */
  int registered; /* the thread-exit destructor knows this cache */
} mac_cache;

typedef struct mac_digest {
  size_t block, len;
  int (*init)(sha_state *);
  int (*update)(sha_state *, const void *, size_t);
  int (*final)(uint8_t *, sha_state *);
} mac_digest;

static int s256_init(sha_state *c) { return SHA256_Init(&c->s256); }
static int s256_update(sha_state *c, const void *p, size_t n) { return SHA256_Update(&c->s256, p, n); }
static int s256_final(uint8_t *out, sha_state *c) { return SHA256_Final(out, &c->s256); }
static int s384_init(sha_state *c) { return SHA384_Init(&c->s512); }
static int s384_final(uint8_t *out, sha_state *c) { return SHA384_Final(out, &c->s512); }
static int s512_init(sha_state *c) { return SHA512_Init(&c->s512); }
static int s512_update(sha_state *c, const void *p, size_t n) { return SHA512_Update(&c->s512, p, n); }
static int s512_final(uint8_t *out, sha_state *c) { return SHA512_Final(out, &c->s512); }

static const mac_digest digests[] = {
    [TETHER__MAC_SHA256] = {64, 32, s256_init, s256_update, s256_final},
    [TETHER__MAC_SHA384] = {128, 48, s384_init, s512_update, s384_final},
    [TETHER__MAC_SHA512] = {128, 64, s512_init, s512_update, s512_final},
};

static _Thread_local mac_cache macs;
static pthread_key_t mac_key;
static pthread_once_t mac_once = PTHREAD_ONCE_INIT;

static void slot_clear(mac_slot *s) {
  if (s->key) {
    explicit_bzero(s->key, s->keylen);
    free(s->key);
  }
  explicit_bzero(s, sizeof(*s));
}

static void cache_destroy(void *arg) {
  mac_cache *c = arg;
  for (int i = 0; i < MAC_SLOTS; i++) slot_clear(&c->slot[i]);
  c->registered = 0;
}

static void mac_init_once(void) { pthread_key_create(&mac_key, cache_destroy); }

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

/* RFC 2104: a key longer than the block is hashed first; the pads are the key, zero-filled, XOR 0x36 / 0x5c. */
static void slot_key(mac_slot *s, const mac_digest *d, const void *key, size_t keylen) {
  uint8_t k[MAC_BLOCK_MAX] = {0}, pad[MAC_BLOCK_MAX];
  if (keylen > d->block) {
    sha_state c;
    d->init(&c);
    d->update(&c, key, keylen);
    d->final(k, &c);
    explicit_bzero(&c, sizeof(c));
  } else if (keylen > 0) {
    memcpy(k, key, keylen);
  }
  for (size_t i = 0; i < d->block; i++) pad[i] = k[i] ^ 0x36;
  d->init(&s->inner);
  d->update(&s->inner, pad, d->block);
  for (size_t i = 0; i < d->block; i++) pad[i] = k[i] ^ 0x5c;
  d->init(&s->outer);
  d->update(&s->outer, pad, d->block);
  explicit_bzero(k, sizeof(k));
  explicit_bzero(pad, sizeof(pad));
}

static mac_slot *slot_new(tether__mac_md md, const void *key, size_t keylen) {
  pthread_once(&mac_once, mac_init_once);
  if (!macs.registered) {
    pthread_setspecific(mac_key, &macs);
    macs.registered = 1;
  }
  mac_slot *s = &macs.slot[macs.next++ % MAC_SLOTS];
  slot_clear(s);
  s->key = tether__malloc(keylen ? keylen : 1);
  memcpy(s->key, key, keylen);
  s->keylen = keylen;
  s->md = md;
  slot_key(s, &digests[md], key, keylen);
  return s;
}

int tether__hmac(tether__mac_md md, const void *key, size_t keylen, const void *in, size_t n, uint8_t *out) {
  if ((unsigned)md > TETHER__MAC_SHA512) return -1;
  mac_slot *s = slot_find(md, key, keylen);
  if (s == NULL) s = slot_new(md, key, keylen);
  const mac_digest *d = &digests[md];
  sha_state c = s->inner;
  uint8_t ih[TETHER__MAC_MAX];
  d->update(&c, in, n);
  d->final(ih, &c);
  c = s->outer;
  d->update(&c, ih, d->len);
  d->final(out, &c);
  explicit_bzero(ih, sizeof(ih));
  explicit_bzero(&c, sizeof(c));
  return (int)d->len;
}
