"""Curve25519 keys and their text forms, exactly as `wg genkey`, `wg pubkey` and `wg genpsk` use.

- base64: 44 characters (43 + one '='), decoding to 32 bytes. Like wg, only the canonical encoding
  is accepted: the last character's two unused bits must be zero.
- hex: 64 characters, as the cross-platform UAPI uses; we emit lowercase and accept either case.
- private keys are clamped (RFC 7748) when generated, as `wg genkey` does; `public_key()` accepts
  an unclamped private key too (X25519 clamps internally), as `wg pubkey` does.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from wgfast.errors import KeyFormatError

KEY_LEN = 32
KEY_BASE64_LEN = 44
KEY_HEX_LEN = 64


def clamp(private: bytes) -> bytes:
    """RFC 7748 scalar clamping, as wg applies to generated private keys."""
    if len(private) != KEY_LEN:
        raise KeyFormatError(f"private key must be {KEY_LEN} bytes")
    k = bytearray(private)
    k[0] &= 248
    k[31] = (k[31] & 127) | 64
    return bytes(k)


def generate_private_key() -> bytes:
    """A fresh clamped private key (what `wg genkey` prints, before base64)."""
    return clamp(os.urandom(KEY_LEN))


def generate_preshared_key() -> bytes:
    """32 random bytes (what `wg genpsk` prints, before base64): no clamping."""
    return os.urandom(KEY_LEN)


def public_key(private: bytes) -> bytes:
    """X25519 public key of a private key (clamped internally, so unclamped input is fine)."""
    if len(private) != KEY_LEN:
        raise KeyFormatError(f"private key must be {KEY_LEN} bytes")
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw
    )


def to_base64(key: bytes) -> str:
    if len(key) != KEY_LEN:
        raise KeyFormatError(f"key must be {KEY_LEN} bytes")
    return base64.b64encode(key).decode("ascii")


def from_base64(text: str) -> bytes:
    """Decode a wg base64 key; rejects anything wg's key_from_base64 would reject."""
    text = text.strip()
    if len(text) != KEY_BASE64_LEN or text[-1] != "=" or text[-2] == "=":
        raise KeyFormatError("a key is 44 base64 characters ending in one '='")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyFormatError(f"invalid base64 key: {exc}") from None
    # Non-canonical encodings (nonzero unused bits in the last character) decode to the same
    # bytes as the canonical one; wg refuses them, so do we.
    if len(raw) != KEY_LEN or base64.b64encode(raw).decode("ascii") != text:
        raise KeyFormatError("non-canonical base64 key")
    return raw


def to_hex(key: bytes) -> str:
    if len(key) != KEY_LEN:
        raise KeyFormatError(f"key must be {KEY_LEN} bytes")
    return key.hex()


def from_hex(text: str) -> bytes:
    text = text.strip()
    if len(text) != KEY_HEX_LEN:
        raise KeyFormatError(f"a hex key is {KEY_HEX_LEN} characters")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise KeyFormatError("invalid hex key") from None


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A static Curve25519 key pair."""

    private: bytes
    public: bytes

    @classmethod
    def generate(cls) -> KeyPair:
        return cls.from_private(generate_private_key())

    @classmethod
    def from_private(cls, private: bytes) -> KeyPair:
        return cls(private=bytes(private), public=public_key(private))

    def __repr__(self) -> str:  # never print the private key
        return f"KeyPair(public={to_base64(self.public)})"
