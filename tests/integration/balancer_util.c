/* Helpers for the balancer's integration tests (see balancer.h). */
#include "balancer.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef TETHER_BIN
#error "TETHER_BIN must be defined"
#endif
#ifndef BACKEND_BIN
#error "BACKEND_BIN must be defined"
#endif

long long tb_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tb_file_contains(const char *path, const char *s) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return 0;
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap + 1);
  size_t n;
  while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
    len += n;
    if (len == cap) {
      cap *= 2;
      buf = realloc(buf, cap + 1);
    }
  }
  fclose(f);
  buf[len] = '\0';
  int found = memmem(buf, len, s, strlen(s)) != NULL;
  free(buf);
  return found;
}

int tb_file_waits_for(const char *path, const char *s, int timeout_ms) {
  long long until = tb_now_ms() + timeout_ms;
  while (!tb_file_contains(path, s)) {
    if (tb_now_ms() >= until) return 0;
    tt_sleep_ms(20);
  }
  return 1;
}

/* ---- backends ---- */

int tb_backend_start(tb_backend *b, const char *name, int port) {
  if (b->dir[0] == '\0') {
    char *dir = tt_tmpdir("backend");
    snprintf(b->dir, sizeof(b->dir), "%s", dir);
    snprintf(b->log, sizeof(b->log), "%s/%s.log", dir, name);
    free(dir);
  }
  if (name != b->name) snprintf(b->name, sizeof(b->name), "%s", name); /* a restart passes its own name */
  b->port = port ? port : tt_free_port();
  snprintf(b->addr, sizeof(b->addr), "127.0.0.1:%d", b->port);
  char idle[16];
  snprintf(idle, sizeof(idle), "%d", b->idle_ms);
  char *argv[] = {BACKEND_BIN, "--listen", b->addr, "--name", b->name, "--idle-ms", idle, NULL};
  b->pid = tt_spawn(argv, b->log, NULL);
  if (b->pid < 0 || !tt_wait_port(b->port, 5000)) {
    fprintf(stderr, "backend %s did not start on %d\n", name, b->port);
    tt_system("tail -n 20 '%s' >&2", b->log);
    if (b->pid > 0) tt_kill(b->pid, SIGKILL);
    b->pid = 0;
    return -1;
  }
  return 0;
}

void tb_backend_stop(tb_backend *b, int sig) {
  if (b->pid > 0) tt_kill(b->pid, sig);
  b->pid = 0;
}

void tb_backend_cleanup(tb_backend *b) {
  tb_backend_stop(b, SIGKILL);
  if (b->dir[0] && getenv("TB_KEEP") == NULL) tt_rmrf(b->dir);
  b->dir[0] = '\0';
  b->log[0] = '\0';
}

/* ---- tether ---- */

void tb_tether_init(tb_tether *t, int workers) {
  memset(t, 0, sizeof(*t));
  t->dir = tt_tmpdir("balancer");
  t->port = tt_free_port();
  do t->admin = tt_free_port();
  while (t->admin == t->port);
  t->workers = workers;
  snprintf(t->conf, sizeof(t->conf), "%s/tether.conf", t->dir);
  snprintf(t->log, sizeof(t->log), "%s/tether.log", t->dir);
}

/* Written beside and renamed into place: a reload never reads half a file. */
static void write_conf_v(tb_tether *t, const char *fmt, va_list ap) {
  char tmp[600];
  snprintf(tmp, sizeof(tmp), "%s.new", t->conf);
  FILE *f = fopen(tmp, "w");
  if (f == NULL) {
    perror(tmp);
    abort();
  }
  char *text = NULL;
  if (vasprintf(&text, fmt, ap) < 0) abort();
  /* with server blocks, the test's port is the first one's (a listen outside them would be an error) */
  const char *server = strncmp(text, "server {\n", 9) == 0 ? text : strstr(text, "\nserver {\n");
  /* TB_IO_URING=off: the whole suite over the epoll transport (ctest's integration.*.epoll entries); on the
   * first line, so that the lines a test expects in an error keep their numbers */
  const char *uring = getenv("TB_IO_URING");
  fprintf(f, "worker_processes %d;", t->workers);
  if (uring && *uring && strstr(text, "io_uring ") == NULL) fprintf(f, " io_uring %s;", uring);
  fprintf(f, "\nadmin_listen 127.0.0.1:%d;\n", t->admin);
  if (server == NULL) {
    fprintf(f, "listen 127.0.0.1:%d;\n%s", t->port, text);
  } else {
    const char *open = strchr(server + (server != text), '\n') + 1;
    fprintf(f, "%.*s  listen 127.0.0.1:%d;\n%s", (int)(open - text), text, t->port, open);
  }
  free(text);
  fclose(f);
  if (rename(tmp, t->conf) < 0) {
    perror(t->conf);
    abort();
  }
}

