/* Interop with the real thing: libtether's sessions (redis store) and the seed's Express app
 * (express-session 1.18 + connect-redis 7 + redis 4, tests/interop/server.js) share one real redis-server.
 *   a) a session libtether creates is read by express-session from libtether's cookie;
 *   b) a session express-session creates is loaded, changed and saved by libtether, and Node sees it;
 *   c) stored values and TTLs: same JSON shape, TTL ~ maxAge from either side, touch (EXPIRE) both ways;
 *   d) secret rotation: Node signs with A, libtether with [B, A] accepts, and so on across the two.
 * Two Node servers run: one with secret A, one with secrets [B, A]. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "http.h"
#include "procs.h"
#include "session_test.h"
#include "tether/session.h"
#include "tether/store.h"
#include "util.h"

#ifndef TETHER_INTEROP_DIR
#error "TETHER_INTEROP_DIR must name tests/interop"
#endif

#define SECRET_A "interop-secret-A"
#define SECRET_B "interop-secret-B"
#define MAX_AGE_MS 3600000
#define HTTP_TIMEOUT_MS 5000

typedef struct node_peer {
  pid_t pid;
  int port;
  char log[512];
} node_peer;

static struct {
  int have_node;
  char *dir; /* logs of the Node peers */
  tt_server redis;
  node_peer node_a;  /* secret A */
  node_peer node_ba; /* secrets [B, A] */
  tether_store *store;
  tether_sessions *mgr_a;  /* libtether with [A] */
  tether_sessions *mgr_ba; /* [B, A] */
  tether_sessions *mgr_b;  /* [B] */
  redisContext *raw;       /* raw access to what each side stored */
} W;

/* ---- helpers ---- */

static int have_node(void) { return tt_system("command -v node >/dev/null 2>&1") == 0; }

static int node_start(node_peer *n, const char *tag, const char *secrets_json) {
  n->port = tt_free_port();
  snprintf(n->log, sizeof(n->log), "%s/node-%s.log", W.dir, tag);
  char port[16], rport[16];
  snprintf(port, sizeof(port), "%d", n->port);
  snprintf(rport, sizeof(rport), "%d", W.redis.port);
  char *argv[] = {"node", TETHER_INTEROP_DIR "/server.js", port, rport, (char *)secrets_json, NULL};
  n->pid = tt_spawn(argv, n->log, NULL);
  if (n->pid < 0 || !tt_wait_port(n->port, 20000)) {
    fprintf(stderr, "node %s did not start on port %d; its log:\n", tag, n->port);
    tt_system("tail -n 30 '%s' >&2", n->log);
    return -1;
  }
  return 0;
}

static void node_stop(node_peer *n) {
  if (n->pid > 0) tt_kill(n->pid, SIGTERM);
  n->pid = 0;
}

static tether_sessions *manager(const char *s1, const char *s2) {
  tether_session_options o;
  tether_session_options_init(&o);
  o.secret[0] = s1;
  o.secret[1] = s2;
  o.secret_count = s2 ? 2 : 1;
  o.cookie.max_age_ms = MAX_AGE_MS; /* the seed's cookie: maxAge 1 h, httpOnly, secure off for plain HTTP */
  o.cookie.http_only = 1;
  o.cookie.secure = 0;
  o.store = W.store;
  tether_sessions *m = NULL;
  if (tether_sessions_new(&o, &m) < 0) fprintf(stderr, "tether_sessions_new: %s\n", tether_last_error());
  return m;
}

/* Asks a Node peer; returns its JSON answer ({id, loaded, data, cookie}) and its Set-Cookie pair. */
static json_t *node_call(const node_peer *n, const char *method, const char *path, const char *cookie, const char *body,
                         char **set_cookie) {
  ti_http_response r;
  assert_int_equal(ti_http(n->port, method, path, cookie, body, HTTP_TIMEOUT_MS, &r), 0);
  if (r.status != 200) fprintf(stderr, "node answered %d: %s\n", r.status, r.body ? r.body : "");
  assert_int_equal(r.status, 200);
  json_error_t err;
  json_t *j = json_loads(r.body, 0, &err);
  if (j == NULL) fprintf(stderr, "node's answer is not JSON (%s): %s\n", err.text, r.body);
  assert_non_null(j);
  if (set_cookie) {
    *set_cookie = r.set_cookie;
    r.set_cookie = NULL;
  }
  ti_http_free(&r);
  return j;
}

