/* tether-lab: HTTP over libcurl's multi interface on the lab's libuv loop (a uv_poll per socket, one
 * uv_timer for curl's timeouts), so thousands of transfers cost one thread. Used by the simulated users
 * (users.c) and the metrics scrapes (measure.c). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lab.h"
#include "xalloc.h"

struct lab_http {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t *timer;
  struct curl_slist *json_headers;
};

typedef struct sock_ctx {
  uv_poll_t poll; /* first: the close callback frees the whole */
  curl_socket_t fd;
  lab_http *http;
} sock_ctx;

static void free_handle(uv_handle_t *h) { free(h); }

static void check_done(lab_http *h) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL *e = msg->easy_handle;
    CURLcode rc = msg->data.result;
    lab_xfer *x = NULL;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
    curl_multi_remove_handle(h->multi, e);
    x->active = 0;
    x->rc = rc;
    x->status = 0;
    if (rc == CURLE_OK) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &x->status);
    curl_off_t t = 0;
    curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &t);
    x->latency_us = (int64_t)t;
    if (x->done) x->done(x);
  }
}

static void on_poll(uv_poll_t *p, int status, int events) {
  sock_ctx *c = p->data;
  lab_http *h = c->http;
  int flags = 0, running;
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  curl_multi_socket_action(h->multi, c->fd, flags, &running);
  check_done(h);
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp) {
  (void)e;
  lab_http *h = userp;
  sock_ctx *c = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (c) {
      uv_poll_stop(&c->poll);
      curl_multi_assign(h->multi, s, NULL);
      uv_close((uv_handle_t *)&c->poll, free_handle);
    }
    return 0;
  }
  if (c == NULL) {
    c = xcalloc(1, sizeof(*c));
    c->fd = s;
    c->http = h;
    if (uv_poll_init_socket(h->loop, &c->poll, s) < 0) {
      free(c);
      return -1;
    }
    c->poll.data = c;
    curl_multi_assign(h->multi, s, c);
  }
  int ev = 0;
  if (what & CURL_POLL_IN) ev |= UV_READABLE;
  if (what & CURL_POLL_OUT) ev |= UV_WRITABLE;
  uv_poll_start(&c->poll, ev, on_poll);
  return 0;
}

static void on_curl_timeout(uv_timer_t *t) {
  lab_http *h = t->data;
  int running;
  curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(h);
}

static int on_timer_set(CURLM *m, long timeout_ms, void *userp) {
  (void)m;
  lab_http *h = userp;
  if (timeout_ms < 0)
    uv_timer_stop(h->timer);
  else
    uv_timer_start(h->timer, on_curl_timeout, (uint64_t)timeout_ms, 0);
  return 0;
}

lab_http *lab_http_new(uv_loop_t *loop) {
  lab_http *h = xcalloc(1, sizeof(*h));
  h->loop = loop;
  h->timer = xmalloc(sizeof(*h->timer));
  uv_timer_init(loop, h->timer);
  h->timer->data = h;
  h->multi = xcheck(curl_multi_init(), "curl_multi_init");
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timer_set);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
  h->json_headers = xcheck(curl_slist_append(NULL, "Content-Type: application/json"), "curl_slist_append");
  return h;
}

void lab_http_free(lab_http *h) {
  if (h == NULL) return;
  curl_multi_cleanup(h->multi); /* closes the cached connections: their polls get CURL_POLL_REMOVE */
  uv_timer_stop(h->timer);
  uv_close((uv_handle_t *)h->timer, free_handle);
  curl_slist_free_all(h->json_headers);
  free(h);
}

static size_t on_body(char *data, size_t size, size_t n, void *arg) {
  lab_xfer *x = arg;
  size_t len = size * n;
  if (x->len + len + 1 > x->cap) {
    size_t cap = x->cap ? x->cap : 1024;
    while (cap < x->len + len + 1) cap *= 2;
    if (cap > (size_t)8 << 20) return 0; /* no answer of ours is that large: abort */
    x->body = xrealloc(x->body, cap);
    x->cap = cap;
  }
  memcpy(x->body + x->len, data, len);
  x->len += len;
  x->body[x->len] = '\0';
  return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg) {
  lab_xfer *x = arg;
  size_t len = size * n;
  static const char name[] = "X-Served-By:";
  if (len > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0) {
    const char *v = data + sizeof(name) - 1;
    const char *end = data + len;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    size_t k = 0;
    while (v < end && *v != '\r' && *v != '\n' && k + 1 < sizeof(x->served_by)) x->served_by[k++] = *v++;
    x->served_by[k] = '\0';
  }
  return len;
}

void lab_xfer_init(lab_xfer *x, lab_http *h, void *owner, lab_xfer_cb done) {
  memset(x, 0, sizeof(*x));
  x->http = h;
  x->owner = owner;
  x->done = done;
  x->easy = xcheck(curl_easy_init(), "curl_easy_init");
  curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(x->easy, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(x->easy, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
  curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
  curl_easy_setopt(x->easy, CURLOPT_COOKIEFILE, ""); /* this handle's own cookie engine: the user's jar */
}

int lab_xfer_start(lab_xfer *x, const char *url, const char *json_body, long timeout_ms) {
  if (x->active) return -1;
  x->len = 0;
  if (x->body) x->body[0] = '\0';
  x->served_by[0] = '\0';
  x->status = 0;
  x->rc = CURLE_OK;
  curl_easy_setopt(x->easy, CURLOPT_URL, url);
  curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
  if (json_body) {
    curl_easy_setopt(x->easy, CURLOPT_COPYPOSTFIELDS, json_body);
    curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->http->json_headers);
  } else {
    curl_easy_setopt(x->easy, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, NULL);
  }
  if (curl_multi_add_handle(x->http->multi, x->easy) != CURLM_OK) return -1;
  x->active = 1;
  return 0;
}

void lab_xfer_cleanup(lab_xfer *x) {
  if (x->easy) {
    if (x->active) curl_multi_remove_handle(x->http->multi, x->easy);
    curl_easy_cleanup(x->easy);
  }
  free(x->body);
  memset(x, 0, sizeof(*x));
}
