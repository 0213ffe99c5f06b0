/* connect-redis's TTL rule, shared by the stores. */
#include "store_impl.h"

int64_t tether__ttl_seconds(int64_t expires_ms, int64_t now_ms) {
  if (expires_ms == 0) return 86400;
  int64_t ms = expires_ms - now_ms;
  if (ms <= 0) return 0;
  return (ms + 999) / 1000;
}
