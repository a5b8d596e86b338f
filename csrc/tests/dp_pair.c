/* See dp_pair.h. */
#define _GNU_SOURCE
#include "dp_pair.h"

#include "../blake2s.h"
#include "../cookie.h"

#include <arpa/inet.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"

int dp_udp_socket(struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int big = 8 << 20;
    /* Loopback bursts of a whole batch must not overflow the default buffers. */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)addr, sizeof(*addr)) == 0);
    socklen_t len = sizeof(*addr);
    getsockname(fd, (struct sockaddr *)addr, &len);
    return fd;
}

void dp_side_open(struct dp_side *s, uint32_t peer, const char *peer_ip, unsigned mtu)
{
    memset(s, 0, sizeof(*s));
    CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, s->tun) == 0);
    int big = 8 << 20;
    for (int i = 0; i < 2; i++) {
        if (setsockopt(s->tun[i], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big)) != 0)
            setsockopt(s->tun[i], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    }
    s->udp = dp_udp_socket(&s->addr);
    CHECK(wgf_dp_new(&s->dp, s->tun[0], s->udp, -1, mtu) == 0);
    wgf_dp_set_identity(s->dp, DP_TEST_PUBLIC_KEY);
    CHECK(wgf_dp_peer_add(s->dp, peer) == 0);
    uint8_t a[4];
    inet_pton(AF_INET, peer_ip, a);
    CHECK(wgf_allowedips_insert(wgf_dp_allowedips(s->dp), WGF_IP4, a, 32, peer) == 0);
}

const uint8_t dp_test_public_key[32] = {0x70, 0x75, 0x62, 0x6c, 0x69, 0x63}; /* "public" */

void dp_add_mac1(uint8_t *msg, size_t len)
{
    uint8_t key[WGF_KEY_LEN], in[8 + 32];
    memcpy(in, WGF_LABEL_MAC1, 8);
    memcpy(in + 8, dp_test_public_key, 32);
    wgf_blake2s(key, sizeof(key), in, sizeof(in), NULL, 0);
    wgf_mac(msg + len - 2 * WGF_MAC_LEN, key, sizeof(key), msg, len - 2 * WGF_MAC_LEN);
}

void dp_side_close(struct dp_side *s)
{
    wgf_dp_free(s->dp);
    close(s->tun[0]);
    if (s->tun[1] >= 0)
        close(s->tun[1]);
    close(s->udp);
}

static uint64_t read_fake_clock(void *ctx)
{
    return __atomic_load_n(&((struct dp_side *)ctx)->now, __ATOMIC_RELAXED);
}

void dp_fake_clock(struct dp_side *s, uint64_t start)
{
    s->now = start;
    wgf_dp_set_clock(s->dp, read_fake_clock, s);
}

void dp_point_at(struct dp_side *s, uint32_t peer, const struct sockaddr_in *to)
{
    union wgf_dp_endpoint ep;
    memset(&ep, 0, sizeof(ep));
    ep.in4 = *to;
    CHECK(wgf_dp_peer_set_endpoint(s->dp, peer, &ep) == 0);
}

void dp_pair_open(struct dp_side *a, struct dp_side *b, uint32_t peer, unsigned mtu,
                  uint64_t start)
{
    dp_side_open(a, peer, "10.0.0.2", mtu);
    dp_side_open(b, peer, "10.0.0.1", mtu);
    dp_fake_clock(a, start);
    dp_fake_clock(b, start);
    dp_point_at(a, peer, &b->addr);
    dp_point_at(b, peer, &a->addr);
}

void dp_pair_close(struct dp_side *a, struct dp_side *b)
{
    dp_side_close(a);
    dp_side_close(b);
}

int dp_handshake(struct dp_side *initiator, uint32_t peer_i, struct dp_side *responder,
                 uint32_t peer_r, uint64_t created, uint8_t seed)
{
    uint32_t ii, ir;
    CHECK(wgf_dp_peer_begin_handshake(initiator->dp, peer_i, &ii) == 0);
    CHECK(wgf_dp_peer_begin_handshake(responder->dp, peer_r, &ir) == 0);
    struct wgf_dp_keypair ki = {.local_index = ii, .remote_index = ir, .is_initiator = 1,
                                .created_ns = created};
    struct wgf_dp_keypair kr = {.local_index = ir, .remote_index = ii, .is_initiator = 0,
                                .created_ns = created};
    memset(ki.send_key, seed, WGF_AEAD_KEY_LEN);
    memset(kr.receive_key, seed, WGF_AEAD_KEY_LEN);
    memset(ki.receive_key, seed ^ 0x5a, WGF_AEAD_KEY_LEN);
    memset(kr.send_key, seed ^ 0x5a, WGF_AEAD_KEY_LEN);
    /* The responder first, as the protocol has it: its keypair exists before the initiator
     * can send under its own. */
    int err = wgf_dp_peer_install_keypair(responder->dp, peer_r, &kr);
    if (err == 0)
        err = wgf_dp_peer_install_keypair(initiator->dp, peer_i, &ki);
    return err;
}

size_t dp_make_ip4(uint8_t *buf, const char *src, const char *dst, size_t len, uint8_t seed)
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

ssize_t dp_tun_read(struct dp_side *s, uint8_t *buf, size_t cap)
{
    struct pollfd pfd = {.fd = s->tun[1], .events = POLLIN};
    if (poll(&pfd, 1, 0) != 1)
        return -1;
    return read(s->tun[1], buf, cap);
}

void dp_pump(struct dp_side *a, struct dp_side *b, int rounds)
{
    for (int i = 0; i < rounds; i++) {
        CHECK(wgf_dp_run_once(a->dp, 0) == 0);
        CHECK(wgf_dp_run_once(b->dp, 0) == 0);
    }
}

size_t dp_events(struct dp_side *s, struct wgf_dp_peer_event *out, size_t max)
{
    wgf_dp_events_ack(s->dp);
    return wgf_dp_take_peer_events(s->dp, out, max);
}

int dp_signalled(struct dp_side *s)
{
    struct pollfd pfd = {.fd = wgf_dp_event_fd(s->dp), .events = POLLIN};
    return poll(&pfd, 1, 0) == 1;
}
