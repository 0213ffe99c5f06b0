/* tether-test-backend: a scripted HTTP/1.1 server for the balancer's integration tests.
 *
 *   tether-test-backend --listen 127.0.0.1:PORT --name NAME [--idle-ms MS]
 *
 * One thread per connection, keep-alive, requests parsed by the balancer's own parser (http1.c). Prints
 * "ready NAME PORT PID" on stdout once it listens. Routes (query parameters in brackets):
 *   /               "NAME\n"
 *   /conn           "NAME CONNID\n" (CONNID counts accepted connections: keep-alive reuse shows)
 *   /oneshot        the same, and the connection closes, unanswered, when the next request comes (a server
 *                   closing an idle connection as a request arrives)
 *   /headers[/...]  the request line and the request headers as received, one per line
 *   /echo           the request body (Content-Length or chunked, decoded); X-Request-Framing says which
 *   /chunked [n]    a chunked response of n lines with a trailer (until close for HTTP/1.0)
 *   /delay [ms,name] "NAME\n" after ms milliseconds (at once when name is given and is not NAME)
 *   /status [code]  that status (no body for 1xx/204/304)
 *   /health         "ok\n"
 *   /close          "NAME\n" with Connection: close, then closes
 *   /big [n]        n bytes
 *   /ws             Upgrade: 101, then every byte echoed back
 *   /bad [kind]     a malformed response (cl2, te_cl, space, fold, status, junk, chunk, bare_cr; extra:
 *                   a response followed by bytes past its body, the connection kept; stray: a second,
 *                   unrequested response [ms] (30) ms after the first; noreason, noreason_nosp: a status line
 *                   without a reason phrase; hop: hop-by-hop headers, some named by Connection; cut: a head and part of
 *                   the body, then a reset)
 *   /drop [name,ms] when name is empty or NAME: a reset without an answer (body unread) after ms
 *                   milliseconds; else "NAME\n"
 *   /stats          "connections=N requests=M open=K complete=J\n" (accepted, served, open now: this one
 *                   included; J: requests whose body, if any, came whole)
 *   /trickle [n]    a chunked response of n lines with a trailer, written one byte at a time
 *   /early          "early\n" at once, before (and without) reading the request body
 *   /stall [ms]     reads nothing for ms milliseconds (1000), then "stalled\n" and a close
 * Expect: 100-continue is answered with 100 Continue before the body is read. --idle-ms: a connection that
 * waits that long for a request is closed, as nginx's keepalive_timeout does. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "http1.h"

static char name[64] = "backend";
static atomic_long nconns, nrequests, nopen, ncomplete;
static long idle_ms; /* 0: connections wait for their next request forever */

typedef struct conn {
  int fd;
  long id;
  int oneshot; /* /oneshot answered: the next request finds the connection closing */
  char *buf;
  size_t len, cap;
} conn;

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

static int write_str(int fd, const char *s) { return write_all(fd, s, strlen(s)); }

/* Reads more bytes into c->buf; 0 at EOF, -1 on error. */
static ssize_t fill(conn *c) {
  if (c->cap - c->len < 16384) {
    c->cap = c->cap ? c->cap * 2 : 65536;
    c->buf = realloc(c->buf, c->cap);
    if (c->buf == NULL) abort();
  }
  for (;;) {
    ssize_t k = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k > 0) c->len += (size_t)k;
    return k;
  }
}

