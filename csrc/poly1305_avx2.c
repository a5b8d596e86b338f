/* Poly1305 AEAD tag with AVX2: four blocks at a time, one per 64-bit lane, in radix 2^26 so that
 * vpmuludq (32x32->64) forms every limb product. Lane accumulators are stepped by r^4; the last
 * group of four is multiplied by r^4, r^3, r^2, r^1 (one per lane) and the lanes summed, which
 * equals the serial Horner evaluation. The associated data and the few leading ciphertext blocks
 * that do not fill a group go through the scalar core first (see wgf_poly1305_plan). */
#include "poly1305.h"

#include <immintrin.h>

#include "poly1305_simd.h"

#define WGF_ATTR_AVX2 __attribute__((target("avx2")))

/* Below this many whole ciphertext blocks the r^2..r^4 setup costs more than it saves (measured
 * with bench/bench_poly1305.c, fresh key per message). */
#define WGF_AVX2_MIN_BLOCKS 12

/* Five 26-bit limbs of one field element per 64-bit lane. */
struct p26x4 {
    __m256i l[5];
};

/* The five 26-bit limbs of h0 + h1*2^64 + h2*2^128 (h2 <= 4 keeps limb 4 below 2^27). */
static inline void to_p26(uint64_t out[5], uint64_t h0, uint64_t h1, uint64_t h2)
{
    out[0] = h0 & WGF_M26;
    out[1] = (h0 >> 26) & WGF_M26;
    out[2] = (h0 >> 52 | h1 << 12) & WGF_M26;
    out[3] = (h1 >> 14) & WGF_M26;
    out[4] = h1 >> 40 | h2 << 24;
}

static inline void p44_to_p26(uint64_t out[5], struct wgf_p44 a)
{
    uint64_t h0, h1, h2;
    wgf_p44_to_h(a, &h0, &h1, &h2);
    to_p26(out, h0, h1, h2);
}

/* d = h * r per lane, with s = 5 * r folding limb products at 2^130 and up; then a carry pass
 * that leaves every limb below 2^26 plus a small carry. */
WGF_ATTR_AVX2 static inline struct p26x4 mul_carry(const struct p26x4 *h, const struct p26x4 *r,
                                                    const struct p26x4 *s)
{
    const __m256i m26 = _mm256_set1_epi64x(WGF_M26);
    __m256i h0 = h->l[0], h1 = h->l[1], h2 = h->l[2], h3 = h->l[3], h4 = h->l[4];
    __m256i d0, d1, d2, d3, d4, c;

    d0 = _mm256_mul_epu32(h0, r->l[0]);
    d1 = _mm256_mul_epu32(h0, r->l[1]);
    d2 = _mm256_mul_epu32(h0, r->l[2]);
    d3 = _mm256_mul_epu32(h0, r->l[3]);
    d4 = _mm256_mul_epu32(h0, r->l[4]);

    d0 = _mm256_add_epi64(d0, _mm256_mul_epu32(h1, s->l[4]));
    d1 = _mm256_add_epi64(d1, _mm256_mul_epu32(h1, r->l[0]));
    d2 = _mm256_add_epi64(d2, _mm256_mul_epu32(h1, r->l[1]));
    d3 = _mm256_add_epi64(d3, _mm256_mul_epu32(h1, r->l[2]));
    d4 = _mm256_add_epi64(d4, _mm256_mul_epu32(h1, r->l[3]));

    d0 = _mm256_add_epi64(d0, _mm256_mul_epu32(h2, s->l[3]));
    d1 = _mm256_add_epi64(d1, _mm256_mul_epu32(h2, s->l[4]));
    d2 = _mm256_add_epi64(d2, _mm256_mul_epu32(h2, r->l[0]));
    d3 = _mm256_add_epi64(d3, _mm256_mul_epu32(h2, r->l[1]));
    d4 = _mm256_add_epi64(d4, _mm256_mul_epu32(h2, r->l[2]));

    d0 = _mm256_add_epi64(d0, _mm256_mul_epu32(h3, s->l[2]));
    d1 = _mm256_add_epi64(d1, _mm256_mul_epu32(h3, s->l[3]));
    d2 = _mm256_add_epi64(d2, _mm256_mul_epu32(h3, s->l[4]));
    d3 = _mm256_add_epi64(d3, _mm256_mul_epu32(h3, r->l[0]));
    d4 = _mm256_add_epi64(d4, _mm256_mul_epu32(h3, r->l[1]));

    d0 = _mm256_add_epi64(d0, _mm256_mul_epu32(h4, s->l[1]));
    d1 = _mm256_add_epi64(d1, _mm256_mul_epu32(h4, s->l[2]));
    d2 = _mm256_add_epi64(d2, _mm256_mul_epu32(h4, s->l[3]));
    d3 = _mm256_add_epi64(d3, _mm256_mul_epu32(h4, s->l[4]));
    d4 = _mm256_add_epi64(d4, _mm256_mul_epu32(h4, r->l[0]));

    /* Two interleaved carry chains (0->1->2->3 and 3->4->0->1), as in the 26-bit donna code. */
    c = _mm256_srli_epi64(d0, 26);
    d0 = _mm256_and_si256(d0, m26);
    d1 = _mm256_add_epi64(d1, c);
    c = _mm256_srli_epi64(d3, 26);
    d3 = _mm256_and_si256(d3, m26);
    d4 = _mm256_add_epi64(d4, c);
    c = _mm256_srli_epi64(d1, 26);
    d1 = _mm256_and_si256(d1, m26);
    d2 = _mm256_add_epi64(d2, c);
    c = _mm256_srli_epi64(d4, 26);
    d4 = _mm256_and_si256(d4, m26);
    d0 = _mm256_add_epi64(d0, _mm256_add_epi64(c, _mm256_slli_epi64(c, 2)));
    c = _mm256_srli_epi64(d2, 26);
    d2 = _mm256_and_si256(d2, m26);
    d3 = _mm256_add_epi64(d3, c);
    c = _mm256_srli_epi64(d0, 26);
    d0 = _mm256_and_si256(d0, m26);
    d1 = _mm256_add_epi64(d1, c);
    c = _mm256_srli_epi64(d3, 26);
    d3 = _mm256_and_si256(d3, m26);
    d4 = _mm256_add_epi64(d4, c);

    struct p26x4 out = {{d0, d1, d2, d3, d4}};
    return out;
}

