/* tether-lab: the results as a terminal table, a JSON document (schema in docs/strategies.md) and a
 * self-contained HTML page with SVG charts (load per app over time with the faults marked; session loss
 * and imbalance per strategy). */
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "html.h"
#include "lab.h"

/* ---- terminal ---- */

static void errors_text(const lab_measure *m, char *buf, size_t n) {
  size_t used = 0;
  snprintf(buf, n, "0");
  for (int st = 0; st < 600 && used < n; st++) {
    if (st == 200 || m->status[st] == 0) continue;
    const char *sep = used ? " " : "";
    unsigned long long c = (unsigned long long)m->status[st];
    int w = st ? snprintf(buf + used, n - used, "%s%d:%llu", sep, st, c)
               : snprintf(buf + used, n - used, "%snone:%llu", sep, c);
    used += (size_t)(w > 0 ? w : 0);
  }
}

/* Lost sessions as the users, the apps' metric and the balancer's session_monitor count them ("-": none). */
static void lost_text(const lab_measure *m, char *buf, size_t n, const char *sep) {
  char app[24] = "-", edge[24] = "-";
  if (m->app_kind == LAB_APP_TETHER || m->app_kind == LAB_APP_MIXED)
    snprintf(app, sizeof(app), "%.0f", m->missing_server);
  if (m->have_monitor) snprintf(edge, sizeof(edge), "%.0f", m->monitor_replaced);
  snprintf(buf, n, "%llu%s%s%s%s", (unsigned long long)m->lost_events, sep, app, sep, edge);
}

void lab_report_table(FILE *out, lab_measure *const *ms, size_t n) {
  fprintf(out, "%-21s %9s %7s  %-16s %-16s %-17s %8s %6s %7s %7s %7s\n", "strategy", "requests", "req/s", "errors",
          "lost users", "lost cli/app/edge", "max/mean", "CV", "breaks", "p50 ms", "p99 ms");
  for (size_t i = 0; i < n; i++) {
    const lab_measure *m = ms[i];
    char errs[128], lost[32], agree[64], breaks[16];
    errors_text(m, errs, sizeof(errs));
    snprintf(lost, sizeof(lost), "%d (%.1f%%)", m->users_lost, m->users ? 100.0 * m->users_lost / m->users : 0.0);
    lost_text(m, agree, sizeof(agree), "/");
    if (m->have_persist && m->st && m->st->policy != LAB_POLICY_NONE)
      snprintf(breaks, sizeof(breaks), "%.0f", m->breaks);
    else
      snprintf(breaks, sizeof(breaks), "-");
    fprintf(out, "%-21s %9llu %7.0f  %-16s %-16s %-17s %8.2f %6.3f %7s %7.2f %7.2f\n", m->label,
            (unsigned long long)m->requests, m->rps, errs, lost, agree, m->max_mean, m->cv, breaks, m->p50_ms,
            m->p99_ms);
  }
  for (size_t i = 0; i < n; i++) {
    const lab_measure *m = ms[i];
    int lagged = m->max_lag_ms > 300;
    if (m->nevents == 0 && !lagged) continue;
    fprintf(out, "  %s:", m->label);
    for (int k = 0; k < m->nevents; k++)
      fprintf(out, "%s %.1fs %s", k ? ";" : "", (double)m->events[k].t_ms / 1000.0, m->events[k].what);
    if (lagged)
      fprintf(out, "%s the lab itself ran up to %.0f ms late (busy machine)", m->nevents ? ";" : "", m->max_lag_ms);
    fprintf(out, "\n");
  }
}

/* ---- JSON ---- */

/* The whole seconds of the load (the stop phase and a last partial second would read as a collapse). */
static size_t series_len(const lab_measure *m) {
  size_t n = (size_t)(m->duration_ms / LAB_BUCKET_MS);
  if (n == 0) n = 1;
  return n < m->nbuckets ? n : m->nbuckets;
}

static json_t *u32_array(const uint32_t *v, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(a, json_integer(v[i]));
  return a;
}

