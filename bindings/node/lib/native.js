'use strict';
// Loads libtrunkline and declares its C ABI with koffi: the only file that knows the C types.
//
// Every declaration below is checked against include/trunkline.h by test/header-drift.test.js
// (function names, argument and return types, argument directions, struct fields and offsets,
// enum values), so the binding and the library cannot drift apart silently.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const koffi = require('koffi');

/** The header version this binding was written against (TRUNKLINE_VERSION in trunkline.h). */
const HEADER_VERSION = '0.1.0';

/**
 * Where the library is: $TRUNKLINE_LIB; else the platform package that npm installed beside this
 * one (an optional dependency, e.g. trunkline-linux-x64-gnu, holding only libtrunkline.so; see
 * docs/packaging.md); else the workspace's release build, for a checkout.
 */
function libraryPath() {
  if (process.env.TRUNKLINE_LIB) return path.resolve(process.env.TRUNKLINE_LIB);
  // npm installs only the package whose os/cpu/libc fields match; only glibc builds are published.
  const platformPackage = `trunkline-${process.platform}-${process.arch}-gnu`;
  try {
    return require.resolve(`${platformPackage}/libtrunkline.so`);
  } catch (e) {
    if (e.code !== 'MODULE_NOT_FOUND') throw e;
  }
  return path.resolve(__dirname, '..', '..', '..', 'target', 'release', 'libtrunkline.so');
}

// ---- Enums (keys are the header's enumerator names). Every C enum type is a uint32_t (the header's
// typedefs); koffi stores an enumeration without negative values in an `unsigned int` on POSIX,
// the same 4 bytes (checked by the drift test).

const trunkline_result = koffi.enumeration('trunkline_result', {
  TRUNKLINE_RESULT_OK: 0,
  TRUNKLINE_RESULT_NULL_PARAMETER: 1,
  TRUNKLINE_RESULT_INVALID_ARGUMENT: 2,
  TRUNKLINE_RESULT_PANIC: 3,
  TRUNKLINE_RESULT_FULL: 4,
  TRUNKLINE_RESULT_CLOSED: 5,
  TRUNKLINE_RESULT_EMPTY: 6,
  TRUNKLINE_RESULT_BUFFER_TOO_SMALL: 7,
  TRUNKLINE_RESULT_FAILED: 8,
  TRUNKLINE_RESULT_TOO_MANY_SESSIONS: 9,
  TRUNKLINE_RESULT_IO: 10,
  TRUNKLINE_RESULT_TIMEOUT: 11,
  TRUNKLINE_RESULT_BAD_AUDIO: 12,
  TRUNKLINE_RESULT_RECORD: 13,
});

const trunkline_message_kind = koffi.enumeration('trunkline_message_kind', {
  TRUNKLINE_MESSAGE_KIND_TEXT: 0,
  TRUNKLINE_MESSAGE_KIND_BINARY: 1,
});

const trunkline_event_kind = koffi.enumeration('trunkline_event_kind', {
  TRUNKLINE_EVENT_KIND_CONNECTED: 1,
  TRUNKLINE_EVENT_KIND_STARTED: 2,
  TRUNKLINE_EVENT_KIND_SPEECH_STARTED: 3,
  TRUNKLINE_EVENT_KIND_SPEECH_STOPPED: 4,
  TRUNKLINE_EVENT_KIND_BARGE_IN: 5,
  TRUNKLINE_EVENT_KIND_INTERRUPTED: 6,
  TRUNKLINE_EVENT_KIND_MARK_PLAYED: 7,
  TRUNKLINE_EVENT_KIND_MARK_CLEARED: 8,
  TRUNKLINE_EVENT_KIND_DTMF: 9,
  TRUNKLINE_EVENT_KIND_STOPPED: 10,
  TRUNKLINE_EVENT_KIND_PROTOCOL_ERROR: 11,
  TRUNKLINE_EVENT_KIND_END_OF_TURN: 12,
});

