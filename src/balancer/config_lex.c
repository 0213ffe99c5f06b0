/* The configuration's lexer: nginx's tokens (words, quoted strings, '#' comments, ';', '{', '}') read into
 * directives, and errors collected as "file:line: reason" lines. include is done here: the files it names are
 * read in its place, so it works wherever a directive can be. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/util.h"
#include "config-int.h"

const char *tether__cf_file(const tether__config *cf, int line) {
  int k = line >> TETHER__CF_LINE_BITS;
  return k > 0 && k <= cf->nincluded ? cf->included[k - 1] : cf->file;
}

int tether__cf_lineno(int line) { return line & ((1 << TETHER__CF_LINE_BITS) - 1); }

void tether__conf_error(tether__conf_parser *ps, int line, const char *fmt, ...) {
  ps->nerrors++;
  if (ps->errused + 1 >= ps->errlen) return;
  int n = snprintf(ps->err + ps->errused, ps->errlen - ps->errused, "%s:%d: ", tether__cf_file(ps->cf, line),
                   tether__cf_lineno(line));
  if (n > 0 && (size_t)n < ps->errlen - ps->errused) ps->errused += (size_t)n;
  va_list ap;
  va_start(ap, fmt);
  n = vsnprintf(ps->err + ps->errused, ps->errlen - ps->errused, fmt, ap);
  va_end(ap);
  if (n > 0) ps->errused += (size_t)n < ps->errlen - ps->errused ? (size_t)n : ps->errlen - ps->errused - 1;
  if (ps->errused + 1 < ps->errlen) ps->err[ps->errused++] = '\n';
  ps->err[ps->errused] = '\0';
}

enum { T_EOF = 0, T_WORD, T_SEMI, T_OPEN, T_CLOSE, T_ERROR };

static void include_line(tether__conf_parser *ps, tether__conf_directive *d);

/* The end of an included file: blocks it left open are closed (after an error), then the reader goes back to
 * what was waiting. 1 when there is more to read, 0 at the end of the configuration, T_CLOSE for a close. */
static int end_of_source(tether__conf_parser *ps) {
  tether__conf_source *s = &ps->src;
  if (s->level == 0 || ps->nwaiting == 0) return 0;
  if (s->depth > 0) { /* reported once; the blocks still open are closed one by one (depth counts up to 0) */
    tether__conf_error(ps, ps->line, "unexpected end of file, expecting \"}\"");
    s->depth = -s->depth;
  }
  if (s->depth < 0) {
    s->depth++;
    return T_CLOSE;
  }
  free(s->text);
  *s = ps->waiting[--ps->nwaiting];
  ps->p = s->p;
  ps->end = s->end;
  ps->line = s->line;
  return 1;
}

/* A brace of an included file: it may only close the blocks it opened. 0 to drop an unexpected '}'. */
static int count_brace(tether__conf_parser *ps, int t) {
  tether__conf_source *s = &ps->src;
  if (s->level == 0) return 1;
  if (t == T_OPEN) {
    s->depth++;
  } else if (s->depth == 0) {
    tether__conf_error(ps, ps->line, "unexpected \"}\" (an included file closes only the blocks it opens)");
    return 0;
  } else {
    s->depth--;
  }
  return 1;
}

static int next_token(tether__conf_parser *ps, char **word) {
again:
  for (;;) {
    while (ps->p < ps->end && isspace((unsigned char)*ps->p)) {
      if (*ps->p == '\n') ps->line++;
      ps->p++;
    }
    if (ps->p < ps->end && *ps->p == '#') {
      while (ps->p < ps->end && *ps->p != '\n') ps->p++;
      continue;
    }
    break;
  }
  if (ps->p >= ps->end) {
    int more = end_of_source(ps);
    if (more == 1) goto again;
    return more == T_CLOSE ? T_CLOSE : T_EOF;
  }
  char c = *ps->p;
  if (c == ';') return ps->p++, T_SEMI;
  if (c == '{' || c == '}') {
    ps->p++;
    if (!count_brace(ps, c == '{' ? T_OPEN : T_CLOSE)) goto again;
    return c == '{' ? T_OPEN : T_CLOSE;
  }
  tether__buf b = {0};
  if (c == '"' || c == '\'') {
    char q = c;
    int start = ps->line;
    ps->p++;
    while (ps->p < ps->end && *ps->p != q) {
      if (*ps->p == '\\' && ps->p + 1 < ps->end) ps->p++;
      if (*ps->p == '\n') ps->line++;
      tether__buf_append(&b, ps->p, 1);
      ps->p++;
    }
    if (ps->p >= ps->end) {
      tether__conf_error(ps, start, "unterminated quoted string");
      tether__buf_free(&b);
      return T_ERROR;
    }
    ps->p++;
  } else {
    while (ps->p < ps->end && !isspace((unsigned char)*ps->p) && *ps->p != ';' && *ps->p != '{' && *ps->p != '}' &&
           *ps->p != '#') {
      if (*ps->p == '\\' && ps->p + 1 < ps->end) ps->p++;
      tether__buf_append(&b, ps->p, 1);
      ps->p++;
    }
  }
  *word = b.data ? b.data : tether__strdup("");
  return T_WORD;
}

