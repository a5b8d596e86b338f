"""wg-quick configuration files (`/etc/wireguard/NAME.conf`), parsed into dataclasses.

The format is wg(8)'s INI-like file plus wg-quick's extra [Interface] keys:

    [Interface]                      [Peer]
    PrivateKey = base64              PublicKey = base64
    ListenPort = 51820               PresharedKey = base64
    FwMark = 0x1234 | 1234 | off     AllowedIPs = 10.0.0.0/24, fd00::/64
    Address = 10.0.0.1/24, fd00::1   Endpoint = host:port | [v6]:port
    DNS = 1.1.1.1, example.com       PersistentKeepalive = 25 | off
    MTU = 1420
    Table = off | auto | 1234 | name
    PreUp/PostUp/PreDown/PostDown = shell command (repeatable, %i = interface)
    SaveConfig = true | false

As in wg's own parser, whitespace is insignificant, `#` starts a comment, section and key names
are case-insensitive, list keys may repeat and accumulate. Unlike wg, a bad file is reported
with every detail a person needs: `ConfigError(file, line, key, message)`. Endpoint host names
are kept as text and resolved only when the configuration is applied (`EndpointSpec.resolve`).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import socket
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from wgfast import keys
from wgfast.errors import ConfigError
from wgfast.uapi import MAX_FWMARK, MAX_PERSISTENT_KEEPALIVE, MAX_PORT, Endpoint

log = logging.getLogger(__name__)

CONFIG_DIRECTORIES = ("/etc/wireguard", "/usr/local/etc/wireguard")
# wg-quick's rule for a bare interface name given instead of a path.
INTERFACE_NAME = re.compile(r"[a-zA-Z0-9_=+.-]{1,15}")
RT_TABLES_FILES = ("/etc/iproute2/rt_tables", "/usr/share/iproute2/rt_tables")
BUILTIN_TABLES = {"default": 253, "main": 254, "local": 255}
MIN_MTU = 68  # smallest MTU Linux accepts for IPv4
MAX_MTU = 65535
MAX_TABLE = 0xFFFFFFFF

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
InterfaceAddress = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class EndpointSpec:
    """An Endpoint as written: a host name or IP literal and a port; resolved at apply time."""

    host: str
    port: int

    def resolve(self) -> Endpoint:
        """The UDP address to configure. Like wg, an IPv4 result is preferred over IPv6."""
        try:
            return Endpoint(ipaddress.ip_address(self.host), self.port)
        except ValueError:
            pass
        try:
            infos = socket.getaddrinfo(self.host, self.port, socket.AF_UNSPEC, socket.SOCK_DGRAM)
        except socket.gaierror as exc:
            raise OSError(f"cannot resolve endpoint host {self.host!r}: {exc.strerror}") from None
        infos.sort(key=lambda info: info[0] != socket.AF_INET)
        address = ipaddress.ip_address(infos[0][4][0])
        return Endpoint(address, self.port)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass
class PeerConfig:
    public_key: bytes
    preshared_key: bytes | None = None
    allowed_ips: list[Network] = field(default_factory=list)
    endpoint: EndpointSpec | None = None
    persistent_keepalive: int | None = None  # None: not set; 0: "off"
    line: int = 0  # where the [Peer] section starts, for messages


@dataclass
class InterfaceConfig:
    private_key: bytes | None = None
    listen_port: int | None = None
    fwmark: int | None = None  # None: not set; 0: "off"
    addresses: list[InterfaceAddress] = field(default_factory=list)
    dns_servers: list[IPAddress] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    mtu: int | None = None
    table: str | None = None  # None (auto), "off", or a table number as text
    pre_up: list[str] = field(default_factory=list)
    post_up: list[str] = field(default_factory=list)
    pre_down: list[str] = field(default_factory=list)
    post_down: list[str] = field(default_factory=list)
    save_config: bool = False

    @property
    def table_id(self) -> int | None:
        """The routing table number, or None for auto/off."""
        return int(self.table) if self.table not in (None, "off", "auto") else None

    def __repr__(self) -> str:  # never print the private key
        return f"InterfaceConfig(addresses={self.addresses}, listen_port={self.listen_port})"


@dataclass
class QuickConfig:
    """A whole wg-quick file."""

    path: str
    interface: InterfaceConfig
    peers: list[PeerConfig] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The interface name wg-quick derives from the file name."""
        return interface_name_for(self.path)


# --- locating files -----------------------------------------------------------------------


def interface_name_for(path: str) -> str:
    base = os.path.basename(path)
    return base[: -len(".conf")] if base.endswith(".conf") else base


