"""Key generation and the base64/hex forms that wg genkey/pubkey/genpsk and the UAPI use."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wgfast import keys

# RFC 7748 section 6.1 (Alice).
RFC_PRIVATE = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
RFC_PUBLIC = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")


def test_public_key_known_answer():
    assert keys.public_key(RFC_PRIVATE) == RFC_PUBLIC
    assert keys.KeyPair.from_private(RFC_PRIVATE).public == RFC_PUBLIC
    # wg pubkey clamps internally: the unclamped and clamped forms give the same public key.
    assert keys.public_key(keys.clamp(RFC_PRIVATE)) == RFC_PUBLIC


def test_generated_private_keys_are_clamped():
    for _ in range(20):
        k = keys.generate_private_key()
        assert len(k) == 32 and k[0] & 7 == 0 and k[31] & 0x80 == 0 and k[31] & 0x40


def test_psk_is_32_random_bytes():
    a, b = keys.generate_preshared_key(), keys.generate_preshared_key()
    assert len(a) == 32 and a != b


@given(st.binary(min_size=32, max_size=32))
def test_base64_and_hex_round_trip(raw):
    text = keys.to_base64(raw)
    assert len(text) == 44 and text.endswith("=") and text == base64.b64encode(raw).decode()
    assert keys.from_base64(text) == raw
    assert keys.from_base64(text + "\n") == raw
    assert keys.to_hex(raw) == raw.hex()
    assert keys.from_hex(raw.hex().upper()) == raw


@pytest.mark.parametrize("bad", [
    "",
    "A" * 44,  # no padding
    "A" * 42 + "==",  # two padding characters: 31 bytes
    "A" * 43 + "=" + "A",
    "A" * 42 + "B=",  # non-canonical: nonzero unused bits
    "A" * 42 + "!=",
    base64.b64encode(bytes(33)).decode(),
])
def test_base64_rejects(bad):
    with pytest.raises(keys.KeyFormatError):
        keys.from_base64(bad)


@pytest.mark.parametrize("bad", ["", "00" * 31, "zz" * 32, "00" * 33])
def test_hex_rejects(bad):
    with pytest.raises(keys.KeyFormatError):
        keys.from_hex(bad)


def test_wrong_lengths_rejected():
    with pytest.raises(keys.KeyFormatError):
        keys.to_base64(bytes(31))
    with pytest.raises(keys.KeyFormatError):
        keys.public_key(bytes(31))


def test_keypair_repr_hides_private():
    kp = keys.KeyPair.from_private(RFC_PRIVATE)
    assert RFC_PRIVATE.hex() not in repr(kp) and keys.to_base64(RFC_PRIVATE) not in repr(kp)


def test_interoperates_with_wg_tool():
    """`wg` itself as the oracle: its genkey/genpsk output parses, its pubkey matches ours."""
    import subprocess

    from support import needs_cmd

    wg = needs_cmd("wg")

    def run(*args: str, stdin: str = "") -> str:
        return subprocess.run([wg, *args], input=stdin, capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()

    private_text = run("genkey")
    private = keys.from_base64(private_text)
    assert private == keys.clamp(private)
    assert keys.from_base64(run("pubkey", stdin=private_text)) == keys.public_key(private)
    ours = keys.generate_private_key()
    assert run("pubkey", stdin=keys.to_base64(ours)) == keys.to_base64(keys.public_key(ours))
    assert len(keys.from_base64(run("genpsk"))) == 32
    # wg refuses a non-canonical key just as we do.
    bad = "A" * 42 + "B="
    proc = subprocess.run([wg, "pubkey"], input=bad, capture_output=True, text=True, timeout=10)
    assert proc.returncode != 0
