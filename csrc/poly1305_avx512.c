/* Poly1305 AEAD tag with AVX-512 IFMA: eight blocks at a time, one per 64-bit lane of a zmm
 * register, in radix 2^44 (44 + 44 + 42 bits). vpmadd52luq/vpmadd52huq give the low and high 52
 * bits of each 52x52-bit limb product, so one field multiply is 9 + 9 instructions for eight
 * blocks. Lane accumulators are stepped by r^8; the last group of eight is multiplied by r^8..r^1
 * (one power per lane) and the lanes summed, which equals the serial Horner evaluation.
 * The associated data and the few leading ciphertext blocks that do not fill a group go through
 * the scalar core first (see wgf_poly1305_plan).
 *
 * Needs AVX-512F + AVX-512 IFMA at run time (checked here); without IFMA the AVX2 variant runs. */
#include "poly1305.h"

#include <immintrin.h>

#include "poly1305_simd.h"

#define WGF_ATTR_IFMA __attribute__((target("avx512f,avx512ifma")))

/* Below this many whole ciphertext blocks the r^2..r^8 setup costs more than it saves (measured
 * with bench/bench_poly1305.c, fresh key per message). */
#define WGF_IFMA_MIN_BLOCKS 16

struct p44x8 {
    __m512i l[3];
};

int wgf_poly1305_avx512_usable(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512ifma");
}

/* h * r per lane (s = 20 * r for limbs 1 and 2), then a carry pass run as three independent
 * chains so it adds little latency; output limbs stay below 2^44 + 2^16 (limb 2: 2^42 + 2^11). */
WGF_ATTR_IFMA static inline struct p44x8 mul_carry(const struct p44x8 *h, const struct p44x8 *r,
                                                    const struct p44x8 *s)
{
    const __m512i zero = _mm512_setzero_si512();
    const __m512i m44 = _mm512_set1_epi64(WGF_M44), m42 = _mm512_set1_epi64(WGF_M42);
    __m512i h0 = h->l[0], h1 = h->l[1], h2 = h->l[2];

    /* Low halves at the limb's own position; high halves sit 52 bits up, i.e. 8 bits above the
     * next limb (44 + 8 = 52), and limb 2's high half at 2^140 = 5 * 2^10 mod p. */
    __m512i d0 = _mm512_madd52lo_epu64(zero, h0, r->l[0]);
    __m512i d1 = _mm512_madd52lo_epu64(zero, h0, r->l[1]);
    __m512i d2 = _mm512_madd52lo_epu64(zero, h0, r->l[2]);
    __m512i e0 = _mm512_madd52hi_epu64(zero, h0, r->l[0]);
    __m512i e1 = _mm512_madd52hi_epu64(zero, h0, r->l[1]);
    __m512i e2 = _mm512_madd52hi_epu64(zero, h0, r->l[2]);

    d0 = _mm512_madd52lo_epu64(d0, h1, s->l[2]);
    d1 = _mm512_madd52lo_epu64(d1, h1, r->l[0]);
    d2 = _mm512_madd52lo_epu64(d2, h1, r->l[1]);
    e0 = _mm512_madd52hi_epu64(e0, h1, s->l[2]);
    e1 = _mm512_madd52hi_epu64(e1, h1, r->l[0]);
    e2 = _mm512_madd52hi_epu64(e2, h1, r->l[1]);

    d0 = _mm512_madd52lo_epu64(d0, h2, s->l[1]);
    d1 = _mm512_madd52lo_epu64(d1, h2, s->l[2]);
    d2 = _mm512_madd52lo_epu64(d2, h2, r->l[0]);
    e0 = _mm512_madd52hi_epu64(e0, h2, s->l[1]);
    e1 = _mm512_madd52hi_epu64(e1, h2, s->l[2]);
    e2 = _mm512_madd52hi_epu64(e2, h2, r->l[0]);

    d1 = _mm512_add_epi64(d1, _mm512_slli_epi64(e0, 8));
    d2 = _mm512_add_epi64(d2, _mm512_slli_epi64(e1, 8));
    d0 = _mm512_add_epi64(d0, _mm512_add_epi64(_mm512_slli_epi64(e2, 10),
                                               _mm512_slli_epi64(e2, 12)));

    __m512i c0 = _mm512_srli_epi64(d0, 44);
    __m512i c1 = _mm512_srli_epi64(d1, 44);
    __m512i c2 = _mm512_srli_epi64(d2, 42);
    d0 = _mm512_and_si512(d0, m44);
    d1 = _mm512_and_si512(d1, m44);
    d2 = _mm512_and_si512(d2, m42);
    struct p44x8 out = {{
        _mm512_add_epi64(d0, _mm512_add_epi64(c2, _mm512_slli_epi64(c2, 2))),
        _mm512_add_epi64(d1, c0),
        _mm512_add_epi64(d2, c1),
    }};
    return out;
}

