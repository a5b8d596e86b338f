# Bindings for csrc/aead.h: batched in-place ChaCha20-Poly1305, one-shot and XChaCha20 forms.
from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc

from wgfast.includes.aead cimport *


KEY_LEN = 32
TAG_LEN = 16
XNONCE_LEN = 24

IMPLS = {"scalar": WGF_IMPL_SCALAR, "avx2": WGF_IMPL_AVX2, "avx512": WGF_IMPL_AVX512}


class AuthenticationError(ValueError):
    """A ciphertext or tag failed to authenticate."""


cdef const uint8_t *fixed_bytes(const uint8_t[::1] view, Py_ssize_t size, str what) except NULL:
    if view.shape[0] != size:
        raise ValueError(f"{what} must be {size} bytes, got {view.shape[0]}")
    return &view[0]


cdef const uint8_t *_ptr(const uint8_t[::1] view) noexcept nogil:
    # A zero-length memoryview has no element 0; the C core never reads it when the length is 0.
    if view.shape[0] == 0:
        return <const uint8_t *>b""
    return &view[0]


def impl_supported(str name) -> bool:
    """True if the CPU and this build can run the named implementation."""
    if name not in IMPLS:
        raise ValueError(f"unknown implementation {name!r}; choose from {sorted(IMPLS)}")
    return bool(wgf_impl_supported(IMPLS[name]))


def impl_select(str name) -> None:
    """Select the implementation process-wide ("auto" picks the fastest supported)."""
    impl = WGF_IMPL_AUTO if name == "auto" else IMPLS.get(name, -1)
    if impl == -1:
        raise ValueError(f"unknown implementation {name!r}")
    if wgf_impl_select(impl) != 0:
        raise ValueError(f"implementation {name!r} is not supported on this CPU")


def impl_active() -> str:
    """Name of the implementation in use."""
    return wgf_impl_name(wgf_impl_active()).decode()


def chacha20_block(const uint8_t[::1] key, const uint8_t[::1] nonce, uint32_t counter) -> bytes:
    """One 64-byte ChaCha20 block (RFC 8439 2.3), scalar reference."""
    cdef uint8_t out[64]
    wgf_chacha20_block(out, fixed_bytes(key, 32, "key"), fixed_bytes(nonce, 12, "nonce"), counter)
    return out[:64]


def chacha20_xor(const uint8_t[::1] key, const uint8_t[::1] nonce, uint32_t counter,
                 const uint8_t[::1] data) -> bytes:
    """data XOR the ChaCha20 keystream from block `counter` (RFC 8439 2.4), selected impl."""
    out = bytearray(data.shape[0])
    cdef uint8_t[::1] o = out
    if data.shape[0]:
        wgf_chacha20_xor(&o[0], &data[0], data.shape[0], fixed_bytes(key, 32, "key"),
                         fixed_bytes(nonce, 12, "nonce"), counter)
    return bytes(out)


def poly1305_mac(const uint8_t[::1] key, const uint8_t[::1] msg) -> bytes:
    """Poly1305 tag of msg under a 32-byte one-time key (RFC 8439 2.5)."""
    cdef uint8_t tag[16]
    wgf_poly1305_mac(tag, fixed_bytes(key, 32, "key"), _ptr(msg), msg.shape[0])
    return tag[:16]


def seal(const uint8_t[::1] key, uint64_t counter, const uint8_t[::1] plaintext,
         const uint8_t[::1] ad=b"") -> bytes:
    """ChaCha20-Poly1305 with WireGuard's nonce (4 zero bytes || le64 counter): ct || tag."""
    out = bytearray(plaintext.shape[0] + 16)
    cdef uint8_t[::1] o = out
    cdef const uint8_t *k = fixed_bytes(key, 32, "key")
    with nogil:
        wgf_aead_seal(&o[0], _ptr(plaintext), plaintext.shape[0], _ptr(ad), ad.shape[0],
                      counter, k)
    return bytes(out)


def open(const uint8_t[::1] key, uint64_t counter, const uint8_t[::1] ciphertext,
         const uint8_t[::1] ad=b"") -> bytes:
    """Inverse of seal(); raises AuthenticationError if the tag does not verify."""
    if ciphertext.shape[0] < 16:
        raise AuthenticationError("ciphertext shorter than the tag")
    out = bytearray(ciphertext.shape[0] - 16 + 1)  # +1: never a zero-length view
    cdef uint8_t[::1] o = out
    cdef const uint8_t *k = fixed_bytes(key, 32, "key")
    cdef int rc
    with nogil:
        rc = wgf_aead_open(&o[0], &ciphertext[0], ciphertext.shape[0], _ptr(ad), ad.shape[0],
                           counter, k)
    if rc != 0:
        raise AuthenticationError("ChaCha20-Poly1305 tag mismatch")
    return bytes(out[:ciphertext.shape[0] - 16])


def hchacha20(const uint8_t[::1] key, const uint8_t[::1] nonce) -> bytes:
    """HChaCha20 subkey (draft-irtf-cfrg-xchacha 2.2)."""
    cdef uint8_t out[32]
    wgf_hchacha20(out, fixed_bytes(key, 32, "key"), fixed_bytes(nonce, 16, "nonce"))
    return out[:32]


