'use strict';
// Sessions through the Node binding: a whole call, agent audio and marks, interrupts, errors.

const test = require('node:test');
const assert = require('node:assert/strict');
const { Engine, TrunklineError, RESULT, PROTOCOL_ERROR, STATS_NAMES, MAX_MARK_NAME_BYTES } = require('..');
const h = require('./helpers');
const native = require('../lib/native');

const { CALLER_FRAMES, GAP_FRAME, AGENT_RATE, callerMessages, pushAll, checkCallEvents } = h;

test('a whole call in threaded mode: audio aligned with stream time, events in order, counters', async (t) => {
  const { audio, labels } = h.speech();
  assert.ok(labels[0][0] === 1000 && labels[0][1] < CALLER_FRAMES * 20, `fixture layout changed: ${labels}`);
  const engine = h.engineFor(t, { workers: 1 });
  const session = engine.session({ agentRate: AGENT_RATE });
  assert.equal(session.agentRate, AGENT_RATE);
  const chunks = [];
  const events = [];
  const drain = () => {
    chunks.push(session.readAudio());
    events.push(...session.events());
  };
  await pushAll(session, engine, callerMessages(audio), { onBatch: drain });
  const deadline = Date.now() + 5000;
  while (!events.some((e) => e.kind === 'stopped') && Date.now() < deadline) {
    await engine.wait(20);
    drain();
  }
  drain();
  const pcmBuf = Buffer.concat(chunks);
  const stats = session.stats();
  session.close();
  engine.close();

  checkCallEvents(events, labels);

  // Caller audio: exactly the stream time at the agent rate, s16le, following the caller.
  assert.equal(pcmBuf.length % 2, 0);
  const pcm = new Int16Array(pcmBuf.buffer, pcmBuf.byteOffset, pcmBuf.length / 2);
  assert.equal(pcm.length, (CALLER_FRAMES * 20 * AGENT_RATE) / 1000);
  const source = Int16Array.from(audio.subarray(0, CALLER_FRAMES * 160), h.referenceUlawDecode);
  source.fill(0, GAP_FRAME * 160, (GAP_FRAME + 1) * 160);
  const srcEnv = h.windowRms(source, 160);
  const agentEnv = h.windowRms(pcm, 320);
  const r = correlation(srcEnv, agentEnv);
  assert.ok(r > 0.98, `agent audio envelope correlates ${r.toFixed(4)} with the caller's`);
  const g = GAP_FRAME * 320;
  const gapRms = h.windowRms(pcm.subarray(g + 100, g + 220), 120)[0];
  assert.ok(gapRms < 0.05 * srcEnv[GAP_FRAME - 1], `the lost frame is silence (rms ${gapRms})`);

  // Counters, by the names the library gives them.
  assert.deepEqual(Object.keys(stats), [...STATS_NAMES]);
  assert.equal(stats.media_frames_in, CALLER_FRAMES); // 219 sent + 1 duplicate
  assert.equal(stats.frames_duplicate, 1);
  assert.equal(stats.frames_reordered, 1);
  assert.equal(stats.gap_fill_samples, 160);
  assert.equal(stats.frames_late, 0);
  assert.equal(stats.protocol_errors, 0);
  assert.equal(stats.agent_samples_dropped, 0);
  assert.equal(stats.events_dropped, 0);
  assert.equal(stats.dtmf_digits, 1);
  assert.equal(stats.agent_samples_out, pcm.length);
});

