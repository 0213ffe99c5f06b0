/* TLS 1.3's record layer (io/tls_record.c) against a client made of its own sealing and opening with the keys
 * the other way round: what the owner hears and what the client gets back (data, KeyUpdate, the alerts of RFC
 * 8446 sections 5 and 6) record by record. Interoperability with OpenSSL's record layer is the integration
 * test's (balancer_tlsrec). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define TETHER__TLSREC_TEST
static int tlsrec_test_kdf_budget = -1; /* derivations that succeed before one fails (-1: all succeed) */
#include "../../src/balancer/io/tls_record.c"

static char wire[1 << 17];        /* what the server sent */
static size_t wire_len, wire_off; /* wire_off: what the client has read of it */

int tether__io_write_raw(tether__io *io, const char *data, size_t len) {
  (void)io;
  assert_true(wire_len + len <= sizeof(wire));
  memcpy(wire + wire_len, data, len);
  wire_len += len;
  return 0;
}

int tether__io_shutdown_raw(tether__io *io, uv_shutdown_t *req) {
  (void)io;
  (void)req;
  return 0;
}

static char heard[1 << 17]; /* what the owner heard */
static size_t heard_len;
static ssize_t ended; /* the error or end the owner heard (0: none) */

static void on_read(tether__io *io, ssize_t nread, const char *data) {
  assert_int_equal(ended, 0);
  if (nread < 0) {
    ended = nread;
    return;
  }
  assert_true(nread > 0 && nread <= MAX_PLAIN);
  memcpy(heard + heard_len, data, (size_t)nread);
  heard_len += (size_t)nread;
  (void)io;
}

static tether__io io;
static rec *cl; /* the client: its tx is the server's rx, its rx the server's tx */
static char rbuf[65536];

static void start(uint16_t id) {
  tether__tlsrec_keys k = {.suite = id, .servername = "example.test", .alpn_h2 = 1};
  assert_true(tether__tlsrec_supported(id));
  k.secret_len = suites[suite_index(id)].hash_len;
  for (size_t i = 0; i < k.secret_len; i++) {
    k.rx_secret[i] = (unsigned char)(i * 3);
    k.tx_secret[i] = (unsigned char)(200 - i);
  }
  k.tx_seq = 2; /* two session tickets went before */
  memset(&io, 0, sizeof(io));
  io.rbuf = rbuf;
  io.rbuf_len = sizeof(rbuf);
  io.on_read = on_read;
  wire_len = wire_off = heard_len = 0;
  ended = 0;
  assert_int_equal(tether__tlsrec_attach(&io, &k, NULL, 0), 0);
  assert_string_equal(tether__tlsrec_servername(&io), "example.test");
  assert_int_equal(tether__tlsrec_alpn_h2(&io), 1);
  cl = tether__calloc(1, sizeof(*cl));
  cl->suite = (unsigned char)suite_index(id);
  memcpy(cl->tx.secret, k.rx_secret, k.secret_len);
  memcpy(cl->rx.secret, k.tx_secret, k.secret_len);
  assert_int_equal(dir_keys(&suites[cl->suite], &cl->tx), 0);
  assert_int_equal(dir_keys(&suites[cl->suite], &cl->rx), 0);
  cl->rx.seq = 2;
}

static void stop(void) {
  if (!io.closing) io.filter->free(&io);
  forget(&cl->rx);
  forget(&cl->tx);
  free(cl);
}

/* The client seals inner[0..n) (content, type, padding as given) into one record, into out; its size. */
static size_t client_record(const char *inner, size_t n, char *out) {
  assert_true(n >= 1);
  /* seal() appends a type byte: the last inner byte is that type (0 when inner ends in padding) */
  long w = seal(cl, (unsigned char)inner[n - 1], inner, n - 1, out);
  assert_true(w > 0);
  return (size_t)w;
}

/* Feeds bytes as reads of step bytes each (in the read buffer, as the transport does). */
static void feed_reads(const char *p, size_t n, size_t step) {
  for (size_t off = 0; off < n && !io.closing; off += step) {
    size_t k = n - off < step ? n - off : step;
    memcpy(rbuf, p + off, k);
    io.filter->read(&io, (ssize_t)k, rbuf);
  }
}

static void client_sends(const char *inner, size_t n) {
  char out[HEADER + MAX_CIPHER + 64];
  feed_reads(out, client_record(inner, n, out), sizeof(out));
}

/* The next record the server sent: its type, its content into out (length into *len). -1: none or not opened. */
static int server_record(char *out, size_t *len) {
  if (wire_len - wire_off < HEADER) return -1;
  unsigned char *h = (unsigned char *)wire + wire_off;
  size_t n = (size_t)h[3] << 8 | h[4];
  assert_int_equal(h[0], TYPE_DATA);
  assert_true(wire_len - wire_off >= HEADER + n);
  int type = open_record(cl, h, n, len);
  if (type > 0) memcpy(out, h + HEADER, *len);
  wire_off += HEADER + n;
  return type;
}

