"""mac1/mac2 and cookie replies across the two sides that now live in two places: the protocol
core sends (wgfast.protocol.cookie.CookieJar adds the macs, consumes the cookie replies to its
own handshakes) and the data plane's C checks what arrives and makes cookie replies
(csrc/cookie.c, through wgfast._native.CookieChecker). Each is held to the protocol's definition
with independent code: hashlib's BLAKE2s for mac1, mac2 and the cookie, PyNaCl's
XChaCha20-Poly1305 for the cookie reply. The rate limiter, the under-load rule and the admission
order are tested in C (csrc/tests/test_ratelimiter.c, test_dataplane_admission.c)."""

from __future__ import annotations

import hashlib
import ipaddress
import struct

from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_decrypt

from support.handshake import A_ADDR, B_ADDR, make_pair, only
from wgfast import _native
from wgfast.protocol.cookie import CookieJar
from wgfast.protocol.outputs import InstallKeypair, Transmit

NO_MAC2 = bytes(16)
SEC = 10**9
SECRET = bytes(range(200, 232))


def blake2s(*parts: bytes, key: bytes = b"", size: int = 32) -> bytes:
    return hashlib.blake2s(b"".join(parts), key=key, digest_size=size).digest()


def source(address: tuple[str, int]) -> bytes:
    """The address as cookies hash it: IP bytes || big-endian port (the kernel's choice)."""
    return ipaddress.ip_address(address[0]).packed + address[1].to_bytes(2, "big")


