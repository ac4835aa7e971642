/* Agent audio formats beyond PCM: a µ-law agent on a µ-law carrier reads the carrier's bytes and
 * sends its own to the carrier untouched (every one of the 256 codes, 0x7F included, which a
 * decode and encode would turn into 0xFF); read_audio decodes them (checked against the ITU-T
 * formula, written here); the config is checked (format values, 8 kHz only). */
#define _POSIX_C_SOURCE 200809L

#include <string.h>

#include "tests.h"
#include "util.h"

#define FRAMES 8

/* G.711 µ-law decode from the ITU-T formula, independent of the library. */
static int16_t ulaw_decode(uint8_t code) {
  uint8_t u = (uint8_t)~code;
  int exponent = (u >> 4) & 7;
  int magnitude = ((((int)(u & 0x0F)) << 3) + 0x84) << exponent;
  int v = magnitude - 0x84;
  return (int16_t)((u & 0x80) ? -v : v);
}

/* Every code, scattered: (i * 97 + i / 256) mod 256. */
static void all_codes(uint8_t *out, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = (uint8_t)((i * 97 + i / 256) & 0xFF);
}

static trunkline_session *open_ulaw(trunkline_engine *e) {
  trunkline_session_config c;
  if (trunkline_session_config_default(&c, sizeof c) != TRUNKLINE_RESULT_OK) return NULL;
  c.agent_format = TRUNKLINE_AGENT_FORMAT_MULAW;
  c.agent_rate = 8000;
  trunkline_session *s = NULL;
  if (trunkline_session_open(e, &c, &s) != TRUNKLINE_RESULT_OK) return NULL;
  return s;
}

void test_agent_format_config(void) {
  trunkline_session_config c;
  REQUIRE_OK(trunkline_session_config_default(&c, sizeof c));
  CHECK_EQ(c.agent_format, (uint32_t)TRUNKLINE_AGENT_FORMAT_PCM);
  trunkline_engine *e = manual_clock_engine();
  REQUIRE(e != NULL);
  trunkline_session *s = NULL;
  /* G.711 is 8 kHz: the default agent rate (16 kHz) is refused. */
  c.agent_format = TRUNKLINE_AGENT_FORMAT_MULAW;
  CHECK_RESULT(trunkline_session_open(e, &c, &s), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  c.agent_format = 3;
  c.agent_rate = 8000;
  CHECK_RESULT(trunkline_session_open(e, &c, &s), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  c.agent_format = TRUNKLINE_AGENT_FORMAT_ALAW;
  CHECK_OK(trunkline_session_open(e, &c, &s));
  uint8_t codes[16] = {0};
  size_t taken = 0;
  CHECK_RESULT(trunkline_session_play_bytes(s, codes, sizeof codes, 16000, &taken),
               TRUNKLINE_RESULT_INVALID_ARGUMENT);
  CHECK_RESULT(trunkline_session_play_bytes(s, NULL, 4, 8000, &taken), TRUNKLINE_RESULT_NULL_PARAMETER);
  size_t got = 0;
  CHECK_RESULT(trunkline_session_read_audio_bytes(s, codes, 0, &got), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  CHECK_RESULT(trunkline_session_read_audio_bytes(s, codes, sizeof codes, &got), TRUNKLINE_RESULT_EMPTY);
  /* A byte per sample: one byte is a whole one. */
  CHECK_RESULT(trunkline_session_read_audio_bytes(s, codes, 1, &got), TRUNKLINE_RESULT_EMPTY);
  trunkline_session_free(s);
  /* PCM comes in whole samples: room for less than one is refused, not EMPTY for ever. */
  c.agent_format = TRUNKLINE_AGENT_FORMAT_PCM;
  CHECK_OK(trunkline_session_open(e, &c, &s));
  CHECK_RESULT(trunkline_session_read_audio_bytes(s, codes, 1, &got), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  CHECK_RESULT(trunkline_session_read_audio_bytes(s, codes, 2, &got), TRUNKLINE_RESULT_EMPTY);
  trunkline_session_free(s);
  trunkline_engine_free(e);
}

void test_agent_format_ulaw_passes_through(void) {
  trunkline_engine *e = manual_clock_engine();
  REQUIRE(e != NULL);
  trunkline_session *s = open_ulaw(e);
  REQUIRE(s != NULL);
  char msg[MSG_CAP];
  msg_start(msg, sizeof msg);
  CHECK_OK(push_text(s, msg));

  static uint8_t sent[FRAMES * FRAME_BYTES];
  all_codes(sent, sizeof sent);
  for (unsigned i = 0; i < FRAMES; i++) {
    msg_media(msg, sizeof msg, i + 2, i + 1, i * 20, sent + i * FRAME_BYTES, FRAME_BYTES);
    CHECK_OK(push_text(s, msg));
  }
  /* Half as bytes (odd-sized reads), half decoded. */
  static uint8_t got[FRAMES * FRAME_BYTES];
  size_t have = 0, n = 0;
  while (have < sizeof got / 2 &&
         trunkline_session_read_audio_bytes(s, got + have, 77, &n) == TRUNKLINE_RESULT_OK) {
    have += n;
  }
  CHECK(have >= sizeof got / 2);
  CHECK(memcmp(got, sent, have) == 0);
  int16_t pcm[FRAMES * FRAME_BYTES];
  size_t samples = 0;
  CHECK_OK(trunkline_session_read_audio(s, pcm, sizeof pcm / sizeof pcm[0], &samples));
  CHECK_EQ(have + samples, sizeof sent);
  size_t wrong = 0;
  for (size_t i = 0; i < samples; i++) wrong += pcm[i] != ulaw_decode(sent[have + i]);
  CHECK_EQ(wrong, (size_t)0);

  /* The agent's codes go to the carrier exactly. */
  static uint8_t agent[FRAMES * FRAME_BYTES];
  for (size_t i = 0; i < sizeof agent; i++) agent[i] = (uint8_t)(0x7F + i * 31);
  size_t taken = 0;
  CHECK_OK(trunkline_session_play_bytes(s, agent, sizeof agent, 8000, &taken));
  CHECK_EQ(taken, sizeof agent);
  uint64_t queued = 0;
  CHECK_OK(trunkline_session_queued_ms(s, &queued));
  CHECK_EQ(queued, (uint64_t)(FRAMES * 20));
  static uint8_t out[FRAMES * FRAME_BYTES + FRAME_BYTES];
  size_t out_len = 0;
  for (int step = 0; step < 2 * FRAMES; step++) {
    uint8_t buf[MSG_CAP];
    size_t len = 0;
    trunkline_message_kind kind;
    while (trunkline_session_next_outbound(s, buf, sizeof buf, &len, &kind) == TRUNKLINE_RESULT_OK) {
      outbound_msg m;
      parse_outbound(buf, len, &m);
      if (m.kind == OUT_MEDIA && out_len + m.payload_len <= sizeof out) {
        memcpy(out + out_len, m.payload, m.payload_len);
        out_len += m.payload_len;
      }
    }
    CHECK_OK(trunkline_engine_advance_clock(e, 20000));
  }
  CHECK_EQ(out_len, sizeof agent);
  CHECK(memcmp(out, agent, sizeof agent) == 0);
  trunkline_session_free(s);
  trunkline_engine_free(e);
}
