#!/usr/bin/env bash
# The packaging stage of the test command: builds every installable package from the library that
# scripts/package_lib.sh gives (the release build; TRUNKLINE_PACKAGE_GLIBC=2.17 builds it for an
# old glibc with cargo-zigbuild instead), installs each one as a user would, away from the
# checkout, and runs a call through it. docs/packaging.md describes the packages.
#
#   libopus libtrunkline.so needs libopus.so.0 and has a RUNPATH of $ORIGIN; the wheel, the npm
#           platform package and the .nupkg ship the system's libopus.so.0 beside it (identical)
#           with its license, and each package's call checks, in /proc/self/maps, that the
#           libopus its process loaded is the packaged copy (the system has one too: the
#           RUNPATH must win). The C prefix relies on the system's (Requires.private: opus).
#
#   Python  the wheel is tagged py3-none-manylinux_X_Y_x86_64, where auditwheel agrees X_Y is the
#           library's glibc floor; its version is the Cargo workspace's; it holds the library; it
#           installs into a fresh venv with no cargo on PATH and runs a call.
#   Node    `npm pack` gives trunkline (JS, index.d.ts, koffi, optionalDependencies on the platform
#           package) and trunkline-linux-x64-gnu (the library alone, os/cpu/libc fields); both
#           install with `npm install --offline` into an empty project (koffi's tarballs packed
#           from bindings/node/node_modules, an empty npm cache: no registry involved);
#           require('trunkline') runs a call with the platform package's library; TRUNKLINE_LIB
#           still wins; the declarations type-check from the installed package.
#   .NET    the .nupkg (no .NET SDK here: built from bindings/dotnet/Trunkline.nuspec with mcs)
#           has the Cargo version, runtimes/linux-x64/native/libtrunkline.so identical to the
#           library, lib/net45/Trunkline.dll; a program compiled against the packaged assembly
#           runs a call on the packaged library (mono); Trunkline.csproj packs the same path.
#   C       scripts/install_c.sh installs into a prefix; README.md's C example builds with
#           `pkg-config --cflags --libs trunkline`, shared and static, and both run.
#
# The call is the same in Python, Node and .NET: Twilio's connected and start messages, five 20 ms
# media messages of a 440 Hz tone (µ-law), and stop. Each prints the events, the number of caller
# samples at 16 kHz and the RMS of the middle of them; the expectations come from the generator
# below (G.711 written out here): exactly 100 ms of audio, the tone's level within 15 %.
#
# Tools and downloads are kept under target/ (venvs in target/pkg-env and target/zig-env,
# cargo-zigbuild in target/tools), so a second run is fast. Closes with
# "packages: N passed, M failed" (exit 1 if M > 0).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
stage_start=$SECONDS

for tool in node npm mcs mono pkg-config objdump python3 unzip; do
  command -v "$tool" >/dev/null || { echo "$tool is required (scripts/test.sh installs the packages)" >&2; exit 1; }
done

work=$PWD/target/packages/check
rm -rf "$work"
mkdir -p "$work"

# shellcheck source=scripts/checks.sh
source scripts/checks.sh

# The version every package must carry, as cargo reports it (not parsed from Cargo.toml here, so
# setup.py's own reading of it is checked against cargo's).
version=$(cargo metadata --no-deps --format-version 1 --locked |
  python3 -c 'import json, sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "trunkline-ffi"))')
echo "== packages of trunkline $version"

lib_dir=$(./scripts/package_lib.sh)
lib=$lib_dir/libtrunkline.so
# The libopus the packages must carry, and its license: what the library resolves to here.
./scripts/package_opus.sh "$lib" "$work/opus" >/dev/null
opus=$work/opus/libopus.so.0
opus_license=$work/opus/LICENSE-libopus.txt
# The glibc floor counts the bundled libopus's needs too (auditwheel reads every library in the wheel).
floor=$(objdump -T "$lib" "$opus" | grep -oE '\(GLIBC_[0-9.]+\)' | tr -d '()' | sed 's/^GLIBC_//' | sort -V | tail -n 1)
echo "   library: $lib ($(stat -c %s "$lib") bytes, newest glibc symbol version $floor; $((SECONDS - stage_start)) s)"
echo "   libopus: $(readlink -f "$(ldd "$lib" | awk '$1 == "libopus.so.0" { print $3 }')")"

