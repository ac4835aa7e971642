"""Builds the Python package with libtrunkline.so inside it, as a platform wheel.

`pip install ./bindings/python` runs this: it builds the library with cargo, so it needs cargo on
the machine. To package a library built beforehand instead (scripts/package_python.sh does, with
a library built for an old glibc), set TRUNKLINE_PREBUILT_LIB to its path: cargo is then not run.
TRUNKLINE_BUNDLE_DIR names a directory whose files go beside the library (scripts/package_python.sh
puts libopus.so.0 and its license there). Set TRUNKLINE_LIB at run time to use another build of
the library than the packaged one.

The wheel is tagged py3-none-PLATFORM: the binding is pure Python over ctypes, so it runs on any
Python 3, but the library it carries is for one platform. PLATFORM is the build machine's
(linux_x86_64) unless TRUNKLINE_WHEEL_PLAT names another, e.g. manylinux_2_17_x86_64 for a
library whose glibc floor is 2.17 (scripts/package_python.sh works it out and auditwheel checks it).

The version is the Cargo workspace's (`[workspace.package] version` in the root Cargo.toml), read
here rather than copied into pyproject.toml: the package is always built from the workspace (the
library comes from it), so reading it leaves one place to bump and nothing to drift.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
REPO = Path(os.environ.get("TRUNKLINE_SOURCE_DIR", HERE.parent.parent))


def workspace_version(cargo_toml: Path) -> str:
    """`version` under `[workspace.package]` (a plain line parser: tomllib needs Python 3.11)."""
    section = None
    for raw in cargo_toml.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("["):
            section = line
        elif section == "[workspace.package]":
            m = re.fullmatch(r'version\s*=\s*"([^"]+)"', line)
            if m:
                return m.group(1)
    raise RuntimeError(f"{cargo_toml}: no `version = \"...\"` under [workspace.package]")


class BuildWithCargo(build_py):
    def run(self):
        prebuilt = os.environ.get("TRUNKLINE_PREBUILT_LIB")
        if prebuilt:
            library = Path(prebuilt)
            if not library.is_file():
                raise FileNotFoundError(f"TRUNKLINE_PREBUILT_LIB={prebuilt}: no such file")
        else:
            subprocess.run(["cargo", "build", "--release", "-p", "trunkline-ffi"], cwd=REPO, check=True)
            target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
            library = target / "release" / "libtrunkline.so"
        super().run()
        # Into the build directory only: a copy in the source tree would shadow later builds.
        dest = Path(self.build_lib) / "trunkline"
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(library, dest / "libtrunkline.so")
        # What the packages ship beside the library (libopus.so.0 and its license, found through
        # the library's RUNPATH $ORIGIN: scripts/package_opus.sh).
        bundle = os.environ.get("TRUNKLINE_BUNDLE_DIR")
        if bundle:
            for f in sorted(Path(bundle).iterdir()):
                shutil.copy2(f, dest / f.name)


class BinaryDistribution(Distribution):
    """Not pure: the package holds a native library, so it installs to platlib (where auditwheel
    and installers expect binaries) and the wheel is tagged by platform."""

    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    def finalize_options(self):
        plat = os.environ.get("TRUNKLINE_WHEEL_PLAT")
        if plat:
            self.plat_name = plat
        super().finalize_options()

    def get_tag(self):
        _, _, plat = super().get_tag()
        return "py3", "none", plat


setup(
    version=workspace_version(REPO / "Cargo.toml"),
    distclass=BinaryDistribution,
    cmdclass={"build_py": BuildWithCargo, "bdist_wheel": PlatformWheel},
)
