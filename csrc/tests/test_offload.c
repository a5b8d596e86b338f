/* The offload helpers: the checksum against a byte-wise RFC 1071 reference, TSO/USO splitting,
 * coalescing (round trips, and the cases that must not merge), UDP GSO grouping, and malformed
 * input. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "../checksum.h"
#include "../offload.h"
#include "check.h"

/* RFC 1071 the slow way: big-endian 16-bit words, end-around carry, complement. */
static uint16_t ref_checksum(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    uint32_t sum = 0;
    uint8_t *all = malloc(alen + blen + 1);
    memcpy(all, a, alen);
    if (blen)
        memcpy(all + alen, b, blen);
    all[alen + blen] = 0;
    for (size_t i = 0; i < alen + blen; i += 2) {
        sum += (uint32_t)all[i] << 8 | all[i + 1];
        sum = (sum & 0xffff) + (sum >> 16);
    }
    free(all);
    return (uint16_t)~sum;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (uint32_t)rng_state;
}

WGF_TEST(checksum_matches_reference)
{
    uint8_t buf[2048];
    for (int trial = 0; trial < 300; trial++) {
        size_t len = rnd() % sizeof(buf);
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)(trial % 3 == 0 ? 0xff : rnd());
        uint16_t mine = (uint16_t)~wgf_csum_fold(wgf_csum_add(0, buf, len));
        uint16_t ref = ref_checksum(buf, len, NULL, 0);
        uint8_t be[2];
        wgf_csum_store(be, mine);
        CHECK(((uint16_t)(be[0] << 8 | be[1])) == ref);
    }
    /* RFC 1071's worked example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2. */
    const uint8_t ex[8] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
    uint8_t be[2];
    wgf_csum_store(be, wgf_csum_fold(wgf_csum_add(0, ex, 8)));
    CHECK(be[0] == 0xdd && be[1] == 0xf2);
}

static const uint8_t SRC4[4] = {10, 0, 0, 1}, DST4[4] = {10, 0, 0, 2};
static const uint8_t SRC6[16] = {0xfd, 0, [15] = 1}, DST6[16] = {0xfd, 0, [15] = 2};

/* An IP/TCP packet with payload bytes of pattern seed, valid checksums, TCP options of
 * opt_len bytes (a multiple of 4). Returns its length. */
static size_t make_tcp(uint8_t *p, bool v6, uint32_t seq, uint8_t flags, size_t payload,
                       uint8_t seed, size_t opt_len, uint16_t sport)
{
    size_t ip_len = v6 ? 40 : 20, tcp_len = 20 + opt_len, len = ip_len + tcp_len + payload;
    memset(p, 0, ip_len + tcp_len);
    if (v6) {
        p[0] = 0x60;
        p[4] = (uint8_t)((len - 40) >> 8), p[5] = (uint8_t)(len - 40);
        p[6] = 6, p[7] = 64;
        memcpy(p + 8, SRC6, 16), memcpy(p + 24, DST6, 16);
    } else {
        p[0] = 0x45;
        p[2] = (uint8_t)(len >> 8), p[3] = (uint8_t)len;
        p[4] = 0x12, p[5] = 0x34, p[6] = 0x40; /* DF */
        p[8] = 64, p[9] = 6;
        memcpy(p + 12, SRC4, 4), memcpy(p + 16, DST4, 4);
        wgf_ip4_set_checksum(p, 20);
    }
    uint8_t *t = p + ip_len;
    t[0] = (uint8_t)(sport >> 8), t[1] = (uint8_t)sport, t[2] = 0x1f, t[3] = 0x90;
    t[4] = (uint8_t)(seq >> 24), t[5] = (uint8_t)(seq >> 16), t[6] = (uint8_t)(seq >> 8);
    t[7] = (uint8_t)seq;
    t[8] = 0xaa, t[11] = 0x55;
    t[12] = (uint8_t)((tcp_len / 4) << 4), t[13] = flags, t[14] = 0x7f, t[15] = 0xff;
    for (size_t i = 0; i < opt_len; i++)
        t[20 + i] = i % 4 == 0 ? 1 : (uint8_t)(0x30 + i); /* NOPs and junk, equal per flow */
    for (size_t i = 0; i < payload; i++)
        p[ip_len + tcp_len + i] = (uint8_t)(seed + i * 7 + (i >> 8));
    uint64_t sum = wgf_csum_pseudo(p + (v6 ? 8 : 12), v6 ? 32 : 8, 6, (uint32_t)(len - ip_len));
    wgf_csum_store(t + 16, (uint16_t)~wgf_csum_fold(wgf_csum_add(sum, t, len - ip_len)));
    return len;
}

