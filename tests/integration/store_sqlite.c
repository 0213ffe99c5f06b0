/* The sqlite store: conformance on a temporary file, several processes sharing one file, purge, the
 * schema on disk, a lock held too long, bad paths and URLs, relative paths, a handle inherited by fork. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "conformance.h"
#include "procs.h"
#include "tether/store.h"

static char *tmp; /* this run's directory */

static char *path_in_tmp(const char *name) {
  char *p = malloc(strlen(tmp) + strlen(name) + 2);
  sprintf(p, "%s/%s", tmp, name);
  return p;
}

static tether_store *open_ok(const char *url) {
  tether_store *st = NULL;
  int rc = tether_store_open(url, &st);
  if (rc != 0) fail_msg("open %s: %s (%s)", url, tether_strerror(rc), tether_last_error());
  return st;
}

/* One integer from the file through SQLite itself (not through the store). */
static long long sql_int(const char *file, const char *sql) {
  sqlite3 *db = NULL;
  sqlite3_stmt *q = NULL;
  long long v = -1;
  assert_int_equal(sqlite3_open_v2(file, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) fail_msg("%s: %s", sql, sqlite3_errmsg(db));
  if (sqlite3_step(q) == SQLITE_ROW) v = sqlite3_column_int64(q, 0);
  sqlite3_finalize(q);
  sqlite3_close(db);
  return v;
}

/* ---- several processes on one file ---- */

enum { NPROC = 4, NITER = 200 };

/* A child: opens the (maybe not yet existing) file once the parent says go, then writes and reads its own
 * session and the shared one. Exits with the number of failures (capped), printing the first few. */
static void child_main(const char *url, int id, int go_fd, const char *shared_sid) {
  char c;
  if (read(go_fd, &c, 1) != 1) _exit(100);
  tether_store *st = NULL;
  if (tether_store_open(url, &st) != 0) {
    fprintf(stderr, "child %d: open: %s\n", id, tether_last_error());
    _exit(101);
  }
  char own[32], v[128], *got;
  size_t len;
  int bad = 0;
  snprintf(own, sizeof(own), "own%d", id);
  for (int i = 0; i < NITER; i++) {
    int rc;
    snprintf(v, sizeof(v), "{\"cookie\":{},\"w\":%d,\"i\":%d}", id, i);
    const char *sid = i % 2 ? shared_sid : own;
    if ((rc = tether_store_set(st, sid, v, strlen(v), tether_now_ms() + 600000)) != 0) {
      if (bad++ < 3) fprintf(stderr, "child %d: set %s: %s\n", id, sid, tether_last_error());
      continue;
    }
    if ((rc = tether_store_get(st, own, &got, &len)) != 0) {
      if (bad++ < 3) fprintf(stderr, "child %d: get own: %s %s\n", id, tether_strerror(rc), tether_last_error());
      continue;
    }
    int w = -1, wi = -1;
    int last = i % 2 ? i - 1 : i; /* own session: the last value this child wrote there */
    if (sscanf(got, "{\"cookie\":{},\"w\":%d,\"i\":%d}", &w, &wi) != 2 || w != id || wi != last) {
      if (bad++ < 3) fprintf(stderr, "child %d: own session holds %s at i=%d\n", id, got, i);
    }
    free(got);
    if ((rc = tether_store_get(st, shared_sid, &got, &len)) == 0) {
      w = wi = -1;
      if (sscanf(got, "{\"cookie\":{},\"w\":%d,\"i\":%d}", &w, &wi) != 2 || w < 0 || w >= NPROC || wi < 0 ||
          wi >= NITER) {
        if (bad++ < 3) fprintf(stderr, "child %d: shared session holds %s\n", id, got);
      }
      free(got);
    } else if (i > 0 || rc != TETHER_ENOTFOUND) {
      if (bad++ < 3) fprintf(stderr, "child %d: get shared: %s %s\n", id, tether_strerror(rc), tether_last_error());
    }
  }
  tether_store_close(st);
  _exit(bad > 99 ? 99 : bad);
}

/* Waits for pid up to timeout_ms; its exit status, or -1 (and kills it) when it does not end in time. */
static int wait_child(pid_t pid, int timeout_ms) {
  int status;
  for (int waited = 0; waited < timeout_ms; waited += 10) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    tt_sleep_ms(10);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

static void test_processes_share_file(void **state) {
  (void)state;
  char *file = path_in_tmp("shared.db"); /* does not exist yet: the children race to create it */
  char url[600];
  snprintf(url, sizeof(url), "sqlite:%s?timeout_ms=5000", file);
  const char *shared_sid = "sharedsession";
  int go[2];
  assert_int_equal(pipe(go), 0);
  pid_t pids[NPROC];
  for (int i = 0; i < NPROC; i++) {
    pids[i] = fork();
    assert_true(pids[i] >= 0);
    if (pids[i] == 0) {
      close(go[1]);
      child_main(url, i, go[0], shared_sid);
    }
  }
  close(go[0]);
  char ones[NPROC];
  memset(ones, '1', sizeof(ones));
  assert_int_equal(write(go[1], ones, sizeof(ones)), NPROC);
  close(go[1]);
  int failures = 0;
  for (int i = 0; i < NPROC; i++) {
    int st = wait_child(pids[i], 45000);
    if (st != 0) fprintf(stderr, "child %d exited with %d\n", i, st);
    failures += st != 0;
  }
  assert_int_equal(failures, 0);

  /* Final values: each child's own session holds its last write; the shared one some child's write. */
  tether_store *st = open_ok(url);
  for (int i = 0; i < NPROC; i++) {
    char own[32], want[128], *got;
    size_t len;
    snprintf(own, sizeof(own), "own%d", i);
    snprintf(want, sizeof(want), "{\"cookie\":{},\"w\":%d,\"i\":%d}", i, NITER - 2);
    assert_int_equal(tether_store_get(st, own, &got, &len), 0);
    assert_string_equal(got, want);
    free(got);
  }
  char *got;
  size_t len;
  int w, wi;
  assert_int_equal(tether_store_get(st, shared_sid, &got, &len), 0);
  assert_int_equal(sscanf(got, "{\"cookie\":{},\"w\":%d,\"i\":%d}", &w, &wi), 2);
  assert_true(w >= 0 && w < NPROC && wi == NITER - 1);
  free(got);
  tether_store_close(st);
  assert_int_equal(sql_int(file, "SELECT count(*) FROM sessions"), NPROC + 1);
  free(file);
}

/* A handle opened before fork() keeps working in both processes (the child opens its own connections). */
static void test_handle_inherited_by_fork(void **state) {
  (void)state;
  char *file = path_in_tmp("fork.db");
  char url[600];
  snprintf(url, sizeof(url), "sqlite:%s", file);
  tether_store *st = open_ok(url);
  assert_int_equal(tether_store_set(st, "parent", "{\"p\":1}", 7, 0), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    char *got = NULL;
    size_t len;
    int ok = tether_store_get(st, "parent", &got, &len) == 0 && strcmp(got, "{\"p\":1}") == 0;
    free(got);
    for (int i = 0; ok && i < 50; i++) ok = tether_store_set(st, "child", "{\"c\":1}", 7, 0) == 0;
    if (!ok) fprintf(stderr, "child: %s\n", tether_last_error());
    _exit(ok ? 0 : 1); /* the child's copy of the handle is left as is: see sqlite.c */
  }
  for (int i = 0; i < 50; i++) assert_int_equal(tether_store_set(st, "parent", "{\"p\":1}", 7, 0), 0);
  assert_int_equal(wait_child(pid, 20000), 0);
  char *got;
  size_t len;
  assert_int_equal(tether_store_get(st, "child", &got, &len), 0);
  assert_string_equal(got, "{\"c\":1}");
  free(got);
  tether_store_close(st);
  free(file);
}

/* ---- purge, schema, locks ---- */

static void test_purge(void **state) {
  (void)state;
  char *file = path_in_tmp("purge.db");
  char url[600];
  snprintf(url, sizeof(url), "sqlite:%s?purge_s=0", file);
  tether_store *st = open_ok(url);
  char sid[16];
  for (int i = 0; i < 5; i++) {
    snprintf(sid, sizeof(sid), "short%d", i);
    assert_int_equal(tether_store_set(st, sid, "{\"cookie\":{}}", 12, tether_now_ms() + 300), 0);
  }
  for (int i = 0; i < 3; i++) {
    snprintf(sid, sizeof(sid), "long%d", i);
    assert_int_equal(tether_store_set(st, sid, "{\"cookie\":{}}", 12, tether_now_ms() + 600000), 0);
  }
  assert_int_equal(tether_store_purge(st), 0); /* nothing expired yet */
  tt_sleep_ms(450);
  char *got;
  size_t len;
  assert_int_equal(tether_store_get(st, "short0", &got, &len), TETHER_ENOTFOUND); /* expired: ignored */
  assert_int_equal(sql_int(file, "SELECT count(*) FROM sessions"), 8);            /* but still on disk */
  assert_int_equal(tether_store_purge(st), 5);
  assert_int_equal(sql_int(file, "SELECT count(*) FROM sessions"), 3);
  assert_int_equal(tether_store_purge(st), 0);
  tether_store_close(st);

  /* opportunistic: with purge_s=1, a write after a second removes the expired rows */
  snprintf(url, sizeof(url), "sqlite:%s?purge_s=1", file);
  st = open_ok(url);
  assert_int_equal(tether_store_set(st, "kick", "{}", 2, 0), 0); /* the first write purges and arms the timer */
  for (int i = 0; i < 4; i++) {
    snprintf(sid, sizeof(sid), "short%d", i);
    assert_int_equal(tether_store_set(st, sid, "{\"cookie\":{}}", 12, tether_now_ms() + 200), 0);
  }
  assert_int_equal(sql_int(file, "SELECT count(*) FROM sessions"), 8);
  tt_sleep_ms(1100);
  assert_int_equal(tether_store_set(st, "kick", "{}", 2, 0), 0);
  assert_int_equal(sql_int(file, "SELECT count(*) FROM sessions"), 4);
  tether_store_close(st);
  free(file);
}

static void test_schema(void **state) {
  (void)state;
  char *file = path_in_tmp("schema.db");
  char url[600];
  snprintf(url, sizeof(url), "sqlite:%s?table=my_sessions", file);
  tether_store *st = open_ok(url);
  int64_t exp = tether_now_ms() + 60000;
  assert_int_equal(tether_store_set(st, "abc", "{\"cookie\":{},\"user\":\"bob\"}", 26, exp), 0);
  sqlite3 *db;
  sqlite3_stmt *q;
  assert_int_equal(sqlite3_open_v2(file, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(q), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
  sqlite3_finalize(q);
  assert_int_equal(sqlite3_prepare_v2(db,
                                      "SELECT sess, expire, json_extract(sess, '$.user') FROM my_sessions "
                                      "WHERE sid = 'abc'",
                                      -1, &q, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(q), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(q, 0), "{\"cookie\":{},\"user\":\"bob\"}");
  assert_int_equal(sqlite3_column_int64(q, 1), exp);
  assert_string_equal((const char *)sqlite3_column_text(q, 2), "bob");
  sqlite3_finalize(q);
  sqlite3_close(db);
  assert_int_equal(sql_int(file, "SELECT count(*) FROM pragma_table_info('my_sessions') WHERE "
                                 "(name = 'sid' AND pk = 1 AND type = 'TEXT') OR (name = 'sess' AND \"notnull\" = 1) "
                                 "OR (name = 'expire' AND type = 'INTEGER' AND \"notnull\" = 1)"),
                   3);
  assert_int_equal(sql_int(file, "SELECT count(*) FROM pragma_index_list('my_sessions') il, "
                                 "pragma_index_info(il.name) ii WHERE ii.name = 'expire'"),
                   1);
  /* touch changes the expiry only */
  assert_int_equal(tether_store_touch(st, "abc", "ignored", 7, exp + 5000), 0);
  assert_int_equal(sql_int(file, "SELECT expire FROM my_sessions WHERE sid = 'abc'"), exp + 5000);
  assert_int_equal(sql_int(file, "SELECT length(sess) FROM my_sessions WHERE sid = 'abc'"), 26);
  /* touch of a missing session is a no-op; with a past expiry it deletes */
  assert_int_equal(tether_store_touch(st, "nosuch", "{}", 2, exp), 0);
  assert_int_equal(tether_store_touch(st, "abc", "{}", 2, tether_now_ms() - 1), 0);
  assert_int_equal(sql_int(file, "SELECT count(*) FROM my_sessions"), 0);
  /* corrupt content flows up as is (session.c decides what to make of it) */
  assert_int_equal(tether_store_set(st, "bad", "not json", 8, 0), 0);
  char *got;
  size_t len;
  assert_int_equal(tether_store_get(st, "bad", &got, &len), 0);
  assert_string_equal(got, "not json");
  free(got);
  assert_int_equal(tether_store_ping(st), 0);
  assert_string_equal(tether_store_kind(st), "sqlite");
  tether_store_close(st);
  free(file);
}

/* Another process holding the write lock longer than timeout_ms: the write gives up with ETIMEDOUT in about
 * timeout_ms, reads go on (WAL), and writes work again once the lock is gone. */
static void test_lock_held_too_long(void **state) {
  (void)state;
  char *file = path_in_tmp("locked.db");
  char url[600];
  snprintf(url, sizeof(url), "sqlite:%s?timeout_ms=300", file);
  tether_store *st = open_ok(url);
  assert_int_equal(tether_store_set(st, "before", "{}", 2, 0), 0);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(file, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
  uint64_t t0 = (uint64_t)tether_now_ms();
  assert_int_equal(tether_store_set(st, "during", "{}", 2, 0), TETHER_ETIMEDOUT);
  uint64_t took = (uint64_t)tether_now_ms() - t0;
  assert_true(took >= 250 && took < 2000);
  assert_non_null(strstr(tether_last_error(), file));
  char *got;
  size_t len;
  assert_int_equal(tether_store_get(st, "before", &got, &len), 0);
  free(got);
  assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  assert_int_equal(tether_store_set(st, "during", "{}", 2, 0), 0);
  tether_store_close(st);
  free(file);
}

/* ---- paths and URLs ---- */

static void expect_open_error(const char *url, const char *in_message) {
  tether_store *st = NULL;
  int rc = tether_store_open(url, &st);
  if (rc != TETHER_EINVAL && rc != TETHER_ESTORE)
    fail_msg("open %s: expected EINVAL or ESTORE, got %s (%s)", url, tether_strerror(rc), tether_last_error());
  assert_null(st);
  if (strstr(tether_last_error(), in_message) == NULL)
    fail_msg("open %s: message '%s' does not mention '%s'", url, tether_last_error(), in_message);
}

static void test_bad_paths(void **state) {
  (void)state;
  char url[700];
  char *missing = path_in_tmp("no/such/dir/s.db");
  snprintf(url, sizeof(url), "sqlite:%s", missing);
  expect_open_error(url, missing);
  expect_open_error(url, "No such file or directory");

  snprintf(url, sizeof(url), "sqlite:%s", tmp); /* a directory */
  expect_open_error(url, tmp);
  expect_open_error(url, "is a directory");

  char *junk = path_in_tmp("junk.txt");
  FILE *f = fopen(junk, "w");
  assert_non_null(f);
  for (int i = 0; i < 100; i++) fprintf(f, "this is a text file, not a database: line %d\n", i);
  fclose(f);
  struct stat before, after;
  assert_int_equal(stat(junk, &before), 0);
  snprintf(url, sizeof(url), "sqlite:%s", junk);
  expect_open_error(url, junk);
  expect_open_error(url, "not an SQLite database");
  assert_int_equal(stat(junk, &after), 0);
  assert_int_equal(before.st_size, after.st_size); /* left alone */
  free(junk);

  expect_open_error("sqlite:/dev/null", "'/dev/null' is not a regular file");
  if (access("/proc/self", F_OK) == 0)
    expect_open_error("sqlite:/proc/tether-test.db",
                      "cannot open '/proc/tether-test.db'"); /* unwritable, even for root */

  char *file_as_dir = path_in_tmp("junk.txt/s.db"); /* a file where a directory should be */
  snprintf(url, sizeof(url), "sqlite:%s", file_as_dir);
  expect_open_error(url, "is not a directory");
  free(file_as_dir);
  free(missing);
}

static void test_bad_urls(void **state) {
  (void)state;
  expect_open_error("sqlite:", "no path");
  expect_open_error("sqlite:?table=x", "no path");
  expect_open_error("sqlite::memory:", "memory:");
  expect_open_error("sqlite:///tmp/x.db", "sqlite:/absolute/path");
  char url[700];
  snprintf(url, sizeof(url), "sqlite:%s/u.db?tabel=x", tmp);
  expect_open_error(url, "unknown URL parameter 'tabel'");
  snprintf(url, sizeof(url), "sqlite:%s/u.db?table=x;drop", tmp);
  expect_open_error(url, "table");
  snprintf(url, sizeof(url), "sqlite:%s/u.db?table=\"x\"", tmp);
  expect_open_error(url, "table");
  snprintf(url, sizeof(url), "sqlite:%s/u.db?timeout_ms=0", tmp);
  expect_open_error(url, "timeout_ms");
  snprintf(url, sizeof(url), "sqlite:%s/u.db?purge_s=-1", tmp);
  expect_open_error(url, "purge_s");
  snprintf(url, sizeof(url), "sqlite:%s/u.db?pool=abc", tmp);
  expect_open_error(url, "pool");
  char *u = path_in_tmp("u.db");
  assert_int_equal(access(u, F_OK), -1); /* nothing was created by the failed opens */
  free(u);
}

static void test_relative_path(void **state) {
  (void)state;
  char cwd[PATH_MAX];
  assert_non_null(getcwd(cwd, sizeof(cwd)));
  char *sub = path_in_tmp("rel");
  assert_int_equal(mkdir(sub, 0755), 0);
  assert_int_equal(chdir(sub), 0);
  tether_store *a = open_ok("sqlite:./a.db");
  tether_store *b = open_ok("sqlite:b.db?table=t");
  assert_int_equal(chdir(cwd), 0); /* the handles keep the files they opened */
  assert_int_equal(tether_store_set(a, "x", "{\"a\":1}", 7, 0), 0);
  assert_int_equal(tether_store_set(b, "x", "{\"b\":1}", 7, 0), 0);
  char *fa = path_in_tmp("rel/a.db"), *fb = path_in_tmp("rel/b.db");
  assert_int_equal(sql_int(fa, "SELECT count(*) FROM sessions"), 1);
  assert_int_equal(sql_int(fb, "SELECT count(*) FROM t"), 1);
  tether_store_close(a);
  tether_store_close(b);
  free(fa);
  free(fb);
  free(sub);
}

/* Files the store creates are private: the database (and its -wal and -shm) 0600, a directory 0700. */
static void test_file_modes(void **state) {
  (void)state;
  mode_t old = umask(0022);
  char *file = path_in_tmp("private/s.db");
  char url[700];
  snprintf(url, sizeof(url), "sqlite:%s", file);
  tether_store *st = open_ok(url);
  assert_int_equal(tether_store_set(st, "abcd", "{\"cookie\":{}}", 13, 0), 0);
  struct stat sb;
  char *dir = path_in_tmp("private");
  assert_int_equal(stat(dir, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0700);
  const char *suffix[] = {"", "-wal", "-shm"};
  for (int i = 0; i < 3; i++) {
    char p[800];
    snprintf(p, sizeof(p), "%s%s", file, suffix[i]);
    if (stat(p, &sb) != 0) fail_msg("%s: %s", p, strerror(errno));
    if ((sb.st_mode & 0777) != 0600) fail_msg("%s has mode %o, not 0600", p, (unsigned)(sb.st_mode & 0777));
  }
  tether_store_close(st);
  umask(old);
  free(dir);
  free(file);
}

/* A 50 MB value under a session id: a new session, quickly, and counted. */
static void test_oversized_value(void **state) {
  (void)state;
  char *file = path_in_tmp("big.db");
  char url[700];
  snprintf(url, sizeof(url), "sqlite:%s", file);
  tether_store *st = open_ok(url);
  tt_oversized_session(st);
  tether_store_close(st);
  free(file);
}

int main(void) {
  tmp = tt_tmpdir("sqlite");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_processes_share_file),
      cmocka_unit_test(test_handle_inherited_by_fork),
      cmocka_unit_test(test_purge),
      cmocka_unit_test(test_schema),
      cmocka_unit_test(test_lock_held_too_long),
      cmocka_unit_test(test_bad_paths),
      cmocka_unit_test(test_bad_urls),
      cmocka_unit_test(test_relative_path),
      cmocka_unit_test(test_file_modes),
      cmocka_unit_test(test_oversized_value),
  };
  int failed = cmocka_run_group_tests_name("sqlite", tests, NULL, NULL);
  char url[600];
  snprintf(url, sizeof(url), "sqlite:%s/conformance.db", tmp);
  failed += tt_conformance_run("sqlite conformance", url);
  tt_rmrf(tmp);
  free(tmp);
  return failed ? 1 : 0;
}
