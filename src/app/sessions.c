/* tether-app: the routes that live in the session (/, /whoami, /login, /logout, /cart) and /health: load
 * the session, apply the route, commit, answer; every bit of user state is in the store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "html.h"
#include "xalloc.h"

#define CART_MAX 100

static int64_t visits_inc(tether_session *s) {
  int64_t v = 0;
  tether_session_get_int(s, "visits", &v); /* 0 when absent or not an integer */
  tether_session_set_int(s, "visits", v + 1);
  return v + 1;
}

static json_t *cart_of(const tether_session *s) {
  char *text = tether_session_get_json(s, "cart");
  if (text == NULL) return NULL;
  json_t *cart = xcheck(json_loads(text, JSON_DECODE_ANY, NULL), "session data");
  free(text);
  if (json_is_array(cart)) return cart;
  json_decref(cart);
  return NULL;
}

/* The /whoami answer, {"server","session_id","visits","user","cart"} and a newline, printed straight from
 * the members' stored text (JSON.stringify's form, as Express answers them) rather than through a jansson
 * tree. NULL when the app's name is not UTF-8 (the answer cannot be encoded: 500). */
static char *whoami(const tether_session *s) {
  if (the_app.name_json == NULL) return NULL;
  int64_t visits = 0;
  tether_session_get_int(s, "visits", &visits);
  char *user = tether_session_get_json(s, "user"), *cart = tether_session_get_json(s, "cart");
  if (cart && cart[0] != '[') {
    free(cart);
    cart = NULL;
  }
  char num[24];
  snprintf(num, sizeof(num), "%lld", (long long)visits);
  const char *parts[] = {"{\"server\":",
                         the_app.name_json,
                         ",\"session_id\":\"",
                         tether_session_id(s),
                         "\",\"visits\":",
                         num,
                         ",\"user\":",
                         user ? user : "null",
                         ",\"cart\":",
                         cart ? cart : "[]",
                         "}\n"};
  size_t len[sizeof(parts) / sizeof(parts[0])], total = 1;
  for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) total += len[i] = strlen(parts[i]);
  char *out = xmalloc(total), *o = out;
  for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) o = (char *)memcpy(o, parts[i], len[i]) + len[i];
  *o = '\0';
  free(user);
  free(cart);
  return out;
}