void tb_tether_write_conf(tb_tether *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  write_conf_v(t, fmt, ap);
  va_end(ap);
}

/* The binary under test; TB_TETHER_BIN points the tests at another build (to show a fix's test failing on
 * the code before it). */
static char *tether_bin(void) {
  const char *b = getenv("TB_TETHER_BIN");
  return (char *)(b && *b ? b : TETHER_BIN);
}

int tb_tether_run(tb_tether *t) {
  char *argv[] = {tether_bin(), "-c", t->conf, NULL};
  t->pid = tt_spawn(argv, t->log, NULL);
  if (t->pid < 0 || !tt_wait_port(t->port, 10000) || !tt_wait_port(t->admin, 10000)) {
    fprintf(stderr, "tether did not start (ports %d, %d)\n", t->port, t->admin);
    tt_system("tail -n 30 '%s' >&2", t->log);
    if (t->pid > 0) tt_kill(t->pid, SIGKILL);
    t->pid = 0;
    return -1;
  }
  return 0;
}

int tb_tether_start(tb_tether *t, int workers, const char *fmt, ...) {
  tb_tether_init(t, workers);
  va_list ap;
  va_start(ap, fmt);
  write_conf_v(t, fmt, ap);
  va_end(ap);
  return tb_tether_run(t);
}

int tb_log_has_sanitizer_report(const char *log) {
  return tb_file_contains(log, "AddressSanitizer") || tb_file_contains(log, "LeakSanitizer") ||
         tb_file_contains(log, "runtime error:") || tb_file_contains(log, "ThreadSanitizer");
}

int tb_tether_wait(tb_tether *t, int timeout_ms) {
  if (t->pid <= 0) return -1;
  int status = -1, st;
  long long end = tb_now_ms() + timeout_ms;
  for (;;) {
    pid_t r = waitpid(t->pid, &st, WNOHANG);
    if (r == t->pid) {
      status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      break;
    }
    if (tb_now_ms() > end) {
      fprintf(stderr, "tether did not exit within %d ms\n", timeout_ms);
      kill(t->pid, SIGKILL);
      waitpid(t->pid, NULL, 0);
      break;
    }
    tt_sleep_ms(10);
  }
  t->pid = 0;
  if (status != 0 || tb_log_has_sanitizer_report(t->log)) {
    fprintf(stderr, "tether exit status %d; log tail:\n", status);
    tt_system("tail -n 60 '%s' >&2", t->log);
  }
  return status;
}

int tb_tether_stop(tb_tether *t, int timeout_ms) {
  if (t->pid <= 0) return -1;
  kill(t->pid, SIGTERM);
  return tb_tether_wait(t, timeout_ms);
}

