/* The configuration's lexer: nginx's tokens (words, quoted strings, '#' comments, ';', '{', '}') read into
 * directives, and errors collected as "file:line: reason" lines. include is done here: the files it names are
 * read in its place, so it works wherever a directive can be. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
      tether__conf_include(ps, d);
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
