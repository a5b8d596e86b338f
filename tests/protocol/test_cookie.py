"""mac1/mac2 and cookie replies: the under-load flow end to end, secret rotation, cookie expiry,
rate limiting, and the cookie reply checked against an independent XChaCha20-Poly1305 (PyNaCl)."""

from __future__ import annotations

import hashlib
import struct

from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_decrypt

from support.handshake import A_ADDR, B_ADDR, make_pair, only
from wgfast.protocol.cookie import CookieChecker, CookieJar, address_bytes
from wgfast.protocol.outputs import InstallKeypair, Transmit

NO_MAC2 = bytes(16)


def blake2s(*parts: bytes, key: bytes = b"", size: int = 32) -> bytes:
    return hashlib.blake2s(b"".join(parts), key=key, digest_size=size).digest()


def test_address_bytes():
    assert address_bytes(("192.0.2.1", 51820)) == bytes([192, 0, 2, 1]) + (51820).to_bytes(2, "big")
    assert len(address_bytes(("2001:db8::1", 1))) == 18
    assert address_bytes(("not an ip", 1)) == b""


def test_cookie_flow_end_to_end():
    a, b, wall = make_pair()
    init = only(a.initiate(b.public_key, 0.0), Transmit).data
    assert init[132:148] == NO_MAC2

    # Under load, B answers with a cookie reply instead of a response.
    reply = only(b.receive(init, A_ADDR, 0.0, under_load=True), Transmit)
    assert reply.peer is None and reply.destination == A_ADDR
    assert len(reply.data) == 64 and reply.data[:4] == b"\x03\x00\x00\x00"
    assert struct.unpack_from("<I", reply.data, 4)[0] == struct.unpack_from("<I", init, 4)[0]
    assert b.drops["cookie_required"] == 1

    # Independent check of the reply: XChaCha20-Poly1305 under HASH("cookie--" || S_pub_b),
    # AD = mac1 of the initiation, plaintext = the 16-byte cookie.
    cookie = crypto_aead_xchacha20poly1305_ietf_decrypt(
        reply.data[32:64], init[116:132], reply.data[8:32],
        blake2s(b"cookie--", b.public_key))
    assert len(cookie) == 16

    # A stores the cookie; its retry carries mac2 = MAC(cookie, msg[:132]).
    assert a.receive(reply.data, B_ADDR, 0.1) == []
    assert a.drops == {}
    retry = [o for o in a.tick(5.4) if isinstance(o, Transmit)]
    assert len(retry) == 1
    retry_data = retry[0].data
    assert retry_data[132:148] == blake2s(retry_data[:132], key=cookie, size=16)

    # Still under load, B now accepts and responds.
    resp = only(b.receive(retry_data, A_ADDR, 5.4, under_load=True), Transmit)
    assert len(resp.data) == 92
    assert any(isinstance(o, InstallKeypair) for o in a.receive(resp.data, B_ADDR, 5.4))


def test_mac2_ignored_when_not_under_load_and_cookie_bound_to_source():
    a, b, _ = make_pair()
    init = only(a.initiate(b.public_key, 0.0), Transmit).data
    reply = only(b.receive(init, A_ADDR, 0.0, under_load=True), Transmit).data
    a.receive(reply, B_ADDR, 0.0)
    retry = [o for o in a.tick(6.0) if isinstance(o, Transmit)][0].data
    # From another source address, the cookie does not match: another cookie reply.
    other = ("192.0.2.99", 51820)
    assert only(b.receive(retry, other, 6.0, under_load=True), Transmit).data[:1] == b"\x03"
    assert b.drops["cookie_required"] == 2


def test_cookie_secret_rotates_after_max_age():
    checker = CookieChecker(bytes(32))
    first = checker.make_cookie(A_ADDR, 0.0)
    assert checker.make_cookie(A_ADDR, 119.9) == first
    assert checker.make_cookie(A_ADDR, 120.0) != first
    assert checker.make_cookie(B_ADDR, 120.0) != checker.make_cookie(A_ADDR, 120.0)


def test_stale_secret_makes_old_cookie_fail():
    a, b, wall = make_pair()
    init = only(a.initiate(b.public_key, 0.0), Transmit).data
    reply = only(b.receive(init, A_ADDR, 0.0, under_load=True), Transmit).data
    a.receive(reply, B_ADDR, 0.0)
    # The responder's secret rotates at 120 s; the initiator stops using the cookie at 115 s.
    jar = a.peers[b.public_key].cookie_jar
    assert jar.has_fresh_cookie(114.9) and not jar.has_fresh_cookie(115.0)
    wall.ns += 200 * 10**9
    late = only(a.initiate(b.public_key, 116.0), Transmit).data
    assert late[132:148] == NO_MAC2
    assert only(b.receive(late, A_ADDR, 116.0, under_load=True), Transmit).data[:1] == b"\x03"


def test_cookie_reply_rejections():
    a, b, _ = make_pair()
    init = only(a.initiate(b.public_key, 0.0), Transmit).data
    reply = only(b.receive(init, A_ADDR, 0.0, under_load=True), Transmit).data
    tampered = reply[:40] + bytes([reply[40] ^ 1]) + reply[41:]
    assert a.receive(tampered, B_ADDR, 0.0) == []
    assert a.drops["decrypt_failed"] == 1
    assert a.receive(reply, B_ADDR, 0.0) == []  # accepted
    assert a.receive(reply, B_ADDR, 0.0) == []  # once per mac1 sent
    assert a.drops["unexpected_cookie"] == 1


def test_rate_limited_under_load_with_valid_cookie():
    a, b, wall = make_pair()
    init = only(a.initiate(b.public_key, 0.0), Transmit).data
    reply = only(b.receive(init, A_ADDR, 0.0, under_load=True), Transmit).data
    a.receive(reply, B_ADDR, 0.0)
    admitted = 0
    for i in range(10):
        wall.ns += 10**9
        retry = only(a.initiate(b.public_key, 10.0 + 10 * i), Transmit).data
        if b.receive(retry, A_ADDR, 1.0 + i * 0.001, under_load=True):
            admitted += 1
    # The limiter admits a burst of 5 from this source (the 1st completes, the next 4 are
    # within 20 ms of it: flood); the other 5 are rate limited before any Noise work.
    assert b.drops["rate_limited"] == 5
    assert admitted == 1 and b.drops["handshake_flood"] == 4
    assert b.drops["cookie_required"] == 1


def test_jar_and_checker_agree():
    responder_pub = bytes(range(32))
    checker = CookieChecker(responder_pub)
    jar = CookieJar(responder_pub)
    message = bytes(range(60)) + bytes(32)
    with_macs = jar.add_macs(message, 0.0)
    assert checker.check_mac1(with_macs)
    assert not checker.check_mac1(with_macs[:-33] + b"\xff" + with_macs[-32:])


def test_load_tracker_stays_under_load_for_a_second():
    from wgfast.protocol.device_state import LoadTracker

    tracker = LoadTracker(queue_capacity=4096)
    assert not tracker.under_load(511, 0.0)
    assert tracker.under_load(512, 0.0)
    assert tracker.under_load(0, 0.99)
    assert not tracker.under_load(0, 1.0)
