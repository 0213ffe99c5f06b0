/* tether-app: the reference stateless application server. Every bit of user state lives in the session
 * store (libtether), so any instance can serve any request and a dead instance loses nothing. It is what
 * the demo, the tests and the lab run behind the balancer. With a JWT secret it also answers the seed's
 * token flow (login() and authenticate): POST /login in token mode signs an HS256 token, GET /api/me
 * verifies a bearer token; neither touches the session store.
 *
 * Threads: --threads workers (default: one per core), each a libuv loop running a libmicrohttpd daemon on
 * its epoll set (all accepting from one listening socket) and its own asynchronous handle on the session
 * store (tether/store_async.h). A request that needs the store is suspended while its session is loaded
 * and committed, and the loop serves the other connections meanwhile; with Redis, the commands of every
 * request in flight on a thread leave in one write per loop turn. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "tether/jwt.h"
#include "tether/session.h"
#include "tether/store.h"
#include "tether/store_async.h"

#define MAX_BODY 65536
#define TOKEN_TTL_S 3600 /* the seed's expiresIn: '1h' */
#define BEARER_REALM "Bearer realm=\"tether-app\""
#define TOKEN_ROLE "user" /* the role of every token login: decided here, never by the client */

enum { R_INDEX = 0, R_WHOAMI, R_LOGIN, R_LOGOUT, R_CART, R_HEALTH, R_METRICS, R_API_ME, R_OTHER, R_COUNT };
static const char *route_names[R_COUNT] = {"/",       "/whoami",  "/login",  "/logout", "/cart",
                                           "/health", "/metrics", "/api/me", "other"};

typedef struct app {
  const char *name;
  tether_store *store;
  tether_sessions *sessions;
  tether_jwt_signer *signer;             /* NULL: no JWT secret, token mode answers 501 */
  tether_jwt_verifier *verifier;         /* HS256 with the same secret, built once; NULL with signer */
  tether_trusted_proxies trusted;        /* --trust-proxy: peers whose X-Forwarded-Proto is believed */
  _Atomic uint64_t requests[R_COUNT][6]; /* route x status class */
} app;

/* One worker thread: its loop, its daemon on the shared listening socket, its store handle. */
typedef struct worker {
  pthread_t thread;
  uv_loop_t loop;
  uv_poll_t poll;   /* the daemon's epoll set */
  uv_timer_t timer; /* the daemon's next timeout */
  uv_async_t stop;  /* the main thread asks it to finish */
  uv_timer_t drain; /* while stopping: waits for the requests in flight */
  uv_idle_t kick;   /* a resumed connection: run the daemon before the loop sleeps again */
  int64_t drain_until_ms;
  struct MHD_Daemon *d;
  tether_astore *astore;
  int in_flight;             /* this worker's requests between their head and their completion */
  struct request *suspended; /* requests waiting for the store */
} worker;

typedef struct request {
  char *body;
  size_t len;
  int too_large;
  /* a request waiting for the store: what it will answer */
  worker *w;
  struct MHD_Connection *conn;
  const char *ctype;
  int route, form, started, ready, suspended, in_handler;
  int verbose; /* /health?verbose from a loopback client: the store's details too */
  int secure;  /* the request is secure (a trusted proxy said https) */
  tether_session *s;
  int status, err;
  json_t *answer;
  char *html, *set_cookie;
  const char *location;
  char detail[512];              /* the store's message when err < 0 */
  int pending;                   /* a store call will call back with this request */
  int orphan;                    /* its connection is gone: the pending callback frees it */
  int abandoned;                 /* answered without the store (stopping): the pending callback drops its result */
  struct request *sprev, *snext; /* in the worker's suspended list */
} request;

static app the_app;
static _Atomic int stopping; /* answers say Connection: close */

static void usage(FILE *out) {
  fprintf(out, "usage: tether-app [options]\n"
               "  --listen ADDR:PORT   where to listen (default 127.0.0.1:9001)\n"
               "  --name NAME          this instance's name, shown in every answer (default app)\n"
               "  --sessions URL       session store (default sqlite:./var/sessions.db); any libtether store URL:\n"
               "                       memory:, sqlite:PATH, redis://, redis-sentinel://, memcached://, postgres://,\n"
               "                       dual:LOCAL+SHARED, jwt:\n"
               "  --secret S           cookie signing secret (repeatable: the first signs, all verify; env:NAME reads\n"
               "                       the environment); default: $TETHER_SECRET\n"
               "  --jwt-secret S       HS256 secret for API tokens (env:NAME reads the environment); default:\n"
               "                       $JWT_SECRET. POST /login?token=1 (or \"token\":true, token=1 in the body)\n"
               "                       answers {\"token\":JWT} valid 1 h, with no session; GET /api/me verifies\n"
               "                       Authorization: Bearer JWT. Without it both answer 501\n"
               "  --weak-secret-ok     accept a --jwt-secret shorter than 32 bytes (RFC 7518 3.2 asks for 32)\n"
               "  --cookie-secure[=auto|on|off]  Secure session cookie: on (no value) sends the cookie only in answer\n"
               "                       to secure requests; auto marks it Secure iff the request is secure (default off)\n"
               "  --trust-proxy CIDR   a proxy whose X-Forwarded-Proto says whether a request is secure\n"
               "                       (repeatable; e.g. 127.0.0.1/32). Without one, no request is secure\n"
               "  --absolute-timeout SECONDS  a session ends this long after it was created, whatever its activity\n"
               "                       (default 0: no absolute lifetime)\n"
               "  --max-age SECONDS    session cookie lifetime (default 3600; 0: a browser-session cookie)\n"
               "  --threads N          worker threads, each an event loop (default: one per core); stores other than\n"
               "                       redis:// run on libuv's thread pool (UV_THREADPOOL_SIZE, default here 16)\n"
               "  --help\n");
}

