/* libtether: the members of a JSON object kept as their values' text, in order (members.h). */
#include "members.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "json_codec.h"

tether__member *tether__sdata_find(const tether__sdata *d, const char *key) {
  for (size_t i = 0; i < d->n; i++)
    if (strcmp(d->m[i].key, key) == 0) return &d->m[i];
  return NULL;
}

static void member_free(tether__member *m) {
  free(m->key);
  if (!m->packed) free(m->text);
  free(m->value);
}

/* key and text taken; packed: text lives in key's allocation (the member is replaced with its name). */
static void set_member(tether__sdata *d, char *key, char *text, size_t len, int packed) {
  tether__member *m = tether__sdata_find(d, key);
  if (m) {
    if (!m->packed) free(m->text);
    free(m->value);
    if (packed) {
      free(m->key); /* and a packed text with it */
      m->key = key;
    } else {
      free(key);
    }
  } else {
    if (d->n == d->cap) {
      d->cap = d->cap ? d->cap * 2 : 8;
      d->m = tether__realloc(d->m, d->cap * sizeof(*d->m));
    }
    m = &d->m[d->n++];
    m->key = key;
  }
  m->text = text;
  m->len = len;
  m->value = NULL;
  m->packed = packed;
}

void tether__sdata_set_owned(tether__sdata *d, char *key, char *text, size_t len) { set_member(d, key, text, len, 0); }

void tether__sdata_set(tether__sdata *d, const char *key, const char *text, size_t len) {
  size_t kl = strlen(key);
  char *k = tether__malloc(kl + 1 + len + 1); /* one allocation, as a stored session's members */
  memcpy(k, key, kl + 1);
  memcpy(k + kl + 1, text, len);
  k[kl + 1 + len] = '\0';
  set_member(d, k, k + kl + 1, len, 1);
}

int tether__sdata_del(tether__sdata *d, const char *key) {
  tether__member *m = tether__sdata_find(d, key);
  if (m == NULL) return TETHER_ENOTFOUND;
  member_free(m);
  size_t i = (size_t)(m - d->m);
  memmove(m, m + 1, (d->n - i - 1) * sizeof(*m));
  d->n--;
  return 0;
}

void tether__sdata_clear(tether__sdata *d) {
  for (size_t i = 0; i < d->n; i++) member_free(&d->m[i]);
  free(d->m);
  memset(d, 0, sizeof(*d));
}

size_t tether__sdata_size(const tether__sdata *d) {
  size_t n = 0;
  for (size_t i = 0; i < d->n; i++) n += strlen(d->m[i].key) + d->m[i].len + 4;
  return n;
}

void tether__sdata_write_members(const tether__sdata *d, tether__buf *b, const char *skip1, const char *skip2) {
  if (d->n) tether__buf_reserve(b, tether__sdata_size(d)); /* one allocation rather than doubling from 256 bytes */
  for (size_t i = 0; i < d->n; i++) {
    const tether__member *m = &d->m[i];
    if ((skip1 && strcmp(m->key, skip1) == 0) || (skip2 && strcmp(m->key, skip2) == 0)) continue;
    tether__buf_append(b, ",", 1);
    tether__json_write_string(b, m->key, strlen(m->key));
    tether__buf_append(b, ":", 1);
    tether__buf_append(b, m->text, m->len);
  }
}

char *tether__sdata_text(const tether__sdata *d) {
  tether__buf b = {0};
  tether__sdata_write_members(d, &b, NULL, NULL);
  if (b.len == 0) {
    tether__buf_free(&b);
    return tether__strdup("{}");
  }
  b.data[0] = '{'; /* the first member's comma */
  tether__buf_append(&b, "}", 1);
  return b.data;
}

/* Text already in JSON.stringify's form (count members at m): each value kept as its bytes, in one
 * allocation with its name (a session is loaded on every request). */
static void split_canonical(tether__sdata *d, const char *p, const tether__json_member *m, int count) {
  d->cap = (size_t)count;
  d->m = tether__malloc(d->cap * sizeof(*d->m));
  for (int i = 0; i < count; i++) { /* the names are distinct: no lookup */
    tether__member *o = &d->m[d->n++];
    o->key = tether__malloc(m[i].key_len + 1 + m[i].value_len + 1);
    tether__json_str_unescape(p + m[i].key, m[i].key_len, (m[i].type & TETHER__JSON_KEY_ESC) != 0, o->key,
                              m[i].key_len + 1);
    o->text = o->key + m[i].key_len + 1;
    memcpy(o->text, p + m[i].value, m[i].value_len);
    o->text[m[i].value_len] = '\0';
    o->len = m[i].value_len;
    o->value = NULL;
    o->packed = 1;
  }
}

char *tether__sdata_text_after(const tether__sdata *d, const char *p, size_t n, const char *lead1, const char *lead2) {
  /* split as it is (packed), lead1 first: its text is "name":value (a name without escapes, as lead1 is) */
  if (d->n == 0 || !d->m[0].packed || strcmp(d->m[0].key, lead1) != 0) return NULL;
  size_t off = 1 + strlen(lead1) + 3 + d->m[0].len, from = 1;
  if (d->n > 1 && strcmp(d->m[1].key, lead2) == 0) {
    off += 1 + strlen(lead2) + 3 + d->m[1].len;
    from = 2;
  }
  for (size_t i = from; i < d->n; i++)
    if (strcmp(d->m[i].key, lead2) == 0) return NULL; /* further on: it would not be left out */
  if (off >= n || (p[off] != ',' && p[off] != '}')) return NULL;
  if (p[off] == '}') return tether__strdup("{}");
  char *t = tether__malloc(n - off + 1); /* "{" and the rest, its closing brace included */
  t[0] = '{';
  memcpy(t + 1, p + off + 1, n - off - 1);
  t[n - off] = '\0';
  return t;
}

/* Anything else: jansson reads it, and each member is printed back in JSON.stringify's form. */
static int split_parsed(tether__sdata *d, const char *p, size_t n, size_t flags) {
  json_error_t err;
  json_t *root = json_loadb(p, n, flags | JSON_DECODE_INT_AS_REAL, &err); /* JavaScript's numbers: doubles */
  if (!json_is_object(root)) {
    json_decref(root);
    return tether__fail(TETHER_EINVAL, "not a JSON object%s%s", root ? "" : ": ", root ? "" : err.text);
  }
  const char *k;
  json_t *v;
  json_object_foreach(root, k, v) {
    tether__buf b = {0};
    tether__json_write(&b, v);
    tether__sdata_set_owned(d, tether__strdup(k), b.data, b.len);
  }
  json_decref(root);
  return 0;
}

int tether__sdata_parse(tether__sdata *d, const char *p, size_t n, size_t flags) {
  tether__sdata_clear(d);
  tether__json_member m[TETHER__JSON_MAX_MEMBERS];
  int count = tether__json_canonical_object(p, n, m);
  if (count >= 0) {
    if (count > 0) split_canonical(d, p, m, count);
    return 0;
  }
  return split_parsed(d, p, n, flags);
}
