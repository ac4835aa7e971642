/*
 * Test support: base64, the speech fixture, Twilio message builders, outbound message parsing,
 * event collection and a call driver used by the inline, threaded and multi-threaded tests.
 */
#ifndef TRUNKLINE_C_TEST_UTIL_H
#define TRUNKLINE_C_TEST_UTIL_H

#include "harness.h"

#define STREAM_SID "MZ18ad3ab5a668481ce02b83e7395059f0"
#define CALL_SID "CA4c5f6b7a8e9d0c1b2a3f4e5d6c7b8a9f"
#define ACCOUNT_SID "AC0123456789abcdef0123456789abcdef"

/* One 20 ms frame of 8 kHz µ-law. */
#define FRAME_BYTES 160
/* Room for any message these tests build or receive. */
#define MSG_CAP 4096

/* Standard base64 with padding; returns the encoded length (out needs 4*ceil(len/3)+1 bytes). */
size_t b64_encode(const uint8_t *in, size_t len, char *out);
/* Decodes standard base64; returns the decoded length, or SIZE_MAX on bad input. */
size_t b64_decode(const char *in, size_t len, uint8_t *out, size_t cap);

/* The committed speech fixture: 8 kHz µ-law and its labelled utterances (ms). */
typedef struct {
  uint8_t *audio;
  size_t len;
  uint64_t labels[8][2];
  size_t label_count;
} fixture;

/* Loads engine/tests/fixtures/speech_8k.{ulaw,labels}; false on failure. */
bool fixture_load(fixture *f);
void fixture_free(fixture *f);

/* Twilio messages (NUL-terminated in buf; returns the length). */
/* A manual-clock engine (inline, the default settings otherwise); NULL on failure. */
trunkline_engine *manual_clock_engine(void);

size_t msg_connected(char *buf, size_t cap);
size_t msg_start(char *buf, size_t cap);
size_t msg_media(char *buf, size_t cap, unsigned seq, unsigned chunk, unsigned timestamp_ms,
                 const uint8_t *payload, size_t payload_len);
size_t msg_dtmf(char *buf, size_t cap, unsigned seq, char digit);
size_t msg_mark(char *buf, size_t cap, unsigned seq, const char *name);
size_t msg_stop(char *buf, size_t cap, unsigned seq);

/* Pushes a NUL-terminated text message. */
trunkline_result push_text(trunkline_session *s, const char *msg);
/* Pushes, retrying on FULL (waiting on the engine) for up to `timeout_ms`. */
trunkline_result push_text_retry(trunkline_engine *e, trunkline_session *s, const char *msg,
                                 int timeout_ms);

/* Copies the string value of `"key":"` in a JSON message (no escapes), NUL-terminated; returns
 * its length or SIZE_MAX if absent or too long. */
size_t json_string(const char *msg, size_t len, const char *key, char *out, size_t cap);

/* An outbound message, parsed. */
typedef enum { OUT_MEDIA, OUT_MARK, OUT_CLEAR, OUT_OTHER } out_kind;
typedef struct {
  out_kind kind;
  size_t payload_b64_len;  /* media */
  uint8_t payload[512];    /* media, decoded */
  size_t payload_len;
  char name[300];          /* mark */
  bool stream_sid_ok;
} outbound_msg;

/* Parses one outbound message. */
void parse_outbound(const uint8_t *msg, size_t len, outbound_msg *out);

/* Root mean square of s16 samples. */
double rms_s16(const int16_t *pcm, size_t n);
/* A sine at `rate`: n samples. */
void sine(int16_t *out, size_t n, unsigned rate, double freq, double amplitude);

/* Milliseconds on a monotonic clock. */
/* An engine with the default settings and `workers` worker threads (0: inline); NULL on failure. */
trunkline_engine *engine_with_workers(uint32_t workers);

double now_ms(void);
void sleep_ms(unsigned ms);

/* Events collected from a session. */
typedef struct {
  trunkline_event items[512];
  size_t count;
} event_log;

/* Polls every pending event into `log`; returns how many were added. */
size_t drain_events(trunkline_session *s, event_log *log);
/* Index of the first event of `kind` at or after `from`, or SIZE_MAX. */
size_t find_event(const event_log *log, size_t from, trunkline_event_kind kind);
const char *event_kind_name(trunkline_event_kind kind);
void print_events(const event_log *log);

/* Reads all ready caller audio; returns the samples read (their sum of squares is added to
 * `*energy` if it is not NULL). */
size_t drain_audio(trunkline_session *s, double *energy);

/* A caller's side of a call: which fixture frames are streamed, which one is lost and which one
 * is sent twice. */
typedef struct {
  const fixture *audio;
  size_t frames;     /* frames streamed (stream time = frames * 20 ms) */
  size_t gap_frame;  /* never sent */
  size_t dup_frame;  /* sent twice */
  char digit;        /* DTMF after the media */
} call_plan;

/* What a driven call produced. */
typedef struct {
  size_t samples;  /* caller PCM read */
  event_log events;
  uint64_t stats[64];
  size_t stat_count;
  bool stopped;
} call_result;

/* Builds message `i` of the plan: 0 connected, 1 start, then media frames (with the gap and the
 * duplicate), then dtmf, then stop. Returns 0 past the end. `*media_ms_after` receives the
 * stream time covered once this message is processed. */
size_t plan_message(const call_plan *p, size_t i, char *buf, size_t cap, size_t *media_ms_after);

/* Checks the caller side of a finished call against the plan and the fixture labels:
 * PCM count, the event order (CONNECTED, STARTED, speech start/stop pairs near the labels,
 * DTMF, STOPPED, with `extra` kinds allowed in between) and the counters. `agent_rate` is the
 * session's. */
void check_call(const call_plan *p, const call_result *r, unsigned agent_rate);

/* A counter by name, from values in trunkline_session_stats_name order (UINT64_MAX if unknown). */
uint64_t stat_by_name(const uint64_t *values, size_t count, const char *name);
/* Reads a session's counters into `r`. */
void read_stats(trunkline_session *s, call_result *r);

/* Number of messages in the plan; the index of its first message after the media (dtmf). */
size_t plan_count(const call_plan *p);
size_t plan_media_end(const call_plan *p);

/* Drives messages [from, to) of a plan through a threaded session on the calling thread: pushes
 * them (never more than ~400 ms of audio ahead of what was read), reads audio and events into
 * `r`, waits with trunkline_engine_wait, until the stream is STOPPED (if `to` includes the stop)
 * or all audio pushed has been read, or `timeout_ms` passes (a failure). */
void drive_threaded(trunkline_engine *e, trunkline_session *s, const call_plan *p,
                    unsigned agent_rate, call_result *r, size_t from, size_t to, int timeout_ms);

#endif