static int class_of(int status) {
  return status < 200 ? 0 : status < 300 ? 1 : status < 400 ? 2 : status < 500 ? 3 : 4;
}

/* One extra response header (name, value), or none. */
typedef struct header {
  const char *name, *value;
} header;

static enum MHD_Result send_text_h(struct MHD_Connection *conn, int route, int status, const char *type,
                                   const char *body, const char *set_cookie, const char *location, header extra) {
  struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
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

static enum MHD_Result send_text(struct MHD_Connection *conn, int route, int status, const char *type, const char *body,
                                 const char *set_cookie, const char *location) {
  return send_text_h(conn, route, status, type, body, set_cookie, location, (header){NULL, NULL});
}

static enum MHD_Result send_json_h(struct MHD_Connection *conn, int route, int status, json_t *j,
                                   const char *set_cookie, header extra) {
  char *text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(j);
  if (text == NULL) { /* json_pack refused a text (not UTF-8): say so rather than crash */
    status = 500;
    text = strdup("{\"error\":\"the answer could not be encoded\"}");
  }
  size_t n = strlen(text);
  text = realloc(text, n + 2);
  text[n] = '\n';
  text[n + 1] = '\0';
  enum MHD_Result rc = send_text_h(conn, route, status, "application/json", text, set_cookie, NULL, extra);
  free(text);
  return rc;
}

static enum MHD_Result send_json(struct MHD_Connection *conn, int route, int status, json_t *j,
                                 const char *set_cookie) {
  return send_json_h(conn, route, status, j, set_cookie, (header){NULL, NULL});
}

/* What went wrong, for the operator: store messages name hosts, databases and users, so they go to the log
 * (at most one line a second: an outage fails every request), never to anonymous clients. */
static void log_detail(const char *what, const char *detail) {
  static _Atomic int64_t last_ms;
  int64_t now = tether_now_ms(), last = atomic_load_explicit(&last_ms, memory_order_relaxed);
  if (now - last < 1000 || !atomic_compare_exchange_strong(&last_ms, &last, now)) return;
  fprintf(stderr, "tether-app %s: %s: %s\n", the_app.name, what, detail);
}

static enum MHD_Result store_error(struct MHD_Connection *conn, int route, int code, const char *detail) {
  log_detail("session store unavailable", detail);
  json_t *j = json_pack("{s:s,s:s}", "error", "session store unavailable", "code", tether_strerror(code));
  return send_json(conn, route, 503, j, NULL);
}

static json_int_t visits_inc(json_t *data) {
  json_int_t v = json_integer_value(json_object_get(data, "visits")) + 1;
  json_object_set_new(data, "visits", json_integer(v));
  return v;
}

static json_t *cart_of(json_t *data) {
  json_t *cart = json_object_get(data, "cart");
  if (!json_is_array(cart)) {
    cart = json_array();
    json_object_set_new(data, "cart", cart);
  }
  return cart;
}

static json_t *whoami(tether_session *s) {
  json_t *data = tether_session_data(s);
  json_t *user = json_object_get(data, "user");
  json_t *cart = json_object_get(data, "cart");
  return json_pack("{s:s,s:s,s:I,s:O,s:o}", "server", the_app.name, "session_id", tether_session_id(s), "visits",
                   json_integer_value(json_object_get(data, "visits")), "user", user ? user : json_null(), "cart",
                   json_is_array(cart) ? json_incref(cart) : json_array());
}

static void html_escape(FILE *f, const char *s) {
  for (; *s; s++) {
    switch (*s) {
    case '<':
      fputs("&lt;", f);
      break;
    case '>':
      fputs("&gt;", f);
      break;
    case '&':
      fputs("&amp;", f);
      break;
    case '"':
      fputs("&quot;", f);
      break;
    case '\'':
      fputs("&#39;", f);
      break;
    default:
      fputc(*s, f);
    }
  }
}

static char *index_page(tether_session *s) {
  json_t *data = tether_session_data(s);
  char *out = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&out, &n);
  json_t *user = json_object_get(data, "user");
  fprintf(f, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Tether demo: ");
  html_escape(f, the_app.name);
  fprintf(f, "</title>\n<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}"
             "#server{font-size:2em;font-weight:bold}code{background:#eee;padding:0 .3em}</style></head>\n<body>\n");
  fprintf(f, "<p>Answered by <span id=\"server\">");
  html_escape(f, the_app.name);
  fprintf(f, "</span></p>\n<p>Visits in this session: <span id=\"visits\">%lld</span></p>\n",
          (long long)json_integer_value(json_object_get(data, "visits")));
  if (json_is_string(user)) {
    fprintf(f, "<p>Logged in as <span id=\"user\">");
    html_escape(f, json_string_value(user));
    fprintf(f, "</span></p>\n<form method=\"post\" action=\"/logout\"><button id=\"logout\">Log out</button></form>\n");
  } else {
    fprintf(f, "<form method=\"post\" action=\"/login\"><label>Name <input id=\"name\" name=\"user\" "
               "value=\"alice\"></label> <button id=\"login\">Log in</button></form>\n");
  }
  fprintf(f, "<p>Cart: <span id=\"cart\">");
  json_t *cart = json_object_get(data, "cart");
  size_t i;
  json_t *item;
  if (json_is_array(cart) && json_array_size(cart)) {
    json_array_foreach(cart, i, item) {
      if (i) fputs(", ", f);
      if (json_is_string(item)) html_escape(f, json_string_value(item));
    }
  } else {
    fputs("empty", f);
  }
  fprintf(f,
          "</span></p>\n<form method=\"post\" action=\"/cart\"><input name=\"item\" value=\"book\"> "
          "<button id=\"add\">Add to cart</button></form>\n"
          "<p>Session id: <code id=\"sid\">%.8s&hellip;</code> in the <code>%s</code> store. Stop this app and "
          "reload: another one answers, with the same visits and cart.</p>\n</body></html>\n",
          tether_session_id(s), tether_store_kind(the_app.store));
  fclose(f);
  return out;
}

/* "application/x-www-form-urlencoded" value of key, decoded; or a JSON body's string member. */
static char *body_field(const request *rq, const char *ctype, const char *key) {
  if (rq->body == NULL) return NULL;
  if (ctype && strncmp(ctype, "application/json", 16) == 0) {
    json_error_t e;
    json_t *j = json_loadb(rq->body, rq->len, JSON_REJECT_DUPLICATES, &e);
    json_t *v = json_object_get(j, key);
    char *out = NULL;
    if (json_is_string(v))
      out = strdup(json_string_value(v));
    else if (json_is_integer(v)) {
      char num[64];
      snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
      out = strdup(num);
    } else if (json_is_real(v)) {
      char num[64];
      snprintf(num, sizeof(num), "%.17g", json_real_value(v));
      out = strdup(num);
    }
    json_decref(j);
    return out;
  }
  size_t kl = strlen(key);
  const char *p = rq->body, *end = rq->body + rq->len;
  while (p < end) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *e = amp ? amp : end;
    if ((size_t)(e - p) > kl && memcmp(p, key, kl) == 0 && p[kl] == '=') {
      const char *v = p + kl + 1;
      char *out = malloc((size_t)(e - v) + 1);
      size_t o = 0;
      for (const char *q = v; q < e; q++) {
        if (*q == '+')
          out[o++] = ' ';
        else if (*q == '%' && q + 2 < e && isxdigit((unsigned char)q[1]) && isxdigit((unsigned char)q[2])) {
          char hex[3] = {q[1], q[2], 0};
          out[o++] = (char)strtol(hex, NULL, 16);
          q += 2;
        } else
          out[o++] = *q;
      }
      out[o] = '\0';
      return out;
    }
    p = e + 1;
  }
  return NULL;
}

