"""The UAPI server: /var/run/wireguard/NAME.sock, asyncio, many requests per connection.

The socket is created with mode 0600 (umask held at 0177 around bind, so there is no moment
when group or others could connect). Requests on one connection are served in turn, requests
on different connections one at a time (one lock, like wireguard-go's ipcMutex), so a get never
sees half a set. Every request is bounded: a line longer than MAX_LINE_BYTES or a set larger
than MAX_REQUEST_BYTES gets errno=-5 (EIO) and the connection is closed; an unknown operation
closes the connection; nothing a client sends can raise out of the handler.

`events=1` (wgfastd's own operation; `wg` never sends it, wireguard-go closes the connection
on it) turns the connection into a subscription to the device's event bus
(wgfast.daemon.events; wire format in README.md, "Events"). The subscription runs on its
connection's task and never holds the lock, so get and set on other connections go on as fast;
a subscriber that does not read is cut off when its backlog fills. When the server closes,
every subscriber reads a `daemon_stopping` notice, then EOF.

`SocketRemovalWatcher` reports when the socket file is deleted or replaced (inotify; polling
only where inotify is unavailable): wireguard-go's signal that the interface is being torn
down.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import inspect
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from typing import Protocol

from wgfast.daemon import events as ev
from wgfast.uapi import (
    ERRNO_INVALID,
    ERRNO_IO,
    ERRNO_OK,
    ERRNO_PROTOCOL,
    ERRNO_UNKNOWN,
    SOCKET_DIRECTORY,
    ChangeSet,
    DeviceStatus,
    UAPIError,
    format_get,
    parse_set_lines,
    socket_path,
)

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 4096  # longest valid line is ~100 bytes; leave room for odd endpoints
MAX_REQUEST_BYTES = 64 * 1024 * 1024  # a set for tens of thousands of peers still fits
MAX_EVENTS_REQUEST_BYTES = 1024  # an events request is one or two short lines
STOP_NOTICE_SECONDS = 1.0  # how long closing waits for subscribers to be sent their notice
SOCKET_MODE = 0o600
DIRECTORY_MODE = 0o755


class DeviceControl(Protocol):
    """What the UAPI server needs from a device.

    apply() must be all-or-nothing: raise UAPIError (with a wireguard-go errno) and change
    nothing, or apply the whole change-set. It may be a coroutine function.
    """

    def get_snapshot(self) -> DeviceStatus: ...

    def apply(self, changes: ChangeSet) -> None | Awaitable[None]: ...


class _RequestTooLarge(Exception):
    pass


def open_uapi_socket(path: str) -> socket.socket:
    """Bind and listen on `path` like wireguard-go's UAPIOpen: refuse if another process is
    listening there, replace a stale socket file otherwise."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=DIRECTORY_MODE, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o777 & ~SOCKET_MODE)
    try:
        try:
            sock.bind(path)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(path)
                except OSError:
                    pass
                else:
                    raise OSError(errno.EADDRINUSE, f"UAPI socket {path} is in use") from None
            os.unlink(path)
            sock.bind(path)
    except BaseException:
        sock.close()
        raise
    finally:
        os.umask(old_umask)
    sock.listen(64)
    sock.setblocking(False)
    return sock


