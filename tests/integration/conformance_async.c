/* The store conformance suite on the event loop: round trips, a missing session, bad ids, destroy, expiry
 * and touch, the write modes, a large value, tricky bytes, many calls in flight, ping, and close with calls
 * pending. Calls in flight together may run in any order (the thread pool runs them side by side): a step
 * that depends on another waits for it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "conformance_async.h"
#include "procs.h"
#include "tether/session.h"
#include "tether/store.h"
#include "tether/store_async.h"

static const char *store_url;

typedef struct res {
  int done, rc;
  char *json;
  size_t len;
} res;

typedef struct fixture {
  uv_loop_t loop;
  tether_astore *a;
} fixture;

static void got(void *arg, int rc, char *json, size_t len) {
  res *r = arg;
  assert_int_equal(r->done, 0); /* exactly once */
  r->done = 1;
  r->rc = rc;
  r->json = json;
  r->len = len;
  if (rc < 0 && rc != TETHER_ENOTFOUND && rc != TETHER_EEXIST) assert_true(tether_last_error()[0] != '\0');
}

static void done(void *arg, int rc) { got(arg, rc, NULL, 0); }

static void wait_all(fixture *f, res *r, int n) {
  uint64_t end = uv_hrtime() + 10000ULL * 1000000;
  for (;;) {
    int all = 1;
    for (int i = 0; i < n; i++) all &= r[i].done;
    if (all) return;
    if (uv_hrtime() > end) fail_msg("calls not done within 10 s");
    uv_run(&f->loop, UV_RUN_ONCE);
  }
}

static void reset(res *r, int n) {
  for (int i = 0; i < n; i++) {
    free(r[i].json);
    r[i] = (res){0};
  }
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  uv_loop_init(&f->loop);
  if (tether_astore_open(&f->loop, store_url, &f->a) < 0) {
    print_error("open %s: %s\n", store_url, tether_last_error());
    return -1;
  }
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  if (f->a) tether_astore_close(f->a);
  for (int i = 0; i < 2000 && uv_run(&f->loop, UV_RUN_NOWAIT); i++) tt_sleep_ms(1);
  int rc = uv_loop_close(&f->loop);
  free(f);
  return rc == 0 ? 0 : -1; /* every handle released */
}

static void test_round_trip(void **state) {
  fixture *f = *state;
  char sid[TETHER_SID_LEN + 1];
  tether_session_id_generate(sid);
  const char *json = "{\"cookie\":{\"originalMaxAge\":60000},\"user\":\"ann\"}";
  res r[3] = {{0}};
  assert_int_equal(tether_astore_get(f->a, sid, got, &r[0]), 0);
  wait_all(f, r, 1);
  assert_int_equal(tether_astore_set(f->a, sid, json, strlen(json), tether_now_ms() + 60000, done, &r[1]), 0);
  wait_all(f, r, 2);
  assert_int_equal(tether_astore_get(f->a, sid, got, &r[2]), 0);
  wait_all(f, r, 3);
  assert_int_equal(r[0].rc, TETHER_ENOTFOUND);
  assert_null(r[0].json);
  assert_int_equal(r[1].rc, 0);
  assert_int_equal(r[2].rc, 0);
  assert_int_equal(r[2].len, strlen(json));
  assert_string_equal(r[2].json, json);
  reset(r, 3);
  assert_int_equal(tether_astore_ping(f->a, done, &r[0]), 0);
  wait_all(f, r, 1);
  assert_int_equal(r[0].rc, 0);
}

static void test_bad_sid(void **state) {
  fixture *f = *state;
  res r = {0};
  assert_int_equal(tether_astore_get(f->a, "not a valid id", got, &r), TETHER_EINVAL);
  assert_int_equal(tether_astore_set(f->a, "../../etc/passwd", "{}", 2, 0, done, &r), TETHER_EINVAL);
  assert_int_equal(r.done, 0); /* an error return: no callback */
}