static int valid_text(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n == 0 || n > max) return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20) return 0;
  return 1;
}

/* ---- tokens: the seed's login() and authenticate, without the session store ---- */

static int is_yes(const char *v) { return strcmp(v, "1") == 0 || strcmp(v, "true") == 0; }

/* Token mode for POST /login: ?token=1, a JSON body's "token": true, or a form field token=1. */
static int wants_token(struct MHD_Connection *conn, const request *rq, const char *ctype) {
  const char *q = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "token");
  if (q && is_yes(q)) return 1;
  if (rq->body == NULL) return 0;
  if (ctype && strncmp(ctype, "application/json", 16) == 0) {
    json_t *j = json_loadb(rq->body, rq->len, JSON_REJECT_DUPLICATES, NULL);
    int yes = json_is_true(json_object_get(j, "token"));
    json_decref(j);
    return yes;
  }
  char *v = body_field(rq, ctype, "token");
  int yes = v && is_yes(v);
  free(v);
  return yes;
}

static enum MHD_Result tokens_not_configured(struct MHD_Connection *conn, int route) {
  return send_json(conn, route, 501,
                   json_pack("{s:s}", "error", "token login is not configured (--jwt-secret or JWT_SECRET)"), NULL);
}

/* login(): {"token": jwt.sign({ userId, role }, JWT_SECRET, { expiresIn: '1h' })}. No session, no cookie.
 * The role is the server's (every token user is "user"): a client naming its own role would sign itself
 * any privilege, so a "role" in the request is ignored. */
static enum MHD_Result token_login(struct MHD_Connection *conn, const request *rq, const char *ctype) {
  if (the_app.signer == NULL) return tokens_not_configured(conn, R_LOGIN);
  char *user = body_field(rq, ctype, "user");
  int status = 400;
  json_t *answer = NULL;
  if (user == NULL || !valid_text(user, 64)) {
    answer = json_pack("{s:s}", "error", "a user name (1-64 characters) is required");
  } else {
    json_t *payload = json_pack("{s:s,s:s}", "userId", user, "role", TOKEN_ROLE);
    char *text = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
    char *token = NULL;
    if (payload == NULL) { /* jansson refuses text that is not UTF-8 */
      answer = json_pack("{s:s}", "error", "the user name must be UTF-8");
    } else if (text == NULL || tether_jwt_sign(the_app.signer, text, strlen(text), TOKEN_TTL_S, &token) < 0) {
      status = 500;
      log_detail("signing a token", tether_last_error());
      answer = json_pack("{s:s}", "error", "cannot sign the token");
    } else {
      status = 200;
      answer = json_pack("{s:s}", "token", token);
    }
    json_decref(payload);
    free(text);
    free(token);
  }
  free(user);
  return send_json(conn, R_LOGIN, status, answer, NULL);
}

/* 401 with RFC 6750's challenge: the error only when a token was presented (rc < 0), and the seed's body. */
static enum MHD_Result unauthorized(struct MHD_Connection *conn, int rc) {
  char challenge[256];
  if (rc < 0)
    snprintf(challenge, sizeof(challenge), "%s, error=\"invalid_token\", error_description=\"%s\"", BEARER_REALM,
             tether_jwt_message(rc)); /* fixed messages, without quotes or backslashes */
  else
    snprintf(challenge, sizeof(challenge), "%s", BEARER_REALM);
  return send_json_h(conn, R_API_ME, 401, json_pack("{s:s}", "error", "Invalid token"), NULL,
                     (header){"WWW-Authenticate", challenge});
}

