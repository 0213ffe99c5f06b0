/* The sticky cookie's key file: without `sticky_secret`, the values are keyed by 32 random bytes kept in a
 * file (sticky_key_file, default TETHER__STICKY_KEY_FILE), so a restart keeps every binding and nobody can
 * compute a server's value from names. Read, or created when missing, each time a configuration is loaded
 * (start and SIGHUP), never when one is only parsed (fuzzers, tests). The file holds 64 hex digits. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "persist.h"

#define KEY_LEN 32

void tether__cookie_key_path(const tether__config *cf, char *out, size_t cap) {
  const char *p = cf->sticky_key_file[0] ? cf->sticky_key_file : TETHER__STICKY_KEY_FILE;
  const char *slash = strrchr(cf->file, '/');
  if (p[0] == '/' || slash == NULL)
    snprintf(out, cap, "%s", p);
  else
    snprintf(out, cap, "%.*s/%s", (int)(slash - cf->file), cf->file, p); /* beside the configuration */
}

/* 0, -ENOENT when the file is missing, or -1 with the reason in why. */
static int read_key(const char *path, uint8_t key[KEY_LEN], char *why, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return -ENOENT;
    snprintf(why, cap, "cannot open: %s", strerror(errno));
    return -1;
  }
  struct stat st;
  char text[2 * KEY_LEN + 64];
  ssize_t n = -1;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    do n = read(fd, text, sizeof(text));
    while (n < 0 && errno == EINTR);
    if (n < 0) snprintf(why, cap, "cannot read: %s", strerror(errno));
  } else {
    snprintf(why, cap, "not a regular file");
  }
  close(fd);
  if (n < 0) return -1;
  int ok = n >= 2 * KEY_LEN && (size_t)n < sizeof(text);
  for (ssize_t i = 0; ok && i < n; i++)
    ok = i < 2 * KEY_LEN ? tether__hexval((unsigned char)text[i]) >= 0 : strchr(" \t\r\n", text[i]) != NULL;
  for (int i = 0; ok && i < KEY_LEN; i++)
    key[i] = (uint8_t)(tether__hexval(text[2 * i]) << 4 | tether__hexval(text[2 * i + 1]));
  memset(text, 0, sizeof(text));
  if (!ok) snprintf(why, cap, "malformed: expected %d hexadecimal digits (%d random bytes)", 2 * KEY_LEN, KEY_LEN);
  return ok ? 0 : -1;
}

/* Creates the missing directories of path's parent, 0700: the key is nobody else's business. */
static int make_parents(const char *path, char *why, size_t cap) {
  char dir[1024];
  snprintf(dir, sizeof(dir), "%s", path);
  for (char *s = strchr(dir + 1, '/'); s; s = strchr(s + 1, '/')) {
    *s = '\0';
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
      snprintf(why, cap, "cannot create the directory %s: %s", dir, strerror(errno));
      return -1;
    }
    *s = '/';
  }
  return 0;
}

/* Writes a new key beside the file and links it into place: an instance that starts at the same moment
 * either wins or reads the one that did, never half a file. */
static int create_key(const char *path, char *why, size_t cap) {
  uint8_t key[KEY_LEN];
  char tmp[1100], text[2 * KEY_LEN + 2];
  if (make_parents(path, why, cap) < 0) return -1;
  ssize_t got;
  do got = getrandom(key, sizeof(key), 0);
  while (got < 0 && errno == EINTR);
  if (got != (ssize_t)sizeof(key)) {
    snprintf(why, cap, "cannot create: no random bytes from the system: %s", strerror(errno));
    return -1;
  }
  for (int i = 0; i < KEY_LEN; i++) snprintf(text + 2 * i, 3, "%02x", key[i]);
  text[2 * KEY_LEN] = '\n';
  memset(key, 0, sizeof(key));
  snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
  int fd = mkstemp(tmp); /* 0600 */
  int rc = -1;
  if (fd < 0) {
    snprintf(why, cap, "cannot create: %s", strerror(errno));
  } else if (write(fd, text, 2 * KEY_LEN + 1) != 2 * KEY_LEN + 1 || fsync(fd) < 0) {
    snprintf(why, cap, "cannot write %s: %s", tmp, strerror(errno));
  } else if (link(tmp, path) < 0 && errno != EEXIST) {
    snprintf(why, cap, "cannot create: %s", strerror(errno));
  } else {
    rc = 0;
  }
  memset(text, 0, sizeof(text));
  if (fd >= 0) {
    close(fd);
    unlink(tmp);
  }
  return rc;
}

int tether__cookie_key_load(tether__config *cf, char *err, size_t errlen) {
  const tether__cf_upstream *first = NULL;
  for (size_t k = 0; k < cf->nupstreams && first == NULL; k++)
    if (tether__cookie_key_needed(&cf->upstreams[k])) first = &cf->upstreams[k];
  if (first == NULL) return 0;
  char path[1024], why[1200];
  uint8_t key[KEY_LEN];
  tether__cookie_key_path(cf, path, sizeof(path));
  int rc = read_key(path, key, why, sizeof(why));
  if (rc == -ENOENT) rc = create_key(path, why, sizeof(why)) < 0 ? -1 : read_key(path, key, why, sizeof(why));
  if (rc == -ENOENT) snprintf(why, sizeof(why), "vanished after it was created");
  if (rc < 0) {
    if (cf->sticky_key_file[0])
      snprintf(err, errlen, "%s:%d: sticky_key_file %s: %s\n", tether__cf_file(cf, cf->sticky_key_file_line),
               tether__cf_lineno(cf->sticky_key_file_line), path, why);
    else
      snprintf(err, errlen,
               "%s:%d: sticky_key_file %s (the default, for \"sticky cookie\" in upstream \"%s\", which has no "
               "sticky_secret): %s\n",
               tether__cf_file(cf, first->persist.line), tether__cf_lineno(first->persist.line), path, first->name,
               why);
    return -1;
  }
  for (size_t k = 0; k < cf->nupstreams; k++) {
    tether__cf_upstream *u = &cf->upstreams[k];
    if (!tether__cookie_key_needed(u)) continue;
    memcpy(u->sticky_key, key, sizeof(u->sticky_key));
    u->sticky_key_set = 1;
  }
  memset(key, 0, sizeof(key));
  return 0;
}
