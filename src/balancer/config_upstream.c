/* The upstream block: servers and their parameters, persistence (sticky, ip_hash, hash), balancing and
 * health checks. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../lib/util.h"
#include "config-int.h"

static void server_line(tether__conf_parser *ps, tether__conf_directive *d, tether__cf_upstream *u) {
  if (d->nargs < 2 || d->block) {
    tether__conf_error(ps, d->line, "\"server\" takes an address and parameters");
    return;
  }
  if (u->nservers == TETHER__CF_MAX_SERVERS) {
    tether__conf_error(ps, d->line, "too many servers in upstream \"%s\" (at most %d)", u->name,
                       TETHER__CF_MAX_SERVERS);
    return;
  }
  u->servers = tether__cf_grow(ps->cf, u->servers, u->nservers, sizeof(*u->servers));
  tether__cf_server *s = &u->servers[u->nservers];
  memset(s, 0, sizeof(*s));
  s->weight = 1;
  s->max_fails = 1;
  s->fail_timeout_ms = 10000;
  if (tether__addr_parse(d->args[1], &s->addr) < 0) {
    tether__conf_error(ps, d->line, "invalid server address \"%s\" (expected IP:PORT; names are not resolved)",
                       d->args[1]);
    return;
  }
  snprintf(s->name, sizeof(s->name), "%s", d->args[1]);
  for (int i = 2; i < d->nargs; i++) {
    const char *a = d->args[i];
    uint64_t dummy;
    (void)dummy;
    if (strncmp(a, "weight=", 7) == 0)
      tether__conf_int(ps, d, "weight", a + 7, 1, 1000, &s->weight);
    else if (strncmp(a, "max_fails=", 10) == 0)
      tether__conf_int(ps, d, "max_fails", a + 10, 0, 1000, &s->max_fails);
    else if (strncmp(a, "fail_timeout=", 13) == 0)
      tether__conf_time(ps, d, a + 13, &s->fail_timeout_ms);
    else if (strncmp(a, "slow_start=", 11) == 0)
      tether__conf_time(ps, d, a + 11, &s->slow_start_ms);
    else if (strcmp(a, "backup") == 0)
      s->backup = 1;
    else if (strcmp(a, "down") == 0)
      s->down = 1;
    else if (strcmp(a, "drain") == 0)
      s->drain = 1;
    else if (strncmp(a, "cookie=", 7) == 0 || strncmp(a, "route=", 6) == 0) {
      /* cookie= is the literal value (HAProxy); route= names the server for the keyed value (NGINX Plus) */
      int route = a[0] == 'r';
      const char *v = strchr(a, '=') + 1;
      size_t n = strlen(v);
      int ok = n > 0 && n < sizeof(s->cookie_id);
      for (size_t k = 0; ok && k < n; k++) ok = isalnum((unsigned char)v[k]) || strchr("-_.", v[k]) != NULL;
      if (!ok)
        tether__conf_error(ps, d->line, "server %s: %s must be 1-63 letters, digits, '-', '_' or '.'", d->args[1],
                           route ? "route" : "cookie id");
      else
        snprintf(route ? s->route : s->cookie_id, sizeof(s->cookie_id), "%s", v);
    } else
      tether__conf_error(ps, d->line, "unknown server parameter \"%s\"", a);
  }
  for (size_t k = 0; k < u->nservers; k++)
    if (strcmp(u->servers[k].name, s->name) == 0) tether__conf_error(ps, d->line, "duplicate server \"%s\"", s->name);
  u->nservers++;
}

