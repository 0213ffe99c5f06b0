/* An HTTP/2 stream as the transport of a client of its own. Its input is an HTTP/1.1 request: a parsed head made
 * from the header block h2.c checked (":authority" as Host, the cookie fields joined; handed to the client as
 * the HTTP/1.1 side's parse would, not as text), then the DATA as body bytes, as a Content-Length body when the
 * client gave one, else chunked. Its output is what the request and upstream
 * layers write, HTTP/1.1 bytes: the head becomes HEADERS (without the connection-specific fields; a server's
 * head comes with the upstream layer's parse of it, through the filter's head operation, and is not parsed
 * again), the body (de-chunked) becomes DATA, sent as the client's window allows; what waits counts as the
 * transport's pending bytes, so that the upstream stops reading past TETHER__MAX_PENDING as it does for
 * HTTP/1.1. */
#include <stdlib.h>
#include <string.h>

#include "../conn.h"
#include "../http1.h"
#include "../worker.h"
#include "h2.h"

/* ---- the request ---- */

/* A content-length body: counted against its length (nghttp2 checks it first; this is the second line), held
 * whole while the request is held, else all but its last byte until END_STREAM. */
static int length_input(tether__h2_stream *st, const uint8_t *data, size_t *len, int eof) {
  if ((uint64_t)*len > (uint64_t)st->cl_left || (eof && st->cl_left != (int64_t)*len)) return -1;
  st->cl_left -= (int64_t)*len;
  if (st->hold) { /* nothing is forwarded yet: the window opens at once, the memory is bounded by the length */
    if (*len) {
      tether__buf_append(&st->in, data, *len);
      nghttp2_session_consume(st->h->s, st->id, *len);
    }
    *len = 0;
    return 0;
  }
  if (st->cl_left == 0 && *len && !eof) {
    st->withheld = data[*len - 1];
    st->has_withheld = 1;
    st->unconsumed++;
    --*len;
  }
  return 0;
}

int tether__h2_stream_input(tether__h2_stream *st, const uint8_t *data, size_t len, int eof) {
  if (st->bad) return -1;
  if (st->cl_left >= 0 && length_input(st, data, &len, eof) < 0) return -1;
  if (len) {
    if (st->chunked) tether__buf_appendf(&st->in, "%zx\r\n", len);
    tether__buf_append(&st->in, data, len);
    if (st->chunked) tether__buf_append(&st->in, "\r\n", 2);
    st->unconsumed += len;
  }
  if (eof && !st->in_eof) {
    st->in_eof = 1;
    if (st->chunked) tether__buf_append(&st->in, "0\r\n\r\n", 5);
    if (st->has_withheld) tether__buf_append(&st->in, &st->withheld, 1), st->has_withheld = 0;
  }
  tether__h2_stream_deliver(st);
  return 0;
}

void tether__h2_stream_deliver(tether__h2_stream *st) {
  if (st->delivering) return;
  st->delivering = 1;
  while (st->c && !st->bad && !st->c->closing && !st->c->io.paused && st->in.len) {
    tether__buf b = st->in;
    size_t unconsumed = st->unconsumed;
    st->in = (tether__buf){0};
    st->unconsumed = 0;
    st->c->io.on_read(&st->c->io, (ssize_t)b.len, b.data);
    tether__buf_free(&b);
    if (unconsumed && !st->closed) nghttp2_session_consume(st->h->s, st->id, unconsumed);
  }
  st->delivering = 0;
  tether__h2_schedule(st->h);
}

/* ---- the response ---- */

/* The connection-specific fields HTTP/2 does not carry (RFC 9113 section 8.2.2), told apart by length first:
 * most names are none of them. */
static int hop_name(tether__slice n) {
  switch (n.n) {
  case 2:
    return tether__h1_token_eq(n, "te");
  case 7:
    return tether__h1_token_eq(n, "upgrade");
  case 10:
    return tether__h1_token_eq(n, "connection") || tether__h1_token_eq(n, "keep-alive");
  case 16:
    return tether__h1_token_eq(n, "proxy-connection");
  case 17:
    return tether__h1_token_eq(n, "transfer-encoding");
  default:
    return 0;
  }
}

