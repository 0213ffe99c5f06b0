/* tether__uri_normalize next to a real nginx 1.22 (single process on loopback, `return 200 "$uri\n"`):
 * for each raw request target, nginx's $uri, or its 400, must be what Tether computes, so that
 * locations written for nginx match the same requests. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "procs.h"
#include "uri.h"

static const char *targets[] = {
    "/",
    "/api/me",
    "/%61pi/me",
    "//api/me",
    "///api///me//",
    "/./api/me",
    "/x/../api/me",
    "/%2e/api/me",
    "/%2E%2E/x",
    "/api%2Fme",
    "/api%2f%2fme",
    "/a/%2e%2e/b",
    "/a/.%2e/b",
    "/a/%2e./b",
    "/../x",
    "/%2e%2e/x",
    "/..",
    "//..",
    "/a/../..",
    "/a/../../b",
    "/a/b/../../..",
    "/a/b/../..",
    "/a/%00",
    "/a%00b",
    "/a%zz",
    "/a%4",
    "/a%",
    "/a%g0",
    "/a?x=%00",
    "/a?x=%zz",
    "/a?",
    "/a/..?x",
    "/a/.?x",
    "/a#frag",
    "/a/b/..",
    "/a/b/../",
    "/a/.",
    "/a/./",
    "/a/",
    "/a//",
    "/.",
    "/./",
    "/...",
    "/a/...",
    "/a/.../b",
    "/.a/..b/b..",
    "/a.",
    "/a..",
    "/%25",
    "/%2541",
    "/%25%32%35",
    "/a%3Fb",
    "/a%3fb?c",
    "/a%23b",
    "/%C3%A9t%C3%A9",
    "/%e2%82%ac",
    "/\xc3\xa9",
    "/%ff",
    "/a+b",
    "/a%20b",
    "/%0a",
    "/%0d%0a",
    "/%09",
    "/%7f",
    "/A/b",
    "/a;b=c/d",
    "/a/%2F/b",
    "/a\\b",
    "/a/.%2F",
    "/a/..%2Fb",
    "/..%2F",
    "/a/b/c/../../d/./e//f/..",
    "/%2F%2F",
    "/%2F..",
    "/a/%2F..",
    "/%2e",
    "/%2e%2e",
    "/a/%2e",
    "/a/b/%2e%2E",
    "/.%2e/",
    "/a/%2e%2e%2f%2e%2e/b",
    "/a%2fb%2f..%2f..%2f..",
    "/a%2E%2E",
    "/a/..b",
    "/a/.b/..",
    "/~user",
    "/a:b@c",
    "/a/b?c/../..",
    "/a#../..",
    "/a/..#x",
    "/%41%42%43",
    "/%4a%4B",
    "/%5C",
    "/a%2F%2E%2E%2Fb",
    "/a/./././b",
    "/a/b/./../c",
    "/admin%2F..%2Fpublic",
    "/static/..;/admin",
    "/.;/admin",
    "/%2e;/admin",
    "/a/%252e%252e/b",
    "/a/%2e%2e%2fb",
    "/%u002e",
};

static int ask_nginx(int port, const char *target, char *uri, size_t cap, size_t *len) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) return -1;
  char req[1024], resp[4096];
  int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", target);
  if (write(fd, req, (size_t)n) != n) return -1;
  size_t got = 0;
  ssize_t r;
  while (got < sizeof(resp) - 1 && (r = read(fd, resp + got, sizeof(resp) - 1 - got)) > 0) got += (size_t)r;
  close(fd);
  resp[got] = '\0';
  int status = got > 12 ? atoi(resp + 9) : -1;
  char *body = strstr(resp, "\r\n\r\n");
  if (status == 200 && body) {
    body += 4;
    *len = (size_t)(resp + got - body) - 1; /* "$uri\n" */
    if (*len > cap) return -1;
    memcpy(uri, body, *len);
  }
  return status;
}

static void test_same_as_nginx(void **state) {
  (void)state;
  char *dir = tt_tmpdir("uri-nginx");
  int port = tt_free_port();
  char conf[600], log[600];
  snprintf(conf, sizeof(conf), "%s/nginx.conf", dir);
  snprintf(log, sizeof(log), "%s/out.log", dir);
  FILE *f = fopen(conf, "w");
  assert_non_null(f);
  fprintf(f,
          "daemon off; master_process off; worker_processes 1; error_log %s/error.log; pid %s/nginx.pid;\n"
          "events { worker_connections 64; }\n"
          "http { access_log off; client_body_temp_path %s; proxy_temp_path %s; fastcgi_temp_path %s;\n"
          "  uwsgi_temp_path %s; scgi_temp_path %s;\n"
          "  server { listen 127.0.0.1:%d; location / { return 200 \"$uri\\n\"; } } }\n",
          dir, dir, dir, dir, dir, dir, dir, port);
  fclose(f);
  char *argv[] = {"nginx", "-p", dir, "-c", conf, NULL};
  pid_t pid = tt_spawn(argv, log, NULL);
  if (pid <= 0 || !tt_wait_port(port, 10000)) fail_msg("nginx did not start");
  int differ = 0, answered = 0, refused = 0;
  for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
    char want[1024], got[1024];
    size_t wn = 0;
    int status = ask_nginx(port, targets[i], want, sizeof(want), &wn);
    int n = tether__uri_normalize(targets[i], strlen(targets[i]), got, sizeof(got));
    answered += status == 200;
    refused += status == 400;
    int same = status == 200 ? n >= 0 && (size_t)n == wn && memcmp(got, want, wn) == 0 : status == -n;
    if (!same) {
      fprintf(stderr, "differs: %s: nginx %d \"%.*s\", tether %d \"%.*s\"\n", targets[i], status,
              status == 200 ? (int)wn : 0, want, n, n > 0 ? n : 0, got);
      differ++;
    }
  }
  tt_kill(pid, SIGTERM);
  tt_rmrf(dir);
  free(dir);
  assert_int_equal(differ, 0);
  assert_int_equal(answered + refused, (int)(sizeof(targets) / sizeof(targets[0])));
  assert_true(refused >= 20);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_same_as_nginx),
  };
  return cmocka_run_group_tests_name("uri_nginx", tests, NULL, NULL);
}
