/* The batched data plane: TUN <-> UDP for every peer of one interface, sealing and opening in
 * place, run by one thread that never touches Python.
 *
 *   send     (dataplane_send.c)    read a batch from TUN into buffers with 16 bytes of headroom,
 *                                  route each destination through allowedips, write the data
 *                                  header in front, pad, seal one run per peer, sendmmsg.
 *   receive  (dataplane_receive.c) recvmmsg a batch per UDP socket; transport data: receiver
 *                                  index -> keypair, replay check, open runs in place, replay
 *                                  update, promotion, roaming, inner-header and source checks,
 *                                  write to TUN. Handshake messages go up to the control queue.
 *   peers    (dataplane_peer.c)    peers, their previous/current/next keypairs, staged packets.
 *   control  (dataplane_control.c) the bounded queue of messages up to Python, and its eventfd.
 *   loop     (dataplane.c)         lifecycle, poll() loop, wake-ups, statistics.
 *
 * Threading. One thread calls wgf_dp_run, which starts a second: the caller's thread sends (TUN
 * -> UDP, and the work control calls flag), the second receives (UDP -> TUN); or one thread
 * calls wgf_dp_run_once for both. Any other thread may call the control functions at any time.
 * Peers and keypairs sit behind one mutex that each direction takes a few times per batch, never
 * per packet, never while sealing or opening (keys are copied out), never across a system call.
 * Work a control call asks of the loop (flush staged packets, send a keepalive) is flagged and
 * the send thread is woken through an eventfd. Messages up to Python go through a bounded ring;
 * its own eventfd (wgf_dp_event_fd) is readable exactly while the ring holds messages.
 *
 * Times are CLOCK_MONOTONIC nanoseconds (Python's time.monotonic_ns()). Peer ids are the
 * caller's, any value but 0. The fds stay the caller's: wgf_dp_new makes them non-blocking,
 * wgf_dp_free does not close them. */
#ifndef WGF_DATAPLANE_H
#define WGF_DATAPLANE_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "aead.h"
#include "allowedips.h"
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

#ifndef WGF_DP_BATCH /* a build may override it (-DWGF_DP_BATCH=N) to measure other sizes */
#define WGF_DP_BATCH 128 /* packets per TUN drain, recvmmsg and sendmmsg */
#endif
#define WGF_DP_STAGED_MAX 128     /* staged packets per peer waiting for a keypair */
#define WGF_DP_STAGED_POOL 1024   /* staged buffers shared by all peers */
#define WGF_DP_CONTROL_QUEUE 1024 /* messages waiting for Python */
#define WGF_DP_MSG_MAX WGF_MSG_INITIATION_LEN
#define WGF_DP_MTU_MIN 576
#define WGF_DP_MTU_MAX 9000

struct wgf_dp;

/* A UDP endpoint; sa.sa_family is AF_UNSPEC when there is none. */
union wgf_dp_endpoint {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
};

/* ---- lifecycle ---- */

/* Creates a data plane over a TUN fd (or anything that reads and writes one IP packet per call)
 * and up to two UDP sockets (either may be -1, not both). mtu is the TUN's MTU, in
 * [WGF_DP_MTU_MIN, WGF_DP_MTU_MAX]. 0 and *out set, or -EINVAL, -ENOMEM, or -errno. */
int wgf_dp_new(struct wgf_dp **out, int tun_fd, int udp4_fd, int udp6_fd, unsigned mtu);
/* The loop must have returned. Zeroes every key. NULL is ignored. */
void wgf_dp_free(struct wgf_dp *dp);
/* Runs until wgf_dp_stop: 0 on stop, or a negative errno when the TUN fd fails (interface gone).
 * With 2 threads (the default) the caller's thread sends (TUN -> UDP) and a thread it starts
 * receives (UDP -> TUN), so sealing and opening use two cores. */
int wgf_dp_run(struct wgf_dp *dp);
#define WGF_DP_THREADS_DEFAULT 2
/* 1 or 2 threads for the next wgf_dp_run (not while it runs). 0 or -EINVAL. */
int wgf_dp_set_threads(struct wgf_dp *dp, unsigned threads);
unsigned wgf_dp_get_threads(struct wgf_dp *dp);
/* One poll (waiting at most timeout_ms; -1 forever) and whatever work it found: 0, 1 if stopped,
 * or a negative errno as wgf_dp_run. For tests and callers that drive their own loop. */
