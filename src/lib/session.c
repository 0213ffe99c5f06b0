/* libtether: sessions with express-session's rules (load, generate, regenerate, destroy, save, touch,
 * Set-Cookie) over any store. The rules are quoted in docs/sessions.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json.h"
#include "json_codec.h"
#include "session_data.h"
#include "store/store_impl.h"
#include "tether/session.h"
#include "tether/store_async.h"
#include "util.h"

#define SID_CAP 129
#define MAX_AGE_LIMIT 8640000000000000LL /* JavaScript's Date range: larger lifetimes would overflow */
/* The session's creation time (epoch ms) in the stored JSON, with the absolute lifetime on: a top-level
 * member, which express-session keeps as it is (it rebuilds "cookie" with its known fields only). */
#define CREATED_KEY "_tetherCreated"

struct tether_sessions {
  char *secret[TETHER_MAX_SECRETS];
  size_t nsecret;
  char *name;
  int resave, save_uninitialized, rolling;
  int64_t absolute_ms;          /* 0: no absolute lifetime */
  size_t max_value;             /* stored values longer than this are corrupt */
  tether_cookie_options cookie; /* domain and path owned */
  tether_store *store;          /* borrowed */
  tether__jwt_codec *jwt;       /* the cookie codec of a client-side store */
};

typedef struct cookie_state {
  int64_t original_max_age; /* ms, < 0: null */
  int64_t expires_ms;       /* 0: none (browser-session cookie) */
  int http_only, secure;
  tether_same_site same_site;
  char *domain; /* owned, or NULL */
  char *path;   /* owned */
} cookie_state;

/* commit_begin's answer: COMMIT_NONE, COMMIT_SET or COMMIT_TOUCH with the JSON in json (malloc'd). */
enum { COMMIT_NONE, COMMIT_SET, COMMIT_TOUCH, COMMIT_DONE };

typedef struct commit_plan {
  int op;
  tether_write_mode mode; /* COMMIT_SET */
  char *json, *hash;      /* the value to write; the data's dump (saved_hash after a successful save) */
  int send_cookie;
} commit_plan;

/* The pending call on an event loop; a session has one at a time (tether/session.h), so it is kept in it. */
typedef struct async_op {
  tether_session *s;
  tether_session_cb load_cb;
  tether_session_commit_cb commit_cb;
  tether_session_done_cb done_cb;
  void *arg;
  commit_plan plan;
  int kind; /* 0 regenerate, 1 destroy */
} async_op;

struct tether_session {
  tether_sessions *mgr;
  char id[SID_CAP];                                 /* req.sessionID */
  char cookie_id[SID_CAP];                          /* the id the request's cookie carried ("" when none): cookieId */
  char original_id[SID_CAP];                        /* originalId */
  char cookie_signed[SID_CAP + TETHER_SIG_LEN + 4]; /* "id.sig" as it came in, when signed with secret[0] ("") */
  char *original_hash;                              /* data as loaded or generated: originalHash */
  char *saved_hash;   /* data as last saved or loaded (NULL: unknown): savedHash; may be original_hash itself */
  tether__sdata data; /* application fields, without "cookie" */
  int have_data;      /* data was loaded or generated */
  cookie_state cookie;
  int destroyed;
  int is_new;
  int stored;          /* the store has this id (loaded or saved): writes are update-only, else create-only */
  int64_t created_ms;  /* creation time, 0 when unknown (absolute lifetime off and none stored) */
  int created_missing; /* loaded without a creation time while the absolute lifetime is on: save it */
  int request_secure;  /* the request came over HTTPS (tether_session_set_secure; 1 until told) */
  int secure_auto;     /* cookie.secure follows request_secure (secure "auto", session generated here) */
  async_op op;         /* the call on an event loop in progress */
};

void tether_session_options_init(tether_session_options *o) {
  memset(o, 0, sizeof(*o));
  o->name = "connect.sid";
  o->cookie.max_age_ms = -1;
  o->cookie.http_only = 1;
  o->cookie.path = "/";
}

/* Cookie attribute values: no control characters, no ';', ASCII only (jshttp/cookie refuses the rest). */
static int attr_ok(const char *s) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c < 32 || c >= 127 || c == ';') return 0;
  }
  return 1;
}