def locate(config_or_name: str) -> tuple[str, str]:
    """`(path, interface name)` for a wg-quick argument: a bare name means NAME.conf in
    /etc/wireguard (or /usr/local/etc/wireguard), anything else is a path."""
    if INTERFACE_NAME.fullmatch(config_or_name) and not os.path.exists(config_or_name):
        for directory in CONFIG_DIRECTORIES:
            path = os.path.join(directory, f"{config_or_name}.conf")
            if os.path.exists(path):
                return path, config_or_name
        return os.path.join(CONFIG_DIRECTORIES[0], f"{config_or_name}.conf"), config_or_name
    name = interface_name_for(config_or_name)
    if not config_or_name.endswith(".conf") or not INTERFACE_NAME.fullmatch(name):
        raise ConfigError(
            config_or_name, None, None,
            "the configuration file must be named NAME.conf, where NAME is a valid interface "
            "name (1-15 of a-z A-Z 0-9 _ = + . -)",
        )  # fmt: skip
    return config_or_name, name


def world_accessible_warning(path: str) -> str | None:
    """wg-quick's warning: the file and its directory both grant access to others."""
    try:
        file_mode = os.stat(path).st_mode
        dir_mode = os.stat(os.path.dirname(os.path.abspath(path))).st_mode
    except OSError:
        return None
    if stat.S_IMODE(file_mode) & stat.S_IMODE(dir_mode) & 0o007:
        return f"Warning: `{path}' is world accessible"
    return None