int tb_tether_cmd(const char *out_file, const char *const *args) {
  char *argv[16];
  int n = 0;
  argv[n++] = tether_bin();
  for (int i = 0; args[i] && n < 15; i++) argv[n++] = (char *)args[i];
  argv[n] = NULL;
  unlink(out_file);
  pid_t pid = tt_spawn(argv, out_file, NULL);
  if (pid < 0) return -1;
  int st;
  for (int i = 0; i < 1000; i++) {
    if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    tt_sleep_ms(10);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return -1;
}

void tb_tether_cleanup(tb_tether *t) {
  if (t->pid > 0) tt_kill(t->pid, SIGKILL);
  t->pid = 0;
  if (t->dir) {
    if (getenv("TB_KEEP") == NULL) tt_rmrf(t->dir);
    free(t->dir);
    t->dir = NULL;
  }
}

/* ---- libcurl ---- */

void tb_curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

size_t tb_sink_collect(char *p, size_t size, size_t n, void *arg) {
  tb_sink *b = arg;
  size_t k = size * n;
  if (b->len + k < sizeof(b->data)) {
    memcpy(b->data + b->len, p, k);
    b->len += k;
    b->data[b->len] = '\0';
  }
  return k;
}

typedef struct sink {
  char *p;
  size_t n;
} sink;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *arg) {
  sink *s = arg;
  size_t n = size * nmemb;
  s->p = realloc(s->p, s->n + n + 1);
  memcpy(s->p + s->n, ptr, n);
  s->n += n;
  s->p[s->n] = '\0';
  return n;
}

void *tb_curl_new(void) { return curl_easy_init(); }
void tb_curl_free(void *curl) {
  if (curl) curl_easy_cleanup(curl);
}

static long request_from(void *curl, const char *src, const char *method, int port, const char *path, const char *body,
                         size_t blen, const char *const *extra_headers, tb_resp *r);

long tb_request(void *curl, const char *method, int port, const char *path, const char *body, size_t blen,
                const char *const *extra_headers, tb_resp *r) {
  return request_from(curl, NULL, method, port, path, body, blen, extra_headers, r);
}

long tb_get_from(const char *src, int port, const char *path, const char *const *extra_headers, tb_resp *r) {
  return request_from(NULL, src, "GET", port, path, NULL, 0, extra_headers, r);
}

static long request_from(void *curl, const char *src, const char *method, int port, const char *path, const char *body,
                         size_t blen, const char *const *extra_headers, tb_resp *r) {
  memset(r, 0, sizeof(*r));
  CURL *h = curl ? curl : curl_easy_init();
  curl_easy_reset(h);
  if (src) curl_easy_setopt(h, CURLOPT_INTERFACE, src);
  char url[2048];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
  sink b = {0}, hd = {0};
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &hd);
  curl_easy_setopt(h, CURLOPT_PROXY, "");
  if (strcmp(method, "HEAD") == 0)
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  else if (strcmp(method, "GET") != 0 || body)
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  if (body) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)blen);
  }
  struct curl_slist *hl = NULL;
  for (size_t i = 0; extra_headers && extra_headers[i]; i++) hl = curl_slist_append(hl, extra_headers[i]);
  if (hl) curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
  CURLcode rc = curl_easy_perform(h);
  if (rc == CURLE_OK)
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
  else
    r->status = 0;
  curl_slist_free_all(hl);
  if (curl == NULL) curl_easy_cleanup(h);
  r->body = b.p ? b.p : calloc(1, 1);
  r->len = b.n;
  r->head = hd.p ? hd.p : calloc(1, 1);
  return r->status;
}

long tb_get(void *curl, int port, const char *path, tb_resp *r) {
  return tb_request(curl, "GET", port, path, NULL, 0, NULL, r);
}

void tb_resp_free(tb_resp *r) {
  free(r->body);
  free(r->head);
  memset(r, 0, sizeof(*r));
}

char *tb_admin_get(tb_tether *t, const char *path) {
  tb_resp r;
  if (tb_get(NULL, t->admin, path, &r) != 200) {
    tb_resp_free(&r);
    return NULL;
  }
  free(r.head);
  return r.body;
}

long tb_admin_send(tb_tether *t, const char *method, const char *path, const char *body, char **out) {
  tb_resp r;
  if (body == NULL && strcmp(method, "GET") != 0) body = "";
  /* not libcurl's default for a body (application/x-www-form-urlencoded): the admin API refuses form types */
  static const char *const json[] = {"Content-Type: application/json", NULL};
  long st = tb_request(NULL, method, t->admin, path, body, body ? strlen(body) : 0, json, &r);
  if (out) {
    *out = r.body;
    r.body = NULL;
  }
  tb_resp_free(&r);
  return st;
}

