/* Request paths as locations see them: percent-decoded, slashes merged, dot segments resolved, the way
 * nginx computes $uri (ngx_http_parse_complex_uri with merge_slashes on), so that a configuration
 * written for nginx matches the same requests here. */
#ifndef TETHER_BALANCER_URI_H
#define TETHER_BALANCER_URI_H

#include <stddef.h>

/* Normalizes the path of an origin-form target[0..n) (path ["?" query], e.g. tether__h1_msg's path)
 * into out[0..cap). Returns the length of the normalized path (not NUL-terminated), or the negated HTTP
 * status to answer:
 *   -400  the target does not start with '/'; a raw byte <= 0x20 or 0x7f; an invalid escape ("%zz",
 *         "%4"); "%00"; a ".." that climbs above "/" ("/../x", "/%2e%2e/x", "/a/../..").
 *   -414  the result does not fit in cap (cap >= n always suffices: the result is never longer).
 * What it does, in order of the bytes: the path ends at the first raw '?' or '#' (the query is neither
 * decoded nor checked, the fragment is dropped); "%XX" is decoded, and a decoded '/' or '.' counts as a
 * raw one ("%2F" separates segments, "%2e%2e" is a ".." segment) while any other decoded byte,
 * '%', '?' and '#' included, is plain data; runs of '/' become one; "." segments are removed and ".."
 * segments remove the one before them, a trailing one leaving the slash ("/a/b/.." is "/a/", "/a/." is
 * "/a/"). The result starts with '/', holds no "//", no "." or ".." segment and no NUL, but may hold
 * any other byte (controls and UTF-8 from escapes): it is for matching locations (case-sensitive
 * prefixes, as nginx), not for forwarding, which keeps the original target. It is not always a fixed
 * point: "/%2541" gives "/%41", which gives "/A" (nginx does the same; nothing decodes twice here). */
int tether__uri_normalize(const char *target, size_t n, char *out, size_t cap);

#endif
