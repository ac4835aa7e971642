/* The manual clock: an inline engine whose time moves only with trunkline_engine_advance_clock.
 * Paced media goes out a lead's worth at t = 0, then exactly one frame per 20 ms advanced, however
 * much wall time passes; a whole call gives the same bytes with or without sleeps between its
 * steps; the clock may be advanced from another thread; and the errors: a config with worker
 * threads, an engine on the real clock, a step past the clock's end. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tests.h"
#include "util.h"

#define INVALID TRUNKLINE_RESULT_INVALID_ARGUMENT
#define FRAME_US 20000

/* Opens a session with `lead_ms` and takes it through connected + start; NULL on failure. */
static trunkline_session *started(trunkline_engine *e, uint32_t lead_ms) {
  trunkline_session_config cfg;
  trunkline_session *s = NULL;
  if (trunkline_session_config_default(&cfg, sizeof cfg) != TRUNKLINE_RESULT_OK) return NULL;
  cfg.lead_ms = lead_ms;
  if (trunkline_session_open(e, &cfg, &s) != TRUNKLINE_RESULT_OK) return NULL;
  char msg[MSG_CAP];
  msg_connected(msg, sizeof msg);
  bool ok = push_text(s, msg) == TRUNKLINE_RESULT_OK;
  msg_start(msg, sizeof msg);
  ok = ok && push_text(s, msg) == TRUNKLINE_RESULT_OK;
  if (!ok) {
    trunkline_session_free(s);
    return NULL;
  }
  return s;
}

/* Takes every outbound message ready now; returns how many are media. */
static size_t media_ready(trunkline_session *s) {
  uint8_t buf[MSG_CAP];
  size_t len = 0;
  size_t media = 0;
  trunkline_message_kind kind;
  while (trunkline_session_next_outbound(s, buf, sizeof buf, &len, &kind) == TRUNKLINE_RESULT_OK) {
    outbound_msg m;
    parse_outbound(buf, len, &m);
    media += m.kind == OUT_MEDIA;
  }
  return media;
}

/* Plays `ms` of a tone at 8 kHz (all of it must be taken at once). */
static bool play_ms(trunkline_session *s, size_t ms) {
  size_t n = ms * 8;
  int16_t *pcm = malloc(n * sizeof *pcm);
  if (pcm == NULL) return false;
  sine(pcm, n, 8000, 440, 6000);
  size_t taken = 0;
  trunkline_result r = trunkline_session_play(s, pcm, n, 8000, &taken);
  free(pcm);
  return r == TRUNKLINE_RESULT_OK && taken == n;
}

/* With `lead_ms` of lead and 600 ms of agent audio: lead/20 frames at t = 0, none while wall time
 * passes, then exactly one per 20 ms advanced until the 30 frames are out, then none. */
static void check_pacing(uint32_t lead_ms) {
  const size_t frames = 600 / 20;
  const size_t lead = lead_ms / 20;
  trunkline_engine *e = manual_clock_engine();
  REQUIRE(e != NULL);
  trunkline_session *s = started(e, lead_ms);
  if (s == NULL || !play_ms(s, 600)) {
    tl_fail(__FILE__, __LINE__, "setup (lead %u ms)", (unsigned)lead_ms);
    trunkline_session_free(s);
    trunkline_engine_free(e);
    return;
  }
  size_t sent = media_ready(s);
  CHECK_EQ(sent, lead);
  sleep_ms(45); /* more than two frames of wall time */
  CHECK_EQ(media_ready(s), 0);
  for (size_t step = 1; sent < frames && step <= frames; step++) {
    CHECK_OK(trunkline_engine_advance_clock(e, FRAME_US));
    size_t n = media_ready(s);
    if (n != 1) tl_fail(__FILE__, __LINE__, "lead %u ms, step %zu: %zu frames, want 1", (unsigned)lead_ms, step, n);
    sent += n;
  }
  CHECK_EQ(sent, frames);
  CHECK_OK(trunkline_engine_advance_clock(e, 10 * FRAME_US));
  CHECK_EQ(media_ready(s), 0);
  trunkline_session_free(s);
  trunkline_engine_free(e);
}

void test_manual_clock_pacing(void) {
  check_pacing(100); /* the default lead: 5 frames at once */
  check_pacing(200);
  check_pacing(40); /* the least lead */
}

