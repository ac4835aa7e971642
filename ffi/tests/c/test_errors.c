/* Every result code reachable from C, with outputs left untouched on failure; result and
 * protocol error messages; bad input reported as events. */
#define _POSIX_C_SOURCE 200809L

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "tests.h"
#include "util.h"

/* Out-parameter sentinels: a failing call must leave them as they are. */
#define SENTINEL_SIZE ((size_t)0x5EED5EED)
#define SENTINEL_FD ((int32_t)-12345)

static trunkline_engine *engine_with(uint32_t workers, uint32_t max_sessions) {
  trunkline_engine_config cfg;
  trunkline_engine *e = NULL;
  if (trunkline_engine_config_default(&cfg, sizeof cfg) != TRUNKLINE_RESULT_OK) return NULL;
  cfg.workers_per_core = false;
  cfg.workers = workers;
  cfg.max_sessions = max_sessions;
  return trunkline_engine_new(&cfg, &e) == TRUNKLINE_RESULT_OK ? e : NULL;
}

/* Opens a session and takes it through `start` (STARTED polled). */
static trunkline_session *started_session(trunkline_engine *e, const trunkline_session_config *cfg) {
  trunkline_session *s = NULL;
  if (!e || trunkline_session_open(e, cfg, &s) != TRUNKLINE_RESULT_OK) return NULL;
  char msg[MSG_CAP];
  msg_start(msg, sizeof msg);
  trunkline_event ev = {.struct_size = sizeof ev};
  bool started = false;
  if (push_text(s, msg) == TRUNKLINE_RESULT_OK) {
    for (double deadline = now_ms() + 5000; !started && now_ms() < deadline;) {
      while (trunkline_session_poll_event(s, &ev) == TRUNKLINE_RESULT_OK)
        started |= ev.kind == TRUNKLINE_EVENT_KIND_STARTED;
      if (!started) trunkline_engine_wait(e, 20);
    }
  }
  if (!started) {
    trunkline_session_free(s);
    return NULL;
  }
  return s;
}

void test_result_messages(void) {
  const char *seen[TRUNKLINE_RESULT_RECORD + 1];
  for (uint32_t code = 0; code <= TRUNKLINE_RESULT_RECORD; code++) {
    const char *m = trunkline_result_message(code);
    REQUIRE(m != NULL);
    CHECK(strlen(m) > 0);
    for (uint32_t j = 0; j < code; j++) CHECK(strcmp(m, seen[j]) != 0);
    seen[code] = m;
  }
  CHECK(strcmp(trunkline_result_message(TRUNKLINE_RESULT_OK), "ok") == 0);
  /* Codes the library does not know get a generic text (the parameter is an integer on purpose:
   * any value is defined). */
  const char *unknown = trunkline_result_message(TRUNKLINE_RESULT_RECORD + 1);
  REQUIRE(unknown != NULL);
  CHECK(trunkline_result_message(UINT32_MAX) == unknown);
  for (uint32_t code = 0; code <= TRUNKLINE_RESULT_RECORD; code++) CHECK(strcmp(unknown, seen[code]) != 0);
}

void test_protocol_error_messages(void) {
  const char *unknown = trunkline_protocol_error_message(0);
  REQUIRE(unknown != NULL);
  CHECK(trunkline_protocol_error_message(18) == unknown);
  CHECK(trunkline_protocol_error_message(UINT32_MAX) == unknown);
  const char *seen[18];
  for (uint32_t code = TRUNKLINE_PROTOCOL_ERROR_MALFORMED_JSON; code <= TRUNKLINE_PROTOCOL_ERROR_CARRIER_REPORTED;
       code++) {
    const char *m = trunkline_protocol_error_message(code);
    REQUIRE(m != NULL);
    CHECK(strlen(m) > 0);
    CHECK(strcmp(m, unknown) != 0);
    for (uint32_t j = 1; j < code; j++) CHECK(strcmp(m, seen[j]) != 0);
    seen[code] = m;
  }
  CHECK_EQ(TRUNKLINE_PROTOCOL_ERROR_UNKNOWN_MARK, 15);
  CHECK_EQ(TRUNKLINE_PROTOCOL_ERROR_FOREIGN_STREAM, 16);
  CHECK_EQ(TRUNKLINE_PROTOCOL_ERROR_CARRIER_REPORTED, 17);
}

