/* What a request becomes on its way to a server, and which headers never cross the balancer. The request
 * head is rebuilt from the parsed one: hop-by-hop headers (RFC 9110 section 7.6.1, and every header the
 * Connection field names) are removed, claim headers are only ever the balancer's own, proxy_set_header
 * replaces or removes what it names, and the X-Forwarded-* / Forwarded headers say who the client is. */
#ifndef TETHER_BALANCER_REWRITE_H
#define TETHER_BALANCER_REWRITE_H

#include "../../lib/util.h"
#include "../config.h"
#include "../conn-t.h"
#include "../http1.h"
#include "../runtime.h"
#include "tether/jwt.h"

typedef struct tether__fwd {
  const tether__config *cf;
  const char *server_name; /* the virtual server's first name: $host when the request has no Host */
  const tether__cf_location *loc;
  const tether__upstream_rt *ur;
  const tether_jwt_claims *claims; /* verified claims where auth_jwt applies, else NULL */
  const char *conn_ip;             /* the connection's client (the socket peer, or a trusted PROXY header's) */
  const char *remote_addr;         /* the client as X-Forwarded-For from trusted proxies resolves it */
  const char *scheme;              /* "http" or "https": the connection's, or a trusted proxy's */
  int upgrade;                     /* a WebSocket upgrade is forwarded */
} tether__fwd;

/* The request head for the server, into out (emptied first). */
void tether__rewrite_request(const tether__h1_msg *m, const tether__fwd *x, tether__buf *out);

/* Whether a header must not be forwarded in either direction: the hop-by-hop fields, and every field the
 * message's Connection headers list. tether__hop_init gathers them once per message (the balancer refuses
 * requests with more than TETHER__HOP_MAX Connection headers, so the work per header stays bounded). */
#define TETHER__HOP_MAX 4
typedef struct tether__hop {
  const tether__h1_msg *m;
  tether__slice conn[TETHER__HOP_MAX];
  int n;
  int overflow; /* more Connection headers than that */
  int close;    /* a Connection header of only keep-alive and close listed close (those are not gathered) */
} tether__hop;
void tether__hop_init(tether__hop *h, const tether__h1_msg *m);
int tether__hop_by_hop(const tether__hop *h, tether__slice name);

/* The scheme a trusted proxy reports in X-Forwarded-Proto (its first value, when http or https), or NULL. */
const char *tether__forwarded_proto(const tether__h1_msg *m);

/* Whether every claim header of j can carry its claim's value (present claims only): a value with control
 * characters or too long for a header makes the token unusable here (401). */
int tether__claim_headers_ok(const tether__cf_jwt *j, const tether_jwt_claims *claims);

/* The response head for the client, into b: the server's head without hop-by-hop headers, with the
 * sticky cookie and the balancer's Connection header. Marks the response started (or an interim one
 * sent). */
void tether__rewrite_response(tether__client *c, const tether__h1_msg *m, tether__buf *b);

/* A configured value (text and variables) for this request, appended to b. */
void tether__put_value(tether__buf *b, const tether__key_part *parts, int n, const tether__h1_msg *m,
                       const tether__fwd *x);

/* add_header: the headers the configuration adds to responses to clients. Their values are expanded once per
 * request, while its head is at hand (a server's answer, a timeout or an error comes when it is gone), and
 * each response takes those its status allows, as nginx's headers module does. */
/* The list that applies where a request is answered: the location's when it has any, else the server's. */
const tether__cf_add_headers *tether__add_headers_of(const tether__cf_vserver *vs, const tether__cf_location *loc);

/* Expands h's values for the request whose head is m (NULL: none was parsed) into c->added; claims give
 * $jwt_claim_NAME (NULL: empty). A value that comes out empty, or with control characters, adds nothing. */
void tether__add_headers_prepare(tether__client *c, const tether__cf_add_headers *h, const tether__h1_msg *m,
                                 const tether_jwt_claims *claims);

/* Appends to a response head the lines a response with this status takes (every one for 200, 201, 204, 206,
 * 301, 302, 303, 304, 307 and 308, else the `always` ones). A request answered before any list was
 * prepared (an unparsable head, a timeout) gets the server's. */
void tether__add_headers_put(tether__client *c, int status, tether__buf *b);

/* Whether a value from a request can go in a header: no control characters. */
int tether__no_ctl(const char *v, size_t n);

/* "Name: value\r\n" into b. */
void tether__put_header(tether__buf *b, tether__slice name, const char *value, size_t vn);

#endif
