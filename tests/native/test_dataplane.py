"""The compiled data plane through its Python skin: two data planes sealing to each other over
UDP on 127.0.0.1 with SOCK_SEQPACKET socketpairs in place of TUN devices, each loop running on its
own thread with the GIL released; and, as root, two real TUN interfaces in two network namespaces
joined by a veth pair, with TCP (iperf3) through the tunnel."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from support import needs_cmd, needs_tun
from support.dataplane import (
    KEY_A,
    KEY_B,
    MTU,
    PEER,
    Side,
    handshake,
    ip4_packet,
    open_side,
    wait_readable,
    with_mac1,
)
from wgfast import _native as native

CONFIRMED = native.DP_EV_KEYPAIR_CONFIRMED
ACTIVITY = native.DP_EV_ACTIVITY


@pytest.fixture
def pair() -> Iterator[tuple[Side, Side]]:
    a, b = open_side("10.0.0.2"), open_side("10.0.0.1")
    a.dp.set_endpoint(PEER, b.addr)
    b.dp.set_endpoint(PEER, a.addr)
    yield a, b
    for side in (a, b):
        side.close()


def events_of(side: Side) -> list[tuple[int, int]]:
    """Takes what waits: the (peer, event bits) of each peer event (no handshake datagram may
    wait)."""
    handshakes, peer_events = side.dp.take_events()
    assert handshakes == []
    return [(e[0], e[1]) for e in peer_events]


def test_packets_cross_both_ways(pair: tuple[Side, Side]) -> None:
    a, b = pair
    index_a, index_b = handshake(a, b)
    a.start()
    b.start()
    sent = [ip4_packet("10.0.0.1", "10.0.0.2", n, n) for n in (20, 100, 1000, MTU)]
    for p in sent:
        a.tun.send(p)
    assert [b.read_tun() for _ in sent] == sent
    assert a.dp.run_once(0) == -errno.EBUSY  # A's loop runs (it sent them) and owns its rounds
    # B was the responder: its next keypair was confirmed by A's first packet, which is reported
    # at once, in one event of the peer with the activity that confirmed it.
    assert wait_readable(b.dp.event_fd)
    handshakes, peer_events = b.dp.take_events()
    assert handshakes == []
    [(peer, events, confirmed_index, _, dropped, confirmed_ns, endpoint, activity)] = peer_events
    assert (peer, events, confirmed_index, dropped) == (PEER, CONFIRMED | ACTIVITY, index_b, 0)
    assert 0 < confirmed_ns <= time.monotonic_ns() and endpoint == a.addr
    tx_any, rx_any, tx_data_first, rx_data_first, rx_data_last = activity
    assert (tx_any, tx_data_first) == (0, 0) and 0 < rx_data_first <= rx_data_last <= rx_any
    reply = ip4_packet("10.0.0.2", "10.0.0.1", 300, 5)
    b.tun.send(reply)
    assert a.read_tun() == reply
    assert a.stop() == 0 and b.stop() == 0
    info = a.dp.peer_info(PEER)
    assert info["tx_packets"] == 4 and info["rx_packets"] == 1
    assert info["has_current"] and info["current_is_initiator"]
    assert info["current_send_counter"] == 4
    assert info["keypairs_live"] == 1 and not info["handshake_in_flight"]
    assert a.dp.index_owner(index_a) == PEER and b.dp.index_owner(index_b) == PEER
    assert b.dp.peer_info(PEER)["endpoint"] == a.addr
    # The initiator had nothing to report but its traffic: one coalesced activity event for
    # five packets, never an event per packet.
    assert a.dp.stats()["events_up"] == 1
    assert events_of(a) == [(PEER, ACTIVITY)]


def test_staged_until_keypair_then_flushed(pair: tuple[Side, Side]) -> None:
    a, b = pair
    a.start()
    b.start()
    sent = [ip4_packet("10.0.0.1", "10.0.0.2", 60 + i, i) for i in range(10)]
    for p in sent:
        a.tun.send(p)
    assert wait_readable(a.dp.event_fd)
    time.sleep(0.1)  # let every packet reach the staging queue
    assert events_of(a) == [(PEER, native.DP_EV_HANDSHAKE_WANTED)]  # once, not 10 times
    assert a.dp.stats()["events_up"] == 1
    assert not wait_readable(a.dp.event_fd, 0)
    # Asked once: more packets wait behind the same request without asking again.
    late = ip4_packet("10.0.0.1", "10.0.0.2", 90, 10)
    a.tun.send(late)
    sent.append(late)
    assert not wait_readable(a.dp.event_fd, 0.2)
    assert a.dp.stats()["events_up"] == 1
    assert a.dp.peer_info(PEER)["staged"] == 11
    handshake(a, b)
    assert [b.read_tun() for _ in sent] == sent
    assert a.dp.stats()["staged_flushed"] == 11
    assert a.dp.peer_info(PEER)["staged"] == 0


def test_handshake_messages_go_up_with_their_source(pair: tuple[Side, Side]) -> None:
    a, b = pair
    a.start()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    ours = struct.pack("<I", a.dp.begin_handshake(PEER))  # the index of a handshake in flight
    initiation = with_mac1(b"\x01\0\0\0" + os.urandom(144))
    response = with_mac1(b"\x02\0\0\0" + os.urandom(4) + ours + os.urandom(80))
    cookie = b"\x03\0\0\0" + ours + os.urandom(56)
    # What the data plane refuses before the queue: no mac1, and a response or cookie reply
    # for no index of ours.
    refused = (initiation[:-32] + bytes(32), response[:8] + bytes(4) + response[12:],
               cookie[:4] + bytes(4) + cookie[8:])
    for msg in (initiation, response, cookie, initiation[:100], b"\x05" * 40, b"", *refused):
        sender.sendto(msg, a.addr)
    assert wait_readable(a.dp.event_fd)
    time.sleep(0.1)
    handshakes, peer_events = a.dp.take_events()
    src = sender.getsockname()
    assert handshakes == [(m, src) for m in (initiation, response, cookie)]
    assert peer_events == []
    drops = a.dp.stats()["drops"]
    assert drops["bad_size"] == 1 and drops["bad_type"] == 2
    assert drops["bad_mac1"] == 1 and drops["unknown_handshake_index"] == 2
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
    unknown = 0x99999999
    assert b.dp.index_owner(unknown) == 0
    sniffer.sendto(sealed[:4] + unknown.to_bytes(4, "little") + sealed[8:], b.addr)
    time.sleep(0.2)
    assert b.read_tun(0.1) is None
    drops = b.dp.stats()["drops"]
    assert (drops["replay"], drops["auth"], drops["unknown_index"]) == (1, 1, 1)
    assert b.dp.get_endpoint(PEER) == sniffer.getsockname()  # roamed to the authentic source
    # ... and said so, with the keypair's confirmation, in the peer's one event.
    assert events_of(b) == [(PEER, CONFIRMED | native.DP_EV_ENDPOINT_CHANGED | ACTIVITY)]
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
    # A thousand packets each way: A's activity once, B's keypair confirmation and activity once.
    assert sa["events_up"] == 1 and sb["events_up"] == 2
    assert sa["event_signals"] <= 1 and sb["event_signals"] == 1
    assert events_of(a) == [(PEER, ACTIVITY)]
    assert events_of(b) == [(PEER, CONFIRMED | ACTIVITY)]
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
    # Authenticated, but no data: what the keepalive timers see.
    tx_any, rx_any, tx_data_first, rx_data_first, rx_data_last = b.dp.peer_info(PEER)["activity"]
    assert rx_any > 0 and (rx_data_first, rx_data_last) == (0, 0)
    tx_any, rx_any, tx_data_first, rx_data_first, rx_data_last = a.dp.peer_info(PEER)["activity"]
    assert tx_any > 0 and tx_data_first == 0 and rx_any == 0
    a.dp.set_endpoint(PEER, ("::1", 51820))
    assert a.dp.get_endpoint(PEER) == ("::1", 51820)
    a.dp.set_endpoint(PEER, None)
    assert a.dp.get_endpoint(PEER) is None
    assert a.dp.route("10.0.0.2") == PEER and a.dp.route("10.0.0.3") == 0
    with pytest.raises(OSError):
        a.dp.add_peer(PEER)
    index = a.dp.begin_handshake(PEER)
    with pytest.raises(ValueError):
        a.dp.install_keypair(PEER, index, 2, b"short", KEY_B, True, 0)
    assert a.dp.peer_info(PEER)["handshake_in_flight"]  # a refused keypair leaves it in flight


def test_keypairs_install_only_for_the_handshake_in_flight(pair: tuple[Side, Side]) -> None:
    a, _ = pair
    dp = a.dp
    now = time.monotonic_ns()

    def install(index: int) -> None:
        dp.install_keypair(PEER, index, 0x1234, KEY_A, KEY_B, True, now)

    for bad in (0, 1, 0x1111):  # indices no handshake of ours handed out
        with pytest.raises(OSError) as info:
            install(bad)
        assert info.value.errno == errno.ESTALE
    with pytest.raises(OSError) as info:
        dp.begin_handshake(PEER + 1)
    assert info.value.errno == errno.ENOENT
    first = dp.begin_handshake(PEER)
    assert dp.index_owner(first) == PEER and dp.peer_info(PEER)["handshake_in_flight"]
    second = dp.begin_handshake(PEER)  # a new handshake frees the one before
    assert second != first and dp.index_owner(first) == 0 and dp.index_owner(second) == PEER
    with pytest.raises(OSError) as info:
        install(first)
    assert info.value.errno == errno.ESTALE
    dp.end_handshake(PEER)  # abandoned
    assert dp.index_owner(second) == 0 and not dp.peer_info(PEER)["handshake_in_flight"]
    with pytest.raises(OSError) as info:
        install(second)
    assert info.value.errno == errno.ESTALE
    dp.end_handshake(PEER)  # nothing in flight: harmless
    assert dp.peer_info(PEER)["keypairs_live"] == 0

    # Installed, the keypair keeps the handshake's index; the same index cannot install twice.
    third = dp.begin_handshake(PEER)
    install(third)
    info_now = dp.peer_info(PEER)
    assert info_now["keypairs_live"] == 1 and not info_now["handshake_in_flight"]
    assert dp.index_owner(third) == PEER
    assert info_now["zero_at_ns"] > now  # the keys' zeroing is scheduled from the install
    with pytest.raises(OSError) as info:
        install(third)
    assert info.value.errno == errno.ESTALE

    # Rotation (initiator): current -> previous; the third session retires the first's keypair,
    # freeing its index and saying so.
    dp.take_events()
    fourth = dp.begin_handshake(PEER)
    install(fourth)
    assert dp.peer_info(PEER)["keypairs_live"] == 2
    assert dp.take_events() == ([], [])
    fifth = dp.begin_handshake(PEER)
    install(fifth)
    assert dp.peer_info(PEER)["keypairs_live"] == 2
    assert [dp.index_owner(i) for i in (third, fourth, fifth)] == [0, PEER, PEER]
    assert wait_readable(dp.event_fd, 0)
    _, [event] = dp.take_events()
    assert (event[0], event[1], event[3]) == (PEER, native.DP_EV_KEYPAIR_RETIRED, third)

    # Expired: every keypair goes, with its index.
    dp.expire_keypairs(PEER)
    assert dp.peer_info(PEER)["keypairs_live"] == 0 and not dp.peer_info(PEER)["has_current"]
    assert [dp.index_owner(i) for i in (fourth, fifth)] == [0, 0]
    _, [event] = dp.take_events()
    assert event[1] == native.DP_EV_KEYPAIR_RETIRED and event[3] in (fourth, fifth)

    # Removing the peer frees the index of its handshake in flight.
    sixth = dp.begin_handshake(PEER)
    dp.remove_peer(PEER)
    assert dp.index_owner(sixth) == 0


def test_sockets_and_mtu_change_under_the_running_loop_keep_the_session(
        pair: tuple[Side, Side]) -> None:
    a, b = pair
    index_a, index_b = handshake(a, b)
    a.start()
    b.start()
    sent = 0

    def cross(size: int, seed: int) -> None:
        nonlocal sent
        there = ip4_packet("10.0.0.1", "10.0.0.2", size, seed)
        back = ip4_packet("10.0.0.2", "10.0.0.1", size, seed + 1)
        a.tun.send(there)
        assert b.read_tun() == there
        b.tun.send(back)
        assert a.read_tun() == back
        sent += 1

    def session(side: Side) -> tuple:
        info = side.dp.peer_info(PEER)
        return (info["has_current"], info["has_next"], info["keypairs_live"],
                info["current_is_initiator"])

    for i in range(3):
        cross(1000, i)
    assert a.dp.peer_info(PEER)["current_send_counter"] == sent
    before = session(a), session(b)
    assert before == ((True, False, 1, True), (True, False, 1, False))

    new_udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    new_udp.bind(("127.0.0.1", 0))
    try:
        # A new listening socket (a listen-port change): B follows A to it by roaming.
        a.dp.set_sockets(new_udp.fileno(), -1)
        cross(1000, 10)
        assert b.dp.get_endpoint(PEER) == new_udp.getsockname()
        assert not wait_readable(a.udp.fileno(), 0)  # the old socket is out of the loop

        # Down (no socket at all) and up again: packets meanwhile are dropped, not the session.
        a.dp.set_sockets(-1, -1)
        a.tun.send(ip4_packet("10.0.0.1", "10.0.0.2", 100))
        deadline = time.monotonic() + 2
        while a.dp.stats()["drops"]["no_socket"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert a.dp.stats()["drops"]["no_socket"] == 1
        a.dp.set_sockets(new_udp.fileno(), -1)
        cross(500, 20)

        # A smaller MTU on both ends, then the first one back.
        for side in (a, b):
            side.dp.set_mtu(1280)
            assert side.dp.mtu == 1280
        cross(1280, 30)
        a.tun.send(ip4_packet("10.0.0.1", "10.0.0.2", MTU))  # no longer fits
        cross(200, 40)
        assert a.dp.stats()["drops"]["oversize"] == 1
        for side in (a, b):
            side.dp.set_mtu(MTU)
        cross(MTU, 50)

        # One session all along: the same keypairs, A's send counter never reset.
        assert (session(a), session(b)) == before
        assert a.dp.peer_info(PEER)["current_send_counter"] == sent
        assert b.dp.peer_info(PEER)["current_send_counter"] == sent
        assert a.dp.index_owner(index_a) == PEER and b.dp.index_owner(index_b) == PEER
        for side in (a, b):
            drops = side.dp.stats()["drops"]
            assert (drops["auth"], drops["replay"], drops["unknown_index"]) == (0, 0, 0)
        assert a.stop() == 0 and b.stop() == 0
    finally:
        for side in (a, b):
            if side.thread is not None and side.thread.is_alive():
                side.stop()
        new_udp.close()


@pytest.mark.parametrize("threads", [1, 2])
def test_reconfiguration_while_traffic_flows(pair: tuple[Side, Side], threads: int) -> None:
    """set_sockets() and set_mtu() pause the loop threads (one or two) between rounds: packets
    keep flowing in order through the swaps, under the same keypair."""
    a, b = pair
    a.dp.threads = b.dp.threads = threads
    handshake(a, b)
    a.start()
    b.start()
    spare = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    for s in spare:
        s.bind(("127.0.0.1", 0))
    sockets = [a.udp, *spare]
    sent = [ip4_packet("10.0.0.1", "10.0.0.2", 60 + i % 1000, i) for i in range(2000)]

    def feed() -> None:  # paced, so that the swaps below fall among the packets
        for i, p in enumerate(sent):
            a.tun.send(p)
            if i % 20 == 19:
                time.sleep(0.002)

    feeder = threading.Thread(target=feed, daemon=True)
    try:
        feeder.start()
        swaps = among_packets = 0
        while feeder.is_alive() or swaps < 10:
            a.dp.set_mtu((1280, MTU)[swaps % 2])
            b.dp.set_mtu((MTU, 1280)[swaps % 2])
            a.dp.set_sockets(sockets[swaps % 3].fileno(), -1)
            swaps += 1
            among_packets += a.dp.peer_info(PEER)["tx_packets"] < len(sent)
        received = [b.read_tun() for _ in sent]
        feeder.join(5)
        assert received == sent
        assert among_packets >= 5, f"only {among_packets} of {swaps} swaps met traffic"
        info = a.dp.peer_info(PEER)
        assert info["current_send_counter"] == len(sent) and info["keypairs_live"] == 1
        assert b.dp.peer_info(PEER)["rx_packets"] == len(sent)
        assert a.stop() == 0 and b.stop() == 0
    finally:
        for side in (a, b):
            if side.thread is not None and side.thread.is_alive():
                side.stop()
        for s in spare:
            s.close()


def test_set_mtu_moves_the_staged_packets_that_fit(pair: tuple[Side, Side]) -> None:
    """Staged packets move to the new MTU's buffers intact; those larger than it are dropped."""
    a, b = pair
    b.start()
    packets = [ip4_packet("10.0.0.1", "10.0.0.2", 1400 if i % 3 == 0 else 700 + i, i)
               for i in range(12)]
    for p in packets:
        a.tun.send(p)
    for _ in range(3):
        assert a.dp.run_once(20) == 0
    assert a.dp.peer_info(PEER)["staged"] == 12
    a.dp.set_mtu(1280)
    fits = [p for p in packets if len(p) <= 1280]
    assert a.dp.peer_info(PEER)["staged"] == len(fits) == 8
    assert a.dp.stats()["drops"]["oversize"] == 4
    handshake(a, b)
    for _ in range(3):
        a.dp.run_once(20)
    assert [b.read_tun() for _ in fits] == fits
    assert a.dp.stats()["staged_flushed"] == 8


