/* bench_stores: session round trips per second for every store, side by side with connect-redis v7.
 *
 * One round trip is what an Express request does with its session: load it (GET) by the cookie, change a
 * field, save it back (SET). libtether does it with tether_session_load + tether_session_commit (cookie
 * verification, JSON parse, express-session's save rules, JSON serialize, SET EX); the Node peer
 * (bench/stores/connect_redis.js) with connect-redis's store.get + store.set (JSON parse, JSON serialize,
 * SET EX), so libtether does at least the work of the peer.
 *
 * It starts its own servers on free loopback ports in temporary directories (redis-server, three
 * memcached, PostgreSQL; tests/support/procs.c), measures each store that opens at 1 and at 8 sessions in
 * flight (threads; the peer: async loops in one Node process), each cell bounded by time and count, stops
 * everything and prints a markdown table. Stores that do not open are listed as "n/a: <reason>".
 *
 * Usage: bench_stores [--seconds S] [--max-ops N] [--value-size BYTES] [--stores a,b,..] [--rounds R]
 *                     [--in-flight 1,8] [--loops N]   (async cells: at most N event loops; default one per core)
 *                     [--api store|session|async|async-session|loop|both|all] [--node-script PATH | --no-node]
 * Stores: memory, sqlite, redis, memcached, postgres, redis-cluster (3 masters, no replicas, compared with
 * connect-redis over node-redis's createCluster). Progress goes to stderr, the table to stdout. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "procs.h"
#include "tether/session.h"
#include "tether/store.h"
#include "tether/store_async.h"
#include "util.h" /* tether__iso8601, as session.c writes cookie.expires */

#define MAX_THREADS 64
#define MAX_CELLS 64
#define MAX_ROUNDS 9
#define WARMUP_S 0.5 /* before each cell, not measured (both sides) */
#define SECRET "bench-secret"
#define MAX_AGE_MS 3600000
#define MODE_STORE 1         /* tether_store_get + JSON parse/change/serialize + tether_store_set */
#define MODE_SESSION 2       /* tether_session_load + change + tether_session_commit */
#define MODE_ASYNC 4         /* MODE_STORE's work through tether_astore_*: every session in flight in one thread */
#define MODE_ASYNC_SESSION 8 /* MODE_SESSION's work on the event loops: tether_session_load_async + commit_async */

typedef struct config {
  double seconds;     /* per cell */
  uint64_t max_ops;   /* per cell, all threads together */
  size_t value_size;  /* bytes of the stored JSON */
  const char *stores; /* comma-separated names */
  const char *node_script;
  int modes;     /* MODE_* bits */
  int levels[4]; /* sessions in flight */
  int nlevels;
  int rounds; /* interleaved rounds of the redis / connect-redis cells */
  int loops;  /* async cells: event loops at most (0: one per core) */
} config;

typedef struct cell {
  char store[64];
  const char *api; /* "store", "session" or the peer's calls */
  int conc;
  char na[200]; /* non-empty: not measured, and why */
  uint64_t ops, errors;
  double secs;
  double p50_us, p99_us;
  double cpu_us, srv_us; /* CPU time over the measured window: this side's process, the servers (< 0: unknown) */
  size_t value_bytes;
  int loops; /* async: event loops (threads) */
} cell;

typedef struct shared {
  const config *cfg;
  int mode;
  tether_store *store;
  tether_sessions *mgr;
  pthread_barrier_t start;
  atomic_int failed_setup;
  uint64_t deadline_us; /* end of the warm-up, then of the measured window (set at the barrier) */
  uint64_t per_thread_max;
  const pid_t *srv; /* the store's server processes, for their CPU time */
  int nsrv;
  double cpu0_us, srv0_us; /* CPU times at the start of the measured window */
} shared;

typedef struct worker {
  shared *sh;
  int idx;
  pthread_t th;
  char *cookie; /* "connect.sid=..." of this worker's session */
  char sid[TETHER_SID_LEN + 1];
  uint32_t *lat; /* microseconds per round trip */
  uint64_t nlat, ops, errors;
  size_t value_bytes;
  double secs;
  char *out; /* the session edit_session serialized */
  size_t outcap;
} worker;

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* CPU time (user + system) of this process, in microseconds. */
static double self_cpu_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* CPU time of other processes from /proc/PID/stat (utime + stime, fields 14 and 15), or -1. */
static double procs_cpu_us(const pid_t *pids, int n) {
  double total = 0;
  if (n == 0) return -1;
  for (int i = 0; i < n; i++) {
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pids[i]);
    FILE *f = fopen(path, "r");
    if (f == NULL) return -1;
    size_t len = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[len] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long ut, st;
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) return -1;
    total += (double)(ut + st) * 1e6 / (double)sysconf(_SC_CLK_TCK);
  }
  return total;
}

static tether_sessions *manager(tether_store *st) {
  tether_session_options o;
  tether_session_options_init(&o);
  o.secret[0] = SECRET;
  o.secret_count = 1;
  o.cookie.max_age_ms = MAX_AGE_MS;
  o.store = st;
  tether_sessions *m = NULL;
  return tether_sessions_new(&o, &m) == 0 ? m : NULL;
}