def load(path: str) -> QuickConfig:
    """Read and parse a file; logs wg-quick's warning when it is world accessible."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(path, None, None, "no such configuration file") from None
    except PermissionError:
        raise ConfigError(path, None, None, "permission denied reading the file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, None, None, f"not UTF-8 text ({exc.reason})") from None
    warning = world_accessible_warning(path)
    if warning:
        log.warning("%s", warning)
    return parse(text, path)


# --- parsing ------------------------------------------------------------------------------

_INTERFACE_KEYS = {
    "privatekey": "PrivateKey", "listenport": "ListenPort", "fwmark": "FwMark",
    "address": "Address", "dns": "DNS", "mtu": "MTU", "table": "Table", "preup": "PreUp",
    "postup": "PostUp", "predown": "PreDown", "postdown": "PostDown", "saveconfig": "SaveConfig",
}  # fmt: skip
_PEER_KEYS = {
    "publickey": "PublicKey", "presharedkey": "PresharedKey", "allowedips": "AllowedIPs",
    "endpoint": "Endpoint", "persistentkeepalive": "PersistentKeepalive",
}  # fmt: skip
_HOOK_KEYS = {"preup", "postup", "predown", "postdown"}
_DECIMAL = re.compile(r"[0-9]+")


# Comma-separated lists, and two entries separated only by spaces (wg strips the spaces, so they
# run together into one invalid entry: worth a hint).
_LIST_KEYS = frozenset({"address", "dns", "allowedips"})
_SPACE_SEPARATED = re.compile(r"[^,\s]\s+[^,\s]")


class _LineError(Exception):
    """Raised by a value parser; turned into ConfigError with the file, line and key."""


def parse(text: str, path: str = "<string>") -> QuickConfig:
    """Parse the text of a wg-quick file. `path` names the file in error messages."""
    interface: InterfaceConfig | None = None
    peers: list[PeerConfig] = []
    section: str | None = None
    peer_fields: dict[int, set[str]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        content = raw.split("#", 1)[0]
        # Hook commands keep their inner spaces; everything else is whitespace-insensitive
        # (wg strips all whitespace from a line).
        key_part, sep, value_part = content.partition("=")
        key = "".join(key_part.split())
        if not key and not sep:
            continue
        if key.startswith("["):
            if sep or not key.endswith("]"):
                raise ConfigError(path, number, None, f"malformed section header {raw.strip()!r}")
            name = key[1:-1].lower()
            if name == "interface":
                section = "interface"
                interface = interface or InterfaceConfig()
            elif name == "peer":
                section = "peer"
                peers.append(PeerConfig(public_key=b"", line=number))
            else:
                raise ConfigError(
                    path, number, None,
                    f"unknown section {key!r} (expected [Interface] or [Peer])",
                )  # fmt: skip
            continue
        if not sep:
            raise ConfigError(path, number, key, "expected `Key = Value`")
        lower = key.lower()
        known = _INTERFACE_KEYS if section == "interface" else _PEER_KEYS
        if section is None:
            raise ConfigError(path, number, key, "key outside of an [Interface] or [Peer] section")
        if lower not in known:
            where = "[Interface]" if section == "interface" else "[Peer]"
            raise ConfigError(path, number, key, f"unknown key in {where}")
        canonical = known[lower]
        value = value_part.strip() if lower in _HOOK_KEYS else "".join(value_part.split())
        try:
            if section == "interface":
                assert interface is not None
                _interface_line(interface, lower, value)
            else:
                seen = peer_fields.setdefault(len(peers), set())
                _peer_line(peers[-1], lower, value, seen)
        except _LineError as exc:
            message = str(exc)
            if lower in _LIST_KEYS and _SPACE_SEPARATED.search(value_part.strip()):
                message += f"; separate the entries with commas ({canonical} = A, B)"
            raise ConfigError(path, number, canonical, message) from None
    if interface is None:
        raise ConfigError(path, None, None, "no [Interface] section")
    for peer in peers:
        if not peer.public_key:
            raise ConfigError(path, peer.line, "PublicKey", "[Peer] section without a PublicKey")
    seen_keys: dict[bytes, int] = {}
    for peer in peers:
        if peer.public_key in seen_keys:
            raise ConfigError(
                path, peer.line, "PublicKey",
                f"the same peer appears twice (first at line {seen_keys[peer.public_key]})",
            )  # fmt: skip
        seen_keys[peer.public_key] = peer.line
    return QuickConfig(path=path, interface=interface, peers=peers)


def _key(value: str, what: str) -> bytes:
    try:
        return keys.from_base64(value)
    except keys.KeyFormatError:
        # The value is not echoed: it may be (most of) a secret.
        message = f"not a valid {what} (44 base64 characters, as `wg genkey` prints)"
        raise _LineError(message) from None


def _uint(value: str, maximum: int, what: str) -> int:
    if not _DECIMAL.fullmatch(value):
        raise _LineError(f"{what} must be a whole number, got {value!r}")
    number = int(value)
    if number > maximum:
        raise _LineError(f"{what} {number} is out of range (0-{maximum})")
    return number


def _split_list(value: str) -> list[str]:
    return [item for item in value.split(",") if item]


def _interface_line(config: InterfaceConfig, key: str, value: str) -> None:
    if key == "privatekey":
        config.private_key = _key(value, "private key")
    elif key == "listenport":
        config.listen_port = _uint(value, MAX_PORT, "port")
    elif key == "fwmark":
        config.fwmark = _fwmark(value)
    elif key == "address":
        for item in _split_list(value):
            try:
                config.addresses.append(ipaddress.ip_interface(item))
            except ValueError:
                raise _LineError(f"{item!r} is not an IP address with optional /prefix") from None
    elif key == "dns":
        for item in _split_list(value):
            try:
                config.dns_servers.append(ipaddress.ip_address(item))
            except ValueError:
                if not re.fullmatch(r"[A-Za-z0-9_.-]+", item):
                    message = f"{item!r} is neither an IP address nor a search domain"
                    raise _LineError(message) from None
                config.dns_search.append(item)
    elif key == "mtu":
        mtu = _uint(value, MAX_MTU, "MTU")
        if mtu < MIN_MTU:
            raise _LineError(f"MTU {mtu} is too small (at least {MIN_MTU})")
        config.mtu = mtu
    elif key == "table":
        config.table = _table(value)
    elif key == "preup":
        config.pre_up.append(value)
    elif key == "postup":
        config.post_up.append(value)
    elif key == "predown":
        config.pre_down.append(value)
    elif key == "postdown":
        config.post_down.append(value)
    elif key == "saveconfig":
        if value.lower() not in ("true", "false"):
            raise _LineError(f"must be true or false, got {value!r}")
        config.save_config = value.lower() == "true"


def _fwmark(value: str) -> int:
    if value.lower() == "off":
        return 0
    try:
        mark = int(value, 16) if value.lower().startswith("0x") else int(value, 10)
    except ValueError:
        raise _LineError(f"must be a number (decimal or 0x hex) or off, got {value!r}") from None
    if not 0 <= mark <= MAX_FWMARK:
        raise _LineError(f"{value} is out of range (0-0xffffffff)")
    return mark


def _table(value: str) -> str:
    lower = value.lower()
    if lower in ("off", "auto"):
        return lower
    if _DECIMAL.fullmatch(value):
        if int(value) > MAX_TABLE or int(value) == 0:
            raise _LineError(f"routing table {value} is out of range (1-{MAX_TABLE})")
        return str(int(value))
    number = routing_table_number(value)
    if number is None:
        raise _LineError(f"unknown routing table name {value!r} (not in /etc/iproute2/rt_tables)")
    return str(number)


def routing_table_number(name: str) -> int | None:
    """Look a routing table name up as `ip` does (rt_tables files, then built-in names)."""
    for table_file in RT_TABLES_FILES:
        try:
            lines = Path(table_file).read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            fields = line.split("#", 1)[0].split()
            if len(fields) == 2 and fields[1] == name and _DECIMAL.fullmatch(fields[0]):
                return int(fields[0])
    return BUILTIN_TABLES.get(name)


def _peer_line(peer: PeerConfig, key: str, value: str, seen: set[str]) -> None:
    if key in seen and key != "allowedips":
        raise _LineError("given twice in the same [Peer] section")
    seen.add(key)
    if key == "publickey":
        peer.public_key = _key(value, "public key")
    elif key == "presharedkey":
        peer.preshared_key = _key(value, "preshared key")
    elif key == "allowedips":
        for item in _split_list(value):
            peer.allowed_ips.append(_allowed_ip(item))
    elif key == "endpoint":
        peer.endpoint = parse_endpoint(value)
    elif key == "persistentkeepalive":
        if value.lower() == "off":
            peer.persistent_keepalive = 0
        else:
            peer.persistent_keepalive = _uint(value, MAX_PERSISTENT_KEEPALIVE, "interval")


def _allowed_ip(item: str) -> Network:
    address_text, sep, bits = item.partition("/")
    try:
        address = ipaddress.ip_address(address_text)
    except ValueError:
        raise _LineError(f"{item!r} is not an IP address or prefix") from None
    if not sep:
        return ipaddress.ip_network(address)
    if not _DECIMAL.fullmatch(bits) or int(bits) > address.max_prefixlen:
        raise _LineError(f"invalid prefix length in {item!r} (0-{address.max_prefixlen})")
    return ipaddress.ip_network((address, int(bits)), strict=False)


def parse_endpoint(value: str) -> EndpointSpec:
    """`host:port` or `[IPv6]:port`; the host may be a name, resolved later."""
    if value.startswith("["):
        close = value.find("]")
        if close < 0 or value[close + 1 : close + 2] != ":":
            raise _LineError(f"{value!r} is not [IPv6]:port")
        host, port = value[1:close], value[close + 2 :]
    else:
        host, sep, port = value.rpartition(":")
        if not sep or not host:
            raise _LineError(f"{value!r} has no port (expected host:port)")
        if ":" in host:
            raise _LineError(f"IPv6 endpoints must be written [address]:port, got {value!r}")
    if not host:
        raise _LineError(f"{value!r} has no host")
    return EndpointSpec(host, _uint(port, MAX_PORT, "port"))


# --- writing ------------------------------------------------------------------------------


def format_config(config: QuickConfig) -> str:
    """The configuration as a wg-quick file (what SaveConfig writes back)."""
    iface = config.interface
    out = ["[Interface]"]
    out += [f"Address = {address}" for address in iface.addresses]
    dns = [str(a) for a in iface.dns_servers] + iface.dns_search
    if dns:
        out.append(f"DNS = {', '.join(dns)}")
    if iface.mtu is not None:
        out.append(f"MTU = {iface.mtu}")
    if iface.table is not None:
        out.append(f"Table = {iface.table}")
    for key, hooks in (("PreUp", iface.pre_up), ("PostUp", iface.post_up),
                       ("PreDown", iface.pre_down), ("PostDown", iface.post_down)):
        out += [f"{key} = {hook}" for hook in hooks]
    if iface.save_config:
        out.append("SaveConfig = true")
    if iface.listen_port is not None:
        out.append(f"ListenPort = {iface.listen_port}")
    if iface.fwmark:
        out.append(f"FwMark = {iface.fwmark:#x}")
    if iface.private_key is not None:
        out.append(f"PrivateKey = {keys.to_base64(iface.private_key)}")
    for peer in config.peers:
        out += peer_section(keys.to_base64(peer.public_key), peer.preshared_key,
                            peer.allowed_ips, peer.endpoint, peer.persistent_keepalive)
    return "\n".join(out) + "\n"


def peer_section(public_key_base64: str, preshared_key: bytes | None, allowed_ips: Iterable,
                 endpoint: object, persistent_keepalive: int | None) -> list[str]:
    """A `[Peer]` section's lines (with the blank line before it), in wg showconf's order; the
    config writer here and `wgfast showconf` share it."""
    out = ["", "[Peer]", f"PublicKey = {public_key_base64}"]
    if preshared_key is not None:
        out.append(f"PresharedKey = {keys.to_base64(preshared_key)}")
    networks = ", ".join(str(n) for n in allowed_ips)
    if networks:
        out.append(f"AllowedIPs = {networks}")
    if endpoint is not None:
        out.append(f"Endpoint = {endpoint}")
    if persistent_keepalive:
        out.append(f"PersistentKeepalive = {persistent_keepalive}")
    return out
