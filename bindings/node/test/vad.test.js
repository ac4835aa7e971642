'use strict';
// Vad: the session's speech detector on its own, frame by frame.

const test = require('node:test');
const assert = require('node:assert/strict');
const { Vad, VAD_RATES, TrunklineError, RESULT, ulawDecode } = require('..');
const { speech } = require('./helpers');

// The defaults' minimum speech and hangover (docs/settings.md), ms.
const MIN_SPEECH_MS = 120;
const HANGOVER_MS = 400;

/** Every change of `speaking` as [ms at the end of the frame, speaking], and every probability. */
function speakingChanges(vad, pcm) {
  const n = vad.frameSamples;
  const changes = [];
  const probabilities = new Set();
  let was = false;
  for (let i = 0; i + n <= pcm.length; i += n) {
    probabilities.add(vad.process(pcm.subarray(i, i + n)));
    if (vad.speaking !== was) {
      was = vad.speaking;
      changes.push([((i + n) * 1000) / vad.sampleRate, was]);
    }
  }
  return { changes, probabilities };
}

function fixturePcm() {
  const { audio, labels } = speech();
  const bytes = ulawDecode(audio);
  return { pcm: new Int16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2), labels };
}

/** A 150 Hz pulse train of decaying harmonics (a crude vowel), `frames` × 20 ms at `rate`. */
function pulseTrain(rate, frames) {
  const period = rate / 150;
  return Int16Array.from({ length: (frames * rate) / 50 }, (_, i) => {
    const phase = (i % period) / period;
    return Math.trunc(6000 * Math.exp(-6 * phase) * Math.cos(10 * Math.PI * phase));
  });
}

test('speaking follows the labelled utterances of the speech fixture', () => {
  const { pcm, labels } = fixturePcm();
  const vad = new Vad({ sampleRate: 8000 });
  const { changes, probabilities } = speakingChanges(vad, pcm);
  vad.close();
  assert.deepEqual([...probabilities].sort(), [0, 1]);
  // On inside each utterance, at most the minimum speech + 200 ms after its start; off once the
  // hangover has passed after its end (± 200 ms); no other change.
  assert.equal(changes.length, 2 * labels.length, JSON.stringify(changes));
  labels.forEach(([start, end], k) => {
    const [onAt, on] = changes[2 * k];
    const [offAt, off] = changes[2 * k + 1];
    assert.ok(on && onAt > start && onAt <= start + MIN_SPEECH_MS + 200, `on at ${onAt}, utterance ${start}`);
    assert.ok(!off && Math.abs(offAt - (end + HANGOVER_MS)) <= 200, `off at ${offAt}, utterance end ${end}`);
  });
});

test('the options are the session VAD options', () => {
  const { pcm, labels } = fixturePcm();
  // A hangover longer than every pause between utterances (at most 1 s) joins them into one
  // (2 s of silence appended, so that it can end).
  const padded = new Int16Array(pcm.length + 16000);
  padded.set(pcm);
  const long = new Vad({ vadHangoverMs: 1500 });
  const { changes } = speakingChanges(long, padded);
  long.close();
  assert.deepEqual(changes.map((c) => c[1]), [true, false]);
  assert.ok(Math.abs(changes[1][0] - (labels[labels.length - 1][1] + 1500)) <= 200);
  const strict = new Vad({ vadMinSpeechMs: 5000, vadAggressiveness: 3 });
  assert.deepEqual(speakingChanges(strict, pcm).changes, []);
  strict.close();
});

test('silence is 0 at every rate; a voiced signal turns speaking on after the minimum', () => {
  for (const sampleRate of VAD_RATES) {
    const vad = new Vad({ sampleRate });
    assert.equal(vad.frameSamples, sampleRate / 50);
    const silence = new Int16Array(vad.frameSamples);
    for (let i = 0; i < 20; i++) {
      assert.equal(vad.process(silence), 0);
      assert.equal(vad.speaking, false);
    }
    const voiced = pulseTrain(sampleRate, 30);
    const states = [];
    for (let k = 0; k < 30; k++) {
      const frame = voiced.subarray(k * vad.frameSamples, (k + 1) * vad.frameSamples);
      // Int16Array and s16le Buffer alike.
      vad.process(k % 2 ? frame : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength));
      states.push(vad.speaking);
    }
    const on = states.indexOf(true);
    assert.ok(on >= MIN_SPEECH_MS / 20 - 1 && on <= MIN_SPEECH_MS / 20 + 3, `${sampleRate} Hz: on at frame ${on}`);
    vad.reset();
    assert.equal(vad.speaking, false);
    assert.equal(vad.process(silence), 0);
    vad.close();
  }
});

test('bad input throws', () => {
  const invalid = (fn) =>
    assert.throws(fn, (e) => e instanceof TrunklineError && e.code === RESULT.INVALID_ARGUMENT);
  invalid(() => new Vad({ sampleRate: 44100 }));
  invalid(() => new Vad({ vadAggressiveness: 4 }));
  invalid(() => new Vad({ vadMinSpeechMs: 5001 }));
  invalid(() => new Vad({ vadHangoverMs: 10001 }));
  invalid(() => new Vad({ vadHangoverMs: -1 }));
  assert.throws(() => new Vad({ hangoverMs: 3 }), TypeError);
  const vad = new Vad({ sampleRate: 16000 });
  for (const n of [0, 1, 160, 319, 321, 640]) invalid(() => vad.process(new Int16Array(n)));
  assert.throws(() => vad.process(Buffer.alloc(639)), RangeError);
  assert.throws(() => vad.process([0, 0]), TypeError);
  assert.equal(vad.process(new Int16Array(320)), 0);
  vad.close();
  vad.close();
  assert.throws(() => vad.process(new Int16Array(320)), (e) => e instanceof TrunklineError && e.code === RESULT.CLOSED);
});
