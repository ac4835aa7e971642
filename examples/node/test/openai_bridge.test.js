'use strict';
// The OpenAI Realtime bridge example (openai_realtime_bridge.js), end to end: the bridge runs as
// its own process, callsim calls it as Twilio, and a fake Realtime server stands in for the model.
//
// The fake speaks the Realtime events the bridge uses: it takes session.update and
// input_audio_buffer.append (keeping the audio), runs a simple energy VAD over that audio (sending
// input_audio_buffer.speech_started / speech_stopped), answers each end of turn with a known reply
// streamed faster than real time as audio deltas with an item id, and records response.cancel and
// conversation.item.truncate. After a cancel it still sends two deltas of the cut item, as deltas
// already in flight would arrive: the bridge must not play them.
//
// The caller asks a question, then talks over the first reply and over the second one. Both
// interruptions must truncate their own item at what callsim (the carrier) says the caller heard;
// the third reply must play whole. Once in the default µ-law pass-through with Trunkline deciding
// the barge-in, where the caller's bytes must reach the model unchanged; once with --pcm (24 kHz)
// and the server's VAD deciding (and the beta name of the audio delta). Then SIGTERM drains the
// bridge. A short call from a raw Twilio carrier checks the other direction: the model's µ-law
// bytes reach the carrier unchanged.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { WebSocket, WebSocketServer } = require('ws');

const REPO = path.resolve(__dirname, '..', '..', '..');
const BRIDGE = path.resolve(__dirname, '..', 'openai_realtime_bridge.js');
const FIXTURES = path.join(REPO, 'engine', 'tests', 'fixtures');
const CALLSIM = path.join(REPO, 'target', 'release', 'callsim');

const RATE = 24000; // PCM's, with --pcm
const ULAW_RATE = 8000;
// The caller's script (stream ms): the fixture's first utterance as the question, then two of its
// later utterances placed to land about 1.3 s into the first and the second reply.
const UTTERANCES = [
  [1000, [1000, 3421]],
  [5300, [4421, 5435]],
  [8300, [8634, 9816]],
];
const CALLER_MS = 10400;
const REPLIES_MS = [6000, 6000, 800];
const CHUNK_MS = 100; // one audio delta
const STREAM_SPEEDUP = 2; // the fake sends its replies this much faster than real time
const STALE_DELTAS = 2; // deltas of a cut item the fake sends after the cancel
const TOLERANCE_MS = 40;
const API_KEY = 'test-key';
// The caller's file fills the gaps between utterances with µ-law's other zero (0x7F): a decode and
// encode on the way would turn it into 0xFF, so only a pass-through delivers it as sent.
const NEGATIVE_ZERO = 0x7f;

/** G.711 µ-law decoding, for the fake's VAD. */
function ulawToLinear(code) {
  const c = ~code & 0xff;
  const magnitude = (((c & 0x0f) << 3) + 0x84) << ((c & 0x70) >> 4);
  return c & 0x80 ? 0x84 - magnitude : magnitude - 0x84;
}
const ULAW_TO_LINEAR = Int16Array.from({ length: 256 }, (_, c) => ulawToLinear(c));

