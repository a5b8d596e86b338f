"""ECN across the tunnel, as RFC 6040 has it (and the kernel's WireGuard, with ip_tunnel's ECN
helpers): the outer header carries the inner packet's ECN field, and a congestion mark (CE) an
outer header picks up on the way is carried into the inner packet when it leaves the tunnel,
unless the inner packet is Not-ECT (its ends do not speak ECN; the kernel leaves it alone).

wireguard-go does neither (its outer headers are always Not-ECT and it ignores the outer ECN
field), so the kernel's rule is the spec here and both ends are wgfastd. Two namespaces joined
by a veth pair (support.tunnel.make_pair); inside the tunnel a UDP socket sends with IP_TOS /
IPV6_TCLASS set, an nft rule on the receiving host counts the outer headers by ECN field, and
another on the sending host's way out marks every outer packet CE; the receiver reads each inner
packet's field with IP_RECVTOS / IPV6_RECVTCLASS.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from support import needs_cmd
from support.netns import Netns
from support.tunnel import Side, first_ping, make_pair

NOT_ECT, ECT_1, ECT_0, CE = 0, 1, 2, 3
DSCP_AF11 = 0x28  # a DSCP next to the ECN field: the inner packet keeps its own
INNER_PORT = 5310
DATAGRAMS = 20

RECEIVER = """
import json, select, socket, sys, time
addr, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
v6 = ":" in addr
sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
if v6:
    sock.setsockopt(socket.IPPROTO_IPV6, getattr(socket, "IPV6_RECVTCLASS", 66), 1)
else:
    sock.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_RECVTOS", 13), 1)
sock.bind((addr, port))
print("listening", flush=True)
seen, deadline = [], time.monotonic() + 10
while len(seen) < count and time.monotonic() < deadline:
    if not select.select([sock], [], [], 0.2)[0]:
        continue
    _, ancillary, _, _ = sock.recvmsg(2048, socket.CMSG_SPACE(4))
    tos = None
    for _level, _type, payload in ancillary:
        tos = payload[0] if len(payload) == 1 else int.from_bytes(payload[:4], sys.byteorder)
    seen.append(tos)
print(json.dumps(seen), flush=True)
"""

SENDER = """
import socket, sys, time
addr, port, count, tos = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
v6 = ":" in addr
sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
if v6:
    sock.setsockopt(socket.IPPROTO_IPV6, getattr(socket, "IPV6_TCLASS", 67), tos)
else:
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
for i in range(count):
    sock.sendto(b"wgfast-ecn %d" % i, (addr, port))
    time.sleep(0.005)
"""

ECN_NAMES = {NOT_ECT: "not-ect", ECT_1: "ect1", ECT_0: "ect0", CE: "ce"}


def nft(ns: Netns, ruleset: str) -> None:
    ns.run("nft", "-f", "-", input=ruleset)


def count_outer_ecn(ns: Netns, port: int, outer: int) -> None:
    """Counters on `ns`'s way in for the tunnel's datagrams, one per outer ECN field."""
    family = "ip" if outer == 4 else "ip6"
    rules = "".join(f" udp dport {port} {family} ecn {name} counter;"
                    for name in ECN_NAMES.values())
    chain = f"chain input {{ type filter hook input priority 0;{rules} }}"
    nft(ns, f"table inet wgfcount {{\n{chain}\n}}")


def outer_counts(ns: Netns) -> dict[int, int]:
    listing = ns.run("nft", "list", "table", "inet", "wgfcount").stdout
    counts = {}
    for value, name in ECN_NAMES.items():
        match = re.search(rf"ecn {name} counter packets (\d+)", listing)
        assert match, listing
        counts[value] = int(match.group(1))
    return counts


def mark_outer_ce(ns: Netns, port: int, outer: int) -> None:
    """Every tunnel datagram leaving `ns` for `port` picks up CE, as from a congested router
    (one that marks Not-ECT too, so the decapsulator's rule for Not-ECT is seen)."""
    family = "ip" if outer == 4 else "ip6"
    nft(ns, "table inet wgfmark {\nchain out { type filter hook postrouting priority 0;"
            f" udp dport {port} {family} ecn set ce; }}\n}}")


def send_and_receive(sender: Side, receiver: Side, address: str, tos: int) -> list[int | None]:
    """DATAGRAMS inner datagrams with `tos`; the TOS / traffic class each one arrived with."""
    proc = receiver.ns.popen(sys.executable, "-c", RECEIVER, address, str(INNER_PORT),
                             str(DATAGRAMS), stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "listening"
        sender.ns.run(sys.executable, "-c", SENDER, address, str(INNER_PORT), str(DATAGRAMS),
                      str(tos), timeout=30)  # fmt: skip
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return json.loads(out)


def tunnel(netns_pool, tmp_path: Path, outer: int) -> tuple[Side, Side, str]:
    needs_cmd("nft")
    sender, receiver = make_pair(netns_pool, ("wgfastd", "wgfastd"), tmp_path, psk=False,
                                 outer=outer)  # fmt: skip
    address = receiver.inner4 if outer == 4 else receiver.inner6
    first_ping(sender, receiver.inner4)
    return sender, receiver, address


@pytest.mark.parametrize("outer", [4, 6])
def test_outer_header_carries_the_inner_ecn_field(netns_pool, tmp_path, outer):
    sender, receiver, address = tunnel(netns_pool, tmp_path, outer)
    count_outer_ecn(receiver.ns, receiver.port, outer)
    for ecn in (ECT_0, ECT_1, CE, NOT_ECT):
        before = outer_counts(receiver.ns)
        arrived = send_and_receive(sender, receiver, address, DSCP_AF11 | ecn)
        moved = {k: v - before[k] for k, v in outer_counts(receiver.ns).items()}
        assert len(arrived) == DATAGRAMS
        assert all(tos == DSCP_AF11 | ecn for tos in arrived), arrived  # untouched inside
        # UDP GRO may merge datagrams (of one ECN field) before the input hook counts them.
        assert moved[ecn] >= 1, (ecn, moved)
        assert sum(moved.values()) == moved[ecn], (ecn, moved)


@pytest.mark.parametrize("outer", [4, 6])
def test_congestion_on_the_outer_path_reaches_the_inner_packet(netns_pool, tmp_path, outer):
    sender, receiver, address = tunnel(netns_pool, tmp_path, outer)
    mark_outer_ce(sender.ns, receiver.port, outer)
    for ecn, expected in ((ECT_0, CE), (ECT_1, CE), (CE, CE), (NOT_ECT, NOT_ECT)):
        arrived = send_and_receive(sender, receiver, address, DSCP_AF11 | ecn)
        assert len(arrived) == DATAGRAMS
        assert all(tos == DSCP_AF11 | expected for tos in arrived), (ecn, arrived)
