/* Locations and what they carry: proxy_pass, return, edge authentication (auth_jwt), proxy_set_header and
 * add_header. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../lib/util.h"
#include "config-int.h"
#include "tether/jwt.h"

/* auth_jwt_key SPEC [ALG] [weak_secret_ok] */
static void jwt_key_line(tether__conf_parser *ps, tether__conf_directive *d, tether__cf_jwt *j) {
  if (tether__conf_want_args(ps, d, 1, 3) < 0) return;
  int nargs = d->nargs; /* d's words are freed by its caller: count without the flag rather than drop it */
  if (strcmp(d->args[nargs - 1], "weak_secret_ok") == 0) { /* HS* secrets under 32 bytes, knowingly */
    j->weak_secret_ok = 1;
    nargs--;
  }
  if (nargs < 2 || nargs > 3) {
    tether__conf_error(ps, d->line, "auth_jwt_key takes a key, optionally an algorithm, and optionally weak_secret_ok");
  } else if (j->nkeys == TETHER__JWT_MAX_KEYS) {
    tether__conf_error(ps, d->line, "auth_jwt_key: at most %d keys", TETHER__JWT_MAX_KEYS);
  } else if (strlen(d->args[1]) >= sizeof(j->keys[0].spec)) {
    tether__conf_error(ps, d->line, "auth_jwt_key: the key specification is too long");
  } else {
    snprintf(j->keys[j->nkeys].spec, sizeof(j->keys[0].spec), "%s", d->args[1]);
    j->keys[j->nkeys].alg[0] = '\0';
    if (nargs == 3) {
      if (tether_jwt_alg_from_name(d->args[2]) == TETHER_JWT_ALG_UNKNOWN)
        tether__conf_error(
            ps, d->line, "auth_jwt_key: unknown algorithm \"%s\" (HS256, RS256, PS256, ES256, EdDSA, ...)", d->args[2]);
      else
        snprintf(j->keys[j->nkeys].alg, sizeof(j->keys[0].alg), "%s", d->args[2]);
    }
    j->nkeys++;
  }
}

int tether__conf_jwt(tether__conf_parser *ps, tether__conf_directive *d, tether__cf_jwt *j) {
  const char *n = d->args[0];
  if (strncmp(n, "auth_jwt", 8) != 0) return 0;
  if (d->block) {
    tether__conf_error(ps, d->line, "\"%s\" takes no block", n);
    tether__conf_skip_block(ps);
    return 1;
  }
  if (!j->set) j->leeway_ms = -1;
  j->set = 1;
  if (j->line == 0) j->line = d->line;
  if (strcmp(n, "auth_jwt") == 0) {
    if (tether__conf_want_args(ps, d, 1, 1) < 0) return 1;
    if (strcmp(d->args[1], "off") == 0) {
      j->enabled = 0;
    } else if (strpbrk(d->args[1], "\"\\\r\n") || strlen(d->args[1]) >= sizeof(j->realm)) {
      tether__conf_error(ps, d->line, "auth_jwt: the realm must be under 64 characters, without quotes or backslashes");
    } else {
      j->enabled = 1;
      snprintf(j->realm, sizeof(j->realm), "%s", d->args[1]);
    }
  } else if (strcmp(n, "auth_jwt_key") == 0) {
    jwt_key_line(ps, d, j);
  } else if (strcmp(n, "auth_jwt_issuer") == 0) {
    if (tether__conf_want_args(ps, d, 1, 1) < 0) return 1;
    if (strlen(d->args[1]) >= sizeof(j->issuer))
      tether__conf_error(ps, d->line, "auth_jwt_issuer: at most 255 bytes");
    else
      snprintf(j->issuer, sizeof(j->issuer), "%s", d->args[1]);
  } else if (strcmp(n, "auth_jwt_audience") == 0) {
    if (tether__conf_want_args(ps, d, 1, 1) < 0) return 1;
    if (j->naudience == 4)
      tether__conf_error(ps, d->line, "auth_jwt_audience: at most 4");
    else if (strlen(d->args[1]) >= sizeof(j->audience[0]))
      tether__conf_error(ps, d->line, "auth_jwt_audience: at most 127 bytes");
    else
      snprintf(j->audience[j->naudience++], sizeof(j->audience[0]), "%s", d->args[1]);
  } else if (strcmp(n, "auth_jwt_leeway") == 0) {
    int64_t t;
    if (tether__conf_want_args(ps, d, 1, 1) == 0 && tether__conf_time(ps, d, d->args[1], &t) == 0) {
      if (t > 300000)
        tether__conf_error(ps, d->line, "auth_jwt_leeway: at most 5m");
      else
        j->leeway_ms = t;
    }
  } else if (strcmp(n, "auth_jwt_require_exp") == 0) {
    if (tether__conf_want_args(ps, d, 1, 1) == 0) tether__conf_flag(ps, d, d->args[1], &j->require_exp);
  } else if (strcmp(n, "auth_jwt_cookie") == 0) {
    if (tether__conf_want_args(ps, d, 1, 1) == 0) {
      if (!tether__token_valid(d->args[1]) || strlen(d->args[1]) >= sizeof(j->cookie))
        tether__conf_error(ps, d->line, "auth_jwt_cookie: bad cookie name");
      else
        snprintf(j->cookie, sizeof(j->cookie), "%s", d->args[1]);
    }
  } else if (strcmp(n, "auth_jwt_claim_header") == 0) {
    if (tether__conf_want_args(ps, d, 2, 2) < 0) return 1;
    if (j->nclaim_headers == TETHER__JWT_MAX_CLAIM_HEADERS) {
      tether__conf_error(ps, d->line, "auth_jwt_claim_header: at most %d", TETHER__JWT_MAX_CLAIM_HEADERS);
    } else if (strlen(d->args[1]) >= 64 || !tether__token_valid(d->args[2]) || strlen(d->args[2]) >= 64) {
      tether__conf_error(ps, d->line, "auth_jwt_claim_header: CLAIM HEADER-NAME (a header name is a token)");
    } else {
      snprintf(j->claim_headers[j->nclaim_headers].claim, 64, "%s", d->args[1]);
      snprintf(j->claim_headers[j->nclaim_headers].header, 64, "%s", d->args[2]);
      j->nclaim_headers++;
    }
  } else {
    tether__conf_error(ps, d->line, "unknown directive \"%s\"", n);
  }
  return 1;
}