/* h += four message blocks m[0..64), in lane order block 0, 2, 1, 3 (what unpack gives). */
WGF_ATTR_AVX2 static inline void add_blocks(struct p26x4 *h, const uint8_t *m)
{
    const __m256i m26 = _mm256_set1_epi64x(WGF_M26);
    const __m256i hibit = _mm256_set1_epi64x((uint64_t)1 << 24);
    __m256i a = _mm256_loadu_si256((const __m256i *)m);
    __m256i b = _mm256_loadu_si256((const __m256i *)(m + 32));
    __m256i lo = _mm256_unpacklo_epi64(a, b);
    __m256i hi = _mm256_unpackhi_epi64(a, b);

    __m256i t0 = _mm256_and_si256(lo, m26);
    __m256i t1 = _mm256_and_si256(_mm256_srli_epi64(lo, 26), m26);
    __m256i t2 = _mm256_and_si256(
        _mm256_or_si256(_mm256_srli_epi64(lo, 52), _mm256_slli_epi64(hi, 12)), m26);
    __m256i t3 = _mm256_and_si256(_mm256_srli_epi64(hi, 14), m26);
    __m256i t4 = _mm256_or_si256(_mm256_srli_epi64(hi, 40), hibit);

    h->l[0] = _mm256_add_epi64(h->l[0], t0);
    h->l[1] = _mm256_add_epi64(h->l[1], t1);
    h->l[2] = _mm256_add_epi64(h->l[2], t2);
    h->l[3] = _mm256_add_epi64(h->l[3], t3);
    h->l[4] = _mm256_add_epi64(h->l[4], t4);
}

WGF_ATTR_AVX2 static inline struct p26x4 times5(const struct p26x4 *r)
{
    struct p26x4 s;
    for (int i = 0; i < 5; i++)
        s.l[i] = _mm256_add_epi64(r->l[i], _mm256_slli_epi64(r->l[i], 2));
    return s;
}

/* Zeroes len >= 32 bytes of key-dependent scratch with vector stores (the last one may overlap);
 * memset of these sizes becomes rep stos, whose start-up cost is felt per packet. */