/* Does the packet verify against the reference checksum (L4 and, for IPv4, the header)? */
static bool verifies(const uint8_t *p, size_t len, uint8_t proto)
{
    bool v6 = p[0] >> 4 == 6;
    size_t ip_len = v6 ? 40 : (size_t)(p[0] & 15) * 4;
    uint8_t pseudo[40] = {0};
    size_t plen;
    if (v6) {
        memcpy(pseudo, p + 8, 32);
        pseudo[34] = (uint8_t)((len - ip_len) >> 8), pseudo[35] = (uint8_t)(len - ip_len);
        pseudo[39] = proto;
        plen = 40;
    } else {
        if (ref_checksum(p, ip_len, NULL, 0) != 0)
            return false;
        memcpy(pseudo, p + 12, 8);
        pseudo[9] = proto;
        pseudo[10] = (uint8_t)((len - ip_len) >> 8), pseudo[11] = (uint8_t)(len - ip_len);
        plen = 12;
    }
    return ref_checksum(pseudo, plen, p + ip_len, len - ip_len) == 0;
}

static uint32_t seq_of(const uint8_t *p)
{
    const uint8_t *t = p + (p[0] >> 4 == 6 ? 40 : 20);
    return (uint32_t)t[4] << 24 | (uint32_t)t[5] << 16 | (uint32_t)t[6] << 8 | t[7];
}

static void split_coalesce_round_trip(bool v6, size_t payload, size_t mss, size_t opt_len)
{
    static uint8_t super[70000], segs[128][2048], joined[70000];
    size_t len = make_tcp(super, v6, 0xfffff000u, WGF_TCP_ACK | WGF_TCP_PSH | WGF_TCP_CWR,
                          payload, 3, opt_len, 40000);
    size_t ip_len = v6 ? 40 : 20, hdr_len = ip_len + 20 + opt_len;
    struct wgf_vnet_hdr h = {.flags = WGF_VNET_F_NEEDS_CSUM,
                             .gso_type = v6 ? WGF_VNET_GSO_TCPV6 : WGF_VNET_GSO_TCPV4,
                             .hdr_len = (uint16_t)hdr_len, .gso_size = (uint16_t)mss,
                             .csum_start = (uint16_t)ip_len, .csum_offset = 16};
    struct wgf_gso_plan plan;
    int count = wgf_offload_prepare(&h, super, len, &plan);
    CHECK(count == (int)((payload + mss - 1) / mss));
    if (count <= 0 || count > 128)
        return;
    uint8_t *ptrs[128];
    size_t lens[128];
    for (int i = 0; i < count; i++) {
        ptrs[i] = segs[i];
        lens[i] = wgf_gso_segment(&plan, super, (size_t)i, segs[i]);
        size_t want = (size_t)i + 1 < (size_t)count ? mss : payload - (size_t)i * mss;
        CHECK(lens[i] == hdr_len + want);
        CHECK(verifies(segs[i], lens[i], 6));
        CHECK(seq_of(segs[i]) == 0xfffff000u + (uint32_t)(i * mss)); /* wraps past 2^32 */
        uint8_t flags = segs[i][ip_len + 13];
        CHECK(((flags & WGF_TCP_PSH) != 0) == (i == count - 1));
        CHECK(((flags & WGF_TCP_CWR) != 0) == (i == 0));
        CHECK_MEM(segs[i] + hdr_len, super + hdr_len + (size_t)i * mss, lens[i] - hdr_len);
        if (!v6)
            CHECK(segs[i][4] == 0x12 && segs[i][5] == 0x34 + i);
    }
    /* CWR on the first segment only: coalescing keeps it apart, the rest merge. */
    struct wgf_gro g;
    size_t items = wgf_tcp_coalesce(&g, ptrs, lens, (size_t)count);
    size_t expect_items = count == 1 ? 1 : 2;
    CHECK(items == expect_items);
    if (items != expect_items)
        return;
    size_t k = items - 1;
    CHECK(g.items[k].count == (uint32_t)(count - (count > 1)));
    uint8_t hdr[WGF_GRO_HDR_SPACE];
    struct iovec iov[130];
    size_t total, n = wgf_gro_item_iov(&g, k, ptrs, lens, hdr, iov, &total);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(joined + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
    }
    CHECK(at == total);
    struct wgf_vnet_hdr out;
    wgf_vnet_hdr_read(joined, &out);
    if (count > 2) {
        CHECK(out.gso_type == h.gso_type && out.gso_size == mss && out.hdr_len == hdr_len);
        CHECK(out.flags == WGF_VNET_F_NEEDS_CSUM && out.csum_start == ip_len &&
              out.csum_offset == 16);
        /* Complete the checksum as the kernel would: the super-packet then verifies. */
        uint8_t *pkt = joined + WGF_VNET_HDR_LEN;
        size_t plen = total - WGF_VNET_HDR_LEN;
        CHECK(wgf_offload_prepare(&(struct wgf_vnet_hdr){.flags = WGF_VNET_F_NEEDS_CSUM,
                                                         .csum_start = (uint16_t)ip_len,
                                                         .csum_offset = 16},
                                  pkt, plen, &plan) == 0);
        CHECK(verifies(pkt, plen, 6));
        CHECK(seq_of(pkt) == 0xfffff000u + (uint32_t)mss);
        CHECK(pkt[ip_len + 13] == (WGF_TCP_ACK | WGF_TCP_PSH));
        CHECK(plen == len - mss);
        CHECK_MEM(pkt + hdr_len, super + hdr_len + mss, payload - mss);
    } else {
        CHECK(out.gso_type == WGF_VNET_GSO_NONE && out.flags == 0);
    }
}

