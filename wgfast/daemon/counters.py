"""wgfastd's own counters, reported outside the daemon as extra device-level keys of a get=1
reply.

The stock `wg` tool ignores keys it does not know in a get reply (wireguard-tools'
userspace_get_device matches each key against its list and skips the rest), so wgfastd appends
its counters after the standard device keys (private_key, listen_port, fwmark) and before the
first peer: `wg show` is unaffected and `wgfast show --json` lists them under "counters"
(wgfast.api keeps unknown device keys in `extra`). Names:

- wgfast_drop_<reason>: datagrams or packets the data plane dropped (csrc/dataplane.h
  enum wgf_dp_drop, e.g. bad_type, bad_size, unknown_index, auth, replay, no_peer).
- wgfast_handshake_drop_<reason>: handshake-type datagrams the protocol core rejected
  (wgfast.protocol.drop.DropReason, e.g. decrypt_failed, stale_timestamp; and internal_error);
  bad_mac1, cookie_required, rate_limited and unknown_handshake_index are the data plane's
  (wgfast_drop_*), counted before the protocol core sees anything.
- wgfast_dp_<stat>: the data plane's other statistics (syscalls, packets per sendmmsg /
  recvmmsg, calls up into Python...).

Only nonzero counters are listed: an absent key means zero.

- wgfast_bind_error: while the link is up but the listen port could not be bound (nothing
  listens; listen_port then reads 0), the errno of that failure (98: address in use).

- wgfast_event_sequence: the sequence number of the last event published (absent: none yet).
  Subscribing with since= this number (0 when absent) misses nothing that followed the
  snapshot (wgfast.daemon.events, README.md "Events").

Two gauges (current values, not counts) follow them, for leak checks from outside
(tests/daemon/test_soak.py):
- wgfast_handshakes_in_flight: peers whose handshake holds a receiver index (Python side).
- wgfast_dp_keypairs_live: keypair slots holding keys in the data plane, over all peers.

The data plane lives as long as the interface (up and down included), so its counters only
grow, as the per-peer byte counters do.
"""

from __future__ import annotations

from collections.abc import Mapping

PREFIX = "wgfast_"
DATAPLANE_DROP = PREFIX + "drop_"
HANDSHAKE_DROP = PREFIX + "handshake_drop_"
DATAPLANE_STAT = PREFIX + "dp_"
HANDSHAKES_IN_FLIGHT = PREFIX + "handshakes_in_flight"
BIND_ERROR = PREFIX + "bind_error"  # the errno binding the listen port failed with, link up
DATAPLANE_KEYPAIRS_LIVE = DATAPLANE_STAT + "keypairs_live"
EVENT_SEQUENCE = PREFIX + "event_sequence"


def flatten_dataplane_stats(stats: Mapping[str, object]) -> dict[str, int]:
    """DataPlane.stats() -> {uapi key: value}."""
    flat: dict[str, int] = {}
    for name, value in stats.items():
        if name == "drops":
            assert isinstance(value, Mapping)
            flat.update({DATAPLANE_DROP + reason: int(n) for reason, n in value.items()})
        else:
            flat[DATAPLANE_STAT + name] = int(value)  # type: ignore[call-overload]
    return flat


def uapi_counters(dataplane: Mapping[str, int],
                  protocol_drops: Mapping[str, int]) -> tuple[tuple[str, int], ...]:  # fmt: skip
    """The (key, value) pairs a get=1 reply carries: the data plane's counters, then the
    protocol core's drops by reason. Only counters that have counted something are listed (an
    absent key is zero), so an idle device's reply stays as short as wireguard-go's."""
    pairs = sorted((k, int(v)) for k, v in dataplane.items() if v)
    pairs += sorted((HANDSHAKE_DROP + str(reason), int(n))
                    for reason, n in protocol_drops.items() if n)  # fmt: skip
    return tuple(pairs)


def leak_gauges(handshakes: int, dataplane_keypairs: int) -> tuple[tuple[str, int], ...]:
    """The gauges a get=1 reply carries after the counters (nonzero ones only)."""
    pairs = ((HANDSHAKES_IN_FLIGHT, handshakes), (DATAPLANE_KEYPAIRS_LIVE, dataplane_keypairs))
    return tuple((key, value) for key, value in pairs if value)
