'use strict';
// Call recordings (recordPath): a short call's WAV read back by a RIFF parser of this test's own,
// and the paths refused.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Engine, TrunklineError, RESULT } = require('..');
const h = require('./helpers');

const FRAMES = 100; // 2 s of caller audio
const RATE = 8000;

function tempDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trunkline-record-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The format and samples of a PCM WAV file: walks its RIFF chunks (fmt, data). */
function readWav(file) {
  const b = fs.readFileSync(file);
  assert.equal(b.toString('ascii', 0, 4), 'RIFF');
  assert.equal(b.toString('ascii', 8, 12), 'WAVE');
  assert.equal(b.readUInt32LE(4), b.length - 8, 'RIFF size');
  let fmt = null;
  let data = null;
  for (let at = 12; at + 8 <= b.length; ) {
    const id = b.toString('ascii', at, at + 4);
    const size = b.readUInt32LE(at + 4);
    const body = b.subarray(at + 8, at + 8 + size);
    if (id === 'fmt ') {
      fmt = {
        format: body.readUInt16LE(0),
        channels: body.readUInt16LE(2),
        rate: body.readUInt32LE(4),
        byteRate: body.readUInt32LE(8),
        blockAlign: body.readUInt16LE(12),
        bits: body.readUInt16LE(14),
      };
    } else if (id === 'data') {
      data = new Int16Array(body.buffer.slice(body.byteOffset, body.byteOffset + size));
    }
    at += 8 + size + (size & 1);
  }
  assert.ok(fmt && data, 'fmt and data chunks');
  return { ...fmt, samples: data };
}

const rms = (x) => Math.sqrt(x.reduce((s, v) => s + v * v, 0) / Math.max(1, x.length));

test('a call is recorded in stereo: the caller left, the agent as heard right', (t) => {
  const { audio } = h.speech();
  const file = path.join(tempDir(t), 'call.wav');
  const sent = []; // the agent's µ-law as sent to the carrier
  // A manual clock: the carrier plays (and the recording places) exactly 20 ms per step.
  const engine = new Engine({ workers: 0, manualClock: true });
  try {
    const session = engine.session({ agentRate: RATE, recordPath: file, bargeInEnabled: false });
    assert.ok(fs.existsSync(file), 'created when the session opens');
    session.push(h.connected());
    session.push(h.start());
    session.play(h.tone(RATE, 1.0, 440, 8000), RATE);
    for (let i = 0; i < FRAMES; i++) {
      session.push(h.frame(audio, i));
      engine.advance(20);
      for (const m of session.outbound()) {
        const o = h.parseOutbound(m);
        if (o.event === 'media') sent.push(o.payload);
      }
      session.readAudio();
      session.events();
    }
    session.push(h.stop(FRAMES + 2));
    session.close();
  } finally {
    engine.close(); // finishes the recording
  }
  const wav = readWav(file);
  assert.deepEqual(
    [wav.format, wav.channels, wav.rate, wav.bits, wav.blockAlign, wav.byteRate],
    [1, 2, RATE, 16, 4, RATE * 4],
  );
  assert.equal(wav.samples.length / 2, FRAMES * 160, 'as long as the call');
  const left = wav.samples.filter((_, i) => i % 2 === 0);
  const right = wav.samples.filter((_, i) => i % 2 === 1);
  // Left: the caller's µ-law as delivered, decoded by an independent G.711 expansion.
  assert.deepEqual(Array.from(left), Array.from(audio.subarray(0, FRAMES * 160), h.referenceUlawDecode));
  // Right: the agent's 1 s as it went to the carrier, from the start, then silence.
  const agent = Buffer.concat(sent);
  assert.equal(agent.length, RATE);
  assert.deepEqual(Array.from(right.subarray(0, RATE)), Array.from(agent, h.referenceUlawDecode));
  const level = 20 * Math.log10(rms(right.subarray(0, RATE)) / (8000 / Math.SQRT2));
  assert.ok(Math.abs(level) < 0.5, `agent level ${level} dB`);
  assert.ok(right.subarray(RATE).every((v) => v === 0));
});

test('an unknown extension or a file that cannot be created is refused with RECORD', (t) => {
  const dir = tempDir(t);
  const engine = h.engineFor(t, { workers: 0 });
  for (const bad of ['call.mp3', 'call', 'call.wav.txt', path.join('no', 'such', 'dir', 'call.wav'), '.']) {
    assert.throws(
      () => engine.session({ recordPath: path.join(dir, bad) }),
      (e) => e instanceof TrunklineError && e.code === RESULT.RECORD && e.codeName === 'RECORD' && /\.wav/.test(e.message),
      bad,
    );
  }
  assert.deepEqual(fs.readdirSync(dir), [], 'nothing created');
  assert.throws(() => engine.session({ recordPath: 42 }), TypeError);
  // null and '' record nothing; the engine goes on.
  engine.session({ recordPath: null }).close();
  engine.session({ recordPath: '' }).close();
});
