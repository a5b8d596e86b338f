/* TUN -> UDP: drain a batch from TUN, route by destination, seal one run per peer in place,
 * sendmmsg; packets for a peer without a usable keypair are staged until a handshake finishes. */
#define _GNU_SOURCE /* sendmmsg, recvmmsg */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "dataplane_internal.h"

/* The kernel's rule: pad to a multiple of 16, but never past the MTU. len <= mtu here. */
static size_t padded_len(size_t len, unsigned mtu)
{
    size_t padded = (len + WGF_MESSAGE_PADDING_MULTIPLE - 1) &
                    ~(size_t)(WGF_MESSAGE_PADDING_MULTIPLE - 1);
    return padded > mtu ? (len > mtu ? len : mtu) : padded;
}

/* Which of dp->out's arrays a datagram to ep goes to (see wgf_dp_out_family). */
static int family_for(const struct wgf_dp *dp, const union wgf_dp_endpoint *ep)
{
    switch (ep->sa.sa_family) {
    case AF_INET:
        if (dp->udp4_fd >= 0)
            return WGF_DP_FAM4;
        return dp->udp6_fd >= 0 ? WGF_DP_FAM6 : -WGF_DROP_NO_SOCKET; /* as v4-mapped */
    case AF_INET6:
        return dp->udp6_fd >= 0 ? WGF_DP_FAM6 : -WGF_DROP_NO_SOCKET;
    default:
        return -WGF_DROP_NO_ENDPOINT;
    }
}

int wgf_dp_out_family(const struct wgf_dp *dp, const struct wgf_dp_peer *p)
{
    return family_for(dp, &p->endpoint);
}

/* An endpoint as the socket of fam wants it: an IPv4 endpoint on the IPv6 socket becomes
 * ::ffff:a.b.c.d. */
static socklen_t endpoint_for(const union wgf_dp_endpoint *ep, int fam, union wgf_dp_endpoint *to)
{
    memset(to, 0, sizeof(*to));
    if (fam == WGF_DP_FAM4) {
        to->in4 = ep->in4;
        return sizeof(to->in4);
    }
    if (ep->sa.sa_family == AF_INET6) {
        to->in6 = ep->in6;
    } else {
        to->in6.sin6_family = AF_INET6;
        to->in6.sin6_port = ep->in4.sin_port;
        to->in6.sin6_addr.s6_addr[10] = 0xff;
        to->in6.sin6_addr.s6_addr[11] = 0xff;
        memcpy(&to->in6.sin6_addr.s6_addr[12], &ep->in4.sin_addr, 4);
    }
    return sizeof(to->in6);
}

void wgf_dp_seal_reserve(struct wgf_dp *dp, struct wgf_dp_peer *p, struct wgf_dp_keypair_slot *kp,
                         uint8_t *const *bufs, const size_t *lens, size_t n, uint64_t now, int fam)
{
    struct wgf_dp_seal_batch *sb = &dp->seal;
    struct wgf_dp_seal_run *run = &sb->runs[sb->n_runs++];
    uint64_t bytes = 0, keepalives = 0;

    memcpy(run->key, kp->send_key, WGF_AEAD_KEY_LEN);
    run->remote_index = kp->remote_index;
    run->first_counter = kp->send_counter;
    kp->send_counter += n;
    run->fam = fam;
    run->to_len = endpoint_for(&p->endpoint, fam, &run->to);
    run->peer = p->id;
    /* The source goes along when it fits the socket (not for an IPv4 endpoint that goes out as
     * v4-mapped on the IPv6 socket). */
    if (p->source.family == (uint32_t)run->to.sa.sa_family)
        run->src = p->source;
    else
        memset(&run->src, 0, sizeof(run->src));
    run->start = sb->n_bufs;
    run->n = n;
    for (size_t i = 0; i < n; i++) {
        sb->bufs[sb->n_bufs] = bufs[i];
        sb->lens[sb->n_bufs++] = lens[i];
        bytes += WGF_DATA_HEADER_LEN + padded_len(lens[i], dp->mtu) + WGF_AEAD_TAG_LEN;
        keepalives += lens[i] == 0;
    }
    p->tx_bytes += bytes;
    p->tx_packets += n;
    /* For the timers: anything sent ends "data received, nothing sent since"; the first data
     * sent since something came back starts "data sent, nothing received since". */
    p->activity.tx_any_ns = now;
    p->activity.rx_data_first_ns = 0;
    if (keepalives < n && p->activity.tx_data_first_ns == 0)
        p->activity.tx_data_first_ns = now;
    wgf_dp_peer_event(dp, p, WGF_DP_EV_ACTIVITY, now);
    /* The kernel's keep_key_fresh on send: past REKEY_AFTER_MESSAGES for anyone, past
     * REKEY_AFTER_TIME for the initiator, a new handshake is due. */
    if (kp->send_counter > WGF_REKEY_AFTER_MESSAGES ||
        (kp->is_initiator && wgf_dp_age(now, kp->created_ns) > dp->limits.rekey_after_time_ns))
        wgf_dp_want_handshake(dp, p);
    WGF_DP_STAT_ADD(dp, tx_packets, n);
    WGF_DP_STAT_ADD(dp, tx_bytes, bytes);
    WGF_DP_STAT_ADD(dp, keepalives_sent, keepalives);
}