/* Creates this worker's session: {visits, user, pad} padded so that the stored JSON is value_size bytes
 * (connect_redis.js builds the same object). */
static int create_session(worker *w) {
  tether_session *s;
  int rc = tether_session_load(w->sh->mgr, NULL, &s);
  if (rc < 0) return rc;
  char user[32];
  snprintf(user, sizeof(user), "bench-user-%d", w->idx);
  tether_session_set_int(s, "visits", 0);
  tether_session_set_string(s, "user", user);
  tether_session_set_string(s, "pad", "");
  char *json = tether_session_serialize(s);
  size_t base = strlen(json);
  free(json);
  size_t padn = w->sh->cfg->value_size > base ? w->sh->cfg->value_size - base : 0;
  char *pad = malloc(padn + 1);
  memset(pad, 'x', padn);
  pad[padn] = '\0';
  tether_session_set_string(s, "pad", pad);
  free(pad);
  json = tether_session_serialize(s);
  w->value_bytes = strlen(json);
  free(json);
  snprintf(w->sid, sizeof(w->sid), "%s", tether_session_id(s));
  char *sc = NULL;
  rc = tether_session_commit(s, &sc);
  tether_session_free(s);
  if (rc < 0) return rc;
  if (sc == NULL) return TETHER_EINVAL;
  w->cookie = strndup(sc, strcspn(sc, ";"));
  free(sc);
  return 0;
}

/* One Express request's worth of session work, through the session API. */
static int session_round_trip(worker *w) {
  tether_session *s;
  int rc = tether_session_load(w->sh->mgr, w->cookie, &s);
  if (rc < 0) return rc;
  if (tether_session_is_new(s)) rc = TETHER_ENOTFOUND; /* lost: counted, and the loop goes on */
  int64_t visits = 0;
  tether_session_get_int(s, "visits", &visits);
  tether_session_set_int(s, "visits", visits + 1);
  char *sc = NULL;
  int crc = tether_session_commit(s, &sc);
  free(sc);
  tether_session_free(s);
  return rc < 0 ? rc : crc;
}

/* What connect_redis.js does between get and set: parse, visits += 1, the cookie's new expiry, serialize
 * (json_dumpb into the worker's buffer: no intermediate copy). Consumes json. The serialized length in
 * w->out, or 0 when json is not a session object. */
static size_t edit_session(worker *w, char *json, size_t len, int64_t expires) {
  json_t *v = json_loadb(json, len, 0, NULL);
  free(json);
  if (!json_is_object(v)) {
    json_decref(v);
    return 0;
  }
  json_object_set_new(v, "visits", json_integer(json_integer_value(json_object_get(v, "visits")) + 1));
  char iso[32];
  tether__iso8601(expires, iso);
  json_object_set_new(json_object_get(v, "cookie"), "expires", json_string(iso));
  size_t n = json_dumpb(v, w->out, w->outcap, JSON_COMPACT | JSON_PRESERVE_ORDER);
  if (n > w->outcap) { /* once per worker, at most */
    w->outcap = n * 2;
    w->out = realloc(w->out, w->outcap);
    n = w->out ? json_dumpb(v, w->out, w->outcap, JSON_COMPACT | JSON_PRESERVE_ORDER) : 0;
  }
  json_decref(v);
  return n;
}

/* The same through the store API: get, edit_session, set. */
static int store_round_trip(worker *w) {
  char *json = NULL;
  size_t len = 0;
  int rc = tether_store_get(w->sh->store, w->sid, &json, &len);
  if (rc < 0) return rc;
  int64_t expires = tether_now_ms() + MAX_AGE_MS;
  size_t n = edit_session(w, json, len, expires);
  return n ? tether_store_set(w->sh->store, w->sid, w->out, n, expires) : TETHER_ECORRUPT;
}

