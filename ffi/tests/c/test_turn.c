/*
 * The session config's turn settings: END_OF_TURN events on the speech fixture (their fields,
 * their place before SPEECH_STOPPED or, with a maximum silence, after it), echo-aware detection,
 * the settings' defaults for older callers and the refusal of a threshold or a maximum silence
 * out of range.
 */
#define _POSIX_C_SOURCE 200809L

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tests.h"
#include "util.h"

#define HANGOVER_MS 400

/* Feeds the whole fixture to an inline session opened with `cfg`; fills `log` with its events
 * and `at[i]` with the stream time pushed (ms) when event i came out. */
static void run_fixture(const fixture *f, const trunkline_session_config *cfg, event_log *log, uint64_t *at) {
  trunkline_engine *e = engine_with_workers(0);
  REQUIRE(e != NULL);
  trunkline_session *s = NULL;
  REQUIRE_OK(trunkline_session_open(e, cfg, &s));
  char msg[MSG_CAP];
  msg_connected(msg, sizeof msg);
  CHECK_OK(push_text(s, msg));
  msg_start(msg, sizeof msg);
  CHECK_OK(push_text(s, msg));
  log->count = 0;
  size_t frames = f->len / FRAME_BYTES;
  for (size_t i = 0; i < frames; i++) {
    msg_media(msg, sizeof msg, (unsigned)i + 2, (unsigned)i + 1, (unsigned)(i * 20), f->audio + i * FRAME_BYTES,
              FRAME_BYTES);
    CHECK_OK(push_text(s, msg));
    drain_audio(s, NULL);
    size_t before = log->count;
    drain_events(s, log);
    for (size_t k = before; k < log->count; k++) at[k] = (uint64_t)(i + 1) * 20;
  }
  trunkline_session_free(s);
  trunkline_engine_free(e);
}

static trunkline_session_config turn_config(void) {
  trunkline_session_config c;
  CHECK_OK(trunkline_session_config_default(&c, sizeof c));
  c.vad_hangover_ms = HANGOVER_MS;
  return c;
}