void test_null_parameters(void) {
  const trunkline_result NP = TRUNKLINE_RESULT_NULL_PARAMETER;
  trunkline_engine *e = engine_with(0, 4);
  REQUIRE(e != NULL);
  trunkline_session *s = started_session(e, NULL);
  REQUIRE(s != NULL);
  trunkline_engine_config ecfg;
  trunkline_session_config scfg;
  REQUIRE_OK(trunkline_engine_config_default(&ecfg, sizeof ecfg));
  REQUIRE_OK(trunkline_session_config_default(&scfg, sizeof scfg));
  size_t n = SENTINEL_SIZE;
  size_t n2 = SENTINEL_SIZE;
  int32_t fd = SENTINEL_FD;
  uint8_t bytes[64] = {0};
  int16_t pcm[64] = {0};
  char text[64];
  char text2[64];
  uint64_t values[64];
  trunkline_message_kind kind = TRUNKLINE_MESSAGE_KIND_BINARY;
  trunkline_event ev = {.struct_size = sizeof ev};
  trunkline_start_info info = {.struct_size = sizeof info};

  CHECK_RESULT(trunkline_engine_config_default(NULL, sizeof(trunkline_engine_config)), NP);
  CHECK_RESULT(trunkline_session_config_default(NULL, sizeof(trunkline_session_config)), NP);

  CHECK_RESULT(trunkline_engine_new(&ecfg, NULL), NP);
  CHECK_RESULT(trunkline_engine_new(NULL, NULL), NP);
  CHECK_RESULT(trunkline_engine_wakeup_fd(NULL, &fd), NP);
  CHECK_RESULT(trunkline_engine_wakeup_fd(e, NULL), NP);
  CHECK_EQ(fd, SENTINEL_FD);
  uint32_t prioritised = 77;
  CHECK_RESULT(trunkline_engine_prioritised_workers(NULL, &prioritised), NP);
  CHECK_RESULT(trunkline_engine_prioritised_workers(e, NULL), NP);
  CHECK_EQ(prioritised, 77);
  CHECK_RESULT(trunkline_engine_wait(NULL, 0), NP);
  CHECK_RESULT(trunkline_engine_wake(NULL), NP);
  CHECK_RESULT(trunkline_engine_clear_wakeup(NULL), NP);

  trunkline_session *untouched = (trunkline_session *)&scfg;
  CHECK_RESULT(trunkline_session_open(NULL, &scfg, &untouched), NP);
  CHECK(untouched == (trunkline_session *)&scfg);
  CHECK_RESULT(trunkline_session_open(e, &scfg, NULL), NP);
  CHECK_RESULT(trunkline_session_open(e, NULL, NULL), NP);

  CHECK_RESULT(trunkline_session_push(NULL, bytes, 2, TRUNKLINE_MESSAGE_KIND_TEXT), NP);
  CHECK_RESULT(trunkline_session_push(s, NULL, 2, TRUNKLINE_MESSAGE_KIND_TEXT), NP);

  CHECK_RESULT(trunkline_session_read_audio(NULL, pcm, 64, &n), NP);
  CHECK_RESULT(trunkline_session_read_audio(s, NULL, 64, &n), NP);
  CHECK_RESULT(trunkline_session_read_audio(s, pcm, 64, NULL), NP);

  CHECK_RESULT(trunkline_session_play(NULL, pcm, 64, 24000, &n), NP);
  CHECK_RESULT(trunkline_session_play(s, NULL, 64, 24000, &n), NP);
  CHECK_RESULT(trunkline_session_play(s, pcm, 64, 24000, NULL), NP);

  CHECK_RESULT(trunkline_session_mark(NULL, "m"), NP);
  CHECK_RESULT(trunkline_session_mark(s, NULL), NP);

  CHECK_RESULT(trunkline_session_interrupt(NULL), NP);
  CHECK_RESULT(trunkline_session_end_stream(NULL), NP);

  CHECK_RESULT(trunkline_session_outbound_len(NULL, &n), NP);
  CHECK_RESULT(trunkline_session_outbound_len(s, NULL), NP);

  CHECK_RESULT(trunkline_session_next_outbound(NULL, bytes, 64, &n, &kind), NP);
  CHECK_RESULT(trunkline_session_next_outbound(s, NULL, 64, &n, &kind), NP);
  CHECK_RESULT(trunkline_session_next_outbound(s, bytes, 64, NULL, &kind), NP);
  CHECK_RESULT(trunkline_session_next_outbound(s, bytes, 64, &n, NULL), NP);
  CHECK_EQ(kind, TRUNKLINE_MESSAGE_KIND_BINARY);

  CHECK_RESULT(trunkline_session_poll_event(NULL, &ev), NP);
  CHECK_RESULT(trunkline_session_poll_event(s, NULL), NP);

  CHECK_RESULT(trunkline_session_start_info(NULL, &info), NP);
  CHECK_RESULT(trunkline_session_start_info(s, NULL), NP);

  const uint32_t CALL = TRUNKLINE_START_FIELD_CALL_ID;
  CHECK_RESULT(trunkline_session_start_string(NULL, CALL, text, 64, &n), NP);
  CHECK_RESULT(trunkline_session_start_string(s, CALL, NULL, 64, &n), NP);
  CHECK_RESULT(trunkline_session_start_string(s, CALL, text, 64, NULL), NP);

  CHECK_RESULT(trunkline_session_custom_parameter(NULL, 0, text, 64, &n, text2, 64, &n2), NP);
  CHECK_RESULT(trunkline_session_custom_parameter(s, 0, NULL, 64, &n, text2, 64, &n2), NP);
  CHECK_RESULT(trunkline_session_custom_parameter(s, 0, text, 64, NULL, text2, 64, &n2), NP);
  CHECK_RESULT(trunkline_session_custom_parameter(s, 0, text, 64, &n, NULL, 64, &n2), NP);
  CHECK_RESULT(trunkline_session_custom_parameter(s, 0, text, 64, &n, text2, 64, NULL), NP);

  CHECK_RESULT(trunkline_session_stats(NULL, values, 64, &n), NP);
  CHECK_RESULT(trunkline_session_stats(s, NULL, 64, &n), NP);
  CHECK_RESULT(trunkline_session_stats(s, values, 64, NULL), NP);

  CHECK_RESULT(trunkline_session_close(NULL), NP);
  CHECK_RESULT(trunkline_test_fail_session(NULL), NP);

  CHECK_RESULT(trunkline_ulaw_decode(NULL, 4, pcm, 64), NP);
  /* Two NULL buffers are NULL, not an overlap. */
  CHECK_RESULT(trunkline_ulaw_decode(NULL, 4, NULL, 64), NP);
  CHECK_RESULT(trunkline_session_custom_parameter(s, 0, NULL, 64, &n, NULL, 64, &n2), NP);
  CHECK_RESULT(trunkline_ulaw_decode(bytes, 4, NULL, 64), NP);
  CHECK_RESULT(trunkline_ulaw_encode(NULL, 4, bytes, 64), NP);
  CHECK_RESULT(trunkline_ulaw_encode(pcm, 4, NULL, 64), NP);
  CHECK_RESULT(trunkline_alaw_decode(NULL, 4, pcm, 64), NP);
  CHECK_RESULT(trunkline_alaw_decode(bytes, 4, NULL, 64), NP);
  CHECK_RESULT(trunkline_alaw_encode(NULL, 4, bytes, 64), NP);
  CHECK_RESULT(trunkline_alaw_encode(pcm, 4, NULL, 64), NP);

  CHECK_EQ(n, SENTINEL_SIZE);
  CHECK_EQ(n2, SENTINEL_SIZE);
  /* The session is still fine. */
  CHECK_OK(trunkline_session_start_string(s, CALL, text, 64, &n));
  trunkline_session_free(s);
  trunkline_engine_free(e);
}

