/* An HTTP/2 connection: nghttp2's server session on the event loop, fed by the connection's transport (TLS or
 * plain TCP) and written back through it; its limits in nginx's names; the floods it refuses. nghttp2 checks
 * the messaging rules (RFC 9113 section 8: pseudo-headers, connection-specific fields, te, content-length
 * against DATA, :path): NGHTTP2_OPT_NO_HTTP_MESSAGING stays off. The header block is checked again here
 * before it becomes HTTP/1.1 text (h2-to-h1 smuggling is made of what slips between the two). */
#include <stdlib.h>
#include <string.h>

#include "../conn.h"
#include "../io/tls.h"
#include "../request/request.h"
#include "../worker.h"
#include "h2.h"

#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define RESET_BURST 1000 /* RST_STREAM from the client: nghttp2's own rapid reset limit (its defaults) */
#define RESET_RATE 33
#define RESETS_PER_STREAMS 2 /* ours, first: a burst of twice http2_max_concurrent_streams resets */
#define CHEAP_BURST 1000     /* PING, SETTINGS and empty DATA frames */
#define CHEAP_RATE 100
#define MAX_CONTINUATIONS 8  /* CONTINUATION frames after one HEADERS */
#define H2_WRITE_BATCH 16384 /* frames are written in batches of about a TLS record */
#define SPARE_STREAMS 16     /* closed streams a connection keeps for its next ones */

static void h2_send(tether__h2 *h);
static int stream_open(tether__h2 *h, tether__h2_stream *st);
static int head_msg(tether__h2 *h, tether__h2_stream *st, tether__h2_head *hd, int *chunked);
static void stream_start(tether__h2 *h, tether__h2_stream *st, int rc);

/* ---- limits ---- */

static int budget_take(tether__h2_budget *b, double burst, double rate) {
  int64_t now = tether_now_ms();
  if (b->last_ms == 0) b->tokens = burst;
  b->tokens += (double)(now - (b->last_ms ? b->last_ms : now)) * rate / 1000.0;
  if (b->tokens > burst) b->tokens = burst;
  b->last_ms = now;
  if (b->tokens < 1) return 0;
  b->tokens -= 1;
  return 1;
}

/* The connection's timer: idle (keepalive_timeout, no stream), a frame or the preface that stops halfway
 * (http2_recv_timeout), or an answer the client's window holds back (send_timeout: zero-window slowloris). */
static void h2_timeout(uv_timer_t *t);

static void h2_arm(tether__h2 *h) {
  tether__client *c = h->c;
  if (c->closing || h->closed) return;
  const tether__config *cf = c->w->rt->cf;
  int64_t ms = -1, now = h->stalled_ms || h->held ? tether_now_ms() : 0;
  if (h->frame_left || h->fh_len)
    ms = cf->h2_recv_timeout_ms;
  else if (h->nstreams == 0)
    ms = cf->keepalive_timeout_ms;
  if (h->stalled_ms) {
    int64_t left = h->stalled_ms + cf->send_timeout_ms - now;
    if (ms < 0 || left < ms) ms = left;
  }
  if (h->held) { /* a held request's body must keep coming (client_body_timeout) */
    int64_t left = h->recv_ms + cf->client_body_timeout_ms - now;
    if (ms < 0 || left < ms) ms = left;
  }
  if (ms < 0) /* streams in progress, nothing held back: their own timers (client_body_timeout, proxy_*) */
    uv_timer_stop(&c->timer);
  else
    uv_timer_start(&c->timer, h2_timeout, (uint64_t)(ms > 0 ? ms : 1), 0);
}

/* Held requests whose body stopped coming: reset (nothing of them reached a server). */
static void drop_held(tether__h2 *h) {
  for (tether__h2_stream *st = h->streams; st; st = st->next)
    if (st->hold && !st->bad) {
      st->bad = 1;
      nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
    }
}

static void h2_timeout(uv_timer_t *t) {
  tether__client *c = t->data;
  tether__h2 *h = c->h2;
  const tether__config *cf = c->w->rt->cf;
  int64_t now = tether_now_ms();
  int stalled = h->stalled_ms && now >= h->stalled_ms + cf->send_timeout_ms;
  if (!stalled && !h->frame_left && !h->fh_len && h->nstreams) {
    if (h->held && now >= h->recv_ms + cf->client_body_timeout_ms) {
      drop_held(h);
      h2_send(h);
      if (c->closing) return;
    }
    h2_arm(h);
    return;
  }
  c->proto->abort(c);
}

