/* A worker's listening sockets: accept, and pause accepting while out of descriptors. */
#ifndef TETHER_BALANCER_IO_LISTEN_H
#define TETHER_BALANCER_IO_LISTEN_H

struct tether__worker;

/* Starts watching the worker's listening sockets (w->listen_fds); accepted sockets go to w->accept. */
int tether__listen_start(struct tether__worker *w);
void tether__listen_stop(struct tether__worker *w);
/* A descriptor of this worker was freed: accepting resumes if it was paused for lack of descriptors. */
void tether__listen_fd_freed(struct tether__worker *w);

#endif
