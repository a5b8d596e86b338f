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

import asyncio
import errno
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from wgfast import keys
from wgfast.api.daemon_process import (
    DaemonCommand,
    DaemonProcess,
    launch_interface,
    stop_daemon,
)
from wgfast.api.events import AsyncEventStream, EventStream
from wgfast.errors import DeviceUnreachableError, PeerNotFoundError
from wgfast.process import socket_server_pid
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

    @property
    def event_sequence(self) -> int:
        """The sequence number of the last event published when this snapshot was taken
        (wgfastd's wgfast_event_sequence key; absent, like every wgfast counter, means 0):
        pass it as `events(since=...)` to miss nothing after the snapshot. 0 also where the
        implementation has no events (wireguard-go), whose `events()` raises
        NotSupportedError."""
        value = self.extra.get(EVENT_SEQUENCE_KEY, "0")
        return int(value) if value.isdigit() else 0

    def __repr__(self) -> str:
        return (f"DeviceState({self.name!r}, listen_port={self.listen_port}, "
                f"fwmark={self.fwmark:#x}, peers={len(self.peers)})")


EVENT_SEQUENCE_KEY = "wgfast_event_sequence"  # wgfast.daemon.counters.EVENT_SEQUENCE

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


def _known_peer(state: DeviceState, public_key: KeyLike, missing_ok: bool) -> bool:
    """Whether the device has the peer; PeerNotFoundError if not, unless missing_ok."""
    if state.peer(public_key) is not None:
        return True
    if missing_ok:
        return False
    raise PeerNotFoundError(f"{state.name} has no peer {keys.to_base64(to_key(public_key))}")


def _interfaces(values: Iterable[ipaddress.IPv4Interface | ipaddress.IPv6Interface | str],
                ) -> tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, ...]:
    return tuple(ipaddress.ip_interface(v) for v in values)


def _initial_changes(private_key: KeyLike | None | _Unset, listen_port: int | _Unset,
                     fwmark: int | _Unset, peers: Iterable[Peer]) -> ChangeSet | None:
    """The one set request `create` sends after the link is up (None: nothing to send)."""
    changes = configure_changes(private_key, listen_port, fwmark)
    changes.peers = [p.change() for p in peers]
    empty = ChangeSet()
    return None if changes == empty else changes


def _attached_daemon(name: str, path: str) -> DaemonProcess | None:
    """The daemon serving `path`, to stop a device this process did not start."""
    pid = socket_server_pid(path)
    if pid is None:
        return None
    # Its namespace by its /proc file: the link is deleted there if it outlives the daemon.
    return DaemonProcess(name, [], f"/proc/{pid}/ns/net", pid=pid, socket=path)


class Device:
    """A WireGuard interface served by a userspace implementation, driven over UAPI."""

    def __init__(self, name: str, *, socket_directory: str = SOCKET_DIRECTORY,
                 timeout: float = 10.0) -> None:
        self.name = name
        self.client = UAPIClient(socket_path(name, socket_directory), timeout)
        self._daemon: DaemonProcess | None = None  # started by create, or found by close
        self._owns_daemon = False

    @classmethod
    def attach(cls, name: str, **kwargs: object) -> Device:
        """A Device for an existing interface (started elsewhere: wgfastd, wireguard-go);
        raises DeviceUnreachableError if no daemon answers on its socket."""
        device = cls(name, **kwargs)  # type: ignore[arg-type]
        if not os.path.exists(device.client.path):
            raise DeviceUnreachableError(errno.ENOENT, f"no UAPI socket for {name} at "
                                         f"{device.client.path}")
        device.state()
        return device

    @classmethod
    def create(
        cls,
        name: str,
        *,
        netns: str | None = None,
        addresses: Iterable[ipaddress.IPv4Interface | ipaddress.IPv6Interface | str] = (),
        mtu: int | None = None,
        up: bool = True,
        private_key: KeyLike | None | _Unset = UNSET,
        listen_port: int | _Unset = UNSET,
        fwmark: int | _Unset = UNSET,
        peers: Iterable[Peer] = (),
        daemon: DaemonCommand | None = None,
        timeout: float = 10.0,
    ) -> Device:
        """Start a daemon for a new interface `name` and return its Device, ready to use.

        The daemon is this wgfast's own (`python -m wgfast.daemon NAME`, as `wgfastd NAME`),
        or `daemon`: another wireguard-go-compatible command, as a string ("wireguard-go") or
        an argv list, which gets NAME appended. With `netns` (an `ip netns` name or a path) the
        daemon is started inside that network namespace, as `ip netns exec NETNS` would start
        it, so the link is created there and never moved (wireguard-go tears its device down
        when its link changes namespace). The UAPI socket is /var/run/wireguard/NAME.sock in
        any case, so NAME must be unique across namespaces too. Then, through rtnetlink in that
        namespace, each of `addresses` ("10.0.0.1/24") is added, the MTU set and the link
        brought up (unless `up=False`); last, the keys, port, fwmark and `peers` given are
        applied in one UAPI set request.

        Raises DaemonStartError, carrying the launcher's reason, when the daemon does not come
        up; ValueError (bad address) or UAPIError (bad key or port) before anything starts;
        LinkError when the kernel refuses an address, the MTU or up.
        Any failure after the daemon started stops it again: no daemon, link or socket is
        left behind. The device owns its daemon: `close()` (or leaving a `with` block) stops
        it.
        """
        process = launch_interface(
            name, daemon=daemon, netns=netns, addresses=_interfaces(addresses), mtu=mtu, up=up,
            changes=_initial_changes(private_key, listen_port, fwmark, peers), timeout=timeout,
        )
        device = cls(name, timeout=timeout)
        device._daemon = process
        device._owns_daemon = True
        return device

    @property
    def daemon(self) -> DaemonProcess | None:
        """The daemon this Device started (create), or None (attach)."""
        return self._daemon if self._owns_daemon else None

    def close(self, *, stop: bool | None = None) -> None:
        """Release the device. A device made by `create` stops its daemon: SIGTERM, wait
        (bounded) until the process has exited and its socket file is gone, link deleted. A
        device from `attach` stops nothing unless `stop=True` (then the daemon serving the
        socket is stopped likewise, whoever started it); `stop=False` never stops.
        Idempotent."""
        if stop is None:
            stop = self._owns_daemon
        if not stop:
            return
        if self._daemon is None:
            self._daemon = _attached_daemon(self.name, self.client.path)
            if self._daemon is None:
                return  # nothing serves the socket: nothing to stop
        stop_daemon(self._daemon)

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

    def update_peer(self, public_key: KeyLike, *, missing_ok: bool = False,
                    **changes: object) -> None:
        """Change some fields of an existing peer: preshared_key, endpoint, allowed_ips
        (replaces), add_allowed_ips, persistent_keepalive. Raises PeerNotFoundError if the
        device has no such peer, unless `missing_ok` (then nothing happens)."""
        if not _known_peer(self.state(), public_key, missing_ok):
            return
        self.client.set(update_peer_change(public_key, **changes))  # type: ignore[arg-type]

    def remove_peer(self, public_key: KeyLike, *, missing_ok: bool = False) -> None:
        """Remove a peer; PeerNotFoundError if there is none, unless `missing_ok`."""
        if not _known_peer(self.state(), public_key, missing_ok):
            return
        self.client.set(ChangeSet(peers=[PeerChange(to_key(public_key), remove=True)]))

    def events(self, since: int | None = None) -> EventStream:
        """Subscribe to the device's events (wgfastd only): a blocking iterator of
        wgfast.api.events items; close it (or leave its `with`) to close the connection.
        `since`: a snapshot's `event_sequence`, to get first the events that followed it.
        Raises NotSupportedError where the implementation has no events (wireguard-go)."""
        return EventStream(self.client.path, since, self.client.timeout)

    def __repr__(self) -> str:
        return f"Device({self.name!r})"