test('agent audio goes out as paced 20 ms media frames, then its mark; the echo reports it played', async (t) => {
  const engine = h.engineFor(t, { workers: 1 });
  const session = engine.session({ agentRate: 8000 });
  session.push(h.connected());
  session.push(h.start());
  const reply = h.tone(24000, 0.5, 300, 6000);
  // Half as an Int16Array, half as an s16le Buffer at an odd offset (copied, not misread). Each
  // play() takes what fits; playAll plays the rest once the engine has made room.
  const half = reply.length / 2;
  assert.equal(await h.playAll(session, engine, reply.subarray(0, half), 24000), half);
  const bytes = Buffer.from(reply.buffer, reply.byteOffset + half * 2, half * 2);
  const odd = Buffer.alloc(bytes.length + 1);
  bytes.copy(odd, 1);
  assert.equal(await h.playAll(session, engine, odd.subarray(1), 24000), half);
  session.mark('reply-1');

  const carrier = new h.Carrier();
  const events = [];
  const order = [];
  const t0 = Date.now();
  while (!events.some((e) => e.kind === 'mark_played') && Date.now() - t0 < 5000) {
    await engine.wait(20);
    const out = session.outbound();
    for (const m of out) {
      const o = h.parseOutbound(m);
      order.push(o.event === 'mark' ? o.name : o.event);
    }
    for (const echo of carrier.receive(out)) session.push(echo);
    events.push(...session.events().filter((e) => e.kind !== 'connected' && e.kind !== 'started'));
  }
  const stats = session.stats();
  session.close();
  engine.close();

  // 0.5 s at 24 kHz is exactly 25 frames of 160 µ-law bytes (20 ms at 8 kHz), at the tone's level.
  assert.equal(carrier.frames.length, 25);
  for (const f of carrier.frames) assert.equal(f.length, 160);
  const decoded = Int16Array.from(Buffer.concat(carrier.frames.slice(2, 22)), h.referenceUlawDecode);
  const rms = h.windowRms(decoded, decoded.length)[0];
  const expect = 6000 / Math.SQRT2;
  assert.ok(Math.abs(20 * Math.log10(rms / expect)) < 0.5, `reply level ${rms.toFixed(0)} vs ${expect.toFixed(0)}`);
  // The mark follows the last frame (hidden sync marks may sit in between frames).
  const visible = order.filter((o) => !o.startsWith('trunkline-sync-'));
  assert.equal(visible.indexOf('reply-1'), visible.length - 1);
  assert.equal(visible.filter((o) => o === 'media').length, 25);
  assert.deepEqual(events, [
    {
      kind: 'mark_played',
      streamMs: 0,
      playedMs: 500,
      digit: '',
      durationMs: null,
      silenceMs: null,
      confidence: null,
      name: 'reply-1',
      errorCode: 0,
      errorMessage: '',
      segment: null,
      segmentPlayedMs: null,
      unheardSegments: [],
    },
  ]);
  assert.equal(stats.frames_out, 25);
  assert.equal(stats.marks_sent, 1);
  assert.equal(stats.marks_played, 1);
  assert.equal(stats.play_samples_in, reply.length);
});

test('interrupt() drops queued agent audio, sends clear, and reports what the caller heard', async (t) => {
  const engine = h.engineFor(t, { workers: 1 });
  const session = engine.session();
  session.push(h.connected());
  session.push(h.start());
  // 2 s: what the outbound queue holds, so all of it (and its mark) is queued before the interrupt.
  const greeting = h.tone(16000, 2, 440, 8000);
  let left = greeting;
  const carrier = new h.Carrier();
  const events = [];
  let interrupted = false;
  const t0 = Date.now();
  while (Date.now() - t0 < 3000) {
    if (left.length) {
      try {
        left = left.subarray(session.play(left, 16000));
        if (!left.length) session.mark('greeting-done');
      } catch (e) {
        if (e.code !== RESULT.FULL) throw e;
      }
    }
    await engine.wait(20);
    for (const echo of carrier.receive(session.outbound())) session.push(echo);
    events.push(...session.events());
    if (!interrupted && carrier.frames.length >= 15) {
      session.interrupt();
      interrupted = true;
    }
    if (events.some((e) => e.kind === 'interrupted') && events.some((e) => e.kind === 'mark_cleared')) break;
  }
  await engine.wait(100);
  for (const echo of carrier.receive(session.outbound())) session.push(echo);
  events.push(...session.events());
  const stats = session.stats();
  session.close();
  engine.close();

  assert.ok(interrupted);
  assert.equal(carrier.clears, 1, 'one clear sent');
  const kinds = events.map((e) => e.kind);
  assert.deepEqual(kinds, ['connected', 'started', 'interrupted', 'mark_cleared']);
  events.splice(0, 2);
  const played = events[0].playedMs;
  assert.ok(played > 0 && played < carrier.frames.length * 20, `played ${played} ms of ${carrier.frames.length * 20} ms sent`);
  assert.equal(events[1].name, 'greeting-done');
  assert.ok(carrier.frames.length < 2000 / 20 / 2, `the rest of the greeting was dropped (${carrier.frames.length} frames sent)`);
  assert.equal(stats.interrupts, 1);
  assert.equal(stats.clears_sent, 1);
  assert.ok(stats.flushed_samples > 0);
});

