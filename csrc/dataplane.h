/* The batched data plane: TUN <-> UDP for every peer of one interface, sealing and opening in
 * place, run by threads that never touch Python. It owns everything a packet needs: the
 * transport keypairs (install, rotation, confirmation, expiry, zeroing), the receiver-index
 * space (handshakes in flight and keypairs), the allowed-IPs table, the staged packets and the
 * per-packet rekey decisions. The control plane (Python) does the handshakes and the timers and
 * hears what happened here through events.
 *
 *   send     (dataplane_send.c)    read a batch from TUN into buffers with 16 bytes of headroom,
 *                                  route each destination through allowedips, write the data
 *                                  header in front, pad, seal one run per peer, sendmmsg
 *                                  from the peer's source address, the outer ECN field the
 *                                  inner packet's (RFC 6040).
 *   receive  (dataplane_receive.c) recvmmsg a batch per UDP socket; transport data: receiver
 *                                  index -> keypair, replay check, open runs in place, replay
 *                                  update, promotion, roaming (endpoint and the local address
 *                                  it talked to), inner-header and source checks, outer CE into
 *                                  the inner header, write to TUN. Handshake messages go up to
 *                                  the control queue with both addresses.
 *   cmsg     (dataplane_cmsg.c)    source address and TOS control messages, both directions.
 *   peers    (dataplane_peer.c)    peers, their previous/current/next keypairs, staged packets,
 *                                  receiver indices.
 *   events   (dataplane_events.c)  what Python hears: handshake datagrams in a bounded queue,
 *                                  peer events coalesced per peer, one eventfd.
 *   loop     (dataplane.c)         lifecycle, poll() loop, pausing it for reconfiguration,
 *                                  timers, statistics.
 *
 * Threading. One thread calls wgf_dp_run, which starts a second: the caller's thread sends (TUN
 * -> UDP, timers, and the work control calls flag), the second receives (UDP -> TUN); or one
 * thread calls wgf_dp_run_once for both. Any other thread may call the control functions at any
 * time: those that replace what the loop uses (sockets, MTU) pause both loop threads at a round
 * boundary for the moment it takes. Peers and keypairs sit behind one mutex that each direction
 * takes a few times per batch, never per packet, never while sealing or opening (keys are copied
 * out), never across a system call.
 *
 * Times are the data plane's clock: CLOCK_MONOTONIC nanoseconds (Python's time.monotonic_ns()),
 * unless a test replaces it (wgf_dp_set_clock). Peer ids are the caller's, any value but 0. The
 * fds stay the caller's: the data plane makes them non-blocking and never closes them. */
#ifndef WGF_DATAPLANE_H
#define WGF_DATAPLANE_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "aead.h"
#include "allowedips.h"
#include "batch.h" /* WGF_DP_BATCH: packets per TUN drain, recvmmsg and sendmmsg */
#include "index_table.h"
#include "replay.h"

/* The paper's constants (section 6). The four times are the defaults of a data plane's
 * struct wgf_dp_time_limits, which a test hook may shorten (wgf_dp_set_time_limits). */
#define WGF_REKEY_AFTER_MESSAGES (UINT64_C(1) << 60)
#define WGF_NSEC_PER_SEC UINT64_C(1000000000)
#define WGF_REKEY_AFTER_TIME_NS (120 * WGF_NSEC_PER_SEC)
#define WGF_REJECT_AFTER_TIME_NS (180 * WGF_NSEC_PER_SEC)
#define WGF_KEEPALIVE_TIMEOUT_NS (10 * WGF_NSEC_PER_SEC)
#define WGF_REKEY_TIMEOUT_NS (5 * WGF_NSEC_PER_SEC)
/* Activity (packets sent and received) is reported to Python at most this often; everything
 * else at once. The timers it feeds count in seconds. */
#define WGF_ACTIVITY_REPORT_NS (100 * UINT64_C(1000000))
/* Keys are zeroed this long after the last session was derived (three REJECT_AFTER_TIMEs). */
#define WGF_ZERO_KEYS_AFTER_REJECTS 3

