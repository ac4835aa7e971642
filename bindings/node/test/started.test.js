'use strict';
// A session opened with the parameters of a `start` its host already read behaves as the session
// that parsed that `start` itself.

const test = require('node:test');
const assert = require('node:assert/strict');
const { TrunklineError, RESULT, PROTOCOL_ERROR } = require('..');
const h = require('./helpers');

const PARAMS = { caller: '+15550100', lang: 'en' };
// What h.start() says, as a host's own handler would have read it.
const GIVEN = {
  streamId: h.STREAM_SID,
  callId: h.CALL_SID,
  accountId: h.ACCOUNT_SID,
  encoding: 'ulaw',
  sampleRate: 8000,
  channels: 1,
  customParameters: PARAMS,
};

test('a session opened started is the session that parsed the start', (t) => {
  const engine = h.engineFor(t, { workers: 0, manualClock: true });
  const parsed = engine.session({ agentRate: 16000 });
  const given = engine.session({ agentRate: 16000, start: GIVEN });
  parsed.push(h.start());

  // The same caller audio and the same reply to both, on one manual clock.
  const { audio } = h.speech();
  const reply = Int16Array.from({ length: 4000 }, (_, i) => (((i * 37) % 2000) - 1000) * 8);
  const calls = [parsed, given];
  const heard = [[], []];
  const outs = [[], []];
  const events = [[], []];
  for (let k = 0; k < 100; k++) {
    calls.forEach((call, i) => {
      call.push(h.frame(audio, k));
      if (k === 10) {
        assert.equal(call.play(reply, 8000), 4000);
        call.mark('end');
      }
      heard[i].push(call.readAudio());
      outs[i].push(...call.outbound());
      events[i].push(...call.events());
    });
    engine.advance(20);
  }

  const first = events[1][0];
  assert.equal(first.kind, 'started');
  assert.deepEqual([first.streamId, first.callId, first.accountId], [h.STREAM_SID, h.CALL_SID, h.ACCOUNT_SID]);
  assert.deepEqual(first.customParameters, PARAMS);
  assert.deepEqual([first.encoding, first.sampleRate, first.channels], ['mulaw', 8000, 1]);
  assert.deepEqual(events[0], events[1]);

  const [a, b] = heard.map((chunks) => Buffer.concat(chunks));
  assert.ok(b.length > 16000, 'caller audio came through');
  assert.ok(a.equals(b), 'the same caller audio');
  assert.ok(outs[1].length > 0);
  assert.deepEqual(outs[0], outs[1], 'the same messages to the carrier');
  const parsedOut = outs[1].map(h.parseOutbound); // throws unless each names the stream
  assert.equal(parsedOut.filter((m) => m.event === 'media').length, 25); // the 500 ms reply
  assert.deepEqual(parsedOut.at(-1), { event: 'mark', name: 'end' });

  given.push(h.start());
  const dup = given.events();
  assert.equal(dup.length, 1);
  assert.equal(dup[0].kind, 'protocol_error');
  assert.equal(dup[0].errorCode, PROTOCOL_ERROR.DUPLICATE_START);
});

test('start defaults, and bad start parameters', (t) => {
  const engine = h.engineFor(t, { workers: 0 });
  // Only what the dialect needs: Twilio echoes the stream id; mulaw at 8 kHz mono is the default.
  const [ev] = engine.session({ start: { streamId: h.STREAM_SID } }).events();
  assert.deepEqual(
    [ev.kind, ev.streamId, ev.callId, ev.customParameters, ev.encoding, ev.sampleRate, ev.channels],
    ['started', h.STREAM_SID, '', {}, 'mulaw', 8000, 1],
  );
  assert.equal(engine.session({ start: { streamId: h.STREAM_SID, encoding: 'alaw' } }).events()[0].encoding, 'alaw');

  const invalid = (start) =>
    assert.throws(() => engine.session({ start }), (e) => e instanceof TrunklineError && e.code === RESULT.INVALID_ARGUMENT);
  invalid({ ...GIVEN, encoding: 'l16', sampleRate: 44100 });
  invalid({ ...GIVEN, callId: 'CA\0x' });
  assert.throws(() => engine.session({ start: { ...GIVEN, streamSid: h.STREAM_SID } }), { name: 'TypeError', message: /streamSid/ });
  assert.throws(() => engine.session({ start: { ...GIVEN, encoding: 'amr-wb' } }), { name: 'TypeError', message: /amr-wb/ });
  assert.throws(() => engine.session({ start: { ...GIVEN, customParameters: [['caller', 'x']] } }), TypeError);
  // The refusals left the engine as it was.
  assert.equal(engine.session({ start: GIVEN }).events()[0].kind, 'started');
});
