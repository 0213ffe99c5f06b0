/* The balancer's configuration reader: nginx's syntax, checked whole, every error with file:line. This file
 * walks the blocks and hands each directive to its context's handlers (config_upstream.c,
 * config_location.c); the process, limit and logging directives are read here. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../lib/util.h"
#include "config-int.h"
#include "tether/jwt.h"
#include "tls/context.h"

#define MAX_DEPTH 4

/* admin_listen [IP:]PORT (listen is a server's: config_vserver.c). */
static void admin_listen_line(tether__conf_parser *ps, tether__conf_directive *d) {
  tether__config *cf = ps->cf;
  if (d->nargs != 2 || d->block) {
    tether__conf_error(ps, d->line, "\"admin_listen\" takes an address and no parameter");
    return;
  }
  tether__addr a;
  if (tether__addr_parse(d->args[1], &a) < 0) {
    tether__conf_error(ps, d->line, "invalid address \"%s\" (expected [IP:]PORT)", d->args[1]);
    return;
  }
  if (strchr(d->args[1], ':') == NULL) { /* a bare port: loopback only, never every interface */
    ((struct sockaddr_in *)&a.sa)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    snprintf(a.text, sizeof(a.text), "127.0.0.1:%s", d->args[1]);
  }
  cf->admin = a;
  cf->admin_line = d->line;
}

/* admin_auth_token env:NAME: the secret is read now, so a missing one fails the load (and a reload keeps
 * the running configuration). Errors never quote it. */
static void admin_token_line(tether__conf_parser *ps, tether__conf_directive *d) {
  tether__config *cf = ps->cf;
  if (strncmp(d->args[1], "env:", 4) != 0 || d->args[1][4] == '\0') {
    tether__conf_error(ps, d->line,
                       "\"admin_auth_token\" takes env:NAME (the token is read from that environment variable)");
    return;
  }
  const char *name = d->args[1] + 4, *v = getenv(name);
  cf->admin_token_line = d->line;
  size_t n = v ? strlen(v) : 0;
  int printable = 1;
  for (size_t i = 0; i < n; i++) printable &= v[i] > 0x20 && v[i] < 0x7f;
  if (v == NULL)
    tether__conf_error(ps, d->line, "admin_auth_token: environment variable %s is not set", name);
  else if (n == 0)
    tether__conf_error(ps, d->line, "admin_auth_token: environment variable %s is empty", name);
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
  if (a->sa.ss_family == AF_INET) return (ntohl(((const struct sockaddr_in *)&a->sa)->sin_addr.s_addr) >> 24) == 127;
  const struct in6_addr *a6 = &((const struct sockaddr_in6 *)&a->sa)->sin6_addr;
  return IN6_IS_ADDR_LOOPBACK(a6) || (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
}

/* Directives of one time, size or integer argument, and the field each sets. */
static const struct {
  const char *name;
  char kind;        /* 't' a time in ms (int64_t), 's' a size (uint64_t), 'i' an integer from min to max */
  size_t offset;    /* in tether__config */
  const char *what; /* 'i': the value's name in errors */
  long min, max;
} scalars[] = {
    {"client_max_body_size", 's', offsetof(tether__config, client_max_body_size), NULL, 0, 0},
    {"client_header_timeout", 't', offsetof(tether__config, client_header_timeout_ms), NULL, 0, 0},
    {"client_body_timeout", 't', offsetof(tether__config, client_body_timeout_ms), NULL, 0, 0},
    {"client_body_time", 't', offsetof(tether__config, client_body_time_ms), NULL, 0, 0},
    {"keepalive_timeout", 't', offsetof(tether__config, keepalive_timeout_ms), NULL, 0, 0},
    {"proxy_connect_timeout", 't', offsetof(tether__config, proxy_connect_timeout_ms), NULL, 0, 0},
    {"proxy_read_timeout", 't', offsetof(tether__config, proxy_read_timeout_ms), NULL, 0, 0},
    {"proxy_send_timeout", 't', offsetof(tether__config, proxy_send_timeout_ms), NULL, 0, 0},
    {"shutdown_timeout", 't', offsetof(tether__config, shutdown_grace_ms), NULL, 0, 0},
    {"proxy_next_upstream_tries", 'i', offsetof(tether__config, proxy_next_upstream_tries), "tries", 0, 100},
    {"keepalive_requests", 'i', offsetof(tether__config, keepalive_requests), "keepalive_requests", 1, 1000000000},
    {"send_timeout", 't', offsetof(tether__config, send_timeout_ms), NULL, 0, 0},
    {"http2_max_concurrent_streams", 'i', offsetof(tether__config, h2_max_streams), "streams", 1, 65536},
    {"http2_recv_timeout", 't', offsetof(tether__config, h2_recv_timeout_ms), NULL, 0, 0},
    {"http2_body_preread_size", 's', offsetof(tether__config, h2_preread), NULL, 0, 0},
    {"http2_max_field_size", 's', offsetof(tether__config, h2_max_field), NULL, 0, 0},
    {"http2_max_header_size", 's', offsetof(tether__config, h2_max_header), NULL, 0, 0},
    {"worker_rlimit_nofile", 'i', offsetof(tether__config, rlimit_nofile), "worker_rlimit_nofile", 32, 16777216},
};

static int scalar_directive(tether__conf_parser *ps, tether__conf_directive *d) {
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(scalars); i++) {
    if (strcmp(d->args[0], scalars[i].name) != 0) continue;
    if (tether__conf_want_args(ps, d, 1, 1) < 0) return 1;
    void *field = (char *)ps->cf + scalars[i].offset;
    if (scalars[i].kind == 't')
      tether__conf_time(ps, d, d->args[1], field);
    else if (scalars[i].kind == 's')
      tether__conf_size(ps, d, d->args[1], field);
    else
      tether__conf_int(ps, d, scalars[i].what, d->args[1], scalars[i].min, scalars[i].max, field);
    return 1;
  }
  return 0;
}

