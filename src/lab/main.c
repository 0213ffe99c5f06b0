/* tether-lab: every session persistence strategy measured under failure, on this machine.
 *   tether-lab run --strategy NAME [options]     one strategy: topology, users, faults, table
 *   tether-lab compare [--strategies a,b] [...]  several, with the same load and faults, side by side
 *   tether-lab migrate [options]                 sticky + local sessions to stateless, live, step by step
 *   tether-lab up --strategy NAME                start a topology and wait (Ctrl-C stops it)
 *   tether-lab list                              the strategies */
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lab.h"
#include "xalloc.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: tether-lab run --strategy NAME [options]\n"
          "       tether-lab compare [--strategies a,b,c] [options]\n"
          "       tether-lab migrate [options]\n"
          "       tether-lab up --strategy NAME [--listen PORT]\n"
          "       tether-lab list\n"
          "options:\n"
          "  --app KIND            the application: tether (tether-app, the default), express (the seed's\n"
          "                        Express app), flask (the seed's Flask app under gunicorn), mixed\n"
          "                        (tether-app and Express in turn on one Redis: shared-redis only)\n"
          "  --app-dir DIR         where express/app.js and flask/app.py are (default: the source tree's\n"
          "                        tests/interop)\n"
          "  --apps N              app instances (default 3, at most %d)\n"
          "  --users N             simulated users (default 200)\n"
          "  --duration T          load per strategy (default 30s; compare: 10s; migrate: per step, 6s)\n"
          "  --think MS            mean think time between a user's requests (default 200)\n"
          "  --session-requests N  requests per login session, then logout (default 40; migrate: 20)\n"
          "  --kill appN@T         SIGKILL an app at T into the load (repeatable)\n"
          "  --restart appN@T      start it again\n"
          "  --kill-store NODE@T   SIGKILL a store process: memcached1..3, redis, postgres,\n"
          "                        redis-master1..3, redis-replica1..3\n"
          "  --restart-store NODE@T\n"
          "  --reshard N@T         move N slots from redis-master1 to redis-master2 (shared-redis-cluster)\n"
          "  --nat K               all users behind K source addresses (default: one address each)\n"
          "  --balance-factor N    hash_balance_factor of chash-bounded-local (default 125)\n"
          "  --json FILE --html FILE  where the results go (default lab-results/COMMAND.json and .html)\n"
          "  --out DIR             directory of the default result files (default lab-results)\n"
          "  --bin DIR             where tether and tether-app are (default: next to tether-lab)\n"
          "  --seed N              the users' randomness\n"
          "  --keep                keep the temporary directory (logs, configuration)\n"
          "  --no-progress         no progress bar\n"
          "strategies:\n",
          LAB_MAX_APPS);
  for (size_t i = 0; i < lab_nstrategies; i++)
    fprintf(out, "  %-21s %s\n", lab_strategies[i].name, lab_strategies[i].summary);
}

void lab_opts_default(lab_opts *o) {
  memset(o, 0, sizeof(*o));
  o->apps = 3;
  o->users = 200;
  o->think_ms = 200;
  o->session_requests = 40;
  o->duration_ms = 30000;
  o->balance_factor = 125;
  o->out_dir = "lab-results";
  o->progress = isatty(2);
  o->seed = 1;
}

/* ---- signals ---- */

static void on_signal(uv_signal_t *h, int sig) {
  (void)h;
  if (lab_interrupted) {
    /* a second Ctrl-C: no more patience */
    lab_kill_everything();
    _exit(128 + sig);
  }
  lab_interrupted = 1;
  fprintf(stderr, "\ntether-lab: stopping everything (Ctrl-C again to kill at once)\n");
}

/* ---- progress ---- */

typedef struct progress {
  int enabled;
  int index, total; /* strategies (or steps) */
  const char *name;
  const lab_measure *m;
  int64_t span_ms; /* of the current part */
  uint64_t last_ns;
} progress;

