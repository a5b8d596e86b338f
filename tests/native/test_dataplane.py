"""The compiled data plane through its Python skin: two data planes sealing to each other over
UDP on 127.0.0.1 with SOCK_SEQPACKET socketpairs in place of TUN devices, each loop running on its
own thread with the GIL released; and, as root, two real TUN interfaces in two network namespaces
joined by a veth pair, with TCP (iperf3) through the tunnel."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from support import needs_cmd, needs_tun
from support.dataplane import (
    KEY_B,
    MTU,
    PEER,
    Side,
    handshake,
    ip4_packet,
    open_side,
    wait_readable,
)
from wgfast import _native as native


@pytest.fixture
def pair() -> Iterator[tuple[Side, Side]]:
    a, b = open_side("10.0.0.2"), open_side("10.0.0.1")
    a.dp.set_endpoint(PEER, b.addr)
    b.dp.set_endpoint(PEER, a.addr)
    yield a, b
    for side in (a, b):
        side.close()


def test_packets_cross_both_ways(pair: tuple[Side, Side]) -> None:
    a, b = pair
    handshake(a, b)
    a.start()
    b.start()
    sent = [ip4_packet("10.0.0.1", "10.0.0.2", n, n) for n in (20, 100, 1000, MTU)]
    for p in sent:
        a.tun.send(p)
    assert [b.read_tun() for _ in sent] == sent
    # B was the responder: its next keypair was confirmed by A's first packet.
    assert wait_readable(b.dp.event_fd)
    assert b.dp.poll() == [(native.DP_MSG_KEYPAIR_CONFIRMED, PEER, b"", None)]
    reply = ip4_packet("10.0.0.2", "10.0.0.1", 300, 5)
    b.tun.send(reply)
    assert a.read_tun() == reply
    assert a.stop() == 0 and b.stop() == 0
    info = a.dp.peer_info(PEER)
    assert info["tx_packets"] == 4 and info["rx_packets"] == 1
    assert info["has_current"] and info["current_is_initiator"]
    assert info["current_send_counter"] == 4
    assert b.dp.peer_info(PEER)["endpoint"] == a.addr
    assert a.dp.stats()["events_up"] == 0


def test_staged_until_keypair_then_flushed(pair: tuple[Side, Side]) -> None:
    a, b = pair
    a.start()
    b.start()
    sent = [ip4_packet("10.0.0.1", "10.0.0.2", 60 + i, i) for i in range(10)]
    for p in sent:
        a.tun.send(p)
    assert wait_readable(a.dp.event_fd)
    time.sleep(0.1)  # let every packet reach the staging queue
    assert a.dp.poll() == [(native.DP_MSG_NEED_HANDSHAKE, PEER, b"", None)]  # once, not 10 times
    assert not wait_readable(a.dp.event_fd, 0)
    assert a.dp.peer_info(PEER)["staged"] == 10
    handshake(a, b)
    assert [b.read_tun() for _ in sent] == sent
    assert a.dp.stats()["staged_flushed"] == 10


def test_handshake_messages_go_up_with_their_source(pair: tuple[Side, Side]) -> None:
    a, b = pair
    a.start()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    initiation = b"\x01\0\0\0" + os.urandom(144)
    response = b"\x02\0\0\0" + os.urandom(88)
    cookie = b"\x03\0\0\0" + os.urandom(60)
    for msg in (initiation, response, cookie, initiation[:100], b"\x05" * 40, b""):
        sender.sendto(msg, a.addr)
    assert wait_readable(a.dp.event_fd)
    time.sleep(0.1)
    got = a.dp.poll()
    src = sender.getsockname()
    assert got == [(native.DP_MSG_HANDSHAKE, 0, m, src) for m in (initiation, response, cookie)]
    drops = a.dp.stats()["drops"]
    assert drops["bad_size"] == 1 and drops["bad_type"] == 2
    sender.close()


def test_forged_and_replayed_data_are_dropped(pair: tuple[Side, Side]) -> None:
    a, b = pair
    handshake(a, b)
    sniffer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sniffer.bind(("127.0.0.1", 0))
    a.dp.set_endpoint(PEER, sniffer.getsockname())
    a.start()
    b.start()
    a.tun.send(ip4_packet("10.0.0.1", "10.0.0.2", 200))
    sniffer.settimeout(2)
    sealed = sniffer.recv(2000)
    assert len(sealed) == 16 + 208 + 16 and sealed[0] == 4
    sniffer.sendto(sealed, b.addr)
    assert b.read_tun() is not None
    sniffer.sendto(sealed, b.addr)  # replay
    tampered = bytearray(sealed)
    tampered[8] ^= 1  # another counter: the tag no longer matches
    sniffer.sendto(bytes(tampered), b.addr)
    sniffer.sendto(sealed[:4] + b"\x99\x99\x99\x99" + sealed[8:], b.addr)  # unknown index
    time.sleep(0.2)
    assert b.read_tun(0.1) is None
    drops = b.dp.stats()["drops"]
    assert (drops["replay"], drops["auth"], drops["unknown_index"]) == (1, 1, 1)
    assert b.dp.get_endpoint(PEER) == sniffer.getsockname()  # roamed to the authentic source
    sniffer.close()


def test_batches_under_load_and_no_event_per_packet(pair: tuple[Side, Side]) -> None:
    a, b = pair
    handshake(a, b)
    b.start()
    total = 0
    for _ in range(10):
        for i in range(100):
            a.tun.send(ip4_packet("10.0.0.1", "10.0.0.2", 1400, i))
        assert a.dp.run_once(1000) == 0  # one poll round: one TUN drain, one sealed batch
        total += 100
    received = 0
    while received < total and b.read_tun(2) is not None:
        received += 1
    sa, sb = a.dp.stats(), b.dp.stats()
    assert received == total
    assert sa["sendmmsg_packets"] == total
    assert sa["sendmmsg_packets"] / sa["sendmmsg_calls"] > 8  # whole batches per syscall
    assert sb["recvmmsg_packets"] / sb["recvmmsg_calls"] > 1
    assert sa["events_up"] == 0 and sb["events_up"] == 1  # B's keypair confirmation only
    print(f"sendmmsg: {sa['sendmmsg_packets']} packets / {sa['sendmmsg_calls']} calls; "
          f"recvmmsg: {sb['recvmmsg_packets']} / {sb['recvmmsg_calls']}")


def test_keepalive_and_endpoint_roundtrip(pair: tuple[Side, Side]) -> None:
    a, b = pair
    handshake(a, b)
    a.start()
    b.start()
    a.dp.send_keepalive(PEER)
    deadline = time.monotonic() + 2
    while b.dp.stats()["keepalives_received"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert b.dp.stats()["keepalives_received"] == 1
    assert b.read_tun(0.1) is None
    info = b.dp.peer_info(PEER)
    assert info["last_received_ns"] > 0 and info["last_data_received_ns"] == 0
    a.dp.set_endpoint(PEER, ("::1", 51820))
    assert a.dp.get_endpoint(PEER) == ("::1", 51820)
    a.dp.set_endpoint(PEER, None)
    assert a.dp.get_endpoint(PEER) is None
    assert a.dp.route("10.0.0.2") == PEER and a.dp.route("10.0.0.3") == 0
    with pytest.raises(OSError):
        a.dp.add_peer(PEER)
    with pytest.raises(ValueError):
        a.dp.install_keypair(PEER, 1, 2, b"short", KEY_B, True, 0)


def test_tun_failure_ends_the_loop(pair: tuple[Side, Side]) -> None:
    a, _ = pair
    a.start()
    a.tun.close()  # the "interface" disappears
    assert a.thread is not None
    a.thread.join(5)
    assert a.result and a.result[0] < 0


# ---- real TUN devices in network namespaces ----

PEER_SCRIPT = r"""
import fcntl, json, os, socket, struct, subprocess, sys, threading
from wgfast import _native as native
name, addr, peer_net, port, peer_ip, peer_port, initiator = sys.argv[1:8]
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH", name.encode(), 0x0001 | 0x1000))  # TUN, NO_PI
subprocess.run(["ip", "addr", "add", addr, "dev", name], check=True)
subprocess.run(["ip", "link", "set", name, "mtu", "1420", "up"], check=True)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", int(port)))
for opt in (33, 32):  # SO_RCVBUFFORCE, SO_SNDBUFFORCE: ~7 MB, as wireguard-go
    udp.setsockopt(socket.SOL_SOCKET, opt, 7 << 20)
