/* Coalescing received TCP segments of one flow into a super-packet before writing them to a
 * vnet-header TUN (GRO done in userspace): in order, never across flows, gaps, flag changes or
 * unequal headers, and only segments whose checksums verify. */
#include <string.h>

#include "byteorder.h"
#include "checksum.h"
#include "offload.h"

/* A received packet as coalescing sees it. */
struct tcp_seg {
    bool v6;
    size_t ip_len, hdr_len, payload;
    uint32_t seq;
    uint8_t flags;
};

static bool checksum_ok(const uint8_t *pkt, const struct tcp_seg *s, size_t len)
{
    if (!s->v6 && wgf_csum_fold(wgf_csum_add(0, pkt, s->ip_len)) != 0xffff)
        return false;
    /* The complement of a sum that includes its own checksum is 0. */
    return wgf_csum_l4(pkt, s->v6, WGF_IPPROTO_TCP, pkt + s->ip_len, len - s->ip_len) == 0;
}

/* A TCP segment that could join a super-packet: plain IP header (IPv4 without options or
 * fragmentation, IPv6 without extension headers), ACK with at most PSH besides, payload, and
 * checksums that verify (a super-packet's checksum is recomputed by the kernel, so a corrupt
 * segment must not hide inside one). */
static bool tcp_parse(const uint8_t *pkt, size_t len, struct tcp_seg *s)
{
    if (len < WGF_IP4_HDR_MIN)
        return false;
    if (pkt[0] == 0x45) {
        if (pkt[9] != WGF_IPPROTO_TCP || (wgf_get_be16(pkt + 6) & 0x3fff) != 0 ||
            wgf_get_be16(pkt + 2) != len)
            return false;
        s->v6 = false;
        s->ip_len = WGF_IP4_HDR_MIN;
    } else if (pkt[0] >> 4 == 6 && len >= WGF_IP6_HDR_LEN) {
        if (pkt[6] != WGF_IPPROTO_TCP || (size_t)wgf_get_be16(pkt + 4) + WGF_IP6_HDR_LEN != len)
            return false;
        s->v6 = true;
        s->ip_len = WGF_IP6_HDR_LEN;
    } else {
        return false;
    }
    if (s->ip_len + WGF_TCP_HDR_MIN > len)
        return false;
    const uint8_t *tcp = pkt + s->ip_len;
    size_t tcp_len = (size_t)(tcp[12] >> 4) * 4;
    if (tcp_len < WGF_TCP_HDR_MIN || s->ip_len + tcp_len >= len)
        return false; /* no payload: nothing to coalesce */
    s->hdr_len = s->ip_len + tcp_len;
    s->payload = len - s->hdr_len;
    s->seq = wgf_get_be32(tcp + 4);
    s->flags = tcp[13];
    if ((s->flags & (uint8_t)~WGF_TCP_PSH) != WGF_TCP_ACK)
        return false;
    return checksum_ok(pkt, s, len);
}

/* Same flow: addresses and ports. */
static bool same_flow(const uint8_t *a, const uint8_t *b, const struct tcp_seg *s)
{
    if (s->v6)
        return memcmp(a + 8, b + 8, 32) == 0 && memcmp(a + 40, b + 40, 4) == 0;
    return memcmp(a + 12, b + 12, 8) == 0 && memcmp(a + 20, b + 20, 4) == 0;
}

/* Headers equal apart from lengths, IPv4 id, checksums, the sequence number and PSH. */
static bool same_headers(const uint8_t *a, const uint8_t *b, const struct tcp_seg *s)
{
    if (s->v6) {
        if (memcmp(a, b, 4) != 0 || memcmp(a + 6, b + 6, 2) != 0)
            return false;
    } else {
        if (memcmp(a, b, 2) != 0 || memcmp(a + 6, b + 6, 4) != 0)
            return false;
    }
    const uint8_t *ta = a + s->ip_len, *tb = b + s->ip_len;
    return memcmp(ta + 8, tb + 8, 5) == 0 && /* ack, data offset */
           (ta[13] & ~WGF_TCP_PSH) == (tb[13] & ~WGF_TCP_PSH) &&
           memcmp(ta + 14, tb + 14, 2) == 0 && /* window */
           memcmp(ta + 18, tb + 18, s->hdr_len - s->ip_len - 18) == 0; /* urgent, options */
}

static bool try_append(struct wgf_gro *g, struct wgf_gro_item *it, uint8_t *const *pkts,
                       size_t i, const struct tcp_seg *s)
{
    const uint8_t *first = pkts[it->first];
    if (it->closed || s->hdr_len != it->hdr_len || s->seq != it->next_seq ||
        s->payload > it->seg_size || it->hdr_len + it->payload + s->payload > WGF_IP_MAX_PACKET ||
        !same_headers(first, pkts[i], s))
        return false;
    g->next[it->last] = (uint32_t)i;
    it->last = (uint32_t)i;
    it->count++;
    it->payload += (uint32_t)s->payload;
    it->next_seq += (uint32_t)s->payload;
    it->closed = s->payload < it->seg_size || (s->flags & WGF_TCP_PSH);
    return true;
}

