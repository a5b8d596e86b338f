"""Receiver indices: the 32-bit values that name a handshake in flight, then the keypair it made
(the sender index of our handshake messages, the receiver index of what peers send back).

There is one index space and the data plane owns it: it allocates them (unique among every
handshake and keypair index it holds), turns a handshake's into its keypair's when the keypair is
installed, and frees them when keypairs are retired. The protocol core asks through
`IndexSpace`; `LocalIndexSpace` is the same contract in memory, for the core on its own (tests,
`wgfast bench handshake`). Peers are named by their public keys.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Protocol


class IndexSpace(Protocol):
    def allocate(self, peer: bytes) -> int:
        """A fresh index for the peer's new handshake, replacing (freeing) the one before."""
        ...

    def release(self, peer: bytes) -> None:
        """The peer's handshake in flight was abandoned: free its index."""
        ...

    def settle(self, peer: bytes) -> None:
        """The peer's handshake made a keypair, which keeps its index from now on."""
        ...

    def owner(self, index: int) -> bytes | None:
        """The peer whose handshake or keypair holds `index`, if any."""
        ...


class LocalIndexSpace:
    """IndexSpace in memory. Indices kept by keypairs stay taken for the object's life (nothing
    tells it when a keypair retires), which suits the short runs it serves."""

    def __init__(self, random_u32: Callable[[], int] = lambda: secrets.randbits(32)) -> None:
        self._random_u32 = random_u32
        self._owners: dict[int, bytes] = {}
        self._in_flight: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self._in_flight)

    def allocate(self, peer: bytes) -> int:
        self.release(peer)
        while True:
            index = self._random_u32() & 0xFFFFFFFF
            if index not in self._owners:
                self._owners[index] = peer
                self._in_flight[peer] = index
                return index

    def release(self, peer: bytes) -> None:
        index = self._in_flight.pop(peer, None)
        if index is not None:
            del self._owners[index]

    def settle(self, peer: bytes) -> None:
        self._in_flight.pop(peer, None)

    def owner(self, index: int) -> bytes | None:
        return self._owners.get(index)
