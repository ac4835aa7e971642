'use strict';
// The async iterator of events, driven by trunkline_engine_wait on a koffi worker thread.

const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./helpers');

test('for await (const ev of session.eventStream()) follows a whole threaded call and ends after stopped', async (t) => {
  const { audio, labels } = h.speech();
  const engine = h.engineFor(t, { workers: 2 });
  const session = engine.session({ agentRate: h.AGENT_RATE });
  const events = [];
  let ended = false;
  const consumer = (async () => {
    for await (const ev of session.eventStream()) events.push(ev);
    ended = true; // by itself, after `stopped`
  })();
  let samples = 0;
  await h.pushAll(session, engine, h.callerMessages(audio), {
    onBatch: () => {
      samples += session.readAudio().length / 2;
    },
  });
  // Caller audio is read until the stream ends: a worker running behind needs the room for it.
  const deadline = Date.now() + 10000;
  while (!ended && Date.now() < deadline) {
    samples += session.readAudio().length / 2;
    await h.sleep(5);
  }
  await consumer;
  samples += session.readAudio().length / 2;
  session.close();
  engine.close();
  h.checkCallEvents(events, labels);
  assert.equal(samples, (h.CALLER_FRAMES * 20 * h.AGENT_RATE) / 1000);
});

test('the blocking wait runs off the main thread: timers keep firing while a stream waits', async (t) => {
  const engine = h.engineFor(t, { workers: 1 });
  const session = engine.session();
  const got = [];
  const consumer = (async () => {
    for await (const ev of session.eventStream()) got.push(ev.kind);
  })();
  // Nothing happens for 300 ms: the stream is parked in trunkline_engine_wait. The event loop
  // must stay free: a 5 ms interval keeps ticking.
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  await h.sleep(300);
  clearInterval(timer);
  assert.ok(ticks >= 30, `the event loop ran ${ticks} 5 ms ticks in 300 ms`);
  assert.deepEqual(got, []);
  session.push(h.connected());
  await waitFor(() => got.length === 1, 2000);
  assert.deepEqual(got, ['connected']);
  session.close(); // ends the stream
  await consumer;
  engine.close();
});

test('one engine, several sessions: each stream gets its own events', async (t) => {
  const engine = h.engineFor(t, { workers: 1 });
  const sessions = [engine.session(), engine.session(), engine.session()];
  const seen = sessions.map(() => []);
  const consumers = sessions.map((s, i) =>
    (async () => {
      for await (const ev of s.eventStream()) seen[i].push(ev.kind === 'dtmf' ? ev.digit : ev.kind);
    })(),
  );
  for (const [i, s] of sessions.entries()) {
    s.push(h.connected());
    s.push(h.start());
    s.push(h.dtmf(10 + i, String(i)));
    s.push(h.stop(20 + i));
  }
  await h.within(Promise.all(consumers), 3000, 'streams did not end');
  assert.deepEqual(seen, [0, 1, 2].map((i) => ['connected', 'started', String(i), 'stopped']));
  for (const s of sessions) s.close();
  engine.close();
});

test('wakeups() does not lose a wakeup taken by another session while it drains', async (t) => {
  const engine = h.engineFor(t, { workers: 1 });
  const a = engine.session();
  const b = engine.session();
  // B waits the whole time: its native waits consume every wakeup of the engine.
  const bDone = (async () => {
    for await (const _ of b.eventStream());
  })();
  let pushedAt = 0;
  let drainedAt = 0;
  let latency = -1;
  for await (const _ of a.wakeups()) {
    const kinds = a.events().map((e) => e.kind);
    if (kinds.includes('connected')) {
      latency = performance.now() - drainedAt;
      break;
    }
    if (!pushedAt) {
      a.push(h.connected()); // A's output arrives while A is busy below, and wakes B's wait
      pushedAt = performance.now();
      await h.sleep(120);
      drainedAt = performance.now();
    }
  }
  b.close();
  await bDone;
  // Without the wakeup count, A would sleep until the end of a 100 ms wait slice.
  assert.ok(latency >= 0 && latency < 40, `A saw its event ${latency.toFixed(1)} ms after it was ready to`);
});

test('streams end when their engine closes; the engine is freed once its native wait returns', async (t) => {
  const engine = h.engineFor(t, { workers: 1 });
  const session = engine.session();
  let ended = false;
  const consumer = (async () => {
    for await (const _ of session.eventStream()) assert.fail('no events expected');
    ended = true;
  })();
  await h.sleep(20); // the native wait is in flight now
  engine.close();
  await consumer;
  assert.ok(ended);
  assert.equal(await engine.wait(), false);
  session.close();
});

test('engine.wait() resolves true when a session has output, false on timeout', async (t) => {
  const engine = h.engineFor(t, { workers: 1 });
  const session = engine.session();
  const t0 = performance.now();
  assert.equal(await engine.wait(50), false);
  assert.ok(performance.now() - t0 >= 45);
  const woke = engine.wait(2000);
  session.push(h.connected());
  assert.equal(await woke, true);
  assert.deepEqual(
    session.events().map((e) => e.kind),
    ['connected'],
  );
  session.close();
  engine.close();
});

test('an inline engine still drives its streams (polled, no worker to signal)', async (t) => {
  const engine = h.engineFor(t, { workers: 0 });
  const session = engine.session();
  const got = [];
  const consumer = (async () => {
    for await (const ev of session.eventStream()) got.push(ev.kind);
  })();
  session.push(h.connected());
  session.push(h.start());
  session.push(h.stop(3));
  await h.within(consumer, 2000, 'inline stream did not end');
  assert.deepEqual(got, ['connected', 'started', 'stopped']);
  session.close();
  engine.close();
});

async function waitFor(cond, ms) {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) assert.fail('timed out');
    await h.sleep(5);
  }
}

test('a consumer that leaves eventStream() early leaves the events it did not take for the next read', { timeout: 5000 }, async (t) => {
  // Inline: each message is handled as it is pushed, so one poll takes all their events.
  const engine = h.engineFor(t, { workers: 0 });
  const s = engine.session();
  s.push(h.connected());
  s.push(h.start());
  s.push(h.dtmf(2, '5'));
  const firstOf = async () => {
    for await (const ev of s.eventStream()) return ev.kind === 'dtmf' ? ev.digit : ev.kind;
  };
  assert.equal(await firstOf(), 'connected');
  // The next stream starts where the first left off, and events() hands out the rest.
  assert.equal(await firstOf(), 'started');
  assert.deepEqual(s.events().map((ev) => ev.digit), ['5']);
  s.close();
  engine.close();
});
