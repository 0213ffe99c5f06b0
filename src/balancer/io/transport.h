/* The transport under a connection, client or server: read, write, shutdown and close, over plain TCP
 * (io/tcp.c) now and TLS next. Reads land in a buffer the owner lends (the worker's one read buffer);
 * writes go out at once when nothing is queued, the rest is copied and queued, and `pending` counts it for
 * backpressure. The owner hears of reads and of finished queued writes through its two callbacks. */
#ifndef TETHER_BALANCER_IO_TRANSPORT_H
#define TETHER_BALANCER_IO_TRANSPORT_H

#include <stddef.h>
#include <sys/socket.h>
#include <uv.h>

typedef struct tether__io tether__io;
struct tether__h1_msg;

/* A filter between the socket and the owner (TLS): it takes the raw bytes read, and the owner's writes, and
 * speaks to the socket through tether__io_write_raw. Lower layers reach it only through this table. */
typedef struct tether__io_filter {
  void (*read)(tether__io *io, ssize_t nread, char *data); /* raw bytes in (data may be reused) */
  int (*write)(tether__io *io, const char *data, size_t len);
  void (*drain)(tether__io *io); /* reading resumed: deliver what the filter already holds */
  int (*shutdown)(tether__io *io, uv_shutdown_t *req);
  void (*free)(tether__io *io);
  /* Optional: a response head and the body bytes after it, data[0..len), where data[0..head_len) is the head
   * as the client is to get it (HTTP/1.1 text the balancer made, "Name: value" lines) and m the server's head
   * as the upstream layer parsed it (its status and body framing). NULL: the bytes go through write. */
  int (*head)(tether__io *io, const struct tether__h1_msg *m, const char *data, size_t head_len, size_t len);
} tether__io_filter;

/* nread > 0: data[0..nread) was read; nread < 0: a libuv error (UV_EOF at the end). */
typedef void (*tether__io_read_cb)(tether__io *io, ssize_t nread, const char *data);
/* A queued write finished (status < 0: it failed); io->pending has already been reduced. */
typedef void (*tether__io_write_cb)(tether__io *io, int status);

struct tether__io {
  uv_tcp_t tcp; /* first: libuv's stream is the transport; tcp.data belongs to the owner */
  void *owner;  /* the client or server connection */
  char *rbuf;   /* where reads land */
  size_t rbuf_len;
  size_t pending; /* bytes queued for writing */
  int paused;     /* reading stopped by the owner (backpressure) */
  int closing;    /* closed: no callback anymore */
  tether__io_read_cb on_read;
  tether__io_write_cb on_written;
  const tether__io_filter *filter; /* NULL: plain TCP */
  void *filter_state;
  struct tether__uio *uio; /* on the worker's io_uring (io/uring.c); NULL: on libuv */
};

void tether__io_init(tether__io *io, uv_loop_t *loop, void *owner, char *rbuf, size_t rbuf_len,
                     tether__io_read_cb on_read, tether__io_write_cb on_written);
/* Adopts an accepted socket; the peer's address into *peer. */
int tether__io_open(tether__io *io, int fd, struct sockaddr_storage *peer);
int tether__io_connect(tether__io *io, uv_connect_t *req, const struct sockaddr *sa, uv_connect_cb cb);
void tether__io_nodelay(tether__io *io);
int tether__io_write(tether__io *io, const char *data, size_t len);
/* Bytes to the socket itself, under any filter (the filter's own output). */
int tether__io_write_raw(tether__io *io, const char *data, size_t len);
int tether__io_shutdown_raw(tether__io *io, uv_shutdown_t *req);
int tether__io_read_start(tether__io *io);
void tether__io_pause(tether__io *io);  /* reads stop until tether__io_resume */
void tether__io_resume(tether__io *io); /* only when paused */
int tether__io_shutdown(tether__io *io, uv_shutdown_t *req);
/* Closes the transport; cb runs with the handle once libuv is done with it. */
void tether__io_close(tether__io *io, uv_close_cb cb);
/* Whether an idle connection has nothing to say: 1 quiet, -1 bytes are waiting, 0 closed by the peer. */
int tether__io_quiet(tether__io *io);

#endif
