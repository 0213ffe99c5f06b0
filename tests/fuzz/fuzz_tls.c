/* libFuzzer harness for the TLS transport filter (io/tls.c): the input is what a client sends, fed in
 * chunks to the filter's read as libuv would (into the worker's read buffer, which the filter reuses for
 * plaintext). The layer below the filter (io/tcp.c) is replaced by counters. Invariants: no crash, no leak,
 * the owner hears only plaintext in its own buffer (never nread == 0) and nothing after an error, which ends
 * the connection (then the filter's free, as tether__io_close does).
 *
 * The first input byte shapes the run: bits 0-5 the chunk size (1..64, times 16 when bit 6 is set), bit 7 a
 * small read buffer (the owner's plaintext then comes in several reads). The server's key and self-signed
 * certificate are made in memory at start-up. TETHER_FUZZ_TLS_SEEDS=DIR writes ClientHello seeds there
 * (tests/fuzz/corpus/tls/) and exits. */
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/balancer/io/tls.c"
#include "raw_io.h"

static SSL_CTX *server_ctx;

typedef struct owner {
  int ended;    /* an error or the end was reported */
  size_t plain; /* plaintext bytes heard */
} owner;

static void on_read(tether__io *io, ssize_t nread, const char *data) {
  owner *o = io->owner;
  if (nread == 0 || o->ended || io->closing) abort();
  if (nread < 0) {
    o->ended = 1;
    io->closing = 1; /* the owner closes: no callback anymore */
    return;
  }
  if (data != io->rbuf || (size_t)nread > io->rbuf_len) abort();
  o->plain += (size_t)nread;
  io->filter->write(io, data, (size_t)nread); /* echo, as an answer would go out */
}

static void on_written(tether__io *io, int status) {
  (void)io;
  (void)status;
}

static EVP_PKEY *make_key(void) { return EVP_EC_gen("P-256"); }

static X509 *make_cert(EVP_PKEY *key) {
  X509 *x = X509_new();
  if (x == NULL) return NULL;
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 365);
  X509_NAME *name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509_set_pubkey(x, key);
  if (X509_sign(x, key, EVP_sha256()) == 0) {
    X509_free(x);
    return NULL;
  }
  return x;
}

/* A client's first flight (its ClientHello) with the given settings, into DIR/NAME. */
static void write_seed(const char *dir, const char *name, int max_version, const char *sni, int alpn) {
  SSL_CTX *c = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_max_proto_version(c, max_version);
  SSL *ssl = SSL_new(c);
  BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, rb, wb);
  SSL_set_connect_state(ssl);
  if (sni) SSL_set_tlsext_host_name(ssl, sni);
  if (alpn) SSL_set_alpn_protos(ssl, (const unsigned char *)"\x08http/1.1", 9);
  SSL_do_handshake(ssl);
  char *p;
  long n = BIO_get_mem_data(wb, &p);
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (f == NULL || n <= 0) {
    fprintf(stderr, "fuzz_tls: cannot write %s\n", path);
    exit(1);
  }
  fputc(0x10, f); /* the shape byte: chunks of 17 bytes */
  fwrite(p, 1, (size_t)n, f);
  fclose(f);
  SSL_free(ssl);
  SSL_CTX_free(c);
}

static void write_seeds(const char *dir) {
  write_seed(dir, "hello13", TLS1_3_VERSION, "localhost", 1);
  write_seed(dir, "hello13-nosni", TLS1_3_VERSION, NULL, 0);
  write_seed(dir, "hello12", TLS1_2_VERSION, "localhost", 1);
  write_seed(dir, "hello12-nosni", TLS1_2_VERSION, NULL, 0);
  exit(0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  const char *seeds = getenv("TETHER_FUZZ_TLS_SEEDS");
  if (seeds) write_seeds(seeds);
  EVP_PKEY *key = make_key();
  X509 *cert = key ? make_cert(key) : NULL;
  server_ctx = SSL_CTX_new(TLS_server_method());
  if (cert == NULL || server_ctx == NULL || SSL_CTX_use_certificate(server_ctx, cert) != 1 ||
      SSL_CTX_use_PrivateKey(server_ctx, key) != 1) {
    fprintf(stderr, "fuzz_tls: cannot make the server's key and certificate\n");
    abort();
  }
  SSL_CTX_set_min_proto_version(server_ctx, TLS1_2_VERSION); /* as tls/context.c's default */
  X509_free(cert);
  EVP_PKEY_free(key);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  uint8_t shape = data[0];
  data++, size--;
  size_t chunk = (size_t)(shape & 0x3f) + 1;
  if (shape & 0x40) chunk *= 16;
  size_t rbuf_len = shape & 0x80 ? 7 : 16384;

  owner o = {0};
  tether__io io;
  memset(&io, 0, sizeof(io));
  io.owner = &o;
  io.rbuf = malloc(rbuf_len); /* exactly its length: ASan sees any write past it */
  io.rbuf_len = rbuf_len;
  io.on_read = on_read;
  io.on_written = on_written;
  if (tether__tls_accept(&io, server_ctx) != 0) abort();
  if (io.filter == NULL || io.filter_state == NULL) abort();

  for (size_t off = 0; off < size && !io.closing; off += chunk) {
    size_t n = size - off < chunk ? size - off : chunk;
    if (n > rbuf_len) n = rbuf_len; /* libuv never reads more than the buffer */
    memcpy(io.rbuf, data + off, n);
    io.filter->read(&io, (ssize_t)n, io.rbuf);
    if (n < chunk) off -= chunk - n; /* the rest of this chunk next time */
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
