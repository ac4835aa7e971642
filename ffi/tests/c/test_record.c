/*
 * Call recordings (trunkline_session_config.record_path): a short call on a manual clock, its WAV
 * read back by a RIFF parser of this file's own (the caller left, exactly as delivered; the agent
 * right, exactly as sent), and the paths refused with RECORD.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "tests.h"
#include "util.h"

#define FRAMES 100 /* 2 s of caller audio */
#define RATE 8000
#define FRAME_US 20000

/* G.711 µ-law decode from the ITU-T formula, independent of the library. */
static int16_t ulaw_to_s16(uint8_t code) {
  uint8_t u = (uint8_t)~code;
  int exponent = (u >> 4) & 7;
  int magnitude = ((((int)(u & 0x0F)) << 3) + 0x84) << exponent;
  int v = magnitude - 0x84;
  return (int16_t)((u & 0x80) ? -v : v);
}

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* A PCM WAV file, parsed: the fmt chunk's fields and the data chunk. */
typedef struct {
  uint16_t format, channels, block_align, bits;
  uint32_t rate, byte_rate;
  const uint8_t *data;
  size_t data_len;
} wav_info;

/* Walks the RIFF chunks of `b` (len bytes); false if it is not a WAV with fmt and data. */
static bool parse_wav(const uint8_t *b, size_t len, wav_info *w) {
  memset(w, 0, sizeof *w);
  if (len < 12 || memcmp(b, "RIFF", 4) != 0 || memcmp(b + 8, "WAVE", 4) != 0) return false;
  if (le32(b + 4) != len - 8) return false;
  bool fmt = false;
  for (size_t at = 12; at + 8 <= len;) {
    uint32_t size = le32(b + at + 4);
    const uint8_t *body = b + at + 8;
    if (size > len - at - 8) return false;
    if (memcmp(b + at, "fmt ", 4) == 0 && size >= 16) {
      w->format = le16(body);
      w->channels = le16(body + 2);
      w->rate = le32(body + 4);
      w->byte_rate = le32(body + 8);
      w->block_align = le16(body + 12);
      w->bits = le16(body + 14);
      fmt = true;
    } else if (memcmp(b + at, "data", 4) == 0) {
      w->data = body;
      w->data_len = size;
    }
    at += 8 + size + (size & 1);
  }
  return fmt && w->data != NULL;
}

static uint8_t *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  uint8_t *buf = NULL;
  if (fseek(f, 0, SEEK_END) == 0) {
    long n = ftell(f);
    if (n > 0 && fseek(f, 0, SEEK_SET) == 0) {
      buf = malloc((size_t)n);
      if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
      }
      *len = (size_t)n;
    }
  }
  fclose(f);
  return buf;
}

/* Entries in `dir` other than . and .. */
static size_t dir_entries(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL) return SIZE_MAX;
  size_t n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
  closedir(d);
  return n;
}

