/* tether-lab: simulated users. libcurl's multi interface runs on the lab's libuv loop (a uv_poll per
 * socket, one uv_timer for curl's timeouts), so thousands of users cost one thread. Each user has its
 * own easy handle, hence its own cookie jar, and its own source address in 127.0.0.0/8 (CURLOPT_INTERFACE)
 * so that ip_hash and consistent hashing see distinct clients; --nat K puts them behind K addresses.
 *
 * A user logs in, then loops: GET /whoami (the visit counter goes up by one), think, POST /cart (the cart
 * grows by one), think; after --session-requests requests it logs out and closes its browser (drops its
 * cookies), then logs in again. A user whose visits or cart went back, or whose login disappeared, has
 * lost its session: counted, then it logs in again (login keeps the visits and the cart, so a login whose
 * answer has fewer than the user had is a loss too). A failed request (no answer, or a status other than
 * 200) is an error, not a loss: the user carries on with what it knew. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lab.h"

/* ---- libcurl multi on libuv ---- */

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
    c = calloc(1, sizeof(*c));
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
  lab_http *h = calloc(1, sizeof(*h));
  h->loop = loop;
  h->timer = malloc(sizeof(*h->timer));
  uv_timer_init(loop, h->timer);
  h->timer->data = h;
  h->multi = curl_multi_init();
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timer_set);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
  h->json_headers = curl_slist_append(NULL, "Content-Type: application/json");
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
    x->body = realloc(x->body, cap);
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
  x->easy = curl_easy_init();
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

/* ---- users ---- */

typedef enum step { S_LOGIN, S_WHOAMI, S_CART, S_LOGOUT } step;

typedef struct user {
  lab_xfer x;
  uv_timer_t think;
  struct lab_users *set;
  int id;
  char addr[40]; /* "host!127.1.5.1" */
  char base[64]; /* "http://u17.lab.test:PORT": a host name of its own, resolved to 127.0.0.1 */
  struct curl_slist *resolve;
  char name[24];
  step step;   /* the request in flight, or the next one */
  long visits; /* as last confirmed by the server */
  long cart;   /* items, as last confirmed */
  int logged_in;
  int left;       /* requests left in this login session */
  unsigned items; /* names the next item */
  int lost;       /* sessions this user lost */
  int app;        /* the app that last served its session (-1: none) */
} user;

struct lab_users {
  uv_loop_t *loop;
  lab_http *http;
  const lab_opts *o;
  lab_measure *m;
  int port;
  user *u;
  int n;
  int stopping;
  int active;               /* requests in flight */
  int open_timers;          /* until 0, the array stays allocated */
  int on_app[LAB_MAX_APPS]; /* users whose session was last served by each app */
  int freeing;
  uint64_t rng;
};

static uint32_t next_rand(lab_users *s) {
  /* xorshift64*: the load's randomness, reproducible with --seed */
  s->rng ^= s->rng >> 12;
  s->rng ^= s->rng << 25;
  s->rng ^= s->rng >> 27;
  return (uint32_t)((s->rng * 2685821657736338717ULL) >> 32);
}

static uint64_t think_ms(lab_users *s) {
  int t = s->o->think_ms;
  if (t <= 1) return (uint64_t)(t < 0 ? 0 : t);
  return (uint64_t)(t / 2 + (int)(next_rand(s) % (uint32_t)t)); /* uniform in [t/2, 3t/2) */
}

void lab_user_address(int i, int nat, char *buf, size_t n) {
  int k = nat > 0 ? i % nat : i;
  /* distinct /24s: ip_hash hashes the first three octets */
  snprintf(buf, n, "127.%d.%d.1", 1 + k / 250, 1 + k % 250);
}

static void on_think(uv_timer_t *t);

