/* Building the server context: Mozilla's "intermediate" profile by default (TLS 1.2 and 1.3, ECDHE with
 * AES-GCM or ChaCha20-Poly1305, so forward secrecy only), certificate chains of several key types, and
 * stateless resumption by session tickets whose keys may come from files that a fleet shares (nginx's
 * ssl_session_ticket_key format: 80 bytes name | HMAC key | AES-256 key, or 48 bytes with 16-byte keys). */
#include "context.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "../io/tls.h"

#define INTERMEDIATE_CIPHERS                                                                                           \
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"                           \
  "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define GROUPS "X25519:prime256v1:secp384r1"

typedef struct ticket_key {
  unsigned char name[16];
  unsigned char hmac[32];
  unsigned char aes[32];
  size_t size; /* 16 (a 48-byte file) or 32 (an 80-byte one) */
} ticket_key;

typedef struct ticket_keys {
  ticket_key key[TETHER__TLS_MAX_TICKET_KEYS];
  int n;
} ticket_keys;

static int keys_index = -1;

typedef struct errbuf {
  char *p;
  size_t cap, used;
  const tether__config *cf; /* names the file of a line */
  int n;
} errbuf;

static void fail(errbuf *e, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(errbuf *e, int line, const char *fmt, ...) {
  e->n++;
  if (e->used + 1 >= e->cap) return;
  int k = snprintf(e->p + e->used, e->cap - e->used, "%s:%d: ", tether__cf_file(e->cf, line), tether__cf_lineno(line));
  if (k > 0 && (size_t)k < e->cap - e->used) e->used += (size_t)k;
  va_list ap;
  va_start(ap, fmt);
  k = vsnprintf(e->p + e->used, e->cap - e->used, fmt, ap);
  va_end(ap);
  if (k > 0) e->used += (size_t)k < e->cap - e->used ? (size_t)k : e->cap - e->used - 1;
  unsigned long code = ERR_peek_last_error();
  if (code && e->used + 1 < e->cap) {
    k = snprintf(e->p + e->used, e->cap - e->used, ": %s", ERR_reason_error_string(code));
    if (k > 0) e->used += (size_t)k < e->cap - e->used ? (size_t)k : e->cap - e->used - 1;
  }
  ERR_clear_error();
  if (e->used + 1 < e->cap) e->p[e->used++] = '\n';
  e->p[e->used] = '\0';
}

/* A key with a passphrase is refused: a server cannot type it, and a passphrase in the configuration
 * would be a secret in a file anyway. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
  (void)buf, (void)size, (void)rwflag;
  *(int *)u = 1;
  return -1;
}

/* A certificate chain and its key; pre is "" (ssl_*) or "proxy_" (proxy_ssl_*) for the errors. */
static void load_pair(SSL_CTX *ctx, const char *cert, const char *keyfile, int line, const char *pre, errbuf *e) {
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
    fail(e, line, "%sssl_certificate %s: cannot load the certificate chain", pre, cert);
    return;
  }
  BIO *b = BIO_new_file(keyfile, "r");
  int asked = 0;
  EVP_PKEY *key = b ? PEM_read_bio_PrivateKey(b, NULL, no_passphrase, &asked) : NULL;
  BIO_free(b);
  if (key == NULL) {
    if (asked)
      fail(e, line,
           "%sssl_certificate_key %s: the key is protected by a passphrase; Tether reads unencrypted keys "
           "only (openssl pkey -in KEY -out PLAIN)",
           pre, keyfile);
    else
      fail(e, line, "%sssl_certificate_key %s: cannot read the private key", pre, keyfile);
    return;
  }
  if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1)
    fail(e, line, "%sssl_certificate_key %s does not match %sssl_certificate %s", pre, keyfile, pre, cert);
  EVP_PKEY_free(key);
}

/* ---- session tickets ---- */