dp = native.DataPlane(fd, udp.fileno(), -1, 1420)
dp.add_peer(1)
dp.add_allowed_ip(1, peer_net)
dp.set_endpoint(1, (peer_ip, int(peer_port)))
k1, k2 = bytes(range(32)), bytes(range(50, 82))
init = initiator == "1"
dp.install_keypair(1, 1 if init else 2, 2 if init else 1, k1 if init else k2,
                   k2 if init else k1, init, __import__("time").monotonic_ns())
result = []
t = threading.Thread(target=lambda: result.append(dp.run()))
t.start()
print("ready", flush=True)
sys.stdin.read()
dp.stop()
t.join()
print(json.dumps({"run": result[0], "stats": dp.stats()}), flush=True)
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def two_namespaces() -> Iterator[tuple[str, str]]:
    needs_tun()
    needs_cmd("ip")
    tag = uuid.uuid4().hex[:6]
    ns1, ns2 = f"wgf-a-{tag}", f"wgf-b-{tag}"
    _ip("netns", "add", ns1)
    _ip("netns", "add", ns2)
    try:
        _ip("link", "add", "veth-a", "netns", ns1, "type", "veth", "peer", "veth-b", "netns", ns2)
        _ip("-n", ns1, "addr", "add", "192.168.77.1/24", "dev", "veth-a")
        _ip("-n", ns2, "addr", "add", "192.168.77.2/24", "dev", "veth-b")
        for ns, dev in ((ns1, "veth-a"), (ns2, "veth-b")):
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield ns1, ns2
    finally:
        _ip("netns", "del", ns1)
        _ip("netns", "del", ns2)


