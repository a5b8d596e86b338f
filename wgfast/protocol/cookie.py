"""The sending side of mac1, mac2 and cookie replies (paper section 5.4.4 and 5.4.7; the kernel's
cookie.c): `CookieJar`, one per peer, adds mac1 (keyed with HASH(LABEL_MAC1 || the peer's public
key)) and, while it holds a fresh cookie, mac2 to the handshake messages we send; it remembers
the last mac1 it sent so it can open the cookie reply that answers it (a reply is accepted once
per sent mac1).

The receiving side (checking mac1 and mac2 on what arrives, deciding "under load", making cookie
replies and the per-source rate limit) is the data plane's, in C before the control queue
(csrc/cookie.c, csrc/ratelimiter.c, csrc/dataplane_handshake.c): the protocol core only ever sees
initiations and responses that passed it, and cookie replies for an index of ours.

Decision: a stored cookie is used for COOKIE_SECRET_MAX_AGE - COOKIE_SECRET_LATENCY (115 s), so
that we stop using it before the responder's secret rotates under it (the kernel's margin).
"""

from __future__ import annotations

from wgfast.protocol import aead
from wgfast.protocol.messages import (
    COOKIE_LEN,
    COOKIE_SECRET_LATENCY,
    COOKIE_SECRET_MAX_AGE,
    LABEL_COOKIE,
    LABEL_MAC1,
    MAC_LEN,
    CookieReply,
    mac1_offset,
)
from wgfast.protocol.noise import HASH, MAC


def mac1_key(public: bytes) -> bytes:
    return HASH(LABEL_MAC1 + public)


def cookie_key(public: bytes) -> bytes:
    return HASH(LABEL_COOKIE + public)


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
