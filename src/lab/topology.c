/* tether-lab: a strategy's topology. The balancer, N tether-apps and the store processes the strategy needs
 * run on free loopback ports in one temporary directory, supervised with libuv. Every child is started
 * in its own session (so Ctrl-C reaches only the lab, which stops them in order) and, through setpriv,
 * with a parent-death signal, so even a crashed lab leaves nothing behind. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lab.h"
#include "tether/store.h"
#include "xalloc.h"

volatile int lab_interrupted; /* set by main.c's signal handler; every wait here ends on it */

#define PG_BIN "/usr/lib/postgresql/15/bin"

const lab_strategy lab_strategies[] = {
    {"sticky-local", LAB_POLICY_STICKY, LAB_STORE_NONE, "memory:", 0, "sticky cookie; sessions in each app's memory"},
    {"iphash-local", LAB_POLICY_IPHASH, LAB_STORE_NONE, "memory:", 0, "ip_hash; sessions in each app's memory"},
    {"chash-bounded-local", LAB_POLICY_CHASH_BOUNDED, LAB_STORE_NONE, "memory:", 0,
     "consistent hash of the client address with bounded load; sessions in each app's memory"},
    {"shared-sqlite", LAB_POLICY_NONE, LAB_STORE_SQLITE, "shared", 1, "round robin; sessions in one SQLite file"},
    {"shared-redis", LAB_POLICY_NONE, LAB_STORE_REDIS, "shared", 1, "round robin; sessions in Redis"},
    {"shared-postgres", LAB_POLICY_NONE, LAB_STORE_POSTGRES, "shared", 1, "round robin; sessions in PostgreSQL"},
    {"replicated-memcached", LAB_POLICY_NONE, LAB_STORE_MEMCACHED, "shared", 1,
     "round robin; sessions on three memcached nodes, two copies each"},
    {"jwt", LAB_POLICY_NONE, LAB_STORE_NONE, "jwt:", 1, "round robin; the session travels in a signed cookie"},
    {"sticky-replicated", LAB_POLICY_STICKY, LAB_STORE_MEMCACHED, "dual", 1,
     "sticky cookie; sessions in memory, written through to replicated memcached"},
    {"shared-redis-cluster", LAB_POLICY_NONE, LAB_STORE_REDIS_CLUSTER, "shared", 1,
     "round robin; sessions in a Redis Cluster of 3 masters and 3 replicas, wait=1"},
};
const size_t lab_nstrategies = sizeof(lab_strategies) / sizeof(lab_strategies[0]);

const lab_strategy *lab_strategy_find(const char *name) {
  for (size_t i = 0; i < lab_nstrategies; i++)
    if (strcmp(lab_strategies[i].name, name) == 0) return &lab_strategies[i];
  return NULL;
}

const char *lab_policy_text(lab_policy p) {
  switch (p) {
  case LAB_POLICY_STICKY:
    return "sticky cookie";
  case LAB_POLICY_IPHASH:
    return "ip_hash";
  case LAB_POLICY_CHASH_BOUNDED:
    return "hash $remote_addr consistent + bounded load";
  default:
    return "round robin";
  }
}

/* ---- every process ever started, for the last-resort kill ---- */

#define MAX_TRACKED 64
static lab_proc *tracked[MAX_TRACKED];

static void track(lab_proc *p) {
  for (int i = 0; i < MAX_TRACKED; i++)
    if (tracked[i] == p) return;
  for (int i = 0; i < MAX_TRACKED; i++)
    if (tracked[i] == NULL) {
      tracked[i] = p;
      return;
    }
}

static void untrack(lab_proc *p) {
  for (int i = 0; i < MAX_TRACKED; i++)
    if (tracked[i] == p) tracked[i] = NULL;
}

void lab_kill_everything(void) {
  for (int i = 0; i < MAX_TRACKED; i++)
    if (tracked[i] && tracked[i]->running && tracked[i]->h.pid > 0) {
      kill(-tracked[i]->h.pid, SIGKILL);
      kill(tracked[i]->h.pid, SIGKILL);
    }
}

/* ---- small helpers ---- */

int lab_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  int port = -1;
  if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0) close(fd);
  return port;
}

static int port_open(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
  close(fd);
  return ok;
}

