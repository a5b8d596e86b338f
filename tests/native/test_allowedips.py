"""Allowed IPs through the Python skin: accepted argument forms, WireGuard's re-point and
owner-only removal, enumeration, the packet path, and hypothesis-driven workloads checked against
a pure-Python longest-prefix reference."""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wgfast.bench._cbench import AllowedIPs

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass
class ReferenceTable:
    """Longest-prefix match by scanning every prefix: slow, obviously right."""

    routes: dict[Network, int] = field(default_factory=dict)

    def insert(self, net: Network, peer: int) -> None:
        self.routes[net] = peer

    def remove(self, net: Network, peer: int) -> bool:
        if self.routes.get(net) != peer:
            return False
        del self.routes[net]
        return True

    def remove_by_peer(self, peer: int) -> int:
        mine = [net for net, owner in self.routes.items() if owner == peer]
        for net in mine:
            del self.routes[net]
        return len(mine)

    def lookup(self, addr: Address) -> int:
        best: tuple[int, int] = (-1, 0)
        for net, peer in self.routes.items():
            if net.version == addr.version and addr in net and net.prefixlen > best[0]:
                best = (net.prefixlen, peer)
        return best[1]

    def prefixes_of(self, peer: int) -> list[Network]:
        nets = [net for net, owner in self.routes.items() if owner == peer]
        return sorted(nets, key=lambda n: (n.version, n.network_address, n.prefixlen))


def test_accepted_forms_and_host_bit_masking():
    t = AllowedIPs()
    t.insert("10.1.2.3/8", 1)  # host bits are masked, as `wg` does
    t.insert(("192.168.7.9", 24), 2)
    t.insert(ipaddress.ip_interface("fd00::1/64"), 3)
    t.insert(ipaddress.ip_address("203.0.113.5"), 4)  # a bare address is a host route
    t.insert("2001:db8::1", 5)
    t.insert((bytes([172, 16, 0, 0]), 12), 6)
    assert len(t) == 6
    assert t.prefixes_of(1) == [ipaddress.ip_network("10.0.0.0/8")]
    assert t.prefixes_of(2) == [ipaddress.ip_network("192.168.7.0/24")]
    assert t.prefixes_of(3) == [ipaddress.ip_network("fd00::/64")]
    assert t.prefixes_of(4) == [ipaddress.ip_network("203.0.113.5/32")]
    assert t.prefixes_of(5) == [ipaddress.ip_network("2001:db8::1/128")]
    assert t.prefixes_of(6) == [ipaddress.ip_network("172.16.0.0/12")]
    assert t.lookup("10.200.0.1") == 1
    assert t.lookup(ipaddress.ip_address("192.168.7.200")) == 2
    assert t.lookup(bytes([192, 168, 8, 1])) == 0
    assert t.lookup(ipaddress.ip_address("fd00::ffff").packed) == 3
    assert t.lookup("fd00:0:0:1::1") == 0
    assert t.lookup("203.0.113.5") == 4
    assert t.lookup("203.0.113.6") == 0
    assert t.lookup("2001:db8::1") == 5
    assert t.lookup("172.31.255.255") == 6


def test_families_default_routes_and_edges():
    t = AllowedIPs()
    t.insert("0.0.0.0/0", 1)
    assert t.lookup("255.255.255.255") == 1
    assert t.lookup("::") == 0  # an IPv4 default route never answers IPv6
    t.insert("::/0", 2)
    t.insert("255.255.255.255/32", 3)
    t.insert("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", 4)
    assert t.lookup("255.255.255.255") == 3
    assert t.lookup("255.255.255.254") == 1
    assert t.lookup("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff") == 4
    assert t.lookup("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe") == 2
    assert t.remove("0.0.0.0/0", 1)
    assert t.lookup("1.1.1.1") == 0
    assert t.lookup("::1") == 2


