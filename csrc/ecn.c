/* RFC 6040 ECN propagation for the tunnel (see ecn.h). */
#include "ecn.h"

#define IP4_HEADER_MIN 20
#define IP6_HEADER_LEN 40

uint8_t wgf_ecn_inner(const uint8_t *pkt, size_t len)
{
    if (len >= IP4_HEADER_MIN && pkt[0] >> 4 == 4)
        return pkt[1] & WGF_ECN_MASK;
    if (len >= IP6_HEADER_LEN && pkt[0] >> 4 == 6)
        return (pkt[1] >> 4) & WGF_ECN_MASK; /* traffic class: low nibble of byte 0, high of 1 */
    return WGF_ECN_NOT_ECT;
}

/* The ECN field the inner packet leaves the tunnel with (RFC 6040 section 4.2). */
static uint8_t decapsulated(uint8_t inner, uint8_t outer)
{
    if (inner == WGF_ECN_NOT_ECT)
        return inner; /* RFC 6040 would drop on a CE outer; the kernel delivers it unchanged */
    if (outer == WGF_ECN_CE)
        return WGF_ECN_CE;
    if (outer == WGF_ECN_ECT_1 && inner == WGF_ECN_ECT_0)
        return WGF_ECN_ECT_1;
    return inner;
}

void wgf_ecn_decapsulate(uint8_t *pkt, size_t len, uint8_t outer)
{
    outer &= WGF_ECN_MASK;
    if (outer != WGF_ECN_CE && outer != WGF_ECN_ECT_1)
        return; /* the common case: nothing to carry over */
    if (len >= IP4_HEADER_MIN && pkt[0] >> 4 == 4) {
        uint8_t inner = pkt[1] & WGF_ECN_MASK, want = decapsulated(inner, outer);
        if (want == inner)
            return;
        /* Incremental checksum update (RFC 1624: HC' = ~(~HC + ~m + m')) over the 16-bit word
         * that holds version/IHL and TOS. */
        uint16_t old_word = (uint16_t)(pkt[0] << 8 | pkt[1]);
        pkt[1] = (uint8_t)((pkt[1] & ~WGF_ECN_MASK) | want);
        uint16_t new_word = (uint16_t)(pkt[0] << 8 | pkt[1]);
        uint32_t sum = (uint16_t)~(pkt[10] << 8 | pkt[11]);
        sum += (uint16_t)~old_word;
        sum += new_word;
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        uint16_t check = (uint16_t)~sum;
        pkt[10] = (uint8_t)(check >> 8);
        pkt[11] = (uint8_t)check;
    } else if (len >= IP6_HEADER_LEN && pkt[0] >> 4 == 6) {
        uint8_t inner = (pkt[1] >> 4) & WGF_ECN_MASK, want = decapsulated(inner, outer);
        pkt[1] = (uint8_t)((pkt[1] & 0xcf) | want << 4);
    }
}
