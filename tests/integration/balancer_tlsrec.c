/* TLS 1.3's record layer after the handshake (io/tls_record.c), against real processes on loopback: tether with
 * a TLS listener (`ssl http2`, session tickets on) and another that sends no ticket (`ssl_session_tickets off`
 * and NumTickets 0), a scripted backend behind, and clients: this program's own OpenSSL one (over a socket: big
 * bodies each way on a kept-alive connection, KeyUpdate both kinds, close_notify, a record corrupted on the
 * wire, resumption, TLS 1.2), `openssl s_client` (each suite, its interactive `k` and `K`, which it reads only
 * without -ign_eof) and curl over HTTP/2. The log's debug line shows which connections went over the record
 * layer, and how many ticket records the handshake left (the first write sequence number). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "balancer.h"

static tb_backend b1;
/* T: tickets on; N: none sent (`ssl_session_tickets off` alone still has OpenSSL send two stateful tickets in
 * TLS 1.3, useless without a session cache: NumTickets 0 sends none) */
static tb_tether T, N;
static char pki[512];
static int tport, nport;
static SSL_CTX *client_ctx;

static const char *conf = "listen 127.0.0.1:%d ssl http2;\nerror_log %s/%s debug;\n"
                          "ssl_certificate %s/ec.pem;\nssl_certificate_key %s/ec.key;\n"
                          "ssl_session_ticket_key %s/ticket.key;\nssl_session_tickets %s;\n%s"
                          "upstream app {\n  server %s max_fails=0;\n  keepalive 8;\n}\n"
                          "location / { proxy_pass http://app; }\n";

static int setup(void **state) {
  (void)state;
  if (tb_make_pki(pki, sizeof(pki)) != 0) return -1;
  if (tb_backend_start(&b1, "b1", 0) < 0) return -1;
  tport = tt_free_port();
  if (tb_tether_start(&T, 1, conf, tport, pki, "t.log", pki, pki, pki, "on", "", b1.addr) != 0) return -1;
  nport = tt_free_port();
  if (tb_tether_start(&N, 1, conf, nport, pki, "n.log", pki, pki, pki, "off", "ssl_conf_command NumTickets 0;\n",
                      b1.addr) != 0)
    return -1;
  client_ctx = SSL_CTX_new(TLS_client_method());
  char ca[600];
  snprintf(ca, sizeof(ca), "%s/ca.pem", pki);
  SSL_CTX_load_verify_locations(client_ctx, ca, NULL);
  SSL_CTX_set_verify(client_ctx, SSL_VERIFY_PEER, NULL);
  SSL_CTX_set_session_cache_mode(client_ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  SSL_CTX_free(client_ctx);
  int st = tb_tether_stop(&T, 15000) | tb_tether_stop(&N, 15000);
  int san = tb_log_has_sanitizer_report(T.log) || tb_log_has_sanitizer_report(N.log);
  tb_tether_cleanup(&T);
  tb_tether_cleanup(&N);
  tb_backend_cleanup(&b1);
  if (getenv("TB_KEEP") == NULL) tt_rmrf(pki);
  return st != 0 || san ? -1 : 0;
}

/* How many lines of tether's log (the debug level's, in pki/name) contain s. */
static int log_count(const char *name, const char *s) {
  char path[700], line[1024];
  snprintf(path, sizeof(path), "%s/%s", pki, name);
  FILE *f = fopen(path, "r");
  int n = 0;
  if (f == NULL) return 0;
  while (fgets(line, sizeof(line), f))
    if (strstr(line, s)) n++;
  fclose(f);
  return n;
}

typedef struct conn {
  int fd;
  SSL *ssl;
} conn;

/* A TLS connection (version: TLS1_3_VERSION or TLS1_2_VERSION; suites: TLS 1.3's list, NULL for the default),
 * resuming sess when given. 0 or -1. */
static int tls_connect(conn *c, int port, int version, const char *suites, SSL_SESSION *sess) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) return -1;
  c->ssl = SSL_new(client_ctx);
  SSL_set_min_proto_version(c->ssl, version);
  SSL_set_max_proto_version(c->ssl, version);
  if (suites) SSL_set_ciphersuites(c->ssl, suites);
  if (sess) SSL_set_session(c->ssl, sess);
  SSL_set1_host(c->ssl, "127.0.0.1");
  SSL_set_fd(c->ssl, c->fd);
  if (SSL_connect(c->ssl) != 1) {
    ERR_print_errors_fp(stderr);
    return -1;
  }
  return 0;
}