static void health_line(tether__conf_parser *ps, tether__conf_directive *d, tether__cf_upstream *u) {
  tether__cf_health *h = &u->health;
  h->enabled = 1;
  for (int i = 1; i < d->nargs; i++) {
    const char *a = d->args[i];
    if (strncmp(a, "uri=", 4) == 0) {
      if (a[4] != '/' || strlen(a + 4) >= sizeof(h->uri) || strpbrk(a + 4, " \r\n"))
        tether__conf_error(ps, d->line, "health_check: uri must start with '/' and hold no spaces");
      else
        snprintf(h->uri, sizeof(h->uri), "%s", a + 4);
    } else if (strncmp(a, "interval=", 9) == 0)
      tether__conf_time(ps, d, a + 9, &h->interval_ms);
    else if (strncmp(a, "timeout=", 8) == 0)
      tether__conf_time(ps, d, a + 8, &h->timeout_ms);
    else if (strncmp(a, "fails=", 6) == 0)
      tether__conf_int(ps, d, "fails", a + 6, 1, 100, &h->fails);
    else if (strncmp(a, "passes=", 7) == 0)
      tether__conf_int(ps, d, "passes", a + 7, 1, 100, &h->passes);
    else if (strncmp(a, "status=", 7) == 0) {
      int lo, hi;
      char extra;
      if (sscanf(a + 7, "%d-%d%c", &lo, &hi, &extra) == 2 && lo >= 100 && hi <= 599 && lo <= hi) {
        h->status_min = lo, h->status_max = hi;
      } else if (sscanf(a + 7, "%d%c", &lo, &extra) == 1 && lo >= 100 && lo <= 599) {
        h->status_min = h->status_max = lo;
      } else {
        tether__conf_error(ps, d->line, "health_check: status must be CODE or LOW-HIGH, got \"%s\"", a + 7);
      }
    } else
      tether__conf_error(ps, d->line, "unknown health_check parameter \"%s\"", a);
  }
}
static int parse_key(tether__conf_parser *ps, tether__conf_directive *d, const char *text, tether__cf_persist *p) {
  int n = tether__conf_value(ps, d, text, p->key, TETHER__KEY_MAX_PARTS, NULL);
  if (n < 0) return -1;
  p->nkey = n;
  if (p->nkey == 0) {
    tether__conf_error(ps, d->line, "hash key is empty");
    return -1;
  }
  return 0;
}

static void sticky_cookie(tether__conf_parser *ps, tether__conf_directive *d, tether__cf_persist *p) {
  p->kind = TETHER__PERSIST_COOKIE;
  p->expires_s = -1;
  snprintf(p->path, sizeof(p->path), "/");
  p->httponly = 1; /* a routing cookie is none of a script's business */
  if (d->nargs < 3) {
    tether__conf_error(ps, d->line, "\"sticky cookie\" needs a cookie name");
    return;
  }
  snprintf(p->cookie, sizeof(p->cookie), "%s", d->args[2]);
  if (d->args[2][0] != '\0' && !tether__token_valid(d->args[2])) {
    tether__conf_error(ps, d->line, "sticky cookie name \"%s\" is not a token", d->args[2]);
    return;
  }
  for (int i = 3; i < d->nargs; i++) {
    const char *a = d->args[i];
    int64_t t;
    if (strncmp(a, "expires=", 8) == 0) {
      if (strcmp(a + 8, "max") == 0)
        p->expires_s = 315360000; /* ten years */
      else if (tether__conf_time(ps, d, a + 8, &t) == 0)
        p->expires_s = t / 1000;
    } else if (strncmp(a, "domain=", 7) == 0) {
      if (strpbrk(a + 7, ";, \t") || strlen(a + 7) >= sizeof(p->domain))
        tether__conf_error(ps, d->line, "bad cookie domain");
      else
        snprintf(p->domain, sizeof(p->domain), "%s", a + 7);
    } else if (strncmp(a, "path=", 5) == 0) {
      if (a[5] != '/' || strpbrk(a + 5, ";, \t") || strlen(a + 5) >= sizeof(p->path))
        tether__conf_error(ps, d->line, "bad cookie path");
      else
        snprintf(p->path, sizeof(p->path), "%s", a + 5);
    } else if (strcmp(a, "httponly") == 0) {
      p->httponly = 1;
    } else if (strcmp(a, "nohttponly") == 0) {
      p->httponly = 0;
    } else if (strcmp(a, "secure") == 0) {
      p->secure = 1;
    } else if (strncmp(a, "samesite=", 9) == 0) {
      if (strcasecmp(a + 9, "strict") == 0)
        p->samesite = 1;
      else if (strcasecmp(a + 9, "lax") == 0)
        p->samesite = 2;
      else if (strcasecmp(a + 9, "none") == 0)
        p->samesite = 3;
      else
        tether__conf_error(ps, d->line, "samesite must be strict, lax or none");
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
      if (tether__conf_time(ps, d, a + 8, &t) == 0) p->maxidle_s = t / 1000;
    } else if (strncmp(a, "maxlife=", 8) == 0) {
      if (tether__conf_time(ps, d, a + 8, &t) == 0) p->maxlife_s = t / 1000;
    } else {
      tether__conf_error(ps, d->line, "unknown sticky cookie parameter \"%s\"", a);
    }
  }
  if (p->samesite == 3 && !p->secure)
    tether__conf_error(ps, d->line, "samesite=none needs secure (browsers drop it otherwise)");
}