static void consume(conn *c, size_t n) {
  memmove(c->buf, c->buf + n, c->len - n);
  c->len -= n;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

/* The value of query parameter key in target, or NULL (copied into out). */
static const char *query(const char *target, const char *key, char *out, size_t cap) {
  const char *q = strchr(target, '?');
  size_t kl = strlen(key);
  while (q) {
    q++;
    if (strncmp(q, key, kl) == 0 && q[kl] == '=') {
      const char *v = q + kl + 1;
      size_t n = strcspn(v, "&");
      if (n >= cap) n = cap - 1;
      memcpy(out, v, n);
      out[n] = '\0';
      return out;
    }
    q = strchr(q, '&');
  }
  return NULL;
}

static long query_long(const char *target, const char *key, long dflt) {
  char v[32];
  return query(target, key, v, sizeof(v)) ? atol(v) : dflt;
}

static const char *reason_of(int status) {
  switch (status) {
  case 200:
    return "OK";
  case 201:
    return "Created";
  case 204:
    return "No Content";
  case 301:
    return "Moved Permanently";
  case 304:
    return "Not Modified";
  case 400:
    return "Bad Request";
  case 404:
    return "Not Found";
  case 500:
    return "Internal Server Error";
  case 502:
    return "Bad Gateway";
  case 503:
    return "Service Unavailable";
  default:
    return "Whatever";
  }
}

/* A response with Content-Length (or none for 1xx/204/304); head_only for HEAD. */
static int respond(conn *c, int status, const char *extra, const char *body, size_t blen, int head_only, int keep,
                   int minor) {
  char head[1024];
  int bodyless = status < 200 || status == 204 || status == 304;
  int n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nServer: tether-test-backend\r\nX-Backend: %s\r\n", status,
                   reason_of(status), name);
  if (!bodyless) n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Length: %zu\r\n", blen);
  if (!keep)
    n += snprintf(head + n, sizeof(head) - (size_t)n, "Connection: close\r\n");
  else if (minor == 0)
    n += snprintf(head + n, sizeof(head) - (size_t)n, "Connection: keep-alive\r\n");
  n += snprintf(head + n, sizeof(head) - (size_t)n, "%s\r\n", extra ? extra : "");
  if (write_all(c->fd, head, (size_t)n) < 0) return -1;
  if (!bodyless && !head_only && blen && write_all(c->fd, body, blen) < 0) return -1;
  return 0;
}

/* Decodes a complete, valid chunked body (framing checked by tether__h1_body_feed) into out. */
static size_t dechunk(const char *p, size_t n, char *out) {
  size_t i = 0, o = 0;
  while (i < n) {
    size_t size = (size_t)strtoul(p + i, NULL, 16);
    const char *nl = memchr(p + i, '\n', n - i);
    if (nl == NULL) break;
    i = (size_t)(nl - p) + 1;
    if (size == 0) break;
    memcpy(out + o, p + i, size);
    o += size;
    i += size + 2;
  }
  return o;
}

/* Reads the request body (already begun in c->buf) whole; returns it decoded (malloc'd) or NULL on error. */
static char *read_body(conn *c, const tether__h1_msg *m, size_t *blen) {
  tether__h1_body b;
  tether__h1_body_init(&b, m);
  size_t used = 0;
  while (!b.done) {
    if (used == c->len) {
      if (fill(c) <= 0) return NULL;
    }
    int64_t k = tether__h1_body_feed(&b, c->buf + used, c->len - used);
    if (k < 0) return NULL;
    used += (size_t)k;
  }
  char *out = malloc(used + 1);
  if (out == NULL) abort();
  *blen = m->framing == TETHER__H1_CHUNKED ? dechunk(c->buf, used, out) : used;
  if (m->framing != TETHER__H1_CHUNKED) memcpy(out, c->buf, used);
  out[*blen] = '\0';
  consume(c, used);
  return out;
}

static void reset_close(conn *c) {
  struct linger lg = {1, 0};
  setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

/* After 101: echo raw bytes until the peer closes. */
static void websocket(conn *c) {
  if (c->len && write_all(c->fd, c->buf, c->len) < 0) return;
  c->len = 0;
  char b[16384];
  for (;;) {
    ssize_t k = recv(c->fd, b, sizeof(b), 0);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0 || write_all(c->fd, b, (size_t)k) < 0) return;
  }
}

