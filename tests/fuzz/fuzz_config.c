/* libFuzzer harness for the balancer's configuration reader: any text gets either a configuration or
 * errors with file:line (fuzz.conf's, or an included file's), never a crash or a read past the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/balancer/config.c"

/* Every error line starts "FILE:LINE: ". */
static int names_file_and_line(const char *err) {
  for (const char *p = err; *p;) {
    const char *eol = strchr(p, '\n');
    if (eol == NULL) return 1; /* cut off by the buffer's size */
    const char *sep = strstr(p, ": "), *d = sep;
    if (sep == NULL || sep > eol) return 0;
    while (d > p && d[-1] >= '0' && d[-1] <= '9') d--;
    if (d == sep || d == p || d[-1] != ':') return 0;
    p = eol + 1;
  }
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 65536) return 0;
  char *copy = malloc(size ? size : 1);
  memcpy(copy, data, size);
  static tether__config cf;
  char err[2048];
  int rc = tether__config_parse("fuzz.conf", copy, size, &cf, err, sizeof(err));
  if (rc < 0 && !names_file_and_line(err)) abort();
  if (rc == 0 && (cf.nlisten == 0 || cf.nlocations == 0)) abort();
  if (rc == 0) tether__config_release(&cf);
  free(copy);
  return 0;
}
