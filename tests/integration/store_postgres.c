/* The postgres store against a real PostgreSQL: connect-pg-simple's schema, rows readable by SQL, UTC
 * expiry whatever the server's time zone, purge, statement and connect timeouts, an unreachable server,
 * bad URLs, a server killed and restarted under the store, then the conformance suite. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "conformance.h"
#include "procs.h"
#include "tether/store.h"

static tt_server pg;

static tether_store *open_ok(const char *params) {
  char url[700];
  snprintf(url, sizeof(url), "%s%s", pg.url, params);
  tether_store *st = NULL;
  int rc = tether_store_open(url, &st);
  if (rc != 0) fail_msg("open %s: %s (%s)", url, tether_strerror(rc), tether_last_error());
  return st;
}

/* A direct connection (not the store's), in UTC. */
static PGconn *sql_connect(void) {
  char ci[256];
  snprintf(ci, sizeof(ci),
           "host=127.0.0.1 port=%d user=postgres dbname=postgres connect_timeout=5 options='-c TimeZone=UTC'", pg.port);
  PGconn *c = PQconnectdb(ci);
  if (PQstatus(c) != CONNECTION_OK) fail_msg("connect: %s", PQerrorMessage(c));
  return c;
}

/* The first value of the first row of sql with up to one parameter, malloc'd ("" for NULL, NULL for no row). */
static char *sql1(const char *sql, const char *param) {
  PGconn *c = sql_connect();
  const char *vals[] = {param};
  PGresult *r = PQexecParams(c, sql, param ? 1 : 0, NULL, vals, NULL, NULL, 0);
  ExecStatusType s = PQresultStatus(r);
  if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK) fail_msg("%s: %s", sql, PQresultErrorMessage(r));
  char *v = s == PGRES_TUPLES_OK && PQntuples(r) > 0 ? strdup(PQgetvalue(r, 0, 0)) : NULL;
  PQclear(r);
  PQfinish(c);
  return v;
}

static long sql_long(const char *sql, const char *param) {
  char *v = sql1(sql, param);
  assert_non_null(v);
  long n = strtol(v, NULL, 10);
  free(v);
  return n;
}

static void set_ok(tether_store *st, const char *sid, const char *json, int64_t expires_ms) {
  int rc = tether_store_set(st, sid, json, strlen(json), expires_ms);
  if (rc != 0) fail_msg("set %s: %s (%s)", sid, tether_strerror(rc), tether_last_error());
}

/* ---- schema and data ---- */

