/* ChaCha20 with AVX2: 8 blocks per pass, one block per 32-bit lane of 16 ymm registers
 * (register w holds state word w of all 8 blocks), then an 8x16 transpose into 64-byte blocks.
 * Rotations by 16 and 8 are byte shuffles, by 12 and 7 shift+or. A remainder of at most four
 * blocks runs the same code on xmm lanes. Tails shorter than a block go through a stack copy of
 * the keystream (wiped afterwards) so nothing is read or written past the caller's buffer.
 *
 * Compiled for AVX2 by the pragma below, never by command-line flags; aead.c calls it only after
 * cpu.c confirmed the CPU and OS support it. */
#if defined(__x86_64__)

#pragma GCC target("avx2")

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

/* pshufb patterns rotating every 32-bit word left by 16 and by 8 bits. */
#define ROT16_PATTERN 0x01000302, 0x05040706, 0x09080b0a, 0x0d0c0f0e
#define ROT8_PATTERN 0x02010003, 0x06050407, 0x0a09080b, 0x0e0d0c0f

#define QUARTER_ROUND(a, b, c, d)                                                              \
    do {                                                                                       \
        a = ADD(a, b); d = XOR(d, a); d = ROL16(d);                                            \
        c = ADD(c, d); b = XOR(b, c); b = ROL(b, 12);                                          \
        a = ADD(a, b); d = XOR(d, a); d = ROL8(d);                                             \
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

/* One keystream block as two 32-byte halves. */
struct ks_block {
    __m256i lo, hi;
};

/* Initial states of consecutive blocks (w[12] + lane) of one stream, for 8 or 4 lanes. The
 * 32-bit lane add makes the counter wrap exactly like the scalar one. */
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

/* 8 blocks, one per lane of the initial states init: ks[b] = keystream block of lane b. */
HOT void pass8(struct ks_block ks[8], const __m256i init[16])
{
    const __m256i rot16 = _mm256_setr_epi32(ROT16_PATTERN, ROT16_PATTERN);
    const __m256i rot8 = _mm256_setr_epi32(ROT8_PATTERN, ROT8_PATTERN);
#define ADD _mm256_add_epi32
#define XOR _mm256_xor_si256
#define ROL16(v) _mm256_shuffle_epi8(v, rot16)
#define ROL8(v) _mm256_shuffle_epi8(v, rot8)
#define ROL(v, n) _mm256_or_si256(_mm256_slli_epi32(v, n), _mm256_srli_epi32(v, 32 - (n)))
    __m256i x[16];
    for (int i = 0; i < 16; i++)
        x[i] = init[i];
    for (int r = 0; r < CHACHA20_DOUBLE_ROUNDS; r++)
        DOUBLE_ROUND(x);
    for (int i = 0; i < 16; i++)
        x[i] = ADD(x[i], init[i]);
#undef ADD
#undef XOR
#undef ROL16
#undef ROL8
#undef ROL
    /* Transpose: after the unpacks y[g][j] has in 128-bit lane k the words 4g..4g+3 of block
     * 4k+j; joining the matching 128-bit lanes of y[0..3][j] gives blocks j and 4+j. */
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
        ks[j].lo = _mm256_permute2x128_si256(y[0][j], y[1][j], 0x20);
        ks[j].hi = _mm256_permute2x128_si256(y[2][j], y[3][j], 0x20);
        ks[4 + j].lo = _mm256_permute2x128_si256(y[0][j], y[1][j], 0x31);
        ks[4 + j].hi = _mm256_permute2x128_si256(y[2][j], y[3][j], 0x31);
    }
}

