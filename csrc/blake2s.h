/* BLAKE2s (RFC 7693), keyed or not, with any digest length up to 32 bytes: the hash behind
 * WireGuard's MACs and cookies (mac1, mac2, the cookie itself). Plain, portable C; no state
 * outside the caller's struct; thread-safe. */
#ifndef WGF_BLAKE2S_H
#define WGF_BLAKE2S_H

#include <stddef.h>
#include <stdint.h>

#define WGF_BLAKE2S_BLOCK_LEN 64
#define WGF_BLAKE2S_HASH_LEN 32
#define WGF_BLAKE2S_KEY_MAX 32

struct wgf_blake2s {
    uint32_t h[8];
    uint32_t t[2];
    uint8_t buf[WGF_BLAKE2S_BLOCK_LEN];
    size_t buf_len;
    size_t out_len;
};

/* out_len in [1, 32]; key_len in [0, 32] (key may be NULL when 0). */
void wgf_blake2s_init(struct wgf_blake2s *s, size_t out_len, const uint8_t *key, size_t key_len);
void wgf_blake2s_update(struct wgf_blake2s *s, const uint8_t *in, size_t len);
/* Writes out_len bytes and wipes the state. */
void wgf_blake2s_final(struct wgf_blake2s *s, uint8_t *out);
/* One shot: out = BLAKE2s-out_len(key; in). */
void wgf_blake2s(uint8_t *out, size_t out_len, const uint8_t *in, size_t len, const uint8_t *key,
                 size_t key_len);

#endif