static char *index_page(tether_session *s) {
  char *out = NULL;
  size_t n = 0;
  FILE *f = xmemstream(&out, &n);
  const char *user = tether_session_get_string(s, "user");
  int64_t visits = 0;
  tether_session_get_int(s, "visits", &visits);
  fprintf(f, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Tether demo: ");
  html_escape(f, the_app.name);
  fprintf(f, "</title>\n<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}"
             "#server{font-size:2em;font-weight:bold}code{background:#eee;padding:0 .3em}</style></head>\n<body>\n");
  fprintf(f, "<p>Answered by <span id=\"server\">");
  html_escape(f, the_app.name);
  fprintf(f, "</span></p>\n<p>Visits in this session: <span id=\"visits\">%lld</span></p>\n", (long long)visits);
  if (user) {
    fprintf(f, "<p>Logged in as <span id=\"user\">");
    html_escape(f, user);
    fprintf(f, "</span></p>\n<form method=\"post\" action=\"/logout\"><button id=\"logout\">Log out</button></form>\n");
  } else {
    fprintf(f, "<form method=\"post\" action=\"/login\"><label>Name <input id=\"name\" name=\"user\" "
               "value=\"alice\"></label> <button id=\"login\">Log in</button></form>\n");
  }
  fprintf(f, "<p>Cart: <span id=\"cart\">");
  json_t *cart = cart_of(s), *item;
  size_t i;
  if (json_array_size(cart)) {
    json_array_foreach(cart, i, item) {
      if (i) fputs(", ", f);
      if (json_is_string(item)) html_escape(f, json_string_value(item));
    }
  } else {
    fputs("empty", f);
  }
  json_decref(cart);
  fprintf(f,
          "</span></p>\n<form method=\"post\" action=\"/cart\"><input name=\"item\" value=\"book\"> "
          "<button id=\"add\">Add to cart</button></form>\n"
          "<p>Session id: <code id=\"sid\">%.8s&hellip;</code> in the <code>%s</code> store. Stop this app and "
          "reload: another one answers, with the same visits and cart.</p>\n",
          tether_session_id(s), tether_store_kind(the_app.store));
  if (the_app.dashboard_url) {
    fputs("<p><a id=\"dashboard\" href=\"", f);
    html_escape(f, the_app.dashboard_url);
    fputs("\">The balancer's dashboard</a>: which app answers, requests, session loss; drain an app.</p>\n", f);
  }
  fputs("</body></html>\n", f);
  xmemstream_close(f);
  return out;
}

/* A form's answer: see other, back to the page. */
static void redirect_home(request *rq, const char *text) {
  rq->status = 303;
  rq->location = "/";
  rq->html = xstrdup(text);
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
  /* the visits and the cart, with the user */
  char *kept = xcheck(json_dumps(rq->answer, JSON_COMPACT | JSON_PRESERVE_ORDER), "session data");
  tether_session_merge_json(rq->s, kept);
  free(kept);
  json_decref(rq->answer);
  rq->answer = NULL;
  if (rq->form)
    redirect_home(rq, "logged in\n");
  else
    rq->json = whoami(rq->s);
  job_commit(rq);
}

static void after_logout(void *arg, int rc) {
  request *rq = arg;
  if (!job_enter(rq)) return;
  if (rc < 0) {
    job_fail(rq, rc);
    job_done(rq);
    return;
  }
  if (rq->form)
    redirect_home(rq, "logged out\n");
  else
    rq->answer = json_pack("{s:b,s:s}", "ok", 1, "server", the_app.name);
  job_commit(rq);
}

/* POST /login: a new id (session fixation), keeping the visits and the cart. 1 when the store was asked
 * (after_login answers), 0 when the answer is ready. */
static int route_login(request *rq, tether_session *s) {
  char *user = body_field(rq, rq->ctype, "user");
  json_t *name = user && valid_text(user, 64) ? json_string(user) : NULL; /* NULL: not UTF-8 either */
  free(user);
  if (name == NULL) {
    rq->status = 400;
    rq->answer = json_pack("{s:s}", "error", "a user name (1-64 characters of UTF-8) is required");
    return 0;
  }
  char *data = xcheck(tether_session_data_json(s), "session data");
  rq->answer = xcheck(json_loads(data, 0, NULL), "session data");
  free(data);
  json_object_set_new(rq->answer, "user", name);
  rq->pending = 1;
  int rc = tether_session_regenerate_async(s, rq->w->astore, after_login, rq);
  if (rc < 0) after_login(rq, rc);
  return 1;
}

/* POST /cart: one more item, up to CART_MAX. */
static void route_cart(request *rq, tether_session *s) {
  char *item = body_field(rq, rq->ctype, "item");
  int ok = item && valid_utf8_text(item, 100);
  if (!ok) {
    rq->status = 400;
    rq->answer = json_pack("{s:s}", "error", "an item (1-100 characters of UTF-8) is required");
  } else if (tether_session_array_length(s, "cart") >= CART_MAX) {
    rq->status = 400;
    rq->answer = json_pack("{s:s}", "error", "the cart is full (100 items)");
  } else {
    tether_session_array_append_string(s, "cart", item);
    if (rq->form)
      redirect_home(rq, "added\n");
    else
      rq->json = whoami(s);
  }
  free(item);
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
  rq->status = 200;
  switch (rq->route) {
  case R_INDEX:
    visits_inc(s);
    rq->html = index_page(s);
    break;
  case R_WHOAMI:
    visits_inc(s);
    rq->json = whoami(s);
    break;
  case R_LOGIN:
    if (route_login(rq, s)) return;
    break;
  case R_LOGOUT:
    rq->pending = 1;
    rc = tether_session_destroy_async(s, rq->w->astore, after_logout, rq);
    if (rc < 0) after_logout(rq, rc);
    return;
  case R_CART:
    route_cart(rq, s);
    break;
  }
  job_commit(rq);
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

/* Starts the store work of a request; answers at once when it completed without waiting, else leaves it
 * unanswered until job_done. */
enum MHD_Result start_job(request *rq, struct MHD_Connection *conn, int route, int form, const char *cookie) {
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
  /* not suspended: libmicrohttpd 0.9.75 takes a suspended socket out of its epoll set and puts it back
   * after (two epoll_ctl and a read that gets EAGAIN per request); unanswered, the connection stays in
   * the set and on the daemon's ready list, and the handler is called again until job_done */
  rq->waiting = 1;
  rq->snext = rq->w->waiting;
  if (rq->snext) rq->snext->sprev = rq;
  rq->w->waiting = rq;
  rq->w->n_waiting++;
  return MHD_YES;
}