/* 4 blocks on xmm lanes: ks[b] = keystream block of lane b, b < 4. */
static inline void pass4(struct ks_block ks[4], const __m128i init[16])
{
    const __m128i rot16 = _mm_setr_epi32(ROT16_PATTERN);
    const __m128i rot8 = _mm_setr_epi32(ROT8_PATTERN);
#define ADD _mm_add_epi32
#define XOR _mm_xor_si128
#define ROL16(v) _mm_shuffle_epi8(v, rot16)
#define ROL8(v) _mm_shuffle_epi8(v, rot8)
#define ROL(v, n) _mm_or_si128(_mm_slli_epi32(v, n), _mm_srli_epi32(v, 32 - (n)))
    __m128i x[16];
    for (int i = 0; i < 16; i++)
        x[i] = init[i];
    for (int r = 0; r < CHACHA20_DOUBLE_ROUNDS; r++)
        DOUBLE_ROUND(x);
    for (int i = 0; i < 16; i++)
        x[i] = ADD(x[i], init[i]);
#undef ADD
#undef XOR
#undef ROL16
#undef ROL8
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
        ks[j].lo = _mm256_set_m128i(y[1][j], y[0][j]);
        ks[j].hi = _mm256_set_m128i(y[3][j], y[2][j]);
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

static void sink_tail(struct chacha_sink *k, const struct ks_block *b)
{
    uint8_t buf[WGF_CHACHA20_BLOCK_LEN];
    _mm256_storeu_si256((__m256i *)buf, b->lo);
    _mm256_storeu_si256((__m256i *)(buf + 32), b->hi);
    for (size_t i = 0; i < k->len; i++)
        k->out[i] = k->in[i] ^ buf[i];
    wgf_memzero(buf, sizeof(buf));
    k->in += k->len;
    k->out += k->len;
    k->len = 0;
}

static inline void sink_emit(struct chacha_sink *k, const struct ks_block *ks, size_t nblocks)
{
    for (size_t b = 0; b < nblocks; b++) {
        if (k->otk != NULL) {
            _mm256_storeu_si256((__m256i *)k->otk, ks[b].lo);
            k->otk = NULL;
        } else if (k->len >= 64) {
            __m256i lo = _mm256_loadu_si256((const __m256i *)k->in);
            __m256i hi = _mm256_loadu_si256((const __m256i *)(k->in + 32));
            _mm256_storeu_si256((__m256i *)k->out, _mm256_xor_si256(lo, ks[b].lo));
            _mm256_storeu_si256((__m256i *)(k->out + 32), _mm256_xor_si256(hi, ks[b].hi));
            k->in += 64;
            k->out += 64;
            k->len -= 64;
        } else if (k->len > 0) {
            sink_tail(k, &ks[b]);
        }
    }
}

static void chacha20_stream(struct chacha_sink *k, struct chacha_state *s)
{
    struct ks_block ks[8];
    size_t need;
    while ((need = sink_blocks(k)) > 4) {
        __m256i init[16];
        init8(init, s);
        pass8(ks, init);
        sink_emit(k, ks, need < 8 ? need : 8);
        s->w[12] += 8;
    }
    if (need > 0) {
        __m128i init[16];
        init4(init, s);
        pass4(ks, init);
        sink_emit(k, ks, need);
    }
    for (int i = 0; i < 8; i++)
        ks[i].lo = ks[i].hi = _mm256_setzero_si256();
    __asm__ __volatile__("" : : "r"(ks) : "memory");
    wgf_memzero(s, sizeof(*s));
}

void wgf_chacha20_xor_avx2(uint8_t *out, const uint8_t *in, size_t len, const uint8_t key[32],
                           const uint8_t nonce[12], uint32_t block)
{
    struct chacha_state s;
    struct chacha_sink k = {out, in, len, NULL};
    state_init(&s, key, nonce, block);
    chacha20_stream(&k, &s);
}

void wgf_chacha20_xor_otk_avx2(uint8_t otk[32], uint8_t *out, const uint8_t *in, size_t len,
                               const uint8_t key[32], const uint8_t nonce[12])
{
    struct chacha_state s;
    struct chacha_sink k = {out, in, len, otk};
    state_init(&s, key, nonce, 0);
    chacha20_stream(&k, &s);
}

void wgf_chacha20_otk_batch_avx2(uint8_t (*otk)[32], const uint8_t key[32],
                                 const uint8_t (*nonce)[12], size_t n)
{
    struct chacha_state s;
    uint32_t lane_words[3][8] = {{0}}; /* words 13..15 (the nonce) of each lane */
    struct ks_block ks[8];

    if (n == 0 || n > WGF_CHACHA20_OTK_BATCH_MAX)
        return;
    state_init(&s, key, nonce[0], 0);
    for (size_t first = 0; first < n; first += 8) {
        size_t lanes = n - first < 8 ? n - first : 8;
        for (size_t b = 0; b < lanes; b++)
            for (int i = 0; i < 3; i++)
                lane_words[i][b] = load_le32(nonce[first + b] + 4 * i);
        if (lanes > 4) {
            __m256i init[16];
            for (int i = 0; i < 13; i++)
                init[i] = _mm256_set1_epi32((int)s.w[i]); /* word 12, the counter, is 0 */
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
        for (size_t b = 0; b < lanes; b++)
            _mm256_storeu_si256((__m256i *)otk[first + b], ks[b].lo);
    }
    for (int i = 0; i < 8; i++)
        ks[i].lo = ks[i].hi = _mm256_setzero_si256();
    __asm__ __volatile__("" : : "r"(ks) : "memory");
    wgf_memzero(&s, sizeof(s));
}

/* Where each lane's keystream block goes in wgf_chacha20_jobs_avx2: the first 32 bytes to a
 * one-time key (len == 0), or XORed over len (1..64) bytes of dst. */
struct lane_dest {
    uint8_t *dst;
    size_t len;
};

HOT void lanes_emit(const struct ks_block *ks, const struct lane_dest *d, size_t lanes)
{
#pragma GCC unroll 8
    for (size_t l = 0; l < lanes; l++) {
        if (d[l].len == 0) {
            _mm256_storeu_si256((__m256i *)d[l].dst, ks[l].lo);
        } else if (d[l].len == 64) {
            __m256i lo = _mm256_loadu_si256((const __m256i *)d[l].dst);
            __m256i hi = _mm256_loadu_si256((const __m256i *)(d[l].dst + 32));
            _mm256_storeu_si256((__m256i *)d[l].dst, _mm256_xor_si256(lo, ks[l].lo));
            _mm256_storeu_si256((__m256i *)(d[l].dst + 32), _mm256_xor_si256(hi, ks[l].hi));
        } else {
            struct chacha_sink k = {d[l].dst, d[l].dst, d[l].len, NULL};
            sink_tail(&k, &ks[l]);
        }
    }
}

/* Runs one pass over `lanes` lanes whose words 12..15 are in lane_words, 8 or 4 wide. */
static inline void lanes_pass(struct ks_block ks[8], const struct chacha_state *s,
                              uint32_t lane_words[4][8], size_t lanes)
{
    if (lanes > 4) {
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

/* A full 8-lane pass with its output consumed at once, so the keystream stays in registers. */
HOT void lanes_run8(const struct chacha_state *s, uint32_t lane_words[4][8],
                    const struct lane_dest *dest)
{
    __m256i init[16];
    struct ks_block ks[8];
    for (int i = 0; i < 12; i++)
        init[i] = _mm256_set1_epi32((int)s->w[i]);
    for (int i = 0; i < 4; i++)
        init[12 + i] = _mm256_loadu_si256((const __m256i *)lane_words[i]);
    pass8(ks, init);
    lanes_emit(ks, dest, 8);
}

void wgf_chacha20_jobs_avx2(struct wgf_chacha20_job *jobs, size_t n, const uint8_t key[32])
{
    static const uint8_t no_nonce[12];
    struct chacha_state s;
    uint32_t lane_words[4][8] = {{0}}; /* words 12..15: block counter, nonce */
    struct lane_dest dest[8];
    struct ks_block ks[8];
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
            if (++lanes == 8) {
                lanes_run8(&s, lane_words, dest);
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
    for (int i = 0; i < 8; i++)
        ks[i].lo = ks[i].hi = _mm256_setzero_si256();
    __asm__ __volatile__("" : : "r"(ks) : "memory");
    wgf_memzero(&s, sizeof(s));
}

#endif
