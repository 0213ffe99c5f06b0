/* libFuzzer harness for the balancer's configuration reader: any text gets either a configuration or
 * errors with file:line, never a crash or a read past the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/balancer/config.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 65536) return 0;
  char *copy = malloc(size ? size : 1);
  memcpy(copy, data, size);
  static tether__config cf;
  char err[2048];
  int rc = tether__config_parse("fuzz.conf", copy, size, &cf, err, sizeof(err));
  if (rc < 0 && strncmp(err, "fuzz.conf:", 10) != 0) abort(); /* every error names file:line */
  if (rc == 0 && (cf.nlisten == 0 || (cf.nlocations == 0 && cf.ret.status == 0))) abort(); /* something answers */
  if (rc == 0) tether__config_release(&cf);
  free(copy);
  return 0;
}
