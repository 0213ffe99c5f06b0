/* TLS 1.3's record layer after the handshake (RFC 8446 section 5), as a transport filter: records are opened in
 * place in the worker's read buffer (a record cut by a read waits in a buffer the connection holds only
 * meanwhile), the owner's writes are sealed into one per-thread buffer and leave in one write. The keys come
 * from the traffic secrets (section 7.3) and change on KeyUpdate (section 4.6.3). An idle connection holds its
 * keys, secrets and sequence numbers, about 250 bytes, where OpenSSL's SSL object and its state took 14 KiB. */
#include "tls_record.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/util.h"

#define HEADER 5
#define TAG 16
#define MAX_PLAIN 16384                 /* 2^14 (section 5.1) */
#define MAX_CIPHER (MAX_PLAIN + 256)    /* section 5.2 */
#define MAX_INNER (MAX_PLAIN + 1 + TAG) /* a record's most: 2^14 + 1 of inner plaintext (section 5.4) */
#define MAX_IDLE 32 /* records in a row with no data (KeyUpdate, empty, user_canceled) before the end */
#define TX_RECORDS_PER_KEY ((uint64_t)1 << 24) /* AES-GCM's safe count (section 5.5): then our own KeyUpdate */
#define TYPE_ALERT 21
#define TYPE_HANDSHAKE 22
#define TYPE_DATA 23
#define KEY_UPDATE 24 /* the handshake message */
#define ALERT_CLOSE_NOTIFY 0
#define ALERT_UNEXPECTED 10
#define ALERT_BAD_MAC 20
#define ALERT_OVERFLOW 22
#define ALERT_ILLEGAL_PARAMETER 47
#define ALERT_DECODE 50
#define ALERT_USER_CANCELED 90
#define SCRATCH_KEEP (256 * 1024) /* a thread's seal buffer past this is freed after the write */

typedef struct suite {
  uint16_t id;
  const char *cipher, *digest;
  size_t key_len, hash_len;
} suite;

static const suite suites[] = {
    {0x1301, "AES-128-GCM", "SHA256", 16, 32},
    {0x1302, "AES-256-GCM", "SHA384", 32, 48},
    {0x1303, "ChaCha20-Poly1305", "SHA256", 32, 32},
};
#define NSUITES (sizeof(suites) / sizeof(suites[0]))

/* One direction's keys (section 7.3). */
typedef struct dir {
  uint64_t seq;
  uint64_t key_id; /* which key a thread's cipher context holds (see cipher()) */
  unsigned char key[32], iv[12];
  unsigned char secret[TETHER__TLSREC_SECRET_MAX]; /* for the next KeyUpdate */
} dir;

typedef struct rec {
  dir rx, tx;
  unsigned char suite; /* index in suites[] */
  unsigned char alpn_h2;
  unsigned char rx_done;   /* the end, a close_notify or an error was reported: nothing more is read */
  unsigned char tx_done;   /* close_notify or a fatal alert sent: nothing more is written */
  unsigned char feeding;   /* in feed(): a drain from the owner's callback waits for it */
  unsigned char tx_update; /* the client asked for a KeyUpdate: ours goes before the next record we seal */
  unsigned char idle;      /* records in a row with no data */
  char *pend;              /* bytes read and not yet opened (a cut record, or records while paused); NULL: none */
  size_t pend_len, pend_cap;
  char name[]; /* SNI's name ("" without) */
} rec;

static EVP_CIPHER *ciphers[NSUITES];
static EVP_KDF *hkdf;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;
static _Atomic uint64_t next_key_id = 1;

static void fetch(void) {
  for (size_t i = 0; i < NSUITES; i++) ciphers[i] = EVP_CIPHER_fetch(NULL, suites[i].cipher, NULL);
  hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
}

/* ---- a thread's cipher contexts and seal buffer ---- */

/* Cipher contexts keyed for the connections lately served, in a direct-mapped cache by key id (a context keeps
 * its cipher and key, so that a record costs no key schedule while its connection's context stays; a key
 * schedule and GHASH table cost more than sealing a small record). At most SLOTS each way per thread, about 1
 * KiB each, made when first needed. */
#define SLOTS 64

typedef struct slot {
  EVP_CIPHER_CTX *ctx;
  uint64_t key_id;     /* the key it holds (0: none) */
  unsigned char suite; /* its cipher */
} slot;