static void tls_close(conn *c) {
  SSL_free(c->ssl);
  close(c->fd);
}

static int write_all(conn *c, const char *p, size_t n) {
  size_t done = 0;
  while (done < n) {
    size_t w;
    if (SSL_write_ex(c->ssl, p + done, n - done, &w) != 1) return -1;
    done += w;
  }
  return 0;
}

/* One response: its status, the body into *body (malloc'd) and its length into *len. -1: none. */
static int read_response(conn *c, char **body, size_t *len) {
  size_t cap = 1 << 16, have = 0, need = (size_t)-1, head = 0;
  char *buf = malloc(cap);
  while (have < need) {
    if (have == cap) buf = realloc(buf, cap *= 2);
    size_t r;
    if (SSL_read_ex(c->ssl, buf + have, cap - have, &r) != 1) {
      free(buf);
      return -1;
    }
    have += r;
    if (head == 0) {
      char *e = memmem(buf, have, "\r\n\r\n", 4);
      if (e == NULL) continue;
      head = (size_t)(e - buf) + 4;
      char *cl = strcasestr(buf, "\r\ncontent-length:");
      if (cl == NULL || cl > e) {
        free(buf);
        return -1;
      }
      need = head + strtoul(cl + 17, NULL, 10);
    }
  }
  int status = atoi(buf + 9);
  *len = have - head;
  *body = malloc(*len + 1);
  memcpy(*body, buf + head, *len);
  (*body)[*len] = '\0';
  free(buf);
  return status;
}

/* POST /echo with n patterned bytes (sent in pieces of piece bytes), then GET /big?n=m: both answered whole. */
static void echo_and_big(conn *c, size_t n, size_t piece, size_t m) {
  char *data = malloc(n), *body, headbuf[256];
  size_t len;
  for (size_t i = 0; i < n; i++) data[i] = (char)('a' + (i * 7 + i / 251) % 26);
  int hl = snprintf(headbuf, sizeof(headbuf), "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", n);
  assert_int_equal(write_all(c, headbuf, (size_t)hl), 0);
  for (size_t off = 0; off < n; off += piece)
    assert_int_equal(write_all(c, data + off, n - off < piece ? n - off : piece), 0);
  assert_int_equal(read_response(c, &body, &len), 200);
  assert_int_equal(len, n);
  assert_memory_equal(body, data, n);
  free(body);
  hl = snprintf(headbuf, sizeof(headbuf), "GET /big?n=%zu HTTP/1.1\r\nHost: x\r\n\r\n", m);
  assert_int_equal(write_all(c, headbuf, (size_t)hl), 0);
  assert_int_equal(read_response(c, &body, &len), 200);
  assert_int_equal(len, m);
  free(body);
  free(data);
}

/* The client's close_notify is answered with the server's, under the current key. */
static void close_notify(conn *c) {
  assert_int_equal(SSL_shutdown(c->ssl), 0); /* sent, not yet received */
  char b[16];
  int r = SSL_read(c->ssl, b, sizeof(b));
  assert_true(r <= 0);
  assert_int_equal(SSL_get_error(c->ssl, r), SSL_ERROR_ZERO_RETURN);
}

/* Each suite the record layer has, on a kept-alive connection, bodies past a record (16 KiB) each way. */
static void test_suites_big_bodies_keepalive(void **state) {
  (void)state;
  const char *suites[] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"};
  int before = log_count("t.log", "on the record layer");
  for (int s = 0; s < 3; s++) {
    conn c;
    assert_int_equal(tls_connect(&c, tport, TLS1_3_VERSION, suites[s], NULL), 0);
    echo_and_big(&c, 100000, 100000, 300000); /* the client's records come cut across reads */
    echo_and_big(&c, 40000, 999, 20000);      /* small records */
    echo_and_big(&c, 1, 1, 16384);
    close_notify(&c);
    tls_close(&c);
    char line[128];
    snprintf(line, sizeof(line), "tls: %s on the record layer", suites[s]);
    char path[700];
    snprintf(path, sizeof(path), "%s/t.log", pki);
    assert_true(tb_file_waits_for(path, line, 2000));
  }
  assert_int_equal(log_count("t.log", "on the record layer"), before + 3);
  /* two tickets were sealed under the application key before the hand-over (tickets on) */
  assert_true(log_count("t.log", "2 ticket records") >= 3);
}

