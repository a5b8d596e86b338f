"""The control plane's timers with a fake clock: retransmits giving up after 90 s, passive and
persistent keepalives, a new handshake after sending into silence, a wanted handshake sent as soon
as the rate limit allows, and the data plane's activity reports turned into the kernel's packet
events. (The rekey decisions on send and receive, the keypair limits and the zeroing of keys are
the data plane's: csrc/tests/test_dataplane_keypairs.c.)"""

from __future__ import annotations

import pytest

from support.handshake import A_ADDR, handshake, make_pair, only
from wgfast.protocol.outputs import (
    DropStaged,
    ExpireKeypairs,
    InstallKeypair,
    SendKeepalive,
    Transmit,
    ZeroKeysLater,
)
from wgfast.protocol.timers import (
    DATA_RECEIVED,
    DATA_SENT,
    RECEIVED,
    SENT,
    Activity,
    GiveUp,
    PeerTimers,
    SendInitiation,
    activity_steps,
)
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
def test_retransmits_give_up_after_rekey_attempt_time(jitter):
    t = PeerTimers(jitter=lambda: jitter)
    t.on_handshake_initiated(0.0)
    events = run(t, 2000.0, resend(t))
    step = 5.0 + jitter
    retries = [when for when, a in events if a == SendInitiation(retry=True)]
    assert retries == pytest.approx([step * i for i in range(1, 18)])  # 17 retries: 18 sent
    give_up = 18 * step
    assert (pytest.approx(give_up), GiveUp()) == events[17]
    assert give_up >= 90.0
    assert len(events) == 18


def test_handshake_complete_stops_retransmits():
    t = PeerTimers(jitter=lambda: 0.0)
    t.on_handshake_initiated(0.0)
    run(t, 12.0, resend(t))
    assert t.handshake_attempts == 2
    t.on_handshake_complete(12.0)
    assert run(t, 1000.0) == []


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


# --- the data plane's activity reports ------------------------------------------------------


def test_activity_steps_stand_for_the_kernels_packet_events():
    # Data sent at 1 (first since anything came back), more until 3; nothing received.
    a1 = Activity(tx_any=3.0, tx_data_first=1.0)
    assert activity_steps(Activity(), a1) == [(1.0, SENT), (1.0, DATA_SENT), (3.0, SENT)]
    # Then a keepalive came back at 4 (ends "sent, nothing received"), more data went out
    # from 5 on: the first-data time moved, so data started again after the receive.
    a2 = Activity(tx_any=6.0, rx_any=4.0, tx_data_first=5.0)
    assert activity_steps(a1, a2) == [(4.0, RECEIVED), (5.0, SENT), (5.0, DATA_SENT),
                                      (6.0, SENT)]
    # Data received from 7 to 9 with nothing sent: the first and the last of it.
    a3 = Activity(tx_any=6.0, rx_any=9.0, rx_data_first=7.0, rx_data_last=9.0)
    assert activity_steps(a2, a3) == [(7.0, RECEIVED), (7.0, DATA_RECEIVED), (9.0, RECEIVED),
                                      (9.0, DATA_RECEIVED)]
    assert activity_steps(a3, a3) == []


def test_timers_fed_by_reports_match_the_per_packet_timers():
    """The same traffic, told packet by packet (the kernel's way) and as two reports: the
    timers end up with the same deadlines."""
    packets, reports = PeerTimers(jitter=lambda: 0.0), PeerTimers(jitter=lambda: 0.0)
    for t in (1.0, 2.0, 3.0):  # data out, nothing back
        packets.on_any_authenticated_packet_sent(t)
        packets.on_data_sent(t)
    reports.on_activity(Activity(), Activity(tx_any=3.0, tx_data_first=1.0))
    assert packets.deadlines == reports.deadlines
    assert reports.deadlines["new_handshake"] == 16.0
    before = Activity(tx_any=3.0, tx_data_first=1.0)
    packets.on_any_authenticated_packet_received(4.0)  # an answer with data, 4 to 6
    packets.on_data_received(4.0)
    packets.on_any_authenticated_packet_received(6.0)
    packets.on_data_received(6.0)
    reports.on_activity(before, Activity(tx_any=3.0, rx_any=6.0, rx_data_first=4.0,
                                         rx_data_last=6.0))
    assert packets.deadlines == reports.deadlines
    assert reports.deadlines["new_handshake"] is None
    assert reports.deadlines["send_keepalive"] == 14.0 and reports.need_another_keepalive


