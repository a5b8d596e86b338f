"""Per-source token bucket: 20/s, burst 5, IPv6 grouped by /64, bounded memory."""

from __future__ import annotations

from wgfast.protocol.ratelimiter import RateLimiter, source_key


def admitted(rl: RateLimiter, ip: str, times: list[float]) -> int:
    return sum(rl.allow(ip, t) for t in times)


def test_burst_then_refill_at_20_per_second():
    rl = RateLimiter()
    assert admitted(rl, "192.0.2.1", [0.0] * 10) == 5
    assert not rl.allow("192.0.2.1", 0.049)
    assert rl.allow("192.0.2.1", 0.05)
    # Steady state: one every 50 ms passes, faster is refused.
    assert admitted(rl, "192.0.2.1", [0.05 + 0.05 * i for i in range(1, 21)]) == 20
    assert admitted(rl, "192.0.2.1", [1.2 + 0.01 * i for i in range(10)]) <= 4


def test_sources_are_independent_and_ipv6_grouped_by_64():
    rl = RateLimiter()
    assert admitted(rl, "192.0.2.1", [0.0] * 5) == 5
    assert rl.allow("192.0.2.2", 0.0)
    assert admitted(rl, "2001:db8:1:2::1", [0.0] * 3) == 3
    assert admitted(rl, "2001:db8:1:2:ffff::9", [0.0] * 5) == 2  # same /64
    assert rl.allow("2001:db8:1:3::1", 0.0)  # another /64
    assert source_key("::ffff:192.0.2.1") == source_key("192.0.2.1")
    assert source_key("fe80::1%eth0") == source_key("fe80::2")


def test_full_bucket_after_idle():
    rl = RateLimiter()
    admitted(rl, "192.0.2.1", [0.0] * 10)
    assert admitted(rl, "192.0.2.1", [10.0] * 10) == 5


def test_bounded_memory_and_expiry():
    rl = RateLimiter(max_entries=3)
    for i in range(3):
        assert rl.allow(f"192.0.2.{i}", 0.0)
    assert not rl.allow("192.0.2.200", 0.5)  # table full: refuse new sources
    assert rl.allow("192.0.2.0", 0.5)  # known sources still served
    assert rl.allow("192.0.2.200", 2.0)  # idle entries expired
    assert len(rl) == 1


def test_bad_source_refused():
    assert not RateLimiter().allow("not-an-address", 0.0)