void test_zero_length_null_data(void) {
  trunkline_engine *e = engine_with(0, 4);
  trunkline_session *s = started_session(e, NULL);
  REQUIRE(s != NULL);
  size_t n = SENTINEL_SIZE;
  /* An empty play takes nothing and says so. */
  CHECK_OK(trunkline_session_play(s, NULL, 0, 24000, &n));
  CHECK_EQ(n, 0);
  /* Empty buffers for the codecs. */
  CHECK_OK(trunkline_ulaw_decode(NULL, 0, NULL, 0));
  CHECK_OK(trunkline_ulaw_encode(NULL, 0, NULL, 0));
  CHECK_OK(trunkline_alaw_decode(NULL, 0, NULL, 0));
  CHECK_OK(trunkline_alaw_encode(NULL, 0, NULL, 0));
  /* Zero counters asked for. */
  n = SENTINEL_SIZE;
  CHECK_OK(trunkline_session_stats(s, NULL, 0, &n));
  CHECK_EQ(n, 0);
  /* No outbound message: EMPTY whatever the buffer. */
  trunkline_message_kind kind;
  CHECK_RESULT(trunkline_session_next_outbound(s, NULL, 0, &n, &kind), TRUNKLINE_RESULT_EMPTY);
  /* An empty message is accepted by push and reported as malformed; the call goes on. */
  CHECK_OK(trunkline_session_push(s, NULL, 0, TRUNKLINE_MESSAGE_KIND_TEXT));
  trunkline_event ev = {.struct_size = sizeof ev};
  CHECK_OK(trunkline_session_poll_event(s, &ev));
  CHECK_EQ(ev.kind, TRUNKLINE_EVENT_KIND_PROTOCOL_ERROR);
  CHECK_EQ(ev.error, TRUNKLINE_PROTOCOL_ERROR_MALFORMED_JSON);
  /* A start string buffer of capacity 0 with NULL: too small, not a NULL error. */
  CHECK_RESULT(trunkline_session_start_string(s, TRUNKLINE_START_FIELD_CALL_ID, NULL, 0, &n),
               TRUNKLINE_RESULT_BUFFER_TOO_SMALL);
  trunkline_session_free(s);
  trunkline_engine_free(e);
}

/* Opens a session with one setting changed; returns the result. */
static trunkline_result open_with(trunkline_engine *e, void (*edit)(trunkline_session_config *)) {
  trunkline_session_config cfg;
  trunkline_session *s = (trunkline_session *)&cfg;
  trunkline_session_config_default(&cfg, sizeof cfg);
  edit(&cfg);
  trunkline_result r = trunkline_session_open(e, &cfg, &s);
  if (r == TRUNKLINE_RESULT_OK)
    trunkline_session_free(s);
  else
    CHECK(s == (trunkline_session *)&cfg); /* untouched */
  return r;
}

static void agent_rate_11025(trunkline_session_config *c) { c->agent_rate = 11025; }
static void agent_rate_0(trunkline_session_config *c) { c->agent_rate = 0; }
static void play_rate_12000(trunkline_session_config *c) { c->play_rate = 12000; }
static void lead_39(trunkline_session_config *c) { c->lead_ms = 39; }
static void vad_4(trunkline_session_config *c) { c->vad_aggressiveness = 4; }
static void vad_huge(trunkline_session_config *c) { c->vad_aggressiveness = 256; }
static void mark_name_256(trunkline_session_config *c) { c->max_mark_name_bytes = 256; }
static void outbound_buffer_100(trunkline_session_config *c) { c->outbound_buffer_ms = 100; }
static void message_0(trunkline_session_config *c) { c->max_message_bytes = 0; }
static void payload_0(trunkline_session_config *c) { c->max_payload_bytes = 0; }
static void inbound_ring_small(trunkline_session_config *c) { c->inbound_ring_bytes = 1024; }
static void outbound_ring_small(trunkline_session_config *c) { c->outbound_ring_bytes = 512; }
static void play_ring_small(trunkline_session_config *c) { c->play_ring_bytes = 256; }
static void ring_huge(trunkline_session_config *c) { c->inbound_ring_bytes = (size_t)1 << 40; }
static void events_huge(trunkline_session_config *c) { c->event_capacity = SIZE_MAX; }
static void marks_huge(trunkline_session_config *c) { c->max_pending_marks = SIZE_MAX / 2; }
static void agent_ring_huge(trunkline_session_config *c) { c->agent_ring_ms = UINT32_MAX; }
static void message_huge(trunkline_session_config *c) { c->max_message_bytes = SIZE_MAX; }
static void agent_rate_48k(trunkline_session_config *c) { c->agent_rate = 48000; }

void test_invalid_arguments(void) {
  const trunkline_result IA = TRUNKLINE_RESULT_INVALID_ARGUMENT;
  trunkline_engine *e = engine_with(0, 8);
  REQUIRE(e != NULL);

  /* Session settings. */
  void (*bad[])(trunkline_session_config *) = {
      agent_rate_11025, agent_rate_0,        play_rate_12000,     lead_39,         vad_4,
      vad_huge,         mark_name_256,       outbound_buffer_100, message_0,       payload_0,
      inbound_ring_small, outbound_ring_small, play_ring_small,   ring_huge,       events_huge,
      marks_huge,       agent_ring_huge,     message_huge,
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    trunkline_result r = open_with(e, bad[i]);
    if (r != IA) tl_fail(__FILE__, __LINE__, "bad session setting #%zu: got %d, want INVALID_ARGUMENT", i, (int)r);
  }
  CHECK_OK(open_with(e, agent_rate_48k));

  /* Engine settings. */
  trunkline_engine_config ecfg;
  trunkline_engine *e2 = NULL;
  REQUIRE_OK(trunkline_engine_config_default(&ecfg, sizeof ecfg));
  ecfg.max_sessions = 0;
  CHECK_RESULT(trunkline_engine_new(&ecfg, &e2), IA);
  ecfg.max_sessions = UINT32_MAX;
  CHECK_RESULT(trunkline_engine_new(&ecfg, &e2), IA);
  ecfg.max_sessions = 4;
  ecfg.workers_per_core = false;
  ecfg.workers = UINT32_MAX;
  CHECK_RESULT(trunkline_engine_new(&ecfg, &e2), IA);
  CHECK(e2 == NULL);

  /* Call arguments. */
  trunkline_session_config cfg;
  REQUIRE_OK(trunkline_session_config_default(&cfg, sizeof cfg));
  cfg.max_mark_name_bytes = 8;
  trunkline_session *s = started_session(e, &cfg);
  REQUIRE(s != NULL);
  int16_t pcm[160] = {0};
  size_t n = SENTINEL_SIZE;
  CHECK_RESULT(trunkline_session_play(s, pcm, 160, 11025, &n), IA);
  CHECK_RESULT(trunkline_session_play(s, pcm, 160, 0, &n), IA);
  CHECK_EQ(n, SENTINEL_SIZE);
  CHECK_RESULT(trunkline_session_mark(s, "\xff\xfe not utf-8"), IA);
  CHECK_RESULT(trunkline_session_mark(s, "nine-byte"), IA);       /* over max_mark_name_bytes */
  CHECK_RESULT(trunkline_session_mark(s, "trunkline-sync-1"), IA); /* reserved (and too long) */
  CHECK_OK(trunkline_session_mark(s, "eight-b."));
  CHECK_RESULT(trunkline_session_read_audio(s, pcm, 0, &n), IA);
  CHECK_EQ(n, SENTINEL_SIZE);
  CHECK_RESULT(trunkline_session_push(s, (const uint8_t *)"{}", 2, 2), IA);
  CHECK_RESULT(trunkline_session_push(s, (const uint8_t *)"{}", 2, UINT32_MAX), IA);
  char text[64];
  CHECK_RESULT(trunkline_session_start_string(s, 3, text, sizeof text, &n), IA);
  CHECK_RESULT(trunkline_session_start_string(s, UINT32_MAX, text, sizeof text, &n), IA);
  CHECK_EQ(n, SENTINEL_SIZE);
  trunkline_session_free(s);

  /* The reserved prefix is refused whatever the length limit. */
  cfg.max_mark_name_bytes = 64;
  s = started_session(e, &cfg);
  REQUIRE(s != NULL);
  CHECK_RESULT(trunkline_session_mark(s, "trunkline-sync-1"), IA);
  trunkline_session_free(s);
  trunkline_engine_free(e);
}

