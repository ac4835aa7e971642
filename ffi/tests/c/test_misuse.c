/* C ABI misuse not covered elsewhere: lengths that lie (larger than any buffer can be), and a
 * session closed by one thread while four others are calling every function on it. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "tests.h"
#include "util.h"

#define SENTINEL_SIZE ((size_t)0x5EED5EED)

/* An inline engine and a session on it that has taken Twilio's start; false if any step failed. */
static bool started_session(trunkline_engine **e, trunkline_session **s) {
  *s = NULL;
  *e = engine_with_workers(0);
  if (*e == NULL || trunkline_session_open(*e, NULL, s) != TRUNKLINE_RESULT_OK) return false;
  char msg[MSG_CAP];
  msg_start(msg, sizeof msg);
  return push_text(*s, msg) == TRUNKLINE_RESULT_OK;
}

void test_lying_lengths(void) {
  const trunkline_result E = TRUNKLINE_RESULT_INVALID_ARGUMENT;
  trunkline_engine *e = NULL;
  trunkline_session *s = NULL;
  REQUIRE(started_session(&e, &s));
  char msg[MSG_CAP];
  uint8_t bytes[64] = {0};
  int16_t pcm[64] = {0};
  uint64_t values[64];
  size_t n = SENTINEL_SIZE;
  trunkline_message_kind kind = TRUNKLINE_MESSAGE_KIND_BINARY;
  /* No buffer can be longer than PTRDIFF_MAX bytes: such a length is refused before anything is
   * read or written through the pointer. */
  const size_t lies[] = {SIZE_MAX, SIZE_MAX / 2 + 1, (size_t)PTRDIFF_MAX + 1};
  for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
    size_t len = lies[i];
    CHECK_RESULT(trunkline_session_push(s, bytes, len, TRUNKLINE_MESSAGE_KIND_TEXT), E);
    CHECK_RESULT(trunkline_session_push(s, bytes, len, TRUNKLINE_MESSAGE_KIND_BINARY), E);
    CHECK_RESULT(trunkline_session_play(s, pcm, len, 8000, &n), E);
    CHECK_RESULT(trunkline_session_read_audio(s, pcm, len, &n), E);
    CHECK_RESULT(trunkline_session_next_outbound(s, bytes, len, &n, &kind), E);
    CHECK_RESULT(trunkline_session_stats(s, values, len, &n), E);
    CHECK_RESULT(trunkline_ulaw_decode(bytes, len, pcm, 64), E);
    CHECK_RESULT(trunkline_ulaw_encode(pcm, 64, bytes, len), E);
    CHECK_RESULT(trunkline_alaw_encode(pcm, len, bytes, 64), E);
    CHECK_RESULT(trunkline_alaw_decode(bytes, 64, pcm, len), E);
  }
  /* Half of SIZE_MAX samples is still more than PTRDIFF_MAX bytes of s16. */
  CHECK_RESULT(trunkline_session_play(s, pcm, (size_t)PTRDIFF_MAX / 2 + 1, 8000, &n), E);
  CHECK_EQ(n, SENTINEL_SIZE);
  CHECK_EQ(kind, TRUNKLINE_MESSAGE_KIND_BINARY);
  /* Nothing was taken and the session is fine. */
  CHECK_OK(trunkline_session_stats(s, values, 64, &n));
  CHECK_EQ(stat_by_name(values, n, "messages_in"), 1);
  CHECK_EQ(stat_by_name(values, n, "protocol_errors"), 0);
  msg_media(msg, sizeof msg, 2, 1, 0, bytes, sizeof bytes);
  CHECK_OK(push_text(s, msg));
  trunkline_session_free(s);
  trunkline_engine_free(e);
}

/* Two buffers of one call that overlap would alias in the library (an in-place G.711 conversion,
 * a custom parameter's key and value in one buffer): refused, nothing written. */
void test_overlapping_buffers(void) {
  const trunkline_result E = TRUNKLINE_RESULT_INVALID_ARGUMENT;
  int16_t pcm[64];
  for (int i = 0; i < 64; i++) pcm[i] = (int16_t)(i * 100);
  int16_t before[64];
  memcpy(before, pcm, sizeof pcm);
  CHECK_RESULT(trunkline_ulaw_encode(pcm, 64, (uint8_t *)pcm, sizeof pcm), E);
  CHECK_RESULT(trunkline_alaw_encode(pcm, 64, (uint8_t *)pcm + 1, 64), E);
  CHECK_RESULT(trunkline_ulaw_decode((const uint8_t *)pcm, 64, pcm, 64), E);
  CHECK_RESULT(trunkline_alaw_decode((const uint8_t *)pcm + 64, 64, pcm, 64), E);
  CHECK(memcmp(before, pcm, sizeof pcm) == 0);
  /* Next to each other is fine. */
  uint8_t bytes[128];
  CHECK_OK(trunkline_ulaw_encode(pcm, 64, bytes, 64));
  CHECK_OK(trunkline_ulaw_decode(bytes, 64, pcm, 64));

  trunkline_engine *e = NULL;
  trunkline_session *s = NULL;
  REQUIRE(started_session(&e, &s));
  trunkline_event ev;
  ev.struct_size = sizeof ev;
  while (trunkline_session_poll_event(s, &ev) == TRUNKLINE_RESULT_OK) {
  }
  char text[64];
  size_t kn = SENTINEL_SIZE, vn = SENTINEL_SIZE;
  CHECK_RESULT(trunkline_session_custom_parameter(s, 0, text, 40, &kn, text + 20, 40, &vn), E);
  CHECK_EQ(kn, SENTINEL_SIZE);
  CHECK_OK(trunkline_session_custom_parameter(s, 0, text, 32, &kn, text + 32, 32, &vn));
  trunkline_session_free(s);
  trunkline_engine_free(e);
}

