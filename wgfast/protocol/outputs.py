"""What the protocol core asks its caller to do: plain values, one dataclass each.

The core is sans-I/O: `DeviceState` methods return lists of these, and whoever wires it to the
network and the data plane carries them out, in order. `peer` is always the peer's static public
key. Transport keypairs live in the data plane, which rotates, confirms, expires and zeroes them
by itself; the core only hands each new one down (`InstallKeypair`) and says when a session must
end sooner than the data plane's own rules would end it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Transmit:
    """Send `data` as one UDP datagram to `destination` (peer is None for cookie replies to a
    source we do not associate with a peer yet)."""

    peer: bytes | None
    destination: Address
    data: bytes


@dataclass(frozen=True, slots=True)
class InstallKeypair:
    """A finished handshake's keys, for the data plane: the initiator's become current at once,
    the responder's wait as next until data under them arrives. `local_index` is the handshake's
    receiver index, which the keypair takes over; `created` is the monotonic time they were
    derived. Call `wipe()` once the data plane has them."""

    peer: bytes
    local_index: int
    remote_index: int
    is_initiator: bool
    created: float
    send_key: bytearray = field(repr=False)
    receive_key: bytearray = field(repr=False)

    def wipe(self) -> None:
        """Overwrite both keys in place. (The `bytes` the derivation produced them from cannot be
        wiped by Python; the data plane's copy is the one that seals and opens, and it zeroes
        its own.)"""
        for key in (self.send_key, self.receive_key):
            key[:] = bytes(len(key))


@dataclass(frozen=True, slots=True)
class SendKeepalive:
    """Send the peer's staged packets, or an empty data packet if none are staged (without a
    keypair that may send, the data plane asks for a handshake instead). `confirms_session`:
    the initiator's first message under the keypair it just installed, which data that already
    went out under it makes unnecessary (the kernel sends none when packets were staged)."""

    peer: bytes
    confirms_session: bool = False


@dataclass(frozen=True, slots=True)
class DropStaged:
    """The handshake gave up: discard the packets staged for this peer."""

    peer: bytes


@dataclass(frozen=True, slots=True)
class ZeroKeysLater:
    """The handshake gave up: zero the peer's keys 3 x REJECT_AFTER_TIME from now, unless their
    zeroing is scheduled already (the kernel's zero_key_material timer)."""

    peer: bytes


@dataclass(frozen=True, slots=True)
class ExpireKeypairs:
    """The configuration ended the peer's sessions (the private key changed): zero its keypairs
    now; the next packet for it starts a handshake."""

    peer: bytes


Output = Transmit | InstallKeypair | SendKeepalive | DropStaged | ZeroKeysLater | ExpireKeypairs
