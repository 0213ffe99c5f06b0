/* Active health checks (health_check in an upstream): every interval, per server, connect (with TLS when the
 * upstream is proxied to with https, with its proxy_ssl_* settings), send GET uri, read the status line; `fails`
 * failures in a row mark the server down, `passes` successes mark it up again (slow start then ramps its
 * weight). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/util.h"
#include "admin.h"
#include "io/tls.h"
#include "io/transport.h"
#include "tls/context.h"

typedef struct checker {
  tether__control *ctl;
  const tether__cf_upstream *cu;
  const tether__cf_server *cs;
  tether__server_state *srv;
  uv_timer_t interval;
  uv_timer_t timeout;
  tether__io io; /* the check's connection: plain TCP, or TLS under it */
  uv_connect_t connect_req;
  int server; /* cs's index in cu */
  char req[512];
  char buf[512];
  size_t len;
  char rbuf[4096]; /* reads land here (a TLS record's plaintext) */
  int busy;        /* a check is in flight (tcp open) */
  int tcp_closing; /* tcp's close callback has not run yet: it cannot be initialised again before */
  int stopping;
  int handles; /* open handles, for freeing */
} checker;

static void handle_closed(uv_handle_t *h) {
  checker *k = h->data;
  if (h == (uv_handle_t *)&k->io.tcp) k->tcp_closing = 0;
  if (--k->handles == 0 && k->stopping) free(k);
}

static void result(checker *k, int ok, const char *why) {
  tether__server_state *s = k->srv;
  int up = atomic_load(&s->health_up);
  if (ok == up) {
    atomic_store(&s->health_streak, 0);
  } else {
    int streak = atomic_fetch_add(&s->health_streak, 1) + 1;
    if (streak >= (ok ? k->cu->health.passes : k->cu->health.fails)) {
      atomic_store(&s->health_up, ok);
      atomic_store(&s->health_streak, 0);
      if (ok) atomic_store(&s->up_since_ms, tether_now_ms());
      tether__log(ok ? TETHER_LOG_INFO : TETHER_LOG_WARN, "upstream %s: server %s is %s (health check: %s)",
                  s->upstream, s->name, ok ? "up" : "down", why);
    }
  }
}

static void end_check(checker *k, int ok, const char *why) {
  if (!k->busy) return;
  k->busy = 0;
  uv_timer_stop(&k->timeout);
  if (!uv_is_closing((uv_handle_t *)&k->io.tcp)) {
    k->tcp_closing = 1;
    tether__io_close(&k->io, handle_closed);
  }
  if (!k->stopping) result(k, ok, why);
}

static void on_timeout(uv_timer_t *t) { end_check(t->data, 0, "timeout"); }

static void on_read(tether__io *io, ssize_t n, const char *data) {
  checker *k = io->owner;
  if (n < 0) {
    end_check(k, 0, "connection closed before a status line");
    return;
  }
  size_t room = sizeof(k->buf) - 1 - k->len;
  memcpy(k->buf + k->len, data, (size_t)n < room ? (size_t)n : room);
  k->len += (size_t)n < room ? (size_t)n : room;
  k->buf[k->len] = '\0';
  if (strchr(k->buf, '\n') == NULL && k->len < sizeof(k->buf) - 1) return;
  int status = 0;
  if (sscanf(k->buf, "HTTP/1.%*1[01] %3d", &status) != 1) {
    end_check(k, 0, "not an HTTP response");
    return;
  }
  char why[64];
  snprintf(why, sizeof(why), "status %d", status);
  end_check(k, status >= k->cu->health.status_min && status <= k->cu->health.status_max, why);
}

static void on_written(tether__io *io, int status) {
  if (status < 0) end_check(io->owner, 0, uv_strerror(status));
}

static void send_check(checker *k) {
  int rc = tether__io_write(&k->io, k->req, strlen(k->req));
  if (rc == 0) rc = tether__io_read_start(&k->io);
  if (rc < 0) end_check(k, 0, uv_strerror(rc));
}

