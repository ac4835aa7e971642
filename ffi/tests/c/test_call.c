/* A whole Twilio call through the C ABI, inline and threaded: caller audio from the committed
 * speech fixture (with a lost and a duplicated frame), speech events against the fixture's labels,
 * the start message's strings, agent audio paced out as Twilio media messages (decoded and
 * measured), marks, an interrupt, DTMF and stop. */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests.h"
#include "util.h"

/* Frames of the fixture streamed: 10.6 s (all four utterances), or 6 s (two) in --short mode. */
#define FULL_FRAMES 530
#define SHORT_FRAMES 300
#define GAP_FRAME 30 /* 600 ms: before the first utterance */
#define DUP_FRAME 20
#define AGENT_RATE 16000
#define PLAY_RATE 24000
#define AGENT_AMPLITUDE 8000.0

/* The strings and numbers of the start message, once STARTED was polled. */
static void check_start(trunkline_session *s) {
  char buf[128];
  size_t len = 0;
  CHECK_OK(trunkline_session_start_string(s, TRUNKLINE_START_FIELD_CALL_ID, buf, sizeof buf, &len));
  CHECK(strcmp(buf, CALL_SID) == 0);
  CHECK_EQ(len, strlen(CALL_SID));
  CHECK_OK(trunkline_session_start_string(s, TRUNKLINE_START_FIELD_STREAM_ID, buf, sizeof buf, &len));
  CHECK(strcmp(buf, STREAM_SID) == 0);
  CHECK_OK(trunkline_session_start_string(s, TRUNKLINE_START_FIELD_ACCOUNT_ID, buf, sizeof buf, &len));
  CHECK(strcmp(buf, ACCOUNT_SID) == 0);

  trunkline_start_info info = {.struct_size = sizeof info};
  CHECK_OK(trunkline_session_start_info(s, &info));
  CHECK_EQ(info.struct_size, sizeof info);
  CHECK_EQ(info.tracks, 1);
  CHECK_EQ(info.encoding, TRUNKLINE_AUDIO_ENCODING_MULAW);
  CHECK_EQ(info.sample_rate, 8000);
  CHECK_EQ(info.channels, 1);
  CHECK_EQ(info.custom_parameter_count, 2);

  char key[64];
  char value[64];
  size_t klen = 0;
  size_t vlen = 0;
  CHECK_OK(trunkline_session_custom_parameter(s, 0, key, sizeof key, &klen, value, sizeof value, &vlen));
  CHECK(strcmp(key, "caller") == 0 && strcmp(value, "+15550100") == 0);
  CHECK_EQ(klen, 6);
  CHECK_EQ(vlen, 9);
  CHECK_OK(trunkline_session_custom_parameter(s, 1, key, sizeof key, &klen, value, sizeof value, &vlen));
  CHECK(strcmp(key, "lang") == 0 && strcmp(value, "en-GB") == 0);
  CHECK_RESULT(trunkline_session_custom_parameter(s, 2, key, sizeof key, &klen, value, sizeof value, &vlen),
               TRUNKLINE_RESULT_EMPTY);
}

/* Takes every outbound message now; returns how many (at most `cap` are kept). */
static size_t take_outbound(trunkline_session *s, outbound_msg *out, size_t cap) {
  uint8_t buf[MSG_CAP];
  size_t len = 0;
  size_t n = 0;
  trunkline_message_kind kind;
  while (trunkline_session_next_outbound(s, buf, sizeof buf, &len, &kind) == TRUNKLINE_RESULT_OK) {
    CHECK_EQ(kind, TRUNKLINE_MESSAGE_KIND_TEXT);
    if (n < cap) parse_outbound(buf, len, &out[n]);
    n++;
  }
  return n;
}

/* A media message as Twilio expects it: 160 µ-law bytes in 216 base64 characters, for our
 * stream. Returns the level of its audio. */
static double check_media(const outbound_msg *m) {
  CHECK(m->stream_sid_ok);
  CHECK_EQ(m->payload_b64_len, 216);
  CHECK_EQ(m->payload_len, FRAME_BYTES);
  int16_t pcm[FRAME_BYTES];
  if (trunkline_ulaw_decode(m->payload, FRAME_BYTES, pcm, FRAME_BYTES) != TRUNKLINE_RESULT_OK) return -1;
  return rms_s16(pcm, FRAME_BYTES);
}

