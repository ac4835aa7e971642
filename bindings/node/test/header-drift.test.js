'use strict';
// The binding's koffi declarations must match include/trunkline.h exactly, and every header
// function must be declared (or listed in UNBOUND with a reason): no silent drift.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const native = require('../lib/native');
const { parseHeader, compare } = require('./cheader');

const HEADER_PATH = path.resolve(__dirname, '..', '..', '..', 'include', 'trunkline.h');
const HEADER_TEXT = fs.readFileSync(HEADER_PATH, 'utf8');

test('the header parses into the whole ABI', () => {
  const h = parseHeader(HEADER_TEXT);
  // Guards against a parser that silently finds nothing.
  assert.ok(Object.keys(h.functions).length >= 30, `${Object.keys(h.functions).length} functions`);
  assert.deepEqual(Object.keys(h.structs).sort(), [
    'trunkline_engine_config',
    'trunkline_event',
    'trunkline_route',
    'trunkline_server_config',
    'trunkline_session_config',
    'trunkline_start_info',
    'trunkline_stream_start',
    'trunkline_vad_config',
  ]);
  assert.deepEqual(Object.keys(h.enums).sort(), [
    'trunkline_agent_format',
    'trunkline_audio_encoding',
    'trunkline_event_kind',
    'trunkline_message_kind',
    'trunkline_protocol_error',
    'trunkline_result',
    'trunkline_start_field',
  ]);
  assert.deepEqual(h.opaque.sort(), ['trunkline_engine', 'trunkline_server', 'trunkline_session', 'trunkline_vad']);
  const server = h.structs.trunkline_server_config;
  assert.deepEqual(server.find((f) => f.name === 'bind').type, { base: 'char', isConst: true, stars: 1, name: null });
  assert.deepEqual(server.find((f) => f.name === 'session').type, { base: 'trunkline_session_config', isConst: true, stars: 1, name: null });
  assert.equal(h.functions.trunkline_session_play.params.length, 5);
  assert.deepEqual(h.functions.trunkline_test_panic.conditions, ['TRUNKLINE_TEST_HOOKS']);
  // The offload server is declared unless TRUNKLINE_NO_SERVER is defined (the default build has it).
  assert.deepEqual(h.functions.trunkline_server_start.conditions, ['TRUNKLINE_SERVER']);
  assert.deepEqual(h.functions.trunkline_session_open.conditions, []);
  assert.equal(h.defines.TRUNKLINE_SERVER, '');
  // Every enum has a fixed size: a uint32_t.
  for (const name of Object.keys(h.enums)) assert.equal(h.enumTypes[name], 'uint32_t', name);
  // Every config, and every output struct, begins with its struct_size.
  for (const name of Object.keys(h.structs)) {
    assert.deepEqual(h.structs[name][0], { name: 'struct_size', type: { base: 'size_t', isConst: false, stars: 0, name: null } }, name);
  }
});

test('every koffi declaration matches the header, and every header function is bound', () => {
  const problems = compare(parseHeader(HEADER_TEXT), native);
  assert.deepEqual(problems, [], `header drift:\n  ${problems.join('\n  ')}`);
});

test('only test hooks are left unbound', () => {
  const h = parseHeader(HEADER_TEXT);
  for (const name of Object.keys(native.UNBOUND)) {
    assert.deepEqual(h.functions[name].conditions, ['TRUNKLINE_TEST_HOOKS'], name);
  }
});