static void on_handshake(tether__io *io, int status, const char *why) {
  checker *k = io->owner;
  if (!k->busy) return;
  if (status == 0) {
    send_check(k);
    return;
  }
  char text[300];
  snprintf(text, sizeof(text), "TLS handshake failed: %s", why);
  end_check(k, 0, text);
}

static void on_connect(uv_connect_t *req, int status) {
  checker *k = req->data;
  if (!k->busy) return;
  if (status < 0) {
    end_check(k, 0, uv_strerror(status));
    return;
  }
  if (k->cu->tls_ctx == NULL) {
    send_check(k);
    return;
  }
  void *ssl = tether__tls_client_new(k->cu->tls_ctx, k->server);
  if (ssl == NULL || tether__tls_connect(&k->io, ssl, on_handshake) < 0 || tether__io_read_start(&k->io) < 0)
    end_check(k, 0, "cannot start TLS");
}

static void tick(uv_timer_t *t) {
  checker *k = t->data;
  /* a check that timed out in this same turn of the loop has its close pending: next tick */
  if (k->busy || k->stopping || k->tcp_closing) return;
  k->busy = 1;
  k->len = 0;
  tether__io_init(&k->io, k->ctl->loop, k, k->rbuf, sizeof(k->rbuf), on_read, on_written);
  k->io.tcp.data = k;
  k->handles++;
  k->connect_req.data = k;
  if (tether__io_connect(&k->io, &k->connect_req, (const struct sockaddr *)&k->cs->addr.sa, on_connect) < 0) {
    end_check(k, 0, "connect failed");
    return;
  }
  uv_timer_start(&k->timeout, on_timeout, (uint64_t)k->cu->health.timeout_ms, 0);
}

void tether__health_start(tether__control *ctl) {
  tether__runtime *rt = ctl->rt;
  int n = 0;
  for (size_t u = 0; u < rt->cf->nupstreams; u++)
    if (rt->cf->upstreams[u].health.enabled) n += (int)rt->cf->upstreams[u].nservers;
  checker **list = tether__calloc((size_t)n + 1, sizeof(*list));
  int i = 0;
  for (size_t u = 0; u < rt->cf->nupstreams; u++) {
    const tether__cf_upstream *cu = &rt->cf->upstreams[u];
    if (!cu->health.enabled) continue;
    for (size_t s = 0; s < cu->nservers; s++) {
      checker *k = tether__calloc(1, sizeof(*k));
      k->ctl = ctl;
      k->cu = cu;
      k->cs = &cu->servers[s];
      k->server = (int)s;
      k->srv = rt->ups[u].servers[s];
      snprintf(k->req, sizeof(k->req),
               "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tether-health\r\nConnection: close\r\n\r\n", cu->health.uri,
               k->cs->name);
      uv_timer_init(ctl->loop, &k->interval);
      uv_timer_init(ctl->loop, &k->timeout);
      k->interval.data = k->timeout.data = k;
      k->handles = 2;
      /* the first check at once, so a dead server is known before traffic needs it */
      uv_timer_start(&k->interval, tick, 0, (uint64_t)cu->health.interval_ms);
      list[i++] = k;
    }
  }
  ctl->checks = list;
  ctl->nchecks = n;
}

void tether__health_stop(tether__control *ctl) {
  checker **list = ctl->checks;
  for (int i = 0; i < ctl->nchecks; i++) {
    checker *k = list[i];
    k->stopping = 1;
    if (k->busy) {
      k->busy = 0;
      if (!uv_is_closing((uv_handle_t *)&k->io.tcp)) tether__io_close(&k->io, handle_closed);
    }
    uv_close((uv_handle_t *)&k->interval, handle_closed);
    uv_close((uv_handle_t *)&k->timeout, handle_closed);
  }
  free(list);
  ctl->checks = NULL;
  ctl->nchecks = 0;
}
