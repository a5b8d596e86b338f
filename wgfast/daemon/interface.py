"""One interface of wgfastd: the configuration, the protocol core and the compiled data plane,
wired together on the asyncio loop (`DeviceControl` for the UAPI server).

Who owns what:
- The data plane (wgfast._native.DataPlane, csrc/dataplane*.c) exists for the interface's whole
  life and runs `run()` on its own thread with the GIL released: TUN <-> UDP, sealing, opening,
  replay, roaming, and the transport keypairs (install, rotation, confirmation, expiry,
  zeroing) with the per-packet rekey decisions. It owns the receiver-index space too, and the
  DoS defence in front of the handshakes: mac1, "under load", cookie replies and the per-source
  rate limit are decided in C before a datagram is queued for Python.
- This class, on the event loop, owns `DeviceState` (handshakes, the cookies we are sent,
  timers). When the data
  plane's event fd is readable it takes what waits there: handshake datagrams go through
  `DeviceState.receive`; peer events (activity, handshake wanted, keypair confirmed, keys
  zeroed, endpoint changed) go to the `DeviceState.on_*` handlers. Keypairs go down with
  `install_keypair` and the Python copy is wiped. Nothing polls: an idle interface with no timer
  due does not wake up.
- Timers: `DeviceState.tick` runs at `next_deadline()`.

Up and down follow the link's IFF_UP (wgfast.daemon.link), as in wireguard-go: while down no
socket is bound (configuration still applies); going up binds the sockets and hands them to the
data plane; going down takes them away and ends every session. A listen-port or fwmark change
swaps the sockets under the running data plane and an MTU change resizes its buffers: both keep
every session.

Every `set` is applied whole or not at all: what can fail (binding a new port) is done first;
then the running state is brought to the new configuration step by step, each step recorded as
it succeeds (`_runtime`), so that an unexpected failure can be rolled back to the old
configuration from what really happened. If even that fails, the interface cannot be trusted:
`on_fatal` ends the daemon.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from wgfast import _native
from wgfast.daemon import events as ev
from wgfast.daemon import offload
from wgfast.daemon.allowed_ips import AllowedIPs
from wgfast.daemon.config import DeviceConfig, PeerConfig, PeerStats
from wgfast.daemon.counters import (
    BIND_ERROR,
    EVENT_SEQUENCE,
    flatten_dataplane_stats,
    leak_gauges,
    uapi_counters,
)
from wgfast.daemon.link import LinkState, LinkWatcher, follow_link, interface_index, read_link_state
from wgfast.daemon.tun import TunDevice
from wgfast.daemon.udp import UDPSockets
from wgfast.protocol.device_state import DeviceState
from wgfast.protocol.messages import (
    KEEPALIVE_TIMEOUT,
    REJECT_AFTER_TIME,
    REKEY_AFTER_TIME,
    REKEY_TIMEOUT,
    TEST_TIME_SCALE,
)
from wgfast.protocol.outputs import (
    DropStaged,
    ExpireKeypairs,
    InstallKeypair,
    Output,
    SendKeepalive,
    Transmit,
    ZeroKeysLater,
)
from wgfast.protocol.timers import Activity
from wgfast.uapi import (
    ERRNO_PORT_IN_USE,
    AllowedIP,
    ChangeSet,
    DeviceStatus,
    Endpoint,
    UAPIError,
)

log = logging.getLogger(__name__)

HANDSHAKES_PER_WAKEUP = 256  # datagrams taken per wake-up before yielding to the loop
PEER_EVENTS_PER_WAKEUP = 1024
ACTIVITY_REPORT = 0.1 * TEST_TIME_SCALE  # how late the timers may hear of traffic, seconds
DATAPLANE_JOIN_TIMEOUT = 5.0
FOLLOW_LINK_TRIES, FOLLOW_LINK_INTERVAL = 40, 0.05  # a moving link shows up there within 2 s

Address = tuple[str, int]
NSEC_PER_SEC = 1_000_000_000


def dataplane_time_limits() -> dict[str, int]:
    """The protocol's times (test-scaled by WGFAST_TEST_TIME_SCALE, see
    wgfast.protocol.messages) as the data plane's time limits, so both planes agree."""
    return {
        "rekey_after_time_ns": round(REKEY_AFTER_TIME * NSEC_PER_SEC),
        "reject_after_time_ns": round(REJECT_AFTER_TIME * NSEC_PER_SEC),
        "keepalive_timeout_ns": round(KEEPALIVE_TIMEOUT * NSEC_PER_SEC),
        "rekey_timeout_ns": round(REKEY_TIMEOUT * NSEC_PER_SEC),
        "activity_report_ns": round(ACTIVITY_REPORT * NSEC_PER_SEC),
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


def dataplane_mtu(mtu: int) -> int:
    """The link's MTU as the data plane can take it."""
    return min(max(mtu, _native.DP_MTU_MIN), _native.DP_MTU_MAX)


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


def _activity(times: tuple[int, int, int, int, int]) -> Activity:
    return Activity(*(t / NSEC_PER_SEC if t else None for t in times))


def _format_address(address: Address) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Routes:
    """The data plane's allowed-IPs table seen through allowed_ips.PrefixTable."""

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


class _DataplaneIndexSpace:
    """wgfast.protocol.index_space.IndexSpace over the data plane, which owns the indices."""

    def __init__(self, interface: Interface) -> None:
        self._interface = interface

    def allocate(self, peer: bytes) -> int:
        return self._interface.dataplane.begin_handshake(self._interface.peer_ids[peer])

    def release(self, peer: bytes) -> None:
        peer_id = self._interface.peer_ids.get(peer)
        if peer_id is not None:
            self._interface.dataplane.end_handshake(peer_id)

    def settle(self, peer: bytes) -> None:
        """Nothing to do: installing the keypair turns the handshake's index into its own."""

    def owner(self, index: int) -> bytes | None:
        return self._interface.peer_publics.get(self._interface.dataplane.index_owner(index))


@dataclass
class _Runtime:
    """What the running state (protocol core and data plane) reflects now, recorded step by
    step as each succeeds: the truth a failed set is rolled back from."""

    allowed_ips: AllowedIPs
    private_key: bytes | None = None
    peers: dict[bytes, PeerConfig] = dataclasses.field(default_factory=dict)


class Interface:
    """DeviceControl over a TUN device, UDP sockets and the data plane."""

    def __init__(self, tun: TunDevice, on_gone: Callable[[str], None],
                 on_fatal: Callable[[str], None]) -> None:
        """on_gone: the interface was deleted (the daemon's normal end); on_fatal: the interface
        cannot be trusted any more (the daemon ends with an error)."""
        self.tun = tun
        self.config = DeviceConfig()
        self._on_gone = on_gone
        self._on_fatal = on_fatal
        self.dataplane = _native.DataPlane(tun.fd, mtu=dataplane_mtu(tun.mtu),
                                           time_limits=dataplane_time_limits())
        # Offloads: what WGFAST_OFFLOAD asks (the kernel may refuse some: logged once up). A
        # vnet_hdr that does not match the fd is refused (ValueError): nothing is left behind.
        try:
            self.dataplane.set_offloads(offload.dataplane_flags(tun.vnet_hdr))
        except BaseException:
            self.dataplane.close()
            raise
        self.dataplane.threads = dataplane_threads()
        self.peer_ids: dict[bytes, int] = {}
        self.peer_publics: dict[int, bytes] = {}
        self.state = DeviceState(index=_DataplaneIndexSpace(self))
        self.sockets: UDPSockets | None = None
        self._runtime = _Runtime(AllowedIPs(_Routes(self.dataplane)))
        self._next_id = 1
        # The handshake message being handled: where it came from and the local address it came
        # to (host, ifindex), so that what answers it leaves from that address.
        self._received_from: Address | None = None
        self._received_at: tuple[str, int] | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._link: LinkWatcher | None = None
        self._tick_handle: asyncio.TimerHandle | None = None
        self._tick_when: float | None = None
        self._stopped = False
        self._link_up = False
        self._bind_error: OSError | None = None  # why the sockets could not be bound at up
        # What subscribers on the UAPI socket hear (events=1); the protocol core knows nothing
        # of it: the calls below publish what the core's outputs and the data plane report.
        self.events = ev.EventBus(self._drop_counts)

    @property
    def is_up(self) -> bool:
        return self.sockets is not None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Run the data plane and follow the link's up/down state from now on (needs a running
        loop)."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.dataplane.event_fd, self._on_events)
        self._thread = threading.Thread(target=self._run_dataplane, name="wgfast-dataplane",
                                        daemon=True)
        self._thread.start()
        try:
            self._link = LinkWatcher(interface_index(self.tun.name), self._on_link_change,
                                     self._on_link_gone)
            self._loop.add_reader(self._link.fileno(), self._link.on_readable)
        except OSError as exc:  # e.g. an adopted TUN whose name this namespace cannot see
            log.warning("cannot follow link state (%s); treating the device as up", exc)
            self._link = None
            self._on_link_change(LinkState(True, self.tun.mtu))
            return
        self._on_link_change(read_link_state(self.tun.name))

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._loop is not None:
            if self._link is not None:
                self._loop.remove_reader(self._link.fileno())
                self._link.close()
            self._loop.remove_reader(self.dataplane.event_fd)
            if self._tick_handle is not None:
                self._tick_handle.cancel()
        for public in list(self.state.peers):
            self.state.remove_peer(public)  # handshakes end while their indices exist
        self.dataplane.stop()
        if self._thread is not None:
            self._thread.join(DATAPLANE_JOIN_TIMEOUT)
        if self._thread is not None and self._thread.is_alive():  # freeing would crash it
            log.error("data plane thread did not stop; leaking it")
        else:
            self.dataplane.close()  # zeroes every key it held
        if self.sockets is not None:
            self.sockets.close()
            self.sockets = None

    def _run_dataplane(self) -> None:
        try:
            result = self.dataplane.run()
        except Exception as exc:  # a bug: the device cannot go on
            log.exception("data plane loop raised")
            result, reason, ended = -errno.EIO, f"data plane failed: {exc!r}", self._on_fatal
        else:
            reason = f"TUN device failed ({os.strerror(-result)}): interface removed"
            ended = self._on_gone
        if result != 0 and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._dataplane_ended, ended, reason)

    def _dataplane_ended(self, ended: Callable[[str], None], reason: str) -> None:
        if not self._stopped:
            ended(reason)

    def _on_link_change(self, link: LinkState) -> None:
        if self._stopped:
            return
        mtu = dataplane_mtu(link.mtu)
        if mtu != self.dataplane.mtu:
            self.dataplane.set_mtu(mtu)  # sessions and staged packets stay
            log.info("MTU %d", link.mtu)
        self._link_up = link.up
        if link.up and not self.is_up:
            self._go_up()
        elif not link.up:
            self._bind_error = None
            if self.is_up:
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

    def _go_up(self) -> None:
        """Bind the sockets and hand them to the data plane. A failure leaves the device
        without sockets and is logged at error level, whoever brought the link up (wireguard-go
        does the same on `up`); get=1 then reports no port and the reason (wgfast_bind_error),
        and a set with a port that binds brings it up."""
        try:
            sockets = UDPSockets.bind(self.config.listen_port, self.config.fwmark)
        except OSError as exc:
            self._bind_error = exc
            log.error("cannot bring the device up: UDP port %d: %s", self.config.listen_port,
                      exc.strerror or exc)
            return
        self._attach(sockets)

    def _attach(self, sockets: UDPSockets) -> None:
        """The device is up on these sockets."""
        self._bind_error = None
        self.dataplane.set_sockets(sockets.fileno4(), sockets.fileno6())
        self.sockets = sockets
        log.info("device up: UDP port %d", sockets.port)
        log.info("data plane offloads: %s", offload.describe(self.dataplane.offloads))
        # As wireguard-go on up: peers with a persistent keepalive send one (or a handshake).
        now = time.monotonic()
        self._carry_out([SendKeepalive(p.public) for p in self.state.peers.values()
                         if p.timers.persistent_keepalive_interval > 0], now)
        self._schedule_tick()

    def _go_down(self) -> None:
        """Take the sockets away and end every session (wireguard-go's Down); peers,
        endpoints, allowed IPs and counters stay."""
        assert self.sockets is not None
        self.dataplane.set_sockets(-1, -1)
        self.sockets.close()
        self.sockets = None
        for public, peer in self.state.peers.items():
            peer_id = self.peer_ids[public]
            peer.reset()
            self.dataplane.expire_keypairs(peer_id)
            self.dataplane.drop_staged(peer_id)
        log.info("device down")

    # --- DeviceControl --------------------------------------------------------------------------

    def get_snapshot(self) -> DeviceStatus:
        stats: dict[bytes, PeerStats] = {}
        endpoints: dict[bytes, Endpoint] = {}
        dataplane_keypairs = 0
        for public, peer_id in self.peer_ids.items():
            info = self.dataplane.peer_info(peer_id)
            dataplane_keypairs += info["keypairs_live"]
            peer = self.state.peers.get(public)
            stats[public] = PeerStats(
                last_handshake_time_ns=(peer.last_handshake_time_ns or 0) if peer else 0,
                rx_bytes=info["rx_bytes"],
                tx_bytes=info["tx_bytes"],
            )
            if info["endpoint"] is not None:  # learnt by roaming, or configured
                endpoints[public] = Endpoint.parse(_format_address(info["endpoint"]))
        status = self.config.status(stats)
        peers = tuple(
            dataclasses.replace(p, endpoint=endpoints[p.public_key])
            if p.public_key in endpoints
            else p
            for p in status.peers
        )
        port = self.sockets.port if self.sockets is not None else status.listen_port
        counters = uapi_counters(flatten_dataplane_stats(self.dataplane.stats()),
                                 self.state.drops)
        if self._link_up and self.sockets is None:  # up, yet nothing listens: claim no port
            port = 0
            if self._bind_error is not None:
                counters += ((BIND_ERROR, self._bind_error.errno or errno.EIO),)
        handshakes = sum(p.handshake.local_index is not None for p in self.state.peers.values())
        counters += leak_gauges(handshakes, dataplane_keypairs)
        if self.events.last_sequence:  # absent means 0, like the counters
            counters += ((EVENT_SEQUENCE, self.events.last_sequence),)
        return dataclasses.replace(status, listen_port=port, peers=peers, counters=counters)

    def apply(self, changes: ChangeSet) -> None:
        old = self.config
        new = old.apply(changes)  # raises UAPIError and changes nothing on bad input
        new_sockets = self._prepare_sockets(old, new)  # raises UAPIError, changes nothing
        now = time.monotonic()
        outputs: list[Output] = []
        try:
            outputs = self._sync(new, changes.replace_peers, now)
            if new_sockets is not None and self.sockets is None:
                sockets, new_sockets = new_sockets, None
                self.config = new  # the sockets' port and fwmark are the new ones
                self._attach(sockets)
            elif new_sockets is not None:
                self._swap_sockets(new_sockets)
                new_sockets = None
            elif self.sockets is not None and new.fwmark != self.sockets.fwmark:
                self.sockets.set_fwmark(new.fwmark)
        except Exception as exc:
            if new_sockets is not None:
                new_sockets.close()
            self._roll_back(old, now)
            if isinstance(exc, OSError):
                raise UAPIError(-(exc.errno or errno.EIO), f"cannot apply: {exc}") from None
            raise
        self.config = new
        self._carry_out(outputs, now)
        self._schedule_tick()
        log.debug("configuration updated: %d peers", len(new.peers))

    def _prepare_sockets(self, old: DeviceConfig, new: DeviceConfig) -> UDPSockets | None:
        """New sockets for a new listen port while up (or while the link is up but the old
        port could not be bound), or None when the port stays."""
        if new.listen_port == old.listen_port:
            return None
        if self.sockets is None and not self._link_up:
            return None  # bound when the link comes up
        if self.sockets is not None and new.listen_port == self.sockets.port:
            return None  # port 0 had picked this very one
        try:
            return UDPSockets.bind(new.listen_port, new.fwmark)
        except OSError as exc:
            raise UAPIError(ERRNO_PORT_IN_USE,
                            f"cannot listen on port {new.listen_port}: {exc}") from None

    def _swap_sockets(self, sockets: UDPSockets) -> None:
        """The data plane moves to the new sockets and keeps every session."""
        assert self.sockets is not None
        self.dataplane.set_sockets(sockets.fileno4(), sockets.fileno6())
        old, self.sockets = self.sockets, sockets
        old.close()
        log.info("listening on UDP port %d", sockets.port)

    def _roll_back(self, old: DeviceConfig, now: float) -> None:
        log.exception("applying a configuration failed; restoring the previous one")
        try:
            self._carry_out(self._sync(old, False, now), now)
        except Exception:
            log.exception("cannot restore the previous configuration")
            self._on_fatal("the interface's state could not be made consistent after a failed "
                           "configuration change")

    # --- configuration -> protocol core and data plane ------------------------------------------

    def _sync(self, target: DeviceConfig, replace_peers: bool, now: float) -> list[Output]:
        """Bring the protocol core and the data plane from what `_runtime` records to
        `target`, recording every step that succeeded. Returns the outputs to carry out."""
        rt = self._runtime
        outputs: list[Output] = []
        if target.private_key != rt.private_key:
            outputs += self.state.set_private_key(target.private_key)  # sessions end
            # The data plane checks mac1 (and makes cookie replies) with our public key.
            self.dataplane.set_identity(self.state.public_key)
            rt.private_key = target.private_key
        wanted = {p.public_key: p for p in target.peers}
        # replace_peers removes every peer first (wireguard-go and the kernel do): those named
        # again come back as new peers, without their sessions and counters.
        leaving = [p for p in rt.peers if replace_peers or p not in wanted]
        for public in leaving if replace_peers else ():
            self._remove_peer(public)
        for public, config in wanted.items():
            before = rt.peers.get(public)
            if before is not config:  # DeviceConfig.apply shares the peers it left alone
                outputs += self._update_peer(before, config, now)
        # Otherwise removals come last: what can fail (adding) has been done, so that a set
        # that fails and is rolled back has not ended the sessions of peers it removed.
        for public in leaving if not replace_peers else ():
            self._remove_peer(public)
        return outputs

    def _remove_peer(self, public: bytes) -> None:
        rt = self._runtime
        self.state.remove_peer(public)  # frees its handshake's index while the peer exists
        peer_id = self.peer_ids.pop(public)
        del self.peer_publics[peer_id]
        self.dataplane.remove_peer(peer_id)  # its keys, staged packets and allowed IPs go
        rt.allowed_ips.forget(peer_id)
        del rt.peers[public]
        self._publish(ev.PEER_REMOVED, public)

    def _update_peer(self, before: PeerConfig | None, config: PeerConfig,
                     now: float) -> list[Output]:
        rt = self._runtime
        public = config.public_key
        outputs: list[Output] = []
        if before is None:
            peer_id = self._next_id
            self.dataplane.add_peer(peer_id)
            self._next_id += 1
            self.peer_ids[public] = peer_id
            self.peer_publics[peer_id] = public
            rt.peers[public] = before = PeerConfig(public)
            self._publish(ev.PEER_ADDED, public)
        peer_id = self.peer_ids[public]
        peer = self.state.add_peer(public)
        if before.preshared_key != config.preshared_key:
            peer.handshake.preshared_key = config.preshared_key
        if config.endpoint is not None and before.endpoint != config.endpoint:
            peer.endpoint = _endpoint_address(config.endpoint)
            self.dataplane.set_endpoint(peer_id, _dataplane_endpoint(config.endpoint))
        interval = config.persistent_keepalive_interval
        if before.persistent_keepalive_interval != interval:
            peer.timers.set_persistent_keepalive(float(interval), now)
            if interval > 0:  # as wireguard-go: a keepalive at once (a handshake if needed)
                outputs.append(SendKeepalive(public))
        rt.allowed_ips.set(peer_id, config.allowed_ips)  # writes only what changed
        rt.peers[public] = config
        return outputs

    # --- outputs of the protocol core -----------------------------------------------------------

    def _carry_out(self, outputs: Iterable[Output], now: float) -> None:
        for out in outputs:
            if isinstance(out, Transmit):
                # Down: the handshake timers retry once up. A peer's handshake message counts in
                # its tx bytes once sent (cookie replies have no peer), as in the kernel.
                if self.sockets is not None and self._transmit(out) and out.peer is not None:
                    self._count_handshake(out.peer, tx=len(out.data))
                continue
            peer_id = self.peer_ids.get(out.peer)
            if peer_id is None:
                continue
            if isinstance(out, InstallKeypair):
                self._install(peer_id, out)
            elif isinstance(out, SendKeepalive) and out.confirms_session:
                self.dataplane.confirm_session(peer_id)
            elif isinstance(out, SendKeepalive):
                self.dataplane.send_keepalive(peer_id)
            elif isinstance(out, DropStaged):
                log.debug("handshake gave up: dropped %d staged packets",
                          self.dataplane.drop_staged(peer_id))
            elif isinstance(out, ZeroKeysLater):
                self.dataplane.expire_later(peer_id)
            elif isinstance(out, ExpireKeypairs):
                self.dataplane.expire_keypairs(peer_id)

    def _count_handshake(self, public: bytes, rx: int = 0, tx: int = 0) -> None:
        """Handshake messages count in the peer's transfer counters, which the data plane keeps
        (the kernel and wireguard-go count every message of a peer but cookie replies)."""
        peer_id = self.peer_ids.get(public)
        if peer_id is not None:
            self.dataplane.count_bytes(peer_id, rx, tx)

    def _local_source(self, destination: Address) -> tuple[str, int] | None:
        """The local address the message being handled came to, if it came from destination
        (an answer to it leaves from there, as the kernel's endpoint keeps its source)."""
        return self._received_at if destination == self._received_from else None

    def _transmit(self, out: Transmit) -> bool:
        """Sends a handshake message through the data plane, which knows the peer's source
        address (learnt from its data) and falls back to the route's when it is gone; whether
        it went."""
        peer_id = self.peer_ids.get(out.peer, 0) if out.peer is not None else 0
        try:
            self.dataplane.send_datagram(peer_id, out.destination, out.data,
                                         self._local_source(out.destination))
        except (OSError, ValueError) as exc:  # no route, no socket: the handshake timers retry
            log.debug("sending %d bytes to %s failed: %s", len(out.data), out.destination, exc)
            return False
        return True

    def _install(self, peer_id: int, out: InstallKeypair) -> None:
        peer = self.state.peers.get(out.peer)
        try:
            if peer is not None and peer.endpoint is not None:
                # Where the handshake was, and the address of ours it came to.
                self.dataplane.set_endpoint(peer_id, peer.endpoint,
                                            self._local_source(peer.endpoint))
            self.dataplane.install_keypair(
                peer_id, out.local_index, out.remote_index, out.send_key, out.receive_key,
                out.is_initiator, round(out.created * NSEC_PER_SEC),
            )  # fmt: skip
            self._publish(ev.HANDSHAKE_COMPLETED, out.peer,
                          ("initiator", "true" if out.is_initiator else "false"))
        except OSError as exc:
            log.error("installing a keypair failed: %s", exc)
        finally:
            out.wipe()  # the data plane holds the keys now

    # --- what the data plane has to say ---------------------------------------------------------

    def _on_events(self) -> None:
        try:
            handshakes, peer_events = self.dataplane.take_events(HANDSHAKES_PER_WAKEUP,
                                                                 PEER_EVENTS_PER_WAKEUP,
                                                                 with_local=True)
        except ValueError:  # closed under us while stopping
            return
        now = time.monotonic()
        # The reports first: they describe the data plane before the handshake messages taken
        # with them are handled. A "handshake wanted" handled after a response that installs a
        # keypair would be stale and start a second handshake.
        for event in peer_events:
            try:
                self._carry_out(self._on_peer_event(event, now), now)
            except Exception:
                log.exception("internal error handling a data-plane event")
        # The data plane admitted these (mac1, cookies and the rate limit under load): each one
        # is worth the Noise step.
        for data, source, local in handshakes:
            if source is None:
                continue
            self._received_from, self._received_at = source, local
            try:
                outputs = self.state.receive(data, source, now)
                if self.state.received_from is not None:
                    self._count_handshake(self.state.received_from, rx=len(data))
                self._carry_out(outputs, now)
            except Exception:  # one bad message must not stop the device
                log.exception("internal error handling a handshake message")
            finally:
                self._received_from = self._received_at = None
        self._schedule_tick()  # what was left beyond the limits keeps the event fd readable

    def _on_peer_event(self, event: tuple, now: float) -> list[Output]:
        peer_id, events, _confirmed_index, _retired, _dropped, confirmed_ns, endpoint, times = event
        public = self.peer_publics.get(peer_id)
        if public is None:
            return []
        state = self.state
        outputs: list[Output] = []
        if events & _native.DP_EV_ENDPOINT_CHANGED and endpoint is not None:
            peer = state.peers.get(public)
            old = peer.endpoint if peer is not None else None
            state.on_endpoint_changed(public, endpoint)
            self._publish_endpoint_change(public, old, endpoint)
        if events & _native.DP_EV_KEYS_ZEROED:
            outputs += state.on_keys_zeroed(public)
            self._publish(ev.SESSION_EXPIRED, public)
        if events & _native.DP_EV_KEYPAIR_CONFIRMED:
            outputs += state.on_keypair_confirmed(public, confirmed_ns / NSEC_PER_SEC)
        if events & _native.DP_EV_ACTIVITY:
            outputs += state.on_activity(public, _activity(times))
        if events & _native.DP_EV_HANDSHAKE_WANTED:
            outputs += state.on_handshake_wanted(public, now)
        return outputs

    # --- events ---------------------------------------------------------------------------------

    def _publish(self, name: str, public: bytes, *fields: tuple[str, str]) -> None:
        self.events.publish(name, (("public_key", public.hex()), *fields))

    def _publish_endpoint_change(self, public: bytes, old: Address | None,
                                 new: Address) -> None:
        fields = [("new_endpoint", _format_address(new))]
        if old is not None:
            fields.insert(0, ("old_endpoint", _format_address(old)))
        self._publish(ev.ENDPOINT_CHANGED, public, *fields)

    def _drop_counts(self) -> dict[str, int]:
        """Cumulative drops by reason, for the event bus's drop summaries."""
        counts = {ev.DATAPLANE_DROP + reason: int(n)
                  for reason, n in self.dataplane.stats()["drops"].items()}
        counts.update((ev.HANDSHAKE_DROP + str(reason), int(n))
                      for reason, n in self.state.drops.items())
        return counts

    # --- timers ---------------------------------------------------------------------------------

    def _schedule_tick(self) -> None:
        if self._stopped or self._loop is None:
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
