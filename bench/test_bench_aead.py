"""pytest-benchmark cases for the AEAD core: `pytest bench/ --benchmark-only`.

Each case seals or opens a batch of 64 packets; the `cryptography` case does the same work one
packet per call, as the baseline in the same run (compare the rows' means)."""

from __future__ import annotations

import os
import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from wgfast import _native as native

BATCH = 64
SIZES = [64, 512, 1420, 8192]


@pytest.mark.parametrize("size", SIZES)
def test_wgfast_seal_batch(benchmark, size):
    key = os.urandom(32)
    buffers = [bytearray(size + 16) for _ in range(BATCH)]
    batch = native.PacketBatch(buffers, [size] * BATCH, range(BATCH))
    lengths = [size] * BATCH

    def seal():
        batch.set_lengths(lengths)
        batch.seal(key)

    benchmark.extra_info["bytes_per_round"] = size * BATCH
    benchmark(seal)


@pytest.mark.parametrize("size", SIZES)
def test_cryptography_seal_one_per_call(benchmark, size):
    aead = ChaCha20Poly1305(os.urandom(32))
    nonces = [b"\0" * 4 + struct.pack("<Q", i) for i in range(BATCH)]
    payload = os.urandom(size)

    def seal():
        for nonce in nonces:
            aead.encrypt(nonce, payload, None)

    benchmark.extra_info["bytes_per_round"] = size * BATCH
    benchmark(seal)
