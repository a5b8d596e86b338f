#!/usr/bin/env bash
# The compiled extensions under AddressSanitizer + UndefinedBehaviorSanitizer.
#
# Builds wgfast._native and wgfast.bench._cbench with WGFAST_SANITIZE=1 (setup.py adds
# -fsanitize=address,undefined) in a temporary copy of the tree, so the installed package and the
# source tree's own build are left alone, then runs the C-facing Python tests (tests/native/)
# against them with libasan preloaded (the interpreter itself is not instrumented, so ASan must be
# loaded first) and leak detection off (CPython keeps memory until exit by design). Any ASan or
# UBSan report aborts the test process, failing the run.
#
#   scripts/sanitize.sh [extra pytest args]
#   PYTHON=...            interpreter with pytest, hypothesis, cryptography (default: the
#                         installed venv's, else python3); Cython is fetched for the build alone
#                         if that interpreter lacks it
#   SANITIZE_TIMEOUT=600  seconds for the build and for the tests, each
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${WGFAST_PREFIX:-/opt/wgfast}
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$venv/bin/python" ]; then PYTHON=$venv/bin/python; else PYTHON=python3; fi
fi
limit=${SANITIZE_TIMEOUT:-600}

work=$(mktemp -d /tmp/wgfast-sanitize.XXXXXX)
trap 'rm -rf "$work"' EXIT
[ -n "${SANITIZE_KEEP:-}" ] && trap - EXIT  # keep the tree for a look
cp -r "$root/setup.py" "$root/pyproject.toml" "$root/csrc" "$root/wgfast" "$root/tests" "$work/"
# Only sources go to the copy: a prebuilt extension or generated C must not be reused.
rm -f "$work"/wgfast/_native*.so "$work/wgfast/_native.c"
rm -f "$work"/wgfast/bench/_cbench*.so "$work/wgfast/bench/_cbench.c"

build_path=""
if ! "$PYTHON" -c "import Cython, setuptools" 2>/dev/null; then
    echo "== sanitize: fetching Cython for the build"
    "$PYTHON" -m pip install -q --target "$work/buildtools" Cython setuptools
    build_path=$work/buildtools
fi

echo "== sanitize: building wgfast._native and wgfast.bench._cbench with ASan + UBSan in $work"
(cd "$work" && WGFAST_SANITIZE=1 PYTHONPATH=$build_path timeout "$limit" \
    "$PYTHON" setup.py -q build_ext --inplace --build-temp "$work/build" >"$work/build.log" 2>&1) \
    || { tail -50 "$work/build.log"; echo "sanitize: build failed" >&2; exit 1; }
# (Not `nm | grep -q`: under pipefail grep's early exit would fail the pipeline.)
symbols=$(nm -D "$work"/wgfast/_native*.so)
grep -q __asan_init <<<"$symbols" || { echo "sanitize: the extension was built without ASan" >&2; exit 1; }

libasan=$(gcc -print-file-name=libasan.so)
libubsan=$(gcc -print-file-name=libubsan.so)
echo "== sanitize: C-facing tests with $libasan preloaded"
# The namespace tests (real TUN devices, root, separate processes) are the device's own tests;
# these are the ones that drive the C code in this process.
cd "$work/tests"
LD_PRELOAD="$libasan $libubsan" \
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1:strict_string_checks=1 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
PYTHONPATH=$work \
timeout "$limit" "$PYTHON" -m pytest -p no:cacheprovider -q \
    native/test_aead.py native/test_allowedips.py native/test_replay.py \
    native/test_index_table.py native/test_dataplane.py \
    -k "not real_tun" "$@"

# The packet-path fuzz target drives the data plane's receive path (sizes, types, indexes,
# AEAD, replay window) with arbitrary datagrams: a short run under the sanitizers too.
if "$PYTHON" -c "import atheris" 2>/dev/null; then
    echo "== sanitize: fuzz_packet under ASan + UBSan"
    mkdir -p "$work/fuzz-found"
    LD_PRELOAD="$libasan $libubsan" \
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    WGFAST_FUZZ_PYTHONPATH=$work \
    timeout "$limit" "$PYTHON" "$work/tests/fuzz/fuzz_packet.py" -runs="${SANITIZE_FUZZ_RUNS:-3000}" \
        -max_total_time=60 -timeout=10 -artifact_prefix="$work/" \
        "$work/fuzz-found" "$work/tests/fuzz/corpus/packet" 2>"$work/fuzz.log" \
        || { tail -60 "$work/fuzz.log"; echo "sanitize: fuzz_packet crashed" >&2; exit 1; }
    grep "^Done " "$work/fuzz.log"
else
    echo "== sanitize: atheris not installed; fuzz_packet under the sanitizers skipped"
fi
