"""The data plane's time limits (DataPlane.time_limits / set_time_limits): the paper's values by
default, validated, and acted on when a keypair ages past them (the hook that lets tests shorten
the protocol's timers reaches C, not only the Python timers)."""

from __future__ import annotations

import errno
import select
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from wgfast import _native as native

PEER = 3
NS = 1_000_000_000
KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))


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
        what came up to the control plane."""
        self.tun.send(ip4_packet("10.0.0.1", "10.0.0.2"))
        messages = []
        for _ in range(5):
            self.dp.run_once(50)
            messages += self.dp.poll()
        ready, _, _ = select.select([self.remote], [], [], 0.2)
        return (self.remote.recv(65536) if ready else None), messages


@pytest.fixture
def rig() -> Iterator[Rig]:
    test_end, dp_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    remote = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    remote.bind(("127.0.0.1", 0))
    dp = native.DataPlane(dp_end.fileno(), udp.fileno(), -1, 1420)
    dp.add_peer(PEER)
    dp.set_endpoint(PEER, remote.getsockname())
    dp.add_allowed_ip(PEER, "10.0.0.2/32")
    yield Rig(dp, test_end, dp_end, udp, remote)
    dp.close()
    for s in (test_end, dp_end, udp, remote):
        s.close()


def install_initiator_keypair(dp: native.DataPlane, age_s: float) -> None:
    dp.install_keypair(PEER, 11, 22, KEY_A, KEY_B, True, time.monotonic_ns() - int(age_s * NS))


def need_handshake(messages: list) -> bool:
    return any(kind == native.DP_MSG_NEED_HANDSHAKE and peer == PEER
               for kind, peer, _, _ in messages)


def test_defaults_are_the_papers(rig: Rig) -> None:
    assert rig.dp.time_limits == {
        "rekey_after_time_ns": 120 * NS, "reject_after_time_ns": 180 * NS,
        "keepalive_timeout_ns": 10 * NS, "rekey_timeout_ns": 5 * NS,
    }


@pytest.mark.parametrize("limits", [
    (0, 10, 1, 1),     # rekey_after_time 0
    (10, 10, 1, 1),    # rekey_after_time not below reject_after_time
    (5, 10, 6, 4),     # keepalive + rekey_timeout reach reject_after_time
    (5, 10, 2**63, 2**63),  # a sum that would wrap
])
def test_inconsistent_limits_are_refused(rig: Rig, limits: tuple[int, ...]) -> None:
    before = rig.dp.time_limits
    with pytest.raises(OSError) as info:
        rig.dp.set_time_limits(*limits)
    assert info.value.errno == errno.EINVAL
    assert rig.dp.time_limits == before


def test_set_at_creation() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    limits = {"rekey_after_time_ns": 3 * NS, "reject_after_time_ns": 4 * NS,
              "keepalive_timeout_ns": NS // 4, "rekey_timeout_ns": NS // 8}
    try:
        dp = native.DataPlane(b.fileno(), udp.fileno(), -1, 1420, time_limits=limits)
        assert dp.time_limits == limits
        dp.close()
    finally:
        for s in (a, b, udp):
            s.close()


def test_default_limits_keep_a_two_second_old_keypair(rig: Rig) -> None:
    install_initiator_keypair(rig.dp, 2.0)
    sent, messages = rig.send_from_tun_and_poll()
    assert sent is not None and sent[0] == 4  # transport data under the keypair
    assert not need_handshake(messages)


def test_short_rekey_after_time_asks_for_a_handshake_and_still_sends(rig: Rig) -> None:
    rig.dp.set_time_limits(NS, 3 * NS, NS // 4, NS // 8)
    install_initiator_keypair(rig.dp, 2.0)
    sent, messages = rig.send_from_tun_and_poll()
    assert sent is not None and sent[0] == 4
    assert need_handshake(messages)


def test_short_reject_after_time_stops_sending(rig: Rig) -> None:
    rig.dp.set_time_limits(NS // 2, NS, NS // 4, NS // 8)
    install_initiator_keypair(rig.dp, 2.0)
    sent, messages = rig.send_from_tun_and_poll()
    assert sent is None  # staged behind the handshake it asked for
    assert need_handshake(messages)
    assert rig.dp.peer_info(PEER)["staged"] == 1