static const double SINE_RMS = AGENT_AMPLITUDE * 0.70710678;

void test_call_inline(void) {
  fixture fx;
  REQUIRE(fixture_load(&fx));
  call_plan plan = {&fx, FULL_FRAMES, GAP_FRAME, DUP_FRAME, '5'};
  REQUIRE(fx.len >= FULL_FRAMES * FRAME_BYTES);
  trunkline_engine *e = engine_with_workers(0);
  trunkline_session *s = NULL;
  call_result *r = calloc(1, sizeof *r);
  if (!e || !r || trunkline_session_open(e, NULL, &s) != TRUNKLINE_RESULT_OK) {
    tl_fail(__FILE__, __LINE__, "setup");
    goto done;
  }

  /* The caller: every message as it "arrives"; inline, each push does the work at once. */
  char msg[MSG_CAP];
  size_t ms = 0;
  for (size_t i = 0; i < plan_media_end(&plan); i++) {
    plan_message(&plan, i, msg, sizeof msg, &ms);
    CHECK_OK(push_text(s, msg));
    r->samples += drain_audio(s, NULL);
    drain_events(s, &r->events);
  }
  CHECK_EQ(r->samples, FULL_FRAMES * 20 * AGENT_RATE / 1000);
  check_start(s);

  /* The agent: 1 s of a 440 Hz tone at 24 kHz, then a mark. */
  static int16_t reply[PLAY_RATE];
  sine(reply, PLAY_RATE, PLAY_RATE, 440, AGENT_AMPLITUDE);
  size_t taken = 0;
  double t0 = now_ms();
  CHECK_OK(trunkline_session_play(s, reply, PLAY_RATE, PLAY_RATE, &taken));
  CHECK_EQ(taken, PLAY_RATE);
  CHECK_OK(trunkline_session_mark(s, "reply-1"));
  outbound_msg out[64];
  size_t n = take_outbound(s, out, 64);
  double elapsed = now_ms() - t0;
  /* The lead (100 ms) is all the carrier may hold: 5 frames at once, more only as time passes. */
  CHECK(n >= 5);
  CHECK(n <= 5 + (size_t)(elapsed / 20));
  for (size_t i = 0; i < n && i < 64; i++) {
    CHECK_EQ(out[i].kind, OUT_MEDIA);
    double level = check_media(&out[i]);
    /* The first frame holds the resampler's few ms of delay; the rest are the tone's level. */
    if (i > 0) CHECK(level > SINE_RMS * 0.9 && level < SINE_RMS * 1.1);
  }

  /* The agent is interrupted: queued audio dropped, the mark cleared, `clear` sent. */
  CHECK_OK(trunkline_session_interrupt(s));
  size_t first_agent_event = r->events.count;
  drain_events(s, &r->events);
  size_t at = find_event(&r->events, first_agent_event, TRUNKLINE_EVENT_KIND_INTERRUPTED);
  CHECK(at == first_agent_event);
  if (at != SIZE_MAX) CHECK(r->events.items[at].played_ms <= 100 + (uint64_t)(now_ms() - t0));
  size_t cleared = find_event(&r->events, first_agent_event, TRUNKLINE_EVENT_KIND_MARK_CLEARED);
  CHECK(cleared == first_agent_event + 1);
  if (cleared != SIZE_MAX) CHECK(strcmp(r->events.items[cleared].name, "reply-1") == 0);
  size_t n2 = take_outbound(s, out, 64);
  CHECK(n2 >= 1);
  CHECK_EQ(out[0].kind, OUT_CLEAR);
  CHECK(out[0].stream_sid_ok);
  for (size_t i = 1; i < n2 && i < 64; i++) CHECK(out[i].kind != OUT_MEDIA); /* nothing after */

  /* DTMF and stop. */
  for (size_t i = plan_media_end(&plan); i < plan_count(&plan); i++) {
    plan_message(&plan, i, msg, sizeof msg, &ms);
    CHECK_OK(push_text(s, msg));
  }
  r->samples += drain_audio(s, NULL);
  drain_events(s, &r->events);
  r->stopped = find_event(&r->events, 0, TRUNKLINE_EVENT_KIND_STOPPED) != SIZE_MAX;
  read_stats(s, r);
  check_call(&plan, r, AGENT_RATE);
  CHECK(find_event(&r->events, 0, TRUNKLINE_EVENT_KIND_DTMF) > cleared);
  uint64_t *v = r->stats;
  CHECK_EQ(stat_by_name(v, r->stat_count, "interrupts"), 1);
  CHECK_EQ(stat_by_name(v, r->stat_count, "marks_cleared"), 1);
  CHECK_EQ(stat_by_name(v, r->stat_count, "clears_sent"), 1);
  CHECK_EQ(stat_by_name(v, r->stat_count, "frames_out"), n);
  CHECK_EQ(stat_by_name(v, r->stat_count, "play_samples_in"), PLAY_RATE);
  /* What was not sent was flushed: 1 s at 8 kHz less the frames that went out. */
  CHECK_EQ(stat_by_name(v, r->stat_count, "flushed_samples"), 8000 - n * FRAME_BYTES);

done:
  trunkline_session_free(s);
  trunkline_engine_free(e);
  free(r);
  fixture_free(&fx);
}

