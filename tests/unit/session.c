/* Unit tests of src/lib/session.c over the memory: and jwt: stores: express-session's save, touch and
 * Set-Cookie rules one by one, the cookie and stored-JSON formats, hostile cookies and stored values,
 * secret rotation, and option validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "procs.h"
#include "session_test.h"
#include "store/store_impl.h"
#include "tether/session.h"
#include "util.h"
#include "vectors/cookie_vectors.h"

#define SECRET "keyboard cat"
#define GOOD_ID "kX3J0bUw2pQ-hq_Zsc9aN1eT7vYbLmRo"

/* ---- helpers ---- */

static char last_log[1024];
static int log_count;

static void capture_log(tether_log_level level, const char *msg, void *arg) {
  (void)level, (void)arg;
  snprintf(last_log, sizeof(last_log), "%s", msg);
  log_count++;
}

static tether_store *open_store(const char *url) {
  tether_store *st = NULL;
  int rc = tether_store_open(url, &st);
  if (rc != 0) fail_msg("open %s: %s", url, tether_last_error());
  return st;
}

static void opts_init(tether_session_options *o, tether_store *st) {
  tether_session_options_init(o);
  o->secret[0] = SECRET;
  o->secret_count = 1;
  o->store = st;
}

static tether_sessions *make(const tether_session_options *o) {
  tether_sessions *m = NULL;
  int rc = tether_sessions_new(o, &m);
  if (rc != 0) fail_msg("sessions_new: %s", tether_last_error());
  return m;
}

/* The Cookie header a browser sends back for id signed with secret, encoded as express-session does. */
static char *cookie_for(const char *name, const char *id, const char *secret) {
  char s[512];
  assert_true(tether_cookie_sign(id, secret, s, sizeof(s)) > 0);
  tether__buf b = {0};
  tether__buf_appendf(&b, "%s=s%%3A", name);
  for (const char *p = s; *p; p++) {
    if (*p == '+')
      tether__buf_appendf(&b, "%%2B");
    else if (*p == '/')
      tether__buf_appendf(&b, "%%2F");
    else
      tether__buf_append(&b, p, 1);
  }
  return b.data;
}

/* "name=value" of a Set-Cookie, as the next request's Cookie header. */
static char *cookie_from(const char *set_cookie) {
  assert_non_null(set_cookie);
  return tether__strndup(set_cookie, strcspn(set_cookie, ";"));
}

static tether_metrics snap(const tether_store *st) {
  tether_metrics m;
  tether_store_metrics(st, &m);
  return m;
}

static char *stored(tether_store *st, const char *id) {
  char *json = NULL;
  size_t len = 0;
  int rc = tether_store_get(st, id, &json, &len);
  if (rc == TETHER_ENOTFOUND) return NULL;
  assert_int_equal(rc, 0);
  return json;
}

static void put(tether_store *st, const char *id, const char *json) {
  assert_int_equal(tether_store_set(st, id, json, strlen(json), 0), 0);
}

static tether_session *load(tether_sessions *m, const char *header) {
  tether_session *s = NULL;
  int rc = tether_session_load(m, header, &s);
  if (rc != 0) fail_msg("load '%s': %s", header ? header : "(none)", tether_last_error());
  assert_non_null(s);
  return s;
}

static char *commit(tether_session *s) {
  char *set_cookie = (char *)1;
  int rc = tether_session_commit(s, &set_cookie);
  if (rc != 0) fail_msg("commit: %s", tether_last_error());
  return set_cookie;
}

/* One request that sets data[key] = value on a new session and returns the Set-Cookie. */
static char *create_session(tether_sessions *m, const char *key, const char *value, char id[129]) {
  tether_session *s = load(m, NULL);
  assert_true(tether_session_is_new(s));
  tether_session_set_string(s, key, value);
  char *sc = commit(s);
  snprintf(id, 129, "%s", tether_session_id(s));
  tether_session_free(s);
  assert_non_null(sc);
  return sc;
}

static void assert_prefix(const char *s, const char *prefix) {
  if (s == NULL || strncmp(s, prefix, strlen(prefix)) != 0) fail_msg("'%s' does not start with '%s'", s, prefix);
}

/* ---- express-session's rules ---- */

static void test_new_unmodified_not_saved(void **state) {
  (void)state;
  tether_store *st = open_store("memory:");
  tether_session_options o;
  opts_init(&o, st);
  tether_sessions *m = make(&o);
  tether_metrics before = snap(st);
  tether_session *s = load(m, NULL);
  assert_true(tether_session_is_new(s));
  assert_int_equal(strlen(tether_session_id(s)), TETHER_SID_LEN);
  assert_int_equal(tether_session_count(s), 0);
  assert_null(commit(s));
  tether_metrics after = snap(st);
  assert_int_equal(after.created - before.created, 1);
  assert_int_equal(after.saved - before.saved, 0);
  assert_int_equal(after.touched - before.touched, 0);
  assert_null(stored(st, tether_session_id(s)));
  tether_session_free(s);
  tether_sessions_free(m);
  tether_store_close(st);
}

static void test_new_unmodified_save_uninitialized(void **state) {
  (void)state;
  tether_store *st = open_store("memory:");
  tether_session_options o;
  opts_init(&o, st);
  o.save_uninitialized = 1;
  tether_sessions *m = make(&o);
  tether_session *s = load(m, NULL);
  char *sc = commit(s);
  char *want = cookie_for("connect.sid", tether_session_id(s), SECRET);
  char *full = tether__asprintf("%s; Path=/; HttpOnly", want);
  assert_string_equal(sc, full); /* no maxAge: a browser-session cookie, no Expires */
  char *json = stored(st, tether_session_id(s));
  assert_non_null(json);
  assert_string_equal(json, "{\"cookie\":{\"originalMaxAge\":null,\"secure\":false,\"httpOnly\":true,\"path\":\"/\"}}");
  assert_int_equal(snap(st).saved, 1);
  free(json), free(full), free(want), free(sc);
  tether_session_free(s);
  tether_sessions_free(m);
  tether_store_close(st);
}

static void test_new_modified(void **state) {
  (void)state;
  tether_store *st = open_store("memory:");
  tether_session_options o;
  opts_init(&o, st);
  tether_sessions *m = make(&o);
  char id[129];
  char *sc = create_session(m, "user", "bob", id);
  char *want = cookie_for("connect.sid", id, SECRET);
  assert_prefix(sc, want);
  char *json = stored(st, id);
  assert_non_null(json);
  assert_non_null(strstr(json, "\"user\":\"bob\""));
  assert_int_equal(snap(st).saved, 1);
  /* the next request with that cookie gets the data back */
  char *hdr = cookie_from(sc);
  tether_session *s = load(m, hdr);
  assert_false(tether_session_is_new(s));
  assert_string_equal(tether_session_id(s), id);
  assert_string_equal(tether_session_get_string(s, "user"), "bob");
  assert_false(tether_session_has(s, "cookie")); /* the cookie is not application data */
  tether_session_free(s);
  free(hdr), free(json), free(want), free(sc);
  tether_sessions_free(m);
  tether_store_close(st);
}