/* Wire format of transport data (type 4). */
#define WGF_MSG_INITIATION 1
#define WGF_MSG_RESPONSE 2
#define WGF_MSG_COOKIE_REPLY 3
#define WGF_MSG_DATA 4
#define WGF_MSG_INITIATION_LEN 148
#define WGF_MSG_RESPONSE_LEN 92
#define WGF_MSG_COOKIE_REPLY_LEN 64
#define WGF_DATA_HEADER_LEN 16 /* type(1) reserved(3) receiver(4) counter(8) */
#define WGF_DATA_MIN_LEN (WGF_DATA_HEADER_LEN + WGF_AEAD_TAG_LEN) /* a keepalive */
#define WGF_MESSAGE_PADDING_MULTIPLE 16

#define WGF_DP_STAGED_MAX 128   /* staged packets per peer waiting for a keypair */
#define WGF_DP_STAGED_POOL 1024 /* staged buffers shared by all peers */
/* Of the pool, peers that cannot start a handshake (no endpoint, or the device has no private
 * key) may hold at most this many together, so that they cannot starve the others. */
#define WGF_DP_STRANDED_MAX (WGF_DP_STAGED_POOL / 4)
#define WGF_DP_HANDSHAKE_QUEUE 1024 /* handshake datagrams waiting for Python */
#define WGF_DP_MSG_MAX WGF_MSG_INITIATION_LEN
#define WGF_DP_MTU_MIN 576
#define WGF_DP_MTU_MAX 65535 /* the TUN's own limit (ETH_MAX_MTU) */
/* Receive buffers hold a datagram of a peer whose MTU is up to this even when ours is smaller
 * (a larger MTU of ours raises it): what a common jumbo-frame peer sends still fits, while an
 * ordinary MTU costs a batch of ~9 KB buffers instead of 64 KB ones. A larger datagram is
 * dropped as truncated. */
#define WGF_DP_RX_MTU_FLOOR 9000

struct wgf_dp;

/* A UDP endpoint; sa.sa_family is AF_UNSPEC when there is none. */
union wgf_dp_endpoint {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
};

/* The local address a peer's datagrams arrived at, which what we send it goes out from (the
 * kernel's source address kept per endpoint), so a host with several addresses answers from the
 * one the peer talks to. family AF_UNSPEC: none, the route chooses. Padding is always zero, so
 * two sources compare with memcmp. */
struct wgf_dp_source {
    uint32_t family;  /* AF_INET, AF_INET6 or AF_UNSPEC */
    uint32_t ifindex; /* the interface it arrived on: an IPv6 link-local source needs it */
    union {
        struct in_addr in4; /* IP_PKTINFO's ipi_spec_dst */
        struct in6_addr in6;
    } addr;
};

/* ---- lifecycle ---- */

/* Creates a data plane over a TUN fd (or anything that reads and writes one IP packet per call)
 * and up to two UDP sockets (-1 for none: a device that is down has none). mtu is the TUN's MTU,
 * in [WGF_DP_MTU_MIN, WGF_DP_MTU_MAX]. 0 and *out set, or -EINVAL, -ENOMEM, or -errno. */
int wgf_dp_new(struct wgf_dp **out, int tun_fd, int udp4_fd, int udp6_fd, unsigned mtu);
/* The loop must have returned. Zeroes every key. NULL is ignored. */
void wgf_dp_free(struct wgf_dp *dp);
/* Runs until wgf_dp_stop: 0 on stop, or a negative errno when the TUN fd fails (interface gone);
 * -EBUSY at once if a wgf_dp_run or wgf_dp_run_once is running; -EINVAL at once if the TUN fd
 * has a vnet header (IFF_VNET_HDR) and wgf_dp_set_offloads did not turn TUN_VNET on. With 2 threads (the default)
 * the caller's thread sends (TUN -> UDP) and a thread it starts receives (UDP -> TUN), so
 * sealing and opening use two cores. */
int wgf_dp_run(struct wgf_dp *dp);
#define WGF_DP_THREADS_DEFAULT 2
/* 1 or 2 threads for the next wgf_dp_run (not while it runs). 0 or -EINVAL. */
int wgf_dp_set_threads(struct wgf_dp *dp, unsigned threads);
unsigned wgf_dp_get_threads(struct wgf_dp *dp);
/* One poll (waiting at most timeout_ms; -1 forever) and whatever work it found: 0, 1 if stopped,
 * or a negative errno as wgf_dp_run; -EBUSY while wgf_dp_run or another wgf_dp_run_once runs
 * (the send side's state has one owner). For tests and callers that drive their own loop. */
