/* tether-lab: faults. "--kill app2@10s" is a SIGKILL (a crash, not a graceful stop) at 10 s into the load;
 * "--restart app2@20s" starts it again on the same port; "--kill-store memcached1@12s" kills a store
 * process; "--reshard 1000@6s" moves 1000 slots from redis-master1 to redis-master2 under the load. Each fault is a
 * one-shot timer on the loop and an event in the measurements. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "lab.h"
#include "xalloc.h"

int64_t lab_parse_duration(const char *s) {
  if (s == NULL || *s == '\0') return -1;
  char *end;
  double v = strtod(s, &end);
  if (end == s || v < 0) return -1;
  double mult;
  if (*end == '\0' || strcmp(end, "s") == 0)
    mult = 1000;
  else if (strcmp(end, "ms") == 0)
    mult = 1;
  else if (strcmp(end, "m") == 0)
    mult = 60000;
  else
    return -1;
  double ms = v * mult;
  if (ms > 86400e3) return -1;
  return (int64_t)(ms + 0.5);
}

static const char *kind_text(lab_fault_kind k) {
  switch (k) {
  case LAB_KILL_APP:
    return "kill";
  case LAB_RESTART_APP:
    return "restart";
  case LAB_KILL_STORE:
    return "kill-store";
  case LAB_RESHARD:
    return "reshard";
  default:
    return "restart-store";
  }
}

int lab_fault_parse(lab_fault_kind kind, const char *arg, lab_fault *f) {
  const char *at = strrchr(arg, '@');
  memset(f, 0, sizeof(*f));
  f->kind = kind;
  if (at == NULL || at == arg || (size_t)(at - arg) >= sizeof(f->target)) {
    fprintf(stderr, "tether-lab: --%s takes %s@TIME (e.g. %s@10s), got '%s'\n", kind_text(kind),
            kind == LAB_RESHARD ? "SLOTS" : "NAME", kind == LAB_RESHARD ? "1000" : "app2", arg);
    return -1;
  }
  memcpy(f->target, arg, (size_t)(at - arg));
  f->target[at - arg] = '\0';
  f->at_ms = lab_parse_duration(at + 1);
  if (f->at_ms < 0) {
    fprintf(stderr, "tether-lab: --%s %s: bad time '%s' (10s, 500ms, 1m)\n", kind_text(kind), arg, at + 1);
    return -1;
  }
  if (kind == LAB_RESHARD) {
    char *end;
    long n = strtol(f->target, &end, 10);
    if (n < 1 || n > 16384 || *end) {
      fprintf(stderr, "tether-lab: --reshard %s: the number of slots to move, 1 to 16384\n", arg);
      return -1;
    }
  }
  if (kind == LAB_KILL_APP || kind == LAB_RESTART_APP) {
    char *end;
    long n = strncmp(f->target, "app", 3) == 0 ? strtol(f->target + 3, &end, 10) : 0;
    if (n < 1 || n > LAB_MAX_APPS || *end) {
      fprintf(stderr, "tether-lab: --%s %s: the target is an app, app1 to app%d\n", kind_text(kind), arg, LAB_MAX_APPS);
      return -1;
    }
  }
  return 0;
}

const char *lab_fault_text(const lab_fault *f, char *buf, size_t n) {
  snprintf(buf, n, "%s %s@%.3gs", kind_text(f->kind), f->target, (double)f->at_ms / 1000.0);
  return buf;
}

static int app_index(lab_topology *t, const lab_proc *p) {
  for (int i = 0; i < t->napps; i++)
    if (&t->apps[i] == p) return i;
  return -1;
}

int lab_fault_apply(lab_topology *t, lab_measure *m, const lab_fault *f) {
  if (f->kind == LAB_RESHARD) {
    int rc = lab_topology_reshard(t, atoi(f->target));
    lab_measure_event(m, "reshard: %s slots redis-master1 -> redis-master2%s", f->target, rc < 0 ? " (failed)" : "");
    return rc;
  }
  lab_proc *p = lab_topology_find(t, f->target);
  int is_app = p ? app_index(t, p) : -1;
  if (p == NULL || ((f->kind == LAB_KILL_APP || f->kind == LAB_RESTART_APP) && is_app < 0) ||
      ((f->kind == LAB_KILL_STORE || f->kind == LAB_RESTART_STORE) && (is_app >= 0 || p == &t->balancer))) {
    lab_measure_event(m, "%s %s: no such process here, skipped", kind_text(f->kind), f->target);
    return -1;
  }
  int rc;
  if (f->kind == LAB_KILL_APP || f->kind == LAB_KILL_STORE) {
    int on = is_app >= 0 && m->users_on ? m->users_on[is_app] : 0; /* the sessions it holds, for local stores */
    /* its tether_sessions_missing_total dies with it: read it last thing, so that the app's count of lost
     * sessions misses only what it answers in the few milliseconds before the signal */
    if (is_app >= 0 && m->scraper) lab_scraper_app_now(m->scraper, is_app);
    rc = lab_proc_kill(p, SIGKILL);
    if (rc < 0)
      lab_measure_event(m, "%s killed (was not running)", p->name);
    else if (is_app >= 0)
      lab_measure_event(m, "%s killed (%d users last served there)", p->name, on);
    else
      lab_measure_event(m, "%s killed", p->name);
    if (rc == 0 && is_app >= 0) {
      lab_measure_app_down(m, is_app);
      m->at_risk += on;
    }
  } else {
    rc = lab_proc_restart(p);
    lab_measure_event(m, "%s restarted%s", p->name, rc < 0 ? " (failed)" : "");
    if (rc == 0 && is_app >= 0) lab_measure_app_up(m, is_app);
  }
  return rc;
}

