/* Path normalization as nginx 1.22 does it for $uri (see uri.h for the contract). */
#include "uri.h"

#include <limits.h>

#include "../lib/util.h"

/* The segment out[seg..w) just ended (at a '/' or at the end of the path). Removes it when it is "."
 * and it and the one before when it is ".."; the slash before it stays. Returns the new w or -1 when
 * ".." would climb above the root. */
static long end_segment(const char *out, size_t seg, size_t w) {
  size_t len = w - seg;
  if (len == 1 && out[seg] == '.') return (long)seg;
  if (len != 2 || out[seg] != '.' || out[seg + 1] != '.') return (long)w;
  if (seg == 1) return -1; /* "/.." */
  size_t p = seg - 1;      /* the '/' before "..", then back to the one before the previous segment */
  while (out[p - 1] != '/') p--;
  return (long)p;
}

int tether__uri_normalize(const char *target, size_t n, char *out, size_t cap) {
  const unsigned char *t = (const unsigned char *)target;
  if (n == 0 || t[0] != '/') return -400;
  if (n > INT_MAX) return -414;
  size_t w = 0, seg = 0; /* seg: where the current segment starts in out */
  for (size_t i = 0; i < n && t[i] != '?' && t[i] != '#'; i++) {
    unsigned char c = t[i];
    if (c <= 0x20 || c == 0x7f) return -400;
    if (c == '%') {
      int hi = i + 2 < n ? tether__hexval(t[i + 1]) : -1, lo = hi >= 0 ? tether__hexval(t[i + 2]) : -1;
      if (lo < 0) return -400;
      c = (unsigned char)(hi << 4 | lo);
      if (c == 0) return -400;
      i += 2;
    }
    if (c == '/') {
      if (w > 0) {
        long r = end_segment(out, seg, w);
        if (r < 0) return -400;
        w = (size_t)r;
        if (out[w - 1] == '/') { /* merged with the slash that is already there */
          seg = w;
          continue;
        }
      }
    }
    if (w == cap) return -414;
    out[w++] = (char)c;
    if (c == '/') seg = w;
  }
  long r = end_segment(out, seg, w);
  if (r < 0) return -400;
  return (int)r;
}
