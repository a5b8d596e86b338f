/* Two data planes sealing to each other over UDP on 127.0.0.1, each with a SOCK_SEQPACKET
 * socketpair standing in for its TUN device. The tests drive both loops from one thread with
 * wgf_dp_run_once(.., 0), so every step is deterministic. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../dataplane.h"
#include "../dataplane_internal.h"
#include "check.h"

#define PEER_ID 7
#define MTU 1420

struct side {
    struct wgf_dp *dp;
    int tun[2]; /* [0] the data plane's, [1] the test's */
    int udp;
    struct sockaddr_in addr;
};

static int udp_socket(struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int big = 4 << 20;
    /* Loopback bursts of a whole batch must not overflow the default buffers. */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)addr, sizeof(*addr));
    socklen_t len = sizeof(*addr);
    getsockname(fd, (struct sockaddr *)addr, &len);
    return fd;
}

static void side_open(struct side *s, const char *own_ip, const char *peer_ip)
{
    CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, s->tun) == 0);
    int big = 4 << 20;
    for (int i = 0; i < 2; i++) {
        if (setsockopt(s->tun[i], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big)) != 0)
            setsockopt(s->tun[i], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    }
    s->udp = udp_socket(&s->addr);
    CHECK(wgf_dp_new(&s->dp, s->tun[0], s->udp, -1, MTU) == 0);
    CHECK(wgf_dp_peer_add(s->dp, PEER_ID) == 0);
    uint8_t a[4];
    inet_pton(AF_INET, peer_ip, a);
    CHECK(wgf_allowedips_insert(wgf_dp_allowedips(s->dp), WGF_IP4, a, 32, PEER_ID) == 0);
    (void)own_ip;
}

static void side_close(struct side *s)
{
    wgf_dp_free(s->dp);
    close(s->tun[0]);
    close(s->tun[1]);
    close(s->udp);
}

static void point_at(struct side *s, const struct sockaddr_in *to)
{
    union wgf_dp_endpoint ep;
    memset(&ep, 0, sizeof(ep));
    ep.in4 = *to;
    CHECK(wgf_dp_peer_set_endpoint(s->dp, PEER_ID, &ep) == 0);
}

/* A: 10.0.0.1, B: 10.0.0.2, each routing the other's /32 to PEER_ID. */
static void pair_open(struct side *a, struct side *b)
{
    side_open(a, "10.0.0.1", "10.0.0.2");
    side_open(b, "10.0.0.2", "10.0.0.1");
    point_at(a, &b->addr);
    point_at(b, &a->addr);
}

static void make_keypair(struct wgf_dp_keypair *kp, int initiator, uint64_t created)
{
    memset(kp, 0, sizeof(*kp));
    kp->local_index = initiator ? 0x11111111 : 0x22222222;
    kp->remote_index = initiator ? 0x22222222 : 0x11111111;
    memset(initiator ? kp->send_key : kp->receive_key, 0xA1, WGF_AEAD_KEY_LEN);
    memset(initiator ? kp->receive_key : kp->send_key, 0xB2, WGF_AEAD_KEY_LEN);
    kp->is_initiator = initiator;
    kp->created_ns = created;
}

/* A handshake where A initiated: A's keypair is current at once, B's waits as next. */
static void handshake(struct side *a, struct side *b, uint64_t created)
{
    struct wgf_dp_keypair kp;
    make_keypair(&kp, 1, created);
    CHECK(wgf_dp_peer_install_keypair(a->dp, PEER_ID, &kp) == 0);
    make_keypair(&kp, 0, created);
    CHECK(wgf_dp_peer_install_keypair(b->dp, PEER_ID, &kp) == 0);
}

static size_t make_ip4(uint8_t *buf, const char *src, const char *dst, size_t len, uint8_t seed)
{
    memset(buf, 0, 20);
    buf[0] = 0x45;
    buf[2] = (uint8_t)(len >> 8);
    buf[3] = (uint8_t)len;
    buf[8] = 64;
    buf[9] = 17;
    inet_pton(AF_INET, src, buf + 12);
    inet_pton(AF_INET, dst, buf + 16);
    for (size_t i = 20; i < len; i++)
        buf[i] = (uint8_t)(seed + i * 7);
    return len;
}

