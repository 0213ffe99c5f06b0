/* libtether: the PostgreSQL store, in connect-pg-simple's table so that Node services can share it.
 *   postgres://[user[:password]@]host[:port][,host[:port]...]/db[?params]   (or postgresql://)
 * Parameters: table (default "session"), timeout_ms (statement timeout, 2000), connect_timeout_ms (2000),
 * pool (connections, 8), create_table (1: create the table on first connect when missing), purge_s
 * (seconds between opportunistic purges of expired rows, 60; 0: only tether_store_purge), sslmode (as libpq).
 *
 * The table is connect-pg-simple's: sid varchar primary key, sess json, expire timestamp(6). sess is `json`,
 * never `jsonb`: json keeps the text as written, so what express-session hashes is what it reads back.
 * expire holds UTC wall-clock time (every connection sets TimeZone to UTC, and the SQL converts explicitly).
 *
 * All I/O is non-blocking with our own deadlines (connect_timeout_ms to connect, timeout_ms plus a grace to
 * answer), so no call blocks for ever. A connection that failed is dropped; new ones are made on demand,
 * and after a failed connect the store backs off (100 ms doubling to 2 s) and fails fast with
 * TETHER_EUNAVAIL meanwhile. (Host names are resolved by libpq with getaddrinfo, which no deadline
 * bounds: give addresses where that matters.) User text reaches the server only as statement parameters; the table name
 * is checked to be a plain identifier and quoted. */
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../util.h"
#include "pool.h"
#include "store_impl.h"

enum { P_GET, P_SET, P_CREATE, P_UPDATE, P_TOUCH, P_DEL, P_PURGE, P_PING, P_COUNT };

static const char *const stmt_name[P_COUNT] = {"tether_get",   "tether_set", "tether_create", "tether_update",
                                               "tether_touch", "tether_del", "tether_purge",  "tether_ping"};
static const int stmt_nparams[P_COUNT] = {2, 3, 4, 4, 3, 1, 1, 0};

#define PG_TABLE_MAX 48    /* identifier length we accept ("IDX_<table>_expire" must fit in 63) */
#define PG_DAY_MS 86400000 /* a session without expiry is kept for a day (connect-redis's rule) */
#define PG_GRACE_MS 1000   /* beyond statement_timeout before we stop waiting for an answer */
#define PG_BACKOFF_MIN_MS 100
#define PG_BACKOFF_MAX_MS 2000
#define PG_MAX_KEYS 12

/* Time in the table: UTC timestamp from epoch milliseconds passed as a parameter. */
#define PG_TS(n) "(to_timestamp($" #n "::float8 / 1000) AT TIME ZONE 'UTC')"

typedef struct pgconn {
  tether__pool_conn link; /* first: the pool's view of it */
  PGconn *c;
  unsigned prepared; /* bit i: statement i is prepared on this connection */
} pgconn;

typedef struct pgstore {
  tether__pool pool;                 /* the connections, with the connect backoff */
  int max;                           /* bound on the pool's connections (pool=) */
  _Atomic int schema_ready;          /* the table was found or created */
  const char *keys[PG_MAX_KEYS + 1]; /* libpq connection parameters, NULL-terminated */
  char *vals[PG_MAX_KEYS + 1];
  char *label; /* host:port/db, for messages (no password) */
  char *table; /* validated identifier */
  char *sql[P_COUNT];
  char timeout_str[16]; /* statement_timeout, in ms */
  int timeout_ms;
  int connect_timeout_ms;
  int create_table;
  int64_t purge_every_ms;        /* 0: purge only on demand */
  _Atomic int64_t next_purge_ms; /* wall clock of the next opportunistic purge */
} pgstore;

/* ---- errors ---- */

/* libpq's messages end with a newline and may span lines; one line suits our logs. */
static void one_line(const char *in, char *out, size_t cap) {
  size_t o = 0;
  for (const char *p = in ? in : ""; *p && o + 1 < cap; p++) {
    char ch = (*p == '\n' || *p == '\t' || *p == '\r') ? ' ' : *p;
    if (ch == ' ' && (o == 0 || out[o - 1] == ' ')) continue;
    out[o++] = ch;
  }
  while (o > 0 && out[o - 1] == ' ') o--;
  out[o] = '\0';
}

