/* The data plane driven from one thread with wgf_dp_run_once(.., 0), so every step is
 * deterministic, on fake clocks (dp_pair.h): packets, staging, drops, and what Python hears. The
 * rules of keypairs (rotation, confirmation, rekeys, zeroing) are in test_dataplane_keypairs.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../dataplane_internal.h"
#include "check.h"
#include "dp_pair.h"

#define PEER_ID 7
#define MTU 1420
#define T0 (1000 * WGF_NSEC_PER_SEC) /* the fake clocks' start */

/* A: 10.0.0.1, B: 10.0.0.2, each routing the other's /32 to PEER_ID, on fake clocks. */
static void pair_open(struct dp_side *a, struct dp_side *b)
{
    dp_pair_open(a, b, PEER_ID, MTU, T0);
}

static struct wgf_dp_stats stats_of(struct dp_side *s)
{
    struct wgf_dp_stats st;
    wgf_dp_get_stats(s->dp, &st);
    return st;
}

static struct wgf_dp_peer_info info_of(struct dp_side *s)
{
    struct wgf_dp_peer_info info;
    CHECK(wgf_dp_peer_get_info(s->dp, PEER_ID, &info) == 0);
    return info;
}

WGF_TEST(dataplane_packets_cross_and_match)
{
    struct dp_side a, b;
    pair_open(&a, &b);
    CHECK(dp_handshake(&a, PEER_ID, &b, PEER_ID, T0, 0xA1) == 0);
    struct wgf_dp_peer_event ev[4];
    dp_events(&a, ev, 4);
    dp_events(&b, ev, 4);
    uint8_t pkt[3][1500], got[2000];
    size_t lens[3] = {20, 333, MTU};
    for (int i = 0; i < 3; i++) {
        dp_make_ip4(pkt[i], "10.0.0.1", "10.0.0.2", lens[i], (uint8_t)i);
        CHECK(write(a.tun[1], pkt[i], lens[i]) == (ssize_t)lens[i]);
    }
    dp_pump(&a, &b, 3);
    for (int i = 0; i < 3; i++) {
        ssize_t n = dp_tun_read(&b, got, sizeof(got));
        CHECK(n == (ssize_t)lens[i]);
        if (n == (ssize_t)lens[i])
            CHECK_MEM(got, pkt[i], lens[i]);
    }
    CHECK(dp_tun_read(&b, got, sizeof(got)) == -1);

    /* B was the responder: the first packet confirmed its next keypair, at once. */
    CHECK(dp_signalled(&b));
    struct wgf_dp_peer_info info = info_of(&b);
    CHECK(dp_events(&b, ev, 4) == 1);
    CHECK(ev[0].peer == PEER_ID && (ev[0].events & WGF_DP_EV_KEYPAIR_CONFIRMED));
    CHECK(ev[0].events & WGF_DP_EV_ACTIVITY);
    CHECK(ev[0].confirmed_ns == T0);
    CHECK(ev[0].activity.rx_any_ns == T0 && ev[0].activity.rx_data_first_ns == T0);
    CHECK(info.has_current && !info.has_next && !info.current_is_initiator);
    CHECK(info.rx_packets == 3 && info.activity.rx_data_last_ns == T0);
    CHECK(info.endpoint.in4.sin_port == a.addr.sin_port);

    /* And back: B now sends under the promoted keypair. */
    b.now += 1000;
    dp_make_ip4(pkt[0], "10.0.0.2", "10.0.0.1", 100, 9);
    CHECK(write(b.tun[1], pkt[0], 100) == 100);
    dp_pump(&a, &b, 3);
    CHECK(dp_tun_read(&a, got, sizeof(got)) == 100);
    CHECK_MEM(got, pkt[0], 100);
    info = info_of(&a);
    CHECK(info.tx_packets == 3 && info.rx_packets == 1 && info.current_send_counter == 3);
    /* Padded to 16, plus header and tag: 32 + 32, 32 + 336, 32 + 1420 (MTU caps padding). */
    CHECK(info.tx_bytes == 64 + 368 + 1452);
    dp_pair_close(&a, &b);
}