static void show_tail(const char *log) {
  FILE *f = fopen(log, "r");
  if (f == NULL) return;
  char buf[2048];
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, size > (long)sizeof(buf) - 1 ? size - (long)sizeof(buf) + 1 : 0, SEEK_SET);
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  buf[n] = '\0';
  fclose(f);
  fprintf(stderr, "---- %s (tail) ----\n%s\n----\n", log, buf);
}

static const char *setpriv_path(void) {
  static int checked;
  static const char *path;
  if (!checked) {
    checked = 1;
    if (access("/usr/bin/setpriv", X_OK) == 0) path = "/usr/bin/setpriv";
  }
  return path;
}

/* ---- waiting on the loop ---- */

static void tick_noop(uv_timer_t *t) { (void)t; }
static void free_handle(uv_handle_t *h) { free(h); }

static int wait_for(uv_loop_t *loop, int (*done)(void *), void *arg, int64_t timeout_ms, int honor_interrupt) {
  uint64_t deadline = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
  uv_timer_t *tick = xmalloc(sizeof(*tick));
  uv_timer_init(loop, tick);
  uv_timer_start(tick, tick_noop, 20, 20); /* uv_run(ONCE) returns at least this often */
  int ok = 0;
  for (;;) {
    if (done(arg)) {
      ok = 1;
      break;
    }
    if ((honor_interrupt && lab_interrupted) || uv_hrtime() >= deadline) break;
    uv_run(loop, UV_RUN_ONCE);
  }
  uv_close((uv_handle_t *)tick, free_handle);
  return ok;
}

int lab_wait(uv_loop_t *loop, int (*done)(void *), void *arg, int64_t timeout_ms) {
  return wait_for(loop, done, arg, timeout_ms, 1);
}

/* ---- processes ---- */

static void on_proc_closed(uv_handle_t *h) {
  lab_proc *p = h->data;
  p->closing = 0;
}

static void on_proc_exit(uv_process_t *h, int64_t status, int sig) {
  lab_proc *p = h->data;
  p->running = 0;
  p->exited_ms = uv_now(p->topo->loop);
  p->exit_status = status;
  p->term_signal = sig;
  if (!p->killed && !lab_interrupted)
    fprintf(stderr, "\ntether-lab: %s exited by itself (status %lld, signal %d); log: %s\n", p->name, (long long)status,
            sig, p->log);
  p->closing = 1;
  uv_close((uv_handle_t *)h, on_proc_closed);
}

static void proc_setup(lab_topology *t, lab_proc *p, const char *name, int port, char **argv) {
  memset(p, 0, sizeof(*p));
  p->topo = t;
  snprintf(p->name, sizeof(p->name), "%s", name);
  snprintf(p->log, sizeof(p->log), "%s/%s.log", t->dir, name);
  p->port = port;
  p->argv = argv;
  p->stop_signal = SIGTERM;
}

static int proc_spawn(lab_proc *p) {
  lab_topology *t = p->topo;
  if (p->running || p->closing) {
    fprintf(stderr, "tether-lab: %s is still running\n", p->name);
    return -1;
  }
  int fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    fprintf(stderr, "tether-lab: %s: %s\n", p->log, strerror(errno));
    return -1;
  }
  char *args[48];
  size_t n = 0;
  if (setpriv_path()) {
    args[n++] = (char *)setpriv_path();
    args[n++] = "--pdeathsig";
    args[n++] = "KILL";
    args[n++] = "--";
  }
  for (char **a = p->argv; *a && n < 47; a++) args[n++] = *a;
  args[n] = NULL;
  uv_stdio_container_t io[3];
  io[0].flags = UV_IGNORE;
  io[1].flags = UV_INHERIT_FD;
  io[1].data.fd = fd;
  io[2].flags = UV_INHERIT_FD;
  io[2].data.fd = fd;
  uv_process_options_t po;
  memset(&po, 0, sizeof(po));
  po.exit_cb = on_proc_exit;
  po.file = args[0];
  po.args = args;
  po.stdio = io;
  po.stdio_count = 3;
  po.flags = UV_PROCESS_DETACHED;
  if (p->as_postgres && geteuid() == 0) {
    struct passwd *pw = getpwnam("postgres");
    if (pw == NULL) {
      close(fd);
      fprintf(stderr, "tether-lab: PostgreSQL refuses to run as root and there is no postgres user\n");
      return -1;
    }
    po.flags |= UV_PROCESS_SETUID | UV_PROCESS_SETGID;
    po.uid = pw->pw_uid;
    po.gid = pw->pw_gid;
  }
  p->h.data = p;
  int rc = uv_spawn(t->loop, &p->h, &po);
  close(fd);
  if (rc < 0) {
    fprintf(stderr, "tether-lab: cannot start %s (%s): %s\n", p->name, p->argv[0], uv_strerror(rc));
    p->closing = 1;
    uv_close((uv_handle_t *)&p->h, on_proc_closed);
    return -1;
  }
  p->running = 1;
  p->killed = 0;
  p->starts++;
  p->spawned_ms = uv_now(p->topo->loop);
  track(p);
  return 0;
}

