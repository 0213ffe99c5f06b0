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
static void protocols_line(tether__conf_parser *ps, tether__conf_directive *d, tether__cf_tls *t) {
  t->protocols = 0;
  for (int i = 1; i < d->nargs; i++) {
    const char *p = d->args[i];
    if (strcmp(p, "TLSv1.2") == 0)
      t->protocols |= TETHER__TLS_V12;
    else if (strcmp(p, "TLSv1.3") == 0)
      t->protocols |= TETHER__TLS_V13;
    else if (strcmp(p, "SSLv2") == 0 || strcmp(p, "SSLv3") == 0 || strcmp(p, "TLSv1") == 0 || strcmp(p, "TLSv1.1") == 0)
      tether__conf_error(ps, d->line, "ssl_protocols %s: refused (RFC 8996); Tether speaks TLSv1.2 and TLSv1.3", p);
    else
      tether__conf_error(ps, d->line, "ssl_protocols: unknown protocol \"%s\" (TLSv1.2, TLSv1.3)", p);
  }
}

static void cert_line(tether__conf_parser *ps, tether__conf_directive *d, tether__cf_tls *t, int key) {
  int *n = key ? &t->nkey : &t->ncert;
  if (*n == TETHER__TLS_MAX_CERTS) {
    tether__conf_error(ps, d->line, "\"%s\": at most %d", d->args[0], TETHER__TLS_MAX_CERTS);
    return;
  }
  copy_path(ps, d, key ? t->key[*n] : t->cert[*n], sizeof(t->cert[0]));
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
    else
      copy_path(ps, d, t->ticket_key[t->nticket_key++], sizeof(t->ticket_key[0]));
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
    if (tether__conf_want_args(ps, d, 1, 4) == 0) protocols_line(ps, d, t);
    return 1;
  }
  if (strcmp(n, "ssl_conf_command") == 0) {
    if (tether__conf_want_args(ps, d, 2, 2) < 0) return 1;
    if (t->nconf_cmd == 8 || strlen(d->args[1]) >= 256 || strlen(d->args[2]) >= 256) {
      tether__conf_error(ps, d->line, "ssl_conf_command: at most 8, each under 256 characters");
      return 1;
    }
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

void tether__conf_ssl_merge(tether__cf_tls *t, const tether__cf_tls *outer) {
  if (t->ncert == 0 && t->nkey == 0) {
    memcpy(t->cert, outer->cert, sizeof(t->cert));
    memcpy(t->key, outer->key, sizeof(t->key));
    memcpy(t->cert_line, outer->cert_line, sizeof(t->cert_line));
    t->ncert = outer->ncert;
    t->nkey = outer->nkey;
  }
  if (t->protocols < 0) t->protocols = outer->protocols;
  if (t->ciphers[0] == '\0') memcpy(t->ciphers, outer->ciphers, sizeof(t->ciphers));
  if (t->nconf_cmd == 0) {
    memcpy(t->conf_cmd, outer->conf_cmd, sizeof(t->conf_cmd));
    t->nconf_cmd = outer->nconf_cmd;
  }
  if (t->prefer_server_ciphers < 0) t->prefer_server_ciphers = outer->prefer_server_ciphers;
  if (t->session_timeout_ms < 0) t->session_timeout_ms = outer->session_timeout_ms;
  if (t->session_tickets < 0) t->session_tickets = outer->session_tickets;
  if (t->nticket_key == 0) {
    memcpy(t->ticket_key, outer->ticket_key, sizeof(t->ticket_key));
    t->nticket_key = outer->nticket_key;
  }
  if (t->line == 0) t->line = outer->line;
}
