"""The real device: the configuration, the protocol core and the compiled data plane, wired
together on the asyncio loop (`DeviceControl` for the UAPI server).

Who does what:
- The data plane (wgfast._native.DataPlane, csrc/dataplane*.c) runs `run()` on its own thread
  with the GIL released: TUN <-> UDP, sealing, opening, replay, roaming, keypair rotation.
- This class, on the event loop, owns `DeviceState` (handshakes, cookies, timers). It reads the
  data plane's message queue when its eventfd is readable: handshake datagrams go through
  `DeviceState.receive`, "need handshake" events start one, "keypair confirmed" events promote
  the Python mirror of the keypair. Keypairs go down with `install_keypair`; the Python copy of
  the keys is then wiped (the mirror keeps indices and ages for the timers).
- Timers: `DeviceState.tick` runs at `next_deadline()`. The per-packet timer events (data sent /
  received) are not reported one by one: every ACTIVITY_POLL_INTERVAL the global packet counters
  are read, and only when they moved are the peers holding keypairs asked for their last
  send/receive times, which are fed to the timers with their own timestamps.

Up and down follow the link's IFF_UP (wgfast.link), as in wireguard-go: while down no socket
is bound and no data plane runs (configuration still applies); going up binds the sockets and
starts a data plane loaded with every peer, endpoint and allowed IP; going down ends every
session. The data plane's MTU is the link's MTU when it went up.

Decision: a listen-port change binds the new sockets first (a busy port fails the set and
changes nothing), then takes the device down and up over them, because the data plane takes its
sockets once, at creation. Peers, learnt endpoints and allowed IPs carry over; sessions do not
(the keys were wiped from Python), so the next packet starts a new handshake.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from wgfast import _native
from wgfast.daemon import offload
from wgfast.daemon.allowed_ips import sync_allowed_ips
from wgfast.daemon.config import DeviceConfig, PeerStats
from wgfast.daemon.counters import DataplaneTotals, keypair_gauges, uapi_counters
from wgfast.daemon.link import LinkState, LinkWatcher, follow_link, interface_index, read_link_state
from wgfast.daemon.tun import TunDevice
from wgfast.daemon.udp import UDPSockets
from wgfast.protocol.device_state import DeviceState, LoadTracker
from wgfast.protocol.keypair import live_keypairs
from wgfast.protocol.messages import (
    KEEPALIVE_TIMEOUT,
    REJECT_AFTER_TIME,
    REKEY_AFTER_TIME,
    REKEY_TIMEOUT,
)
from wgfast.protocol.outputs import (
    DropStaged,
    KeypairReady,
    KeysZeroed,
    Output,
    SendKeepalive,
    Transmit,
)
from wgfast.uapi import ERRNO_PORT_IN_USE, AllowedIP, ChangeSet, DeviceStatus, Endpoint, UAPIError

log = logging.getLogger(__name__)

ACTIVITY_POLL_INTERVAL = 0.25  # seconds; timer events lag the packets by at most this
CONTROL_QUEUE_CAPACITY = 1024  # WGF_DP_CONTROL_QUEUE: the load tracker's 1/8 is of this
CONTROL_BATCH = 256  # messages taken per eventfd wake-up before yielding to the loop
DATAPLANE_JOIN_TIMEOUT = 5.0
DATAPLANE_MTU_MIN, DATAPLANE_MTU_MAX = 576, 9000  # WGF_DP_MTU_MIN / WGF_DP_MTU_MAX
TUN_READ_BYTES = 65536
TUN_DRAIN_WHILE_DOWN = 256  # packets dropped per wake-up while the device is down
FOLLOW_LINK_TRIES, FOLLOW_LINK_INTERVAL = 40, 0.05  # a moving link shows up there within 2 s

Address = tuple[str, int]
NSEC_PER_SEC = 1_000_000_000


def dataplane_time_limits() -> dict[str, int]:
    """The protocol's times (test-scaled by WGFAST_TEST_TIME_SCALE, see wgfast.messages) as the
    data plane's time limits, so both planes age keypairs alike."""
    return {
        "rekey_after_time_ns": round(REKEY_AFTER_TIME * NSEC_PER_SEC),
        "reject_after_time_ns": round(REJECT_AFTER_TIME * NSEC_PER_SEC),
        "keepalive_timeout_ns": round(KEEPALIVE_TIMEOUT * NSEC_PER_SEC),
        "rekey_timeout_ns": round(REKEY_TIMEOUT * NSEC_PER_SEC),
    }


