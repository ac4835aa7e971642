'use strict';
// An agent speaking 8 kHz G.711 through the Node binding: `agentFormat: 'ulaw'` makes readAudio()
// return the carrier's µ-law bytes exactly as sent and play() take µ-law bytes that reach the
// carrier exactly as played (every code, 0x7F included, which a decode and encode would turn into
// 0xFF).

const test = require('node:test');
const assert = require('node:assert/strict');
const { TrunklineError } = require('..');
const h = require('./helpers');

const FRAME = 160;
const allCodes = (n) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 97 + Math.floor(i / 256)) & 0xff));

test('a ulaw agent reads and plays the carrier bytes untouched', (t) => {
  const engine = h.engineFor(t, { workers: 0, manualClock: true });
  const session = engine.session({ agentRate: 8000, agentFormat: 'ulaw' });
  assert.equal(session.agentFormat, 'ulaw');
  session.push(h.start());
  const caller = allCodes(8 * FRAME);
  for (let i = 0; i < 8; i++) session.push(h.media(i + 2, i + 1, i * 20, caller.subarray(i * FRAME, (i + 1) * FRAME)));
  assert.deepEqual(session.readAudio(), caller);

  const agent = Buffer.from(Array.from({ length: 10 * FRAME }, (_, i) => (0x7f + i * 31) & 0xff));
  assert.equal(session.play(agent, 8000), agent.length);
  const sent = [];
  for (let step = 0; step < 20; step++) {
    for (const message of session.outbound()) {
      const m = JSON.parse(message);
      if (m.event === 'media') sent.push(Buffer.from(m.media.payload, 'base64'));
    }
    engine.advance(20);
  }
  assert.deepEqual(Buffer.concat(sent), agent);
  assert.throws(() => session.play(agent, 16000), TrunklineError);
  session.close();
});

test('a G.711 agent needs 8 kHz and a known format', (t) => {
  const engine = h.engineFor(t, { workers: 0, manualClock: true });
  assert.throws(() => engine.session({ agentRate: 16000, agentFormat: 'ulaw' }), TrunklineError);
  assert.throws(() => engine.session({ agentRate: 8000, agentFormat: 'opus' }), TypeError);
  const pcm = engine.session({ agentRate: 8000 });
  assert.equal(pcm.agentFormat, 'pcm');
  pcm.push(h.start());
  const caller = allCodes(2 * FRAME);
  for (let i = 0; i < 2; i++) pcm.push(h.media(i + 2, i + 1, i * 20, caller.subarray(i * FRAME, (i + 1) * FRAME)));
  const got = pcm.readAudio();
  const expected = Buffer.alloc(2 * caller.length);
  caller.forEach((c, i) => expected.writeInt16LE(h.referenceUlawDecode(c), 2 * i));
  assert.deepEqual(got, expected);
  pcm.close();
});
