/* The DoS defence in the data plane (dataplane_handshake.c): what reaches the control queue,
 * what is dropped and under which counter, and the cookie replies that go back, through a real
 * UDP socket and the data plane's own receive path. */
#define _GNU_SOURCE
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../aead.h"
#include "../blake2s.h"
#include "../cookie.h"
#include "../dataplane_internal.h"
#include "../ratelimiter.h"
#include "check.h"
#include "dp_pair.h"

#define PEER 7
#define T0 (UINT64_C(1000) * WGF_NSEC_PER_SEC)
#define MS UINT64_C(1000000)

struct bench {
    struct dp_side side;
    int attacker;
    struct sockaddr_in attacker_addr;
};

static void open_bench(struct bench *b)
{
    dp_side_open(&b->side, PEER, "10.0.0.1", 1420);
    dp_fake_clock(&b->side, T0);
    b->attacker = dp_udp_socket(&b->attacker_addr);
}

static void close_bench(struct bench *b)
{
    close(b->attacker);
    dp_side_close(&b->side);
}

static void send_to_side(struct bench *b, const uint8_t *msg, size_t len)
{
    CHECK(sendto(b->attacker, msg, len, 0, (struct sockaddr *)&b->side.addr,
                 sizeof(b->side.addr)) == (ssize_t)len);
}

static void pump(struct bench *b)
{
    for (int i = 0; i < 4; i++)
        CHECK(wgf_dp_run_once(b->side.dp, 0) == 0);
}

static struct wgf_dp_stats stats(struct bench *b)
{
    struct wgf_dp_stats s;
    wgf_dp_get_stats(b->side.dp, &s);
    return s;
}

static size_t take_all(struct bench *b)
{
    struct wgf_dp_handshake_msg *m = calloc(WGF_DP_HANDSHAKE_QUEUE, sizeof(*m));
    size_t n = m != NULL ? wgf_dp_take_handshakes(b->side.dp, m, WGF_DP_HANDSHAKE_QUEUE) : 0;
    free(m);
    return n;
}

static void initiation(uint8_t msg[WGF_MSG_INITIATION_LEN], uint32_t sender)
{
    memset(msg, 0, WGF_MSG_INITIATION_LEN);
    msg[0] = WGF_MSG_INITIATION;
    memcpy(msg + 4, &sender, 4);
    for (int i = 8; i < 116; i++)
        msg[i] = (uint8_t)i;
    dp_add_mac1(msg, WGF_MSG_INITIATION_LEN);
}

/* Fills the control queue up to the under-load mark (as a flood would). */
static void load_up(struct bench *b)
{
    uint8_t msg[WGF_MSG_INITIATION_LEN];
    union wgf_dp_endpoint src = {.in4 = b->attacker_addr};
    struct wgf_dp_source local = {.family = AF_UNSPEC};
    initiation(msg, 1);
    for (int i = 0; i < WGF_DP_UNDER_LOAD_QUEUE; i++)
        CHECK(wgf_dp_queue_handshake(b->side.dp, msg, sizeof(msg), &src, &local) == 0);
}

WGF_TEST(admission_without_identity_drops_every_handshake)
{
    struct bench b;
    open_bench(&b);
    wgf_dp_set_identity(b.side.dp, NULL);
    uint8_t msg[WGF_MSG_INITIATION_LEN];
    initiation(msg, 1);
    send_to_side(&b, msg, sizeof(msg));
    uint8_t reply[WGF_MSG_COOKIE_REPLY_LEN] = {WGF_MSG_COOKIE_REPLY};
    send_to_side(&b, reply, sizeof(reply));
    pump(&b);
    struct wgf_dp_stats s = stats(&b);
    CHECK(s.drops[WGF_DROP_NO_IDENTITY] == 2);
    CHECK(s.handshake_messages_up == 0);
    wgf_dp_set_identity(b.side.dp, DP_TEST_PUBLIC_KEY);
    send_to_side(&b, msg, sizeof(msg));
    pump(&b);
    CHECK(stats(&b).handshake_messages_up == 1);
    close_bench(&b);
}

