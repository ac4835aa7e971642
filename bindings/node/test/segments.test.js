'use strict';
// Segments through the Node binding: the played position per host-named segment, checked against
// a simulated carrier on the manual clock. The carrier plays what it receives in real time after a
// jitter delay, echoes marks (the engine's hidden sync marks) once the audio before them has
// played, and drops its buffer on `clear`. Segments A, B and C have levels of their own, so the
// carrier knows from the samples at its playhead which segment is heard and how much of it.

const test = require('node:test');
const assert = require('node:assert/strict');
const { TrunklineError, RESULT } = require('..');
const h = require('./helpers');

const TICK_MS = 5;
const JITTER_US = 60_000;
const LEVELS = { A: 1000, B: 3000, C: 6000 };
const LENGTHS_MS = { A: 500, B: 300, C: 400 };
const US_PER_SAMPLE = 125; // 8 kHz

class Carrier {
  constructor() {
    this.playEndUs = 0;
    this.frames = []; // { begin: play start µs, samples: decoded }
    this.marks = []; // { at: due µs, name }
    this.seq = 1000;
  }

  receive(message, nowUs) {
    const m = JSON.parse(message);
    if (m.event === 'media') {
      const samples = [...Buffer.from(m.media.payload, 'base64')].map(h.referenceUlawDecode);
      const begin = Math.max(this.playEndUs, nowUs + JITTER_US);
      this.frames.push({ begin, samples });
      this.playEndUs = begin + samples.length * US_PER_SAMPLE;
    } else if (m.event === 'mark') {
      this.marks.push({ at: Math.max(this.playEndUs, nowUs), name: m.mark.name });
    } else if (m.event === 'clear') {
      for (const f of this.frames) f.samples = f.samples.slice(0, Math.max(0, Math.floor((nowUs - f.begin) / US_PER_SAMPLE)));
      this.playEndUs = nowUs;
      for (const mark of this.marks) mark.at = nowUs;
    }
  }

  dueEchoes(nowUs) {
    const due = this.marks.filter((m) => m.at <= nowUs).map((m) => m.name);
    this.marks = this.marks.filter((m) => m.at > nowUs);
    return due;
  }

  /** Ms of audio heard by `nowUs`: the samples played. */
  heardMs(nowUs) {
    let n = 0;
    for (const { begin, samples } of this.frames) n += Math.min(samples.length, Math.max(0, Math.floor((nowUs - begin) / US_PER_SAMPLE)));
    return n / 8;
  }

  /** The segment heard last by `nowUs` and the ms of it heard, from the samples played. */
  truth(nowUs) {
    const heard = [];
    for (const { begin, samples } of this.frames) {
      const n = Math.min(samples.length, Math.max(0, Math.floor((nowUs - begin) / US_PER_SAMPLE)));
      for (const v of samples.slice(0, n)) {
        const seg = Object.keys(LEVELS).find((tag) => Math.abs(v - LEVELS[tag]) < LEVELS[tag] / 8);
        if (seg) heard.push(seg);
      }
    }
    if (!heard.length) return [null, 0];
    const last = heard[heard.length - 1];
    return [last, Math.floor(heard.filter((s) => s === last).length / 8)];
  }
}

class Call {
  constructor(t) {
    this.engine = h.engineFor(t, { workers: 0, manualClock: true });
    this.session = this.engine.session({ agentRate: 8000 });
    this.carrier = new Carrier();
    this.nowUs = 0;
    this.session.push(h.start());
    this.session.events();
  }

  exchange() {
    for (const message of this.session.outbound()) this.carrier.receive(message, this.nowUs);
    for (const name of this.carrier.dueEchoes(this.nowUs)) this.session.push(h.markEcho(++this.carrier.seq, name));
    this.session.readAudio();
    return this.session.events();
  }

  tick() {
    this.engine.advance(TICK_MS);
    this.nowUs += TICK_MS * 1000;
    return this.exchange();
  }