/* The connection broke (or never answered): it cannot be reused. */
static int conn_fail(const pgstore *p, PGconn *c, const char *what, int *drop) {
  char msg[384];
  one_line(PQerrorMessage(c), msg, sizeof(msg));
  *drop = 1;
  return tether__fail(TETHER_EUNAVAIL, "postgres store %s: %s: %s", p->label, what, *msg ? msg : "connection lost");
}

/* The server answered with an error: maps its SQLSTATE; a connection-level one drops the connection. */
static int result_fail(const pgstore *p, PGconn *c, const PGresult *r, const char *what, int *drop) {
  const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  char msg[384];
  one_line(PQresultErrorMessage(r), msg, sizeof(msg));
  if (!*msg) one_line(PQerrorMessage(c), msg, sizeof(msg));
  int code = TETHER_ESTORE;
  if (state == NULL) {
    code = TETHER_EUNAVAIL; /* made up by libpq: the connection failed */
    *drop = 1;
  } else if (strcmp(state, "57014") == 0) {
    code = TETHER_ETIMEDOUT; /* statement_timeout */
  } else if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0) {
    code = TETHER_EUNAVAIL; /* connection exception, admin/crash shutdown, cannot connect now */
    *drop = 1;
  } else if (strncmp(state, "54", 2) == 0) {
    code = TETHER_E2BIG;
  } else if (strncmp(state, "22", 2) == 0) {
    code = TETHER_EINVAL; /* data exception: the value is not JSON, bad encoding */
  }
  if (PQstatus(c) != CONNECTION_OK) *drop = 1;
  return tether__fail(code, "postgres store %s: %s: %s%s%s%s", p->label, what, msg, state ? " (SQLSTATE " : "",
                      state ? state : "", state ? ")" : "");
}

/* ---- non-blocking I/O with deadlines ---- */

/* Waits for events on c's socket until deadline_us (monotonic): 1 ready, 0 timed out, -1 failed. */
static int wait_socket(PGconn *c, short events, uint64_t deadline_us) {
  int fd = PQsocket(c);
  if (fd < 0) return -1;
  for (;;) {
    uint64_t now = tether__mono_us();
    if (now >= deadline_us) return 0;
    struct pollfd pfd = {.fd = fd, .events = events};
    int r = poll(&pfd, 1, (int)((deadline_us - now + 999) / 1000));
    if (r > 0) return 1;
    if (r < 0 && errno != EINTR) return -1;
  }
}

/* Sends what libpq has queued and collects the answer to one query: *out is the first error or the last
 * result (the caller PQclears it). */
static int await_result(const pgstore *p, PGconn *c, uint64_t deadline_us, const char *what, PGresult **out,
                        int *drop) {
  int f;
  while ((f = PQflush(c)) == 1) {
    int w = wait_socket(c, POLLIN | POLLOUT, deadline_us);
    if (w <= 0) goto timeout_or_fail;
    if (PQconsumeInput(c) == 0) return conn_fail(p, c, what, drop);
  }
  if (f < 0) return conn_fail(p, c, what, drop);
  PGresult *keep = NULL;
  for (;;) {
    while (PQisBusy(c)) {
      int w = wait_socket(c, POLLIN, deadline_us);
      if (w <= 0 || PQconsumeInput(c) == 0) {
        PQclear(keep);
        if (w <= 0) goto timeout_or_fail;
        return conn_fail(p, c, what, drop);
      }
    }
    PGresult *r = PQgetResult(c);
    if (r == NULL) break;
    if (keep && PQresultStatus(keep) == PGRES_FATAL_ERROR) {
      PQclear(r);
    } else {
      PQclear(keep);
      keep = r;
    }
  }
  if (keep == NULL) return conn_fail(p, c, what, drop);
  *out = keep;
  return 0;
timeout_or_fail:
  *drop = 1; /* a query is in flight: the connection's state is unknown */
  if (PQstatus(c) != CONNECTION_OK) return conn_fail(p, c, what, drop);
  return tether__fail(TETHER_ETIMEDOUT, "postgres store %s: %s: no answer within %d ms", p->label, what,
                      p->timeout_ms + PG_GRACE_MS);
}

