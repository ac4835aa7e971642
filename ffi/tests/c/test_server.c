/*
 * The offload server through the C ABI: lifecycle, every error, a real call over loopback with the
 * minimal WebSocket client of net.c, and draining it while a call goes on.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "harness.h"
#include "net.h"
#include "tests.h"
#include "util.h"

void test_server_lifecycle_and_errors(void) {
  trunkline_server_config c;
  CHECK_RESULT(trunkline_server_config_default(NULL, sizeof(trunkline_server_config)), TRUNKLINE_RESULT_NULL_PARAMETER);
  REQUIRE_OK(trunkline_server_config_default(&c, sizeof c));
  CHECK_EQ(c.struct_size, sizeof c);
  CHECK(strcmp(c.bind, "127.0.0.1:0") == 0);
  CHECK(c.path == NULL && c.auth_token == NULL && c.tls_cert_pem == NULL);
  CHECK(c.session == NULL); /* default sessions */
  CHECK(c.max_sessions > 0 && c.threads > 0);
  CHECK(c.send_timeout_ms > 0 && c.send_timeout_ms < c.idle_timeout_ms);

  trunkline_engine *inline_engine = NULL, *engine = NULL;
  trunkline_engine_config ec;
  REQUIRE_OK(trunkline_engine_config_default(&ec, sizeof ec));
  ec.workers_per_core = false;
  ec.workers = 0;
  REQUIRE_OK(trunkline_engine_new(&ec, &inline_engine));
  ec.workers = 1;
  REQUIRE_OK(trunkline_engine_new(&ec, &engine));

  trunkline_server *server = NULL;
  CHECK_RESULT(trunkline_server_start(inline_engine, NULL, &server), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  CHECK_RESULT(trunkline_server_start(NULL, NULL, &server), TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK_RESULT(trunkline_server_start(engine, NULL, NULL), TRUNKLINE_RESULT_NULL_PARAMETER);
  trunkline_server_config bad = c;
  bad.bind = "not an address";
  CHECK_RESULT(trunkline_server_start(engine, &bad, &server), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  bad = c;
  bad.bind = NULL;
  CHECK_RESULT(trunkline_server_start(engine, &bad, &server), TRUNKLINE_RESULT_NULL_PARAMETER);
  bad = c;
  bad.tls_cert_pem = "/nonexistent/cert.pem";
  CHECK_RESULT(trunkline_server_start(engine, &bad, &server), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  bad = c;
  bad.max_sessions = 0;
  CHECK_RESULT(trunkline_server_start(engine, &bad, &server), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  bad = c;
  bad.send_timeout_ms = 0;
  CHECK_RESULT(trunkline_server_start(engine, &bad, &server), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  /* The server's struct_size, and its session config's (a struct of its own, pointed to). */
  const size_t bad_sizes[] = {0, sizeof(size_t) - 1, sizeof c + 1, SIZE_MAX};
  for (size_t i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++) {
    bad = c;
    bad.struct_size = bad_sizes[i];
    CHECK_RESULT(trunkline_server_start(engine, &bad, &server), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  }
  trunkline_session_config session;
  REQUIRE_OK(trunkline_session_config_default(&session, sizeof session));
  bad = c;
  bad.session = &session;
  session.struct_size = 0;
  CHECK_RESULT(trunkline_server_start(engine, &bad, &server), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  session.struct_size = sizeof session;
  session.dialect = "no-such-dialect";
  CHECK_RESULT(trunkline_server_start(engine, &bad, &server), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  CHECK(server == NULL);

  /* A caller whose server config ends before its last field (tls_key_pem): that field is not
   * read, and takes its default (NULL). A key without a certificate is refused otherwise. */
  bad = c;
  bad.tls_key_pem = "/nonexistent/key.pem";
  CHECK_RESULT(trunkline_server_start(engine, &bad, &server), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  bad.struct_size = offsetof(trunkline_server_config, tls_key_pem);
  REQUIRE_OK(trunkline_server_start(engine, &bad, &server));
  trunkline_server_free(server);
  server = NULL;

  REQUIRE_OK(trunkline_server_start(engine, NULL, &server));
  uint16_t port = 0;
  CHECK_OK(trunkline_server_local_port(server, &port));
  CHECK(port > 0);
  CHECK_RESULT(trunkline_server_local_port(NULL, &port), TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK_RESULT(trunkline_server_local_port(server, NULL), TRUNKLINE_RESULT_NULL_PARAMETER);
  trunkline_session *call = NULL;
  CHECK_RESULT(trunkline_server_accept(server, &call), TRUNKLINE_RESULT_EMPTY);
  CHECK_RESULT(trunkline_server_accept(server, NULL), TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK_RESULT(trunkline_server_accept(NULL, &call), TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK(trunkline_server_stats_count() >= 11);
  CHECK(trunkline_server_stats_name(trunkline_server_stats_count()) == NULL);
  CHECK_EQ(server_stat(server, "connections"), 0);
  CHECK_EQ(server_stat(server, "send_timeouts"), 0);
  size_t n = 0;
  CHECK_RESULT(trunkline_server_stats(server, NULL, 4, &n), TRUNKLINE_RESULT_NULL_PARAMETER);

  CHECK_OK(trunkline_server_shutdown(server, 0));
  CHECK_RESULT(trunkline_server_shutdown(server, 0), TRUNKLINE_RESULT_CLOSED);
  CHECK_RESULT(trunkline_server_local_port(server, &port), TRUNKLINE_RESULT_CLOSED);
  CHECK_RESULT(trunkline_server_accept(server, &call), TRUNKLINE_RESULT_CLOSED);
  trunkline_server_free(server);
  trunkline_server_free(NULL);
  trunkline_engine_free(engine);
  trunkline_engine_free(inline_engine);
}

void test_server_call(void) {
  trunkline_engine_config ec;
  REQUIRE_OK(trunkline_engine_config_default(&ec, sizeof ec));
  ec.workers_per_core = false;
  ec.workers = 1;
  trunkline_engine *engine = NULL;
  REQUIRE_OK(trunkline_engine_new(&ec, &engine));
  trunkline_server_config c;
  REQUIRE_OK(trunkline_server_config_default(&c, sizeof c));
  c.path = "/media";
  trunkline_session_config session;
  REQUIRE_OK(trunkline_session_config_default(&session, sizeof session));
  session.agent_rate = 8000;
  session.dialect = "twilio";
  c.session = &session;
  trunkline_server *server = NULL;
  REQUIRE_OK(trunkline_server_start(engine, &c, &server));
  uint16_t port = 0;
  REQUIRE_OK(trunkline_server_local_port(server, &port));

  /* A path the server does not serve is refused with 404, and counted. */
  int fd = tcp_connect(port);
  REQUIRE(fd >= 0);
  CHECK_EQ(ws_handshake(fd, "/elsewhere"), 404);
  close(fd);

  fd = tcp_connect(port);
  REQUIRE(fd >= 0);
  CHECK_EQ(ws_handshake(fd, "/media"), 101);
  char msg[1024];
  msg_connected(msg, sizeof msg);
  CHECK(ws_send_text(fd, msg));
  msg_start(msg, sizeof msg);
  CHECK(ws_send_text(fd, msg));

  /* The host learns of the call once its start arrived. */
  trunkline_session *call = NULL;
  for (int i = 0; i < 200 && call == NULL; i++) {
    trunkline_engine_wait(engine, 20);
    if (trunkline_server_accept(server, &call) != TRUNKLINE_RESULT_OK) call = NULL;
  }
  REQUIRE(call != NULL);
  trunkline_start_info info = {.struct_size = sizeof info};
  CHECK_OK(trunkline_session_start_info(call, &info));
  CHECK(info.custom_parameter_count > 0);
  char sid[64];
  size_t sid_len = 0;
  CHECK_OK(trunkline_session_start_string(call, TRUNKLINE_START_FIELD_CALL_ID, sid, sizeof sid, &sid_len));
  CHECK(sid_len > 0);
  trunkline_event ev = {.struct_size = sizeof ev};
  int seen_connected = 0, seen_started = 0;
  for (int i = 0; i < 100 && !seen_started; i++) {
    trunkline_engine_wait(engine, 10);
    while (trunkline_session_poll_event(call, &ev) == TRUNKLINE_RESULT_OK) {
      seen_connected += ev.kind == TRUNKLINE_EVENT_KIND_CONNECTED;
      seen_started += ev.kind == TRUNKLINE_EVENT_KIND_STARTED;
    }
  }
  CHECK_EQ(seen_connected, 1);
  CHECK_EQ(seen_started, 1);
  /* The server drives the carrier side: the host cannot push into an offloaded call. */
  CHECK_RESULT(push_text(call, msg), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  size_t len = 0;
  CHECK_RESULT(trunkline_session_outbound_len(call, &len), TRUNKLINE_RESULT_INVALID_ARGUMENT);

  close(fd);
  /* The carrier hung up without `stop`: the host still gets STOPPED. */
  int stopped = 0;
  for (int i = 0; i < 200 && !stopped; i++) {
    trunkline_engine_wait(engine, 10);
    while (trunkline_session_poll_event(call, &ev) == TRUNKLINE_RESULT_OK) {
      stopped += ev.kind == TRUNKLINE_EVENT_KIND_STOPPED;
    }
  }
  CHECK_EQ(stopped, 1);
  sleep_ms(50);
  CHECK_EQ(server_stat(server, "rejected_path"), 1);
  CHECK_EQ(server_stat(server, "accepted"), 1);
  CHECK_EQ(server_stat(server, "calls_opened"), 1);
  CHECK_EQ(server_stat(server, "active"), 0);

  trunkline_session_free(call);
  trunkline_server_free(server);
  trunkline_engine_free(engine);
}

/* The status code of a plain HTTP GET of `path` (0 on error). */
static int http_get(uint16_t port, const char *path) {
  int fd = tcp_connect(port);
  if (fd < 0) return 0;
  char req[256];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
  int status = 0;
  char resp[64] = {0};
  if (send(fd, req, (size_t)n, 0) == n && recv(fd, resp, sizeof resp - 1, 0) > 0) {
    if (sscanf(resp, "HTTP/1.1 %d", &status) != 1) status = 0;
  }
  close(fd);
  return status;
}

/* A Twilio call on `server`: handshake, connected and start sent. Returns the host's session once
 * the server handed it over (NULL on failure); `*fd` is the carrier's socket. */
static trunkline_session *start_call(trunkline_engine *engine, trunkline_server *server, uint16_t port, int *fd) {
  *fd = tcp_connect(port);
  if (*fd < 0 || ws_handshake(*fd, "/media") != 101) return NULL;
  char msg[1024];
  msg_connected(msg, sizeof msg);
  ws_send_text(*fd, msg);
  msg_start(msg, sizeof msg);
  ws_send_text(*fd, msg);
  trunkline_session *call = NULL;
  for (int i = 0; i < 250 && call == NULL; i++) {
    trunkline_engine_wait(engine, 20);
    if (trunkline_server_accept(server, &call) != TRUNKLINE_RESULT_OK) call = NULL;
  }
  return call;
}

/* Reads the call's audio and events until STOPPED or `timeout_ms`; whether it stopped. Adds the
 * samples read to `*samples`. */
static bool run_until_stopped(trunkline_engine *engine, trunkline_session *call, int timeout_ms, size_t *samples) {
  trunkline_event ev = {.struct_size = sizeof ev};
  int16_t pcm[2048];
  size_t n = 0;
  double deadline = now_ms() + timeout_ms;
  while (now_ms() < deadline) {
    trunkline_engine_wait(engine, 10);
    while (trunkline_session_read_audio(call, pcm, 2048, &n) == TRUNKLINE_RESULT_OK) *samples += n;
    while (trunkline_session_poll_event(call, &ev) == TRUNKLINE_RESULT_OK) {
      if (ev.kind == TRUNKLINE_EVENT_KIND_STOPPED) {
        while (trunkline_session_read_audio(call, pcm, 2048, &n) == TRUNKLINE_RESULT_OK) *samples += n;
        return true;
      }
    }
  }
  return false;
}

typedef struct {
  trunkline_server *server;
  uint32_t grace_ms;
  trunkline_result result;
  bool all_ended;
} drain_job;

static void *run_drain(void *arg) {
  drain_job *job = arg;
  job->result = trunkline_server_drain(job->server, job->grace_ms, &job->all_ended);
  return NULL;
}

/* Whether the server stops being ready within 2 s (the drain runs on another thread). */
static bool becomes_unready(trunkline_server *server) {
  bool ready = true;
  for (int i = 0; i < 200 && ready; i++) {
    if (trunkline_server_ready(server, &ready) != TRUNKLINE_RESULT_OK) return false;
    if (ready) sleep_ms(10);
  }
  return !ready;
}

/* An engine with one worker and a Twilio server on /media with 8 kHz sessions. */
static bool start_server(trunkline_engine **engine, trunkline_server **server, uint16_t *port) {
  *engine = engine_with_workers(1);
  if (*engine == NULL) return false;
  trunkline_server_config c;
  trunkline_session_config session;
  if (trunkline_server_config_default(&c, sizeof c) != TRUNKLINE_RESULT_OK ||
      trunkline_session_config_default(&session, sizeof session) != TRUNKLINE_RESULT_OK)
    return false;
  c.path = "/media";
  session.agent_rate = 8000;
  session.dialect = "twilio";
  c.session = &session;
  return trunkline_server_start(*engine, &c, server) == TRUNKLINE_RESULT_OK &&
         trunkline_server_local_port(*server, port) == TRUNKLINE_RESULT_OK;
}

void test_server_drain(void) {
  trunkline_engine *engine = NULL;
  trunkline_server *server = NULL;
  uint16_t port = 0;
  REQUIRE(start_server(&engine, &server, &port));
  bool flag = false;
  CHECK_RESULT(trunkline_server_ready(NULL, &flag), TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK_RESULT(trunkline_server_ready(server, NULL), TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK_RESULT(trunkline_server_drain(NULL, 0, &flag), TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK_RESULT(trunkline_server_drain(server, 0, NULL), TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK_OK(trunkline_server_ready(server, &flag));
  CHECK(flag);
  CHECK_EQ(http_get(port, "/readyz"), 200);

  int fd = -1;
  trunkline_session *call = start_call(engine, server, port, &fd);
  REQUIRE(call != NULL);

  /* A long grace: the drain ends because the call does. */
  drain_job job = {server, 30000, TRUNKLINE_RESULT_PANIC, false};
  pthread_t drainer;
  REQUIRE(pthread_create(&drainer, NULL, run_drain, &job) == 0);
  CHECK(becomes_unready(server));
  CHECK_EQ(http_get(port, "/readyz"), 503);
  CHECK_EQ(http_get(port, "/healthz"), 200);
  int refused = tcp_connect(port);
  CHECK(refused >= 0);
  if (refused >= 0) {
    CHECK_EQ(ws_handshake(refused, "/media"), 503);
    close(refused);
  }

  /* The live call goes on: its media still reaches the host, then it stops. */
  char msg[1024];
  uint8_t payload[FRAME_BYTES];
  memset(payload, 0xFF, sizeof payload);
  const unsigned frames = 25;
  for (unsigned i = 0; i < frames; i++) {
    msg_media(msg, sizeof msg, i + 2, i + 1, i * 20, payload, sizeof payload);
    CHECK(ws_send_text(fd, msg));
  }
  msg_stop(msg, sizeof msg, frames + 2);
  CHECK(ws_send_text(fd, msg));
  size_t samples = 0;
  CHECK(run_until_stopped(engine, call, 10000, &samples));
  CHECK_EQ(samples, frames * FRAME_BYTES);
  pthread_join(drainer, NULL);
  CHECK_OK(job.result);
  CHECK(job.all_ended);
  close(fd);

  CHECK_EQ(server_stat(server, "rejected_draining"), 1);
  CHECK_EQ(server_stat(server, "calls_opened"), 1);
  CHECK_EQ(server_stat(server, "active"), 0);
  /* Draining cannot be undone; a second drain, with nothing live, returns at once. */
  CHECK_OK(trunkline_server_drain(server, 0, &flag));
  CHECK(flag);
  CHECK_OK(trunkline_server_ready(server, &flag));
  CHECK(!flag);

  CHECK_OK(trunkline_server_shutdown(server, 0));
  CHECK_RESULT(trunkline_server_drain(server, 0, &flag), TRUNKLINE_RESULT_CLOSED);
  CHECK_RESULT(trunkline_server_ready(server, &flag), TRUNKLINE_RESULT_CLOSED);
  trunkline_session_free(call);
  trunkline_server_free(server);
  trunkline_engine_free(engine);
}

void test_server_shutdown_during_drain(void) {
  trunkline_engine *engine = NULL;
  trunkline_server *server = NULL;
  uint16_t port = 0;
  REQUIRE(start_server(&engine, &server, &port));
  int fd = -1;
  trunkline_session *call = start_call(engine, server, port, &fd);
  REQUIRE(call != NULL);
  drain_job job = {server, 30000, TRUNKLINE_RESULT_PANIC, false};
  pthread_t drainer;
  REQUIRE(pthread_create(&drainer, NULL, run_drain, &job) == 0);
  CHECK(becomes_unready(server));
  /* A shutdown without grace ends the call the drain was waiting for, and returns once the
   * drain has: both are done when it does. */
  CHECK_OK(trunkline_server_shutdown(server, 0));
  size_t samples = 0;
  CHECK(run_until_stopped(engine, call, 5000, &samples));
  pthread_join(drainer, NULL);
  CHECK_OK(job.result);
  CHECK(job.all_ended);
  close(fd);
  trunkline_session_free(call);
  trunkline_server_free(server);
  trunkline_engine_free(engine);
}