size_t wgf_tcp_coalesce(struct wgf_gro *g, uint8_t *const *pkts, const size_t *lens, size_t n)
{
    g->n_items = 0;
    if (n > WGF_GRO_MAX)
        n = WGF_GRO_MAX;
    for (size_t i = 0; i < n; i++) {
        struct tcp_seg s;
        bool tcp = tcp_parse(pkts[i], lens[i], &s);
        g->next[i] = UINT32_MAX;
        if (tcp) {
            /* The flow's latest item only: appending to an older one would reorder the flow. */
            struct wgf_gro_item *it = NULL;
            for (size_t k = g->n_items; k-- > 0;) {
                struct wgf_gro_item *c = &g->items[k];
                if (c->tcp && c->ip_len == s.ip_len && c->hdr_len == s.hdr_len &&
                    same_flow(pkts[c->first], pkts[i], &s)) {
                    it = c;
                    break;
                }
            }
            if (it != NULL && try_append(g, it, pkts, i, &s))
                continue;
        }
        struct wgf_gro_item *it = &g->items[g->n_items++];
        memset(it, 0, sizeof(*it));
        it->first = it->last = (uint32_t)i;
        it->count = 1;
        it->tcp = tcp;
        if (tcp) {
            it->ip_len = (uint16_t)s.ip_len;
            it->hdr_len = (uint16_t)s.hdr_len;
            it->seg_size = (uint32_t)s.payload;
            it->payload = (uint32_t)s.payload;
            it->next_seq = s.seq + (uint32_t)s.payload;
            it->closed = (s.flags & WGF_TCP_PSH) != 0;
        }
    }
    return g->n_items;
}

size_t wgf_gro_item_iov(const struct wgf_gro *g, size_t k, uint8_t *const *pkts,
                        const size_t *lens, uint8_t *hdr, struct iovec *iov, size_t *total)
{
    const struct wgf_gro_item *it = &g->items[k];
    struct wgf_vnet_hdr vh = {0};
    size_t n = 0;

    if (it->count == 1) {
        wgf_vnet_hdr_write(hdr, &vh);
        iov[n++] = (struct iovec){.iov_base = hdr, .iov_len = WGF_VNET_HDR_LEN};
        iov[n++] = (struct iovec){.iov_base = pkts[it->first], .iov_len = lens[it->first]};
        *total = WGF_VNET_HDR_LEN + lens[it->first];
        return n;
    }
    const uint8_t *first = pkts[it->first];
    bool v6 = first[0] >> 4 == 6;
    uint8_t *ip = hdr + WGF_VNET_HDR_LEN, *tcp = ip + it->ip_len;
    size_t tcp_len = it->hdr_len - it->ip_len + it->payload;

    memcpy(ip, first, it->hdr_len);
    if (v6) {
        wgf_put_be16(ip + 4, (uint16_t)tcp_len);
    } else {
        wgf_put_be16(ip + 2, (uint16_t)(it->ip_len + tcp_len));
        wgf_ip4_set_checksum(ip, it->ip_len);
    }
    tcp[13] |= pkts[it->last][it->ip_len + 13] & WGF_TCP_PSH;
    /* NEEDS_CSUM: the field holds the pseudo-header sum, the kernel adds the rest. */
    uint64_t pseudo = wgf_csum_pseudo_ip(ip, v6, WGF_IPPROTO_TCP, (uint32_t)tcp_len);
    wgf_csum_store(tcp + 16, wgf_csum_fold(pseudo));

    vh.flags = WGF_VNET_F_NEEDS_CSUM;
    vh.gso_type = v6 ? WGF_VNET_GSO_TCPV6 : WGF_VNET_GSO_TCPV4;
    vh.hdr_len = it->hdr_len;
    vh.gso_size = (uint16_t)it->seg_size;
    vh.csum_start = it->ip_len;
    vh.csum_offset = 16;
    wgf_vnet_hdr_write(hdr, &vh);
    iov[n++] = (struct iovec){.iov_base = hdr, .iov_len = WGF_VNET_HDR_LEN + it->hdr_len};
    *total = WGF_VNET_HDR_LEN + it->hdr_len;
    for (uint32_t i = it->first; i != UINT32_MAX; i = g->next[i]) {
        iov[n++] = (struct iovec){.iov_base = pkts[i] + it->hdr_len,
                                  .iov_len = lens[i] - it->hdr_len};
        *total += lens[i] - it->hdr_len;
    }
    return n;
}