/* Checks a finished query's status. */
static int check_result(const pgstore *p, PGconn *c, PGresult *r, const char *what, int *drop) {
  ExecStatusType s = PQresultStatus(r);
  if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) return 0;
  return result_fail(p, c, r, what, drop);
}

/* Runs one SQL statement with text parameters (DDL, session settings). */
static int exec_sql(const pgstore *p, PGconn *c, const char *sql, int n, const char *const *vals, uint64_t deadline_us,
                    PGresult **out, int *drop) {
  if (!PQsendQueryParams(c, sql, n, NULL, vals, NULL, NULL, 0)) return conn_fail(p, c, "send", drop);
  PGresult *r = NULL;
  int rc = await_result(p, c, deadline_us, "query", &r, drop);
  if (rc == 0) rc = check_result(p, c, r, "query", drop);
  if (rc == 0 && out)
    *out = r;
  else
    PQclear(r);
  return rc;
}

/* Runs statement i, preparing it on this connection first if needed. */
static int exec_stmt(const pgstore *p, pgconn *pc, int i, const char *const *vals, const int *lens, const int *fmts,
                     uint64_t deadline_us, PGresult **out, int *drop) {
  PGresult *r = NULL;
  int rc;
  if (!(pc->prepared & (1u << i))) {
    if (!PQsendPrepare(pc->c, stmt_name[i], p->sql[i], stmt_nparams[i], NULL))
      return conn_fail(p, pc->c, "prepare", drop);
    rc = await_result(p, pc->c, deadline_us, "prepare", &r, drop);
    if (rc == 0) rc = check_result(p, pc->c, r, "prepare", drop);
    PQclear(r);
    if (rc < 0) return rc;
    pc->prepared |= 1u << i;
  }
  const char *what = stmt_name[i] + strlen("tether_");
  if (!PQsendQueryPrepared(pc->c, stmt_name[i], stmt_nparams[i], vals, lens, fmts, 0))
    return conn_fail(p, pc->c, what, drop);
  r = NULL;
  rc = await_result(p, pc->c, deadline_us, what, &r, drop);
  if (rc == 0) rc = check_result(p, pc->c, r, what, drop);
  if (rc < 0) {
    PQclear(r);
    return rc;
  }
  *out = r;
  return 0;
}

/* ---- connections ---- */

static void notice_to_log(void *arg, const char *message) {
  TETHER__UNUSED(arg);
  char msg[384];
  one_line(message, msg, sizeof(msg));
  tether__log(TETHER_LOG_DEBUG, "postgres store: server notice: %s", msg);
}

/* Finds the table, or creates it (connect-pg-simple's schema) when allowed. Two processes creating it at
 * once is fine: the loser's duplicate errors are ignored. */