/* A setting of the session config, for the extremes test. */
typedef struct {
  const char *name;
  size_t offset;
  size_t size;
} field;

#define U32(f) {#f, offsetof(trunkline_session_config, f), sizeof(uint32_t)}
#define SZ(f) {#f, offsetof(trunkline_session_config, f), sizeof(size_t)}

static const field FIELDS[] = {
    U32(agent_rate),         U32(play_rate),         U32(vad_aggressiveness), U32(vad_min_speech_ms),
    U32(vad_hangover_ms),    U32(barge_in_min_speech_ms), U32(lead_ms),      U32(sync_mark_interval_ms),
    U32(utterance_gap_ms),   SZ(max_message_bytes),  SZ(max_payload_bytes),   U32(reorder_window_ms),
    U32(max_gap_fill_ms),    SZ(inbound_ring_bytes), SZ(play_ring_bytes),     U32(outbound_buffer_ms),
    U32(agent_ring_ms),      SZ(outbound_ring_bytes), SZ(event_capacity),     SZ(max_mark_name_bytes),
    SZ(max_pending_marks),
};

static void set_field(trunkline_session_config *c, const field *f, uint64_t value) {
  if (f->size == sizeof(uint32_t)) {
    uint32_t v = value > UINT32_MAX ? UINT32_MAX : (uint32_t)value;
    memcpy((char *)c + f->offset, &v, sizeof v);
  } else {
    size_t v = value > SIZE_MAX ? SIZE_MAX : (size_t)value;
    memcpy((char *)c + f->offset, &v, sizeof v);
  }
}

/* A short call through a session: everything must be OK (never PANIC or FAILED). */
static void exercise(trunkline_session *s, const char *what) {
  char msg[MSG_CAP];
  uint8_t frame[FRAME_BYTES];
  int16_t pcm[480];
  memset(frame, 0xFF, sizeof frame);
  sine(pcm, 480, 24000, 300, 5000);
  msg_start(msg, sizeof msg);
  trunkline_result r = push_text(s, msg);
  if (r != TRUNKLINE_RESULT_OK) tl_fail(__FILE__, __LINE__, "%s: push start: %d", what, (int)r);
  for (unsigned i = 0; i < 10; i++) {
    msg_media(msg, sizeof msg, 2 + i, 1 + i, i * 20, frame, sizeof frame);
    r = push_text(s, msg);
    if (r != TRUNKLINE_RESULT_OK && r != TRUNKLINE_RESULT_FULL)
      tl_fail(__FILE__, __LINE__, "%s: push media: %d", what, (int)r);
    size_t n;
    r = trunkline_session_play(s, pcm, 480, 24000, &n);
    if (r != TRUNKLINE_RESULT_OK && r != TRUNKLINE_RESULT_FULL)
      tl_fail(__FILE__, __LINE__, "%s: play: %d", what, (int)r);
    r = trunkline_session_mark(s, "m");
    /* INVALID_ARGUMENT: max_mark_name_bytes = 0 */
    if (r != TRUNKLINE_RESULT_OK && r != TRUNKLINE_RESULT_FULL && r != TRUNKLINE_RESULT_INVALID_ARGUMENT)
      tl_fail(__FILE__, __LINE__, "%s: mark: %d", what, (int)r);
    drain_audio(s, NULL);
    event_log *log = malloc(sizeof *log);
    if (log) {
      log->count = 0;
      drain_events(s, log);
      free(log);
    }
    uint8_t out[MSG_CAP];
    trunkline_message_kind kind;
    while (trunkline_session_next_outbound(s, out, sizeof out, &n, &kind) == TRUNKLINE_RESULT_OK) {
    }
  }
  r = trunkline_session_interrupt(s);
  if (r != TRUNKLINE_RESULT_OK && r != TRUNKLINE_RESULT_FULL)
    tl_fail(__FILE__, __LINE__, "%s: interrupt: %d", what, (int)r);
  msg_stop(msg, sizeof msg, 99);
  r = push_text(s, msg);
  if (r != TRUNKLINE_RESULT_OK && r != TRUNKLINE_RESULT_FULL)
    tl_fail(__FILE__, __LINE__, "%s: push stop: %d", what, (int)r);
  drain_audio(s, NULL);
}

void test_config_extremes(void) {
  /* Every setting at 0, 1 and its largest value: opening gives OK or INVALID_ARGUMENT, never
   * PANIC (or an abort on an impossible allocation), and an opened session works. */
  trunkline_engine *e = engine_with(0, 4);
  REQUIRE(e != NULL);
  const uint64_t values[] = {0, 1, UINT32_MAX, UINT64_MAX};
  for (size_t f = 0; f < sizeof FIELDS / sizeof FIELDS[0]; f++) {
    for (size_t v = 0; v < sizeof values / sizeof values[0]; v++) {
      trunkline_session_config cfg;
      trunkline_session_config_default(&cfg, sizeof cfg);
      set_field(&cfg, &FIELDS[f], values[v]);
      trunkline_session *s = NULL;
      trunkline_result r = trunkline_session_open(e, &cfg, &s);
      char what[96];
      snprintf(what, sizeof what, "%s = %llu", FIELDS[f].name, (unsigned long long)values[v]);
      if (r == TRUNKLINE_RESULT_OK) {
        exercise(s, what);
        trunkline_session_free(s);
      } else if (r != TRUNKLINE_RESULT_INVALID_ARGUMENT) {
        tl_fail(__FILE__, __LINE__, "%s: open gave %d", what, (int)r);
      }
    }
  }
  trunkline_engine_free(e);

  /* Engine timer extremes. */
  const uint32_t ticks[] = {0, UINT32_MAX};
  for (size_t i = 0; i < 2; i++) {
    trunkline_engine_config ecfg;
    trunkline_engine_config_default(&ecfg, sizeof ecfg);
    ecfg.workers_per_core = false;
    ecfg.workers = 1;
    ecfg.tick_ms = ticks[i];
    trunkline_engine *te = NULL;
    REQUIRE_OK(trunkline_engine_new(&ecfg, &te));
    trunkline_session *s = started_session(te, NULL);
    CHECK(s != NULL);
    trunkline_session_free(s);
    trunkline_engine_free(te);
  }
}

