"""The interface's administrative state (up/down) and MTU, read once and then followed through
rtnetlink link notifications (RTMGRP_LINK), as wireguard-go's tun event reader does.

The device is "up" while the link has IFF_UP: wg-quick configures a device first and brings the
link up last, and `ip link set down` takes a device down (sessions end, sockets close).

The link may move to another network namespace (`wgfast up --netns`, `ip link set netns`): the
TUN fd and the UDP sockets stay valid, but this namespace's notifications end with RTM_DELLINK.
`follow_link` then asks the TUN which namespace its link is in now (TUNGETDEVNETNS) and opens
a watcher there, from a thread that entered it (a namespace is per thread; a socket keeps the
namespace it was made in).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

from wgfast.daemon.tun import _IFREQ_FLAGS, _IFREQ_INT, SIOCGIFFLAGS, _ifreq_ioctl
from wgfast.netns import run_in_netns_fd

log = logging.getLogger(__name__)

RTMGRP_LINK = 1
RTM_NEWLINK = 16
RTM_DELLINK = 17
TUNGETDEVNETNS = 0x54E3  # _IO('T', 227): an fd of the namespace the TUN's link is in
NLMSG_ERROR = 2
IFLA_MTU = 4
IFF_UP = 0x1
SIOCGIFMTU = 0x8921
SIOCGIFINDEX = 0x8933

_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change mask
_RTATTR = struct.Struct("=HH")  # length, type
_RECEIVE_BYTES = 65536


@dataclass(frozen=True)
class LinkState:
    up: bool
    mtu: int


def read_link_state(name: str) -> LinkState:
    """IFF_UP and the MTU of `name` now (ioctl; raises OSError if it is gone)."""
    flags = _IFREQ_FLAGS.unpack(_ifreq_ioctl(SIOCGIFFLAGS, _IFREQ_FLAGS.pack(name.encode(), 0)))[1]
    mtu = _IFREQ_INT.unpack(_ifreq_ioctl(SIOCGIFMTU, _IFREQ_INT.pack(name.encode(), 0)))[1]
    return LinkState(bool(flags & IFF_UP), mtu)


def interface_index(name: str) -> int:
    return _IFREQ_INT.unpack(_ifreq_ioctl(SIOCGIFINDEX, _IFREQ_INT.pack(name.encode(), 0)))[1]


class LinkWatcher:
    """Calls `on_change(LinkState)` for link notifications about one interface index, and
    `on_gone()` when the link leaves this namespace (deleted, or moved elsewhere)."""

    def __init__(self, index: int, on_change: Callable[[LinkState], None],
                 on_gone: Callable[[], None] | None = None) -> None:
        self.index = index
        self.on_change = on_change
        self.on_gone = on_gone
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        try:
            self.sock.bind((0, RTMGRP_LINK))
            self.sock.setblocking(False)
        except BaseException:
            self.sock.close()
            raise

    def fileno(self) -> int:
        return self.sock.fileno()

    def on_readable(self) -> None:
        for _ in range(64):  # bounded: the rest waits for the next wake-up
            try:
                data = self.sock.recv(_RECEIVE_BYTES)
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # notifications lost: the caller re-reads
                    log.debug("link notifications overflowed")
                    continue
                return  # EAGAIN: drained
            for state in self._parse(data):
                if state is None:
                    if self.on_gone is not None:
                        self.on_gone()
                    return
                self.on_change(state)

    def _parse(self, data: bytes) -> list[LinkState | None]:
        """The link's states in `data`; None stands for an RTM_DELLINK of the link."""
        states: list[LinkState | None] = []
        offset = 0
        while offset + _NLMSGHDR.size <= len(data):
            length, kind = _NLMSGHDR.unpack_from(data, offset)[:2]
            if length < _NLMSGHDR.size or offset + length > len(data):
                break
            body = offset + _NLMSGHDR.size
            if kind == RTM_NEWLINK and length >= _NLMSGHDR.size + _IFINFOMSG.size:
                index, flags = _IFINFOMSG.unpack_from(data, body)[2:4]
                if index == self.index:
                    mtu = self._mtu(data, body + _IFINFOMSG.size, offset + length)
                    if mtu is not None:
                        states.append(LinkState(bool(flags & IFF_UP), mtu))
            elif kind == RTM_DELLINK and length >= _NLMSGHDR.size + _IFINFOMSG.size:
                if _IFINFOMSG.unpack_from(data, body)[2] == self.index:
                    states.append(None)
            offset += (length + 3) & ~3
        return states

    @staticmethod
    def _mtu(data: bytes, start: int, end: int) -> int | None:
        while start + _RTATTR.size <= end:
            length, kind = _RTATTR.unpack_from(data, start)
            if length < _RTATTR.size or start + length > end:
                return None
            if kind == IFLA_MTU and length >= _RTATTR.size + 4:
                return struct.unpack_from("=I", data, start + _RTATTR.size)[0]
            start += (length + 3) & ~3
        return None

    def close(self) -> None:
        self.sock.close()


def follow_link(tun_fd: int, name: str, on_change: Callable[[LinkState], None],
                on_gone: Callable[[], None]) -> tuple[LinkWatcher, LinkState]:
    """A watcher in the namespace the TUN's link is in now, and the link's state there.
    Raises OSError when the link is gone for good (EBADFD) or not visible there yet."""
    namespace = fcntl.ioctl(tun_fd, TUNGETDEVNETNS)

    def inside() -> tuple[LinkWatcher, LinkState]:
        watcher = LinkWatcher(interface_index(name), on_change, on_gone)
        try:
            return watcher, read_link_state(name)
        except BaseException:
            watcher.close()
            raise

    try:
        return run_in_netns_fd(namespace, inside, "follow-link")
    finally:
        os.close(namespace)
