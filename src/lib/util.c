/* libtether: allocation, errors, logging, encodings, randomness and clocks. */
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

static _Thread_local char last_error[512];

static void default_log(tether_log_level level, const char *msg, void *arg);
static tether_log_fn log_fn = default_log;
static void *log_arg;
static int log_level = -1; /* -1: not read from the environment yet */

static void oom(size_t n) {
  fprintf(stderr, "tether: out of memory allocating %zu bytes\n", n);
  abort();
}

void *tether__malloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (p == NULL) oom(n);
  return p;
}

void *tether__calloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (p == NULL) oom(n * size);
  return p;
}

void *tether__realloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (q == NULL) oom(n);
  return q;
}

char *tether__strdup(const char *s) { return tether__strndup(s, strlen(s)); }

char *tether__strndup(const char *s, size_t n) {
  char *p = tether__malloc(n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *tether__asprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) abort();
  char *p = tether__malloc((size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return p;
}

int tether__fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof(last_error), fmt, ap);
  va_end(ap);
  return code;
}

void tether__clear_error(void) { last_error[0] = '\0'; }

const char *tether_last_error(void) { return last_error; }

const char *tether_strerror(int code) {
  switch (code) {
  case TETHER_OK:
    return "OK";
  case TETHER_ENOTFOUND:
    return "ENOTFOUND";
  case TETHER_EINVAL:
    return "EINVAL";
  case TETHER_ENOMEM:
    return "ENOMEM";
  case TETHER_E2BIG:
    return "E2BIG";
  case TETHER_ESTORE:
    return "ESTORE";
  case TETHER_EUNAVAIL:
    return "EUNAVAIL";
  case TETHER_ETIMEDOUT:
    return "ETIMEDOUT";
  case TETHER_ECORRUPT:
    return "ECORRUPT";
  case TETHER_ENOTSUP:
    return "ENOTSUP";
  case TETHER_EEXIST:
    return "EEXIST";
  default:
    return "EUNKNOWN";
  }
}

static void default_log(tether_log_level level, const char *msg, void *arg) {
  static const char *names[] = {"error", "warn", "info", "debug"};
  TETHER__UNUSED(arg);
  fprintf(stderr, "tether %s: %s\n", names[level], msg);
}

static int env_log_level(void) {
  const char *e = getenv("TETHER_LOG_LEVEL");
  if (e == NULL) return TETHER_LOG_WARN;
  if (strcasecmp(e, "error") == 0) return TETHER_LOG_ERROR;
  if (strcasecmp(e, "info") == 0) return TETHER_LOG_INFO;
  if (strcasecmp(e, "debug") == 0) return TETHER_LOG_DEBUG;
  return TETHER_LOG_WARN;
}

void tether_log_set(tether_log_fn fn, void *arg) {
  log_fn = fn ? fn : default_log;
  log_arg = arg;
}

void tether_log_set_level(tether_log_level level) { log_level = (int)level; }

void tether__log(tether_log_level level, const char *fmt, ...) {
  if (log_level < 0) log_level = env_log_level();
  if ((int)level > log_level) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  log_fn(level, msg, log_arg);
}

static size_t b64(const uint8_t *in, size_t n, char *out, const char *alpha) {
  size_t o = 0, i = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = alpha[v >> 18 & 63];
    out[o++] = alpha[v >> 12 & 63];
    out[o++] = alpha[v >> 6 & 63];
    out[o++] = alpha[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[o++] = alpha[v >> 18 & 63];
    out[o++] = alpha[v >> 12 & 63];
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[o++] = alpha[v >> 18 & 63];
    out[o++] = alpha[v >> 12 & 63];
    out[o++] = alpha[v >> 6 & 63];
  }
  out[o] = '\0';
  return o;
}

