/* libFuzzer harness: ISO-8601 parsing (tether__parse_iso8601, express-session's stored expires) and the
 * date formatters it round-trips with. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define JS_MAX_ISO 253402300799999LL /* 9999-12-31T23:59:59.999Z: the last four-digit year */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  memcpy(s, data, size);
  s[size] = '\0';
  int64_t ms = 0;
  char iso[32], http[40];
  if (tether__parse_iso8601(s, &ms) == 0) {
    /* what parses formats back to a string that parses to the same instant */
    tether__iso8601(ms, iso);
    int64_t again = 0;
    if (ms >= 0 && ms <= JS_MAX_ISO && (tether__parse_iso8601(iso, &again) != 0 || again != ms)) abort();
    tether__http_date(ms, http);
    if (strlen(http) != 29) abort();
  }
  /* any 64-bit instant formats without trouble */
  if (size >= 8) {
    memcpy(&ms, data, 8);
    tether__iso8601(ms, iso);
    tether__http_date(ms, http);
    if (strlen(iso) != 24) abort();
    int64_t again;
    if (ms >= 0 && ms <= JS_MAX_ISO && (tether__parse_iso8601(iso, &again) != 0 || again != ms)) abort();
  }
  free(s);
  return 0;
}
