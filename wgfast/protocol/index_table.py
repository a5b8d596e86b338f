"""Local sender indices: random 32-bit values, unique per device (kernel index hashtable).

An index first names a peer's handshake in progress; when the session is derived the keypair
takes the index over (`replace`), so the receiver index of a response finds the handshake and the
receiver index of a data packet finds the keypair. Randomness is injectable for tests.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from wgfast.protocol.keypair import Keypair

PeerT = TypeVar("PeerT")  # the peer type (wgfast.protocol.peer.Peer), kept generic: no import


@dataclass(slots=True)
class IndexEntry(Generic[PeerT]):
    peer: PeerT
    keypair: Keypair | None  # None: the index names the peer's handshake


class IndexTable(Generic[PeerT]):
    def __init__(self, random_u32: Callable[[], int] = lambda: secrets.randbits(32)) -> None:
        self._random_u32 = random_u32
        self._entries: dict[int, IndexEntry[PeerT]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def allocate(self, peer: PeerT) -> int:
        while True:
            index = self._random_u32() & 0xFFFFFFFF
            if index not in self._entries:
                self._entries[index] = IndexEntry(peer, None)
                return index

    def replace(self, index: int, keypair: Keypair) -> None:
        self._entries[index].keypair = keypair

    def remove(self, index: int | None) -> None:
        if index is not None:
            self._entries.pop(index, None)

    def lookup(self, index: int) -> IndexEntry[PeerT] | None:
        return self._entries.get(index)
