'use strict';
// The VAD's turn settings through the C session config: end_of_turn events (their fields, their
// place before speech_stopped or, with a maximum silence, after it, their settings refused out of
// range) and echo-aware detection.

const test = require('node:test');
const assert = require('node:assert/strict');
const { Engine, TrunklineError, RESULT, ulawEncode } = require('..');
const h = require('./helpers');
const native = require('../lib/native');

const HANGOVER_MS = 400;

/**
 * Feeds the whole speech fixture to an inline session; returns its speech events, each with `at`:
 * the stream time (ms of caller audio pushed) when it came out.
 */
function runCall(t, options = {}) {
  const { audio } = h.speech();
  const engine = h.engineFor(t, { workers: 0 });
  const session = engine.session({ vadHangoverMs: HANGOVER_MS, ...options });
  const events = [];
  session.push(h.connected());
  session.push(h.start());
  const frames = Math.floor(audio.length / 160);
  for (let i = 0; i < frames; i++) {
    session.push(h.frame(audio, i));
    session.readAudio(); // keeps the caller PCM ring from filling
    for (const e of session.events()) events.push({ ...e, at: (i + 1) * 20 });
  }
  session.push(h.stop(frames + 2));
  for (const e of session.events()) events.push({ ...e, at: frames * 20 });
  session.close();
  return events.filter((e) => ['speech_started', 'speech_stopped', 'end_of_turn'].includes(e.kind));
}

test('end_of_turn comes once per pause, before or with speech_stopped, with sane fields', (t) => {
  const threshold = 35;
  const minSilence = 140;
  const { labels } = h.speech();
  const events = runCall(t, {
    vadEndOfTurnEnabled: true,
    vadEndOfTurnThreshold: threshold,
    vadEndOfTurnMinSilenceMs: minSilence,
  });
  const kinds = events.map((e) => e.kind);
  const stops = kinds.flatMap((k, i) => (k === 'speech_stopped' ? [i] : []));
  assert.equal(stops.length, labels.length, kinds.join());
  let early = 0;
  stops.forEach((i, n) => {
    const stopped = events[i];
    const turn = events[i - 1];
    // The pause's end_of_turn comes just before its speech_stopped, at the same end of speech.
    assert.equal(turn.kind, 'end_of_turn', kinds.join());
    assert.equal(turn.streamMs, stopped.streamMs);
    assert.ok(Math.abs(stopped.streamMs - labels[n][1]) <= 60, `end ${stopped.streamMs} vs truth ${labels[n][1]}`);
    assert.ok(turn.confidence >= 0 && turn.confidence <= 100, `confidence ${turn.confidence}`);
    if (turn.silenceMs < HANGOVER_MS) {
      // Early: finished-sounding, after the minimum silence, and out that much sooner.
      early++;
      assert.ok(turn.confidence >= threshold, `early at confidence ${turn.confidence}`);
      assert.equal(turn.silenceMs, minSilence);
      assert.ok(turn.at < stopped.at, `early end_of_turn at ${turn.at} ms, speech_stopped at ${stopped.at} ms`);
      assert.ok(turn.at - turn.streamMs >= minSilence);
    } else {
      assert.equal(turn.silenceMs, HANGOVER_MS);
      assert.ok(turn.confidence < threshold);
    }
  });
  assert.ok(early >= 1, 'no early end of turn on the whole fixture');
  // Every end_of_turn falls inside a turn, never after its speech_stopped.
  kinds.forEach((k, i) => {
    if (k === 'end_of_turn') assert.ok(['speech_started', 'end_of_turn'].includes(kinds[i - 1]), kinds.join());
  });
  for (const e of events.filter((x) => x.kind !== 'end_of_turn')) {
    assert.equal(e.silenceMs, null);
    assert.equal(e.confidence, null);
  }
});