typedef struct fault_timer {
  uv_timer_t h; /* first: the close callback frees the whole */
  lab_fault f;
  lab_topology *t;
  lab_measure *m;
} fault_timer;

struct lab_faults {
  fault_timer *timers[LAB_MAX_FAULTS];
  int n;
};

static void on_fault(uv_timer_t *h) {
  fault_timer *ft = (fault_timer *)h;
  lab_fault_apply(ft->t, ft->m, &ft->f);
}

lab_faults *lab_faults_arm(uv_loop_t *loop, const lab_opts *o, lab_topology *t, lab_measure *m) {
  lab_faults *fs = xcalloc(1, sizeof(*fs));
  size_t used = 0;
  uv_update_time(loop); /* the timers count from now, as the measurement's clock does */
  m->faults_text[0] = '\0';
  for (int i = 0; i < o->nfaults; i++) {
    const lab_fault *f = &o->faults[i];
    char text[64];
    /* e.g. a memcached node in a Redis topology */
    if (lab_topology_find(t, f->kind == LAB_RESHARD ? "redis-master1" : f->target) == NULL) continue;
    if (f->at_ms >= o->duration_ms) continue;
    fault_timer *ft = xcalloc(1, sizeof(*ft));
    ft->f = *f;
    ft->t = t;
    ft->m = m;
    uv_timer_init(loop, &ft->h);
    uv_timer_start(&ft->h, on_fault, (uint64_t)f->at_ms, 0);
    fs->timers[fs->n++] = ft;
    used += (size_t)snprintf(m->faults_text + used, used < sizeof(m->faults_text) ? sizeof(m->faults_text) - used : 0,
                             "%s%s", used ? ", " : "", lab_fault_text(f, text, sizeof(text)));
    if (used >= sizeof(m->faults_text)) used = sizeof(m->faults_text) - 1;
  }
  return fs;
}

static void free_timer(uv_handle_t *h) { free(h); }

void lab_faults_free(lab_faults *fs) {
  if (fs == NULL) return;
  for (int i = 0; i < fs->n; i++) uv_close((uv_handle_t *)&fs->timers[i]->h, free_timer);
  free(fs);
}