static void issue(user *u) {
  lab_users *s = u->set;
  char url[128], body[96];
  const char *path = "/whoami", *json = NULL;
  switch (u->step) {
  case S_LOGIN:
    path = "/login";
    snprintf(body, sizeof(body), "{\"user\":\"%s\"}", u->name);
    json = body;
    break;
  case S_WHOAMI:
    break;
  case S_CART:
    path = "/cart";
    snprintf(body, sizeof(body), "{\"item\":\"item%u\"}", u->items++);
    json = body;
    break;
  case S_LOGOUT:
    path = "/logout";
    json = "{}";
    break;
  }
  snprintf(url, sizeof(url), "%s%s", u->base, path);
  if (lab_xfer_start(&u->x, url, json, 5000) == 0)
    s->active++;
  else if (!s->stopping)
    uv_timer_start(&u->think, on_think, 100, 0); /* try again, rather than stall */
}

static void on_think(uv_timer_t *t) {
  user *u = t->data;
  if (!u->set->stopping) issue(u);
}

static void schedule(user *u) {
  if (u->set->stopping) return;
  uv_timer_start(&u->think, on_think, think_ms(u->set), 0);
}

static void close_browser(user *u) {
  curl_easy_setopt(u->x.easy, CURLOPT_COOKIELIST, "ALL"); /* the session cookie and the sticky cookie */
  if (u->app >= 0) u->set->on_app[u->app]--;
  u->app = -1;
  u->logged_in = 0;
  u->visits = 0;
  u->cart = 0;
}

/* Reads the answer of /login, /whoami or /cart: {"server","session_id","visits","user","cart"}. */
static int read_state(const lab_xfer *x, const char *name, long *visits, long *cart, int *is_user) {
  json_error_t e;
  json_t *j = json_loadb(x->body ? x->body : "", x->len, 0, &e);
  if (!json_is_object(j)) {
    json_decref(j);
    return -1;
  }
  json_t *who = json_object_get(j, "user");
  *is_user = json_is_string(who) && strcmp(json_string_value(who), name) == 0;
  *visits = (long)json_integer_value(json_object_get(j, "visits"));
  json_t *c = json_object_get(j, "cart");
  *cart = json_is_array(c) ? (long)json_array_size(c) : 0;
  json_decref(j);
  return 0;
}

static void on_done(lab_xfer *x) {
  user *u = x->owner;
  lab_users *s = u->set;
  s->active--;
  lab_measure_request(s->m, x);
  int ok = x->rc == CURLE_OK && x->status == 200;
  int app = ok && strncmp(x->served_by, "app", 3) == 0 ? atoi(x->served_by + 3) - 1 : -1;
  if (app >= 0 && app < LAB_MAX_APPS && app != u->app) {
    if (u->app >= 0) s->on_app[u->app]--;
    s->on_app[app]++;
    u->app = app;
  }
  long visits = 0, cart = 0;
  int is_user = 0;
  if (ok && u->step != S_LOGOUT && read_state(x, u->name, &visits, &cart, &is_user) < 0) ok = 0;
  switch (u->step) {
  case S_LOGIN:
    if (ok && is_user) {
      /* login keeps the session's visits and cart: less than we had means the session was not found */
      if (visits < u->visits || cart < u->cart) {
        lab_measure_lost(s->m, u->lost == 0);
        u->lost++;
      }
      u->logged_in = 1;
      u->visits = visits;
      u->cart = cart;
      u->left = s->o->session_requests;
      u->step = S_WHOAMI;
    }
    break;
  case S_WHOAMI:
  case S_CART:
    if (ok) {
      int lost = u->step == S_WHOAMI ? (!is_user || visits < u->visits + 1 || cart < u->cart)
                                     : (!is_user || cart < u->cart + 1 || visits < u->visits);
      if (lost) {
        lab_measure_lost(s->m, u->lost == 0);
        u->lost++;
        u->visits = visits; /* the state of the session the server started instead */
        u->cart = cart;
        u->step = S_LOGIN;
        break;
      }
      u->visits = visits;
      u->cart = cart;
    }
    if (--u->left <= 0)
      u->step = S_LOGOUT;
    else
      u->step = u->step == S_WHOAMI ? S_CART : S_WHOAMI;
    break;
  case S_LOGOUT:
    close_browser(u); /* whether or not the logout went through, the user is gone */
    u->step = S_LOGIN;
    break;
  }
  schedule(u);
}