/* worker_processes auto: one per core, but no more than Tether runs (a notice says so: not the user's number). */
static int auto_workers(long cores) {
  if (cores < 1) return 1;
  return cores > TETHER__MAX_WORKERS ? TETHER__MAX_WORKERS : (int)cores;
}

static void worker_processes_line(tether__conf_parser *ps, tether__conf_directive *d) {
  tether__config *cf = ps->cf;
  if (tether__conf_want_args(ps, d, 1, 1) < 0) return;
  cf->workers_auto_cores = 0;
  if (strcmp(d->args[1], "auto") == 0) {
    cf->workers_auto_cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    cf->workers = auto_workers(cf->workers_auto_cores);
  } else {
    tether__conf_int(ps, d, "worker_processes", d->args[1], 1, TETHER__MAX_WORKERS, &cf->workers);
  }
}

/* error_log PATH [LEVEL]: nginx's levels, onto Tether's four. */
static void error_log_line(tether__conf_parser *ps, tether__conf_directive *d) {
  static const struct {
    const char *name;
    int level;
  } levels[] = {{"debug", TETHER_LOG_DEBUG}, {"info", TETHER_LOG_INFO},   {"notice", TETHER_LOG_INFO},
                {"warn", TETHER_LOG_WARN},   {"error", TETHER_LOG_ERROR}, {"crit", TETHER_LOG_ERROR},
                {"alert", TETHER_LOG_ERROR}, {"emerg", TETHER_LOG_ERROR}};
  tether__config *cf = ps->cf;
  if (tether__conf_want_args(ps, d, 1, 2) < 0) return;
  if (strncmp(d->args[1], "syslog:", 7) == 0 || strncmp(d->args[1], "memory:", 7) == 0 ||
      strlen(d->args[1]) >= sizeof(cf->error_log)) {
    tether__conf_error(ps, d->line, "\"error_log\" takes a file or stderr (no syslog: or memory:)");
    return;
  }
  snprintf(cf->error_log, sizeof(cf->error_log), "%s", d->args[1]);
  if (d->nargs < 3) return;
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(levels); i++)
    if (strcmp(d->args[2], levels[i].name) == 0) {
      cf->error_log_level = levels[i].level;
      return;
    }
  tether__conf_error(ps, d->line,
                     "error_log: unknown level \"%s\" (debug, info, notice, warn, error, crit, alert or "
                     "emerg)",
                     d->args[2]);
}

