"""The handshake's AEADs, provided by the compiled core (`wgfast._native`).

- seal/open: ChaCha20-Poly1305 with WireGuard's nonce (4 zero bytes || little-endian counter).
- xseal/xopen: XChaCha20-Poly1305 (24-byte nonce), for cookie replies.

Decision: open/xopen return None when the tag does not verify (the native functions raise
`AuthenticationError`; the adapter turns that into None) so that every caller in the protocol
core handles failure as a plain value and counts a drop — no exception can escape by accident.
The extension is imported on first use, so importing the protocol modules does not need a built
extension (tools that only parse keys or messages keep working).
"""

from __future__ import annotations

from types import ModuleType

_native: ModuleType | None = None


def _core() -> ModuleType:
    global _native
    if _native is None:
        from wgfast import _native as native

        _native = native
    return _native


def seal(key: bytes, counter: int, plaintext: bytes, ad: bytes = b"") -> bytes:
    """ChaCha20-Poly1305 seal: ciphertext || 16-byte tag."""
    return _core().seal(key, counter, plaintext, ad)


def open(key: bytes, counter: int, ciphertext: bytes, ad: bytes = b"") -> bytes | None:  # noqa: A001
    """ChaCha20-Poly1305 open: the plaintext, or None if the tag does not verify."""
    core = _core()
    try:
        return core.open(key, counter, ciphertext, ad)
    except core.AuthenticationError:
        return None


def xseal(key: bytes, nonce: bytes, plaintext: bytes, ad: bytes = b"") -> bytes:
    """XChaCha20-Poly1305 seal with a 24-byte nonce: ciphertext || tag."""
    return _core().xseal(key, nonce, plaintext, ad)


def xopen(key: bytes, nonce: bytes, ciphertext: bytes, ad: bytes = b"") -> bytes | None:
    """XChaCha20-Poly1305 open: the plaintext, or None if the tag does not verify."""
    core = _core()
    try:
        return core.xopen(key, nonce, ciphertext, ad)
    except core.AuthenticationError:
        return None