WGF_TEST(admission_responses_and_cookie_replies_need_our_index)
{
    struct bench b;
    open_bench(&b);
    uint32_t index;
    CHECK(wgf_dp_peer_begin_handshake(b.side.dp, PEER, &index) == 0);
    uint8_t resp[WGF_MSG_RESPONSE_LEN] = {WGF_MSG_RESPONSE};
    uint8_t cookie[WGF_MSG_COOKIE_REPLY_LEN] = {WGF_MSG_COOKIE_REPLY};
    uint32_t wrong = index ^ 0x5a5a5a5a;
    memcpy(resp + 8, &wrong, 4); /* receiver index at 8 in a response */
    memcpy(cookie + 4, &wrong, 4);
    dp_add_mac1(resp, sizeof(resp));
    send_to_side(&b, resp, sizeof(resp));
    send_to_side(&b, cookie, sizeof(cookie));
    pump(&b);
    CHECK(stats(&b).drops[WGF_DROP_UNKNOWN_HANDSHAKE_INDEX] == 2);
    memcpy(resp + 8, &index, 4);
    dp_add_mac1(resp, sizeof(resp));
    memcpy(cookie + 4, &index, 4);
    send_to_side(&b, resp, sizeof(resp));
    send_to_side(&b, cookie, sizeof(cookie));
    resp[20] ^= 1; /* our index, but mac1 no longer matches */
    send_to_side(&b, resp, sizeof(resp));
    pump(&b);
    struct wgf_dp_stats s = stats(&b);
    CHECK(s.handshake_messages_up == 2);
    CHECK(s.drops[WGF_DROP_BAD_MAC1] == 1);
    CHECK(take_all(&b) == 2);
    /* Once the handshake made a keypair, a response naming it is stale; a cookie reply is not
     * (it may answer our response, whose index became the keypair's). */
    struct wgf_dp_keypair kp = {.local_index = index, .remote_index = 99, .is_initiator = 0,
                                .created_ns = T0};
    CHECK(wgf_dp_peer_install_keypair(b.side.dp, PEER, &kp) == 0);
    resp[20] ^= 1;
    send_to_side(&b, resp, sizeof(resp));
    send_to_side(&b, cookie, sizeof(cookie));
    pump(&b);
    s = stats(&b);
    CHECK(s.drops[WGF_DROP_UNKNOWN_HANDSHAKE_INDEX] == 3);
    CHECK(s.handshake_messages_up == 3);
    close_bench(&b);
}

/* The cookie key an initiator uses for replies from the test side. */
static void test_cookie_key(uint8_t key[32])
{
    uint8_t in[40];
    memcpy(in, WGF_LABEL_COOKIE, 8);
    memcpy(in + 8, DP_TEST_PUBLIC_KEY, 32);
    wgf_blake2s(key, 32, in, sizeof(in), NULL, 0);
}

static ssize_t receive_reply(int fd, uint8_t *buf, size_t cap)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 1000) != 1)
        return -1;
    return recv(fd, buf, cap, MSG_DONTWAIT);
}

