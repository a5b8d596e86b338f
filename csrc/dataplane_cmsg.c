/* The UDP sockets' control messages beyond the offloads: where a datagram arrived (IP_PKTINFO /
 * IPV6_RECVPKTINFO, so replies leave from that address) and its TOS / traffic class (IP_RECVTOS /
 * IPV6_RECVTCLASS, for ECN), and the same two set per datagram on send, next to UDP_SEGMENT. */
#define _GNU_SOURCE /* struct in6_pktinfo */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <string.h>

#include "dataplane_internal.h"
#include "udp_sockopt.h"

_Static_assert(CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(int)) +
                   CMSG_SPACE(sizeof(uint16_t)) <= WGF_DP_CMSG_SPACE,
               "room for a source, a traffic class and a segment size");
_Static_assert(CMSG_SPACE(sizeof(struct in6_pktinfo)) + 2 * CMSG_SPACE(sizeof(int)) <=
                   WGF_DP_CMSG_SPACE,
               "room for what a receive reports: source, traffic class, GRO size");

void wgf_dp_cmsg_enable(int fd, int family)
{
    int one = 1;
    /* Best effort: without them replies leave from the route's address and ECN stays outside. */
    if (family == AF_INET) {
        (void)setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
        (void)setsockopt(fd, IPPROTO_IP, IP_RECVTOS, &one, sizeof(one));
    } else {
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_RECVTCLASS, &one, sizeof(one));
    }
}

void wgf_dp_cmsg_parse(const struct msghdr *m, struct wgf_dp_source *local, uint8_t *tos)
{
    memset(local, 0, sizeof(*local));
    *tos = 0;
    if (m->msg_control == NULL || m->msg_controllen < sizeof(struct cmsghdr))
        return;
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)m); c != NULL;
         c = CMSG_NXTHDR((struct msghdr *)m, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO &&
            c->cmsg_len >= CMSG_LEN(sizeof(struct in_pktinfo))) {
            struct in_pktinfo info;
            memcpy(&info, CMSG_DATA(c), sizeof(info));
            local->family = AF_INET;
            local->ifindex = (uint32_t)info.ipi_ifindex;
            local->addr.in4 = info.ipi_spec_dst; /* the local address (ipi_addr may be broadcast) */
        } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO &&
                   c->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo))) {
            struct in6_pktinfo info;
            memcpy(&info, CMSG_DATA(c), sizeof(info));
            local->family = AF_INET6;
            local->ifindex = info.ipi6_ifindex;
            local->addr.in6 = info.ipi6_addr;
        } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS &&
                   c->cmsg_len >= CMSG_LEN(sizeof(uint8_t))) {
            *tos = *CMSG_DATA(c);
        } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_TCLASS &&
                   c->cmsg_len >= CMSG_LEN(sizeof(int))) {
            int tclass;
            memcpy(&tclass, CMSG_DATA(c), sizeof(tclass));
            *tos = (uint8_t)tclass;
        }
    }
}

static struct cmsghdr *append(struct msghdr *m, int level, int type, const void *data, size_t len)
{
    struct cmsghdr *c = (struct cmsghdr *)((uint8_t *)m->msg_control + m->msg_controllen);
    c->cmsg_level = level;
    c->cmsg_type = type;
    c->cmsg_len = CMSG_LEN(len);
    memcpy(CMSG_DATA(c), data, len);
    m->msg_controllen += CMSG_SPACE(len);
    return c;
}

void wgf_dp_cmsg_build(struct msghdr *m, uint8_t *space, int family,
                       const struct wgf_dp_source *src, uint8_t ecn, uint16_t segment)
{
    bool has_src = src != NULL && src->family == (uint32_t)family;
    if (!has_src && ecn == 0 && segment == 0) {
        m->msg_control = NULL;
        m->msg_controllen = 0;
        return;
    }
    int tclass = ecn & WGF_ECN_MASK;
    size_t pktinfo = family == AF_INET ? sizeof(struct in_pktinfo) : sizeof(struct in6_pktinfo);
    /* Zero what the kernel will read (padding included), not the whole space: this runs per
     * datagram. */
    memset(space, 0, (has_src ? CMSG_SPACE(pktinfo) : 0) + (tclass ? CMSG_SPACE(sizeof(int)) : 0) +
                         (segment ? CMSG_SPACE(sizeof(segment)) : 0));
    m->msg_control = space;
    m->msg_controllen = 0;
    if (family == AF_INET) {
        if (has_src) {
            struct in_pktinfo info = {.ipi_ifindex = 0, .ipi_spec_dst = src->addr.in4};
            append(m, IPPROTO_IP, IP_PKTINFO, &info, sizeof(info));
        }
        if (tclass != 0)
            append(m, IPPROTO_IP, IP_TOS, &tclass, sizeof(tclass));
    } else {
        if (has_src) {
            struct in6_pktinfo info = {.ipi6_addr = src->addr.in6, .ipi6_ifindex = 0};
            if (IN6_IS_ADDR_LINKLOCAL(&src->addr.in6))
                info.ipi6_ifindex = src->ifindex; /* a link-local address means one link */
            append(m, IPPROTO_IPV6, IPV6_PKTINFO, &info, sizeof(info));
        }
        if (tclass != 0)
            append(m, IPPROTO_IPV6, IPV6_TCLASS, &tclass, sizeof(tclass));
    }
    if (segment != 0)
        append(m, SOL_UDP, UDP_SEGMENT, &segment, sizeof(segment));
}

bool wgf_dp_source_gone(int err)
{
    /* IPv4's route lookup refuses a source that is not local with ENETUNREACH (on the kernels
     * tested; EINVAL in places), IPv6's pktinfo check with EINVAL. A retry without the source
     * tells a gone source from a destination without a route, at one more call. */
    return err == EINVAL || err == EADDRNOTAVAIL || err == ENETUNREACH;
}
