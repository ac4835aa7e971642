/* The per-frame cycle of bench_per_frame.py, from C: the engine's and the C ABI's own cost, which
 * bench_per_frame.py subtracts from the Python figure to give the binding's overhead.
 *
 *   bench_per_frame <messages.txt> <reply.raw> <out.json>
 *
 * messages.txt: `connected`, `start`, then one Twilio `media` message per line; reply.raw: 20 ms of
 * agent audio (s16le, 24 kHz). Inline engine, agent rate 16 kHz, lead_ms at its maximum (every
 * frame played goes out at once), back to back: push one message, read the caller audio, poll the
 * events, play 20 ms, take the outbound messages. Writes {"frames", "process_cpu_us_per_frame",
 * "frames_out"} to out.json. Built and run by bench_per_frame.py (--fast). */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "trunkline.h"

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
         ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) * 1e-6;
}

static void fail(const char *what) {
  fprintf(stderr, "bench_per_frame: %s\n", what);
  exit(1);
}

int main(int argc, char **argv) {
  if (argc != 4) fail("usage: bench_per_frame <messages.txt> <reply.raw> <out.json>");
  FILE *f = fopen(argv[1], "rb");
  if (!f) fail("cannot open the messages");
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  rewind(f);
  char *text = malloc((size_t)size + 1);
  if (!text || fread(text, 1, (size_t)size, f) != (size_t)size) fail("cannot read the messages");
  text[size] = '\0';
  fclose(f);
  size_t count = 0;
  for (long i = 0; i < size; i++) count += text[i] == '\n';
  char **lines = calloc(count + 1, sizeof *lines);
  size_t *lens = calloc(count + 1, sizeof *lens);
  size_t n = 0;
  for (char *p = text, *nl; n < count && (nl = strchr(p, '\n')); p = nl + 1, n++) {
    lines[n] = p;
    lens[n] = (size_t)(nl - p);
  }
  if (n < 3) fail("need connected, start and media messages");

  int16_t reply[480];
  f = fopen(argv[2], "rb");
  if (!f || fread(reply, sizeof reply[0], 480, f) != 480) fail("cannot read the reply");
  fclose(f);

  trunkline_engine_config ec;
  trunkline_engine_config_default(&ec, sizeof ec);
  ec.workers = 0;
  ec.workers_per_core = false;
  trunkline_engine *engine;
  if (trunkline_engine_new(&ec, &engine) != TRUNKLINE_RESULT_OK) fail("engine");
  trunkline_session_config sc;
  trunkline_session_config_default(&sc, sizeof sc);
  sc.agent_rate = 16000;
  sc.lead_ms = 2147483647u;
  trunkline_session *s;
  if (trunkline_session_open(engine, &sc, &s) != TRUNKLINE_RESULT_OK) fail("session");
  trunkline_event ev = {.struct_size = sizeof ev};
  for (size_t i = 0; i < 2; i++)
    if (trunkline_session_push(s, (const uint8_t *)lines[i], lens[i], TRUNKLINE_MESSAGE_KIND_TEXT) != 0)
      fail("push");
  while (trunkline_session_poll_event(s, &ev) == TRUNKLINE_RESULT_OK) {
  }

  static int16_t pcm[8192];
  static uint8_t out[4096];
  size_t got, len, frames_out = 0, sink = 0;
  trunkline_message_kind kind;
  double cpu0 = cpu_seconds();
  for (size_t i = 2; i < n; i++) {
    trunkline_session_push(s, (const uint8_t *)lines[i], lens[i], TRUNKLINE_MESSAGE_KIND_TEXT);
    while (trunkline_session_read_audio(s, pcm, 8192, &got) == TRUNKLINE_RESULT_OK) sink += got;
    while (trunkline_session_poll_event(s, &ev) == TRUNKLINE_RESULT_OK) sink += (size_t)ev.kind;
    trunkline_session_play(s, reply, 480, 24000, &got);
    while (trunkline_session_next_outbound(s, out, sizeof out, &len, &kind) == TRUNKLINE_RESULT_OK) sink += len;
  }
  double cpu = cpu_seconds() - cpu0;
  uint64_t stats[64];
  size_t stats_n = 0;
  if (trunkline_session_stats(s, stats, 64, &stats_n) != TRUNKLINE_RESULT_OK) fail("stats");
  for (size_t i = 0; i < stats_n; i++)
    if (strcmp(trunkline_session_stats_name(i), "frames_out") == 0) frames_out = (size_t)stats[i];
  trunkline_session_free(s);
  trunkline_engine_free(engine);

  f = fopen(argv[3], "w");
  if (!f) fail("cannot write the result");
  fprintf(f, "{\"frames\": %zu, \"process_cpu_us_per_frame\": %.3f, \"frames_out\": %zu, \"sink\": %zu}\n",
          n - 2, cpu / (double)(n - 2) * 1e6, frames_out, sink);
  fclose(f);
  free(lines);
  free(lens);
  free(text);
  return 0;
}