static void test_loaded_unmodified_touched(void **state) {
  (void)state;
  for (int with_max_age = 0; with_max_age <= 1; with_max_age++) {
    tether_store *st = open_store("memory:");
    tether_session_options o;
    opts_init(&o, st);
    if (with_max_age) o.cookie.max_age_ms = 3600000;
    tether_sessions *m = make(&o);
    char id[129];
    char *sc = create_session(m, "user", "bob", id);
    char *hdr = cookie_from(sc);
    tether_metrics before = snap(st);
    tether_session *s = load(m, hdr);
    assert_false(tether_session_is_new(s));
    assert_null(commit(s)); /* not modified, not rolling: no Set-Cookie, expiry or not */
    tether_metrics after = snap(st);
    assert_int_equal(after.loaded - before.loaded, 1);
    assert_int_equal(after.touched - before.touched, 1);
    assert_int_equal(after.saved - before.saved, 0);
    assert_int_equal(after.created - before.created, 0);
    assert_int_equal(after.missing - before.missing, 0);
    tether_session_free(s);
    free(hdr), free(sc);
    tether_sessions_free(m);
    tether_store_close(st);
  }
}

static void test_loaded_modified(void **state) {
  (void)state;
  for (int with_max_age = 0; with_max_age <= 1; with_max_age++) {
    tether_store *st = open_store("memory:");
    tether_session_options o;
    opts_init(&o, st);
    if (with_max_age) o.cookie.max_age_ms = 3600000;
    tether_sessions *m = make(&o);
    char id[129];
    char *sc = create_session(m, "user", "bob", id);
    char *hdr = cookie_from(sc);
    tether_metrics before = snap(st);
    tether_session *s = load(m, hdr);
    tether_session_set_int(s, "visits", 2);
    char *sc2 = commit(s);
    tether_metrics after = snap(st);
    assert_int_equal(after.saved - before.saved, 1);
    assert_int_equal(after.touched - before.touched, 0);
    if (with_max_age) { /* Set-Cookie only when the cookie has an expiry to refresh */
      char *want = cookie_for("connect.sid", id, SECRET);
      assert_prefix(sc2, want);
      assert_non_null(strstr(sc2, "; Expires="));
      free(want);
    } else {
      assert_null(sc2);
    }
    char *json = stored(st, id);
    assert_non_null(strstr(json, "\"user\":\"bob\",\"visits\":2"));
    free(json), free(sc2);
    tether_session_free(s);
    free(hdr), free(sc);
    tether_sessions_free(m);
    tether_store_close(st);
  }
}

static void test_resave(void **state) {
  (void)state;
  tether_store *st = open_store("memory:");
  tether_session_options o;
  opts_init(&o, st);
  o.resave = 1;
  tether_sessions *m = make(&o);
  char id[129];
  char *sc = create_session(m, "user", "bob", id);
  char *hdr = cookie_from(sc);
  tether_metrics before = snap(st);
  tether_session *s = load(m, hdr);
  assert_null(commit(s));
  tether_metrics after = snap(st);
  assert_int_equal(after.saved - before.saved, 1); /* saved although unmodified */
  assert_int_equal(after.touched - before.touched, 0);
  tether_session_free(s);
  free(hdr), free(sc);
  tether_sessions_free(m);
  tether_store_close(st);
}

static void test_rolling(void **state) {
  (void)state;
  tether_store *st = open_store("memory:");
  tether_session_options o;
  opts_init(&o, st);
  o.rolling = 1;
  o.cookie.max_age_ms = 60000;
  tether_sessions *m = make(&o);
  /* rolling does not make an uninitialized session worth a cookie */
  tether_session *s = load(m, NULL);
  assert_null(commit(s));
  assert_int_equal(snap(st).saved, 0);
  tether_session_free(s);

  char id[129];
  char *sc = create_session(m, "user", "bob", id);
  char *hdr = cookie_from(sc);
  char *want = cookie_for("connect.sid", id, SECRET);
  for (int i = 0; i < 3; i++) {
    tether_metrics before = snap(st);
    s = load(m, hdr);
    char *sc2 = commit(s);
    assert_prefix(sc2, want); /* every response */
    assert_non_null(strstr(sc2, "; Expires="));
    tether_metrics after = snap(st);
    assert_int_equal(after.touched - before.touched, 1);
    assert_int_equal(after.saved - before.saved, 0);
    free(sc2);
    tether_session_free(s);
  }
  free(want), free(hdr), free(sc);
  tether_sessions_free(m);
  tether_store_close(st);
}

static void test_regenerate(void **state) {
  (void)state;
  tether_store *st = open_store("memory:");
  tether_session_options o;
  opts_init(&o, st);
  tether_sessions *m = make(&o);
  char id[129];
  char *sc = create_session(m, "user", "anonymous", id);
  char *hdr = cookie_from(sc);
  tether_metrics before = snap(st);
  tether_session *s = load(m, hdr);
  assert_int_equal(tether_session_regenerate(s), 0);
  assert_string_not_equal(tether_session_id(s), id);
  assert_int_equal(tether_session_count(s), 0);
  assert_null(stored(st, id)); /* the old session is gone at once */
  char *sc2 = commit(s);       /* unmodified data, but a new id: saved and sent */
  char *want = cookie_for("connect.sid", tether_session_id(s), SECRET);
  assert_prefix(sc2, want);
  char *json = stored(st, tether_session_id(s));
  assert_non_null(json);
  tether_metrics after = snap(st);
  assert_int_equal(after.destroyed - before.destroyed, 1);
  assert_int_equal(after.saved - before.saved, 1);
  assert_int_equal(after.created - before.created, 1);
  free(json), free(want), free(sc2);
  tether_session_free(s);

  /* regenerate with data set afterwards (login) */
  char *hdr2 = cookie_from(sc);
  s = load(m, hdr2); /* the old cookie: its session is gone, so a new one */
  assert_true(tether_session_is_new(s));
  tether_session_free(s);
  free(hdr2), free(hdr), free(sc);
  tether_sessions_free(m);
  tether_store_close(st);
}

