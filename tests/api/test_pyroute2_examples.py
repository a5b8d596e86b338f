"""pyroute2's documented WireGuard example (the docstring of pyroute2.netlink.generic.wireguard),
followed call by call with `from wgfast.pyroute2 import NDB, WireGuard` (and once with IPRoute
creating the link): the link is created in a namespace the test made, the first peer is a real
wireguard-go in another namespace (joined by a veth) instead of the example's placeholder, and
the tunnel must carry a ping. Removing the link stops the daemon: nothing is left."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys

import pytest

from support import needs_cmd, needs_tun
from support.netns import Netns, NetnsPool, unique_name
from support.tunnel import PING, WIREGUARD_GO
from wgfast import keys
from wgfast.process import process_alive, socket_server_pid
from wgfast.pyroute2 import NDB, AsyncIPRoute, IPRoute, NetlinkError, WireGuard
from wgfast.uapi import socket_path

OUTER = ("10.243.0.1", "10.243.0.2")
INNER = ("10.244.0.1", "10.244.0.2")
PORTS = (2525, 8888)  # the example's listen port, and its first peer's endpoint port
FWMARK = 0x1337


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


class Peer:
    """The example's first peer made real: wireguard-go in its own namespace, set up by `wg`."""

    def __init__(self, pool: NetnsPool, ours: Netns) -> None:
        needs_cmd(WIREGUARD_GO)
        needs_cmd("wg")
        self.ns = pool.namespace()
        pool.veth(ours, f"{OUTER[0]}/24", self.ns, f"{OUTER[1]}/24")
        self.name = unique_name("wgp")
        self.private = keys.generate_private_key()
        self.public = b64(keys.public_key(self.private))
        # Its daemon keeps the launcher's stdout/stderr: never a pipe this test waits on.
        self.ns.run(WIREGUARD_GO, self.name, capture_output=False, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)

    def configure(self, our_public: str) -> None:
        self.ns.run("wg", "set", self.name, "private-key", "/dev/stdin", "listen-port",
                    str(PORTS[1]), "peer", our_public, "allowed-ips", f"{INNER[0]}/32",
                    input=b64(self.private) + "\n")
        self.ns.run("ip", "address", "add", f"{INNER[1]}/24", "dev", self.name)
        self.ns.run("ip", "link", "set", self.name, "up")


def documented_example(ifname: str, private: bytes, peer_public: str) -> tuple:
    """The example's WireGuard calls, in order, with its placeholders replaced: the first
    peer is `peer_public` at OUTER[1]:8888; the second, removed again, keeps made-up keys."""
    wg = WireGuard()

    # Add a WireGuard configuration + first peer
    peer = {'public_key': peer_public,
            'endpoint_addr': OUTER[1],
            'endpoint_port': PORTS[1],
            'persistent_keepalive': 15,
            'allowed_ips': ['10.244.0.0/24', f'{OUTER[1]}/32']}  # fmt: skip
    wg.set(ifname, private_key=b64(private), fwmark=FWMARK, listen_port=PORTS[0], peer=peer)

    # Add second peer with preshared key
    second = b64(keys.public_key(keys.generate_private_key()))
    peer = {'public_key': second,
            'preshared_key': b64(os.urandom(32)),
            'endpoint_addr': OUTER[1],
            'endpoint_port': 9999,
            'persistent_keepalive': 25,
            'allowed_ips': ['::/0']}  # fmt: skip
    wg.set(ifname, peer=peer)
    assert len(wg.info(ifname)[0].get('WGDEVICE_A_PEERS')) == 2

    # Delete second peer
    peer = {'public_key': second,
            'remove': True}  # fmt: skip
    wg.set(ifname, peer=peer)

    # Get information of the interface
    info = wg.info(ifname)
    wg.close()
    return info


def check_info(info: tuple, private: bytes, peer_public: str) -> None:
    device = info[0]
    assert device.get('WGDEVICE_A_PRIVATE_KEY').decode() == b64(private)
    assert device.get('WGDEVICE_A_LISTEN_PORT') == PORTS[0]
    assert device.get('WGDEVICE_A_FWMARK') == FWMARK
    peers = device.get('WGDEVICE_A_PEERS')
    assert [p.get('WGPEER_A_PUBLIC_KEY').decode() for p in peers] == [peer_public]
    assert peers[0].get('WGPEER_A_ENDPOINT')['addr'] == OUTER[1]


