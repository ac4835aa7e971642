'use strict';
// Sessions on other carriers' dialects, chosen by name: a JSON text carrier (Telnyx), a binary
// framed one (Vonage) and a TCP byte stream pushed in arbitrary chunks (Asterisk AudioSocket).
// The messages are written here from the carriers' documented shapes; caller audio is checked
// against an independent decoding, agent audio as the carrier reads it back, on a manual clock
// so that the frames due at each step are exact.

const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./helpers');

const SYNC_PREFIX = 'trunkline-sync-';

/** s16le bytes of `samples`. */
function pcm(samples) {
  const out = Buffer.alloc(samples.length * 2);
  samples.forEach((s, i) => out.writeInt16LE(s, i * 2));
  return out;
}

/** A sawtooth of `n` samples: every value differs from its neighbours, none is silence. */
function ramp(n, step = 37) {
  return Array.from({ length: n }, (_, i) => ((i * step) % 20000) - 10000);
}

/** A manual-clock inline engine and a session on it speaking `dialect`. */
function open(t, dialect, agentRate) {
  const engine = h.engineFor(t, { workers: 0, manualClock: true });
  return { engine, session: engine.session({ agentRate, playRate: agentRate, dialect }) };
}

/** Events of kind `kind`. */
const ofKind = (events, kind) => events.filter((e) => e.kind === kind);

test('telnyx: JSON text frames, µ-law caller audio, start, DTMF, media and mark out, stop', (t) => {
  const { engine, session } = open(t, 'telnyx', 8000);
  const codes = Buffer.from(Array.from({ length: 160 }, (_, i) => (i * 7) % 256));
  session.push(JSON.stringify({ event: 'connected', version: '1.0.0' }));
  session.push(
    JSON.stringify({
      event: 'start',
      sequence_number: '1',
      stream_id: 'stream-1',
      start: {
        call_control_id: 'v3:call-1',
        custom_parameters: { customer_id: 'c-42' },
        media_format: { encoding: 'PCMU', sample_rate: 8000, channels: 1 },
      },
    }),
  );
  session.push(
    JSON.stringify({
      event: 'media',
      sequence_number: '2',
      stream_id: 'stream-1',
      media: { track: 'inbound', chunk: '1', timestamp: '0', payload: codes.toString('base64') },
    }),
  );
  assert.deepEqual(session.readAudio(), pcm([...codes].map(h.referenceUlawDecode)));
  session.push(JSON.stringify({ event: 'dtmf', sequence_number: '3', stream_id: 'stream-1', dtmf: { digit: '7' } }));
  let events = session.events();
  assert.deepEqual(events.map((e) => e.kind), ['connected', 'started', 'dtmf']);
  const [, started, dtmf] = events;
  assert.equal(started.callId, 'v3:call-1');
  assert.equal(started.streamId, 'stream-1');
  assert.deepEqual(started.customParameters, { customer_id: 'c-42' });
  assert.deepEqual([started.encoding, started.sampleRate, started.channels], ['mulaw', 8000, 1]);
  assert.equal(dtmf.digit, '7');

  // 200 ms of agent audio and a mark: the 100 ms lead goes out at once, then a frame per 20 ms.
  const reply = ramp(1600, 211);
  assert.equal(session.play(Int16Array.from(reply), 8000), 1600);
  session.mark('reply');
  const media = [];
  const marks = [];
  const take = () => {
    let frames = 0;
    for (const m of session.outbound()) {
      assert.equal(typeof m, 'string', 'Telnyx takes text frames');
      const v = JSON.parse(m);
      if (v.event === 'media') {
        assert.deepEqual(Object.keys(v), ['event', 'media']);
        assert.deepEqual(Object.keys(v.media), ['payload']);
        media.push(Buffer.from(v.media.payload, 'base64'));
        frames++;
      } else {
        assert.equal(v.event, 'mark', m);
        if (!v.mark.name.startsWith(SYNC_PREFIX)) marks.push(v.mark.name);
      }
    }
    return frames;
  };
  assert.equal(take(), 5, 'the lead at t = 0');
  for (let step = 1; step <= 5; step++) {
    engine.advance(20);
    assert.equal(take(), 1, `step ${step}`);
  }
  assert.deepEqual(marks, ['reply']);
  assert.ok(media.every((p) => p.length === 160), 'every frame is 20 ms of 8 kHz µ-law');
  // µ-law keeps about 4 significant bits: each sample within its quantisation step.
  const heard = [...Buffer.concat(media)].map(h.referenceUlawDecode);
  assert.equal(heard.length, reply.length);
  heard.forEach((s, i) => assert.ok(Math.abs(s - reply[i]) <= Math.abs(reply[i]) / 16 + 16, `sample ${i}: ${s} vs ${reply[i]}`));

  session.push(JSON.stringify({ event: 'mark', sequence_number: '4', stream_id: 'stream-1', mark: { name: 'reply' } }));
  session.push(JSON.stringify({ event: 'stop', sequence_number: '5', stream_id: 'stream-1', stop: {} }));
  events = session.events();
  assert.deepEqual(events.map((e) => e.kind), ['mark_played', 'stopped']);
  assert.deepEqual([events[0].name, events[0].playedMs], ['reply', 200]);
  assert.equal(session.stats().protocol_errors, 0);
});

