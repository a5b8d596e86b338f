"""The cross-platform WireGuard configuration protocol (UAPI), as text.

`wg` and `wg-quick` speak it to userspace implementations over /var/run/wireguard/NAME.sock:

    get=1\\n\\n                      -> key=value lines, then errno=0\\n\\n
    set=1\\n key=value ... \\n\\n      -> errno=N\\n\\n

This module is sans-I/O except for the clients at the bottom: it turns a `set=1` body into a
typed, validated `ChangeSet`, a `DeviceStatus` snapshot into a `get=1` reply, and back again.

Semantics and errno numbers follow wireguard-go's device/uapi.go, which replies with *negated*
errno values (`errno=-22` for EINVAL) and `wg` negates them back. Where wgfast differs on purpose:
wireguard-go applies a set line by line, so a bad line leaves the earlier lines applied; wgfast
parses the whole request first and applies it all or nothing (see config.DeviceConfig.apply),
and a request cut off before its blank line is refused rather than applied.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from wgfast.errors import DeviceUnreachableError, UAPIError

# wireguard-go's ipc.IpcError* values: the negated errno, written as errno=N in the reply.
ERRNO_OK = 0
ERRNO_IO = -errno.EIO  # -5: request unreadable (line too long, I/O failure)
ERRNO_PROTOCOL = -errno.EPROTO  # -71: a line without '=' (or, in wgfast, a truncated set)
ERRNO_INVALID = -errno.EINVAL  # -22: unknown key or a value that does not parse
ERRNO_PORT_IN_USE = -errno.EADDRINUSE  # -98: listen_port / fwmark could not be applied
ERRNO_UNKNOWN = -55  # wireguard-go's catch-all ("ENOANO")

NOISE_PUBLIC_KEY_LEN = 32
NOISE_SYMMETRIC_KEY_LEN = 32
ZERO_KEY = bytes(NOISE_SYMMETRIC_KEY_LEN)
PROTOCOL_VERSION = 1

MAX_PORT = 0xFFFF
MAX_FWMARK = 0xFFFFFFFF
MAX_PERSISTENT_KEEPALIVE = 0xFFFF

SOCKET_DIRECTORY = "/var/run/wireguard"

_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
_DECIMAL = re.compile(r"[0-9]+")
# Dotted-quad IPv4 exactly as ipaddress accepts it (ASCII digits, 0-255, no leading zeros), so
# the common case skips ipaddress's string parser; anything else still goes through it.
_IPV4_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_ADDRESS = re.compile(r"\.".join([_IPV4_OCTET] * 4))

AllowedIP = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def socket_path(interface: str, directory: str = SOCKET_DIRECTORY) -> str:
    return f"{directory}/{interface}.sock"


# --- values ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """A peer's UDP address: an IP literal and a port (no host names, as in wireguard-go)."""

    address: IPAddress
    port: int

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """Parse `IPv4:port` or `[IPv6]:port` (zone allowed), like Go's netip.ParseAddrPort."""
        if text.startswith("["):
            close = text.find("]")
            if close < 0 or text[close + 1 : close + 2] != ":":
                raise ValueError(f"invalid endpoint {text!r}")
            host, port_text = text[1:close], text[close + 2 :]
            if "." in host and ":" not in host:
                raise ValueError("square brackets can only be used with IPv6 addresses")
        else:
            host, sep, port_text = text.rpartition(":")
            if not sep:
                raise ValueError(f"endpoint {text!r} has no port")
            if ":" in host:
                raise ValueError("IPv6 addresses must be surrounded by square brackets")
        if not _DECIMAL.fullmatch(port_text) or int(port_text) > MAX_PORT:
            raise ValueError(f"invalid port {port_text!r}")
        address = _ip_address(host)  # rejects host names and IPv4 leading zeros
        if isinstance(address, ipaddress.IPv4Address) != (not text.startswith("[")):
            raise ValueError(f"invalid endpoint {text!r}")
        return cls(address, int(port_text))

    def __str__(self) -> str:
        if isinstance(self.address, ipaddress.IPv6Address):
            host = str(self.address)
            mapped = self.address.ipv4_mapped
            if mapped is not None and self.address.scope_id is None:
                host = f"::ffff:{mapped}"  # Go prints mapped addresses in dotted form
            return f"[{host}]:{self.port}"
        return f"{self.address}:{self.port}"

    def sockaddr(self) -> tuple[str, int] | tuple[str, int, int, int]:
        """The address tuple for socket.sendto()."""
        if isinstance(self.address, ipaddress.IPv6Address):
            host = str(self.address).split("%", 1)[0]
            scope = self.address.scope_id
            if scope and not scope.isdigit():
                return (host, self.port, 0, socket.if_nametoindex(scope))
            index = int(scope or 0)
            return (host, self.port, 0, index)
        return (str(self.address), self.port)


