/* The HTTP/2 header block as an HTTP/1.1 head (see h2_head.h). */
#include "h2_head.h"

#include <string.h>

/* Bytes onto a buffer; an empty value may come as a NULL slice. */
static void put(tether__buf *b, const void *p, size_t n) {
  if (n) tether__buf_append(b, p, n);
}

void tether__h2_head_init(tether__h2_head *hd) {
  memset(hd, 0, sizeof(*hd));
  hd->content_length = -1;
}

void tether__h2_head_reset(tether__h2_head *hd) {
  tether__h2_head keep = *hd;
  tether__h2_head_init(hd);
  hd->fields = keep.fields, hd->authority = keep.authority, hd->path = keep.path, hd->cookie = keep.cookie;
  hd->fields.len = hd->authority.len = hd->path.len = hd->cookie.len = 0;
}

void tether__h2_head_free(tether__h2_head *hd) {
  tether__buf_free(&hd->fields);
  tether__buf_free(&hd->authority);
  tether__buf_free(&hd->path);
  tether__buf_free(&hd->cookie);
}

/* A field's bytes as RFC 9113 section 8.2.1 wants them: a name of lowercase token characters (after the ':'
 * of a pseudo-header), a value without CR, LF or NUL, and no whitespace at either end. */
static int field_ok(const uint8_t *n, size_t nn, const uint8_t *v, size_t vn) {
  size_t i = nn && n[0] == ':' ? 1 : 0;
  if (nn <= i) return 0;
  for (; i < nn; i++)
    if (!tether__tchar[n[i]] || (n[i] >= 'A' && n[i] <= 'Z')) return 0;
  for (size_t k = 0; k < vn; k++)
    if (v[k] == '\r' || v[k] == '\n' || v[k] == '\0') return 0;
  return vn == 0 || (v[0] != ' ' && v[0] != '\t' && v[vn - 1] != ' ' && v[vn - 1] != '\t');
}

static int name_is(const uint8_t *n, size_t nn, const char *lit) { return nn == strlen(lit) && !memcmp(n, lit, nn); }

static int has_space(const uint8_t *v, size_t vn) { return memchr(v, ' ', vn) || memchr(v, '\t', vn); }

static int pseudo(tether__h2_head *hd, const uint8_t *n, size_t nn, const uint8_t *v, size_t vn) {
  if (hd->regular_seen) return -1; /* after a regular field */
  if (name_is(n, nn, ":method") && !hd->method[0]) {
    if (vn == 0 || vn >= sizeof(hd->method)) return -1;
    for (size_t i = 0; i < vn; i++)
      if (!tether__tchar[v[i]]) return -1;
    memcpy(hd->method, v, vn);
    hd->method[vn] = '\0';
    return 0;
  }
  if (name_is(n, nn, ":path") && !hd->path.len) {
    if (vn == 0 || has_space(v, vn)) return -1;
    put(&hd->path, v, vn);
    return 0;
  }
  if (name_is(n, nn, ":authority") && !hd->authority.len) {
    if (has_space(v, vn)) return -1;
    put(&hd->authority, v, vn);
    return 0;
  }
  if (name_is(n, nn, ":scheme")) return name_is(v, vn, "https") || name_is(v, vn, "http") ? 0 : -1;
  return -1; /* unknown, or twice */
}

static int content_length(tether__h2_head *hd, const uint8_t *v, size_t vn) {
  if (hd->content_length >= 0 || vn == 0 || vn > 18) return -1;
  int64_t cl = 0;
  for (size_t i = 0; i < vn; i++) {
    if (v[i] < '0' || v[i] > '9') return -1;
    cl = cl * 10 + (v[i] - '0');
  }
  hd->content_length = cl;
  return 0;
}

static int regular(tether__h2_head *hd, const uint8_t *n, size_t nn, const uint8_t *v, size_t vn) {
  hd->regular_seen = 1;
  if (name_is(n, nn, "connection") || name_is(n, nn, "keep-alive") || name_is(n, nn, "proxy-connection") ||
      name_is(n, nn, "transfer-encoding") || name_is(n, nn, "upgrade"))
    return -1;
  if (name_is(n, nn, "te")) return name_is(v, vn, "trailers") ? 0 : -1; /* hop-by-hop: not forwarded */
  if (name_is(n, nn, "content-length")) return content_length(hd, v, vn);
  if (name_is(n, nn, "host")) { /* :authority wins (RFC 9113 section 8.3.1) */
    if (has_space(v, vn)) return -1;
    if (!hd->authority.len) put(&hd->authority, v, vn);
    return 0;
  }
  if (name_is(n, nn, "cookie")) {
    if (hd->cookie.len) put(&hd->cookie, "; ", 2);
    put(&hd->cookie, v, vn);
    return 0;
  }
  put(&hd->fields, n, nn);
  put(&hd->fields, ": ", 2);
  put(&hd->fields, v, vn);
  put(&hd->fields, "\r\n", 2);
  return 0;
}

int tether__h2_head_field(tether__h2_head *hd, const uint8_t *n, size_t nn, const uint8_t *v, size_t vn,
                          size_t max_field, size_t max_list) {
  hd->list_size += nn + vn + 32;
  if (nn + vn > max_field || hd->list_size > max_list) return TETHER__H2_FIELD_TOO_LARGE;
  if (!field_ok(n, nn, v, vn)) return TETHER__H2_FIELD_BAD;
  int rc = nn && n[0] == ':' ? pseudo(hd, n, nn, v, vn) : regular(hd, n, nn, v, vn);
  return rc < 0 ? TETHER__H2_FIELD_BAD : 0;
}

static void put_line(tether__buf *b, const char *name, const tether__buf *v) {
  put(b, name, strlen(name));
  put(b, v->data, v->len);
  put(b, "\r\n", 2);
}

int tether__h2_head_build(const tether__h2_head *hd, int end_stream, tether__buf *out, int *chunked) {
  *chunked = 0;
  if (!hd->method[0] || !hd->path.len || strcmp(hd->method, "CONNECT") == 0) return -1;
  int star = hd->path.len == 1 && hd->path.data[0] == '*';
  if (hd->path.data[0] != '/' && !(star && strcmp(hd->method, "OPTIONS") == 0)) return -1;
  tether__buf_reserve(out, 64 + hd->path.len + hd->authority.len + hd->fields.len + hd->cookie.len);
  put(out, hd->method, strlen(hd->method));
  put(out, " ", 1);
  put(out, hd->path.data, hd->path.len);
  put(out, " HTTP/1.1\r\n", 11);
  if (hd->authority.len) put_line(out, "Host: ", &hd->authority);
  put(out, hd->fields.data, hd->fields.len);
  if (hd->cookie.len) put_line(out, "Cookie: ", &hd->cookie);
  if (hd->content_length >= 0) {
    char digits[24];
    size_t n = sizeof(digits);
    uint64_t v = (uint64_t)hd->content_length;
    do digits[--n] = (char)('0' + v % 10);
    while (v /= 10);
    put(out, "Content-Length: ", 16);
    put(out, digits + n, sizeof(digits) - n);
    put(out, "\r\n", 2);
  } else if (!end_stream) {
    put(out, "Transfer-Encoding: chunked\r\n", 28);
    *chunked = 1;
  }
  put(out, "\r\n", 2);
  return 0;
}
