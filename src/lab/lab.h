/* tether-lab: the interfaces between its parts. One libuv loop drives everything: the processes of a
 * topology (topology.c), the simulated users (users.c) over libcurl's multi interface (http.c), the faults on timers
 * (faults.c), the scrapes of every process's metrics (measure.c); report.c turns the measurements into a
 * table, JSON and an HTML page. */
#ifndef TETHER_LAB_H
#define TETHER_LAB_H

#include <curl/curl.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#define LAB_MAX_APPS 8
#define LAB_MAX_NODES 6
#define LAB_MAX_FAULTS 16
#define LAB_MAX_EVENTS 64
#define LAB_MAX_USERS 5000
#define LAB_BUCKET_MS 1000        /* resolution of every series over time */
#define LAB_RESTART_GRACE_MS 3000 /* a restarted app is not counted as up before its health checks pass */

extern volatile int lab_interrupted; /* Ctrl-C or SIGTERM: every wait ends, everything is stopped */

/* ---- strategies (topology.c) ---- */

typedef enum lab_policy {
  LAB_POLICY_NONE = 0,      /* round robin, no persistence */
  LAB_POLICY_STICKY,        /* sticky cookie srv_id */
  LAB_POLICY_IPHASH,        /* ip_hash */
  LAB_POLICY_CHASH_BOUNDED, /* hash $remote_addr consistent + hash_balance_factor */
} lab_policy;

typedef enum lab_store_kind {
  LAB_STORE_NONE = 0, /* memory: or jwt:, nothing to start */
  LAB_STORE_SQLITE,   /* one file in the lab's directory */
  LAB_STORE_REDIS,
  LAB_STORE_POSTGRES,
  LAB_STORE_MEMCACHED,     /* three nodes, replicas=2 */
  LAB_STORE_REDIS_CLUSTER, /* three masters, three replicas, wait=1 */
} lab_store_kind;

typedef struct lab_strategy {
  const char *name;
  lab_policy policy;
  lab_store_kind store;
  const char *sessions; /* "memory:", "jwt:", "shared" (the store's URL), "dual" (memory: + the store) */
  int keeps_sessions;   /* expected to lose no session when an app dies */
  const char *summary;  /* one line: what it is */
} lab_strategy;

extern const lab_strategy lab_strategies[];
extern const size_t lab_nstrategies;
const lab_strategy *lab_strategy_find(const char *name);
const char *lab_policy_text(lab_policy p); /* "sticky cookie", "ip_hash", ... */

/* ---- the application behind the balancer (apps.c) ---- */

typedef enum lab_app_kind {
  LAB_APP_TETHER = 0, /* tether-app */
  LAB_APP_EXPRESS,    /* the seed's Express app: express-session, MemoryStore or connect-redis (node) */
  LAB_APP_FLASK,      /* the seed's Flask app: flask-session, in-process or Redis (gunicorn) */
  LAB_APP_MIXED,      /* tether-app and Express taking turns, one Redis, one cookie: the shared wire format */
} lab_app_kind;

const char *lab_app_kind_name(lab_app_kind k);
/* "tether", "express", "flask", "mixed". 0, or -1. */
int lab_app_kind_parse(const char *s, lab_app_kind *k);
/* The application's session cookie, which the balancer's session_monitor watches. */
const char *lab_app_cookie(lab_app_kind k);
/* NULL when the strategy runs with this kind of app, else why not (one line). */
const char *lab_app_refuses(lab_app_kind k, const lab_strategy *st);

/* ---- options ---- */

typedef enum lab_fault_kind {
  LAB_KILL_APP,
  LAB_RESTART_APP,
  LAB_KILL_STORE,
  LAB_RESTART_STORE,
  LAB_RESHARD, /* target: the number of slots moved from redis-master1 to redis-master2 */
} lab_fault_kind;

typedef struct lab_fault {
  lab_fault_kind kind;
  char target[32]; /* "app2", "memcached1", "redis", "postgres", "redis-master1" */
  int64_t at_ms;   /* from the start of the load */
} lab_fault;

