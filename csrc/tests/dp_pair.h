/* Two data planes sealing to each other over UDP on 127.0.0.1, each with a SOCK_SEQPACKET
 * socketpair standing in for its TUN device, for the data plane's tests. Each side may run on a
 * clock of the test's (fake_clock): then nothing depends on how long the machine has been up,
 * and time passes only when the test says so. */
#ifndef WGF_TEST_DP_PAIR_H
#define WGF_TEST_DP_PAIR_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/types.h>

#include "../dataplane.h"

struct dp_side {
    struct wgf_dp *dp;
    int tun[2]; /* [0] the data plane's, [1] the test's */
    int udp;
    struct sockaddr_in addr;
    uint64_t now; /* the fake clock's time, if it runs on one */
};

/* A UDP socket on 127.0.0.1 with large buffers; *addr gets its address. */
int dp_udp_socket(struct sockaddr_in *addr);

/* The public key every test side has (any 32 bytes do: mac1 keys are derived from it). */
extern const uint8_t dp_test_public_key[32];
#define DP_TEST_PUBLIC_KEY dp_test_public_key
/* Fills in mac1 of a handshake message (len bytes) addressed to a test side; mac2 stays. */
void dp_add_mac1(uint8_t *msg, size_t len);
/* Opens a side with peer `peer` routing peer_ip/32 (and large TUN buffers). */
void dp_side_open(struct dp_side *s, uint32_t peer, const char *peer_ip, unsigned mtu);
void dp_side_close(struct dp_side *s);
/* Makes the side's data plane run on s->now, starting at `start` nanoseconds. */
void dp_fake_clock(struct dp_side *s, uint64_t start);
void dp_point_at(struct dp_side *s, uint32_t peer, const struct sockaddr_in *to);
/* Two sides on fake clocks from `start`, a (10.0.0.1) and b (10.0.0.2), each routing the
 * other's /32 to `peer` and pointed at the other's socket. */
void dp_pair_open(struct dp_side *a, struct dp_side *b, uint32_t peer, unsigned mtu,
                  uint64_t start);
void dp_pair_close(struct dp_side *a, struct dp_side *b);
/* A finished handshake: indices from each side's data plane, keys derived from seed. The
 * initiator's keypair is current at once, the responder's waits as next until data. Returns
 * 0, or the first error of an install. */
int dp_handshake(struct dp_side *initiator, uint32_t peer_i, struct dp_side *responder,
                 uint32_t peer_r, uint64_t created, uint8_t seed);
/* An IPv4/UDP-shaped packet of len bytes, src -> dst, payload derived from seed. */
size_t dp_make_ip4(uint8_t *buf, const char *src, const char *dst, size_t len, uint8_t seed);
/* One packet the data plane wrote to its TUN, or -1 if none waits. */
ssize_t dp_tun_read(struct dp_side *s, uint8_t *buf, size_t cap);
/* rounds x wgf_dp_run_once(.., 0) on each side, checking each returned 0. */
void dp_pump(struct dp_side *a, struct dp_side *b, int rounds);
/* The peer events waiting (up to max), after acknowledging the event fd. */
size_t dp_events(struct dp_side *s, struct wgf_dp_peer_event *out, size_t max);
/* Whether the event fd is readable now. */
int dp_signalled(struct dp_side *s);

#endif
