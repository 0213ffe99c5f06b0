/* Tether: sessions with express-session's semantics and wire format.
 *
 * Typical request:
 *   tether_session *s;
 *   if (tether_session_load(sessions, cookie_header, &s) < 0) -> answer 503 (store down)
 *   int64_t visits = 0;
 *   tether_session_get_int(s, "visits", &visits);  // read and modify the application's fields
 *   tether_session_set_int(s, "visits", visits + 1);
 *   char *set_cookie = NULL;
 *   if (tether_session_commit(s, &set_cookie) < 0) -> answer 503
 *   if (set_cookie) -> add "Set-Cookie: <set_cookie>" to the response, then free(set_cookie)
 *   tether_session_free(s);
 * The save, touch and Set-Cookie rules are express-session's (docs/sessions.md). */
#ifndef TETHER_SESSION_H
#define TETHER_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TETHER_SID_BYTES 24 /* 192 bits from the OS CSPRNG */
#define TETHER_SID_LEN 32   /* base64url of 24 bytes, no padding */
#define TETHER_SIG_LEN 43   /* base64 of HMAC-SHA256, '=' stripped */
#define TETHER_MAX_SECRETS 16
#define TETHER_MAX_VALUE_DEFAULT (1024 * 1024) /* stored sessions longer than this are corrupt */
#define TETHER_COOKIE_SECURE_AUTO 2            /* cookie.secure = "auto": Secure iff the request is secure */

typedef enum tether_same_site {
  TETHER_SAME_SITE_UNSET = 0, /* no SameSite attribute */
  TETHER_SAME_SITE_STRICT,
  TETHER_SAME_SITE_LAX,
  TETHER_SAME_SITE_NONE
} tether_same_site;

/* express-session's cookie options. */
typedef struct tether_cookie_options {
  int64_t max_age_ms; /* < 0: no maxAge, a browser-session cookie (express: maxAge null) */
  int64_t expires_ms; /* absolute expiry used when max_age_ms < 0; 0: none */
  int http_only;      /* default 1 */
  int secure;         /* 0 (default), 1: Secure, and no Set-Cookie at all in answer to an insecure request
                       * (express-session); TETHER_COOKIE_SECURE_AUTO: Secure iff the request that created the
                       * session was secure. See tether_session_set_secure. */
  tether_same_site same_site;
  const char *domain; /* NULL: none */
  const char *path;   /* default "/" */
} tether_cookie_options;

typedef struct tether_session_options {
  const char *secret[TETHER_MAX_SECRETS]; /* sign with secret[0], accept any (rotation) */
  size_t secret_count;
  const char *name;       /* cookie name, default "connect.sid" */
  int resave;             /* save even when unmodified (default 0, as the seed configures it) */
  int save_uninitialized; /* save new sessions that were not modified (default 0) */
  int rolling;            /* send Set-Cookie on every response (default 0) */
  tether_cookie_options cookie;
  tether_store *store; /* borrowed; must outlive the tether_sessions */
  /* OWASP's absolute timeout: a session older than this (since it was created, whatever renewals, touches
   * or rolling cookies happened) is over: loading it gives a new session, and the cookie expiry and the
   * store's TTL (jwt:: the token's exp) never go past creation + this. 0 (default): off. The creation time
   * is stored in the session's JSON as "_tetherCreated" (epoch ms), which express-session keeps. */
  int64_t absolute_timeout_ms;
  /* A stored session longer than this (bytes of JSON) is treated as corrupt without being parsed: a new
   * session, counted in tether_metrics.oversized. 0: TETHER_MAX_VALUE_DEFAULT (1 MiB). */
  size_t max_value_bytes;
} tether_session_options;

typedef struct tether_sessions tether_sessions; /* a configured session manager (thread-safe) */
typedef struct tether_session tether_session;   /* one request's session (one thread at a time) */

/* Fills defaults: name connect.sid, no secret, resave/save_uninitialized/rolling off, path "/",
 * http_only on, secure off, max_age none, no absolute lifetime, values up to 1 MiB. */
TETHER_EXTERN void tether_session_options_init(tether_session_options *opts);

/* Copies the options (strings included). TETHER_EINVAL when no secret is given or a value is bad. */
TETHER_EXTERN int tether_sessions_new(const tether_session_options *opts, tether_sessions **out);
TETHER_EXTERN void tether_sessions_free(tether_sessions *sessions);
TETHER_EXTERN tether_store *tether_sessions_store(const tether_sessions *sessions);

/* Loads the session named by the request's Cookie header (may be NULL). A missing, unsigned, badly
 * signed or malformed cookie, or a session the store does not have, gives a new session; 0 then.
 * A store failure returns its error code with *out = NULL. */
TETHER_EXTERN int tether_session_load(tether_sessions *sessions, const char *cookie_header, tether_session **out);

