/* tether: the balancer. `tether -c FILE` runs in the foreground; `tether -t -c FILE` checks a
 * configuration. SIGHUP reloads without dropping a connection; SIGTERM/SIGINT stop gracefully; SIGUSR1
 * reopens the logs. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../lib/util.h"
#include "admin.h"
#include "persist/persist.h"
#include "process.h"
#include "tls/context.h"
#include "worker.h"

#ifndef TETHER_VERSION
#define TETHER_VERSION "0.1.0" /* CMake passes the project's version */
#endif

static tether__control ctl;
static tether__worker *workers;
static char config_path[512];
static uv_signal_t sig_hup, sig_term, sig_int, sig_usr1;
static FILE *error_log;
static char pid_path[512]; /* pid FILE as started with: removed at the end */

static void usage(FILE *out) {
  fprintf(out, "usage: tether -c FILE [-t]\n"
               "  -c, --config FILE   configuration file (nginx syntax; see docs/configuration.md)\n"
               "  -t, --test          check the configuration, print \"configuration OK\" or the errors, and exit\n"
               "  -h, --help          this text\n"
               "  -v, --version       the version\n"
               "  -V                  the version and the libraries it runs with (OpenSSL, libuv)\n"
               "Signals: HUP reloads the configuration, TERM or INT stop gracefully (in-flight requests finish),\n"
               "USR1 reopens the error and access logs.\n");
}

static void log_to_file(tether_log_level level, const char *msg, void *arg) {
  static const char *names[] = {"error", "warn", "info", "debug"};
  FILE *f = arg ? arg : stderr;
  char date[40];
  tether__http_date(tether_now_ms(), date);
  fprintf(f, "%s tether[%d] %s: %s\n", date, (int)getpid(), names[level], msg);
  fflush(f);
}

static tether__config *load(const char *path) {
  tether__config *cf = tether__malloc(sizeof(*cf));
  char err[8192];
  int rc = tether__config_load(path, cf, err, sizeof(err));
  if (rc == 0 && (tether__cookie_key_load(cf, err, sizeof(err)) < 0 || /* loaded, not parsed: files are read */
                  tether__tls_build(cf, err, sizeof(err)) < 0)) {
    tether__config_release(cf);
    rc = -1;
  }
  if (rc < 0) {
    fputs(err, stderr);
    if (error_log && error_log != stderr) fputs(err, error_log);
    free(cf);
    return NULL;
  }
  return cf;
}

/* `tether -t`: values keyed by the key file agree only between instances that share it. */
static void sticky_key_note(const tether__config *cf) {
  char path[1024];
  tether__cookie_key_path(cf, path, sizeof(path));
  for (size_t k = 0; k < cf->nupstreams; k++)
    if (tether__cookie_key_needed(&cf->upstreams[k]))
      fprintf(stderr,
              "note: upstream \"%s\": sticky cookie values are keyed by %s; instances that share clients "
              "need one sticky_secret or the same key file\n",
              cf->upstreams[k].name, path);
}

_Static_assert(sizeof(((tether__worker *)0)->listen_fds) / sizeof(int) >= TETHER__CF_MAX_LISTEN,
               "a worker holds a socket for every listen address");

static int same_listeners(const tether__config *a, const tether__config *b) {
  if (a->nlisten != b->nlisten || a->workers != b->workers) return 0;
  for (size_t i = 0; i < a->nlisten; i++)
    if (strcmp(a->listen[i].text, b->listen[i].text) != 0 || a->listen_backlog[i] != b->listen_backlog[i]) return 0;
  return 1;
}

/* worker_rlimit_nofile N: the soft limit (and the hard one, when N is above it and the process may raise
 * it); without it, the soft limit goes up to the hard one: the default soft limit (often 1024) lets idle
 * connections starve everything else. */
