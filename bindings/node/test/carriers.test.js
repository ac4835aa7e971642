'use strict';
// One offload server for several carriers through the Node binding: routes binding request paths
// to dialects (a Twilio and a Telnyx carrier with the `ws` package, sending each carrier's
// documented messages), and an Asterisk AudioSocket call over a raw TCP connection.

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const WebSocket = require('ws');
const { Engine, TrunklineError } = require('..');
const h = require('./helpers');

const isCode = (name) => (e) => e instanceof TrunklineError && e.codeName === name;
const TELNYX_TOKEN = 'telnyx-streaming-secret';
const TELNYX_STREAM = '32de0dea-53cb-4b21-89a4-9610f5d91a9b';
const TELNYX_CALL = 'v2:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ';
const ALLOWED = '40325ec2-5efd-4bd3-805f-53576e581d13';
const REFUSED = '00000000-1111-2222-3333-444444444444';

function threaded(t) {
  const engine = new Engine({ workers: 1 });
  t.after(() => engine.close());
  return engine;
}

/** A WebSocket to `port`/`path` with extra request `headers`: resolves once open, rejects on refusal. */
function connect(t, port, path, headers = {}) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers });
  t.after(() => ws.terminate());
  return h.within(
    new Promise((resolve, reject) => {
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    }),
    5000,
    'the WebSocket did not open',
  );
}

/** The next call out of `calls` (a server.calls() iterator), and its started event, within 5 s. */
async function nextStarted(t, engine, calls) {
  const { value: call } = await h.within(calls.next(), 5000, 'no call was accepted');
  t.after(() => call.close());
  const deadline = Date.now() + 5000;
  for (;;) {
    const started = call.events().find((e) => e.kind === 'started');
    if (started) return started;
    assert.ok(Date.now() < deadline, 'no started event');
    await engine.wait(20);
  }
}

test('routes: a Twilio and a Telnyx path on one server, each its own carrier', async (t) => {
  const engine = threaded(t);
  assert.throws(() => engine.serve({ routes: [{ path: '/a', dialect: 'twilio' }, { path: '/a', dialect: 'telnyx' }] }), isCode('INVALID_ARGUMENT'));
  assert.throws(() => engine.serve({ routes: [{ path: '/a', dialect: 'no-such-dialect' }] }), isCode('INVALID_ARGUMENT'));
  assert.throws(() => engine.serve({ routes: [{ path: '/a', dialect: 'twilio', token: 'x' }] }), TypeError);
  assert.throws(() => engine.serve({ routeCount: 1 }), TypeError);
  const server = engine.serve({
    routes: [
      { path: '/twilio', dialect: 'twilio' },
      { path: '/telnyx', dialect: 'telnyx', authToken: TELNYX_TOKEN },
    ],
  });
  await assert.rejects(connect(t, server.port, '/telnyx'), /HTTP 403/);
  await assert.rejects(connect(t, server.port, '/media'), /HTTP 404/);

  const calls = server.calls();
  t.after(() => calls.return());
  const telnyx = await connect(t, server.port, '/telnyx', { 'x-telnyx-streaming-auth-token': TELNYX_TOKEN });
  telnyx.send(JSON.stringify({ event: 'connected', version: '1.0.0' }));
  telnyx.send(
    JSON.stringify({
      event: 'start',
      sequence_number: '1',
      stream_id: TELNYX_STREAM,
      start: {
        user_id: '3e6f995f-85f7-4705-9741-53b116d28237',
        call_control_id: TELNYX_CALL,
        media_format: { encoding: 'PCMU', sample_rate: 8000, channels: 1 },
      },
    }),
  );
  const telnyxStarted = await nextStarted(t, engine, calls);
  assert.equal(telnyxStarted.callId, TELNYX_CALL);
  assert.equal(telnyxStarted.streamId, TELNYX_STREAM);

  const twilio = await connect(t, server.port, '/twilio');
  twilio.send(h.connected());
  twilio.send(h.start());
  const twilioStarted = await nextStarted(t, engine, calls);
  assert.equal(twilioStarted.callId, h.CALL_SID);
  assert.equal(twilioStarted.streamId, h.STREAM_SID);

  const stats = server.stats();
  assert.equal(stats.calls_opened, 2);
  assert.equal(stats.rejected_signature_missing, 1);
  assert.equal(stats.rejected_path, 1);
});

/** An AudioSocket connection: its UUID message (0x01, 16 bytes), then 20 ms of 8 kHz s16le audio (0x10). */
function audioSocketCall(t, port, uuid) {
  const socket = net.connect(port, '127.0.0.1');
  t.after(() => socket.destroy());
  const id = Buffer.concat([Buffer.from([0x01, 0, 16]), Buffer.from(uuid.replace(/-/g, ''), 'hex')]);
  const audio = Buffer.alloc(3 + 320);
  audio.writeUInt8(0x10, 0);
  audio.writeUInt16BE(320, 1);
  for (let i = 0; i < 160; i++) audio.writeInt16LE(i % 20 < 10 ? 4000 : -4000, 3 + 2 * i);
  socket.write(Buffer.concat([id, audio]));
  return socket;
}

test('AudioSocket: an allowed call reaches the host, another UUID is closed and counted', async (t) => {
  const engine = threaded(t);
  const server = engine.serve();
  assert.throws(() => server.listenAudioSocket('127.0.0.1:0', ['not-a-uuid']), isCode('INVALID_ARGUMENT'));
  assert.throws(() => server.allowAudioSocketCall('not-a-uuid'), isCode('INVALID_ARGUMENT'));
  const port = server.listenAudioSocket('127.0.0.1:0', [ALLOWED]);
  assert.ok(port > 0 && port !== server.port);

  const refused = audioSocketCall(t, port, REFUSED);
  await h.within(new Promise((resolve) => refused.once('close', resolve)), 5000, 'the refused connection stayed open');

  const calls = server.calls();
  t.after(() => calls.return());
  audioSocketCall(t, port, ALLOWED);
  const started = await nextStarted(t, engine, calls);
  assert.equal(started.callId, ALLOWED);
  assert.equal(started.encoding, 'l16');
  assert.equal(started.sampleRate, 8000);
  const stats = server.stats();
  assert.equal(stats.rejected_audiosocket_call, 1);
  assert.equal(stats.calls_opened, 1);
  assert.equal(server.revokeAudioSocketCall(ALLOWED), true);
  assert.equal(server.revokeAudioSocketCall(ALLOWED), false);
  server.allowAudioSocketCall(ALLOWED.toUpperCase());
  assert.equal(server.revokeAudioSocketCall(ALLOWED), true);
});
