/* The data plane's private structures, shared by dataplane*.c only. */
#ifndef WGF_DATAPLANE_INTERNAL_H
#define WGF_DATAPLANE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "byteorder.h"
#include "cookie.h"
#include "dataplane.h"
#include "ecn.h"
#include "memzero.h"
#include "ratelimiter.h"

/* Slots of a peer's keypair storage. A keypair keeps its slot for life, so the index table's
 * {peer, slot} entries never move; previous/current/next only name slots. */
#define WGF_DP_KEYPAIR_SLOTS 3
#define WGF_DP_SLOT_NONE 0xff

struct wgf_dp_keypair_slot {
    bool live;
    uint64_t serial; /* unique per install (never 0): a copy of the key is checked against it */
    bool is_initiator;
    uint32_t local_index, remote_index;
    uint64_t created_ns;
    uint64_t send_counter; /* next counter to seal with */
    uint8_t send_key[WGF_AEAD_KEY_LEN];
    uint8_t receive_key[WGF_AEAD_KEY_LEN];
    struct wgf_replay replay;
};

struct wgf_dp_peer {
    uint32_t id;
    union wgf_dp_endpoint endpoint;
    struct wgf_dp_source source; /* what we send it leaves from; AF_UNSPEC: the route chooses */
    struct wgf_dp_keypair_slot slots[WGF_DP_KEYPAIR_SLOTS];
    uint8_t previous, current, next; /* slot numbers or WGF_DP_SLOT_NONE */
    bool handshake_wanted;  /* a HANDSHAKE_WANTED event is out; cleared by a keypair install */
    bool flush_pending;     /* the loop should send the staged packets */
    bool keepalive_pending; /* the loop should send a keepalive */
    bool stranded;          /* cannot start a handshake: no endpoint, or no identity */
    bool handshake_in_flight;
    uint32_t handshake_index; /* the index of the handshake in flight */
    uint64_t zero_at_ns;      /* every key is zeroed then; 0: not scheduled */
    /* Staged packets: a ring of pool buffers (packet at WGF_DATA_HEADER_LEN, len bytes). */
    uint8_t *staged[WGF_DP_STAGED_MAX];
    uint16_t staged_len[WGF_DP_STAGED_MAX];
    uint32_t staged_head, staged_count;
    uint64_t rx_bytes, tx_bytes, rx_packets, tx_packets;
    struct wgf_dp_activity activity;
    /* Events not yet taken (dataplane_events.c): the bits and the state they report, and the
     * peer's place in the list of peers with events. */
    uint32_t events;
    uint32_t confirmed_index, retired_index, staged_dropped;
    uint64_t confirmed_ns;
    bool listed;
    struct wgf_dp_peer *ev_prev, *ev_next;
};

/* Room for a datagram's control messages: a source (in6_pktinfo), a TOS / traffic class and a
 * UDP_SEGMENT or UDP_GRO size. */
#define WGF_DP_CMSG_SPACE 128

/* What a datagram carries besides its bytes and destination; compared whole (memcmp) when
 * datagrams are grouped for UDP GSO, so it is zeroed before it is filled. */
struct wgf_dp_out_meta {
    struct wgf_dp_source src; /* AF_UNSPEC, or the socket's family */
    uint32_t peer;
    uint8_t ecn; /* the inner packet's ECN field, for the outer header */
    uint8_t pad[3];
};

/* Datagrams ready for sendmmsg, one array per socket. */
enum { WGF_DP_FAM4 = 0, WGF_DP_FAM6 = 1 };
struct wgf_dp_out {
    unsigned n[2];
    struct mmsghdr msgs[2][WGF_DP_BATCH];
    struct iovec iov[2][WGF_DP_BATCH];
    union wgf_dp_endpoint to[2][WGF_DP_BATCH];
    struct wgf_dp_out_meta meta[2][WGF_DP_BATCH];
    uint8_t cmsg[2][WGF_DP_BATCH][WGF_DP_CMSG_SPACE] __attribute__((aligned(8)));
};

/* Sealing happens outside dp->lock so that the receive thread's opening is not held up behind
 * it. Under the lock a run reserves its counters and copies what it needs (key, index,
 * endpoint); after the lock the send thread seals the runs in reservation order, so the wire
 * order is the counter order. */
