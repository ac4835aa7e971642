/*
 * Configs that can grow: struct_size (an older caller's smaller struct keeps the defaults of the
 * fields it lacks; 0 or a larger size is refused) and the session's dialect, chosen by name. The
 * output structs (events, start info) that can grow: the caller's struct_size bounds what the
 * library writes, and a bad one is refused before anything is taken.
 */
#define _POSIX_C_SOURCE 200809L

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tests.h"
#include "util.h"

#define INVALID TRUNKLINE_RESULT_INVALID_ARGUMENT

/* The struct_size a program compiled against the header before `last` was added passes: the size
 * of the struct without its last field. Each of these last fields is as aligned as its struct, so
 * that size is where the field starts. */
#define SIZE_WITHOUT(type, last) offsetof(type, last)

/* Sizes no header has: 0, less than the struct_size field itself, or more than the struct. */
#define BAD_SIZES(type) {0, 1, sizeof(size_t) - 1, sizeof(type) + 1, sizeof(type) + 8, SIZE_MAX}
#define N_BAD_SIZES 6

/* Opens a session with `cfg`, pushes connected + start, and tells whether STARTED came back. */
static bool starts_a_call(trunkline_engine *e, const trunkline_session_config *cfg) {
  trunkline_session *s = NULL;
  if (trunkline_session_open(e, cfg, &s) != TRUNKLINE_RESULT_OK) return false;
  char msg[MSG_CAP];
  msg_connected(msg, sizeof msg);
  bool ok = push_text(s, msg) == TRUNKLINE_RESULT_OK;
  msg_start(msg, sizeof msg);
  ok = ok && push_text(s, msg) == TRUNKLINE_RESULT_OK;
  event_log *log = malloc(sizeof *log);
  if (log == NULL) ok = false;
  if (ok) {
    log->count = 0;
    drain_events(s, log);
    ok = find_event(log, 0, TRUNKLINE_EVENT_KIND_STARTED) != SIZE_MAX;
  }
  free(log);
  trunkline_session_free(s);
  return ok;
}

void test_config_default_writes_only_the_callers_struct(void) {
  /* An older caller's struct ends before worker_nice: nothing is written past it. */
  const size_t old = SIZE_WITHOUT(trunkline_engine_config, worker_nice);
  trunkline_engine_config e;
  memset(&e, 0xA5, sizeof e);
  REQUIRE_OK(trunkline_engine_config_default(&e, old));
  CHECK_EQ(e.struct_size, old);
  CHECK(e.workers_per_core);
  CHECK_EQ(e.tick_ms, 10);
  const unsigned char *bytes = (const unsigned char *)&e;
  for (size_t i = old; i < sizeof e; i++) CHECK_EQ(bytes[i], 0xA5);

  trunkline_session_config s;
  memset(&s, 0xA5, sizeof s);
  const size_t old_session = SIZE_WITHOUT(trunkline_session_config, dialect);
  REQUIRE_OK(trunkline_session_config_default(&s, old_session));
  CHECK_EQ(s.struct_size, old_session);
  CHECK_EQ(s.agent_rate, 16000);
  bytes = (const unsigned char *)&s;
  for (size_t i = old_session; i < sizeof s; i++) CHECK_EQ(bytes[i], 0xA5);

  /* A bad size is refused, and nothing is written. */
  const size_t bad_engine[N_BAD_SIZES] = BAD_SIZES(trunkline_engine_config);
  const size_t bad_session[N_BAD_SIZES] = BAD_SIZES(trunkline_session_config);
  for (size_t i = 0; i < N_BAD_SIZES; i++) {
    memset(&e, 0xA5, sizeof e);
    CHECK_RESULT(trunkline_engine_config_default(&e, bad_engine[i]), INVALID);
    CHECK_EQ(((const unsigned char *)&e)[0], 0xA5);
    memset(&s, 0xA5, sizeof s);
    CHECK_RESULT(trunkline_session_config_default(&s, bad_session[i]), INVALID);
    CHECK_EQ(((const unsigned char *)&s)[0], 0xA5);
  }
}

