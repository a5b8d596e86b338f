"""The compiled data plane (wgfast._native.DataPlane) without a TUN device: each side's "TUN" is
a SOCK_SEQPACKET socketpair (the test holds one end, the data plane the other) and its UDP socket
is bound on 127.0.0.1; one peer (PEER) whose keypair handshake() installs on both sides directly,
as the protocol core would after a handshake: each side's data plane hands out the receiver index
of the handshake in flight (begin_handshake), and the keypair takes it over. Each loop runs on its
own thread (Side.start).
"""

from __future__ import annotations

import hashlib
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from wgfast import _native as native

PEER = 7
MTU = 1420
KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
# The device's public key as the daemon hands it down: the data plane checks mac1 with it.
PUBLIC_KEY = bytes(range(32))


def with_mac1(message: bytes, public_key: bytes = PUBLIC_KEY) -> bytes:
    """message with mac1 for a device of public_key (hashlib, the protocol's definition)."""
    at = len(message) - 32
    key = hashlib.blake2s(b"mac1----" + public_key).digest()
    mac1 = hashlib.blake2s(message[:at], key=key, digest_size=16).digest()
    return message[:at] + mac1 + message[at + 16:]


def ip4_packet(src: str, dst: str, length: int, seed: int = 0) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, length, 0, 0, 64, 17, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
    return header + bytes((seed + 7 * i) & 0xFF for i in range(length - 20))


@dataclass
class Side:
    dp: native.DataPlane
    tun: socket.socket  # the test's end of the fake TUN
    dp_tun: socket.socket
    udp: socket.socket
    thread: threading.Thread | None = None
    result: list[int] = field(default_factory=list)

    @property
    def addr(self) -> tuple[str, int]:
        return self.udp.getsockname()

    def start(self) -> None:
        self.thread = threading.Thread(target=lambda: self.result.append(self.dp.run()),
                                       daemon=True)
        self.thread.start()

    def stop(self) -> int:
        self.dp.stop()
        assert self.thread is not None
        self.thread.join(5)
        assert not self.thread.is_alive()
        return self.result[0]

    def read_tun(self, timeout: float = 2.0) -> bytes | None:
        ready, _, _ = select.select([self.tun], [], [], timeout)
        return self.tun.recv(65536) if ready else None

    def close(self) -> None:
        """Stop the loop if it runs, close the data plane and every socket of this side."""
        if self.thread is not None and self.thread.is_alive():
            self.stop()
        self.dp.close()
        for s in (self.tun, self.dp_tun, self.udp):
            s.close()


def open_side(peer_ip: str) -> Side:
    test_end, dp_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for s in (test_end, dp_end):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    udp.bind(("127.0.0.1", 0))
    dp = native.DataPlane(dp_end.fileno(), udp.fileno(), -1, MTU)
    dp.set_identity(PUBLIC_KEY)  # the device has a private key, as the daemon tells it
    dp.add_peer(PEER)
    dp.add_allowed_ip(PEER, f"{peer_ip}/32")
    return Side(dp, test_end, dp_end, udp)


def handshake(a: Side, b: Side, created_ns: int | None = None) -> tuple[int, int]:
    """A session with A as the initiator: each side's receiver index comes from its own data
    plane (the handshake in flight), each keypair takes it over. Returns (A's index, B's)."""
    now = time.monotonic_ns() if created_ns is None else created_ns
    index_a = a.dp.begin_handshake(PEER)  # the initiation's sender index
    index_b = b.dp.begin_handshake(PEER)  # the response's sender index
    # The responder first, as on the wire (it installs its keypair when it sends the response):
    # the initiator flushes staged packets at once, and they must find B's keypair in place.
    b.dp.install_keypair(PEER, index_b, index_a, KEY_B, KEY_A, False, now)
    a.dp.install_keypair(PEER, index_a, index_b, KEY_A, KEY_B, True, now)
    return index_a, index_b


def wait_readable(fd: int, timeout: float = 2.0) -> bool:
    ready, _, _ = select.select([fd], [], [], timeout)
    return bool(ready)
