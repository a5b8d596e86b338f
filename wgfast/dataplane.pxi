# Bindings for csrc/dataplane.h: the batched TUN <-> UDP data plane, run on a Python thread with
# the GIL released, driven by the control plane through peer/keypair calls and a message queue.
import ipaddress as _dp_ipaddress
import os as _dp_os
import socket as _dp_socket
import struct as _dp_struct

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset


from wgfast.includes.dataplane cimport *
from wgfast.includes.tables cimport *


DP_MSG_HANDSHAKE = WGF_DP_MSG_HANDSHAKE
DP_MSG_NEED_HANDSHAKE = WGF_DP_MSG_NEED_HANDSHAKE
DP_MSG_KEYPAIR_CONFIRMED = WGF_DP_MSG_KEYPAIR_CONFIRMED
DP_BATCH = WGF_DP_BATCH
DP_STAGED_MAX = WGF_DP_STAGED_MAX
# Offload flags (dataplane.h); TUN_USO is reported, never asked for.
DP_OFFLOAD_TUN_VNET = WGF_DP_OFFLOAD_TUN_VNET
DP_THREADS_DEFAULT = WGF_DP_THREADS_DEFAULT
DP_OFFLOAD_TUN_TSO = WGF_DP_OFFLOAD_TUN_TSO
DP_OFFLOAD_TUN_GRO = WGF_DP_OFFLOAD_TUN_GRO
DP_OFFLOAD_UDP_GSO = WGF_DP_OFFLOAD_UDP_GSO
DP_OFFLOAD_UDP_GRO = WGF_DP_OFFLOAD_UDP_GRO
DP_OFFLOAD_TUN_USO = WGF_DP_OFFLOAD_TUN_USO

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


cdef const uint8_t *_dp_key(const uint8_t[::1] key) except NULL:
    if key.shape[0] != 32:
        raise ValueError(f"keys are 32 bytes, got {key.shape[0]}")
    return &key[0]


