/*
 * One offload server for several carriers through the C ABI: routes binding request paths to
 * dialects (each with its own secret), and an Asterisk AudioSocket listener with its allow-list of
 * call UUIDs. The carriers are played by hand-written clients (net.c), from each carrier's
 * documented messages.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdlib.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "net.h"
#include "tests.h"
#include "util.h"

#define TELNYX_TOKEN "telnyx-streaming-secret"
#define TELNYX_STREAM "32de0dea-53cb-4b21-89a4-9610f5d91a9b"
#define TELNYX_CALL "v2:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ"
#define ALLOWED_UUID "40325ec2-5efd-4bd3-805f-53576e581d13"
#define ALLOWED_LATER "9f3c4d2a-0b1e-4c5d-8e6f-7a8b9c0d1e2f"
#define REFUSED_UUID "00000000-1111-2222-3333-444444444444"

static trunkline_route route(const char *path, const char *dialect) {
  trunkline_route r = {.struct_size = sizeof r, .path = path, .dialect = dialect};
  return r;
}

static trunkline_engine *threaded_engine(void) {
  trunkline_engine_config ec;
  if (trunkline_engine_config_default(&ec, sizeof ec) != TRUNKLINE_RESULT_OK) return NULL;
  ec.workers_per_core = false;
  ec.workers = 1;
  trunkline_engine *engine = NULL;
  return trunkline_engine_new(&ec, &engine) == TRUNKLINE_RESULT_OK ? engine : NULL;
}

/* The next call the server hands over within ~4 s, or NULL. */
static trunkline_session *next_call(trunkline_engine *engine, trunkline_server *server) {
  trunkline_session *call = NULL;
  for (int i = 0; i < 200 && call == NULL; i++) {
    trunkline_engine_wait(engine, 20);
    if (trunkline_server_accept(server, &call) != TRUNKLINE_RESULT_OK) call = NULL;
  }
  return call;
}

/* Whether the session's start string `field` is `expected`. */
static bool start_string_is(trunkline_session *call, trunkline_start_field field, const char *expected) {
  char buf[256];
  size_t len = 0;
  if (trunkline_session_start_string(call, field, buf, sizeof buf, &len) != TRUNKLINE_RESULT_OK) return false;
  return len == strlen(expected) && memcmp(buf, expected, len) == 0;
}

/* Telnyx's opening messages, as its media streaming documents them. */
static void telnyx_opening(int fd) {
  ws_send_text(fd, "{\"event\":\"connected\",\"version\":\"1.0.0\"}");
  ws_send_text(fd, "{\"event\":\"start\",\"sequence_number\":\"1\",\"stream_id\":\"" TELNYX_STREAM "\","
                   "\"start\":{\"user_id\":\"3e6f995f-85f7-4705-9741-53b116d28237\",\"call_control_id\":\"" TELNYX_CALL
                   "\",\"media_format\":{\"encoding\":\"PCMU\",\"sample_rate\":8000,\"channels\":1}}}");
}