/* h += eight message blocks m[0..128), in lane order block 0, 4, 1, 5, 2, 6, 3, 7 (what the
 * 128-bit-lane-wise unpack gives). */
WGF_ATTR_IFMA static inline void add_blocks(struct p44x8 *h, const uint8_t *m)
{
    const __m512i m44 = _mm512_set1_epi64(WGF_M44);
    const __m512i hibit = _mm512_set1_epi64((uint64_t)1 << 40); /* 2^128 = 2^(88 + 40) */
    __m512i a = _mm512_loadu_si512((const void *)m);
    __m512i b = _mm512_loadu_si512((const void *)(m + 64));
    __m512i lo = _mm512_unpacklo_epi64(a, b);
    __m512i hi = _mm512_unpackhi_epi64(a, b);

    __m512i t0 = _mm512_and_si512(lo, m44);
    __m512i t1 = _mm512_and_si512(
        _mm512_or_si512(_mm512_srli_epi64(lo, 44), _mm512_slli_epi64(hi, 20)), m44);
    __m512i t2 = _mm512_or_si512(_mm512_srli_epi64(hi, 24), hibit);

    h->l[0] = _mm512_add_epi64(h->l[0], t0);
    h->l[1] = _mm512_add_epi64(h->l[1], t1);
    h->l[2] = _mm512_add_epi64(h->l[2], t2);
}

WGF_ATTR_IFMA static inline struct p44x8 times20(const struct p44x8 *r)
{
    struct p44x8 s;
    for (int i = 0; i < 3; i++)
        s.l[i] = _mm512_add_epi64(_mm512_slli_epi64(r->l[i], 4), _mm512_slli_epi64(r->l[i], 2));
    return s;
}

/* Zeroes len >= 64 bytes of key-dependent scratch with vector stores (the last one may overlap);
 * memset of these sizes becomes rep stos, whose start-up cost is felt per packet. */
WGF_ATTR_IFMA static inline void wipe(void *p, size_t len)
{
    uint8_t *b = p;
    for (size_t off = 0; off + 64 <= len; off += 64)
    {
        _mm512_storeu_si512((void *)(b + off), _mm512_setzero_si512());
        __asm__ volatile("" : : "r"(b) : "memory"); /* else GCC makes it memset again */
    }
    _mm512_storeu_si512((void *)(b + len - 64), _mm512_setzero_si512());
    __asm__ volatile("" : : "r"(p) : "memory");
}

/* Absorbs groups * 8 whole blocks (the first groups - 1 from m, the last from last_group)
 * starting from the scalar accumulator in st. */
WGF_ATTR_IFMA static void blocks_ifma(struct wgf_poly1305_state *st, const uint8_t *m,
                                      size_t groups, const uint8_t last_group[128])
{
    struct wgf_p44 p[9];
    /* Powers by doubling so the dependent chain is three multiplies deep, not seven. */
    p[1] = wgf_p44_from_r(&st->r);
    p[2] = wgf_p44_mul(p[1], p[1]);
    p[3] = wgf_p44_mul(p[2], p[1]);
    p[4] = wgf_p44_mul(p[2], p[2]);
    p[5] = wgf_p44_mul(p[4], p[1]);
    p[6] = wgf_p44_mul(p[4], p[2]);
    p[7] = wgf_p44_mul(p[4], p[3]);
    p[8] = wgf_p44_mul(p[4], p[4]);

    /* Lane j holds block 0, 4, 1, 5, 2, 6, 3, 7 of the last group: block b needs r^(8-b). */
    static const int lane_power[8] = {8, 4, 7, 3, 6, 2, 5, 1};
    uint64_t lanes[3][8] __attribute__((aligned(64)));
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 8; j++)
            lanes[i][j] = p[lane_power[j]].l[i];

    uint64_t h0 = st->h0, h1 = st->h1, h2 = st->h2;
    const uint64_t h44[3] = {h0 & WGF_M44, (h0 >> 44 | h1 << 20) & WGF_M44, h1 >> 24 | h2 << 40};

    struct p44x8 r8, last, h;
    for (int i = 0; i < 3; i++) {
        r8.l[i] = _mm512_set1_epi64((long long)p[8].l[i]);
        last.l[i] = _mm512_load_si512((const void *)lanes[i]);
        /* The running accumulator enters with the first block, in lane 0. */
        h.l[i] = _mm512_zextsi128_si512(_mm_cvtsi64_si128((long long)h44[i]));
    }
    struct p44x8 s8 = times20(&r8), slast = times20(&last);

    for (size_t g = 1; g < groups; g++) {
        add_blocks(&h, m);
        h = mul_carry(&h, &r8, &s8);
        m += 128;
    }
    add_blocks(&h, last_group);
    h = mul_carry(&h, &last, &slast);

    /* Limbs are below 2^45, so the sum of eight lanes fits comfortably. */
    struct wgf_p44 sum = {{(uint64_t)_mm512_reduce_add_epi64(h.l[0]),
                           (uint64_t)_mm512_reduce_add_epi64(h.l[1]),
                           (uint64_t)_mm512_reduce_add_epi64(h.l[2])}};
    wgf_p44_to_h(sum, &st->h0, &st->h1, &st->h2);
    wgf_poly1305_fold(st);

    wipe(p, sizeof(p));
    wipe(lanes, sizeof(lanes));
}

