/* The data plane's sizes: every MTU up to the TUN's limit (65535), buffers sized by the MTU in
 * force (changed under live sessions), and a whole batch (WGF_DP_BATCH, whatever the build made
 * it) through the plain and the vnet-header TUN paths. Driven by wgf_dp_run_once on fake clocks,
 * as test_dataplane.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../dataplane_internal.h"
#include "../offload.h"
#include "check.h"
#include "dp_pair.h"

#define PEER_ID 9
#define T0 (1000 * WGF_NSEC_PER_SEC)
#define JUMBO_MTU 34736 /* the kernel selftest's jumbo case */
/* The largest IP packet one IPv4 UDP datagram carries through the tunnel: 65507 bytes of UDP
 * payload, less the data header and the tag, rounded down to the padding multiple (16). */
#define LARGEST_OVER_UDP4 ((65535 - 20 - 8 - WGF_DATA_MIN_LEN) & ~15)

static void pair_open_mtu(struct dp_side *a, struct dp_side *b, unsigned mtu)
{
    dp_pair_open(a, b, PEER_ID, mtu, T0);
}

static uint64_t drops(struct dp_side *s, int reason)
{
    struct wgf_dp_stats st;
    wgf_dp_get_stats(s->dp, &st);
    return st.drops[reason];
}

static uint64_t send_counter(struct dp_side *s)
{
    struct wgf_dp_peer_info info;
    CHECK(wgf_dp_peer_get_info(s->dp, PEER_ID, &info) == 0);
    return info.current_send_counter;
}

/* Writes a len-byte packet A -> B and reports whether B's TUN got it intact. */
static bool crosses(struct dp_side *a, struct dp_side *b, size_t len, uint8_t seed)
{
    static uint8_t pkt[65536], got[65536];
    dp_make_ip4(pkt, "10.0.0.1", "10.0.0.2", len, seed);
    CHECK(write(a->tun[1], pkt, len) == (ssize_t)len);
    dp_pump(a, b, 2);
    ssize_t n = dp_tun_read(b, got, sizeof(got));
    return n == (ssize_t)len && memcmp(got, pkt, len) == 0;
}

WGF_TEST(dataplane_mtu_range_reaches_the_tun_limit)
{
    int tun[2];
    CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, tun) == 0);
    struct wgf_dp *dp = NULL;
    CHECK(wgf_dp_new(&dp, tun[0], -1, -1, 65536) == -EINVAL);
    CHECK(wgf_dp_new(&dp, tun[0], -1, -1, 65535) == 0);
    CHECK(wgf_dp_set_mtu(dp, 65536) == -EINVAL);
    CHECK(wgf_dp_set_mtu(dp, WGF_DP_MTU_MIN - 1) == -EINVAL);
    CHECK(wgf_dp_set_mtu(dp, WGF_DP_MTU_MIN) == 0);
    CHECK(wgf_dp_set_mtu(dp, JUMBO_MTU) == 0 && wgf_dp_get_mtu(dp) == JUMBO_MTU);
    wgf_dp_free(dp);
    close(tun[0]);
    close(tun[1]);
}

WGF_TEST(dataplane_buffers_follow_the_mtu_in_force)
{
    struct dp_side a, b;
    pair_open_mtu(&a, &b, 1420);
    /* Sized by the MTU, not by the largest one: padded packet + header + two tags for sending,
     * a peer's datagram up to WGF_DP_RX_MTU_FLOOR (9000, or our MTU if larger; padded to 16)
     * for receiving. */
    CHECK(a.dp->tx_buf_size == 16 + 1424 + 32);
    CHECK(a.dp->rx_buf_size == 16 + 9008 + 16);
    CHECK(wgf_dp_set_mtu(a.dp, JUMBO_MTU) == 0);
    CHECK(a.dp->tx_buf_size == 16 + JUMBO_MTU + 32);
    CHECK(a.dp->rx_buf_size == 16 + JUMBO_MTU + 16);
    CHECK(wgf_dp_set_mtu(a.dp, 65535) == 0);
    CHECK(a.dp->tx_buf_size == 16 + 65536 + 32);
    CHECK(wgf_dp_set_mtu(a.dp, 1280) == 0);
    CHECK(a.dp->tx_buf_size == 16 + 1280 + 32);
    CHECK(a.dp->rx_buf_size == 16 + 9008 + 16);
    dp_pair_close(&a, &b);
}

WGF_TEST(dataplane_jumbo_mtu_carries_jumbo_packets)
{
    struct dp_side a, b;
    pair_open_mtu(&a, &b, JUMBO_MTU);
    CHECK(dp_handshake(&a, PEER_ID, &b, PEER_ID, T0, 0xB1) == 0);
    CHECK(crosses(&a, &b, JUMBO_MTU, 1));
    CHECK(crosses(&a, &b, 20000, 2));
    CHECK(crosses(&a, &b, 100, 3));
    /* One byte over the MTU is an oversized packet, not a truncated one. */
    static uint8_t pkt[JUMBO_MTU + 1];
    dp_make_ip4(pkt, "10.0.0.1", "10.0.0.2", sizeof(pkt), 4);
    CHECK(write(a.tun[1], pkt, sizeof(pkt)) == (ssize_t)sizeof(pkt));
    dp_pump(&a, &b, 2);
    CHECK(drops(&a, WGF_DROP_OVERSIZE) == 1);
    CHECK(send_counter(&a) == 3);
    dp_pair_close(&a, &b);
}

