/* The configuration's values: sizes, times, addresses, CIDRs, and text with variables; the checked forms
 * name the directive and the bad value. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/util.h"
#include "config-int.h"

int64_t tether__parse_size(const char *s) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || v < 0) return -1;
  int64_t mul = 1;
  if (*end == 'k' || *end == 'K')
    mul = 1024, end++;
  else if (*end == 'm' || *end == 'M')
    mul = 1024 * 1024, end++;
  else if (*end == 'g' || *end == 'G')
    mul = 1024LL * 1024 * 1024, end++;
  if (*end != '\0' || v > INT64_MAX / mul) return -1;
  return v * mul;
}

int64_t tether__parse_time_ms(const char *s) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || v < 0) return -1;
  int64_t mul = 1000;
  if (strcmp(end, "ms") == 0)
    mul = 1;
  else if (strcmp(end, "s") == 0 || *end == '\0')
    mul = 1000;
  else if (strcmp(end, "m") == 0)
    mul = 60000;
  else if (strcmp(end, "h") == 0)
    mul = 3600000;
  else if (strcmp(end, "d") == 0)
    mul = 86400000;
  else
    return -1;
  if (v > INT64_MAX / mul) return -1;
  return v * mul;
}

static int parse_port(const char *s) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == '\0' || *end != '\0' || v < 1 || v > 65535) return -1;
  return (int)v;
}

int tether__addr_parse(const char *text, tether__addr *a) {
  memset(a, 0, sizeof(*a));
  snprintf(a->text, sizeof(a->text), "%s", text);
  char host[64];
  const char *port;
  if (text[0] == '[') {
    const char *rb = strchr(text, ']');
    if (rb == NULL || rb[1] != ':' || (size_t)(rb - text - 1) >= sizeof(host)) return -1;
    memcpy(host, text + 1, (size_t)(rb - text - 1));
    host[rb - text - 1] = '\0';
    port = rb + 2;
  } else {
    const char *colon = strrchr(text, ':');
    if (colon == NULL) {
      snprintf(host, sizeof(host), "*");
      port = text;
    } else {
      if ((size_t)(colon - text) >= sizeof(host)) return -1;
      memcpy(host, text, (size_t)(colon - text));
      host[colon - text] = '\0';
      port = colon + 1;
    }
  }
  int p = parse_port(port);
  if (p < 0) return -1;
  if (strcmp(host, "localhost") == 0) snprintf(host, sizeof(host), "127.0.0.1");
  struct sockaddr_in *s4 = (struct sockaddr_in *)&a->sa;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->sa;
  if (strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0) {
    s4->sin_family = AF_INET;
    s4->sin_addr.s_addr = htonl(INADDR_ANY);
    s4->sin_port = htons((uint16_t)p);
    a->len = sizeof(*s4);
  } else if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)p);
    a->len = sizeof(*s4);
  } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)p);
    a->len = sizeof(*s6);
  } else {
    return -1; /* names are not resolved: a balancer must not depend on DNS at start */
  }
  return 0;
}