lab_users *lab_users_new(uv_loop_t *loop, lab_http *http, const lab_opts *o, int port, lab_measure *m) {
  lab_users *s = calloc(1, sizeof(*s));
  s->loop = loop;
  s->http = http;
  s->o = o;
  s->m = m;
  m->users_on = s->on_app;
  s->n = o->users;
  s->rng = 0x9e3779b97f4a7c15ULL ^ o->seed;
  if (s->rng == 0) s->rng = 1;
  s->port = port;
  s->u = calloc((size_t)s->n, sizeof(user));
  for (int i = 0; i < s->n; i++) {
    user *u = &s->u[i];
    u->set = s;
    u->id = i;
    u->app = -1;
    snprintf(u->name, sizeof(u->name), "user%d", i + 1);
    char a[24];
    lab_user_address(i, o->nat, a, sizeof(a));
    snprintf(u->addr, sizeof(u->addr), "host!%s", a);
    lab_xfer_init(&u->x, http, u, on_done);
    curl_easy_setopt(u->x.easy, CURLOPT_INTERFACE, u->addr);
    /* Each user's own host name keeps its connections apart in libcurl's connection cache: with one
     * name for all, every new request would poll every idle connection of every user. Browsers of
     * different people never share a connection anyway. */
    char entry[96];
    snprintf(u->base, sizeof(u->base), "http://u%d.lab.test:%d", i + 1, port);
    snprintf(entry, sizeof(entry), "u%d.lab.test:%d:127.0.0.1", i + 1, port);
    u->resolve = curl_slist_append(NULL, entry);
    curl_easy_setopt(u->x.easy, CURLOPT_RESOLVE, u->resolve);
    curl_easy_setopt(u->x.easy, CURLOPT_DNS_CACHE_TIMEOUT, -1L);
    uv_timer_init(loop, &u->think);
    u->think.data = u;
    s->open_timers++;
  }
  return s;
}

void lab_users_set_measure(lab_users *s, lab_measure *m) {
  s->m = m;
  m->users_on = s->on_app;
}

void lab_users_start(lab_users *s) {
  s->stopping = 0;
  uv_update_time(s->loop);
  /* a ramp over two think times, so the users do not move in lockstep */
  uint32_t spread = (uint32_t)(s->o->think_ms > 0 ? 2 * s->o->think_ms : 1);
  for (int i = 0; i < s->n; i++) {
    user *u = &s->u[i];
    if (u->x.active || uv_is_active((uv_handle_t *)&u->think)) continue;
    uv_timer_start(&u->think, on_think, next_rand(s) % spread, 0);
  }
}

static int users_idle(void *arg) { return ((lab_users *)arg)->active == 0; }

void lab_users_stop(lab_users *s) {
  s->stopping = 1;
  for (int i = 0; i < s->n; i++) uv_timer_stop(&s->u[i].think);
  lab_wait(s->loop, users_idle, s, 8000);
}

static void users_release(lab_users *s) {
  free(s->u);
  free(s);
}

static void on_timer_closed(uv_handle_t *h) {
  user *u = h->data;
  lab_users *s = u->set;
  if (--s->open_timers == 0 && s->freeing) users_release(s);
}

void lab_users_free(lab_users *s) {
  if (s == NULL) return;
  s->stopping = 1;
  s->freeing = 1;
  for (int i = 0; i < s->n; i++) {
    lab_xfer_cleanup(&s->u[i].x);
    curl_slist_free_all(s->u[i].resolve);
    uv_close((uv_handle_t *)&s->u[i].think, on_timer_closed);
  }
  if (s->n == 0) users_release(s);
}