/* "connect.sid=..." from a Set-Cookie value (everything before the first ';'). */
static char *cookie_pair(const char *set_cookie) {
  assert_non_null(set_cookie);
  assert_int_equal(strncmp(set_cookie, "connect.sid=", 12), 0);
  return strndup(set_cookie, strcspn(set_cookie, ";"));
}

/* A new libtether session with fields, committed; gives its cookie pair, id and expiry. */
static char *lt_create(tether_sessions *m, json_t *fields, char id[TETHER_SID_LEN + 1], int64_t *expires) {
  tether_session *s;
  assert_int_equal(tether_session_load(m, NULL, &s), 0);
  assert_true(tether_session_is_new(s));
  assert_int_equal(session_merge(s, fields), 0);
  char *sc = NULL;
  int rc = tether_session_commit(s, &sc);
  if (rc < 0) fprintf(stderr, "commit: %s\n", tether_last_error());
  assert_int_equal(rc, 0);
  char *pair = cookie_pair(sc);
  free(sc);
  snprintf(id, TETHER_SID_LEN + 1, "%s", tether_session_id(s));
  if (expires) *expires = tether_session_expires(s);
  tether_session_free(s);
  return pair;
}

static tether_session *lt_load(tether_sessions *m, const char *cookie) {
  tether_session *s = NULL;
  int rc = tether_session_load(m, cookie, &s);
  if (rc < 0) fprintf(stderr, "load: %s\n", tether_last_error());
  assert_int_equal(rc, 0);
  return s;
}

static void assert_json_equal(json_t *got, json_t *want) {
  if (!json_equal(got, want)) {
    char *g = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY), *w = json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY);
    fprintf(stderr, "JSON differs:\n  got  %s\n  want %s\n", g, w);
    free(g);
    free(w);
    fail();
  }
}

static void assert_str(json_t *obj, const char *key, const char *want) {
  json_t *v = json_object_get(obj, key);
  assert_true(json_is_string(v));
  assert_string_equal(json_string_value(v), want);
}

static redisReply *rcmd(const char *fmt, const char *id) {
  redisReply *r = redisCommand(W.raw, fmt, id);
  assert_non_null(r);
  return r;
}

/* The raw value stored under sess:<id>, parsed. */
static json_t *stored(const char *id, char **raw) {
  redisReply *r = rcmd("GET sess:%s", id);
  assert_int_equal(r->type, REDIS_REPLY_STRING);
  json_error_t err;
  json_t *j = json_loads(r->str, JSON_REJECT_DUPLICATES, &err);
  assert_non_null(j);
  if (raw) *raw = strdup(r->str);
  freeReplyObject(r);
  return j;
}

static long long ttl(const char *id) {
  redisReply *r = rcmd("TTL sess:%s", id);
  assert_int_equal(r->type, REDIS_REPLY_INTEGER);
  long long t = r->integer;
  freeReplyObject(r);
  return t;
}

static void expire(const char *id, int seconds) {
  redisReply *r = redisCommand(W.raw, "EXPIRE sess:%s %d", id, seconds);
  assert_non_null(r);
  assert_int_equal(r->integer, 1);
  freeReplyObject(r);
}

/* TTL ~ maxAge, with a few seconds of slack for the time the requests took on a busy machine. */
static void assert_ttl_is_max_age(const char *id) {
  long long t = ttl(id);
  if (t < MAX_AGE_MS / 1000 - 5 || t > MAX_AGE_MS / 1000) fprintf(stderr, "TTL of sess:%s is %lld\n", id, t);
  assert_in_range(t, MAX_AGE_MS / 1000 - 5, MAX_AGE_MS / 1000);
}

