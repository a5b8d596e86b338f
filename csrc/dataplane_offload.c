/* The data plane's offloads (see offload.h): how the TUN, send and receive paths use them.
 *
 *   TUN read   one read (the loop is dataplane_send.c's) may return a TCP/UDP super-packet; it is
 *              split into tx buffers, as many as the batch has room for, the rest on the next
 *              call (wgf_dp_split_pending).
 *   TUN write  the packets a receive batch accepted are coalesced per TCP flow; one writev each.
 *   UDP send   runs of equal-size datagrams to one endpoint become one UDP_SEGMENT entry; a
 *              kernel that refuses (EIO, EINVAL) turns GSO off for good, and the run goes plain.
 *   UDP recv   with UDP_GRO a receive buffer (64 KiB) may hold many datagrams of one sender;
 *              each becomes a slot of the ordinary receive path, in place.
 * Every offload is off until wgf_dp_set_offloads turns it on. */
#define _GNU_SOURCE /* sendmmsg, recvmmsg */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "dataplane_internal.h"
#include "offload.h"

#define TUNSETOFFLOAD_REQ 0x400454d0u /* _IOW('T', 208, unsigned int) */
#define TUN_F_CSUM 0x01
#define TUN_F_TSO4 0x02
#define TUN_F_TSO6 0x04
#define TUN_F_USO4 0x20
#define TUN_F_USO6 0x40
#define TUNGETIFF_REQ 0x800454d2u /* _IOR('T', 210, unsigned int) */
#define IFF_VNET_HDR_FLAG 0x4000  /* IFF_VNET_HDR in struct ifreq's ifr_flags */

#define SUPER_MAX (WGF_VNET_HDR_LEN + 65535 + WGF_IP6_HDR_LEN) /* one TUN read */
#define GRO_BUF_SIZE 65536                                     /* one UDP_GRO receive */
#define GRO_BUFS 64

struct wgf_dp_offload {
    /* TUN read: the super-packet being split. */
    uint8_t *super;
    size_t super_len;
    struct wgf_gso_plan plan;
    size_t plan_next; /* next segment; plan.count when none is pending */
    /* TUN write. */
    struct wgf_gro gro;
    uint8_t gro_hdr[WGF_GRO_HDR_SPACE];
    struct iovec gro_iov[WGF_GRO_MAX + 2];
    /* UDP send. */
    struct mmsghdr gso_msgs[WGF_DP_BATCH];
    uint8_t gso_cmsg[WGF_DP_BATCH][WGF_DP_CMSG_SPACE] __attribute__((aligned(8)));
    uint32_t gso_start[WGF_DP_BATCH], gso_len[WGF_DP_BATCH];
    socklen_t namelens[WGF_DP_BATCH];
    /* Datagrams this long or longer are not segmented: the path refused a segment of this size
     * (EMSGSIZE: UDP GSO never fragments, so a jumbo tunnel MTU over a smaller outer MTU cannot
     * use it), and plain sends let IP fragment them. SIZE_MAX until a refusal; forgotten when
     * the sockets or the MTU change. */
    size_t gso_size_limit;
    /* UDP receive. */
    bool gro_wanted; /* asked for: sockets set later get it too */
    bool gro_fd[2];  /* UDP_GRO on the IPv4 / IPv6 socket */
    uint8_t *gro_mem;
    struct mmsghdr gro_msgs[GRO_BUFS];
    struct iovec gro_recv_iov[GRO_BUFS];
    union wgf_dp_endpoint gro_from[GRO_BUFS];
    uint8_t gro_cmsg[GRO_BUFS][WGF_DP_CMSG_SPACE] __attribute__((aligned(8)));
    struct wgf_dp_source gro_local[GRO_BUFS];
    uint8_t gro_tos[GRO_BUFS];
    uint8_t *rx_own[WGF_DP_BATCH]; /* the slots' own buffers, for plain receives */
};

