# C declarations of csrc/bench/evp_baseline.h (the benchmark's OpenSSL baseline).
from libc.stdint cimport uint8_t

from wgfast.includes.aead cimport wgf_packet


cdef extern from "evp_baseline.h" nogil:
    int wgf_evp_load()
    const char *wgf_evp_error()
    long wgf_evp_seal_batch(wgf_packet *pkts, size_t n, const uint8_t *key)
    long wgf_evp_open_batch(wgf_packet *pkts, size_t n, const uint8_t *key)