int tether_sessions_new(const tether_session_options *o, tether_sessions **out) {
  *out = NULL;
  if (o->secret_count == 0 || o->secret_count > TETHER_MAX_SECRETS)
    return tether__fail(TETHER_EINVAL, "sessions: a secret is required (1 to %d secrets)", TETHER_MAX_SECRETS);
  for (size_t i = 0; i < o->secret_count; i++)
    if (o->secret[i] == NULL || o->secret[i][0] == '\0')
      return tether__fail(TETHER_EINVAL, "sessions: secret %zu is empty", i + 1);
  const char *name = o->name ? o->name : "connect.sid";
  if (!tether__token_valid(name)) return tether__fail(TETHER_EINVAL, "sessions: cookie name '%s' is not a token", name);
  const char *path = o->cookie.path ? o->cookie.path : "/";
  if (!attr_ok(path) || (o->cookie.domain && !attr_ok(o->cookie.domain)))
    return tether__fail(TETHER_EINVAL, "sessions: cookie path or domain contains a control character or ';'");
  if (o->store == NULL) return tether__fail(TETHER_EINVAL, "sessions: no store");
  if (o->absolute_timeout_ms < 0 || o->absolute_timeout_ms > MAX_AGE_LIMIT)
    return tether__fail(TETHER_EINVAL, "sessions: absolute_timeout_ms must be 0 (off) or positive");
  if (o->cookie.secure < 0 || o->cookie.secure > TETHER_COOKIE_SECURE_AUTO)
    return tether__fail(TETHER_EINVAL, "sessions: cookie.secure must be 0, 1 or TETHER_COOKIE_SECURE_AUTO");
  tether_sessions *m = tether__calloc(1, sizeof(*m));
  for (size_t i = 0; i < o->secret_count; i++) m->secret[i] = tether__strdup(o->secret[i]);
  m->nsecret = o->secret_count;
  m->name = tether__strdup(name);
  m->resave = o->resave;
  m->save_uninitialized = o->save_uninitialized;
  m->rolling = o->rolling;
  m->absolute_ms = o->absolute_timeout_ms;
  m->max_value = o->max_value_bytes ? o->max_value_bytes : TETHER_MAX_VALUE_DEFAULT;
  m->cookie = o->cookie;
  m->cookie.path = tether__strdup(path);
  m->cookie.domain = o->cookie.domain ? tether__strdup(o->cookie.domain) : NULL;
  m->store = o->store;
  int rc = tether_store_client_side(m->store)
               ? tether__jwt_codec_new((const char *const *)m->secret, m->nsecret, &m->jwt)
               : 0;
  if (rc < 0) {
    tether_sessions_free(m);
    return rc;
  }
  *out = m;
  return 0;
}

void tether_sessions_free(tether_sessions *m) {
  if (m == NULL) return;
  for (size_t i = 0; i < m->nsecret; i++) free(m->secret[i]);
  tether__jwt_codec_free(m->jwt);
  free(m->name);
  free((char *)m->cookie.path);
  free((char *)m->cookie.domain);
  free(m);
}

tether_store *tether_sessions_store(const tether_sessions *m) { return m->store; }

/* express-session's hash of the data: its JSON.stringify text, compared as bytes. */
static char *hash_data(const tether_session *s) { return tether__sdata_text(&s->data); }

static int same(const char *a, const char *b) { return a && b && (a == b || strcmp(a, b) == 0); }

/* saved_hash becomes hash (taken). */
static void set_saved(tether_session *s, char *hash) {
  if (s->saved_hash != s->original_hash) free(s->saved_hash);
  s->saved_hash = hash;
}

static int64_t clamp_age(int64_t ms) { return ms > MAX_AGE_LIMIT ? MAX_AGE_LIMIT : ms; }

/* When the absolute lifetime ends (epoch ms), or 0 when there is none. */
static int64_t absolute_end(const tether_session *s) {
  if (s->mgr->absolute_ms == 0 || s->created_ms == 0) return 0;
  return s->created_ms + s->mgr->absolute_ms;
}

/* A cookie expiry never goes past the absolute lifetime (a browser-session cookie stays one). */
static void cap_cookie(tether_session *s) {
  int64_t end = absolute_end(s);
  if (end && s->cookie.expires_ms > end) s->cookie.expires_ms = end;
}

/* The expiry given to the store (and to a jwt: token): the cookie's, bounded by the absolute lifetime. */
static int64_t store_expires(const tether_session *s) {
  int64_t end = absolute_end(s), e = s->cookie.expires_ms;
  return end && (e == 0 || e > end) ? end : e;
}

static void cookie_reset(tether_session *s) {
  const tether_cookie_options *c = &s->mgr->cookie;
  free(s->cookie.domain);
  free(s->cookie.path);
  s->cookie.http_only = c->http_only;
  s->secure_auto = c->secure == TETHER_COOKIE_SECURE_AUTO;
  s->cookie.secure = s->secure_auto ? s->request_secure : c->secure;
  s->cookie.same_site = c->same_site;
  s->cookie.domain = c->domain ? tether__strdup(c->domain) : NULL;
  s->cookie.path = tether__strdup(c->path);
  int64_t now = tether_now_ms();
  if (c->max_age_ms >= 0) {
    s->cookie.original_max_age = clamp_age(c->max_age_ms);
    s->cookie.expires_ms = now + s->cookie.original_max_age;
  } else if (c->expires_ms > 0) {
    s->cookie.original_max_age = clamp_age(c->expires_ms - now);
    s->cookie.expires_ms = c->expires_ms;
  } else {
    s->cookie.original_max_age = -1;
    s->cookie.expires_ms = 0;
  }
  cap_cookie(s);
}

/* store.generate: a new id, empty data, the configured cookie. */
static void generate(tether_session *s) {
  tether_session_id_generate(s->id);
  tether__sdata_clear(&s->data);
  s->have_data = 1;
  s->created_ms = s->mgr->absolute_ms ? tether_now_ms() : 0;
  s->created_missing = 0;
  cookie_reset(s);
  s->is_new = 1;
  s->stored = 0;
  tether__count(s->mgr->store, TETHER__C_CREATED);
}

