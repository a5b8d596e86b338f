"""The responder's outputs install the new keypair before they send the handshake response.

The device carries outputs out in order (wgfast.daemon.interface.Interface._carry_out). Were the
response sent first, the initiator's confirming keepalive (sent as soon as it consumes the
response) could reach the data plane before the keypair did, be dropped as an unknown index, and
leave the session unconfirmed (and the responder's latest-handshake time stale) until the
initiator sent more data; under a handshake flood, where installing waits for the data plane's
busy lock, that race was seen (tests/daemon/test_flood.py).
"""

from __future__ import annotations

from support.handshake import A_ADDR, make_pair, only
from wgfast.protocol.outputs import InstallKeypair, Transmit


def test_response_follows_keypair_install():
    a, b, _ = make_pair()
    init = only(a.initiate(b.public_key, 0.0), Transmit)
    outputs = b.receive(init.data, A_ADDR, 0.0)
    kinds = [type(o) for o in outputs]
    assert InstallKeypair in kinds and Transmit in kinds, outputs
    assert kinds.index(InstallKeypair) < kinds.index(Transmit), kinds
    ready = only(outputs, InstallKeypair)
    assert not ready.is_initiator