int wgf_dp_run_once(struct wgf_dp *dp, int timeout_ms);
/* Asks the loop to return; safe from any thread, and before the loop starts. */
void wgf_dp_stop(struct wgf_dp *dp);

/* Replaces the UDP sockets (either or both -1: none) under the running loop, which keeps every
 * peer, keypair and staged packet: a listen-port or fwmark change, or the device going down or
 * up. Once it returns no loop thread uses the old fds. 0, or -EINVAL (a bad fd). */
int wgf_dp_set_sockets(struct wgf_dp *dp, int udp4_fd, int udp6_fd);
/* Resizes the buffers for a new MTU (in [WGF_DP_MTU_MIN, WGF_DP_MTU_MAX]) under the running
 * loop; sessions stay, staged packets that no longer fit are dropped (counted oversize).
 * 0, -EINVAL or -ENOMEM (then nothing changed). */
int wgf_dp_set_mtu(struct wgf_dp *dp, unsigned mtu);
unsigned wgf_dp_get_mtu(struct wgf_dp *dp);

/* The keypair ages the data plane acts on; wgf_dp_new starts with the paper's values. An
 * initiator that receives under a keypair older than reject_after_time - keepalive_timeout -
 * rekey_timeout (the kernel's last-minute rule) starts a new handshake. */
struct wgf_dp_time_limits {
    uint64_t rekey_after_time_ns;  /* an initiator's keypair this old asks for a new handshake */
    uint64_t reject_after_time_ns; /* a keypair this old neither sends nor receives */
    uint64_t keepalive_timeout_ns;
    uint64_t rekey_timeout_ns;
    uint64_t activity_report_ns; /* how long activity may wait before Python hears of it */
};
/* Replaces the limits (any thread; for a test hook that shortens the protocol's timers). 0, or
 * -EINVAL unless 0 < rekey_after_time < reject_after_time, keepalive_timeout + rekey_timeout
 * < reject_after_time and 0 < activity_report. */
int wgf_dp_set_time_limits(struct wgf_dp *dp, const struct wgf_dp_time_limits *limits);
void wgf_dp_get_time_limits(struct wgf_dp *dp, struct wgf_dp_time_limits *out);

/* The data plane's clock. A test may replace it (before the loop runs); the loop's own timers
 * then only fire when wgf_dp_run_timers is called. */
typedef uint64_t (*wgf_dp_clock_fn)(void *ctx);
void wgf_dp_set_clock(struct wgf_dp *dp, wgf_dp_clock_fn fn, void *ctx);
uint64_t wgf_dp_now(struct wgf_dp *dp);
/* Does what is due by now: zeroes keypairs whose time has come, reports waiting activity. The
 * loop calls it when its timer fires. */
void wgf_dp_run_timers(struct wgf_dp *dp);

/* ---- offloads (dataplane_offload.c, offload.h) ---- */

#define WGF_DP_OFFLOAD_TUN_VNET 0x01 /* the TUN fd was opened with IFF_VNET_HDR */
#define WGF_DP_OFFLOAD_TUN_TSO 0x02  /* TUNSETOFFLOAD CSUM|TSO4|TSO6: split super-packets */
#define WGF_DP_OFFLOAD_TUN_GRO 0x04  /* coalesce TCP segments written to the TUN */
#define WGF_DP_OFFLOAD_UDP_GSO 0x08  /* UDP_SEGMENT on send */
#define WGF_DP_OFFLOAD_UDP_GRO 0x10  /* UDP_GRO on receive */
#define WGF_DP_OFFLOAD_TUN_USO 0x20  /* result only: the kernel also takes USO4|USO6 */
/* Before the loop runs (or between runs). TUN_VNET must match how the fd was opened (the data
 * plane asked it with TUNGETIFF: a fd that is no TUN has no vnet header); TSO and GRO need it.
 * Returns the flags in effect (what the kernel refused is off), -EINVAL when TUN_VNET does not
 * match the fd (nothing changed), or -ENOMEM. UDP GSO
 * may later turn itself off when a send is refused (wgf_dp_get_offloads tells). UDP GRO carries
 * over to sockets set later. */
int wgf_dp_set_offloads(struct wgf_dp *dp, unsigned flags);
unsigned wgf_dp_get_offloads(struct wgf_dp *dp);