typedef struct ready_wait {
  lab_proc *p;
  int port;
} ready_wait;

static int ready_done(void *arg) {
  ready_wait *w = arg;
  return !w->p->running || port_open(w->port);
}

/* Waits for the process's port (or a second one, e.g. the admin port). */
static int proc_wait_port(lab_proc *p, int port, int timeout_ms) {
  ready_wait w = {p, port};
  int ok = lab_wait(p->topo->loop, ready_done, &w, timeout_ms);
  if (ok && p->running) return 0;
  if (lab_interrupted) return -1;
  fprintf(stderr, "tether-lab: %s %s\n", p->name,
          p->running ? "did not open its port in time" : "exited while starting");
  show_tail(p->log);
  return -1;
}

int lab_proc_kill(lab_proc *p, int sig) {
  if (!p->running) return -1;
  p->killed = 1;
  /* the whole group: gunicorn's worker dies with its master, as a container's processes do */
  kill(-p->h.pid, sig);
  return kill(p->h.pid, sig) == 0 || errno == ESRCH ? 0 : -1;
}

int lab_proc_restart(lab_proc *p) { return proc_spawn(p); }

typedef struct procs_wait {
  lab_proc **ps;
  size_t n;
  int closed_too;
} procs_wait;

static int procs_done(void *arg) {
  procs_wait *w = arg;
  for (size_t i = 0; i < w->n; i++)
    if (w->ps[i]->running || (w->closed_too && w->ps[i]->closing)) return 0;
  return 1;
}

/* Graceful stop, then SIGKILL to the process groups of the ones still there. */
static void stop_procs(uv_loop_t *loop, lab_proc **ps, size_t n, int grace_ms) {
  for (size_t i = 0; i < n; i++)
    if (ps[i]->running) {
      ps[i]->killed = 1;
      kill(ps[i]->h.pid, ps[i]->stop_signal);
    }
  procs_wait w = {ps, n, 0};
  if (!wait_for(loop, procs_done, &w, grace_ms, 0)) {
    for (size_t i = 0; i < n; i++)
      if (ps[i]->running) {
        kill(-ps[i]->h.pid, SIGKILL);
        kill(ps[i]->h.pid, SIGKILL);
      }
  }
  w.closed_too = 1;
  wait_for(loop, procs_done, &w, 5000, 0);
}

/* Runs argv to its end (initdb); its exit status or -1. */
static int run_to_end(lab_topology *t, const char *name, char **argv, int as_postgres, int timeout_ms) {
  lab_proc p;
  proc_setup(t, &p, name, 0, argv);
  p.as_postgres = as_postgres;
  if (proc_spawn(&p) < 0) {
    lab_argv_free(argv);
    return -1;
  }
  p.killed = 1; /* its exit is expected */
  lab_proc *one = &p;
  procs_wait w = {&one, 1, 1};
  if (!lab_wait(t->loop, procs_done, &w, timeout_ms)) stop_procs(t->loop, &one, 1, 100);
  untrack(&p);
  lab_argv_free(argv);
  int rc = p.term_signal ? -1 : (int)p.exit_status;
  if (rc != 0 && !lab_interrupted) show_tail(p.log);
  return rc;
}

/* ---- the store processes ---- */

