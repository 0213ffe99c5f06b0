/* A TLS scanner nobody here wrote looks at Tether's TLS listener: sslscan (Debian's) against an instance
 * serving an ECDSA P-256 and an RSA 2048 certificate side by side, its XML report read here. SSLv2, SSLv3,
 * TLS 1.0 and 1.1 are not offered; every suite is one sslscan rates strong or acceptable, an AEAD with
 * forward secrecy (no RC4, 3DES, NULL, EXPORT, anonymous or CBC-SHA1 suite); no Heartbleed, no insecure
 * renegotiation, no compression, no weak group or certificate key. An instance configured with CBC-SHA1
 * suites on purpose shows the checks find what they look for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "balancer.h"

static char pki[512];

static int setup(void **state) {
  (void)state;
  return tb_make_pki(pki, sizeof(pki));
}

static int teardown(void **state) {
  (void)state;
  if (getenv("TB_KEEP") == NULL) tt_rmrf(pki);
  return 0;
}

/* The value of attribute name in one XML element's text, into out ("" when absent). */
static const char *attr(const char *elem, const char *name, char *out, size_t cap) {
  char key[64];
  snprintf(key, sizeof(key), " %s=\"", name);
  const char *p = strstr(elem, key), *end = NULL;
  out[0] = '\0';
  if (p) {
    p += strlen(key);
    end = strchr(p, '"');
  }
  if (p && end) snprintf(out, cap, "%.*s", (int)(end - p), p);
  return out;
}

typedef struct scan {
  int findings; /* above LOW, each one printed */
  int tls12, tls13, ecdsa_suites, rsa_suites, ciphers;
} scan;

static void finding(scan *s, const char *what, const char *elem) {
  fprintf(stderr, "sslscan finding: %s: %s", what, elem);
  s->findings++;
}

static void protocol_line(scan *s, const char *line) {
  char type[16], version[16], enabled[8];
  attr(line, "type", type, sizeof(type));
  attr(line, "version", version, sizeof(version));
  attr(line, "enabled", enabled, sizeof(enabled));
  int on = strcmp(enabled, "1") == 0;
  if (strcmp(type, "tls") == 0 && strcmp(version, "1.2") == 0)
    s->tls12 = on;
  else if (strcmp(type, "tls") == 0 && strcmp(version, "1.3") == 0)
    s->tls13 = on;
  else if (on)
    finding(s, "an old protocol is offered", line);
}

/* A suite: rated strong or acceptable by sslscan, and by Mozilla's "intermediate" rules an AEAD with an
 * ephemeral key exchange. */
static void cipher_line(scan *s, const char *line) {
  static const char *const weak[] = {"RC4", "DES", "NULL",     "EXP",  "ADH",  "AECDH", "MD5",
                                     "PSK", "SRP", "CAMELLIA", "ARIA", "SEED", "IDEA"};
  char strength[32], version[16], name[96];
  attr(line, "strength", strength, sizeof(strength));
  attr(line, "sslversion", version, sizeof(version));
  attr(line, "cipher", name, sizeof(name));
  s->ciphers++;
  if (strcmp(strength, "strong") != 0 && strcmp(strength, "acceptable") != 0) finding(s, "a weak suite", line);
  for (size_t i = 0; i < sizeof(weak) / sizeof(weak[0]); i++)
    if (strstr(name, weak[i])) finding(s, "a suite of a broken or unlisted family", line);
  if (strcmp(version, "TLSv1.2") == 0) {
    if (strncmp(name, "ECDHE-", 6) != 0 && strncmp(name, "DHE-", 4) != 0) finding(s, "no forward secrecy", line);
    if (!strstr(name, "GCM") && !strstr(name, "CHACHA20-POLY1305")) finding(s, "not an AEAD (CBC)", line);
  }
  s->ecdsa_suites += strstr(name, "ECDSA") != NULL;
  s->rsa_suites += strncmp(name, "ECDHE-RSA-", 10) == 0;
}

