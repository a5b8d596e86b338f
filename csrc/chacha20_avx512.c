/* ChaCha20 with AVX-512 (F+VL+BW): 16 blocks per pass, one block per 32-bit lane of 16 zmm
 * registers (register w holds state word w of all 16 blocks), then a 16x16 transpose so each zmm
 * holds one 64-byte keystream block. VPROLD does every rotation in one instruction, and byte-
 * masked loads/stores handle any tail without reading or writing past the buffer. Short
 * remainders use the same code on 8 (ymm) or 4 (xmm) lanes so a lone 1420-byte message costs
 * 16 + 8 blocks rather than 32; the grouped form (wgf_chacha20_jobs_avx512) gives each lane its
 * own (counter, nonce), so a batch of packets wastes no lanes at all except in its last pass.
 *
 * Compiled for AVX-512 by the pragma below, never by command-line flags; aead.c calls it only
 * after cpu.c confirmed the CPU and OS support it. */
#if defined(__x86_64__)

#pragma GCC target("avx512f,avx512vl,avx512bw")

#include <immintrin.h>
#include <string.h>

#include "memzero.h"
#include "chacha20.h"

#define CHACHA20_DOUBLE_ROUNDS 10
/* The hot pass and its consumer are inlined so the keystream never leaves the registers. */
#define HOT static inline __attribute__((always_inline))

static inline uint32_t load_le32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4); /* x86 is little-endian */
    return v;
}

/* The 16-word initial state with the block counter word for the first lane. */
struct chacha_state {
    uint32_t w[16];
};

static inline void state_init(struct chacha_state *s, const uint8_t key[32],
                              const uint8_t nonce[12], uint32_t block)
{
    s->w[0] = 0x61707865u; /* "expand 32-byte k" */
    s->w[1] = 0x3320646eu;
    s->w[2] = 0x79622d32u;
    s->w[3] = 0x6b206574u;
    for (int i = 0; i < 8; i++)
        s->w[4 + i] = load_le32(key + 4 * i);
    s->w[12] = block;
    for (int i = 0; i < 3; i++)
        s->w[13 + i] = load_le32(nonce + 4 * i);
}

/* Quarter round on four vectors, for any lane width (ADD/XOR/ROL bound by the caller). */
#define QUARTER_ROUND(a, b, c, d)                                                              \
    do {                                                                                       \
        a = ADD(a, b); d = XOR(d, a); d = ROL(d, 16);                                          \
        c = ADD(c, d); b = XOR(b, c); b = ROL(b, 12);                                          \
        a = ADD(a, b); d = XOR(d, a); d = ROL(d, 8);                                           \
        c = ADD(c, d); b = XOR(b, c); b = ROL(b, 7);                                           \
    } while (0)

#define DOUBLE_ROUND(x)                                                                        \
    do {                                                                                       \
        QUARTER_ROUND(x[0], x[4], x[8], x[12]);                                                \
        QUARTER_ROUND(x[1], x[5], x[9], x[13]);                                                \
        QUARTER_ROUND(x[2], x[6], x[10], x[14]);                                               \
        QUARTER_ROUND(x[3], x[7], x[11], x[15]);                                               \
        QUARTER_ROUND(x[0], x[5], x[10], x[15]);                                               \
        QUARTER_ROUND(x[1], x[6], x[11], x[12]);                                               \
        QUARTER_ROUND(x[2], x[7], x[8], x[13]);                                                \
        QUARTER_ROUND(x[3], x[4], x[9], x[14]);                                                \
    } while (0)

/* Initial states of consecutive blocks (w[12] + lane) of one stream, for 16, 8 or 4 lanes.
 * The 32-bit lane add makes the counter wrap exactly like the scalar one. */