WGF_TEST(offload_split_then_coalesce_round_trips)
{
    split_coalesce_round_trip(false, 65000, 1380, 12);
    split_coalesce_round_trip(true, 65000, 1360, 12);
    split_coalesce_round_trip(false, 5000, 1000, 0);    /* last segment shorter */
    split_coalesce_round_trip(true, 4000, 1000, 0);     /* all equal */
    split_coalesce_round_trip(false, 1001, 1000, 40);   /* two: the first kept apart (CWR) */
    split_coalesce_round_trip(false, 999, 1000, 0);     /* one segment: as is */
    split_coalesce_round_trip(true, 64 * 533 + 1, 533, 8);
}

/* Segments of make_tcp, ACK only, n of them, payload size each, starting at seq. */
static size_t fill(uint8_t (*bufs)[1600], uint8_t **ptrs, size_t *lens, size_t at, bool v6,
                   uint32_t seq, size_t n, size_t payload, uint16_t sport)
{
    for (size_t i = 0; i < n; i++) {
        ptrs[at + i] = bufs[at + i];
        lens[at + i] = make_tcp(bufs[at + i], v6, seq + (uint32_t)(i * payload), WGF_TCP_ACK,
                                payload, (uint8_t)i, 12, sport);
    }
    return at + n;
}

WGF_TEST(offload_coalesce_keeps_flows_apart)
{
    static uint8_t bufs[16][1600];
    uint8_t *p[16];
    size_t lens[16];
    struct wgf_gro g;
    /* Two flows interleaved: two items, each in its own order. */
    for (size_t i = 0; i < 8; i++) {
        p[i] = bufs[i];
        lens[i] = make_tcp(bufs[i], false, 1000 + (uint32_t)(i / 2) * 1000, WGF_TCP_ACK, 1000,
                           0, 0, i % 2 ? 5000 : 6000);
    }
    CHECK(wgf_tcp_coalesce(&g, p, lens, 8) == 2);
    CHECK(g.items[0].count == 4 && g.items[1].count == 4);
    CHECK(g.items[0].first == 0 && g.next[0] == 2 && g.next[2] == 4 && g.next[4] == 6);
    /* IPv4 and IPv6 never together, even at equal header lengths. */
    fill(bufs, p, lens, 0, false, 1, 2, 1000, 7000);
    fill(bufs, p, lens, 2, true, 2001, 2, 1000, 7000);
    CHECK(wgf_tcp_coalesce(&g, p, lens, 4) == 2);
    /* Different addresses. */
    fill(bufs, p, lens, 0, false, 1, 4, 1000, 7000);
    bufs[2][19] = 9;
    wgf_ip4_set_checksum(bufs[2], 20);
    CHECK(wgf_tcp_coalesce(&g, p, lens, 4) >= 3);
}