/* Echoes marks back as the carrier does once their audio has played (here: at once). */
static void echo_marks(trunkline_engine *e, trunkline_session *s, const outbound_msg *out, size_t n,
                       unsigned *seq) {
  char msg[MSG_CAP];
  for (size_t i = 0; i < n; i++) {
    if (out[i].kind != OUT_MARK) continue;
    msg_mark(msg, sizeof msg, (*seq)++, out[i].name);
    CHECK_OK(push_text_retry(e, s, msg, 2000));
  }
}

/* Plays all of `pcm` as a host does: `play` takes what fits (the play ring is a hand-off that the
 * worker empties into its outbound queue, 2 s of 8 kHz µ-law) and the rest is played once the
 * engine has made room. Returns the samples taken (short of `n` only if it timed out). */
static size_t play_all(trunkline_engine *e, trunkline_session *s, const int16_t *pcm, size_t n, uint32_t rate) {
  size_t played = 0;
  double t0 = now_ms();
  while (played < n && now_ms() < t0 + 2000) {
    size_t taken = 0;
    trunkline_result r = trunkline_session_play(s, pcm + played, n - played, rate, &taken);
    if (r == TRUNKLINE_RESULT_OK) {
      played += taken;
    } else if (r != TRUNKLINE_RESULT_FULL) {
      tl_fail(__FILE__, __LINE__, "play: %d", (int)r);
      break;
    }
    if (played < n) trunkline_engine_wait(e, 1);
  }
  return played;
}

