/* The balancer's shared state across configuration generations. */
#include "runtime.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/util.h"
#include "persist/persist.h"

/* Server states by (upstream, name), created by the main thread, read by every worker. */
static tether__server_state **registry;
static size_t nregistry;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static tether__upstream_state **ureg;
static size_t nureg;

static tether__upstream_state *upstream_state_locked(const char *name, int create) {
  for (size_t i = 0; i < nureg; i++)
    if (strcmp(ureg[i]->name, name) == 0) return ureg[i];
  if (!create) return NULL;
  tether__upstream_state *u = tether__calloc(1, sizeof(*u));
  snprintf(u->name, sizeof(u->name), "%s", name);
  ureg = tether__realloc(ureg, (nureg + 1) * sizeof(*ureg));
  ureg[nureg++] = u;
  return u;
}

tether__upstream_state *tether__upstream_find(const char *name) {
  pthread_mutex_lock(&registry_lock);
  tether__upstream_state *u = upstream_state_locked(name, 0);
  pthread_mutex_unlock(&registry_lock);
  return u;
}

static tether__server_state *find_locked(const char *upstream, const char *name) {
  for (size_t i = 0; i < nregistry; i++)
    if (strcmp(registry[i]->upstream, upstream) == 0 && strcmp(registry[i]->name, name) == 0) return registry[i];
  return NULL;
}

tether__server_state *tether__server_find(const char *upstream, const char *server) {
  pthread_mutex_lock(&registry_lock);
  tether__server_state *s = find_locked(upstream, server);
  pthread_mutex_unlock(&registry_lock);
  return s;
}

size_t tether__server_all(tether__server_state ***out) {
  pthread_mutex_lock(&registry_lock);
  *out = registry;
  size_t n = nregistry;
  pthread_mutex_unlock(&registry_lock);
  return n;
}

tether__runtime *tether__runtime_new(tether__config *cf) {
  static uint64_t generation;
  tether__runtime *rt = tether__calloc(1, sizeof(*rt));
  rt->cf = cf;
  rt->generation = ++generation;
  atomic_store(&rt->refs, 1);
  rt->ups = tether__calloc(cf->nupstreams ? cf->nupstreams : 1, sizeof(*rt->ups));
  pthread_mutex_lock(&registry_lock);
  for (size_t k = 0; k < cf->nupstreams; k++) {
    tether__cf_upstream *u = &cf->upstreams[k];
    tether__upstream_rt *ur = &rt->ups[k];
    ur->cf = u;
    ur->index = (int)k;
    ur->servers = tether__calloc(u->nservers, sizeof(*ur->servers));
    ur->state = upstream_state_locked(u->name, 1);
    for (size_t i = 0; i < u->nservers; i++) {
      tether__server_state *s = find_locked(u->name, u->servers[i].name);
      if (s == NULL) {
        s = tether__calloc(1, sizeof(*s));
        snprintf(s->upstream, sizeof(s->upstream), "%s", u->name);
        snprintf(s->name, sizeof(s->name), "%s", u->servers[i].name);
        atomic_store(&s->health_up, 1);
        registry = tether__realloc(registry, (nregistry + 1) * sizeof(*registry));
        registry[nregistry++] = s;
      }
      /* the configuration's weight wins at each (re)load; the admin API changes it until the next */
      atomic_store(&s->weight, u->servers[i].weight);
      if (u->servers[i].drain && atomic_load(&s->admin) == TETHER__ADMIN_UP) {
        atomic_store(&s->admin, TETHER__ADMIN_DRAIN);
        atomic_store(&s->drain_since_ms, tether_now_ms());
        s->cfg_drain = 1;
      } else if (!u->servers[i].drain && s->cfg_drain && atomic_load(&s->admin) == TETHER__ADMIN_DRAIN) {
        atomic_store(&s->admin, TETHER__ADMIN_UP); /* `drain` removed from the configuration */
        s->cfg_drain = 0;
      }
      if (!u->health.enabled) atomic_store(&s->health_up, 1);
      ur->servers[i] = s;
    }
  }
  pthread_mutex_unlock(&registry_lock);
  for (size_t k = 0; k < cf->nupstreams; k++) tether__persist_build(&rt->ups[k]);
  return rt;
}

void tether__runtime_ref(tether__runtime *rt) { atomic_fetch_add_explicit(&rt->refs, 1, memory_order_relaxed); }

void tether__runtime_unref(tether__runtime *rt) {
  if (rt == NULL || atomic_fetch_sub_explicit(&rt->refs, 1, memory_order_acq_rel) != 1) return;
  for (size_t k = 0; k < rt->cf->nupstreams; k++) {
    tether__persist_free(&rt->ups[k]);
    free(rt->ups[k].servers);
  }
  free(rt->ups);
  tether__config_free(rt->cf);
  free(rt);
}

void tether__runtime_shutdown(void) {
  pthread_mutex_lock(&registry_lock);
  for (size_t i = 0; i < nregistry; i++) free(registry[i]);
  free(registry);
  registry = NULL;
  nregistry = 0;
  for (size_t i = 0; i < nureg; i++) free(ureg[i]);
  free(ureg);
  ureg = NULL;
  nureg = 0;
  pthread_mutex_unlock(&registry_lock);
}
