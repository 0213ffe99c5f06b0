/* Virtual servers, as nginx: server { } blocks, each with its listen addresses, server_name names and
 * locations; an address named by several servers is bound once, and its default server is the one marked
 * default_server, else the first. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/util.h"
#include "config-int.h"

/* ---- listen ---- */

static int same_address(const tether__addr *a, const tether__addr *b) {
  if (a->sa.ss_family != b->sa.ss_family) return 0;
  if (a->sa.ss_family == AF_INET) {
    const struct sockaddr_in *x = (const void *)&a->sa, *y = (const void *)&b->sa;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  const struct sockaddr_in6 *x = (const void *)&a->sa, *y = (const void *)&b->sa;
  return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

/* The address's index in cf->listen, added when new; -1 when there is no room. */
static int listen_index(tether__config *cf, const tether__addr *a, int line) {
  for (size_t i = 0; i < cf->nlisten; i++)
    if (same_address(&cf->listen[i], a)) return (int)i;
  if (cf->nlisten == TETHER__CF_MAX_LISTEN) return -1;
  size_t i = cf->nlisten++;
  cf->listen[i] = *a;
  cf->listen_backlog[i] = TETHER__LISTEN_BACKLOG;
  cf->listen_line[i] = line;
  cf->listen_default[i] = -1;
  return (int)i;
}

/* listen [IP:]PORT [ssl] [backlog=N] [reuseport] [default_server]. As nginx: ssl on any listen of an address
 * makes the address TLS for every server on it, a socket option (backlog=) may be given on one of them only
 * ("duplicate listen options"), and one server at most is an address's default_server. */
void tether__conf_listen(tether__conf_parser *ps, tether__conf_directive *d) {
  tether__config *cf = ps->cf;
  int backlog = 0, ssl = 0, dflt = 0, http2 = 0;
  for (int i = 2; i < d->nargs; i++) {
    if (strncmp(d->args[i], "backlog=", 8) == 0)
      tether__conf_int(ps, d, "backlog", d->args[i] + 8, 1, 65535, &backlog);
    else if (strcmp(d->args[i], "ssl") == 0)
      ssl = 1;
    else if (strcmp(d->args[i], "default_server") == 0 || strcmp(d->args[i], "default") == 0)
      dflt = 1;
    else if (strcmp(d->args[i], "http2") == 0)
      http2 = 1;
    else if (strcmp(d->args[i], "reuseport") != 0)
      tether__conf_error(
          ps, d->line, "unknown listen parameter \"%s\" (ssl, http2, backlog=N, default_server; reuseport is implied)",
          d->args[i]);
  }
  tether__addr a;
  if (tether__addr_parse(d->args[1], &a) < 0) {
    tether__conf_error(ps, d->line, "invalid address \"%s\" (expected [IP:]PORT)", d->args[1]);
    return;
  }
  tether__cf_vserver *vs = ps->vs ? ps->vs : tether__conf_implicit_server(ps, d);
  if (vs == NULL) return;
  int i = listen_index(cf, &a, d->line);
  if (i < 0) {
    tether__conf_error(ps, d->line, "too many listen addresses (at most %d distinct)", TETHER__CF_MAX_LISTEN);
    return;
  }
  if (vs->listens & (1u << i)) {
    tether__conf_error(ps, d->line, "a duplicate listen %s in this server", d->args[1]);
    return;
  }
  vs->listens |= 1u << i;
  cf->listen_ssl[i] |= ssl;
  cf->listen_http2[i] |= http2;
  if (backlog) {
    if (ps->listen_opts_line[i])
      tether__conf_error(ps, d->line, "duplicate listen options for %s (backlog= is also given at %s:%d)", d->args[1],
                         tether__cf_file(cf, ps->listen_opts_line[i]), tether__cf_lineno(ps->listen_opts_line[i]));
    ps->listen_opts_line[i] = d->line;
    cf->listen_backlog[i] = backlog;
  }
  if (dflt) {
    if (ps->default_line[i])
      tether__conf_error(ps, d->line, "a duplicate default server for %s (the first is at %s:%d)", d->args[1],
                         tether__cf_file(cf, ps->default_line[i]), tether__cf_lineno(ps->default_line[i]));
    ps->default_line[i] = d->line;
    cf->listen_default[i] = (int)(vs - cf->vservers);
  }
}

/* ---- server_name ---- */

/* nginx's name forms: exact, "*.example.com", ".example.com" (both example.com and its subdomains),
 * "www.example.*" and "" (requests without a Host). Regular expressions are not served. */
static const char *bad_name(const char *n) {
  size_t len = strlen(n);
  if (n[0] == '~') return "regular expression names are not supported";
  if (n[0] == '$') return "variables are not supported in server_name";
  if (len >= 128) return "the name is too long (at most 127 characters)";
  const char *star = strchr(n, '*');
  if (star && !(star == n && n[1] == '.' && n[2]) && !(star == n + len - 1 && len > 2 && n[len - 2] == '.'))
    return "a wildcard is \"*.\" at the start or \".*\" at the end";
  if (star && strchr(star + 1, '*')) return "one wildcard per name";
  if (strcmp(n, ".") == 0) return "an empty domain";
  for (const char *p = n; *p; p++)
    if ((unsigned char)*p <= ' ' || *p == '/' || (*p == ':' && n[0] != '[') || *p == '\\' || *p == '"')
      return "a host name has no spaces, slashes, quotes or port";
  return NULL;
}

void tether__conf_server_name(tether__conf_parser *ps, tether__conf_directive *d) {
  if (d->nargs < 2) {
    tether__conf_error(ps, d->line, "\"server_name\" takes at least one name");
    return;
  }
  tether__cf_vserver *vs = ps->vs ? ps->vs : tether__conf_implicit_server(ps, d);
  if (vs == NULL) return;
  for (int i = 1; i < d->nargs; i++) {
    const char *why = bad_name(d->args[i]);
    if (why) {
      tether__conf_error(ps, d->line, "server_name \"%s\": %s", d->args[i], why);
    } else if (vs->nnames == TETHER__CF_MAX_NAMES) {
      tether__conf_error(ps, d->line, "server_name: at most %d names per server", TETHER__CF_MAX_NAMES);
      return;
    } else {
      char *out = vs->names[vs->nnames++];
      size_t k = 0;
      for (const char *p = d->args[i]; *p; p++) out[k++] = (char)tolower((unsigned char)*p);
      out[k] = '\0';
    }
  }
}

/* ---- server blocks ---- */

static tether__cf_vserver *new_server(tether__conf_parser *ps, int line) {
  tether__config *cf = ps->cf;
  if (cf->nvservers == TETHER__CF_MAX_VSERVERS) {
    tether__conf_error(ps, line, "too many server blocks (at most %d)", TETHER__CF_MAX_VSERVERS);
    return NULL;
  }
  /* servers are made outside server blocks only, so nothing points into the list while it grows */
  cf->vservers = tether__cf_grow(cf, cf->vservers, cf->nvservers, sizeof(*cf->vservers));
  tether__cf_vserver *vs = &cf->vservers[cf->nvservers++];
  memset(vs, 0, sizeof(*vs));
  vs->line = line;
  vs->http2 = -1;
  vs->first_location = cf->nlocations;
  tether__conf_ssl_unset(&vs->tls);
  return vs;
}

tether__cf_vserver *tether__conf_implicit_server(tether__conf_parser *ps, tether__conf_directive *d) {
  if (ps->explicit_line) {
    tether__conf_error(ps, d->line,
                       "\"%s\" outside a server block, with server blocks (the first at %s:%d): put it in one",
                       d->args[0], tether__cf_file(ps->cf, ps->explicit_line), tether__cf_lineno(ps->explicit_line));
    return NULL;
  }
  if (ps->implicit < 0) {
    tether__cf_vserver *vs = new_server(ps, d->line);
    if (vs == NULL) return NULL;
    ps->implicit = (int)(vs - ps->cf->vservers);
  }
  return &ps->cf->vservers[ps->implicit];
}

tether__cf_vserver *tether__conf_server_open(tether__conf_parser *ps, tether__conf_directive *d) {
  if (ps->vs) {
    tether__conf_error(ps, d->line, "\"server\" inside a server block");
  } else if (ps->implicit >= 0) {
    int where = ps->cf->vservers[ps->implicit].line;
    tether__conf_error(ps, d->line,
                       "a server block, with listen/server_name/location outside one (%s:%d): put those in a "
                       "server block too",
                       tether__cf_file(ps->cf, where), tether__cf_lineno(where));
  } else {
    if (ps->explicit_line == 0) ps->explicit_line = d->line;
    tether__cf_vserver *vs = new_server(ps, d->line);
    if (vs) {
      ps->vs = vs;
      return vs;
    }
  }
  tether__conf_skip_block(ps);
  return NULL;
}

void tether__conf_server_close(tether__conf_parser *ps, tether__cf_vserver *vs) {
  vs->nlocations = ps->cf->nlocations - vs->first_location;
  ps->vs = NULL;
  if (vs->listens == 0) tether__conf_error(ps, vs->line, "this server has no \"listen\"");
}

/* Once the file is read: each address gets its default server, each server inherits what it does not set,
 * and the implicit server takes the locations made outside any block (the single-upstream default). */
void tether__conf_servers_finish(tether__conf_parser *ps, tether__config *cf) {
  if (ps->implicit >= 0) {
    tether__cf_vserver *vs = &cf->vservers[ps->implicit];
    vs->nlocations = cf->nlocations - vs->first_location;
  }
  for (size_t i = 0; i < cf->nlisten; i++) {
    for (size_t v = 0; v < cf->nvservers && cf->listen_default[i] < 0; v++)
      if (cf->vservers[v].listens & (1u << i)) cf->listen_default[i] = (int)v;
  }
  for (size_t v = 0; v < cf->nvservers; v++) {
    tether__cf_vserver *vs = &cf->vservers[v];
    tether__conf_ssl_merge(&vs->tls, &cf->tls);
    if (!vs->jwt.set) vs->jwt = cf->jwt;
    if (!vs->headers.defined) vs->headers = cf->headers;
    for (size_t k = vs->first_location; k < vs->first_location + vs->nlocations; k++)
      if (!cf->locations[k].headers.defined) cf->locations[k].headers = vs->headers;
    int ssl = 0, h2 = 0;
    for (size_t i = 0; i < cf->nlisten; i++) ssl |= (vs->listens & (1u << i)) && cf->listen_ssl[i];
    for (size_t i = 0; i < cf->nlisten; i++) h2 |= (vs->listens & (1u << i)) && cf->listen_http2[i];
    if (vs->http2 < 0) vs->http2 = cf->http2 > 0; /* as nginx: listen ... http2 serves it on the address */
    vs->http2 |= h2;
    if (ssl && vs->tls.ncert == 0)
      tether__conf_error(ps, vs->line, "listen ... ssl: no \"ssl_certificate\" is defined for this server");
  }
}

/* http2 on|off (nginx 1.25, http or server level); the names nginx 1.19.7 made obsolete are refused with the
 * directive that replaced them; the http2_* limits themselves are scalars (config.c). */
void tether__conf_http2(tether__conf_parser *ps, tether__conf_directive *d) {
  static const char *const obsolete[][2] = {{"http2_idle_timeout", "keepalive_timeout"},
                                            {"http2_max_requests", "keepalive_requests"}};
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(obsolete); i++)
    if (strcmp(d->args[0], obsolete[i][0]) == 0) {
      tether__conf_error(ps, d->line, "\"%s\" is obsolete (nginx 1.19.7): use \"%s\"", obsolete[i][0], obsolete[i][1]);
      return;
    }
  if (strcmp(d->args[0], "http2") != 0) {
    tether__conf_error(ps, d->line, "unknown directive \"%s\"", d->args[0]);
    return;
  }
  if (tether__conf_want_args(ps, d, 1, 1) < 0) return;
  int on = 0;
  if (tether__conf_flag(ps, d, d->args[1], &on) < 0) return;
  if (ps->vs)
    ps->vs->http2 = on;
  else
    ps->cf->http2 = on;
}
