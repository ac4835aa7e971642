'use strict';
// Self-test of the example bot: a client plays a short call (the engine's speech fixture) into it
// over a loopback WebSocket, the way Twilio would, and checks what the bot sends back.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const WebSocket = require('ws');
const { Engine, ulawDecode } = require('trunkline');
const { startBot } = require('../bot');

const FIXTURES = path.resolve(__dirname, '..', '..', '..', 'engine', 'tests', 'fixtures');
const STREAM_SID = 'MZ00000000000000000000000000000001';
// The first 3.8 s go out at 4x real time (the engine needs no real-time pacing, only a host that
// reads the caller audio within `agentRingMs`), then real time up to 6.0 s, through the second
// utterance, so the bot's echo and the caller's interruption overlap as in a real call.
const FAST_FRAMES = 190;
const FAST_FRAME_MS = 5;
const LAST_FRAME = 300;

const send = (ws, msg) => ws.send(JSON.stringify({ ...msg, streamSid: STREAM_SID }));

test('the bot echoes the caller after they stop, and stops when they talk over it', async (t) => {
  const audio = fs.readFileSync(path.join(FIXTURES, 'speech_8k.ulaw'));
  const labels = fs
    .readFileSync(path.join(FIXTURES, 'speech_8k.labels'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split(/\s+/).map(Number));
  const [first, second] = labels; // [1000, 3421], [4421, 5435]

  const logs = [];
  const engine = new Engine({ workers: 1 });
  const bot = await startBot({ host: '127.0.0.1', port: 0, engine, log: (m) => logs.push(m) });
  const ws = new WebSocket(`ws://127.0.0.1:${bot.port}/media`);
  // Pass or fail, nothing is left running (a failed assertion must not hang the test process).
  t.after(async () => {
    ws.terminate();
    await bot.close();
    engine.close();
  });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));

  // What the bot sends, with how much caller audio (ms) we had sent when it arrived.
  let sentMs = 0;
  const received = [];
  // A carrier's playout: marks are echoed when the audio before them has played, or on clear.
  let playEnd = 0;
  const pendingMarks = [];
  let seq = 1000;
  const echo = (name) => send(ws, { event: 'mark', sequenceNumber: String(seq++), mark: { name } });
  ws.on('message', (data, isBinary) => {
    assert.equal(isBinary, false, 'Twilio messages are text frames');
    const msg = JSON.parse(data.toString());
    assert.equal(msg.streamSid, STREAM_SID);
    received.push({ msg, sentMs });
    const now = performance.now();
    if (msg.event === 'media') playEnd = Math.max(playEnd, now) + 20;
    else if (msg.event === 'mark') pendingMarks.push([Math.max(playEnd, now), msg.mark.name]);
    else if (msg.event === 'clear') {
      playEnd = now;
      for (const [, name] of pendingMarks.splice(0)) echo(name);
    }
  });
  const closed = new Promise((resolve) => ws.once('close', resolve));

  send(ws, { event: 'connected', protocol: 'Call', version: '1.0.0' });
  send(ws, {
    event: 'start',
    sequenceNumber: '1',
    start: {
      accountSid: 'AC00000000000000000000000000000001',
      streamSid: STREAM_SID,
      callSid: 'CA00000000000000000000000000000001',
      tracks: ['inbound'],
      mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
      customParameters: { test: 'bot' },
    },
  });
  const t0 = performance.now();
  for (let i = 0; i < LAST_FRAME; i++) {
    const due = t0 + Math.min(i, FAST_FRAMES) * FAST_FRAME_MS + Math.max(0, i - FAST_FRAMES) * 20;
    await new Promise((r) => setTimeout(r, Math.max(0, due - performance.now())));
    const now = performance.now();
    while (pendingMarks.length && pendingMarks[0][0] <= now) echo(pendingMarks.shift()[1]);
    const payload = audio.subarray(i * 160, (i + 1) * 160).toString('base64');
    send(ws, {
      event: 'media',
      sequenceNumber: String(i + 2),
      media: { track: 'inbound', chunk: String(i + 1), timestamp: String(i * 20), payload },
    });
    sentMs = (i + 1) * 20;
  }
  send(ws, { event: 'stop', sequenceNumber: String(LAST_FRAME + 2), stop: {} });
  await Promise.race([closed, new Promise((_, no) => setTimeout(() => no(new Error('bot did not hang up')), 5000).unref())]);
  for (const line of logs) t.diagnostic(line);

  // The echo: media frames, all after the caller stopped speaking, before the barge-in clear.
  const media = received.filter((r) => r.msg.event === 'media');
  assert.ok(media.length > 0, 'the bot sent media back');
  const clearAt = received.findIndex((r) => r.msg.event === 'clear');
  assert.ok(clearAt > 0, 'the bot stopped with a clear when the caller talked over it');
  const echoFrames = received.slice(0, clearAt).filter((r) => r.msg.event === 'media');
  assert.ok(echoFrames.length >= 10, `${echoFrames.length} echo frames before the interruption`);
  for (const { msg, sentMs: at } of echoFrames) {
    assert.ok(at > first[1], `echo frame arrived when only ${at} ms of the call were sent (speech ends ${first[1]})`);
    assert.equal(Buffer.from(msg.media.payload, 'base64').length, 160);
  }
  // It is the caller's voice: loud, not silence.
  const pcm = ulawDecode(Buffer.concat(echoFrames.map((r) => Buffer.from(r.msg.media.payload, 'base64'))));
  let energy = 0;
  for (let i = 0; i < pcm.length; i += 2) energy += pcm.readInt16LE(i) ** 2;
  const rms = Math.sqrt(energy / (pcm.length / 2));
  assert.ok(rms > 300, `echo rms ${rms.toFixed(0)}`);
  // The clear came once the caller's second utterance was under way, and the bot stayed quiet
  // while the caller was still talking.
  assert.ok(received[clearAt].sentMs > second[0], `clear at ${received[clearAt].sentMs} ms`);
  const afterClear = received.slice(clearAt + 1).filter((r) => r.msg.event === 'media' && r.sentMs < second[1]);
  assert.equal(afterClear.length, 0, 'no audio while the caller talks');
  assert.ok(logs.some((l) => /^interrupted: the caller heard \d+ ms/.test(l)), 'the bot saw the barge-in');
  assert.ok(
    logs.some((l) => l.startsWith(`call CA00000000000000000000000000000001 started (stream ${STREAM_SID}, mulaw at 8000 Hz`)),
    'the bot saw the start, by its carrier-neutral names',
  );
  assert.ok(
    logs.some((l) => /^call CA00000000000000000000000000000001 ended: .* 0 bad messages, 0 caller samples dropped$/.test(l)),
    'the bot ended the call on stop, with nothing dropped',
  );
});