static void pump(struct side *a, struct side *b, int rounds)
{
    for (int i = 0; i < rounds; i++) {
        CHECK(wgf_dp_run_once(a->dp, 0) == 0);
        CHECK(wgf_dp_run_once(b->dp, 0) == 0);
    }
}

/* Reads one packet the data plane wrote to its TUN, or returns -1 if none is waiting. */
static ssize_t tun_read(struct side *s, uint8_t *buf, size_t cap)
{
    struct pollfd pfd = {.fd = s->tun[1], .events = POLLIN};
    if (poll(&pfd, 1, 0) != 1)
        return -1;
    return read(s->tun[1], buf, cap);
}

static struct wgf_dp_stats stats_of(struct side *s)
{
    struct wgf_dp_stats st;
    wgf_dp_get_stats(s->dp, &st);
    return st;
}

static size_t poll_msgs(struct side *s, struct wgf_dp_msg *out, size_t max)
{
    return wgf_dp_poll(s->dp, out, max);
}

WGF_TEST(dataplane_packets_cross_and_match)
{
    struct side a, b;
    pair_open(&a, &b);
    handshake(&a, &b, wgf_dp_now_ns());
    uint8_t pkt[3][1500], got[2000];
    size_t lens[3] = {20, 333, MTU};
    for (int i = 0; i < 3; i++) {
        make_ip4(pkt[i], "10.0.0.1", "10.0.0.2", lens[i], (uint8_t)i);
        CHECK(write(a.tun[1], pkt[i], lens[i]) == (ssize_t)lens[i]);
    }
    pump(&a, &b, 3);
    for (int i = 0; i < 3; i++) {
        ssize_t n = tun_read(&b, got, sizeof(got));
        CHECK(n == (ssize_t)lens[i]);
        if (n == (ssize_t)lens[i])
            CHECK_MEM(got, pkt[i], lens[i]);
    }
    CHECK(tun_read(&b, got, sizeof(got)) == -1);

    /* B was the responder: the first packet confirmed its next keypair. */
    struct wgf_dp_msg msgs[4];
    CHECK(poll_msgs(&b, msgs, 4) == 1);
    CHECK(msgs[0].kind == WGF_DP_MSG_KEYPAIR_CONFIRMED && msgs[0].peer == PEER_ID);
    struct wgf_dp_peer_info info;
    CHECK(wgf_dp_peer_get_info(b.dp, PEER_ID, &info) == 0);
    CHECK(info.has_current && !info.has_next && !info.current_is_initiator);
    CHECK(info.rx_packets == 3 && info.last_data_received_ns != 0);
    CHECK(info.endpoint.in4.sin_port == a.addr.sin_port);

    /* And back: B now sends under the promoted keypair. */
    make_ip4(pkt[0], "10.0.0.2", "10.0.0.1", 100, 9);
    CHECK(write(b.tun[1], pkt[0], 100) == 100);
    pump(&a, &b, 3);
    CHECK(tun_read(&a, got, sizeof(got)) == 100);
    CHECK_MEM(got, pkt[0], 100);
    CHECK(wgf_dp_peer_get_info(a.dp, PEER_ID, &info) == 0);
    CHECK(info.tx_packets == 3 && info.rx_packets == 1 && info.current_send_counter == 3);
    /* Padded to 16, plus header and tag: 32 + 32, 32 + 336, 32 + 1420 (MTU caps padding). */
    CHECK(info.tx_bytes == 64 + 368 + 1452);
    CHECK(stats_of(&a).events_up == 0); /* data packets raise no events */
    CHECK(poll_msgs(&a, msgs, 4) == 0);
    side_close(&a);
    side_close(&b);
}

