/* Test support: a loopback TCP client, a minimal WebSocket client and server counters. */
#ifndef TRUNKLINE_C_TEST_NET_H
#define TRUNKLINE_C_TEST_NET_H

#include "harness.h"

/* A TCP connection to 127.0.0.1:port with a 5 s receive timeout, or -1. */
int tcp_connect(uint16_t port);
/* Sends an HTTP upgrade for `path`; returns the response's status code (0 on error). */
int ws_handshake(int fd, const char *path);
/* The same with extra request header lines, each ending in "\r\n" ("" for none). */
int ws_handshake_with(int fd, const char *path, const char *headers);
/* Sends one masked text frame (clients must mask). */
bool ws_send_text(int fd, const char *text);
/* The offload server's counter `name`, or UINT64_MAX if unknown. */
uint64_t server_stat(trunkline_server *s, const char *name);

#endif