static int ticket_cb(SSL *ssl, unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx,
                     int enc) {
  const ticket_keys *ks = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), keys_index);
  if (ks == NULL || ks->n == 0) return -1;
  int i = 0;
  if (!enc) {
    while (i < ks->n && memcmp(name, ks->key[i].name, 16) != 0) i++;
    if (i == ks->n) return 0; /* an unknown key: a full handshake */
  }
  const ticket_key *k = &ks->key[i];
  const EVP_CIPHER *cipher = k->size == 16 ? EVP_aes_128_cbc() : EVP_aes_256_cbc();
  OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, k->size),
                         OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                         OSSL_PARAM_construct_end()};
  if (enc) {
    memcpy(name, k->name, 16);
    if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(cipher)) != 1) return -1;
    if (EVP_EncryptInit_ex(cctx, cipher, NULL, k->aes, iv) != 1) return -1;
  } else if (EVP_DecryptInit_ex(cctx, cipher, NULL, k->aes, iv) != 1) {
    return -1;
  }
  if (EVP_MAC_CTX_set_params(hctx, params) != 1) return -1;
  /* decrypting with an older key, or any TLS 1.3 ticket (as nginx): a fresh ticket with the first key */
  return enc ? 1 : (i != 0 || SSL_version(ssl) == TLS1_3_VERSION) ? 2 : 1;
}

static void free_keys(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp) {
  (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
  if (ptr) OPENSSL_clear_free(ptr, sizeof(ticket_keys));
}

static void load_ticket_keys(SSL_CTX *ctx, const tether__cf_tls *t, errbuf *e) {
  ticket_keys *ks = OPENSSL_zalloc(sizeof(*ks));
  for (int i = 0; i < t->nticket_key; i++) {
    unsigned char buf[81];
    FILE *f = fopen(t->ticket_key[i], "rb");
    size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;
    if (f) fclose(f);
    ticket_key *k = &ks->key[ks->n];
    if (f == NULL || (n != 48 && n != 80)) {
      fail(e, t->line, "ssl_session_ticket_key %s: %s", t->ticket_key[i],
           f == NULL ? "cannot read it" : "must be 48 or 80 bytes (openssl rand 80 > FILE)");
    } else {
      k->size = n == 48 ? 16 : 32;
      memcpy(k->name, buf, 16);
      memcpy(n == 48 ? k->aes : k->hmac, buf + 16, k->size);
      memcpy(n == 48 ? k->hmac : k->aes, buf + 16 + k->size, k->size);
      ks->n++;
    }
    OPENSSL_cleanse(buf, sizeof(buf));
  }
  SSL_CTX_set_ex_data(ctx, keys_index, ks);
  if (ks->n) SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
}

/* ---- the upstreams' client contexts (proxy_ssl_*) ---- */

/* What an upstream's client context knows beyond OpenSSL's settings: the name to check and send, and the last
 * session of each server, which the workers share (proxy_ssl_session_reuse). */
typedef struct client_info {
  pthread_mutex_t lock;
  char name[256];
  int verify, sni, nservers;
  SSL_SESSION *sessions[TETHER__CF_MAX_SERVERS];
} client_info;

static int client_index = -1; /* the SSL_CTX's client_info */
static int server_index = -1; /* the SSL's server (its index + 1) */

static void free_client(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp) {
  (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
  client_info *ci = ptr;
  if (ci == NULL) return;
  for (int i = 0; i < ci->nservers; i++) SSL_SESSION_free(ci->sessions[i]);
  pthread_mutex_destroy(&ci->lock);
  OPENSSL_free(ci);
}

/* A new session (after a handshake, or a TLS 1.3 ticket later): the one to offer that server next time. */
static int keep_session(SSL *ssl, SSL_SESSION *sess) {
  client_info *ci = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), client_index);
  intptr_t s = (intptr_t)SSL_get_ex_data(ssl, server_index) - 1;
  if (ci == NULL || s < 0 || s >= ci->nservers) return 0;
  pthread_mutex_lock(&ci->lock);
  SSL_SESSION *old = ci->sessions[s];
  ci->sessions[s] = sess;
  pthread_mutex_unlock(&ci->lock);
  SSL_SESSION_free(old);
  return 1; /* the reference is kept */
}

