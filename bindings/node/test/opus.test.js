'use strict';
// Opus agent audio through the Node binding, and the agent format of offloaded calls.
//
// playEncoded() takes an Ogg Opus stream (made here by opusenc from a tone) in chunks of any size;
// the carrier's µ-law must decode to that tone, its length kept. Corrupt input throws BAD_AUDIO
// and leaves the session playing PCM. A call accepted from a server whose sessions speak µ-law
// reads the caller's bytes exactly as callsim sent them.

const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Engine, TrunklineError, RESULT } = require('..');
const h = require('./helpers');

const TONE_HZ = 1000;
const SECONDS = 0.8;
const CARRIER_RATE = 8000;
const REPO = path.resolve(__dirname, '..', '..', '..');

/** An Ogg Opus file of the tone, recorded at 48 kHz mono with 20 ms frames by opusenc (Debian:
 * opus-tools; scripts/test.sh installs it). */
function oggTone(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trunkline-opus-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const pcm = Buffer.from(h.tone(48000, SECONDS, TONE_HZ, 16383).buffer);
  const header = Buffer.alloc(44);
  header.write('RIFF', 0);
  header.writeUInt32LE(36 + pcm.length, 4);
  header.write('WAVEfmt ', 8);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(48000, 24);
  header.writeUInt32LE(96000, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36);
  header.writeUInt32LE(pcm.length, 40);
  fs.writeFileSync(path.join(dir, 'tone.wav'), Buffer.concat([header, pcm]));
  execFileSync('opusenc', ['--quiet', '--bitrate', '48', '--framesize', '20', path.join(dir, 'tone.wav'), path.join(dir, 'tone.opus')]);
  return fs.readFileSync(path.join(dir, 'tone.opus'));
}

/** An inline Twilio call on the manual clock; `heard` is the decoded µ-law its carrier received. */
function carrier(t) {
  const engine = h.engineFor(t, { workers: 0, manualClock: true });
  const session = engine.session({ agentRate: 16000 });
  session.push(h.start());
  assert.ok(session.events().some((e) => e.kind === 'started'));
  const call = {
    engine,
    session,
    heard: [],
    tick() {
      for (const message of session.outbound()) {
        const m = JSON.parse(message);
        if (m.event === 'media') for (const c of Buffer.from(m.media.payload, 'base64')) call.heard.push(h.referenceUlawDecode(c));
      }
      engine.advance(20);
    },
    /** `fn()` until the play path has room (FULL: the carrier plays some first). */
    retry(fn) {
      for (let i = 0; i < 1000; i++) {
        try {
          return fn();
        } catch (e) {
          if (!(e instanceof TrunklineError) || e.codeName !== 'FULL') throw e;
        }
        call.tick();
      }
      throw new Error('the play path never had room');
    },
    feed(data, chunk) {
      for (let pos = 0; pos < data.length; ) pos += call.retry(() => session.playEncoded(data.subarray(pos, pos + chunk), { codec: 'ogg_opus' }));
    },
    playOut() {
      for (let i = 0; i < SECONDS * 50 + 60; i++) call.tick();
    },
  };
  return call;
}

/** The carrier's audio without the silence padding its frames. */
function trimmed(heard) {
  const first = heard.findIndex((s) => Math.abs(s) > 64);
  if (first < 0) return [];
  let last = heard.length - 1;
  while (Math.abs(heard[last]) <= 64) last--;
  return heard.slice(first, last + 1);
}

/** Power of `x` at `freq` Hz (Goertzel), normalised by its length. */
function goertzel(x, rate, freq) {
  const coeff = 2 * Math.cos((2 * Math.PI * freq) / rate);
  let s1 = 0;
  let s2 = 0;
  for (const v of x) {
    const s = v + coeff * s1 - s2;
    s2 = s1;
    s1 = s;
  }
  return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (x.length * x.length);
}

function assertIsTheTone(heard, seconds) {
  const audio = trimmed(heard);
  // Pre-skip dropped and the end trimmed by the granule position: the source's length, give or
  // take the codec's fade at either end.
  assert.ok(Math.abs(audio.length - CARRIER_RATE * seconds) <= 40, `${audio.length} samples`);
  const mid = audio.slice(audio.length / 4, (audio.length * 3) / 4);
  const p = goertzel(mid, CARRIER_RATE, TONE_HZ);
  for (const off of [400, 700, 1500, 2500]) assert.ok(p > 100 * goertzel(mid, CARRIER_RATE, off), `${off} Hz not 20 dB under the tone`);
  // An independent count: a 1 kHz tone crosses zero 2000 times a second.
  let crossings = 0;
  for (let i = 1; i < mid.length; i++) if (mid[i - 1] < 0 !== mid[i] < 0) crossings++;
  assert.ok(Math.abs(crossings - (2 * TONE_HZ * mid.length) / CARRIER_RATE) <= 4, `${crossings} zero crossings`);
}