static void test_destroy(void **state) {
  (void)state;
  tether_store *st = open_store("memory:");
  tether_session_options o;
  opts_init(&o, st);
  o.rolling = 1;
  o.resave = 1;
  o.cookie.max_age_ms = 60000;
  tether_sessions *m = make(&o);
  char id[129];
  char *sc = create_session(m, "user", "bob", id);
  char *hdr = cookie_from(sc);
  tether_metrics before = snap(st);
  tether_session *s = load(m, hdr);
  tether_session_set_bool(s, "more", 1);
  assert_int_equal(tether_session_destroy(s), 0);
  assert_null(stored(st, id));
  assert_null(commit(s)); /* even with rolling and resave: nothing saved, no cookie */
  assert_null(stored(st, id));
  assert_int_equal(tether_session_save(s), TETHER_EINVAL);
  tether_metrics after = snap(st);
  assert_int_equal(after.saved - before.saved, 0);
  assert_int_equal(after.destroyed - before.destroyed, 1);
  tether_session_free(s);
  free(hdr), free(sc);
  tether_sessions_free(m);
  tether_store_close(st);
}

static void test_explicit_save(void **state) {
  (void)state;
  tether_store *st = open_store("memory:");
  tether_session_options o;
  opts_init(&o, st);
  tether_sessions *m = make(&o);
  tether_session *s = load(m, NULL);
  tether_session_set_string(s, "user", "bob");
  assert_int_equal(tether_session_save(s), 0);
  assert_int_equal(snap(st).saved, 1);
  char *sc = commit(s); /* already saved as it is: not again, but the cookie goes out */
  assert_int_equal(snap(st).saved, 1);
  assert_non_null(sc);
  free(sc);
  tether_session_free(s);
  tether_sessions_free(m);
  tether_store_close(st);
}

/* ---- hostile cookies ---- */

static void test_bad_cookies(void **state) {
  (void)state;
  tether_store *st = open_store("memory:");
  tether_session_options o;
  opts_init(&o, st);
  tether_sessions *m = make(&o);
  put(st, GOOD_ID, "{\"cookie\":{\"originalMaxAge\":null,\"httpOnly\":true,\"path\":\"/\"},\"user\":\"bob\"}");
  char *good = cookie_for("connect.sid", GOOD_ID, SECRET);
  const char *good_value = strchr(good, '=') + 1;
  char *other_secret = cookie_for("connect.sid", GOOD_ID, "another secret");
  char *bad_id = cookie_for("connect.sid", "not a valid id!", SECRET); /* signed, but not an id */
  char *empty_id = cookie_for("connect.sid", "", SECRET);
  char *long_id = malloc(300);
  memset(long_id, 'A', 200);
  long_id[200] = '\0';
  char *too_long = cookie_for("connect.sid", long_id, SECRET); /* signed, 200 characters */
  char *garbage = malloc(10000);
  for (int i = 0; i < 9999; i++) garbage[i] = (char)(' ' + (i * 7) % 95);
  garbage[9999] = '\0';

  char *bad[] = {
      tether__asprintf("connect.sid=s%%3A%s.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", GOOD_ID),
      tether__asprintf("connect.sid=%s", GOOD_ID),        /* unsigned */
      tether__asprintf("connect.sid=s%%3A%s", GOOD_ID),   /* no signature */
      tether__asprintf("connect.sid=%s", good_value + 4), /* signed but without "s:" */
      tether__asprintf("%sA", good),                      /* signature too long */
      tether__strndup(good, strlen(good) - 1),            /* truncated signature */
      tether__strdup(other_secret),
      tether__strdup(bad_id),
      tether__strdup(empty_id),
      tether__strdup(too_long),
      tether__strdup("connect.sid=s%3A"),
      tether__strdup("connect.sid=s:"),
      tether__strdup("connect.sid="),
      tether__strdup("connect.sid"),
      tether__strdup("connect.sid=%ZZ%"),
      tether__strdup("connect.sid=s%3A%E0%A4%A"),
      tether__strdup("connect.sid=s%3A%00.%00"),
      tether__strdup("connect.sid=\x01\x02\x7f\xff"),
      tether__strdup(";;;;===;;;"),
      tether__asprintf("connect.sid=%s", garbage),
      tether__strdup(garbage),
      tether__asprintf("connect.sid=bad; %s", good),  /* duplicates: the first wins */
      tether__asprintf("Connect.sid=%s", good_value), /* names are case-sensitive */
      tether__asprintf("connect.sidx=%s; xconnect.sid=%s", good_value, good_value),
      tether__asprintf("connect.sid=\"%s", good_value), /* an opening quote is kept */
  };
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(bad); i++) {
    tether_metrics before = snap(st);
    tether_session *s = load(m, bad[i]);
    if (!tether_session_is_new(s) || strcmp(tether_session_id(s), GOOD_ID) == 0)
      fail_msg("cookie '%.80s' loaded the session", bad[i]);
    assert_int_equal(strlen(tether_session_id(s)), TETHER_SID_LEN);
    assert_null(commit(s));
    tether_metrics after = snap(st);
    assert_int_equal(after.missing - before.missing, 0); /* not a lost session: there was none */
    assert_int_equal(after.loaded - before.loaded, 0);
    tether_session_free(s);
    free(bad[i]);
  }

  char *ok[] = {
      tether__strdup(good),
      tether__asprintf("  connect.sid =\t%s  ", good_value),
      tether__asprintf("a=1; connect.sid=%s; b=2", good_value),
      tether__asprintf("connect.sid=\"%s\"", good_value),
      tether__asprintf("%s; connect.sid=bad", good),
      tether__asprintf("junk; %s", good),
  };
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(ok); i++) {
    tether_session *s = load(m, ok[i]);
    if (tether_session_is_new(s)) fail_msg("cookie '%s' not accepted", ok[i]);
    assert_string_equal(tether_session_id(s), GOOD_ID);
    tether_session_free(s);
    free(ok[i]);
  }
  free(garbage), free(too_long), free(long_id), free(empty_id), free(bad_id), free(other_secret), free(good);
  tether_sessions_free(m);
  tether_store_close(st);
}

static void test_secret_rotation(void **state) {
  (void)state;
  tether_store *st = open_store("memory:");
  tether_session_options o;
  opts_init(&o, st);
  o.secret[0] = "old secret";
  o.cookie.max_age_ms = 3600000;
  tether_sessions *old_m = make(&o);
  char id[129];
  char *sc = create_session(old_m, "user", "bob", id);
  char *hdr = cookie_from(sc);

  o.secret[0] = "new secret";
  o.secret[1] = "old secret";
  o.secret_count = 2;
  tether_sessions *rotated = make(&o);
  tether_session *s = load(rotated, hdr);
  assert_false(tether_session_is_new(s)); /* the old cookie still works */
  assert_string_equal(tether_session_id(s), id);
  tether_session_set_int(s, "n", 1);
  char *sc2 = commit(s);
  char *want = cookie_for("connect.sid", id, "new secret"); /* new cookies: the first secret */
  assert_prefix(sc2, want);
  tether_session_free(s);

  o.secret[0] = "new secret";
  o.secret_count = 1;
  tether_sessions *new_only = make(&o);
  s = load(new_only, hdr);
  assert_true(tether_session_is_new(s)); /* the old secret retired: the old cookie is refused */
  tether_session_free(s);
  char *hdr2 = cookie_from(sc2);
  s = load(new_only, hdr2);
  assert_false(tether_session_is_new(s));
  tether_session_free(s);

  free(hdr2), free(want), free(sc2), free(hdr), free(sc);
  tether_sessions_free(new_only);
  tether_sessions_free(rotated);
  tether_sessions_free(old_m);
  tether_store_close(st);
}