static int is_ip(const char *name) {
  unsigned char buf[16];
  return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

static void build_client(tether__cf_upstream *cu, errbuf *e) {
  const tether__cf_proxy_ssl *p = &cu->ssl;
  int line = p->line ? p->line : cu->https_line, before = e->n;
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  client_info *ci = OPENSSL_zalloc(sizeof(*ci));
  if (ctx == NULL || ci == NULL) {
    fail(e, line, "upstream \"%s\": cannot create a TLS context", cu->name);
    SSL_CTX_free(ctx);
    OPENSSL_free(ci);
    return;
  }
  pthread_mutex_init(&ci->lock, NULL);
  snprintf(ci->name, sizeof(ci->name), "%s", p->name);
  ci->verify = p->verify;
  ci->sni = p->server_name && !is_ip(p->name); /* RFC 6066: no IP address in SNI (nginx sends none) */
  ci->nservers = (int)cu->nservers;
  SSL_CTX_set_ex_data(ctx, client_index, ci);
  SSL_CTX_set_min_proto_version(ctx, p->protocols & TETHER__TLS_V12 ? TLS1_2_VERSION : TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx, p->protocols & TETHER__TLS_V13 ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS); /* a pooled connection gives its buffers back */
  if (SSL_CTX_set_cipher_list(ctx, p->ciphers[0] ? p->ciphers : "DEFAULT") != 1)
    fail(e, line, "proxy_ssl_ciphers \"%s\": no usable cipher", p->ciphers);
  if (p->verify) { /* as nginx: the trusted certificates are read only to verify */
    if (access(p->trusted, R_OK) != 0)
      fail(e, p->trusted_line, "proxy_ssl_trusted_certificate %s: %s", p->trusted, strerror(errno));
    else if (SSL_CTX_load_verify_locations(ctx, p->trusted, NULL) != 1)
      fail(e, p->trusted_line, "proxy_ssl_trusted_certificate %s: cannot load the certificates", p->trusted);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_verify_depth(ctx, p->verify_depth);
  }
  if (p->cert[0] && access(p->cert, R_OK) != 0)
    fail(e, p->cert_line, "proxy_ssl_certificate %s: %s", p->cert, strerror(errno));
  else if (p->cert[0])
    load_pair(ctx, p->cert, p->key, p->cert_line, "proxy_", e);
  if (p->session_reuse) {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
    SSL_CTX_sess_set_new_cb(ctx, keep_session);
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  }
  if (e->n > before)
    SSL_CTX_free(ctx);
  else
    cu->tls_ctx = ctx;
}

void *tether__tls_client_new(void *vctx, int server) {
  SSL_CTX *ctx = vctx;
  client_info *ci = SSL_CTX_get_ex_data(ctx, client_index);
  SSL *ssl = ci ? SSL_new(ctx) : NULL;
  if (ssl == NULL) {
    ERR_clear_error();
    return NULL;
  }
  SSL_set_ex_data(ssl, server_index, (void *)(intptr_t)(server + 1));
  int ok = 1;
  if (ci->verify) /* the certificate must name proxy_ssl_name */
    ok = is_ip(ci->name) ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ci->name) == 1
                         : SSL_set1_host(ssl, ci->name) == 1;
  if (ok && ci->sni) ok = SSL_set_tlsext_host_name(ssl, ci->name) == 1;
  if (!ok) {
    SSL_free(ssl);
    ERR_clear_error();
    return NULL;
  }
  SSL_SESSION *sess = NULL;
  if (server >= 0 && server < ci->nservers) {
    pthread_mutex_lock(&ci->lock);
    sess = ci->sessions[server];
    if (sess) SSL_SESSION_up_ref(sess);
    pthread_mutex_unlock(&ci->lock);
  }
  if (sess) {
    SSL_set_session(ssl, sess); /* offered; a full handshake when the server declines */
    SSL_SESSION_free(sess);
  }
  return ssl;
}

/* ---- the context ---- */

