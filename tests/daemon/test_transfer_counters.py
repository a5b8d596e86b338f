"""`wg show transfer` counts a peer's handshake messages, as the kernel and wireguard-go do.

One exchange, the same for every pair: a handshake (the first echo request waits staged for it)
and PINGS echo requests with their replies. wireguard-go facing wireguard-go is the reference:
a pair with wgfastd at either end or both must show the very same rx/tx bytes at each end (the
initiator's tx includes its 148-byte initiation, its rx the 92-byte response; the responder's the
other way round), and each end's rx is the other end's tx.
"""

from __future__ import annotations

from pathlib import Path

from support.netns import NetnsPool
from support.tunnel import Side, dump_peer, make_pair, ping

PINGS = 4
INITIATION_LEN, RESPONSE_LEN = 148, 92


def transfer(side: Side) -> tuple[int, int]:
    """(rx, tx) bytes of the side's one peer, from `wg show dump`."""
    fields = dump_peer(side)
    return int(fields[5]), int(fields[6])


def exchange(pool: NetnsPool, kinds: tuple[str, str], tmp_path: Path,
             outer: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The initiator's and the responder's (rx, tx) after one handshake and PINGS pings."""
    work = tmp_path / "-".join(kinds)
    work.mkdir()
    initiator, responder = make_pair(pool, kinds, work, psk=False, outer=outer)
    ping(initiator, responder.inner4, count=PINGS)  # the first request starts the handshake
    return transfer(initiator), transfer(responder)


def test_handshake_messages_count_as_in_wireguard_go(netns_pool: NetnsPool,
                                                     tmp_path: Path) -> None:
    reference = exchange(netns_pool, ("wireguard-go", "wireguard-go"), tmp_path, 4)
    (i_rx, i_tx), (r_rx, r_tx) = reference
    assert (i_rx, i_tx) == (r_tx, r_rx), reference
    # What the reference counts beyond the data messages: exactly the handshake's two messages.
    data_rx, data_tx = i_rx - RESPONSE_LEN, i_tx - INITIATION_LEN
    assert data_rx > 0 and data_tx > 0 and data_rx % PINGS == 0 and data_tx % PINGS == 0
    for kinds in (("wgfastd", "wgfastd"), ("wgfastd", "wireguard-go"),
                  ("wireguard-go", "wgfastd")):
        assert exchange(netns_pool, kinds, tmp_path, 4) == reference, kinds


def test_handshake_counts_over_ipv6_outer(netns_pool: NetnsPool, tmp_path: Path) -> None:
    reference = exchange(netns_pool, ("wireguard-go", "wireguard-go"), tmp_path, 6)
    assert exchange(netns_pool, ("wgfastd", "wgfastd"), tmp_path, 6) == reference
