/* PROXY protocol v1 (text) and v2 (binary) headers, strictly. */
#include "proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char v2sig[12] = {'\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};

static int parse_port(const char *s, size_t n, uint16_t *port) {
  if (n == 0 || n > 5 || (n > 1 && s[0] == '0')) return -1;
  unsigned v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  if (v > 65535) return -1;
  *port = (uint16_t)v;
  return 0;
}

/* "PROXY TCP4 192.0.2.1 192.0.2.2 56324 443\r\n" (at most 107 bytes) */
static int parse_v1(const char *buf, size_t len, struct sockaddr_storage *src) {
  const char *end = memchr(buf, '\n', len < 107 ? len : 107);
  if (end == NULL) return len >= 107 ? -1 : 0;
  if (end == buf || end[-1] != '\r') return -1;
  size_t n = (size_t)(end - buf) - 1; /* without CR LF */
  char line[108];
  memcpy(line, buf, n);
  line[n] = '\0';
  char *fields[6];
  int nf = 0;
  char *save = NULL;
  for (char *t = strtok_r(line, " ", &save); t && nf < 6; t = strtok_r(NULL, " ", &save)) fields[nf++] = t;
  if (nf < 2 || strcmp(fields[0], "PROXY") != 0) return -1;
  memset(src, 0, sizeof(*src));
  if (strcmp(fields[1], "UNKNOWN") == 0) {
    src->ss_family = AF_UNSPEC;
    return (int)(end - buf) + 1;
  }
  /* exactly one space between fields: re-check the length the fields account for */
  if (nf != 6) return -1;
  size_t want = 5;
  for (int i = 0; i < 6; i++) want += strlen(fields[i]);
  if (want != n) return -1;
  uint16_t sport, dport;
  if (parse_port(fields[4], strlen(fields[4]), &sport) < 0 || parse_port(fields[5], strlen(fields[5]), &dport) < 0)
    return -1;
  if (strcmp(fields[1], "TCP4") == 0) {
    struct sockaddr_in *s4 = (struct sockaddr_in *)src;
    struct in_addr dst;
    if (inet_pton(AF_INET, fields[2], &s4->sin_addr) != 1 || inet_pton(AF_INET, fields[3], &dst) != 1) return -1;
    s4->sin_family = AF_INET;
    s4->sin_port = htons(sport);
  } else if (strcmp(fields[1], "TCP6") == 0) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)src;
    struct in6_addr dst;
    if (inet_pton(AF_INET6, fields[2], &s6->sin6_addr) != 1 || inet_pton(AF_INET6, fields[3], &dst) != 1) return -1;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(sport);
  } else {
    return -1;
  }
  return (int)(end - buf) + 1;
}

static int parse_v2(const unsigned char *b, size_t len, struct sockaddr_storage *src) {
  if (len < 16) return 0;
  int ver = b[12] >> 4, cmd = b[12] & 0x0f;
  if (ver != 2 || cmd > 1) return -1;
  size_t plen = (size_t)b[14] << 8 | b[15];
  if (plen > 1024) return -1;
  if (len < 16 + plen) return 0;
  memset(src, 0, sizeof(*src));
  int fam = b[13] >> 4, proto = b[13] & 0x0f;
  if (cmd == 0 || fam == 0) { /* LOCAL (health checks of the proxy itself) or UNSPEC */
    src->ss_family = AF_UNSPEC;
    return (int)(16 + plen);
  }
  if (proto != 1 && proto != 2) return -1;
  if (fam == 1) {
    if (plen < 12) return -1;
    struct sockaddr_in *s4 = (struct sockaddr_in *)src;
    s4->sin_family = AF_INET;
    memcpy(&s4->sin_addr, b + 16, 4);
    memcpy(&s4->sin_port, b + 24, 2);
  } else if (fam == 2) {
    if (plen < 36) return -1;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)src;
    s6->sin6_family = AF_INET6;
    memcpy(&s6->sin6_addr, b + 16, 16);
    memcpy(&s6->sin6_port, b + 48, 2);
  } else if (fam == 3) {
    src->ss_family = AF_UNSPEC; /* AF_UNIX: no address to use */
  } else {
    return -1;
  }
  return (int)(16 + plen);
}

int tether__proxyproto_parse(const char *buf, size_t len, struct sockaddr_storage *src) {
  if (len == 0) return 0;
  if ((unsigned char)buf[0] == '\r') {
    size_t k = len < sizeof(v2sig) ? len : sizeof(v2sig);
    if (memcmp(buf, v2sig, k) != 0) return -2;
    if (len < sizeof(v2sig)) return 0;
    return parse_v2((const unsigned char *)buf, len, src);
  }
  if (buf[0] == 'P') {
    size_t k = len < 6 ? len : 6;
    if (memcmp(buf, "PROXY ", k) != 0) return -2;
    if (len < 6) return 0;
    return parse_v1(buf, len, src);
  }
  return -2;
}