static void access_log_line(tether__conf_parser *ps, tether__conf_directive *d) {
  tether__config *cf = ps->cf;
  if (tether__conf_want_args(ps, d, 1, 2) < 0) return;
  if (strcmp(d->args[1], "off") == 0)
    cf->access_log[0] = '\0';
  else
    snprintf(cf->access_log, sizeof(cf->access_log), "%s", d->args[1]);
  if (d->nargs == 3) {
    if (strcmp(d->args[2], "json") == 0)
      cf->access_log_json = 1;
    else if (strcmp(d->args[2], "combined") == 0)
      cf->access_log_json = 0;
    else
      tether__conf_error(ps, d->line, "access_log format must be combined or json");
  }
}

static void sticky_key_file_line(tether__conf_parser *ps, tether__conf_directive *d) {
  tether__config *cf = ps->cf;
  /* only named here: the file is read (or created) when the configuration is loaded, not parsed */
  if (tether__conf_want_args(ps, d, 1, 1) < 0) return;
  if (d->args[1][0] == '\0' || strlen(d->args[1]) >= sizeof(cf->sticky_key_file))
    tether__conf_error(ps, d->line, "\"sticky_key_file\" takes a path (under 512 characters)");
  else
    snprintf(cf->sticky_key_file, sizeof(cf->sticky_key_file), "%s", d->args[1]);
  cf->sticky_key_file_line = d->line;
}

/* user USER [GROUP] (nginx's), pid FILE: the process after its ports are bound (main.c does both). */
static void user_line(tether__conf_parser *ps, tether__conf_directive *d) {
  tether__config *cf = ps->cf;
  if (tether__conf_want_args(ps, d, 1, 2) < 0) return;
  if (strlen(d->args[1]) >= sizeof(cf->user) || (d->nargs == 3 && strlen(d->args[2]) >= sizeof(cf->group))) {
    tether__conf_error(ps, d->line, "\"user\": names under 64 characters");
    return;
  }
  snprintf(cf->user, sizeof(cf->user), "%s", d->args[1]);
  snprintf(cf->group, sizeof(cf->group), "%s", d->nargs == 3 ? d->args[2] : "");
  /* checked here, as nginx does, so that `tether -t` finds a misspelt name before a start does */
  if (getpwnam(cf->user) == NULL) tether__conf_error(ps, d->line, "\"user\": no user \"%s\"", cf->user);
  if (cf->group[0] && getgrnam(cf->group) == NULL)
    tether__conf_error(ps, d->line, "\"user\": no group \"%s\"", cf->group);
}

static void pid_line(tether__conf_parser *ps, tether__conf_directive *d) {
  tether__config *cf = ps->cf;
  if (tether__conf_want_args(ps, d, 1, 1) < 0) return;
  if (strcmp(d->args[1], "off") == 0)
    cf->pid_file[0] = '\0';
  else if (d->args[1][0] == '\0' || strlen(d->args[1]) >= sizeof(cf->pid_file))
    tether__conf_error(ps, d->line, "\"pid\" takes a path (under 512 characters) or off");
  else
    snprintf(cf->pid_file, sizeof(cf->pid_file), "%s", d->args[1]);
}

/* nginx's events { }: its directives have no counterpart here (libuv picks epoll, each worker accepts in
 * batches, SO_REUSEPORT spreads connections, and connections are bounded by the descriptor limit); they are
 * accepted so nginx files load, anything else in the block is an error. */
static void events_block(tether__conf_parser *ps, tether__conf_directive *d) {
  static const char *const known[] = {"worker_connections", "use", "multi_accept", "accept_mutex",
                                      "accept_mutex_delay"};
  if (d->nargs != 1) tether__conf_error(ps, d->line, "\"events\" takes a block and no argument");
  tether__conf_directive c;
  int rc;
  while ((rc = tether__conf_read(ps, &c)) == 1) {
    int ok = 0;
    for (size_t i = 0; i < TETHER__ARRAY_SIZE(known); i++) ok |= strcmp(c.args[0], known[i]) == 0;
    if (!ok)
      tether__conf_error(ps, c.line, "unknown directive \"%s\" in events", c.args[0]);
    else if (c.block)
      tether__conf_error(ps, c.line, "\"%s\" takes no block", c.args[0]);
    else
      tether__conf_want_args(ps, &c, 1, 1);
    if (c.block) tether__conf_skip_block(ps);
    tether__conf_free_directive(&c);
  }
  if (rc == 0) tether__conf_error(ps, d->line, "events: missing \"}\"");
}