WGF_TEST(offload_coalesce_respects_gaps_flags_and_headers)
{
    static uint8_t bufs[16][1600];
    uint8_t *p[16];
    size_t lens[16];
    struct wgf_gro g;

    fill(bufs, p, lens, 0, false, 1, 4, 1000, 7000);
    CHECK(wgf_tcp_coalesce(&g, p, lens, 4) == 1 && g.items[0].count == 4);
    /* A sequence gap between 2 and 3. */
    fill(bufs, p, lens, 0, false, 1, 2, 1000, 7000);
    fill(bufs, p, lens, 2, false, 2001 + 1, 2, 1000, 7000);
    CHECK(wgf_tcp_coalesce(&g, p, lens, 4) == 2);
    /* A retransmission (same seq twice). */
    fill(bufs, p, lens, 0, false, 1, 2, 1000, 7000);
    fill(bufs, p, lens, 2, false, 1001, 1, 1000, 7000);
    CHECK(wgf_tcp_coalesce(&g, p, lens, 3) == 2);
    /* Flags: FIN, SYN, RST, URG never merge; PSH closes the item. */
    const uint8_t bad[] = {WGF_TCP_FIN, WGF_TCP_SYN, WGF_TCP_RST, 0x20, WGF_TCP_CWR, 0x40};
    for (size_t f = 0; f < sizeof(bad); f++) {
        fill(bufs, p, lens, 0, true, 1, 4, 1000, 7000);
        lens[2] = make_tcp(bufs[2], true, 2001, WGF_TCP_ACK | bad[f], 1000, 2, 12, 7000);
        CHECK(wgf_tcp_coalesce(&g, p, lens, 4) == 3);
    }
    fill(bufs, p, lens, 0, true, 1, 4, 1000, 7000);
    lens[1] = make_tcp(bufs[1], true, 1001, WGF_TCP_ACK | WGF_TCP_PSH, 1000, 1, 12, 7000);
    CHECK(wgf_tcp_coalesce(&g, p, lens, 4) == 2 && g.items[0].count == 2);
    /* A short segment ends an item; a longer one never joins. */
    fill(bufs, p, lens, 0, false, 1, 1, 1000, 7000);
    fill(bufs, p, lens, 1, false, 1001, 1, 500, 7000);
    fill(bufs, p, lens, 2, false, 1501, 1, 500, 7000);
    CHECK(wgf_tcp_coalesce(&g, p, lens, 3) == 2 && g.items[0].count == 2);
    fill(bufs, p, lens, 0, false, 1, 1, 500, 7000);
    fill(bufs, p, lens, 1, false, 501, 1, 1000, 7000);
    CHECK(wgf_tcp_coalesce(&g, p, lens, 2) == 2);
    /* Header differences: TTL, TOS, window, ack, options; a bad checksum; IPv4 options. */
    for (int which = 0; which < 7; which++) {
        fill(bufs, p, lens, 0, false, 1, 3, 1000, 7000);
        uint8_t *q = bufs[1];
        switch (which) {
        case 0: q[8] = 3; break;
        case 1: q[1] = 4; break;
        case 2: q[20 + 14] = 1; break;
        case 3: q[20 + 9] = 1; break;
        case 4: q[20 + 25] ^= 1; break;
        case 5: q[60] ^= 0x40; break; /* payload byte: checksum no longer verifies */
        case 6: q[7] = 1; break;      /* a fragment */
        }
        if (which != 5) {
            wgf_ip4_set_checksum(q, 20);
            size_t l4 = lens[1] - 20;
            q[36] = q[37] = 0;
            uint64_t s = wgf_csum_pseudo(q + 12, 8, 6, (uint32_t)l4);
            wgf_csum_store(q + 36, (uint16_t)~wgf_csum_fold(wgf_csum_add(s, q + 20, l4)));
        }
        CHECK(wgf_tcp_coalesce(&g, p, lens, 3) == 3);
    }
    /* Pure ACKs and non-TCP packets go as they are. */
    fill(bufs, p, lens, 0, false, 1, 3, 0, 7000);
    CHECK(wgf_tcp_coalesce(&g, p, lens, 3) == 3);
}

WGF_TEST(offload_coalesce_stays_under_64k)
{
    static uint8_t bufs[100][1600];
    uint8_t *p[100];
    size_t lens[100];
    struct wgf_gro g;
    fill(bufs, p, lens, 0, false, 1, 100, 1400, 7000);
    size_t items = wgf_tcp_coalesce(&g, p, lens, 100);
    CHECK(items == 3);
    for (size_t k = 0; k < items; k++)
        CHECK(g.items[k].hdr_len + g.items[k].payload <= 65535);
}

