/* The balancer's configuration reader: nginx's syntax, checked whole, every error with file:line. This file
 * walks the blocks and hands each directive to its context's handlers (config_upstream.c,
 * config_location.c); the process, limit and logging directives are read here. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../lib/util.h"
#include "config-int.h"
#include "tether/jwt.h"

#define MAX_DEPTH 4

static void listen_line(tether__conf_parser *ps, tether__conf_directive *d, int admin) {
  tether__config *cf = ps->cf;
  if (d->nargs < 2 || d->block) {
    tether__conf_error(ps, d->line, "\"%s\" takes an address", d->args[0]);
    return;
  }
  for (int i = 2; i < d->nargs; i++)
    if (strcmp(d->args[i], "reuseport") != 0 && strcmp(d->args[i], "default_server") != 0)
      tether__conf_error(ps, d->line, "unknown listen parameter \"%s\"", d->args[i]);
  tether__addr a;
  if (tether__addr_parse(d->args[1], &a) < 0) {
    tether__conf_error(ps, d->line, "invalid address \"%s\" (expected [IP:]PORT)", d->args[1]);
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
    tether__conf_error(ps, d->line, "too many listen addresses");
  } else {
    cf->listen[cf->nlisten++] = a;
  }
}

/* admin_auth_token env:NAME: the secret is read now, so a missing one fails the load (and a reload keeps
 * the running configuration). Errors never quote it. */
