/* The balancer's strict HTTP/1.1 parser (RFC 9110/9112), in place over the caller's buffer. */
#include "http1.h"

#include <string.h>

#include "../lib/util.h"

tether__slice tether__h1_header_get(const tether__h1_msg *m, const char *name) {
  for (size_t i = 0; i < m->nheaders; i++)
    if (tether__h1_token_eq(m->headers[i].name, name)) return m->headers[i].value;
  return (tether__slice){NULL, 0};
}

/* Offset just past the blank line that ends the head, or 0 when it has not arrived. Lines end in CRLF
 * or, leniently as RFC 9112 section 2.2 allows, in LF alone. */
static size_t head_end(const char *buf, size_t len) {
  const char *p = buf, *end = buf + len;
  while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
    p++;
    if (p < end && *p == '\n') return (size_t)(p + 1 - buf);
    if (p + 1 < end && p[0] == '\r' && p[1] == '\n') return (size_t)(p + 2 - buf);
  }
  return 0;
}

/* Reads one line [*pos, eol) ending in CRLF or LF; -1 when there is none. A CR elsewhere stays in the line. */
static int next_line_any(const char *buf, size_t len, size_t *pos, tether__slice *line) {
  const char *s = buf + *pos;
  const char *nl = memchr(s, '\n', len - *pos);
  if (nl == NULL) return -1;
  size_t n = (size_t)(nl - s);
  if (n > 0 && s[n - 1] == '\r') n--;
  line->p = s;
  line->n = n;
  *pos = (size_t)(nl - buf) + 1;
  return 0;
}

/* The same, and a CR anywhere else is an error (-1). */
static int next_line(const char *buf, size_t len, size_t *pos, tether__slice *line) {
  if (next_line_any(buf, len, pos, line) < 0) return -1;
  return memchr(line->p, '\r', line->n) != NULL ? -1 : 0; /* bare CR */
}

static int parse_version(const char *p, size_t n, int *minor) {
  if (n != 8 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1')) return -1;
  *minor = p[7] - '0';
  return 0;
}

static int parse_uint(tether__slice v, uint64_t *out) {
  uint64_t n = 0;
  if (v.n == 0 || v.n > 18) return -1; /* 18 digits: no overflow, far past any real body */
  for (size_t i = 0; i < v.n; i++) {
    if (v.p[i] < '0' || v.p[i] > '9') return -1;
    n = n * 10 + (uint64_t)(v.p[i] - '0');
  }
  *out = n;
  return 0;
}

/* Calls fn for each comma-separated element of a header value (trimmed, empty ones skipped). */
typedef int (*element_fn)(tether__slice el, void *arg);
static int each_element(tether__slice v, element_fn fn, void *arg) {
  size_t pos = 0;
  tether__slice el;
  while (tether__h1_next_element(v, &pos, &el)) {
    int rc = fn(el, arg);
    if (rc) return rc;
  }
  return 0;
}

typedef struct conn_tokens {
  int close, keep_alive, upgrade;
} conn_tokens;

static int conn_token(tether__slice el, void *arg) {
  conn_tokens *t = arg;
  if (tether__h1_token_eq(el, "close"))
    t->close = 1;
  else if (tether__h1_token_eq(el, "keep-alive"))
    t->keep_alive = 1;
  else if (tether__h1_token_eq(el, "upgrade"))
    t->upgrade = 1;
  return 0;
}

typedef struct te_state {
  int count;          /* codings seen, over every Transfer-Encoding line */
  int chunked;        /* times "chunked" was seen */
  int chunked_params; /* "chunked" carried parameters (it has none) */
  int unknown;        /* a coding we do not know */
  int last_chunked;   /* the final coding is chunked */
} te_state;

static int is_ows(char c) { return c == ' ' || c == '\t'; }

static size_t skip_ows(tether__slice v, size_t i) {
  while (i < v.n && is_ows(v.p[i])) i++;
  return i;
}

static size_t skip_token(tether__slice v, size_t i) {
  while (i < v.n && tether__tchar[(unsigned char)v.p[i]]) i++;
  return i;
}

/* quoted-string of RFC 9110 section 5.6.4 starting at the DQUOTE at i; the offset past it, or 0. */
static size_t skip_quoted(tether__slice v, size_t i) {
  for (i++; i < v.n; i++) {
    unsigned char c = (unsigned char)v.p[i];
    if (c == '"') return i + 1;
    if (c == '\\') {
      if (++i == v.n) return 0;
      c = (unsigned char)v.p[i];
      if ((c < 0x20 && c != '\t') || c == 0x7f) return 0;
    } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
      return 0;
    }
  }
  return 0;
}