class AsyncDevice:
    """The asyncio twin of Device."""

    def __init__(self, name: str, *, socket_directory: str = SOCKET_DIRECTORY,
                 timeout: float = 10.0) -> None:
        self.name = name
        self.client = AsyncUAPIClient(socket_path(name, socket_directory), timeout)
        self._daemon: DaemonProcess | None = None  # started by create, or found by close
        self._owns_daemon = False

    @classmethod
    async def attach(cls, name: str, **kwargs: object) -> AsyncDevice:
        device = cls(name, **kwargs)  # type: ignore[arg-type]
        if not os.path.exists(device.client.path):
            raise DeviceUnreachableError(errno.ENOENT, f"no UAPI socket for {name} at "
                                         f"{device.client.path}")
        await device.state()
        return device

    @classmethod
    async def create(
        cls,
        name: str,
        *,
        netns: str | None = None,
        addresses: Iterable[ipaddress.IPv4Interface | ipaddress.IPv6Interface | str] = (),
        mtu: int | None = None,
        up: bool = True,
        private_key: KeyLike | None | _Unset = UNSET,
        listen_port: int | _Unset = UNSET,
        fwmark: int | _Unset = UNSET,
        peers: Iterable[Peer] = (),
        daemon: DaemonCommand | None = None,
        timeout: float = 10.0,
    ) -> AsyncDevice:
        """Device.create for asyncio: the same steps and errors, run on a worker thread (the
        launcher and rtnetlink calls block)."""
        addresses = _interfaces(addresses)
        changes = _initial_changes(private_key, listen_port, fwmark, peers)
        process = await asyncio.to_thread(
            launch_interface, name, daemon=daemon, netns=netns, addresses=addresses, mtu=mtu,
            up=up, changes=changes, timeout=timeout,
        )
        device = cls(name, timeout=timeout)
        device._daemon = process
        device._owns_daemon = True
        return device

    @property
    def daemon(self) -> DaemonProcess | None:
        return self._daemon if self._owns_daemon else None

    async def close(self, *, stop: bool | None = None) -> None:
        """Device.close for asyncio (the waiting runs on a worker thread)."""
        if stop is None:
            stop = self._owns_daemon
        if not stop:
            return
        if self._daemon is None:
            self._daemon = await asyncio.to_thread(_attached_daemon, self.name, self.client.path)
            if self._daemon is None:
                return
        await asyncio.to_thread(stop_daemon, self._daemon)

    async def __aenter__(self) -> AsyncDevice:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

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

    async def update_peer(self, public_key: KeyLike, *, missing_ok: bool = False,
                          **changes: object) -> None:
        if not _known_peer(await self.state(), public_key, missing_ok):
            return
        await self.client.set(update_peer_change(public_key, **changes))  # type: ignore[arg-type]

    async def remove_peer(self, public_key: KeyLike, *, missing_ok: bool = False) -> None:
        if not _known_peer(await self.state(), public_key, missing_ok):
            return
        await self.client.set(ChangeSet(peers=[PeerChange(to_key(public_key), remove=True)]))

    def events(self, since: int | None = None) -> AsyncEventStream:
        """The asyncio twin of Device.events: `async for event in dev.events(): ...` (or
        `async with dev.events(since=n) as stream`); it connects at the first item."""
        return AsyncEventStream(self.client.path, since, self.client.timeout)

    def __repr__(self) -> str:
        return f"AsyncDevice({self.name!r})"
