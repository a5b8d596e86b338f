/* Splitting TUN super-packets (TSO for TCP, USO for UDP) into MTU-sized segments before sealing,
 * each with its own headers and full checksums, and completing the partial checksum of an
 * ordinary packet the kernel flagged NEEDS_CSUM. */
#include <errno.h>
#include <string.h>

#include "byteorder.h"
#include "checksum.h"
#include "offload.h"

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
        if (plan->ip_len > len || (wgf_get_be16(pkt + 6) & 0x3fff) != 0 || pkt[9] != plan->proto)
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
        wgf_put_be16(out + 4, (uint16_t)(plan->ip_len - WGF_IP6_HDR_LEN + l4_len));
    } else {
        wgf_put_be16(out + 2, (uint16_t)(plan->ip_len + l4_len));
        wgf_put_be16(out + 4, (uint16_t)(wgf_get_be16(out + 4) + i));
        wgf_ip4_set_checksum(out, plan->ip_len);
    }
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
    wgf_put_be32(tcp + 4, wgf_get_be32(tcp + 4) + (uint32_t)off);
    if (i + 1 < plan->count)
        tcp[13] &= (uint8_t)~(WGF_TCP_FIN | WGF_TCP_PSH);
    if (i > 0)
        tcp[13] &= (uint8_t)~WGF_TCP_CWR;
    tcp[16] = tcp[17] = 0;
    wgf_csum_store(tcp + 16, wgf_csum_l4(out, plan->v6, WGF_IPPROTO_TCP, tcp, tcp_len));
    return plan->hdr_len + seg;
}

static size_t udp_segment(const struct wgf_gso_plan *plan, const uint8_t *pkt, size_t i,
                       uint8_t *out)
{
    size_t off = i * plan->seg_size;
    size_t seg = plan->payload - off < plan->seg_size ? plan->payload - off : plan->seg_size;
    size_t udp_len = WGF_UDP_HDR_LEN + seg;
    uint8_t *udp = out + plan->ip_len;

    memcpy(out, pkt, plan->hdr_len);
    memcpy(out + plan->hdr_len, pkt + plan->hdr_len + off, seg);
    segment_ip_header(plan, out, i, udp_len);
    wgf_put_be16(udp + 4, (uint16_t)udp_len);
    udp[6] = udp[7] = 0;
    uint16_t csum = wgf_csum_l4(out, plan->v6, WGF_IPPROTO_UDP, udp, udp_len);
    wgf_csum_store(udp + 6, csum ? csum : 0xffff); /* 0 means "none" in UDP */
    return plan->hdr_len + seg;
}

size_t wgf_gso_segment(const struct wgf_gso_plan *plan, const uint8_t *pkt, size_t i,
                       uint8_t *out)
{
    if (plan->proto == WGF_IPPROTO_UDP)
        return udp_segment(plan, pkt, i, out);
    return tcp_segment(plan, pkt, i, out);
}