static void te_coding(te_state *t, tether__slice name, int has_params) {
  int is_chunked = tether__h1_token_eq(name, "chunked");
  t->count++;
  if (is_chunked) {
    t->chunked++;
    t->chunked_params |= has_params;
  } else if (!tether__h1_token_eq(name, "gzip") && !tether__h1_token_eq(name, "x-gzip") &&
             !tether__h1_token_eq(name, "deflate") && !tether__h1_token_eq(name, "compress") &&
             !tether__h1_token_eq(name, "x-compress")) {
    t->unknown = 1;
  }
  t->last_chunked = is_chunked;
}

/* One Transfer-Encoding field value, added to the list in t (RFC 9112 section 6.1, RFC 9110 section
 * 10.1.4):
 *   Transfer-Encoding  = #transfer-coding
 *   transfer-coding    = token *( OWS ";" OWS transfer-parameter )
 *   transfer-parameter = token BWS "=" BWS ( token / quoted-string )
 * Returns -1 when the value is not such a list. Stricter than the #rule: an empty element ("chunked,",
 * ", chunked", "a,,b") is refused too, since the header is forwarded as is and a backend may read it
 * differently (nginx answers 501 to all of them, HAProxy 2.6 skips empty elements). */
static int te_list(tether__slice v, te_state *t) {
  size_t i = skip_ows(v, 0);
  for (;;) {
    size_t a = i;
    i = skip_token(v, i);
    if (i == a) return -1;
    tether__slice name = {v.p + a, i - a};
    int params = 0;
    for (;;) {
      size_t j = skip_ows(v, i);
      if (j == v.n || v.p[j] != ';') {
        i = j;
        break;
      }
      j = skip_ows(v, j + 1);
      size_t k = skip_token(v, j);
      if (k == j) return -1; /* "chunked;" */
      k = skip_ows(v, k);
      if (k == v.n || v.p[k] != '=') return -1; /* "chunked;foo" */
      k = skip_ows(v, k + 1);
      if (k < v.n && v.p[k] == '"') {
        if ((k = skip_quoted(v, k)) == 0) return -1;
      } else {
        size_t e = skip_token(v, k);
        if (e == k) return -1;
        k = e;
      }
      i = k;
      params = 1;
    }
    te_coding(t, name, params);
    if (i == v.n) return 0;
    if (v.p[i] != ',') return -1; /* "chunked x", "chunked chunked" */
    i = skip_ows(v, i + 1);
  }
}

/* Whether bytes hold a control character other than HTAB (DEL included). */
static int has_ctl(const char *p, size_t n) {
  for (size_t i = tether__h1_plain_words(p, n); i < n; i++) {
    unsigned char ch = (unsigned char)p[i];
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return 1;
  }
  return 0;
}

/* Header lines from pos to the blank line: names are tokens followed at once by ':', values hold no
 * control characters but HTAB, and no line starts with whitespace (obs-fold). A bare CR is refused as
 * next_line would, without a scan of its own: in a name it is not a token character, in the value a control
 * character, in the whitespace around the value it is neither (the line is then not name ':' value). */
static int parse_headers(const char *buf, size_t len, size_t pos, const tether__h1_limits *lim, tether__h1_msg *m) {
  size_t max = lim->max_headers < TETHER__H1_MAX_HEADERS ? lim->max_headers : TETHER__H1_MAX_HEADERS;
  for (;;) {
    tether__slice line;
    if (next_line_any(buf, len, &pos, &line) < 0) return -400;
    if (line.n == 0) return 0;
    if (line.p[0] == ' ' || line.p[0] == '\t') return -400; /* obs-fold */
    size_t c = 0;
    while (c < line.n && tether__tchar[(unsigned char)line.p[c]]) c++;
    if (c == 0 || c == line.n || line.p[c] != ':') return -400;
    size_t a = c + 1, b = line.n;
    while (a < b && (line.p[a] == ' ' || line.p[a] == '\t')) a++;
    while (b > a && (line.p[b - 1] == ' ' || line.p[b - 1] == '\t')) b--;
    if (has_ctl(line.p + a, b - a)) return -400;
    if (m->nheaders == max) return -431;
    m->headers[m->nheaders].name = (tether__slice){line.p, c};
    m->headers[m->nheaders].value = (tether__slice){line.p + a, b - a};
    m->nheaders++;
  }
}

