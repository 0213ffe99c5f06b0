/* libFuzzer harness for the PROXY protocol parser: no crash, no read past the input, and a header found in
 * a prefix is the header found in the whole. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/balancer/proxyproto.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *copy = malloc(size ? size : 1);
  memcpy(copy, data, size);
  struct sockaddr_storage a, b;
  int n = tether__proxyproto_parse(copy, size, &a);
  if (n > (int)size) abort();
  if (n > 0) {
    int m = tether__proxyproto_parse(copy, (size_t)n, &b);
    if (m != n) abort();
  }
  free(copy);
  return 0;
}
