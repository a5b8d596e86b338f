"""pytest-benchmark: the responder's handshake work, `pytest bench/ --benchmark-only`.

One round = one initiation consumed (mac1 check, two AEAD opens, DH, timestamp and flood checks)
plus one response produced (ephemeral key, two DH, KDF3, AEAD seal, mac1) and the transport
keypair derived (handed down as `InstallKeypair`, checked and wiped after the timed call, as the
daemon wipes it once the data plane has it). Initiations are made in the untimed setup, each with
a newer timestamp, and each round arrives 1 s after the previous one so the 20 ms flood rule never
interferes. Handshakes per second = 1 / mean.
"""

from __future__ import annotations

import itertools

from wgfast.protocol.device_state import DeviceState
from wgfast.protocol.outputs import InstallKeypair, Transmit

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

    rounds = []

    def setup():
        wall["ns"] = next(clock)
        t = next(now)
        [msg] = [o for o in initiator.initiate(responder.public_key, t) if isinstance(o, Transmit)]
        return (msg.data, t), {}

    def consume_and_respond(data: bytes, t: float):
        outputs = responder.receive(data, A_ADDR, t)
        rounds.append((data, outputs))
        return outputs

    benchmark.pedantic(consume_and_respond, setup=setup, rounds=300, warmup_rounds=5)
    assert not responder.drops
    assert rounds  # 305 when measuring; one with --benchmark-disable
    for initiation, outputs in rounds:
        # The keypair first (the data plane must hold it before the initiator can answer), then
        # the response; the keypair takes over the response's sender index, and sends to the
        # initiation's.
        [keypair, response] = outputs
        assert isinstance(keypair, InstallKeypair) and isinstance(response, Transmit)
        assert len(response.data) == 92
        assert not keypair.is_initiator
        assert keypair.local_index == int.from_bytes(response.data[4:8], "little")
        assert keypair.remote_index == int.from_bytes(initiation[4:8], "little")
        assert keypair.remote_index == int.from_bytes(response.data[8:12], "little")
        assert len(keypair.send_key) == len(keypair.receive_key) == 32
        keypair.wipe()
        assert not any(keypair.send_key) and not any(keypair.receive_key)
