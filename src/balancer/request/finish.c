/* The end of a request. */
#include "finish.h"

#include "../worker.h"

const double tether__latency_bounds_s[TETHER__LATENCY_NB] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                             0.1,    0.25,  0.5,    1,     2.5,  5,     10};

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
  double s = us / 1e6;
  int b = 0;
  while (b < TETHER__LATENCY_NB && s > tether__latency_bounds_s[b]) b++;
  atomic_fetch_add_explicit(&w->latency_buckets[b], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&w->latency_sum_us, us, memory_order_relaxed);
  tether__log_request(c, us);
  tether__runtime_unref(c->rt);
  c->rt = NULL;
  c->rq->replay.len = 0;
  c->added_ready = 0; /* an answer with no request (a 408 on an idle connection) takes the server's add_header */
  if (c->closing) return;
  c->proto->finished(c);
}
