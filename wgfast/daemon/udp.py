"""The device's UDP sockets: one IPv4 and one IPv6 (v6-only) socket on the same port.

As wireguard-go's StdNetBind does: both families listen on one port; port 0 lets the kernel pick
it for the first socket and the second takes the same number (retrying with a fresh pick when
that number is taken in the other family). A host without IPv6 gets an IPv4 socket alone.

The data plane reads and writes these sockets, the control plane's handshake messages included
(DataPlane.send_datagram, so that they leave from the peer's sticky source address); Python
only binds them and sets their options.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
from dataclasses import dataclass

log = logging.getLogger(__name__)

# Not in Python's socket module on every build.
SO_MARK = getattr(socket, "SO_MARK", 36)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)

SOCKET_BUFFER_BYTES = 7 << 20  # what wireguard-go asks for: room for bursts of batches
RANDOM_PORT_ATTEMPTS = 16
_NO_IPV6 = (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT)



@dataclass
class UDPSockets:
    v4: socket.socket | None
    v6: socket.socket | None
    port: int
    fwmark: int = 0

    @classmethod
    def bind(cls, port: int, fwmark: int = 0) -> UDPSockets:
        """Bind both families on `port` (0: any free port, the same for both).

        Raises OSError (EADDRINUSE when the port is taken)."""
        attempts = RANDOM_PORT_ATTEMPTS if port == 0 else 1
        last_error: OSError | None = None
        for _ in range(attempts):
            try:
                sockets = cls._bind_once(port)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                last_error = exc
                continue
            try:
                sockets.set_fwmark(fwmark)
            except OSError:
                sockets.close()
                raise
            return sockets
        assert last_error is not None
        raise last_error

    @classmethod
    def _bind_once(cls, port: int) -> UDPSockets:
        v6 = _open(socket.AF_INET6, port)
        if v6 is not None:
            port = v6.getsockname()[1]
        try:
            v4 = _open(socket.AF_INET, port)
        except OSError:
            if v6 is not None:
                v6.close()
            raise
        if v4 is None and v6 is None:
            raise OSError(errno.EAFNOSUPPORT, "neither IPv4 nor IPv6 UDP is available")
        if v4 is not None:
            port = v4.getsockname()[1]
        return cls(v4, v6, port)

    def set_fwmark(self, fwmark: int) -> None:
        """SO_MARK on both sockets (0 clears it). Raises OSError (EPERM without CAP_NET_ADMIN)."""
        for sock in self.sockets():
            sock.setsockopt(socket.SOL_SOCKET, SO_MARK, fwmark)
        self.fwmark = fwmark

    def sockets(self) -> list[socket.socket]:
        return [s for s in (self.v4, self.v6) if s is not None]

    def fileno4(self) -> int:
        return self.v4.fileno() if self.v4 is not None else -1

    def fileno6(self) -> int:
        return self.v6.fileno() if self.v6 is not None else -1

    def close(self) -> None:
        for sock in self.sockets():
            sock.close()
        self.v4 = self.v6 = None


def _open(family: int, port: int) -> socket.socket | None:
    """A bound UDP socket, or None when the family is unavailable on this host."""
    try:
        sock = socket.socket(family, socket.SOCK_DGRAM)
    except OSError as exc:
        if exc.errno in _NO_IPV6 and family == socket.AF_INET6:
            return None
        raise
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        _grow_buffers(sock)
        try:
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
        except OSError as exc:
            if family == socket.AF_INET6 and exc.errno in _NO_IPV6:
                sock.close()
                return None
            raise
    except BaseException:
        sock.close()
        raise
    return sock


def _grow_buffers(sock: socket.socket) -> None:
    """Large buffers so a burst of batches is not dropped; the FORCE variants (root) pass the
    sysctl limits, the plain ones are the fallback."""
    for force, plain in ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER_BYTES)
        except OSError:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, plain, SOCKET_BUFFER_BYTES)
