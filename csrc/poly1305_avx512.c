/* Placeholder until the vectorised version lands: forwards to scalar so the library links. */
#include "poly1305.h"

void wgf_poly1305_aead_avx512(uint8_t tag[16], const uint8_t otk[32], const uint8_t *ad,
                              size_t ad_len, const uint8_t *ct, size_t ct_len)
{
    wgf_poly1305_aead_scalar(tag, otk, ad, ad_len, ct, ct_len);
}