static void protocols_and_suites(SSL_CTX *ctx, const tether__cf_tls *t, errbuf *e) {
  SSL_CTX_set_min_proto_version(ctx, t->protocols & TETHER__TLS_V12 ? TLS1_2_VERSION : TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx, t->protocols & TETHER__TLS_V13 ? TLS1_3_VERSION : TLS1_2_VERSION);
  uint64_t opts = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION;
  if (t->prefer_server_ciphers) opts |= SSL_OP_CIPHER_SERVER_PREFERENCE;
  if (!t->session_tickets) opts |= SSL_OP_NO_TICKET;
  SSL_CTX_set_options(ctx, opts);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS); /* an idle connection gives its buffers back */
  if (SSL_CTX_set_cipher_list(ctx, t->ciphers[0] ? t->ciphers : INTERMEDIATE_CIPHERS) != 1)
    fail(e, t->line, "ssl_ciphers \"%s\": no usable cipher", t->ciphers);
  if (SSL_CTX_set1_groups_list(ctx, GROUPS) != 1) fail(e, t->line, "cannot set the key exchange groups");
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF); /* resumption is by tickets: stateless */
  SSL_CTX_set_timeout(ctx, (long)(t->session_timeout_ms / 1000));
  if (t->nconf_cmd == 0) return;
  SSL_CONF_CTX *cc = SSL_CONF_CTX_new();
  SSL_CONF_CTX_set_flags(cc, SSL_CONF_FLAG_FILE | SSL_CONF_FLAG_SERVER | SSL_CONF_FLAG_CERTIFICATE);
  SSL_CONF_CTX_set_ssl_ctx(cc, ctx);
  for (int i = 0; i < t->nconf_cmd; i++)
    if (SSL_CONF_cmd(cc, t->conf_cmd[i][0], t->conf_cmd[i][1]) <= 0)
      fail(e, t->line, "ssl_conf_command %s %s: refused by OpenSSL", t->conf_cmd[i][0], t->conf_cmd[i][1]);
  SSL_CONF_CTX_finish(cc);
  SSL_CONF_CTX_free(cc);
}

/* SNI: the client hello names a server, and its context (certificates, ticket keys, session id context,
 * options, protocol versions) takes over before OpenSSL negotiates anything, as nginx does with the client hello
 * callback. The TLS 1.2 suites stay those of the context the connection was accepted with (the address's
 * default server's): a context keeps no list to copy. */
static void switch_context(SSL *ssl, const char *name) {
  const tether__tls_sni *sni = SSL_get_app_data(ssl);
  if (sni == NULL || sni->pick == NULL) return;
  SSL_CTX *ctx = sni->pick(sni->owner, name);
  if (ctx == NULL || ctx == SSL_get_SSL_CTX(ssl) || SSL_set_SSL_CTX(ssl, ctx) == NULL) return;
  SSL_clear_options(ssl, SSL_get_options(ssl) & ~SSL_CTX_get_options(ctx));
  SSL_set_options(ssl, SSL_CTX_get_options(ctx));
  SSL_set_min_proto_version(ssl, SSL_CTX_get_min_proto_version(ctx));
  SSL_set_max_proto_version(ssl, SSL_CTX_get_max_proto_version(ctx));
}

/* The server_name extension (RFC 6066 section 3): a list whose first host_name entry is the name. 1 with the
 * name in out, 0 without one (or a malformed one: OpenSSL refuses it when it parses the extension). */
static int hello_server_name(SSL *ssl, char out[256]) {
  const unsigned char *p;
  size_t len;
  if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) || len < 5) return 0;
  size_t list = (size_t)p[0] << 8 | p[1], n = (size_t)p[3] << 8 | p[4];
  if (list != len - 2 || p[2] != TLSEXT_NAMETYPE_host_name || n == 0 || n > 255 || n > len - 5) return 0;
  if (memchr(p + 5, '\0', n)) return 0;
  memcpy(out, p + 5, n);
  out[n] = '\0';
  return 1;
}

static int on_client_hello(SSL *ssl, int *alert, void *arg) {
  (void)alert, (void)arg;
  char name[256];
  if (hello_server_name(ssl, name)) switch_context(ssl, name);
  return SSL_CLIENT_HELLO_SUCCESS;
}

/* Acknowledges the name (the context was chosen in the client hello callback). */
static int on_servername(SSL *ssl, int *alert, void *arg) {
  (void)alert, (void)arg;
  return SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) ? SSL_TLSEXT_ERR_OK : SSL_TLSEXT_ERR_NOACK;
}

/* The handshake's secrets, for the connection (io/tls.c keeps the application traffic secrets): never logged. */
static void on_keylog(const SSL *ssl, const char *line) {
  tether__tls_sni *sni = SSL_get_app_data(ssl);
  if (sni && sni->secret) sni->secret(sni, line);
}

