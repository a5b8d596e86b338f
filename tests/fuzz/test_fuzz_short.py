"""A short, bounded run of each fuzz target in tests/fuzz/ (atheris), part of the suite.

Each target runs in its own process (atheris takes the process over) for FUZZ_RUNS inputs or
FUZZ_SECONDS, whichever comes first, starting from its committed seed corpus
(tests/fuzz/corpus/<target>/, read-only: new inputs go to a temporary directory). Any crash —
an exception, a logged internal error, a broken invariant, a sanitizer report — fails the test
with the crashing input's path in the message. A seed check first proves that the packet seeds
reach the deep code (a handshake completes, cookies are consumed, data opens, a replay is
dropped), so a broken harness cannot pass by rejecting everything at the parser.

The longer run (an hour per target, keeping what it finds in a working corpus):

    for t in packet uapi config; do
        mkdir -p /tmp/wgfuzz/$t
        python3 tests/fuzz/fuzz_$t.py -max_total_time=3600 -timeout=10 \\
            /tmp/wgfuzz/$t tests/fuzz/corpus/$t
    done

(A crash writes crash-<sha1> in the working directory: add it to the seed corpus once fixed.
tests/fuzz/make_corpus.py rewrites the hand-made seeds.)
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import wgfast
from support import require

FUZZ_DIR = Path(__file__).resolve().parent  # this test lives beside the targets it runs
TARGETS = ("packet", "uapi", "config")
FUZZ_RUNS = int(os.environ.get("WGFAST_FUZZ_RUNS", "2000"))
FUZZ_SECONDS = int(os.environ.get("WGFAST_FUZZ_SECONDS", "10"))


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    # The fuzzed process imports the same wgfast this test imported (installed or source tree).
    env["WGFAST_FUZZ_PYTHONPATH"] = str(Path(wgfast.__file__).resolve().parent.parent)
    return env


def _needs_atheris() -> None:
    require(importlib.util.find_spec("atheris") is not None,
            "needs atheris (pip install atheris; part of the test extra)")  # fmt: skip


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_target_bounded_run(target: str, tmp_path: Path) -> None:
    _needs_atheris()
    seeds = FUZZ_DIR / "corpus" / target
    assert len(list(seeds.iterdir())) >= 3, f"seed corpus {seeds} is missing"
    found = tmp_path / "found"
    found.mkdir()
    cmd = [sys.executable, str(FUZZ_DIR / f"fuzz_{target}.py"), f"-runs={FUZZ_RUNS}",
           f"-max_total_time={FUZZ_SECONDS}", "-timeout=10", "-seed=1",
           f"-artifact_prefix={tmp_path}/", str(found), str(seeds)]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, env=_environment(),
                            timeout=FUZZ_SECONDS + 60, cwd=tmp_path)  # fmt: skip
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert result.returncode == 0 and not crashes, (
        f"fuzz_{target} failed ({result.returncode}); artifacts {crashes}:\n"
        f"{result.stderr[-6000:]}"
    )
    done = [line for line in result.stderr.splitlines() if line.startswith("Done ")]
    assert done, result.stderr[-3000:]
    runs = int(done[-1].split()[1])
    assert runs >= min(FUZZ_RUNS, 200), f"only {runs} inputs ran: {done[-1]}"
    print(f"fuzz_{target}: {done[-1]}")


def test_packet_seeds_reach_the_handshake_and_data_code() -> None:
    _needs_atheris()
    result = subprocess.run(
        [sys.executable, str(FUZZ_DIR / "fuzz_packet.py"), "--seed-report",
         str(FUZZ_DIR / "corpus" / "packet")],
        capture_output=True, text=True, env=_environment(), timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    # A real wireguard-go initiation passes the data plane's mac1 check and makes the responder
    # stage a keypair (under load, the cookie path, is the data plane's: tested in C).
    assert report["initiation"]["responder_has_next"]
    # wireguard-go's response completes the initiator's handshake; a cookie reply is stored.
    assert report["response"]["initiator_has_current"]
    assert report["cookie_reply"]["initiator_has_cookie"]
    # The captured data packet opens in the data plane, and its replay is dropped there.
    assert report["transport"]["dataplane_rx_packets"] == 1
    assert report["transport_replayed"]["dataplane_drops"] == {"replay": 1}
    assert report["truncated"]["dataplane_drops"] == {"bad_size": 3}
