/* A connection's timeout as a deadline over a lazily re-armed libuv timer. A request moves its connection's
 * timeout several times (the head's, the body's, keep-alive's; a server's send and read timeouts) and each
 * uv_timer_start or uv_timer_stop is a heap operation. Here setting a deadline only writes it down while the
 * timer is armed to fire no later; clearing it only forgets it. The timer then fires early now and then (at
 * most once per timeout's length), finds the deadline moved or gone, and re-arms itself for the rest: a
 * kept-alive connection in steady use costs no timer operation per request.
 *
 * The owner's callback begins with tether__deadline_due and returns when it says 0. Whoever starts the same
 * uv_timer_t with another callback must stop it before the deadline is set again (h2.c does; a server connection's
 * pool sets its idle time as a deadline with the exchange's callback). */
#ifndef TETHER_BALANCER_IO_DEADLINE_H
#define TETHER_BALANCER_IO_DEADLINE_H

#include <stdint.h>
#include <uv.h>

/* The timeout is ms from now (the loop's time, as libuv's timers); cb is the timer's only callback. */
static inline void tether__deadline_set(uv_timer_t *t, uint64_t *due, uv_timer_cb cb, int64_t ms) {
  uint64_t in = (uint64_t)(ms > 0 ? ms : 1);
  *due = uv_now(t->loop) + in;
  if (uv_is_active((const uv_handle_t *)t) && uv_timer_get_due_in(t) <= in) return; /* fires first, re-arms */
  uv_timer_start(t, cb, in, 0);
}

/* No timeout: the armed timer, when it fires, finds nothing due. */
static inline void tether__deadline_clear(uint64_t *due) { *due = 0; }

/* In the timer's callback: 1 when the deadline has come (and it is cleared), 0 when it moved (the timer is
 * armed again for the rest) or there is none. */
static inline int tether__deadline_due(uv_timer_t *t, uint64_t *due, uv_timer_cb cb) {
  uint64_t now = uv_now(t->loop);
  if (*due == 0) return 0;
  if (now >= *due) {
    *due = 0;
    return 1;
  }
  uv_timer_start(t, cb, *due - now, 0);
  return 0;
}

#endif
