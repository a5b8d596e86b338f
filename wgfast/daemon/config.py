"""The device's configuration as immutable values, changed only by applying a whole ChangeSet.

`DeviceConfig.apply(changes)` validates the change-set first and then builds a *new*
configuration (copy-on-write); the caller swaps its reference only when apply returns, so a set
that fails changes nothing. The rules reproduce wireguard-go's set operation:

- replace_peers removes every peer before the sections are processed;
- a section whose public key is the device's own public key is ignored;
- a section creates its peer unless it says update_only=true (then it only updates);
- remove=true deletes the peer; replace_allowed_ips=true clears its allowed IPs;
- allowed IPs form one table: a prefix given to one peer is taken away from any other;
- setting a private key whose public key equals a peer's removes that peer.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from wgfast.uapi import (
    ZERO_KEY,
    AllowedIP,
    ChangeSet,
    DeviceStatus,
    Endpoint,
    PeerStatus,
)

log = logging.getLogger(__name__)


def public_key_of(private_key: bytes) -> bytes:
    """Curve25519 public key for a private key (clamping as X25519 does)."""
    return (
        X25519PrivateKey.from_private_bytes(private_key)
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
    )


def clamp(private_key: bytes) -> bytes:
    """Curve25519 scalar clamping; wireguard-go stores (and reports) the clamped key."""
    scalar = bytearray(private_key)
    scalar[0] &= 248
    scalar[31] = (scalar[31] & 127) | 64
    return bytes(scalar)


@dataclass(frozen=True)
class PeerConfig:
    public_key: bytes
    preshared_key: bytes = ZERO_KEY
    endpoint: Endpoint | None = None
    persistent_keepalive_interval: int = 0
    allowed_ips: tuple[AllowedIP, ...] = ()


@dataclass(frozen=True)
class PeerStats:
    """Counters the data plane keeps per peer (all zero until it exists)."""

    last_handshake_time_ns: int = 0  # Unix time in nanoseconds; 0 = never
    rx_bytes: int = 0
    tx_bytes: int = 0


@dataclass(frozen=True)
class DeviceConfig:
    private_key: bytes | None = None
    listen_port: int = 0
    fwmark: int = 0
    peers: tuple[PeerConfig, ...] = field(default=())

    @cached_property
    def public_key(self) -> bytes | None:
        if self.private_key is None:
            return None
        return public_key_of(self.private_key)

    def peer(self, public_key: bytes) -> PeerConfig | None:
        return next((p for p in self.peers if p.public_key == public_key), None)

    def apply(self, changes: ChangeSet) -> DeviceConfig:
        """Return the configuration after `changes`, or raise UAPIError leaving self as is.

        Peers the change-set leaves as they were are shared with self (the same PeerConfig
        objects), so callers can find what changed by identity and a set touching a few peers
        of many costs in proportion to those few."""
        changes.validate()
        private_key = self.private_key
        if changes.private_key is not None:
            private_key = None if changes.private_key == ZERO_KEY else clamp(changes.private_key)
        own_public = public_key_of(private_key) if private_key is not None else None

        # Every peer in order (public key -> its unchanged config, or None once `edited` holds
        # its mutable fields), and the one allowed-ips table over them (prefix -> owning public
        # key), built only when a section needs it.
        peers: dict[bytes, PeerConfig | None] = (
            {} if changes.replace_peers else {p.public_key: p for p in self.peers}
        )
        edited: dict[bytes, dict] = {}
        owners: dict[AllowedIP, bytes] | None = None

        def owner_table() -> dict[AllowedIP, bytes]:
            nonlocal owners
            if owners is None:
                owners = {}
                for key, peer in peers.items():
                    prefixes = edited[key]["allowed_ips"] if peer is None else peer.allowed_ips
                    for prefix in prefixes:
                        owners[prefix] = key
            return owners

        def edit(key: bytes) -> dict:
            fields = edited.get(key)
            if fields is None:
                unchanged = peers[key]
                assert unchanged is not None  # None only while `edited` holds the key
                fields = edited[key] = _fields(unchanged)
                peers[key] = None
            return fields

        def drop_peer(key: bytes) -> None:
            if key not in peers:
                return
            removed = peers.pop(key)
            prefixes = edited.pop(key)["allowed_ips"] if removed is None else removed.allowed_ips
            if owners is not None:
                for prefix in prefixes:
                    del owners[prefix]

        if own_public is not None and changes.private_key is not None and own_public in peers:
            drop_peer(own_public)
            log.info("removed the peer whose public key is now the device's own")

        for section in changes.peers:
            key = section.public_key
            if key == own_public:
                continue
            if section.remove:
                drop_peer(key)
                continue
            if key not in peers:
                if section.update_only:
                    continue
                peers[key] = PeerConfig(key)
            current = edit(key)
            if section.preshared_key is not None:
                current["preshared_key"] = section.preshared_key
            if section.endpoint is not None:
                current["endpoint"] = section.endpoint
            if section.persistent_keepalive_interval is not None:
                current["persistent_keepalive_interval"] = section.persistent_keepalive_interval
            if section.replace_allowed_ips:
                if current["allowed_ips"]:
                    table = owner_table()
                    for prefix in current["allowed_ips"]:
                        del table[prefix]
                current["allowed_ips"] = {}
            if section.allowed_ips:
                table = owner_table()
                for prefix in section.allowed_ips:
                    previous = table.get(prefix)
                    if previous is not None and previous != key:
                        del edit(previous)["allowed_ips"][prefix]
                    table[prefix] = key
                    current["allowed_ips"][prefix] = None

        before = {p.public_key: p for p in self.peers} if edited else {}
        return DeviceConfig(
            private_key=private_key,
            listen_port=self.listen_port if changes.listen_port is None else changes.listen_port,
            fwmark=self.fwmark if changes.fwmark is None else changes.fwmark,
            peers=tuple(
                peer if peer is not None else _rebuilt(edited[key], before.get(key))
                for key, peer in peers.items()
            ),
        )

    def status(self, stats: Mapping[bytes, PeerStats] | None = None) -> DeviceStatus:
        """The get=1 view of this configuration plus per-peer counters."""
        stats = stats or {}
        peers = []
        for peer in self.peers:
            counters = stats.get(peer.public_key, PeerStats())
            seconds, nanoseconds = divmod(counters.last_handshake_time_ns, 1_000_000_000)
            peers.append(
                PeerStatus(
                    public_key=peer.public_key,
                    preshared_key=peer.preshared_key,
                    endpoint=peer.endpoint,
                    last_handshake_time_sec=seconds,
                    last_handshake_time_nsec=nanoseconds,
                    tx_bytes=counters.tx_bytes,
                    rx_bytes=counters.rx_bytes,
                    persistent_keepalive_interval=peer.persistent_keepalive_interval,
                    allowed_ips=peer.allowed_ips,
                )
            )
        return DeviceStatus(
            private_key=self.private_key,
            listen_port=self.listen_port,
            fwmark=self.fwmark,
            peers=tuple(peers),
        )


_PEER_FIELDS = tuple(f.name for f in dataclasses.fields(PeerConfig))


def _fields(peer: PeerConfig) -> dict:
    fields = {name: getattr(peer, name) for name in _PEER_FIELDS}
    fields["allowed_ips"] = dict.fromkeys(peer.allowed_ips)  # an ordered set
    return fields


def _rebuilt(fields: dict, before: PeerConfig | None) -> PeerConfig:
    """The PeerConfig for edited `fields`; `before` itself when the edits changed nothing, so
    that a set repeating a peer's configuration leaves it shared."""
    peer = PeerConfig(**{**fields, "allowed_ips": tuple(fields["allowed_ips"])})
    return before if before == peer else peer