typedef struct lab_opts {
  int apps;             /* tether-app instances (1-LAB_MAX_APPS) */
  int users;            /* simulated users */
  int nat;              /* 0: one address per user; K: all users behind K addresses */
  int think_ms;         /* mean think time between a user's requests */
  int session_requests; /* requests of a login session before the user logs out and closes the browser */
  int64_t duration_ms;  /* of the load */
  int balance_factor;   /* hash_balance_factor of chash-bounded-local */
  lab_fault faults[LAB_MAX_FAULTS];
  int nfaults;
  const char *bin;  /* where tether and tether-app are (default: next to tether-lab) */
  const char *json; /* output files (NULL: lab-results/<name>.json, .html) */
  const char *html;
  const char *out_dir; /* lab-results */
  int listen_port;     /* up: the balancer's port (0: a free one) */
  int keep;            /* keep the temporary directory */
  int verbose;
  int progress; /* draw a progress bar on stderr */
  unsigned seed;
  lab_app_kind app;    /* --app */
  const char *app_dir; /* holds express/app.js and flask/app.py (default: the source tree's tests/interop) */
} lab_opts;

void lab_opts_default(lab_opts *o);
/* "10s", "500ms", "2m", "1.5s", a bare number of seconds. -1 when malformed. */
int64_t lab_parse_duration(const char *s);
/* "app2@10s" into f (kind given). 0, or -1 with a message on stderr. */
int lab_fault_parse(lab_fault_kind kind, const char *arg, lab_fault *f);
const char *lab_fault_text(const lab_fault *f, char *buf, size_t n);

/* ---- processes and topology (topology.c) ---- */

typedef struct lab_topology lab_topology;

typedef struct lab_proc {
  uv_process_t h;
  lab_topology *topo;
  char name[32]; /* "balancer", "app2", "memcached1", "redis", "postgres" */
  char log[512]; /* stdout and stderr of every incarnation */
  char **argv;   /* NULL-terminated, owned; kept for a restart */
  int port;
  int as_postgres;                /* run as the postgres user (PostgreSQL refuses root) */
  int stop_signal;                /* graceful stop (SIGTERM; SIGINT for PostgreSQL's fast shutdown) */
  int running;                    /* spawned, exit not yet seen */
  int closing;                    /* handle close pending */
  int killed;                     /* its exit is expected: we killed it, or it is a one-shot command */
  int starts;                     /* incarnations */
  uint64_t spawned_ms, exited_ms; /* the loop's clock at the last spawn and exit */
  int metrics;                    /* serves tether-app's /metrics (Express and Flask apps do not) */
  int64_t exit_status;
  int term_signal;
} lab_proc;

struct lab_topology {
  uv_loop_t *loop;
  const lab_strategy *st;
  const lab_opts *o;
  char dir[256]; /* temporary directory: configuration, logs, data */
  char bin[512];
  char conf[600]; /* the balancer's configuration file */
  int port;       /* the balancer's */
  int admin_port;
  int napps;
  lab_proc balancer;
  lab_proc apps[LAB_MAX_APPS];
  lab_proc nodes[LAB_MAX_NODES]; /* store processes */
  lab_proc tool;                 /* a one-shot command run beside the load (redis-cli --cluster reshard) */
  int nnodes;
  char sessions[1024]; /* the apps' --sessions URL */
  char shared[900];    /* the store's URL alone (for dual and migrate) */
  char secret[40];
  char policy_conf[256]; /* the persistence lines of the upstream */
  int sanitizer_reports; /* logs with an AddressSanitizer, LeakSanitizer or UBSan report, found at stop */
};

/* Starts the store processes, the apps and the balancer, each ready. 0, or -1 with a message (and the
 * failing process's log tail) on stderr, everything already stopped. */
int lab_topology_start(lab_topology *t, uv_loop_t *loop, const lab_strategy *st, const lab_opts *o);
/* Stops every process (graceful, then SIGKILL to its process group), removes the directory unless keep. */
void lab_topology_stop(lab_topology *t);
/* Prints to stderr what the balancer and the apps logged about failures (called when requests failed). */
void lab_topology_explain(const lab_topology *t);
/* Finds a process by name: "app2", "memcached1", "redis", "postgres", "balancer". */
lab_proc *lab_topology_find(lab_topology *t, const char *name);
int lab_proc_kill(lab_proc *p, int sig);
/* Starts a stopped process again on the same port and arguments and waits for its port. */
int lab_proc_restart(lab_proc *p);
/* Starts a store's processes in a running topology (migrate: "add the shared store"); sets t->shared. */
int lab_topology_add_store(lab_topology *t, lab_store_kind kind);
/* Starts moving slots from redis-master1 to redis-master2 (redis-cli --cluster reshard) and returns at once:
 * the migration runs under the load. -1 when there is no cluster or a reshard is still running. */
