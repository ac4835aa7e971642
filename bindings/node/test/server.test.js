'use strict';
// The offload server through the Node binding: lifecycle and errors, and real calls over loopback
// with the `ws` package as the carrier.

const test = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { Engine, Server, Session, TrunklineError, RESULT, SERVER_STATS_NAMES } = require('..');
const h = require('./helpers');

const isCode = (name) => (e) => e instanceof TrunklineError && e.codeName === name;

/** An engine with one worker, closed (with its servers) when test `t` ends, pass or fail. */
function threaded(t) {
  const engine = new Engine({ workers: 1 });
  t.after(() => engine.close());
  return engine;
}

/** A carrier's WebSocket to `port`/`path`, open; closed when test `t` ends. */
async function carrier(t, port, path = '/media') {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`);
  t.after(() => ws.terminate());
  const received = [];
  ws.on('message', (data, isBinary) => received.push(isBinary ? data : JSON.parse(data.toString('utf8'))));
  await h.within(
    new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    }),
    5000,
    'the WebSocket did not open',
  );
  return { ws, received };
}

/** The next call of `server`, within 5 s; closed when test `t` ends. */
async function nextCall(t, server) {
  const calls = server.calls();
  const { value } = await h.within(calls.next(), 5000, 'no call was accepted');
  await calls.return();
  assert.ok(value instanceof Session);
  t.after(() => value.close());
  return value;
}

/** A carrier's call on `server`'s default path, its stream started and the call accepted. */
async function startedCall(t, server) {
  const { ws } = await carrier(t, server.port);
  ws.send(h.connected());
  ws.send(h.start());
  return { ws, call: await nextCall(t, server) };
}

/** The kind of the last event of `call`'s stream, once it ends. */
async function lastEventKind(call) {
  const kinds = [];
  for await (const ev of call.eventStream()) kinds.push(ev.kind);
  return kinds.at(-1);
}

/** Polls `fn` (every engine wakeup, at most 20 ms apart) until it returns truthy, within `ms`. */
async function until(engine, fn, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await engine.wait(20);
  }
}

test('server lifecycle: port, empty accept, stats, shutdown twice, close', async (t) => {
  const engine = threaded(t);
  const server = engine.serve();
  assert.ok(server instanceof Server);
  assert.equal(server.engine, engine);
  assert.ok(Number.isInteger(server.port) && server.port > 0, `port ${server.port}`);
  assert.equal(server.accept(), null);
  const stats = server.stats();
  assert.deepEqual(Object.keys(stats), [...SERVER_STATS_NAMES]);
  assert.ok(SERVER_STATS_NAMES.length >= 11);
  for (const name of ['connections', 'accepted', 'rejected_signature', 'rejected_path', 'send_timeouts', 'calls_opened', 'active']) {
    assert.equal(stats[name], 0, name);
  }

  // A second server on a port that is taken cannot bind it.
  assert.throws(() => engine.serve({ bind: `127.0.0.1:${server.port}` }), isCode('IO'));

  await server.shutdown(0);
  await assert.rejects(server.shutdown(0), isCode('CLOSED'));
  assert.throws(() => server.accept(), isCode('CLOSED'));
  assert.throws(() => server.stats(), isCode('CLOSED'));
  assert.equal(server.closed, false);
  server.close();
  server.close();
  assert.equal(server.closed, true);
  assert.throws(() => server.accept(), isCode('CLOSED'));
  await assert.rejects(server.shutdown(0), isCode('CLOSED'));

  // `new Server` is the same thing; closing the engine closes the servers still on it.
  const other = new Engine({ workers: 1 });
  const running = new Server(other, { bind: '127.0.0.1:0', path: '/x', maxSessions: 2 });
  assert.ok(running.port > 0);
  other.close();
  assert.equal(running.closed, true);
  assert.throws(() => running.accept(), isCode('CLOSED'));
  assert.throws(() => other.serve(), isCode('CLOSED'));
});

test('server errors: inline engine, bad settings, unknown options', (t) => {
  const inline = new Engine({ workers: 0 });
  t.after(() => inline.close());
  assert.throws(() => inline.serve(), (e) => isCode('INVALID_ARGUMENT')(e) && e.code === RESULT.INVALID_ARGUMENT);

  const engine = threaded(t);
  assert.throws(() => engine.serve({ bind: 'not an address' }), isCode('INVALID_ARGUMENT'));
  assert.throws(() => engine.serve({ bind: null }), isCode('NULL_PARAMETER'));
  assert.throws(() => engine.serve({ maxSessions: 0 }), isCode('INVALID_ARGUMENT'));
  assert.throws(() => engine.serve({ threads: 0 }), isCode('INVALID_ARGUMENT'));
  assert.throws(() => engine.serve({ sendTimeoutMs: 0 }), isCode('INVALID_ARGUMENT'));
  assert.throws(() => engine.serve({ tlsCertPem: '/nonexistent/cert.pem' }), isCode('INVALID_ARGUMENT'));
  assert.throws(() => engine.serve({ tlsCertPem: '/nonexistent/cert.pem', tlsKeyPem: '/nonexistent/key.pem' }), isCode('INVALID_ARGUMENT'));
  assert.throws(() => engine.serve({ session: { maxMarkNameBytes: 256 } }), isCode('INVALID_ARGUMENT'));
  assert.throws(() => engine.serve({ session: { dialect: 'no-such-dialect' } }), isCode('INVALID_ARGUMENT'));
  assert.throws(() => engine.serve({ session: { structSize: 8 } }), /unknown session option "structSize"/);
  assert.throws(() => engine.serve({ structSize: 8 }), /unknown server option "structSize"/);
  assert.throws(() => engine.serve({ path: '/a\0b' }), isCode('INVALID_ARGUMENT'));
  assert.throws(() => engine.serve({ path: 42 }), TypeError);
  assert.throws(() => engine.serve({ maxSessions: -1 }), TypeError);
  assert.throws(() => engine.serve({ port: 8080 }), /unknown server option "port"/);
  assert.throws(() => engine.serve({ session: { agentRat: 8000 } }), /unknown session option "agentRat"/);
  assert.throws(() => engine.serve({ session: 'x' }), TypeError);
  assert.throws(() => new Server({}, {}), TypeError);
});

test('session settings no call could open with refuse the start; values their field cannot hold are refused, not wrapped', (t) => {
  const engine = threaded(t);
  const bad = [
    { bargeInRejoinWithinMs: 5000 },
    { vadEndOfTurnThreshold: 0 },
    { vadEndOfTurnThreshold: 100 },
    { vadHangoverMs: 20000 },
    { vadEndOfTurnMaxSilenceMs: 20000 },
    { echoReduction: true },
  ];
  for (const session of bad) {
    // A session opened with them is refused, so every call would be.
    assert.throws(() => engine.session(session), isCode('INVALID_ARGUMENT'), JSON.stringify(session));
    assert.throws(() => engine.serve({ session }), isCode('INVALID_ARGUMENT'), JSON.stringify(session));
  }
  // koffi keeps the low bits of a uint32_t: 2^32 + 35 would pass for a valid 35.
  const wrapped = [
    { vadEndOfTurnThreshold: 2 ** 32 + 35 },
    { bargeInRejoinWithinMs: 2 ** 32 },
    { vadEndOfTurnMaxSilenceMs: 2 ** 32 + 500 },
    { bargeInDuckDb: 2 ** 32 + 18 },
  ];
  for (const session of wrapped) {
    assert.throws(() => engine.session(session), isCode('INVALID_ARGUMENT'), JSON.stringify(session));
    assert.throws(() => engine.serve({ session }), isCode('INVALID_ARGUMENT'), JSON.stringify(session));
  }
  assert.throws(() => engine.serve({ maxSessions: 2 ** 32 + 1 }), isCode('INVALID_ARGUMENT'));
});

test('a real call over loopback: path check, STARTED details, caller audio, agent audio and a mark out, hang-up', async (t) => {
  const { audio } = h.speech();
  const engine = threaded(t);
  // The caller's second of audio arrives in one burst before the host reads any: more than the
  // default 500 ms of caller PCM the engine holds for a host that is not reading.
  const server = engine.serve({ path: '/media', session: { agentRate: 16000, agentRingMs: 2000, dialect: 'twilio' } });

  // A path the server does not serve is refused with 404.
  const refused = new WebSocket(`ws://127.0.0.1:${server.port}/elsewhere`);
  refused.on('error', () => {}); // ws reports the refusal as an error too
  t.after(() => refused.terminate());
  const status = await h.within(
    new Promise((resolve, reject) => {
      refused.once('unexpected-response', (_, res) => resolve(res.statusCode));
      refused.once('open', () => reject(new Error('the wrong path was served')));
    }),
    5000,
    'no answer to the wrong path',
  );
  assert.equal(status, 404);

  const { ws, received } = await carrier(t, server.port);
  const FRAMES = 50; // 1 s of the speech fixture
  ws.send(h.connected());
  ws.send(h.start());
  for (let i = 0; i < FRAMES; i++) ws.send(h.frame(audio, i));

  const call = await nextCall(t, server);
  assert.equal(call.agentRate, 16000);
  // events() hands over what came since the last call: gather until both are in.
  const seen = [];
  const events = await until(engine, () => {
    seen.push(...call.events());
    return seen.length >= 2 ? seen : null;
  }, 5000, 'connected + started');
  assert.deepEqual(events.map((e) => e.kind).slice(0, 2), ['connected', 'started']);
  const started = events[1];
  h.checkStarted(started);

  // The server drives the carrier side: pushing into the call and taking its outbound messages
  // are refused (nothing is taken from the server).
  assert.throws(() => call.push(h.media(500, 500, 10000, Buffer.alloc(160, 0xff))), isCode('INVALID_ARGUMENT'));
  assert.throws(() => call.push(Buffer.from([1, 2])), isCode('INVALID_ARGUMENT'));
  assert.throws(() => call.outbound(), isCode('INVALID_ARGUMENT'));

  // The caller's audio arrives at the agent rate; the agent's reply reaches the carrier.
  let samples = 0;
  await until(engine, () => (samples += call.readAudio().length / 2) >= (FRAMES - 10) * 320, 5000, 'caller audio');
  assert.ok(samples <= FRAMES * 320, `${samples} samples for ${FRAMES} frames`);
  assert.equal(call.play(h.tone(16000, 0.2, 440, 8000), 16000), 3200);
  call.mark('reply-1');
  const isReply = (m) => m.event === 'mark' && m.mark.name === 'reply-1';
  await until(engine, () => received.some(isReply), 5000, 'the mark at the carrier');
  const media = received.filter((m) => m.event === 'media');
  assert.equal(media.length, 10, '200 ms of agent audio as 20 ms frames');
  for (const m of media) {
    assert.equal(m.streamSid, h.STREAM_SID);
    assert.equal(Buffer.from(m.media.payload, 'base64').length, 160);
  }
  assert.ok(received.findIndex(isReply) > received.findLastIndex((m) => m.event === 'media'), 'the mark follows its audio');

  // The carrier hangs up without `stop`: the call still reports `stopped`.
  ws.close();
  const rest = [];
  await h.within(
    (async () => {
      for await (const ev of call.eventStream()) rest.push(ev.kind);
    })(),
    5000,
    'no stopped event',
  );
  assert.equal(rest.at(-1), 'stopped');
  const stats = await until(engine, () => {
    const s = server.stats();
    return s.active === 0 && s.closed >= 1 ? s : null;
  }, 5000, 'the connection to close');
  assert.equal(stats.accepted, 1);
  assert.equal(stats.rejected_path, 1);
  assert.equal(stats.calls_opened, 1);
  assert.ok(call.stats().media_frames_in >= FRAMES - 10);

  await server.shutdown(0);
  server.close();
});

