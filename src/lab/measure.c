/* tether-lab: measurements. The client side (every request's status, latency and serving app, every lost
 * session) is counted per one-second bucket; the server side comes from scraping each app's /metrics
 * (tether_sessions_missing_total, summed over an app's incarnations) and the balancer's admin /metrics
 * (tether_persistence_total, and the session_monitor's tether_session_*_total summed over the servers) four
 * times a second, right before an app is killed (faults.c: its counts die with it) and once more at the end. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "lab.h"
#include "xalloc.h"

void lab_measure_init(lab_measure *m, const char *label, const lab_strategy *st, const lab_opts *o, int napps) {
  memset(m, 0, sizeof(*m));
  m->st = st;
  snprintf(m->label, sizeof(m->label), "%s", label);
  m->napps = napps;
  for (int i = 0; i < napps && i < LAB_MAX_APPS; i++)
    snprintf(m->app_names[i], sizeof(m->app_names[i]), "app%d", i + 1);
  m->duration_ms = o->duration_ms;
  m->users = o->users;
  m->app_kind = o->app;
  m->nbuckets = (size_t)(o->duration_ms / LAB_BUCKET_MS) + 12; /* the stop phase lands in the last ones */
  m->served = xcalloc(m->nbuckets, sizeof(*m->served));
  m->req_b = xcalloc(m->nbuckets, sizeof(uint32_t));
  m->err_b = xcalloc(m->nbuckets, sizeof(uint32_t));
  m->lost_b = xcalloc(m->nbuckets, sizeof(uint32_t));
  m->latcap = 4u << 20;
  for (int i = 0; i < LAB_MAX_APPS; i++) m->last_served_ms[i] = -1;
}

void lab_measure_free(lab_measure *m) {
  free(m->served);
  free(m->req_b);
  free(m->err_b);
  free(m->lost_b);
  free(m->lat_us);
  memset(m, 0, sizeof(*m));
}

void lab_measure_start(lab_measure *m) { m->t0_ns = uv_hrtime(); }

int64_t lab_measure_now_ms(const lab_measure *m) {
  if (m->t0_ns == 0) return 0;
  return (int64_t)((uv_hrtime() - m->t0_ns) / 1000000u);
}

static size_t bucket_now(const lab_measure *m) {
  int64_t t = lab_measure_now_ms(m);
  size_t b = (size_t)(t / LAB_BUCKET_MS);
  return b < m->nbuckets ? b : m->nbuckets - 1;
}

void lab_measure_request(lab_measure *m, const lab_xfer *x) {
  size_t b = bucket_now(m);
  m->requests++;
  m->req_b[b]++;
  long st = x->rc == CURLE_OK ? x->status : 0;
  if (st < 0 || st >= 600) st = 599;
  m->status[st]++;
  if (st != 200) {
    m->errors++;
    m->err_b[b]++;
  }
  if (st > 0) {
    if (m->nlat == m->latcap) return;
    if (m->nlat % 65536 == 0) m->lat_us = xrealloc(m->lat_us, (m->nlat + 65536) * sizeof(uint32_t));
    m->lat_us[m->nlat++] = x->latency_us > UINT32_MAX ? UINT32_MAX : (uint32_t)x->latency_us;
  }
  for (int i = 0; i < m->napps; i++)
    if (x->served_by[0] && strcmp(x->served_by, m->app_names[i]) == 0) {
      m->served[b][i]++;
      m->last_served_ms[i] = lab_measure_now_ms(m);
      break;
    }
}

void lab_measure_lost(lab_measure *m, int first_for_user) {
  m->lost_events++;
  if (first_for_user) m->users_lost++;
  m->lost_b[bucket_now(m)]++;
}

void lab_measure_event(lab_measure *m, const char *fmt, ...) {
  if (m->nevents == LAB_MAX_EVENTS) return;
  lab_event *e = &m->events[m->nevents++];
  e->t_ms = lab_measure_now_ms(m);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->what, sizeof(e->what), fmt, ap);
  va_end(ap);
}