/* ---- the device's identity ---- */

/* The device's public key (NULL: it has no private key), handed down whenever the private key
 * changes. Without one every handshake datagram is dropped and no peer can start a handshake,
 * so packets staged meanwhile count against WGF_DP_STRANDED_MAX. With one, initiations and
 * responses must carry mac1 keyed with HASH(LABEL_MAC1 || public_key), and cookie replies are
 * sealed with HASH(LABEL_COOKIE || public_key) (cookie.h). Returns 0. */
int wgf_dp_set_identity(struct wgf_dp *dp, const uint8_t *public_key);

/* Under load (dataplane_handshake.c): the control queue holds WGF_DP_UNDER_LOAD_QUEUE datagrams
 * or more, or did within WGF_DP_UNDER_LOAD_AFTER_NS. Then initiations and responses need a valid
 * mac2 (else a cookie reply answers them) and pass a per-source token bucket (ratelimiter.h). */
#define WGF_DP_UNDER_LOAD_QUEUE (WGF_DP_HANDSHAKE_QUEUE / 8)
#define WGF_DP_UNDER_LOAD_AFTER_NS WGF_NSEC_PER_SEC
int wgf_dp_under_load(struct wgf_dp *dp);
/* For tests: replaces the cookie secret (born now). 0. */
int wgf_dp_set_cookie_secret(struct wgf_dp *dp, const uint8_t secret[32]);

/* ---- peers, handshakes and keypairs (any thread) ---- */

/* 0; -EINVAL for id 0; -EEXIST; -ENOMEM. */
int wgf_dp_peer_add(struct wgf_dp *dp, uint32_t peer);
/* Zeroes its keys, frees its receiver indices, drops its staged packets and removes its allowed
 * IPs. 0 or -ENOENT. */
int wgf_dp_peer_remove(struct wgf_dp *dp, uint32_t peer);
/* ep of AF_INET, AF_INET6 or AF_UNSPEC (forget it). Packets that waited for an endpoint go out
 * (or ask for a handshake again). 0, -ENOENT or -EAFNOSUPPORT. */
int wgf_dp_peer_set_endpoint(struct wgf_dp *dp, uint32_t peer, const union wgf_dp_endpoint *ep);
int wgf_dp_peer_get_endpoint(struct wgf_dp *dp, uint32_t peer, union wgf_dp_endpoint *ep);
/* As wgf_dp_peer_set_endpoint, and what we send the peer goes out from src (NULL or AF_UNSPEC:
 * the route chooses), as a handshake that came to src from ep asks. Setting the endpoint alone
 * (a configured one) forgets the source. Roaming keeps both up to date: each authenticated
 * data message's source and local address. */
int wgf_dp_peer_set_endpoint_from(struct wgf_dp *dp, uint32_t peer,
                                  const union wgf_dp_endpoint *ep, const struct wgf_dp_source *src);
int wgf_dp_peer_get_source(struct wgf_dp *dp, uint32_t peer, struct wgf_dp_source *src);

/* Sends one handshake-type datagram (1 to WGF_DP_MSG_MAX bytes) for the control plane on the
 * socket of to's family, from src when it is given (AF_INET/AF_INET6), else from the peer's
 * source if peer (0: none) has one and its endpoint is to. A source the host no longer has (the
 * send fails with EINVAL, EADDRNOTAVAIL or ENETUNREACH) is forgotten (the peer's too) and the
 * route chooses: the kernel's rule. 0 or -errno (-EMSGSIZE: a bad length; -EAFNOSUPPORT: no
 * socket for to). Any thread. */
int wgf_dp_send_datagram(struct wgf_dp *dp, uint32_t peer, const union wgf_dp_endpoint *to,
                         const struct wgf_dp_source *src, const uint8_t *data, size_t len);

/* The receiver index for the peer's new handshake: random, unique among every index the data
 * plane holds, and replacing (freeing) the index of the peer's previous handshake in flight.
 * Responses and cookie replies carry it back; a keypair installed from the handshake takes it
 * over. 0 and *index set, -ENOENT or -ENOMEM. */
int wgf_dp_peer_begin_handshake(struct wgf_dp *dp, uint32_t peer, uint32_t *index);
/* Frees the index of the peer's handshake in flight, if any (the handshake was abandoned).
 * 0 or -ENOENT. */
