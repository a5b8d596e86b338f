"""wgfast.daemon.allowed_ips.AllowedIPs against a plain dict table, and against the C
AllowedIPs table (wgfast.bench._cbench.AllowedIPs): the table follows the configuration peer by
peer, and the record stays what the table holds even when a write fails half way."""

from __future__ import annotations

import ipaddress

import pytest
from wgfast.bench._cbench import AllowedIPs as CTable

from wgfast.daemon.allowed_ips import AllowedIPs


class DictTable:
    """The reference: prefix -> peer, insert re-points, remove only the owner's."""

    def __init__(self) -> None:
        self.owner: dict = {}
        self.writes = 0
        self.fail_after: int | None = None

    def _write(self) -> None:
        if self.fail_after is not None and self.writes >= self.fail_after:
            raise MemoryError("table full")
        self.writes += 1

    def insert(self, prefix, peer: int) -> None:
        self._write()
        self.owner[prefix] = peer

    def remove(self, prefix, peer: int) -> bool:
        self._write()
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
    {1: frozenset(), 2: frozenset(), 3: frozenset()},
]


@pytest.mark.parametrize("order", [1, -1], ids=["gainer-last", "gainer-first"])
def test_steps_match_the_configuration(order):
    table = DictTable()
    ips = AllowedIPs(table)
    for step in STEPS[1:]:
        for peer in sorted(step, reverse=order < 0):
            ips.set(peer, step[peer])
        assert table.owner == as_owner(step) == ips.owner
        assert all(ips.of(peer) == prefixes for peer, prefixes in step.items())


def test_moved_prefix_is_not_removed_from_its_new_owner():
    table = DictTable()
    ips = AllowedIPs(table)
    ips.set(1, {net("10.0.0.0/24")})
    ips.set(2, {net("10.0.0.0/24")})  # re-pointed: peer 1 loses it at once
    assert ips.of(1) == frozenset()
    ips.set(1, set())  # nothing of peer 1's to remove any more
    assert table.owner == {net("10.0.0.0/24"): 2}


def test_record_follows_a_write_that_failed_half_way():
    table = DictTable()
    ips = AllowedIPs(table)
    ips.set(1, {net("10.0.0.0/24"), net("10.0.1.0/24")})
    table.fail_after = table.writes + 1
    with pytest.raises(MemoryError):
        ips.set(1, {net("10.0.2.0/24"), net("10.0.3.0/24")})
    assert as_owner({1: ips.of(1)}) == table.owner  # the truth, whatever got written
    table.fail_after = None
    ips.set(1, {net("10.0.0.0/24"), net("10.0.1.0/24")})  # the roll-back
    assert table.owner == {net("10.0.0.0/24"): 1, net("10.0.1.0/24"): 1}


def test_forget_a_removed_peer():
    ips = AllowedIPs(DictTable())
    ips.set(4, {net("10.4.0.0/16")})
    ips.forget(4)
    assert ips.owner == {} and ips.of(4) == frozenset()


def test_against_the_c_table():
    table = CTable()
    ips = AllowedIPs(table)
    for step in STEPS[1:]:
        for peer, prefixes in step.items():
            ips.set(peer, prefixes)
        owners = as_owner(step)
        for prefix, peer in owners.items():
            assert table.lookup(prefix.network_address) == peer
        assert len(table) == len(owners)