size_t tether__base64_encode(const uint8_t *in, size_t n, char *out) {
  return b64(in, n, out, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
}

size_t tether__base64url_encode(const uint8_t *in, size_t n, char *out) {
  return b64(in, n, out, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
}

/* Table-driven, four characters at a time: it runs three times per JWT verification (and tether__sid_valid
 * checks an id with it). */
static const int8_t b64url_tab[256] = {-1, -1, -1,
                                       -1, -1, -1,
                                       -1, -1, -1,
                                       -1, -1, -1,
                                       -1, -1, -1,
                                       -1, -1, -1,
                                       -1, -1, -1,
                                       -1, -1, -1,
                                       -1, -1, -1,
                                       -1, -1, -1,
                                       -1, -1, -1,
                                       -1, -1, -1,
                                       -1, -1, -1,
                                       -1, -1, -1,
                                       -1, -1, -1,
                                       62, -1, -1,
                                       52, 53, 54,
                                       55, 56, 57,
                                       58, 59, 60,
                                       61, -1, -1,
                                       -1, -1, -1,
                                       -1, -1, 0,
                                       1,  2,  3,
                                       4,  5,  6,
                                       7,  8,  9,
                                       10, 11, 12,
                                       13, 14, 15,
                                       16, 17, 18,
                                       19, 20, 21,
                                       22, 23, 24,
                                       25, -1, -1,
                                       -1, -1, 63,
                                       -1, 26, 27,
                                       28, 29, 30,
                                       31, 32, 33,
                                       34, 35, 36,
                                       37, 38, 39,
                                       40, 41, 42,
                                       43, 44, 45,
                                       46, 47, 48,
                                       49, 50, 51,
                                       -1, -1, -1,
                                       -1, -1, [128 ... 255] = -1};

int tether__base64url_decode_quiet(const char *in, size_t n, uint8_t *out, size_t cap) {
  if (n % 4 == 1) return TETHER_EINVAL;
  size_t need = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
  if (need > cap) return TETHER_E2BIG;
  const uint8_t *p = (const uint8_t *)in;
  size_t i = 0, o = 0;
  for (; i + 4 <= n; i += 4) {
    int a = b64url_tab[p[i]], b = b64url_tab[p[i + 1]], c = b64url_tab[p[i + 2]], d = b64url_tab[p[i + 3]];
    if ((a | b | c | d) < 0) return TETHER_EINVAL;
    uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
    out[o] = (uint8_t)(v >> 16);
    out[o + 1] = (uint8_t)(v >> 8);
    out[o + 2] = (uint8_t)v;
    o += 3;
  }
  if (n - i >= 2) {
    int a = b64url_tab[p[i]], b = b64url_tab[p[i + 1]], c = n - i == 3 ? b64url_tab[p[i + 2]] : 0;
    if ((a | b | c) < 0) return TETHER_EINVAL;
    if (n - i == 2 && (b & 0x0f) != 0) return TETHER_EINVAL;
    if (n - i == 3 && (c & 0x03) != 0) return TETHER_EINVAL;
    out[o++] = (uint8_t)(a << 2 | b >> 4);
    if (n - i == 3) out[o++] = (uint8_t)((b & 0x0f) << 4 | c >> 2);
  }
  return (int)o;
}

int tether__base64url_decode(const char *in, size_t n, uint8_t *out, size_t cap) {
  int rc = tether__base64url_decode_quiet(in, n, out, cap);
  if (rc == TETHER_E2BIG) return tether__fail(rc, "base64url: %zu characters do not fit in %zu bytes", n, cap);
  if (rc < 0) return tether__fail(rc, "base64url: not strict (length, character, padding or trailing bits)");
  return rc;
}

void tether__random(void *buf, size_t n) {
  uint8_t *p = buf;
  while (n > 0) {
    ssize_t r = getrandom(p, n, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "tether: getrandom failed: %s\n", strerror(errno));
      abort();
    }
    p += r;
    n -= (size_t)r;
  }
}

int tether__ct_equal(const void *a, const void *b, size_t n) {
  const volatile uint8_t *x = a, *y = b;
  uint8_t d = 0;
  for (size_t i = 0; i < n; i++) d |= x[i] ^ y[i];
  return d == 0;
}

uint64_t tether__mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int64_t tether_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void split_ms(int64_t ms, struct tm *tm, int *millis) {
  int64_t secs = ms / 1000;
  int64_t rem = ms % 1000;
  if (rem < 0) {
    rem += 1000;
    secs -= 1;
  }
  time_t t = (time_t)secs;
  gmtime_r(&t, tm);
  *millis = (int)rem;
}

/* v in exactly width decimal digits at p (no printf on the session path: it costs more than the rest). */
static char *put_digits(char *p, unsigned v, int width) {
  for (int i = width - 1; i >= 0; i--, v /= 10) p[i] = (char)('0' + v % 10);
  return p + width;
}

void tether__iso8601(int64_t ms, char out[32]) {
  struct tm tm;
  int millis;
  split_ms(ms, &tm, &millis);
  /* years past 9999 are clamped: no cookie lives that long, and the format stays fixed-width */
  int year = tm.tm_year + 1900 > 9999 ? 9999 : tm.tm_year + 1900 < 0 ? 0 : tm.tm_year + 1900;
  char *p = put_digits(out, (unsigned)year, 4); /* 24 bytes */
  *p++ = '-';
  p = put_digits(p, (unsigned)tm.tm_mon + 1, 2);
  *p++ = '-';
  p = put_digits(p, (unsigned)tm.tm_mday, 2);
  *p++ = 'T';
  p = put_digits(p, (unsigned)tm.tm_hour, 2);
  *p++ = ':';
  p = put_digits(p, (unsigned)tm.tm_min, 2);
  *p++ = ':';
  p = put_digits(p, (unsigned)tm.tm_sec, 2);
  *p++ = '.';
  p = put_digits(p, (unsigned)millis, 3);
  memcpy(p, "Z", 2);
}

void tether__http_date(int64_t ms, char out[40]) {
  static const char *days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char *mons[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  struct tm tm;
  int millis;
  split_ms(ms, &tm, &millis);
  int year = tm.tm_year + 1900 > 9999 ? 9999 : tm.tm_year + 1900 < 0 ? 0 : tm.tm_year + 1900;
  memcpy(out, days[tm.tm_wday % 7], 3); /* "Sun, 06 Nov 1994 08:49:37 GMT": 29 bytes */
  char *p = out + 3;
  *p++ = ',';
  *p++ = ' ';
  p = put_digits(p, (unsigned)tm.tm_mday, 2);
  *p++ = ' ';
  memcpy(p, mons[tm.tm_mon % 12], 3);
  p += 3;
  *p++ = ' ';
  p = put_digits(p, (unsigned)year, 4);
  *p++ = ' ';
  p = put_digits(p, (unsigned)tm.tm_hour, 2);
  *p++ = ':';
  p = put_digits(p, (unsigned)tm.tm_min, 2);
  *p++ = ':';
  p = put_digits(p, (unsigned)tm.tm_sec, 2);
  memcpy(p, " GMT", 5);
}

static int digits(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

int tether__parse_iso8601(const char *s, int64_t *ms) {
  /* YYYY-MM-DDTHH:MM:SS[.fff]Z */
  int y, mo, d, h, mi, sec, frac = 0;
  size_t n = strlen(s);
  if (n < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':')
    return tether__fail(TETHER_EINVAL, "date '%.40s' is not ISO-8601", s);
  if (digits(s, 4, &y) || digits(s + 5, 2, &mo) || digits(s + 8, 2, &d) || digits(s + 11, 2, &h) ||
      digits(s + 14, 2, &mi) || digits(s + 17, 2, &sec))
    return tether__fail(TETHER_EINVAL, "date '%.40s' is not ISO-8601", s);
  const char *p = s + 19;
  if (*p == '.') {
    int k = 0, scale = 100;
    for (p++; *p >= '0' && *p <= '9'; p++, k++) {
      if (scale > 0) frac += (*p - '0') * scale;
      scale /= 10;
    }
    if (k == 0) return tether__fail(TETHER_EINVAL, "date '%.40s': empty fraction", s);
  }
  if (p[0] != 'Z' || p[1] != '\0') return tether__fail(TETHER_EINVAL, "date '%.40s' is not UTC", s);
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59)
    return tether__fail(TETHER_EINVAL, "date '%.40s' is out of range", s);
  int64_t days = days_from_civil(y, mo, d);
  *ms = ((days * 24 + h) * 60 + mi) * 60000 + (int64_t)sec * 1000 + frac;
  return 0;
}

void tether__buf_reserve(tether__buf *b, size_t n) {
  if (b->len + n + 1 > b->cap) {
    /* the first reservation is taken as it is asked (at least 256 bytes): a caller that knows its size gets
     * one allocation of that size, not the next power of two (at 1 KiB, glibc's malloc consolidates) */
    size_t need = b->len + n + 1, cap = b->cap ? b->cap * 2 : 256;
    if (cap < need) cap = need;
    b->data = tether__realloc(b->data, cap);
    b->cap = cap;
  }
}

void tether__buf_appendf(tether__buf *b, const char *fmt, ...) {
  char small[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof(small), fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof(small)) {
    tether__buf_append(b, small, (size_t)n);
    return;
  }
  char *big = tether__malloc((size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  tether__buf_append(b, big, (size_t)n);
  free(big);
}

void tether__buf_free(tether__buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

int tether__sid_valid(const char *sid) {
  size_t n = 0;
  for (; sid[n] != '\0'; n++) { /* every store call checks one */
    if (n >= 128 || b64url_tab[(unsigned char)sid[n]] < 0) return 0;
  }
  return n > 0;
}

const uint8_t tether__tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1,
    ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1, ['0'] = 1,  ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1,
    ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1, ['A'] = 1,  ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,
    ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1,  ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1,
    ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,  ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1,
    ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1,  ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1,
    ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1,  ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,
    ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1,  ['z'] = 1,
};

int tether__token_valid(const char *s) {
  if (*s == '\0') return 0;
  for (; *s; s++)
    if (!tether__tchar[(unsigned char)*s]) return 0;
  return 1;
}
