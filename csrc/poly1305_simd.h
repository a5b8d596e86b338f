/* Helpers the vectorised Poly1305 variants share: powers of r computed in scalar radix 2^44
 * (which, unlike the radix-2^64 block multiply, works for any two operands, not only a clamped
 * r), conversions between limb layouts, and the plan that splits a message between the scalar
 * core and the vector loop. Included only by poly1305_avx2.c and poly1305_avx512.c. */
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

/* How a vector variant splits the blocks after the associated data: the whole ciphertext blocks,
 * then the zero-padded partial block (if any), then the length block. The vector loop takes the
 * LAST groups * lanes blocks so that nothing runs serially after it; the few head blocks before
 * them go through the scalar core first, where they overlap with computing the powers of r. The
 * last group, which holds the padding and length blocks, is assembled in a stack buffer. */
struct wgf_poly1305_plan {
    size_t head_blocks; /* whole ciphertext blocks for the scalar core, first */
    size_t groups;      /* vector groups: groups - 1 read from ct after the head, then last_group */
};

/* Needs ct_len >= 16 * lanes, so that there is at least one group and the last group holds at
 * most two blocks that are not whole ciphertext blocks. */
static inline void wgf_poly1305_plan(struct wgf_poly1305_plan *plan, uint8_t *last_group,
                                     size_t lanes, size_t ad_len, const uint8_t *ct, size_t ct_len)
{
    size_t full = ct_len / 16, rest = ct_len % 16;
    size_t extra = (rest != 0) + 1; /* padded partial block, length block */
    size_t total = full + extra;
    size_t from_ct = lanes - extra; /* whole ciphertext blocks in the last group */
    uint8_t *p = last_group;

    plan->groups = total / lanes;
    plan->head_blocks = total % lanes;
    memcpy(p, ct + (full - from_ct) * 16, from_ct * 16);
    p += from_ct * 16;
    if (rest) {
        memset(p, 0, 16);
        memcpy(p, ct + full * 16, rest);
        p += 16;
    }
    wgf_store_le64(p, (uint64_t)ad_len);
    wgf_store_le64(p + 8, (uint64_t)ct_len);
}

#endif