struct wgf_dp_seal_run {
    uint8_t key[WGF_AEAD_KEY_LEN];
    uint32_t remote_index;
    uint64_t first_counter;
    int fam;
    socklen_t to_len;
    union wgf_dp_endpoint to;
    struct wgf_dp_source src; /* AF_UNSPEC, or the family of the socket it goes out on */
    uint32_t peer;
    size_t start, n; /* bufs[start..start+n) of the batch */
};
struct wgf_dp_seal_batch {
    size_t n_runs, n_bufs;
    struct wgf_dp_seal_run runs[WGF_DP_BATCH];
    uint8_t *bufs[WGF_DP_BATCH]; /* packets at WGF_DATA_HEADER_LEN */
    size_t lens[WGF_DP_BATCH];
};

/* Opening, likewise: under the lock each receiver index's run is checked (keypair, age, replay
 * window) and its key copied; the open itself runs unlocked; under the lock again the run is
 * accepted only if the keypair is still the one (serial) it was opened with. */
struct wgf_dp_open_run {
    uint8_t key[WGF_AEAD_KEY_LEN];
    uint32_t peer;
    uint8_t slot;
    uint64_t serial;
    size_t start, n; /* pkts[start..start+n) */
};
struct wgf_dp_open_batch {
    size_t n_runs, n_pkts;
    struct wgf_dp_open_run runs[WGF_DP_BATCH];
    struct wgf_packet pkts[WGF_DP_BATCH];
    size_t slot_of[WGF_DP_BATCH]; /* the rx slot each packet came from */
};

struct wgf_dp {
    int tun_fd, udp4_fd, udp6_fd;
    int wake_fd;  /* eventfd: control calls -> send thread */
    int event_fd; /* eventfd: loop -> Python (dataplane_events.c) */
    int timer_fd; /* timerfd: the send thread's timers (zeroing keys, reporting activity) */
    unsigned mtu;
    bool tun_vnet_hdr;           /* the TUN fd was opened with IFF_VNET_HDR (TUNGETIFF) */
    unsigned offloads;           /* atomic: WGF_DP_OFFLOAD_* in effect */
    struct wgf_dp_offload *off;  /* offload buffers (dataplane_offload.c); NULL until asked */
    size_t tx_buf_size, rx_buf_size;
    int stop;         /* atomic */
    int work_pending; /* atomic: some peer has flush_pending or keepalive_pending */
    /* Two threads (wgf_dp_run): the caller's sends (TUN -> UDP, control work, timers), a second
     * one receives (UDP -> TUN). Each owns the buffers marked send- or receive-owned below. */
    int rx_wake_fd; /* eventfd: stop or pause -> receive thread */
    int halt;       /* atomic: one thread of a wgf_dp_run pair ended; the other follows */
    int rx_error;   /* atomic: the receive thread's fatal errno (negative), else 0 */
    unsigned threads; /* 1: one loop does both directions; 2: receive gets its own thread */
    int once_busy;    /* atomic: a wgf_dp_run_once is running */
    wgf_dp_clock_fn clock;
    void *clock_ctx;

    /* Pausing the loop threads at a round boundary to replace what they use (dataplane.c). */
    pthread_mutex_t control_lock; /* one reconfiguration at a time */
    pthread_mutex_t pause_lock;
    pthread_cond_t pause_cond;
    int pause_requested; /* atomic; set and cleared under pause_lock */
    unsigned loops_active, loops_parked; /* under pause_lock */

    /* Everything below up to the queue is guarded by lock. */
    pthread_mutex_t lock;
    struct wgf_dp_time_limits limits;
    uint64_t rekey_on_receive_age_ns; /* reject_after - keepalive_timeout - rekey_timeout */
    struct wgf_dp_peer **peers; /* open addressing by id, linear probing */
    size_t peer_cap, peer_count;
    uint8_t **pool;             /* free staged buffers (a stack); only the send side takes */
    size_t pool_free;
    size_t stranded_staged;     /* staged buffers held by stranded peers */
    bool identity;              /* the device has a private key */
    uint64_t keypair_serial;    /* last wgf_dp_keypair_slot.serial handed out */
    uint64_t next_zero_at_ns;   /* the earliest peer zero_at_ns, 0 for none */
    uint64_t report_due_ns;     /* activity waits to be reported until then; 0: none waits */
    struct wgf_dp_peer *ev_head, *ev_tail; /* peers with events, oldest first */
    /* Set under lock (atomically, so that wgf_dp_flush_signals may look without it). */
    int timer_stale;            /* the timer fd must be re-armed (after the lock is dropped) */
    int signal_due;             /* Python must be signalled (after the lock is dropped) */

