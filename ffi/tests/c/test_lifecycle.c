/* Lifecycle: version, config defaults, engines, sessions, _free(NULL), stats names, codecs,
 * the wakeup fd. */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "tests.h"
#include "util.h"

void test_version(void) {
  const char *v = trunkline_version();
  REQUIRE(v != NULL);
  CHECK(strcmp(v, TRUNKLINE_VERSION) == 0);
  char parts[64];
  snprintf(parts, sizeof parts, "%d.%d.%d", TRUNKLINE_VERSION_MAJOR, TRUNKLINE_VERSION_MINOR,
           TRUNKLINE_VERSION_PATCH);
  CHECK(strcmp(v, parts) == 0);
  CHECK(trunkline_version() == v); /* static */
}

void test_config_defaults(void) {
  trunkline_engine_config e;
  memset(&e, 0xA5, sizeof e);
  REQUIRE_OK(trunkline_engine_config_default(&e, sizeof e));
  CHECK_EQ(e.struct_size, sizeof e);
  CHECK(e.workers_per_core);
  CHECK_EQ(e.max_sessions, 4096);
  CHECK_EQ(e.tick_ms, 10);
  CHECK_EQ(e.worker_nice, -10);

  trunkline_session_config c;
  memset(&c, 0xA5, sizeof c); /* garbage in the bool fields must not matter */
  REQUIRE_OK(trunkline_session_config_default(&c, sizeof c));
  CHECK_EQ(c.struct_size, sizeof c);
  CHECK(c.dialect == NULL); /* the default dialect */
  CHECK_EQ(c.agent_rate, 16000);
  CHECK_EQ(c.play_rate, 24000);
  /* The VAD and barge-in knobs are tuned with the engine's VAD work (docs/settings.md
   * has their values): sane, not pinned here. */
  CHECK(c.vad_aggressiveness <= 3);
  CHECK(c.vad_min_speech_ms >= 20 && c.vad_min_speech_ms <= 1000);
  CHECK(c.vad_hangover_ms >= 100 && c.vad_hangover_ms <= 2000);
  CHECK(c.barge_in_enabled);
  CHECK(c.barge_in_min_speech_ms >= 100 && c.barge_in_min_speech_ms <= 1000);
  CHECK_EQ(c.lead_ms, 100);
  CHECK_EQ(c.sync_mark_interval_ms, 500);
  CHECK_EQ(c.utterance_gap_ms, 1000);
  CHECK_EQ(c.max_message_bytes, 6 * 1024);
  CHECK_EQ(c.max_payload_bytes, 2 * 1024);
  CHECK_EQ(c.reorder_window_ms, 60);
  CHECK_EQ(c.max_gap_fill_ms, 2000);
  CHECK_EQ(c.inbound_ring_bytes, 16 * 1024);
  CHECK_EQ(c.play_ring_bytes, 16 * 1024);
  CHECK_EQ(c.outbound_buffer_ms, 2000);
  CHECK_EQ(c.agent_ring_ms, 500);
  CHECK_EQ(c.outbound_ring_bytes, 8 * 1024);
  CHECK_EQ(c.event_capacity, 128);
  CHECK_EQ(c.max_mark_name_bytes, 128);
  CHECK_EQ(c.max_pending_marks, 64);
}

static void engine_round_trip(uint32_t workers) {
  trunkline_engine_config cfg;
  REQUIRE_OK(trunkline_engine_config_default(&cfg, sizeof cfg));
  cfg.workers_per_core = false;
  cfg.workers = workers;
  trunkline_engine *e = NULL;
  REQUIRE_OK(trunkline_engine_new(&cfg, &e));
  REQUIRE(e != NULL);
  int32_t fd = -1;
  CHECK_OK(trunkline_engine_wakeup_fd(e, &fd));
  CHECK(fd >= 0 && fcntl(fd, F_GETFD) != -1);
  CHECK_RESULT(trunkline_engine_wait(e, 0), TRUNKLINE_RESULT_TIMEOUT);

  /* A session on it sees the carrier's first message. */
  trunkline_session *s = NULL;
  REQUIRE_OK(trunkline_session_open(e, NULL, &s));
  char msg[MSG_CAP];
  msg_connected(msg, sizeof msg);
  CHECK_OK(push_text(s, msg));
  trunkline_event ev = {.struct_size = sizeof ev};
  trunkline_result r = TRUNKLINE_RESULT_EMPTY;
  for (double deadline = now_ms() + 5000; now_ms() < deadline;) {
    r = trunkline_session_poll_event(s, &ev);
    if (r != TRUNKLINE_RESULT_EMPTY) break;
    trunkline_engine_wait(e, 50);
  }
  CHECK_OK(r);
  CHECK_EQ(ev.kind, TRUNKLINE_EVENT_KIND_CONNECTED);
  CHECK_EQ(ev.stream_ms, 0);
  CHECK_EQ(ev.name[0], '\0');
  trunkline_session_free(s);
  trunkline_engine_free(e);
}