static json_t *result_json(const lab_measure *m) {
  json_t *r = json_object();
  json_object_set_new(r, "strategy", json_string(m->st ? m->st->name : m->label));
  json_object_set_new(r, "label", json_string(m->label));
  json_object_set_new(r, "app", json_string(lab_app_kind_name(m->app_kind)));
  if (m->st) {
    json_object_set_new(r, "policy", json_string(lab_policy_text(m->st->policy)));
    json_object_set_new(r, "sessions", json_string(m->st->sessions));
    json_object_set_new(r, "keeps_sessions", json_boolean(m->st->keeps_sessions));
  }
  json_object_set_new(r, "faults", json_string(m->faults_text));
  json_object_set_new(r, "duration_ms", json_integer(m->duration_ms));
  json_object_set_new(r, "users", json_integer(m->users));
  json_object_set_new(r, "requests", json_integer((json_int_t)m->requests));
  json_object_set_new(r, "requests_per_second", json_real(m->rps));
  json_object_set_new(r, "errors", json_integer((json_int_t)m->errors));
  json_t *by = json_object();
  for (int st = 0; st < 600; st++) {
    if (st == 200 || m->status[st] == 0) continue;
    char k[8];
    snprintf(k, sizeof(k), "%d", st);
    json_object_set_new(by, k, json_integer((json_int_t)m->status[st]));
  }
  json_object_set_new(r, "errors_by_status", by);
  json_object_set_new(r, "sessions_lost",
                      json_pack("{s:i,s:f,s:I,s:I,s:i}", "users", m->users_lost, "percent_of_users",
                                m->users ? 100.0 * m->users_lost / m->users : 0.0, "events", (json_int_t)m->lost_events,
                                "app_missing", (json_int_t)m->missing_server, "on_killed_apps", m->at_risk));
  if (m->have_monitor)
    json_object_set_new(r, "session_monitor",
                        json_pack("{s:I,s:I,s:I,s:I}", "started", (json_int_t)m->monitor_started, "replaced",
                                  (json_int_t)m->monitor_replaced, "expected", (json_int_t)m->monitor_expected,
                                  "presented", (json_int_t)m->monitor_presented));
  else
    json_object_set_new(r, "session_monitor", json_null());
  json_t *per = json_object();
  for (int i = 0; i < m->napps; i++) json_object_set_new(per, m->app_names[i], json_integer((json_int_t)m->share[i]));
  json_object_set_new(r, "share",
                      json_pack("{s:o,s:f,s:f}", "per_app", per, "max_over_mean", m->max_mean, "cv", m->cv));
  if (m->have_persist) {
    double d[6];
    for (int k = 0; k < 6; k++) d[k] = m->persist[k] - m->persist_base[k];
    json_object_set_new(r, "affinity",
                        json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "hit", (json_int_t)d[0], "new", (json_int_t)d[1],
                                  "break_down", (json_int_t)d[2], "break_drain", (json_int_t)d[3], "break_unknown",
                                  (json_int_t)d[4], "break_overload", (json_int_t)d[5], "breaks",
                                  (json_int_t)m->breaks));
  } else
    json_object_set_new(r, "affinity", json_null());
  if (m->st && strcmp(m->st->sessions, "dual") == 0)
    json_object_set_new(r, "dual_shared_reads", json_integer((json_int_t)m->shared_reads));
  json_object_set_new(r, "latency_ms", json_pack("{s:f,s:f}", "p50", m->p50_ms, "p99", m->p99_ms));
  json_object_set_new(r, "lab_max_lag_ms", json_real(m->max_lag_ms));
  json_object_set_new(r, "sanitizer_reports", json_integer(m->sanitizer_reports));
  json_t *ev = json_array();
  for (int k = 0; k < m->nevents; k++)
    json_array_append_new(ev, json_pack("{s:I,s:s}", "t_ms", (json_int_t)m->events[k].t_ms, "what", m->events[k].what));
  json_object_set_new(r, "events", ev);
  size_t n = series_len(m);
  json_t *served = json_object();
  for (int i = 0; i < m->napps; i++) {
    json_t *a = json_array();
    for (size_t b = 0; b < n; b++) json_array_append_new(a, json_integer(m->served[b][i]));
    json_object_set_new(served, m->app_names[i], a);
  }
  json_object_set_new(r, "series",
                      json_pack("{s:i,s:o,s:o,s:o,s:o}", "bucket_ms", LAB_BUCKET_MS, "served", served, "requests",
                                u32_array(m->req_b, n), "errors", u32_array(m->err_b, n), "lost",
                                u32_array(m->lost_b, n)));
  return r;
}

json_t *lab_report_json(lab_measure *const *ms, size_t n, const lab_opts *o, const char *command) {
  char when[32];
  time_t now = time(NULL);
  strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
  json_t *faults = json_array();
  for (int i = 0; i < o->nfaults; i++) {
    char t[64];
    json_array_append_new(faults, json_string(lab_fault_text(&o->faults[i], t, sizeof(t))));
  }
  json_t *cfg =
      json_pack("{s:s,s:i,s:i,s:i,s:i,s:i,s:I,s:i,s:o}", "app", lab_app_kind_name(o->app), "apps", o->apps, "users",
                o->users, "nat", o->nat, "think_ms", o->think_ms, "session_requests", o->session_requests,
                "duration_ms", (json_int_t)o->duration_ms, "balance_factor", o->balance_factor, "faults", faults);
  json_t *results = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(results, result_json(ms[i]));
  return json_pack("{s:i,s:s,s:s,s:o,s:o}", "tether_lab", 1, "command", command, "finished", when, "config", cfg,
                   "results", results);
}

