/* The client-side jwt: store: the request flow through cookies, rotation, tampering, the size bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conformance.h"
#include "tether/session.h"

static tether_sessions *make(tether_store *st, const char *s1, const char *s2) {
  tether_session_options o;
  tether_session_options_init(&o);
  o.secret[0] = s1;
  o.secret[1] = s2;
  o.secret_count = s2 ? 2 : 1;
  o.store = st;
  o.cookie.max_age_ms = 600000;
  tether_sessions *m;
  assert_int_equal(tether_sessions_new(&o, &m), 0);
  return m;
}

/* Issues a session with data user=NAME and returns "connect.sid=<token>". */
static char *issue(tether_sessions *m, const char *user) {
  tether_session *s;
  char *sc;
  assert_int_equal(tether_session_load(m, NULL, &s), 0);
  tether_session_set_string(s, "user", user);
  assert_int_equal(tether_session_commit(s, &sc), 0);
  assert_non_null(sc);
  tether_session_free(s);
  sc[strcspn(sc, ";")] = '\0';
  return sc;
}

static const char *user_of(tether_sessions *m, const char *cookie) {
  static char user[64];
  tether_session *s;
  assert_int_equal(tether_session_load(m, cookie, &s), 0);
  const char *u = tether_session_get_string(s, "user");
  snprintf(user, sizeof(user), "%s", u ? u : "");
  tether_session_free(s);
  return user;
}

static void test_rotation_and_tamper(void **state) {
  (void)state;
  tether_store *st;
  assert_int_equal(tether_store_open("jwt:", &st), 0);
  assert_true(tether_store_client_side(st));
  tether_sessions *old = make(st, "old-secret", NULL);
  tether_sessions *rotated = make(st, "new-secret", "old-secret");
  tether_sessions *other = make(st, "another", NULL);
  char *c = issue(old, "bob");
  assert_string_equal(user_of(rotated, c), "bob"); /* accepted through the second secret */
  assert_string_equal(user_of(other, c), "");      /* a stranger's secret: a new session */
  /* flip one character of the payload: the signature no longer verifies */
  size_t k = strcspn(c, ".") + 5;
  c[k] = c[k] == 'A' ? 'B' : 'A';
  assert_string_equal(user_of(old, c), "");
  free(c);
  tether_sessions_free(old);
  tether_sessions_free(rotated);
  tether_sessions_free(other);
  tether_store_close(st);
}

static void test_size_bound(void **state) {
  (void)state;
  tether_store *st;
  assert_int_equal(tether_store_open("jwt:", &st), 0);
  tether_sessions *m = make(st, "k", NULL);
  tether_session *s;
  char *sc = NULL;
  assert_int_equal(tether_session_load(m, NULL, &s), 0);
  char big[5000];
  memset(big, 'x', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  tether_session_set_string(s, "blob", big);
  assert_int_equal(tether_session_commit(s, &sc), TETHER_E2BIG);
  assert_null(sc);
  assert_non_null(strstr(tether_last_error(), "4096"));
  tether_session_free(s);
  tether_sessions_free(m);
  tether_store_close(st);
  assert_int_equal(tether_store_open("jwt:x", &st), TETHER_EINVAL);
  tether_store_close(st);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_rotation_and_tamper), cmocka_unit_test(test_size_bound)};
  int failed = cmocka_run_group_tests_name("jwt", tests, NULL, NULL);
  failed += tt_conformance_run("jwt conformance", "jwt:");
  return failed ? 1 : 0;
}
