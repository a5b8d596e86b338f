"""One peer's timers as a state machine over an injectable clock (the kernel's timers.c).

Events come in as method calls carrying `now` (float seconds, any monotonic origin); `tick(now)`
fires every deadline that has passed and returns the resulting actions; `next_deadline()` says
when to call `tick` next. Nothing here sleeps, schedules or does I/O.

Timers (deadline -> action):
- retransmit_handshake: REKEY_TIMEOUT + jitter after an initiation is sent -> SendInitiation(retry)
  until MAX_TIMER_HANDSHAKES (REKEY_ATTEMPT_TIME / REKEY_TIMEOUT = 18) initiations have gone
  unanswered, then give up: DropStaged, and zero keys in 3 x REJECT_AFTER_TIME if not scheduled.
  Decision: 18 initiations spanning REKEY_ATTEMPT_TIME (90 s), the paper's rule; the Linux
  kernel's off-by-two counting sends 20 and gives up after ~100 s.
- send_keepalive: KEEPALIVE_TIMEOUT after data is received with nothing sent since -> SendKeepalive
  (passive keepalive; re-armed once more if more data arrived while it was pending).
- new_handshake: KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + jitter after data is sent with nothing
  authenticated received since -> SendInitiation(retry=False).
- zero_key_material: 3 x REJECT_AFTER_TIME after the last session was derived -> ZeroKeys.
- persistent_keepalive: every `persistent_keepalive_interval` seconds after the last
  authenticated packet in either direction -> SendKeepalive.

Rekey on traffic (not timers, but decided here): `on_data_sent` asks for a handshake when the
current keypair needs one (REKEY_AFTER_MESSAGES, or REKEY_AFTER_TIME for the initiator);
`on_data_received` asks once per session when the initiator's keypair is older than
REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from wgfast.protocol.keypair import Keypair
from wgfast.protocol.messages import (
    KEEPALIVE_TIMEOUT,
    MAX_TIMER_HANDSHAKES,
    REJECT_AFTER_TIME,
    REKEY_TIMEOUT,
    REKEY_TIMEOUT_JITTER_MAX,
)

log = logging.getLogger(__name__)

ZERO_KEYS_AFTER = 3 * REJECT_AFTER_TIME
REKEY_ON_RECEIVE_AGE = REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT

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
class ZeroKeys:
    pass


@dataclass(frozen=True, slots=True)
class DropStaged:
    pass


Action = SendInitiation | SendKeepalive | ZeroKeys | DropStaged

_TIMERS = ("retransmit_handshake", "send_keepalive", "new_handshake", "zero_key_material",
           "persistent_keepalive")


class PeerTimers:
    def __init__(self, persistent_keepalive_interval: float = 0.0,
                 jitter: Callable[[], float] = default_jitter) -> None:
        self.persistent_keepalive_interval = persistent_keepalive_interval
        self._jitter = jitter
        self.deadlines: dict[str, float | None] = dict.fromkeys(_TIMERS)
        self.handshake_attempts = 0
        self.need_another_keepalive = False
        self.sent_lastminute_handshake = False

    # --- events in ------------------------------------------------------------------------------

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

    def rekey_on_send(self, keypair: Keypair | None, now: float) -> list[Action]:
        """After sending under `keypair`: a handshake if it is due (kernel keep_key_fresh)."""
        if keypair is not None and keypair.needs_rekey_on_send(now):
            return [SendInitiation(retry=False)]
        return []

    def rekey_on_receive(self, keypair: Keypair | None, now: float) -> list[Action]:
        """After receiving under the current keypair: the initiator's last-minute handshake,
        once per session, when the keypair nears REJECT_AFTER_TIME."""
        if (keypair is not None and keypair.valid and keypair.is_initiator
                and not self.sent_lastminute_handshake
                and keypair.age(now) >= REKEY_ON_RECEIVE_AGE):
            self.sent_lastminute_handshake = True
            return [SendInitiation(retry=False)]
        return []

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

    def on_handshake_complete(self, now: float) -> None:
        self.deadlines["retransmit_handshake"] = None
        self.handshake_attempts = 0
        self.sent_lastminute_handshake = False

    def on_session_derived(self, now: float) -> None:
        self.deadlines["zero_key_material"] = now + ZERO_KEYS_AFTER

    def set_persistent_keepalive(self, interval: float, now: float) -> None:
        self.persistent_keepalive_interval = interval
        self.deadlines["persistent_keepalive"] = now + interval if interval > 0 else None

    def stop(self) -> None:
        """Cancel every timer (peer removed or device down)."""
        self.deadlines = dict.fromkeys(_TIMERS)

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
            if self.deadlines["zero_key_material"] is None:
                self.deadlines["zero_key_material"] = now + ZERO_KEYS_AFTER
            return [DropStaged()]
        return [SendInitiation(retry=True)]

    def _expired_send_keepalive(self, now: float) -> list[Action]:
        if self.need_another_keepalive:
            self.need_another_keepalive = False
            self.deadlines["send_keepalive"] = now + KEEPALIVE_TIMEOUT
        return [SendKeepalive()]

    def _expired_new_handshake(self, now: float) -> list[Action]:
        return [SendInitiation(retry=False)]

    def _expired_zero_key_material(self, now: float) -> list[Action]:
        return [ZeroKeys()]

    def _expired_persistent_keepalive(self, now: float) -> list[Action]:
        if self.persistent_keepalive_interval > 0:
            return [SendKeepalive()]
        return []
