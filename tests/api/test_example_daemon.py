"""The example daemon kept in the repo (examples/two_sites.py), written only from the README and
the docstrings, runs as a user would run it: two devices in two namespaces, the handshake
awaited as an event, traffic, a peer removed and its event seen, everything torn down. The same
without events against wireguard-go. The test checks from outside that nothing is left."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from support import needs_cmd, needs_tun
from support.tunnel import WIREGUARD_GO

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "two_sites.py"


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.startswith("wgex-")}


@pytest.mark.parametrize("daemon", ["wgfastd", "wireguard-go"])
def test_example_daemon(daemon: str):
    needs_tun()
    argv = [sys.executable, "-P", str(EXAMPLE)]
    if daemon == "wireguard-go":
        argv += ["--daemon", needs_cmd(WIREGUARD_GO)]
    before = _namespaces()
    # -P and a neutral working directory: the installed package, as a user's program gets it.
    ran = subprocess.run(argv, capture_output=True, text=True, timeout=90, cwd="/",
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    out = ran.stdout
    assert ran.returncode == 0, out + ran.stderr
    assert "10/10 echoed" in out and "[6] left behind: nothing" in out, out
    if daemon == "wgfastd":
        assert re.search(r"event \d+: HandshakeCompleted peer \S+ initiator=True", out), out
        assert re.search(r"event \d+: PeerRemoved peer", out), out
    else:
        assert "not supported by this implementation" in out, out
    tag = re.search(r"wgexa(\d+)", out).group(1)
    assert not os.path.exists(f"/var/run/wireguard/wgexa{tag}.sock")
    assert not os.path.exists(f"/var/run/wireguard/wgexb{tag}.sock")
    assert _namespaces() <= before
