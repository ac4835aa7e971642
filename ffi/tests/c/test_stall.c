/* Bursts after a network stall through the C ABI: 0.5, 1 and 2 s of frames arrive at once while
 * the host reads caller audio every 20 ms and retries FULL pushes on its next turn. Nothing may
 * be lost: the audio read equals the µ-law decode of what was sent (decoded here from the G.711
 * formula, not by the engine), and the refusals are counted. */
#define _POSIX_C_SOURCE 200809L

#include <stdlib.h>
#include <string.h>

#include "tests.h"
#include "util.h"

/* Bursts of 25, 50 and 100 frames (0.5, 1 and 2 s of audio), arriving at these times. */
#define BURSTS 3
static const unsigned BURST_FRAMES[BURSTS] = {25, 50, 100};
static const unsigned BURST_AT_MS[BURSTS] = {0, 500, 1500};
#define TOTAL_FRAMES 175

/* G.711 µ-law decode from the ITU-T formula. */
static int16_t ulaw_formula(uint8_t code) {
  uint8_t u = (uint8_t)~code;
  int exponent = (u >> 4) & 7;
  int magnitude = ((((int)(u & 0x0F)) << 3) + 0x84) << exponent;
  int v = magnitude - 0x84;
  return (int16_t)((u & 0x80) ? -v : v);
}

/* A different byte pattern in every frame: a lost, repeated or reordered frame changes the audio. */
static void make_frames(uint8_t *audio, size_t len) {
  uint32_t x = 0x2545F491u;
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    audio[i] = (uint8_t)(x >> 24);
  }
}

void test_stall_bursts_lose_nothing(void) {
  trunkline_engine *e = engine_with_workers(1);
  REQUIRE(e != NULL);
  trunkline_session_config cfg;
  CHECK_OK(trunkline_session_config_default(&cfg, sizeof cfg));
  cfg.agent_rate = 8000; /* compared sample for sample with the formula decode */
  trunkline_session *s = NULL;
  REQUIRE_OK(trunkline_session_open(e, &cfg, &s));

  const size_t total = (size_t)TOTAL_FRAMES * FRAME_BYTES;
  uint8_t *sent = malloc(total);
  int16_t *got = malloc(total * sizeof *got);
  REQUIRE(sent != NULL && got != NULL);
  make_frames(sent, total);

  char msg[MSG_CAP];
  msg_start(msg, sizeof msg);
  CHECK_OK(push_text(s, msg));

  size_t next = 0;    /* next frame to push */
  size_t arrived = 0; /* frames the carrier has delivered so far */
  size_t read = 0;
  uint64_t refusals = 0;
  event_log *log = calloc(1, sizeof *log);
  REQUIRE(log != NULL);
  double t0 = now_ms();
  for (unsigned turn = 0; read < total; turn++) {
    double due = t0 + 20.0 * turn;
    double now = now_ms();
    if (due > now) sleep_ms((unsigned)(due - now));
    now = now_ms() - t0;
    arrived = 0;
    for (int b = 0; b < BURSTS; b++)
      if (now >= BURST_AT_MS[b]) arrived += BURST_FRAMES[b];
    while (next < arrived) {
      msg_media(msg, sizeof msg, (unsigned)next + 2, (unsigned)next + 1, (unsigned)next * 20,
                sent + next * FRAME_BYTES, FRAME_BYTES);
      trunkline_result r = push_text(s, msg);
      if (r == TRUNKLINE_RESULT_FULL) {
        refusals++;
        break; /* the rest waits for the next turn, as a socket reader would */
      }
      CHECK_OK(r);
      next++;
    }
    size_t n = 0;
    trunkline_result r = trunkline_session_read_audio(s, got + read, total - read, &n);
    CHECK(r == TRUNKLINE_RESULT_OK || r == TRUNKLINE_RESULT_EMPTY);
    if (r == TRUNKLINE_RESULT_OK) read += n;
    log->count = 0;
    drain_events(s, log);
    if (now_ms() - t0 > 60000) {
      tl_fail(__FILE__, __LINE__, "only %zu of %zu samples arrived", read, total);
      break;
    }
  }

  CHECK_EQ(read, total);
  size_t mismatches = 0;
  for (size_t i = 0; i < read && i < total; i++) mismatches += got[i] != ulaw_formula(sent[i]);
  CHECK_EQ(mismatches, 0);
  call_result *res = calloc(1, sizeof *res);
  REQUIRE(res != NULL);
  read_stats(s, res);
  CHECK_EQ(stat_by_name(res->stats, res->stat_count, "agent_samples_dropped"), 0);
  CHECK_EQ(stat_by_name(res->stats, res->stat_count, "events_dropped"), 0);
  CHECK_EQ(stat_by_name(res->stats, res->stat_count, "media_frames_in"), TOTAL_FRAMES);
  /* The 2 s burst does not fit the inbound ring: FULL was returned and counted. */
  CHECK(refusals > 0);
  CHECK_EQ(stat_by_name(res->stats, res->stat_count, "messages_refused_full"), refusals);

  free(res);
  free(log);
  free(got);
  free(sent);
  trunkline_session_free(s);
  trunkline_engine_free(e);
}
