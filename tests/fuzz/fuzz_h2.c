/* libFuzzer harness for the HTTP/2 request path: the input is what a client sends after the preface (frames),
 * fed through nghttp2_session_mem_recv of a server session set up as the balancer's (HTTP messaging on), whose
 * header blocks go field by field through proto/h2_head.c and become parsed HTTP/1.1 request heads, and whose
 * DATA becomes the body as the stream's client reads it. Besides not crashing, the head made from the block
 * must be the one the balancer's own parser makes of the HTTP/1.1 text the block stands for (printed here, as
 * an HTTP/1.1 client would send it: one request, no second one hidden in a field), with the same refusals
 * (400, 414, 431); the method and path are those of the block, the framing is the one announced
 * (Content-Length as given, chunked when none was, none when the stream ended with its HEADERS), and the body
 * made from the DATA ends exactly where the stream does. */
#include <nghttp2/nghttp2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/balancer/http1.c"
#include "../../src/balancer/proto/h2_head.c"

typedef struct fstream {
  tether__h2_head hd;
  tether__buf body; /* the HTTP/1.1 body made from the DATA */
  int chunked, opened, bad;
  tether__h1_msg m;
  struct fstream *next; /* every stream of the session: nghttp2_session_del calls no close callback */
} fstream;

static fstream *all;

static void stream_free(fstream *st) {
  tether__h2_head_free(&st->hd);
  tether__buf_free(&st->body);
  free(st);
}

static fstream *get(nghttp2_session *s, int32_t id) { return nghttp2_session_get_stream_user_data(s, id); }

static int begin(nghttp2_session *s, const nghttp2_frame *f, void *u) {
  (void)u;
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  fstream *st = calloc(1, sizeof(*st));
  if (st == NULL) abort();
  tether__h2_head_init(&st->hd);
  st->next = all;
  all = st;
  nghttp2_session_set_stream_user_data(s, f->hd.stream_id, st);
  return 0;
}

static int header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *n, size_t nn, const uint8_t *v, size_t vn,
                  uint8_t fl, void *u) {
  (void)fl;
  (void)u;
  fstream *st = get(s, f->hd.stream_id);
  if (st == NULL || st->opened || st->bad) return 0;
  if (tether__h2_head_field(&st->hd, n, nn, v, vn, 4096, 16384) < 0) {
    st->bad = 1;
    nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_PROTOCOL_ERROR);
  }
  return 0;
}

/* The HTTP/1.1 text the block stands for: the request line, Host from :authority (else host), the fields in
 * order, the cookie fields joined, then the framing (put: h2_head.c's). */
static void print_head(const tether__h2_head *hd, int chunked, tether__buf *out) {
  put(out, hd->method, strlen(hd->method));
  put(out, " ", 1);
  put(out, hd->path.data, hd->path.len);
  put(out, " HTTP/1.1\r\n", 11);
  if (hd->authority.len) tether__buf_appendf(out, "Host: %.*s\r\n", (int)hd->authority.len, hd->authority.data);
  for (size_t i = 0; i < hd->nfields && i < TETHER__ARRAY_SIZE(hd->fields); i++) {
    const tether__h2_field *f = &hd->fields[i];
    put(out, hd->bytes.data + f->name, f->nlen);
    put(out, ": ", 2);
    put(out, hd->bytes.data + f->value, f->vlen);
    put(out, "\r\n", 2);
  }
  if (hd->cookie.len) tether__buf_appendf(out, "Cookie: %.*s\r\n", (int)hd->cookie.len, hd->cookie.data);
  if (hd->content_length >= 0) tether__buf_appendf(out, "Content-Length: %lld\r\n", (long long)hd->content_length);
  if (chunked) put(out, "Transfer-Encoding: chunked\r\n", 28);
  put(out, "\r\n", 2);
}

static int same(tether__slice a, tether__slice b) { return a.n == b.n && (a.n == 0 || !memcmp(a.p, b.p, a.n)); }

