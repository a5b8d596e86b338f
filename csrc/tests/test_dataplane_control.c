/* The control queue up to Python: a flood of handshake datagrams cannot crowd out the data
 * plane's own events. */
#define _GNU_SOURCE /* struct mmsghdr in dataplane_internal.h */
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "dataplane_internal.h"

WGF_TEST(control_queue_keeps_room_for_events_under_a_flood)
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
    uint8_t initiation[WGF_MSG_INITIATION_LEN] = { WGF_MSG_INITIATION };
    size_t accepted = 0;
    for (int i = 0; i < WGF_DP_CONTROL_QUEUE; i++)
        accepted += wgf_dp_queue_push(dp, WGF_DP_MSG_HANDSHAKE, 0, initiation,
                                      sizeof(initiation), NULL) == 0;
    CHECK(accepted < WGF_DP_CONTROL_QUEUE); /* the flood stops short of the reserve */
    CHECK(accepted >= WGF_DP_CONTROL_QUEUE / 2);
    CHECK(wgf_dp_queue_push(dp, WGF_DP_MSG_KEYPAIR_CONFIRMED, 7, NULL, 0, NULL) == 0);
    CHECK(wgf_dp_queue_push(dp, WGF_DP_MSG_NEED_HANDSHAKE, 8, NULL, 0, NULL) == 0);

    struct wgf_dp_msg *out = calloc(WGF_DP_CONTROL_QUEUE, sizeof(*out));
    CHECK(out != NULL);
    if (out) {
        size_t n = wgf_dp_poll(dp, out, WGF_DP_CONTROL_QUEUE);
        CHECK(n == accepted + 2);
        CHECK(out[n - 2].kind == WGF_DP_MSG_KEYPAIR_CONFIRMED && out[n - 2].peer == 7);
        CHECK(out[n - 1].kind == WGF_DP_MSG_NEED_HANDSHAKE && out[n - 1].peer == 8);
        free(out);
    }
    wgf_dp_free(dp);
    close(tun[0]);
    close(tun[1]);
    close(udp);
}
