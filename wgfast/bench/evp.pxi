# Bindings for csrc/evp_baseline.h: OpenSSL EVP one packet per call, the benchmark's baseline.

from wgfast.includes.evp_baseline cimport *


def openssl_available() -> tuple:
    """(True, None) if libcrypto's EVP ChaCha20-Poly1305 could be loaded, else (False, reason)."""
    if wgf_evp_load() == 0:
        return True, None
    return False, wgf_evp_error().decode()


def openssl_seal_batch(PacketBatch batch, const uint8_t[::1] key) -> None:
    """Seal `batch` in place through OpenSSL EVP, one init/update/final per packet."""
    cdef const uint8_t *k = fixed_bytes(key, 32, "key")
    cdef Py_ssize_t i
    cdef long rc
    for i in range(batch.n):
        if <Py_ssize_t>batch.pkts[i].len + 16 > batch.views[i].len:
            raise ValueError(f"buffer {i} has no room for the tag")
    with nogil:
        rc = wgf_evp_seal_batch(batch.pkts, batch.n, k)
    if rc < 0:
        raise RuntimeError(f"OpenSSL EVP seal failed: {(wgf_evp_error() or b'').decode()}")
    for i in range(batch.n):
        batch.pkts[i].len += 16


def openssl_open_batch(PacketBatch batch, const uint8_t[::1] key) -> int:
    """Open `batch` in place through OpenSSL EVP; returns how many authenticated."""
    cdef const uint8_t *k = fixed_bytes(key, 32, "key")
    cdef Py_ssize_t i
    cdef long rc
    with nogil:
        rc = wgf_evp_open_batch(batch.pkts, batch.n, k)
    if rc < 0:
        raise RuntimeError("OpenSSL EVP not available")
    for i in range(batch.n):
        if batch.pkts[i].result == 0:
            batch.pkts[i].len -= 16
    return rc
