/* libtether: the in-process store. A hash table with per-entry expiry and an LRU bound; sessions die
 * with the process. URL: memory:[?max=N] (default 10000 sessions). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../util.h"
#include "store_impl.h"

typedef struct entry {
  struct entry *hnext;               /* hash chain */
  struct entry *lru_prev, *lru_next; /* most recent at the head */
  uint32_t hash;
  char *sid;
  char *json;
  size_t len;
  int64_t expires_ms; /* absolute; always set (a day when the session has none) */
} entry;

typedef struct memstore {
  pthread_mutex_t lock;
  entry **buckets;
  size_t nbuckets; /* power of two */
  size_t count;
  size_t max;
  entry *lru_head, *lru_tail;
} memstore;

static uint32_t fnv1a(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
  return h;
}

static void lru_unlink(memstore *m, entry *e) {
  if (e->lru_prev)
    e->lru_prev->lru_next = e->lru_next;
  else
    m->lru_head = e->lru_next;
  if (e->lru_next)
    e->lru_next->lru_prev = e->lru_prev;
  else
    m->lru_tail = e->lru_prev;
  e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(memstore *m, entry *e) {
  e->lru_prev = NULL;
  e->lru_next = m->lru_head;
  if (m->lru_head) m->lru_head->lru_prev = e;
  m->lru_head = e;
  if (m->lru_tail == NULL) m->lru_tail = e;
}

static entry **find_slot(memstore *m, const char *sid, uint32_t h) {
  entry **pp = &m->buckets[h & (m->nbuckets - 1)];
  while (*pp && ((*pp)->hash != h || strcmp((*pp)->sid, sid) != 0)) pp = &(*pp)->hnext;
  return pp;
}

static void entry_free(entry *e) {
  free(e->sid);
  free(e->json);
  free(e);
}

static void remove_entry(memstore *m, entry *e) {
  entry **pp = find_slot(m, e->sid, e->hash);
  *pp = e->hnext;
  lru_unlink(m, e);
  m->count--;
  entry_free(e);
}

static void grow(memstore *m) {
  size_t n = m->nbuckets * 2;
  entry **b = tether__calloc(n, sizeof(*b));
  for (size_t i = 0; i < m->nbuckets; i++) {
    entry *e = m->buckets[i];
    while (e) {
      entry *next = e->hnext;
      e->hnext = b[e->hash & (n - 1)];
      b[e->hash & (n - 1)] = e;
      e = next;
    }
  }
  free(m->buckets);
  m->buckets = b;
  m->nbuckets = n;
}

static int mem_open(tether_store *st, const char *text) {
  static const char *const allowed[] = {"max", NULL};
  tether__url url;
  long max;
  int rc = tether__url_parse(text, &url);
  if (rc < 0) return rc;
  if (*url.path != '\0') rc = tether__fail(TETHER_EINVAL, "memory store: takes no path, got '%s'", url.path);
  if (rc == 0) rc = tether__url_check_params(&url, allowed);
  if (rc == 0) rc = tether__url_param_int(&url, "max", 10000, 1, 100000000, &max);
  tether__url_free(&url);
  if (rc < 0) return rc;
  memstore *m = tether__calloc(1, sizeof(*m));
  pthread_mutex_init(&m->lock, NULL);
  m->nbuckets = 64;
  m->buckets = tether__calloc(m->nbuckets, sizeof(*m->buckets));
  m->max = (size_t)max;
  st->impl = m;
  return 0;
}

static void mem_close(tether_store *st) {
  memstore *m = st->impl;
  entry *e = m->lru_head;
  while (e) {
    entry *next = e->lru_next;
    entry_free(e);
    e = next;
  }
  free(m->buckets);
  pthread_mutex_destroy(&m->lock);
  free(m);
}

static int mem_get(tether_store *st, const char *sid, char **json, size_t *len) {
  memstore *m = st->impl;
  uint32_t h = fnv1a(sid);
  int rc = TETHER_ENOTFOUND;
  pthread_mutex_lock(&m->lock);
  entry *e = *find_slot(m, sid, h);
  if (e && e->expires_ms <= tether_now_ms()) {
    remove_entry(m, e);
    e = NULL;
  }
  if (e) {
    *json = tether__strndup(e->json, e->len);
    *len = e->len;
    lru_unlink(m, e);
    lru_push_front(m, e);
    rc = 0;
  }
  pthread_mutex_unlock(&m->lock);
  return rc;
}

static int mem_set(tether_store *st, const char *sid, const char *json, size_t len, int64_t expires_ms, int mode) {
  memstore *m = st->impl;
  int64_t now = tether_now_ms();
  int64_t ttl = tether__ttl_seconds(expires_ms, now);
  uint32_t h = fnv1a(sid);
  pthread_mutex_lock(&m->lock);
  entry **pp = find_slot(m, sid, h);
  entry *e = *pp;
  if (e && e->expires_ms <= now) {
    remove_entry(m, e); /* expired: as good as gone */
    e = NULL;
  }
  if ((mode == TETHER_WRITE_UPDATE && e == NULL) || (mode == TETHER_WRITE_CREATE && e != NULL)) {
    pthread_mutex_unlock(&m->lock);
    return e ? TETHER_EEXIST : TETHER_ENOTFOUND;
  }
  if (ttl <= 0) {
    if (e) remove_entry(m, e);
    pthread_mutex_unlock(&m->lock);
    return 0;
  }
  if (e == NULL) {
    if (m->count >= m->max) remove_entry(m, m->lru_tail);
    if (m->count >= m->nbuckets) grow(m);
    e = tether__calloc(1, sizeof(*e));
    e->hash = h;
    e->sid = tether__strdup(sid);
    pp = find_slot(m, sid, h);
    e->hnext = *pp;
    *pp = e;
    m->count++;
  } else {
    lru_unlink(m, e);
    free(e->json);
  }
  e->json = tether__strndup(json, len);
  e->len = len;
  e->expires_ms = expires_ms ? expires_ms : now + ttl * 1000;
  lru_push_front(m, e);
  pthread_mutex_unlock(&m->lock);
  return 0;
}

static int mem_touch(tether_store *st, const char *sid, const char *json, size_t len, int64_t expires_ms) {
  memstore *m = st->impl;
  int64_t now = tether_now_ms();
  int rc = 0;
  pthread_mutex_lock(&m->lock);
  entry *e = *find_slot(m, sid, fnv1a(sid));
  if (e == NULL || e->expires_ms <= now) {
    rc = TETHER_ENOTFOUND;
  } else if (tether__ttl_seconds(expires_ms, now) <= 0) {
    remove_entry(m, e);
  } else {
    e->expires_ms = expires_ms ? expires_ms : now + 86400 * 1000;
    lru_unlink(m, e);
    lru_push_front(m, e);
  }
  pthread_mutex_unlock(&m->lock);
  TETHER__UNUSED(json);
  TETHER__UNUSED(len);
  /* express-session's MemoryStore.touch on a missing session is a no-op, not an error. */
  return rc == TETHER_ENOTFOUND ? 0 : rc;
}

static int mem_destroy(tether_store *st, const char *sid) {
  memstore *m = st->impl;
  pthread_mutex_lock(&m->lock);
  entry *e = *find_slot(m, sid, fnv1a(sid));
  if (e) remove_entry(m, e);
  pthread_mutex_unlock(&m->lock);
  return 0;
}

static int mem_purge(tether_store *st) {
  memstore *m = st->impl;
  int64_t now = tether_now_ms();
  int n = 0;
  pthread_mutex_lock(&m->lock);
  entry *e = m->lru_head;
  while (e) {
    entry *next = e->lru_next;
    if (e->expires_ms <= now) {
      remove_entry(m, e);
      n++;
    }
    e = next;
  }
  pthread_mutex_unlock(&m->lock);
  return n;
}

const tether__store_ops tether__store_memory = {
    .kind = "memory",
    .open = mem_open,
    .close = mem_close,
    .get = mem_get,
    .set = mem_set,
    .touch = mem_touch,
    .destroy = mem_destroy,
    .purge = mem_purge,
};
