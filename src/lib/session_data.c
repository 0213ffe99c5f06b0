/* libtether: the application's data of a session, through calls that keep JSON trees out of the public
 * header (tether/session.h). The data is a list of members, each value held as the text JSON.stringify
 * writes for it (session_data.h): reading an integer or a string reads that text, setting a member
 * prints only that member, and members nobody touches are never parsed nor printed. jansson only reads
 * text that is not already in that form (what an application hands to the *_json calls, or a session
 * that another writer stored differently). */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "json_codec.h"
#include "session_data.h"

/* ---- the public accessors ---- */

#define DATA(s) tether__session_data(s)

static int is_string(const tether__member *m) { return m && m->text[0] == '"'; }

size_t tether_session_count(const tether_session *s) { return DATA(s)->n; }

int tether_session_has(const tether_session *s, const char *key) { return tether__sdata_find(DATA(s), key) != NULL; }

const char *tether_session_get_string(const tether_session *s, const char *key) {
  tether__member *m = tether__sdata_find(DATA(s), key);
  if (!is_string(m)) return NULL;
  if (m->value == NULL) { /* unescaped once, kept until the member changes */
    size_t body = m->len - 2;
    m->value = tether__malloc(body + 1);
    tether__json_str_unescape(m->text + 1, body, memchr(m->text + 1, '\\', body) != NULL, m->value, body + 1);
  }
  return m->value;
}

int tether_session_get_int(const tether_session *s, const char *key, int64_t *out) {
  tether__member *m = tether__sdata_find(DATA(s), key);
  *out = 0;
  /* an integer is what jansson reads as one: digits only, within int64 */
  size_t sign = m && m->text[0] == '-';
  if (m == NULL || m->len <= sign || m->len > 20 || strspn(m->text + sign, "0123456789") != m->len - sign)
    return TETHER_ENOTFOUND;
  errno = 0;
  char *end;
  long long v = strtoll(m->text, &end, 10);
  if (errno == ERANGE) return TETHER_ENOTFOUND;
  *out = v;
  return 0;
}

char *tether_session_get_json(const tether_session *s, const char *key) {
  tether__member *m = tether__sdata_find(DATA(s), key);
  return m ? tether__strndup(m->text, m->len) : NULL;
}

static int key_ok(const char *key) {
  if (tether__utf8_valid(key, strlen(key))) return 0;
  return tether__fail(TETHER_EINVAL, "session data: key '%s' is not UTF-8", key);
}

int tether_session_set_string(tether_session *s, const char *key, const char *value) {
  size_t n = strlen(value);
  if (!tether__utf8_valid(value, n)) return tether__fail(TETHER_EINVAL, "session data: '%s': not UTF-8", key);
  if (key_ok(key) < 0) return TETHER_EINVAL;
  tether__buf b = {0};
  tether__json_write_string(&b, value, n);
  tether__sdata_set_owned(DATA(s), tether__strdup(key), b.data, b.len);
  return 0;
}

int tether_session_set_int(tether_session *s, const char *key, int64_t value) {
  if (key_ok(key) < 0) return TETHER_EINVAL;
  char num[TETHER__JSON_NUMBER_MAX];
  size_t n = tether__json_int(value, num);
  tether__sdata_set(DATA(s), key, num, n);
  return 0;
}

int tether_session_set_bool(tether_session *s, const char *key, int value) {
  if (key_ok(key) < 0) return TETHER_EINVAL;
  tether__sdata_set(DATA(s), key, value ? "true" : "false", value ? 4 : 5);
  return 0;
}

int tether_session_set_json(tether_session *s, const char *key, const char *json) {
  size_t n = strlen(json);
  char *text;
  size_t len;
  if (tether__json_canonical(json, n)) {
    text = tether__strndup(json, n);
    len = n;
  } else {
    json_t *v = json_loads(json, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);
    if (v == NULL) return tether__fail(TETHER_EINVAL, "session data: '%s': not UTF-8 or not JSON", key);
    tether__buf b = {0};
    tether__json_write(&b, v);
    json_decref(v);
    text = b.data;
    len = b.len;
  }
  if (key_ok(key) < 0) {
    free(text);
    return TETHER_EINVAL;
  }
  tether__sdata_set_owned(DATA(s), tether__strdup(key), text, len);
  return 0;
}

int tether_session_remove(tether_session *s, const char *key) { return tether__sdata_del(DATA(s), key); }

int tether_session_array_length(const tether_session *s, const char *key) {
  tether__member *m = tether__sdata_find(DATA(s), key);
  if (m == NULL || m->text[0] != '[') return TETHER_ENOTFOUND;
  if (m->len == 2) return 0;
  int count = 0;
  uint8_t type;
  for (size_t i = 1; i < m->len; i++, count++) i = tether__json_skip_value(m->text, m->len, i, &type);
  return count;
}

int tether_session_array_append_string(tether_session *s, const char *key, const char *value) {
  size_t n = strlen(value);
  if (!tether__utf8_valid(value, n)) return tether__fail(TETHER_EINVAL, "session data: '%s': not UTF-8", key);
  if (key_ok(key) < 0) return TETHER_EINVAL;
  tether__member *m = tether__sdata_find(DATA(s), key);
  tether__buf b = {0};
  if (m && m->text[0] == '[' && m->len > 2) {
    tether__buf_append(&b, m->text, m->len - 1);
    tether__buf_append(&b, ",", 1);
  } else {
    tether__buf_append(&b, "[", 1);
  }
  tether__json_write_string(&b, value, n);
  tether__buf_append(&b, "]", 1);
  tether__sdata_set_owned(DATA(s), tether__strdup(key), b.data, b.len);
  return 0;
}

int tether_session_foreach_key(const tether_session *s, tether_session_key_cb cb, void *arg) {
  const tether__sdata *d = DATA(s);
  for (size_t i = 0; i < d->n; i++) {
    int rc = cb(arg, d->m[i].key);
    if (rc) return rc;
  }
  return 0;
}

char *tether_session_data_json(const tether_session *s) { return tether__sdata_text(DATA(s)); }

/* Sets every member of o (emptied: its members move into d). */
static void take_members(tether__sdata *d, tether__sdata *o) {
  for (size_t i = 0; i < o->n; i++) {
    tether__member *m = &o->m[i];
    free(m->value);
    if (m->packed) { /* the text is in the name's allocation: copied */
      tether__sdata_set(d, m->key, m->text, m->len);
      free(m->key);
    } else {
      tether__sdata_set_owned(d, m->key, m->text, m->len);
    }
  }
  free(o->m);
  memset(o, 0, sizeof(*o));
}

static int load_object(tether__sdata *o, const char *json) {
  if (tether__sdata_parse(o, json, strlen(json), 0) == 0) return 0;
  tether__sdata_clear(o);
  return tether__fail(TETHER_EINVAL, "session data: not a JSON object");
}

int tether_session_merge_json(tether_session *s, const char *json) {
  tether__sdata o = {0};
  if (load_object(&o, json) < 0) return TETHER_EINVAL;
  take_members(DATA(s), &o);
  return 0;
}

int tether_session_replace_json(tether_session *s, const char *json) {
  tether__sdata o = {0};
  if (load_object(&o, json) < 0) return TETHER_EINVAL;
  tether__sdata_clear(DATA(s));
  take_members(DATA(s), &o);
  return 0;
}
