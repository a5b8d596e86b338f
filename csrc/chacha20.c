/* ChaCha20 (RFC 8439 section 2.3/2.4), portable scalar reference. The SIMD versions in
 * chacha20_avx2.c / chacha20_avx512.c must produce exactly this output for every length and
 * starting block, including the 32-bit block counter wrapping to 0 (the nonce words never change,
 * as RFC 8439 defines the counter as one 32-bit word). */
#include "chacha20.h"

#include <string.h>

#include "memzero.h"

/* "expand 32-byte k" as four little-endian words (RFC 8439 section 2.3). */
#define CHACHA20_CONST0 0x61707865u
#define CHACHA20_CONST1 0x3320646eu
#define CHACHA20_CONST2 0x79622d32u
#define CHACHA20_CONST3 0x6b206574u
#define CHACHA20_DOUBLE_ROUNDS 10

static inline uint32_t load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void store_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t rotl32(uint32_t v, int n)
{
    return v << n | v >> (32 - n);
}

#define QUARTER_ROUND(a, b, c, d)                                                              \
    do {                                                                                       \
        a += b; d ^= a; d = rotl32(d, 16);                                                     \
        c += d; b ^= c; b = rotl32(b, 12);                                                     \
        a += b; d ^= a; d = rotl32(d, 8);                                                      \
        c += d; b ^= c; b = rotl32(b, 7);                                                      \
    } while (0)

/* The 20 rounds over x in place (no feed-forward). Shared by the block function and HChaCha20. */
static void chacha20_rounds(uint32_t x[16])
{
    for (int i = 0; i < CHACHA20_DOUBLE_ROUNDS; i++) {
        QUARTER_ROUND(x[0], x[4], x[8], x[12]);
        QUARTER_ROUND(x[1], x[5], x[9], x[13]);
        QUARTER_ROUND(x[2], x[6], x[10], x[14]);
        QUARTER_ROUND(x[3], x[7], x[11], x[15]);
        QUARTER_ROUND(x[0], x[5], x[10], x[15]);
        QUARTER_ROUND(x[1], x[6], x[11], x[12]);
        QUARTER_ROUND(x[2], x[7], x[8], x[13]);
        QUARTER_ROUND(x[3], x[4], x[9], x[14]);
    }
}

/* Initial state: constants, key, then words 12..15 as given (counter||nonce or the HChaCha20
 * 128-bit nonce). */
static void chacha20_init(uint32_t s[16], const uint8_t key[32], const uint8_t tail[16])
{
    s[0] = CHACHA20_CONST0;
    s[1] = CHACHA20_CONST1;
    s[2] = CHACHA20_CONST2;
    s[3] = CHACHA20_CONST3;
    for (int i = 0; i < 8; i++)
        s[4 + i] = load_le32(key + 4 * i);
    for (int i = 0; i < 4; i++)
        s[12 + i] = load_le32(tail + 4 * i);
}

static void chacha20_block_words(uint8_t out[64], const uint32_t s[16])
{
    uint32_t x[16];
    memcpy(x, s, sizeof(x));
    chacha20_rounds(x);
    for (int i = 0; i < 16; i++)
        store_le32(out + 4 * i, x[i] + s[i]);
    wgf_memzero(x, sizeof(x));
}

static void chacha20_state(uint32_t s[16], const uint8_t key[32], const uint8_t nonce[12],
                           uint32_t block)
{
    uint8_t tail[16];
    store_le32(tail, block);
    memcpy(tail + 4, nonce, 12);
    chacha20_init(s, key, tail);
}

void wgf_chacha20_block(uint8_t out[64], const uint8_t key[32], const uint8_t nonce[12],
                        uint32_t block)
{
    uint32_t s[16];
    chacha20_state(s, key, nonce, block);
    chacha20_block_words(out, s);
    wgf_memzero(s, sizeof(s));
}

void wgf_chacha20_xor_scalar(uint8_t *out, const uint8_t *in, size_t len, const uint8_t key[32],
                             const uint8_t nonce[12], uint32_t block)
{
    uint32_t s[16], x[16];
    uint8_t ks[WGF_CHACHA20_BLOCK_LEN];

    chacha20_state(s, key, nonce, block);
    for (; len >= WGF_CHACHA20_BLOCK_LEN; len -= WGF_CHACHA20_BLOCK_LEN) {
        memcpy(x, s, sizeof(x));
        chacha20_rounds(x);
        for (int i = 0; i < 16; i++)
            store_le32(out + 4 * i, load_le32(in + 4 * i) ^ (x[i] + s[i]));
        s[12]++; /* 32-bit block counter: wraps to 0, never carries into the nonce */
        out += WGF_CHACHA20_BLOCK_LEN;
        in += WGF_CHACHA20_BLOCK_LEN;
    }
    if (len > 0) {
        chacha20_block_words(ks, s);
        for (size_t i = 0; i < len; i++)
            out[i] = in[i] ^ ks[i];
    }
    wgf_memzero(s, sizeof(s));
    wgf_memzero(x, sizeof(x));
    wgf_memzero(ks, sizeof(ks));
}

void wgf_chacha20_xor_otk_scalar(uint8_t otk[32], uint8_t *out, const uint8_t *in, size_t len,
                                 const uint8_t key[32], const uint8_t nonce[12])
{
    uint8_t block0[WGF_CHACHA20_BLOCK_LEN];
    wgf_chacha20_block(block0, key, nonce, 0);
    memcpy(otk, block0, 32);
    wgf_memzero(block0, sizeof(block0));
    wgf_chacha20_xor_scalar(out, in, len, key, nonce, 1);
}

void wgf_chacha20_otk_batch_scalar(uint8_t (*otk)[32], const uint8_t key[32],
                                   const uint8_t (*nonce)[12], size_t n)
{
    uint8_t block0[WGF_CHACHA20_BLOCK_LEN];
    if (n > WGF_CHACHA20_OTK_BATCH_MAX)
        return;
    for (size_t i = 0; i < n; i++) {
        wgf_chacha20_block(block0, key, nonce[i], 0);
        memcpy(otk[i], block0, 32);
    }
    wgf_memzero(block0, sizeof(block0));
}

void wgf_chacha20_jobs_scalar(struct wgf_chacha20_job *jobs, size_t n, const uint8_t key[32])
{
    for (size_t i = 0; i < n; i++) {
        if (jobs[i].with_otk)
            wgf_chacha20_xor_otk_scalar(jobs[i].otk, jobs[i].data, jobs[i].data, jobs[i].len, key,
                                        jobs[i].nonce);
        else
            wgf_chacha20_xor_scalar(jobs[i].data, jobs[i].data, jobs[i].len, key, jobs[i].nonce,
                                    1);
    }
}

void wgf_hchacha20(uint8_t out[32], const uint8_t key[32], const uint8_t nonce[16])
{
    uint32_t x[16];
    chacha20_init(x, key, nonce);
    chacha20_rounds(x);
    /* HChaCha20 keeps words 0..3 and 12..15 of the permuted state, without the feed-forward. */
    for (int i = 0; i < 4; i++) {
        store_le32(out + 4 * i, x[i]);
        store_le32(out + 16 + 4 * i, x[12 + i]);
    }
    wgf_memzero(x, sizeof(x));
}
