"""wgfastd as a real WireGuard device, against wireguard-go and against itself.

Two network namespaces joined by a veth pair (the "outer" network, IPv4 and IPv6); in each, one
WireGuard implementation configured with the stock `wg` (support.tunnel.make_pair). Only the
initiator is given the other's endpoint, so the roles are fixed and the responder must learn
its peer's address from the handshake. Traffic: ping both ways, a 20 MB TCP transfer whose
SHA-256 must match on arrival, and iperf3 (2 s, one TCP stream) in both directions. All traffic
stays inside the namespaces the test creates; every wait is bounded.

Combinations are pairwise (implementation x role x preshared key x outer family), not a full
product, to keep the file under about two minutes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import needs_cmd, needs_tun
from support.daemons import REPO
from support.netns import NetnsPool, unique_name, wait_for
from support.tunnel import (
    INNER4,
    INNER6,
    LISTEN_PORTS,
    OUTER4,
    OUTER6,
    WIREGUARD_GO,
    Side,
    dump_peer,
    first_ping,
    genkey,
    iperf,
    launch,
    make_pair,
    ping,
    tcp_transfer,
)


def check_status(initiator: Side, responder: Side, outer: int) -> None:
    """wg show on wgfastd ends: counters moved, a handshake time, the learnt endpoint."""
    for me, other in ((initiator, responder), (responder, initiator)):
        if me.kind != "wgfastd":
            continue
        peer = dump_peer(me)
        assert peer[0] == other.public_key
        host = other.outer4 if outer == 4 else f"[{other.outer6}]"
        assert peer[2] == f"{host}:{other.port}"  # the responder learnt it from the handshake
        assert int(peer[4]) > 0, "latest handshake"
        assert abs(int(peer[4]) - time.time()) < 120
        assert int(peer[5]) > 0 and int(peer[6]) > 0, "rx/tx bytes"
        listen = me.wg("show", me.interface, "listen-port").strip()
        assert listen == str(me.port)


def exercise(initiator: Side, responder: Side, tmp_path: Path, outer: int, *,
             transfer: bool = True, throughput: bool = True) -> dict[str, float]:  # fmt: skip
    first_ping(initiator, responder.inner4)
    ping(initiator, responder.inner6)
    ping(responder, initiator.inner4)
    ping(responder, initiator.inner6)
    results: dict[str, float] = {}
    if transfer:
        tcp_transfer(initiator, responder, responder.inner4, tmp_path)
        tcp_transfer(responder, initiator, initiator.inner6, tmp_path)
    if throughput:
        results["forward"] = iperf(initiator, responder, responder.inner4)
        results["reverse"] = iperf(initiator, responder, responder.inner4, reverse=True)
    check_status(initiator, responder, outer)
    return results


# (initiator, responder, psk, outer family): each implementation in each role, PSK on and off,
# both outer families, each appearing in at least one pair with every other value.
CASES = [
    ("wgfastd", "wireguard-go", False, 4),
    ("wireguard-go", "wgfastd", True, 4),
    ("wgfastd", "wireguard-go", True, 6),
    ("wireguard-go", "wgfastd", False, 6),
    ("wgfastd", "wgfastd", True, 4),
    ("wgfastd", "wgfastd", False, 6),
]


@pytest.mark.parametrize(("initiator", "responder", "psk", "outer"), CASES)
def test_interop(netns_pool: NetnsPool, tmp_path: Path, initiator: str, responder: str,
                 psk: bool, outer: int):  # fmt: skip
    a, b = make_pair(netns_pool, (initiator, responder), tmp_path, psk=psk, outer=outer)
    full = (initiator, responder, psk, outer) in (CASES[0], CASES[1], CASES[4])
    rates = exercise(a, b, tmp_path, outer, transfer=full, throughput=full)
    for direction, gbits in rates.items():
        print(f"{initiator}->{responder} psk={psk} v{outer} {direction}: {gbits:.2f} Gbit/s")


def test_interop_wireguard_go_offload(netns_pool: NetnsPool, tmp_path: Path):
    a, b = make_pair(netns_pool, ("wgfastd", "wireguard-go-offload"), tmp_path, psk=True, outer=4)
    exercise(a, b, tmp_path, 4, transfer=True, throughput=False)


def test_responder_roams_with_the_initiator(netns_pool: NetnsPool, tmp_path: Path):
    """The initiator moves to a new outer address; the wgfastd responder follows its data."""
    a, b = make_pair(netns_pool, ("wgfastd", "wgfastd"), tmp_path, psk=False, outer=4)
    first_ping(a, b.inner4)
    veth = a.ns.run("ip", "-o", "-4", "addr", "show", "to", OUTER4[0]).stdout.split()[1]
    new_address = "10.231.0.7"
    # Delete first: deleting a primary address would take a secondary of its subnet with it.
    a.ns.run("ip", "addr", "del", OUTER4[0] + "/24", "dev", veth)
    a.ns.run("ip", "addr", "add", new_address + "/24", "dev", veth)
    ping(a, b.inner4)
    assert wait_for(lambda: dump_peer(b)[2] == f"{new_address}:{a.port}", 5), dump_peer(b)
    ping(b, a.inner4)


def test_throughput_back_to_back(netns_pool: NetnsPool, tmp_path: Path):
    """One TCP stream, 2 s: wgfastd<->wgfastd and wireguard-go<->wireguard-go, for the record."""
    rates = {}
    for kinds in (("wgfastd", "wgfastd"), ("wireguard-go", "wireguard-go")):
        a, b = make_pair(netns_pool, kinds, tmp_path, psk=False, outer=4)
        first_ping(a, b.inner4)
        rates[kinds[0]] = iperf(a, b, b.inner4)
        for side in (a, b):  # deleting the interface ends its daemon: no CPU taken from the next
            side.ns.run("ip", "link", "del", side.interface, check=False)
    print(f"iperf3 one TCP stream: wgfastd {rates['wgfastd']:.2f} Gbit/s, "
          f"wireguard-go {rates['wireguard-go']:.2f} Gbit/s")  # fmt: skip
    assert rates["wgfastd"] > 0.05


def _peer_counters(side: Side) -> tuple[int, int]:
    peer = dump_peer(side)
    return int(peer[5]), int(peer[6])  # rx, tx


def test_persistent_keepalive_flows_without_traffic(netns_pool: NetnsPool, tmp_path: Path):
    """A persistent keepalive set on the wgfastd responder: its timer fires on its own and the
    keepalives (32-byte data messages) reach the initiator while no packet is routed."""
    a, b = make_pair(netns_pool, ("wireguard-go", "wgfastd"), tmp_path, psk=False, outer=4)
    first_ping(a, b.inner4)
    b.wg("set", b.interface, "peer", a.public_key, "persistent-keepalive", "1")
    rx_before, _ = _peer_counters(a)
    time.sleep(3.5)
    rx_after, _ = _peer_counters(a)
    keepalives = (rx_after - rx_before) // 32
    assert keepalives >= 2, (rx_before, rx_after)


def test_down_up_ends_sessions_and_restarts(netns_pool: NetnsPool, tmp_path: Path):
    """`ip link set down` closes the sockets and ends the sessions (wg show: no port); `up`
    binds again and a new handshake carries traffic; counters survive."""
    a, b = make_pair(netns_pool, ("wgfastd", "wgfastd"), tmp_path, psk=True, outer=4)
    first_ping(a, b.inner4)
    rx_before, _ = _peer_counters(a)
    a.ns.run("ip", "link", "set", "down", "dev", a.interface)
    assert wait_for(lambda: not _udp_port_bound(a, a.port), 5)
    a.ns.run("ip", "link", "set", "up", "dev", a.interface)
    assert wait_for(lambda: _udp_port_bound(a, a.port), 5)
    first_ping(a, b.inner4)
    ping(b, a.inner4)
    assert _peer_counters(a)[0] > rx_before
    # Deleting the interface while the data plane runs ends the daemon and its UAPI socket.
    a.ns.run("ip", "link", "del", "dev", a.interface)
    assert wait_for(lambda: not os.path.exists(f"/var/run/wireguard/{a.interface}.sock"), 5)


def _udp_port_bound(side: Side, port: int) -> bool:
    out = side.ns.run("ss", "-uanH", f"sport = :{port}").stdout
    return bool(out.strip())


def test_listen_port_zero_and_port_in_use(netns_pool: NetnsPool, tmp_path: Path):
    """listen-port 0 picks a free port and reports it; a taken port is refused and the old one
    kept; a new port works for the peer (the initiator follows with a new endpoint)."""
    a, b = make_pair(netns_pool, ("wgfastd", "wgfastd"), tmp_path, psk=False, outer=4)
    b.wg("set", b.interface, "listen-port", "0")
    port = int(b.wg("show", b.interface, "listen-port"))
    assert port != 0 and _udp_port_bound(b, port)
    blocker = b.ns.popen(sys.executable, "-c", BLOCK_PORT, "51999", stdout=subprocess.PIPE,
                         text=True)  # fmt: skip
    try:
        assert blocker.stdout is not None and blocker.stdout.readline().strip() == "bound"
        refused = b.ns.run("wg", "set", b.interface, "listen-port", "51999", check=False)
        assert refused.returncode != 0
        assert int(b.wg("show", b.interface, "listen-port")) == port
    finally:
        blocker.kill()
        blocker.wait()
    a.wg("set", a.interface, "peer", b.public_key, "endpoint", f"{b.outer4}:{port}")
    first_ping(a, b.inner4)
    ping(b, a.inner4)


# Holds a UDP port (both families) until killed.
BLOCK_PORT = """
import socket, sys, time
s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s4.bind(("0.0.0.0", int(sys.argv[1])))
print("bound", flush=True)
time.sleep(60)
"""


def test_fwmark_marks_the_tunnel_traffic(netns_pool: NetnsPool, tmp_path: Path):
    """With fwmark 0x77 and a policy rule sending that mark to an unreachable table, nothing
    reaches the peer; clearing the mark lets the handshake through."""
    a, b = make_pair(netns_pool, ("wgfastd", "wireguard-go"), tmp_path, psk=False, outer=4)
    a.ns.run("ip", "rule", "add", "fwmark", "0x77", "lookup", "77")
    a.ns.run("ip", "route", "add", "unreachable", "default", "table", "77")
    a.wg("set", a.interface, "fwmark", "0x77")
    assert a.wg("show", a.interface, "fwmark").strip() == "0x77"
    assert ping(a, b.inner4, count=1, check=False).returncode != 0
    assert dump_peer(b)[4] == "0", "a marked initiation got through"
    a.wg("set", a.interface, "fwmark", "0")
    first_ping(a, b.inner4)


def test_wg_quick_brings_up_wgfastd_against_wireguard_go(netns_pool: NetnsPool, tmp_path: Path):
    """wg-quick starts and configures wgfastd (as its userspace implementation) from a config
    file; wireguard-go answers; wg-quick down ends the daemon."""
    needs_cmd("wg-quick")
    needs_tun()
    needs_cmd(WIREGUARD_GO)
    if os.path.exists("/sys/module/wireguard"):
        pytest.skip("kernel WireGuard present: wg-quick would not use a userspace daemon")
    a_ns, b_ns = netns_pool.namespace(), netns_pool.namespace()
    netns_pool.veth(a_ns, OUTER4[0] + "/24", b_ns, OUTER4[1] + "/24")
    a_private, a_public = genkey(a_ns)
    b_private, b_public = genkey(b_ns)
    b = Side(b_ns, "wireguard-go", unique_name("wgi"), b_private, b_public, LISTEN_PORTS[1],
             OUTER4[1], OUTER6[1], INNER4[1], INNER6[1])  # fmt: skip
    launch(b, tmp_path)
    key_file = tmp_path / "b.key"
    key_file.write_text(b_private + "\n")
    b.wg("set", b.interface, "private-key", str(key_file), "listen-port", str(b.port),
         "peer", a_public, "allowed-ips", f"{INNER4[0]}/32")  # fmt: skip
    b_ns.run("ip", "addr", "add", INNER4[1] + "/24", "dev", b.interface)
    b_ns.run("ip", "link", "set", "up", "dev", b.interface)

    interface = unique_name("wgq")
    wrapper = tmp_path / "wgfastd"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m wgfast.daemon "$@"\n')
    wrapper.chmod(0o755)
    conf = tmp_path / f"{interface}.conf"
    conf.write_text(
        f"[Interface]\nPrivateKey = {a_private}\nAddress = {INNER4[0]}/24\n"
        f"ListenPort = {LISTEN_PORTS[0]}\n\n"
        f"[Peer]\nPublicKey = {b_public}\nAllowedIPs = {INNER4[1]}/32\n"
        f"Endpoint = {OUTER4[1]}:{b.port}\nPersistentKeepalive = 25\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    env["WG_QUICK_USERSPACE_IMPLEMENTATION"] = str(wrapper)
    up = a_ns.run("wg-quick", "up", str(conf), env=env, check=False, timeout=30)
    assert up.returncode == 0, up.stderr
    a = Side(a_ns, "wgfastd", interface, a_private, a_public, LISTEN_PORTS[0],
             OUTER4[0], OUTER6[0], INNER4[0], INNER6[0])  # fmt: skip
    try:
        first_ping(a, INNER4[1])
        ping(b, INNER4[0])
        assert a.wg("show", interface, "latest-handshakes").split()[1] != "0"
    finally:
        down = a_ns.run("wg-quick", "down", str(conf), env=env, check=False, timeout=30)
    assert down.returncode == 0, down.stderr
    assert wait_for(lambda: not a_ns.link_exists(interface), 5)


def test_endpoint_set_later_starts_the_waiting_handshake(netns_pool: NetnsPool, tmp_path: Path):
    """Packets for a peer without an endpoint wait; giving it an endpoint starts the handshake
    at once (no further packet needed)."""
    a, b = make_pair(netns_pool, ("wgfastd", "wgfastd"), tmp_path, psk=False, outer=6)
    assert ping(b, a.inner4, count=1, check=False).returncode != 0  # staged: nowhere to send
    assert dump_peer(b)[4] == "0"
    b.wg("set", b.interface, "peer", a.public_key, "endpoint", f"[{a.outer6}]:{a.port}")
    assert wait_for(lambda: dump_peer(b)[4] != "0", 3), dump_peer(b)
    ping(b, a.inner4)