/* proxy_set_header NAME VALUE, as nginx: the value replaces what the client sent under that name, an
 * empty value removes it. Tether frames requests and manages connections to servers itself, so the
 * framing headers cannot be set, and Connection/Upgrade take only what the keep-alive and WebSocket
 * recipes say (which is what Tether does anyway). */
void tether__conf_set_header(tether__conf_parser *ps, tether__conf_directive *d, tether__cf_headers *h) {
  if (tether__conf_want_args(ps, d, 2, 2) < 0) return;
  const char *name = d->args[1], *value = d->args[2];
  h->defined = 1;
  if (!tether__token_valid(name) || strlen(name) >= sizeof(h->set[0].name)) {
    tether__conf_error(ps, d->line, "proxy_set_header: \"%s\" is not a header name", name);
    return;
  }
  static const char *const framing[] = {"content-length",   "transfer-encoding", "te",     "keep-alive",
                                        "proxy-connection", "http2-settings",    "trailer"};
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(framing); i++)
    if (strcasecmp(name, framing[i]) == 0) {
      tether__conf_error(ps, d->line,
                         "proxy_set_header %s: Tether frames requests to servers itself; this header cannot be set",
                         name);
      return;
    }
  if (strcasecmp(name, "connection") == 0) {
    if (value[0] != '\0' && strcasecmp(value, "upgrade") != 0 && strcmp(value, "$connection_upgrade") != 0)
      tether__conf_error(ps, d->line,
                         "proxy_set_header Connection: Tether keeps server connections alive and forwards WebSocket "
                         "upgrades itself; only \"\", \"upgrade\" or $connection_upgrade (the keep-alive and "
                         "WebSocket recipes) are accepted");
    return;
  }
  if (strcasecmp(name, "upgrade") == 0) {
    if (strcmp(value, "$http_upgrade") != 0)
      tether__conf_error(ps, d->line,
                         "proxy_set_header Upgrade: only $http_upgrade (the WebSocket recipe) is accepted; Tether "
                         "forwards WebSocket upgrades itself");
    return;
  }
  for (int i = 0; i < h->nset; i++)
    if (strcasecmp(h->set[i].name, name) == 0) {
      tether__conf_error(ps, d->line, "proxy_set_header %s: set twice at this level", name);
      return;
    }
  if (h->nset == TETHER__CF_MAX_SET_HEADERS) {
    tether__conf_error(ps, d->line, "proxy_set_header: at most %d per level", TETHER__CF_MAX_SET_HEADERS);
    return;
  }
  h->set = tether__cf_grow(ps->cf, h->set, (size_t)h->nset, sizeof(*h->set));
  tether__cf_set_header *sh = &h->set[h->nset];
  memset(sh, 0, sizeof(*sh));
  snprintf(sh->name, sizeof(sh->name), "%s", name);
  int n = tether__conf_value(ps, d, value, sh->value, TETHER__KEY_MAX_PARTS, "proxy_set_header value");
  if (n < 0) return;
  sh->nvalue = n;
  h->nset++;
}

