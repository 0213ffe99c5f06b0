/* The balancer's own answers: errors, `return` answers and redirects, edge authentication refusals. Each
 * carries the add_header lines its status allows. */
#ifndef TETHER_BALANCER_ANSWER_H
#define TETHER_BALANCER_ANSWER_H

#include "conn-t.h"

/* Answers with a short text (body NULL: the reason phrase) and ends the request. keep: the connection may
 * go on (for a 2xx/3xx/4xx answer to a complete request). */
void tether__respond(tether__client *c, int status, const char *body, int keep);
/* Answers with a body of a given type and extra header lines ("Name: value\r\n"...). */
void tether__respond_with(tether__client *c, int status, const char *type, const char *extra, const char *body);
/* A redirect (301, 302, 303, 307, 308): a Location header and nginx's short HTML page. */
void tether__respond_redirect(tether__client *c, int status, const char *location);
/* Reads and drops the body of a request answered without proxying (head_len: its head's length in c->in),
 * so that the connection stays in step, or will close. */
void tether__skip_body(tether__client *c, const tether__h1_msg *m, int head_len);

#endif
