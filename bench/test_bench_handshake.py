"""pytest-benchmark: the responder's handshake work, `pytest bench/ --benchmark-only`.

One round = one initiation consumed (mac1 check, two AEAD opens, DH, timestamp and flood checks)
plus one response produced (ephemeral key, two DH, KDF3, AEAD seal, mac1) and the transport
keypair derived. Initiations are made in the untimed setup, each with a newer timestamp, and
each round arrives 1 s after the previous one so the 20 ms flood rule never interferes.
Handshakes per second = 1 / mean.
"""

from __future__ import annotations

import itertools

from wgfast.protocol.device_state import DeviceState
from wgfast.protocol.outputs import Transmit

A_ADDR = ("192.0.2.1", 51820)
B_ADDR = ("198.51.100.2", 51820)


def test_bench_initiation_consumed_response_produced(benchmark):
    clock = itertools.count(1_700_000_000 * 10**9, 10**9)
    wall = {"ns": 0}
    initiator = DeviceState(bytes(range(1, 33)), wall_clock_ns=lambda: wall["ns"])
    responder = DeviceState(bytes(range(101, 133)))
    initiator.add_peer(responder.public_key, preshared_key=bytes(32), endpoint=B_ADDR)
    responder.add_peer(initiator.public_key, preshared_key=bytes(32))
    now = itertools.count(0.0, 10.0)

    def setup():
        wall["ns"] = next(clock)
        t = next(now)
        [msg] = [o for o in initiator.initiate(responder.public_key, t) if isinstance(o, Transmit)]
        return (msg.data, t), {}

    def consume_and_respond(data: bytes, t: float):
        outputs = responder.receive(data, A_ADDR, t)
        [response] = [o for o in outputs if isinstance(o, Transmit)]
        assert len(response.data) == 92
        return outputs

    benchmark.pedantic(consume_and_respond, setup=setup, rounds=300, warmup_rounds=5)
    assert not responder.drops
