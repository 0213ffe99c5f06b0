/* The balancer's control plane, on the main thread's loop: the admin listener (metrics, status, server
 * state changes) and active health checks. */
#ifndef TETHER_BALANCER_ADMIN_H
#define TETHER_BALANCER_ADMIN_H

#include <uv.h>

#include "worker.h"

typedef struct tether__control {
  uv_loop_t *loop;
  tether__worker *workers;
  int nworkers;
  tether__runtime *rt;                     /* current (a reference held) */
  struct tether__admin_listener *listener; /* admin_listen, when open */
  void *checks;                            /* health checkers of rt */
  int nchecks;
  uint64_t reload_failures; /* reloads refused (the configuration had errors) */
  int last_reload_failed;   /* the last reload was refused: the running configuration is older than the file */
} tether__control;

int tether__admin_start(tether__control *ctl);
void tether__admin_stop(tether__control *ctl);
/* Prometheus text and JSON status (malloc'd). */
char *tether__metrics_text(tether__control *ctl);
char *tether__status_json(tether__control *ctl);

/* The dashboard served at GET /: one page and its script (src/balancer/dashboard/, built in by
 * cmake/embed.cmake), nothing fetched from elsewhere. */
extern const char tether__dashboard_html[];
extern const char tether__dashboard_js[];

void tether__health_start(tether__control *ctl);
void tether__health_stop(tether__control *ctl);

#endif