WGF_TEST(dataplane_activity_is_reported_when_due_and_coalesced)
{
    struct dp_side a, b;
    pair_open(&a, &b);
    CHECK(dp_handshake(&a, PEER_ID, &b, PEER_ID, T0, 0xA2) == 0);
    struct wgf_dp_peer_event ev[4];
    dp_events(&a, ev, 4);
    uint8_t pkt[200];
    dp_make_ip4(pkt, "10.0.0.1", "10.0.0.2", 200, 1);
    /* Three batches of data from A: one activity entry, not yet signalled. */
    for (int i = 0; i < 3; i++) {
        a.now += WGF_NSEC_PER_SEC / 1000;
        CHECK(write(a.tun[1], pkt, 200) == 200);
        dp_pump(&a, &b, 1);
    }
    CHECK(!dp_signalled(&a));
    wgf_dp_run_timers(a.dp); /* not due yet */
    CHECK(!dp_signalled(&a));
    a.now += WGF_ACTIVITY_REPORT_NS;
    wgf_dp_run_timers(a.dp);
    CHECK(dp_signalled(&a));
    CHECK(dp_events(&a, ev, 4) == 1);
    CHECK(ev[0].events == WGF_DP_EV_ACTIVITY);
    /* Data sent, nothing received since: the first send is remembered, the last any-send too. */
    CHECK(ev[0].activity.tx_data_first_ns == T0 + WGF_NSEC_PER_SEC / 1000);
    CHECK(ev[0].activity.tx_any_ns == T0 + 3 * (WGF_NSEC_PER_SEC / 1000));
    CHECK(ev[0].activity.rx_any_ns == 0);
    CHECK(!dp_signalled(&a));

    /* A keepalive from B: received, which ends A's "sent, nothing received"; not data. */
    b.now = a.now;
    CHECK(wgf_dp_peer_send_keepalive(b.dp, PEER_ID) == 0);
    dp_pump(&a, &b, 2);
    a.now += WGF_ACTIVITY_REPORT_NS;
    wgf_dp_run_timers(a.dp);
    CHECK(dp_events(&a, ev, 4) == 1);
    CHECK(ev[0].activity.rx_any_ns == b.now && ev[0].activity.tx_data_first_ns == 0);
    CHECK(ev[0].activity.rx_data_first_ns == 0 && ev[0].activity.rx_data_last_ns == 0);
    /* Nothing more happened: nothing more is reported. */
    a.now += WGF_ACTIVITY_REPORT_NS;
    wgf_dp_run_timers(a.dp);
    CHECK(!dp_signalled(&a) && dp_events(&a, ev, 4) == 0);
    dp_pair_close(&a, &b);
}

WGF_TEST(dataplane_staged_until_handshake)
{
    struct dp_side a, b;
    pair_open(&a, &b);
    uint8_t pkt[5][200], got[2000];
    for (int i = 0; i < 5; i++) {
        dp_make_ip4(pkt[i], "10.0.0.1", "10.0.0.2", 60 + i, (uint8_t)(i * 3));
        CHECK(write(a.tun[1], pkt[i], 60 + i) == 60 + i);
        dp_pump(&a, &b, 1); /* several batches, still one event */
    }
    CHECK(dp_signalled(&a));
    struct wgf_dp_peer_event ev[8];
    CHECK(dp_events(&a, ev, 8) == 1);
    CHECK(ev[0].events == WGF_DP_EV_HANDSHAKE_WANTED && ev[0].peer == PEER_ID);
    CHECK(!dp_signalled(&a)); /* acknowledged and drained: no longer readable */
    CHECK(info_of(&a).staged == 5);
    CHECK(dp_tun_read(&b, got, sizeof(got)) == -1);

    CHECK(dp_handshake(&a, PEER_ID, &b, PEER_ID, T0, 0xA3) == 0);
    dp_pump(&a, &b, 3);
    for (int i = 0; i < 5; i++) {
        CHECK(dp_tun_read(&b, got, sizeof(got)) == 60 + i);
        CHECK_MEM(got, pkt[i], (size_t)(60 + i));
    }
    CHECK(stats_of(&a).staged_flushed == 5);
    CHECK(info_of(&a).staged == 0);
    dp_pair_close(&a, &b);
}

/* The initiator confirms a new keypair with a keepalive only when no data does it: packets staged
 * during the handshake go instead, whether the loop sends them before the confirmation is asked
 * for or after (the kernel's rule: a keepalive only when nothing is staged), and a keepalive
 * asked for while packets wait sends those. What the peer's counters show must match. */
