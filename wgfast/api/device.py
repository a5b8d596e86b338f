"""The Python API: `Device` and `Peer`, over the UAPI socket of any WireGuard userspace
implementation (wgfastd or wireguard-go).

    dev = Device.attach("wg0")
    dev.configure(private_key=keys.generate_private_key(), listen_port=51820)
    dev.add_peer(Peer(public_key=..., allowed_ips=["10.0.0.2/32"], endpoint="192.0.2.1:51820"))
    for peer in dev.peers():
        print(peer.public_key_base64, peer.latest_handshake, peer.rx_bytes)
    dev.remove_peer(...)

`AsyncDevice` has the same methods as coroutines. Keys may be given as 32 raw bytes or in
wg's base64 text; they are held as bytes. Every change is one UAPI `set` request.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from wgfast import keys
from wgfast.uapi import (
    SOCKET_DIRECTORY,
    AsyncUAPIClient,
    ChangeSet,
    DeviceStatus,
    Endpoint,
    PeerChange,
    PeerStatus,
    UAPIClient,
    socket_path,
)

if TYPE_CHECKING:
    from wgfast.wgquick import QuickConfig

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
KeyLike = bytes | str


def to_key(value: KeyLike) -> bytes:
    """32 raw bytes from bytes or base64 text (hex is accepted too, as UAPI writes it)."""
    if isinstance(value, bytes | bytearray):
        if len(value) != keys.KEY_LEN:
            raise ValueError(f"a key is {keys.KEY_LEN} bytes, got {len(value)}")
        return bytes(value)
    if len(value.strip()) == keys.KEY_HEX_LEN:
        return keys.from_hex(value)
    return keys.from_base64(value)


def _networks(values: Iterable[Network | str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(v, strict=False) if isinstance(v, str) else v
                 for v in values)


def _endpoint(value: Endpoint | str | None) -> Endpoint | None:
    if value is None or isinstance(value, Endpoint):
        return value
    from wgfast.wgquick import parse_endpoint

    return parse_endpoint(value).resolve()


@dataclass(frozen=True)
class Peer:
    """One peer: its configuration and, when read from a device, its live counters.

    Build one to add; the live fields (`last_handshake_*`, `rx_bytes`, `tx_bytes`) are filled
    in by `Device.peers()` and ignored when configuring.
    """

    public_key: bytes
    preshared_key: bytes | None = None
    endpoint: Endpoint | None = None
    allowed_ips: tuple[Network, ...] = ()
    persistent_keepalive: int = 0
    last_handshake_time_sec: int = 0
    last_handshake_time_nsec: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    def __init__(
        self,
        public_key: KeyLike,
        preshared_key: KeyLike | None = None,
        endpoint: Endpoint | str | None = None,
        allowed_ips: Iterable[Network | str] = (),
        persistent_keepalive: int = 0,
        last_handshake_time_sec: int = 0,
        last_handshake_time_nsec: int = 0,
        rx_bytes: int = 0,
        tx_bytes: int = 0,
        extra: dict[str, str] | None = None,
    ) -> None:
        s = object.__setattr__  # frozen: assign once, here
        s(self, "public_key", to_key(public_key))
        psk = None if preshared_key is None else to_key(preshared_key)
        s(self, "preshared_key", None if psk == bytes(keys.KEY_LEN) else psk)
        s(self, "endpoint", _endpoint(endpoint))
        s(self, "allowed_ips", _networks(allowed_ips))
        s(self, "persistent_keepalive", int(persistent_keepalive))
        s(self, "last_handshake_time_sec", last_handshake_time_sec)
        s(self, "last_handshake_time_nsec", last_handshake_time_nsec)
        s(self, "rx_bytes", rx_bytes)
        s(self, "tx_bytes", tx_bytes)
        s(self, "extra", dict(extra or {}))

    @property
    def public_key_base64(self) -> str:
        return keys.to_base64(self.public_key)

    @property
    def latest_handshake(self) -> datetime | None:
        """When the last handshake completed (UTC), or None if never."""
        if not self.last_handshake_time_sec and not self.last_handshake_time_nsec:
            return None
        seconds = self.last_handshake_time_sec + self.last_handshake_time_nsec / 1e9
        return datetime.fromtimestamp(seconds, UTC)

    @classmethod
    def from_status(cls, status: PeerStatus, extra: dict[str, str] | None = None) -> Peer:
        return cls(
            public_key=status.public_key,
            preshared_key=status.preshared_key,
            endpoint=status.endpoint,
            allowed_ips=status.allowed_ips,
            persistent_keepalive=status.persistent_keepalive_interval,
            last_handshake_time_sec=status.last_handshake_time_sec,
            last_handshake_time_nsec=status.last_handshake_time_nsec,
            rx_bytes=status.rx_bytes,
            tx_bytes=status.tx_bytes,
            extra=extra,
        )

    def change(self, *, update_only: bool = False, replace_allowed_ips: bool = True) -> PeerChange:
        """The UAPI section that makes the device's view of this peer equal to this one."""
        return PeerChange(
            public_key=self.public_key,
            update_only=update_only,
            preshared_key=self.preshared_key or bytes(keys.KEY_LEN),
            endpoint=self.endpoint,
            persistent_keepalive_interval=self.persistent_keepalive,
            replace_allowed_ips=replace_allowed_ips,
            allowed_ips=list(self.allowed_ips),
        )

    def __repr__(self) -> str:
        return (f"Peer({self.public_key_base64}, endpoint={self.endpoint}, "
                f"allowed_ips={[str(n) for n in self.allowed_ips]})")


