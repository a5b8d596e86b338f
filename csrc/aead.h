/* ChaCha20-Poly1305 (RFC 8439) with WireGuard's nonce layout, sealed and opened in place over a
 * batch of packets, plus the one-shot and XChaCha20-Poly1305 forms the handshake and cookies use.
 *
 * Nonce for the batch and one-shot forms: 32 zero bits then the 64-bit little-endian counter.
 * Every function is thread-safe and never touches Python; none allocates. */
#ifndef WGF_AEAD_H
#define WGF_AEAD_H

#include <stddef.h>
#include <stdint.h>

#define WGF_AEAD_KEY_LEN 32
#define WGF_AEAD_TAG_LEN 16
#define WGF_XAEAD_NONCE_LEN 24
#define WGF_HCHACHA_NONCE_LEN 16

/* One packet of a batch. seal: data[0..len) is plaintext; on return data[0..len) is ciphertext and
 * data[len..len+16) the tag, so the buffer must hold len + 16 bytes. open: data[0..len) is
 * ciphertext||tag (len >= 16); on success data[0..len-16) is plaintext and result is 0; on failure
 * result is -1 and the buffer is left unchanged (the tag is checked before decrypting). */
struct wgf_packet {
    uint8_t *data;
    size_t len;
    uint64_t counter;
    int result;
};

/* Implementations selectable at run time. WGF_IMPL_AUTO picks the fastest the CPU supports. */
enum wgf_impl {
    WGF_IMPL_AUTO = 0,
    WGF_IMPL_SCALAR = 1,
    WGF_IMPL_AVX2 = 2,
    WGF_IMPL_AVX512 = 3,
};

/* 1 if this CPU (and this build) can run impl, else 0. */
int wgf_impl_supported(int impl);
/* Select the implementation used by every function below, process-wide. Returns 0, or -1 (and
 * changes nothing) if impl is unknown or unsupported. Meant for tests and benchmarks. */
int wgf_impl_select(int impl);
/* The implementation in use now (never WGF_IMPL_AUTO). */
int wgf_impl_active(void);
const char *wgf_impl_name(int impl);

/* Batch forms: empty associated data (WireGuard transport data). */
void wgf_aead_seal_batch(struct wgf_packet *pkts, size_t n, const uint8_t key[WGF_AEAD_KEY_LEN]);
/* Returns how many packets opened; each packet's result says which. */
size_t wgf_aead_open_batch(struct wgf_packet *pkts, size_t n, const uint8_t key[WGF_AEAD_KEY_LEN]);

/* One-shot forms with associated data. dst may equal src. seal writes len + 16 bytes to dst.
 * open reads len bytes (ciphertext||tag, len >= 16) and writes len - 16; returns 0 or -1. */
void wgf_aead_seal(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad, size_t ad_len,
                   uint64_t counter, const uint8_t key[WGF_AEAD_KEY_LEN]);
int wgf_aead_open(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad, size_t ad_len,
                  uint64_t counter, const uint8_t key[WGF_AEAD_KEY_LEN]);

/* HChaCha20 (draft-irtf-cfrg-xchacha section 2.2). */
void wgf_hchacha20(uint8_t out[32], const uint8_t key[32], const uint8_t nonce[16]);
/* XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha), as WireGuard's cookie replies use. */
void wgf_xaead_seal(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad, size_t ad_len,
                    const uint8_t nonce[WGF_XAEAD_NONCE_LEN], const uint8_t key[WGF_AEAD_KEY_LEN]);
int wgf_xaead_open(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad, size_t ad_len,
                   const uint8_t nonce[WGF_XAEAD_NONCE_LEN], const uint8_t key[WGF_AEAD_KEY_LEN]);

#endif
