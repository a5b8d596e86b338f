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

from .uapi import (
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
        """Return the configuration after `changes`, or raise UAPIError leaving self as is."""
        changes.validate()
        private_key = self.private_key
        if changes.private_key is not None:
            private_key = None if changes.private_key == ZERO_KEY else clamp(changes.private_key)
        own_public = public_key_of(private_key) if private_key is not None else None

        # Insertion-ordered working copy (public key -> mutable fields) and the one
        # allowed-ips table over it (prefix -> owning public key).
        peers: dict[bytes, dict] = (
            {} if changes.replace_peers else {p.public_key: _fields(p) for p in self.peers}
        )
        owners = {prefix: key for key, f in peers.items() for prefix in f["allowed_ips"]}

        def drop_peer(key: bytes) -> None:
            removed = peers.pop(key, None)
            if removed is not None:
                for prefix in removed["allowed_ips"]:
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
            current = peers.get(key)
            if current is None:
                if section.update_only:
                    continue
                current = peers[key] = _fields(PeerConfig(key))
            if section.preshared_key is not None:
                current["preshared_key"] = section.preshared_key
            if section.endpoint is not None:
                current["endpoint"] = section.endpoint
            if section.persistent_keepalive_interval is not None:
                current["persistent_keepalive_interval"] = section.persistent_keepalive_interval
            if section.replace_allowed_ips:
                for prefix in current["allowed_ips"]:
                    del owners[prefix]
                current["allowed_ips"] = {}
            for prefix in section.allowed_ips:
                previous = owners.get(prefix)
                if previous is not None and previous != key:
                    del peers[previous]["allowed_ips"][prefix]
                owners[prefix] = key
                current["allowed_ips"][prefix] = None

        return DeviceConfig(
            private_key=private_key,
            listen_port=self.listen_port if changes.listen_port is None else changes.listen_port,
            fwmark=self.fwmark if changes.fwmark is None else changes.fwmark,
            peers=tuple(
                PeerConfig(**{**fields, "allowed_ips": tuple(fields["allowed_ips"])})
                for fields in peers.values()
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


def _fields(peer: PeerConfig) -> dict:
    fields = {f.name: getattr(peer, f.name) for f in dataclasses.fields(peer)}
    fields["allowed_ips"] = dict.fromkeys(peer.allowed_ips)  # an ordered set
    return fields
