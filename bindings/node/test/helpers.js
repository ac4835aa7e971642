'use strict';
// Test support: the engine's committed fixtures, Twilio Media Streams messages, a tiny carrier.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { Engine, TrunklineError, RESULT } = require('..');

const REPO = path.resolve(__dirname, '..', '..', '..');
const FIXTURES = path.join(REPO, 'engine', 'tests', 'fixtures');
const STREAM_SID = 'MZ18ad3ab5a668481ce02b83e7395059f0';
const CALL_SID = 'CA4c5f6b7a8e9d0c1b2a3f4e5d6c7b8a9f';
const ACCOUNT_SID = 'AC0123456789abcdef0123456789abcdef';

/** The committed caller speech (8 kHz µ-law) and its ground-truth utterances [[start, end] ms]. */
function speech() {
  const audio = fs.readFileSync(path.join(FIXTURES, 'speech_8k.ulaw'));
  const labels = fs
    .readFileSync(path.join(FIXTURES, 'speech_8k.labels'), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => l.trim().split(/\s+/).map(Number));
  return { audio, labels };
}

const connected = () => JSON.stringify({ event: 'connected', protocol: 'Call', version: '1.0.0' });

const start = (custom = { caller: '+15550100', lang: 'en' }) =>
  JSON.stringify({
    event: 'start',
    sequenceNumber: '1',
    start: {
      accountSid: ACCOUNT_SID,
      streamSid: STREAM_SID,
      callSid: CALL_SID,
      tracks: ['inbound'],
      mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
      customParameters: custom,
    },
    streamSid: STREAM_SID,
  });

const media = (seq, chunk, timestampMs, payload) =>
  JSON.stringify({
    event: 'media',
    sequenceNumber: String(seq),
    media: { track: 'inbound', chunk: String(chunk), timestamp: String(timestampMs), payload: payload.toString('base64') },
    streamSid: STREAM_SID,
  });

const dtmf = (seq, digit) =>
  JSON.stringify({
    event: 'dtmf',
    streamSid: STREAM_SID,
    sequenceNumber: String(seq),
    dtmf: { track: 'inbound_track', digit },
  });

const markEcho = (seq, name) =>
  JSON.stringify({ event: 'mark', sequenceNumber: String(seq), streamSid: STREAM_SID, mark: { name } });

const stop = (seq) =>
  JSON.stringify({
    event: 'stop',
    sequenceNumber: String(seq),
    streamSid: STREAM_SID,
    stop: { accountSid: ACCOUNT_SID, callSid: CALL_SID },
  });

/** Caller frame `i` (20 ms, 160 µ-law bytes) of the speech fixture as a media message. */
const frame = (audio, i, seq = i + 2) => media(seq, i + 1, i * 20, audio.subarray(i * 160, (i + 1) * 160));

/** An outbound message as the carrier sees it: {event, payload?: Buffer, name?}. */
function parseOutbound(msg) {
  if (typeof msg !== 'string') throw new Error('outbound messages are text frames');
  const v = JSON.parse(msg);
  if (v.streamSid !== STREAM_SID) throw new Error(`outbound message for stream ${v.streamSid}`);
  if (v.event === 'media') return { event: 'media', payload: Buffer.from(v.media.payload, 'base64') };
  if (v.event === 'mark') return { event: 'mark', name: v.mark.name };
  if (v.event === 'clear') return { event: 'clear' };
  throw new Error(`unexpected outbound event ${v.event}`);
}

/**
 * A carrier that, like Twilio, plays received audio in order on its own clock (20 ms a frame)
 * and echoes each mark when the audio before it has played, or at once on `clear`.
 */
class Carrier {
  constructor() {
    this.t0 = performance.now();
    this.playEnd = 0;
    this.pendingMarks = [];
    this.frames = [];
    this.marks = [];
    this.clears = 0;
    this.seq = 10000;
  }

  now() {
    return performance.now() - this.t0;
  }

  /** Takes the session's outbound messages; returns the echoes to push back now. */
  receive(messages) {
    const echoes = [];
    for (const m of messages) {
      const o = parseOutbound(m);
      const now = this.now();
      if (o.event === 'media') {
        this.frames.push(o.payload);
        this.playEnd = Math.max(this.playEnd, now) + 20;
      } else if (o.event === 'mark') {
        this.marks.push(o.name);
        this.pendingMarks.push([Math.max(this.playEnd, now), o.name]);
      } else {
        this.clears++;
        this.playEnd = now;
        for (const [, name] of this.pendingMarks.splice(0)) echoes.push(markEcho(this.seq++, name));
      }
    }
    return echoes.concat(this.due());
  }

  /** Echoes of marks whose audio has played by now. */
  due() {
    const now = this.now();
    const out = [];
    while (this.pendingMarks.length && this.pendingMarks[0][0] <= now) {
      out.push(markEcho(this.seq++, this.pendingMarks.shift()[1]));
    }
    return out;
  }
}

/** A sine tone as Int16Array. */
function tone(rate, seconds, freq, amplitude) {
  const n = Math.round(rate * seconds);
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.round(amplitude * Math.sin((2 * Math.PI * freq * i) / rate));
  return out;
}

/** G.711 µ-law decode written from the ITU-T formula (independent of the engine's tables). */
function referenceUlawDecode(code) {
  const u = ~code & 0xff;
  const sign = u & 0x80;
  const exponent = (u >> 4) & 0x07;
  const mantissa = u & 0x0f;
  const magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
  return sign ? -magnitude | 0 : magnitude; // no -0 for code 0x7F
}

