/*
 * twilio_to_wav: runs a recorded Twilio Media Streams call through a Trunkline session and writes
 * the caller's audio, as your agent would read it, to a WAV file; prints the events on the way.
 *
 *   twilio_to_wav INPUT.jsonl OUTPUT.wav [AGENT_RATE]
 *
 * INPUT has one carrier message (JSON) per line. AGENT_RATE is 8000, 16000 (default), 24000 or
 * 48000. The engine runs inline (no worker threads): each call on the session does the work, so
 * the output does not depend on timing. Build: see README.md next to this file.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trunkline.h"

/* Longest line accepted (the session's default max_message_bytes is 32 KiB). */
#define LINE_CAP (64 * 1024)

static int failed(const char *what, trunkline_result r) {
  fprintf(stderr, "twilio_to_wav: %s: %s\n", what, trunkline_result_message((uint32_t)r));
  return 1;
}

static void put_u16(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
}

static void put_u32(unsigned char *p, uint32_t v) {
  put_u16(p, v & 0xFFFF);
  put_u16(p + 2, v >> 16);
}

/* A 44-byte header for mono 16-bit PCM. */
static int write_wav_header(FILE *out, uint32_t rate, uint32_t data_bytes) {
  unsigned char h[44];
  memcpy(h, "RIFF", 4);
  put_u32(h + 4, 36 + data_bytes);
  memcpy(h + 8, "WAVEfmt ", 8);
  put_u32(h + 16, 16);        /* fmt chunk size */
  put_u16(h + 20, 1);         /* PCM */
  put_u16(h + 22, 1);         /* mono */
  put_u32(h + 24, rate);
  put_u32(h + 28, rate * 2);  /* bytes per second */
  put_u16(h + 32, 2);         /* bytes per frame */
  put_u16(h + 34, 16);        /* bits per sample */
  memcpy(h + 36, "data", 4);
  put_u32(h + 40, data_bytes);
  return fseek(out, 0, SEEK_SET) == 0 && fwrite(h, 1, sizeof h, out) == sizeof h ? 0 : -1;
}

static const char *kind_name(trunkline_event_kind kind) {
  switch (kind) {
    case TRUNKLINE_EVENT_KIND_CONNECTED: return "connected";
    case TRUNKLINE_EVENT_KIND_STARTED: return "started";
    case TRUNKLINE_EVENT_KIND_SPEECH_STARTED: return "speech started";
    case TRUNKLINE_EVENT_KIND_SPEECH_STOPPED: return "speech stopped";
    case TRUNKLINE_EVENT_KIND_BARGE_IN: return "barge-in";
    case TRUNKLINE_EVENT_KIND_INTERRUPTED: return "interrupted";
    case TRUNKLINE_EVENT_KIND_MARK_PLAYED: return "mark played";
    case TRUNKLINE_EVENT_KIND_MARK_CLEARED: return "mark cleared";
    case TRUNKLINE_EVENT_KIND_DTMF: return "dtmf";
    case TRUNKLINE_EVENT_KIND_STOPPED: return "stopped";
    case TRUNKLINE_EVENT_KIND_PROTOCOL_ERROR: return "protocol error";
  }
  return "?";
}

static const char *encoding_name(trunkline_audio_encoding encoding) {
  switch (encoding) {
    case TRUNKLINE_AUDIO_ENCODING_MULAW: return "mulaw";
    case TRUNKLINE_AUDIO_ENCODING_ALAW: return "alaw";
    case TRUNKLINE_AUDIO_ENCODING_L16: return "l16";
  }
  return "?";
}

static void print_event(trunkline_session *s, const trunkline_event *e) {
  const char *name = kind_name(e->kind);
  unsigned long long ms = (unsigned long long)e->stream_ms;
  switch (e->kind) {
    case TRUNKLINE_EVENT_KIND_STARTED: {
      /* The event names the call; the rest of what the carrier announced is in the start info. */
      trunkline_start_info info = {.struct_size = sizeof info};
      if (trunkline_session_start_info(s, &info) != TRUNKLINE_RESULT_OK) {
        printf("%-15s call %s\n", name, e->name);
        break;
      }
      printf("%-15s call %s (%s, %u Hz, %u channel%s)\n", name, e->name, encoding_name(info.encoding),
             (unsigned)info.sample_rate, (unsigned)info.channels, info.channels == 1 ? "" : "s");
      break;
    }
    case TRUNKLINE_EVENT_KIND_SPEECH_STARTED:
    case TRUNKLINE_EVENT_KIND_SPEECH_STOPPED:
      printf("%-15s at %llu ms\n", name, ms);
      break;
    case TRUNKLINE_EVENT_KIND_DTMF:
      printf("%-15s '%c' at %llu ms\n", name, e->digit, ms);
      break;
    case TRUNKLINE_EVENT_KIND_PROTOCOL_ERROR:
      printf("%-15s %u (%s) %s\n", name, e->error, trunkline_protocol_error_message(e->error), e->name);
      break;
    default:
      printf("%s\n", name);
      break;
  }
}