double tb_metric(const char *metrics, const char *name_labels) {
  if (metrics == NULL) return -1;
  size_t n = strlen(name_labels);
  const char *p = metrics;
  while (p && *p) {
    if (strncmp(p, name_labels, n) == 0 && p[n] == ' ') return atof(p + n + 1);
    p = strchr(p, '\n');
    if (p) p++;
  }
  return -1;
}

double tb_server_up(tb_tether *t, const char *upstream, const tb_backend *b) {
  char *m = tb_admin_get(t, "/metrics");
  char key[256];
  snprintf(key, sizeof(key), "tether_server_up{upstream=\"%s\",server=\"%s\"}", upstream, b->addr);
  double v = tb_metric(m, key);
  free(m);
  return v;
}

/* ---- raw sockets ---- */

int tb_connect(int port, int timeout_ms) { return tb_connect_from(NULL, port, timeout_ms); }

int tb_connect_from(const char *src, int port, int timeout_ms) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (src) {
    struct sockaddr_in l = {.sin_family = AF_INET, .sin_port = 0};
    if (inet_pton(AF_INET, src, &l.sin_addr) != 1 || bind(fd, (struct sockaddr *)&l, sizeof(l)) < 0) {
      close(fd);
      return -1;
    }
  }
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int tb_send(int fd, const char *data, size_t n) {
  while (n > 0) {
    ssize_t k = send(fd, data, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    data += k;
    n -= (size_t)k;
  }
  return 0;
}

int tb_send_str(int fd, const char *s) { return tb_send(fd, s, strlen(s)); }

int tb_conn_open(tb_conn *c, int port, int timeout_ms) { return tb_conn_open_from(c, NULL, port, timeout_ms); }

int tb_conn_open_from(tb_conn *c, const char *src, int port, int timeout_ms) {
  memset(c, 0, sizeof(*c));
  c->fd = tb_connect_from(src, port, timeout_ms);
  return c->fd < 0 ? -1 : 0;
}

void tb_conn_close(tb_conn *c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  free(c->buf);
  c->buf = NULL;
  c->len = c->cap = 0;
}

/* Reads more; 1 with bytes, 0 at EOF, -1 on timeout or error. */
static int conn_fill(tb_conn *c) {
  if (c->cap - c->len < 16384) {
    c->cap = c->cap ? c->cap * 2 : 65536;
    c->buf = realloc(c->buf, c->cap + 1);
  }
  for (;;) {
    ssize_t k = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k == 0) c->eof = 1;
    if (k > 0) c->len += (size_t)k;
    return k > 0 ? 1 : k == 0 ? 0 : -1;
  }
}

static void conn_consume(tb_conn *c, size_t n) {
  memmove(c->buf, c->buf + n, c->len - n);
  c->len -= n;
}

int tb_conn_read_response(tb_conn *c, int req_is_head, tb_raw *r) {
  memset(r, 0, sizeof(*r));
  tether__h1_limits lim = {.max_head = 1 << 20, .max_uri = 1 << 20, .max_headers = 100};
  tether__h1_msg *m = malloc(sizeof(*m));
  int rc;
  for (;;) {
    rc = c->len ? tether__h1_parse_response(c->buf, c->len, &lim, req_is_head, m) : 0;
    if (rc != 0) break;
    if (conn_fill(c) <= 0) {
      free(m);
      return -1;
    }
  }
  if (rc < 0) {
    free(m);
    return -1;
  }
  r->status = m->status;
  r->framing = m->framing;
  r->head = malloc((size_t)rc + 1);
  memcpy(r->head, c->buf, (size_t)rc);
  r->head[rc] = '\0';
  tether__h1_body b;
  tether__h1_body_init(&b, m);
  free(m);
  conn_consume(c, (size_t)rc);
  if (r->status < 200 && r->status != 101) b.done = 1;
  size_t cap = 4096;
  r->body = malloc(cap + 1);
  r->body_len = 0;
  while (!b.done) {
    if (c->len == 0) {
      int k = conn_fill(c);
      if (k < 0) return -1;
      if (k == 0) {
        if (b.framing == TETHER__H1_UNTIL_CLOSE) break;
        return -1;
      }
    }
    int64_t k = tether__h1_body_feed(&b, c->buf, c->len);
    if (k < 0) return -1;
    while (r->body_len + (size_t)k > cap) {
      cap *= 2;
      r->body = realloc(r->body, cap + 1);
    }
    memcpy(r->body + r->body_len, c->buf, (size_t)k);
    r->body_len += (size_t)k;
    conn_consume(c, (size_t)k);
  }
  r->body[r->body_len] = '\0';
  return 0;
}

