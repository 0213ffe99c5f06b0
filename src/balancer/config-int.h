/* The configuration reader's insides, shared by its files and by nothing else. Data flows one way:
 * config.c (the block walker) reads directives through config_lex.c and hands each to the directive
 * handlers of its context (config_upstream.c, config_location.c), which check values with config_value.c;
 * no handler calls back into the walker, and the lexer calls none of them. */
#ifndef TETHER_BALANCER_CONFIG_INT_H
#define TETHER_BALANCER_CONFIG_INT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define TETHER__CONF_MAX_ARGS 16

/* a location's proxy_pass name, resolved once every upstream is known */
typedef struct tether__conf_pending {
  char name[128];
  int line;
  int https;                /* proxy_pass https:// */
  tether__cf_proxy_ssl ssl; /* the location's own proxy_ssl_* (merged with the outer level's once read) */
} tether__conf_pending;

/* Where the lexer reads: a file's text, and what include needs to know about it. */
typedef struct tether__conf_source {
  char *text; /* owned (an included file), NULL for the text given to the parser */
  const char *p, *end;
  int line;  /* a place (config.h): the file's index is in the high bits */
  int depth; /* blocks open in this file: an included file must close what it opens */
  int level; /* include nesting: 0 for the configuration file itself */
} tether__conf_source;

#define TETHER__CONF_MAX_INCLUDE_LEVEL 8 /* deeper is a loop, most likely */
#define TETHER__CONF_MAX_SOURCES 64      /* files suspended or waiting (a glob's matches) at once */

typedef struct tether__conf_parser {
  tether__conf_pending *pendings; /* one per location (cf->nlocations), the parser's own */
  const char *p, *end;            /* the source being read (its text, depth and level are in src) */
  int line;
  tether__conf_source src;
  tether__conf_source waiting[TETHER__CONF_MAX_SOURCES]; /* a stack: includers and files yet to read */
  int nwaiting;
  tether__config *cf;
  char *err;
  size_t errlen, errused;
  int nerrors;
  /* the header buffer directives, combined once the file is read (see header_limits in config.c) */
  uint64_t header_buffer;                      /* client_header_buffer_size (or client_header_buffer); 0: not given */
  int large_buffers;                           /* large_client_header_buffers N SIZE: N, 0 when not given */
  uint64_t large_buffer_size;                  /* ... and SIZE */
  tether__cf_vserver *vs;                      /* the server { } being read, NULL outside one */
  int implicit;                                /* the server of top-level listen/location directives, -1: none yet */
  int explicit_line;                           /* the first server { } block, 0: none */
  int listen_opts_line[TETHER__CF_MAX_LISTEN]; /* where backlog= was given for listen[i], 0: nowhere */
  int default_line[TETHER__CF_MAX_LISTEN];     /* where default_server was given for listen[i], 0: nowhere */
  int global_in_server_line;                   /* the first process-wide directive in a server block */
  char global_in_server[64];                   /* ... its name */
  tether__cf_proxy_ssl proxy_ssl;              /* proxy_ssl_* at the top or http level: every server's default */
  /* add_header in http { } or at the top: a server's list unless it has its own */
  tether__cf_add_headers http_add_headers;
} tether__conf_parser;

typedef struct tether__conf_directive {
  char *args[TETHER__CONF_MAX_ARGS]; /* args[0] is the name */
  int nargs;
  int line;
  int block; /* ends with '{' rather than ';' */
} tether__conf_directive;

/* config_mem.c: the configuration's lists. tether__cf_grow returns list (n elements, made by it or NULL) with
 * room for one more (element n, zeroed), owned by cf; it may move the list, so nothing may point into it while it
 * grows. tether__conf_grow is the same for the parser's own lists (freed with free()). */
void *tether__cf_grow(tether__config *cf, void *list, size_t n, size_t size);
void *tether__conf_grow(void *list, size_t n, size_t size);
void tether__cf_free_owned(tether__config *cf);
size_t tether__cf_owned_bytes(const tether__config *cf); /* what the lists take, beyond sizeof(tether__config) */

