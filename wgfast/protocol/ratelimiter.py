"""Per-source token bucket for handshake messages under load (the kernel's ratelimiter.c).

A source is an IPv4 address or an IPv6 /64 (one host usually owns a whole /64). Each source may
send PACKETS_PER_SECOND handshakes per second with bursts of PACKETS_BURSTABLE.

Decisions:
- Time is float seconds from an injectable clock (`allow(source, now)` takes it explicitly).
- Memory is bounded: entries idle for more than ENTRY_TTL are expired (checked at most every
  GC_INTERVAL), and when `max_entries` sources are tracked a new source is refused, as the
  kernel does, rather than evicting a source that is being limited.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

PACKETS_PER_SECOND = 20
PACKETS_BURSTABLE = 5
PACKET_COST = 1.0 / PACKETS_PER_SECOND
TOKEN_MAX = PACKET_COST * PACKETS_BURSTABLE
ENTRY_TTL = 1.0
GC_INTERVAL = 1.0
DEFAULT_MAX_ENTRIES = 65536


def source_key(ip: str) -> bytes | None:
    """4 address bytes for IPv4 (and IPv4-mapped IPv6), the first 8 bytes for IPv6."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except (ValueError, AttributeError):
        return None
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped.packed
        return addr.packed[:8]
    return addr.packed


@dataclass(slots=True)
class _Bucket:
    tokens: float
    last_time: float


class RateLimiter:
    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._buckets: dict[bytes, _Bucket] = {}
        self._last_gc: float | None = None

    def __len__(self) -> int:
        return len(self._buckets)

    def _collect(self, now: float) -> None:
        if self._last_gc is not None and now - self._last_gc < GC_INTERVAL:
            return
        self._last_gc = now
        stale = [k for k, b in self._buckets.items() if now - b.last_time > ENTRY_TTL]
        for k in stale:
            del self._buckets[k]

    def allow(self, ip: str, now: float) -> bool:
        """Take one token for this source; False if it has none (or the table is full)."""
        key = source_key(ip)
        if key is None:
            return False
        self._collect(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_entries:
                return False
            self._buckets[key] = _Bucket(TOKEN_MAX - PACKET_COST, now)
            return True
        elapsed = max(0.0, now - bucket.last_time)
        bucket.tokens = min(TOKEN_MAX, bucket.tokens + elapsed)
        bucket.last_time = now
        # A small epsilon absorbs float rounding so exactly-on-rate traffic is not refused.
        if bucket.tokens >= PACKET_COST - 1e-12:
            bucket.tokens -= PACKET_COST
            return True
        return False
