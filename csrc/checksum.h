/* The Internet checksum (RFC 1071) for the offloads: completing partial checksums, checksumming
 * segments split from a super-packet, verifying segments before they are coalesced, IPv4 header
 * checksums.
 *
 * Sums are kept in native byte order (RFC 1071's byte-order independence, section 2(B)): load
 * 16/32/64-bit words as they lie in memory, fold, and store the result back the same way.
 * Integers that belong in the sum (protocol number, lengths) go in through wgf_csum_be16. */
#ifndef WGF_CHECKSUM_H
#define WGF_CHECKSUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Adds len bytes at data to the running sum (an odd length is padded with a zero byte). data
 * must start at an even offset of the checksummed range. */
uint64_t wgf_csum_add(uint64_t sum, const uint8_t *data, size_t len);
/* A host-order 16-bit value as it would sit in memory big-endian, added to sum. */
uint64_t wgf_csum_add_be16(uint64_t sum, uint16_t value);
/* Folds the running sum to 16 bits (not complemented). */
uint16_t wgf_csum_fold(uint64_t sum);
/* The pseudo-header sum of TCP/UDP over IPv4 (addrs: 8 bytes, source then destination) or IPv6
 * (32 bytes), for an upper-layer length of l4_len and protocol proto. */
uint64_t wgf_csum_pseudo(const uint8_t *addrs, size_t addr_len, uint8_t proto, uint32_t l4_len);
/* The same, with the addresses taken from the IPv4 (v6 false) or IPv6 header at ip. */
uint64_t wgf_csum_pseudo_ip(const uint8_t *ip, bool v6, uint8_t proto, uint32_t l4_len);
/* The complemented TCP/UDP checksum of the l4_len bytes at l4 under the IP header at ip: what
 * goes into the checksum field (while it holds zero), or 0 over a segment whose field is right. */
uint16_t wgf_csum_l4(const uint8_t *ip, bool v6, uint8_t proto, const uint8_t *l4, size_t l4_len);
/* Sets the IPv4 header checksum of the ip_len-byte header at ip (IPv6 has none). */
void wgf_ip4_set_checksum(uint8_t *ip, size_t ip_len);
/* Stores a folded checksum (as computed, native order) at p. */
static inline void wgf_csum_store(uint8_t *p, uint16_t csum)
{
    __builtin_memcpy(p, &csum, 2);
}

#endif