static void test_destroy_and_expiry(void **state) {
  fixture *f = *state;
  char a[TETHER_SID_LEN + 1], b[TETHER_SID_LEN + 1];
  tether_session_id_generate(a);
  tether_session_id_generate(b);
  res r[8] = {{0}};
  int64_t now = tether_now_ms();
  tether_astore_set(f->a, a, "{\"a\":1}", 7, now + 60000, done, &r[0]);
  tether_astore_set(f->a, b, "{\"b\":1}", 7, now + 60000, done, &r[1]);
  wait_all(f, r, 2);
  tether_astore_destroy(f->a, a, done, &r[2]);
  tether_astore_set(f->a, b, "{\"b\":2}", 7, now - 1000, done, &r[3]); /* expired: deleted */
  wait_all(f, r, 4);
  tether_astore_get(f->a, a, got, &r[4]);
  tether_astore_get(f->a, b, got, &r[5]);
  tether_astore_destroy(f->a, a, done, &r[6]); /* again: not an error */
  wait_all(f, r, 7);
  for (int i = 0; i < 4; i++) assert_int_equal(r[i].rc, 0);
  assert_int_equal(r[4].rc, TETHER_ENOTFOUND);
  assert_int_equal(r[5].rc, TETHER_ENOTFOUND);
  assert_int_equal(r[6].rc, 0);
  reset(r, 8);
  /* a 1 s session touched to 60 s outlives its first expiry; an untouched one does not */
  tether_astore_set(f->a, a, "{\"t\":1}", 7, tether_now_ms() + 1000, done, &r[0]);
  tether_astore_set(f->a, b, "{\"t\":2}", 7, tether_now_ms() + 1000, done, &r[1]);
  wait_all(f, r, 2);
  tether_astore_touch(f->a, a, "{\"t\":1}", 7, tether_now_ms() + 60000, done, &r[2]);
  wait_all(f, r, 3);
  for (int i = 0; i < 3; i++) assert_int_equal(r[i].rc, 0);
  reset(r, 3);
  tt_sleep_ms(2200);
  tether_astore_get(f->a, a, got, &r[0]);
  tether_astore_get(f->a, b, got, &r[1]);
  wait_all(f, r, 2);
  assert_int_equal(r[0].rc, 0);
  assert_int_equal(r[1].rc, TETHER_ENOTFOUND);
  reset(r, 2);
}

static void test_write_modes(void **state) {
  fixture *f = *state;
  char sid[TETHER_SID_LEN + 1];
  tether_session_id_generate(sid);
  int64_t exp = tether_now_ms() + 60000;
  res r[5] = {{0}};
  const char *vals[] = {"{\"m\":0}", "{\"m\":1}", "{\"m\":2}", "{\"m\":3}"};
  const tether_write_mode modes[] = {TETHER_WRITE_UPDATE, TETHER_WRITE_CREATE, TETHER_WRITE_CREATE,
                                     TETHER_WRITE_UPDATE};
  for (int i = 0; i < 4; i++) { /* update: not there; create; create: there; update */
    tether_astore_write(f->a, sid, vals[i], 7, exp, modes[i], done, &r[i]);
    wait_all(f, r, i + 1);
  }
  tether_astore_get(f->a, sid, got, &r[4]);
  wait_all(f, r, 5);
  assert_int_equal(r[0].rc, TETHER_ENOTFOUND);
  assert_int_equal(r[1].rc, 0);
  assert_int_equal(r[2].rc, TETHER_EEXIST);
  assert_int_equal(r[3].rc, 0);
  assert_int_equal(r[4].rc, 0);
  assert_string_equal(r[4].json, "{\"m\":3}");
  assert_int_equal(tether_astore_write(f->a, sid, "{}", 2, exp, (tether_write_mode)99, done, &r[0]), TETHER_EINVAL);
  reset(r, 5);
}

