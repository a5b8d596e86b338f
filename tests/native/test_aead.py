"""The C AEAD core through its Python skin: RFC 8439 and XChaCha20 known answers, differential
tests against `cryptography` (ChaCha20-Poly1305) and PyNaCl (XChaCha20-Poly1305), every SIMD path
this CPU supports, tampering, and in-place batches of mixed lengths."""

from __future__ import annotations

import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)

from wgfast import _native as native

SUPPORTED = [name for name in native.IMPLS if native.impl_supported(name)]

SUNSCREEN = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the "
    b"future, sunscreen would be it."
)
KEY_00_1F = bytes(range(32))
KEY_80_9F = bytes(range(0x80, 0xA0))


def wg_nonce(counter: int) -> bytes:
    """WireGuard's 96-bit nonce: 32 zero bits then the little-endian 64-bit counter."""
    return b"\0" * 4 + struct.pack("<Q", counter)


@pytest.fixture(params=SUPPORTED)
def impl(request):
    """Runs a test once per implementation this CPU supports, restoring auto afterwards."""
    native.impl_select(request.param)
    yield request.param
    native.impl_select("auto")


def test_scalar_is_always_supported():
    assert "scalar" in SUPPORTED
    assert native.impl_active() in SUPPORTED


def test_unknown_impl_rejected():
    with pytest.raises(ValueError):
        native.impl_select("sse9")


# --- RFC 8439 known answers ---------------------------------------------------------------


def test_rfc8439_2_3_2_block():
    block = native.chacha20_block(KEY_00_1F, bytes.fromhex("000000090000004a00000000"), 1)
    assert block.hex() == (
        "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
        "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e"
    )


def test_rfc8439_a1_zero_block():
    block = native.chacha20_block(bytes(32), bytes(12), 0)
    assert block.hex() == (
        "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
        "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586"
    )


def test_rfc8439_2_4_2_encryption(impl):
    nonce = bytes.fromhex("000000000000004a00000000")
    ct = native.chacha20_xor(KEY_00_1F, nonce, 1, SUNSCREEN)
    assert ct.hex() == (
        "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0b"
        "f91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d8"
        "07ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736"
        "5af90bbf74a35be6b40b8eedf2785e42874d"
    )


def test_rfc8439_2_5_2_poly1305():
    key = bytes.fromhex("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b")
    tag = native.poly1305_mac(key, b"Cryptographic Forum Research Group")
    assert tag.hex() == "a8061dc1305136c6c22b8baf0c0127a9"


def test_rfc8439_2_6_2_poly1305_key_generation():
    key = bytes(range(0x80, 0xA0))
    nonce = bytes.fromhex("000000000001020304050607")
    otk = native.chacha20_block(key, nonce, 0)[:32]
    assert otk.hex() == "8ad5a08b905f81cc815040274ab29471a833b637e3fd0da508dbb8e2fdd1a646"


def test_rfc8439_2_8_2_aead_composition(impl):
    """Section 2.8.2's nonce has a nonzero first word, which WireGuard's nonce layout cannot
    express, so the construction is checked from the primitives the AEAD is built of."""
    nonce = bytes.fromhex("070000004041424344454647")
    ad = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
    otk = native.chacha20_block(KEY_80_9F, nonce, 0)[:32]
    ct = native.chacha20_xor(KEY_80_9F, nonce, 1, SUNSCREEN)

    def pad16(b: bytes) -> bytes:
        return b"\0" * (-len(b) % 16)

    mac_data = ad + pad16(ad) + ct + pad16(ct) + struct.pack("<QQ", len(ad), len(ct))
    tag = native.poly1305_mac(otk, mac_data)
    assert ct.hex().startswith("d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6")
    assert tag.hex() == "1ae10b594f09e26a7e902ecbd0600691"


A5_KEY = bytes.fromhex("1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0")
A5_AD = bytes.fromhex("f33388860000000000004e91")
A5_CT = bytes.fromhex(
    "64a0861575861af460f062c79be643bd5e805cfd345cf389f108670ac76c8cb2"
    "4c6cfc18755d43eea09ee94e382d26b0bdb7b73c321b0100d4f03b7f355894cf"
    "332f830e710b97ce98c8a84abd0b948114ad176e008d33bd60f982b1ff37c855"
    "9797a06ef4f0ef61c186324e2b3506383606907b6a7c02b0f9f6157b53c867e4"
    "b9166c767b804d46a59b5216cde7a4e99040c5a40433225ee282a1b0a06c523e"
    "af4534d7f83fa1155b0047718cbc546a0d072b04b3564eea1b422273f548271a"
    "0bb2316053fa76991955ebd63159434ecebb4e466dae5a1073a6727627097a10"
    "49e617d91d361094fa68f0ff77987130305beaba2eda04df997b714d6c6f2c29"
    "a6ad5cb4022b02709b"
    "eead9d67890cbb22392336fea1851f38"
)
# Appendix A.5's nonce 000000000102030405060708 is WireGuard's layout with this counter.
A5_COUNTER = int.from_bytes(bytes.fromhex("0102030405060708"), "little")


