/* wgf_dp_run's two threads per data plane, under traffic both ways while control calls race
 * them: every packet arrives intact and, per direction, in order; a rekey in the middle loses
 * nothing it should not; stop and a failing TUN end both threads. Run under -fsanitize=thread
 * too: the C test program built with -fsanitize=thread (every csrc and csrc/tests C file). */
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

#define PEER_ID 9
#define MTU 1420
#define PKT_LEN 1000
#define PKTS 3000

struct end {
    struct wgf_dp *dp;
    int tun[2]; /* [0] the data plane's, [1] the test's */
    int udp;
    struct sockaddr_in addr;
    pthread_t loop;
    int result;
};

static void *loop_main(void *arg)
{
    struct end *e = arg;
    e->result = wgf_dp_run(e->dp);
    return NULL;
}

static void end_open(struct end *e, const char *peer_ip)
{
    int big = 8 << 20;
    CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, e->tun) == 0);
    for (int i = 0; i < 2; i++) {
        if (setsockopt(e->tun[i], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big)) != 0)
            setsockopt(e->tun[i], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    }
    e->udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (setsockopt(e->udp, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)) != 0)
        setsockopt(e->udp, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    memset(&e->addr, 0, sizeof(e->addr));
    e->addr.sin_family = AF_INET;
    e->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(e->udp, (struct sockaddr *)&e->addr, sizeof(e->addr)) == 0);
    socklen_t len = sizeof(e->addr);
    getsockname(e->udp, (struct sockaddr *)&e->addr, &len);
    CHECK(wgf_dp_new(&e->dp, e->tun[0], e->udp, -1, MTU) == 0);
    CHECK(wgf_dp_peer_add(e->dp, PEER_ID) == 0);
    uint8_t a[4];
    inet_pton(AF_INET, peer_ip, a);
    CHECK(wgf_allowedips_insert(wgf_dp_allowedips(e->dp), WGF_IP4, a, 32, PEER_ID) == 0);
}

static void end_close(struct end *e)
{
    wgf_dp_free(e->dp);
    close(e->tun[0]);
    if (e->tun[1] >= 0)
        close(e->tun[1]);
    close(e->udp);
}

static void point_at(struct end *e, const struct sockaddr_in *to)
{
    union wgf_dp_endpoint ep;
    memset(&ep, 0, sizeof(ep));
    ep.in4 = *to;
    CHECK(wgf_dp_peer_set_endpoint(e->dp, PEER_ID, &ep) == 0);
}

/* Generation g's keypair: A initiates (current at once), B responds (next until data). */
static void handshake(struct end *a, struct end *b, uint32_t g)
{
    struct wgf_dp_keypair kp;
    memset(&kp, 0, sizeof(kp));
    kp.local_index = 0x1000 + g;
    kp.remote_index = 0x2000 + g;
    memset(kp.send_key, (int)(0x10 + g), WGF_AEAD_KEY_LEN);
    memset(kp.receive_key, (int)(0x40 + g), WGF_AEAD_KEY_LEN);
    kp.is_initiator = 1;
    kp.created_ns = wgf_dp_now_ns();
    struct wgf_dp_keypair for_a = kp;
    kp.local_index = 0x2000 + g;
    kp.remote_index = 0x1000 + g;
    memset(kp.send_key, (int)(0x40 + g), WGF_AEAD_KEY_LEN);
    memset(kp.receive_key, (int)(0x10 + g), WGF_AEAD_KEY_LEN);
    kp.is_initiator = 0;
    /* B first: A sends under the new keypair the moment it has it. */
    CHECK(wgf_dp_peer_install_keypair(b->dp, PEER_ID, &kp) == 0);
    CHECK(wgf_dp_peer_install_keypair(a->dp, PEER_ID, &for_a) == 0);
}

/* An IPv4/UDP-shaped packet src -> dst carrying sequence number seq. */
static void make_packet(uint8_t *buf, const char *src, const char *dst, uint32_t seq)
{
    memset(buf, 0, 20);
    buf[0] = 0x45;
    buf[2] = PKT_LEN >> 8;
    buf[3] = PKT_LEN & 0xff;
    buf[8] = 64;
    buf[9] = 17;
    inet_pton(AF_INET, src, buf + 12);
    inet_pton(AF_INET, dst, buf + 16);
    memcpy(buf + 20, &seq, 4);
    for (size_t i = 24; i < PKT_LEN; i++)
        buf[i] = (uint8_t)(seq * 31 + i);
}

struct flow {
    struct end *from, *to;
    const char *src, *dst;
    int received, in_order, intact;
};

/* Writes PKTS packets into one TUN and reads what comes out of the other, paced so the loopback
 * socket never overflows (UDP may drop then, which would not be the data plane's doing). */