/* Every per-batch array here is indexed by the receive batch's slots. */
_Static_assert(WGF_GRO_MAX >= WGF_DP_BATCH, "a TUN write takes a whole receive batch");

int wgf_dp_tun_vnet_hdr(int fd)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    if (ioctl(fd, TUNGETIFF_REQ, &ifr) != 0)
        return -errno;
    return (ifr.ifr_flags & IFF_VNET_HDR_FLAG) != 0;
}

void wgf_dp_offload_free(struct wgf_dp *dp)
{
    if (dp->off == NULL)
        return;
    free(dp->off->super);
    free(dp->off->gro_mem);
    free(dp->off);
    dp->off = NULL;
}

/* UDP_GRO on each socket there is; true if one took it. */
static bool enable_gro(struct wgf_dp *dp)
{
    struct wgf_dp_offload *o = dp->off;
    const int fds[2] = {dp->udp4_fd, dp->udp6_fd};
    for (int f = 0; f < 2; f++)
        o->gro_fd[f] = fds[f] >= 0 && wgf_udp_enable_gro(fds[f]) == 0;
    return o->gro_fd[0] || o->gro_fd[1];
}

void wgf_dp_offload_sockets_changed(struct wgf_dp *dp)
{
    if (dp->off != NULL)
        dp->off->gso_size_limit = SIZE_MAX; /* another path, perhaps */
    if (dp->off == NULL || !dp->off->gro_wanted)
        return;
    /* A device that went down without sockets keeps UDP GRO asked for, for when it is up. */
    if (enable_gro(dp) || (dp->udp4_fd < 0 && dp->udp6_fd < 0))
        __atomic_or_fetch(&dp->offloads, WGF_DP_OFFLOAD_UDP_GRO, __ATOMIC_RELEASE);
    else
        __atomic_and_fetch(&dp->offloads, ~(unsigned)WGF_DP_OFFLOAD_UDP_GRO, __ATOMIC_RELEASE);
}

void wgf_dp_offload_buffers_changed(struct wgf_dp *dp)
{
    struct wgf_dp_offload *o = dp->off;
    if (o == NULL)
        return;
    memcpy(o->rx_own, dp->rx_bufs, sizeof(dp->rx_bufs));
    o->gso_size_limit = SIZE_MAX;
    if (o->plan_next < o->plan.count) /* segments cut for the old MTU */
        WGF_DP_DROP(dp, WGF_DROP_OVERSIZE, o->plan.count - o->plan_next);
    o->plan.count = o->plan_next = 0;
}