static void test_schema(void **state) {
  (void)state;
  tether_store *st = open_ok("");
  assert_int_equal(tether_store_ping(st), 0); /* connects: the table is created */
  assert_string_equal(tether_store_kind(st), "postgres");
  /* connect-pg-simple's columns, primary key and index */
  char *cols = sql1("SELECT string_agg(column_name || ' ' || data_type || ' ' || is_nullable || ' ' || "
                    "coalesce(datetime_precision::text, '-'), ', ' ORDER BY ordinal_position) "
                    "FROM information_schema.columns WHERE table_name = 'session'",
                    NULL);
  assert_string_equal(cols, "sid character varying NO -, sess json NO -, expire timestamp without time zone NO 6");
  free(cols);
  char *pk = sql1("SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint "
                  "WHERE conrelid = 'session'::regclass AND contype = 'p'",
                  NULL);
  assert_string_equal(pk, "session_pkey PRIMARY KEY (sid)");
  free(pk);
  char *idx =
      sql1("SELECT indexdef FROM pg_indexes WHERE tablename = 'session' AND indexname = 'IDX_session_expire'", NULL);
  assert_non_null(idx);
  assert_non_null(strstr(idx, "(expire)"));
  free(idx);

  /* a row written by the store is plain SQL data, byte for byte what was written (json, not jsonb) */
  const char *v = "{\"cookie\":{\"originalMaxAge\":60000,\"expires\":\"2030-01-01T00:00:00.000Z\","
                  "\"httpOnly\":true,\"path\":\"/\"},  \"user\":\"bob\",\"a\":{\"z\":1,\"b\":2}}";
  int64_t exp = tether_now_ms() + 60000;
  set_ok(st, "schemaSid1", v, exp);
  char *user = sql1("SELECT sess->>'user' FROM session WHERE sid = $1", "schemaSid1");
  assert_string_equal(user, "bob");
  free(user);
  char *raw = sql1("SELECT sess::text FROM session WHERE sid = $1", "schemaSid1");
  assert_string_equal(raw, v);
  free(raw);
  /* expire is UTC wall-clock time, to the millisecond */
  long ms =
      sql_long("SELECT round(extract(epoch FROM expire) * 1000)::bigint FROM session WHERE sid = $1", "schemaSid1");
  assert_int_equal(ms, exp);
  /* touch moves expire only */
  assert_int_equal(tether_store_touch(st, "schemaSid1", "{}", 2, exp + 30000), 0);
  ms = sql_long("SELECT round(extract(epoch FROM expire) * 1000)::bigint FROM session WHERE sid = $1", "schemaSid1");
  assert_int_equal(ms, exp + 30000);
  raw = sql1("SELECT sess::text FROM session WHERE sid = $1", "schemaSid1");
  assert_string_equal(raw, v);
  free(raw);

  /* a row written the way connect-pg-simple writes it is read by the store */
  free(sql1("INSERT INTO session (sid, sess, expire) VALUES ($1, '{\"cookie\":{},\"from\":\"node\"}', "
            "now() AT TIME ZONE 'UTC' + interval '1 hour')",
            "nodeSid1"));
  char *got;
  size_t len;
  assert_int_equal(tether_store_get(st, "nodeSid1", &got, &len), 0);
  assert_string_equal(got, "{\"cookie\":{},\"from\":\"node\"}");
  free(got);
  free(sql1("UPDATE session SET expire = now() AT TIME ZONE 'UTC' - interval '1 second' WHERE sid = $1", "nodeSid1"));
  assert_int_equal(tether_store_get(st, "nodeSid1", &got, &len), TETHER_ENOTFOUND);

  /* not JSON: refused by the json column, with a message */
  assert_int_equal(tether_store_set(st, "badJson", "not json", 8, 0), TETHER_EINVAL);
  assert_non_null(strstr(tether_last_error(), "json"));
  assert_int_equal(tether_store_ping(st), 0); /* the connection is still fine */
  tether_store_close(st);
}

/* Sessions expire by UTC even when the database's default time zone is far from it. */
static void test_time_zone(void **state) {
  (void)state;
  free(sql1("ALTER DATABASE postgres SET TimeZone = 'Asia/Kathmandu'", NULL)); /* +05:45 */
  tether_store *st = open_ok("?table=tz_session");
  int64_t exp = tether_now_ms() + 5000;
  set_ok(st, "tzSid", "{\"cookie\":{}}", exp);
  long ms = sql_long("SELECT round(extract(epoch FROM expire) * 1000)::bigint FROM tz_session WHERE sid = $1", "tzSid");
  assert_int_equal(ms, exp);
  char *got;
  size_t len;
  assert_int_equal(tether_store_get(st, "tzSid", &got, &len), 0);
  free(got);
  set_ok(st, "tzSid", "{\"cookie\":{}}", tether_now_ms() + 300);
  tt_sleep_ms(400);
  assert_int_equal(tether_store_get(st, "tzSid", &got, &len), TETHER_ENOTFOUND);
  tether_store_close(st);
  free(sql1("ALTER DATABASE postgres RESET TimeZone", NULL));
}