/** G.711 µ-law encoding, for the fake's replies. */
function linearToUlaw(sample) {
  const sign = sample < 0 ? 0x80 : 0;
  const magnitude = Math.min(Math.abs(sample), 32635) + 0x84;
  const exponent = Math.max(31 - Math.clz32(magnitude) - 7, 0);
  return ~(sign | (exponent << 4) | ((magnitude >> (exponent + 3)) & 0x0f)) & 0xff;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// callsim (release): the test command builds it before this stage (scripts/test_python.sh); built
// here only when missing, as a build can take longer than a test file is given.
if (!fs.existsSync(CALLSIM)) {
  const built = spawnSync('cargo', ['build', '--release', '-q', '-p', 'trunkline-callsim'], {
    cwd: REPO,
    stdio: 'inherit',
    timeout: 1800_000,
  });
  assert.equal(built.status, 0, 'no callsim binary: cargo build --release -p trunkline-callsim');
}

/** The caller's audio (8 kHz µ-law, digital silence between the utterances), with its labels
 * beside it, where callsim reads them. */
function callerAudio(utterances = UTTERANCES, callerMs = CALLER_MS) {
  const audio = fs.readFileSync(path.join(FIXTURES, 'speech_8k.ulaw'));
  const out = Buffer.alloc(callerMs * 8, NEGATIVE_ZERO);
  const labels = [];
  for (const [at, [start, end]] of utterances) {
    audio.copy(out, at * 8, start * 8, end * 8);
    labels.push(`${at} ${at + end - start}`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'openai-bridge-'));
  fs.writeFileSync(path.join(dir, 'caller.ulaw'), out);
  fs.writeFileSync(path.join(dir, 'caller.labels'), `${labels.join('\n')}\n`);
  return { dir, file: path.join(dir, 'caller.ulaw') };
}

/** `ms` of a sine at `freq`: µ-law at 8 kHz, or s16le at 24 kHz. */
function tone(ms, freq, ulaw) {
  const rate = ulaw ? ULAW_RATE : RATE;
  const n = (rate * ms) / 1000;
  const out = Buffer.alloc(ulaw ? n : n * 2);
  for (let i = 0; i < n; i++) {
    const sample = Math.trunc(6000 * Math.sin((2 * Math.PI * freq * i) / rate));
    if (ulaw) out[i] = linearToUlaw(sample);
    else out.writeInt16LE(sample, i * 2);
  }
  return out;
}

/** One Realtime connection's worth of the model (see the top of the file), speaking µ-law at
 * 8 kHz or PCM at 24 kHz. `reply`, if given, is every reply's audio. */
class FakeRealtime {
  constructor(deltaName, ulaw, reply = null) {
    this.deltaName = deltaName;
    this.ulaw = ulaw;
    this.reply = reply;
    this.rate = ulaw ? ULAW_RATE : RATE;
    this.width = ulaw ? 1 : 2; // bytes per sample
    this.authorization = null;
    this.sessionUpdates = [];
    this.createResponse = true;
    this.commits = 0; // speeches the VAD ended (each committed as a user item)
    this.audio = Buffer.alloc(RATE * 2 * 16); // every appended byte (decoded from base64 only), in its first audioBytes
    this.audioBytes = 0;
    this.onsetsMs = []; // where the VAD heard the caller start, in appended audio
    this.cancels = 0;
    this.truncates = []; // [itemId, audio_end_ms, ms of audio sent for the item then]
    this.errors = [];
    this.items = []; // item ids of the replies, in order
    this.sentMs = new Map();
    this.staleSent = 0;
    this.ws = null;
    this.responding = false;
    this.cancelled = false;
    this.closed = new Promise((resolve) => (this.onClosed = resolve));
    // VAD state over the appended audio.
    this.scanned = 0;
    this.speaking = false;
    this.voiced = 0;
    this.quiet = 0;
  }

  send(event) {
    this.ws.send(JSON.stringify(event));
  }

  handle(ws, req) {
    if (this.ws) {
      this.errors.push('a second connection');
      ws.close();
      return;
    }
    this.ws = ws;
    this.authorization = req.headers.authorization;
    ws.on('message', (data) => {
      const event = JSON.parse(data.toString());
      const kind = event.type;
      if (kind === 'session.update') {
        this.sessionUpdates.push(event.session);
        this.createResponse = event.session.audio.input.turn_detection.create_response !== false;
      } else if (kind === 'response.create') {
        if (this.createResponse) this.errors.push('response.create while the server creates the responses');
        this.respondNext();
      } else if (kind === 'input_audio_buffer.append') {
        const pcm = Buffer.from(event.audio, 'base64');
        if (this.audioBytes + pcm.length > this.audio.length) {
          const grown = Buffer.alloc(Math.max(this.audio.length * 2, this.audioBytes + pcm.length));
          this.audio.copy(grown, 0, 0, this.audioBytes);
          this.audio = grown;
        }
        pcm.copy(this.audio, this.audioBytes);
        this.audioBytes += pcm.length;
        this.vad();
      } else if (kind === 'response.cancel') {
        if (!this.responding) {
          this.errors.push('response.cancel with no response in progress');
        } else {
          this.cancels++;
          this.cancelled = true;
        }
      } else if (kind === 'conversation.item.truncate') {
        const item = event.item_id;
        const sent = this.sentMs.get(item) ?? 0;
        this.truncates.push([item, event.audio_end_ms, sent]);
        if (event.content_index !== 0 || event.audio_end_ms > sent) {
          this.errors.push(`bad truncate ${JSON.stringify(event)} (${sent} ms sent)`);
        }
        this.send({ type: 'conversation.item.truncated', item_id: item, content_index: 0, audio_end_ms: event.audio_end_ms });
      } else {
        this.errors.push(`unexpected event ${kind}`);
      }
    });
    ws.on('close', () => this.onClosed());
  }

  /** Speech: 3 blocks of 20 ms above the threshold; its end: 500 ms below. */
  vad() {
    const block = this.rate / 50;
    while (this.scanned + block * this.width <= this.audioBytes) {
      let energy = 0;
      for (let i = 0; i < block; i++) {
        const sample = this.ulaw
          ? ULAW_TO_LINEAR[this.audio[this.scanned + i]]
          : this.audio.readInt16LE(this.scanned + i * 2);
        energy += sample ** 2;
      }
      this.scanned += block * this.width;
      const loud = Math.sqrt(energy / block) > 600;
      const atMs = Math.floor(((this.scanned / this.width) * 1000) / this.rate);
      if (!this.speaking) {
        this.voiced = loud ? this.voiced + 1 : 0;
        if (this.voiced === 3) {
          this.speaking = true;
          this.quiet = 0;
          this.onsetsMs.push(atMs - 60);
          this.send({ type: 'input_audio_buffer.speech_started', audio_start_ms: atMs - 60 });
        }
      } else {
        this.quiet = loud ? 0 : this.quiet + 1;
        if (this.quiet * 20 >= 500) {
          this.speaking = false;
          this.voiced = 0;
          this.send({ type: 'input_audio_buffer.speech_stopped', audio_end_ms: atMs - 500 });
          this.commits++;
          this.send({ type: 'input_audio_buffer.committed', item_id: `user_${this.commits}` });
          if (this.createResponse) this.respondNext();
        }
      }
    }
  }

  respondNext() {
    if (this.items.length < REPLIES_MS.length) {
      this.responding = true;
      this.respond(this.items.length).catch((e) => this.errors.push(`respond: ${e.stack}`));
    } else {
      this.errors.push("a response asked for after the script's last reply");
    }
  }

  async respond(n) {
    const response = `resp_${n + 1}`;
    const item = `item_${n + 1}`;
    this.items.push(item);
    this.cancelled = false;
    this.sentMs.set(item, 0);
    this.send({ type: 'response.created', response: { id: response, status: 'in_progress' } });
    this.send({
      type: 'response.output_item.added',
      response_id: response,
      item: { id: item, type: 'message', role: 'assistant' },
    });
    const audio = this.reply ?? tone(REPLIES_MS[n], 300 + 100 * n, this.ulaw);
    const chunk = ((this.rate * CHUNK_MS) / 1000) * this.width;
    let status = 'completed';
    let stale = null;
    for (let i = 0; i < audio.length; i += chunk) {
      if (this.cancelled) {
        stale = stale === null ? STALE_DELTAS : stale;
        if (stale === 0) {
          status = 'cancelled';
          break;
        }
        stale--;
        this.staleSent++;
      }
      const piece = audio.subarray(i, i + chunk);
      this.send({
        type: this.deltaName,
        response_id: response,
        item_id: item,
        output_index: 0,
        content_index: 0,
        delta: piece.toString('base64'),
      });
      this.sentMs.set(item, this.sentMs.get(item) + Math.floor(((piece.length / this.width) * 1000) / this.rate));
      await sleep(CHUNK_MS / STREAM_SPEEDUP);
    }
    this.send({ type: 'response.done', response: { id: response, status } });
    this.responding = false;
  }
}

/** Output of a child process so far, and its exit code once it exits. */
function run(command, args, options) {
  const child = spawn(command, args, options);
  const out = { child, stdout: '', stderr: '' };
  child.stdout.on('data', (chunk) => (out.stdout += chunk));
  child.stderr.on('data', (chunk) => (out.stderr += chunk));
  out.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  return out;
}

function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The fake Realtime server and the bridge (its own process) started for `fake`; resolves to the
 * bridge's child process record and port. */
async function startBridge(t, fake, flags) {
  const realtime = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  realtime.on('connection', (ws, req) => fake.handle(ws, req));
  await new Promise((resolve) => realtime.once('listening', resolve));
  t.after(
    () =>
      new Promise((resolve) => {
        for (const ws of realtime.clients) ws.terminate();
        realtime.close(resolve);
      }),
  );
  const url = `ws://127.0.0.1:${realtime.address().port}/v1/realtime?model=test`;

  const args = [BRIDGE, '--bind', '127.0.0.1:0', '--url', url, '--drain-grace', '2', ...flags];
  const bridge = run(process.execPath, args, { env: { ...process.env, OPENAI_API_KEY: API_KEY } });
  t.after(() => bridge.child.kill('SIGKILL'));
  const port = await within(
    new Promise((resolve, reject) => {
      bridge.child.stdout.on('data', () => {
        const m = /listening on [\d.]+:(\d+)\/media \(twilio, audio\/pcmu?\)/.exec(bridge.stdout);
        if (m) resolve(Number(m[1]));
      });
      bridge.exited.then(() => reject(new Error(`the bridge exited:\n${bridge.stdout}${bridge.stderr}`)));
    }),
    10000,
    'the bridge listening',
  );
  return { bridge, port };
}

/** SIGTERM: the bridge drains and exits; its logs. */
async function stopBridge(t, bridge) {
  bridge.child.kill('SIGTERM');
  const bridgeCode = await within(bridge.exited, 10000, 'the bridge draining');
  const logs = bridge.stdout + bridge.stderr;
  for (const line of logs.trim().split('\n')) t.diagnostic(line);
  assert.equal(bridgeCode, 0, logs);
  assert.match(logs, /drained: every call ended/);
  return logs;
}

async function runCall(t, caller, serverVad, deltaName, pcm) {
  const fake = new FakeRealtime(deltaName, !pcm);
  const flags = [...(serverVad ? ['--server-vad'] : []), ...(pcm ? ['--pcm'] : [])];
  const { bridge, port } = await startBridge(t, fake, flags);

  const callsim = run(CALLSIM, [
    '--url', `ws://127.0.0.1:${port}/media`, '--audio', caller.file,
    '--digital-silence', '--playout-delay-ms', '150', '--wait-ms', '3000', '--json', '--timeline', '--quiet',
  ]);
  t.after(() => callsim.child.kill('SIGKILL'));
  const code = await within(callsim.exited, 30000, 'callsim');
  await within(fake.closed, 5000, 'the bridge hanging up on the model');
  const logs = await stopBridge(t, bridge);
  assert.equal(code, 0, callsim.stderr);

  const timeline = [];
  for (const line of callsim.stderr.split('\n')) {
    const m = /^\s*(-?\d+) ms {2}(.*)$/.exec(line);
    if (m) timeline.push([Number(m[1]), m[2]]);
  }
  return { fake, metrics: JSON.parse(callsim.stdout).per_call[0].metrics, timeline, logs };
}

for (const [name, pcm, serverVad, deltaName] of [
  ['ulaw-trunkline-barge-in', false, false, 'response.output_audio.delta'],
  ['pcm-server-vad', true, true, 'response.audio.delta'],
]) {
  test(`the bridge truncates each reply at what the caller heard (${name})`, async (t) => {
    const caller = callerAudio();
    t.after(() => fs.rmSync(caller.dir, { recursive: true, force: true }));
    const { fake, metrics, timeline, logs } = await runCall(t, caller, serverVad, deltaName, pcm);
    const text = `${timeline.map(([ms, what]) => `${String(ms).padStart(6)} ms  ${what}`).join('\n')}\n${logs}`;

    // The bridge authenticated with the key, and the session asked for the mode's format both
    // ways (µ-law by its GA name), the server's VAD not cancelling by itself.
    assert.equal(fake.authorization, `Bearer ${API_KEY}`);
    assert.equal(fake.sessionUpdates.length, 1);
    const [session] = fake.sessionUpdates;
    const format = pcm ? { type: 'audio/pcm', rate: RATE } : { type: 'audio/pcmu' };
    assert.deepEqual(session.audio.input.format, format);
    assert.deepEqual(session.audio.output.format, format);
    assert.equal(session.audio.input.turn_detection.interrupt_response, false);

    const sentBytes = metrics.frames_sent * 160; // µ-law, a byte per sample at 8 kHz
    if (pcm) {
      // The caller's audio reached the model whole: as many samples as callsim sent (at 24 kHz;
      // a frame of slack for the resampler and the hang-up).
      const sentSamples = (sentBytes * RATE) / ULAW_RATE;
      const gotSamples = fake.audioBytes / 2;
      assert.ok(Math.abs(gotSamples - sentSamples) <= RATE / 50, `${gotSamples} samples reached the model, ${sentSamples} sent`);
    } else {
      // Passed through: the model got callsim's bytes unchanged, the file's (its 0x7F zeros
      // included) and then the digital silence (0xFF) callsim sends while waiting, up to a frame
      // short at the hang-up.
      const file = fs.readFileSync(caller.file);
      const sent = Buffer.concat([file, Buffer.alloc(Math.max(sentBytes - file.length, 0), 0xff)]);
      assert.ok(fake.audioBytes >= sentBytes - 160 && fake.audioBytes <= sentBytes, `${fake.audioBytes} bytes reached the model, ${sentBytes} sent`);
      const got = fake.audio.subarray(0, fake.audioBytes);
      assert.ok(got.subarray(0, file.length).equals(file), 'the caller audio reached the model changed');
      assert.ok(got.equals(sent.subarray(0, fake.audioBytes)), 'the silence after it reached the model changed');
    }
    // The utterances where callsim put them.
    assert.equal(fake.onsetsMs.length, UTTERANCES.length, `onsets ${fake.onsetsMs}`);
    fake.onsetsMs.forEach((onset, i) => assert.ok(Math.abs(onset - UTTERANCES[i][0]) <= 60, `onsets ${fake.onsetsMs}`));

    // Two interruptions, each answered by one clear; what the carrier says the caller heard of
    // each cut reply.
    const heard = timeline
      .map(([, what]) => /^clear received.*caller heard (\d+) ms of the reply/.exec(what))
      .filter(Boolean)
      .map((m) => Number(m[1]));
    assert.equal(metrics.clears, 2, text);
    assert.equal(heard.length, 2, text);
    assert.equal(metrics.bad_messages, 0, text);
    assert.equal(metrics.framing_violations, 0, text);

    // Each cut response was cancelled while in progress, and each truncate names its own item
    // (never the earlier reply's) at what the caller heard of it, within the audio sent for it.
    assert.deepEqual(fake.errors, []);
    assert.equal(fake.cancels, 2);
    assert.deepEqual(
      fake.truncates.map(([item]) => item),
      fake.items.slice(0, 2),
      JSON.stringify(fake.truncates),
    );
    fake.truncates.forEach(([item, endMs, sentMs], i) => {
      assert.ok(Math.abs(endMs - heard[i]) <= TOLERANCE_MS, `${item}: truncated at ${endMs} ms, heard ${heard[i]} ms\n${text}`);
      assert.ok(endMs > 0 && endMs <= sentMs, `${item}: truncated at ${endMs} ms of ${sentMs} ms sent`);
    });

    // The deltas sent after each cancel were never played: three replies reached the caller (two
    // cut, the last whole), nothing in between.
    assert.equal(fake.staleSent, 2 * STALE_DELTAS);
    const starts = timeline.filter(([, what]) => what.startsWith('bot reply starts') || what.startsWith('bot audio starts'));
    assert.equal(starts.length, 3, text);
    const ends = timeline.map(([, what]) => /^bot reply ends \((\d+) ms played\)/.exec(what)).filter(Boolean);
    assert.equal(ends.length, 1, text);
    assert.ok(Math.abs(Number(ends[0][1]) - REPLIES_MS[2]) <= 20, text);
  });
}

test('a backchannel over a reply gets no reply of its own', async (t) => {
  // The question, then 220 ms of speech 700 ms into the reply (under Trunkline's 300 ms of voiced
  // speech: no barge-in). The server's VAD still hears it and commits it; answered, it would
  // queue a second reply behind the first.
  const caller = callerAudio([[1000, [1000, 3421]], [4600, [6235, 6455]]], 8000);
  t.after(() => fs.rmSync(caller.dir, { recursive: true, force: true }));
  const { fake, metrics, timeline, logs } = await runCall(t, caller, false, 'response.output_audio.delta', false);
  const text = `${timeline.map(([ms, what]) => `${String(ms).padStart(6)} ms  ${what}`).join('\n')}\n${logs}`;
  assert.deepEqual(fake.errors, []);
  assert.equal(fake.commits, 2, text); // the server heard both
  assert.deepEqual(fake.items, ['item_1'], text);
  assert.equal(fake.cancels, 0, text);
  assert.deepEqual(fake.truncates, [], text);
  assert.equal(metrics.clears, 0, text);
});

/** A Twilio Media Streams message of the test's own carrier. */
function twilio(event, body = {}) {
  return JSON.stringify({ event, streamSid: 'MZ18ad3ab5a668481ce02b83e7395059f0', ...body });
}

test("the bridge plays the model's µ-law bytes unchanged", async (t) => {
  // Every µ-law code in turn, 0x7F (which a decode and encode would turn into 0xFF) among them.
  const reply = Buffer.from(Array.from({ length: 256 * 32 }, (_, i) => i & 0xff)); // 1024 ms
  const fake = new FakeRealtime('response.output_audio.delta', true, reply);
  const { bridge, port } = await startBridge(t, fake, []);

  // A carrier of the test's own: the fixture's first utterance, then digital silence, until the
  // reply's length has come back in the bot's media.
  const [, [from, to]] = UTTERANCES[0];
  const speech = fs.readFileSync(path.join(FIXTURES, 'speech_8k.ulaw')).subarray(from * 8, to * 8);
  const caller = Buffer.concat([speech, Buffer.alloc(8000 * 8, 0xff)]);
  const ws = new WebSocket(`ws://127.0.0.1:${port}/media`);
  t.after(() => ws.terminate());
  const received = [];
  let receivedBytes = 0;
  ws.on('message', (data) => {
    const event = JSON.parse(data.toString());
    if (event.event !== 'media') return;
    const payload = Buffer.from(event.media.payload, 'base64');
    received.push(payload);
    receivedBytes += payload.length;
  });
  await within(new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject)), 5000, 'the carrier socket');
  ws.send(JSON.stringify({ event: 'connected', protocol: 'Call', version: '1.0.0' }));
  const callSid = 'CA4c5f6b7a8e9d0c1b2a3f4e5d6c7b8a9f';
  ws.send(
    twilio('start', {
      sequenceNumber: '1',
      start: {
        accountSid: 'AC0123456789abcdef0123456789abcdef',
        streamSid: 'MZ18ad3ab5a668481ce02b83e7395059f0',
        callSid,
        tracks: ['inbound'],
        customParameters: {},
        mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
      },
    }),
  );
  let seq = 2;
  for (let i = 0; i < caller.length && receivedBytes < reply.length; i += 160) {
    const payload = caller.subarray(i, i + 160).toString('base64');
    ws.send(twilio('media', { sequenceNumber: String(seq++), media: { track: 'inbound', chunk: String(i / 160 + 1), timestamp: String(i / 8), payload } }));
    await sleep(20); // real time, roughly
  }
  ws.send(twilio('stop', { sequenceNumber: String(seq), stop: { accountSid: 'AC0', callSid } }));
  await within(fake.closed, 5000, 'the bridge hanging up on the model');
  ws.close();
  await stopBridge(t, bridge);

  assert.deepEqual(fake.errors, []);
  assert.deepEqual(fake.items, ['item_1']);
  const got = Buffer.concat(received);
  assert.ok(got.length >= reply.length, `${got.length} bytes reached the carrier`);
  // The carrier got the model's bytes as sent (the last frame padded, if at all, after them).
  assert.ok(got.subarray(0, reply.length).equals(reply), 'the reply reached the carrier changed');
});

