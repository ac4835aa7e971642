#define _POSIX_C_SOURCE 200809L

#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t b64_encode(const uint8_t *in, size_t len, char *out) {
  size_t o = 0;
  size_t i = 0;
  for (; i + 3 <= len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = B64[v >> 18 & 63];
    out[o++] = B64[v >> 12 & 63];
    out[o++] = B64[v >> 6 & 63];
    out[o++] = B64[v & 63];
  }
  if (len - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[o++] = B64[v >> 18 & 63];
    out[o++] = B64[v >> 12 & 63];
    out[o++] = '=';
    out[o++] = '=';
  } else if (len - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[o++] = B64[v >> 18 & 63];
    out[o++] = B64[v >> 12 & 63];
    out[o++] = B64[v >> 6 & 63];
    out[o++] = '=';
  }
  out[o] = '\0';
  return o;
}

static int b64_value(char c) {
  const char *p = c ? strchr(B64, c) : NULL;
  return p ? (int)(p - B64) : -1;
}

size_t b64_decode(const char *in, size_t len, uint8_t *out, size_t cap) {
  if (len % 4 != 0) return SIZE_MAX;
  size_t o = 0;
  for (size_t i = 0; i < len; i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; k++) {
      if (in[i + k] == '=' && i + 4 == len && k >= 2) {
        v[k] = 0;
        pad++;
      } else if (pad > 0 || (v[k] = b64_value(in[i + k])) < 0) {
        return SIZE_MAX;
      }
    }
    uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
    uint8_t bytes[3] = {(uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w};
    for (int k = 0; k < 3 - pad; k++) {
      if (o == cap) return SIZE_MAX;
      out[o++] = bytes[k];
    }
  }
  return o;
}

bool fixture_load(fixture *f) {
  memset(f, 0, sizeof *f);
  char path[1024];
  snprintf(path, sizeof path, "%s/speech_8k.ulaw", tl_opts.fixtures);
  FILE *fp = fopen(path, "rb");
  if (!fp) {
    fprintf(stderr, "cannot open %s\n", path);
    return false;
  }
  fseek(fp, 0, SEEK_END);
  long n = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  f->audio = malloc((size_t)n);
  f->len = f->audio ? fread(f->audio, 1, (size_t)n, fp) : 0;
  fclose(fp);
  if (f->len != (size_t)n) return false;
  snprintf(path, sizeof path, "%s/speech_8k.labels", tl_opts.fixtures);
  fp = fopen(path, "r");
  if (!fp) return false;
  unsigned long long a, b;
  while (f->label_count < 8 && fscanf(fp, "%llu %llu", &a, &b) == 2) {
    f->labels[f->label_count][0] = a;
    f->labels[f->label_count][1] = b;
    f->label_count++;
  }
  fclose(fp);
  return f->label_count > 0;
}

void fixture_free(fixture *f) {
  free(f->audio);
  f->audio = NULL;
}

size_t msg_connected(char *buf, size_t cap) {
  return (size_t)snprintf(buf, cap, "{\"event\":\"connected\",\"protocol\":\"Call\",\"version\":\"1.0.0\"}");
}

size_t msg_start(char *buf, size_t cap) {
  return (size_t)snprintf(
      buf, cap,
      "{\"event\":\"start\",\"sequenceNumber\":\"1\",\"start\":{\"accountSid\":\"" ACCOUNT_SID
      "\",\"streamSid\":\"" STREAM_SID "\",\"callSid\":\"" CALL_SID
      "\",\"tracks\":[\"inbound\"],\"mediaFormat\":{\"encoding\":\"audio/x-mulaw\","
      "\"sampleRate\":8000,\"channels\":1},\"customParameters\":{\"caller\":\"+15550100\","
      "\"lang\":\"en-GB\"}},\"streamSid\":\"" STREAM_SID "\"}");
}

