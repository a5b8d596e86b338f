/* The data plane's control messages (dataplane_cmsg.c): what a send carries parses back. */
#define _GNU_SOURCE
#include "check.h"

#include <arpa/inet.h>

#include "../dataplane_internal.h"

WGF_TEST(dataplane_cmsg_source_and_ecn_round_trip)
{
    uint8_t space[WGF_DP_CMSG_SPACE] __attribute__((aligned(8)));
    struct msghdr m = {0};
    struct wgf_dp_source src = {.family = AF_INET, .ifindex = 7}, got;
    uint8_t tos;
    inet_pton(AF_INET, "192.0.2.9", &src.addr.in4);
    wgf_dp_cmsg_build(&m, space, AF_INET, &src, WGF_ECN_CE, 1400);
    CHECK(m.msg_control == space && m.msg_controllen <= WGF_DP_CMSG_SPACE);
    wgf_dp_cmsg_parse(&m, &got, &tos);
    CHECK(got.family == AF_INET && got.addr.in4.s_addr == src.addr.in4.s_addr);
    CHECK(got.ifindex == 0); /* IPv4 sends leave the interface to the route */
    CHECK(tos == WGF_ECN_CE);

    struct wgf_dp_source src6 = {.family = AF_INET6, .ifindex = 3};
    inet_pton(AF_INET6, "fe80::1", &src6.addr.in6);
    wgf_dp_cmsg_build(&m, space, AF_INET6, &src6, WGF_ECN_ECT_1, 0);
    wgf_dp_cmsg_parse(&m, &got, &tos);
    CHECK(got.family == AF_INET6 && memcmp(&got.addr.in6, &src6.addr.in6, 16) == 0);
    CHECK(got.ifindex == 3); /* a link-local source names its link */
    CHECK(tos == WGF_ECN_ECT_1);

    /* A source of the other family is left out; nothing at all leaves no control. */
    wgf_dp_cmsg_build(&m, space, AF_INET6, &src, 0, 0);
    CHECK(m.msg_control == NULL && m.msg_controllen == 0);
    wgf_dp_cmsg_parse(&m, &got, &tos);
    CHECK(got.family == AF_UNSPEC && tos == 0);
}
