/* add_header: the headers the configuration adds to responses to clients. Their values are expanded once per
 * request, while its head is at hand (a server's answer, a timeout or an error comes when it is gone), and
 * each response takes those its status allows, as nginx's headers module does. */
#ifndef TETHER_BALANCER_REQUEST_ADD_HEADER_H
#define TETHER_BALANCER_REQUEST_ADD_HEADER_H

#include "../config.h"
#include "../conn-t.h"
#include "tether/jwt.h"

/* The list that applies where a request is answered: the location's when it has any, else the server's. */
const tether__cf_add_headers *tether__add_headers_of(const tether__config *cf, const tether__cf_location *loc);

/* Expands h's values for the request whose head is m (NULL: none was parsed) into c->added; claims give
 * $jwt_claim_NAME (NULL: empty). A value that comes out empty, or with control characters, adds nothing. */
void tether__add_headers_prepare(tether__client *c, const tether__cf_add_headers *h, const tether__h1_msg *m,
                                 const tether_jwt_claims *claims);

/* Appends to a response head the lines a response with this status takes (every one for 200, 201, 204, 206,
 * 301, 302, 303, 304, 307 and 308, else the `always` ones). A request answered before any list was
 * prepared (an unparsable head, a timeout) gets the server's. */
void tether__add_headers_put(tether__client *c, int status, tether__buf *b);

#endif