WGF_TEST(dataplane_staged_until_handshake)
{
    struct side a, b;
    pair_open(&a, &b);
    uint8_t pkt[5][200], got[2000];
    for (int i = 0; i < 5; i++) {
        make_ip4(pkt[i], "10.0.0.1", "10.0.0.2", 60 + i, (uint8_t)(i * 3));
        CHECK(write(a.tun[1], pkt[i], 60 + i) == 60 + i);
        pump(&a, &b, 1); /* several batches, still one event */
    }
    struct wgf_dp_msg msgs[8];
    CHECK(poll_msgs(&a, msgs, 8) == 1);
    CHECK(msgs[0].kind == WGF_DP_MSG_NEED_HANDSHAKE && msgs[0].peer == PEER_ID);
    struct pollfd pfd = {.fd = wgf_dp_event_fd(a.dp), .events = POLLIN};
    CHECK(poll(&pfd, 1, 0) == 0); /* drained queue: event fd no longer readable */
    struct wgf_dp_peer_info info;
    CHECK(wgf_dp_peer_get_info(a.dp, PEER_ID, &info) == 0 && info.staged == 5);
    CHECK(tun_read(&b, got, sizeof(got)) == -1);

    handshake(&a, &b, wgf_dp_now_ns());
    pump(&a, &b, 3);
    for (int i = 0; i < 5; i++) {
        CHECK(tun_read(&b, got, sizeof(got)) == 60 + i);
        CHECK_MEM(got, pkt[i], (size_t)(60 + i));
    }
    CHECK(stats_of(&a).staged_flushed == 5);
    CHECK(wgf_dp_peer_get_info(a.dp, PEER_ID, &info) == 0 && info.staged == 0);
    side_close(&a);
    side_close(&b);
}

WGF_TEST(dataplane_staged_queue_bounded_and_droppable)
{
    struct side a, b;
    pair_open(&a, &b);
    uint8_t pkt[100];
    make_ip4(pkt, "10.0.0.1", "10.0.0.2", 100, 1);
    for (int i = 0; i < WGF_DP_STAGED_MAX + 3; i++) {
        CHECK(write(a.tun[1], pkt, 100) == 100);
        if (i % 32 == 31)
            pump(&a, &b, 1);
    }
    pump(&a, &b, 2);
    struct wgf_dp_peer_info info;
    CHECK(wgf_dp_peer_get_info(a.dp, PEER_ID, &info) == 0 && info.staged == WGF_DP_STAGED_MAX);
    CHECK(stats_of(&a).drops[WGF_DROP_STAGED_OVERFLOW] == 3);
    CHECK(wgf_dp_peer_drop_staged(a.dp, PEER_ID) == WGF_DP_STAGED_MAX);
    CHECK(stats_of(&a).drops[WGF_DROP_STAGED_DISCARDED] == WGF_DP_STAGED_MAX);
    /* Dropping re-arms the request: the next packet asks for a handshake again. */
    struct wgf_dp_msg msgs[4];
    CHECK(poll_msgs(&a, msgs, 4) == 1);
    CHECK(write(a.tun[1], pkt, 100) == 100);
    pump(&a, &b, 1);
    CHECK(poll_msgs(&a, msgs, 4) == 1 && msgs[0].kind == WGF_DP_MSG_NEED_HANDSHAKE);
    side_close(&a);
    side_close(&b);
}

/* Catches one datagram A seals, by pointing A at a socket the test reads. */
static ssize_t capture(struct side *a, struct side *b, int sniffer, const struct sockaddr_in *at,
                       uint8_t *dgram, size_t cap, size_t ip_len)
{
    uint8_t pkt[1500];
    point_at(a, at);
    make_ip4(pkt, "10.0.0.1", "10.0.0.2", ip_len, 42);
    CHECK(write(a->tun[1], pkt, ip_len) == (ssize_t)ip_len);
    pump(a, b, 1);
    return recv(sniffer, dgram, cap, MSG_DONTWAIT);
}

