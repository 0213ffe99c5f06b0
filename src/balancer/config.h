/* The balancer's configuration: nginx's syntax (directives, blocks, '#' comments, quoted strings, sizes
 * like 16k and times like 10s), read into one immutable struct that workers share read-only and that a
 * reload replaces whole. Every error names file:line and a reason. */
#ifndef TETHER_BALANCER_CONFIG_H
#define TETHER_BALANCER_CONFIG_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define TETHER__CF_MAX_SERVERS 64
#define TETHER__CF_MAX_UPSTREAMS 32
#define TETHER__CF_MAX_LOCATIONS 128 /* in all servers together */
#define TETHER__CF_MAX_LISTEN 8      /* distinct listen addresses (a worker has as many listeners) */
#define TETHER__CF_MAX_VSERVERS 32   /* server { } blocks */
#define TETHER__CF_MAX_NAMES 8       /* server_name names per server */
#define TETHER__CF_MAX_FILES 64      /* the configuration file and the files it includes */
#define TETHER__CF_MAX_REALIP 32
#define TETHER__CF_MAX_STRIP 64
#define TETHER__MAX_WORKERS 64      /* worker_processes: at most this many */
#define TETHER__LISTEN_BACKLOG 4096 /* listen's backlog= when not given (nginx's is 511 on Linux) */

typedef struct tether__addr {
  struct sockaddr_storage sa;
  socklen_t len;
  char text[64]; /* as written: "127.0.0.1:9001" */
} tether__addr;

typedef enum tether__balance_kind {
  TETHER__BALANCE_ROUND_ROBIN = 0, /* smooth weighted round robin, nginx's default */
  TETHER__BALANCE_LEAST_CONN,
  TETHER__BALANCE_RANDOM_TWO /* power of two choices */
} tether__balance_kind;

typedef struct tether__cf_server {
  tether__addr addr;
  char name[64];           /* the address as written: the name nginx's consistent hash uses */
  int weight;              /* default 1 */
  int max_fails;           /* default 1; 0 disables passive health accounting */
  int64_t fail_timeout_ms; /* default 10 s */
  int backup;
  int down;
  int64_t slow_start_ms; /* ramp-up after recovery, 0: none */
  int drain;             /* starts draining: bound clients only */
  char cookie_id[64];    /* HAProxy's `cookie web1`: the sticky cookie value for this server */
  char route[64];        /* NGINX Plus's `route=`: the server's identity for the sticky cookie, "" its name */
} tether__cf_server;

typedef enum tether__persist_kind {
  TETHER__PERSIST_NONE = 0,
  TETHER__PERSIST_COOKIE,     /* sticky cookie NAME ... (NGINX Plus / HAProxy insert) */
  TETHER__PERSIST_APP_COOKIE, /* sticky app_cookie NAME: consistent hash of the app's own cookie */
  TETHER__PERSIST_IP_HASH,    /* ip_hash (nginx) */
  TETHER__PERSIST_HASH        /* hash KEY [consistent|maglev] */
} tether__persist_kind;

typedef enum tether__hash_method {
  TETHER__HASH_MODULO = 0, /* nginx's `hash KEY` */
  TETHER__HASH_KETAMA,     /* `hash KEY consistent` */
  TETHER__HASH_MAGLEV      /* `hash KEY maglev` */
} tether__hash_method;

#define TETHER__KEY_MAX_PARTS 8

/* A hash key: literal text and variables ($remote_addr, $http_NAME, $cookie_NAME, $arg_NAME,
 * $request_uri), concatenated. */
typedef struct tether__key_part {
  enum {
    TETHER__KEY_TEXT,
    TETHER__KEY_REMOTE_ADDR,
    TETHER__KEY_HTTP,
    TETHER__KEY_COOKIE,
    TETHER__KEY_ARG,
    TETHER__KEY_REQUEST_URI,
    TETHER__KEY_JWT_CLAIM,
    /* header values only (proxy_set_header) */
    TETHER__KEY_HOST,
    TETHER__KEY_SCHEME,
    TETHER__KEY_PROXY_ADD_XFF,
    TETHER__KEY_METHOD
  } type;
  char text[64]; /* literal text, or the header/cookie/argument name */
} tether__key_part;

