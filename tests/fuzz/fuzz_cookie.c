/* libFuzzer harness: Cookie header parsing (tether_cookie_get) and signed-cookie verification
 * (tether_cookie_unsign), with the invariants that make them safe to feed from the network. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tether/session.h"
#include "util.h"

static const char *const secrets[] = {"keyboard cat", "old secret"};

static void check_get(const char *header, const char *name, size_t cap) {
  char *out = malloc(cap);
  int n = tether_cookie_get(header, name, out, cap);
  if (n >= 0) {
    if ((size_t)n >= cap || strlen(out) != (size_t)n) abort(); /* fits, NUL-terminated, no NUL inside */
  } else if (n != TETHER_ENOTFOUND && n != TETHER_E2BIG) {
    abort();
  }
  free(out);
}

static void check_unsign(const char *value) {
  size_t cap = strlen(value) + 1;
  char *out = malloc(cap);
  int n = tether_cookie_unsign(value, secrets, 2, out, cap);
  if (n >= 0) {
    /* accepted: it must be exactly what one of the secrets signs */
    char *again = malloc(cap + TETHER_SIG_LEN + 2);
    int ok = 0;
    for (size_t i = 0; i < 2; i++) {
      int m = tether_cookie_sign(out, secrets[i], again, cap + TETHER_SIG_LEN + 2);
      ok |= m >= 0 && strcmp(again, value) == 0;
    }
    if (!ok || strlen(out) != (size_t)n) abort();
    free(again);
  } else if (n != TETHER_EINVAL && n != TETHER_E2BIG) {
    abort();
  }
  free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *header = malloc(size + 1);
  memcpy(header, data, size);
  header[size] = '\0';
  static const char *const names[] = {"connect.sid", "a", "sid", "", " a", "=", "s:", "\t"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    check_get(header, names[i], size + 1);
    check_get(header, names[i], 1);
    check_get(header, names[i], 8);
  }
  /* the session's path: the cookie's value, "s:" stripped, unsigned */
  char *raw = malloc(size + 1);
  int n = tether_cookie_get(header, "connect.sid", raw, size + 1);
  if (n >= 2 && strncmp(raw, "s:", 2) == 0) check_unsign(raw + 2);
  free(raw);
  check_unsign(header);
  /* what is signed verifies, with either secret */
  char *s = malloc(size + TETHER_SIG_LEN + 2);
  if (tether_cookie_sign(header, secrets[1], s, size + TETHER_SIG_LEN + 2) < 0) abort();
  char *back = malloc(size + TETHER_SIG_LEN + 2);
  if (tether_cookie_unsign(s, secrets, 2, back, size + TETHER_SIG_LEN + 2) != (int)strlen(header) ||
      strcmp(back, header) != 0)
    abort();
  free(back);
  free(s);
  free(header);
  return 0;
}