test('errors are TrunklineErrors carrying the result code, its name and the library message', async (t) => {
  const engine = h.engineFor(t, { workers: 1, maxSessions: 1 });
  const session = engine.session({ maxPendingMarks: 1 });

  const expectCode = (fn, codeName, pattern) => {
    let caught;
    try {
      fn();
    } catch (e) {
      caught = e;
    }
    assert.ok(caught instanceof TrunklineError, `expected a TrunklineError, got ${caught}`);
    assert.ok(caught instanceof Error);
    assert.equal(caught.name, 'TrunklineError');
    assert.equal(caught.codeName, codeName);
    assert.equal(caught.code, RESULT[codeName]);
    if (pattern) assert.match(caught.message, pattern);
    return caught;
  };

  expectCode(() => session.play(new Int16Array(160), 12345), 'INVALID_ARGUMENT', /^play: an argument is out of range$/);
  expectCode(() => engine.session(), 'TOO_MANY_SESSIONS', /session limit/);
  expectCode(() => session.mark('x'.repeat(129)), 'INVALID_ARGUMENT');
  expectCode(() => session.mark('trunkline-sync-7'), 'INVALID_ARGUMENT');
  expectCode(() => session.mark('a\0b'), 'INVALID_ARGUMENT');
  session.mark('one');
  expectCode(() => session.mark('two'), 'FULL', /queue full/);
  assert.equal(MAX_MARK_NAME_BYTES, 255);
  expectCode(() => new Engine({ maxSessions: 0 }), 'INVALID_ARGUMENT');
  // Values their C field cannot hold, which koffi would wrap: 2^32 + 1 sessions as 1, 2^32
  // workers as 0 (an inline engine the binding would take for a threaded one).
  expectCode(() => new Engine({ maxSessions: 2 ** 32 + 1 }), 'INVALID_ARGUMENT');
  expectCode(() => new Engine({ workers: 2 ** 32 }), 'INVALID_ARGUMENT');
  expectCode(() => new Engine({ workers: 1, tickMs: 2 ** 32 + 20 }), 'INVALID_ARGUMENT');

  assert.throws(() => session.push(42), TypeError);
  assert.throws(() => session.play(Buffer.alloc(3), 8000), RangeError);
  assert.throws(() => engine.session({ agentRat: 8000 }), TypeError);
  assert.throws(() => new Engine({ workers: -1 }), TypeError);

  // Every result code has the library's message; unknown codes get a generic one.
  for (const [name, code] of Object.entries(RESULT)) {
    const e = new TrunklineError(code);
    assert.equal(e.codeName, name);
    assert.ok(e.message.length > 1, name);
  }
  assert.match(new TrunklineError(99).message, /unknown/);
  assert.equal(new TrunklineError(99).codeName, 'UNKNOWN_99');

  // After close: CLOSED, stats still readable (the final counters), close twice is fine.
  session.close();
  expectCode(() => session.push(h.connected()), 'CLOSED');
  expectCode(() => session.readAudio(), 'CLOSED');
  expectCode(() => session.events(), 'CLOSED');
  assert.equal(session.stats().marks_sent, 0);
  session.close();

  // A session left open when its engine closes gets CLOSED from the library.
  const other = engine.session({ agentRate: 8000 });
  engine.close();
  expectCode(() => other.push(h.connected()), 'CLOSED');
  expectCode(() => engine.session(), 'CLOSED');
  assert.equal(await engine.wait(10), false);
  other.close();

  const e2 = h.engineFor(t, { workers: 0 });
  expectCode(() => e2.session({ agentRate: 11025 }), 'INVALID_ARGUMENT');
  e2.close();
});