WGF_TEST(dataplane_mtu_at_the_tun_limit)
{
    struct dp_side a, b;
    pair_open_mtu(&a, &b, 65535);
    CHECK(dp_handshake(&a, PEER_ID, &b, PEER_ID, T0, 0xB2) == 0);
    /* The largest packet an IPv4 datagram can carry crosses; one more byte makes a datagram UDP
     * cannot send (a counted drop, as wireguard-go and the kernel fail it too). */
    CHECK(crosses(&a, &b, LARGEST_OVER_UDP4, 5));
    CHECK(!crosses(&a, &b, LARGEST_OVER_UDP4 + 1, 6));
    CHECK(drops(&a, WGF_DROP_UDP_SEND) == 1);
    dp_pair_close(&a, &b);
}

WGF_TEST(dataplane_mtu_grows_and_shrinks_under_a_live_session)
{
    struct dp_side a, b;
    pair_open_mtu(&a, &b, 1420);
    CHECK(dp_handshake(&a, PEER_ID, &b, PEER_ID, T0, 0xB3) == 0);
    CHECK(crosses(&a, &b, 1420, 1));
    /* A grows first: its jumbo datagram is larger than B's receive buffers (a truncated drop,
     * not a crash); once B grows too, it crosses under the same keypair. */
    CHECK(wgf_dp_set_mtu(a.dp, JUMBO_MTU) == 0);
    CHECK(!crosses(&a, &b, 30000, 2));
    CHECK(drops(&b, WGF_DROP_TRUNCATED) == 1);
    CHECK(wgf_dp_set_mtu(b.dp, JUMBO_MTU) == 0);
    CHECK(crosses(&a, &b, 30000, 3));
    /* A datagram up to WGF_DP_RX_MTU_FLOOR still fits a small MTU's receive buffers. */
    CHECK(wgf_dp_set_mtu(b.dp, 1420) == 0);
    CHECK(crosses(&a, &b, WGF_DP_RX_MTU_FLOOR, 4));
    CHECK(wgf_dp_set_mtu(a.dp, 1420) == 0);
    CHECK(crosses(&a, &b, 1420, 5));
    CHECK(send_counter(&a) == 5); /* every one under the first keypair: the session stayed */
    dp_pair_close(&a, &b);
}

/* A full batch and more (WGF_DP_BATCH + 5 packets), written at once, all arrive intact at b. */
static void whole_batch_crosses(struct dp_side *a, struct dp_side *b, bool vnet)
{
    enum { N = WGF_DP_BATCH + 5, LEN = 200 };
    static uint8_t pkt[LEN], got[LEN + WGF_VNET_HDR_LEN + 64];
    for (int i = 0; i < N; i++) {
        dp_make_ip4(pkt, "10.0.0.1", "10.0.0.2", LEN, (uint8_t)i);
        CHECK(write(a->tun[1], pkt, LEN) == LEN);
    }
    dp_pump(a, b, 3);
    size_t head = vnet ? WGF_VNET_HDR_LEN : 0;
    int received = 0;
    ssize_t n;
    while ((n = dp_tun_read(b, got, sizeof(got))) > 0) {
        dp_make_ip4(pkt, "10.0.0.1", "10.0.0.2", LEN, (uint8_t)received);
        CHECK(n == (ssize_t)(head + LEN));
        if (n == (ssize_t)(head + LEN))
            CHECK_MEM(got + head, pkt, LEN);
        received++;
    }
    CHECK(received == N);
}

WGF_TEST(dataplane_whole_batch_crosses_plain_and_vnet_tun)
{
    struct dp_side a, b;
    pair_open_mtu(&a, &b, 1420);
    CHECK(dp_handshake(&a, PEER_ID, &b, PEER_ID, T0, 0xB4) == 0);
    whole_batch_crosses(&a, &b, false);
    /* B's TUN written with virtio headers (the fd is a socketpair: the test stands in for a
     * TUN opened with IFF_VNET_HDR), one item per packet, without and with TUN GRO. */
    b.dp->tun_vnet_hdr = true;
    CHECK(wgf_dp_set_offloads(b.dp, WGF_DP_OFFLOAD_TUN_VNET) == WGF_DP_OFFLOAD_TUN_VNET);
    whole_batch_crosses(&a, &b, true);
    int on = wgf_dp_set_offloads(b.dp, WGF_DP_OFFLOAD_TUN_VNET | WGF_DP_OFFLOAD_TUN_GRO);
    CHECK(on == (WGF_DP_OFFLOAD_TUN_VNET | WGF_DP_OFFLOAD_TUN_GRO));
    whole_batch_crosses(&a, &b, true);
    CHECK(drops(&b, WGF_DROP_TUN_WRITE) == 0);
    dp_pair_close(&a, &b);
}

WGF_TEST(dataplane_tun_vnet_flag_must_match_the_fd)
{
    struct dp_side a, b;
    pair_open_mtu(&a, &b, 1420);
    /* A socketpair is no TUN: it has no vnet header, so the flag is refused, nothing changes. */
    CHECK(wgf_dp_set_offloads(a.dp, WGF_DP_OFFLOAD_TUN_VNET) == -EINVAL);
    CHECK(wgf_dp_get_offloads(a.dp) == 0 && a.dp->off == NULL);
    CHECK(wgf_dp_set_offloads(a.dp, WGF_DP_OFFLOAD_UDP_GSO) == WGF_DP_OFFLOAD_UDP_GSO);
    /* A fd with a vnet header may not be read as a plain one, by offloads or by the loop. */
    b.dp->tun_vnet_hdr = true;
    CHECK(wgf_dp_set_offloads(b.dp, WGF_DP_OFFLOAD_UDP_GSO) == -EINVAL);
    CHECK(wgf_dp_run_once(b.dp, 0) == -EINVAL);
    CHECK(wgf_dp_run(b.dp) == -EINVAL);
    dp_pair_close(&a, &b);
}
