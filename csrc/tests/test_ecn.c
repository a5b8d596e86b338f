/* RFC 6040 propagation (ecn.c): what the outer header carries and what comes out of the tunnel. */
#include "check.h"

#include <stdbool.h>

#include "../checksum.h"
#include "../ecn.h"

static void ipv4_header(uint8_t *h, uint8_t tos)
{
    memset(h, 0, 20);
    h[0] = 0x45;
    h[1] = tos;
    h[3] = 20;
    h[8] = 64;
    h[9] = 17;
    h[12] = 10, h[15] = 1;
    h[16] = 10, h[19] = 2;
    wgf_ip4_set_checksum(h, 20);
}

/* A header whose checksum field is right sums to all ones. */
static bool checksum_ok(const uint8_t *h)
{
    return wgf_csum_fold(wgf_csum_add(0, h, 20)) == 0xffff;
}

WGF_TEST(ecn_inner_field_of_both_families)
{
    uint8_t v4[20], v6[40] = {0};
    ipv4_header(v4, 0xb8 | WGF_ECN_ECT_0); /* DSCP EF, ECT(0) */
    CHECK(wgf_ecn_inner(v4, sizeof(v4)) == WGF_ECN_ECT_0);
    v6[0] = 0x60 | 0x0b; /* traffic class 0xb9: DSCP 46, ECT(1) */
    v6[1] = 0x90;
    CHECK(wgf_ecn_inner(v6, sizeof(v6)) == WGF_ECN_ECT_1);
    CHECK(wgf_ecn_inner(v6, 39) == WGF_ECN_NOT_ECT); /* not a whole header: nothing to copy */
    CHECK(wgf_ecn_inner(v4, 0) == WGF_ECN_NOT_ECT);  /* a keepalive */
}

WGF_TEST(ecn_decapsulation_follows_rfc6040_and_keeps_the_checksum)
{
    static const struct {
        uint8_t inner, outer, out;
    } cases[] = {
        /* inner, outer: what the inner packet leaves the tunnel with */
        {WGF_ECN_ECT_0, WGF_ECN_CE, WGF_ECN_CE},
        {WGF_ECN_ECT_1, WGF_ECN_CE, WGF_ECN_CE},
        {WGF_ECN_CE, WGF_ECN_CE, WGF_ECN_CE},
        {WGF_ECN_NOT_ECT, WGF_ECN_CE, WGF_ECN_NOT_ECT}, /* the kernel's rule (RFC 6040: drop) */
        {WGF_ECN_ECT_0, WGF_ECN_ECT_1, WGF_ECN_ECT_1},
        {WGF_ECN_ECT_0, WGF_ECN_ECT_0, WGF_ECN_ECT_0},
        {WGF_ECN_CE, WGF_ECN_NOT_ECT, WGF_ECN_CE},
        {WGF_ECN_ECT_1, WGF_ECN_NOT_ECT, WGF_ECN_ECT_1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t v4[20], v6[40] = {0};
        ipv4_header(v4, (uint8_t)(0x28 | cases[i].inner));
        wgf_ecn_decapsulate(v4, sizeof(v4), (uint8_t)(0x48 | cases[i].outer));
        CHECK((v4[1] & WGF_ECN_MASK) == cases[i].out);
        CHECK((v4[1] & ~WGF_ECN_MASK) == 0x28); /* DSCP is the inner's own */
        CHECK(checksum_ok(v4));
        v6[0] = 0x62; /* traffic class 0x2? */
        v6[1] = (uint8_t)(0x85 | cases[i].inner << 4);
        wgf_ecn_decapsulate(v6, sizeof(v6), cases[i].outer);
        CHECK(((v6[1] >> 4) & WGF_ECN_MASK) == cases[i].out);
        CHECK(v6[0] == 0x62 && (v6[1] & 0xcf) == 0x85); /* DSCP and flow label untouched */
    }
}