/* config_lex.c: tokens and directives */
void tether__conf_error(tether__conf_parser *ps, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Reads the next directive: words up to ';' or '{'. 0 at the end of input, -1 at a '}' (end of block),
 * 1 with a directive, -2 on a syntax error. */
int tether__conf_read(tether__conf_parser *ps, tether__conf_directive *d);
void tether__conf_free_directive(tether__conf_directive *d);
/* Skips a block's contents after an error so parsing can go on and report more. */
void tether__conf_skip_block(tether__conf_parser *ps);
/* min..max arguments and no block, or an error and -1. */
int tether__conf_want_args(tether__conf_parser *ps, tether__conf_directive *d, int min, int max);

/* config_value.c: values of a directive's arguments; an error names the directive and the value */
int tether__conf_time(tether__conf_parser *ps, tether__conf_directive *d, const char *v, int64_t *out);
int tether__conf_size(tether__conf_parser *ps, tether__conf_directive *d, const char *v, uint64_t *out);
int tether__conf_int(tether__conf_parser *ps, tether__conf_directive *d, const char *what, const char *v, long min,
                     long max, int *out);
/* on or off, into *out. */
int tether__conf_flag(tether__conf_parser *ps, tether__conf_directive *d, const char *v, int *out);
/* Text and variables (a hash key when what is NULL, else the value what names, e.g. "add_header value",
 * which may use the header variables too): the number of parts or -1. */
int tether__conf_value(tether__conf_parser *ps, tether__conf_directive *d, const char *text, tether__key_part *parts,
                       int max, const char *what);

/* config_upstream.c: upstream NAME { server ...; persistence; balancing; health_check } */
void tether__conf_upstream(tether__conf_parser *ps, tether__conf_directive *d);

/* config_location.c: location blocks, auth_jwt and header directives */
void tether__conf_location(tether__conf_parser *ps, tether__conf_directive *d);
/* auth_jwt, auth_jwt_key, ... into j. Returns 1 when d was one of them. */
int tether__conf_jwt(tether__conf_parser *ps, tether__conf_directive *d, tether__cf_jwt *j);
void tether__conf_set_header(tether__conf_parser *ps, tether__conf_directive *d, tether__cf_headers *h);
void tether__conf_http_version(tether__conf_parser *ps, tether__conf_directive *d);
void tether__conf_add_header(tether__conf_parser *ps, tether__conf_directive *d, tether__cf_add_headers *h);
/* return ...: into r unless r already holds one (the first return of a level is the one that runs). */
void tether__conf_return(tether__conf_parser *ps, tether__conf_directive *c, tether__cf_return *r);
/* Once the file is read: locations inherit auth_jwt, verifiers are built, claim headers are collected. */
void tether__conf_build_jwt(tether__conf_parser *ps, tether__config *cf);

/* config_ssl.c: the ssl_* directives (1 when d was one of them), and their checks once the file is read. */
int tether__conf_ssl(tether__conf_parser *ps, tether__conf_directive *d);
void tether__conf_ssl_check(tether__conf_parser *ps, tether__config *cf);
/* The proxy_ssl_* directives into p (1 when d was one of them). */
int tether__conf_proxy_ssl(tether__conf_parser *ps, tether__conf_directive *d, tether__cf_proxy_ssl *p);
void tether__conf_proxy_ssl_defaults(tether__cf_proxy_ssl *p);
/* Once proxy_pass names are resolved: each location's settings are merged with the outer level's and handed to
 * its upstream, which must be proxied to with one scheme and one set of settings. */
void tether__conf_proxy_ssl_attach(tether__conf_parser *ps, tether__config *cf);
/* A server's ssl_* over the http level's: what it does not set it inherits (nginx's merge). */
void tether__conf_ssl_unset(tether__cf_tls *t);
void tether__conf_ssl_merge(tether__cf_tls *t, const tether__cf_tls *outer);

/* config_vserver.c: server { } blocks, listen and server_name. (include is the lexer's: config_lex.c.) */
void tether__conf_listen(tether__conf_parser *ps, tether__conf_directive *d);
void tether__conf_server_name(tether__conf_parser *ps, tether__conf_directive *d);
void tether__conf_http2(tether__conf_parser *ps, tether__conf_directive *d); /* http2 on|off */
/* The server that top-level listen/location directives go to (made on first use), or NULL after an error. */
tether__cf_vserver *tether__conf_implicit_server(tether__conf_parser *ps, tether__conf_directive *d);
/* Opens a server { } block: the new server, or NULL after an error (the block is skipped). */
tether__cf_vserver *tether__conf_server_open(tether__conf_parser *ps, tether__conf_directive *d);
void tether__conf_server_close(tether__conf_parser *ps, tether__cf_vserver *vs);
/* Once the file is read: default servers, inheritance from the http level, checks. */
void tether__conf_servers_finish(tether__conf_parser *ps, tether__config *cf);

#endif