void test_turn_settings_defaults_and_refusals(void) {
  trunkline_session_config c;
  REQUIRE_OK(trunkline_session_config_default(&c, sizeof c));
  CHECK(!c.vad_echo_aware);
  CHECK(!c.vad_end_of_turn_enabled);
  CHECK(c.vad_end_of_turn_threshold >= 1 && c.vad_end_of_turn_threshold <= 99);
  CHECK(c.vad_end_of_turn_min_silence_ms > 0 && c.vad_end_of_turn_min_silence_ms <= c.vad_hangover_ms);
  CHECK_EQ(c.vad_end_of_turn_max_silence_ms, 0);
  CHECK(c.record_path == NULL);

  /* A caller compiled before these fields: nothing written past its struct, and the library
   * reads none of them (garbage there is ignored). */
  const size_t old = offsetof(trunkline_session_config, record_path);
  trunkline_session_config o;
  memset(&o, 0xA5, sizeof o);
  REQUIRE_OK(trunkline_session_config_default(&o, old));
  CHECK_EQ(o.struct_size, old);
  const unsigned char *bytes = (const unsigned char *)&o;
  for (size_t i = old; i < sizeof o; i++) CHECK_EQ(bytes[i], 0xA5);
  trunkline_engine *e = engine_with_workers(0);
  REQUIRE(e != NULL);
  trunkline_session *s = NULL;
  CHECK_OK(trunkline_session_open(e, &o, &s));
  trunkline_session_free(s);

  /* The threshold is a percent, 1..=99, checked whether or not end of turn is on. */
  const uint32_t bad[] = {0, 100, 255, 256, UINT32_MAX};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    for (int enabled = 0; enabled < 2; enabled++) {
      trunkline_session_config b = c;
      b.vad_end_of_turn_enabled = enabled;
      b.vad_end_of_turn_threshold = bad[i];
      s = NULL;
      CHECK_RESULT(trunkline_session_open(e, &b, &s), TRUNKLINE_RESULT_INVALID_ARGUMENT);
      CHECK(s == NULL);
    }
  }
  const uint32_t good[] = {1, 99};
  for (size_t i = 0; i < 2; i++) {
    trunkline_session_config g = c;
    g.vad_end_of_turn_enabled = true;
    g.vad_echo_aware = true;
    g.vad_end_of_turn_threshold = good[i];
    s = NULL;
    CHECK_OK(trunkline_session_open(e, &g, &s));
    trunkline_session_free(s);
  }

  /* Ducking: on by default, 0 turns it off, a dB figure is at most 255. */
  CHECK(c.barge_in_duck_db > 0 && c.barge_in_duck_db <= 255);
  const uint32_t duck[] = {0, 255, 256};
  for (size_t i = 0; i < 3; i++) {
    trunkline_session_config d = c;
    d.barge_in_duck_db = duck[i];
    s = NULL;
    CHECK_RESULT(trunkline_session_open(e, &d, &s),
                 duck[i] <= 255 ? TRUNKLINE_RESULT_OK : TRUNKLINE_RESULT_INVALID_ARGUMENT);
    trunkline_session_free(s);
  }

  /* The maximum silence: at most 10 s (the longest hangover), whole 20 ms frames not needed
   * (rounded up, like the minimum silence). */
  const uint32_t max_silence[] = {1, 1010, 10000, 10001, UINT32_MAX};
  for (size_t i = 0; i < sizeof max_silence / sizeof max_silence[0]; i++) {
    trunkline_session_config m = c;
    m.vad_end_of_turn_enabled = true;
    m.vad_end_of_turn_max_silence_ms = max_silence[i];
    s = NULL;
    CHECK_RESULT(trunkline_session_open(e, &m, &s),
                 max_silence[i] <= 10000 ? TRUNKLINE_RESULT_OK : TRUNKLINE_RESULT_INVALID_ARGUMENT);
    trunkline_session_free(s);
  }
  trunkline_engine_free(e);
}

/* At the top threshold no phrase of the fixture sounds finished enough: without a maximum silence
 * each pause's END_OF_TURN comes with its SPEECH_STOPPED (test_end_of_turn_events); with one
 * between the hangover and the fixture's shortest pause (800 ms) it comes that much silence after
 * the speech, later in the stream than SPEECH_STOPPED, at the same end of speech. Longer than
 * every pause, no pause ends the turn. */
static void check_max_silence(const fixture *f, event_log *log, uint64_t *at) {
  const uint32_t max_silence = 600;
  trunkline_session_config c = turn_config();
  c.vad_end_of_turn_enabled = true;
  c.vad_end_of_turn_threshold = 99;
  c.vad_end_of_turn_max_silence_ms = max_silence;
  run_fixture(f, &c, log, at);
  size_t turns = 0;
  for (size_t i = 0; i < log->count; i++) {
    const trunkline_event *turn = &log->items[i];
    if (turn->kind != TRUNKLINE_EVENT_KIND_END_OF_TURN) continue;
    REQUIRE(i > 0);
    const trunkline_event *stopped = &log->items[i - 1];
    CHECK_EQ(stopped->kind, TRUNKLINE_EVENT_KIND_SPEECH_STOPPED);
    CHECK_EQ(turn->stream_ms, stopped->stream_ms);
    CHECK_EQ(turn->duration_ms, (int64_t)max_silence);
    CHECK(turn->confidence >= 0 && turn->confidence < 99);
    CHECK(at[i] > at[i - 1]);
    CHECK(at[i] - turn->stream_ms >= max_silence);
    turns++;
  }
  CHECK_EQ(turns, f->label_count);

  c.vad_end_of_turn_max_silence_ms = 2000;
  run_fixture(f, &c, log, at);
  CHECK(find_event(log, 0, TRUNKLINE_EVENT_KIND_END_OF_TURN) == SIZE_MAX);
  size_t stops = 0;
  for (size_t i = 0; i < log->count; i++) stops += log->items[i].kind == TRUNKLINE_EVENT_KIND_SPEECH_STOPPED;
  CHECK_EQ(stops, f->label_count);
}