static inline void init16(__m512i init[16], const struct chacha_state *s)
{
    for (int i = 0; i < 16; i++)
        init[i] = _mm512_set1_epi32((int)s->w[i]);
    init[12] = _mm512_add_epi32(
        init[12], _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
}

static inline void init8(__m256i init[16], const struct chacha_state *s)
{
    for (int i = 0; i < 16; i++)
        init[i] = _mm256_set1_epi32((int)s->w[i]);
    init[12] = _mm256_add_epi32(init[12], _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static inline void init4(__m128i init[16], const struct chacha_state *s)
{
    for (int i = 0; i < 16; i++)
        init[i] = _mm_set1_epi32((int)s->w[i]);
    init[12] = _mm_add_epi32(init[12], _mm_setr_epi32(0, 1, 2, 3));
}

/* 16 blocks, one per lane of the initial states init: ks[b] = keystream block of lane b. */
HOT void pass16(__m512i ks[16], const __m512i init[16])
{
#define ADD _mm512_add_epi32
#define XOR _mm512_xor_si512
#define ROL _mm512_rol_epi32
    __m512i x[16];
    for (int i = 0; i < 16; i++)
        x[i] = init[i];
    for (int r = 0; r < CHACHA20_DOUBLE_ROUNDS; r++)
        DOUBLE_ROUND(x);
    for (int i = 0; i < 16; i++)
        x[i] = ADD(x[i], init[i]);
#undef ADD
#undef XOR
#undef ROL
    /* Transpose. After the 32- and 64-bit unpacks, y[g][j] has in 128-bit lane k the words
     * 4g..4g+3 of block 4k+j; the two 128-bit-lane shuffles then gather block 4k+j. */
    __m512i y[4][4];
    for (int g = 0; g < 4; g++) {
        __m512i t0 = _mm512_unpacklo_epi32(x[4 * g + 0], x[4 * g + 1]);
        __m512i t1 = _mm512_unpackhi_epi32(x[4 * g + 0], x[4 * g + 1]);
        __m512i t2 = _mm512_unpacklo_epi32(x[4 * g + 2], x[4 * g + 3]);
        __m512i t3 = _mm512_unpackhi_epi32(x[4 * g + 2], x[4 * g + 3]);
        y[g][0] = _mm512_unpacklo_epi64(t0, t2);
        y[g][1] = _mm512_unpackhi_epi64(t0, t2);
        y[g][2] = _mm512_unpacklo_epi64(t1, t3);
        y[g][3] = _mm512_unpackhi_epi64(t1, t3);
    }
    for (int j = 0; j < 4; j++) {
        __m512i p = _mm512_shuffle_i32x4(y[0][j], y[1][j], 0x44); /* A0 A1 B0 B1 */
        __m512i q = _mm512_shuffle_i32x4(y[2][j], y[3][j], 0x44); /* C0 C1 D0 D1 */
        __m512i r = _mm512_shuffle_i32x4(y[0][j], y[1][j], 0xee); /* A2 A3 B2 B3 */
        __m512i t = _mm512_shuffle_i32x4(y[2][j], y[3][j], 0xee); /* C2 C3 D2 D3 */
        ks[0 + j] = _mm512_shuffle_i32x4(p, q, 0x88);             /* A0 B0 C0 D0 */
        ks[4 + j] = _mm512_shuffle_i32x4(p, q, 0xdd);
        ks[8 + j] = _mm512_shuffle_i32x4(r, t, 0x88);
        ks[12 + j] = _mm512_shuffle_i32x4(r, t, 0xdd);
    }
}

/* 8 blocks on ymm lanes: ks[b] = keystream block of lane b, b < 8. */
static inline void pass8(__m512i ks[8], const __m256i init[16])
{
#define ADD _mm256_add_epi32
#define XOR _mm256_xor_si256
#define ROL _mm256_rol_epi32
    __m256i x[16];
    for (int i = 0; i < 16; i++)
        x[i] = init[i];
    for (int r = 0; r < CHACHA20_DOUBLE_ROUNDS; r++)
        DOUBLE_ROUND(x);
    for (int i = 0; i < 16; i++)
        x[i] = ADD(x[i], init[i]);
#undef ADD
#undef XOR
#undef ROL
    __m256i y[4][4];
    for (int g = 0; g < 4; g++) {
        __m256i t0 = _mm256_unpacklo_epi32(x[4 * g + 0], x[4 * g + 1]);
        __m256i t1 = _mm256_unpackhi_epi32(x[4 * g + 0], x[4 * g + 1]);
        __m256i t2 = _mm256_unpacklo_epi32(x[4 * g + 2], x[4 * g + 3]);
        __m256i t3 = _mm256_unpackhi_epi32(x[4 * g + 2], x[4 * g + 3]);
        y[g][0] = _mm256_unpacklo_epi64(t0, t2);
        y[g][1] = _mm256_unpackhi_epi64(t0, t2);
        y[g][2] = _mm256_unpacklo_epi64(t1, t3);
        y[g][3] = _mm256_unpackhi_epi64(t1, t3);
    }
    for (int j = 0; j < 4; j++) {
        __m256i lo0 = _mm256_permute2x128_si256(y[0][j], y[1][j], 0x20);
        __m256i hi0 = _mm256_permute2x128_si256(y[2][j], y[3][j], 0x20);
        __m256i lo1 = _mm256_permute2x128_si256(y[0][j], y[1][j], 0x31);
        __m256i hi1 = _mm256_permute2x128_si256(y[2][j], y[3][j], 0x31);
        ks[j] = _mm512_inserti64x4(_mm512_castsi256_si512(lo0), hi0, 1);
        ks[4 + j] = _mm512_inserti64x4(_mm512_castsi256_si512(lo1), hi1, 1);
    }
}

/* 4 blocks on xmm lanes: ks[b] = keystream block of lane b, b < 4. */
static inline void pass4(__m512i ks[4], const __m128i init[16])
{
#define ADD _mm_add_epi32
#define XOR _mm_xor_si128
#define ROL _mm_rol_epi32
    __m128i x[16];
    for (int i = 0; i < 16; i++)
        x[i] = init[i];
    for (int r = 0; r < CHACHA20_DOUBLE_ROUNDS; r++)
        DOUBLE_ROUND(x);
    for (int i = 0; i < 16; i++)
        x[i] = ADD(x[i], init[i]);
#undef ADD
#undef XOR
#undef ROL
    __m128i y[4][4];
    for (int g = 0; g < 4; g++) {
        __m128i t0 = _mm_unpacklo_epi32(x[4 * g + 0], x[4 * g + 1]);
        __m128i t1 = _mm_unpackhi_epi32(x[4 * g + 0], x[4 * g + 1]);
        __m128i t2 = _mm_unpacklo_epi32(x[4 * g + 2], x[4 * g + 3]);
        __m128i t3 = _mm_unpackhi_epi32(x[4 * g + 2], x[4 * g + 3]);
        y[g][0] = _mm_unpacklo_epi64(t0, t2);
        y[g][1] = _mm_unpackhi_epi64(t0, t2);
        y[g][2] = _mm_unpacklo_epi64(t1, t3);
        y[g][3] = _mm_unpackhi_epi64(t1, t3);
    }
    for (int j = 0; j < 4; j++) {
        __m512i v = _mm512_castsi128_si512(y[0][j]);
        v = _mm512_inserti32x4(v, y[1][j], 1);
        v = _mm512_inserti32x4(v, y[2][j], 2);
        ks[j] = _mm512_inserti32x4(v, y[3][j], 3);
    }
}

/* Where keystream blocks go: the first one to the one-time key if otk is set, then each one
 * XORed over the next (up to) 64 bytes of in -> out. */
struct chacha_sink {
    uint8_t *out;
    const uint8_t *in;
    size_t len;
    uint8_t *otk;
};

static inline size_t sink_blocks(const struct chacha_sink *k)
{
    return (k->len + 63) / 64 + (k->otk != NULL);
}

static inline void sink_emit(struct chacha_sink *k, const __m512i *ks, size_t nblocks)
{
    for (size_t b = 0; b < nblocks; b++) {
        if (k->otk != NULL) {
            _mm256_storeu_si256((__m256i *)k->otk, _mm512_castsi512_si256(ks[b]));
            k->otk = NULL;
        } else if (k->len >= 64) {
            __m512i v = _mm512_loadu_si512(k->in);
            _mm512_storeu_si512(k->out, _mm512_xor_si512(v, ks[b]));
            k->in += 64;
            k->out += 64;
            k->len -= 64;
        } else if (k->len > 0) {
            __mmask64 m = ((__mmask64)1 << k->len) - 1; /* len < 64 */
            __m512i v = _mm512_maskz_loadu_epi8(m, k->in);
            _mm512_mask_storeu_epi8(k->out, m, _mm512_xor_si512(v, ks[b]));
            k->in += k->len;
            k->out += k->len;
            k->len = 0;
        }
    }
}

static void chacha20_stream(struct chacha_sink *k, struct chacha_state *s)
{
    __m512i ks[16];
    size_t need;
    while ((need = sink_blocks(k)) > 8) {
        __m512i init[16];
        init16(init, s);
        pass16(ks, init);
        sink_emit(k, ks, 16);
        s->w[12] += 16;
    }
    if (need > 4) {
        __m256i init[16];
        init8(init, s);
        pass8(ks, init);
        sink_emit(k, ks, need);
    } else if (need > 0) {
        __m128i init[16];
        init4(init, s);
        pass4(ks, init);
        sink_emit(k, ks, need);
    }
    /* Keystream stays out of memory except for what spilled; wipe the copy we own. */
    for (int i = 0; i < 16; i++)
        ks[i] = _mm512_setzero_si512();
    __asm__ __volatile__("" : : "r"(ks) : "memory");
    wgf_memzero(s, sizeof(*s));
}

void wgf_chacha20_xor_avx512(uint8_t *out, const uint8_t *in, size_t len, const uint8_t key[32],
                             const uint8_t nonce[12], uint32_t block)
{
    struct chacha_state s;
    struct chacha_sink k = {out, in, len, NULL};
    state_init(&s, key, nonce, block);
    chacha20_stream(&k, &s);
}

void wgf_chacha20_xor_otk_avx512(uint8_t otk[32], uint8_t *out, const uint8_t *in, size_t len,
                                 const uint8_t key[32], const uint8_t nonce[12])
{
    struct chacha_state s;
    struct chacha_sink k = {out, in, len, otk};
    state_init(&s, key, nonce, 0);
    chacha20_stream(&k, &s);
}

void wgf_chacha20_otk_batch_avx512(uint8_t (*otk)[32], const uint8_t key[32],
                                   const uint8_t (*nonce)[12], size_t n)
{
    struct chacha_state s;
    uint32_t lane_words[3][16] = {{0}}; /* words 13..15 (the nonce) of each lane */
    __m512i ks[16];

    if (n == 0 || n > WGF_CHACHA20_OTK_BATCH_MAX)
        return;
    state_init(&s, key, nonce[0], 0);
    for (size_t b = 0; b < n; b++)
        for (int i = 0; i < 3; i++)
            lane_words[i][b] = load_le32(nonce[b] + 4 * i);
    if (n > 8) {
        __m512i init[16];
        for (int i = 0; i < 13; i++)
            init[i] = _mm512_set1_epi32((int)s.w[i]); /* word 12, the block counter, is 0 */
        for (int i = 0; i < 3; i++)
            init[13 + i] = _mm512_loadu_si512(lane_words[i]);
        pass16(ks, init);
    } else if (n > 4) {
        __m256i init[16];
        for (int i = 0; i < 13; i++)
            init[i] = _mm256_set1_epi32((int)s.w[i]);
        for (int i = 0; i < 3; i++)
            init[13 + i] = _mm256_loadu_si256((const __m256i *)lane_words[i]);
        pass8(ks, init);
    } else {
        __m128i init[16];
        for (int i = 0; i < 13; i++)
            init[i] = _mm_set1_epi32((int)s.w[i]);
        for (int i = 0; i < 3; i++)
            init[13 + i] = _mm_loadu_si128((const __m128i *)lane_words[i]);
        pass4(ks, init);
    }
    for (size_t b = 0; b < n; b++)
        _mm256_storeu_si256((__m256i *)otk[b], _mm512_castsi512_si256(ks[b]));
    for (int i = 0; i < 16; i++)
        ks[i] = _mm512_setzero_si512();
    __asm__ __volatile__("" : : "r"(ks) : "memory");
    wgf_memzero(&s, sizeof(s));
}

/* Where each lane's keystream block goes in wgf_chacha20_jobs_avx512: the first 32 bytes to a
 * one-time key (len == 0), or XORed over len (1..64) bytes of dst. */
struct lane_dest {
    uint8_t *dst;
    size_t len;
};

HOT void lanes_emit(const __m512i *ks, const struct lane_dest *d, size_t lanes)
{
#pragma GCC unroll 16
    for (size_t l = 0; l < lanes; l++) {
        if (d[l].len == 0) {
            _mm256_storeu_si256((__m256i *)d[l].dst, _mm512_castsi512_si256(ks[l]));
        } else if (d[l].len == 64) {
            __m512i v = _mm512_loadu_si512(d[l].dst);
            _mm512_storeu_si512(d[l].dst, _mm512_xor_si512(v, ks[l]));
        } else {
            __mmask64 m = ((__mmask64)1 << d[l].len) - 1; /* len < 64 */
            __m512i v = _mm512_maskz_loadu_epi8(m, d[l].dst);
            _mm512_mask_storeu_epi8(d[l].dst, m, _mm512_xor_si512(v, ks[l]));
        }
    }
}

/* Runs one pass over `lanes` lanes whose words 12..15 are in lane_words, 16/8/4 wide. */
HOT void lanes_pass(__m512i ks[16], const struct chacha_state *s, uint32_t lane_words[4][16],
                    size_t lanes)
{
    if (lanes > 8) {
        __m512i init[16];
        for (int i = 0; i < 12; i++)
            init[i] = _mm512_set1_epi32((int)s->w[i]);
        for (int i = 0; i < 4; i++)
            init[12 + i] = _mm512_loadu_si512(lane_words[i]);
        pass16(ks, init);
    } else if (lanes > 4) {
        __m256i init[16];
        for (int i = 0; i < 12; i++)
            init[i] = _mm256_set1_epi32((int)s->w[i]);
        for (int i = 0; i < 4; i++)
            init[12 + i] = _mm256_loadu_si256((const __m256i *)lane_words[i]);
        pass8(ks, init);
    } else {
        __m128i init[16];
        for (int i = 0; i < 12; i++)
            init[i] = _mm_set1_epi32((int)s->w[i]);
        for (int i = 0; i < 4; i++)
            init[12 + i] = _mm_loadu_si128((const __m128i *)lane_words[i]);
        pass4(ks, init);
    }
}

/* A full 16-lane pass with its output consumed at once, so the keystream stays in registers. */
HOT void lanes_run16(const struct chacha_state *s, uint32_t lane_words[4][16],
                     const struct lane_dest *dest)
{
    __m512i init[16], ks[16];
    for (int i = 0; i < 12; i++)
        init[i] = _mm512_set1_epi32((int)s->w[i]);
    for (int i = 0; i < 4; i++)
        init[12 + i] = _mm512_loadu_si512(lane_words[i]);
    pass16(ks, init);
    lanes_emit(ks, dest, 16);
}

void wgf_chacha20_jobs_avx512(struct wgf_chacha20_job *jobs, size_t n, const uint8_t key[32])
{
    static const uint8_t no_nonce[12];
    struct chacha_state s;
    uint32_t lane_words[4][16] = {{0}}; /* words 12..15: block counter, nonce */
    struct lane_dest dest[16];
    __m512i ks[16];
    size_t lanes = 0;

    state_init(&s, key, no_nonce, 0); /* words 0..11 are shared by every lane */
    for (size_t j = 0; j < n; j++) {
        uint32_t nonce_words[3];
        for (int i = 0; i < 3; i++)
            nonce_words[i] = load_le32(jobs[j].nonce + 4 * i);
        size_t remaining = jobs[j].len;
        uint8_t *data = jobs[j].data;
        if (!jobs[j].with_otk && remaining == 0)
            continue;
        /* Block 0 is the one-time key, blocks 1.. cover the data. */
        for (uint32_t block = jobs[j].with_otk ? 0 : 1;; block++) {
            lane_words[0][lanes] = block;
            for (int i = 0; i < 3; i++)
                lane_words[1 + i][lanes] = nonce_words[i];
            if (block == 0) {
                dest[lanes].dst = jobs[j].otk;
                dest[lanes].len = 0;
            } else {
                size_t take = remaining < 64 ? remaining : 64;
                dest[lanes].dst = data;
                dest[lanes].len = take;
                data += take;
                remaining -= take;
            }
            if (++lanes == 16) {
                lanes_run16(&s, lane_words, dest);
                lanes = 0;
            }
            if (remaining == 0)
                break;
        }
    }
    if (lanes > 0) {
        lanes_pass(ks, &s, lane_words, lanes);
        lanes_emit(ks, dest, lanes);
    }
    for (int i = 0; i < 16; i++)
        ks[i] = _mm512_setzero_si512();
    __asm__ __volatile__("" : : "r"(ks) : "memory");
    wgf_memzero(&s, sizeof(s));
}

#endif