/* authenticate + the claims: GET /api/me with Authorization: Bearer TOKEN. */
static enum MHD_Result api_me(struct MHD_Connection *conn) {
  if (the_app.verifier == NULL) return tokens_not_configured(conn, R_API_ME);
  const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  if (auth == NULL || strncasecmp(auth, "Bearer", 6) != 0 || (auth[6] != ' ' && auth[6] != '\t' && auth[6] != '\0'))
    return unauthorized(conn, 0); /* no bearer credentials at all */
  const char *token = auth + 6;
  while (*token == ' ' || *token == '\t') token++;
  size_t len = strlen(token);
  while (len > 0 && (token[len - 1] == ' ' || token[len - 1] == '\t')) len--;
  if (len == 0) return unauthorized(conn, 0);
  tether_jwt_claims *c = tether_jwt_claims_new();
  int rc = tether_jwt_verify(the_app.verifier, token, len, c);
  if (rc < 0) {
    tether_jwt_claims_free(c);
    return unauthorized(conn, rc);
  }
  size_t plen;
  const char *payload = tether_jwt_claims_payload(c, &plen);
  json_t *claims = payload ? json_loadb(payload, plen, 0, NULL) : NULL;
  json_t *answer = claims ? json_pack("{s:s,s:o}", "server", the_app.name, "user", claims) : NULL;
  tether_jwt_claims_free(c);
  if (answer == NULL)
    return send_json(conn, R_API_ME, 500, json_pack("{s:s}", "error", "cannot read the token's claims"), NULL);
  return send_json(conn, R_API_ME, 200, answer, NULL);
}

/* ---- requests that wait for the store: load, apply the route, commit; then the answer ---- */

static void run_daemon(worker *w);

static void on_kick(uv_idle_t *h) {
  uv_idle_stop(h);
  run_daemon(h->data);
}

/* Cuts s at its first byte that does not continue valid UTF-8 (a message cut mid-character, a server's
 * bytes): JSON strings must be UTF-8. */