/* The names of an object's members, in order, joined by ','. */
static void member_names(json_t *obj, char *out, size_t cap) {
  out[0] = '\0';
  const char *k;
  json_t *v;
  json_object_foreach(obj, k, v) {
    (void)v;
    size_t l = strlen(out);
    snprintf(out + l, cap - l, "%s%s", l ? "," : "", k);
  }
}

static void iso(int64_t ms, char out[32]) { tether__iso8601(ms, out); }

#define SKIP_WITHOUT_NODE()                                                                                            \
  do {                                                                                                                 \
    if (!W.have_node) skip();                                                                                          \
  } while (0)

/* ---- a) libtether -> express-session ---- */

static void test_libtether_session_read_by_express(void **state) {
  (void)state;
  SKIP_WITHOUT_NODE();
  json_t *fields = json_pack("{s:i, s:s, s:[{s:s, s:i}, {s:s, s:i}]}", "visits", 1, "user", "alice", "cart", "sku",
                             "A1", "qty", 2, "sku", "B7", "qty", 1);
  char id[TETHER_SID_LEN + 1];
  int64_t expires;
  char *cookie = lt_create(W.mgr_a, fields, id, &expires);

  json_t *r = node_call(&W.node_a, "GET", "/session", cookie, NULL, NULL);
  assert_true(json_is_true(json_object_get(r, "loaded")));
  assert_str(r, "id", id);
  assert_json_equal(json_object_get(r, "data"), fields);
  json_t *c = json_object_get(r, "cookie");
  assert_int_equal(json_integer_value(json_object_get(c, "originalMaxAge")), MAX_AGE_MS);
  char want_exp[32];
  iso(expires, want_exp);
  assert_str(c, "expires", want_exp);
  assert_true(json_is_true(json_object_get(c, "httpOnly")));
  assert_str(c, "path", "/");
  json_decref(r);

  /* Node changes it and saves; its Set-Cookie is byte for byte the one libtether made (same id, same
   * secret, same encoding); libtether reads Node's change. */
  char *node_cookie = NULL;
  r = node_call(&W.node_a, "POST", "/visit", cookie, NULL, &node_cookie);
  assert_true(json_is_true(json_object_get(r, "loaded")));
  assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "data"), "visits")), 2);
  json_decref(r);
  assert_non_null(node_cookie);
  char *pair = cookie_pair(node_cookie);
  assert_string_equal(pair, cookie);
  free(pair);
  free(node_cookie);

  tether_session *s = lt_load(W.mgr_a, cookie);
  assert_false(tether_session_is_new(s));
  assert_string_equal(tether_session_id(s), id);
  json_object_set_new(fields, "visits", json_integer(2));
  json_t *got = session_json(s);
  assert_json_equal(got, fields);
  json_decref(got);
  tether_session_free(s);
  json_decref(fields);
  free(cookie);
}

/* ---- b) express-session -> libtether ---- */