static void other_line(scan *s, const char *line) {
  char v[64], w[64];
  if (strstr(line, "<heartbleed ") && strcmp(attr(line, "vulnerable", v, sizeof(v)), "0") != 0)
    finding(s, "Heartbleed", line);
  if (strstr(line, "<renegotiation ") && strcmp(attr(line, "supported", v, sizeof(v)), "1") == 0 &&
      strcmp(attr(line, "secure", w, sizeof(w)), "1") != 0)
    finding(s, "insecure renegotiation", line);
  if (strstr(line, "<compression ") && strcmp(attr(line, "supported", v, sizeof(v)), "0") != 0)
    finding(s, "TLS compression (CRIME)", line);
  if (strstr(line, "<group ") && atoi(attr(line, "bits", v, sizeof(v))) < 128) finding(s, "a weak group", line);
  if (strstr(line, "<pk ") && attr(line, "bits", w, sizeof(w))[0]) { /* the short form rates the key */
    attr(line, "type", v, sizeof(v));
    int bits = atoi(w);
    if ((strcmp(v, "RSA") == 0 && bits < 2048) || (strcmp(v, "EC") == 0 && bits < 128))
      finding(s, "a weak certificate key", line);
  }
  if (strstr(line, "<signature-algorithm>") && (strstr(line, "sha1") || strstr(line, "md5")))
    finding(s, "a weak certificate signature", line);
  if (strstr(line, "<expired>true")) finding(s, "an expired certificate", line);
}

/* Runs sslscan against port; its XML report read into s. 0, or -1 when sslscan gave none. */
static int sslscan(int port, scan *s) {
  char xml[600];
  snprintf(xml, sizeof(xml), "%s/sslscan-%d.xml", pki, port);
  memset(s, 0, sizeof(*s));
  remove(xml);
  tt_system("timeout 60 sslscan --no-colour --show-certificate --sni-name=localhost --xml='%s' 127.0.0.1:%d "
            ">/dev/null 2>&1",
            xml, port);
  FILE *f = fopen(xml, "r");
  if (f == NULL) return -1;
  char line[4096];
  int ended = 0;
  while (fgets(line, sizeof(line), f)) {
    if (strstr(line, "<protocol "))
      protocol_line(s, line);
    else if (strstr(line, "<cipher "))
      cipher_line(s, line);
    else
      other_line(s, line);
    ended |= strstr(line, "</document>") != NULL;
  }
  fclose(f);
  return ended ? 0 : -1;
}

static int start(tb_tether *t, int port, const char *extra) {
  return tb_tether_start(t, 1,
                         "listen 127.0.0.1:%d ssl;\n"
                         "ssl_certificate %s/ec.pem;\nssl_certificate_key %s/ec.key;\n"
                         "ssl_certificate %s/rsa.pem;\nssl_certificate_key %s/rsa.key;\n%s"
                         "location / { return 200 \"ok\"; }\n",
                         port, pki, pki, pki, pki, extra);
}

static int stop(tb_tether *t) {
  int st = tb_tether_stop(t, 15000), san = tb_log_has_sanitizer_report(t->log);
  tb_tether_cleanup(t);
  return st != 0 || san ? -1 : 0;
}

static void test_default_profile_has_no_finding(void **state) {
  (void)state;
  tb_tether t;
  int port = tt_free_port();
  assert_int_equal(start(&t, port, ""), 0);
  scan s;
  int rc = sslscan(port, &s);
  assert_int_equal(stop(&t), 0);
  assert_int_equal(rc, 0);
  fprintf(stderr, "sslscan: %d suites, %d ECDSA, %d RSA, TLS 1.2 %d, TLS 1.3 %d, %d findings\n", s.ciphers,
          s.ecdsa_suites, s.rsa_suites, s.tls12, s.tls13, s.findings);
  assert_true(s.tls12);
  assert_true(s.tls13);
  assert_true(s.ecdsa_suites > 0); /* both certificates serve */
  assert_true(s.rsa_suites > 0);
  assert_int_equal(s.findings, 0);
}

/* The checks bite: CBC-SHA1 suites configured on purpose are found. */
static void test_weak_suites_are_found(void **state) {
  (void)state;
  tb_tether t;
  int port = tt_free_port();
  assert_int_equal(start(&t, port,
                         "ssl_protocols TLSv1.2;\n"
                         "ssl_ciphers ECDHE-RSA-AES128-SHA:AES128-SHA:ECDHE-ECDSA-AES128-GCM-SHA256;\n"),
                   0);
  scan s;
  int rc = sslscan(port, &s);
  assert_int_equal(stop(&t), 0);
  assert_int_equal(rc, 0);
  assert_false(s.tls13);
  assert_true(s.findings >= 2); /* no AEAD twice, no forward secrecy once */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_default_profile_has_no_finding),
      cmocka_unit_test(test_weak_suites_are_found),
  };
  return cmocka_run_group_tests_name("balancer TLS scan (sslscan)", tests, setup, teardown);
}
