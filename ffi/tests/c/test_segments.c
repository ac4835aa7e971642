/* Segments: the played position per host-named segment, against a simulated carrier on the
 * manual clock. The carrier plays what it receives in real time after a jitter delay, echoes
 * marks (the engine's hidden sync marks) once the audio before them has played, and drops its
 * buffer on `clear`. Segments A, B and C have their own levels, so the carrier knows from the
 * samples at its playhead which segment is heard and how much of it: the truth INTERRUPTED is held
 * to. Also queued_ms, the unheard tags and the errors. */
#define _POSIX_C_SOURCE 200809L

#include <stdlib.h>
#include <string.h>

#include "tests.h"
#include "util.h"

#define TICK_US 5000
#define JITTER_US 60000
#define MAX_FRAMES 128
#define MAX_MARKS 16

static const int16_t LEVELS[3] = {1000, 3000, 6000};
static const char *TAGS[3] = {"A", "B", "C"};

/* G.711 µ-law decode from the ITU-T formula, independent of the library. */
static int16_t ulaw_decode(uint8_t code) {
  uint8_t u = (uint8_t)~code;
  int exponent = (u >> 4) & 7;
  int magnitude = ((((int)(u & 0x0F)) << 3) + 0x84) << exponent;
  int v = magnitude - 0x84;
  return (int16_t)((u & 0x80) ? -v : v);
}

typedef struct {
  uint64_t play_end_us;
  uint64_t frame_start[MAX_FRAMES];
  uint8_t frame[MAX_FRAMES][FRAME_BYTES];
  size_t frame_len[MAX_FRAMES];
  size_t frames;
  uint64_t mark_due[MAX_MARKS];
  char mark_name[MAX_MARKS][300];
  size_t marks;
  unsigned seq;
} carrier;

/* Which segment (0-2) a sample belongs to, or -1 (silence). */
static int segment_of(int16_t v) {
  for (int i = 0; i < 3; i++) {
    if (abs(v - LEVELS[i]) < LEVELS[i] / 8) return i;
  }
  return -1;
}

/* The segment heard last by `now_us` (-1: none) and how many ms of it were heard. */
static int truth(const carrier *c, uint64_t now_us, uint64_t *ms) {
  int current = -1;
  uint64_t count[3] = {0, 0, 0};
  for (size_t f = 0; f < c->frames; f++) {
    uint64_t played = now_us > c->frame_start[f] ? (now_us - c->frame_start[f]) / 125 : 0;
    if (played > c->frame_len[f]) played = c->frame_len[f];
    for (size_t i = 0; i < played; i++) {
      int seg = segment_of(ulaw_decode(c->frame[f][i]));
      if (seg >= 0) {
        current = seg;
        count[seg]++;
      }
    }
  }
  *ms = current >= 0 ? count[current] / 8 : 0;
  return current;
}

/* Sends the carrier what the session has for it, echoes the marks due, polls events into `log`. */
static void exchange(trunkline_session *s, carrier *c, uint64_t now_us, event_log *log) {
  uint8_t buf[MSG_CAP];
  size_t len = 0;
  trunkline_message_kind kind;
  char echoes[MAX_MARKS][300];
  size_t n_echoes = 0;
  while (trunkline_session_next_outbound(s, buf, sizeof buf, &len, &kind) == TRUNKLINE_RESULT_OK) {
    outbound_msg m;
    parse_outbound(buf, len, &m);
    if (m.kind == OUT_MEDIA && c->frames < MAX_FRAMES) {
      uint64_t begin = c->play_end_us > now_us + JITTER_US ? c->play_end_us : now_us + JITTER_US;
      c->frame_start[c->frames] = begin;
      memcpy(c->frame[c->frames], m.payload, m.payload_len);
      c->frame_len[c->frames] = m.payload_len;
      c->frames++;
      c->play_end_us = begin + m.payload_len * 125;
    } else if (m.kind == OUT_MARK && c->marks < MAX_MARKS) {
      c->mark_due[c->marks] = c->play_end_us > now_us ? c->play_end_us : now_us;
      strcpy(c->mark_name[c->marks++], m.name);
    } else if (m.kind == OUT_CLEAR) {
      for (size_t f = 0; f < c->frames; f++) {
        uint64_t played = now_us > c->frame_start[f] ? (now_us - c->frame_start[f]) / 125 : 0;
        if (played < c->frame_len[f]) c->frame_len[f] = played;
      }
      c->play_end_us = now_us;
      for (size_t i = 0; i < c->marks; i++) c->mark_due[i] = now_us;
    }
  }
  size_t kept = 0;
  for (size_t i = 0; i < c->marks; i++) {
    if (c->mark_due[i] <= now_us) {
      strcpy(echoes[n_echoes++], c->mark_name[i]);
    } else {
      if (kept != i) {
        c->mark_due[kept] = c->mark_due[i];
        strcpy(c->mark_name[kept], c->mark_name[i]);
      }
      kept++;
    }
  }
  c->marks = kept;
  char msg[MSG_CAP];
  for (size_t i = 0; i < n_echoes; i++) {
    msg_mark(msg, sizeof msg, ++c->seq, echoes[i]);
    CHECK_OK(push_text(s, msg));
  }
  drain_audio(s, NULL);
  drain_events(s, log);
}