static void seal_one_run(struct wgf_dp *dp, struct wgf_dp_seal_run *run)
{
    struct wgf_packet pkts[WGF_DP_BATCH];
    struct wgf_dp_out *out = &dp->out;
    uint8_t *const *bufs = &dp->seal.bufs[run->start];
    const size_t *lens = &dp->seal.lens[run->start];
    int fam = run->fam;

    for (size_t i = 0; i < run->n; i++) {
        uint8_t *b = bufs[i];
        size_t padded = padded_len(lens[i], dp->mtu);
        /* RFC 6040: the outer header carries the inner packet's ECN field (read before sealing
         * turns the packet into ciphertext; a keepalive has none). */
        struct wgf_dp_out_meta *meta = &out->meta[fam][out->n[fam] + i];
        memset(meta, 0, sizeof(*meta));
        meta->src = run->src;
        meta->peer = run->peer;
        meta->ecn = wgf_ecn_inner(b + WGF_DATA_HEADER_LEN, lens[i]);
        uint64_t counter = run->first_counter + i;
        memset(b + WGF_DATA_HEADER_LEN + lens[i], 0, padded - lens[i]);
        b[0] = WGF_MSG_DATA;
        b[1] = b[2] = b[3] = 0;
        wgf_put_le32(b + 4, run->remote_index);
        wgf_put_le64(b + 8, counter);
        pkts[i].data = b + WGF_DATA_HEADER_LEN;
        pkts[i].len = padded;
        pkts[i].counter = counter;
        pkts[i].result = 0;
    }
    wgf_aead_seal_batch(pkts, run->n, run->key);
    wgf_memzero(run->key, sizeof(run->key));

    for (size_t i = 0; i < run->n; i++) {
        unsigned k = out->n[fam]++;
        out->to[fam][k] = run->to;
        out->iov[fam][k].iov_base = bufs[i];
        out->iov[fam][k].iov_len = WGF_DATA_HEADER_LEN + pkts[i].len + WGF_AEAD_TAG_LEN;
        memset(&out->msgs[fam][k], 0, sizeof(out->msgs[fam][k]));
        out->msgs[fam][k].msg_hdr.msg_name = &out->to[fam][k];
        out->msgs[fam][k].msg_hdr.msg_namelen = run->to_len;
        out->msgs[fam][k].msg_hdr.msg_iov = &out->iov[fam][k];
        out->msgs[fam][k].msg_hdr.msg_iovlen = 1;
        wgf_dp_cmsg_build(&out->msgs[fam][k].msg_hdr, out->cmsg[fam][k], run->to.sa.sa_family,
                          &out->meta[fam][k].src, out->meta[fam][k].ecn, 0);
    }
}

void wgf_dp_out_drop_source(struct wgf_dp *dp, int fam, unsigned k)
{
    struct wgf_dp_out *out = &dp->out;
    struct wgf_dp_source gone = out->meta[fam][k].src;
    uint32_t peer = out->meta[fam][k].peer;
    for (unsigned j = k; j < out->n[fam]; j++) {
        struct wgf_dp_out_meta *meta = &out->meta[fam][j];
        if (meta->peer != peer || memcmp(&meta->src, &gone, sizeof(gone)) != 0)
            continue;
        memset(&meta->src, 0, sizeof(meta->src));
        wgf_dp_cmsg_build(&out->msgs[fam][j].msg_hdr, out->cmsg[fam][j],
                          out->to[fam][j].sa.sa_family, NULL, meta->ecn, 0);
    }
    WGF_DP_STAT_ADD(dp, source_forgotten, 1);
    wgf_dp_peer_forget_source(dp, peer, &gone);
}

void wgf_dp_seal_flush(struct wgf_dp *dp)
{
    for (size_t r = 0; r < dp->seal.n_runs; r++)
        seal_one_run(dp, &dp->seal.runs[r]);
    dp->seal.n_runs = dp->seal.n_bufs = 0;
}