WGF_TEST(dataplane_staged_packets_confirm_the_session_instead_of_a_keepalive)
{
    uint8_t pkt[200];
    for (int order = 0; order < 3; order++) {
        struct dp_side a, b;
        pair_open(&a, &b);
        dp_make_ip4(pkt, "10.0.0.1", "10.0.0.2", 100, 1);
        CHECK(write(a.tun[1], pkt, 100) == 100);
        dp_pump(&a, &b, 1);
        CHECK(info_of(&a).staged == 1);
        CHECK(dp_handshake(&a, PEER_ID, &b, PEER_ID, T0, 0xC1) == 0);
        if (order == 0) { /* the loop flushed before the confirmation was asked for */
            dp_pump(&a, &b, 1);
            CHECK(wgf_dp_peer_confirm_session(a.dp, PEER_ID) == 0);
        } else if (order == 1) {
            CHECK(wgf_dp_peer_confirm_session(a.dp, PEER_ID) == 0);
        } else {
            CHECK(wgf_dp_peer_send_keepalive(a.dp, PEER_ID) == 0);
        }
        dp_pump(&a, &b, 2);
        struct wgf_dp_stats st = stats_of(&a);
        CHECK(st.keepalives_sent == 0 && st.tx_packets == 1);
        CHECK(info_of(&a).tx_bytes == 16 + 112 + 16);
        dp_pair_close(&a, &b);
    }
    /* Nothing staged: the confirmation is a keepalive; after data went, none. */
    struct dp_side a, b;
    pair_open(&a, &b);
    CHECK(dp_handshake(&a, PEER_ID, &b, PEER_ID, T0, 0xC2) == 0);
    CHECK(wgf_dp_peer_confirm_session(a.dp, PEER_ID) == 0);
    dp_pump(&a, &b, 2);
    CHECK(stats_of(&a).keepalives_sent == 1 && stats_of(&b).keepalives_received == 1);
    CHECK(wgf_dp_peer_confirm_session(a.dp, PEER_ID) == 0);
    dp_pump(&a, &b, 2);
    CHECK(stats_of(&a).keepalives_sent == 1);
    CHECK(wgf_dp_peer_confirm_session(a.dp, 99) == -ENOENT);
    dp_pair_close(&a, &b);
}

/* The response's source is set as the endpoint before its keypair is installed: the handshake
 * asked for is in flight, so the staged packets must not ask for another one (a second
 * initiation five seconds later would end the session it just made). */
WGF_TEST(dataplane_endpoint_update_keeps_the_pending_request)
{
    struct dp_side a, b;
    pair_open(&a, &b);
    uint8_t pkt[100], got[200];
    dp_make_ip4(pkt, "10.0.0.1", "10.0.0.2", 100, 7);
    CHECK(write(a.tun[1], pkt, 100) == 100);
    dp_pump(&a, &b, 1);
    struct wgf_dp_peer_event ev[4];
    CHECK(dp_events(&a, ev, 4) == 1 && ev[0].events == WGF_DP_EV_HANDSHAKE_WANTED);
    dp_point_at(&a, PEER_ID, &b.addr); /* the same endpoint again, as a response sets it */
    dp_pump(&a, &b, 2);
    CHECK(!dp_signalled(&a) && dp_events(&a, ev, 4) == 0);
    CHECK(dp_handshake(&a, PEER_ID, &b, PEER_ID, T0, 0xA5) == 0);
    dp_pump(&a, &b, 3);
    CHECK(dp_tun_read(&b, got, sizeof(got)) == 100);
    dp_pair_close(&a, &b);
}

/* A peer stranded without an endpoint asked for a handshake that could not be sent: its
 * endpoint arriving asks again. */
WGF_TEST(dataplane_endpoint_after_stranding_asks_again)
{
    struct dp_side a, b;
    pair_open(&a, &b);
    union wgf_dp_endpoint none;
    memset(&none, 0, sizeof(none));
    none.sa.sa_family = AF_UNSPEC;
    CHECK(wgf_dp_peer_set_endpoint(a.dp, PEER_ID, &none) == 0);
    uint8_t pkt[100];
    dp_make_ip4(pkt, "10.0.0.1", "10.0.0.2", 100, 8);
    CHECK(write(a.tun[1], pkt, 100) == 100);
    dp_pump(&a, &b, 1);
    struct wgf_dp_peer_event ev[4];
    CHECK(dp_events(&a, ev, 4) == 1 && ev[0].events == WGF_DP_EV_HANDSHAKE_WANTED);
    dp_point_at(&a, PEER_ID, &b.addr);
    dp_pump(&a, &b, 2);
    CHECK(dp_events(&a, ev, 4) == 1 && ev[0].events == WGF_DP_EV_HANDSHAKE_WANTED);
    dp_pair_close(&a, &b);
}