int lab_topology_reshard(lab_topology *t, int slots);
/* Rewrites the balancer's configuration with new persistence lines and sends SIGHUP. */
int lab_topology_reload(lab_topology *t, const char *policy_conf);
/* Restarts app i with another --sessions URL (rolling deploys in `migrate`). */
int lab_app_redeploy(lab_topology *t, int i, const char *sessions);
/* Runs the loop until done(arg) is true, Ctrl-C, or timeout_ms pass. Returns 1 when done. */
int lab_wait(uv_loop_t *loop, int (*done)(void *), void *arg, int64_t timeout_ms);
/* A NULL-terminated copy of the arguments (NULL ends them), and its release. */
char **lab_argv_dup(const char *first, ...);
void lab_argv_free(char **v);
/* The command line of app p (apps.c): tether-app, node app.js or gunicorn, on p->port with these sessions
 * (a libtether store URL: memory:, redis://...). -1 with a message when the app kind cannot use them. */
int lab_app_argv(lab_topology *t, lab_proc *p, int index, const char *sessions);
/* Checks that the app kind's programs and files are there. 0, or -1 with a message. */
int lab_app_check(const lab_opts *o);
/* Kills every process ever started (SIGKILL to each group): last resort on a second Ctrl-C. */
void lab_kill_everything(void);
int lab_free_port(void);

/* ---- HTTP over libcurl's multi interface on the loop (http.c) ---- */

typedef struct lab_http lab_http;
typedef struct lab_xfer lab_xfer;
typedef void (*lab_xfer_cb)(lab_xfer *x);

struct lab_xfer {
  CURL *easy; /* one per user: its cookie jar lives here */
  lab_http *http;
  char *body; /* the response body, NUL-terminated */
  size_t len, cap;
  char served_by[16]; /* X-Served-By */
  long status;        /* 0: no response */
  CURLcode rc;
  int64_t latency_us;
  int active;
  lab_xfer_cb done;
  void *owner;
};

lab_http *lab_http_new(uv_loop_t *loop);
void lab_http_free(lab_http *h); /* the transfers must be finished or cleaned up before */
void lab_xfer_init(lab_xfer *x, lab_http *h, void *owner, lab_xfer_cb done);
/* GET (body NULL) or POST a JSON body; the callback runs when it ends, whatever the outcome. */
int lab_xfer_start(lab_xfer *x, const char *url, const char *json_body, long timeout_ms);
void lab_xfer_cleanup(lab_xfer *x);

/* ---- measurements (measure.c) ---- */

typedef struct lab_event {
  int64_t t_ms;
  char what[64];
} lab_event;

typedef struct lab_measure {
  const lab_strategy *st;
  char label[64]; /* the strategy, or the migration step */
  int napps;
  char app_names[LAB_MAX_APPS][16];
  uint64_t t0_ns; /* start of the load */
  int64_t duration_ms;
  size_t nbuckets;
  uint32_t (*served)[LAB_MAX_APPS];     /* per bucket, requests answered by each app */
  uint32_t *req_b, *err_b, *lost_b;     /* per bucket */
  int64_t last_served_ms[LAB_MAX_APPS]; /* when each app last answered a user (-1: not yet) */
  uint64_t requests, errors;
  uint64_t status[600]; /* answers by status; [0]: no answer (transport error) */
  uint64_t lost_events; /* client side: a user's visits or cart went back, or its login disappeared */
  int users, users_lost;
  const int *users_on;         /* per app, users whose session was last served there (the users' own count) */
  int at_risk;                 /* users last served by the apps killed, when they were killed */
  struct lab_scraper *scraper; /* scrapes the apps once more right before one is killed (NULL: none) */
  uint32_t *lat_us;            /* latency of every answered request (capped) */
  size_t nlat, latcap;
  /* server side */
  double missing_base[LAB_MAX_APPS]; /* tether_sessions_missing_total of the apps' past incarnations */
  double missing_last[LAB_MAX_APPS];
  double shared_base[LAB_MAX_APPS]; /* dual store: reads answered by SHARED, past incarnations */
  double shared_last[LAB_MAX_APPS];
  double persist[6];      /* tether_persistence_total: hit new down drain unknown overload */
  double persist_base[6]; /* the balancer's counters when this measurement began */
  int have_persist;
  /* the balancer's session_monitor, summed over the servers: started, replaced, expected, presented */
  double monitor[4], monitor_base[4];
  int have_monitor;
  lab_app_kind app_kind;
  int64_t down_from[LAB_MAX_APPS][4], down_to[LAB_MAX_APPS][4]; /* intervals an app was out */
  int ndown[LAB_MAX_APPS];
  lab_event events[LAB_MAX_EVENTS];
  int nevents;
  char faults_text[160];
  double max_lag_ms;     /* the lab's own loop ran this late at worst (a busy machine shows here) */
  int sanitizer_reports; /* processes whose log holds a sanitizer report */
  /* filled by lab_measure_summarize */
  double share[LAB_MAX_APPS]; /* requests per app while every app was up */
  double max_mean, cv;
  double p50_ms, p99_ms;
  double missing_server;
  double breaks;
  double shared_reads;
  double rps;
  double monitor_replaced, monitor_started, monitor_expected, monitor_presented;
} lab_measure;