cdef class DataPlane:
    """The compiled data plane of one interface.

    The caller owns the fds (made non-blocking here, never closed here). run() blocks the calling
    thread with the GIL released until stop(); every other method may be called from any thread
    meanwhile. Handshake messages and events come back through poll(), whose event_fd is readable
    exactly while messages wait."""

    cdef wgf_dp *dp
    cdef readonly unsigned mtu
    cdef bint running

    def __cinit__(self, int tun_fd, int udp4_fd, int udp6_fd, unsigned mtu=1420,
                  time_limits=None):
        _dp_check(wgf_dp_new(&self.dp, tun_fd, udp4_fd, udp6_fd, mtu), "data plane")
        self.mtu = mtu
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
            raise RuntimeError("stop() the data plane and wait for run() to return first")
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
        """One poll round: 0, 1 once stopped, or a negative errno."""
        cdef wgf_dp *dp = self._live()
        cdef int r
        with nogil:
            r = wgf_dp_run_once(dp, timeout_ms)
        return r

    def set_offloads(self, unsigned flags) -> int:
        """Turns on the DP_OFFLOAD_* flags (before run()); returns those in effect, since the
        kernel may refuse some. DP_OFFLOAD_TUN_VNET must match how the TUN fd was opened."""
        if self.running:
            raise RuntimeError("set_offloads() while the data plane runs")
        return _dp_check(wgf_dp_set_offloads(self._live(), flags), "offloads")

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

    @property
    def time_limits(self) -> dict:
        """The keypair ages the data plane acts on, in nanoseconds (the paper's by default)."""
        cdef wgf_dp_time_limits l
        wgf_dp_get_time_limits(self._live(), &l)
        return {"rekey_after_time_ns": l.rekey_after_time_ns,
                "reject_after_time_ns": l.reject_after_time_ns,
                "keepalive_timeout_ns": l.keepalive_timeout_ns,
                "rekey_timeout_ns": l.rekey_timeout_ns}

    def set_time_limits(self, uint64_t rekey_after_time_ns, uint64_t reject_after_time_ns,
                        uint64_t keepalive_timeout_ns, uint64_t rekey_timeout_ns) -> None:
        """Replaces the time limits (a test hook shortens them with the protocol's timers)."""
        cdef wgf_dp_time_limits l
        l.rekey_after_time_ns = rekey_after_time_ns
        l.reject_after_time_ns = reject_after_time_ns
        l.keepalive_timeout_ns = keepalive_timeout_ns
        l.rekey_timeout_ns = rekey_timeout_ns
        _dp_check(wgf_dp_set_time_limits(self._live(), &l), "time limits")

    def add_peer(self, uint32_t peer) -> None:
        _dp_check(wgf_dp_peer_add(self._live(), peer), "add peer")

    def remove_peer(self, uint32_t peer) -> None:
        """Zeroes its keys, drops its staged packets and removes its allowed IPs."""
        _dp_check(wgf_dp_peer_remove(self._live(), peer), "remove peer")

    def set_endpoint(self, uint32_t peer, endpoint) -> None:
        """endpoint: (host, port), (host, port, flowinfo, scope_id), or None to forget it."""
        cdef wgf_dp_endpoint ep
        cdef bytes raw
        memset(&ep, 0, sizeof(ep))
        if endpoint is not None:
            raw = _dp_endpoint_bytes(endpoint)
            memcpy(&ep, <const char *>raw, len(raw))
        _dp_check(wgf_dp_peer_set_endpoint(self._live(), peer, &ep), "set endpoint")

    def get_endpoint(self, uint32_t peer):
        cdef wgf_dp_endpoint ep
        _dp_check(wgf_dp_peer_get_endpoint(self._live(), peer, &ep), "get endpoint")
        return _dp_endpoint_tuple(&ep)

    def install_keypair(self, uint32_t peer, uint32_t local_index, uint32_t remote_index,
                        const uint8_t[::1] send_key, const uint8_t[::1] receive_key,
                        bint is_initiator, uint64_t created_ns) -> None:
        """Hands a handshake's keypair down (created_ns: time.monotonic_ns() when derived).
        Initiator: current at once and staged packets flush. Responder: next, until confirmed."""
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
        _dp_check(wgf_dp_peer_expire_keypairs(self._live(), peer), "expire keypairs")

    def send_keepalive(self, uint32_t peer) -> None:
        _dp_check(wgf_dp_peer_send_keepalive(self._live(), peer), "send keepalive")

    def drop_staged(self, uint32_t peer) -> int:
        return _dp_check(wgf_dp_peer_drop_staged(self._live(), peer), "drop staged")

    def peer_info(self, uint32_t peer) -> dict:
        cdef wgf_dp_peer_info i
        _dp_check(wgf_dp_peer_get_info(self._live(), peer, &i), "peer info")
        return {
            "endpoint": _dp_endpoint_tuple(&i.endpoint),
            "rx_bytes": i.rx_bytes, "tx_bytes": i.tx_bytes,
            "rx_packets": i.rx_packets, "tx_packets": i.tx_packets,
            "last_sent_ns": i.last_sent_ns, "last_received_ns": i.last_received_ns,
            "last_data_received_ns": i.last_data_received_ns,
            "staged": i.staged,
            "has_current": bool(i.has_current), "has_next": bool(i.has_next),
            "current_is_initiator": bool(i.current_is_initiator),
            "current_age_ns": i.current_age_ns if i.has_current else None,
            "current_send_counter": i.current_send_counter if i.has_current else None,
            "keypairs_live": i.keypairs_live,
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

    # ---- messages up ----

    @property
    def event_fd(self) -> int:
        return wgf_dp_event_fd(self._live())

    def poll(self, size_t max_messages=64) -> list:
        """Pops waiting messages as (kind, peer, data, source) tuples: DP_MSG_HANDSHAKE with the
        datagram and its (host, port) source; DP_MSG_NEED_HANDSHAKE / DP_MSG_KEYPAIR_CONFIRMED
        with the peer id (data b"", source None)."""
        cdef wgf_dp *dp = self._live()
        cdef wgf_dp_msg buf[16]
        cdef size_t n, k
        out = []
        while len(out) < max_messages:
            n = wgf_dp_poll(dp, buf, min(16, max_messages - len(out)))
            for k in range(n):
                out.append((buf[k].kind, buf[k].peer, (<const char *>buf[k].data)[:buf[k].len],
                            _dp_endpoint_tuple(&buf[k].source)))
            if n < 16:
                break
        return out

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
            "tun_super_read": s.tun_super_read, "tun_super_written": s.tun_super_written,
            "udp_gso_sends": s.udp_gso_sends, "udp_gso_refused": s.udp_gso_refused,
            "udp_gro_receives": s.udp_gro_receives,
            "drops": {wgf_dp_drop_name(r).decode(): s.drops[r] for r in range(WGF_DROP_COUNT)},
        }