WGF_TEST(dataplane_staged_queue_bounded_and_droppable)
{
    struct dp_side a, b;
    pair_open(&a, &b);
    uint8_t pkt[100];
    dp_make_ip4(pkt, "10.0.0.1", "10.0.0.2", 100, 1);
    for (int i = 0; i < WGF_DP_STAGED_MAX + 3; i++) {
        CHECK(write(a.tun[1], pkt, 100) == 100);
        if (i % 32 == 31)
            dp_pump(&a, &b, 1);
    }
    dp_pump(&a, &b, 2);
    CHECK(info_of(&a).staged == WGF_DP_STAGED_MAX);
    CHECK(stats_of(&a).drops[WGF_DROP_STAGED_OVERFLOW] == 3);
    struct wgf_dp_peer_event ev[4];
    CHECK(dp_events(&a, ev, 4) == 1 && ev[0].events == WGF_DP_EV_HANDSHAKE_WANTED);
    CHECK(wgf_dp_peer_drop_staged(a.dp, PEER_ID) == WGF_DP_STAGED_MAX);
    CHECK(stats_of(&a).drops[WGF_DROP_STAGED_DISCARDED] == WGF_DP_STAGED_MAX);
    CHECK(dp_signalled(&a));
    CHECK(dp_events(&a, ev, 4) == 1 && ev[0].events == WGF_DP_EV_STAGED_DROPPED);
    CHECK(ev[0].staged_dropped == WGF_DP_STAGED_MAX);
    /* Dropping re-arms the request: the next packet asks for a handshake again. */
    CHECK(write(a.tun[1], pkt, 100) == 100);
    dp_pump(&a, &b, 1);
    CHECK(dp_events(&a, ev, 4) == 1 && ev[0].events == WGF_DP_EV_HANDSHAKE_WANTED);
    dp_pair_close(&a, &b);
}

WGF_TEST(dataplane_stranded_peers_cannot_starve_the_pool)
{
    struct dp_side a, b;
    pair_open(&a, &b);
    CHECK(dp_handshake(&a, PEER_ID, &b, PEER_ID, T0, 0xA4) == 0);
    /* Twelve peers with routes and no endpoint: whatever they stage is stranded. */
    enum { STRANDED = 12 };
    for (uint32_t id = 100; id < 100 + STRANDED; id++) {
        CHECK(wgf_dp_peer_add(a.dp, id) == 0);
        uint8_t net[4] = {10, 1, (uint8_t)id, 0};
        CHECK(wgf_allowedips_insert(wgf_dp_allowedips(a.dp), WGF_IP4, net, 24, id) == 0);
    }
    uint8_t pkt[100], got[200];
    char dst[32];
    for (int round = 0; round < WGF_DP_STAGED_MAX / 16; round++) {
        for (uint32_t id = 100; id < 100 + STRANDED; id++) {
            snprintf(dst, sizeof(dst), "10.1.%u.9", id);
            dp_make_ip4(pkt, "10.0.0.1", dst, 100, (uint8_t)id);
            for (int k = 0; k < 16; k++)
                CHECK(write(a.tun[1], pkt, 100) == 100);
        }
        /* The peer with an endpoint keeps sending meanwhile. */
        dp_make_ip4(pkt, "10.0.0.1", "10.0.0.2", 100, (uint8_t)round);
        CHECK(write(a.tun[1], pkt, 100) == 100);
        dp_pump(&a, &b, 2);
        CHECK(dp_tun_read(&b, got, sizeof(got)) == 100);
    }
    pthread_mutex_lock(&a.dp->lock);
    size_t stranded = a.dp->stranded_staged, pool_free = a.dp->pool_free;
    pthread_mutex_unlock(&a.dp->lock);
    CHECK(stranded == WGF_DP_STRANDED_MAX);
    CHECK(pool_free == WGF_DP_STAGED_POOL - WGF_DP_STRANDED_MAX);
    CHECK(stats_of(&a).drops[WGF_DROP_STAGED_OVERFLOW] > 0);
    /* Given an endpoint, a stranded peer's packets count as the others' again. */
    struct sockaddr_in nowhere = b.addr;
    dp_point_at(&a, 100, &nowhere);
    pthread_mutex_lock(&a.dp->lock);
    CHECK(a.dp->stranded_staged < WGF_DP_STRANDED_MAX);
    pthread_mutex_unlock(&a.dp->lock);
    /* Dropped (a handshake gave up), the pool is whole again. */
    for (uint32_t id = 100; id < 100 + STRANDED; id++)
        CHECK(wgf_dp_peer_drop_staged(a.dp, id) >= 0);
    pthread_mutex_lock(&a.dp->lock);
    CHECK(a.dp->stranded_staged == 0 && a.dp->pool_free == WGF_DP_STAGED_POOL);
    pthread_mutex_unlock(&a.dp->lock);
    dp_pair_close(&a, &b);
}