# check_opus_loaded MAPS DIR: the process whose /proc/self/maps is MAPS loaded libopus.so.0 from DIR
# (the package), and no other libopus.
check_opus_loaded() {
  local loaded
  loaded=$(awk '$6 ~ /\/libopus\.so/ { print $6 }' <<<"$1" | sort -u)
  [[ -n $loaded ]] || { echo "no libopus in the process's maps"; return 1; }
  [[ $loaded == "$(readlink -f "$2")/libopus.so.0" ]] || { echo "libopus loaded from $loaded, want $2/libopus.so.0"; return 1; }
  echo "libopus loaded from the package: $loaded"
}

library_runpath() {
  # shellcheck disable=SC2016 # the literal $ORIGIN
  readelf -d "$lib" | grep -q 'Library runpath: \[\$ORIGIN\]' || { readelf -d "$lib" | grep -E 'RPATH|RUNPATH|NEEDED'; return 1; }
  readelf -d "$lib" | grep -q 'NEEDED.*\[libopus\.so\.0\]'
}
check "libopus: libtrunkline.so needs libopus.so.0 and looks beside itself first (RUNPATH \$ORIGIN)" library_runpath

# ---- The call, as JSON lines, and what it must give.
python3 - "$work/call.jsonl" "$work/expected_rms" <<'PY'
import base64, json, math, sys

def ulaw_encode(s):  # G.711 µ-law, s in [-32768, 32767]
    sign = 0x80 if s < 0 else 0
    s = min(abs(s), 32635) + 0x84
    exponent = min(max(s.bit_length() - 8, 0), 7)
    return ~(sign | exponent << 4 | (s >> (exponent + 3)) & 0x0F) & 0xFF

