/* Raw HTTP/2 frames for the balancer's HTTP/2 tests (see h2_raw.h). */
#include "h2_raw.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "balancer.h"

int send_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
    if (k <= 0) return -1;
    c += k;
    n -= (size_t)k;
  }
  return 0;
}

int frame(raw *r, int type, int flags, uint32_t id, const void *p, size_t n) {
  uint8_t h[9] = {(uint8_t)(n >> 16),         (uint8_t)(n >> 8),   (uint8_t)n,         (uint8_t)type, (uint8_t)flags,
                  (uint8_t)(id >> 24 & 0x7f), (uint8_t)(id >> 16), (uint8_t)(id >> 8), (uint8_t)id};
  if (send_all(r->fd, h, 9) < 0) return -1;
  return n ? send_all(r->fd, p, n) : 0;
}

/* Opens a connection with the preface and a SETTINGS frame (pairs of id, value). */
int raw_open(raw *r, int port, const uint32_t *settings, int npairs) {
  memset(r, 0, sizeof(*r));
  r->fd = tb_connect(port, 5000);
  r->conn_win = r->init_win = 65535;
  if (r->fd < 0 || nghttp2_hd_inflate_new(&r->inf) != 0) return -1;
  if (send_all(r->fd, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24) < 0) return -1;
  uint8_t s[60];
  for (int i = 0; i < npairs; i++) {
    uint8_t *e = s + 6 * i;
    e[0] = (uint8_t)(settings[2 * i] >> 8), e[1] = (uint8_t)settings[2 * i];
    for (int k = 0; k < 4; k++) e[2 + k] = (uint8_t)(settings[2 * i + 1] >> (24 - 8 * k));
  }
  return frame(r, F_SETTINGS, 0, 0, s, (size_t)npairs * 6);
}

void raw_close(raw *r) {
  if (r->fd >= 0) close(r->fd);
  nghttp2_hd_inflate_del(r->inf);
}

/* HPACK: an integer with an n-bit prefix; a literal field without indexing (new name, no Huffman). */
size_t hp_int(uint8_t *o, uint8_t first, int bits, size_t v) {
  size_t max = (1u << bits) - 1, n = 0;
  if (v < max) {
    o[n++] = (uint8_t)(first | v);
    return n;
  }
  o[n++] = (uint8_t)(first | max);
  v -= max;
  while (v >= 128) {
    o[n++] = (uint8_t)(v % 128 + 128);
    v /= 128;
  }
  o[n++] = (uint8_t)v;
  return n;
}

size_t hp_lit(uint8_t *o, uint8_t first, const char *name, size_t nn, const char *value, size_t vn) {
  size_t n = 0;
  o[n++] = first; /* 0x00 without indexing, 0x40 with incremental indexing */
  n += hp_int(o + n, 0, 7, nn);
  memcpy(o + n, name, nn);
  n += nn;
  n += hp_int(o + n, 0, 7, vn);
  memcpy(o + n, value, vn);
  return n + vn;
}

/* A header block from "name", "value" pairs (NULL-terminated). */
size_t block(uint8_t *o, const char *const *kv) {
  size_t n = 0;
  for (int i = 0; kv[i]; i += 2) n += hp_lit(o + n, 0, kv[i], strlen(kv[i]), kv[i + 1], strlen(kv[i + 1]));
  return n;
}

/* The next frame (its payload points into r->buf until the next call); -1 on EOF or timeout. */
int next_frame(raw *r, frm *f) {
  if (r->consumed) {
    memmove(r->buf, r->buf + r->consumed, r->len - r->consumed);
    r->len -= r->consumed;
    r->consumed = 0;
  }
  for (;;) {
    if (r->len >= 9) {
      size_t n = (size_t)r->buf[0] << 16 | (size_t)r->buf[1] << 8 | r->buf[2];
      if (r->len >= 9 + n) {
        f->type = r->buf[3];
        f->flags = r->buf[4];
        f->id = ((uint32_t)r->buf[5] & 0x7f) << 24 | (uint32_t)r->buf[6] << 16 | (uint32_t)r->buf[7] << 8 | r->buf[8];
        f->p = r->buf + 9;
        f->n = n;
        r->consumed = 9 + n;
        return 0;
      }
    }
    if (r->len == sizeof(r->buf)) return -1;
    ssize_t k = recv(r->fd, r->buf + r->len, sizeof(r->buf) - r->len, 0);
    if (k <= 0) return -1;
    r->len += (size_t)k;
  }
}

