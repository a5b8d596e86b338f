"""A drop-in for `pyroute2.WireGuard` / `pyroute2.AsyncWireGuard` (pyroute2 0.9.x) that talks to
userspace WireGuard (wgfastd, wireguard-go) over UAPI instead of the kernel's generic netlink.

    from wgfast.pyroute2 import WireGuard      # was: from pyroute2 import WireGuard

`set(interface, listen_port=, fwmark=, private_key=, peer=)` takes the same arguments and peer
dictionary keys; `info(interface)` returns a tuple of pyroute2's own `wgmsg` objects, built with
pyroute2's encoder and decoded with its decoder, carrying the attributes the kernel sends
(WGDEVICE_A_* and nested WGPEER_A_* / WGALLOWEDIP_A_*). Errors are pyroute2's NetlinkError with
the errno the kernel would give (ENODEV for a missing interface, EINVAL for a refused value).

`IPRoute`, `AsyncIPRoute` and `NDB` are pyroute2's own classes, subclassed, with one difference:
a link of kind "wireguard" is served by a userspace daemon instead of the kernel module.

    from wgfast.pyroute2 import IPRoute, NDB, WireGuard

    with IPRoute(netns="blue") as ipr:                  # or IPRoute(daemon="wireguard-go")
        ipr.link("add", ifname="wg0", kind="wireguard", mtu=1420, state="up")
        ...
        ipr.link("del", ifname="wg0")                   # the daemon exits, its socket goes

    with NDB() as ndb:
        with ndb.interfaces.create(kind="wireguard", ifname="wg0") as link:
            link.add_ip("10.0.0.1/24")
            link.set(state="up")
        ndb.interfaces["wg0"].remove().commit()

`link("add", kind="wireguard", ifname=NAME, ...)` starts the daemon for NAME inside the
IPRoute's (or NDB source's) network namespace (wgfast.api.daemon_process: this wgfast's daemon,
or the `daemon=` command given to IPRoute/NDB), then applies the other attributes (mtu, state,
...) with a follow-up `link("set")`; the link then exists as the daemon's TUN device (kind "tun"
in dumps). A failure raises NetlinkError (EEXIST if the name is taken; EIO with the daemon's
reason, chained from DaemonStartError, otherwise) and leaves nothing behind.
`link("del"|"delete"|"remove")` of a TUN link served by a UAPI daemon in the same namespace
returns once that daemon has exited and its socket file is gone. Everything else is pyroute2.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import ipaddress
import os
import socket
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pyroute2
from pyroute2.ndb.objects.interface import Interface as _NDBInterface
from pyroute2.ndb.sync_api import Flags as _NDBFlags
from pyroute2.netlink import NLM_F_MULTI, NLMSG_ERROR, nlmsgerr
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.generic.wireguard import (
    WG_CMD_GET_DEVICE,
    WG_GENL_VERSION,
    WG_KEY_LEN,
    wgmsg,
)

from wgfast import keys
from wgfast.api.daemon_process import (
    DaemonCommand,
    DaemonProcess,
    start_daemon,
    stop_daemon,
    wait_stopped,
)
from wgfast.errors import DaemonStartError, DeviceUnreachableError
from wgfast.netns import netns_path
from wgfast.process import socket_server_pid
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

__all__ = ["WireGuard", "AsyncWireGuard", "NetlinkError", "IPRoute", "AsyncIPRoute", "NDB"]


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
    if isinstance(exc, DeviceUnreachableError | FileNotFoundError | ConnectionRefusedError):
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


# --- Links of kind "wireguard": IPRoute, AsyncIPRoute and NDB -------------------------------

WIREGUARD_KIND = "wireguard"
DELETE_COMMANDS = frozenset({"del", "delete", "remove"})
STOP_TIMEOUT = 5.0  # for a daemon to exit after its link was deleted
# Keys of a link("add") request that name the link rather than set an attribute of it.
_IDENTITY_KEYS = frozenset({"kind", "ifname", "IFLA_IFNAME", "index", "target"})

NetnsId = tuple[int, int]


def _netns_id(netns: str | None) -> NetnsId:
    """The identity of a namespace (a name or path; None: this thread's)."""
    st = os.stat(netns_path(netns) if netns else "/proc/thread-self/ns/net")
    return (st.st_dev, st.st_ino)


def _netns_argument(netns: Any) -> str | None:
    """IPRoute's `netns` as a name or path; other forms (a file descriptor, a NetNS object)
    cannot say where to start a daemon."""
    if netns is None or isinstance(netns, str):
        return netns
    if isinstance(netns, bytes):
        return os.fsdecode(netns)
    raise NetlinkError(errno.EOPNOTSUPP, "wgfast.pyroute2 needs netns as a name or a path")


def _wireguard_add(command: str, request: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """For a link("add") of kind wireguard: its name and the attributes left for a follow-up
    link("set"); None for any other request."""
    if command != "add" or request.get("kind") != WIREGUARD_KIND:
        return None
    ifname = request.get("ifname") or request.get("IFLA_IFNAME")
    if not ifname:
        raise NetlinkError(errno.EINVAL, "a wireguard link needs an ifname")
    rest = {k: v for k, v in request.items() if k not in _IDENTITY_KEYS and v is not None}
    return str(ifname), rest


def _start(ifname: str, netns: str | None, daemon: DaemonCommand | None) -> DaemonProcess:
    try:
        return start_daemon(ifname, daemon=daemon, netns=netns)
    except DaemonStartError as exc:
        raise NetlinkError(errno.EIO, str(exc)) from exc


def _served(link: Any, netns_id: NetnsId) -> DaemonProcess | None:
    """The daemon behind a TUN link (a decoded ifinfmsg) when one in the link's namespace
    serves the UAPI socket of its name; None for any other link."""
    info = link.get("IFLA_LINKINFO")
    kind = info.get("IFLA_INFO_KIND") if info is not None else None
    ifname = link.get("IFLA_IFNAME")
    if kind != "tun" or not ifname:
        return None
    path = socket_path(ifname)
    if not os.path.exists(path):
        return None
    pid = socket_server_pid(path)
    if pid is None:
        return None
    try:
        if _netns_id(f"/proc/{pid}/ns/net") != netns_id:
            return None  # an interface of the same name in another namespace
    except OSError:
        return None
    return DaemonProcess(ifname, [], f"/proc/{pid}/ns/net", pid=pid, socket=path)


def _lookup_request(request: Mapping[str, Any]) -> dict[str, Any] | None:
    """The link("get") arguments naming the link a delete request names."""
    if request.get("index"):
        return {"index": request["index"]}
    name = request.get("ifname") or request.get("IFLA_IFNAME")
    return {"ifname": name} if name else None


def _await_exit(process: DaemonProcess | None) -> None:
    """After its link was deleted: the daemon exits and removes its socket; make sure."""
    if process is not None and not wait_stopped(process.pid, process.socket, STOP_TIMEOUT):
        stop_daemon(process)


class IPRoute(pyroute2.IPRoute):
    """pyroute2's IPRoute, where links of kind "wireguard" are served by a userspace daemon
    (see the module docstring). `daemon`: the command to start instead of this wgfast's."""

    def __init__(self, *argv: Any, daemon: DaemonCommand | None = None, **kwarg: Any) -> None:
        super().__init__(*argv, **kwarg)
        self.wireguard_daemon = daemon
        self.wireguard_netns = _netns_argument(kwarg.get("netns"))
        self._netns_id = _netns_id(self.wireguard_netns)

    def _link(self, command: str, **kwarg: Any) -> Any:
        return pyroute2.IPRoute.__getattr__(self, "link")(command, **kwarg)

    def link(self, command: str, **kwarg: Any) -> Any:
        add = _wireguard_add(command, kwarg)
        if add is not None:
            return self._add_wireguard(*add)
        if command in DELETE_COMMANDS:
            served = self._served(kwarg)
            result = self._link(command, **kwarg)
            _await_exit(served)
            return result
        return self._link(command, **kwarg)

    def _served(self, request: Mapping[str, Any]) -> DaemonProcess | None:
        lookup = _lookup_request(request)
        if lookup is None:
            return None
        try:
            links = self._link("get", **lookup)
        except NetlinkError:
            return None  # no such link: the delete itself reports it
        return _served(links[0], self._netns_id) if links else None

    def _add_wireguard(self, ifname: str, attributes: dict[str, Any]) -> Any:
        if self.link_lookup(ifname=ifname):
            raise NetlinkError(errno.EEXIST, "File exists")
        process = _start(ifname, self.wireguard_netns, self.wireguard_daemon)
        try:
            index = self.link_lookup(ifname=ifname)[0]
            if attributes:
                self._link("set", index=index, **attributes)
            return self._link("get", index=index)
        except BaseException:
            stop_daemon(process)
            raise


class AsyncIPRoute(pyroute2.AsyncIPRoute):
    """The asyncio twin of IPRoute: `await ipr.link("add", kind="wireguard", ...)`."""

    def __init__(self, *argv: Any, daemon: DaemonCommand | None = None, **kwarg: Any) -> None:
        super().__init__(*argv, **kwarg)
        self.wireguard_daemon = daemon
        self.wireguard_netns = _netns_argument(kwarg.get("netns"))
        self._netns_id = _netns_id(self.wireguard_netns)

    async def link(self, command: str, **kwarg: Any) -> Any:
        add = _wireguard_add(command, kwarg)
        if add is not None:
            return await self._add_wireguard(*add)
        if command in DELETE_COMMANDS:
            served = await self._served(kwarg)
            result = await super().link(command, **kwarg)
            await asyncio.to_thread(_await_exit, served)
            return result
        return await super().link(command, **kwarg)

    async def _served(self, request: Mapping[str, Any]) -> DaemonProcess | None:
        lookup = _lookup_request(request)
        if lookup is None:
            return None
        try:
            links = list(await super().link("get", **lookup))
        except NetlinkError:
            return None
        return _served(links[0], self._netns_id) if links else None

    async def _index(self, ifname: str) -> int | None:
        found = await self.link_lookup(ifname=ifname)
        return found[0] if found else None

    async def _add_wireguard(self, ifname: str, attributes: dict[str, Any]) -> Any:
        if await self._index(ifname) is not None:
            raise NetlinkError(errno.EEXIST, "File exists")
        process = await asyncio.to_thread(_start, ifname, self.wireguard_netns,
                                          self.wireguard_daemon)
        try:
            index = await self._index(ifname)
            if attributes:
                await super().link("set", index=index, **attributes)
            return await super().link("get", index=index)
        except BaseException:
            await asyncio.to_thread(stop_daemon, process)
            raise


class _WireGuardSource:
    """One NDB source as the interface objects see it: its `api("link", "add", kind=
    "wireguard")` starts a daemon in the source's namespace, its `api("link", "del")` of a
    daemon's link waits for the daemon to go; every other call is the source's own."""

    def __init__(self, source: Any, daemon: DaemonCommand | None) -> None:
        self._source = source
        self._daemon = daemon

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)

    @property
    def _netns(self) -> str | None:
        if self._source.kind not in ("local", "netns"):
            raise NetlinkError(errno.EOPNOTSUPP, f"wireguard links on a {self._source.kind} "
                               "NDB source are not supported")
        netns = self._source.nl_kwarg.get("netns")  # a path, as bytes, when set
        return os.fsdecode(netns) if netns is not None else None

    async def api(self, name: str, *argv: Any, **kwarg: Any) -> Any:
        command = argv[0] if name == "link" and argv else None
        add = _wireguard_add(command, kwarg) if command else None
        if add is not None:
            return await self._add_wireguard(*add)
        if command in DELETE_COMMANDS:
            served = await self._served(kwarg)
            result = await self._source.api(name, *argv, **kwarg)
            await asyncio.to_thread(_await_exit, served)
            return result
        return await self._source.api(name, *argv, **kwarg)

    async def _served(self, request: Mapping[str, Any]) -> DaemonProcess | None:
        lookup = _lookup_request(request)
        if lookup is None:
            return None
        try:
            links = list(await self._source.api("link", "get", **lookup))
        except NetlinkError:
            return None
        return _served(links[0], _netns_id(self._netns)) if links else None

    async def _add_wireguard(self, ifname: str, attributes: dict[str, Any]) -> Any:
        netns = self._netns
        try:
            taken = bool(list(await self._source.api("link", "get", ifname=ifname)))
        except NetlinkError:  # ENODEV: the name is free
            taken = False
        if taken:
            raise NetlinkError(errno.EEXIST, "File exists")
        process = await asyncio.to_thread(_start, ifname, netns, self._daemon)
        try:
            links = list(await self._source.api("link", "get", ifname=ifname))
            index = links[0]["index"]
            if attributes:
                await self._source.api("link", "set", index=index, **attributes)
            return links
        except BaseException:
            await asyncio.to_thread(stop_daemon, process)
            raise


class _WireGuardSources:
    """NDB's sources view, handing out _WireGuardSource wrappers."""

    def __init__(self, sources: Any, daemon: DaemonCommand | None) -> None:
        self._sources = sources
        self._daemon = daemon

    def __getitem__(self, target: str) -> _WireGuardSource:
        return _WireGuardSource(self._sources[target], self._daemon)

    def __contains__(self, target: object) -> bool:
        return target in self._sources

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sources, name)


