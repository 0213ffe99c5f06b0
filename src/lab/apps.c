/* tether-lab: the application behind the balancer (--app). tether-app, the seed's Express app
 * (tests/interop/express/app.js: express-session with its MemoryStore or connect-redis, under node) or the
 * seed's Flask app (tests/interop/flask/app.py: flask-session with an in-process store or Redis, under
 * gunicorn with one worker), all answering the routes the users drive (users.c) with the same JSON; or a
 * mixed fleet, tether-app and Express in turn on one Redis, which read each other's sessions (express-session's
 * signed connect.sid and its sess:<id> JSON). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lab.h"
#include "xalloc.h"

#ifndef LAB_APPS_DIR
#define LAB_APPS_DIR "tests/interop"
#endif

char **lab_argv_dup(const char *first, ...) {
  const char *items[40];
  size_t n = 0;
  va_list ap;
  va_start(ap, first);
  for (const char *a = first; a && n < 39; a = va_arg(ap, const char *)) items[n++] = a;
  va_end(ap);
  char **v = xcalloc(n + 1, sizeof(*v));
  for (size_t i = 0; i < n; i++) v[i] = xstrdup(items[i]);
  return v;
}

void lab_argv_free(char **v) {
  if (v == NULL) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

static const char *const kind_names[] = {"tether", "express", "flask", "mixed"};

const char *lab_app_kind_name(lab_app_kind k) {
  return (unsigned)k < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[k] : "?";
}

int lab_app_kind_parse(const char *s, lab_app_kind *k) {
  for (size_t i = 0; i < sizeof(kind_names) / sizeof(kind_names[0]); i++)
    if (strcmp(s, kind_names[i]) == 0) {
      *k = (lab_app_kind)i;
      return 0;
    }
  return -1;
}

const char *lab_app_cookie(lab_app_kind k) { return k == LAB_APP_FLASK ? "session" : "connect.sid"; }

/* Sessions in the app's memory, or in one Redis: the two the seed's apps have. */
static int local_sessions(const lab_strategy *st) { return strcmp(st->sessions, "memory:") == 0; }
static int redis_sessions(const lab_strategy *st) {
  return strcmp(st->sessions, "shared") == 0 && st->store == LAB_STORE_REDIS;
}

const char *lab_app_refuses(lab_app_kind k, const lab_strategy *st) {
  switch (k) {
  case LAB_APP_TETHER:
    return NULL;
  case LAB_APP_MIXED:
    return redis_sessions(st) ? NULL : "a mixed fleet shares its sessions through Redis: shared-redis only";
  default:
    return local_sessions(st) || redis_sessions(st)
               ? NULL
               : "the seed's apps keep their sessions in memory or in Redis: the *-local strategies and shared-redis";
  }
}

static const char *apps_dir(const lab_opts *o) { return o->app_dir ? o->app_dir : LAB_APPS_DIR; }

int lab_app_check(const lab_opts *o) {
  char path[600];
  const char *dir = apps_dir(o);
  if (o->app == LAB_APP_EXPRESS || o->app == LAB_APP_MIXED) {
    snprintf(path, sizeof(path), "%s/node_modules/express-session/package.json", dir);
    if (access(path, R_OK) != 0) {
      fprintf(stderr,
              "tether-lab: --app %s needs %s/express/app.js and its npm packages in %s/node_modules "
              "(scripts/deps runs npm ci there; --app-dir DIR points elsewhere)\n",
              lab_app_kind_name(o->app), dir, dir);
      return -1;
    }
  }
  if (o->app == LAB_APP_FLASK) {
    snprintf(path, sizeof(path), "%s/flask/app.py", dir);
    if (access(path, R_OK) != 0 || access("/usr/bin/gunicorn", X_OK) != 0) {
      fprintf(stderr,
              "tether-lab: --app flask needs %s and gunicorn, python3-flask, python3-flask-session, "
              "python3-redis (scripts/deps installs them)\n",
              path);
      return -1;
    }
  }
  return 0;
}

static int tether_argv(lab_topology *t, lab_proc *p, const char *listen_at, const char *sessions) {
  char exe[600];
  snprintf(exe, sizeof(exe), "%s/tether-app", t->bin);
  p->argv = lab_argv_dup(exe, "--listen", listen_at, "--name", p->name, "--sessions", sessions, "--secret", t->secret,
                         "--threads", "2", NULL);
  p->metrics = 1;
  return 0;
}

static int express_argv(lab_topology *t, lab_proc *p, const char *listen_at, int redis, const char *sessions) {
  char script[600];
  snprintf(script, sizeof(script), "%s/express/app.js", apps_dir(t->o));
  /* the same secret as tether-app's: in a mixed fleet each verifies the other's signature */
  p->argv = lab_argv_dup("node", script, "--listen", listen_at, "--name", p->name, "--secret", t->secret, "--store",
                         redis ? "redis" : "memory", "--redis", redis ? sessions : "redis://127.0.0.1:6379", NULL);
  return 0;
}

static int flask_argv(lab_topology *t, lab_proc *p, const char *listen_at, int redis, const char *sessions) {
  char chdir_to[600], name[48], store[32], url[1100], secret[64];
  snprintf(chdir_to, sizeof(chdir_to), "%s/flask", apps_dir(t->o));
  snprintf(name, sizeof(name), "LAB_NAME=%s", p->name);
  snprintf(store, sizeof(store), "LAB_STORE=%s", redis ? "redis" : "memory");
  snprintf(url, sizeof(url), "LAB_REDIS=%s", redis ? sessions : "");
  snprintf(secret, sizeof(secret), "LAB_SECRET=%s", t->secret);
  /* one worker, as the seed runs it; threads so that a slow request does not hold up the others */
  p->argv = lab_argv_dup("gunicorn", "--workers", "1", "--threads", "4", "--bind", listen_at, "--chdir", chdir_to,
                         "--graceful-timeout", "2", "--env", name, "--env", store, "--env", url, "--env", secret,
                         "app:app", NULL);
  return 0;
}

int lab_app_argv(lab_topology *t, lab_proc *p, int index, const char *sessions) {
  char listen_at[64];
  snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%d", p->port);
  lab_argv_free(p->argv);
  p->argv = NULL;
  p->metrics = 0;
  lab_app_kind k = t->o->app;
  if (k == LAB_APP_TETHER || (k == LAB_APP_MIXED && index % 2 == 0)) return tether_argv(t, p, listen_at, sessions);
  int redis = strncmp(sessions, "redis://", 8) == 0;
  if (!redis && strcmp(sessions, "memory:") != 0) {
    fprintf(stderr, "tether-lab: the %s app cannot keep its sessions in %s (memory or Redis only)\n",
            lab_app_kind_name(k), sessions);
    return -1;
  }
  return k == LAB_APP_FLASK ? flask_argv(t, p, listen_at, redis, sessions)
                            : express_argv(t, p, listen_at, redis, sessions);
}
