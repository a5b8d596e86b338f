"""Nothing depends on how long the machine has been up.

Right after boot CLOCK_MONOTONIC reads a few seconds, so anything computed as "now minus a
protocol interval" (REJECT_AFTER_TIME is 180 s, REKEY_TIMEOUT 5 s) would underflow or claim
that an initiation was "just sent". A time namespace (`unshare --time --monotonic`) gives a
process such a clock on any machine: the daemons and the C core's test program run in one whose
CLOCK_MONOTONIC and CLOCK_BOOTTIME read about BOOTED_SECONDS.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from support import needs_cmd, needs_root
from support.tunnel import make_pair, ping

REPO = Path(__file__).resolve().parents[2]
BOOTED_SECONDS = 3


def just_booted() -> tuple[str, ...]:
    """A command prefix that runs its command in a new time namespace whose monotonic and boot
    clocks read about BOOTED_SECONDS (offsets are relative to this namespace's clocks)."""
    needs_root()
    needs_cmd("unshare")
    offset = int(time.monotonic()) - BOOTED_SECONDS
    boot_offset = int(time.clock_gettime(time.CLOCK_BOOTTIME)) - BOOTED_SECONDS
    prefix = ("unshare", "--time", "--fork", f"--monotonic=-{offset}",
              f"--boottime=-{boot_offset}")
    probe = subprocess.run([*prefix, "cat", "/proc/uptime"], capture_output=True, text=True,
                           check=False)
    if probe.returncode != 0:
        pytest.skip(f"no time namespaces here (CONFIG_TIME_NS): {probe.stderr.strip()}")
    assert float(probe.stdout.split()[0]) < BOOTED_SECONDS + 5, probe.stdout
    return prefix


def test_wgfastd_pair_just_after_boot_pings_at_once(netns_pool, tmp_path: Path):
    prefix = just_booted()
    initiator, responder = make_pair(netns_pool, ("wgfastd", "wgfastd"), tmp_path, psk=False,
                                     outer=4, launch_prefix=prefix)
    # One ping, one try: the handshake must start at once (no "initiation sent REKEY_TIMEOUT
    # ago" from an underflowed clock) and the queued packet must follow it.
    result = ping(initiator, responder.inner4, count=1, check=False)
    assert result.returncode == 0, result.stderr
    result = ping(responder, initiator.inner4, count=1, check=False)
    assert result.returncode == 0, result.stderr


def test_c_core_tests_pass_just_after_boot():
    prefix = just_booted()
    subprocess.run(["make", "-s", "-C", str(REPO / "csrc"), "tests/test_core"], check=True,
                   capture_output=True, timeout=300)
    result = subprocess.run([*prefix, str(REPO / "csrc" / "tests" / "test_core")],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