/* What the framing headers say, shared by requests and responses. Returns 0 or a negative status. */
static int read_framing(tether__h1_msg *m, int is_request, conn_tokens *ct, te_state *te, int *has_cl, int *has_host) {
  int bad = is_request ? -400 : -502;
  for (size_t i = 0; i < m->nheaders; i++) {
    tether__slice n = m->headers[i].name, v = m->headers[i].value;
    if (tether__h1_token_eq(n, "content-length")) {
      uint64_t cl;
      if (parse_uint(v, &cl) < 0) return bad;
      if (*has_cl && cl != m->content_length) return bad;
      m->content_length = cl;
      *has_cl = 1;
    } else if (tether__h1_token_eq(n, "transfer-encoding")) {
      if (te_list(v, te) < 0) return bad;
    } else if (tether__h1_token_eq(n, "connection")) {
      each_element(v, conn_token, ct);
    } else if (is_request && tether__h1_token_eq(n, "host")) {
      if (*has_host) return -400;
      *has_host = 1;
      for (size_t k = 0; k < v.n; k++)
        if ((unsigned char)v.p[k] <= ' ' || v.p[k] == '/' || v.p[k] == '\\' || v.p[k] == '@') return -400;
      m->host = v;
    } else if (is_request && tether__h1_token_eq(n, "expect")) {
      if (tether__h1_token_eq(v, "100-continue")) m->expect_continue = 1;
    }
  }
  if (te->count && *has_cl) return bad; /* the classic smuggling pair */
  if (te->count && m->version_minor == 0) return bad;
  if (te->chunked > 1 || te->chunked_params) return bad;
  return 0;
}

static void set_keep_alive(tether__h1_msg *m, const conn_tokens *ct) {
  m->keep_alive = m->version_minor == 1 ? !ct->close : (ct->keep_alive && !ct->close);
}

/* What a request's Transfer-Encoding list (syntax already checked) means: 0 for a chunked body, or the
 * status to answer. RFC 9112 section 6.3: a request whose final coding is not chunked has no reliable
 * length (400). chunked twice or with parameters was refused by read_framing (400). Codings before a
 * final chunked (gzip, chunked) are valid HTTP but the balancer forwards bodies as they are to backends
 * that may not decode them: 501, as nginx 1.22 answers every value other than "chunked" (HAProxy 2.6
 * forwards "gzip, chunked"). Without any chunked, an unknown coding is 501 (section 6.1 "SHOULD
 * respond with 501"), a known one 400. */
static int te_request(const te_state *t) {
  if (t->chunked == 0) return t->unknown ? -501 : -400;
  if (!t->last_chunked) return -400;
  if (t->count > 1) return -501;
  return 0;
}

/* RFC 3986 reg-name characters but pct-encoded: unreserved / sub-delims. */
static int reg_name_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~' || c == '!' || c == '$' || c == '&' || c == '\'' || c == '(' || c == ')' || c == '*' ||
         c == '+' || c == ',' || c == ';' || c == '=';
}

/* authority = host [ ":" port ] without userinfo; host = IP-literal / IPv4address / reg-name, never
 * empty; port = 1*5DIGIT up to 65535. Percent-encoded hosts are refused (RFC 3986 allows them in a
 * reg-name; no DNS name needs them and they would route differently than they resolve). */
