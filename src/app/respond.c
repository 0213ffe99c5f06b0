/* tether-app: sending answers (text, HTML, JSON), counted by route and status class; the operator's log. */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "xalloc.h"

static int class_of(int status) {
  return status < 200 ? 0 : status < 300 ? 1 : status < 400 ? 2 : status < 500 ? 3 : 4;
}

/* Queues r (consumed) with the headers every answer carries. */
static enum MHD_Result queue(struct MHD_Connection *conn, struct MHD_Response *r, int route, int status,
                             const char *type, const char *set_cookie, const char *location, header extra) {
  if (r == NULL) xcheck(NULL, "response");
  MHD_add_response_header(r, "Content-Type", type);
  MHD_add_response_header(r, "X-Served-By", the_app.name);
  MHD_add_response_header(r, "Cache-Control", "no-store");
  if (set_cookie) MHD_add_response_header(r, "Set-Cookie", set_cookie);
  if (location) MHD_add_response_header(r, "Location", location);
  if (extra.name) MHD_add_response_header(r, extra.name, extra.value);
  if (atomic_load_explicit(&stopping, memory_order_relaxed)) MHD_add_response_header(r, "Connection", "close");
  enum MHD_Result rc = MHD_queue_response(conn, (unsigned)status, r);
  MHD_destroy_response(r);
  atomic_fetch_add_explicit(&the_app.requests[route][class_of(status)], 1, memory_order_relaxed);
  return rc;
}

enum MHD_Result send_text_h(struct MHD_Connection *conn, int route, int status, const char *type, const char *body,
                            const char *set_cookie, const char *location, header extra) {
  struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
  return queue(conn, r, route, status, type, set_cookie, location, extra);
}

enum MHD_Result send_json_text(struct MHD_Connection *conn, int route, int status, char *text, const char *set_cookie) {
  struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
  if (r == NULL) free(text);
  return queue(conn, r, route, status, "application/json", set_cookie, NULL, (header){NULL, NULL});
}

enum MHD_Result send_text(struct MHD_Connection *conn, int route, int status, const char *type, const char *body,
                          const char *set_cookie, const char *location) {
  return send_text_h(conn, route, status, type, body, set_cookie, location, (header){NULL, NULL});
}

enum MHD_Result send_json_h(struct MHD_Connection *conn, int route, int status, json_t *j, const char *set_cookie,
                            header extra) {
  char *text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(j);
  if (text == NULL) { /* json_pack refused a text (not UTF-8): say so rather than crash */
    status = 500;
    text = xstrdup("{\"error\":\"the answer could not be encoded\"}");
  }
  size_t n = strlen(text);
  text = xrealloc(text, n + 2);
  text[n] = '\n';
  text[n + 1] = '\0';
  struct MHD_Response *r = MHD_create_response_from_buffer(n + 1, text, MHD_RESPMEM_MUST_FREE);
  if (r == NULL) free(text);
  return queue(conn, r, route, status, "application/json", set_cookie, NULL, extra);
}

enum MHD_Result send_json(struct MHD_Connection *conn, int route, int status, json_t *j, const char *set_cookie) {
  return send_json_h(conn, route, status, j, set_cookie, (header){NULL, NULL});
}

/* What went wrong, for the operator: store messages name hosts, databases and users, so they go to the log
 * (at most one line a second: an outage fails every request), never to anonymous clients. */
void log_detail(const char *what, const char *detail) {
  static _Atomic int64_t last_ms;
  int64_t now = tether_now_ms(), last = atomic_load_explicit(&last_ms, memory_order_relaxed);
  if (now - last < 1000 || !atomic_compare_exchange_strong(&last_ms, &last, now)) return;
  fprintf(stderr, "tether-app %s: %s: %s\n", the_app.name, what, detail);
}

enum MHD_Result store_error(struct MHD_Connection *conn, int route, int code, const char *detail) {
  log_detail("session store unavailable", detail);
  json_t *j = json_pack("{s:s,s:s}", "error", "session store unavailable", "code", tether_strerror(code));
  return send_json(conn, route, 503, j, NULL);
}

/* Cuts s at its first byte that does not continue valid UTF-8 (a message cut mid-character, a server's
 * bytes): JSON strings must be UTF-8. */
void utf8_clip(char *s) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (p[i]) {
    size_t n = p[i] < 0x80 ? 1 : (p[i] & 0xe0) == 0xc0 ? 2 : (p[i] & 0xf0) == 0xe0 ? 3 : (p[i] & 0xf8) == 0xf0 ? 4 : 0;
    for (size_t k = 1; k < n; k++)
      if ((p[i + k] & 0xc0) != 0x80) n = 0;
    if (n == 0 || (n == 2 && p[i] < 0xc2)) break;
    i += n;
  }
  s[i] = '\0';
}