static void persist_line(tether__conf_parser *ps, tether__conf_directive *d, tether__cf_upstream *u) {
  tether__cf_persist *p = &u->persist;
  p->line = d->line;
  const char *n = d->args[0];
  if (strcmp(n, "ip_hash") == 0) {
    if (tether__conf_want_args(ps, d, 0, 0) == 0) p->kind = TETHER__PERSIST_IP_HASH;
  } else if (strcmp(n, "hash") == 0) {
    if (d->nargs < 2 || d->nargs > 3) {
      tether__conf_error(ps, d->line, "\"hash\" takes a key and optionally \"consistent\" or \"maglev\"");
      return;
    }
    p->method = TETHER__HASH_MODULO;
    if (d->nargs == 3) {
      if (strcmp(d->args[2], "consistent") == 0)
        p->method = TETHER__HASH_KETAMA;
      else if (strcmp(d->args[2], "maglev") == 0)
        p->method = TETHER__HASH_MAGLEV;
      else {
        tether__conf_error(ps, d->line, "\"hash\": unknown method \"%s\" (consistent or maglev)", d->args[2]);
        return;
      }
    }
    if (parse_key(ps, d, d->args[1], p) == 0) p->kind = TETHER__PERSIST_HASH;
  } else if (d->nargs >= 2 && strcmp(d->args[1], "cookie") == 0) {
    sticky_cookie(ps, d, p);
  } else if (d->nargs >= 2 && strcmp(d->args[1], "app_cookie") == 0) {
    if (d->nargs != 3) {
      tether__conf_error(ps, d->line, "\"sticky app_cookie\" takes the application's cookie name");
      return;
    }
    p->kind = TETHER__PERSIST_APP_COOKIE;
    snprintf(p->cookie, sizeof(p->cookie), "%s", d->args[2]);
    p->method = TETHER__HASH_KETAMA;
  } else {
    tether__conf_error(ps, d->line, "\"sticky\" takes \"cookie NAME ...\" or \"app_cookie NAME\"");
  }
}

/* One expected= path: "/x" a prefix, "=/x" exact; it must be a path with nothing a request path cannot hold. */
static int expected_ok(const char *e, size_t n) {
  size_t i = n && e[0] == '=';
  if (i == n || e[i] != '/' || n >= sizeof(((tether__cf_monitor *)0)->expected[0])) return 0;
  for (; i < n; i++)
    if ((unsigned char)e[i] <= 0x20 || e[i] == 0x7f || e[i] == '?' || e[i] == '#') return 0;
  return 1;
}

/* session_monitor COOKIE [expected=PATH,PATH...] */
static void monitor_line(tether__conf_parser *ps, tether__conf_directive *d, tether__cf_upstream *u) {
  tether__cf_monitor *mc = &u->monitor;
  if (mc->cookie[0]) {
    tether__conf_error(ps, d->line, "\"session_monitor\" is duplicate (line %d)", mc->line);
    return;
  }
  if (d->nargs < 2 || d->nargs > 3 || (d->nargs == 3 && strncmp(d->args[2], "expected=", 9) != 0)) {
    tether__conf_error(ps, d->line, "\"session_monitor\" takes a cookie name and optionally expected=PATH,PATH...");
    return;
  }
  if (!tether__token_valid(d->args[1]) || strlen(d->args[1]) >= sizeof(mc->cookie)) {
    tether__conf_error(ps, d->line, "session_monitor: cookie name \"%s\" is not a token of 1-63 characters",
                       d->args[1]);
    return;
  }
  const char *p = d->nargs == 3 ? d->args[2] + 9 : NULL;
  while (p) {
    const char *comma = strchr(p, ',');
    size_t n = comma ? (size_t)(comma - p) : strlen(p);
    if (!expected_ok(p, n)) {
      tether__conf_error(ps, d->line,
                         "session_monitor: expected= takes paths (\"/login\", or \"=/logout\" exactly), "
                         "separated by commas; got \"%.*s\"",
                         (int)n, p);
      return;
    }
    if (mc->nexpected == TETHER__CF_MAX_EXPECTED) {
      tether__conf_error(ps, d->line, "session_monitor: at most %d expected= paths", TETHER__CF_MAX_EXPECTED);
      return;
    }
    snprintf(mc->expected[mc->nexpected++], sizeof(mc->expected[0]), "%.*s", (int)n, p);
    p = comma ? comma + 1 : NULL;
  }
  snprintf(mc->cookie, sizeof(mc->cookie), "%s", d->args[1]);
  mc->line = d->line;
}

/* Server connection reuse: nginx's upstream keepalive directives, and the adaptive pool's ceiling. Returns 0 when
 * d is none of them. */