const trunkline_protocol_error = koffi.enumeration('trunkline_protocol_error', {
  TRUNKLINE_PROTOCOL_ERROR_MALFORMED_JSON: 1,
  TRUNKLINE_PROTOCOL_ERROR_MISSING_FIELD: 2,
  TRUNKLINE_PROTOCOL_ERROR_WRONG_TYPE: 3,
  TRUNKLINE_PROTOCOL_ERROR_UNKNOWN_EVENT: 4,
  TRUNKLINE_PROTOCOL_ERROR_INVALID_BASE64: 5,
  TRUNKLINE_PROTOCOL_ERROR_PAYLOAD_TOO_LARGE: 6,
  TRUNKLINE_PROTOCOL_ERROR_MESSAGE_TOO_LARGE: 7,
  TRUNKLINE_PROTOCOL_ERROR_UNEXPECTED_FRAME_KIND: 8,
  TRUNKLINE_PROTOCOL_ERROR_MEDIA_BEFORE_START: 9,
  TRUNKLINE_PROTOCOL_ERROR_DUPLICATE_START: 10,
  TRUNKLINE_PROTOCOL_ERROR_AFTER_STOP: 11,
  TRUNKLINE_PROTOCOL_ERROR_UNSUPPORTED_FORMAT: 12,
  TRUNKLINE_PROTOCOL_ERROR_ODD_PAYLOAD_LENGTH: 13,
  TRUNKLINE_PROTOCOL_ERROR_TIMESTAMP_JUMP: 14,
  TRUNKLINE_PROTOCOL_ERROR_UNKNOWN_MARK: 15,
  TRUNKLINE_PROTOCOL_ERROR_FOREIGN_STREAM: 16,
  TRUNKLINE_PROTOCOL_ERROR_CARRIER_REPORTED: 17,
});

const trunkline_audio_encoding = koffi.enumeration('trunkline_audio_encoding', {
  TRUNKLINE_AUDIO_ENCODING_MULAW: 0,
  TRUNKLINE_AUDIO_ENCODING_ALAW: 1,
  TRUNKLINE_AUDIO_ENCODING_L16: 2,
  TRUNKLINE_AUDIO_ENCODING_G722: 3,
  TRUNKLINE_AUDIO_ENCODING_OPUS: 4,
});

const trunkline_agent_format = koffi.enumeration('trunkline_agent_format', {
  TRUNKLINE_AGENT_FORMAT_PCM: 0,
  TRUNKLINE_AGENT_FORMAT_MULAW: 1,
  TRUNKLINE_AGENT_FORMAT_ALAW: 2,
});

const trunkline_start_field = koffi.enumeration('trunkline_start_field', {
  TRUNKLINE_START_FIELD_CALL_ID: 0,
  TRUNKLINE_START_FIELD_STREAM_ID: 1,
  TRUNKLINE_START_FIELD_ACCOUNT_ID: 2,
});

// ---- Constants (#define in the header).

const DEFINES = {
  TRUNKLINE_VERSION: HEADER_VERSION,
  TRUNKLINE_MAX_NAME_BYTES: 255,
  TRUNKLINE_EVENT_NAME_CAPACITY: 256,
  TRUNKLINE_METRICS_PROMETHEUS: 0,
  TRUNKLINE_METRICS_OPENMETRICS: 1,
  TRUNKLINE_SEGMENT_TAG_CAPACITY: 64,
  TRUNKLINE_CODEC_OGG_OPUS: 0,
  TRUNKLINE_CODEC_OPUS: 1,
};

// ---- Types.

const trunkline_engine = koffi.opaque('trunkline_engine');
const trunkline_server = koffi.opaque('trunkline_server');
const trunkline_session = koffi.opaque('trunkline_session');
const trunkline_vad = koffi.opaque('trunkline_vad');

// The config structs begin with `struct_size`: the _default functions are passed the size koffi
// gives each struct here, and the library reads no further than that (see the header's VERSIONED
// CONFIGS), so these mirrors keep working with a newer library that has grown a struct.
const trunkline_engine_config = koffi.struct('trunkline_engine_config', {
  struct_size: 'size_t',
  workers: 'uint32_t',
  workers_per_core: 'bool',
  max_sessions: 'uint32_t',
  tick_ms: 'uint32_t',
  worker_nice: 'int32_t',
});