/* A response head's fields as nghttp2 takes them, the connection-specific ones left out. The names go as they
 * are: nghttp2_submit_response copies each name and lowercases the copy (nghttp2_nv_array_copy), so they are
 * not lowercased here first. */
typedef struct resp_fields {
  nghttp2_nv nv[TETHER__H1_MAX_HEADERS + 8];
  char status[4];
  size_t n;
} resp_fields;

/* Each worker is a thread: one of these each, not 4 KiB of stack per head. */
static _Thread_local resp_fields resp_nv;

/* One field; 0, or -1 when there are more than HEADERS can carry here. */
static int add_field(resp_fields *f, tether__slice name, tether__slice value) {
  if (hop_name(name)) return 0;
  if (f->n == TETHER__ARRAY_SIZE(f->nv)) return -1;
  f->nv[f->n++] = (nghttp2_nv){(uint8_t *)name.p, (uint8_t *)value.p, name.n, value.n, NGHTTP2_NV_FLAG_NONE};
  return 0;
}

static void fields_init(resp_fields *f, int status) {
  int code = status % 1000;
  f->status[0] = (char)('0' + code / 100), f->status[1] = (char)('0' + code / 10 % 10);
  f->status[2] = (char)('0' + code % 10);
  f->nv[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)f->status, 7, 3, NGHTTP2_NV_FLAG_NONE};
  f->n = 1;
}

/* The response head is complete: HEADERS, with a data source when a body follows (its framing, m's). */
static void submit_head(tether__h2_stream *st, const tether__h1_msg *m, const resp_fields *f) {
  st->framing = m->framing;
  st->remaining = m->framing == TETHER__H1_LENGTH ? m->content_length : 0;
  st->rstate = m->framing == TETHER__H1_NO_BODY || (m->framing == TETHER__H1_LENGTH && !m->content_length) ? 2 : 1;
  st->out_eof = st->rstate == 2;
  nghttp2_data_provider prd = {.source.ptr = st, .read_callback = tether__h2_stream_read};
  nghttp2_submit_response(st->h->s, st->id, f->nv, f->n, st->rstate == 2 ? NULL : &prd);
  st->submitted = 1;
}

/* The fields of a head parsed here (one the request layer wrote itself: an error page, a redirect). */
static void submit_parsed(tether__h2_stream *st, const tether__h1_msg *m) {
  resp_fields *f = &resp_nv;
  fields_init(f, m->status);
  for (size_t i = 0; i < m->nheaders; i++) add_field(f, m->headers[i].name, m->headers[i].value);
  submit_head(st, m, f);
}

/* The fields of a head the balancer made from a server's (tether__rewrite_response): its status line, then
 * "Name: value" lines, each checked when the server's head was parsed or made by the balancer itself, so they
 * are only split here. -1 when there are too many. */
static int submit_made(tether__h2_stream *st, const tether__h1_msg *m, const char *p, size_t len) {
  resp_fields *f = &resp_nv;
  fields_init(f, m->status);
  const char *end = p + len, *nl = memchr(p, '\n', len);
  for (p = nl ? nl + 1 : end; p < end; p = nl + 1) {
    nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL || nl - p <= 1) break; /* the empty line */
    const char *colon = memchr(p, ':', (size_t)(nl - p)), *ve = nl[-1] == '\r' ? nl - 1 : nl;
    if (colon == NULL) continue;
    const char *v = colon + 1;
    while (v < ve && (*v == ' ' || *v == '\t')) v++;
    if (add_field(f, (tether__slice){p, (size_t)(colon - p)}, (tether__slice){v, (size_t)(ve - v)}) < 0) return -1;
  }
  submit_head(st, m, f);
  return 0;
}

