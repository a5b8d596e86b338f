"""Fuzz target: the packet path, as wgfastd runs it.

Every datagram of an input (see fuzz_common.split_datagrams) is sent over loopback UDP to a
compiled DataPlane (a SOCK_SEQPACKET socketpair stands in for the TUN), which is stepped with
`run_once`: it opens transport data itself (index lookup, ChaCha20-Poly1305, replay window,
allowed-IPs check) and checks handshake-type datagrams (mac1 with B's public key; cookie replies
and responses need an index of ours; under load, mac2, cookie replies and the rate limit) before
handing them up through `take_events`, which go to the responder's DeviceState.receive exactly as
wgfastd's device does. The input's FLAG_UNDER_LOAD bit is ignored: "under load" is the data
plane's own decision (its queue filling) and its cookie path is tested in C
(csrc/tests/test_dataplane_admission.c). The responder's receiver indices are the data
plane's (begin_handshake, end_handshake, index_owner) and the keypairs it derives are installed
there (InstallKeypair -> install_keypair, then wiped). The same datagram also goes straight to an
initiator's DeviceState that has just sent the initiation wireguard-go answered in the fixture
(its index space in memory, so that its index is the fixture's), so a real response and cookie
replies addressed to it get past the index lookup.

Keys are the fixture's (tests/fixtures/wireguard_go_handshake.json): the responder is B with
peer A (+psk), peer RESPONDER_PEER_ID in the data plane; the data plane also holds A's transport
keypair from the fixture (peer PEER_ID), so the captured wireguard-go data packet opens (and its
replay is dropped). The data plane chooses its receiver indices at random while the capture is
addressed to the fixture's; a data message's header is not authenticated, so the harness swaps
the two values in the receiver field of every transport-data datagram it sends to the data plane
(a bijection: what reaches the keypair does not depend on the random draw). The protocol cores'
randomness (cookie secrets and nonces, the responder's ephemeral keys, the initiator's indices
after the fixture's) comes from a seeded generator, so that a run is repeatable.

A crash is: an exception out of the code under test, an exception wgfast caught and logged
(internal_error), a negative run_once result, or a packet the data plane delivered that is not
the fixture's plaintext.

    python3 tests/fuzz/fuzz_packet.py -runs=2000 NEW_DIR tests/fuzz/corpus/packet
"""

from __future__ import annotations

