/* bench/jwt: JWT verifications per second per algorithm, one thread, side by side in one run:
 *   libtether   tether_jwt_verify() with a verifier built once (claims checked, claims struct reused);
 *   libjwt      Debian's libjwt 1.10: jwt_decode() + jwt_free() with the key (its API takes PEM bytes);
 *   jsonwebtoken npm jsonwebtoken 9 in Node (jwt.verify with a KeyObject made once), via jsonwebtoken.js.
 * Rates are per second of the measuring thread's CPU time (per core), as openssl speed counts.
 * Every implementation verifies the same tokens: N distinct login-style tokens ({userId, role}, 1 h)
 * signed by libtether, cycled. Each cell runs ROUNDS times, interleaved, and the best round counts (the
 * machine is shared; the best round is the least disturbed). Prints a markdown table with ratios; the
 * "cache on" column is libtether with verify_options.cache (repeated tokens skip the signature check).
 * Usage: bench_jwt [--seconds S] [--rounds R] [--tokens N] [--algs HS256,RS256,...] [--node-script PATH]
 *                  [--no-node] [--no-libjwt] [--no-cache] */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tether/jwt.h"

#ifdef TETHER_HAVE_LIBJWT
#include <jwt.h>
#endif

#define MAX_TOKENS 1024

static const char *const SECRET = "bench-secret-0123456789abcdef-0123456789"; /* 40 bytes */

typedef struct cell {
  tether_jwt_alg alg;
  char *priv_pem, *pub_pem; /* asymmetric algorithms */
  char *tokens[MAX_TOKENS];
  double tether, cached, libjwt, node; /* best verifications per second; 0: not measured */
} cell;

/* The measuring thread's CPU time: rates are per core-second, so other processes on a shared machine take
 * CPU away from a cell without lowering its rate (openssl speed counts the same way). */
static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A cell runs until it has had secs of CPU, or 20 times that of wall clock on a very busy machine. */
static int cell_done(double cpu0, double wall0, double secs, double *cpu) {
  *cpu = cpu_s() - cpu0;
  return *cpu >= secs || wall_s() - wall0 >= 20 * secs;
}

static char *pem(EVP_PKEY *k, int private) {
  BIO *b = BIO_new(BIO_s_mem());
  if (private)
    PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
  else
    PEM_write_bio_PUBKEY(b, k);
  char *d;
  long n = BIO_get_mem_data(b, &d);
  char *s = strndup(d, (size_t)n);
  BIO_free(b);
  return s;
}

static EVP_PKEY *keygen(tether_jwt_alg a) {
  switch (a) {
  case TETHER_JWT_ES256:
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  case TETHER_JWT_ES384:
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
  case TETHER_JWT_ES512:
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
  case TETHER_JWT_EDDSA:
    return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
  default:
    return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  }
}

static int is_hmac(tether_jwt_alg a) { return a >= TETHER_JWT_HS256 && a <= TETHER_JWT_HS512; }

static int setup(cell *c, int ntok, EVP_PKEY **rsa) {
  tether_jwt_signer *s = NULL;
  int rc;
  if (is_hmac(c->alg)) {
    rc = tether_jwt_signer_new_secret(SECRET, strlen(SECRET), c->alg, NULL, &s);
  } else {
    int is_rsa = c->alg >= TETHER_JWT_RS256 && c->alg <= TETHER_JWT_PS512;
    if (is_rsa && *rsa == NULL) *rsa = keygen(c->alg); /* one RSA key for RS* and PS* */
    EVP_PKEY *k = is_rsa ? (EVP_PKEY_up_ref(*rsa), *rsa) : keygen(c->alg);
    c->priv_pem = pem(k, 1);
    c->pub_pem = pem(k, 0);
    EVP_PKEY_free(k);
    rc = tether_jwt_signer_new_pem(c->priv_pem, strlen(c->priv_pem), c->alg, NULL, &s);
  }
  if (rc < 0) {
    fprintf(stderr, "bench_jwt: %s signer: %s\n", tether_jwt_alg_name(c->alg), tether_last_error());
    return -1;
  }
  for (int i = 0; i < ntok; i++) {
    char p[64];
    int pn = snprintf(p, sizeof(p), "{\"userId\":%d,\"role\":\"%s\"}", 1000 + i, i % 2 ? "admin" : "user");
    rc = tether_jwt_sign(s, p, (size_t)pn, 3600, &c->tokens[i]);
    if (rc < 0) return -1;
  }
  tether_jwt_signer_free(s);
  return 0;
}

