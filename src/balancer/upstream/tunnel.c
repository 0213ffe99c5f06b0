/* Tunnels (WebSocket). */
#include "tunnel.h"

#include "../conn.h"
#include "pool.h"

void tether__tunnel_start(tether__client *c, tether__upconn *u) {
  c->state = TETHER__CS_TUNNEL;
  u->state = TETHER__US_TUNNEL;
  uv_timer_stop(&u->timer);
  uv_timer_stop(&c->timer);
  /* bytes that came after the heads belong to the other side */
  if (u->in_len) {
    tether__to_client(c, u->in, u->in_len);
    u->in_len = 0;
  }
  if (c->in_len) {
    tether__to_server(u, c->in, c->in_len);
    c->in_len = 0;
  }
  tether__io_read_start(&c->io);
}

void tether__tunnel_from_client(tether__client *c, const char *data, size_t n) {
  tether__upconn *u = c->up;
  if (u == NULL) return;
  if (tether__to_server(u, data, n) < 0)
    c->proto->abort(c);
  else if (u->io.pending > TETHER__MAX_PENDING)
    tether__io_pause(&c->io);
}

void tether__tunnel_from_server(tether__upconn *u, const char *data, size_t n) {
  tether__client *c = u->c;
  if (c == NULL) return;
  if (tether__to_client(c, data, n) < 0)
    c->proto->abort(c);
  else if (c->io.pending > TETHER__MAX_PENDING)
    tether__io_pause(&u->io);
}

void tether__tunnel_server_closed(tether__upconn *u) {
  tether__client *c = u->c;
  tether__up_close(u);
  if (c == NULL) return;
  c->keep_alive = 0;
  c->resp_done = 1;
  if (c->io.pending == 0) c->proto->abort(c);
}
