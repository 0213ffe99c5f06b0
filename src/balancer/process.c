/* The balancer as a server process: pid file, privileges, service manager notifications, versions. */
#include "process.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <openssl/crypto.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
#ifdef TETHER_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

int tether__pid_file_write(const char *path) {
  char tmp[1100], text[32];
  snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
  int n = snprintf(text, sizeof(text), "%d\n", (int)getpid());
  /* written aside and renamed: a reader never sees a half-written or empty file */
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || write(fd, text, (size_t)n) != n || close(fd) < 0 || rename(tmp, path) < 0) {
    fprintf(stderr, "pid %s: %s\n", path, strerror(errno));
    if (fd >= 0) unlink(tmp);
    return -1;
  }
  return 0;
}

void tether__pid_file_remove(const char *path) {
  char text[32] = "";
  FILE *f = fopen(path, "r");
  if (f == NULL) return;
  int ours = fgets(text, sizeof(text), f) != NULL && atoi(text) == (int)getpid();
  fclose(f);
  if (ours) unlink(path);
}

static int lookup(const char *user, const char *group, uid_t *uid, gid_t *gid) {
  struct passwd *pw = getpwnam(user);
  if (pw == NULL) {
    fprintf(stderr, "user %s: no such user\n", user);
    return -1;
  }
  *uid = pw->pw_uid;
  *gid = pw->pw_gid;
  if (group && *group) {
    struct group *gr = getgrnam(group);
    if (gr == NULL) {
      fprintf(stderr, "user %s %s: no such group\n", user, group);
      return -1;
    }
    *gid = gr->gr_gid;
  }
  return 0;
}

int tether__drop_privileges(const char *user, const char *group, const char *const *files, int nfiles) {
  uid_t uid;
  gid_t gid;
  if (lookup(user, group, &uid, &gid) < 0) return -1;
  if (geteuid() != 0) {
    if (geteuid() == uid) return 0;
    fprintf(stderr, "user %s: only root can switch users (running as uid %d)\n", user, (int)geteuid());
    return -1;
  }
  /* the logs and the sticky key stay the process's own after the switch: reopened on USR1, reread on HUP */
  for (int i = 0; i < nfiles; i++)
    if (files[i] && files[i][0] == '/' && chown(files[i], uid, gid) < 0 && errno != ENOENT)
      fprintf(stderr, "user %s: chown %s: %s\n", user, files[i], strerror(errno));
  if (initgroups(user, gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
    fprintf(stderr, "user %s: cannot switch: %s\n", user, strerror(errno));
    return -1;
  }
  if (setuid(0) == 0) { /* a switch that can be undone is none */
    fprintf(stderr, "user %s: root privileges could be regained\n", user);
    return -1;
  }
  return 0;
}

void tether__notify(const char *state) {
#ifdef TETHER_HAVE_SYSTEMD
  sd_notify(0, state);
#else
  (void)state;
#endif
}

void tether__print_versions(FILE *out, const char *version) {
  fprintf(out, "tether %s\n", version);
  fprintf(out, "OpenSSL: %s (built with %s)\n", OpenSSL_version(OPENSSL_VERSION), OPENSSL_VERSION_TEXT);
  fprintf(out, "libuv: %s (built with %d.%d.%d)\n", uv_version_string(), UV_VERSION_MAJOR, UV_VERSION_MINOR,
          UV_VERSION_PATCH);
#ifdef TETHER_HAVE_SYSTEMD
  fprintf(out, "systemd: sd_notify\n");
#else
  fprintf(out, "systemd: no\n");
#endif
}
