/* Helpers the vectorised Poly1305 variants share: powers of r computed in scalar radix 2^44
 * (which, unlike the radix-2^64 block multiply, works for any two operands, not only a clamped
 * r), conversions between limb layouts, and the scalar prologue/epilogue around the vector
 * loop. Included only by poly1305_avx2.c and poly1305_avx512.c. */
#ifndef WGF_POLY1305_SIMD_H
#define WGF_POLY1305_SIMD_H

#include "poly1305_scalar.h"

#define WGF_M44 ((uint64_t)0xfffffffffff)
#define WGF_M42 ((uint64_t)0x3ffffffffff)
#define WGF_M26 ((uint64_t)0x3ffffff)

/* An element of GF(2^130 - 5) as 44 + 44 + 42 bits; limbs may exceed their width slightly. */
struct wgf_p44 {
    uint64_t l[3];
};

static inline struct wgf_p44 wgf_p44_from_r(const struct wgf_poly1305_r *r)
{
    struct wgf_p44 a = {{r->r0 & WGF_M44, (r->r0 >> 44 | r->r1 << 20) & WGF_M44, r->r1 >> 24}};
    return a;
}

/* a * b mod p, partially reduced. Limbs in: below 2^46; out: below 2^45 (l2 below 2^42). */
static inline struct wgf_p44 wgf_p44_mul(struct wgf_p44 a, struct wgf_p44 b)
{
    /* 2^132 = 4 * 2^130 = 20 mod p: limb products landing at 2^132 or 2^176 fold back times 20. */
    uint64_t s1 = b.l[1] * 20, s2 = b.l[2] * 20;
    wgf_u128 d0 = (wgf_u128)a.l[0] * b.l[0] + (wgf_u128)a.l[1] * s2 + (wgf_u128)a.l[2] * s1;
    wgf_u128 d1 = (wgf_u128)a.l[0] * b.l[1] + (wgf_u128)a.l[1] * b.l[0] + (wgf_u128)a.l[2] * s2;
    wgf_u128 d2 = (wgf_u128)a.l[0] * b.l[2] + (wgf_u128)a.l[1] * b.l[1] + (wgf_u128)a.l[2] * b.l[0];
    struct wgf_p44 out;
    d1 += (uint64_t)(d0 >> 44);
    out.l[0] = (uint64_t)d0 & WGF_M44;
    d2 += (uint64_t)(d1 >> 44);
    out.l[1] = (uint64_t)d1 & WGF_M44;
    out.l[2] = (uint64_t)d2 & WGF_M42;
    out.l[0] += (uint64_t)(d2 >> 42) * 5;
    out.l[1] += out.l[0] >> 44;
    out.l[0] &= WGF_M44;
    return out;
}

/* The value of a, below 2^131 or so, as the radix-2^64 accumulator (h2 small). */
static inline void wgf_p44_to_h(struct wgf_p44 a, uint64_t *h0, uint64_t *h1, uint64_t *h2)
{
    wgf_u128 t = (wgf_u128)a.l[0] + ((wgf_u128)a.l[1] << 44);
    *h0 = (uint64_t)t;
    t = (t >> 64) + ((wgf_u128)a.l[2] << 24);
    *h1 = (uint64_t)t;
    *h2 = (uint64_t)(t >> 64);
}

/* Folds the bits of h at 2^130 and up back in (times 5), leaving h2 <= 4 as the scalar block
 * multiply expects. h2 may be anything below 2^62. */
static inline void wgf_poly1305_fold(struct wgf_poly1305_state *st)
{
    uint64_t fold = (st->h2 & ~(uint64_t)3) + (st->h2 >> 2);
    wgf_u128 t = (wgf_u128)st->h0 + fold;
    st->h0 = (uint64_t)t;
    t = (wgf_u128)st->h1 + (uint64_t)(t >> 64);
    st->h1 = (uint64_t)t;
    st->h2 = (st->h2 & 3) + (uint64_t)(t >> 64);
}

/* Finishes an AEAD tag after the vector loop consumed the first done_blocks whole blocks of ct:
 * the remaining whole blocks, the zero-padded partial block, the length block. */
static inline void wgf_poly1305_aead_tail(struct wgf_poly1305_state *st, uint8_t tag[16],
                                          const uint8_t *ct, size_t ct_len, size_t done_blocks,
                                          size_t ad_len)
{
    wgf_poly1305_padded(st, ct + done_blocks * 16, ct_len - done_blocks * 16);
    wgf_poly1305_lengths(st, ad_len, ct_len);
    wgf_poly1305_finish(st, tag);
}

#endif