/* ---- formats ---- */

/* expected with its "; Expires=..." replaced by the date of expires_ms */
static char *with_expires(const char *expected, int64_t expires_ms) {
  const char *e = strstr(expected, "; Expires=");
  if (e == NULL) return tether__strdup(expected);
  const char *end = strchr(e + 2, ';');
  char date[40];
  tether__http_date(expires_ms, date);
  return tether__asprintf("%.*s; Expires=%s%s", (int)(e - expected), expected, date, end ? end : "");
}

/* The Set-Cookie of a stored session equals what express-session sends for it (vectors from Node). */
static void test_set_cookie_vectors(void **state) {
  (void)state;
  for (size_t i = 0; i < TV_COUNT(tv_set_cookie_vectors); i++) {
    const tv_set_cookie *v = &tv_set_cookie_vectors[i];
    tether_store *st = open_store("memory:");
    tether_session_options o;
    opts_init(&o, st);
    o.secret[0] = v->secret;
    o.name = v->name;
    o.rolling = 1;
    tether_sessions *m = make(&o);
    json_t *c = json_object();
    json_object_set_new(c, "originalMaxAge", v->expires_ms ? json_integer(3600000) : json_null());
    json_object_set_new(c, "expires", v->expires_ms ? json_string("2099-01-01T00:00:00.000Z") : json_null());
    json_object_set_new(c, "secure", json_boolean(v->secure));
    json_object_set_new(c, "httpOnly", json_boolean(v->http_only));
    if (v->domain) json_object_set_new(c, "domain", json_string(v->domain));
    json_object_set_new(c, "path", json_string(v->path));
    if (v->same_site) json_object_set_new(c, "sameSite", json_string(v->same_site));
    json_t *root = json_pack("{s:o, s:s}", "cookie", c, "user", "bob");
    char *json = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    put(st, v->id, json);
    char *hdr = cookie_for(v->name, v->id, v->secret);
    tether_session *s = load(m, hdr);
    assert_false(tether_session_is_new(s));
    char *sc = commit(s);
    char *want = with_expires(v->set_cookie, tether_session_expires(s));
    if (sc == NULL || strcmp(sc, want) != 0) fail_msg("Set-Cookie\n  '%s'\nexpress-session sends\n  '%s'", sc, want);
    if (v->expires_ms) {
      int64_t left = tether_session_expires(s) - tether_now_ms();
      assert_true(left > 3590000 && left <= 3600000); /* touched: now + originalMaxAge */
    }
    free(want), free(sc), free(hdr), free(json);
    tether_session_free(s);
    tether_sessions_free(m);
    tether_store_close(st);
  }
}

static void test_cookie_options_format(void **state) {
  (void)state;
  tether_store *st = open_store("memory:");
  tether_session_options o;
  opts_init(&o, st);
  o.cookie.max_age_ms = 3600000;
  o.cookie.domain = "example.com";
  o.cookie.path = "/app";
  o.cookie.secure = 1;
  o.cookie.same_site = TETHER_SAME_SITE_LAX;
  tether_sessions *m = make(&o);
  char id[129];
  int64_t t0 = tether_now_ms();
  char *sc = create_session(m, "user", "bob", id);
  char *json = stored(st, id);
  json_t *root = json_loads(json, 0, NULL);
  const char *iso = json_string_value(json_object_get(json_object_get(root, "cookie"), "expires"));
  assert_non_null(iso);
  int64_t expires;
  assert_int_equal(tether__parse_iso8601(iso, &expires), 0);
  assert_true(expires >= t0 + 3600000 && expires <= tether_now_ms() + 3600000);
  /* express's attribute order: Domain, Path, Expires, HttpOnly, Secure, SameSite */
  char *signed_part = cookie_for("connect.sid", id, SECRET);
  char date[40];
  tether__http_date(expires, date);
  char *want = tether__asprintf("%s; Domain=example.com; Path=/app; Expires=%s; HttpOnly; Secure; SameSite=Lax",
                                signed_part, date);
  assert_string_equal(sc, want);
  /* and express-session's stored cookie object, members in Cookie.data's order */
  char *want_json = tether__asprintf("{\"cookie\":{\"originalMaxAge\":3600000,\"expires\":\"%s\",\"secure\":true,"
                                     "\"httpOnly\":true,\"domain\":\"example.com\",\"path\":\"/app\","
                                     "\"sameSite\":\"lax\"},\"user\":\"bob\"}",
                                     iso);
  assert_string_equal(json, want_json);
  json_decref(root);
  free(want_json), free(want), free(signed_part), free(json), free(sc);
  tether_sessions_free(m);

  /* expires instead of maxAge: express turns it into originalMaxAge = expires - now */
  int64_t at = tether_now_ms() + 7200000;
  opts_init(&o, st);
  o.cookie.expires_ms = at;
  o.cookie.http_only = 0;
  o.cookie.same_site = TETHER_SAME_SITE_STRICT;
  m = make(&o);
  sc = create_session(m, "user", "eve", id);
  json = stored(st, id);
  root = json_loads(json, 0, NULL);
  json_t *c = json_object_get(root, "cookie");
  json_int_t oma = json_integer_value(json_object_get(c, "originalMaxAge"));
  assert_true(oma > 7190000 && oma <= 7200000);
  assert_true(json_is_false(json_object_get(c, "httpOnly")));
  assert_string_equal(json_string_value(json_object_get(c, "sameSite")), "strict");
  assert_null(strstr(sc, "HttpOnly"));
  assert_non_null(strstr(sc, "; Path=/; Expires="));
  assert_non_null(strstr(sc, " GMT; SameSite=Strict"));
  json_decref(root);
  free(json), free(sc);
  tether_sessions_free(m);

  /* tether_session_set_max_age: the application changes this session's lifetime */
  opts_init(&o, st);
  m = make(&o);
  tether_session *s = load(m, NULL);
  tether_session_set_max_age(s, 60000);
  tether_session_set_bool(s, "k", 1);
  sc = commit(s);
  assert_non_null(strstr(sc, "; Expires="));
  assert_true(tether_session_expires(s) > tether_now_ms() + 59000);
  tether_session_set_max_age(s, -1);
  assert_int_equal(tether_session_expires(s), 0);
  tether_session_set_max_age(s, INT64_MAX); /* absurd, but never an overflow */
  assert_true(tether_session_expires(s) > tether_now_ms());
  char *ser = tether_session_serialize(s);
  assert_non_null(ser);
  free(ser), free(sc);
  tether_session_free(s);
  tether_sessions_free(m);
  tether_store_close(st);
}