test('a frame that breaks the WebSocket protocol ends that connection, not the bot', async (t) => {
  const logs = [];
  const engine = new Engine({ workers: 1 });
  const bot = await startBot({ host: '127.0.0.1', port: 0, engine, log: (m) => logs.push(m) });
  t.after(async () => {
    await bot.close();
    engine.close();
  });
  const net = require('node:net');
  const socket = net.connect(bot.port, '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write(
    'GET /media HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  await new Promise((resolve) => socket.once('data', resolve)); // 101 Switching Protocols
  // A client's frames must be masked: this one is not (a one-byte text frame, "a").
  socket.write(Buffer.from([0x81, 0x01, 0x61]));
  await new Promise((resolve) => socket.once('close', resolve));
  const health = await fetch(`http://127.0.0.1:${bot.port}/healthz`);
  assert.equal(health.status, 200, 'the bot still answers');
  assert.ok(logs.some((l) => l.startsWith('carrier socket error')), logs.join('\n'));
});

test("messages still waiting for room when the carrier hangs up reach the call before its end", async (t) => {
  const EventEmitter = require('node:events');
  const { handleCall } = require('../bot');
  const engine = new Engine({ workers: 1 });
  t.after(() => engine.close());
  // The bot's side of a carrier socket: what handleCall uses of it.
  const ws = new EventEmitter();
  Object.assign(ws, { OPEN: 1, readyState: 1, send() {}, close() {}, terminate() {} });
  const logs = [];
  const call = handleCall(ws, engine, (m) => logs.push(m));
  const audio = fs.readFileSync(path.join(FIXTURES, 'speech_8k.ulaw'));
  const json = (msg) => JSON.stringify({ ...msg, streamSid: STREAM_SID });
  ws.emit('message', Buffer.from(json({ event: 'connected', protocol: 'Call', version: '1.0.0' })), false);
  const start = {
    accountSid: 'AC00000000000000000000000000000001',
    streamSid: STREAM_SID,
    callSid: 'CA00000000000000000000000000000001',
    tracks: ['inbound'],
    mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
    customParameters: {},
  };
  ws.emit('message', Buffer.from(json({ event: 'start', sequenceNumber: '1', start })), false);
  // A burst after a network stall, 12 s of audio at once, more than the engine takes before the
  // bot reads, then the socket closes with no stop, all in one turn of the event loop.
  const FRAMES = 600;
  for (let i = 0; i < FRAMES; i++) {
    const k = i % Math.floor(audio.length / 160);
    const payload = audio.subarray(k * 160, (k + 1) * 160).toString('base64');
    const media = { track: 'inbound', chunk: String(i + 1), timestamp: String(i * 20), payload };
    ws.emit('message', Buffer.from(json({ event: 'media', sequenceNumber: String(i + 2), media })), false);
  }
  ws.emit('close');
  await Promise.race([call, new Promise((_, no) => setTimeout(() => no(new Error('the call did not end')), 15000).unref())]);
  const summary = logs.find((l) => l.includes('caller frames in'));
  assert.ok(summary, logs.join('\n'));
  assert.match(summary, new RegExp(`: ${FRAMES} caller frames in, .* 0 bad messages`));
});
