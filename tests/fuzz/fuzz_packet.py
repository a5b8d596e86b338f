"""Fuzz target: the packet path, as wgfastd runs it.

Every datagram of an input (see fuzz_common.split_datagrams) is sent over loopback UDP to a
compiled DataPlane (a SOCK_SEQPACKET socketpair stands in for the TUN), which is stepped with
`run_once`: it opens transport data itself (index lookup, ChaCha20-Poly1305, replay window,
allowed-IPs check) and hands handshake-type datagrams up through `poll`, which go to the
responder's DeviceState.receive exactly as wgfastd's device does (under load when the input's
flag says so, so cookie replies and mac2 are exercised). The same datagram also goes straight to
an initiator's DeviceState that has just sent the initiation wireguard-go answered in the
fixture, so a real response and cookie replies addressed to it get past the index lookup.

Keys are the fixture's (tests/fixtures/wireguard_go_handshake.json): the responder is B with
peer A (+psk); the data plane holds A's transport keypair from the fixture, so the captured
wireguard-go data packet opens (and its replay is dropped).

A crash is: an exception out of the code under test, an exception wgfast caught and logged
(internal_error), a negative run_once result, or a packet the data plane delivered that is not
the fixture's plaintext.

    python3 tests/fuzz/fuzz_packet.py -runs=2000 NEW_DIR tests/fuzz/corpus/packet
"""

from __future__ import annotations

import base64
import os
import select
import socket
import sys
import time

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fuzz_common import (  # noqa: E402
    FIXTURE,
    FLAG_UNDER_LOAD,
    KEYS,
    crash_on_logged_exceptions,
    split_datagrams,
    wgfast_import_path,
)

wgfast_import_path()
with atheris.instrument_imports(include=["wgfast"]):
    from wgfast import _native  # noqa: E402
    from wgfast.keys import KeyPair  # noqa: E402
    from wgfast.protocol import noise
    from wgfast.protocol.device_state import INTERNAL_ERROR, DeviceState  # noqa: E402

PEER_ID = 7
MTU = 1420
FAKE_SOURCE = ("192.0.2.1", 51820)
KEYPAIR_REFRESH_NS = 60 * 10**9  # the data plane rejects keypairs after 180 s; refresh well before
RESPONSE = FIXTURE["response_from_wireguard_go"]
TRANSPORT = FIXTURE["transport_from_wireguard_go"]
INITIATOR_INDEX = RESPONSE["initiation_sender_index"]
RESPONDER_INDEX = int.from_bytes(bytes.fromhex(RESPONSE["message"])[4:8], "little")
PLAINTEXT = bytes.fromhex(TRANSPORT["plaintext"])


