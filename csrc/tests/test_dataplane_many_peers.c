/* Many peers: the id -> peer table and the allowed-IPs table grow to 10,000 peers and stay
 * correct, and setting endpoints does not wake the loop (each wake-up walks every peer) unless
 * packets wait to be flushed. */
#define _GNU_SOURCE /* struct mmsghdr in dataplane_internal.h */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "allowedips.h"
#include "check.h"
#include "dataplane_internal.h"
#include "dp_pair.h"

#define MANY_PEERS 10000u

static bool wake_pending(struct wgf_dp *dp)
{
    struct pollfd pfd = { .fd = dp->wake_fd, .events = POLLIN };
    return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

static void wake_drain(struct wgf_dp *dp)
{
    uint64_t count;
    while (read(dp->wake_fd, &count, sizeof(count)) == (ssize_t)sizeof(count))
        ;
}

static union wgf_dp_endpoint endpoint_for(uint32_t id)
{
    union wgf_dp_endpoint ep;
    memset(&ep, 0, sizeof(ep));
    ep.in4.sin_family = AF_INET;
    ep.in4.sin_port = htons((uint16_t)(1024 + id % 60000));
    ep.in4.sin_addr.s_addr = htonl(UINT32_C(0xC6120000) | id); /* 198.18.x.y */
    return ep;
}

static void address_for(uint32_t id, uint8_t addr[4])
{
    addr[0] = 10;
    addr[1] = (uint8_t)(id >> 16);
    addr[2] = (uint8_t)(id >> 8);
    addr[3] = (uint8_t)id;
}

WGF_TEST(dataplane_ten_thousand_peers_endpoints_and_allowed_ips)
{
    int tun[2];
    CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, tun) == 0);
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    CHECK(bind(udp, (struct sockaddr *)&sin, sizeof(sin)) == 0);
    struct wgf_dp *dp = NULL;
    CHECK(wgf_dp_new(&dp, tun[0], udp, -1, 1420) == 0);
    if (!dp)
        return;
    struct wgf_allowedips *table = wgf_dp_allowedips(dp);
    wake_drain(dp);

    for (uint32_t id = 1; id <= MANY_PEERS; id++) {
        union wgf_dp_endpoint ep = endpoint_for(id);
        uint8_t addr[4];
        address_for(id, addr);
        CHECK(wgf_dp_peer_add(dp, id) == 0);
        CHECK(wgf_dp_peer_set_endpoint(dp, id, &ep) == 0);
        CHECK(wgf_allowedips_insert(table, 4, addr, 32, id) == 0);
    }
    CHECK(dp->peer_count == MANY_PEERS);
    CHECK(dp->peer_cap >= 2 * MANY_PEERS); /* load stays at most 1/2 */
    CHECK(!wake_pending(dp));              /* nothing was staged: no wake-ups */
    CHECK(wgf_dp_peer_add(dp, 77) == -EEXIST);

    size_t wrong = 0;
    for (uint32_t id = 1; id <= MANY_PEERS; id++) {
        union wgf_dp_endpoint got, want = endpoint_for(id);
        uint8_t addr[4];
        address_for(id, addr);
        wrong += wgf_dp_peer_get_endpoint(dp, id, &got) != 0 ||
                 memcmp(&got.in4, &want.in4, sizeof(want.in4)) != 0;
        wrong += wgf_allowedips_lookup(table, 4, addr) != id;
    }
    CHECK(wrong == 0);

    /* Remove every other peer (backward-shift deletion at scale): the rest are still found,
     * the removed ones and their allowed IPs are gone. */
    for (uint32_t id = 2; id <= MANY_PEERS; id += 2)
        CHECK(wgf_dp_peer_remove(dp, id) == 0);
    CHECK(dp->peer_count == MANY_PEERS / 2);
    wrong = 0;
    for (uint32_t id = 1; id <= MANY_PEERS; id++) {
        bool kept = id % 2 == 1;
        uint8_t addr[4];
        address_for(id, addr);
        wrong += (wgf_dp_peer_find(dp, id) != NULL) != kept;
        wrong += wgf_allowedips_lookup(table, 4, addr) != (kept ? id : WGF_NO_PEER);
    }
    CHECK(wrong == 0);

    /* A peer with a staged packet: a new endpoint means it can be flushed, so the loop wakes. */
    pthread_mutex_lock(&dp->lock);
    struct wgf_dp_peer *p = wgf_dp_peer_find(dp, 1);
    CHECK(p != NULL && dp->pool_free > 0);
    if (p != NULL && dp->pool_free > 0) {
        uint8_t *buf = dp->pool[--dp->pool_free];
        wgf_dp_stage(dp, p, &buf, 64);
        dp->pool[dp->pool_free++] = buf;
    }
    pthread_mutex_unlock(&dp->lock);
    union wgf_dp_endpoint ep = endpoint_for(3);
    CHECK(wgf_dp_peer_set_endpoint(dp, 3, &ep) == 0); /* nothing staged there */
    CHECK(!wake_pending(dp));
    CHECK(wgf_dp_peer_set_endpoint(dp, 1, &ep) == 0);
    CHECK(wake_pending(dp));
    CHECK(p != NULL && p->flush_pending);

    wgf_dp_free(dp);
    close(tun[0]);
    close(tun[1]);
    close(udp);
}

/* Events at scale: traffic to thousands of peers, some with a keypair and some without, while a
 * flood fills the handshake queue. Every peer's events arrive, once each, carrying the state the
 * data plane holds; the flood's overflow is counted, not lost into the peers' events. */