void wgf_dp_transmit(struct wgf_dp *dp)
{
    const int fds[2] = {dp->udp4_fd, dp->udp6_fd};
    for (int fam = 0; fam < 2; fam++) {
        unsigned n = dp->out.n[fam], sent = 0;
        if (n > 1 && (__atomic_load_n(&dp->offloads, __ATOMIC_ACQUIRE) & WGF_DP_OFFLOAD_UDP_GSO))
            sent = wgf_dp_transmit_gso(dp, fam, fds[fam]);
        while (sent < n) {
            int r = sendmmsg(fds[fam], &dp->out.msgs[fam][sent], n - sent, MSG_DONTWAIT);
            WGF_DP_STAT_ADD(dp, sendmmsg_calls, 1);
            if (r > 0) {
                WGF_DP_STAT_ADD(dp, sendmmsg_packets, r);
                wgf_dp_stat_max(&dp->stats.sendmmsg_max, (uint64_t)r);
                sent += (unsigned)r;
                continue;
            }
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0 && wgf_dp_source_gone(errno) && dp->out.meta[fam][sent].src.family != 0) {
                /* The address it was to leave from is gone: the route chooses, as the kernel. */
                wgf_dp_out_drop_source(dp, fam, sent);
                continue;
            }
            if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS) {
                /* This one datagram failed (unreachable, too big): skip it, send the rest. */
                WGF_DP_DROP(dp, WGF_DROP_UDP_SEND, 1);
                sent++;
                continue;
            }
            WGF_DP_DROP(dp, WGF_DROP_UDP_SEND, n - sent); /* socket full: UDP may drop */
            break;
        }
        dp->out.n[fam] = 0;
    }
}

/* A run of a batch's packets for one peer: seal what the current keypair may send, stage the
 * rest. idx[] are positions in dp->tx_bufs. Under dp->lock. */
static void send_or_stage(struct wgf_dp *dp, struct wgf_dp_peer *p, const size_t *idx, size_t m,
                          const size_t *lens, uint64_t now)
{
    struct wgf_dp_keypair_slot *kp = wgf_dp_sending_keypair(dp, p, now);
    size_t sealed = 0;

    if (kp != NULL && p->staged_count == 0) {
        int fam = wgf_dp_out_family(dp, p);
        if (fam < 0) {
            WGF_DP_DROP(dp, -fam, m);
            return;
        }
        uint8_t *bufs[WGF_DP_BATCH];
        size_t run_lens[WGF_DP_BATCH];
        uint64_t left = WGF_REJECT_AFTER_MESSAGES - kp->send_counter;
        sealed = m < left ? m : (size_t)left;
        for (size_t k = 0; k < sealed; k++) {
            bufs[k] = dp->tx_bufs[idx[k]];
            run_lens[k] = lens[idx[k]];
        }
        wgf_dp_seal_reserve(dp, p, kp, bufs, run_lens, sealed, now, fam);
    }
    if (sealed == m)
        return;
    /* Staged packets go out first, so packets queue behind them to keep their order. */
    for (size_t k = sealed; k < m; k++)
        wgf_dp_stage(dp, p, &dp->tx_bufs[idx[k]], lens[idx[k]]);
    if (wgf_dp_sending_keypair(dp, p, now) != NULL) {
        p->flush_pending = true;
        __atomic_store_n(&dp->work_pending, 1, __ATOMIC_RELEASE);
    } else {
        wgf_dp_want_handshake(dp, p);
    }
}

static void route_and_send(struct wgf_dp *dp, size_t n, const size_t *lens)
{
    const uint8_t *pkts[WGF_DP_BATCH] = {0}; /* gcc 12 cannot see n >= 1 */
    uint32_t peers[WGF_DP_BATCH];
    bool done[WGF_DP_BATCH];
    size_t idx[WGF_DP_BATCH];

    if (n == 0 || n > WGF_DP_BATCH)
        return;
    for (size_t i = 0; i < n; i++) {
        pkts[i] = dp->tx_bufs[i] + WGF_DATA_HEADER_LEN;
        done[i] = false;
    }
    wgf_allowedips_lookup_packets(dp->allowedips, pkts, lens, n, WGF_IP_DESTINATION, peers);

    pthread_mutex_lock(&dp->lock);
    uint64_t now = wgf_dp_now(dp);
    /* Group by peer (keeping each peer's order) so each peer's packets seal in one call. */
    for (size_t i = 0; i < n; i++) {
        if (done[i])
            continue;
        size_t m = 0;
        for (size_t j = i; j < n; j++) {
            if (!done[j] && peers[j] == peers[i]) {
                done[j] = true;
                idx[m++] = j;
            }
        }
        struct wgf_dp_peer *p = peers[i] == WGF_NO_PEER ? NULL : wgf_dp_peer_find(dp, peers[i]);
        if (p == NULL)
            WGF_DP_DROP(dp, WGF_DROP_NO_PEER, m);
        else
            send_or_stage(dp, p, idx, m, lens, now);
    }
    pthread_mutex_unlock(&dp->lock);
    wgf_dp_flush_signals(dp);
    wgf_dp_seal_flush(dp);
    wgf_dp_transmit(dp);
}

