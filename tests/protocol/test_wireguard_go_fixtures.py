"""wgfast.protocol.noise against real wireguard-go messages
(tests/fixtures/wireguard_go_handshake.json, made by tests/fixtures/capture_wireguard_go.py)."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import pytest

from wgfast import _native
from wgfast.keys import KeyPair
from wgfast.protocol import aead, messages, noise, tai64n
from wgfast.protocol.cookie import CookieJar

# tests/fixtures/, beside this test's folder (tests/protocol/).
FIXTURE_PATH = Path(__file__).resolve().parent.parent / "fixtures" / "wireguard_go_handshake.json"
FIXTURE = json.loads(FIXTURE_PATH.read_text())
KEYS = {name: base64.b64decode(value) for name, value in FIXTURE["keys"].items()}
A = KeyPair.from_private(KEYS["a_private"])
B = KeyPair.from_private(KEYS["b_private"])
NOW = float(FIXTURE["captured_at_unix"])


def handshake_with(local: noise.StaticIdentity, remote_public: bytes) -> noise.Handshake:
    return noise.Handshake(
        remote_static=remote_public,
        precomputed_static_static=local.static_static(remote_public),
        preshared_key=KEYS["preshared"],
    )


def mac1_ok(public: bytes, raw: bytes) -> bool:
    """What the data plane's C checks before anything reaches the protocol core."""
    checker = _native.CookieChecker(public)
    return checker.check(raw, b"", 0, False) != _native.MAC_INVALID


def test_fixture_keys_are_consistent():
    assert A.public == KEYS["a_public"] and B.public == KEYS["b_public"]


def test_responder_consumes_wireguard_go_initiation():
    raw = bytes.fromhex(FIXTURE["initiation_from_wireguard_go"]["message"])
    assert mac1_ok(B.public, raw)
    identity = noise.StaticIdentity(B)
    peer = handshake_with(identity, A.public)
    msg = messages.parse(raw)
    assert isinstance(msg, messages.HandshakeInitiation)
    result = noise.consume_initiation(
        identity, msg, lambda key: peer if key == A.public else None, NOW
    )
    assert result is peer, result
    seconds, _ = tai64n.decode(peer.latest_timestamp)
    assert abs(seconds - NOW) < 3600, "wireguard-go's timestamp is its wall clock"
    # A response can be built and keys derived from the consumed state.
    assert noise.create_response(peer, 7) is not None
    assert noise.derive_transport_keys(peer) is not None


def test_tampered_initiation_is_rejected():
    raw = bytearray.fromhex(FIXTURE["initiation_from_wireguard_go"]["message"])
    raw[40] ^= 1  # inside the encrypted static key
    assert not mac1_ok(B.public, bytes(raw))
    identity = noise.StaticIdentity(B)
    peer = handshake_with(identity, A.public)
    msg = messages.parse(bytes(raw))
    assert isinstance(msg, messages.HandshakeInitiation)
    result = noise.consume_initiation(identity, msg, lambda key: peer, NOW)
    assert result is not peer


def initiator_state() -> tuple[noise.StaticIdentity, noise.Handshake, bytes]:
    """Rebuild the capture script's initiation with wgfast.protocol.noise; it must match byte for
    byte."""
    case = FIXTURE["response_from_wireguard_go"]
    identity = noise.StaticIdentity(A)
    hs = handshake_with(identity, B.public)
    unmacked = noise.create_initiation(
        identity,
        hs,
        case["initiation_sender_index"],
        bytes.fromhex(case["initiation_timestamp_tai64n"]),
        ephemeral_private=KEYS["script_ephemeral_private"],
    )
    assert unmacked is not None
    return identity, hs, CookieJar(B.public).add_macs(unmacked, NOW)


def test_wgfast_builds_the_initiation_wireguard_go_answered():
    _, _, initiation = initiator_state()
    assert initiation.hex() == FIXTURE["response_from_wireguard_go"]["initiation"]


def test_initiator_consumes_wireguard_go_response_and_opens_its_data():
    identity, hs, _ = initiator_state()
    raw = bytes.fromhex(FIXTURE["response_from_wireguard_go"]["message"])
    assert mac1_ok(A.public, raw)
    msg = messages.parse(raw)
    assert isinstance(msg, messages.HandshakeResponse)
    assert noise.consume_response(identity, hs, msg) is None
    keys = noise.derive_transport_keys(hs)
    assert keys is not None and keys.is_initiator
    expected = FIXTURE["transport_from_wireguard_go"]["initiator_keys"]
    assert keys.send == base64.b64decode(expected["initiator_send"])
    assert keys.receive == base64.b64decode(expected["initiator_receive"])
    assert keys.remote_index == msg.sender_index

    data = bytes.fromhex(FIXTURE["transport_from_wireguard_go"]["message"])
    _, receiver, counter = struct.unpack_from("<IIQ", data)
    assert receiver == keys.local_index
    plaintext = aead.open(keys.receive, counter, data[16:])
    assert plaintext is not None
    assert plaintext.hex() == FIXTURE["transport_from_wireguard_go"]["plaintext"]
    assert len(plaintext) % 16 == 0  # padded to the multiple the protocol asks for
    total = struct.unpack_from(">H", plaintext, 2)[0]
    suffix = bytes.fromhex(FIXTURE["transport_from_wireguard_go"]["payload_suffix"])
    assert plaintext[:total].endswith(suffix)


@pytest.mark.parametrize("offset", [12, 50, 70])
def test_tampered_response_is_rejected(offset):
    identity, hs, _ = initiator_state()
    raw = bytearray.fromhex(FIXTURE["response_from_wireguard_go"]["message"])
    raw[offset] ^= 0x80
    msg = messages.parse(bytes(raw))
    assert isinstance(msg, messages.HandshakeResponse)
    if offset < 60:
        assert noise.consume_response(identity, hs, msg) is not None
    else:
        assert not mac1_ok(A.public, bytes(raw))
