/* UDP socket offloads: UDP_SEGMENT (GSO) on send, UDP_GRO on receive. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <string.h>

#include "checksum.h"
#include "offload.h"
#include "udp_sockopt.h"

int wgf_udp_enable_gro(int fd)
{
    int one = 1;
    return setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one)) == 0 ? 0 : -errno;
}

void wgf_udp_set_segment(struct msghdr *m, void *space, uint16_t size)
{
    _Static_assert(CMSG_SPACE(sizeof(uint16_t)) <= WGF_UDP_CMSG_SPACE, "cmsg space");
    _Static_assert(CMSG_SPACE(sizeof(int)) <= WGF_UDP_CMSG_SPACE, "cmsg space");
    memset(space, 0, WGF_UDP_CMSG_SPACE);
    m->msg_control = space;
    m->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
    struct cmsghdr *c = CMSG_FIRSTHDR(m);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    memcpy(CMSG_DATA(c), &size, sizeof(size));
}

size_t wgf_udp_gro_size(const struct msghdr *m)
{
    if (m->msg_control == NULL || m->msg_controllen < sizeof(struct cmsghdr))
        return 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)m); c != NULL;
         c = CMSG_NXTHDR((struct msghdr *)m, c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO &&
            c->cmsg_len >= CMSG_LEN(sizeof(int))) {
            int size;
            memcpy(&size, CMSG_DATA(c), sizeof(size));
            return size > 0 ? (size_t)size : 0;
        }
    }
    return 0;
}

size_t wgf_udp_gso_groups(const struct iovec *iov, const void *names, size_t name_stride,
                          const socklen_t *namelens, const void *keys, size_t key_len, size_t n,
                          size_t max_segments, uint32_t *start, uint32_t *len)
{
    const uint8_t *name = names, *key = keys;
    size_t groups = 0;
    for (size_t i = 0; i < n;) {
        size_t size = iov[i].iov_len, bytes = size, j = i + 1;
        /* Grow while the next datagram goes to the same place and the previous one was full
         * size (only the last of a group may be shorter). */
        while (j < n && j - i < max_segments && iov[j - 1].iov_len == size &&
               iov[j].iov_len <= size && bytes + iov[j].iov_len <= WGF_UDP_GSO_MAX_BYTES &&
               namelens[j] == namelens[i] &&
               memcmp(name + j * name_stride, name + i * name_stride, namelens[i]) == 0 &&
               (key == NULL || memcmp(key + j * key_len, key + i * key_len, key_len) == 0)) {
            bytes += iov[j].iov_len;
            j++;
        }
        start[groups] = (uint32_t)i;
        len[groups] = (uint32_t)(j - i);
        groups++;
        i = j;
    }
    return groups;
}
