/* Plain TCP connections over io_uring (io/uring.c): one ring per worker, watched by the worker's libuv loop.
 * Receives are multishot over a ring of provided buffers, sends are queued and every one of a loop turn goes
 * to the kernel in one submission, just before libuv polls. Accept and connect stay on libuv (epoll); TLS
 * connections read and write over the ring too, their filter (io/tls.c, io/tls_record.c) taking the bytes read. */
#ifndef TETHER_BALANCER_IO_URING_H
#define TETHER_BALANCER_IO_URING_H

#include <uv.h>

#include "transport.h"

typedef struct tether__uring tether__uring;

/* A ring for this loop (the loop's data points to it afterwards), or NULL with the reason in why[len]. */
tether__uring *tether__uring_new(uv_loop_t *loop, char *why, size_t len);
/* Closes the ring's handles; once the loop has run their close callbacks, tether__uring_free. */
void tether__uring_stop(tether__uring *r);
void tether__uring_free(tether__uring *r);

/* Moves a connection onto its loop's ring, when the loop has one: 1 done, 0 it stays on libuv. */
int tether__uring_attach(tether__io *io);
int tether__uring_write(tether__io *io, const char *data, size_t len);
void tether__uring_read_start(tether__io *io);
void tether__uring_pause(tether__io *io);
void tether__uring_shutdown(tether__io *io);
/* What is queued leaves at once, when nothing is in flight ahead of it (best effort, no completion): a filter's
 * last words as it is freed (TLS's close_notify), just before the socket closes. */
void tether__uring_send_now(tether__io *io);
void tether__uring_close(tether__io *io, uv_close_cb cb);
/* As tether__io_quiet: 1 quiet, -1 bytes are waiting, 0 the end (or an error); 2 the socket must be asked. */
int tether__uring_quiet(tether__io *io);

#endif