/* What express-session (Node) writes to a store, loaded by libtether. */
static void test_stored_json_from_node(void **state) {
  (void)state;
  tether_store *st = open_store("memory:");
  tether_session_options o;
  opts_init(&o, st);
  tether_sessions *m = make(&o);
  put(st, GOOD_ID,
      "{\"cookie\":{\"originalMaxAge\":3600000,\"expires\":\"2099-11-30T10:01:40.570Z\",\"secure\":false,"
      "\"httpOnly\":true,\"path\":\"/\"},\"user\":\"bob\"}");
  char *hdr = cookie_for("connect.sid", GOOD_ID, SECRET);
  tether_session *s = load(m, hdr);
  assert_false(tether_session_is_new(s));
  int64_t want;
  assert_int_equal(tether__parse_iso8601("2099-11-30T10:01:40.570Z", &want), 0);
  assert_int_equal(tether_session_expires(s), want);
  json_t *expect = json_pack("{s:s}", "user", "bob");
  json_t *got = session_json(s);
  assert_true(json_equal(got, expect));
  json_decref(got);
  json_decref(expect);
  tether_session_set_int(s, "n", 1);
  char *sc = commit(s); /* touched (now + originalMaxAge), saved, sent: it has an expiry */
  assert_non_null(sc);
  char *json = stored(st, GOOD_ID);
  char iso[32];
  tether__iso8601(tether_session_expires(s), iso);
  char *want_json = tether__asprintf("{\"cookie\":{\"originalMaxAge\":3600000,\"expires\":\"%s\",\"secure\":false,"
                                     "\"httpOnly\":true,\"path\":\"/\"},\"user\":\"bob\",\"n\":1}",
                                     iso);
  assert_string_equal(json, want_json);
  free(want_json), free(json), free(sc);
  tether_session_free(s);

  /* express-session's default cookie (no maxAge): expires null, secure absent */
  put(st, GOOD_ID,
      "{\"cookie\":{\"originalMaxAge\":null,\"expires\":null,\"httpOnly\":true,\"path\":\"/\"},"
      "\"user\":\"bob\",\"cart\":[1,2,{\"sku\":\"x\"}],\"flags\":{\"a\":true,\"b\":null},\"n\":1.5}");
  s = load(m, hdr);
  assert_false(tether_session_is_new(s));
  assert_int_equal(tether_session_expires(s), 0);
  assert_int_equal(tether_session_array_length(s, "cart"), 3);
  assert_null(commit(s)); /* unmodified: touched only */
  tether_session_free(s);

  /* every attribute express-session may store, sameSite true meaning strict */
  put(st, GOOD_ID,
      "{\"cookie\":{\"originalMaxAge\":60000,\"expires\":\"2099-01-01T00:00:00.000Z\",\"secure\":true,"
      "\"httpOnly\":false,\"domain\":\"example.org\",\"path\":\"/shop\",\"sameSite\":true},\"x\":1}");
  o.rolling = 1;
  tether_sessions *rolling = make(&o);
  s = load(rolling, hdr);
  assert_false(tether_session_is_new(s));
  sc = commit(s);
  assert_non_null(strstr(sc, "; Domain=example.org; Path=/shop; Expires="));
  assert_non_null(strstr(sc, " GMT; Secure; SameSite=Strict"));
  assert_null(strstr(sc, "HttpOnly"));
  free(sc);
  tether_session_free(s);
  tether_sessions_free(rolling);
  free(hdr);
  tether_sessions_free(m);
  tether_store_close(st);
}

static void test_corrupt_stored_values(void **state) {
  (void)state;
  static const char *corrupt[] = {
      "",
      "not json",
      "{\"cookie\":",
      "[1,2,3]",
      "\"a string\"",
      "42",
      "null",
      "{}",
      "{\"user\":\"bob\"}",
      "{\"cookie\":5}",
      "{\"cookie\":null}",
      "{\"cookie\":[]}",
      "{\"cookie\":{\"expires\":\"yesterday\"}}",
      "{\"cookie\":{\"expires\":\"2099-13-45T00:00:00.000Z\"}}",
      "{\"cookie\":{\"expires\":\"2099-11-30T10:01:40.570\"}}",
      "{\"cookie\":{\"expires\":12345}}",
      "{\"cookie\":{\"expires\":true}}",
      "{\"cookie\":{\"originalMaxAge\":\"3600000\"}}",
      "{\"cookie\":{\"originalMaxAge\":1e300}}",
      "{\"cookie\":{\"originalMaxAge\":9223372036854775807}}",
      "{\"cookie\":{\"originalMaxAge\":-1e300}}",
  };
  tether_store *st = open_store("memory:");
  tether_session_options o;
  opts_init(&o, st);
  o.rolling = 1;
  tether_sessions *m = make(&o);
  char *hdr = cookie_for("connect.sid", GOOD_ID, SECRET);
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(corrupt); i++) {
    put(st, GOOD_ID, corrupt[i]);
    tether_metrics before = snap(st);
    log_count = 0;
    tether_session *s = NULL;
    assert_int_equal(tether_session_load(m, hdr, &s), 0);
    if (!tether_session_is_new(s) || strcmp(tether_session_id(s), GOOD_ID) == 0)
      fail_msg("stored value '%s' loaded as a session", corrupt[i]);
    tether_metrics after = snap(st);
    assert_int_equal(after.missing - before.missing, 1); /* a lost session */
    assert_int_equal(after.errors - before.errors, 1);
    assert_int_equal(after.loaded - before.loaded, 0);
    assert_int_equal(log_count, 1); /* a warning says why */
    char *sc = commit(s);
    free(sc);
    tether_session_free(s);
  }
  free(hdr);
  tether_sessions_free(m);
  tether_store_close(st);
}

