'use strict';
// index.d.ts: it compiles under `tsc --strict` against a usage file, and it declares exactly
// what index.js exports (module exports and class members).

const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const trunkline = require('..');

const ROOT = path.resolve(__dirname, '..');
const DTS = fs.readFileSync(path.join(ROOT, 'index.d.ts'), 'utf8');

test('index.d.ts compiles with tsc --strict against test/types/usage.ts', (t) => {
  // Library .d.ts files are not checked (skipLibCheck: @types/node alone takes seconds), so
  // index.d.ts is checked as a copy that is a plain .ts file: an error in it is still reported.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trunkline-dts-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.copyFileSync(path.join(ROOT, 'index.d.ts'), path.join(dir, 'index_d_check.ts'));
  const base = JSON.parse(fs.readFileSync(path.join(__dirname, 'types', 'tsconfig.json'), 'utf8'));
  const config = {
    compilerOptions: { ...base.compilerOptions, typeRoots: [path.join(ROOT, 'node_modules', '@types')] },
    files: [path.join(__dirname, 'types', 'usage.ts'), path.join(dir, 'index_d_check.ts')],
  };
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(config));
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', path.join(dir, 'tsconfig.json')], { encoding: 'utf8' });
  } catch (e) {
    assert.fail(`tsc failed:\n${e.stdout}${e.stderr}`);
  }
});

test('index.d.ts declares every export, and nothing more', () => {
  const declared = [...DTS.matchAll(/^export declare (?:const|class|function) (\w+)/gm)].map((m) => m[1]).sort();
  assert.deepEqual(declared, Object.keys(trunkline).sort());
});

test('index.d.ts declares every public member of Engine, Session and Server', () => {
  for (const cls of ['Engine', 'Session', 'Server']) {
    const body = new RegExp(`export declare class ${cls} \\{([\\s\\S]*?)\\n\\}`).exec(DTS)[1];
    const declared = new Set([...body.matchAll(/^ {2}(?:readonly |private )?(\w+)[?(:<]/gm)].map((m) => m[1]));
    const proto = trunkline[cls].prototype;
    const actual = Object.getOwnPropertyNames(proto).filter((n) => !n.startsWith('_'));
    for (const name of actual) assert.ok(declared.has(name), `${cls}.${name} is not declared`);
    for (const name of declared) {
      if (['constructor', 'inline', 'agentRate'].includes(name)) continue; // instance fields
      assert.ok(actual.includes(name), `${cls}.${name} is declared but not implemented`);
    }
  }
});
