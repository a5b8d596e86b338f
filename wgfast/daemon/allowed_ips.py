"""Keeping the data plane's allowed-IPs table equal to the configuration's, by difference.

The configuration holds allowed IPs per peer (public key); the C table maps prefixes to the
data plane's peer ids. After every applied change-set only the difference is written: prefixes
that left a peer are removed first (only if still that peer's, so a prefix that moved to another
peer is not torn out from under it), then new or moved prefixes are inserted (an insert re-points
an existing prefix, as WireGuard does).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from wgfast.uapi import AllowedIP

PrefixesById = Mapping[int, frozenset[AllowedIP]]


class PrefixTable(Protocol):
    def insert(self, prefix: AllowedIP, peer: int) -> None: ...

    def remove(self, prefix: AllowedIP, peer: int) -> bool: ...


def sync_allowed_ips(table: PrefixTable, old: PrefixesById, new: PrefixesById) -> tuple[int, int]:
    """Turn `table` from holding `old` into holding `new`; returns (removed, inserted)."""
    new_owner = {prefix: peer for peer, prefixes in new.items() for prefix in prefixes}
    removed = inserted = 0
    for peer, prefixes in old.items():
        for prefix in prefixes:
            if new_owner.get(prefix) != peer:
                # A prefix now owned by another peer is simply re-pointed by the insert below.
                if prefix not in new_owner and table.remove(prefix, peer):
                    removed += 1
    for peer, prefixes in new.items():
        before = old.get(peer, frozenset())
        for prefix in prefixes:
            if prefix not in before:
                table.insert(prefix, peer)
                inserted += 1
    return removed, inserted
