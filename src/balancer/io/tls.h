/* TLS as a transport filter: OpenSSL over memory BIOs on the event loop, never blocking. */
#ifndef TETHER_BALANCER_IO_TLS_H
#define TETHER_BALANCER_IO_TLS_H

#include "transport.h"

/* Makes io a TLS server connection with ctx (an SSL_CTX). 0, or a negative code (the caller closes). */
int tether__tls_accept(tether__io *io, void *ctx);

#endif
