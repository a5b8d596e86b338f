"""What the protocol core asks its caller to do: plain values, one dataclass each.

The core is sans-I/O: `DeviceState` methods return lists of these, and whoever wires it to the
network and the data plane carries them out. `peer` is always the peer's static public key.
"""

from __future__ import annotations

from dataclasses import dataclass

from wgfast.protocol.keypair import Keypair

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Transmit:
    """Send `data` as one UDP datagram to `destination` (peer is None for cookie replies to a
    source we do not associate with a peer yet)."""

    peer: bytes | None
    destination: Address
    data: bytes


@dataclass(frozen=True, slots=True)
class RouteData:
    """A type-4 datagram for `keypair`: the data plane opens it, checks the replay window, then
    reports back with `DeviceState.on_data_received`."""

    peer: bytes
    keypair: Keypair
    datagram: bytes
    source: Address


@dataclass(frozen=True, slots=True)
class KeypairReady:
    """Install this keypair in the data plane (receiver-index table; and for sending once it is
    the peer's current keypair: `is_current`)."""

    peer: bytes
    keypair: Keypair
    is_current: bool


@dataclass(frozen=True, slots=True)
class KeypairPromoted:
    """The responder's `next` keypair was confirmed by data and is now the one to send with.
    Staged packets may be sent now."""

    peer: bytes
    keypair: Keypair


@dataclass(frozen=True, slots=True)
class KeypairRetired:
    """Forget the keypair with this local index (its Python copy is already zeroed)."""

    peer: bytes
    local_index: int


@dataclass(frozen=True, slots=True)
class SendKeepalive:
    """Send the peer's staged packets, or an empty data packet if none are staged."""

    peer: bytes


@dataclass(frozen=True, slots=True)
class DropStaged:
    """The handshake gave up: discard the packets staged for this peer."""

    peer: bytes


@dataclass(frozen=True, slots=True)
class KeysZeroed:
    """No handshake for 3 x REJECT_AFTER_TIME: every key of this peer is gone."""

    peer: bytes


Output = (Transmit | RouteData | KeypairReady | KeypairPromoted | KeypairRetired | SendKeepalive
          | DropStaged | KeysZeroed)