/* Catches one datagram A seals, by pointing A at a socket the test reads. */
static ssize_t capture(struct dp_side *a, struct dp_side *b, int sniffer,
                       const struct sockaddr_in *at, uint8_t *dgram, size_t cap, size_t ip_len)
{
    uint8_t pkt[1500];
    dp_point_at(a, PEER_ID, at);
    dp_make_ip4(pkt, "10.0.0.1", "10.0.0.2", ip_len, 42);
    CHECK(write(a->tun[1], pkt, ip_len) == (ssize_t)ip_len);
    dp_pump(a, b, 1);
    return recv(sniffer, dgram, cap, MSG_DONTWAIT);
}

WGF_TEST(dataplane_replayed_tampered_unknown_are_counted_drops)
{
    struct dp_side a, b;
    pair_open(&a, &b);
    CHECK(dp_handshake(&a, PEER_ID, &b, PEER_ID, T0, 0xA5) == 0);
    struct sockaddr_in sn;
    int sniffer = dp_udp_socket(&sn);
    uint8_t d[2000], got[2000];
    ssize_t n = capture(&a, &b, sniffer, &sn, d, sizeof(d), 80);
    CHECK(n == 16 + 80 + 16);
    struct wgf_index_entry e;
    CHECK(d[0] == 4 && wgf_get_le64(d + 8) == 0);
    CHECK(wgf_index_table_lookup(wgf_dp_index_table(b.dp), wgf_get_le32(d + 4), &e) == 0);

    /* Genuine, delivered from the sniffer: B accepts and roams to the sniffer's address. */
    struct wgf_dp_peer_event ev[4];
    dp_events(&b, ev, 4);
    sendto(sniffer, d, (size_t)n, 0, (struct sockaddr *)&b.addr, sizeof(b.addr));
    dp_pump(&a, &b, 1);
    CHECK(dp_tun_read(&b, got, sizeof(got)) == 80);
    union wgf_dp_endpoint ep;
    CHECK(wgf_dp_peer_get_endpoint(b.dp, PEER_ID, &ep) == 0 && ep.in4.sin_port == sn.sin_port);
    CHECK(dp_events(&b, ev, 4) == 1 && (ev[0].events & WGF_DP_EV_ENDPOINT_CHANGED));
    CHECK(ev[0].endpoint.in4.sin_port == sn.sin_port);

    sendto(sniffer, d, (size_t)n, 0, (struct sockaddr *)&b.addr, sizeof(b.addr)); /* replay */
    uint8_t t[2000];
    memcpy(t, d, (size_t)n);
    wgf_put_le64(t + 8, 1);
    t[40] ^= 1; /* tampered */
    sendto(sniffer, t, (size_t)n, 0, (struct sockaddr *)&b.addr, sizeof(b.addr));
    memcpy(t, d, (size_t)n);
    wgf_put_le32(t + 4, wgf_get_le32(d + 4) ^ 0x80000000u); /* unknown index */
    sendto(sniffer, t, (size_t)n, 0, (struct sockaddr *)&b.addr, sizeof(b.addr));
    sendto(sniffer, t, 20, 0, (struct sockaddr *)&b.addr, sizeof(b.addr)); /* short data */
    t[0] = 9;
    sendto(sniffer, t, 64, 0, (struct sockaddr *)&b.addr, sizeof(b.addr)); /* unknown type */
    memset(t, 0, 148);
    t[0] = 1;
    sendto(sniffer, t, 147, 0, (struct sockaddr *)&b.addr, sizeof(b.addr)); /* bad initiation */
    sendto(sniffer, t, 148, 0, (struct sockaddr *)&b.addr, sizeof(b.addr)); /* no mac1 */
    dp_add_mac1(t, 148);
    sendto(sniffer, t, 148, 0, (struct sockaddr *)&b.addr, sizeof(b.addr)); /* initiation */
    dp_pump(&a, &b, 2);

    struct wgf_dp_stats st = stats_of(&b);
    CHECK(st.drops[WGF_DROP_REPLAY] == 1);
    CHECK(st.drops[WGF_DROP_AUTH] == 1);
    CHECK(st.drops[WGF_DROP_UNKNOWN_INDEX] == 1);
    CHECK(st.drops[WGF_DROP_BAD_SIZE] == 2);
    CHECK(st.drops[WGF_DROP_BAD_TYPE] == 1);
    CHECK(st.drops[WGF_DROP_BAD_MAC1] == 1);
    CHECK(st.rx_packets == 1 && st.handshake_messages_up == 1);
    CHECK(dp_tun_read(&b, got, sizeof(got)) == -1);
    CHECK(dp_signalled(&b));
    wgf_dp_events_ack(b.dp);
    struct wgf_dp_handshake_msg msgs[4];
    CHECK(wgf_dp_take_handshakes(b.dp, msgs, 4) == 1);
    CHECK(msgs[0].len == 148 && msgs[0].data[0] == 1);
    CHECK(msgs[0].source.sa.sa_family == AF_INET && msgs[0].source.in4.sin_port == sn.sin_port);
    close(sniffer);
    dp_pair_close(&a, &b);
}