size_t msg_media(char *buf, size_t cap, unsigned seq, unsigned chunk, unsigned timestamp_ms,
                 const uint8_t *payload, size_t payload_len) {
  char b64[1024];
  if (payload_len > 700) return 0;
  b64_encode(payload, payload_len, b64);
  return (size_t)snprintf(buf, cap,
                          "{\"event\":\"media\",\"sequenceNumber\":\"%u\",\"media\":{\"track\":"
                          "\"inbound\",\"chunk\":\"%u\",\"timestamp\":\"%u\",\"payload\":\"%s\"},"
                          "\"streamSid\":\"" STREAM_SID "\"}",
                          seq, chunk, timestamp_ms, b64);
}

size_t msg_dtmf(char *buf, size_t cap, unsigned seq, char digit) {
  return (size_t)snprintf(buf, cap,
                          "{\"event\":\"dtmf\",\"streamSid\":\"" STREAM_SID
                          "\",\"sequenceNumber\":\"%u\",\"dtmf\":{\"track\":\"inbound_track\","
                          "\"digit\":\"%c\"}}",
                          seq, digit);
}

size_t msg_mark(char *buf, size_t cap, unsigned seq, const char *name) {
  return (size_t)snprintf(buf, cap,
                          "{\"event\":\"mark\",\"sequenceNumber\":\"%u\",\"streamSid\":\"" STREAM_SID
                          "\",\"mark\":{\"name\":\"%s\"}}",
                          seq, name);
}

size_t msg_stop(char *buf, size_t cap, unsigned seq) {
  return (size_t)snprintf(buf, cap,
                          "{\"event\":\"stop\",\"sequenceNumber\":\"%u\",\"streamSid\":\"" STREAM_SID
                          "\",\"stop\":{\"accountSid\":\"" ACCOUNT_SID "\",\"callSid\":\"" CALL_SID
                          "\"}}",
                          seq);
}

trunkline_result push_text(trunkline_session *s, const char *msg) {
  return trunkline_session_push(s, (const uint8_t *)msg, strlen(msg), TRUNKLINE_MESSAGE_KIND_TEXT);
}

trunkline_result push_text_retry(trunkline_engine *e, trunkline_session *s, const char *msg,
                                 int timeout_ms) {
  double deadline = now_ms() + timeout_ms;
  for (;;) {
    trunkline_result r = push_text(s, msg);
    if (r != TRUNKLINE_RESULT_FULL || now_ms() > deadline) return r;
    trunkline_engine_wait(e, 5);
  }
}

size_t json_string(const char *msg, size_t len, const char *key, char *out, size_t cap) {
  char pattern[128];
  int plen = snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
  if (plen <= 0 || (size_t)plen >= sizeof pattern) return SIZE_MAX;
  for (size_t i = 0; i + (size_t)plen <= len; i++) {
    if (memcmp(msg + i, pattern, (size_t)plen) != 0) continue;
    size_t start = i + (size_t)plen;
    size_t end = start;
    while (end < len && msg[end] != '"') end++;
    if (end == len || end - start >= cap) return SIZE_MAX;
    memcpy(out, msg + start, end - start);
    out[end - start] = '\0';
    return end - start;
  }
  return SIZE_MAX;
}

void parse_outbound(const uint8_t *msg, size_t len, outbound_msg *out) {
  const char *text = (const char *)msg;
  char event[32];
  char sid[128];
  char b64[1024];
  memset(out, 0, sizeof *out);
  out->kind = OUT_OTHER;
  out->stream_sid_ok =
      json_string(text, len, "streamSid", sid, sizeof sid) != SIZE_MAX && strcmp(sid, STREAM_SID) == 0;
  if (json_string(text, len, "event", event, sizeof event) == SIZE_MAX) return;
  if (strcmp(event, "media") == 0) {
    size_t n = json_string(text, len, "payload", b64, sizeof b64);
    if (n == SIZE_MAX) return;
    out->payload_b64_len = n;
    out->payload_len = b64_decode(b64, n, out->payload, sizeof out->payload);
    if (out->payload_len == SIZE_MAX) return;
    out->kind = OUT_MEDIA;
  } else if (strcmp(event, "mark") == 0) {
    if (json_string(text, len, "name", out->name, sizeof out->name) == SIZE_MAX) return;
    out->kind = OUT_MARK;
  } else if (strcmp(event, "clear") == 0) {
    out->kind = OUT_CLEAR;
  }
}