void test_panic(void) {
  fprintf(stderr, "    (the panic message below is expected: trunkline_test_panic)\n");
  CHECK_RESULT(trunkline_test_panic(), TRUNKLINE_RESULT_PANIC);
  /* The library goes on. */
  trunkline_engine *e = engine_with(0, 1);
  CHECK(e != NULL);
  trunkline_engine_free(e);
}

void test_full(void) {
  trunkline_engine *e = engine_with(0, 4);
  REQUIRE(e != NULL);
  trunkline_session_config cfg;
  REQUIRE_OK(trunkline_session_config_default(&cfg, sizeof cfg));
  cfg.max_pending_marks = 2;
  trunkline_session *s = started_session(e, &cfg);
  REQUIRE(s != NULL);

  /* Marks over max_pending_marks. */
  CHECK_OK(trunkline_session_mark(s, "a"));
  CHECK_OK(trunkline_session_mark(s, "b"));
  CHECK_RESULT(trunkline_session_mark(s, "c"), TRUNKLINE_RESULT_FULL);

  /* Play until full: each call takes what fits; then FULL, with nothing taken. The pacer only
   * sends 100 ms ahead, so the 2 s outbound buffer plus the play ring fill up. */
  static int16_t second[48000];
  sine(second, 48000, 48000, 500, 4000);
  size_t total = 0;
  size_t taken = SENTINEL_SIZE;
  trunkline_result r = TRUNKLINE_RESULT_OK;
  bool partial = false;
  for (int i = 0; i < 100 && r == TRUNKLINE_RESULT_OK; i++) {
    r = trunkline_session_play(s, second, 48000, 48000, &taken);
    if (r == TRUNKLINE_RESULT_OK) {
      total += taken;
      partial |= taken < 48000;
      taken = SENTINEL_SIZE;
    }
  }
  CHECK_RESULT(r, TRUNKLINE_RESULT_FULL);
  CHECK_EQ(taken, SENTINEL_SIZE);
  CHECK(partial);
  CHECK(total >= 2 * 48000); /* at least the 2 s outbound buffer */
  CHECK(total < 20 * 48000);
  uint64_t v[64];
  size_t n = 0;
  CHECK_OK(trunkline_session_stats(s, v, 64, &n));
  CHECK(stat_by_name(v, n, "play_refused_full") >= 2);
  /* The worker has taken in all but what still sits in the full play ring. */
  CHECK(stat_by_name(v, n, "play_samples_in") <= total);
  CHECK(stat_by_name(v, n, "play_samples_in") >= 2 * 48000);
  /* Interrupt still gets through a full play ring, and makes room. */
  CHECK_OK(trunkline_session_interrupt(s));
  CHECK_OK(trunkline_session_play(s, second, 480, 48000, &taken));
  CHECK_EQ(taken, 480);
  trunkline_session_free(s);
  trunkline_engine_free(e);
}

/* Every call on a closed (or engine-less) session. */
static void check_all_closed(trunkline_session *s) {
  const trunkline_result C = TRUNKLINE_RESULT_CLOSED;
  size_t n = SENTINEL_SIZE;
  size_t n2 = SENTINEL_SIZE;
  uint8_t bytes[MSG_CAP];
  int16_t pcm[64] = {0};
  char text[64];
  char text2[64];
  trunkline_message_kind kind = TRUNKLINE_MESSAGE_KIND_BINARY;
  trunkline_event ev = {.struct_size = sizeof ev};
  ev.kind = TRUNKLINE_EVENT_KIND_DTMF;
  trunkline_start_info info = {.struct_size = sizeof info};
  info.channels = 77;
  char msg[MSG_CAP];
  msg_connected(msg, sizeof msg);
  CHECK_RESULT(push_text(s, msg), C);
  CHECK_RESULT(trunkline_session_read_audio(s, pcm, 64, &n), C);
  CHECK_RESULT(trunkline_session_play(s, pcm, 64, 24000, &n), C);
  CHECK_RESULT(trunkline_session_mark(s, "m"), C);
  CHECK_RESULT(trunkline_session_interrupt(s), C);
  CHECK_RESULT(trunkline_session_end_stream(s), C);
  CHECK_RESULT(trunkline_session_outbound_len(s, &n), C);
  CHECK_RESULT(trunkline_session_next_outbound(s, bytes, sizeof bytes, &n, &kind), C);
  CHECK_RESULT(trunkline_session_poll_event(s, &ev), C);
  CHECK_RESULT(trunkline_session_start_info(s, &info), C);
  CHECK_RESULT(trunkline_session_start_string(s, TRUNKLINE_START_FIELD_CALL_ID, text, 64, &n), C);
  CHECK_RESULT(trunkline_session_custom_parameter(s, 0, text, 64, &n, text2, 64, &n2), C);
  CHECK_EQ(n, SENTINEL_SIZE);
  CHECK_EQ(n2, SENTINEL_SIZE);
  CHECK_EQ(kind, TRUNKLINE_MESSAGE_KIND_BINARY);
  CHECK_EQ(ev.kind, TRUNKLINE_EVENT_KIND_DTMF);
  CHECK_EQ(info.channels, 77);
  /* Counters still work; closing again is fine. */
  uint64_t v[64];
  CHECK_OK(trunkline_session_stats(s, v, 64, &n));
  CHECK_EQ(n, trunkline_session_stats_count());
  CHECK_OK(trunkline_session_close(s));
}

void test_closed(void) {
  for (uint32_t workers = 0; workers <= 1; workers++) {
    trunkline_engine *e = engine_with(workers, 4);
    trunkline_session *s = started_session(e, NULL);
    REQUIRE(s != NULL);
    CHECK_OK(trunkline_session_close(s));
    check_all_closed(s);
    trunkline_session_free(s);
    trunkline_engine_free(e);
  }
}