/* A string member's value, unescaped into out (cap bytes): its length, or -1 when it does not fit. */
static long member_str(const char *p, const tether__json_member *jm, char *out, size_t cap) {
  return tether__json_str_unescape(p + jm->value, jm->value_len, (jm->type & TETHER__JSON_VAL_ESC) != 0, out, cap);
}

/* A string member's value as a cookie attribute (malloc'd), or NULL when it is not one. */
static char *member_attr(const char *p, const tether__json_member *jm) {
  if (TETHER__JSON_TYPE(jm->type) != TETHER__JSON_STRING) return NULL;
  char *v = tether__malloc(jm->value_len + 1);
  member_str(p, jm, v, jm->value_len + 1);
  if (attr_ok(v)) return v;
  free(v);
  return NULL;
}

/* A number's text (JSON.stringify's form) as a double; 0 when it is not a number. */
static int number_of(const char *p, size_t n, double *out) {
  char t[TETHER__JSON_NUMBER_MAX];
  if (n == 0 || n >= sizeof(t) || !(p[0] == '-' || (p[0] >= '0' && p[0] <= '9'))) return 0;
  size_t k = p[0] == '-';
  int64_t v = 0;
  if (n - k <= 15) /* an integer this short (originalMaxAge, a creation time) is exact without strtod */
    for (; k < n && p[k] >= '0' && p[k] <= '9'; k++) v = v * 10 + (p[k] - '0');
  if (k == n && n > (p[0] == '-')) {
    *out = (double)(p[0] == '-' ? -v : v);
    return 1;
  }
  memcpy(t, p, n);
  t[n] = '\0';
  *out = strtod(t, NULL);
  return 1;
}

/* express-session's cookie object, from its JSON.stringify text. -1 when malformed. */
static int cookie_parse(const char *p, size_t n, cookie_state *cs) {
  tether__json_walker w;
  tether__json_member jm;
  tether__json_walk_begin(&w, p, n);
  while (tether__json_walk_next(&w, &jm)) {
    int t = TETHER__JSON_TYPE(jm.type);
    const char *v = p + jm.value;
    double num;
    if (tether__json_member_is(p, &jm, "originalMaxAge", 14)) {
      if ((t == TETHER__JSON_INT || t == TETHER__JSON_REAL) && number_of(v, jm.value_len, &num) &&
          num >= (double)-MAX_AGE_LIMIT && num <= (double)MAX_AGE_LIMIT)
        cs->original_max_age = (int64_t)num;
      else if (t != TETHER__JSON_NULL)
        return -1;
    } else if (tether__json_member_is(p, &jm, "expires", 7)) {
      char iso[64];
      if (t == TETHER__JSON_STRING) {
        if (member_str(p, &jm, iso, sizeof(iso)) < 0 || tether__parse_iso8601(iso, &cs->expires_ms) < 0) return -1;
      } else if (t != TETHER__JSON_NULL) {
        return -1;
      }
    } else if (tether__json_member_is(p, &jm, "httpOnly", 8)) {
      cs->http_only = t == TETHER__JSON_TRUE;
    } else if (tether__json_member_is(p, &jm, "secure", 6)) {
      cs->secure = t == TETHER__JSON_TRUE;
    } else if (tether__json_member_is(p, &jm, "sameSite", 8)) {
      char ss[8] = "";
      if (t == TETHER__JSON_STRING) member_str(p, &jm, ss, sizeof(ss));
      cs->same_site = t == TETHER__JSON_TRUE      ? TETHER_SAME_SITE_STRICT
                      : !strcasecmp(ss, "strict") ? TETHER_SAME_SITE_STRICT
                      : !strcasecmp(ss, "lax")    ? TETHER_SAME_SITE_LAX
                      : !strcasecmp(ss, "none")   ? TETHER_SAME_SITE_NONE
                                                  : TETHER_SAME_SITE_UNSET;
    } else if (tether__json_member_is(p, &jm, "domain", 6)) {
      free(cs->domain);
      cs->domain = member_attr(p, &jm);
    } else if (tether__json_member_is(p, &jm, "path", 4)) {
      free(cs->path);
      cs->path = member_attr(p, &jm);
    }
  }
  if (cs->path == NULL) cs->path = tether__strdup("/");
  return 0;
}