// `dialect` and `record_path` are koffi strings (see the server config below): NULL/null for the
// default (the default dialect; no recording).
const trunkline_session_config = koffi.struct('trunkline_session_config', {
  struct_size: 'size_t',
  agent_rate: 'uint32_t',
  play_rate: 'uint32_t',
  vad_aggressiveness: 'uint32_t',
  vad_min_speech_ms: 'uint32_t',
  vad_hangover_ms: 'uint32_t',
  barge_in_enabled: 'bool',
  barge_in_min_speech_ms: 'uint32_t',
  lead_ms: 'uint32_t',
  sync_mark_interval_ms: 'uint32_t',
  utterance_gap_ms: 'uint32_t',
  max_message_bytes: 'size_t',
  max_payload_bytes: 'size_t',
  reorder_window_ms: 'uint32_t',
  max_gap_fill_ms: 'uint32_t',
  inbound_ring_bytes: 'size_t',
  play_ring_bytes: 'size_t',
  outbound_buffer_ms: 'uint32_t',
  agent_ring_ms: 'uint32_t',
  outbound_ring_bytes: 'size_t',
  event_capacity: 'size_t',
  max_mark_name_bytes: 'size_t',
  max_pending_marks: 'size_t',
  read_hold_ms: 'uint32_t',
  dialect: 'const char *',
  agent_format: 'uint32_t',
  record_path: 'const char *',
  vad_echo_aware: 'bool',
  vad_end_of_turn_enabled: 'bool',
  vad_end_of_turn_min_silence_ms: 'uint32_t',
  vad_end_of_turn_threshold: 'uint32_t',
  barge_in_duck_db: 'uint32_t',
  vad_end_of_turn_max_silence_ms: 'uint32_t',
  barge_in_rejoin_within_ms: 'uint32_t',
  echo_reduction: 'bool',
});

// The `const char *` fields are koffi strings: a JS string (or null) assigned to one is converted
// to a NUL-terminated UTF-8 copy that lives for the duration of the call it is passed to, which is
// all trunkline_server_start needs (it borrows them for the call only). So is a JS object assigned
// to `session` (a pointer to a session config): koffi passes a temporary copy of it.
// A route's strings are koffi strings too; an array of route objects assigned to `routes` is
// copied into a temporary C array for the call, like `session`.
const trunkline_route = koffi.struct('trunkline_route', {
  struct_size: 'size_t',
  path: 'const char *',
  dialect: 'const char *',
  auth_token: 'const char *',
  auth: 'const char *',
});

const trunkline_server_config = koffi.struct('trunkline_server_config', {
  struct_size: 'size_t',
  bind: 'const char *',
  path: 'const char *',
  auth_token: 'const char *',
  public_url: 'const char *',
  session: koffi.pointer(trunkline_session_config),
  max_sessions: 'uint32_t',
  max_message_bytes: 'size_t',
  handshake_timeout_ms: 'uint32_t',
  idle_timeout_ms: 'uint32_t',
  send_timeout_ms: 'uint32_t',
  ping_interval_ms: 'uint32_t',
  threads: 'uint32_t',
  tls_cert_pem: 'const char *',
  tls_key_pem: 'const char *',
  routes: koffi.pointer(trunkline_route),
  route_count: 'size_t',
});

// The output structs begin with `struct_size` too, set by the caller before the call (the library
// writes no further: the header's VERSIONED OUTPUTS). So they are `_Inout_` parameters below: koffi
// copies the JS object in (its struct_size, the size koffi gives the struct here) and back out.
const trunkline_event = koffi.struct('trunkline_event', {
  struct_size: 'size_t',
  kind: trunkline_event_kind,
  stream_ms: 'uint64_t',
  played_ms: 'uint64_t',
  digit: 'char',
  error: 'uint32_t',
  name: koffi.array('char', DEFINES.TRUNKLINE_EVENT_NAME_CAPACITY, 'String'),
  duration_ms: 'int64_t',
  segment: koffi.array('char', DEFINES.TRUNKLINE_SEGMENT_TAG_CAPACITY, 'String'),
  segment_played_ms: 'int64_t',
  unheard_segments: 'uint32_t',
  confidence: 'int64_t',
});