static int reuse_line(tether__conf_parser *ps, tether__conf_directive *d, tether__cf_upstream *u) {
  static const char *const names[] = {"keepalive", "keepalive_timeout", "keepalive_requests", "keepalive_time",
                                      "pool_max_idle"};
  int k = 0;
  while (k < 5 && strcmp(d->args[0], names[k]) != 0) k++;
  if (k == 5) return 0;
  if (u->reuse_lines[k]) {
    tether__conf_error(ps, d->line, "\"%s\" is duplicate (line %d)", names[k], u->reuse_lines[k]);
    return 1;
  }
  u->reuse_lines[k] = d->line;
  if (tether__conf_want_args(ps, d, 1, 1) < 0) return 1;
  const char *v = d->args[1];
  if (k == 0)
    tether__conf_int(ps, d, "keepalive", v, 0, 10000, &u->keepalive);
  else if (k == 1)
    tether__conf_time(ps, d, v, &u->keepalive_timeout_ms);
  else if (k == 2)
    tether__conf_int(ps, d, "keepalive_requests", v, 0, 1000000000, &u->keepalive_requests);
  else if (k == 3)
    tether__conf_time(ps, d, v, &u->keepalive_time_ms);
  else
    tether__conf_int(ps, d, "pool_max_idle", v, 1, 100000, &u->pool_max_idle);
  return 1;
}

/* What an upstream's lines cannot say alone: servers, ids and routes that clash, a balance factor without a
 * consistent hash. */
static void upstream_checks(tether__conf_parser *ps, tether__conf_directive *d, const tether__cf_upstream *u) {
  if (u->nservers == 0) tether__conf_error(ps, d->line, "upstream \"%s\" has no server", u->name);
  for (size_t i = 0; i < u->nservers; i++)
    for (size_t k = i + 1; k < u->nservers; k++)
      if (u->servers[i].cookie_id[0] && strcmp(u->servers[i].cookie_id, u->servers[k].cookie_id) == 0)
        tether__conf_error(ps, d->line, "upstream \"%s\": servers %s and %s have the same cookie id", u->name,
                           u->servers[i].name, u->servers[k].name);
  for (size_t i = 0; i < u->nservers; i++)
    for (size_t k = i + 1; k < u->nservers; k++) {
      const tether__cf_server *a = &u->servers[i], *b = &u->servers[k];
      if ((a->route[0] || b->route[0]) &&
          strcmp(a->route[0] ? a->route : a->name, b->route[0] ? b->route : b->name) == 0)
        tether__conf_error(ps, d->line, "upstream \"%s\": servers %s and %s have the same route", u->name, a->name,
                           b->name);
    }
  if (u->balance_factor && u->persist.kind != TETHER__PERSIST_HASH && u->persist.kind != TETHER__PERSIST_APP_COOKIE)
    tether__conf_error(ps, d->line,
                       "upstream \"%s\": hash_balance_factor needs \"hash ... consistent|maglev\" or "
                       "\"sticky app_cookie\"",
                       u->name);
  if (u->balance_factor && u->persist.kind == TETHER__PERSIST_HASH && u->persist.method == TETHER__HASH_MODULO)
    tether__conf_error(ps, d->line, "upstream \"%s\": hash_balance_factor needs a consistent or maglev hash", u->name);
  if (u->reuse_lines[4] && u->reuse_lines[0])
    tether__conf_error(ps, u->reuse_lines[4],
                       "upstream \"%s\": pool_max_idle bounds the pool that follows demand; with \"keepalive\" "
                       "(line %d) the pool keeps what keepalive says",
                       u->name, u->reuse_lines[0]);
  if (u->monitor.cookie[0] && u->persist.kind == TETHER__PERSIST_COOKIE &&
      strcmp(u->monitor.cookie, u->persist.cookie) == 0)
    tether__conf_error(ps, u->monitor.line,
                       "session_monitor watches the application's session cookie, not the balancer's sticky cookie "
                       "\"%s\"",
                       u->persist.cookie);
}