/* Process-wide directives. Returns 1 when d was one of them. */
static int process_directive(tether__conf_parser *ps, tether__conf_directive *d) {
  const char *n = d->args[0];
  if (strcmp(n, "worker_processes") == 0)
    worker_processes_line(ps, d);
  else if (strcmp(n, "listen") == 0) {
    if (d->nargs < 2 || d->block)
      tether__conf_error(ps, d->line, "\"listen\" takes an address");
    else
      tether__conf_listen(ps, d);
  } else if (strcmp(n, "admin_listen") == 0)
    admin_listen_line(ps, d);
  else if (strcmp(n, "admin_auth_token") == 0) {
    if (tether__conf_want_args(ps, d, 1, 1) == 0) admin_token_line(ps, d);
  } else if (strcmp(n, "error_log") == 0)
    error_log_line(ps, d);
  else if (strcmp(n, "access_log") == 0)
    access_log_line(ps, d);
  else if (strcmp(n, "sticky_key_file") == 0)
    sticky_key_file_line(ps, d);
  else if (strcmp(n, "io_uring") == 0) {
    if (tether__conf_want_args(ps, d, 1, 1) == 0) tether__conf_flag(ps, d, d->args[1], &ps->cf->io_uring);
  } else if (strcmp(n, "events") == 0 && d->block)
    events_block(ps, d);
  else if (strcmp(n, "user") == 0)
    user_line(ps, d);
  else if (strcmp(n, "pid") == 0)
    pid_line(ps, d);
  else
    return 0;
  return 1;
}

/* client_header_buffer_size SIZE (and Tether's older client_header_buffer), large_client_header_buffers N
 * SIZE: gathered here, combined into Tether's one header buffer once the file is read (header_limits). */
static void header_buffer_line(tether__conf_parser *ps, tether__conf_directive *d) {
  uint64_t sz;
  int large = strcmp(d->args[0], "large_client_header_buffers") == 0, n = 1;
  if (tether__conf_want_args(ps, d, large ? 2 : 1, large ? 2 : 1) < 0) return;
  if (large && tether__conf_int(ps, d, "the number of buffers", d->args[1], 1, 1024, &n) < 0) return;
  if (tether__conf_size(ps, d, d->args[d->nargs - 1], &sz) < 0) return;
  if (sz < 1024 || sz > 1024 * 1024) {
    tether__conf_error(ps, d->line, "\"%s\": the size must be from 1k to 1m", d->args[0]);
  } else if (large && (uint64_t)n * sz > 1024 * 1024) {
    tether__conf_error(ps, d->line,
                       "\"large_client_header_buffers %d %s\": Tether reads a request head into one "
                       "buffer of N x SIZE, at most 1m",
                       n, d->args[2]);
  } else if (large) {
    ps->large_buffers = n;
    ps->large_buffer_size = sz;
  } else {
    ps->header_buffer = sz;
  }
}

/* The client's address: set_real_ip_from, real_ip_header, real_ip_recursive. */
static void real_ip_line(tether__conf_parser *ps, tether__conf_directive *d) {
  tether__config *cf = ps->cf;
  const char *n = d->args[0];
  if (tether__conf_want_args(ps, d, 1, 1) < 0) return;
  if (strcmp(n, "set_real_ip_from") == 0) {
    tether__cidr c;
    if (cf->nreal_ip_from == TETHER__CF_MAX_REALIP) {
      tether__conf_error(ps, d->line, "too many set_real_ip_from");
    } else if (tether__cidr_parse(d->args[1], &c) < 0) {
      tether__conf_error(ps, d->line, "invalid address or CIDR \"%s\"", d->args[1]);
    } else {
      cf->real_ip_from = tether__cf_grow(cf, cf->real_ip_from, cf->nreal_ip_from, sizeof(*cf->real_ip_from));
      cf->real_ip_from[cf->nreal_ip_from++] = c;
    }
  } else if (strcmp(n, "real_ip_header") == 0) {
    if (strcmp(d->args[1], "proxy_protocol") == 0)
      cf->real_ip_proxy_protocol = 1;
    else if (strcasecmp(d->args[1], "X-Forwarded-For") == 0)
      cf->real_ip_proxy_protocol = 0;
    else
      tether__conf_error(ps, d->line, "\"real_ip_header\" takes X-Forwarded-For or proxy_protocol");
  } else if (strcmp(d->args[1], "on") != 0) { /* real_ip_recursive */
    tether__conf_error(ps, d->line,
                       "\"real_ip_recursive\": only on (Tether takes the rightmost address in "
                       "X-Forwarded-For that is not a set_real_ip_from proxy)");
  }
}