test('vonage: binary audio frames in and out (exactly 640 bytes), JSON control, DTMF, notify marks', (t) => {
  const { engine, session } = open(t, 'vonage', 16000);
  const uuid = 'aaaaaaaa-bbbb-cccc-dddd-0123456789ab';
  session.push(
    JSON.stringify({ event: 'websocket:connected', 'content-type': 'audio/l16;rate=16000', uuid, lang: 'en' }),
  );
  const audio = ramp(320 * 5);
  for (let i = 0; i < 5; i++) session.push(pcm(audio.slice(i * 320, (i + 1) * 320))); // a Buffer: a binary frame
  assert.deepEqual(session.readAudio(), pcm(audio));
  session.push(JSON.stringify({ event: 'websocket:dtmf', digit: '5', duration: 260 }));
  let events = session.events();
  assert.deepEqual(events.map((e) => e.kind), ['started', 'dtmf']);
  const [started, dtmf] = events;
  assert.deepEqual([started.encoding, started.sampleRate, started.channels], ['l16', 16000, 1]);
  assert.equal(started.callId, uuid);
  assert.deepEqual(started.customParameters, { uuid, lang: 'en' });
  assert.equal(dtmf.digit, '5');
  assert.equal(dtmf.durationMs, 260, 'Vonage says how long the key was held');

  const reply = ramp(3200, 113); // 200 ms
  assert.equal(session.play(Int16Array.from(reply), 16000), 3200);
  session.mark('reply');
  const frames = [];
  const marks = [];
  const take = () => {
    let n = 0;
    for (const m of session.outbound()) {
      if (typeof m === 'string') {
        const v = JSON.parse(m);
        assert.equal(v.action, 'notify', m);
        if (!v.payload.mark.startsWith(SYNC_PREFIX)) marks.push(v.payload.mark);
      } else {
        assert.equal(m.length, 640, 'a binary frame of exactly 20 ms at 16 kHz');
        frames.push(m);
        n++;
      }
    }
    return n;
  };
  assert.equal(take(), 5, 'the lead at t = 0');
  for (let step = 1; step <= 5; step++) {
    engine.advance(20);
    assert.equal(take(), 1, `step ${step}`);
  }
  assert.deepEqual(Buffer.concat(frames), pcm(reply), 'the agent audio, untouched');
  assert.deepEqual(marks, ['reply']);
  session.push(JSON.stringify({ event: 'websocket:notify', payload: { mark: 'reply' } }));
  events = session.events();
  assert.deepEqual(events.map((e) => [e.kind, e.name, e.playedMs]), [['mark_played', 'reply', 200]]);
  assert.equal(session.stats().protocol_errors, 0);
  // Vonage sends no stop: the socket closing ends the stream.
  session.endStream();
  assert.deepEqual(session.events().map((e) => e.kind), ['stopped']);
  session.endStream(); // harmless once ended
  assert.deepEqual(session.events(), []);
});

test('audiosocket: a TCP stream in 7-byte chunks in, 0x10 messages out, DTMF, hang-up', (t) => {
  const { engine, session } = open(t, 'audiosocket', 8000);
  const tlv = (kind, value) => {
    const head = Buffer.alloc(3);
    head.writeUInt8(kind, 0);
    head.writeUInt16BE(value.length, 1);
    return Buffer.concat([head, value]);
  };
  const pushCut = (stream) => {
    let audio = Buffer.alloc(0);
    for (let at = 0; at < stream.length; at += 7) {
      session.push(stream.subarray(at, at + 7)); // through headers and values alike
      audio = Buffer.concat([audio, session.readAudio()]);
    }
    return audio;
  };
  const audio = ramp(160 * 10, 53);
  const parts = [tlv(0x01, Buffer.from(Array.from({ length: 16 }, (_, i) => i)))]; // the call's UUID
  for (let i = 0; i < 10; i++) parts.push(tlv(0x10, pcm(audio.slice(i * 160, (i + 1) * 160)))); // 20 ms of slin
  parts.push(tlv(0x03, Buffer.from('4')));
  assert.deepEqual(pushCut(Buffer.concat(parts)), pcm(audio));
  let events = session.events();
  assert.deepEqual(events.map((e) => e.kind), ['connected', 'started', 'dtmf']);
  const uuid = '00010203-0405-0607-0809-0a0b0c0d0e0f';
  assert.deepEqual([events[1].callId, events[1].streamId], [uuid, uuid]);
  assert.deepEqual([events[1].encoding, events[1].sampleRate, events[1].channels], ['l16', 8000, 1]);
  assert.equal(events[2].digit, '4');

  // Asterisk plays what it gets at once: the engine keeps it 40 ms ahead, no more.
  const reply = ramp(1600, 97); // 200 ms
  assert.equal(session.play(Int16Array.from(reply), 8000), 1600);
  session.mark('reply');
  const payloads = [];
  const take = () => {
    const out = session.outbound();
    for (const m of out) {
      assert.ok(Buffer.isBuffer(m), 'AudioSocket messages are binary');
      assert.equal(m.length, 323, 'a 0x10 message of 20 ms');
      assert.deepEqual([m[0], m.readUInt16BE(1)], [0x10, 320]);
      payloads.push(m.subarray(3));
    }
    return out.length;
  };
  assert.equal(take(), 2, 'two frames ahead at t = 0');
  for (let step = 1; step <= 8; step++) {
    engine.advance(20);
    assert.equal(take(), 1, `step ${step}`);
  }
  assert.deepEqual(Buffer.concat(payloads), pcm(reply));
  // No confirmation from Asterisk: the engine's clock says when the mark's audio has played.
  assert.deepEqual(session.events(), []);
  engine.advance(40);
  events = session.events();
  assert.deepEqual(events.map((e) => [e.kind, e.name, e.playedMs]), [['mark_played', 'reply', 200]]);

  assert.equal(pushCut(tlv(0x00, Buffer.alloc(0))).length, 0); // hang-up
  events = session.events();
  assert.deepEqual(events.map((e) => e.kind), ['stopped']);
  assert.equal(session.stats().protocol_errors, 0);
});