void wgf_poly1305_aead_avx512(uint8_t tag[16], const uint8_t otk[32], const uint8_t *ad,
                              size_t ad_len, const uint8_t *ct, size_t ct_len)
{
    struct wgf_poly1305_state st;
    uint8_t last_group[128];
    struct wgf_poly1305_plan plan;

    if (ct_len / 16 < WGF_IFMA_MIN_BLOCKS || !wgf_poly1305_avx512_usable()) {
        /* The AVX2 code takes over (and itself hands short messages to scalar). */
        wgf_poly1305_aead_avx2(tag, otk, ad, ad_len, ct, ct_len);
        return;
    }
    wgf_poly1305_plan(&plan, last_group, 8, ad_len, ct, ct_len);
    wgf_poly1305_init(&st, otk);
    wgf_poly1305_padded(&st, ad, ad_len);
    wgf_poly1305_blocks(&st, ct, plan.head_blocks, 1);
    blocks_ifma(&st, ct + plan.head_blocks * 16, plan.groups, last_group);
    wgf_poly1305_finish(&st, tag);
}

/* ---- Across messages: one message per lane ----
 *
 * A batch of same-length packets can run Poly1305 with each lane stepping its own message by its
 * own r (h = (h + m) * r, the plain Horner rule), so there are no powers r^2..r^8 to compute and
 * no per-message horizontal sum: at 1420 bytes that setup is ~190 cycles a packet. Up to sixteen
 * messages run as one or two passes of eight lanes. */

/* Eight lanes' block at offset off of eight messages: lane j reads src[j] + off. Even messages go
 * to the first register, odd ones to the second, so the 64-bit unpacks leave lane j = message j. */
WGF_ATTR_IFMA static inline void lanes_add_blocks(struct p44x8 *h, const uint8_t *const src[8],
                                                  size_t off)
{
    const __m512i m44 = _mm512_set1_epi64(WGF_M44);
    const __m512i hibit = _mm512_set1_epi64((uint64_t)1 << 40); /* 2^128 = 2^(88 + 40) */
    __m512i a = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(src[0] + off)));
    __m512i b = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(src[1] + off)));
    a = _mm512_inserti32x4(a, _mm_loadu_si128((const __m128i *)(src[2] + off)), 1);
    b = _mm512_inserti32x4(b, _mm_loadu_si128((const __m128i *)(src[3] + off)), 1);
    a = _mm512_inserti32x4(a, _mm_loadu_si128((const __m128i *)(src[4] + off)), 2);
    b = _mm512_inserti32x4(b, _mm_loadu_si128((const __m128i *)(src[5] + off)), 2);
    a = _mm512_inserti32x4(a, _mm_loadu_si128((const __m128i *)(src[6] + off)), 3);
    b = _mm512_inserti32x4(b, _mm_loadu_si128((const __m128i *)(src[7] + off)), 3);
    __m512i lo = _mm512_unpacklo_epi64(a, b);
    __m512i hi = _mm512_unpackhi_epi64(a, b);

    __m512i t0 = _mm512_and_si512(lo, m44);
    __m512i t1 = _mm512_and_si512(
        _mm512_or_si512(_mm512_srli_epi64(lo, 44), _mm512_slli_epi64(hi, 20)), m44);
    __m512i t2 = _mm512_or_si512(_mm512_srli_epi64(hi, 24), hibit);

    h->l[0] = _mm512_add_epi64(h->l[0], t0);
    h->l[1] = _mm512_add_epi64(h->l[1], t1);
    h->l[2] = _mm512_add_epi64(h->l[2], t2);
}