/* Moves everything the session has ready to us: audio to the WAV file, events to stdout.
 * Outbound messages would go to the carrier; here there are none to send (no agent audio). */
static int drain(trunkline_session *s, FILE *wav, uint64_t *samples) {
  int16_t pcm[4096];
  unsigned char bytes[2 * 4096];
  size_t n = 0;
  while (trunkline_session_read_audio(s, pcm, 4096, &n) == TRUNKLINE_RESULT_OK) {
    for (size_t i = 0; i < n; i++) put_u16(bytes + 2 * i, (uint16_t)pcm[i]); /* little-endian */
    if (fwrite(bytes, 2, n, wav) != n) return -1;
    *samples += n;
  }
  trunkline_event event = {.struct_size = sizeof event}; /* what this program knows of it */
  while (trunkline_session_poll_event(s, &event) == TRUNKLINE_RESULT_OK) print_event(s, &event);
  uint8_t message[4096];
  trunkline_message_kind kind;
  while (trunkline_session_next_outbound(s, message, sizeof message, &n, &kind) == TRUNKLINE_RESULT_OK) {
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: %s INPUT.jsonl OUTPUT.wav [AGENT_RATE]\n", argv[0]);
    return 2;
  }
  uint32_t rate = argc == 4 ? (uint32_t)strtoul(argv[3], NULL, 10) : 16000;
  FILE *in = fopen(argv[1], "rb");
  if (!in) {
    perror(argv[1]);
    return 1;
  }
  FILE *wav = fopen(argv[2], "wb");
  if (!wav) {
    perror(argv[2]);
    fclose(in);
    return 1;
  }

  int status = 1;
  trunkline_engine *engine = NULL;
  trunkline_session *session = NULL;
  char *line = malloc(LINE_CAP);
  trunkline_engine_config engine_config;
  trunkline_session_config session_config;
  trunkline_result r;
  uint64_t samples = 0;
  trunkline_engine_config_default(&engine_config, sizeof engine_config);
  engine_config.workers_per_core = false;
  engine_config.workers = 0; /* inline */
  trunkline_session_config_default(&session_config, sizeof session_config);
  session_config.agent_rate = rate;

  if (!line || write_wav_header(wav, rate, 0) != 0) {
    fprintf(stderr, "twilio_to_wav: out of memory or cannot write %s\n", argv[2]);
    goto done;
  }
  if ((r = trunkline_engine_new(&engine_config, &engine)) != TRUNKLINE_RESULT_OK) {
    status = failed("engine", r);
    goto done;
  }
  if ((r = trunkline_session_open(engine, &session_config, &session)) != TRUNKLINE_RESULT_OK) {
    status = failed("session (is the agent rate 8000, 16000, 24000 or 48000?)", r);
    goto done;
  }
  while (fgets(line, LINE_CAP, in)) {
    size_t len = strcspn(line, "\r\n");
    if (len == 0) continue;
    if ((r = trunkline_session_push(session, (const uint8_t *)line, len, TRUNKLINE_MESSAGE_KIND_TEXT)) !=
        TRUNKLINE_RESULT_OK) {
      status = failed("push", r);
      goto done;
    }
    if (drain(session, wav, &samples) != 0) {
      fprintf(stderr, "twilio_to_wav: cannot write %s\n", argv[2]);
      goto done;
    }
  }
  if (samples * 2 > UINT32_MAX - 36 || write_wav_header(wav, rate, (uint32_t)(samples * 2)) != 0) {
    fprintf(stderr, "twilio_to_wav: cannot finish %s\n", argv[2]);
    goto done;
  }

  uint64_t stats[64];
  size_t count = 0;
  trunkline_session_stats(session, stats, 64, &count);
  for (size_t i = 0; i < count; i++) {
    const char *name = trunkline_session_stats_name(i);
    if (stats[i] != 0) printf("  %-28s %llu\n", name, (unsigned long long)stats[i]);
  }
  printf("wrote %s: %llu samples at %u Hz (%.3f s)\n", argv[2], (unsigned long long)samples, rate,
         (double)samples / rate);
  status = 0;

done:
  trunkline_session_free(session);
  trunkline_engine_free(engine);
  free(line);
  fclose(in);
  if (fclose(wav) != 0) status = 1;
  return status;
}