WGF_ATTR_AVX2 static inline void wipe(void *p, size_t len)
{
    uint8_t *b = p;
    for (size_t off = 0; off + 32 <= len; off += 32)
    {
        _mm256_storeu_si256((__m256i *)(b + off), _mm256_setzero_si256());
        __asm__ volatile("" : : "r"(b) : "memory"); /* else GCC makes it memset again */
    }
    _mm256_storeu_si256((__m256i *)(b + len - 32), _mm256_setzero_si256());
    __asm__ volatile("" : : "r"(p) : "memory");
}

/* Absorbs groups * 4 whole blocks (the first groups - 1 from m, the last from last_group)
 * starting from the scalar accumulator in st. */
WGF_ATTR_AVX2 static void blocks_avx2(struct wgf_poly1305_state *st, const uint8_t *m,
                                      size_t groups, const uint8_t last_group[64])
{
    struct wgf_p44 p[5];
    uint64_t k[5][5], h26[5];
    p[1] = wgf_p44_from_r(&st->r);
    p[2] = wgf_p44_mul(p[1], p[1]);
    p[3] = wgf_p44_mul(p[2], p[1]);
    p[4] = wgf_p44_mul(p[2], p[2]);
    for (int i = 1; i <= 4; i++)
        p44_to_p26(k[i], p[i]);
    to_p26(h26, st->h0, st->h1, st->h2);

    /* Lane j holds block 0, 2, 1, 3 of the last group: it needs r^4, r^2, r^3, r^1. */
    static const int lane_power[4] = {4, 2, 3, 1};
    uint64_t lanes[5][4] __attribute__((aligned(32)));
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++)
            lanes[i][j] = k[lane_power[j]][i];

    struct p26x4 r4, last, h;
    for (int i = 0; i < 5; i++) {
        r4.l[i] = _mm256_set1_epi64x((long long)k[4][i]);
        last.l[i] = _mm256_load_si256((const __m256i *)lanes[i]);
        /* The running accumulator enters with the first block, in lane 0. */
        h.l[i] = _mm256_zextsi128_si256(_mm_cvtsi64_si128((long long)h26[i]));
    }
    struct p26x4 s4 = times5(&r4), slast = times5(&last);

    for (size_t g = 1; g < groups; g++) {
        add_blocks(&h, m);
        h = mul_carry(&h, &r4, &s4);
        m += 64;
    }
    add_blocks(&h, last_group);
    h = mul_carry(&h, &last, &slast);

    /* Sum the lanes: each limb is below 2^27, so four of them fit easily. */
    uint64_t sum[5];
    for (int i = 0; i < 5; i++) {
        __m128i x = _mm_add_epi64(_mm256_castsi256_si128(h.l[i]),
                                  _mm256_extracti128_si256(h.l[i], 1));
        sum[i] = (uint64_t)_mm_cvtsi128_si64(x) + (uint64_t)_mm_extract_epi64(x, 1);
    }
    wgf_u128 t = (wgf_u128)sum[0] + ((wgf_u128)sum[1] << 26) + ((wgf_u128)sum[2] << 52);
    st->h0 = (uint64_t)t;
    t = (t >> 64) + ((wgf_u128)sum[3] << 14) + ((wgf_u128)sum[4] << 40);
    st->h1 = (uint64_t)t;
    st->h2 = (uint64_t)(t >> 64);
    wgf_poly1305_fold(st);

    wipe(p, sizeof(p));
    wipe(k, sizeof(k));
    wipe(lanes, sizeof(lanes));
}

void wgf_poly1305_aead_avx2(uint8_t tag[16], const uint8_t otk[32], const uint8_t *ad,
                            size_t ad_len, const uint8_t *ct, size_t ct_len)
{
    struct wgf_poly1305_state st;
    uint8_t last_group[64];
    struct wgf_poly1305_plan plan;

    if (ct_len / 16 < WGF_AVX2_MIN_BLOCKS) {
        wgf_poly1305_aead_scalar(tag, otk, ad, ad_len, ct, ct_len);
        return;
    }
    wgf_poly1305_plan(&plan, last_group, 4, ad_len, ct, ct_len);
    wgf_poly1305_init(&st, otk);
    wgf_poly1305_padded(&st, ad, ad_len);
    wgf_poly1305_blocks(&st, ct, plan.head_blocks, 1);
    blocks_avx2(&st, ct + plan.head_blocks * 16, plan.groups, last_group);
    wgf_poly1305_finish(&st, tag);
}