static void progress_draw(progress *p, int force) {
  if (!p->enabled || p->m == NULL) return;
  uint64_t now = uv_hrtime();
  if (!force && now - p->last_ns < 200000000u) return;
  p->last_ns = now;
  int64_t t = lab_measure_now_ms(p->m);
  double part = p->span_ms > 0 ? (double)t / (double)p->span_ms : 1;
  if (part > 1) part = 1;
  double all = (p->index + part) / (p->total ? p->total : 1);
  int width = 30, fill = (int)(all * width + 0.5);
  char bar[64];
  for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
  bar[width] = '\0';
  fprintf(stderr, "\r[%s] %d/%d %-21s %5.1fs/%.0fs  requests %-8llu errors %-5llu lost %-4d  ", bar, p->index + 1,
          p->total, p->name, (double)t / 1000.0, (double)p->span_ms / 1000.0, (unsigned long long)p->m->requests,
          (unsigned long long)p->m->errors, p->m->users_lost);
}

static void progress_done(progress *p) {
  if (p->enabled) fprintf(stderr, "\r%120s\r", "");
}

typedef struct clock_wait {
  const lab_measure *m;
  int64_t until_ms;
  progress *pg;
} clock_wait;

static int clock_done(void *arg) {
  clock_wait *w = arg;
  if (w->pg) progress_draw(w->pg, 0);
  return lab_measure_now_ms(w->m) >= w->until_ms;
}

/* Lets the load run until `until_ms` of the measurement's clock. */
static void run_until(uv_loop_t *loop, const lab_measure *m, int64_t until_ms, progress *pg) {
  clock_wait w = {m, until_ms, pg};
  int64_t left = until_ms - lab_measure_now_ms(m);
  if (left > 0) lab_wait(loop, clock_done, &w, left + 1000);
}

/* ---- run and compare ---- */

static int run_strategy(uv_loop_t *loop, const lab_strategy *st, const lab_opts *o, lab_measure *m, progress *pg) {
  lab_topology t;
  lab_measure_init(m, st->name, st, o, o->apps);
  if (!pg->enabled) fprintf(stderr, "tether-lab: [%d/%d] %s: starting\n", pg->index + 1, pg->total, st->name);
  if (lab_topology_start(&t, loop, st, o) < 0) return -1;
  lab_http *http = lab_http_new(loop);
  lab_scraper *sc = lab_scraper_new(loop, http, &t, m);
  lab_users *u = lab_users_new(loop, http, o, t.port, m);
  lab_measure_start(m);
  lab_faults *f = lab_faults_arm(loop, o, &t, m);
  lab_users_start(u);
  pg->name = st->name;
  pg->m = m;
  pg->span_ms = o->duration_ms;
  run_until(loop, m, o->duration_ms, pg);
  if (t.tool.starts > 0 && t.tool.running) /* --reshard: how it ended */
    lab_measure_event(m, "reshard: still running at the end");
  else if (t.tool.starts > 0)
    lab_measure_event(m, "reshard: done in %.1f s (exit status %lld)",
                      (double)(t.tool.exited_ms - t.tool.spawned_ms) / 1000.0, (long long)t.tool.exit_status);
  lab_users_stop(u);
  lab_faults_free(f);
  lab_scraper_sync(sc);
  lab_scraper_free(sc);
  lab_users_free(u);
  lab_http_free(http);
  if (m->errors > 0) lab_topology_explain(&t);
  lab_topology_stop(&t);
  m->sanitizer_reports = t.sanitizer_reports;
  pg->m = NULL;
  progress_done(pg);
  lab_measure_summarize(m);
  return lab_interrupted ? -1 : 0;
}

static char *command_line(int argc, char **argv) {
  size_t n = 1;
  for (int i = 0; i < argc; i++) n += strlen(argv[i]) + 3;
  char *s = xcalloc(1, n);
  for (int i = 0; i < argc; i++) {
    const char *a = i == 0 ? "tether-lab" : argv[i];
    int quote = strpbrk(a, " $\"'") != NULL;
    strcat(s, i ? " " : "");
    if (quote) strcat(s, "'");
    strcat(s, a);
    if (quote) strcat(s, "'");
  }
  return s;
}

