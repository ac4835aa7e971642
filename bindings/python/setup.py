"""Builds the Rust library with cargo and ships it inside the package.

`pip install ./bindings/python` runs this: it needs cargo on the machine. Set TRUNKLINE_LIB at run
time to use another build of the library instead.
"""

import os
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildWithCargo(build_py):
    def run(self):
        repo = Path(os.environ.get("TRUNKLINE_SOURCE_DIR", HERE.parent.parent))
        subprocess.run(
            ["cargo", "build", "--release", "-p", "trunkline-ffi"], cwd=repo, check=True
        )
        target = Path(os.environ.get("CARGO_TARGET_DIR", repo / "target"))
        super().run()
        # Into the build directory only: a copy in the source tree would shadow later builds.
        dest = Path(self.build_lib) / "trunkline"
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(target / "release" / "libtrunkline.so", dest / "libtrunkline.so")


setup(cmdclass={"build_py": BuildWithCargo})