static void *work(void *arg) {
  worker *w = arg;
  shared *sh = w->sh;
  if (create_session(w) < 0) {
    fprintf(stderr, "  worker %d: cannot create its session: %s\n", w->idx, tether_last_error());
    atomic_store(&sh->failed_setup, 1);
  }
  w->lat = malloc(sizeof(uint32_t) * (sh->per_thread_max ? sh->per_thread_max : 1));
  /* warm-up (connections opened, caches and branch predictors warm, as the Node peer's JIT gets), then the
   * measured window, which every thread starts at the same instant */
  if (pthread_barrier_wait(&sh->start) == PTHREAD_BARRIER_SERIAL_THREAD)
    sh->deadline_us = now_us() + (uint64_t)(WARMUP_S * 1e6);
  pthread_barrier_wait(&sh->start);
  int ok = !atomic_load(&sh->failed_setup);
  for (uint64_t i = 0; ok && i < sh->per_thread_max && now_us() < sh->deadline_us; i++)
    sh->mode == MODE_STORE ? store_round_trip(w) : session_round_trip(w);
  if (pthread_barrier_wait(&sh->start) == PTHREAD_BARRIER_SERIAL_THREAD) {
    sh->cpu0_us = self_cpu_us();
    sh->srv0_us = procs_cpu_us(sh->srv, sh->nsrv);
    sh->deadline_us = now_us() + (uint64_t)(sh->cfg->seconds * 1e6);
  }
  pthread_barrier_wait(&sh->start);
  if (!ok) return NULL;
  uint64_t t_start = now_us(), t = t_start;
  while (w->ops < sh->per_thread_max && t < sh->deadline_us) {
    int rc = sh->mode == MODE_STORE ? store_round_trip(w) : session_round_trip(w);
    uint64_t t1 = now_us();
    if (rc < 0) w->errors++;
    w->lat[w->nlat++] = (uint32_t)(t1 - t > UINT32_MAX ? UINT32_MAX : t1 - t);
    w->ops++;
    t = t1;
  }
  w->secs = (double)(t - t_start) / 1e6;
  return NULL;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static double percentile(const uint32_t *sorted, uint64_t n, double p) {
  if (n == 0) return 0;
  uint64_t i = (uint64_t)(p * (double)(n - 1) + 0.5);
  return sorted[i];
}

/* Sums the workers' counts into c, with the percentiles of all their latencies; frees what they hold. */
static void collect(cell *c, worker *w, int conc) {
  uint64_t total = 0;
  for (int i = 0; i < conc; i++) {
    total += w[i].nlat;
    c->ops += w[i].ops;
    c->errors += w[i].errors;
    c->value_bytes = w[i].value_bytes;
  }
  uint32_t *all = malloc(sizeof(uint32_t) * (total ? total : 1));
  uint64_t k = 0;
  for (int i = 0; i < conc; i++) {
    memcpy(all + k, w[i].lat, sizeof(uint32_t) * w[i].nlat);
    k += w[i].nlat;
    free(w[i].lat);
    free(w[i].cookie);
    free(w[i].out);
  }
  qsort(all, total, sizeof(uint32_t), cmp_u32);
  c->p50_us = percentile(all, total, 0.50);
  c->p99_us = percentile(all, total, 0.99);
  free(all);
}

static void run_cell(const config *cfg, tether_store *st, const pid_t *srv, int nsrv, int mode, int conc, cell *c) {
  shared sh = {
      .cfg = cfg, .mode = mode, .store = st, .per_thread_max = cfg->max_ops / (uint64_t)conc, .srv = srv, .nsrv = nsrv};
  sh.mgr = manager(st);
  if (sh.mgr == NULL) {
    snprintf(c->na, sizeof(c->na), "sessions: %s", tether_last_error());
    return;
  }
  pthread_barrier_init(&sh.start, NULL, (unsigned)conc);
  worker w[MAX_THREADS] = {0};
  for (int i = 0; i < conc; i++) {
    w[i].sh = &sh;
    w[i].idx = i;
    pthread_create(&w[i].th, NULL, work, &w[i]);
  }
  for (int i = 0; i < conc; i++) pthread_join(w[i].th, NULL);
  c->cpu_us = self_cpu_us() - sh.cpu0_us;
  double srv1 = procs_cpu_us(srv, nsrv);
  c->srv_us = sh.srv0_us >= 0 && srv1 >= 0 ? srv1 - sh.srv0_us : -1;
  double secs = 0;
  for (int i = 0; i < conc; i++)
    if (w[i].secs > secs) secs = w[i].secs;
  c->secs = secs;
  if (atomic_load(&sh.failed_setup))
    snprintf(c->na, sizeof(c->na), "a worker could not create its session (see stderr)");
  collect(c, w, conc);
  pthread_barrier_destroy(&sh.start);
  tether_sessions_free(sh.mgr);
}

/* ---- the asynchronous API: conc sessions in flight over event loops (one per core at most, as tether-app
 * runs them; one loop when the machine has one core or conc is 1), each with its own store handle ---- */

typedef struct aclient {
  struct acell *ac;
  worker *w;
  uint64_t t0;
  tether_session *s; /* MODE_ASYNC_SESSION: the session between load and commit */
} aclient;

typedef struct acell {
  shared *sh;
  tether_astore *a;
  uv_loop_t loop;
  pthread_t th;
  aclient *cl; /* this loop's clients */
  int ncl, running;
  uint64_t warm_us, end_deadline_us; /* measured from warm_us to end_deadline_us */
  uint64_t last_us;                  /* the last completion in the window */
  uint64_t per_client_max;
  int failed;
} acell;

static void a_next(aclient *cl);

static void a_saved(void *arg, int rc) {
  aclient *cl = arg;
  acell *ac = cl->ac;
  uint64_t t1 = now_us();
  if (cl->t0 >= ac->warm_us && t1 <= ac->end_deadline_us) { /* a round trip inside the window */
    if (rc < 0) cl->w->errors++;
    cl->w->lat[cl->w->nlat++] = (uint32_t)(t1 - cl->t0 > UINT32_MAX ? UINT32_MAX : t1 - cl->t0);
    cl->w->ops++;
    if (t1 > ac->last_us) ac->last_us = t1;
  }
  a_next(cl);
}

static void a_got(void *arg, int rc, char *json, size_t len) {
  aclient *cl = arg;
  int64_t expires = tether_now_ms() + MAX_AGE_MS;
  size_t n = rc == 0 ? edit_session(cl->w, json, len, expires) : 0;
  if (n == 0) {
    a_saved(cl, rc < 0 ? rc : TETHER_ECORRUPT);
    return;
  }
  if (tether_astore_set(cl->ac->a, cl->w->sid, cl->w->out, n, expires, a_saved, cl) < 0) a_saved(cl, -1);
}

static void a_committed(void *arg, int rc, char *set_cookie) {
  aclient *cl = arg;
  free(set_cookie);
  tether_session_free(cl->s);
  cl->s = NULL;
  a_saved(cl, rc);
}

/* What session_round_trip does, on the loop: the application reads visits and writes visits + 1. */
static void a_loaded(void *arg, int rc, tether_session *s) {
  aclient *cl = arg;
  if (rc < 0) {
    a_saved(cl, rc);
    return;
  }
  int64_t visits = 0;
  tether_session_get_int(s, "visits", &visits);
  tether_session_set_int(s, "visits", visits + 1);
  cl->s = s;
  if (tether_session_is_new(s) || tether_session_commit_async(s, cl->ac->a, a_committed, cl) < 0) {
    tether_session_free(s);
    cl->s = NULL;
    a_saved(cl, TETHER_ENOTFOUND); /* lost (new) or not sent: counted as an error */
  }
}

static void a_next(aclient *cl) {
  acell *ac = cl->ac;
  uint64_t t = now_us();
  if (t >= ac->end_deadline_us || cl->w->ops >= ac->per_client_max) {
    if (--ac->running == 0) uv_stop(&ac->loop);
    return;
  }
  cl->t0 = t;
  int rc = ac->sh->mode == MODE_ASYNC_SESSION
               ? tether_session_load_async(ac->sh->mgr, ac->a, cl->w->cookie, a_loaded, cl)
               : tether_astore_get(ac->a, cl->w->sid, a_got, cl);
  if (rc < 0) {
    cl->w->errors++;
    if (--ac->running == 0) uv_stop(&ac->loop);
  }
}

static void *a_loop_main(void *arg) {
  acell *ac = arg;
  ac->running = ac->ncl;
  for (int i = 0; i < ac->ncl; i++) a_next(&ac->cl[i]);
  uv_run(&ac->loop, UV_RUN_DEFAULT);
  tether_astore_close(ac->a);
  uv_run(&ac->loop, UV_RUN_DEFAULT);
  return NULL;
}

static void run_async_cell(const config *cfg, tether_store *st, const pid_t *srv, int nsrv, int mode, int conc,
                           cell *c) {
  shared sh = {.cfg = cfg, .mode = mode, .store = st, .srv = srv, .nsrv = nsrv};
  sh.mgr = manager(st);
  long ncpu = cfg->loops > 0 ? cfg->loops : sysconf(_SC_NPROCESSORS_ONLN);
  int nloops = conc < ncpu ? conc : (int)(ncpu > 0 ? ncpu : 1);
  acell ac[MAX_THREADS];
  worker w[MAX_THREADS] = {0};
  aclient cl[MAX_THREADS];
  uint64_t per_client_max = cfg->max_ops / (uint64_t)conc;
  for (int i = 0; i < conc; i++) {
    w[i].sh = &sh;
    w[i].idx = i;
    if (sh.mgr == NULL || create_session(&w[i]) < 0)
      snprintf(c->na, sizeof(c->na), "creating a session: %s", tether_last_error());
    w[i].lat = malloc(sizeof(uint32_t) * (per_client_max + 1));
  }
  /* clients i, i + nloops, ... on loop i */
  uint64_t warm = now_us() + (uint64_t)(WARMUP_S * 1e6), end = warm + (uint64_t)(cfg->seconds * 1e6);
  int k = 0;
  for (int l = 0; l < nloops; l++) {
    ac[l] = (acell){.sh = &sh, .cl = cl + k, .warm_us = warm, .end_deadline_us = end, .per_client_max = per_client_max};
    for (int i = l; i < conc; i += nloops) cl[k++] = (aclient){.ac = &ac[l], .w = &w[i]};
    ac[l].ncl = (int)(cl + k - ac[l].cl);
    uv_loop_init(&ac[l].loop);
    if (tether_astore_wrap(&ac[l].loop, st, &ac[l].a) < 0) snprintf(c->na, sizeof(c->na), "%s", tether_last_error());
  }
  if (!c->na[0]) {
    for (int l = 0; l < nloops; l++) pthread_create(&ac[l].th, NULL, a_loop_main, &ac[l]);
    uint64_t t = now_us();
    if (t < warm) usleep((useconds_t)(warm - t));
    sh.cpu0_us = self_cpu_us();
    sh.srv0_us = procs_cpu_us(srv, nsrv);
    for (int l = 0; l < nloops; l++) pthread_join(ac[l].th, NULL);
  } else {
    for (int l = 0; l < nloops; l++) {
      tether_astore_close(ac[l].a);
      uv_run(&ac[l].loop, UV_RUN_DEFAULT);
    }
  }
  c->cpu_us = self_cpu_us() - sh.cpu0_us;
  double srv1 = procs_cpu_us(srv, nsrv);
  c->srv_us = sh.srv0_us >= 0 && srv1 >= 0 ? srv1 - sh.srv0_us : -1;
  uint64_t last = warm;
  for (int l = 0; l < nloops; l++) {
    if (ac[l].last_us > last) last = ac[l].last_us;
    uv_loop_close(&ac[l].loop);
  }
  c->secs = (double)(last - warm) / 1e6;
  collect(c, w, conc);
  tether_sessions_free(sh.mgr);
  c->loops = nloops;
}

/* ---- the Node peer ---- */

/* Runs connect_redis.js at conc sessions in flight and reads its one-line JSON result. port: the redis
 * port, or cluster:P1,P2,...; pids: the servers' pids, comma-separated. */
static void run_node(const config *cfg, const char *dir, const char *ports, const char *pids, int conc, cell *c) {
  snprintf(c->store, sizeof(c->store), "connect-redis");
  char out[512], cs[16], secs[32], maxops[32], vsize[32];
  snprintf(out, sizeof(out), "%s/node-%d.out", dir, conc);
  snprintf(cs, sizeof(cs), "%d", conc);
  snprintf(secs, sizeof(secs), "%g", cfg->seconds);
  snprintf(maxops, sizeof(maxops), "%" PRIu64, cfg->max_ops);
  snprintf(vsize, sizeof(vsize), "%zu", cfg->value_size);
  char warm[32];
  snprintf(warm, sizeof(warm), "%g", WARMUP_S);
  char *argv[] = {"node", (char *)cfg->node_script, (char *)ports, cs, secs, maxops, vsize, warm, (char *)pids, NULL};
  pid_t pid = tt_spawn(argv, out, NULL);
  int status = -1;
  for (int waited = 0; pid > 0; waited += 50) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (waited > (int)((cfg->seconds + WARMUP_S) * 1000) + 30000) {
      tt_kill(pid, SIGKILL);
      snprintf(c->na, sizeof(c->na), "the Node peer did not finish in time");
      return;
    }
    tt_sleep_ms(50);
  }
  /* the result is the last line that parses as JSON; anything else is the peer's log */
  FILE *f = fopen(out, "r");
  json_t *res = NULL;
  char line[4096], last_text[200] = "";
  while (f && fgets(line, sizeof(line), f)) {
    json_t *j = json_loads(line, 0, NULL);
    if (j && json_is_object(j)) {
      json_decref(res);
      res = j;
    } else {
      json_decref(j);
      line[strcspn(line, "\n")] = '\0';
      if (line[0]) snprintf(last_text, sizeof(last_text), "%.150s", line);
    }
  }
  if (f) fclose(f);
  if (res == NULL) {
    snprintf(c->na, sizeof(c->na), "the Node peer failed (exit %d): %.150s",
             WIFEXITED(status) ? WEXITSTATUS(status) : -1, last_text);
    return;
  }
  const char *peer = json_string_value(json_object_get(res, "peer"));
  snprintf(c->store, sizeof(c->store), "connect-redis %s", peer ? peer : "");
  c->ops = (uint64_t)json_integer_value(json_object_get(res, "ops"));
  c->errors = (uint64_t)json_integer_value(json_object_get(res, "errors"));
  c->secs = json_number_value(json_object_get(res, "seconds"));
  c->p50_us = json_number_value(json_object_get(res, "p50_us"));
  c->p99_us = json_number_value(json_object_get(res, "p99_us"));
  c->value_bytes = (size_t)json_integer_value(json_object_get(res, "value_bytes"));
  json_t *srv = json_object_get(res, "server_cpu_us");
  c->cpu_us = json_number_value(json_object_get(res, "cpu_us"));
  c->srv_us = json_is_number(srv) ? json_number_value(srv) : -1;
  json_decref(res);
}

