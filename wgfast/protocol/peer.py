"""One peer's protocol state and the steps that only concern that peer.

A `Peer` ties together its handshake (`noise.Handshake`), its timers (`timers.PeerTimers`) and
the sending side of cookies (`cookie.CookieJar`). It belongs to one device (`PeerContext`, which
`DeviceState` provides) for the static identity, the index space, the clocks and the ephemeral
source. Its transport keypairs are not here: the data plane holds them and reports what they did.

Decisions:
- An initiation that is not a retry is sent at most once per REKEY_TIMEOUT (the kernel's rule).
- Without a known endpoint or a private key no initiation can be sent, but the retransmission
  timer runs as if one had been (as in the kernel, whose send goes nowhere): retries send one as
  soon as there is an endpoint, and after REKEY_ATTEMPT_TIME the handshake gives up and the
  packets staged for it are dropped, so that they do not hold the data plane's buffers for good.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from wgfast.keys import to_base64
from wgfast.protocol import noise, tai64n
from wgfast.protocol.cookie import CookieJar
from wgfast.protocol.index_space import IndexSpace
from wgfast.protocol.messages import KEY_LEN, REKEY_TIMEOUT
from wgfast.protocol.outputs import (
    Address,
    DropStaged,
    InstallKeypair,
    Output,
    SendKeepalive,
    Transmit,
    ZeroKeysLater,
)
from wgfast.protocol.timers import Action, Activity, GiveUp, PeerTimers
from wgfast.protocol.timers import SendInitiation as TimerSendInitiation
from wgfast.protocol.timers import SendKeepalive as TimerSendKeepalive

log = logging.getLogger(__name__)


class PeerContext(Protocol):
    """What a peer needs of the device it belongs to (`DeviceState` is one): the static identity,
    the index space, the clocks and the randomness. A protocol type, so that this module does
    not import the device state that imports it."""

    identity: noise.StaticIdentity | None
    index: IndexSpace
    jitter: Callable[[], float]
    wall_clock_ns: Callable[[], int]
    ephemeral_source: Callable[[], bytes | None]

    def static_static(self, remote_public: bytes) -> bytes | None: ...


class Peer:
    def __init__(self, device: PeerContext, public: bytes, preshared_key: bytes | None = None,
                 endpoint: Address | None = None,
                 persistent_keepalive_interval: float = 0.0) -> None:
        if len(public) != KEY_LEN:
            raise ValueError("a peer's public key is 32 bytes")
        if preshared_key is not None and len(preshared_key) != KEY_LEN:
            raise ValueError("a preshared key is 32 bytes")
        self.device = device
        self.public = bytes(public)
        self.endpoint = endpoint
        self.handshake = noise.Handshake(
            remote_static=self.public,
            precomputed_static_static=None,
            static_static_ready=False,  # computed on first use (ensure_static_static)
            preshared_key=bytes(preshared_key) if preshared_key else noise.ZERO_KEY,
        )
        self.timers = PeerTimers(persistent_keepalive_interval, jitter=device.jitter)
        self.cookie_jar = CookieJar(self.public)
        self.activity = Activity()  # the data plane's last report
        self.last_sent_handshake: float | None = None
        self.last_handshake_time_ns: int | None = None  # wall clock, for UAPI

    def __repr__(self) -> str:
        return f"Peer({to_base64(self.public)})"

    def ensure_static_static(self) -> None:
        """Derive DH(our static, its static) on first use after the peer or our key changed
        (None for a low-order public key, which makes every handshake with it fail)."""
        if not self.handshake.static_static_ready and self.device.identity is not None:
            self.handshake.precomputed_static_static = self.device.static_static(self.public)
            self.handshake.static_static_ready = True

    # --- handshake ------------------------------------------------------------------------------

    def initiate(self, now: float, retry: bool = False) -> list[Output]:
        """Send a handshake initiation (rate limited to one per REKEY_TIMEOUT unless a retry).
        Refused by that rule, it is sent when the rule allows, unless a retry comes first."""
        dev = self.device
        if (not retry and self.last_sent_handshake is not None
                and now - self.last_sent_handshake < REKEY_TIMEOUT):
            self.timers.on_handshake_wanted_later(self.last_sent_handshake + REKEY_TIMEOUT)
            return []
        if dev.identity is None or self.endpoint is None:
            self.timers.on_handshake_initiated(now, retry)  # see the module docstring
            return []
        self.last_sent_handshake = now
        self.forget_handshake_index()
        index = dev.index.allocate(self.public)
        self.handshake.local_index = index
        timestamp = tai64n.encode(dev.wall_clock_ns())
        self.ensure_static_static()
        message = noise.create_initiation(dev.identity, self.handshake, index, timestamp,
                                          dev.ephemeral_source())
        if message is None:
            self.forget_handshake_index()
            log.warning("%r: cannot initiate, the peer's public key is a low-order point", self)
            return []
        message = self.cookie_jar.add_macs(message, now)
        self.timers.on_any_authenticated_packet_traversal(now)
        self.timers.on_any_authenticated_packet_sent(now)
        self.timers.on_handshake_initiated(now, retry)
        log.debug("%r: sending handshake initiation%s", self, " (retry)" if retry else "")
        return [Transmit(self.public, self.endpoint, message)]

    def respond(self, now: float) -> list[Output]:
        """After a consumed initiation: the new keypair (waiting as `next` in the data plane),
        then the response."""
        dev = self.device
        assert self.endpoint is not None
        self.forget_handshake_index()
        index = dev.index.allocate(self.public)
        message = noise.create_response(self.handshake, index, dev.ephemeral_source())
        if message is None:
            dev.index.release(self.public)
            return []
        self.handshake.local_index = index
        message = self.cookie_jar.add_macs(message, now)
        # The keypair first, then the response: whoever carries the outputs out in order
        # installs the keypair before the initiator can answer the response (its confirming
        # keepalive follows at once; reaching the data plane before the keypair, it would be
        # dropped as an unknown index and the session would stay unconfirmed until more data).
        outputs = self.begin_session(now)
        outputs.append(Transmit(self.public, self.endpoint, message))
        log.debug("%r: received handshake initiation, sending response", self)
        self.timers.on_any_authenticated_packet_traversal(now)
        self.timers.on_any_authenticated_packet_sent(now)
        return outputs

    def begin_session(self, now: float) -> list[Output]:
        """Derive the keypair from a finished handshake and hand it down."""
        keys = noise.derive_transport_keys(self.handshake)
        if keys is None:
            return []
        dev = self.device
        dev.index.settle(self.public)  # the keypair keeps the handshake's index
        self.handshake.local_index = None
        if keys.is_initiator:
            self.on_handshake_complete(now)
        return [InstallKeypair(self.public, keys.local_index, keys.remote_index,
                               keys.is_initiator, now, bytearray(keys.send),
                               bytearray(keys.receive))]

    def on_handshake_complete(self, now: float) -> None:
        """A session exists: the initiator took the response, or the data plane confirmed the
        responder's keypair with the first data under it."""
        self.timers.on_handshake_complete(now)
        self.last_handshake_time_ns = self.device.wall_clock_ns()

    def forget_handshake_index(self) -> None:
        if self.handshake.local_index is not None:
            self.device.index.release(self.public)
            self.handshake.local_index = None

    def clear_handshake(self) -> None:
        """Forget the handshake in progress (its index freed): the kernel's handshake clear."""
        self.forget_handshake_index()
        self.handshake.clear()

    def reset(self) -> None:
        """The device went down or the peer is gone: no handshake, no timers, and a fresh start
        for the next initiation."""
        self.clear_handshake()
        self.timers.stop()
        self.activity = Activity()
        self.last_sent_handshake = None

    # --- the data plane's reports ---------------------------------------------------------------

    def on_activity(self, activity: Activity) -> None:
        self.timers.on_activity(self.activity, activity)
        self.activity = activity

    # --- timers ---------------------------------------------------------------------------------

    def run_actions(self, actions: list[Action], now: float) -> list[Output]:
        outputs: list[Output] = []
        for action in actions:
            if isinstance(action, TimerSendInitiation):
                outputs += self.initiate(now, retry=action.retry)
            elif isinstance(action, TimerSendKeepalive):
                outputs.append(SendKeepalive(self.public))
            elif isinstance(action, GiveUp):
                self.clear_handshake()
                outputs += [DropStaged(self.public), ZeroKeysLater(self.public)]
        return outputs

    def tick(self, now: float) -> list[Output]:
        return self.run_actions(self.timers.tick(now), now)