static void test_express_session_loaded_by_libtether(void **state) {
  (void)state;
  SKIP_WITHOUT_NODE();
  const char *body = "{\"visits\":5,\"user\":\"zo\xc3\xab\",\"cart\":[{\"sku\":\"C3\",\"qty\":1}]}";
  char *set_cookie = NULL;
  json_t *r = node_call(&W.node_a, "POST", "/set", NULL, body, &set_cookie);
  assert_false(json_is_true(json_object_get(r, "loaded")));
  char *cookie = cookie_pair(set_cookie);
  free(set_cookie);
  char id[TETHER_SID_LEN + 1];
  snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(r, "id")));
  json_t *fields = json_loads(body, 0, NULL);
  assert_json_equal(json_object_get(r, "data"), fields);
  json_decref(r);

  json_t *raw = stored(id, NULL);
  int64_t node_expires = 0;
  assert_int_equal(tether__parse_iso8601(json_string_value(json_object_get(json_object_get(raw, "cookie"), "expires")),
                                         &node_expires),
                   0);
  json_decref(raw);

  tether_session *s = lt_load(W.mgr_a, cookie);
  assert_false(tether_session_is_new(s));
  assert_string_equal(tether_session_id(s), id);
  json_t *d = session_json(s);
  assert_json_equal(d, fields);
  assert_true(tether_session_expires(s) == node_expires);

  json_object_set_new(d, "visits", json_integer(6));
  json_array_append_new(json_object_get(d, "cart"), json_pack("{s:s, s:i}", "sku", "D4", "qty", 3));
  assert_int_equal(session_merge(s, d), 0);
  json_t *want = d;
  char *sc = NULL;
  assert_int_equal(tether_session_commit(s, &sc), 0);
  /* express-session's rule: an existing session with an expiry that changed gets a Set-Cookie; same id
   * and secret, so the same cookie Node set */
  assert_non_null(sc);
  char *pair = cookie_pair(sc);
  assert_string_equal(pair, cookie);
  free(pair);
  free(sc);
  tether_session_free(s);

  r = node_call(&W.node_a, "GET", "/session", cookie, NULL, NULL);
  assert_true(json_is_true(json_object_get(r, "loaded")));
  assert_str(r, "id", id);
  assert_json_equal(json_object_get(r, "data"), want);
  json_decref(r);
  json_decref(want);
  json_decref(fields);
  free(cookie);
}

/* The absolute lifetime's creation time ("_tetherCreated", a top-level member): express-session reads the
 * session, changes and saves it, and keeps the member as it was; libtether then still knows when the
 * session was created. */
static void test_absolute_lifetime_survives_express(void **state) {
  (void)state;
  SKIP_WITHOUT_NODE();
  tether_session_options o;
  tether_session_options_init(&o);
  o.secret[0] = SECRET_A;
  o.secret_count = 1;
  o.cookie.max_age_ms = MAX_AGE_MS;
  o.store = W.store;
  o.absolute_timeout_ms = 8 * 3600000LL;
  tether_sessions *m = NULL;
  assert_int_equal(tether_sessions_new(&o, &m), 0);
  json_t *fields = json_pack("{s:i}", "visits", 1);
  char id[TETHER_SID_LEN + 1];
  char *cookie = lt_create(m, fields, id, NULL);
  json_t *raw = stored(id, NULL);
  json_t *created = json_object_get(raw, "_tetherCreated");
  assert_true(json_is_integer(created));
  json_int_t created_ms = json_integer_value(created);
  json_decref(raw);

  json_t *r = node_call(&W.node_a, "POST", "/visit", cookie, NULL, NULL); /* express-session saves it */
  assert_true(json_is_true(json_object_get(r, "loaded")));
  assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "data"), "visits")), 2);
  json_decref(r);
  raw = stored(id, NULL);
  assert_int_equal(json_integer_value(json_object_get(raw, "_tetherCreated")), created_ms);
  json_decref(raw);

  tether_session *s = lt_load(m, cookie);
  assert_false(tether_session_is_new(s));
  assert_int_equal(tether_session_created(s), created_ms);
  assert_int_equal(session_int(s, "visits"), 2);
  assert_false(tether_session_has(s, "_tetherCreated"));
  tether_session_free(s);
  json_decref(fields);
  free(cookie);
  tether_sessions_free(m);
}

/* ---- c) stored values and TTLs ---- */

static void check_stored_shape(json_t *v, char *cookie_names, size_t cap) {
  const char *first = NULL;
  json_t *x;
  json_object_foreach(v, first, x) break; /* the first member */
  (void)x;
  assert_non_null(first);
  assert_string_equal(first, "cookie");
  json_t *c = json_object_get(v, "cookie");
  assert_int_equal(json_integer_value(json_object_get(c, "originalMaxAge")), MAX_AGE_MS);
  int64_t exp = 0;
  assert_int_equal(tether__parse_iso8601(json_string_value(json_object_get(c, "expires")), &exp), 0);
  int64_t now = tether_now_ms();
  assert_in_range(exp - now, MAX_AGE_MS - 10000, MAX_AGE_MS);
  assert_true(json_is_false(json_object_get(c, "secure")));
  assert_true(json_is_true(json_object_get(c, "httpOnly")));
  assert_str(c, "path", "/");
  member_names(c, cookie_names, cap);
}

