#!/usr/bin/env bash
# Compiles the .NET binding, its tests and examples/dotnet with Mono's C# compiler (mcs) and runs
# them with mono against target/release/libtrunkline.so. Run by scripts/test.sh; needs the Debian
# packages mono-mcs and mono-runtime, and the release library
# (cargo build --release -p trunkline-ffi).
#
# No -define is needed for Mono: the sources use `#if !NET5_0_OR_GREATER` for the one shim
# (`nuint` as an alias of System.UIntPtr), and mcs defines none of the NETx_0_OR_GREATER symbols
# that the .NET 8 SDK defines. See src/Native.cs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${TRUNKLINE_DOTNET_OUT:-$root/target/dotnet-mono}
libdir=${TRUNKLINE_LIB_DIR:-$root/target/release}
[[ -f $libdir/libtrunkline.so ]] || { echo "no $libdir/libtrunkline.so: cargo build --release -p trunkline-ffi" >&2; exit 1; }
mkdir -p "$out"

common=(-nologo -debug -warnaserror+)
echo "-- mcs: Trunkline.dll"
mcs "${common[@]}" -target:library -unsafe -doc:"$out/Trunkline.xml" -out:"$out/Trunkline.dll" "$here"/src/*.cs
echo "-- mcs: Trunkline.Tests.exe"
mcs "${common[@]}" -target:exe -r:"$out/Trunkline.dll" -r:System.Core.dll -out:"$out/Trunkline.Tests.exe" "$here"/tests/*.cs
echo "-- mcs: TrunklineExample.exe"
mcs "${common[@]}" -target:exe -r:"$out/Trunkline.dll" -r:System.Core.dll -out:"$out/TrunklineExample.exe" "$root"/examples/dotnet/*.cs

export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export TRUNKLINE_ROOT="$root"
cd "$root"
echo "-- example: a generated call"
mono --debug "$out/TrunklineExample.exe" --speed 4
echo "-- example: engine/tests/fixtures/twilio_call.jsonl"
mono --debug "$out/TrunklineExample.exe" --speed 4 engine/tests/fixtures/twilio_call.jsonl
echo "-- tests"
# Last, so that its "N passed, M failed" line closes the stage.
mono --debug "$out/Trunkline.Tests.exe"
