"""wgfast.daemon.allowed_ips.sync_allowed_ips against a plain dict table, and against the C
AllowedIPs table (wgfast.bench._cbench.AllowedIPs)."""

from __future__ import annotations

import ipaddress

from wgfast.bench._cbench import AllowedIPs

from wgfast.daemon.allowed_ips import sync_allowed_ips


class DictTable:
    """The reference: prefix -> peer, insert re-points, remove only the owner's."""

    def __init__(self) -> None:
        self.owner: dict = {}

    def insert(self, prefix, peer: int) -> None:
        self.owner[prefix] = peer

    def remove(self, prefix, peer: int) -> bool:
        if self.owner.get(prefix) != peer:
            return False
        del self.owner[prefix]
        return True


def net(text: str):
    return ipaddress.ip_network(text)


def as_owner(mapping: dict[int, frozenset]) -> dict:
    return {prefix: peer for peer, prefixes in mapping.items() for prefix in prefixes}


STEPS = [
    {},
    {1: frozenset({net("10.0.0.0/24"), net("fd00::/64")}), 2: frozenset({net("10.0.1.0/24")})},
    # a prefix moves from peer 1 to peer 2, peer 2 loses its own, peer 3 appears
    {1: frozenset({net("fd00::/64")}), 2: frozenset({net("10.0.0.0/24")}),
     3: frozenset({net("0.0.0.0/0")})},
    # peer 1 keeps nothing, peer 3 takes everything v6
    {1: frozenset(), 2: frozenset({net("10.0.0.0/24")}), 3: frozenset({net("::/0")})},
    {},
]


def test_steps_match_the_configuration():
    table = DictTable()
    for old, new in zip(STEPS, STEPS[1:], strict=False):
        sync_allowed_ips(table, old, new)
        assert table.owner == as_owner(new)


def test_moved_prefix_is_not_removed_from_its_new_owner():
    table = DictTable()
    old = {1: frozenset({net("10.0.0.0/24")})}
    new = {1: frozenset(), 2: frozenset({net("10.0.0.0/24")})}
    sync_allowed_ips(table, {}, old)
    removed, inserted = sync_allowed_ips(table, old, new)
    assert (removed, inserted) == (0, 1)
    assert table.owner == {net("10.0.0.0/24"): 2}


def test_against_the_c_table():
    table = AllowedIPs()
    for old, new in zip(STEPS, STEPS[1:], strict=False):
        sync_allowed_ips(table, old, new)
        owners = as_owner(new)
        for prefix, peer in owners.items():
            assert table.lookup(prefix.network_address) == peer
        assert len(table) == len(owners)
