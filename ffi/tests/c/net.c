/* Test support: a loopback TCP client, a minimal WebSocket client (handshake, masked text frames)
 * and the offload server's counters by name. */
#define _POSIX_C_SOURCE 200809L

#include "net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* A TCP connection to 127.0.0.1:port with a 5 s receive timeout, or -1. */
int tcp_connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int ws_handshake(int fd, const char *path) { return ws_handshake_with(fd, path, ""); }

int ws_handshake_with(int fd, const char *path, const char *headers) {
  char req[1024];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                   path, headers);
  if (n < 0 || (size_t)n >= sizeof req) return 0;
  if (send(fd, req, (size_t)n, 0) != n) return 0;
  char resp[1024];
  size_t got = 0;
  while (got < sizeof resp - 1) {
    ssize_t r = recv(fd, resp + got, 1, 0);
    if (r <= 0) break;
    got += (size_t)r;
    resp[got] = 0;
    if (got >= 4 && memcmp(resp + got - 4, "\r\n\r\n", 4) == 0) break;
  }
  int status = 0;
  if (sscanf(resp, "HTTP/1.1 %d", &status) != 1) return 0;
  return status;
}

/* Sends one masked text frame (clients must mask). */
bool ws_send_text(int fd, const char *text) {
  size_t len = strlen(text);
  uint8_t head[8];
  size_t h = 0;
  head[h++] = 0x81;
  if (len < 126) {
    head[h++] = (uint8_t)(0x80 | len);
  } else {
    head[h++] = 0x80 | 126;
    head[h++] = (uint8_t)(len >> 8);
    head[h++] = (uint8_t)(len & 0xFF);
  }
  const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
  memcpy(head + h, mask, 4);
  h += 4;
  uint8_t buf[4096];
  if (len > sizeof buf) return false;
  for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)text[i] ^ mask[i % 4];
  return send(fd, head, h, 0) == (ssize_t)h && send(fd, buf, len, 0) == (ssize_t)len;
}

uint64_t server_stat(trunkline_server *s, const char *name) {
  uint64_t values[32];
  size_t n = 0;
  if (trunkline_server_stats(s, values, 32, &n) != TRUNKLINE_RESULT_OK) return UINT64_MAX;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(trunkline_server_stats_name(i), name) == 0) return values[i];
  }
  return UINT64_MAX;
}