int wgf_dp_peer_end_handshake(struct wgf_dp *dp, uint32_t peer);

/* A keypair a finished handshake derived, going down to the data plane. */
struct wgf_dp_keypair {
    uint32_t local_index;  /* ours (the handshake's, from wgf_dp_peer_begin_handshake) */
    uint32_t remote_index; /* theirs: we put it in the data messages we send */
    uint8_t send_key[WGF_AEAD_KEY_LEN];
    uint8_t receive_key[WGF_AEAD_KEY_LEN];
    int is_initiator;
    uint64_t created_ns; /* the data plane's clock */
};
/* Initiator: becomes current at once (previous <- old current, or <- an unconfirmed next, in
 * which case the old current is retired) and staged packets are flushed. Responder: becomes
 * next, retiring an older next, and current once a data packet under it authenticates. Clears
 * the peer's "handshake wanted" flag and schedules the zeroing of every key
 * WGF_ZERO_KEYS_AFTER_REJECTS x reject_after_time from now (the session is derived now, whatever
 * created_ns says about the keys' age). Retired keys are zeroed and their indices freed. The
 * caller should wipe its copy of kp. 0, -ENOENT, or -ESTALE (local_index is not the peer's
 * handshake in flight: nothing changed). */
int wgf_dp_peer_install_keypair(struct wgf_dp *dp, uint32_t peer, const struct wgf_dp_keypair *kp);
/* Zeroes and forgets all the peer's keypairs (a configuration change that ends its sessions):
 * the next packet asks for a handshake. 0 or -ENOENT. */
int wgf_dp_peer_expire_keypairs(struct wgf_dp *dp, uint32_t peer);
/* Schedules the zeroing of the peer's keys WGF_ZERO_KEYS_AFTER_REJECTS x reject_after_time from
 * now, unless one is scheduled already (a handshake gave up). 0 or -ENOENT. */
int wgf_dp_peer_expire_later(struct wgf_dp *dp, uint32_t peer);
/* Asks the loop to send a keepalive (an empty data message) under the current keypair, or the
 * staged packets instead if any wait (as the kernel does); without a usable keypair, a
 * "handshake wanted" event is raised instead. 0 or -ENOENT. */
int wgf_dp_peer_send_keepalive(struct wgf_dp *dp, uint32_t peer);
/* The initiator's confirmation of a keypair it just installed: a keepalive, unless data under it
 * went out already or waits staged (then that goes and confirms it, as in the kernel, which
 * sends a keepalive only when nothing is staged). 0 or -ENOENT. */
int wgf_dp_peer_confirm_session(struct wgf_dp *dp, uint32_t peer);
/* Drops the peer's staged packets (a handshake gave up) and clears its "handshake wanted" flag
 * so the next packet asks again. Returns how many were dropped, or -ENOENT. */
int wgf_dp_peer_drop_staged(struct wgf_dp *dp, uint32_t peer);
/* Adds to the peer's byte counters the handshake messages the control plane exchanged with it
 * (the kernel counts every message of a peer). 0 or -ENOENT. */
int wgf_dp_peer_count_bytes(struct wgf_dp *dp, uint32_t peer, uint64_t rx, uint64_t tx);

/* Authenticated traffic of a peer, as the control plane's timers want it. 0 means never/none. */
struct wgf_dp_activity {
    uint64_t tx_any_ns;        /* the last authenticated packet sent (keepalives included) */
    uint64_t rx_any_ns;        /* the last authenticated packet received */
    uint64_t tx_data_first_ns; /* the first data packet sent since the last one received */
    uint64_t rx_data_first_ns; /* the first data packet received since the last one sent */
    uint64_t rx_data_last_ns;  /* the last data packet received */
};

struct wgf_dp_peer_info {
    union wgf_dp_endpoint endpoint;
    uint64_t rx_bytes, tx_bytes; /* whole messages, authenticated / handed to the socket */
    uint64_t rx_packets, tx_packets;
    struct wgf_dp_activity activity;
    uint32_t staged;
    int has_current;      /* a current keypair exists (usable or not) */
    int has_next;
    int current_is_initiator;
    uint64_t current_age_ns;
    uint64_t current_send_counter;
    uint32_t keypairs_live; /* keypair slots holding keys (previous, current, next: at most 3) */
    int handshake_in_flight; /* an index from wgf_dp_peer_begin_handshake is held */
    uint64_t zero_at_ns;     /* when the keys will be zeroed; 0: not scheduled */
};
/* 0 or -ENOENT. */
int wgf_dp_peer_get_info(struct wgf_dp *dp, uint32_t peer, struct wgf_dp_peer_info *info);