static void test_large_and_tricky(void **state) {
  fixture *f = *state;
  size_t big = 300 * 1024;
  char *json = malloc(big + 1);
  memset(json, 'x', big);
  memcpy(json, "{\"v\":\"", 6);
  memcpy(json + big - 2, "\"}", 2);
  json[big] = '\0';
  const char tricky[] = "{\"s\":\"\\u0000\r\n*3\r\n$3\r\nDEL\r\n\xc3\xa9\xf0\x9f\x98\x80\"}";
  char a[TETHER_SID_LEN + 1], b[TETHER_SID_LEN + 1];
  tether_session_id_generate(a);
  tether_session_id_generate(b);
  res r[4] = {{0}};
  tether_astore_set(f->a, a, json, big, 0, done, &r[0]);
  tether_astore_set(f->a, b, tricky, sizeof(tricky) - 1, 0, done, &r[1]);
  wait_all(f, r, 2);
  tether_astore_get(f->a, a, got, &r[2]);
  tether_astore_get(f->a, b, got, &r[3]);
  wait_all(f, r, 4);
  assert_int_equal(r[0].rc, 0);
  assert_int_equal(r[1].rc, 0);
  assert_int_equal(r[2].rc, 0);
  assert_int_equal(r[2].len, big);
  assert_memory_equal(r[2].json, json, big);
  assert_int_equal(r[3].len, sizeof(tricky) - 1);
  assert_memory_equal(r[3].json, tricky, sizeof(tricky) - 1);
  reset(r, 4);
  free(json);
}

enum { MANY = 512 };

static void test_many_in_flight(void **state) {
  fixture *f = *state;
  static char sids[MANY][TETHER_SID_LEN + 1];
  static res w[MANY], g[MANY];
  char json[MANY][32];
  memset(w, 0, sizeof(w));
  memset(g, 0, sizeof(g));
  for (int i = 0; i < MANY; i++) {
    tether_session_id_generate(sids[i]);
    snprintf(json[i], sizeof(json[i]), "{\"n\":%d}", i);
    assert_int_equal(tether_astore_set(f->a, sids[i], json[i], strlen(json[i]), 0, done, &w[i]), 0);
  }
  wait_all(f, w, MANY);
  for (int i = 0; i < MANY; i++) assert_int_equal(tether_astore_get(f->a, sids[i], got, &g[i]), 0);
  wait_all(f, g, MANY);
  for (int i = 0; i < MANY; i++) {
    assert_int_equal(w[i].rc, 0);
    assert_int_equal(g[i].rc, 0);
    assert_string_equal(g[i].json, json[i]);
  }
  reset(g, MANY);
}

static void test_close_with_pending(void **state) {
  fixture *f = *state;
  res r[64] = {{0}};
  for (int i = 0; i < 64; i++) {
    char sid[TETHER_SID_LEN + 1];
    tether_session_id_generate(sid);
    assert_int_equal(tether_astore_get(f->a, sid, got, &r[i]), 0);
  }
  tether_astore_close(f->a);
  f->a = NULL;
  for (int i = 0; i < 200 && uv_run(&f->loop, UV_RUN_NOWAIT); i++) tt_sleep_ms(1);
  for (int i = 0; i < 64; i++) { /* each called back once: done or failed, none forgotten */
    assert_int_equal(r[i].done, 1);
    assert_true(r[i].rc == TETHER_ENOTFOUND || r[i].rc == TETHER_EUNAVAIL);
  }
}

int tt_conformance_async_run(const char *name, const char *url) {
  store_url = url;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_sid, setup, teardown),
      cmocka_unit_test_setup_teardown(test_destroy_and_expiry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_write_modes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_large_and_tricky, setup, teardown),
      cmocka_unit_test_setup_teardown(test_many_in_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_with_pending, setup, teardown),
  };
  return _cmocka_run_group_tests(name, tests, sizeof(tests) / sizeof(tests[0]), NULL, NULL);
}