/** RMS of each `window`-sample window. */
function windowRms(pcm, window) {
  const out = [];
  for (let i = 0; i + window <= pcm.length; i += window) {
    let s = 0;
    for (let j = i; j < i + window; j++) s += pcm[j] * pcm[j];
    out.push(Math.sqrt(s / window));
  }
  return out;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A new Engine whose sessions and itself are closed when test `t` ends, pass or fail: a failed
 * assertion must not leave a stream waiting (which would keep the test process alive).
 */
function engineFor(t, options) {
  const engine = new Engine(options);
  const sessions = [];
  const open = engine.session.bind(engine);
  engine.session = (o) => {
    const s = open(o);
    sessions.push(s);
    return s;
  };
  t.after(() => {
    for (const s of sessions) s.close();
    engine.close();
  });
  return engine;
}

/** `promise`, or a failure after `ms` (the timer does not outlive it). */
async function within(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// ---- The call of the end-to-end tests (the engine's end_to_end test, in spirit).

const CALLER_FRAMES = 220; // 4.4 s, ending before the fixture's second utterance
const GAP_FRAME = 100; // never sent
const DUP_FRAME = 30; // sent twice
const SWAP_FRAME = 110; // sent after SWAP_FRAME + 1
const AGENT_RATE = 16000;

/** The caller's side of the call, as the list of messages a carrier sends, in order. */
function callerMessages(audio) {
  const msgs = [connected(), start()];
  let held = null;
  for (let i = 0; i < CALLER_FRAMES; i++) {
    const m = frame(audio, i);
    if (i === GAP_FRAME) continue;
    if (i === DUP_FRAME) msgs.push(m, m);
    else if (i === SWAP_FRAME) held = m;
    else {
      msgs.push(m);
      if (held) msgs.push(held);
      held = null;
    }
  }
  msgs.push(dtmf(5000, '5'), stop(5001));
  return msgs;
}

/** Pushes a message, waiting for the engine while its inbound ring is full. */
async function pushAll(session, engine, msgs, { batch = 10, onBatch = () => {} } = {}) {
  for (let i = 0; i < msgs.length; i++) {
    for (;;) {
      try {
        session.push(msgs[i]);
        break;
      } catch (e) {
        if (!(e instanceof TrunklineError) || e.code !== RESULT.FULL) throw e;
        await engine.wait(5);
        onBatch();
      }
    }
    if (i % batch === batch - 1) {
      await engine.wait(2);
      onBatch();
    }
  }
}

/**
 * Plays all of `pcm` (an Int16Array, or a Buffer of s16le samples) as a host does: play() takes
 * what fits (the play ring is a hand-off that the worker empties into its outbound queue, 2 s of
 * 8 kHz µ-law by default) and the rest is played once the engine has made room. Resolves to the
 * samples taken (fewer than all only if `timeoutMs` passed first).
 */
async function playAll(session, engine, pcm, rate, timeoutMs = 2000) {
  const bytesPerSample = pcm instanceof Int16Array ? 1 : 2;
  let left = pcm;
  const t0 = Date.now();
  while (left.length && Date.now() - t0 < timeoutMs) {
    try {
      left = left.subarray(session.play(left, rate) * bytesPerSample);
    } catch (e) {
      if (!(e instanceof TrunklineError) || e.code !== RESULT.FULL) throw e;
    }
    if (left.length) await engine.wait(5);
  }
  return (pcm.length - left.length) / bytesPerSample;
}

/** The started event of the call `start()` announces, carrier-neutral names only. */
function checkStarted(started) {
  assert.equal(started.callId, CALL_SID);
  assert.equal(started.name, CALL_SID);
  assert.equal(started.streamId, STREAM_SID);
  assert.equal(started.accountId, ACCOUNT_SID);
  assert.deepEqual(started.customParameters, { caller: '+15550100', lang: 'en' });
  assert.deepEqual(started.tracks, ['inbound']);
  // What the start message announced: 8000 Hz µ-law, mono.
  assert.equal(started.encoding, 'mulaw');
  assert.equal(started.sampleRate, 8000);
  assert.equal(started.channels, 1);
  for (const twilioName of ['callSid', 'streamSid', 'accountSid', 'mediaFormat']) {
    assert.ok(!(twilioName in started), `started event has ${twilioName}`);
  }
}

function checkCallEvents(events, labels) {
  const kinds = events.map((e) => e.kind);
  assert.deepEqual(kinds, ['connected', 'started', 'speech_started', 'speech_stopped', 'dtmf', 'stopped']);
  const started = events[1];
  checkStarted(started);
  assert.deepEqual(Object.keys(started.customParameters), ['caller', 'lang']);
  const [first] = labels;
  const onset = events[2].streamMs;
  assert.ok(Math.abs(onset - first[0]) <= 60, `speech onset ${onset} ms vs truth ${first[0]} ms`);
  const end = events[3].streamMs;
  assert.ok(Math.abs(end - first[1]) <= 120, `speech end ${end} ms vs truth ${first[1]} ms`);
  assert.equal(events[4].digit, '5');
}


module.exports = {
  REPO,
  FIXTURES,
  STREAM_SID,
  CALL_SID,
  ACCOUNT_SID,
  speech,
  connected,
  start,
  media,
  dtmf,
  markEcho,
  stop,
  frame,
  parseOutbound,
  Carrier,
  tone,
  referenceUlawDecode,
  windowRms,
  sleep,
  within,
  engineFor,
  CALLER_FRAMES,
  GAP_FRAME,
  DUP_FRAME,
  SWAP_FRAME,
  AGENT_RATE,
  callerMessages,
  pushAll,
  playAll,
  checkStarted,
  checkCallEvents,
};