/* Follows the frame boundaries in what the client sends, so that a frame stopped halfway is timed. */
static void track_frames(tether__h2 *h, const uint8_t *p, size_t n) {
  while (n) {
    if (h->frame_left) {
      size_t k = n < h->frame_left ? n : h->frame_left;
      h->frame_left -= k;
      p += k;
      n -= k;
      continue;
    }
    h->fh[h->fh_len++] = *p++;
    n--;
    if (h->fh_len == 9) {
      h->frame_left = (size_t)h->fh[0] << 16 | (size_t)h->fh[1] << 8 | h->fh[2];
      h->fh_len = 0;
    }
  }
}

/* ---- the header block ---- */

static tether__h2_stream *stream_of(nghttp2_session *s, int32_t id) {
  return nghttp2_session_get_stream_user_data(s, id);
}

static int begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *user) {
  tether__h2 *h = user;
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  const tether__config *cf = h->c->w->rt->cf;
  if (h->goaway || h->c->w->stopping) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  tether__h2_stream *st = h->spare;
  if (st) { /* a closed stream's memory, its response buffer kept */
    tether__buf out = st->out;
    h->spare = st->next;
    h->nspare--;
    memset(st, 0, sizeof(*st));
    st->out = out;
    st->out.len = 0;
  } else {
    st = tether__calloc(1, sizeof(*st));
  }
  st->h = h;
  st->id = f->hd.stream_id;
  tether__h2_head_reset(&h->head);
  st->next = h->streams;
  if (h->streams) h->streams->prev = st;
  h->streams = st;
  h->nstreams++;
  nghttp2_session_set_stream_user_data(s, st->id, st);
  h->block = st;
  if (++h->started >= cf->keepalive_requests) { /* the last stream this connection takes */
    nghttp2_submit_goaway(s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR, NULL, 0);
    h->goaway = 1;
  }
  h2_arm(h);
  return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *n, size_t nn, const uint8_t *v,
                     size_t vn, uint8_t flags, void *user) {
  (void)flags;
  tether__h2 *h = user;
  tether__h2_stream *st = h->block && h->block->id == f->hd.stream_id ? h->block : stream_of(s, f->hd.stream_id);
  if (st == NULL || st->bad) return 0;
  if (st->headers_done) return 0; /* trailers: not forwarded */
  const tether__config *cf = h->c->w->rt->cf;
  int rc = tether__h2_head_field(&h->head, n, nn, v, vn, cf->h2_max_field, cf->h2_max_header);
  if (rc < 0) {
    st->bad = 1;
    nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, st->id,
                              rc == TETHER__H2_FIELD_TOO_LARGE ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR);
  }
  return 0;
}

/* ---- frames ---- */

/* A stream whose DATA disagrees with its content-length: reset, and its client (if any) closes with its server
 * connection, which the server had not been given a complete request on. */
static void stream_refuse(nghttp2_session *s, tether__h2_stream *st) {
  st->bad = 1;
  nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_PROTOCOL_ERROR);
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user) {
  (void)flags;
  (void)user;
  tether__h2_stream *st = stream_of(s, id);
  if (st == NULL || (st->c == NULL && !st->hold) || st->bad) {
    nghttp2_session_consume(s, id, len); /* nobody reads it: the window opens again */
    return 0;
  }
  if (tether__h2_stream_input(st, data, len, 0) < 0) stream_refuse(s, st);
  return 0;
}

/* A frame that costs the client nothing and the server some work. */
static int cheap_frame(tether__h2 *h, const nghttp2_frame *f) {
  if (f->hd.type == NGHTTP2_RST_STREAM)
    return !budget_take(&h->resets, RESETS_PER_STREAMS * h->c->w->rt->cf->h2_max_streams, RESET_RATE);
  if (f->hd.type == NGHTTP2_PING || f->hd.type == NGHTTP2_SETTINGS ||
      (f->hd.type == NGHTTP2_DATA && f->hd.length == 0 && !(f->hd.flags & NGHTTP2_FLAG_END_STREAM)))
    return !budget_take(&h->cheap, CHEAP_BURST, CHEAP_RATE);
  return 0;
}