/* Takes express-session's stored JSON apart into s (data + cookie). TETHER_ECORRUPT on anything else. */
static int inflate(tether_session *s, const char *json, size_t len) {
  tether__sdata d = {0};
  if (tether__sdata_parse(&d, json, len, JSON_REJECT_DUPLICATES) < 0) {
    char why[200]; /* the message is rewritten in the buffer it is read from */
    snprintf(why, sizeof(why), "%s", tether_last_error());
    return tether__fail(TETHER_ECORRUPT, "stored session is %s", why);
  }
  tether__member *c = tether__sdata_find(&d, "cookie");
  if (c == NULL || c->text[0] != '{') {
    tether__sdata_clear(&d);
    return tether__fail(TETHER_ECORRUPT, "stored session has no cookie object");
  }
  cookie_state cs = {.original_max_age = -1, .http_only = 1};
  if (cookie_parse(c->text, c->len, &cs) < 0) {
    free(cs.domain);
    free(cs.path);
    tether__sdata_clear(&d);
    return tether__fail(TETHER_ECORRUPT, "stored session has a malformed cookie object");
  }
  int64_t now = tether_now_ms(), created = 0;
  tether__member *cr = tether__sdata_find(&d, CREATED_KEY);
  double num;
  if (cr && number_of(cr->text, cr->len, &num) && num > 0 && num <= (double)MAX_AGE_LIMIT) created = (int64_t)num;
  int64_t absolute = s->mgr->absolute_ms;
  if ((cs.expires_ms != 0 && cs.expires_ms <= now) || (absolute && created && created + absolute <= now)) {
    free(cs.domain);
    free(cs.path);
    tether__sdata_clear(&d);
    return TETHER_ENOTFOUND; /* expired (or past its absolute lifetime): not lost, just over */
  }
  s->original_hash = tether__sdata_text_after(&d, json, len, "cookie", CREATED_KEY); /* NULL: load_finish makes it */
  tether__sdata_del(&d, "cookie");
  tether__sdata_del(&d, CREATED_KEY);
  s->created_ms = created ? created : absolute ? now : 0; /* unknown: the lifetime starts now */
  s->created_missing = absolute && !created;
  free(s->cookie.domain);
  free(s->cookie.path);
  s->cookie = cs;
  cap_cookie(s);
  tether__sdata_clear(&s->data);
  s->data = d;
  s->have_data = 1;
  return 0;
}

/* The id a signed session cookie carries, or "" when there is none that verifies. For client-side
 * stores the cookie is the token itself and is decoded into s. */
static int read_cookie(tether_session *s, const char *header, char **client_json) {
  tether_sessions *m = s->mgr;
  s->cookie_id[0] = '\0';
  if (header == NULL) return 0;
  size_t cap = strlen(header) + 1;
  char small_raw[512], small_val[512]; /* an ordinary Cookie header: no allocation */
  char *raw = cap <= sizeof(small_raw) ? small_raw : tether__malloc(cap);
  int n = tether_cookie_get(header, m->name, raw, cap);
  if (n <= 0) goto done;
  if (tether_store_client_side(m->store)) {
    char *sid = NULL;
    if (tether__jwt_cookie_decode(m->jwt, raw, &sid, client_json) == 0) {
      if (tether__sid_valid(sid))
        snprintf(s->cookie_id, SID_CAP, "%s", sid);
      else {
        free(*client_json);
        *client_json = NULL;
      }
    } else {
      tether__log(TETHER_LOG_DEBUG, "session cookie token rejected: %s", tether_last_error());
    }
    free(sid);
    goto done;
  }
  if (strncmp(raw, "s:", 2) != 0) goto done; /* unsigned cookie: ignored */
  char *val = cap <= sizeof(small_val) ? small_val : tether__malloc(cap);
  int vl = tether_cookie_unsign(raw + 2, (const char *const *)m->secret, m->nsecret, val, cap);
  if (vl > 0 && vl < SID_CAP && tether__sid_valid(val)) {
    memcpy(s->cookie_id, val, (size_t)vl + 1);
    /* with one secret, the Set-Cookie for this id is this value again: no second HMAC */
    if (m->nsecret == 1 && strlen(raw + 2) < sizeof(s->cookie_signed)) strcpy(s->cookie_signed, raw + 2);
  }
  if (val != small_val) free(val);
done:
  if (raw != small_raw) free(raw);
  return 0;
}

/* Loading in two halves around the store's get, shared by the blocking and the asynchronous calls.
 * load_begin reads the cookie; *fetch says the store must be asked for s->cookie_id. */
static tether_session *load_begin(tether_sessions *m, const char *header, char **json, size_t *len, int *fetch) {
  tether_session *s = tether__calloc(1, sizeof(*s));
  s->mgr = m;
  s->request_secure = 1;
  *json = NULL;
  *len = 0;
  *fetch = 0;
  read_cookie(s, header, json);
  if (s->cookie_id[0] != '\0' && !tether_store_client_side(m->store)) *fetch = 1;
  return s;
}

/* rc and json are the store's answer (or the client-side token's content). Returns 0 with the session
 * ready, or a store error (s freed). Takes json. */
