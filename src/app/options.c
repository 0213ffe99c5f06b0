/* tether-app: the command line (options_parse) and its help. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"

static const struct option opts[] = {{"listen", required_argument, NULL, 'l'},
                                     {"name", required_argument, NULL, 'n'},
                                     {"sessions", required_argument, NULL, 's'},
                                     {"secret", required_argument, NULL, 'k'},
                                     {"jwt-secret", required_argument, NULL, 'j'},
                                     {"cookie-secure", optional_argument, NULL, 'S'},
                                     {"trust-proxy", required_argument, NULL, 'P'},
                                     {"absolute-timeout", required_argument, NULL, 'A'},
                                     {"weak-secret-ok", no_argument, NULL, 'W'},
                                     {"max-age", required_argument, NULL, 'm'},
                                     {"threads", required_argument, NULL, 't'},
                                     {"dashboard-url", required_argument, NULL, 'D'},
                                     {"help", no_argument, NULL, 'h'},
                                     {NULL, 0, NULL, 0}};

static void usage(FILE *out) {
  fprintf(out,
          "usage: tether-app [options]\n"
          "  --listen ADDR:PORT   where to listen (default 127.0.0.1:9001)\n"
          "  --name NAME          this instance's name, shown in every answer (default app)\n"
          "  --sessions URL       session store (default sqlite:./var/sessions.db); any libtether store URL:\n"
          "                       memory:, sqlite:PATH, redis://, redis-sentinel://, memcached://, postgres://,\n"
          "                       dual:LOCAL+SHARED, jwt:\n"
          "  --secret S           cookie signing secret (repeatable: the first signs, all verify; env:NAME reads\n"
          "                       the environment); default: $TETHER_SECRET\n"
          "  --jwt-secret S       HS256 secret for API tokens (env:NAME reads the environment); default:\n"
          "                       $JWT_SECRET. POST /login?token=1 (or \"token\":true, token=1 in the body)\n"
          "                       answers {\"token\":JWT} valid 1 h, with no session; GET /api/me verifies\n"
          "                       Authorization: Bearer JWT. Without it both answer 501\n"
          "  --weak-secret-ok     accept a --jwt-secret shorter than 32 bytes (RFC 7518 3.2 asks for 32)\n"
          "  --cookie-secure[=auto|on|off]  Secure session cookie: on (no value) sends the cookie only in answer\n"
          "                       to secure requests; auto marks it Secure iff the request is secure (default off)\n"
          "  --trust-proxy CIDR   a proxy whose X-Forwarded-Proto says whether a request is secure\n"
          "                       (repeatable; e.g. 127.0.0.1/32). Without one, no request is secure\n"
          "  --absolute-timeout SECONDS  a session ends this long after it was created, whatever its activity\n"
          "                       (default 0: no absolute lifetime)\n"
          "  --max-age SECONDS    session cookie lifetime (default 3600; 0: a browser-session cookie)\n"
          "  --threads N          worker threads, each an event loop (default: one per core); stores other than\n"
          "                       redis:// run on libuv's thread pool (UV_THREADPOOL_SIZE, default here 16)\n"
          "  --dashboard-url URL  the page links to the balancer's dashboard there (http:// or https://);\n"
          "                       default: $TETHER_DASHBOARD_URL; neither: no link\n"
          "  --help\n");
}

static const char *resolve_secret(const char *arg) {
  if (strncmp(arg, "env:", 4) == 0) {
    const char *v = getenv(arg + 4);
    if (v == NULL || *v == '\0') {
      fprintf(stderr, "tether-app: environment variable %s is not set\n", arg + 4);
      exit(2);
    }
    return v;
  }
  return arg;
}

/* A whole number in [lo, hi] into *out; "" counts as 0 when empty_ok. 0, or -1. */
static int number(const char *arg, int empty_ok, long lo, long hi, long *out) {
  char *end;
  *out = strtol(arg, &end, 10);
  return (end == arg && !empty_ok) || *end || *out < lo || *out > hi ? -1 : 0;
}

/* --dashboard-url (or $TETHER_DASHBOARD_URL): an http(s) URL without quotes, spaces or controls. 0, or -1
 * with a message. */
static int dashboard_url(const char *url, const char *from) {
  int scheme = strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0;
  for (const unsigned char *p = (const unsigned char *)url; scheme && *p; p++)
    if (*p <= ' ' || *p == '"' || *p == '<' || *p == '>' || *p == '\\' || *p >= 0x7f) scheme = 0;
  if (!scheme) {
    fprintf(stderr, "tether-app: %s takes an http:// or https:// URL without spaces or quotes\n", from);
    return -1;
  }
  the_app.dashboard_url = url;
  return 0;
}

