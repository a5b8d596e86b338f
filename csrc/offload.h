/* Offloads: fewer, larger units through the kernel on both sides of the data plane.
 *
 *   TUN (offload_split.c, offload_coalesce.c)
 *                        With IFF_VNET_HDR every packet read from or written to the TUN carries
 *                        a 10-byte virtio_net_hdr. With TUNSETOFFLOAD (CSUM, TSO4/6, USO4/6) the
 *                        kernel hands us TCP/UDP super-packets of up to 64 KiB, which are split
 *                        into MTU-sized packets with their own headers and checksums before
 *                        sealing, and ordinary packets whose checksum is only partial
 *                        (NEEDS_CSUM), completed here. On the way back, consecutive in-order
 *                        segments of one TCP flow are coalesced into one super-packet and
 *                        written with a single writev; everything else goes as is.
 *   UDP (offload_udp.c)  UDP_SEGMENT: equal-size datagrams to one endpoint go down as one
 *                        sendmsg entry; UDP_GRO: one receive may return many datagrams of one
 *                        sender, each gso_size bytes but the last.
 *
 * Nothing here trusts the lengths it is given: every header is checked against the packet
 * before it is read, and a packet that does not parse is reported (split) or left alone
 * (coalesce). */
#ifndef WGF_OFFLOAD_H
#define WGF_OFFLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "batch.h"
#include "byteorder.h"

/* struct virtio_net_hdr (legacy, native = little-endian byte order on x86). */
#define WGF_VNET_HDR_LEN 10
#define WGF_VNET_F_NEEDS_CSUM 1
#define WGF_VNET_GSO_NONE 0
#define WGF_VNET_GSO_TCPV4 1
#define WGF_VNET_GSO_UDP 3 /* UFO: fragments, never offered to us */
#define WGF_VNET_GSO_TCPV6 4
#define WGF_VNET_GSO_UDP_L4 5
#define WGF_VNET_GSO_ECN 0x80

struct wgf_vnet_hdr {
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
};
static inline void wgf_vnet_hdr_read(const uint8_t *b, struct wgf_vnet_hdr *h)
{
    h->flags = b[0];
    h->gso_type = b[1];
    h->hdr_len = wgf_get_le16(b + 2);
    h->gso_size = wgf_get_le16(b + 4);
    h->csum_start = wgf_get_le16(b + 6);
    h->csum_offset = wgf_get_le16(b + 8);
}
static inline void wgf_vnet_hdr_write(uint8_t *b, const struct wgf_vnet_hdr *h)
{
    b[0] = h->flags;
    b[1] = h->gso_type;
    wgf_put_le16(b + 2, h->hdr_len);
    wgf_put_le16(b + 4, h->gso_size);
    wgf_put_le16(b + 6, h->csum_start);
    wgf_put_le16(b + 8, h->csum_offset);
}

#define WGF_IPPROTO_TCP 6
#define WGF_IPPROTO_UDP 17
#define WGF_IP4_HDR_MIN 20
#define WGF_IP6_HDR_LEN 40
#define WGF_TCP_HDR_MIN 20
#define WGF_TCP_HDR_MAX 60
#define WGF_UDP_HDR_LEN 8
#define WGF_TCP_FIN 0x01
#define WGF_TCP_SYN 0x02
#define WGF_TCP_RST 0x04
#define WGF_TCP_PSH 0x08
#define WGF_TCP_ACK 0x10
#define WGF_TCP_CWR 0x80
#define WGF_IP_MAX_PACKET 65535 /* IPv4 total length; we keep IPv6 under it as well */

/* ---- split (TUN -> UDP; offload_split.c) ---- */

/* How a super-packet splits: headers of hdr_len bytes (IP header ip_len of them), then
 * payload bytes cut into seg_size pieces, the last possibly shorter. */
struct wgf_gso_plan {
    uint8_t proto; /* WGF_IPPROTO_TCP or WGF_IPPROTO_UDP */
    bool v6;
    size_t ip_len, hdr_len;
    size_t seg_size, payload, count;
};
/* A packet just read from a vnet-header TUN (pkt: after the header, len bytes). Returns 0 when
 * the packet is ready to send as is (a partial checksum, if flagged, is now complete), a segment
 * count >= 1 with plan filled for a super-packet, or -EINVAL for one that is malformed. */
