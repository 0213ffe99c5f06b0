/* libtether internals: HMAC from per-thread precomputed key states, for every MAC libtether computes (signed
 * cookies, HS256/384/512 JWTs, the jwt: session store). */
#ifndef TETHER_MAC_H
#define TETHER_MAC_H

#include <stddef.h>
#include <stdint.h>

typedef enum tether__mac_md { TETHER__MAC_SHA256 = 0, TETHER__MAC_SHA384, TETHER__MAC_SHA512 } tether__mac_md;

#define TETHER__MAC_MAX 64 /* bytes of the longest MAC (SHA-512) */

/* HMAC-md of in[0..n) under key into out (TETHER__MAC_MAX bytes): its length (-1: md unknown).
 * The calling thread keeps the key states of the last few (md, key) pairs it used. */
int tether__hmac(tether__mac_md md, const void *key, size_t keylen, const void *in, size_t n, uint8_t *out);

/* Frees the calling thread's key states (also done when the thread exits). */
void tether__mac_thread_cleanup(void);

#endif
