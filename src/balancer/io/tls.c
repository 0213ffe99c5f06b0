/* TLS over the TCP transport: raw bytes go into OpenSSL's read BIO, plaintext comes out to the owner; the
 * owner's writes go through SSL_write, and what OpenSSL puts in its write BIO goes to the socket. The read
 * buffer is lent by the worker: ciphertext is copied into the BIO, so the same buffer takes the plaintext.
 * A TLS 1.3 server connection leaves OpenSSL once its handshake is done: io/tls_record.c takes its records
 * over (handover()). */
#include "tls.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/util.h"
#include "tls_record.h"

typedef struct tls_state {
  SSL *ssl;
  BIO *rbio, *wbio; /* owned by ssl; NULL while idle (release_buffers) */
  int handshaken;
  tether__tls_handshake_cb done; /* a client connection: told once how its handshake ended */
  int delivering;                /* in deliver(): the BIOs stay */
  tether__tls_sni sni;           /* the SSL's app data: tls/context.c's servername callback calls it */
  /* A TLS 1.3 server connection's hand-over to the record layer (io/tls_record.c): the application traffic
   * secrets from the key log, and the records each way since the Finished messages (the message callback). */
  unsigned char rx_secret[TETHER__TLSREC_SECRET_MAX], tx_secret[TETHER__TLSREC_SECRET_MAX];
  unsigned char secret_len, secrets; /* secrets: bit 0 the client's, bit 1 the server's */
  unsigned char tx_fin, rx_fin;      /* our Finished written, the client's read */
  unsigned tx_records, rx_records;   /* records after them */
} tls_state;

/* Memory BIOs that idle connections gave back, kept per thread (a connection's OpenSSL calls all run on its
 * worker's loop) for the next connection with bytes to move: a request costs no BIO allocation (a pair
 * costs about a microsecond to make and free), and an idle connection holds none. */
#define SPARE_PAIRS 16
#define SPARE_MAX_CAP 16384 /* a BIO that grew past this (a big answer) is freed, not kept */

typedef struct spare_bios {
  BIO *bio[2 * SPARE_PAIRS]; /* read, write, read, write... */
  int n;
} spare_bios;

static pthread_key_t spare_key;
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;

static void spare_free(void *p) {
  spare_bios *sp = p;
  for (int i = 0; i < sp->n; i++) BIO_free(sp->bio[i]);
  free(sp);
}

static void spare_key_make(void) { pthread_key_create(&spare_key, spare_free); }

static spare_bios *spares(void) {
  pthread_once(&spare_once, spare_key_make);
  spare_bios *sp = pthread_getspecific(spare_key);
  if (sp == NULL) {
    sp = tether__calloc(1, sizeof(*sp));
    pthread_setspecific(spare_key, sp);
  }
  return sp;
}

static int small_bio(BIO *b) {
  BUF_MEM *m = NULL;
  return BIO_get_mem_ptr(b, &m) == 1 && m && m->max <= SPARE_MAX_CAP;
}

/* What OpenSSL wrote (handshake records, application data, alerts, tickets) to the socket. */
static int flush(tether__io *io, tls_state *t) {
  char *p;
  long n = BIO_get_mem_data(t->wbio, &p);
  if (n <= 0) return 0;
  int rc = tether__io_write_raw(io, p, (size_t)n);
  (void)BIO_reset(t->wbio);
  return rc;
}

/* Between requests a connection keeps no buffer and no BIO (SSL_MODE_RELEASE_BUFFERS frees OpenSSL's own):
 * OpenSSL uses the BIOs only within its calls, so once both are empty they go to the thread's spares (or are
 * freed, when the spares are full or a BIO grew big), and bios() attaches a pair again when bytes come. */
