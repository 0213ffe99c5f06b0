/* The ssl_* directives (nginx's names and meanings). Files are only named here; tls/context.c reads them when
 * the configuration is loaded. */
#include <stdio.h>
#include <string.h>

#include "../lib/util.h"
#include "config-int.h"

static void copy_path(tether__conf_parser *ps, tether__conf_directive *d, char *out, size_t cap) {
  if (strlen(d->args[1]) >= cap)
    tether__conf_error(ps, d->line, "\"%s\": the path is too long", d->args[0]);
  else
    snprintf(out, cap, "%s", d->args[1]);
}

/* ssl_protocols: TLSv1.2 and TLSv1.3; the older ones are refused (no forward secrecy guarantee, deprecated by
 * RFC 8996), not silently dropped. */
static void protocols_line(tether__conf_parser *ps, tether__conf_directive *d, int *protocols) {
  const char *n = d->args[0];
  *protocols = 0;
  for (int i = 1; i < d->nargs; i++) {
    const char *p = d->args[i];
    if (strcmp(p, "TLSv1.2") == 0)
      *protocols |= TETHER__TLS_V12;
    else if (strcmp(p, "TLSv1.3") == 0)
      *protocols |= TETHER__TLS_V13;
    else if (strcmp(p, "SSLv2") == 0 || strcmp(p, "SSLv3") == 0 || strcmp(p, "TLSv1") == 0 || strcmp(p, "TLSv1.1") == 0)
      tether__conf_error(ps, d->line, "%s %s: refused (RFC 8996); Tether speaks TLSv1.2 and TLSv1.3", n, p);
    else
      tether__conf_error(ps, d->line, "%s: unknown protocol \"%s\" (TLSv1.2, TLSv1.3)", n, p);
  }
}

static void cert_line(tether__conf_parser *ps, tether__conf_directive *d, tether__cf_tls *t, int key) {
  int *n = key ? &t->nkey : &t->ncert;
  if (*n == TETHER__TLS_MAX_CERTS) {
    tether__conf_error(ps, d->line, "\"%s\": at most %d", d->args[0], TETHER__TLS_MAX_CERTS);
    return;
  }
  char(**list)[512] = key ? &t->key : &t->cert;
  *list = tether__cf_grow(ps->cf, *list, (size_t)*n, sizeof(**list));
  copy_path(ps, d, (*list)[*n], sizeof(**list));
  if (!key) t->cert_line[*n] = d->line;
  (*n)++;
}

/* Directives whose value is a word. */
static void value_line(tether__conf_parser *ps, tether__conf_directive *d, tether__cf_tls *t) {
  const char *n = d->args[0];
  if (strcmp(n, "ssl_ciphers") == 0) {
    copy_path(ps, d, t->ciphers, sizeof(t->ciphers));
  } else if (strcmp(n, "ssl_prefer_server_ciphers") == 0) {
    tether__conf_flag(ps, d, d->args[1], &t->prefer_server_ciphers);
  } else if (strcmp(n, "ssl_session_tickets") == 0) {
    tether__conf_flag(ps, d, d->args[1], &t->session_tickets);
  } else if (strcmp(n, "ssl_session_timeout") == 0) {
    tether__conf_time(ps, d, d->args[1], &t->session_timeout_ms);
  } else if (strcmp(n, "ssl_session_ticket_key") == 0) {
    if (t->nticket_key == TETHER__TLS_MAX_TICKET_KEYS)
      tether__conf_error(ps, d->line, "ssl_session_ticket_key: at most %d", TETHER__TLS_MAX_TICKET_KEYS);
    else {
      t->ticket_key = tether__cf_grow(ps->cf, t->ticket_key, (size_t)t->nticket_key, sizeof(*t->ticket_key));
      copy_path(ps, d, t->ticket_key[t->nticket_key++], sizeof(t->ticket_key[0]));
    }
  } else if (strcmp(n, "ssl_stapling") == 0) {
    int on = 0;
    if (tether__conf_flag(ps, d, d->args[1], &on) == 0 && on)
      tether__conf_error(ps, d->line, "ssl_stapling on: OCSP stapling is not supported yet");
  } else if (strcmp(n, "ssl_dhparam") == 0) {
    tether__conf_error(ps, d->line,
                       "ssl_dhparam: refused; Tether offers ECDHE key exchange only (forward secrecy without "
                       "DH parameters)");
  } else if (strcmp(n, "ssl_session_cache") == 0) {
    if (strcmp(d->args[1], "off") != 0 && strcmp(d->args[1], "none") != 0)
      tether__conf_error(ps, d->line,
                         "ssl_session_cache: Tether resumes by session tickets only (stateless, shared by "
                         "instances through ssl_session_ticket_key); use off or none");
  }
}