/* Fills tx_bufs (packets at WGF_DATA_HEADER_LEN) from the TUN until it is drained or the batch
 * is full: *n packets of lens[]. A plain TUN read is one packet, read in place; a read from a
 * vnet-header TUN goes to the offload buffer and is split or copied from there. 0, or a negative
 * errno if the TUN fd failed. */
static int tun_read_batch(struct wgf_dp *dp, size_t *lens, size_t *n_out)
{
    bool vnet = dp->off != NULL && (wgf_dp_get_offloads(dp) & WGF_DP_OFFLOAD_TUN_VNET);
    size_t n = 0, cap;
    int err = 0;

    if (vnet)
        wgf_dp_split_into_batch(dp, lens, &n); /* the rest of a super-packet goes first */
    while (n < WGF_DP_BATCH) {
        /* A plain read's room exceeds the MTU, so an oversized packet shows up as one rather than
         * truncated. */
        uint8_t *dst = vnet ? wgf_dp_vnet_read_buffer(dp, &cap)
                            : dp->tx_bufs[n] + WGF_DATA_HEADER_LEN;
        if (!vnet)
            cap = dp->tx_buf_size - WGF_DATA_HEADER_LEN - WGF_AEAD_TAG_LEN;
        ssize_t r = read(dp->tun_fd, dst, cap);
        WGF_DP_STAT_ADD(dp, tun_read_calls, 1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                err = -errno;
            break;
        }
        if (r == 0)
            break;
        if (vnet)
            wgf_dp_vnet_take(dp, (size_t)r, lens, &n);
        else if ((size_t)r > dp->mtu)
            WGF_DP_DROP(dp, WGF_DROP_OVERSIZE, 1);
        else
            lens[n++] = (size_t)r;
    }
    *n_out = n;
    return err;
}

int wgf_dp_send_from_tun(struct wgf_dp *dp)
{
    size_t lens[WGF_DP_BATCH], n;
    int err = tun_read_batch(dp, lens, &n);
    if (n > 0)
        route_and_send(dp, n, lens);
    return err;
}

void wgf_dp_do_pending_work(struct wgf_dp *dp)
{
    static const size_t zero_len = 0;
    bool more = true;

    __atomic_store_n(&dp->work_pending, 0, __ATOMIC_SEQ_CST);
    /* Rounds of at most WGF_DP_BATCH datagrams, so dp->out never overflows. Staged buffers go
     * back to the pool before they are sealed (after the lock): they are not reused before
     * wgf_dp_transmit, as only this (the send) thread takes from the pool. */
    while (more) {
        size_t room = WGF_DP_BATCH, keepalives = 0;
        more = false;
        pthread_mutex_lock(&dp->lock);
        uint64_t now = wgf_dp_now(dp);
        for (size_t i = 0; i < dp->peer_cap; i++) {
            struct wgf_dp_peer *p = dp->peers[i];
            if (p == NULL)
                continue;
            if (p->keepalive_pending && room > 0) {
                struct wgf_dp_keypair_slot *kp = wgf_dp_sending_keypair(dp, p, now);
                int fam = wgf_dp_out_family(dp, p);
                p->keepalive_pending = false;
                if (kp == NULL) {
                    wgf_dp_want_handshake(dp, p);
                } else if (p->staged_count > 0) {
                    p->flush_pending = true; /* they say what a keepalive would (the kernel's rule) */
                } else if (fam < 0) {
                    WGF_DP_DROP(dp, -fam, 1);
                } else {
                    uint8_t *buf = dp->keepalive_bufs + keepalives++ * WGF_DATA_MIN_LEN;
                    wgf_dp_seal_reserve(dp, p, kp, &buf, &zero_len, 1, now, fam);
                    room--;
                }
            }
            if (p->flush_pending && room > 0) {
                struct wgf_dp_keypair_slot *kp = wgf_dp_sending_keypair(dp, p, now);
                int fam = wgf_dp_out_family(dp, p);
                if (kp == NULL || fam < 0) {
                    /* Keep them staged: a keypair or an endpoint may still come. */
                    p->flush_pending = false;
                    if (kp == NULL && p->staged_count > 0)
                        wgf_dp_want_handshake(dp, p);
                } else {
                    uint8_t *bufs[WGF_DP_BATCH];
                    size_t lens[WGF_DP_BATCH], k = 0;
                    uint64_t left = WGF_REJECT_AFTER_MESSAGES - kp->send_counter;
                    while (k < room && k < left && p->staged_count > 0) {
                        bufs[k] = wgf_dp_unstage(dp, p, &lens[k]);
                        k++;
                    }
                    wgf_dp_seal_reserve(dp, p, kp, bufs, lens, k, now, fam);
                    for (size_t j = 0; j < k; j++)
                        dp->pool[dp->pool_free++] = bufs[j];
                    room -= k;
                    WGF_DP_STAT_ADD(dp, staged_flushed, k);
                    if (p->staged_count == 0)
                        p->flush_pending = false;
                }
            }
            if (p->keepalive_pending || p->flush_pending)
                more = true;
        }
        pthread_mutex_unlock(&dp->lock);
        wgf_dp_flush_signals(dp);
        wgf_dp_seal_flush(dp);
        wgf_dp_transmit(dp);
    }
}