typedef struct rec_thread {
  slot slots[2][SLOTS]; /* [0 open, 1 seal] */
  char *buf;
  size_t cap;
} rec_thread;

static pthread_key_t thread_key;
static pthread_once_t thread_once = PTHREAD_ONCE_INIT;

static void thread_free(void *p) {
  rec_thread *th = p;
  for (int d = 0; d < 2; d++)
    for (int i = 0; i < SLOTS; i++) EVP_CIPHER_CTX_free(th->slots[d][i].ctx);
  free(th->buf);
  free(th);
}

static void thread_key_make(void) { pthread_key_create(&thread_key, thread_free); }

static rec_thread *thread_state(void) {
  pthread_once(&thread_once, thread_key_make);
  rec_thread *th = pthread_getspecific(thread_key);
  if (th == NULL) {
    th = tether__calloc(1, sizeof(*th));
    pthread_setspecific(thread_key, th);
  }
  return th;
}

static slot *slot_of(rec_thread *th, int d, uint64_t key_id) {
  return &th->slots[d][(key_id * 0x9e3779b97f4a7c15ull) >> 58];
}

/* k's key leaves the cache (its context is cleansed and freed): its connection ended, or the key changed. */
static void forget(const dir *k) {
  rec_thread *th = thread_state();
  for (int d = 0; d < 2 && k->key_id != 0; d++) {
    slot *sl = slot_of(th, d, k->key_id);
    if (sl->key_id == k->key_id) {
      EVP_CIPHER_CTX_free(sl->ctx);
      sl->ctx = NULL;
      sl->key_id = 0;
    }
  }
}

/* A thread's context for direction d (0 open, 1 seal) with k's key (suite s) and the record's nonce set. */
static EVP_CIPHER_CTX *cipher(unsigned s, int d, const dir *k, const unsigned char nonce[12]) {
  rec_thread *th = thread_state();
  slot *sl = slot_of(th, d, k->key_id);
  if (sl->ctx != NULL && sl->suite != s) {
    EVP_CIPHER_CTX_free(sl->ctx);
    sl->ctx = NULL;
  }
  if (sl->ctx == NULL) {
    sl->ctx = EVP_CIPHER_CTX_new();
    sl->key_id = 0;
    sl->suite = (unsigned char)s;
    if (sl->ctx == NULL || EVP_CipherInit_ex(sl->ctx, ciphers[s], NULL, NULL, NULL, d) != 1) {
      EVP_CIPHER_CTX_free(sl->ctx);
      sl->ctx = NULL;
      return NULL;
    }
  }
  const unsigned char *key = sl->key_id == k->key_id ? NULL : k->key;
  sl->key_id = 0; /* unknown until the init below is done */
  if (EVP_CipherInit_ex(sl->ctx, NULL, NULL, key, nonce, d) != 1) return NULL;
  sl->key_id = k->key_id;
  return sl->ctx;
}

static char *scratch(size_t n) {
  rec_thread *th = thread_state();
  if (th->cap < n) {
    free(th->buf);
    th->buf = tether__malloc(n);
    th->cap = n;
  }
  return th->buf;
}

static void scratch_trim(void) {
  rec_thread *th = thread_state();
  if (th->cap > SCRATCH_KEEP) {
    free(th->buf);
    th->buf = NULL;
    th->cap = 0;
  }
}

/* ---- the key schedule (section 7) ---- */

/* HKDF-Expand-Label(secret, label, "", len) with s's hash (section 7.1). */
static int expand_label(const suite *s, const unsigned char *secret, const char *label, unsigned char *out,
                        size_t len) {
  unsigned char info[2 + 1 + 6 + 32 + 1];
  size_t ll = strlen(label);
  info[0] = (unsigned char)(len >> 8);
  info[1] = (unsigned char)len;
  info[2] = (unsigned char)(6 + ll);
  memcpy(info + 3, "tls13 ", 6);
  memcpy(info + 9, label, ll);
  info[9 + ll] = 0; /* an empty context */
  int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
  OSSL_PARAM p[] = {OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
                    OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)s->digest, 0),
                    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, s->hash_len),
                    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, 10 + ll), OSSL_PARAM_construct_end()};
