/* The balancer's own answers. */
#include "answer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "request/finish.h"
#include "request/rewrite.h"
#include "worker.h"

static const char *reason(int status) {
  switch (status) {
  case 200:
    return "OK";
  case 201:
    return "Created";
  case 204:
    return "No Content";
  case 301:
    return "Moved Permanently";
  case 302:
    return "Found";
  case 303:
    return "See Other";
  case 304:
    return "Not Modified";
  case 307:
    return "Temporary Redirect";
  case 308:
    return "Permanent Redirect";
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

/* The head, add_header's lines for this status, and the body, written at once. A 204 or 304 has no body
 * (RFC 9110 sections 15.3.5 and 15.4.5): `return 204 TEXT;` sends none, as nginx. */
static void answer(tether__client *c, int status, const char *type, const char *extra, const char *body, size_t blen) {
  tether__buf b = {0};
  int bodyless = status == 204 || status == 304;
  tether__buf_appendf(&b, "HTTP/1.1 %d %s\r\nServer: tether\r\n", status, reason(status));
  if (!bodyless) tether__buf_appendf(&b, "Content-Type: %s\r\nContent-Length: %zu\r\n", type, blen);
  tether__put_s(&b, extra);
  tether__add_headers_put(c, status, &b);
  tether__buf_appendf(&b, "%s\r\n", c->keep_alive ? "" : "Connection: close\r\n");
  if (!c->is_head && !bodyless) tether__buf_append(&b, body, blen);
  c->status = status;
  c->resp_started = 1;
  if (status >= 400) count_status(c->w, status);
  int rc = tether__to_client(c, b.data, b.len);
  tether__buf_free(&b);
  answered(c, rc);
}

void tether__respond(tether__client *c, int status, const char *body, int keep) {
  if (body == NULL) body = reason(status);
  size_t blen = strlen(body);
  char *text = tether__malloc(blen + 2); /* the text and a line break */
  memcpy(text, body, blen);
  memcpy(text + blen, "\n", 2);
  c->keep_alive = keep && c->keep_alive;
  answer(c, status, "text/plain", "", text, blen + 1);
  free(text);
}

void tether__respond_with(tether__client *c, int status, const char *type, const char *extra, const char *body) {
  answer(c, status, type, extra, body, strlen(body));
}

void tether__respond_redirect(tether__client *c, int status, const char *location) {
  tether__buf extra = {0}, page = {0};
  tether__buf_appendf(&extra, "Location: %s\r\n", location);
  /* nginx's page for a redirect, under Tether's name */
  tether__buf_appendf(&page,
                      "<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n<center><h1>%d %s</h1></center>\r\n"
                      "<hr><center>tether</center>\r\n</body>\r\n</html>\r\n",
                      status, reason(status), status, reason(status));
  answer(c, status, "text/html", extra.data, page.data, page.len);
  tether__buf_free(&extra);
  tether__buf_free(&page);
}

void tether__skip_body(tether__client *c, const tether__h1_msg *m, int head_len) {
  tether__h1_body *body = &c->rq->reqbody;
  tether__h1_body_init(body, m);
  tether__consume(c->in, &c->in_len, (size_t)head_len);
  int64_t k = tether__h1_body_feed(body, c->in, c->in_len);
  if (k < 0 || !body->done) {
    c->keep_alive = 0;
    c->in_len = 0;
  } else {
    tether__consume(c->in, &c->in_len, (size_t)k);
  }
  c->req_done = 1;
}
