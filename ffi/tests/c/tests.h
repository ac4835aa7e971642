/* The test functions, by file. */
#ifndef TRUNKLINE_C_TESTS_H
#define TRUNKLINE_C_TESTS_H

/* test_lifecycle.c */
void test_version(void);
void test_config_defaults(void);
void test_engine_lifecycle(void);
void test_session_lifecycle(void);
void test_free_null_is_a_noop(void);
void test_stats_names(void);
void test_codecs(void);
void test_wakeup_fd(void);

/* test_call.c */
void test_call_inline(void);
void test_call_threaded(void);

/* test_errors.c */
void test_result_messages(void);
void test_protocol_error_messages(void);
void test_null_parameters(void);
void test_zero_length_null_data(void);
void test_invalid_arguments(void);
void test_config_extremes(void);
void test_panic(void);
void test_full(void);
void test_closed(void);
void test_closed_after_engine_free(void);
void test_empty(void);
void test_buffer_too_small(void);
void test_failed(void);
void test_too_many_sessions(void);
void test_io(void);
void test_timeout(void);
void test_bad_input_is_reported(void);

/* test_threads.c */
void test_one_session_two_threads(void);
void test_two_sessions_two_threads(void);
void test_two_waiters(void);
void test_lying_lengths(void);
void test_overlapping_buffers(void);
void test_close_while_other_threads_call(void);

/* test_wake.c */
void test_wake_releases_a_blocked_wait(void);
void test_wake_before_wait_is_kept(void);
void test_wake_each_of_two_waiters(void);

/* test_stall.c */
void test_stall_bursts_lose_nothing(void);

/* test_versions.c */
void test_config_default_writes_only_the_callers_struct(void);
void test_config_struct_size(void);
void test_dialects(void);
void test_end_stream_and_dtmf_duration(void);
void test_output_struct_size(void);

/* test_server.c */
void test_server_lifecycle_and_errors(void);
void test_server_call(void);
void test_server_drain(void);
void test_server_shutdown_during_drain(void);

/* test_routes.c */
void test_server_routes_errors(void);
void test_server_routes_two_carriers(void);
void test_server_audiosocket(void);

/* test_metrics.c */
void test_engine_metrics_match_the_session_counters(void);
void test_engine_metrics_buffer_and_errors(void);
void test_engine_metrics_threaded(void);

/* test_clock.c */
void test_manual_clock_pacing(void);
void test_manual_clock_is_deterministic(void);
void test_manual_clock_advanced_from_another_thread(void);
void test_manual_clock_errors(void);

/* test_vad.c */
void test_vad_silence_and_voiced_signal(void);
void test_vad_speech_fixture(void);
void test_vad_errors(void);

/* test_segments.c */
void test_segments_interrupt_mid_segment(void);
void test_segments_not_heard_yet(void);

/* test_agent_format.c */
void test_agent_format_config(void);
void test_agent_format_ulaw_passes_through(void);

/* test_log.c */
void test_log_to_stderr(void);

/* test_opus.c */
void test_opus_ogg_in_chunks(void);

/* test_turn.c */
void test_turn_settings_defaults_and_refusals(void);
void test_end_of_turn_events(void);

/* test_record.c */
void test_record_call(void);
void test_record_refused(void);

#endif