#ifdef TETHER__TLSREC_TEST
  if (tlsrec_test_kdf_budget == 0) return -1; /* the unit test's failing derivation */
  if (tlsrec_test_kdf_budget > 0) tlsrec_test_kdf_budget--;
#endif
  EVP_KDF_CTX *kc = hkdf ? EVP_KDF_CTX_new(hkdf) : NULL;
  int ok = kc != NULL && EVP_KDF_derive(kc, out, len, p) == 1;
  EVP_KDF_CTX_free(kc);
  if (!ok) ERR_clear_error();
  return ok ? 0 : -1;
}

/* k takes secret, and the key and iv from it; its records count from 0. All or nothing: on failure k is as it
 * was (a half-changed k would seal with the old key from sequence 0, reusing its nonces). */
static int dir_set(const suite *s, dir *k, const unsigned char *secret) {
  unsigned char key[32], iv[12];
  int ok = expand_label(s, secret, "key", key, s->key_len) == 0 && expand_label(s, secret, "iv", iv, sizeof(iv)) == 0;
  if (ok) {
    forget(k);
    memmove(k->secret, secret, s->hash_len);
    memcpy(k->key, key, s->key_len);
    memcpy(k->iv, iv, sizeof(iv));
    k->seq = 0;
    k->key_id = atomic_fetch_add(&next_key_id, 1);
  }
  OPENSSL_cleanse(key, sizeof(key));
  OPENSSL_cleanse(iv, sizeof(iv));
  return ok ? 0 : -1;
}

static int dir_keys(const suite *s, dir *k) { return dir_set(s, k, k->secret); }

/* KeyUpdate: application_traffic_secret_N+1 (section 7.2). */
static int dir_update(const suite *s, dir *k) {
  unsigned char next[TETHER__TLSREC_SECRET_MAX];
  int rc = expand_label(s, k->secret, "traffic upd", next, s->hash_len) < 0 ? -1 : dir_set(s, k, next);
  OPENSSL_cleanse(next, sizeof(next));
  return rc;
}

/* The per-record nonce: the iv XOR the sequence number (section 5.3). */
static void nonce(const dir *k, unsigned char out[12]) {
  memcpy(out, k->iv, 12);
  for (int i = 0; i < 8; i++) out[11 - i] ^= (unsigned char)(k->seq >> (8 * i));
}

/* ---- records ---- */

/* Seals one record of type with data[0..n) (n <= MAX_PLAIN) into out; its size, or -1. */
static long seal(rec *r, int type, const char *data, size_t n, char *out) {
  unsigned char iv[12], *h = (unsigned char *)out, t = (unsigned char)type;
  size_t len = n + 1 + TAG;
  h[0] = TYPE_DATA;
  h[1] = h[2] = 3;
  h[3] = (unsigned char)(len >> 8);
  h[4] = (unsigned char)len;
  nonce(&r->tx, iv);
  EVP_CIPHER_CTX *c = cipher(r->suite, 1, &r->tx, iv);
  int outl;
  unsigned char *body = h + HEADER;
  if (c == NULL || EVP_CipherUpdate(c, NULL, &outl, h, HEADER) != 1 ||
      (n > 0 && EVP_CipherUpdate(c, body, &outl, (const unsigned char *)data, (int)n) != 1) ||
      EVP_CipherUpdate(c, body + n, &outl, &t, 1) != 1 || EVP_CipherFinal_ex(c, body + n + 1, &outl) != 1 ||
      EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, TAG, body + n + 1) != 1) {
    ERR_clear_error();
    return -1;
  }
  r->tx.seq++;
  return (long)(HEADER + len);
}

/* Room for sealing n bytes of plaintext, with a KeyUpdate on the way. */
static size_t sealed_size(size_t n) {
  size_t records = n / MAX_PLAIN + 1;
  return n + (records + 1) * (HEADER + 1 + TAG) + 5;
}

/* Seals data[0..n) into out as records of type; the bytes written, or -1. Past AES-GCM's record count per key
 * a KeyUpdate goes first and the key changes. */
