"""Transport keypairs and each peer's previous/current/next slots (the kernel's peer keypairs).

Rotation rules (paper 5.4.6, kernel noise.c):
- Initiator: a new keypair becomes `current` at once (it has seen the responder's proof); the old
  current becomes `previous`. If an unconfirmed `next` existed, it becomes `previous` instead and
  the old current is retired.
- Responder: a new keypair goes to `next` and becomes `current` only when the first data packet
  under it arrives (`received_with`), which proves the initiator has it too.
- A keypair may send while younger than REJECT_AFTER_TIME and below REJECT_AFTER_MESSAGES; the
  initiator wants a rekey past REKEY_AFTER_TIME or REKEY_AFTER_MESSAGES.

Zeroing: the keys are `bytearray`s overwritten with zeros when a keypair is retired. What Python
cannot guarantee: the `bytes` the handshake produced them from, copies made while handing them to
the data plane, and anything the allocator or the interpreter kept, are not wiped by this; the
authoritative copy for sealing lives in C, which zeroes its own.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass, field

from wgfast.protocol.messages import (
    REJECT_AFTER_MESSAGES,
    REJECT_AFTER_TIME,
    REKEY_AFTER_MESSAGES,
    REKEY_AFTER_TIME,
)
from wgfast.protocol.noise import TransportKeys

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Keypair:
    send_key: bytearray = field(repr=False)
    receive_key: bytearray = field(repr=False)
    local_index: int
    remote_index: int
    created: float
    is_initiator: bool
    send_counter: int = 0
    valid: bool = True

    def __post_init__(self) -> None:
        _LIVE.add(self)

    @classmethod
    def from_transport_keys(cls, keys: TransportKeys, now: float) -> Keypair:
        return cls(bytearray(keys.send), bytearray(keys.receive), keys.local_index,
                   keys.remote_index, now, keys.is_initiator)

    def age(self, now: float) -> float:
        return now - self.created

    def can_send(self, now: float) -> bool:
        return (self.valid and self.age(now) < REJECT_AFTER_TIME
                and self.send_counter < REJECT_AFTER_MESSAGES)

    def can_receive(self, now: float, counter: int) -> bool:
        return self.valid and self.age(now) < REJECT_AFTER_TIME and counter < REJECT_AFTER_MESSAGES

    def next_send_counter(self, now: float) -> int | None:
        """Reserve the next nonce; None once the keypair must no longer send."""
        if not self.can_send(now):
            return None
        counter = self.send_counter
        self.send_counter += 1
        return counter

    def needs_rekey_on_send(self, now: float) -> bool:
        """Kernel keep_key_fresh (send): message count for anyone, age for the initiator."""
        return self.valid and (self.send_counter > REKEY_AFTER_MESSAGES
                               or (self.is_initiator and self.age(now) >= REKEY_AFTER_TIME))

    def zero(self) -> None:
        """Overwrite both keys in place and mark the keypair unusable."""
        for buf in (self.send_key, self.receive_key):
            buf[:] = bytes(len(buf))
        self.valid = False


# Every Keypair object not yet freed, whoever holds it: a leak shows as growth here, where the
# peers' three slots alone could not show it (see live_keypairs).
_LIVE: weakref.WeakSet[Keypair] = weakref.WeakSet()


def live_keypairs() -> int:
    """How many Keypair objects exist right now (retired ones go as soon as nothing refers to
    them; a keypair has no reference cycles, so reference counting frees it at once)."""
    return len(_LIVE)


class Keypairs:
    """A peer's previous/current/next keypairs. Methods return the keypairs they retired (already
    zeroed) so the caller can remove their indices from the device's index table."""

    def __init__(self) -> None:
        self.previous: Keypair | None = None
        self.current: Keypair | None = None
        self.next: Keypair | None = None

    def __iter__(self):
        return iter(k for k in (self.previous, self.current, self.next) if k is not None)

    @staticmethod
    def _retire(*pairs: Keypair | None) -> list[Keypair]:
        out = []
        for kp in pairs:
            if kp is not None:
                kp.zero()
                out.append(kp)
        return out

    def add(self, new: Keypair) -> list[Keypair]:
        if new.is_initiator:
            if self.next is not None:
                retired = self._retire(self.previous, self.current)
                self.previous, self.next = self.next, None
            else:
                retired = self._retire(self.previous)
                self.previous = self.current
            self.current = new
        else:
            retired = self._retire(self.next)
            self.next = new
        return retired

    def received_with(self, keypair: Keypair) -> tuple[bool, list[Keypair]]:
        """Data authenticated under `keypair`: promote it if it is `next`.

        Returns (promoted, retired)."""
        if keypair is not self.next:
            return False, []
        retired = self._retire(self.previous)
        self.previous, self.current, self.next = self.current, self.next, None
        return True, retired

    def find(self, local_index: int) -> Keypair | None:
        for kp in self:
            if kp.local_index == local_index:
                return kp
        return None

    def zero_all(self) -> list[Keypair]:
        retired = self._retire(self.previous, self.current, self.next)
        self.previous = self.current = self.next = None
        return retired

    def sending(self, now: float) -> Keypair | None:
        """The keypair to seal with, if the current one may still send."""
        kp = self.current
        return kp if kp is not None and kp.can_send(now) else None