/* Every bad route list, and every bad AudioSocket argument, is refused. */
void test_server_routes_errors(void) {
  trunkline_engine *engine = threaded_engine();
  REQUIRE(engine != NULL);
  trunkline_server_config c;
  REQUIRE_OK(trunkline_server_config_default(&c, sizeof c));
  CHECK(c.routes == NULL && c.route_count == 0);
  trunkline_route routes[2] = {route("/twilio", "twilio"), route("/telnyx", "telnyx")};
  c.routes = routes;
  c.route_count = 2;
  trunkline_server *server = NULL;
  /* Each bad route list, from a good one. */
  routes[1].dialect = "no-such-dialect";
  CHECK_RESULT(trunkline_server_start(engine, &c, &server), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  routes[1] = route("/twilio", "telnyx"); /* a path twice */
  CHECK_RESULT(trunkline_server_start(engine, &c, &server), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  routes[1] = route("telnyx", "telnyx"); /* no leading '/' */
  CHECK_RESULT(trunkline_server_start(engine, &c, &server), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  routes[1] = route("/telnyx", "telnyx");
  routes[1].auth = "jwt"; /* no such scheme */
  CHECK_RESULT(trunkline_server_start(engine, &c, &server), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  routes[1] = route("/vonage", "vonage");
  routes[1].auth = "vonage_jwt"; /* a scheme without its secret */
  CHECK_RESULT(trunkline_server_start(engine, &c, &server), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  routes[1] = route("/asterisk", "audiosocket");
  routes[1].auth_token = "secret"; /* a secret for a carrier that authenticates nothing */
  CHECK_RESULT(trunkline_server_start(engine, &c, &server), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  routes[1] = route("/telnyx", NULL);
  CHECK_RESULT(trunkline_server_start(engine, &c, &server), TRUNKLINE_RESULT_NULL_PARAMETER);
  routes[1] = route("/telnyx", "telnyx");
  routes[1].struct_size = sizeof(size_t); /* unequal sizes: not the array's stride */
  CHECK_RESULT(trunkline_server_start(engine, &c, &server), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  routes[1] = route("/telnyx", "telnyx");
  {
    /* Routes from a header before `auth` (a stride of 32 bytes), the last claiming the whole
     * current size: refused before a byte past the array is read (the sanitizer run of these
     * tests reports such a read; the array is allocated to its exact size). */
    const size_t stride = offsetof(trunkline_route, auth);
    unsigned char *old = malloc(2 * stride);
    REQUIRE(old != NULL);
    for (size_t i = 0; i < 2; i++) {
      trunkline_route r = route(i == 0 ? "/twilio" : "/telnyx", i == 0 ? "twilio" : "telnyx");
      r.struct_size = i == 0 ? stride : sizeof r;
      memcpy(old + i * stride, &r, stride);
    }
    c.routes = (const trunkline_route *)old;
    CHECK_RESULT(trunkline_server_start(engine, &c, &server), TRUNKLINE_RESULT_INVALID_ARGUMENT);
    /* The same array, each element its stride: taken. */
    size_t size = stride;
    memcpy(old + stride, &size, sizeof size);
    REQUIRE_OK(trunkline_server_start(engine, &c, &server));
    trunkline_server_free(server);
    server = NULL;
    free(old);
    c.routes = routes;
  }
  c.path = "/media"; /* the single endpoint's path beside routes */
  CHECK_RESULT(trunkline_server_start(engine, &c, &server), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  c.path = NULL;
  c.routes = NULL;
  CHECK_RESULT(trunkline_server_start(engine, &c, &server), TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK(server == NULL);

  /* A caller compiled before routes existed: its struct ends before them, which are not read. */
  c.routes = NULL;
  c.struct_size = offsetof(trunkline_server_config, routes);
  REQUIRE_OK(trunkline_server_start(engine, &c, &server));
  trunkline_server_free(server);
  server = NULL;

  /* The AudioSocket calls' errors, on a running server. */
  c.struct_size = sizeof c;
  c.routes = routes;
  REQUIRE_OK(trunkline_server_start(engine, &c, &server));
  uint16_t port = 0;
  const char *uuids[] = {ALLOWED_UUID, "not-a-uuid"};
  CHECK_RESULT(trunkline_server_listen_audiosocket(server, "127.0.0.1:0", uuids, 2, &port),
               TRUNKLINE_RESULT_INVALID_ARGUMENT);
  /* Nothing of that list was allowed: the good UUID before the bad one is not on the list. */
  bool was = true;
  CHECK_OK(trunkline_server_revoke_audiosocket_call(server, ALLOWED_UUID, &was));
  CHECK(!was);
  CHECK_RESULT(trunkline_server_listen_audiosocket(server, "no address", uuids, 1, &port),
               TRUNKLINE_RESULT_INVALID_ARGUMENT);
  CHECK_RESULT(trunkline_server_listen_audiosocket(server, NULL, uuids, 1, &port), TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK_RESULT(trunkline_server_listen_audiosocket(server, "127.0.0.1:0", NULL, 1, &port),
               TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK_RESULT(trunkline_server_listen_audiosocket(server, "127.0.0.1:0", uuids, 1, NULL),
               TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK_RESULT(trunkline_server_listen_audiosocket(NULL, "127.0.0.1:0", uuids, 1, &port),
               TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK_RESULT(trunkline_server_allow_audiosocket_call(server, "not-a-uuid"), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  CHECK_RESULT(trunkline_server_allow_audiosocket_call(server, NULL), TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK_RESULT(trunkline_server_revoke_audiosocket_call(server, ALLOWED_UUID, NULL), TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK_OK(trunkline_server_revoke_audiosocket_call(server, "not-a-uuid", &was));
  CHECK(!was);
  /* Any case, hyphens optional: the same call. */
  CHECK_OK(trunkline_server_allow_audiosocket_call(server, "40325EC25EFD4BD3805F53576E581D13"));
  CHECK_OK(trunkline_server_revoke_audiosocket_call(server, ALLOWED_UUID, &was));
  CHECK(was);
  CHECK_OK(trunkline_server_shutdown(server, 0));
  CHECK_RESULT(trunkline_server_listen_audiosocket(server, "127.0.0.1:0", uuids, 1, &port), TRUNKLINE_RESULT_CLOSED);
  CHECK_RESULT(trunkline_server_allow_audiosocket_call(server, ALLOWED_UUID), TRUNKLINE_RESULT_CLOSED);
  trunkline_server_free(server);
  trunkline_engine_free(engine);
}

/* A Twilio route and a Telnyx route with its token: each takes its own carrier's calls only. */
void test_server_routes_two_carriers(void) {
  trunkline_engine *engine = threaded_engine();
  REQUIRE(engine != NULL);
  trunkline_server_config c;
  REQUIRE_OK(trunkline_server_config_default(&c, sizeof c));
  trunkline_route routes[2] = {route("/twilio", "twilio"), route("/telnyx", "telnyx")};
  routes[1].auth_token = TELNYX_TOKEN;
  c.routes = routes;
  c.route_count = 2;
  trunkline_server *server = NULL;
  REQUIRE_OK(trunkline_server_start(engine, &c, &server));
  uint16_t port = 0;
  REQUIRE_OK(trunkline_server_local_port(server, &port));

  /* A path no route has: 404. The Telnyx route without its token, or with another: 403. */
  int fd = tcp_connect(port);
  REQUIRE(fd >= 0);
  CHECK_EQ(ws_handshake(fd, "/media"), 404);
  close(fd);
  fd = tcp_connect(port);
  REQUIRE(fd >= 0);
  CHECK_EQ(ws_handshake(fd, "/telnyx"), 403);
  close(fd);
  fd = tcp_connect(port);
  REQUIRE(fd >= 0);
  CHECK_EQ(ws_handshake_with(fd, "/telnyx", "x-telnyx-streaming-auth-token: wrong\r\n"), 403);
  close(fd);

  /* Telnyx's messages on the Twilio route: the handshake passes (Twilio's route checks no
   * signature here) but the start is not Twilio's, so no call reaches the host. */
  int wrong = tcp_connect(port);
  REQUIRE(wrong >= 0);
  CHECK_EQ(ws_handshake(wrong, "/twilio"), 101);
  telnyx_opening(wrong);

  /* A Telnyx call on its route, with its token. */
  int telnyx = tcp_connect(port);
  REQUIRE(telnyx >= 0);
  CHECK_EQ(ws_handshake_with(telnyx, "/telnyx", "x-telnyx-streaming-auth-token: " TELNYX_TOKEN "\r\n"), 101);
  telnyx_opening(telnyx);
  trunkline_session *telnyx_call = next_call(engine, server);
  REQUIRE(telnyx_call != NULL);
  CHECK(start_string_is(telnyx_call, TRUNKLINE_START_FIELD_STREAM_ID, TELNYX_STREAM));
  CHECK(start_string_is(telnyx_call, TRUNKLINE_START_FIELD_CALL_ID, TELNYX_CALL));

  /* A Twilio call on its route. */
  int twilio = tcp_connect(port);
  REQUIRE(twilio >= 0);
  CHECK_EQ(ws_handshake(twilio, "/twilio"), 101);
  char msg[1024];
  msg_connected(msg, sizeof msg);
  ws_send_text(twilio, msg);
  msg_start(msg, sizeof msg);
  ws_send_text(twilio, msg);
  trunkline_session *twilio_call = next_call(engine, server);
  REQUIRE(twilio_call != NULL);
  CHECK(start_string_is(twilio_call, TRUNKLINE_START_FIELD_STREAM_ID, STREAM_SID));
  CHECK(start_string_is(twilio_call, TRUNKLINE_START_FIELD_CALL_ID, CALL_SID));

  /* The wrong carrier's call never came out (the two calls above did, after it). */
  trunkline_session *none = NULL;
  CHECK_RESULT(trunkline_server_accept(server, &none), TRUNKLINE_RESULT_EMPTY);
  CHECK_EQ(server_stat(server, "rejected_path"), 1);
  CHECK_EQ(server_stat(server, "rejected_signature"), 2);
  CHECK_EQ(server_stat(server, "rejected_signature_missing"), 1);
  CHECK_EQ(server_stat(server, "accepted"), 3);
  CHECK_EQ(server_stat(server, "calls_opened"), 2);

  close(wrong);
  close(telnyx);
  close(twilio);
  trunkline_session_free(telnyx_call);
  trunkline_session_free(twilio_call);
  trunkline_server_free(server);
  trunkline_engine_free(engine);
}

/* Opens an AudioSocket connection and sends its UUID message (type 0x01, 16 bytes) and one 20 ms
 * audio message (0x10, 320 bytes of 8 kHz s16le); returns the socket, or -1. */
static int audiosocket_call(uint16_t port, const char *uuid) {
  int fd = tcp_connect(port);
  if (fd < 0) return -1;
  uint8_t id[3 + 16] = {0x01, 0, 16};
  for (int i = 0, j = 0; uuid[i] && j < 32; i++) {
    unsigned v;
    if (uuid[i] == '-' || sscanf(uuid + i, "%1x", &v) != 1) continue;
    id[3 + j / 2] = (uint8_t)(j % 2 ? id[3 + j / 2] | v : v << 4);
    j++;
  }
  uint8_t audio[3 + 320] = {0x10, 320 >> 8, 320 & 0xFF};
  for (size_t i = 0; i < 160; i++) {
    int16_t s = (int16_t)((i % 20 < 10) ? 4000 : -4000);
    audio[3 + 2 * i] = (uint8_t)(s & 0xFF);
    audio[3 + 2 * i + 1] = (uint8_t)((uint16_t)s >> 8);
  }
  if (send(fd, id, sizeof id, 0) != (ssize_t)sizeof id || send(fd, audio, sizeof audio, 0) != (ssize_t)sizeof audio) {
    close(fd);
    return -1;
  }
  return fd;
}

/* An AudioSocket call with an allowed UUID reaches the host; one with another UUID is closed. */
void test_server_audiosocket(void) {
  trunkline_engine *engine = threaded_engine();
  REQUIRE(engine != NULL);
  trunkline_server *server = NULL;
  REQUIRE_OK(trunkline_server_start(engine, NULL, &server));
  const char *allowed[] = {ALLOWED_UUID};
  uint16_t port = 0, ws_port = 0;
  REQUIRE_OK(trunkline_server_listen_audiosocket(server, "127.0.0.1:0", allowed, 1, &port));
  REQUIRE_OK(trunkline_server_local_port(server, &ws_port));
  CHECK(port > 0 && port != ws_port);
  CHECK_OK(trunkline_server_allow_audiosocket_call(server, ALLOWED_LATER));

  int refused = audiosocket_call(port, REFUSED_UUID);
  REQUIRE(refused >= 0);
  /* The server closes it: the read ends (0, or a reset), well before the 5 s receive timeout. */
  uint8_t byte;
  double t0 = now_ms();
  CHECK(recv(refused, &byte, 1, 0) <= 0);
  CHECK(now_ms() - t0 < 4000);
  close(refused);

  const char *uuids[] = {ALLOWED_UUID, ALLOWED_LATER};
  int fds[2];
  for (int k = 0; k < 2; k++) {
    fds[k] = audiosocket_call(port, uuids[k]);
    REQUIRE(fds[k] >= 0);
    trunkline_session *call = next_call(engine, server);
    REQUIRE(call != NULL);
    /* The call's id is its UUID, in canonical text form. */
    CHECK(start_string_is(call, TRUNKLINE_START_FIELD_CALL_ID, uuids[k]));
    trunkline_start_info info = {.struct_size = sizeof info};
    CHECK_OK(trunkline_session_start_info(call, &info));
    CHECK_EQ(info.encoding, TRUNKLINE_AUDIO_ENCODING_L16);
    CHECK_EQ(info.sample_rate, 8000);
    trunkline_session_free(call);
  }
  CHECK_EQ(server_stat(server, "rejected_audiosocket_call"), 1);
  CHECK_EQ(server_stat(server, "calls_opened"), 2);
  close(fds[0]);
  close(fds[1]);
  trunkline_server_free(server);
  trunkline_engine_free(engine);
}