/* Request and forwarding directives. Returns 1 when d was one of them. */
static int request_directive(tether__conf_parser *ps, tether__conf_directive *d) {
  tether__config *cf = ps->cf;
  const char *n = d->args[0];
  if (strcmp(n, "client_header_buffer_size") == 0 || strcmp(n, "client_header_buffer") == 0 ||
      strcmp(n, "large_client_header_buffers") == 0)
    header_buffer_line(ps, d);
  else if (strcmp(n, "set_real_ip_from") == 0 || strcmp(n, "real_ip_header") == 0 ||
           strcmp(n, "real_ip_recursive") == 0)
    real_ip_line(ps, d);
  else if (strcmp(n, "forwarded") == 0) {
    if (tether__conf_want_args(ps, d, 1, 1) == 0) tether__conf_flag(ps, d, d->args[1], &cf->add_forwarded);
  } else if (strcmp(n, "proxy_set_header") == 0)
    tether__conf_set_header(ps, d, ps->vs ? &ps->vs->headers : &cf->headers);
  else if (strcmp(n, "proxy_http_version") == 0)
    tether__conf_http_version(ps, d);
  else
    return 0;
  return 1;
}

static void block_body(tether__conf_parser *ps, int depth, const char *ctx);

/* http { } and server { } (a virtual server: config_vserver.c). */
static void http_or_server(tether__conf_parser *ps, tether__conf_directive *d, int depth) {
  const char *n = d->args[0];
  if (!d->block || d->nargs != 1 || depth >= MAX_DEPTH) {
    tether__conf_error(ps, d->line, "\"%s\" takes a block and no argument", n);
    if (d->block) tether__conf_skip_block(ps);
    return;
  }
  if (strcmp(n, "server") != 0) {
    block_body(ps, depth + 1, n);
    return;
  }
  tether__cf_vserver *vs = tether__conf_server_open(ps, d);
  if (vs == NULL) return;
  block_body(ps, depth + 1, n);
  tether__conf_server_close(ps, vs);
}

/* Directives that nginx sets per server but Tether per process: in a server block they would quietly apply
 * to the others too, so with several servers they are refused there (see servers_finish). */
static void note_global_in_server(tether__conf_parser *ps, tether__conf_directive *d) {
  if (ps->vs && ps->global_in_server_line == 0) {
    ps->global_in_server_line = d->line;
    snprintf(ps->global_in_server, sizeof(ps->global_in_server), "%s", d->args[0]);
  }
}

