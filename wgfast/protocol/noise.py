"""Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s as WireGuard uses it (paper section 5.4).

The primitives (HASH, MAC, HMAC, KDF1/2/3, DH) and the four handshake steps:
create/consume initiation, create/consume response, then transport key derivation.

Decisions:
- The functions here know nothing of peers, sockets or cookies: mac1/mac2 are filled in by
  `wgfast.cookie`, the peer lookup is a callable passed in, and failures come back as a
  `DropReason` value, never as an exception.
- A handshake's state is only changed once the incoming message has fully authenticated, so a
  forged message cannot disturb a handshake in progress (as in the kernel).
- X25519 results of all zeros (low-order points) are rejected (`DropReason.BAD_KEY`).
- Secrets live in `bytes` objects. Python cannot zero immutable bytes, and the interpreter and
  `cryptography` may hold further copies; `Handshake.clear()` drops our references so the memory
  can be reused, which is the best a pure-Python core can do. Transport keys get `bytearray`s
  that are zeroed once the data plane has them (`outputs.InstallKeypair.wipe`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from wgfast.keys import KeyPair, clamp, generate_private_key
from wgfast.protocol import aead, tai64n
from wgfast.protocol.drop import DropReason
from wgfast.protocol.messages import (
    CONSTRUCTION,
    HASH_LEN,
    IDENTIFIER,
    INITIATIONS_PER_SECOND,
    KEY_LEN,
    TIMESTAMP_LEN,
    HandshakeInitiation,
    HandshakeResponse,
    pack_initiation,
    pack_response,
)

log = logging.getLogger(__name__)

ZERO_KEY = bytes(KEY_LEN)


# --- Primitives ---------------------------------------------------------------------------------

def HASH(data: bytes) -> bytes:  # noqa: N802 - the paper's name
    return hashlib.blake2s(data).digest()


def MAC(key: bytes, data: bytes) -> bytes:  # noqa: N802
    """Keyed BLAKE2s with a 16-byte output."""
    return hashlib.blake2s(data, digest_size=16, key=key).digest()


def HMAC(key: bytes, data: bytes) -> bytes:  # noqa: N802
    """HMAC (RFC 2104) over BLAKE2s-256, block size 64."""
    return hmac.digest(key, data, hashlib.blake2s)


def KDF1(key: bytes, data: bytes) -> bytes:  # noqa: N802
    t0 = HMAC(key, data)
    return HMAC(t0, b"\x01")


def KDF2(key: bytes, data: bytes) -> tuple[bytes, bytes]:  # noqa: N802
    t0 = HMAC(key, data)
    t1 = HMAC(t0, b"\x01")
    return t1, HMAC(t0, t1 + b"\x02")


def KDF3(key: bytes, data: bytes) -> tuple[bytes, bytes, bytes]:  # noqa: N802
    t0 = HMAC(key, data)
    t1 = HMAC(t0, b"\x01")
    t2 = HMAC(t0, t1 + b"\x02")
    return t1, t2, HMAC(t0, t2 + b"\x03")


def _public_bytes(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def DH(private: X25519PrivateKey, public: bytes) -> bytes | None:  # noqa: N802
    """X25519; None when the result is all zeros (a low-order public key)."""
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError:
        return None


INITIAL_CHAINING_KEY = HASH(CONSTRUCTION)
INITIAL_HASH = HASH(INITIAL_CHAINING_KEY + IDENTIFIER)


# --- State --------------------------------------------------------------------------------------

class StaticIdentity:
    """The device's static key pair with what every handshake to or from it precomputes."""

    def __init__(self, keypair: KeyPair) -> None:
        self.keypair = keypair
        self.public = keypair.public
        self.private_key = X25519PrivateKey.from_private_bytes(keypair.private)
        # Hash of a handshake addressed to us, after mixing our static public key.
        self.responder_hash = HASH(INITIAL_HASH + keypair.public)

    def static_static(self, remote_public: bytes) -> bytes | None:
        return DH(self.private_key, remote_public)


class HandshakeState(Enum):
    ZEROED = 0
    CREATED_INITIATION = 1
    CONSUMED_INITIATION = 2
    CREATED_RESPONSE = 3
    CONSUMED_RESPONSE = 4


