# C declarations of csrc/cookie.h and blake2s.h.
from libc.stdint cimport uint8_t, uint64_t


cdef extern from "blake2s.h" nogil:
    void wgf_blake2s(uint8_t *out, size_t out_len, const uint8_t *inp, size_t len,
                     const uint8_t *key, size_t key_len)

cdef extern from "cookie.h" nogil:
    struct wgf_cookie_checker:
        int has_key

    int WGF_MAC_INVALID, WGF_MAC_VALID_NO_COOKIE, WGF_MAC_VALID_WITH_COOKIE
    int WGF_COOKIE_REPLY_LEN, WGF_COOKIE_SOURCE_MAX
    uint64_t WGF_COOKIE_SECRET_MAX_AGE_NS

    void wgf_cookie_checker_set_public(wgf_cookie_checker *c, const uint8_t *public_key)
    void wgf_cookie_checker_wipe(wgf_cookie_checker *c)
    void wgf_cookie_checker_set_secret(wgf_cookie_checker *c, const uint8_t *secret,
                                       uint64_t now_ns)
    void wgf_mac(uint8_t *out, const uint8_t *key, size_t key_len, const uint8_t *inp, size_t len)
    int wgf_cookie_check(wgf_cookie_checker *c, const uint8_t *msg, size_t len,
                         const uint8_t *source, size_t src_len, uint64_t now_ns, int check_cookie)
    int wgf_cookie_make_reply(wgf_cookie_checker *c, uint8_t *out, const uint8_t *msg, size_t len,
                              const uint8_t *source, size_t src_len, uint64_t now_ns)