void test_engine_lifecycle(void) {
  engine_round_trip(0); /* inline */
  engine_round_trip(1); /* one worker thread */

  /* NULL config: the defaults (one worker per core). */
  trunkline_engine *e = NULL;
  REQUIRE_OK(trunkline_engine_new(NULL, &e));
  CHECK(e != NULL);
  trunkline_engine_free(e);

  /* Worker priority: a higher nice value is always granted, 0 leaves the workers alone, a
   * lower one may be refused (no CAP_SYS_NICE) without failing, and inline engines have none. */
  const int32_t nices[] = {5, 0, -10};
  for (size_t i = 0; i < sizeof nices / sizeof nices[0]; i++) {
    trunkline_engine_config pc;
    REQUIRE_OK(trunkline_engine_config_default(&pc, sizeof pc));
    pc.workers_per_core = false;
    pc.workers = 2;
    pc.worker_nice = nices[i];
    trunkline_engine *pe = NULL;
    REQUIRE_OK(trunkline_engine_new(&pc, &pe));
    uint32_t prioritised = 99;
    CHECK_OK(trunkline_engine_prioritised_workers(pe, &prioritised));
    if (nices[i] >= 0) {
      CHECK_EQ(prioritised, 2);
    } else {
      CHECK(prioritised == 0 || prioritised == 2);
    }
    trunkline_engine_free(pe);
  }
  {
    trunkline_engine *pe = NULL;
    trunkline_engine_config pc;
    REQUIRE_OK(trunkline_engine_config_default(&pc, sizeof pc));
    pc.workers_per_core = false;
    pc.workers = 0;
    REQUIRE_OK(trunkline_engine_new(&pc, &pe));
    uint32_t prioritised = 99;
    CHECK_OK(trunkline_engine_prioritised_workers(pe, &prioritised));
    CHECK_EQ(prioritised, 0);
    trunkline_engine_free(pe);
    pc.worker_nice = 20;
    CHECK_RESULT(trunkline_engine_new(&pc, &pe), TRUNKLINE_RESULT_INVALID_ARGUMENT);
    pc.worker_nice = -21;
    CHECK_RESULT(trunkline_engine_new(&pc, &pe), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  }

  /* Outputs are written only on success. */
  trunkline_engine_config cfg;
  REQUIRE_OK(trunkline_engine_config_default(&cfg, sizeof cfg));
  cfg.max_sessions = 0;
  trunkline_engine *untouched = (trunkline_engine *)&cfg;
  CHECK_RESULT(trunkline_engine_new(&cfg, &untouched), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  CHECK(untouched == (trunkline_engine *)&cfg);
}

static void session_round_trip(uint32_t workers) {
  trunkline_engine_config ecfg;
  REQUIRE_OK(trunkline_engine_config_default(&ecfg, sizeof ecfg));
  ecfg.workers_per_core = false;
  ecfg.workers = workers;
  ecfg.max_sessions = 2;
  trunkline_engine *e = NULL;
  REQUIRE_OK(trunkline_engine_new(&ecfg, &e));

  trunkline_session *a = NULL;
  trunkline_session *b = NULL;
  CHECK_OK(trunkline_session_open(e, NULL, &a));
  trunkline_session_config cfg;
  REQUIRE_OK(trunkline_session_config_default(&cfg, sizeof cfg));
  cfg.agent_rate = 8000;
  CHECK_OK(trunkline_session_open(e, &cfg, &b));
  CHECK(a != NULL && b != NULL && a != b);
  CHECK_OK(trunkline_session_close(a));
  CHECK_OK(trunkline_session_close(a)); /* twice is fine */
  trunkline_session_free(a);
  /* The slot is free again; b is freed without closing (free closes). */
  trunkline_session *c = NULL;
  CHECK_OK(trunkline_session_open(e, &cfg, &c));
  trunkline_session_free(b);
  trunkline_session_free(c);
  trunkline_engine_free(e);
}

void test_session_lifecycle(void) {
  session_round_trip(0);
  session_round_trip(1);
}

void test_free_null_is_a_noop(void) {
  trunkline_engine_free(NULL);
  trunkline_session_free(NULL);
  CHECK(1);
}

void test_stats_names(void) {
  size_t n = trunkline_session_stats_count();
  CHECK(n >= 30);
  REQUIRE(n <= 64);
  for (size_t i = 0; i < n; i++) {
    const char *name = trunkline_session_stats_name(i);
    REQUIRE(name != NULL);
    CHECK(strlen(name) > 0);
    for (size_t j = 0; j < i; j++) CHECK(strcmp(name, trunkline_session_stats_name(j)) != 0);
  }
  CHECK(trunkline_session_stats_name(n) == NULL);
  CHECK(trunkline_session_stats_name(SIZE_MAX) == NULL);
  const char *needed[] = {"frames_duplicate", "gap_fill_samples", "agent_samples_out", "frames_out",
                          "marks_cleared", "protocol_errors"};
  for (size_t k = 0; k < sizeof needed / sizeof needed[0]; k++) {
    bool found = false;
    for (size_t i = 0; i < n; i++) found |= strcmp(trunkline_session_stats_name(i), needed[k]) == 0;
    CHECK(found);
  }
}

void test_codecs(void) {
  uint8_t codes[256];
  int16_t pcm[256];
  uint8_t back[256];
  for (int i = 0; i < 256; i++) codes[i] = (uint8_t)i;

  /* µ-law (G.711): 0xFF and 0x7F are zero, 0x80 / 0x00 the extremes. */
  REQUIRE_OK(trunkline_ulaw_decode(codes, 256, pcm, 256));
  CHECK_EQ(pcm[0xFF], 0);
  CHECK_EQ(pcm[0x7F], 0);
  CHECK_EQ(pcm[0x80], 32124);
  CHECK_EQ(pcm[0x00], -32124);
  REQUIRE_OK(trunkline_ulaw_encode(pcm, 256, back, 256));
  for (int i = 0; i < 256; i++)
    if (i != 0x7F) CHECK_EQ(back[i], i); /* 0x7F is "negative zero": encodes as 0xFF */
  CHECK_EQ(back[0x7F], 0xFF);

  /* A-law: 0xD5 / 0x55 are +8 / -8; every code round-trips. */
  REQUIRE_OK(trunkline_alaw_decode(codes, 256, pcm, 256));
  CHECK_EQ(pcm[0xD5], 8);
  CHECK_EQ(pcm[0x55], -8);
  REQUIRE_OK(trunkline_alaw_encode(pcm, 256, back, 256));
  for (int i = 0; i < 256; i++) CHECK_EQ(back[i], i);

  /* A sine survives a round trip at about its level. */
  int16_t tone[800];
  int16_t decoded[800];
  uint8_t enc[800];
  sine(tone, 800, 8000, 1000, 12000);
  REQUIRE_OK(trunkline_ulaw_encode(tone, 800, enc, 800));
  REQUIRE_OK(trunkline_ulaw_decode(enc, 800, decoded, 800));
  double want = rms_s16(tone, 800);
  CHECK(rms_s16(decoded, 800) > want * 0.97 && rms_s16(decoded, 800) < want * 1.03);

  /* A larger output buffer is fine; only `len` elements are written. */
  int16_t wide[4] = {7, 7, 7, 7};
  uint8_t two[2] = {0xFF, 0x80};
  REQUIRE_OK(trunkline_ulaw_decode(two, 2, wide, 4));
  CHECK_EQ(wide[0], 0);
  CHECK_EQ(wide[1], 32124);
  CHECK_EQ(wide[2], 7);
}

void test_wakeup_fd(void) {
  trunkline_engine_config cfg;
  REQUIRE_OK(trunkline_engine_config_default(&cfg, sizeof cfg));
  cfg.workers_per_core = false;
  cfg.workers = 1;
  trunkline_engine *e = NULL;
  REQUIRE_OK(trunkline_engine_new(&cfg, &e));
  int32_t fd = -1;
  CHECK_OK(trunkline_engine_wakeup_fd(e, &fd));
  CHECK_RESULT(trunkline_engine_clear_wakeup(e), TRUNKLINE_RESULT_EMPTY);
  trunkline_session *s = NULL;
  CHECK_OK(trunkline_session_open(e, NULL, &s));
  char msg[MSG_CAP];
  msg_connected(msg, sizeof msg);
  CHECK_OK(push_text(s, msg));
  /* The worker's event makes the fd readable, as an event loop would see it. */
  struct pollfd p = {fd, POLLIN, 0};
  CHECK_EQ(poll(&p, 1, 5000), 1);
  CHECK(p.revents & POLLIN);
  CHECK_OK(trunkline_engine_clear_wakeup(e));
  CHECK_RESULT(trunkline_engine_clear_wakeup(e), TRUNKLINE_RESULT_EMPTY);
  CHECK_EQ(poll(&p, 1, 0), 0);
  trunkline_event ev = {.struct_size = sizeof ev};
  CHECK_OK(trunkline_session_poll_event(s, &ev));
  CHECK_EQ(ev.kind, TRUNKLINE_EVENT_KIND_CONNECTED);
  trunkline_session_free(s);
  trunkline_engine_free(e);
}
