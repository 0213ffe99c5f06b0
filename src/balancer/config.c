/* The balancer's configuration reader: nginx's syntax, checked whole, every error with file:line. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/util.h"
#include "tether/jwt.h"

#define MAX_ARGS 16
#define MAX_DEPTH 4

/* a location's proxy_pass name, resolved once every upstream is known */
typedef struct pending {
  char name[128];
  int line;
} pending;

typedef struct parser {
  pending pendings[TETHER__CF_MAX_LOCATIONS];
  const char *file;
  const char *p, *end;
  int line;
  tether__config *cf;
  char *err;
  size_t errlen, errused;
  int nerrors;
} parser;

typedef struct directive {
  char *args[MAX_ARGS]; /* args[0] is the name */
  int nargs;
  int line;
  int block; /* ends with '{' rather than ';' */
} directive;

static void error(parser *ps, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void error(parser *ps, int line, const char *fmt, ...) {
  ps->nerrors++;
  if (ps->errused + 1 >= ps->errlen) return;
  int n = snprintf(ps->err + ps->errused, ps->errlen - ps->errused, "%s:%d: ", ps->file, line);
  if (n > 0 && (size_t)n < ps->errlen - ps->errused) ps->errused += (size_t)n;
  va_list ap;
  va_start(ap, fmt);
  n = vsnprintf(ps->err + ps->errused, ps->errlen - ps->errused, fmt, ap);
  va_end(ap);
  if (n > 0) ps->errused += (size_t)n < ps->errlen - ps->errused ? (size_t)n : ps->errlen - ps->errused - 1;
  if (ps->errused + 1 < ps->errlen) ps->err[ps->errused++] = '\n';
  ps->err[ps->errused] = '\0';
}

/* ---- tokens ---- */

enum { T_EOF = 0, T_WORD, T_SEMI, T_OPEN, T_CLOSE, T_ERROR };

static int next_token(parser *ps, char **word) {
  for (;;) {
    while (ps->p < ps->end && isspace((unsigned char)*ps->p)) {
      if (*ps->p == '\n') ps->line++;
      ps->p++;
    }
    if (ps->p < ps->end && *ps->p == '#') {
      while (ps->p < ps->end && *ps->p != '\n') ps->p++;
      continue;
    }
    break;
  }
  if (ps->p >= ps->end) return T_EOF;
  char c = *ps->p;
  if (c == ';') return ps->p++, T_SEMI;
  if (c == '{') return ps->p++, T_OPEN;
  if (c == '}') return ps->p++, T_CLOSE;
  tether__buf b = {0};
  if (c == '"' || c == '\'') {
    char q = c;
    int start = ps->line;
    ps->p++;
    while (ps->p < ps->end && *ps->p != q) {
      if (*ps->p == '\\' && ps->p + 1 < ps->end) ps->p++;
      if (*ps->p == '\n') ps->line++;
      tether__buf_append(&b, ps->p, 1);
      ps->p++;
    }
    if (ps->p >= ps->end) {
      error(ps, start, "unterminated quoted string");
      tether__buf_free(&b);
      return T_ERROR;
    }
    ps->p++;
  } else {
    while (ps->p < ps->end && !isspace((unsigned char)*ps->p) && *ps->p != ';' && *ps->p != '{' &&
           *ps->p != '}' && *ps->p != '#') {
      if (*ps->p == '\\' && ps->p + 1 < ps->end) ps->p++;
      tether__buf_append(&b, ps->p, 1);
      ps->p++;
    }
  }
  *word = b.data ? b.data : tether__strdup("");
  return T_WORD;
}

static void free_directive(directive *d) {
  for (int i = 0; i < d->nargs; i++) free(d->args[i]);
  d->nargs = 0;
}

/* A directive cut short by a syntax error: its words are freed here, since callers only free the
 * directives they get whole. */
static int syntax_error(directive *d) {
  free_directive(d);
  return -2;
}

/* Reads the next directive: words up to ';' or '{'. 0 at the end of input, -1 at a '}' (end of block),
 * 1 with a directive, -2 on a syntax error. */
static int read_directive(parser *ps, directive *d) {
  d->nargs = 0;
  d->block = 0;
  for (;;) {
    char *w = NULL;
    int line = ps->line;
    int t = next_token(ps, &w);
    if (t == T_WORD) {
      if (d->nargs == 0) d->line = ps->line;
      if (d->nargs == MAX_ARGS) {
        error(ps, line, "too many arguments for \"%s\"", d->args[0]);
        free(w);
        return syntax_error(d);
      }
      d->args[d->nargs++] = w;
      continue;
    }
    if (t == T_ERROR) return syntax_error(d);
    if (t == T_EOF) {
      if (d->nargs) {
        error(ps, d->line, "unexpected end of file, expecting \";\" or \"{\" after \"%s\"", d->args[0]);
        return syntax_error(d);
      }
      return 0;
    }
    if (t == T_CLOSE) {
      if (d->nargs) {
        error(ps, line, "unexpected \"}\" after \"%s\" (missing \";\")", d->args[0]);
        return syntax_error(d);
      }
      return -1;
    }
    if (d->nargs == 0) {
      error(ps, line, "unexpected \"%s\"", t == T_SEMI ? ";" : "{");
      return syntax_error(d);
    }
    d->block = t == T_OPEN;
    return 1;
  }
}

/* Skips a block's contents after an error so parsing can go on and report more. */
static void skip_block(parser *ps) {
  int depth = 1;
  while (depth > 0) {
    char *w = NULL;
    int t = next_token(ps, &w);
    free(w);
    if (t == T_EOF || t == T_ERROR) return;
    if (t == T_OPEN) depth++;
    if (t == T_CLOSE) depth--;
  }
}

/* ---- values ---- */

int64_t tether__parse_size(const char *s) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || v < 0) return -1;
  int64_t mul = 1;
  if (*end == 'k' || *end == 'K') mul = 1024, end++;
  else if (*end == 'm' || *end == 'M') mul = 1024 * 1024, end++;
  else if (*end == 'g' || *end == 'G') mul = 1024LL * 1024 * 1024, end++;
  if (*end != '\0' || v > INT64_MAX / mul) return -1;
  return v * mul;
}

int64_t tether__parse_time_ms(const char *s) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || v < 0) return -1;
  int64_t mul = 1000;
  if (strcmp(end, "ms") == 0) mul = 1;
  else if (strcmp(end, "s") == 0 || *end == '\0') mul = 1000;
  else if (strcmp(end, "m") == 0) mul = 60000;
  else if (strcmp(end, "h") == 0) mul = 3600000;
  else if (strcmp(end, "d") == 0) mul = 86400000;
  else return -1;
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

/* ---- directives ---- */

static int want_args(parser *ps, directive *d, int min, int max) {
  int n = d->nargs - 1;
  if (n < min || n > max) {
    if (min == max) error(ps, d->line, "\"%s\" takes %d argument%s", d->args[0], min, min == 1 ? "" : "s");
    else error(ps, d->line, "\"%s\" takes %d to %d arguments", d->args[0], min, max);
    return -1;
  }
  if (d->block) {
    error(ps, d->line, "\"%s\" takes no block", d->args[0]);
    return -1;
  }
  return 0;
}

