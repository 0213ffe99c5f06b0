/* Server health and weight. */
#include "server.h"

#include "../lib/util.h"

static int healthy(const tether__server_state *s, const tether__cf_server *cf, int64_t now) {
  if (cf->down) return 0;
  if (!atomic_load_explicit(&s->health_up, memory_order_relaxed)) return 0;
  return atomic_load_explicit(&s->down_until_ms, memory_order_relaxed) <= now;
}

int tether__server_usable(const tether__server_state *s, const tether__cf_server *cf, int64_t now) {
  return atomic_load_explicit(&s->admin, memory_order_relaxed) == TETHER__ADMIN_UP && healthy(s, cf, now);
}

int tether__server_usable_bound(const tether__server_state *s, const tether__cf_server *cf, int64_t now) {
  return atomic_load_explicit(&s->admin, memory_order_relaxed) != TETHER__ADMIN_DISABLED && healthy(s, cf, now);
}

int tether__server_weight(const tether__server_state *s, const tether__cf_server *cf, int64_t now) {
  int w = atomic_load_explicit(&s->weight, memory_order_relaxed);
  if (w < 1) w = 1;
  int64_t since = atomic_load_explicit(&s->up_since_ms, memory_order_relaxed);
  if (cf->slow_start_ms > 0 && since > 0 && now - since < cf->slow_start_ms) {
    int64_t ramp = (int64_t)w * 100 * (now - since) / cf->slow_start_ms; /* in hundredths */
    w = (int)(ramp / 100);
    if (w < 1) w = 1;
  }
  return w;
}

void tether__server_failed(tether__server_state *s, const tether__cf_server *cf, int64_t now) {
  if (cf->max_fails == 0) return;
  int64_t start = atomic_load_explicit(&s->fail_window_ms, memory_order_relaxed);
  if (now - start > cf->fail_timeout_ms) {
    atomic_store_explicit(&s->fail_window_ms, now, memory_order_relaxed);
    atomic_store_explicit(&s->fails, 0, memory_order_relaxed);
  }
  int f = atomic_fetch_add_explicit(&s->fails, 1, memory_order_relaxed) + 1;
  if (f >= cf->max_fails) {
    atomic_store_explicit(&s->down_until_ms, now + cf->fail_timeout_ms, memory_order_relaxed);
    atomic_store_explicit(&s->up_since_ms, now + cf->fail_timeout_ms, memory_order_relaxed);
    atomic_store_explicit(&s->fails, 0, memory_order_relaxed);
    tether__log(TETHER_LOG_WARN, "upstream %s: server %s failed %d time(s), out for %lld ms", s->upstream, s->name, f,
                (long long)cf->fail_timeout_ms);
  }
}

void tether__server_succeeded(tether__server_state *s) {
  if (atomic_load_explicit(&s->fails, memory_order_relaxed) != 0)
    atomic_store_explicit(&s->fails, 0, memory_order_relaxed);
}