test('the dialect is chosen by name', (t) => {
  const engine = h.engineFor(t, { workers: 0 });
  for (const dialect of [undefined, null, '', 'twilio']) {
    const session = engine.session({ agentRate: 16000, dialect });
    session.push(h.connected());
    session.push(h.start());
    assert.deepEqual(session.events().map((e) => e.kind), ['connected', 'started'], String(dialect));
    session.close();
  }
  for (const dialect of ['no-such-dialect', 'Twilio', 'twilio\0x']) {
    assert.throws(() => engine.session({ dialect }), (e) => e instanceof TrunklineError && e.codeName === 'INVALID_ARGUMENT', dialect);
  }
  assert.throws(() => engine.session({ dialect: 1 }), TypeError);
  assert.throws(() => engine.session({ structSize: 8 }), TypeError);
});

test('bad carrier input is reported as protocol_error events, never thrown', (t) => {
  const engine = h.engineFor(t, { workers: 0 });
  const session = engine.session();
  session.push('{"event":');
  session.push(Buffer.from('{"event":"connected","protocol":"Call","version":"1.0.0"}'));
  session.push(h.media(2, 1, 0, Buffer.alloc(160, 0xff))); // before start
  session.push(h.markEcho(3, 'never-sent'));
  const events = session.events();
  assert.deepEqual(
    events.map((e) => [e.kind, e.errorCode]),
    [
      ['protocol_error', PROTOCOL_ERROR.MALFORMED_JSON],
      ['protocol_error', PROTOCOL_ERROR.UNEXPECTED_FRAME_KIND],
      ['protocol_error', PROTOCOL_ERROR.MEDIA_BEFORE_START],
      ['protocol_error', PROTOCOL_ERROR.UNKNOWN_MARK],
    ],
  );
  assert.equal(events[0].errorMessage, 'malformed message: not valid JSON');
  assert.equal(events[3].errorMessage, 'echo of a mark that was never sent');
  assert.equal(session.stats().protocol_errors, 4);
  session.close();
  engine.close();
});

test('a message for another stream is reported and does not end the call', (t) => {
  const engine = h.engineFor(t, { workers: 0 });
  const session = engine.session();
  session.push(h.start());
  session.push(h.stop(5).replace(h.STREAM_SID, 'MZ-another-stream'));
  session.push(h.dtmf(6, '4'));
  const events = session.events();
  assert.deepEqual(
    events.map((e) => [e.kind, e.errorCode]),
    [
      ['started', 0],
      ['protocol_error', PROTOCOL_ERROR.FOREIGN_STREAM],
      ['dtmf', 0],
    ],
  );
  assert.equal(PROTOCOL_ERROR.FOREIGN_STREAM, 16);
  assert.equal(events[1].errorMessage, "message for another stream (its stream id differs from the start's)");
  assert.equal(session.stats().protocol_errors, 1);
  session.close();
  engine.close();
});

test('pushAsync() waits out a full inbound ring instead of throwing', async (t) => {
  const engine = h.engineFor(t, { workers: 1 });
  // The ring holds two maximal messages (a message never wraps around its end).
  const session = engine.session({ inboundRingBytes: 4096, maxMessageBytes: 2000, agentRingMs: 10000 });
  const { audio } = h.speech();
  const msgs = [h.connected(), h.start()];
  // Far more than the ring holds: a worker that keeps pace with a few hundred synchronous pushes
  // (it runs on its own core, at a raised priority) cannot keep pace with 2,000. The fixture's
  // audio is reused, so every payload is real µ-law.
  const FRAMES = 2000;
  const inFixture = Math.floor(audio.length / 160);
  for (let i = 0; i < FRAMES; i++) {
    const k = i % inFixture;
    msgs.push(h.media(i + 2, i + 1, i * 20, audio.subarray(k * 160, (k + 1) * 160)));
  }
  // Synchronous pushes run into FULL: nothing is taken, the caller must retry.
  let taken = 0;
  assert.throws(
    () => {
      for (const m of msgs) {
        session.push(m);
        taken++;
      }
    },
    (e) => e instanceof TrunklineError && e.codeName === 'FULL',
  );
  for (const m of msgs.slice(taken)) await session.pushAsync(m);
  const t0 = Date.now();
  while (session.stats().media_frames_in < FRAMES && Date.now() - t0 < 10000) await engine.wait(20);
  const stats = session.stats();
  assert.ok(taken < msgs.length);
  assert.ok(stats.messages_refused_full >= 1);
  assert.equal(stats.media_frames_in, FRAMES);
  session.close();
  engine.close();
});

