"""TAI64N timestamps for handshake initiations (12 bytes, big-endian).

Eight bytes of 2^62 + 10 + seconds (the "+10" is the TAI-UTC offset of 1972 that the kernel and
wireguard-go both add), then four bytes of nanoseconds. Like the kernel, the nanoseconds are
rounded down to a power of two no larger than 1/INITIATIONS_PER_SECOND (2^24 ns ~ 16.8 ms), so a
timestamp leaks no fine timing and a responder's "strictly newer" check still admits one
initiation per 20 ms. Because the encoding is big-endian, byte order equals time order.
"""

from __future__ import annotations

import struct

from wgfast.protocol.messages import INITIATIONS_PER_SECOND, TIMESTAMP_LEN

TAI64_BASE = 0x400000000000000A
NSEC_PER_SEC = 1_000_000_000
# rounddown_pow_of_two(NSEC_PER_SEC // INITIATIONS_PER_SECOND) == 2**24
_GRANULARITY = 1 << ((NSEC_PER_SEC // INITIATIONS_PER_SECOND).bit_length() - 1)

_TAI64N = struct.Struct(">QI")
ZERO = bytes(TIMESTAMP_LEN)


def encode(unix_time_ns: int) -> bytes:
    """TAI64N of a Unix time in nanoseconds, with the kernel's reduced precision."""
    seconds, nanos = divmod(unix_time_ns, NSEC_PER_SEC)
    nanos -= nanos % _GRANULARITY
    return _TAI64N.pack(TAI64_BASE + seconds, nanos)


def decode(stamp: bytes) -> tuple[int, int]:
    """(unix seconds, nanoseconds) of a 12-byte TAI64N label."""
    label, nanos = _TAI64N.unpack(stamp)
    return label - TAI64_BASE, nanos


def is_newer(candidate: bytes, latest: bytes) -> bool:
    """True if `candidate` is strictly later than `latest` (big-endian bytes compare as time)."""
    return candidate > latest
