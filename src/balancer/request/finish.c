/* The end of a request. */
#include "finish.h"

#include "../worker.h"

void tether__request_finish(tether__client *c) {
  if (!c->active) return;
  tether__worker *w = c->w;
  c->active = 0;
  if (c->srv >= 0 && c->rt) { /* ended without the server's answer (the client went away), or a tunnel */
    tether__server_state *srv = c->rt->ups[c->ups].servers[c->srv];
    int cls = c->state == TETHER__CS_TUNNEL ? TETHER__CLASS_1XX : TETHER__CLASS_ERR; /* a tunnel's answer: 101 */
    atomic_fetch_sub_explicit(&srv->active, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&srv->per_worker[w->id].requests[cls], 1, memory_order_relaxed);
    c->srv = -1;
  }
  uint64_t us = tether__mono_us() - c->start_us;
  tether__latency_count(w->latency_buckets, &w->latency_sum_us, us);
  tether__log_request(c, us);
  tether__runtime_unref(c->rt);
  c->rt = NULL;
  c->rq->replay.len = 0;
  c->added_ready = 0; /* an answer with no request (a 408 on an idle connection) takes the server's add_header */
  if (c->closing) return;
  c->proto->finished(c);
}
