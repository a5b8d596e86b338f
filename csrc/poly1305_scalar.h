/* Portable scalar Poly1305 core shared by every implementation (the SIMD ones use it for the
 * associated data, short messages, tails and the final reduction).
 *
 * The accumulator h is kept in radix 2^64: h = h0 + h1*2^64 + h2*2^128 with h2 a few bits, only
 * partially reduced modulo p = 2^130 - 5 between blocks. The key half r is clamped (RFC 8439
 * section 2.5), so r1 is a multiple of 4 and s1 = r1 + r1/4 = 5*r1/4 folds the 2^128 overflow
 * back (2^130 = 5 mod p) with two 64x64->128 multiplies per limb product.
 *
 * Everything is branch-free in the key and message bytes; only lengths steer control flow. */
#ifndef WGF_POLY1305_SCALAR_H
#define WGF_POLY1305_SCALAR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef unsigned __int128 wgf_u128;

/* The clamp of RFC 8439 section 2.5: r &= 0x0ffffffc0ffffffc0ffffffc0fffffff. */
#define WGF_POLY1305_CLAMP_LO 0x0ffffffc0fffffffULL
#define WGF_POLY1305_CLAMP_HI 0x0ffffffc0ffffffcULL

/* Zeroes key-dependent scratch. The empty asm claims to read the memory, so the compiler cannot
 * drop the memset as a dead store; unlike a volatile byte loop it stays a few vector stores. */
static inline void wgf_poly1305_wipe(void *p, size_t len)
{
    memset(p, 0, len);
    __asm__ volatile("" : : "r"(p) : "memory");
}

struct wgf_poly1305_r {
    uint64_t r0, r1; /* r, below 2^124 */
    uint64_t s1;     /* 5 * r1 / 4 */
};

struct wgf_poly1305_state {
    uint64_t h0, h1, h2; /* accumulator, partially reduced */
    struct wgf_poly1305_r r;
    uint64_t pad0, pad1; /* s, the second key half, added at the end */
};