static int start_redis(lab_topology *t) {
  char port[16], dir[300];
  lab_proc *p = &t->nodes[t->nnodes];
  int pt = lab_free_port();
  snprintf(port, sizeof(port), "%d", pt);
  snprintf(dir, sizeof(dir), "%s/redis", t->dir);
  mkdir(dir, 0755);
  proc_setup(t, p, "redis", pt,
             lab_argv_dup("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                          "--dir", dir, "--daemonize", "no", NULL));
  t->nnodes++;
  if (proc_spawn(p) < 0 || proc_wait_port(p, pt, 10000) < 0) return -1;
  snprintf(t->shared, sizeof(t->shared), "redis://127.0.0.1:%d", pt);
  return 0;
}

/* Redis Cluster: redis-master1..3 and redis-replica1..3 (redis-cli makes the first three given masters on one
 * host, and the wait below checks it). No persistence, as for shared-redis: a master's sessions survive its
 * death on its replica only (the apps write with wait=1). Coverage is not required, so the other masters'
 * slots keep being served while a failover runs. */
static int cluster_node(lab_topology *t, const char *name, char *hosts, size_t cap) {
  char port[16], bus[16], dir[300];
  lab_proc *p = &t->nodes[t->nnodes];
  int pt = lab_free_port();
  snprintf(port, sizeof(port), "%d", pt);
  snprintf(bus, sizeof(bus), "%d", lab_free_port()); /* port + 10000 may be taken */
  snprintf(dir, sizeof(dir), "%s/%s", t->dir, name);
  mkdir(dir, 0755);
  proc_setup(t, p, name, pt,
             lab_argv_dup("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                          "--dir", dir, "--daemonize", "no", "--cluster-enabled", "yes", "--cluster-config-file",
                          "nodes.conf", "--cluster-node-timeout", "1000", "--cluster-port", bus,
                          "--cluster-require-full-coverage", "no", NULL));
  t->nnodes++;
  size_t l = strlen(hosts);
  snprintf(hosts + l, cap - l, "%s127.0.0.1:%d", l ? " " : "", pt);
  return proc_spawn(p);
}

static int start_redis_cluster(lab_topology *t) {
  char hosts[200] = "", seeds[200] = "", name[32];
  for (int i = 0; i < 6; i++) {
    snprintf(name, sizeof(name), "redis-%s%d", i < 3 ? "master" : "replica", i % 3 + 1);
    if (cluster_node(t, name, hosts, sizeof(hosts)) < 0) return -1;
  }
  for (int i = 0; i < 6; i++)
    if (proc_wait_port(&t->nodes[i], t->nodes[i].port, 10000) < 0) return -1;
  char script[1500];
  /* create, then wait until every node sees all six connected and the cluster ok, every replica is in sync,
   * and the first three nodes are the masters */
  snprintf(script, sizeof(script),
           "redis-cli --cluster create %s --cluster-replicas 1 --cluster-yes >/dev/null || exit 1\n"
           "for _ in $(seq 200); do ok=1; n=0\n"
           "  for h in %s; do n=$((n+1)); p=${h#*:}\n"
           "    redis-cli -p $p cluster info | grep -q cluster_state:ok || ok=0\n"
           "    [ $(redis-cli -p $p cluster nodes | grep -c connected) -eq 6 ] || ok=0\n"
           "    redis-cli -p $p info replication | grep -q master_link_status:down && ok=0\n"
           "    role=$(redis-cli -p $p role | head -n 1)\n"
           "    if [ $n -le 3 ]; then [ \"$role\" = master ] || ok=0; else [ \"$role\" = slave ] || ok=0; fi\n"
           "  done\n"
           "  [ $ok = 1 ] && exit 0; sleep 0.1\n"
           "done\necho 'the cluster did not become ok in 20 s'; exit 1\n",
           hosts, hosts);
  if (run_to_end(t, "cluster-create", lab_argv_dup("/bin/sh", "-c", script, NULL), 0, 60000) != 0) {
    fprintf(stderr, "tether-lab: redis-cli --cluster create failed\n");
    return -1;
  }
  for (int i = 0; i < 3; i++) {
    size_t l = strlen(seeds);
    snprintf(seeds + l, sizeof(seeds) - l, "%s127.0.0.1:%d", i ? "," : "", t->nodes[i].port);
  }
  snprintf(t->shared, sizeof(t->shared), "redis-cluster://%s?wait=1", seeds);
  return 0;
}

int lab_topology_reshard(lab_topology *t, int slots) {
  lab_proc *from = lab_topology_find(t, "redis-master1"), *to = lab_topology_find(t, "redis-master2");
  lab_proc *p = &t->tool;
  if (from == NULL || to == NULL || p->running || p->closing) return -1;
  char script[600];
  snprintf(script, sizeof(script),
           "from=$(redis-cli -p %d cluster myid) && to=$(redis-cli -p %d cluster myid) && "
           "exec redis-cli --cluster reshard 127.0.0.1:%d --cluster-from \"$from\" --cluster-to \"$to\" "
           "--cluster-slots %d --cluster-yes",
           from->port, to->port, to->port, slots);
  lab_argv_free(p->argv);
  proc_setup(t, p, "reshard", 0, lab_argv_dup("/bin/sh", "-c", script, NULL));
  if (proc_spawn(p) < 0) return -1;
  p->killed = 1; /* its exit is expected */
  return 0;
}

static int start_memcached(lab_topology *t) {
  char urls[300] = "";
  for (int i = 0; i < 3; i++) {
    char port[16], name[16];
    lab_proc *p = &t->nodes[t->nnodes];
    int pt = lab_free_port();
    snprintf(port, sizeof(port), "%d", pt);
    snprintf(name, sizeof(name), "memcached%d", i + 1);
    if (geteuid() == 0)
      proc_setup(t, p, name, pt,
                 lab_argv_dup("memcached", "-l", "127.0.0.1", "-p", port, "-U", "0", "-m", "64", "-u", "root", NULL));
    else
      proc_setup(t, p, name, pt, lab_argv_dup("memcached", "-l", "127.0.0.1", "-p", port, "-U", "0", "-m", "64", NULL));
    t->nnodes++;
    if (proc_spawn(p) < 0) return -1;
    size_t l = strlen(urls);
    snprintf(urls + l, sizeof(urls) - l, "%s127.0.0.1:%d", i ? "," : "", pt);
  }
  for (int i = 0; i < t->nnodes; i++)
    if (proc_wait_port(&t->nodes[i], t->nodes[i].port, 10000) < 0) return -1;
  snprintf(t->shared, sizeof(t->shared), "memcached://%s?replicas=2", urls);
  return 0;
}

static int start_postgres(lab_topology *t) {
  char pgdir[300], data[320], port[16];
  snprintf(pgdir, sizeof(pgdir), "%s/pg", t->dir);
  snprintf(data, sizeof(data), "%s/data", pgdir);
  mkdir(pgdir, 0700);
  if (geteuid() == 0) {
    struct passwd *pw = getpwnam("postgres");
    if (pw == NULL || chown(pgdir, pw->pw_uid, pw->pw_gid) < 0) {
      fprintf(stderr, "tether-lab: PostgreSQL refuses to run as root and the postgres user is missing\n");
      return -1;
    }
  }
  if (run_to_end(
          t, "initdb",
          lab_argv_dup(PG_BIN "/initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", NULL),
          1, 60000) != 0) {
    fprintf(stderr, "tether-lab: initdb failed\n");
    return -1;
  }
  lab_proc *p = &t->nodes[t->nnodes];
  int pt = lab_free_port();
  snprintf(port, sizeof(port), "%d", pt);
  proc_setup(t, p, "postgres", pt,
             lab_argv_dup(PG_BIN "/postgres", "-D", data, "-p", port, "-k", pgdir, "-c", "listen_addresses=127.0.0.1",
                          "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c",
                          "max_connections=200", NULL));
  p->as_postgres = 1;
  p->stop_signal = SIGINT; /* fast shutdown */
  t->nnodes++;
  if (proc_spawn(p) < 0 || proc_wait_port(p, pt, 30000) < 0) return -1;
  snprintf(t->shared, sizeof(t->shared), "postgres://postgres@127.0.0.1:%d/postgres", pt);
  return 0;
}

/* Opens the store once before the apps do, so the schema (SQLite, PostgreSQL) is created by one process,
 * and checks that it answers: the port opens before PostgreSQL accepts sessions. */
static int check_store(lab_topology *t) {
  if (t->shared[0] == '\0') return 0;
  tether_store *s = NULL;
  int rc = tether_store_open(t->shared, &s);
  for (int i = 0; rc == 0 && i < 300 && !lab_interrupted; i++) {
    rc = tether_store_ping(s);
    if (rc == 0) break;
    usleep(100000);
    if (i < 299) rc = 0;
  }
  if (rc < 0) fprintf(stderr, "tether-lab: the store %s does not answer: %s\n", t->shared, tether_last_error());
  tether_store_close(s);
  return rc < 0 ? -1 : 0;
}

/* ---- apps and balancer ---- */

static void policy_lines(lab_topology *t) {
  switch (t->st->policy) {
  case LAB_POLICY_STICKY:
    snprintf(t->policy_conf, sizeof(t->policy_conf), "    sticky cookie srv_id;\n");
    break;
  case LAB_POLICY_IPHASH:
    snprintf(t->policy_conf, sizeof(t->policy_conf), "    ip_hash;\n");
    break;
  case LAB_POLICY_CHASH_BOUNDED:
    snprintf(t->policy_conf, sizeof(t->policy_conf), "    hash $remote_addr consistent;\n    hash_balance_factor %d;\n",
             t->o->balance_factor);
    break;
  default:
    t->policy_conf[0] = '\0';
  }
}

static int write_conf(lab_topology *t) {
  char tmp[620];
  snprintf(tmp, sizeof(tmp), "%s.new", t->conf);
  FILE *f = fopen(tmp, "w");
  if (f == NULL) {
    fprintf(stderr, "tether-lab: %s: %s\n", tmp, strerror(errno));
    return -1;
  }
  fprintf(f,
          "# written by tether-lab (strategy %s)\n"
          "worker_processes 2;\nlisten 127.0.0.1:%d;\nadmin_listen 127.0.0.1:%d;\n"
          "sticky_key_file sticky.key;\n\nupstream apps {\n",
          t->st->name, t->port, t->admin_port);
  /* the edge's count of lost sessions, against the users' own; a login regenerates its id on purpose */
  fprintf(f, "    session_monitor %s expected=/login,=/logout;\n", lab_app_cookie(t->o->app));
  /* a failed connection takes an app out for 3 s (nginx's default is 10 s): a restarted app is back soon */
  for (int i = 0; i < t->napps; i++)
    fprintf(f, "    server 127.0.0.1:%d max_fails=1 fail_timeout=3s;\n", t->apps[i].port);
  /* Node's one thread and gunicorn's one worker answer a health check late on a busy machine: a dead one
   * still fails its requests at once (max_fails=1), but a slow one is not taken for dead */
  int patient = t->o->app != LAB_APP_TETHER;
  fprintf(f,
          "%s"
          "    health_check uri=/health interval=500ms timeout=%s fails=%d passes=1;\n"
          "    keepalive 32;\n}\n\nlocation / { proxy_pass http://apps; }\n",
          t->policy_conf, patient ? "2s" : "1s", patient ? 2 : 1);
  fclose(f);
  return rename(tmp, t->conf);
}

int lab_topology_reload(lab_topology *t, const char *policy_conf) {
  snprintf(t->policy_conf, sizeof(t->policy_conf), "%s", policy_conf);
  if (write_conf(t) < 0 || !t->balancer.running) return -1;
  return kill(t->balancer.h.pid, SIGHUP) == 0 ? 0 : -1;
}

static int bin_dir(const lab_opts *o, char *out, size_t n) {
  if (o->bin) {
    snprintf(out, n, "%s", o->bin);
    return 0;
  }
  char self[512];
  ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (len <= 0) return -1;
  self[len] = '\0';
  char *slash = strrchr(self, '/');
  if (slash) *slash = '\0';
  snprintf(out, n, "%s", self);
  return 0;
}

static void random_hex(char *out, size_t bytes) {
  unsigned char r[32];
  if (bytes > sizeof(r)) bytes = sizeof(r);
  if (getrandom(r, bytes, 0) != (ssize_t)bytes)
    for (size_t i = 0; i < bytes; i++) r[i] = (unsigned char)rand();
  for (size_t i = 0; i < bytes; i++) sprintf(out + 2 * i, "%02x", r[i]);
}
/* The balancer next to tether-lab (a build tree), or in ../sbin (an installed one: tether is in sbin). */
static void balancer_path(const lab_topology *t, char *out, size_t cap) {
  snprintf(out, cap, "%s/tether", t->bin);
  if (access(out, X_OK) != 0) snprintf(out, cap, "%s/../sbin/tether", t->bin);
}

static int start_all(lab_topology *t) {
  switch (t->st->store) {
  case LAB_STORE_SQLITE:
    snprintf(t->shared, sizeof(t->shared), "sqlite:%s/sessions.db", t->dir);
    break;
  case LAB_STORE_REDIS:
    if (start_redis(t) < 0) return -1;
    break;
  case LAB_STORE_POSTGRES:
    if (start_postgres(t) < 0) return -1;
    break;
  case LAB_STORE_MEMCACHED:
    if (start_memcached(t) < 0) return -1;
    break;
  case LAB_STORE_REDIS_CLUSTER:
    if (start_redis_cluster(t) < 0) return -1;
    break;
  default:
    break;
  }
  if (check_store(t) < 0) return -1;
  if (strcmp(t->st->sessions, "shared") == 0)
    snprintf(t->sessions, sizeof(t->sessions), "%s", t->shared);
  else if (strcmp(t->st->sessions, "dual") == 0)
    snprintf(t->sessions, sizeof(t->sessions), "dual:memory:+%s", t->shared);
  else
    snprintf(t->sessions, sizeof(t->sessions), "%s", t->st->sessions);

  for (int i = 0; i < t->napps; i++) {
    char name[16];
    snprintf(name, sizeof(name), "app%d", i + 1);
    proc_setup(t, &t->apps[i], name, lab_free_port(), NULL);
    if (lab_app_argv(t, &t->apps[i], i, t->sessions) < 0 || proc_spawn(&t->apps[i]) < 0) return -1;
  }
  for (int i = 0; i < t->napps; i++)
    if (proc_wait_port(&t->apps[i], t->apps[i].port, 20000) < 0) return -1;

  t->port = t->o->listen_port > 0 ? t->o->listen_port : lab_free_port();
  t->admin_port = lab_free_port();
  snprintf(t->conf, sizeof(t->conf), "%s/tether.conf", t->dir);
  policy_lines(t);
  if (write_conf(t) < 0) return -1;
  char exe[600];
  balancer_path(t, exe, sizeof(exe));
  proc_setup(t, &t->balancer, "balancer", t->port, lab_argv_dup(exe, "-c", t->conf, NULL));
  if (proc_spawn(&t->balancer) < 0 || proc_wait_port(&t->balancer, t->port, 10000) < 0 ||
      proc_wait_port(&t->balancer, t->admin_port, 10000) < 0)
    return -1;
  return 0;
}

int lab_topology_start(lab_topology *t, uv_loop_t *loop, const lab_strategy *st, const lab_opts *o) {
  memset(t, 0, sizeof(*t));
  t->loop = loop;
  t->st = st;
  t->o = o;
  t->napps = o->apps;
  if (bin_dir(o, t->bin, sizeof(t->bin)) < 0) {
    fprintf(stderr, "tether-lab: cannot find the binaries (use --bin DIR)\n");
    return -1;
  }
  char exe[600];
  balancer_path(t, exe, sizeof(exe));
  if (access(exe, X_OK) != 0) {
    fprintf(stderr, "tether-lab: %s is missing (build it, or use --bin DIR)\n", exe);
    return -1;
  }
  const char *tmp = getenv("TMPDIR");
  snprintf(t->dir, sizeof(t->dir), "%s/tether-lab-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", st->name);
  if (mkdtemp(t->dir) == NULL) {
    fprintf(stderr, "tether-lab: mkdtemp: %s\n", strerror(errno));
    return -1;
  }
  chmod(t->dir, 0755); /* the postgres user must reach its directory */
  random_hex(t->secret, 16);
  if (start_all(t) < 0) {
    lab_topology_stop(t);
    return -1;
  }
  return 0;
}

lab_proc *lab_topology_find(lab_topology *t, const char *name) {
  if (strcmp(name, "balancer") == 0) return &t->balancer;
  for (int i = 0; i < t->napps; i++)
    if (strcmp(t->apps[i].name, name) == 0) return &t->apps[i];
  for (int i = 0; i < t->nnodes; i++)
    if (strcmp(t->nodes[i].name, name) == 0) return &t->nodes[i];
  return NULL;
}

int lab_app_redeploy(lab_topology *t, int i, const char *sessions) {
  lab_proc *p = &t->apps[i], *one = p;
  stop_procs(t->loop, &one, 1, 10000);
  if (lab_app_argv(t, p, i, sessions) < 0 || proc_spawn(p) < 0) return -1;
  return proc_wait_port(p, p->port, 15000);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

/* Failed requests: what the balancer and the apps logged about them (at most 4 lines each), so that a run's
 * errors come with their reasons. */
static void explain_log(const lab_proc *p) {
  FILE *f = p->log[0] ? fopen(p->log, "r") : NULL;
  if (f == NULL) return;
  char line[1024];
  int shown = 0;
  while (shown < 4 && fgets(line, sizeof(line), f))
    if (strstr(line, "unavailable") || strstr(line, "failed") || strstr(line, "timed out") || strstr(line, "error")) {
      if (shown++ == 0) fprintf(stderr, "tether-lab: %s logged:\n", p->name);
      fprintf(stderr, "  %s", line);
    }
  fclose(f);
}

void lab_topology_explain(const lab_topology *t) {
  explain_log(&t->balancer);
  for (int i = 0; i < t->napps; i++) explain_log(&t->apps[i]);
}

/* Sanitizer builds: a report in a process's log is a bug found under the lab's load. */
static void check_log(lab_topology *t, const lab_proc *p) {
  if (p->log[0] == '\0') return;
  FILE *f = fopen(p->log, "r");
  if (f == NULL) return;
  char line[1024];
  int found = 0;
  while (!found && fgets(line, sizeof(line), f))
    found = strstr(line, "AddressSanitizer") || strstr(line, "LeakSanitizer") || strstr(line, "runtime error:");
  fclose(f);
  if (!found) return;
  t->sanitizer_reports++;
  fprintf(stderr, "\ntether-lab: %s has a sanitizer report\n", p->name);
  show_tail(p->log);
}

void lab_topology_stop(lab_topology *t) {
  if (t->loop == NULL) return;
  lab_proc *ps[2 + LAB_MAX_APPS + LAB_MAX_NODES];
  size_t n = 0;
  ps[n++] = &t->balancer;
  stop_procs(t->loop, ps, n, 5000);
  n = 0;
  for (int i = 0; i < t->napps; i++) ps[n++] = &t->apps[i];
  stop_procs(t->loop, ps, n, 5000);
  n = 0;
  ps[n++] = &t->tool;
  for (int i = 0; i < t->nnodes; i++) ps[n++] = &t->nodes[i];
  stop_procs(t->loop, ps, n, 10000);
  check_log(t, &t->balancer);
  for (int i = 0; i < t->napps; i++) check_log(t, &t->apps[i]);
  untrack(&t->balancer);
  lab_argv_free(t->balancer.argv);
  t->balancer.argv = NULL;
  for (int i = 0; i < LAB_MAX_APPS; i++) {
    untrack(&t->apps[i]);
    lab_argv_free(t->apps[i].argv);
    t->apps[i].argv = NULL;
  }
  untrack(&t->tool);
  lab_argv_free(t->tool.argv);
  t->tool.argv = NULL;
  for (int i = 0; i < LAB_MAX_NODES; i++) {
    untrack(&t->nodes[i]);
    lab_argv_free(t->nodes[i].argv);
    t->nodes[i].argv = NULL;
  }
  if (t->dir[0] && !t->o->keep && strstr(t->dir, "tether-lab-"))
    nftw(t->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  else if (t->dir[0] && t->o->keep)
    fprintf(stderr, "tether-lab: kept %s\n", t->dir);
  t->loop = NULL;
}

int lab_topology_add_store(lab_topology *t, lab_store_kind kind) {
  int rc = -1;
  switch (kind) {
  case LAB_STORE_REDIS:
    rc = start_redis(t);
    break;
  case LAB_STORE_MEMCACHED:
    rc = start_memcached(t);
    break;
  case LAB_STORE_POSTGRES:
    rc = start_postgres(t);
    break;
  case LAB_STORE_SQLITE:
    snprintf(t->shared, sizeof(t->shared), "sqlite:%s/sessions.db", t->dir);
    rc = 0;
    break;
  default:
    break;
  }
  return rc < 0 ? -1 : check_store(t);
}