def test_repoint_and_owner_only_removal():
    t = AllowedIPs()
    t.insert("10.0.0.0/8", 1)
    t.insert("10.0.0.0/8", 2)  # the same prefix moves to the newer peer
    assert len(t) == 1
    assert t.lookup("10.1.1.1") == 2
    assert t.prefixes_of(1) == []
    assert t.count_of(2) == 1
    assert not t.remove("10.0.0.0/8", 1)
    assert t.lookup("10.1.1.1") == 2
    assert t.remove("10.0.0.0/8", 2)
    assert not t.remove("10.0.0.0/8", 2)
    assert len(t) == 0 and t.node_count == 0


def test_remove_by_peer():
    t = AllowedIPs()
    for i in range(50):
        t.insert(f"10.{i}.0.0/16", 1 + i % 3)
        t.insert(f"fd00:{i:x}::/32", 1 + i % 3)
    assert t.remove_by_peer(2) == 34
    assert t.count_of(2) == 0
    assert t.lookup("10.1.5.5") == 0
    assert t.lookup("10.0.5.5") == 1
    assert t.remove_by_peer(2) == 0
    assert len(t) == 66


@pytest.mark.parametrize("version", [4, 6])
def test_every_prefix_length_nests(version):
    """One prefix of every length along one address: each query that first differs at bit c
    must land on the /c prefix, through both the single and the batch lookup."""
    bits = 32 if version == 4 else 128
    cls = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
    base = 0xA5C3_0F96 if version == 4 else 0x2001_0DB8_A5C3_0F96_1234_5678_9ABC_DEF0
    t, ref = AllowedIPs(), ReferenceTable()
    for cidr in range(bits + 1):
        net = cls((base, cidr), strict=False)
        t.insert(net, cidr + 1)
        ref.insert(net, cidr + 1)
    addr_cls = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    # Flipping bit c (from the top) leaves exactly c leading bits in common with base.
    probes = [addr_cls(base ^ (1 << (bits - 1 - c))) for c in range(bits)] + [addr_cls(base)]
    want = list(range(1, bits + 2))
    assert [ref.lookup(a) for a in probes] == want
    assert [t.lookup(a) for a in probes] == want
    assert t.lookup_many(probes) == want
    # Peel the prefixes off in a scrambled order; answers fall back to the next shorter one.
    order = list(range(bits + 1))
    order = order[::3] + order[1::3] + order[2::3]
    for cidr in order:
        net = cls((base, cidr), strict=False)
        assert t.remove(net, cidr + 1) and ref.remove(net, cidr + 1)
        want = [ref.lookup(a) for a in probes]
        assert t.lookup_many(probes) == want
        assert [t.lookup(a) for a in probes] == want
    assert len(t) == 0 and t.node_count == 0


def test_bad_arguments():
    t = AllowedIPs()
    with pytest.raises(ValueError):
        t.insert("10.0.0.0/8", 0)
    with pytest.raises(ValueError):
        t.insert(("10.0.0.0", 33), 1)
    with pytest.raises(ValueError):
        t.insert(("::", 129), 1)
    with pytest.raises(ValueError):
        t.insert("10.0.0.0/40", 1)
    with pytest.raises(ValueError):
        t.lookup(b"\x01\x02\x03")
    with pytest.raises(TypeError):
        t.lookup(1234)
    with pytest.raises(OverflowError):
        t.insert("10.0.0.0/8", -1)
    assert len(t) == 0


def ipv4_header(src: str, dst: str) -> bytes:
    return bytes([0x45]) + bytes(11) + ipaddress.ip_address(src).packed + \
        ipaddress.ip_address(dst).packed


def ipv6_header(src: str, dst: str) -> bytes:
    return bytes([0x60]) + bytes(7) + ipaddress.ip_address(src).packed + \
        ipaddress.ip_address(dst).packed