/* With tickets off there is none, and the first record is sequence number 0; TLS 1.2 stays on OpenSSL. */
static void test_tickets_off_and_tls12(void **state) {
  (void)state;
  conn c;
  assert_int_equal(tls_connect(&c, nport, TLS1_3_VERSION, NULL, NULL), 0);
  echo_and_big(&c, 70000, 70000, 70000);
  close_notify(&c);
  tls_close(&c);
  assert_true(log_count("n.log", "0 ticket records") >= 1);
  int before = log_count("t.log", "on the record layer");
  assert_int_equal(tls_connect(&c, tport, TLS1_2_VERSION, NULL, NULL), 0);
  echo_and_big(&c, 70000, 5000, 70000);
  close_notify(&c);
  tls_close(&c);
  assert_int_equal(log_count("t.log", "on the record layer"), before);
}

/* A session ticket from a connection that went over the record layer resumes, and the resumed connection
 * does too. */
static void test_resumption(void **state) {
  (void)state;
  conn c;
  assert_int_equal(tls_connect(&c, tport, TLS1_3_VERSION, NULL, NULL), 0);
  echo_and_big(&c, 20000, 20000, 100); /* the tickets come with the first answer's read */
  SSL_SESSION *sess = SSL_get1_session(c.ssl);
  assert_non_null(sess);
  assert_true(SSL_SESSION_is_resumable(sess));
  close_notify(&c);
  tls_close(&c);
  assert_int_equal(tls_connect(&c, tport, TLS1_3_VERSION, NULL, sess), 0);
  assert_true(SSL_session_reused(c.ssl));
  echo_and_big(&c, 50000, 50000, 50000);
  close_notify(&c);
  tls_close(&c);
  SSL_SESSION_free(sess);
}