static int load_finish(tether_session *s, int rc, char *json, size_t len) {
  tether_sessions *m = s->mgr;
  if (s->cookie_id[0] != '\0') {
    if (tether_store_client_side(m->store)) {
      len = json ? strlen(json) : 0;
      rc = json ? 0 : TETHER_ENOTFOUND;
    } else if (rc < 0 && rc != TETHER_ENOTFOUND && rc != TETHER_ECORRUPT && rc != TETHER_E2BIG) {
      /* data that is not a session (ECORRUPT) is a lost session, as inflate() decides below */
      free(json);
      tether_session_free(s);
      return rc;
    }
    if ((rc == 0 && len > m->max_value) || rc == TETHER_E2BIG) {
      /* not parsed (nor, where the store can, fetched: E2BIG): a huge value would cost seconds and hundreds
       * of MB to parse */
      tether__log(TETHER_LOG_WARN,
                  "session %.6s...: stored value is over the %zu-byte limit (%zu bytes read); "
                  "starting a new session",
                  s->cookie_id, m->max_value, rc == 0 ? len : 0);
      tether__count(m->store, TETHER__C_OVERSIZED);
      tether__count(m->store, TETHER__C_MISSING);
      if (rc == 0) tether__count(m->store, TETHER__C_ERRORS); /* E2BIG was counted by the store */
      rc = TETHER_ECORRUPT;
    } else if (rc == 0) {
      rc = inflate(s, json, len);
      if (rc == TETHER_ECORRUPT) {
        tether__log(TETHER_LOG_WARN, "session %.6s...: %s; starting a new session", s->cookie_id, tether_last_error());
        tether__count(m->store, TETHER__C_MISSING);
        tether__count(m->store, TETHER__C_ERRORS);
      }
    } else {
      tether__log(TETHER_LOG_INFO, "session %.6s...: signed cookie but no such session in the %s store (lost)",
                  s->cookie_id, tether_store_kind(m->store));
      tether__count(m->store, TETHER__C_MISSING);
    }
    if (rc == 0) {
      memcpy(s->id, s->cookie_id, SID_CAP);
      s->stored = 1;
      tether__count(m->store, TETHER__C_LOADED);
    }
  }
  free(json);
  if (!s->have_data) generate(s);
  memcpy(s->original_id, s->id, SID_CAP);
  if (s->original_hash == NULL) s->original_hash = hash_data(s);
  if (!s->is_new && !m->resave) s->saved_hash = s->original_hash; /* the same text: shared, not copied */
  return 0;
}

int tether_session_load(tether_sessions *m, const char *header, tether_session **out) {
  *out = NULL;
  char *json;
  size_t len;
  int fetch, rc = 0;
  tether_session *s = load_begin(m, header, &json, &len, &fetch);
  if (fetch) rc = tether_store_get(m->store, s->cookie_id, &json, &len);
  rc = load_finish(s, rc, json, len);
  if (rc == 0) *out = s;
  return rc;
}

const char *tether_session_id(const tether_session *s) { return s->id; }
int tether_session_is_new(const tether_session *s) { return s->is_new; }
tether__sdata *tether__session_data(const tether_session *s) { return (tether__sdata *)&s->data; }
int64_t tether_session_expires(const tether_session *s) { return s->cookie.expires_ms; }

void tether_session_set_max_age(tether_session *s, int64_t ms) {
  s->cookie.original_max_age = ms < 0 ? -1 : clamp_age(ms);
  s->cookie.expires_ms = ms < 0 ? 0 : tether_now_ms() + s->cookie.original_max_age;
  cap_cookie(s);
}

void tether_session_set_secure(tether_session *s, int request_secure) {
  s->request_secure = request_secure != 0;
  if (s->secure_auto) s->cookie.secure = s->request_secure;
}

int64_t tether_session_created(const tether_session *s) { return s->created_ms; }

static void touch_cookie(tether_session *s) {
  if (s->cookie.original_max_age >= 0) s->cookie.expires_ms = tether_now_ms() + s->cookie.original_max_age;
  cap_cookie(s);
}

#define APPEND_LIT(b, lit) tether__buf_append((b), (lit), sizeof(lit) - 1)

/* Cookie attribute values are printable ASCII (attr_ok). */
static void json_str(tether__buf *b, const char *v) { tether__json_write_string(b, v, strlen(v)); }

/* express-session's stored JSON, {"cookie":{...},<data>}: the cookie printed, the data's members copied as
 * the text they hold (an application's own "cookie" member loses to the session's). hash: the data's text
 * (hash_data), whose members are copied from it when none is skipped, or NULL. */
