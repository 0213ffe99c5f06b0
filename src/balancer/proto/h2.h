/* HTTP/2 at the edge (nghttp2): one server session per connection (proto/h2.c), and for each stream a client of
 * its own (proto/h2_stream.c) whose transport is the stream: it takes an HTTP/1.1 request head made from the
 * stream's validated header block (already parsed, proto/h2_head.c), then reads the body made from its DATA, and what
 * the request and upstream layers write to it (HTTP/1.1 bytes) goes back as the stream's HEADERS and DATA. So every
 * stream goes through the same request layer as HTTP/1.1: routing, auth_jwt, persistence, balancing, retries,
 * add_header, the monitor and the access log. */
#ifndef TETHER_BALANCER_PROTO_H2_H
#define TETHER_BALANCER_PROTO_H2_H

#include <nghttp2/nghttp2.h>

#include "../../lib/util.h"
#include "../conn-t.h"
#include "h2_head.h"

typedef struct tether__h2 tether__h2;
typedef struct tether__h2_stream tether__h2_stream;

/* A budget of cheap frames (RST_STREAM, PING, SETTINGS, empty DATA): a burst, refilled at a rate per second. */
typedef struct tether__h2_budget {
  double tokens;
  int64_t last_ms;
} tether__h2_budget;

struct tether__h2_stream {
  tether__h2 *h;
  tether__h2_stream *prev, *next; /* in the connection's streams */
  tether__client *c;              /* the stream's request client; NULL before its head is complete, and once closed */
  int32_t id;
  tether__buf in;        /* request body bytes made and not yet read by c (the head goes to c parsed) */
  tether__h2_head *head; /* a held request's header block, until END_STREAM */
  size_t unconsumed;     /* DATA bytes in `in`: the window opens again once c reads them */
  uint8_t headers_done, chunked, in_eof, closed, delivering, notify, bad;
  uint8_t hold;     /* the whole request waits for END_STREAM (a content-length up to TETHER__H2_BODY_HOLD) */
  uint8_t withheld; /* the last byte of a larger content-length body, held until END_STREAM confirms it */
  uint8_t has_withheld;
  int64_t cl_left; /* content-length: body bytes still to come (-1: no content-length) */
  /* the response, from c's HTTP/1.1 bytes */
  tether__buf rhead;  /* the response head until it is complete */
  tether__buf out;    /* DATA bytes not yet taken by nghttp2 */
  size_t out_off;     /* taken from out */
  int rstate;         /* 0 head, 1 body, 2 done */
  int framing;        /* tether__h1_framing of the response body */
  uint64_t remaining; /* LENGTH: body bytes left; CHUNKED: data bytes left in the chunk */
  int cstate;         /* CHUNKED: where in the framing */
  uint8_t deferred;   /* nghttp2 waits for DATA (resume it when some comes) */
  uint8_t out_eof;    /* the response body is complete */
  uint8_t submitted;  /* the response HEADERS were submitted */
};

struct tether__h2 {
  nghttp2_session *s;
  tether__client *c; /* the connection */
  uv_idle_t flush;   /* a deferred send: writes from streams are sent outside nghttp2's callbacks */
  uv_idle_cb on_flush;
  tether__io_read_cb h1_read; /* the HTTP/1.1 side's transport callbacks: each stream's client takes them */
  tether__io_write_cb h1_written;
  tether__h2_stream *streams;
  /* the header block being received, checked field by field: one at a time on a connection (RFC 9113 section
   * 6.10: a block's frames come one after the other), so its buffers serve every stream, freed when none is */
  tether__h2_head head;
  tether__h2_stream *block; /* the stream whose request block is being received (no lookup per field) */
  tether__h2_stream *spare; /* closed streams kept for the next ones (their DATA buffer too), while any is open */
  int nspare;
  int nstreams;
  int held;           /* streams whose request waits for its END_STREAM (no client yet) */
  int64_t recv_ms;    /* when the client last sent something (client_body_timeout of held requests) */
  int started;        /* streams begun (keepalive_requests) */
  int in_session;     /* inside nghttp2_session_mem_recv or _send */
  int goaway;         /* a GOAWAY was submitted */
  int closed;         /* the connection is gone: the flush handle's close frees this */
  int64_t stalled_ms; /* since when an answer waits for the client's window (0: none waits) */
  size_t frame_left;  /* bytes of the preface or of the frame being received (http2_recv_timeout) */
  uint8_t fh[9];      /* the frame header being received */
  int fh_len;
  tether__h2_budget resets, cheap;
};

/* proto/h2.c, for proto/h1.c */
/* Whether a new connection's first bytes are HTTP/2 on a listener that serves it: ALPN h2, or the client
 * preface on a plain http2 listener. 1 yes, 0 no, -1 more bytes are needed. */
int tether__h2_detect(tether__client *c);
/* Takes the connection over: its reads and writes go to a new session; the bytes read so far are fed to it. */
void tether__h2_start(tether__client *c);
/* The connection closes: every stream is closed. */
void tether__h2_closed(tether__client *c);
/* Graceful stop or reload: GOAWAY, the streams in progress finish. */
void tether__h2_goaway(tether__client *c);

/* Sends what the session has, soon and outside its callbacks. */
static inline void tether__h2_schedule(tether__h2 *h) {
  if (!h->closed && !h->c->closing) uv_idle_start(&h->flush, h->on_flush);
}

/* A request with a content-length up to this (nginx's client_body_buffer_size on 64-bit systems) is held
 * whole until its END_STREAM: the server sees nothing of a stream whose DATA disagrees with its length. A
 * larger body streams, but its last byte waits for END_STREAM, so that the server never gets a complete
 * request the client did not finish; on a mismatch the stream is reset and its server connection closed. */
#define TETHER__H2_BODY_HOLD 16384

/* proto/h2_stream.c */
extern const tether__io_filter tether__h2_stream_filter;
/* Request bytes for the stream's client (framed as its head said); eof: the stream's END_STREAM. -1 when the
 * DATA disagrees with the content-length (the caller resets the stream). */
int tether__h2_stream_input(tether__h2_stream *st, const uint8_t *data, size_t len, int eof);
/* Gives the stream's client what it can read now. */
void tether__h2_stream_deliver(tether__h2_stream *st);
/* nghttp2's data source for a response body. */
ssize_t tether__h2_stream_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                               nghttp2_data_source *src, void *user);
/* Tells stream clients whose bytes nghttp2 took that they were written (for their backpressure and ends). */
void tether__h2_stream_notify(tether__h2 *h);

#endif
