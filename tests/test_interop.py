"""wgfastd as a real WireGuard device, against wireguard-go and against itself.

Two network namespaces joined by a veth pair (the "outer" network, IPv4 and IPv6); in each, one
WireGuard implementation configured with the stock `wg`. Only the initiator is given the other's
endpoint, so the roles are fixed and the responder must learn its peer's address from the
handshake. Traffic: ping both ways, a 20 MB TCP transfer whose SHA-256 must match on arrival,
and iperf3 (2 s, one TCP stream) in both directions. All traffic stays inside the namespaces
the test creates; every wait is bounded.

Combinations are pairwise (implementation x role x preshared key x outer family), not a full
product, to keep the file under about two minutes.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import needs_cmd, needs_tun
from netns import Netns, NetnsPool, unique_name, wait_for

import wgfast

# Where the imported wgfast lives (the source tree after an in-place build, or site-packages
# under the installed package): daemons started by the tests import that same, compiled, copy.
PACKAGE_ROOT = str(Path(wgfast.__file__).resolve().parent.parent)
WIREGUARD_GO = "/usr/bin/wireguard-go"
WIREGUARD_GO_OFFLOAD = "/usr/local/bin/wireguard-go-offload"

OUTER4 = ("10.231.0.1", "10.231.0.2")
OUTER6 = ("fd00:231::1", "fd00:231::2")
INNER4 = ("10.232.0.1", "10.232.0.2")
INNER6 = ("fd00:232::1", "fd00:232::2")
LISTEN_PORTS = (51821, 51822)

TRANSFER_BYTES = 20 * 1024 * 1024
TRANSFER_PORT = 5301
IPERF_PORT = 5302
IPERF_SECONDS = 2

# Receives one TCP stream to its end and prints its length and SHA-256.
SINK = """
import hashlib, socket, sys
srv = socket.create_server((sys.argv[1], int(sys.argv[2])), family=socket.AF_INET6
                           if ":" in sys.argv[1] else socket.AF_INET)
srv.settimeout(30)
print("listening", flush=True)
conn, _ = srv.accept()
conn.settimeout(30)
digest, total = hashlib.sha256(), 0
while chunk := conn.recv(1 << 16):
    digest.update(chunk)
    total += len(chunk)
print(total, digest.hexdigest(), flush=True)
"""

# ICMP echo over a raw socket (no dependency on the ping package): argv address count timeout.
# Exits 0 when every request got its reply within the timeout.
PING = """
import os, select, socket, struct, sys, time
addr, count, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
v6 = ":" in addr
sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW,
                     socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
ident = os.getpid() & 0xFFFF
def checksum(data):
    data += b"\\0" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF
for seq in range(count):
    body = struct.pack("!HH", ident, seq) + b"wgfast-ping" * 8
    kind = 128 if v6 else 8
    header = struct.pack("!BBH", kind, 0, 0)
    if not v6:  # the kernel fills in the ICMPv6 checksum, not the ICMPv4 one
        header = struct.pack("!BBH", kind, 0, checksum(header + body))
    sock.sendto(header + body, (addr, 0))
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            sys.exit(f"no reply to echo {seq} from {addr}")
        packet = sock.recv(65536)
        icmp = packet if v6 else packet[(packet[0] & 15) * 4:]
        if icmp[0] == (129 if v6 else 0) and icmp[4:8] == struct.pack("!HH", ident, seq):
            break
    time.sleep(0.1)
"""

# Sends a file over one TCP connection.
SOURCE = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30) as conn, \\
        open(sys.argv[3], "rb") as f:
    conn.sendfile(f)
"""


@dataclass
class Side:
    ns: Netns
    kind: str  # "wgfastd", "wireguard-go" or "wireguard-go-offload"
    interface: str
    private_key: str
    public_key: str
    port: int
    outer4: str
    outer6: str
    inner4: str
    inner6: str

    def wg(self, *args: str) -> str:
        return self.ns.run("wg", *args).stdout


def _genkey(ns: Netns) -> tuple[str, str]:
    private = ns.run("wg", "genkey").stdout.strip()
    public = ns.run("wg", "pubkey", input=private + "\n").stdout.strip()
    return private, public