WGF_TEST(offload_mtu_edges)
{
    /* hdr 52 + gso_size 1368 = 1420 exactly: segments are exactly the MTU; one byte more makes
     * segments one over (the data plane drops those). */
    static uint8_t super[8000], seg[2000];
    for (int over = 0; over < 2; over++) {
        size_t mss = 1368 + (size_t)over;
        size_t len = make_tcp(super, false, 1, WGF_TCP_ACK, 3 * mss, 0, 12, 1);
        struct wgf_vnet_hdr h = {.gso_type = WGF_VNET_GSO_TCPV4, .gso_size = (uint16_t)mss};
        struct wgf_gso_plan plan;
        CHECK(wgf_offload_prepare(&h, super, len, &plan) == 3);
        CHECK(plan.hdr_len + plan.seg_size == 1420 + (size_t)over);
        CHECK(wgf_gso_segment(&plan, super, 0, seg) == 1420 + (size_t)over);
        CHECK(verifies(seg, 1420 + (size_t)over, 6));
    }
}

WGF_TEST(offload_completes_partial_checksums)
{
    static uint8_t pkt[2000];
    for (int v6 = 0; v6 < 2; v6++) {
        for (size_t payload = 0; payload < 40; payload += 7) {
            size_t len = make_tcp(pkt, v6, 5, WGF_TCP_ACK, payload, 1, 0, 9);
            size_t ip_len = v6 ? 40 : 20;
            /* What the kernel hands over with TUN_F_CSUM: the pseudo-header sum only. */
            uint64_t s = wgf_csum_pseudo(pkt + (v6 ? 8 : 12), v6 ? 32 : 8, 6,
                                         (uint32_t)(len - ip_len));
            wgf_csum_store(pkt + ip_len + 16, wgf_csum_fold(s));
            CHECK(!verifies(pkt, len, 6) || payload == 0);
            struct wgf_vnet_hdr h = {.flags = WGF_VNET_F_NEEDS_CSUM,
                                     .csum_start = (uint16_t)ip_len, .csum_offset = 16};
            struct wgf_gso_plan plan;
            CHECK(wgf_offload_prepare(&h, pkt, len, &plan) == 0);
            CHECK(verifies(pkt, len, 6));
            h.csum_offset = (uint16_t)(len - ip_len - 1); /* field past the end */
            CHECK(wgf_offload_prepare(&h, pkt, len, &plan) == -EINVAL);
        }
    }
}

WGF_TEST(offload_splits_udp_super_packets)
{
    static uint8_t super[20000], seg[2000];
    for (int v6 = 0; v6 < 2; v6++) {
        size_t ip_len = v6 ? 40 : 20, payload = 10000, mss = 1200, len = ip_len + 8 + payload;
        memset(super, 0, ip_len + 8);
        if (v6) {
            super[0] = 0x60, super[6] = 17, super[7] = 1;
            memcpy(super + 8, SRC6, 16), memcpy(super + 24, DST6, 16);
        } else {
            super[0] = 0x45, super[8] = 1, super[9] = 17;
            memcpy(super + 12, SRC4, 4), memcpy(super + 16, DST4, 4);
        }
        for (size_t i = 0; i < payload; i++)
            super[ip_len + 8 + i] = (uint8_t)(i * 13);
        struct wgf_vnet_hdr h = {.flags = WGF_VNET_F_NEEDS_CSUM, .gso_type = WGF_VNET_GSO_UDP_L4,
                                 .gso_size = (uint16_t)mss, .csum_start = (uint16_t)ip_len,
                                 .csum_offset = 6};
        struct wgf_gso_plan plan;
        CHECK(wgf_offload_prepare(&h, super, len, &plan) == 9);
        for (size_t i = 0; i < 9; i++) {
            size_t l = wgf_gso_segment(&plan, super, i, seg);
            size_t want = i < 8 ? mss : payload - 8 * mss;
            CHECK(l == ip_len + 8 + want);
            CHECK(((size_t)seg[ip_len + 4] << 8 | seg[ip_len + 5]) == 8 + want);
            CHECK(verifies(seg, l, 17));
            CHECK_MEM(seg + ip_len + 8, super + ip_len + 8 + i * mss, want);
        }
    }
}