import base64
import os
import random
import select
import socket
import sys
import time

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fuzz_common import (  # noqa: E402
    FIXTURE,
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
    from wgfast.protocol.index_space import LocalIndexSpace  # noqa: E402
    from wgfast.protocol.outputs import InstallKeypair, Output, SendKeepalive  # noqa: E402

PEER_ID = 7  # A's side of the fixture's session: its transport keypair
RESPONDER_PEER_ID = 8  # peer A of the responder B: the keypairs B's handshakes make
RNG_SEED = 0x57475046
RESPONDER_EPHEMERAL = bytes(range(200, 232))
MTU = 1420
FAKE_SOURCE = ("192.0.2.1", 51820)
KEYPAIR_REFRESH_NS = 60 * 10**9  # the data plane rejects keypairs after 180 s; refresh well before
RESPONSE = FIXTURE["response_from_wireguard_go"]
TRANSPORT = FIXTURE["transport_from_wireguard_go"]
INITIATOR_INDEX = RESPONSE["initiation_sender_index"]
RESPONDER_INDEX = int.from_bytes(bytes.fromhex(RESPONSE["message"])[4:8], "little")
PLAINTEXT = bytes.fromhex(TRANSPORT["plaintext"])
INITIATOR_KEYS = {name: base64.b64decode(key) for name, key in TRANSPORT["initiator_keys"].items()}
DATA_TYPE = b"\x04\x00\x00\x00"


class DataplaneIndexSpace:
    """The responder's receiver indices, held by the data plane (as wgfastd's device does)."""

    def __init__(self, dp: _native.DataPlane, peer_public: bytes) -> None:
        self.dp = dp
        self.peer_public = peer_public

    def allocate(self, peer: bytes) -> int:
        return self.dp.begin_handshake(RESPONDER_PEER_ID)

    def release(self, peer: bytes) -> None:
        self.dp.end_handshake(RESPONDER_PEER_ID)

    def settle(self, peer: bytes) -> None:
        """The keypair takes the index over when installed."""

    def owner(self, index: int) -> bytes | None:
        return self.peer_public if self.dp.index_owner(index) == RESPONDER_PEER_ID else None


class PacketPath:
    def __init__(self) -> None:
        a, b = KeyPair.from_private(KEYS["a_private"]), KeyPair.from_private(KEYS["b_private"])
        self.now = 1000.0
        self.rng = random.Random(RNG_SEED)
        # The data plane: A's transport keypair, and B's sessions with A.
        self.tun, self.dp_tun = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sender.bind(("127.0.0.1", 0))
        self.tun.setblocking(False)
        self.dp = _native.DataPlane(self.dp_tun.fileno(), self.udp.fileno(), -1, MTU)
        self.dp.set_identity(b.public)
        self.dp.add_peer(PEER_ID)
        self.dp.add_allowed_ip(PEER_ID, "10.99.0.0/24")
        self.dp.set_endpoint(PEER_ID, self.sender.getsockname())
        self.dp.add_peer(RESPONDER_PEER_ID)
        self.dp.add_allowed_ip(RESPONDER_PEER_ID, "10.98.0.0/24")
        self.dp.set_endpoint(RESPONDER_PEER_ID, self.sender.getsockname())
        self.keypair_installed_ns = 0
        self.dp_index = 0  # the data plane's index of A's keypair (the fixture's, swapped)
        self._refresh_keypair()
        # Responder B, fed by the data plane, its indices and keypairs there.
        self.responder = DeviceState(KEYS["b_private"],
                                     random_bytes=self.rng.randbytes,
                                     index=DataplaneIndexSpace(self.dp, a.public),
                                     ephemeral_source=lambda: RESPONDER_EPHEMERAL)
        self.responder.add_peer(a.public, KEYS["preshared"], endpoint=FAKE_SOURCE)
        # Initiator A, re-armed with the fixture's initiation whenever it is not pending.
        self.fixture_timestamp = bytes.fromhex(RESPONSE["initiation_timestamp_tai64n"])
        self._next_index: list[int] = []
        self.initiator = DeviceState(
            KEYS["a_private"],
            random_bytes=self.rng.randbytes,
            index=LocalIndexSpace(self._index),
            ephemeral_source=lambda: KEYS["script_ephemeral_private"],
        )
        self.initiator_peer = self.initiator.add_peer(b.public, KEYS["preshared"],
                                                      endpoint=FAKE_SOURCE)
        # What the initiator derived (it has no data plane): sessions, and whether one had the
        # fixture's transport keys.
        self.initiator_sessions = 0
        self.initiator_keys_match = False

    def close(self) -> None:
        self.dp.close()
        for s in (self.tun, self.dp_tun, self.udp, self.sender):
            s.close()

    def _index(self) -> int:
        return self._next_index.pop() if self._next_index else self.rng.getrandbits(32)

    def _refresh_keypair(self) -> None:
        now_ns = time.monotonic_ns()
        if now_ns - self.keypair_installed_ns < KEYPAIR_REFRESH_NS:
            return
        self.dp.expire_keypairs(PEER_ID)
        self.dp_index = self.dp.begin_handshake(PEER_ID)
        self.dp.install_keypair(PEER_ID, self.dp_index, RESPONDER_INDEX,
                                INITIATOR_KEYS["initiator_send"],
                                INITIATOR_KEYS["initiator_receive"], True, now_ns)
        self.keypair_installed_ns = now_ns

    def _to_dataplane(self, datagram: bytes) -> bytes:
        """Transport data with the fixture's receiver index and the data plane's swapped."""
        if len(datagram) < 8 or datagram[:4] != DATA_TYPE:
            return datagram
        receiver = int.from_bytes(datagram[4:8], "little")
        swap = {INITIATOR_INDEX: self.dp_index, self.dp_index: INITIATOR_INDEX}
        if receiver not in swap:
            return datagram
        return datagram[:4] + swap[receiver].to_bytes(4, "little") + datagram[8:]

    def _carry_out_responder(self, outputs: list[Output]) -> None:
        """What wgfastd does with the responder's outputs that concern the data plane (datagrams
        it would send go nowhere here)."""
        for out in outputs:
            if isinstance(out, InstallKeypair):
                # Created now on the data plane's clock (out.created is on the harness's fake
                # one: taken as is, the keypair would be born expired and due for zeroing).
                try:
                    self.dp.install_keypair(RESPONDER_PEER_ID, out.local_index, out.remote_index,
                                            out.send_key, out.receive_key, out.is_initiator,
                                            time.monotonic_ns())
                finally:
                    out.wipe()
            elif isinstance(out, SendKeepalive):
                self.dp.send_keepalive(RESPONDER_PEER_ID)

    def _note_initiator(self, outputs: list[Output]) -> None:
        for out in outputs:
            if isinstance(out, InstallKeypair):
                if not out.is_initiator or out.local_index != INITIATOR_INDEX:
                    raise AssertionError(f"the initiator derived an unexpected keypair: {out}")
                self.initiator_sessions += 1
                self.initiator_keys_match |= (
                    (out.send_key, out.receive_key)
                    == (INITIATOR_KEYS["initiator_send"], INITIATOR_KEYS["initiator_receive"]))
                out.wipe()

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
        _flags, datagrams = split_datagrams(data)
        self._refresh_keypair()
        self._arm_initiator()
        for datagram in datagrams:
            self.now += 0.001
            self._note_initiator(self.initiator.receive(datagram, FAKE_SOURCE, self.now))
            try:
                self.sender.sendto(self._to_dataplane(datagram), self.udp.getsockname())
            except OSError:  # larger than a UDP datagram can be: nothing to deliver
                continue
            while select.select([self.udp], [], [], 0)[0]:
                result = self.dp.run_once(0)
                if result < 0:
                    raise AssertionError(f"run_once returned {result}")
            # Peer events (activity, confirmations) are taken and left aside: their times are
            # the data plane's clock, the protocol cores here run on a fake one.
            handshakes, _peer_events = self.dp.take_events(max_handshakes=64)
            for payload, source in handshakes:
                if payload != datagram:
                    raise AssertionError("the data plane passed up another datagram")
                self._carry_out_responder(self.responder.receive(payload, source, self.now))
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
        responder_session = path.dp.peer_info(RESPONDER_PEER_ID)
        report[name] = {
            "responder_drops": dict(path.responder.drops),
            "initiator_drops": dict(path.initiator.drops),
            # The responder's keypair waits in the data plane for data to confirm it.
            "responder_has_next": responder_session["has_next"],
            "responder_keypairs_live": responder_session["keypairs_live"],
            # The initiator's (in memory: the fixture's index) was derived, with the keys
            # wireguard-go used.
            "initiator_has_current": path.initiator_sessions > 0,
            "initiator_keys_match": path.initiator_keys_match,
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