/* FNV-1a over everything a call gives the host. */
static uint64_t fnv(uint64_t h, const void *data, size_t len) {
  const uint8_t *p = data;
  for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

/* One call on a manual clock: caller media with a lost frame (the reorder wait fills it once the
 * clock passes its window), agent audio with a mark, an interrupt, a stop; the clock advanced
 * 20 ms per step, and, if `sleepy`, a few ms of wall time slept between steps. Returns a hash of
 * every outbound message, event and audio sample, in order; `*counts` gets the media frames sent,
 * the samples read and the events. */
static uint64_t run_call(bool sleepy, size_t counts[3]) {
  uint64_t h = 0xcbf29ce484222325ull;
  memset(counts, 0, 3 * sizeof counts[0]);
  trunkline_engine *e = manual_clock_engine();
  trunkline_session *s = e ? started(e, 100) : NULL;
  if (s == NULL || !play_ms(s, 400) || trunkline_session_mark(s, "reply") != TRUNKLINE_RESULT_OK) {
    tl_fail(__FILE__, __LINE__, "setup");
    trunkline_session_free(s);
    trunkline_engine_free(e);
    return 0;
  }
  uint8_t frame[FRAME_BYTES];
  char msg[MSG_CAP];
  uint8_t out[MSG_CAP];
  int16_t pcm[1024];
  trunkline_event ev = {.struct_size = sizeof ev};
  for (unsigned step = 0; step < 40; step++) {
    if (step < 30 && step != 12) { /* frame 12 is lost */
      for (size_t i = 0; i < FRAME_BYTES; i++) frame[i] = (uint8_t)(step * 7 + i);
      msg_media(msg, sizeof msg, step + 2, step + 1, step * 20, frame, FRAME_BYTES);
      CHECK_OK(push_text(s, msg));
    }
    if (step == 15) CHECK_OK(trunkline_session_interrupt(s));
    if (step == 16) CHECK(play_ms(s, 100));
    if (step == 35) {
      msg_stop(msg, sizeof msg, 99);
      CHECK_OK(push_text(s, msg));
    }
    size_t len = 0;
    trunkline_message_kind kind;
    while (trunkline_session_next_outbound(s, out, sizeof out, &len, &kind) == TRUNKLINE_RESULT_OK) {
      outbound_msg m;
      parse_outbound(out, len, &m);
      counts[0] += m.kind == OUT_MEDIA;
      h = fnv(h, &step, sizeof step);
      h = fnv(h, out, len);
    }
    size_t n = 0;
    while (trunkline_session_read_audio(s, pcm, sizeof pcm / sizeof pcm[0], &n) == TRUNKLINE_RESULT_OK) {
      counts[1] += n;
      h = fnv(h, &step, sizeof step);
      h = fnv(h, pcm, n * sizeof pcm[0]);
    }
    while (trunkline_session_poll_event(s, &ev) == TRUNKLINE_RESULT_OK) {
      counts[2]++;
      uint64_t fields[3] = {ev.kind, ev.stream_ms, ev.played_ms};
      h = fnv(h, &step, sizeof step);
      h = fnv(h, fields, sizeof fields);
      h = fnv(h, ev.name, strlen(ev.name));
    }
    if (sleepy) sleep_ms(3 + step % 5);
    CHECK_OK(trunkline_engine_advance_clock(e, FRAME_US));
  }
  trunkline_session_free(s);
  trunkline_engine_free(e);
  return h;
}

void test_manual_clock_is_deterministic(void) {
  size_t fast[3];
  size_t slow[3];
  uint64_t a = run_call(false, fast);
  uint64_t b = run_call(true, slow);
  CHECK(a == b);
  for (int i = 0; i < 3; i++) CHECK_EQ(fast[i], slow[i]);
  /* The caller's 30 frames at 16 kHz, the lost one filled. */
  CHECK_EQ(fast[1], 30 * 320);
  /* Connected, started, interrupted, the cleared mark, stopped at least. */
  CHECK(fast[2] >= 5);
  /* 5 frames at t = 0 and one per step to the interrupt at step 15, then 100 ms more. */
  CHECK_EQ(fast[0], 5 + 15 + 5);
}

typedef struct {
  trunkline_engine *engine;
  unsigned steps;
  trunkline_result last;
} advancer;

static void *advance_steps(void *arg) {
  advancer *a = arg;
  for (unsigned i = 0; i < a->steps; i++) a->last = trunkline_engine_advance_clock(a->engine, FRAME_US);
  return NULL;
}

void test_manual_clock_advanced_from_another_thread(void) {
  trunkline_engine *e = manual_clock_engine();
  REQUIRE(e != NULL);
  trunkline_session *s = started(e, 100);
  if (s == NULL || !play_ms(s, 600)) {
    tl_fail(__FILE__, __LINE__, "setup");
    trunkline_session_free(s);
    trunkline_engine_free(e);
    return;
  }
  CHECK_EQ(media_ready(s), 5);
  /* Two threads advance 20 ms each, twice: 80 ms in all, seen by the session on this thread. */
  advancer a = {e, 2, TRUNKLINE_RESULT_PANIC};
  advancer b = {e, 2, TRUNKLINE_RESULT_PANIC};
  pthread_t ta;
  pthread_t tb;
  REQUIRE(pthread_create(&ta, NULL, advance_steps, &a) == 0);
  REQUIRE(pthread_create(&tb, NULL, advance_steps, &b) == 0);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  CHECK_OK(a.last);
  CHECK_OK(b.last);
  CHECK_EQ(media_ready(s), 4);
  CHECK_OK(trunkline_engine_advance_clock(e, FRAME_US));
  CHECK_EQ(media_ready(s), 1);
  trunkline_session_free(s);
  trunkline_engine_free(e);
}

void test_manual_clock_errors(void) {
  trunkline_engine_config cfg;
  REQUIRE_OK(trunkline_engine_config_default(&cfg, sizeof cfg));
  trunkline_engine *untouched = (trunkline_engine *)&cfg;
  trunkline_engine *e = untouched;

  /* Worker threads: one per core (the defaults, also as NULL), or a number of them. */
  CHECK(cfg.workers_per_core);
  CHECK_RESULT(trunkline_engine_new_manual_clock(&cfg, &e), INVALID);
  CHECK_RESULT(trunkline_engine_new_manual_clock(NULL, &e), INVALID);
  cfg.workers_per_core = false;
  cfg.workers = 1;
  CHECK_RESULT(trunkline_engine_new_manual_clock(&cfg, &e), INVALID);
  cfg.workers = 0;
  cfg.workers_per_core = true; /* `workers` is ignored then: still threaded */
  CHECK_RESULT(trunkline_engine_new_manual_clock(&cfg, &e), INVALID);
  cfg.workers_per_core = false;
  CHECK(e == untouched);
  CHECK_RESULT(trunkline_engine_new_manual_clock(&cfg, NULL), TRUNKLINE_RESULT_NULL_PARAMETER);

  /* The config rules of trunkline_engine_new: bad sizes and values are refused; an older struct,
   * without worker_nice, is read. */
  const size_t bad_sizes[] = {0, 1, sizeof(size_t) - 1, sizeof cfg + 1, SIZE_MAX};
  for (size_t i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++) {
    cfg.struct_size = bad_sizes[i];
    CHECK_RESULT(trunkline_engine_new_manual_clock(&cfg, &e), INVALID);
  }
  cfg.struct_size = sizeof cfg;
  cfg.max_sessions = 0;
  CHECK_RESULT(trunkline_engine_new_manual_clock(&cfg, &e), INVALID);
  cfg.max_sessions = 4;
  CHECK(e == untouched);
  cfg.struct_size = offsetof(trunkline_engine_config, worker_nice);
  cfg.worker_nice = 100; /* not read */
  REQUIRE_OK(trunkline_engine_new_manual_clock(&cfg, &e));
  REQUIRE(e != untouched && e != NULL);

  /* Advancing: NULL; a step past the clock's end (nothing moves); an engine on the real clock. */
  CHECK_RESULT(trunkline_engine_advance_clock(NULL, FRAME_US), TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK_OK(trunkline_engine_advance_clock(e, 0));
  CHECK_RESULT(trunkline_engine_advance_clock(e, UINT64_MAX), INVALID);
  CHECK_OK(trunkline_engine_advance_clock(e, ((uint64_t)1 << 62) - 1));
  CHECK_RESULT(trunkline_engine_advance_clock(e, 1), INVALID);
  trunkline_engine_free(e);
  for (uint32_t workers = 0; workers <= 1; workers++) {
    trunkline_engine *real = engine_with_workers(workers);
    REQUIRE(real != NULL);
    CHECK_RESULT(trunkline_engine_advance_clock(real, FRAME_US), INVALID);
    CHECK_RESULT(trunkline_engine_advance_clock(real, 0), INVALID);
    trunkline_engine_free(real);
  }
}
