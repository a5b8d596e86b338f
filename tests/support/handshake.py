"""Two protocol cores (wgfast.protocol.device_state.DeviceState) in memory, with fixed keys and
addresses and a fake wall clock: make_pair() gives A (which knows B's endpoint) and B, and
handshake() carries one initiation and its response between them. No sockets, no threads.
"""

from __future__ import annotations

from wgfast.protocol.device_state import DeviceState
from wgfast.protocol.index_space import LocalIndexSpace
from wgfast.protocol.outputs import Transmit

A_PRIV = bytes(range(1, 33))
B_PRIV = bytes(range(101, 133))
A_ADDR = ("192.0.2.1", 51820)
B_ADDR = ("198.51.100.2", 51821)


class FakeWallClock:
    """The wall clock (ns since the epoch) both cores read for timestamps; moved by hand."""

    def __init__(self, ns: int = 1_700_000_000 * 10**9) -> None:
        self.ns = ns

    def __call__(self) -> int:
        return self.ns


def make_pair(psk: bytes | None = None, random_u32=None, **kwargs):
    """(A, B, clock): each with the other as its peer; only A knows an endpoint (B_ADDR).
    `random_u32`, if given, draws both devices' receiver indices (each its own index space)."""
    wall = FakeWallClock()

    def device(private: bytes) -> DeviceState:
        index = LocalIndexSpace(random_u32) if random_u32 is not None else None
        return DeviceState(private, wall_clock_ns=wall, index=index, **kwargs)

    a, b = device(A_PRIV), device(B_PRIV)
    a.add_peer(b.public_key, preshared_key=psk, endpoint=B_ADDR)
    b.add_peer(a.public_key, preshared_key=psk)
    return a, b, wall


def only(outputs, kind):
    """The one output of type `kind` among `outputs` (asserts there is exactly one)."""
    found = [o for o in outputs if isinstance(o, kind)]
    assert len(found) == 1, outputs
    return found[0]


def handshake(a: DeviceState, b: DeviceState, now: float = 0.0):
    """A initiates, B responds, A takes the response: (initiation, response, A's outputs,
    B's outputs)."""
    init = only(a.initiate(b.public_key, now), Transmit)
    out_b = b.receive(init.data, A_ADDR, now)
    resp = only(out_b, Transmit)
    out_a = a.receive(resp.data, B_ADDR, now)
    return init, resp, out_a, out_b