def _ip_address(text: str) -> IPAddress:
    """ipaddress.ip_address(text), with a fast path for dotted-quad IPv4."""
    match = _IPV4_ADDRESS.fullmatch(text)
    if match is None:
        return ipaddress.ip_address(text)
    a, b, c, d = match.groups()
    return ipaddress.IPv4Address(int(a) << 24 | int(b) << 16 | int(c) << 8 | int(d))


def parse_allowed_ip(text: str) -> AllowedIP:
    """Parse `address/bits` (bits required, no netmask form, no zone); host bits are masked
    off, as wireguard-go's allowed-ips trie does on insertion."""
    address_text, sep, bits_text = text.rpartition("/")
    if not sep or "%" in address_text:
        raise ValueError(f"invalid prefix {text!r}")
    if not _DECIMAL.fullmatch(bits_text) or (len(bits_text) > 1 and bits_text[0] == "0"):
        raise ValueError(f"invalid prefix length in {text!r}")
    address = _ip_address(address_text)
    bits = int(bits_text)
    if bits > address.max_prefixlen:
        raise ValueError(f"prefix length out of range in {text!r}")
    # From the integer: handing ipaddress an address object makes it format and parse it again.
    if isinstance(address, ipaddress.IPv4Address):
        return ipaddress.IPv4Network((int(address), bits), strict=False)
    return ipaddress.IPv6Network((int(address), bits), strict=False)


def parse_key(text: str) -> bytes:
    """A 32-byte key as 64 hex digits (either case), as wireguard-go's loadExactHex."""
    if not _HEX_KEY.fullmatch(text):
        raise ValueError("key must be exactly 64 hex digits")
    return bytes.fromhex(text)


def _parse_uint(text: str, maximum: int) -> int:
    if not _DECIMAL.fullmatch(text):
        raise ValueError(f"invalid number {text!r}")
    value = int(text)
    if value > maximum:
        raise ValueError(f"{text} is out of range (max {maximum})")
    return value


# --- set=1 ----------------------------------------------------------------------------------


@dataclass
class PeerChange:
    """One `public_key=` section of a set request, normalised.

    Lines after `remove=true` in a section are validated but have no effect (wireguard-go
    switches to a dummy peer), so they are not recorded; `replace_allowed_ips=true` drops the
    allowed IPs listed before it in the same section, exactly as it would have on the device.
    """

    public_key: bytes
    remove: bool = False
    update_only: bool = False
    preshared_key: bytes | None = None
    endpoint: Endpoint | None = None
    persistent_keepalive_interval: int | None = None
    replace_allowed_ips: bool = False
    allowed_ips: list[AllowedIP] = field(default_factory=list)
    protocol_version: int | None = None

    def validate(self) -> None:
        """Check a change built in code (the parser only builds valid ones)."""
        _check_key("public_key", self.public_key)
        if self.preshared_key is not None:
            _check_key("preshared_key", self.preshared_key)
        pka = self.persistent_keepalive_interval
        if pka is not None and not 0 <= pka <= MAX_PERSISTENT_KEEPALIVE:
            raise UAPIError(ERRNO_INVALID, f"persistent_keepalive_interval {pka} out of range")
        if self.endpoint is not None and not 0 <= self.endpoint.port <= MAX_PORT:
            raise UAPIError(ERRNO_INVALID, f"endpoint port {self.endpoint.port} out of range")
        if self.protocol_version not in (None, PROTOCOL_VERSION):
            raise UAPIError(ERRNO_INVALID, f"invalid protocol version: {self.protocol_version}")
        for prefix in self.allowed_ips:
            if not isinstance(prefix, ipaddress.IPv4Network | ipaddress.IPv6Network):
                raise UAPIError(ERRNO_INVALID, f"allowed_ip {prefix!r} is not a network")


@dataclass
class ChangeSet:
    """A whole `set=1` request: device-level changes, then peer sections in order."""

    private_key: bytes | None = None  # all zeros removes the private key
    listen_port: int | None = None
    fwmark: int | None = None  # 0 removes the mark
    replace_peers: bool = False
    peers: list[PeerChange] = field(default_factory=list)

    def validate(self) -> None:
        if self.private_key is not None:
            _check_key("private_key", self.private_key)
        if self.listen_port is not None and not 0 <= self.listen_port <= MAX_PORT:
            raise UAPIError(ERRNO_INVALID, f"listen_port {self.listen_port} out of range")
        if self.fwmark is not None and not 0 <= self.fwmark <= MAX_FWMARK:
            raise UAPIError(ERRNO_INVALID, f"fwmark {self.fwmark} out of range")
        for peer in self.peers:
            peer.validate()


