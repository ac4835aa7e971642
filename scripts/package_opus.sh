#!/usr/bin/env bash
# Copies what every package ships beside libtrunkline.so into DEST:
#   libopus.so.0          the libopus that LIB is linked against, as the loader resolves it (ldd);
#   LICENSE-libopus.txt   its license (BSD-3-Clause), the copyright file of the distribution
#                         package that installed it (Debian: /usr/share/doc/libopus0/copyright).
# libtrunkline.so needs libopus.so.0 and is linked with a RUNPATH of $ORIGIN (ffi/build.rs), so
# the loader takes the copy beside it before any system one: a package works on a machine without
# libopus. Checks that RUNPATH first. Prints the two files' paths in DEST.
#
# Usage: scripts/package_opus.sh LIB DEST
set -euo pipefail

(($# == 2)) || { echo "usage: $0 LIB DEST" >&2; exit 2; }
lib=$1
dest=$2
[[ -f $lib ]] || { echo "no $lib" >&2; exit 1; }

runpath=$(readelf -d "$lib" | sed -n 's/.*(RUNPATH).*Library runpath: \[\(.*\)\]/\1/p')
# shellcheck disable=SC2016 # the literal $ORIGIN
[[ $runpath == '$ORIGIN' ]] ||
  { echo "$lib: RUNPATH is '$runpath', want \$ORIGIN (set by ffi/build.rs): it would not find a bundled libopus" >&2; exit 1; }

opus=$(ldd "$lib" | awk '$1 == "libopus.so.0" && $2 == "=>" { print $3 }')
[[ -n $opus && -f $opus ]] || { echo "$lib: libopus.so.0 not found by ldd (Debian: apt-get install libopus0)" >&2; exit 1; }
opus=$(readlink -f "$opus")

# The distribution package that owns the file, and its copyright file.
license=""
if owner=$(dpkg -S "$opus" 2>/dev/null); then
  license=/usr/share/doc/${owner%%:*}/copyright
fi
[[ -f $license ]] || license=/usr/share/doc/libopus0/copyright
[[ -f $license ]] || { echo "no license text found for $opus (looked for its package's copyright file)" >&2; exit 1; }

mkdir -p "$dest"
install -m 644 "$opus" "$dest/libopus.so.0"
install -m 644 "$license" "$dest/LICENSE-libopus.txt"
echo "$dest/libopus.so.0"
echo "$dest/LICENSE-libopus.txt"