static char *serialize_with(const tether_session *s, const char *hash) {
  tether__buf b = {0};
  tether__buf_reserve(&b, 256 + tether__sdata_size(&s->data)); /* the cookie and the members: one allocation */
  APPEND_LIT(&b, "{\"cookie\":{\"originalMaxAge\":");
  char num[TETHER__JSON_NUMBER_MAX];
  if (s->cookie.original_max_age >= 0)
    tether__buf_append(&b, num, tether__json_int(s->cookie.original_max_age, num));
  else
    APPEND_LIT(&b, "null");
  if (s->cookie.expires_ms) {
    char iso[32];
    tether__iso8601(s->cookie.expires_ms, iso);
    APPEND_LIT(&b, ",\"expires\":\"");
    tether__buf_append(&b, iso, strlen(iso));
    APPEND_LIT(&b, "\"");
  }
  if (s->cookie.secure)
    APPEND_LIT(&b, ",\"secure\":true");
  else
    APPEND_LIT(&b, ",\"secure\":false");
  if (s->cookie.http_only)
    APPEND_LIT(&b, ",\"httpOnly\":true");
  else
    APPEND_LIT(&b, ",\"httpOnly\":false");
  if (s->cookie.domain) {
    APPEND_LIT(&b, ",\"domain\":");
    json_str(&b, s->cookie.domain);
  }
  APPEND_LIT(&b, ",\"path\":");
  json_str(&b, s->cookie.path);
  static const char *ss[] = {NULL, "strict", "lax", "none"};
  if (s->cookie.same_site) tether__buf_appendf(&b, ",\"sameSite\":\"%s\"", ss[s->cookie.same_site]);
  tether__buf_append(&b, "}", 1);
  if (s->created_ms) {
    APPEND_LIT(&b, ",\"" CREATED_KEY "\":");
    tether__buf_append(&b, num, tether__json_int(s->created_ms, num));
  }
  size_t hl = hash ? strlen(hash) : 0;
  if (hl > 2 && tether__sdata_find(&s->data, "cookie") == NULL && tether__sdata_find(&s->data, CREATED_KEY) == NULL) {
    tether__buf_append(&b, ",", 1); /* "{m1,m2}": its members, written once for both */
    tether__buf_append(&b, hash + 1, hl - 1);
    return b.data;
  }
  if (hash == NULL || hl > 2) tether__sdata_write_members(&s->data, &b, "cookie", s->created_ms ? CREATED_KEY : NULL);
  tether__buf_append(&b, "}", 1);
  return b.data;
}

static char *serialize(const tether_session *s) { return serialize_with(s, NULL); }

char *tether_session_serialize(const tether_session *s) { return serialize(s); }

/* A session that came from the store is only ever updated (a logout racing this request has deleted it:
 * it must stay deleted); a new one is only ever created. */
static tether_write_mode write_mode(const tether_session *s) {
  return s->stored ? TETHER_WRITE_UPDATE : TETHER_WRITE_CREATE;
}

/* The session was destroyed while this request had it: nothing is saved, no cookie goes out. */
static void revoked(tether_session *s) {
  tether__log(TETHER_LOG_INFO, "session %.6s...: destroyed by another request meanwhile (logout); not saved", s->id);
  tether__count(s->mgr->store, TETHER__C_REVOKED);
  s->destroyed = 1;
  s->stored = 0;
}

/* Saves with the data's compact dump already made (hash, owned by the callee: it becomes saved_hash). */
static int save_with(tether_session *s, char *hash) {
  tether_store *st = s->mgr->store;
  int rc = 0;
  if (tether_store_client_side(st)) {
    tether__count(st, TETHER__C_SAVED); /* the Set-Cookie carries it */
  } else {
    char *json = serialize(s);
    rc = tether_store_write(st, s->id, json, strlen(json), store_expires(s), write_mode(s));
    free(json);
  }
  if (rc == 0) {
    set_saved(s, hash);
    s->stored = 1;
  } else {
    free(hash);
  }
  if (rc == TETHER_ENOTFOUND) revoked(s);
  return rc;
}

int tether_session_save(tether_session *s) {
  if (s->destroyed) return tether__fail(TETHER_EINVAL, "session was destroyed");
  return save_with(s, hash_data(s));
}

int tether_session_regenerate(tether_session *s) {
  tether_store *st = s->mgr->store;
  int rc = 0;
  if (!s->is_new && !tether_store_client_side(st)) rc = tether_store_destroy(st, s->id);
  if (rc < 0) return rc;
  generate(s);
  s->destroyed = 0;
  return 0;
}

int tether_session_destroy(tether_session *s) {
  tether_store *st = s->mgr->store;
  int rc = 0;
  if (!tether_store_client_side(st))
    rc = tether_store_destroy(st, s->id);
  else
    tether__count(st, TETHER__C_DESTROYED);
  if (rc == 0) {
    s->destroyed = 1;
    s->stored = 0;
  }
  return rc;
}

static int is_modified(const tether_session *s, const char *hash) {
  return strcmp(s->original_id, s->id) != 0 || !same(s->original_hash, hash);
}

static int is_saved(const tether_session *s, const char *hash) {
  return strcmp(s->original_id, s->id) == 0 && same(s->saved_hash, hash);
}

static int should_save(const tether_session *s, const char *hash) {
  const tether_sessions *m = s->mgr;
  if (s->created_missing && s->stored) return 1; /* record when the absolute lifetime started */
  if (!m->save_uninitialized && s->saved_hash == NULL && strcmp(s->cookie_id, s->id) != 0) return is_modified(s, hash);
  return !is_saved(s, hash);
}

static int should_set_cookie(const tether_session *s, const char *hash) {
  const tether_sessions *m = s->mgr;
  if (strcmp(s->cookie_id, s->id) != 0) return m->save_uninitialized || is_modified(s, hash);
  return m->rolling || (s->cookie.expires_ms != 0 && is_modified(s, hash));
}

static void append_str(tether__buf *b, const char *v) { tether__buf_append(b, v, strlen(v)); }