int tb_conn_closed_within(tb_conn *c, int timeout_ms) {
  long long end = tb_now_ms() + timeout_ms;
  while (!c->eof) {
    long long left = end - tb_now_ms();
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (left <= 0 || poll(&p, 1, (int)left) <= 0) break;
    c->len = 0;
    int k = conn_fill(c);
    if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return 1; /* reset counts as closed */
  }
  return c->eof;
}

void tb_raw_free(tb_raw *r) {
  free(r->head);
  free(r->body);
  memset(r, 0, sizeof(*r));
}

int tb_raw_exchange(int port, const char *request, size_t n, tb_raw *r, int *closed) {
  tb_conn c;
  memset(r, 0, sizeof(*r));
  if (tb_conn_open(&c, port, 3000) < 0) return -1;
  int rc = tb_send(c.fd, request, n);
  if (rc == 0) rc = tb_conn_read_response(&c, strncmp(request, "HEAD ", 5) == 0, r);
  if (rc == 0 && closed) *closed = tb_conn_closed_within(&c, 2000);
  tb_conn_close(&c);
  return rc;
}

size_t tb_dechunk(const char *p, size_t n, char **out, char **trailers) {
  *out = malloc(n + 1);
  size_t i = 0, o = 0;
  while (i < n) {
    size_t size = (size_t)strtoul(p + i, NULL, 16);
    const char *nl = memchr(p + i, '\n', n - i);
    if (nl == NULL) break;
    i = (size_t)(nl - p) + 1;
    if (size == 0) break;
    memcpy(*out + o, p + i, size);
    o += size;
    i += size + 2;
  }
  (*out)[o] = '\0';
  if (trailers) {
    *trailers = malloc(n - (i < n ? i : n) + 1);
    size_t t = i < n ? n - i : 0;
    memcpy(*trailers, p + (i < n ? i : n), t);
    (*trailers)[t] = '\0';
  }
  return o;
}

int tb_make_pki(char *pki, size_t cap) {
  char *dir = tt_tmpdir("tls-pki");
  snprintf(pki, cap, "%s", dir);
  free(dir);
  const char *ext = "subjectAltName=DNS:localhost,IP:127.0.0.1";
  return tt_system(
      "cd '%s' && set -e; exec >/dev/null 2>&1\n"
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 "
      "  -subj /CN=tether-test-root\n"
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout int.key -out int.csr "
      "  -subj /CN=tether-test-intermediate\n"
      "printf 'basicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign,cRLSign\\n' > int.ext\n"
      "openssl x509 -req -in int.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out int.pem -days 2 -extfile int.ext\n"
      "for kind in ec rsa rsa2; do\n"
      "  if [ $kind = ec ]; then opt='-newkey ec -pkeyopt ec_paramgen_curve:P-256'; else opt='-newkey rsa:2048'; fi\n"
      "  openssl req $opt -nodes -keyout $kind.key -out $kind.csr -subj /CN=tether-test-$kind\n"
      "  printf '%s\\n' > $kind.ext\n"
      "  openssl x509 -req -in $kind.csr -CA int.pem -CAkey int.key -CAcreateserial -out $kind.crt -days 2 "
      "    -extfile $kind.ext\n"
      "  cat $kind.crt int.pem > $kind.pem\n"
      "done\n"
      "openssl pkey -in rsa.key -aes256 -passout pass:secret -out locked.key\n"
      "openssl rand 80 > ticket.key; openssl rand 80 > other.key\n",
      pki, ext);
}
