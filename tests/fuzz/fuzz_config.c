/* libFuzzer harness for the balancer's configuration reader: any text gets either a configuration or
 * errors with file:line (fuzz.conf's, or an included file's), never a crash or a read past the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/balancer/config.c"

/* The errors start "FILE:LINE: " (a quoted value may span lines, so only the first is checked). */
static int names_file_and_line(const char *err) {
  const char *sep = strstr(err, ": "), *d = sep;
  if (sep == NULL) return 0;
  while (d > err && d[-1] >= '0' && d[-1] <= '9') d--;
  return d != sep && d - 1 > err && d[-1] == ':';
}

/* Some server answers every request with its return. */
static int any_return(const tether__config *cf) {
  for (size_t v = 0; v < cf->nvservers; v++)
    if (cf->vservers[v].ret.status) return 1;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 65536) return 0;
  char *copy = malloc(size ? size : 1);
  memcpy(copy, data, size);
  static tether__config cf;
  char err[2048];
  int rc = tether__config_parse("fuzz.conf", copy, size, &cf, err, sizeof(err));
  if (rc < 0 && !names_file_and_line(err)) abort();
  if (rc == 0 && (cf.nlisten == 0 || (cf.nlocations == 0 && !any_return(&cf)))) abort(); /* something answers */
  if (rc == 0) tether__config_release(&cf);
  free(copy);
  return 0;
}