static double rate(const cell *c) { return c->secs > 0 ? (double)c->ops / c->secs : 0; }

/* The round with the median rate (a failed round counts as the slowest). */
static const cell *median(const cell *r, int n) {
  const cell *order[MAX_ROUNDS];
  for (int i = 0; i < n; i++) order[i] = &r[i];
  for (int i = 1; i < n; i++) /* insertion sort: n is tiny */
    for (int j = i; j > 0 && (order[j]->na[0] ? -1 : rate(order[j])) < (order[j - 1]->na[0] ? -1 : rate(order[j - 1]));
         j--) {
      const cell *t = order[j];
      order[j] = order[j - 1];
      order[j - 1] = t;
    }
  return order[n / 2];
}

/* ---- servers and stores ---- */

typedef struct servers {
  tt_server redis, mc[3], pg, cl[3];
  int redis_ok, mc_ok, pg_ok, cl_ok;
  char *dir;
} servers;

static int wanted(const config *cfg, const char *name) {
  const char *p = cfg->stores;
  size_t n = strlen(name);
  while (p && *p) {
    if (strncmp(p, name, n) == 0 && (p[n] == ',' || p[n] == '\0')) return 1;
    p = strchr(p, ',');
    if (p) p++;
  }
  return 0;
}

/* The URL for a store name, or NULL with why in na. */
static const char *store_url(const char *name, servers *sv, char *buf, size_t cap, char *na, size_t nacap) {
  if (strcmp(name, "memory") == 0) return "memory:";
  if (strcmp(name, "sqlite") == 0) {
    snprintf(buf, cap, "sqlite:%s/bench.db", sv->dir);
    return buf;
  }
  if (strcmp(name, "redis") == 0) {
    if (!sv->redis_ok) return snprintf(na, nacap, "redis-server did not start"), NULL;
    snprintf(buf, cap, "%s", sv->redis.url);
    return buf;
  }
  if (strcmp(name, "memcached") == 0) {
    if (!sv->mc_ok) return snprintf(na, nacap, "memcached did not start"), NULL;
    snprintf(buf, cap, "memcached://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d?replicas=2", sv->mc[0].port, sv->mc[1].port,
             sv->mc[2].port);
    return buf;
  }
  if (strcmp(name, "postgres") == 0) {
    if (!sv->pg_ok) return snprintf(na, nacap, "PostgreSQL did not start"), NULL;
    snprintf(buf, cap, "%s", sv->pg.url);
    return buf;
  }
  if (strcmp(name, "redis-cluster") == 0) {
    if (!sv->cl_ok) return snprintf(na, nacap, "the Redis Cluster did not start"), NULL;
    snprintf(buf, cap, "redis-cluster://127.0.0.1:%d,127.0.0.1:%d", sv->cl[0].port, sv->cl[1].port);
    return buf;
  }
  snprintf(na, nacap, "unknown store");
  return NULL;
}