def _check_key(name: str, key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != NOISE_PUBLIC_KEY_LEN:
        raise UAPIError(ERRNO_INVALID, f"{name} must be {NOISE_PUBLIC_KEY_LEN} bytes")


def _invalid(what: str, value: str, exc: Exception) -> UAPIError:
    return UAPIError(ERRNO_INVALID, f"failed to set {what} {value!r}: {exc}")


def _require_true(key: str, value: str) -> None:
    if value != "true":
        raise UAPIError(ERRNO_INVALID, f"failed to set {key}, invalid value: {value!r}")


def parse_set_lines(lines: Iterable[str]) -> ChangeSet:
    """Parse the key=value lines of a set request (without `set=1` and the blank line).

    Raises UAPIError carrying wireguard-go's errno for the first bad line.
    """
    changes = ChangeSet()
    peer: PeerChange | None = None
    ignoring = False  # inside a section after remove=true: validate, record nothing
    for line in lines:
        key, sep, value = line.partition("=")
        if not sep:
            raise UAPIError(ERRNO_PROTOCOL, f"failed to parse line {line!r}")
        if key == "public_key":
            try:
                peer = PeerChange(parse_key(value))
            except ValueError as exc:
                raise _invalid("public_key", value, exc) from None
            changes.peers.append(peer)
            ignoring = False
        elif peer is None:
            _parse_device_line(changes, key, value)
        else:
            ignoring = _parse_peer_line(peer, key, value, ignoring)
    return changes


def _parse_device_line(changes: ChangeSet, key: str, value: str) -> None:
    try:
        if key == "private_key":
            changes.private_key = parse_key(value)
        elif key == "listen_port":
            changes.listen_port = _parse_uint(value, MAX_PORT)
        elif key == "fwmark":
            changes.fwmark = _parse_uint(value, MAX_FWMARK)
        elif key == "replace_peers":
            _require_true(key, value)
            changes.replace_peers = True
        else:
            raise UAPIError(ERRNO_INVALID, f"invalid UAPI device key: {key!r}")
    except ValueError as exc:
        raise _invalid(key, value, exc) from None


def _parse_peer_line(peer: PeerChange, key: str, value: str, ignoring: bool) -> bool:
    """Parse one peer line into `peer`; return whether later lines of the section are void."""
    try:
        if key == "update_only":
            _require_true(key, value)
            if not ignoring:
                peer.update_only = True
        elif key == "remove":
            _require_true(key, value)
            if not ignoring:
                peer.remove = True
            return True
        elif key == "preshared_key":
            psk = parse_key(value)
            if not ignoring:
                peer.preshared_key = psk
        elif key == "endpoint":
            endpoint = Endpoint.parse(value)
            if not ignoring:
                peer.endpoint = endpoint
        elif key == "persistent_keepalive_interval":
            interval = _parse_uint(value, MAX_PERSISTENT_KEEPALIVE)
            if not ignoring:
                peer.persistent_keepalive_interval = interval
        elif key == "replace_allowed_ips":
            _require_true(key, value)
            if not ignoring:
                peer.replace_allowed_ips = True
                peer.allowed_ips.clear()
        elif key == "allowed_ip":
            prefix = parse_allowed_ip(value)
            if not ignoring:
                peer.allowed_ips.append(prefix)
        elif key == "protocol_version":
            if value != str(PROTOCOL_VERSION):
                raise UAPIError(ERRNO_INVALID, f"invalid protocol version: {value!r}")
            if not ignoring:
                peer.protocol_version = PROTOCOL_VERSION
        else:
            raise UAPIError(ERRNO_INVALID, f"invalid UAPI peer key: {key!r}")
    except ValueError as exc:
        raise _invalid(key, value, exc) from None
    return ignoring


def parse_set(text: str) -> ChangeSet:
    """Parse a set request given as text; a leading `set=1` line is optional and parsing
    stops at the first blank line."""
    lines = text.split("\n")
    if lines and lines[0] == "set=1":
        lines = lines[1:]
    body: list[str] = []
    for line in lines:
        if line == "":
            break
        body.append(line)
    return parse_set_lines(body)


def format_set(changes: ChangeSet) -> str:
    """The full request text (`set=1` ... blank line) for a change-set, in `wg`'s key order."""
    out = ["set=1"]
    if changes.private_key is not None:
        out.append(f"private_key={changes.private_key.hex()}")
    if changes.listen_port is not None:
        out.append(f"listen_port={changes.listen_port}")
    if changes.fwmark is not None:
        out.append(f"fwmark={changes.fwmark}")
    if changes.replace_peers:
        out.append("replace_peers=true")
    for peer in changes.peers:
        out.append(f"public_key={peer.public_key.hex()}")
        if peer.remove:
            out.append("remove=true")
            continue
        if peer.update_only:
            out.append("update_only=true")
        if peer.preshared_key is not None:
            out.append(f"preshared_key={peer.preshared_key.hex()}")
        if peer.endpoint is not None:
            out.append(f"endpoint={peer.endpoint}")
        if peer.persistent_keepalive_interval is not None:
            out.append(f"persistent_keepalive_interval={peer.persistent_keepalive_interval}")
        if peer.replace_allowed_ips:
            out.append("replace_allowed_ips=true")
        out.extend(f"allowed_ip={prefix}" for prefix in peer.allowed_ips)
        if peer.protocol_version is not None:
            out.append(f"protocol_version={peer.protocol_version}")
    return "\n".join(out) + "\n\n"


# --- get=1 ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerStatus:
    public_key: bytes
    preshared_key: bytes = ZERO_KEY
    protocol_version: int = PROTOCOL_VERSION
    endpoint: Endpoint | None = None
    last_handshake_time_sec: int = 0
    last_handshake_time_nsec: int = 0
    tx_bytes: int = 0
    rx_bytes: int = 0
    persistent_keepalive_interval: int = 0
    allowed_ips: tuple[AllowedIP, ...] = ()


@dataclass(frozen=True)
class DeviceStatus:
    """What a get=1 reply describes. listen_port/fwmark 0 and private_key None are omitted.
    `counters` are an implementation's own device-level keys (wgfastd's: see
    wgfast.daemon.counters), sent after the standard device keys; `wg` ignores keys it does not
    know."""

    private_key: bytes | None = None
    listen_port: int = 0
    fwmark: int = 0
    peers: tuple[PeerStatus, ...] = ()
    counters: tuple[tuple[str, int], ...] = ()

    def peer(self, public_key: bytes) -> PeerStatus | None:
        return next((p for p in self.peers if p.public_key == public_key), None)


def format_get(status: DeviceStatus) -> str:
    """The key=value lines of a get reply in wireguard-go's order (without the errno line)."""
    out: list[str] = []
    if status.private_key is not None and status.private_key != ZERO_KEY:
        out.append(f"private_key={status.private_key.hex()}")
    if status.listen_port:
        out.append(f"listen_port={status.listen_port}")
    if status.fwmark:
        out.append(f"fwmark={status.fwmark}")
    out.extend(f"{name}={value}" for name, value in status.counters)
    for peer in status.peers:
        out.append(f"public_key={peer.public_key.hex()}")
        out.append(f"preshared_key={peer.preshared_key.hex()}")
        out.append(f"protocol_version={peer.protocol_version}")
        if peer.endpoint is not None:
            out.append(f"endpoint={peer.endpoint}")
        out.append(f"last_handshake_time_sec={peer.last_handshake_time_sec}")
        out.append(f"last_handshake_time_nsec={peer.last_handshake_time_nsec}")
        out.append(f"tx_bytes={peer.tx_bytes}")
        out.append(f"rx_bytes={peer.rx_bytes}")
        out.append(f"persistent_keepalive_interval={peer.persistent_keepalive_interval}")
        out.extend(f"allowed_ip={prefix}" for prefix in peer.allowed_ips)
    return "".join(line + "\n" for line in out)


_PEER_INT_KEYS = {
    "protocol_version",
    "last_handshake_time_sec",
    "last_handshake_time_nsec",
    "tx_bytes",
    "rx_bytes",
    "persistent_keepalive_interval",
}


def parse_get(text: str) -> DeviceStatus:
    """Parse a get reply (the key=value lines, optionally with its errno line).

    Unknown keys are ignored so that extended implementations still parse; a nonzero errno
    raises UAPIError; malformed values raise UAPIError(ERRNO_PROTOCOL).
    """
    device: dict[str, object] = {}
    peers: list[dict[str, object]] = []
    for line in text.split("\n"):
        if line == "":
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise UAPIError(ERRNO_PROTOCOL, f"malformed line in get reply: {line!r}")
        try:
            if key == "errno":
                code = int(value)
                if code != 0:
                    raise UAPIError(code, "get=1 failed")
            elif key == "public_key":
                peers.append({"public_key": parse_key(value), "allowed_ips": []})
            elif not peers:
                if key == "private_key":
                    device[key] = parse_key(value)
                elif key == "listen_port":
                    device[key] = _parse_uint(value, MAX_PORT)
                elif key == "fwmark":
                    device[key] = _parse_uint(value, MAX_FWMARK)
            elif key == "preshared_key":
                peers[-1][key] = parse_key(value)
            elif key == "endpoint":
                peers[-1][key] = Endpoint.parse(value)
            elif key == "allowed_ip":
                allowed = peers[-1]["allowed_ips"]
                assert isinstance(allowed, list)
                allowed.append(parse_allowed_ip(value))
            elif key in _PEER_INT_KEYS:
                peers[-1][key] = _parse_uint(value, 2**64 - 1)
        except ValueError as exc:
            raise UAPIError(ERRNO_PROTOCOL, f"bad value in get reply {line!r}: {exc}") from None
    peer_status = []
    for fields in peers:
        allowed = fields.pop("allowed_ips")
        assert isinstance(allowed, list)
        peer_status.append(PeerStatus(allowed_ips=tuple(allowed), **fields))  # type: ignore[arg-type]
    return DeviceStatus(peers=tuple(peer_status), **device)  # type: ignore[arg-type]


# --- clients --------------------------------------------------------------------------------


def _reply_errno(reply: bytes) -> int:
    for line in reply.decode("utf-8", "replace").split("\n"):
        if line.startswith("errno="):
            try:
                return int(line[len("errno=") :])
            except ValueError:
                break
    raise UAPIError(ERRNO_PROTOCOL, f"reply without errno line: {reply[-80:]!r}")


def _request_bytes(request: str | ChangeSet) -> bytes:
    if isinstance(request, ChangeSet):
        request.validate()
        return format_set(request).encode()
    text = request if request.startswith("set=1\n") else "set=1\n" + request
    if not text.endswith("\n\n"):
        text = text.rstrip("\n") + "\n\n"
    return text.encode()


class UAPIClient:
    """A blocking client for a UAPI socket (wgfastd or wireguard-go).

    `UAPIClient.for_interface("wg0")` or `UAPIClient("/var/run/wireguard/wg0.sock")`. One
    connection per call; works for any implementation of the protocol.
    """

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout

    @classmethod
    def for_interface(cls, interface: str, timeout: float = 10.0) -> UAPIClient:
        return cls(socket_path(interface), timeout)

    def _exchange(self, request: bytes) -> bytes:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.path)
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                raise unreachable(self.path, exc) from None
            sock.sendall(request)
            reply = bytearray()
            while not (reply.endswith(b"\n\n") and b"errno=" in reply):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
            return bytes(reply)

    def get(self) -> DeviceStatus:
        return parse_get(self._exchange(b"get=1\n\n").decode("utf-8", "replace"))

    def get_text(self) -> str:
        return self._exchange(b"get=1\n\n").decode("utf-8", "replace")

    def set(self, request: str | ChangeSet) -> None:
        """Send a set request (text of key=value lines, or a ChangeSet); raise UAPIError on a
        nonzero errno."""
        code = _reply_errno(self._exchange(_request_bytes(request)))
        if code != 0:
            raise UAPIError(code, "set=1 refused")


def unreachable(path: str, exc: OSError) -> DeviceUnreachableError:
    """No daemon behind `path`: the socket file is missing (not running) or stale (gone)."""
    return DeviceUnreachableError(exc.errno, f"no daemon answers on {path}: {exc.strerror}")


class AsyncUAPIClient:
    """The asyncio twin of UAPIClient."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout

    async def _exchange(self, request: bytes) -> bytes:
        async with asyncio.timeout(self.timeout):
            try:
                reader, writer = await asyncio.open_unix_connection(self.path)
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                raise unreachable(self.path, exc) from None
            try:
                writer.write(request)
                await writer.drain()
                reply = bytearray()
                while not (reply.endswith(b"\n\n") and b"errno=" in reply):
                    chunk = await reader.read(65536)
                    if not chunk:
                        break
                    reply += chunk
                return bytes(reply)
            finally:
                writer.close()

    async def get(self) -> DeviceStatus:
        return parse_get((await self._exchange(b"get=1\n\n")).decode("utf-8", "replace"))

    async def set(self, request: str | ChangeSet) -> None:
        code = _reply_errno(await self._exchange(_request_bytes(request)))
        if code != 0:
            raise UAPIError(code, "set=1 refused")