static void test_expired_and_missing(void **state) {
  (void)state;
  tether_store *st = open_store("memory:");
  tether_session_options o;
  opts_init(&o, st);
  tether_sessions *m = make(&o);
  char *hdr = cookie_for("connect.sid", GOOD_ID, SECRET);
  /* the store still has it, but its cookie expired: over, not lost */
  put(st, GOOD_ID,
      "{\"cookie\":{\"originalMaxAge\":1000,\"expires\":\"2020-01-01T00:00:00.000Z\",\"httpOnly\":true,"
      "\"path\":\"/\"},\"user\":\"bob\"}");
  tether_metrics before = snap(st);
  tether_session *s = load(m, hdr);
  assert_true(tether_session_is_new(s));
  assert_false(tether_session_has(s, "user"));
  tether_metrics after = snap(st);
  assert_int_equal(after.missing - before.missing, 0);
  assert_int_equal(after.errors - before.errors, 0);
  assert_int_equal(after.created - before.created, 1);
  tether_session_free(s);
  /* a validly signed cookie whose session the store does not have: lost */
  assert_int_equal(tether_store_destroy(st, GOOD_ID), 0);
  before = snap(st);
  s = load(m, hdr);
  assert_true(tether_session_is_new(s));
  after = snap(st);
  assert_int_equal(after.missing - before.missing, 1);
  assert_int_equal(after.errors - before.errors, 0);
  tether_session_free(s);
  free(hdr);
  tether_sessions_free(m);
  tether_store_close(st);
}

/* ---- the client-side store ---- */

