"""ConfigOnlyDevice: a placeholder device that holds configuration and moves no packets.

It is what wgfastd runs until the data plane exists: the UAPI works fully (wg set/show/
setconf/syncconf/showconf, wg-quick), the TUN interface exists, but no UDP socket is bound,
no handshakes happen, packets read from the TUN are dropped and every counter stays zero.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections.abc import Callable

from .config import DeviceConfig
from .tun import TunDevice
from .uapi import ChangeSet, DeviceStatus

log = logging.getLogger(__name__)

_TUN_READ_SIZE = 65536
_TRANSIENT_READ_ERRORS = (errno.EAGAIN, errno.EINTR)


class ConfigOnlyDevice:
    """DeviceControl over a DeviceConfig; watches the TUN fd only to notice its deletion."""

    def __init__(self, tun: TunDevice, on_tun_closed: Callable[[str], None]) -> None:
        self.tun = tun
        self.config = DeviceConfig()
        self.dropped_packets = 0
        self._on_tun_closed = on_tun_closed
        self._reading = False

    # DeviceControl
    def get_snapshot(self) -> DeviceStatus:
        return self.config.status()

    def apply(self, changes: ChangeSet) -> None:
        new = self.config.apply(changes)  # raises UAPIError and changes nothing on bad input
        log.debug("configuration updated: %d peers", len(new.peers))
        self.config = new

    # TUN
    def start(self) -> None:
        asyncio.get_running_loop().add_reader(self.tun.fd, self._on_tun_readable)
        self._reading = True

    def stop(self) -> None:
        if self._reading:
            asyncio.get_running_loop().remove_reader(self.tun.fd)
            self._reading = False

    def _on_tun_readable(self) -> None:
        # Drain what is queued. No data plane yet: the packets are counted and dropped.
        for _ in range(256):
            try:
                packet = os.read(self.tun.fd, _TUN_READ_SIZE)
            except OSError as exc:
                if exc.errno in _TRANSIENT_READ_ERRORS:
                    return
                self.stop()
                self._on_tun_closed(f"TUN read failed ({exc.strerror}): interface removed")
                return
            if not packet:
                self.stop()
                self._on_tun_closed("TUN read returned end of file: interface removed")
                return
            self.dropped_packets += 1