WGF_TEST(dataplane_replayed_tampered_unknown_are_counted_drops)
{
    struct side a, b;
    pair_open(&a, &b);
    handshake(&a, &b, wgf_dp_now_ns());
    struct sockaddr_in sn;
    int sniffer = udp_socket(&sn);
    uint8_t d[2000], got[2000];
    ssize_t n = capture(&a, &b, sniffer, &sn, d, sizeof(d), 80);
    CHECK(n == 16 + 80 + 16);
    CHECK(d[0] == 4 && wgf_get_le32(d + 4) == 0x22222222 && wgf_get_le64(d + 8) == 0);

    /* Genuine, delivered from the sniffer: B accepts and roams to the sniffer's address. */
    sendto(sniffer, d, (size_t)n, 0, (struct sockaddr *)&b.addr, sizeof(b.addr));
    pump(&a, &b, 1);
    CHECK(tun_read(&b, got, sizeof(got)) == 80);
    union wgf_dp_endpoint ep;
    CHECK(wgf_dp_peer_get_endpoint(b.dp, PEER_ID, &ep) == 0 && ep.in4.sin_port == sn.sin_port);

    sendto(sniffer, d, (size_t)n, 0, (struct sockaddr *)&b.addr, sizeof(b.addr)); /* replay */
    uint8_t t[2000];
    memcpy(t, d, (size_t)n);
    wgf_put_le64(t + 8, 1);
    t[40] ^= 1; /* tampered */
    sendto(sniffer, t, (size_t)n, 0, (struct sockaddr *)&b.addr, sizeof(b.addr));
    memcpy(t, d, (size_t)n);
    wgf_put_le32(t + 4, 0x33333333); /* unknown index */
    sendto(sniffer, t, (size_t)n, 0, (struct sockaddr *)&b.addr, sizeof(b.addr));
    sendto(sniffer, t, 20, 0, (struct sockaddr *)&b.addr, sizeof(b.addr)); /* short data */
    t[0] = 9;
    sendto(sniffer, t, 64, 0, (struct sockaddr *)&b.addr, sizeof(b.addr)); /* unknown type */
    memset(t, 0, 148);
    t[0] = 1;
    sendto(sniffer, t, 147, 0, (struct sockaddr *)&b.addr, sizeof(b.addr)); /* bad initiation */
    sendto(sniffer, t, 148, 0, (struct sockaddr *)&b.addr, sizeof(b.addr)); /* initiation */
    pump(&a, &b, 2);

    struct wgf_dp_stats st = stats_of(&b);
    CHECK(st.drops[WGF_DROP_REPLAY] == 1);
    CHECK(st.drops[WGF_DROP_AUTH] == 1);
    CHECK(st.drops[WGF_DROP_UNKNOWN_INDEX] == 1);
    CHECK(st.drops[WGF_DROP_BAD_SIZE] == 2);
    CHECK(st.drops[WGF_DROP_BAD_TYPE] == 1);
    CHECK(st.rx_packets == 1 && st.handshake_messages_up == 1);
    CHECK(tun_read(&b, got, sizeof(got)) == -1);
    struct wgf_dp_msg msgs[4];
    size_t m = poll_msgs(&b, msgs, 4);
    CHECK(m == 2); /* keypair confirmed, then the initiation */
    CHECK(msgs[1].kind == WGF_DP_MSG_HANDSHAKE && msgs[1].len == 148 && msgs[1].data[0] == 1);
    CHECK(msgs[1].source.sa.sa_family == AF_INET && msgs[1].source.in4.sin_port == sn.sin_port);
    close(sniffer);
    side_close(&a);
    side_close(&b);
}

WGF_TEST(dataplane_source_must_be_allowed_and_destination_routed)
{
    struct side a, b;
    pair_open(&a, &b);
    handshake(&a, &b, wgf_dp_now_ns());
    uint8_t pkt[100], got[200];
    make_ip4(pkt, "10.9.9.9", "10.0.0.2", 100, 0); /* A may send it, B must not accept it */
    CHECK(write(a.tun[1], pkt, 100) == 100);
    make_ip4(pkt, "10.0.0.1", "192.168.1.1", 100, 0); /* no route at A */
    CHECK(write(a.tun[1], pkt, 100) == 100);
    uint8_t junk[10] = {0x60};
    CHECK(write(a.tun[1], junk, sizeof(junk)) == (ssize_t)sizeof(junk)); /* too short */
    pump(&a, &b, 2);
    CHECK(tun_read(&b, got, sizeof(got)) == -1);
    CHECK(stats_of(&b).drops[WGF_DROP_SOURCE_NOT_ALLOWED] == 1);
    CHECK(stats_of(&a).drops[WGF_DROP_NO_PEER] == 2);
    side_close(&a);
    side_close(&b);
}