/* The processes serving a store (their CPU time is shown); 0 for in-process stores and PostgreSQL,
 * whose work is in per-connection backends. */
static int server_pids(const char *name, const servers *sv, pid_t out[3]) {
  if (strcmp(name, "redis") == 0 && sv->redis_ok) return out[0] = sv->redis.pid, 1;
  if (strcmp(name, "memcached") == 0 && sv->mc_ok) {
    for (int i = 0; i < 3; i++) out[i] = sv->mc[i].pid;
    return 3;
  }
  if (strcmp(name, "redis-cluster") == 0 && sv->cl_ok) {
    for (int i = 0; i < 3; i++) out[i] = sv->cl[i].pid;
    return 3;
  }
  return 0;
}

static void start_servers(const config *cfg, servers *sv) {
  sv->dir = tt_tmpdir("bench");
  if (wanted(cfg, "redis")) sv->redis_ok = tt_redis_start(&sv->redis, 0) == 0;
  if (wanted(cfg, "memcached")) {
    sv->mc_ok = 1;
    for (int i = 0; i < 3; i++) sv->mc_ok &= tt_memcached_start(&sv->mc[i], 0) == 0;
  }
  if (wanted(cfg, "postgres")) sv->pg_ok = tt_postgres_start(&sv->pg, 0) == 0;
  if (wanted(cfg, "redis-cluster")) sv->cl_ok = tt_redis_cluster_start(sv->cl, 3, 0) == 0;
}

