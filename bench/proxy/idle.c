/* Opens N keep-alive connections to HOST:PORT, sends one request on each, reads the answers, then holds
 * them open for SECONDS (so the balancer's memory per idle connection can be read). Bounded in count and
 * time. Usage: idle HOST PORT N SECONDS */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: idle HOST PORT N SECONDS\n");
    return 2;
  }
  int n = atoi(argv[3]), secs = atoi(argv[4]);
  if (n < 1 || n > 15000 || secs < 1 || secs > 600) {
    fprintf(stderr, "idle: N must be 1-15000 and SECONDS 1-600\n");
    return 2;
  }
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
  inet_pton(AF_INET, argv[1], &a.sin_addr);
  int *fds = calloc((size_t)n, sizeof(int));
  const char *req = "GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
  int ok = 0, answered = 0;
  char buf[4096];
  /* in batches, as clients arrive over time: the balancer's memory afterwards is what idle connections
   * cost, not the peak of a burst of simultaneous requests */
  for (int base = 0; base < n && ok == base; base += 100) {
    int end = base + 100 < n ? base + 100 : n;
    for (int i = base; i < end; i++) {
      fds[i] = socket(AF_INET, SOCK_STREAM, 0);
      if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&a, sizeof(a)) < 0) {
        fprintf(stderr, "idle: connection %d: %s\n", i, strerror(errno));
        break;
      }
      if (write(fds[i], req, strlen(req)) < 0) break;
      ok++;
    }
    for (int i = base; i < ok; i++) {
      struct pollfd p = {.fd = fds[i], .events = POLLIN};
      if (poll(&p, 1, 5000) == 1 && read(fds[i], buf, sizeof(buf)) > 0) answered++;
    }
  }
  printf("idle: %d connections open, %d answered\n", ok, answered);
  fflush(stdout);
  sleep((unsigned)secs);
  for (int i = 0; i < ok; i++) close(fds[i]);
  free(fds);
  return answered == ok ? 0 : 1;
}