/* One datagram to `to` from src (or from the route's choice when src is NULL): 0 or -errno. */
static int send_one(int fd, const union wgf_dp_endpoint *to, socklen_t to_len,
                    const struct wgf_dp_source *src, const uint8_t *data, size_t len)
{
    uint8_t control[WGF_DP_CMSG_SPACE] __attribute__((aligned(8)));
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    struct msghdr m = {.msg_name = (void *)to, .msg_namelen = to_len, .msg_iov = &iov,
                       .msg_iovlen = 1};
    wgf_dp_cmsg_build(&m, control, to->sa.sa_family, src, 0, 0);
    ssize_t r;
    do
        r = sendmsg(fd, &m, MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : 0;
}

int wgf_dp_send_datagram(struct wgf_dp *dp, uint32_t peer, const union wgf_dp_endpoint *to,
                         const struct wgf_dp_source *src, const uint8_t *data, size_t len)
{
    union wgf_dp_endpoint ep; /* to, its padding zeroed, to compare with the peer's */
    struct wgf_dp_source source;
    memset(&ep, 0, sizeof(ep));
    memset(&source, 0, sizeof(source));
    if (len == 0 || len > WGF_DP_MSG_MAX)
        return -EMSGSIZE; /* handshake messages only */
    if (to->sa.sa_family == AF_INET)
        ep.in4 = to->in4;
    else if (to->sa.sa_family == AF_INET6)
        ep.in6 = to->in6;
    else
        return -EAFNOSUPPORT;
    if (src != NULL && src->family == (uint32_t)to->sa.sa_family) {
        source.family = src->family;
        source.ifindex = src->ifindex;
        source.addr = src->addr;
    } else if (peer != 0) {
        pthread_mutex_lock(&dp->lock);
        struct wgf_dp_peer *p = wgf_dp_peer_find(dp, peer);
        if (p != NULL && memcmp(&p->endpoint, &ep, sizeof(ep)) == 0)
            source = p->source;
        pthread_mutex_unlock(&dp->lock);
    }
    /* The sockets are replaced only under control_lock (wgf_dp_set_sockets). */
    pthread_mutex_lock(&dp->control_lock);
    int fam = family_for(dp, &ep), err;
    if (fam < 0) {
        err = -EAFNOSUPPORT;
    } else {
        union wgf_dp_endpoint dest;
        socklen_t dest_len = endpoint_for(&ep, fam, &dest);
        int fd = fam == WGF_DP_FAM4 ? dp->udp4_fd : dp->udp6_fd;
        bool has_source = source.family == (uint32_t)dest.sa.sa_family;
        err = send_one(fd, &dest, dest_len, has_source ? &source : NULL, data, len);
        if (has_source && wgf_dp_source_gone(-err)) {
            /* The address is not the host's (any more): the route chooses, as the kernel. */
            err = send_one(fd, &dest, dest_len, NULL, data, len);
            if (peer != 0) /* a no-op unless the source was the peer's */
                wgf_dp_peer_forget_source(dp, peer, &source);
            WGF_DP_STAT_ADD(dp, source_forgotten, 1);
        }
    }
    pthread_mutex_unlock(&dp->control_lock);
    return err;
}
