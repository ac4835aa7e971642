#!/usr/bin/env bash
# Installs the C ABI into PREFIX:
#   PREFIX/include/trunkline.h
#   PREFIX/lib/libtrunkline.so, PREFIX/lib/libtrunkline.a
#   PREFIX/lib/pkgconfig/trunkline.pc
# so that, with PKG_CONFIG_PATH=PREFIX/lib/pkgconfig (unless pkg-config searches PREFIX already),
#   cc app.c $(pkg-config --cflags --libs trunkline)            # shared
#   cc app.c $(pkg-config --cflags --static --libs trunkline | sed 's/-ltrunkline/-l:libtrunkline.a/')
#                                                               # static (the archive by name, as
#                                                               # the .so sits beside it)
# The library has no soname (cargo gives a cdylib none), so there is no versioned file or link to
# install beside libtrunkline.so.
#
# Why a script rather than cargo-c (`cargo cinstall`), the usual tool: installing cargo-c compiles
# cargo itself, several minutes on the project's 2-core machines (more than the whole packaging
# stage may add to a cold CI run, which starts from an empty target/), and this install is three
# copies and one generated file. The .pc's Libs.private, the system libraries a static link needs,
# are what rustc reports for the static library (--print native-static-libs; cargo replays the
# note when the build is fresh, so it costs nothing on a second run).
#
# libtrunkline.so links the system's libopus.so.0 (Debian: libopus0), which this install relies
# on rather than bundling. The .pc says `Requires.private: opus`, so `pkg-config --static --libs
# trunkline` adds opus's own flags; pkg-config then needs opus.pc (Debian: libopus-dev).
#
# Usage: scripts/install_c.sh PREFIX [LIBDIR]
#   LIBDIR holds libtrunkline.so and libtrunkline.a (default: target/release, built first).
set -euo pipefail
cd "$(dirname "$0")/.."

(($# >= 1 && $# <= 2)) || { echo "usage: $0 PREFIX [LIBDIR]" >&2; exit 2; }
mkdir -p "$1"
prefix=$(cd "$1" && pwd)
if (($# == 2)); then
  lib_dir=$2
else
  cargo build --release --locked -q -p trunkline-ffi
  lib_dir=target/release
fi
for f in libtrunkline.so libtrunkline.a; do
  [[ -f $lib_dir/$f ]] || { echo "no $lib_dir/$f: cargo build --release -p trunkline-ffi" >&2; exit 1; }
done

# The version cargo gives the crate: the workspace's ("path+file:///...#trunkline-ffi@0.1.0").
pkgid=$(cargo pkgid -p trunkline-ffi)
version=${pkgid##*[@#]}
# Same target triple as LIBDIR's library whichever glibc that was linked for, so the same list.
native_libs=$(cargo rustc --release --locked -p trunkline-ffi --crate-type staticlib -- --print native-static-libs 2>&1 |
  sed -n 's/^note: native-static-libs: //p' | tail -n 1)
[[ -n $native_libs ]] || { echo "rustc reported no native-static-libs" >&2; exit 1; }

install -d "$prefix/include" "$prefix/lib/pkgconfig"
install -m 644 include/trunkline.h "$prefix/include/trunkline.h"
install -m 755 "$lib_dir/libtrunkline.so" "$prefix/lib/libtrunkline.so"
install -m 644 "$lib_dir/libtrunkline.a" "$prefix/lib/libtrunkline.a"
cat >"$prefix/lib/pkgconfig/trunkline.pc" <<PC
prefix=$prefix
exec_prefix=\${prefix}
libdir=\${exec_prefix}/lib
includedir=\${prefix}/include

Name: trunkline
Description: Real-time media engine for telephone voice bots (C ABI)
Version: $version
Libs: -L\${libdir} -ltrunkline
Libs.private: $native_libs
Requires.private: opus
Cflags: -I\${includedir}
PC
echo "installed trunkline $version into $prefix"