void tether__conf_free_directive(tether__conf_directive *d) {
  for (int i = 0; i < d->nargs; i++) free(d->args[i]);
  d->nargs = 0;
}

/* A directive cut short by a syntax error: its words are freed here, since callers only free the
 * directives they get whole. */
static int syntax_error(tether__conf_directive *d) {
  tether__conf_free_directive(d);
  return -2;
}

int tether__conf_read(tether__conf_parser *ps, tether__conf_directive *d) {
  d->nargs = 0;
  d->block = 0;
  for (;;) {
    char *w = NULL;
    int line = ps->line;
    int t = next_token(ps, &w);
    if (t == T_WORD) {
      if (d->nargs == 0) d->line = ps->line;
      if (d->nargs == TETHER__CONF_MAX_ARGS) {
        tether__conf_error(ps, line, "too many arguments for \"%s\"", d->args[0]);
        free(w);
        return syntax_error(d);
      }
      d->args[d->nargs++] = w;
      continue;
    }
    if (t == T_ERROR) return syntax_error(d);
    if (t == T_EOF) {
      if (d->nargs) {
        tether__conf_error(ps, d->line, "unexpected end of file, expecting \";\" or \"{\" after \"%s\"", d->args[0]);
        return syntax_error(d);
      }
      return 0;
    }
    if (t == T_CLOSE) {
      if (d->nargs) {
        tether__conf_error(ps, line, "unexpected \"}\" after \"%s\" (missing \";\")", d->args[0]);
        return syntax_error(d);
      }
      return -1;
    }
    if (d->nargs == 0) {
      tether__conf_error(ps, line, "unexpected \"%s\"", t == T_SEMI ? ";" : "{");
      return syntax_error(d);
    }
    d->block = t == T_OPEN;
    if (!d->block && strcmp(d->args[0], "include") == 0) { /* read in its place */
      include_line(ps, d);
      tether__conf_free_directive(d);
      continue;
    }
    return 1;
  }
}

void tether__conf_skip_block(tether__conf_parser *ps) {
  int depth = 1;
  while (depth > 0) {
    char *w = NULL;
    int t = next_token(ps, &w);
    free(w);
    if (t == T_EOF || t == T_ERROR) return;
    if (t == T_OPEN) depth++;
    if (t == T_CLOSE) depth--;
  }
}

int tether__conf_want_args(tether__conf_parser *ps, tether__conf_directive *d, int min, int max) {
  int n = d->nargs - 1;
  if (n < min || n > max) {
    if (min == max)
      tether__conf_error(ps, d->line, "\"%s\" takes %d argument%s", d->args[0], min, min == 1 ? "" : "s");
    else
      tether__conf_error(ps, d->line, "\"%s\" takes %d to %d arguments", d->args[0], min, max);
    return -1;
  }
  if (d->block) {
    tether__conf_error(ps, d->line, "\"%s\" takes no block", d->args[0]);
    return -1;
  }
  return 0;
}

/* ---- include ---- */