typedef struct {
  trunkline_engine *engine;
  trunkline_session *session;
  atomic_bool *stop;
  unsigned seed;
  size_t calls;
  size_t closed_seen;
} hammer_args;

static bool allowed(trunkline_result r) {
  return r == TRUNKLINE_RESULT_OK || r == TRUNKLINE_RESULT_FULL || r == TRUNKLINE_RESULT_EMPTY ||
         r == TRUNKLINE_RESULT_CLOSED || r == TRUNKLINE_RESULT_BUFFER_TOO_SMALL;
}

/* Calls every session function, in turn, until told to stop; checks each result is a defined
 * one, and that once CLOSED has been seen nothing succeeds again. */
static void *hammer(void *arg) {
  hammer_args *a = arg;
  char msg[MSG_CAP];
  uint8_t ulaw[160];
  memset(ulaw, 0xFF, sizeof ulaw);
  uint8_t out[MSG_CAP];
  int16_t pcm[480];
  for (size_t i = 0; i < 480; i++) pcm[i] = (int16_t)(i * 37);
  uint64_t values[64];
  char text[64];
  char text2[64];
  trunkline_event ev = {.struct_size = sizeof ev};
  trunkline_start_info info = {.struct_size = sizeof info};
  trunkline_message_kind kind;
  size_t n;
  size_t n2;
  unsigned seq = 2 + a->seed * 1000000u;
  bool closed = false;
  while (!atomic_load(a->stop)) {
    for (int op = 0; op < 12; op++) {
      trunkline_result r = TRUNKLINE_RESULT_OK;
      switch (op) {
        case 0:
          msg_media(msg, sizeof msg, seq, seq, (seq % 1000000u) * 20, ulaw, sizeof ulaw);
          seq++;
          r = push_text(a->session, msg);
          break;
        case 1: r = trunkline_session_read_audio(a->session, pcm, 480, &n); break;
        case 2: r = trunkline_session_play(a->session, pcm, 480, 24000, &n); break;
        case 3: r = trunkline_session_mark(a->session, "hammer"); break;
        case 4:
          r = a->seed == 0 ? trunkline_session_interrupt(a->session) : trunkline_session_outbound_len(a->session, &n);
          break;
        case 5: r = trunkline_session_outbound_len(a->session, &n); break;
        case 6: r = trunkline_session_next_outbound(a->session, out, sizeof out, &n, &kind); break;
        case 7: r = trunkline_session_poll_event(a->session, &ev); break;
        case 8: r = trunkline_session_start_info(a->session, &info); break;
        case 9:
          r = trunkline_session_custom_parameter(a->session, 0, text, sizeof text, &n, text2, sizeof text2, &n2);
          break;
        case 10: r = trunkline_session_stats(a->session, values, 64, &n); break;
        default: r = trunkline_engine_wait(a->engine, 0); break;
      }
      /* (TIMEOUT is engine_wait's "nothing happened".) */
      if (!allowed(r) && !(op == 11 && r == TRUNKLINE_RESULT_TIMEOUT)) {
        tl_fail(__FILE__, __LINE__, "op %d: %s", op, trunkline_result_message((uint32_t)r));
        return NULL;
      }
      if (r == TRUNKLINE_RESULT_CLOSED) {
        closed = true;
        a->closed_seen++;
      } else if (closed && r == TRUNKLINE_RESULT_OK && op != 10 && op != 11) {
        tl_fail(__FILE__, __LINE__, "op %d succeeded after CLOSED", op);
        return NULL;
      }
      a->calls++;
    }
  }
  return NULL;
}

void test_close_while_other_threads_call(void) {
  for (uint32_t workers = 0; workers <= 1; workers++) {
    trunkline_engine *e = engine_with_workers(workers);
    REQUIRE(e != NULL);
    trunkline_session *s = NULL;
    REQUIRE_OK(trunkline_session_open(e, NULL, &s));
    char msg[MSG_CAP];
    msg_start(msg, sizeof msg);
    REQUIRE_OK(push_text(s, msg));
    atomic_bool stop;
    atomic_init(&stop, false);
    enum { THREADS = 4 };
    pthread_t threads[THREADS];
    hammer_args args[THREADS];
    for (unsigned t = 0; t < THREADS; t++) {
      args[t] = (hammer_args){.engine = e, .session = s, .stop = &stop, .seed = t};
      REQUIRE(pthread_create(&threads[t], NULL, hammer, &args[t]) == 0);
    }
    sleep_ms(tl_opts.short_mode ? 100 : 300);
    CHECK_OK(trunkline_session_close(s)); /* while they call */
    sleep_ms(50);
    CHECK_OK(trunkline_session_close(s)); /* twice is fine */
    sleep_ms(50);
    atomic_store(&stop, true);
    size_t calls = 0;
    for (unsigned t = 0; t < THREADS; t++) {
      pthread_join(threads[t], NULL);
      calls += args[t].calls;
      CHECK(args[t].closed_seen > 0); /* every thread saw the close */
    }
    CHECK(calls > 1000);
    uint64_t values[64];
    size_t n;
    CHECK_OK(trunkline_session_stats(s, values, 64, &n)); /* counters outlive the close */
    trunkline_session_free(s);
    trunkline_engine_free(e);
  }
}