static void stop_servers(servers *sv) {
  tt_server_cleanup(&sv->redis);
  for (int i = 0; i < 3; i++) tt_server_cleanup(&sv->mc[i]);
  tt_server_cleanup(&sv->pg);
  for (int i = 0; i < 3; i++) tt_server_cleanup(&sv->cl[i]);
  tt_rmrf(sv->dir);
  free(sv->dir);
}

/* ---- the table ---- */

static void fmt_us(double us, char *out, size_t cap) {
  if (us >= 10000)
    snprintf(out, cap, "%.1f ms", us / 1000);
  else if (us >= 100)
    snprintf(out, cap, "%.0f µs", us);
  else
    snprintf(out, cap, "%.1f µs", us);
}

static void print_table(const config *cfg, cell *cells, int n) {
  printf("\n### Session round trips (get, change a field, set), %zu-byte values, %gs or %" PRIu64
         " round trips per cell\n\n",
         cfg->value_size, cfg->seconds, cfg->max_ops);
  printf("| store | API | in flight | round trips/s | p50 | p99 | client CPU/trip | server CPU/trip | errors | vs "
         "connect-redis |\n");
  printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (int i = 0; i < n; i++) {
    cell *c = &cells[i];
    if (c->na[0]) {
      printf("| %s | %s | %d | n/a: %s | | | | | | |\n", c->store, c->api, c->conc, c->na);
      continue;
    }
    char p50[32], p99[32], ratio[64] = "", ccpu[32] = "-", scpu[32] = "-";
    if (c->ops && c->cpu_us >= 0) fmt_us(c->cpu_us / (double)c->ops, ccpu, sizeof(ccpu));
    if (c->ops && c->srv_us >= 0) fmt_us(c->srv_us / (double)c->ops, scpu, sizeof(scpu));
    fmt_us(c->p50_us, p50, sizeof(p50));
    fmt_us(c->p99_us, p99, sizeof(p99));
    int cluster = strcmp(c->store, "redis-cluster") == 0;
    if (cluster || strcmp(c->store, "redis") == 0) {
      for (int j = 0; j < n; j++) { /* its peer: connect-redis on one client, or on createCluster */
        cell *p = &cells[j];
        if (p->conc == c->conc && strncmp(p->store, "connect-redis", 13) == 0 &&
            (strstr(p->store, "createCluster") != NULL) == cluster && !p->na[0] && p->ops && p->secs > 0)
          snprintf(ratio, sizeof(ratio), "**%.2fx**", rate(c) / rate(p));
      }
    }
    char api[64];
    if (c->loops)
      snprintf(api, sizeof(api), "%s (%d loop%s)", c->api, c->loops, c->loops > 1 ? "s" : "");
    else
      snprintf(api, sizeof(api), "%s", c->api);
    printf("| %s | %s | %d | %.0f | %s | %s | %s | %s | %" PRIu64 " | %s |\n", c->store, api, c->conc, rate(c), p50,
           p99, ccpu, scpu, c->errors, ratio);
  }
  printf("\nA round trip is one request's session work. store get+set: tether_store_get, JSON parse, visits += 1,\n"
         "cookie.expires = now + maxAge, JSON serialize, tether_store_set (what connect-redis does). session\n"
         "load+commit: tether_session_load + tether_session_commit (adds the cookie's HMAC check, express-session's\n"
         "change detection and the Set-Cookie signature; async: tether_session_load_async + commit_async on the\n"
         "loops, libtether's session JSON path). connect-redis: store.get, store.createSession, visits += 1,\n"
         "touch, store.set on one node-redis 4 client (or createCluster, for redis-cluster), N async loops in one\n"
         "Node process. Same servers, same\n"
         "run, one machine with %ld cores shared by the servers, the C threads and Node. The redis and\n"
         "connect-redis cells ran in %d interleaved rounds; each shows its median round. CPU/trip: CPU time\n"
         "(user + system) over the measured window divided by the round trips, of the client process (the C\n"
         "threads, or Node) and of the servers (redis-server, the three memcached); it depends less than the\n"
         "rates on what else the machine is running.\n",
         sysconf(_SC_NPROCESSORS_ONLN), cfg->rounds);
}