static int get_time(parser *ps, directive *d, const char *v, int64_t *out) {
  int64_t t = tether__parse_time_ms(v);
  if (t < 0) {
    error(ps, d->line, "\"%s\": invalid time \"%s\" (e.g. 500ms, 10s, 1m, 1h)", d->args[0], v);
    return -1;
  }
  *out = t;
  return 0;
}

static int get_size(parser *ps, directive *d, const char *v, uint64_t *out) {
  int64_t s = tether__parse_size(v);
  if (s < 0) {
    error(ps, d->line, "\"%s\": invalid size \"%s\" (e.g. 512, 16k, 1m)", d->args[0], v);
    return -1;
  }
  *out = (uint64_t)s;
  return 0;
}

static int get_int(parser *ps, directive *d, const char *what, const char *v, long min, long max, int *out) {
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (errno || *v == '\0' || *end != '\0' || n < min || n > max) {
    error(ps, d->line, "\"%s\": %s must be an integer from %ld to %ld, got \"%s\"", d->args[0], what, min, max, v);
    return -1;
  }
  *out = (int)n;
  return 0;
}

static void server_line(parser *ps, directive *d, tether__cf_upstream *u) {
  if (d->nargs < 2 || d->block) {
    error(ps, d->line, "\"server\" takes an address and parameters");
    return;
  }
  if (u->nservers == TETHER__CF_MAX_SERVERS) {
    error(ps, d->line, "too many servers in upstream \"%s\" (at most %d)", u->name, TETHER__CF_MAX_SERVERS);
    return;
  }
  tether__cf_server *s = &u->servers[u->nservers];
  memset(s, 0, sizeof(*s));
  s->weight = 1;
  s->max_fails = 1;
  s->fail_timeout_ms = 10000;
  if (tether__addr_parse(d->args[1], &s->addr) < 0) {
    error(ps, d->line, "invalid server address \"%s\" (expected IP:PORT; names are not resolved)", d->args[1]);
    return;
  }
  snprintf(s->name, sizeof(s->name), "%s", d->args[1]);
  for (int i = 2; i < d->nargs; i++) {
    const char *a = d->args[i];
    uint64_t dummy;
    (void)dummy;
    if (strncmp(a, "weight=", 7) == 0) get_int(ps, d, "weight", a + 7, 1, 1000, &s->weight);
    else if (strncmp(a, "max_fails=", 10) == 0) get_int(ps, d, "max_fails", a + 10, 0, 1000, &s->max_fails);
    else if (strncmp(a, "fail_timeout=", 13) == 0) get_time(ps, d, a + 13, &s->fail_timeout_ms);
    else if (strncmp(a, "slow_start=", 11) == 0) get_time(ps, d, a + 11, &s->slow_start_ms);
    else if (strcmp(a, "backup") == 0) s->backup = 1;
    else if (strcmp(a, "down") == 0) s->down = 1;
    else if (strcmp(a, "drain") == 0) s->drain = 1;
    else if (strncmp(a, "cookie=", 7) == 0 || strncmp(a, "route=", 6) == 0) {
      /* cookie= is the literal value (HAProxy); route= names the server for the keyed value (NGINX Plus) */
      int route = a[0] == 'r';
      const char *v = strchr(a, '=') + 1;
      size_t n = strlen(v);
      int ok = n > 0 && n < sizeof(s->cookie_id);
      for (size_t k = 0; ok && k < n; k++) ok = isalnum((unsigned char)v[k]) || strchr("-_.", v[k]) != NULL;
      if (!ok) error(ps, d->line, "server %s: %s must be 1-63 letters, digits, '-', '_' or '.'", d->args[1],
                     route ? "route" : "cookie id");
      else snprintf(route ? s->route : s->cookie_id, sizeof(s->cookie_id), "%s", v);
    }
    else error(ps, d->line, "unknown server parameter \"%s\"", a);
  }
  for (size_t k = 0; k < u->nservers; k++)
    if (strcmp(u->servers[k].name, s->name) == 0) error(ps, d->line, "duplicate server \"%s\"", s->name);
  u->nservers++;
}

static void health_line(parser *ps, directive *d, tether__cf_upstream *u) {
  tether__cf_health *h = &u->health;
  h->enabled = 1;
  for (int i = 1; i < d->nargs; i++) {
    const char *a = d->args[i];
    if (strncmp(a, "uri=", 4) == 0) {
      if (a[4] != '/' || strlen(a + 4) >= sizeof(h->uri) || strpbrk(a + 4, " \r\n"))
        error(ps, d->line, "health_check: uri must start with '/' and hold no spaces");
      else snprintf(h->uri, sizeof(h->uri), "%s", a + 4);
    } else if (strncmp(a, "interval=", 9) == 0) get_time(ps, d, a + 9, &h->interval_ms);
    else if (strncmp(a, "timeout=", 8) == 0) get_time(ps, d, a + 8, &h->timeout_ms);
    else if (strncmp(a, "fails=", 6) == 0) get_int(ps, d, "fails", a + 6, 1, 100, &h->fails);
    else if (strncmp(a, "passes=", 7) == 0) get_int(ps, d, "passes", a + 7, 1, 100, &h->passes);
    else if (strncmp(a, "status=", 7) == 0) {
      int lo, hi;
      char extra;
      if (sscanf(a + 7, "%d-%d%c", &lo, &hi, &extra) == 2 && lo >= 100 && hi <= 599 && lo <= hi) {
        h->status_min = lo, h->status_max = hi;
      } else if (sscanf(a + 7, "%d%c", &lo, &extra) == 1 && lo >= 100 && lo <= 599) {
        h->status_min = h->status_max = lo;
      } else {
        error(ps, d->line, "health_check: status must be CODE or LOW-HIGH, got \"%s\"", a + 7);
      }
    } else error(ps, d->line, "unknown health_check parameter \"%s\"", a);
  }
}

/* Text and variables, concatenated: a hash key, or (for_header) a proxy_set_header value, which may also
 * use $host, $scheme, $proxy_add_x_forwarded_for and $request_method. Returns the number of parts or -1
 * after an error; literal text longer than a part is split over several. */
static int parse_value(parser *ps, directive *d, const char *text, tether__key_part *parts, int max, int for_header) {
  static const struct {
    const char *prefix;
    int type;
    int has_name;
    int header_only;
  } vars[] = {{"$remote_addr", TETHER__KEY_REMOTE_ADDR, 0, 0},
              {"$binary_remote_addr", TETHER__KEY_REMOTE_ADDR, 0, 0},
              {"$request_uri", TETHER__KEY_REQUEST_URI, 0, 0},
              {"$http_", TETHER__KEY_HTTP, 1, 0},
              {"$cookie_", TETHER__KEY_COOKIE, 1, 0},
              {"$arg_", TETHER__KEY_ARG, 1, 0},
              {"$jwt_claim_", TETHER__KEY_JWT_CLAIM, 1, 0},
              {"$host", TETHER__KEY_HOST, 0, 1},
              {"$scheme", TETHER__KEY_SCHEME, 0, 1},
              {"$proxy_add_x_forwarded_for", TETHER__KEY_PROXY_ADD_XFF, 0, 1},
              {"$request_method", TETHER__KEY_METHOD, 0, 1}};
  const char *what = for_header ? "proxy_set_header value" : "hash key";
  const char *p0 = text;
  int n = 0;
  while (*p0) {
    if (n == max) {
      error(ps, d->line, "%s \"%s\" has too many parts", what, text);
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
        error(ps, d->line, "%s \"%s\": unclosed ${", what, text);
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
      if (for_header)
        error(ps, d->line, "%s \"%s\": unknown variable (use $host, $remote_addr, $scheme, "
                           "$proxy_add_x_forwarded_for, $request_method, $request_uri, $http_NAME, $cookie_NAME, "
                           "$arg_NAME or $jwt_claim_NAME)", what, text);
      else
        error(ps, d->line, "%s \"%s\": unknown variable (use $remote_addr, $http_NAME, $cookie_NAME, $arg_NAME, "
                           "$jwt_claim_NAME or $request_uri)", what, text);
      return -1;
    }
    n++;
  }
  return n;
}