def ulaw_decode(code):
    u = ~code & 0xFF
    v = ((((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 7)) - 0x84
    return -v if u & 0x80 else v

sid, call = "MZ18ad3ab5a668481ce02b83e7395059f0", "CA4c5f6b7a8e9d0c1b2a3f4e5d6c7b8a9f"
codes = bytes(ulaw_encode(round(8000 * math.sin(2 * math.pi * 440 * i / 8000))) for i in range(800))
msgs = [
    {"event": "connected", "protocol": "Call", "version": "1.0.0"},
    {"event": "start", "sequenceNumber": "1", "streamSid": sid,
     "start": {"accountSid": "AC0123456789abcdef0123456789abcdef", "streamSid": sid, "callSid": call,
               "tracks": ["inbound"], "customParameters": {},
               "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}},
]
for i in range(5):
    msgs.append({"event": "media", "sequenceNumber": str(i + 2), "streamSid": sid,
                 "media": {"track": "inbound", "chunk": str(i + 1), "timestamp": str(i * 20),
                           "payload": base64.b64encode(codes[i * 160:(i + 1) * 160]).decode()}})
msgs.append({"event": "stop", "sequenceNumber": "7", "streamSid": sid,
             "stop": {"accountSid": "AC0123456789abcdef0123456789abcdef", "callSid": call}})
with open(sys.argv[1], "w") as f:
    f.writelines(json.dumps(m) + "\n" for m in msgs)
ref = [ulaw_decode(c) for c in codes[200:600]]  # the middle 50 ms, as the callers measure at 16 kHz
with open(sys.argv[2], "w") as f:
    f.write(f"{math.sqrt(sum(x * x for x in ref) / len(ref)):.0f}\n")
PY
expected_rms=$(cat "$work/expected_rms")
# check_call OUTPUT: the line a call printed is what the call must give.
check_call() {
  python3 - "$1" "$expected_rms" <<'PY'
import re, sys
line, want_rms = sys.argv[1].strip().splitlines()[-1], float(sys.argv[2])
m = re.fullmatch(r"events=(\S+) samples=(\d+) rms=(\d+)", line)
assert m, f"unexpected output: {line!r}"
events, samples, rms = m.group(1).split(","), int(m.group(2)), float(m.group(3))
assert events[:2] == ["connected", "started"] and events[-1] == "stopped", f"events {events}"
assert samples == 5 * 20 * 16, f"{samples} samples at 16 kHz, want 1600 (100 ms)"
assert abs(rms - want_rms) <= 0.15 * want_rms, f"rms {rms}, want {want_rms} within 15 %"
print(f"call ok: {line}")
PY
}

# ============================================================================ Python
echo "== Python wheel (at $((SECONDS - stage_start)) s)"
wheel=""
if wheel=$(./scripts/package_python.sh "$lib_dir" 2>"$work/wheel.log" | tail -n 1) && [[ -f $wheel ]]; then
  pass "python: the wheel builds ($(basename "$wheel"))"
else
  fail "python: the wheel builds"
  sed 's/^/    /' "$work/wheel.log"
fi
pkg_env=$PWD/target/pkg-env

wheel_tag() {
  local want="manylinux_${floor/./_}_x86_64"
  [[ $(basename "$wheel") == "trunkline-$version-py3-none-$want.whl" ]] ||
    { echo "wheel $(basename "$wheel"), want trunkline-$version-py3-none-$want.whl"; return 1; }
  local shown
  shown=$("$pkg_env/bin/auditwheel" show "$wheel") || return 1
  echo "$shown"
  # auditwheel wraps its sentence: join the lines before matching.
  tr '\n' ' ' <<<"$shown" | grep -q "is consistent with the following platform tag: \"$want\"" ||
    { echo "auditwheel does not find the wheel consistent with $want"; return 1; }
}
check "python: tagged py3-none-manylinux_${floor/./_}_x86_64, and auditwheel show agrees" wheel_tag

wheel_contents() {
  local meta
  meta=$(unzip -p "$wheel" "trunkline-$version.dist-info/METADATA") || return 1
  grep -qx "Version: $version" <<<"$meta" || { echo "METADATA: $(grep '^Version' <<<"$meta")"; return 1; }
  unzip -p "$wheel" "trunkline-$version.dist-info/WHEEL" | grep -qx 'Root-Is-Purelib: false' || return 1
  unzip -p "$wheel" trunkline/libtrunkline.so | cmp - "$lib" || return 1
  unzip -p "$wheel" trunkline/libopus.so.0 | cmp - "$opus" || return 1
  unzip -p "$wheel" trunkline/LICENSE-libopus.txt | cmp - "$opus_license" || return 1
  # Every module of the checkout's package, subpackages included, and the py.typed marker.
  local missing
  missing=$(comm -23 <(cd bindings/python && find trunkline \( -name '*.py' -o -name py.typed \) | sort) \
    <(unzip -Z1 "$wheel" | sort))
  [[ -z $missing ]] || { echo "not in the wheel: $missing"; return 1; }
}
check "python: version $version, every module, the library and libopus.so.0 beside it (identical) with its license, installed to platlib" wheel_contents

wheel_call() {
  local venv=$work/py-venv
  python3 -m venv "$venv" || return 1
  # No cargo, no rustc, no network: what a user of the wheel has.
  local clean=(env -u TRUNKLINE_LIB PATH="$venv/bin:/usr/bin:/bin")
  if "${clean[@]}" bash -c 'command -v cargo'; then echo "cargo is on the restricted PATH"; return 1; fi
  "${clean[@]}" pip install -q --disable-pip-version-check --no-index "$wheel" || return 1
  local out
  out=$(cd "$work" && "${clean[@]}" python - "$work/call.jsonl" "$venv" "$version" <<'PY'
import array, math, os, sys
import trunkline
from trunkline import _ffi

venv, version = os.path.realpath(sys.argv[2]), sys.argv[3]
lib = os.path.realpath(_ffi._library_path())
assert lib.startswith(venv + os.sep), f"library {lib} is not the installed package's"
assert trunkline.__version__ == version, f"library version {trunkline.__version__}, want {version}"
kinds, audio = [], bytearray()
with trunkline.Engine(workers=0) as engine, engine.session(agent_rate=16000) as call:
    for line in open(sys.argv[1]):
        call.push(line.strip())
        audio += call.read_audio()
        kinds += [e.kind for e in call.events()]
pcm = array.array("h", audio)
mid = pcm[400:1200]
with open("/proc/self/maps") as maps:
    print(maps.read())
print(f"events={','.join(kinds)} samples={len(pcm)} rms={math.sqrt(sum(x * x for x in mid) / len(mid)):.0f}")
PY
  ) || return 1
  check_call "$out" || return 1
  local package=("$venv"/lib/python3*/site-packages/trunkline)
  check_opus_loaded "$out" "${package[0]}"
}
check "python: installs into a fresh venv with no cargo on PATH and runs a call on the packaged library and libopus" wheel_call

# ============================================================================ Node
echo "== npm packages (at $((SECONDS - stage_start)) s)"
node_tgz=()
if mapfile -t node_tgz < <(./scripts/package_node.sh "$lib_dir" 2>"$work/npm.log") && ((${#node_tgz[@]} == 2)); then
  pass "node: npm pack gives $(basename "${node_tgz[0]}") and $(basename "${node_tgz[1]}")"
else
  fail "node: npm pack gives the main and the platform package"
  sed 's/^/    /' "$work/npm.log"
  node_tgz=(/nonexistent /nonexistent)
fi
main_tgz=${node_tgz[0]}
platform_tgz=${node_tgz[1]}

npm_manifests() {
  VERSION=$version node -e '
    const { execFileSync } = require("node:child_process");
    const assert = require("node:assert/strict");
    const version = process.env.VERSION;
    const list = (tgz) => execFileSync("tar", ["-tzf", tgz], { encoding: "utf8" }).trim().split("\n").sort();
    const manifest = (tgz) => JSON.parse(execFileSync("tar", ["-xzOf", tgz, "package/package.json"], { encoding: "utf8" }));
    const [mainTgz, platformTgz] = process.argv.slice(1);
    const main = manifest(mainTgz);
    const platform = manifest(platformTgz);
    assert.equal(require("./bindings/node/package.json").version, version, "bindings/node/package.json version");
    assert.equal(main.name, "trunkline");
    assert.equal(main.version, version);
    assert.equal(main.types, "index.d.ts");
    assert.equal(main.private, undefined, "the packed package is publishable");
    assert.ok(main.dependencies.koffi, "depends on koffi");
    assert.deepEqual(main.optionalDependencies, { [platform.name]: version });
    assert.deepEqual(list(mainTgz), ["package/index.d.ts", "package/index.js", "package/lib/native.js", "package/package.json"]);
    assert.equal(platform.name, "trunkline-linux-x64-gnu");
    assert.equal(platform.version, version);
    assert.deepEqual([platform.os, platform.cpu, platform.libc], [["linux"], ["x64"], ["glibc"]]);
    assert.deepEqual(list(platformTgz), ["package/LICENSE-libopus.txt", "package/README.md", "package/libopus.so.0", "package/libtrunkline.so", "package/package.json"]);
  ' "$main_tgz" "$platform_tgz" || return 1
  tar -xzOf "$platform_tgz" package/libtrunkline.so | cmp - "$lib" || return 1
  tar -xzOf "$platform_tgz" package/libopus.so.0 | cmp - "$opus" || return 1
  tar -xzOf "$platform_tgz" package/LICENSE-libopus.txt | cmp - "$opus_license"
}
check "node: versions $version; main: JS, index.d.ts, koffi, optional platform package; platform: the library and libopus.so.0 (identical) with its license, os/cpu/libc" \
  npm_manifests

# koffi comes from bindings/node/node_modules (npm ci from its lockfile), packed as tarballs: with
# those and an empty npm cache, `npm install --offline` can reach no registry at all.
if [[ ! -f bindings/node/node_modules/.package-lock.json ]]; then
  echo "== npm ci (bindings/node): koffi for the install check"
  (cd bindings/node && npm ci --no-audit --no-fund --loglevel=error)
fi
npm_project=$work/npm-project
npm_install() {
  local deps=$work/npm-deps
  mkdir -p "$deps" "$npm_project"
  local koffi_version
  koffi_version=$(node -p 'require("./bindings/node/package.json").dependencies.koffi')
  local dir
  for dir in bindings/node/node_modules/koffi bindings/node/node_modules/@koromix/koffi-linux-x64; do
    [[ $(node -p "require('./$dir/package.json').version") == "$koffi_version" ]] ||
      { echo "$dir is not koffi $koffi_version: npm ci in bindings/node"; return 1; }
    (cd "$dir" && npm pack --silent --pack-destination "$deps") || return 1
  done
  echo '{ "name": "trunkline-install-check", "version": "1.0.0", "private": true }' >"$npm_project/package.json"
  (cd "$npm_project" && npm install --offline --cache "$work/npm-cache" --no-audit --no-fund --loglevel=error \
    "$main_tgz" "$platform_tgz" "$deps"/*.tgz) || return 1
  [[ -f $npm_project/node_modules/trunkline-linux-x64-gnu/libtrunkline.so && -f $npm_project/node_modules/trunkline-linux-x64-gnu/libopus.so.0 ]]
}
check "node: both tarballs install offline into an empty project (koffi from bindings/node/node_modules)" npm_install

node_call() {
  local out
  out=$(cd "$npm_project" && env -u TRUNKLINE_LIB node - "$work/call.jsonl" "$version" <<'JS'
const fs = require('node:fs');
const path = require('node:path');
const trunkline = require('trunkline');
const [file, version] = process.argv.slice(2);
const want = fs.realpathSync(path.join('node_modules', 'trunkline-linux-x64-gnu', 'libtrunkline.so'));
if (fs.realpathSync(trunkline.libraryPath) !== want) throw new Error(`library ${trunkline.libraryPath}, want ${want}`);
if (trunkline.version !== version) throw new Error(`library version ${trunkline.version}, want ${version}`);
const engine = new trunkline.Engine({ workers: 0 });
const session = engine.session({ agentRate: 16000 });
const kinds = [];
const chunks = [];
for (const line of fs.readFileSync(file, 'utf8').trim().split('\n')) {
  session.push(line);
  chunks.push(session.readAudio());
  kinds.push(...session.events().map((e) => e.kind));
}
session.close();
engine.close();
const buf = Buffer.concat(chunks);
const pcm = new Int16Array(buf.buffer, buf.byteOffset, buf.length / 2);
let sum = 0;
for (let i = 400; i < 1200; i++) sum += pcm[i] * pcm[i];
console.log(fs.readFileSync('/proc/self/maps', 'utf8'));
console.log(`events=${kinds.join(',')} samples=${pcm.length} rms=${Math.round(Math.sqrt(sum / 800))}`);
JS
  ) || return 1
  check_call "$out" || return 1
  check_opus_loaded "$out" "$npm_project/node_modules/trunkline-linux-x64-gnu"
}
check "node: require('trunkline') runs a call on the platform package's library and libopus" node_call

node_override() {
  local copy=$work/override/libtrunkline.so
  mkdir -p "$(dirname "$copy")"
  cp "$lib" "$copy"
  # shellcheck disable=SC2016 # JavaScript, not shell
  (cd "$npm_project" && TRUNKLINE_LIB=$copy node -e '
    const fs = require("node:fs");
    const got = require("trunkline").libraryPath;
    if (fs.realpathSync(got) !== fs.realpathSync(process.env.TRUNKLINE_LIB)) throw new Error(`loaded ${got}`);') || return 1
  # And a wrong TRUNKLINE_LIB is an error naming it, not a silent fallback to the platform package.
  local err
  if err=$(cd "$npm_project" && TRUNKLINE_LIB=$work/override/missing.so node -e 'require("trunkline")' 2>&1); then
    echo "loaded with TRUNKLINE_LIB pointing at a missing file"
    return 1
  fi
  grep -q "missing.so" <<<"$err" || { echo "$err"; return 1; }
}
check "node: TRUNKLINE_LIB overrides the platform package" node_override

node_types() {
  cat >"$npm_project/usage.ts" <<'TS'
import { Engine, Session } from 'trunkline';
const engine: Engine = new Engine({ workers: 0 });
const session: Session = engine.session({ agentRate: 16000 });
const pcm: Buffer = session.readAudio();
const kinds: string[] = session.events().map((e) => e.kind);
console.log(pcm.length, kinds.length);
TS
  (cd "$npm_project" && node "$repo/bindings/node/node_modules/typescript/bin/tsc" --strict --noEmit \
    --skipLibCheck --target es2022 --module commonjs --moduleResolution node --types node \
    --typeRoots "$repo/bindings/node/node_modules/@types" usage.ts)
}
check "node: the installed package's index.d.ts types a usage file (tsc --strict)" node_types

# ============================================================================ .NET
echo "== NuGet package (at $((SECONDS - stage_start)) s)"
nupkg=""
if nupkg=$(./scripts/package_dotnet.sh "$lib_dir" 2>"$work/nupkg.log" | tail -n 1) && [[ -f $nupkg ]]; then
  pass "dotnet: the .nupkg builds ($(basename "$nupkg"))"
else
  fail "dotnet: the .nupkg builds"
  sed 's/^/    /' "$work/nupkg.log"
fi
nupkg_dir=$work/nupkg
nupkg_contents() {
  mkdir -p "$nupkg_dir" && unzip -q -o "$nupkg" -d "$nupkg_dir" || return 1
  python3 - "$nupkg_dir" "$version" bindings/dotnet/Trunkline.csproj <<'PY' || return 1
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

root, version, csproj = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
ns = {"n": "http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd"}
nuspecs = list(root.glob("*.nuspec"))
assert [p.name for p in nuspecs] == ["Trunkline.nuspec"], nuspecs
meta = ET.parse(nuspecs[0]).getroot().find("n:metadata", ns)
assert meta.findtext("n:id", namespaces=ns) == "Trunkline"
assert meta.findtext("n:version", namespaces=ns) == version, meta.findtext("n:version", namespaces=ns)
files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
assert files == ["LICENSE-libopus.txt", "Trunkline.nuspec", "[Content_Types].xml", "_rels/.rels",
                 "lib/net45/Trunkline.dll", "lib/net45/Trunkline.xml", "runtimes/linux-x64/native/libopus.so.0",
                 "runtimes/linux-x64/native/libtrunkline.so"], files
assert (root / "lib/net45/Trunkline.dll").read_bytes()[:2] == b"MZ"
# The SDK project packs the same layout, at the same version (it is XML MSBuild must parse).
proj = ET.parse(csproj).getroot()
assert proj.findtext("PropertyGroup/Version") == version, proj.findtext("PropertyGroup/Version")
packed = [n.get("PackagePath") for n in proj.iter("None") if n.get("Pack") == "true"]
assert packed == ["runtimes/linux-x64/native/libtrunkline.so", "runtimes/linux-x64/native/libopus.so.0",
                  "LICENSE-libopus.txt"], packed
PY
  cmp "$nupkg_dir/runtimes/linux-x64/native/libtrunkline.so" "$lib" &&
    cmp "$nupkg_dir/runtimes/linux-x64/native/libopus.so.0" "$opus" &&
    cmp "$nupkg_dir/LICENSE-libopus.txt" "$opus_license"
}
check "dotnet: nuspec Trunkline $version; lib/net45/Trunkline.dll; runtimes/linux-x64/native/ libtrunkline.so and libopus.so.0 (identical), its license; csproj packs the same" \
  nupkg_contents

dotnet_call() {
  cat >"$work/PackageCheck.cs" <<'CS'
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using Trunkline;

static class PackageCheck
{
    static int Main(string[] args)
    {
        var kinds = new List<string>();
        var pcm = new List<short>();
        using (var engine = new Engine(0))
        using (var session = engine.OpenSession(new SessionOptions { AgentRate = 16000 }))
        {
            foreach (var line in File.ReadAllLines(args[0]))
            {
                session.Push(line);
                pcm.AddRange(session.ReadAudio());
                // SpeechStarted -> speech_started, as the other bindings name the kinds.
                kinds.AddRange(session.Events().Select(e => Regex.Replace(e.Kind.ToString(), "(?<!^)([A-Z])", "_$1").ToLowerInvariant()));
            }
        }
        double sum = 0;
        for (int i = 400; i < 1200 && i < pcm.Count; i++) sum += (double)pcm[i] * pcm[i];
        if (Library.Version != args[1]) { Console.WriteLine("library version " + Library.Version); return 1; }
        Console.WriteLine(File.ReadAllText("/proc/self/maps"));
        Console.WriteLine("events=" + string.Join(",", kinds) + " samples=" + pcm.Count + " rms=" + Math.Round(Math.Sqrt(sum / 800)));
        return 0;
    }
}
CS
  mcs -nologo -warnaserror+ -target:exe -r:"$nupkg_dir/lib/net45/Trunkline.dll" -r:System.Core.dll \
    -out:"$nupkg_dir/lib/net45/PackageCheck.exe" "$work/PackageCheck.cs" || return 1
  local out
  # The packaged library only: the loader finds it through the package's runtimes folder.
  out=$(LD_LIBRARY_PATH=$nupkg_dir/runtimes/linux-x64/native mono "$nupkg_dir/lib/net45/PackageCheck.exe" \
    "$work/call.jsonl" "$version") || { echo "$out"; return 1; }
  check_call "$out" || return 1
  check_opus_loaded "$out" "$nupkg_dir/runtimes/linux-x64/native"
}
check "dotnet: a program built against the packaged assembly runs a call on the packaged library and libopus (mono)" dotnet_call

# ============================================================================ C
echo "== C: install to a prefix, pkg-config (at $((SECONDS - stage_start)) s)"
prefix=$work/c-prefix
c_install() {
  ./scripts/install_c.sh "$prefix" "$lib_dir" || return 1
  local f
  for f in include/trunkline.h lib/libtrunkline.so lib/libtrunkline.a lib/pkgconfig/trunkline.pc; do
    [[ -f $prefix/$f ]] || { echo "no $prefix/$f"; return 1; }
  done
  cmp "$prefix/include/trunkline.h" include/trunkline.h && cmp "$prefix/lib/libtrunkline.so" "$lib" &&
    cmp "$prefix/lib/libtrunkline.a" "$lib_dir/libtrunkline.a" || return 1
  local got
  got=$(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --modversion trunkline) || return 1
  [[ $got == "$version" ]] || { echo "pkg-config --modversion: $got, want $version"; return 1; }
  # The system's libopus, through its own .pc: a static link gets its flags.
  grep -qx 'Requires.private: opus' "$prefix/lib/pkgconfig/trunkline.pc" || { echo "trunkline.pc does not require opus"; return 1; }
  PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --static --libs trunkline | grep -qw -- -lopus ||
    { echo "pkg-config --static --libs trunkline has no -lopus"; return 1; }
}
check "c: install_c.sh installs the header, both libraries and trunkline.pc (version $version)" c_install

# The first ```c block of README.md's "C ABI" section (as scripts/test_c.sh takes it).
awk '/^## /{in_section = ($0 == "## C ABI")} in_section && /^```c$/{code = 1; next} code && /^```$/{exit} code' \
  README.md >"$work/readme_example.c"
CFLAGS=(-std=c11 -Wall -Wextra -Werror -pedantic)
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
c_shared() {
  test -s "$work/readme_example.c" || return 1
  # shellcheck disable=SC2046 # pkg-config's output is a list of flags
  cc "${CFLAGS[@]}" "$work/readme_example.c" $(pkg-config --cflags --libs trunkline) -o "$work/readme_shared" || return 1
  readelf -d "$work/readme_shared" | grep -q 'NEEDED.*\[libtrunkline.so\]' || { echo "not linked to libtrunkline.so"; return 1; }
  LD_LIBRARY_PATH=$prefix/lib "$work/readme_shared" | grep -q 'event 1'
}
check "c: README's C example, shared: pkg-config --cflags --libs trunkline, runs" c_shared
c_static() {
  test -s "$work/readme_example.c" || return 1
  local flags
  flags=$(pkg-config --cflags --static --libs trunkline) || return 1
  # The archive by name: -ltrunkline alone would pick the .so installed beside it.
  # shellcheck disable=SC2086 # a list of flags
  cc "${CFLAGS[@]}" "$work/readme_example.c" ${flags/-ltrunkline/-l:libtrunkline.a} -o "$work/readme_static" || return 1
  if readelf -d "$work/readme_static" | grep -q 'libtrunkline'; then echo "still needs libtrunkline.so"; return 1; fi
  env -u LD_LIBRARY_PATH "$work/readme_static" | grep -q 'event 1'
}
check "c: README's C example, static: pkg-config --static, needs no libtrunkline.so, runs" c_static

echo "== packages: glibc floor $floor (manylinux_${floor/./_}_x86_64); stage $((SECONDS - stage_start)) s"
echo "packages: $passed passed, $failed failed"
((failed == 0))
