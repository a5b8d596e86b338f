# A timing loop in C for `wgfast bench crypto`: runs a batch operation many times without
# returning to Python in between, so the figures are the C core's, not the interpreter's.
from libc.string cimport memcpy
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

cdef double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9

ENGINES = ("wgfast", "openssl-evp")


def time_batch(PacketBatch batch, const uint8_t[::1] key, str op, str engine,
               long iterations) -> float:
    """Seconds per batch operation, averaged over `iterations` runs.

    op "seal": each run seals the batch's current lengths in place (the lengths are restored
    between runs; sealing ciphertext again costs the same as sealing plaintext).
    op "open": the batch is sealed once; each run first restores the sealed bytes (a memcpy) and
    then opens them; the time of the restores alone is measured separately and subtracted.
    """
    if op not in ("seal", "open") or engine not in ENGINES:
        raise ValueError("op is seal|open, engine is one of " + ", ".join(ENGINES))
    if iterations < 1:
        raise ValueError("iterations must be positive")
    cdef const uint8_t *k = fixed_bytes(key, 32, "key")
    cdef bint evp = engine == "openssl-evp"
    if evp and wgf_evp_load() != 0:
        raise RuntimeError(wgf_evp_error().decode())
    cdef Py_ssize_t n = batch.n, i
    for i in range(n):
        if <Py_ssize_t>batch.pkts[i].len + 16 > batch.views[i].len:
            raise ValueError(f"buffer {i} has no room for the tag")
    cdef size_t *plain_len = <size_t *>calloc(max(n, 1), sizeof(size_t))
    cdef uint8_t **saved = <uint8_t **>calloc(max(n, 1), sizeof(uint8_t *))
    if plain_len == NULL or saved == NULL:
        free(plain_len)
        free(saved)
        raise MemoryError()
    cdef double start, elapsed = 0.0, restore = 0.0
    cdef long it
    cdef bint failed = False
    try:
        for i in range(n):
            plain_len[i] = batch.pkts[i].len
        if op == "seal":
            with nogil:
                start = _now()
                for it in range(iterations):
                    for i in range(n):
                        batch.pkts[i].len = plain_len[i]
                    if evp:
                        failed = wgf_evp_seal_batch(batch.pkts, n, k) < 0
                    else:
                        wgf_aead_seal_batch(batch.pkts, n, k)
                elapsed = _now() - start
                for i in range(n):
                    batch.pkts[i].len = plain_len[i]
            if failed:
                raise RuntimeError("OpenSSL EVP seal failed")
            return elapsed / iterations
        # open: seal once, keep the sealed images, restore them before every open.
        wgf_aead_seal_batch(batch.pkts, n, k)
        for i in range(n):
            batch.pkts[i].len = plain_len[i] + 16
            saved[i] = <uint8_t *>malloc(plain_len[i] + 16)
            if saved[i] == NULL:
                raise MemoryError()
            memcpy(saved[i], batch.pkts[i].data, plain_len[i] + 16)
        with nogil:
            start = _now()
            for it in range(iterations):
                for i in range(n):
                    memcpy(batch.pkts[i].data, saved[i], plain_len[i] + 16)
                    batch.pkts[i].len = plain_len[i] + 16
            restore = _now() - start
            start = _now()
            for it in range(iterations):
                for i in range(n):
                    memcpy(batch.pkts[i].data, saved[i], plain_len[i] + 16)
                    batch.pkts[i].len = plain_len[i] + 16
                if evp:
                    failed = wgf_evp_open_batch(batch.pkts, n, k) != n
                else:
                    failed = wgf_aead_open_batch(batch.pkts, n, k) != <size_t>n
                if failed:
                    break
            elapsed = _now() - start
        if failed:
            raise RuntimeError("benchmark open failed to authenticate its own packets")
        for i in range(n):
            batch.pkts[i].len = plain_len[i]
        return max(elapsed - restore, 1e-12) / iterations
    finally:
        for i in range(n):
            free(saved[i])
        free(saved)
        free(plain_len)