static void test_stored_values_and_ttls(void **state) {
  (void)state;
  SKIP_WITHOUT_NODE();
  /* one session written by each side */
  json_t *fields = json_pack("{s:i, s:s, s:[]}", "visits", 1, "user", "carol", "cart");
  char lt_id[TETHER_SID_LEN + 1];
  char *lt_cookie = lt_create(W.mgr_a, fields, lt_id, NULL);
  char *set_cookie = NULL;
  json_t *r = node_call(&W.node_a, "POST", "/set", NULL, "{\"visits\":1,\"user\":\"dave\",\"cart\":[]}", &set_cookie);
  char *node_cookie = cookie_pair(set_cookie);
  free(set_cookie);
  char node_id[TETHER_SID_LEN + 1];
  snprintf(node_id, sizeof(node_id), "%s", json_string_value(json_object_get(r, "id")));
  json_decref(r);

  /* same shape, member for member, and a TTL of maxAge from either writer */
  char lt_names[256], node_names[256];
  char *lt_raw = NULL, *node_raw = NULL;
  json_t *lt_v = stored(lt_id, &lt_raw), *node_v = stored(node_id, &node_raw);
  check_stored_shape(lt_v, lt_names, sizeof(lt_names));
  check_stored_shape(node_v, node_names, sizeof(node_names));
  assert_string_equal(lt_names, node_names);
  assert_string_equal(lt_names, "originalMaxAge,expires,secure,httpOnly,path");
  json_object_del(lt_v, "cookie");
  assert_json_equal(lt_v, fields);
  json_decref(lt_v);
  json_decref(node_v);
  assert_ttl_is_max_age(lt_id);
  assert_ttl_is_max_age(node_id);

  /* Node touches libtether's session (read only: EXPIRE, value untouched) */
  expire(lt_id, 100);
  assert_in_range(ttl(lt_id), 1, 100);
  r = node_call(&W.node_a, "GET", "/session", lt_cookie, NULL, NULL);
  assert_true(json_is_true(json_object_get(r, "loaded")));
  json_decref(r);
  assert_ttl_is_max_age(lt_id);
  char *after = NULL;
  json_decref(stored(lt_id, &after));
  assert_string_equal(after, lt_raw);
  free(after);

  /* libtether touches Node's session the same way, and sends no cookie */
  expire(node_id, 100);
  tether_session *s = lt_load(W.mgr_a, node_cookie);
  assert_false(tether_session_is_new(s));
  char *sc = NULL;
  assert_int_equal(tether_session_commit(s, &sc), 0);
  assert_null(sc);
  tether_session_free(s);
  assert_ttl_is_max_age(node_id);
  json_decref(stored(node_id, &after));
  assert_string_equal(after, node_raw);
  free(after);

  /* a session rewritten by the other side keeps the shape and the TTL */
  r = node_call(&W.node_a, "POST", "/visit", lt_cookie, NULL, NULL);
  json_decref(r);
  json_t *v = stored(lt_id, NULL);
  check_stored_shape(v, node_names, sizeof(node_names));
  assert_string_equal(node_names, lt_names);
  assert_int_equal(json_integer_value(json_object_get(v, "visits")), 2);
  json_decref(v);
  assert_ttl_is_max_age(lt_id);

  s = lt_load(W.mgr_a, node_cookie);
  tether_session_set_int(s, "visits", 7);
  assert_int_equal(tether_session_commit(s, &sc), 0);
  free(sc);
  tether_session_free(s);
  v = stored(node_id, NULL);
  check_stored_shape(v, lt_names, sizeof(lt_names));
  assert_string_equal(node_names, lt_names);
  assert_int_equal(json_integer_value(json_object_get(v, "visits")), 7);
  json_decref(v);
  assert_ttl_is_max_age(node_id);

  free(lt_raw);
  free(node_raw);
  free(lt_cookie);
  free(node_cookie);
  json_decref(fields);
}