def test_mac1_known_answer_on_both_sides():
    a, b, _ = make_pair()
    init = only(a.initiate(b.public_key, 0.0), Transmit).data
    # The protocol's definition: mac1 = MAC(HASH(LABEL_MAC1 || S_pub_responder), msg[0:116]).
    assert init[116:132] == blake2s(init[:116], key=blake2s(b"mac1----", b.public_key), size=16)
    assert init[132:148] == NO_MAC2
    checker = _native.CookieChecker(b.public_key)
    assert checker.check(init, source(A_ADDR), 0, False) == _native.MAC_VALID_NO_COOKIE
    flipped = init[:10] + bytes([init[10] ^ 1]) + init[11:]
    assert checker.check(flipped, source(A_ADDR), 0, False) == _native.MAC_INVALID
    assert _native.CookieChecker(a.public_key).check(init, b"", 0, False) == _native.MAC_INVALID
    # The keyed MAC itself, on lengths across BLAKE2s's block boundary.
    for n in (0, 1, 63, 64, 65, 116, 132, 200):
        data, key = bytes(range(n % 256)) * (n // 256 + 1), bytes(range(7, 39))
        assert _native.blake2s_mac(key, data[:n]) == blake2s(data[:n], key=key, size=16)
        assert _native.blake2s_mac(key[:16], data[:n]) == blake2s(data[:n], key=key[:16], size=16)


def test_cookie_reply_from_c_opens_with_pynacl_and_completes_the_handshake():
    a, b, _ = make_pair()
    init = only(a.initiate(b.public_key, 0.0), Transmit).data
    checker = _native.CookieChecker(b.public_key)
    checker.set_secret(SECRET, 0)
    reply = checker.make_reply(init, source(A_ADDR), 1)
    assert len(reply) == 64 and reply[:4] == b"\x03\x00\x00\x00"
    assert struct.unpack_from("<I", reply, 4) == struct.unpack_from("<I", init, 4)
    # XChaCha20-Poly1305 under HASH(LABEL_COOKIE || S_pub_b), AD = the initiation's mac1; the
    # plaintext is the cookie, MAC(secret, source).
    cookie = crypto_aead_xchacha20poly1305_ietf_decrypt(
        reply[32:64], init[116:132], reply[8:32], blake2s(b"cookie--", b.public_key))
    assert cookie == blake2s(source(A_ADDR), key=SECRET, size=16)

    # A (Python) stores it; its retry carries mac2 = MAC(cookie, msg[0:132]), which C accepts.
    assert a.receive(reply, B_ADDR, 0.1) == []
    assert a.drops == {}
    retry = only([o for o in a.tick(5.4) if isinstance(o, Transmit)], Transmit).data
    assert retry[132:148] == blake2s(retry[:132], key=cookie, size=16)
    assert checker.check(retry, source(A_ADDR), 2, True) == _native.MAC_VALID_WITH_COOKIE
    # Bound to the source: from another port or address it is not our cookie.
    assert checker.check(retry, source((A_ADDR[0], 1)), 2, True) == _native.MAC_VALID_NO_COOKIE
    assert checker.check(retry, source(B_ADDR), 2, True) == _native.MAC_VALID_NO_COOKIE
    # The core completes the handshake the data plane admitted.
    resp = only(b.receive(retry, A_ADDR, 5.4), Transmit)
    assert any(isinstance(o, InstallKeypair) for o in a.receive(resp.data, B_ADDR, 5.4))


def test_cookie_secret_rotates_after_max_age_in_c():
    a, b, _ = make_pair()
    init = only(a.initiate(b.public_key, 0.0), Transmit).data
    checker = _native.CookieChecker(b.public_key)
    checker.set_secret(SECRET, 0)
    reply = checker.make_reply(init, source(A_ADDR), 0)
    a.receive(reply, B_ADDR, 0.0)
    retry = only([o for o in a.tick(5.4) if isinstance(o, Transmit)], Transmit).data
    max_age = _native.COOKIE_SECRET_MAX_AGE_NS
    assert max_age == 120 * SEC  # COOKIE_SECRET_MAX_AGE
    assert checker.check(retry, source(A_ADDR), max_age - 1, True) == _native.MAC_VALID_WITH_COOKIE
    assert checker.check(retry, source(A_ADDR), max_age, True) == _native.MAC_VALID_NO_COOKIE


def test_sender_stops_using_a_cookie_before_the_secret_rotates():
    a, b, wall = make_pair()
    init = only(a.initiate(b.public_key, 0.0), Transmit).data
    reply = _native.CookieChecker(b.public_key).make_reply(init, source(A_ADDR), 0)
    a.receive(reply, B_ADDR, 0.0)
    # The responder's secret rotates at 120 s; the initiator stops using the cookie at 115 s.
    jar = a.peers[b.public_key].cookie_jar
    assert jar.has_fresh_cookie(114.9) and not jar.has_fresh_cookie(115.0)
    wall.ns += 200 * SEC
    late = only(a.initiate(b.public_key, 116.0), Transmit).data
    assert late[132:148] == NO_MAC2


def test_cookie_reply_rejections():
    a, b, _ = make_pair()
    init = only(a.initiate(b.public_key, 0.0), Transmit).data
    reply = _native.CookieChecker(b.public_key).make_reply(init, source(A_ADDR), 0)
    tampered = reply[:40] + bytes([reply[40] ^ 1]) + reply[41:]
    assert a.receive(tampered, B_ADDR, 0.0) == []
    assert a.drops["decrypt_failed"] == 1
    assert a.receive(reply, B_ADDR, 0.0) == []  # accepted
    assert a.receive(reply, B_ADDR, 0.0) == []  # once per mac1 sent
    assert a.drops["unexpected_cookie"] == 1


def test_jar_macs_match_the_definition_for_a_response_too():
    responder_pub = bytes(range(32))
    jar = CookieJar(responder_pub)
    message = bytes(range(60)) + bytes(32)  # a response's 60 bytes, macs zero
    with_macs = jar.add_macs(message, 0.0)
    assert with_macs[60:76] == blake2s(message[:60], key=blake2s(b"mac1----", responder_pub),
                                       size=16)
    checker = _native.CookieChecker(responder_pub)
    assert checker.check(with_macs, b"", 0, False) == _native.MAC_VALID_NO_COOKIE
    assert checker.check(with_macs[:-33] + b"\xff" + with_macs[-32:], b"", 0,
                         False) == _native.MAC_INVALID