static int valid_authority(tether__slice a) {
  size_t i = 0;
  if (a.n > 0 && a.p[0] == '[') {
    /* IP-literal: IPv6address or IPvFuture, loosely: hex digits, ':' and '.', or "v" and unreserved /
     * sub-delims / ":" */
    i = 1;
    while (i < a.n && a.p[i] != ']') {
      unsigned char c = (unsigned char)a.p[i];
      if (!reg_name_char(c) && c != ':') return -1;
      i++;
    }
    if (i == a.n || i == 1) return -1;
    i++;
  } else {
    while (i < a.n && reg_name_char((unsigned char)a.p[i])) i++;
    if (i == 0) return -1;
  }
  if (i == a.n) return 0;
  if (a.p[i] != ':') return -1; /* '@' (userinfo), '%', anything else */
  size_t d = ++i;
  unsigned port = 0;
  for (; i < a.n; i++) {
    if (a.p[i] < '0' || a.p[i] > '9' || i - d >= 5) return -1;
    port = port * 10 + (unsigned)(a.p[i] - '0');
  }
  if (i == d || port > 65535) return -1; /* "h:" is allowed by RFC 3986, not here */
  return 0;
}

/* Splits the request target (RFC 9112 section 3.2) into m->path and, for absolute-form, m->authority.
 * origin-form: the path is the target. asterisk-form: "*" for OPTIONS only, the path is "*".
 * absolute-form: "http" or "https" (any case) "://" authority, then the path: what follows the
 * authority, "/" when nothing does; a query without a path ("http://h?q") is refused, since the path
 * is a slice of the target and "/?q" is not in it. CONNECT's authority-form is not proxied. */
static int parse_target(tether__h1_msg *m) {
  tether__slice t = m->target;
  if (tether__h1_token_eq(m->method, "CONNECT")) return -1;
  if (t.p[0] == '/') {
    m->path = t;
    return 0;
  }
  if (t.p[0] == '*') {
    if (t.n != 1 || !tether__h1_token_eq(m->method, "OPTIONS")) return -1;
    m->path = t;
    return 0;
  }
  size_t s = 0;
  while (s < t.n && t.p[s] != ':') s++;
  tether__slice scheme = {t.p, s};
  if (!tether__h1_token_eq(scheme, "http") && !tether__h1_token_eq(scheme, "https")) return -1;
  if (t.n - s < 3 || memcmp(t.p + s, "://", 3) != 0) return -1;
  size_t a = s + 3, e = a;
  while (e < t.n && t.p[e] != '/' && t.p[e] != '?' && t.p[e] != '#') e++;
  m->authority = (tether__slice){t.p + a, e - a};
  if (valid_authority(m->authority) < 0) return -1;
  if (e == t.n) {
    m->path = (tether__slice){"/", 1};
    return 0;
  }
  if (t.p[e] != '/') return -1;
  m->path = (tether__slice){t.p + e, t.n - e};
  return 0;
}

int tether__h1_parse_request(const char *buf, size_t len, const tether__h1_limits *lim, tether__h1_msg *m) {
  /* RFC 9112 section 2.2: ignore empty lines before the request line (a few; clients send one after a
   * body) */
  size_t start = 0;
  while (start < 8 && start < len &&
         (buf[start] == '\n' || (buf[start] == '\r' && start + 1 < len && buf[start + 1] == '\n')))
    start += buf[start] == '\r' ? 2 : 1;
  size_t end = head_end(buf + start, len - start);
  if (end == 0) {
    if (len > lim->max_head) return -431;
    /* the request line alone may already be too long */
    if (memchr(buf + start, '\n', len - start) == NULL && len - start > lim->max_uri + 32) return -414;
    return 0;
  }
  end += start;
  if (end > lim->max_head) return -431;
  tether__h1_msg_clear(m);
  size_t pos = start;
  tether__slice line;
  if (next_line(buf, end, &pos, &line) < 0) return -400;
  /* method SP request-target SP HTTP-version */
  size_t i = 0;
  while (i < line.n && tether__tchar[(unsigned char)line.p[i]]) i++;
  if (i == 0 || i == line.n || line.p[i] != ' ') return -400;
  m->method = (tether__slice){line.p, i};
  size_t t0 = ++i;
  while (i < line.n && (unsigned char)line.p[i] > ' ' && line.p[i] != 0x7f) i++;
  if (i == t0 || i == line.n || line.p[i] != ' ') return i - t0 > lim->max_uri ? -414 : -400;
  m->target = (tether__slice){line.p + t0, i - t0};
  if (m->target.n > lim->max_uri) return -414;
  if (parse_version(line.p + i + 1, line.n - i - 1, &m->version_minor) < 0) return -400;
  if (parse_target(m) < 0) return -400;
  int rc = parse_headers(buf, end, pos, lim, m);
  if (rc < 0) return rc;
  conn_tokens ct = {0};
  te_state te = {0};
  int has_cl = 0, has_host = 0;
  rc = read_framing(m, 1, &ct, &te, &has_cl, &has_host);
  if (rc < 0) return rc;
  if (m->version_minor == 1 && !has_host) return -400;
  if (te.count) {
    rc = te_request(&te);
    if (rc < 0) return rc;
    m->framing = TETHER__H1_CHUNKED;
  } else if (has_cl && m->content_length > 0) {
    m->framing = TETHER__H1_LENGTH;
  } else {
    m->framing = TETHER__H1_NO_BODY;
  }
  if (m->version_minor == 0) m->expect_continue = 0;
  if (m->authority.p == NULL) m->authority = m->host;
  m->upgrade = ct.upgrade && tether__h1_header_get(m, "upgrade").p != NULL;
  m->is_head = tether__h1_token_eq(m->method, "HEAD");
  set_keep_alive(m, &ct);
  m->head_len = end;
  return (int)end;
}