test('an Ogg Opus stream in chunks of any size plays the tone', (t) => {
  const ogg = oggTone(t);
  for (const chunk of [1, 7, 100, 4096]) {
    const call = carrier(t);
    call.feed(ogg, chunk);
    call.retry(() => call.session.endEncoded());
    call.playOut();
    assert.equal(call.session.stats().encoded_audio_errors, 0);
    assertIsTheTone(call.heard, SECONDS);
  }
});

test('a corrupt stream throws BAD_AUDIO and the session still plays', (t) => {
  const ogg = oggTone(t);
  const bad = Buffer.from(ogg);
  bad[bad.length >> 1] ^= 0x40; // fails the page's CRC
  const call = carrier(t);
  assert.throws(
    () => call.feed(bad, 4096),
    (e) => e instanceof TrunklineError && e.code === RESULT.BAD_AUDIO && e.codeName === 'BAD_AUDIO' && RESULT.BAD_AUDIO === 12,
  );
  assert.equal(call.session.stats().encoded_audio_errors, 1);
  call.playOut();
  call.heard = [];
  const pcm = h.tone(CARRIER_RATE, 0.5, TONE_HZ, 16383);
  assert.equal(call.retry(() => call.session.play(pcm, CARRIER_RATE)), pcm.length);
  call.playOut();
  assertIsTheTone(call.heard, 0.5);
  // A stream cut mid-page: endEncoded says so.
  call.feed(ogg.subarray(0, ogg.length - 25), 100);
  assert.throws(() => call.retry(() => call.session.endEncoded()), (e) => e.codeName === 'BAD_AUDIO');
  assert.throws(() => call.session.playEncoded(ogg, { codec: 'mp3' }), TypeError);
  assert.throws(() => call.session.playEncoded(ogg.subarray(0, 10), { codec: 'opus', rate: 44100 }), (e) => e.codeName === 'INVALID_ARGUMENT');
});

test('an offloaded ulaw call reads the caller bytes callsim sent', async (t) => {
  const callsim = path.join(REPO, 'target', 'release', 'callsim');
  assert.ok(fs.existsSync(callsim), 'no callsim binary: cargo build --release -p trunkline-callsim (scripts/test_node.sh builds it)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trunkline-callsim-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const audio = h.speech().audio.subarray(0, 8000);
  fs.writeFileSync(path.join(dir, 'caller.ulaw'), audio);
  const engine = new Engine({ workers: 1 });
  const server = engine.serve({ session: { agentRate: 8000, agentFormat: 'ulaw' } });
  t.after(() => {
    server.close();
    engine.close();
  });
  const args = ['--url', `ws://127.0.0.1:${server.port}/`, '--audio', path.join(dir, 'caller.ulaw'), '--speech', '100-900', '--wait-ms', '100', '--digital-silence', '--json', '--quiet'];
  const proc = spawn(callsim, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  let exitCode = null;
  exited.then((c) => (exitCode = c));
  t.after(() => proc.kill());
  let call = null;
  const events = [];
  const heard = [];
  const deadline = Date.now() + 20000;
  while (exitCode === null || !events.some((e) => e.kind === 'stopped')) {
    assert.ok(Date.now() < deadline, 'the call did not end in time');
    await engine.wait(20);
    if (call === null) {
      call = server.accept();
      if (call !== null) assert.equal(call.agentFormat, 'ulaw');
    }
    if (call !== null) {
      events.push(...call.events());
      heard.push(call.readAudio());
    }
  }
  assert.equal(await exited, 0, stderr);
  call.close();
  const frames = JSON.parse(stdout).totals.frames_sent;
  const bytes = Buffer.concat(heard);
  // A µ-law byte per sample for every frame callsim sent, the caller's audio first and untouched
  // (then the digital silence it sends while it waits to hang up).
  assert.equal(bytes.length, frames * 160);
  assert.deepEqual(bytes.subarray(0, audio.length), audio);
  assert.ok(bytes.subarray(audio.length).every((b) => b === 0xff));
});