def test_rfc8439_a5_decryption(impl):
    pt = native.open(A5_KEY, A5_COUNTER, A5_CT, A5_AD)
    assert pt.startswith(b"Internet-Drafts are draft documents valid for a maximum of six months")
    assert pt.endswith("/\u201cwork in progress./\u201d".encode())  # sic, as in the RFC
    assert native.seal(A5_KEY, A5_COUNTER, pt, A5_AD) == A5_CT


# --- XChaCha20 draft known answers ----------------------------------------------------------


def test_xchacha_draft_hchacha20():
    nonce = bytes.fromhex("000000090000004a0000000031415927")
    assert native.hchacha20(KEY_00_1F, nonce).hex() == (
        "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc"
    )


def test_xchacha_draft_aead(impl):
    nonce = bytes.fromhex("404142434445464748494a4b4c4d4e4f5051525354555657")
    ad = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
    sealed = native.xseal(KEY_80_9F, nonce, SUNSCREEN, ad)
    assert sealed.hex() == (
        "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
        "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
        "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
        "21f9664c97637da9768812f615c68b13b52e"
        "c0875924c1c7987947deafd8780acf49"
    )
    assert native.xopen(KEY_80_9F, nonce, sealed, ad) == SUNSCREEN


# --- differential tests ---------------------------------------------------------------------

COUNTERS = st.one_of(
    st.integers(0, 2**64 - 1), st.sampled_from([0, 1, 2**32 - 1, 2**32, 2**64 - 2, 2**64 - 1])
)


@settings(max_examples=150, deadline=None)
@given(
    key=st.binary(min_size=32, max_size=32),
    counter=COUNTERS,
    plaintext=st.one_of(st.binary(max_size=300), st.integers(0, 9216).map(lambda n: b"\xa5" * n)),
    ad=st.binary(max_size=64),
)
def test_seal_open_match_cryptography(key, counter, plaintext, ad):
    oracle = ChaCha20Poly1305(key)
    expected = oracle.encrypt(wg_nonce(counter), plaintext, ad)
    for name in SUPPORTED:
        native.impl_select(name)
        try:
            assert native.seal(key, counter, plaintext, ad) == expected, name
            assert native.open(key, counter, expected, ad) == plaintext, name
        finally:
            native.impl_select("auto")


@settings(max_examples=60, deadline=None)
@given(length=st.integers(0, 9216), seed=st.integers(0, 2**32 - 1))
def test_every_length_random_payload_matches_cryptography(length, seed):
    import random

    rng = random.Random(seed)
    key = rng.randbytes(32)
    counter = rng.getrandbits(64)
    plaintext = rng.randbytes(length)
    expected = ChaCha20Poly1305(key).encrypt(wg_nonce(counter), plaintext, b"")
    for name in SUPPORTED:
        native.impl_select(name)
        try:
            assert native.seal(key, counter, plaintext) == expected, name
        finally:
            native.impl_select("auto")


@settings(max_examples=100, deadline=None)
@given(
    key=st.binary(min_size=32, max_size=32),
    nonce=st.binary(min_size=24, max_size=24),
    plaintext=st.binary(max_size=2100),
    ad=st.binary(max_size=64),
)
def test_xchacha_matches_pynacl(key, nonce, plaintext, ad):
    expected = crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, ad, nonce, key)
    assert native.xseal(key, nonce, plaintext, ad) == expected
    assert native.xopen(key, nonce, expected, ad) == plaintext
    assert crypto_aead_xchacha20poly1305_ietf_decrypt(expected, ad, nonce, key) == plaintext


def test_every_simd_path_matches_scalar_for_all_lengths():
    """Forced paths against the scalar path, every length 0..2100 (the SIMD tails)."""
    key = bytes(range(7, 39))
    payload = bytes((i * 31 + 7) & 0xFF for i in range(2100))
    native.impl_select("scalar")
    reference = [native.seal(key, n * 977, payload[:n]) for n in range(2101)]
    try:
        for name in SUPPORTED:
            native.impl_select(name)
            for n in range(2101):
                assert native.seal(key, n * 977, payload[:n]) == reference[n], (name, n)
    finally:
        native.impl_select("auto")


# --- tampering ------------------------------------------------------------------------------


@pytest.mark.parametrize("position", [0, 1, 63, 64, 100, 1419, 1420, 1435])
def test_flipped_bit_rejected(impl, position):
    key = bytes(range(32))
    sealed = native.seal(key, 42, bytes(1420))
    tampered = bytearray(sealed)
    tampered[position] ^= 0x01
    with pytest.raises(native.AuthenticationError):
        native.open(key, 42, bytes(tampered))
    with pytest.raises(native.AuthenticationError):
        native.open(key, 43, sealed)  # wrong counter
    with pytest.raises(native.AuthenticationError):
        native.open(bytes(32), 42, sealed)  # wrong key


