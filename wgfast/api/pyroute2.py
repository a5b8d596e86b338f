"""A drop-in for `pyroute2.WireGuard` / `pyroute2.AsyncWireGuard` (pyroute2 0.9.x) that talks to
userspace WireGuard (wgfastd, wireguard-go) over UAPI instead of the kernel's generic netlink.

    from wgfast.pyroute2 import WireGuard      # was: from pyroute2 import WireGuard

`set(interface, listen_port=, fwmark=, private_key=, peer=)` takes the same arguments and peer
dictionary keys; `info(interface)` returns a tuple of pyroute2's own `wgmsg` objects, built with
pyroute2's encoder and decoded with its decoder, carrying the attributes the kernel sends
(WGDEVICE_A_* and nested WGPEER_A_* / WGALLOWEDIP_A_*). Errors are pyroute2's NetlinkError with
the errno the kernel would give (ENODEV for a missing interface, EINVAL for a refused value).
"""

from __future__ import annotations

import base64
import errno
import ipaddress
import os
import socket
from collections.abc import AsyncIterator, Mapping
from typing import Any

from pyroute2.netlink import NLM_F_MULTI, NLMSG_ERROR, nlmsgerr
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.generic.wireguard import (
    WG_CMD_GET_DEVICE,
    WG_GENL_VERSION,
    WG_KEY_LEN,
    wgmsg,
)

from wgfast import keys
from wgfast.uapi import (
    SOCKET_DIRECTORY,
    AsyncUAPIClient,
    ChangeSet,
    DeviceStatus,
    Endpoint,
    PeerChange,
    UAPIClient,
    UAPIError,
    socket_path,
)

# The generic netlink family id is assigned by the kernel at run time; there is none here, so
# messages carry this fixed stand-in (the first dynamically assigned id, GENL_MIN_ID).
WG_FAMILY_ID_STANDIN = 0x10

__all__ = ["WireGuard", "AsyncWireGuard", "NetlinkError"]


def _test_key(key: Any) -> bytes:
    """pyroute2's key check (base64 of 32 bytes, ValueError otherwise), returning the bytes."""
    try:
        raw = base64.b64decode(key)
    except (TypeError, ValueError):
        raise ValueError("Failed to decode Base64 key") from None
    if len(raw) != WG_KEY_LEN:
        raise ValueError("Invalid WireGuard key length")
    return raw


def build_changes(
    listen_port: int | None = None,
    fwmark: int | None = None,
    private_key: Any = None,
    peer: Mapping[str, Any] | None = None,
) -> ChangeSet:
    """The UAPI request equivalent to one pyroute2 WireGuard.set() call."""
    changes = ChangeSet()
    if private_key is not None:
        changes.private_key = _test_key(private_key)
    if listen_port is not None:
        changes.listen_port = int(listen_port)
    if fwmark is not None:
        changes.fwmark = int(fwmark)
    if peer is not None:
        if "public_key" not in peer:
            raise ValueError("Peer Public key required")
        change = PeerChange(public_key=_test_key(peer["public_key"]))
        changes.peers.append(change)
        if peer.get("remove"):
            change.remove = True
            return changes
        if "endpoint_addr" in peer and "endpoint_port" in peer:
            change.endpoint = Endpoint(
                ipaddress.ip_address(peer["endpoint_addr"]), int(peer["endpoint_port"])
            )
        if "preshared_key" in peer:
            change.preshared_key = _test_key(peer["preshared_key"])
        if "persistent_keepalive" in peer:
            change.persistent_keepalive_interval = int(peer["persistent_keepalive"])
        change.update_only = bool(peer.get("update_only"))
        change.replace_allowed_ips = bool(peer.get("replace_allowed_ips"))
        for index, text in enumerate(peer.get("allowed_ips", ())):
            if "/" not in text:
                raise ValueError(f"No CIDR set in allowed ip #{index}")
            change.allowed_ips.append(ipaddress.ip_network(text, strict=False))
    return changes


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