void test_record_call(void) {
  fixture f;
  REQUIRE(fixture_load(&f));
  REQUIRE(f.len >= FRAMES * FRAME_BYTES);
  char dir[] = "/tmp/trunkline-record-XXXXXX";
  REQUIRE(mkdtemp(dir) != NULL);
  char path[128];
  snprintf(path, sizeof path, "%s/call.wav", dir);
  uint8_t *sent = calloc(2 * RATE, 1); /* the agent's µ-law as sent to the carrier */
  int16_t *tone = malloc(RATE * sizeof *tone);
  REQUIRE(sent && tone);
  size_t sent_len = 0;

  /* A manual clock: the carrier plays (and the recording places) exactly 20 ms per step. */
  trunkline_engine *e = manual_clock_engine();
  REQUIRE(e != NULL);
  trunkline_session_config c;
  REQUIRE_OK(trunkline_session_config_default(&c, sizeof c));
  c.agent_rate = RATE;
  c.barge_in_enabled = false;
  c.record_path = path;
  trunkline_session *s = NULL;
  REQUIRE_OK(trunkline_session_open(e, &c, &s));
  CHECK(access(path, F_OK) == 0); /* created when the session opens */
  char msg[MSG_CAP];
  msg_connected(msg, sizeof msg);
  CHECK_OK(push_text(s, msg));
  msg_start(msg, sizeof msg);
  CHECK_OK(push_text(s, msg));
  sine(tone, RATE, RATE, 440.0, 8000.0);
  size_t taken = 0;
  CHECK_OK(trunkline_session_play(s, tone, RATE, RATE, &taken));
  CHECK_EQ(taken, RATE);
  event_log *log = malloc(sizeof *log);
  REQUIRE(log != NULL);
  for (size_t i = 0; i < FRAMES; i++) {
    msg_media(msg, sizeof msg, (unsigned)i + 2, (unsigned)i + 1, (unsigned)(i * 20), f.audio + i * FRAME_BYTES,
              FRAME_BYTES);
    CHECK_OK(push_text(s, msg));
    CHECK_OK(trunkline_engine_advance_clock(e, FRAME_US));
    uint8_t out[MSG_CAP];
    size_t len = 0;
    trunkline_message_kind kind;
    while (trunkline_session_next_outbound(s, out, sizeof out, &len, &kind) == TRUNKLINE_RESULT_OK) {
      outbound_msg m;
      parse_outbound(out, len, &m);
      if (m.kind != OUT_MEDIA) continue;
      REQUIRE(sent_len + m.payload_len <= 2 * RATE);
      memcpy(sent + sent_len, m.payload, m.payload_len);
      sent_len += m.payload_len;
    }
    drain_audio(s, NULL);
    log->count = 0;
    drain_events(s, log);
  }
  msg_stop(msg, sizeof msg, FRAMES + 2);
  CHECK_OK(push_text(s, msg));
  trunkline_session_free(s);
  trunkline_engine_free(e); /* the recording is finished */

  size_t len = 0;
  uint8_t *file = read_file(path, &len);
  REQUIRE(file != NULL);
  wav_info w;
  REQUIRE(parse_wav(file, len, &w));
  CHECK_EQ(w.format, 1); /* PCM */
  CHECK_EQ(w.channels, 2);
  CHECK_EQ(w.rate, RATE);
  CHECK_EQ(w.bits, 16);
  CHECK_EQ(w.block_align, 4);
  CHECK_EQ(w.byte_rate, RATE * 4);
  CHECK_EQ(w.data_len, (size_t)FRAMES * FRAME_BYTES * 4); /* as long as the call */
  CHECK_EQ(sent_len, RATE);
  size_t caller_wrong = 0, agent_wrong = 0, after = 0;
  for (size_t i = 0; i < w.data_len / 4 && i < (size_t)FRAMES * FRAME_BYTES; i++) {
    int16_t left = (int16_t)le16(w.data + 4 * i);
    int16_t right = (int16_t)le16(w.data + 4 * i + 2);
    /* Left: the caller's µ-law as delivered. Right: the agent's as sent, from the start. */
    caller_wrong += left != ulaw_to_s16(f.audio[i]);
    if (i < sent_len) agent_wrong += right != ulaw_to_s16(sent[i]);
    else after += right != 0;
  }
  CHECK_EQ(caller_wrong, 0);
  CHECK_EQ(agent_wrong, 0);
  CHECK_EQ(after, 0);

  free(file);
  remove(path);
  rmdir(dir);
  free(log);
  free(tone);
  free(sent);
  fixture_free(&f);
}

void test_record_refused(void) {
  char dir[] = "/tmp/trunkline-record-XXXXXX";
  REQUIRE(mkdtemp(dir) != NULL);
  trunkline_engine *e = engine_with_workers(0);
  REQUIRE(e != NULL);
  trunkline_session_config c;
  REQUIRE_OK(trunkline_session_config_default(&c, sizeof c));
  CHECK(c.record_path == NULL);
  const char *bad[] = {"call.mp3", "call", "call.wav.txt", "no/such/dir/call.wav", "."};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char path[160];
    snprintf(path, sizeof path, "%s/%s", dir, bad[i]);
    c.record_path = path;
    trunkline_session *s = NULL;
    CHECK_RESULT(trunkline_session_open(e, &c, &s), TRUNKLINE_RESULT_RECORD);
    CHECK(s == NULL);
  }
  CHECK_EQ(dir_entries(dir), 0);
  CHECK(strstr(trunkline_result_message(TRUNKLINE_RESULT_RECORD), ".wav") != NULL);
  /* Not UTF-8: refused as any such string is. */
  const char not_utf8[] = {'\xff', '.', 'w', 'a', 'v', 0};
  c.record_path = not_utf8;
  trunkline_session *s = NULL;
  CHECK_RESULT(trunkline_session_open(e, &c, &s), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  /* "" records nothing; the engine goes on. */
  c.record_path = "";
  CHECK_OK(trunkline_session_open(e, &c, &s));
  trunkline_session_free(s);
  trunkline_engine_free(e);
  rmdir(dir);
}
