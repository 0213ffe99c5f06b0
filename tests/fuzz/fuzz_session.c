/* libFuzzer harness: sessions end to end over the memory store. The first byte picks the path:
 *   stored JSON: the rest is a session's value in the store, loaded through a validly signed cookie,
 *                maybe modified, committed; what libtether then writes must load back;
 *   Cookie header: the rest is the request's Cookie header, against a store holding one session;
 *   jwt cookie: the rest is the client-side store's cookie value.
 * The other bits of the first byte choose the options (rolling, resave, saveUninitialized, maxAge). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_impl.h"
#include "tether/session.h"
#include "util.h"

#define FIXED_ID "kX3J0bUw2pQ-hq_Zsc9aN1eT7vYbLmRo"
#define ECHO_ID "Zm9vYmFy0123456789-_abcdefghijkl"

static char *fixed_cookie, *echo_cookie;

static void quiet(tether_log_level level, const char *msg, void *arg) { (void)level, (void)msg, (void)arg; }

static char *signed_cookie(const char *id) {
  char s[256];
  if (tether_cookie_sign(id, "keyboard cat", s, sizeof(s)) < 0) abort();
  tether__buf b = {0};
  tether__buf_appendf(&b, "connect.sid=s%%3A");
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

static tether_sessions *make(tether_store *st, int flags) {
  tether_session_options o;
  tether_session_options_init(&o);
  o.secret[0] = "keyboard cat";
  o.secret[1] = "old secret";
  o.secret_count = 2;
  o.store = st;
  o.rolling = flags & 1;
  o.resave = (flags >> 1) & 1;
  o.save_uninitialized = (flags >> 2) & 1;
  if (flags & 8) {
    o.cookie.max_age_ms = 3600000;
    o.cookie.domain = "example.com";
    o.cookie.same_site = TETHER_SAME_SITE_LAX;
    o.cookie.secure = 1;
  }
  tether_sessions *m;
  if (tether_sessions_new(&o, &m) != 0) abort();
  return m;
}

static void init(void) {
  tether_log_set(quiet, NULL);
  fixed_cookie = signed_cookie(FIXED_ID);
  echo_cookie = signed_cookie(ECHO_ID);
}

/* One request; modify: 0 leave the data alone, 1 add a field, 2 regenerate, 3 destroy. */
static tether_session *request(tether_sessions *m, const char *header, int modify) {
  tether_session *s = NULL;
  int rc = tether_session_load(m, header, &s);
  if (rc != 0 || s == NULL) abort(); /* the memory store never fails: a new session at worst */
  if (!tether__sid_valid(tether_session_id(s))) abort();
  if (modify == 1) tether_session_set_int(s, "fuzz", 1);
  if (modify == 2 && tether_session_regenerate(s) != 0) abort();
  if (modify == 3 && tether_session_destroy(s) != 0) abort();
  char *set_cookie = NULL;
  rc = tether_session_commit(s, &set_cookie);
  if (rc != 0 && rc != TETHER_E2BIG) abort();
  if (set_cookie && (strncmp(set_cookie, "connect.sid=", 12) != 0 || strpbrk(set_cookie, "\r\n") != NULL)) abort();
  free(set_cookie);
  return s;
}

/* A fresh store and manager per input: nothing outlives a run, so libFuzzer's leak check stays cheap
 * and every input starts from the same state. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (fixed_cookie == NULL) init();
  if (size < 1) return 0;
  int mode = (data[0] & 3) % 3, flags = (data[0] >> 2) & 15, modify = (data[0] >> 6) & 3;
  const char *rest = (const char *)data + 1;
  size_t n = size - 1;

  tether_store *mem = NULL, *jwt = NULL;
  if (tether_store_open("memory:", &mem) != 0 || tether_store_open("jwt:", &jwt) != 0) abort();
  tether_sessions *m = make(mode == 2 ? jwt : mem, flags);
  if (mode == 0) {
    if (tether_store_set(mem, FIXED_ID, rest, n, 0) != 0) abort();
    tether_session *s = request(m, fixed_cookie, modify);
    /* whatever libtether makes of it, it writes something it reads back */
    char *json = tether_session_serialize(s);
    if (json == NULL) abort();
    if (tether_store_set(mem, ECHO_ID, json, strlen(json), 0) != 0) abort();
    tether_metrics before, after;
    tether_store_metrics(mem, &before);
    tether_session *e = NULL;
    if (tether_session_load(m, echo_cookie, &e) != 0) abort();
    tether_store_metrics(mem, &after);
    if (after.errors != before.errors) abort(); /* never corrupt */
    tether_session_free(e);
    free(json);
    tether_session_free(s);
  } else if (mode == 1) {
    char *header = malloc(n + 1);
    memcpy(header, rest, n);
    header[n] = '\0';
    static const char stored[] = "{\"cookie\":{\"originalMaxAge\":null},\"u\":1}";
    if (tether_store_set(mem, FIXED_ID, stored, sizeof(stored) - 1, 0) != 0) abort();
    tether_session *s = request(m, header, modify);
    tether_session_free(s);
    free(header);
  } else {
    char *header = malloc(n + 16);
    memcpy(header, "connect.sid=", 12);
    memcpy(header + 12, rest, n);
    header[12 + n] = '\0';
    tether_session *s = request(m, header, modify);
    tether_session_free(s);
    free(header);
  }
  tether_sessions_free(m);
  tether_store_close(jwt);
  tether_store_close(mem);
  return 0;
}
