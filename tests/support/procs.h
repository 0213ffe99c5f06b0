/* Test support: free loopback ports, temporary directories, and real servers (redis-server,
 * redis-sentinel, memcached, PostgreSQL) started and stopped by the tests. Every server dies with the
 * test process (PR_SET_PDEATHSIG) so a crashed test leaves nothing behind. */
#ifndef TETHER_TEST_PROCS_H
#define TETHER_TEST_PROCS_H

#include <stddef.h>
#include <sys/types.h>

typedef struct tt_server {
  pid_t pid; /* 0 when not running */
  int port;
  char dir[256]; /* its temporary directory (data, logs) */
  char url[512]; /* a store URL reaching it */
  char kind[32]; /* "redis", "sentinel", "memcached", "postgres" */
} tt_server;

/* A port that was free on 127.0.0.1 a moment ago (the kernel's choice, so parallel tests do not clash). */
int tt_free_port(void);

/* A fresh directory /tmp/tether-test-TAG-XXXXXX (mode 0755); the caller owns the string. */
char *tt_tmpdir(const char *tag);
void tt_rmrf(const char *dir);

/* fork + exec argv with stdout and stderr appended to logfile, in its own process group, killed when the
 * test dies. user: run as that user (NULL: as is). Returns the pid or -1. */
pid_t tt_spawn(char *const argv[], const char *logfile, const char *user);
/* Waits until 127.0.0.1:port accepts connections (1) or timeout_ms passes (0). */
int tt_wait_port(int port, int timeout_ms);
/* Sends sig and reaps the process (waits up to 10 s, then SIGKILL). */
void tt_kill(pid_t pid, int sig);
/* Sleeps ms milliseconds. */
void tt_sleep_ms(int ms);

/* Servers. start() returns 0 on success and fills s (url included); a server that cannot start fails the
 * test with its log's tail on stderr. port 0: choose a free one (restart on the same port: pass s->port). */
int tt_redis_start(tt_server *s, int port);
int tt_redis_start_replica(tt_server *s, int port, int master_port);
int tt_sentinel_start(tt_server *s, int port, const char *master_name, int master_port, int quorum);
/* A Redis Cluster node (cluster-enabled, cluster-node-timeout 1000, its bus on another free port); a restart
 * on s->port keeps its nodes.conf. url: redis-cluster://127.0.0.1:PORT. */
int tt_redis_cluster_node_start(tt_server *s, int port);
/* masters * (1 + replicas) nodes joined by redis-cli --cluster create (the first `masters` are the masters),
 * returning once every node says cluster_state:ok and sees every other. */
int tt_redis_cluster_start(tt_server *nodes, int masters, int replicas);
int tt_memcached_start(tt_server *s, int port);
int tt_postgres_start(tt_server *s, int port);
/* Stops with SIGTERM (graceful) or SIGKILL (crash); the directory is kept until tt_server_cleanup. */
void tt_server_stop(tt_server *s, int sig);
void tt_server_cleanup(tt_server *s);

/* Runs a shell command and returns its exit status (-1 when it could not run). */
int tt_system(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