// The check itself must catch drift: each edit of the header below has to be reported.
const MUTATIONS = [
  ['an argument type', 'int64_t timeout_ms', 'int32_t timeout_ms', /trunkline_engine_wait: header/],
  ['a return type', 'size_t trunkline_session_stats_count(void)', 'uint32_t trunkline_session_stats_count(void)', /trunkline_session_stats_count/],
  ['constness', 'const int16_t *pcm', 'int16_t *pcm', /trunkline_session_play: header .* binding prototype/],
  ['an extra argument', 'trunkline_result trunkline_session_interrupt(trunkline_session *session)', 'trunkline_result trunkline_session_interrupt(trunkline_session *session, uint32_t how)', /trunkline_session_interrupt/],
  ['a new function', 'size_t trunkline_session_stats_count(void);', 'size_t trunkline_session_stats_count(void);\nvoid trunkline_new_thing(void);', /trunkline_new_thing: in the header, not declared/],
  ['a removed function', /trunkline_result trunkline_session_interrupt\(trunkline_session \*session\);/, '', /trunkline_session_interrupt: declared, not in the header/],
  ['an enum value', 'TRUNKLINE_RESULT_FULL = 4', 'TRUNKLINE_RESULT_FULL = 40', /enum trunkline_result/],
  ['a new enumerator', 'TRUNKLINE_RESULT_TIMEOUT = 11,', 'TRUNKLINE_RESULT_TIMEOUT = 11,\n  TRUNKLINE_RESULT_NEW = 12,', /enum trunkline_result/],
  ['a field type', 'uint32_t sample_rate;', 'uint64_t sample_rate;', /trunkline_start_info.sample_rate/],
  ['a signed field made unsigned', 'int32_t worker_nice;', 'uint32_t worker_nice;', /trunkline_engine_config\.worker_nice/],
  ['field order', /uint32_t tracks;([\s\S]*?)uint32_t sample_rate;/, 'uint32_t sample_rate;$1uint32_t tracks;', /struct trunkline_start_info: header fields/],
  ['an enum field made a plain integer', 'trunkline_audio_encoding encoding;', 'uint32_t encoding;', /trunkline_start_info\.encoding: header uint32_t, koffi trunkline_audio_encoding/],
  ['an enumerator renamed', 'TRUNKLINE_START_FIELD_CALL_ID = 0', 'TRUNKLINE_START_FIELD_CALL_SID = 0', /enum trunkline_start_field/],
  ['an array length', '#define TRUNKLINE_EVENT_NAME_CAPACITY 256', '#define TRUNKLINE_EVENT_NAME_CAPACITY 128', /TRUNKLINE_EVENT_NAME_CAPACITY|trunkline_event.name/],
  ['an out-parameter made input', 'size_t *out_taken', 'const size_t *out_taken', /trunkline_session_play/],
  ['a server argument type', 'trunkline_server_shutdown(const trunkline_server *server, uint32_t grace_ms)', 'trunkline_server_shutdown(const trunkline_server *server, uint64_t grace_ms)', /trunkline_server_shutdown: header/],
  ['a string field made a number', 'const char *public_url;', 'uint64_t public_url;', /trunkline_server_config\.public_url: header uint64_t, koffi char \*/],
  ['a string field added', 'const char *tls_key_pem;', 'const char *tls_key_pem;\n  const char *tls_ca_pem;', /struct trunkline_server_config: header fields/],
  ['the pointed-to struct replaced', 'const trunkline_session_config *session;', 'const trunkline_engine_config *session;', /trunkline_server_config\.session: header trunkline_engine_config \*, koffi trunkline_session_config \*/],
  // A config's leading size goes: every field after it moves, which the layout shows.
  ['a struct_size removed', /size_t struct_size;\n([^}]*)\} trunkline_engine_config;/, '$1} trunkline_engine_config;', /struct trunkline_engine_config: header fields/],
  ['an output struct without its struct_size', /size_t struct_size;\n([^}]*)\} trunkline_event;/, '$1} trunkline_event;', /struct trunkline_event: header fields/],
  ['a setting appended', 'const char *dialect;', 'const char *dialect;\n  uint32_t new_setting;', /struct trunkline_session_config: header fields/],
  ['an enum made 16-bit', 'typedef uint32_t trunkline_event_kind;', 'typedef uint16_t trunkline_event_kind;', /enum trunkline_event_kind: header uint16_t/],
  ['an enum without a fixed size', /#else\ntypedef uint32_t trunkline_result;\n/, '#else\n', /enum trunkline_result: no fixed-size typedef/],
  ['the version', '#define TRUNKLINE_VERSION "0.1.0"', '#define TRUNKLINE_VERSION "0.2.0"', /TRUNKLINE_VERSION/],
];

for (const [what, from, to, expect] of MUTATIONS) {
  test(`the drift check reports a changed header: ${what}`, () => {
    const mutated = HEADER_TEXT.replace(from, to);
    assert.notEqual(mutated, HEADER_TEXT, `mutation ${what} did not apply: the header changed, update the test`);
    const problems = compare(parseHeader(mutated), native);
    assert.ok(
      problems.some((p) => expect.test(p)),
      `expected a problem matching ${expect}, got:\n  ${problems.join('\n  ')}`,
    );
  });
}

// The binding side too: an output struct passed `_Out_` would reach the library without the
// struct_size the binding set (koffi copies an `_Out_` struct out only).
test('the drift check reports an output struct not copied in', () => {
  for (const name of ['trunkline_session_poll_event', 'trunkline_session_start_info']) {
    const proto = native.PROTOTYPES.find((p) => p.includes(`${name}(`)).replace('_Inout_', '_Out_');
    const mutated = {
      ...native,
      fns: { ...native.fns, [name]: native.lib.func(proto) },
      PROTOTYPES: native.PROTOTYPES.map((p) => (p.includes(`${name}(`) ? proto : p)),
    };
    const problems = compare(parseHeader(HEADER_TEXT), mutated);
    const expect = new RegExp(`${name}: parameter 1 \\(out\\) must be passed as Input/Output, koffi has Output`);
    assert.ok(problems.some((p) => expect.test(p)), `${name}: got\n  ${problems.join('\n  ')}`);
  }
});