int wgf_dp_set_offloads(struct wgf_dp *dp, unsigned flags)
{
    /* A vnet-header TUN prefixes every packet with a virtio header: read without one, a peer's
     * inner bytes would be taken for that header (and the other way round). Only the fd knows,
     * so a caller's flag that disagrees with it is refused before anything changes. */
    if (!!(flags & WGF_DP_OFFLOAD_TUN_VNET) != dp->tun_vnet_hdr)
        return -EINVAL;
    if (dp->off == NULL) {
        dp->off = calloc(1, sizeof(*dp->off));
        if (dp->off == NULL)
            return -ENOMEM;
        memcpy(dp->off->rx_own, dp->rx_bufs, sizeof(dp->rx_bufs));
        dp->off->gso_size_limit = SIZE_MAX;
    }
    struct wgf_dp_offload *o = dp->off;
    unsigned on = 0;

    if (flags & WGF_DP_OFFLOAD_TUN_VNET) {
        if (o->super == NULL && (o->super = malloc(SUPER_MAX)) == NULL)
            return -ENOMEM;
        on |= WGF_DP_OFFLOAD_TUN_VNET;
        /* TSO (and USO where the kernel has it, >= 6.2); CSUM alone is no use to us. */
        unsigned tso = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
        unsigned want = flags & WGF_DP_OFFLOAD_TUN_TSO ? tso | TUN_F_USO4 | TUN_F_USO6 : 0;
        if (ioctl(dp->tun_fd, TUNSETOFFLOAD_REQ, want) == 0) {
            if (want)
                on |= WGF_DP_OFFLOAD_TUN_TSO | WGF_DP_OFFLOAD_TUN_USO;
        } else if (want && ioctl(dp->tun_fd, TUNSETOFFLOAD_REQ, tso) == 0) {
            on |= WGF_DP_OFFLOAD_TUN_TSO;
        } else {
            ioctl(dp->tun_fd, TUNSETOFFLOAD_REQ, 0u); /* whatever it had before: nothing */
        }
        if (flags & WGF_DP_OFFLOAD_TUN_GRO)
            on |= WGF_DP_OFFLOAD_TUN_GRO;
        o->plan_next = o->plan.count = 0;
    }
    if (flags & WGF_DP_OFFLOAD_UDP_GSO)
        on |= WGF_DP_OFFLOAD_UDP_GSO;
    o->gro_wanted = flags & WGF_DP_OFFLOAD_UDP_GRO;
    if (o->gro_wanted) {
        if (o->gro_mem == NULL && (o->gro_mem = malloc((size_t)GRO_BUFS * GRO_BUF_SIZE)) == NULL)
            return -ENOMEM;
        /* Without sockets yet (a device that is down), it goes on with the sockets. */
        if (enable_gro(dp) || (dp->udp4_fd < 0 && dp->udp6_fd < 0))
            on |= WGF_DP_OFFLOAD_UDP_GRO;
    }
    __atomic_store_n(&dp->offloads, on, __ATOMIC_RELEASE);
    return (int)on;
}

unsigned wgf_dp_get_offloads(struct wgf_dp *dp)
{
    return __atomic_load_n(&dp->offloads, __ATOMIC_ACQUIRE);
}

/* ---- TUN read ---- */

bool wgf_dp_split_pending(const struct wgf_dp *dp)
{
    return dp->off != NULL && dp->off->plan_next < dp->off->plan.count;
}

/* Moves the pending super-packet's segments into tx_bufs[*n..], as many as the batch has room
 * for; the rest wait for the next batch. */
void wgf_dp_split_into_batch(struct wgf_dp *dp, size_t *lens, size_t *n)
{
    struct wgf_dp_offload *o = dp->off;
    const uint8_t *pkt = o->super + WGF_VNET_HDR_LEN;
    while (*n < WGF_DP_BATCH && o->plan_next < o->plan.count) {
        lens[*n] = wgf_gso_segment(&o->plan, pkt, o->plan_next++,
                                   dp->tx_bufs[*n] + WGF_DATA_HEADER_LEN);
        (*n)++;
    }
}

uint8_t *wgf_dp_vnet_read_buffer(struct wgf_dp *dp, size_t *cap)
{
    *cap = SUPER_MAX;
    return dp->off->super;
}

void wgf_dp_vnet_take(struct wgf_dp *dp, size_t r, size_t *lens, size_t *n)
{
    struct wgf_dp_offload *o = dp->off;
    if (r <= WGF_VNET_HDR_LEN) {
        WGF_DP_DROP(dp, WGF_DROP_BAD_OFFLOAD, 1);
        return;
    }
    struct wgf_vnet_hdr h;
    wgf_vnet_hdr_read(o->super, &h);
    uint8_t *pkt = o->super + WGF_VNET_HDR_LEN;
    size_t len = r - WGF_VNET_HDR_LEN;
    int count = wgf_offload_prepare(&h, pkt, len, &o->plan);
    if (count < 0) {
        o->plan.count = o->plan_next = 0;
        WGF_DP_DROP(dp, WGF_DROP_BAD_OFFLOAD, 1);
        return;
    }
    if (count == 0) { /* an ordinary packet (its partial checksum, if any, now complete) */
        if (len > dp->mtu) {
            WGF_DP_DROP(dp, WGF_DROP_OVERSIZE, 1);
            return;
        }
        memcpy(dp->tx_bufs[*n] + WGF_DATA_HEADER_LEN, pkt, len);
        lens[(*n)++] = len;
        return;
    }
    if (o->plan.hdr_len + o->plan.seg_size > dp->mtu) {
        o->plan.count = o->plan_next = 0;
        WGF_DP_DROP(dp, WGF_DROP_OVERSIZE, (uint64_t)count);
        return;
    }
    WGF_DP_STAT_ADD(dp, tun_super_read, 1);
    o->plan_next = 0;
    wgf_dp_split_into_batch(dp, lens, n);
}

