# C declarations of csrc/aead.h, chacha20.h, poly1305.h and memzero.h.
from libc.stdint cimport uint8_t, uint32_t, uint64_t


cdef extern from "aead.h" nogil:
    struct wgf_packet:
        uint8_t *data
        size_t len
        uint64_t counter
        int result

    int WGF_IMPL_AUTO, WGF_IMPL_SCALAR, WGF_IMPL_AVX2, WGF_IMPL_AVX512

    int wgf_impl_supported(int impl)
    int wgf_impl_select(int impl)
    int wgf_impl_active()
    const char *wgf_impl_name(int impl)
    void wgf_aead_seal_batch(wgf_packet *pkts, size_t n, const uint8_t *key)
    size_t wgf_aead_open_batch(wgf_packet *pkts, size_t n, const uint8_t *key)
    void wgf_aead_seal(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad,
                       size_t ad_len, uint64_t counter, const uint8_t *key)
    int wgf_aead_open(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad,
                      size_t ad_len, uint64_t counter, const uint8_t *key)
    void wgf_hchacha20(uint8_t *out, const uint8_t *key, const uint8_t *nonce)
    void wgf_xaead_seal(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad,
                        size_t ad_len, const uint8_t *nonce, const uint8_t *key)
    int wgf_xaead_open(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad,
                       size_t ad_len, const uint8_t *nonce, const uint8_t *key)

cdef extern from "chacha20.h" nogil:
    void wgf_chacha20_block(uint8_t *out, const uint8_t *key, const uint8_t *nonce, uint32_t block)
    void wgf_chacha20_xor(uint8_t *out, const uint8_t *inp, size_t len, const uint8_t *key,
                          const uint8_t *nonce, uint32_t block)

cdef extern from "poly1305.h" nogil:
    void wgf_poly1305_mac(uint8_t *tag, const uint8_t *key, const uint8_t *msg, size_t len)

cdef extern from "memzero.h" nogil:
    void wgf_memzero(void *p, size_t len)