static int parse_key(parser *ps, directive *d, const char *text, tether__cf_persist *p) {
  int n = parse_value(ps, d, text, p->key, TETHER__KEY_MAX_PARTS, 0);
  if (n < 0) return -1;
  p->nkey = n;
  if (p->nkey == 0) {
    error(ps, d->line, "hash key is empty");
    return -1;
  }
  return 0;
}

static void sticky_cookie(parser *ps, directive *d, tether__cf_persist *p) {
  p->kind = TETHER__PERSIST_COOKIE;
  p->expires_s = -1;
  snprintf(p->path, sizeof(p->path), "/");
  p->httponly = 1; /* a routing cookie is none of a script's business */
  if (d->nargs < 3) {
    error(ps, d->line, "\"sticky cookie\" needs a cookie name");
    return;
  }
  snprintf(p->cookie, sizeof(p->cookie), "%s", d->args[2]);
  if (d->args[2][0] != '\0' && !tether__token_valid(d->args[2])) {
    error(ps, d->line, "sticky cookie name \"%s\" is not a token", d->args[2]);
    return;
  }
  for (int i = 3; i < d->nargs; i++) {
    const char *a = d->args[i];
    int64_t t;
    if (strncmp(a, "expires=", 8) == 0) {
      if (strcmp(a + 8, "max") == 0) p->expires_s = 315360000; /* ten years */
      else if (get_time(ps, d, a + 8, &t) == 0) p->expires_s = t / 1000;
    } else if (strncmp(a, "domain=", 7) == 0) {
      if (strpbrk(a + 7, ";, \t") || strlen(a + 7) >= sizeof(p->domain)) error(ps, d->line, "bad cookie domain");
      else snprintf(p->domain, sizeof(p->domain), "%s", a + 7);
    } else if (strncmp(a, "path=", 5) == 0) {
      if (a[5] != '/' || strpbrk(a + 5, ";, \t") || strlen(a + 5) >= sizeof(p->path)) error(ps, d->line, "bad cookie path");
      else snprintf(p->path, sizeof(p->path), "%s", a + 5);
    } else if (strcmp(a, "httponly") == 0) {
      p->httponly = 1;
    } else if (strcmp(a, "nohttponly") == 0) {
      p->httponly = 0;
    } else if (strcmp(a, "secure") == 0) {
      p->secure = 1;
    } else if (strncmp(a, "samesite=", 9) == 0) {
      if (strcasecmp(a + 9, "strict") == 0) p->samesite = 1;
      else if (strcasecmp(a + 9, "lax") == 0) p->samesite = 2;
      else if (strcasecmp(a + 9, "none") == 0) p->samesite = 3;
      else error(ps, d->line, "samesite must be strict, lax or none");
    } else if (strcmp(a, "insert") == 0) {
      /* the default */
    } else if (strcmp(a, "indirect") == 0) {
      p->indirect = 1;
    } else if (strcmp(a, "nocache") == 0) {
      p->nocache = 1;
    } else if (strcmp(a, "preserve") == 0) {
      p->preserve = 1;
    } else if (strcmp(a, "strict") == 0) {
      p->strict = 1;
    } else if (strncmp(a, "maxidle=", 8) == 0) {
      if (get_time(ps, d, a + 8, &t) == 0) p->maxidle_s = t / 1000;
    } else if (strncmp(a, "maxlife=", 8) == 0) {
      if (get_time(ps, d, a + 8, &t) == 0) p->maxlife_s = t / 1000;
    } else {
      error(ps, d->line, "unknown sticky cookie parameter \"%s\"", a);
    }
  }
  if (p->samesite == 3 && !p->secure) error(ps, d->line, "samesite=none needs secure (browsers drop it otherwise)");
}

static void persist_line(parser *ps, directive *d, tether__cf_upstream *u) {
  tether__cf_persist *p = &u->persist;
  p->line = d->line;
  const char *n = d->args[0];
  if (strcmp(n, "ip_hash") == 0) {
    if (want_args(ps, d, 0, 0) == 0) p->kind = TETHER__PERSIST_IP_HASH;
  } else if (strcmp(n, "hash") == 0) {
    if (d->nargs < 2 || d->nargs > 3) {
      error(ps, d->line, "\"hash\" takes a key and optionally \"consistent\" or \"maglev\"");
      return;
    }
    p->method = TETHER__HASH_MODULO;
    if (d->nargs == 3) {
      if (strcmp(d->args[2], "consistent") == 0) p->method = TETHER__HASH_KETAMA;
      else if (strcmp(d->args[2], "maglev") == 0) p->method = TETHER__HASH_MAGLEV;
      else {
        error(ps, d->line, "\"hash\": unknown method \"%s\" (consistent or maglev)", d->args[2]);
        return;
      }
    }
    if (parse_key(ps, d, d->args[1], p) == 0) p->kind = TETHER__PERSIST_HASH;
  } else if (d->nargs >= 2 && strcmp(d->args[1], "cookie") == 0) {
    sticky_cookie(ps, d, p);
  } else if (d->nargs >= 2 && strcmp(d->args[1], "app_cookie") == 0) {
    if (d->nargs != 3) {
      error(ps, d->line, "\"sticky app_cookie\" takes the application's cookie name");
      return;
    }
    p->kind = TETHER__PERSIST_APP_COOKIE;
    snprintf(p->cookie, sizeof(p->cookie), "%s", d->args[2]);
    p->method = TETHER__HASH_KETAMA;
  } else {
    error(ps, d->line, "\"sticky\" takes \"cookie NAME ...\" or \"app_cookie NAME\"");
  }
}