static void utf8_clip(char *s) {
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

static void job_fail(request *rq, int rc) {
  rq->err = rc;
  snprintf(rq->detail, sizeof(rq->detail), "%s", tether_last_error());
  utf8_clip(rq->detail);
}

static void request_free(request *rq) {
  tether_session_free(rq->s);
  json_decref(rq->answer);
  free(rq->html);
  free(rq->set_cookie);
  free(rq->body);
  free(rq);
}

static void unlink_suspended(request *rq) {
  if (rq->sprev)
    rq->sprev->snext = rq->snext;
  else if (rq->w->suspended == rq)
    rq->w->suspended = rq->snext;
  if (rq->snext) rq->snext->sprev = rq->sprev;
  rq->sprev = rq->snext = NULL;
}

/* First thing in every store callback: whether the request still wants the result. One whose connection
 * is gone is freed here; one already answered (stopping) is freed with its connection. */
static int job_enter(request *rq) {
  rq->pending = 0;
  if (rq->orphan) {
    request_free(rq);
    return 0;
  }
  return !rq->abandoned;
}

/* The answer is ready: hand the connection back to the daemon (or answer at once, still in the handler). */
static void job_done(request *rq) {
  if (rq->s) {
    tether_session_free(rq->s);
    rq->s = NULL;
  }
  rq->ready = 1;
  if (rq->suspended && !rq->in_handler) {
    rq->suspended = 0;
    unlink_suspended(rq);
    MHD_resume_connection(rq->conn);
    if (!uv_is_active((uv_handle_t *)&rq->w->kick)) uv_idle_start(&rq->w->kick, on_kick);
  }
}

static enum MHD_Result job_answer(request *rq) {
  struct MHD_Connection *conn = rq->conn;
  enum MHD_Result res;
  if (rq->err < 0) {
    json_decref(rq->answer);
    res = store_error(conn, rq->route, rq->err, rq->detail);
  } else if (rq->html) {
    res = send_text(conn, rq->route, rq->status, "text/html; charset=utf-8", rq->html, rq->set_cookie, rq->location);
  } else {
    res = send_json(conn, rq->route, rq->status, rq->answer, rq->set_cookie);
  }
  rq->answer = NULL;
  free(rq->html);
  free(rq->set_cookie);
  rq->html = rq->set_cookie = NULL;
  return res;
}

static void on_committed(void *arg, int rc, char *set_cookie) {
  request *rq = arg;
  if (!job_enter(rq)) {
    free(set_cookie);
    return;
  }
  rq->set_cookie = set_cookie;
  if (rc < 0) job_fail(rq, rc);
  job_done(rq);
}

static void commit(request *rq) {
  rq->pending = 1;
  int rc = tether_session_commit_async(rq->s, rq->w->astore, on_committed, rq);
  if (rc < 0) {
    rq->pending = 0;
    job_fail(rq, rc);
    job_done(rq);
  }
}

static void after_login(void *arg, int rc) {
  request *rq = arg;
  if (!job_enter(rq)) return;
  if (rc < 0) {
    json_decref(rq->answer); /* the data kept across the new id */
    rq->answer = NULL;
    job_fail(rq, rc);
    job_done(rq);
    return;
  }
  json_t *data = tether_session_data(rq->s);
  json_object_update(data, rq->answer); /* the visits and the cart, with the user */
  json_decref(rq->answer);
  rq->answer = NULL;
  if (rq->form) {
    rq->status = 303;
    rq->location = "/";
    rq->html = strdup("logged in\n");
  } else {
    rq->answer = whoami(rq->s);
  }
  commit(rq);
}

static void after_logout(void *arg, int rc) {
  request *rq = arg;
  if (!job_enter(rq)) return;
  if (rc < 0) {
    job_fail(rq, rc);
    job_done(rq);
    return;
  }
  if (rq->form) {
    rq->status = 303;
    rq->location = "/";
    rq->html = strdup("logged out\n");
  } else {
    rq->answer = json_pack("{s:b,s:s}", "ok", 1, "server", the_app.name);
  }
  commit(rq);
}

static void on_loaded(void *arg, int rc, tether_session *s) {
  request *rq = arg;
  if (!job_enter(rq)) {
    tether_session_free(s);
    return;
  }
  if (rc < 0) {
    job_fail(rq, rc);
    job_done(rq);
    return;
  }
  rq->s = s;
  tether_session_set_secure(s, rq->secure);
  json_t *data = tether_session_data(s);
  rq->status = 200;
  switch (rq->route) {
  case R_INDEX:
    visits_inc(data);
    rq->html = index_page(s);
    break;
  case R_WHOAMI:
    visits_inc(data);
    rq->answer = whoami(s);
    break;
  case R_LOGIN: {
    char *user = body_field(rq, rq->ctype, "user");
    json_t *name = user && valid_text(user, 64) ? json_string(user) : NULL; /* NULL: not UTF-8 either */
    free(user);
    if (name == NULL) {
      rq->status = 400;
      rq->answer = json_pack("{s:s}", "error", "a user name (1-64 characters of UTF-8) is required");
      break;
    }
    /* a new id at login (session fixation), keeping the visits and the cart */
    rq->answer = json_deep_copy(data);
    json_object_set_new(rq->answer, "user", name);
    rq->pending = 1;
    rc = tether_session_regenerate_async(s, rq->w->astore, after_login, rq);
    if (rc < 0) after_login(rq, rc);
    return;
  }
  case R_LOGOUT:
    rq->pending = 1;
    rc = tether_session_destroy_async(s, rq->w->astore, after_logout, rq);
    if (rc < 0) after_logout(rq, rc);
    return;
  case R_CART: {
    char *item = body_field(rq, rq->ctype, "item");
    json_t *it = item && valid_text(item, 100) ? json_string(item) : NULL;
    free(item);
    if (it == NULL) {
      rq->status = 400;
      rq->answer = json_pack("{s:s}", "error", "an item (1-100 characters of UTF-8) is required");
      break;
    }
    json_t *cart = cart_of(data);
    if (json_array_size(cart) >= 100) {
      json_decref(it);
      rq->status = 400;
      rq->answer = json_pack("{s:s}", "error", "the cart is full (100 items)");
      break;
    }
    json_array_append_new(cart, it);
    if (rq->form) {
      rq->status = 303;
      rq->location = "/";
      rq->html = strdup("added\n");
    } else {
      rq->answer = whoami(s);
    }
    break;
  }
  }
  commit(rq);
}

static void on_pinged(void *arg, int rc) {
  request *rq = arg;
  if (!job_enter(rq)) return;
  if (rc < 0) {
    char reason[512];
    snprintf(reason, sizeof(reason), "%s", tether_last_error());
    utf8_clip(reason);
    log_detail("health check", reason);
    rq->status = 503;
    rq->answer = json_pack("{s:s,s:s}", "status", "unavailable", "server", the_app.name);
    if (rq->verbose) json_object_set_new(rq->answer, "reason", json_string(reason));
  } else {
    rq->status = 200;
    rq->answer =
        json_pack("{s:s,s:s,s:s}", "status", "ok", "server", the_app.name, "store", tether_store_kind(the_app.store));
  }
  if (rq->verbose) json_object_set_new(rq->answer, "store_url", json_string(tether_store_url(the_app.store)));
  job_done(rq);
}

/* Starts the store work of a request; answers at once when it completed without waiting, else suspends
 * the connection until job_done resumes it. */
static enum MHD_Result start_job(request *rq, struct MHD_Connection *conn, int route, int form, const char *cookie) {
  rq->conn = conn;
  rq->route = route;
  rq->form = form;
  rq->started = 1;
  rq->in_handler = 1;
  rq->pending = 1;
  int rc = route == R_HEALTH ? tether_astore_ping(rq->w->astore, on_pinged, rq)
                             : tether_session_load_async(the_app.sessions, rq->w->astore, cookie, on_loaded, rq);
  rq->in_handler = 0;
  if (rc < 0) {
    rq->pending = 0;
    if (route == R_HEALTH)
      on_pinged(rq, rc);
    else {
      job_fail(rq, rc);
      job_done(rq);
    }
  }
  if (rq->ready) return job_answer(rq);
  rq->suspended = 1;
  rq->snext = rq->w->suspended;
  if (rq->snext) rq->snext->sprev = rq;
  rq->w->suspended = rq;
  MHD_suspend_connection(conn);
  return MHD_YES;
}

/* The immediate peer's address as text ("" when unknown). */
static void peer_ip(struct MHD_Connection *conn, char *out, size_t cap) {
  out[0] = '\0';
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  const struct sockaddr *sa = ci ? ci->client_addr : NULL;
  if (sa && sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
  else if (sa && sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)cap);
}

static int peer_is_loopback(struct MHD_Connection *conn) {
  char ip[64];
  peer_ip(conn, ip, sizeof(ip));
  tether_trusted_proxies lo = {0};
  tether_trusted_proxies_add(&lo, "127.0.0.0/8");
  tether_trusted_proxies_add(&lo, "::1");
  return tether_trusted_proxies_contains(&lo, ip);
}

static enum MHD_Result handle(struct MHD_Connection *conn, const char *url, const char *method, request *rq) {
  int route = R_OTHER;
  if (strcmp(url, "/") == 0)
    route = R_INDEX;
  else if (strcmp(url, "/whoami") == 0)
    route = R_WHOAMI;
  else if (strcmp(url, "/login") == 0)
    route = R_LOGIN;
  else if (strcmp(url, "/logout") == 0)
    route = R_LOGOUT;
  else if (strcmp(url, "/cart") == 0)
    route = R_CART;
  else if (strcmp(url, "/health") == 0)
    route = R_HEALTH;
  else if (strcmp(url, "/metrics") == 0)
    route = R_METRICS;
  else if (strcmp(url, "/api/me") == 0)
    route = R_API_ME;
  int is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0, is_post = strcmp(method, "POST") == 0;

  if (route == R_HEALTH) {
    const char *v = NULL;
    size_t vlen = 0;
    rq->verbose = MHD_lookup_connection_value_n(conn, MHD_GET_ARGUMENT_KIND, "verbose", 7, &v, &vlen) == MHD_YES &&
                  peer_is_loopback(conn);
    return start_job(rq, conn, route, 0, NULL);
  }
  if (route == R_METRICS) {
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    fprintf(f, "# HELP tether_app_requests_total Requests answered, by route and status class.\n"
               "# TYPE tether_app_requests_total counter\n");
    static const char *classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    for (int r = 0; r < R_COUNT; r++)
      for (int k = 0; k < 5; k++)
        fprintf(f, "tether_app_requests_total{app=\"%s\",route=\"%s\",code_class=\"%s\"} %llu\n", the_app.name,
                route_names[r], classes[k], (unsigned long long)atomic_load(&the_app.requests[r][k]));
    int need = tether_metrics_prometheus(the_app.store, NULL, 0);
    char *m = malloc((size_t)need + 1);
    tether_metrics_prometheus(the_app.store, m, (size_t)need + 1);
    fputs(m, f);
    free(m);
    fclose(f);
    enum MHD_Result rc = send_text(conn, route, 200, "text/plain; version=0.0.4", out, NULL, NULL);
    free(out);
    return rc;
  }
  if (route == R_OTHER) return send_json(conn, route, 404, json_pack("{s:s}", "error", "not found"), NULL);
  if ((route == R_INDEX || route == R_WHOAMI || route == R_API_ME) && !is_get)
    return send_json(conn, route, 405, json_pack("{s:s}", "error", "use GET"), NULL);
  if ((route == R_LOGIN || route == R_LOGOUT || route == R_CART) && !is_post)
    return send_json(conn, route, 405, json_pack("{s:s}", "error", "use POST"), NULL);
  if (rq->too_large) return send_json(conn, route, 413, json_pack("{s:s}", "error", "body too large"), NULL);
  if (route == R_API_ME) return api_me(conn);

  const char *cookie = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Cookie");
  const char *ctype = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
  if (route == R_LOGIN && wants_token(conn, rq, ctype)) return token_login(conn, rq, ctype);
  int form = ctype == NULL || strncmp(ctype, "application/json", 16) != 0;
  rq->ctype = ctype;
  char ip[64];
  peer_ip(conn, ip, sizeof(ip)); /* no TLS here: secure only through a trusted proxy */
  rq->secure = tether_request_is_secure(0, ip, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Forwarded-Proto"),
                                        &the_app.trusted);
  return start_job(rq, conn, route, form, cookie);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
  (void)version;
  worker *w = cls;
  request *rq = *con_cls;
  if (rq == NULL) {
    rq = calloc(1, sizeof(*rq));
    rq->w = w;
    *con_cls = rq;
    w->in_flight++;
    return MHD_YES;
  }
  if (rq->ready) return job_answer(rq); /* resumed: the store work is done */
  if (rq->started) return MHD_YES;      /* still waiting (a spurious call) */
  if (*upload_size) {
    if (rq->len + *upload_size > MAX_BODY) {
      rq->too_large = 1;
    } else {
      rq->body = realloc(rq->body, rq->len + *upload_size + 1);
      memcpy(rq->body + rq->len, upload, *upload_size);
      rq->len += *upload_size;
      rq->body[rq->len] = '\0';
    }
    *upload_size = 0;
    return MHD_YES;
  }
  return handle(conn, url, method, rq);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode t) {
  (void)conn;
  (void)t;
  worker *w = cls;
  request *rq = *con_cls;
  if (rq) {
    if (rq->suspended) unlink_suspended(rq);
    if (rq->pending)
      rq->orphan = 1; /* a store call still refers to it: its callback frees it */
    else
      request_free(rq);
    w->in_flight--;
  }
  *con_cls = NULL;
}

/* ---- the worker threads ---- */

static MHD_socket listener = MHD_INVALID_SOCKET;

static void arm_daemon_timer(worker *w);

static void run_daemon(worker *w) {
  MHD_run(w->d);
  arm_daemon_timer(w);
}

static void on_daemon_timer(uv_timer_t *t) { run_daemon(t->data); }

static void arm_daemon_timer(worker *w) {
  MHD_UNSIGNED_LONG_LONG ms;
  if (MHD_get_timeout(w->d, &ms) == MHD_YES)
    uv_timer_start(&w->timer, on_daemon_timer, ms, 0);
  else
    uv_timer_stop(&w->timer);
}

static void on_daemon_events(uv_poll_t *p, int status, int events) {
  (void)status;
  (void)events;
  run_daemon(p->data);
}

static void worker_close_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* Stopping: no new connections (quiesced daemon, listening socket shut down), requests in flight finish
 * (up to 10 s), then the daemon stops and the loop ends. */
static void on_drain(uv_timer_t *t) {
  worker *w = t->data;
  run_daemon(w);
  if (w->in_flight > 0 && tether_now_ms() < w->drain_until_ms) return;
  uv_timer_stop(t);
  /* past the grace period, requests still waiting for the store are answered 503 (the store's late
   * answers are dropped), so that no connection is left suspended when the daemon stops */
  while (w->suspended) {
    request *rq = w->suspended;
    unlink_suspended(rq);
    rq->suspended = 0;
    rq->abandoned = 1;
    rq->ready = 1;
    rq->err = TETHER_EUNAVAIL;
    snprintf(rq->detail, sizeof(rq->detail), "stopping: the session store did not answer within the grace period");
    MHD_resume_connection(rq->conn);
  }
  MHD_run(w->d);
  MHD_run(w->d);
  uv_poll_stop(&w->poll); /* the daemon closes its epoll set */
  MHD_stop_daemon(w->d);
  w->d = NULL;
  tether_astore_close(w->astore);
  uv_walk(&w->loop, worker_close_walk, NULL);
}

static void on_stop(uv_async_t *a) {
  worker *w = a->data;
  MHD_socket l = MHD_quiesce_daemon(w->d);
  /* refuse new connections at once (Linux: a listening socket shut down stops listening), so that a
   * balancer retries them elsewhere; the socket is closed after every daemon has stopped */
  if (l != MHD_INVALID_SOCKET) shutdown(l, SHUT_RDWR);
  w->drain_until_ms = tether_now_ms() + 10000;
  uv_timer_start(&w->drain, on_drain, 0, 10);
}

static void *worker_main(void *arg) {
  worker *w = arg;
  uv_run(&w->loop, UV_RUN_DEFAULT);
  uv_loop_close(&w->loop);
  return NULL;
}

static int worker_start(worker *w) {
  uv_loop_init(&w->loop);
  if (tether_astore_wrap(&w->loop, the_app.store, &w->astore) < 0) return -1;
  w->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, w,
                          MHD_OPTION_LISTEN_SOCKET, listener, MHD_OPTION_NOTIFY_COMPLETED, on_completed, w,
                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)75, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                          (size_t)16384, MHD_OPTION_END);
  if (w->d == NULL) return -1;
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(w->d, MHD_DAEMON_INFO_EPOLL_FD);
  if (info == NULL) return -1;
  uv_poll_init(&w->loop, &w->poll, info->epoll_fd);
  uv_timer_init(&w->loop, &w->timer);
  uv_timer_init(&w->loop, &w->drain);
  uv_async_init(&w->loop, &w->stop, on_stop);
  uv_idle_init(&w->loop, &w->kick);
  w->poll.data = w->timer.data = w->drain.data = w->stop.data = w->kick.data = w;
  uv_poll_start(&w->poll, UV_READABLE, on_daemon_events);
  arm_daemon_timer(w);
  return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : -1;
}

