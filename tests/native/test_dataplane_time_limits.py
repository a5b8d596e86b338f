"""The data plane's time limits (DataPlane.time_limits / set_time_limits): the paper's values by
default, validated, and acted on when a keypair ages past them (the hook that lets tests shorten
the protocol's timers reaches C, not only the Python timers). Ages are real: a keypair's created_ns
lies in the past of the data plane's clock (time.monotonic_ns()). A handshake the data plane wants
reaches the control plane as a peer event with the DP_EV_HANDSHAKE_WANTED bit."""

from __future__ import annotations

import errno
import select
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from support.dataplane import PEER as PAIR_PEER
from support.dataplane import handshake, open_side
from wgfast import _native as native

PEER = 3
NS = 1_000_000_000
KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
MS = 1_000_000
PAPER = {"rekey_after_time_ns": 120 * NS, "reject_after_time_ns": 180 * NS,
         "keepalive_timeout_ns": 10 * NS, "rekey_timeout_ns": 5 * NS,
         "activity_report_ns": 100 * MS}


def limits(rekey_after: float, reject_after: float, keepalive: float, rekey_timeout: float,
           activity_report: float = 0.1) -> dict[str, int]:
    """set_time_limits' keywords from seconds."""
    return {"rekey_after_time_ns": int(rekey_after * NS),
            "reject_after_time_ns": int(reject_after * NS),
            "keepalive_timeout_ns": int(keepalive * NS),
            "rekey_timeout_ns": int(rekey_timeout * NS),
            "activity_report_ns": int(activity_report * NS)}


def ip4_packet(src: str, dst: str, length: int = 60) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, length, 0, 0, 64, 17, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
    return header + bytes(length - 20)


@dataclass
class Rig:
    dp: native.DataPlane
    tun: socket.socket      # the test's end of the fake TUN
    dp_tun: socket.socket
    udp: socket.socket      # the data plane's socket
    remote: socket.socket   # where the peer's endpoint points

    def send_from_tun_and_poll(self) -> tuple[bytes | None, list]:
        """One packet into the fake TUN, a few loop rounds; what reached the peer's endpoint and
        the peer events that came up to the control plane."""
        self.tun.send(ip4_packet("10.0.0.1", "10.0.0.2"))
        events = []
        for _ in range(5):
            self.dp.run_once(50)
            events += self.dp.take_events()[1]
        ready, _, _ = select.select([self.remote], [], [], 0.2)
        return (self.remote.recv(65536) if ready else None), events


@pytest.fixture
def rig() -> Iterator[Rig]:
    test_end, dp_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    remote = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    remote.bind(("127.0.0.1", 0))
    dp = native.DataPlane(dp_end.fileno(), udp.fileno(), -1, 1420)
    dp.set_identity(bytes(32))
    dp.add_peer(PEER)
    dp.set_endpoint(PEER, remote.getsockname())
    dp.add_allowed_ip(PEER, "10.0.0.2/32")
    yield Rig(dp, test_end, dp_end, udp, remote)
    dp.close()
    for s in (test_end, dp_end, udp, remote):
        s.close()


def install_initiator_keypair(dp: native.DataPlane, age_s: float) -> None:
    index = dp.begin_handshake(PEER)  # the only index a keypair may take
    dp.install_keypair(PEER, index, 22, KEY_A, KEY_B, True, time.monotonic_ns() - int(age_s * NS))


def need_handshake(events: list, peer: int = PEER) -> bool:
    return any(e[0] == peer and e[1] & native.DP_EV_HANDSHAKE_WANTED for e in events)


def test_defaults_are_the_papers(rig: Rig) -> None:
    assert rig.dp.time_limits == PAPER


@pytest.mark.parametrize("limits", [
    (0, 10, 1, 1, 1),     # rekey_after_time 0
    (10, 10, 1, 1, 1),    # rekey_after_time not below reject_after_time
    (5, 10, 6, 4, 1),     # keepalive + rekey_timeout reach reject_after_time
    (5, 10, 2**63, 2**63, 1),  # a sum that would wrap
    (5, 10, 1, 1, 0),     # activity_report 0
])
def test_inconsistent_limits_are_refused(rig: Rig, limits: tuple[int, ...]) -> None:
    before = rig.dp.time_limits
    with pytest.raises(OSError) as info:
        rig.dp.set_time_limits(*limits)
    assert info.value.errno == errno.EINVAL
    assert rig.dp.time_limits == before


def test_all_five_limits_are_required(rig: Rig) -> None:
    with pytest.raises(TypeError):
        rig.dp.set_time_limits(5, 10, 1, 1)  # type: ignore[call-arg]
    assert rig.dp.time_limits == PAPER


def test_set_at_creation() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    wanted = {"rekey_after_time_ns": 3 * NS, "reject_after_time_ns": 4 * NS,
              "keepalive_timeout_ns": NS // 4, "rekey_timeout_ns": NS // 8,
              "activity_report_ns": 20 * MS}
    try:
        dp = native.DataPlane(b.fileno(), udp.fileno(), -1, 1420, time_limits=wanted)
        assert dp.time_limits == wanted
        dp.close()
        with pytest.raises(OSError) as info:
            native.DataPlane(b.fileno(), udp.fileno(), -1, 1420,
                             time_limits=dict(wanted, activity_report_ns=0))
        assert info.value.errno == errno.EINVAL
    finally:
        for s in (a, b, udp):
            s.close()