int headers_status(raw *r, const frm *f) {
  size_t pad = f->flags & 8 ? 1 + f->p[0] : 0, off = (f->flags & 8 ? 1 : 0) + (f->flags & 0x20 ? 5 : 0);
  const uint8_t *p = f->p + off;
  size_t n = f->n - off - (pad ? pad - 1 : 0);
  int status = 0;
  while (n) {
    nghttp2_nv nv;
    int fl = 0;
    ssize_t k = nghttp2_hd_inflate_hd2(r->inf, &nv, &fl, p, n, 1);
    if (k < 0) return status;
    p += k;
    n -= (size_t)k;
    if ((fl & NGHTTP2_HD_INFLATE_EMIT) && nv.namelen == 7 && memcmp(nv.name, ":status", 7) == 0)
      status = atoi((const char *)nv.value);
    if (fl & NGHTTP2_HD_INFLATE_FINAL) nghttp2_hd_inflate_end_headers(r->inf);
    if (k == 0 && !(fl & NGHTTP2_HD_INFLATE_EMIT)) return status;
  }
  return status;
}

void wait_stream(raw *r, uint32_t id, outcome *o) {
  memset(o, 0, sizeof(*o));
  frm f;
  while (next_frame(r, &f) == 0) {
    if (f.type == F_SETTINGS && !(f.flags & 1)) frame(r, F_SETTINGS, 1, 0, NULL, 0);
    if (f.type == F_HEADERS) {
      int st = headers_status(r, &f);
      if (f.id == id && st) o->status = st;
    }
    if (f.type == F_DATA && f.id == id && o->len + f.n < sizeof(o->body)) {
      memcpy(o->body + o->len, f.p, f.n);
      o->len += f.n;
      o->body[o->len] = '\0';
    }
    if (f.type == F_DATA && f.n) { /* the windows open again */
      uint8_t inc[4] = {(uint8_t)(f.n >> 24), (uint8_t)(f.n >> 16), (uint8_t)(f.n >> 8), (uint8_t)f.n};
      frame(r, F_WINDOW, 0, 0, inc, 4);
      frame(r, F_WINDOW, 0, f.id, inc, 4);
    }
    if (f.type == F_RST && f.id == id) {
      o->rst = 1 + (f.p[0] << 24 | f.p[1] << 16 | f.p[2] << 8 | f.p[3]);
      return;
    }
    if (f.type == F_GOAWAY) { /* the stream goes on when GOAWAY's last stream is it or after it */
      o->goaway = 1 + (f.p[4] << 24 | f.p[5] << 16 | f.p[6] << 8 | f.p[7]);
      o->last = (uint32_t)(f.p[0] << 24 | f.p[1] << 16 | f.p[2] << 8 | f.p[3]);
      if (o->last < id) return;
    }
    if ((f.type == F_HEADERS || f.type == F_DATA) && f.id == id && (f.flags & END_STREAM)) return;
  }
  o->closed = 1;
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A frame met while sending: the windows it changes; 1 + code for a RST_STREAM of id, -1 for a GOAWAY. */
static int window_frame(raw *r, uint32_t id, const frm *f) {
  if (f->type == F_SETTINGS && !(f->flags & 1)) {
    for (size_t i = 0; i + 6 <= f->n; i += 6)
      if ((f->p[i] << 8 | f->p[i + 1]) == NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE) {
        uint32_t v = be32(f->p + i + 2);
        r->stream_win += (int64_t)v - r->init_win;
        r->init_win = v;
      }
    frame(r, F_SETTINGS, 1, 0, NULL, 0);
  }
  if (f->type == F_WINDOW && f->id == 0) r->conn_win += be32(f->p) & 0x7fffffff;
  if (f->type == F_WINDOW && f->id == id) r->stream_win += be32(f->p) & 0x7fffffff;
  if (f->type == F_RST && f->id == id) return 1 + (int)be32(f->p);
  return f->type == F_GOAWAY ? -1 : 0;
}

int send_data(raw *r, uint32_t id, const uint8_t *p, size_t n, int end) {
  r->stream_win = r->init_win;
  do {
    frm f;
    while (n && (r->conn_win <= 0 || r->stream_win <= 0)) {
      if (next_frame(r, &f) < 0) return -1;
      int rc = window_frame(r, id, &f);
      if (rc) return rc;
    }
    size_t k = n < 16384 ? n : 16384;
    if ((int64_t)k > r->conn_win) k = (size_t)r->conn_win;
    if ((int64_t)k > r->stream_win) k = (size_t)r->stream_win;
    if (frame(r, F_DATA, end && k == n ? END_STREAM : 0, id, p, k) < 0) return -1;
    r->conn_win -= (int64_t)k;
    r->stream_win -= (int64_t)k;
    p += k;
    n -= k;
  } while (n);
  return 0;
}