void lab_measure_app_down(lab_measure *m, int app) {
  if (app < 0 || app >= m->napps || m->ndown[app] == 4) return;
  int k = m->ndown[app]++;
  m->down_from[app][k] = lab_measure_now_ms(m);
  m->down_to[app][k] = INT64_MAX;
}

void lab_measure_app_up(lab_measure *m, int app) {
  if (app < 0 || app >= m->napps) return;
  int k = m->ndown[app] - 1;
  if (k >= 0 && m->down_to[app][k] == INT64_MAX) m->down_to[app][k] = lab_measure_now_ms(m) + LAB_RESTART_GRACE_MS;
  /* a new incarnation counts from 0 */
  m->missing_base[app] += m->missing_last[app];
  m->missing_last[app] = 0;
  m->shared_base[app] += m->shared_last[app];
  m->shared_last[app] = 0;
}

void lab_measure_continue(lab_measure *m, const lab_measure *prev) {
  for (int i = 0; i < m->napps; i++) {
    /* the apps' counters go on: this step's share is what comes after their current values */
    m->missing_last[i] = prev->missing_last[i];
    m->missing_base[i] = -prev->missing_last[i];
    m->shared_last[i] = prev->shared_last[i];
    m->shared_base[i] = -prev->shared_last[i];
  }
  for (int k = 0; k < 6; k++) m->persist_base[k] = m->persist[k] = prev->persist[k];
  m->have_persist = prev->have_persist;
  for (int k = 0; k < 4; k++) m->monitor_base[k] = m->monitor[k] = prev->monitor[k];
  m->have_monitor = prev->have_monitor;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static int bucket_all_up(const lab_measure *m, size_t b) {
  int64_t from = (int64_t)b * LAB_BUCKET_MS, to = from + LAB_BUCKET_MS;
  for (int i = 0; i < m->napps; i++)
    for (int k = 0; k < m->ndown[i]; k++)
      if (m->down_from[i][k] < to && m->down_to[i][k] > from) return 0;
  return 1;
}

void lab_measure_summarize(lab_measure *m) {
  /* The spread of the load while every app was up, over whole seconds of the run: the first second
   * (the ramp) and the seconds around a kill or a restart are left out. */
  size_t last = (size_t)(m->duration_ms / LAB_BUCKET_MS);
  if (last > m->nbuckets) last = m->nbuckets;
  size_t used = 0;
  memset(m->share, 0, sizeof(m->share));
  for (size_t b = 1; b < last; b++) {
    if (!bucket_all_up(m, b)) continue;
    used++;
    for (int i = 0; i < m->napps; i++) m->share[i] += m->served[b][i];
  }
  if (used == 0)
    for (size_t b = 0; b < m->nbuckets; b++)
      for (int i = 0; i < m->napps; i++) m->share[i] += m->served[b][i];
  double sum = 0, max = 0, var = 0;
  for (int i = 0; i < m->napps; i++) {
    sum += m->share[i];
    if (m->share[i] > max) max = m->share[i];
  }
  double mean = m->napps ? sum / m->napps : 0;
  for (int i = 0; i < m->napps; i++) var += (m->share[i] - mean) * (m->share[i] - mean);
  m->max_mean = mean > 0 ? max / mean : 0;
  m->cv = mean > 0 && m->napps ? sqrt(var / m->napps) / mean : 0;

  if (m->nlat) {
    qsort(m->lat_us, m->nlat, sizeof(uint32_t), cmp_u32);
    m->p50_ms = m->lat_us[(m->nlat - 1) * 50 / 100] / 1000.0;
    m->p99_ms = m->lat_us[(m->nlat - 1) * 99 / 100] / 1000.0;
  }
  m->missing_server = 0;
  m->shared_reads = 0;
  for (int i = 0; i < m->napps; i++) {
    m->missing_server += m->missing_base[i] + m->missing_last[i];
    m->shared_reads += m->shared_base[i] + m->shared_last[i];
  }
  m->breaks = 0;
  for (int k = 2; k < 6; k++) m->breaks += m->persist[k] - m->persist_base[k];
  m->monitor_started = m->monitor[0] - m->monitor_base[0];
  m->monitor_replaced = m->monitor[1] - m->monitor_base[1];
  m->monitor_expected = m->monitor[2] - m->monitor_base[2];
  m->monitor_presented = m->monitor[3] - m->monitor_base[3];
  m->rps = m->duration_ms > 0 ? (double)m->requests * 1000.0 / (double)m->duration_ms : 0;
}

/* ---- Prometheus text ---- */

double lab_prom_value(const char *text, const char *name_labels) {
  size_t n = strlen(name_labels);
  for (const char *p = text; p && *p;) {
    if (strncmp(p, name_labels, n) == 0 && p[n] == ' ') return strtod(p + n + 1, NULL);
    p = strchr(p, '\n');
    if (p) p++;
  }
  return -1;
}

/* The first sample whose name and labels start with prefix. */
static double prom_first(const char *text, const char *prefix) {
  size_t n = strlen(prefix);
  for (const char *p = text; p && *p;) {
    if (strncmp(p, prefix, n) == 0) {
      const char *sp = strchr(p, ' ');
      const char *nl = strchr(p, '\n');
      if (sp && (nl == NULL || sp < nl)) return strtod(sp + 1, NULL);
    }
    p = strchr(p, '\n');
    if (p) p++;
  }
  return -1;
}

/* ---- scraping ---- */

struct lab_scraper {
  uv_loop_t *loop;
  lab_http *http;
  lab_topology *t;
  lab_measure *m;
  uv_timer_t *timer;
  lab_xfer apps[LAB_MAX_APPS];
  int incarnation[LAB_MAX_APPS]; /* the app's `starts` when its scrape began */
  lab_xfer bal;
  uint64_t last_tick_ns;
};

static const char *const persist_lines[6] = {
    "tether_persistence_total{upstream=\"apps\",outcome=\"hit\",reason=\"\"}",
    "tether_persistence_total{upstream=\"apps\",outcome=\"new\",reason=\"\"}",
    "tether_persistence_total{upstream=\"apps\",outcome=\"break\",reason=\"down\"}",
    "tether_persistence_total{upstream=\"apps\",outcome=\"break\",reason=\"drain\"}",
    "tether_persistence_total{upstream=\"apps\",outcome=\"break\",reason=\"unknown\"}",
    "tether_persistence_total{upstream=\"apps\",outcome=\"break\",reason=\"overload\"}",
};

static void on_app_metrics(lab_xfer *x) {
  lab_scraper *s = x->owner;
  int i = (int)(x - s->apps);
  if (x->rc != CURLE_OK || x->status != 200 || x->body == NULL) return;
  if (s->t->apps[i].starts != s->incarnation[i]) return; /* a late answer from a previous incarnation */
  double v = prom_first(x->body, "tether_sessions_missing_total{");
  if (v >= 0) s->m->missing_last[i] = v;
  v = lab_prom_value(x->body, "tether_store_reads_total{store=\"dual\",tier=\"shared\"}");
  if (v >= 0) s->m->shared_last[i] = v;
}

static const char *const monitor_names[4] = {"started", "replaced", "expected", "presented"};

/* The session_monitor's counters, summed over the servers: the balancer keeps them across an app's death. */
static void read_monitor(lab_scraper *s, const char *body) {
  double sum[4] = {0, 0, 0, 0};
  int seen = 0;
  for (int i = 0; i < s->t->napps; i++)
    for (int k = 0; k < 4; k++) {
      char line[160];
      snprintf(line, sizeof(line), "tether_session_%s_total{upstream=\"apps\",server=\"127.0.0.1:%d\"}",
               monitor_names[k], s->t->apps[i].port);
      double v = lab_prom_value(body, line);
      if (v >= 0) {
        sum[k] += v;
        seen = 1;
      }
    }
  if (!seen) return;
  memcpy(s->m->monitor, sum, sizeof(sum));
  s->m->have_monitor = 1;
}

static void on_bal_metrics(lab_xfer *x) {
  lab_scraper *s = x->owner;
  if (x->rc != CURLE_OK || x->status != 200 || x->body == NULL) return;
  read_monitor(s, x->body);
  for (int k = 0; k < 6; k++) {
    double v = lab_prom_value(x->body, persist_lines[k]);
    if (v >= 0) {
      s->m->persist[k] = v;
      s->m->have_persist = 1;
    }
  }
}

static void scrape_app(lab_scraper *s, int i) {
  char url[96];
  lab_proc *p = &s->t->apps[i];
  if (!p->running || !p->metrics || s->apps[i].active) return;
  s->incarnation[i] = p->starts;
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", p->port);
  lab_xfer_start(&s->apps[i], url, NULL, 900);
}

static void scrape_round(lab_scraper *s) {
  char url[96];
  for (int i = 0; i < s->t->napps; i++) scrape_app(s, i);
  if (s->t->balancer.running && !s->bal.active) {
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", s->t->admin_port);
    lab_xfer_start(&s->bal, url, NULL, 900);
  }
}

static void on_scrape_timer(uv_timer_t *h) {
  lab_scraper *s = h->data;
  uint64_t now = uv_hrtime();
  if (s->last_tick_ns) {
    double lag = (double)(now - s->last_tick_ns) / 1e6 - 250;
    if (lag > s->m->max_lag_ms) s->m->max_lag_ms = lag;
  }
  s->last_tick_ns = now;
  scrape_round(s);
}

lab_scraper *lab_scraper_new(uv_loop_t *loop, lab_http *http, lab_topology *t, lab_measure *m) {
  lab_scraper *s = xcalloc(1, sizeof(*s));
  s->loop = loop;
  s->http = http;
  s->t = t;
  s->m = m;
  m->scraper = s;
  for (int i = 0; i < LAB_MAX_APPS; i++) lab_xfer_init(&s->apps[i], http, s, on_app_metrics);
  lab_xfer_init(&s->bal, http, s, on_bal_metrics);
  s->timer = xmalloc(sizeof(*s->timer));
  uv_timer_init(loop, s->timer);
  s->timer->data = s;
  uv_timer_start(s->timer, on_scrape_timer, 250, 250); /* a killed app takes at most 250 ms of counts with it */
  return s;
}

void lab_scraper_set_measure(lab_scraper *s, lab_measure *m) {
  s->m->scraper = NULL;
  s->m = m;
  m->scraper = s;
}

static int scrapes_idle(void *arg) {
  lab_scraper *s = arg;
  for (int i = 0; i < LAB_MAX_APPS; i++)
    if (s->apps[i].active) return 0;
  return !s->bal.active;
}

void lab_scraper_sync(lab_scraper *s) {
  lab_wait(s->loop, scrapes_idle, s, 3000);
  scrape_round(s);
  lab_wait(s->loop, scrapes_idle, s, 3000);
}

typedef struct app_scrape {
  lab_scraper *s;
  int app;
} app_scrape;

static int app_scraped(void *arg) {
  app_scrape *a = arg;
  return !a->s->apps[a->app].active;
}

void lab_scraper_app_now(lab_scraper *s, int app) {
  app_scrape a = {s, app};
  /* one in flight reads the counter recently enough; a busy app must not hold the fault back for long */
  if (app_scraped(&a)) scrape_app(s, app);
  lab_wait(s->loop, app_scraped, &a, 300);
}

static void free_handle(uv_handle_t *h) { free(h); }

void lab_scraper_free(lab_scraper *s) {
  if (s == NULL) return;
  s->m->scraper = NULL;
  for (int i = 0; i < LAB_MAX_APPS; i++) lab_xfer_cleanup(&s->apps[i]);
  lab_xfer_cleanup(&s->bal);
  uv_timer_stop(s->timer);
  uv_close((uv_handle_t *)s->timer, free_handle);
  free(s);
}