/* The server's last words: a fatal alert with desc, and the owner heard UV_EPROTO. */
static void expect_alert(int desc) {
  char m[MAX_PLAIN];
  size_t len = 0;
  int type = server_record(m, &len);
  assert_int_equal(type, TYPE_ALERT);
  assert_int_equal(len, 2);
  assert_int_equal(m[0], 2);
  assert_int_equal(m[1], desc);
  assert_int_equal(ended, UV_EPROTO);
}

static void test_data_each_way_and_close_notify(void **state) {
  (void)state;
  const uint16_t ids[] = {0x1301, 0x1302, 0x1303};
  for (int s = 0; s < 3; s++) {
    start(ids[s]);
    client_sends("hello\x17", 6);
    client_sends("\x17\0\0\0", 4);   /* empty, padded: nothing heard */
    client_sends(" you\x17\0\0", 7); /* padded */
    assert_int_equal(heard_len, 9);
    assert_memory_equal(heard, "hello you", 9);
    static char big[40000];
    memset(big, 'b', sizeof(big));
    assert_int_equal(io.filter->write(&io, big, sizeof(big)), 0);
    char m[MAX_PLAIN];
    size_t len = 0, total = 0;
    for (int i = 0; i < 3; i++) { /* 16384 + 16384 + 7232, in one write */
      assert_int_equal(server_record(m, &len), TYPE_DATA);
      assert_true(len <= MAX_PLAIN);
      total += len;
    }
    assert_int_equal(total, sizeof(big));
    assert_int_equal(wire_off, wire_len);
    client_sends("\x01\x00\x15", 3); /* close_notify */
    assert_int_equal(ended, UV_EOF);
    io.filter->free(&io); /* answers with its own */
    io.closing = 1;
    assert_int_equal(server_record(m, &len), TYPE_ALERT);
    assert_int_equal(m[1], ALERT_CLOSE_NOTIFY);
    stop();
  }
}

/* A record cut anywhere waits for the rest (in a buffer held only meanwhile); records after a pause wait too. */
static void test_cut_records_and_pause(void **state) {
  (void)state;
  start(0x1301);
  char out[3 * (HEADER + 64)];
  size_t n = client_record("one\x17", 4, out);
  n += client_record("two\x17", 4, out + n);
  n += client_record("three\x17", 6, out + n);
  feed_reads(out, n, 1);
  assert_int_equal(heard_len, 11);
  assert_memory_equal(heard, "onetwothree", 11);
  assert_null(((rec *)io.filter_state)->pend);
  heard_len = 0;
  n = client_record("four\x17", 5, out);
  n += client_record("five\x17", 5, out + n);
  io.paused = 1;
  feed_reads(out, n, sizeof(out));
  assert_int_equal(heard_len, 0);
  io.paused = 0;
  io.filter->drain(&io);
  assert_int_equal(heard_len, 8);
  assert_memory_equal(heard, "fourfive", 8);
  assert_null(((rec *)io.filter_state)->pend);
  stop();
}

/* KeyUpdate (section 4.6.3): the read key moves on; when asked, ours too, after our KeyUpdate under the old one.
 * user_canceled is no end (section 6.1). */
static void test_key_update(void **state) {
  (void)state;
  start(0x1303);
  wire_off = 0;
  client_sends("\x18\x00\x00\x01\x00\x16", 6); /* update_not_requested */
  assert_int_equal(dir_update(&suites[cl->suite], &cl->tx), 0);
  client_sends("a\x17", 2);
  assert_int_equal(wire_len, 0);
  client_sends("\x18\x00\x00\x01\x01\x16", 6); /* update_requested */
  assert_int_equal(dir_update(&suites[cl->suite], &cl->tx), 0);
  client_sends("\x18\x00\x00\x01\x01\x16", 6); /* again: still one KeyUpdate of ours, before our next record */
  assert_int_equal(dir_update(&suites[cl->suite], &cl->tx), 0);
  assert_int_equal(wire_len, 0);
  assert_int_equal(io.filter->write(&io, "c", 1), 0);
  char m[MAX_PLAIN];
  size_t len = 0;
  assert_int_equal(server_record(m, &len), TYPE_HANDSHAKE);
  assert_int_equal(len, 5);
  assert_memory_equal(m, "\x18\x00\x00\x01\x00", 5);
  assert_int_equal(dir_update(&suites[cl->suite], &cl->rx), 0);
  client_sends("\x01\x5a\x15", 3); /* user_canceled */
  assert_int_equal(server_record(m, &len), TYPE_DATA);
  assert_memory_equal(m, "c", 1);
  client_sends("b\x17", 2);
  assert_int_equal(io.filter->write(&io, "d", 1), 0); /* no second KeyUpdate */
  assert_int_equal(server_record(m, &len), TYPE_DATA);
  assert_memory_equal(m, "d", 1);
  assert_int_equal(heard_len, 2);
  assert_memory_equal(heard, "ab", 2);
  assert_int_equal(ended, 0);
  stop();
}