static int ensure_table(const pgstore *p, PGconn *c, uint64_t deadline_us, int *drop) {
  char *quoted = tether__asprintf("\"%s\"", p->table);
  const char *vals[] = {quoted};
  PGresult *r = NULL;
  int rc = exec_sql(p, c, "SELECT to_regclass($1) IS NOT NULL", 1, vals, deadline_us, &r, drop);
  int exists = rc == 0 && PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
  PQclear(r);
  free(quoted);
  if (rc < 0 || exists) return rc;
  if (!p->create_table)
    return tether__fail(TETHER_ESTORE, "postgres store %s: table \"%s\" does not exist (and create_table=0)", p->label,
                        p->table);
  const char *t = p->table;
  char *ddl[2];
  ddl[0] = tether__asprintf("CREATE TABLE IF NOT EXISTS \"%s\" (\"sid\" varchar NOT NULL COLLATE \"default\", "
                            "\"sess\" json NOT NULL, \"expire\" timestamp(6) NOT NULL, "
                            "CONSTRAINT \"%s_pkey\" PRIMARY KEY (\"sid\") NOT DEFERRABLE INITIALLY IMMEDIATE)",
                            t, t);
  ddl[1] = tether__asprintf("CREATE INDEX IF NOT EXISTS \"IDX_%s_expire\" ON \"%s\" (\"expire\")", t, t);
  for (int k = 0; k < 2 && rc == 0; k++) {
    rc = exec_sql(p, c, ddl[k], 0, NULL, deadline_us, NULL, drop);
    const char *m = tether_last_error();
    if (rc < 0 && !*drop && (strstr(m, "SQLSTATE 42P07") || strstr(m, "SQLSTATE 23505"))) rc = 0;
  }
  free(ddl[0]);
  free(ddl[1]);
  if (rc == 0) tether__log(TETHER_LOG_INFO, "postgres store %s: created table \"%s\"", p->label, t);
  return rc;
}

/* Connects within connect_timeout_ms, sets the session up (statement_timeout, UTC) and checks the table
 * once per store. */
static int conn_open(pgstore *p, pgconn **out) {
  uint64_t deadline = tether__mono_us() + (uint64_t)p->connect_timeout_ms * 1000;
  int drop = 0, rc = 0;
  PGconn *c = PQconnectStartParams(p->keys, (const char *const *)p->vals, 0);
  if (c == NULL) return tether__fail(TETHER_EUNAVAIL, "postgres store %s: cannot allocate a connection", p->label);
  if (PQstatus(c) == CONNECTION_BAD) {
    rc = conn_fail(p, c, "connect", &drop);
    goto fail;
  }
  PostgresPollingStatusType ps = PGRES_POLLING_WRITING;
  while (ps != PGRES_POLLING_OK) {
    if (ps == PGRES_POLLING_FAILED) {
      rc = conn_fail(p, c, "connect", &drop);
      goto fail;
    }
    int w = wait_socket(c, ps == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline);
    if (w == 0) {
      rc = tether__fail(TETHER_ETIMEDOUT, "postgres store %s: connect: no answer within %d ms", p->label,
                        p->connect_timeout_ms);
      goto fail;
    }
    if (w < 0) {
      rc = conn_fail(p, c, "connect", &drop);
      goto fail;
    }
    ps = PQconnectPoll(c);
  }
  PQsetNoticeProcessor(c, notice_to_log, NULL);
  if (PQsetnonblocking(c, 1) != 0) {
    rc = conn_fail(p, c, "connect", &drop);
    goto fail;
  }
  uint64_t qdeadline = tether__mono_us() + (uint64_t)(p->timeout_ms + PG_GRACE_MS) * 1000;
  const char *vals[] = {p->timeout_str};
  rc = exec_sql(p, c, "SELECT set_config('statement_timeout', $1, false), set_config('TimeZone', 'UTC', false)", 1,
                vals, qdeadline, NULL, &drop);
  if (rc == 0 && !atomic_load(&p->schema_ready)) {
    rc = ensure_table(p, c, qdeadline, &drop);
    if (rc == 0) atomic_store(&p->schema_ready, 1);
  }
  if (rc < 0) goto fail;
  *out = tether__calloc(1, sizeof(**out));
  (*out)->c = c;
  return 0;
fail:
  PQfinish(c);
  return rc;
}

static void conn_close(pgconn *pc) {
  PQfinish(pc->c);
  free(pc);
}

/* An idle connection whose server went away has an EOF (or a FATAL message) waiting: notice it before use. */
static int conn_alive(pgconn *pc) {
  if (PQstatus(pc->c) != CONNECTION_OK || PQtransactionStatus(pc->c) != PQTRANS_IDLE) return 0;
  struct pollfd pfd = {.fd = PQsocket(pc->c), .events = POLLIN};
  if (pfd.fd < 0) return 0;
  if (poll(&pfd, 1, 0) > 0) {
    if (PQconsumeInput(pc->c) == 0 || PQstatus(pc->c) != CONNECTION_OK) return 0;
    PGnotify *n;
    while ((n = PQnotifies(pc->c)) != NULL) PQfreemem(n);
  }
  return 1;
}

