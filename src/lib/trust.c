/* libtether: whether a request is secure, as express decides req.secure with "trust proxy": TLS on the
 * connection, or a trusted proxy as the immediate peer saying X-Forwarded-Proto: https. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tether/session.h"
#include "util.h"

/* Parses ip into 16 bytes; an IPv4-mapped IPv6 address becomes IPv4. */
static int parse_ip(const char *ip, int *family, uint8_t addr[16]) {
  memset(addr, 0, 16);
  if (inet_pton(AF_INET, ip, addr) == 1) {
    *family = AF_INET;
    return 0;
  }
  if (inet_pton(AF_INET6, ip, addr) != 1) return -1;
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (memcmp(addr, mapped, 12) == 0) {
    memmove(addr, addr + 12, 4);
    memset(addr + 4, 0, 12);
    *family = AF_INET;
  } else {
    *family = AF_INET6;
  }
  return 0;
}

int tether_trusted_proxies_add(tether_trusted_proxies *t, const char *cidr) {
  if (t->count >= TETHER_MAX_TRUSTED_PROXIES)
    return tether__fail(TETHER_EINVAL, "trusted proxies: at most %d networks", TETHER_MAX_TRUSTED_PROXIES);
  char ip[64];
  const char *slash = strchr(cidr, '/');
  size_t n = slash ? (size_t)(slash - cidr) : strlen(cidr);
  if (n == 0 || n >= sizeof(ip)) return tether__fail(TETHER_EINVAL, "trusted proxy '%.64s': not an address", cidr);
  memcpy(ip, cidr, n);
  ip[n] = '\0';
  int family;
  uint8_t addr[16];
  if (parse_ip(ip, &family, addr) < 0)
    return tether__fail(TETHER_EINVAL, "trusted proxy '%.64s': not an IPv4 or IPv6 address", cidr);
  unsigned max = family == AF_INET ? 32 : 128, bits = max;
  if (slash) {
    char *end;
    long b = strtol(slash + 1, &end, 10);
    if (slash[1] == '\0' || *end || b < 0 || b > (long)max)
      return tether__fail(TETHER_EINVAL, "trusted proxy '%.64s': prefix length must be 0 to %u", cidr, max);
    bits = (unsigned)b;
  }
  for (unsigned i = bits; i < 128; i++) addr[i / 8] &= (uint8_t) ~(0x80u >> (i % 8)); /* the network */
  t->net[t->count].family = family;
  memcpy(t->net[t->count].addr, addr, 16);
  t->net[t->count].bits = bits;
  t->count++;
  return 0;
}

int tether_trusted_proxies_contains(const tether_trusted_proxies *t, const char *ip) {
  int family;
  uint8_t addr[16];
  if (t == NULL || ip == NULL || parse_ip(ip, &family, addr) < 0) return 0;
  for (size_t k = 0; k < t->count; k++) {
    if (t->net[k].family != family) continue;
    unsigned bits = t->net[k].bits, i = 0;
    for (; i + 8 <= bits; i += 8)
      if (addr[i / 8] != t->net[k].addr[i / 8]) break;
    if (i + 8 <= bits) continue;
    uint8_t mask = (uint8_t)(0xff00u >> (bits - i));
    if (bits == i || (addr[i / 8] & mask) == t->net[k].addr[i / 8]) return 1;
  }
  return 0;
}

int tether_request_is_secure(int tls, const char *peer_ip, const char *x_forwarded_proto,
                             const tether_trusted_proxies *t) {
  if (tls) return 1;
  if (x_forwarded_proto == NULL || !tether_trusted_proxies_contains(t, peer_ip)) return 0;
  /* express's req.protocol: the first comma-separated value, trimmed */
  const char *p = x_forwarded_proto;
  while (*p == ' ' || *p == '\t') p++;
  size_t n = strcspn(p, ",");
  while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
  return n == 5 && memcmp(p, "https", 5) == 0;
}
