#!/usr/bin/env bash
# Builds the Python wheel: trunkline-VERSION-py3-none-manylinux_X_Y_x86_64.whl in
# target/packages/python, holding libtrunkline.so and beside it libopus.so.0 and its license
# (scripts/package_opus.sh), so that installing it needs no Rust and no libopus. Prints the
# wheel's path. X_Y, the glibc floor, is the newest GLIBC_ symbol version the library needs
# (scripts/test_packages.sh checks it with auditwheel).
#
# Usage: scripts/package_python.sh [LIBDIR]
#   LIBDIR holds the libtrunkline.so to ship (default: what scripts/package_lib.sh builds).
#
# The wheel is built by bindings/python/setup.py from a copy of bindings/python (so no stale
# build/ folder of the source tree leaks into it), with TRUNKLINE_PREBUILT_LIB (no cargo run) and
# TRUNKLINE_WHEEL_PLAT, using a pinned setuptools in a venv under target/pkg-env.
set -euo pipefail
cd "$(dirname "$0")/.."

lib_dir=${1:-$(./scripts/package_lib.sh)}
lib=$(cd "$lib_dir" && pwd)/libtrunkline.so
[[ -f $lib ]] || { echo "no $lib" >&2; exit 1; }
out=target/packages/python
pkg_env=$(./scripts/package_venv.sh target/pkg-env \
  setuptools==84.2.1 packaging==26.4 auditwheel==6.8.2 pyelftools==0.33)

# What goes beside the library, whose own glibc needs count too.
rm -rf "$out/bundle"
./scripts/package_opus.sh "$lib" "$out/bundle" >/dev/null
# The glibc floor: the highest GLIBC_x.y among the versioned symbols the libraries import.
floor=$(objdump -T "$lib" "$out/bundle/libopus.so.0" | grep -oE '\(GLIBC_[0-9]+\.[0-9]+(\.[0-9]+)?\)' | tr -d '()' | sed 's/^GLIBC_//' |
  sort -V | tail -n 1)
[[ $floor =~ ^2\.([0-9]+) ]] || { echo "no GLIBC symbol version found in $lib" >&2; exit 1; }
plat="manylinux_2_${BASH_REMATCH[1]}_x86_64"

src=$out/src
rm -rf "$src" "$out"/*.whl
mkdir -p "$src"
cp -r bindings/python/pyproject.toml bindings/python/setup.py bindings/python/trunkline "$src/"
find "$src" -name __pycache__ -prune -exec rm -rf {} +
rm -f "$src/trunkline/libtrunkline.so"
echo "== python wheel ($plat)" >&2
TRUNKLINE_SOURCE_DIR=$PWD TRUNKLINE_PREBUILT_LIB=$lib TRUNKLINE_WHEEL_PLAT=$plat TRUNKLINE_BUNDLE_DIR=$PWD/$out/bundle \
  "$pkg_env/bin/pip" wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w "$out" "$src" >&2
wheels=("$out"/*.whl)
((${#wheels[@]} == 1)) || { echo "expected one wheel in $out, found: ${wheels[*]}" >&2; exit 1; }
echo "$PWD/${wheels[0]}"