static int pool_open(void *owner, tether__pool_conn **out) {
  pgconn *pc = NULL;
  int rc = conn_open(owner, &pc);
  if (rc == 0) *out = &pc->link;
  return rc;
}

static void pool_close(tether__pool_conn *c) { conn_close((pgconn *)c); }

static int pool_alive(tether__pool_conn *c) { return conn_alive((pgconn *)c); }

static const tether__pool_ops pool_ops = {.open = pool_open, .close = pool_close, .alive = pool_alive};

/* Takes a live idle connection, connects a new one while under the bound (unless backing off), or waits for
 * one until the deadline. *fresh tells a new connection from a pooled one. */
static int acquire(pgstore *p, uint64_t deadline_us, pgconn **out, int *fresh) {
  tether__pool_conn *c = NULL;
  int rc = tether__pool_acquire(&p->pool, deadline_us, &c, fresh);
  *out = (pgconn *)c;
  return rc;
}

static void release(pgstore *p, pgconn *pc, int drop) {
  if (!drop && (PQstatus(pc->c) != CONNECTION_OK || PQtransactionStatus(pc->c) != PQTRANS_IDLE)) drop = 1;
  tether__pool_release(&p->pool, &pc->link, drop);
}

/* Runs statement i on a pooled connection. A pooled connection found broken (the server restarted since
 * it was used) is dropped and the statement runs once more on a new one: every statement here is
 * idempotent. */
static int call(pgstore *p, int i, const char *const *vals, const int *lens, const int *fmts, PGresult **out) {
  for (int attempt = 0;; attempt++) {
    pgconn *pc = NULL;
    int fresh = 0, drop = 0;
    int rc = acquire(p, tether__mono_us() + (uint64_t)p->timeout_ms * 1000, &pc, &fresh);
    if (rc < 0) return rc;
    uint64_t deadline = tether__mono_us() + (uint64_t)(p->timeout_ms + PG_GRACE_MS) * 1000;
    rc = exec_stmt(p, pc, i, vals, lens, fmts, deadline, out, &drop);
    release(p, pc, drop);
    if (rc == 0 || !drop || fresh || attempt > 0 || rc != TETHER_EUNAVAIL) return rc;
    tether__log(TETHER_LOG_INFO, "%s; retrying on a new connection", tether_last_error());
  }
}

/* ---- operations ---- */

static int run_purge(pgstore *p) {
  char now[24];
  snprintf(now, sizeof(now), "%lld", (long long)tether_now_ms());
  const char *vals[] = {now};
  PGresult *r = NULL;
  int rc = call(p, P_PURGE, vals, NULL, NULL, &r);
  if (rc < 0) return rc;
  long n = strtol(PQcmdTuples(r), NULL, 10);
  PQclear(r);
  return n > 0x7fffffff ? 0x7fffffff : (int)n;
}

/* Purges now and then, by whichever writer first sees that it is time. */
static void maybe_purge(pgstore *p) {
  if (p->purge_every_ms == 0) return;
  int64_t now = tether_now_ms();
  int64_t due = atomic_load_explicit(&p->next_purge_ms, memory_order_relaxed);
  if (now < due || !atomic_compare_exchange_strong(&p->next_purge_ms, &due, now + p->purge_every_ms)) return;
  int n = run_purge(p);
  if (n > 0) tether__log(TETHER_LOG_DEBUG, "postgres store %s: purged %d expired sessions", p->label, n);
  if (n < 0) tether__log(TETHER_LOG_INFO, "postgres store: purge skipped: %s", tether_last_error());
}