static const char *resolve_secret(const char *arg) {
  if (strncmp(arg, "env:", 4) == 0) {
    const char *v = getenv(arg + 4);
    if (v == NULL || *v == '\0') {
      fprintf(stderr, "tether-app: environment variable %s is not set\n", arg + 4);
      exit(2);
    }
    return v;
  }
  return arg;
}

/* The signer and the verifier for API tokens: HS256 pinned, the secret's bytes as given (as jsonwebtoken
 * takes process.env.JWT_SECRET), the default leeway. */
static int tokens_setup(const char *secret, int weak_secret_ok) {
  tether_jwt_verify_options o;
  tether_jwt_verify_options_init(&o);
  o.weak_secret_ok = weak_secret_ok;
  int rc = tether_jwt_signer_new_secret_ex(secret, strlen(secret), TETHER_JWT_HS256, NULL,
                                           weak_secret_ok ? TETHER_JWT_WEAK_SECRET_OK : 0, &the_app.signer);
  if (rc == 0) rc = tether_jwt_verifier_new(&o, &the_app.verifier);
  if (rc == 0) rc = tether_jwt_verifier_add_secret(the_app.verifier, secret, strlen(secret), TETHER_JWT_HS256, NULL);
  return rc < 0 ? rc : 0;
}

int main(int argc, char **argv) {
  static const struct option opts[] = {{"listen", required_argument, NULL, 'l'},
                                       {"name", required_argument, NULL, 'n'},
                                       {"sessions", required_argument, NULL, 's'},
                                       {"secret", required_argument, NULL, 'k'},
                                       {"jwt-secret", required_argument, NULL, 'j'},
                                       {"cookie-secure", optional_argument, NULL, 'S'},
                                       {"trust-proxy", required_argument, NULL, 'P'},
                                       {"absolute-timeout", required_argument, NULL, 'A'},
                                       {"weak-secret-ok", no_argument, NULL, 'W'},
                                       {"max-age", required_argument, NULL, 'm'},
                                       {"threads", required_argument, NULL, 't'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *listen_at = "127.0.0.1:9001", *url = "sqlite:./var/sessions.db";
  tether_session_options so;
  tether_session_options_init(&so);
  so.cookie.max_age_ms = 3600 * 1000;
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  int threads = ncpu > 0 && ncpu < 64 ? (int)ncpu : 2, ch, weak_secret_ok = 0;
  the_app.name = "app";
  while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (ch) {
    case 'l':
      listen_at = optarg;
      break;
    case 'n':
      the_app.name = optarg;
      break;
    case 's':
      url = optarg;
      break;
    case 'k':
      if (so.secret_count == TETHER_MAX_SECRETS) {
        fprintf(stderr, "tether-app: at most %d secrets\n", TETHER_MAX_SECRETS);
        return 2;
      }
      so.secret[so.secret_count++] = resolve_secret(optarg);
      break;
    case 'j':
      setenv("JWT_SECRET", resolve_secret(optarg), 1);
      break;
    case 'S':
      /* "--cookie-secure auto" as well as "--cookie-secure=auto"; alone it means on (as it always did) */
      if (optarg == NULL && optind < argc &&
          (!strcmp(argv[optind], "auto") || !strcmp(argv[optind], "on") || !strcmp(argv[optind], "off") ||
           argv[optind][0] != '-'))
        optarg = argv[optind++];
      if (optarg == NULL || strcmp(optarg, "on") == 0) {
        so.cookie.secure = 1;
      } else if (strcmp(optarg, "auto") == 0) {
        so.cookie.secure = TETHER_COOKIE_SECURE_AUTO;
      } else if (strcmp(optarg, "off") == 0) {
        so.cookie.secure = 0;
      } else {
        fprintf(stderr, "tether-app: --cookie-secure takes auto, on or off, got %s\n", optarg);
        return 2;
      }
      break;
    case 'P':
      if (tether_trusted_proxies_add(&the_app.trusted, optarg) < 0) {
        fprintf(stderr, "tether-app: --trust-proxy: %s\n", tether_last_error());
        return 2;
      }
      break;
    case 'A': {
      char *end;
      long v = strtol(optarg, &end, 10);
      if (end == optarg || *end || v < 0 || v > 400L * 86400) {
        fprintf(stderr, "tether-app: --absolute-timeout takes seconds (0 to 400 days)\n");
        return 2;
      }
      so.absolute_timeout_ms = (int64_t)v * 1000;
      break;
    }
    case 'W':
      weak_secret_ok = 1;
      break;
    case 'm': {
      char *end;
      long v = strtol(optarg, &end, 10);
      if (*end || v < 0 || v > 400L * 86400) {
        fprintf(stderr, "tether-app: --max-age takes seconds (0 to 400 days)\n");
        return 2;
      }
      so.cookie.max_age_ms = v ? v * 1000 : -1;
      break;
    }
    case 't': {
      char *end;
      long v = strtol(optarg, &end, 10);
      if (end == optarg || *end || v < 1 || v > 256) {
        fprintf(stderr, "tether-app: --threads takes 1 to 256, got %s\n", optarg);
        return 2;
      }
      threads = (int)v;
      break;
    }
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "tether-app: unexpected argument %s (see --help)\n", argv[optind]);
    return 2;
  }
  if (so.secret_count == 0 && getenv("TETHER_SECRET")) so.secret[so.secret_count++] = getenv("TETHER_SECRET");
  if (so.secret_count == 0) {
    fprintf(stderr, "tether-app: a cookie secret is required: --secret S (or env:NAME, or $TETHER_SECRET)\n");
    return 2;
  }
  const char *jwt_secret = getenv("JWT_SECRET"); /* --jwt-secret has set it */
  if (jwt_secret && *jwt_secret && tokens_setup(jwt_secret, weak_secret_ok) < 0) {
    fprintf(stderr, "tether-app: --jwt-secret: %s\n", tether_last_error());
    return 2;
  }
  char host[64];
  const char *colon = strrchr(listen_at, ':');
  struct sockaddr_in sa = {.sin_family = AF_INET};
  if (colon == NULL || (size_t)(colon - listen_at) >= sizeof(host)) {
    fprintf(stderr, "tether-app: --listen takes IP:PORT\n");
    return 2;
  }
  memcpy(host, listen_at, (size_t)(colon - listen_at));
  host[colon - listen_at] = '\0';
  int port = atoi(colon + 1);
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 || port < 1 || port > 65535) {
    fprintf(stderr, "tether-app: --listen takes IP:PORT, got %s\n", listen_at);
    return 2;
  }
  sa.sin_port = htons((uint16_t)port);
  if (strncmp(url, "sqlite:./var/", 13) == 0) mkdir("var", 0755);
  int rc = tether_store_open(url, &the_app.store);
  if (rc < 0) {
    char *shown = tether_url_redact(url); /* never the password */
    fprintf(stderr, "tether-app: --sessions %s: %s\n", shown, tether_last_error());
    free(shown);
    return 2;
  }
  so.store = the_app.store;
  if (tether_sessions_new(&so, &the_app.sessions) < 0) {
    fprintf(stderr, "tether-app: %s\n", tether_last_error());
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (listener < 0 || bind(listener, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(listener, 1024) < 0) {
    fprintf(stderr, "tether-app: cannot listen on %s: %s\n", listen_at, strerror(errno));
    return 1;
  }
  /* SIGTERM and SIGINT wait for the main thread's sigwait: blocked here, before the workers inherit it */
  sigset_t stop_set;
  sigemptyset(&stop_set);
  sigaddset(&stop_set, SIGTERM);
  sigaddset(&stop_set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
  /* stores other than redis:// run their blocking calls on libuv's thread pool, shared by every loop: as
   * many calls in flight as the 16 threads of old, unless the environment says otherwise */
  if (getenv("UV_THREADPOOL_SIZE") == NULL) setenv("UV_THREADPOOL_SIZE", "16", 1);
  worker *workers = calloc((size_t)threads, sizeof(*workers));
  for (int i = 0; i < threads; i++) {
    if (worker_start(&workers[i]) < 0) {
      fprintf(stderr, "tether-app: cannot start worker %d: %s\n", i, errno ? strerror(errno) : tether_last_error());
      return 1;
    }
  }
  fprintf(stderr, "tether-app %s: listening on %s, %d threads, sessions in %s, API tokens %s\n", the_app.name,
          listen_at, threads, tether_store_url(the_app.store), the_app.signer ? "on (HS256)" : "off (no JWT secret)");
  int sig = 0;
  sigwait(&stop_set, &sig);
  atomic_store(&stopping, 1);
  for (int i = 0; i < threads; i++) uv_async_send(&workers[i].stop);
  for (int i = 0; i < threads; i++) pthread_join(workers[i].thread, NULL);
  close(listener); /* quiesced: ours to close, after every daemon stopped */
  free(workers);
  tether_sessions_free(the_app.sessions);
  tether_store_close(the_app.store);
  tether_jwt_verifier_free(the_app.verifier);
  tether_jwt_signer_free(the_app.signer);
  fprintf(stderr, "tether-app %s: stopped\n", the_app.name);
  return 0;
}
