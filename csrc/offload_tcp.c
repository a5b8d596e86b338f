/* TUN offloads for TCP: the virtio header, splitting a TSO super-packet into segments before
 * sealing (and completing partial checksums of ordinary packets), and coalescing received TCP
 * segments of one flow into a super-packet before writing (GRO done in userspace). */
#include <errno.h>
#include <string.h>

#include "checksum.h"
#include "offload.h"

static uint16_t get_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static void put_le16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static uint16_t get_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static void put_be16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v; }
static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void put_be32(uint8_t *p, uint32_t v)
{
    put_be16(p, (uint16_t)(v >> 16));
    put_be16(p + 2, (uint16_t)v);
}

void wgf_vnet_hdr_read(const uint8_t *b, struct wgf_vnet_hdr *h)
{
    h->flags = b[0];
    h->gso_type = b[1];
    h->hdr_len = get_le16(b + 2);
    h->gso_size = get_le16(b + 4);
    h->csum_start = get_le16(b + 6);
    h->csum_offset = get_le16(b + 8);
}

void wgf_vnet_hdr_write(uint8_t *b, const struct wgf_vnet_hdr *h)
{
    b[0] = h->flags;
    b[1] = h->gso_type;
    put_le16(b + 2, h->hdr_len);
    put_le16(b + 4, h->gso_size);
    put_le16(b + 6, h->csum_start);
    put_le16(b + 8, h->csum_offset);
}

void wgf_ip4_set_checksum(uint8_t *ip, size_t ip_len)
{
    ip[10] = ip[11] = 0;
    wgf_csum_store(ip + 10, (uint16_t)~wgf_csum_fold(wgf_csum_add(0, ip, ip_len)));
}

/* The checksum the kernel would have finished (skb_checksum_help): the field holds the
 * pseudo-header sum, the rest of the range from csum_start is summed on top. */
static int complete_checksum(const struct wgf_vnet_hdr *h, uint8_t *pkt, size_t len)
{
    size_t start = h->csum_start, field = start + (size_t)h->csum_offset;
    if (start >= len || field + 2 > len)
        return -EINVAL;
    uint16_t csum = (uint16_t)~wgf_csum_fold(wgf_csum_add(0, pkt + start, len - start));
    wgf_csum_store(pkt + field, csum ? csum : 0xffff); /* 0 means "none" in UDP */
    return 0;
}

int wgf_offload_prepare(const struct wgf_vnet_hdr *h, uint8_t *pkt, size_t len,
                        struct wgf_gso_plan *plan)
{
    uint8_t gso = h->gso_type & (uint8_t)~WGF_VNET_GSO_ECN;
    if (gso == WGF_VNET_GSO_NONE) {
        if (h->flags & WGF_VNET_F_NEEDS_CSUM)
            return complete_checksum(h, pkt, len);
        return 0;
    }
    if (len < 1 || h->gso_size == 0)
        return -EINVAL;
    memset(plan, 0, sizeof(*plan));
    plan->v6 = pkt[0] >> 4 == 6;
    if (gso == WGF_VNET_GSO_TCPV4 || gso == WGF_VNET_GSO_TCPV6) {
        plan->proto = WGF_IPPROTO_TCP;
        if (plan->v6 != (gso == WGF_VNET_GSO_TCPV6))
            return -EINVAL;
    } else if (gso == WGF_VNET_GSO_UDP_L4) {
        plan->proto = WGF_IPPROTO_UDP;
    } else {
        return -EINVAL;
    }
    if (!plan->v6) {
        if (len < WGF_IP4_HDR_MIN || pkt[0] >> 4 != 4 || (pkt[0] & 0x0f) < 5)
            return -EINVAL;
        plan->ip_len = (size_t)(pkt[0] & 0x0f) * 4;
        /* No fragments (only DF may be set), and the protocol the header claims. */
        if (plan->ip_len > len || (get_be16(pkt + 6) & 0x3fff) != 0 || pkt[9] != plan->proto)
            return -EINVAL;
    } else {
        /* Extension headers are not split (the kernel does not offer them to us either). */
        if (len < WGF_IP6_HDR_LEN || pkt[6] != plan->proto)
            return -EINVAL;
        plan->ip_len = WGF_IP6_HDR_LEN;
    }
    if (plan->proto == WGF_IPPROTO_TCP) {
        if (plan->ip_len + WGF_TCP_HDR_MIN > len)
            return -EINVAL;
        size_t tcp_len = (size_t)(pkt[plan->ip_len + 12] >> 4) * 4;
        if (tcp_len < WGF_TCP_HDR_MIN)
            return -EINVAL;
        plan->hdr_len = plan->ip_len + tcp_len;
    } else {
        plan->hdr_len = plan->ip_len + WGF_UDP_HDR_LEN;
    }
    if (plan->hdr_len > len || len > WGF_IP_MAX_PACKET + WGF_IP6_HDR_LEN)
        return -EINVAL;
    plan->seg_size = h->gso_size;
    plan->payload = len - plan->hdr_len;
    plan->count = plan->payload == 0 ? 1 : (plan->payload + plan->seg_size - 1) / plan->seg_size;
    return (int)plan->count;
}

