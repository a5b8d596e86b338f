"""A userspace WireGuard interface for a test: wireguard-go (or $WGFAST_TEST_DAEMON) started in
a network namespace the test created, with a unique interface name. Its UAPI socket lives in
the shared /var/run/wireguard, so the test process talks to it from outside the namespace."""

from __future__ import annotations

import contextlib
import os
import shlex

from conftest import needs_cmd, needs_tun
from netns import Netns, NetnsPool, unique_name, wait_for

from wgfast.uapi import socket_path


def daemon_command() -> list[str]:
    return shlex.split(os.environ.get("WGFAST_TEST_DAEMON", "wireguard-go"))


class UserspaceInterface:
    def __init__(self, ns: Netns, name: str) -> None:
        self.ns = ns
        self.name = name
        self.socket = socket_path(name)

    def wg(self, *args: str) -> str:
        return self.ns.run("wg", *args).stdout


@contextlib.contextmanager
def userspace_interface(pool: NetnsPool, prefix: str = "wgc"):
    needs_tun()
    needs_cmd("wg")
    needs_cmd(daemon_command()[0])
    ns = pool.namespace()
    iface = UserspaceInterface(ns, unique_name(prefix))
    result = ns.run(*daemon_command(), iface.name, check=False)
    try:
        assert result.returncode == 0, result.stderr
        assert wait_for(lambda: os.path.exists(iface.socket), 5), "no UAPI socket appeared"
        yield iface
    finally:
        # Removing the socket makes the daemon exit; the pool kills whatever remains.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(iface.socket)