WGF_TEST(admission_under_load_answers_with_a_cookie_then_rate_limits)
{
    struct bench b;
    open_bench(&b);
    CHECK(!wgf_dp_under_load(b.side.dp));
    load_up(&b);
    CHECK(wgf_dp_under_load(b.side.dp));
    uint8_t msg[WGF_MSG_INITIATION_LEN], reply[128], cookie[16], key[32];
    initiation(msg, 0x01020304);
    send_to_side(&b, msg, sizeof(msg));
    pump(&b);
    struct wgf_dp_stats s = stats(&b);
    CHECK(s.drops[WGF_DROP_COOKIE_REQUIRED] == 1 && s.cookie_replies_sent == 1);
    CHECK(receive_reply(b.attacker, reply, sizeof(reply)) == WGF_MSG_COOKIE_REPLY_LEN);
    CHECK(reply[0] == WGF_MSG_COOKIE_REPLY && memcmp(reply + 4, msg + 4, 4) == 0);
    test_cookie_key(key);
    CHECK(wgf_xaead_open(cookie, reply + 32, 32, msg + 116, 16, reply + 8, key) == 0);
    /* With mac2 from that cookie: admitted, up to the source's burst. */
    wgf_mac(msg + 132, cookie, 16, msg, 132);
    for (int i = 0; i < 2 * WGF_RATELIMIT_PACKETS_BURSTABLE; i++)
        send_to_side(&b, msg, sizeof(msg));
    pump(&b);
    s = stats(&b);
    CHECK(s.handshake_messages_up == WGF_DP_UNDER_LOAD_QUEUE + WGF_RATELIMIT_PACKETS_BURSTABLE);
    CHECK(s.drops[WGF_DROP_RATE_LIMITED] == WGF_RATELIMIT_PACKETS_BURSTABLE);
    /* The queue drained, but load lingers for UNDER_LOAD_AFTER; then mac2 is not looked at. */
    CHECK(take_all(&b) == WGF_DP_UNDER_LOAD_QUEUE + WGF_RATELIMIT_PACKETS_BURSTABLE);
    b.side.now += WGF_DP_UNDER_LOAD_AFTER_NS - MS;
    CHECK(wgf_dp_under_load(b.side.dp));
    b.side.now += MS;
    CHECK(!wgf_dp_under_load(b.side.dp));
    memset(msg + 132, 0, 16);
    for (int i = 0; i < 2 * WGF_RATELIMIT_PACKETS_BURSTABLE; i++)
        send_to_side(&b, msg, sizeof(msg));
    pump(&b);
    s = stats(&b);
    CHECK(s.handshake_messages_up == WGF_DP_UNDER_LOAD_QUEUE + 3 * WGF_RATELIMIT_PACKETS_BURSTABLE);
    CHECK(s.cookie_replies_sent == 1);
    close_bench(&b);
}

WGF_TEST(admission_accounts_for_every_datagram_of_a_flood)
{
    struct bench b;
    open_bench(&b);
    enum { FLOOD = 4000 };
    uint8_t good[WGF_MSG_INITIATION_LEN], bad[WGF_MSG_INITIATION_LEN];
    uint8_t garbage[WGF_MSG_COOKIE_REPLY_LEN] = {WGF_MSG_COOKIE_REPLY, 0, 0, 0, 9, 9, 9, 9};
    initiation(good, 5);
    memcpy(bad, good, sizeof(bad));
    bad[120] ^= 1;
    size_t sent = 0;
    for (int i = 0; i < FLOOD; i++) {
        if (i % 3 == 0)
            send_to_side(&b, good, sizeof(good));
        else if (i % 3 == 1)
            send_to_side(&b, bad, sizeof(bad));
        else
            send_to_side(&b, garbage, sizeof(garbage));
        sent++;
        if (i % 64 == 63)
            pump(&b);
    }
    pump(&b);
    struct wgf_dp_stats s = stats(&b);
    uint64_t counted = s.handshake_messages_up;
    for (int r = 0; r < WGF_DROP_COUNT; r++)
        counted += s.drops[r];
    CHECK(counted == sent);
    CHECK(s.drops[WGF_DROP_BAD_MAC1] == FLOOD / 3);
    CHECK(s.drops[WGF_DROP_UNKNOWN_HANDSHAKE_INDEX] == FLOOD / 3);
    /* The good ones filled the queue to the mark; the rest were asked for cookies. */
    CHECK(s.handshake_messages_up == WGF_DP_UNDER_LOAD_QUEUE);
    CHECK(s.drops[WGF_DROP_COOKIE_REQUIRED] == FLOOD / 3 + 1 - WGF_DP_UNDER_LOAD_QUEUE);
    CHECK(s.drops[WGF_DROP_CONTROL_QUEUE_FULL] == 0);
    close_bench(&b);
}