void test_closed_after_engine_free(void) {
  for (uint32_t workers = 0; workers <= 1; workers++) {
    trunkline_engine *e = engine_with(workers, 4);
    trunkline_session *s = started_session(e, NULL);
    REQUIRE(s != NULL);
    int16_t pcm[480] = {0};
    size_t n;
    CHECK_OK(trunkline_session_play(s, pcm, 480, 24000, &n));
    trunkline_engine_free(e);
    check_all_closed(s);
    trunkline_session_free(s);
  }
}

void test_empty(void) {
  const trunkline_result E = TRUNKLINE_RESULT_EMPTY;
  trunkline_engine *e = engine_with(0, 4);
  REQUIRE(e != NULL);
  CHECK_RESULT(trunkline_engine_clear_wakeup(e), E);
  trunkline_session *s = NULL;
  REQUIRE_OK(trunkline_session_open(e, NULL, &s));
  size_t n = SENTINEL_SIZE;
  size_t n2 = SENTINEL_SIZE;
  int16_t pcm[64];
  uint8_t bytes[MSG_CAP];
  char text[64];
  char text2[64];
  trunkline_message_kind kind = TRUNKLINE_MESSAGE_KIND_BINARY;
  trunkline_event ev = {.struct_size = sizeof ev};
  trunkline_start_info info = {.struct_size = sizeof info};
  info.channels = 77;
  CHECK_RESULT(trunkline_session_poll_event(s, &ev), E);
  CHECK_RESULT(trunkline_session_read_audio(s, pcm, 64, &n), E);
  CHECK_RESULT(trunkline_session_outbound_len(s, &n), E);
  CHECK_RESULT(trunkline_session_next_outbound(s, bytes, sizeof bytes, &n, &kind), E);
  /* Before STARTED was polled, the start message's details are not there. */
  CHECK_RESULT(trunkline_session_start_info(s, &info), E);
  CHECK_RESULT(trunkline_session_start_string(s, TRUNKLINE_START_FIELD_CALL_ID, text, 64, &n), E);
  CHECK_RESULT(trunkline_session_custom_parameter(s, 0, text, 64, &n, text2, 64, &n2), E);
  char msg[MSG_CAP];
  msg_start(msg, sizeof msg);
  CHECK_OK(push_text(s, msg));
  CHECK_RESULT(trunkline_session_start_info(s, &info), E); /* pushed, not yet polled */
  CHECK_OK(trunkline_session_poll_event(s, &ev));
  CHECK_EQ(ev.kind, TRUNKLINE_EVENT_KIND_STARTED);
  CHECK_RESULT(trunkline_session_poll_event(s, &ev), E);
  CHECK_OK(trunkline_session_start_info(s, &info));
  CHECK_RESULT(trunkline_session_custom_parameter(s, 2, text, 64, &n, text2, 64, &n2), E);
  CHECK_RESULT(trunkline_session_custom_parameter(s, SIZE_MAX, text, 64, &n, text2, 64, &n2), E);
  CHECK_EQ(n, SENTINEL_SIZE);
  CHECK_EQ(n2, SENTINEL_SIZE);
  CHECK_EQ(kind, TRUNKLINE_MESSAGE_KIND_BINARY);
  trunkline_session_free(s);
  trunkline_engine_free(e);
}