static int bad_response(conn *c, const char *kind, long ms) {
  const char *r;
  if (strcmp(kind, "cl2") == 0)
    r = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!";
  else if (strcmp(kind, "te_cl") == 0)
    r = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
  else if (strcmp(kind, "space") == 0)
    r = "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello";
  else if (strcmp(kind, "fold") == 0)
    r = "HTTP/1.1 200 OK\r\nX-A: b\r\n  c\r\nContent-Length: 5\r\n\r\nhello";
  else if (strcmp(kind, "status") == 0)
    r = "HTTP/1.1 20 OK\r\nContent-Length: 5\r\n\r\nhello";
  else if (strcmp(kind, "bare_cr") == 0)
    r = "HTTP/1.1 200 OK\r\nX-A: b\rc\r\nContent-Length: 5\r\n\r\nhello";
  else if (strcmp(kind, "chunk") == 0)
    r = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n";
  else if (strcmp(kind, "extra") == 0) { /* bytes past the body, on a connection kept open */
    write_str(c->fd,
              "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled");
    return 0;
  } else if (strcmp(kind, "stray") == 0) { /* a second, unrequested response a moment later */
    write_str(c->fd, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n");
    sleep_ms(ms);
    write_str(c->fd, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nsmuggled\n");
    return 0;
  } else if (strcmp(kind, "cut") == 0) { /* a head and half the body, then a reset */
    write_str(c->fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf of it");
    sleep_ms(50);
    reset_close(c);
    return -1;
  } else if (strcmp(kind, "noreason") == 0) { /* RFC 9112 allows an empty reason phrase */
    write_str(c->fd, "HTTP/1.1 200 \r\nContent-Length: 3\r\n\r\nok\n");
    return 0;
  } else if (strcmp(kind, "noreason_nosp") == 0) { /* ... and some servers drop the space too */
    write_str(c->fd, "HTTP/1.1 200\r\nContent-Length: 3\r\n\r\nok\n");
    return 0;
  } else if (strcmp(kind, "hop") == 0) { /* hop-by-hop headers, some named by Connection */
    write_str(c->fd, "HTTP/1.1 200 OK\r\nConnection: X-Secret-Hop, keep-alive\r\nX-Secret-Hop: 1\r\n"
                     "Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\n"
                     "X-Kept: yes\r\nContent-Length: 3\r\n\r\nok\n");
    return 0;
  } else
    r = "garbage that is not http\r\n\r\n";
  write_str(c->fd, r);
  return -1; /* close after it */
}

/* Serves one request whose head is at the start of c->buf. Returns 0 to keep the connection, -1 to close. */
static int serve(conn *c, const char *headbuf, tether__h1_msg *m, size_t head_len) {
  atomic_fetch_add(&nrequests, 1);
  char target[4096];
  snprintf(target, sizeof(target), "%.*s", (int)(m->target.n < sizeof(target) - 1 ? m->target.n : sizeof(target) - 1),
           m->target.p);
  char path[4096];
  snprintf(path, sizeof(path), "%s", target);
  path[strcspn(path, "?")] = '\0';
  int keep = m->keep_alive, minor = m->version_minor, head_only = m->is_head;
  consume(c, head_len);

  if (strcmp(path, "/drop") == 0) {
    char who[64];
    if (!query(target, "name", who, sizeof(who)) || strcmp(who, name) == 0) {
      sleep_ms(query_long(target, "ms", 0));
      reset_close(c);
      return -1;
    }
  }
  if (strcmp(path, "/early") == 0) { /* answers without reading the body: the connection cannot go on */
    respond(c, 200, NULL, "early\n", 6, head_only, 0, minor);
    /* a lingering close, as real servers do, so that the unread body does not turn into a reset */
    shutdown(c->fd, SHUT_WR);
    struct timeval tv = {2, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char sink[16384];
    while (recv(c->fd, sink, sizeof(sink), 0) > 0) {
    }
    return -1;
  }
  if (strcmp(path, "/stall") == 0) { /* neither reads the body nor answers for ms, then answers and closes */
    sleep_ms(query_long(target, "ms", 1000));
    respond(c, 200, NULL, "stalled\n", 8, head_only, 0, minor);
    return -1;
  }
  if (strcmp(path, "/continue-drop") == 0) { /* invites the body, then dies */
    write_str(c->fd, "HTTP/1.1 100 Continue\r\n\r\n");
    sleep_ms(100);
    reset_close(c);
    return -1;
  }
  if (m->expect_continue && m->framing != TETHER__H1_NO_BODY && c->len == 0 &&
      write_str(c->fd, "HTTP/1.1 100 Continue\r\n\r\n") < 0)
    return -1;
  size_t blen = 0;
  char *body = read_body(c, m, &blen);
  if (body == NULL) {
    respond(c, 400, NULL, "bad body\n", 9, 0, 0, minor);
    return -1;
  }
  atomic_fetch_add(&ncomplete, 1);
  int rc = 0;
  char out[512];
  if (strcmp(path, "/") == 0 || strcmp(path, "/health") == 0 || strcmp(path, "/delay") == 0 ||
      strcmp(path, "/drop") == 0 || strcmp(path, "/close") == 0) {
    char who[64];
    if (strcmp(path, "/delay") == 0 && (!query(target, "name", who, sizeof(who)) || strcmp(who, name) == 0))
      sleep_ms(query_long(target, "ms", 100));
    if (strcmp(path, "/close") == 0) keep = 0;
    int n = snprintf(out, sizeof(out), "%s\n", strcmp(path, "/health") == 0 ? "ok" : name);
    rc = respond(c, 200, NULL, out, (size_t)n, head_only, keep, minor);
  } else if (strcmp(path, "/conn") == 0 || strcmp(path, "/oneshot") == 0) {
    c->oneshot = path[1] == 'o';
    int n = snprintf(out, sizeof(out), "%s %ld\n", name, c->id);
    rc = respond(c, 200, NULL, out, (size_t)n, head_only, keep, minor);
  } else if (strcmp(path, "/stats") == 0) {
    int n = snprintf(out, sizeof(out), "connections=%ld requests=%ld open=%ld complete=%ld\n", atomic_load(&nconns),
                     atomic_load(&nrequests), atomic_load(&nopen), atomic_load(&ncomplete));
    rc = respond(c, 200, NULL, out, (size_t)n, head_only, keep, minor);
  } else if (strncmp(path, "/headers", 8) == 0) {
    size_t cap = head_len + 64, n = 0;
    char *txt = malloc(cap);
    if (txt == NULL) abort();
    n += (size_t)snprintf(txt, cap, "%.*s %.*s HTTP/1.%d\n", (int)m->method.n, m->method.p, (int)m->target.n,
                          m->target.p, m->version_minor);
    for (size_t i = 0; i < m->nheaders && n < cap; i++)
      n += (size_t)snprintf(txt + n, cap - n, "%.*s: %.*s\n", (int)m->headers[i].name.n, m->headers[i].name.p,
                            (int)m->headers[i].value.n, m->headers[i].value.p);
    if (n > cap) n = cap;
    rc = respond(c, 200, "Content-Type: text/plain\r\n", txt, n, head_only, keep, minor);
    free(txt);
  } else if (strcmp(path, "/echo") == 0) {
    const char *fr = m->framing == TETHER__H1_CHUNKED ? "chunked" : m->framing == TETHER__H1_LENGTH ? "length" : "none";
    snprintf(out, sizeof(out), "X-Request-Framing: %s\r\n", fr);
    rc = respond(c, 200, out, body, blen, head_only, keep, minor);
  } else if (strcmp(path, "/chunked") == 0) {
    long lines = query_long(target, "n", 3);
    if (minor == 0) { /* an HTTP/1.0 client cannot read chunked: the body runs until close */
      rc = write_str(c->fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
      for (long i = 0; i < lines && rc == 0; i++) {
        int n = snprintf(out, sizeof(out), "%s line %ld\n", name, i);
        rc = write_all(c->fd, out, (size_t)n);
      }
      rc = -1;
    } else {
      rc = write_str(c->fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Trailer\r\n\r\n");
      for (long i = 0; i < lines && rc == 0 && !head_only; i++) {
        char line[128];
        int ln = snprintf(line, sizeof(line), "%s line %ld\n", name, i);
        int n = snprintf(out, sizeof(out), "%x;ext=1\r\n%s\r\n", ln, line);
        rc = write_all(c->fd, out, (size_t)n);
      }
      if (rc == 0 && !head_only) rc = write_str(c->fd, "0\r\nX-Trailer: done\r\n\r\n");
    }
  } else if (strcmp(path, "/trickle") == 0) {
    long lines = query_long(target, "n", 3);
    char *txt = malloc(256 + (size_t)lines * 64);
    if (txt == NULL) abort();
    size_t n = (size_t)sprintf(txt, "HTTP/1.1 200 OK\r\nX-Backend: %s\r\nTransfer-Encoding: chunked\r\n\r\n", name);
    for (long i = 0; i < lines; i++) {
      char line[64];
      int ln = snprintf(line, sizeof(line), "%s line %ld\n", name, i);
      n += (size_t)sprintf(txt + n, "%x\r\n%s\r\n", ln, line);
    }
    n += (size_t)sprintf(txt + n, "0\r\nX-Trailer: done\r\n\r\n");
    for (size_t i = 0; i < n && rc == 0; i++) {
      rc = write_all(c->fd, txt + i, 1);
      if (i % 4 == 0) sleep_ms(1);
    }
    free(txt);
  } else if (strcmp(path, "/status") == 0) {
    int code = (int)query_long(target, "code", 200);
    int n = snprintf(out, sizeof(out), "status %d\n", code);
    rc = respond(c, code, NULL, out, (size_t)n, head_only, keep, minor);
  } else if (strcmp(path, "/big") == 0) {
    long n = query_long(target, "n", 1024);
    char *big = malloc((size_t)n + 1);
    if (big == NULL) abort();
    for (long i = 0; i < n; i++) big[i] = (char)('a' + i % 26);
    rc = respond(c, 200, NULL, big, (size_t)n, head_only, keep, minor);
    free(big);
  } else if (strcmp(path, "/ws") == 0) {
    tether__slice up = tether__h1_header_get(m, "upgrade");
    if (!m->upgrade || up.p == NULL) {
      rc = respond(c, 400, NULL, "no upgrade\n", 11, head_only, keep, minor);
    } else {
      snprintf(out, sizeof(out), "HTTP/1.1 101 Switching Protocols\r\nUpgrade: %.*s\r\nConnection: Upgrade\r\n\r\n",
               (int)up.n, up.p);
      if (write_str(c->fd, out) == 0) websocket(c);
      rc = -1;
    }
  } else if (strcmp(path, "/bad") == 0) {
    char kind[32];
    rc = bad_response(c, query(target, "kind", kind, sizeof(kind)) ? kind : "junk", query_long(target, "ms", 30));
  } else {
    rc = respond(c, 404, NULL, "not found\n", 10, head_only, keep, minor);
  }
  free(body);
  (void)headbuf;
  return rc < 0 || !keep ? -1 : 0;
}

static void *conn_main(void *arg) {
  conn *c = arg;
  tether__h1_msg *m = malloc(sizeof(*m));
  if (m == NULL) abort();
  tether__h1_limits lim = {.max_head = 65536, .max_uri = 32768, .max_headers = 100};
  for (;;) {
    int rc = c->len ? tether__h1_parse_request(c->buf, c->len, &lim, m) : 0;
    if (rc == 0) {
      struct pollfd pf = {.fd = c->fd, .events = POLLIN};
      if (c->len == 0 && idle_ms > 0 && poll(&pf, 1, (int)idle_ms) == 0) break; /* idle too long: closed */
      if (fill(c) <= 0 || c->oneshot) break;
      continue;
    }
    if (rc < 0) {
      char msg[64];
      int n = snprintf(msg, sizeof(msg), "HTTP/1.1 %d Bad\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", -rc);
      write_all(c->fd, msg, (size_t)n);
      break;
    }
    /* the head's slices point into c->buf, which the body may move: serve from a copy */
    char *head = malloc((size_t)rc + 1);
    if (head == NULL) abort();
    memcpy(head, c->buf, (size_t)rc);
    tether__h1_parse_request(head, (size_t)rc, &lim, m);
    int keep = serve(c, head, m, (size_t)rc);
    free(head);
    if (keep < 0) break;
  }
  free(m);
  atomic_fetch_sub(&nopen, 1);
  close(c->fd);
  free(c->buf);
  free(c);
  return NULL;
}

int main(int argc, char **argv) {
  const char *listen_at = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--listen") == 0)
      listen_at = argv[i + 1];
    else if (strcmp(argv[i], "--name") == 0)
      snprintf(name, sizeof(name), "%s", argv[i + 1]);
    else if (strcmp(argv[i], "--idle-ms") == 0)
      idle_ms = atol(argv[i + 1]);
  }
  if (listen_at == NULL || strchr(listen_at, ':') == NULL) {
    fprintf(stderr, "usage: tether-test-backend --listen 127.0.0.1:PORT --name NAME [--idle-ms MS]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  char host[64];
  snprintf(host, sizeof(host), "%.*s", (int)(strchr(listen_at, ':') - listen_at), listen_at);
  int port = atoi(strchr(listen_at, ':') + 1);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
    fprintf(stderr, "bad address %s\n", listen_at);
    return 2;
  }
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 1024) < 0) {
    fprintf(stderr, "listen %s: %s\n", listen_at, strerror(errno));
    return 1;
  }
  printf("ready %s %d %d\n", name, port, (int)getpid());
  fflush(stdout);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  for (;;) {
    int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE) continue;
      break;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    conn *c = calloc(1, sizeof(*c));
    if (c == NULL) abort();
    c->fd = fd;
    c->id = atomic_fetch_add(&nconns, 1) + 1;
    atomic_fetch_add(&nopen, 1);
    pthread_t t;
    if (pthread_create(&t, &attr, conn_main, c) != 0) {
      atomic_fetch_sub(&nopen, 1);
      close(fd);
      free(c);
    }
  }
  return 1;
}