const trunkline_vad_config = koffi.struct('trunkline_vad_config', {
  struct_size: 'size_t',
  vad_aggressiveness: 'uint32_t',
  vad_min_speech_ms: 'uint32_t',
  vad_hangover_ms: 'uint32_t',
});

// Input of trunkline_session_open_started. Its strings are koffi strings, and an array of JS
// strings assigned to a custom parameter field is copied into a temporary C array of NUL-terminated
// copies for the call, which is all the library needs (it copies what it keeps).
const trunkline_stream_start = koffi.struct('trunkline_stream_start', {
  struct_size: 'size_t',
  stream_id: 'const char *',
  call_id: 'const char *',
  account_id: 'const char *',
  encoding: 'uint32_t',
  sample_rate: 'uint32_t',
  channels: 'uint32_t',
  custom_parameter_names: koffi.pointer('const char *'),
  custom_parameter_values: koffi.pointer('const char *'),
  custom_parameter_count: 'size_t',
});

const trunkline_start_info = koffi.struct('trunkline_start_info', {
  struct_size: 'size_t',
  tracks: 'uint32_t',
  encoding: trunkline_audio_encoding,
  sample_rate: 'uint32_t',
  channels: 'uint32_t',
  custom_parameter_count: 'size_t',
});

// ---- Functions, in header order, as C prototypes. `_Out_` marks out-parameters that koffi
// copies back into a JS object or a one-element array, `_Inout_` the output structs (copied in for
// their struct_size, then back); data buffers (uint8_t *, int16_t *, char *, uint64_t *) are passed
// as Buffers or typed arrays and written in place.

