"""A userspace WireGuard interface for a test: wireguard-go or wgfastd started in a network
namespace the test created, with a unique interface name. Its UAPI socket lives in the shared
/var/run/wireguard, so the test process talks to it from outside the namespace.

Tests that take the `daemon` fixture (tests/conftest.py) run once per daemon (DAEMONS):
wireguard-go, and wgfastd from the wgfast package the test imported. WGFAST_TEST_DAEMON=COMMAND
runs them with that one command only."""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from pathlib import Path

import wgfast
from support import needs_cmd, needs_tun
from support.netns import Netns, NetnsPool, unique_name, wait_for
from wgfast.uapi import socket_path

# Where the imported (installed or in-place built) package lives, for subprocesses.
REPO = str(Path(wgfast.__file__).resolve().parent.parent)
WGFASTD = f"{shlex.quote(sys.executable)} -m wgfast.daemon"
DAEMONS = (
    {"custom": os.environ["WGFAST_TEST_DAEMON"]}
    if os.environ.get("WGFAST_TEST_DAEMON")
    else {"wireguard-go": "wireguard-go", "wgfastd": WGFASTD}
)


def daemon_command(daemon: str | None = None) -> list[str]:
    return shlex.split(daemon or next(iter(DAEMONS.values())))


def daemon_env(daemon: str) -> dict[str, str]:
    """The environment for a daemon or `wgfast` subprocess: the imported package first."""
    path = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, WGFAST_DAEMON=daemon)


class UserspaceInterface:
    def __init__(self, ns: Netns, name: str) -> None:
        self.ns = ns
        self.name = name
        self.socket = socket_path(name)

    def wg(self, *args: str) -> str:
        return self.ns.run("wg", *args).stdout


@contextlib.contextmanager
def userspace_interface(pool: NetnsPool, prefix: str = "wgc", daemon: str | None = None):
    needs_tun()
    needs_cmd("wg")
    command = daemon_command(daemon)
    needs_cmd(command[0])
    ns = pool.namespace()
    iface = UserspaceInterface(ns, unique_name(prefix))
    result = ns.run(*command, iface.name, check=False, env=daemon_env(" ".join(command)))
    try:
        assert result.returncode == 0, result.stderr
        assert wait_for(lambda: os.path.exists(iface.socket), 5), "no UAPI socket appeared"
        yield iface
    finally:
        # Removing the socket makes the daemon exit; the pool kills whatever remains.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(iface.socket)

