"""A host with several addresses answers from the address its peer talks to (the sticky source).

The kernel keeps a source address with each peer's endpoint, learnt from the packets the peer
sends (the address they came to), and wireguard-go does the same with IP_PKTINFO /
IPV6_RECVPKTINFO; both pass the source-address cases of the kernel's selftest. Here, in two
namespaces joined by a veth pair (support.tunnel.make_pair): the responder - the end under test,
wgfastd or wireguard-go as the reference - has a second address that the route never picks as
a source, and the initiator (wireguard-go, which roams to wherever authenticated packets come
from, so its `wg show endpoints` says which address the replies left from) is pointed at it.

  - replies leave from the address the peer used, on the veth and on another interface of the
    host (one end of a veth pair inside the namespace, reached through a route on the initiator);
  - not overly sticky: once that address is removed, the responder's packets leave from the
    route's choice (a send from a gone address fails, the source is forgotten, the send goes
    again) and the tunnel carries on.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from support.netns import Netns, NetnsPool, wait_for
from support.tunnel import Side, first_ping, make_pair, ping

SECOND4, SECOND6 = "10.231.0.3", "fd00:231::3"  # on the responder's veth, never a route source
OTHER4, OTHER6 = "10.233.0.2", "fd00:233::2"  # on another link of the responder's host
SUBJECTS = ("wgfastd", "wireguard-go")


def veth_of(ns: Netns) -> str:
    out = ns.run("ip", "-o", "link", "show", "type", "veth").stdout
    names = re.findall(r"^\d+: ([^@:]+)", out, re.MULTILINE)
    assert len(names) == 1, out
    return names[0]


def route_source(ns: Netns, destination: str) -> str:
    out = ns.run("ip", "route", "get", destination).stdout
    match = re.search(r" src (\S+)", out)
    assert match, out
    return match.group(1)


def peer_endpoint(side: Side) -> str:
    """The endpoint `side` has for its one peer (`wg show endpoints`)."""
    lines = side.wg("show", side.interface, "endpoints").split()
    assert len(lines) == 2, lines
    return lines[1]


def host_port(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def add_second_address(ns: Netns, outer: int) -> str:
    """A second address on the veth that the route does not choose as a source: an IPv4
    secondary, a deprecated (preferred_lft 0) IPv6 address."""
    link = veth_of(ns)
    if outer == 4:
        ns.run("ip", "addr", "add", SECOND4 + "/24", "dev", link)
        return SECOND4
    ns.run("ip", "-6", "addr", "add", SECOND6 + "/64", "dev", link, "nodad", "preferred_lft", "0")
    return SECOND6


def point_at(initiator: Side, responder: Side, address: str) -> None:
    initiator.wg("set", initiator.interface, "peer", responder.public_key,
                 "endpoint", host_port(address, responder.port))  # fmt: skip


def pair_talking_to(netns_pool: NetnsPool, tmp_path: Path, subject: str, outer: int,
                    address_of=add_second_address, initiator_kind: str = "wireguard-go",
                    ) -> tuple[Side, Side, str]:
    """An initiator (wireguard-go unless asked) whose endpoint is an address of the responder
    (subject) that the responder's route would not answer from; returns (initiator, responder,
    address)."""
    initiator, responder = make_pair(netns_pool, (initiator_kind, subject), tmp_path, psk=False,
                                     outer=outer)  # fmt: skip
    address = address_of(responder.ns, outer)
    primary = responder.outer4 if outer == 4 else responder.outer6
    other_end = initiator.outer4 if outer == 4 else initiator.outer6
    # The premise: left to the route, the responder would answer from its primary address.
    assert route_source(responder.ns, other_end) == primary
    point_at(initiator, responder, address)
    return initiator, responder, address


@pytest.mark.parametrize("outer", [4, 6])
@pytest.mark.parametrize(("initiator_kind", "subject"), [
    ("wireguard-go", "wgfastd"), ("wireguard-go", "wireguard-go"), ("wgfastd", "wgfastd"),
])
def test_replies_leave_from_the_address_the_peer_used(netns_pool, tmp_path, initiator_kind,
                                                      subject, outer):
    initiator, responder, second = pair_talking_to(netns_pool, tmp_path, subject, outer,
                                                   initiator_kind=initiator_kind)
    first_ping(initiator, responder.inner4)  # the handshake response, then data both ways
    ping(initiator, responder.inner6, count=3)
    ping(responder, initiator.inner4, count=3)  # the responder speaks first, too
    # Every authenticated packet moves wireguard-go's endpoint to where it came from.
    assert peer_endpoint(initiator) == host_port(second, responder.port)


@pytest.mark.parametrize("outer", [4, 6])
@pytest.mark.parametrize("subject", SUBJECTS)
def test_the_handshake_response_leaves_from_the_address_the_peer_used(netns_pool, tmp_path,
                                                                      subject, outer):
    initiator, responder, second = pair_talking_to(netns_pool, tmp_path, subject, outer)
    # A persistent keepalive starts the handshake with no traffic inside: for the next seconds
    # the response is all the responder sends (its keepalive would wait 10 s).
    initiator.wg("set", initiator.interface, "peer", responder.public_key,
                 "persistent-keepalive", "25")  # fmt: skip

    def handshake_done() -> bool:
        latest = initiator.wg("show", initiator.interface, "latest-handshakes").split()
        return len(latest) == 2 and latest[1] != "0"

    assert wait_for(handshake_done, timeout=10)
    assert peer_endpoint(initiator) == host_port(second, responder.port)


def add_other_link_address(ns: Netns, outer: int) -> str:
    """An address on another interface of the host: one end of a veth pair that stays inside
    the namespace (the dummy module may be missing)."""
    ns.run("ip", "link", "add", "wgfother0", "type", "veth", "peer", "name", "wgfother1")
    for link in ("wgfother0", "wgfother1"):
        ns.run("ip", "link", "set", link, "up")
    if outer == 4:
        ns.run("ip", "addr", "add", OTHER4 + "/32", "dev", "wgfother0")
        return OTHER4
    ns.run("ip", "-6", "addr", "add", OTHER6 + "/128", "dev", "wgfother0", "nodad")
    return OTHER6


@pytest.mark.parametrize("outer", [4, 6])
@pytest.mark.parametrize("subject", SUBJECTS)
def test_replies_leave_from_an_address_of_another_interface(netns_pool, tmp_path, subject,
                                                            outer):
    initiator, responder, other = pair_talking_to(netns_pool, tmp_path, subject, outer,
                                                  address_of=add_other_link_address)
    via = responder.outer4 if outer == 4 else responder.outer6
    initiator.ns.run("ip", f"-{outer}", "route", "add", other, "via", via)
    first_ping(initiator, responder.inner4)
    ping(responder, initiator.inner6, count=3)
    assert peer_endpoint(initiator) == host_port(other, responder.port)


# Debian's wireguard-go recovers when a send from a gone IPv6 source fails (EINVAL) but not
# for IPv4, where this kernel's route lookup refuses the gone source with ENETUNREACH: it keeps
# sending from the removed address. The kernel checks the address before it sends.
WIREGUARD_GO_KEEPS_A_GONE_V4_SOURCE = pytest.mark.xfail(
    strict=True, reason="wireguard-go keeps a removed IPv4 source (the send fails ENETUNREACH)")


@pytest.mark.parametrize(("subject", "outer"), [
    ("wgfastd", 4), ("wgfastd", 6), ("wireguard-go", 6),
    pytest.param("wireguard-go", 4, marks=WIREGUARD_GO_KEEPS_A_GONE_V4_SOURCE),
])
def test_a_removed_source_gives_way_to_the_route(netns_pool, tmp_path, subject, outer):
    initiator, responder, second = pair_talking_to(netns_pool, tmp_path, subject, outer)
    first_ping(initiator, responder.inner4)
    assert peer_endpoint(initiator) == host_port(second, responder.port)
    prefix = "/24" if outer == 4 else "/64"
    responder.ns.run("ip", "addr", "del", second + prefix, "dev", veth_of(responder.ns))
    # The responder speaks first: its source is gone, so only the route's choice can carry the
    # request; the initiator roams to that address and its replies follow.
    ping(responder, initiator.inner4, count=3)
    primary = responder.outer4 if outer == 4 else responder.outer6
    assert peer_endpoint(initiator) == host_port(primary, responder.port)
    ping(initiator, responder.inner6, count=3)
