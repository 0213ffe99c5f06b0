/* The balancer's own answers: errors, `return` locations, edge authentication refusals. */
#ifndef TETHER_BALANCER_ANSWER_H
#define TETHER_BALANCER_ANSWER_H

#include "conn-t.h"

/* Answers with a short text (body NULL: the reason phrase) and ends the request. keep: the connection may
 * go on (for a 2xx/3xx/4xx answer to a complete request). */
void tether__respond(tether__client *c, int status, const char *body, int keep);
/* Answers with a body of a given type and extra header lines ("Name: value\r\n"...). */
void tether__respond_with(tether__client *c, int status, const char *type, const char *extra, const char *body);
/* Reads and drops the body of a request answered without proxying (head_len: its head's length in c->in),
 * so that the connection stays in step, or will close. */
void tether__skip_body(tether__client *c, const tether__h1_msg *m, int head_len);

#endif
