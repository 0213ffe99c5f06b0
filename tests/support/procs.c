/* Test support: real servers on loopback ports, in temporary directories. */
#include "procs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int tt_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
    perror("tt_free_port");
    abort();
  }
  close(fd);
  return ntohs(a.sin_port);
}

char *tt_tmpdir(const char *tag) {
  const char *base = getenv("TMPDIR");
  char *path = malloc(512);
  snprintf(path, 512, "%s/tether-test-%s-XXXXXX", base && *base ? base : "/tmp", tag);
  if (mkdtemp(path) == NULL) {
    perror("mkdtemp");
    abort();
  }
  chmod(path, 0755);
  return path;
}

void tt_rmrf(const char *dir) {
  if (dir == NULL || strncmp(dir, "/", 1) != 0 || strstr(dir, "tether-test-") == NULL) return;
  tt_system("rm -rf '%s'", dir);
}

int tt_system(const char *fmt, ...) {
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof(cmd), fmt, ap);
  va_end(ap);
  int st = system(cmd);
  if (st == -1) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

pid_t tt_spawn(char *const argv[], const char *logfile, const char *user) {
  struct passwd *pw = NULL;
  if (user) {
    pw = getpwnam(user);
    if (pw == NULL) {
      fprintf(stderr, "tt_spawn: no user %s\n", user);
      return -1;
    }
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    int fd = open(logfile ? logfile : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0) dup2(nul, 0);
    if (pw && (setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)) _exit(126);
    if (pw) prctl(PR_SET_PDEATHSIG, SIGKILL); /* changing credentials cleared it */
    if (getppid() != parent) _exit(127);
    execvp(argv[0], argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  return pid;
}

void tt_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

int tt_wait_port(int port, int timeout_ms) {
  for (int waited = 0; waited <= timeout_ms; waited += 20) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    if (ok) return 1;
    tt_sleep_ms(20);
  }
  return 0;
}

void tt_kill(pid_t pid, int sig) {
  if (pid <= 0) return;
  kill(pid, sig);
  for (int i = 0; i < 1000; i++) {
    pid_t r = waitpid(pid, NULL, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return;
    tt_sleep_ms(10);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

static void show_log(const char *dir) {
  fprintf(stderr, "---- %s/server.log (tail) ----\n", dir);
  tt_system("tail -n 30 '%s/server.log' >&2", dir);
}

static int start(tt_server *s, const char *kind, char *const argv[], const char *user, int timeout_ms) {
  char log[512];
  snprintf(log, sizeof(log), "%s/server.log", s->dir);
  snprintf(s->kind, sizeof(s->kind), "%s", kind);
  s->pid = tt_spawn(argv, log, user);
  if (s->pid < 0 || !tt_wait_port(s->port, timeout_ms)) {
    fprintf(stderr, "could not start %s on port %d\n", kind, s->port);
    show_log(s->dir);
    if (s->pid > 0) tt_kill(s->pid, SIGKILL);
    s->pid = 0;
    return -1;
  }
  return 0;
}

static void prepare(tt_server *s, const char *tag, int port) {
  if (s->dir[0] == '\0') {
    char *d = tt_tmpdir(tag);
    snprintf(s->dir, sizeof(s->dir), "%s", d);
    free(d);
  }
  s->port = port ? port : tt_free_port();
}

int tt_redis_start(tt_server *s, int port) {
  prepare(s, "redis", port);
  char p[16];
  snprintf(p, sizeof(p), "%d", s->port);
  char *argv[] = {"redis-server", "--port", p,       "--bind", "127.0.0.1",   "--save", "",
                  "--appendonly", "no",     "--dir", s->dir,   "--daemonize", "no",     NULL};
  snprintf(s->url, sizeof(s->url), "redis://127.0.0.1:%d", s->port);
  return start(s, "redis", argv, NULL, 10000);
}

int tt_redis_start_replica(tt_server *s, int port, int master_port) {
  prepare(s, "redis", port);
  char p[16], mp[16];
  snprintf(p, sizeof(p), "%d", s->port);
  snprintf(mp, sizeof(mp), "%d", master_port);
  char *argv[] = {"redis-server", "--port", p,       "--bind", "127.0.0.1",   "--save", "",
                  "--appendonly", "no",     "--dir", s->dir,   "--daemonize", "no",     "--replicaof",
                  "127.0.0.1",    mp,       NULL};
  snprintf(s->url, sizeof(s->url), "redis://127.0.0.1:%d", s->port);
  return start(s, "redis", argv, NULL, 10000);
}

int tt_redis_cluster_node_start(tt_server *s, int port) {
  prepare(s, "rcluster", port);
  char p[16], bus[16];
  snprintf(p, sizeof(p), "%d", s->port);
  snprintf(bus, sizeof(bus), "%d", tt_free_port()); /* port + 10000 may be taken or out of range */
  char *argv[] = {"redis-server",
                  "--port",
                  p,
                  "--bind",
                  "127.0.0.1",
                  "--save",
                  "",
                  "--appendonly",
                  "no",
                  "--dir",
                  s->dir,
                  "--daemonize",
                  "no",
                  "--cluster-enabled",
                  "yes",
                  "--cluster-config-file",
                  "nodes.conf",
                  "--cluster-node-timeout",
                  "1000",
                  "--cluster-port",
                  bus,
                  NULL};
  snprintf(s->url, sizeof(s->url), "redis-cluster://127.0.0.1:%d", s->port);
  return start(s, "redis", argv, NULL, 10000);
}

int tt_redis_cluster_start(tt_server *nodes, int masters, int replicas) {
  int n = masters * (1 + replicas);
  char hosts[2048] = "";
  for (int i = 0; i < n; i++) {
    if (tt_redis_cluster_node_start(&nodes[i], 0) != 0) return -1;
    size_t len = strlen(hosts);
    snprintf(hosts + len, sizeof(hosts) - len, " 127.0.0.1:%d", nodes[i].port);
  }
  if (tt_system("redis-cli --cluster create%s --cluster-replicas %d --cluster-yes >%s/create.log 2>&1", hosts, replicas,
                nodes[0].dir) != 0) {
    fprintf(stderr, "redis-cli --cluster create failed\n");
    tt_system("tail -n 20 %s/create.log >&2", nodes[0].dir);
    return -1;
  }
  /* every node must see the whole cluster as ok, and every replica be in sync, before a test starts */
  for (int waited = 0; waited < 20000; waited += 100) {
    int ok = 1;
    for (int i = 0; i < n && ok; i++)
      ok = tt_system("redis-cli -p %d cluster info | grep -q 'cluster_state:ok' && "
                     "[ $(redis-cli -p %d cluster nodes | grep -c connected) -eq %d ] && "
                     "! redis-cli -p %d info replication | grep -q 'master_link_status:down'",
                     nodes[i].port, nodes[i].port, n, nodes[i].port) == 0;
    if (ok) return 0;
    tt_sleep_ms(100);
  }
  fprintf(stderr, "the cluster did not become ok within 20 s\n");
  return -1;
}

int tt_sentinel_start(tt_server *s, int port, const char *master_name, int master_port, int quorum) {
  prepare(s, "sentinel", port);
  char conf[512];
  snprintf(conf, sizeof(conf), "%s/sentinel.conf", s->dir);
  FILE *f = fopen(conf, "w");
  if (f == NULL) return -1;
  fprintf(f,
          "port %d\nbind 127.0.0.1\ndir %s\n"
          "sentinel monitor %s 127.0.0.1 %d %d\n"
          "sentinel down-after-milliseconds %s 1000\n"
          "sentinel failover-timeout %s 5000\n"
          "sentinel parallel-syncs %s 1\n",
          s->port, s->dir, master_name, master_port, quorum, master_name, master_name, master_name);
  fclose(f);
  char *argv[] = {"redis-sentinel", conf, NULL};
  snprintf(s->url, sizeof(s->url), "127.0.0.1:%d", s->port);
  return start(s, "sentinel", argv, NULL, 10000);
}

int tt_memcached_start(tt_server *s, int port) {
  prepare(s, "memcached", port);
  char p[16];
  snprintf(p, sizeof(p), "%d", s->port);
  char *argv[] = {"memcached", "-l", "127.0.0.1", "-p", p, "-U", "0", "-m", "64", "-u", "root", NULL};
  snprintf(s->url, sizeof(s->url), "memcached://127.0.0.1:%d", s->port);
  return start(s, "memcached", argv, NULL, 10000);
}

int tt_postgres_start(tt_server *s, int port) {
  int fresh = s->dir[0] == '\0';
  prepare(s, "postgres", port);
  struct passwd *pw = getpwnam("postgres");
  if (pw == NULL) {
    fprintf(stderr, "tt_postgres_start: no postgres user (is the postgresql package installed?)\n");
    return -1;
  }
  if (chown(s->dir, pw->pw_uid, pw->pw_gid) < 0) return -1;
  const char *bin = "/usr/lib/postgresql/15/bin";
  if (fresh || access(s->dir, F_OK) == 0) {
    char data[600];
    snprintf(data, sizeof(data), "%s/data/PG_VERSION", s->dir);
    if (access(data, F_OK) != 0 &&
        tt_system("runuser -u postgres -- %s/initdb -D '%s/data' -A trust -U postgres --no-sync -E UTF8 "
                  ">'%s/initdb.log' 2>&1",
                  bin, s->dir, s->dir) != 0) {
      fprintf(stderr, "initdb failed, see %s/initdb.log\n", s->dir);
      tt_system("tail -n 20 '%s/initdb.log' >&2", s->dir);
      return -1;
    }
  }
  char p[16], exe[128], data[300];
  snprintf(p, sizeof(p), "%d", s->port);
  snprintf(exe, sizeof(exe), "%s/postgres", bin);
  snprintf(data, sizeof(data), "%s/data", s->dir);
  char *argv[] = {exe,
                  "-D",
                  data,
                  "-p",
                  p,
                  "-k",
                  s->dir,
                  "-c",
                  "listen_addresses=127.0.0.1",
                  "-c",
                  "fsync=off",
                  "-c",
                  "synchronous_commit=off",
                  "-c",
                  "full_page_writes=off",
                  NULL};
  snprintf(s->url, sizeof(s->url), "postgres://postgres@127.0.0.1:%d/postgres", s->port);
  char log[512];
  snprintf(log, sizeof(log), "%s/server.log", s->dir);
  int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd >= 0) {
    if (fchown(fd, pw->pw_uid, pw->pw_gid) < 0) perror("fchown");
    close(fd);
  }
  if (start(s, "postgres", argv, "postgres", 30000) != 0) return -1;
  /* The port opens before the server accepts sessions ("the database system is starting up"). */
  for (int waited = 0; waited < 30000; waited += 50) {
    if (tt_system("%s/pg_isready -q -h 127.0.0.1 -p %d -t 2", bin, s->port) == 0) return 0;
    tt_sleep_ms(50);
  }
  fprintf(stderr, "postgres on port %d is not ready after 30 s\n", s->port);
  show_log(s->dir);
  tt_kill(s->pid, SIGKILL);
  s->pid = 0;
  return -1;
}

void tt_server_stop(tt_server *s, int sig) {
  if (s->pid > 0) tt_kill(s->pid, sig);
  s->pid = 0;
}

void tt_server_cleanup(tt_server *s) {
  tt_server_stop(s, SIGKILL);
  if (s->dir[0]) tt_rmrf(s->dir);
  s->dir[0] = '\0';
}