/* proxy_set_header NAME VALUE: the value is text and variables; an empty value removes the header. */
#define TETHER__CF_MAX_SET_HEADERS 16
typedef struct tether__cf_set_header {
  char name[64];
  tether__key_part value[TETHER__KEY_MAX_PARTS];
  int nvalue; /* 0: the header is not sent at all */
} tether__cf_set_header;

/* The lists below grow as the file is read and belong to the configuration (config_mem.c): a level that
 * inherits another level's list shares it. */
typedef struct tether__cf_headers {
  tether__cf_set_header *set; /* nset of them, at most TETHER__CF_MAX_SET_HEADERS */
  int nset;
  int defined; /* some proxy_set_header at this level: the outer level's list is not inherited (nginx) */
} tether__cf_headers;

/* add_header NAME VALUE [always]: a header on the responses to clients (nginx's headers module). A level
 * (location; server; http or the top) that has any add_header does not inherit the outer level's. */
#define TETHER__CF_MAX_ADD_HEADERS 16
typedef struct tether__cf_add_header {
  char name[64];
  tether__key_part value[TETHER__KEY_MAX_PARTS];
  int nvalue;
  int always; /* on every response, the balancer's own answers too; else on 200, 201, 204, 206, 301-304, 307, 308 */
} tether__cf_add_header;

typedef struct tether__cf_add_headers {
  tether__cf_add_header *add; /* nadd of them, at most TETHER__CF_MAX_ADD_HEADERS */
  int nadd;
  int defined; /* some add_header at this level */
} tether__cf_add_headers;

/* The statuses a redirect's URL goes with (in a Location header). */
#define TETHER__REDIRECT(s) ((s) == 301 || (s) == 302 || (s) == 303 || (s) == 307 || (s) == 308)

/* return CODE [TEXT]; return CODE URL (301, 302, 303, 307, 308: a Location header); return URL (302). */
typedef struct tether__cf_return {
  int status;                                    /* 0: none */
  tether__key_part value[TETHER__KEY_MAX_PARTS]; /* the body's text, or a redirect's URL, with variables */
  int nvalue;                                    /* 0: no text (the reason phrase), or no Location */
  int line;
} tether__cf_return;

typedef struct tether__cf_persist {
  tether__persist_kind kind;
  /* sticky cookie */
  char cookie[64];   /* cookie name (srv_id); app cookie name for app_cookie */
  int64_t expires_s; /* -1: a browser-session cookie */
  char domain[128];
  char path[128]; /* default "/" */
  int httponly, secure;
  int samesite; /* 0 unset, 1 strict, 2 lax, 3 none */
  int indirect, nocache, preserve, strict;
  int64_t maxidle_s, maxlife_s; /* 0: off */
  /* hash policies */
  tether__hash_method method;
  tether__key_part key[TETHER__KEY_MAX_PARTS];
  int nkey;
  int line;
} tether__cf_persist;

typedef struct tether__cf_health {
  int enabled;
  char uri[256];
  int64_t interval_ms;
  int fails;                  /* consecutive failures to mark down */
  int passes;                 /* consecutive successes to mark up */
  int status_min, status_max; /* accepted statuses, default 200-399 */
  int64_t timeout_ms;
} tether__cf_health;

/* TLS to the servers (nginx's proxy_ssl_* directives): given at the outer levels or in a location, merged per
 * location, and then held by the upstream the location proxies to with https:// (one pool of connections per
 * server: an upstream speaks one scheme with one set of settings). */
