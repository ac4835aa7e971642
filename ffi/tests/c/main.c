/*
 * The C tests of include/trunkline.h.
 *
 *   trunkline_c_tests [--short] [--fixtures DIR] [NAME_SUBSTRING...]
 *
 * --short shortens the threaded calls (for valgrind); --fixtures points at
 * engine/tests/fixtures (default: that path relative to the working directory). Prints one line
 * per test and closes with "c tests: N passed, M failed"; exits non-zero if any failed.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "tests.h"

tl_options tl_opts = {"engine/tests/fixtures", false};

static atomic_int failures;

void tl_fail(const char *file, int line, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "    %s:%d: check failed: %s\n", file, line, msg);
  atomic_fetch_add(&failures, 1);
}

int tl_failures(void) { return atomic_load(&failures); }

#define TEST(name) {#name, name}
static const struct {
  const char *name;
  void (*run)(void);
} TESTS[] = {
    TEST(test_version),
    TEST(test_config_defaults),
    TEST(test_engine_lifecycle),
    TEST(test_session_lifecycle),
    TEST(test_free_null_is_a_noop),
    TEST(test_stats_names),
    TEST(test_codecs),
    TEST(test_wakeup_fd),
    TEST(test_call_inline),
    TEST(test_call_threaded),
    TEST(test_result_messages),
    TEST(test_protocol_error_messages),
    TEST(test_null_parameters),
    TEST(test_zero_length_null_data),
    TEST(test_invalid_arguments),
    TEST(test_config_extremes),
    TEST(test_panic),
    TEST(test_full),
    TEST(test_closed),
    TEST(test_closed_after_engine_free),
    TEST(test_empty),
    TEST(test_buffer_too_small),
    TEST(test_failed),
    TEST(test_too_many_sessions),
    TEST(test_io),
    TEST(test_timeout),
    TEST(test_bad_input_is_reported),
    TEST(test_one_session_two_threads),
    TEST(test_two_sessions_two_threads),
    TEST(test_two_waiters),
    TEST(test_lying_lengths),
    TEST(test_overlapping_buffers),
    TEST(test_close_while_other_threads_call),
    TEST(test_wake_releases_a_blocked_wait),
    TEST(test_wake_before_wait_is_kept),
    TEST(test_wake_each_of_two_waiters),
    TEST(test_stall_bursts_lose_nothing),
    TEST(test_config_default_writes_only_the_callers_struct),
    TEST(test_config_struct_size),
    TEST(test_dialects),
    TEST(test_end_stream_and_dtmf_duration),
    TEST(test_output_struct_size),
    TEST(test_server_lifecycle_and_errors),
    TEST(test_server_call),
    TEST(test_server_drain),
    TEST(test_server_shutdown_during_drain),
    TEST(test_server_routes_errors),
    TEST(test_server_routes_two_carriers),
    TEST(test_server_audiosocket),
    TEST(test_engine_metrics_match_the_session_counters),
    TEST(test_engine_metrics_buffer_and_errors),
    TEST(test_engine_metrics_threaded),
    TEST(test_manual_clock_pacing),
    TEST(test_manual_clock_is_deterministic),
    TEST(test_manual_clock_advanced_from_another_thread),
    TEST(test_manual_clock_errors),
    TEST(test_vad_silence_and_voiced_signal),
    TEST(test_vad_speech_fixture),
    TEST(test_vad_errors),
    TEST(test_segments_interrupt_mid_segment),
    TEST(test_segments_not_heard_yet),
    TEST(test_agent_format_config),
    TEST(test_agent_format_ulaw_passes_through),
    TEST(test_opus_ogg_in_chunks),
    TEST(test_turn_settings_defaults_and_refusals),
    TEST(test_end_of_turn_events),
    TEST(test_record_call),
    TEST(test_record_refused),
    TEST(test_log_to_stderr), /* last: it leaves the logger installed */
};

int main(int argc, char **argv) {
  const char *filters[32];
  int nfilters = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--short") == 0) {
      tl_opts.short_mode = true;
    } else if (strcmp(argv[i], "--fixtures") == 0 && i + 1 < argc) {
      tl_opts.fixtures = argv[++i];
    } else if (nfilters < 32) {
      filters[nfilters++] = argv[i];
    }
  }
  int passed = 0;
  int failed = 0;
  for (size_t t = 0; t < sizeof TESTS / sizeof TESTS[0]; t++) {
    bool selected = nfilters == 0;
    for (int f = 0; f < nfilters; f++) selected |= strstr(TESTS[t].name, filters[f]) != NULL;
    if (!selected) continue;
    int before = tl_failures();
    TESTS[t].run();
    if (tl_failures() == before) {
      printf("ok   %s\n", TESTS[t].name);
      passed++;
    } else {
      printf("FAIL %s\n", TESTS[t].name);
      failed++;
    }
    fflush(stdout);
  }
  printf("c tests: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