    struct wgf_allowedips *allowedips; /* own locks */
    struct wgf_index_table *index;     /* own locks; changed under lock */

    /* Send-owned. */
    uint8_t *tx_mem;                    /* tx buffers + pool */
    uint8_t *tx_bufs[WGF_DP_BATCH];     /* buffer i's packet sits at WGF_DATA_HEADER_LEN */
    uint8_t *keepalive_bufs;            /* WGF_DP_BATCH x WGF_DATA_MIN_LEN */
    struct wgf_dp_out out;
    struct wgf_dp_seal_batch seal;
    /* Receive-owned (on its own cache lines: the send thread writes the fields above). */
    uint8_t *rx_mem __attribute__((aligned(64)));
    uint8_t *rx_bufs[WGF_DP_BATCH];
    struct wgf_dp_open_batch open;
    struct mmsghdr rx_msgs[WGF_DP_BATCH];
    struct iovec rx_iov[WGF_DP_BATCH];
    union wgf_dp_endpoint rx_from[WGF_DP_BATCH];
    /* Cookie replies made while handling one batch, sent together after it, each from the
     * address its initiation came to (as any answer). */
    size_t n_replies;
    uint8_t replies[WGF_DP_BATCH][WGF_COOKIE_REPLY_LEN];
    union wgf_dp_endpoint reply_to[WGF_DP_BATCH];
    struct wgf_dp_source reply_from[WGF_DP_BATCH];
    uint8_t reply_cmsg[WGF_DP_BATCH][WGF_DP_CMSG_SPACE] __attribute__((aligned(8)));
    struct wgf_dp_source rx_local[WGF_DP_BATCH]; /* the address each datagram came to */
    uint8_t rx_tos[WGF_DP_BATCH];                /* and its outer TOS / traffic class */
    uint8_t rx_cmsg[WGF_DP_BATCH][WGF_DP_CMSG_SPACE] __attribute__((aligned(8)));

    /* Handshake datagrams up to Python (dataplane_events.c). */
    pthread_mutex_t queue_lock;
    struct wgf_dp_handshake_msg *queue;
    size_t queue_head, queue_count;
    int signalled; /* atomic: event_fd was written and not yet acknowledged */

    /* Handshake admission (dataplane_handshake.c): the DoS defence's state, under admit_lock. */
    pthread_mutex_t admit_lock;
    struct wgf_cookie_checker cookies;  /* our mac1/cookie keys and the cookie secret */
    struct wgf_ratelimiter *ratelimiter;   /* handshakes with a valid mac2, by /32 or /64 */
    struct wgf_ratelimiter *reply_limiter; /* cookie replies, by address and port */
    uint64_t last_under_load_ns;        /* 0: never under load */

    struct wgf_dp_stats stats; /* every field updated and read with relaxed atomics */
};

#define WGF_DP_STAT_ADD(dp, field, v) \
    __atomic_fetch_add(&(dp)->stats.field, (uint64_t)(v), __ATOMIC_RELAXED)
#define WGF_DP_DROP(dp, reason, v) \
    __atomic_fetch_add(&(dp)->stats.drops[(reason)], (uint64_t)(v), __ATOMIC_RELAXED)
void wgf_dp_stat_max(uint64_t *field, uint64_t v);

static inline uint64_t wgf_dp_age(uint64_t now, uint64_t then) { return now > then ? now - then : 0; }
/* When keys derived now are zeroed (three REJECT_AFTER_TIMEs). Under dp->lock. */
static inline uint64_t wgf_dp_zero_time(const struct wgf_dp *dp, uint64_t now)
{
    return now + WGF_ZERO_KEYS_AFTER_REJECTS * dp->limits.reject_after_time_ns;
}

/* dataplane_peer.c; all under dp->lock. */
struct wgf_dp_peer *wgf_dp_peer_find(struct wgf_dp *dp, uint32_t id);
void wgf_dp_peers_free_all(struct wgf_dp *dp);
/* The current keypair if it may still send, else NULL. */
struct wgf_dp_keypair_slot *wgf_dp_sending_keypair(const struct wgf_dp *dp, struct wgf_dp_peer *p,
                                                   uint64_t now);
/* Raises one HANDSHAKE_WANTED event for p unless one is already out. */
void wgf_dp_want_handshake(struct wgf_dp *dp, struct wgf_dp_peer *p);
/* Responder's next keypair authenticated data: previous <- current <- next. True when it flagged
 * staged packets for the send side (which the caller wakes once it dropped the lock). */