static void apply_nofile(const tether__config *cf) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return;
  struct rlimit want = rl;
  if (cf->rlimit_nofile == 0)
    want.rlim_cur = rl.rlim_max;
  else if ((rlim_t)cf->rlimit_nofile <= rl.rlim_max)
    want.rlim_cur = (rlim_t)cf->rlimit_nofile;
  else
    want.rlim_cur = want.rlim_max = (rlim_t)cf->rlimit_nofile;
  if (want.rlim_cur != rl.rlim_cur || want.rlim_max != rl.rlim_max) {
    if (setrlimit(RLIMIT_NOFILE, &want) < 0 && want.rlim_max != rl.rlim_max) {
      tether__log(TETHER_LOG_WARN,
                  "worker_rlimit_nofile %d: above the hard limit %llu, which this process may not "
                  "raise; using %llu",
                  cf->rlimit_nofile, (unsigned long long)rl.rlim_max, (unsigned long long)rl.rlim_max);
      want.rlim_cur = want.rlim_max = rl.rlim_max;
      setrlimit(RLIMIT_NOFILE, &want);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  tether__log(TETHER_LOG_INFO, "file descriptor limit: %llu (hard %llu)%s", (unsigned long long)rl.rlim_cur,
              (unsigned long long)rl.rlim_max, cf->rlimit_nofile ? " (worker_rlimit_nofile)" : "");
}

/* error_log's level, unless TETHER_LOG_LEVEL in the environment says otherwise. */
static void log_level(const tether__config *cf) {
  if (getenv("TETHER_LOG_LEVEL") == NULL)
    tether_log_set_level(cf->error_log_level >= 0 ? (tether_log_level)cf->error_log_level : TETHER_LOG_INFO);
}

/* worker_processes auto on a machine with more cores than Tether runs workers: not the user's number. */
static void workers_note(const tether__config *cf, FILE *out) {
  if (cf->workers_auto_cores <= cf->workers) return;
  if (out)
    fprintf(out, "note: worker_processes auto: %d cores, %d workers (the most Tether runs)\n", cf->workers_auto_cores,
            cf->workers);
  else
    tether__log(TETHER_LOG_INFO, "worker_processes auto: %d cores, %d workers (the most Tether runs)",
                cf->workers_auto_cores, cf->workers);
}

/* SIGUSR1: the logs again by name (logrotate has moved them). The error log's descriptor is replaced in
 * place (dup2), so threads that are writing to it never see a closed stream. */
static void reopen_logs(void) {
  const tether__config *cf = ctl.rt->cf;
  if (error_log) {
    int fd = open(cf->error_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      tether__log(TETHER_LOG_ERROR, "error_log %s: cannot reopen: %s", cf->error_log, strerror(errno));
    } else {
      fflush(error_log);
      dup2(fd, fileno(error_log));
      close(fd);
    }
  }
  if (tether__access_log_open(cf->access_log) < 0)
    tether__log(TETHER_LOG_ERROR, "access_log %s: cannot reopen", cf->access_log);
  tether__log(TETHER_LOG_INFO, "logs reopened");
}

static void reload(void) {
  tether__log(TETHER_LOG_INFO, "reloading %s", config_path);
  tether__notify("RELOADING=1");
  tether__config *cf = load(config_path);
  if (cf == NULL) {
    tether__log(TETHER_LOG_ERROR, "reload refused: the configuration has errors; the running one stays");
    ctl.reload_failures++;
    ctl.last_reload_failed = 1;
    tether__notify("READY=1");
    return;
  }
  ctl.last_reload_failed = 0;
  if (!same_listeners(ctl.rt->cf, cf))
    tether__log(TETHER_LOG_WARN, "reload: listen addresses and worker_processes change only on restart");
  if (ctl.rt->cf->io_uring != cf->io_uring) tether__log(TETHER_LOG_WARN, "reload: io_uring changes only on restart");
  if (strcmp(ctl.rt->cf->error_log, cf->error_log) != 0)
    tether__log(TETHER_LOG_WARN, "reload: the error_log file changes only on restart (its level changes now)");
  log_level(cf);
  if (tether__access_log_open(cf->access_log) < 0)
    tether__log(TETHER_LOG_ERROR, "access_log %s: cannot open", cf->access_log);
  if (cf->rlimit_nofile != ctl.rt->cf->rlimit_nofile) apply_nofile(cf);
  tether__runtime *rt = tether__runtime_new(cf);
  tether__health_stop(&ctl);
  int admin_moved = strcmp(ctl.rt->cf->admin.text, cf->admin.text) != 0;
  tether__runtime *old = ctl.rt;
  ctl.rt = rt;
  tether__workers_reload(workers, ctl.nworkers, rt);
  tether__health_start(&ctl);
  if (admin_moved) {
    tether__admin_stop(&ctl);
    tether__admin_start(&ctl);
  }
  tether__runtime_unref(old);
  tether__log(TETHER_LOG_INFO, "configuration generation %llu in service", (unsigned long long)rt->generation);
  tether__notify("READY=1");
}

static void on_signal(uv_signal_t *h, int signum) {
  (void)h;
  if (signum == SIGHUP) {
    reload();
    return;
  }
  if (signum == SIGUSR1) {
    reopen_logs();
    return;
  }
  tether__log(TETHER_LOG_INFO, "stopping (signal %d): finishing in-flight requests", signum);
  tether__notify("STOPPING=1");
  tether__health_stop(&ctl);
  tether__admin_stop(&ctl);
  uv_close((uv_handle_t *)&sig_hup, NULL);
  uv_close((uv_handle_t *)&sig_term, NULL);
  uv_close((uv_handle_t *)&sig_int, NULL);
  uv_close((uv_handle_t *)&sig_usr1, NULL);
}

/* Once the ports are bound: the pid file, then (as root, with `user`) the unprivileged user. */
static int become_server(const tether__config *cf) {
  if (cf->pid_file[0] && tether__pid_file_write(cf->pid_file) < 0) return -1;
  snprintf(pid_path, sizeof(pid_path), "%s", cf->pid_file);
  if (cf->user[0] == '\0') return 0;
  char key[1024];
  tether__cookie_key_path(cf, key, sizeof(key));
  const char *files[] = {cf->error_log, cf->access_log, key, cf->pid_file};
  if (tether__drop_privileges(cf->user, cf->group, files, 4) < 0) return -1;
  tether__log(TETHER_LOG_INFO, "running as user %s", cf->user);
  return 0;
}

int main(int argc, char **argv) {
  static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                       {"test", no_argument, NULL, 't'},
                                       {"help", no_argument, NULL, 'h'},
                                       {"version", no_argument, NULL, 'v'},
                                       {NULL, 0, NULL, 0}};
  int test = 0, ch;
  while ((ch = getopt_long(argc, argv, "c:thvV", opts, NULL)) != -1) {
    switch (ch) {
    case 'c':
      snprintf(config_path, sizeof(config_path), "%s", optarg);
      break;
    case 't':
      test = 1;
      break;
    case 'h':
      usage(stdout);
      return 0;
    case 'v':
      printf("tether %s\n", TETHER_VERSION);
      return 0;
    case 'V':
      tether__print_versions(stdout, TETHER_VERSION);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (config_path[0] == '\0' || optind != argc) {
    usage(stderr);
    return 2;
  }
  tether__config *cf = load(config_path);
  if (cf == NULL) return 1;
  if (test) {
    printf("configuration OK\n");
    sticky_key_note(cf);
    workers_note(cf, stderr);
    tether__config_free(cf);
    return 0;
  }
  signal(SIGPIPE, SIG_IGN);
  if (cf->error_log[0] && strcmp(cf->error_log, "stderr") != 0) {
    error_log = fopen(cf->error_log, "a");
    if (error_log == NULL) {
      fprintf(stderr, "error_log %s: cannot open\n", cf->error_log);
      return 1;
    }
  }
  tether_log_set(log_to_file, error_log);
  log_level(cf);
  if (tether__access_log_open(cf->access_log) < 0) {
    fprintf(stderr, "access_log %s: cannot open\n", cf->access_log);
    return 1;
  }
  apply_nofile(cf);
  ctl.loop = uv_default_loop();
  /* caught before any port opens: a HUP or TERM sent as soon as tether answers must not kill it (the
   * callbacks only run once the loop does, after everything below is set up) */
  uv_signal_init(ctl.loop, &sig_hup);
  uv_signal_init(ctl.loop, &sig_term);
  uv_signal_init(ctl.loop, &sig_int);
  uv_signal_start(&sig_hup, on_signal, SIGHUP);
  uv_signal_start(&sig_term, on_signal, SIGTERM);
  uv_signal_start(&sig_int, on_signal, SIGINT);
  uv_signal_init(ctl.loop, &sig_usr1);
  uv_signal_start(&sig_usr1, on_signal, SIGUSR1);
  ctl.nworkers = cf->workers; /* at most TETHER__MAX_WORKERS: the configuration refuses more */
  workers_note(cf, NULL);
  workers = tether__calloc((size_t)ctl.nworkers, sizeof(*workers));
  for (int i = 0; i < ctl.nworkers; i++) {
    for (size_t k = 0; k < cf->nlisten; k++) {
      int fd = tether__listen_socket(&cf->listen[k], cf->listen_backlog[k]);
      if (fd < 0) {
        fprintf(stderr, "listen %s: %s\n", cf->listen[k].text, strerror(-fd));
        return 1;
      }
      workers[i].listen_fds[workers[i].nlisteners++] = fd;
    }
  }
  ctl.rt = tether__runtime_new(cf);
  ctl.workers = workers;
  if (tether__admin_start(&ctl) < 0) return 1;
  if (become_server(cf) < 0) return 1;
  if (tether__workers_start(workers, ctl.nworkers, ctl.rt) < 0) return 1;
  tether__health_start(&ctl);
  tether__log(TETHER_LOG_INFO, "tether %s: %d worker(s), listening on %s", TETHER_VERSION, ctl.nworkers,
              cf->listen[0].text);
  tether__notify("READY=1");
  uv_run(ctl.loop, UV_RUN_DEFAULT);
  tether__workers_stop(workers, ctl.nworkers);
  uv_run(ctl.loop, UV_RUN_DEFAULT);
  uv_loop_close(ctl.loop);
  tether__runtime_unref(ctl.rt);
  tether__runtime_shutdown();
  tether__access_log_close();
  free(workers);
  if (pid_path[0]) tether__pid_file_remove(pid_path);
  tether__log(TETHER_LOG_INFO, "stopped");
  if (error_log) fclose(error_log);
  return 0;
}