/* proxy_http_version: Tether always speaks HTTP/1.1 to servers. */
void tether__conf_http_version(tether__conf_parser *ps, tether__conf_directive *d) {
  if (tether__conf_want_args(ps, d, 1, 1) == 0 && strcmp(d->args[1], "1.1") != 0)
    tether__conf_error(ps, d->line, "proxy_http_version: Tether speaks HTTP/1.1 to servers; only 1.1 is accepted");
}

/* proxy_pass http://UPSTREAM or https://UPSTREAM: the request target goes to the server as the client sent it.
 * nginx replaces the location's prefix with a URI after the upstream's name, which Tether does not do, so a URI is
 * refused (but "/" in "location /", which replaces "/" with "/"). */
static void proxy_pass_line(tether__conf_parser *ps, tether__conf_directive *c, const tether__cf_location *loc,
                            tether__conf_pending *pd) {
  if (tether__conf_want_args(ps, c, 1, 1) < 0) return;
  const char *v = c->args[1];
  size_t skip = strncmp(v, "http://", 7) == 0 ? 7 : strncmp(v, "https://", 8) == 0 ? 8 : 0;
  const char *slash = skip ? strchr(v + skip, '/') : NULL;
  if (skip == 0 || strlen(v + skip) >= 128) {
    tether__conf_error(ps, c->line, "proxy_pass must be http://UPSTREAM or https://UPSTREAM, got \"%s\"", v);
  } else if (slash && (slash[1] != '\0' || loc->exact || strcmp(loc->prefix, "/") != 0)) {
    tether__conf_error(ps, c->line,
                       "proxy_pass %s: a URI after the upstream's name is not supported (nginx would put "
                       "it in place of the location's prefix; Tether passes the request target unchanged): write "
                       "%.*s",
                       v, (int)(slash - v), v);
  } else {
    snprintf(pd->name, sizeof(pd->name), "%.*s", slash ? (int)(slash - v - skip) : 127, v + skip);
    pd->line = c->line;
    pd->https = skip == 8;
  }
}

/* Literal text a header can carry: no control characters (a line break would split the head). */
static int header_text_ok(const tether__key_part *v, int n) {
  for (int i = 0; i < n; i++)
    for (const char *p = v[i].text; v[i].type == TETHER__KEY_TEXT && *p; p++)
      if ((unsigned char)*p < 0x20 || *p == 0x7f) return 0;
  return 1;
}

/* add_header NAME VALUE [always], as nginx: the header goes on responses to clients with status 200, 201,
 * 204, 206, 301, 302, 303, 304, 307 or 308, and with `always` on every response, the balancer's own answers
 * too; a value that comes out empty adds nothing. Tether frames responses itself, so the framing headers
 * cannot be added. */
void tether__conf_add_header(tether__conf_parser *ps, tether__conf_directive *d, tether__cf_add_headers *h) {
  if (tether__conf_want_args(ps, d, 2, 3) < 0) return;
  const char *name = d->args[1];
  h->defined = 1;
  static const char *const framing[] = {"content-length", "transfer-encoding", "connection",
                                        "keep-alive",     "upgrade",           "te",
                                        "trailer",        "proxy-connection"};
  int refused = 0;
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(framing); i++) refused |= strcasecmp(name, framing[i]) == 0;
  if (d->nargs == 4 && strcmp(d->args[3], "always") != 0) {
    tether__conf_error(ps, d->line, "add_header: the third parameter can only be \"always\", got \"%s\"", d->args[3]);
  } else if (!tether__token_valid(name) || strlen(name) >= sizeof(h->add[0].name)) {
    tether__conf_error(ps, d->line, "add_header: \"%s\" is not a header name", name);
  } else if (refused) {
    tether__conf_error(ps, d->line, "add_header %s: Tether frames responses itself; this header cannot be added", name);
  } else if (h->nadd == TETHER__CF_MAX_ADD_HEADERS) {
    tether__conf_error(ps, d->line, "add_header: at most %d per level", TETHER__CF_MAX_ADD_HEADERS);
  } else {
    h->add = tether__cf_grow(ps->cf, h->add, (size_t)h->nadd, sizeof(*h->add));
    tether__cf_add_header *a = &h->add[h->nadd];
    memset(a, 0, sizeof(*a));
    int n = tether__conf_value(ps, d, d->args[2], a->value, TETHER__KEY_MAX_PARTS, "add_header value");
    if (n < 0) return;
    if (!header_text_ok(a->value, n)) {
      tether__conf_error(ps, d->line, "add_header %s: the value has control characters", name);
      return;
    }
    snprintf(a->name, sizeof(a->name), "%s", name);
    a->nvalue = n;
    a->always = d->nargs == 4;
    h->nadd++;
  }
}

