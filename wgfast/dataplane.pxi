# Bindings for csrc/dataplane.h: the batched TUN <-> UDP data plane, run on a Python thread with
# the GIL released, driven by the control plane through peer, handshake and keypair calls, and
# heard from through its event fd (handshake datagrams and per-peer events).
import errno as _dp_errno
import ipaddress as _dp_ipaddress
import os as _dp_os
import socket as _dp_socket
import struct as _dp_struct

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from wgfast.includes.dataplane cimport *
from wgfast.includes.tables cimport *


DP_BATCH = WGF_DP_BATCH
DP_STAGED_MAX = WGF_DP_STAGED_MAX
DP_STAGED_POOL = WGF_DP_STAGED_POOL
DP_STRANDED_MAX = WGF_DP_STRANDED_MAX
DP_HANDSHAKE_QUEUE = WGF_DP_HANDSHAKE_QUEUE
DP_UNDER_LOAD_QUEUE = WGF_DP_UNDER_LOAD_QUEUE
DP_UNDER_LOAD_AFTER = WGF_DP_UNDER_LOAD_AFTER_NS / 1e9  # seconds
DP_MTU_MIN = WGF_DP_MTU_MIN
DP_MTU_MAX = WGF_DP_MTU_MAX
# Offload flags (dataplane.h); TUN_USO is reported, never asked for.
DP_OFFLOAD_TUN_VNET = WGF_DP_OFFLOAD_TUN_VNET
DP_THREADS_DEFAULT = WGF_DP_THREADS_DEFAULT
DP_OFFLOAD_TUN_TSO = WGF_DP_OFFLOAD_TUN_TSO
DP_OFFLOAD_TUN_GRO = WGF_DP_OFFLOAD_TUN_GRO
DP_OFFLOAD_UDP_GSO = WGF_DP_OFFLOAD_UDP_GSO
DP_OFFLOAD_UDP_GRO = WGF_DP_OFFLOAD_UDP_GRO
DP_OFFLOAD_TUN_USO = WGF_DP_OFFLOAD_TUN_USO
# Peer event bits (enum wgf_dp_event_bits).
DP_EV_ACTIVITY = WGF_DP_EV_ACTIVITY
DP_EV_HANDSHAKE_WANTED = WGF_DP_EV_HANDSHAKE_WANTED
DP_EV_KEYPAIR_CONFIRMED = WGF_DP_EV_KEYPAIR_CONFIRMED
DP_EV_KEYPAIR_RETIRED = WGF_DP_EV_KEYPAIR_RETIRED
DP_EV_KEYS_ZEROED = WGF_DP_EV_KEYS_ZEROED
DP_EV_ENDPOINT_CHANGED = WGF_DP_EV_ENDPOINT_CHANGED
DP_EV_STAGED_DROPPED = WGF_DP_EV_STAGED_DROPPED
DP_INDEX_HANDSHAKE = WGF_DP_INDEX_HANDSHAKE

_SOCKADDR_IN = _dp_struct.Struct("=H2s4s8x")     # family (host order), port (network), addr
_SOCKADDR_IN6 = _dp_struct.Struct("=H2s4s16sI")  # ... flowinfo (network), addr, scope id


cdef int _dp_check(int r, str what) except -1:
    if r < 0:
        raise OSError(-r, f"{what}: {_dp_os.strerror(-r)}")
    return r


cdef bytes _dp_endpoint_bytes(object endpoint):
    """(host, port) or (host, port, flowinfo, scope_id) -> the bytes of a sockaddr_in/in6."""
    host, port = endpoint[0], int(endpoint[1])
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port out of range: {port}")
    ip = _dp_ipaddress.ip_address(host)
    port_be = _dp_struct.pack("!H", port)
    if ip.version == 4:
        return _SOCKADDR_IN.pack(_dp_socket.AF_INET, port_be, ip.packed)
    flowinfo = _dp_struct.pack("!I", int(endpoint[2]) if len(endpoint) > 2 else 0)
    scope = int(endpoint[3]) if len(endpoint) > 3 else 0
    return _SOCKADDR_IN6.pack(_dp_socket.AF_INET6, port_be, flowinfo, ip.packed, scope)