static inline uint64_t wgf_le64(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

static inline void wgf_store_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void wgf_poly1305_r_set(struct wgf_poly1305_r *r, uint64_t r0, uint64_t r1)
{
    r->r0 = r0;
    r->r1 = r1;
    r->s1 = r1 + (r1 >> 2);
}

static inline void wgf_poly1305_init(struct wgf_poly1305_state *st, const uint8_t key[32])
{
    st->h0 = st->h1 = st->h2 = 0;
    wgf_poly1305_r_set(&st->r, wgf_le64(key) & WGF_POLY1305_CLAMP_LO,
                       wgf_le64(key + 8) & WGF_POLY1305_CLAMP_HI);
    st->pad0 = wgf_le64(key + 16);
    st->pad1 = wgf_le64(key + 24);
}

/* h = h * r, partially reduced: on entry h2 < 2^8 or so, on return h2 <= 4. */
static inline void wgf_poly1305_mul(uint64_t *h0, uint64_t *h1, uint64_t *h2,
                                    const struct wgf_poly1305_r *r)
{
    wgf_u128 d0 = (wgf_u128)*h0 * r->r0 + (wgf_u128)*h1 * r->s1;
    wgf_u128 d1 = (wgf_u128)*h0 * r->r1 + (wgf_u128)*h1 * r->r0 + (wgf_u128)(*h2 * r->s1);
    uint64_t d2 = *h2 * r->r0;

    d1 += (uint64_t)(d0 >> 64);
    d2 += (uint64_t)(d1 >> 64);
    /* Bits at 2^130 and up: d2 >> 2, worth 5 each; (d2 & ~3) + (d2 >> 2) is 5 * (d2 >> 2). */
    uint64_t fold = (d2 & ~(uint64_t)3) + (d2 >> 2);
    wgf_u128 t = (wgf_u128)(uint64_t)d0 + fold;
    *h0 = (uint64_t)t;
    t = (wgf_u128)(uint64_t)d1 + (uint64_t)(t >> 64);
    *h1 = (uint64_t)t;
    *h2 = (d2 & 3) + (uint64_t)(t >> 64);
}

/* Absorbs nblocks full 16-byte blocks; hibit is 1 for whole blocks (the 2^128 pad bit), 0 for
 * a final partial block that already carries its own 0x01 byte. */
static inline void wgf_poly1305_blocks(struct wgf_poly1305_state *st, const uint8_t *m,
                                       size_t nblocks, uint64_t hibit)
{
    uint64_t h0 = st->h0, h1 = st->h1, h2 = st->h2;
    const struct wgf_poly1305_r r = st->r;

    while (nblocks--) {
        wgf_u128 t = (wgf_u128)h0 + wgf_le64(m);
        h0 = (uint64_t)t;
        t = (wgf_u128)h1 + wgf_le64(m + 8) + (uint64_t)(t >> 64);
        h1 = (uint64_t)t;
        h2 += (uint64_t)(t >> 64) + hibit;
        wgf_poly1305_mul(&h0, &h1, &h2, &r);
        m += 16;
    }
    st->h0 = h0;
    st->h1 = h1;
    st->h2 = h2;
}

/* Absorbs len bytes zero-padded to a multiple of 16 (the AEAD's pad16). */
static inline void wgf_poly1305_padded(struct wgf_poly1305_state *st, const uint8_t *m, size_t len)
{
    size_t full = len / 16, rest = len % 16;
    wgf_poly1305_blocks(st, m, full, 1);
    if (rest) {
        uint8_t block[16] = {0};
        for (size_t i = 0; i < rest; i++)
            block[i] = m[full * 16 + i];
        wgf_poly1305_blocks(st, block, 1, 1);
    }
}

/* Absorbs the AEAD's closing block le64(ad_len) || le64(ct_len). */
static inline void wgf_poly1305_lengths(struct wgf_poly1305_state *st, size_t ad_len,
                                        size_t ct_len)
{
    uint8_t block[16];
    wgf_store_le64(block, (uint64_t)ad_len);
    wgf_store_le64(block + 8, (uint64_t)ct_len);
    wgf_poly1305_blocks(st, block, 1, 1);
}

/* tag = (h mod p) + s mod 2^128, then wipes the state. */
static inline void wgf_poly1305_finish(struct wgf_poly1305_state *st, uint8_t tag[16])
{
    uint64_t h0 = st->h0, h1 = st->h1, h2 = st->h2;

    /* Fold everything above 2^130 so h < 2^130 + 5*2^8 < 2p. */
    uint64_t fold = (h2 & ~(uint64_t)3) + (h2 >> 2);
    h2 &= 3;
    wgf_u128 t = (wgf_u128)h0 + fold;
    h0 = (uint64_t)t;
    t = (wgf_u128)h1 + (uint64_t)(t >> 64);
    h1 = (uint64_t)t;
    h2 += (uint64_t)(t >> 64);

    /* g = h + 5 - 2^130; keep g when h >= p (bit 130 of h + 5 is set), else h. */
    t = (wgf_u128)h0 + 5;
    uint64_t g0 = (uint64_t)t;
    t = (wgf_u128)h1 + (uint64_t)(t >> 64);
    uint64_t g1 = (uint64_t)t;
    uint64_t g2 = h2 + (uint64_t)(t >> 64);
    uint64_t use_g = 0 - (g2 >> 2); /* all ones or zero */
    h0 = (h0 & ~use_g) | (g0 & use_g);
    h1 = (h1 & ~use_g) | (g1 & use_g);

    t = (wgf_u128)h0 + st->pad0;
    h0 = (uint64_t)t;
    h1 = h1 + st->pad1 + (uint64_t)(t >> 64);
    wgf_store_le64(tag, h0);
    wgf_store_le64(tag + 8, h1);

    wgf_poly1305_wipe(st, sizeof(*st));
}

#endif