int wgf_dp_run_once(struct wgf_dp *dp, int timeout_ms);
/* Asks the loop to return; safe from any thread, and before the loop starts. */
void wgf_dp_stop(struct wgf_dp *dp);

/* The keypair ages the data plane acts on; wgf_dp_new starts with the paper's values. An
 * initiator that receives under a keypair older than reject_after_time - keepalive_timeout -
 * rekey_timeout (the kernel's last-minute rule) starts a new handshake. */
struct wgf_dp_time_limits {
    uint64_t rekey_after_time_ns;  /* an initiator's keypair this old asks for a new handshake */
    uint64_t reject_after_time_ns; /* a keypair this old neither sends nor receives */
    uint64_t keepalive_timeout_ns;
    uint64_t rekey_timeout_ns;
};
/* Replaces the limits (any thread; for a test hook that shortens the protocol's timers). 0, or
 * -EINVAL unless 0 < rekey_after_time < reject_after_time and keepalive_timeout + rekey_timeout
 * < reject_after_time. */
int wgf_dp_set_time_limits(struct wgf_dp *dp, const struct wgf_dp_time_limits *limits);
void wgf_dp_get_time_limits(struct wgf_dp *dp, struct wgf_dp_time_limits *out);

/* ---- offloads (dataplane_offload.c, offload.h) ---- */

#define WGF_DP_OFFLOAD_TUN_VNET 0x01 /* the TUN fd was opened with IFF_VNET_HDR */
#define WGF_DP_OFFLOAD_TUN_TSO 0x02  /* TUNSETOFFLOAD CSUM|TSO4|TSO6: split super-packets */
#define WGF_DP_OFFLOAD_TUN_GRO 0x04  /* coalesce TCP segments written to the TUN */
#define WGF_DP_OFFLOAD_UDP_GSO 0x08  /* UDP_SEGMENT on send */
#define WGF_DP_OFFLOAD_UDP_GRO 0x10  /* UDP_GRO on receive */
#define WGF_DP_OFFLOAD_TUN_USO 0x20  /* result only: the kernel also takes USO4|USO6 */
/* Before the loop runs (or between runs). TUN_VNET must match how the fd was opened; TSO and
 * GRO need it. Returns the flags in effect (what the kernel refused is off), or -ENOMEM. UDP GSO
 * may later turn itself off when a send is refused (wgf_dp_get_offloads tells). */
int wgf_dp_set_offloads(struct wgf_dp *dp, unsigned flags);
unsigned wgf_dp_get_offloads(struct wgf_dp *dp);

/* ---- peers and keypairs (any thread) ---- */

/* 0; -EINVAL for id 0; -EEXIST; -ENOMEM. */
int wgf_dp_peer_add(struct wgf_dp *dp, uint32_t peer);
/* Zeroes its keys, drops its staged packets and removes its allowed IPs. 0 or -ENOENT. */
int wgf_dp_peer_remove(struct wgf_dp *dp, uint32_t peer);
/* ep of AF_INET, AF_INET6 or AF_UNSPEC (forget it). 0, -ENOENT or -EAFNOSUPPORT. */
int wgf_dp_peer_set_endpoint(struct wgf_dp *dp, uint32_t peer, const union wgf_dp_endpoint *ep);
int wgf_dp_peer_get_endpoint(struct wgf_dp *dp, uint32_t peer, union wgf_dp_endpoint *ep);

/* A keypair a finished handshake derived, going down to the data plane. */
struct wgf_dp_keypair {
    uint32_t local_index;  /* ours: peers put it in the data messages they send us */
    uint32_t remote_index; /* theirs: we put it in the data messages we send */
    uint8_t send_key[WGF_AEAD_KEY_LEN];
    uint8_t receive_key[WGF_AEAD_KEY_LEN];
    int is_initiator;
    uint64_t created_ns; /* CLOCK_MONOTONIC */
};
/* Initiator: becomes current at once (previous <- old current, or <- an unconfirmed next, in
 * which case the old current is retired) and staged packets are flushed. Responder: becomes
 * next, retiring an older next, and current once a data packet under it authenticates. Clears
 * the peer's "need handshake" flag. Retired keys are zeroed and their indices leave the index
 * table. The caller should wipe its copy of kp. 0, -ENOENT, -EEXIST (local index taken) or
 * -ENOMEM. */
