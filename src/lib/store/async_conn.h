/* libtether internals: one pipelined Redis connection on a libuv loop, and the commands of the session
 * calls, shared by the asynchronous stores: async.c (redis://, one connection) and async_cluster.c
 * (redis-cluster://, one connection per node). */
#ifndef TETHER_STORE_ASYNC_CONN_H
#define TETHER_STORE_ASYNC_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "../util.h" /* tether__buf */
#include "store_impl.h"
#include "tether/store_async.h"

struct uv_loop_s;
struct redisReply;

enum {
  TETHER__ACMD_GET,
  TETHER__ACMD_SET,
  TETHER__ACMD_TOUCH,
  TETHER__ACMD_DESTROY,
  TETHER__ACMD_PING,
  TETHER__ACMD_RAW /* tether__acluster_command: any command, for tests */
};

typedef struct tether__aconn tether__aconn;
typedef struct tether__acmd tether__acmd;

/* A command's completion: rc 0 with its reply (freed once the call returns), or a negative TETHER_E* code
 * (message set) and NULL when the connection failed, timed out or was closed. It runs once per command,
 * in the order the commands were sent. */
typedef void (*tether__acmd_fn)(tether__acmd *c, int rc, struct redisReply *rep);

struct tether__acmd {
  tether__acmd *next;   /* the connection's FIFO */
  tether__acmd_fn done; /* NULL: a setup command (AUTH, SELECT, READONLY), owned by the connection */
  int extra_ms;         /* added to the timeout (WAIT holds its reply up to its own timeout) */
  uint64_t deadline_us;
  uint64_t sent_us; /* when it was queued */
  uint64_t done_us; /* when its reply was read (0: not read) */
};

typedef struct tether__aconn_conf {
  const char *who; /* "redis", "redis-cluster": in messages */
  const char *host;
  int port;
  const char *user;     /* NULL: AUTH with the password alone */
  const char *password; /* NULL: no AUTH */
  int db;               /* SELECT when not 0 */
  int readonly;         /* READONLY (reads from a cluster replica) */
  int timeout_ms, connect_timeout_ms;
} tether__aconn_conf;

/* A connection, idle until the first command. The strings are copied. freed(owner) runs once the closed
 * connection has released everything. */
tether__aconn *tether__aconn_new(struct uv_loop_s *loop, const tether__aconn_conf *conf, void (*freed)(void *),
                                 void *owner);
/* Queues a formatted command (RESP) and connects first if needed. 0, or TETHER_EUNAVAIL (message set) while
 * the connection backs off after a failure: then c is not queued and its done never runs. */
int tether__aconn_send(tether__aconn *k, tether__acmd *c, const char *cmd, size_t len);
/* tether__aconn_send of a session call's command (tether__acmd_append), formatted straight into the output
 * buffer. */
int tether__aconn_send_call(tether__aconn *k, tether__acmd *c, int kind, int mode, const char *prefix, const char *sid,
                            const char *json, size_t jlen, int64_t expires_ms, long max_value);
/* Writes what was sent now rather than just before the loop polls (a prepare callback sending late). */
void tether__aconn_flush(tether__aconn *k);
/* Fails what is pending ("store closed") before it returns; releases the connection once the loop has
 * closed its handles. */
void tether__aconn_close(tether__aconn *k);

/* The command of a session call, in RESP: GET (or GETRANGE), SET key json EX ttl [NX|XX], EXPIRE, DEL (a
 * write whose expiry has passed deletes, connect-redis's rule), PING, appended to b; tether__acmd_format:
 * the same, malloc'd, *len its length. */
void tether__acmd_append(tether__buf *b, int kind, int mode, const char *prefix, const char *sid, const char *json,
                         size_t jlen, int64_t expires_ms, long max_value);
char *tether__acmd_format(int kind, int mode, const char *prefix, const char *sid, const char *json, size_t jlen,
                          int64_t expires_ms, long max_value, size_t *len);
/* A call's reply as its result: the session of a GET (*json: the reply's string, taken from it), a SET's
 * NX/XX outcome, an error reply. who: "redis", "redis-cluster". */
int tether__acmd_result(int kind, int mode, const char *who, const char *prefix, const char *sid, long max_value,
                        struct redisReply *rep, char **json, size_t *len);
/* Records a finished call in the store's metrics (as the blocking store does) and calls back. end_us: when
 * its reply was read (0: now). */
void tether__acall_finish(tether_store *st, int kind, uint64_t start_us, uint64_t end_us, int rc, char *json,
                          size_t len, tether_astore_get_cb get_cb, tether_astore_cb cb, void *arg);

/* async_cluster.c: redis-cluster:// on the loop. NULL when st is another kind of store. freed(owner) runs
 * once the closed client has released everything. */
typedef struct tether__acluster tether__acluster;
tether__acluster *tether__acluster_new(struct uv_loop_s *loop, tether_store *st, void (*freed)(void *), void *owner);
/* A session call (kind TETHER__ACMD_*), with tether_astore's contract: 0 and one callback later, or an error
 * and none. */
int tether__acluster_call(tether__acluster *k, int kind, int mode, const char *sid, const char *json, size_t len,
                          int64_t expires_ms, tether_astore_get_cb get_cb, tether_astore_cb cb, void *arg);
/* Any command (RESP, copied) on the slot of key, through the client's routing, redirects and retries: for
 * tests (multi-key commands, which sessions never send, are what draws TRYAGAIN). cb gets 0 and the reply
 * (freed when cb returns) or an error code and NULL, once, later. */
typedef void (*tether__acluster_cb)(void *arg, int rc, struct redisReply *rep);
void tether__acluster_command(tether__acluster *k, const char *key, const char *req, size_t len, tether__acluster_cb cb,
                              void *arg);
/* Fails what is pending before it returns. */
void tether__acluster_close(tether__acluster *k);

#endif
