"""The device's sans-I/O protocol object: datagrams and a clock in, outputs out.

`DeviceState.receive(datagram, source, now, under_load)` handles message types 1-3 and routes
type 4 (transport data) to the data plane without opening it. Every rejection is a counted drop
in `drops` (a Counter keyed by `DropReason`) and a debug log line; no exception escapes
`receive`, `tick`, `initiate` or the data-plane callbacks (an unexpected one is logged and
counted as `internal_error`).

Handshake admission, in the kernel's order:
1. parse (bad_length / bad_type);
2. mac1 must verify (bad_mac1);
3. under load only: mac2 must carry our current cookie for the source, else a cookie reply is sent
   and the message dropped (cookie_required); with a valid cookie, the per-source rate limiter
   must admit it (rate_limited);
4. the Noise step itself (decrypt_failed, unknown_peer, stale_timestamp, handshake_flood, ...).

Decision: the device (the I/O layer) decides whether it is under load, e.g. when its queue of
pending handshakes is over 1/8 full, and keeps saying so for UNDER_LOAD_AFTER_TIME afterwards;
`LoadTracker` below implements that rule for it.

Clocks: `now` is monotonic float seconds passed into every call; `wall_clock_ns` (injectable) is
only used for TAI64N timestamps and last-handshake times.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable

from wgfast.keys import KeyPair
from wgfast.protocol import noise
from wgfast.protocol.cookie import CookieChecker, MacState
from wgfast.protocol.drop import DropReason
from wgfast.protocol.index_table import IndexTable
from wgfast.protocol.messages import (
    MAX_QUEUED_INCOMING_HANDSHAKES,
    UNDER_LOAD_AFTER_TIME,
    CookieReply,
    HandshakeInitiation,
    HandshakeResponse,
    ParseFailure,
    TransportHeader,
    parse,
)
from wgfast.protocol.outputs import (
    Address,
    KeypairPromoted,
    Output,
    RouteData,
    SendKeepalive,
    Transmit,
)
from wgfast.protocol.peer import Peer
from wgfast.protocol.ratelimiter import RateLimiter
from wgfast.protocol.timers import default_jitter

log = logging.getLogger(__name__)

INTERNAL_ERROR = "internal_error"


class LoadTracker:
    """Under load while the handshake queue is over 1/8 full, and for 1 s after (kernel rule)."""

    def __init__(self, queue_capacity: int = MAX_QUEUED_INCOMING_HANDSHAKES) -> None:
        self.threshold = queue_capacity // 8
        self._last_under_load: float | None = None

    def under_load(self, queue_length: int, now: float) -> bool:
        if queue_length >= self.threshold:
            self._last_under_load = now
            return True
        return (self._last_under_load is not None
                and now - self._last_under_load < UNDER_LOAD_AFTER_TIME)


class DeviceState:
    def __init__(self, private_key: bytes | None = None, *,
                 wall_clock_ns: Callable[[], int] = time.time_ns,
                 random_bytes: Callable[[int], bytes] = os.urandom,
                 random_u32: Callable[[], int] | None = None,
                 ephemeral_source: Callable[[], bytes | None] = lambda: None,
                 jitter: Callable[[], float] = default_jitter,
                 ratelimiter: RateLimiter | None = None) -> None:
        """`ephemeral_source` returns the next ephemeral private key (None: a fresh random
        one); tests inject fixed keys through it for known-answer handshakes."""
        self.wall_clock_ns = wall_clock_ns
        self.random_bytes = random_bytes
        self.ephemeral_source = ephemeral_source
        self.jitter = jitter
        self.index: IndexTable[Peer] = IndexTable(random_u32) if random_u32 else IndexTable()
        self.ratelimiter = ratelimiter or RateLimiter()
        self.drops: Counter[str] = Counter()
        self.peers: dict[bytes, Peer] = {}
        self.identity: noise.StaticIdentity | None = None
        self.cookie_checker: CookieChecker | None = None
        if private_key is not None:
            self.set_private_key(private_key)

    # --- configuration --------------------------------------------------------------------------

    @property
    def public_key(self) -> bytes | None:
        return self.identity.public if self.identity else None

    def static_static(self, remote_public: bytes) -> bytes | None:
        return self.identity.static_static(remote_public) if self.identity else None

    def set_private_key(self, private_key: bytes | None) -> list[Output]:
        """Change the static key: handshakes restart, keypairs are zeroed (kernel behaviour)."""
        outputs: list[Output] = []
        if private_key is None or not any(private_key):
            self.identity = None
            self.cookie_checker = None
        else:
            self.identity = noise.StaticIdentity(KeyPair.from_private(private_key))
            self.cookie_checker = CookieChecker(self.identity.public, self.random_bytes)
        for peer in list(self.peers.values()):
            if self.identity is not None and peer.public == self.identity.public:
                outputs += self.remove_peer(peer.public)  # a peer cannot be ourselves
                continue
            outputs += peer.zero_keys()
            peer.handshake.precomputed_static_static = None  # derived again on first use
            peer.handshake.static_static_ready = False
        return outputs

    def add_peer(self, public: bytes, preshared_key: bytes | None = None,
                 endpoint: Address | None = None,
                 persistent_keepalive_interval: float = 0.0) -> Peer:
        peer = self.peers.get(public)
        if peer is None:
            peer = Peer(self, public, preshared_key, endpoint, persistent_keepalive_interval)
            self.peers[peer.public] = peer
        return peer

    def remove_peer(self, public: bytes) -> list[Output]:
        peer = self.peers.pop(public, None)
        if peer is None:
            return []
        peer.timers.stop()
        return peer.zero_keys()

    # --- incoming datagrams ---------------------------------------------------------------------

    def _drop(self, reason: str, source: Address | None = None) -> list[Output]:
        self.drops[reason] += 1
        log.debug("dropped datagram from %s: %s", source, reason)
        return []

    def receive(self, datagram: bytes, source: Address, now: float,
                under_load: bool = False) -> list[Output]:
        try:
            return self._receive(datagram, source, now, under_load)
        except Exception:  # a bug must not take the device down: count it and go on
            log.exception("internal error handling a datagram from %s", source)
            return self._drop(INTERNAL_ERROR, source)

    def _receive(self, datagram: bytes, source: Address, now: float,
                 under_load: bool) -> list[Output]:
        msg = parse(datagram)
        if isinstance(msg, ParseFailure):
            return self._drop(msg.reason, source)
        if isinstance(msg, TransportHeader):
            entry = self.index.lookup(msg.receiver_index)
            if entry is None or entry.keypair is None:
                return self._drop(DropReason.UNKNOWN_INDEX, source)
            return [RouteData(entry.peer.public, entry.keypair, bytes(datagram), source)]
        if self.identity is None or self.cookie_checker is None:
            return self._drop(DropReason.NO_IDENTITY, source)
        if isinstance(msg, CookieReply):
            return self._receive_cookie_reply(msg, source, now)

        state = self.cookie_checker.validate(msg.raw, source, now, check_cookie=under_load)
        if state is MacState.INVALID_MAC:
            return self._drop(DropReason.BAD_MAC1, source)
        if under_load:
            if state is not MacState.VALID_MAC_WITH_COOKIE:
                reply = self.cookie_checker.make_reply(msg.raw, msg.sender_index, source, now)
                self._drop(DropReason.COOKIE_REQUIRED, source)
                return [Transmit(None, source, reply)]
            if not self.ratelimiter.allow(source[0], now):
                return self._drop(DropReason.RATE_LIMITED, source)
        if isinstance(msg, HandshakeInitiation):
            return self._receive_initiation(msg, source, now)
        return self._receive_response(msg, source, now)

    def _receive_initiation(self, msg: HandshakeInitiation, source: Address,
                            now: float) -> list[Output]:
        assert self.identity is not None

        def lookup(static: bytes) -> noise.Handshake | None:
            peer = self.peers.get(static)
            if peer is None:
                return None
            peer.ensure_static_static()
            return peer.handshake

        result = noise.consume_initiation(self.identity, msg, lookup, now)
        if isinstance(result, DropReason):
            return self._drop(result, source)
        peer = self.peers[result.remote_static]
        peer.endpoint = source
        peer.timers.on_any_authenticated_packet_received(now)
        peer.timers.on_any_authenticated_packet_traversal(now)
        return peer.respond(now)

    def _receive_response(self, msg: HandshakeResponse, source: Address,
                          now: float) -> list[Output]:
        assert self.identity is not None
        entry = self.index.lookup(msg.receiver_index)
        if entry is None or entry.keypair is not None:
            return self._drop(DropReason.UNKNOWN_INDEX, source)
        peer = entry.peer
        err = noise.consume_response(self.identity, peer.handshake, msg)
        if err is not None:
            return self._drop(err, source)
        peer.endpoint = source
        peer.timers.on_any_authenticated_packet_received(now)
        peer.timers.on_any_authenticated_packet_traversal(now)
        outputs = peer.begin_session(now)
        # Confirm the session to the responder at once (it holds the keypair as `next` until
        # data arrives); this also flushes packets staged while the handshake ran.
        outputs.append(SendKeepalive(peer.public))
        return outputs

    def _receive_cookie_reply(self, msg: CookieReply, source: Address,
                              now: float) -> list[Output]:
        entry = self.index.lookup(msg.receiver_index)
        if entry is None:
            return self._drop(DropReason.UNKNOWN_INDEX, source)
        jar = entry.peer.cookie_jar
        if not jar.have_sent_mac1:
            return self._drop(DropReason.UNEXPECTED_COOKIE, source)
        if not jar.consume_reply(msg, now):
            return self._drop(DropReason.DECRYPT_FAILED, source)
        log.debug("%r: stored a cookie", entry.peer)
        return []

    # --- outgoing handshakes and timers ---------------------------------------------------------

    def initiate(self, peer_public: bytes, now: float) -> list[Output]:
        """Start a handshake with this peer (e.g. data is staged and no keypair can send)."""
        peer = self.peers.get(peer_public)
        if peer is None:
            return []
        try:
            return peer.initiate(now)
        except Exception:
            log.exception("internal error initiating a handshake with %r", peer)
            self.drops[INTERNAL_ERROR] += 1
            return []

    def tick(self, now: float) -> list[Output]:
        outputs: list[Output] = []
        for peer in list(self.peers.values()):
            try:
                outputs += peer.tick(now)
            except Exception:
                log.exception("internal error in %r's timers", peer)
                self.drops[INTERNAL_ERROR] += 1
        return outputs

    def next_deadline(self) -> float | None:
        deadlines = [d for p in self.peers.values() if (d := p.timers.next_deadline()) is not None]
        return min(deadlines) if deadlines else None

    # --- reports from the data plane ------------------------------------------------------------

    def on_data_received(self, peer_public: bytes, local_index: int, source: Address,
                         now: float, is_keepalive: bool) -> list[Output]:
        """The data plane authenticated a transport packet under keypair `local_index`."""
        peer = self.peers.get(peer_public)
        if peer is None:
            return []
        keypair = peer.keypairs.find(local_index)
        if keypair is None:
            return []
        outputs: list[Output] = []
        was_next = keypair is peer.keypairs.next
        outputs += peer.keypair_promoted(keypair, now)
        if was_next and keypair is peer.keypairs.current:
            outputs.insert(0, KeypairPromoted(peer.public, keypair))
        peer.endpoint = source
        if keypair is peer.keypairs.current:
            outputs += peer.run_actions(peer.timers.rekey_on_receive(keypair, now), now)
        peer.timers.on_any_authenticated_packet_received(now)
        peer.timers.on_any_authenticated_packet_traversal(now)
        if not is_keepalive:
            peer.timers.on_data_received(now)
        return outputs

    def on_data_sent(self, peer_public: bytes, now: float, is_keepalive: bool) -> list[Output]:
        """The data plane sent a transport packet to this peer under its current keypair."""
        peer = self.peers.get(peer_public)
        if peer is None:
            return []
        peer.timers.on_any_authenticated_packet_traversal(now)
        peer.timers.on_any_authenticated_packet_sent(now)
        if not is_keepalive:
            peer.timers.on_data_sent(now)
        return peer.run_actions(peer.timers.rekey_on_send(peer.keypairs.current, now), now)
