"""Why the protocol core dropped an incoming datagram: one name per rejection path.

The device keeps a counter per reason (`DeviceState.drops`); nothing the core rejects raises.
What the data plane refuses before the core sees it (bad mac1, cookie required, rate limited, a
response or cookie reply for no index of ours) is counted there (csrc/dataplane.h,
enum wgf_dp_drop).
"""

from __future__ import annotations

from enum import StrEnum


class DropReason(StrEnum):
    BAD_LENGTH = "bad_length"
    BAD_TYPE = "bad_type"
    DECRYPT_FAILED = "decrypt_failed"
    UNKNOWN_PEER = "unknown_peer"  # initiation decrypted to a static key we have no peer for
    UNKNOWN_INDEX = "unknown_index"
    STALE_TIMESTAMP = "stale_timestamp"
    HANDSHAKE_FLOOD = "handshake_flood"  # more than one initiation per 20 ms from one peer
    WRONG_STATE = "wrong_state"  # e.g. a response for a handshake we did not initiate
    BAD_KEY = "bad_key"  # a low-order point: the X25519 result was all zeros
    UNEXPECTED_COOKIE = "unexpected_cookie"  # cookie reply without a mac1 we sent
    NO_IDENTITY = "no_identity"  # the device has no private key yet
    TRANSPORT_DATA = "transport_data"  # type 4 is the data plane's; it never comes here
