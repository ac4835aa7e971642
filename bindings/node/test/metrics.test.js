'use strict';
// Engine.metrics(): the engine's Prometheus / OpenMetrics text after a call, read back line by
// line and compared with the session's own counters.

const test = require('node:test');
const assert = require('node:assert/strict');
const { Engine, TrunklineError } = require('..');
const h = require('./helpers');

/** { 'name{labels}': value } of every sample line of a text exposition. */
function samples(text) {
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    out[line.slice(0, cut)] = Number(line.slice(cut + 1));
  }
  return out;
}

/** The series a session counter appears as: µs counters in seconds. */
const seriesOf = (name) =>
  name.endsWith('_us') ? `trunkline_session_${name.slice(0, -3)}_seconds_total` : `trunkline_session_${name}_total`;

test('metrics() after a call: the session counters, calls and frames', async (t) => {
  const { audio } = h.speech();
  const engine = h.engineFor(t, { workers: 0 });
  const call = engine.session({ agentRate: 8000, agentRingMs: 10000 });
  // The caller's side with a lost, a duplicated and a swapped frame, then dtmf and stop.
  await h.pushAll(call, engine, h.callerMessages(audio), { onBatch: () => call.readAudio() });
  call.readAudio();
  assert.equal(call.events().at(-1).kind, 'stopped');
  const stats = call.stats();
  assert.ok(stats.media_frames_in >= h.CALLER_FRAMES - 1, `${stats.media_frames_in} frames in`);
  assert.equal(stats.frames_duplicate, 1);
  assert.equal(stats.frames_reordered, 1);

  const text = engine.metrics();
  assert.match(text, /^# HELP /);
  assert.ok(!text.includes('# EOF'));
  const got = samples(text);
  let compared = 0;
  for (const [name, value] of Object.entries(stats)) {
    if (name === 'jitter_us') continue; // an estimate per call, not a counter
    const want = name.endsWith('_us') ? value / 1e6 : value;
    assert.equal(got[seriesOf(name)], want, seriesOf(name));
    compared++;
  }
  assert.equal(compared, Object.keys(stats).length - 1);
  assert.equal(got.trunkline_calls_active, 1);
  assert.equal(got.trunkline_calls_opened_total, 1);
  assert.equal(got['trunkline_media_frames_total{direction="in"}'], stats.media_frames_in);
  assert.equal(got.trunkline_session_frames_duplicate_total, 1);

  // A closed session's counts stay, and it is counted by how it ended.
  call.close();
  const open = engine.metrics({ openMetrics: true });
  assert.ok(open.endsWith('# EOF\n'));
  const after = samples(open);
  assert.equal(after.trunkline_calls_active, 0);
  assert.equal(after['trunkline_calls_total{outcome="stopped"}'], 1);
  assert.equal(after.trunkline_session_media_frames_in_total, stats.media_frames_in);
});

test('metrics() of a threaded engine names each worker; CLOSED after close()', () => {
  const engine = new Engine({ workers: 2 });
  const got = samples(engine.metrics());
  assert.ok(got['trunkline_worker_cpu_seconds_total{worker="0"}'] >= 0);
  assert.ok(got['trunkline_worker_cpu_seconds_total{worker="1"}'] >= 0);
  assert.equal(got['trunkline_worker_cpu_seconds_total{worker="2"}'], undefined);
  engine.close();
  assert.throws(() => engine.metrics(), (e) => e instanceof TrunklineError && e.codeName === 'CLOSED');
});
