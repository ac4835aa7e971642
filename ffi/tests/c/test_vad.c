/*
 * The standalone VAD (trunkline_vad_*): silence, a synthesized voiced signal at every rate, the
 * speech fixture against its labels, and every documented error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tests.h"
#include "util.h"

/* The defaults' minimum speech and hangover, ms (checked below against the config). */
#define MIN_SPEECH_MS 120
#define HANGOVER_MS 400

/* Fills `n` samples at `rate` with a 150 Hz pulse train of decaying harmonics (a crude vowel). */
static void pulse_train(int16_t *pcm, size_t n, uint32_t rate) {
  double period = (double)rate / 150.0;
  for (size_t i = 0; i < n; i++) {
    double phase = fmod((double)i, period) / period;
    pcm[i] = (int16_t)(6000.0 * exp(-phase * 6.0) * cos(2.0 * 3.14159265358979 * phase * 5.0));
  }
}

void test_vad_silence_and_voiced_signal(void) {
  trunkline_vad_config c;
  REQUIRE_OK(trunkline_vad_config_default(&c, sizeof c));
  CHECK_EQ(c.struct_size, sizeof c);
  CHECK_EQ(c.vad_aggressiveness, 2);
  CHECK_EQ(c.vad_min_speech_ms, MIN_SPEECH_MS);
  CHECK_EQ(c.vad_hangover_ms, HANGOVER_MS);
  const uint32_t rates[] = {8000, 16000, 24000, 48000};
  for (size_t r = 0; r < 4; r++) {
    uint32_t rate = rates[r];
    size_t len = rate / 50;
    trunkline_vad *vad = NULL;
    REQUIRE_OK(trunkline_vad_new(&c, rate, &vad));
    int16_t *frame = calloc(len, sizeof *frame);
    int16_t *voiced = malloc(30 * len * sizeof *voiced);
    REQUIRE(frame && voiced);
    pulse_train(voiced, 30 * len, rate);
    float p = -1;
    bool speaking = true;
    /* 200 ms of digital silence: probability 0, not speaking. */
    for (int i = 0; i < 10; i++) {
      CHECK_OK(trunkline_vad_process(vad, frame, len, &p, &speaking));
      CHECK(p == 0.0f);
      CHECK(!speaking);
    }
    /* 600 ms voiced: speaking once its minimum (6 frames) is voiced, within a few frames. */
    int on = -1;
    for (int i = 0; i < 30; i++) {
      CHECK_OK(trunkline_vad_process(vad, voiced + (size_t)i * len, len, &p, &speaking));
      if (speaking && on < 0) {
        on = i;
        CHECK(p == 1.0f);
      }
      if (i < MIN_SPEECH_MS / 20 - 1) CHECK(!speaking);
    }
    if (on < MIN_SPEECH_MS / 20 - 1 || on > MIN_SPEECH_MS / 20 + 3) tl_fail(__FILE__, __LINE__, "%u Hz: speaking from voiced frame %d", rate, on);
    /* Then silence: still speaking through the hangover, not after it. */
    int off = -1;
    for (int i = 0; i < 40; i++) {
      CHECK_OK(trunkline_vad_process(vad, frame, len, &p, &speaking));
      if (!speaking && off < 0) off = i;
    }
    if (off < HANGOVER_MS / 20 - 3 || off > HANGOVER_MS / 20 + 3) tl_fail(__FILE__, __LINE__, "%u Hz: stopped %d frames after the signal", rate, off);
    CHECK(!speaking);
    /* Reset: a new stream, not speaking. */
    CHECK_OK(trunkline_vad_process(vad, voiced, len, &p, &speaking));
    CHECK_OK(trunkline_vad_reset(vad));
    CHECK_OK(trunkline_vad_process(vad, frame, len, &p, &speaking));
    CHECK(p == 0.0f && !speaking);
    free(frame);
    free(voiced);
    trunkline_vad_free(vad);
  }
}