void test_config_struct_size(void) {
  /* Engine: a worker_nice out of range is refused, unless the caller's struct predates the field:
   * then it is not read, and the default (-10) is used. */
  trunkline_engine_config e;
  REQUIRE_OK(trunkline_engine_config_default(&e, sizeof e));
  CHECK_EQ(e.struct_size, sizeof e);
  e.workers_per_core = false;
  e.workers = 1;
  e.worker_nice = 100;
  trunkline_engine *engine = NULL;
  CHECK_RESULT(trunkline_engine_new(&e, &engine), INVALID);
  e.struct_size = SIZE_WITHOUT(trunkline_engine_config, worker_nice);
  REQUIRE_OK(trunkline_engine_new(&e, &engine));
  uint32_t prioritised = 99;
  CHECK_OK(trunkline_engine_prioritised_workers(engine, &prioritised));
  CHECK(prioritised == 0 || prioritised == 1); /* -10 asked: granted or refused, not 100 */
  trunkline_engine_free(engine);
  engine = NULL;
  e.worker_nice = -10;
  const size_t bad_engine[N_BAD_SIZES] = BAD_SIZES(trunkline_engine_config);
  for (size_t i = 0; i < N_BAD_SIZES; i++) {
    e.struct_size = bad_engine[i];
    CHECK_RESULT(trunkline_engine_new(&e, &engine), INVALID);
  }
  CHECK(engine == NULL);

  /* Session: the last field is the dialect. An unknown one is refused; a caller whose struct
   * ends before it gets the default (Twilio), and its other settings are read. */
  engine = engine_with_workers(0);
  REQUIRE(engine != NULL);
  trunkline_session_config s;
  REQUIRE_OK(trunkline_session_config_default(&s, sizeof s));
  CHECK_EQ(s.struct_size, sizeof s);
  s.dialect = "no-such-dialect";
  trunkline_session *session = NULL;
  CHECK_RESULT(trunkline_session_open(engine, &s, &session), INVALID);
  s.struct_size = SIZE_WITHOUT(trunkline_session_config, dialect);
  CHECK(starts_a_call(engine, &s));
  /* ...and a setting before it is still the caller's: an agent rate out of range is refused. */
  s.agent_rate = 11025;
  CHECK_RESULT(trunkline_session_open(engine, &s, &session), INVALID);
  s.agent_rate = 16000;
  const size_t bad_session[N_BAD_SIZES] = BAD_SIZES(trunkline_session_config);
  for (size_t i = 0; i < N_BAD_SIZES; i++) {
    s.struct_size = bad_session[i];
    CHECK_RESULT(trunkline_session_open(engine, &s, &session), INVALID);
  }
  CHECK(session == NULL);
  trunkline_engine_free(engine);
}

void test_dialects(void) {
  trunkline_engine *engine = engine_with_workers(0);
  REQUIRE(engine != NULL);
  trunkline_session_config s;
  REQUIRE_OK(trunkline_session_config_default(&s, sizeof s));
  CHECK(s.dialect == NULL); /* the default */
  CHECK(starts_a_call(engine, &s));
  s.dialect = "twilio";
  CHECK(starts_a_call(engine, &s));
  s.dialect = ""; /* the default too */
  CHECK(starts_a_call(engine, &s));
  /* With the options a carrier needs, as in every API. */
  const char *with_options[] = {"telnyx;codec=L16;rate=16000", "exotel;rate=16000", "jambonz;rate=16000"};
  for (size_t i = 0; i < sizeof with_options / sizeof with_options[0]; i++) {
    s.dialect = with_options[i];
    trunkline_session *opened = NULL;
    CHECK_OK(trunkline_session_open(engine, &s, &opened));
    trunkline_session_free(opened);
  }

  /* The name is read during the call only: a buffer reused afterwards changes nothing. */
  char name[16] = "twilio";
  s.dialect = name;
  trunkline_session *session = NULL;
  REQUIRE_OK(trunkline_session_open(engine, &s, &session));
  memset(name, 'x', sizeof name - 1);
  char msg[MSG_CAP];
  msg_connected(msg, sizeof msg);
  CHECK_OK(push_text(session, msg));
  trunkline_event ev = {.struct_size = sizeof ev};
  CHECK_OK(trunkline_session_poll_event(session, &ev));
  CHECK_EQ(ev.kind, TRUNKLINE_EVENT_KIND_CONNECTED);
  trunkline_session_free(session);

  /* Unknown, differently spelled, not UTF-8, or with an option the dialect cannot take:
   * refused, and nothing is written to `out`. */
  const char *bad[] = {"no-such-dialect", "Twilio", "\xff\xfe", "telnyx;codec=G729", "twilio;rate=16000"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    s.dialect = bad[i];
    session = (trunkline_session *)&s;
    CHECK_RESULT(trunkline_session_open(engine, &s, &session), INVALID);
    CHECK(session == (trunkline_session *)&s);
  }
  trunkline_engine_free(engine);
}

