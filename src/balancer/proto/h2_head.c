/* The HTTP/2 header block as a parsed HTTP/1.1 request head (see h2_head.h). */
#include "h2_head.h"

#include <stddef.h>
#include <string.h>

/* Bytes onto a buffer; an empty value may come as a NULL slice. */
static void put(tether__buf *b, const void *p, size_t n) {
  if (n) tether__buf_append(b, p, n);
}

void tether__h2_head_init(tether__h2_head *hd) {
  memset(hd, 0, sizeof(*hd));
  hd->content_length = -1;
}

void tether__h2_head_reset(tether__h2_head *hd) { /* not the fields' offsets: nfields says how many hold some */
  hd->bytes.len = hd->authority.len = hd->path.len = hd->cookie.len = 0;
  hd->nfields = hd->fields_text = hd->list_size = 0;
  hd->method[0] = hd->length[0] = '\0';
  hd->content_length = -1;
  hd->regular_seen = hd->ctl = 0;
}

void tether__h2_head_free(tether__h2_head *hd) {
  tether__buf_free(&hd->bytes);
  tether__buf_free(&hd->authority);
  tether__buf_free(&hd->path);
  tether__buf_free(&hd->cookie);
}

/* A field's bytes as RFC 9113 section 8.2.1 wants them: a name of lowercase token characters (after the ':'
 * of a pseudo-header), a value without CR, LF or NUL, and no whitespace at either end. *ctl: the value holds
 * another control character. */
static int field_ok(const uint8_t *n, size_t nn, const uint8_t *v, size_t vn, int *ctl) {
  size_t i = nn && n[0] == ':' ? 1 : 0;
  if (nn <= i) return 0;
  for (; i < nn; i++)
    if (!tether__tchar[n[i]] || (n[i] >= 'A' && n[i] <= 'Z')) return 0;
  int other = 0;
  for (size_t k = tether__h1_plain_words(v, vn); k < vn; k++) {
    if (v[k] >= 0x20 && v[k] != 0x7f) continue;
    if (v[k] == '\r' || v[k] == '\n' || v[k] == '\0') return 0;
    other |= v[k] != '\t';
  }
  *ctl = other;
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
  if (hd->nfields < TETHER__ARRAY_SIZE(hd->fields)) { /* past them the head is refused (431): no need to keep them */
    tether__h2_field *f = &hd->fields[hd->nfields];
    f->name = (uint32_t)hd->bytes.len, f->nlen = (uint32_t)nn;
    put(&hd->bytes, n, nn);
    f->value = (uint32_t)hd->bytes.len, f->vlen = (uint32_t)vn;
    put(&hd->bytes, v, vn);
  }
  hd->nfields++;
  hd->fields_text += nn + vn + 4;
  return 0;
}

int tether__h2_head_field(tether__h2_head *hd, const uint8_t *n, size_t nn, const uint8_t *v, size_t vn,
                          size_t max_field, size_t max_list) {
  hd->list_size += nn + vn + 32;
  if (nn + vn > max_field || hd->list_size > max_list) return TETHER__H2_FIELD_TOO_LARGE;
  int ctl = 0;
  if (!field_ok(n, nn, v, vn, &ctl)) return TETHER__H2_FIELD_BAD;
  hd->ctl |= ctl; /* the HTTP/1.1 parser refuses such a value (400): header_lines looks for it then */
  int rc = nn && n[0] == ':' ? pseudo(hd, n, nn, v, vn) : regular(hd, n, nn, v, vn);
  return rc < 0 ? TETHER__H2_FIELD_BAD : 0;
}

/* ---- the head ---- */

/* The length of the HTTP/1.1 head the block stands for (see h2_head.h): the HTTP/1.1 parser's limits count it. */
static size_t head_length(const tether__h2_head *hd, size_t length_digits, int chunked) {
  size_t n = strlen(hd->method) + 1 + hd->path.len + 11 + hd->fields_text + 2;
  if (hd->authority.len) n += 6 + hd->authority.len + 2;
  if (hd->cookie.len) n += 8 + hd->cookie.len + 2;
  if (hd->content_length >= 0) n += 16 + length_digits + 2;
  if (chunked) n += 28;
  return n;
}

/* The request line as the parser reads it: 0, TETHER__H2_FIELD_BAD (reset), or a negated status. */
static int request_line(const tether__h2_head *hd, const tether__h1_limits *lim, tether__h1_msg *m) {
  if (!hd->method[0] || !hd->path.len || strcmp(hd->method, "CONNECT") == 0) return TETHER__H2_FIELD_BAD;
  int star = hd->path.len == 1 && hd->path.data[0] == '*';
  if (hd->path.data[0] != '/' && !(star && strcmp(hd->method, "OPTIONS") == 0)) return TETHER__H2_FIELD_BAD;
  m->method = (tether__slice){hd->method, strlen(hd->method)};
  m->target = m->path = (tether__slice){hd->path.data, hd->path.len};
  for (size_t i = 0; i < hd->path.len; i++) {
    unsigned char ch = (unsigned char)hd->path.data[i];
    if (ch <= ' ' || ch == 0x7f) return i > lim->max_uri ? -414 : -400;
  }
  if (hd->path.len > lim->max_uri) return -414;
  if (tether__h1_token_eq(m->method, "CONNECT")) return -400; /* any case: the parser's word */
  m->version_minor = 1;
  m->is_head = tether__h1_token_eq(m->method, "HEAD");
  return 0;
}