test('the top threshold waits for the hangover; off by default', (t) => {
  const turns = runCall(t, { vadEndOfTurnEnabled: true, vadEndOfTurnThreshold: 99 }).filter((e) => e.kind === 'end_of_turn');
  assert.ok(turns.length > 0);
  for (const e of turns) assert.ok(e.silenceMs === HANGOVER_MS && e.confidence < 99, JSON.stringify(e));
  const plain = runCall(t);
  assert.ok(!plain.some((e) => e.kind === 'end_of_turn'));
  assert.ok(plain.some((e) => e.kind === 'speech_stopped'));
});

test('a max silence longer than the hangover ends the turn after speech_stopped', (t) => {
  // At the top threshold no phrase sounds finished enough: without a maximum silence each
  // pause's end_of_turn comes with its speech_stopped (the test above); with one between the
  // hangover and the fixture's shortest pause (800 ms) it comes that much silence after the
  // speech, later in the stream than speech_stopped, at the same end of speech.
  const maxSilence = 600;
  const { labels } = h.speech();
  const events = runCall(t, { vadEndOfTurnEnabled: true, vadEndOfTurnThreshold: 99, vadEndOfTurnMaxSilenceMs: maxSilence });
  const kinds = events.map((e) => e.kind);
  const turns = kinds.flatMap((k, i) => (k === 'end_of_turn' ? [i] : []));
  assert.equal(turns.length, labels.length, kinds.join());
  for (const i of turns) {
    const turn = events[i];
    const stopped = events[i - 1];
    assert.equal(stopped.kind, 'speech_stopped', kinds.join());
    assert.equal(turn.streamMs, stopped.streamMs);
    assert.ok(turn.silenceMs === maxSilence && turn.confidence < 99, JSON.stringify(turn));
    assert.ok(turn.at > stopped.at, `end_of_turn at ${turn.at} ms, speech_stopped at ${stopped.at} ms`);
    assert.ok(turn.at - turn.streamMs >= maxSilence);
  }
  // Longer than every pause of the fixture: no pause ends the turn, speech still stops, and the
  // call's end ends the turn still waiting for its maximum silence.
  const longEvents = runCall(t, { vadEndOfTurnEnabled: true, vadEndOfTurnThreshold: 99, vadEndOfTurnMaxSilenceMs: 2000 });
  const long = longEvents.map((e) => e.kind);
  assert.equal(long.filter((k) => k === 'end_of_turn').length, 1, long.join());
  assert.equal(long[long.length - 1], 'end_of_turn', long.join());
  assert.equal(long.filter((k) => k === 'speech_stopped').length, labels.length);
  const [lastStop, lastTurn] = longEvents.slice(-2);
  assert.equal(lastTurn.streamMs, lastStop.streamMs);
  assert.ok(lastTurn.silenceMs < 2000, JSON.stringify(lastTurn));
});

test('the max silence defaults to 0; above 10 s is refused', (t) => {
  const config = {};
  assert.equal(native.fns.trunkline_session_config_default(config, native.TYPES.trunkline_session_config.size), RESULT.OK);
  assert.equal(config.vad_end_of_turn_max_silence_ms, 0);
  const engine = h.engineFor(t, { workers: 0 });
  for (const bad of [10001, 2 ** 32 - 1]) {
    assert.throws(
      () => engine.session({ vadEndOfTurnEnabled: true, vadEndOfTurnMaxSilenceMs: bad }),
      (e) => e instanceof TrunklineError && e.code === RESULT.INVALID_ARGUMENT,
      String(bad),
    );
  }
  // Not whole frames: accepted (rounded up to 20 ms, like the minimum silence).
  for (const good of [10000, 1, 1010]) engine.session({ vadEndOfTurnEnabled: true, vadEndOfTurnMaxSilenceMs: good }).close();
});

test('an end-of-turn threshold out of 1..99 is refused', (t) => {
  const engine = h.engineFor(t, { workers: 0 });
  for (const bad of [0, 100, 255, 256, 2 ** 32 - 1]) {
    assert.throws(
      () => engine.session({ vadEndOfTurnEnabled: true, vadEndOfTurnThreshold: bad }),
      (e) => e instanceof TrunklineError && e.code === RESULT.INVALID_ARGUMENT,
      String(bad),
    );
  }
  assert.throws(() => engine.session({ vadEndOfTurnThreshold: -1 }), TypeError);
  for (const good of [1, 99]) engine.session({ vadEndOfTurnEnabled: true, vadEndOfTurnThreshold: good }).close();
});