WGF_TEST(dataplane_keepalive_is_authenticated_not_written)
{
    struct side a, b;
    pair_open(&a, &b);
    handshake(&a, &b, wgf_dp_now_ns());
    CHECK(wgf_dp_peer_send_keepalive(a.dp, PEER_ID) == 0);
    pump(&a, &b, 2);
    uint8_t got[100];
    CHECK(tun_read(&b, got, sizeof(got)) == -1);
    struct wgf_dp_stats st = stats_of(&b);
    CHECK(st.keepalives_received == 1 && st.rx_packets == 1);
    CHECK(stats_of(&a).keepalives_sent == 1);
    struct wgf_dp_peer_info info;
    CHECK(wgf_dp_peer_get_info(b.dp, PEER_ID, &info) == 0);
    CHECK(info.last_received_ns != 0 && info.last_data_received_ns == 0);
    CHECK(info.has_current); /* a keepalive confirms the keypair as well */
    CHECK(info.rx_bytes == 32);
    side_close(&a);
    side_close(&b);
}

WGF_TEST(dataplane_keypair_age_limits)
{
    struct side a, b;
    pair_open(&a, &b);
    uint64_t now = wgf_dp_now_ns();
    uint8_t pkt[100], got[200];
    make_ip4(pkt, "10.0.0.1", "10.0.0.2", 100, 0);

    /* Older than REKEY_AFTER_TIME: still sends, asks once for a new handshake. */
    handshake(&a, &b, now - WGF_REKEY_AFTER_TIME_NS - WGF_NSEC_PER_SEC);
    for (int i = 0; i < 3; i++) {
        CHECK(write(a.tun[1], pkt, 100) == 100);
        pump(&a, &b, 1);
        CHECK(tun_read(&b, got, sizeof(got)) == 100);
    }
    struct wgf_dp_msg msgs[4];
    CHECK(poll_msgs(&a, msgs, 4) == 1 && msgs[0].kind == WGF_DP_MSG_NEED_HANDSHAKE);

    /* Older than REJECT_AFTER_TIME: nothing sealed, the packet waits, the receiver refuses. */
    wgf_dp_peer_expire_keypairs(a.dp, PEER_ID);
    wgf_dp_peer_expire_keypairs(b.dp, PEER_ID);
    handshake(&a, &b, now - WGF_REJECT_AFTER_TIME_NS - WGF_NSEC_PER_SEC);
    CHECK(write(a.tun[1], pkt, 100) == 100);
    pump(&a, &b, 1);
    struct wgf_dp_peer_info info;
    CHECK(wgf_dp_peer_get_info(a.dp, PEER_ID, &info) == 0 && info.staged == 1);
    CHECK(poll_msgs(&a, msgs, 4) == 1 && msgs[0].kind == WGF_DP_MSG_NEED_HANDSHAKE);
    side_close(&a);
    side_close(&b);
}

WGF_TEST(dataplane_keys_and_indices_leave_with_keypairs)
{
    struct side a, b;
    pair_open(&a, &b);
    handshake(&a, &b, wgf_dp_now_ns());
    struct wgf_index_table *idx = wgf_dp_index_table(a.dp);
    CHECK(wgf_index_table_count(idx) == 1);
    /* A second initiator handshake: old current -> previous, both indices live. */
    struct wgf_dp_keypair kp;
    make_keypair(&kp, 1, wgf_dp_now_ns());
    CHECK(wgf_dp_peer_install_keypair(a.dp, PEER_ID, &kp) == -EEXIST); /* index in use */
    kp.local_index = 0x44444444;
    CHECK(wgf_dp_peer_install_keypair(a.dp, PEER_ID, &kp) == 0);
    CHECK(wgf_index_table_count(idx) == 2);
    kp.local_index = 0x55555555;
    CHECK(wgf_dp_peer_install_keypair(a.dp, PEER_ID, &kp) == 0); /* oldest retired */
    CHECK(wgf_index_table_count(idx) == 2);
    struct wgf_index_entry e;
    CHECK(wgf_index_table_lookup(idx, 0x11111111, &e) == -ENOENT);

    /* Retired slots are all-zero, keys included. */
    pthread_mutex_lock(&a.dp->lock);
    struct wgf_dp_peer *p = wgf_dp_peer_find(a.dp, PEER_ID);
    static const uint8_t zero[sizeof(struct wgf_dp_keypair_slot)];
    int zeroed = 0;
    for (int s = 0; s < WGF_DP_KEYPAIR_SLOTS; s++)
        zeroed += memcmp(&p->slots[s], zero, sizeof(zero)) == 0;
    pthread_mutex_unlock(&a.dp->lock);
    CHECK(zeroed == 1);

    CHECK(wgf_dp_peer_expire_keypairs(a.dp, PEER_ID) == 0);
    CHECK(wgf_index_table_count(idx) == 0);
    CHECK(wgf_dp_peer_remove(b.dp, PEER_ID) == 0);
    CHECK(wgf_index_table_count(wgf_dp_index_table(b.dp)) == 0);
    CHECK(wgf_allowedips_count(wgf_dp_allowedips(b.dp)) == 0);
    CHECK(wgf_dp_peer_remove(b.dp, PEER_ID) == -ENOENT);
    side_close(&a);
    side_close(&b);
}