int tether__cidr_parse(const char *s, tether__cidr *c) {
  char buf[64];
  snprintf(buf, sizeof(buf), "%s", s);
  char *slash = strchr(buf, '/');
  int bits = -1;
  if (slash) {
    *slash = '\0';
    char *end;
    long b = strtol(slash + 1, &end, 10);
    if (*end != '\0' || slash[1] == '\0' || b < 0) return -1;
    bits = (int)b;
  }
  memset(c, 0, sizeof(*c));
  struct sockaddr_in *s4 = (struct sockaddr_in *)&c->net;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&c->net;
  if (inet_pton(AF_INET, buf, &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    if (bits < 0) bits = 32;
    if (bits > 32) return -1;
  } else if (inet_pton(AF_INET6, buf, &s6->sin6_addr) == 1) {
    s6->sin6_family = AF_INET6;
    if (bits < 0) bits = 128;
    if (bits > 128) return -1;
  } else {
    return -1;
  }
  c->bits = bits;
  return 0;
}

static int prefix_match(const uint8_t *a, const uint8_t *b, int bits) {
  int full = bits / 8, rest = bits % 8;
  if (memcmp(a, b, (size_t)full) != 0) return 0;
  if (rest == 0) return 1;
  uint8_t mask = (uint8_t)(0xff << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

int tether__cidr_match(const tether__cidr *c, const struct sockaddr *sa) {
  if (c->net.ss_family != sa->sa_family) return 0;
  if (sa->sa_family == AF_INET)
    return prefix_match((const uint8_t *)&((const struct sockaddr_in *)&c->net)->sin_addr,
                        (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr, c->bits);
  return prefix_match((const uint8_t *)&((const struct sockaddr_in6 *)&c->net)->sin6_addr,
                      (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr, c->bits);
}

int tether__conf_time(tether__conf_parser *ps, tether__conf_directive *d, const char *v, int64_t *out) {
  int64_t t = tether__parse_time_ms(v);
  if (t < 0) {
    tether__conf_error(ps, d->line, "\"%s\": invalid time \"%s\" (e.g. 500ms, 10s, 1m, 1h)", d->args[0], v);
    return -1;
  }
  *out = t;
  return 0;
}

int tether__conf_size(tether__conf_parser *ps, tether__conf_directive *d, const char *v, uint64_t *out) {
  int64_t s = tether__parse_size(v);
  if (s < 0) {
    tether__conf_error(ps, d->line, "\"%s\": invalid size \"%s\" (e.g. 512, 16k, 1m)", d->args[0], v);
    return -1;
  }
  *out = (uint64_t)s;
  return 0;
}

int tether__conf_int(tether__conf_parser *ps, tether__conf_directive *d, const char *what, const char *v, long min,
                     long max, int *out) {
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (errno || *v == '\0' || *end != '\0' || n < min || n > max) {
    tether__conf_error(ps, d->line, "\"%s\": %s must be an integer from %ld to %ld, got \"%s\"", d->args[0], what, min,
                       max, v);
    return -1;
  }
  *out = (int)n;
  return 0;
}

int tether__conf_flag(tether__conf_parser *ps, tether__conf_directive *d, const char *v, int *out) {
  if (strcmp(v, "on") == 0)
    *out = 1;
  else if (strcmp(v, "off") == 0)
    *out = 0;
  else {
    tether__conf_error(ps, d->line, "\"%s\" takes on or off, got \"%s\"", d->args[0], v);
    return -1;
  }
  return 0;
}

static void unknown_variable(tether__conf_parser *ps, tether__conf_directive *d, const char *text, const char *what) {
  if (what)
    tether__conf_error(ps, d->line,
                       "%s \"%s\": unknown variable (use $host, $remote_addr, $scheme, "
                       "$proxy_add_x_forwarded_for, $request_method, $request_uri, $http_NAME, $cookie_NAME, "
                       "$arg_NAME or $jwt_claim_NAME)",
                       what, text);
  else
    tether__conf_error(ps, d->line,
                       "hash key \"%s\": unknown variable (use $remote_addr, $http_NAME, $cookie_NAME, $arg_NAME, "
                       "$jwt_claim_NAME or $request_uri)",
                       text);
}

/* Text and variables, concatenated: a hash key (what NULL), or a header value or answer (what names it in
 * errors: "proxy_set_header value", ...), which may also use $host, $scheme, $proxy_add_x_forwarded_for and
 * $request_method. Returns the number of parts or -1 after an error; literal text longer than a part is split
 * over several. */
int tether__conf_value(tether__conf_parser *ps, tether__conf_directive *d, const char *text, tether__key_part *parts,
                       int max, const char *what) {
  static const struct {
    const char *prefix;
    int type;
    int has_name;
    int header_only;
  } vars[] = {
      {"$remote_addr", TETHER__KEY_REMOTE_ADDR, 0, 0}, {"$binary_remote_addr", TETHER__KEY_REMOTE_ADDR, 0, 0},
      {"$request_uri", TETHER__KEY_REQUEST_URI, 0, 0}, {"$http_", TETHER__KEY_HTTP, 1, 0},
      {"$cookie_", TETHER__KEY_COOKIE, 1, 0},          {"$arg_", TETHER__KEY_ARG, 1, 0},
      {"$jwt_claim_", TETHER__KEY_JWT_CLAIM, 1, 0},    {"$host", TETHER__KEY_HOST, 0, 1},
      {"$scheme", TETHER__KEY_SCHEME, 0, 1},           {"$proxy_add_x_forwarded_for", TETHER__KEY_PROXY_ADD_XFF, 0, 1},
      {"$request_method", TETHER__KEY_METHOD, 0, 1}};
  int for_header = what != NULL;
  const char *p0 = text;
  int n = 0;
  while (*p0) {
    if (n == max) {
      tether__conf_error(ps, d->line, "%s \"%s\" has too many parts", what ? what : "hash key", text);
      return -1;
    }
    tether__key_part *kp = &parts[n];
    memset(kp, 0, sizeof(*kp));
    if (*p0 != '$') {
      const char *e = strchr(p0, '$');
      size_t len = e ? (size_t)(e - p0) : strlen(p0);
      if (len >= sizeof(kp->text)) len = sizeof(kp->text) - 1; /* the rest goes in the next part */
      kp->type = TETHER__KEY_TEXT;
      memcpy(kp->text, p0, len);
      p0 += len;
      n++;
      continue;
    }
    const char *brace_end = NULL;
    const char *v = p0;
    char tmp[96];
    if (p0[1] == '{') { /* ${name} */
      brace_end = strchr(p0, '}');
      if (brace_end == NULL || (size_t)(brace_end - p0) >= sizeof(tmp)) {
        tether__conf_error(ps, d->line, "%s \"%s\": unclosed ${", what ? what : "hash key", text);
        return -1;
      }
      snprintf(tmp, sizeof(tmp), "$%.*s", (int)(brace_end - p0 - 2), p0 + 2);
      v = tmp;
    }
    int found = 0;
    for (size_t i = 0; i < TETHER__ARRAY_SIZE(vars) && !found; i++) {
      if (vars[i].header_only && !for_header) continue;
      size_t pl = strlen(vars[i].prefix);
      if (strncmp(v, vars[i].prefix, pl) != 0) continue;
      size_t nl = 0;
      if (vars[i].has_name) {
        while (isalnum((unsigned char)v[pl + nl]) || v[pl + nl] == '_' || v[pl + nl] == '-') nl++;
        if (nl == 0 || nl >= sizeof(kp->text)) continue;
        memcpy(kp->text, v + pl, nl);
        if (vars[i].type == TETHER__KEY_HTTP)
          for (size_t k = 0; k < nl; k++) kp->text[k] = kp->text[k] == '_' ? '-' : kp->text[k];
      } else if (isalnum((unsigned char)v[pl]) || v[pl] == '_') {
        continue; /* $remote_address is not $remote_addr */
      }
      kp->type = vars[i].type;
      found = 1;
      p0 = brace_end ? brace_end + 1 : p0 + pl + nl;
    }
    if (!found) {
      unknown_variable(ps, d, text, what);
      return -1;
    }
    n++;
  }
  return n;
}