int wgf_dp_peer_install_keypair(struct wgf_dp *dp, uint32_t peer, const struct wgf_dp_keypair *kp);
/* Zeroes and forgets all the peer's keypairs. 0 or -ENOENT. */
int wgf_dp_peer_expire_keypairs(struct wgf_dp *dp, uint32_t peer);
/* Asks the loop to send a keepalive (an empty data message) under the current keypair; without a
 * usable one, a "need handshake" event is raised instead. 0 or -ENOENT. */
int wgf_dp_peer_send_keepalive(struct wgf_dp *dp, uint32_t peer);
/* Drops the peer's staged packets (a handshake gave up) and clears its "need handshake" flag so
 * the next packet asks again. Returns how many were dropped, or -ENOENT. */
int wgf_dp_peer_drop_staged(struct wgf_dp *dp, uint32_t peer);

struct wgf_dp_peer_info {
    union wgf_dp_endpoint endpoint;
    uint64_t rx_bytes, tx_bytes; /* whole UDP payloads, authenticated / handed to the socket */
    uint64_t rx_packets, tx_packets;
    uint64_t last_sent_ns, last_received_ns; /* any authenticated data, keepalives included */
    uint64_t last_data_received_ns;          /* non-keepalive only */
    uint32_t staged;
    int has_current;      /* a current keypair exists (usable or not) */
    int has_next;
    int current_is_initiator;
    uint64_t current_age_ns;
    uint64_t current_send_counter;
    uint32_t keypairs_live; /* keypair slots holding keys (previous, current, next: at most 3) */
};
/* 0 or -ENOENT. Times are 0 for "never". */
int wgf_dp_peer_get_info(struct wgf_dp *dp, uint32_t peer, struct wgf_dp_peer_info *info);

/* The tables the data plane routes with; owned by dp, alive until wgf_dp_free. Python edits the
 * allowed IPs directly; the index table is filled by wgf_dp_peer_install_keypair and only read
 * by anyone else (receiver indices of unfinished handshakes belong to the control plane). */
struct wgf_allowedips *wgf_dp_allowedips(struct wgf_dp *dp);
struct wgf_index_table *wgf_dp_index_table(struct wgf_dp *dp);

/* ---- messages up to Python ---- */

enum wgf_dp_msg_kind {
    WGF_DP_MSG_HANDSHAKE = 1,         /* data[0..len) is a type 1/2/3 message from source */
    WGF_DP_MSG_NEED_HANDSHAKE = 2,    /* peer has packets to send and no (fresh) keypair */
    WGF_DP_MSG_KEYPAIR_CONFIRMED = 3, /* peer's next keypair authenticated data: now current */
};
struct wgf_dp_msg {
    uint32_t kind;
    uint32_t peer; /* events; 0 for handshake messages */
    uint32_t len;
    union wgf_dp_endpoint source;
    uint8_t data[WGF_DP_MSG_MAX];
};
/* Readable exactly while messages wait; never read it yourself, wgf_dp_poll keeps it in step. */
int wgf_dp_event_fd(struct wgf_dp *dp);
/* Pops up to max messages into out; returns how many. */
size_t wgf_dp_poll(struct wgf_dp *dp, struct wgf_dp_msg *out, size_t max);

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
    WGF_DROP_CONTROL_QUEUE_FULL, /* a message for Python found the queue full */
    WGF_DROP_BAD_OFFLOAD,        /* send: a TUN read with a bad virtio header / super-packet */
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
    uint64_t events_up;             /* need-handshake and keypair-confirmed events queued */
    uint64_t tun_super_read;        /* TSO/USO super-packets read from TUN and split */
    uint64_t tun_super_written;     /* coalesced TCP super-packets written to TUN */
    uint64_t udp_gso_sends;         /* sendmmsg entries carrying several datagrams */
    uint64_t udp_gso_refused;       /* the kernel refused UDP GSO (it is off from then on) */
    uint64_t udp_gro_receives;      /* receives that returned several datagrams */
    uint64_t drops[WGF_DROP_COUNT];
};
void wgf_dp_get_stats(struct wgf_dp *dp, struct wgf_dp_stats *out);

#endif
