/* libFuzzer harness: store URL parsing (tether__url_parse) and redaction (tether__url_redact). Only
 * memory: and jwt: URLs reach tether_store_open: nothing here opens a connection or a file. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "store/store_impl.h"
#include "util.h"

static void quiet(tether_log_level level, const char *msg, void *arg) { (void)level, (void)msg, (void)arg; }

static void check_parsed(const tether__url *u) {
  for (const char *p = u->scheme; *p; p++)
    if (*p >= 'A' && *p <= 'Z') abort(); /* lower-cased */
  if (u->nhosts > TETHER__URL_MAX_HOSTS || u->nparams > TETHER__URL_MAX_PARAMS || u->path == NULL) abort();
  for (size_t i = 0; i < u->nhosts; i++)
    if (u->hosts[i].host == NULL || u->hosts[i].host[0] == '\0' || u->hosts[i].port < 0 || u->hosts[i].port > 65535)
      abort();
  for (size_t i = 0; i < u->nparams; i++) {
    if (u->params[i].key[0] == '\0') abort();
    if (tether__url_param(u, u->params[i].key) == NULL) abort();
    long v;
    (void)tether__url_param_int(u, u->params[i].key, 0, -1000, 1000, &v);
  }
  static const char *const allowed[] = {"max", "timeout_ms", NULL};
  (void)tether__url_check_params(u, allowed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int init;
  if (!init) tether_log_set(quiet, NULL), init = 1;
  char *text = malloc(size + 1);
  memcpy(text, data, size);
  text[size] = '\0';

  tether__url u;
  int rc = tether__url_parse(text, &u);
  char *red = tether__url_redact(text);
  if (rc == 0) {
    check_parsed(&u);
    /* a hierarchical URL redacted still parses, to the same hosts, with the password hidden */
    const char *colon = strchr(text, ':');
    if (colon && strncmp(colon + 1, "//", 2) == 0) {
      tether__url r;
      if (tether__url_parse(red, &r) != 0) abort();
      if (r.nhosts != u.nhosts || (u.password != NULL) != (r.password != NULL)) abort();
      for (size_t i = 0; i < u.nhosts; i++)
        if (strcmp(r.hosts[i].host, u.hosts[i].host) != 0 || r.hosts[i].port != u.hosts[i].port) abort();
      if (r.password && strcmp(r.password, "***") != 0) abort();
      if (u.user && (r.user == NULL || strcmp(u.user, r.user) != 0)) abort();
      tether__url_free(&r);
    }
    tether__url_free(&u);
  } else if (rc != TETHER_EINVAL || tether_last_error()[0] == '\0') {
    abort(); /* a failure always says why */
  }
  free(red);

  /* stores that neither connect nor open files */
  if (strncasecmp(text, "memory:", 7) == 0 || strncasecmp(text, "jwt:", 4) == 0) {
    tether_store *st = NULL;
    if (tether_store_open(text, &st) == 0) {
      if (tether_store_url(st) == NULL) abort();
      tether_store_close(st);
    } else if (st != NULL) {
      abort();
    }
  }
  free(text);
  return 0;
}