cdef object _dp_endpoint_tuple(const wgf_dp_endpoint *ep):
    cdef bytes raw = (<const char *>ep)[:_SOCKADDR_IN6.size]
    family = _dp_struct.unpack_from("=H", raw)[0]
    if family == _dp_socket.AF_INET:
        _, port, addr = _SOCKADDR_IN.unpack_from(raw)
        return (str(_dp_ipaddress.IPv4Address(addr)), _dp_struct.unpack("!H", port)[0])
    if family == _dp_socket.AF_INET6:
        _, port, _, addr, _ = _SOCKADDR_IN6.unpack_from(raw)
        return (str(_dp_ipaddress.IPv6Address(addr)), _dp_struct.unpack("!H", port)[0])
    return None


cdef object _dp_source_tuple(const wgf_dp_source *src):
    """A local source address as (host, ifindex), or None."""
    cdef bytes raw = (<const char *>&src.addr)[:16]
    if src.family == _dp_socket.AF_INET:
        return (str(_dp_ipaddress.IPv4Address(raw[:4])), src.ifindex)
    if src.family == _dp_socket.AF_INET6:
        return (str(_dp_ipaddress.IPv6Address(raw)), src.ifindex)
    return None


cdef int _dp_source_fill(object source, wgf_dp_source *src) except -1:
    """(host, ifindex) or None -> *src (zeroed; AF_UNSPEC for None)."""
    memset(src, 0, sizeof(src[0]))
    if source is None:
        return 0
    ip = _dp_ipaddress.ip_address(source[0])
    cdef bytes packed = ip.packed
    src.family = _dp_socket.AF_INET if ip.version == 4 else _dp_socket.AF_INET6
    src.ifindex = int(source[1])
    memcpy(<char *>&src.addr, <const char *>packed, len(packed))
    return 0


cdef const uint8_t *_dp_key(const uint8_t[::1] key) except NULL:
    if key.shape[0] != 32:
        raise ValueError(f"keys are 32 bytes, got {key.shape[0]}")
    return &key[0]


cdef object _dp_activity(const wgf_dp_activity *a):
    return (a.tx_any_ns, a.rx_any_ns, a.tx_data_first_ns, a.rx_data_first_ns, a.rx_data_last_ns)