#define TETHER__PSSL_VERIFY (1 << 0) /* which directives a level gave, for inheritance */
#define TETHER__PSSL_DEPTH (1 << 1)
#define TETHER__PSSL_TRUSTED (1 << 2)
#define TETHER__PSSL_NAME (1 << 3)
#define TETHER__PSSL_SNI (1 << 4)
#define TETHER__PSSL_CERT (1 << 5)
#define TETHER__PSSL_KEY (1 << 6)
#define TETHER__PSSL_PROTOCOLS (1 << 7)
#define TETHER__PSSL_CIPHERS (1 << 8)
#define TETHER__PSSL_REUSE (1 << 9)
typedef struct tether__cf_proxy_ssl {
  int verify;                        /* proxy_ssl_verify, default off */
  int verify_depth;                  /* proxy_ssl_verify_depth, default 1 */
  char trusted[512];                 /* proxy_ssl_trusted_certificate: PEM CA certificates */
  char name[256];                    /* proxy_ssl_name: checked and sent as SNI; "" the upstream's name ($proxy_host) */
  int server_name;                   /* proxy_ssl_server_name: send SNI, default off */
  char cert[512], key[512];          /* proxy_ssl_certificate and _key: a client certificate (mutual TLS) */
  int protocols;                     /* TETHER__TLS_V12 | TETHER__TLS_V13 */
  char ciphers[1024];                /* proxy_ssl_ciphers, "" OpenSSL's DEFAULT (nginx's default) */
  int session_reuse;                 /* proxy_ssl_session_reuse, default on */
  int set;                           /* TETHER__PSSL_*: the directives given at this level */
  int line, trusted_line, cert_line; /* the first proxy_ssl_* directive; where the files are named */
} tether__cf_proxy_ssl;
/* session_monitor COOKIE [expected=PATH,...]: the session-loss monitor (persist/monitor.h). */
#define TETHER__CF_MAX_EXPECTED 16
typedef struct tether__cf_monitor {
  char cookie[64];                             /* the application's session cookie; "" : no monitor */
  char expected[TETHER__CF_MAX_EXPECTED][128]; /* paths: "/login" a prefix (as nginx's location), "=/x" exact */
  int nexpected;
  int line;
} tether__cf_monitor;

#define TETHER__KEEPALIVE_AUTO (-1) /* no `keepalive N`: the adaptive pool */

typedef struct tether__cf_upstream {
  char name[64];
  tether__cf_server *servers; /* nservers of them, at most TETHER__CF_MAX_SERVERS */
  size_t nservers;
  tether__balance_kind balance;
  /* Server connections kept for reuse, per worker (upstream/pool.c): `keepalive N` caps the idle ones at N as
   * nginx; 0 keeps none; TETHER__KEEPALIVE_AUTO (no `keepalive`): the pool follows recent demand, at most
   * pool_max_idle idle. */
  int keepalive;
  int pool_max_idle;
  int keepalive_requests;       /* requests one server connection carries, then it closes (1000) */
  int64_t keepalive_timeout_ms; /* an idle server connection closes after this (60s) */
  int64_t keepalive_time_ms;    /* a server connection older than this takes no new request (1h) */
  int reuse_lines[5];           /* where keepalive, keepalive_* and pool_max_idle were given (0: not) */
  tether__cf_health health;
  tether__cf_persist persist;
  int balance_factor;       /* hash_balance_factor: cap at N% of the mean load, 0: off */
  int64_t drain_timeout_ms; /* after this, a draining server's bound clients move too; 0: never */
  char sticky_secret[128];  /* keys the sticky cookie values; default: the sticky_key_file's key */
  int line;
  uint8_t sticky_key[32];     /* sticky cookie without sticky_secret: the key file's key, read when loaded */
  int sticky_key_set;         /* sticky_key holds it (a parsed but not loaded configuration has none) */
  int https;                  /* proxied to with proxy_pass https:// (the servers speak TLS, health checks too) */
  int https_line;             /* the proxy_pass that made it so (or the first that named it) */
  int https_location;         /* ... in this location */
  tether__cf_proxy_ssl ssl;   /* the proxy_ssl_* settings of its locations (https only) */
  void *tls_ctx;              /* https: the client SSL_CTX, built at load (tls/context.c) */
  tether__cf_monitor monitor; /* session_monitor */
} tether__cf_upstream;