void test_buffer_too_small(void) {
  const trunkline_result B = TRUNKLINE_RESULT_BUFFER_TOO_SMALL;
  trunkline_engine *e = engine_with(0, 4);
  trunkline_session *s = started_session(e, NULL);
  REQUIRE(s != NULL);

  /* An outbound media message does not fit: nothing is taken; its size is available. */
  int16_t pcm[4800];
  sine(pcm, 4800, 24000, 300, 5000);
  size_t n = 0;
  CHECK_OK(trunkline_session_play(s, pcm, 4800, 24000, &n));
  size_t len = 0;
  REQUIRE_OK(trunkline_session_outbound_len(s, &len));
  CHECK(len > 216 && len < 4096);
  uint8_t buf[4096];
  size_t got = SENTINEL_SIZE;
  trunkline_message_kind kind = TRUNKLINE_MESSAGE_KIND_BINARY;
  CHECK_RESULT(trunkline_session_next_outbound(s, buf, len - 1, &got, &kind), B);
  CHECK_RESULT(trunkline_session_next_outbound(s, buf, 0, &got, &kind), B);
  CHECK_EQ(got, SENTINEL_SIZE);
  CHECK_EQ(kind, TRUNKLINE_MESSAGE_KIND_BINARY);
  size_t again = 0;
  CHECK_OK(trunkline_session_outbound_len(s, &again));
  CHECK_EQ(again, len);
  CHECK_OK(trunkline_session_next_outbound(s, buf, len, &got, &kind));
  CHECK_EQ(got, len);
  CHECK_EQ(kind, TRUNKLINE_MESSAGE_KIND_TEXT);
  outbound_msg m;
  parse_outbound(buf, got, &m);
  CHECK_EQ(m.kind, OUT_MEDIA);

  /* Start strings need their length plus the NUL. */
  char text[64];
  memset(text, 'x', sizeof text);
  size_t sid = strlen(CALL_SID);
  got = SENTINEL_SIZE;
  CHECK_RESULT(trunkline_session_start_string(s, TRUNKLINE_START_FIELD_CALL_ID, text, sid, &got), B);
  /* Too small: the length says what to ask with, and the buffer is untouched. */
  CHECK_EQ(got, sid);
  CHECK_EQ(text[0], 'x');
  CHECK_OK(trunkline_session_start_string(s, TRUNKLINE_START_FIELD_CALL_ID, text, sid + 1, &got));
  CHECK_EQ(got, sid);
  CHECK_EQ(text[sid], '\0');

  /* Custom parameters: key "caller" (6) and value "+15550100" (9). */
  char key[16];
  char value[16];
  size_t kl = SENTINEL_SIZE;
  size_t vl = SENTINEL_SIZE;
  memset(key, 'x', sizeof key);
  memset(value, 'x', sizeof value);
  CHECK_RESULT(trunkline_session_custom_parameter(s, 0, key, 6, &kl, value, 16, &vl), B);
  CHECK_EQ(kl, 6);
  CHECK_EQ(vl, 9);
  kl = vl = SENTINEL_SIZE;
  CHECK_RESULT(trunkline_session_custom_parameter(s, 0, key, 16, &kl, value, 9, &vl), B);
  CHECK_EQ(kl, 6);
  CHECK_EQ(vl, 9);
  CHECK_EQ(key[0], 'x');
  CHECK_EQ(value[0], 'x');
  CHECK_OK(trunkline_session_custom_parameter(s, 0, key, 7, &kl, value, 10, &vl));
  CHECK_EQ(kl, 6);
  CHECK_EQ(vl, 9);

  /* Codecs: the output must hold `len` elements. */
  uint8_t codes[8] = {0};
  int16_t samples[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  CHECK_RESULT(trunkline_ulaw_decode(codes, 8, samples, 7), B);
  CHECK_RESULT(trunkline_alaw_decode(codes, 8, samples, 7), B);
  CHECK_EQ(samples[0], 1);
  CHECK_RESULT(trunkline_ulaw_encode(samples, 8, codes, 7), B);
  CHECK_RESULT(trunkline_alaw_encode(samples, 8, codes, 7), B);
  CHECK_RESULT(trunkline_ulaw_encode(samples, 8, NULL, 0), B);
  CHECK_EQ(codes[0], 0);

  /* Counters: a short buffer gets the first ones (not an error). */
  uint64_t v[3];
  CHECK_OK(trunkline_session_stats(s, v, 3, &got));
  CHECK_EQ(got, 3);
  trunkline_session_free(s);
  trunkline_engine_free(e);
}

void test_failed(void) {
  for (uint32_t workers = 0; workers <= 1; workers++) {
    const trunkline_result F = TRUNKLINE_RESULT_FAILED;
    trunkline_engine *e = engine_with(workers, 4);
    trunkline_session *s = started_session(e, NULL);
    trunkline_session *other = started_session(e, NULL);
    REQUIRE(s != NULL && other != NULL);
    CHECK_OK(trunkline_test_fail_session(s));
    size_t n = SENTINEL_SIZE;
    int16_t pcm[64] = {0};
    uint8_t bytes[MSG_CAP];
    trunkline_message_kind kind;
    trunkline_event ev = {.struct_size = sizeof ev};
    char msg[MSG_CAP];
    msg_connected(msg, sizeof msg);
    CHECK_RESULT(push_text(s, msg), F);
    CHECK_RESULT(trunkline_session_read_audio(s, pcm, 64, &n), F);
    CHECK_RESULT(trunkline_session_play(s, pcm, 64, 24000, &n), F);
    CHECK_RESULT(trunkline_session_mark(s, "m"), F);
    CHECK_RESULT(trunkline_session_interrupt(s), F);
    CHECK_RESULT(trunkline_session_outbound_len(s, &n), F);
    CHECK_RESULT(trunkline_session_next_outbound(s, bytes, sizeof bytes, &n, &kind), F);
    CHECK_RESULT(trunkline_session_poll_event(s, &ev), F);
    CHECK_EQ(n, SENTINEL_SIZE);
    /* Counters still work; then it is closed and freed. */
    uint64_t v[64];
    CHECK_OK(trunkline_session_stats(s, v, 64, &n));
    CHECK_OK(trunkline_session_close(s));
    CHECK_RESULT(trunkline_session_poll_event(s, &ev), TRUNKLINE_RESULT_CLOSED);
    trunkline_session_free(s);
    /* The engine and its other session go on. */
    CHECK_OK(push_text(other, msg));
    trunkline_result r = TRUNKLINE_RESULT_EMPTY;
    for (double deadline = now_ms() + 5000; r == TRUNKLINE_RESULT_EMPTY && now_ms() < deadline;) {
      r = trunkline_session_poll_event(other, &ev);
      if (r == TRUNKLINE_RESULT_EMPTY) trunkline_engine_wait(e, 20);
    }
    CHECK_OK(r);
    trunkline_session_free(other);
    trunkline_engine_free(e);
  }
}

void test_too_many_sessions(void) {
  for (uint32_t workers = 0; workers <= 1; workers++) {
    trunkline_engine *e = engine_with(workers, 1);
    REQUIRE(e != NULL);
    trunkline_session *a = NULL;
    REQUIRE_OK(trunkline_session_open(e, NULL, &a));
    trunkline_session *b = (trunkline_session *)&a;
    CHECK_RESULT(trunkline_session_open(e, NULL, &b), TRUNKLINE_RESULT_TOO_MANY_SESSIONS);
    CHECK(b == (trunkline_session *)&a);
    /* Closing frees the slot (before the handle is freed). */
    CHECK_OK(trunkline_session_close(a));
    b = NULL;
    CHECK_OK(trunkline_session_open(e, NULL, &b));
    trunkline_session *c = NULL;
    CHECK_RESULT(trunkline_session_open(e, NULL, &c), TRUNKLINE_RESULT_TOO_MANY_SESSIONS);
    trunkline_session_free(a);
    trunkline_session_free(b);
    trunkline_engine_free(e);
  }
}

void test_io(void) {
  /* With every file descriptor up to the limit taken, the wakeup eventfd cannot be created. */
  struct rlimit saved;
  REQUIRE(getrlimit(RLIMIT_NOFILE, &saved) == 0);
  int lowest = dup(0); /* the lowest free fd */
  REQUIRE(lowest >= 0);
  close(lowest);
  struct rlimit low = saved;
  low.rlim_cur = (rlim_t)lowest;
  REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);
  trunkline_engine_config cfg;
  trunkline_engine_config_default(&cfg, sizeof cfg);
  cfg.workers_per_core = false;
  cfg.workers = 0;
  trunkline_engine *e = (trunkline_engine *)&cfg;
  trunkline_result r = trunkline_engine_new(&cfg, &e);
  int restored = setrlimit(RLIMIT_NOFILE, &saved);
  CHECK_EQ(restored, 0);
  CHECK_RESULT(r, TRUNKLINE_RESULT_IO);
  CHECK(e == (trunkline_engine *)&cfg);
  if (r == TRUNKLINE_RESULT_OK) trunkline_engine_free(e);
  /* With the limit back, engines start again. */
  e = NULL;
  CHECK_OK(trunkline_engine_new(&cfg, &e));
  trunkline_engine_free(e);
}

