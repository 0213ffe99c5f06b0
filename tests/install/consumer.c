/* A program outside the tree, built against an installed libtether: a memory: store, one session saved
 * and loaded again through its signed cookie. Prints "consumer OK" and the library it ran with. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tether/session.h>
#include <tether/store.h>

static int fail(const char *what, int rc) {
  fprintf(stderr, "consumer: %s: %s (%s)\n", what, tether_strerror(rc), tether_last_error());
  return 1;
}

int main(void) {
  tether_store *st;
  int rc = tether_store_open("memory:", &st);
  if (rc < 0) return fail("tether_store_open", rc);
  tether_session_options o;
  tether_session_options_init(&o);
  o.secret[0] = "a consumer's secret of at least thirty-two bytes";
  o.secret_count = 1;
  o.store = st;
  tether_sessions *ss;
  if ((rc = tether_sessions_new(&o, &ss)) < 0) return fail("tether_sessions_new", rc);
  tether_session *s;
  if ((rc = tether_session_load(ss, NULL, &s)) < 0) return fail("tether_session_load", rc);
  tether_session_set_string(s, "user", "alice");
  char *set_cookie = NULL;
  if ((rc = tether_session_commit(s, &set_cookie)) < 0 || set_cookie == NULL) return fail("tether_session_commit", rc);
  tether_session_free(s);
  char cookie[512];
  snprintf(cookie, sizeof(cookie), "%.*s", (int)strcspn(set_cookie, ";"), set_cookie); /* name=value */
  free(set_cookie);
  if ((rc = tether_session_load(ss, cookie, &s)) < 0) return fail("tether_session_load (again)", rc);
  const char *user = tether_session_get_string(s, "user");
  int ok = !tether_session_is_new(s) && user && strcmp(user, "alice") == 0;
  tether_session_free(s);
  tether_sessions_free(ss);
  tether_store_close(st);
  if (!ok) {
    fprintf(stderr, "consumer: the session did not come back\n");
    return 1;
  }
  printf("consumer OK\n");
  return 0;
}