void test_end_of_turn_events(void) {
  fixture f;
  REQUIRE(fixture_load(&f));
  event_log *log = malloc(sizeof *log);
  uint64_t *at = calloc(512, sizeof *at);
  REQUIRE(log && at);
  const uint32_t threshold = 35;
  const uint32_t min_silence = 140;
  trunkline_session_config c = turn_config();
  c.vad_end_of_turn_enabled = true;
  c.vad_end_of_turn_threshold = threshold;
  c.vad_end_of_turn_min_silence_ms = min_silence;
  run_fixture(&f, &c, log, at);

  size_t stops = 0;
  size_t early = 0;
  for (size_t i = 0; i < log->count; i++) {
    const trunkline_event *ev = &log->items[i];
    if (ev->kind != TRUNKLINE_EVENT_KIND_END_OF_TURN) {
      CHECK_EQ(ev->confidence, -1);
      if (ev->kind != TRUNKLINE_EVENT_KIND_SPEECH_STOPPED) continue;
      /* The pause's end of turn comes just before its speech stopped, at the same end. */
      REQUIRE(i > 0);
      const trunkline_event *turn = &log->items[i - 1];
      CHECK_EQ(turn->kind, TRUNKLINE_EVENT_KIND_END_OF_TURN);
      CHECK_EQ(turn->stream_ms, ev->stream_ms);
      REQUIRE(stops < f.label_count);
      uint64_t truth = f.labels[stops][1];
      CHECK(ev->stream_ms + 60 >= truth && ev->stream_ms <= truth + 60);
      CHECK(turn->confidence >= 0 && turn->confidence <= 100);
      if (turn->duration_ms < HANGOVER_MS) {
        /* Early: finished-sounding, after the minimum silence, out sooner than SPEECH_STOPPED. */
        early++;
        CHECK(turn->confidence >= (int64_t)threshold);
        CHECK_EQ(turn->duration_ms, (int64_t)min_silence);
        CHECK(at[i - 1] < at[i]);
        CHECK(at[i - 1] - turn->stream_ms >= min_silence);
      } else {
        CHECK_EQ(turn->duration_ms, HANGOVER_MS);
        CHECK(turn->confidence < (int64_t)threshold);
      }
      stops++;
      continue;
    }
    /* Inside a turn: never right after its SPEECH_STOPPED. */
    REQUIRE(i > 0);
    CHECK(log->items[i - 1].kind != TRUNKLINE_EVENT_KIND_SPEECH_STOPPED);
  }
  CHECK_EQ(stops, f.label_count);
  CHECK(early >= 1);

  /* Off by default: the same call has no END_OF_TURN. */
  trunkline_session_config plain = turn_config();
  event_log *plain_log = malloc(sizeof *plain_log);
  REQUIRE(plain_log != NULL);
  run_fixture(&f, &plain, plain_log, at);
  CHECK(find_event(plain_log, 0, TRUNKLINE_EVENT_KIND_END_OF_TURN) == SIZE_MAX);
  CHECK(find_event(plain_log, 0, TRUNKLINE_EVENT_KIND_SPEECH_STOPPED) != SIZE_MAX);

  /* Echo-aware with no agent audio finds the caller's speech exactly as without it. */
  trunkline_session_config echo = turn_config();
  echo.vad_echo_aware = true;
  run_fixture(&f, &echo, log, at);
  CHECK_EQ(log->count, plain_log->count);
  for (size_t i = 0; i < log->count && i < plain_log->count; i++) {
    CHECK_EQ(log->items[i].kind, plain_log->items[i].kind);
    CHECK_EQ(log->items[i].stream_ms, plain_log->items[i].stream_ms);
  }

  check_max_silence(&f, log, at);
  free(plain_log);
  free(at);
  free(log);
  fixture_free(&f);
}
