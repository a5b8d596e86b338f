"""The device's sans-I/O protocol object: handshake datagrams, data-plane events and a clock in,
outputs out.

`DeviceState.receive(datagram, source, now)` handles message types 1-3 (transport data is the
data plane's and never comes here). Every rejection is a counted drop in `drops`
(a Counter keyed by `DropReason`) and a debug log line; no exception escapes `receive`, `tick`,
`initiate` or the event handlers (an unexpected one is logged and counted as `internal_error`).

Handshake admission, in the kernel's order: the DoS defence comes first and is the data
plane's, in C before its control queue (csrc/dataplane_handshake.c: mac1, and under load mac2
with cookie replies and the per-source rate limit; responses and cookie replies only for an
index of ours). What reaches `receive` passed it; here follow
1. parse (bad_length / bad_type);
2. the Noise step itself (decrypt_failed, unknown_peer, stale_timestamp, handshake_flood, ...),
   or for a cookie reply, opening it with the mac1 we last sent that peer.

What the data plane reports (`on_activity`, `on_handshake_wanted`, `on_keypair_confirmed`,
`on_keys_zeroed`, `on_endpoint_changed`) feeds each peer's timers and handshake; the data plane
rotates, confirms, expires and zeroes the transport keypairs by itself.

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
from wgfast.protocol.drop import DropReason
from wgfast.protocol.index_space import IndexSpace, LocalIndexSpace
from wgfast.protocol.messages import (
    CookieReply,
    HandshakeInitiation,
    HandshakeResponse,
    ParseFailure,
    TransportHeader,
    parse,
)
from wgfast.protocol.outputs import Address, ExpireKeypairs, Output, SendKeepalive
from wgfast.protocol.peer import Peer
from wgfast.protocol.timers import Activity, default_jitter

log = logging.getLogger(__name__)

INTERNAL_ERROR = "internal_error"


class DeviceState:
    def __init__(self, private_key: bytes | None = None, *,
                 wall_clock_ns: Callable[[], int] = time.time_ns,
                 random_bytes: Callable[[int], bytes] = os.urandom,
                 index: IndexSpace | None = None,
                 ephemeral_source: Callable[[], bytes | None] = lambda: None,
                 jitter: Callable[[], float] = default_jitter) -> None:
        """`index` is the receiver-index space (the data plane's, in the daemon; by default one
        in memory). `ephemeral_source` returns the next ephemeral private key (None: a fresh
        random one); tests inject fixed keys through it for known-answer handshakes."""
        self.wall_clock_ns = wall_clock_ns
        self.random_bytes = random_bytes
        self.ephemeral_source = ephemeral_source
        self.jitter = jitter
        self.index: IndexSpace = index if index is not None else LocalIndexSpace()
        self.drops: Counter[str] = Counter()
        # The peer the datagram last given to receive() authenticated as (a handshake
        # initiation or response it consumed), else None: the caller counts the datagram in
        # that peer's transfer counters, as the kernel and wireguard-go do.
        self.received_from: bytes | None = None
        self.peers: dict[bytes, Peer] = {}
        self.identity: noise.StaticIdentity | None = None
        if private_key is not None:
            self.set_private_key(private_key)

    # --- configuration --------------------------------------------------------------------------

    @property
    def public_key(self) -> bytes | None:
        return self.identity.public if self.identity else None

    def static_static(self, remote_public: bytes) -> bytes | None:
        return self.identity.static_static(remote_public) if self.identity else None

    def set_private_key(self, private_key: bytes | None) -> list[Output]:
        """Change the static key: handshakes restart and every session ends (the kernel expires
        the peers' keypairs and lets the next initiation go out at once)."""
        outputs: list[Output] = []
        if private_key is None or not any(private_key):
            self.identity = None
        else:
            self.identity = noise.StaticIdentity(KeyPair.from_private(private_key))
        for peer in list(self.peers.values()):
            if self.identity is not None and peer.public == self.identity.public:
                self.remove_peer(peer.public)  # a peer cannot be ourselves
                continue
            peer.clear_handshake()
            peer.last_sent_handshake = None
            peer.handshake.precomputed_static_static = None  # derived again on first use
            peer.handshake.static_static_ready = False
            outputs.append(ExpireKeypairs(peer.public))
        return outputs

    def add_peer(self, public: bytes, preshared_key: bytes | None = None,
                 endpoint: Address | None = None,
                 persistent_keepalive_interval: float = 0.0) -> Peer:
        peer = self.peers.get(public)
        if peer is None:
            peer = Peer(self, public, preshared_key, endpoint, persistent_keepalive_interval)
            self.peers[peer.public] = peer
        return peer

    def remove_peer(self, public: bytes) -> None:
        """Forget the peer (its keypairs and staged packets are the data plane's to drop)."""
        peer = self.peers.pop(public, None)
        if peer is not None:
            peer.reset()

    # --- incoming datagrams ---------------------------------------------------------------------

    def _drop(self, reason: str, source: Address | None = None) -> list[Output]:
        self.drops[reason] += 1
        log.debug("dropped datagram from %s: %s", source, reason)
        return []

    def receive(self, datagram: bytes, source: Address, now: float) -> list[Output]:
        """A handshake datagram the data plane admitted (see the module's docstring)."""
        self.received_from = None
        try:
            return self._receive(datagram, source, now)
        except Exception:  # a bug must not take the device down: count it and go on
            log.exception("internal error handling a datagram from %s", source)
            return self._drop(INTERNAL_ERROR, source)

    def _receive(self, datagram: bytes, source: Address, now: float) -> list[Output]:
        msg = parse(datagram)
        if isinstance(msg, ParseFailure):
            return self._drop(msg.reason, source)
        if isinstance(msg, TransportHeader):
            return self._drop(DropReason.TRANSPORT_DATA, source)
        if self.identity is None:  # the key went after the data plane admitted the datagram
            return self._drop(DropReason.NO_IDENTITY, source)
        if isinstance(msg, CookieReply):
            return self._receive_cookie_reply(msg, source, now)
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
        self.received_from = peer.public
        peer.endpoint = source
        peer.timers.on_any_authenticated_packet_received(now)
        peer.timers.on_any_authenticated_packet_traversal(now)
        return peer.respond(now)

    def _peer_at(self, index: int) -> Peer | None:
        owner = self.index.owner(index)
        return self.peers.get(owner) if owner is not None else None

    def _receive_response(self, msg: HandshakeResponse, source: Address,
                          now: float) -> list[Output]:
        assert self.identity is not None
        peer = self._peer_at(msg.receiver_index)
        if peer is None or peer.handshake.local_index != msg.receiver_index:
            return self._drop(DropReason.UNKNOWN_INDEX, source)  # no handshake of ours in flight
        err = noise.consume_response(self.identity, peer.handshake, msg)
        if err is not None:
            return self._drop(err, source)
        self.received_from = peer.public
        peer.endpoint = source
        log.debug("%r: received handshake response", peer)
        peer.timers.on_any_authenticated_packet_received(now)
        peer.timers.on_any_authenticated_packet_traversal(now)
        outputs = peer.begin_session(now)
        # Confirm the session to the responder at once (it holds the keypair as `next` until
        # data arrives); this also flushes packets staged while the handshake ran.
        outputs.append(SendKeepalive(peer.public, confirms_session=True))
        return outputs

    def _receive_cookie_reply(self, msg: CookieReply, source: Address,
                              now: float) -> list[Output]:
        peer = self._peer_at(msg.receiver_index)  # a handshake's index or a keypair's
        if peer is None:
            return self._drop(DropReason.UNKNOWN_INDEX, source)
        jar = peer.cookie_jar
        if not jar.have_sent_mac1:
            return self._drop(DropReason.UNEXPECTED_COOKIE, source)
        if not jar.consume_reply(msg, now):
            return self._drop(DropReason.DECRYPT_FAILED, source)
        log.debug("%r: stored a cookie", peer)
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

    # --- reports from the data plane -----------------------------------------------------------

    def _guarded(self, what: str, peer_public: bytes,
                 step: Callable[[Peer], list[Output]]) -> list[Output]:
        peer = self.peers.get(peer_public)
        if peer is None:
            return []
        try:
            return step(peer)
        except Exception:
            log.exception("internal error handling %s for %r", what, peer)
            self.drops[INTERNAL_ERROR] += 1
            return []

    def on_activity(self, peer_public: bytes, activity: Activity) -> list[Output]:
        """The data plane's report of the peer's traffic: feeds its timers."""
        def step(peer: Peer) -> list[Output]:
            peer.on_activity(activity)
            return []
        return self._guarded("activity", peer_public, step)

    def on_handshake_wanted(self, peer_public: bytes, now: float) -> list[Output]:
        """Packets wait and no keypair may send them, or the current one is due for a rekey."""
        def step(peer: Peer) -> list[Output]:
            log.debug("%r: the data plane wants a handshake", peer)
            return peer.initiate(now)
        return self._guarded("a wanted handshake", peer_public, step)

    def on_keypair_confirmed(self, peer_public: bytes, now: float) -> list[Output]:
        """The responder's new keypair carried data: the handshake is complete."""
        def step(peer: Peer) -> list[Output]:
            peer.on_handshake_complete(now)
            return []
        return self._guarded("a confirmed keypair", peer_public, step)

    def on_keys_zeroed(self, peer_public: bytes) -> list[Output]:
        """No session for 3 x REJECT_AFTER_TIME: the data plane zeroed the keypairs; the
        handshake in progress goes too (the kernel's zero_key_material)."""
        def step(peer: Peer) -> list[Output]:
            peer.clear_handshake()
            return []
        return self._guarded("zeroed keys", peer_public, step)

    def on_endpoint_changed(self, peer_public: bytes, endpoint: Address) -> None:
        """Roaming: the peer's authenticated data now comes from `endpoint`."""
        peer = self.peers.get(peer_public)
        if peer is not None:
            peer.endpoint = endpoint
