"""Offloads through real tunnels (csrc/offload*.c, csrc/dataplane_offload.c): wgfastd<->wgfastd
with every offload on (WGFAST_OFFLOAD unset) and with none (WGFAST_OFFLOAD=off) must deliver the
same bytes: one SHA-256 over a large TCP transfer, IPv4 and IPv6 inside, at the default MSS and
at odd ones; a UDP datagram exactly at the MTU passes and one byte over does not; an application's
UDP GSO send (USO on the TUN, where the kernel has it) arrives as its datagrams; and
wireguard-go-offload still interoperates with offloads on."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from support.netns import NetnsPool
from support.tunnel import Side, first_ping, iperf, make_pair

PORT = 5301
TRANSFER_BYTES = 24 * 1024 * 1024
MTU = 1420

SINK = """
import hashlib, socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
with socket.socket(family, socket.SOCK_STREAM) as srv:
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((sys.argv[1], int(sys.argv[2])))
    srv.listen(1)
    print("listening", flush=True)
    srv.settimeout(30)
    conn, _ = srv.accept()
    digest, total = hashlib.sha256(), 0
    conn.settimeout(60)
    while chunk := conn.recv(1 << 20):
        digest.update(chunk)
        total += len(chunk)
print(total, digest.hexdigest(), flush=True)
"""

# argv: address port file mss (0: the default)
SOURCE = """
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
with socket.socket(family, socket.SOCK_STREAM) as conn, open(sys.argv[3], "rb") as f:
    if int(sys.argv[4]):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, int(sys.argv[4]))
    conn.settimeout(30)
    conn.connect((sys.argv[1], int(sys.argv[2])))
    conn.sendfile(f)
"""

# argv: address port size count gso(0/1). Receiver side: prints the sizes and digests it got.
UDP_SINK = """
import hashlib, socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("listening", flush=True)
s.settimeout(3)
got = []
try:
    while True:
        got.append(s.recv(65536))
except socket.timeout:
    pass
print(" ".join(f"{len(d)}:{hashlib.sha256(d).hexdigest()[:16]}" for d in got), flush=True)
"""

UDP_SOURCE = """
import socket, struct, sys
addr, port, size, count, gso = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \\
    int(sys.argv[4]), int(sys.argv[5])
family = socket.AF_INET6 if ":" in addr else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
if family == socket.AF_INET:
    s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO: never fragment
else:
    s.setsockopt(socket.IPPROTO_IPV6, 23, 2)  # IPV6_MTU_DISCOVER
data = [bytes((i * 31 + j) & 0xFF for j in range(size)) for i in range(count)]
try:
    if gso:
        s.sendmsg([b"".join(data)], [(socket.SOL_UDP, 103, struct.pack("=H", size))], 0,
                  (addr, port))
    else:
        for d in data:
            s.sendto(d, (addr, port))
except OSError as exc:
    print("error", exc.errno, flush=True)
    sys.exit(0)