def _launch(side: Side, log_dir: Path) -> None:
    env = dict(os.environ)
    env.pop("WG_PROCESS_FOREGROUND", None)
    if side.kind == "wgfastd":
        env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        env["LOG_LEVEL"] = "verbose"
        env["WGFAST_LOG_FILE"] = str(log_dir / f"{side.interface}.log")
        argv = [sys.executable, "-m", "wgfast.daemon", side.interface]
        side.ns.run(*argv, env=env, timeout=30)
        return
    # wireguard-go's daemon keeps the launcher's stdout/stderr: do not wait on a pipe.
    env["LOG_LEVEL"] = "silent"
    binary = WIREGUARD_GO if side.kind == "wireguard-go" else WIREGUARD_GO_OFFLOAD
    side.ns.run(binary, side.interface, env=env, timeout=30, capture_output=False,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def make_pair(
    pool: NetnsPool, kinds: tuple[str, str], tmp_path: Path, *, psk: bool, outer: int
) -> tuple[Side, Side]:
    """Two configured, running ends; sides[0] is the initiator (it alone knows an endpoint)."""
    needs_tun()
    needs_cmd("wg")
    for kind in kinds:
        if kind == "wireguard-go":
            needs_cmd(WIREGUARD_GO)
        elif kind == "wireguard-go-offload":
            needs_cmd(WIREGUARD_GO_OFFLOAD)
    a_ns, b_ns = pool.namespace(), pool.namespace()
    a_if, b_if = pool.veth(a_ns, OUTER4[0] + "/24", b_ns, OUTER4[1] + "/24")
    for ns, ifname, addr in ((a_ns, a_if, OUTER6[0]), (b_ns, b_if, OUTER6[1])):
        ns.run("ip", "-6", "addr", "add", addr + "/64", "dev", ifname, "nodad")
    sides = []
    for i, (ns, kind) in enumerate(((a_ns, kinds[0]), (b_ns, kinds[1]))):
        private, public = _genkey(ns)
        side = Side(ns, kind, unique_name("wgi"), private, public, LISTEN_PORTS[i],
                    OUTER4[i], OUTER6[i], INNER4[i], INNER6[i])  # fmt: skip
        _launch(side, tmp_path)
        sides.append(side)
    initiator, responder = sides
    psk_file = tmp_path / "psk"
    if psk:
        psk_file.write_text(initiator.ns.run("wg", "genpsk").stdout)
    for me, other in ((initiator, responder), (responder, initiator)):
        key_file = tmp_path / f"{me.interface}.key"
        key_file.write_text(me.private_key + "\n")
        args = ["set", me.interface, "private-key", str(key_file), "listen-port", str(me.port),
                "peer", other.public_key,
                "allowed-ips", f"{other.inner4}/32,{other.inner6}/128"]  # fmt: skip
        if psk:
            args += ["preshared-key", str(psk_file)]
        if me is initiator:
            host = other.outer4 if outer == 4 else f"[{other.outer6}]"
            args += ["endpoint", f"{host}:{other.port}"]
        me.wg(*args)
        me.ns.run("ip", "addr", "add", me.inner4 + "/24", "dev", me.interface)
        me.ns.run("ip", "-6", "addr", "add", me.inner6 + "/64", "dev", me.interface, "nodad")
        me.ns.run("ip", "link", "set", "mtu", "1420", "up", "dev", me.interface)
    return initiator, responder


def ping(src: Side, dst_addr: str, count: int = 3, check: bool = True):
    return src.ns.run(sys.executable, "-c", PING, dst_addr, str(count), "2", check=check,
                      timeout=30)  # fmt: skip


def first_ping(src: Side, dst_addr: str) -> None:
    """The first packets wait for the handshake: retry for a bounded few seconds."""
    deadline = time.monotonic() + 10
    while True:
        result = ping(src, dst_addr, count=1, check=False)
        if result.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"no reply from {dst_addr} through the tunnel:\n{result.stderr}")


def tcp_transfer(sender: Side, receiver: Side, address: str, tmp_path: Path) -> None:
    payload = os.urandom(TRANSFER_BYTES)
    data_file = tmp_path / "payload.bin"
    data_file.write_bytes(payload)
    sink = receiver.ns.popen(
        sys.executable, "-c", SINK, address, str(TRANSFER_PORT),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert sink.stdout is not None
        assert sink.stdout.readline().strip() == "listening"
        sender.ns.run(sys.executable, "-c", SOURCE, address, str(TRANSFER_PORT), str(data_file),
                      timeout=60)  # fmt: skip
        out, err = sink.communicate(timeout=60)
    finally:
        if sink.poll() is None:
            sink.kill()
            sink.wait()
    length, digest = out.split()
    assert int(length) == TRANSFER_BYTES, err
    assert digest == hashlib.sha256(payload).hexdigest()


def iperf(client: Side, server: Side, address: str, reverse: bool = False) -> float:
    """One TCP stream for IPERF_SECONDS; returns the receiver's Gbit/s."""
    needs_cmd("iperf3")
    srv = server.ns.popen("iperf3", "-s", "-1", "-B", address, "-p", str(IPERF_PORT),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        args = ["iperf3", "-c", address, "-p", str(IPERF_PORT), "-t", str(IPERF_SECONDS), "-J"]
        if reverse:
            args.append("-R")
        report: dict = {}
        for _ in range(20):  # the server needs a moment to listen
            result = client.ns.run(*args, check=False, timeout=30)
            report = json.loads(result.stdout or "{}")
            if result.returncode == 0 and "error" not in report:
                break
            time.sleep(0.1)
        assert "sum_received" in report.get("end", {}), report.get("error", report)
        received = report["end"]["sum_received"]
        assert received["bytes"] > 0
        return received["bits_per_second"] / 1e9
    finally:
        _reap(srv)


def _reap(proc: subprocess.Popen) -> None:
    """Wait briefly for a one-shot server to finish, then kill it."""
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def dump_peer(side: Side) -> list[str]:
    lines = side.wg("show", side.interface, "dump").splitlines()
    assert len(lines) == 2, lines
    return lines[1].split("\t")


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
    a_private, a_public = _genkey(a_ns)
    b_private, b_public = _genkey(b_ns)
    b = Side(b_ns, "wireguard-go", unique_name("wgi"), b_private, b_public, LISTEN_PORTS[1],
             OUTER4[1], OUTER6[1], INNER4[1], INNER6[1])  # fmt: skip
    _launch(b, tmp_path)
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
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
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
