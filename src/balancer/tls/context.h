/* The OpenSSL server contexts of the servers on ssl addresses (one per server: SNI picks among them), built from the
 * ssl_* directives when a configuration is loaded (files are read here, never while parsing). A reload builds a new
 * one; connections keep the context they started with (OpenSSL counts the references). */
#ifndef TETHER_BALANCER_TLS_CONTEXT_H
#define TETHER_BALANCER_TLS_CONTEXT_H

#include <stddef.h>

#include "../config.h"

/* Builds each server's tls_ctx when it is on an ssl address, and the client context of every https upstream (its
 * tls_ctx). 0, or -1 with "file:line: reason" lines in err (no secret in them). */
int tether__tls_build(tether__config *cf, char *err, size_t errlen);
void tether__tls_release(tether__config *cf);

/* A client SSL for server `server` (its index in the upstream) of the upstream whose client context is ctx: the
 * name its certificate must carry (proxy_ssl_verify), SNI (proxy_ssl_server_name) and the server's last session
 * to resume (proxy_ssl_session_reuse). NULL when out of memory. */
void *tether__tls_client_new(void *ctx, int server);

#endif
