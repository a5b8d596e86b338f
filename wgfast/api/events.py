"""wgfastd's event stream as typed events: `Device.events()` / `AsyncDevice.events()`.

    state = dev.state()
    with dev.events(since=state.event_sequence) as stream:
        if stream.missed:      # the snapshot is older than what the daemon still holds
            state = dev.state()
        for event in stream:
            match event:
                case HandshakeCompleted(public_key=key): ...
                case StreamCutOff() | DaemonStopping(): ...   # the last item; EOF follows

The stream is one UAPI connection sending `events=1` (README.md, "Events"). An implementation
without the operation (wireguard-go, an older wgfastd) closes the connection without a reply:
NotSupportedError. A refused request (a bad since=) raises UAPIError. Closing the stream closes
the connection. The iteration ends after a notice (StreamCutOff, DaemonStopping), which is
yielded as the last item; a connection lost without one raises DeviceUnreachableError.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from dataclasses import dataclass, field
from types import TracebackType

from wgfast.errors import DeviceUnreachableError, NotSupportedError, UAPIError
from wgfast.uapi import Endpoint, unreachable

NOT_SUPPORTED = "the events operation (events=1) is not supported by this implementation"
READ_SIZE = 65536


@dataclass(frozen=True)
class Event:
    """Every event has the daemon's sequence number (monotonic, from 1)."""

    sequence: int


@dataclass(frozen=True)
class PeerEvent(Event):
    public_key: bytes


@dataclass(frozen=True)
class HandshakeCompleted(PeerEvent):
    """A handshake completed and its keypair was installed; `initiator`: whether this device
    started it (None if the daemon did not say)."""

    initiator: bool | None = None


@dataclass(frozen=True)
class EndpointChanged(PeerEvent):
    """The peer's authenticated packets now come from `new` (roaming); `old` may be unknown."""

    old: Endpoint | None = None
    new: Endpoint | None = None


@dataclass(frozen=True)
class SessionExpired(PeerEvent):
    """No session for 3 x REJECT_AFTER_TIME: every key of the peer was zeroed."""


@dataclass(frozen=True)
class PeerAdded(PeerEvent):
    """A set request added the peer (replace_peers re-adds the peers it names)."""


@dataclass(frozen=True)
class PeerRemoved(PeerEvent):
    """A set request removed the peer (or replace_peers did)."""


@dataclass(frozen=True)
class DropSummary(Event):
    """Drops since the previous summary, by reason: the data plane's (`dataplane`: bad_type,
    auth, replay, bad_mac1, cookie_required, ...) and the handshake core's (`handshake`:
    decrypt_failed, ...)."""

    dataplane: dict[str, int] = field(default_factory=dict)
    handshake: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class UnknownEvent(Event):
    """An event kind this version of wgfast does not know, kept as text."""

    name: str = ""
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamEnd:
    """The notice that ends a stream; `last_sequence` is that of the last event sent on it
    (0 if none): subscribe again with since=last_sequence to go on without a gap."""

    last_sequence: int
    reason: str


@dataclass(frozen=True)
class StreamCutOff(StreamEnd):
    """The subscriber read too slowly: its backlog filled and the daemon cut it off."""


@dataclass(frozen=True)
class DaemonStopping(StreamEnd):
    """The daemon is stopping."""


StreamItem = Event | StreamEnd


def _endpoint(text: str | None) -> Endpoint | None:
    return None if text is None else Endpoint.parse(text)


def parse_block(text: str) -> StreamItem:
    """One block of the stream (its lines, without the blank line) -> an event or a notice."""
    fields: dict[str, str] = {}
    for line in text.split("\n"):
        key, _, value = line.partition("=")
        if key:
            fields[key] = value
    name = fields.pop("event", "")
    if name in ("cut_off", "daemon_stopping"):
        kind = StreamCutOff if name == "cut_off" else DaemonStopping
        return kind(int(fields.get("last_sequence", "0")), fields.get("reason", ""))
    sequence = int(fields.pop("sequence", "0"))
    public_key = bytes.fromhex(fields["public_key"]) if "public_key" in fields else b""
    if name == "handshake_completed":
        initiator = fields.get("initiator")
        return HandshakeCompleted(sequence, public_key,
                                  None if initiator is None else initiator == "true")
    if name == "endpoint_changed":
        return EndpointChanged(sequence, public_key, _endpoint(fields.get("old_endpoint")),
                               _endpoint(fields.get("new_endpoint")))
    simple = {"session_expired": SessionExpired, "peer_added": PeerAdded,
              "peer_removed": PeerRemoved}  # fmt: skip
    if name in simple:
        return simple[name](sequence, public_key)
    if name == "drop_summary":
        dataplane = {k.removeprefix("dataplane_drop_"): int(v) for k, v in fields.items()
                     if k.startswith("dataplane_drop_")}  # fmt: skip
        handshake = {k.removeprefix("handshake_drop_"): int(v) for k, v in fields.items()
                     if k.startswith("handshake_drop_")}  # fmt: skip
        return DropSummary(sequence, dataplane, handshake)
    return UnknownEvent(sequence, name, fields)