def test_sockets_and_mtu_are_checked() -> None:
    side = open_side("10.0.0.2")
    try:
        assert side.dp.mtu == MTU
        for bad in (native.DP_MTU_MIN - 1, native.DP_MTU_MAX + 1):
            with pytest.raises(OSError) as info:
                side.dp.set_mtu(bad)
            assert info.value.errno == errno.EINVAL
        assert side.dp.mtu == MTU
        closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        fd = closed.fileno()
        closed.close()
        with pytest.raises(OSError) as info:
            side.dp.set_sockets(fd, -1)
        assert info.value.errno == errno.EINVAL
    finally:
        side.close()


def test_a_device_without_sockets_runs(pair: tuple[Side, Side]) -> None:
    """A data plane made while the device is down has no socket until it comes up."""
    a, b = pair
    test_end, dp_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    dp = native.DataPlane(dp_end.fileno())
    side = Side(dp, test_end, dp_end, a.udp)
    try:
        dp.set_identity(bytes(32))
        dp.add_peer(PEER)
        dp.add_allowed_ip(PEER, "10.0.0.2/32")
        dp.set_endpoint(PEER, b.addr)
        handshake(side, b)
        side.start()
        b.start()
        side.tun.send(ip4_packet("10.0.0.1", "10.0.0.2", 100))
        assert b.read_tun(0.3) is None
        deadline = time.monotonic() + 2
        while dp.stats()["drops"]["no_socket"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert dp.stats()["drops"]["no_socket"] == 1
        dp.set_sockets(a.udp.fileno(), -1)  # up
        packet = ip4_packet("10.0.0.1", "10.0.0.2", 100, 1)
        side.tun.send(packet)
        assert b.read_tun() == packet
        assert side.stop() == 0
    finally:
        if side.thread is not None and side.thread.is_alive():
            side.stop()
        dp.close()
        test_end.close()
        dp_end.close()


def test_stranded_packets_share_a_quarter_of_the_pool() -> None:
    """Peers that cannot start a handshake (the device has no private key, or the peer has no
    endpoint) hold at most DP_STRANDED_MAX staged packets together."""
    side = open_side("10.0.0.2")
    dp = side.dp
    peers = {PEER: "10.0.0.2"}
    for i in range(1, 4):
        dp.add_peer(PEER + i)
        dp.add_allowed_ip(PEER + i, f"10.0.{i}.0/24")
        peers[PEER + i] = f"10.0.{i}.1"

    def stage(peer: int, n: int = 100) -> None:
        for k in range(n):
            side.tun.send(ip4_packet("10.0.0.1", peers[peer], 60, k))
        for _ in range(3):
            assert dp.run_once(20) == 0

    def staged() -> list[int]:
        return [dp.peer_info(p)["staged"] for p in peers]

    try:
        dp.set_identity(None)
        for peer in peers:
            dp.set_endpoint(peer, ("127.0.0.1", 9))
            stage(peer)
        assert sum(staged()) == native.DP_STRANDED_MAX  # not 400: the rest overflowed
        assert dp.stats()["drops"]["staged_overflow"] == 400 - native.DP_STRANDED_MAX
        # With a private key they may start handshakes: the pool is theirs.
        dp.set_identity(bytes(32))
        stage(PEER + 3)
        assert staged()[3] == 100
        assert sum(staged()) == native.DP_STRANDED_MAX + 100
        # Peers without an endpoint are stranded too: alone, one stays within the share ...
        dp.set_endpoint(PEER + 3, None)
        before = dp.stats()["drops"]["staged_overflow"]
        stage(PEER + 3, 10)
        assert staged()[3] == 110 and dp.stats()["drops"]["staged_overflow"] == before
        # ... all of them (366 packets, over the share): a new packet only pushes out its own
        # peer's oldest.
        for peer in peers:
            dp.set_endpoint(peer, None)
        stage(PEER + 3, 10)
        assert staged() == [100, 100, 56, 110]
        assert dp.stats()["drops"]["staged_overflow"] == before + 10
    finally:
        side.close()


def test_event_fd_readable_at_once_for_a_confirmation_later_for_activity(
        pair: tuple[Side, Side]) -> None:
    a, b = pair
    delay_s = 0.4
    for side in (a, b):
        side.dp.set_time_limits(**dict(side.dp.time_limits, activity_report_ns=int(delay_s * 1e9)))
    _, index_b = handshake(a, b)
    a.start()
    b.start()
    assert not wait_readable(b.dp.event_fd, 0)
    packet = ip4_packet("10.0.0.1", "10.0.0.2", 100)
    start = time.monotonic()
    a.tun.send(packet)
    assert b.read_tun() == packet
    # The confirmation makes the fd readable at once, well before the activity delay.
    assert wait_readable(b.dp.event_fd, delay_s / 2)
    assert time.monotonic() - start < delay_s
    handshakes, peer_events = b.dp.take_events()
    assert handshakes == []
    assert [(e[0], e[1], e[2]) for e in peer_events] == [(PEER, CONFIRMED | ACTIVITY, index_b)]
    first_rx = peer_events[0][7][4]  # rx_data_last_ns
    assert not wait_readable(b.dp.event_fd, 0)  # taken (and acknowledged)

    # Traffic alone: reported once the delay has passed, not before.
    start = time.monotonic()
    a.tun.send(packet)
    assert b.read_tun() == packet
    assert not wait_readable(b.dp.event_fd, delay_s / 2)
    assert wait_readable(b.dp.event_fd, 5)
    assert time.monotonic() - start >= delay_s * 0.95
    _, peer_events = b.dp.take_events()
    assert [(e[0], e[1]) for e in peer_events] == [(PEER, ACTIVITY)]
    assert peer_events[0][7][4] > first_rx
    assert not wait_readable(b.dp.event_fd, 0)
    # The sender's activity was due at the same time, and waits for its own reader.
    assert wait_readable(a.dp.event_fd, 0)
    assert events_of(a) == [(PEER, ACTIVITY)]


def test_run_timers_reports_activity_once_due(pair: tuple[Side, Side]) -> None:
    """Without a running loop, the caller's run_timers() is what reports waiting activity."""
    a, b = pair
    delay_s = 0.5
    a.dp.set_time_limits(**dict(a.dp.time_limits, activity_report_ns=int(delay_s * 1e9)))
    handshake(a, b)
    b.start()
    packet = ip4_packet("10.0.0.1", "10.0.0.2", 100)
    a.tun.send(packet)
    assert a.dp.run_once(1000) == 0
    sent_at = time.monotonic_ns()
    assert b.read_tun() == packet
    a.dp.run_timers()  # not due yet
    assert not wait_readable(a.dp.event_fd, 0)
    assert time.monotonic_ns() - sent_at < delay_s * 1e9  # (else the check above proved nothing)
    time.sleep(delay_s)
    a.dp.run_timers()
    assert wait_readable(a.dp.event_fd, 0)
    _, [event] = a.dp.take_events()
    tx_any, rx_any, tx_data_first, _, _ = event[7]
    assert (event[0], event[1]) == (PEER, ACTIVITY)
    assert 0 < tx_data_first == tx_any <= sent_at and rx_any == 0


def test_tun_failure_ends_the_loop(pair: tuple[Side, Side]) -> None:
    a, _ = pair
    a.start()
    a.tun.close()  # the "interface" disappears
    assert a.thread is not None
    a.thread.join(5)
    assert a.result and a.result[0] < 0


# ---- real TUN devices in network namespaces ----

# One end of the tunnel, as wgfastd's data plane runs it. The two ends' receiver indices come from
# their own data planes: each script prints "index N" (its handshake in flight), reads the other
# end's index from stdin, installs its keypair, starts the loop and prints "ready"; the end of
# stdin stops it, and it prints its run result, statistics and the peer events it raised.
PEER_SCRIPT = r"""
import fcntl, json, os, socket, struct, subprocess, sys, threading, time
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
dp.set_identity(bytes(32))
dp.add_peer(1)
dp.add_allowed_ip(1, peer_net)
dp.set_endpoint(1, (peer_ip, int(peer_port)))
k1, k2 = bytes(range(32)), bytes(range(50, 82))
init = initiator == "1"
local_index = dp.begin_handshake(1)
print("index", local_index, flush=True)
remote_index = int(sys.stdin.readline())
dp.install_keypair(1, local_index, remote_index, k1 if init else k2, k2 if init else k1, init,
                   time.monotonic_ns())
result = []
t = threading.Thread(target=lambda: result.append(dp.run()))
t.start()
print("ready", flush=True)
sys.stdin.read()
dp.stop()
t.join()
_, events = dp.take_events()
print(json.dumps({"run": result[0], "stats": dp.stats(), "index": local_index,
                  "events": [list(e[:5]) for e in events]}), flush=True)
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


def _start_peer(ns: str, *args: str) -> tuple[subprocess.Popen[str], int]:
    """Starts one end; returns it and the receiver index of its handshake in flight."""
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(native.__file__)))
    env = dict(os.environ, PYTHONPATH=package_root)
    proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", PEER_SCRIPT, *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    word, index = proc.stdout.readline().split()
    assert word == "index"
    return proc, int(index)


def _install_and_run(proc: subprocess.Popen[str], remote_index: int) -> None:
    """Tells an end the other end's index: it installs its keypair and starts its loop."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(f"{remote_index}\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "ready"


def _finish_peer(proc: subprocess.Popen[str]) -> dict:
    out, _ = proc.communicate(input="", timeout=10)  # end of stdin: stop and report
    return json.loads(out.strip().splitlines()[-1])


def test_real_tun_tcp_through_the_tunnel(two_namespaces: tuple[str, str]) -> None:
    iperf3 = shutil.which("iperf3")
    ns1, ns2 = two_namespaces
    a, index_a = _start_peer(ns1, "wga", "10.9.0.1/24", "10.9.0.2/32", "51820", "192.168.77.2",
                             "51821", "1")
    b, index_b = _start_peer(ns2, "wgb", "10.9.0.2/24", "10.9.0.1/32", "51821", "192.168.77.1",
                             "51820", "0")
    try:
        _install_and_run(b, index_a)  # the responder first, as on the wire
        _install_and_run(a, index_b)
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
    assert (sa["index"], sb["index"]) == (index_a, index_b)
    # No event per packet: each end's events coalesced into one entry nobody took until the end,
    # the initiator's its traffic, the responder's its keypair's confirmation (under its own
    # index) and its traffic.
    assert sa["events"] == [[1, ACTIVITY, 0, 0, 0]]
    assert sb["events"] == [[1, CONFIRMED | ACTIVITY, index_b, 0, 0]]
    assert sa["stats"]["events_up"] == 1 and sb["stats"]["events_up"] == 2


def test_real_tun_deleted_ends_the_loop(two_namespaces: tuple[str, str]) -> None:
    ns1, _ = two_namespaces
    a, _ = _start_peer(ns1, "wga", "10.9.0.1/24", "10.9.0.2/32", "51820", "192.168.77.2", "51821",
                       "1")
    _install_and_run(a, 0x2222)  # no other end: any remote index will do
    _ip("-n", ns1, "link", "del", "wga")
    time.sleep(0.3)
    result = _finish_peer(a)
    assert result["run"] < 0  # the daemon would exit on this
