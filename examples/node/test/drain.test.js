'use strict';
// SIGTERM drains the example bot, run as its own process: from the signal on /readyz answers 503
// and a new call is refused, the live call goes on in real time to its own end with nothing of it
// lost, and the process exits 0.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const WebSocket = require('ws');

const BOT = path.resolve(__dirname, '..', 'bot.js');
const FIXTURES = path.resolve(__dirname, '..', '..', '..', 'engine', 'tests', 'fixtures');
const STREAM_SID = 'MZ00000000000000000000000000000002';
const CALL_SID = 'CA00000000000000000000000000000002';
const FRAMES = 100; // 2 s of caller audio, at 20 ms
const SIGTERM_AT = 25; // frames sent when the signal comes

const send = (ws, msg) => ws.send(JSON.stringify({ ...msg, streamSid: STREAM_SID }));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function httpStatus(port, urlPath) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: urlPath }, (res) => {
      res.resume();
      resolve(res.statusCode);
    }).on('error', reject);
  });
}

/** The status of a WebSocket upgrade that is refused (rejects if it is accepted). */
function refusedUpgrade(port) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/media`);
    ws.on('error', () => {});
    ws.once('unexpected-response', (_, res) => resolve(res.statusCode));
    ws.once('open', () => {
      ws.terminate();
      reject(new Error('a call was taken while draining'));
    });
  });
}

test('SIGTERM: not ready at once, new calls refused, the live call finishes, exit 0', async (t) => {
  const audio = fs.readFileSync(path.join(FIXTURES, 'speech_8k.ulaw'));
  const bot = spawn(process.execPath, [BOT, '--port', '0'], { env: { ...process.env, TRUNKLINE_DRAIN_GRACE_S: '20' } });
  t.after(() => bot.kill('SIGKILL'));
  let output = '';
  const exited = new Promise((resolve) => bot.once('exit', (code) => resolve(code)));
  const port = await new Promise((resolve, reject) => {
    bot.stdout.on('data', (chunk) => {
      output += chunk;
      const m = /listening on ws:\/\/[\d.]+:(\d+)\/media/.exec(output);
      if (m) resolve(Number(m[1]));
    });
    bot.stderr.on('data', (chunk) => (output += chunk));
    bot.once('exit', () => reject(new Error(`the bot exited:\n${output}`)));
  });
  assert.equal(await httpStatus(port, '/readyz'), 200);

  const ws = new WebSocket(`ws://127.0.0.1:${port}/media`);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
  send(ws, { event: 'connected', protocol: 'Call', version: '1.0.0' });
  send(ws, {
    event: 'start',
    sequenceNumber: '1',
    start: {
      accountSid: 'AC00000000000000000000000000000002',
      streamSid: STREAM_SID,
      callSid: CALL_SID,
      tracks: ['inbound'],
      mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
      customParameters: {},
    },
  });
  const t0 = performance.now();
  for (let i = 0; i < FRAMES; i++) {
    const payload = audio.subarray(i * 160, (i + 1) * 160).toString('base64');
    send(ws, { event: 'media', sequenceNumber: String(i + 2), media: { track: 'inbound', chunk: String(i + 1), timestamp: String(i * 20), payload } });
    if (i + 1 === SIGTERM_AT) {
      bot.kill('SIGTERM');
      // Not ready from the signal on (once the bot's loop has run its handler), no new calls.
      const deadline = performance.now() + 2000;
      let status;
      while ((status = await httpStatus(port, '/readyz')) === 200 && performance.now() < deadline) await sleep(5);
      assert.equal(status, 503);
      assert.equal(await refusedUpgrade(port), 503);
      assert.equal(await httpStatus(port, '/healthz'), 200);
    }
    await sleep(Math.max(0, t0 + (i + 1) * 20 - performance.now()));
  }
  send(ws, { event: 'stop', sequenceNumber: String(FRAMES + 2), stop: { accountSid: 'AC0', callSid: CALL_SID } });
  // The bot ends the call itself once the stream stopped, then exits.
  assert.equal(await closed, 1000);
  assert.equal(await exited, 0, output);
  assert.match(output, /draining: 1 live call\(s\)/);
  assert.match(output, /drained: every call ended/);
  const ended = new RegExp(`call ${CALL_SID} ended: (\\d+) caller frames in, .* (\\d+) caller samples dropped`).exec(output);
  assert.ok(ended, output);
  assert.deepEqual([Number(ended[1]), Number(ended[2])], [FRAMES, 0]);
});
