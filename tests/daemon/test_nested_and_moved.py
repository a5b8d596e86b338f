"""The kernel selftest's other live cases (tools/testing/selftests/wireguard/netns.sh), in our own
words: a second tunnel configured through the first while both are up (wg1 over wg0), and a link
moved to another namespace, which keeps working there and whose deletion there ends the daemon.
"""

from __future__ import annotations

import os
from pathlib import Path

from support.netns import Netns, NetnsPool, unique_name, wait_for
from support.tunnel import Side, daemon_pid, first_ping, genkey, launch, make_pair, ping
from wgfast.process import process_alive
from wgfast.uapi import socket_path

NESTED_INNER = ("10.233.0.1", "10.233.0.2")
NESTED_PORTS = (51841, 51842)


def test_second_tunnel_through_the_first(netns_pool: NetnsPool, tmp_path: Path):
    a, b = make_pair(netns_pool, ("wgfastd", "wgfastd"), tmp_path, psk=False, outer=4)
    first_ping(a, b.inner4)
    nested = []
    for i, outer in enumerate((a, b)):
        private, public = genkey(outer.ns)
        side = Side(outer.ns, "wgfastd", unique_name("wgn"), private, public, NESTED_PORTS[i],
                    outer.inner4, outer.inner6, NESTED_INNER[i], "")
        launch(side, tmp_path)
        nested.append(side)
    n_a, n_b = nested
    for me, other in ((n_a, n_b), (n_b, n_a)):
        key = tmp_path / f"{me.interface}.key"
        key.write_text(me.private_key + "\n")
        args = ["set", me.interface, "private-key", str(key), "listen-port", str(me.port),
                "peer", other.public_key, "allowed-ips", f"{other.inner4}/32"]
        if me is n_a:  # the outer tunnel's inner address is the nested one's endpoint
            args += ["endpoint", f"{other.outer4}:{other.port}"]
        me.wg(*args)
        me.ns.run("ip", "addr", "add", me.inner4 + "/24", "dev", me.interface)
        me.ns.run("ip", "link", "set", "mtu", "1340", "up", "dev", me.interface)
    first_ping(n_a, n_b.inner4)
    ping(n_b, n_a.inner4)
    ping(a, b.inner4)  # the outer one still works beside it
    for side in (a, b, n_a, n_b):
        assert side.wg("show", side.interface, "latest-handshakes").split()[1] != "0"


def test_moved_link_works_there_and_its_deletion_ends_the_daemon(netns_pool: NetnsPool,
                                                                 tmp_path: Path):
    a, b = make_pair(netns_pool, ("wgfastd", "wgfastd"), tmp_path, psk=False, outer=4)
    first_ping(a, b.inner4)
    pid = daemon_pid(a)
    box: Netns = netns_pool.namespace()
    # The daemon and its UDP sockets stay in a's namespace; the link goes to the box, where
    # it gets its address again (addresses do not move with a link).
    a.ns.run("ip", "link", "set", "dev", a.interface, "netns", box.name)
    box.run("ip", "addr", "add", a.inner4 + "/24", "dev", a.interface)
    box.run("ip", "link", "set", "mtu", "1420", "up", "dev", a.interface)
    moved = Side(box, "wgfastd", a.interface, a.private_key, a.public_key, a.port,
                 a.outer4, a.outer6, a.inner4, a.inner6)
    first_ping(moved, b.inner4)
    ping(b, a.inner4)
    assert "listening port" in a.wg("show", a.interface)  # still configured over UAPI
    box.run("ip", "link", "del", "dev", a.interface)
    assert wait_for(lambda: not process_alive(pid), 5.0), "wgfastd outlived its link"
    assert not os.path.exists(socket_path(a.interface))
