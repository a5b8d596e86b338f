"""The data plane's source addresses and ECN on loopback, through the Python skin.

Every 127.0.0.0/8 address is the host's, so a socket bound to the wildcard address receives
datagrams sent to 127.0.0.5 and may send from it: enough to see that the data plane learns the
local address a peer's datagrams came to (IP_PKTINFO), sends from it, and forgets one the host
does not have (192.0.2.1, TEST-NET-1) by sending from the route's choice; and that the outer
TOS carries the inner packet's ECN field, and a CE mark on the outer header reaches the inner
packet (RFC 6040). Traffic stays on loopback.
"""

from __future__ import annotations

import hashlib
import socket
import struct
from collections.abc import Iterator

import pytest

from support.dataplane import MTU, PEER, Side, handshake, ip4_packet, open_side, wait_readable
from wgfast import _native as native

LO = socket.if_nametoindex("lo")
GONE = ("192.0.2.1", 0)  # not an address of this host
ECT_1, ECT_0, CE = 1, 2, 3
IP_RECVTOS = getattr(socket, "IP_RECVTOS", 13)


def open_wildcard_side(peer_ip: str) -> Side:
    """A side whose UDP socket takes datagrams to any local address."""
    side = open_side(peer_ip)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0", 0))
    side.dp.set_sockets(udp.fileno(), -1)
    side.udp.close()
    side.udp = udp
    return side


@pytest.fixture
def side() -> Iterator[Side]:
    s = open_wildcard_side("10.0.0.2")
    yield s
    s.close()


@pytest.fixture
def remote() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2)
    yield sock
    sock.close()


IDENTITY = bytes(32)  # the side's public key: what a sender's mac1 is keyed by


def initiation() -> bytes:
    """An initiation the data plane admits: a valid mac1 for IDENTITY (the rest is zeros)."""
    body = struct.pack("<I", 1) + bytes(112)
    mac1_key = hashlib.blake2s(b"mac1----" + IDENTITY).digest()
    return body + hashlib.blake2s(body, digest_size=16, key=mac1_key).digest() + bytes(16)


def response() -> bytes:
    return struct.pack("<I", 2) + bytes(88)


def test_a_handshake_reports_the_address_it_came_to(side: Side, remote: socket.socket) -> None:
    port = side.udp.getsockname()[1]
    side.dp.set_identity(IDENTITY)
    side.start()
    remote.sendto(initiation(), ("127.0.0.5", port))
    assert wait_readable(side.dp.event_fd)
    handshakes, _ = side.dp.take_events(with_local=True)
    assert handshakes == [(initiation(), remote.getsockname(), ("127.0.0.5", LO))]


def test_a_handshake_leaves_from_the_source_asked_for(side: Side, remote: socket.socket) -> None:
    to = remote.getsockname()
    side.dp.send_datagram(0, to, response(), ("127.0.0.5", LO))
    assert remote.recvfrom(2048)[1][0] == "127.0.0.5"
    # The peer's own source, when the destination is its endpoint.
    side.dp.set_endpoint(PEER, to, ("127.0.0.6", LO))
    assert side.dp.get_source(PEER) == ("127.0.0.6", LO)
    side.dp.send_datagram(PEER, to, response())
    assert remote.recvfrom(2048)[1][0] == "127.0.0.6"
    side.dp.set_endpoint(PEER, to)  # a configured endpoint: the route chooses again
    assert side.dp.get_source(PEER) is None


def test_a_source_the_host_lacks_gives_way_to_the_route(side: Side,
                                                        remote: socket.socket) -> None:
    to = remote.getsockname()
    side.dp.set_endpoint(PEER, to, GONE)
    side.dp.send_datagram(PEER, to, response())
    assert remote.recvfrom(2048)[1][0] == "127.0.0.1"
    assert side.dp.get_source(PEER) is None
    assert side.dp.stats()["source_forgotten"] == 1


@pytest.fixture
def pair() -> Iterator[tuple[Side, Side]]:
    a, b = open_side("10.0.0.2"), open_wildcard_side("10.0.0.1")
    a.dp.set_endpoint(PEER, ("127.0.0.7", b.udp.getsockname()[1]))
    b.dp.set_endpoint(PEER, a.addr)
    yield a, b
    for s in (a, b):
        s.close()