int tether__conf_ssl(tether__conf_parser *ps, tether__conf_directive *d) {
  static const char *const one[] = {"ssl_certificate",           "ssl_certificate_key", "ssl_ciphers",
                                    "ssl_prefer_server_ciphers", "ssl_session_tickets", "ssl_session_timeout",
                                    "ssl_session_ticket_key",    "ssl_stapling",        "ssl_dhparam",
                                    "ssl_session_cache"};
  const char *n = d->args[0];
  if (strncmp(n, "ssl_", 4) != 0) return 0;
  tether__cf_tls *t = ps->vs ? &ps->vs->tls : &ps->cf->tls;
  if (t->line == 0) t->line = d->line;
  if (strcmp(n, "ssl_protocols") == 0) {
    if (tether__conf_want_args(ps, d, 1, 4) == 0) protocols_line(ps, d, &t->protocols);
    return 1;
  }
  if (strcmp(n, "ssl_conf_command") == 0) {
    if (tether__conf_want_args(ps, d, 2, 2) < 0) return 1;
    if (t->nconf_cmd == 8 || strlen(d->args[1]) >= 256 || strlen(d->args[2]) >= 256) {
      tether__conf_error(ps, d->line, "ssl_conf_command: at most 8, each under 256 characters");
      return 1;
    }
    t->conf_cmd = tether__cf_grow(ps->cf, t->conf_cmd, (size_t)t->nconf_cmd, sizeof(*t->conf_cmd));
    snprintf(t->conf_cmd[t->nconf_cmd][0], 256, "%s", d->args[1]);
    snprintf(t->conf_cmd[t->nconf_cmd][1], 256, "%s", d->args[2]);
    t->nconf_cmd++;
    return 1;
  }
  for (size_t i = 0; i < TETHER__ARRAY_SIZE(one); i++) {
    if (strcmp(n, one[i]) != 0) continue;
    if (tether__conf_want_args(ps, d, 1, 1) < 0) return 1;
    if (strcmp(n, "ssl_certificate") == 0 || strcmp(n, "ssl_certificate_key") == 0)
      cert_line(ps, d, t, strcmp(n, "ssl_certificate_key") == 0);
    else
      value_line(ps, d, t);
    return 1;
  }
  tether__conf_error(ps, d->line, "unknown directive \"%s\"", n);
  return 1;
}

/* One level's own ssl_* directives (before servers inherit). */
static void check_level(tether__conf_parser *ps, const tether__cf_tls *t) {
  if (t->ncert != t->nkey)
    tether__conf_error(ps, t->line, "every ssl_certificate needs its ssl_certificate_key (%d certificates, %d keys)",
                       t->ncert, t->nkey);
  if (t->protocols == 0) tether__conf_error(ps, t->line, "ssl_protocols: no protocol left");
}

void tether__conf_ssl_check(tether__conf_parser *ps, tether__config *cf) {
  check_level(ps, &cf->tls);
  for (size_t v = 0; v < cf->nvservers; v++) check_level(ps, &cf->vservers[v].tls);
}

