/* UDP -> TUN: recvmmsg a batch; transport data is opened in place one run per keypair, checked
 * against the replay window and the peer's allowed IPs, and written to TUN; handshake messages
 * go through the DoS defence (dataplane_handshake.c) to the control queue. Nothing here allocates or calls Python. */
#define _GNU_SOURCE /* sendmmsg, recvmmsg */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "dataplane_internal.h"

#define IP4_HEADER_MIN 20
#define IP6_HEADER_LEN 40

/* The length of the IP packet at pkt (the decrypted payload, padding included), or 0 if it is
 * not a sane IPv4/IPv6 packet that fits. */
static size_t inner_ip_len(const uint8_t *pkt, size_t len)
{
    if (len >= IP4_HEADER_MIN && pkt[0] >> 4 == 4) {
        size_t total = wgf_get_be16(pkt + 2);
        if ((pkt[0] & 0x0f) >= 5 && total >= (size_t)(pkt[0] & 0x0f) * 4 && total <= len)
            return total;
    } else if (len >= IP6_HEADER_LEN && pkt[0] >> 4 == 6) {
        size_t total = IP6_HEADER_LEN + (size_t)wgf_get_be16(pkt + 4);
        if (total <= len)
            return total;
    }
    return 0;
}

/* A message type with its three reserved bytes zero, as the first little-endian word. */
static uint32_t message_word(const uint8_t *b, size_t len)
{
    return len >= 4 ? wgf_get_le32(b) : 0xffffffffu;
}

static size_t handshake_size(uint32_t type)
{
    switch (type) {
    case WGF_MSG_INITIATION:
        return WGF_MSG_INITIATION_LEN;
    case WGF_MSG_RESPONSE:
        return WGF_MSG_RESPONSE_LEN;
    case WGF_MSG_COOKIE_REPLY:
        return WGF_MSG_COOKIE_REPLY_LEN;
    default:
        return 0;
    }
}

/* A packet accepted so far, waiting for the allowed-IPs source check and the TUN write. */
struct accepted {
    size_t slot; /* position in the rx batch */
    size_t len;  /* inner IP packet length */
    struct wgf_dp_peer *peer;
};

/* Phase one, under dp->lock: checks one run of data messages under the same receiver index
 * (keypair, age, replay window) and adds what may be opened to dp->open with a copy of the key. */
static void check_run(struct wgf_dp *dp, uint32_t receiver, struct wgf_index_entry entry,
                      const size_t *run, size_t m, uint64_t now)
{
    struct wgf_dp_open_batch *ob = &dp->open;
    struct wgf_dp_peer *p = wgf_dp_peer_find(dp, entry.peer);
    uint32_t slot = entry.keypair;
    /* The entry was read before the lock: trust it only if the slot still holds that index. */
    if (p == NULL || slot >= WGF_DP_KEYPAIR_SLOTS || !p->slots[slot].live ||
        p->slots[slot].local_index != receiver) {
        WGF_DP_DROP(dp, WGF_DROP_UNKNOWN_INDEX, m); /* stale entry or no entry at all */
        return;
    }
    struct wgf_dp_keypair_slot *kp = &p->slots[slot];
    if (wgf_dp_age(now, kp->created_ns) > dp->limits.reject_after_time_ns) {
        WGF_DP_DROP(dp, WGF_DROP_KEYPAIR_EXPIRED, m);
        return;
    }
    struct wgf_dp_open_run *or = &ob->runs[ob->n_runs];
    or->start = ob->n_pkts;
    for (size_t r = 0; r < m; r++) {
        size_t i = run[r];
        uint64_t counter = wgf_get_le64(dp->rx_bufs[i] + 8);
        if (wgf_replay_check(&kp->replay, counter) != 0) {
            WGF_DP_DROP(dp, WGF_DROP_REPLAY, 1);
            continue;
        }
        struct wgf_packet *pkt = &ob->pkts[ob->n_pkts];
        pkt->data = dp->rx_bufs[i] + WGF_DATA_HEADER_LEN;
        pkt->len = dp->rx_msgs[i].msg_len - WGF_DATA_HEADER_LEN;
        pkt->counter = counter;
        pkt->result = -1;
        ob->slot_of[ob->n_pkts++] = i;
    }
    or->n = ob->n_pkts - or->start;
    if (or->n == 0)
        return;
    memcpy(or->key, kp->receive_key, WGF_AEAD_KEY_LEN);
    or->peer = p->id;
    or->slot = (uint8_t)slot;
    or->serial = kp->serial;
    ob->n_runs++;
}

