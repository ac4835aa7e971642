'use strict';
// A parser for include/trunkline.h (the C subset cbindgen writes) and the comparison of the
// binding's koffi declarations against it. Independent of the binding: it reads the header text
// and koffi's own description of each declared function and type (fn.info, TypeObject), not the
// strings the binding was written with (except for `const`, which koffi does not record).

/** C sizes and alignments on LP64 Linux (x86-64, aarch64): the ABI the header's structs have. */
const SCALARS = {
  bool: [1, 1],
  char: [1, 1],
  int8_t: [1, 1],
  uint8_t: [1, 1],
  int16_t: [2, 2],
  uint16_t: [2, 2],
  int32_t: [4, 4],
  uint32_t: [4, 4],
  int64_t: [8, 8],
  uint64_t: [8, 8],
  size_t: [8, 8],
  void: [0, 1],
};

/** Parses a C type (with or without a trailing parameter name) into {base, isConst, stars, name}. */
function parseType(text) {
  const t = text.replace(/\*/g, ' * ').trim().split(/\s+/);
  let isConst = false;
  const words = [];
  let stars = 0;
  for (const tok of t) {
    if (tok === 'const') isConst = true;
    else if (tok === '*') stars++;
    else words.push(tok);
  }
  // `uint8_t *data`: the last word after the base type is the parameter name.
  let name = null;
  if (words.length === 2) name = words.pop();
  if (words.length !== 1) throw new Error(`cannot parse C type ${JSON.stringify(text)}`);
  return { base: words[0], isConst, stars, name };
}

const typeString = (t) => `${t.isConst ? 'const ' : ''}${t.base}${t.stars ? ' ' + '*'.repeat(t.stars) : ''}`;
const bareTypeString = (t) => typeString({ ...t, isConst: false });

/**
 * The branch a C11 compiler (not C++, not C23) takes at a `#if`/`#ifdef`/`#ifndef` line: whether
 * its lines are read (`active`) and, for the library's feature defines (TRUNKLINE_*), the
 * condition recorded on the declarations inside (both are read: the header declares both).
 */