static int on_frame(nghttp2_session *s, const nghttp2_frame *f, void *user) {
  tether__h2 *h = user;
  if (cheap_frame(h, f)) {
    tether__log(TETHER_LOG_WARN, "http2: %s flood from %s: GOAWAY",
                f->hd.type == NGHTTP2_RST_STREAM ? "reset" : "frame", h->c->ip);
    nghttp2_session_terminate_session(s, NGHTTP2_ENHANCE_YOUR_CALM);
    h->goaway = 1;
    return 0;
  }
  if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) return 0;
  tether__h2_stream *st = stream_of(s, f->hd.stream_id);
  if (st == NULL || st->bad) return 0;
  int eof = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  if (f->hd.type == NGHTTP2_HEADERS && !st->headers_done) {
    st->headers_done = 1;
    st->in_eof = (uint8_t)eof;
    if (stream_open(h, st) < 0) stream_refuse(s, st);
    return 0;
  }
  if (!eof) return 0;
  if (tether__h2_stream_input(st, NULL, 0, 1) < 0) {
    stream_refuse(s, st);
  } else if (st->hold) { /* the length is confirmed: the request goes now, whole */
    st->hold = 0;
    h->held--;
    int chunked;
    stream_start(h, st, head_msg(h, st, st->head, &chunked));
    tether__h2_head_free(st->head);
    free(st->head);
    st->head = NULL;
  }
  return 0;
}

/* Frees the header-block buffers and the closed streams kept for reuse. */
static void drop_spares(tether__h2 *h) {
  tether__h2_head_free(&h->head);
  while (h->spare) {
    tether__h2_stream *st = h->spare;
    h->spare = st->next;
    tether__buf_free(&st->out);
    free(st);
  }
  h->nspare = 0;
}

/* What a stream holds but its response buffer (kept with a spare stream). */
static void stream_buffers_free(tether__h2_stream *st) {
  tether__buf_free(&st->in);
  tether__buf_free(&st->rhead);
  if (st->head) {
    tether__h2_head_free(st->head);
    free(st->head);
    st->head = NULL;
  }
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t code, void *user) {
  (void)code;
  tether__h2 *h = user;
  tether__h2_stream *st = stream_of(s, id);
  if (st == NULL) return 0;
  nghttp2_session_set_stream_user_data(s, id, NULL);
  if (h->block == st) h->block = NULL;
  st->closed = 1;
  if (st->c) st->c->proto->abort(st->c); /* its filter's free detaches it */
  if (st->hold) h->held--;
  if (st->prev)
    st->prev->next = st->next;
  else
    h->streams = st->next;
  if (st->next) st->next->prev = st->prev;
  stream_buffers_free(st);
  if (--h->nstreams > 0 && h->nspare < SPARE_STREAMS) {
    st->next = h->spare;
    h->spare = st;
    h->nspare++;
  } else {
    tether__buf_free(&st->out);
    free(st);
  }
  if (h->nstreams == 0) drop_spares(h); /* an idle connection keeps no buffer */
  h2_arm(h);
  return 0;
}

/* ---- the session on the transport ---- */

/* ---- the streams' clients ---- */

/* A client for the stream: the HTTP/1.1 side's own (its operations and transport callbacks, those of the
 * connection), over the stream's transport filter; one request, and not one of the worker's connections. */
static tether__client *stream_client(tether__h2 *h, tether__h2_stream *st) {
  tether__client *conn = h->c;
  tether__worker *w = conn->w;
  tether__client *c = tether__calloc(1, sizeof(*c));
  c->w = w;
  c->conn = conn;
  c->proto = conn->proto;
  tether__io_init(&c->io, &w->loop, c, w->rbuf, sizeof(w->rbuf), h->h1_read, h->h1_written);
  c->io.filter = &tether__h2_stream_filter;
  c->io.filter_state = st;
  uv_timer_init(&w->loop, &c->timer);
  c->io.tcp.data = c;
  c->timer.data = c;
  c->keep_alive = 0; /* one request: the stream */
  c->srv = -1;
  c->served = 1; /* a PROXY protocol header was the connection's */
  c->proto_chosen = 1;
  c->listener = conn->listener;
  c->addr = conn->addr;
  c->src = conn->src;
  memcpy(c->ip, conn->ip, sizeof(c->ip));
  return c;
}

/* Each worker is a thread: the request head of its streams is made here, one at a time (the request layer
 * keeps nothing of it past tether__request_begin), not 3 KiB per stream. */
static _Thread_local tether__h1_msg req_msg;

/* The request head made from hd into req_msg: 0, TETHER__H2_FIELD_BAD, or the negated status that refuses it. */
static int head_msg(tether__h2 *h, tether__h2_stream *st, tether__h2_head *hd, int *chunked) {
  tether__h1_limits lim = tether__request_limits(h->c->w->rt->cf);
  return tether__h2_head_msg(hd, st->in_eof, &lim, &req_msg, chunked);
}