def _ifindex(interface: str) -> int:
    try:
        return socket.if_nametoindex(interface)
    except OSError:
        return 0  # the interface lives in another network namespace


def _peer_attrs(peer: Any) -> list[list[Any]]:
    """WGPEER_A_* attributes in the order the kernel's get_peer() emits them."""
    flags_free: list[list[Any]] = [
        ["WGPEER_A_PUBLIC_KEY", _b64(peer.public_key)],
        ["WGPEER_A_PRESHARED_KEY", _b64(peer.preshared_key)],
        ["WGPEER_A_LAST_HANDSHAKE_TIME",
         {"tv_sec": peer.last_handshake_time_sec, "tv_nsec": peer.last_handshake_time_nsec}],
        ["WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL", peer.persistent_keepalive_interval],
        ["WGPEER_A_TX_BYTES", peer.tx_bytes],
        ["WGPEER_A_RX_BYTES", peer.rx_bytes],
        ["WGPEER_A_PROTOCOL_VERSION", peer.protocol_version],
    ]  # fmt: skip
    if peer.endpoint is not None:
        address = peer.endpoint.address
        value: dict[str, Any] = {"addr": str(address).split("%", 1)[0],
                                 "port": peer.endpoint.port}
        if isinstance(address, ipaddress.IPv6Address):
            value.update(flowinfo=0, scope_id=int(address.scope_id or 0)
                         if (address.scope_id or "0").isdigit() else 0)
        flags_free.append(["WGPEER_A_ENDPOINT", value])
    allowed = []
    for network in peer.allowed_ips:
        family = socket.AF_INET if network.version == 4 else socket.AF_INET6
        allowed.append({"attrs": [
            ["WGALLOWEDIP_A_FAMILY", family],
            ["WGALLOWEDIP_A_IPADDR", network.network_address.packed],
            ["WGALLOWEDIP_A_CIDR_MASK", network.prefixlen],
        ]})  # fmt: skip
    flags_free.append(["WGPEER_A_ALLOWEDIPS", allowed])
    return flags_free


def build_info(interface: str, status: DeviceStatus, sequence: int = 0) -> wgmsg:
    """A decoded wgmsg equal to what the kernel answers to WG_CMD_GET_DEVICE."""
    attrs: list[list[Any]] = [
        ["WGDEVICE_A_LISTEN_PORT", status.listen_port],
        ["WGDEVICE_A_FWMARK", status.fwmark],
        ["WGDEVICE_A_IFINDEX", _ifindex(interface)],
        ["WGDEVICE_A_IFNAME", interface],
    ]
    if status.private_key is not None and any(status.private_key):
        attrs.append(["WGDEVICE_A_PRIVATE_KEY", _b64(status.private_key)])
        attrs.append(["WGDEVICE_A_PUBLIC_KEY", _b64(keys.public_key(status.private_key))])
    if status.peers:
        attrs.append(["WGDEVICE_A_PEERS", [{"attrs": _peer_attrs(p)} for p in status.peers]])
    msg = wgmsg()
    msg["cmd"] = WG_CMD_GET_DEVICE
    msg["version"] = WG_GENL_VERSION
    msg["header"]["type"] = WG_FAMILY_ID_STANDIN
    msg["header"]["flags"] = NLM_F_MULTI
    msg["header"]["sequence_number"] = sequence
    msg["header"]["pid"] = os.getpid()
    msg["attrs"] = attrs
    msg.encode()
    decoded = wgmsg(msg.data)
    decoded.decode()
    decoded["header"]["error"] = None
    return decoded


def build_ack(sequence: int = 0) -> nlmsgerr:
    """The decoded NLMSG_ERROR(0) acknowledgement a successful set receives."""
    ack = nlmsgerr()
    ack["header"]["type"] = NLMSG_ERROR
    ack["header"]["sequence_number"] = sequence
    ack["header"]["pid"] = os.getpid()
    ack["error"] = 0
    ack.encode()
    decoded = nlmsgerr(ack.data)
    decoded.decode()
    decoded["header"]["error"] = None
    return decoded