test('pushAsync() calls not awaited one by one keep the carrier order', async (t) => {
  const engine = h.engineFor(t, { workers: 1 });
  const session = engine.session({ inboundRingBytes: 4096, maxMessageBytes: 2000, agentRingMs: 10000 });
  const { audio } = h.speech();
  const FRAMES = 1500;
  const inFixture = Math.floor(audio.length / 160);
  const msgs = [h.connected(), h.start()];
  for (let i = 0; i < FRAMES; i++) {
    const k = i % inFixture;
    msgs.push(h.media(i + 2, i + 1, i * 20, audio.subarray(k * 160, (k + 1) * 160)));
  }
  msgs.push(h.stop(FRAMES + 2));
  // As from a socket's 'message' events: every call made at once, none awaited before the next.
  const pending = msgs.map((m) => session.pushAsync(m, 10000));
  // While some wait (the ring holds a few messages), a plain push would overtake them: refused.
  assert.throws(() => session.push(h.dtmf(1, '1')), (e) => e instanceof TrunklineError && e.codeName === 'FULL');
  await Promise.all(pending);
  const events = [];
  const t0 = Date.now();
  while (!events.some((ev) => ev.kind === 'stopped') && Date.now() - t0 < 10000) {
    await engine.wait(20);
    events.push(...session.events());
  }
  const stats = session.stats();
  assert.ok(stats.messages_refused_full >= 1, 'the ring filled: some calls waited');
  assert.deepEqual(events.filter((ev) => ev.kind === 'protocol_error').map((ev) => ev.errorMessage), []);
  assert.equal(stats.media_frames_in, FRAMES);
  // In order: none put back in place (the jitter buffer would hide a reordering otherwise).
  assert.equal(stats.frames_reordered, 0);
  assert.equal(stats.frames_late, 0);
  assert.equal(events.at(-1).kind, 'stopped');
  session.close();
  engine.close();
});

test('an inline engine (workers: 0) processes on the calling thread', (t) => {
  const engine = h.engineFor(t, { workers: 0 });
  assert.equal(engine.inline, true);
  const session = engine.session({ agentRate: 16000 });
  const { audio } = h.speech();
  session.push(h.connected());
  session.push(h.start());
  for (let i = 0; i < 10; i++) session.push(h.frame(audio, i));
  assert.equal(session.readAudio().length, 10 * 320 * 2);
  assert.deepEqual(
    session.events().map((e) => e.kind),
    ['connected', 'started'],
  );
  assert.equal(typeof engine.wakeupFd, 'number');
  session.close();
  engine.close();
});