# --- the device across the schedule -----------------------------------------------------------


def test_device_retries_then_gives_up():
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
    assert kinds == [DropStaged, ZeroKeysLater]  # the data plane zeroes the keys later
    assert outputs[-1][0] == pytest.approx(18 * 5.1)
    assert len(a.index) == 0  # the abandoned handshake's index was released


def test_device_without_endpoint_gives_up_staged_packets_after_rekey_attempt_time():
    """Nowhere to send an initiation: none is sent, but the handshake still gives up, so that
    the packets staged for it do not hold the data plane's buffers for good."""
    a, b, _ = make_pair(jitter=lambda: 0.0)
    a.peers[b.public_key].endpoint = None
    assert a.on_handshake_wanted(b.public_key, 0.0) == []
    outputs = []
    while (deadline := a.next_deadline()) is not None and deadline < 1000:
        outputs += [(deadline, o) for o in a.tick(deadline)]
    assert [type(o) for _, o in outputs] == [DropStaged, ZeroKeysLater]
    assert outputs[0][0] == pytest.approx(90.0)


def test_wanted_handshake_goes_out_when_the_rate_limit_allows():
    a, b, _ = make_pair(jitter=lambda: 0.0)
    _, _, out_a, _ = handshake(a, b, now=0.0)
    # The data plane wants a rekey 2 s later: refused until 5 s, then sent unasked.
    assert a.on_handshake_wanted(b.public_key, 2.0) == []
    assert a.next_deadline() == 5.0
    assert len(only(a.tick(5.0), Transmit).data) == 148


def test_device_keepalive_after_response_and_passive_keepalive():
    a, b, _ = make_pair()
    _, _, out_a, out_b = handshake(a, b, now=0.0)
    only(out_a, SendKeepalive)
    only(out_b, InstallKeypair)
    b.on_activity(a.public_key, Activity(rx_any=1.0, rx_data_first=1.0, rx_data_last=1.0))
    assert only(b.tick(11.0), SendKeepalive).peer == a.public_key


def test_confirmed_keypair_completes_the_responders_handshake():
    a, b, wall = make_pair()
    handshake(a, b, now=0.0)
    peer = b.peers[a.public_key]
    assert peer.last_handshake_time_ns is None  # not until data confirms it
    wall.ns += 5
    b.on_keypair_confirmed(a.public_key, 0.5)
    assert peer.last_handshake_time_ns == wall.ns


def test_private_key_change_expires_sessions_and_allows_an_initiation_at_once():
    a, b, _ = make_pair()
    handshake(a, b, now=0.0)
    expired = a.set_private_key(bytes(range(40, 72)))
    assert only(expired, ExpireKeypairs).peer == b.public_key
    assert len(only(a.on_handshake_wanted(b.public_key, 1.0), Transmit).data) == 148


def test_zeroed_keys_clear_the_handshake_in_flight():
    a, b, _ = make_pair()
    only(a.initiate(b.public_key, 0.0), Transmit)
    assert len(a.index) == 1
    a.on_keys_zeroed(b.public_key)
    assert len(a.index) == 0 and a.peers[b.public_key].handshake.local_index is None


def test_endpoint_changes_follow_the_data_plane():
    a, b, _ = make_pair()
    b.on_endpoint_changed(a.public_key, A_ADDR)
    assert b.peers[a.public_key].endpoint == A_ADDR