void tether__conf_ssl_unset(tether__cf_tls *t) {
  memset(t, 0, sizeof(*t));
  t->protocols = -1;
  t->prefer_server_ciphers = -1;
  t->session_timeout_ms = -1;
  t->session_tickets = -1;
}

/* The lists are shared with the outer level (the file is read: neither grows any more). */
void tether__conf_ssl_merge(tether__cf_tls *t, const tether__cf_tls *outer) {
  if (t->ncert == 0 && t->nkey == 0) {
    t->cert = outer->cert;
    t->key = outer->key;
    memcpy(t->cert_line, outer->cert_line, sizeof(t->cert_line));
    t->ncert = outer->ncert;
    t->nkey = outer->nkey;
  }
  if (t->protocols < 0) t->protocols = outer->protocols;
  if (t->ciphers[0] == '\0') memcpy(t->ciphers, outer->ciphers, sizeof(t->ciphers));
  if (t->nconf_cmd == 0) {
    t->conf_cmd = outer->conf_cmd;
    t->nconf_cmd = outer->nconf_cmd;
  }
  if (t->prefer_server_ciphers < 0) t->prefer_server_ciphers = outer->prefer_server_ciphers;
  if (t->session_timeout_ms < 0) t->session_timeout_ms = outer->session_timeout_ms;
  if (t->session_tickets < 0) t->session_tickets = outer->session_tickets;
  if (t->nticket_key == 0) {
    t->ticket_key = outer->ticket_key;
    t->nticket_key = outer->nticket_key;
  }
  if (t->line == 0) t->line = outer->line;
}

/* ---- proxy_ssl_*: TLS to the servers ---- */

void tether__conf_proxy_ssl_defaults(tether__cf_proxy_ssl *p) {
  memset(p, 0, sizeof(*p));
  p->verify_depth = 1; /* nginx's defaults */
  p->protocols = TETHER__TLS_V12 | TETHER__TLS_V13;
  p->session_reuse = 1;
}

/* A word that nginx would read with variables: Tether takes it literally, so a '$' is refused. */
static int literal_word(tether__conf_parser *ps, tether__conf_directive *d, char *out, size_t cap) {
  if (strchr(d->args[1], '$')) {
    tether__conf_error(ps, d->line, "%s \"%s\": variables are not supported here", d->args[0], d->args[1]);
    return -1;
  }
  if (d->args[1][0] == '\0' || strlen(d->args[1]) >= cap) {
    tether__conf_error(ps, d->line, "%s: the value must be 1 to %zu characters", d->args[0], cap - 1);
    return -1;
  }
  snprintf(out, cap, "%s", d->args[1]);
  return 0;
}

/* The directives of one argument; returns the TETHER__PSSL_* bit set, 0 on an error or an unknown name. */
static int proxy_ssl_value(tether__conf_parser *ps, tether__conf_directive *d, tether__cf_proxy_ssl *p) {
  const char *n = d->args[0] + 10; /* after "proxy_ssl_" */
  if (strcmp(n, "verify") == 0) return tether__conf_flag(ps, d, d->args[1], &p->verify) == 0 ? TETHER__PSSL_VERIFY : 0;
  if (strcmp(n, "server_name") == 0)
    return tether__conf_flag(ps, d, d->args[1], &p->server_name) == 0 ? TETHER__PSSL_SNI : 0;
  if (strcmp(n, "session_reuse") == 0)
    return tether__conf_flag(ps, d, d->args[1], &p->session_reuse) == 0 ? TETHER__PSSL_REUSE : 0;
  if (strcmp(n, "verify_depth") == 0)
    return tether__conf_int(ps, d, "depth", d->args[1], 0, 100, &p->verify_depth) == 0 ? TETHER__PSSL_DEPTH : 0;
  if (strcmp(n, "name") == 0) return literal_word(ps, d, p->name, sizeof(p->name)) == 0 ? TETHER__PSSL_NAME : 0;
  if (strcmp(n, "ciphers") == 0)
    return literal_word(ps, d, p->ciphers, sizeof(p->ciphers)) == 0 ? TETHER__PSSL_CIPHERS : 0;
  if (strcmp(n, "trusted_certificate") == 0) {
    p->trusted_line = d->line;
    return literal_word(ps, d, p->trusted, sizeof(p->trusted)) == 0 ? TETHER__PSSL_TRUSTED : 0;
  }
  if (strcmp(n, "certificate") == 0) {
    p->cert_line = d->line;
    return literal_word(ps, d, p->cert, sizeof(p->cert)) == 0 ? TETHER__PSSL_CERT : 0;
  }
  if (strcmp(n, "certificate_key") == 0) return literal_word(ps, d, p->key, sizeof(p->key)) == 0 ? TETHER__PSSL_KEY : 0;
  if (strcmp(n, "password_file") == 0)
    tether__conf_error(ps, d->line,
                       "proxy_ssl_password_file: refused; Tether reads unencrypted keys only (openssl pkey -in KEY "
                       "-out PLAIN)");
  else if (strcmp(n, "crl") == 0 || strcmp(n, "conf_command") == 0)
    tether__conf_error(ps, d->line, "\"%s\" is not supported", d->args[0]);
  else
    tether__conf_error(ps, d->line, "unknown directive \"%s\"", d->args[0]);
  return 0;
}