static long seal_all(rec *r, int type, const char *data, size_t n, char *out) {
  static const char update[] = {KEY_UPDATE, 0, 0, 1, 0}; /* update_not_requested */
  long w = 0;
  if (r->tx.seq >= TX_RECORDS_PER_KEY || r->tx_update) {
    long k = seal(r, TYPE_HANDSHAKE, update, sizeof(update), out);
    if (k < 0 || dir_update(&suites[r->suite], &r->tx) < 0) return -1;
    r->tx_update = 0;
    w += k;
  }
  size_t done = 0;
  do {
    size_t chunk = n - done > MAX_PLAIN ? MAX_PLAIN : n - done;
    long k = seal(r, type, data + done, chunk, out + w);
    if (k < 0) return -1;
    w += k;
    done += chunk;
  } while (done < n);
  return w;
}

/* Sending failed: nothing more is sealed, and the send keys go (a failed seal or update may leave the sequence
 * or the key where a nonce would come again). */
static void tx_fail(rec *r) {
  r->tx_done = 1;
  forget(&r->tx);
  OPENSSL_cleanse(&r->tx, sizeof(r->tx));
}

/* Seals and writes, in one write. 0, or a negative code (then nothing more is sent). */
static int send_records(tether__io *io, rec *r, int type, const char *data, size_t n) {
  char *out = scratch(sealed_size(n));
  long w = seal_all(r, type, data, n, out);
  if (w < 0) tx_fail(r);
  int rc = w < 0 ? UV_EPROTO : tether__io_write_raw(io, out, (size_t)w);
  if (rc < 0) tx_fail(r);
  scratch_trim();
  return rc;
}

static void send_alert(tether__io *io, rec *r, int level, int desc) {
  char a[2] = {(char)level, (char)desc};
  if (r->tx_done) return;
  r->tx_done = level == 2 || desc == ALERT_CLOSE_NOTIFY;
  send_records(io, r, TYPE_ALERT, a, sizeof(a));
}

/* Opens the record at h (header and n bytes) in place: the inner plaintext lands at h + HEADER; its length
 * without padding into *len, and its type returned (0: no type, all padding); -1: it does not open. */
static int open_record(rec *r, unsigned char *h, size_t n, size_t *len) {
  unsigned char iv[12], *body = h + HEADER;
  int outl, fin;
  if (n < 1 + TAG || r->rx.seq == UINT64_MAX) return -1;
  nonce(&r->rx, iv);
  EVP_CIPHER_CTX *c = cipher(r->suite, 0, &r->rx, iv);
  if (c == NULL || EVP_CipherUpdate(c, NULL, &outl, h, HEADER) != 1 ||
      EVP_CipherUpdate(c, body, &outl, body, (int)(n - TAG)) != 1 ||
      EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, TAG, body + n - TAG) != 1 ||
      EVP_CipherFinal_ex(c, body + outl, &fin) != 1) {
    ERR_clear_error();
    return -1;
  }
  r->rx.seq++;
  size_t m = n - TAG;
  while (m > 0 && body[m - 1] == 0) m--; /* the padding (section 5.4) */
  if (m == 0) return 0;
  *len = m - 1;
  return body[m - 1];
}

/* ---- the filter ---- */

/* The connection is broken: the client hears why (a fatal alert), the owner hears UV_EPROTO. */
static void end_with(tether__io *io, rec *r, int desc) {
  send_alert(io, r, 2, desc);
  r->rx_done = 1;
  io->on_read(io, UV_EPROTO, NULL);
}

/* A handshake record after the handshake: only KeyUpdate (section 4.6.3), alone and last in its record. 0, or
 * -1 when the connection failed. */
static int key_update(tether__io *io, rec *r, const unsigned char *m, size_t n) {
  const suite *s = &suites[r->suite];
  if (n < 1 || m[0] != KEY_UPDATE) {
    end_with(io, r, ALERT_UNEXPECTED);
    return -1;
  }
  if (n != 5 || m[1] != 0 || m[2] != 0 || m[3] != 1) {
    end_with(io, r, ALERT_DECODE);
    return -1;
  }
  if (m[4] > 1) { /* neither update_not_requested nor update_requested */
    end_with(io, r, ALERT_ILLEGAL_PARAMETER);
    return -1;
  }
  if (++r->idle > MAX_IDLE) { /* KeyUpdates in a row cost a derivation each */
    end_with(io, r, ALERT_UNEXPECTED);
    return -1;
  }
  if (dir_update(s, &r->rx) < 0) {
    end_with(io, r, 80); /* internal_error */
    return -1;
  }
  if (m[4] == 1) r->tx_update = 1; /* update_requested: ours goes before our next record (seal_all) */
  return 0;
}