WGF_TEST(dataplane_handshake_flood_cannot_crowd_out_peer_events)
{
    struct dp_side a, b;
    pair_open(&a, &b);
    uint8_t init[WGF_MSG_INITIATION_LEN] = {WGF_MSG_INITIATION};
    union wgf_dp_endpoint src = {.in4 = a.addr};
    const struct wgf_dp_source local = {0};
    size_t queued = 0;
    for (int i = 0; i < WGF_DP_HANDSHAKE_QUEUE + 50; i++)
        queued += wgf_dp_queue_handshake(b.dp, init, sizeof(init), &src, &local) == 0;
    CHECK(queued == WGF_DP_HANDSHAKE_QUEUE);
    CHECK(stats_of(&b).drops[WGF_DROP_CONTROL_QUEUE_FULL] == 50);
    /* The keypair's confirmation still reaches Python. */
    CHECK(dp_handshake(&a, PEER_ID, &b, PEER_ID, T0, 0xA6) == 0);
    uint8_t pkt[100], got[200];
    dp_make_ip4(pkt, "10.0.0.1", "10.0.0.2", 100, 3);
    CHECK(write(a.tun[1], pkt, 100) == 100);
    dp_pump(&a, &b, 2);
    CHECK(dp_tun_read(&b, got, sizeof(got)) == 100);
    struct wgf_dp_peer_event ev[2];
    CHECK(dp_events(&b, ev, 2) == 1 && (ev[0].events & WGF_DP_EV_KEYPAIR_CONFIRMED));
    struct wgf_dp_handshake_msg *msgs = calloc(WGF_DP_HANDSHAKE_QUEUE, sizeof(*msgs));
    CHECK(msgs != NULL);
    if (msgs != NULL)
        CHECK(wgf_dp_take_handshakes(b.dp, msgs, WGF_DP_HANDSHAKE_QUEUE) == queued);
    free(msgs);
    dp_pair_close(&a, &b);
}

WGF_TEST(dataplane_source_must_be_allowed_and_destination_routed)
{
    struct dp_side a, b;
    pair_open(&a, &b);
    CHECK(dp_handshake(&a, PEER_ID, &b, PEER_ID, T0, 0xA7) == 0);
    uint8_t pkt[100], got[200];
    dp_make_ip4(pkt, "10.9.9.9", "10.0.0.2", 100, 0); /* A may send it, B must not accept it */
    CHECK(write(a.tun[1], pkt, 100) == 100);
    dp_make_ip4(pkt, "10.0.0.1", "192.168.1.1", 100, 0); /* no route at A */
    CHECK(write(a.tun[1], pkt, 100) == 100);
    uint8_t junk[10] = {0x60};
    CHECK(write(a.tun[1], junk, sizeof(junk)) == (ssize_t)sizeof(junk)); /* too short */
    dp_pump(&a, &b, 2);
    CHECK(dp_tun_read(&b, got, sizeof(got)) == -1);
    CHECK(stats_of(&b).drops[WGF_DROP_SOURCE_NOT_ALLOWED] == 1);
    CHECK(stats_of(&a).drops[WGF_DROP_NO_PEER] == 2);
    /* A packet whose source B refused is not data for B's timers. */
    CHECK(info_of(&b).activity.rx_data_last_ns == 0 && info_of(&b).activity.rx_any_ns == T0);
    dp_pair_close(&a, &b);
}

WGF_TEST(dataplane_keepalive_is_authenticated_not_written)
{
    struct dp_side a, b;
    pair_open(&a, &b);
    CHECK(dp_handshake(&a, PEER_ID, &b, PEER_ID, T0, 0xA8) == 0);
    CHECK(wgf_dp_peer_send_keepalive(a.dp, PEER_ID) == 0);
    dp_pump(&a, &b, 2);
    uint8_t got[100];
    CHECK(dp_tun_read(&b, got, sizeof(got)) == -1);
    struct wgf_dp_stats st = stats_of(&b);
    CHECK(st.keepalives_received == 1 && st.rx_packets == 1);
    CHECK(stats_of(&a).keepalives_sent == 1);
    struct wgf_dp_peer_info info = info_of(&b);
    CHECK(info.activity.rx_any_ns == T0 && info.activity.rx_data_last_ns == 0);
    CHECK(info.has_current); /* a keepalive confirms the keypair as well */
    CHECK(info.rx_bytes == 32);
    info = info_of(&a); /* a keepalive is no data: "data sent" does not start */
    CHECK(info.activity.tx_any_ns == T0 && info.activity.tx_data_first_ns == 0);
    dp_pair_close(&a, &b);
}