/* Phase three, under dp->lock: takes an opened run's results into its keypair, if that keypair
 * is still the one the key was copied from (a control call may have retired it meanwhile). Sets
 * *kick when staged packets now wait for the send side. */
static size_t accept_run(struct wgf_dp *dp, const struct wgf_dp_open_run *or, uint64_t now,
                         struct accepted *acc, size_t n_acc, bool *kick)
{
    struct wgf_dp_open_batch *ob = &dp->open;
    struct wgf_dp_peer *p = wgf_dp_peer_find(dp, or->peer);
    if (p == NULL || !p->slots[or->slot].live || p->slots[or->slot].serial != or->serial) {
        WGF_DP_DROP(dp, WGF_DROP_UNKNOWN_INDEX, or->n);
        return n_acc;
    }
    uint8_t slot = or->slot;
    struct wgf_dp_keypair_slot *kp = &p->slots[slot];
    /* Counted once per run: the send thread's counters share these cache lines. */
    uint64_t packets = 0, bytes = 0, keepalives = 0;
    size_t last = 0; /* the rx slot of the last packet that authenticated */
    for (size_t r = or->start; r < or->start + or->n; r++) {
        const struct wgf_packet *pkt = &ob->pkts[r];
        size_t i = ob->slot_of[r];
        if (pkt->result != 0) {
            WGF_DP_DROP(dp, WGF_DROP_AUTH, 1);
            continue;
        }
        /* Authoritative: a duplicate inside this very run fails here. */
        if (wgf_replay_update(&kp->replay, pkt->counter) != 0) {
            WGF_DP_DROP(dp, WGF_DROP_REPLAY, 1);
            continue;
        }
        if (slot == p->next)
            *kick |= wgf_dp_promote_next(dp, p, now);
        last = i;
        packets++;
        bytes += dp->rx_msgs[i].msg_len;

        size_t plain = pkt->len - WGF_AEAD_TAG_LEN;
        if (plain == 0) {
            keepalives++;
            continue;
        }
        size_t ip_len = inner_ip_len(pkt->data, plain);
        if (ip_len == 0) {
            WGF_DP_DROP(dp, WGF_DROP_INNER_HEADER, 1);
            continue;
        }
        acc[n_acc].slot = i;
        acc[n_acc].len = ip_len;
        acc[n_acc].peer = p;
        n_acc++;
    }
    if (packets == 0)
        return n_acc;
    /* Roaming: the latest authenticated packet says where the peer is now, and which of our
     * addresses it talks to. */
    wgf_dp_peer_roamed(dp, p, &dp->rx_from[last], &dp->rx_local[last], now);
    /* For the timers: anything received ends "data sent, nothing received since". */
    p->activity.rx_any_ns = now;
    p->activity.tx_data_first_ns = 0;
    wgf_dp_peer_event(dp, p, WGF_DP_EV_ACTIVITY, now);
    p->rx_bytes += bytes;
    p->rx_packets += packets;
    WGF_DP_STAT_ADD(dp, rx_packets, packets);
    WGF_DP_STAT_ADD(dp, rx_bytes, bytes);
    if (keepalives > 0)
        WGF_DP_STAT_ADD(dp, keepalives_received, keepalives);
    /* An initiator whose keypair nears REJECT_AFTER_TIME rekeys before it is too late. */
    if (p->current == slot && kp->is_initiator &&
        wgf_dp_age(now, kp->created_ns) > dp->rekey_on_receive_age_ns)
        wgf_dp_want_handshake(dp, p);
    return n_acc;
}