test('a cut truncates the items queued behind the one heard at 0', () => {
  const { Bridge } = require('../openai_realtime_bridge');
  // The session is full: play() takes nothing, so the second item never reaches the engine.
  const calls = [];
  const call = {
    queuedMs: 0,
    beginSegment: (tag) => calls.push(['beginSegment', tag]),
    play: () => 0,
  };
  const sent = [];
  const realtime = { readyState: WebSocket.OPEN, send: (text) => sent.push(JSON.parse(text)) };
  const bridge = new Bridge(call, realtime, false, () => {});
  bridge.responseId = 'resp_2';
  const delta = (item, response, n) => ({
    type: 'response.output_audio.delta',
    response_id: response,
    item_id: item,
    delta: Buffer.alloc(n, 0x55).toString('base64'),
  });
  bridge.onAudio(delta('item_1', 'resp_1', 8000));
  bridge.onAudio(delta('item_2', 'resp_2', 4000));
  assert.deepEqual(calls, [['beginSegment', 'item_1']]);
  bridge.onCut({ kind: 'barge_in', segment: 'item_1', segmentPlayedMs: 500, unheardSegments: [] });
  const truncates = Object.fromEntries(
    sent.filter((e) => e.type === 'conversation.item.truncate').map((e) => [e.item_id, e.audio_end_ms]),
  );
  assert.deepEqual(truncates, { item_1: 500, item_2: 0 });
  assert.equal(sent.filter((e) => e.type === 'response.cancel').length, 1);
});
