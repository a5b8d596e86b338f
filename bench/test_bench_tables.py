"""pytest-benchmark cases for the lookup tables through the Python skin:
`pytest bench/test_bench_tables.py --benchmark-only`.

Python-level numbers include argument conversion (ipaddress parsing, list building); the C-only
figures come from bench/bench_tables.c. Targets: 100,000 prefixes inserted in under 1 s, a lookup
in under 1 us."""

from __future__ import annotations

import ipaddress
import random

import pytest

from wgfast.bench import _cbench

PREFIXES = 100_000
BATCH = 128


def random_prefixes(version: int, n: int, seed: int) -> list[tuple[bytes, int]]:
    """(packed address, cidr) pairs with routing-table-like lengths: mostly long, some short."""
    rng = random.Random(seed)
    bits = 32 if version == 4 else 128
    return [(rng.getrandbits(bits).to_bytes(bits // 8, "big"), rng.randint(bits // 2, bits))
            for _ in range(n)]


@pytest.mark.parametrize("version", [4, 6])
def test_insert_100k(benchmark, version):
    prefixes = random_prefixes(version, PREFIXES, seed=version)

    def build() -> _cbench.AllowedIPs:
        table = _cbench.AllowedIPs()
        for i, prefix in enumerate(prefixes):
            table.insert(prefix, 1 + i % 1000)
        return table

    table = benchmark.pedantic(build, rounds=3, iterations=1)
    assert len(table) > PREFIXES * 0.9  # random prefixes rarely coincide


@pytest.fixture(scope="module")
def full_tables() -> dict[int, _cbench.AllowedIPs]:
    tables = {}
    for version in (4, 6):
        table = _cbench.AllowedIPs()
        for i, prefix in enumerate(random_prefixes(version, PREFIXES, seed=version)):
            table.insert(prefix, 1 + i % 1000)
        tables[version] = table
    return tables


def random_addresses(version: int, n: int) -> list[bytes]:
    rng = random.Random(99)
    size = 4 if version == 4 else 16
    return [rng.getrandbits(8 * size).to_bytes(size, "big") for _ in range(n)]


@pytest.mark.parametrize("version", [4, 6])
def test_lookup_single(benchmark, full_tables, version):
    table = full_tables[version]
    addr = ipaddress.ip_address(random_addresses(version, 1)[0])
    benchmark(table.lookup, addr)


@pytest.mark.parametrize("version", [4, 6])
def test_lookup_batch_128(benchmark, full_tables, version):
    table = full_tables[version]
    addrs = random_addresses(version, BATCH)
    benchmark.extra_info["lookups_per_round"] = BATCH
    benchmark(table.lookup_many, addrs)


def test_lookup_packets_128(benchmark, full_tables):
    """The data plane's path: destinations read straight from IPv4 headers in C."""
    table = full_tables[4]
    packets = [bytes([0x45]) + bytes(15) + a for a in random_addresses(4, BATCH)]
    benchmark.extra_info["lookups_per_round"] = BATCH
    benchmark(table.lookup_packets, packets)


def test_index_lookup_batch_128(benchmark):
    table = _cbench.IndexTable()
    rng = random.Random(7)
    indices = rng.sample(range(2**32), 10_000)
    for i, index in enumerate(indices):
        table.insert(index, 1 + i, i)
    benchmark.extra_info["lookups_per_round"] = BATCH
    benchmark(table.lookup_many, indices[:BATCH])


def test_replay_update(benchmark):
    window = _cbench.ReplayWindow()
    counters = iter(range(10**9))
    benchmark(lambda: window.update(next(counters)))
