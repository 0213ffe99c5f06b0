/* libtether: the application's data of a session, through calls that keep jansson out of the public
 * header (tether/session.h). Each is one jansson call or two: the data stays one parsed object, as
 * express-session keeps req.session, and commit hashes it once. */
#include <stdlib.h>

#include "session_data.h"
#include "util.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY)

size_t tether_session_count(const tether_session *s) { return json_object_size(tether__session_json(s)); }

int tether_session_has(const tether_session *s, const char *key) {
  return json_object_get(tether__session_json(s), key) != NULL;
}

const char *tether_session_get_string(const tether_session *s, const char *key) {
  return json_string_value(json_object_get(tether__session_json(s), key)); /* NULL unless a string */
}

int tether_session_get_int(const tether_session *s, const char *key, int64_t *out) {
  json_t *v = json_object_get(tether__session_json(s), key);
  *out = json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
  return json_is_integer(v) ? 0 : TETHER_ENOTFOUND;
}

char *tether_session_get_json(const tether_session *s, const char *key) {
  json_t *v = json_object_get(tether__session_json(s), key);
  return v ? json_dumps(v, DUMP_FLAGS) : NULL;
}

/* Sets key to v (stolen); TETHER_EINVAL when v is NULL (jansson refused the text). */
static int set_new(tether_session *s, const char *key, json_t *v) {
  if (v == NULL) return tether__fail(TETHER_EINVAL, "session data: '%s': not UTF-8 or not JSON", key);
  if (json_object_set_new(tether__session_json(s), key, v) < 0)
    return tether__fail(TETHER_EINVAL, "session data: key '%s' is not UTF-8", key);
  return 0;
}

int tether_session_set_string(tether_session *s, const char *key, const char *value) {
  return set_new(s, key, json_string(value));
}

int tether_session_set_int(tether_session *s, const char *key, int64_t value) {
  return set_new(s, key, json_integer((json_int_t)value));
}

int tether_session_set_bool(tether_session *s, const char *key, int value) {
  return set_new(s, key, json_boolean(value));
}

int tether_session_set_json(tether_session *s, const char *key, const char *json) {
  return set_new(s, key, json_loads(json, JSON_DECODE_ANY, NULL));
}

int tether_session_remove(tether_session *s, const char *key) {
  return json_object_del(tether__session_json(s), key) == 0 ? 0 : TETHER_ENOTFOUND;
}

int tether_session_array_length(const tether_session *s, const char *key) {
  json_t *v = json_object_get(tether__session_json(s), key);
  return json_is_array(v) ? (int)json_array_size(v) : TETHER_ENOTFOUND;
}

int tether_session_array_append_string(tether_session *s, const char *key, const char *value) {
  json_t *item = json_string(value);
  if (item == NULL) return tether__fail(TETHER_EINVAL, "session data: '%s': not UTF-8", key);
  json_t *data = tether__session_json(s), *a = json_object_get(data, key);
  if (!json_is_array(a)) {
    a = json_array();
    if (json_object_set_new(data, key, a) < 0) {
      json_decref(item);
      return tether__fail(TETHER_EINVAL, "session data: key '%s' is not UTF-8", key);
    }
  }
  json_array_append_new(a, item);
  return 0;
}

int tether_session_foreach_key(const tether_session *s, tether_session_key_cb cb, void *arg) {
  const char *k;
  json_t *v;
  json_object_foreach(tether__session_json(s), k, v) {
    int rc = cb(arg, k);
    if (rc) return rc;
  }
  return 0;
}

char *tether_session_data_json(const tether_session *s) { return json_dumps(tether__session_json(s), DUMP_FLAGS); }

/* Parses a JSON object; NULL (message set) for anything else. */
static json_t *load_object(const char *json) {
  json_t *o = json_loads(json, 0, NULL);
  if (json_is_object(o)) return o;
  json_decref(o);
  tether__fail(TETHER_EINVAL, "session data: not a JSON object");
  return NULL;
}

int tether_session_merge_json(tether_session *s, const char *json) {
  json_t *o = load_object(json);
  if (o == NULL) return TETHER_EINVAL;
  json_object_update(tether__session_json(s), o);
  json_decref(o);
  return 0;
}

int tether_session_replace_json(tether_session *s, const char *json) {
  json_t *o = load_object(json);
  if (o == NULL) return TETHER_EINVAL;
  json_t *data = tether__session_json(s);
  json_object_clear(data);
  json_object_update(data, o);
  json_decref(o);
  return 0;
}