THREADS_ENV_VAR = "WGFAST_DATAPLANE_THREADS"


def dataplane_threads(environ: dict[str, str] | None = None) -> int:
    """Threads for the data plane: WGFAST_DATAPLANE_THREADS=1 runs both directions in one loop;
    2 (the default) gives receiving its own thread, so sealing and opening use two cores."""
    value = (os.environ if environ is None else environ).get(THREADS_ENV_VAR, "").strip()
    if not value:
        return 2
    if value not in ("1", "2"):
        raise ValueError(f"{THREADS_ENV_VAR} must be 1 or 2, not {value!r}")
    return int(value)


@dataclass
class _PeerSlot:
    """A configured peer as the data plane knows it, and what the timers were last told."""

    id: int
    public: bytes
    keyed: bool = False  # a keypair was installed since the last expiry: data can flow
    last_sent_ns: int = 0
    last_received_ns: int = 0
    last_data_received_ns: int = 0
    tx_packets: int = 0
    keepalives_requested: int = 0
    rx_base: int = 0  # bytes counted by data planes that have since stopped
    tx_base: int = 0


def _endpoint_address(endpoint: Endpoint | None) -> Address | None:
    if endpoint is None:
        return None
    host, port = endpoint.sockaddr()[:2]
    return (host, port)


def _dataplane_endpoint(endpoint: Endpoint) -> tuple[bytes, int]:
    """The endpoint for DataPlane.set_endpoint as (packed address, port): the skin builds the
    address with ipaddress.ip_address, which takes packed bytes as they are instead of parsing
    a string again. The zone is left out, as _endpoint_address leaves it out."""
    return (endpoint.address.packed, endpoint.port)


def _dataplane_prefix(prefix: AllowedIP) -> tuple[bytes, int]:
    """A prefix for add/remove_allowed_ip as (packed network address, length), which
    ipaddress.ip_network takes without formatting and parsing the network again."""
    return (prefix.network_address.packed, prefix.prefixlen)


class _Routes:
    """The data plane's allowed-IPs table seen through routing.PrefixTable."""

    def __init__(self, dataplane: _native.DataPlane) -> None:
        self.dataplane = dataplane

    def insert(self, prefix: AllowedIP, peer: int) -> None:
        self.dataplane.add_allowed_ip(peer, _dataplane_prefix(prefix))

    def remove(self, prefix: AllowedIP, peer: int) -> bool:
        try:
            self.dataplane.remove_allowed_ip(peer, _dataplane_prefix(prefix))
        except OSError:
            return False
        return True