static void handle_data(struct wgf_dp *dp, const size_t *data, size_t nd)
{
    struct wgf_dp_open_batch *ob = &dp->open;
    uint32_t receivers[WGF_DP_BATCH];
    struct wgf_index_entry entries[WGF_DP_BATCH];
    struct accepted acc[WGF_DP_BATCH];
    bool done[WGF_DP_BATCH], kick = false;
    size_t run[WGF_DP_BATCH], n_acc = 0;
    const uint8_t *ips[WGF_DP_BATCH];
    size_t ip_lens[WGF_DP_BATCH];
    uint32_t sources[WGF_DP_BATCH];

    if (nd == 0 || nd > WGF_DP_BATCH)
        return;
    /* receivers[], entries[] and done[] are indexed by position d in data[]. */
    for (size_t d = 0; d < nd; d++) {
        receivers[d] = wgf_get_le32(dp->rx_bufs[data[d]] + 4);
        done[d] = false;
    }
    wgf_index_table_lookup_batch(dp->index, receivers, entries, nd);

    ob->n_runs = ob->n_pkts = 0;
    pthread_mutex_lock(&dp->lock);
    uint64_t now = wgf_dp_now(dp);
    for (size_t d = 0; d < nd; d++) {
        if (done[d])
            continue;
        /* One run per receiver index (one keypair), in arrival order; run[] holds batch slots. */
        size_t m = 0;
        for (size_t e = d; e < nd; e++) {
            if (!done[e] && receivers[e] == receivers[d]) {
                done[e] = true;
                run[m++] = data[e];
            }
        }
        check_run(dp, receivers[d], entries[d], run, m, now);
    }
    pthread_mutex_unlock(&dp->lock);
    if (ob->n_runs == 0)
        return;

    /* The expensive part runs unlocked, so the send thread seals meanwhile. */
    for (size_t r = 0; r < ob->n_runs; r++) {
        wgf_aead_open_batch(&ob->pkts[ob->runs[r].start], ob->runs[r].n, ob->runs[r].key);
        wgf_memzero(ob->runs[r].key, sizeof(ob->runs[r].key));
    }

    pthread_mutex_lock(&dp->lock);
    for (size_t r = 0; r < ob->n_runs; r++)
        n_acc = accept_run(dp, &ob->runs[r], now, acc, n_acc, &kick);

    /* Cryptokey routing on the way in: the inner source must be one of the sender's IPs. */
    for (size_t a = 0; a < n_acc; a++) {
        ips[a] = dp->rx_bufs[acc[a].slot] + WGF_DATA_HEADER_LEN;
        ip_lens[a] = acc[a].len;
    }
    if (n_acc > 0)
        wgf_allowedips_lookup_packets(dp->allowedips, ips, ip_lens, n_acc, WGF_IP_SOURCE, sources);
    size_t n_out = 0;
    for (size_t a = 0; a < n_acc; a++) {
        if (sources[a] != acc[a].peer->id) {
            WGF_DP_DROP(dp, WGF_DROP_SOURCE_NOT_ALLOWED, 1);
            continue;
        }
        struct wgf_dp_activity *act = &acc[a].peer->activity;
        act->rx_data_last_ns = now;
        if (act->rx_data_first_ns == 0)
            act->rx_data_first_ns = now;
        acc[n_out++] = acc[a];
    }
    pthread_mutex_unlock(&dp->lock);
    wgf_dp_flush_signals(dp);
    if (kick)
        wgf_dp_kick(dp);

    /* RFC 6040: congestion the outer header met is the inner packet's too. */
    for (size_t a = 0; a < n_out; a++)
        wgf_ecn_decapsulate(dp->rx_bufs[acc[a].slot] + WGF_DATA_HEADER_LEN, acc[a].len,
                            dp->rx_tos[acc[a].slot]);

    if (dp->off != NULL && (wgf_dp_get_offloads(dp) & WGF_DP_OFFLOAD_TUN_VNET)) {
        uint8_t *pkts[WGF_DP_BATCH];
        size_t lens[WGF_DP_BATCH];
        for (size_t a = 0; a < n_out; a++) {
            pkts[a] = dp->rx_bufs[acc[a].slot] + WGF_DATA_HEADER_LEN;
            lens[a] = acc[a].len;
        }
        wgf_dp_tun_write_vnet(dp, pkts, lens, n_out);
        return;
    }
    for (size_t a = 0; a < n_out; a++) {
        ssize_t w = write(dp->tun_fd, dp->rx_bufs[acc[a].slot] + WGF_DATA_HEADER_LEN, acc[a].len);
        WGF_DP_STAT_ADD(dp, tun_write_calls, 1);
        if (w != (ssize_t)acc[a].len)
            WGF_DP_DROP(dp, WGF_DROP_TUN_WRITE, 1);
    }
}