void test_call_threaded(void) {
  fixture fx;
  REQUIRE(fixture_load(&fx));
  size_t frames = tl_opts.short_mode ? SHORT_FRAMES : FULL_FRAMES;
  call_plan plan = {&fx, frames, GAP_FRAME, DUP_FRAME, '#'};
  trunkline_engine *e = engine_with_workers(1);
  trunkline_session *s = NULL;
  call_result *r = calloc(1, sizeof *r);
  if (!e || !r || trunkline_session_open(e, NULL, &s) != TRUNKLINE_RESULT_OK) {
    tl_fail(__FILE__, __LINE__, "setup");
    goto done;
  }
  /* The caller's audio, as fast as the engine takes it. */
  drive_threaded(e, s, &plan, AGENT_RATE, r, 0, plan_media_end(&plan), 30000);
  CHECK_EQ(r->samples, frames * 20 * AGENT_RATE / 1000);
  check_start(s);

  /* The agent says 1 s and marks it; the engine paces it out in real time. */
  static int16_t reply[PLAY_RATE];
  sine(reply, PLAY_RATE, PLAY_RATE, 440, AGENT_AMPLITUDE);
  unsigned seq = 10000;
  double t0 = now_ms();
  CHECK_EQ(play_all(e, s, reply, PLAY_RATE, PLAY_RATE), PLAY_RATE);
  CHECK_OK(trunkline_session_mark(s, "reply-1"));
  size_t media = 0;
  size_t loud = 0;
  double last_media_at = t0;
  bool mark_sent = false;
  size_t played_at = SIZE_MAX;
  size_t first_agent_event = r->events.count;
  outbound_msg out[64];
  while (now_ms() < t0 + 10000 && played_at == SIZE_MAX) {
    trunkline_engine_wait(e, 20);
    size_t n = take_outbound(s, out, 64);
    for (size_t i = 0; i < n && i < 64; i++) {
      if (out[i].kind == OUT_MEDIA) {
        CHECK(!mark_sent); /* the mark follows all of its audio */
        double level = check_media(&out[i]);
        loud += level > SINE_RMS * 0.9 && level < SINE_RMS * 1.1;
        media++;
        last_media_at = now_ms();
      } else if (out[i].kind == OUT_MARK) {
        CHECK(out[i].stream_sid_ok);
        if (strcmp(out[i].name, "reply-1") == 0) mark_sent = true;
      } else {
        tl_fail(__FILE__, __LINE__, "unexpected outbound message kind %d", (int)out[i].kind);
      }
    }
    echo_marks(e, s, out, n < 64 ? n : 64, &seq);
    r->samples += drain_audio(s, NULL);
    drain_events(s, &r->events);
    played_at = find_event(&r->events, first_agent_event, TRUNKLINE_EVENT_KIND_MARK_PLAYED);
  }
  /* 1 s at 24 kHz is 50 frames of 20 ms; all but the first (resampler delay) at the tone's level.
   * Paced: with a 100 ms lead the last frame cannot leave before 900 ms. */
  CHECK(mark_sent);
  CHECK(media == 50 || media == 51);
  CHECK(loud + 2 >= media);
  CHECK(last_media_at - t0 >= 850);
  REQUIRE(played_at != SIZE_MAX);
  CHECK(strcmp(r->events.items[played_at].name, "reply-1") == 0);
  CHECK(r->events.items[played_at].played_ms >= 980 && r->events.items[played_at].played_ms <= 1040);

  /* A second reply is interrupted once it has started. */
  CHECK_EQ(play_all(e, s, reply, PLAY_RATE, PLAY_RATE), PLAY_RATE);
  CHECK_OK(trunkline_session_mark(s, "reply-2"));
  media = 0;
  double t1 = now_ms();
  while (media == 0 && now_ms() < t1 + 5000) {
    trunkline_engine_wait(e, 20);
    size_t n = take_outbound(s, out, 64);
    for (size_t i = 0; i < n && i < 64; i++) media += out[i].kind == OUT_MEDIA;
    echo_marks(e, s, out, n < 64 ? n : 64, &seq);
  }
  CHECK(media > 0);
  CHECK_OK(trunkline_session_interrupt(s));
  bool clear_sent = false;
  size_t second = r->events.count;
  size_t interrupted = SIZE_MAX;
  size_t cleared = SIZE_MAX;
  while ((!clear_sent || cleared == SIZE_MAX) && now_ms() < t1 + 10000) {
    trunkline_engine_wait(e, 20);
    size_t n = take_outbound(s, out, 64);
    for (size_t i = 0; i < n && i < 64; i++) {
      if (out[i].kind == OUT_CLEAR) {
        CHECK(out[i].stream_sid_ok);
        clear_sent = true;
      } else if (out[i].kind == OUT_MEDIA) {
        CHECK(!clear_sent); /* nothing of the interrupted reply after the clear */
      }
    }
    drain_events(s, &r->events);
    interrupted = find_event(&r->events, second, TRUNKLINE_EVENT_KIND_INTERRUPTED);
    cleared = find_event(&r->events, second, TRUNKLINE_EVENT_KIND_MARK_CLEARED);
  }
  CHECK(clear_sent);
  CHECK(interrupted != SIZE_MAX && cleared != SIZE_MAX && interrupted < cleared);
  if (cleared != SIZE_MAX) CHECK(strcmp(r->events.items[cleared].name, "reply-2") == 0);

  /* DTMF and stop. */
  drive_threaded(e, s, &plan, AGENT_RATE, r, plan_media_end(&plan), plan_count(&plan), 10000);
  read_stats(s, r);
  check_call(&plan, r, AGENT_RATE);
  uint64_t *v = r->stats;
  CHECK_EQ(stat_by_name(v, r->stat_count, "marks_sent"), 1);
  CHECK_EQ(stat_by_name(v, r->stat_count, "marks_played"), 1);
  CHECK_EQ(stat_by_name(v, r->stat_count, "marks_cleared"), 1);
  CHECK_EQ(stat_by_name(v, r->stat_count, "interrupts"), 1);
  CHECK_EQ(stat_by_name(v, r->stat_count, "clears_sent"), 1);
  CHECK_EQ(stat_by_name(v, r->stat_count, "barge_ins"), 0);

done:
  trunkline_session_free(s);
  trunkline_engine_free(e);
  free(r);
  fixture_free(&fx);
}
