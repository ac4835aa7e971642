/* Agent audio as Ogg Opus (trunkline_session_play_encoded): a 1 kHz tone written as a WAV and
 * encoded by opusenc (opus-tools) at test time, fed in chunks of 1, 13 and 4096 bytes on the
 * manual clock. The carrier's µ-law, decoded by the ITU-T formula, must hold the tone (its length,
 * its power at 1 kHz against 2.5 kHz) and be the same whatever the chunking. Corrupt input gives
 * BAD_AUDIO and is counted; PCM plays after it. */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests.h"
#include "util.h"

#define TONE_RATE 48000
#define TONE_SAMPLES 48000 /* 1 s */
#define HEARD_CAP 16000
#define PI 3.14159265358979323846

static int16_t ulaw_decode(uint8_t code) {
  uint8_t u = (uint8_t)~code;
  int exponent = (u >> 4) & 7;
  int magnitude = ((((int)(u & 0x0F)) << 3) + 0x84) << exponent;
  int v = magnitude - 0x84;
  return (int16_t)((u & 0x80) ? -v : v);
}

static void put_le(FILE *f, uint32_t v, int bytes) {
  for (int i = 0; i < bytes; i++) fputc((int)((v >> (8 * i)) & 0xFF), f);
}

/* Writes the tone as a WAV, encodes it with opusenc; returns the Ogg Opus bytes (NULL on
 * failure). In a directory of its own: the test command runs this binary three times at once. */
static uint8_t *tone_ogg_opus(size_t *len) {
  char dir[] = "/tmp/trunkline-opus-XXXXXX";
  if (mkdtemp(dir) == NULL) return NULL;
  char wav[64], opus[64], cmd[192];
  snprintf(wav, sizeof wav, "%s/tone.wav", dir);
  snprintf(opus, sizeof opus, "%s/tone.opus", dir);
  snprintf(cmd, sizeof cmd, "opusenc --quiet %s %s", wav, opus);
  uint8_t *data = NULL;
  FILE *f = fopen(wav, "wb");
  if (f == NULL) goto done;
  fputs("RIFF", f);
  put_le(f, 36 + TONE_SAMPLES * 2, 4);
  fputs("WAVEfmt ", f);
  put_le(f, 16, 4);
  put_le(f, 1, 2);
  put_le(f, 1, 2);
  put_le(f, TONE_RATE, 4);
  put_le(f, TONE_RATE * 2, 4);
  put_le(f, 2, 2);
  put_le(f, 16, 2);
  fputs("data", f);
  put_le(f, TONE_SAMPLES * 2, 4);
  for (int i = 0; i < TONE_SAMPLES; i++) {
    int16_t v = (int16_t)lround(16000.0 * sin(2.0 * PI * 1000.0 * i / TONE_RATE));
    put_le(f, (uint16_t)v, 2);
  }
  fclose(f);
  if (system(cmd) != 0) goto done;
  f = fopen(opus, "rb");
  if (f == NULL) goto done;
  data = malloc(1 << 16);
  *len = data ? fread(data, 1, 1 << 16, f) : 0;
  fclose(f);
done:
  remove(wav);
  remove(opus);
  rmdir(dir);
  return data;
}

/* Power at `freq` Hz of 8 kHz samples (Goertzel). */
static double goertzel(const int16_t *x, size_t n, double freq) {
  double coeff = 2.0 * cos(2.0 * PI * freq / 8000.0), s1 = 0, s2 = 0;
  for (size_t i = 0; i < n; i++) {
    double s = x[i] + coeff * s1 - s2;
    s2 = s1;
    s1 = s;
  }
  return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / ((double)n * (double)n);
}

typedef struct {
  trunkline_engine *e;
  trunkline_session *s;
  int16_t heard[HEARD_CAP];
  size_t heard_len;
} opus_call;

static void call_open(opus_call *c) {
  c->heard_len = 0;
  c->e = manual_clock_engine();
  REQUIRE(c->e != NULL);
  REQUIRE_OK(trunkline_session_open(c->e, NULL, &c->s));
  char msg[MSG_CAP];
  msg_connected(msg, sizeof msg);
  REQUIRE_OK(push_text(c->s, msg));
  msg_start(msg, sizeof msg);
  REQUIRE_OK(push_text(c->s, msg));
  static event_log log;
  memset(&log, 0, sizeof log);
  drain_events(c->s, &log);
}

/* Moves time on 10 ms and takes what the carrier is sent. */
static void call_tick(opus_call *c) {
  REQUIRE_OK(trunkline_engine_advance_clock(c->e, 10000));
  uint8_t buf[MSG_CAP];
  size_t len = 0;
  trunkline_message_kind kind;
  while (trunkline_session_next_outbound(c->s, buf, sizeof buf, &len, &kind) == TRUNKLINE_RESULT_OK) {
    outbound_msg m;
    parse_outbound(buf, len, &m);
    for (size_t i = 0; m.kind == OUT_MEDIA && i < m.payload_len && c->heard_len < HEARD_CAP; i++) {
      c->heard[c->heard_len++] = ulaw_decode(m.payload[i]);
    }
  }
  static event_log log;
  log.count = 0;
  drain_events(c->s, &log);
}

