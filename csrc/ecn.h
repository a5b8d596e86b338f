/* Explicit Congestion Notification across the tunnel, as RFC 6040 (normal mode) has it: the
 * outer header carries the inner packet's ECN field; on the way out of the tunnel a congestion
 * mark (CE) on the outer header is carried into the inner one, unless the inner packet is
 * Not-ECT (its endpoints do not speak ECN: it is left alone, as the kernel does). */
#ifndef WGF_ECN_H
#define WGF_ECN_H

#include <stddef.h>
#include <stdint.h>

#define WGF_ECN_MASK 0x03
#define WGF_ECN_NOT_ECT 0x00
#define WGF_ECN_ECT_1 0x01
#define WGF_ECN_ECT_0 0x02
#define WGF_ECN_CE 0x03

/* The ECN field of the IPv4/IPv6 packet at pkt (len bytes), Not-ECT when it is neither. */
uint8_t wgf_ecn_inner(const uint8_t *pkt, size_t len);
/* Decapsulation: outer is the outer header's TOS / traffic class. A CE outer marks an ECT inner
 * CE; an ECT(1) outer turns an ECT(0) inner into ECT(1) (the kernel's rule, for L4S). The IPv4
 * header checksum follows the change. The caller has checked the header is whole (20 bytes of
 * IPv4, 40 of IPv6). */
void wgf_ecn_decapsulate(uint8_t *pkt, size_t len, uint8_t outer);

#endif
