/* The programs' allocation wrappers: exit with a message instead of returning NULL. */
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

static const char *program = "tether";

void xalloc_set_program(const char *name) { program = name; }

static void oom(size_t n, const char *what) {
  if (what)
    fprintf(stderr, "%s: out of memory (%s)\n", program, what);
  else
    fprintf(stderr, "%s: out of memory allocating %zu bytes\n", program, n);
  exit(70); /* EX_SOFTWARE */
}

void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (p == NULL) oom(n, NULL);
  return p;
}

void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (p == NULL) oom(n * size, NULL);
  return p;
}

void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (q == NULL) oom(n, NULL);
  return q;
}

char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  return memcpy(xmalloc(n), s, n);
}

FILE *xmemstream(char **buf, size_t *len) {
  FILE *f = open_memstream(buf, len);
  if (f == NULL) oom(0, "open_memstream");
  return f;
}

void xmemstream_close(FILE *f) {
  if (fclose(f) != 0) oom(0, "writing to memory");
}

void *xcheck(void *p, const char *what) {
  if (p == NULL) oom(0, what);
  return p;
}