/* An included file's text. Only regular files: a FIFO or a device would block or never end. */
static char *read_text(const char *path, size_t *len, const char **why) {
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > 4 * 1024 * 1024) {
    *why = fd < 0 ? strerror(errno) : !S_ISREG(st.st_mode) ? "not a regular file" : "larger than 4 MiB";
    if (fd >= 0) close(fd);
    return NULL;
  }
  tether__buf b = {0};
  char chunk[8192];
  ssize_t n;
  while ((n = read(fd, chunk, sizeof(chunk))) > 0 && b.len <= 4 * 1024 * 1024) tether__buf_append(&b, chunk, (size_t)n);
  close(fd);
  if (n < 0 || b.len > 4 * 1024 * 1024) {
    *why = n < 0 ? strerror(errno) : "larger than 4 MiB";
    tether__buf_free(&b);
    return NULL;
  }
  *len = b.len;
  return b.data ? b.data : tether__strdup("");
}

/* Queues one file: it is read next, before what is already waiting. */
static int queue_file(tether__conf_parser *ps, tether__conf_directive *d, const char *path) {
  tether__config *cf = ps->cf;
  if (cf->nincluded == TETHER__CF_MAX_FILES - 1 || ps->nwaiting == TETHER__CONF_MAX_SOURCES) {
    tether__conf_error(ps, d->line, "include %s: too many included files (at most %d)", path, TETHER__CF_MAX_FILES - 1);
    return -1;
  }
  if (strlen(path) >= sizeof(cf->included[0])) {
    tether__conf_error(ps, d->line, "include %s: the path is too long", path);
    return -1;
  }
  size_t len = 0;
  const char *why = NULL;
  char *text = read_text(path, &len, &why);
  if (text == NULL) {
    tether__conf_error(ps, d->line, "include %s: %s", path, why);
    return -1;
  }
  cf->included = tether__cf_grow(cf, cf->included, (size_t)cf->nincluded, sizeof(*cf->included));
  snprintf(cf->included[cf->nincluded++], sizeof(cf->included[0]), "%s", path);
  ps->waiting[ps->nwaiting++] = (tether__conf_source){.text = text,
                                                      .p = text,
                                                      .end = text + len,
                                                      .line = (cf->nincluded << TETHER__CF_LINE_BITS) | 1,
                                                      .level = ps->src.level + 1};
  return 0;
}

/* include FILE|GLOB: a relative path is taken from the main configuration file's directory (nginx takes it
 * from its prefix, the configuration's directory in a usual install). A pattern without a wildcard must name
 * a file; a glob may match nothing (conf.d/ *.conf, empty). Matches are read in glob(3)'s sorted order. */
static void include_line(tether__conf_parser *ps, tether__conf_directive *d) {
  tether__config *cf = ps->cf;
  if (tether__conf_want_args(ps, d, 1, 1) < 0) return;
  if (ps->src.level >= TETHER__CONF_MAX_INCLUDE_LEVEL) {
    tether__conf_error(ps, d->line, "include %s: included files nested deeper than %d (does a file include itself?)",
                       d->args[1], TETHER__CONF_MAX_INCLUDE_LEVEL);
    return;
  }
  char pattern[1024];
  const char *slash = strrchr(cf->file, '/');
  if (d->args[1][0] == '/' || slash == NULL)
    snprintf(pattern, sizeof(pattern), "%s", d->args[1]);
  else
    snprintf(pattern, sizeof(pattern), "%.*s/%s", (int)(slash - cf->file), cf->file, d->args[1]);
  glob_t g;
  int rc = glob(pattern, GLOB_ERR, NULL, &g);
  int wild = strpbrk(d->args[1], "*?[") != NULL;
  if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) {
    if (!wild) tether__conf_error(ps, d->line, "include %s: no such file", pattern);
  } else if (rc != 0) {
    tether__conf_error(ps, d->line, "include %s: cannot read the directory", pattern);
  } else if (ps->nwaiting >= TETHER__CONF_MAX_SOURCES - 1) {
    tether__conf_error(ps, d->line, "include %s: too many included files at once", pattern);
  } else {
    ps->src.p = ps->p; /* the includer waits below its files */
    ps->src.line = ps->line;
    ps->waiting[ps->nwaiting++] = ps->src;
    for (size_t i = g.gl_pathc; i-- > 0;)
      if (queue_file(ps, d, g.gl_pathv[i]) < 0) break;
    ps->src = ps->waiting[--ps->nwaiting]; /* the first file, or the includer again */
    ps->p = ps->src.p;
    ps->end = ps->src.end;
    ps->line = ps->src.line;
  }
  if (rc != GLOB_NOMATCH) globfree(&g);
}