int wgf_offload_prepare(const struct wgf_vnet_hdr *h, uint8_t *pkt, size_t len,
                        struct wgf_gso_plan *plan);
/* Writes segment i (< plan->count) of pkt to out, which holds plan->hdr_len + plan->seg_size
 * bytes; returns its length. IPv4 id + i and header checksum, TCP sequence number, flags (FIN
 * and PSH only on the last segment, CWR only on the first), UDP length, full L4 checksum. */
size_t wgf_gso_segment(const struct wgf_gso_plan *plan, const uint8_t *pkt, size_t i,
                       uint8_t *out);

/* ---- coalesce (UDP -> TUN; offload_coalesce.c) ---- */

#define WGF_GRO_MAX WGF_DP_BATCH /* packets per call: one receive batch */
/* One write to the TUN: a run of packets first, next[first], ... (count of them). Runs of one
 * packet are written as is, longer ones as a TCP super-packet. */
struct wgf_gro_item {
    uint32_t first, last, count;
    uint32_t seg_size;    /* payload bytes of every segment but the last */
    uint32_t payload;     /* payload bytes so far */
    uint32_t next_seq;    /* the sequence number an appended segment must carry */
    uint16_t ip_len, hdr_len;
    bool tcp;             /* the first packet may take others */
    bool closed;          /* a short or PSH segment ended it */
};
struct wgf_gro {
    size_t n_items;
    struct wgf_gro_item items[WGF_GRO_MAX];
    uint32_t next[WGF_GRO_MAX];
};
/* Groups pkts[0..n) (IP packets, lens[i] bytes each, n <= WGF_GRO_MAX) into g's items, in an
 * order that keeps every flow's packets in sequence. Returns the number of items. */
size_t wgf_tcp_coalesce(struct wgf_gro *g, uint8_t *const *pkts, const size_t *lens, size_t n);
/* Bytes hdr must hold for wgf_gro_item_iov. */
#define WGF_GRO_HDR_SPACE (WGF_VNET_HDR_LEN + WGF_IP6_HDR_LEN + WGF_TCP_HDR_MAX)
/* The item's iovecs for one writev to a vnet-header TUN (at most count + 1 of them): a virtio
 * header (an empty one for a lone packet) and, for a super-packet, its rewritten IP/TCP headers
 * in hdr, then the payloads in place. Returns the iovec count; *total gets the byte count. */
size_t wgf_gro_item_iov(const struct wgf_gro *g, size_t k, uint8_t *const *pkts,
                        const size_t *lens, uint8_t *hdr, struct iovec *iov, size_t *total);

/* ---- UDP socket offloads (offload_udp.c) ---- */

#define WGF_UDP_GSO_MAX_SEGMENTS 64 /* UDP_MAX_SEGMENTS on older kernels */
/* An IPv4/IPv6 UDP payload can be no longer than this (65535 - 8 - 40 keeps both). */
#define WGF_UDP_GSO_MAX_BYTES (65535 - WGF_UDP_HDR_LEN - WGF_IP6_HDR_LEN)
#define WGF_UDP_CMSG_SPACE 24 /* CMSG_SPACE(sizeof(uint16_t)) and of int, on 64-bit */

/* Turns UDP_GRO on: 0 or -errno. */
int wgf_udp_enable_gro(int fd);
/* Points m's control at space (WGF_UDP_CMSG_SPACE bytes, aligned) holding UDP_SEGMENT = size. */
void wgf_udp_set_segment(struct msghdr *m, void *space, uint16_t size);
/* A received message's UDP_GRO segment size, or 0 when there is none. */
size_t wgf_udp_gro_size(const struct msghdr *m);
/* Splits n single-iovec datagrams into GSO groups: group g is datagrams [start[g], start[g] +
 * len[g]), all with the same destination (names[i], namelens[i] bytes) and the same key
 * (keys[i], key_len bytes each, what one control message says for all: source, ECN; keys may be
 * NULL), every one but the last exactly as long as the first, the last no longer, at most
 * max_segments and WGF_UDP_GSO_MAX_BYTES in all. Returns the number of groups. */
size_t wgf_udp_gso_groups(const struct iovec *iov, const void *names, size_t name_stride,
                          const socklen_t *namelens, const void *keys, size_t key_len, size_t n,
                          size_t max_segments, uint32_t *start, uint32_t *len);

#endif
