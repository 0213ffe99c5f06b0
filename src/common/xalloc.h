/* The programs' out-of-memory policy, decided once: every allocation either succeeds or the program exits
 * with a message naming the program and the size (tether-app and tether-lab cannot go on without the
 * memory, and a NULL handed on would crash later, further from the cause). Internal to the programs: not
 * part of libtether. */
#ifndef TETHER_COMMON_XALLOC_H
#define TETHER_COMMON_XALLOC_H

#include <stddef.h>
#include <stdio.h>

/* The name the message starts with ("tether-app"); set once at start. Default "tether". */
void xalloc_set_program(const char *name);

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* open_memstream that cannot fail; close it with xmemstream_close, which checks the final flush. */
FILE *xmemstream(char **buf, size_t *len);
void xmemstream_close(FILE *f);
/* Exits with the message "<program>: out of memory (<what>)" when p is NULL; returns p. For results of
 * libraries whose only failure here is memory (json_object(), json_array(), ...). */
void *xcheck(void *p, const char *what);

#endif