void test_vad_speech_fixture(void) {
  fixture f;
  REQUIRE(fixture_load(&f));
  int16_t *pcm = malloc(f.len * sizeof *pcm);
  REQUIRE(pcm);
  REQUIRE_OK(trunkline_ulaw_decode(f.audio, f.len, pcm, f.len));
  trunkline_vad *vad = NULL;
  REQUIRE_OK(trunkline_vad_new(NULL, 8000, &vad));
  /* Speaking must come on inside each labelled utterance, at most min speech + 200 ms after its
   * start, and go off at its end + hangover (± 200 ms); never elsewhere. */
  size_t turned_on = 0;
  bool was = false;
  for (size_t i = 0; i + 160 <= f.len; i += 160) {
    float p;
    bool speaking;
    REQUIRE_OK(trunkline_vad_process(vad, pcm + i, 160, &p, &speaking));
    CHECK(p == 0.0f || p == 1.0f);
    uint64_t t = (i + 160) / 8; /* end of this frame, ms */
    if (speaking == was) continue;
    bool fits = false;
    for (size_t l = 0; l < f.label_count; l++) {
      uint64_t s = f.labels[l][0], e = f.labels[l][1];
      if (speaking) fits |= t > s && t <= s + MIN_SPEECH_MS + 200;
      else fits |= t + 200 >= e + HANGOVER_MS && t <= e + HANGOVER_MS + 200;
    }
    if (!fits) tl_fail(__FILE__, __LINE__, "speaking %s at %llu ms, outside the labels' windows", speaking ? "on" : "off", (unsigned long long)t);
    turned_on += speaking;
    was = speaking;
  }
  CHECK_EQ(turned_on, f.label_count);
  trunkline_vad_free(vad);
  free(pcm);
  fixture_free(&f);
}

void test_vad_errors(void) {
  trunkline_vad_config c;
  REQUIRE_OK(trunkline_vad_config_default(&c, sizeof c));
  CHECK_RESULT(trunkline_vad_config_default(NULL, sizeof c), TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK_RESULT(trunkline_vad_config_default(&c, 0), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  CHECK_RESULT(trunkline_vad_config_default(&c, sizeof c + 1), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  REQUIRE_OK(trunkline_vad_config_default(&c, sizeof c));

  trunkline_vad *vad = NULL;
  CHECK_RESULT(trunkline_vad_new(&c, 8000, NULL), TRUNKLINE_RESULT_NULL_PARAMETER);
  const uint32_t bad_rates[] = {0, 11025, 22050, 32000, 44100, 96000};
  for (size_t i = 0; i < 6; i++) {
    CHECK_RESULT(trunkline_vad_new(&c, bad_rates[i], &vad), TRUNKLINE_RESULT_INVALID_ARGUMENT);
    CHECK(vad == NULL);
  }
  trunkline_vad_config bad = c;
  bad.vad_aggressiveness = 4;
  CHECK_RESULT(trunkline_vad_new(&bad, 8000, &vad), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  bad = c;
  bad.vad_min_speech_ms = 5001;
  CHECK_RESULT(trunkline_vad_new(&bad, 8000, &vad), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  bad = c;
  bad.vad_hangover_ms = 10001;
  CHECK_RESULT(trunkline_vad_new(&bad, 8000, &vad), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  bad = c;
  bad.struct_size = 0;
  CHECK_RESULT(trunkline_vad_new(&bad, 8000, &vad), TRUNKLINE_RESULT_INVALID_ARGUMENT);
  CHECK(vad == NULL);

  REQUIRE_OK(trunkline_vad_new(&c, 16000, &vad));
  int16_t frame[640] = {0};
  float p = -1;
  bool speaking = false;
  /* Anything but 20 ms (320 samples at 16 kHz) is refused, the outputs untouched. */
  const size_t wrong[] = {0, 1, 160, 319, 321, 640};
  for (size_t i = 0; i < 6; i++) {
    CHECK_RESULT(trunkline_vad_process(vad, frame, wrong[i], &p, &speaking), TRUNKLINE_RESULT_INVALID_ARGUMENT);
    CHECK(p == -1.0f);
  }
  CHECK_RESULT(trunkline_vad_process(NULL, frame, 320, &p, &speaking), TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK_RESULT(trunkline_vad_process(vad, NULL, 320, &p, &speaking), TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK_RESULT(trunkline_vad_process(vad, frame, 320, NULL, &speaking), TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK_RESULT(trunkline_vad_process(vad, frame, 320, &p, NULL), TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK_RESULT(trunkline_vad_reset(NULL), TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK_OK(trunkline_vad_process(vad, frame, 320, &p, &speaking));
  CHECK(p == 0.0f && !speaking);
  trunkline_vad_free(vad);
  trunkline_vad_free(NULL);
}