bool wgf_dp_promote_next(struct wgf_dp *dp, struct wgf_dp_peer *p, uint64_t now);
/* Authenticated data came from ep to local: they are the peer's endpoint and source now (a new
 * endpoint is reported). */
void wgf_dp_peer_roamed(struct wgf_dp *dp, struct wgf_dp_peer *p, const union wgf_dp_endpoint *ep,
                        const struct wgf_dp_source *local, uint64_t now);
/* Sending from src failed as if the host no longer had it: the peer forgets it (if it is still
 * the peer's), so the route chooses from now on. Takes dp->lock. */
void wgf_dp_peer_forget_source(struct wgf_dp *dp, uint32_t peer, const struct wgf_dp_source *src);
/* Moves the packet in *buf (len bytes) to p's staged queue, giving *buf a free pool buffer in
 * exchange. Pushes out the oldest staged packet when the queue, the pool or the stranded
 * peers' share of it is full. */
void wgf_dp_stage(struct wgf_dp *dp, struct wgf_dp_peer *p, uint8_t **buf, size_t len);
/* Takes p's oldest staged packet off its queue (the buffer is the caller's to return). */
uint8_t *wgf_dp_unstage(struct wgf_dp *dp, struct wgf_dp_peer *p, size_t *len);
/* Zeroes every keypair of p whose zero time has come; returns the earliest one still ahead (or
 * 0). Called by the timers. */
uint64_t wgf_dp_peer_zero_due(struct wgf_dp *dp, struct wgf_dp_peer *p, uint64_t now);
/* Asks the loop to do flagged per-peer work. */
void wgf_dp_kick(struct wgf_dp *dp);

/* dataplane_events.c */
/* Records events for p (under dp->lock): activity is reported when its report falls due,
 * anything else as soon as the lock is dropped (wgf_dp_flush_signals). */
void wgf_dp_peer_event(struct wgf_dp *dp, struct wgf_dp_peer *p, uint32_t events, uint64_t now);
/* Takes p off the list of peers with events (it is being removed). Under dp->lock. */
void wgf_dp_peer_unlist(struct wgf_dp *dp, struct wgf_dp_peer *p);
/* Makes the event fd readable (no lock held). */
void wgf_dp_signal(struct wgf_dp *dp);
/* After dropping dp->lock: signals Python and re-arms the timer fd if events asked for it. */
void wgf_dp_flush_signals(struct wgf_dp *dp);
/* 0, or -1 when the queue is full (counted). Takes queue_lock only. */
int wgf_dp_queue_handshake(struct wgf_dp *dp, const uint8_t *data, size_t len,
                           const union wgf_dp_endpoint *source, const struct wgf_dp_source *local);

/* dataplane_cmsg.c */
/* Asks fd (a UDP socket of family) to report each datagram's local address and TOS. */
void wgf_dp_cmsg_enable(int fd, int family);
/* A received message's local address (AF_UNSPEC if not reported) and TOS (0 if not). */
void wgf_dp_cmsg_parse(const struct msghdr *m, struct wgf_dp_source *local, uint8_t *tos);
/* Points m's control at space (WGF_DP_CMSG_SPACE bytes, aligned) holding a source (when src is
 * of family), a TOS / traffic class with ecn (when not 0) and a UDP_SEGMENT size (when not 0);
 * at nothing when none applies. */
void wgf_dp_cmsg_build(struct msghdr *m, uint8_t *space, int family,
                       const struct wgf_dp_source *src, uint8_t ecn, uint16_t segment);
/* Whether a send's errno says its source address is not (or no longer) the host's. */
bool wgf_dp_source_gone(int err);

/* dataplane_peer.c: the identity came or went; every peer's stranded state follows. Under
 * dp->lock. */
void wgf_dp_identity_changed(struct wgf_dp *dp);

/* dataplane_handshake.c: a type 1, 2 or 3 datagram of the right size meets the DoS defence and
 * goes to the control queue, or is dropped (counted), or answered with a cookie reply. */
void wgf_dp_admit_handshake(struct wgf_dp *dp, const uint8_t *msg, size_t len,
                            const union wgf_dp_endpoint *source, const struct wgf_dp_source *local);
/* Sends the cookie replies admission made during a batch (sendmmsg, one call per family). */
void wgf_dp_send_cookie_replies(struct wgf_dp *dp);

