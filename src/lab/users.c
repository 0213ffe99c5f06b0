/* tether-lab: simulated users. libcurl's multi interface runs on the lab's libuv loop (http.c: a uv_poll per
 * socket, one uv_timer for curl's timeouts), so thousands of users cost one thread. Each user has its
 * own easy handle, hence its own cookie jar, and its own source address in 127.0.0.0/8 (CURLOPT_INTERFACE)
 * so that ip_hash and consistent hashing see distinct clients; --nat K puts them behind K addresses.
 *
 * A user logs in, then loops: GET /whoami (the visit counter goes up by one), think, POST /cart (the cart
 * grows by one), think; after --session-requests requests it logs out and closes its browser (drops its
 * cookies), then logs in again. A user whose visits or cart went back, or whose login disappeared, has
 * lost its session: counted, then it closes its browser too and logs in again as a new visitor (login keeps
 * the visits and the cart, so a login whose answer has fewer than the user had is a loss too).
 *
 * Starting over without cookies after a loss is what makes one lost session one count on all three sides
 * (the users here, the apps' tether_sessions_missing_total, the balancer's session_monitor): the session
 * the server made in the loss's answer holds nothing the user cares about, and signing in again with its
 * cookie would count a second loss wherever the login lands on another server than the one that made it
 * (a consistent hash with bounded load going back home after passing over an overloaded server): the app
 * would count the cookie it does not know, the edge would call the login's new id "expected", and the users
 * would see the visits of that throwaway session go. See docs/monitoring.md, "What counts as lost".
 *
 * A failed request (no answer, or a status other than 200) is an error, not a loss: the user carries on
 * with what it knew. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lab.h"
#include "xalloc.h"

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
        close_browser(u); /* the session the server started instead is not worth keeping: start over */
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
  lab_users *s = xcalloc(1, sizeof(*s));
  s->loop = loop;
  s->http = http;
  s->o = o;
  s->m = m;
  m->users_on = s->on_app;
  s->n = o->users;
  s->rng = 0x9e3779b97f4a7c15ULL ^ o->seed;
  if (s->rng == 0) s->rng = 1;
  s->port = port;
  s->u = xcalloc((size_t)s->n, sizeof(user));
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
    u->resolve = xcheck(curl_slist_append(NULL, entry), "curl_slist_append");
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