/* ---- TUN write ---- */

void wgf_dp_tun_write_vnet(struct wgf_dp *dp, uint8_t *const *pkts, const size_t *lens, size_t n)
{
    struct wgf_dp_offload *o = dp->off;
    size_t items;
    if (wgf_dp_get_offloads(dp) & WGF_DP_OFFLOAD_TUN_GRO) {
        items = wgf_tcp_coalesce(&o->gro, pkts, lens, n);
    } else {
        /* Every packet on its own (the same item form, so one write path). */
        for (size_t i = 0; i < n; i++) {
            o->gro.items[i] = (struct wgf_gro_item){.first = (uint32_t)i, .last = (uint32_t)i,
                                                    .count = 1};
            o->gro.next[i] = UINT32_MAX;
        }
        items = o->gro.n_items = n;
    }
    for (size_t k = 0; k < items; k++) {
        size_t total, iovcnt = wgf_gro_item_iov(&o->gro, k, pkts, lens, o->gro_hdr, o->gro_iov,
                                                &total);
        ssize_t w = writev(dp->tun_fd, o->gro_iov, (int)iovcnt);
        WGF_DP_STAT_ADD(dp, tun_write_calls, 1);
        if (w != (ssize_t)total)
            WGF_DP_DROP(dp, WGF_DROP_TUN_WRITE, o->gro.items[k].count);
        else if (o->gro.items[k].count > 1)
            WGF_DP_STAT_ADD(dp, tun_super_written, 1);
    }
}

/* ---- UDP send ---- */

/* Groups whose segments the path refused before (gso_size_limit) become single datagrams, in
 * place and in order. Returns the new group count (at most the datagram count). */
static size_t split_oversized_groups(struct wgf_dp_offload *o, const struct iovec *iov,
                                     size_t groups)
{
    if (o->gso_size_limit == SIZE_MAX)
        return groups;
    uint32_t start[WGF_DP_BATCH], len[WGF_DP_BATCH];
    size_t out = 0;
    for (size_t g = 0; g < groups; g++) {
        bool split = o->gso_len[g] > 1 && iov[o->gso_start[g]].iov_len >= o->gso_size_limit;
        for (uint32_t k = 0; k < (split ? o->gso_len[g] : 1); k++) {
            start[out] = o->gso_start[g] + k;
            len[out++] = split ? 1 : o->gso_len[g];
        }
    }
    memcpy(o->gso_start, start, out * sizeof(start[0]));
    memcpy(o->gso_len, len, out * sizeof(len[0]));
    return out;
}

/* Group g's control: the source and ECN field of its first datagram (all agree), and its
 * segment size when it carries several. */
static void build_group_control(struct wgf_dp *dp, int fam, size_t g)
{
    struct wgf_dp_offload *o = dp->off;
    struct wgf_dp_out *out = &dp->out;
    unsigned s = o->gso_start[g];
    uint16_t segment = o->gso_len[g] > 1 ? (uint16_t)out->iov[fam][s].iov_len : 0;
    wgf_dp_cmsg_build(&o->gso_msgs[g].msg_hdr, o->gso_cmsg[g], out->to[fam][s].sa.sa_family,
                      &out->meta[fam][s].src, out->meta[fam][s].ecn, segment);
}

/* Sends dp->out's datagrams of fam as GSO groups. Returns the index of the first datagram not
 * handed to the kernel because it refused GSO (then GSO is off, or off for segments of that
 * size and larger: gso_size_limit), or n when all went. */