/* Chunked body bytes into DATA bytes; what the upstream layer forwards was checked already (http1.c). */
enum { C_SIZE, C_EXT, C_DATA, C_DATA_END, C_TRAILER, C_TRAILER_LINE };
static size_t dechunk(tether__h2_stream *st, const char *p, size_t len) {
  size_t i = 0;
  while (i < len && st->rstate == 1) {
    char ch = p[i];
    if (st->cstate == C_DATA) {
      size_t k = len - i < st->remaining ? len - i : (size_t)st->remaining;
      tether__buf_append(&st->out, p + i, k);
      st->remaining -= k;
      i += k;
      if (st->remaining == 0) st->cstate = C_DATA_END;
      continue;
    }
    i++;
    if (st->cstate == C_SIZE || st->cstate == C_EXT) {
      int d = ch >= '0' && ch <= '9'   ? ch - '0'
              : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
              : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                       : -1;
      if (st->cstate == C_SIZE && d >= 0)
        st->remaining = st->remaining * 16 + (uint64_t)d;
      else if (ch == '\n')
        st->cstate = st->remaining ? C_DATA : C_TRAILER;
      else
        st->cstate = C_EXT;
    } else if (st->cstate == C_DATA_END) {
      if (ch == '\n') st->cstate = C_SIZE;
    } else if (st->cstate == C_TRAILER) {
      if (ch == '\n')
        st->rstate = 2; /* the empty line after the last chunk (and trailers, dropped) */
      else if (ch != '\r')
        st->cstate = C_TRAILER_LINE;
    } else if (ch == '\n') {
      st->cstate = C_TRAILER;
    }
  }
  return i;
}

static void body_bytes(tether__h2_stream *st, const char *p, size_t len) {
  if (st->framing == TETHER__H1_CHUNKED) {
    dechunk(st, p, len);
  } else if (st->framing == TETHER__H1_LENGTH) {
    size_t k = len < st->remaining ? len : (size_t)st->remaining;
    if (k) tether__buf_append(&st->out, p, k);
    st->remaining -= k;
    if (st->remaining == 0) st->rstate = 2;
  } else {
    tether__buf_append(&st->out, p, len);
  }
  if (st->rstate == 2) st->out_eof = 1;
}

/* The response heads of a worker's streams are parsed here, one at a time (each worker is a thread): 3 KiB
 * not allocated per stream. */
static _Thread_local tether__h1_msg resp_msg;

/* The head, once it is whole (interim 1xx answers are dropped: HTTP/2 has them, but the request is whole).
 * Bytes that hold a whole head are parsed where they are; a head in pieces is gathered in rhead first. */
static int head_bytes(tether__h2_stream *st, tether__client *c, const char *p, size_t len) {
  if (st->rhead.len) {
    tether__buf_append(&st->rhead, p, len);
    p = st->rhead.data;
    len = st->rhead.len;
  }
  tether__h1_msg *m = &resp_msg;
  tether__h1_limits lim = TETHER__H1_DEFAULT_LIMITS;
  lim.max_head = 65536;
  for (;;) {
    int n = tether__h1_parse_response(p, len, &lim, c->is_head, m);
    if (n < 0) return -1;
    if (n == 0) { /* the rest of the head is still to come: keep what remains of it */
      if (!st->rhead.len) {
        tether__buf_append(&st->rhead, p, len);
      } else if (p != st->rhead.data) {
        memmove(st->rhead.data, p, len);
        st->rhead.len = len;
      }
      return 0;
    }
    p += n;
    len -= (size_t)n;
    if (m->status >= 100 && m->status < 200) continue;
    submit_parsed(st, m);
    if (len && st->rstate == 1) body_bytes(st, p, len);
    tether__buf_free(&st->rhead);
    return 0;
  }
}

/* Bytes the stream took: the transport's pending count, nghttp2 told when DATA waited for them. */
static void stream_took(tether__h2_stream *st, tether__io *io) {
  io->pending = st->out.len - st->out_off;
  if (st->deferred && (st->out.len > st->out_off || st->out_eof)) {
    st->deferred = 0;
    nghttp2_session_resume_data(st->h->s, st->id);
  }
  tether__h2_schedule(st->h);
}

