/* Persistence's types that the runtime's state holds (see persist.h). */
#ifndef TETHER_BALANCER_PERSIST_T_H
#define TETHER_BALANCER_PERSIST_T_H

typedef enum tether__outcome {
  TETHER__OUT_HIT = 0,        /* went where persistence said */
  TETHER__OUT_NEW,            /* no binding yet */
  TETHER__OUT_BREAK_DOWN,     /* the bound server is down or disabled */
  TETHER__OUT_BREAK_DRAIN,    /* the bound server drains and its drain_timeout has passed */
  TETHER__OUT_BREAK_UNKNOWN,  /* a binding that names no server (forged, stale, expired) */
  TETHER__OUT_BREAK_OVERLOAD, /* bounded load: the bound server is above its cap */
  TETHER__OUT_COUNT
} tether__outcome;

#include <stddef.h>
#include <stdint.h>

/* What the request brought, computed once from its head. */
typedef struct tether__persist_req {
  int bound;         /* the server the policy names (-1: none) */
  int unknown;       /* a binding was presented but names no usable server identity */
  int have_key;      /* hash policies: a key was computed */
  uint32_t key_hash; /* CRC32 of the key (ketama, maglev) */
  uint8_t key[256];  /* the key itself, for nginx's hash rounds (truncated) */
  size_t key_len;
  uint8_t ip[16]; /* ip_hash: the address bytes nginx hashes */
  int ip_len;
  int64_t first_seen; /* sticky cookie with maxlife: when the binding began (s) */
  int64_t last_seen;  /* with maxidle: when it was last refreshed (s) */
  int set_cookie;     /* the response must carry a sticky cookie for the chosen server */
} tether__persist_req;

#endif