  playAbc() {
    for (const [tag, level] of Object.entries(LEVELS)) {
      this.session.beginSegment(tag);
      const n = LENGTHS_MS[tag] * 8;
      assert.equal(this.session.play(new Int16Array(n).fill(level), 8000), n);
    }
  }

  interrupt() {
    this.session.interrupt();
    const evs = this.exchange().filter((e) => e.kind === 'interrupted');
    assert.equal(evs.length, 1);
    return evs[0];
  }
}

test('an interrupt mid-segment reports the segment, its played time and the unheard rest', (t) => {
  const call = new Call(t);
  call.playAbc();
  assert.equal(call.session.queuedMs, 1200);
  let ms;
  const queued = [];
  for (;;) {
    let seg;
    [seg, ms] = call.carrier.truth(call.nowUs);
    if (seg === 'B' && ms >= 120) break;
    assert.ok(call.nowUs < 2_000_000, 'B never got 120 ms heard');
    call.tick();
    queued.push([call.session.queuedMs, 1200 - call.carrier.heardMs(call.nowUs)]);
  }
  // queuedMs follows the audio the carrier has yet to play: by the engine's model, it is ahead by
  // up to the carrier's jitter (plus a tick) until the carrier's echoes correct it, then exact to a
  // tick. And it shrinks: A and part of B have been heard.
  for (const [reported, unheard] of queued) {
    assert.ok(Math.abs(reported - unheard) <= JITTER_US / 1000 + TICK_MS, `queuedMs ${reported}, carrier has ${unheard} ms left`);
  }
  const [lastReported, lastUnheard] = queued[queued.length - 1];
  assert.ok(Math.abs(lastReported - lastUnheard) <= TICK_MS, `queuedMs ${lastReported}, carrier has ${lastUnheard} ms left`);
  assert.ok(lastReported < 1200 - LENGTHS_MS.A, `queuedMs ${lastReported} once A was heard`);
  const ev = call.interrupt();
  assert.equal(ev.segment, 'B');
  assert.ok(Math.abs(ev.segmentPlayedMs - ms) <= 20, `reported ${ev.segmentPlayedMs} ms, heard ${ms} ms`);
  assert.ok(ev.segmentPlayedMs <= LENGTHS_MS.B);
  assert.deepEqual(ev.unheardSegments, ['C']);
  assert.equal(call.session.queuedMs, 0);
});

test('nothing heard yet is null, not 0', (t) => {
  const call = new Call(t);
  call.playAbc();
  call.exchange();
  assert.deepEqual(call.carrier.truth(call.nowUs), [null, 0]);
  let ev = call.interrupt();
  assert.deepEqual([ev.segment, ev.segmentPlayedMs, ev.unheardSegments], ['A', null, ['B', 'C']]);
  // Every segment ended with it: the next interrupt names none.
  ev = call.interrupt();
  assert.deepEqual([ev.segment, ev.segmentPlayedMs, ev.unheardSegments], [null, null, []]);
});

test('events other than barge_in and interrupted carry no segment', (t) => {
  const call = new Call(t);
  call.playAbc();
  call.session.mark('after-c');
  let played = [];
  while (!played.length) {
    assert.ok(call.nowUs < 3_000_000, 'the mark was never played');
    played = call.tick().filter((e) => e.kind === 'mark_played');
  }
  assert.deepEqual([played[0].segment, played[0].segmentPlayedMs, played[0].unheardSegments], [null, null, []]);
});

test('bad tags and a full table are refused', (t) => {
  const call = new Call(t);
  const code = (name) => (e) => e instanceof TrunklineError && e.code === RESULT[name];
  for (const bad of ['', 'x'.repeat(64), 'é'.repeat(32), 'a\0b']) {
    assert.throws(() => call.session.beginSegment(bad), code('INVALID_ARGUMENT'), JSON.stringify(bad));
  }
  assert.throws(() => call.session.beginSegment(7), TypeError);
  call.session.beginSegment('x'.repeat(63)); // the longest tag
  for (let i = 1; i < 32; i++) call.session.beginSegment(`s${i}`);
  assert.throws(() => call.session.beginSegment('one-too-many'), code('FULL'));
});