@dataclass(eq=False)
class Handshake:
    """One peer's handshake (the kernel's struct noise_handshake)."""

    remote_static: bytes
    precomputed_static_static: bytes | None
    preshared_key: bytes = ZERO_KEY
    # False while precomputed_static_static is still to be computed (the device derives it on
    # first use: one X25519 per peer at configuration would cost ~70 us x peers per setconf).
    static_static_ready: bool = True
    state: HandshakeState = HandshakeState.ZEROED
    hash: bytes = b""
    chaining_key: bytes = b""
    ephemeral_private: X25519PrivateKey | None = field(default=None, repr=False)
    remote_ephemeral: bytes = b""
    local_index: int | None = None
    remote_index: int = 0
    latest_timestamp: bytes = tai64n.ZERO
    last_initiation_consumption: float | None = None
    # The hash to start from when we are the initiator: HASH(HASH(C0 || ID) || S_pub_r).
    initiator_hash: bytes = field(init=False, default=b"")

    def __post_init__(self) -> None:
        self.initiator_hash = HASH(INITIAL_HASH + self.remote_static)

    def clear(self) -> None:
        """Forget the ephemeral and chaining state (not the timestamp: replay protection)."""
        self.state = HandshakeState.ZEROED
        self.hash = b""
        self.chaining_key = b""
        self.ephemeral_private = None
        self.remote_ephemeral = b""
        self.remote_index = 0


def _ephemeral(private: bytes | None) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(clamp(private or generate_private_key()))


# --- Initiation ---------------------------------------------------------------------------------

def create_initiation(identity: StaticIdentity, hs: Handshake, sender_index: int,
                      timestamp: bytes, ephemeral_private: bytes | None = None) -> bytes | None:
    """A 148-byte initiation with mac1/mac2 zero (see `wgfast.cookie`), or None if the peer's
    static key is unusable (low order). Leaves `hs` in CREATED_INITIATION."""
    if hs.precomputed_static_static is None:
        return None
    eph = _ephemeral(ephemeral_private)
    eph_pub = _public_bytes(eph)
    es = DH(eph, hs.remote_static)
    if es is None:
        return None
    ck = KDF1(INITIAL_CHAINING_KEY, eph_pub)
    h = HASH(hs.initiator_hash + eph_pub)
    ck, k = KDF2(ck, es)
    encrypted_static = aead.seal(k, 0, identity.public, h)
    h = HASH(h + encrypted_static)
    ck, k = KDF2(ck, hs.precomputed_static_static)
    encrypted_timestamp = aead.seal(k, 0, timestamp, h)
    h = HASH(h + encrypted_timestamp)

    hs.state = HandshakeState.CREATED_INITIATION
    hs.ephemeral_private = eph
    hs.chaining_key = ck
    hs.hash = h
    hs.local_index = sender_index
    return pack_initiation(sender_index, eph_pub, encrypted_static, encrypted_timestamp)


def consume_initiation(identity: StaticIdentity, msg: HandshakeInitiation,
                       lookup: Callable[[bytes], Handshake | None],
                       now: float) -> Handshake | DropReason:
    """Authenticate an initiation; on success commit it to the sender's handshake and return it.

    Rejects: undecryptable static or timestamp (DECRYPT_FAILED), unknown static key
    (UNKNOWN_PEER), a timestamp not newer than the last accepted one (STALE_TIMESTAMP), and a
    second initiation from the same peer within 1/INITIATIONS_PER_SECOND (HANDSHAKE_FLOOD).
    """
    e = msg.unencrypted_ephemeral
    es = DH(identity.private_key, e)
    if es is None:
        return DropReason.BAD_KEY
    ck = KDF1(INITIAL_CHAINING_KEY, e)
    h = HASH(identity.responder_hash + e)
    ck, k = KDF2(ck, es)
    remote_static = aead.open(k, 0, msg.encrypted_static, h)
    if remote_static is None:
        return DropReason.DECRYPT_FAILED
    h = HASH(h + msg.encrypted_static)
    hs = lookup(remote_static)
    if hs is None:
        return DropReason.UNKNOWN_PEER
    if hs.precomputed_static_static is None:
        return DropReason.BAD_KEY
    ck, k = KDF2(ck, hs.precomputed_static_static)
    timestamp = aead.open(k, 0, msg.encrypted_timestamp, h)
    if timestamp is None or len(timestamp) != TIMESTAMP_LEN:
        return DropReason.DECRYPT_FAILED
    h = HASH(h + msg.encrypted_timestamp)

    if not tai64n.is_newer(timestamp, hs.latest_timestamp):
        return DropReason.STALE_TIMESTAMP
    last = hs.last_initiation_consumption
    if last is not None and now - last < 1.0 / INITIATIONS_PER_SECOND:
        return DropReason.HANDSHAKE_FLOOD

    hs.remote_ephemeral = e
    hs.latest_timestamp = timestamp
    hs.last_initiation_consumption = now
    hs.hash = h
    hs.chaining_key = ck
    hs.remote_index = msg.sender_index
    hs.state = HandshakeState.CONSUMED_INITIATION
    return hs


