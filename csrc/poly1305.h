/* Poly1305 (RFC 8439 section 2.5) and the AEAD tag construction (section 2.8), internal to the
 * C core. Each implementation computes the whole RFC 8439 AEAD tag for one message:
 *   Poly1305(otk, ad || pad16 || ct || pad16 || le64(ad_len) || le64(ct_len))
 * where otk is the one-time key (first 32 bytes of ChaCha20 block 0). */
#ifndef WGF_POLY1305_H
#define WGF_POLY1305_H

#include <stddef.h>
#include <stdint.h>

#define WGF_POLY1305_KEY_LEN 32
#define WGF_POLY1305_TAG_LEN 16

typedef void (*wgf_poly1305_aead_fn)(uint8_t tag[16], const uint8_t otk[32], const uint8_t *ad,
                                     size_t ad_len, const uint8_t *ct, size_t ct_len);

void wgf_poly1305_aead_scalar(uint8_t tag[16], const uint8_t otk[32], const uint8_t *ad,
                              size_t ad_len, const uint8_t *ct, size_t ct_len);
void wgf_poly1305_aead_avx2(uint8_t tag[16], const uint8_t otk[32], const uint8_t *ad,
                            size_t ad_len, const uint8_t *ct, size_t ct_len);
void wgf_poly1305_aead_avx512(uint8_t tag[16], const uint8_t otk[32], const uint8_t *ad,
                              size_t ad_len, const uint8_t *ct, size_t ct_len);

/* The avx2 variant needs AVX2. The avx512 variant's vector loop needs AVX-512F and AVX-512 IFMA
 * (vpmadd52luq/huq); it checks for them itself on every call and, without them, computes the tag
 * with the AVX2 code instead (so it still needs AVX2). Call it only where wgf_cpu_has_avx512()
 * holds; this says whether its IFMA loop actually runs (for tests, benchmarks, reports). */
int wgf_poly1305_avx512_usable(void);

/* AEAD tags (empty associated data) of n messages of the same length ct_len, each under its own
 * one-time key: tag[i] = tag of (otk[i], ct[i]). Runs one message per SIMD lane, so it needs
 * no powers of r and no per-message setup beyond loading r. Returns 0, or -1 (nothing written)
 * if n is 0 or above WGF_POLY1305_LANES_MAX or the CPU lacks AVX-512 IFMA; call it only where
 * wgf_cpu_has_avx512() holds. */
#define WGF_POLY1305_LANES_MAX 16
typedef int (*wgf_poly1305_aead_lanes_fn)(uint8_t *const tag[], const uint8_t *const otk[],
                                          const uint8_t *const ct[], size_t ct_len, size_t n);
int wgf_poly1305_aead_lanes_avx512(uint8_t *const tag[], const uint8_t *const otk[],
                                   const uint8_t *const ct[], size_t ct_len, size_t n);

/* Plain Poly1305 MAC of one message (for the RFC 8439 section 2.5.2 vector and tests). */
void wgf_poly1305_mac(uint8_t tag[16], const uint8_t key[32], const uint8_t *msg, size_t len);

/* Constant-time comparison of two 16-byte tags: 0 if equal, -1 otherwise. */
int wgf_tag_verify(const uint8_t a[16], const uint8_t b[16]);

#endif
