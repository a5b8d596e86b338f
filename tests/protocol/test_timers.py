"""Timers with a fake clock across the whole schedule: retransmits giving up after 90 s, keys
zeroed 540 s later, passive/persistent keepalives, new handshake on silence, rekey on send and
receive."""

from __future__ import annotations

import pytest

from support.handshake import A_ADDR, B_ADDR, handshake, make_pair, only
from wgfast.protocol.keypair import Keypair
from wgfast.protocol.messages import REKEY_AFTER_MESSAGES
from wgfast.protocol.outputs import DropStaged, KeypairReady, KeysZeroed, SendKeepalive, Transmit
from wgfast.protocol.timers import DropStaged as TDropStaged
from wgfast.protocol.timers import PeerTimers, SendInitiation, ZeroKeys
from wgfast.protocol.timers import SendKeepalive as TSendKeepalive


def run(timers: PeerTimers, until: float, react=None) -> list[tuple[float, object]]:
    """Advance a fake clock deadline by deadline until `until`; `react(now, action)` plays the
    peer's part (e.g. re-arming the retransmit timer after an initiation is sent)."""
    events = []
    while (deadline := timers.next_deadline()) is not None and deadline <= until:
        for action in timers.tick(deadline):
            events.append((round(deadline, 6), action))
            if react:
                react(deadline, action)
    return events


def resend(timers: PeerTimers):
    def react(now, action):
        if isinstance(action, SendInitiation):
            timers.on_handshake_initiated(now, retry=action.retry)
    return react


@pytest.mark.parametrize("jitter", [0.0, 1 / 3 - 1e-9])
def test_retransmits_give_up_after_rekey_attempt_time_then_zero(jitter):
    t = PeerTimers(jitter=lambda: jitter)
    t.on_handshake_initiated(0.0)
    events = run(t, 2000.0, resend(t))
    step = 5.0 + jitter
    retries = [when for when, a in events if a == SendInitiation(retry=True)]
    assert retries == pytest.approx([step * i for i in range(1, 18)])  # 17 retries: 18 sent
    give_up = 18 * step
    assert (pytest.approx(give_up), TDropStaged()) == events[17]
    assert give_up >= 90.0
    assert events[18] == (pytest.approx(give_up + 540.0), ZeroKeys())
    assert len(events) == 19


def test_handshake_complete_stops_retransmits():
    t = PeerTimers(jitter=lambda: 0.0)
    t.on_handshake_initiated(0.0)
    run(t, 12.0, resend(t))
    assert t.handshake_attempts == 2
    t.on_handshake_complete(12.0)
    t.on_session_derived(12.0)
    assert run(t, 551.0) == []
    assert run(t, 552.0) == [(552.0, ZeroKeys())]


def test_new_session_postpones_zeroing():
    t = PeerTimers()
    t.on_session_derived(0.0)
    t.on_session_derived(300.0)
    assert run(t, 839.0) == []
    assert run(t, 840.0) == [(840.0, ZeroKeys())]


def test_passive_keepalive():
    t = PeerTimers()
    t.on_data_received(0.0)
    assert run(t, 9.99) == []
    assert run(t, 10.0) == [(10.0, TSendKeepalive())]
    # Data sent in the meantime cancels the keepalive.
    t.on_data_received(20.0)
    t.on_any_authenticated_packet_sent(25.0)
    assert run(t, 100.0) == []
    # More data while the keepalive is pending: one more keepalive after the first.
    t.on_data_received(200.0)
    t.on_data_received(203.0)
    assert run(t, 300.0) == [(210.0, TSendKeepalive()), (220.0, TSendKeepalive())]


def test_new_handshake_after_sending_into_silence():
    t = PeerTimers(jitter=lambda: 0.25)
    t.on_data_sent(0.0)
    t.on_data_sent(3.0)  # does not push the deadline
    assert run(t, 15.2) == []
    assert run(t, 15.25) == [(15.25, SendInitiation(retry=False))]
    t.on_data_sent(100.0)
    t.on_any_authenticated_packet_received(114.0)  # an answer: no handshake needed
    assert run(t, 200.0) == []


def test_persistent_keepalive():
    t = PeerTimers(persistent_keepalive_interval=25.0)
    t.on_any_authenticated_packet_traversal(0.0)
    assert run(t, 24.9) == []
    assert run(t, 25.0) == [(25.0, TSendKeepalive())]
    t.on_any_authenticated_packet_traversal(25.0)  # the keepalive went out
    t.on_any_authenticated_packet_traversal(40.0)  # and something came in
    assert run(t, 64.9) == []
    assert run(t, 65.0) == [(65.0, TSendKeepalive())]
    t.set_persistent_keepalive(0.0, 65.0)
    t.on_any_authenticated_packet_traversal(65.0)
    assert t.next_deadline() is None


