"""WireGuard wire constants and the four message formats (the kernel's messages.h in Python).

Every integer on the wire is little-endian. The first four bytes of every message are read as one
little-endian u32 "type", so the three reserved bytes must be zero: a message whose reserved bytes
are not zero has an unknown type and is dropped, as the kernel does.

`parse()` never raises on any input: it returns one of the message dataclasses or a
`ParseFailure` naming why the datagram was rejected (`bad_length` or `bad_type`).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from wgfast.protocol.drop import DropReason

# --- Test hook: shortened protocol timers ------------------------------------------------------
# WGFAST_TEST_TIME_SCALE, a number in (0, 1], multiplies the protocol's session times below
# (REKEY_AFTER_TIME, REJECT_AFTER_TIME, REKEY_ATTEMPT_TIME, REKEY_TIMEOUT and its jitter,
# KEEPALIVE_TIMEOUT) so that tests can watch rekeys happen in seconds. It is read once, when this
# module is first imported (daemon start); the device hands the same scaled values to the data
# plane (DataPlane.set_time_limits). Unset means 1: the paper's values. Never set it outside
# tests: a scaled device still interoperates, but rekeys and keepalives far more often.
TEST_TIME_SCALE_ENV = "WGFAST_TEST_TIME_SCALE"


def _read_test_time_scale() -> float:
    raw = os.environ.get(TEST_TIME_SCALE_ENV, "").strip()
    if not raw:
        return 1.0
    try:
        scale = float(raw)
    except ValueError:
        raise ValueError(f"{TEST_TIME_SCALE_ENV}={raw!r} is not a number") from None
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"{TEST_TIME_SCALE_ENV}={raw!r} is not in (0, 1]")
    return scale


TEST_TIME_SCALE = _read_test_time_scale()

# --- Protocol constants, under the paper's names (seconds and message counts) -----------------

REKEY_AFTER_MESSAGES = 1 << 60
REJECT_AFTER_MESSAGES = (1 << 64) - (1 << 13) - 1
REKEY_AFTER_TIME = 120.0 * TEST_TIME_SCALE
REJECT_AFTER_TIME = 180.0 * TEST_TIME_SCALE
REKEY_ATTEMPT_TIME = 90.0 * TEST_TIME_SCALE
REKEY_TIMEOUT = 5.0 * TEST_TIME_SCALE
REKEY_TIMEOUT_JITTER_MAX = 1.0 / 3.0 * TEST_TIME_SCALE
KEEPALIVE_TIMEOUT = 10.0 * TEST_TIME_SCALE
COOKIE_SECRET_MAX_AGE = 120.0
# The initiator treats a stored cookie as stale this long before the responder rotates its secret.
COOKIE_SECRET_LATENCY = 5.0
# A responder consumes at most this many initiations per second from one peer (one per 20 ms).
INITIATIONS_PER_SECOND = 50
MAX_TIMER_HANDSHAKES = round(REKEY_ATTEMPT_TIME / REKEY_TIMEOUT)  # 18 retransmissions
MAX_STAGED_PACKETS = 128
# "Under load" (the queue of handshakes for us at 1/8 of its size, and UNDER_LOAD_AFTER_TIME
# after) is the data plane's: WGF_DP_UNDER_LOAD_QUEUE and WGF_DP_UNDER_LOAD_AFTER_NS in
# csrc/dataplane.h.

# --- Cryptographic sizes ------------------------------------------------------------------------

KEY_LEN = 32
HASH_LEN = 32
TAG_LEN = 16  # Poly1305 tag
COOKIE_LEN = 16
COOKIE_NONCE_LEN = 24
TIMESTAMP_LEN = 12
MAC_LEN = 16

CONSTRUCTION = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
IDENTIFIER = b"WireGuard v1 zx2c4 Jason@zx2c4.com"
LABEL_MAC1 = b"mac1----"
LABEL_COOKIE = b"cookie--"

# --- Message types and sizes --------------------------------------------------------------------

MESSAGE_HANDSHAKE_INITIATION = 1
MESSAGE_HANDSHAKE_RESPONSE = 2
MESSAGE_HANDSHAKE_COOKIE = 3
MESSAGE_DATA = 4

_INITIATION = struct.Struct("<I I 32s 48s 28s 16s 16s")
_RESPONSE = struct.Struct("<I I I 32s 16s 16s 16s")
_COOKIE_REPLY = struct.Struct("<I I 24s 32s")
_DATA_HEADER = struct.Struct("<I I Q")

MESSAGE_HANDSHAKE_INITIATION_LEN = _INITIATION.size  # 148
MESSAGE_HANDSHAKE_RESPONSE_LEN = _RESPONSE.size  # 92
MESSAGE_HANDSHAKE_COOKIE_LEN = _COOKIE_REPLY.size  # 64
MESSAGE_DATA_HEADER_LEN = _DATA_HEADER.size  # 16
MESSAGE_DATA_MIN_LEN = MESSAGE_DATA_HEADER_LEN + TAG_LEN  # 32: a keepalive
MESSAGE_PADDING_MULTIPLE = 16

# Where mac1 and mac2 sit: mac1 covers everything before it, mac2 everything before mac2.
INITIATION_MAC1_OFFSET = MESSAGE_HANDSHAKE_INITIATION_LEN - 2 * MAC_LEN  # 116
RESPONSE_MAC1_OFFSET = MESSAGE_HANDSHAKE_RESPONSE_LEN - 2 * MAC_LEN  # 60


def mac1_offset(message_len: int) -> int:
    """Offset of mac1 in a handshake message of this length (mac2 follows it)."""
    return message_len - 2 * MAC_LEN


@dataclass(frozen=True, slots=True)
class HandshakeInitiation:
    sender_index: int
    unencrypted_ephemeral: bytes
    encrypted_static: bytes
    encrypted_timestamp: bytes
    mac1: bytes
    mac2: bytes
    raw: bytes  # the whole message as received, for mac checks

    def pack(self) -> bytes:
        return pack_initiation(
            self.sender_index, self.unencrypted_ephemeral, self.encrypted_static,
            self.encrypted_timestamp, self.mac1, self.mac2,
        )


@dataclass(frozen=True, slots=True)
class HandshakeResponse:
    sender_index: int
    receiver_index: int
    unencrypted_ephemeral: bytes
    encrypted_nothing: bytes
    mac1: bytes
    mac2: bytes
    raw: bytes

    def pack(self) -> bytes:
        return pack_response(
            self.sender_index, self.receiver_index, self.unencrypted_ephemeral,
            self.encrypted_nothing, self.mac1, self.mac2,
        )


@dataclass(frozen=True, slots=True)
class CookieReply:
    receiver_index: int
    nonce: bytes
    encrypted_cookie: bytes
    raw: bytes

    def pack(self) -> bytes:
        return pack_cookie_reply(self.receiver_index, self.nonce, self.encrypted_cookie)


@dataclass(frozen=True, slots=True)
class TransportHeader:
    """Only the header of a type-4 message: the payload is opened by the data plane in C."""

    receiver_index: int
    counter: int
    length: int


@dataclass(frozen=True, slots=True)
class ParseFailure:
    reason: DropReason


Message = HandshakeInitiation | HandshakeResponse | CookieReply | TransportHeader


def pack_initiation(sender_index: int, ephemeral: bytes, encrypted_static: bytes,
                    encrypted_timestamp: bytes, mac1: bytes = bytes(MAC_LEN),
                    mac2: bytes = bytes(MAC_LEN)) -> bytes:
    return _INITIATION.pack(MESSAGE_HANDSHAKE_INITIATION, sender_index, ephemeral,
                            encrypted_static, encrypted_timestamp, mac1, mac2)


def pack_response(sender_index: int, receiver_index: int, ephemeral: bytes,
                  encrypted_nothing: bytes, mac1: bytes = bytes(MAC_LEN),
                  mac2: bytes = bytes(MAC_LEN)) -> bytes:
    return _RESPONSE.pack(MESSAGE_HANDSHAKE_RESPONSE, sender_index, receiver_index, ephemeral,
                          encrypted_nothing, mac1, mac2)


def pack_cookie_reply(receiver_index: int, nonce: bytes, encrypted_cookie: bytes) -> bytes:
    return _COOKIE_REPLY.pack(MESSAGE_HANDSHAKE_COOKIE, receiver_index, nonce, encrypted_cookie)


def pack_data_header(receiver_index: int, counter: int) -> bytes:
    return _DATA_HEADER.pack(MESSAGE_DATA, receiver_index, counter)


def message_type(datagram: bytes) -> int | None:
    """The little-endian u32 type (reserved bytes included), or None if shorter than 4 bytes."""
    if len(datagram) < 4:
        return None
    return int.from_bytes(datagram[:4], "little")


def parse(datagram: bytes) -> Message | ParseFailure:
    """Parse one UDP payload. Never raises for any bytes-like input."""
    data = bytes(datagram)
    kind = message_type(data)
    if kind is None:
        return ParseFailure(DropReason.BAD_LENGTH)
    n = len(data)
    if kind == MESSAGE_HANDSHAKE_INITIATION:
        if n != MESSAGE_HANDSHAKE_INITIATION_LEN:
            return ParseFailure(DropReason.BAD_LENGTH)
        _, sender, eph, static, ts, mac1, mac2 = _INITIATION.unpack(data)
        return HandshakeInitiation(sender, eph, static, ts, mac1, mac2, data)
    if kind == MESSAGE_HANDSHAKE_RESPONSE:
        if n != MESSAGE_HANDSHAKE_RESPONSE_LEN:
            return ParseFailure(DropReason.BAD_LENGTH)
        _, sender, receiver, eph, empty, mac1, mac2 = _RESPONSE.unpack(data)
        return HandshakeResponse(sender, receiver, eph, empty, mac1, mac2, data)
    if kind == MESSAGE_HANDSHAKE_COOKIE:
        if n != MESSAGE_HANDSHAKE_COOKIE_LEN:
            return ParseFailure(DropReason.BAD_LENGTH)
        _, receiver, nonce, cookie = _COOKIE_REPLY.unpack(data)
        return CookieReply(receiver, nonce, cookie, data)
    if kind == MESSAGE_DATA:
        if n < MESSAGE_DATA_MIN_LEN:
            return ParseFailure(DropReason.BAD_LENGTH)
        _, receiver, counter = _DATA_HEADER.unpack_from(data)
        return TransportHeader(receiver, counter, n)
    return ParseFailure(DropReason.BAD_TYPE)