/* One header line as the parser takes it: no control character but HTAB in the value (looked for when the
 * block has one somewhere: scan), at most the limit's count. 0, or a negated status. */
static int add_header(tether__h1_msg *m, size_t max, int scan, const char *n, size_t nn, const char *v, size_t vn) {
  for (size_t i = 0; scan && i < vn; i++) {
    unsigned char ch = (unsigned char)v[i];
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return -400;
  }
  if (m->nheaders == max) return -431;
  m->headers[m->nheaders++] = (tether__h1_header){{n, nn}, {v, vn}};
  return 0;
}

/* The header lines, in the order of the head: Host, the fields, Cookie, then the framing. */
static int header_lines(const tether__h2_head *hd, size_t max, int chunked, tether__h1_msg *m) {
  int rc = 0;
  if (hd->authority.len) rc = add_header(m, max, hd->ctl, "Host", 4, hd->authority.data, hd->authority.len);
  for (size_t i = 0; i < hd->nfields && rc == 0; i++) {
    if (i == TETHER__ARRAY_SIZE(hd->fields)) return -431; /* the limit came first */
    const tether__h2_field *f = &hd->fields[i];
    rc = add_header(m, max, hd->ctl, hd->bytes.data + f->name, f->nlen, hd->bytes.data + f->value, f->vlen);
  }
  if (rc == 0 && hd->cookie.len) { /* an empty cookie field last leaves "; " at the end, which a parser trims */
    size_t n = hd->cookie.len;
    while (hd->cookie.data[n - 1] == ' ') n--;
    rc = add_header(m, max, hd->ctl, "Cookie", 6, hd->cookie.data, n);
  }
  if (rc == 0 && hd->content_length >= 0)
    rc = add_header(m, max, hd->ctl, "Content-Length", 14, hd->length, strlen(hd->length));
  if (rc == 0 && chunked) rc = add_header(m, max, hd->ctl, "Transfer-Encoding", 17, "chunked", 7);
  return rc;
}

/* What the parser reads in the header lines: the Host (required, a host's characters), Expect. */
static int header_meaning(tether__h1_msg *m) {
  for (size_t i = 0; i < m->nheaders; i++) {
    tether__slice n = m->headers[i].name, v = m->headers[i].value;
    if (n.p[0] == 'H' && tether__h1_token_eq(n, "host")) {
      for (size_t k = 0; k < v.n; k++)
        if ((unsigned char)v.p[k] <= ' ' || v.p[k] == '/' || v.p[k] == '\\' || v.p[k] == '@') return -400;
      m->host = m->authority = v;
    } else if (tether__h1_token_eq(n, "expect") && tether__h1_token_eq(v, "100-continue")) {
      m->expect_continue = 1;
    }
  }
  return m->host.p ? 0 : -400;
}

int tether__h2_head_msg(tether__h2_head *hd, int end_stream, const tether__h1_limits *lim, tether__h1_msg *m,
                        int *chunked) {
  *chunked = hd->content_length < 0 && !end_stream;
  size_t digits = 0;
  if (hd->content_length >= 0) {
    char d[24];
    size_t k = sizeof(d);
    uint64_t v = (uint64_t)hd->content_length;
    do d[--k] = (char)('0' + v % 10);
    while (v /= 10);
    digits = sizeof(d) - k;
    memcpy(hd->length, d + k, digits);
    hd->length[digits] = '\0';
  }
  tether__h1_msg_clear(m);
  int rc = request_line(hd, lim, m);
  if (rc == TETHER__H2_FIELD_BAD) return rc;
  m->head_len = head_length(hd, digits, *chunked);
  if (m->head_len > lim->max_head) return -431;
  if (rc < 0) return rc;
  size_t max = lim->max_headers < TETHER__H1_MAX_HEADERS ? lim->max_headers : TETHER__H1_MAX_HEADERS;
  if ((rc = header_lines(hd, max, *chunked, m)) < 0 || (rc = header_meaning(m)) < 0) return rc;
  if (*chunked)
    m->framing = TETHER__H1_CHUNKED;
  else if (hd->content_length > 0)
    m->framing = TETHER__H1_LENGTH;
  if (hd->content_length >= 0) m->content_length = (uint64_t)hd->content_length;
  m->keep_alive = 1; /* HTTP/1.1 without Connection */
  return 0;
}
