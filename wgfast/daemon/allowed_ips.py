"""Keeping the data plane's allowed-IPs table equal to the configuration's, one peer at a time.

The configuration holds allowed IPs per peer (public key); the C table maps prefixes to the data
plane's peer ids. `AllowedIPs` writes only differences and records each write as it succeeds, so
the record is what the table really holds even when a write fails half way (a failed `set` is
rolled back from it). Prefixes a peer loses are removed first, only where they are still that
peer's; then new prefixes are inserted, an insert re-pointing a prefix another peer held (as
WireGuard does), which that peer's record loses at once. Work is in proportion to the prefixes
of the peers that change, not to the table.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from wgfast.uapi import AllowedIP


class PrefixTable(Protocol):
    def insert(self, prefix: AllowedIP, peer: int) -> None: ...

    def remove(self, prefix: AllowedIP, peer: int) -> bool: ...


class AllowedIPs:
    """A PrefixTable and the record of what it holds: owner per prefix, prefixes per peer."""

    def __init__(self, table: PrefixTable) -> None:
        self.table = table
        self.owner: dict[AllowedIP, int] = {}
        self._by_peer: dict[int, set[AllowedIP]] = {}

    def of(self, peer: int) -> frozenset[AllowedIP]:
        return frozenset(self._by_peer.get(peer, ()))

    def set(self, peer: int, prefixes: Iterable[AllowedIP]) -> None:
        """Make `prefixes` the peer's allowed IPs."""
        wanted = frozenset(prefixes)
        mine = self._by_peer.setdefault(peer, set())
        for prefix in mine - wanted:
            self.table.remove(prefix, peer)
            del self.owner[prefix]
            mine.discard(prefix)
        for prefix in wanted - mine:
            previous = self.owner.get(prefix)
            self.table.insert(prefix, peer)
            self.owner[prefix] = peer
            mine.add(prefix)
            if previous is not None:
                self._by_peer[previous].discard(prefix)

    def forget(self, peer: int) -> None:
        """The peer is gone from the table with all its prefixes (the data plane removes them
        with the peer)."""
        for prefix in self._by_peer.pop(peer, ()):
            del self.owner[prefix]