def _netlink_error(exc: Exception, interface: str) -> NetlinkError:
    if isinstance(exc, FileNotFoundError | ConnectionRefusedError):
        return NetlinkError(errno.ENODEV, f"No such WireGuard device: {interface}")
    if isinstance(exc, UAPIError):
        code = abs(exc.errno) or errno.EINVAL
        return NetlinkError(code, os.strerror(code))
    if isinstance(exc, PermissionError):
        return NetlinkError(errno.EPERM, "Operation not permitted")
    return NetlinkError(errno.EIO, str(exc))


class WireGuard:
    """Blocking drop-in for pyroute2.WireGuard over UAPI."""

    def __init__(self, *argv: Any, socket_directory: str = SOCKET_DIRECTORY,
                 timeout: float = 10.0, **kwarg: Any) -> None:
        # pyroute2 socket options (port, pid, groups, netns...) do not apply to UAPI sockets.
        self.socket_directory = socket_directory
        self.timeout = timeout
        self.closed = False
        self._sequence = 0

    def _client(self, interface: str) -> UAPIClient:
        if self.closed:
            raise OSError(errno.EBADF, "socket is closed")
        return UAPIClient(socket_path(interface, self.socket_directory), self.timeout)

    def info(self, interface: str) -> tuple[wgmsg, ...]:
        try:
            status = self._client(interface).get()
        except (OSError, UAPIError) as exc:
            raise _netlink_error(exc, interface) from exc
        self._sequence += 1
        return (build_info(interface, status, self._sequence),)

    def set(self, interface: str, listen_port: int | None = None, fwmark: int | None = None,
            private_key: Any = None, peer: Mapping[str, Any] | None = None) -> nlmsgerr:
        changes = build_changes(listen_port, fwmark, private_key, peer)
        try:
            self._client(interface).set(changes)
        except (OSError, UAPIError) as exc:
            raise _netlink_error(exc, interface) from exc
        self._sequence += 1
        return build_ack(self._sequence)

    def close(self, code: int = errno.ECONNRESET) -> None:
        self.closed = True

    def __enter__(self) -> WireGuard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncWireGuard:
    """asyncio drop-in for pyroute2.AsyncWireGuard: `info()` is awaited and yields messages
    asynchronously (`async for msg in await wg.info(name)`), `set()` is awaited."""

    def __init__(self, *argv: Any, socket_directory: str = SOCKET_DIRECTORY,
                 timeout: float = 10.0, **kwarg: Any) -> None:
        self.socket_directory = socket_directory
        self.timeout = timeout
        self.closed = False
        self._sequence = 0

    def _client(self, interface: str) -> AsyncUAPIClient:
        if self.closed:
            raise OSError(errno.EBADF, "socket is closed")
        return AsyncUAPIClient(socket_path(interface, self.socket_directory), self.timeout)

    async def setup_endpoint(self) -> None:
        """Nothing to set up: each request opens the interface's UAPI socket."""

    async def info(self, interface: str) -> AsyncIterator[wgmsg]:
        try:
            status = await self._client(interface).get()
        except (TimeoutError, OSError, UAPIError) as exc:
            raise _netlink_error(exc, interface) from exc
        self._sequence += 1
        message = build_info(interface, status, self._sequence)

        async def response() -> AsyncIterator[wgmsg]:
            yield message

        return response()

    async def set(self, interface: str, listen_port: int | None = None,
                  fwmark: int | None = None, private_key: Any = None,
                  peer: Mapping[str, Any] | None = None) -> nlmsgerr:
        changes = build_changes(listen_port, fwmark, private_key, peer)
        try:
            await self._client(interface).set(changes)
        except (TimeoutError, OSError, UAPIError) as exc:
            raise _netlink_error(exc, interface) from exc
        self._sequence += 1
        return build_ack(self._sequence)

    def close(self, code: int = errno.ECONNRESET) -> None:
        self.closed = True

    async def __aenter__(self) -> AsyncWireGuard:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