static double run_tether(const cell *c, int ntok, double secs, int cache) {
  tether_jwt_verify_options o;
  tether_jwt_verify_options_init(&o);
  o.cache = cache;
  tether_jwt_verifier *v;
  tether_jwt_verifier_new(&o, &v);
  int rc = is_hmac(c->alg) ? tether_jwt_verifier_add_secret(v, SECRET, strlen(SECRET), c->alg, NULL)
                           : tether_jwt_verifier_add_pem(v, c->pub_pem, strlen(c->pub_pem), c->alg, NULL);
  if (rc < 0) {
    fprintf(stderr, "bench_jwt: %s verifier: %s\n", tether_jwt_alg_name(c->alg), tether_last_error());
    exit(1);
  }
  size_t lens[MAX_TOKENS];
  for (int i = 0; i < ntok; i++) lens[i] = strlen(c->tokens[i]);
  tether_jwt_claims *claims = tether_jwt_claims_new();
  long n = 0;
  double c0 = cpu_s(), w0 = wall_s(), t;
  do {
    for (int k = 0; k < 256; k++, n++) {
      int i = (int)(n % ntok);
      if (tether_jwt_verify(v, c->tokens[i], lens[i], claims) != 0) {
        fprintf(stderr, "bench_jwt: libtether refused a %s token: %s\n", tether_jwt_alg_name(c->alg),
                tether_last_error());
        exit(1);
      }
    }
  } while (!cell_done(c0, w0, secs, &t));
  tether_jwt_claims_free(claims);
  tether_jwt_verifier_free(v);
  return (double)n / t;
}

#ifdef TETHER_HAVE_LIBJWT
static int libjwt_supports(tether_jwt_alg a) {
  return (a >= TETHER_JWT_HS256 && a <= TETHER_JWT_RS512) || (a >= TETHER_JWT_ES256 && a <= TETHER_JWT_ES512);
}

static double run_libjwt(const cell *c, int ntok, double secs) {
  const unsigned char *key = (const unsigned char *)(is_hmac(c->alg) ? SECRET : c->pub_pem);
  int keylen = (int)strlen((const char *)key);
  long n = 0;
  double c0 = cpu_s(), w0 = wall_s(), t;
  do {
    for (int k = 0; k < 64; k++, n++) {
      jwt_t *j = NULL;
      if (jwt_decode(&j, c->tokens[n % ntok], key, keylen) != 0) {
        fprintf(stderr, "bench_jwt: libjwt refused a %s token\n", tether_jwt_alg_name(c->alg));
        exit(1);
      }
      jwt_free(j);
    }
  } while (!cell_done(c0, w0, secs, &t));
  return (double)n / t;
}
#endif

/* Runs the Node peer once over every cell; fills best rates. */
static int run_node(const char *script, cell *cells, int ncells, int ntok, double secs) {
  char path[] = "/tmp/tether-bench-jwt-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return -1;
  json_t *doc = json_object(), *arr = json_array();
  for (int i = 0; i < ncells; i++) {
    if (cells[i].alg == TETHER_JWT_EDDSA) continue; /* jsonwebtoken 9 does not do EdDSA */
    json_t *toks = json_array();
    for (int k = 0; k < ntok; k++) json_array_append_new(toks, json_string(cells[i].tokens[k]));
    json_array_append_new(arr, json_pack("{s:s,s:s,s:b,s:o}", "alg", tether_jwt_alg_name(cells[i].alg), "key",
                                         is_hmac(cells[i].alg) ? SECRET : cells[i].pub_pem, "secret",
                                         is_hmac(cells[i].alg), "tokens", toks));
  }
  json_object_set_new(doc, "seconds", json_real(secs));
  json_object_set_new(doc, "cells", arr);
  FILE *f = fdopen(fd, "w");
  json_dumpf(doc, f, JSON_COMPACT);
  fclose(f);
  json_decref(doc);
  char *cmd;
  if (asprintf(&cmd, "node '%s' '%s'", script, path) < 0) return -1;
  FILE *p = popen(cmd, "r");
  free(cmd);
  json_error_t err;
  json_t *out = p ? json_loadf(p, 0, &err) : NULL;
  int status = p ? pclose(p) : -1;
  unlink(path);
  if (out == NULL || status != 0) {
    fprintf(stderr, "bench_jwt: the Node peer failed (status %d)\n", status);
    json_decref(out);
    return -1;
  }
  for (int i = 0; i < ncells; i++) {
    double r = json_real_value(json_object_get(out, tether_jwt_alg_name(cells[i].alg)));
    if (r > cells[i].node) cells[i].node = r;
  }
  json_decref(out);
  return 0;
}

static void fmt_rate(char *buf, size_t n, double r) {
  if (r <= 0)
    snprintf(buf, n, "n/a");
  else if (r >= 1e6)
    snprintf(buf, n, "%.2f M", r / 1e6);
  else if (r >= 1e3)
    snprintf(buf, n, "%.1f k", r / 1e3);
  else
    snprintf(buf, n, "%.0f", r);
}

static void fmt_ratio(char *buf, size_t n, double a, double b) {
  if (a <= 0 || b <= 0)
    snprintf(buf, n, "n/a");
  else
    snprintf(buf, n, "%.1fx", a / b);
}