WGF_TEST(dataplane_batches_under_load)
{
    struct side a, b;
    pair_open(&a, &b);
    handshake(&a, &b, wgf_dp_now_ns());
    uint8_t pkt[1500], got[2000];
    const int rounds = 8, per_round = 100;
    int received = 0;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < per_round; i++) {
            make_ip4(pkt, "10.0.0.1", "10.0.0.2", 1400, (uint8_t)i);
            CHECK(write(a.tun[1], pkt, 1400) == 1400);
        }
        pump(&a, &b, 2);
        while (tun_read(&b, got, sizeof(got)) == 1400)
            received++;
    }
    struct wgf_dp_stats sa = stats_of(&a), sb = stats_of(&b);
    CHECK(received == rounds * per_round);
    CHECK(sa.sendmmsg_packets == (uint64_t)rounds * per_round);
    CHECK(sa.sendmmsg_calls <= (uint64_t)rounds * 2);  /* ~one call per batch */
    CHECK(sa.sendmmsg_max >= 64);
    CHECK(sb.recvmmsg_packets / sb.recvmmsg_calls > 1);
    CHECK(sa.events_up == 0 && sb.events_up == 1); /* only B's keypair confirmation */
    fprintf(stderr, "  load: %llu packets in %llu sendmmsg calls (max %llu), %llu in %llu "
            "recvmmsg calls, events up %llu\n",
            (unsigned long long)sa.sendmmsg_packets, (unsigned long long)sa.sendmmsg_calls,
            (unsigned long long)sa.sendmmsg_max, (unsigned long long)sb.recvmmsg_packets,
            (unsigned long long)sb.recvmmsg_calls, (unsigned long long)sb.events_up);
    side_close(&a);
    side_close(&b);
}

static void *run_thread(void *arg)
{
    struct wgf_dp *dp = arg;
    return (void *)(intptr_t)wgf_dp_run(dp);
}

WGF_TEST(dataplane_run_stops_and_reports_tun_failure)
{
    struct side a, b;
    pair_open(&a, &b);
    pthread_t t;
    void *ret;
    CHECK(pthread_create(&t, NULL, run_thread, a.dp) == 0);
    usleep(10000);
    wgf_dp_stop(a.dp);
    pthread_join(t, &ret);
    CHECK((intptr_t)ret == 0);

    /* The TUN going away (here: the other end closed) ends the loop with an error. */
    close(b.tun[1]);
    b.tun[1] = -1;
    CHECK(pthread_create(&t, NULL, run_thread, b.dp) == 0);
    pthread_join(t, &ret);
    CHECK((intptr_t)ret < 0);
    side_close(&a);
    side_close(&b);
}

WGF_TEST(dataplane_rejects_bad_arguments)
{
    struct wgf_dp *dp;
    CHECK(wgf_dp_new(&dp, -1, 3, -1, MTU) == -EINVAL);
    CHECK(wgf_dp_new(&dp, 3, -1, -1, MTU) == -EINVAL);
    CHECK(wgf_dp_new(&dp, 3, 3, -1, 100) == -EINVAL);
    struct side a, b;
    pair_open(&a, &b);
    CHECK(wgf_dp_peer_add(a.dp, 0) == -EINVAL);
    CHECK(wgf_dp_peer_add(a.dp, PEER_ID) == -EEXIST);
    union wgf_dp_endpoint ep;
    memset(&ep, 0, sizeof(ep));
    ep.sa.sa_family = AF_UNIX;
    CHECK(wgf_dp_peer_set_endpoint(a.dp, PEER_ID, &ep) == -EAFNOSUPPORT);
    CHECK(wgf_dp_peer_send_keepalive(a.dp, 99) == -ENOENT);
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
    side_close(&a);
    side_close(&b);
}