def test_data_answers_from_the_address_it_came_to(pair: tuple[Side, Side]) -> None:
    a, b = pair
    handshake(a, b)
    a.start()
    b.start()
    hello = ip4_packet("10.0.0.1", "10.0.0.2", 100, 1)
    a.tun.send(hello)
    assert b.read_tun() == hello
    assert b.dp.get_source(PEER) == ("127.0.0.7", LO)
    reply = ip4_packet("10.0.0.2", "10.0.0.1", 100, 2)
    b.tun.send(reply)
    assert a.read_tun() == reply
    # A roams to where authenticated data came from: still the address it talks to.
    assert a.dp.get_endpoint(PEER) == ("127.0.0.7", b.udp.getsockname()[1])
    # A source that went away: B's data leaves from the route's choice and gets through.
    b.dp.set_endpoint(PEER, a.addr, GONE)
    b.tun.send(reply)
    assert a.read_tun() == reply
    assert a.dp.get_endpoint(PEER) == ("127.0.0.1", b.udp.getsockname()[1])
    assert b.dp.get_source(PEER) is None and b.dp.stats()["source_forgotten"] == 1


def ecn_packet(src: str, dst: str, ecn: int, seed: int) -> bytes:
    """An IPv4 UDP-ish packet with DSCP AF11 and the given ECN field (checksum filled in)."""
    p = bytearray(ip4_packet(src, dst, 60, seed))
    p[1] = 0x28 | ecn
    words = struct.unpack("!10H", bytes(p[:20]))
    total = sum(words)
    total = (total >> 16) + (total & 0xFFFF)
    struct.pack_into("!H", p, 10, ~(total + (total >> 16)) & 0xFFFF)
    return bytes(p)


def header_checksum_ok(p: bytes) -> bool:
    total = sum(struct.unpack("!10H", p[:20]))
    while total >> 16:
        total = (total >> 16) + (total & 0xFFFF)
    return total == 0xFFFF


def test_ecn_goes_out_with_the_packet_and_congestion_comes_back_in() -> None:
    a, b = open_side("10.0.0.2"), open_side("10.0.0.1")
    wire = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # between them, reading the TOS
    try:
        wire.bind(("127.0.0.1", 0))
        wire.setsockopt(socket.IPPROTO_IP, IP_RECVTOS, 1)
        wire.settimeout(2)
        a.dp.set_endpoint(PEER, wire.getsockname())
        b.dp.set_endpoint(PEER, wire.getsockname())
        handshake(a, b)
        a.start()
        b.start()
        for ecn in (0, ECT_1, ECT_0, CE):
            sent = ecn_packet("10.0.0.1", "10.0.0.2", ecn, ecn)
            a.tun.send(sent)
            datagram, ancillary, _, _ = wire.recvmsg(MTU + 64, socket.CMSG_SPACE(4))
            [(_, _, tos)] = ancillary
            assert tos[0] & 3 == ecn  # the outer header carries the inner field
            # On to B with the outer marked CE, as a congested router would.
            wire.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, CE)
            wire.sendto(datagram, b.udp.getsockname())
            arrived = b.read_tun()
            assert arrived[1] == 0x28 | (CE if ecn else 0)  # Not-ECT stays Not-ECT
            assert arrived[:1] + arrived[2:10] + arrived[12:] == sent[:1] + sent[2:10] + sent[12:]
            assert header_checksum_ok(arrived)
            wire.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0)
    finally:
        wire.close()
        for s in (a, b):
            s.close()


def test_a_gso_batch_splits_where_the_ecn_field_changes() -> None:
    """UDP GSO sends a run of equal-size datagrams with one control message: a run whose ECN
    fields differ must go as several, each outer header with its own packet's field."""
    a, b = open_side("10.0.0.2"), open_side("10.0.0.1")
    wire = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        wire.bind(("127.0.0.1", 0))
        wire.setsockopt(socket.IPPROTO_IP, IP_RECVTOS, 1)
        wire.settimeout(2)
        if not a.dp.set_offloads(native.DP_OFFLOAD_UDP_GSO) & native.DP_OFFLOAD_UDP_GSO:
            pytest.skip("no UDP GSO")
        a.dp.set_endpoint(PEER, wire.getsockname())
        handshake(a, b)
        fields = [ECT_0] * 4 + [CE] * 4 + [0] * 4 + [ECT_1] * 4
        for n, ecn in enumerate(fields):  # queued before the loop runs: one batch
            a.tun.send(ecn_packet("10.0.0.1", "10.0.0.2", ecn, n))
        assert a.dp.run_once(1000) >= 0
        seen = []
        for _ in fields:
            _, ancillary, _, _ = wire.recvmsg(MTU + 64, socket.CMSG_SPACE(4))
            seen.append(ancillary[0][2][0] & 3)
        assert seen == fields
        stats = a.dp.stats()
        assert stats["udp_gso_sends"] == 4 and stats["sendmmsg_packets"] == len(fields)
    finally:
        wire.close()
        for s in (a, b):
            s.close()