test('shutdown(grace) runs off the event loop: a live call goes on until the carrier hangs up', async (t) => {
  const engine = threaded(t);
  const server = engine.serve();
  const { ws } = await carrier(t, server.port, '/any/path');
  ws.send(h.connected());
  ws.send(h.start());
  const call = await nextCall(t, server);

  const t0 = performance.now();
  const done = server.shutdown(5000);
  assert.throws(() => server.accept(), isCode('CLOSED'));
  // The event loop is free meanwhile: the call is still served, then the carrier hangs up.
  await h.sleep(100);
  assert.equal(call.play(new Int16Array(160), 8000), 160);
  ws.close();
  await h.within(done, 5000, 'shutdown did not return');
  const elapsed = performance.now() - t0;
  assert.ok(elapsed >= 90 && elapsed < 3000, `shutdown took ${elapsed.toFixed(0)} ms`);
  assert.equal(await lastEventKind(call), 'stopped');
  // close() while a shutdown runs defers the free until it returns.
  const again = engine.serve();
  const pending = again.shutdown(0);
  again.close();
  await pending;
  server.close();
});

/** The status code of a plain HTTP GET of `path` on the server's port. */
function httpStatus(port, path) {
  return new Promise((resolve, reject) => {
    const req = require('node:http').get({ host: '127.0.0.1', port, path }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', reject);
  });
}

test('drain(grace): new calls refused at once, the live one goes on to its end, resolves true', async (t) => {
  const { audio } = h.speech();
  const engine = threaded(t);
  const server = engine.serve({ path: '/media', session: { agentRate: 8000, agentRingMs: 5000 } });
  assert.equal(server.ready, true);
  assert.equal(await httpStatus(server.port, '/readyz'), 200);
  const { ws, call } = await startedCall(t, server);

  // A grace far longer than the rest of the call: the drain ends because the call does.
  const drained = server.drain(30000);
  await until(engine, () => !server.ready, 2000, 'the server to stop being ready');
  assert.equal(await httpStatus(server.port, '/readyz'), 503);
  assert.equal(await httpStatus(server.port, '/healthz'), 200);
  const refused = new WebSocket(`ws://127.0.0.1:${server.port}/media`);
  refused.on('error', () => {});
  t.after(() => refused.terminate());
  const status = await h.within(
    new Promise((resolve, reject) => {
      refused.once('unexpected-response', (_, res) => resolve(res.statusCode));
      refused.once('open', () => reject(new Error('a call was taken while draining')));
    }),
    5000,
    'no answer to the upgrade',
  );
  assert.equal(status, 503);

  // The live call goes on: every frame it sends now reaches the host, then it stops and hangs up.
  const FRAMES = 50;
  for (let i = 0; i < FRAMES; i++) ws.send(h.frame(audio, i));
  ws.send(h.stop(FRAMES + 2));
  let bytes = 0;
  const kinds = [];
  await h.within(
    (async () => {
      for await (const ev of call.eventStream()) {
        kinds.push(ev.kind);
        bytes += call.readAudio().length;
      }
    })(),
    5000,
    'no stopped event',
  );
  bytes += call.readAudio().length;
  assert.equal(kinds.at(-1), 'stopped');
  assert.equal(bytes, FRAMES * 160 * 2);
  ws.close();
  assert.equal(await h.within(drained, 10000, 'the drain did not return'), true);
  const stats = server.stats();
  assert.deepEqual([stats.rejected_draining, stats.calls_opened, stats.active], [1, 1, 0]);
  // Nothing live: a second drain resolves at once; draining cannot be undone.
  assert.equal(await server.drain(0), true);
  assert.equal(server.ready, false);
  assert.throws(() => server.drain(-1), TypeError);
  await server.shutdown(0);
  await assert.rejects(server.drain(0), isCode('CLOSED'));
  assert.throws(() => server.ready, isCode('CLOSED'));
  server.close();
});

test('close() during a long drain cuts the live calls at once, as without one', async (t) => {
  const engine = threaded(t);
  const server = engine.serve();
  const { ws, call } = await startedCall(t, server);
  const closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
  const drained = server.drain(60000);
  await until(engine, () => !server.ready, 2000, 'the drain to start');
  server.close();
  assert.equal(await h.within(closed, 5000, 'the carrier was not hung up on'), 1001);
  assert.equal(await h.within(drained, 5000, 'the drain did not return'), true);
  assert.equal(await lastEventKind(call), 'stopped');
});

test('close() during a drain frees the server once the drain has ended the calls', async (t) => {
  const engine = threaded(t);
  const server = engine.serve();
  const { ws, call } = await startedCall(t, server);
  const closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
  const drained = server.drain(200);
  server.close();
  assert.equal(server.closed, true);
  assert.throws(() => server.accept(), isCode('CLOSED'));
  assert.equal(await h.within(drained, 5000, 'the drain did not return'), true);
  assert.equal(await h.within(closed, 5000, 'the carrier was not hung up on'), 1001);
  assert.equal(await lastEventKind(call), 'stopped');
});
