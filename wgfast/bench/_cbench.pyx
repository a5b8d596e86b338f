# cython: language_level=3
"""wgfast.bench._cbench: compiled helpers only the benchmarks (and the tests of the C tables)
use, kept out of the data plane's module: OpenSSL's EVP ChaCha20-Poly1305 driven one packet per
call (the baseline of `wgfast bench crypto`), a timing loop in C, and bindings for the C lookup
tables (allowed IPs, replay window, receiver indices) so they can be measured and tested from
Python.
"""

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc

from wgfast._native cimport PacketBatch, fixed_bytes
from wgfast.includes.aead cimport wgf_aead_open_batch, wgf_aead_seal_batch

include "evp.pxi"
include "benchloop.pxi"
include "tables.pxi"