def _start_peer(ns: str, *args: str) -> subprocess.Popen[str]:
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(native.__file__)))
    env = dict(os.environ, PYTHONPATH=package_root)
    proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", PEER_SCRIPT, *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _finish_peer(proc: subprocess.Popen[str]) -> dict:
    out, _ = proc.communicate(input="", timeout=10)  # end of stdin: stop and report
    return json.loads(out.strip().splitlines()[-1])


def test_real_tun_tcp_through_the_tunnel(two_namespaces: tuple[str, str]) -> None:
    iperf3 = shutil.which("iperf3")
    ns1, ns2 = two_namespaces
    a = _start_peer(ns1, "wga", "10.9.0.1/24", "10.9.0.2/32", "51820", "192.168.77.2", "51821",
                    "1")
    b = _start_peer(ns2, "wgb", "10.9.0.2/24", "10.9.0.1/32", "51821", "192.168.77.1", "51820",
                    "0")
    try:
        # A UDP datagram through the tunnel and back proves both directions and both TUNs.
        echo = subprocess.Popen(
            ["ip", "netns", "exec", ns2, sys.executable, "-c",
             "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM);"
             "s.bind(('10.9.0.2', 9000)); d, a = s.recvfrom(2000); s.sendto(d[::-1], a)"])
        time.sleep(0.3)
        probe = subprocess.run(
            ["ip", "netns", "exec", ns1, sys.executable, "-c",
             "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM);"
             "s.settimeout(3); s.sendto(b'hello tunnel', ('10.9.0.2', 9000));"
             "print(s.recv(2000).decode())"], capture_output=True, text=True, timeout=10)
        echo.wait(5)
        assert probe.stdout.strip() == "lennut olleh"
        if iperf3 is not None:
            server = subprocess.Popen(["ip", "netns", "exec", ns2, iperf3, "-s", "-1", "-B",
                                       "10.9.0.2"], stdout=subprocess.DEVNULL)
            time.sleep(0.5)
            run = subprocess.run(["ip", "netns", "exec", ns1, iperf3, "-c", "10.9.0.2", "-t", "3",
                                  "-J"], capture_output=True, text=True, timeout=30)
            server.wait(10)
            result = json.loads(run.stdout)
            bps = result["end"]["sum_received"]["bits_per_second"]
            print(f"iperf3 TCP through the tunnel: {bps / 1e9:.2f} Gbit/s")
            assert bps > 1e6
    finally:
        sa, sb = _finish_peer(a), _finish_peer(b)
    assert sa["run"] == 0 and sb["run"] == 0
    for s in (sa["stats"], sb["stats"]):
        assert s["drops"]["auth"] == 0 and s["drops"]["replay"] == 0
        print(json.dumps(s))
    assert sa["stats"]["tx_packets"] > 0 and sb["stats"]["rx_packets"] > 0
    assert sb["stats"]["events_up"] <= 2


def test_real_tun_deleted_ends_the_loop(two_namespaces: tuple[str, str]) -> None:
    ns1, _ = two_namespaces
    a = _start_peer(ns1, "wga", "10.9.0.1/24", "10.9.0.2/32", "51820", "192.168.77.2", "51821",
                    "1")
    _ip("-n", ns1, "link", "del", "wga")
    time.sleep(0.3)
    result = _finish_peer(a)
    assert result["run"] < 0  # the daemon would exit on this