WGF_TEST(dataplane_batches_under_load)
{
    struct dp_side a, b;
    pair_open(&a, &b);
    CHECK(dp_handshake(&a, PEER_ID, &b, PEER_ID, T0, 0xA9) == 0);
    uint8_t pkt[1500], got[2000];
    const int rounds = 8, per_round = 100;
    int received = 0;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < per_round; i++) {
            dp_make_ip4(pkt, "10.0.0.1", "10.0.0.2", 1400, (uint8_t)i);
            CHECK(write(a.tun[1], pkt, 1400) == 1400);
        }
        dp_pump(&a, &b, 2);
        while (dp_tun_read(&b, got, sizeof(got)) == 1400)
            received++;
    }
    struct wgf_dp_stats sa = stats_of(&a), sb = stats_of(&b);
    CHECK(received == rounds * per_round);
    CHECK(sa.sendmmsg_packets == (uint64_t)rounds * per_round);
    CHECK(sa.sendmmsg_calls <= (uint64_t)rounds * 2);  /* ~one call per batch */
    CHECK(sa.sendmmsg_max >= 64);
    CHECK(sb.recvmmsg_packets / sb.recvmmsg_calls > 1);
    /* Activity coalesces: one entry each, until taken; only B's confirmation signalled. */
    CHECK(sa.events_up == 1 && sb.events_up == 2);
    CHECK(sa.event_signals == 0 && sb.event_signals == 1);
    fprintf(stderr, "  load: %llu packets in %llu sendmmsg calls (max %llu), %llu in %llu "
            "recvmmsg calls, events up %llu\n",
            (unsigned long long)sa.sendmmsg_packets, (unsigned long long)sa.sendmmsg_calls,
            (unsigned long long)sa.sendmmsg_max, (unsigned long long)sb.recvmmsg_packets,
            (unsigned long long)sb.recvmmsg_calls, (unsigned long long)sb.events_up);
    dp_pair_close(&a, &b);
}

WGF_TEST(dataplane_mtu_changes_keep_sessions_and_staged_packets)
{
    struct dp_side a, b;
    pair_open(&a, &b);
    uint8_t pkt[1500], got[2000];
    /* Staged before any keypair: 1000 and 1400 bytes. */
    dp_make_ip4(pkt, "10.0.0.1", "10.0.0.2", 1000, 1);
    CHECK(write(a.tun[1], pkt, 1000) == 1000);
    dp_make_ip4(pkt, "10.0.0.1", "10.0.0.2", 1400, 2);
    CHECK(write(a.tun[1], pkt, 1400) == 1400);
    dp_pump(&a, &b, 1);
    CHECK(info_of(&a).staged == 2);
    CHECK(wgf_dp_set_mtu(a.dp, 100) == -EINVAL);
    CHECK(wgf_dp_set_mtu(a.dp, 1200) == 0); /* the 1400-byte packet no longer fits */
    CHECK(wgf_dp_get_mtu(a.dp) == 1200);
    CHECK(info_of(&a).staged == 1 && stats_of(&a).drops[WGF_DROP_OVERSIZE] == 1);
    CHECK(dp_handshake(&a, PEER_ID, &b, PEER_ID, T0, 0xAA) == 0);
    dp_pump(&a, &b, 2);
    CHECK(dp_tun_read(&b, got, sizeof(got)) == 1000);
    /* Bigger again: the session stays and larger packets cross. */
    CHECK(wgf_dp_set_mtu(a.dp, 1420) == 0);
    dp_make_ip4(pkt, "10.0.0.1", "10.0.0.2", 1420, 3);
    CHECK(write(a.tun[1], pkt, 1420) == 1420);
    dp_pump(&a, &b, 2);
    CHECK(dp_tun_read(&b, got, sizeof(got)) == 1420);
    CHECK_MEM(got, pkt, 1420);
    CHECK(info_of(&a).current_send_counter == 2);
    pthread_mutex_lock(&a.dp->lock);
    CHECK(a.dp->pool_free == WGF_DP_STAGED_POOL);
    pthread_mutex_unlock(&a.dp->lock);
    dp_pair_close(&a, &b);
}

