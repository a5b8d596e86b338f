"""One peer's timers as a state machine over an injectable clock (the kernel's timers.c).

Events come in as method calls carrying `now` (float seconds, any monotonic origin); `tick(now)`
fires every deadline that has passed and returns the resulting actions; `next_deadline()` says
when to call `tick` next. Nothing here sleeps, schedules or does I/O.

Timers (deadline -> action):
- retransmit_handshake: REKEY_TIMEOUT + jitter after an initiation is sent -> SendInitiation(retry)
  until MAX_TIMER_HANDSHAKES (REKEY_ATTEMPT_TIME / REKEY_TIMEOUT = 18) initiations have gone
  unanswered, then give up: DropStaged and ZeroKeysLater (the data plane zeroes the keys
  3 x REJECT_AFTER_TIME later unless that is scheduled already).
  Decision: 18 initiations spanning REKEY_ATTEMPT_TIME (90 s), the paper's rule; the Linux
  kernel's off-by-two counting sends 20 and gives up after ~100 s.
- handshake_wanted: when the data plane wanted a handshake but the once-per-REKEY_TIMEOUT rule
  refused it and no retransmission is pending, the initiation goes out as soon as the rule
  allows (the data plane asks once and then waits for a keypair).
- send_keepalive: KEEPALIVE_TIMEOUT after data is received with nothing sent since -> SendKeepalive
  (passive keepalive; re-armed once more if more data arrived while it was pending).
- new_handshake: KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + jitter after data is sent with nothing
  authenticated received since -> SendInitiation(retry=False).
- persistent_keepalive: every `persistent_keepalive_interval` seconds after the last
  authenticated packet in either direction -> SendKeepalive.

What the data plane decides by itself, per packet, is not here: rekeying on send (message count,
and age for the initiator) and on receive (the initiator's last-minute rule) reach the core as a
"handshake wanted" event; keys are zeroed by the data plane on its own schedule.

The data plane does not report every packet: it reports a peer's latest traffic (`Activity`)
at most every few tens of milliseconds. `activity_steps` turns the change between two reports
into the packet events the kernel's hooks would have seen, in time order.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from wgfast.protocol.messages import (
    KEEPALIVE_TIMEOUT,
    MAX_TIMER_HANDSHAKES,
    REKEY_TIMEOUT,
    REKEY_TIMEOUT_JITTER_MAX,
)

log = logging.getLogger(__name__)

_system_random = random.SystemRandom()


def default_jitter() -> float:
    return _system_random.uniform(0.0, REKEY_TIMEOUT_JITTER_MAX)


@dataclass(frozen=True, slots=True)
class SendInitiation:
    retry: bool


@dataclass(frozen=True, slots=True)
class SendKeepalive:
    pass


@dataclass(frozen=True, slots=True)
class GiveUp:
    """No handshake after REKEY_ATTEMPT_TIME: drop staged packets, schedule zeroing."""


Action = SendInitiation | SendKeepalive | GiveUp

_TIMERS = ("retransmit_handshake", "handshake_wanted", "send_keepalive", "new_handshake",
           "persistent_keepalive")


@dataclass(frozen=True, slots=True)
class Activity:
    """A peer's authenticated traffic, as the data plane reports it (monotonic seconds; None for
    never, or none since the other direction reset it)."""

    tx_any: float | None = None  # the last packet sent, keepalives included
    rx_any: float | None = None  # the last packet received
    tx_data_first: float | None = None  # the first data packet sent since the last received
    rx_data_first: float | None = None  # the first data packet received since the last sent
    rx_data_last: float | None = None  # the last data packet received


# The kernel's hooks, in the order they run for one packet at one instant.
RECEIVED, DATA_RECEIVED, SENT, DATA_SENT = range(4)


def activity_steps(before: Activity, after: Activity) -> list[tuple[float, int]]:
    """The packet events the change from `before` to `after` stands for, oldest first.

    A first-data time differs from the previous report's exactly when data started (again)
    after the other direction reset it, which is when the kernel would arm its timer; the
    any-packet times stand for everything else that passed between the reports."""
    steps: list[tuple[float, int]] = []
    if after.rx_any is not None and after.rx_any != before.rx_any:
        steps.append((after.rx_any, RECEIVED))
    if after.tx_any is not None and after.tx_any != before.tx_any:
        steps.append((after.tx_any, SENT))
    if after.rx_data_first is not None and after.rx_data_first != before.rx_data_first:
        steps += [(after.rx_data_first, RECEIVED), (after.rx_data_first, DATA_RECEIVED)]
    if (after.rx_data_last is not None and after.rx_data_last != before.rx_data_last
            and after.rx_data_last != after.rx_data_first):
        steps.append((after.rx_data_last, DATA_RECEIVED))
    if after.tx_data_first is not None and after.tx_data_first != before.tx_data_first:
        steps += [(after.tx_data_first, SENT), (after.tx_data_first, DATA_SENT)]
    return sorted(steps)


class PeerTimers:
    def __init__(self, persistent_keepalive_interval: float = 0.0,
                 jitter: Callable[[], float] = default_jitter) -> None:
        self.persistent_keepalive_interval = persistent_keepalive_interval
        self._jitter = jitter
        self.deadlines: dict[str, float | None] = dict.fromkeys(_TIMERS)
        self.handshake_attempts = 0
        self.need_another_keepalive = False

    # --- events in ------------------------------------------------------------------------------

    def on_activity(self, before: Activity, after: Activity) -> None:
        """The data plane's report of the peer's traffic (see activity_steps)."""
        for at, step in activity_steps(before, after):
            if step == RECEIVED:
                self.on_any_authenticated_packet_received(at)
                self.on_any_authenticated_packet_traversal(at)
            elif step == DATA_RECEIVED:
                self.on_data_received(at)
            elif step == SENT:
                self.on_any_authenticated_packet_sent(at)
                self.on_any_authenticated_packet_traversal(at)
            else:
                self.on_data_sent(at)

    def on_data_sent(self, now: float) -> None:
        """A data packet (not a keepalive) was sent."""
        if self.deadlines["new_handshake"] is None:
            delay = KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + self._jitter()
            self.deadlines["new_handshake"] = now + delay

    def on_data_received(self, now: float) -> None:
        """A data packet (not a keepalive) was received and authenticated."""
        if self.deadlines["send_keepalive"] is None:
            self.deadlines["send_keepalive"] = now + KEEPALIVE_TIMEOUT
        else:
            self.need_another_keepalive = True

    def on_any_authenticated_packet_sent(self, now: float) -> None:
        self.deadlines["send_keepalive"] = None

    def on_any_authenticated_packet_received(self, now: float) -> None:
        self.deadlines["new_handshake"] = None

    def on_any_authenticated_packet_traversal(self, now: float) -> None:
        if self.persistent_keepalive_interval > 0:
            self.deadlines["persistent_keepalive"] = now + self.persistent_keepalive_interval

    def on_handshake_initiated(self, now: float, retry: bool = False) -> None:
        if not retry:
            self.handshake_attempts = 0
        self.deadlines["retransmit_handshake"] = now + REKEY_TIMEOUT + self._jitter()
        self.deadlines["handshake_wanted"] = None

    def on_handshake_wanted_later(self, when: float) -> None:
        """A wanted initiation was refused until `when`; with no retransmission pending, send
        it then."""
        if self.deadlines["retransmit_handshake"] is None:
            self.deadlines["handshake_wanted"] = when

    def on_handshake_complete(self, now: float) -> None:
        self.deadlines["retransmit_handshake"] = None
        self.deadlines["handshake_wanted"] = None
        self.handshake_attempts = 0

    def set_persistent_keepalive(self, interval: float, now: float) -> None:
        self.persistent_keepalive_interval = interval
        self.deadlines["persistent_keepalive"] = now + interval if interval > 0 else None

    def stop(self) -> None:
        """Cancel every timer (peer removed or device down)."""
        self.deadlines = dict.fromkeys(_TIMERS)
        self.need_another_keepalive = False

    # --- actions out ----------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        pending = [d for d in self.deadlines.values() if d is not None]
        return min(pending) if pending else None

    def tick(self, now: float) -> list[Action]:
        actions: list[Action] = []
        while True:
            due = [(d, name) for name, d in self.deadlines.items() if d is not None and d <= now]
            if not due:
                return actions
            _, name = min(due)
            self.deadlines[name] = None
            actions.extend(getattr(self, f"_expired_{name}")(now))

    def _expired_retransmit_handshake(self, now: float) -> list[Action]:
        self.handshake_attempts += 1
        if self.handshake_attempts >= MAX_TIMER_HANDSHAKES:
            log.debug("handshake did not complete after %d attempts, giving up",
                      self.handshake_attempts)
            self.deadlines["send_keepalive"] = None
            return [GiveUp()]
        return [SendInitiation(retry=True)]

    def _expired_handshake_wanted(self, now: float) -> list[Action]:
        return [SendInitiation(retry=False)]

    def _expired_send_keepalive(self, now: float) -> list[Action]:
        if self.need_another_keepalive:
            self.need_another_keepalive = False
            self.deadlines["send_keepalive"] = now + KEEPALIVE_TIMEOUT
        return [SendKeepalive()]

    def _expired_new_handshake(self, now: float) -> list[Action]:
        return [SendInitiation(retry=False)]

    def _expired_persistent_keepalive(self, now: float) -> list[Action]:
        if self.persistent_keepalive_interval > 0:
            return [SendKeepalive()]
        return []
