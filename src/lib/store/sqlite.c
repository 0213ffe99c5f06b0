/* libtether: the SQLite store, the embedded default.
 *   sqlite:PATH[?table=sessions&timeout_ms=5000&purge_s=60&pool=8]
 * PATH is absolute (sqlite:/var/lib/app/sessions.db) or relative to the working directory at open time
 * (sqlite:./sessions.db); the file and its table are created when missing: the file (and so its -wal and
 * -shm files) with mode 0600, and a missing last directory of the path with mode 0700.
 *
 * Several processes on one machine may share the file: WAL mode lets readers run beside the one writer,
 * writers queue on SQLite's lock (busy_timeout), and a bounded retry covers the few cases where SQLite
 * reports SQLITE_BUSY without waiting (WAL recovery by another process, a lock held across a checkpoint).
 * A handle is a small pool of connections, one per concurrent caller up to `pool`, each with its prepared
 * statements. Expired rows are ignored by reads and deleted every purge_s seconds by a writer (0: only by
 * tether_store_purge). Not for network filesystems: WAL needs shared memory between the processes. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../util.h"
#include "pool.h"
#include "store_impl.h"

enum { Q_GET, Q_SET, Q_CREATE, Q_UPDATE, Q_TOUCH, Q_DEL, Q_PURGE, Q_PING, Q_COUNT };

#define SQ_TABLE_MAX 48    /* identifier length we accept (the index name adds a few characters) */
#define SQ_DAY_MS 86400000 /* a session without expiry is kept for a day (connect-redis's rule) */

typedef struct sqconn {
  tether__pool_conn link; /* first: the pool's view of it */
  sqlite3 *db;
  sqlite3_stmt *stmt[Q_COUNT]; /* prepared on first use, kept for the connection's life */
} sqconn;

typedef struct sqstore {
  tether__pool pool;             /* the connections, one per concurrent caller up to pool= */
  char *path;                    /* absolute */
  char *table;                   /* validated identifier */
  char *sql[Q_COUNT];            /* the statements, with the table name in place */
  int timeout_ms;                /* busy timeout, and the bound on one operation's retries */
  int64_t purge_every_ms;        /* 0: purge only on demand */
  _Atomic int64_t next_purge_ms; /* wall clock of the next opportunistic purge */
} sqstore;

static int64_t mono_ms(void) { return (int64_t)(tether__mono_us() / 1000); }

/* ---- errors ---- */

/* Maps a SQLite result code to a tether error with a message naming the file (and the OS's reason when
 * opening or I/O failed). */
static int sq_fail(const sqstore *s, sqlite3 *db, int r, const char *what) {
  const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(r);
  int os = db ? sqlite3_system_errno(db) : 0;
  const char *sep = "", *why = "";
  if (os != 0 && ((r & 0xff) == SQLITE_CANTOPEN || (r & 0xff) == SQLITE_IOERR)) {
    sep = ": ";
    why = strerror(os);
  }
  switch (r & 0xff) {
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return tether__fail(TETHER_ETIMEDOUT, "sqlite store '%s': %s: %s (still locked after %d ms)", s->path, what, msg,
                        s->timeout_ms);
  case SQLITE_TOOBIG:
    return tether__fail(TETHER_E2BIG, "sqlite store '%s': %s: %s", s->path, what, msg);
  case SQLITE_NOTADB:
    return tether__fail(TETHER_ESTORE, "sqlite store: '%s' is not an SQLite database (%s)", s->path, msg);
  case SQLITE_CANTOPEN:
    return tether__fail(TETHER_EINVAL, "sqlite store: cannot open '%s': %s%s%s", s->path, msg, sep, why);
  default:
    return tether__fail(TETHER_ESTORE, "sqlite store '%s': %s: %s%s%s", s->path, what, msg, sep, why);
  }
}

static int is_busy(int r) { return (r & 0xff) == SQLITE_BUSY || (r & 0xff) == SQLITE_LOCKED; }

