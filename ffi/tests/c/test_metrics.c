/*
 * trunkline_engine_metrics: the Prometheus and OpenMetrics text of an engine after a call, read
 * back line by line and compared with the session's own counters; the buffer convention (the
 * length written with BUFFER_TOO_SMALL, nothing copied) and every error.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests.h"
#include "util.h"

/* Media frames the call sends (one of them is lost on the way: the engine fills it). */
#define CALL_FRAMES 50
#define LOST_FRAME 20

/* The engine's metrics text in `format`, allocated (free it), or NULL after a failed check. Asks
 * the length first, as a host would, then leaves room for growth. */
static char *metrics_text(trunkline_engine *e, uint32_t format) {
  size_t len = 0;
  CHECK_RESULT(trunkline_engine_metrics(e, format, NULL, 0, &len), TRUNKLINE_RESULT_BUFFER_TOO_SMALL);
  if (len == 0) return NULL;
  size_t cap = 2 * len + 256;
  char *text = malloc(cap);
  if (text == NULL) return NULL;
  size_t got = 0;
  trunkline_result r = trunkline_engine_metrics(e, format, text, cap, &got);
  CHECK_RESULT(r, TRUNKLINE_RESULT_OK);
  if (r != TRUNKLINE_RESULT_OK) {
    free(text);
    return NULL;
  }
  CHECK_EQ(strlen(text), got);
  return text;
}

/* The value of the sample whose series (name and labels, as rendered) is `series`, or -1. */
static double sample(const char *text, const char *series) {
  size_t n = strlen(series);
  for (const char *line = text; line != NULL && *line != '\0';) {
    if (strncmp(line, series, n) == 0 && line[n] == ' ') return strtod(line + n + 1, NULL);
    line = strchr(line, '\n');
    if (line != NULL) line++;
  }
  return -1.0;
}

/* An inline call: connected, start, CALL_FRAMES media frames but LOST_FRAME, a message that is
 * not JSON, stop. Every event and all audio read. */
static void run_call(trunkline_session *s) {
  char msg[MSG_CAP];
  msg_connected(msg, sizeof msg);
  CHECK_OK(push_text(s, msg));
  msg_start(msg, sizeof msg);
  CHECK_OK(push_text(s, msg));
  uint8_t payload[FRAME_BYTES];
  memset(payload, 0xFF, sizeof payload);
  int16_t pcm[4096];
  size_t samples = 0;
  for (unsigned i = 0; i < CALL_FRAMES; i++) {
    if (i == LOST_FRAME) continue;
    msg_media(msg, sizeof msg, i + 2, i + 1, i * 20, payload, sizeof payload);
    CHECK_OK(push_text(s, msg));
    while (trunkline_session_read_audio(s, pcm, 4096, &samples) == TRUNKLINE_RESULT_OK) {
    }
  }
  CHECK_OK(push_text(s, "not json"));
  msg_stop(msg, sizeof msg, CALL_FRAMES + 2);
  CHECK_OK(push_text(s, msg));
  while (trunkline_session_read_audio(s, pcm, 4096, &samples) == TRUNKLINE_RESULT_OK) {
  }
  trunkline_event ev = {.struct_size = sizeof ev};
  bool stopped = false;
  while (trunkline_session_poll_event(s, &ev) == TRUNKLINE_RESULT_OK) stopped |= ev.kind == TRUNKLINE_EVENT_KIND_STOPPED;
  CHECK(stopped);
}

void test_engine_metrics_match_the_session_counters(void) {
  trunkline_engine *e = engine_with_workers(0);
  REQUIRE(e != NULL);
  trunkline_session *s = NULL;
  REQUIRE_OK(trunkline_session_open(e, NULL, &s));
  run_call(s);
  uint64_t values[64];
  size_t count = 0;
  REQUIRE_OK(trunkline_session_stats(s, values, 64, &count));
  CHECK_EQ(stat_by_name(values, count, "media_frames_in"), CALL_FRAMES - 1);
  CHECK_EQ(stat_by_name(values, count, "protocol_errors"), 1);

  char *text = metrics_text(e, TRUNKLINE_METRICS_PROMETHEUS);
  REQUIRE(text != NULL);
  /* Every session counter as trunkline_session_<name>_total, a counter of microseconds
   * (<stem>_us) in seconds as trunkline_session_<stem>_seconds_total (the jitter estimate is not
   * a counter: a gauge of its own), equal to what the session reports. */
  size_t compared = 0;
  for (size_t i = 0; i < count; i++) {
    const char *name = trunkline_session_stats_name(i);
    if (strcmp(name, "jitter_us") == 0) continue;
    char series[128];
    double expected = (double)values[i];
    size_t n = strlen(name);
    if (n > 3 && strcmp(name + n - 3, "_us") == 0) {
      snprintf(series, sizeof series, "trunkline_session_%.*s_seconds_total", (int)(n - 3), name);
      expected /= 1e6;
    } else {
      snprintf(series, sizeof series, "trunkline_session_%s_total", name);
    }
    double v = sample(text, series);
    if (v != expected) tl_fail(__FILE__, __LINE__, "%s: %g in the metrics, %g in the stats", series, v, expected);
    compared++;
  }
  CHECK_EQ(compared, count - 1);
  CHECK(sample(text, "trunkline_calls_active") == 1.0);
  CHECK(sample(text, "trunkline_calls_opened_total") == 1.0);
  CHECK(sample(text, "trunkline_media_frames_total{direction=\"in\"}") == (double)(CALL_FRAMES - 1));
  CHECK(sample(text, "trunkline_protocol_errors_total") == 1.0);
  CHECK(strstr(text, "# TYPE trunkline_session_media_frames_in_total counter\n") != NULL);
  CHECK(strstr(text, "# EOF") == NULL);
  free(text);

  /* A freed session's counts stay, and it is counted by how it ended. */
  trunkline_session_free(s);
  text = metrics_text(e, TRUNKLINE_METRICS_OPENMETRICS);
  REQUIRE(text != NULL);
  size_t len = strlen(text);
  CHECK(len > 6 && strcmp(text + len - 6, "# EOF\n") == 0);
  CHECK(sample(text, "trunkline_calls_active") == 0.0);
  CHECK(sample(text, "trunkline_calls_total{outcome=\"stopped\"}") == 1.0);
  CHECK(sample(text, "trunkline_session_media_frames_in_total") == (double)(CALL_FRAMES - 1));
  CHECK(strstr(text, "# TYPE trunkline_session_media_frames_in counter\n") != NULL);
  free(text);
  trunkline_engine_free(e);
}

