/* libFuzzer harness for tether__uri_normalize (src/balancer/uri.c). The input is a request target. Besides
 * not crashing: a result starts with '/', holds no "//", no "." or ".." segment and no NUL, is never
 * longer than the input, is a fixed point when it holds nothing an escape produced that means something
 * raw ('%', '?', '#', controls, space), and equals a plain second implementation (decode everything,
 * then split into segments and resolve them with a stack). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/balancer/uri.c"

/* The reference: same contract, written the obvious way. */
static int reference(const char *t, size_t n, char *out) {
  if (n == 0 || t[0] != '/') return -400;
  size_t e = 0;
  while (e < n && t[e] != '?' && t[e] != '#') e++;
  char *dec = malloc(e + 1);
  size_t d = 0;
  for (size_t i = 0; i < e; i++) {
    unsigned char c = (unsigned char)t[i];
    if (c <= 0x20 || c == 0x7f) goto bad;
    if (c == '%') {
      if (i + 2 >= e) goto bad; /* '?' and '#' are not hex digits */
      int hi = tether__hexval(t[i + 1]), lo = tether__hexval(t[i + 2]);
      if (hi < 0 || lo < 0) goto bad;
      c = (unsigned char)(hi << 4 | lo);
      if (c == 0) goto bad;
      i += 2;
    }
    dec[d++] = (char)c;
  }
  /* segments between slashes; a path that ends in '/', "." or ".." keeps a trailing slash */
  size_t starts[8192], nseg = 0, w = 0;
  int trailing = 0;
  for (size_t i = 1; i <= d;) {
    size_t j = i;
    while (j < d && dec[j] != '/') j++;
    size_t len = j - i;
    if (len == 0 || (len == 1 && dec[i] == '.')) {
      trailing = 1;
    } else if (len == 2 && dec[i] == '.' && dec[i + 1] == '.') {
      if (nseg == 0) goto bad;
      w = starts[--nseg];
      trailing = 1;
    } else {
      if (nseg == sizeof(starts) / sizeof(starts[0])) goto bad;
      starts[nseg++] = w;
      out[w++] = '/';
      memcpy(out + w, dec + i, len);
      w += len;
      trailing = 0;
    }
    i = j + 1;
  }
  if (trailing || w == 0) out[w++] = '/';
  free(dec);
  return (int)w;
bad:
  free(dec);
  return -400;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 8192) return 0;
  char *in = malloc(size ? size : 1); /* exact size, so ASan sees a read past the end */
  memcpy(in, data, size);
  char *out = malloc(size ? size : 1), *again = malloc(size ? size : 1), *ref = malloc(size + 1);
  int n = tether__uri_normalize(in, size, out, size);
  int r = reference(in, size, ref);
  if (n != r && !(n == -400 && r == -400)) abort();
  if (n >= 0) {
    if ((size_t)n > size || n == 0 || out[0] != '/' || memcmp(out, ref, (size_t)n) != 0) abort();
    int fixed = 1;
    for (int i = 0; i < n; i++) {
      unsigned char c = (unsigned char)out[i];
      if (c == 0) abort();
      if (c == '/' && i + 1 < n && out[i + 1] == '/') abort();
      if (c == '/' && i + 1 < n && out[i + 1] == '.') {
        size_t k = (size_t)i + 2 < (size_t)n && out[i + 2] == '.' ? (size_t)i + 3 : (size_t)i + 2;
        if (k == (size_t)n || out[k] == '/') abort(); /* "/." or "/.." as a segment */
      }
      if (c == '%' || c == '?' || c == '#' || c <= 0x20 || c == 0x7f) fixed = 0;
    }
    if (fixed) {
      int m = tether__uri_normalize(out, (size_t)n, again, (size_t)n);
      if (m != n || memcmp(out, again, (size_t)n) != 0) abort();
    }
  } else if (n != -400) {
    abort(); /* cap == size always fits */
  }
  free(in);
  free(out);
  free(again);
  free(ref);
  return 0;
}