/* KeyUpdate from the client, not requesting ours and requesting it, several times: requests go on. */
static void test_key_update(void **state) {
  (void)state;
  conn c;
  assert_int_equal(tls_connect(&c, tport, TLS1_3_VERSION, NULL, NULL), 0);
  echo_and_big(&c, 30000, 30000, 30000);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(SSL_key_update(c.ssl, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
    echo_and_big(&c, 30000, 30000, 30000);
    assert_int_equal(SSL_key_update(c.ssl, SSL_KEY_UPDATE_REQUESTED), 1);
    echo_and_big(&c, 30000, 30000, 30000); /* the answer under the server's new key */
  }
  close_notify(&c);
  tls_close(&c);
}

static int backend_requests(void) {
  tb_resp r;
  if (tb_get(NULL, T.port, "/stats", &r) != 200) return -1;
  const char *p = strstr(r.body, "requests=");
  int n = p ? atoi(p + 9) : -1;
  tb_resp_free(&r);
  return n;
}

/* One byte of a request's record flipped on the wire: the connection ends with bad_record_mac, and nothing of
 * it reaches the server. */
static void test_corrupted_record(void **state) {
  (void)state;
  for (int at = 0; at < 3; at++) { /* the header, the ciphertext, the tag */
    conn c;
    assert_int_equal(tls_connect(&c, tport, TLS1_3_VERSION, NULL, NULL), 0);
    int before = backend_requests();
    BIO *mem = BIO_new(BIO_s_mem());
    BIO *sock = SSL_get_wbio(c.ssl);
    BIO_up_ref(sock);
    SSL_set0_wbio(c.ssl, mem); /* the record is sealed into memory, flipped, then sent */
    const char req[] = "GET /stats HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(SSL_write(c.ssl, req, (int)strlen(req)), (int)strlen(req));
    char *rec;
    long n = BIO_get_mem_data(mem, &rec);
    assert_true(n > 30);
    size_t flip = at == 0 ? 4 : at == 1 ? 10 : (size_t)n - 3; /* its length, its text, its tag */
    rec[flip] ^= at == 0 ? 0x01 : 0x40;
    assert_int_equal(send(c.fd, rec, (size_t)n, 0), n);
    SSL_set0_wbio(c.ssl, sock);
    char b[256];
    int r = SSL_read(c.ssl, b, sizeof(b));
    assert_true(r <= 0);
    unsigned long e = ERR_get_error();
    if (at > 0) { /* a length one off cuts the record: no alert, a close when the next bytes do not fit */
      if (ERR_GET_REASON(e) != SSL_R_SSLV3_ALERT_BAD_RECORD_MAC) ERR_print_errors_fp(stderr);
      assert_int_equal(ERR_GET_REASON(e), SSL_R_SSLV3_ALERT_BAD_RECORD_MAC);
    } else {
      shutdown(c.fd, SHUT_WR); /* the record waits for one byte more: the end closes it */
      while (SSL_read(c.ssl, b, sizeof(b)) > 0) {
      }
    }
    ERR_clear_error();
    tls_close(&c);
    assert_int_equal(backend_requests(), before + 1); /* this /stats only */
  }
}

/* HTTP/2 over the record layer (ALPN h2 survives the hand-over): bodies of several records each way. */
static void test_h2(void **state) {
  (void)state;
  int before = log_count("t.log", "on the record layer");
  assert_int_equal(
      tt_system("cd '%s' && head -c 300000 /dev/urandom > up.bin && "
                "curl -sS --http2 --cacert ca.pem -o echo.out -w '%%{http_version}' --data-binary @up.bin "
                "-H 'content-type: x/y' https://127.0.0.1:%d/echo > version.out && cmp echo.out up.bin && "
                "test \"$(cat version.out)\" = 2 && "
                "test $(curl -sS --http2 --cacert ca.pem 'https://127.0.0.1:%d/big?n=1000000' | wc -c) = 1000000",
                pki, tport, tport),
      0);
  assert_int_equal(log_count("t.log", "on the record layer"), before + 2);
}

/* openssl s_client: each suite, and its interactive KeyUpdate commands between requests. s_client takes a
 * command only as a read of stdin of its own, so the script waits for each answer in the output (written as it
 * comes; its KEYUPDATE lines are buffered until it exits; the file may not be there yet) before it writes the
 * next line. */
static void test_s_client_key_update(void **state) {
  (void)state;
  const char *suites[] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"};
  char out[600], script[600];
  snprintf(out, sizeof(out), "%s/s_client.out", pki);
  snprintf(script, sizeof(script), "%s/key_update.sh", pki);
  FILE *f = fopen(script, "w");
  assert_non_null(f);
  fprintf(f, "out=$1\n"
             "w() { i=0; while [ $i -lt 200 ] && [ \"$(cat \"$out\" 2>/dev/null | grep -c \"$1\")\" -lt $2 ]; do "
             "sleep 0.05; "
             "i=$((i+1)); done; }\n"
             "r() { printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\n%%b\\r\\n' \"$1\"; }\n"
             "r; w '^HTTP/1.1 200' 1; echo k; sleep 0.5\n"
             "r; w '^HTTP/1.1 200' 2; echo K; sleep 0.5\n"
             "r; w '^HTTP/1.1 200' 3\n"
             "r 'Connection: close\\r\\n'; w '^HTTP/1.1 200' 4\n");
  fclose(f);
  for (int s = 0; s < 3; s++) {
    assert_int_equal(tt_system("sh '%s' '%s' | timeout 20 openssl s_client -connect 127.0.0.1:%d -CAfile '%s/ca.pem' "
                               "-tls1_3 -ciphersuites %s > '%s' 2>&1",
                               script, out, tport, pki, suites[s], out),
                     0);
    assert_int_equal(tt_system("test $(grep -c '^KEYUPDATE' '%s') = 2", out), 0);
    char want[64];
    snprintf(want, sizeof(want), "Cipher is %s", suites[s]);
    assert_true(tb_file_contains(out, want));
    assert_int_equal(tt_system("test $(grep -c '^HTTP/1.1 200' '%s') = 4", out), 0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_suites_big_bodies_keepalive),
      cmocka_unit_test(test_tickets_off_and_tls12),
      cmocka_unit_test(test_resumption),
      cmocka_unit_test(test_key_update),
      cmocka_unit_test(test_corrupted_record),
      cmocka_unit_test(test_s_client_key_update),
      cmocka_unit_test(test_h2),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