static void test_jwt(void **state) {
  (void)state;
  tether_store *st = open_store("jwt:");
  tether_session_options o;
  opts_init(&o, st);
  o.cookie.max_age_ms = 3600000;
  tether_sessions *m = make(&o);
  char id[129];
  char *sc = create_session(m, "user", "bob", id);
  assert_prefix(sc, "connect.sid=eyJ");
  assert_non_null(strstr(sc, "; Path=/; Expires="));
  char *hdr = cookie_from(sc);

  tether_session *s = load(m, hdr);
  assert_false(tether_session_is_new(s));
  assert_string_equal(tether_session_id(s), id);
  assert_string_equal(tether_session_get_string(s, "user"), "bob");
  tether_session_set_int(s, "n", 2);
  char *sc2 = commit(s); /* modified: a new token */
  assert_prefix(sc2, "connect.sid=eyJ");
  tether_session_free(s);
  char *hdr2 = cookie_from(sc2);
  s = load(m, hdr2);
  assert_int_equal(session_int(s, "n"), 2);
  tether_session_free(s);

  /* tampered tokens: each position of the header, payload and signature */
  size_t vs = strlen("connect.sid=");
  size_t n = strlen(hdr2);
  for (size_t i = vs; i < n; i += 7) {
    if (hdr2[i] == '.') continue;
    char *t = tether__strdup(hdr2);
    t[i] = t[i] == 'A' ? 'B' : 'A';
    s = load(m, t);
    if (!tether_session_is_new(s)) fail_msg("tampered at %zu: accepted", i);
    tether_session_free(s);
    free(t);
  }
  /* a token signed with another secret */
  o.secret[0] = "another secret";
  tether_sessions *other = make(&o);
  s = load(other, hdr2);
  assert_true(tether_session_is_new(s));
  tether_session_free(s);
  tether_sessions_free(other);

  /* logout: the token is the session, so the browser is told to drop it */
  s = load(m, hdr2);
  assert_int_equal(tether_session_destroy(s), 0);
  char *gone = commit(s);
  assert_non_null(gone);
  assert_string_equal(gone, "connect.sid=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly");
  free(gone);
  tether_session_free(s);
  s = load(m, NULL); /* nothing came in: nothing to clear */
  assert_int_equal(tether_session_destroy(s), 0);
  assert_null(commit(s));
  tether_session_free(s);

  /* more than a browser keeps in one cookie */
  s = load(m, NULL);
  char big[5000];
  memset(big, 'x', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  tether_session_set_string(s, "blob", big);
  char *sc3 = (char *)1;
  assert_int_equal(tether_session_commit(s, &sc3), TETHER_E2BIG);
  assert_null(sc3);
  assert_non_null(strstr(tether_last_error(), "4096"));
  tether_session_free(s);

  free(hdr2), free(sc2), free(hdr), free(sc);
  tether_sessions_free(m);
  tether_store_close(st);
}

/* ---- the absolute lifetime ---- */

/* A stored session created `age_ms` ago, with a cookie good for an hour. */
static char *session_json_aged(int64_t age_ms, const char *extra) {
  char iso[32];
  tether__iso8601(tether_now_ms() + 3600000, iso);
  return tether__asprintf("{\"cookie\":{\"originalMaxAge\":3600000,\"expires\":\"%s\",\"httpOnly\":true,"
                          "\"path\":\"/\"},\"_tetherCreated\":%lld%s}",
                          iso, (long long)(tether_now_ms() - age_ms), extra);
}

static void test_absolute_timeout(void **state) {
  (void)state;
  tether_store *st = open_store("memory:");
  tether_session_options o;
  opts_init(&o, st);
  o.cookie.max_age_ms = 3600000;
  o.rolling = 1;
  o.absolute_timeout_ms = 10000;
  tether_sessions *m = make(&o);
  char *hdr = cookie_for("connect.sid", GOOD_ID, SECRET);

  /* 9 s old: loaded; the rolling cookie and the store's TTL stop at creation + 10 s, not in an hour */
  char *json = session_json_aged(9000, ",\"user\":\"bob\"");
  put(st, GOOD_ID, json);
  free(json);
  tether_session *s = load(m, hdr);
  assert_false(tether_session_is_new(s));
  assert_false(tether_session_has(s, "_tetherCreated")); /* not application data */
  int64_t end = tether_session_created(s) + 10000;
  assert_true(end <= tether_now_ms() + 1000 + 50);
  assert_true(tether_session_expires(s) <= end);
  tether_session_set_int(s, "n", 1);
  char *sc = commit(s);
  assert_non_null(sc);
  assert_true(tether_session_expires(s) <= end);
  char date[40];
  tether__http_date(end, date);
  if (strstr(sc, date) == NULL) fail_msg("Set-Cookie '%s' does not expire at %s", sc, date);
  free(sc);
  tether_session_free(s);
  json = stored(st, GOOD_ID);
  assert_non_null(strstr(json, "\"_tetherCreated\":")); /* kept, as express-session keeps it */
  free(json);

  /* 11 s old: over, whatever its cookie says: a new session */
  json = session_json_aged(11000, ",\"user\":\"bob\"");
  put(st, GOOD_ID, json);
  free(json);
  s = load(m, hdr);
  assert_true(tether_session_is_new(s));
  assert_false(tether_session_has(s, "user"));
  assert_true(tether_session_created(s) >= tether_now_ms() - 1000);
  tether_session_free(s);

  /* a session express-session wrote (no creation time): its lifetime starts now, and is saved */
  put(st, GOOD_ID, "{\"cookie\":{\"originalMaxAge\":null,\"httpOnly\":true,\"path\":\"/\"},\"user\":\"eve\"}");
  s = load(m, hdr);
  assert_false(tether_session_is_new(s));
  assert_true(tether_session_created(s) >= tether_now_ms() - 1000);
  free(commit(s));
  tether_session_free(s);
  json = stored(st, GOOD_ID);
  assert_non_null(strstr(json, "\"_tetherCreated\":"));
  assert_non_null(strstr(json, "\"user\":\"eve\""));
  free(json);

  /* off (the default): no creation time stored, nothing enforced */
  o.absolute_timeout_ms = 0;
  tether_sessions *off = make(&o);
  json = session_json_aged(86400000, "");
  put(st, GOOD_ID, json);
  free(json);
  s = load(off, hdr);
  assert_false(tether_session_is_new(s));
  tether_session_free(s);
  s = load(off, NULL);
  tether_session_set_int(s, "x", 1);
  free(commit(s));
  json = stored(st, tether_session_id(s));
  assert_null(strstr(json, "_tetherCreated"));
  free(json);
  tether_session_free(s);
  tether_sessions_free(off);
  o.absolute_timeout_ms = -1;
  tether_sessions *bad = NULL;
  assert_int_equal(tether_sessions_new(&o, &bad), TETHER_EINVAL);
  free(hdr);
  tether_sessions_free(m);
  tether_store_close(st);
}

/* jwt:: the token carries the creation time; renewals stop at the absolute lifetime. */
static void test_absolute_timeout_jwt(void **state) {
  (void)state;
  tether_store *st = open_store("jwt:");
  tether_session_options o;
  opts_init(&o, st);
  o.cookie.max_age_ms = 3600000;
  o.rolling = 1;
  o.absolute_timeout_ms = 10000;
  tether_sessions *m = make(&o);
  /* a token whose session was created 8.5 s ago */
  char *json = session_json_aged(8500, ",\"user\":\"bob\"");
  int err = 0;
  tether__jwt_codec *jc = NULL;
  assert_int_equal(tether__jwt_codec_new((const char *const[]){SECRET}, 1, &jc), 0);
  char *tok = tether__jwt_cookie_encode(jc, GOOD_ID, json, tether_now_ms() + 3600000, &err);
  assert_non_null(tok);
  free(json);
  char *hdr = tether__asprintf("connect.sid=%s", tok);
  free(tok);
  tether_session *s = load(m, hdr);
  assert_false(tether_session_is_new(s));
  char *sc = commit(s); /* rolling: renewed, but only up to creation + 10 s */
  assert_non_null(sc);
  tether_session_free(s);
  char *hdr2 = cookie_from(sc);
  free(sc);
  s = load(m, hdr2);
  assert_false(tether_session_is_new(s)); /* still within its lifetime */
  free(commit(s));
  tether_session_free(s);
  tt_sleep_ms(3100); /* past creation + 10 s, and the token's exp (whole seconds) */
  s = load(m, hdr2);
  assert_true(tether_session_is_new(s)); /* the renewed cookie no longer works */
  tether_session_free(s);
  /* a token the store itself signed without an exp limit: the stored creation time still ends it */
  json = session_json_aged(20000, "");
  tok = tether__jwt_cookie_encode(jc, GOOD_ID, json, tether_now_ms() + 3600000, &err);
  tether__jwt_codec_free(jc);
  free(json);
  char *hdr3 = tether__asprintf("connect.sid=%s", tok);
  free(tok);
  s = load(m, hdr3);
  assert_true(tether_session_is_new(s));
  tether_session_free(s);
  free(hdr3), free(hdr2), free(hdr);
  tether_sessions_free(m);
  tether_store_close(st);
}

/* ---- stored values over the size limit ---- */

static void test_oversized_value(void **state) {
  (void)state;
  tether_store *st = open_store("memory:");
  tether_session_options o;
  opts_init(&o, st);
  o.max_value_bytes = 100;
  tether_sessions *m = make(&o);
  char *hdr = cookie_for("connect.sid", GOOD_ID, SECRET);
  put(st, GOOD_ID, "{\"cookie\":{\"originalMaxAge\":null,\"path\":\"/\"},\"user\":\"bob\"}");
  tether_session *s = load(m, hdr);
  assert_false(tether_session_is_new(s)); /* under the limit */
  tether_session_free(s);
  put(st, GOOD_ID,
      "{\"cookie\":{\"originalMaxAge\":null,\"path\":\"/"
      "\"},\"user\":\"bob\",\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}");
  tether_metrics before = snap(st);
  s = load(m, hdr);
  assert_true(tether_session_is_new(s));
  tether_session_free(s);
  tether_metrics after = snap(st);
  assert_int_equal(after.oversized - before.oversized, 1);
  char text[8192];
  tether_metrics_prometheus(st, text, sizeof(text));
  assert_non_null(strstr(text, "tether_sessions_oversized_total{store=\"memory\"} 1"));
  free(hdr);
  tether_sessions_free(m);
  tether_store_close(st);
}

/* ---- secure cookies and proxies ---- */

static void test_secure_cookie(void **state) {
  (void)state;
  tether_store *st = open_store("memory:");
  tether_session_options o;
  opts_init(&o, st);
  o.cookie.secure = 1;
  tether_sessions *m = make(&o);
  /* secure on, insecure request: saved, but no Set-Cookie (express-session) */
  tether_session *s = load(m, NULL);
  tether_session_set_secure(s, 0);
  tether_session_set_string(s, "user", "bob");
  assert_null(commit(s));
  char *json = stored(st, tether_session_id(s));
  assert_non_null(json);
  free(json);
  tether_session_free(s);
  /* secure on, secure request */
  s = load(m, NULL);
  tether_session_set_secure(s, 1);
  tether_session_set_string(s, "user", "bob");
  char *sc = commit(s);
  assert_non_null(strstr(sc, "; Secure"));
  free(sc);
  tether_session_free(s);
  tether_sessions_free(m);

  /* auto: Secure iff the request is secure, and stored as such */
  o.cookie.secure = TETHER_COOKIE_SECURE_AUTO;
  m = make(&o);
  s = load(m, NULL);
  tether_session_set_secure(s, 0);
  tether_session_set_string(s, "user", "bob");
  sc = commit(s);
  assert_non_null(sc);
  assert_null(strstr(sc, "Secure"));
  json = stored(st, tether_session_id(s));
  assert_non_null(strstr(json, "\"secure\":false"));
  free(json);
  free(sc);
  tether_session_free(s);
  s = load(m, NULL);
  tether_session_set_secure(s, 1);
  tether_session_set_string(s, "user", "bob");
  sc = commit(s);
  assert_non_null(strstr(sc, "; Secure"));
  json = stored(st, tether_session_id(s));
  assert_non_null(strstr(json, "\"secure\":true"));
  free(json);
  free(sc);
  tether_session_free(s);
  tether_sessions_free(m);
  o.cookie.secure = 3;
  tether_sessions *bad = NULL;
  assert_int_equal(tether_sessions_new(&o, &bad), TETHER_EINVAL);
  tether_store_close(st);
}

static void test_trusted_proxies(void **state) {
  (void)state;
  tether_trusted_proxies t = {0};
  assert_int_equal(tether_trusted_proxies_add(&t, "127.0.0.1/32"), 0);
  assert_int_equal(tether_trusted_proxies_add(&t, "10.1.0.0/16"), 0);
  assert_int_equal(tether_trusted_proxies_add(&t, "::1"), 0);
  assert_int_equal(tether_trusted_proxies_add(&t, "fd00::/8"), 0);
  assert_int_equal(tether_trusted_proxies_add(&t, "192.168.1.7/29"), 0); /* host bits dropped */
  assert_int_equal(tether_trusted_proxies_add(&t, "1.2.3.4/33"), TETHER_EINVAL);
  assert_int_equal(tether_trusted_proxies_add(&t, "1.2.3.4/"), TETHER_EINVAL);
  assert_int_equal(tether_trusted_proxies_add(&t, "example.com"), TETHER_EINVAL);
  assert_true(tether_trusted_proxies_contains(&t, "127.0.0.1"));
  assert_true(tether_trusted_proxies_contains(&t, "::ffff:127.0.0.1"));
  assert_false(tether_trusted_proxies_contains(&t, "127.0.0.2"));
  assert_true(tether_trusted_proxies_contains(&t, "10.1.255.3"));
  assert_false(tether_trusted_proxies_contains(&t, "10.2.0.1"));
  assert_true(tether_trusted_proxies_contains(&t, "::1"));
  assert_false(tether_trusted_proxies_contains(&t, "::2"));
  assert_true(tether_trusted_proxies_contains(&t, "fd12:3456::1"));
  assert_false(tether_trusted_proxies_contains(&t, "fe80::1"));
  assert_true(tether_trusted_proxies_contains(&t, "192.168.1.1"));
  assert_false(tether_trusted_proxies_contains(&t, "192.168.1.8"));
  assert_false(tether_trusted_proxies_contains(&t, "junk"));
  /* express's req.secure */
  assert_true(tether_request_is_secure(1, "203.0.113.9", NULL, &t));
  assert_true(tether_request_is_secure(0, "127.0.0.1", "https", &t));
  assert_true(tether_request_is_secure(0, "127.0.0.1", " https , http", &t));
  assert_false(tether_request_is_secure(0, "127.0.0.1", "http, https", &t));
  assert_false(tether_request_is_secure(0, "127.0.0.1", "HTTPS", &t));
  assert_false(tether_request_is_secure(0, "127.0.0.1", NULL, &t));
  assert_false(tether_request_is_secure(0, "203.0.113.9", "https", &t)); /* not a trusted peer */
  assert_false(tether_request_is_secure(0, "127.0.0.1", "https", NULL));
}

/* ---- options ---- */

static void test_options_validation(void **state) {
  (void)state;
  tether_store *st = open_store("memory:");
  tether_session_options o;
  tether_sessions *m = (tether_sessions *)1;

  tether_session_options_init(&o);
  o.store = st;
  assert_int_equal(tether_sessions_new(&o, &m), TETHER_EINVAL); /* no secret */
  assert_null(m);
  assert_non_null(strstr(tether_last_error(), "secret"));
  o.secret[0] = "";
  o.secret_count = 1;
  assert_int_equal(tether_sessions_new(&o, &m), TETHER_EINVAL);
  o.secret[0] = NULL;
  assert_int_equal(tether_sessions_new(&o, &m), TETHER_EINVAL);
  o.secret_count = TETHER_MAX_SECRETS + 1;
  assert_int_equal(tether_sessions_new(&o, &m), TETHER_EINVAL);

  static const char *bad_names[] = {"", "a b", "a;b", "a=b", "a,b", "a\"b", "s\x01", "caf\xc3\xa9", "a\tb", "(x)"};
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(bad_names); i++) {
    opts_init(&o, st);
    o.name = bad_names[i];
    if (tether_sessions_new(&o, &m) != TETHER_EINVAL) fail_msg("cookie name '%s' accepted", bad_names[i]);
    assert_non_null(strstr(tether_last_error(), "cookie name"));
  }
  static const char *bad_attrs[] = {"/a;b", "/a\nb", "/a\rb", "/\x7f", ";"};
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(bad_attrs); i++) {
    opts_init(&o, st);
    o.cookie.path = bad_attrs[i];
    assert_int_equal(tether_sessions_new(&o, &m), TETHER_EINVAL);
    assert_non_null(strstr(tether_last_error(), "path"));
    opts_init(&o, st);
    o.cookie.domain = bad_attrs[i];
    assert_int_equal(tether_sessions_new(&o, &m), TETHER_EINVAL);
  }
  opts_init(&o, st);
  o.store = NULL;
  assert_int_equal(tether_sessions_new(&o, &m), TETHER_EINVAL);
  assert_non_null(strstr(tether_last_error(), "store"));

  /* good ones; the options are copied */
  char name[] = "__Host-sid";
  opts_init(&o, st);
  o.name = name;
  o.cookie.max_age_ms = 1000;
  assert_int_equal(tether_sessions_new(&o, &m), 0);
  name[0] = 'X';
  assert_true(tether_sessions_store(m) == st);
  tether_session *s = load(m, NULL);
  tether_session_set_bool(s, "k", 1);
  char *sc = commit(s);
  assert_prefix(sc, "__Host-sid=s%3A");
  free(sc);
  tether_session_free(s);
  tether_sessions_free(m);
  tether_store_close(st);
}