int tether__conf_proxy_ssl(tether__conf_parser *ps, tether__conf_directive *d, tether__cf_proxy_ssl *p) {
  if (strncmp(d->args[0], "proxy_ssl_", 10) != 0) return 0;
  if (p->line == 0) p->line = d->line;
  if (strcmp(d->args[0], "proxy_ssl_protocols") == 0) {
    if (tether__conf_want_args(ps, d, 1, 4) < 0) return 1;
    protocols_line(ps, d, &p->protocols);
    if (p->protocols == 0) tether__conf_error(ps, d->line, "proxy_ssl_protocols: no protocol left");
    p->set |= TETHER__PSSL_PROTOCOLS;
    return 1;
  }
  if (tether__conf_want_args(ps, d, 1, 1) == 0) p->set |= proxy_ssl_value(ps, d, p);
  return 1;
}

/* A location's setting: its own when given, else the outer level's. */
static void merge(tether__cf_proxy_ssl *p, const tether__cf_proxy_ssl *outer) {
  int own = p->set;
  tether__cf_proxy_ssl m = *outer;
  if (own & TETHER__PSSL_VERIFY) m.verify = p->verify;
  if (own & TETHER__PSSL_DEPTH) m.verify_depth = p->verify_depth;
  if (own & TETHER__PSSL_TRUSTED) {
    memcpy(m.trusted, p->trusted, sizeof(m.trusted));
    m.trusted_line = p->trusted_line;
  }
  if (own & TETHER__PSSL_NAME) memcpy(m.name, p->name, sizeof(m.name));
  if (own & TETHER__PSSL_SNI) m.server_name = p->server_name;
  if (own & TETHER__PSSL_CERT) {
    memcpy(m.cert, p->cert, sizeof(m.cert));
    m.cert_line = p->cert_line;
  }
  if (own & TETHER__PSSL_KEY) memcpy(m.key, p->key, sizeof(m.key));
  if (own & TETHER__PSSL_PROTOCOLS) m.protocols = p->protocols;
  if (own & TETHER__PSSL_CIPHERS) memcpy(m.ciphers, p->ciphers, sizeof(m.ciphers));
  if (own & TETHER__PSSL_REUSE) m.session_reuse = p->session_reuse;
  m.set = own | outer->set;
  m.line = p->line ? p->line : outer->line;
  *p = m;
}