const PROTOTYPES = [
  'trunkline_result trunkline_ulaw_decode(const uint8_t *input, size_t len, int16_t *output, size_t output_capacity)',
  'trunkline_result trunkline_ulaw_encode(const int16_t *input, size_t len, uint8_t *output, size_t output_capacity)',
  'trunkline_result trunkline_alaw_decode(const uint8_t *input, size_t len, int16_t *output, size_t output_capacity)',
  'trunkline_result trunkline_alaw_encode(const int16_t *input, size_t len, uint8_t *output, size_t output_capacity)',
  'trunkline_result trunkline_engine_config_default(_Out_ trunkline_engine_config *out, size_t struct_size)',
  'trunkline_result trunkline_session_config_default(_Out_ trunkline_session_config *out, size_t struct_size)',
  'trunkline_result trunkline_engine_new(const trunkline_engine_config *config, _Out_ trunkline_engine **out)',
  'trunkline_result trunkline_engine_new_manual_clock(const trunkline_engine_config *config, _Out_ trunkline_engine **out)',
  'trunkline_result trunkline_engine_advance_clock(const trunkline_engine *engine, uint64_t us)',
  'void trunkline_engine_free(trunkline_engine *engine)',
  'trunkline_result trunkline_engine_wakeup_fd(const trunkline_engine *engine, _Out_ int32_t *out_fd)',
  'trunkline_result trunkline_engine_prioritised_workers(const trunkline_engine *engine, _Out_ uint32_t *out)',
  'trunkline_result trunkline_engine_wait(const trunkline_engine *engine, int64_t timeout_ms)',
  'trunkline_result trunkline_engine_wake(const trunkline_engine *engine)',
  'trunkline_result trunkline_engine_clear_wakeup(const trunkline_engine *engine)',
  'trunkline_result trunkline_engine_metrics(const trunkline_engine *engine, uint32_t format, char *buf, size_t capacity, _Out_ size_t *out_len)',
  'const char *trunkline_protocol_error_message(uint32_t code)',
  'trunkline_result trunkline_log_to_stderr(const char *filter)',
  'const char *trunkline_result_message(uint32_t result)',
  'trunkline_result trunkline_server_config_default(_Out_ trunkline_server_config *out, size_t struct_size)',
  'trunkline_result trunkline_server_start(const trunkline_engine *engine, const trunkline_server_config *config, _Out_ trunkline_server **out)',
  'trunkline_result trunkline_server_local_port(const trunkline_server *server, _Out_ uint16_t *out_port)',
  'trunkline_result trunkline_server_accept(const trunkline_server *server, _Out_ trunkline_session **out)',
  'size_t trunkline_server_stats_count(void)',
  'const char *trunkline_server_stats_name(size_t index)',
  'trunkline_result trunkline_server_stats(const trunkline_server *server, uint64_t *values, size_t capacity, _Out_ size_t *out_count)',
  'trunkline_result trunkline_server_ready(const trunkline_server *server, _Out_ bool *out_ready)',
  'trunkline_result trunkline_server_drain(const trunkline_server *server, uint32_t grace_ms, _Out_ bool *out_all_ended)',
  'trunkline_result trunkline_server_shutdown(const trunkline_server *server, uint32_t grace_ms)',
  'void trunkline_server_free(trunkline_server *server)',
  'trunkline_result trunkline_server_listen_audiosocket(const trunkline_server *server, const char *bind, const char **allowed_calls, size_t allowed_count, _Out_ uint16_t *out_port)',
  'trunkline_result trunkline_server_allow_audiosocket_call(const trunkline_server *server, const char *uuid)',
  'trunkline_result trunkline_server_revoke_audiosocket_call(const trunkline_server *server, const char *uuid, _Out_ bool *out_was_allowed)',
  'trunkline_result trunkline_session_open(const trunkline_engine *engine, const trunkline_session_config *config, _Out_ trunkline_session **out)',
  'trunkline_result trunkline_stream_start_default(_Out_ trunkline_stream_start *out, size_t struct_size)',
  'trunkline_result trunkline_session_open_started(const trunkline_engine *engine, const trunkline_session_config *config, const trunkline_stream_start *start, _Out_ trunkline_session **out)',
  'trunkline_result trunkline_session_push(trunkline_session *session, const uint8_t *data, size_t len, uint32_t kind)',
  'trunkline_result trunkline_session_read_audio(trunkline_session *session, int16_t *out, size_t capacity, _Out_ size_t *out_samples)',
  'trunkline_result trunkline_session_play(trunkline_session *session, const int16_t *pcm, size_t samples, uint32_t rate, _Out_ size_t *out_taken)',
  'trunkline_result trunkline_session_read_audio_bytes(trunkline_session *session, uint8_t *out, size_t capacity, _Out_ size_t *out_len)',
  'trunkline_result trunkline_session_play_bytes(trunkline_session *session, const uint8_t *data, size_t len, uint32_t rate, _Out_ size_t *out_taken)',
  'trunkline_result trunkline_session_play_encoded(trunkline_session *session, uint32_t codec, const uint8_t *data, size_t len, uint32_t rate, _Out_ size_t *out_taken)',
  'trunkline_result trunkline_session_end_encoded(trunkline_session *session)',
  'trunkline_result trunkline_session_agent_format(trunkline_session *session, _Out_ trunkline_agent_format *out)',
  'trunkline_result trunkline_session_mark(trunkline_session *session, const char *name)',
  'trunkline_result trunkline_session_interrupt(trunkline_session *session)',
  'trunkline_result trunkline_session_begin_segment(trunkline_session *session, const char *tag)',
  'trunkline_result trunkline_session_unheard_segment(trunkline_session *session, size_t index, char *buf, size_t capacity, _Out_ size_t *out_len)',
  'trunkline_result trunkline_session_queued_ms(trunkline_session *session, _Out_ uint64_t *out_ms)',
  'trunkline_result trunkline_session_end_stream(trunkline_session *session)',
  'trunkline_result trunkline_session_outbound_len(trunkline_session *session, _Out_ size_t *out_len)',
  'trunkline_result trunkline_session_next_outbound(trunkline_session *session, uint8_t *buf, size_t capacity, _Out_ size_t *out_len, _Out_ trunkline_message_kind *out_kind)',
  'trunkline_result trunkline_session_poll_event(trunkline_session *session, _Inout_ trunkline_event *out)',
  'trunkline_result trunkline_session_start_info(trunkline_session *session, _Inout_ trunkline_start_info *out)',
  'trunkline_result trunkline_session_start_string(trunkline_session *session, uint32_t field, char *buf, size_t capacity, _Out_ size_t *out_len)',
  'trunkline_result trunkline_session_custom_parameter(trunkline_session *session, size_t index, char *key, size_t key_capacity, _Out_ size_t *out_key_len, char *value, size_t value_capacity, _Out_ size_t *out_value_len)',
  'size_t trunkline_session_stats_count(void)',
  'const char *trunkline_session_stats_name(size_t index)',
  'trunkline_result trunkline_session_stats(trunkline_session *session, uint64_t *values, size_t capacity, _Out_ size_t *out_count)',
  'trunkline_result trunkline_session_close(trunkline_session *session)',
  'void trunkline_session_free(trunkline_session *session)',
  'trunkline_result trunkline_vad_config_default(_Out_ trunkline_vad_config *out, size_t struct_size)',
  'trunkline_result trunkline_vad_new(const trunkline_vad_config *config, uint32_t sample_rate, _Out_ trunkline_vad **out)',
  'trunkline_result trunkline_vad_process(trunkline_vad *vad, const int16_t *pcm, size_t n_samples, _Out_ float *probability_out, _Out_ bool *speaking_out)',
  'trunkline_result trunkline_vad_reset(trunkline_vad *vad)',
  'void trunkline_vad_free(trunkline_vad *vad)',
  'const char *trunkline_version(void)',
];

