'use strict';
// G.711 helpers: the library's tables against a µ-law reference written here, and all four
// mappings against the committed CPython audioop digests (engine/tests/fixtures).

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { ulawDecode, ulawEncode, alawDecode, alawEncode, TrunklineError } = require('..');
const h = require('./helpers');

/** µ-law encode as CPython's audioop does it: the 14-bit Sun/ITU algorithm on sample >> 2. */
function referenceUlawEncode(sample) {
  const SEG_END = [0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff];
  let v = sample >> 2;
  let mask = 0xff;
  if (v < 0) {
    v = -v;
    mask = 0x7f;
  }
  v = Math.min(v, 8159) + 0x21;
  const seg = SEG_END.findIndex((end) => v <= end);
  if (seg < 0) return 0x7f ^ mask;
  return ((seg << 4) | ((v >> (seg + 1)) & 0x0f)) ^ mask;
}

const ALL_SAMPLES = Int16Array.from({ length: 65536 }, (_, i) => i - 32768);
const ALL_CODES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

test('ulawDecode matches the ITU-T formula for every code', () => {
  const pcm = ulawDecode(ALL_CODES);
  assert.ok(Buffer.isBuffer(pcm));
  assert.equal(pcm.length, 512);
  for (let c = 0; c < 256; c++) assert.equal(pcm.readInt16LE(c * 2), h.referenceUlawDecode(c), `code ${c}`);
});

test('ulawEncode matches the reference encoder for every 16-bit sample', () => {
  const codes = ulawEncode(ALL_SAMPLES);
  assert.equal(codes.length, 65536);
  let mismatches = 0;
  for (let i = 0; i < ALL_SAMPLES.length; i++) {
    if (codes[i] !== referenceUlawEncode(ALL_SAMPLES[i])) mismatches++;
  }
  assert.equal(mismatches, 0);
  // Encoding a decoded code gives the code back (except 0x7F, the second zero: it maps to 0xFF).
  const back = ulawEncode(ulawDecode(ALL_CODES));
  for (let c = 0; c < 256; c++) assert.equal(back[c], c === 0x7f ? 0xff : c, `code ${c}`);
});

test('all four mappings match the committed audioop digests and spot values', () => {
  const fixture = fs.readFileSync(path.join(h.FIXTURES, 'g711_reference.txt'), 'utf8');
  const digests = Object.fromEntries([...fixture.matchAll(/^sha256 (\w+) ([0-9a-f]{64})$/gm)].map((m) => [m[1], m[2]]));
  const sha = (buf) => crypto.createHash('sha256').update(buf).digest('hex');
  const encodeInput = Buffer.from(ALL_SAMPLES.buffer); // s16le, as a Buffer this time
  assert.equal(sha(ulawEncode(encodeInput)), digests.lin2ulaw);
  assert.equal(sha(alawEncode(encodeInput)), digests.lin2alaw);
  assert.equal(sha(ulawDecode(ALL_CODES)), digests.ulaw2lin);
  assert.equal(sha(alawDecode(ALL_CODES)), digests.alaw2lin);
  const fns = {
    lin2ulaw: (x) => ulawEncode(Int16Array.of(x))[0],
    lin2alaw: (x) => alawEncode(Int16Array.of(x))[0],
    ulaw2lin: (x) => ulawDecode(Buffer.of(x)).readInt16LE(0),
    alaw2lin: (x) => alawDecode(Buffer.of(x)).readInt16LE(0),
  };
  let spots = 0;
  for (const [, fn, input, output] of fixture.matchAll(/^(lin2ulaw|lin2alaw|ulaw2lin|alaw2lin) (-?\d+) (-?\d+)$/gm)) {
    assert.equal(fns[fn](Number(input)), Number(output), `${fn}(${input})`);
    spots++;
  }
  assert.ok(spots > 10, `${spots} spot values`);
});

test('codec functions take Buffers and typed arrays, and reject the rest', () => {
  assert.deepEqual(ulawEncode(Buffer.alloc(0)), Buffer.alloc(0));
  assert.deepEqual(ulawDecode(new Uint8Array(0)), Buffer.alloc(0));
  const odd = Buffer.alloc(5);
  odd.writeInt16LE(-1000, 1);
  odd.writeInt16LE(1000, 3);
  assert.deepEqual(ulawEncode(odd.subarray(1)), ulawEncode(Int16Array.of(-1000, 1000)));
  assert.throws(() => ulawEncode(Buffer.alloc(3)), RangeError);
  assert.throws(() => ulawDecode('abc'), TypeError);
  assert.throws(() => alawEncode([1, 2]), TypeError);
  assert.ok(!(new TypeError() instanceof TrunklineError));
});