/* The head made from the block against the parser's of its text: the same answer, the same request. */
static void open_stream(fstream *st, int end_stream) {
  static const tether__h1_limits lim = {.max_head = 8192, .max_uri = 1024, .max_headers = TETHER__H1_MAX_HEADERS};
  st->opened = 1;
  int rc = tether__h2_head_msg(&st->hd, end_stream, &lim, &st->m, &st->chunked);
  if (rc == TETHER__H2_FIELD_BAD) {
    st->bad = 1;
    return;
  }
  if (st->hd.nfields > TETHER__ARRAY_SIZE(st->hd.fields)) { /* past what a head takes: not all kept */
    if (rc != -431 && rc != -400) abort();
    st->bad = 1;
    return;
  }
  tether__buf out = {0};
  print_head(&st->hd, st->chunked, &out);
  tether__h1_msg *p = malloc(sizeof(*p));
  if (p == NULL) abort();
  int n = tether__h1_parse_request(out.data, out.len, &lim, p);
  if (n == 0 || (n > 0 && (size_t)n != out.len)) abort(); /* incomplete, or a request after the request */
  if ((n < 0 ? n : 0) != rc) abort();
  if (n > 0) {
    tether__h1_msg *m = &st->m;
    if (m->method.n != strlen(st->hd.method) || memcmp(m->method.p, st->hd.method, m->method.n)) abort();
    if (!same(m->target, p->target) || !same(m->path, p->path) || !same(m->authority, p->authority)) abort();
    if (!same(m->host, p->host) || m->nheaders != p->nheaders || m->head_len != p->head_len) abort();
    for (size_t i = 0; i < m->nheaders; i++)
      if (!same(m->headers[i].name, p->headers[i].name) || !same(m->headers[i].value, p->headers[i].value)) abort();
    if (m->framing != p->framing || m->content_length != p->content_length || m->keep_alive != p->keep_alive ||
        m->expect_continue != p->expect_continue || m->upgrade != p->upgrade || m->is_head != p->is_head ||
        m->version_minor != p->version_minor)
      abort();
    tether__h1_framing want = st->hd.content_length >= 0 ? TETHER__H1_LENGTH
                              : st->chunked              ? TETHER__H1_CHUNKED
                                                         : TETHER__H1_NO_BODY;
    if (m->framing != want && !(want == TETHER__H1_LENGTH && st->hd.content_length == 0)) abort();
  } else {
    st->bad = 1; /* refused with a status: nothing is forwarded */
  }
  free(p);
  tether__buf_free(&out);
}

static int data(nghttp2_session *s, uint8_t fl, int32_t id, const uint8_t *p, size_t n, void *u) {
  (void)fl;
  (void)u;
  fstream *st = get(s, id);
  if (st == NULL || st->bad || !st->opened) return 0;
  if (st->chunked && n) tether__buf_appendf(&st->body, "%zx\r\n", n);
  tether__buf_append(&st->body, p, n);
  if (st->chunked && n) tether__buf_append(&st->body, "\r\n", 2);
  return 0;
}

/* The stream ended: the body made from its DATA ends exactly there. */
static void check_body(fstream *st) {
  if (st->chunked) tether__buf_append(&st->body, "0\r\n\r\n", 5);
  tether__h1_body b;
  tether__h1_body_init(&b, &st->m);
  int64_t k = tether__h1_body_feed(&b, st->body.data ? st->body.data : "", st->body.len);
  if (k != (int64_t)st->body.len || !b.done) abort();
}

static int frame(nghttp2_session *s, const nghttp2_frame *f, void *u) {
  (void)u;
  fstream *st = get(s, f->hd.stream_id);
  if (st == NULL || st->bad) return 0;
  int eof = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  if (f->hd.type == NGHTTP2_HEADERS && !st->opened) open_stream(st, eof);
  if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) && eof && !st->bad) check_body(st);
  return 0;
}

static int closed(nghttp2_session *s, int32_t id, uint32_t code, void *u) {
  (void)code;
  (void)u;
  nghttp2_session_set_stream_user_data(s, id, NULL); /* freed at the end, with the others */
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data_in, size_t size) {
  nghttp2_session_callbacks *cb;
  nghttp2_option *o;
  nghttp2_session *s;
  if (nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&o) != 0) abort();
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, begin);
  nghttp2_session_callbacks_set_on_header_callback(cb, header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, frame);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, data);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, closed);
  nghttp2_option_set_no_recv_client_magic(o, 1); /* the input starts after the preface */
  nghttp2_option_set_max_continuations(o, 8);
  if (nghttp2_session_server_new2(&s, cb, NULL, o) != 0) abort();
  nghttp2_session_mem_recv(s, data_in, size);
  const uint8_t *out;
  while (nghttp2_session_mem_send(s, &out) > 0) {
  }
  nghttp2_session_del(s);
  while (all) {
    fstream *st = all;
    all = st->next;
    stream_free(st);
  }
  nghttp2_option_del(o);
  nghttp2_session_callbacks_del(cb);
  return 0;
}