def _kind_matches(obj: Any, value: Any) -> bool:
    """A requested "wireguard" link shows in the system as the daemon's "tun" device."""
    return obj.get("kind") == WIREGUARD_KIND and value == "tun"


class _WireGuardInterface(_NDBInterface):
    """NDB's interface object, its link requests going through _WireGuardSource."""

    fields_cmp = {**_NDBInterface.fields_cmp, "kind": _kind_matches}

    def __init__(self, *argv: Any, **kwarg: Any) -> None:
        super().__init__(*argv, **kwarg)
        self.sources = _WireGuardSources(self.sources,
                                         getattr(self.ndb, "wireguard_daemon", None))

    async def hook_apply(self, method: str, **spec: Any) -> None:
        if method == "add" and spec.get("kind") == WIREGUARD_KIND:
            return  # the link loads as "tun", but pyroute2's after-add hook for tun must not run
        await super().hook_apply(method, **spec)


class NDB(pyroute2.NDB):
    """pyroute2's NDB, where `ndb.interfaces.create(kind="wireguard", ifname=...)...commit()`
    starts a userspace daemon for the link in its source's namespace, and `.remove().commit()`
    of that link stops it (see the module docstring). `daemon`: the command to start instead
    of this wgfast's."""

    def __init__(self, *argv: Any, daemon: DaemonCommand | None = None, **kwarg: Any) -> None:
        self.wireguard_daemon = daemon  # before the views exist: the objects read it
        super().__init__(*argv, **kwarg)

    def _create_views(self, flags: Any = _NDBFlags.UNSPEC) -> Any:
        for name, view in super()._create_views(flags):
            view.asyncore.classes["interfaces"] = _WireGuardInterface
            yield name, view
