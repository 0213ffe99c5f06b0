/* The end of a request, however it ended: counters, the access log line, and the connection's next step. */
#ifndef TETHER_BALANCER_REQUEST_FINISH_H
#define TETHER_BALANCER_REQUEST_FINISH_H

#include "../conn-t.h"

/* Ends the request in progress (nothing when none is): a server still counted as busy with it is
 * released, latency and the log line are recorded, and the protocol is told (unless the connection is
 * closing). */
void tether__request_finish(tether__client *c);

#endif
