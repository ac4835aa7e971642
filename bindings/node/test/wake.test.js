'use strict';
// engine.wake(): releases a pending wait() and wakeups(), is kept for a wait() that starts after
// it, and close() does not leave a native wait running.

const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const path = require('node:path');
const { Engine, TrunklineError, RESULT } = require('..');

/** Resolves to the promise's value, or to 'pending' if it has not settled within `ms`. */
function within(promise, ms) {
  let timer;
  const late = new Promise((resolve) => {
    timer = setTimeout(() => resolve('pending'), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

for (const workers of [0, 1]) {
  test(`wake() resolves a wait() without timeout (workers: ${workers})`, async (t) => {
    const engine = new Engine({ workers });
    t.after(() => engine.close());
    const waiting = engine.wait();
    assert.equal(await within(waiting, 150), 'pending', 'wait() resolved with nothing to wake it');
    engine.wake();
    assert.equal(await within(waiting, 5000), true);
  });
}

test('a wait() of Infinity, or longer than a timer holds, waits for the wake', async (t) => {
  const engine = new Engine({ workers: 1 });
  t.after(() => engine.close());
  for (const timeoutMs of [Infinity, 2 ** 31, Number.MAX_SAFE_INTEGER]) {
    const waiting = engine.wait(timeoutMs);
    assert.equal(await within(waiting, 150), 'pending', `wait(${timeoutMs}) ended with nothing to wake it`);
    engine.wake();
    assert.equal(await within(waiting, 5000), true, `wait(${timeoutMs})`);
  }
});

test('a native wait koffi refuses to start is started again, not given up for good', async (t) => {
  // koffi refuses an async call while too many run in the process (its limit is shared with
  // every other user of koffi in it): the engine's first native wait is refused here.
  const native = require('../lib/native');
  const real = native.fns.trunkline_engine_wait;
  let refused = 0;
  const refusing = (...args) => real(...args);
  refusing.async = (...args) => {
    if (refused++ === 0) throw new Error('Too many asynchronous calls are running');
    return real.async(...args);
  };
  native.fns.trunkline_engine_wait = refusing;
  t.after(() => {
    native.fns.trunkline_engine_wait = real;
  });
  const engine = new Engine({ workers: 1 });
  t.after(() => engine.close());
  const waiting = engine.wait();
  assert.equal(await within(waiting, 150), 'pending', 'wait() resolved with nothing to wake it');
  engine.wake();
  assert.equal(await within(waiting, 5000), true);
  assert.ok(refused >= 2, 'the wait was started again');
});

test('a wake before the wait is kept for it, and counts once', async (t) => {
  const engine = new Engine({ workers: 1 });
  t.after(() => engine.close());
  engine.wake();
  engine.wake();
  assert.equal(await within(engine.wait(30000), 2000), true);
  assert.equal(await engine.wait(50), false);
});

test('wake() makes a wakeups() loop look again, where it checks its own stop flag', async (t) => {
  const engine = new Engine({ workers: 1 });
  t.after(() => engine.close());
  const session = engine.session();
  t.after(() => session.close());
  let stop = false;
  let rounds = 0;
  const loop = (async () => {
    for await (const _ of session.wakeups()) {
      rounds++;
      if (stop) return rounds;
    }
    return -1;
  })();
  await new Promise((resolve) => setTimeout(resolve, 30));
  const seen = engine._wakeCount;
  stop = true;
  engine.wake();
  // The loop ends by its flag (not by the session closing). The wake ended the native wait, or,
  // if that wait's slice ran out just before, is still pending.
  assert.ok((await within(loop, 5000)) > 0);
  assert.ok(engine._wakeCount === seen + 1 || engine.clearWakeup());
});

test('after close(), wake() throws CLOSED', () => {
  const engine = new Engine({ workers: 0 });
  engine.close();
  assert.throws(() => engine.wake(), (e) => e instanceof TrunklineError && e.code === RESULT.CLOSED);
});

test('close() resolves a pending wait() and ends the native wait at once', () => {
  // A native wait in flight keeps the event loop (and the process) alive until it returns, and
  // each lasts up to a 100 ms slice: a process that closes its engine during one must still
  // exit promptly. Measured in a child process, from close() to its 'exit'.
  const script = `
    const { Engine } = require(${JSON.stringify(path.resolve(__dirname, '..'))});
    const engine = new Engine({ workers: 1 });
    let closedAt = 0;
    process.on('exit', () => process.stdout.write(JSON.stringify({ resolved, ms: performance.now() - closedAt })));
    let resolved = null;
    engine.wait().then((v) => { resolved = v; });
    // Close once the native wait is surely running: 10 ms into its 100 ms slice.
    setTimeout(() => { closedAt = performance.now(); engine.close(); }, 10);
  `;
  const runs = [];
  for (let i = 0; i < 3; i++) {
    runs.push(JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30000 })));
  }
  for (const run of runs) assert.equal(run.resolved, false);
  // Without the wake each run would take the rest of the slice (about 90 ms); allow scheduling
  // noise on a loaded machine in some runs but not in all of them.
  const fastest = Math.min(...runs.map((r) => r.ms));
  assert.ok(fastest < 50, `close() to exit: ${runs.map((r) => r.ms.toFixed(1)).join(', ')} ms`);
});