/* A carrier that sends no stop (Vonage): binary frames, a key press with its duration, and the
 * socket closing, told to the engine with trunkline_session_end_stream. */
void test_end_stream_and_dtmf_duration(void) {
  trunkline_engine *engine = engine_with_workers(0);
  REQUIRE(engine != NULL);
  trunkline_session_config c;
  REQUIRE_OK(trunkline_session_config_default(&c, sizeof c));
  c.dialect = "vonage";
  trunkline_session *s = NULL;
  REQUIRE_OK(trunkline_session_open(engine, &c, &s));
  CHECK_OK(push_text(s, "{\"event\":\"websocket:connected\",\"content-type\":\"audio/l16;rate=8000\"}"));
  uint8_t frame[320] = {0};
  for (int i = 0; i < 3; i++) CHECK_OK(trunkline_session_push(s, frame, sizeof frame, TRUNKLINE_MESSAGE_KIND_BINARY));
  CHECK_OK(push_text(s, "{\"event\":\"websocket:dtmf\",\"digit\":\"9\",\"duration\":260}"));
  CHECK_OK(push_text(s, "{\"event\":\"websocket:dtmf\",\"digit\":\"#\"}"));
  static event_log log;
  log.count = 0;
  drain_events(s, &log);
  size_t at = find_event(&log, 0, TRUNKLINE_EVENT_KIND_DTMF);
  REQUIRE(at < log.count);
  CHECK_EQ(log.items[at].digit, '9');
  CHECK_EQ(log.items[at].stream_ms, 60);
  CHECK_EQ(log.items[at].duration_ms, 260);
  at = find_event(&log, at + 1, TRUNKLINE_EVENT_KIND_DTMF);
  REQUIRE(at < log.count);
  CHECK_EQ(log.items[at].digit, '#');
  CHECK_EQ(log.items[at].duration_ms, -1); /* no duration sent */
  CHECK(find_event(&log, 0, TRUNKLINE_EVENT_KIND_STOPPED) == SIZE_MAX);

  CHECK_OK(trunkline_session_end_stream(s));
  log.count = 0;
  drain_events(s, &log);
  CHECK(find_event(&log, 0, TRUNKLINE_EVENT_KIND_STOPPED) < log.count);
  /* Once ended, again is harmless and says nothing more. */
  CHECK_OK(trunkline_session_end_stream(s));
  log.count = 0;
  CHECK_EQ(drain_events(s, &log), 0);
  trunkline_session_free(s);
  trunkline_engine_free(engine);
}

/* An output struct with guard bytes after it, all poisoned, then its struct_size set. */
#define GUARDED(type)      \
  struct {                 \
    type s;                \
    unsigned char guard[64]; \
  }
#define POISON(g, size)             \
  do {                              \
    memset(&(g), 0xA5, sizeof(g));  \
    (g).s.struct_size = (size);     \
  } while (0)

/* Whether bytes [from, sizeof g) of `g` are still poisoned. */
static bool untouched_from(const void *g, size_t size, size_t from) {
  const unsigned char *b = (const unsigned char *)g;
  for (size_t i = from; i < size; i++)
    if (b[i] != 0xA5) return false;
  return true;
}