/* The table the data plane routes with; owned by dp, alive until wgf_dp_free. The control plane
 * edits the allowed IPs directly. */
struct wgf_allowedips *wgf_dp_allowedips(struct wgf_dp *dp);
/* The receiver-index space, for reading (wgf_index_table_lookup) only: its entries are made and
 * removed by the functions above. A handshake in flight maps to WGF_DP_INDEX_HANDSHAKE. */
struct wgf_index_table *wgf_dp_index_table(struct wgf_dp *dp);
#define WGF_DP_INDEX_HANDSHAKE UINT32_MAX

/* ---- what Python hears (dataplane_events.c) ---- */

/* Readable once something waits: handshake datagrams, peer events, or activity whose report is
 * due. A reader calls wgf_dp_events_ack first, then takes; whatever arrives after the ack, and
 * whatever a take leaves behind, makes the fd readable again, so no wake-up is lost. */
int wgf_dp_event_fd(struct wgf_dp *dp);
void wgf_dp_events_ack(struct wgf_dp *dp);

/* A type 1, 2 or 3 datagram the DoS defence admitted (dataplane_handshake.c), and where it came
 * from. */
struct wgf_dp_handshake_msg {
    uint32_t len;
    union wgf_dp_endpoint source;
    struct wgf_dp_source local; /* the address it came to (AF_UNSPEC if the kernel did not say) */
    uint8_t data[WGF_DP_MSG_MAX];
};
/* Pops up to max handshake datagrams (oldest first); returns how many. */
size_t wgf_dp_take_handshakes(struct wgf_dp *dp, struct wgf_dp_handshake_msg *out, size_t max);

/* What happened to a peer since it was last reported. Events are bits, coalesced per peer until
 * taken (each peer waits in the list at most once), so none is ever lost to a full queue; each
 * carries the latest state it concerns. */
enum wgf_dp_event_bits {
    WGF_DP_EV_ACTIVITY = 1 << 0,          /* packets went out or came in: see activity */
    WGF_DP_EV_HANDSHAKE_WANTED = 1 << 1,  /* packets wait and no keypair may send, or the current
                                           * one is due for a rekey (on send or on receive) */
    WGF_DP_EV_KEYPAIR_CONFIRMED = 1 << 2, /* the responder's next keypair authenticated data and
                                           * is now current: confirmed_index, confirmed_ns */
    WGF_DP_EV_KEYPAIR_RETIRED = 1 << 3,   /* keypairs rotated out or expired and zeroed: the last
                                           * one's index in retired_index */
    WGF_DP_EV_KEYS_ZEROED = 1 << 4,       /* every key zeroed on schedule (no session for
                                           * WGF_ZERO_KEYS_AFTER_REJECTS x reject_after_time) */
    WGF_DP_EV_ENDPOINT_CHANGED = 1 << 5,  /* roaming: authenticated data came from endpoint */
    WGF_DP_EV_STAGED_DROPPED = 1 << 6,    /* staged packets discarded: staged_dropped of them */
};
struct wgf_dp_peer_event {
    uint32_t peer;
    uint32_t events; /* enum wgf_dp_event_bits */
    uint32_t confirmed_index, retired_index;
    uint32_t staged_dropped; /* since the last report */
    uint64_t confirmed_ns;
    union wgf_dp_endpoint endpoint; /* the peer's endpoint now */
    struct wgf_dp_activity activity; /* always the latest */
};
/* Takes up to max peers' events, in the order the peers first had one; returns how many. */
size_t wgf_dp_take_peer_events(struct wgf_dp *dp, struct wgf_dp_peer_event *out, size_t max);

/* ---- statistics (any thread; each field is read atomically, the set is not a snapshot) ---- */