#define TETHER__JWT_MAX_KEYS 8
#define TETHER__JWT_MAX_CLAIM_HEADERS 8

struct tether_jwt_verifier;

/* Edge authentication (auth_jwt): the seed's authenticate() middleware at the balancer. */
typedef struct tether__cf_jwt {
  int set;     /* some auth_jwt directive appeared at this level */
  int enabled; /* auth_jwt REALM (1) or auth_jwt off (0) */
  char realm[64];
  struct {
    char spec[256]; /* env:NAME, a file, or a secret */
    char alg[16];   /* "" : from the key */
  } keys[TETHER__JWT_MAX_KEYS];
  int nkeys;
  char issuer[256];
  char audience[4][128];
  int naudience;
  int64_t leeway_ms; /* -1: the library's default (30 s) */
  int require_exp;
  int weak_secret_ok; /* auth_jwt_key ... weak_secret_ok: HS* secrets under 32 bytes are accepted */
  char cookie[64];    /* auth_jwt_cookie: also take the token from this cookie */
  struct {
    char claim[64];
    char header[64];
  } claim_headers[TETHER__JWT_MAX_CLAIM_HEADERS];
  int nclaim_headers;
  int line;
  struct tether_jwt_verifier *verifier; /* built when the configuration is loaded */
} tether__cf_jwt;

typedef struct tether__cf_location {
  char prefix[256];
  int exact;                  /* "location = /x" */
  int upstream;               /* index into upstreams, or -1 (a return location) */
  tether__cf_jwt jwt;         /* enabled: requests must carry a valid token */
  tether__cf_headers headers; /* proxy_set_header (the outer level's when none is given here) */
  /* return: answered here, before auth_jwt and instead of proxy_pass (nginx's rewrite phase) */
  tether__cf_return ret;
  /* add_header (the server's when none is given here) */
  tether__cf_add_headers add_headers;
} tether__cf_location;

/* TLS on `listen ... ssl` addresses (nginx's ssl_* directives), Mozilla's "intermediate" profile by
 * default. The OpenSSL context is built when the configuration is loaded (tls/context.c), not parsed. */
#define TETHER__TLS_MAX_CERTS 4
#define TETHER__TLS_MAX_TICKET_KEYS 8
#define TETHER__TLS_V12 1
#define TETHER__TLS_V13 2
typedef struct tether__cf_tls { /* its lists belong to the configuration (config_mem.c), shared when inherited */
  char (*cert)[512]; /* ssl_certificate (ncert, at most TETHER__TLS_MAX_CERTS): PEM chains (RSA and ECDSA may pair) */
  char (*key)[512];  /* ssl_certificate_key (nkey), in the same order */
  int cert_line[TETHER__TLS_MAX_CERTS];
  int ncert, nkey;
  int protocols;            /* TETHER__TLS_V12 | TETHER__TLS_V13 */
  char ciphers[1024];       /* TLS 1.2 suites, "" for the profile's */
  char (*conf_cmd)[2][256]; /* ssl_conf_command NAME VALUE (nconf_cmd, at most 8) */
  int nconf_cmd;
  int prefer_server_ciphers;
  int64_t session_timeout_ms;
  int session_tickets;
  char (*ticket_key)[512]; /* ssl_session_ticket_key (at most TETHER__TLS_MAX_TICKET_KEYS): the first encrypts */
  int nticket_key;
  int line; /* the first ssl_* directive */
} tether__cf_tls;

/* A virtual server (server { }): nginx's name-based hosting. Its locations are a range of the one pool
 * cf->locations; what it does not set it inherits from the http level (tls, jwt, headers are merged when the
 * file is read, so they hold the effective values). A configuration without server blocks has one implicit
 * server holding the top-level listen, server_name and location directives. */
