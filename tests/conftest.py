"""Shared test helpers.

Tests that need root, a TUN device or an external program call `require(...)` (or one of the
`needs_*` helpers): without it they skip with a clear reason — except when CI=true, where CI has
all of them and a skip would hide a missing install step, so the test fails instead.
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


@pytest.fixture
def netns_pool():
    """Network namespaces for one test (see tests/netns.py); all removed afterwards.

    Needs root and the `ip` command (skips, or fails under CI=true, without them)."""
    from netns import NetnsPool

    needs_root()
    needs_cmd("ip")
    with NetnsPool() as pool:
        yield pool
