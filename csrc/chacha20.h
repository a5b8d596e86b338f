/* ChaCha20 block function and stream (RFC 8439 section 2.3/2.4), internal to the C core.
 * Nonce here is the full 96-bit RFC nonce; the AEAD layer builds it from WireGuard's counter. */
#ifndef WGF_CHACHA20_H
#define WGF_CHACHA20_H

#include <stddef.h>
#include <stdint.h>

#define WGF_CHACHA20_BLOCK_LEN 64

/* out = in XOR keystream(key, nonce, starting at block counter `block`). out may equal in. */
typedef void (*wgf_chacha20_xor_fn)(uint8_t *out, const uint8_t *in, size_t len,
                                    const uint8_t key[32], const uint8_t nonce[12], uint32_t block);

void wgf_chacha20_block(uint8_t out[64], const uint8_t key[32], const uint8_t nonce[12],
                        uint32_t block);
void wgf_chacha20_xor_scalar(uint8_t *out, const uint8_t *in, size_t len, const uint8_t key[32],
                             const uint8_t nonce[12], uint32_t block);
void wgf_chacha20_xor_avx2(uint8_t *out, const uint8_t *in, size_t len, const uint8_t key[32],
                           const uint8_t nonce[12], uint32_t block);
void wgf_chacha20_xor_avx512(uint8_t *out, const uint8_t *in, size_t len, const uint8_t key[32],
                             const uint8_t nonce[12], uint32_t block);

/* The AEAD's fused form (RFC 8439 section 2.6 + 2.8): block 0 of (key, nonce) gives the Poly1305
 * one-time key otk (its first 32 bytes), and out = in XOR keystream from block 1. The SIMD
 * versions compute block 0 in the same wide pass as the first data blocks instead of a separate
 * scalar block. out may equal in. */
typedef void (*wgf_chacha20_xor_otk_fn)(uint8_t otk[32], uint8_t *out, const uint8_t *in,
                                        size_t len, const uint8_t key[32],
                                        const uint8_t nonce[12]);

void wgf_chacha20_xor_otk_scalar(uint8_t otk[32], uint8_t *out, const uint8_t *in, size_t len,
                                 const uint8_t key[32], const uint8_t nonce[12]);
void wgf_chacha20_xor_otk_avx2(uint8_t otk[32], uint8_t *out, const uint8_t *in, size_t len,
                               const uint8_t key[32], const uint8_t nonce[12]);
void wgf_chacha20_xor_otk_avx512(uint8_t otk[32], uint8_t *out, const uint8_t *in, size_t len,
                                 const uint8_t key[32], const uint8_t nonce[12]);

/* One-time keys for up to WGF_CHACHA20_OTK_BATCH_MAX messages under one key: otk[i] = first 32
 * bytes of block 0 of (key, nonce[i]). Open needs the key before it may decrypt, so the batch
 * form computes a whole batch's keys in one SIMD pass (one message per lane) instead of one
 * mostly idle pass per packet. n = 0 or n > the maximum does nothing. */
#define WGF_CHACHA20_OTK_BATCH_MAX 16
typedef void (*wgf_chacha20_otk_batch_fn)(uint8_t (*otk)[32], const uint8_t key[32],
                                          const uint8_t (*nonce)[12], size_t n);

void wgf_chacha20_otk_batch_scalar(uint8_t (*otk)[32], const uint8_t key[32],
                                   const uint8_t (*nonce)[12], size_t n);
void wgf_chacha20_otk_batch_avx2(uint8_t (*otk)[32], const uint8_t key[32],
                                 const uint8_t (*nonce)[12], size_t n);
void wgf_chacha20_otk_batch_avx512(uint8_t (*otk)[32], const uint8_t key[32],
                                   const uint8_t (*nonce)[12], size_t n);

/* The fused form over a group of in-place messages under one key: for each job, otk = block 0 of
 * (key, nonce) if with_otk (else otk is left alone), and data[0..len) ^= keystream from block 1.
 * The SIMD versions treat the group's blocks as one stream of (message, block) lanes, so short
 * packets fill whole passes instead of one mostly idle pass each. Seal sets with_otk; open, which
 * must verify before decrypting, runs the authentic packets again without it. */
struct wgf_chacha20_job {
    uint8_t *data;
    size_t len;
    uint8_t nonce[12];
    uint8_t otk[32];
    int with_otk;
};
typedef void (*wgf_chacha20_jobs_fn)(struct wgf_chacha20_job *jobs, size_t n,
                                     const uint8_t key[32]);

void wgf_chacha20_jobs_scalar(struct wgf_chacha20_job *jobs, size_t n, const uint8_t key[32]);
void wgf_chacha20_jobs_avx2(struct wgf_chacha20_job *jobs, size_t n, const uint8_t key[32]);
void wgf_chacha20_jobs_avx512(struct wgf_chacha20_job *jobs, size_t n, const uint8_t key[32]);

/* Dispatches to the implementation selected in aead.c (wgf_impl_select). */
void wgf_chacha20_xor(uint8_t *out, const uint8_t *in, size_t len, const uint8_t key[32],
                      const uint8_t nonce[12], uint32_t block);

#endif
