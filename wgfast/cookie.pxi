# Bindings for csrc/cookie.h: the receiving side of the DoS defence as the data plane runs it
# (mac1/mac2 checks, cookie replies). The daemon never calls these: the data plane does, before
# the control queue. They are here so that tests can hold the C code to the protocol's
# definition with independent implementations (hashlib, PyNaCl).
from wgfast.includes.cookie cimport *

MAC_INVALID = WGF_MAC_INVALID
MAC_VALID_NO_COOKIE = WGF_MAC_VALID_NO_COOKIE
MAC_VALID_WITH_COOKIE = WGF_MAC_VALID_WITH_COOKIE
COOKIE_SECRET_MAX_AGE_NS = WGF_COOKIE_SECRET_MAX_AGE_NS


def blake2s_mac(const uint8_t[::1] key, const uint8_t[::1] data) -> bytes:
    """MAC(key, data): keyed BLAKE2s-128, as C computes mac1, mac2 and cookies."""
    cdef uint8_t out[16]
    if key.shape[0] == 0 or key.shape[0] > 32:
        raise ValueError("a MAC key is 1 to 32 bytes")
    wgf_mac(out, &key[0], key.shape[0], _ptr(data), data.shape[0])
    return out[:16]


cdef class CookieChecker:
    """One csrc/cookie.c checker: our public key in, macs checked and cookie replies made.
    `source` is the address as cookies hash it: IP bytes then the big-endian port."""
    cdef wgf_cookie_checker c

    def __cinit__(self, const uint8_t[::1] public_key):
        wgf_cookie_checker_set_public(&self.c, fixed_bytes(public_key, 32, "public key"))

    def __dealloc__(self):
        wgf_cookie_checker_wipe(&self.c)

    def set_secret(self, const uint8_t[::1] secret, uint64_t now_ns) -> None:
        wgf_cookie_checker_set_secret(&self.c, fixed_bytes(secret, 32, "secret"), now_ns)

    def check(self, const uint8_t[::1] message, const uint8_t[::1] source, uint64_t now_ns,
              bint check_cookie) -> int:
        """MAC_INVALID, MAC_VALID_NO_COOKIE or MAC_VALID_WITH_COOKIE."""
        if message.shape[0] < 32 or source.shape[0] > WGF_COOKIE_SOURCE_MAX:
            raise ValueError("message or source of a bad size")
        return wgf_cookie_check(&self.c, &message[0], message.shape[0], _ptr(source),
                                source.shape[0], now_ns, check_cookie)

    def make_reply(self, const uint8_t[::1] message, const uint8_t[::1] source,
                   uint64_t now_ns) -> bytes:
        """The 64-byte cookie reply to an initiation or response."""
        cdef uint8_t out[64]
        if message.shape[0] < 40 or source.shape[0] > WGF_COOKIE_SOURCE_MAX:
            raise ValueError("message or source of a bad size")
        if wgf_cookie_make_reply(&self.c, out, &message[0], message.shape[0], _ptr(source),
                                 source.shape[0], now_ns) != 0:
            raise OSError("no cookie reply (no randomness)")
        return out[:64]