unsigned wgf_dp_transmit_gso(struct wgf_dp *dp, int fam, int fd)
{
    struct wgf_dp_offload *o = dp->off;
    struct wgf_dp_out *out = &dp->out;
    unsigned n = out->n[fam];

    for (unsigned i = 0; i < n; i++)
        o->namelens[i] = out->msgs[fam][i].msg_hdr.msg_namelen;
    /* One control message covers a group: its datagrams share source and ECN field too. */
    size_t groups = wgf_udp_gso_groups(out->iov[fam], out->to[fam], sizeof(out->to[fam][0]),
                                       o->namelens, out->meta[fam], sizeof(out->meta[fam][0]), n,
                                       WGF_UDP_GSO_MAX_SEGMENTS, o->gso_start, o->gso_len);
    groups = split_oversized_groups(o, out->iov[fam], groups);
    for (size_t g = 0; g < groups; g++) {
        struct msghdr *m = &o->gso_msgs[g].msg_hdr;
        unsigned s = o->gso_start[g];
        memset(&o->gso_msgs[g], 0, sizeof(o->gso_msgs[g]));
        m->msg_name = &out->to[fam][s];
        m->msg_namelen = o->namelens[s];
        m->msg_iov = &out->iov[fam][s];
        m->msg_iovlen = o->gso_len[g];
        build_group_control(dp, fam, g);
    }
    size_t sent = 0;
    while (sent < groups) {
        int r = sendmmsg(fd, &o->gso_msgs[sent], (unsigned)(groups - sent), MSG_DONTWAIT);
        WGF_DP_STAT_ADD(dp, sendmmsg_calls, 1);
        if (r > 0) {
            uint64_t pkts = 0;
            for (size_t g = sent; g < sent + (size_t)r; g++) {
                pkts += o->gso_len[g];
                if (o->gso_len[g] > 1)
                    WGF_DP_STAT_ADD(dp, udp_gso_sends, 1);
            }
            WGF_DP_STAT_ADD(dp, sendmmsg_packets, pkts);
            wgf_dp_stat_max(&dp->stats.sendmmsg_max, pkts);
            sent += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && wgf_dp_source_gone(errno) &&
            out->meta[fam][o->gso_start[sent]].src.family != 0) {
            /* The source address is gone (before blaming GSO for an EINVAL): go without it. */
            wgf_dp_out_drop_source(dp, fam, o->gso_start[sent]);
            for (size_t g = sent; g < groups; g++)
                build_group_control(dp, fam, g);
            continue;
        }
        if (r < 0 && errno == EMSGSIZE && o->gso_len[sent] > 1) {
            /* Segments too large for the path: this size and larger go plain from now on,
             * beginning with the rest of this batch. */
            size_t size = out->iov[fam][o->gso_start[sent]].iov_len;
            if (size < o->gso_size_limit)
                o->gso_size_limit = size;
            WGF_DP_STAT_ADD(dp, udp_gso_refused, 1);
            return o->gso_start[sent];
        }
        if (r < 0 && (errno == EIO || errno == EINVAL) && o->gso_len[sent] > 1) {
            /* This kernel or device will not segment for us: remember, and go plain. */
            __atomic_and_fetch(&dp->offloads, ~(unsigned)WGF_DP_OFFLOAD_UDP_GSO,
                               __ATOMIC_RELEASE);
            WGF_DP_STAT_ADD(dp, udp_gso_refused, 1);
            return o->gso_start[sent];
        }
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS) {
            WGF_DP_DROP(dp, WGF_DROP_UDP_SEND, o->gso_len[sent]);
            sent++;
            continue;
        }
        uint64_t left = 0;
        for (size_t g = sent; g < groups; g++)
            left += o->gso_len[g];
        WGF_DP_DROP(dp, WGF_DROP_UDP_SEND, left); /* socket full: UDP may drop */
        break;
    }
    return n;
}

/* ---- UDP receive ---- */