WGF_TEST(dataplane_sockets_replaced_keep_sessions)
{
    struct dp_side a, b;
    pair_open(&a, &b);
    CHECK(dp_handshake(&b, PEER_ID, &a, PEER_ID, T0, 0xAB) == 0); /* B initiated: it may send */
    uint8_t pkt[300], got[400];
    dp_make_ip4(pkt, "10.0.0.2", "10.0.0.1", 300, 4);
    /* B loses its socket (down): nothing goes out; a new one (a new port): it flows again. */
    CHECK(wgf_dp_set_sockets(b.dp, -1, -1) == 0);
    CHECK(write(b.tun[1], pkt, 300) == 300);
    dp_pump(&a, &b, 2);
    CHECK(dp_tun_read(&a, got, sizeof(got)) == -1);
    CHECK(stats_of(&b).drops[WGF_DROP_NO_SOCKET] == 1);
    struct sockaddr_in moved;
    int fresh = dp_udp_socket(&moved);
    CHECK(wgf_dp_set_sockets(b.dp, fresh, -1) == 0);
    CHECK(write(b.tun[1], pkt, 300) == 300);
    dp_pump(&a, &b, 2);
    CHECK(dp_tun_read(&a, got, sizeof(got)) == 300);
    CHECK(info_of(&b).current_send_counter == 1); /* the same keypair, not a new session */
    union wgf_dp_endpoint ep; /* A roamed to B's new port */
    CHECK(wgf_dp_peer_get_endpoint(a.dp, PEER_ID, &ep) == 0 && ep.in4.sin_port == moved.sin_port);
    close(b.udp);
    b.udp = fresh;
    dp_pair_close(&a, &b);
}

static void *run_thread(void *arg)
{
    struct wgf_dp *dp = arg;
    return (void *)(intptr_t)wgf_dp_run(dp);
}

WGF_TEST(dataplane_run_stops_and_reports_tun_failure)
{
    struct dp_side a, b;
    pair_open(&a, &b);
    pthread_t t;
    void *ret;
    CHECK(pthread_create(&t, NULL, run_thread, a.dp) == 0);
    /* While it runs, a second driver is refused: the send side's state has one owner. */
    int busy = 0;
    for (int i = 0; i < 200 && !busy; i++) {
        busy = wgf_dp_run_once(a.dp, 0) == -EBUSY;
        usleep(1000);
    }
    CHECK(busy);
    wgf_dp_stop(a.dp);
    pthread_join(t, &ret);
    CHECK((intptr_t)ret == 0);

    /* The TUN going away (here: the other end closed) ends the loop with an error. */
    close(b.tun[1]);
    b.tun[1] = -1;
    CHECK(pthread_create(&t, NULL, run_thread, b.dp) == 0);
    pthread_join(t, &ret);
    CHECK((intptr_t)ret < 0);
    dp_pair_close(&a, &b);
}

WGF_TEST(dataplane_rejects_bad_arguments)
{
    struct wgf_dp *dp;
    CHECK(wgf_dp_new(&dp, -1, 3, -1, MTU) == -EINVAL);
    CHECK(wgf_dp_new(&dp, 3, 3, -1, 100) == -EINVAL);
    struct dp_side a, b;
    pair_open(&a, &b);
    CHECK(wgf_dp_peer_add(a.dp, 0) == -EINVAL);
    CHECK(wgf_dp_peer_add(a.dp, PEER_ID) == -EEXIST);
    union wgf_dp_endpoint ep;
    memset(&ep, 0, sizeof(ep));
    ep.sa.sa_family = AF_UNIX;
    CHECK(wgf_dp_peer_set_endpoint(a.dp, PEER_ID, &ep) == -EAFNOSUPPORT);
    CHECK(wgf_dp_peer_send_keepalive(a.dp, 99) == -ENOENT);
    uint32_t index;
    CHECK(wgf_dp_peer_begin_handshake(a.dp, 99, &index) == -ENOENT);
    /* Many peers: the hash grows and removal keeps every other peer findable. */
    for (uint32_t id = 100; id < 400; id++)
        CHECK(wgf_dp_peer_add(a.dp, id) == 0);
    for (uint32_t id = 100; id < 400; id += 2)
        CHECK(wgf_dp_peer_remove(a.dp, id) == 0);
    struct wgf_dp_peer_info info;
    int found = 0;
    for (uint32_t id = 100; id < 400; id++)
        found += wgf_dp_peer_get_info(a.dp, id, &info) == 0;
    CHECK(found == 150);
    dp_pair_close(&a, &b);
}

WGF_TEST(dataplane_without_sockets_is_a_device_that_is_down)
{
    int tun[2];
    CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, tun) == 0);
    struct wgf_dp *dp = NULL;
    CHECK(wgf_dp_new(&dp, tun[0], -1, -1, MTU) == 0);
    CHECK(wgf_dp_run_once(dp, 0) == 0);
    wgf_dp_free(dp);
    close(tun[0]);
    close(tun[1]);
}
