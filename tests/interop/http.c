/* A minimal blocking HTTP/1.1 client (see http.h). */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MAX_RESPONSE (1 << 20)

static int send_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static char *dup_n(const char *p, size_t n) {
  char *s = malloc(n + 1);
  if (s == NULL) abort();
  memcpy(s, p, n);
  s[n] = '\0';
  return s;
}

/* Fills resp from a complete response in buf (headers end at hdr_end). */
static void parse(const char *buf, size_t len, size_t hdr_end, ti_http_response *resp) {
  if (sscanf(buf, "HTTP/1.%*d %d", &resp->status) != 1) resp->status = 0;
  const char *line = strstr(buf, "\r\n");
  while (line && (size_t)(line - buf) < hdr_end) {
    line += 2;
    const char *eol = strstr(line, "\r\n");
    if (eol == NULL || eol == line) break;
    if (strncasecmp(line, "Set-Cookie:", 11) == 0 && resp->set_cookie == NULL) {
      const char *v = line + 11;
      while (*v == ' ') v++;
      resp->set_cookie_full = dup_n(v, (size_t)(eol - v));
      const char *semi = memchr(v, ';', (size_t)(eol - v));
      resp->set_cookie = dup_n(v, (size_t)((semi ? semi : eol) - v));
    }
    line = eol;
  }
  resp->body_len = len - (hdr_end + 4);
  resp->body = dup_n(buf + hdr_end + 4, resp->body_len);
}

/* The Content-Length of the headers in buf[0..hdr_end), or -1. */
static long content_length(const char *buf, size_t hdr_end) {
  for (const char *p = strstr(buf, "\r\n"); p && (size_t)(p - buf) < hdr_end; p = strstr(p + 2, "\r\n"))
    if (strncasecmp(p + 2, "Content-Length:", 15) == 0) return strtol(p + 17, NULL, 10);
  return -1;
}

int ti_http(int port, const char *method, const char *path, const char *cookie, const char *json_body, int timeout_ms,
            ti_http_response *resp) {
  memset(resp, 0, sizeof(*resp));
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  char *buf = NULL;
  int rc = -1;
  if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
    fprintf(stderr, "http: connect 127.0.0.1:%d: %s\n", port, strerror(errno));
    goto out;
  }
  size_t blen = json_body ? strlen(json_body) : 0;
  char head[8192];
  int n = snprintf(head, sizeof(head),
                   "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n%s%s%s"
                   "%s%zu\r\n\r\n",
                   method, path, port, cookie ? "Cookie: " : "", cookie ? cookie : "", cookie ? "\r\n" : "",
                   json_body ? "Content-Type: application/json\r\nContent-Length: " : "Content-Length: ", blen);
  if (n < 0 || (size_t)n >= sizeof(head) || send_all(fd, head, (size_t)n) < 0 ||
      (blen && send_all(fd, json_body, blen) < 0)) {
    fprintf(stderr, "http: cannot send the request to port %d\n", port);
    goto out;
  }
  buf = malloc(MAX_RESPONSE + 1);
  if (buf == NULL) abort();
  size_t len = 0;
  long want = -1;
  size_t hdr_end = 0;
  for (;;) {
    if (len == MAX_RESPONSE) break;
    ssize_t r = recv(fd, buf + len, MAX_RESPONSE - len, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      fprintf(stderr, "http: %s %s on port %d: %s\n", method, path, port,
              errno == EAGAIN ? "no answer in time" : strerror(errno));
      goto out;
    }
    if (r == 0) break;
    len += (size_t)r;
    buf[len] = '\0';
    if (hdr_end == 0) {
      char *e = strstr(buf, "\r\n\r\n");
      if (e) {
        hdr_end = (size_t)(e - buf);
        want = content_length(buf, hdr_end);
      }
    }
    if (hdr_end && want >= 0 && len >= hdr_end + 4 + (size_t)want) break;
  }
  buf[len] = '\0';
  if (hdr_end == 0) {
    fprintf(stderr, "http: %s %s on port %d: incomplete response\n", method, path, port);
    goto out;
  }
  parse(buf, len, hdr_end, resp);
  rc = 0;
out:
  free(buf);
  close(fd);
  return rc;
}

void ti_http_free(ti_http_response *resp) {
  free(resp->set_cookie);
  free(resp->set_cookie_full);
  free(resp->body);
  memset(resp, 0, sizeof(*resp));
}