/* The stream's client is made, and takes the request head in req_msg (rc: head_msg's), then the body as it
 * comes. */
static void stream_start(tether__h2 *h, tether__h2_stream *st, int rc) {
  st->c = stream_client(h, st);
  st->c->proto->request(st->c, &req_msg, rc < 0 ? -rc : 0); /* proto/h1.c's, as for a parsed head */
  tether__h2_stream_deliver(st);
}

/* The stream's head is complete: refused (-1, reset), or its client is made and reads the request. A request
 * held for its END_STREAM keeps its block until then. */
static int stream_open(tether__h2 *h, tether__h2_stream *st) {
  int chunked;
  int rc = head_msg(h, st, &h->head, &chunked);
  if (rc == TETHER__H2_FIELD_BAD) return -1;
  int64_t cl = h->head.content_length;
  st->chunked = (uint8_t)chunked;
  st->cl_left = st->in_eof ? -1 : cl;
  if (cl >= 0 && cl <= TETHER__H2_BODY_HOLD && !st->in_eof) {
    st->hold = 1; /* its client is made at END_STREAM */
    h->held++;
    st->head = tether__malloc(sizeof(*st->head));
    *st->head = h->head; /* its buffers move with it */
    tether__h2_head_init(&h->head);
    return 0;
  }
  stream_start(h, st, rc);
  return 0;
}

static void h2_check_end(tether__h2 *h) {
  tether__client *c = h->c;
  if (c->closing || h->in_session) return;
  if (!nghttp2_session_want_read(h->s) && !nghttp2_session_want_write(h->s) && c->io.pending == 0) c->proto->abort(c);
}

/* What the session has to send, to the transport, while the transport takes it. */
static void h2_send(tether__h2 *h) {
  tether__client *c = h->c;
  if (c->closing || h->in_session) return;
  h->in_session = 1;
  tether__buf *b = &c->w->scratch_out; /* frames gathered: one TLS record and one write for many */
  b->len = 0;
  int rc = 0;
  while (rc == 0 && c->io.pending + b->len < TETHER__MAX_PENDING) {
    const uint8_t *p;
    ssize_t n = nghttp2_session_mem_send(h->s, &p);
    if (n <= 0) {
      rc = (int)n;
      break;
    }
    tether__buf_append(b, p, (size_t)n);
    if (b->len >= H2_WRITE_BATCH) {
      rc = tether__io_write(&c->io, b->data, b->len);
      b->len = 0;
    }
  }
  if (rc == 0 && b->len) rc = tether__io_write(&c->io, b->data, b->len);
  b->len = 0;
  if (rc < 0) {
    h->in_session = 0;
    c->proto->abort(c);
    return;
  }
  h->in_session = 0;
  tether__h2_stream_notify(h);
  if (c->closing) return;
  int waiting = 0; /* an answer waits for the client's window */
  for (tether__h2_stream *st = h->streams; st && !waiting; st = st->next)
    waiting = st->out.len > st->out_off && nghttp2_session_get_stream_remote_window_size(h->s, st->id) <= 0;
  waiting |= nghttp2_session_get_remote_window_size(h->s) <= 0 && h->nstreams;
  if (waiting && !h->stalled_ms) {
    h->stalled_ms = tether_now_ms();
    h2_arm(h);
  } else if (!waiting && h->stalled_ms) {
    h->stalled_ms = 0;
    h2_arm(h);
  }
  h2_check_end(h);
}

static void on_flush(uv_idle_t *i) {
  tether__h2 *h = i->data;
  uv_idle_stop(i);
  h2_send(h);
}

static void h2_recv(tether__h2 *h, const char *data, size_t len) {
  tether__client *c = h->c;
  track_frames(h, (const uint8_t *)data, len);
  h->recv_ms = tether_now_ms();
  h->in_session = 1;
  ssize_t n = nghttp2_session_mem_recv(h->s, (const uint8_t *)data, len);
  h->in_session = 0;
  if (c->closing) return;
  if (n < 0) {
    tether__log(TETHER_LOG_INFO, "http2: %s from %s", nghttp2_strerror((int)n), c->ip);
    if (n != NGHTTP2_ERR_BAD_CLIENT_MAGIC) h2_send(h); /* the GOAWAY nghttp2 queued */
    c->proto->abort(c);
    return;
  }
  h2_send(h);
  h2_arm(h);
}

static void h2_on_read(tether__io *io, ssize_t nread, const char *data) {
  tether__client *c = io->owner;
  if (c->closing) return;
  if (nread < 0) {
    c->proto->abort(c);
    return;
  }
  h2_recv(c->h2, data, (size_t)nread);
}

