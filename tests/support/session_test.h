/* Test helpers over the session data calls of tether/session.h: the data as a jansson value, to compare. */
#ifndef TETHER_TEST_SESSION_TEST_H
#define TETHER_TEST_SESSION_TEST_H

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "tether/session.h"

/* An integer member, 0 when absent or not an integer (as json_integer_value(json_object_get(...))). */
static inline int64_t session_int(const tether_session *s, const char *key) {
  int64_t v = 0;
  tether_session_get_int(s, key, &v);
  return v;
}

/* The whole data as a new jansson object (json_decref it). */
static inline json_t *session_json(const tether_session *s) {
  char *text = tether_session_data_json(s);
  json_t *j = text ? json_loads(text, 0, NULL) : NULL;
  free(text);
  return j;
}

/* Sets every member of fields (json_object_update on the data). 0 or an error code. */
static inline int session_merge(tether_session *s, const json_t *fields) {
  char *text = json_dumps(fields, JSON_COMPACT | JSON_PRESERVE_ORDER);
  int rc = text ? tether_session_merge_json(s, text) : TETHER_EINVAL;
  free(text);
  return rc;
}

#endif
