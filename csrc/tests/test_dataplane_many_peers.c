/* Many peers: the id -> peer table and the allowed-IPs table grow to 10,000 peers and stay
 * correct, and setting endpoints does not wake the loop (each wake-up walks every peer) unless
 * packets wait to be flushed. */
#define _GNU_SOURCE /* struct mmsghdr in dataplane_internal.h */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "allowedips.h"
#include "check.h"
#include "dataplane_internal.h"

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
