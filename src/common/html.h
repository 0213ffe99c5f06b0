/* HTML text for the programs' pages (tether-app's demo page, tether-lab's report). */
#ifndef TETHER_COMMON_HTML_H
#define TETHER_COMMON_HTML_H

#include <stdio.h>

/* Writes s with < > & " ' escaped, safe in element content and in quoted attribute values. */
void html_escape(FILE *f, const char *s);

#endif
