/* The Internet checksum, eight bytes at a time: 32-bit words summed into a 64-bit accumulator
 * cannot overflow for any packet we handle (2^32 words), and the final fold brings the carries
 * back around as RFC 1071 requires. */
#include <string.h>

#include "checksum.h"

uint64_t wgf_csum_add(uint64_t sum, const uint8_t *data, size_t len)
{
    while (len >= 16) {
        uint32_t w[4];
        memcpy(w, data, 16);
        sum += (uint64_t)w[0] + w[1] + w[2] + w[3];
        data += 16;
        len -= 16;
    }
    while (len >= 4) {
        uint32_t w;
        memcpy(&w, data, 4);
        sum += w;
        data += 4;
        len -= 4;
    }
    if (len >= 2) {
        uint16_t h;
        memcpy(&h, data, 2);
        sum += h;
        data += 2;
        len -= 2;
    }
    if (len == 1) {
        /* The last byte is the first (most significant on the wire) of a zero-padded word. */
        uint8_t pad[2] = {data[0], 0};
        uint16_t h;
        memcpy(&h, pad, 2);
        sum += h;
    }
    return sum;
}

uint64_t wgf_csum_add_be16(uint64_t sum, uint16_t value)
{
    const uint8_t be[2] = {(uint8_t)(value >> 8), (uint8_t)value};
    uint16_t h;
    memcpy(&h, be, 2);
    return sum + h;
}

uint16_t wgf_csum_fold(uint64_t sum)
{
    sum = (sum & 0xffffffffu) + (sum >> 32);
    sum = (sum & 0xffffffffu) + (sum >> 32);
    sum = (sum & 0xffffu) + (sum >> 16);
    sum = (sum & 0xffffu) + (sum >> 16);
    sum = (sum & 0xffffu) + (sum >> 16);
    return (uint16_t)sum;
}

uint64_t wgf_csum_pseudo(const uint8_t *addrs, size_t addr_len, uint8_t proto, uint32_t l4_len)
{
    uint64_t sum = wgf_csum_add(0, addrs, addr_len);
    sum = wgf_csum_add_be16(sum, proto);
    sum = wgf_csum_add_be16(sum, (uint16_t)(l4_len >> 16));
    return wgf_csum_add_be16(sum, (uint16_t)l4_len);
}

uint64_t wgf_csum_pseudo_ip(const uint8_t *ip, bool v6, uint8_t proto, uint32_t l4_len)
{
    return v6 ? wgf_csum_pseudo(ip + 8, 32, proto, l4_len) : wgf_csum_pseudo(ip + 12, 8, proto, l4_len);
}

uint16_t wgf_csum_l4(const uint8_t *ip, bool v6, uint8_t proto, const uint8_t *l4, size_t l4_len)
{
    uint64_t sum = wgf_csum_pseudo_ip(ip, v6, proto, (uint32_t)l4_len);
    return (uint16_t)~wgf_csum_fold(wgf_csum_add(sum, l4, l4_len));
}

void wgf_ip4_set_checksum(uint8_t *ip, size_t ip_len)
{
    ip[10] = ip[11] = 0;
    wgf_csum_store(ip + 10, (uint16_t)~wgf_csum_fold(wgf_csum_add(0, ip, ip_len)));
}