static int stream_write(tether__io *io, const char *data, size_t len) {
  tether__h2_stream *st = io->filter_state;
  tether__client *c = io->owner;
  if (st == NULL || st->closed) return UV_EPIPE;
  if (len == 0) return 0;
  if (st->rstate == 0) {
    if (head_bytes(st, c, data, len) < 0) return UV_EPROTO;
  } else if (st->rstate == 1) {
    body_bytes(st, data, len);
  }
  stream_took(st, io);
  return 0;
}

/* A server's answer, its head parsed by the upstream layer: HEADERS from it without parsing it again. Interim
 * (1xx) heads are dropped, as in head_bytes. */
static int stream_head(tether__io *io, const tether__h1_msg *m, const char *data, size_t head_len, size_t len) {
  tether__h2_stream *st = io->filter_state;
  if (st == NULL || st->closed) return UV_EPIPE;
  if (st->rstate != 0 || st->rhead.len) return stream_write(io, data, len);
  if (m->status >= 100 && m->status < 200) return 0;
  if (submit_made(st, m, data, head_len) < 0) return UV_EPROTO;
  if (len > head_len && st->rstate == 1) body_bytes(st, data + head_len, len - head_len);
  stream_took(st, io);
  return 0;
}

ssize_t tether__h2_stream_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                               nghttp2_data_source *src, void *user) {
  (void)s;
  (void)id;
  (void)user;
  tether__h2_stream *st = src->ptr;
  size_t avail = st->out.len - st->out_off;
  size_t n = avail < len ? avail : len;
  if (n) memcpy(buf, st->out.data + st->out_off, n);
  st->out_off += n;
  if (st->out_off == st->out.len) st->out.len = st->out_off = 0;
  if (n) st->notify = 1;
  if (st->out.len == st->out_off && st->out_eof) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
  } else if (n == 0) {
    st->deferred = 1;
    return NGHTTP2_ERR_DEFERRED;
  }
  return (ssize_t)n;
}

void tether__h2_stream_notify(tether__h2 *h) {
  for (tether__h2_stream *st = h->streams; st; st = st->next) {
    if (!st->notify) continue;
    st->notify = 0;
    if (st->c == NULL || st->c->closing) continue;
    st->c->io.pending = st->out.len - st->out_off;
    st->c->io.on_written(&st->c->io, 0);
    if (h->closed) return;
  }
}

/* ---- the transport filter ---- */

static void stream_read(tether__io *io, ssize_t nread, char *data) {
  (void)io;
  (void)nread;
  (void)data; /* no socket under it */
}

static void stream_drain(tether__io *io) {
  tether__h2_stream *st = io->filter_state;
  if (st && !st->closed) tether__h2_stream_deliver(st);
}

static int stream_shutdown(tether__io *io, uv_shutdown_t *req) {
  (void)io;
  (void)req;
  return UV_ENOTCONN; /* the client closes at once: a stream has no lingering close */
}

/* The client closes: an answer it finished ends the stream; one cut short resets it. */
static void stream_free(tether__io *io) {
  tether__h2_stream *st = io->filter_state;
  tether__client *c = io->owner;
  io->filter_state = NULL;
  if (st == NULL) return;
  st->c = NULL;
  if (st->closed) return;
  if (st->rstate == 1 && st->framing == TETHER__H1_UNTIL_CLOSE && c->resp_done) st->rstate = 2, st->out_eof = 1;
  if (st->rstate != 2 || !st->submitted)
    nghttp2_submit_rst_stream(st->h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
  else if (st->deferred)
    nghttp2_session_resume_data(st->h->s, st->id), st->deferred = 0;
  if (st->unconsumed) nghttp2_session_consume(st->h->s, st->id, st->unconsumed), st->unconsumed = 0;
  tether__h2_schedule(st->h);
}

const tether__io_filter tether__h2_stream_filter = {.read = stream_read,
                                                    .write = stream_write,
                                                    .drain = stream_drain,
                                                    .shutdown = stream_shutdown,
                                                    .free = stream_free,
                                                    .head = stream_head};