static void h2_on_written(tether__io *io, int status) {
  tether__client *c = io->owner;
  if (c->closing) return;
  if (status < 0) {
    c->proto->abort(c);
    return;
  }
  h2_send(c->h2);
}

int tether__h2_detect(tether__client *c) {
  const tether__config *cf = c->w->rt->cf;
  if ((size_t)c->listener >= cf->nlisten) return 0;
  if (cf->listen_ssl[c->listener]) return tether__tls_alpn_h2(&c->io);
  int dflt = cf->listen_default[c->listener]; /* http2 on in the address's default server: h2c as nginx 1.25 */
  if (!cf->listen_http2[c->listener] && !(dflt >= 0 && cf->vservers[dflt].http2 > 0)) return 0;
  size_t n = c->in_len < sizeof(PREFACE) - 1 ? c->in_len : sizeof(PREFACE) - 1;
  if (memcmp(c->in, PREFACE, n) != 0) return 0;
  return n == sizeof(PREFACE) - 1 ? 1 : -1;
}

static nghttp2_session_callbacks *callbacks(void) {
  nghttp2_session_callbacks *cb;
  if (nghttp2_session_callbacks_new(&cb) != 0) abort();
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
  return cb;
}

static nghttp2_option *options(void) {
  nghttp2_option *o;
  if (nghttp2_option_new(&o) != 0) abort();
  nghttp2_option_set_no_auto_window_update(o, 1); /* windows open as the stream's client reads */
  nghttp2_option_set_stream_reset_rate_limit(o, RESET_BURST, RESET_RATE);
  nghttp2_option_set_max_continuations(o, MAX_CONTINUATIONS);
  nghttp2_option_set_max_settings(o, 32);
  nghttp2_option_set_max_outbound_ack(o, 1000);
  nghttp2_option_set_max_deflate_dynamic_table_size(o, 4096); /* whatever table size the client allows */
  return o;
}

void tether__h2_start(tether__client *c) {
  const tether__config *cf = c->w->rt->cf;
  tether__h2 *h = tether__calloc(1, sizeof(*h));
  h->c = c;
  h->frame_left = sizeof(PREFACE) - 1;
  c->h2 = h;
  uv_idle_init(&c->w->loop, &h->flush);
  h->flush.data = h;
  h->on_flush = on_flush;
  h->h1_read = c->io.on_read;
  h->h1_written = c->io.on_written;
  nghttp2_session_callbacks *cb = callbacks();
  nghttp2_option *o = options();
  if (nghttp2_session_server_new2(&h->s, cb, h, o) != 0) abort();
  nghttp2_session_callbacks_del(cb);
  nghttp2_option_del(o);
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)cf->h2_max_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (uint32_t)(cf->h2_preread > 0x7fffffff ? 0x7fffffff : cf->h2_preread)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)cf->h2_max_header},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
  nghttp2_submit_settings(h->s, NGHTTP2_FLAG_NONE, iv, TETHER__ARRAY_SIZE(iv));
  c->io.on_read = h2_on_read;
  c->io.on_written = h2_on_written;
  c->state = TETHER__CS_WAIT;
  h2_arm(h);
  char *in = c->in;
  size_t len = c->in_len;
  c->in = NULL;
  c->in_len = c->in_cap = 0;
  h2_recv(h, in, len);
  free(in);
}

static void flush_closed(uv_handle_t *hd) { free(hd->data); }

void tether__h2_closed(tether__client *c) {
  tether__h2 *h = c->h2;
  if (h == NULL || h->closed) return;
  h->closed = 1;
  h->block = NULL;
  while (h->streams) { /* their clients close; the session forgets them */
    tether__h2_stream *st = h->streams;
    h->streams = st->next;
    st->closed = 1;
    if (st->c) st->c->proto->abort(st->c);
    stream_buffers_free(st);
    tether__buf_free(&st->out);
    free(st);
  }
  drop_spares(h);
  nghttp2_session_del(h->s);
  h->s = NULL;
  c->h2 = NULL;
  uv_close((uv_handle_t *)&h->flush, flush_closed);
}

void tether__h2_goaway(tether__client *c) {
  tether__h2 *h = c->h2;
  if (h == NULL || h->goaway) return;
  h->goaway = 1;
  nghttp2_submit_goaway(h->s, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->s), NGHTTP2_NO_ERROR, NULL,
                        0);
  h2_send(h);
}
