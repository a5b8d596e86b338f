"""A jumbo tunnel MTU (34736, the kernel selftest's case), and MTU changes under a live session.

Pairs of support.tunnel.make_pair with the tunnel MTU raised to 34736 at both ends, over each
outer family: wgfastd against wireguard-go-offload and against itself, and a pair of
wireguard-go-offload as the reference (it moves data at this MTU). Each moves data with TCP and
UDP iperf3 (2 s each: nonzero bytes received) and a TCP transfer checked by SHA-256; then the
MTU of both ends changes while running (down, data checked again, and back up): the session
survives it (no new handshake at either end). The outer path's MTU stays 1500, so every jumbo
datagram crosses it in IP fragments, as with the kernel. Between wgfastd ends the MTU steps down
to 9000: UDP GSO cannot carry 9 KB segments over that path (the kernel refuses them with
EMSGSIZE, as it never fragments a GSO segment), so wgfastd sends such datagrams plain.
wireguard-go-offload stalls there (and when it sends at 34736 to an end at 1420), so pairs with
it step down to 1420 together.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from support.netns import NetnsPool
from support.tunnel import (
    IPERF_SECONDS,
    Side,
    dump_peer,
    first_ping,
    iperf,
    iperf3_end,
    make_pair,
    ping,
    tcp_transfer,
)

JUMBO_MTU = 34736
SMALLER_MTU = 9000  # between wgfastd ends
SMALLER_MTU_WITH_WIREGUARD_GO = 1420
UDP_DATAGRAM = 30000  # one jumbo inner packet per datagram
UDP_RATE = "200M"


def set_mtu(side: Side, mtu: int) -> None:
    side.ns.run("ip", "link", "set", "dev", side.interface, "mtu", str(mtu))


def latest_handshake(side: Side) -> int:
    return int(dump_peer(side)[4])


def udp_iperf(client: Side, server: Side, address: str) -> int:
    """One UDP stream of UDP_DATAGRAM-byte datagrams for IPERF_SECONDS; the bytes received."""
    end = iperf3_end(client, server, address, "-u", "-b", UDP_RATE, "-l", str(UDP_DATAGRAM))
    return int(end["sum_received"]["bytes"])


# Pairwise: each role of wgfastd against the reference, each outer family, and wgfastd alone.
@pytest.mark.parametrize(
    "kinds,outer",
    [(("wgfastd", "wireguard-go-offload"), 4), (("wireguard-go-offload", "wgfastd"), 6),
     (("wgfastd", "wgfastd"), 6)],
    ids=["wgfastd-wggo-v4", "wggo-wgfastd-v6", "wgfastd-wgfastd-v6"],
)
def test_jumbo_mtu_moves_data_and_survives_mtu_changes(
    netns_pool: NetnsPool, tmp_path: Path, kinds: tuple[str, str], outer: int
) -> None:
    initiator, responder = make_pair(netns_pool, kinds, tmp_path, psk=False, outer=outer)
    for side in (initiator, responder):
        set_mtu(side, JUMBO_MTU)
    first_ping(initiator, responder.inner4)
    handshakes = latest_handshake(initiator), latest_handshake(responder)

    gbps = iperf(initiator, responder, responder.inner4)
    received = udp_iperf(initiator, responder, responder.inner4)
    print(f"{kinds} outer IPv{outer} MTU {JUMBO_MTU}: TCP {gbps:.2f} Gbit/s, "
          f"UDP {received} bytes in {IPERF_SECONDS} s")
    assert received > 0
    tcp_transfer(responder, initiator, initiator.inner6, tmp_path)

    # MTU changes while running: the data plane resizes its buffers and keeps the session.
    both_wgfastd = initiator.kind == responder.kind == "wgfastd"
    smaller = SMALLER_MTU if both_wgfastd else SMALLER_MTU_WITH_WIREGUARD_GO
    for side in (initiator, responder):
        set_mtu(side, smaller)
    tcp_transfer(initiator, responder, responder.inner4, tmp_path)
    for side in (initiator, responder):
        set_mtu(side, JUMBO_MTU)
    ping(responder, initiator.inner4)
    assert iperf(responder, initiator, initiator.inner4) > 0
    assert (latest_handshake(initiator), latest_handshake(responder)) == handshakes, \
        "an MTU change must not end the session"
