"""Builds the compiled data plane: the plain C core in csrc/ under one thin Cython skin.

WGFAST_SANITIZE=1 builds the extension with ASan/UBSan (run it with libasan preloaded).
"""

import glob
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def core_sources() -> list[str]:
    # Relative paths: setuptools refuses absolute source paths in sdists and wheels.
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, "csrc", "*.c")))


def compile_args() -> tuple[list[str], list[str]]:
    cflags = ["-O3", "-std=gnu11", "-Wall", "-Wextra", "-fno-strict-aliasing"]
    ldflags: list[str] = []
    if os.environ.get("WGFAST_SANITIZE"):
        san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"]
        cflags += san
        ldflags += ["-fsanitize=address,undefined"]
    return cflags, ldflags


cflags, ldflags = compile_args()
native = Extension(
    "wgfast._native",
    sources=["wgfast/_native.pyx", *core_sources()],
    include_dirs=["csrc"],
    extra_compile_args=cflags,
    extra_link_args=ldflags,
    libraries=["dl"],
)

setup(
    ext_modules=cythonize(
        [native],
        compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
    ),
)