@dataclass(frozen=True)
class DeviceState:
    """A snapshot of a device, as `get=1` reports it."""

    name: str
    private_key: bytes | None
    listen_port: int
    fwmark: int
    peers: tuple[Peer, ...]
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def public_key(self) -> bytes | None:
        return None if self.private_key is None else keys.public_key(self.private_key)

    def peer(self, public_key: KeyLike) -> Peer | None:
        wanted = to_key(public_key)
        return next((p for p in self.peers if p.public_key == wanted), None)

    def __repr__(self) -> str:
        return (f"DeviceState({self.name!r}, listen_port={self.listen_port}, "
                f"fwmark={self.fwmark:#x}, peers={len(self.peers)})")


# Keys parse_get already turns into fields; anything else a device reports (wgfast's own
# counters, for instance) is kept as text in `extra`.
_KNOWN_DEVICE_KEYS = {"private_key", "listen_port", "fwmark", "errno"}
_KNOWN_PEER_KEYS = {
    "public_key", "preshared_key", "protocol_version", "endpoint", "last_handshake_time_sec",
    "last_handshake_time_nsec", "tx_bytes", "rx_bytes", "persistent_keepalive_interval",
    "allowed_ip",
}  # fmt: skip


def state_from_text(name: str, text: str) -> DeviceState:
    """Build a DeviceState from a whole get=1 reply, keeping unknown keys as `extra`."""
    from wgfast.uapi import parse_get

    status: DeviceStatus = parse_get(text)
    device_extra: dict[str, str] = {}
    peer_extras: list[dict[str, str]] = []
    for line in text.split("\n"):
        key, _, value = line.partition("=")
        if key == "public_key":
            peer_extras.append({})
        elif not peer_extras and key and key not in _KNOWN_DEVICE_KEYS:
            device_extra[key] = value
        elif peer_extras and key and key not in _KNOWN_PEER_KEYS and key != "errno":
            peer_extras[-1][key] = value
    peers = tuple(Peer.from_status(p, extra) for p, extra in zip(status.peers, peer_extras,
                                                                 strict=True))
    return DeviceState(name, status.private_key, status.listen_port, status.fwmark, peers,
                       device_extra)


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()


def configure_changes(
    private_key: KeyLike | None | _Unset = UNSET,
    listen_port: int | _Unset = UNSET,
    fwmark: int | _Unset = UNSET,
) -> ChangeSet:
    changes = ChangeSet()
    if not isinstance(private_key, _Unset):
        changes.private_key = bytes(keys.KEY_LEN) if private_key is None else to_key(private_key)
    if not isinstance(listen_port, _Unset):
        changes.listen_port = listen_port
    if not isinstance(fwmark, _Unset):
        changes.fwmark = fwmark
    return changes


def update_peer_change(
    public_key: KeyLike,
    *,
    preshared_key: KeyLike | None | _Unset = UNSET,
    endpoint: Endpoint | str | _Unset = UNSET,
    allowed_ips: Iterable[Network | str] | _Unset = UNSET,
    add_allowed_ips: Iterable[Network | str] = (),
    persistent_keepalive: int | _Unset = UNSET,
) -> ChangeSet:
    change = PeerChange(public_key=to_key(public_key), update_only=True)
    if not isinstance(preshared_key, _Unset):
        change.preshared_key = (bytes(keys.KEY_LEN) if preshared_key is None
                                else to_key(preshared_key))
    if not isinstance(endpoint, _Unset):
        change.endpoint = _endpoint(endpoint)
    if not isinstance(allowed_ips, _Unset):
        change.replace_allowed_ips = True
        change.allowed_ips = list(_networks(allowed_ips))
    change.allowed_ips += list(_networks(add_allowed_ips))
    if not isinstance(persistent_keepalive, _Unset):
        change.persistent_keepalive_interval = persistent_keepalive
    return ChangeSet(peers=[change])


def config_changes(config: QuickConfig) -> ChangeSet:
    """The one set request that makes a device match a wg-quick file's WireGuard part
    (what `wg setconf` does): every peer replaced, endpoints resolved now."""
    iface = config.interface
    changes = ChangeSet(
        private_key=iface.private_key if iface.private_key is not None else bytes(keys.KEY_LEN),
        listen_port=iface.listen_port,
        fwmark=iface.fwmark if iface.fwmark is not None else 0,
        replace_peers=True,
    )
    for peer in config.peers:
        changes.peers.append(PeerChange(
            public_key=peer.public_key,
            preshared_key=peer.preshared_key,
            endpoint=peer.endpoint.resolve() if peer.endpoint is not None else None,
            persistent_keepalive_interval=peer.persistent_keepalive,
            replace_allowed_ips=True,
            allowed_ips=list(peer.allowed_ips),
        ))  # fmt: skip
    return changes