WGF_TEST(offload_rejects_malformed_super_packets)
{
    static uint8_t pkt[70000], out[70000];
    struct wgf_gso_plan plan;
    uint8_t good[200];
    size_t good_len = make_tcp(good, false, 1, WGF_TCP_ACK, 100, 0, 0, 1);
    struct wgf_vnet_hdr h = {.gso_type = WGF_VNET_GSO_TCPV6, .gso_size = 10};
    CHECK(wgf_offload_prepare(&h, good, good_len, &plan) == -EINVAL); /* v4 claimed as v6 */
    h.gso_type = WGF_VNET_GSO_UDP;
    CHECK(wgf_offload_prepare(&h, good, good_len, &plan) == -EINVAL);
    h.gso_type = WGF_VNET_GSO_TCPV4, h.gso_size = 0;
    CHECK(wgf_offload_prepare(&h, good, good_len, &plan) == -EINVAL);
    h.gso_size = 10;
    CHECK(wgf_offload_prepare(&h, good, 30, &plan) == -EINVAL); /* TCP header cut short */
    /* Random headers and lengths: whatever prepare accepts must split within bounds (ASan
     * watches), and coalescing random packets must not read past them. */
    for (int trial = 0; trial < 3000; trial++) {
        size_t len = rnd() % 300;
        for (size_t i = 0; i < len; i++)
            pkt[i] = (uint8_t)rnd();
        if (len > 0 && trial % 2)
            pkt[0] = trial % 4 == 1 ? 0x45 : 0x60;
        if (len > 9 && trial % 3 == 0)
            pkt[9] = 6, pkt[6] = 6;
        uint8_t *heap = malloc(len ? len : 1);
        memcpy(heap, pkt, len);
        struct wgf_vnet_hdr r = {.flags = (uint8_t)(rnd() & 1), .gso_type = (uint8_t)(rnd() % 6),
                                 .gso_size = (uint16_t)(rnd() % 64),
                                 .csum_start = (uint16_t)(rnd() % 320),
                                 .csum_offset = (uint16_t)(rnd() % 40)};
        int c = wgf_offload_prepare(&r, heap, len, &plan);
        for (int i = 0; i < c; i++)
            CHECK(wgf_gso_segment(&plan, heap, (size_t)i, out) <= plan.hdr_len + plan.seg_size);
        struct wgf_gro g;
        uint8_t *ptrs[1] = {heap};
        CHECK(wgf_tcp_coalesce(&g, ptrs, &len, 1) == 1);
        free(heap);
    }
}

WGF_TEST(offload_udp_gso_groups)
{
    struct iovec iov[10];
    struct sockaddr_in to[10];
    socklen_t nl[10];
    uint32_t start[10], len[10];
    const size_t sizes[10] = {100, 100, 100, 50, 100, 100, 100, 100, 120, 100};
    memset(to, 0, sizeof(to));
    for (int i = 0; i < 10; i++) {
        iov[i].iov_len = sizes[i];
        to[i].sin_port = i == 6 ? 2 : 1;
        nl[i] = sizeof(to[i]);
    }
    size_t g = wgf_udp_gso_groups(iov, to, sizeof(to[0]), nl, NULL, 0, 10, 64, start, len);
    /* [100 100 100 50] [100 100] [100 (other port)] [100] [120 100]: a longer one starts anew. */
    CHECK(g == 5);
    CHECK(start[0] == 0 && len[0] == 4);
    CHECK(start[1] == 4 && len[1] == 2);
    CHECK(start[2] == 6 && len[2] == 1);
    CHECK(start[3] == 7 && len[3] == 1);
    CHECK(start[4] == 8 && len[4] == 2);
    g = wgf_udp_gso_groups(iov, to, sizeof(to[0]), nl, NULL, 0, 3, 2, start, len);
    CHECK(g == 2 && len[0] == 2 && len[1] == 1); /* the segment limit */
    /* A key that differs (another ECN field or source) ends a group: one cmsg covers it. */
    const uint8_t ecn[10] = {2, 2, 3, 3, 0, 0, 0, 0, 0, 0};
    g = wgf_udp_gso_groups(iov, to, sizeof(to[0]), nl, ecn, 1, 4, 64, start, len);
    CHECK(g == 2 && start[1] == 2 && len[0] == 2 && len[1] == 2);
}