/* dataplane_send.c */
/* Reserves kp's next n counters for bufs[0..n) (packets at WGF_DATA_HEADER_LEN, lens[i] bytes)
 * and adds a run to dp->seal; the caller has checked the endpoint and that the batch has room.
 * Under dp->lock. wgf_dp_seal_flush then seals and queues them in dp->out. */
void wgf_dp_seal_reserve(struct wgf_dp *dp, struct wgf_dp_peer *p, struct wgf_dp_keypair_slot *kp,
                         uint8_t *const *bufs, const size_t *lens, size_t n, uint64_t now, int fam);
/* Seals dp->seal's runs in order into dp->out, wipes their keys, empties it. Not under the lock. */
void wgf_dp_seal_flush(struct wgf_dp *dp);
/* Which of dp->out's arrays p's endpoint goes to: WGF_DP_FAM4/6, or -WGF_DROP_NO_ENDPOINT or
 * -WGF_DROP_NO_SOCKET. */
int wgf_dp_out_family(const struct wgf_dp *dp, const struct wgf_dp_peer *p);
/* sendmmsg everything in dp->out and empty it. Not under the lock. */
void wgf_dp_transmit(struct wgf_dp *dp);
/* Datagram k of dp->out's fam array could not leave from its source: it and every later one of
 * the same peer and source go without (control rebuilt), and the peer forgets the source. */
void wgf_dp_out_drop_source(struct wgf_dp *dp, int fam, unsigned k);
/* One batch TUN -> UDP. 0 or a negative errno if the TUN fd failed. */
int wgf_dp_send_from_tun(struct wgf_dp *dp);
/* Flushes flagged staged queues and sends flagged keepalives. */
void wgf_dp_do_pending_work(struct wgf_dp *dp);

/* dataplane_receive.c: one batch UDP -> TUN from fd. */
void wgf_dp_receive_udp(struct wgf_dp *dp, int fd);

/* dataplane_receive.c: the ordinary receive path over rx slots 0..n (rx_bufs, rx_msgs' msg_len
 * and msg_flags, rx_from), however they were filled. */
void wgf_dp_handle_datagrams(struct wgf_dp *dp, size_t n);

/* dataplane_offload.c */
/* Whether fd is a TUN opened with IFF_VNET_HDR: 1 or 0, or a negative errno (-ENOTTY, -EINVAL:
 * not a TUN at all). */
int wgf_dp_tun_vnet_hdr(int fd);
void wgf_dp_offload_free(struct wgf_dp *dp);
/* A super-packet read from the TUN still has segments to send. */
bool wgf_dp_split_pending(const struct wgf_dp *dp);
/* Moves a pending super-packet's segments into tx_bufs[*n..] (packets at WGF_DATA_HEADER_LEN). */
void wgf_dp_split_into_batch(struct wgf_dp *dp, size_t *lens, size_t *n);
/* Where a read from a vnet-header TUN goes, and how much it may read. */
uint8_t *wgf_dp_vnet_read_buffer(struct wgf_dp *dp, size_t *cap);
/* Takes the r bytes such a read returned: an ordinary packet, or the segments of a super-packet
 * (as many as the batch has room for), appended to tx_bufs[*n..] and lens[]; a malformed or
 * oversized read is a counted drop. */
void wgf_dp_vnet_take(struct wgf_dp *dp, size_t r, size_t *lens, size_t *n);
/* Writes accepted packets to a vnet-header TUN, coalesced when TUN_GRO is on. */
void wgf_dp_tun_write_vnet(struct wgf_dp *dp, uint8_t *const *pkts, const size_t *lens, size_t n);
/* sendmmsg dp->out's fam datagrams as GSO groups; returns the first index left for the plain
 * path (GSO refused, or segments too large for the path), or out->n[fam]. */
unsigned wgf_dp_transmit_gso(struct wgf_dp *dp, int fam, int fd);
bool wgf_dp_gro_on(const struct wgf_dp *dp, int fd);
void wgf_dp_receive_gro(struct wgf_dp *dp, int fd);
/* Points rx_bufs back at the slots' own buffers (after GRO receives borrowed them). */
void wgf_dp_rx_own_buffers(struct wgf_dp *dp);
/* The loop is paused and new sockets are in place: UDP GRO goes on for them as it was asked. */
void wgf_dp_offload_sockets_changed(struct wgf_dp *dp);
/* The loop is paused and the rx/tx buffers were replaced (a new MTU): forget borrowed buffers
 * and the segments of a super-packet split for the old MTU (counted as oversize drops). */
void wgf_dp_offload_buffers_changed(struct wgf_dp *dp);

#endif