static void upstream_block(parser *ps, directive *d) {
  tether__config *cf = ps->cf;
  if (d->nargs != 2 || !d->block) {
    error(ps, d->line, "\"upstream\" takes a name and a block");
    if (d->block) skip_block(ps);
    return;
  }
  if (cf->nupstreams == TETHER__CF_MAX_UPSTREAMS) {
    error(ps, d->line, "too many upstreams");
    skip_block(ps);
    return;
  }
  tether__cf_upstream *u = &cf->upstreams[cf->nupstreams];
  memset(u, 0, sizeof(*u));
  snprintf(u->name, sizeof(u->name), "%s", d->args[1]);
  u->line = d->line;
  u->health = (tether__cf_health){.uri = "/", .interval_ms = 5000, .fails = 1, .passes = 1, .status_min = 200,
                                  .status_max = 399, .timeout_ms = 1000};
  for (size_t k = 0; k < cf->nupstreams; k++)
    if (strcmp(cf->upstreams[k].name, u->name) == 0) error(ps, d->line, "duplicate upstream \"%s\"", u->name);
  directive c;
  int rc;
  while ((rc = read_directive(ps, &c)) == 1) {
    const char *n = c.args[0];
    if (strcmp(n, "server") == 0) server_line(ps, &c, u);
    else if (strcmp(n, "least_conn") == 0) {
      if (want_args(ps, &c, 0, 0) == 0) u->balance = TETHER__BALANCE_LEAST_CONN;
    } else if (strcmp(n, "random") == 0) {
      if (want_args(ps, &c, 1, 1) == 0) {
        if (strcmp(c.args[1], "two") == 0) u->balance = TETHER__BALANCE_RANDOM_TWO;
        else error(ps, c.line, "\"random\": only \"random two\" is supported");
      }
    } else if (strcmp(n, "keepalive") == 0) {
      if (want_args(ps, &c, 1, 1) == 0) get_int(ps, &c, "keepalive", c.args[1], 0, 10000, &u->keepalive);
    } else if (strcmp(n, "sticky") == 0 || strcmp(n, "ip_hash") == 0 || strcmp(n, "hash") == 0) {
      if (u->persist.kind != TETHER__PERSIST_NONE)
        error(ps, c.line, "\"%s\": upstream \"%s\" already has a persistence policy (line %d)", n, u->name,
              u->persist.line);
      else if (c.block)
        error(ps, c.line, "\"%s\" takes no block", n);
      else
        persist_line(ps, &c, u);
    } else if (strcmp(n, "hash_balance_factor") == 0) {
      if (want_args(ps, &c, 1, 1) == 0) get_int(ps, &c, "factor", c.args[1], 100, 10000, &u->balance_factor);
    } else if (strcmp(n, "drain_timeout") == 0) {
      if (want_args(ps, &c, 1, 1) == 0) get_time(ps, &c, c.args[1], &u->drain_timeout_ms);
    } else if (strcmp(n, "sticky_secret") == 0) {
      if (want_args(ps, &c, 1, 1) == 0) {
        if (strlen(c.args[1]) < 16 || strlen(c.args[1]) >= sizeof(u->sticky_secret))
          error(ps, c.line, "\"sticky_secret\" must be 16 to 127 characters");
        else snprintf(u->sticky_secret, sizeof(u->sticky_secret), "%s", c.args[1]);
      }
    } else if (strcmp(n, "health_check") == 0) {
      if (c.block) error(ps, c.line, "\"health_check\" takes no block");
      else health_line(ps, &c, u);
    } else {
      error(ps, c.line, "unknown directive \"%s\" in upstream", n);
      if (c.block) skip_block(ps);
    }
    free_directive(&c);
  }
  if (rc == 0) error(ps, d->line, "upstream \"%s\": missing \"}\"", u->name);
  if (u->nservers == 0) error(ps, d->line, "upstream \"%s\" has no server", u->name);
  for (size_t i = 0; i < u->nservers; i++)
    for (size_t k = i + 1; k < u->nservers; k++)
      if (u->servers[i].cookie_id[0] && strcmp(u->servers[i].cookie_id, u->servers[k].cookie_id) == 0)
        error(ps, d->line, "upstream \"%s\": servers %s and %s have the same cookie id", u->name,
              u->servers[i].name, u->servers[k].name);
  for (size_t i = 0; i < u->nservers; i++)
    for (size_t k = i + 1; k < u->nservers; k++) {
      const tether__cf_server *a = &u->servers[i], *b = &u->servers[k];
      if ((a->route[0] || b->route[0]) &&
          strcmp(a->route[0] ? a->route : a->name, b->route[0] ? b->route : b->name) == 0)
        error(ps, d->line, "upstream \"%s\": servers %s and %s have the same route", u->name, a->name, b->name);
    }
  if (u->balance_factor && u->persist.kind != TETHER__PERSIST_HASH && u->persist.kind != TETHER__PERSIST_APP_COOKIE)
    error(ps, d->line, "upstream \"%s\": hash_balance_factor needs \"hash ... consistent|maglev\" or "
                       "\"sticky app_cookie\"", u->name);
  if (u->balance_factor && u->persist.kind == TETHER__PERSIST_HASH && u->persist.method == TETHER__HASH_MODULO)
    error(ps, d->line, "upstream \"%s\": hash_balance_factor needs a consistent or maglev hash", u->name);
  cf->nupstreams++;
}

