/* The balancer's access log: each worker buffers lines and writes them in batches (every second, or when
 * 64 KiB are waiting) under one lock, so logging costs no system call per request. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/util.h"
#include "conn.h"
#include "worker.h"

static FILE *log_file;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

int tether__access_log_open(const char *path) {
  pthread_mutex_lock(&log_lock);
  FILE *f = NULL;
  if (path && *path) {
    f = strcmp(path, "/dev/stdout") == 0 ? stdout : strcmp(path, "/dev/stderr") == 0 ? stderr : fopen(path, "a");
    if (f == NULL) {
      pthread_mutex_unlock(&log_lock);
      return -1;
    }
  }
  if (log_file && log_file != stdout && log_file != stderr) fclose(log_file);
  log_file = f;
  pthread_mutex_unlock(&log_lock);
  return 0;
}

void tether__access_log_close(void) { tether__access_log_open(NULL); }

/* Client bytes in a log line: as nginx's escape=default (", \ and bytes outside printable ASCII as \xHH)
 * for the combined format; for JSON, ", \ and control characters escaped and every byte above 0x7e as
 * \u00HH, so that each line is valid JSON whatever the client sent. */
void tether__log_escape(tether__buf *b, const char *s, int json) {
  static const char hex[] = "0123456789ABCDEF";
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    char esc[8];
    size_t n = 0;
    if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\') {
      esc[n++] = (char)ch;
    } else if (json && (ch == '"' || ch == '\\')) {
      esc[n++] = '\\';
      esc[n++] = (char)ch;
    } else if (json) {
      memcpy(esc, "\\u00", 4);
      n = 4;
      esc[n++] = hex[ch >> 4];
      esc[n++] = hex[ch & 15];
    } else {
      esc[n++] = '\\';
      esc[n++] = 'x';
      esc[n++] = hex[ch >> 4];
      esc[n++] = hex[ch & 15];
    }
    tether__buf_append(b, esc, n);
  }
}

void tether__access_log_flush(tether__worker *w) {
  if (w->log_len == 0) return;
  pthread_mutex_lock(&log_lock);
  if (log_file) {
    fwrite(w->log_buf, 1, w->log_len, log_file);
    fflush(log_file);
  }
  pthread_mutex_unlock(&log_lock);
  w->log_len = 0;
}

void tether__access_log_line(tether__worker *w, const char *line, size_t n) {
  if (w->log_len + n > w->log_cap) {
    size_t cap = w->log_cap ? w->log_cap : 65536;
    while (cap < w->log_len + n) cap *= 2;
    w->log_buf = tether__realloc(w->log_buf, cap);
    w->log_cap = cap;
  }
  memcpy(w->log_buf + w->log_len, line, n);
  w->log_len += n;
  if (w->log_len >= 65536) tether__access_log_flush(w);
}

/* One access log line for the request ending now (us: its duration). */
void tether__log_request(tether__client *c, uint64_t us) {
  tether__config *cf = c->rt->cf;
  if (cf->access_log[0] == '\0') return;
  char date[40], num[96];
  tether__http_date(tether_now_ms(), date);
  const char *server = c->server_name ? c->server_name : "-";
  int json = cf->access_log_json;
  const char *proto = c->conn ? "HTTP/2.0" : c->version_minor ? "HTTP/1.1" : "HTTP/1.0"; /* $server_protocol */
  tether__buf *b = &c->w->scratch_log;
  b->len = 0;
  if (json) {
    tether__buf_appendf(b, "{\"time\":\"%s\",\"client\":\"", date);
    tether__log_escape(b, c->rq->peer, 1);
    tether__put_s(b, "\",\"method\":\"");
    tether__log_escape(b, c->rq->method, 1);
    tether__put_s(b, "\",\"uri\":\"");
    tether__log_escape(b, c->rq->target, 1);
    tether__put_s(b, "\",\"protocol\":\"");
    tether__put_s(b, proto);
    snprintf(num, sizeof(num), "\",\"status\":%d,\"bytes\":%llu,\"duration_ms\":%.3f,\"server\":\"", c->status,
             (unsigned long long)c->bytes_sent, us / 1000.0);
    tether__put_s(b, num);
    tether__log_escape(b, server, 1);
    tether__put_s(b, "\"}\n");
  } else {
    tether__log_escape(b, c->rq->peer, 0);
    tether__buf_appendf(b, " - - [%s] \"", date);
    tether__log_escape(b, c->rq->method, 0);
    tether__put(b, " ", 1);
    tether__log_escape(b, c->rq->target, 0);
    snprintf(num, sizeof(num), " %s\" %d %llu \"-\" \"-\" %.3f \"", proto, c->status, (unsigned long long)c->bytes_sent,
             us / 1e6);
    tether__put_s(b, num);
    tether__log_escape(b, server, 0);
    tether__put_s(b, "\"\n");
  }
  tether__access_log_line(c->w, b->data, b->len);
}