/* return CODE [TEXT]: TEXT (with variables) is the body. return CODE URL for 301, 302, 303, 307 and 308, and
 * return URL (http://, https:// or $scheme...: a 302): a Location header and nginx's short HTML page. As in
 * nginx, the first return of a level ends the request, so a later one is checked but never used. 444 (close
 * without answering) is refused. */
void tether__conf_return(tether__conf_parser *ps, tether__conf_directive *c, tether__cf_return *r) {
  tether__cf_return tmp = {0};
  if (tether__conf_want_args(ps, c, 1, 2) < 0) return;
  const char *a = c->args[1], *text = c->nargs == 3 ? c->args[2] : NULL;
  if (c->nargs == 2 &&
      (strncmp(a, "http://", 7) == 0 || strncmp(a, "https://", 8) == 0 || strncmp(a, "$scheme", 7) == 0)) {
    tmp.status = 302;
    text = a;
  } else if (tether__conf_int(ps, c, "status", a, 200, 599, &tmp.status) < 0) {
    return;
  }
  int redirect = TETHER__REDIRECT(tmp.status);
  if (tmp.status == 444) {
    tether__conf_error(ps, c->line, "return 444 (close without an answer) is not supported");
    return;
  }
  if (text) {
    int n = tether__conf_value(ps, c, text, tmp.value, TETHER__KEY_MAX_PARTS, redirect ? "return URL" : "return text");
    if (n < 0) return;
    if (redirect && (n == 0 || !header_text_ok(tmp.value, n))) {
      tether__conf_error(ps, c->line, "return %d: the URL is empty or has control characters", tmp.status);
      return;
    }
    tmp.nvalue = n;
  }
  tmp.line = c->line;
  if (r->status == 0) *r = tmp;
}

static void location_body(tether__conf_parser *ps, tether__conf_directive *d, tether__cf_location *loc,
                          tether__conf_pending *pd) {
  tether__conf_directive c;
  int rc;
  while ((rc = tether__conf_read(ps, &c)) == 1) {
    const char *n = c.args[0];
    if (strcmp(n, "proxy_pass") == 0) {
      proxy_pass_line(ps, &c, loc, pd);
    } else if (strcmp(n, "return") == 0) {
      tether__conf_return(ps, &c, &loc->ret);
    } else if (tether__conf_jwt(ps, &c, &loc->jwt)) {
      /* handled */
    } else if (strcmp(n, "proxy_set_header") == 0) {
      tether__conf_set_header(ps, &c, &loc->headers);
    } else if (strcmp(n, "add_header") == 0) {
      tether__conf_add_header(ps, &c, &loc->add_headers);
    } else if (strcmp(n, "proxy_http_version") == 0) {
      tether__conf_http_version(ps, &c);
    } else if (tether__conf_proxy_ssl(ps, &c, &pd->ssl)) {
      /* handled */
    } else {
      tether__conf_error(ps, c.line, "unknown directive \"%s\" in location", n);
      if (c.block) tether__conf_skip_block(ps);
    }
    tether__conf_free_directive(&c);
  }
  if (rc == 0) tether__conf_error(ps, d->line, "location: missing \"}\"");
}