static int write_results(lab_measure *const *ms, size_t n, const lab_opts *o, const char *name, const char *title,
                         const char *command) {
  char json_path[600], html_path[600];
  snprintf(json_path, sizeof(json_path), "%s", o->json ? o->json : "");
  snprintf(html_path, sizeof(html_path), "%s", o->html ? o->html : "");
  if (!o->json) snprintf(json_path, sizeof(json_path), "%s/%s.json", o->out_dir, name);
  if (!o->html) snprintf(html_path, sizeof(html_path), "%s/%s.html", o->out_dir, name);
  json_t *doc = lab_report_json(ms, n, o, command);
  int rc = -1;
  if (doc == NULL) /* jansson refuses text that is not UTF-8 (an argument), or ran out of memory */
    fprintf(stderr, "tether-lab: cannot build the JSON results for %s\n", json_path);
  else
    rc = lab_report_write_json(json_path, doc);
  json_decref(doc);
  if (lab_report_write_html(html_path, ms, n, o, title, command) < 0) rc = -1;
  if (rc == 0) fprintf(stderr, "tether-lab: results in %s and %s\n", json_path, html_path);
  return rc;
}

static int cmd_compare(uv_loop_t *loop, const lab_opts *o, const lab_strategy **sts, size_t n, const char *name,
                       const char *command) {
  lab_measure *ms = xcalloc(n, sizeof(*ms));
  lab_measure **done = xcalloc(n, sizeof(*done));
  size_t ndone = 0;
  int rc = 0;
  progress pg = {.enabled = o->progress, .total = (int)n};
  for (size_t i = 0; i < n && !lab_interrupted; i++) {
    pg.index = (int)i;
    if (run_strategy(loop, sts[i], o, &ms[i], &pg) < 0) {
      if (!lab_interrupted) fprintf(stderr, "tether-lab: %s could not run\n", sts[i]->name);
      rc = 1;
      continue;
    }
    done[ndone++] = &ms[i];
  }
  if (ndone) {
    char title[128];
    snprintf(title, sizeof(title), "tether-lab %s", n == 1 ? sts[0]->name : "compare");
    printf("\n");
    lab_report_table(stdout, done, ndone);
    fflush(stdout);
    if (write_results(done, ndone, o, name, title, command) < 0) rc = 1;
  }
  for (size_t i = 0; i < n; i++) lab_measure_free(&ms[i]);
  free(ms);
  free(done);
  return lab_interrupted ? 130 : rc;
}

/* ---- migrate: from sticky + local sessions to stateless, on one live topology ---- */

typedef struct drain_wait {
  const lab_measure *m;
  int app;
  int64_t from_ms;
} drain_wait;

/* Drained: the app answered no user for a whole second since the drain began. */
static int drained(void *arg) {
  drain_wait *w = arg;
  int64_t now = lab_measure_now_ms(w->m), last = w->m->last_served_ms[w->app];
  if (last < w->from_ms) last = w->from_ms;
  return now - last >= 1000;
}

typedef struct xfer_wait {
  lab_xfer x;
  int done;
} xfer_wait;

static void on_admin_done(lab_xfer *x) { ((xfer_wait *)x->owner)->done = 1; }
static int admin_done(void *arg) { return ((xfer_wait *)arg)->done; }

/* POST /upstreams/apps/servers/ADDR/ACTION on the admin API. */
static int admin_action(uv_loop_t *loop, lab_http *http, lab_topology *t, int app, const char *action) {
  xfer_wait w = {.done = 0};
  char url[160];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/upstreams/apps/servers/127.0.0.1:%d/%s", t->admin_port,
           t->apps[app].port, action);
  lab_xfer_init(&w.x, http, &w, on_admin_done);
  int rc = lab_xfer_start(&w.x, url, "", 2000);
  if (rc == 0) lab_wait(loop, admin_done, &w, 3000);
  rc = rc == 0 && w.done && w.x.status == 200 ? 0 : -1;
  lab_xfer_cleanup(&w.x);
  return rc;
}