int lab_mkdir_for(const char *path) {
  char dir[512];
  snprintf(dir, sizeof(dir), "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash == NULL) return 0;
  *slash = '\0';
  for (char *p = dir + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    mkdir(dir, 0755);
    *p = '/';
  }
  if (mkdir(dir, 0755) < 0 && errno != EEXIST) return -1;
  return 0;
}

int lab_report_write_json(const char *path, json_t *doc) {
  if (lab_mkdir_for(path) < 0 || json_dump_file(doc, path, JSON_INDENT(1) | JSON_PRESERVE_ORDER) < 0) {
    fprintf(stderr, "tether-lab: cannot write %s\n", path);
    return -1;
  }
  return 0;
}

/* ---- HTML with SVG ---- */

static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd",
                                      "#8c564b", "#e377c2", "#17becf", "#bcbd22"};

/* Horizontal bars from `base` (0 for a share of users, 1 for max/mean), a dashed mark at `mark` (0: none). */
static void bar_chart(FILE *f, const char *title, lab_measure *const *ms, size_t n,
                      double (*value)(const lab_measure *), const char *unit, double base, double mark) {
  int w = 720, left = 180, bar = 22, top = 30, h = top + (int)n * (bar + 6) + 24;
  double max = mark > base ? mark - base : 0;
  for (size_t i = 0; i < n; i++)
    if (value(ms[i]) - base > max) max = value(ms[i]) - base;
  if (max <= 0) max = 1;
  double scale = (w - left - 90) / max;
  fprintf(f,
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
          "font-size=\"12\">\n",
          w, h);
  fprintf(f, "<text x=\"0\" y=\"16\" font-size=\"14\" font-weight=\"bold\">");
  html_escape(f, title);
  fprintf(f, "</text>\n");
  for (size_t i = 0; i < n; i++) {
    int y = top + (int)i * (bar + 6);
    double v = value(ms[i]), len = v > base ? (v - base) * scale : 0;
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", left - 6, y + 15);
    html_escape(f, ms[i]->label);
    fprintf(f,
            "</text><rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>"
            "<text x=\"%.1f\" y=\"%d\">%.2f%s</text>\n",
            left, y, len, bar, ms[i]->st && ms[i]->st->keeps_sessions ? "#2ca02c" : "#d62728", left + len + 4, y + 15,
            v, unit);
  }
  if (mark > base)
    fprintf(f,
            "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#444\" stroke-dasharray=\"4 3\"/>"
            "<text x=\"%.1f\" y=\"%d\" fill=\"#444\">%.2f</text>\n",
            left + (mark - base) * scale, left + (mark - base) * scale, top - 4, h - 20,
            left + (mark - base) * scale + 3, h - 8, mark);
  fprintf(f, "</svg>\n");
}

static double v_lost(const lab_measure *m) { return m->users ? 100.0 * m->users_lost / m->users : 0; }
static double v_maxmean(const lab_measure *m) { return m->max_mean; }

/* A round step (1, 2 or 5 times a power of ten) that cuts [0, max] into about `parts` intervals. */
static double nice_step(double max, int parts) {
  double raw = max / parts, p = 1;
  while (p * 10 <= raw) p *= 10;
  while (p > raw && p > 1e-9) p /= 10;
  return raw <= p ? p : raw <= 2 * p ? 2 * p : raw <= 5 * p ? 5 * p : 10 * p;
}

/* Lines drawn in order, the first widest and solid, each next one thinner and dashed, so a line that runs
 * on top of another leaves it visible on both sides; the markers tell them apart in print. */
static const char *const dashes[] = {"", "7 3", "2 2", "9 3 2 3"};