/* Directives allowed at the top, in http { } and in server { } alike: nginx users nest them freely. */
static void common_directive(tether__conf_parser *ps, tether__conf_directive *d, int depth, const char *ctx) {
  const char *n = d->args[0];
  if (strcmp(n, "upstream") == 0)
    tether__conf_upstream(ps, d);
  else if (strcmp(n, "location") == 0) {
    if (ps->vs || tether__conf_implicit_server(ps, d))
      tether__conf_location(ps, d);
    else if (d->block)
      tether__conf_skip_block(ps);
  } else if (tether__conf_jwt(ps, d, ps->vs ? &ps->vs->jwt : &ps->cf->jwt)) { /* a default for its locations */
  } else if (strcmp(n, "http") == 0 || strcmp(n, "server") == 0)
    http_or_server(ps, d, depth);
  else if (strcmp(n, "add_header") == 0) /* a server { } list replaces the outer one, as in nginx */
    tether__conf_add_header(ps, d, ps->vs ? &ps->vs->add_headers : &ps->http_add_headers);
  else if (strcmp(n, "return") == 0 && ps->vs == NULL && strcmp(ctx, "http") == 0)
    tether__conf_error(ps, d->line, "\"return\" is not allowed in http { } (nginx: in server { } or a location)");
  else if (strcmp(n, "return") == 0) { /* in server { }, or at the top: the implicit server's */
    tether__cf_vserver *vs = ps->vs ? ps->vs : tether__conf_implicit_server(ps, d);
    if (vs) tether__conf_return(ps, d, &vs->ret);
  } else if (tether__conf_proxy_ssl(ps, d, ps->vs ? &ps->vs->proxy_ssl : &ps->proxy_ssl)) { /* done */
  } else if (strcmp(n, "proxy_set_header") != 0 && strcmp(n, "proxy_http_version") != 0 &&  /* per server, or moot */
             (scalar_directive(ps, d) || request_directive(ps, d)))
    note_global_in_server(ps, d);
  else if (strcmp(n, "access_log") == 0 || strcmp(n, "error_log") == 0) {
    process_directive(ps, d);
    note_global_in_server(ps, d);
  } else if (process_directive(ps, d) || request_directive(ps, d) || tether__conf_ssl(ps, d)) { /* done */
  } else if (strcmp(n, "server_name") == 0) {
    tether__conf_server_name(ps, d);
  } else if (strncmp(n, "http2", 5) == 0) {
    tether__conf_http2(ps, d);
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

/* Tether reads a request head into one buffer: the whole head must fit (431). nginx reads it into
 * client_header_buffer_size first and, when that is too small, into up to N large buffers of SIZE, a request
 * line no longer than one of them (414). So the buffer is the larger of client_header_buffer_size and N x SIZE,
 * the URI is bounded by SIZE (or the first buffer, when larger), and a request line must fit the buffer. */
static void header_limits(tether__conf_parser *ps) {
  tether__config *cf = ps->cf;
  uint64_t large = (uint64_t)ps->large_buffers * ps->large_buffer_size;
  uint64_t buffer = ps->header_buffer > large ? ps->header_buffer : large;
  if (buffer) cf->client_header_buffer = buffer;
  if (ps->large_buffers)
    cf->large_uri = ps->header_buffer > ps->large_buffer_size ? ps->header_buffer : ps->large_buffer_size;
  /* as in nginx, a request line that cannot fit the header buffer is a 414, not a 431 */
  if (cf->large_uri + 1024 > cf->client_header_buffer)
    cf->large_uri = cf->client_header_buffer > 1536 ? cf->client_header_buffer - 1024 : 512;
}

void tether__config_release(tether__config *cf) {
  explicit_bzero(cf->admin_token, sizeof(cf->admin_token));
  for (size_t i = 0; i < cf->nlocations; i++) {
    tether_jwt_verifier_free(cf->locations[i].jwt.verifier);
    cf->locations[i].jwt.verifier = NULL;
  }
  tether__tls_release(cf);
  tether__cf_free_owned(cf); /* the lists: what pointed into them is gone with them */
  cf->vservers = NULL;
  cf->upstreams = NULL;
  cf->locations = NULL;
  cf->nvservers = cf->nupstreams = cf->nlocations = 0;
  cf->headers = (tether__cf_headers){0};
  cf->tls.cert = cf->tls.key = NULL;
  cf->tls.conf_cmd = NULL;
  cf->tls.ticket_key = NULL;
  cf->tls.ncert = cf->tls.nkey = cf->tls.nconf_cmd = cf->tls.nticket_key = 0;
  cf->real_ip_from = NULL;
  cf->nreal_ip_from = 0;
  cf->claim_headers = NULL;
  cf->nclaim_headers = 0;
  cf->included = NULL;
  cf->nincluded = 0;
}

void tether__config_free(tether__config *cf) {
  if (cf == NULL) return;
  tether__config_release(cf);
  free(cf);
}

static void defaults(tether__config *cf) {
  cf->tls.protocols = TETHER__TLS_V12 | TETHER__TLS_V13;
  cf->tls.session_timeout_ms = 300000;
  cf->tls.session_tickets = 1;
  cf->workers_auto_cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
  cf->workers = auto_workers(cf->workers_auto_cores);
  cf->io_uring = 1;
  cf->error_log_level = -1;
  cf->client_header_buffer = 16384;
  cf->large_uri = 8192;
  cf->client_max_body_size = 1024 * 1024;
  cf->client_header_timeout_ms = 60000;
  cf->client_body_timeout_ms = 60000;
  cf->keepalive_timeout_ms = 75000;
  cf->keepalive_requests = 1000;
  cf->send_timeout_ms = 60000;
  cf->http2 = -1;
  cf->h2_max_streams = 128;
  cf->h2_recv_timeout_ms = 30000;
  cf->h2_preread = 65536;
  cf->h2_max_field = 4096;
  cf->h2_max_header = 16384;
  cf->proxy_connect_timeout_ms = 5000;
  cf->proxy_read_timeout_ms = 60000;
  cf->proxy_send_timeout_ms = 60000;
  cf->shutdown_grace_ms = 10000;
  cf->client_body_time_ms = 300000;
}

int tether__config_parse(const char *path, const char *text, size_t len, tether__config *cf, char *err, size_t errlen) {
  memset(cf, 0, sizeof(*cf));
  defaults(cf);
  snprintf(cf->file, sizeof(cf->file), "%s", path);
  if (errlen) err[0] = '\0';
  tether__conf_parser *psp = tether__calloc(1, sizeof(tether__conf_parser));
  *psp = (tether__conf_parser){
      .p = text, .end = text + len, .line = 1, .cf = cf, .err = err, .errlen = errlen, .implicit = -1};
  psp->src = (tether__conf_source){.p = text, .end = text + len, .line = 1};
  tether__conf_proxy_ssl_defaults(&psp->proxy_ssl);
  block_body(psp, 0, "");
  free(psp->src.text); /* what a syntax error left unread */
  while (psp->nwaiting > 0) free(psp->waiting[--psp->nwaiting].text);
  for (size_t i = 0; i < cf->nlocations; i++) {
    if (psp->pendings[i].name[0] == '\0') continue;
    for (size_t k = 0; k < cf->nupstreams; k++)
      if (strcmp(cf->upstreams[k].name, psp->pendings[i].name) == 0) cf->locations[i].upstream = (int)k;
    if (cf->locations[i].upstream < 0)
      tether__conf_error(psp, psp->pendings[i].line, "proxy_pass: no upstream named \"%s\"", psp->pendings[i].name);
  }
  tether__conf_proxy_ssl_attach(psp, cf);
  if (cf->nlisten == 0 && psp->nerrors == 0) tether__conf_error(psp, psp->line, "no \"listen\" address");
  if (cf->nlocations == 0 && cf->nupstreams == 1 && cf->nvservers == 1 && psp->nerrors == 0) {
    /* one server, a single upstream and no location: proxy everything to it */
    cf->locations = tether__cf_grow(cf, cf->locations, 0, sizeof(*cf->locations));
    cf->locations[0] = (tether__cf_location){.prefix = "/", .upstream = 0};
    cf->nlocations = 1;
    cf->vservers[0].nlocations = 1;
  }
  int answers = 0; /* a server's return answers without a location */
  for (size_t v = 0; v < cf->nvservers; v++) {
    answers |= cf->vservers[v].ret.status != 0;
    if (!cf->vservers[v].add_headers.defined) cf->vservers[v].add_headers = psp->http_add_headers;
  }
  if (cf->nlocations == 0 && !answers && psp->nerrors == 0)
    tether__conf_error(psp, psp->line, "no \"location\" to serve");
  tether__conf_ssl_check(psp, cf);
  tether__conf_servers_finish(psp, cf);
  if (psp->global_in_server_line && cf->nvservers > 1)
    tether__conf_error(psp, psp->global_in_server_line,
                       "\"%s\" in a server block: Tether applies it to every server, so with several servers it "
                       "goes at the http level",
                       psp->global_in_server);
  tether__conf_build_jwt(psp, cf);
  if (cf->admin.len && !is_loopback(&cf->admin) && cf->admin_token_line == 0)
    tether__conf_error(psp, cf->admin_line,
                       "admin_listen %s is not a loopback address: it needs \"admin_auth_token env:NAME;\"",
                       cf->admin.text);
  header_limits(psp);
  for (size_t k = 0; k < cf->nupstreams; k++) {
    tether__cf_upstream *u = &cf->upstreams[k];
    int primaries = 0;
    for (size_t i = 0; i < u->nservers; i++) primaries += !u->servers[i].backup;
    if (u->nservers && primaries == 0)
      tether__conf_error(psp, u->line, "upstream \"%s\" has only backup servers", u->name);
  }
  int nerrors = psp->nerrors;
  free(psp->pendings);
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