typedef struct up_wait {
  uv_loop_t *loop;
  lab_http *http;
  lab_topology *t;
  int app;
  xfer_wait w;
  int up;
} up_wait;

static void on_up_metrics(lab_xfer *x) {
  up_wait *u = x->owner;
  char line[128];
  snprintf(line, sizeof(line), "tether_server_up{upstream=\"apps\",server=\"127.0.0.1:%d\"}", u->t->apps[u->app].port);
  if (x->status == 200 && x->body && lab_prom_value(x->body, line) == 1) u->up = 1;
  u->w.done = 1;
}

static int up_done(void *arg) {
  up_wait *u = arg;
  if (u->up) return 1;
  if (!u->w.x.active && u->w.done) {
    u->w.done = 0;
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", u->t->admin_port);
    lab_xfer_start(&u->w.x, url, NULL, 1000);
  }
  return 0;
}

/* Waits until the balancer counts app i as up again (its health checks passed). */
static int wait_server_up(uv_loop_t *loop, lab_http *http, lab_topology *t, int i) {
  up_wait u = {.loop = loop, .http = http, .t = t, .app = i};
  lab_xfer_init(&u.w.x, http, &u, on_up_metrics);
  u.w.done = 1;
  lab_wait(loop, up_done, &u, 15000);
  lab_xfer_cleanup(&u.w.x);
  return u.up ? 0 : -1;
}

/* A rolling deploy of app i onto another session store, as an operator does it: take it out of the
 * balancer (drain: its bound users finish their sessions there; disable: they move at once, which only a
 * shared store survives), restart it, put it back, wait until the balancer sees it up. */
static int redeploy(uv_loop_t *loop, lab_http *http, lab_topology *t, lab_measure *m, int i, const char *sessions,
                    int drain, int64_t drain_timeout, const char *what) {
  admin_action(loop, http, t, i, drain ? "drain" : "disable");
  if (drain) {
    lab_measure_event(m, "drain %s", t->apps[i].name);
    drain_wait w = {m, i, lab_measure_now_ms(m)};
    if (!lab_wait(loop, drained, &w, drain_timeout) && !lab_interrupted)
      lab_measure_event(m, "%s not drained in time", t->apps[i].name);
  }
  lab_measure_app_down(m, i);
  int rc = lab_app_redeploy(t, i, sessions);
  lab_measure_app_up(m, i);
  admin_action(loop, http, t, i, "enable");
  if (rc == 0 && wait_server_up(loop, http, t, i) < 0 && !lab_interrupted)
    lab_measure_event(m, "%s not up again in time", t->apps[i].name);
  lab_measure_event(m, "%s on %s", t->apps[i].name, what);
  return rc;
}

enum { M_STEPS = 7 };
static const char *const step_names[M_STEPS] = {
    "1 sticky + local", "2 add shared store", "3 dual-write", "4 failover test",
    "5 shared only",    "6 remove sticky",    "7 monitor",
};