/* ---- d) secret rotation ---- */

static void test_secret_rotation(void **state) {
  (void)state;
  SKIP_WITHOUT_NODE();
  /* Node (secret A) creates a session */
  char *set_cookie = NULL;
  json_t *r = node_call(&W.node_a, "POST", "/set", NULL, "{\"user\":\"rotating\",\"visits\":1}", &set_cookie);
  char *cookie_a = cookie_pair(set_cookie);
  free(set_cookie);
  char id[TETHER_SID_LEN + 1];
  snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(r, "id")));
  json_decref(r);

  /* libtether with only B does not accept it */
  tether_session *s = lt_load(W.mgr_b, cookie_a);
  assert_true(tether_session_is_new(s));
  assert_string_not_equal(tether_session_id(s), id);
  tether_session_free(s);

  /* libtether with [B, A] does, changes it, and re-signs the cookie with B */
  s = lt_load(W.mgr_ba, cookie_a);
  assert_false(tether_session_is_new(s));
  assert_string_equal(tether_session_id(s), id);
  assert_non_null(tether_session_get_string(s, "user"));
  assert_string_equal(tether_session_get_string(s, "user"), "rotating");
  tether_session_set_int(s, "visits", 2);
  char *sc = NULL;
  assert_int_equal(tether_session_commit(s, &sc), 0);
  tether_session_free(s);
  char *cookie_b = cookie_pair(sc);
  free(sc);
  assert_string_not_equal(cookie_b, cookie_a);
  char raw[256], val[256];
  assert_true(tether_cookie_get(cookie_b, "connect.sid", raw, sizeof(raw)) > 0);
  assert_int_equal(strncmp(raw, "s:", 2), 0);
  const char *only_b[] = {SECRET_B};
  assert_int_equal(tether_cookie_unsign(raw + 2, only_b, 1, val, sizeof(val)), TETHER_SID_LEN);
  assert_string_equal(val, id);

  /* Node with [B, A] reads the B cookie and the change; Node with A alone refuses the B cookie */
  r = node_call(&W.node_ba, "GET", "/session", cookie_b, NULL, NULL);
  assert_true(json_is_true(json_object_get(r, "loaded")));
  assert_str(r, "id", id);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "data"), "visits")), 2);
  json_decref(r);
  r = node_call(&W.node_a, "GET", "/session", cookie_b, NULL, NULL);
  assert_false(json_is_true(json_object_get(r, "loaded")));
  assert_string_not_equal(json_string_value(json_object_get(r, "id")), id);
  assert_int_equal(json_object_size(json_object_get(r, "data")), 0);
  json_decref(r);
  /* the old A cookie still works on the [B, A] Node */
  r = node_call(&W.node_ba, "GET", "/session", cookie_a, NULL, NULL);
  assert_true(json_is_true(json_object_get(r, "loaded")));
  assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "data"), "visits")), 2);
  json_decref(r);

  /* the other way: Node with [B, A] signs a new session with B; libtether [B, A] and [B] accept it,
   * libtether [A] does not */
  r = node_call(&W.node_ba, "POST", "/set", NULL, "{\"user\":\"fresh\"}", &set_cookie);
  char *cookie_nb = cookie_pair(set_cookie);
  free(set_cookie);
  char id2[TETHER_SID_LEN + 1];
  snprintf(id2, sizeof(id2), "%s", json_string_value(json_object_get(r, "id")));
  json_decref(r);
  tether_sessions *mgrs[] = {W.mgr_ba, W.mgr_b, W.mgr_a};
  for (int i = 0; i < 3; i++) {
    s = lt_load(mgrs[i], cookie_nb);
    assert_int_equal(tether_session_is_new(s), i == 2);
    if (i < 2) {
      assert_string_equal(tether_session_id(s), id2);
      assert_non_null(tether_session_get_string(s, "user"));
      assert_string_equal(tether_session_get_string(s, "user"), "fresh");
    }
    tether_session_free(s);
  }

  /* and libtether [B, A] signs new sessions with B: Node [B, A] reads them, Node [A] does not */
  json_t *fields = json_pack("{s:s}", "user", "made-by-libtether");
  char id3[TETHER_SID_LEN + 1];
  char *cookie_lb = lt_create(W.mgr_ba, fields, id3, NULL);
  r = node_call(&W.node_ba, "GET", "/session", cookie_lb, NULL, NULL);
  assert_true(json_is_true(json_object_get(r, "loaded")));
  assert_json_equal(json_object_get(r, "data"), fields);
  json_decref(r);
  r = node_call(&W.node_a, "GET", "/session", cookie_lb, NULL, NULL);
  assert_false(json_is_true(json_object_get(r, "loaded")));
  json_decref(r);

  json_decref(fields);
  free(cookie_a);
  free(cookie_b);
  free(cookie_nb);
  free(cookie_lb);
}