void test_engine_metrics_buffer_and_errors(void) {
  trunkline_engine *e = engine_with_workers(0);
  REQUIRE(e != NULL);
  size_t len = 0;
  CHECK_RESULT(trunkline_engine_metrics(e, TRUNKLINE_METRICS_PROMETHEUS, NULL, 0, &len), TRUNKLINE_RESULT_BUFFER_TOO_SMALL);
  REQUIRE(len > 100 && len < 1000000);

  /* Half of it: nothing is copied, the length is written. */
  char *buf = malloc(len + 4096);
  REQUIRE(buf != NULL);
  memset(buf, 'x', len + 4096);
  size_t got = 0;
  CHECK_RESULT(trunkline_engine_metrics(e, TRUNKLINE_METRICS_PROMETHEUS, buf, len / 2, &got), TRUNKLINE_RESULT_BUFFER_TOO_SMALL);
  CHECK(got > len / 2 && got < len + 4096);
  bool untouched = true;
  for (size_t i = 0; i < len + 4096; i++) untouched &= buf[i] == 'x';
  CHECK(untouched);
  /* The length plus one (the NUL) holds it, as long as the text did not grow in between: the
   * process's CPU time, rendered as a decimal, may take a digit more or less from one call to the
   * next, so retry with the length just given, as a host would. */
  trunkline_result r = TRUNKLINE_RESULT_BUFFER_TOO_SMALL;
  for (int attempt = 0; attempt < 100 && r == TRUNKLINE_RESULT_BUFFER_TOO_SMALL && got < len + 4096; attempt++) {
    r = trunkline_engine_metrics(e, TRUNKLINE_METRICS_PROMETHEUS, buf, got + 1, &got);
  }
  CHECK_RESULT(r, TRUNKLINE_RESULT_OK);
  if (r == TRUNKLINE_RESULT_OK) {
    CHECK_EQ(strlen(buf), got);
    CHECK(strncmp(buf, "# HELP ", 7) == 0);
  }
  free(buf);

  char small_buf[16];
  CHECK_RESULT(trunkline_engine_metrics(NULL, TRUNKLINE_METRICS_PROMETHEUS, small_buf, sizeof small_buf, &len), TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK_RESULT(trunkline_engine_metrics(e, TRUNKLINE_METRICS_PROMETHEUS, small_buf, sizeof small_buf, NULL), TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK_RESULT(trunkline_engine_metrics(e, TRUNKLINE_METRICS_PROMETHEUS, NULL, 16, &len), TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK_RESULT(trunkline_engine_metrics(e, 2, small_buf, sizeof small_buf, &len), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  CHECK_RESULT(trunkline_engine_metrics(e, UINT32_MAX, small_buf, sizeof small_buf, &len), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  CHECK_RESULT(trunkline_engine_metrics(e, TRUNKLINE_METRICS_PROMETHEUS, small_buf, SIZE_MAX, &len), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  trunkline_engine_free(e);
}

void test_engine_metrics_threaded(void) {
  /* A threaded engine also reports its workers' CPU time, one series per worker. */
  trunkline_engine *e = engine_with_workers(2);
  REQUIRE(e != NULL);
  char *text = metrics_text(e, TRUNKLINE_METRICS_PROMETHEUS);
  REQUIRE(text != NULL);
  CHECK(sample(text, "trunkline_worker_cpu_seconds_total{worker=\"0\"}") >= 0.0);
  CHECK(sample(text, "trunkline_worker_cpu_seconds_total{worker=\"1\"}") >= 0.0);
  CHECK(sample(text, "trunkline_worker_cpu_seconds_total{worker=\"2\"}") == -1.0);
  CHECK(sample(text, "trunkline_engine_latency_seconds_count") == 0.0);
  free(text);
  trunkline_engine_free(e);
}