static int cmd_migrate(uv_loop_t *loop, lab_opts *o, const char *command) {
  static const lab_strategy mig = {"migrate",
                                   LAB_POLICY_STICKY,
                                   LAB_STORE_NONE,
                                   "memory:",
                                   1,
                                   "sticky + local sessions, migrated live to a shared store without stickiness"};
  lab_topology t;
  if (lab_topology_start(&t, loop, &mig, o) < 0) return 1;
  lab_opts so = *o;
  so.duration_ms = 600000; /* room for the series; each step's real length is set at its end */
  lab_measure ms[M_STEPS];
  lab_measure *done[M_STEPS];
  memset(ms, 0, sizeof(ms));
  int nsteps = 0, rc = 0;
  lab_http *http = lab_http_new(loop);
  progress pg = {.enabled = o->progress, .total = M_STEPS};
  lab_measure_init(&ms[0], step_names[0], &mig, &so, o->apps);
  lab_scraper *sc = lab_scraper_new(loop, http, &t, &ms[0]);
  lab_users *u = lab_users_new(loop, http, o, t.port, &ms[0]);
  lab_measure_start(&ms[0]);
  lab_users_start(u);
  int64_t observe = o->duration_ms;
  int64_t drain_timeout = 4LL * o->session_requests * o->think_ms * 3 / 2 + 10000;
  char dual[1000];
  for (int k = 0; k < M_STEPS && !lab_interrupted; k++) {
    lab_measure *m = &ms[k];
    if (k > 0) {
      lab_measure_init(m, step_names[k], &mig, &so, o->apps);
      lab_scraper_sync(sc); /* the counters where this step begins */
      lab_measure_continue(m, &ms[k - 1]);
      lab_scraper_set_measure(sc, m);
      lab_users_set_measure(u, m);
      lab_measure_start(m);
    }
    pg.index = k;
    pg.name = step_names[k];
    pg.m = m;
    pg.span_ms = observe;
    switch (k) {
    case 1: /* the store the sessions are moving to */
      if (lab_topology_add_store(&t, LAB_STORE_REDIS) < 0)
        rc = 1;
      else
        lab_measure_event(m, "redis started");
      snprintf(dual, sizeof(dual), "dual:memory:+%s", t.shared);
      break;
    case 2: /* rolling deploy of dual-write: drain each app until its bound users have left, then redeploy */
      for (int i = 0; i < t.napps && rc == 0 && !lab_interrupted; i++)
        if (redeploy(loop, http, &t, m, i, dual, 1, drain_timeout, "the dual store") < 0) rc = 1;
      break;
    case 3: { /* failover: kill an app, carry on, bring it back */
      int victim = t.napps > 1 ? 1 : 0;
      lab_fault f = {.kind = LAB_KILL_APP, .at_ms = 0};
      snprintf(f.target, sizeof(f.target), "%s", t.apps[victim].name);
      lab_fault_apply(&t, m, &f);
      run_until(loop, m, observe / 2, &pg);
      if (lab_app_redeploy(&t, victim, dual) < 0) rc = 1;
      lab_measure_app_up(m, victim);
      lab_measure_event(m, "%s restarted", f.target);
      if (rc == 0 && wait_server_up(loop, http, &t, victim) < 0 && !lab_interrupted)
        lab_measure_event(m, "%s not up again in time", f.target);
      break;
    }
    case 4: /* rolling deploy onto the shared store alone: every session is in it, so users may move at once */
      for (int i = 0; i < t.napps && rc == 0 && !lab_interrupted; i++)
        if (redeploy(loop, http, &t, m, i, t.shared, 0, 0, "redis only") < 0) rc = 1;
      break;
    case 5: /* stickiness is no longer needed: live reload without it */
      if (lab_topology_reload(&t, "") < 0)
        rc = 1;
      else
        lab_measure_event(m, "balancer reloaded without sticky cookie");
      break;
    default:
      break;
    }
    if (rc) break;
    run_until(loop, m, lab_measure_now_ms(m) + observe, &pg);
    m->duration_ms = lab_measure_now_ms(m);
    done[nsteps++] = m;
  }
  lab_users_stop(u);
  lab_scraper_sync(sc);
  lab_scraper_free(sc);
  lab_users_free(u);
  lab_http_free(http);
  uint64_t failed = 0;
  for (int k = 0; k < nsteps; k++) failed += done[k]->errors;
  if (failed > 0) lab_topology_explain(&t);
  lab_topology_stop(&t);
  if (nsteps) done[nsteps - 1]->sanitizer_reports = t.sanitizer_reports;
  progress_done(&pg);
  for (int k = 0; k < nsteps; k++) lab_measure_summarize(done[k]);
  if (nsteps) {
    printf("\n");
    lab_report_table(stdout, done, (size_t)nsteps);
    unsigned long long lost = 0, events = 0, errors = 0, requests = 0;
    double missing = 0;
    for (int k = 0; k < nsteps; k++) {
      lost += (unsigned long long)done[k]->users_lost;
      events += done[k]->lost_events;
      missing += done[k]->missing_server;
      errors += done[k]->errors;
      requests += done[k]->requests;
    }
    printf("migration: %d of %d steps, %llu requests, %llu errors (%.2f%%), sessions lost: %llu (users), %llu "
           "(client events), %.0f (apps' metric)\n",
           nsteps, M_STEPS, requests, errors, requests ? 100.0 * (double)errors / (double)requests : 0.0, lost, events,
           missing);
    fflush(stdout);
    o->duration_ms = observe;
    if (write_results(done, (size_t)nsteps, o, "migrate", "tether-lab migrate: sticky sessions to stateless, live",
                      command) < 0)
      rc = 1;
  }
  for (int k = 0; k < M_STEPS; k++)
    if (ms[k].served) lab_measure_free(&ms[k]);
  return lab_interrupted ? 130 : rc;
}