TETHER_EXTERN const char *tether_session_id(const tether_session *s);
TETHER_EXTERN int tether_session_is_new(const tether_session *s); /* no valid session came in */

/* ---- the application's data: the members of a JSON object (without "cookie") ----
 * Keys and strings are UTF-8, NUL-terminated. A change is a modification when the data's JSON differs at
 * commit (express-session's hash rule): setting a member to the value it has saves nothing. The calls that
 * take JSON text accept any JSON value (JSON_DECODE_ANY) and return TETHER_EINVAL for anything else. */

/* The number of members. */
TETHER_EXTERN size_t tether_session_count(const tether_session *s);
/* 1 when the data has a member called key. */
TETHER_EXTERN int tether_session_has(const tether_session *s, const char *key);
/* A string member, borrowed: valid until that member changes or the session is freed. NULL when absent or
 * not a string. */
TETHER_EXTERN const char *tether_session_get_string(const tether_session *s, const char *key);
/* An integer member into *out. TETHER_ENOTFOUND (and *out = 0) when absent or not an integer. */
TETHER_EXTERN int tether_session_get_int(const tether_session *s, const char *key, int64_t *out);
/* A member of any type as compact JSON text (malloc'd), or NULL when absent. */
TETHER_EXTERN char *tether_session_get_json(const tether_session *s, const char *key);
/* Sets (adds or replaces) a member. 0, or TETHER_EINVAL for text that is not UTF-8 or JSON. Values are kept as
 * the text JSON.stringify writes: an integer past 2^53 in magnitude becomes the double JavaScript would hold. */
TETHER_EXTERN int tether_session_set_string(tether_session *s, const char *key, const char *value);
TETHER_EXTERN int tether_session_set_int(tether_session *s, const char *key, int64_t value);
TETHER_EXTERN int tether_session_set_bool(tether_session *s, const char *key, int value);
TETHER_EXTERN int tether_session_set_json(tether_session *s, const char *key, const char *json);
/* Removes a member: 0, or TETHER_ENOTFOUND when there was none. */
TETHER_EXTERN int tether_session_remove(tether_session *s, const char *key);
/* The length of an array member, or TETHER_ENOTFOUND when absent or not an array. */
TETHER_EXTERN int tether_session_array_length(const tether_session *s, const char *key);
/* Appends a string to an array member, which is made an empty array first when it is absent or not an
 * array (a cart). 0, or TETHER_EINVAL for text that is not UTF-8 (nothing changes then). */
TETHER_EXTERN int tether_session_array_append_string(tether_session *s, const char *key, const char *value);
/* Calls cb with each member's name, in order, until it returns nonzero; returns that value, or 0. The
 * data must not change meanwhile. */
typedef int (*tether_session_key_cb)(void *arg, const char *key);
TETHER_EXTERN int tether_session_foreach_key(const tether_session *s, tether_session_key_cb cb, void *arg);
/* The whole data as a compact JSON object (malloc'd), members in order: "{}" when empty. */
TETHER_EXTERN char *tether_session_data_json(const tether_session *s);
/* Sets every member of a JSON object (text), keeping the others (express: Object.assign(req.session, o)).
 * TETHER_EINVAL when the text is not a JSON object (nothing changes then). */
TETHER_EXTERN int tether_session_merge_json(tether_session *s, const char *json);
/* Replaces the whole data with a JSON object (text). TETHER_EINVAL as above. */
TETHER_EXTERN int tether_session_replace_json(tether_session *s, const char *json);

/* Sets this session's cookie lifetime (express: req.session.cookie.maxAge = ms); < 0 for none. */
TETHER_EXTERN void tether_session_set_max_age(tether_session *s, int64_t max_age_ms);
/* The session's expiry (epoch ms) or 0 for a browser-session cookie. */
TETHER_EXTERN int64_t tether_session_expires(const tether_session *s);
/* When the session was created (epoch ms), as far as its absolute lifetime goes; 0 when that is off and
 * the stored session did not say. */
TETHER_EXTERN int64_t tether_session_created(const tether_session *s);

/* Tells the session whether this request is secure (express's req.secure: TLS, or HTTPS at a trusted
 * proxy; see tether_request_is_secure). Call it right after loading. Until called, a request counts as
 * secure (the behaviour before this call existed). With cookie.secure on, commit sends no Set-Cookie in
 * answer to an insecure request; with TETHER_COOKIE_SECURE_AUTO, a session generated in this request gets
 * Secure iff the request is secure. */
TETHER_EXTERN void tether_session_set_secure(tether_session *s, int request_secure);

/* Destroys the stored session and starts a new one with a new id and empty data (login). */
TETHER_EXTERN int tether_session_regenerate(tether_session *s);
/* Destroys the stored session; commit then saves nothing and sends no cookie (logout). */
TETHER_EXTERN int tether_session_destroy(tether_session *s);
/* Saves now, whatever the rules say. */
TETHER_EXTERN int tether_session_save(tether_session *s);