int main(int argc, char **argv) {
  double secs = 1.0;
  int rounds = 2, ntok = 64, use_node = 1, use_libjwt = 1, use_cache = 1;
  const char *node_script = NULL,
             *alg_list = "HS256,HS384,HS512,RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,ES512,EdDSA";
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
      secs = atof(argv[++i]);
    else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
      rounds = atoi(argv[++i]);
    else if (strcmp(argv[i], "--tokens") == 0 && i + 1 < argc)
      ntok = atoi(argv[++i]);
    else if (strcmp(argv[i], "--algs") == 0 && i + 1 < argc)
      alg_list = argv[++i];
    else if (strcmp(argv[i], "--node-script") == 0 && i + 1 < argc)
      node_script = argv[++i];
    else if (strcmp(argv[i], "--no-node") == 0)
      use_node = 0;
    else if (strcmp(argv[i], "--no-libjwt") == 0)
      use_libjwt = 0;
    else if (strcmp(argv[i], "--no-cache") == 0)
      use_cache = 0;
    else {
      fprintf(stderr, "usage: bench_jwt [--seconds S] [--rounds R] [--tokens N] [--algs A,B] [--node-script PATH] "
                      "[--no-node] [--no-libjwt] [--no-cache]\n");
      return 2;
    }
  }
  if (ntok < 1 || ntok > MAX_TOKENS || rounds < 1 || secs <= 0) return 2;
  if (node_script == NULL) use_node = 0;
#ifndef TETHER_HAVE_LIBJWT
  use_libjwt = 0;
#endif
  cell cells[TETHER_JWT_ALG_COUNT];
  int ncells = 0;
  char *list = strdup(alg_list), *save = NULL;
  for (char *a = strtok_r(list, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
    tether_jwt_alg alg = tether_jwt_alg_from_name(a);
    if (alg == TETHER_JWT_ALG_UNKNOWN || ncells == TETHER_JWT_ALG_COUNT) {
      fprintf(stderr, "bench_jwt: unknown algorithm '%s'\n", a);
      return 2;
    }
    memset(&cells[ncells], 0, sizeof(cell));
    cells[ncells++].alg = alg;
  }
  free(list);
  EVP_PKEY *rsa = NULL;
  for (int i = 0; i < ncells; i++)
    if (setup(&cells[i], ntok, &rsa) < 0) return 1;
  EVP_PKEY_free(rsa);

  for (int r = 0; r < rounds; r++) {
    for (int i = 0; i < ncells; i++) {
      double t = run_tether(&cells[i], ntok, secs, 0);
      if (t > cells[i].tether) cells[i].tether = t;
      if (use_cache && !is_hmac(cells[i].alg)) { /* HMAC never uses the cache */
        t = run_tether(&cells[i], ntok, secs, 1);
        if (t > cells[i].cached) cells[i].cached = t;
      }
#ifdef TETHER_HAVE_LIBJWT
      if (use_libjwt && libjwt_supports(cells[i].alg)) {
        double l = run_libjwt(&cells[i], ntok, secs);
        if (l > cells[i].libjwt) cells[i].libjwt = l;
      }
#endif
    }
    if (use_node && run_node(node_script, cells, ncells, ntok, secs) < 0) use_node = 0;
  }

  double load[3] = {0, 0, 0};
  getloadavg(load, 3);
  printf("JWT verifications per second of CPU time (one core), one thread, %d distinct tokens, best of %d rounds "
         "of %g s "
         "(load average %.2f on %ld cores).\n\n",
         ntok, rounds, secs, load[0], sysconf(_SC_NPROCESSORS_ONLN));
  printf("| alg | libtether | libjwt 1.10 | jsonwebtoken 9 | libtether / libjwt | libtether / jsonwebtoken | "
         "libtether, cache on | cache on / libjwt |\n");
  printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (int i = 0; i < ncells; i++) {
    char t[32], l[32], n[32], rl[32], rn[32], ca[32], rc[32];
    fmt_rate(t, sizeof(t), cells[i].tether);
    fmt_rate(l, sizeof(l), cells[i].libjwt);
    fmt_rate(n, sizeof(n), cells[i].node);
    fmt_ratio(rl, sizeof(rl), cells[i].tether, cells[i].libjwt);
    fmt_ratio(rn, sizeof(rn), cells[i].tether, cells[i].node);
    fmt_rate(ca, sizeof(ca), cells[i].cached);
    fmt_ratio(rc, sizeof(rc), cells[i].cached, cells[i].libjwt);
    if (is_hmac(cells[i].alg)) snprintf(ca, sizeof(ca), "(not cached)");
    printf("| %s | %s | %s | %s | %s | %s | %s | %s |\n", tether_jwt_alg_name(cells[i].alg), t, l, n, rl, rn, ca, rc);
  }
  printf("\nlibtether verifies every signature; \"cache on\" is verify_options.cache, which skips the signature\n"
         "of a token this thread verified before (every token here repeats, as a client's bearer token does).\n");
  for (int i = 0; i < ncells; i++) {
    for (int k = 0; k < ntok; k++) free(cells[i].tokens[k]);
    free(cells[i].priv_pem);
    free(cells[i].pub_pem);
  }
  tether_jwt_thread_cleanup();
  return 0;
}
