/* Portable scalar Poly1305 (RFC 8439 section 2.5), the AEAD tag built on it (section 2.8), and the
 * constant-time tag comparison. The arithmetic lives in poly1305_scalar.h so the SIMD variants
 * share it for their short-message and tail paths. */
#include "poly1305.h"

#include "poly1305_scalar.h"

void wgf_poly1305_mac(uint8_t tag[16], const uint8_t key[32], const uint8_t *msg, size_t len)
{
    struct wgf_poly1305_state st;
    size_t full = len / 16, rest = len % 16;

    wgf_poly1305_init(&st, key);
    wgf_poly1305_blocks(&st, msg, full, 1);
    if (rest) {
        /* A short final block carries its 0x01 pad byte in-band instead of the 2^128 bit. */
        uint8_t block[16] = {0};
        for (size_t i = 0; i < rest; i++)
            block[i] = msg[full * 16 + i];
        block[rest] = 1;
        wgf_poly1305_blocks(&st, block, 1, 0);
    }
    wgf_poly1305_finish(&st, tag);
}

void wgf_poly1305_aead_scalar(uint8_t tag[16], const uint8_t otk[32], const uint8_t *ad,
                              size_t ad_len, const uint8_t *ct, size_t ct_len)
{
    struct wgf_poly1305_state st;

    wgf_poly1305_init(&st, otk);
    wgf_poly1305_padded(&st, ad, ad_len);
    wgf_poly1305_padded(&st, ct, ct_len);
    wgf_poly1305_lengths(&st, ad_len, ct_len);
    wgf_poly1305_finish(&st, tag);
}

int wgf_tag_verify(const uint8_t a[16], const uint8_t b[16])
{
    /* OR the differences of every byte, then map 0 -> 0 and nonzero -> -1 without a branch. */
    unsigned diff = 0;
    for (int i = 0; i < 16; i++)
        diff |= (unsigned)(a[i] ^ b[i]);
    return (int)((diff - 1) >> 8 & 1) - 1;
}