int tether__h1_parse_response(const char *buf, size_t len, const tether__h1_limits *lim, int req_is_head,
                              tether__h1_msg *m) {
  size_t end = head_end(buf, len);
  if (end == 0) return len > lim->max_head ? -502 : 0;
  if (end > lim->max_head) return -502;
  tether__h1_msg_clear(m);
  size_t pos = 0;
  tether__slice line;
  if (next_line(buf, end, &pos, &line) < 0) return -502;
  /* HTTP-version SP 3DIGIT [SP reason-phrase] */
  if (line.n < 12 || parse_version(line.p, 8, &m->version_minor) < 0 || line.p[8] != ' ') return -502;
  for (int k = 9; k < 12; k++)
    if (line.p[k] < '0' || line.p[k] > '9') return -502;
  m->status = (line.p[9] - '0') * 100 + (line.p[10] - '0') * 10 + (line.p[11] - '0');
  if (m->status < 100) return -502;
  if (line.n > 12) {
    if (line.p[12] != ' ') return -502;
    for (size_t k = 13; k < line.n; k++) {
      unsigned char ch = (unsigned char)line.p[k];
      if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return -502;
    }
    m->reason = (tether__slice){line.p + 13, line.n - 13};
  }
  int rc = parse_headers(buf, end, pos, lim, m);
  if (rc < 0) return -502;
  conn_tokens ct = {0};
  te_state te = {0};
  int has_cl = 0, has_host = 0;
  rc = read_framing(m, 0, &ct, &te, &has_cl, &has_host);
  if (rc < 0) return -502;
  set_keep_alive(m, &ct);
  if (req_is_head || m->status < 200 || m->status == 204 || m->status == 304) {
    m->framing = TETHER__H1_NO_BODY;
    m->upgrade = m->status == 101;
  } else if (te.count) {
    m->framing = te.last_chunked ? TETHER__H1_CHUNKED : TETHER__H1_UNTIL_CLOSE;
    if (!te.last_chunked) m->keep_alive = 0;
  } else if (has_cl) {
    m->framing = m->content_length ? TETHER__H1_LENGTH : TETHER__H1_NO_BODY;
  } else {
    m->framing = TETHER__H1_UNTIL_CLOSE;
    m->keep_alive = 0;
  }
  m->head_len = end;
  return (int)end;
}

/* ---- bodies ---- */

enum {
  C_SIZE0 = 0,    /* expecting the first hex digit of a chunk size */
  C_SIZE,         /* in the hex digits */
  C_EXT,          /* in chunk extensions, until CR */
  C_SIZE_LF,      /* after the size line's CR */
  C_DATA,         /* in chunk data */
  C_DATA_CR,      /* expecting CR after data */
  C_DATA_LF,      /* expecting LF after data */
  C_TRAILER0,     /* at the start of a trailer line (or the final CRLF) */
  C_TRAILER_NAME, /* in a trailer field name, until ':' */
  C_TRAILER,      /* in a trailer field value, until CR */
  C_TRAILER_LF,   /* after a trailer line's CR */
  C_END_LF        /* after the final CR */
};

