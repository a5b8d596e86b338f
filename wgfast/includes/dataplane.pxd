# C declarations of csrc/dataplane.h.
from libc.stdint cimport uint8_t, uint32_t, uint64_t

from wgfast.includes.tables cimport wgf_allowedips, wgf_index_table


cdef extern from "dataplane.h" nogil:
    struct wgf_dp:
        pass

    union wgf_dp_endpoint:
        pass

    # addr is a union of in_addr / in6_addr in C: only ever used through &addr.
    struct wgf_dp_source:
        uint32_t family
        uint32_t ifindex
        uint8_t addr[16]

    struct wgf_dp_keypair:
        uint32_t local_index
        uint32_t remote_index
        uint8_t send_key[32]
        uint8_t receive_key[32]
        int is_initiator
        uint64_t created_ns

    struct wgf_dp_activity:
        uint64_t tx_any_ns, rx_any_ns, tx_data_first_ns, rx_data_first_ns, rx_data_last_ns

    struct wgf_dp_peer_info:
        wgf_dp_endpoint endpoint
        uint64_t rx_bytes, tx_bytes, rx_packets, tx_packets
        wgf_dp_activity activity
        uint32_t staged
        int has_current, has_next, current_is_initiator
        uint64_t current_age_ns, current_send_counter
        uint32_t keypairs_live
        int handshake_in_flight
        uint64_t zero_at_ns

    struct wgf_dp_handshake_msg:
        uint32_t len
        wgf_dp_endpoint source
        wgf_dp_source local
        uint8_t data[148]

    struct wgf_dp_peer_event:
        uint32_t peer
        uint32_t events
        uint32_t confirmed_index, retired_index, staged_dropped
        uint64_t confirmed_ns
        wgf_dp_endpoint endpoint
        wgf_dp_activity activity

    int WGF_DROP_COUNT
    int WGF_DP_BATCH, WGF_DP_STAGED_MAX, WGF_DP_STAGED_POOL, WGF_DP_STRANDED_MAX
    int WGF_DP_HANDSHAKE_QUEUE, WGF_DP_MTU_MIN, WGF_DP_MTU_MAX
    uint32_t WGF_DP_INDEX_HANDSHAKE
    uint32_t WGF_DP_EV_ACTIVITY, WGF_DP_EV_HANDSHAKE_WANTED, WGF_DP_EV_KEYPAIR_CONFIRMED
    uint32_t WGF_DP_EV_KEYPAIR_RETIRED, WGF_DP_EV_KEYS_ZEROED, WGF_DP_EV_ENDPOINT_CHANGED
    uint32_t WGF_DP_EV_STAGED_DROPPED

    struct wgf_dp_stats:
        uint64_t polls, wakeups
        uint64_t tun_read_calls, tun_write_calls
        uint64_t sendmmsg_calls, sendmmsg_packets, sendmmsg_max
        uint64_t recvmmsg_calls, recvmmsg_packets, recvmmsg_max
        uint64_t tx_packets, tx_bytes, rx_packets, rx_bytes
        uint64_t keepalives_sent, keepalives_received
        uint64_t staged, staged_flushed
        uint64_t handshake_messages_up, events_up, event_signals
        uint64_t tun_super_read, tun_super_written
        uint64_t udp_gso_sends, udp_gso_refused, udp_gro_receives, source_forgotten
        uint64_t keypairs_zeroed, staged_held, cookie_replies_sent, cookie_replies_limited
        uint64_t drops[1]  # WGF_DROP_COUNT entries; Cython only needs the name

    struct wgf_dp_time_limits:
        uint64_t rekey_after_time_ns, reject_after_time_ns
        uint64_t keepalive_timeout_ns, rekey_timeout_ns, activity_report_ns

    int wgf_dp_new(wgf_dp **out, int tun_fd, int udp4_fd, int udp6_fd, unsigned mtu)
    void wgf_dp_free(wgf_dp *dp)
    int wgf_dp_run(wgf_dp *dp)
    int wgf_dp_run_once(wgf_dp *dp, int timeout_ms)
    void wgf_dp_stop(wgf_dp *dp)
    int WGF_DP_THREADS_DEFAULT
    int wgf_dp_set_threads(wgf_dp *dp, unsigned threads)
    unsigned wgf_dp_get_threads(wgf_dp *dp)
    int wgf_dp_set_sockets(wgf_dp *dp, int udp4_fd, int udp6_fd)
    int wgf_dp_set_mtu(wgf_dp *dp, unsigned mtu)
    unsigned wgf_dp_get_mtu(wgf_dp *dp)
    int wgf_dp_set_time_limits(wgf_dp *dp, const wgf_dp_time_limits *limits)
    void wgf_dp_get_time_limits(wgf_dp *dp, wgf_dp_time_limits *out)
    void wgf_dp_run_timers(wgf_dp *dp)

    unsigned WGF_DP_OFFLOAD_TUN_VNET, WGF_DP_OFFLOAD_TUN_TSO, WGF_DP_OFFLOAD_TUN_GRO
    unsigned WGF_DP_OFFLOAD_UDP_GSO, WGF_DP_OFFLOAD_UDP_GRO, WGF_DP_OFFLOAD_TUN_USO
    int wgf_dp_set_offloads(wgf_dp *dp, unsigned flags)
    unsigned wgf_dp_get_offloads(wgf_dp *dp)

    int wgf_dp_set_identity(wgf_dp *dp, const uint8_t *public_key)
    int wgf_dp_under_load(wgf_dp *dp)
    int wgf_dp_set_cookie_secret(wgf_dp *dp, const uint8_t *secret)
    int WGF_DP_UNDER_LOAD_QUEUE
    uint64_t WGF_DP_UNDER_LOAD_AFTER_NS
    int wgf_dp_peer_add(wgf_dp *dp, uint32_t peer)
    int wgf_dp_peer_remove(wgf_dp *dp, uint32_t peer)
    int wgf_dp_peer_set_endpoint(wgf_dp *dp, uint32_t peer, const wgf_dp_endpoint *ep)
    int wgf_dp_peer_get_endpoint(wgf_dp *dp, uint32_t peer, wgf_dp_endpoint *ep)
    int wgf_dp_peer_set_endpoint_from(wgf_dp *dp, uint32_t peer, const wgf_dp_endpoint *ep,
                                      const wgf_dp_source *src)
    int wgf_dp_peer_get_source(wgf_dp *dp, uint32_t peer, wgf_dp_source *src)
    int wgf_dp_send_datagram(wgf_dp *dp, uint32_t peer, const wgf_dp_endpoint *to,
                             const wgf_dp_source *src, const uint8_t *data, size_t len)
    int wgf_dp_peer_begin_handshake(wgf_dp *dp, uint32_t peer, uint32_t *index)
    int wgf_dp_peer_end_handshake(wgf_dp *dp, uint32_t peer)
    int wgf_dp_peer_install_keypair(wgf_dp *dp, uint32_t peer, const wgf_dp_keypair *kp)
    int wgf_dp_peer_expire_keypairs(wgf_dp *dp, uint32_t peer)
    int wgf_dp_peer_expire_later(wgf_dp *dp, uint32_t peer)
    int wgf_dp_peer_send_keepalive(wgf_dp *dp, uint32_t peer)
    int wgf_dp_peer_confirm_session(wgf_dp *dp, uint32_t peer)
    int wgf_dp_peer_drop_staged(wgf_dp *dp, uint32_t peer)
    int wgf_dp_peer_count_bytes(wgf_dp *dp, uint32_t peer, uint64_t rx, uint64_t tx)
    int wgf_dp_peer_get_info(wgf_dp *dp, uint32_t peer, wgf_dp_peer_info *info)
    wgf_allowedips *wgf_dp_allowedips(wgf_dp *dp)
    wgf_index_table *wgf_dp_index_table(wgf_dp *dp)

    int wgf_dp_event_fd(wgf_dp *dp)
    void wgf_dp_events_ack(wgf_dp *dp)
    size_t wgf_dp_take_handshakes(wgf_dp *dp, wgf_dp_handshake_msg *out, size_t max)
    size_t wgf_dp_take_peer_events(wgf_dp *dp, wgf_dp_peer_event *out, size_t max)
    void wgf_dp_get_stats(wgf_dp *dp, wgf_dp_stats *out)
    const char *wgf_dp_drop_name(int reason)
