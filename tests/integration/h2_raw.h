/* Raw HTTP/2 frames for the balancer's HTTP/2 tests: frames written by hand (HPACK literals without Huffman),
 * the answers read frame by frame and their header blocks decoded with nghttp2's inflater. For what a
 * well-behaved client library refuses to send, and to watch each frame the balancer sends. */
#ifndef TETHER_TESTS_H2_RAW_H
#define TETHER_TESTS_H2_RAW_H

#include <nghttp2/nghttp2.h>
#include <stddef.h>
#include <stdint.h>

enum { F_DATA = 0, F_HEADERS = 1, F_RST = 3, F_SETTINGS = 4, F_PING = 6, F_GOAWAY = 7, F_WINDOW = 8, F_CONT = 9 };
enum { END_STREAM = 1, END_HEADERS = 4 };

typedef struct raw {
  int fd;
  nghttp2_hd_inflater *inf;
  uint8_t buf[1 << 17];
  size_t len;
  size_t consumed;              /* the frame returned last */
  int64_t conn_win, stream_win; /* send_data: what the server's windows allow (one stream at a time) */
  uint32_t init_win;            /* the server's SETTINGS_INITIAL_WINDOW_SIZE */
} raw;

typedef struct frm {
  int type, flags;
  uint32_t id;
  uint8_t *p;
  size_t n;
} frm;

/* What became of a stream. */
typedef struct outcome {
  int status;       /* :status, 0 when none came */
  int rst;          /* RST_STREAM's code + 1, 0 when none */
  int goaway;       /* GOAWAY's code + 1, 0 when none */
  uint32_t last;    /* GOAWAY's last stream id */
  int closed;       /* the connection ended (EOF or timeout) */
  char body[65536]; /* DATA, NUL-terminated (truncated) */
  size_t len;
} outcome;

int send_all(int fd, const void *p, size_t n);
/* One frame: its 9-byte header and payload. */
int frame(raw *r, int type, int flags, uint32_t id, const void *p, size_t n);
/* Opens a connection with the preface and a SETTINGS frame (pairs of id, value). */
int raw_open(raw *r, int port, const uint32_t *settings, int npairs);
void raw_close(raw *r);
/* HPACK: an integer with an n-bit prefix; a literal field (new name, no Huffman). */
size_t hp_int(uint8_t *o, uint8_t first, int bits, size_t v);
size_t hp_lit(uint8_t *o, uint8_t first, const char *name, size_t nn, const char *value, size_t vn);
/* A header block from "name", "value" pairs (NULL-terminated). */
size_t block(uint8_t *o, const char *const *kv);
/* The next frame (its payload points into r->buf until the next call); -1 on EOF or timeout. */
int next_frame(raw *r, frm *f);
/* A HEADERS frame's block through the connection's decoder (every block must go through it): its :status. */
int headers_status(raw *r, const frm *f);
/* Reads until stream id ends (END_STREAM, RST_STREAM), a GOAWAY that excludes it, or the connection's end;
 * SETTINGS are acknowledged and DATA gives its window back. */
void wait_stream(raw *r, uint32_t id, outcome *o);
/* DATA for stream id (new: its window is the server's initial one), in frames the server's windows allow,
 * reading WINDOW_UPDATE and SETTINGS as they come; END_STREAM on the last frame when end. 0, -1 when the
 * connection ends, or 1 + the code of a RST_STREAM for the stream (the sending stops there). */
int send_data(raw *r, uint32_t id, const uint8_t *p, size_t n, int end);

#endif
