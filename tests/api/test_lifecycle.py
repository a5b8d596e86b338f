"""Device.create / close: the API starts the daemon for an interface (in a namespace the test
made), sets its addresses, MTU and state and its WireGuard settings, and on close leaves
nothing behind: no link, no UAPI socket, no process. Failures to start carry the daemon's
reason and leave nothing either; `attach` never stops a daemon it did not start unless asked."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import os
import sys

import pytest

from support import needs_cmd, needs_tun
from support.netns import Netns, unique_name
from support.tunnel import PING, WIREGUARD_GO
from wgfast import keys
from wgfast.api import AsyncDevice, Device, Peer
from wgfast.errors import DaemonStartError, DeviceUnreachableError, LinkError, UAPIError
from wgfast.process import process_alive
from wgfast.uapi import socket_path

OUTER = ("10.241.0.1", "10.241.0.2")
INNER = ("10.242.0.1", "10.242.0.2")
INNER6 = ("fd00:242::1", "fd00:242::2")
PORTS = (51841, 51842)


def link_json(ns: Netns, name: str) -> dict | None:
    """`ip -j address show dev NAME` in `ns`, or None when there is no such link."""
    result = ns.run("ip", "-j", "address", "show", "dev", name, check=False)
    return json.loads(result.stdout)[0] if result.returncode == 0 else None


def assert_nothing_left(ns: Netns, name: str, pid: int | None) -> None:
    assert link_json(ns, name) is None, f"{name} still exists in {ns.name}"
    assert not os.path.exists(socket_path(name)), "the UAPI socket file is still there"
    if pid is not None:
        assert not process_alive(pid), f"daemon {pid} still runs"
    assert ns.pids() == [], f"processes left in {ns.name}: {ns.pids()}"


def ping(ns: Netns, address: str, count: int = 3) -> None:
    ns.run(sys.executable, "-c", PING, address, str(count), "2", timeout=30)


@pytest.fixture
def tun() -> None:
    needs_tun()


def test_create_in_namespace_configures_link_and_device(netns_pool, tun):
    ns = netns_pool.namespace()
    name = unique_name("wgl")
    private = keys.generate_private_key()
    peer_key = keys.public_key(keys.generate_private_key())
    with Device.create(
        name, netns=ns.name, addresses=[f"{INNER[0]}/24", f"{INNER6[0]}/64"], mtu=1380,
        private_key=private, listen_port=PORTS[0],
        peers=[Peer(peer_key, allowed_ips=["10.242.0.2/32"], endpoint=f"{OUTER[1]}:51842")],
    ) as device:
        pid = device.daemon.pid
        assert pid is not None and process_alive(pid)
        link = link_json(ns, name)
        assert link is not None, f"no link {name} in {ns.name}"
        assert link["mtu"] == 1380
        assert "UP" in link["flags"]
        addresses = {(a["local"], a["prefixlen"]) for a in link["addr_info"]}
        assert {(INNER[0], 24), (INNER6[0], 64)} <= addresses
        state = device.state()
        assert state.private_key == private and state.listen_port == PORTS[0]
        assert [p.public_key for p in state.peers] == [peer_key]
        # The ordinary API works on it, and the daemon really lives in the namespace.
        device.configure(fwmark=0x42)
        assert device.state().fwmark == 0x42
        assert pid in ns.pids()
    assert_nothing_left(ns, name, pid)
    device.close()  # idempotent


def test_two_namespaces_carry_a_ping_wgfastd_and_wireguard_go(netns_pool, tun):
    needs_cmd(WIREGUARD_GO)
    a, b = netns_pool.namespace(), netns_pool.namespace()
    netns_pool.veth(a, f"{OUTER[0]}/24", b, f"{OUTER[1]}/24")
    keys_a, keys_b = keys.generate_private_key(), keys.generate_private_key()
    name_a, name_b = unique_name("wgl"), unique_name("wgl")
    with Device.create(
        name_b, netns=b.name, daemon="wireguard-go", addresses=[f"{INNER[1]}/24"],
        private_key=keys_b, listen_port=PORTS[1],
        peers=[Peer(keys.public_key(keys_a), allowed_ips=[f"{INNER[0]}/32"])],
    ) as responder, Device.create(
        name_a, netns=a.name, addresses=[f"{INNER[0]}/24"], private_key=keys_a,
        listen_port=PORTS[0],
        peers=[Peer(keys.public_key(keys_b), allowed_ips=[f"{INNER[1]}/32"],
                    endpoint=f"{OUTER[1]}:{PORTS[1]}")],
    ) as initiator:
        ping(a, INNER[1])
        sent = initiator.peers()[0]
        assert sent.latest_handshake is not None and sent.tx_bytes > 0
        assert responder.peers()[0].endpoint.address == ipaddress.ip_address(OUTER[0])
        pids = (initiator.daemon.pid, responder.daemon.pid)
    assert_nothing_left(a, name_a, pids[0])
    assert_nothing_left(b, name_b, pids[1])


def test_wireguard_go_create_and_close(netns_pool, tun):
    needs_cmd(WIREGUARD_GO)
    ns = netns_pool.namespace()
    name = unique_name("wgl")
    device = Device.create(name, netns=ns.name, daemon=[WIREGUARD_GO], addresses=["10.9.9.1/24"],
                           mtu=1300, listen_port=PORTS[0])
    try:
        # SO_PEERCRED names wireguard-go's launcher, long gone: the pid is its daemon's.
        pid = device.daemon.pid
        assert process_alive(pid) and pid in ns.pids()
        link = link_json(ns, name)
        assert link is not None and link["mtu"] == 1300 and "UP" in link["flags"]
        assert device.state().listen_port == PORTS[0]
    finally:
        device.close()
    assert_nothing_left(ns, name, pid)


def test_bad_interface_name_raises_the_daemons_reason(netns_pool, tun):
    ns = netns_pool.namespace()
    name = "x" * 16  # one byte over IFNAMSIZ - 1
    with pytest.raises(DaemonStartError) as caught:
        Device.create(name, netns=ns.name, addresses=["10.9.9.1/24"])
    assert caught.value.returncode == 1
    assert "must be 1..15 bytes" in caught.value.reason
    assert_nothing_left(ns, name, None)


def test_failing_daemon_command_raises_its_reason(netns_pool, tun):
    ns = netns_pool.namespace()
    name = unique_name("wgl")
    command = [sys.executable, "-c",
               "import sys; print('no TUN for', sys.argv[1], file=sys.stderr); sys.exit(1)"]
    with pytest.raises(DaemonStartError) as caught:
        Device.create(name, netns=ns.name, daemon=command)
    assert caught.value.returncode == 1
    assert caught.value.reason == f"no TUN for {name}"
    assert f"no TUN for {name}" in str(caught.value)
    assert_nothing_left(ns, name, None)


def test_missing_daemon_command_raises(netns_pool, tun):
    ns = netns_pool.namespace()
    with pytest.raises(DaemonStartError, match="not found"):
        Device.create(unique_name("wgl"), netns=ns.name, daemon="/nonexistent/wireguard-go")


@pytest.mark.parametrize("kind", ["wgfastd", "wireguard-go"])
def test_failure_after_start_undoes_everything(netns_pool, tun, kind):
    daemon = None if kind == "wgfastd" else needs_cmd(WIREGUARD_GO)
    ns = netns_pool.namespace()
    name = unique_name("wgl")
    # An MTU below IPv4's minimum: the kernel refuses it, and says so through wgfast's family.
    with pytest.raises(LinkError, match="setting mtu 10") as refused:
        Device.create(name, netns=ns.name, daemon=daemon, addresses=["10.9.9.1/24"], mtu=10)
    assert refused.value.errno == errno.EINVAL
    assert_nothing_left(ns, name, None)


def test_bad_settings_refused_before_anything_starts(netns_pool, tun):
    ns = netns_pool.namespace()
    name = unique_name("wgl")
    with pytest.raises(ValueError):
        Device.create(name, netns=ns.name, addresses=["10.9.9.300/24"])
    with pytest.raises(UAPIError):
        Device.create(name, netns=ns.name, listen_port=70000)
    assert_nothing_left(ns, name, None)


def test_attach_stops_only_when_asked(netns_pool, tun):
    ns = netns_pool.namespace()
    name = unique_name("wgl")
    with pytest.raises(DeviceUnreachableError):
        Device.attach(name)
    owner = Device.create(name, netns=ns.name)
    try:
        pid = owner.daemon.pid
        with Device.attach(name) as attached:
            assert attached.daemon is None
        attached.close()
        assert process_alive(pid) and os.path.exists(socket_path(name))
        attached.close(stop=True)
        assert_nothing_left(ns, name, pid)
    finally:
        owner.close()
    owner.close(stop=False)


def test_async_create_and_close(netns_pool, tun):
    ns = netns_pool.namespace()
    name = unique_name("wgl")
    private = keys.generate_private_key()

    async def scenario() -> int:
        async with await AsyncDevice.create(name, netns=ns.name, addresses=["10.9.9.1/24"],
                                            private_key=private, listen_port=PORTS[0]) as dev:
            state = await dev.state()
            assert state.private_key == private and state.listen_port == PORTS[0]
            link = link_json(ns, name)
            assert link is not None and "UP" in link["flags"]
            return dev.daemon.pid

    pid = asyncio.run(scenario())
    assert_nothing_left(ns, name, pid)

    async def failing() -> None:
        await AsyncDevice.create(name, netns=ns.name, daemon=[sys.executable, "-c",
                                                              "print('nope'); exit(1)"])

    with pytest.raises(DaemonStartError, match="nope"):
        asyncio.run(failing())
    assert_nothing_left(ns, name, None)
