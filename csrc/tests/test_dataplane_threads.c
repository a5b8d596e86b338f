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

#include "../dataplane_internal.h"
#include "check.h"
#include "dp_pair.h"

#define PEER_ID 9
#define MTU 1420
#define PKT_LEN 1000
#define PKTS 3000

struct end {
    struct dp_side side;
    pthread_t loop;
    int result;
};

static void *loop_main(void *arg)
{
    struct end *e = arg;
    e->result = wgf_dp_run(e->side.dp);
    return NULL;
}

static void end_open(struct end *e, const char *peer_ip)
{
    dp_side_open(&e->side, PEER_ID, peer_ip, MTU);
}

static void end_close(struct end *e)
{
    dp_side_close(&e->side);
}

/* Generation g's keypair: A initiates (current at once), B responds (next until data). */
static void handshake(struct end *a, struct end *b, uint32_t g)
{
    CHECK(dp_handshake(&a->side, PEER_ID, &b->side, PEER_ID, wgf_dp_now(a->side.dp),
                       (uint8_t)(0x10 + g)) == 0);
}

static void start_pair(struct end *a, struct end *b)
{
    end_open(a, "10.0.0.2");
    end_open(b, "10.0.0.1");
    dp_point_at(&a->side, PEER_ID, &b->side.addr);
    dp_point_at(&b->side, PEER_ID, &a->side.addr);
    handshake(a, b, 1);
    CHECK(pthread_create(&a->loop, NULL, loop_main, a) == 0);
    CHECK(pthread_create(&b->loop, NULL, loop_main, b) == 0);
}

static void stop_pair(struct end *a, struct end *b)
{
    wgf_dp_stop(a->side.dp);
    wgf_dp_stop(b->side.dp);
    pthread_join(a->loop, NULL);
    pthread_join(b->loop, NULL);
    CHECK(a->result == 0 && b->result == 0);
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
            CHECK(write(f->from->side.tun[1], pkt, PKT_LEN) == PKT_LEN);
            seq++;
            continue;
        }
        struct pollfd pfd = {.fd = f->to->side.tun[1], .events = POLLIN};
        if (poll(&pfd, 1, 2000) != 1)
            break; /* lost: the count check below fails */
        ssize_t r = read(f->to->side.tun[1], got, sizeof(got));
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
    start_pair(&a, &b);

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
        CHECK(wgf_dp_peer_send_keepalive(a.side.dp, PEER_ID) == 0);
        CHECK(wgf_dp_peer_get_info(b.side.dp, PEER_ID, &info) == 0);
        wgf_dp_get_stats(a.side.dp, &st);
        if (i == 100)
            handshake(&a, &b, 2);
        usleep(500);
    }
    pthread_join(tab, NULL);
    pthread_join(tba, NULL);
    stop_pair(&a, &b);
    CHECK(ab.received == PKTS && ba.received == PKTS);
    CHECK(ab.intact && ba.intact);
    CHECK(ab.in_order && ba.in_order);
    wgf_dp_get_stats(b.side.dp, &st);
    CHECK(st.drops[WGF_DROP_AUTH] == 0 && st.drops[WGF_DROP_REPLAY] == 0);
    CHECK(st.keepalives_received > 0);
    CHECK(wgf_dp_peer_get_info(a.side.dp, PEER_ID, &info) == 0);
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
    wgf_dp_stop(a.side.dp);
    CHECK(wgf_dp_run(a.side.dp) == 0);
    /* The TUN's other end closed: the send thread fails, the receive thread follows. */
    close(b.side.tun[1]);
    b.side.tun[1] = -1;
    CHECK(pthread_create(&b.loop, NULL, loop_main, &b) == 0);
    pthread_join(b.loop, NULL);
    CHECK(b.result < 0);
    /* And it can run again (the TUN still failing). */
    CHECK(wgf_dp_run(b.side.dp) < 0);
    end_close(&a);
    end_close(&b);
}

/* Reconfiguration under the running threads: A's socket replaced (a listen-port change) and
 * its MTU changed again and again while A -> B traffic flows. Nothing is lost or reordered (the
 * receiver follows A to each new port), and no session is restarted. */
WGF_TEST(dataplane_threads_sockets_and_mtu_replaced_under_traffic)
{
    struct end a, b;
    start_pair(&a, &b);
    struct flow ab = {.from = &a, .to = &b, .src = "10.0.0.1", .dst = "10.0.0.2"};
    pthread_t tab;
    CHECK(pthread_create(&tab, NULL, flow_main, &ab) == 0);
    int old = a.side.udp;
    for (int i = 0; i < 20; i++) {
        struct sockaddr_in addr;
        int fresh = dp_udp_socket(&addr);
        CHECK(wgf_dp_set_sockets(a.side.dp, fresh, -1) == 0);
        close(old); /* no loop thread uses it any more */
        old = fresh;
        CHECK(wgf_dp_set_mtu(a.side.dp, i % 2 ? MTU : 1500) == 0);
        usleep(2000);
    }
    a.side.udp = old;
    pthread_join(tab, NULL);
    stop_pair(&a, &b);
    CHECK(ab.received == PKTS && ab.intact && ab.in_order);
    struct wgf_dp_peer_info info;
    CHECK(wgf_dp_peer_get_info(a.side.dp, PEER_ID, &info) == 0);
    CHECK(info.keypairs_live == 1 && info.current_send_counter >= PKTS);
    struct wgf_dp_stats st;
    wgf_dp_get_stats(b.side.dp, &st);
    CHECK(st.drops[WGF_DROP_AUTH] == 0 && st.drops[WGF_DROP_REPLAY] == 0);
    end_close(&a);
    end_close(&b);
}

static void *run_once_main(void *arg)
{
    struct end *e = arg;
    e->result = wgf_dp_run_once(e->side.dp, 5000); /* in poll until the test writes */
    return NULL;
}

/* The send side's state has one owner: while one wgf_dp_run_once runs (here blocked in its
 * poll), a second one from another thread, or a wgf_dp_run, is refused at once. */
WGF_TEST(dataplane_threads_second_driver_refused_while_run_once_runs)
{
    struct end e;
    end_open(&e, "10.0.0.2");
    CHECK(pthread_create(&e.loop, NULL, run_once_main, &e) == 0);
    int busy_once = 0, busy_run = 0;
    for (int i = 0; i < 200 && !(busy_once && busy_run); i++) {
        busy_once |= wgf_dp_run_once(e.side.dp, 0) == -EBUSY;
        busy_run |= busy_once && wgf_dp_run(e.side.dp) == -EBUSY;
        usleep(1000);
    }
    CHECK(busy_once && busy_run);
    uint8_t pkt[100];
    dp_make_ip4(pkt, "10.0.0.1", "10.0.0.9", sizeof(pkt), 1); /* no peer: read and dropped */
    CHECK(write(e.side.tun[1], pkt, sizeof(pkt)) == (ssize_t)sizeof(pkt));
    pthread_join(e.loop, NULL);
    CHECK(e.result == 0);
    CHECK(wgf_dp_run_once(e.side.dp, 0) == 0); /* free again */
    dp_side_close(&e.side);
}