/** Header functions this binding does not declare, and why (checked by the drift test). */
const UNBOUND = {
  trunkline_test_fail_session:
    'test hook: only exported by a library built with the `test-hooks` feature (the C tests), never by the shipped one',
  trunkline_test_panic:
    'test hook: only exported by a library built with the `test-hooks` feature (the C tests), never by the shipped one',
};

const TYPES = {
  trunkline_result,
  trunkline_message_kind,
  trunkline_event_kind,
  trunkline_protocol_error,
  trunkline_audio_encoding,
  trunkline_agent_format,
  trunkline_start_field,
  trunkline_engine,
  trunkline_server,
  trunkline_session,
  trunkline_vad,
  trunkline_engine_config,
  trunkline_session_config,
  trunkline_server_config,
  trunkline_route,
  trunkline_event,
  trunkline_start_info,
  trunkline_stream_start,
  trunkline_vad_config,
};

/** The prototypes of the offload server's functions (optional in the library). */
const SERVER_FUNCTION = /\btrunkline_server_\w+\(/;

function load() {
  if (os.endianness() !== 'LE') {
    throw new Error('trunkline: the Node binding assumes a little-endian machine (s16le audio)');
  }
  const file = libraryPath();
  if (!fs.existsSync(file)) {
    throw new Error(
      `trunkline: library not found at ${file}; build it with ` +
        '`cargo build --release -p trunkline-ffi` or point TRUNKLINE_LIB at libtrunkline.so',
    );
  }
  const lib = koffi.load(file);
  const fns = {};
  for (const proto of PROTOTYPES) {
    let fn;
    try {
      fn = lib.func(proto);
    } catch (e) {
      // A library built without its `server` feature lacks the offload server's functions: the
      // binding loads without them (and `new Server` throws).
      if (SERVER_FUNCTION.test(proto)) continue;
      throw e;
    }
    fns[fn.info.name] = fn;
  }
  const version = fns.trunkline_version();
  const [major, minor] = version.split('.');
  const [hMajor, hMinor] = HEADER_VERSION.split('.');
  if (major !== hMajor || (major === '0' && minor !== hMinor)) {
    throw new Error(
      `trunkline: library ${file} is version ${version}, this binding expects ${HEADER_VERSION}`,
    );
  }
  return { lib, fns, file, version };
}

const loaded = load();

module.exports = {
  koffi,
  lib: loaded.lib,
  fns: loaded.fns,
  libraryFile: loaded.file,
  libraryVersion: loaded.version,
  HEADER_VERSION,
  DEFINES,
  TYPES,
  PROTOTYPES,
  UNBOUND,
};