/* ---- up ---- */

static int never(void *arg) {
  (void)arg;
  return 0;
}

static int cmd_up(uv_loop_t *loop, const lab_strategy *st, const lab_opts *o, int64_t limit_ms) {
  lab_topology t;
  if (lab_topology_start(&t, loop, st, o) < 0) return 1;
  printf("tether-lab up: %s (%s)\n  balancer  http://127.0.0.1:%d/   admin http://127.0.0.1:%d/status\n", st->name,
         st->summary, t.port, t.admin_port);
  for (int i = 0; i < t.napps; i++) printf("  %-9s http://127.0.0.1:%d/\n", t.apps[i].name, t.apps[i].port);
  printf("  sessions  %s\n  files     %s\nPress Ctrl-C to stop everything.\n", t.sessions, t.dir);
  fflush(stdout);
  lab_wait(loop, never, NULL, limit_ms);
  lab_topology_stop(&t);
  return 0;
}

/* ---- options ---- */

enum {
  O_STRATEGY = 256,
  O_STRATEGIES,
  O_APPS,
  O_USERS,
  O_DURATION,
  O_THINK,
  O_SESSION,
  O_KILL,
  O_RESTART,
  O_KILL_STORE,
  O_RESTART_STORE,
  O_RESHARD,
  O_NAT,
  O_FACTOR,
  O_JSON,
  O_HTML,
  O_OUT,
  O_BIN,
  O_SEED,
  O_KEEP,
  O_NO_PROGRESS,
  O_LISTEN,
  O_APP,
  O_APP_DIR,
  O_HELP
};

static int int_arg(const char *name, const char *v, int lo, int hi, int *out) {
  char *end;
  long n = strtol(v, &end, 10);
  if (*v == '\0' || *end || n < lo || n > hi) {
    fprintf(stderr, "tether-lab: --%s takes a number from %d to %d, got '%s'\n", name, lo, hi, v);
    return -1;
  }
  *out = (int)n;
  return 0;
}

