#!/usr/bin/env bash
# Builds the two npm packages into target/packages/node and prints their paths (main first):
#   trunkline-VERSION.tgz                  the binding (JS, index.d.ts; depends on koffi), whose
#                                          optionalDependencies name the platform package;
#   trunkline-linux-x64-gnu-VERSION.tgz    libtrunkline.so, and beside it libopus.so.0 and its
#                                          license (scripts/package_opus.sh), with os/cpu/libc
#                                          fields, so npm installs it only on Linux x64 with glibc.
# bindings/node/lib/native.js finds the library in the platform package (after TRUNKLINE_LIB).
#
# Usage: scripts/package_node.sh [LIBDIR]
#   LIBDIR holds the libtrunkline.so to ship (default: what scripts/package_lib.sh builds).
#
# The main package is `npm pack` of bindings/node (its `files`), with two changes made to the
# packed package.json only: the optionalDependencies entry is added (in bindings/node it would
# put a package that is not on the registry into the lockfile that `npm ci` installs from), and
# `private` is dropped (it guards bindings/node itself against a publish without them). The
# platform package is bindings/node/npm/linux-x64-gnu plus the library.
set -euo pipefail
cd "$(dirname "$0")/.."

lib_dir=${1:-$(./scripts/package_lib.sh)}
lib=$lib_dir/libtrunkline.so
[[ -f $lib ]] || { echo "no $lib" >&2; exit 1; }
out=$PWD/target/packages/node
platform=linux-x64-gnu
rm -rf "$out"
mkdir -p "$out/stage"

version=$(node -p 'require("./bindings/node/package.json").version')
platform_name=$(node -p "require('./bindings/node/npm/$platform/package.json').name")
platform_version=$(node -p "require('./bindings/node/npm/$platform/package.json').version")
[[ $platform_version == "$version" ]] ||
  { echo "bindings/node/npm/$platform is version $platform_version, bindings/node $version" >&2; exit 1; }

echo "== npm pack: $platform_name" >&2
cp -r "bindings/node/npm/$platform" "$out/stage/$platform"
cp "$lib" "$out/stage/$platform/libtrunkline.so"
./scripts/package_opus.sh "$lib" "$out/stage/$platform" >/dev/null
platform_tgz=$(cd "$out/stage/$platform" && npm pack --silent --pack-destination "$out")

echo "== npm pack: trunkline" >&2
first=$(cd bindings/node && npm pack --silent --pack-destination "$out/stage")
tar -xzf "$out/stage/$first" -C "$out/stage" # into $out/stage/package
rm "$out/stage/$first"
PLATFORM_NAME=$platform_name node -e '
  const fs = require("node:fs");
  const file = process.argv[1];
  const pkg = JSON.parse(fs.readFileSync(file, "utf8"));
  delete pkg.private;
  pkg.optionalDependencies = { ...pkg.optionalDependencies, [process.env.PLATFORM_NAME]: pkg.version };
  fs.writeFileSync(file, JSON.stringify(pkg, null, 2) + "\n");
' "$out/stage/package/package.json"
main_tgz=$(cd "$out/stage/package" && npm pack --silent --pack-destination "$out")
echo "$out/$main_tgz"
echo "$out/$platform_tgz"