test('on a manual clock, agent audio goes out a lead at once, then exactly one frame per 20 ms advanced', async (t) => {
  const engine = h.engineFor(t, { workers: 0, manualClock: true });
  assert.equal(engine.manualClock, true);
  assert.equal(engine.inline, true);
  const session = engine.session({ agentRate: 8000, leadMs: 100 });
  session.push(h.connected());
  session.push(h.start());
  const sent = [];
  const mediaReady = () => {
    const out = session.outbound().map(h.parseOutbound);
    sent.push(...out);
    return out.filter((o) => o.event === 'media').length;
  };
  assert.equal(session.play(h.tone(24000, 0.6, 300, 6000), 24000), 14400); // 30 frames
  session.mark('reply');
  assert.equal(mediaReady(), 5, 'the 100 ms lead, at t = 0');
  await h.sleep(50);
  assert.equal(mediaReady(), 0, 'wall time does not move a manual clock');
  for (let step = 1; step <= 25; step++) {
    engine.advance(20);
    assert.equal(mediaReady(), 1, `step ${step}`);
  }
  engine.advance(200);
  assert.equal(mediaReady(), 0, 'all 30 frames are out');
  // The mark follows the last frame (hidden sync marks may sit in between); echoed, it played at
  // exactly 600 ms of its utterance.
  const visible = sent.map((o) => (o.event === 'mark' ? o.name : o.event)).filter((o) => !o.startsWith('trunkline-sync-'));
  assert.deepEqual(visible, [...Array(30).fill('media'), 'reply']);
  session.push(h.markEcho(50, 'reply'));
  const played = session.events().filter((e) => e.kind === 'mark_played');
  assert.deepEqual(played.map((e) => [e.name, e.playedMs]), [['reply', 600]]);
  assert.equal(session.stats().frames_out, 30);
});

test('a manual clock is inline only, and only a manual clock advances', (t) => {
  const invalid = (e) => e instanceof TrunklineError && e.codeName === 'INVALID_ARGUMENT';
  assert.throws(() => new Engine({ manualClock: true }), invalid); // one worker per core
  assert.throws(() => new Engine({ workers: 1, manualClock: true }), invalid);
  const real = h.engineFor(t, { workers: 0 });
  assert.equal(real.manualClock, false);
  assert.throws(() => real.advance(20), invalid);
  const engine = h.engineFor(t, { workers: 0, manualClock: true });
  engine.advance(0);
  engine.advance(0.0004); // rounds to 0 µs
  for (const bad of [-1, -0.01, NaN, Infinity, '20', 20n]) assert.throws(() => engine.advance(bad), RangeError, String(bad));
  // Past the clock's end (2^62 - 1 µs): refused by the library, or before it when the step does
  // not even fit its 64-bit argument; the clock does not move.
  assert.throws(() => engine.advance(2 ** 62 / 1000 + 1), invalid);
  assert.throws(() => engine.advance(2 ** 70), invalid);
  engine.close();
  assert.throws(() => engine.advance(20), (e) => e instanceof TrunklineError && e.codeName === 'CLOSED');
});

test('workerNice reaches the workers and prioritisedWorkers counts them', (t) => {
  // A higher nice value is always granted and 0 leaves the workers alone: both workers count.
  for (const workerNice of [5, 0]) {
    const engine = h.engineFor(t, { workers: 2, workerNice });
    assert.equal(engine.prioritisedWorkers, 2, `workerNice ${workerNice}`);
    engine.close();
  }
  const config = {};
  const size = native.TYPES.trunkline_engine_config.size;
  assert.equal(native.fns.trunkline_engine_config_default(config, size), RESULT.OK);
  assert.equal(config.worker_nice, -10);
  assert.equal(Number(config.struct_size), size);
  assert.throws(() => new Engine({ workers: 2, workerNice: 20 }), (e) => e instanceof TrunklineError && e.codeName === 'INVALID_ARGUMENT');
  assert.throws(() => new Engine({ workers: 2, workerNice: 1.5 }), TypeError);
  assert.throws(() => new Engine({ workers: 2, workerNice: 2 ** 32 - 10 }), TypeError); // would wrap to -10
});

function correlation(a, b) {
  const n = Math.min(a.length, b.length);
  const mean = (x) => x.slice(0, n).reduce((s, v) => s + v, 0) / n;
  const ma = mean(a);
  const mb = mean(b);
  let cov = 0;
  let va = 0;
  let vb = 0;
  for (let i = 0; i < n; i++) {
    cov += (a[i] - ma) * (b[i] - mb);
    va += (a[i] - ma) ** 2;
    vb += (b[i] - mb) ** 2;
  }
  return cov / Math.sqrt(va * vb);
}