def test_xchacha_tamper_rejected():
    key, nonce = bytes(32), bytes(24)
    sealed = bytearray(native.xseal(key, nonce, b"cookie" * 3, b"mac1"))
    with pytest.raises(native.AuthenticationError):
        native.xopen(key, nonce, bytes(sealed), b"mac2")
    sealed[-1] ^= 0x80
    with pytest.raises(native.AuthenticationError):
        native.xopen(key, nonce, bytes(sealed), b"mac1")


def test_short_ciphertext_rejected():
    with pytest.raises(native.AuthenticationError):
        native.open(bytes(32), 0, b"\0" * 15)


def test_bad_key_and_nonce_lengths_rejected():
    with pytest.raises(ValueError):
        native.seal(bytes(31), 0, b"x")
    with pytest.raises(ValueError):
        native.xseal(bytes(32), bytes(23), b"x")


# --- in-place batches -----------------------------------------------------------------------


def make_batch(lengths, headroom=16, seed=1):
    import random

    rng = random.Random(seed)
    plaintexts = [rng.randbytes(n) for n in lengths]
    buffers = [bytearray(p + b"\0" * headroom) for p in plaintexts]
    return plaintexts, buffers


def test_batch_mixed_lengths_matches_one_shot(impl):
    lengths = [0, 1, 15, 16, 17, 63, 64, 65, 255, 256, 511, 1280, 1420, 1500, 8192, 9216]
    key = bytes(range(100, 132))
    counters = [i * 3 + 1000 for i in range(len(lengths))]
    plaintexts, buffers = make_batch(lengths)
    views = [memoryview(b) for b in buffers]
    new_lengths = native.seal_batch(key, views, lengths, counters)
    assert new_lengths == [n + 16 for n in lengths]
    for p, b, c in zip(plaintexts, buffers, counters, strict=True):
        assert bytes(b[: len(p) + 16]) == ChaCha20Poly1305(key).encrypt(wg_nonce(c), p, b"")
    results = native.open_batch(key, buffers, new_lengths, counters)
    assert results == [True] * len(lengths)
    for p, b in zip(plaintexts, buffers, strict=True):
        assert bytes(b[: len(p)]) == p


def test_batch_open_reports_each_failure_and_leaves_it_untouched(impl):
    lengths = [1420] * 8
    key = bytes(32)
    counters = list(range(8))
    _, buffers = make_batch(lengths)
    batch = native.PacketBatch(buffers, lengths, counters)
    batch.seal(key)
    buffers[2][5] ^= 1  # ciphertext
    buffers[5][1430] ^= 1  # tag
    before = [bytes(b) for b in buffers]
    batch.set_counters([0, 1, 2, 3, 4, 5, 6, 99])  # wrong counter for the last
    assert batch.open(key) == 5
    assert batch.results == [True, True, False, True, True, False, True, False]
    for i in (2, 5, 7):
        assert bytes(buffers[i]) == before[i]
    assert batch.lengths == [1420, 1420, 1436, 1420, 1420, 1436, 1420, 1436]


def test_batch_rejects_buffer_without_room_for_tag():
    buffers = [bytearray(100)]
    batch = native.PacketBatch(buffers, [90], [0])
    with pytest.raises(ValueError):
        batch.seal(bytes(32))
    with pytest.raises(ValueError):
        native.PacketBatch(buffers, [101], [0])
    with pytest.raises(BufferError):  # read-only buffers cannot be sealed in place
        native.PacketBatch([b"read-only"], [1], [0])


def test_batch_is_reusable_and_counts():
    key = bytes(range(32))
    buffers = [bytearray(1436) for _ in range(64)]
    batch = native.PacketBatch(buffers, [1420] * 64, range(64))
    for round_ in range(3):
        batch.set_lengths([1420] * 64)
        batch.set_counters(range(round_ * 64, round_ * 64 + 64))
        batch.seal(key)
        assert batch.open(key) == 64
    assert all(b[:1420] == bytearray(1420) for b in buffers)  # the tag stays behind


def test_openssl_baseline_agrees_when_available():
    from wgfast.bench import _cbench

    ok, reason = _cbench.openssl_available()
    if not ok:
        pytest.skip(f"OpenSSL baseline unavailable: {reason}")
    key = bytes(range(32))
    lengths = [0, 1, 64, 1420]
    plaintexts, buffers = make_batch(lengths)
    batch = native.PacketBatch(buffers, lengths, [5, 6, 7, 8])
    _cbench.openssl_seal_batch(batch, key)
    for p, b, c in zip(plaintexts, buffers, [5, 6, 7, 8], strict=True):
        assert bytes(b[: len(p) + 16]) == ChaCha20Poly1305(key).encrypt(wg_nonce(c), p, b"")
    assert _cbench.openssl_open_batch(batch, key) == 4