void test_segments_interrupt_mid_segment(void) {
  trunkline_engine *e = manual_clock_engine();
  REQUIRE(e != NULL);
  trunkline_session *s = NULL;
  REQUIRE_OK(trunkline_session_open(e, NULL, &s));
  char msg[MSG_CAP];
  msg_start(msg, sizeof msg);
  CHECK_OK(push_text(s, msg));
  static event_log log;
  log.count = 0;
  drain_events(s, &log);

  CHECK_RESULT(trunkline_session_begin_segment(s, NULL), TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK_RESULT(trunkline_session_begin_segment(s, ""), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  char long_tag[65];
  memset(long_tag, 'x', 64);
  long_tag[64] = 0;
  CHECK_RESULT(trunkline_session_begin_segment(s, long_tag), TRUNKLINE_RESULT_INVALID_ARGUMENT);

  const size_t ms[3] = {500, 300, 400};
  static int16_t pcm[500 * 8];
  for (int i = 0; i < 3; i++) {
    CHECK_OK(trunkline_session_begin_segment(s, TAGS[i]));
    for (size_t k = 0; k < ms[i] * 8; k++) pcm[k] = LEVELS[i];
    size_t taken = 0;
    CHECK_OK(trunkline_session_play(s, pcm, ms[i] * 8, 8000, &taken));
    CHECK_EQ(taken, ms[i] * 8);
  }
  uint64_t queued = 0;
  CHECK_OK(trunkline_session_queued_ms(s, &queued));
  CHECK_EQ(queued, 1200);
  CHECK_RESULT(trunkline_session_queued_ms(s, NULL), TRUNKLINE_RESULT_NULL_PARAMETER);

  static carrier c;
  memset(&c, 0, sizeof c);
  c.seq = 1000;
  uint64_t now_us = 0;
  uint64_t heard_ms = 0;
  exchange(s, &c, now_us, &log);
  while (truth(&c, now_us, &heard_ms) != 1 || heard_ms < 120) {
    REQUIRE(now_us < 2000000);
    CHECK_OK(trunkline_engine_advance_clock(e, TICK_US));
    now_us += TICK_US;
    exchange(s, &c, now_us, &log);
  }
  size_t before = log.count;
  CHECK_OK(trunkline_session_interrupt(s));
  exchange(s, &c, now_us, &log);
  size_t i = find_event(&log, before, TRUNKLINE_EVENT_KIND_INTERRUPTED);
  REQUIRE(i != SIZE_MAX);
  const trunkline_event *ev = &log.items[i];
  CHECK(strcmp(ev->segment, "B") == 0);
  long long diff = (long long)ev->segment_played_ms - (long long)heard_ms;
  if (diff < -20 || diff > 20) {
    tl_fail(__FILE__, __LINE__, "reported %lld ms of B, the caller heard %llu ms",
            (long long)ev->segment_played_ms, (unsigned long long)heard_ms);
  }
  CHECK(ev->segment_played_ms <= 300);
  CHECK_EQ(ev->unheard_segments, 1);
  char tag[TRUNKLINE_SEGMENT_TAG_CAPACITY];
  size_t tag_len = 0;
  CHECK_OK(trunkline_session_unheard_segment(s, 0, tag, sizeof tag, &tag_len));
  CHECK(strcmp(tag, "C") == 0);
  CHECK_EQ(tag_len, 1);
  CHECK_RESULT(trunkline_session_unheard_segment(s, 0, tag, 1, &tag_len),
               TRUNKLINE_RESULT_BUFFER_TOO_SMALL);
  CHECK_RESULT(trunkline_session_unheard_segment(s, 1, tag, sizeof tag, &tag_len),
               TRUNKLINE_RESULT_EMPTY);

  /* Everything was dropped: nothing is queued any more. */
  CHECK_OK(trunkline_session_queued_ms(s, &queued));
  CHECK_EQ(queued, 0);

  /* With nothing begun since, the next interrupt names no segment. */
  before = log.count;
  CHECK_OK(trunkline_session_interrupt(s));
  exchange(s, &c, now_us, &log);
  i = find_event(&log, before, TRUNKLINE_EVENT_KIND_INTERRUPTED);
  REQUIRE(i != SIZE_MAX);
  CHECK_EQ(log.items[i].segment[0], 0);
  CHECK_EQ(log.items[i].segment_played_ms, -1);
  CHECK_EQ(log.items[i].unheard_segments, 0);

  trunkline_session_free(s);
  trunkline_engine_free(e);
}

void test_segments_not_heard_yet(void) {
  trunkline_engine *e = manual_clock_engine();
  REQUIRE(e != NULL);
  trunkline_session *s = NULL;
  REQUIRE_OK(trunkline_session_open(e, NULL, &s));
  char msg[MSG_CAP];
  msg_start(msg, sizeof msg);
  CHECK_OK(push_text(s, msg));
  static event_log log;
  log.count = 0;
  drain_events(s, &log);
  static int16_t pcm[800];
  for (int i = 0; i < 3; i++) {
    CHECK_OK(trunkline_session_begin_segment(s, TAGS[i]));
    size_t taken = 0;
    CHECK_OK(trunkline_session_play(s, pcm, 800, 8000, &taken));
  }
  size_t before = log.count;
  CHECK_OK(trunkline_session_interrupt(s));
  drain_events(s, &log);
  size_t i = find_event(&log, before, TRUNKLINE_EVENT_KIND_INTERRUPTED);
  REQUIRE(i != SIZE_MAX);
  /* A was queued, but nothing of it heard: -1, not 0. */
  CHECK(strcmp(log.items[i].segment, "A") == 0);
  CHECK_EQ(log.items[i].segment_played_ms, -1);
  CHECK_EQ(log.items[i].unheard_segments, 2);
  trunkline_session_free(s);
  trunkline_engine_free(e);
}
