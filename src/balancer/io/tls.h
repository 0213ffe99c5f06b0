/* TLS as a transport filter: OpenSSL over memory BIOs on the event loop, never blocking. */
#ifndef TETHER_BALANCER_IO_TLS_H
#define TETHER_BALANCER_IO_TLS_H

#include "transport.h"

/* Makes io a TLS server connection with ctx (an SSL_CTX). 0, or a negative code (the caller closes). */
int tether__tls_accept(tether__io *io, void *ctx);

/* How a client handshake ended: status 0, or a negative code with the reason (OpenSSL's words, or the
 * certificate check's). The callback may close io. */
typedef void (*tether__tls_handshake_cb)(tether__io *io, int status, const char *why);
/* Makes io (connected, reading) a TLS client connection over ssl (tls/context.c's tether__tls_client_new, taken
 * over) and sends the ClientHello. done runs once when the handshake is over; nothing is read or written before.
 * 0, or a negative code (the caller closes). */
int tether__tls_connect(tether__io *io, void *ssl, tether__tls_handshake_cb done);
/* SNI (virtual servers): pick(owner, name) returns the SSL_CTX of the server that name selects (NULL: keep the
 * one accepted with). A connection's SSL carries it as app data; the contexts' servername callback
 * (tls/context.c) calls it. tether__tls_on_sni sets a connection's. */
typedef void *(*tether__tls_pick_fn)(void *owner, const char *servername);
typedef struct tether__tls_sni tether__tls_sni;
struct tether__tls_sni {
  tether__tls_pick_fn pick;
  void *owner;
  /* The server contexts' key log callback passes each of the connection's secrets on (NSS key log lines): the
   * record layer's traffic secrets (io/tls_record.h). Never written anywhere. */
  void (*secret)(tether__tls_sni *sni, const char *line);
};
void tether__tls_on_sni(tether__io *io, tether__tls_pick_fn pick, void *owner);
/* The name the client sent by SNI; NULL without TLS or SNI. */
const char *tether__tls_servername(const tether__io *io);
/* Whether ALPN chose h2 (tls/context.c's callback offers it where a server serves HTTP/2). */
int tether__tls_alpn_h2(const tether__io *io);

#endif