static void test_purge(void **state) {
  (void)state;
  tether_store *st = open_ok("?table=purge_session&purge_s=0");
  char sid[16];
  for (int i = 0; i < 5; i++) {
    snprintf(sid, sizeof(sid), "short%d", i);
    set_ok(st, sid, "{\"cookie\":{}}", tether_now_ms() + 300);
  }
  for (int i = 0; i < 3; i++) {
    snprintf(sid, sizeof(sid), "long%d", i);
    set_ok(st, sid, "{\"cookie\":{}}", tether_now_ms() + 600000);
  }
  assert_int_equal(tether_store_purge(st), 0);
  tt_sleep_ms(450);
  char *got;
  size_t len;
  assert_int_equal(tether_store_get(st, "short0", &got, &len), TETHER_ENOTFOUND); /* ignored ... */
  assert_int_equal(sql_long("SELECT count(*) FROM purge_session", NULL), 8);      /* ... but still there */
  assert_int_equal(tether_store_purge(st), 5);
  assert_int_equal(sql_long("SELECT count(*) FROM purge_session", NULL), 3);
  assert_int_equal(tether_store_purge(st), 0);
  tether_store_close(st);

  /* opportunistic: with purge_s=1, a write a second later removes expired rows */
  st = open_ok("?table=purge_session&purge_s=1");
  for (int i = 0; i < 4; i++) {
    snprintf(sid, sizeof(sid), "short%d", i);
    set_ok(st, sid, "{\"cookie\":{}}", tether_now_ms() + 200);
  }
  assert_int_equal(sql_long("SELECT count(*) FROM purge_session", NULL), 7);
  tt_sleep_ms(1200);
  set_ok(st, "kick", "{}", 0);
  assert_int_equal(sql_long("SELECT count(*) FROM purge_session", NULL), 4);
  tether_store_close(st);
}

static void test_create_table_off(void **state) {
  (void)state;
  tether_store *st = open_ok("?table=no_such_table&create_table=0");
  assert_int_equal(tether_store_ping(st), TETHER_ESTORE);
  assert_non_null(strstr(tether_last_error(), "no_such_table"));
  tether_store_close(st);
  assert_null(sql1("SELECT 1 FROM pg_class WHERE relname = 'no_such_table'", NULL));
}

/* ---- time limits and failures ---- */

static uint64_t ms_since(int64_t t0) { return (uint64_t)(tether_now_ms() - t0); }

/* A row locked by another transaction: the write gives up at statement_timeout, and the connection is fine
 * afterwards. */
static void test_statement_timeout(void **state) {
  (void)state;
  tether_store *st = open_ok("?timeout_ms=300&pool=1");
  set_ok(st, "lockedSid", "{\"cookie\":{}}", 0);
  PGconn *c = sql_connect();
  PQclear(PQexec(c, "BEGIN"));
  PGresult *r = PQexec(c, "SELECT * FROM session WHERE sid = 'lockedSid' FOR UPDATE");
  assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
  PQclear(r);
  int64_t t0 = tether_now_ms();
  assert_int_equal(tether_store_set(st, "lockedSid", "{\"x\":1}", 7, 0), TETHER_ETIMEDOUT);
  uint64_t took = ms_since(t0);
  assert_true(took >= 250 && took < 2000);
  assert_non_null(strstr(tether_last_error(), "statement timeout"));
  PQclear(PQexec(c, "ROLLBACK"));
  PQfinish(c);
  set_ok(st, "lockedSid", "{\"x\":2}", 0);
  tether_store_close(st);
}

static void test_unreachable(void **state) {
  (void)state;
  int port = tt_free_port(); /* nothing listens there */
  char url[200];
  snprintf(url, sizeof(url), "postgres://postgres@127.0.0.1:%d/postgres", port);
  tether_store *st = NULL;
  assert_int_equal(tether_store_open(url, &st), 0); /* lazy: not fatal at open */
  char *got = NULL;
  size_t len;
  for (int i = 0; i < 3; i++) {
    int64_t t0 = tether_now_ms();
    assert_int_equal(tether_store_get(st, "abc", &got, &len), TETHER_EUNAVAIL);
    assert_true(ms_since(t0) < 1000);
    assert_null(got);
    char pstr[16];
    snprintf(pstr, sizeof(pstr), "%d", port);
    assert_non_null(strstr(tether_last_error(), pstr));
  }
  assert_int_equal(tether_store_set(st, "abc", "{}", 2, 0), TETHER_EUNAVAIL);
  assert_int_equal(tether_store_ping(st), TETHER_EUNAVAIL);
  assert_true(tether_store_purge(st) < 0);
  tether_store_close(st);
}

