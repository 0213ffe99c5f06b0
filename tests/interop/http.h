/* A minimal blocking HTTP/1.1 client for the interop tests and benchmarks: one request per connection
 * (Connection: close), loopback only, bounded by a timeout on connect, each send and each receive. */
#ifndef TETHER_INTEROP_HTTP_H
#define TETHER_INTEROP_HTTP_H

#include <stddef.h>

typedef struct ti_http_response {
  int status;            /* 0 when no response arrived */
  char *set_cookie;      /* "name=value" of the first Set-Cookie header (malloc'd), or NULL */
  char *set_cookie_full; /* the whole first Set-Cookie header value (malloc'd), or NULL */
  char *body;            /* NUL-terminated (malloc'd), or NULL */
  size_t body_len;
} ti_http_response;

/* Sends method path to 127.0.0.1:port with an optional Cookie header and an optional JSON body.
 * Returns 0 with *resp filled, or -1 with a message on stderr. */
int ti_http(int port, const char *method, const char *path, const char *cookie, const char *json_body, int timeout_ms,
            ti_http_response *resp);
void ti_http_free(ti_http_response *resp);

#endif