bool wgf_dp_gro_on(const struct wgf_dp *dp, int fd)
{
    unsigned on = __atomic_load_n(&dp->offloads, __ATOMIC_ACQUIRE);
    if (dp->off == NULL || !(on & WGF_DP_OFFLOAD_UDP_GRO))
        return false;
    return fd == dp->udp4_fd ? dp->off->gro_fd[0] : dp->off->gro_fd[1];
}

void wgf_dp_rx_own_buffers(struct wgf_dp *dp)
{
    if (dp->off != NULL)
        memcpy(dp->rx_bufs, dp->off->rx_own, sizeof(dp->rx_bufs));
}

void wgf_dp_receive_gro(struct wgf_dp *dp, int fd)
{
    struct wgf_dp_offload *o = dp->off;
    for (size_t i = 0; i < GRO_BUFS; i++) {
        o->gro_recv_iov[i].iov_base = o->gro_mem + i * GRO_BUF_SIZE;
        o->gro_recv_iov[i].iov_len = GRO_BUF_SIZE;
        memset(&o->gro_msgs[i], 0, sizeof(o->gro_msgs[i]));
        o->gro_msgs[i].msg_hdr.msg_name = &o->gro_from[i];
        o->gro_msgs[i].msg_hdr.msg_namelen = sizeof(o->gro_from[i]);
        o->gro_msgs[i].msg_hdr.msg_iov = &o->gro_recv_iov[i];
        o->gro_msgs[i].msg_hdr.msg_iovlen = 1;
        o->gro_msgs[i].msg_hdr.msg_control = o->gro_cmsg[i];
        o->gro_msgs[i].msg_hdr.msg_controllen = WGF_DP_CMSG_SPACE;
    }
    int n = recvmmsg(fd, o->gro_msgs, GRO_BUFS, MSG_DONTWAIT, NULL);
    WGF_DP_STAT_ADD(dp, recvmmsg_calls, 1);
    if (n <= 0)
        return;
    /* Each datagram of each buffer becomes a slot of the ordinary path, in place. */
    size_t slots = 0;
    uint64_t datagrams = 0;
    for (int i = 0; i < n; i++) {
        uint8_t *buf = o->gro_mem + (size_t)i * GRO_BUF_SIZE;
        size_t len = o->gro_msgs[i].msg_len;
        size_t seg = wgf_udp_gro_size(&o->gro_msgs[i].msg_hdr);
        /* The kernel coalesces only datagrams whose IP headers agree (TOS / traffic class
         * included), so one report covers every segment. */
        wgf_dp_cmsg_parse(&o->gro_msgs[i].msg_hdr, &o->gro_local[i], &o->gro_tos[i]);
        int flags = o->gro_msgs[i].msg_hdr.msg_flags & MSG_TRUNC;
        if (seg == 0 || seg > len)
            seg = len ? len : 1;
        else if (seg < len)
            WGF_DP_STAT_ADD(dp, udp_gro_receives, 1);
        for (size_t off = 0; off < len || (len == 0 && off == 0); off += seg) {
            if (slots == WGF_DP_BATCH) {
                wgf_dp_handle_datagrams(dp, slots);
                slots = 0;
            }
            dp->rx_bufs[slots] = buf + off;
            dp->rx_msgs[slots].msg_len = (unsigned)(len - off < seg ? len - off : seg);
            dp->rx_msgs[slots].msg_hdr.msg_flags = flags;
            dp->rx_from[slots] = o->gro_from[i];
            dp->rx_local[slots] = o->gro_local[i];
            dp->rx_tos[slots] = o->gro_tos[i];
            slots++;
            datagrams++;
            if (len == 0)
                break;
        }
    }
    WGF_DP_STAT_ADD(dp, recvmmsg_packets, datagrams);
    wgf_dp_stat_max(&dp->stats.recvmmsg_max, datagrams);
    if (slots > 0)
        wgf_dp_handle_datagrams(dp, slots);
}