def test_lookup_packets_routes_by_header():
    t = AllowedIPs()
    t.insert("10.0.0.0/8", 1)
    t.insert("192.168.0.0/16", 2)
    t.insert("fd00::/8", 3)
    t.insert("2001:db8::/32", 4)
    pkts = [
        ipv4_header("192.168.1.1", "10.9.9.9"),
        ipv6_header("fd00::1", "2001:db8::7"),
        ipv4_header("192.168.1.1", "10.9.9.9")[:19],  # truncated header
        b"",
        bytes([0x50]) + bytes(39),  # not IPv4 or IPv6
    ] * 5
    assert t.lookup_packets(pkts) == [1, 4, 0, 0, 0] * 5
    assert t.lookup_packets(pkts, source=True) == [2, 3, 0, 0, 0] * 5


def test_readers_in_threads_while_writing():
    """Lookups release the GIL and run inside the C lock while the main thread rewrites."""
    t = AllowedIPs()
    t.insert("10.0.0.0/8", 1)
    t.insert("fd00::/8", 2)
    stop = threading.Event()
    wrong: list[list[int]] = []

    def reader() -> None:
        while not stop.is_set():
            got = t.lookup_many(["10.1.2.3", "fd00::5"] * 32)
            if got != [1, 2] * 32:
                wrong.append(got)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for th in threads:
        th.start()
    for round_ in range(30):
        for i in range(64):
            t.insert(f"172.{16 + i % 16}.{i}.0/24", 10 + round_)
        t.remove_by_peer(10 + round_)
    stop.set()
    for th in threads:
        th.join()
    assert wrong == []


# ---- hypothesis against the reference ----

V4_BASES = [0x0A000000, 0xC0A80000, 0xC0A80100, 0x00000000, 0xFFFFFFFF]
V6_BASES = [0xFD00 << 112, 0x20010DB8 << 96, (1 << 128) - 1, 0]


@st.composite
def networks(draw, version: int | None = None) -> Network:
    """Prefixes that share high bits with a few bases, so they nest and part at every depth."""
    version = version or draw(st.sampled_from([4, 6]))
    bits = 32 if version == 4 else 128
    base = draw(st.sampled_from(V4_BASES if version == 4 else V6_BASES))
    keep = draw(st.integers(0, bits))
    noise = draw(st.integers(0, (1 << bits) - 1))
    high = ((1 << bits) - 1) ^ ((1 << (bits - keep)) - 1)
    addr = (base & high) | (noise & ~high & ((1 << bits) - 1))
    prefixlen = draw(st.integers(0, bits))
    cls = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
    return cls((addr, prefixlen), strict=False)


@st.composite
def addresses(draw) -> Address:
    net = draw(networks())
    offset = draw(st.integers(0, net.num_addresses - 1))
    return net.network_address + offset


peers = st.integers(1, 6)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), networks(), peers),
        st.tuples(st.just("insert"), networks(), peers),
        st.tuples(st.just("remove"), networks(), peers),
        st.tuples(st.just("remove_by_peer"), st.none(), peers),
    ),
    min_size=5,
    max_size=150,
)


@settings(max_examples=150, deadline=None)
@given(ops=operations, queries=st.lists(addresses(), max_size=60))
def test_matches_reference(ops, queries):
    t, ref = AllowedIPs(), ReferenceTable()
    for op, net, peer in ops:
        if op == "insert":
            t.insert(net, peer)
            ref.insert(net, peer)
        elif op == "remove":
            assert t.remove(net, peer) == ref.remove(net, peer)
        else:
            assert t.remove_by_peer(peer) == ref.remove_by_peer(peer)
    # Also probe each stored prefix's first and last address.
    probes = list(queries)
    for net in ref.routes:
        probes += [net.network_address, net.broadcast_address]
    want = [ref.lookup(a) for a in probes]
    assert [t.lookup(a) for a in probes] == want
    assert t.lookup_many(probes) == want
    assert len(t) == len(ref.routes)
    assert t.node_count <= 2 * len(ref.routes)
    for peer in range(1, 7):
        assert t.prefixes_of(peer) == ref.prefixes_of(peer)