/* Whether two merged settings make the same connections (where they were written does not matter). */
static int same(const tether__cf_proxy_ssl *a, const tether__cf_proxy_ssl *b) {
  return a->verify == b->verify && a->verify_depth == b->verify_depth && strcmp(a->trusted, b->trusted) == 0 &&
         strcmp(a->name, b->name) == 0 && a->server_name == b->server_name && strcmp(a->cert, b->cert) == 0 &&
         strcmp(a->key, b->key) == 0 && a->protocols == b->protocols && strcmp(a->ciphers, b->ciphers) == 0 &&
         a->session_reuse == b->session_reuse;
}

/* nginx's checks of a location's settings (its messages), for locations that proxy with https. */
static void check(tether__conf_parser *ps, const tether__cf_proxy_ssl *p, int line) {
  if (p->verify && p->trusted[0] == '\0')
    tether__conf_error(ps, p->line ? p->line : line, "no proxy_ssl_trusted_certificate for proxy_ssl_verify");
  if (p->cert[0] && p->key[0] == '\0')
    tether__conf_error(ps, p->cert_line, "no \"proxy_ssl_certificate_key\" is defined for certificate \"%s\"", p->cert);
  if (p->key[0] && p->cert[0] == '\0')
    tether__conf_error(ps, p->line ? p->line : line, "proxy_ssl_certificate_key without proxy_ssl_certificate");
}

/* A port after the name is dropped, as nginx does ("host:443", "[::1]:443"); a bare IPv6 address stays. */
static void strip_port(char *name) {
  char *end = name[0] == '[' ? strchr(name, ']') : NULL;
  if (end) {
    size_t n = (size_t)(end - name - 1);
    memmove(name, name + 1, n);
    name[n] = '\0';
    return;
  }
  char *colon = strchr(name, ':');
  if (colon && strchr(colon + 1, ':') == NULL) *colon = '\0';
}

void tether__conf_proxy_ssl_attach(tether__conf_parser *ps, tether__config *cf) {
  for (size_t i = 0; i < cf->nlocations; i++) {
    tether__conf_pending *pd = &ps->pendings[i];
    int k = cf->locations[i].upstream;
    if (pd->name[0] == '\0' || k < 0) continue;
    tether__cf_upstream *u = &cf->upstreams[k];
    tether__cf_proxy_ssl outer = ps->proxy_ssl; /* http level, under the server's own */
    for (size_t v = 0; v < cf->nvservers; v++) {
      const tether__cf_vserver *vs = &cf->vservers[v];
      if (i >= vs->first_location && i < vs->first_location + vs->nlocations) {
        outer = vs->proxy_ssl;
        merge(&outer, &ps->proxy_ssl);
      }
    }
    merge(&pd->ssl, &outer);
    if (pd->ssl.name[0] == '\0') snprintf(pd->ssl.name, sizeof(pd->ssl.name), "%s", u->name); /* $proxy_host */
    strip_port(pd->ssl.name);
    if (pd->https) check(ps, &pd->ssl, pd->line);
    if (u->https_line == 0) {
      u->https = pd->https;
      u->https_line = pd->line;
      u->https_location = (int)i;
      if (pd->https) u->ssl = pd->ssl;
      continue;
    }
    const char *first = cf->locations[u->https_location].prefix;
    if (u->https != pd->https)
      tether__conf_error(ps, pd->line,
                         "location \"%s\" proxies to upstream \"%s\" with %s, location \"%s\" (line %d) with %s: "
                         "Tether keeps one pool of connections per server, so an upstream speaks one scheme; "
                         "declare a second upstream with the same servers for the other",
                         cf->locations[i].prefix, u->name, pd->https ? "https" : "http", first,
                         tether__cf_lineno(u->https_line), u->https ? "https" : "http");
    else if (pd->https && !same(&pd->ssl, &u->ssl))
      tether__conf_error(ps, pd->line,
                         "location \"%s\" proxies to upstream \"%s\" with other proxy_ssl_* settings than location "
                         "\"%s\" (line %d): the upstream's TLS context and connections are shared, so its "
                         "locations must agree; declare a second upstream with the same servers for other settings",
                         cf->locations[i].prefix, u->name, first, tether__cf_lineno(u->https_line));
  }
}