/* auth_jwt, auth_jwt_key, ... into j. Returns 1 when d was one of them. */
static int jwt_directive(parser *ps, directive *d, tether__cf_jwt *j) {
  const char *n = d->args[0];
  if (strncmp(n, "auth_jwt", 8) != 0) return 0;
  if (d->block) {
    error(ps, d->line, "\"%s\" takes no block", n);
    skip_block(ps);
    return 1;
  }
  if (!j->set) j->leeway_ms = -1;
  j->set = 1;
  if (j->line == 0) j->line = d->line;
  if (strcmp(n, "auth_jwt") == 0) {
    if (want_args(ps, d, 1, 1) < 0) return 1;
    if (strcmp(d->args[1], "off") == 0) {
      j->enabled = 0;
    } else if (strpbrk(d->args[1], "\"\\\r\n") || strlen(d->args[1]) >= sizeof(j->realm)) {
      error(ps, d->line, "auth_jwt: the realm must be under 64 characters, without quotes or backslashes");
    } else {
      j->enabled = 1;
      snprintf(j->realm, sizeof(j->realm), "%s", d->args[1]);
    }
  } else if (strcmp(n, "auth_jwt_key") == 0) {
    if (want_args(ps, d, 1, 3) < 0) return 1;
    if (strcmp(d->args[d->nargs - 1], "weak_secret_ok") == 0) { /* HS* secrets under 32 bytes, knowingly */
      j->weak_secret_ok = 1;
      d->nargs--;
    }
    if (d->nargs > 3) {
      error(ps, d->line, "auth_jwt_key takes a key, optionally an algorithm, and optionally weak_secret_ok");
    } else if (j->nkeys == TETHER__JWT_MAX_KEYS) {
      error(ps, d->line, "auth_jwt_key: at most %d keys", TETHER__JWT_MAX_KEYS);
    } else if (strlen(d->args[1]) >= sizeof(j->keys[0].spec)) {
      error(ps, d->line, "auth_jwt_key: the key specification is too long");
    } else {
      snprintf(j->keys[j->nkeys].spec, sizeof(j->keys[0].spec), "%s", d->args[1]);
      j->keys[j->nkeys].alg[0] = '\0';
      if (d->nargs == 3) {
        if (tether_jwt_alg_from_name(d->args[2]) == TETHER_JWT_ALG_UNKNOWN)
          error(ps, d->line, "auth_jwt_key: unknown algorithm \"%s\" (HS256, RS256, PS256, ES256, EdDSA, ...)", d->args[2]);
        else snprintf(j->keys[j->nkeys].alg, sizeof(j->keys[0].alg), "%s", d->args[2]);
      }
      j->nkeys++;
    }
  } else if (strcmp(n, "auth_jwt_issuer") == 0) {
    if (want_args(ps, d, 1, 1) == 0) snprintf(j->issuer, sizeof(j->issuer), "%s", d->args[1]);
  } else if (strcmp(n, "auth_jwt_audience") == 0) {
    if (want_args(ps, d, 1, 1) < 0) return 1;
    if (j->naudience == 4) error(ps, d->line, "auth_jwt_audience: at most 4");
    else snprintf(j->audience[j->naudience++], sizeof(j->audience[0]), "%s", d->args[1]);
  } else if (strcmp(n, "auth_jwt_leeway") == 0) {
    int64_t t;
    if (want_args(ps, d, 1, 1) == 0 && get_time(ps, d, d->args[1], &t) == 0) {
      if (t > 300000) error(ps, d->line, "auth_jwt_leeway: at most 5m");
      else j->leeway_ms = t;
    }
  } else if (strcmp(n, "auth_jwt_require_exp") == 0) {
    if (want_args(ps, d, 1, 1) == 0) j->require_exp = strcmp(d->args[1], "on") == 0;
  } else if (strcmp(n, "auth_jwt_cookie") == 0) {
    if (want_args(ps, d, 1, 1) == 0) {
      if (!tether__token_valid(d->args[1]) || strlen(d->args[1]) >= sizeof(j->cookie)) error(ps, d->line, "auth_jwt_cookie: bad cookie name");
      else snprintf(j->cookie, sizeof(j->cookie), "%s", d->args[1]);
    }
  } else if (strcmp(n, "auth_jwt_claim_header") == 0) {
    if (want_args(ps, d, 2, 2) < 0) return 1;
    if (j->nclaim_headers == TETHER__JWT_MAX_CLAIM_HEADERS) {
      error(ps, d->line, "auth_jwt_claim_header: at most %d", TETHER__JWT_MAX_CLAIM_HEADERS);
    } else if (strlen(d->args[1]) >= 64 || !tether__token_valid(d->args[2]) || strlen(d->args[2]) >= 64) {
      error(ps, d->line, "auth_jwt_claim_header: CLAIM HEADER-NAME (a header name is a token)");
    } else {
      snprintf(j->claim_headers[j->nclaim_headers].claim, 64, "%s", d->args[1]);
      snprintf(j->claim_headers[j->nclaim_headers].header, 64, "%s", d->args[2]);
      j->nclaim_headers++;
    }
  } else {
    error(ps, d->line, "unknown directive \"%s\"", n);
  }
  return 1;
}

/* proxy_set_header NAME VALUE, as nginx: the value replaces what the client sent under that name, an
 * empty value removes it. Tether frames requests and manages connections to servers itself, so the
 * framing headers cannot be set, and Connection/Upgrade take only what the keep-alive and WebSocket
 * recipes say (which is what Tether does anyway). */
static void set_header_line(parser *ps, directive *d, tether__cf_headers *h) {
  if (want_args(ps, d, 2, 2) < 0) return;
  const char *name = d->args[1], *value = d->args[2];
  h->defined = 1;
  if (!tether__token_valid(name) || strlen(name) >= sizeof(h->set[0].name)) {
    error(ps, d->line, "proxy_set_header: \"%s\" is not a header name", name);
    return;
  }
  static const char *const framing[] = {"content-length", "transfer-encoding", "te",       "keep-alive",
                                        "proxy-connection", "http2-settings", "trailer"};
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(framing); i++)
    if (strcasecmp(name, framing[i]) == 0) {
      error(ps, d->line, "proxy_set_header %s: Tether frames requests to servers itself; this header cannot be set",
            name);
      return;
    }
  if (strcasecmp(name, "connection") == 0) {
    if (value[0] != '\0' && strcasecmp(value, "upgrade") != 0 && strcmp(value, "$connection_upgrade") != 0)
      error(ps, d->line, "proxy_set_header Connection: Tether keeps server connections alive and forwards WebSocket "
                         "upgrades itself; only \"\", \"upgrade\" or $connection_upgrade (the keep-alive and "
                         "WebSocket recipes) are accepted");
    return;
  }
  if (strcasecmp(name, "upgrade") == 0) {
    if (strcmp(value, "$http_upgrade") != 0)
      error(ps, d->line, "proxy_set_header Upgrade: only $http_upgrade (the WebSocket recipe) is accepted; Tether "
                         "forwards WebSocket upgrades itself");
    return;
  }
  for (int i = 0; i < h->nset; i++)
    if (strcasecmp(h->set[i].name, name) == 0) {
      error(ps, d->line, "proxy_set_header %s: set twice at this level", name);
      return;
    }
  if (h->nset == TETHER__CF_MAX_SET_HEADERS) {
    error(ps, d->line, "proxy_set_header: at most %d per level", TETHER__CF_MAX_SET_HEADERS);
    return;
  }
  tether__cf_set_header *sh = &h->set[h->nset];
  memset(sh, 0, sizeof(*sh));
  snprintf(sh->name, sizeof(sh->name), "%s", name);
  int n = parse_value(ps, d, value, sh->value, TETHER__KEY_MAX_PARTS, 1);
  if (n < 0) return;
  sh->nvalue = n;
  h->nset++;
}

/* proxy_http_version: Tether always speaks HTTP/1.1 to servers. */
static void http_version_line(parser *ps, directive *d) {
  if (want_args(ps, d, 1, 1) == 0 && strcmp(d->args[1], "1.1") != 0)
    error(ps, d->line, "proxy_http_version: Tether speaks HTTP/1.1 to servers; only 1.1 is accepted");
}

static void location_body(parser *ps, directive *d, tether__cf_location *loc, char proxy[128], int *proxy_line) {
  directive c;
  int rc;
  while ((rc = read_directive(ps, &c)) == 1) {
    const char *n = c.args[0];
    if (strcmp(n, "proxy_pass") == 0) {
      if (want_args(ps, &c, 1, 1) == 0) {
        if (strncmp(c.args[1], "http://", 7) != 0 || strlen(c.args[1] + 7) >= 128)
          error(ps, c.line, "proxy_pass must be http://UPSTREAM, got \"%s\"", c.args[1]);
        else {
          snprintf(proxy, 128, "%s", c.args[1] + 7);
          size_t l = strlen(proxy);
          if (l && proxy[l - 1] == '/') proxy[l - 1] = '\0';
          *proxy_line = c.line;
        }
      }
    } else if (strcmp(n, "return") == 0) {
      if (want_args(ps, &c, 1, 2) == 0 && get_int(ps, &c, "status", c.args[1], 200, 599, &loc->return_status) == 0 &&
          c.nargs == 3)
        snprintf(loc->return_body, sizeof(loc->return_body), "%s", c.args[2]);
    } else if (jwt_directive(ps, &c, &loc->jwt)) {
      /* handled */
    } else if (strcmp(n, "proxy_set_header") == 0) {
      set_header_line(ps, &c, &loc->headers);
    } else if (strcmp(n, "proxy_http_version") == 0) {
      http_version_line(ps, &c);
    } else {
      error(ps, c.line, "unknown directive \"%s\" in location", n);
      if (c.block) skip_block(ps);
    }
    free_directive(&c);
  }
  if (rc == 0) error(ps, d->line, "location: missing \"}\"");
}