/* ---- main ---- */

static void usage(void) {
  fprintf(stderr, "usage: bench_stores [--seconds S] [--max-ops N] [--value-size BYTES] [--stores a,b,..] [--rounds R] "
                  "[--in-flight N,M] [--loops N] [--api store|session|async|async-session|loop|both|all] "
                  "[--node-script PATH | --no-node]\n");
  exit(2);
}

int main(int argc, char **argv) {
  config cfg = {.seconds = 3,
                .max_ops = 2000000,
                .value_size = 512,
                .stores = "memory,sqlite,redis,memcached,postgres",
                .modes = MODE_STORE | MODE_SESSION | MODE_ASYNC | MODE_ASYNC_SESSION,
                .levels = {1, 8},
                .rounds = 3,
                .nlevels = 2};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--no-node") == 0)
      cfg.node_script = NULL;
    else if (i + 1 >= argc)
      usage();
    else if (strcmp(a, "--seconds") == 0)
      cfg.seconds = atof(argv[++i]);
    else if (strcmp(a, "--in-flight") == 0) {
      cfg.nlevels = 0;
      for (char *tok = strtok(argv[++i], ","); tok && cfg.nlevels < 4; tok = strtok(NULL, ","))
        cfg.levels[cfg.nlevels++] = atoi(tok);
      for (int l = 0; l < cfg.nlevels; l++)
        if (cfg.levels[l] < 1 || cfg.levels[l] > MAX_THREADS) usage();
      if (cfg.nlevels == 0) usage();
    } else if (strcmp(a, "--rounds") == 0)
      cfg.rounds = atoi(argv[++i]);
    else if (strcmp(a, "--loops") == 0)
      cfg.loops = atoi(argv[++i]);
    else if (strcmp(a, "--max-ops") == 0)
      cfg.max_ops = strtoull(argv[++i], NULL, 10);
    else if (strcmp(a, "--value-size") == 0)
      cfg.value_size = strtoul(argv[++i], NULL, 10);
    else if (strcmp(a, "--stores") == 0)
      cfg.stores = argv[++i];
    else if (strcmp(a, "--node-script") == 0)
      cfg.node_script = argv[++i];
    else if (strcmp(a, "--api") == 0) {
      const char *m = argv[++i];
      cfg.modes = !strcmp(m, "store")           ? MODE_STORE
                  : !strcmp(m, "session")       ? MODE_SESSION
                  : !strcmp(m, "async")         ? MODE_ASYNC
                  : !strcmp(m, "async-session") ? MODE_ASYNC_SESSION
                  : !strcmp(m, "loop")          ? MODE_ASYNC | MODE_ASYNC_SESSION
                  : !strcmp(m, "both")          ? MODE_STORE | MODE_SESSION
                  : !strcmp(m, "all")           ? MODE_STORE | MODE_SESSION | MODE_ASYNC | MODE_ASYNC_SESSION
                                                : 0;
      if (cfg.modes == 0) usage();
    } else
      usage();
  }
  if (cfg.seconds <= 0 || cfg.seconds > 600 || cfg.max_ops < 8 || cfg.value_size > 1 << 20 || cfg.rounds < 1 ||
      cfg.rounds > MAX_ROUNDS || cfg.loops < 0 || cfg.loops > MAX_THREADS)
    usage();
  tether_log_set_level(TETHER_LOG_ERROR);

  servers sv = {0};
  start_servers(&cfg, &sv);
  cell cells[MAX_CELLS] = {0};
  int n = 0;
  const char *names[] = {"memory", "sqlite", "redis", "memcached", "postgres", "redis-cluster"};
  for (size_t s = 0; s < sizeof(names) / sizeof(names[0]); s++) {
    if (!wanted(&cfg, names[s])) continue;
    char buf[512], na[200] = "";
    const char *url = store_url(names[s], &sv, buf, sizeof(buf), na, sizeof(na));
    tether_store *st = NULL;
    if (url) {
      int rc = tether_store_open(url, &st);
      if (rc < 0) snprintf(na, sizeof(na), "%s", tether_last_error());
    }
    /* the compared pair (redis and its Node peer) runs in interleaved rounds; each cell shows its median */
    int redis_like = strcmp(names[s], "redis") == 0 || strcmp(names[s], "redis-cluster") == 0;
    int peer = redis_like && (sv.redis_ok || sv.cl_ok) && st && cfg.node_script;
    int rounds = peer ? cfg.rounds : 1;
    pid_t srv[3];
    int nsrv = server_pids(names[s], &sv, srv);
    for (int l = 0; l < cfg.nlevels; l++) {
      cell sides[5][MAX_ROUNDS];
      memset(sides, 0, sizeof(sides));
      int nsides = 0;
      for (int r = 0; r < rounds; r++) {
        nsides = 0;
        for (int mode = MODE_STORE; mode <= MODE_ASYNC_SESSION; mode <<= 1) {
          if (!(cfg.modes & mode)) continue;
          if (mode >= MODE_ASYNC && !redis_like) continue; /* the others use threads anyway */
          cell *c = &sides[nsides++][r];
          snprintf(c->store, sizeof(c->store), "%s", names[s]);
          c->api = mode == MODE_STORE     ? "store get+set"
                   : mode == MODE_SESSION ? "session load+commit"
                   : mode == MODE_ASYNC   ? "async store get+set"
                                          : "async session load+commit";
          c->conc = cfg.levels[l];
          if (st == NULL) {
            snprintf(c->na, sizeof(c->na), "%s", na);
            continue;
          }
          fprintf(stderr, "bench: %s, %s, %d in flight (round %d/%d)...\n", names[s], c->api, c->conc, r + 1, rounds);
          if (mode >= MODE_ASYNC)
            run_async_cell(&cfg, st, srv, nsrv, mode, c->conc, c);
          else
            run_cell(&cfg, st, srv, nsrv, mode, c->conc, c);
        }
        if (peer) {
          cell *p = &sides[nsides++][r];
          p->conc = cfg.levels[l];
          p->api = "store.get+set";
          fprintf(stderr, "bench: connect-redis (Node), %d in flight (round %d/%d)...\n", p->conc, r + 1, rounds);
          char ports[64], pids[64];
          if (strcmp(names[s], "redis") == 0) {
            snprintf(ports, sizeof(ports), "%d", sv.redis.port);
            snprintf(pids, sizeof(pids), "%d", (int)sv.redis.pid);
          } else {
            snprintf(ports, sizeof(ports), "cluster:%d,%d,%d", sv.cl[0].port, sv.cl[1].port, sv.cl[2].port);
            snprintf(pids, sizeof(pids), "%d,%d,%d", (int)sv.cl[0].pid, (int)sv.cl[1].pid, (int)sv.cl[2].pid);
          }
          run_node(&cfg, sv.dir, ports, pids, p->conc, p);
        }
      }
      for (int k = 0; k < nsides; k++) cells[n++] = *median(sides[k], rounds);
    }
    tether_store_close(st);
  }
  stop_servers(&sv);
  print_table(&cfg, cells, n);
  return 0;
}