typedef struct tether__cf_vserver {
  char names[TETHER__CF_MAX_NAMES][128]; /* server_name, lower-cased: exact, *.x, .x, x.* or "" */
  int nnames;                            /* 0: the name "" (nginx's default) */
  uint32_t listens;                      /* bit i: the server is on listen[i] */
  size_t first_location, nlocations;     /* its locations: cf->locations[first_location...] */
  tether__cf_tls tls;                    /* ssl_*: its own, else the http level's */
  tether__cf_jwt jwt;                    /* auth_jwt: its own, else the http level's (the locations' default) */
  tether__cf_headers headers;            /* proxy_set_header: its own, else the http level's */
  tether__cf_add_headers add_headers;    /* add_header: its own, else the http level's */
  tether__cf_return ret;                 /* return in server { }: answered before any location */
  tether__cf_proxy_ssl proxy_ssl;        /* proxy_ssl_* given in server { }: its locations' defaults */
  void *tls_ctx;                         /* its SSL_CTX when it is on an ssl address, built at load */
  int http2;                             /* http2 on (-1: not given), or listen ... http2 on one of its addresses */
  int line;
} tether__cf_vserver;

typedef struct tether__cidr {
  struct sockaddr_storage net;
  int bits;
} tether__cidr;

typedef struct tether__config {
  char file[512];
  int workers;            /* worker_processes: threads */
  int workers_auto_cores; /* worker_processes auto (the default): the cores counted, 0 for a number */
  int io_uring;           /* io_uring on (the default): plain TCP over io_uring when the kernel allows */
  tether__addr listen[TETHER__CF_MAX_LISTEN]; /* distinct addresses: servers that name the same one share it */
  int listen_backlog[TETHER__CF_MAX_LISTEN];  /* listen ... backlog=N, for listen[i] */
  int listen_ssl[TETHER__CF_MAX_LISTEN];      /* listen ... ssl (on any listen of the address) */
  int listen_default[TETHER__CF_MAX_LISTEN];  /* the address's default server: default_server, else the first */
  int listen_http2[TETHER__CF_MAX_LISTEN];    /* listen ... http2 (on any listen of the address) */
  int listen_line[TETHER__CF_MAX_LISTEN];     /* where listen[i] is first named */
  size_t nlisten;
  tether__cf_vserver *vservers; /* nvservers of them, at most TETHER__CF_MAX_VSERVERS */
  size_t nvservers;
  tether__addr admin;             /* admin_listen; admin.len == 0 when absent */
  tether__cf_upstream *upstreams; /* nupstreams of them, at most TETHER__CF_MAX_UPSTREAMS */
  size_t nupstreams;
  tether__cf_location *locations; /* nlocations of them, at most TETHER__CF_MAX_LOCATIONS */
  size_t nlocations;
  /* limits and timeouts */
  size_t client_header_buffer;      /* 431 past it */
  size_t large_uri;                 /* 414 past it */
  uint64_t client_max_body_size;    /* 413 past it, 0: unlimited */
  int64_t client_header_timeout_ms; /* 408 */
  int64_t client_body_timeout_ms;
  int64_t keepalive_timeout_ms; /* idle client connections (HTTP/2 too, as nginx 1.19.7+) */
  int keepalive_requests;       /* requests per client connection (HTTP/2: streams, then GOAWAY) */
  int64_t send_timeout_ms;      /* HTTP/2: an answer that cannot move (a zero window) this long ends the connection */
  int http2;                    /* http2 on at the http level (-1: not given) */
  int h2_max_streams;           /* http2_max_concurrent_streams */
  int64_t h2_recv_timeout_ms;   /* http2_recv_timeout: the rest of a frame, or the preface */
  uint64_t h2_preread;          /* http2_body_preread_size: each stream's initial receive window */
  uint64_t h2_max_field;        /* http2_max_field_size: one decoded header field */
  uint64_t h2_max_header;       /* http2_max_header_size: the decoded header list */
  int64_t proxy_connect_timeout_ms;
  int64_t proxy_read_timeout_ms;
  int64_t proxy_send_timeout_ms;
  int proxy_next_upstream_tries; /* 0: as many as servers */
  int64_t shutdown_grace_ms;     /* SIGTERM: in-flight requests get this long */
  int add_forwarded;             /* also add RFC 7239 Forwarded */
  tether__cidr *real_ip_from;    /* nreal_ip_from of them, at most TETHER__CF_MAX_REALIP */
  size_t nreal_ip_from;
  int real_ip_proxy_protocol; /* real_ip_header proxy_protocol */
  char access_log[512];       /* "" off */
  int access_log_json;
  char error_log[512];        /* "" stderr */
  int error_log_level;        /* error_log's level as a tether_log_level; -1: not given (info) */
  tether__cf_jwt jwt;         /* auth_jwt at the top or http level: every server's default */
  tether__cf_headers headers; /* proxy_set_header at the top or http level: every server's default */
  /* every header any auth_jwt_claim_header names: removed from every request, in every location */
  char (*claim_headers)[64]; /* nclaim_headers of them, at most TETHER__CF_MAX_STRIP */
  int nclaim_headers;
  int64_t client_body_time_ms; /* a whole request body must arrive within this (0: no bound) */
  char sticky_key_file[512];   /* sticky_key_file as written, "" the default (TETHER__STICKY_KEY_FILE) */
  int sticky_key_file_line;
  int admin_line;        /* where admin_listen is, for errors found once the file is read */
  char admin_token[256]; /* admin_auth_token: the secret itself (read from the environment) */
  int admin_token_line;
  int rlimit_nofile;  /* worker_rlimit_nofile; 0: raise the soft limit to the hard one */
  tether__cf_tls tls; /* ssl_* at the top or http level: every server's default */
  char user[64];      /* user USER [GROUP]: who the process becomes once its ports are bound; "" stays */
  char group[64];     /* "" : the user's primary group */
  char pid_file[512]; /* pid FILE; "" : none */
  /* include */
  char (*included)[256]; /* the files include read, in order (see tether__cf_file), at most TETHER__CF_MAX_FILES - 1 */
  int nincluded;
  struct tether__cf_block *owned; /* the lists above (config_mem.c), freed by tether__config_release */
} tether__config;