enum wgf_dp_drop {
    WGF_DROP_NO_PEER,            /* send: no allowed IP matches the destination (or bad header) */
    WGF_DROP_OVERSIZE,           /* send: packet from TUN larger than the MTU */
    WGF_DROP_NO_ENDPOINT,        /* send: the peer has no endpoint */
    WGF_DROP_NO_SOCKET,          /* send: no socket of the endpoint's family */
    WGF_DROP_STAGED_OVERFLOW,    /* send: oldest staged packet pushed out (queue or pool full) */
    WGF_DROP_STAGED_DISCARDED,   /* control: staged packets dropped or their peer removed */
    WGF_DROP_UDP_SEND,           /* send: sendmmsg failed for the packet */
    WGF_DROP_TRUNCATED,          /* receive: datagram larger than a buffer */
    WGF_DROP_BAD_TYPE,           /* receive: unknown type or empty datagram */
    WGF_DROP_BAD_SIZE,           /* receive: wrong size for its type */
    WGF_DROP_UNKNOWN_INDEX,      /* receive: receiver index of no live keypair */
    WGF_DROP_KEYPAIR_EXPIRED,    /* receive: keypair older than REJECT_AFTER_TIME */
    WGF_DROP_REPLAY,             /* receive: counter replayed, too old, or over the limit */
    WGF_DROP_AUTH,               /* receive: tag did not verify */
    WGF_DROP_INNER_HEADER,       /* receive: decrypted packet is not a sane IPv4/IPv6 packet */
    WGF_DROP_SOURCE_NOT_ALLOWED, /* receive: inner source address not the peer's allowed IP */
    WGF_DROP_TUN_WRITE,          /* receive: write to TUN failed */
    WGF_DROP_CONTROL_QUEUE_FULL, /* a handshake datagram found its queue full */
    WGF_DROP_BAD_OFFLOAD,        /* send: a TUN read with a bad virtio header / super-packet */
    /* Handshake datagrams refused before the control queue (dataplane_handshake.c): */
    WGF_DROP_NO_IDENTITY,             /* the device has no private key */
    WGF_DROP_UNKNOWN_HANDSHAKE_INDEX, /* a response or cookie reply for no handshake of ours */
    WGF_DROP_BAD_MAC1,                /* mac1 did not verify */
    WGF_DROP_COOKIE_REQUIRED,         /* under load without a valid mac2: a cookie reply went */
    WGF_DROP_RATE_LIMITED,            /* under load, valid mac2, but its source had no token */
    WGF_DROP_COUNT
};
const char *wgf_dp_drop_name(int reason);

struct wgf_dp_stats {
    uint64_t polls, wakeups;
    uint64_t tun_read_calls, tun_write_calls;
    uint64_t sendmmsg_calls, sendmmsg_packets, sendmmsg_max; /* packets per call: sum / calls */
    uint64_t recvmmsg_calls, recvmmsg_packets, recvmmsg_max;
    uint64_t tx_packets, tx_bytes;  /* data messages sealed, keepalives included */
    uint64_t rx_packets, rx_bytes;  /* data messages authenticated */
    uint64_t keepalives_sent, keepalives_received;
    uint64_t staged, staged_flushed;
    uint64_t handshake_messages_up; /* type 1/2/3 datagrams queued for Python */
    uint64_t events_up;             /* peer events raised (coalesced ones count once) */
    uint64_t event_signals;         /* times the event fd was made readable */
    uint64_t tun_super_read;        /* TSO/USO super-packets read from TUN and split */
    uint64_t tun_super_written;     /* coalesced TCP super-packets written to TUN */
    uint64_t udp_gso_sends;         /* sendmmsg entries carrying several datagrams */
    uint64_t udp_gso_refused; /* UDP GSO refused: off from then on, or (EMSGSIZE) for that size */
    uint64_t udp_gro_receives;      /* receives that returned several datagrams */
    uint64_t source_forgotten;      /* a peer's source address was gone: the route chose */
    uint64_t keypairs_zeroed;       /* keypairs zeroed on schedule */
    uint64_t staged_held;           /* a gauge: staged buffers held now (of WGF_DP_STAGED_POOL) */
    uint64_t cookie_replies_sent;   /* cookie replies handed to the socket */
    uint64_t cookie_replies_limited; /* cookie_required drops left unanswered (reply limit) */
    uint64_t drops[WGF_DROP_COUNT];
};
void wgf_dp_get_stats(struct wgf_dp *dp, struct wgf_dp_stats *out);

#endif
