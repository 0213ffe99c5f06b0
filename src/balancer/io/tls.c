/* TLS over the TCP transport: raw bytes go into OpenSSL's read BIO, plaintext comes out to the owner; the
 * owner's writes go through SSL_write, and what OpenSSL puts in its write BIO goes to the socket. The read
 * buffer is lent by the worker: ciphertext is copied into the BIO, so the same buffer takes the plaintext. */
#include "tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../lib/util.h"

typedef struct tls_state {
  SSL *ssl;
  BIO *rbio, *wbio; /* owned by ssl */
  int handshaken;
  tether__tls_handshake_cb done; /* a client connection: told once how its handshake ended */
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

/* Why a client handshake failed, in OpenSSL's words: the certificate check's, or the error's reason. */
static void failure_reason(tls_state *t, int e, char *why, size_t cap) {
  long v = SSL_get_verify_result(t->ssl);
  unsigned long code = ERR_peek_last_error();
  if (v != X509_V_OK)
    snprintf(why, cap, "certificate verify failed: %s", X509_verify_cert_error_string(v));
  else if (code && ERR_reason_error_string(code))
    snprintf(why, cap, "%s", ERR_reason_error_string(code));
  else if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN)
    snprintf(why, cap, "the server closed the connection during the handshake");
  else
    snprintf(why, cap, "SSL error %d", e);
}

/* A client's handshake is over: its owner hears how (and may close the connection in the callback). */
static void handshake_over(tether__io *io, tls_state *t, int status, const char *why) {
  tether__tls_handshake_cb done = t->done;
  t->done = NULL;
  done(io, status, why);
}

/* Drives the handshake; 1 once it is done, 0 while it waits for the peer, -1 when it failed (told). */
static int handshake(tether__io *io, tls_state *t) {
  int r = SSL_do_handshake(t->ssl);
  if (r != 1) {
    int e = SSL_get_error(t->ssl, r);
    flush(io, t); /* the handshake's next flight, or an alert */
    if (e == SSL_ERROR_WANT_READ) {
      ERR_clear_error();
      return 0;
    }
    if (t->done) {
      char why[256];
      failure_reason(t, e, why, sizeof(why));
      ERR_clear_error();
      handshake_over(io, t, UV_EPROTO, why);
    } else {
      ERR_clear_error();
      io->on_read(io, UV_EPROTO, NULL);
    }
    return -1;
  }
  t->handshaken = 1;
  if (t->done) handshake_over(io, t, 0, NULL);
  return io->closing ? -1 : 1;
}

/* Plaintext out of OpenSSL to the owner, while the owner reads. */
static void deliver(tether__io *io, tls_state *t) {
  if (!t->handshaken && handshake(io, t) <= 0) return;
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
  if (nread < 0 && t->done) {
    handshake_over(io, t, (int)nread,
                   nread == UV_EOF ? "the server closed the connection during the handshake" : uv_strerror((int)nread));
    return;
  }
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

/* The filter over ssl (taken over, freed on failure). */
static tls_state *attach(tether__io *io, SSL *ssl) {
  tls_state *t = tether__calloc(1, sizeof(*t));
  t->ssl = ssl;
  t->rbio = BIO_new(BIO_s_mem());
  t->wbio = BIO_new(BIO_s_mem());
  if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
    BIO_free(t->rbio);
    BIO_free(t->wbio);
    SSL_free(t->ssl);
    free(t);
    ERR_clear_error();
    return NULL;
  }
  BIO_set_mem_eof_return(t->rbio, -1); /* empty means "more to come", not the end */
  SSL_set_bio(t->ssl, t->rbio, t->wbio);
  io->filter = &tls_filter;
  io->filter_state = t;
  return t;
}

int tether__tls_accept(tether__io *io, void *ctx) {
  tls_state *t = attach(io, SSL_new(ctx));
  if (t == NULL) return UV_ENOMEM;
  SSL_set_accept_state(t->ssl);
  return 0;
}

int tether__tls_connect(tether__io *io, void *ssl, tether__tls_handshake_cb done) {
  tls_state *t = attach(io, ssl);
  if (t == NULL) return UV_ENOMEM;
  SSL_set_connect_state(t->ssl);
  int r = SSL_do_handshake(t->ssl); /* the ClientHello */
  if (r != 1 && SSL_get_error(t->ssl, r) != SSL_ERROR_WANT_READ) {
    ERR_clear_error();
    return UV_EPROTO;
  }
  t->done = done;
  return flush(io, t);
}