static void location_block(parser *ps, directive *d) {
  tether__config *cf = ps->cf;
  int exact = d->nargs == 3 && strcmp(d->args[1], "=") == 0;
  if (d->nargs == 3 && !exact && d->block) {
    error(ps, d->line, "location \"%s %s\": regex locations are not supported (use a prefix or \"= /path\")",
          d->args[1], d->args[2]);
    skip_block(ps);
    return;
  }
  if (!d->block || !(d->nargs == 2 || exact)) {
    error(ps, d->line, "\"location\" takes a prefix (or \"= /path\") and a block");
    if (d->block) skip_block(ps);
    return;
  }
  const char *prefix = d->args[exact ? 2 : 1];
  if (prefix[0] != '/' || strlen(prefix) >= sizeof(cf->locations[0].prefix)) {
    error(ps, d->line, "location prefix must start with '/' (regex locations are not supported)");
    skip_block(ps);
    return;
  }
  if (cf->nlocations == TETHER__CF_MAX_LOCATIONS) {
    error(ps, d->line, "too many locations");
    skip_block(ps);
    return;
  }
  tether__cf_location *loc = &cf->locations[cf->nlocations];
  memset(loc, 0, sizeof(*loc));
  snprintf(loc->prefix, sizeof(loc->prefix), "%s", prefix);
  loc->exact = exact;
  loc->upstream = -1;
  pending *pd = &ps->pendings[cf->nlocations];
  pd->name[0] = '\0';
  pd->line = d->line;
  location_body(ps, d, loc, pd->name, &pd->line);
  if (pd->name[0] == '\0' && loc->return_status == 0)
    error(ps, d->line, "location \"%s\" has neither proxy_pass nor return", prefix);
  cf->nlocations++;
}

static void listen_line(parser *ps, directive *d, int admin) {
  tether__config *cf = ps->cf;
  if (d->nargs < 2 || d->block) {
    error(ps, d->line, "\"%s\" takes an address", d->args[0]);
    return;
  }
  for (int i = 2; i < d->nargs; i++)
    if (strcmp(d->args[i], "reuseport") != 0 && strcmp(d->args[i], "default_server") != 0)
      error(ps, d->line, "unknown listen parameter \"%s\"", d->args[i]);
  tether__addr a;
  if (tether__addr_parse(d->args[1], &a) < 0) {
    error(ps, d->line, "invalid address \"%s\" (expected [IP:]PORT)", d->args[1]);
    return;
  }
  if (admin) {
    if (strchr(d->args[1], ':') == NULL) { /* a bare port: loopback only, never every interface */
      ((struct sockaddr_in *)&a.sa)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      snprintf(a.text, sizeof(a.text), "127.0.0.1:%s", d->args[1]);
    }
    cf->admin = a;
    cf->admin_line = d->line;
  } else if (cf->nlisten == TETHER__ARRAY_SIZE(cf->listen)) {
    error(ps, d->line, "too many listen addresses");
  } else {
    cf->listen[cf->nlisten++] = a;
  }
}

/* admin_auth_token env:NAME: the secret is read now, so a missing one fails the load (and a reload keeps
 * the running configuration). Errors never quote it. */
static void admin_token_line(parser *ps, directive *d) {
  tether__config *cf = ps->cf;
  if (strncmp(d->args[1], "env:", 4) != 0 || d->args[1][4] == '\0') {
    error(ps, d->line, "\"admin_auth_token\" takes env:NAME (the token is read from that environment variable)");
    return;
  }
  const char *name = d->args[1] + 4, *v = getenv(name);
  cf->admin_token_line = d->line;
  size_t n = v ? strlen(v) : 0;
  int printable = 1;
  for (size_t i = 0; i < n; i++) printable &= v[i] > 0x20 && v[i] < 0x7f;
  if (v == NULL) error(ps, d->line, "admin_auth_token: environment variable %s is not set", name);
  else if (n == 0) error(ps, d->line, "admin_auth_token: environment variable %s is empty", name);
  else if (n < 16)
    error(ps, d->line, "admin_auth_token: the token in %s is too short (at least 16 characters)", name);
  else if (n >= sizeof(cf->admin_token))
    error(ps, d->line, "admin_auth_token: the token in %s is too long (at most %zu characters)", name,
          sizeof(cf->admin_token) - 1);
  else if (!printable)
    error(ps, d->line, "admin_auth_token: the token in %s must be printable ASCII without spaces", name);
  else {
    memcpy(cf->admin_token, v, n + 1);
  }
}

static int is_loopback(const tether__addr *a) {
  if (a->sa.ss_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)&a->sa)->sin_addr.s_addr) >> 24) == 127;
  const struct in6_addr *a6 = &((const struct sockaddr_in6 *)&a->sa)->sin6_addr;
  return IN6_IS_ADDR_LOOPBACK(a6) || (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
}

static void block_body(parser *ps, int depth, const char *ctx);

