/* The balancer's habits as a server process: the pid file, dropping root after binding (`user`),
 * telling a service manager its state (sd_notify), and what `tether -V` prints. */
#ifndef TETHER_BALANCER_PROCESS_H
#define TETHER_BALANCER_PROCESS_H

#include <stdio.h>

/* Writes this process's id to path (created or replaced); 0, or -1 with a message on stderr. */
int tether__pid_file_write(const char *path);
/* Removes path if it still holds this process's id. */
void tether__pid_file_remove(const char *path);

/* As root: gives the listed files (those that exist) to user, then switches to user and group (group
 * "" : the user's primary group) with their supplementary groups. 0, or -1 with a message on stderr.
 * Not root and the same user: nothing to do. */
int tether__drop_privileges(const char *user, const char *group, const char *const *files, int nfiles);

/* sd_notify when built with libsystemd and started by systemd (NOTIFY_SOCKET); otherwise nothing. */
void tether__notify(const char *state);

/* `tether -V`: the version and the libraries it runs with. */
void tether__print_versions(FILE *out, const char *version);

#endif