#define LANES 8

/* Eight lanes, one message each, stepped together; lanes at and above `used` repeat a real
 * message and their tags are not computed. A second chain of eight interleaved here measured
 * slower on Zen 4: the multiplies are throughput-bound on the one IFMA pipe, and the second
 * chain's registers spill. */
WGF_ATTR_IFMA static void lanes_run8(uint8_t *const tag[], const uint8_t *const otk[],
                                     const uint8_t *const ct[], size_t ct_len, size_t used)
{
    size_t full = ct_len / 16, rest = ct_len % 16;
    uint64_t rl[3][LANES] __attribute__((aligned(64)));
    uint64_t hl[3][LANES] __attribute__((aligned(64)));
    uint8_t pad[LANES][16]; /* each lane's zero-padded partial block */
    const uint8_t *pad_src[LANES];
    struct p44x8 h, r, s, len_block;

    for (size_t j = 0; j < LANES; j++) {
        struct wgf_poly1305_r key_r;
        const uint8_t *k = otk[j];
        wgf_poly1305_r_set(&key_r, wgf_le64(k) & WGF_POLY1305_CLAMP_LO,
                           wgf_le64(k + 8) & WGF_POLY1305_CLAMP_HI);
        struct wgf_p44 p = wgf_p44_from_r(&key_r);
        for (int i = 0; i < 3; i++)
            rl[i][j] = p.l[i];
    }
    for (int i = 0; i < 3; i++) {
        r.l[i] = _mm512_load_si512((const void *)rl[i]);
        h.l[i] = _mm512_setzero_si512();
    }
    s = times20(&r);

    for (size_t b = 0; b < full; b++) {
        lanes_add_blocks(&h, ct, 16 * b);
        h = mul_carry(&h, &r, &s);
    }
    if (rest) {
        for (size_t j = 0; j < LANES; j++) {
            memset(pad[j], 0, 16);
            memcpy(pad[j], ct[j] + 16 * full, rest);
            pad_src[j] = pad[j];
        }
        lanes_add_blocks(&h, pad_src, 0);
        h = mul_carry(&h, &r, &s);
    }
    /* The length block le64(ad_len = 0) || le64(ct_len) is the same in every lane. */
    uint64_t len_hi = (uint64_t)ct_len;
    len_block.l[0] = _mm512_setzero_si512();
    len_block.l[1] = _mm512_set1_epi64((long long)((len_hi << 20) & WGF_M44));
    len_block.l[2] = _mm512_set1_epi64((long long)(len_hi >> 24 | (uint64_t)1 << 40));
    for (int i = 0; i < 3; i++)
        h.l[i] = _mm512_add_epi64(h.l[i], len_block.l[i]);
    h = mul_carry(&h, &r, &s);
    for (int i = 0; i < 3; i++)
        _mm512_store_si512((void *)hl[i], h.l[i]);

    for (size_t j = 0; j < used; j++) {
        struct wgf_poly1305_state st;
        struct wgf_p44 acc = {{hl[0][j], hl[1][j], hl[2][j]}};
        wgf_poly1305_init(&st, otk[j]);
        wgf_p44_to_h(acc, &st.h0, &st.h1, &st.h2);
        wgf_poly1305_fold(&st);
        wgf_poly1305_finish(&st, tag[j]); /* wipes st */
    }
    wipe(rl, sizeof(rl));
    wipe(hl, sizeof(hl));
}

int wgf_poly1305_aead_lanes_avx512(uint8_t *const tag[], const uint8_t *const otk[],
                                   const uint8_t *const ct[], size_t ct_len, size_t n)
{
    uint8_t *tags[2 * LANES];
    const uint8_t *otks[2 * LANES], *cts[2 * LANES];

    if (n == 0 || n > WGF_POLY1305_LANES_MAX || !wgf_poly1305_avx512_usable())
        return -1;
    /* Unused lanes redo message 0 (same cost as idling, no special case); no tag comes out. */
    for (size_t j = 0; j < 2 * LANES; j++) {
        tags[j] = j < n ? tag[j] : NULL;
        otks[j] = j < n ? otk[j] : otk[0];
        cts[j] = j < n ? ct[j] : ct[0];
    }
    lanes_run8(tags, otks, cts, ct_len, n < LANES ? n : LANES);
    if (n > LANES)
        lanes_run8(tags + LANES, otks + LANES, cts + LANES, ct_len, n - LANES);
    return 0;
}
