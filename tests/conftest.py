"""The suite's pytest fixtures and hooks (helpers live in support/, see support/__init__.py).

Being the rootdir's conftest without an __init__.py beside it, this file also puts tests/ on
sys.path (pytest's default "prepend" import mode), so every test, in whichever folder, imports
the shared helpers as `support` and `support.<module>`.
"""

from __future__ import annotations

import pytest

from support import needs_cmd, needs_root
from support.daemons import DAEMONS
from support.netns import NetnsPool


@pytest.fixture
def netns_pool():
    """Network namespaces for one test (see tests/support/netns.py); all removed afterwards.

    Needs root and the `ip` command (skips, or fails under CI=true, without them)."""
    needs_root()
    needs_cmd("ip")
    with NetnsPool() as pool:
        yield pool


@pytest.fixture(name="daemon", params=list(DAEMONS))
def daemon_fixture(request) -> str:
    """The daemon command (a shell-quoted string, as WGFAST_DAEMON takes it) to test with: the
    tests that take it run once per daemon in support.daemons.DAEMONS. A test module may
    override it with its own `daemon` fixture (test_wgfastd.py, test_cli_netns.py do)."""
    return DAEMONS[request.param]