int main(int argc, char **argv) {
  xalloc_set_program("tether-lab");
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "list") == 0) {
    for (size_t i = 0; i < lab_nstrategies; i++)
      printf("%-21s %s\n", lab_strategies[i].name, lab_strategies[i].summary);
    return 0;
  }
  int is_run = strcmp(cmd, "run") == 0, is_compare = strcmp(cmd, "compare") == 0,
      is_migrate = strcmp(cmd, "migrate") == 0, is_up = strcmp(cmd, "up") == 0;
  if (!is_run && !is_compare && !is_migrate && !is_up) {
    fprintf(stderr, "tether-lab: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
  }
  static const struct option opts[] = {{"strategy", required_argument, NULL, O_STRATEGY},
                                       {"strategies", required_argument, NULL, O_STRATEGIES},
                                       {"apps", required_argument, NULL, O_APPS},
                                       {"users", required_argument, NULL, O_USERS},
                                       {"duration", required_argument, NULL, O_DURATION},
                                       {"think", required_argument, NULL, O_THINK},
                                       {"session-requests", required_argument, NULL, O_SESSION},
                                       {"kill", required_argument, NULL, O_KILL},
                                       {"restart", required_argument, NULL, O_RESTART},
                                       {"kill-store", required_argument, NULL, O_KILL_STORE},
                                       {"restart-store", required_argument, NULL, O_RESTART_STORE},
                                       {"reshard", required_argument, NULL, O_RESHARD},
                                       {"nat", required_argument, NULL, O_NAT},
                                       {"balance-factor", required_argument, NULL, O_FACTOR},
                                       {"json", required_argument, NULL, O_JSON},
                                       {"html", required_argument, NULL, O_HTML},
                                       {"out", required_argument, NULL, O_OUT},
                                       {"bin", required_argument, NULL, O_BIN},
                                       {"seed", required_argument, NULL, O_SEED},
                                       {"keep", no_argument, NULL, O_KEEP},
                                       {"no-progress", no_argument, NULL, O_NO_PROGRESS},
                                       {"listen", required_argument, NULL, O_LISTEN},
                                       {"app", required_argument, NULL, O_APP},
                                       {"app-dir", required_argument, NULL, O_APP_DIR},
                                       {"help", no_argument, NULL, O_HELP},
                                       {NULL, 0, NULL, 0}};
  lab_opts o;
  lab_opts_default(&o);
  if (is_compare) o.duration_ms = 10000;
  if (is_migrate) {
    o.duration_ms = 6000;
    o.session_requests = 20;
  }
  const char *strategy = NULL, *strategies = NULL;
  int duration_given = 0, ch, seed = 1;
  optind = 2;
  while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    int bad = 0;
    lab_fault_kind fk = LAB_KILL_APP;
    switch (ch) {
    case O_STRATEGY:
      strategy = optarg;
      break;
    case O_STRATEGIES:
      strategies = optarg;
      break;
    case O_APPS:
      bad = int_arg("apps", optarg, 1, LAB_MAX_APPS, &o.apps);
      break;
    case O_USERS:
      bad = int_arg("users", optarg, 1, LAB_MAX_USERS, &o.users);
      break;
    case O_DURATION:
      o.duration_ms = lab_parse_duration(optarg);
      duration_given = 1;
      if (o.duration_ms < 1000) {
        fprintf(stderr, "tether-lab: --duration takes a time of at least 1s (30s, 2m), got '%s'\n", optarg);
        bad = 1;
      }
      break;
    case O_THINK:
      bad = int_arg("think", optarg, 0, 60000, &o.think_ms);
      break;
    case O_SESSION:
      bad = int_arg("session-requests", optarg, 2, 100000, &o.session_requests);
      break;
    case O_RESTART:
      fk = LAB_RESTART_APP;
      goto fault;
    case O_KILL_STORE:
      fk = LAB_KILL_STORE;
      goto fault;
    case O_RESTART_STORE:
      fk = LAB_RESTART_STORE;
      goto fault;
    case O_RESHARD:
      fk = LAB_RESHARD;
      goto fault;
    case O_KILL:
    fault:
      if (o.nfaults == LAB_MAX_FAULTS) {
        fprintf(stderr, "tether-lab: at most %d faults\n", LAB_MAX_FAULTS);
        bad = 1;
      } else if (lab_fault_parse(fk, optarg, &o.faults[o.nfaults]) < 0)
        bad = 1;
      else
        o.nfaults++;
      break;
    case O_NAT:
      bad = int_arg("nat", optarg, 1, LAB_MAX_USERS, &o.nat);
      break;
    case O_FACTOR:
      bad = int_arg("balance-factor", optarg, 100, 1000, &o.balance_factor);
      break;
    case O_JSON:
      o.json = optarg;
      break;
    case O_HTML:
      o.html = optarg;
      break;
    case O_OUT:
      o.out_dir = optarg;
      break;
    case O_BIN:
      o.bin = optarg;
      break;
    case O_SEED:
      bad = int_arg("seed", optarg, 0, 1 << 30, &seed);
      break;
    case O_KEEP:
      o.keep = 1;
      break;
    case O_NO_PROGRESS:
      o.progress = 0;
      break;
    case O_LISTEN:
      bad = int_arg("listen", optarg, 1, 65535, &o.listen_port);
      break;
    case O_APP:
      if (lab_app_kind_parse(optarg, &o.app) < 0) {
        fprintf(stderr, "tether-lab: --app takes tether, express, flask or mixed, got '%s'\n", optarg);
        bad = 1;
      }
      break;
    case O_APP_DIR:
      o.app_dir = optarg;
      break;
    case O_HELP:
      usage(stdout);
      return 0;
    default:
      bad = 1;
    }
    if (bad) return 2;
  }
  o.seed = (unsigned)seed;
  if (optind < argc) {
    fprintf(stderr, "tether-lab: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  for (int i = 0; i < o.nfaults; i++) {
    if ((o.faults[i].kind == LAB_KILL_APP || o.faults[i].kind == LAB_RESTART_APP) &&
        atoi(o.faults[i].target + 3) > o.apps) {
      fprintf(stderr, "tether-lab: %s: there are only %d apps\n", o.faults[i].target, o.apps);
      return 2;
    }
  }

  const lab_strategy *sts[64];
  size_t nsts = 0;
  if (is_run || is_up) {
    if (strategy == NULL || (sts[0] = lab_strategy_find(strategy)) == NULL) {
      fprintf(stderr, "tether-lab: %s needs --strategy NAME, one of:", cmd);
      for (size_t i = 0; i < lab_nstrategies; i++) fprintf(stderr, " %s", lab_strategies[i].name);
      fprintf(stderr, "\n");
      return 2;
    }
    nsts = 1;
  } else if (is_compare) {
    if (strategies == NULL) { /* every strategy this kind of app can run */
      for (size_t i = 0; i < lab_nstrategies; i++)
        if (lab_app_refuses(o.app, &lab_strategies[i]) == NULL) sts[nsts++] = &lab_strategies[i];
    } else {
      char *list = xstrdup(strategies), *save = NULL;
      for (char *s = strtok_r(list, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        const lab_strategy *found = lab_strategy_find(s);
        if (found == NULL || nsts == 64) {
          fprintf(stderr, "tether-lab: unknown strategy '%s' (tether-lab list)\n", s);
          free(list);
          return 2;
        }
        sts[nsts++] = found;
      }
      free(list);
    }
  }

  for (size_t i = 0; i < nsts; i++) {
    const char *why = lab_app_refuses(o.app, sts[i]);
    if (why) {
      fprintf(stderr, "tether-lab: --app %s cannot run %s: %s\n", lab_app_kind_name(o.app), sts[i]->name, why);
      return 2;
    }
  }
  if (is_migrate && o.app != LAB_APP_TETHER) {
    fprintf(stderr, "tether-lab: migrate redeploys tether-app onto its dual store: --app tether only\n");
    return 2;
  }
  if (lab_app_check(&o) < 0) return 2;

  /* every user holds a connection; stay clear of the soft limit */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  uv_loop_t loop;
  uv_loop_init(&loop);
  uv_signal_t sigint, sigterm;
  uv_signal_init(&loop, &sigint);
  uv_signal_init(&loop, &sigterm);
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  uv_unref((uv_handle_t *)&sigint);
  uv_unref((uv_handle_t *)&sigterm);

  char *command = command_line(argc, argv);
  int rc;
  if (is_up)
    rc = cmd_up(&loop, sts[0], &o, duration_given ? o.duration_ms : 24LL * 3600 * 1000);
  else if (is_migrate)
    rc = cmd_migrate(&loop, &o, command);
  else {
    char name[96] = "compare";
    if (is_run) snprintf(name, sizeof(name), "run-%s", sts[0]->name);
    rc = cmd_compare(&loop, &o, sts, nsts, name, command);
  }
  free(command);

  uv_close((uv_handle_t *)&sigint, NULL);
  uv_close((uv_handle_t *)&sigterm, NULL);
  uv_run(&loop, UV_RUN_DEFAULT); /* the last close callbacks */
  if (uv_loop_close(&loop) != 0) fprintf(stderr, "tether-lab: handles left open at exit\n");
  curl_global_cleanup();
  return rc;
}