void tether__conf_location(tether__conf_parser *ps, tether__conf_directive *d) {
  tether__config *cf = ps->cf;
  int exact = d->nargs == 3 && strcmp(d->args[1], "=") == 0;
  if (d->nargs == 3 && !exact && d->block) {
    tether__conf_error(ps, d->line,
                       "location \"%s %s\": regex locations are not supported (use a prefix or \"= /path\")",
                       d->args[1], d->args[2]);
    tether__conf_skip_block(ps);
    return;
  }
  if (!d->block || !(d->nargs == 2 || exact)) {
    tether__conf_error(ps, d->line, "\"location\" takes a prefix (or \"= /path\") and a block");
    if (d->block) tether__conf_skip_block(ps);
    return;
  }
  const char *prefix = d->args[exact ? 2 : 1];
  if (prefix[0] != '/' || strlen(prefix) >= sizeof(cf->locations[0].prefix)) {
    tether__conf_error(ps, d->line, "location prefix must start with '/' (regex locations are not supported)");
    tether__conf_skip_block(ps);
    return;
  }
  if (cf->nlocations == TETHER__CF_MAX_LOCATIONS) {
    tether__conf_error(ps, d->line, "too many locations");
    tether__conf_skip_block(ps);
    return;
  }
  cf->locations = tether__cf_grow(cf, cf->locations, cf->nlocations, sizeof(*cf->locations));
  ps->pendings = tether__conf_grow(ps->pendings, cf->nlocations, sizeof(*ps->pendings));
  tether__cf_location *loc = &cf->locations[cf->nlocations]; /* locations do not nest */
  memset(loc, 0, sizeof(*loc));
  snprintf(loc->prefix, sizeof(loc->prefix), "%s", prefix);
  loc->exact = exact;
  loc->upstream = -1;
  tether__conf_pending *pd = &ps->pendings[cf->nlocations];
  memset(pd, 0, sizeof(*pd));
  pd->line = d->line;
  location_body(ps, d, loc, pd);
  if (pd->name[0] == '\0' && loc->ret.status == 0)
    tether__conf_error(ps, d->line, "location \"%s\" has neither proxy_pass nor return", prefix);
  cf->nlocations++;
}

/* Locations inherit the outer auth_jwt settings unless they have their own; every enabled one gets its
 * verifier now, so a key that cannot be read fails the load (and a reload keeps the running one). */
/* Every claim header j names, into cf->claim_headers. -1 when there are too many. */
static int collect_claim_headers(tether__conf_parser *ps, tether__config *cf, const tether__cf_jwt *j) {
  for (int h = 0; h < j->nclaim_headers; h++) {
    int seen = 0;
    for (int k = 0; k < cf->nclaim_headers && !seen; k++)
      seen = strcasecmp(cf->claim_headers[k], j->claim_headers[h].header) == 0;
    if (seen) continue;
    if (cf->nclaim_headers == TETHER__CF_MAX_STRIP) {
      tether__conf_error(ps, j->line, "auth_jwt_claim_header: at most %d distinct header names", TETHER__CF_MAX_STRIP);
      return -1;
    }
    cf->claim_headers = tether__cf_grow(cf, cf->claim_headers, (size_t)cf->nclaim_headers, sizeof(*cf->claim_headers));
    snprintf(cf->claim_headers[cf->nclaim_headers++], sizeof(cf->claim_headers[0]), "%s", j->claim_headers[h].header);
  }
  return 0;
}

void tether__conf_build_jwt(tether__conf_parser *ps, tether__config *cf) {
  cf->jwt.verifier = NULL;
  for (size_t v = 0; v < cf->nvservers; v++) { /* servers took the http level's when they had none */
    tether__cf_vserver *vs = &cf->vservers[v];
    vs->jwt.verifier = NULL;
    for (size_t k = vs->first_location; k < vs->first_location + vs->nlocations; k++)
      if (!cf->locations[k].jwt.set && vs->jwt.set) cf->locations[k].jwt = vs->jwt;
  }
  for (size_t i = 0; i < cf->nlocations; i++) {
    tether__cf_jwt *j = &cf->locations[i].jwt;
    j->verifier = NULL;
    if (!j->enabled) continue;
    if (j->nkeys == 0) {
      tether__conf_error(ps, j->line, "auth_jwt \"%s\" has no auth_jwt_key", j->realm);
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
      tether__conf_error(ps, j->line, "auth_jwt: %s", tether_last_error());
      continue;
    }
    /* the key's specification may be a literal secret: errors name the key by its position, never its text */
    for (int k = 0; k < j->nkeys; k++)
      if (tether_jwt_verifier_add_key(j->verifier, j->keys[k].spec, j->keys[k].alg[0] ? j->keys[k].alg : NULL, NULL) <
          0)
        tether__conf_error(ps, j->line, "auth_jwt_key #%d of auth_jwt \"%s\": %s", k + 1, j->realm,
                           tether_last_error());
  }
  /* every claim header any level names is removed from every request, authenticated or not: a client must
   * never speak for the token where no token is checked */
  cf->nclaim_headers = 0;
  if (collect_claim_headers(ps, cf, &cf->jwt) < 0) return;
  for (size_t v = 0; v < cf->nvservers; v++)
    if (collect_claim_headers(ps, cf, &cf->vservers[v].jwt) < 0) return;
  for (size_t i = 0; i < cf->nlocations; i++)
    if (collect_claim_headers(ps, cf, &cf->locations[i].jwt) < 0) return;
}