void test_timeout(void) {
  for (uint32_t workers = 0; workers <= 1; workers++) {
    trunkline_engine *e = engine_with(workers, 4);
    REQUIRE(e != NULL);
    CHECK_RESULT(trunkline_engine_wait(e, 0), TRUNKLINE_RESULT_TIMEOUT);
    double t0 = now_ms();
    CHECK_RESULT(trunkline_engine_wait(e, 50), TRUNKLINE_RESULT_TIMEOUT);
    CHECK(now_ms() - t0 >= 45);
    /* Output wakes a wait with no timeout (negative) or the longest one. */
    trunkline_session *s = NULL;
    REQUIRE_OK(trunkline_session_open(e, NULL, &s));
    char msg[MSG_CAP];
    msg_connected(msg, sizeof msg);
    int64_t forever[2] = {-1, INT64_MAX};
    for (int i = 0; i < 2; i++) {
      CHECK_OK(push_text(s, msg));
      if (workers == 0) {
        /* Inline: the host's own calls do the work; the event is there at once. */
        trunkline_event ev = {.struct_size = sizeof ev};
        CHECK_OK(trunkline_session_poll_event(s, &ev));
      } else {
        CHECK_OK(trunkline_engine_wait(e, forever[i]));
      }
    }
    trunkline_session_free(s);
    trunkline_engine_free(e);
  }
}

/* Pushes one message and returns the protocol error it raised (0 if none). */
static uint32_t error_of(trunkline_session *s, const char *msg, size_t len, uint32_t kind, char *field) {
  if (trunkline_session_push(s, (const uint8_t *)msg, len, kind) != TRUNKLINE_RESULT_OK) return UINT32_MAX;
  trunkline_event ev = {.struct_size = sizeof ev};
  uint32_t code = 0;
  while (trunkline_session_poll_event(s, &ev) == TRUNKLINE_RESULT_OK) {
    if (ev.kind == TRUNKLINE_EVENT_KIND_PROTOCOL_ERROR) {
      code = ev.error;
      if (field) strcpy(field, ev.name);
    }
  }
  return code;
}

static uint32_t error_of_text(trunkline_session *s, const char *msg, char *field) {
  return error_of(s, msg, strlen(msg), TRUNKLINE_MESSAGE_KIND_TEXT, field);
}

void test_bad_input_is_reported(void) {
  trunkline_engine *e = engine_with(0, 4);
  trunkline_session_config cfg;
  REQUIRE_OK(trunkline_session_config_default(&cfg, sizeof cfg));
  cfg.max_message_bytes = 2048;
  cfg.inbound_ring_bytes = 8192;
  trunkline_session *s = NULL;
  REQUIRE(e != NULL);
  REQUIRE_OK(trunkline_session_open(e, &cfg, &s));
  char msg[MSG_CAP];
  char field[TRUNKLINE_EVENT_NAME_CAPACITY];
  uint8_t frame[FRAME_BYTES];
  memset(frame, 0xFF, sizeof frame);

  msg_media(msg, sizeof msg, 2, 1, 0, frame, sizeof frame);
  CHECK_EQ(error_of_text(s, msg, NULL), TRUNKLINE_PROTOCOL_ERROR_MEDIA_BEFORE_START);
  CHECK_EQ(error_of_text(s, "{\"event\":", NULL), TRUNKLINE_PROTOCOL_ERROR_MALFORMED_JSON);
  CHECK_EQ(error_of(s, "\x01\x02", 2, TRUNKLINE_MESSAGE_KIND_BINARY, NULL),
           TRUNKLINE_PROTOCOL_ERROR_UNEXPECTED_FRAME_KIND);
  CHECK_EQ(error_of_text(s, "{\"event\":\"bogus\"}", NULL), TRUNKLINE_PROTOCOL_ERROR_UNKNOWN_EVENT);
  msg_start(msg, sizeof msg);
  CHECK_EQ(error_of_text(s, msg, NULL), 0);
  CHECK_EQ(error_of_text(s, msg, NULL), TRUNKLINE_PROTOCOL_ERROR_DUPLICATE_START);
  CHECK_EQ(error_of_text(s,
                         "{\"event\":\"media\",\"sequenceNumber\":\"3\",\"media\":{\"track\":\"inbound\","
                         "\"chunk\":\"1\",\"timestamp\":\"0\",\"payload\":\"!!!!\"},\"streamSid\":\"" STREAM_SID
                         "\"}",
                         NULL),
           TRUNKLINE_PROTOCOL_ERROR_INVALID_BASE64);
  field[0] = '\0';
  CHECK_EQ(error_of_text(s,
                         "{\"event\":\"media\",\"sequenceNumber\":\"4\",\"media\":{\"track\":\"inbound\","
                         "\"chunk\":\"1\",\"timestamp\":\"0\"},\"streamSid\":\"" STREAM_SID "\"}",
                         field),
           TRUNKLINE_PROTOCOL_ERROR_MISSING_FIELD);
  CHECK(strcmp(field, "media.payload") == 0);
  msg_mark(msg, sizeof msg, 5, "never-sent");
  CHECK_EQ(error_of_text(s, msg, NULL), TRUNKLINE_PROTOCOL_ERROR_UNKNOWN_MARK);
  /* Over max_message_bytes: dropped and reported, the rest of the call unaffected. */
  char *big = malloc(3000);
  REQUIRE(big != NULL);
  memset(big, ' ', 3000);
  CHECK_EQ(error_of(s, big, 3000, TRUNKLINE_MESSAGE_KIND_TEXT, NULL), TRUNKLINE_PROTOCOL_ERROR_MESSAGE_TOO_LARGE);
  free(big);
  /* A stop naming another stream is refused and does not end the call. */
  CHECK_EQ(error_of_text(s, "{\"event\":\"stop\",\"streamSid\":\"MZ-another-stream\"}", NULL),
           TRUNKLINE_PROTOCOL_ERROR_FOREIGN_STREAM);
  /* Good media still flows. */
  msg_media(msg, sizeof msg, 6, 1, 0, frame, sizeof frame);
  CHECK_EQ(error_of_text(s, msg, NULL), 0);
  CHECK_EQ(drain_audio(s, NULL), 20 * 16);
  msg_stop(msg, sizeof msg, 7);
  CHECK_EQ(error_of_text(s, msg, NULL), 0);
  msg_dtmf(msg, sizeof msg, 8, '1');
  CHECK_EQ(error_of_text(s, msg, NULL), TRUNKLINE_PROTOCOL_ERROR_AFTER_STOP);
  uint64_t v[64];
  size_t n = 0;
  CHECK_OK(trunkline_session_stats(s, v, 64, &n));
  CHECK_EQ(stat_by_name(v, n, "protocol_errors"), 11);
  trunkline_session_free(s);
  trunkline_engine_free(e);
}