/* Directives allowed at the top, in http { } and in server { } alike: nginx users nest them freely. */
static void common_directive(parser *ps, directive *d, int depth, const char *ctx) {
  tether__config *cf = ps->cf;
  const char *n = d->args[0];
  uint64_t sz;
  if (strcmp(n, "upstream") == 0) upstream_block(ps, d);
  else if (strcmp(n, "location") == 0) location_block(ps, d);
  else if (jwt_directive(ps, d, &cf->jwt)) { /* a default for every location */ }
  else if (strcmp(n, "listen") == 0) listen_line(ps, d, 0);
  else if (strcmp(n, "admin_listen") == 0) listen_line(ps, d, 1);
  else if (strcmp(n, "http") == 0 || strcmp(n, "server") == 0) {
    if (!d->block || d->nargs != 1 || depth >= MAX_DEPTH) {
      error(ps, d->line, "\"%s\" takes a block and no argument", n);
      if (d->block) skip_block(ps);
    } else {
      block_body(ps, depth + 1, n);
    }
  } else if (strcmp(n, "worker_processes") == 0) {
    if (want_args(ps, d, 1, 1) == 0) {
      if (strcmp(d->args[1], "auto") == 0) cf->workers = (int)sysconf(_SC_NPROCESSORS_ONLN);
      else get_int(ps, d, "worker_processes", d->args[1], 1, 256, &cf->workers);
    }
  } else if (strcmp(n, "client_header_buffer") == 0 || strcmp(n, "large_client_header_buffers") == 0) {
    const char *v = d->args[d->nargs - 1];
    if (d->nargs >= 2 && d->nargs <= 3 && get_size(ps, d, v, &sz) == 0) {
      if (sz < 1024 || sz > 1024 * 1024) error(ps, d->line, "\"%s\" must be from 1k to 1m", n);
      else cf->client_header_buffer = sz;
    } else if (d->nargs < 2 || d->nargs > 3) {
      error(ps, d->line, "\"%s\" takes a size", n);
    }
  } else if (strcmp(n, "client_max_body_size") == 0) {
    if (want_args(ps, d, 1, 1) == 0) get_size(ps, d, d->args[1], &cf->client_max_body_size);
  } else if (strcmp(n, "client_header_timeout") == 0) {
    if (want_args(ps, d, 1, 1) == 0) get_time(ps, d, d->args[1], &cf->client_header_timeout_ms);
  } else if (strcmp(n, "client_body_timeout") == 0) {
    if (want_args(ps, d, 1, 1) == 0) get_time(ps, d, d->args[1], &cf->client_body_timeout_ms);
  } else if (strcmp(n, "keepalive_timeout") == 0) {
    if (want_args(ps, d, 1, 1) == 0) get_time(ps, d, d->args[1], &cf->keepalive_timeout_ms);
  } else if (strcmp(n, "proxy_connect_timeout") == 0) {
    if (want_args(ps, d, 1, 1) == 0) get_time(ps, d, d->args[1], &cf->proxy_connect_timeout_ms);
  } else if (strcmp(n, "proxy_read_timeout") == 0) {
    if (want_args(ps, d, 1, 1) == 0) get_time(ps, d, d->args[1], &cf->proxy_read_timeout_ms);
  } else if (strcmp(n, "proxy_send_timeout") == 0) {
    if (want_args(ps, d, 1, 1) == 0) get_time(ps, d, d->args[1], &cf->proxy_send_timeout_ms);
  } else if (strcmp(n, "proxy_next_upstream_tries") == 0) {
    if (want_args(ps, d, 1, 1) == 0) get_int(ps, d, "tries", d->args[1], 0, 100, &cf->proxy_next_upstream_tries);
  } else if (strcmp(n, "shutdown_timeout") == 0) {
    if (want_args(ps, d, 1, 1) == 0) get_time(ps, d, d->args[1], &cf->shutdown_grace_ms);
  } else if (strcmp(n, "forwarded") == 0) {
    if (want_args(ps, d, 1, 1) == 0) {
      if (strcmp(d->args[1], "on") == 0) cf->add_forwarded = 1;
      else if (strcmp(d->args[1], "off") == 0) cf->add_forwarded = 0;
      else error(ps, d->line, "\"forwarded\" takes on or off");
    }
  } else if (strcmp(n, "set_real_ip_from") == 0) {
    if (want_args(ps, d, 1, 1) == 0) {
      if (cf->nreal_ip_from == TETHER__CF_MAX_REALIP) error(ps, d->line, "too many set_real_ip_from");
      else if (tether__cidr_parse(d->args[1], &cf->real_ip_from[cf->nreal_ip_from]) < 0)
        error(ps, d->line, "invalid address or CIDR \"%s\"", d->args[1]);
      else cf->nreal_ip_from++;
    }
  } else if (strcmp(n, "real_ip_header") == 0) {
    if (want_args(ps, d, 1, 1) == 0) {
      if (strcmp(d->args[1], "proxy_protocol") == 0) cf->real_ip_proxy_protocol = 1;
      else if (strcasecmp(d->args[1], "X-Forwarded-For") == 0) cf->real_ip_proxy_protocol = 0;
      else error(ps, d->line, "\"real_ip_header\" takes X-Forwarded-For or proxy_protocol");
    }
  } else if (strcmp(n, "access_log") == 0) {
    if (want_args(ps, d, 1, 2) == 0) {
      if (strcmp(d->args[1], "off") == 0) cf->access_log[0] = '\0';
      else snprintf(cf->access_log, sizeof(cf->access_log), "%s", d->args[1]);
      if (d->nargs == 3) {
        if (strcmp(d->args[2], "json") == 0) cf->access_log_json = 1;
        else if (strcmp(d->args[2], "combined") == 0) cf->access_log_json = 0;
        else error(ps, d->line, "access_log format must be combined or json");
      }
    }
  } else if (strcmp(n, "sticky_key_file") == 0) {
    /* only named here: the file is read (or created) when the configuration is loaded, not parsed */
    if (want_args(ps, d, 1, 1) == 0) {
      if (d->args[1][0] == '\0' || strlen(d->args[1]) >= sizeof(cf->sticky_key_file))
        error(ps, d->line, "\"sticky_key_file\" takes a path (under 512 characters)");
      else snprintf(cf->sticky_key_file, sizeof(cf->sticky_key_file), "%s", d->args[1]);
      cf->sticky_key_file_line = d->line;
    }
  } else if (strcmp(n, "error_log") == 0) {
    if (want_args(ps, d, 1, 2) == 0) snprintf(cf->error_log, sizeof(cf->error_log), "%s", d->args[1]);
  } else if (strcmp(n, "proxy_set_header") == 0) {
    set_header_line(ps, d, &cf->headers);
  } else if (strcmp(n, "proxy_http_version") == 0) {
    http_version_line(ps, d);
  } else if (strcmp(n, "client_body_time") == 0) {
    if (want_args(ps, d, 1, 1) == 0) get_time(ps, d, d->args[1], &cf->client_body_time_ms);
  } else if (strcmp(n, "admin_auth_token") == 0) {
    if (want_args(ps, d, 1, 1) == 0) admin_token_line(ps, d);
  } else if (strcmp(n, "worker_rlimit_nofile") == 0) {
    if (want_args(ps, d, 1, 1) == 0)
      get_int(ps, d, "worker_rlimit_nofile", d->args[1], 32, 16777216, &cf->rlimit_nofile);
  } else if (strcmp(n, "events") == 0 && d->block) {
    skip_block(ps); /* nginx's events { worker_connections ...; }: libuv needs none of it */
  } else if (strcmp(n, "server_name") == 0 || strcmp(n, "include") == 0) {
    /* server_name is accepted (one virtual server); include is not supported */
    if (strcmp(n, "include") == 0) error(ps, d->line, "\"include\" is not supported");
  } else {
    error(ps, d->line, "unknown directive \"%s\"%s%s", n, depth ? " in " : "", depth ? ctx : "");
    if (d->block) skip_block(ps);
  }
}

static void block_body(parser *ps, int depth, const char *ctx) {
  directive d;
  int rc;
  while ((rc = read_directive(ps, &d)) == 1) {
    static const char *const blocks[] = {"upstream", "location", "http", "server", "events"};
    int takes_block = 0;
    for (size_t i = 0; i < TETHER__ARRAY_SIZE(blocks); i++) takes_block |= strcmp(d.args[0], blocks[i]) == 0;
    if (d.block && !takes_block) {
      error(ps, d.line, "\"%s\" takes no block: a \";\" is missing before \"%s\"?", d.args[0],
            d.nargs > 1 ? d.args[d.nargs - 1] : "{");
      skip_block(ps);
    } else {
      common_directive(ps, &d, depth, ctx);
    }
    free_directive(&d);
  }
  if (rc == -1 && depth == 0) error(ps, ps->line, "unexpected \"}\"");
  if (rc == 0 && depth > 0) error(ps, ps->line, "unexpected end of file, expecting \"}\"");
  if (rc == -2) {
    /* a syntax error: resynchronise at the next ';' or block end by skipping this level */
    free_directive(&d);
  }
}

/* Locations inherit the outer auth_jwt settings unless they have their own; every enabled one gets its
 * verifier now, so a key that cannot be read fails the load (and a reload keeps the running one). */
