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
