"""mac1, mac2 and cookie replies (paper section 5.4.4 and 5.4.7; the kernel's cookie.c).

Two sides, one per class:
- `CookieChecker` (one per device, the receiving side): checks mac1 (keyed with
  HASH("mac1----" || our public key)), and, under load, mac2 against the cookie for the source
  address; makes cookie replies. Its secret is rotated every COOKIE_SECRET_MAX_AGE.
- `CookieJar` (one per peer, the sending side): adds mac1 (keyed with the peer's public key) and,
  while it holds a fresh cookie, mac2; remembers the last mac1 it sent so it can open the cookie
  reply that answers it (a reply is accepted once per sent mac1).

Decisions:
- The source address is hashed as the raw IP bytes followed by the big-endian UDP port, which is
  what the kernel hashes from the IP and UDP headers.
- A stored cookie is used for COOKIE_SECRET_MAX_AGE - COOKIE_SECRET_LATENCY (115 s), so that we
  stop using it before the responder's secret rotates under it (the kernel's margin).
- The rate limiter is not consulted here: the device decides under-load policy (see
  `wgfast.device_state`), keeping this file to the MAC arithmetic.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Callable
from enum import Enum

from wgfast.protocol import aead
from wgfast.protocol.messages import (
    COOKIE_LEN,
    COOKIE_NONCE_LEN,
    COOKIE_SECRET_LATENCY,
    COOKIE_SECRET_MAX_AGE,
    KEY_LEN,
    LABEL_COOKIE,
    LABEL_MAC1,
    MAC_LEN,
    CookieReply,
    mac1_offset,
    pack_cookie_reply,
)
from wgfast.protocol.noise import HASH, MAC

Address = tuple[str, int]


def mac1_key(public: bytes) -> bytes:
    return HASH(LABEL_MAC1 + public)


def cookie_key(public: bytes) -> bytes:
    return HASH(LABEL_COOKIE + public)


def address_bytes(source: Address) -> bytes:
    """IP bytes || big-endian port. A malformed address yields b"" (still a valid hash input)."""
    host, port = source[0], source[1]
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
        return ip.packed + int(port).to_bytes(2, "big")
    except (ValueError, OverflowError, AttributeError):
        return b""


class MacState(Enum):
    INVALID_MAC = 0
    VALID_MAC_BUT_NO_COOKIE = 1
    VALID_MAC_WITH_COOKIE = 2


class CookieChecker:
    """Receiver side: validates mac1/mac2 and answers with cookie replies."""

    def __init__(self, public: bytes, random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        self._random_bytes = random_bytes
        self._mac1_key = mac1_key(public)
        self._cookie_encryption_key = cookie_key(public)
        self._secret = bytearray(KEY_LEN)
        self._secret_birthdate: float | None = None

    def _current_secret(self, now: float) -> bytes:
        if self._secret_birthdate is None or now - self._secret_birthdate >= COOKIE_SECRET_MAX_AGE:
            self._secret[:] = self._random_bytes(KEY_LEN)
            self._secret_birthdate = now
        return bytes(self._secret)

    def make_cookie(self, source: Address, now: float) -> bytes:
        return MAC(self._current_secret(now), address_bytes(source))

    def check_mac1(self, message: bytes) -> bool:
        off = mac1_offset(len(message))
        expected = MAC(self._mac1_key, message[:off])
        return hmac.compare_digest(expected, message[off:off + MAC_LEN])

    def validate(self, message: bytes, source: Address, now: float,
                 check_cookie: bool) -> MacState:
        """mac1 first (always); mac2 only when `check_cookie` (the device is under load)."""
        if not self.check_mac1(message):
            return MacState.INVALID_MAC
        if not check_cookie:
            return MacState.VALID_MAC_BUT_NO_COOKIE
        off = mac1_offset(len(message)) + MAC_LEN
        expected = MAC(self.make_cookie(source, now), message[:off])
        if not hmac.compare_digest(expected, message[off:off + MAC_LEN]):
            return MacState.VALID_MAC_BUT_NO_COOKIE
        return MacState.VALID_MAC_WITH_COOKIE

    def make_reply(self, message: bytes, sender_index: int, source: Address,
                   now: float) -> bytes:
        """A 64-byte cookie reply to `message` (whose sender index is `sender_index`)."""
        off = mac1_offset(len(message))
        mac1 = message[off:off + MAC_LEN]
        nonce = self._random_bytes(COOKIE_NONCE_LEN)
        cookie = self.make_cookie(source, now)
        encrypted = aead.xseal(self._cookie_encryption_key, nonce, cookie, mac1)
        return pack_cookie_reply(sender_index, nonce, encrypted)


class CookieJar:
    """Sender side, one per peer: adds macs and stores the peer's cookie."""

    def __init__(self, remote_public: bytes) -> None:
        self._mac1_key = mac1_key(remote_public)
        self._cookie_decryption_key = cookie_key(remote_public)
        self.cookie: bytes | None = None
        self.cookie_birthdate: float | None = None
        self.last_mac1_sent = bytes(MAC_LEN)
        self.have_sent_mac1 = False

    def has_fresh_cookie(self, now: float) -> bool:
        return (self.cookie is not None and self.cookie_birthdate is not None
                and now - self.cookie_birthdate < COOKIE_SECRET_MAX_AGE - COOKIE_SECRET_LATENCY)

    def add_macs(self, message: bytes, now: float) -> bytes:
        """`message` (macs zero) with mac1 and, if we hold a fresh cookie, mac2 filled in."""
        off = mac1_offset(len(message))
        mac1 = MAC(self._mac1_key, message[:off])
        self.last_mac1_sent = mac1
        self.have_sent_mac1 = True
        with_mac1 = message[:off] + mac1
        if self.has_fresh_cookie(now):
            assert self.cookie is not None
            mac2 = MAC(self.cookie, with_mac1)
        else:
            mac2 = bytes(MAC_LEN)
        return with_mac1 + mac2

    def consume_reply(self, reply: CookieReply, now: float) -> bool:
        """Store the cookie if the reply answers our last mac1; False (and no change) if not."""
        if not self.have_sent_mac1:
            return False
        cookie = aead.xopen(self._cookie_decryption_key, reply.nonce, reply.encrypted_cookie,
                            self.last_mac1_sent)
        if cookie is None or len(cookie) != COOKIE_LEN:
            return False
        self.cookie = cookie
        self.cookie_birthdate = now
        self.have_sent_mac1 = False
        return True
