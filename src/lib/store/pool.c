/* libtether: the connection pool of the blocking SQL stores (see pool.h). */
#include "pool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "../util.h"
#include "tether/common.h"

void tether__pool_init(tether__pool *p, const char *name, int max, int busy_ms, const tether__pool_ops *ops,
                       void *owner, int backoff_min_ms, int backoff_max_ms) {
  pthread_mutex_init(&p->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->freed, &ca);
  pthread_condattr_destroy(&ca);
  p->idle = NULL;
  p->nconns = 0;
  p->max = max;
  p->pid = getpid();
  p->ops = ops;
  p->owner = owner;
  p->name = tether__strdup(name);
  p->busy_ms = busy_ms;
  p->backoff_min_ms = backoff_min_ms;
  p->backoff_max_ms = backoff_max_ms;
  p->backoff_ms = 0;
  p->retry_at_us = 0;
  p->last_error[0] = '\0';
}

/* After fork() the child must not use or close the parent's connections (closing sends Terminate on a
 * shared socket, or releases the parent's SQLite locks): forget them and connect afresh. */
static void forget_inherited(tether__pool *p) {
  p->idle = NULL; /* leaked on purpose, see above */
  p->nconns = 0;
  p->pid = getpid();
}

void tether__pool_destroy(tether__pool *p) {
  if (p->pid != getpid()) forget_inherited(p);
  while (p->idle) {
    tether__pool_conn *c = p->idle;
    p->idle = c->next;
    p->ops->close(c);
  }
  free(p->name);
  pthread_cond_destroy(&p->freed);
  pthread_mutex_destroy(&p->lock);
}

void tether__pool_add_idle(tether__pool *p, tether__pool_conn *c) {
  pthread_mutex_lock(&p->lock);
  c->next = p->idle;
  p->idle = c;
  p->nconns++;
  pthread_mutex_unlock(&p->lock);
}

static void deadline_timespec(uint64_t deadline_us, struct timespec *ts) {
  uint64_t now = tether__mono_us();
  uint64_t left = deadline_us > now ? deadline_us - now : 0;
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += (time_t)(left / 1000000);
  ts->tv_nsec += (long)(left % 1000000) * 1000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

/* A connect failed: wait longer before the next attempt. Called with the lock held. */
static void backoff_locked(tether__pool *p) {
  if (p->backoff_min_ms == 0) return;
  p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : p->backoff_min_ms;
  if (p->backoff_ms > p->backoff_max_ms) p->backoff_ms = p->backoff_max_ms;
  p->retry_at_us = tether__mono_us() + (uint64_t)p->backoff_ms * 1000;
  snprintf(p->last_error, sizeof(p->last_error), "%s", tether_last_error());
}

/* Takes an idle connection that is still alive (closing the dead ones). Called with the lock held. */
static tether__pool_conn *take_idle_locked(tether__pool *p) {
  while (p->idle) {
    tether__pool_conn *c = p->idle;
    p->idle = c->next;
    if (p->ops->alive == NULL || p->ops->alive(c)) return c;
    p->nconns--;
    p->ops->close(c); /* closes a socket, does not block */
  }
  return NULL;
}

/* Opens a new connection in the slot the caller reserved (nconns already counts it). Called and returns
 * with the lock held; releases it while connecting. */
static int open_locked(tether__pool *p, tether__pool_conn **out) {
  pthread_mutex_unlock(&p->lock);
  int rc = p->ops->open(p->owner, out);
  pthread_mutex_lock(&p->lock);
  if (rc < 0) {
    p->nconns--;
    backoff_locked(p);
    pthread_cond_signal(&p->freed);
  } else {
    p->backoff_ms = 0;
    p->retry_at_us = 0;
  }
  return rc;
}

int tether__pool_acquire(tether__pool *p, uint64_t deadline_us, tether__pool_conn **out, int *fresh) {
  int rc = 0;
  if (fresh) *fresh = 0;
  pthread_mutex_lock(&p->lock);
  if (p->pid != getpid()) forget_inherited(p);
  for (;;) {
    if ((*out = take_idle_locked(p)) != NULL) break;
    if (p->nconns < p->max) {
      uint64_t now = tether__mono_us();
      if (now < p->retry_at_us) {
        rc = tether__fail(TETHER_EUNAVAIL, "%s: unavailable, next connect in %d ms (last error: %s)", p->name,
                          (int)((p->retry_at_us - now + 999) / 1000), p->last_error);
        break;
      }
      p->nconns++;
      rc = open_locked(p, out);
      if (rc == 0 && fresh) *fresh = 1;
      break;
    }
    struct timespec ts;
    deadline_timespec(deadline_us, &ts);
    if (pthread_cond_timedwait(&p->freed, &p->lock, &ts) == ETIMEDOUT && p->idle == NULL && p->nconns >= p->max) {
      rc = tether__fail(TETHER_ETIMEDOUT, "%s: all %d connections busy for %d ms", p->name, p->max, p->busy_ms);
      break;
    }
  }
  pthread_mutex_unlock(&p->lock);
  return rc;
}

void tether__pool_release(tether__pool *p, tether__pool_conn *c, int drop) {
  pthread_mutex_lock(&p->lock);
  if (p->pid != getpid()) {
    pthread_mutex_unlock(&p->lock); /* forked while it was in use: the child's pool no longer counts it */
    return;
  }
  if (drop) {
    p->nconns--;
  } else {
    c->next = p->idle;
    p->idle = c;
  }
  pthread_cond_signal(&p->freed);
  pthread_mutex_unlock(&p->lock);
  if (drop) p->ops->close(c);
}
