"""Keypair slots (previous/current/next), promotion on first data, limits and zeroing."""

from __future__ import annotations

from wgfast.protocol.keypair import Keypair, Keypairs
from wgfast.protocol.messages import REJECT_AFTER_MESSAGES, REKEY_AFTER_MESSAGES


def kp(index: int, initiator: bool, created: float = 0.0) -> Keypair:
    return Keypair(bytearray([index]) * 32, bytearray([index + 1]) * 32, index, index + 100,
                   created, initiator)


def test_initiator_keypair_is_current_at_once():
    pairs = Keypairs()
    first, second, third = kp(1, True), kp(2, True), kp(3, True)
    assert pairs.add(first) == []
    assert pairs.current is first and pairs.previous is None and pairs.next is None
    assert pairs.add(second) == []
    assert (pairs.previous, pairs.current) == (first, second)
    assert pairs.add(third) == [first]
    assert first.send_key == bytearray(32) and not first.valid
    assert (pairs.previous, pairs.current) == (second, third)


def test_responder_keypair_waits_in_next_until_data():
    pairs = Keypairs()
    old = kp(1, True)
    pairs.add(old)
    new = kp(2, False)
    assert pairs.add(new) == []
    assert pairs.next is new and pairs.current is old
    assert pairs.sending(1.0) is old
    promoted, retired = pairs.received_with(old)
    assert not promoted and retired == []
    promoted, retired = pairs.received_with(new)
    assert promoted and retired == []
    assert (pairs.previous, pairs.current, pairs.next) == (old, new, None)


def test_unconfirmed_next_is_replaced_and_initiator_retires_it_properly():
    pairs = Keypairs()
    cur = kp(1, True)
    pairs.add(cur)
    nxt1, nxt2 = kp(2, False), kp(3, False)
    pairs.add(nxt1)
    assert pairs.add(nxt2) == [nxt1] and not nxt1.valid
    # An initiator keypair while `next` waits: next becomes previous, current is retired.
    mine = kp(4, True)
    assert pairs.add(mine) == [cur]
    assert (pairs.previous, pairs.current, pairs.next) == (nxt2, mine, None)


def test_find_and_zero_all():
    pairs = Keypairs()
    a, b = kp(1, True), kp(2, False)
    pairs.add(a)
    pairs.add(b)
    assert pairs.find(2) is b and pairs.find(9) is None
    retired = pairs.zero_all()
    assert set(map(id, retired)) == {id(a), id(b)}
    assert all(k.send_key == bytearray(32) and k.receive_key == bytearray(32) for k in retired)
    assert list(pairs) == []


def test_message_limits():
    k = kp(1, False)
    k.send_counter = REKEY_AFTER_MESSAGES
    assert not k.needs_rekey_on_send(0.0)
    k.send_counter += 1
    assert k.needs_rekey_on_send(0.0)
    k.send_counter = REJECT_AFTER_MESSAGES - 1
    assert k.next_send_counter(0.0) == REJECT_AFTER_MESSAGES - 1
    assert k.next_send_counter(0.0) is None
    assert k.can_receive(0.0, REJECT_AFTER_MESSAGES - 1)
    assert not k.can_receive(0.0, REJECT_AFTER_MESSAGES)


def test_time_limits():
    initiator, responder = kp(1, True, created=10.0), kp(2, False, created=10.0)
    assert not initiator.needs_rekey_on_send(129.9) and initiator.needs_rekey_on_send(130.0)
    assert not responder.needs_rekey_on_send(185.0)
    assert responder.can_receive(189.9, 0) and not responder.can_receive(190.0, 0)
    pairs = Keypairs()
    pairs.add(initiator)
    assert pairs.sending(189.9) is initiator and pairs.sending(190.0) is None