/* The session id context: a digest of the server's first certificate (its first ssl_certificate, just loaded),
 * so that a session resumes only on a server with that certificate, not on another virtual server whose name
 * the client never verified (nginx digests every certificate; the first one alone keeps instances that add a
 * second key type to a fleet resuming each other's sessions). */
static void session_context(SSL_CTX *ctx) {
  unsigned char md[EVP_MAX_MD_SIZE], *der = NULL;
  unsigned int n = 0;
  X509 *x = SSL_CTX_get0_certificate(ctx);
  int len = x ? i2d_X509(x, &der) : -1;
  if (len > 0 && EVP_Digest(der, (size_t)len, md, &n, EVP_sha256(), NULL) == 1)
    SSL_CTX_set_session_id_context(ctx, md, n < SSL_MAX_SID_CTX_LENGTH ? n : SSL_MAX_SID_CTX_LENGTH);
  OPENSSL_free(der);
  ERR_clear_error();
}

/* ALPN: h2 when the server (the one SNI chose: OpenSSL asks its context) serves HTTP/2 and the client offers
 * it, else http/1.1; a client that offers neither goes on without ALPN, as nginx. */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                   unsigned int inlen, void *arg) {
  (void)ssl;
  static const unsigned char h2[] = "\x02h2\x08http/1.1", h1[] = "\x08http/1.1";
  unsigned char *sel = NULL;
  if (arg && SSL_select_next_proto(&sel, outlen, h2, sizeof(h2) - 1, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
  }
  if (SSL_select_next_proto(&sel, outlen, h1, sizeof(h1) - 1, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

/* One server's context: its certificates and settings (inherited from the http level where it has none). */
static SSL_CTX *server_ctx(const tether__cf_tls *t, int http2, errbuf *e) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL) {
    fail(e, t->line, "cannot create a TLS context");
    return NULL;
  }
  protocols_and_suites(ctx, t, e);
  for (int i = 0; i < t->ncert; i++) {
    load_pair(ctx, t->cert[i], t->key[i], t->cert_line[i], "", e);
    if (i == 0) session_context(ctx);
  }
  load_ticket_keys(ctx, t, e);
  SSL_CTX_set_client_hello_cb(ctx, on_client_hello, NULL); /* SNI may move a handshake to another server */
  SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
  SSL_CTX_set_alpn_select_cb(ctx, on_alpn, http2 ? ctx : NULL);
  SSL_CTX_set_keylog_callback(ctx, on_keylog); /* TLS 1.3's record layer after the handshake (io/tls_record.c) */
  return ctx;
}

int tether__tls_build(tether__config *cf, char *err, size_t errlen) {
  if (keys_index < 0) keys_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_keys);
  if (client_index < 0) client_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_client);
  if (server_index < 0) server_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
  errbuf e = {.p = err, .cap = errlen, .cf = cf};
  if (errlen) err[0] = '\0';
  ERR_clear_error();
  for (size_t v = 0; v < cf->nvservers; v++) {
    tether__cf_vserver *vs = &cf->vservers[v];
    int ssl = 0;
    for (size_t i = 0; i < cf->nlisten; i++) ssl |= (vs->listens & (1u << i)) && cf->listen_ssl[i];
    if (ssl) vs->tls_ctx = server_ctx(&vs->tls, vs->http2 > 0, &e);
  }
  for (size_t k = 0; k < cf->nupstreams; k++)
    if (cf->upstreams[k].https) build_client(&cf->upstreams[k], &e);
  if (e.n) {
    tether__tls_release(cf);
    return -1;
  }
  return 0;
}

void tether__tls_release(tether__config *cf) {
  for (size_t v = 0; v < cf->nvservers; v++) {
    SSL_CTX_free(cf->vservers[v].tls_ctx);
    cf->vservers[v].tls_ctx = NULL;
  }
  for (size_t k = 0; k < cf->nupstreams; k++) {
    SSL_CTX_free(cf->upstreams[k].tls_ctx); /* connections in flight keep it (SSL_new took a reference) */
    cf->upstreams[k].tls_ctx = NULL;
  }
}
