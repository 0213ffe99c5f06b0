/* Requests from public corpora (tests/unit/h1corpus/README.md names each source) through the balancer's
 * parser: every case's verdict is the one RFC 9112 asks for. A file holds cases as
 *   # what it is [notes: what nginx 1.22 and HAProxy 2.6 answered, when they differ]
 *   VERDICT<TAB>request bytes, escaped (\r \n \t \\ \xHH)
 * VERDICT: "ok none", "ok length", "ok chunked" (a head parsed with that framing, and a body that is
 * valid as far as it goes), "more" (the head is incomplete), or the status answered: 400, 501, 414, 431
 * (a head refused, or 400 for a chunked body whose framing is bad). Only the first request of pipelined
 * bytes is judged. `unit_h1corpus --print FILE` prints the verdicts this parser gives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/balancer/http1.c"

static const tether__h1_limits lim = TETHER__H1_DEFAULT_LIMITS;

static size_t unescape(const char *s, size_t n, char *out) {
  size_t w = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '\\' || i + 1 == n) {
      out[w++] = s[i];
      continue;
    }
    char c = s[++i];
    if (c == 'r')
      out[w++] = '\r';
    else if (c == 'n')
      out[w++] = '\n';
    else if (c == 't')
      out[w++] = '\t';
    else if (c == 'x' && i + 2 < n) {
      out[w++] = (char)(tether__hexval(s[i + 1]) << 4 | tether__hexval(s[i + 2]));
      i += 2;
    } else
      out[w++] = c;
  }
  return w;
}

static void verdict(const char *req, size_t n, char *v, size_t cap) {
  tether__h1_msg m;
  int rc = tether__h1_parse_request(req, n, &lim, &m);
  if (rc == 0) {
    snprintf(v, cap, "more");
    return;
  }
  if (rc < 0) {
    snprintf(v, cap, "%d", -rc);
    return;
  }
  tether__h1_body b;
  tether__h1_body_init(&b, &m);
  if (tether__h1_body_feed(&b, req + rc, n - (size_t)rc) < 0) {
    snprintf(v, cap, "400");
    return;
  }
  static const char *names[] = {"none", "length", "chunked", "until-close"};
  snprintf(v, cap, "ok %s", names[m.framing]);
}

/* Calls fn for every case of a file; returns the number of cases. */
typedef void (*case_fn)(const char *comment, const char *want, const char *req, size_t n, void *arg);
static int each_case(const char *path, case_fn fn, void *arg) {
  FILE *f = fopen(path, "r");
  if (f == NULL) fail_msg("cannot open %s", path);
  static char line[1 << 16], comment[4096], req[1 << 16];
  int count = 0;
  comment[0] = '\0';
  while (fgets(line, sizeof(line), f)) {
    size_t len = strcspn(line, "\n");
    line[len] = '\0';
    if (line[0] == '#') {
      size_t c = len < sizeof(comment) - 1 ? len : sizeof(comment) - 1;
      memcpy(comment, line, c);
      comment[c] = '\0';
      continue;
    }
    char *tab = strchr(line, '\t');
    if (tab == NULL) continue;
    *tab = '\0';
    size_t n = unescape(tab + 1, strlen(tab + 1), req);
    fn(comment, line, req, n, arg);
    count++;
  }
  fclose(f);
  return count;
}

static void check_case(const char *comment, const char *want, const char *req, size_t n, void *arg) {
  int *failed = arg;
  char got[32];
  verdict(req, n, got, sizeof(got));
  if (strcmp(got, want) != 0) {
    fprintf(stderr, "%s\n  expected %s, got %s\n", comment, want, got);
    (*failed)++;
  }
}

static void print_case(const char *comment, const char *want, const char *req, size_t n, void *arg) {
  (void)arg;
  char got[32];
  verdict(req, n, got, sizeof(got));
  printf("%s\n%s\t%s\n", comment, got, want);
}

static const char *files[] = {"llhttp.txt", "http-garden.txt", "smuggler.txt", "http11probe.txt"};

static void test_corpus(void **state) {
  (void)state;
  int failed = 0, total = 0;
  for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", H1CORPUS_DIR, files[i]);
    int n = each_case(path, check_case, &failed);
    assert_true(n > 0);
    total += n;
  }
  printf("h1corpus: %d cases, %d wrong\n", total, failed);
  assert_int_equal(failed, 0);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--print") == 0) {
    each_case(argv[2], print_case, NULL);
    return 0;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_corpus),
  };
  return cmocka_run_group_tests_name("h1corpus", tests, NULL, NULL);
}