void lab_measure_init(lab_measure *m, const char *label, const lab_strategy *st, const lab_opts *o, int napps);
void lab_measure_free(lab_measure *m);
int64_t lab_measure_now_ms(const lab_measure *m);
void lab_measure_start(lab_measure *m); /* t0 = now */
void lab_measure_request(lab_measure *m, const lab_xfer *x);
void lab_measure_lost(lab_measure *m, int first_for_user);
void lab_measure_event(lab_measure *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lab_measure_app_down(lab_measure *m, int app);
void lab_measure_app_up(lab_measure *m, int app); /* a new incarnation: its counters start at 0 */
void lab_measure_summarize(lab_measure *m);
/* A measurement that continues prev on the same processes: counts start at zero from here. */
void lab_measure_continue(lab_measure *m, const lab_measure *prev);

/* Periodic scrapes of the apps' and the balancer's /metrics. */
typedef struct lab_scraper lab_scraper;
lab_scraper *lab_scraper_new(uv_loop_t *loop, lab_http *http, lab_topology *t, lab_measure *m);
void lab_scraper_set_measure(lab_scraper *s, lab_measure *m);
/* One round now, waited for (the periodic scrapes go on). */
void lab_scraper_sync(lab_scraper *s);
/* App app's metrics read now (or the scrape in flight finished), waited for at most 300 ms: before a kill. */
void lab_scraper_app_now(lab_scraper *s, int app);
void lab_scraper_free(lab_scraper *s);
/* The value of the Prometheus sample "name{labels}" (exact), or -1. */
double lab_prom_value(const char *text, const char *name_labels);

/* ---- users (users.c) ---- */

typedef struct lab_users lab_users;
lab_users *lab_users_new(uv_loop_t *loop, lab_http *http, const lab_opts *o, int port, lab_measure *m);
void lab_users_set_measure(lab_users *u, lab_measure *m);
void lab_users_start(lab_users *u);
/* No new requests; returns once the ones in flight have ended (bounded by their timeout). */
void lab_users_stop(lab_users *u);
void lab_users_free(lab_users *u);
/* The address user i connects from ("127.1.5.1"). */
void lab_user_address(int i, int nat, char *buf, size_t n);

/* ---- faults (faults.c) ---- */

typedef struct lab_faults lab_faults;
lab_faults *lab_faults_arm(uv_loop_t *loop, const lab_opts *o, lab_topology *t, lab_measure *m);
void lab_faults_free(lab_faults *f);
/* Applies one fault now (also used by `migrate`). */
int lab_fault_apply(lab_topology *t, lab_measure *m, const lab_fault *f);

/* ---- report (report.c) ---- */

void lab_report_table(FILE *out, lab_measure *const *ms, size_t n);
json_t *lab_report_json(lab_measure *const *ms, size_t n, const lab_opts *o, const char *command);
int lab_report_write_json(const char *path, json_t *doc);
int lab_report_write_html(const char *path, lab_measure *const *ms, size_t n, const lab_opts *o, const char *title,
                          const char *command);
/* Creates the directory of path if needed. */
int lab_mkdir_for(const char *path);

#endif