WGF_TEST(dataplane_ten_thousand_peers_lose_no_event_under_a_handshake_flood)
{
    struct dp_side s;
    dp_side_open(&s, MANY_PEERS + 1, "10.255.255.255", 1420); /* one extra peer, never used */
    dp_fake_clock(&s, 1000 * WGF_NSEC_PER_SEC);
    struct sockaddr_in sink_addr;
    int sink = dp_udp_socket(&sink_addr); /* where every peer's endpoint points; never read */
    struct wgf_allowedips *table = wgf_dp_allowedips(s.dp);
    enum { TRAFFIC = 4000 }; /* peers 1..TRAFFIC get a packet; odd ones have a keypair */
    for (uint32_t id = 1; id <= MANY_PEERS; id++) {
        uint8_t addr[4];
        address_for(id, addr);
        CHECK(wgf_dp_peer_add(s.dp, id) == 0);
        CHECK(wgf_allowedips_insert(table, 4, addr, 32, id) == 0);
        dp_point_at(&s, id, &sink_addr);
        if (id <= TRAFFIC && id % 2 == 1) {
            uint32_t index;
            CHECK(wgf_dp_peer_begin_handshake(s.dp, id, &index) == 0);
            struct wgf_dp_keypair kp = {.local_index = index, .remote_index = id,
                                        .is_initiator = 1, .created_ns = s.now};
            CHECK(wgf_dp_peer_install_keypair(s.dp, id, &kp) == 0);
        }
    }
    uint8_t init[WGF_MSG_INITIATION_LEN] = {WGF_MSG_INITIATION};
    union wgf_dp_endpoint src = {.in4 = sink_addr};
    const int flood = 3 * WGF_DP_HANDSHAKE_QUEUE;
    int written = 0;
    for (int i = 0; i < flood || written < TRAFFIC; i++) {
        if (i < flood)
            wgf_dp_queue_handshake(s.dp, init, sizeof(init), &src, &(struct wgf_dp_source){0});
        if (written < TRAFFIC && i % 2 == 0) { /* traffic and flood interleaved */
            uint8_t pkt[60];
            char dst[32];
            uint8_t a[4];
            written++;
            address_for((uint32_t)written, a);
            snprintf(dst, sizeof(dst), "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
            dp_make_ip4(pkt, "10.255.255.254", dst, sizeof(pkt), (uint8_t)written);
            CHECK(write(s.tun[1], pkt, sizeof(pkt)) == (ssize_t)sizeof(pkt));
            if (written % 64 == 0)
                CHECK(wgf_dp_run_once(s.dp, 0) == 0);
        }
    }
    for (int i = 0; i < 2 * TRAFFIC / WGF_DP_BATCH + 4; i++)
        CHECK(wgf_dp_run_once(s.dp, 0) == 0);
    s.now += WGF_ACTIVITY_REPORT_NS;
    wgf_dp_run_timers(s.dp);
    CHECK(dp_signalled(&s));

    struct wgf_dp_peer_event *ev = calloc(MANY_PEERS, sizeof(*ev));
    uint8_t *seen = calloc(MANY_PEERS + 2, 1);
    CHECK(ev != NULL && seen != NULL);
    if (ev == NULL || seen == NULL) {
        free(ev);
        free(seen);
        return;
    }
    size_t n = 0, got;
    wgf_dp_events_ack(s.dp);
    while ((got = wgf_dp_take_peer_events(s.dp, ev + n, 100)) > 0) /* in small takes */
        n += got;
    CHECK(n == TRAFFIC);
    size_t wrong = 0, staged = 0;
    uint64_t tx_packets = 0;
    for (size_t k = 0; k < n; k++) {
        uint32_t id = ev[k].peer;
        struct wgf_dp_peer_info info;
        if (id == 0 || id > TRAFFIC || seen[id]++ || wgf_dp_peer_get_info(s.dp, id, &info)) {
            wrong++;
            continue;
        }
        if (id % 2 == 1) { /* sealed and sent: activity, the state the data plane holds */
            wrong += ev[k].events != WGF_DP_EV_ACTIVITY;
            wrong += memcmp(&ev[k].activity, &info.activity, sizeof(info.activity)) != 0;
            wrong += info.tx_packets != 1 || ev[k].activity.tx_data_first_ns != s.now -
                     WGF_ACTIVITY_REPORT_NS;
            tx_packets += info.tx_packets;
        } else { /* no keypair: staged (while the pool lasts), and a handshake wanted */
            wrong += ev[k].events != WGF_DP_EV_HANDSHAKE_WANTED || info.staged > 1;
            staged += info.staged;
        }
    }
    CHECK(wrong == 0);
    CHECK(staged == WGF_DP_STAGED_POOL); /* 2000 wanted a buffer: the pool's worth have one */
    struct wgf_dp_stats st;
    wgf_dp_get_stats(s.dp, &st);
    CHECK(st.tx_packets == tx_packets && tx_packets == TRAFFIC / 2);
    CHECK(st.handshake_messages_up == WGF_DP_HANDSHAKE_QUEUE);
    CHECK(st.drops[WGF_DROP_CONTROL_QUEUE_FULL] == (uint64_t)(flood - WGF_DP_HANDSHAKE_QUEUE));
    CHECK(wgf_dp_take_peer_events(s.dp, ev, 1) == 0); /* nothing twice */
    free(ev);
    free(seen);
    close(sink);
    dp_side_close(&s);
}