/* The IP header of a segment carrying l4_len bytes of TCP/UDP: lengths, IPv4 id and checksum. */
static void segment_ip_header(const struct wgf_gso_plan *plan, uint8_t *out, size_t i,
                              size_t l4_len)
{
    if (plan->v6) {
        put_be16(out + 4, (uint16_t)(plan->ip_len - WGF_IP6_HDR_LEN + l4_len));
    } else {
        put_be16(out + 2, (uint16_t)(plan->ip_len + l4_len));
        put_be16(out + 4, (uint16_t)(get_be16(out + 4) + i));
        wgf_ip4_set_checksum(out, plan->ip_len);
    }
}

/* The full TCP/UDP checksum of the l4_len bytes at l4, field at l4 + field_offset. */
static uint16_t l4_checksum(const struct wgf_gso_plan *plan, const uint8_t *ip, const uint8_t *l4,
                            size_t l4_len)
{
    uint64_t sum = plan->v6 ? wgf_csum_pseudo(ip + 8, 32, plan->proto, (uint32_t)l4_len)
                            : wgf_csum_pseudo(ip + 12, 8, plan->proto, (uint32_t)l4_len);
    return (uint16_t)~wgf_csum_fold(wgf_csum_add(sum, l4, l4_len));
}

static size_t tcp_segment(const struct wgf_gso_plan *plan, const uint8_t *pkt, size_t i,
                          uint8_t *out)
{
    size_t off = i * plan->seg_size;
    size_t seg = plan->payload - off < plan->seg_size ? plan->payload - off : plan->seg_size;
    size_t tcp_len = plan->hdr_len - plan->ip_len + seg;
    uint8_t *tcp = out + plan->ip_len;

    memcpy(out, pkt, plan->hdr_len);
    memcpy(out + plan->hdr_len, pkt + plan->hdr_len + off, seg);
    segment_ip_header(plan, out, i, tcp_len);
    put_be32(tcp + 4, get_be32(tcp + 4) + (uint32_t)off);
    if (i + 1 < plan->count)
        tcp[13] &= (uint8_t)~(WGF_TCP_FIN | WGF_TCP_PSH);
    if (i > 0)
        tcp[13] &= (uint8_t)~WGF_TCP_CWR;
    tcp[16] = tcp[17] = 0;
    wgf_csum_store(tcp + 16, l4_checksum(plan, out, tcp, tcp_len));
    return plan->hdr_len + seg;
}

size_t wgf_gso_segment(const struct wgf_gso_plan *plan, const uint8_t *pkt, size_t i,
                       uint8_t *out)
{
    if (plan->proto == WGF_IPPROTO_UDP)
        return wgf_udp_segment(plan, pkt, i, out);
    return tcp_segment(plan, pkt, i, out);
}

/* ---- coalescing ---- */

/* A received packet as coalescing sees it. */
struct tcp_seg {
    bool v6;
    size_t ip_len, hdr_len, payload;
    uint32_t seq;
    uint8_t flags;
};

static bool checksum_ok(const uint8_t *pkt, const struct tcp_seg *s, size_t len)
{
    const struct wgf_gso_plan plan = {.proto = WGF_IPPROTO_TCP, .v6 = s->v6};
    if (!s->v6 && wgf_csum_fold(wgf_csum_add(0, pkt, s->ip_len)) != 0xffff)
        return false;
    uint16_t c = l4_checksum(&plan, pkt, pkt + s->ip_len, len - s->ip_len);
    return c == 0; /* the complement of a sum that includes its own checksum is 0 */
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
        if (pkt[9] != WGF_IPPROTO_TCP || (get_be16(pkt + 6) & 0x3fff) != 0 ||
            get_be16(pkt + 2) != len)
            return false;
        s->v6 = false;
        s->ip_len = WGF_IP4_HDR_MIN;
    } else if (pkt[0] >> 4 == 6 && len >= WGF_IP6_HDR_LEN) {
        if (pkt[6] != WGF_IPPROTO_TCP || (size_t)get_be16(pkt + 4) + WGF_IP6_HDR_LEN != len)
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
    s->seq = get_be32(tcp + 4);
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
        put_be16(ip + 4, (uint16_t)tcp_len);
    } else {
        put_be16(ip + 2, (uint16_t)(it->ip_len + tcp_len));
        wgf_ip4_set_checksum(ip, it->ip_len);
    }
    tcp[13] |= pkts[it->last][it->ip_len + 13] & WGF_TCP_PSH;
    /* NEEDS_CSUM: the field holds the pseudo-header sum, the kernel adds the rest. */
    uint64_t pseudo = v6 ? wgf_csum_pseudo(ip + 8, 32, WGF_IPPROTO_TCP, (uint32_t)tcp_len)
                         : wgf_csum_pseudo(ip + 12, 8, WGF_IPPROTO_TCP, (uint32_t)tcp_len);
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