/* --cookie-secure[=auto|on|off]. 0, or -1 with a message. */
static int cookie_secure(options *o, int argc, char **argv) {
  /* "--cookie-secure auto" as well as "--cookie-secure=auto"; alone it means on (as it always did) */
  if (optarg == NULL && optind < argc &&
      (!strcmp(argv[optind], "auto") || !strcmp(argv[optind], "on") || !strcmp(argv[optind], "off") ||
       argv[optind][0] != '-'))
    optarg = argv[optind++];
  if (optarg == NULL || strcmp(optarg, "on") == 0) {
    o->so.cookie.secure = 1;
  } else if (strcmp(optarg, "auto") == 0) {
    o->so.cookie.secure = TETHER_COOKIE_SECURE_AUTO;
  } else if (strcmp(optarg, "off") == 0) {
    o->so.cookie.secure = 0;
  } else {
    fprintf(stderr, "tether-app: --cookie-secure takes auto, on or off, got %s\n", optarg);
    return -1;
  }
  return 0;
}

/* The secrets from the environment when the command line gave none; the token signer. -1 to go on, or 2
 * with a message. */
static int secrets(options *o) {
  if (o->so.secret_count == 0 && getenv("TETHER_SECRET")) o->so.secret[o->so.secret_count++] = getenv("TETHER_SECRET");
  if (o->so.secret_count == 0) {
    fprintf(stderr, "tether-app: a cookie secret is required: --secret S (or env:NAME, or $TETHER_SECRET)\n");
    return 2;
  }
  const char *jwt_secret = getenv("JWT_SECRET"); /* --jwt-secret has set it */
  if (jwt_secret && *jwt_secret && tokens_setup(jwt_secret, o->weak_secret_ok) < 0) {
    fprintf(stderr, "tether-app: --jwt-secret: %s\n", tether_last_error());
    return 2;
  }
  return -1;
}

int options_parse(int argc, char **argv, options *o) {
  o->listen_at = "127.0.0.1:9001";
  o->url = "sqlite:./var/sessions.db";
  tether_session_options_init(&o->so);
  o->so.cookie.max_age_ms = 3600 * 1000;
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  o->threads = ncpu > 0 && ncpu < 64 ? (int)ncpu : 2;
  o->weak_secret_ok = 0;
  int ch;
  the_app.name = "app";
  const char *env_dashboard = getenv("TETHER_DASHBOARD_URL");
  if (env_dashboard && *env_dashboard && dashboard_url(env_dashboard, "TETHER_DASHBOARD_URL") < 0) return 2;
  while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (ch) {
    case 'l':
      o->listen_at = optarg;
      break;
    case 'n':
      the_app.name = optarg;
      break;
    case 's':
      o->url = optarg;
      break;
    case 'k':
      if (o->so.secret_count == TETHER_MAX_SECRETS) {
        fprintf(stderr, "tether-app: at most %d secrets\n", TETHER_MAX_SECRETS);
        return 2;
      }
      o->so.secret[o->so.secret_count++] = resolve_secret(optarg);
      break;
    case 'j':
      setenv("JWT_SECRET", resolve_secret(optarg), 1);
      break;
    case 'S':
      if (cookie_secure(o, argc, argv) < 0) return 2;
      break;
    case 'P':
      if (tether_trusted_proxies_add(&the_app.trusted, optarg) < 0) {
        fprintf(stderr, "tether-app: --trust-proxy: %s\n", tether_last_error());
        return 2;
      }
      break;
    case 'A': {
      long v;
      if (number(optarg, 0, 0, 400L * 86400, &v) < 0) {
        fprintf(stderr, "tether-app: --absolute-timeout takes seconds (0 to 400 days)\n");
        return 2;
      }
      o->so.absolute_timeout_ms = (int64_t)v * 1000;
      break;
    }
    case 'W':
      o->weak_secret_ok = 1;
      break;
    case 'm': {
      long v;
      if (number(optarg, 1, 0, 400L * 86400, &v) < 0) {
        fprintf(stderr, "tether-app: --max-age takes seconds (0 to 400 days)\n");
        return 2;
      }
      o->so.cookie.max_age_ms = v ? v * 1000 : -1;
      break;
    }
    case 't': {
      long v;
      if (number(optarg, 0, 1, 256, &v) < 0) {
        fprintf(stderr, "tether-app: --threads takes 1 to 256, got %s\n", optarg);
        return 2;
      }
      o->threads = (int)v;
      break;
    }
    case 'D':
      if (dashboard_url(optarg, "--dashboard-url") < 0) return 2;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "tether-app: unexpected argument %s (see --help)\n", argv[optind]);
    return 2;
  }
  json_t *name = json_string(the_app.name); /* NULL when not UTF-8 */
  the_app.name_json = name ? json_dumps(name, JSON_ENCODE_ANY) : NULL;
  json_decref(name);
  return secrets(o);
}
