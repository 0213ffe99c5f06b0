/* libFuzzer harness for TLS 1.3's record layer (io/tls_record.c): bytes a client sends after the handshake, fed
 * in chunks to the filter's read as libuv would (into the worker's read buffer, which the record layer opens in
 * place). The layer below the filter (io/tcp.c) is replaced by counters. Invariants: no crash, no leak, the owner
 * hears at most a record's plaintext at a time (never nread == 0) and nothing after the end; in sealed mode the
 * plaintext heard is exactly what was sealed, in order, and every of it when the connection did not end.
 *
 * The first input byte shapes the run: bits 0-1 the suite (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305), bits
 * 2-5 the chunk size (1..16, times 1024 when bit 6 is set), bit 7 sealed mode. Raw mode feeds the rest as it is
 * (headers, lengths, tags: what an attacker without the key can send). Sealed mode reads frames and seals each
 * with the client's key before feeding it: a frame is [kind][length, 2 bytes LE][content], kind's bits 0-1 the
 * inner type (application data, handshake, alert, or bits 2-6 as a raw type), bit 7: the owner pauses after this
 * record's plaintext (it resumes before the next chunk), bits 4-6 zero padding; a valid KeyUpdate frame updates
 * the client's key too. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/balancer/io/tls_record.c"
#include "raw_io.h"

typedef struct owner {
  int ended;
  const char *want; /* sealed mode: the plaintext sealed so far */
  size_t want_len, heard;
  int pause_next;
} owner;

static void on_read(tether__io *io, ssize_t nread, const char *data) {
  owner *o = io->owner;
  if (nread == 0 || o->ended || io->closing) abort();
  if (nread < 0) {
    o->ended = 1;
    io->closing = 1; /* the owner closes: no callback anymore */
    return;
  }
  if ((size_t)nread > MAX_PLAIN) abort();
  if (o->want) {
    if (o->heard + (size_t)nread > o->want_len || memcmp(o->want + o->heard, data, (size_t)nread) != 0) abort();
  }
  o->heard += (size_t)nread;
  io->filter->write(io, data, (size_t)nread); /* echo, as an answer would go out */
  if (o->pause_next) io->paused = 1;
}

static void on_written(tether__io *io, int status) {
  (void)io;
  (void)status;
}

static void feed_bytes(tether__io *io, const char *p, size_t n, size_t chunk) {
  for (size_t off = 0; off < n && !io->closing; off += chunk) {
    if (io->paused) { /* the owner resumes, as tether__io_resume does */
      io->paused = 0;
      io->filter->drain(io);
      if (io->closing) return;
    }
    size_t k = n - off < chunk ? n - off : chunk;
    if (k > io->rbuf_len) k = io->rbuf_len;
    memcpy(io->rbuf, p + off, k);
    io->filter->read(io, (ssize_t)k, io->rbuf);
    if (k < chunk) off -= chunk - k;
  }
}

/* Sealed mode: each frame becomes a record under the client's key (cl's tx: the server's rx). */
static void sealed(tether__io *io, owner *o, rec *cl, const uint8_t *data, size_t size, size_t chunk) {
  char *want = malloc(size + 1), *out = malloc(HEADER + MAX_CIPHER + 64), plain[MAX_PLAIN + 300];
  o->want = want;
  size_t off = 0;
  while (off + 3 <= size && !io->closing) {
    uint8_t kind = data[off];
    size_t len = (size_t)data[off + 1] | (size_t)data[off + 2] << 8, pad = (kind >> 4) & 7;
    off += 3;
    if (len > size - off) len = size - off;
    if (len > MAX_PLAIN + 8) len = MAX_PLAIN + 8; /* a little past a record: record_overflow */
    static const int types[] = {TYPE_DATA, TYPE_HANDSHAKE, TYPE_ALERT};
    int type = (kind & 3) < 3 ? types[kind & 3] : (kind >> 2) & 0x1f;
    if (type == TYPE_ALERT || type == TYPE_HANDSHAKE || type == TYPE_DATA) type += 32; /* another, unexpected */
    if (type == 0) len = 0;                                                            /* all padding: no type at all */
    memcpy(plain, data + off, len);
    plain[len] = (char)type;
    memset(plain + len + 1, 0, pad);
    off += len;
    /* seal() appends an inner type: 0 here, one byte more of padding after ours */
    long n = seal(cl, 0, plain, len + 1 + pad, out);
    if (n < 0) abort();
    if (type == TYPE_DATA && len <= MAX_PLAIN) {
      memcpy(want + o->want_len, plain, len);
      o->want_len += len;
    }
    if (type == TYPE_HANDSHAKE && len == 5 && memcmp(plain, "\x18\x00\x00\x01", 4) == 0 && (uint8_t)plain[4] <= 1)
      dir_update(&suites[cl->suite], &cl->tx);
    o->pause_next = kind >> 7;
    feed_bytes(io, out, (size_t)n, chunk);
  }
  while (!io->closing && io->paused) { /* each resume hands on a record at least */
    io->paused = 0;
    io->filter->drain(io);
  }
  /* every record was whole: all of their plaintext came, unless the connection ended */
  if (!io->closing && o->heard != o->want_len) abort();
  free(out);
  free(want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  uint8_t shape = data[0];
  data++, size--;
  static const uint16_t ids[] = {0x1301, 0x1302, 0x1303, 0x1301};
  size_t chunk = (size_t)((shape >> 2) & 0xf) + 1;
  if (shape & 0x40) chunk *= 1024;
  tether__tlsrec_keys k = {.suite = ids[shape & 3], .servername = "fuzz"};
  if (!tether__tlsrec_supported(k.suite)) abort();
  k.secret_len = suites[suite_index(k.suite)].hash_len;
  for (size_t i = 0; i < k.secret_len; i++) {
    k.rx_secret[i] = (unsigned char)i;
    k.tx_secret[i] = (unsigned char)(0xa0 + i);
  }

  owner o = {0};
  tether__io io;
  memset(&io, 0, sizeof(io));
  io.owner = &o;
  io.rbuf = malloc(65536); /* the worker's read buffer's size */
  io.rbuf_len = 65536;
  io.on_read = on_read;
  io.on_written = on_written;
  if (tether__tlsrec_attach(&io, &k, NULL, 0) != 0 || !tether__tlsrec_on(&io)) abort();
  if (strcmp(tether__tlsrec_servername(&io), "fuzz") != 0) abort();

  if (shape & 0x80) {
    rec *cl = tether__calloc(1, sizeof(*cl) + 1); /* the client: its tx is the server's rx */
    cl->suite = (unsigned char)suite_index(k.suite);
    memcpy(cl->tx.secret, k.rx_secret, k.secret_len);
    if (dir_keys(&suites[cl->suite], &cl->tx) < 0) abort();
    sealed(&io, &o, cl, data, size, chunk);
    forget(&cl->tx); /* its cipher context leaves the thread's cache, as a connection's does when it ends:
                      * an input frees all it allocated, so libFuzzer runs no leak scan after each */
    free(cl);
  } else {
    feed_bytes(&io, (const char *)data, size, chunk);
  }
  if (!io.closing) {
    uv_shutdown_t req;
    io.filter->shutdown(&io, &req);
    io.filter->read(&io, UV_EOF, NULL);
    if (!o.ended) abort(); /* the end reaches the owner */
  }
  io.filter->free(&io);
  if (io.filter_state != NULL) abort();
  free(io.rbuf);
  return 0;
}