static void *flow_main(void *arg)
{
    struct flow *f = arg;
    uint8_t pkt[PKT_LEN], got[2048], want[PKT_LEN];
    uint32_t next_expected = 0;
    f->in_order = f->intact = 1;
    for (uint32_t seq = 0; seq < PKTS || f->received < PKTS;) {
        if (seq < PKTS && seq - (uint32_t)f->received < 64) {
            make_packet(pkt, f->src, f->dst, seq);
            CHECK(write(f->from->tun[1], pkt, PKT_LEN) == PKT_LEN);
            seq++;
            continue;
        }
        struct pollfd pfd = {.fd = f->to->tun[1], .events = POLLIN};
        if (poll(&pfd, 1, 2000) != 1)
            break; /* lost: the count check below fails */
        ssize_t r = read(f->to->tun[1], got, sizeof(got));
        if (r != PKT_LEN) {
            f->intact = 0;
            continue;
        }
        uint32_t s;
        memcpy(&s, got + 20, 4);
        make_packet(want, f->src, f->dst, s);
        if (memcmp(got, want, PKT_LEN) != 0)
            f->intact = 0;
        if (s != next_expected)
            f->in_order = 0;
        next_expected = s + 1;
        f->received++;
    }
    return NULL;
}

WGF_TEST(dataplane_threads_traffic_both_ways_with_control_calls)
{
    struct end a, b;
    end_open(&a, "10.0.0.2");
    end_open(&b, "10.0.0.1");
    point_at(&a, &b.addr);
    point_at(&b, &a.addr);
    handshake(&a, &b, 1);
    CHECK(pthread_create(&a.loop, NULL, loop_main, &a) == 0);
    CHECK(pthread_create(&b.loop, NULL, loop_main, &b) == 0);

    struct flow ab = {.from = &a, .to = &b, .src = "10.0.0.1", .dst = "10.0.0.2"};
    struct flow ba = {.from = &b, .to = &a, .src = "10.0.0.2", .dst = "10.0.0.1"};
    pthread_t tab, tba;
    CHECK(pthread_create(&tab, NULL, flow_main, &ab) == 0);
    CHECK(pthread_create(&tba, NULL, flow_main, &ba) == 0);
    /* Control calls while both directions run: keepalives, info, stats, and one rekey (packets
     * in flight under the old keypair still open: it stays as previous). */
    struct wgf_dp_peer_info info;
    struct wgf_dp_stats st;
    for (int i = 0; i < 200; i++) {
        CHECK(wgf_dp_peer_send_keepalive(a.dp, PEER_ID) == 0);
        CHECK(wgf_dp_peer_get_info(b.dp, PEER_ID, &info) == 0);
        wgf_dp_get_stats(a.dp, &st);
        if (i == 100)
            handshake(&a, &b, 2);
        usleep(500);
    }
    pthread_join(tab, NULL);
    pthread_join(tba, NULL);
    wgf_dp_stop(a.dp);
    wgf_dp_stop(b.dp);
    pthread_join(a.loop, NULL);
    pthread_join(b.loop, NULL);
    CHECK(a.result == 0 && b.result == 0);
    CHECK(ab.received == PKTS && ba.received == PKTS);
    CHECK(ab.intact && ba.intact);
    CHECK(ab.in_order && ba.in_order);
    wgf_dp_get_stats(b.dp, &st);
    CHECK(st.drops[WGF_DROP_AUTH] == 0 && st.drops[WGF_DROP_REPLAY] == 0);
    CHECK(st.keepalives_received > 0);
    CHECK(wgf_dp_peer_get_info(a.dp, PEER_ID, &info) == 0);
    CHECK(info.current_send_counter > 0); /* the second keypair sealed, keepalives at least */
    end_close(&a);
    end_close(&b);
}

WGF_TEST(dataplane_threads_stop_and_tun_failure_end_both)
{
    struct end a, b;
    end_open(&a, "10.0.0.2");
    end_open(&b, "10.0.0.1");
    /* Stopped before it starts: returns at once, both threads. */
    wgf_dp_stop(a.dp);
    CHECK(wgf_dp_run(a.dp) == 0);
    /* The TUN's other end closed: the send thread fails, the receive thread follows. */
    close(b.tun[1]);
    b.tun[1] = -1;
    CHECK(pthread_create(&b.loop, NULL, loop_main, &b) == 0);
    pthread_join(b.loop, NULL);
    CHECK(b.result < 0);
    /* And it can run again (the TUN still failing). */
    CHECK(wgf_dp_run(b.dp) < 0);
    end_close(&a);
    end_close(&b);
}
