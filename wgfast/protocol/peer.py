"""One peer's protocol state and the steps that only concern that peer.

A `Peer` ties together its handshake (`noise.Handshake`), keypairs (`keypair.Keypairs`), timers
(`timers.PeerTimers`) and the sending side of cookies (`cookie.CookieJar`). It belongs to one
`DeviceState` (back-reference, like the kernel's peer->device) for the static identity, the index
table, the clocks and the ephemeral source.

Decisions:
- An initiation that is not a retry is sent at most once per REKEY_TIMEOUT (the kernel's rule).
- Without a known endpoint no initiation is sent (there is nowhere to send it); the timers are
  not armed either, so nothing retries until traffic or `initiate` asks again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from wgfast.keys import to_base64
from wgfast.protocol import noise, tai64n
from wgfast.protocol.cookie import CookieJar
from wgfast.protocol.index_table import IndexTable
from wgfast.protocol.keypair import Keypair, Keypairs
from wgfast.protocol.messages import KEY_LEN, REKEY_TIMEOUT
from wgfast.protocol.outputs import (
    Address,
    DropStaged,
    KeypairReady,
    KeypairRetired,
    KeysZeroed,
    Output,
    SendKeepalive,
    Transmit,
)
from wgfast.protocol.timers import Action, PeerTimers
from wgfast.protocol.timers import DropStaged as TimerDropStaged
from wgfast.protocol.timers import SendInitiation as TimerSendInitiation
from wgfast.protocol.timers import SendKeepalive as TimerSendKeepalive
from wgfast.protocol.timers import ZeroKeys as TimerZeroKeys

log = logging.getLogger(__name__)


class PeerContext(Protocol):
    """What a peer needs of the device it belongs to (`DeviceState` is one): the static identity,
    the index table, the clocks and the randomness. A protocol type, so that this module does
    not import the device state that imports it."""

    identity: noise.StaticIdentity | None
    index: IndexTable[Peer]
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
        self.keypairs = Keypairs()
        self.timers = PeerTimers(persistent_keepalive_interval, jitter=device.jitter)
        self.cookie_jar = CookieJar(self.public)
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
        """Send a handshake initiation (rate limited to one per REKEY_TIMEOUT unless a retry)."""
        dev = self.device
        if dev.identity is None or self.endpoint is None:
            return []
        if (not retry and self.last_sent_handshake is not None
                and now - self.last_sent_handshake < REKEY_TIMEOUT):
            return []
        self.forget_handshake_index()
        index = dev.index.allocate(self)
        timestamp = tai64n.encode(dev.wall_clock_ns())
        self.ensure_static_static()
        message = noise.create_initiation(dev.identity, self.handshake, index, timestamp,
                                          dev.ephemeral_source())
        if message is None:
            dev.index.remove(index)
            self.handshake.local_index = None
            log.warning("%r: cannot initiate, the peer's public key is a low-order point", self)
            return []
        message = self.cookie_jar.add_macs(message, now)
        self.last_sent_handshake = now
        self.timers.on_any_authenticated_packet_traversal(now)
        self.timers.on_any_authenticated_packet_sent(now)
        self.timers.on_handshake_initiated(now, retry)
        return [Transmit(self.public, self.endpoint, message)]

    def respond(self, now: float) -> list[Output]:
        """After a consumed initiation: the response, and the new keypair staged as `next`."""
        dev = self.device
        assert self.endpoint is not None
        self.forget_handshake_index()
        index = dev.index.allocate(self)
        message = noise.create_response(self.handshake, index, dev.ephemeral_source())
        if message is None:
            dev.index.remove(index)
            self.handshake.local_index = None
            return []
        message = self.cookie_jar.add_macs(message, now)
        # The keypair first, then the response: whoever carries the outputs out in order
        # installs the keypair before the initiator can answer the response (its confirming
        # keepalive follows at once; reaching the data plane before the keypair, it would be
        # dropped as an unknown index and the session would stay unconfirmed until more data).
        outputs = self.begin_session(now)
        outputs.append(Transmit(self.public, self.endpoint, message))
        self.timers.on_any_authenticated_packet_traversal(now)
        self.timers.on_any_authenticated_packet_sent(now)
        return outputs

    def begin_session(self, now: float) -> list[Output]:
        """Derive the keypair from a finished handshake and slot it (current or next)."""
        keys = noise.derive_transport_keys(self.handshake)
        if keys is None:
            return []
        dev = self.device
        self.handshake.local_index = None  # the keypair owns the index now
        keypair = Keypair.from_transport_keys(keys, now)
        dev.index.replace(keypair.local_index, keypair)
        outputs: list[Output] = [KeypairReady(self.public, keypair, keypair.is_initiator)]
        outputs += self._retired(self.keypairs.add(keypair))
        self.timers.on_session_derived(now)
        if keypair.is_initiator:
            self.timers.on_handshake_complete(now)
            self.last_handshake_time_ns = dev.wall_clock_ns()
        return outputs

    def forget_handshake_index(self) -> None:
        self.device.index.remove(self.handshake.local_index)
        self.handshake.local_index = None

    def _retired(self, keypairs: list[Keypair]) -> list[Output]:
        out: list[Output] = []
        for kp in keypairs:
            self.device.index.remove(kp.local_index)
            out.append(KeypairRetired(self.public, kp.local_index))
        return out

    # --- keys -----------------------------------------------------------------------------------

    def zero_keys(self) -> list[Output]:
        """Zero every keypair and forget the handshake in progress."""
        outputs = self._retired(self.keypairs.zero_all())
        self.forget_handshake_index()
        self.handshake.clear()
        return outputs

    def keypair_promoted(self, keypair: Keypair, now: float) -> list[Output]:
        promoted, retired = self.keypairs.received_with(keypair)
        if not promoted:
            return []
        self.timers.on_handshake_complete(now)
        self.last_handshake_time_ns = self.device.wall_clock_ns()
        return self._retired(retired)

    # --- timers ---------------------------------------------------------------------------------

    def run_actions(self, actions: list[Action], now: float) -> list[Output]:
        outputs: list[Output] = []
        for action in actions:
            if isinstance(action, TimerSendInitiation):
                outputs += self.initiate(now, retry=action.retry)
            elif isinstance(action, TimerSendKeepalive):
                outputs.append(SendKeepalive(self.public))
            elif isinstance(action, TimerDropStaged):
                outputs.append(DropStaged(self.public))
            elif isinstance(action, TimerZeroKeys):
                outputs += self.zero_keys()
                outputs.append(KeysZeroed(self.public))
        return outputs

    def tick(self, now: float) -> list[Output]:
        return self.run_actions(self.timers.tick(now), now)
