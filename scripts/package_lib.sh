#!/usr/bin/env bash
# Builds the libtrunkline that the packages ship and prints the directory holding it
# (libtrunkline.so and libtrunkline.a); progress goes to stderr. Used by the scripts/package_*.sh
# scripts and scripts/test_packages.sh.
#
# By default the host's release build (`cargo build --release -p trunkline-ffi`, target/release):
# its glibc floor is the build machine's (2.34 on the project's Debian 12 machines).
#
# With TRUNKLINE_PACKAGE_GLIBC=2.17 (or another glibc version) the library is linked against that
# glibc's symbol versions instead, so it loads on older distributions:
#   cargo zigbuild --release -p trunkline-ffi --target x86_64-unknown-linux-gnu.2.17
# into target/x86_64-unknown-linux-gnu/release. The tools are pinned and kept under target/:
# cargo-zigbuild installed from crates.io into target/tools, zig from the PyPI package ziglang in
# a venv (target/zig-env). It is not the default because it is slow from cold on the project's
# 2-core machines (measured: about 3.5 min to compile cargo-zigbuild, 1 min for the zig venv, and
# a second full release build of the engine for the other target dir, 4 min of CPU): more than the
# packaging stage may add to a CI run, which starts from an empty target/. Release builds use it.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_ZIGBUILD_VERSION=0.24.0
ZIGLANG_VERSION=0.17.0
TARGET=x86_64-unknown-linux-gnu

glibc=${TRUNKLINE_PACKAGE_GLIBC:-}
if [[ -z $glibc ]]; then
  cargo build --release --locked -q -p trunkline-ffi >&2
  echo "$PWD/target/release"
  exit 0
fi
[[ $glibc =~ ^2\.[0-9]+$ ]] || { echo "TRUNKLINE_PACKAGE_GLIBC=$glibc: want a glibc version such as 2.17" >&2; exit 2; }

tools=target/tools
if [[ "$("$tools/bin/cargo-zigbuild" --version 2>/dev/null)" != "cargo-zigbuild $CARGO_ZIGBUILD_VERSION" ]]; then
  echo "== cargo install cargo-zigbuild $CARGO_ZIGBUILD_VERSION (into $tools)" >&2
  cargo install --locked --quiet --root "$tools" --version "$CARGO_ZIGBUILD_VERSION" cargo-zigbuild >&2
fi
zig_env=$(./scripts/package_venv.sh target/zig-env "ziglang==$ZIGLANG_VERSION")
echo "== cargo zigbuild --release -p trunkline-ffi --target $TARGET.$glibc" >&2
# cargo-zigbuild runs zig as `python3 -m ziglang` when no zig is on PATH: the venv's python3 first.
PATH="$zig_env/bin:$PWD/$tools/bin:$PATH" \
  cargo zigbuild --release --locked -q -p trunkline-ffi --target "$TARGET.$glibc" >&2
echo "$PWD/target/$TARGET/release"