def ping(ns: Netns, address: str) -> None:
    ns.run(sys.executable, "-c", PING, address, "3", "2", timeout=30)


def assert_gone(ns: Netns, ifname: str, pid: int) -> None:
    """Right after the link's removal returned: no socket, no daemon, no link."""
    assert not os.path.exists(socket_path(ifname)), "the UAPI socket is still there"
    assert not process_alive(pid), f"daemon {pid} still runs"
    assert not ns.link_exists(ifname)
    assert ns.pids() == []


@pytest.fixture
def two_hosts(netns_pool):
    needs_tun()
    ours = netns_pool.namespace()
    return ours, Peer(netns_pool, ours)


def test_documented_example_with_ndb(two_hosts):
    ours, peer = two_hosts
    ifname = unique_name("wgx")
    private = keys.generate_private_key()

    # Create a WireGuard interface (NDB's source is the test's namespace)
    with NDB(sources=[{'netns': ours.name}]) as ndb:
        with ndb.interfaces.create(kind='wireguard', ifname=ifname) as link:
            link.add_ip(f'{INNER[0]}/24')
            link.set(state='up')
    assert ours.link_exists(ifname)
    pid = socket_server_pid(socket_path(ifname))
    assert pid in ours.pids()

    peer.configure(b64(keys.public_key(private)))
    info = documented_example(ifname, private, peer.public)
    check_info(info, private, peer.public)
    ping(ours, INNER[1])

    with NDB(sources=[{'netns': ours.name}]) as ndb:
        ndb.interfaces[ifname].remove().commit()
    assert_gone(ours, ifname, pid)


def test_documented_example_with_iproute(two_hosts):
    ours, peer = two_hosts
    ifname = unique_name("wgx")
    private = keys.generate_private_key()

    with IPRoute(netns=ours.name) as ipr:
        created = ipr.link('add', ifname=ifname, kind='wireguard', mtu=1400, state='up')
        index = created[0]['index']
        assert created[0].get('IFLA_MTU') == 1400
        with pytest.raises(NetlinkError) as exists:
            ipr.link('add', ifname=ifname, kind='wireguard')
        assert exists.value.code == 17  # EEXIST, as the kernel module answers
        ipr.addr('add', index=index, address=INNER[0], prefixlen=24)
        pid = socket_server_pid(socket_path(ifname))
        assert pid in ours.pids()

        peer.configure(b64(keys.public_key(private)))
        info = documented_example(ifname, private, peer.public)
        check_info(info, private, peer.public)
        ping(ours, INNER[1])

        ipr.link('del', index=index)
        assert_gone(ours, ifname, pid)


def test_async_iproute_adds_and_deletes(netns_pool):
    needs_tun()
    ns = netns_pool.namespace()
    ifname = unique_name("wgx")

    async def scenario() -> int:
        async with AsyncIPRoute(netns=ns.name) as ipr:
            links = await ipr.link('add', ifname=ifname, kind='wireguard', state='up')
            assert links[0]['flags'] & 1  # IFF_UP
            pid = socket_server_pid(socket_path(ifname))
            assert pid in ns.pids()
            await ipr.link('remove', ifname=ifname)
            return pid

    assert_gone(ns, ifname, asyncio.run(scenario()))


def test_failed_start_is_a_netlink_error_and_leaves_nothing(netns_pool):
    needs_tun()
    ns = netns_pool.namespace()
    ifname = unique_name("wgx")
    failing = [sys.executable, "-c", "import sys; sys.exit('no way: ' + sys.argv[1])"]
    with IPRoute(netns=ns.name, daemon=failing) as ipr, pytest.raises(NetlinkError) as caught:
        ipr.link('add', ifname=ifname, kind='wireguard')
    assert f"no way: {ifname}" in str(caught.value)
    assert not ns.link_exists(ifname) and not os.path.exists(socket_path(ifname))
    assert ns.pids() == []