/* ---- setup ---- */

static int setup_world(void) {
  W.have_node = have_node();
  if (!W.have_node) {
    fprintf(stderr, "SKIP: node is not on PATH; the express-session interop tests need Node.js 20+\n");
    return 0;
  }
  if (access(TETHER_INTEROP_DIR "/node_modules/express-session/package.json", R_OK) != 0) {
    fprintf(stderr, "interop: %s/node_modules is missing: run scripts/deps (npm ci in tests/interop)\n",
            TETHER_INTEROP_DIR);
    return -1;
  }
  W.dir = tt_tmpdir("interop");
  if (tt_redis_start(&W.redis, 0) < 0) return -1;
  if (node_start(&W.node_a, "a", "[\"" SECRET_A "\"]") < 0) return -1;
  if (node_start(&W.node_ba, "ba", "[\"" SECRET_B "\",\"" SECRET_A "\"]") < 0) return -1;
  int rc = tether_store_open(W.redis.url, &W.store);
  if (rc < 0) {
    fprintf(stderr, "tether_store_open(%s): %s: %s\n", W.redis.url, tether_strerror(rc), tether_last_error());
    return -1;
  }
  W.mgr_a = manager(SECRET_A, NULL);
  W.mgr_ba = manager(SECRET_B, SECRET_A);
  W.mgr_b = manager(SECRET_B, NULL);
  struct timeval tv = {5, 0};
  W.raw = redisConnectWithTimeout("127.0.0.1", W.redis.port, tv);
  if (W.raw == NULL || W.raw->err || redisSetTimeout(W.raw, tv) != REDIS_OK) {
    fprintf(stderr, "hiredis: cannot connect to the test's redis-server\n");
    return -1;
  }
  return W.mgr_a && W.mgr_ba && W.mgr_b ? 0 : -1;
}

static void teardown_world(void) {
  if (W.raw) redisFree(W.raw);
  tether_sessions_free(W.mgr_a);
  tether_sessions_free(W.mgr_ba);
  tether_sessions_free(W.mgr_b);
  tether_store_close(W.store);
  node_stop(&W.node_a);
  node_stop(&W.node_ba);
  tt_server_cleanup(&W.redis);
  if (W.dir) tt_rmrf(W.dir);
  free(W.dir);
  memset(&W, 0, sizeof(W));
}

static int setup(void **state) {
  (void)state;
  if (setup_world() == 0) return 0;
  teardown_world(); /* cmocka skips the group teardown when the setup fails */
  return -1;
}

static int teardown(void **state) {
  (void)state;
  teardown_world();
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_libtether_session_read_by_express),
      cmocka_unit_test(test_express_session_loaded_by_libtether),
      cmocka_unit_test(test_stored_values_and_ttls),
      cmocka_unit_test(test_absolute_lifetime_survives_express),
      cmocka_unit_test(test_secret_rotation),
  };
  return cmocka_run_group_tests_name("interop express-session", tests, setup, teardown);
}
