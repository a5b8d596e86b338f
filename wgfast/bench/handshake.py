"""`wgfast bench handshake`: handshakes per second through the Python control plane.

Two `DeviceState`s (the sans-I/O protocol core) talk to each other in memory, with a fake
monotonic clock that advances 10 s per handshake (so neither the initiator's REKEY_TIMEOUT nor
the responder's 20 ms flood rule refuses one) and a wall clock that advances 1 s (so every
TAI64N timestamp is newer than the last). Three operations:

- "initiation": the initiator builds a handshake initiation (ephemeral key, two DH, AEAD seal,
  mac1).
- "response": the responder consumes an initiation (two DH, AEAD open, timestamp check; its
  mac1 is the data plane's to check, in C, and not timed here) and answers (ephemeral key, two
  DH, KDF3, AEAD seal, mac1, transport keypair). Initiations are made outside the timed loop.
- "full": initiation, response, and the initiator consuming the response (two DH, keypair),
  back to back: one complete handshake, both sides' work on one core.

A handshake is done when its side hands the transport keypair down (`InstallKeypair`, which the
daemon gives the data plane): each round checks that it came out, for the right role, and wipes
it, as the daemon does once the data plane has the keys. The receiver indices come from each
side's own in-memory index space (`LocalIndexSpace`, the core's default); the data plane is not
involved.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from wgfast.protocol.device_state import DeviceState
from wgfast.protocol.outputs import InstallKeypair, Output, Transmit

OPS = ("initiation", "response", "full")
INITIATOR_ADDR = ("192.0.2.1", 51820)
RESPONDER_ADDR = ("198.51.100.2", 51820)
HANDSHAKE_INITIATION_LEN = 148
HANDSHAKE_RESPONSE_LEN = 92
MIN_ROUNDS = 20


@dataclass
class HandshakeResult:
    impl: str
    op: str
    per_s: float
    us_each: float
    rounds: int

    def as_dict(self) -> dict:
        return asdict(self)


def _keypair(outputs: list[Output], is_initiator: bool) -> InstallKeypair:
    """The one keypair a finished handshake hands down."""
    keypairs = [o for o in outputs if isinstance(o, InstallKeypair)]
    if len(keypairs) != 1 or keypairs[0].is_initiator != is_initiator:
        raise RuntimeError(f"expected one {'initiator' if is_initiator else 'responder'} "
                           f"keypair, got {keypairs!r}")
    return keypairs[0]


class _Pair:
    """An initiator and a responder that know each other, with their clocks."""

    def __init__(self) -> None:
        wall = itertools.count(1_700_000_000 * 10**9, 10**9)
        self.initiator = DeviceState(bytes(range(1, 33)), wall_clock_ns=lambda: next(wall))
        self.responder = DeviceState(bytes(range(101, 133)))
        assert self.initiator.public_key is not None and self.responder.public_key is not None
        self.responder_key = self.responder.public_key
        self.initiator.add_peer(self.responder_key, preshared_key=bytes(32),
                                endpoint=RESPONDER_ADDR)
        self.responder.add_peer(self.initiator.public_key, preshared_key=bytes(32))
        self.clock = itertools.count(0.0, 10.0)

    def initiation(self) -> tuple[bytes, float]:
        now = next(self.clock)
        sent = [o for o in self.initiator.initiate(self.responder_key, now)
                if isinstance(o, Transmit)]
        if len(sent) != 1 or len(sent[0].data) != HANDSHAKE_INITIATION_LEN:
            raise RuntimeError(f"initiator produced no initiation: {sent!r}")
        return sent[0].data, now

    def response(self, initiation: bytes, now: float) -> tuple[bytes, InstallKeypair]:
        """The response and the responder's keypair (not wiped: the caller does)."""
        outputs = self.responder.receive(initiation, INITIATOR_ADDR, now)
        sent = [o for o in outputs if isinstance(o, Transmit)]
        if len(sent) != 1 or len(sent[0].data) != HANDSHAKE_RESPONSE_LEN:
            raise RuntimeError(f"responder refused the initiation: {dict(self.responder.drops)}")
        return sent[0].data, _keypair(outputs, is_initiator=False)

    def complete(self, response: bytes, now: float, responder: InstallKeypair) -> None:
        """The initiator consumes the response: its keypair must mirror the responder's."""
        before = self.initiator.drops.total()
        outputs = self.initiator.receive(response, RESPONDER_ADDR, now)
        if self.initiator.drops.total() != before:
            raise RuntimeError(f"initiator refused the response: {dict(self.initiator.drops)}")
        initiator = _keypair(outputs, is_initiator=True)
        try:
            if ((initiator.local_index, initiator.remote_index)
                    != (responder.remote_index, responder.local_index)
                    or initiator.send_key != responder.receive_key
                    or initiator.receive_key != responder.send_key):
                raise RuntimeError("the two sides derived different sessions")
        finally:
            initiator.wipe()


def _measure(op: str, seconds: float) -> HandshakeResult:
    pair = _Pair()
    elapsed = 0.0
    rounds = 0
    # Batches of rounds until `seconds` of timed work; setup for "response" stays untimed.
    while elapsed < seconds or rounds < MIN_ROUNDS:
        if op == "initiation":
            start = time.perf_counter()
            pair.initiation()
            elapsed += time.perf_counter() - start
        elif op == "response":
            message, now = pair.initiation()
            start = time.perf_counter()
            _, keypair = pair.response(message, now)
            keypair.wipe()
            elapsed += time.perf_counter() - start
        else:
            start = time.perf_counter()
            message, now = pair.initiation()
            response, keypair = pair.response(message, now)
            try:
                pair.complete(response, now, keypair)
            finally:
                keypair.wipe()
            elapsed += time.perf_counter() - start
        rounds += 1
    each = elapsed / rounds
    return HandshakeResult("wgfast", op, 1.0 / each, each * 1e6, rounds)


def run(seconds: float = 0.5,
        progress: Callable[[str], None] = lambda msg: None) -> list[HandshakeResult]:
    results = []
    for op in OPS:
        progress(op)
        results.append(_measure(op, seconds))
    return results


def format_table(results: list[HandshakeResult]) -> str:
    lines = ["Handshakes through the Python control plane (one core):",
             f"  {'op':<12} {'per second':>12} {'us each':>10}"]
    for r in results:
        lines.append(f"  {r.op:<12} {r.per_s:>12.0f} {r.us_each:>10.1f}")
    return "\n".join(lines)