/* A server that accepts TCP connections and never answers: the connect gives up at connect_timeout_ms. */
static void test_silent_server(void **state) {
  (void)state;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof(a);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  assert_int_equal(listen(fd, 16), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
  char url[200];
  snprintf(url, sizeof(url), "postgres://postgres@127.0.0.1:%d/postgres?connect_timeout_ms=300", ntohs(a.sin_port));
  tether_store *st = NULL;
  assert_int_equal(tether_store_open(url, &st), 0);
  int64_t t0 = tether_now_ms();
  assert_int_equal(tether_store_ping(st), TETHER_ETIMEDOUT);
  uint64_t took = ms_since(t0);
  assert_true(took >= 250 && took < 1500);
  t0 = tether_now_ms();
  assert_int_equal(tether_store_ping(st), TETHER_EUNAVAIL); /* backing off: fails at once */
  assert_true(ms_since(t0) < 100);
  assert_non_null(strstr(tether_last_error(), "next connect"));
  tether_store_close(st);
  close(fd);
}

static void expect_bad_url(const char *url, const char *in_message) {
  tether_store *st = NULL;
  int rc = tether_store_open(url, &st);
  if (rc != TETHER_EINVAL)
    fail_msg("open %s: expected EINVAL, got %s (%s)", url, tether_strerror(rc), tether_last_error());
  assert_null(st);
  if (strstr(tether_last_error(), in_message) == NULL)
    fail_msg("open %s: message '%s' does not mention '%s'", url, tether_last_error(), in_message);
}

static void test_bad_urls(void **state) {
  (void)state;
  expect_bad_url("postgres://", "no host");
  expect_bad_url("postgres:///db", "no host");
  expect_bad_url("postgres:db", "postgres://");
  expect_bad_url("postgres://u@h:99999/db", "port");
  expect_bad_url("postgres://u@h:5432/a/b", "'a/b'");
  expect_bad_url("postgres://u@h/db?tabel=x", "unknown URL parameter 'tabel'");
  expect_bad_url("postgres://u@h/db?table=x;drop%20table%20y", "table");
  expect_bad_url("postgres://u@h/db?table=a\"b", "table");
  expect_bad_url("postgres://u@h/db?pool=0", "pool");
  expect_bad_url("postgres://u@h/db?timeout_ms=soon", "timeout_ms");
  expect_bad_url("postgres://u@h/db?create_table=2", "create_table");
  expect_bad_url("postgres://u@h/db?sslmode=maybe", "sslmode");
  expect_bad_url("postgres://u:p%zz@h/db", "escape");
  /* postgresql:// works too; the password never shows */
  char url[300];
  snprintf(url, sizeof(url), "postgresql://postgres:s3cret@127.0.0.1:%d/postgres?pool=2", pg.port);
  tether_store *st = NULL;
  assert_int_equal(tether_store_open(url, &st), 0);
  assert_null(strstr(tether_store_url(st), "s3cret"));
  assert_int_equal(tether_store_ping(st), 0); /* trust authentication: any password */
  tether_store_close(st);
  /* several hosts: libpq tries them in turn (the first has no server) */
  snprintf(url, sizeof(url), "postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/postgres", tt_free_port(), pg.port);
  assert_int_equal(tether_store_open(url, &st), 0);
  assert_int_equal(tether_store_ping(st), 0);
  tether_store_close(st);
}

/* Kills the server (the postmaster and its children: the whole process group) or stops it fast. */
static void stop_server(int sig) {
  if (sig == SIGKILL && pg.pid > 0) kill(-pg.pid, SIGKILL);
  tt_server_stop(&pg, sig);
}

/* With the server gone, every call fails quickly with an error; once it is back, the store recovers. */
static void outage(tether_store *st, int sig) {
  set_ok(st, "outageSid", "{\"cookie\":{},\"n\":1}", 0);
  int64_t t_stop = tether_now_ms();
  stop_server(sig);
  tether_log_set_level(TETHER_LOG_ERROR); /* every failed call below would log a warning */
  int64_t start = tether_now_ms();
  uint64_t slowest = 0;
  int calls = 0;
  for (int i = 0; i < 30 && ms_since(start) < 2500; i++, calls++) {
    char *got = NULL;
    size_t len;
    int64_t t0 = tether_now_ms();
    int rc = i % 3 == 0   ? tether_store_get(st, "outageSid", &got, &len)
             : i % 3 == 1 ? tether_store_set(st, "outageSid", "{\"cookie\":{}}", 13, 0)
                          : tether_store_ping(st);
    uint64_t took = ms_since(t0);
    if (rc == 0 || rc == TETHER_ENOTFOUND) fail_msg("call %d succeeded with the server down", i);
    if (took >= 3000) fail_msg("call %d took %llu ms", i, (unsigned long long)took);
    if (took > slowest) slowest = took;
    assert_true(rc == TETHER_EUNAVAIL || rc == TETHER_ETIMEDOUT);
    assert_true(strlen(tether_last_error()) > 0);
    assert_null(got);
    tt_sleep_ms(50);
  }
  uint64_t down_ms = ms_since(t_stop);
  assert_int_equal(tt_postgres_start(&pg, pg.port), 0);
  int rc = -1;
  int64_t t0 = tether_now_ms();
  while (ms_since(t0) < 15000 && (rc = tether_store_set(st, "outageSid", "{\"cookie\":{},\"n\":2}", 19, 0)) != 0)
    tt_sleep_ms(100);
  tether_log_set_level(TETHER_LOG_WARN);
  if (rc != 0) fail_msg("no recovery after 15 s: %s", tether_last_error());
  print_message("signal %d: %d calls failed (slowest %llu ms) over %llu ms down; recovered %llu ms after the "
                "restart\n",
                sig, calls, (unsigned long long)slowest, (unsigned long long)down_ms, (unsigned long long)ms_since(t0));
  char *got;
  size_t len;
  assert_int_equal(tether_store_get(st, "outageSid", &got, &len), 0);
  assert_string_equal(got, "{\"cookie\":{},\"n\":2}");
  free(got);
}

static void test_restart(void **state) {
  (void)state;
  tether_store *st = open_ok("?pool=4");
  /* several pooled connections, all of which die with the server */
  for (int i = 0; i < 4; i++) assert_int_equal(tether_store_ping(st), 0);
  outage(st, SIGKILL); /* a crash */
  outage(st, SIGINT);  /* a fast shutdown: sessions get "terminating connection due to administrator command" */
  tether_store_close(st);
}

int main(void) {
  if (tt_postgres_start(&pg, 0) != 0) {
    fprintf(stderr, "cannot start PostgreSQL\n");
    tt_server_cleanup(&pg);
    return 1;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_schema),
      cmocka_unit_test(test_time_zone),
      cmocka_unit_test(test_purge),
      cmocka_unit_test(test_create_table_off),
      cmocka_unit_test(test_statement_timeout),
      cmocka_unit_test(test_unreachable),
      cmocka_unit_test(test_silent_server),
      cmocka_unit_test(test_bad_urls),
      cmocka_unit_test(test_restart),
  };
  int failed = cmocka_run_group_tests_name("postgres", tests, NULL, NULL);
  failed += tt_conformance_run("postgres conformance", pg.url);
  tt_server_stop(&pg, SIGINT); /* a fast shutdown ends the server's children too */
  tt_server_cleanup(&pg);
  return failed ? 1 : 0;
}
