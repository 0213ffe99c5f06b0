/* Persistence: a layer over balancing (as in HAProxy). A policy may name a server for a request; if it
 * names none, or that server is down, disabled or (for new sessions) draining, the balance algorithm picks
 * and the policy records the new binding. tether__persist_pick is the one place that decides and counts
 * each request's outcome: hit, new, or break with a reason. One file per policy in this folder. */
#ifndef TETHER_BALANCER_PERSIST_H
#define TETHER_BALANCER_PERSIST_H

#include <stdint.h>
#include <sys/socket.h>

#include "../http1.h"
#include "../runtime-t.h"
#include "../server.h"
#include "persist-t.h"
#include "tether/hash.h"
#include "tether/jwt.h"

extern const char *const tether__outcome_names[TETHER__OUT_COUNT][2]; /* {outcome, reason} */

/* Per upstream, per configuration generation: what the policy precomputes. */
typedef struct tether__persist_rt {
  tether_ketama *ring;   /* hash ... consistent, sticky app_cookie */
  tether_maglev *maglev; /* hash ... maglev */
  char (*values)[64];    /* sticky cookie: each server's opaque value */
  int total_weight;      /* primaries, for ip_hash and hash */
} tether__persist_rt;

int tether__persist_build(tether__upstream_rt *u);
void tether__persist_free(tether__upstream_rt *u);

/* Reads the request's binding (cookie, key, address). */
void tether__persist_request(const tether__upstream_rt *u, const tether__h1_msg *m, const struct sockaddr *client,
                             const tether_jwt_claims *claims, tether__persist_req *pr);

/* Picks the server for a request's first try and counts the outcome. Returns the index, -1 when no
 * server is usable, -2 when `strict` refuses to move a bound client. */
int tether__persist_pick(const tether__upstream_rt *u, tether__persist_req *pr, tether__balance_state *bs, int worker,
                         int64_t now_ms);

/* A retry after the chosen server failed: counts the move as a break (once per request) and, for hash
 * policies, picks the next server in the policy's own order (-1: let the balance algorithm pick). */
int tether__persist_retry(const tether__upstream_rt *u, tether__persist_req *pr, const uint8_t *tried, int worker,
                          int first_retry, int64_t now_ms);

/* Sticky cookie: the Set-Cookie value for server idx (NULL when the policy sets no cookie or it is not
 * needed), and whether a Cookie header must lose the sticky cookie before it reaches the server. */
/* tls: the client came over TLS, so the cookie is Secure whatever the configuration says. */
char *tether__persist_set_cookie(const tether__upstream_rt *u, const tether__persist_req *pr, int idx, int64_t now_ms,
                                 int tls);
/* Rewrites a Cookie header value without the sticky cookie into out; returns its length (0: drop it). */
size_t tether__persist_strip_cookie(const tether__upstream_rt *u, tether__slice value, char *out, size_t cap);

/* The primary server at weight position w, walking the servers in configuration order as nginx does. */
int tether__persist_by_weight(const tether__cf_upstream *cu, unsigned w);

/* The raw value of the first cookie called name (nginx's $cookie_NAME), and of a query argument
 * ($arg_NAME). 1 when found. */
int tether__raw_cookie(const tether__h1_msg *m, const char *name, tether__slice *out);
int tether__query_arg(tether__slice target, const char *name, tether__slice *out);

/* policies, one file each */
void tether__cookie_request(const tether__upstream_rt *u, const tether__h1_msg *m, tether__persist_req *pr,
                            int64_t now_s);
int tether__cookie_values(tether__upstream_rt *u);
/* Whether an upstream's sticky cookie needs the key file: no sticky_secret, and some server without a
 * cookie= id. */
int tether__cookie_key_needed(const tether__cf_upstream *cu);
/* Reads the key file, or creates it when missing, into every upstream that needs it (persist/cookie_key.c).
 * Called when a configuration is loaded, never when it is only parsed. 0, or -1 with "file:line: reason"
 * naming the directive and the path in err (never the key). */
int tether__cookie_key_load(tether__config *cf, char *err, size_t errlen);
/* The key file's path as opened: sticky_key_file or the default, a relative one beside the configuration. */
void tether__cookie_key_path(const tether__config *cf, char *out, size_t cap);
void tether__iphash_request(const struct sockaddr *client, tether__persist_req *pr);
int tether__iphash_walk(const tether__upstream_rt *u, const tether__persist_req *pr, int *order, int max);
void tether__chash_request(const tether__upstream_rt *u, const tether__h1_msg *m, const struct sockaddr *client,
                           const tether_jwt_claims *claims, tether__persist_req *pr);
int tether__chash_walk(const tether__upstream_rt *u, const tether__persist_req *pr, int *order, int max);

#endif