static void call_play_out(opus_call *c) {
  uint64_t ms = 1;
  for (int i = 0; i < 2000 && ms > 0; i++) {
    call_tick(c);
    REQUIRE_OK(trunkline_session_queued_ms(c->s, &ms));
  }
  for (int i = 0; i < 20; i++) call_tick(c);
}

static void call_close(opus_call *c) {
  trunkline_session_free(c->s);
  trunkline_engine_free(c->e);
}

/* Feeds `data` in `chunk`-byte pieces, retrying on FULL; returns the first other error. */
static trunkline_result feed(opus_call *c, const uint8_t *data, size_t len, size_t chunk) {
  for (size_t at = 0; at < len;) {
    size_t n = len - at < chunk ? len - at : chunk;
    size_t taken = 0;
    trunkline_result r = trunkline_session_play_encoded(c->s, TRUNKLINE_CODEC_OGG_OPUS, data + at, n, 0, &taken);
    if (r == TRUNKLINE_RESULT_FULL) {
      call_tick(c);
    } else if (r != TRUNKLINE_RESULT_OK) {
      return r;
    } else {
      at += taken;
    }
  }
  trunkline_result r;
  while ((r = trunkline_session_end_encoded(c->s)) == TRUNKLINE_RESULT_FULL) call_tick(c);
  return r;
}

/* The counter `name` of the session. */
static uint64_t counter(trunkline_session *s, const char *name) {
  uint64_t values[128];
  size_t n = 0;
  if (trunkline_session_stats(s, values, 128, &n) != TRUNKLINE_RESULT_OK) return UINT64_MAX;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(trunkline_session_stats_name(i), name) == 0) return values[i];
  }
  return UINT64_MAX;
}

void test_opus_ogg_in_chunks(void) {
  size_t len = 0;
  uint8_t *ogg = tone_ogg_opus(&len);
  REQUIRE(ogg != NULL && len > 1000);
  static opus_call first, c;
  const size_t chunks[3] = {4096, 13, 1};
  for (int k = 0; k < 3; k++) {
    opus_call *call = k == 0 ? &first : &c;
    call_open(call);
    CHECK_RESULT(feed(call, ogg, len, chunks[k]), TRUNKLINE_RESULT_OK);
    call_play_out(call);
    CHECK(counter(call->s, "encoded_audio_errors") == 0);
    if (k == 0) {
      /* 1 s at 8 kHz (pre-skip and end trimmed), padded to whole 20 ms frames. */
      size_t from = 0, to = call->heard_len;
      while (from < to && abs(call->heard[from]) < 64) from++;
      while (to > from && abs(call->heard[to - 1]) < 64) to--;
      CHECK(to - from >= 7990 && to - from <= 8010);
      double tone = goertzel(call->heard + from + 2000, 4000, 1000.0);
      double off = goertzel(call->heard + from + 2000, 4000, 2500.0);
      CHECK(tone > 1000.0 * off);
      CHECK(sqrt(tone) > 0.3 * 16000.0); /* about half the amplitude: a sine's Goertzel peak */
    } else {
      CHECK(call->heard_len == first.heard_len);
      CHECK(memcmp(call->heard, first.heard, first.heard_len * sizeof(int16_t)) == 0);
      call_close(call);
    }
  }
  call_close(&first);

  /* A flipped byte: the page's CRC fails; counted; PCM still plays. */
  ogg[len / 2] ^= 0x10;
  call_open(&c);
  CHECK_RESULT(feed(&c, ogg, len, 100), TRUNKLINE_RESULT_BAD_AUDIO);
  CHECK(counter(c.s, "encoded_audio_errors") == 1);
  /* Truncated mid-page. */
  ogg[len / 2] ^= 0x10;
  CHECK_RESULT(feed(&c, ogg, len - 10, 100), TRUNKLINE_RESULT_BAD_AUDIO);
  CHECK(counter(c.s, "encoded_audio_errors") == 2);
  call_play_out(&c);
  size_t before = c.heard_len;
  int16_t pcm[1600];
  sine(pcm, 1600, 8000, 1000.0, 8000.0);
  size_t taken = 0;
  CHECK_RESULT(trunkline_session_play(c.s, pcm, 1600, 8000, &taken), TRUNKLINE_RESULT_OK);
  CHECK(taken == 1600);
  call_play_out(&c);
  CHECK(c.heard_len - before >= 1600);
  CHECK(rms_s16(c.heard + before, c.heard_len - before) > 2000.0);
  /* Argument errors. */
  CHECK_RESULT(trunkline_session_play_encoded(c.s, 7, ogg, len, 0, &taken), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  CHECK_RESULT(trunkline_session_play_encoded(c.s, TRUNKLINE_CODEC_OPUS, ogg, 10, 44100, &taken),
               TRUNKLINE_RESULT_INVALID_ARGUMENT);
  CHECK_RESULT(trunkline_session_play_encoded(c.s, TRUNKLINE_CODEC_OGG_OPUS, NULL, 5, 0, &taken),
               TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK_RESULT(trunkline_session_play_encoded(c.s, TRUNKLINE_CODEC_OGG_OPUS, NULL, 0, 0, &taken), TRUNKLINE_RESULT_OK);
  CHECK(taken == 0);
  CHECK_RESULT(trunkline_session_end_encoded(NULL), TRUNKLINE_RESULT_NULL_PARAMETER);
  call_close(&c);
  free(ogg);
}
