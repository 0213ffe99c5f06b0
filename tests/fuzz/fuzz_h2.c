/* libFuzzer harness for the HTTP/2 request path: the input is what a client sends after the preface (frames),
 * fed through nghttp2_session_mem_recv of a server session set up as the balancer's (HTTP messaging on), whose
 * header blocks go field by field through proto/h2_head.c and become HTTP/1.1 heads, and whose DATA becomes
 * the body as the stream's client reads it. Besides not crashing, what reaches the HTTP/1.1 side must be one
 * request and nothing more: the balancer's own parser takes the head whole (no second request hidden in a
 * field), the method and path are those of the block, the framing is the one announced (Content-Length as
 * given, chunked when none was, none when the stream ended with its HEADERS), and the body made from the DATA
 * ends exactly where the stream does. */
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

/* The head as the balancer's parser sees it: one request, the block's. */
static void open_stream(fstream *st, int end_stream) {
  tether__buf out = {0};
  st->opened = 1;
  if (tether__h2_head_build(&st->hd, end_stream, &out, &st->chunked) < 0) {
    st->bad = 1;
    tether__buf_free(&out);
    return;
  }
  tether__h1_limits lim = {.max_head = 1 << 20, .max_uri = 1 << 20, .max_headers = TETHER__H1_MAX_HEADERS};
  int n = tether__h1_parse_request(out.data, out.len, &lim, &st->m);
  if (n == 0 || (n > 0 && (size_t)n != out.len)) abort(); /* incomplete, or a request after the request */
  if (n > 0) {
    if (st->m.method.n != strlen(st->hd.method) || memcmp(st->m.method.p, st->hd.method, st->m.method.n)) abort();
    if (st->m.target.n != st->hd.path.len || memcmp(st->m.target.p, st->hd.path.data, st->m.target.n)) abort();
    tether__h1_framing want = st->hd.content_length >= 0 ? TETHER__H1_LENGTH
                              : st->chunked              ? TETHER__H1_CHUNKED
                                                         : TETHER__H1_NO_BODY;
    if (st->m.framing != want && !(want == TETHER__H1_LENGTH && st->hd.content_length == 0)) abort();
    if (want == TETHER__H1_LENGTH && st->m.content_length != (uint64_t)st->hd.content_length) abort();
  } else {
    st->bad = 1; /* refused with a status: nothing is forwarded */
  }
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
