'use strict';
// logToStderr(): installs the library's logger once per process, refuses a bad filter, and the
// offload server's drain then shows on stderr. Each case runs in a node process of its own, since
// the logger is process-wide.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const BINDING = path.resolve(__dirname, '..');

/** Runs `code` (with `trunkline` bound to this binding) in a fresh node; its status and stderr. */
function run(code, env = {}) {
  const environ = { ...process.env, ...env };
  if (!('TRUNKLINE_LOG' in env)) delete environ.TRUNKLINE_LOG;
  const script = `const trunkline = require(${JSON.stringify(BINDING)});\n(async () => {\n${code}\n})().catch((e) => { console.error(String(e)); process.exit(1); });`;
  const done = spawnSync(process.execPath, ['-e', script], { env: environ, encoding: 'utf8', timeout: 60000 });
  return { status: done.status, stderr: done.stderr };
}

const DRAIN = `
  const engine = new trunkline.Engine({ workers: 1 });
  const server = engine.serve();
  if ((await server.drain(0)) !== true) throw new Error('drain');
  server.close();
  engine.close();`;

test('logToStderr installs once, refuses bad filters, and the drain is logged', () => {
  const { status, stderr } = run(`
  const assert = require('node:assert/strict');
  for (const bad of ['trunkline=nonsense', '[unclosed']) {
    assert.throws(() => trunkline.logToStderr(bad), (e) => e instanceof trunkline.TrunklineError && e.codeName === 'INVALID_ARGUMENT');
  }
  assert.throws(() => trunkline.logToStderr('a\\0b'), (e) => e instanceof trunkline.TrunklineError && e.codeName === 'INVALID_ARGUMENT');
  assert.throws(() => trunkline.logToStderr(42), TypeError);
  assert.equal(trunkline.logToStderr('trunkline=info'), true);
  assert.equal(trunkline.logToStderr('trunkline=debug'), false);
  ${DRAIN}`);
  assert.equal(status, 0, stderr);
  assert.match(stderr, /drain started/);
  assert.match(stderr, /drain finished/);
  assert.match(stderr, /nonsense/, 'the reason a filter was refused');
});

test('logToStderr() reads TRUNKLINE_LOG; nothing is logged without it', () => {
  const bad = run(`trunkline.logToStderr();`, { TRUNKLINE_LOG: '[unclosed' });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /TRUNKLINE_LOG/);
  const quiet = run(`if (trunkline.logToStderr() !== true) throw new Error('not installed');${DRAIN}`, { TRUNKLINE_LOG: 'off' });
  assert.equal(quiet.status, 0, quiet.stderr);
  assert.doesNotMatch(quiet.stderr, /drain/);
  const silent = run(DRAIN);
  assert.equal(silent.status, 0, silent.stderr);
  assert.equal(silent.stderr, '');
});