test('echo-aware detection is accepted and changes nothing while the agent is silent', (t) => {
  // The echo gate acts on the agent's played audio only: with none, speech is found as without it.
  const strip = (events) => events.map((e) => [e.kind, e.streamMs]);
  const plain = runCall(t);
  const echoAware = runCall(t, { vadEchoAware: true });
  assert.deepEqual(strip(echoAware), strip(plain));
  assert.ok(echoAware.some((e) => e.kind === 'speech_started'));
});

/**
 * The agent speaks (the speech fixture's first 2.5 s) and the line carries its voice back: each
 * frame the carrier plays returns as caller audio 100 ms later, 10 dB down. On a manual clock, so
 * the carrier plays exactly a frame per 20 ms. Returns the kinds of the speech and barge-in events.
 */
function agentEchoCall(echoAware, options = {}, out = {}) {
  const { audio } = h.speech();
  const agent = Int16Array.from(audio.subarray(0, 20000), h.referenceUlawDecode);
  const silence = Buffer.alloc(160, 0xff);
  const kinds = [];
  const engine = new Engine({ workers: 0, manualClock: true });
  try {
    const session = engine.session({ agentRate: 8000, vadEchoAware: echoAware, ...options });
    out.sent = [];
    session.push(h.connected());
    session.push(h.start());
    assert.equal(session.play(agent, 8000), agent.length);
    const queued = [];
    const played = [];
    for (let i = 0; i < 200; i++) {
      for (const m of session.outbound()) {
        const o = h.parseOutbound(m);
        if (o.event === 'media') {
          queued.push(o.payload);
          out.sent.push(o.payload);
        }
        else if (o.event === 'clear') queued.length = 0;
      }
      played.push(queued.shift() ?? silence);
      const heard = i >= 5 ? played[i - 5] : silence;
      const echo = Int16Array.from(heard, (c) => Math.trunc(h.referenceUlawDecode(c) * 0.316));
      session.push(h.media(i + 2, i + 1, i * 20, ulawEncode(echo)));
      engine.advance(20);
      session.readAudio();
      for (const e of session.events()) if (e.kind === 'speech_started' || e.kind === 'barge_in') kinds.push(e.kind);
    }
    out.stats = session.stats();
    session.close();
  } finally {
    engine.close();
  }
  return kinds;
}

test('echo-aware detection keeps the agent from barging in on its own echo', () => {
  // Without it the echo passes for the caller's speech and cuts the agent off; with it, the echo
  // the agent's played audio explains is not speech.
  assert.ok(agentEchoCall(false).includes('barge_in'));
  assert.deepEqual(agentEchoCall(true), []);
});

function levelDb(payload) {
  let sum = 0;
  for (const c of payload) sum += h.referenceUlawDecode(c) ** 2;
  return 10 * Math.log10(sum / payload.length + 1e-9);
}

