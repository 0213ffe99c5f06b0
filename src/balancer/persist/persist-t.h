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

/* The session-loss monitor (session_monitor, persist/monitor.h): what a response did to the application's
 * session cookie, counted per server. Kept is not counted. */
enum {
  TETHER__SESS_KEPT = -1,
  TETHER__SESS_STARTED = 0, /* no cookie came in, one was set */
  TETHER__SESS_REPLACED,    /* a cookie came in, another session id was set: a lost session */
  TETHER__SESS_EXPECTED,    /* the same, on a path of expected= (a login that regenerates) */
  TETHER__SESS_PRESENTED,   /* not an outcome: responses to requests that carried the cookie */
  TETHER__SESS_COUNT
};

/* What the monitor needs from the request, read from its head (nothing is kept per client). */
typedef struct tether__monitor_req {
  int on;        /* the upstream has a session_monitor */
  int presented; /* the request carried the cookie, with a value */
  int expected;  /* the path is one of expected= */
  uint64_t id;   /* a 64-bit hash of the session id it carried */
} tether__monitor_req;

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