/* Past AES-GCM's records per key, the server updates its key itself. */
static void test_own_key_update(void **state) {
  (void)state;
  start(0x1301);
  wire_off = 0;
  ((rec *)io.filter_state)->tx.seq = TX_RECORDS_PER_KEY;
  cl->rx.seq = TX_RECORDS_PER_KEY;
  assert_int_equal(io.filter->write(&io, "x", 1), 0);
  char m[MAX_PLAIN];
  size_t len = 0;
  assert_int_equal(server_record(m, &len), TYPE_HANDSHAKE);
  assert_memory_equal(m, "\x18\x00\x00\x01\x00", 5);
  assert_int_equal(dir_update(&suites[cl->suite], &cl->rx), 0);
  assert_int_equal(server_record(m, &len), TYPE_DATA);
  assert_memory_equal(m, "x", 1);
  stop();
}

/* What ends the connection, with which alert, and nothing heard after it. */
static void test_alerts(void **state) {
  (void)state;
  char out[HEADER + MAX_CIPHER + 64];
  static char inner[MAX_PLAIN + 2];
  struct {
    const char *what;
    int desc;
  } cases[] = {{"key_update_bad_request", ALERT_ILLEGAL_PARAMETER},
               {"key_update_long", ALERT_DECODE},
               {"new_session_ticket", ALERT_UNEXPECTED},
               {"all_padding", ALERT_UNEXPECTED},
               {"change_cipher_spec_inner", ALERT_UNEXPECTED},
               {"plaintext_too_long", ALERT_OVERFLOW},
               {"tag_flipped", ALERT_BAD_MAC},
               {"outer_handshake", ALERT_UNEXPECTED},
               {"length_too_long", ALERT_OVERFLOW},
               {"too_short", ALERT_BAD_MAC}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    start(0x1302);
    const char *w = cases[i].what;
    size_t n = 0;
    if (strcmp(w, "key_update_bad_request") == 0)
      n = client_record("\x18\x00\x00\x01\x02\x16", 6, out);
    else if (strcmp(w, "key_update_long") == 0)
      n = client_record("\x18\x00\x00\x02\x00\x00\x16", 7, out);
    else if (strcmp(w, "new_session_ticket") == 0)
      n = client_record("\x04\x00\x00\x00\x16", 5, out);
    else if (strcmp(w, "all_padding") == 0)
      n = client_record("\0\0\0", 3, out);
    else if (strcmp(w, "change_cipher_spec_inner") == 0)
      n = client_record("\x01\x14", 2, out);
    else if (strcmp(w, "plaintext_too_long") == 0) {
      memset(inner, 'p', sizeof(inner));
      inner[MAX_PLAIN + 1] = TYPE_DATA;
      n = client_record(inner, MAX_PLAIN + 2, out);
    } else if (strcmp(w, "tag_flipped") == 0) {
      n = client_record("secret\x17", 7, out);
      out[n - 1] ^= 1;
    } else if (strcmp(w, "outer_handshake") == 0) {
      memcpy(out, "\x16\x03\x03\x00\x01\x00", 6);
      n = 6;
    } else if (strcmp(w, "length_too_long") == 0) {
      memcpy(out, "\x17\x03\x03\x41\x01", 5);
      n = 5;
    } else {
      memcpy(out,
             "\x17\x03\x03\x00\x10"
             "0123456789abcdef",
             21);
      n = 21;
    }
    feed_reads(out, n, sizeof(out));
    if (ended != UV_EPROTO) fprintf(stderr, "%s: not ended\n", w);
    expect_alert(cases[i].desc);
    assert_int_equal(heard_len, 0);
    client_sends("late\x17", 5); /* nothing more is read */
    assert_int_equal(heard_len, 0);
    assert_int_equal(io.filter->write(&io, "x", 1), UV_EPIPE); /* nor written */
    stop();
  }
}

/* A key update that fails half way (the new secret derived, its key not) leaves nothing sealed after it: the old
 * key from sequence 0 would reuse its nonces. */