class PacketPath:
    def __init__(self) -> None:
        a, b = KeyPair.from_private(KEYS["a_private"]), KeyPair.from_private(KEYS["b_private"])
        self.now = 1000.0
        # Responder B, fed by the data plane.
        self.responder = DeviceState(KEYS["b_private"])
        self.responder.add_peer(a.public, KEYS["preshared"], endpoint=FAKE_SOURCE)
        # Initiator A, re-armed with the fixture's initiation whenever it is not pending.
        self.fixture_timestamp = bytes.fromhex(RESPONSE["initiation_timestamp_tai64n"])
        self._next_index: list[int] = []
        self.initiator = DeviceState(
            KEYS["a_private"],
            random_u32=self._index,
            ephemeral_source=lambda: KEYS["script_ephemeral_private"],
        )
        self.initiator_peer = self.initiator.add_peer(b.public, KEYS["preshared"],
                                                      endpoint=FAKE_SOURCE)
        # The data plane, holding A's transport keypair.
        self.tun, self.dp_tun = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sender.bind(("127.0.0.1", 0))
        self.tun.setblocking(False)
        self.dp = _native.DataPlane(self.dp_tun.fileno(), self.udp.fileno(), -1, MTU)
        self.dp.add_peer(PEER_ID)
        self.dp.add_allowed_ip(PEER_ID, "10.99.0.0/24")
        self.dp.set_endpoint(PEER_ID, self.sender.getsockname())
        self.keypair_installed_ns = 0
        self._refresh_keypair()

    def close(self) -> None:
        self.dp.close()
        for s in (self.tun, self.dp_tun, self.udp, self.sender):
            s.close()

    def _index(self) -> int:
        return self._next_index.pop() if self._next_index else int.from_bytes(os.urandom(4))

    def _refresh_keypair(self) -> None:
        now_ns = time.monotonic_ns()
        if now_ns - self.keypair_installed_ns < KEYPAIR_REFRESH_NS:
            return
        self.dp.expire_keypairs(PEER_ID)
        keys = TRANSPORT["initiator_keys"]
        send = base64.b64decode(keys["initiator_send"])
        receive = base64.b64decode(keys["initiator_receive"])
        self.dp.install_keypair(PEER_ID, INITIATOR_INDEX, RESPONDER_INDEX, send, receive, True,
                                now_ns)
        self.keypair_installed_ns = now_ns

    def _arm_initiator(self) -> None:
        if self.initiator_peer.handshake.local_index == INITIATOR_INDEX:
            return
        self._next_index.append(INITIATOR_INDEX)
        self.now += 6.0  # past REKEY_TIMEOUT, so the initiation is not refused
        self.initiator.initiate(self.initiator_peer.public, self.now)
        # The fixture's timestamp has finer nanoseconds than wgfast sends (it rounds to 2^24 ns),
        # so redo the Noise step with it to get the exact state wireguard-go answered.
        assert self.initiator.identity is not None
        unmacked = noise.create_initiation(self.initiator.identity, self.initiator_peer.handshake,
                                           INITIATOR_INDEX, self.fixture_timestamp,
                                           KEYS["script_ephemeral_private"])
        assert unmacked is not None
        # The cookie jar remembers the mac1 it sent: a cookie reply is sealed against it.
        self.initiator_peer.cookie_jar.add_macs(unmacked, self.now)

    def _drain_tun(self) -> None:
        while True:
            try:
                packet = self.tun.recv(65536)
            except BlockingIOError:
                return
            if packet != PLAINTEXT[:len(packet)] or not packet:
                raise AssertionError(f"the data plane delivered a packet it should not have: "
                                     f"{packet[:64].hex()}")

    def one(self, data: bytes) -> None:
        flags, datagrams = split_datagrams(data)
        under_load = bool(flags & FLAG_UNDER_LOAD)
        self._refresh_keypair()
        self._arm_initiator()
        for datagram in datagrams:
            self.now += 0.001
            self.initiator.receive(datagram, FAKE_SOURCE, self.now, under_load)
            try:
                self.sender.sendto(datagram, self.udp.getsockname())
            except OSError:  # larger than a UDP datagram can be: nothing to deliver
                continue
            while select.select([self.udp], [], [], 0)[0]:
                result = self.dp.run_once(0)
                if result < 0:
                    raise AssertionError(f"run_once returned {result}")
            for kind, _peer, payload, source in self.dp.poll(64):
                if kind == _native.DP_MSG_HANDSHAKE:
                    if payload != datagram:
                        raise AssertionError("the data plane passed up another datagram")
                    self.responder.receive(payload, source, self.now, under_load)
        self._drain_tun()
        while select.select([self.sender], [], [], 0)[0]:
            self.sender.recv(65536)  # keepalives or anything else the data plane sent back
        for state in (self.responder, self.initiator):
            if state.drops[INTERNAL_ERROR]:
                raise AssertionError("internal_error drop counted")


PATH: PacketPath | None = None


def test_one_input(data: bytes) -> None:
    global PATH
    if PATH is None:
        PATH = PacketPath()
    PATH.one(data)


def seed_report(directory: str) -> dict:
    """Runs each seed once, in a fresh PacketPath, and reports how deep it got: the test suite
    checks that the seeds reach the handshake and data code, not just the parsers."""
    report = {}
    for name in sorted(os.listdir(directory)):
        path = PacketPath()
        with open(os.path.join(directory, name), "rb") as f:
            path.one(f.read())
        peer_b = path.responder.peers[KeyPair.from_private(KEYS["a_private"]).public]
        report[name] = {
            "responder_drops": dict(path.responder.drops),
            "initiator_drops": dict(path.initiator.drops),
            "responder_has_next": peer_b.keypairs.next is not None,
            "initiator_has_current": path.initiator_peer.keypairs.current is not None,
            "initiator_has_cookie": path.initiator_peer.cookie_jar.has_fresh_cookie(path.now),
            "dataplane_rx_packets": path.dp.stats()["rx_packets"],
            "dataplane_drops": {k: v for k, v in path.dp.stats()["drops"].items() if v},
        }
        path.close()
    return report


def main() -> None:
    crash_on_logged_exceptions()
    if sys.argv[1:2] == ["--seed-report"]:
        import json

        print(json.dumps(seed_report(sys.argv[2]), indent=1, sort_keys=True))
        return
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
