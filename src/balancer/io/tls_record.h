/* TLS 1.3's record layer (RFC 8446 section 5) in user space, after OpenSSL's handshake: what kernel TLS does,
 * on the worker's loop. A server connection whose handshake OpenSSL finished hands its traffic secrets and
 * sequence numbers over (io/tls.c), frees its SSL, and from then on keeps only the keys: the records are opened
 * and sealed here with OpenSSL's EVP AEADs (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305). */
#ifndef TETHER_BALANCER_IO_TLS_RECORD_H
#define TETHER_BALANCER_IO_TLS_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "transport.h"

#define TETHER__TLSREC_SECRET_MAX 48 /* SHA-384's size */

/* What the handshake leaves: the suite (its TLS id, 0x1301..0x1303), the application traffic secrets each way
 * and the records already protected with them (the server's session tickets). */
typedef struct tether__tlsrec_keys {
  uint16_t suite;
  size_t secret_len;
  unsigned char rx_secret[TETHER__TLSREC_SECRET_MAX]; /* the client's: client_application_traffic_secret_0 */
  unsigned char tx_secret[TETHER__TLSREC_SECRET_MAX];
  uint64_t rx_seq, tx_seq;
  const char *servername; /* SNI's name, copied; NULL without */
  int alpn_h2;
} tether__tlsrec_keys;

/* Whether the record layer handles this suite. */
int tether__tlsrec_supported(uint16_t suite);
/* io's filter becomes the record layer with k (the caller cleanses k); rest[0..len) are bytes already read and
 * not yet opened (the records after the client's Finished), copied: the filter's drain opens them. 0, or a negative
 * code (io's filter unchanged; the caller closes). */
int tether__tlsrec_attach(tether__io *io, const tether__tlsrec_keys *k, const char *rest, size_t len);
/* The name the client sent by SNI, ALPN's choice: NULL / 0 when io is not on the record layer. */
const char *tether__tlsrec_servername(const tether__io *io);
int tether__tlsrec_alpn_h2(const tether__io *io);
/* Whether io is on the record layer. */
int tether__tlsrec_on(const tether__io *io);

#endif