print("sent", flush=True)
"""


@pytest.fixture
def offload_env(monkeypatch):
    def use(mode: str | None) -> None:
        if mode is None:
            monkeypatch.delenv("WGFAST_OFFLOAD", raising=False)
        else:
            monkeypatch.setenv("WGFAST_OFFLOAD", mode)

    return use


def _log_offloads(tmp_path: Path, side: Side) -> str:
    text = (tmp_path / f"{side.interface}.log").read_text()
    found = re.findall(r"data plane offloads: (\S+)", text)
    assert found, text[-2000:]
    return found[-1]


def _transfer(sender: Side, receiver: Side, address: str, data_file: Path, mss: int) -> str:
    sink = receiver.ns.popen(sys.executable, "-c", SINK, address, str(PORT),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None
        assert sink.stdout.readline().strip() == "listening"
        sender.ns.run(sys.executable, "-c", SOURCE, address, str(PORT), str(data_file), str(mss),
                      timeout=90)  # fmt: skip
        out, err = sink.communicate(timeout=90)
    finally:
        if sink.poll() is None:
            sink.kill()
            sink.wait()
    length, digest = out.split()
    assert int(length) == data_file.stat().st_size, err
    return digest


def _udp(sender: Side, receiver: Side, address: str, size: int, count: int, gso: bool):
    sink = receiver.ns.popen(sys.executable, "-c", UDP_SINK, address, str(PORT),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None
        assert sink.stdout.readline().strip() == "listening"
        sent = sender.ns.run(sys.executable, "-c", UDP_SOURCE, address, str(PORT), str(size),
                             str(count), str(int(gso)), timeout=30).stdout.strip()  # fmt: skip
        out, _ = sink.communicate(timeout=30)
    finally:
        if sink.poll() is None:
            sink.kill()
            sink.wait()
    return sent, out.split()


@pytest.mark.parametrize("inner", [4, 6])
def test_offload_on_and_off_deliver_identical_bytes(
    netns_pool: NetnsPool, tmp_path: Path, offload_env, inner: int
):
    payload = os.urandom(TRANSFER_BYTES)
    data_file = tmp_path / "payload.bin"
    data_file.write_bytes(payload)
    expected = hashlib.sha256(payload).hexdigest()
    # The inner TCP header is 32 bytes (timestamps): MSS 1380/1360 fills 1420 exactly.
    mss_cases = [0, 536, 1001] if inner == 4 else [0, 1219]
    digests: dict[str, list[str]] = {}
    for mode in ("off", None):
        offload_env(mode)
        a, b = make_pair(netns_pool, ("wgfastd", "wgfastd"), tmp_path, psk=False, outer=inner)
        granted = _log_offloads(tmp_path, a)
        if mode == "off":
            assert granted == "none"
        else:
            assert "vnet" in granted and "tso" in granted and "tun-gro" in granted, granted
            assert "udp-gso" in granted and "udp-gro" in granted, granted
        dst_a, dst_b = (a.inner4, b.inner4) if inner == 4 else (a.inner6, b.inner6)
        first_ping(a, dst_b)
        results = []
        for mss in mss_cases:
            results.append(_transfer(a, b, dst_b, data_file, mss))  # a -> b
            results.append(_transfer(b, a, dst_a, data_file, mss))  # b -> a
        digests[mode or "on"] = results
    assert digests["on"] == digests["off"] == [expected] * len(digests["on"])


@pytest.mark.parametrize("inner", [4, 6])
def test_offload_mtu_edges_and_udp_gso_through_the_tunnel(
    netns_pool: NetnsPool, tmp_path: Path, offload_env, inner: int
):
    offload_env(None)
    a, b = make_pair(netns_pool, ("wgfastd", "wgfastd"), tmp_path, psk=False, outer=4)
    dst = b.inner4 if inner == 4 else b.inner6
    first_ping(a, dst)
    at_mtu = MTU - (28 if inner == 4 else 48)  # UDP payload filling the MTU exactly
    sent, got = _udp(a, b, dst, at_mtu, 3, gso=False)
    assert sent == "sent" and [g.split(":")[0] for g in got] == [str(at_mtu)] * 3
    sent, got = _udp(a, b, dst, at_mtu + 1, 1, gso=False)
    assert sent.startswith("error") and got == []  # EMSGSIZE: never past the MTU
    # 40 datagrams in one UDP GSO send: USO on the TUN hands them to us as one super-packet.
    sent, got = _udp(a, b, dst, 1000, 40, gso=True)
    assert sent == "sent"
    expected = [
        f"1000:{hashlib.sha256(bytes((i * 31 + j) & 0xFF for j in range(1000))).hexdigest()[:16]}"
        for i in range(40)
    ]
    assert got == expected


def test_offload_interop_with_wireguard_go_offload(
    netns_pool: NetnsPool, tmp_path: Path, offload_env
):
    offload_env(None)
    payload = os.urandom(TRANSFER_BYTES)
    data_file = tmp_path / "payload.bin"
    data_file.write_bytes(payload)
    expected = hashlib.sha256(payload).hexdigest()
    for kinds in (("wgfastd", "wireguard-go-offload"), ("wireguard-go-offload", "wgfastd")):
        a, b = make_pair(netns_pool, kinds, tmp_path, psk=True, outer=4)
        first_ping(a, b.inner4)
        first_ping(a, b.inner6)
        assert _transfer(a, b, b.inner4, data_file, 0) == expected
        assert _transfer(b, a, a.inner6, data_file, 0) == expected
        assert iperf(a, b, b.inner4) > 0.05
        assert iperf(a, b, b.inner4, reverse=True) > 0.05
