/* BLAKE2s, straight from RFC 7693 section 3 (G, the compression function F, the parameter
 * block of a sequential keyed hash). Speed matters little: it runs on handshake datagrams only,
 * a few blocks each. */
#include <string.h>

#include "blake2s.h"
#include "byteorder.h"
#include "memzero.h"

static const uint32_t blake2s_iv[8] = {
    0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
    0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u,
};

static const uint8_t blake2s_sigma[10][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
};

static inline uint32_t rotr32(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

#define G(a, b, c, d, x, y)          \
    do {                             \
        a = a + b + (x);             \
        d = rotr32(d ^ a, 16);       \
        c = c + d;                   \
        b = rotr32(b ^ c, 12);       \
        a = a + b + (y);             \
        d = rotr32(d ^ a, 8);        \
        c = c + d;                   \
        b = rotr32(b ^ c, 7);        \
    } while (0)

/* F: compresses one block; last says it is the final one. */
static void compress(struct wgf_blake2s *s, const uint8_t block[WGF_BLAKE2S_BLOCK_LEN], int last)
{
    uint32_t m[16], v[16];
    for (int i = 0; i < 16; i++)
        m[i] = wgf_get_le32(block + 4 * i);
    for (int i = 0; i < 8; i++) {
        v[i] = s->h[i];
        v[i + 8] = blake2s_iv[i];
    }
    v[12] ^= s->t[0];
    v[13] ^= s->t[1];
    if (last)
        v[14] = ~v[14];
    for (int r = 0; r < 10; r++) {
        const uint8_t *sg = blake2s_sigma[r];
        G(v[0], v[4], v[8], v[12], m[sg[0]], m[sg[1]]);
        G(v[1], v[5], v[9], v[13], m[sg[2]], m[sg[3]]);
        G(v[2], v[6], v[10], v[14], m[sg[4]], m[sg[5]]);
        G(v[3], v[7], v[11], v[15], m[sg[6]], m[sg[7]]);
        G(v[0], v[5], v[10], v[15], m[sg[8]], m[sg[9]]);
        G(v[1], v[6], v[11], v[12], m[sg[10]], m[sg[11]]);
        G(v[2], v[7], v[8], v[13], m[sg[12]], m[sg[13]]);
        G(v[3], v[4], v[9], v[14], m[sg[14]], m[sg[15]]);
    }
    for (int i = 0; i < 8; i++)
        s->h[i] ^= v[i] ^ v[i + 8];
    wgf_memzero(m, sizeof(m));
    wgf_memzero(v, sizeof(v));
}

static void add_counter(struct wgf_blake2s *s, uint32_t n)
{
    s->t[0] += n;
    if (s->t[0] < n)
        s->t[1]++;
}

void wgf_blake2s_init(struct wgf_blake2s *s, size_t out_len, const uint8_t *key, size_t key_len)
{
    if (out_len < 1 || out_len > WGF_BLAKE2S_HASH_LEN)
        out_len = WGF_BLAKE2S_HASH_LEN;
    if (key_len > WGF_BLAKE2S_KEY_MAX)
        key_len = WGF_BLAKE2S_KEY_MAX;
    memset(s, 0, sizeof(*s));
    memcpy(s->h, blake2s_iv, sizeof(s->h));
    /* Parameter block word 0: digest length, key length, fanout 1, depth 1. */
    s->h[0] ^= 0x01010000u ^ ((uint32_t)key_len << 8) ^ (uint32_t)out_len;
    s->out_len = out_len;
    if (key_len > 0) { /* the key, zero-padded, is the first block */
        memcpy(s->buf, key, key_len);
        s->buf_len = WGF_BLAKE2S_BLOCK_LEN;
    }
}

void wgf_blake2s_update(struct wgf_blake2s *s, const uint8_t *in, size_t len)
{
    while (len > 0) {
        /* A full buffer is compressed only once more input follows: the last block must go
         * through final with its flag. */
        if (s->buf_len == WGF_BLAKE2S_BLOCK_LEN) {
            add_counter(s, WGF_BLAKE2S_BLOCK_LEN);
            compress(s, s->buf, 0);
            s->buf_len = 0;
        }
        size_t take = WGF_BLAKE2S_BLOCK_LEN - s->buf_len;
        if (take > len)
            take = len;
        memcpy(s->buf + s->buf_len, in, take);
        s->buf_len += take;
        in += take;
        len -= take;
    }
}

void wgf_blake2s_final(struct wgf_blake2s *s, uint8_t *out)
{
    uint8_t full[WGF_BLAKE2S_HASH_LEN];
    add_counter(s, (uint32_t)s->buf_len);
    memset(s->buf + s->buf_len, 0, WGF_BLAKE2S_BLOCK_LEN - s->buf_len);
    compress(s, s->buf, 1);
    for (int i = 0; i < 8; i++)
        wgf_put_le32(full + 4 * i, s->h[i]);
    memcpy(out, full, s->out_len);
    wgf_memzero(full, sizeof(full));
    wgf_memzero(s, sizeof(*s));
}

void wgf_blake2s(uint8_t *out, size_t out_len, const uint8_t *in, size_t len, const uint8_t *key,
                 size_t key_len)
{
    struct wgf_blake2s s;
    wgf_blake2s_init(&s, out_len, key, key_len);
    wgf_blake2s_update(&s, in, len);
    wgf_blake2s_final(&s, out);
}
