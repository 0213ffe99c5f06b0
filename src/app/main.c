/* tether-app: the reference stateless application server. Every bit of user state lives in the session
 * store (libtether), so any instance can serve any request and a dead instance loses nothing. It is what
 * the demo, the tests and the lab run behind the balancer. With a JWT secret it also answers the seed's
 * token flow (login() and authenticate): POST /login in token mode signs an HS256 token, GET /api/me
 * verifies a bearer token; neither touches the session store.
 *
 * Threads: --threads workers (default: one per core), each a libuv loop running a libmicrohttpd daemon on
 * its epoll set (all accepting from one listening socket) and its own asynchronous handle on the session
 * store (tether/store_async.h). A request that needs the store waits unanswered (not suspended: see
 * start_job) while its session is loaded and committed, and the loop serves the other connections
 * meanwhile; with Redis, the commands of every request in flight on a thread leave in one write per loop
 * turn. */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "xalloc.h"

/* The address to listen on, from --listen IP:PORT. 0, or -1 with a message. */
static int listen_address(const options *o, struct sockaddr_in *out) {
  char host[64];
  const char *colon = strrchr(o->listen_at, ':');
  if (colon == NULL || (size_t)(colon - o->listen_at) >= sizeof(host)) {
    fprintf(stderr, "tether-app: --listen takes IP:PORT\n");
    return -1;
  }
  memcpy(host, o->listen_at, (size_t)(colon - o->listen_at));
  host[colon - o->listen_at] = '\0';
  int port = atoi(colon + 1);
  if (inet_pton(AF_INET, host, &out->sin_addr) != 1 || port < 1 || port > 65535) {
    fprintf(stderr, "tether-app: --listen takes IP:PORT, got %s\n", o->listen_at);
    return -1;
  }
  out->sin_port = htons((uint16_t)port);
  return 0;
}

/* Opens the session store and the session manager. 0, or -1 with a message. */
static int open_sessions(options *o) {
  if (strncmp(o->url, "sqlite:./var/", 13) == 0) mkdir("var", 0755);
  int rc = tether_store_open(o->url, &the_app.store);
  if (rc < 0) {
    char *shown = tether_url_redact(o->url); /* never the password */
    fprintf(stderr, "tether-app: --sessions %s: %s\n", shown, tether_last_error());
    free(shown);
    return -1;
  }
  o->so.store = the_app.store;
  if (tether_sessions_new(&o->so, &the_app.sessions) < 0) {
    fprintf(stderr, "tether-app: %s\n", tether_last_error());
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  options o;
  xalloc_set_program("tether-app");
  int rc = options_parse(argc, argv, &o);
  if (rc >= 0) return rc;
  struct sockaddr_in sa = {.sin_family = AF_INET};
  if (listen_address(&o, &sa) < 0 || open_sessions(&o) < 0) return 2;
  signal(SIGPIPE, SIG_IGN);
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (listener < 0 || bind(listener, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(listener, 1024) < 0) {
    fprintf(stderr, "tether-app: cannot listen on %s: %s\n", o.listen_at, strerror(errno));
    return 1;
  }
  /* SIGTERM and SIGINT wait for the main thread's sigwait: blocked here, before the workers inherit it */
  sigset_t stop_set;
  sigemptyset(&stop_set);
  sigaddset(&stop_set, SIGTERM);
  sigaddset(&stop_set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
  /* stores other than redis:// run their blocking calls on libuv's thread pool, shared by every loop: as
   * many calls in flight as the 16 threads of old, unless the environment says otherwise */
  if (getenv("UV_THREADPOOL_SIZE") == NULL) setenv("UV_THREADPOOL_SIZE", "16", 1);
  worker *workers = xcalloc((size_t)o.threads, sizeof(*workers));
  for (int i = 0; i < o.threads; i++) {
    if (worker_start(&workers[i], listener) < 0) {
      fprintf(stderr, "tether-app: cannot start worker %d: %s\n", i, errno ? strerror(errno) : tether_last_error());
      return 1;
    }
  }
  fprintf(stderr, "tether-app %s: listening on %s, %d threads, sessions in %s, API tokens %s\n", the_app.name,
          o.listen_at, o.threads, tether_store_url(the_app.store),
          the_app.signer ? "on (HS256)" : "off (no JWT secret)");
  int sig = 0;
  sigwait(&stop_set, &sig);
  atomic_store(&stopping, 1);
  for (int i = 0; i < o.threads; i++) uv_async_send(&workers[i].stop);
  for (int i = 0; i < o.threads; i++) pthread_join(workers[i].thread, NULL);
  close(listener); /* quiesced: ours to close, after every daemon stopped */
  free(workers);
  tether_sessions_free(the_app.sessions);
  free(the_app.name_json);
  tether_store_close(the_app.store);
  tether_jwt_verifier_free(the_app.verifier);
  tether_jwt_signer_free(the_app.signer);
  fprintf(stderr, "tether-app %s: stopped\n", the_app.name);
  return 0;
}