static char *set_cookie_value(tether_session *s, int *err) {
  tether_sessions *m = s->mgr;
  tether__buf b = {0};
  tether__buf_reserve(&b, 192);
  append_str(&b, m->name);
  APPEND_LIT(&b, "=");
  if (tether_store_client_side(m->store)) {
    char *json = tether_session_serialize(s);
    char *tok = tether__jwt_cookie_encode(m->jwt, s->id, json, store_expires(s), err);
    free(json);
    if (tok == NULL) {
      tether__buf_free(&b);
      return NULL;
    }
    append_str(&b, tok);
    free(tok);
  } else {
    char signed_val[SID_CAP + TETHER_SIG_LEN + 4], enc[3 * sizeof(signed_val) + 4] = "s%3A";
    if (s->cookie_signed[0] && strcmp(s->id, s->cookie_id) == 0)
      memcpy(signed_val, s->cookie_signed, sizeof(signed_val));
    else
      tether_cookie_sign(s->id, m->secret[0], signed_val, sizeof(signed_val));
    size_t o = 4;
    for (const char *p = signed_val;;) { /* encodeURIComponent: runs copied, '+', '/' and '=' escaped */
      size_t run = strcspn(p, "+/=");
      memcpy(enc + o, p, run);
      o += run;
      p += run;
      if (*p == '\0') break;
      memcpy(enc + o, *p == '+' ? "%2B" : *p == '/' ? "%2F" : "%3D", 3);
      o += 3;
      p++;
    }
    tether__buf_append(&b, enc, o);
  }
  if (s->cookie.domain) {
    APPEND_LIT(&b, "; Domain=");
    append_str(&b, s->cookie.domain);
  }
  APPEND_LIT(&b, "; Path=");
  append_str(&b, s->cookie.path);
  if (s->cookie.expires_ms) {
    char date[40];
    tether__http_date(s->cookie.expires_ms, date);
    APPEND_LIT(&b, "; Expires=");
    append_str(&b, date);
  }
  if (s->cookie.http_only) APPEND_LIT(&b, "; HttpOnly");
  if (s->cookie.secure) APPEND_LIT(&b, "; Secure");
  static const char *ss[] = {NULL, "Strict", "Lax", "None"};
  if (s->cookie.same_site) {
    APPEND_LIT(&b, "; SameSite=");
    append_str(&b, ss[s->cookie.same_site]);
  }
  return b.data;
}

/* Logout with a client-side store: the token is the session, so the browser must drop it. */
static char *clear_cookie_value(tether_session *s) {
  tether__buf b = {0};
  tether__buf_appendf(&b, "%s=", s->mgr->name);
  if (s->cookie.domain) tether__buf_appendf(&b, "; Domain=%s", s->cookie.domain);
  tether__buf_appendf(&b, "; Path=%s; Expires=Thu, 01 Jan 1970 00:00:00 GMT", s->cookie.path);
  if (s->cookie.http_only) tether__buf_appendf(&b, "; HttpOnly");
  if (s->cookie.secure) tether__buf_appendf(&b, "; Secure");
  return b.data;
}

/* express-session: a Secure cookie is only sent in answer to a secure request. */
static int secure_ok(const tether_session *s) { return !s->cookie.secure || s->request_secure; }

/* Committing in two halves around the store's write, shared by the blocking and the asynchronous calls.
 * commit_begin applies express-session's rules and says what to write (commit_plan). */
static void commit_begin(tether_session *s, commit_plan *p) {
  tether_store *st = s->mgr->store;
  memset(p, 0, sizeof(*p));
  if (s->destroyed) {
    p->op = COMMIT_DONE;
    return;
  }
  p->hash = hash_data(s);
  p->send_cookie = should_set_cookie(s, p->hash);
  touch_cookie(s);
  if (should_save(s, p->hash)) {
    if (tether_store_client_side(st)) {
      tether__count(st, TETHER__C_SAVED); /* the Set-Cookie carries it */
      set_saved(s, p->hash);
      p->hash = NULL;
      p->send_cookie = 1;
    } else {
      p->op = COMMIT_SET;
      p->mode = write_mode(s);
      p->json = serialize_with(s, p->hash);
    }
  } else if (strcmp(s->cookie_id, s->id) == 0) {
    if (tether_store_client_side(st)) {
      /* the token carries the expiry: refreshing it means sending a new one */
      if (s->cookie.expires_ms != 0) {
        p->send_cookie = 1;
        tether__count(st, TETHER__C_TOUCHED);
      }
    } else {
      p->op = COMMIT_TOUCH;
      p->json = serialize_with(s, p->hash);
    }
  }
}

/* rc is the store write's result. Returns 0 with *set_cookie (or NULL), or the error. */
static int commit_finish(tether_session *s, commit_plan *p, int rc, char **set_cookie) {
  *set_cookie = NULL;
  free(p->json);
  p->json = NULL;
  if (p->op == COMMIT_DONE) {
    if (tether_store_client_side(s->mgr->store) && s->cookie_id[0] != '\0' && secure_ok(s))
      *set_cookie = clear_cookie_value(s);
    return 0;
  }
  if (p->op == COMMIT_SET && rc == 0) {
    set_saved(s, p->hash);
    p->hash = NULL;
    s->stored = 1;
    s->created_missing = 0;
  }
  free(p->hash);
  p->hash = NULL;
  if (p->op == COMMIT_SET && rc == TETHER_ENOTFOUND && p->mode == TETHER_WRITE_UPDATE) {
    revoked(s);
    return 0;
  }
  if (rc < 0) return rc;
  if (p->send_cookie && !secure_ok(s)) {
    tether__log(TETHER_LOG_DEBUG, "session %.6s...: Secure cookie not sent over an insecure request", s->id);
  } else if (p->send_cookie) {
    int err = 0;
    *set_cookie = set_cookie_value(s, &err);
    if (*set_cookie == NULL) return err;
  }
  return 0;
}