#define MAX_CHUNK_LINE 4096
#define MAX_TRAILERS 16384

void tether__h1_body_init(tether__h1_body *b, const tether__h1_msg *m) {
  memset(b, 0, sizeof(*b));
  b->framing = m->framing;
  if (m->framing == TETHER__H1_LENGTH) b->remaining = m->content_length;
  b->done = m->framing == TETHER__H1_NO_BODY;
}

static int64_t chunked_feed(tether__h1_body *b, const char *buf, size_t len) {
  size_t i = 0;
  while (i < len && !b->done) {
    char c = buf[i];
    switch (b->state) {
    case C_SIZE0:
    case C_SIZE: {
      int h = tether__hexval(c);
      if (h >= 0) {
        if (b->chunk_size >> 56) return -400; /* beyond any sane size: overflow guard */
        b->chunk_size = b->chunk_size * 16 + (uint64_t)h;
        b->state = C_SIZE;
      } else if (b->state == C_SIZE && c == ';') {
        b->state = C_EXT;
      } else if (b->state == C_SIZE && c == '\r') {
        b->state = C_SIZE_LF;
      } else {
        return -400;
      }
      if (++b->line_len > MAX_CHUNK_LINE) return -400;
      i++;
      break;
    }
    case C_EXT:
      if (c == '\r')
        b->state = C_SIZE_LF;
      else if (((unsigned char)c < 0x20 && c != '\t') || c == 0x7f)
        return -400;
      if (++b->line_len > MAX_CHUNK_LINE) return -400;
      i++;
      break;
    case C_SIZE_LF:
      if (c != '\n') return -400;
      i++;
      b->line_len = 0;
      if (b->chunk_size == 0) {
        b->state = C_TRAILER0;
      } else {
        b->remaining = b->chunk_size;
        b->state = C_DATA;
      }
      b->chunk_size = 0;
      break;
    case C_DATA: {
      size_t take = len - i < b->remaining ? len - i : (size_t)b->remaining;
      i += take;
      b->remaining -= take;
      b->total += take;
      if (b->remaining == 0) b->state = C_DATA_CR;
      break;
    }
    case C_DATA_CR:
      if (c != '\r') return -400;
      b->state = C_DATA_LF;
      i++;
      break;
    case C_DATA_LF:
      if (c != '\n') return -400;
      b->state = C_SIZE0;
      i++;
      break;
    case C_TRAILER0:
      if (c == '\r')
        b->state = C_END_LF;
      else if (!tether__tchar[(unsigned char)c])
        return -400;
      else
        b->state = C_TRAILER_NAME;
      if (++b->line_len > MAX_TRAILERS) return -400;
      i++;
      break;
    case C_TRAILER_NAME:
      if (c == ':')
        b->state = C_TRAILER;
      else if (!tether__tchar[(unsigned char)c])
        return -400;
      if (++b->line_len > MAX_TRAILERS) return -400;
      i++;
      break;
    case C_TRAILER:
      if (c == '\r')
        b->state = C_TRAILER_LF;
      else if (((unsigned char)c < 0x20 && c != '\t') || c == 0x7f)
        return -400;
      if (++b->line_len > MAX_TRAILERS) return -400;
      i++;
      break;
    case C_TRAILER_LF:
      if (c != '\n') return -400;
      b->state = C_TRAILER0;
      i++;
      break;
    case C_END_LF:
      if (c != '\n') return -400;
      b->done = 1;
      i++;
      break;
    }
  }
  return (int64_t)i;
}

int64_t tether__h1_body_feed(tether__h1_body *b, const char *buf, size_t len) {
  if (b->done) return 0;
  switch (b->framing) {
  case TETHER__H1_NO_BODY:
    b->done = 1;
    return 0;
  case TETHER__H1_LENGTH: {
    size_t take = len < b->remaining ? len : (size_t)b->remaining;
    b->remaining -= take;
    b->total += take;
    if (b->remaining == 0) b->done = 1;
    return (int64_t)take;
  }
  case TETHER__H1_CHUNKED:
    return chunked_feed(b, buf, len);
  case TETHER__H1_UNTIL_CLOSE:
    b->total += len;
    return (int64_t)len;
  }
  return -400;
}