static void admin_token_line(tether__conf_parser *ps, tether__conf_directive *d) {
  tether__config *cf = ps->cf;
  if (strncmp(d->args[1], "env:", 4) != 0 || d->args[1][4] == '\0') {
    tether__conf_error(ps, d->line, "\"admin_auth_token\" takes env:NAME (the token is read from that environment variable)");
    return;
  }
  const char *name = d->args[1] + 4, *v = getenv(name);
  cf->admin_token_line = d->line;
  size_t n = v ? strlen(v) : 0;
  int printable = 1;
  for (size_t i = 0; i < n; i++) printable &= v[i] > 0x20 && v[i] < 0x7f;
  if (v == NULL) tether__conf_error(ps, d->line, "admin_auth_token: environment variable %s is not set", name);
  else if (n == 0) tether__conf_error(ps, d->line, "admin_auth_token: environment variable %s is empty", name);
  else if (n < 16)
    tether__conf_error(ps, d->line, "admin_auth_token: the token in %s is too short (at least 16 characters)", name);
  else if (n >= sizeof(cf->admin_token))
    tether__conf_error(ps, d->line, "admin_auth_token: the token in %s is too long (at most %zu characters)", name,
          sizeof(cf->admin_token) - 1);
  else if (!printable)
    tether__conf_error(ps, d->line, "admin_auth_token: the token in %s must be printable ASCII without spaces", name);
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

static void block_body(tether__conf_parser *ps, int depth, const char *ctx);

/* Directives allowed at the top, in http { } and in server { } alike: nginx users nest them freely. */
static void common_directive(tether__conf_parser *ps, tether__conf_directive *d, int depth, const char *ctx) {
  tether__config *cf = ps->cf;
  const char *n = d->args[0];
  uint64_t sz;
  if (strcmp(n, "upstream") == 0) tether__conf_upstream(ps, d);
  else if (strcmp(n, "location") == 0) tether__conf_location(ps, d);
  else if (tether__conf_jwt(ps, d, &cf->jwt)) { /* a default for every location */ }
  else if (strcmp(n, "listen") == 0) listen_line(ps, d, 0);
  else if (strcmp(n, "admin_listen") == 0) listen_line(ps, d, 1);
  else if (strcmp(n, "http") == 0 || strcmp(n, "server") == 0) {
    if (!d->block || d->nargs != 1 || depth >= MAX_DEPTH) {
      tether__conf_error(ps, d->line, "\"%s\" takes a block and no argument", n);
      if (d->block) tether__conf_skip_block(ps);
    } else {
      block_body(ps, depth + 1, n);
    }
  } else if (strcmp(n, "worker_processes") == 0) {
    if (tether__conf_want_args(ps, d, 1, 1) == 0) {
      if (strcmp(d->args[1], "auto") == 0) cf->workers = (int)sysconf(_SC_NPROCESSORS_ONLN);
      else tether__conf_int(ps, d, "worker_processes", d->args[1], 1, 256, &cf->workers);
    }
  } else if (strcmp(n, "client_header_buffer") == 0 || strcmp(n, "large_client_header_buffers") == 0) {
    const char *v = d->args[d->nargs - 1];
    if (d->nargs >= 2 && d->nargs <= 3 && tether__conf_size(ps, d, v, &sz) == 0) {
      if (sz < 1024 || sz > 1024 * 1024) tether__conf_error(ps, d->line, "\"%s\" must be from 1k to 1m", n);
      else cf->client_header_buffer = sz;
    } else if (d->nargs < 2 || d->nargs > 3) {
      tether__conf_error(ps, d->line, "\"%s\" takes a size", n);
    }
  } else if (strcmp(n, "client_max_body_size") == 0) {
    if (tether__conf_want_args(ps, d, 1, 1) == 0) tether__conf_size(ps, d, d->args[1], &cf->client_max_body_size);
  } else if (strcmp(n, "client_header_timeout") == 0) {
    if (tether__conf_want_args(ps, d, 1, 1) == 0) tether__conf_time(ps, d, d->args[1], &cf->client_header_timeout_ms);
  } else if (strcmp(n, "client_body_timeout") == 0) {
    if (tether__conf_want_args(ps, d, 1, 1) == 0) tether__conf_time(ps, d, d->args[1], &cf->client_body_timeout_ms);
  } else if (strcmp(n, "keepalive_timeout") == 0) {
    if (tether__conf_want_args(ps, d, 1, 1) == 0) tether__conf_time(ps, d, d->args[1], &cf->keepalive_timeout_ms);
  } else if (strcmp(n, "proxy_connect_timeout") == 0) {
    if (tether__conf_want_args(ps, d, 1, 1) == 0) tether__conf_time(ps, d, d->args[1], &cf->proxy_connect_timeout_ms);
  } else if (strcmp(n, "proxy_read_timeout") == 0) {
    if (tether__conf_want_args(ps, d, 1, 1) == 0) tether__conf_time(ps, d, d->args[1], &cf->proxy_read_timeout_ms);
  } else if (strcmp(n, "proxy_send_timeout") == 0) {
    if (tether__conf_want_args(ps, d, 1, 1) == 0) tether__conf_time(ps, d, d->args[1], &cf->proxy_send_timeout_ms);
  } else if (strcmp(n, "proxy_next_upstream_tries") == 0) {
    if (tether__conf_want_args(ps, d, 1, 1) == 0) tether__conf_int(ps, d, "tries", d->args[1], 0, 100, &cf->proxy_next_upstream_tries);
  } else if (strcmp(n, "shutdown_timeout") == 0) {
    if (tether__conf_want_args(ps, d, 1, 1) == 0) tether__conf_time(ps, d, d->args[1], &cf->shutdown_grace_ms);
  } else if (strcmp(n, "forwarded") == 0) {
    if (tether__conf_want_args(ps, d, 1, 1) == 0) {
      if (strcmp(d->args[1], "on") == 0) cf->add_forwarded = 1;
      else if (strcmp(d->args[1], "off") == 0) cf->add_forwarded = 0;
      else tether__conf_error(ps, d->line, "\"forwarded\" takes on or off");
    }
  } else if (strcmp(n, "set_real_ip_from") == 0) {
    if (tether__conf_want_args(ps, d, 1, 1) == 0) {
      if (cf->nreal_ip_from == TETHER__CF_MAX_REALIP) tether__conf_error(ps, d->line, "too many set_real_ip_from");
      else if (tether__cidr_parse(d->args[1], &cf->real_ip_from[cf->nreal_ip_from]) < 0)
        tether__conf_error(ps, d->line, "invalid address or CIDR \"%s\"", d->args[1]);
      else cf->nreal_ip_from++;
    }
  } else if (strcmp(n, "real_ip_header") == 0) {
    if (tether__conf_want_args(ps, d, 1, 1) == 0) {
      if (strcmp(d->args[1], "proxy_protocol") == 0) cf->real_ip_proxy_protocol = 1;
      else if (strcasecmp(d->args[1], "X-Forwarded-For") == 0) cf->real_ip_proxy_protocol = 0;
      else tether__conf_error(ps, d->line, "\"real_ip_header\" takes X-Forwarded-For or proxy_protocol");
    }
  } else if (strcmp(n, "access_log") == 0) {
    if (tether__conf_want_args(ps, d, 1, 2) == 0) {
      if (strcmp(d->args[1], "off") == 0) cf->access_log[0] = '\0';
      else snprintf(cf->access_log, sizeof(cf->access_log), "%s", d->args[1]);
      if (d->nargs == 3) {
        if (strcmp(d->args[2], "json") == 0) cf->access_log_json = 1;
        else if (strcmp(d->args[2], "combined") == 0) cf->access_log_json = 0;
        else tether__conf_error(ps, d->line, "access_log format must be combined or json");
      }
    }
  } else if (strcmp(n, "sticky_key_file") == 0) {
    /* only named here: the file is read (or created) when the configuration is loaded, not parsed */
    if (tether__conf_want_args(ps, d, 1, 1) == 0) {
      if (d->args[1][0] == '\0' || strlen(d->args[1]) >= sizeof(cf->sticky_key_file))
        tether__conf_error(ps, d->line, "\"sticky_key_file\" takes a path (under 512 characters)");
      else snprintf(cf->sticky_key_file, sizeof(cf->sticky_key_file), "%s", d->args[1]);
      cf->sticky_key_file_line = d->line;
    }
  } else if (strcmp(n, "error_log") == 0) {
    if (tether__conf_want_args(ps, d, 1, 2) == 0) snprintf(cf->error_log, sizeof(cf->error_log), "%s", d->args[1]);
  } else if (strcmp(n, "proxy_set_header") == 0) {
    tether__conf_set_header(ps, d, &cf->headers);
  } else if (strcmp(n, "proxy_http_version") == 0) {
    tether__conf_http_version(ps, d);
  } else if (strcmp(n, "client_body_time") == 0) {
    if (tether__conf_want_args(ps, d, 1, 1) == 0) tether__conf_time(ps, d, d->args[1], &cf->client_body_time_ms);
  } else if (strcmp(n, "admin_auth_token") == 0) {
    if (tether__conf_want_args(ps, d, 1, 1) == 0) admin_token_line(ps, d);
  } else if (strcmp(n, "worker_rlimit_nofile") == 0) {
    if (tether__conf_want_args(ps, d, 1, 1) == 0)
      tether__conf_int(ps, d, "worker_rlimit_nofile", d->args[1], 32, 16777216, &cf->rlimit_nofile);
  } else if (strcmp(n, "events") == 0 && d->block) {
    tether__conf_skip_block(ps); /* nginx's events { worker_connections ...; }: libuv needs none of it */
  } else if (strcmp(n, "server_name") == 0 || strcmp(n, "include") == 0) {
    /* server_name is accepted (one virtual server); include is not supported */
    if (strcmp(n, "include") == 0) tether__conf_error(ps, d->line, "\"include\" is not supported");
  } else {
    tether__conf_error(ps, d->line, "unknown directive \"%s\"%s%s", n, depth ? " in " : "", depth ? ctx : "");
    if (d->block) tether__conf_skip_block(ps);
  }
}

static void block_body(tether__conf_parser *ps, int depth, const char *ctx) {
  tether__conf_directive d;
  int rc;
  while ((rc = tether__conf_read(ps, &d)) == 1) {
    static const char *const blocks[] = {"upstream", "location", "http", "server", "events"};
    int takes_block = 0;
    for (size_t i = 0; i < TETHER__ARRAY_SIZE(blocks); i++) takes_block |= strcmp(d.args[0], blocks[i]) == 0;
    if (d.block && !takes_block) {
      tether__conf_error(ps, d.line, "\"%s\" takes no block: a \";\" is missing before \"%s\"?", d.args[0],
            d.nargs > 1 ? d.args[d.nargs - 1] : "{");
      tether__conf_skip_block(ps);
    } else {
      common_directive(ps, &d, depth, ctx);
    }
    tether__conf_free_directive(&d);
  }
  if (rc == -1 && depth == 0) tether__conf_error(ps, ps->line, "unexpected \"}\"");
  if (rc == 0 && depth > 0) tether__conf_error(ps, ps->line, "unexpected end of file, expecting \"}\"");
  if (rc == -2) {
    /* a syntax error: resynchronise at the next ';' or block end by skipping this level */
    tether__conf_free_directive(&d);
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
  tether__conf_parser *psp = tether__calloc(1, sizeof(tether__conf_parser)); /* large: keep it off the stack */
  *psp = (tether__conf_parser){.file = path, .p = text, .end = text + len, .line = 1, .cf = cf, .err = err, .errlen = errlen};
  block_body(psp, 0, "");
  for (size_t i = 0; i < cf->nlocations; i++) {
    if (psp->pendings[i].name[0] == '\0') continue;
    for (size_t k = 0; k < cf->nupstreams; k++)
      if (strcmp(cf->upstreams[k].name, psp->pendings[i].name) == 0) cf->locations[i].upstream = (int)k;
    if (cf->locations[i].upstream < 0)
      tether__conf_error(psp, psp->pendings[i].line, "proxy_pass: no upstream named \"%s\"", psp->pendings[i].name);
  }
  tether__conf_build_jwt(psp, cf);
  if (cf->admin.len && !is_loopback(&cf->admin) && cf->admin_token_line == 0)
    tether__conf_error(psp, cf->admin_line, "admin_listen %s is not a loopback address: it needs \"admin_auth_token env:NAME;\"",
          cf->admin.text);
  /* as in nginx, a request line that cannot fit the header buffer is a 414, not a 431 */
  if (cf->large_uri + 1024 > cf->client_header_buffer) cf->large_uri = cf->client_header_buffer > 1536 ? cf->client_header_buffer - 1024 : 512;
  if (cf->nlisten == 0 && psp->nerrors == 0) tether__conf_error(psp, psp->line, "no \"listen\" address");
  if (cf->nlocations == 0 && cf->nupstreams == 1 && psp->nerrors == 0) {
    /* a single upstream and no location: proxy everything to it */
    cf->locations[0] = (tether__cf_location){.prefix = "/", .upstream = 0};
    cf->nlocations = 1;
  }
  if (cf->nlocations == 0 && psp->nerrors == 0) tether__conf_error(psp, psp->line, "no \"location\" to serve");
  for (size_t k = 0; k < cf->nupstreams; k++) {
    tether__cf_upstream *u = &cf->upstreams[k];
    int primaries = 0;
    for (size_t i = 0; i < u->nservers; i++) primaries += !u->servers[i].backup;
    if (u->nservers && primaries == 0) tether__conf_error(psp, u->line, "upstream \"%s\" has only backup servers", u->name);
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