static void axes(FILE *f, int w, int h, int left, int right, int top, int bottom, size_t n, double xs, double ymax,
                 double ys) {
  int x1 = w - right, y0 = h - bottom;
  double ystep = nice_step(ymax, 4);
  for (double v = 0; v <= ymax + 1e-9; v += ystep) {
    double y = y0 - v * ys;
    fprintf(f,
            "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>"
            "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
            left, x1, y, y, left - 5, y + 4, v);
  }
  size_t tstep = (size_t)nice_step((double)n, 6);
  if (tstep == 0) tstep = 1;
  for (size_t b = 0; b <= n; b += tstep) {
    double x = left + (double)b * xs;
    fprintf(f,
            "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#888\"/>"
            "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%zu</text>\n",
            x, x, y0, y0 + 5, x, y0 + 17, b * LAB_BUCKET_MS / 1000);
  }
  fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#444\"/>\n", left, y0, x1, y0);
  fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#444\"/>\n", left, top, left, y0);
  fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">time since the load began (s)</text>\n", (left + x1) / 2,
          h - 4);
  fprintf(f, "<text transform=\"translate(14 %d) rotate(-90)\" text-anchor=\"middle\">requests per second</text>\n",
          (top + y0) / 2);
}

static void app_line(FILE *f, const lab_measure *m, int i, size_t n, int left, int y0, double xs, double ys) {
  double width = 1.5 + 1.5 * (m->napps - 1 - i);
  if (width > 6) width = 6;
  const char *color = palette[i % 8], *dash = dashes[i % 4];
  fprintf(f, "<polyline fill=\"none\" stroke-width=\"%.1f\" stroke=\"%s\" stroke-linejoin=\"round\"%s%s%s points=\"",
          width, color, dash[0] ? " stroke-dasharray=\"" : "", dash, dash[0] ? "\"" : "");
  for (size_t b = 0; b < n; b++) fprintf(f, "%.1f,%.1f ", left + ((double)b + 0.5) * xs, y0 - m->served[b][i] * ys);
  fprintf(f, "\"/>\n");
  /* a marker every few seconds, shifted per app so that markers of overlapping lines do not stack */
  size_t every = n > 20 ? n / 10 : 2;
  for (size_t b = (size_t)i % every; b < n; b += every) {
    double x = left + ((double)b + 0.5) * xs, y = y0 - m->served[b][i] * ys;
    if (i % 3 == 0)
      fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n", x, y, color);
    else if (i % 3 == 1)
      fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"7\" height=\"7\" fill=\"%s\"/>\n", x - 3.5, y - 3.5, color);
    else
      fprintf(f, "<path d=\"M%.1f %.1fl4 7h-8z\" fill=\"%s\"/>\n", x, y - 4.5, color);
  }
}

static void legend(FILE *f, const lab_measure *m, int x, int top) {
  for (int i = 0; i < m->napps; i++) {
    int y = top + 10 + 16 * i;
    const char *dash = dashes[i % 4];
    fprintf(f,
            "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2.5\"%s%s%s/>"
            "<text x=\"%d\" y=\"%d\" fill=\"%s\">%s</text>\n",
            x, x + 22, y, y, palette[i % 8], dash[0] ? " stroke-dasharray=\"" : "", dash, dash[0] ? "\"" : "", x + 26,
            y + 4, palette[i % 8], m->app_names[i]);
  }
}

static void load_chart(FILE *f, const lab_measure *m) {
  int w = 760, h = 260, left = 62, right = 90, top = 24, bottom = 42;
  size_t n = series_len(m);
  double max = 1;
  for (size_t b = 0; b < n; b++)
    for (int i = 0; i < m->napps; i++)
      if (m->served[b][i] > max) max = m->served[b][i];
  max = ceil(max / nice_step(max, 4)) * nice_step(max, 4);
  double xs = (double)(w - left - right) / (double)n, ys = (h - top - bottom) / max; /* bucket b: [b, b+1) s */
  int y0 = h - bottom;
  fprintf(f,
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
          "font-size=\"11\" role=\"img\">\n",
          w, h);
  fprintf(f, "<text x=\"0\" y=\"14\" font-size=\"13\" font-weight=\"bold\">");
  html_escape(f, m->label);
  fprintf(f, ": requests per second served by each app</text>\n");
  axes(f, w, h, left, right, top, bottom, n, xs, max, ys);
  if (n > 0) {
    double lmax = 0;
    for (size_t b = 0; b < n; b++)
      if (m->lost_b[b] > lmax) lmax = m->lost_b[b];
    for (size_t b = 0; b < n && lmax > 0; b++)
      if (m->lost_b[b])
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#d62728\" opacity=\"0.35\"/>\n",
                left + ((double)b + 0.25) * xs, (double)y0 - 30.0 * m->lost_b[b] / lmax, xs / 2,
                30.0 * m->lost_b[b] / lmax);
  }
  for (int i = 0; i < m->napps; i++) app_line(f, m, i, n, left, y0, xs, ys);
  legend(f, m, w - right + 8, top);
  for (int k = 0; k < m->nevents; k++) {
    double x = left + (double)m->events[k].t_ms / LAB_BUCKET_MS * xs;
    const char *what = m->events[k].what;
    const char *color = strstr(what, "killed") || strstr(what, "not ")                                 ? "#d62728"
                        : strstr(what, "restarted") || strstr(what, "started") || strstr(what, " on ") ? "#2ca02c"
                                                                                                       : "#666";
    fprintf(f,
            "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-dasharray=\"5 3\"/>"
            "<text x=\"%.1f\" y=\"%d\" fill=\"%s\">",
            x, x, top, y0, color, x + 3, top + 10 + 12 * (k % 3), color);
    html_escape(f, m->events[k].what);
    fprintf(f, "</text>\n");
  }
  fprintf(f, "<text x=\"%d\" y=\"%d\" fill=\"#d62728\" text-anchor=\"end\">red bars: sessions lost</text>\n", w - 2,
          h - 4);
  fprintf(f, "</svg>\n");
}