/* Ends the request: saves, touches or does nothing by express-session's rules, and gives the
 * Set-Cookie header value to send (malloc'd) or NULL in *set_cookie. A session loaded from the store is
 * saved with an update-only write: when another request destroyed it meanwhile (a logout), nothing is
 * saved, no cookie is sent, 0 is returned and tether_metrics.revoked counts it (the session now reads as
 * destroyed). New sessions are saved with a create-only write. tether_session_save does the same but
 * returns TETHER_ENOTFOUND for a session destroyed meanwhile. */
TETHER_EXTERN int tether_session_commit(tether_session *s, char **set_cookie);
TETHER_EXTERN void tether_session_free(tether_session *s);

/* ---- the same on an event loop (tether/store_async.h), for servers that never block ----
 * a must be a handle over the sessions' store (tether_astore_wrap(loop, tether_sessions_store(m), &a)).
 * Each call returns 0 and calls back exactly once on the loop's thread (possibly before it returns, when
 * the store has nothing to do), or returns a negative code and never calls back. The session stays
 * owned by the caller; do not free it while a call on it is pending, and make one call on it at a time. */
struct tether_astore;
typedef void (*tether_session_cb)(void *arg, int rc, tether_session *s);
typedef void (*tether_session_commit_cb)(void *arg, int rc, char *set_cookie); /* free(set_cookie) */
typedef void (*tether_session_done_cb)(void *arg, int rc);
TETHER_EXTERN int tether_session_load_async(tether_sessions *sessions, struct tether_astore *a,
                                            const char *cookie_header, tether_session_cb cb, void *arg);
TETHER_EXTERN int tether_session_commit_async(tether_session *s, struct tether_astore *a, tether_session_commit_cb cb,
                                              void *arg);
TETHER_EXTERN int tether_session_regenerate_async(tether_session *s, struct tether_astore *a, tether_session_done_cb cb,
                                                  void *arg);
TETHER_EXTERN int tether_session_destroy_async(tether_session *s, struct tether_astore *a, tether_session_done_cb cb,
                                               void *arg);

/* The JSON express-session stores: {"cookie":{...},<data members>} (malloc'd). */
TETHER_EXTERN char *tether_session_serialize(const tether_session *s);

/* ---- cookie primitives (cookie-signature and jshttp/cookie compatible) ---- */

/* Finds the first cookie called name in a Cookie header and writes its decoded value (percent-decoded as
 * decodeURIComponent does; raw when that fails) into out. Returns the value length, TETHER_ENOTFOUND, or
 * TETHER_E2BIG when it does not fit in cap (with the NUL). */
TETHER_EXTERN int tether_cookie_get(const char *header, const char *name, char *out, size_t cap);

/* value + "." + base64(HMAC-SHA256(secret, value)) without '=', into out. Returns length or E2BIG. */
TETHER_EXTERN int tether_cookie_sign(const char *value, const char *secret, char *out, size_t cap);

/* Verifies "value.sig" against each secret in constant time; on success writes value into out and
 * returns its length; TETHER_EINVAL when no secret verifies it. */
TETHER_EXTERN int tether_cookie_unsign(const char *signed_value, const char *const *secrets, size_t n, char *out,
                                       size_t cap);

/* Writes a fresh session id: 24 bytes from the OS CSPRNG as 32 base64url characters + NUL. */
TETHER_EXTERN int tether_session_id_generate(char out[TETHER_SID_LEN + 1]);

/* ---- is the request secure? (express's req.secure with "trust proxy" set to a list of addresses) ---- */

#define TETHER_MAX_TRUSTED_PROXIES 32

/* Networks whose peers are trusted proxies. Zero-initialize it, then add networks. */
typedef struct tether_trusted_proxies {
  struct {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network address, in network byte order */
    unsigned bits;    /* prefix length */
  } net[TETHER_MAX_TRUSTED_PROXIES];
  size_t count;
} tether_trusted_proxies;

/* Adds "ADDR/BITS" or a single "ADDR" (IPv4 or IPv6). TETHER_EINVAL for anything else or when full. */
TETHER_EXTERN int tether_trusted_proxies_add(tether_trusted_proxies *t, const char *cidr);
/* True when ip (text; IPv4-mapped IPv6 counts as IPv4) is in one of the networks. */
TETHER_EXTERN int tether_trusted_proxies_contains(const tether_trusted_proxies *t, const char *ip);
/* express's req.secure: the connection is TLS, or the immediate peer (peer_ip) is a trusted proxy and
 * the first value of X-Forwarded-Proto (x_forwarded_proto, may be NULL) is "https". t may be NULL (trust
 * no proxy). */
TETHER_EXTERN int tether_request_is_secure(int tls, const char *peer_ip, const char *x_forwarded_proto,
                                           const tether_trusted_proxies *t);

#ifdef __cplusplus
}
#endif
#endif