function preprocessorBranch(line) {
  let m;
  if ((m = /^#ifndef\s+(\w+)$/.exec(line))) {
    if (m[1] === '__cplusplus') return { active: true };
    return { active: true, guard: true, name: m[1] };
  }
  if ((m = /^#ifdef\s+(\w+)$/.exec(line))) {
    if (m[1] === '__cplusplus') return { active: false };
    throw new Error(`unsupported preprocessor line: ${line}`);
  }
  if ((m = /^#if\s+defined\((TRUNKLINE_\w+)\)$/.exec(line))) return { active: true, name: m[1] };
  // The C++ / C23 spelling of a fixed-size enum (`enum X : uint32_t`), and C23's typedef of it.
  if (/^#if\s+defined\(__cplusplus\)\s*\|\|\s*__STDC_VERSION__\s*>=\s*202311L$/.test(line)) return { active: false };
  if (/^#if\s+__STDC_VERSION__\s*>=\s*202311L$/.test(line)) return { active: false };
  // The header defining TRUNKLINE_SERVER unless TRUNKLINE_NO_SERVER is (the default build).
  if (/^#if\s+!defined\(TRUNKLINE_NO_SERVER\)\s*&&\s*!defined\(TRUNKLINE_SERVER\)$/.test(line)) return { active: true };
  throw new Error(`unsupported preprocessor line: ${line}`);
}

/**
 * Parses the header, as a C11 compiler sees it, into { defines, enums, enumTypes, structs, opaque,
 * functions }. `enumTypes` maps each enum to the integer type its typedef gives it. Declarations
 * inside `#if defined(TRUNKLINE_X)` blocks carry `conditions: ['TRUNKLINE_X']`.
 */
function parseHeader(text) {
  const noBlockComments = text.replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ' '));
  const lines = noBlockComments.split('\n').map((l) => l.replace(/\/\/.*$/, ''));
  const out = { defines: {}, enums: {}, enumTypes: {}, structs: {}, opaque: [], functions: {} };
  const stack = [];
  let decl = '';
  let declConds = null;
  let depth = 0;
  for (const raw of lines) {
    const line = raw.trim();
    const active = stack.every((s) => s.active);
    if (line.startsWith('#')) {
      let m;
      if (/^#if/.test(line)) stack.push(preprocessorBranch(line));
      else if (/^#else$/.test(line)) {
        if (!stack.length) throw new Error('#else without #if');
        stack[stack.length - 1].active = !stack[stack.length - 1].active;
      } else if (/^#endif/.test(line)) stack.pop();
      else if (!active) continue;
      else if ((m = /^#define\s+(\w+)\s+(.+)$/.exec(line))) {
        const v = m[2].trim();
        out.defines[m[1]] = /^"/.test(v) ? JSON.parse(v) : /^-?\d+$/.test(v) ? Number(v) : v;
      } else if ((m = /^#define\s+(\w+)$/.exec(line))) out.defines[m[1]] = '';
      else if (!/^#include/.test(line)) throw new Error(`unsupported preprocessor line: ${line}`);
      continue;
    }
    if (!active || !line) continue;
    if (!decl) declConds = stack.filter((s) => s.name && !s.guard).map((s) => s.name);
    decl += ' ' + line;
    depth += (line.match(/\{/g) || []).length - (line.match(/\}/g) || []).length;
    if (depth === 0 && line.endsWith(';')) {
      addDeclaration(out, decl.trim(), declConds);
      decl = '';
    }
  }
  if (stack.length) throw new Error('unterminated #if');
  if (decl.trim()) throw new Error(`unterminated declaration: ${decl}`);
  for (const name of Object.keys(out.enumTypes)) {
    if (!(name in out.enums)) throw new Error(`typedef ${name}: not an enum of the header`);
  }
  return out;
}

function enumValues(name, body) {
  const values = {};
  for (const item of body.split(',').map((s) => s.trim()).filter(Boolean)) {
    const e = /^(\w+) = (-?\d+)$/.exec(item);
    if (!e) throw new Error(`cannot parse enumerator ${item} in ${name}`);
    values[e[1]] = Number(e[2]);
  }
  return values;
}

function addDeclaration(out, decl, conditions) {
  let m;
  if ((m = /^typedef enum \{(.*)\} (\w+);$/.exec(decl))) {
    out.enums[m[2]] = enumValues(m[2], m[1]); // an enum without a fixed type (enumTypes has none)
  } else if ((m = /^enum (\w+) \{(.*)\};$/.exec(decl))) {
    out.enums[m[1]] = enumValues(m[1], m[2]);
  } else if ((m = /^typedef (u?int\d+_t) (\w+);$/.exec(decl))) {
    out.enumTypes[m[2]] = m[1]; // the integer type of enum m[2] (checked after parsing)
  } else if ((m = /^typedef struct \{(.*)\} (\w+);$/.exec(decl))) {
    const fields = [];
    for (const f of m[1].split(';').map((s) => s.trim()).filter(Boolean)) {
      const a = /^(.*?)\s*\[(\w+)\]$/.exec(f);
      const type = parseType(a ? a[1] : f);
      if (!type.name) throw new Error(`field without a name: ${f}`);
      const field = { name: type.name, type: { ...type, name: null } };
      if (a) field.length = /^\d+$/.test(a[2]) ? Number(a[2]) : { define: a[2] };
      fields.push(field);
    }
    out.structs[m[2]] = fields;
  } else if ((m = /^typedef struct (\w+) (\w+);$/.exec(decl)) && m[1] === m[2]) {
    out.opaque.push(m[1]);
  } else if ((m = /^(.+?)\b(trunkline_\w+)\((.*)\);$/.exec(decl))) {
    const params = m[3].trim() === 'void' || m[3].trim() === '' ? [] : m[3].split(',').map((p) => parseType(p));
    out.functions[m[2]] = { result: parseType(m[1]), params, conditions };
  } else {
    throw new Error(`unrecognised declaration: ${decl}`);
  }
  // Resolve array lengths given by #define.
  for (const fields of Object.values(out.structs)) {
    for (const f of fields) {
      if (f.length && typeof f.length === 'object' && f.length.define in out.defines) {
        f.length = out.defines[f.length.define];
      }
    }
  }
}

/** A koffi TypeObject as {base, stars} (koffi keeps no `const`; `char *` is its String type). */
function koffiType(t) {
  let stars = 0;
  while (t.primitive === 'Pointer') {
    stars++;
    t = t.ref;
  }
  if (t.primitive === 'String') return { base: 'char', stars: stars + 1, isConst: false };
  return { base: t.name, stars, isConst: false };
}

/** Parses one of the binding's C-like prototype strings (koffi's syntax: `_Out_` markers). */
function parsePrototype(proto) {
  const m = /^(.+?)\b(trunkline_\w+)\((.*)\)$/.exec(proto.trim());
  if (!m) throw new Error(`cannot parse prototype ${proto}`);
  const params =
    m[3].trim() === 'void' || m[3].trim() === ''
      ? []
      : m[3].split(',').map((p) => {
          const out = /\b_Out_\b/.test(p);
          return { ...parseType(p.replace(/\b_(Out|Inout|In)_\b/g, '')), out };
        });
  return { name: m[2], result: parseType(m[1]), params };
}

/** How koffi must pass a header parameter: derived from the header's own conventions. */
function expectedDirection(params, i, header) {
  const p = params[i];
  if (p.stars === 0 || p.isConst) return 'Input';
  if (p.stars === 1 && header.opaque.includes(p.base)) return 'Input'; // a handle
  // A caller-owned buffer: the next parameter is its capacity.
  const next = params[i + 1];
  if (next && next.stars === 0 && /capacity$/.test(next.name)) return 'Input';
  // A struct that begins with its struct_size, the function taking no struct_size of its own (as
  // the _default functions do): an output the caller sizes, so its struct_size must be copied in.
  const fields = p.stars === 1 ? header.structs[p.base] : undefined;
  const sized = fields && fields[0] && fields[0].name === 'struct_size';
  if (sized && !params.some((q) => q.name === 'struct_size')) return 'Input/Output';
  return 'Output';
}

/**
 * C layout (offsets, size, alignment) of a header struct, with the LP64 table, enums of their
 * typedef'd integer type (4 bytes without one), and
 * nested structs (laid out the same way, recursively).
 */
function layout(fields, header) {
  let offset = 0;
  let align = 1;
  const offsets = {};
  for (const f of fields) {
    let size;
    let a;
    if (f.type.stars) [size, a] = [8, 8];
    else if (header.enums[f.type.base]) [size, a] = SCALARS[header.enumTypes[f.type.base]] || [4, 4];
    else if (header.structs[f.type.base]) {
      const inner = layout(header.structs[f.type.base], header);
      [size, a] = [inner.size, inner.align];
    } else [size, a] = SCALARS[f.type.base] || [];
    if (size === undefined) throw new Error(`no layout for ${f.type.base}`);
    if (f.length !== undefined) size *= f.length;
    offset = Math.ceil(offset / a) * a;
    offsets[f.name] = offset;
    offset += size;
    align = Math.max(align, a);
  }
  return { offsets, size: Math.ceil(offset / align) * align, align };
}

/**
 * Every difference between the header and the binding's declarations, as readable strings
 * (empty when they agree). `native` is the binding's lib/native.js module.
 */
function compare(header, native) {
  const problems = [];
  const { fns, TYPES, PROTOTYPES, UNBOUND, DEFINES, HEADER_VERSION, koffi } = native;
  const protos = Object.fromEntries(PROTOTYPES.map((p) => parsePrototype(p)).map((p) => [p.name, p]));

  // ---- Functions: every header function declared or listed as unbound, and nothing else.
  for (const name of Object.keys(header.functions)) {
    if (!(name in fns) && !(name in UNBOUND)) problems.push(`${name}: in the header, not declared (nor in UNBOUND)`);
    if (name in fns && name in UNBOUND) problems.push(`${name}: both declared and listed in UNBOUND`);
  }
  for (const name of Object.keys(fns)) {
    if (!(name in header.functions)) problems.push(`${name}: declared, not in the header`);
  }
  for (const [name, reason] of Object.entries(UNBOUND)) {
    if (!(name in header.functions)) problems.push(`${name}: listed in UNBOUND, not in the header`);
    if (!reason || reason.length < 10) problems.push(`${name}: UNBOUND needs a reason`);
  }
  for (const [name, h] of Object.entries(header.functions)) {
    const fn = fns[name];
    if (!fn) continue;
    const info = fn.info;
    const sig = (r, ps) => `${r}(${ps.join(', ')})`;
    const want = sig(bareTypeString(h.result), h.params.map(bareTypeString));
    const got = sig(
      bareTypeString(koffiType(info.result)),
      info.arguments.map((a) => bareTypeString(koffiType(a.type))),
    );
    if (want !== got) problems.push(`${name}: header ${want}, koffi ${got}`);
    // `const` is not kept by koffi: compare the prototype the binding declared.
    const p = protos[name];
    const wantC = sig(typeString(h.result), h.params.map(typeString));
    const gotC = p && sig(typeString(p.result), p.params.map(typeString));
    if (wantC !== gotC) problems.push(`${name}: header ${wantC}, binding prototype ${gotC}`);
    h.params.forEach((param, i) => {
      const arg = info.arguments[i];
      if (!arg) return;
      const dir = expectedDirection(h.params, i, header);
      if (arg.direction !== dir) {
        problems.push(`${name}: parameter ${i} (${param.name}) must be passed as ${dir}, koffi has ${arg.direction}`);
      }
    });
    // Named types used in the signature must be the binding's own (same koffi type).
    for (const t of [info.result, ...info.arguments.map((a) => a.type)]) {
      const base = koffiType(t).base;
      if ((base in header.enums || base in header.structs) && !(base in TYPES)) {
        problems.push(`${name}: uses ${base}, which the binding does not declare in TYPES`);
      }
    }
  }

  // ---- Types: the same set of enums, structs and opaque types.
  const headerTypes = new Set([...Object.keys(header.enums), ...Object.keys(header.structs), ...header.opaque]);
  for (const name of headerTypes) if (!(name in TYPES)) problems.push(`type ${name}: in the header, not declared`);
  for (const name of Object.keys(TYPES)) if (!headerTypes.has(name)) problems.push(`type ${name}: declared, not in the header`);

  // ---- Enums: same enumerators, same values.
  for (const [name, values] of Object.entries(header.enums)) {
    const t = TYPES[name];
    if (!t) continue;
    const want = JSON.stringify(Object.entries(values));
    const got = JSON.stringify(Object.entries(t.values || {}));
    if (want !== got) problems.push(`enum ${name}: header ${want}, koffi ${got}`);
    // A fixed-size enum: its typedef'd integer type is koffi's storage (koffi keeps an
    // enumeration without negative values in an `unsigned int`, a uint32_t on LP64 Linux).
    const ctype = header.enumTypes[name];
    const storage = { uint32_t: 'UInt32', int32_t: 'Int32' }[ctype];
    if (!ctype) problems.push(`enum ${name}: no fixed-size typedef in the header (an enum's size is the compiler's choice)`);
    else if (t.primitive !== storage || t.size !== SCALARS[ctype][0]) {
      problems.push(`enum ${name}: header ${ctype}, koffi stores it as ${t.primitive} in ${t.size} bytes`);
    }
  }

  // ---- Opaque types.
  for (const name of header.opaque) {
    const t = TYPES[name];
    if (t && t.primitive !== 'Void') problems.push(`type ${name}: opaque in the header, koffi ${t.primitive}`);
  }

  // ---- Structs: field names, order, types (pointers and nested structs too), array lengths,
  // offsets, size and alignment.
  for (const [name, fields] of Object.entries(header.structs)) {
    const t = TYPES[name];
    if (!t) continue;
    if (t.primitive !== 'Record') {
      problems.push(`struct ${name}: koffi type is ${t.primitive}`);
      continue;
    }
    if (t !== koffi.type(name)) problems.push(`struct ${name}: koffi resolves the name to another type`);
    const members = Object.values(t.members);
    const wantNames = fields.map((f) => f.name).join(', ');
    const gotNames = members.map((m) => m.name).join(', ');
    if (wantNames !== gotNames) {
      problems.push(`struct ${name}: header fields (${wantNames}), koffi fields (${gotNames})`);
      continue;
    }
    const { offsets, size, align } = layout(fields, header);
    fields.forEach((f, i) => {
      const m = members[i];
      let mt = m.type;
      let length;
      if (mt.primitive === 'Array') {
        length = mt.length;
        mt = mt.ref;
      }
      const want = `${bareTypeString(f.type)}${f.length !== undefined ? `[${f.length}]` : ''}`;
      const got = `${bareTypeString(koffiType(mt))}${length !== undefined ? `[${length}]` : ''}`;
      if (want !== got) problems.push(`struct ${name}.${f.name}: header ${want}, koffi ${got}`);
      // A nested struct must be the binding's own declaration of it (checked above on its own).
      if (mt.primitive === 'Record' && mt !== TYPES[mt.name]) {
        problems.push(`struct ${name}.${f.name}: koffi type ${mt.name} is not the binding's TYPES.${mt.name}`);
      }
      if (offsets[f.name] !== m.offset) {
        problems.push(`struct ${name}.${f.name}: C offset ${offsets[f.name]}, koffi offset ${m.offset}`);
      }
    });
    if (size !== t.size) problems.push(`struct ${name}: C size ${size}, koffi size ${t.size}`);
    if (align !== t.alignment) problems.push(`struct ${name}: C alignment ${align}, koffi alignment ${t.alignment}`);
  }

  // ---- Constants the binding relies on.
  for (const [name, value] of Object.entries(DEFINES)) {
    if (!(name in header.defines)) problems.push(`#define ${name}: used by the binding, not in the header`);
    else if (header.defines[name] !== value) {
      problems.push(`#define ${name}: header ${JSON.stringify(header.defines[name])}, binding ${JSON.stringify(value)}`);
    }
  }
  if (header.defines.TRUNKLINE_VERSION !== HEADER_VERSION) {
    problems.push(`TRUNKLINE_VERSION: header ${header.defines.TRUNKLINE_VERSION}, binding ${HEADER_VERSION}`);
  }
  return problems;
}

module.exports = { parseHeader, parseType, parsePrototype, compare, layout };