void wgf_dp_receive_udp(struct wgf_dp *dp, int fd)
{
    if (wgf_dp_gro_on(dp, fd)) {
        wgf_dp_receive_gro(dp, fd);
        return;
    }
    wgf_dp_rx_own_buffers(dp);
    for (size_t i = 0; i < WGF_DP_BATCH; i++) {
        dp->rx_iov[i].iov_base = dp->rx_bufs[i];
        dp->rx_iov[i].iov_len = dp->rx_buf_size;
        memset(&dp->rx_msgs[i], 0, sizeof(dp->rx_msgs[i]));
        dp->rx_msgs[i].msg_hdr.msg_name = &dp->rx_from[i];
        dp->rx_msgs[i].msg_hdr.msg_namelen = sizeof(dp->rx_from[i]);
        dp->rx_msgs[i].msg_hdr.msg_iov = &dp->rx_iov[i];
        dp->rx_msgs[i].msg_hdr.msg_iovlen = 1;
        dp->rx_msgs[i].msg_hdr.msg_control = dp->rx_cmsg[i];
        dp->rx_msgs[i].msg_hdr.msg_controllen = WGF_DP_CMSG_SPACE;
    }
    int n = recvmmsg(fd, dp->rx_msgs, WGF_DP_BATCH, MSG_DONTWAIT, NULL);
    WGF_DP_STAT_ADD(dp, recvmmsg_calls, 1);
    if (n <= 0)
        return; /* EAGAIN, or a queued ICMP error that this call has now cleared */
    for (int i = 0; i < n; i++)
        wgf_dp_cmsg_parse(&dp->rx_msgs[i].msg_hdr, &dp->rx_local[i], &dp->rx_tos[i]);
    WGF_DP_STAT_ADD(dp, recvmmsg_packets, n);
    wgf_dp_stat_max(&dp->stats.recvmmsg_max, (uint64_t)n);
    wgf_dp_handle_datagrams(dp, (size_t)n);
}

void wgf_dp_handle_datagrams(struct wgf_dp *dp, size_t n)
{
    size_t data[WGF_DP_BATCH], nd = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *b = dp->rx_bufs[i];
        size_t len = dp->rx_msgs[i].msg_len;
        int family = dp->rx_from[i].sa.sa_family;
        if (dp->rx_msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
            WGF_DP_DROP(dp, WGF_DROP_TRUNCATED, 1);
            continue;
        }
        if (family != AF_INET && family != AF_INET6) {
            WGF_DP_DROP(dp, WGF_DROP_BAD_TYPE, 1); /* not from an IP peer */
            continue;
        }
        if (family == AF_INET)
            memset((uint8_t *)&dp->rx_from[i] + sizeof(struct sockaddr_in), 0,
                   sizeof(dp->rx_from[i]) - sizeof(struct sockaddr_in));
        uint32_t word = message_word(b, len);
        if (word == WGF_MSG_DATA) {
            if (len >= WGF_DATA_MIN_LEN)
                data[nd++] = (size_t)i;
            else
                WGF_DP_DROP(dp, WGF_DROP_BAD_SIZE, 1);
        } else if (handshake_size(word) != 0) {
            if (len != handshake_size(word))
                WGF_DP_DROP(dp, WGF_DROP_BAD_SIZE, 1);
            else
                wgf_dp_admit_handshake(dp, b, len, &dp->rx_from[i], &dp->rx_local[i]);
        } else {
            WGF_DP_DROP(dp, WGF_DROP_BAD_TYPE, 1);
        }
    }
    if (dp->n_replies > 0)
        wgf_dp_send_cookie_replies(dp);
    if (nd > 0)
        handle_data(dp, data, nd);
}
