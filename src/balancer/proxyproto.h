/* The PROXY protocol (HAProxy's, versions 1 and 2): a header in front of the HTTP bytes that tells the
 * address of the client a proxy in front of us is relaying. Only accepted from set_real_ip_from peers. */
#ifndef TETHER_BALANCER_PROXYPROTO_H
#define TETHER_BALANCER_PROXYPROTO_H

#include <stddef.h>
#include <sys/socket.h>

/* Parses a PROXY header at the start of buf. Returns its length (> 0) with the source address in *src
 * (family AF_UNSPEC for "UNKNOWN"/LOCAL: keep the socket's address), 0 when more bytes are needed, or -1
 * when buf starts with a malformed header. Returns -2 when buf does not start with a PROXY header. */
int tether__proxyproto_parse(const char *buf, size_t len, struct sockaddr_storage *src);

#endif