/* A record with no data (empty, user_canceled): 0, or -1 past MAX_IDLE in a row (the connection failed). */
static int idle(tether__io *io, rec *r) {
  if (++r->idle <= MAX_IDLE) return 0;
  end_with(io, r, ALERT_UNEXPECTED);
  return -1;
}

/* One whole record at h, n bytes after its header. 0 to go on, -1 to stop (io may be closed and r freed). */
static int record(tether__io *io, rec *r, unsigned char *h, size_t n) {
  size_t len = 0;
  int type = open_record(r, h, n, &len);
  unsigned char *p = h + HEADER;
  if (type < 0) {
    end_with(io, r, ALERT_BAD_MAC);
    return -1;
  }
  if (len > MAX_PLAIN) {
    end_with(io, r, ALERT_OVERFLOW);
    return -1;
  }
  switch (type) {
  case TYPE_DATA:
    if (len == 0) return idle(io, r);
    r->idle = 0;
    io->on_read(io, (ssize_t)len, (char *)p);
    return io->closing || r->rx_done ? -1 : 0;
  case TYPE_HANDSHAKE:
    return key_update(io, r, p, len);
  case TYPE_ALERT: /* in TLS 1.3 every alert ends the connection but user_canceled (section 6.1) */
    if (len != 2) {
      end_with(io, r, ALERT_DECODE);
      return -1;
    }
    if (p[1] == ALERT_USER_CANCELED) return idle(io, r);
    r->rx_done = 1;
    if (p[1] == ALERT_CLOSE_NOTIFY)
      io->on_read(io, UV_EOF, NULL);
    else
      io->on_read(io, UV_EPROTO, NULL); /* the client's fatal alert (or a malformed one) */
    return -1;
  default:
    end_with(io, r, ALERT_UNEXPECTED);
    return -1;
  }
}

/* Opens and hands on the whole records of buf[0..len) while the owner reads. The bytes used, or -1 when the
 * connection ended (io may be closed and r freed). */
static long feed(tether__io *io, rec *r, char *buf, size_t len) {
  size_t off = 0;
  r->feeding = 1;
  while (!io->paused && len - off >= HEADER) {
    unsigned char *h = (unsigned char *)buf + off;
    size_t n = (size_t)h[3] << 8 | h[4];
    if (h[0] != TYPE_DATA || h[1] != 3 || h[2] != 3) { /* section 5.2: only application_data from now on */
      end_with(io, r, ALERT_UNEXPECTED);
      return -1;
    }
    if (n > MAX_INNER) { /* sections 5.2 and 5.4, before opening it */
      end_with(io, r, ALERT_OVERFLOW);
      return -1;
    }
    if (len - off < HEADER + n) break;
    if (record(io, r, h, n) < 0) return -1;
    off += HEADER + n;
  }
  r->feeding = 0;
  return (long)off;
}

static void pend_drop(rec *r) {
  OPENSSL_clear_free(r->pend, r->pend_cap);
  r->pend = NULL;
  r->pend_len = r->pend_cap = 0;
}

static void pend_add(rec *r, const char *data, size_t n) {
  if (r->pend_len + n > r->pend_cap) {
    size_t cap = r->pend_len + n < HEADER + MAX_CIPHER ? HEADER + MAX_CIPHER : r->pend_len + n;
    r->pend = tether__realloc(r->pend, cap);
    r->pend_cap = cap;
  }
  memcpy(r->pend + r->pend_len, data, n);
  r->pend_len += n;
}

/* The held bytes, opened as far as they go. The buffer is ours while they are fed (the owner's on_read may see
 * plaintext in it and close, freeing r): it goes back to r after, before anything held meanwhile. */
static void pend_feed(tether__io *io, rec *r) {
  char *b = r->pend;
  size_t len = r->pend_len, cap = r->pend_cap;
  r->pend = NULL;
  r->pend_len = r->pend_cap = 0;
  long used = feed(io, r, b, len);
  if (used < 0 || io->closing) { /* r may be freed */
    OPENSSL_clear_free(b, cap);
    return;
  }
  char *newer = r->pend;
  size_t newer_len = r->pend_len, newer_cap = r->pend_cap;
  memmove(b, b + used, len - (size_t)used);
  r->pend = b;
  r->pend_len = len - (size_t)used;
  r->pend_cap = cap;
  if (newer != NULL) {
    pend_add(r, newer, newer_len);
    OPENSSL_clear_free(newer, newer_cap);
  }
  if (r->pend_len == 0) pend_drop(r);
}