static void build_jwt(parser *ps, tether__config *cf) {
  cf->jwt.verifier = NULL;
  for (size_t i = 0; i < cf->nlocations; i++) {
    tether__cf_jwt *j = &cf->locations[i].jwt;
    if (!j->set && cf->jwt.set) *j = cf->jwt;
    j->verifier = NULL;
    if (!j->enabled) continue;
    if (j->nkeys == 0) {
      error(ps, j->line, "auth_jwt \"%s\" has no auth_jwt_key", j->realm);
      continue;
    }
    tether_jwt_verify_options o;
    tether_jwt_verify_options_init(&o);
    if (j->leeway_ms >= 0) o.leeway_s = j->leeway_ms / 1000;
    o.require_exp = j->require_exp;
    o.weak_secret_ok = j->weak_secret_ok;
    if (j->issuer[0]) o.issuer = j->issuer;
    for (int a = 0; a < j->naudience; a++) o.audience[a] = j->audience[a];
    o.audience_count = (size_t)j->naudience;
    if (tether_jwt_verifier_new(&o, &j->verifier) < 0) {
      error(ps, j->line, "auth_jwt: %s", tether_last_error());
      continue;
    }
    /* the key's specification may be a literal secret: errors name the key by its position, never its text */
    for (int k = 0; k < j->nkeys; k++)
      if (tether_jwt_verifier_add_key(j->verifier, j->keys[k].spec, j->keys[k].alg[0] ? j->keys[k].alg : NULL, NULL) < 0)
        error(ps, j->line, "auth_jwt_key #%d of auth_jwt \"%s\": %s", k + 1, j->realm, tether_last_error());
  }
  /* every claim header any level names is removed from every request, authenticated or not: a client must
   * never speak for the token where no token is checked */
  cf->nclaim_headers = 0;
  for (size_t i = 0; i <= cf->nlocations; i++) {
    const tether__cf_jwt *j = i < cf->nlocations ? &cf->locations[i].jwt : &cf->jwt;
    for (int h = 0; h < j->nclaim_headers; h++) {
      int seen = 0;
      for (int k = 0; k < cf->nclaim_headers && !seen; k++)
        seen = strcasecmp(cf->claim_headers[k], j->claim_headers[h].header) == 0;
      if (seen) continue;
      if (cf->nclaim_headers == TETHER__CF_MAX_STRIP) {
        error(ps, j->line, "auth_jwt_claim_header: at most %d distinct header names", TETHER__CF_MAX_STRIP);
        return;
      }
      snprintf(cf->claim_headers[cf->nclaim_headers++], sizeof(cf->claim_headers[0]), "%s", j->claim_headers[h].header);
    }
  }
}

void tether__config_release(tether__config *cf) {
  explicit_bzero(cf->admin_token, sizeof(cf->admin_token));
  for (size_t i = 0; i < cf->nlocations; i++) {
    tether_jwt_verifier_free(cf->locations[i].jwt.verifier);
    cf->locations[i].jwt.verifier = NULL;
  }
}

void tether__config_free(tether__config *cf) {
  if (cf == NULL) return;
  tether__config_release(cf);
  free(cf);
}

static void defaults(tether__config *cf) {
  cf->workers = (int)sysconf(_SC_NPROCESSORS_ONLN);
  if (cf->workers < 1) cf->workers = 1;
  cf->client_header_buffer = 16384;
  cf->large_uri = 8192;
  cf->client_max_body_size = 1024 * 1024;
  cf->client_header_timeout_ms = 60000;
  cf->client_body_timeout_ms = 60000;
  cf->keepalive_timeout_ms = 75000;
  cf->proxy_connect_timeout_ms = 5000;
  cf->proxy_read_timeout_ms = 60000;
  cf->proxy_send_timeout_ms = 60000;
  cf->shutdown_grace_ms = 10000;
  cf->client_body_time_ms = 300000;
}

int tether__config_parse(const char *path, const char *text, size_t len, tether__config *cf, char *err,
                         size_t errlen) {
  memset(cf, 0, sizeof(*cf));
  defaults(cf);
  snprintf(cf->file, sizeof(cf->file), "%s", path);
  if (errlen) err[0] = '\0';
  parser *psp = tether__calloc(1, sizeof(parser)); /* large: keep it off the stack */
  *psp = (parser){.file = path, .p = text, .end = text + len, .line = 1, .cf = cf, .err = err, .errlen = errlen};
  block_body(psp, 0, "");
  for (size_t i = 0; i < cf->nlocations; i++) {
    if (psp->pendings[i].name[0] == '\0') continue;
    for (size_t k = 0; k < cf->nupstreams; k++)
      if (strcmp(cf->upstreams[k].name, psp->pendings[i].name) == 0) cf->locations[i].upstream = (int)k;
    if (cf->locations[i].upstream < 0)
      error(psp, psp->pendings[i].line, "proxy_pass: no upstream named \"%s\"", psp->pendings[i].name);
  }
  build_jwt(psp, cf);
  if (cf->admin.len && !is_loopback(&cf->admin) && cf->admin_token_line == 0)
    error(psp, cf->admin_line, "admin_listen %s is not a loopback address: it needs \"admin_auth_token env:NAME;\"",
          cf->admin.text);
  /* as in nginx, a request line that cannot fit the header buffer is a 414, not a 431 */
  if (cf->large_uri + 1024 > cf->client_header_buffer) cf->large_uri = cf->client_header_buffer > 1536 ? cf->client_header_buffer - 1024 : 512;
  if (cf->nlisten == 0 && psp->nerrors == 0) error(psp, psp->line, "no \"listen\" address");
  if (cf->nlocations == 0 && cf->nupstreams == 1 && psp->nerrors == 0) {
    /* a single upstream and no location: proxy everything to it */
    cf->locations[0] = (tether__cf_location){.prefix = "/", .upstream = 0};
    cf->nlocations = 1;
  }
  if (cf->nlocations == 0 && psp->nerrors == 0) error(psp, psp->line, "no \"location\" to serve");
  for (size_t k = 0; k < cf->nupstreams; k++) {
    tether__cf_upstream *u = &cf->upstreams[k];
    int primaries = 0;
    for (size_t i = 0; i < u->nservers; i++) primaries += !u->servers[i].backup;
    if (u->nservers && primaries == 0) error(psp, u->line, "upstream \"%s\" has only backup servers", u->name);
  }
  int nerrors = psp->nerrors;
  free(psp);
  if (nerrors) tether__config_release(cf); /* a refused configuration owns nothing */
  return nerrors ? -1 : 0;
}

int tether__config_load(const char *path, tether__config *cf, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    snprintf(err, errlen, "%s: cannot open: %s\n", path, strerror(errno));
    return -1;
  }
  tether__buf b = {0};
  char chunk[8192];
  size_t n;
  while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
    tether__buf_append(&b, chunk, n);
    if (b.len > 4 * 1024 * 1024) break;
  }
  fclose(f);
  if (b.len > 4 * 1024 * 1024) {
    snprintf(err, errlen, "%s: larger than 4 MiB\n", path);
    tether__buf_free(&b);
    return -1;
  }
  int rc = tether__config_parse(path, b.data ? b.data : "", b.len, cf, err, errlen);
  tether__buf_free(&b);
  return rc;
}