static void test_failed_update_seals_nothing(void **state) {
  (void)state;
  for (int budget = 0; budget < 3; budget++) {
    start(0x1301);
    ((rec *)io.filter_state)->tx.seq = TX_RECORDS_PER_KEY;
    tlsrec_test_kdf_budget = budget; /* fails at "traffic upd", "key" or "iv" */
    assert_true(io.filter->write(&io, "x", 1) < 0);
    tlsrec_test_kdf_budget = -1;
    size_t sent = wire_len;
    assert_int_equal(io.filter->write(&io, "y", 1), UV_EPIPE);
    io.filter->free(&io); /* no close_notify either */
    io.closing = 1;
    assert_int_equal(wire_len, sent);
    stop();
  }
  /* the same on the client's update_requested */
  start(0x1301);
  client_sends("\x18\x00\x00\x01\x01\x16", 6);
  tlsrec_test_kdf_budget = 1;
  assert_true(io.filter->write(&io, "x", 1) < 0);
  tlsrec_test_kdf_budget = -1;
  size_t sent = wire_len;
  assert_int_equal(io.filter->write(&io, "y", 1), UV_EPIPE);
  assert_int_equal(wire_len, sent);
  stop();
}

/* Records with no data in a row (KeyUpdate, empty records, user_canceled) end the connection past MAX_IDLE; data
 * between them starts the count again. */
static void test_idle_records_limited(void **state) {
  (void)state;
  const char *idle_rec[] = {"\x18\x00\x00\x01\x00\x16", "\x17", "\x01\x5a\x15"};
  const size_t idle_len[] = {6, 1, 3};
  for (int k = 0; k < 3; k++) {
    start(0x1301);
    for (int round = 0; round < 2; round++) {
      for (int i = 0; i < MAX_IDLE; i++) {
        client_sends(idle_rec[k], idle_len[k]);
        if (k == 0) assert_int_equal(dir_update(&suites[cl->suite], &cl->tx), 0);
      }
      assert_int_equal(ended, 0);
      if (round == 0) client_sends("d\x17", 2);
    }
    client_sends(idle_rec[k], idle_len[k]);
    expect_alert(ALERT_UNEXPECTED);
    assert_int_equal(heard_len, 1);
    stop();
  }
}

/* Inner plaintext past 2^14 + 1 is refused from the header, before the record is read and opened. */
static void test_inner_plaintext_limit(void **state) {
  (void)state;
  start(0x1301);
  unsigned char h[HEADER] = {TYPE_DATA, 3, 3, (MAX_INNER + 1) >> 8, (MAX_INNER + 1) & 0xff};
  feed_reads((const char *)h, HEADER, HEADER);
  expect_alert(ALERT_OVERFLOW);
  stop();
}

/* An alert record not 2 bytes long is a decode_error. */
static void test_alert_length(void **state) {
  (void)state;
  start(0x1301);
  client_sends("\x01\x00\x00\x15", 4); /* close_notify with a byte more */
  expect_alert(ALERT_DECODE);
  stop();
}

/* The end inside a record is no clean end. */
static void test_end_in_record(void **state) {
  (void)state;
  char out[HEADER + 64];
  start(0x1301);
  size_t n = client_record("cut\x17", 4, out);
  feed_reads(out, n - 3, n);
  io.filter->read(&io, UV_EOF, NULL);
  assert_int_equal(ended, UV_EPROTO);
  assert_int_equal(heard_len, 0);
  stop();
}

/* The owner may close from on_read while the plaintext it gets is in the held buffer (a cut record), and still
 * read it before it returns (under ASan a use after free when the close freed the buffer). */
static void on_read_closes(tether__io *o, ssize_t nread, const char *data) {
  if (nread > 0 && !o->closing) {
    o->closing = 1;
    o->filter->free(o);
  }
  on_read(o, nread, data);
}

static void test_close_in_held_record(void **state) {
  (void)state;
  char out[2 * (HEADER + 64)];
  start(0x1303);
  io.on_read = on_read_closes;
  size_t n = client_record("one\x17", 4, out);
  n += client_record("two\x17", 4, out + n);
  feed_reads(out, n, 7); /* the first record is opened in the held buffer */
  assert_int_equal(heard_len, 3);
  assert_memory_equal(heard, "one", 3);
  stop();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_data_each_way_and_close_notify),
      cmocka_unit_test(test_cut_records_and_pause),
      cmocka_unit_test(test_key_update),
      cmocka_unit_test(test_own_key_update),
      cmocka_unit_test(test_alerts),
      cmocka_unit_test(test_failed_update_seals_nothing),
      cmocka_unit_test(test_idle_records_limited),
      cmocka_unit_test(test_inner_plaintext_limit),
      cmocka_unit_test(test_alert_length),
      cmocka_unit_test(test_end_in_record),
      cmocka_unit_test(test_close_in_held_record),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