static int pg_get(tether_store *st, const char *sid, char **json, size_t *len) {
  pgstore *p = st->impl;
  char now[24];
  snprintf(now, sizeof(now), "%lld", (long long)tether_now_ms());
  const char *vals[] = {sid, now};
  PGresult *r = NULL;
  int rc = call(p, P_GET, vals, NULL, NULL, &r);
  if (rc < 0) return rc;
  if (PQntuples(r) == 0) {
    rc = TETHER_ENOTFOUND;
  } else {
    *len = (size_t)PQgetlength(r, 0, 0);
    *json = tether__strndup(PQgetvalue(r, 0, 0), *len);
  }
  PQclear(r);
  return rc;
}

static int pg_destroy(tether_store *st, const char *sid) {
  const char *vals[] = {sid};
  PGresult *r = NULL;
  int rc = call(st->impl, P_DEL, vals, NULL, NULL, &r);
  PQclear(r);
  return rc;
}

static int pg_set(tether_store *st, const char *sid, const char *json, size_t len, int64_t expires_ms, int mode) {
  pgstore *p = st->impl;
  int64_t now = tether_now_ms();
  if (tether__ttl_seconds(expires_ms, now) <= 0) return pg_destroy(st, sid);
  if (len > 0x3fffffff) return tether__fail(TETHER_E2BIG, "postgres store: session of %zu bytes is too large", len);
  char exp[24], nows[24];
  snprintf(exp, sizeof(exp), "%lld", (long long)(expires_ms ? expires_ms : now + PG_DAY_MS));
  snprintf(nows, sizeof(nows), "%lld", (long long)now);
  /* The JSON goes in binary format, which for json is its text: no copy, no NUL terminator needed. */
  const char *vals[] = {sid, json ? json : "", exp, nows};
  const int lens[] = {0, json ? (int)len : 0, 0, 0};
  const int fmts[] = {0, 1, 0, 0};
  int stmt = mode == TETHER_WRITE_CREATE ? P_CREATE : mode == TETHER_WRITE_UPDATE ? P_UPDATE : P_SET;
  PGresult *r = NULL;
  int rc = call(p, stmt, vals, lens, fmts, &r);
  if (rc == 0 && stmt != P_SET && strtol(PQcmdTuples(r), NULL, 10) == 0)
    rc = stmt == P_UPDATE ? TETHER_ENOTFOUND : TETHER_EEXIST;
  PQclear(r);
  if (rc == 0) maybe_purge(p);
  return rc;
}

static int pg_touch(tether_store *st, const char *sid, const char *json, size_t len, int64_t expires_ms) {
  TETHER__UNUSED(json);
  TETHER__UNUSED(len);
  pgstore *p = st->impl;
  int64_t now = tether_now_ms();
  if (tether__ttl_seconds(expires_ms, now) <= 0) return pg_destroy(st, sid);
  char exp[24], nows[24];
  snprintf(exp, sizeof(exp), "%lld", (long long)(expires_ms ? expires_ms : now + PG_DAY_MS));
  snprintf(nows, sizeof(nows), "%lld", (long long)now);
  const char *vals[] = {sid, exp, nows};
  PGresult *r = NULL;
  int rc = call(p, P_TOUCH, vals, NULL, NULL, &r);
  PQclear(r);
  if (rc == 0) maybe_purge(p);
  return rc; /* a missing session is not an error (express-session's MemoryStore) */
}

static int pg_purge(tether_store *st) { return run_purge(st->impl); }

static int pg_ping(tether_store *st) {
  PGresult *r = NULL;
  int rc = call(st->impl, P_PING, NULL, NULL, NULL, &r);
  PQclear(r);
  return rc;
}

/* ---- open / close ---- */