/* Sleeps a little before retrying a busy database: 1, 2, 4 ... 16 ms, never past the deadline. */
static void busy_pause(int attempt, int64_t deadline) {
  int64_t ms = (int64_t)1 << (attempt < 4 ? attempt : 4);
  int64_t left = deadline - mono_ms();
  if (ms > left) ms = left;
  if (ms <= 0) return;
  struct timespec ts = {0, (long)ms * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

/* Steps q to its first row or its end, retrying while the database is busy until the deadline. Returns
 * SQLITE_ROW, SQLITE_DONE or a tether error (q is reset then). */
static int step(const sqstore *s, sqlite3 *db, sqlite3_stmt *q, int64_t deadline, const char *what) {
  for (int attempt = 0;; attempt++) {
    int r = sqlite3_step(q);
    if (r == SQLITE_ROW || r == SQLITE_DONE) return r;
    if (is_busy(r) && mono_ms() < deadline) {
      sqlite3_reset(q);
      busy_pause(attempt, deadline);
      continue;
    }
    int rc = sq_fail(s, db, r, what);
    sqlite3_reset(q);
    return rc;
  }
}

/* Runs one statement that needs no parameters (pragmas, DDL); copies the first column of the first row
 * into out (cap bytes) when out is not NULL. */
static int exec_simple(const sqstore *s, sqlite3 *db, const char *sql, int64_t deadline, char *out, size_t cap) {
  sqlite3_stmt *q = NULL;
  int r;
  for (int attempt = 0;; attempt++) {
    r = sqlite3_prepare_v2(db, sql, -1, &q, NULL);
    if (r == SQLITE_OK || !is_busy(r) || mono_ms() >= deadline) break;
    busy_pause(attempt, deadline);
  }
  if (r != SQLITE_OK) return sq_fail(s, db, r, sql);
  int rc = step(s, db, q, deadline, sql);
  if (out && cap) {
    const unsigned char *t = rc == SQLITE_ROW ? sqlite3_column_text(q, 0) : NULL;
    snprintf(out, cap, "%s", t ? (const char *)t : "");
  }
  sqlite3_finalize(q);
  return rc < 0 ? rc : 0;
}

/* ---- connections ---- */

static void conn_close(sqconn *c) {
  for (int i = 0; i < Q_COUNT; i++) sqlite3_finalize(c->stmt[i]);
  sqlite3_close_v2(c->db);
  free(c);
}

/* Opens a connection set up for sharing the file: busy timeout, WAL, synchronous=NORMAL; with create,
 * also the table and its index. Errors name the file. */
static int conn_open(const sqstore *s, int create, sqconn **out) {
  int64_t deadline = mono_ms() + s->timeout_ms;
  sqconn *c = tether__calloc(1, sizeof(*c));
  int r = sqlite3_open_v2(s->path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  int rc = 0;
  if (r != SQLITE_OK) {
    rc = sq_fail(s, c->db, r, "open");
    goto fail;
  }
  sqlite3_extended_result_codes(c->db, 1);
  sqlite3_busy_timeout(c->db, s->timeout_ms);
  char mode[16];
  rc = exec_simple(s, c->db, "PRAGMA journal_mode=WAL", deadline, mode, sizeof(mode));
  if (rc < 0) goto fail;
  if (strcmp(mode, "wal") != 0)
    tether__log(TETHER_LOG_WARN, "sqlite store '%s': journal mode is '%s', not 'wal' (processes will block readers)",
                s->path, mode);
  rc = exec_simple(s, c->db, "PRAGMA synchronous=NORMAL", deadline, NULL, 0);
  if (rc == 0 && create) {
    char *ddl = tether__asprintf("CREATE TABLE IF NOT EXISTS \"%s\" (sid TEXT PRIMARY KEY, sess TEXT NOT NULL, "
                                 "expire INTEGER NOT NULL)",
                                 s->table);
    rc = exec_simple(s, c->db, ddl, deadline, NULL, 0);
    free(ddl);
    if (rc == 0) {
      ddl = tether__asprintf("CREATE INDEX IF NOT EXISTS \"%s_expire_idx\" ON \"%s\" (expire)", s->table, s->table);
      rc = exec_simple(s, c->db, ddl, deadline, NULL, 0);
      free(ddl);
    }
  }
  if (rc < 0) goto fail;
  *out = c;
  return 0;
fail:
  conn_close(c);
  return rc;
}

static int pool_open(void *owner, tether__pool_conn **out) {
  sqconn *c = NULL;
  int rc = conn_open(owner, 0, &c);
  if (rc == 0) *out = &c->link;
  return rc;
}

static void pool_close(tether__pool_conn *c) { conn_close((sqconn *)c); }

static const tether__pool_ops pool_ops = {.open = pool_open, .close = pool_close};

static int acquire(sqstore *s, int64_t deadline, sqconn **out) {
  tether__pool_conn *c = NULL;
  int rc = tether__pool_acquire(&s->pool, (uint64_t)deadline * 1000, &c, NULL);
  *out = (sqconn *)c;
  return rc;
}

/* Gives a connection back. One that failed for another reason than a busy database or a too-big value
 * is closed (the file may have been replaced or damaged); the next caller opens a fresh one. */
static void release(sqstore *s, sqconn *c, int rc) {
  int keep = rc >= 0 || rc == TETHER_ENOTFOUND || rc == TETHER_ETIMEDOUT || rc == TETHER_E2BIG;
  tether__pool_release(&s->pool, &c->link, !keep);
}

/* The cached statement i of connection c, prepared on first use. *out is always written (NULL on an error):
 * the callers' statement is never left unset, whatever sq_fail returns. */
static int prepare(const sqstore *s, sqconn *c, int i, int64_t deadline, sqlite3_stmt **out) {
  *out = NULL;
  for (int attempt = 0; c->stmt[i] == NULL; attempt++) {
    int r = sqlite3_prepare_v3(c->db, s->sql[i], -1, SQLITE_PREPARE_PERSISTENT, &c->stmt[i], NULL);
    if (r == SQLITE_OK) break;
    if (!is_busy(r) || mono_ms() >= deadline) return sq_fail(s, c->db, r, "prepare");
    busy_pause(attempt, deadline);
  }
  *out = c->stmt[i];
  return 0;
}

/* Resets a cached statement so that it holds no lock and no pointer into the caller's buffers. */
static void finish(sqlite3_stmt *q) {
  sqlite3_reset(q);
  sqlite3_clear_bindings(q);
}

/* ---- operations ---- */

/* Deletes expired rows on c; the count or an error. */
static int purge_on(sqstore *s, sqconn *c, int64_t deadline) {
  sqlite3_stmt *q;
  int rc = prepare(s, c, Q_PURGE, deadline, &q);
  if (rc < 0) return rc;
  sqlite3_bind_int64(q, 1, tether_now_ms());
  rc = step(s, c->db, q, deadline, "purge");
  if (rc == SQLITE_DONE) {
    int64_t n = sqlite3_changes64(c->db);
    rc = n > INT_MAX ? INT_MAX : (int)n;
  }
  finish(q);
  return rc;
}

/* Purges now and then, by whichever writer first sees that it is time. */
static void maybe_purge(sqstore *s, sqconn *c, int64_t deadline) {
  if (s->purge_every_ms == 0) return;
  int64_t now = tether_now_ms();
  int64_t due = atomic_load_explicit(&s->next_purge_ms, memory_order_relaxed);
  if (now < due || !atomic_compare_exchange_strong(&s->next_purge_ms, &due, now + s->purge_every_ms)) return;
  int n = purge_on(s, c, deadline);
  if (n > 0) tether__log(TETHER_LOG_DEBUG, "sqlite store '%s': purged %d expired sessions", s->path, n);
  if (n < 0) tether__log(TETHER_LOG_INFO, "sqlite store: purge skipped: %s", tether_last_error());
}

/* The parameters of a statement, bound in this order where the statement has them. */
typedef struct sq_args {
  const char *sid;
  const char *json;
  size_t len;
  int64_t a, b; /* expiry / now, by statement */
} sq_args;

/* Runs statement i on a pooled connection. With a row, copies column 0 into *json. Returns 1 for a row,
 * 0 for none, or an error. */
static int run(sqstore *s, int i, const sq_args *args, char **json, size_t *len) {
  int64_t deadline = mono_ms() + s->timeout_ms;
  sqconn *c;
  sqlite3_stmt *q;
  int rc = acquire(s, deadline, &c);
  if (rc < 0) return rc;
  rc = prepare(s, c, i, deadline, &q);
  if (rc < 0) goto done;
  int p = 1;
  if (args->sid) sqlite3_bind_text(q, p++, args->sid, -1, SQLITE_STATIC);
  if (args->json) {
    if (args->len > INT_MAX) {
      rc = tether__fail(TETHER_E2BIG, "sqlite store: session of %zu bytes is too large", args->len);
      goto done;
    }
    sqlite3_bind_text(q, p++, args->json, (int)args->len, SQLITE_STATIC);
  }
  int write = i == Q_SET || i == Q_CREATE || i == Q_UPDATE;
  if (i == Q_GET || write || i == Q_TOUCH) sqlite3_bind_int64(q, p++, args->a);
  if (i == Q_TOUCH || i == Q_CREATE || i == Q_UPDATE) sqlite3_bind_int64(q, p++, args->b);
  rc = step(s, c->db, q, deadline, i == Q_GET ? "get" : write ? "set" : i == Q_TOUCH ? "touch" : "delete");
  if (rc == SQLITE_ROW && json) {
    const unsigned char *t = sqlite3_column_text(q, 0);
    size_t n = (size_t)sqlite3_column_bytes(q, 0);
    *json = tether__strndup(t ? (const char *)t : "", t ? n : 0);
    *len = t ? n : 0;
  }
  if (rc >= 0)
    rc = rc == SQLITE_ROW || (rc == SQLITE_DONE && (i == Q_CREATE || i == Q_UPDATE) && sqlite3_changes(c->db) > 0);
  finish(q);
  if (rc >= 0 && (write || i == Q_TOUCH)) maybe_purge(s, c, deadline);
done:
  release(s, c, rc);
  return rc;
}

static int sq_get(tether_store *st, const char *sid, char **json, size_t *len) {
  sq_args a = {.sid = sid, .a = tether_now_ms()};
  int rc = run(st->impl, Q_GET, &a, json, len);
  if (rc < 0) return rc;
  return rc == 1 ? 0 : TETHER_ENOTFOUND;
}

static int sq_destroy(tether_store *st, const char *sid) {
  sq_args a = {.sid = sid};
  int rc = run(st->impl, Q_DEL, &a, NULL, NULL);
  return rc < 0 ? rc : 0;
}

static int sq_set(tether_store *st, const char *sid, const char *json, size_t len, int64_t expires_ms, int mode) {
  int64_t now = tether_now_ms();
  if (tether__ttl_seconds(expires_ms, now) <= 0) return sq_destroy(st, sid);
  sq_args a = {.sid = sid,
               .json = json ? json : "",
               .len = json ? len : 0,
               .a = expires_ms ? expires_ms : now + SQ_DAY_MS,
               .b = now};
  int q = mode == TETHER_WRITE_CREATE ? Q_CREATE : mode == TETHER_WRITE_UPDATE ? Q_UPDATE : Q_SET;
  int rc = run(st->impl, q, &a, NULL, NULL);
  if (rc < 0) return rc;
  if (rc == 0 && q == Q_UPDATE) return TETHER_ENOTFOUND;
  if (rc == 0 && q == Q_CREATE) return TETHER_EEXIST;
  return 0;
}

static int sq_touch(tether_store *st, const char *sid, const char *json, size_t len, int64_t expires_ms) {
  TETHER__UNUSED(json);
  TETHER__UNUSED(len);
  int64_t now = tether_now_ms();
  if (tether__ttl_seconds(expires_ms, now) <= 0) return sq_destroy(st, sid);
  sq_args a = {.sid = sid, .a = expires_ms ? expires_ms : now + SQ_DAY_MS, .b = now};
  int rc = run(st->impl, Q_TOUCH, &a, NULL, NULL);
  return rc < 0 ? rc : 0; /* a missing session is not an error (express-session's MemoryStore) */
}

static int sq_purge(tether_store *st) {
  sqstore *s = st->impl;
  int64_t deadline = mono_ms() + s->timeout_ms;
  sqconn *c;
  int rc = acquire(s, deadline, &c);
  if (rc < 0) return rc;
  rc = purge_on(s, c, deadline);
  release(s, c, rc);
  return rc;
}

static int sq_ping(tether_store *st) {
  sq_args a = {0};
  int rc = run(st->impl, Q_PING, &a, NULL, NULL);
  return rc < 0 ? rc : 0;
}

/* ---- open / close ---- */

static int valid_table(const char *t) {
  size_t n = strlen(t);
  if (n == 0 || n > SQ_TABLE_MAX || !(t[0] == '_' || (t[0] >= 'A' && t[0] <= 'Z') || (t[0] >= 'a' && t[0] <= 'z')))
    return 0;
  for (size_t i = 1; i < n; i++) {
    char ch = t[i];
    if (!(ch == '_' || (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z'))) return 0;
  }
  return 1;
}

/* Makes path absolute (so that later connections find the same file after a chdir) and checks what can
 * be checked before SQLite tries: the directory exists, the path is not a directory. */
static int resolve_path(const char *path, char **out) {
  char *abs;
  if (path[0] == '/') {
    abs = tether__strdup(path);
  } else {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == NULL)
      return tether__fail(TETHER_EINVAL, "sqlite store: cannot resolve relative path '%s': %s", path, strerror(errno));
    const char *rel = strncmp(path, "./", 2) == 0 ? path + 2 : path;
    abs = tether__asprintf("%s%s%s", cwd, strcmp(cwd, "/") == 0 ? "" : "/", rel);
  }
  struct stat sb;
  if (stat(abs, &sb) == 0 && !S_ISREG(sb.st_mode)) {
    int rc = tether__fail(TETHER_EINVAL, "sqlite store: '%s' is %s", abs,
                          S_ISDIR(sb.st_mode) ? "a directory, not a database file" : "not a regular file");
    free(abs);
    return rc;
  }
  char *slash = strrchr(abs, '/');
  if (slash[1] == '\0') {
    int rc = tether__fail(TETHER_EINVAL, "sqlite store: '%s' names no file", abs);
    free(abs);
    return rc;
  }
  char *dir = tether__strndup(abs, slash == abs ? 1 : (size_t)(slash - abs));
  int rc = 0;
  /* a missing last directory is made, private to this user (sessions are credentials) */
  if (stat(dir, &sb) != 0 && errno == ENOENT && mkdir(dir, 0700) == 0)
    tether__log(TETHER_LOG_INFO, "sqlite store: created directory '%s' (mode 0700)", dir);
  if (stat(dir, &sb) != 0)
    rc = tether__fail(TETHER_EINVAL, "sqlite store: cannot use '%s': directory '%s': %s", abs, dir, strerror(errno));
  else if (!S_ISDIR(sb.st_mode))
    rc = tether__fail(TETHER_EINVAL, "sqlite store: cannot use '%s': '%s' is not a directory", abs, dir);
  free(dir);
  if (rc < 0) {
    free(abs);
    return rc;
  }
  *out = abs;
  return 0;
}

static void build_sql(sqstore *s) {
  const char *t = s->table;
  s->sql[Q_GET] = tether__asprintf("SELECT sess FROM \"%s\" WHERE sid = ?1 AND expire > ?2", t);
  s->sql[Q_SET] = tether__asprintf("INSERT INTO \"%s\" (sid, sess, expire) VALUES (?1, ?2, ?3) "
                                   "ON CONFLICT(sid) DO UPDATE SET sess = excluded.sess, expire = excluded.expire",
                                   t);
  /* create: an expired row left behind by the purge is as good as absent */
  s->sql[Q_CREATE] = tether__asprintf("INSERT INTO \"%s\" (sid, sess, expire) VALUES (?1, ?2, ?3) "
                                      "ON CONFLICT(sid) DO UPDATE SET sess = excluded.sess, expire = excluded.expire "
                                      "WHERE expire <= ?4",
                                      t);
  s->sql[Q_UPDATE] = tether__asprintf("UPDATE \"%s\" SET sess = ?2, expire = ?3 WHERE sid = ?1 AND expire > ?4", t);
  s->sql[Q_TOUCH] = tether__asprintf("UPDATE \"%s\" SET expire = ?2 WHERE sid = ?1 AND expire > ?3", t);
  s->sql[Q_DEL] = tether__asprintf("DELETE FROM \"%s\" WHERE sid = ?1", t);
  s->sql[Q_PURGE] = tether__asprintf("DELETE FROM \"%s\" WHERE expire <= ?1", t);
  s->sql[Q_PING] = tether__asprintf("SELECT 1 FROM \"%s\" LIMIT 1", t);
}

static void store_free(sqstore *s) {
  tether__pool_destroy(&s->pool);
  for (int i = 0; i < Q_COUNT; i++) free(s->sql[i]);
  free(s->path);
  free(s->table);
  free(s);
}

static int parse(const char *text, char **path, char **table, long *timeout_ms, long *purge_s, long *pool) {
  static const char *const allowed[] = {"table", "timeout_ms", "purge_s", "pool", NULL};
  const char *rest = text + strlen("sqlite:");
  if (strncmp(rest, "//", 2) == 0)
    return tether__fail(TETHER_EINVAL, "sqlite store: expected sqlite:/absolute/path or sqlite:relative/path, got '%s'",
                        text);
  tether__url url;
  int rc = tether__url_parse(text, &url);
  if (rc < 0) return rc;
  if (*url.path == '\0')
    rc = tether__fail(TETHER_EINVAL, "sqlite store: no path in '%s' (expected sqlite:PATH)", text);
  else if (strcmp(url.path, ":memory:") == 0 || strncmp(url.path, "file:", 5) == 0)
    rc = tether__fail(TETHER_EINVAL, "sqlite store: '%s' is not a file path (use memory: for an in-process store)",
                      url.path);
  if (rc == 0) rc = tether__url_check_params(&url, allowed);
  if (rc == 0) rc = tether__url_param_int(&url, "timeout_ms", 5000, 1, 600000, timeout_ms);
  if (rc == 0) rc = tether__url_param_int(&url, "purge_s", 60, 0, 86400 * 365, purge_s);
  if (rc == 0) rc = tether__url_param_int(&url, "pool", 8, 1, 256, pool);
  const char *t = tether__url_param(&url, "table");
  if (rc == 0 && t && !valid_table(t))
    rc = tether__fail(TETHER_EINVAL,
                      "sqlite store: table '%s' is not a plain identifier (letters, digits, '_', at most %d)", t,
                      SQ_TABLE_MAX);
  if (rc == 0) rc = resolve_path(url.path, path);
  if (rc == 0) *table = tether__strdup(t ? t : "sessions");
  tether__url_free(&url);
  return rc;
}

static int sq_open(tether_store *st, const char *text) {
  char *path = NULL, *table = NULL;
  long timeout_ms, purge_s, pool;
  int rc = parse(text, &path, &table, &timeout_ms, &purge_s, &pool);
  if (rc < 0) return rc;
  sqstore *s = tether__calloc(1, sizeof(*s));
  s->path = path;
  s->table = table;
  s->timeout_ms = (int)timeout_ms;
  s->purge_every_ms = purge_s * 1000;
  char *name = tether__asprintf("sqlite store '%s'", path);
  tether__pool_init(&s->pool, name, (int)pool, (int)timeout_ms, &pool_ops, s, 0, 0);
  free(name);
  atomic_init(&s->next_purge_ms, 0);
  build_sql(s);
  /* A new file is made 0600 before SQLite opens it (SQLite would make it 0644 less the umask): its -wal and
   * -shm files get the database file's mode. An existing file keeps its mode. */
  int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd >= 0) close(fd);
  /* The first connection, opened now: it creates the file and the table, and a bad path fails here. */
  sqconn *c;
  rc = conn_open(s, 1, &c);
  if (rc < 0) {
    store_free(s);
    return rc;
  }
  tether__pool_add_idle(&s->pool, &c->link);
  st->impl = s;
  return 0;
}

static void sq_close(tether_store *st) { store_free(st->impl); }

const tether__store_ops tether__store_sqlite = {
    .kind = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .get = sq_get,
    .set = sq_set,
    .touch = sq_touch,
    .destroy = sq_destroy,
    .purge = sq_purge,
    .ping = sq_ping,
};
