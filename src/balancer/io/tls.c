/* TLS over the TCP transport: raw bytes go into OpenSSL's read BIO, plaintext comes out to the owner; the
 * owner's writes go through SSL_write, and what OpenSSL puts in its write BIO goes to the socket. The read
 * buffer is lent by the worker: ciphertext is copied into the BIO, so the same buffer takes the plaintext. */
#include "tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>

#include "../../lib/util.h"

typedef struct tls_state {
  SSL *ssl;
  BIO *rbio, *wbio; /* owned by ssl */
  int handshaken;
  tether__tls_sni sni; /* the SSL's app data: tls/context.c's servername callback calls it */
} tls_state;

/* What OpenSSL wrote (handshake records, application data, alerts, tickets) to the socket. */
static int flush(tether__io *io, tls_state *t) {
  char *p;
  long n = BIO_get_mem_data(t->wbio, &p);
  if (n <= 0) return 0;
  int rc = tether__io_write_raw(io, p, (size_t)n);
  (void)BIO_reset(t->wbio);
  return rc;
}

/* Between requests a connection keeps no buffer: memory BIOs keep the capacity their biggest message (the
 * handshake's certificates) gave them, so empty ones are replaced by fresh ones (OpenSSL frees the old). */
static void release_buffers(tls_state *t) {
  if (BIO_ctrl_pending(t->rbio) == 0) {
    BIO *b = BIO_new(BIO_s_mem());
    if (b) {
      BIO_set_mem_eof_return(b, -1);
      SSL_set0_rbio(t->ssl, b);
      t->rbio = b;
    }
  }
  if (BIO_ctrl_pending(t->wbio) == 0) {
    BIO *b = BIO_new(BIO_s_mem());
    if (b) {
      SSL_set0_wbio(t->ssl, b);
      t->wbio = b;
    }
  }
}

/* Plaintext out of OpenSSL to the owner, while the owner reads. */
static void deliver(tether__io *io, tls_state *t) {
  if (!t->handshaken) {
    int r = SSL_do_handshake(t->ssl);
    if (r != 1) {
      int e = SSL_get_error(t->ssl, r);
      flush(io, t); /* the handshake's next flight, or an alert */
      ERR_clear_error();
      if (e != SSL_ERROR_WANT_READ) io->on_read(io, UV_EPROTO, NULL);
      return;
    }
    t->handshaken = 1;
  }
  while (!io->closing && !io->paused) {
    int n = SSL_read(t->ssl, io->rbuf, (int)io->rbuf_len);
    if (n > 0) {
      io->on_read(io, n, io->rbuf);
      continue;
    }
    int e = SSL_get_error(t->ssl, n);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ) break;
    io->on_read(io, e == SSL_ERROR_ZERO_RETURN ? UV_EOF : UV_EPROTO, NULL); /* close_notify, or broken */
    return;
  }
  if (io->closing) return;
  flush(io, t); /* tickets, key updates */
  release_buffers(t);
}

static void tls_read(tether__io *io, ssize_t nread, char *data) {
  tls_state *t = io->filter_state;
  if (nread < 0) {
    io->on_read(io, nread, NULL);
    return;
  }
  if (BIO_write(t->rbio, data, (int)nread) != (int)nread) {
    io->on_read(io, UV_ENOMEM, NULL);
    return;
  }
  deliver(io, t);
}

static void tls_drain(tether__io *io) {
  tls_state *t = io->filter_state;
  if (t->handshaken && (SSL_pending(t->ssl) > 0 || BIO_ctrl_pending(t->rbio) > 0)) deliver(io, t);
}

static int tls_write(tether__io *io, const char *data, size_t len) {
  tls_state *t = io->filter_state;
  if (len == 0) return 0;
  if (!t->handshaken) return UV_EPROTO; /* answers follow requests, and requests follow the handshake */
  size_t done = 0;
  while (done < len) {
    int n = SSL_write(t->ssl, data + done, (int)(len - done > 1 << 30 ? 1 << 30 : len - done));
    if (n <= 0) {
      ERR_clear_error();
      return UV_EPROTO;
    }
    done += (size_t)n;
  }
  return flush(io, t);
}

static int tls_shutdown(tether__io *io, uv_shutdown_t *req) {
  tls_state *t = io->filter_state;
  if (t->handshaken) {
    SSL_shutdown(t->ssl); /* close_notify */
    ERR_clear_error();
    flush(io, t);
  }
  return tether__io_shutdown_raw(io, req);
}

static void tls_free(tether__io *io) {
  tls_state *t = io->filter_state;
  if (t->handshaken && !(SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN)) {
    SSL_shutdown(t->ssl); /* close_notify, so that the peer sees an end and not a truncation */
    ERR_clear_error();
    flush(io, t);
  }
  SSL_free(t->ssl);
  free(t);
  io->filter_state = NULL;
}

static const tether__io_filter tls_filter = {
    .read = tls_read, .write = tls_write, .drain = tls_drain, .shutdown = tls_shutdown, .free = tls_free};

int tether__tls_accept(tether__io *io, void *ctx) {
  tls_state *t = tether__calloc(1, sizeof(*t));
  t->ssl = SSL_new(ctx);
  t->rbio = BIO_new(BIO_s_mem());
  t->wbio = BIO_new(BIO_s_mem());
  if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
    BIO_free(t->rbio);
    BIO_free(t->wbio);
    SSL_free(t->ssl);
    free(t);
    ERR_clear_error();
    return UV_ENOMEM;
  }
  BIO_set_mem_eof_return(t->rbio, -1); /* empty means "more to come", not the end */
  SSL_set_bio(t->ssl, t->rbio, t->wbio);
  SSL_set_app_data(t->ssl, &t->sni);
  SSL_set_accept_state(t->ssl);
  io->filter = &tls_filter;
  io->filter_state = t;
  return 0;
}

void tether__tls_on_sni(tether__io *io, tether__tls_pick_fn pick, void *owner) {
  tls_state *t = io->filter == &tls_filter ? io->filter_state : NULL;
  if (t == NULL) return;
  t->sni.pick = pick;
  t->sni.owner = owner;
}

const char *tether__tls_servername(const tether__io *io) {
  const tls_state *t = io->filter == &tls_filter ? io->filter_state : NULL;
  return t ? SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}