def test_default_limits_keep_a_two_second_old_keypair(rig: Rig) -> None:
    install_initiator_keypair(rig.dp, 2.0)
    sent, messages = rig.send_from_tun_and_poll()
    assert sent is not None and sent[0] == 4  # transport data under the keypair
    assert not need_handshake(messages)


def test_short_rekey_after_time_asks_for_a_handshake_and_still_sends(rig: Rig) -> None:
    rig.dp.set_time_limits(**limits(1, 3, 0.25, 0.125))
    install_initiator_keypair(rig.dp, 2.0)
    sent, messages = rig.send_from_tun_and_poll()
    assert sent is not None and sent[0] == 4
    assert need_handshake(messages)


def test_short_reject_after_time_stops_sending(rig: Rig) -> None:
    rig.dp.set_time_limits(**limits(0.5, 1, 0.25, 0.125))
    install_initiator_keypair(rig.dp, 2.0)
    sent, messages = rig.send_from_tun_and_poll()
    assert sent is None  # staged behind the handshake it asked for
    assert need_handshake(messages)
    assert rig.dp.peer_info(PEER)["staged"] == 1


def test_the_responder_does_not_rekey_on_age(rig: Rig) -> None:
    """Past REKEY_AFTER_TIME only the initiator asks for a new handshake on send (the kernel's
    rule); a responder's keypair goes on sending until REJECT_AFTER_TIME."""
    rig.dp.set_time_limits(**limits(1, 3, 0.25, 0.125))
    index = rig.dp.begin_handshake(PEER)
    created = time.monotonic_ns() - 2 * NS
    rig.dp.install_keypair(PEER, index, 22, KEY_A, KEY_B, False, created)  # waits as next
    assert rig.dp.peer_info(PEER)["has_next"] and not rig.dp.peer_info(PEER)["has_current"]
    # Confirmed by data under it, as the initiator's first packet would: sealed here with the
    # initiator's keys by a second data plane.
    peer_tun, peer_dp_tun = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    peer_udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer_udp.bind(("127.0.0.1", 0))
    peer = native.DataPlane(peer_dp_tun.fileno(), peer_udp.fileno(), -1, 1420)
    try:
        peer.set_identity(bytes(32))
        peer.add_peer(PEER)
        peer.add_allowed_ip(PEER, "10.0.0.1/32")
        peer.set_endpoint(PEER, rig.udp.getsockname())
        peer_index = peer.begin_handshake(PEER)
        peer.install_keypair(PEER, peer_index, index, KEY_B, KEY_A, True, created)
        peer_tun.send(ip4_packet("10.0.0.2", "10.0.0.1"))
        assert peer.run_once(1000) == 0
        events = []
        for _ in range(5):
            rig.dp.run_once(50)
            events += rig.dp.take_events()[1]
        assert any(e[1] & native.DP_EV_KEYPAIR_CONFIRMED for e in events)
        assert rig.dp.peer_info(PEER)["has_current"]
        rig.dp.set_endpoint(PEER, rig.remote.getsockname())  # (it roamed to the peer's socket)
        sent, events = rig.send_from_tun_and_poll()
        assert sent is not None and sent[0] == 4
        assert not need_handshake(events)
    finally:
        peer.close()
        for s in (peer_tun, peer_dp_tun, peer_udp):
            s.close()


def test_initiator_rekeys_on_receive_near_reject_after_time() -> None:
    """The kernel's last-minute rule: an initiator that receives under a keypair older than
    REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT asks for a handshake, even when its
    sends are not yet due for one (A's keypair is 2 s old: past 4 - 1.5 - 1 = 1.5 s, before
    REKEY_AFTER_TIME 3 s)."""
    a, b = open_side("10.0.0.2"), open_side("10.0.0.1")
    try:
        a.dp.set_endpoint(PAIR_PEER, b.addr)
        b.dp.set_endpoint(PAIR_PEER, a.addr)
        a.dp.set_time_limits(**limits(3, 4, 1.5, 1))
        handshake(a, b, created_ns=time.monotonic_ns() - 2 * NS)
        b.start()
        # A sends (confirming B's keypair): not due for a rekey on send.
        a.tun.send(ip4_packet("10.0.0.1", "10.0.0.2"))
        assert a.dp.run_once(1000) == 0
        assert b.read_tun() is not None
        assert not need_handshake(a.dp.take_events()[1], PAIR_PEER)
        # B answers: A's receive is.
        reply = ip4_packet("10.0.0.2", "10.0.0.1")
        b.tun.send(reply)
        events = []
        for _ in range(5):
            a.dp.run_once(50)
            events += a.dp.take_events()[1]
        assert a.read_tun() == reply
        assert need_handshake(events, PAIR_PEER)
        # The responder (default limits, and never the last-minute rule) asked for nothing.
        assert b.stop() == 0
        assert not need_handshake(b.dp.take_events()[1], PAIR_PEER)
    finally:
        for side in (a, b):
            side.close()