# --- the device across the schedule -------------------------------------------------------------


def test_device_retries_then_gives_up_then_zeroes():
    a, b, wall = make_pair(jitter=lambda: 0.1)
    first = only(a.initiate(b.public_key, 0.0), Transmit)
    sent = [0.0]
    outputs = []
    while (deadline := a.next_deadline()) is not None and deadline < 1000:
        for o in a.tick(deadline):
            outputs.append((deadline, o))
            if isinstance(o, Transmit):
                sent.append(deadline)
                assert len(o.data) == 148 and o.data != first.data
    assert len(sent) == 18
    assert sent[-1] == pytest.approx(17 * 5.1)
    kinds = [type(o) for _, o in outputs if not isinstance(o, Transmit)]
    assert kinds == [DropStaged, KeysZeroed]
    assert outputs[-2][0] == pytest.approx(18 * 5.1)
    assert outputs[-1][0] == pytest.approx(18 * 5.1 + 540)
    assert len(a.index) == 0  # the abandoned handshake's index was released


def test_device_keys_zeroed_540s_after_last_handshake():
    a, b, _ = make_pair()
    _, _, out_a, out_b = handshake(a, b, now=0.0)
    ka = only(out_a, KeypairReady).keypair
    kb = only(out_b, KeypairReady).keypair
    assert not any(isinstance(o, KeysZeroed) for o in a.tick(539.9))
    assert ka.valid
    zeroed = a.tick(540.0)
    assert any(isinstance(o, KeysZeroed) for o in zeroed)
    assert ka.send_key == bytearray(32) and ka.receive_key == bytearray(32) and not ka.valid
    assert a.peers[b.public_key].keypairs.current is None
    assert any(isinstance(o, KeysZeroed) for o in b.tick(540.0))
    assert kb.send_key == bytearray(32)
    assert len(a.index) == 0 and len(b.index) == 0


def test_device_initiator_rekeys_after_rekey_after_time_on_send():
    a, b, wall = make_pair()
    handshake(a, b, now=0.0)
    assert [o for o in a.on_data_sent(b.public_key, 119.0, False) if isinstance(o, Transmit)] == []
    rekey = only(a.on_data_sent(b.public_key, 120.0, False), Transmit)
    assert len(rekey.data) == 148
    # The responder never rekeys on age alone.
    kb = b.peers[a.public_key].keypairs.next
    b.on_data_received(a.public_key, kb.local_index, A_ADDR, 1.0, is_keepalive=False)
    assert [o for o in b.on_data_sent(a.public_key, 170.0, False) if isinstance(o, Transmit)] == []


def test_device_rekeys_after_rekey_after_messages_either_side():
    a, b, _ = make_pair()
    handshake(a, b, now=0.0)
    kb = b.peers[a.public_key].keypairs.next
    b.on_data_received(a.public_key, kb.local_index, A_ADDR, 1.0, is_keepalive=False)
    b.peers[a.public_key].endpoint = A_ADDR
    kb.send_counter = REKEY_AFTER_MESSAGES + 1
    assert len(only(b.on_data_sent(a.public_key, 2.0, False), Transmit).data) == 148


def test_device_initiator_last_minute_rekey_on_receive_once():
    a, b, _ = make_pair()
    _, _, out_a, _ = handshake(a, b, now=0.0)
    ka = only(out_a, KeypairReady).keypair
    before = a.on_data_received(b.public_key, ka.local_index, B_ADDR, 164.9, False)
    assert [o for o in before if isinstance(o, Transmit)] == []
    at = a.on_data_received(b.public_key, ka.local_index, B_ADDR, 165.0, False)
    assert len(only(at, Transmit).data) == 148
    later = a.on_data_received(b.public_key, ka.local_index, B_ADDR, 171.0, False)
    assert [o for o in later if isinstance(o, Transmit)] == []


def test_device_keepalive_after_response_and_passive_keepalive():
    a, b, _ = make_pair()
    _, _, out_a, out_b = handshake(a, b, now=0.0)
    only(out_a, SendKeepalive)
    kb = only(out_b, KeypairReady).keypair
    b.on_data_received(a.public_key, kb.local_index, A_ADDR, 1.0, is_keepalive=False)
    assert only(b.tick(11.0), SendKeepalive).peer == a.public_key


def test_keypair_expiry_limits():
    kp = Keypair(bytearray(32), bytearray(32), 1, 2, created=0.0, is_initiator=True)
    assert kp.can_send(179.9) and not kp.can_send(180.0)
    assert kp.next_send_counter(1.0) == 0 and kp.next_send_counter(1.0) == 1
    assert kp.next_send_counter(180.0) is None