int main(void) {
  tether_log_set(capture_log, NULL);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_new_unmodified_not_saved),
      cmocka_unit_test(test_new_unmodified_save_uninitialized),
      cmocka_unit_test(test_new_modified),
      cmocka_unit_test(test_loaded_unmodified_touched),
      cmocka_unit_test(test_loaded_modified),
      cmocka_unit_test(test_resave),
      cmocka_unit_test(test_rolling),
      cmocka_unit_test(test_regenerate),
      cmocka_unit_test(test_destroy),
      cmocka_unit_test(test_explicit_save),
      cmocka_unit_test(test_bad_cookies),
      cmocka_unit_test(test_secret_rotation),
      cmocka_unit_test(test_set_cookie_vectors),
      cmocka_unit_test(test_cookie_options_format),
      cmocka_unit_test(test_stored_json_from_node),
      cmocka_unit_test(test_corrupt_stored_values),
      cmocka_unit_test(test_expired_and_missing),
      cmocka_unit_test(test_jwt),
      cmocka_unit_test(test_options_validation),
      cmocka_unit_test(test_absolute_timeout),
      cmocka_unit_test(test_absolute_timeout_jwt),
      cmocka_unit_test(test_oversized_value),
      cmocka_unit_test(test_secure_cookie),
      cmocka_unit_test(test_trusted_proxies),
  };
  return cmocka_run_group_tests_name("session", tests, NULL, NULL);
}