double rms_s16(const int16_t *pcm, size_t n) {
  double sum = 0;
  for (size_t i = 0; i < n; i++) sum += (double)pcm[i] * pcm[i];
  return n ? sqrt(sum / (double)n) : 0;
}

void sine(int16_t *out, size_t n, unsigned rate, double freq, double amplitude) {
  const double pi = 3.14159265358979323846;
  for (size_t i = 0; i < n; i++) out[i] = (int16_t)(amplitude * sin(2 * pi * freq * (double)i / rate));
}

trunkline_engine *engine_with_workers(uint32_t workers) {
  trunkline_engine_config cfg;
  trunkline_engine *e = NULL;
  if (trunkline_engine_config_default(&cfg, sizeof cfg) != TRUNKLINE_RESULT_OK) return NULL;
  cfg.workers_per_core = false;
  cfg.workers = workers;
  return trunkline_engine_new(&cfg, &e) == TRUNKLINE_RESULT_OK ? e : NULL;
}

double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void sleep_ms(unsigned ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

size_t drain_events(trunkline_session *s, event_log *log) {
  size_t n = 0;
  trunkline_event ev = {.struct_size = sizeof ev};
  while (trunkline_session_poll_event(s, &ev) == TRUNKLINE_RESULT_OK) {
    if (log->count < sizeof log->items / sizeof log->items[0]) log->items[log->count++] = ev;
    n++;
  }
  return n;
}

size_t find_event(const event_log *log, size_t from, trunkline_event_kind kind) {
  for (size_t i = from; i < log->count; i++)
    if (log->items[i].kind == kind) return i;
  return SIZE_MAX;
}

const char *event_kind_name(trunkline_event_kind kind) {
  switch (kind) {
    case TRUNKLINE_EVENT_KIND_CONNECTED: return "CONNECTED";
    case TRUNKLINE_EVENT_KIND_STARTED: return "STARTED";
    case TRUNKLINE_EVENT_KIND_SPEECH_STARTED: return "SPEECH_STARTED";
    case TRUNKLINE_EVENT_KIND_SPEECH_STOPPED: return "SPEECH_STOPPED";
    case TRUNKLINE_EVENT_KIND_BARGE_IN: return "BARGE_IN";
    case TRUNKLINE_EVENT_KIND_INTERRUPTED: return "INTERRUPTED";
    case TRUNKLINE_EVENT_KIND_MARK_PLAYED: return "MARK_PLAYED";
    case TRUNKLINE_EVENT_KIND_MARK_CLEARED: return "MARK_CLEARED";
    case TRUNKLINE_EVENT_KIND_DTMF: return "DTMF";
    case TRUNKLINE_EVENT_KIND_STOPPED: return "STOPPED";
    case TRUNKLINE_EVENT_KIND_PROTOCOL_ERROR: return "PROTOCOL_ERROR";
  }
  return "?";
}

void print_events(const event_log *log) {
  for (size_t i = 0; i < log->count; i++) {
    const trunkline_event *e = &log->items[i];
    fprintf(stderr, "    %-15s stream_ms=%llu played_ms=%llu digit=%c error=%u name=%s\n",
            event_kind_name(e->kind), (unsigned long long)e->stream_ms,
            (unsigned long long)e->played_ms, e->digit ? e->digit : '-', e->error, e->name);
  }
}

size_t drain_audio(trunkline_session *s, double *energy) {
  int16_t buf[2048];
  size_t total = 0;
  size_t n;
  while (trunkline_session_read_audio(s, buf, sizeof buf / sizeof buf[0], &n) == TRUNKLINE_RESULT_OK) {
    total += n;
    if (energy)
      for (size_t i = 0; i < n; i++) *energy += (double)buf[i] * buf[i];
  }
  return total;
}

size_t plan_message(const call_plan *p, size_t i, char *buf, size_t cap, size_t *media_ms_after) {
  if (i == 0) {
    *media_ms_after = 0;
    return msg_connected(buf, cap);
  }
  if (i == 1) {
    *media_ms_after = 0;
    return msg_start(buf, cap);
  }
  size_t k = i - 2;
  for (size_t f = 0; f < p->frames; f++) {
    size_t copies = f == p->gap_frame ? 0 : f == p->dup_frame ? 2 : 1;
    if (k < copies) {
      *media_ms_after = (f + 1) * 20;
      return msg_media(buf, cap, (unsigned)(2 + f), (unsigned)(f + 1), (unsigned)(f * 20),
                       p->audio->audio + f * FRAME_BYTES, FRAME_BYTES);
    }
    k -= copies;
  }
  *media_ms_after = p->frames * 20;
  if (k == 0) return msg_dtmf(buf, cap, (unsigned)(2 + p->frames), p->digit);
  if (k == 1) return msg_stop(buf, cap, (unsigned)(3 + p->frames));
  return 0;
}

uint64_t stat_by_name(const uint64_t *values, size_t count, const char *name) {
  for (size_t i = 0; i < count; i++) {
    const char *n = trunkline_session_stats_name(i);
    if (n && strcmp(n, name) == 0) return values[i];
  }
  return UINT64_MAX;
}

void read_stats(trunkline_session *s, call_result *r) {
  r->stat_count = 0;
  CHECK_OK(trunkline_session_stats(s, r->stats, sizeof r->stats / sizeof r->stats[0], &r->stat_count));
  CHECK_EQ(r->stat_count, trunkline_session_stats_count());
}

static uint64_t absdiff(uint64_t a, uint64_t b) { return a > b ? a - b : b - a; }

void check_call(const call_plan *p, const call_result *r, unsigned agent_rate) {
  int before = tl_failures();
  uint64_t stream_ms = p->frames * 20;
  CHECK_EQ(r->samples, stream_ms * agent_rate / 1000);
  const event_log *log = &r->events;
  CHECK(log->count >= 4);
  if (log->count >= 2) {
    CHECK_EQ(log->items[0].kind, TRUNKLINE_EVENT_KIND_CONNECTED);
    CHECK_EQ(log->items[1].kind, TRUNKLINE_EVENT_KIND_STARTED);
    CHECK(strcmp(log->items[1].name, CALL_SID) == 0);
  }
  /* Speech: one start/stop pair per labelled utterance that ended (plus the hangover) within the
   * stream, each near its label. */
  size_t expected_pairs = 0;
  for (size_t l = 0; l < p->audio->label_count; l++)
    if (p->audio->labels[l][1] + 500 <= stream_ms) expected_pairs++;
  size_t pairs = 0;
  size_t dtmf_at = SIZE_MAX;
  for (size_t i = 2; i < log->count; i++) {
    const trunkline_event *e = &log->items[i];
    switch (e->kind) {
      case TRUNKLINE_EVENT_KIND_SPEECH_STARTED:
        CHECK(dtmf_at == SIZE_MAX);
        CHECK(pairs < expected_pairs);
        if (pairs < expected_pairs) CHECK(absdiff(e->stream_ms, p->audio->labels[pairs][0]) <= 60);
        CHECK(i + 1 < log->count && log->items[i + 1].kind == TRUNKLINE_EVENT_KIND_SPEECH_STOPPED);
        break;
      case TRUNKLINE_EVENT_KIND_SPEECH_STOPPED:
        CHECK(pairs < expected_pairs);
        if (pairs < expected_pairs) CHECK(absdiff(e->stream_ms, p->audio->labels[pairs][1]) <= 120);
        pairs++;
        break;
      case TRUNKLINE_EVENT_KIND_DTMF:
        CHECK(dtmf_at == SIZE_MAX);
        dtmf_at = i;
        CHECK_EQ(e->digit, p->digit);
        CHECK_EQ(e->stream_ms, stream_ms);
        break;
      case TRUNKLINE_EVENT_KIND_STOPPED:
        CHECK_EQ(i, log->count - 1);
        break;
      case TRUNKLINE_EVENT_KIND_MARK_PLAYED:
      case TRUNKLINE_EVENT_KIND_MARK_CLEARED:
      case TRUNKLINE_EVENT_KIND_INTERRUPTED:
        break; /* the agent side: checked by the callers */
      default:
        tl_fail(__FILE__, __LINE__, "unexpected event %s at %zu", event_kind_name(e->kind), i);
    }
  }
  CHECK_EQ(pairs, expected_pairs);
  CHECK(dtmf_at != SIZE_MAX);
  CHECK(r->stopped);
  CHECK(log->count > 0 && log->items[log->count - 1].kind == TRUNKLINE_EVENT_KIND_STOPPED);

  const uint64_t *v = r->stats;
  size_t n = r->stat_count;
  CHECK_EQ(stat_by_name(v, n, "frames_duplicate"), p->dup_frame < p->frames ? 1 : 0);
  CHECK_EQ(stat_by_name(v, n, "gap_fill_samples"), p->gap_frame < p->frames ? FRAME_BYTES : 0);
  CHECK_EQ(stat_by_name(v, n, "inbound_samples"), p->frames * FRAME_BYTES);
  CHECK_EQ(stat_by_name(v, n, "agent_samples_out"), r->samples);
  CHECK_EQ(stat_by_name(v, n, "agent_samples_dropped"), 0);
  CHECK_EQ(stat_by_name(v, n, "protocol_errors"), 0);
  CHECK_EQ(stat_by_name(v, n, "frames_late"), 0);
  CHECK_EQ(stat_by_name(v, n, "dtmf_digits"), 1);
  CHECK_EQ(stat_by_name(v, n, "speech_segments"), expected_pairs);
  CHECK_EQ(stat_by_name(v, n, "events_dropped"), 0);
  if (tl_failures() != before) print_events(log);
}

size_t plan_count(const call_plan *p) {
  return 2 + p->frames - (p->gap_frame < p->frames) + (p->dup_frame < p->frames) + 2;
}

size_t plan_media_end(const call_plan *p) { return plan_count(p) - 2; }

void drive_threaded(trunkline_engine *e, trunkline_session *s, const call_plan *p,
                    unsigned agent_rate, call_result *r, size_t from, size_t to, int timeout_ms) {
  char buf[MSG_CAP];
  size_t next = from;
  size_t ms_after = 0;
  size_t len = 0;
  bool have = false;
  bool to_stop = to >= plan_count(p);
  uint64_t want_samples = 0;
  if (to > 0) {
    plan_message(p, to - 1, buf, sizeof buf, &ms_after);
    want_samples = (uint64_t)ms_after * agent_rate / 1000;
  }
  double deadline = now_ms() + timeout_ms;
  while (now_ms() < deadline) {
    bool progressed = false;
    while (next < to) {
      if (!have) {
        len = plan_message(p, next, buf, sizeof buf, &ms_after);
        have = len > 0;
        if (!have) break;
      }
      uint64_t read_ms = r->samples * 1000 / agent_rate;
      if (ms_after > read_ms + 400) break;
      trunkline_result res = push_text(s, buf);
      if (res == TRUNKLINE_RESULT_FULL) break;
      if (res != TRUNKLINE_RESULT_OK) {
        tl_fail(__FILE__, __LINE__, "push: %s", trunkline_result_message((uint32_t)res));
        return;
      }
      have = false;
      next++;
      progressed = true;
    }
    size_t got = drain_audio(s, NULL);
    r->samples += got;
    size_t before = r->events.count;
    drain_events(s, &r->events);
    for (size_t i = before; i < r->events.count; i++)
      if (r->events.items[i].kind == TRUNKLINE_EVENT_KIND_STOPPED) r->stopped = true;
    if (next == to && (to_stop ? r->stopped : r->samples >= want_samples)) {
      r->samples += drain_audio(s, NULL);
      return;
    }
    if (!progressed && got == 0 && r->events.count == before) trunkline_engine_wait(e, 20);
  }
  tl_fail(__FILE__, __LINE__, "messages %zu..%zu not done within %d ms (pushed to %zu, %zu samples)",
          from, to, timeout_ms, next, r->samples);
}

trunkline_engine *manual_clock_engine(void) {
  trunkline_engine_config cfg;
  trunkline_engine *e = NULL;
  if (trunkline_engine_config_default(&cfg, sizeof cfg) != TRUNKLINE_RESULT_OK) return NULL;
  cfg.workers_per_core = false;
  cfg.workers = 0;
  return trunkline_engine_new_manual_clock(&cfg, &e) == TRUNKLINE_RESULT_OK ? e : NULL;
}
