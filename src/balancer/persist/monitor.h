/* The session-loss monitor (`session_monitor COOKIE [expected=PATH,...]` in an upstream): for each response,
 * the application's session cookie the client sent is compared with the one the server sets.
 *   started   no cookie came in, and one was set;
 *   replaced  a cookie came in, and another session id was set: a lost session (the server no longer
 *             knew it), unless the request's path is one of expected= (then "expected": a login that
 *             regenerates its id);
 *   kept      anything else: no Set-Cookie for it, the same id set again, or the cookie deleted.
 * Nothing is kept per client: everything is decided from the request's head and the response's. */
#ifndef TETHER_BALANCER_PERSIST_MONITOR_H
#define TETHER_BALANCER_PERSIST_MONITOR_H

#include <stdint.h>

#include "../config.h"
#include "../http1.h"
#include "persist-t.h"

/* The session id a cookie value carries, hashed (64-bit FNV-1a). Express's signed value "s:ID.SIG", as
 * sent ("s%3AID.SIG") or decoded, is its ID, so that a signature made with a rotated secret is the same
 * session. A JWT (a compact JWS whose payload is a JSON object with a string "jti", else "sid", claim:
 * libtether's jwt: store) is that claim, decoded without checking the signature, so that a token re-signed
 * on every save (a new iat, exp or session content) is the same session. Any other value (Flask's,
 * flask-session's "ID" or "ID.SIG", a token without either claim or with a payload over
 * TETHER__MONITOR_JWT_MAX bytes) is compared whole. Double quotes around the value (RFC 6265's quoted form)
 * are not part of it. */
#define TETHER__MONITOR_JWT_MAX 3072 /* a token's decoded payload: 3/4 of the 4096 bytes browsers keep */
uint64_t tether__session_id_hash(tether__slice value);

/* Reads the request's side: the cookie the client sent (its first one of that name, as the application
 * reads it) and whether path (the normalized path the location matched, path_len bytes) is one of
 * expected=: "=PATH" exactly, "PATH" as a prefix (as nginx's `location PATH`). mr->on is 0 when the
 * upstream has no monitor. */
void tether__monitor_request(const tether__cf_monitor *mc, const tether__h1_msg *m, const char *path, size_t path_len,
                             tether__monitor_req *mr);

/* Classifies a final response: TETHER__SESS_STARTED, _REPLACED, _EXPECTED or _KEPT. With several Set-Cookie
 * headers for the cookie the last one counts (the browser keeps the last). A deletion (Max-Age <= 0, an
 * Expires before now_ms, or an empty value: a logout) is kept, never replaced: the client's next request
 * comes without the cookie and the session it then gets is "started". */
int tether__monitor_response(const tether__cf_monitor *mc, const tether__monitor_req *mr, const tether__h1_msg *resp,
                             int64_t now_ms);

/* RFC 6265 section 5.1.1's cookie-date (what browsers accept in Expires: "Thu, 01 Jan 1970 00:00:00 GMT",
 * "Thursday, 01-Jan-70 00:00:00 GMT", ...) into milliseconds since the epoch. 0, or -1 when it is not a
 * date. */
int tether__cookie_date(const char *p, size_t n, int64_t *ms);

#endif
