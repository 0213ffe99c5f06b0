/* tether-app: reading request bodies (form-urlencoded or JSON) and checking the text they carry. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "xalloc.h"

/* "application/x-www-form-urlencoded" value of key, decoded; or a JSON body's string member. */
char *body_field(const request *rq, const char *ctype, const char *key) {
  if (rq->body == NULL) return NULL;
  if (ctype && strncmp(ctype, "application/json", 16) == 0) {
    json_error_t e;
    json_t *j = json_loadb(rq->body, rq->len, JSON_REJECT_DUPLICATES, &e);
    json_t *v = json_object_get(j, key);
    char *out = NULL;
    if (json_is_string(v))
      out = xstrdup(json_string_value(v));
    else if (json_is_integer(v)) {
      char num[64];
      snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
      out = xstrdup(num);
    } else if (json_is_real(v)) {
      char num[64];
      snprintf(num, sizeof(num), "%.17g", json_real_value(v));
      out = xstrdup(num);
    }
    json_decref(j);
    return out;
  }
  size_t kl = strlen(key);
  const char *p = rq->body, *end = rq->body + rq->len;
  while (p < end) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *e = amp ? amp : end;
    if ((size_t)(e - p) > kl && memcmp(p, key, kl) == 0 && p[kl] == '=') {
      const char *v = p + kl + 1;
      char *out = xmalloc((size_t)(e - v) + 1);
      size_t o = 0;
      for (const char *q = v; q < e; q++) {
        if (*q == '+')
          out[o++] = ' ';
        else if (*q == '%' && q + 2 < e && isxdigit((unsigned char)q[1]) && isxdigit((unsigned char)q[2])) {
          char hex[3] = {q[1], q[2], 0};
          out[o++] = (char)strtol(hex, NULL, 16);
          q += 2;
        } else
          out[o++] = *q;
      }
      out[o] = '\0';
      return out;
    }
    p = e + 1;
  }
  return NULL;
}

int valid_text(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n == 0 || n > max) return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20) return 0;
  return 1;
}

int valid_utf8_text(const char *s, size_t max) {
  if (!valid_text(s, max)) return 0;
  json_t *probe = json_string(s); /* jansson checks UTF-8, as the session data will */
  int ok = probe != NULL;
  json_decref(probe);
  return ok;
}