class Interface:
    """DeviceControl over a TUN device, two UDP sockets and the data plane."""

    def __init__(self, tun: TunDevice, on_fatal: Callable[[str], None]) -> None:
        self.tun = tun
        self.config = DeviceConfig()
        self.state = DeviceState()
        self.load = LoadTracker(CONTROL_QUEUE_CAPACITY)
        self.sockets: UDPSockets | None = None
        self.dataplane: _native.DataPlane | None = None
        self.mtu = tun.mtu
        self._on_fatal = on_fatal
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._link: LinkWatcher | None = None
        self._watching_tun = False
        self._slots: dict[bytes, _PeerSlot] = {}
        self._dataplane_totals = DataplaneTotals()  # counters of data planes that have stopped
        self._by_id: dict[int, _PeerSlot] = {}
        self._next_id = 1
        self._tick_handle: asyncio.TimerHandle | None = None
        self._tick_when: float | None = None
        self._activity_handle: asyncio.TimerHandle | None = None
        self._last_counters: tuple[int, int] = (-1, -1)
        self._stopped = False
        self._state_private_key: bytes | None = None  # the key DeviceState was last given

    @property
    def is_up(self) -> bool:
        return self.dataplane is not None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Follow the link's up/down state from now on (needs a running loop)."""
        self._loop = asyncio.get_running_loop()
        try:
            self._link = LinkWatcher(interface_index(self.tun.name), self._on_link_change,
                                     self._on_link_gone)
            self._loop.add_reader(self._link.fileno(), self._link.on_readable)
        except OSError as exc:  # e.g. an adopted TUN whose name this namespace cannot see
            log.warning("cannot follow link state (%s); treating the device as up", exc)
            self._link = None
            self._go_up(self.tun.mtu)
            return
        link = read_link_state(self.tun.name)
        if link.up:
            self._go_up(link.mtu)
        else:
            self._watch_tun_while_down()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._link is not None and self._loop is not None:
            self._loop.remove_reader(self._link.fileno())
            self._link.close()
        self._go_down()
        self._unwatch_tun()
        for public in list(self.state.peers):
            self.state.remove_peer(public)

    def _on_link_change(self, link: LinkState) -> None:
        if self._stopped:
            return
        if link.up and self.is_up and link.mtu != self.mtu:
            log.info("MTU changed to %d: restarting the data plane", link.mtu)
            self._go_down()
            self._go_up(link.mtu)
        elif link.up and not self.is_up:
            self._go_up(link.mtu)
        elif not link.up and self.is_up:
            self._go_down()

    def _on_link_gone(self) -> None:
        """The link left the watched namespace. Deleted: the TUN fd fails and the daemon ends.
        Moved to another namespace: watch it there (the sockets stay here)."""
        if self._link is not None and self._loop is not None:
            self._loop.remove_reader(self._link.fileno())
            self._link.close()
            self._link = None
            self._follow_link(FOLLOW_LINK_TRIES)

    def _follow_link(self, tries: int) -> None:
        if self._stopped or self._link is not None or self._loop is None:
            return
        try:
            watcher, link = follow_link(self.tun.fd, self.tun.name, self._on_link_change,
                                        self._on_link_gone)
        except OSError as exc:  # gone for good (EBADFD), or not visible there yet
            if exc.errno != errno.EBADFD and tries > 1:
                self._loop.call_later(FOLLOW_LINK_INTERVAL, self._follow_link, tries - 1)
            else:
                log.info("link %s left its namespace and cannot be followed: %s",
                         self.tun.name, exc)
            return
        log.info("link %s now followed in its new network namespace", self.tun.name)
        self._link = watcher
        self._loop.add_reader(watcher.fileno(), watcher.on_readable)
        self._on_link_change(link)

    def _go_up(self, mtu: int, sockets: UDPSockets | None = None) -> None:
        """Bind the sockets (unless given), start the data plane and load every peer into it.
        A failure leaves the device down and is logged, as wireguard-go does on `up`."""
        assert self._loop is not None
        if self.is_up:
            return
        self.mtu = mtu
        if sockets is None:
            try:
                sockets = UDPSockets.bind(self.config.listen_port, self.config.fwmark)
            except OSError as exc:
                log.error("cannot bring the device up: UDP port %d: %s",
                          self.config.listen_port, exc)  # fmt: skip
                return
        self._unwatch_tun()  # the data plane reads the TUN from now on
        try:
            dataplane = _native.DataPlane(
                self.tun.fd, sockets.fileno4(), sockets.fileno6(),
                min(max(mtu, DATAPLANE_MTU_MIN), DATAPLANE_MTU_MAX),
                time_limits=dataplane_time_limits(),
            )  # fmt: skip
            # Offloads (issue 7): what WGFAST_OFFLOAD asks and the kernel grants.
            granted = dataplane.set_offloads(offload.dataplane_flags(self.tun.vnet_hdr))
            log.info("data plane offloads: %s", offload.describe(granted))
            dataplane.threads = dataplane_threads()
        except (OSError, ValueError) as exc:
            log.error("cannot bring the device up: data plane: %s", exc)
            sockets.close()
            self._watch_tun_while_down()
            return
        self.sockets, self.dataplane = sockets, dataplane
        outputs: list[Output] = []
        for public, slot in self._slots.items():
            dataplane.add_peer(slot.id)
            peer = self.state.peers.get(public)
            if peer is not None and peer.endpoint is not None:
                dataplane.set_endpoint(slot.id, peer.endpoint)
            if peer is not None and peer.timers.persistent_keepalive_interval > 0:
                outputs.append(SendKeepalive(public))
        sync_allowed_ips(_Routes(dataplane), {}, self._prefixes(self.config))
        self._loop.add_reader(dataplane.event_fd, self._on_control_readable)
        self._thread = threading.Thread(
            target=self._run_dataplane, args=(dataplane,), name="wgfast-dataplane", daemon=True
        )
        self._thread.start()
        self._last_counters = (-1, -1)
        self._activity_handle = self._loop.call_later(ACTIVITY_POLL_INTERVAL, self._poll_activity)
        log.info("device up: UDP port %d, MTU %d", sockets.port, mtu)
        self._carry_out(outputs, time.monotonic())

    def _go_down(self) -> None:
        """Stop the data plane, close the sockets, end every session (wireguard-go's Down)."""
        dataplane, thread = self.dataplane, self._thread
        if dataplane is None:
            return
        assert self._loop is not None
        for handle in (self._tick_handle, self._activity_handle):
            if handle is not None:
                handle.cancel()
        self._tick_handle = self._tick_when = self._activity_handle = None
        self._loop.remove_reader(dataplane.event_fd)
        dataplane.stop()
        if thread is not None:
            thread.join(DATAPLANE_JOIN_TIMEOUT)
        if thread is not None and thread.is_alive():  # never expected; freeing would crash it
            log.error("data plane thread did not stop; leaking it")
        else:
            for slot in self._slots.values():  # counters survive a down/up, as in wireguard-go
                info = dataplane.peer_info(slot.id)
                slot.rx_base += info["rx_bytes"]
                slot.tx_base += info["tx_bytes"]
            self._dataplane_totals.retire(dataplane.stats())
            dataplane.close()  # zeroes every key it held
        self.dataplane = self._thread = None
        if self.sockets is not None:
            self.sockets.close()
            self.sockets = None
        for public, slot in self._slots.items():
            peer = self.state.peers.get(public)
            if peer is not None:
                peer.zero_keys()
                peer.timers.stop()
                peer.last_sent_handshake = None  # up again is a fresh start
            self._reset_activity(slot)
            slot.last_sent_ns = slot.last_received_ns = slot.last_data_received_ns = 0
            slot.tx_packets = 0  # the next data plane counts from zero
        log.info("device down")
        if not self._stopped:
            self._watch_tun_while_down()

    def _run_dataplane(self, dataplane: _native.DataPlane) -> None:
        try:
            result = dataplane.run()
        except Exception as exc:  # report it like a failed TUN: the device cannot go on
            log.exception("data plane loop raised")
            result = -errno.EIO
            reason = f"data plane failed: {exc!r}"
        else:
            reason = f"TUN device failed ({os.strerror(-result)}): interface removed"
        if result != 0 and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._dataplane_failed, dataplane, reason)

    def _dataplane_failed(self, dataplane: _native.DataPlane, reason: str) -> None:
        if dataplane is self.dataplane and not self._stopped:
            self._on_fatal(reason)

    # While down nothing reads the TUN; watching its fd is how a deleted interface is noticed.
    def _watch_tun_while_down(self) -> None:
        if not self._watching_tun and self._loop is not None and not self._stopped:
            self._loop.add_reader(self.tun.fd, self._on_tun_readable_while_down)
            self._watching_tun = True

    def _unwatch_tun(self) -> None:
        if self._watching_tun and self._loop is not None:
            self._loop.remove_reader(self.tun.fd)
            self._watching_tun = False

    def _on_tun_readable_while_down(self) -> None:
        for _ in range(TUN_DRAIN_WHILE_DOWN):
            try:
                packet = os.read(self.tun.fd, TUN_READ_BYTES)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EINTR):
                    return
                self._unwatch_tun()
                self._on_fatal(f"TUN read failed ({exc.strerror}): interface removed")
                return
            if not packet:
                self._unwatch_tun()
                self._on_fatal("TUN read returned end of file: interface removed")
                return

    # --- DeviceControl --------------------------------------------------------------------------

    def get_snapshot(self) -> DeviceStatus:
        stats: dict[bytes, PeerStats] = {}
        endpoints: dict[bytes, Endpoint] = {}
        dataplane_keypairs = 0
        for public, slot in self._slots.items():
            info = self.dataplane.peer_info(slot.id) if self.dataplane is not None else None
            dataplane_keypairs += info["keypairs_live"] if info else 0
            peer = self.state.peers.get(public)
            stats[public] = PeerStats(
                last_handshake_time_ns=(peer.last_handshake_time_ns or 0) if peer else 0,
                rx_bytes=slot.rx_base + (info["rx_bytes"] if info else 0),
                tx_bytes=slot.tx_base + (info["tx_bytes"] if info else 0),
            )
            learnt = info["endpoint"] if info else (peer.endpoint if peer else None)
            if learnt is not None:
                endpoints[public] = Endpoint.parse(_format_address(learnt))
        status = self.config.status(stats)
        peers = tuple(
            dataclasses.replace(p, endpoint=endpoints[p.public_key])
            if p.public_key in endpoints
            else p
            for p in status.peers
        )
        port = self.sockets.port if self.sockets is not None else status.listen_port
        live = self.dataplane.stats() if self.dataplane is not None else None
        counters = uapi_counters(self._dataplane_totals.current(live), self.state.drops)
        counters += keypair_gauges(live_keypairs(), dataplane_keypairs)
        return dataclasses.replace(status, listen_port=port, peers=peers, counters=counters)

    def apply(self, changes: ChangeSet) -> None:
        old = self.config
        new = old.apply(changes)  # raises UAPIError and changes nothing on bad input
        new_sockets = None
        if self.sockets is not None and self._needs_rebind(old, new):
            try:
                new_sockets = UDPSockets.bind(new.listen_port, new.fwmark)
            except OSError as exc:
                raise UAPIError(
                    ERRNO_PORT_IN_USE, f"cannot listen on port {new.listen_port}: {exc}"
                ) from None
        elif self.sockets is not None and new.fwmark != self.sockets.fwmark:
            try:
                self.sockets.set_fwmark(new.fwmark)
            except OSError as exc:
                raise UAPIError(ERRNO_PORT_IN_USE, f"cannot set fwmark: {exc}") from None
        self.config = new
        now = time.monotonic()
        outputs, removed_ids = self._sync_state(old, new, now)
        if new_sockets is not None:
            # The data plane takes its sockets at creation: rebuild it over the new ones.
            self._go_down()
            self._go_up(self.mtu, new_sockets)
        elif self.dataplane is not None:
            outputs += self._sync_dataplane(old, new, removed_ids, now)
        if self.dataplane is not None:
            self._carry_out(outputs, now)
            self._schedule_tick()
        log.debug("configuration updated: %d peers", len(new.peers))

    def _needs_rebind(self, old: DeviceConfig, new: DeviceConfig) -> bool:
        assert self.sockets is not None
        return new.listen_port != old.listen_port and new.listen_port != self.sockets.port

    # --- configuration -> protocol core and data plane ------------------------------------------

    def _sync_state(
        self, old: DeviceConfig, new: DeviceConfig, now: float
    ) -> tuple[list[Output], list[int]]:
        """Bring DeviceState and the peer slots to `new`; returns the outputs to carry out once
        the data plane matches, and the ids of removed peers."""
        outputs: list[Output] = []
        if new.private_key != self._state_private_key:
            outputs += self.state.set_private_key(new.private_key)
            self._state_private_key = new.private_key
            for slot in self._slots.values():
                outputs.append(KeysZeroed(slot.public))  # the data plane forgets them too

        old_peers = {p.public_key: p for p in old.peers}
        new_peers = {p.public_key: p for p in new.peers}
        removed_ids = []
        for public in list(self._slots):
            if public not in new_peers:
                slot = self._slots.pop(public)
                del self._by_id[slot.id]
                self.state.remove_peer(public)
                removed_ids.append(slot.id)
        for public, peer_config in new_peers.items():
            slot = self._slots.get(public)
            before = old_peers.get(public)
            if before is peer_config and slot is not None and public in self.state.peers:
                continue  # shared by DeviceConfig.apply: unchanged, nothing to tell anyone
            if slot is None:
                slot = _PeerSlot(self._next_id, public)
                self._next_id += 1
                self._slots[public] = slot
                self._by_id[slot.id] = slot
                before = None
            peer = self.state.add_peer(public)
            if before is None or before.preshared_key != peer_config.preshared_key:
                peer.handshake.preshared_key = peer_config.preshared_key
            if peer_config.endpoint is not None and (
                before is None or before.endpoint != peer_config.endpoint
            ):
                peer.endpoint = _endpoint_address(peer_config.endpoint)
            interval = peer_config.persistent_keepalive_interval
            if before is None or before.persistent_keepalive_interval != interval:
                peer.timers.set_persistent_keepalive(float(interval), now)
                if interval > 0:  # as wireguard-go: a keepalive at once (a handshake if needed)
                    outputs.append(SendKeepalive(public))
        return outputs, removed_ids

    def _sync_dataplane(
        self, old: DeviceConfig, new: DeviceConfig, removed_ids: list[int], now: float
    ) -> list[Output]:
        """Bring the running data plane to `new`; returns handshakes the change made possible."""
        outputs: list[Output] = []
        dataplane = self.dataplane
        assert dataplane is not None
        for peer_id in removed_ids:
            dataplane.remove_peer(peer_id)  # its allowed IPs go with it
        old_peers = {p.public_key: p for p in old.peers}
        # DeviceConfig.apply shares the peers it left alone: only the others need work, and
        # only their allowed IPs can have changed (a prefix moving between peers changes both).
        changed = [p for p in new.peers if old_peers.get(p.public_key) is not p]
        old_prefixes: dict[int, frozenset[AllowedIP]] = {}
        new_prefixes: dict[int, frozenset[AllowedIP]] = {}
        for peer_config in changed:
            slot = self._slots[peer_config.public_key]
            before = old_peers.get(peer_config.public_key)
            if before is None:
                dataplane.add_peer(slot.id)
            else:
                old_prefixes[slot.id] = frozenset(before.allowed_ips)
            new_prefixes[slot.id] = frozenset(peer_config.allowed_ips)
            if peer_config.endpoint is not None and (
                before is None or before.endpoint != peer_config.endpoint
            ):
                dataplane.set_endpoint(slot.id, _dataplane_endpoint(peer_config.endpoint))
                # A peer added just now has no staged packets: it has no allowed IPs yet.
                if before is not None:
                    info = dataplane.peer_info(slot.id)
                    if info["staged"] and not info["has_current"]:
                        # Packets asked for a handshake while there was nowhere to send it.
                        outputs += self.state.initiate(peer_config.public_key, now)
        # Removed peers took their prefixes along; compare the changed peers that remain.
        sync_allowed_ips(_Routes(dataplane), old_prefixes, new_prefixes)
        return outputs

    def _prefixes(self, config: DeviceConfig) -> dict[int, frozenset[AllowedIP]]:
        return {
            self._slots[p.public_key].id: frozenset(p.allowed_ips)
            for p in config.peers
            if p.public_key in self._slots
        }

    # --- outputs of the protocol core -----------------------------------------------------------

    def _carry_out(self, outputs: list[Output], now: float) -> None:
        dataplane = self.dataplane
        if dataplane is None or self.sockets is None:
            return  # down: nothing can be sent, and going up starts every session afresh
        for out in outputs:
            if isinstance(out, Transmit):
                self.sockets.send(out.destination, out.data)
                continue
            slot = self._slots.get(out.peer)
            if slot is None:
                continue
            if isinstance(out, KeypairReady):
                self._install(slot, out)
            elif isinstance(out, SendKeepalive):
                slot.keepalives_requested += 1
                dataplane.send_keepalive(slot.id)
            elif isinstance(out, DropStaged):
                dropped = dataplane.drop_staged(slot.id)
                log.debug("handshake gave up: dropped %d staged packets", dropped)
            elif isinstance(out, KeysZeroed):
                dataplane.expire_keypairs(slot.id)
                self._reset_activity(slot)
            # KeypairPromoted / KeypairRetired: the data plane rotates its own copies by the
            # same rules; RouteData never occurs (transport data never reaches Python).

    def _install(self, slot: _PeerSlot, out: KeypairReady) -> None:
        assert self.dataplane is not None
        peer = self.state.peers.get(out.peer)
        if peer is not None and peer.endpoint is not None:
            self.dataplane.set_endpoint(slot.id, peer.endpoint)  # where the handshake came from
        kp = out.keypair
        try:
            self.dataplane.install_keypair(
                slot.id, kp.local_index, kp.remote_index, kp.send_key, kp.receive_key,
                kp.is_initiator, int(kp.created * 1e9),
            )  # fmt: skip
        except OSError as exc:
            log.error("installing a keypair failed: %s", exc)
            return
        finally:
            # The data plane holds the keys now; the mirror keeps indices, age and validity.
            kp.send_key[:] = bytes(len(kp.send_key))
            kp.receive_key[:] = bytes(len(kp.receive_key))
        slot.keyed = True

    # --- messages up from the data plane --------------------------------------------------------

    def _on_control_readable(self) -> None:
        dataplane = self.dataplane
        if dataplane is None:
            return
        messages = dataplane.poll(CONTROL_BATCH)
        now = time.monotonic()
        waiting = len(messages)
        for kind, peer_id, data, source in messages:
            waiting -= 1
            try:
                outputs = self._handle_message(kind, peer_id, data, source, now, waiting)
                self._carry_out(outputs, now)
            except Exception:  # one bad message must not stop the device
                log.exception("internal error handling a data-plane message")
        self._schedule_tick()

    def _handle_message(
        self, kind: int, peer_id: int, data: bytes, source: Address | None, now: float,
        waiting: int,
    ) -> list[Output]:  # fmt: skip
        if kind == _native.DP_MSG_HANDSHAKE:
            if source is None:
                return []
            under_load = self.load.under_load(waiting + 1, now)
            return self.state.receive(data, source, now, under_load)
        slot = self._by_id.get(peer_id)
        if slot is None:
            return []
        if kind == _native.DP_MSG_NEED_HANDSHAKE:
            outputs = self.state.initiate(slot.public, now)
            if not outputs:
                self._retry_initiation_later(slot)
            return outputs
        if kind == _native.DP_MSG_KEYPAIR_CONFIRMED:
            peer = self.state.peers.get(slot.public)
            if peer is None or peer.keypairs.next is None:
                return []
            source = self.dataplane.get_endpoint(slot.id) if self.dataplane else None
            return self.state.on_data_received(
                slot.public, peer.keypairs.next.local_index, source or peer.endpoint, now,
                is_keepalive=True,
            )  # fmt: skip
        return []

    def _retry_initiation_later(self, slot: _PeerSlot) -> None:
        """The data plane asks once and then waits for a keypair. An initiation refused by the
        once-per-REKEY_TIMEOUT rule with no retransmission pending would leave it waiting for
        good, so ask again when the rule allows."""
        peer = self.state.peers.get(slot.public)
        if (peer is None or self._loop is None or peer.last_sent_handshake is None
                or peer.timers.deadlines["retransmit_handshake"] is not None):
            return
        when = peer.last_sent_handshake + REKEY_TIMEOUT
        self._loop.call_at(when, self._retry_initiation, slot.public, self.dataplane)

    def _retry_initiation(self, public: bytes, dataplane: _native.DataPlane | None) -> None:
        slot = self._slots.get(public)
        if slot is None or dataplane is None or dataplane is not self.dataplane:
            return
        info = dataplane.peer_info(slot.id)
        if info["has_current"] and not info["staged"]:
            return  # a handshake completed meanwhile
        now = time.monotonic()
        self._carry_out(self.state.initiate(public, now), now)
        self._schedule_tick()

    # --- timers ---------------------------------------------------------------------------------

    def _schedule_tick(self) -> None:
        if self._stopped or self._loop is None or not self.is_up:
            return
        deadline = self.state.next_deadline()
        if deadline is None:
            return  # a pending earlier tick is harmless; nothing new to arm
        if self._tick_handle is not None and self._tick_when is not None:
            if self._tick_when <= deadline and not self._tick_handle.cancelled():
                return
            self._tick_handle.cancel()
        self._tick_when = deadline
        self._tick_handle = self._loop.call_at(deadline, self._on_tick)

    def _on_tick(self) -> None:
        self._tick_handle = self._tick_when = None
        now = time.monotonic()
        try:
            self._carry_out(self.state.tick(now), now)
        except Exception:
            log.exception("internal error running timers")
        self._schedule_tick()

    def _poll_activity(self) -> None:
        """Feed the timers what the data plane did since the last poll."""
        assert self._loop is not None
        self._activity_handle = self._loop.call_later(ACTIVITY_POLL_INTERVAL, self._poll_activity)
        dataplane = self.dataplane
        if dataplane is None:
            return
        stats = dataplane.stats()
        counters = (stats["tx_packets"], stats["rx_packets"])
        if counters == self._last_counters:
            return
        self._last_counters = counters
        now = time.monotonic()
        try:
            for slot in self._slots.values():
                if slot.keyed:
                    self._carry_out(self._feed_timers(slot, dataplane.peer_info(slot.id)), now)
        except Exception:
            log.exception("internal error feeding the timers")
        self._schedule_tick()

    def _feed_timers(self, slot: _PeerSlot, info: dict) -> list[Output]:
        events: list[tuple[int, bool, bool]] = []  # (time, is_send, is_keepalive)
        if info["last_sent_ns"] > slot.last_sent_ns:
            sent = info["tx_packets"] - slot.tx_packets
            # Keepalives are only ever sent at our request: if no more packets went out than
            # keepalives were asked for, nothing but keepalives went out.
            events.append((info["last_sent_ns"], True, sent <= slot.keepalives_requested))
            slot.last_sent_ns = info["last_sent_ns"]
            slot.tx_packets = info["tx_packets"]
            slot.keepalives_requested = 0
        if info["last_received_ns"] > slot.last_received_ns:
            data = info["last_data_received_ns"] > slot.last_data_received_ns
            events.append((info["last_received_ns"], False, not data))
            slot.last_received_ns = info["last_received_ns"]
            slot.last_data_received_ns = info["last_data_received_ns"]
        peer = self.state.peers.get(slot.public)
        if not events or peer is None:
            return []
        if info["endpoint"] is not None:
            peer.endpoint = info["endpoint"]  # roaming: handshakes follow the data
        outputs: list[Output] = []
        for at_ns, is_send, is_keepalive in sorted(events):
            at = at_ns / 1e9
            if is_send:
                outputs += self.state.on_data_sent(slot.public, at, is_keepalive)
                continue
            keypair = peer.keypairs.current or peer.keypairs.next
            if keypair is not None:
                outputs += self.state.on_data_received(
                    slot.public, keypair.local_index, peer.endpoint or info["endpoint"], at,
                    is_keepalive,
                )  # fmt: skip
        return outputs

    def _reset_activity(self, slot: _PeerSlot) -> None:
        slot.keyed = False
        slot.keepalives_requested = 0


def _format_address(address: Address) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