/* Where the sticky cookie key is kept when no sticky_key_file says otherwise. */
#define TETHER__STICKY_KEY_FILE "/var/lib/tether/sticky.key"

/* Every `line` in a configuration is a place: the line number in the low TETHER__CF_LINE_BITS bits, and which
 * file above them (0: cf->file, k: cf->included[k - 1]). These give the file and the line number back. */
#define TETHER__CF_LINE_BITS 20
const char *tether__cf_file(const tether__config *cf, int line);
int tether__cf_lineno(int line);

/* Reads and checks a configuration. On failure returns -1 and writes "file:line: reason" lines (one per
 * error found) into err. */
int tether__config_load(const char *path, tether__config *cf, char *err, size_t errlen);
int tether__config_parse(const char *path, const char *text, size_t len, tether__config *cf, char *err, size_t errlen);
/* Frees what a parsed or loaded configuration owns (its lists, JWT verifiers, TLS contexts), and with _free the
 * configuration itself. A configuration parsed again must be released first. */
void tether__config_release(tether__config *cf);
void tether__config_free(tether__config *cf);

/* Parses "host:port", "*:port", "port", "[v6]:port". */
int tether__addr_parse(const char *text, tether__addr *a);
/* "16k" -> 16384; "1m"; plain bytes. -1 on error. */
int64_t tether__parse_size(const char *s);
/* "10s" -> 10000; "500ms", "1m", "1h", "1d"; plain = seconds. -1 on error. */
int64_t tether__parse_time_ms(const char *s);
int tether__cidr_parse(const char *s, tether__cidr *c);
int tether__cidr_match(const tether__cidr *c, const struct sockaddr *sa);

#endif