void tether__conf_upstream(tether__conf_parser *ps, tether__conf_directive *d) {
  tether__config *cf = ps->cf;
  if (d->nargs != 2 || !d->block) {
    tether__conf_error(ps, d->line, "\"upstream\" takes a name and a block");
    if (d->block) tether__conf_skip_block(ps);
    return;
  }
  if (cf->nupstreams == TETHER__CF_MAX_UPSTREAMS) {
    tether__conf_error(ps, d->line, "too many upstreams");
    tether__conf_skip_block(ps);
    return;
  }
  cf->upstreams = tether__cf_grow(cf, cf->upstreams, cf->nupstreams, sizeof(*cf->upstreams));
  tether__cf_upstream *u = &cf->upstreams[cf->nupstreams]; /* no upstream is opened while it is read */
  memset(u, 0, sizeof(*u));
  snprintf(u->name, sizeof(u->name), "%s", d->args[1]);
  u->line = d->line;
  u->keepalive = TETHER__KEEPALIVE_AUTO;
  u->pool_max_idle = 4096;
  u->keepalive_requests = 1000;         /* nginx 1.19.10+ */
  u->keepalive_timeout_ms = 60000;      /* nginx */
  u->keepalive_time_ms = 3600 * 1000LL; /* nginx 1.21.3+ */
  u->health = (tether__cf_health){.uri = "/",
                                  .interval_ms = 5000,
                                  .fails = 1,
                                  .passes = 1,
                                  .status_min = 200,
                                  .status_max = 399,
                                  .timeout_ms = 1000};
  for (size_t k = 0; k < cf->nupstreams; k++)
    if (strcmp(cf->upstreams[k].name, u->name) == 0)
      tether__conf_error(ps, d->line, "duplicate upstream \"%s\"", u->name);
  tether__conf_directive c;
  int rc;
  while ((rc = tether__conf_read(ps, &c)) == 1) {
    const char *n = c.args[0];
    if (strcmp(n, "server") == 0)
      server_line(ps, &c, u);
    else if (strcmp(n, "least_conn") == 0) {
      if (tether__conf_want_args(ps, &c, 0, 0) == 0) u->balance = TETHER__BALANCE_LEAST_CONN;
    } else if (strcmp(n, "random") == 0) {
      if (tether__conf_want_args(ps, &c, 1, 1) == 0) {
        if (strcmp(c.args[1], "two") == 0)
          u->balance = TETHER__BALANCE_RANDOM_TWO;
        else
          tether__conf_error(ps, c.line, "\"random\": only \"random two\" is supported");
      }
    } else if (reuse_line(ps, &c, u)) {
      /* keepalive, keepalive_timeout, keepalive_requests, keepalive_time, pool_max_idle */
    } else if (strcmp(n, "sticky") == 0 || strcmp(n, "ip_hash") == 0 || strcmp(n, "hash") == 0) {
      if (u->persist.kind != TETHER__PERSIST_NONE)
        tether__conf_error(ps, c.line, "\"%s\": upstream \"%s\" already has a persistence policy (line %d)", n, u->name,
                           u->persist.line);
      else if (c.block)
        tether__conf_error(ps, c.line, "\"%s\" takes no block", n);
      else
        persist_line(ps, &c, u);
    } else if (strcmp(n, "hash_balance_factor") == 0) {
      if (tether__conf_want_args(ps, &c, 1, 1) == 0)
        tether__conf_int(ps, &c, "factor", c.args[1], 100, 10000, &u->balance_factor);
    } else if (strcmp(n, "drain_timeout") == 0) {
      if (tether__conf_want_args(ps, &c, 1, 1) == 0) tether__conf_time(ps, &c, c.args[1], &u->drain_timeout_ms);
    } else if (strcmp(n, "sticky_secret") == 0) {
      if (tether__conf_want_args(ps, &c, 1, 1) == 0) {
        if (strlen(c.args[1]) < 16 || strlen(c.args[1]) >= sizeof(u->sticky_secret))
          tether__conf_error(ps, c.line, "\"sticky_secret\" must be 16 to 127 characters");
        else
          snprintf(u->sticky_secret, sizeof(u->sticky_secret), "%s", c.args[1]);
      }
    } else if (strcmp(n, "session_monitor") == 0) {
      if (c.block)
        tether__conf_error(ps, c.line, "\"session_monitor\" takes no block");
      else
        monitor_line(ps, &c, u);
    } else if (strcmp(n, "health_check") == 0) {
      if (c.block)
        tether__conf_error(ps, c.line, "\"health_check\" takes no block");
      else
        health_line(ps, &c, u);
    } else {
      tether__conf_error(ps, c.line, "unknown directive \"%s\" in upstream", n);
      if (c.block) tether__conf_skip_block(ps);
    }
    tether__conf_free_directive(&c);
  }
  if (rc == 0) tether__conf_error(ps, d->line, "upstream \"%s\": missing \"}\"", u->name);
  upstream_checks(ps, d, u);
  cf->nupstreams++;
}