static int valid_table(const char *t) {
  size_t n = strlen(t);
  if (n == 0 || n > PG_TABLE_MAX || !(t[0] == '_' || (t[0] >= 'A' && t[0] <= 'Z') || (t[0] >= 'a' && t[0] <= 'z')))
    return 0;
  for (size_t i = 1; i < n; i++) {
    char ch = t[i];
    if (!(ch == '_' || (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z'))) return 0;
  }
  return 1;
}

static void add_key(pgstore *p, const char *key, char *val) {
  size_t i = 0;
  while (p->keys[i]) i++;
  p->keys[i] = key;
  p->vals[i] = val;
}

static void build_sql(pgstore *p) {
  const char *t = p->table;
  p->sql[P_GET] = tether__asprintf("SELECT sess FROM \"%s\" WHERE sid = $1 AND expire > " PG_TS(2), t);
  p->sql[P_SET] =
      tether__asprintf("INSERT INTO \"%s\" (sid, sess, expire) VALUES ($1, $2::json, " PG_TS(
                           3) ") "
                              "ON CONFLICT (sid) DO UPDATE SET sess = EXCLUDED.sess, expire = EXCLUDED.expire",
                       t);
  /* create: an expired row not yet purged is as good as absent */
  p->sql[P_CREATE] = tether__asprintf("INSERT INTO \"%s\" AS t (sid, sess, expire) VALUES ($1, $2::json, " PG_TS(
                                          3) ") ON CONFLICT (sid) DO UPDATE SET sess = EXCLUDED.sess, expire = "
                                             "EXCLUDED.expire WHERE t.expire <= " PG_TS(4),
                                      t);
  p->sql[P_UPDATE] = tether__asprintf(
      "UPDATE \"%s\" SET sess = $2::json, expire = " PG_TS(3) " WHERE sid = $1 AND expire > " PG_TS(4), t);
  p->sql[P_TOUCH] =
      tether__asprintf("UPDATE \"%s\" SET expire = " PG_TS(2) " WHERE sid = $1 AND expire > " PG_TS(3), t);
  p->sql[P_DEL] = tether__asprintf("DELETE FROM \"%s\" WHERE sid = $1", t);
  p->sql[P_PURGE] = tether__asprintf("DELETE FROM \"%s\" WHERE expire <= " PG_TS(1), t);
  p->sql[P_PING] = tether__strdup("SELECT 1");
}

/* Frees what configure() and build_sql() made. */
static void store_free_config(pgstore *p) {
  for (int i = 0; i < P_COUNT; i++) free(p->sql[i]);
  for (int i = 0; p->keys[i]; i++) free(p->vals[i]);
  free(p->label);
  free(p->table);
  free(p);
}

static void store_free(pgstore *p) {
  tether__pool_destroy(&p->pool);
  store_free_config(p);
}

/* Turns the parsed URL into libpq's connection parameters (never a conninfo string: no quoting to get
 * wrong) and the store's settings. */
static int configure(pgstore *p, const tether__url *url) {
  static const char *const allowed[] = {
      "table", "timeout_ms", "connect_timeout_ms", "pool", "create_table", "purge_s", "sslmode", NULL};
  static const char *const sslmodes[] = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full", NULL};
  long timeout_ms, connect_timeout_ms, pool, create_table, purge_s;
  int rc = tether__url_check_params(url, allowed);
  if (rc == 0 && url->nhosts == 0)
    rc = tether__fail(TETHER_EINVAL, "postgres store: no host in the URL (expected postgres://user@host:port/db)");
  if (rc == 0 && strchr(url->path, '/'))
    rc = tether__fail(TETHER_EINVAL, "postgres store: database name '%s' contains '/'", url->path);
  if (rc == 0) rc = tether__url_param_int(url, "timeout_ms", 2000, 1, 3600000, &timeout_ms);
  if (rc == 0) rc = tether__url_param_int(url, "connect_timeout_ms", 2000, 1, 600000, &connect_timeout_ms);
  if (rc == 0) rc = tether__url_param_int(url, "pool", 8, 1, 256, &pool);
  if (rc == 0) rc = tether__url_param_int(url, "create_table", 1, 0, 1, &create_table);
  if (rc == 0) rc = tether__url_param_int(url, "purge_s", 60, 0, 86400 * 365, &purge_s);
  const char *table = tether__url_param(url, "table");
  if (rc == 0 && table && !valid_table(table))
    rc = tether__fail(TETHER_EINVAL,
                      "postgres store: table '%s' is not a plain identifier (letters, digits, '_', at most %d)", table,
                      PG_TABLE_MAX);
  const char *ssl = tether__url_param(url, "sslmode");
  int ssl_ok = ssl == NULL;
  for (const char *const *m = sslmodes; ssl && *m; m++) ssl_ok |= strcmp(ssl, *m) == 0;
  if (rc == 0 && !ssl_ok) rc = tether__fail(TETHER_EINVAL, "postgres store: unknown sslmode '%s'", ssl);
  if (rc < 0) return rc;

  tether__buf hosts = {0}, ports = {0};
  for (size_t i = 0; i < url->nhosts; i++) {
    tether__buf_appendf(&hosts, "%s%s", i ? "," : "", url->hosts[i].host);
    tether__buf_appendf(&ports, "%s%d", i ? "," : "", url->hosts[i].port ? url->hosts[i].port : 5432);
  }
  add_key(p, "host", tether__strdup(hosts.data));
  add_key(p, "port", tether__strdup(ports.data));
  if (*url->path) add_key(p, "dbname", tether__strdup(url->path));
  if (url->user && *url->user) add_key(p, "user", tether__strdup(url->user));
  if (url->password) add_key(p, "password", tether__strdup(url->password));
  /* libpq's own bound (whole seconds, at least 2); ours, in milliseconds, is enforced around PQconnectPoll */
  add_key(p, "connect_timeout",
          tether__asprintf("%ld", connect_timeout_ms < 2000 ? 2 : (connect_timeout_ms + 999) / 1000));
  add_key(p, "client_encoding", tether__strdup("UTF8"));
  add_key(p, "application_name", tether__strdup("tether"));
  if (ssl) add_key(p, "sslmode", tether__strdup(ssl));
  p->label = tether__asprintf("%s:%d%s/%s", url->hosts[0].host, url->hosts[0].port ? url->hosts[0].port : 5432,
                              url->nhosts > 1 ? ",..." : "", url->path);
  tether__buf_free(&hosts);
  tether__buf_free(&ports);
  p->table = tether__strdup(table ? table : "session");
  p->timeout_ms = (int)timeout_ms;
  snprintf(p->timeout_str, sizeof(p->timeout_str), "%ld", timeout_ms);
  p->connect_timeout_ms = (int)connect_timeout_ms;
  p->max = (int)pool;
  p->create_table = (int)create_table;
  p->purge_every_ms = purge_s * 1000;
  return 0;
}

/* Parses the URL only: the first operation connects (an unreachable server at open time is not fatal). */
static int pg_open(tether_store *st, const char *text) {
  tether__url url;
  int rc = tether__url_parse(text, &url);
  if (rc < 0) return rc;
  if (strncmp(text + strlen(url.scheme) + 1, "//", 2) != 0)
    rc = tether__fail(TETHER_EINVAL, "postgres store: expected postgres://user@host:port/db");
  pgstore *p = tether__calloc(1, sizeof(*p));
  atomic_init(&p->schema_ready, 0);
  atomic_init(&p->next_purge_ms, tether_now_ms() + 1000); /* not in the very first request */
  if (rc == 0) rc = configure(p, &url);
  tether__url_free(&url);
  if (rc < 0) {
    store_free_config(p);
    return rc;
  }
  char *name = tether__asprintf("postgres store %s", p->label);
  tether__pool_init(&p->pool, name, p->max, p->timeout_ms, &pool_ops, p, PG_BACKOFF_MIN_MS, PG_BACKOFF_MAX_MS);
  free(name);
  build_sql(p);
  st->impl = p;
  return 0;
}

static void pg_close(tether_store *st) { store_free(st->impl); }

const tether__store_ops tether__store_postgres = {
    .kind = "postgres",
    .open = pg_open,
    .close = pg_close,
    .get = pg_get,
    .set = pg_set,
    .touch = pg_touch,
    .destroy = pg_destroy,
    .purge = pg_purge,
    .ping = pg_ping,
};