# --- Response -----------------------------------------------------------------------------------

def create_response(hs: Handshake, sender_index: int,
                    ephemeral_private: bytes | None = None) -> bytes | None:
    """A 92-byte response (macs zero) to a consumed initiation; None if state or keys are bad.
    Leaves `hs` in CREATED_RESPONSE, ready for `derive_transport_keys`."""
    if hs.state is not HandshakeState.CONSUMED_INITIATION:
        return None
    eph = _ephemeral(ephemeral_private)
    eph_pub = _public_bytes(eph)
    ee = DH(eph, hs.remote_ephemeral)
    se = DH(eph, hs.remote_static)
    if ee is None or se is None:
        return None
    ck = KDF1(hs.chaining_key, eph_pub)
    h = HASH(hs.hash + eph_pub)
    ck = KDF1(ck, ee)
    ck = KDF1(ck, se)
    ck, tau, k = KDF3(ck, hs.preshared_key)
    h = HASH(h + tau)
    encrypted_nothing = aead.seal(k, 0, b"", h)
    h = HASH(h + encrypted_nothing)

    hs.ephemeral_private = eph
    hs.chaining_key = ck
    hs.hash = h
    hs.local_index = sender_index
    hs.state = HandshakeState.CREATED_RESPONSE
    return pack_response(sender_index, hs.remote_index, eph_pub, encrypted_nothing)


def consume_response(identity: StaticIdentity, hs: Handshake,
                     msg: HandshakeResponse) -> DropReason | None:
    """Authenticate a response to our initiation; None on success (state CONSUMED_RESPONSE)."""
    if hs.state is not HandshakeState.CREATED_INITIATION or hs.ephemeral_private is None:
        return DropReason.WRONG_STATE
    e = msg.unencrypted_ephemeral
    ee = DH(hs.ephemeral_private, e)
    se = DH(identity.private_key, e)
    if ee is None or se is None:
        return DropReason.BAD_KEY
    ck = KDF1(hs.chaining_key, e)
    h = HASH(hs.hash + e)
    ck = KDF1(ck, ee)
    ck = KDF1(ck, se)
    ck, tau, k = KDF3(ck, hs.preshared_key)
    h = HASH(h + tau)
    if aead.open(k, 0, msg.encrypted_nothing, h) is None:
        return DropReason.DECRYPT_FAILED
    h = HASH(h + msg.encrypted_nothing)

    hs.remote_ephemeral = e
    hs.chaining_key = ck
    hs.hash = h
    hs.remote_index = msg.sender_index
    hs.state = HandshakeState.CONSUMED_RESPONSE
    return None


# --- Transport keys -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TransportKeys:
    send: bytes
    receive: bytes
    local_index: int
    remote_index: int
    is_initiator: bool

    def __repr__(self) -> str:
        return (f"TransportKeys(local_index={self.local_index}, remote_index={self.remote_index},"
                f" is_initiator={self.is_initiator})")


def derive_transport_keys(hs: Handshake) -> TransportKeys | None:
    """(T_send, T_recv) = KDF2(C, empty), swapped for the responder; then clear the handshake.

    Valid only right after a consumed response (initiator) or a created response (responder).
    """
    if hs.state is HandshakeState.CONSUMED_RESPONSE:
        is_initiator = True
    elif hs.state is HandshakeState.CREATED_RESPONSE:
        is_initiator = False
    else:
        return None
    first, second = KDF2(hs.chaining_key, b"")
    send, receive = (first, second) if is_initiator else (second, first)
    assert hs.local_index is not None
    keys = TransportKeys(send, receive, hs.local_index, hs.remote_index, is_initiator)
    hs.clear()
    return keys


assert len(INITIAL_HASH) == HASH_LEN