class Device:
    """A WireGuard interface served by a userspace implementation, driven over UAPI."""

    def __init__(self, name: str, *, socket_directory: str = SOCKET_DIRECTORY,
                 timeout: float = 10.0) -> None:
        self.name = name
        self.client = UAPIClient(socket_path(name, socket_directory), timeout)

    @classmethod
    def attach(cls, name: str, **kwargs: object) -> Device:
        """A Device for an existing interface; raises FileNotFoundError if none listens."""
        device = cls(name, **kwargs)  # type: ignore[arg-type]
        if not os.path.exists(device.client.path):
            raise FileNotFoundError(f"no UAPI socket for {name} at {device.client.path}")
        device.state()
        return device

    def state(self) -> DeviceState:
        return state_from_text(self.name, self.client.get_text())

    def peers(self) -> list[Peer]:
        return list(self.state().peers)

    def peer(self, public_key: KeyLike) -> Peer | None:
        return self.state().peer(public_key)

    def configure(self, *, private_key: KeyLike | None | _Unset = UNSET,
                  listen_port: int | _Unset = UNSET, fwmark: int | _Unset = UNSET) -> None:
        """Change device settings; `private_key=None` removes the key, `fwmark=0` the mark."""
        self.client.set(configure_changes(private_key, listen_port, fwmark))

    def apply(self, config: QuickConfig) -> None:
        """Make the WireGuard settings exactly those of a wg-quick configuration."""
        self.client.set(config_changes(config))

    def add_peer(self, peer: Peer) -> None:
        """Add a peer, or make an existing one exactly `peer` (allowed IPs replaced)."""
        self.client.set(ChangeSet(peers=[peer.change()]))

    def set_peers(self, peers: Iterable[Peer]) -> None:
        """Replace every peer at once."""
        self.client.set(ChangeSet(replace_peers=True, peers=[p.change() for p in peers]))

    def update_peer(self, public_key: KeyLike, **changes: object) -> None:
        """Change some fields of an existing peer (ignored if the peer does not exist):
        preshared_key, endpoint, allowed_ips (replaces), add_allowed_ips, persistent_keepalive."""
        self.client.set(update_peer_change(public_key, **changes))  # type: ignore[arg-type]

    def remove_peer(self, public_key: KeyLike) -> None:
        self.client.set(ChangeSet(peers=[PeerChange(to_key(public_key), remove=True)]))

    def __repr__(self) -> str:
        return f"Device({self.name!r})"


class AsyncDevice:
    """The asyncio twin of Device."""

    def __init__(self, name: str, *, socket_directory: str = SOCKET_DIRECTORY,
                 timeout: float = 10.0) -> None:
        self.name = name
        self.client = AsyncUAPIClient(socket_path(name, socket_directory), timeout)

    @classmethod
    async def attach(cls, name: str, **kwargs: object) -> AsyncDevice:
        device = cls(name, **kwargs)  # type: ignore[arg-type]
        if not os.path.exists(device.client.path):
            raise FileNotFoundError(f"no UAPI socket for {name} at {device.client.path}")
        await device.state()
        return device

    async def state(self) -> DeviceState:
        reply = await self.client._exchange(b"get=1\n\n")
        return state_from_text(self.name, reply.decode("utf-8", "replace"))

    async def peers(self) -> list[Peer]:
        return list((await self.state()).peers)

    async def peer(self, public_key: KeyLike) -> Peer | None:
        return (await self.state()).peer(public_key)

    async def configure(self, *, private_key: KeyLike | None | _Unset = UNSET,
                        listen_port: int | _Unset = UNSET,
                        fwmark: int | _Unset = UNSET) -> None:
        await self.client.set(configure_changes(private_key, listen_port, fwmark))

    async def apply(self, config: QuickConfig) -> None:
        await self.client.set(config_changes(config))

    async def add_peer(self, peer: Peer) -> None:
        await self.client.set(ChangeSet(peers=[peer.change()]))

    async def set_peers(self, peers: Iterable[Peer]) -> None:
        await self.client.set(ChangeSet(replace_peers=True, peers=[p.change() for p in peers]))

    async def update_peer(self, public_key: KeyLike, **changes: object) -> None:
        await self.client.set(update_peer_change(public_key, **changes))  # type: ignore[arg-type]

    async def remove_peer(self, public_key: KeyLike) -> None:
        await self.client.set(ChangeSet(peers=[PeerChange(to_key(public_key), remove=True)]))

    def __repr__(self) -> str:
        return f"AsyncDevice({self.name!r})"
