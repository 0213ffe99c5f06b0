/* The balancer's own answers. */
#include "answer.h"

#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "request/finish.h"
#include "worker.h"

static const char *reason(int status) {
  switch (status) {
  case 200:
    return "OK";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 408:
    return "Request Timeout";
  case 413:
    return "Content Too Large";
  case 414:
    return "URI Too Long";
  case 421:
    return "Misdirected Request";
  case 431:
    return "Request Header Fields Too Large";
  case 501:
    return "Not Implemented";
  case 502:
    return "Bad Gateway";
  case 503:
    return "Service Unavailable";
  case 504:
    return "Gateway Timeout";
  default:
    return "Error";
  }
}

static void count_status(tether__worker *w, int status) {
  int k = status == 400 ? 0 : status == 408 ? 1 : status == 413 ? 2 : status == 414 ? 3 : status == 431 ? 4 : 5;
  atomic_fetch_add_explicit(&w->errors_by_status[k], 1, memory_order_relaxed);
}

/* The answer is written (or queued): the request is over. */
static void answered(tether__client *c, int rc) {
  if (rc < 0) {
    c->proto->abort(c);
    return;
  }
  c->resp_done = 1;
  tether__request_finish(c);
}

void tether__respond(tether__client *c, int status, const char *body, int keep) {
  char head[512];
  if (body == NULL) body = reason(status);
  size_t blen = strlen(body);
  c->keep_alive = keep && c->keep_alive;
  int n = snprintf(head, sizeof(head),
                   "HTTP/1.1 %d %s\r\nServer: tether\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n",
                   status, reason(status), blen + 1, c->keep_alive ? "" : "Connection: close\r\n");
  c->status = status;
  c->resp_started = 1;
  if (status >= 400) count_status(c->w, status);
  int rc = tether__to_client(c, head, (size_t)n);
  if (rc == 0 && !c->is_head) rc = tether__to_client(c, body, blen);
  if (rc == 0 && !c->is_head) rc = tether__to_client(c, "\n", 1);
  answered(c, rc);
}

void tether__respond_with(tether__client *c, int status, const char *type, const char *extra, const char *body) {
  tether__buf b = {0};
  size_t blen = strlen(body);
  tether__buf_appendf(&b, "HTTP/1.1 %d %s\r\nServer: tether\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
                      status, reason(status), type, blen, extra, c->keep_alive ? "" : "Connection: close\r\n");
  if (!c->is_head) tether__buf_append(&b, body, blen);
  c->status = status;
  c->resp_started = 1;
  count_status(c->w, status);
  int rc = tether__to_client(c, b.data, b.len);
  tether__buf_free(&b);
  answered(c, rc);
}

void tether__skip_body(tether__client *c, const tether__h1_msg *m, int head_len) {
  tether__h1_body_init(&c->reqbody, m);
  tether__consume(c->in, &c->in_len, (size_t)head_len);
  int64_t k = tether__h1_body_feed(&c->reqbody, c->in, c->in_len);
  if (k < 0 || !c->reqbody.done) {
    c->keep_alive = 0;
    c->in_len = 0;
  } else {
    tether__consume(c->in, &c->in_len, (size_t)k);
  }
  c->req_done = 1;
}