cdef class DataPlane:
    """The compiled data plane of one interface, for the daemon's whole life.

    The caller owns the fds (made non-blocking here, never closed here). run() blocks the calling
    thread with the GIL released until stop(); every other method may be called from any thread
    meanwhile: set_sockets() and set_mtu() pause the loop at a round boundary for the swap, and
    keep every session. What the data plane has to say comes back through take_events(), once
    event_fd is readable."""

    cdef wgf_dp *dp
    cdef bint running

    def __cinit__(self, int tun_fd, int udp4_fd=-1, int udp6_fd=-1, unsigned mtu=1420,
                  time_limits=None):
        _dp_check(wgf_dp_new(&self.dp, tun_fd, udp4_fd, udp6_fd, mtu), "data plane")
        if time_limits is not None:
            self.set_time_limits(**time_limits)

    def __dealloc__(self):
        # run() holds a reference to self, so the loop cannot be running here.
        wgf_dp_free(self.dp)
        self.dp = NULL

    cdef wgf_dp *_live(self) except NULL:
        if self.dp == NULL:
            raise ValueError("data plane is closed")
        return self.dp

    def close(self) -> None:
        """Frees the data plane (zeroing its keys). The loop must have returned."""
        if self.running:
            raise RuntimeError("stop() the data plane and wait for run() or run_once() to "
                               "return first")
        wgf_dp_free(self.dp)
        self.dp = NULL

    def run(self) -> int:
        """Runs the loop until stop(): 0, or a negative errno when the TUN fd failed."""
        cdef wgf_dp *dp = self._live()
        cdef int r
        if self.running:
            raise RuntimeError("the data plane is already running")
        self.running = True
        try:
            with nogil:
                r = wgf_dp_run(dp)
        finally:
            self.running = False
        return r

    def run_once(self, int timeout_ms=0) -> int:
        """One poll round: 0, 1 once stopped, or a negative errno (-EBUSY while run() runs)."""
        cdef wgf_dp *dp = self._live()
        cdef int r
        if self.running:
            return -_dp_errno.EBUSY
        self.running = True  # close() waits for it like for run()
        try:
            with nogil:
                r = wgf_dp_run_once(dp, timeout_ms)
        finally:
            self.running = False
        return r

    def set_offloads(self, unsigned flags) -> int:
        """Turns on the DP_OFFLOAD_* flags (before run()); returns those in effect, since the
        kernel may refuse some. DP_OFFLOAD_TUN_VNET must match how the TUN fd was opened."""
        if self.running:
            raise RuntimeError("set_offloads() while the data plane runs")
        r = wgf_dp_set_offloads(self._live(), flags)
        if r == -_dp_errno.EINVAL:
            has = "has" if flags & WGF_DP_OFFLOAD_TUN_VNET else "has no"
            raise ValueError(f"offloads: DP_OFFLOAD_TUN_VNET says the TUN fd {has} virtio-net "
                             "header, but the fd (TUNGETIFF) says otherwise: open it with "
                             "IFF_VNET_HDR exactly when asking for TUN_VNET")
        return _dp_check(r, "offloads")

    @property
    def threads(self) -> int:
        """Threads run() uses: 2 (send and receive each on their own) or 1 (one loop)."""
        return wgf_dp_get_threads(self._live())

    @threads.setter
    def threads(self, int value) -> None:
        if self.running:
            raise RuntimeError("threads changed while the data plane runs")
        if value not in (1, 2):
            raise ValueError(f"the data plane runs on 1 or 2 threads, not {value}")
        _dp_check(wgf_dp_set_threads(self._live(), value), "threads")

    @property
    def offloads(self) -> int:
        """The DP_OFFLOAD_* flags in effect now (UDP GSO turns itself off if refused)."""
        return wgf_dp_get_offloads(self._live())

    def stop(self) -> None:
        wgf_dp_stop(self._live())

    def set_sockets(self, int udp4_fd, int udp6_fd) -> None:
        """Replaces the UDP sockets (-1: none) under the running loop, keeping every session;
        once it returns, the loop no longer uses the old fds."""
        cdef wgf_dp *dp = self._live()
        cdef int r
        with nogil:
            r = wgf_dp_set_sockets(dp, udp4_fd, udp6_fd)
        _dp_check(r, "set sockets")

    @property
    def mtu(self) -> int:
        return wgf_dp_get_mtu(self._live())

    def set_mtu(self, unsigned mtu) -> None:
        """Resizes the buffers for a new MTU under the running loop, keeping every session."""
        cdef wgf_dp *dp = self._live()
        cdef int r
        with nogil:
            r = wgf_dp_set_mtu(dp, mtu)
        _dp_check(r, "set MTU")

    @property
    def time_limits(self) -> dict:
        """The times the data plane acts on, in nanoseconds (the paper's by default)."""
        cdef wgf_dp_time_limits l
        wgf_dp_get_time_limits(self._live(), &l)
        return {"rekey_after_time_ns": l.rekey_after_time_ns,
                "reject_after_time_ns": l.reject_after_time_ns,
                "keepalive_timeout_ns": l.keepalive_timeout_ns,
                "rekey_timeout_ns": l.rekey_timeout_ns,
                "activity_report_ns": l.activity_report_ns}

    def set_time_limits(self, uint64_t rekey_after_time_ns, uint64_t reject_after_time_ns,
                        uint64_t keepalive_timeout_ns, uint64_t rekey_timeout_ns,
                        uint64_t activity_report_ns) -> None:
        """Replaces the time limits (a test hook shortens them with the protocol's timers)."""
        cdef wgf_dp_time_limits l
        l.rekey_after_time_ns = rekey_after_time_ns
        l.reject_after_time_ns = reject_after_time_ns
        l.keepalive_timeout_ns = keepalive_timeout_ns
        l.rekey_timeout_ns = rekey_timeout_ns
        l.activity_report_ns = activity_report_ns
        _dp_check(wgf_dp_set_time_limits(self._live(), &l), "time limits")

    def run_timers(self) -> None:
        """Does what the data plane's timers have due (the loop does it by itself)."""
        wgf_dp_run_timers(self._live())

    def set_identity(self, public_key: bytes | None) -> None:
        """The device's public key, or None without a private key: handshake datagrams are then
        all dropped, and staged packets are stranded. With one, the data plane checks mac1 (and
        under load mac2, answering with cookie replies) before anything reaches take_events."""
        cdef const uint8_t[::1] key
        if public_key is None:
            wgf_dp_set_identity(self._live(), NULL)
            return
        key = public_key
        wgf_dp_set_identity(self._live(), fixed_bytes(key, 32, "public key"))

    @property
    def under_load(self) -> bool:
        """Whether the data plane is under load now (the control queue at or over
        DP_UNDER_LOAD_QUEUE, or within DP_UNDER_LOAD_AFTER seconds of it)."""
        return bool(wgf_dp_under_load(self._live()))

    def set_cookie_secret(self, const uint8_t[::1] secret) -> None:
        """For tests: a known cookie secret, born now."""
        wgf_dp_set_cookie_secret(self._live(), fixed_bytes(secret, 32, "secret"))

    def add_peer(self, uint32_t peer) -> None:
        _dp_check(wgf_dp_peer_add(self._live(), peer), "add peer")

    def remove_peer(self, uint32_t peer) -> None:
        """Zeroes its keys, frees its indices, drops its staged packets and allowed IPs."""
        _dp_check(wgf_dp_peer_remove(self._live(), peer), "remove peer")

    def set_endpoint(self, uint32_t peer, endpoint, source=None) -> None:
        """endpoint: (host, port), (host, port, flowinfo, scope_id), or None to forget it.
        source: the local (host, ifindex) a handshake from endpoint came to, which what the
        peer is sent leaves from; None: the route chooses."""
        cdef wgf_dp_endpoint ep
        cdef wgf_dp_source src
        cdef bytes raw
        memset(&ep, 0, sizeof(ep))
        if endpoint is not None:
            raw = _dp_endpoint_bytes(endpoint)
            memcpy(&ep, <const char *>raw, len(raw))
        _dp_source_fill(source, &src)
        _dp_check(wgf_dp_peer_set_endpoint_from(self._live(), peer, &ep, &src), "set endpoint")

    def get_source(self, uint32_t peer):
        """The local (host, ifindex) the peer's packets leave from, or None (the route's)."""
        cdef wgf_dp_source src
        _dp_check(wgf_dp_peer_get_source(self._live(), peer, &src), "get source")
        return _dp_source_tuple(&src)

    def send_datagram(self, uint32_t peer, destination, const uint8_t[::1] data,
                      source=None) -> None:
        """Sends a handshake message to destination (host, port) from source (host, ifindex),
        or else from the source of peer (0: none) if its endpoint is destination, falling back
        to the route's choice when that address is gone. Raises OSError."""
        cdef wgf_dp_endpoint to
        cdef wgf_dp_source src
        cdef bytes raw = _dp_endpoint_bytes(destination)
        cdef wgf_dp *dp = self._live()
        cdef int r
        memset(&to, 0, sizeof(to))
        memcpy(&to, <const char *>raw, len(raw))
        _dp_source_fill(source, &src)
        if data.shape[0] == 0:
            raise ValueError("empty datagram")
        with nogil:
            r = wgf_dp_send_datagram(dp, peer, &to, &src, &data[0], <size_t>data.shape[0])
        _dp_check(r, "send datagram")

    def get_endpoint(self, uint32_t peer):
        cdef wgf_dp_endpoint ep
        _dp_check(wgf_dp_peer_get_endpoint(self._live(), peer, &ep), "get endpoint")
        return _dp_endpoint_tuple(&ep)

    def begin_handshake(self, uint32_t peer) -> int:
        """A fresh receiver index for the peer's new handshake (freeing the one before)."""
        cdef uint32_t index = 0
        _dp_check(wgf_dp_peer_begin_handshake(self._live(), peer, &index), "begin handshake")
        return index

    def end_handshake(self, uint32_t peer) -> None:
        """Frees the index of the peer's handshake in flight, if any."""
        _dp_check(wgf_dp_peer_end_handshake(self._live(), peer), "end handshake")

    def index_owner(self, uint32_t index) -> int:
        """The peer id whose handshake or keypair holds `index`, 0 for none."""
        cdef wgf_index_entry e
        if wgf_index_table_lookup(wgf_dp_index_table(self._live()), index, &e) != 0:
            return 0
        return e.peer

    def install_keypair(self, uint32_t peer, uint32_t local_index, uint32_t remote_index,
                        const uint8_t[::1] send_key, const uint8_t[::1] receive_key,
                        bint is_initiator, uint64_t created_ns) -> None:
        """Hands a handshake's keypair down (local_index: the handshake's, from
        begin_handshake; created_ns: time.monotonic_ns() when derived). Initiator: current at
        once and staged packets flush. Responder: next, until data under it confirms it."""
        cdef wgf_dp_keypair kp
        memset(&kp, 0, sizeof(kp))
        kp.local_index = local_index
        kp.remote_index = remote_index
        memcpy(kp.send_key, _dp_key(send_key), 32)
        memcpy(kp.receive_key, _dp_key(receive_key), 32)
        kp.is_initiator = is_initiator
        kp.created_ns = created_ns
        cdef int r = wgf_dp_peer_install_keypair(self._live(), peer, &kp)
        wgf_memzero(&kp, sizeof(kp))
        _dp_check(r, "install keypair")

    def expire_keypairs(self, uint32_t peer) -> None:
        """Zeroes the peer's keypairs now; the next packet asks for a handshake."""
        _dp_check(wgf_dp_peer_expire_keypairs(self._live(), peer), "expire keypairs")

    def expire_later(self, uint32_t peer) -> None:
        """Schedules the zeroing of the peer's keys 3 x REJECT_AFTER_TIME from now, unless one
        is scheduled already."""
        _dp_check(wgf_dp_peer_expire_later(self._live(), peer), "expire later")

    def send_keepalive(self, uint32_t peer) -> None:
        _dp_check(wgf_dp_peer_send_keepalive(self._live(), peer), "send keepalive")

    def confirm_session(self, uint32_t peer) -> None:
        """The initiator's confirmation of the keypair it just installed: a keepalive unless
        data under it went out already or waits staged."""
        _dp_check(wgf_dp_peer_confirm_session(self._live(), peer), "confirm session")

    def drop_staged(self, uint32_t peer) -> int:
        return _dp_check(wgf_dp_peer_drop_staged(self._live(), peer), "drop staged")

    def count_bytes(self, uint32_t peer, uint64_t rx, uint64_t tx) -> None:
        """Adds handshake messages exchanged with the peer to its byte counters."""
        _dp_check(wgf_dp_peer_count_bytes(self._live(), peer, rx, tx), "count bytes")

    def peer_info(self, uint32_t peer) -> dict:
        cdef wgf_dp_peer_info i
        _dp_check(wgf_dp_peer_get_info(self._live(), peer, &i), "peer info")
        return {
            "endpoint": _dp_endpoint_tuple(&i.endpoint),
            "rx_bytes": i.rx_bytes, "tx_bytes": i.tx_bytes,
            "rx_packets": i.rx_packets, "tx_packets": i.tx_packets,
            "activity": _dp_activity(&i.activity),
            "staged": i.staged,
            "has_current": bool(i.has_current), "has_next": bool(i.has_next),
            "current_is_initiator": bool(i.current_is_initiator),
            "current_age_ns": i.current_age_ns if i.has_current else None,
            "current_send_counter": i.current_send_counter if i.has_current else None,
            "keypairs_live": i.keypairs_live,
            "handshake_in_flight": bool(i.handshake_in_flight),
            "zero_at_ns": i.zero_at_ns,
        }

    # ---- allowed IPs (the table the data plane routes with) ----

    def add_allowed_ip(self, uint32_t peer, network) -> None:
        """network: "10.0.0.0/24", "fd00::1" or an ipaddress network; the newest mapping wins."""
        net = _dp_ipaddress.ip_network(network, strict=False)
        cdef bytes addr = net.network_address.packed
        _dp_check(wgf_allowedips_insert(wgf_dp_allowedips(self._live()), net.version,
                                <const uint8_t *><const char *>addr, net.prefixlen, peer),
                  "add allowed ip")

    def remove_allowed_ip(self, uint32_t peer, network) -> None:
        net = _dp_ipaddress.ip_network(network, strict=False)
        cdef bytes addr = net.network_address.packed
        _dp_check(wgf_allowedips_remove(wgf_dp_allowedips(self._live()), net.version,
                                <const uint8_t *><const char *>addr, net.prefixlen, peer),
                  "remove allowed ip")

    def clear_allowed_ips(self, uint32_t peer) -> int:
        return wgf_allowedips_remove_by_peer(wgf_dp_allowedips(self._live()), peer)

    def route(self, address) -> int:
        """The peer id an address routes to, 0 for none."""
        ip = _dp_ipaddress.ip_address(address)
        cdef bytes addr = ip.packed
        return wgf_allowedips_lookup(wgf_dp_allowedips(self._live()), ip.version,
                             <const uint8_t *><const char *>addr)

    # ---- what the data plane has to say ----

    @property
    def event_fd(self) -> int:
        """Readable once something waits for take_events()."""
        return wgf_dp_event_fd(self._live())

    def take_events(self, size_t max_handshakes=256, size_t max_peers=1024,
                    bint with_local=False) -> tuple:
        """Acknowledges the event fd, then takes what waits: (handshakes, peer_events).
        handshakes: (datagram, (host, port)) tuples, oldest first; with_local, (datagram,
        (host, port), local) with the local (host, ifindex) it came to, or None. peer_events: (peer, events,
        confirmed_index, retired_index, staged_dropped, confirmed_ns, endpoint, activity)
        tuples, activity being (tx_any_ns, rx_any_ns, tx_data_first_ns, rx_data_first_ns,
        rx_data_last_ns) with 0 for none. Whatever is left beyond the limits keeps the fd
        readable, for the next call."""
        cdef wgf_dp *dp = self._live()
        cdef wgf_dp_handshake_msg hs[16]
        cdef wgf_dp_peer_event ev[64]
        cdef size_t n, k, taken = 0
        handshakes = []
        peers = []
        wgf_dp_events_ack(dp)
        while taken < max_handshakes:
            n = wgf_dp_take_handshakes(dp, hs, min(<size_t>16, max_handshakes - taken))
            taken += n
            for k in range(n):
                if with_local:
                    handshakes.append(((<const char *>hs[k].data)[:hs[k].len],
                                       _dp_endpoint_tuple(&hs[k].source),
                                       _dp_source_tuple(&hs[k].local)))
                else:
                    handshakes.append(((<const char *>hs[k].data)[:hs[k].len],
                                       _dp_endpoint_tuple(&hs[k].source)))
            if n < 16:
                break
        taken = 0
        while taken < max_peers:
            n = wgf_dp_take_peer_events(dp, ev, min(<size_t>64, max_peers - taken))
            taken += n
            for k in range(n):
                peers.append((ev[k].peer, ev[k].events, ev[k].confirmed_index,
                              ev[k].retired_index, ev[k].staged_dropped, ev[k].confirmed_ns,
                              _dp_endpoint_tuple(&ev[k].endpoint),
                              _dp_activity(&ev[k].activity)))
            if n < 64:
                break
        return handshakes, peers

    def stats(self) -> dict:
        """Global counters; packets per sendmmsg/recvmmsg = *_packets / *_calls."""
        cdef wgf_dp_stats s
        wgf_dp_get_stats(self._live(), &s)
        return {
            "polls": s.polls, "wakeups": s.wakeups,
            "tun_read_calls": s.tun_read_calls, "tun_write_calls": s.tun_write_calls,
            "sendmmsg_calls": s.sendmmsg_calls, "sendmmsg_packets": s.sendmmsg_packets,
            "sendmmsg_max": s.sendmmsg_max,
            "recvmmsg_calls": s.recvmmsg_calls, "recvmmsg_packets": s.recvmmsg_packets,
            "recvmmsg_max": s.recvmmsg_max,
            "tx_packets": s.tx_packets, "tx_bytes": s.tx_bytes,
            "rx_packets": s.rx_packets, "rx_bytes": s.rx_bytes,
            "keepalives_sent": s.keepalives_sent, "keepalives_received": s.keepalives_received,
            "staged": s.staged, "staged_flushed": s.staged_flushed,
            "handshake_messages_up": s.handshake_messages_up, "events_up": s.events_up,
            "event_signals": s.event_signals,
            "tun_super_read": s.tun_super_read, "tun_super_written": s.tun_super_written,
            "udp_gso_sends": s.udp_gso_sends, "udp_gso_refused": s.udp_gso_refused,
            "udp_gro_receives": s.udp_gro_receives,
            "source_forgotten": s.source_forgotten,
            "keypairs_zeroed": s.keypairs_zeroed, "staged_held": s.staged_held,
            "cookie_replies_sent": s.cookie_replies_sent,
            "cookie_replies_limited": s.cookie_replies_limited,
            "drops": {wgf_dp_drop_name(r).decode(): s.drops[r] for r in range(WGF_DROP_COUNT)},
        }
