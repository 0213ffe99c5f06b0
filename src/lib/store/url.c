/* libtether: store URL parsing. Every malformed URL gets a message naming the part at fault. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../util.h"
#include "store_impl.h"

/* Percent-decodes s[0..n) into a new string; NULL on a bad escape or an embedded NUL. */
static char *pct_decode(const char *s, size_t n) {
  char *out = tether__malloc(n + 1);
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '%') {
      int h, l;
      if (i + 2 >= n) goto bad;
      h = tether__hexval(s[i + 1]);
      l = tether__hexval(s[i + 2]);
      if (h < 0 || l < 0 || (h == 0 && l == 0)) goto bad;
      out[o++] = (char)(h << 4 | l);
      i += 2;
    } else {
      out[o++] = s[i];
    }
  }
  out[o] = '\0';
  return out;
bad:
  free(out);
  return NULL;
}

static int parse_port(const char *s, size_t n, int *port, const char *text) {
  if (n == 0 || n > 5) return tether__fail(TETHER_EINVAL, "store URL '%s': bad port '%.*s'", text, (int)n, s);
  int v = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isdigit((unsigned char)s[i]))
      return tether__fail(TETHER_EINVAL, "store URL '%s': bad port '%.*s'", text, (int)n, s);
    v = v * 10 + (s[i] - '0');
  }
  if (v < 1 || v > 65535) return tether__fail(TETHER_EINVAL, "store URL '%s': port %d out of range 1-65535", text, v);
  *port = v;
  return 0;
}

static int parse_host(const char *s, size_t n, tether__url_host *h, const char *text) {
  const char *colon;
  if (n == 0) return tether__fail(TETHER_EINVAL, "store URL '%s': empty host", text);
  if (s[0] == '[') {
    const char *end = memchr(s, ']', n);
    if (end == NULL) return tether__fail(TETHER_EINVAL, "store URL '%s': unclosed '[' in host", text);
    size_t hl = (size_t)(end - s - 1);
    if (hl == 0) return tether__fail(TETHER_EINVAL, "store URL '%s': empty host '[]'", text);
    if (strspn(s + 1, "0123456789abcdefABCDEF:.") < hl || memchr(s + 1, ':', hl) == NULL)
      return tether__fail(TETHER_EINVAL, "store URL '%s': bad IPv6 literal '%.*s'", text, (int)(hl + 2), s);
    size_t rest = n - (size_t)(end - s + 1);
    if (rest > 0 && end[1] != ':') return tether__fail(TETHER_EINVAL, "store URL '%s': junk after ']'", text);
    if (rest > 0 && parse_port(end + 2, rest - 1, &h->port, text) < 0) return TETHER_EINVAL;
    h->host = tether__strndup(s + 1, hl);
    return 0;
  }
  colon = memchr(s, ':', n);
  size_t hl = colon ? (size_t)(colon - s) : n;
  if (hl == 0) return tether__fail(TETHER_EINVAL, "store URL '%s': empty host", text);
  for (size_t i = 0; i < hl; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!(isalnum(c) || c == '.' || c == '-' || c == '_'))
      return tether__fail(TETHER_EINVAL, "store URL '%s': bad character '%c' in host", text, c);
  }
  if (colon && parse_port(colon + 1, n - hl - 1, &h->port, text) < 0) return TETHER_EINVAL;
  h->host = tether__strndup(s, hl); /* only once nothing can fail: a failed host is not freed */
  return 0;
}

static int parse_query(const char *q, tether__url *url, const char *text) {
  while (*q) {
    const char *amp = strchr(q, '&');
    size_t n = amp ? (size_t)(amp - q) : strlen(q);
    if (n > 0) {
      if (url->nparams == TETHER__URL_MAX_PARAMS)
        return tether__fail(TETHER_EINVAL, "store URL '%s': too many parameters", text);
      const char *eq = memchr(q, '=', n);
      size_t kl = eq ? (size_t)(eq - q) : n;
      char *k = pct_decode(q, kl);
      char *v = eq ? pct_decode(eq + 1, n - kl - 1) : tether__strdup("");
      if (k == NULL || v == NULL || *k == '\0') {
        free(k);
        free(v);
        return tether__fail(TETHER_EINVAL, "store URL '%s': bad parameter '%.*s'", text, (int)n, q);
      }
      url->params[url->nparams].key = k;
      url->params[url->nparams].value = v;
      url->nparams++;
    }
    q += n;
    if (*q == '&') q++;
  }
  return 0;
}

static int parse_userinfo(const char *s, size_t n, tether__url *url, const char *text) {
  const char *colon = memchr(s, ':', n);
  size_t ul = colon ? (size_t)(colon - s) : n;
  url->user = pct_decode(s, ul);
  if (colon) url->password = pct_decode(colon + 1, n - ul - 1);
  if (url->user == NULL || (colon && url->password == NULL))
    return tether__fail(TETHER_EINVAL, "store URL '%s': bad escape in user or password", text);
  return 0;
}

static int url_parse(const char *text, tether__url *url, const char *shown);

int tether__url_parse(const char *text, tether__url *url) {
  /* messages quote the URL without its password: they end up in logs */
  char *shown = tether__url_redact(text);
  int rc = url_parse(text, url, shown);
  free(shown);
  return rc;
}