static void release_buffers(tls_state *t) {
  if (t->rbio == NULL || !t->handshaken || t->delivering || BIO_ctrl_pending(t->rbio) != 0 ||
      BIO_ctrl_pending(t->wbio) != 0)
    return;
  spare_bios *sp = spares();
  if (sp->n < 2 * SPARE_PAIRS && small_bio(t->rbio) && small_bio(t->wbio) && BIO_up_ref(t->rbio) == 1) {
    if (BIO_up_ref(t->wbio) != 1) {
      BIO_free(t->rbio);
    } else {
      (void)BIO_reset(t->rbio);
      (void)BIO_reset(t->wbio);
      sp->bio[sp->n++] = t->rbio;
      sp->bio[sp->n++] = t->wbio;
    }
  }
  SSL_set_bio(t->ssl, NULL, NULL); /* frees them, or gives the pool its references */
  t->rbio = t->wbio = NULL;
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

/* The BIOs, back after release_buffers: spare ones, or new. 0, or UV_ENOMEM. */
static int bios(tls_state *t) {
  if (t->rbio) return 0;
  spare_bios *sp = spares();
  BIO *r, *w;
  if (sp->n >= 2) {
    w = sp->bio[--sp->n];
    r = sp->bio[--sp->n];
  } else {
    r = BIO_new(BIO_s_mem());
    w = BIO_new(BIO_s_mem());
    if (r == NULL || w == NULL) {
      BIO_free(r);
      BIO_free(w);
      ERR_clear_error();
      return UV_ENOMEM;
    }
    BIO_set_mem_eof_return(r, -1); /* empty means "more to come", not the end */
  }
  SSL_set_bio(t->ssl, r, w);
  t->rbio = r;
  t->wbio = w;
  return 0;
}

/* Plaintext out of OpenSSL to the owner, while the owner reads. */
static void deliver_records(tether__io *io, tls_state *t) {
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
}

/* ---- TLS 1.3's record layer takes over (io/tls_record.c) ---- */

/* TB_TLS_RECORD=openssl keeps every connection on OpenSSL (for comparisons). */
static int record_layer;
static pthread_once_t record_once = PTHREAD_ONCE_INIT;

static void record_layer_read(void) {
  const char *e = getenv("TB_TLS_RECORD");
  record_layer = !(e && strcmp(e, "openssl") == 0);
}

static int record_layer_on(void) {
  pthread_once(&record_once, record_layer_read);
  return record_layer;
}

static int unhex(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* The key log's application traffic secrets ("CLIENT_TRAFFIC_SECRET_0 <client random> <secret>", in hex). */
static void on_secret(tether__tls_sni *sni, const char *line) {
  tls_state *t = (tls_state *)(void *)((char *)sni - offsetof(tls_state, sni));
  int which = strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0   ? 0
              : strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0 ? 1
                                                                   : -1;
  const char *hex = strrchr(line, ' ');
  if (which < 0 || hex == NULL) return;
  hex++;
  size_t n = strlen(hex) / 2;
  unsigned char *out = which ? t->tx_secret : t->rx_secret;
  if ((n != 32 && n != 48) || hex[2 * n] != '\0' || (t->secret_len && t->secret_len != n)) return;
  for (size_t i = 0; i < n; i++) {
    int hi = unhex(hex[2 * i]), lo = unhex(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return;
    out[i] = (unsigned char)(hi << 4 | lo);
  }
  t->secret_len = (unsigned char)n;
  t->secrets |= (unsigned char)(1 << which);
}

/* Counts the records each way after the Finished messages: ours carry the session tickets, under the key the
 * record layer goes on with; the client's must be none (OpenSSL reads one record at a time, so what follows its
 * Finished is still in the read BIO). */
static void on_message(int write_p, int version, int type, const void *buf, size_t len, SSL *ssl, void *arg) {
  (void)version, (void)ssl;
  tls_state *t = arg;
  const unsigned char *p = buf;
  if (type == SSL3_RT_HANDSHAKE && len > 0 && p[0] == SSL3_MT_FINISHED) {
    if (write_p) {
      t->tx_fin = 1;
      t->tx_records = 0;
    } else {
      t->rx_fin = 1;
      t->rx_records = 0;
    }
  } else if (type == SSL3_RT_HEADER) {
    if (write_p && t->tx_fin) t->tx_records++;
    if (!write_p && t->rx_fin) t->rx_records++;
  }
}

/* The connection stays on OpenSSL: the secrets kept for the hand-over go, and no more are kept. */
static void handover_declined(tls_state *t) {
  OPENSSL_cleanse(t->rx_secret, sizeof(t->rx_secret));
  OPENSSL_cleanse(t->tx_secret, sizeof(t->tx_secret));
  t->secret_len = t->secrets = 0;
  t->sni.secret = NULL;
  SSL_set_msg_callback(t->ssl, NULL);
}

/* A TLS 1.3 server connection whose handshake is done goes on over the record layer with the traffic secrets,
 * and its SSL is freed. 1 when it did (t is freed: io's filter is the record layer's), 0 when it stays here (TLS
 * 1.2, a suite the record layer lacks, or anything unexpected). */
static int handover(tether__io *io, tls_state *t) {
  const SSL_CIPHER *c = SSL_get_current_cipher(t->ssl);
  tether__tlsrec_keys k = {.suite = c ? SSL_CIPHER_get_protocol_id(c) : 0};
  if (!SSL_is_server(t->ssl) || SSL_version(t->ssl) != TLS1_3_VERSION || t->secrets != 3 || !t->tx_fin || !t->rx_fin ||
      t->rx_records != 0 || SSL_pending(t->ssl) > 0 || SSL_has_pending(t->ssl) || !tether__tlsrec_supported(k.suite)) {
    handover_declined(t);
    return 0;
  }
  k.secret_len = t->secret_len;
  memcpy(k.rx_secret, t->rx_secret, sizeof(k.rx_secret));
  memcpy(k.tx_secret, t->tx_secret, sizeof(k.tx_secret));
  k.rx_seq = t->rx_records;
  k.tx_seq = t->tx_records;
  k.servername = SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
  k.alpn_h2 = tether__tls_alpn_h2(io);
  flush(io, t); /* the session tickets */
  char *rest = NULL;
  long n = BIO_get_mem_data(t->rbio, &rest);
  int rc = tether__tlsrec_attach(io, &k, rest, n > 0 ? (size_t)n : 0);
  OPENSSL_cleanse(&k, sizeof(k));
  if (rc < 0) {
    handover_declined(t);
    return 0;
  }
  tether__log(TETHER_LOG_DEBUG, "tls: %s on the record layer, %u ticket records", SSL_CIPHER_get_name(c),
              t->tx_records);
  (void)BIO_reset(t->rbio);
  t->delivering = 0;
  release_buffers(t);
  SSL_free(t->ssl);
  OPENSSL_cleanse(t, sizeof(*t));
  free(t);
  if (!io->paused) io->filter->drain(io); /* the records after the client's Finished */
  return 1;
}

static void deliver(tether__io *io, tls_state *t) {
  if (bios(t) < 0) {
    io->on_read(io, UV_ENOMEM, NULL);
    return;
  }
  t->delivering = 1; /* the owner's writes keep the BIOs meanwhile */
  if (!t->handshaken && handshake(io, t) > 0 && handover(io, t)) return; /* t is freed */
  if (io->closing) return;                                               /* t is freed */
  if (t->handshaken) deliver_records(io, t);
  if (io->closing) return; /* t is freed */
  t->delivering = 0;
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
  if (bios(t) < 0 || BIO_write(t->rbio, data, (int)nread) != (int)nread) {
    io->on_read(io, UV_ENOMEM, NULL);
    return;
  }
  deliver(io, t);
}

static void tls_drain(tether__io *io) {
  tls_state *t = io->filter_state;
  if (t->handshaken && (SSL_pending(t->ssl) > 0 || (t->rbio && BIO_ctrl_pending(t->rbio) > 0))) deliver(io, t);
}

static int tls_write(tether__io *io, const char *data, size_t len) {
  tls_state *t = io->filter_state;
  if (len == 0) return 0;
  if (!t->handshaken) return UV_EPROTO; /* answers follow requests, and requests follow the handshake */
  if (bios(t) < 0) return UV_ENOMEM;
  size_t done = 0;
  while (done < len) {
    int n = SSL_write(t->ssl, data + done, (int)(len - done > 1 << 30 ? 1 << 30 : len - done));
    if (n <= 0) {
      ERR_clear_error();
      return UV_EPROTO;
    }
    done += (size_t)n;
  }
  int rc = flush(io, t);
  release_buffers(t); /* an answer written on an idle connection (deliver's end does it otherwise) */
  return rc;
}

static int tls_shutdown(tether__io *io, uv_shutdown_t *req) {
  tls_state *t = io->filter_state;
  if (t->handshaken && bios(t) == 0) {
    SSL_shutdown(t->ssl); /* close_notify */
    ERR_clear_error();
    flush(io, t);
  }
  return tether__io_shutdown_raw(io, req);
}

static void tls_free(tether__io *io) {
  tls_state *t = io->filter_state;
  if (t->handshaken && !(SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN) && bios(t) == 0) {
    SSL_shutdown(t->ssl); /* close_notify, so that the peer sees an end and not a truncation */
    ERR_clear_error();
    flush(io, t);
  }
  release_buffers(t); /* for the next connection */
  SSL_free(t->ssl);
  OPENSSL_cleanse(t, sizeof(*t)); /* the traffic secrets */
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
  SSL_set_app_data(t->ssl, &t->sni); /* tls/context.c's servername callback (server side) */
  io->filter = &tls_filter;
  io->filter_state = t;
  return t;
}

int tether__tls_accept(tether__io *io, void *ctx) {
  tls_state *t = attach(io, SSL_new(ctx));
  if (t == NULL) return UV_ENOMEM;
  SSL_set_accept_state(t->ssl);
  if (record_layer_on()) { /* what the record layer needs from the handshake */
    t->sni.secret = on_secret;
    SSL_set_msg_callback(t->ssl, on_message);
    SSL_set_msg_callback_arg(t->ssl, t);
  }
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

void tether__tls_on_sni(tether__io *io, tether__tls_pick_fn pick, void *owner) {
  tls_state *t = io->filter == &tls_filter ? io->filter_state : NULL;
  if (t == NULL) return;
  t->sni.pick = pick;
  t->sni.owner = owner;
}

const char *tether__tls_servername(const tether__io *io) {
  if (tether__tlsrec_on(io)) return tether__tlsrec_servername(io);
  const tls_state *t = io->filter == &tls_filter ? io->filter_state : NULL;
  return t ? SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}

int tether__tls_alpn_h2(const tether__io *io) {
  if (tether__tlsrec_on(io)) return tether__tlsrec_alpn_h2(io);
  const tls_state *t = io->filter == &tls_filter ? io->filter_state : NULL;
  const unsigned char *p = NULL;
  unsigned int n = 0;
  if (t) SSL_get0_alpn_selected(t->ssl, &p, &n);
  return n == 2 && p[0] == 'h' && p[1] == '2';
}