void test_output_struct_size(void) {
  trunkline_engine *engine = engine_with_workers(0);
  REQUIRE(engine != NULL);
  trunkline_session *s = NULL;
  REQUIRE_OK(trunkline_session_open(engine, NULL, &s));
  char msg[MSG_CAP];
  msg_connected(msg, sizeof msg);
  CHECK_OK(push_text(s, msg));
  msg_start(msg, sizeof msg);
  CHECK_OK(push_text(s, msg));

  /* A bad struct_size is refused: nothing is written past it, and the event stays queued. */
  GUARDED(trunkline_event) ev;
  /* The first version of the struct ended with `name`: shorter is refused, that size is taken. */
  const size_t first_event = SIZE_WITHOUT(trunkline_event, duration_ms);
  const size_t bad_event[] = {0, 1, sizeof(size_t) - 1, sizeof(size_t), first_event - 1, sizeof ev.s + 1, SIZE_MAX};
  for (size_t i = 0; i < sizeof bad_event / sizeof bad_event[0]; i++) {
    POISON(ev, bad_event[i]);
    CHECK_RESULT(trunkline_session_poll_event(s, &ev.s), INVALID);
    CHECK_EQ(ev.s.struct_size, bad_event[i]);
    CHECK(untouched_from(&ev, sizeof ev, sizeof(size_t)));
  }
  /* sizeof the struct: written whole, no byte past it, struct_size as the caller set it. */
  POISON(ev, sizeof ev.s);
  CHECK_OK(trunkline_session_poll_event(s, &ev.s));
  CHECK_EQ(ev.s.kind, TRUNKLINE_EVENT_KIND_CONNECTED);
  CHECK_EQ(ev.s.struct_size, sizeof ev.s);
  CHECK(untouched_from(&ev, sizeof ev, sizeof ev.s));
  /* Reused as it is: struct_size was left alone. */
  CHECK_OK(trunkline_session_poll_event(s, &ev.s));
  CHECK_EQ(ev.s.kind, TRUNKLINE_EVENT_KIND_STARTED);
  CHECK(strcmp(ev.s.name, CALL_SID) == 0);
  CHECK(untouched_from(&ev, sizeof ev, sizeof ev.s));
  /* A caller built against the first version gets its fields, and nothing past them. */
  msg_dtmf(msg, sizeof msg, 3, '4');
  CHECK_OK(push_text(s, msg));
  POISON(ev, first_event);
  CHECK_OK(trunkline_session_poll_event(s, &ev.s));
  CHECK_EQ(ev.s.kind, TRUNKLINE_EVENT_KIND_DTMF);
  CHECK_EQ(ev.s.digit, '4');
  CHECK(untouched_from(&ev, sizeof ev, first_event));

  GUARDED(trunkline_start_info) info;
  const size_t bad_info[] = {0, sizeof(size_t), sizeof info.s - 1, sizeof info.s + 1, SIZE_MAX};
  for (size_t i = 0; i < sizeof bad_info / sizeof bad_info[0]; i++) {
    POISON(info, bad_info[i]);
    CHECK_RESULT(trunkline_session_start_info(s, &info.s), INVALID);
    CHECK(untouched_from(&info, sizeof info, sizeof(size_t)));
  }
  POISON(info, sizeof info.s);
  CHECK_OK(trunkline_session_start_info(s, &info.s));
  CHECK_EQ(info.s.struct_size, sizeof info.s);
  CHECK_EQ(info.s.encoding, TRUNKLINE_AUDIO_ENCODING_MULAW);
  CHECK_EQ(info.s.sample_rate, 8000);
  CHECK_EQ(info.s.channels, 1);
  CHECK(untouched_from(&info, sizeof info, sizeof info.s));

  /* NULL is still NULL_PARAMETER. */
  CHECK_RESULT(trunkline_session_poll_event(s, NULL), TRUNKLINE_RESULT_NULL_PARAMETER);
  CHECK_RESULT(trunkline_session_start_info(s, NULL), TRUNKLINE_RESULT_NULL_PARAMETER);
  trunkline_session_free(s);
  trunkline_engine_free(engine);
}