static void rec_read(tether__io *io, ssize_t nread, char *data) {
  rec *r = io->filter_state;
  if (r->rx_done) return;
  if (nread < 0) {
    r->rx_done = 1;
    if (nread == UV_EOF && r->pend != NULL) nread = UV_EPROTO; /* the end in a record */
    io->on_read(io, nread, NULL); /* the end without close_notify: a truncation, the owner decides */
    return;
  }
  if (r->pend) { /* after a cut record: the rest joins it */
    pend_add(r, data, (size_t)nread);
    pend_feed(io, r);
    return;
  }
  long used = feed(io, r, data, (size_t)nread); /* in place */
  if (used < 0) return;
  if ((size_t)used < (size_t)nread) pend_add(r, data + used, (size_t)nread - (size_t)used);
}

static void rec_drain(tether__io *io) {
  rec *r = io->filter_state;
  if (r->pend && !r->feeding && !r->rx_done) pend_feed(io, r);
}

static int rec_write(tether__io *io, const char *data, size_t len) {
  rec *r = io->filter_state;
  if (len == 0) return 0;
  if (r->tx_done) return UV_EPIPE;
  return send_records(io, r, TYPE_DATA, data, len);
}

static int rec_shutdown(tether__io *io, uv_shutdown_t *req) {
  send_alert(io, io->filter_state, 1, ALERT_CLOSE_NOTIFY);
  return tether__io_shutdown_raw(io, req);
}

static void rec_free(tether__io *io) {
  rec *r = io->filter_state;
  send_alert(io, r, 1, ALERT_CLOSE_NOTIFY); /* so that the peer sees an end and not a truncation */
  OPENSSL_clear_free(r->pend, r->pend_cap);
  forget(&r->rx);
  forget(&r->tx);
  OPENSSL_cleanse(r, sizeof(*r));
  free(r);
  io->filter_state = NULL;
}

static const tether__io_filter rec_filter = {
    .read = rec_read, .write = rec_write, .drain = rec_drain, .shutdown = rec_shutdown, .free = rec_free};

static int suite_index(uint16_t id) {
  for (size_t i = 0; i < NSUITES; i++)
    if (suites[i].id == id) return (int)i;
  return -1;
}

int tether__tlsrec_supported(uint16_t id) {
  pthread_once(&fetch_once, fetch);
  int s = suite_index(id);
  return s >= 0 && ciphers[s] != NULL && hkdf != NULL;
}

int tether__tlsrec_attach(tether__io *io, const tether__tlsrec_keys *k, const char *rest, size_t len) {
  int s = suite_index(k->suite);
  if (!tether__tlsrec_supported(k->suite) || k->secret_len != suites[s].hash_len) return UV_EPROTO;
  size_t name = k->servername ? strlen(k->servername) : 0;
  rec *r = tether__calloc(1, sizeof(*r) + name + 1);
  r->suite = (unsigned char)s;
  r->alpn_h2 = k->alpn_h2 != 0;
  memcpy(r->name, name ? k->servername : "", name + 1);
  memcpy(r->rx.secret, k->rx_secret, k->secret_len);
  memcpy(r->tx.secret, k->tx_secret, k->secret_len);
  if (dir_keys(&suites[s], &r->rx) < 0 || dir_keys(&suites[s], &r->tx) < 0) {
    OPENSSL_cleanse(r, sizeof(*r));
    free(r);
    return UV_EPROTO;
  }
  r->rx.seq = k->rx_seq;
  r->tx.seq = k->tx_seq;
  io->filter = &rec_filter;
  io->filter_state = r;
  if (len > 0) pend_add(r, rest, len);
  return 0;
}

int tether__tlsrec_on(const tether__io *io) { return io->filter == &rec_filter; }

const char *tether__tlsrec_servername(const tether__io *io) {
  const rec *r = tether__tlsrec_on(io) ? io->filter_state : NULL;
  return r && r->name[0] ? r->name : NULL;
}

int tether__tlsrec_alpn_h2(const tether__io *io) {
  const rec *r = tether__tlsrec_on(io) ? io->filter_state : NULL;
  return r ? r->alpn_h2 : 0;
}