def request_bytes(since: int | None) -> bytes:
    if since is not None and (isinstance(since, bool) or since < 0):
        raise ValueError(f"since must be a sequence number, not {since!r}")
    return b"events=1\n" + (f"since={since}\n".encode() if since is not None else b"") + b"\n"


class _Blocks:
    """Splits the bytes of the stream into blocks (each ends with a blank line)."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def take(self) -> str | None:
        end = self.buffer.find(b"\n\n")
        if end < 0:
            return None
        block = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        return block.decode("utf-8", "replace")


@dataclass
class _Ack:
    sequence: int
    missed: bool


def _parse_ack(block: str | None, path: str) -> _Ack:
    if block is None:  # EOF or reset before any reply: the operation is unknown there
        raise NotSupportedError(f"{path}: {NOT_SUPPORTED}")
    fields = dict(line.partition("=")[::2] for line in block.split("\n") if line)
    try:
        code = int(fields["errno"])
    except (KeyError, ValueError):
        raise UAPIError(-errno.EPROTO, f"events=1: malformed reply {block[-80:]!r}") from None
    if code != 0:
        raise UAPIError(code, "events=1 refused")
    return _Ack(int(fields.get("sequence", "0")), fields.get("missed") == "1")


def _lost(path: str) -> DeviceUnreachableError:
    return DeviceUnreachableError(errno.ECONNRESET, f"{path}: event stream ended without a "
                                  "notice")


class EventStream:
    """A blocking iterator over a device's events (from `Device.events()`). `sequence` is the
    daemon's last sequence number when the subscription began; `missed` says that some events
    after the `since` asked for are no longer known (read a snapshot again)."""

    def __init__(self, path: str, since: int | None = None, timeout: float = 10.0) -> None:
        self.path = path
        self._blocks = _Blocks()
        self._ended = False
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.settimeout(timeout)
            try:
                self._sock.connect(path)
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                raise unreachable(path, exc) from None
            self._sock.sendall(request_bytes(since))
            ack = _parse_ack(self._read_block(), path)
            self._sock.settimeout(None)  # events may be minutes apart
        except BaseException:
            self._sock.close()
            raise
        self.sequence = ack.sequence
        self.missed = ack.missed

    def _read_block(self) -> str | None:
        while (block := self._blocks.take()) is None:
            try:
                data = self._sock.recv(READ_SIZE)
            except ConnectionResetError:
                data = b""
            if not data:
                return None
            self._blocks.feed(data)
        return block

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> StreamItem:
        if self._ended:
            raise StopIteration
        try:
            block = self._read_block()
        except OSError:
            if self._sock.fileno() < 0:  # closed by the caller
                raise StopIteration from None
            raise
        if block is None:
            if self._ended:  # closed by the caller, from another thread
                raise StopIteration
            self.close()
            raise _lost(self.path)
        item = parse_block(block)
        if isinstance(item, StreamEnd):
            self.close()
        return item

    def close(self) -> None:
        """Close the connection (from any thread: a blocked iteration then ends)."""
        self._ended = True
        with contextlib.suppress(OSError):  # wakes a recv blocked in another thread
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class AsyncEventStream:
    """The asyncio twin of EventStream (from `AsyncDevice.events()`): `async for` over it, or
    `async with` it. It connects at the first `__anext__` (or `open()`, or entering it), so
    NotSupportedError and UAPIError are raised there; `sequence` and `missed` are set then."""

    def __init__(self, path: str, since: int | None = None, timeout: float = 10.0) -> None:
        self.path = path
        self.since = since
        self.timeout = timeout
        self.sequence: int | None = None
        self.missed = False
        self._blocks = _Blocks()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ended = False

    async def open(self) -> AsyncEventStream:
        if self._reader is not None or self._ended:
            return self
        request = request_bytes(self.since)
        async with asyncio.timeout(self.timeout):
            try:
                self._reader, self._writer = await asyncio.open_unix_connection(self.path)
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                raise unreachable(self.path, exc) from None
            try:
                self._writer.write(request)
                await self._writer.drain()
                ack = _parse_ack(await self._read_block(), self.path)
            except BaseException:
                await self.aclose()
                raise
        self.sequence, self.missed = ack.sequence, ack.missed
        return self

    async def _read_block(self) -> str | None:
        assert self._reader is not None
        while (block := self._blocks.take()) is None:
            try:
                data = await self._reader.read(READ_SIZE)
            except ConnectionResetError:
                data = b""
            if not data:
                return None
            self._blocks.feed(data)
        return block

    def __aiter__(self) -> AsyncEventStream:
        return self

    async def __anext__(self) -> StreamItem:
        if self._ended:
            raise StopAsyncIteration
        await self.open()
        block = await self._read_block()
        if block is None:
            await self.aclose()
            raise _lost(self.path)
        item = parse_block(block)
        if isinstance(item, StreamEnd):
            await self.aclose()
        return item

    async def aclose(self) -> None:
        self._ended = True
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def __aenter__(self) -> AsyncEventStream:
        return await self.open()

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()