test('ducking turns the agent down before the barge-in; bargeInDuckDb 0 turns it off', () => {
  // The same deterministic call twice (the line's echo barges in): with ducking (default 18 dB)
  // the frames sent between the speech's confirmation and the clear are the same audio 18 dB
  // down; with 0 nothing is turned down. The quieter echo may move the barge-in by a frame.
  const ducked = {};
  const plain = {};
  const kinds = agentEchoCall(false, {}, ducked);
  assert.deepEqual(agentEchoCall(false, { bargeInDuckDb: 0 }, plain), kinds);
  assert.ok(kinds.includes('barge_in'));
  assert.deepEqual([ducked.stats.ducks, plain.stats.ducks], [1, 0]);
  const n = Math.min(ducked.sent.length, plain.sent.length);
  const differ = [];
  for (let i = 0; i < n; i++) if (!ducked.sent[i].equals(plain.sent[i])) differ.push(i);
  assert.ok(differ.length >= 3, String(differ));
  assert.deepEqual(differ, Array.from({ length: n - differ[0] }, (_, k) => differ[0] + k));
  // The first ducked frame holds the 10 ms ramp.
  const drops = differ.slice(1).filter((i) => levelDb(plain.sent[i]) > 30).map((i) => levelDb(plain.sent[i]) - levelDb(ducked.sent[i]));
  assert.ok(drops.length > 0 && drops.every((d) => d >= 16.5 && d <= 19.5), String(drops));
  const engine = new Engine({ workers: 0 });
  try {
    assert.throws(() => engine.session({ bargeInDuckDb: 256 }), (e) => e instanceof TrunklineError);
  } finally {
    engine.close();
  }
});

test('rejoining defaults to 800 ms; above 2 s is refused', (t) => {
  // Only the engine checks the maximum: a refused 2001 next to an accepted 2000 shows the field
  // reaches it through the struct, at its place in the layout.
  const config = {};
  assert.equal(native.fns.trunkline_session_config_default(config, native.TYPES.trunkline_session_config.size), RESULT.OK);
  assert.equal(config.barge_in_rejoin_within_ms, 800);
  const engine = h.engineFor(t, { workers: 0 });
  for (const good of [0, 2000]) engine.session({ bargeInRejoinWithinMs: good }).close();
  for (const bad of [2001, 2 ** 32 - 1]) {
    assert.throws(
      () => engine.session({ bargeInRejoinWithinMs: bad }),
      (e) => e instanceof TrunklineError && e.code === RESULT.INVALID_ARGUMENT,
      String(bad),
    );
  }
});

/**
 * Pushes the speech fixture's first 3 s (its first utterance) to an inline session on a manual
 * clock, the agent silent; returns all the caller audio read back and the counters.
 */
function callerAudio(options) {
  const { audio } = h.speech();
  const frames = 150;
  const read = [];
  const engine = new Engine({ workers: 0, manualClock: true });
  try {
    const session = engine.session({ agentRate: 8000, ...options });
    session.push(h.connected());
    session.push(h.start());
    for (let i = 0; i < frames; i++) {
      session.push(h.frame(audio, i));
      engine.advance(20);
      read.push(session.readAudio());
    }
    // The stop flushes any part frame the canceller holds.
    session.push(h.stop(frames + 2));
    read.push(session.readAudio());
    const stats = session.stats();
    session.close();
    return { audio: Buffer.concat(read), stats };
  } finally {
    engine.close();
  }
}

test('echo reduction is off by default, needs echo-aware detection, and passes audio while the agent is silent', (t) => {
  const config = {};
  assert.equal(native.fns.trunkline_session_config_default(config, native.TYPES.trunkline_session_config.size), RESULT.OK);
  assert.equal(config.echo_reduction, false);
  const plain = callerAudio({ vadEchoAware: true });
  const reduced = callerAudio({ vadEchoAware: true, echoReduction: true });
  // With no agent audio there is no echo to remove: the same samples come out, none held back.
  assert.equal(plain.audio.length, 150 * 160 * 2);
  assert.equal(reduced.audio.length, plain.audio.length);
  assert.ok(reduced.audio.equals(plain.audio), 'caller audio changed with the agent silent');
  assert.equal(reduced.stats.echo_reduction_unavailable, 0);
  // Only the engine checks the pairing: refused with the flag on shows the field reaches it, at
  // its place in the layout.
  const engine = h.engineFor(t, { workers: 0 });
  for (const options of [{ echoReduction: true }, { echoReduction: true, vadEchoAware: false }]) {
    assert.throws(
      () => engine.session(options),
      (e) => e instanceof TrunklineError && e.code === RESULT.INVALID_ARGUMENT,
      JSON.stringify(options),
    );
  }
  engine.session({ echoReduction: false, vadEchoAware: false }).close();
});