int lab_report_write_html(const char *path, lab_measure *const *ms, size_t n, const lab_opts *o, const char *title,
                          const char *command) {
  if (lab_mkdir_for(path) < 0) return -1;
  FILE *f = fopen(path, "w");
  if (f == NULL) {
    fprintf(stderr, "tether-lab: cannot write %s: %s\n", path, strerror(errno));
    return -1;
  }
  fprintf(f, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>");
  html_escape(f, title);
  fprintf(f,
          "</title>\n<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
          "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
          "td:first-child,th:first-child{text-align:left}code,pre{background:#f4f4f4}svg{display:block;margin:1em 0}"
          "</style></head><body>\n<h1>");
  html_escape(f, title);
  fprintf(f, "</h1>\n<p>Command: <code>");
  html_escape(f, command);
  fprintf(f, "</code><br>%s app, ", lab_app_kind_name(o->app));
  fprintf(f, "%d apps, %d users%s, think time %d ms, %d requests per login session, %.1f s of load.</p>\n", o->apps,
          o->users, o->nat ? " behind NAT" : "", o->think_ms, o->session_requests, (double)o->duration_ms / 1000);
  fprintf(
      f, "<table><tr><th>strategy</th><th>faults</th><th>requests</th><th>errors</th><th>users that lost a session</th>"
         "<th>lost sessions (users / app metric / edge monitor)</th><th>max/mean</th><th>CV</th><th>affinity "
         "breaks</th><th>p50 ms</th>"
         "<th>p99 ms</th></tr>\n");
  for (size_t i = 0; i < n; i++) {
    const lab_measure *m = ms[i];
    char errs[128];
    errors_text(m, errs, sizeof(errs));
    fprintf(f, "<tr><td>");
    html_escape(f, m->label);
    fprintf(f, "</td><td>");
    html_escape(f, m->faults_text[0] ? m->faults_text : "none");
    char lost[64];
    lost_text(m, lost, sizeof(lost), " / ");
    fprintf(f, "</td><td>%llu</td><td>%s</td><td>%d (%.1f%%)</td><td>%s</td><td>%.2f</td><td>%.3f</td>",
            (unsigned long long)m->requests, errs, m->users_lost, m->users ? 100.0 * m->users_lost / m->users : 0.0,
            lost, m->max_mean, m->cv);
    if (m->have_persist && m->st && m->st->policy != LAB_POLICY_NONE)
      fprintf(f, "<td>%.0f</td>", m->breaks);
    else
      fprintf(f, "<td>-</td>");
    fprintf(f, "<td>%.2f</td><td>%.2f</td></tr>\n", m->p50_ms, m->p99_ms);
  }
  fprintf(f, "</table>\n");
  if (n > 1) {
    bar_chart(f, "Users that lost a session (% of users)", ms, n, v_lost, "%", 0, 0);
    bar_chart(f, "Imbalance: busiest app over the mean, all apps up (dashed: bounded-load factor)", ms, n, v_maxmean,
              "", 1, o->balance_factor / 100.0);
  }
  for (size_t i = 0; i < n; i++) load_chart(f, ms[i]);
  fprintf(f, "<p>Lost sessions are counted three times: by the simulated users (their visits or cart went back, or "
             "their login disappeared), by tether-app (<code>tether_sessions_missing_total</code>; the Express and "
             "Flask apps have no such metric) and by the balancer's edge monitor (<code>session_monitor</code>: "
             "<code>tether_session_replaced_total</code>, a session cookie that came in and was answered with "
             "another). Green bars: strategies expected to keep every session when an app dies.</p>\n</body></html>\n");
  fclose(f);
  return 0;
}
