/* Helpers for the balancer's integration tests: scripted backends (tether-test-backend), a tether process
 * started on a configuration written into a temporary directory, libcurl requests, raw-socket requests and
 * responses read with the balancer's own parser, and the admin API's metrics. */
#ifndef TETHER_TEST_BALANCER_H
#define TETHER_TEST_BALANCER_H

#include <stddef.h>
#include <sys/types.h>

#include "http1.h"
#include "procs.h"

typedef struct tb_backend {
  pid_t pid;
  int port;
  char name[32];
  char addr[32]; /* "127.0.0.1:PORT", as tether's configuration names it */
  char log[512];
  char dir[256]; /* its temporary directory (the log), kept across restarts */
  int idle_ms;   /* set before starting: it closes connections idle that long (0: never) */
} tb_backend;

/* Starts a backend called name on port (0: a free one). 0 or -1. */
int tb_backend_start(tb_backend *b, const char *name, int port);
/* SIGKILL or SIGTERM, reaped. */
void tb_backend_stop(tb_backend *b, int sig);
/* Stops it and removes its directory. */
void tb_backend_cleanup(tb_backend *b);

typedef struct tb_tether {
  pid_t pid;
  int port;
  int admin;
  char *dir;
  char conf[512];
  char log[512];
  int workers;
} tb_tether;

/* Picks ports and a directory. */
void tb_tether_init(tb_tether *t, int workers);
/* Writes the configuration: "worker_processes W; listen ...; admin_listen ...;" (lines 1-3) and then
 * the formatted rest. */
void tb_tether_write_conf(tb_tether *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Starts tether on the written configuration and waits for both ports. 0 or -1. */
int tb_tether_run(tb_tether *t);
/* init + write_conf + run. */
int tb_tether_start(tb_tether *t, int workers, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* SIGTERM, waits up to timeout_ms; returns the exit status (128+signal when killed, -1 on timeout, then
 * SIGKILL). Prints the log's tail when the exit is not 0 or a sanitizer report is in it. */
int tb_tether_stop(tb_tether *t, int timeout_ms);
/* Waits for tether to exit by itself (after a signal sent by the test); the exit status as above. */
int tb_tether_wait(tb_tether *t, int timeout_ms);
/* Runs TETHER_BIN with args (NULL-terminated) to completion, stdout and stderr into out_file; the exit
 * status, -1 when it did not end within 10 s. */
int tb_tether_cmd(const char *out_file, const char *const *args);
/* Whether the log holds a sanitizer report (AddressSanitizer, LeakSanitizer, UBSan "runtime error"). */
int tb_log_has_sanitizer_report(const char *log);
void tb_tether_cleanup(tb_tether *t);
/* Whether the file contains s. */
int tb_file_contains(const char *path, const char *s);
/* The same, waiting up to timeout_ms for s to be written (a log line that follows an event the test saw). */
int tb_file_waits_for(const char *path, const char *s, int timeout_ms);

/* ---- libcurl ---- */
typedef struct tb_resp {
  long status; /* 0: no response (transport error) */
  char *body;  /* NUL-terminated */
  size_t len;
  char *head; /* the response head(s) as received */
} tb_resp;

void tb_curl_init(void);
/* A libcurl write or header callback's buffer: what fits in 64 KiB, NUL-terminated (the rest is dropped). */
typedef struct tb_sink {
  char data[65536];
  size_t len;
} tb_sink;
size_t tb_sink_collect(char *p, size_t size, size_t n, void *arg);
/* A request on an optional reused easy handle (NULL: a fresh one); body may be NULL. extra_headers:
 * NULL-terminated list or NULL. Returns r->status. */
long tb_request(void *curl, const char *method, int port, const char *path, const char *body, size_t blen,
                const char *const *extra_headers, tb_resp *r);
long tb_get(void *curl, int port, const char *path, tb_resp *r);
/* A GET from a given local source address (127.x.y.z), on a fresh handle. */
long tb_get_from(const char *src, int port, const char *path, const char *const *extra_headers, tb_resp *r);
void tb_resp_free(tb_resp *r);
void *tb_curl_new(void);
void tb_curl_free(void *curl);
/* GET on the admin port, body returned (malloc'd) or NULL. */
char *tb_admin_get(tb_tether *t, const char *path);
/* POST/PUT on the admin port; returns the status, body into *out when not NULL. */
long tb_admin_send(tb_tether *t, const char *method, const char *path, const char *body, char **out);
/* The value of a metric line starting with name_labels (exact, followed by a space), or -1. */
double tb_metric(const char *metrics, const char *name_labels);
double tb_server_up(tb_tether *t, const char *upstream, const tb_backend *b);

/* ---- raw sockets ---- */
/* Connects to 127.0.0.1:port with receive and send timeouts of timeout_ms. -1 on failure. */
int tb_connect(int port, int timeout_ms);
/* The same from a given local address (every 127.x.y.z is local), e.g. "127.0.0.3". */
int tb_connect_from(const char *src, int port, int timeout_ms);
int tb_send(int fd, const char *data, size_t n);
int tb_send_str(int fd, const char *s);

typedef struct tb_raw {
  int status;
  char *head; /* the head as received (NUL-terminated) */
  char *body; /* the body bytes as received (chunked framing included) */
  size_t body_len;
  int framing;
} tb_raw;

/* A raw connection with a buffer, for reading responses one after another. */
typedef struct tb_conn {
  int fd;
  char *buf;
  size_t len, cap;
  int eof;
} tb_conn;

int tb_conn_open(tb_conn *c, int port, int timeout_ms);
int tb_conn_open_from(tb_conn *c, const char *src, int port, int timeout_ms);
void tb_conn_close(tb_conn *c);
/* Reads one response (req_is_head: no body follows); 1xx heads are returned as responses too.
 * 0, or -1 on timeout, EOF before a full response, or a malformed one. */
int tb_conn_read_response(tb_conn *c, int req_is_head, tb_raw *r);
/* Whether the server closes the connection within timeout_ms (reading and dropping anything else). */
int tb_conn_closed_within(tb_conn *c, int timeout_ms);
void tb_raw_free(tb_raw *r);
/* One request on a fresh connection: its response, and whether the connection was then closed within
 * 2 s. Returns 0 or -1. */
int tb_raw_exchange(int port, const char *request, size_t n, tb_raw *r, int *closed);

/* Decodes a chunked body (as tb_raw holds it) into out (malloc'd); trailers into *trailers when not NULL. */
size_t tb_dechunk(const char *p, size_t n, char **out, char **trailers);

/* Certificates made with `openssl` in a new temporary directory (its path into pki): a root (ca.pem), an
 * intermediate, ECDSA P-256 and RSA 2048 leaves for localhost and 127.0.0.1 with their chains (ec.pem/ec.key,
 * rsa.pem/rsa.key, rsa2.pem/rsa2.key), a passphrase-protected key (locked.key) and two session ticket key
 * files (ticket.key, other.key). 0, or non-zero when openssl failed. */
int tb_make_pki(char *pki, size_t cap);

/* Milliseconds on a monotonic clock. */
long long tb_now_ms(void);

#endif
