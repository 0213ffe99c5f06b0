/* Tether: shared definitions of libtether's public headers (errors, export macro, logging). */
#ifndef TETHER_COMMON_H
#define TETHER_COMMON_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define TETHER_EXTERN __attribute__((visibility("default")))
#else
#define TETHER_EXTERN
#endif

/* Errors are values: every call returns 0 (or a count) on success and one of these on failure.
 * They are negative errno codes, so strerror(-code) also works. The message of the last failure on
 * this thread is in tether_last_error(). */
#define TETHER_OK 0
#define TETHER_ENOTFOUND (-ENOENT)      /* no such session in the store (not an error for callers) */
#define TETHER_EINVAL (-EINVAL)         /* bad argument or malformed input (URL, cookie, option) */
#define TETHER_ENOMEM (-ENOMEM)         /* never returned: allocation failure aborts */
#define TETHER_E2BIG (-E2BIG)           /* value larger than the store or the cookie can hold */
#define TETHER_ESTORE (-EIO)            /* the store answered with an error */
#define TETHER_EUNAVAIL (-ECONNREFUSED) /* the store cannot be reached (down, or backing off) */
#define TETHER_ETIMEDOUT (-ETIMEDOUT)   /* the store did not answer in time */
#define TETHER_ECORRUPT (-EBADMSG)      /* data in the store is not a session */
#define TETHER_ENOTSUP (-ENOTSUP)       /* the store cannot do this */
#define TETHER_EEXIST (-EEXIST)         /* a create-only write found the session already there */

#ifdef __cplusplus
extern "C" {
#endif

/* A short name for an error code ("ENOENT" style), never NULL. */
TETHER_EXTERN const char *tether_strerror(int code);

/* The message of the last failure on the calling thread ("" when none). */
TETHER_EXTERN const char *tether_last_error(void);

typedef enum tether_log_level {
  TETHER_LOG_ERROR = 0,
  TETHER_LOG_WARN = 1,
  TETHER_LOG_INFO = 2,
  TETHER_LOG_DEBUG = 3
} tether_log_level;

typedef void (*tether_log_fn)(tether_log_level level, const char *msg, void *arg);

/* One logger for the library. The default writes lines at or below TETHER_LOG_WARN to stderr;
 * TETHER_LOG_LEVEL=error|warn|info|debug in the environment changes that level. */
TETHER_EXTERN void tether_log_set(tether_log_fn fn, void *arg);
TETHER_EXTERN void tether_log_set_level(tether_log_level level);

/* Milliseconds since the Unix epoch (wall clock), as session expiry dates use. */
TETHER_EXTERN int64_t tether_now_ms(void);

#ifdef __cplusplus
}
#endif
#endif