class UAPIServer:
    """Serves get=1/set=1 for one device on a listening UNIX socket."""

    def __init__(self, control: DeviceControl, listener: socket.socket, path: str) -> None:
        self.control = control
        self.listener = listener
        self.path = path
        self._identity = _file_identity(path)
        self._lock = asyncio.Lock()
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task] = set()
        self._subscribers: set[asyncio.Task] = set()
        # A control without an event bus (a test's fake) treats events=1 as unknown.
        self.events: ev.EventBus | None = getattr(control, "events", None)

    @classmethod
    def for_interface(
        cls, control: DeviceControl, interface: str, directory: str = SOCKET_DIRECTORY
    ) -> UAPIServer:
        path = socket_path(interface, directory)
        return cls(control, open_uapi_socket(path), path)

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(
            self._serve_connection, sock=self.listener, limit=MAX_LINE_BYTES
        )

    async def close(self) -> None:
        """Stop listening, drop open connections and remove the socket file if still ours."""
        if self._server is not None:
            self._server.close()
        if self.events is not None:
            self.events.close()  # subscribers write what waits for them, then the notice
            if self._subscribers:
                await asyncio.wait(list(self._subscribers), timeout=STOP_NOTICE_SECONDS)
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._identity is not None and _file_identity(self.path) == self._identity:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        self._identity = None

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while await self._serve_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:  # a bug here must cost one connection, not the daemon
            log.exception("UAPI connection failed")
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Serve one request; return False when the connection should close."""
        try:
            operation = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            return False
        except asyncio.LimitOverrunError:
            log.error("UAPI: operation line too long")
            return False
        if operation == b"get=1\n":
            terminator = await reader.readexactly(1)
            if terminator != b"\n":
                log.error("UAPI: trailing character in get: %r", terminator)
                await _reply(writer, "", ERRNO_INVALID)
                return True
            async with self._lock:
                body = format_get(self.control.get_snapshot())
            await _reply(writer, body, ERRNO_OK)
            return True
        if operation == b"set=1\n":
            try:
                lines = await _read_set_body(reader)
            except _RequestTooLarge as exc:
                log.error("UAPI: %s", exc)
                await _reply(writer, "", ERRNO_IO)
                return False
            if lines is None:
                log.error("UAPI: set request ended before its blank line; nothing applied")
                await _reply(writer, "", ERRNO_PROTOCOL)
                return False
            await _reply(writer, "", await self._apply(lines))
            return True
        if operation == b"events=1\n" and self.events is not None:
            return await self._serve_events(reader, writer, self.events)
        log.error("UAPI: invalid operation %r", operation[:64])
        return False

    async def _serve_events(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            bus: ev.EventBus) -> bool:
        """An events=1 request: a bad one gets an errno (the connection stays, as after a
        bad set); a good one an acknowledgement and then events until the stream ends."""
        try:
            lines = await _read_set_body(reader, MAX_EVENTS_REQUEST_BYTES)
        except _RequestTooLarge as exc:
            log.error("UAPI: events: %s", exc)
            await _reply(writer, "", ERRNO_IO)
            return False
        if lines is None:
            return False
        try:
            since = ev.parse_request(lines)
        except UAPIError as exc:
            log.error("UAPI: %s", exc)
            await _reply(writer, "", exc.errno)
            return True
        task = asyncio.current_task()
        assert task is not None
        subscription, missed = bus.subscribe(since)
        self._subscribers.add(task)
        # The subscriber sends nothing more: data or EOF from it ends the subscription.
        hangup = asyncio.get_running_loop().create_task(reader.read(1))
        hangup.add_done_callback(lambda _: subscription.end(ev.CLOSED))
        try:
            ack = f"sequence={bus.last_sequence}\n" + ("missed=1\n" if missed else "")
            await _reply(writer, ack, ERRNO_OK)
            while True:
                batch = await subscription.next_batch()
                if not batch:
                    break
                writer.write(b"".join(event.block for event in batch))
                await writer.drain()  # a stalled reader waits here; only its backlog grows
            reason = subscription.ended
            if reason == ev.CUT_OFF:  # logged when it happened (wgfast.daemon.events)
                writer.write(ev.notice_block(ev.CUT_OFF, subscription.last_sequence,
                                             "backlog_full"))
            elif reason == ev.DAEMON_STOPPING:
                writer.write(ev.notice_block(ev.DAEMON_STOPPING, subscription.last_sequence,
                                             "stopping"))
            await writer.drain()
        finally:
            bus.unsubscribe(subscription)
            self._subscribers.discard(task)
            hangup.cancel()
        return False

    async def _apply(self, lines: list[str]) -> int:
        try:
            changes = parse_set_lines(lines)
            async with self._lock:
                result = self.control.apply(changes)
                if inspect.isawaitable(result):
                    await result
        except UAPIError as exc:
            log.error("UAPI: %s", exc)
            return exc.errno
        except Exception:
            log.exception("UAPI: set failed unexpectedly")
            return ERRNO_UNKNOWN
        return ERRNO_OK


async def _read_set_body(reader: asyncio.StreamReader,
                         limit: int = MAX_REQUEST_BYTES) -> list[str] | None:
    """Lines up to the blank line (at most `limit` bytes), or None at EOF before it."""
    lines: list[str] = []
    total = 0
    while True:
        try:
            raw = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            return None
        except asyncio.LimitOverrunError as exc:
            raise _RequestTooLarge(f"line longer than {MAX_LINE_BYTES} bytes") from exc
        if raw == b"\n":
            return lines
        total += len(raw)
        if total > limit:
            raise _RequestTooLarge(f"request larger than {limit} bytes")
        # latin-1 maps every byte to a character, so junk reaches the validator, not a decoder.
        lines.append(raw[:-1].decode("latin-1"))


async def _reply(writer: asyncio.StreamWriter, body: str, code: int) -> None:
    writer.write(f"{body}errno={code}\n\n".encode())
    await writer.drain()


def _file_identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


# --- socket removal -------------------------------------------------------------------------

_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_IN_ATTRIB = 0x004  # unlink changes the link count: the one event a bound socket reliably gets
_IN_MOVE_SELF = 0x800
_IN_DELETE_SELF = 0x400


class SocketRemovalWatcher:
    """Calls `on_removed` once when `path` no longer names the socket we created."""

    POLL_SECONDS = 1.0  # only where inotify is unavailable: an idle daemon never wakes up

    def __init__(self, path: str, on_removed: Callable[[], None]) -> None:
        self.path = path
        self.on_removed = on_removed
        self._identity = _file_identity(path)
        self._inotify_fd = -1
        self._poll_task: asyncio.Task | None = None
        self._fired = False

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._inotify_fd = _inotify_watch(self.path)
        if self._inotify_fd >= 0:
            loop.add_reader(self._inotify_fd, self._on_inotify)
        else:
            self._poll_task = loop.create_task(self._poll())
        self._check()  # it may already be gone

    def stop(self) -> None:
        if self._inotify_fd >= 0:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._inotify_fd)
            os.close(self._inotify_fd)
            self._inotify_fd = -1
        if self._poll_task is not None:
            self._poll_task.cancel()
            self._poll_task = None

    def _on_inotify(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._inotify_fd, 4096):
                pass
        self._check()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.POLL_SECONDS)
            self._check()

    def _check(self) -> None:
        if self._fired:
            return
        current = _file_identity(self.path)
        if current is not None and current == self._identity:
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISSOCK(os.lstat(self.path).st_mode):
                    return
        self._fired = True
        log.info("UAPI socket %s was removed", self.path)
        self.on_removed()


def _inotify_watch(path: str) -> int:
    """An inotify fd watching `path`, or -1 when inotify cannot be used."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            return -1
        mask = _IN_ATTRIB | _IN_DELETE_SELF | _IN_MOVE_SELF
        if libc.inotify_add_watch(fd, os.fsencode(path), mask) < 0:
            os.close(fd)
            return -1
        return fd
    except (OSError, AttributeError):
        return -1