def xseal(const uint8_t[::1] key, const uint8_t[::1] nonce, const uint8_t[::1] plaintext,
          const uint8_t[::1] ad=b"") -> bytes:
    """XChaCha20-Poly1305 seal (24-byte nonce): ct || tag."""
    out = bytearray(plaintext.shape[0] + 16)
    cdef uint8_t[::1] o = out
    wgf_xaead_seal(&o[0], _ptr(plaintext), plaintext.shape[0], _ptr(ad), ad.shape[0],
                   fixed_bytes(nonce, 24, "nonce"), fixed_bytes(key, 32, "key"))
    return bytes(out)


def xopen(const uint8_t[::1] key, const uint8_t[::1] nonce, const uint8_t[::1] ciphertext,
          const uint8_t[::1] ad=b"") -> bytes:
    """XChaCha20-Poly1305 open; raises AuthenticationError if the tag does not verify."""
    if ciphertext.shape[0] < 16:
        raise AuthenticationError("ciphertext shorter than the tag")
    out = bytearray(ciphertext.shape[0] - 16 + 1)
    cdef uint8_t[::1] o = out
    if wgf_xaead_open(&o[0], &ciphertext[0], ciphertext.shape[0], _ptr(ad), ad.shape[0],
                      fixed_bytes(nonce, 24, "nonce"), fixed_bytes(key, 32, "key")) != 0:
        raise AuthenticationError("XChaCha20-Poly1305 tag mismatch")
    return bytes(out[:ciphertext.shape[0] - 16])


cdef class PacketBatch:
    """A reusable batch of writable buffers sealed or opened in place, without copies.

    Each buffer holds one packet at offset 0: for seal, `length` bytes of plaintext and room for
    the 16-byte tag after it; for open, `length` bytes of ciphertext || tag. Lengths and counters
    can be changed between calls; the buffers stay pinned (exported) while the batch lives.
    """

    def __cinit__(self, buffers, lengths, counters):
        buffers = list(buffers)
        lengths = list(lengths)
        counters = list(counters)
        if not (len(buffers) == len(lengths) == len(counters)):
            raise ValueError("buffers, lengths and counters must have the same length")
        self.n = len(buffers)
        self.pkts = <wgf_packet *>calloc(max(self.n, 1), sizeof(wgf_packet))
        self.views = <Py_buffer *>calloc(max(self.n, 1), sizeof(Py_buffer))
        if self.pkts == NULL or self.views == NULL:
            raise MemoryError()
        cdef Py_ssize_t i
        for i in range(self.n):
            PyObject_GetBuffer(buffers[i], &self.views[i], PyBUF_SIMPLE | PyBUF_WRITABLE)
            self.acquired += 1
            self.pkts[i].data = <uint8_t *>self.views[i].buf
        self.set_lengths(lengths)
        self.set_counters(counters)

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.views != NULL:
            for i in range(self.acquired):
                PyBuffer_Release(&self.views[i])
        free(self.views)
        free(self.pkts)

    def __len__(self):
        return self.n

    def set_lengths(self, lengths) -> None:
        """Set each packet's length (validated against its buffer when sealing/opening)."""
        lengths = list(lengths)
        if len(lengths) != self.n:
            raise ValueError("one length per buffer")
        cdef Py_ssize_t i, ln
        for i in range(self.n):
            ln = lengths[i]
            if ln < 0 or ln > self.views[i].len:
                raise ValueError(f"length {ln} does not fit buffer {i} ({self.views[i].len})")
            self.pkts[i].len = ln

    def set_counters(self, counters) -> None:
        counters = list(counters)
        if len(counters) != self.n:
            raise ValueError("one counter per buffer")
        cdef Py_ssize_t i
        for i in range(self.n):
            self.pkts[i].counter = counters[i]

    @property
    def lengths(self) -> list:
        return [self.pkts[i].len for i in range(self.n)]

    @property
    def results(self) -> list:
        """Per-packet result of the last open(): True where the packet authenticated."""
        return [self.pkts[i].result == 0 for i in range(self.n)]

    def seal(self, const uint8_t[::1] key) -> None:
        """Seal every packet in place; lengths grow by 16 (the tag)."""
        cdef const uint8_t *k = fixed_bytes(key, 32, "key")
        cdef Py_ssize_t i
        for i in range(self.n):
            if <Py_ssize_t>self.pkts[i].len + 16 > self.views[i].len:
                raise ValueError(f"buffer {i} has no room for the tag")
        with nogil:
            wgf_aead_seal_batch(self.pkts, self.n, k)
        for i in range(self.n):
            self.pkts[i].len += 16

    def open(self, const uint8_t[::1] key) -> int:
        """Open every packet in place; returns how many authenticated (see `results`).

        Authenticated packets' lengths shrink by 16; the others keep theirs.
        """
        cdef const uint8_t *k = fixed_bytes(key, 32, "key")
        cdef Py_ssize_t i
        for i in range(self.n):
            if self.pkts[i].len < 16:
                raise ValueError(f"packet {i} is shorter than the tag")
        cdef size_t ok
        with nogil:
            ok = wgf_aead_open_batch(self.pkts, self.n, k)
        for i in range(self.n):
            if self.pkts[i].result == 0:
                self.pkts[i].len -= 16
        return ok


def seal_batch(key, buffers, lengths, counters) -> list:
    """Seal buffers in place (see PacketBatch); returns the new lengths."""
    batch = PacketBatch(buffers, lengths, counters)
    batch.seal(key)
    return batch.lengths


def open_batch(key, buffers, lengths, counters) -> list:
    """Open buffers in place (see PacketBatch); returns per-packet True/False."""
    batch = PacketBatch(buffers, lengths, counters)
    batch.open(key)
    return batch.results
