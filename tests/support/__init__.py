"""Shared test helpers, imported as `support` (tests/ is on sys.path through tests/conftest.py).

Tests that need root, a TUN device or an external program call `require(...)` (or one of the
`needs_*` helpers): without it they skip with a clear reason — except when CI=true, where CI has
all of them and a skip would hide a missing install step, so the test fails instead.

Submodules:

- support.netns: network namespaces for a test (Netns, NetnsPool, unique_name, wait_for).
- support.daemons: the userspace daemons the tests run (DAEMONS, daemon_command, daemon_env)
  and a UAPI-speaking interface in a namespace (userspace_interface).
- support.tunnel: two WireGuard ends in two namespaces joined by veth (make_pair, Side) and the
  traffic run through them (ping, first_ping, tcp_transfer, iperf, dump_peer, daemon_pid ...).
- support.handshake: two in-memory protocol cores (wgfast.protocol.device_state.DeviceState)
  with fixed keys, a fake wall clock and a one-call handshake.
- support.dataplane: the compiled data plane (wgfast._native.DataPlane) with socketpairs in
  place of TUN devices, and a keypair installed on both ends.
- support.cli: the `wgfast` command run in a namespace, config files, and a snapshot of what
  `wgfast up` may touch.

The pytest fixtures (netns_pool, daemon) are in tests/conftest.py.
"""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip the calling test unless `condition`; under CI=true, fail instead of skipping."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true but requirement missing: {reason}", pytrace=False)
    pytest.skip(reason)


def needs_root() -> None:
    require(os.geteuid() == 0, "needs root (network namespaces, TUN devices)")


def needs_tun() -> None:
    needs_root()
    require(os.path.exists("/dev/net/tun"), "needs /dev/net/tun")


def needs_cmd(name: str) -> str:
    """Require an executable on PATH and return its full path."""
    path = shutil.which(name)
    require(path is not None, f"needs the `{name}` command (see the README's test command)")
    assert path is not None
    return path