static int url_parse(const char *text, tether__url *url, const char *shown) {
  int rc;
  memset(url, 0, sizeof(*url));
  const char *colon = strchr(text, ':');
  if (colon == NULL || colon == text) return tether__fail(TETHER_EINVAL, "store URL '%s': no scheme", shown);
  url->scheme = tether__strndup(text, (size_t)(colon - text));
  for (char *p = url->scheme; *p; p++) *p = (char)tolower((unsigned char)*p);
  const char *rest = colon + 1;
  const char *qmark = strchr(rest, '?');
  size_t main_len = qmark ? (size_t)(qmark - rest) : strlen(rest);
  if (strncmp(rest, "//", 2) != 0) {
    url->path = pct_decode(rest, main_len);
    if (url->path == NULL) {
      rc = tether__fail(TETHER_EINVAL, "store URL '%s': bad %%-escape in path", shown);
      goto fail;
    }
  } else {
    const char *auth = rest + 2;
    const char *end = rest + main_len;
    const char *slash = memchr(auth, '/', (size_t)(end - auth));
    const char *auth_end = slash ? slash : end;
    /* The last '@' separates userinfo: passwords may contain '@' only percent-encoded, but be lenient. */
    const char *at = NULL;
    for (const char *p = auth; p < auth_end; p++)
      if (*p == '@') at = p;
    if (at) {
      rc = parse_userinfo(auth, (size_t)(at - auth), url, shown);
      if (rc < 0) goto fail;
      auth = at + 1;
    }
    while (auth < auth_end) {
      const char *comma = memchr(auth, ',', (size_t)(auth_end - auth));
      const char *hend = comma ? comma : auth_end;
      if (url->nhosts == TETHER__URL_MAX_HOSTS) {
        rc = tether__fail(TETHER_EINVAL, "store URL '%s': more than %d hosts", shown, TETHER__URL_MAX_HOSTS);
        goto fail;
      }
      rc = parse_host(auth, (size_t)(hend - auth), &url->hosts[url->nhosts], shown);
      if (rc < 0) goto fail;
      url->nhosts++;
      auth = comma ? comma + 1 : auth_end;
      if (comma && auth == auth_end) {
        rc = tether__fail(TETHER_EINVAL, "store URL '%s': empty host after ','", shown);
        goto fail;
      }
    }
    url->path = slash ? pct_decode(slash + 1, (size_t)(end - slash - 1)) : tether__strdup("");
    if (url->path == NULL) {
      rc = tether__fail(TETHER_EINVAL, "store URL '%s': bad %%-escape in path", shown);
      goto fail;
    }
  }
  if (qmark) {
    rc = parse_query(qmark + 1, url, shown);
    if (rc < 0) goto fail;
  }
  return 0;
fail:
  tether__url_free(url);
  return rc;
}

void tether__url_free(tether__url *url) {
  free(url->scheme);
  free(url->user);
  free(url->password);
  for (size_t i = 0; i < url->nhosts; i++) free(url->hosts[i].host);
  free(url->path);
  for (size_t i = 0; i < url->nparams; i++) {
    free(url->params[i].key);
    free(url->params[i].value);
  }
  memset(url, 0, sizeof(*url));
}

int tether__url_check_params(const tether__url *url, const char *const *allowed) {
  for (size_t i = 0; i < url->nparams; i++) {
    int ok = 0;
    for (const char *const *a = allowed; *a && !ok; a++) ok = strcmp(*a, url->params[i].key) == 0;
    if (!ok) {
      tether__buf names = {0};
      for (const char *const *a = allowed; *a; a++) tether__buf_appendf(&names, "%s%s", a == allowed ? "" : ", ", *a);
      int rc = tether__fail(TETHER_EINVAL, "%s store: unknown URL parameter '%s' (known: %s)", url->scheme,
                            url->params[i].key, names.data ? names.data : "none");
      tether__buf_free(&names);
      return rc;
    }
  }
  return 0;
}

const char *tether__url_param(const tether__url *url, const char *key) {
  for (size_t i = 0; i < url->nparams; i++)
    if (strcmp(url->params[i].key, key) == 0) return url->params[i].value;
  return NULL;
}

int tether__url_param_int(const tether__url *url, const char *key, long def, long min, long max, long *out) {
  const char *v = tether__url_param(url, key);
  if (v == NULL) {
    *out = def;
    return 0;
  }
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (errno || end == v || *end != '\0' || n < min || n > max)
    return tether__fail(TETHER_EINVAL, "%s store: parameter %s=%s is not an integer in [%ld, %ld]", url->scheme, key, v,
                        min, max);
  *out = n;
  return 0;
}

char *tether__url_redact(const char *text) {
  /* every "scheme://" authority, since dual:A+B carries two URLs */
  tether__buf b = {0};
  const char *p = text, *ss;
  while ((ss = strstr(p, "://")) != NULL) {
    const char *auth = ss + 3;
    size_t alen = strcspn(auth, "/?");
    const char *at = NULL;
    for (const char *q = auth; q < auth + alen; q++)
      if (*q == '@') at = q;
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon == NULL) {
      tether__buf_append(&b, p, (size_t)(auth - p));
      p = auth;
      continue;
    }
    tether__buf_append(&b, p, (size_t)(colon + 1 - p));
    tether__buf_append(&b, "***", 3);
    p = at;
  }
  tether__buf_append(&b, p, strlen(p));
  return b.data ? b.data : tether__strdup("");
}