int tether_session_commit(tether_session *s, char **set_cookie) {
  commit_plan p;
  commit_begin(s, &p);
  tether_store *st = s->mgr->store;
  int rc = 0;
  if (p.op == COMMIT_SET)
    rc = tether_store_write(st, s->id, p.json, strlen(p.json), store_expires(s), p.mode);
  else if (p.op == COMMIT_TOUCH)
    rc = tether_store_touch(st, s->id, p.json, strlen(p.json), store_expires(s));
  return commit_finish(s, &p, rc, set_cookie);
}

/* ---- on an event loop (tether/store_async.h) ---- */

static void load_got(void *arg, int rc, char *json, size_t len) {
  async_op *op = arg;
  tether_session *s = op->s;
  tether_session_cb cb = op->load_cb;
  void *cb_arg = op->arg;
  rc = load_finish(s, rc, json, len); /* frees s on an error */
  cb(cb_arg, rc, rc == 0 ? s : NULL);
}

int tether_session_load_async(tether_sessions *m, tether_astore *a, const char *header, tether_session_cb cb,
                              void *arg) {
  char *json;
  size_t len;
  int fetch;
  tether_session *s = load_begin(m, header, &json, &len, &fetch);
  async_op *op = &s->op;
  op->s = s;
  op->load_cb = cb;
  op->arg = arg;
  if (!fetch) { /* nothing to ask the store: answer now, still through the callback */
    load_got(op, 0, json, len);
    return 0;
  }
  int rc = tether_astore_get(a, s->cookie_id, load_got, op);
  if (rc < 0) tether_session_free(s);
  return rc;
}

static void commit_wrote(void *arg, int rc) {
  async_op *op = arg;
  char *set_cookie = NULL;
  rc = commit_finish(op->s, &op->plan, rc, &set_cookie);
  op->commit_cb(op->arg, rc, set_cookie); /* which may free the session, and op with it */
}

int tether_session_commit_async(tether_session *s, tether_astore *a, tether_session_commit_cb cb, void *arg) {
  async_op *op = &s->op;
  memset(op, 0, sizeof(*op));
  op->s = s;
  op->commit_cb = cb;
  op->arg = arg;
  commit_begin(s, &op->plan);
  int rc = 0;
  if (op->plan.op == COMMIT_SET)
    rc = tether_astore_write(a, s->id, op->plan.json, strlen(op->plan.json), store_expires(s), op->plan.mode,
                             commit_wrote, op);
  else if (op->plan.op == COMMIT_TOUCH)
    rc = tether_astore_touch(a, s->id, op->plan.json, strlen(op->plan.json), store_expires(s), commit_wrote, op);
  else
    commit_wrote(op, 0);
  if (rc < 0) {
    char *ignored = NULL;
    commit_finish(s, &op->plan, rc, &ignored);
    free(ignored);
  }
  return rc;
}

static void destroyed(void *arg, int rc) {
  async_op *op = arg;
  tether_session *s = op->s;
  if (rc == 0) {
    if (op->kind == 0) {
      generate(s);
      s->destroyed = 0;
    } else {
      s->destroyed = 1;
      s->stored = 0;
    }
  }
  op->done_cb(op->arg, rc);
}

static int destroy_async(tether_session *s, tether_astore *a, int kind, tether_session_done_cb cb, void *arg) {
  tether_store *st = s->mgr->store;
  async_op *op = &s->op;
  memset(op, 0, sizeof(*op));
  op->s = s;
  op->done_cb = cb;
  op->arg = arg;
  op->kind = kind;
  int skip = tether_store_client_side(st) || (kind == 0 && s->is_new);
  if (skip) {
    if (kind == 1 && tether_store_client_side(st)) tether__count(st, TETHER__C_DESTROYED);
    destroyed(op, 0);
    return 0;
  }
  return tether_astore_destroy(a, s->id, destroyed, op);
}

int tether_session_regenerate_async(tether_session *s, tether_astore *a, tether_session_done_cb cb, void *arg) {
  return destroy_async(s, a, 0, cb, arg);
}

int tether_session_destroy_async(tether_session *s, tether_astore *a, tether_session_done_cb cb, void *arg) {
  return destroy_async(s, a, 1, cb, arg);
}

void tether_session_free(tether_session *s) {
  if (s == NULL) return;
  tether__sdata_clear(&s->data);
  set_saved(s, NULL);
  free(s->original_hash);
  free(s->cookie.domain);
  free(s->cookie.path);
  free(s);
}
