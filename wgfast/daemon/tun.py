"""Linux TUN device: create (or adopt) a layer-3 interface without packet-info headers.

As wireguard-go's tun.CreateTUN does: open /dev/net/tun, TUNSETIFF with IFF_TUN|IFF_NO_PI,
non-blocking, then set the MTU (default 1420) with SIOCSIFMTU. wireguard-go leaves the link
down (wg-quick brings it up), so `bring_up` defaults to False here too.

The interface lives as long as its file descriptor: closing the last fd deletes the link, and
deleting the link (`ip link del`) makes reads on the fd fail, which is how the daemon notices.
The fd stays valid when the interface is moved to another network namespace.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
from dataclasses import dataclass

TUN_CLONE_DEVICE = "/dev/net/tun"
IFNAMSIZ = 16
DEFAULT_MTU = 1420

IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000  # offloads (issue 7): a virtio_net_hdr before every packet
IFF_UP = 0x1
TUNSETIFF = 0x400454CA  # _IOW('T', 202, int)
TUNGETIFF = 0x800454D2  # _IOR('T', 210, unsigned int)
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCSIFMTU = 0x8922

# struct ifreq: char ifr_name[16]; then a 24-byte union (flags: short, mtu: int).
_IFREQ_FLAGS = struct.Struct("16sH22x")
_IFREQ_INT = struct.Struct("16si20x")


class TunError(OSError):
    pass


@dataclass
class TunDevice:
    fd: int
    name: str
    mtu: int
    vnet_hdr: bool = False  # opened with IFF_VNET_HDR (offloads); reads/writes carry 10 bytes

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def fileno(self) -> int:
        return self.fd


def check_interface_name(name: str) -> None:
    """Reject names the kernel would refuse or that are unsafe in a socket path."""
    if not name or len(name.encode()) >= IFNAMSIZ:
        raise ValueError(f"interface name {name!r} must be 1..{IFNAMSIZ - 1} bytes")
    if name in (".", "..") or any(c in name for c in "/:%") or any(c.isspace() for c in name):
        raise ValueError(f"invalid interface name {name!r}")


def create_tun(
    name: str, mtu: int = DEFAULT_MTU, bring_up: bool = False, vnet_hdr: bool | None = None
) -> TunDevice:
    """vnet_hdr: open with IFF_VNET_HDR for the data plane's offloads; None follows
    WGFAST_OFFLOAD (wgfast.offload), False is the plain IFF_TUN|IFF_NO_PI device."""
    check_interface_name(name)
    if vnet_hdr is None:
        from wgfast.daemon.offload import requested  # offloads (issue 7)

        vnet_hdr = requested().tun
    try:
        fd = os.open(TUN_CLONE_DEVICE, os.O_RDWR | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise TunError(exc.errno, f"cannot open {TUN_CLONE_DEVICE}: {exc.strerror}") from None
    try:
        flags = IFF_TUN | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
        request = _IFREQ_FLAGS.pack(name.encode(), flags)
        try:
            reply = fcntl.ioctl(fd, TUNSETIFF, request)
        except OSError as exc:
            raise TunError(exc.errno, f"TUNSETIFF {name}: {exc.strerror}") from None
        real_name = _IFREQ_FLAGS.unpack(reply)[0].rstrip(b"\0").decode()
        set_mtu(real_name, mtu)
        if bring_up:
            set_up(real_name)
    except BaseException:
        os.close(fd)
        raise
    return TunDevice(fd, real_name, mtu, vnet_hdr)


def adopt_tun(fd: int, mtu: int = DEFAULT_MTU) -> TunDevice:
    """Use an already-configured TUN fd (WG_TUN_FD): find its name, make it non-blocking and
    set the MTU, as wireguard-go's CreateTUNFromFile does."""
    try:
        reply = fcntl.ioctl(fd, TUNGETIFF, _IFREQ_FLAGS.pack(b"", 0))
    except OSError as exc:
        raise TunError(exc.errno, f"fd {fd} is not a TUN device: {exc.strerror}") from None
    raw_name, flags = _IFREQ_FLAGS.unpack(reply)
    if not flags & IFF_TUN or not flags & IFF_NO_PI:
        raise TunError(0, f"fd {fd} is not an IFF_TUN|IFF_NO_PI device (flags {flags:#x})")
    os.set_blocking(fd, False)
    os.set_inheritable(fd, False)
    name = raw_name.rstrip(b"\0").decode()
    set_mtu(name, mtu)
    return TunDevice(fd, name, mtu, bool(flags & IFF_VNET_HDR))


def _ifreq_ioctl(request: int, data: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        return fcntl.ioctl(sock.fileno(), request, data)


def set_mtu(name: str, mtu: int) -> None:
    try:
        _ifreq_ioctl(SIOCSIFMTU, _IFREQ_INT.pack(name.encode(), mtu))
    except OSError as exc:
        raise TunError(exc.errno, f"SIOCSIFMTU {name} {mtu}: {exc.strerror}") from None


def set_up(name: str) -> None:
    try:
        reply = _ifreq_ioctl(SIOCGIFFLAGS, _IFREQ_FLAGS.pack(name.encode(), 0))
        flags = _IFREQ_FLAGS.unpack(reply)[1]
        _ifreq_ioctl(SIOCSIFFLAGS, _IFREQ_FLAGS.pack(name.encode(), flags | IFF_UP))
    except OSError as exc:
        raise TunError(exc.errno, f"bringing {name} up: {exc.strerror}") from None
