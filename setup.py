"""Builds the two compiled modules, each a thin Cython skin over the plain C core in csrc/:

- wgfast._native: what the protocol core and the daemon run on (the AEAD and the data plane);
- wgfast.bench._cbench: what only benchmarks and the tests of the C tables use (the OpenSSL EVP
  baseline in csrc/bench/, a C timing loop, bindings for the lookup tables).

WGFAST_SANITIZE=1 builds both with ASan/UBSan (run them with libasan preloaded).
"""

import glob
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def sources(pattern: str) -> list[str]:
    # Relative paths: setuptools refuses absolute source paths in sdists and wheels.
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, pattern)))


def compile_args() -> tuple[list[str], list[str]]:
    cflags = ["-O3", "-std=gnu11", "-Wall", "-Wextra", "-fno-strict-aliasing"]
    ldflags: list[str] = []
    if os.environ.get("WGFAST_SANITIZE"):
        san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"]
        cflags += san
        ldflags += ["-fsanitize=address,undefined"]
    return cflags, ldflags


cflags, ldflags = compile_args()
core = sources("csrc/*.c")
# The bench module needs the AEAD (its timing loop calls it from C) and the tables, not the
# data plane.
bench_core = [s for s in core if not os.path.basename(s).startswith(("dataplane", "offload"))]
native = Extension(
    "wgfast._native",
    sources=["wgfast/_native.pyx", *core],
    include_dirs=["csrc"],
    extra_compile_args=cflags,
    extra_link_args=ldflags,
)
cbench = Extension(
    "wgfast.bench._cbench",
    sources=["wgfast/bench/_cbench.pyx", *bench_core, *sources("csrc/bench/*.c")],
    include_dirs=["csrc", "csrc/bench"],
    extra_compile_args=cflags,
    extra_link_args=ldflags,
    libraries=["dl"],  # the EVP baseline loads libcrypto at run time
)

setup(
    ext_modules=cythonize(
        [native, cbench],
        include_path=[HERE],
        compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
    ),
)
