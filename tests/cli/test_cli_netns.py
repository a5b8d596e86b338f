"""`wgfast up CONFIG --netns NS`: the daemon and its UDP socket stay where wgfast ran, the
interface (with its addresses, routes and rules) lives in NS. NS holds only `lo` and the
tunnel, yet reaches the peer: through the tunnel, since there is nothing else.

Namespaces: `outer` (where wgfast runs), `peer` (joined to outer by a veth pair, running the
other end with `wgfast up`), `inside` (only lo, then the tunnel). Run with wgfastd only (see the
`daemon` fixture below for why wireguard-go cannot be moved).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from support import needs_cmd, needs_tun
from support.cli import snapshot, wgfast, write_config
from support.daemons import WGFASTD, daemon_command
from support.netns import Netns
from wgfast import keys

OUTER = ("10.74.0.1", "10.74.0.2")
TUNNEL = ("10.75.0.1", "10.75.0.2")
PEER_PORT = 51874
ECHO_PORT = 7474

# A UDP echo server: answers every datagram, prints "ready" once bound.
ECHO_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    data, source = s.recvfrom(2048)
    s.sendto(data, source)
"""

# Sends a datagram every 0.5 s until an echo arrives (the first waits for the handshake), at
# most 10 s; exit status 0 when answered.
ECHO_CLIENT = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    try:
        s.sendto(b"through the tunnel", (sys.argv[1], int(sys.argv[2])))
        if s.recvfrom(2048)[0] == b"through the tunnel":
            print("echoed")
            sys.exit(0)
    except OSError as exc:
        print(exc, file=sys.stderr)
        time.sleep(0.5)
sys.exit(1)
"""


def link_names(ns: Netns) -> list[str]:
    return sorted(link["ifname"] for link in json.loads(ns.run("ip", "-j", "link").stdout))


@pytest.fixture(name="daemon")
def wgfastd_only() -> str:
    """--netns needs a daemon that survives its link moving to another namespace. wireguard-go
    tears its device down on the netlink event the move sends (why wgfastd watches its TUN
    descriptor instead), so whether the link arrives there is a race: only wgfastd is tested."""
    return WGFASTD


def test_tunnel_lives_in_another_namespace(netns_pool, tmp_path: Path, daemon: str):
    needs_tun()
    needs_cmd("wg")
    needs_cmd("nft")
    needs_cmd(daemon_command(daemon)[0])
    outer, peer, inside = (netns_pool.namespace() for _ in range(3))
    for ns in (outer, peer, inside):
        ns.daemon = daemon  # type: ignore[attr-defined]
    netns_pool.veth(outer, f"{OUTER[0]}/24", peer, f"{OUTER[1]}/24")
    ours, theirs = keys.KeyPair.generate(), keys.KeyPair.generate()
    name, peer_name = f"wgn{tmp_path.name[-8:]}"[:15], f"wgp{tmp_path.name[-8:]}"[:15]
    path = write_config(tmp_path, name, f"""[Interface]
PrivateKey = {keys.to_base64(ours.private)}
Address = {TUNNEL[0]}/24

[Peer]
PublicKey = {keys.to_base64(theirs.public)}
AllowedIPs = 0.0.0.0/0
Endpoint = {OUTER[1]}:{PEER_PORT}
""")
    peer_path = write_config(tmp_path, peer_name, f"""[Interface]
PrivateKey = {keys.to_base64(theirs.private)}
ListenPort = {PEER_PORT}
Address = {TUNNEL[1]}/24

[Peer]
PublicKey = {keys.to_base64(ours.public)}
AllowedIPs = {TUNNEL[0]}/32
""")
    assert link_names(inside) == ["lo"]
    before_inside, before_outer = snapshot(inside), snapshot(outer)
    result = wgfast(peer, "up", str(peer_path))
    assert result.returncode == 0, result.stderr
    echo = peer.popen(sys.executable, "-c", ECHO_SERVER, TUNNEL[1], str(ECHO_PORT),
                      stdout=subprocess.PIPE, text=True)
    try:
        assert echo.stdout is not None and echo.stdout.readline().strip() == "ready"
        result = wgfast(outer, "up", str(path), "--netns", inside.name)
        assert result.returncode == 0, result.stderr

        # The interface is inside, with its address and the default route's table and rules;
        # the outer namespace only has the veth (and the daemon's UDP socket).
        assert link_names(inside) == sorted(["lo", name])
        assert not outer.link_exists(name)
        assert f"{TUNNEL[0]}/24" in inside.run("ip", "-br", "addr", "show", "dev", name).stdout
        assert f"default dev {name} table 51820" in inside.run(
            "ip", "route", "show", "table", "all").stdout
        assert "not from all fwmark 0xca6c lookup 51820" in inside.run("ip", "rule").stdout
        # The default route's nftables table goes with the rules: inside, not here.
        assert f"{TUNNEL[0]} fib saddr type != local drop" in inside.run(
            "nft", "list", "table", "ip", f"wgfast-{name}").stdout
        assert outer.run("nft", "list", "ruleset").stdout == ""
        needs_cmd("ss")
        assert outer.run("ss", "-Hnlu").stdout.strip(), "no UDP socket in the outer namespace"
        assert inside.run("ss", "-Hnlu").stdout.strip() == ""

        reply = inside.run(sys.executable, "-c", ECHO_CLIENT, TUNNEL[1], str(ECHO_PORT),
                           check=False, timeout=30)
        assert reply.returncode == 0, reply.stderr
        # Inside has nothing but lo and the tunnel, so the echo came through it: the peer
        # shows a handshake and traffic from us.
        dump = peer.run("wg", "show", peer_name, "dump").stdout.splitlines()[1].split("\t")
        assert int(dump[4]) > 0 and int(dump[5]) > 0, dump
        assert dump[2].startswith(f"{OUTER[0]}:")  # it came from the outer namespace

        shown = wgfast(outer, "show", name)
        assert shown.returncode == 0 and "latest handshake" in shown.stdout, shown.stderr

        wrong = wgfast(outer, "down", name, "--netns", outer.name)
        assert wrong.returncode == 1 and f"network namespace {inside.name}" in wrong.stderr
        result = wgfast(outer, "down", name, "--netns", inside.name)
        assert result.returncode == 0, result.stderr
    finally:
        echo.kill()
        echo.wait()
        wgfast(outer, "down", name)
        wgfast(peer, "down", peer_name)
    assert snapshot(inside) == before_inside
    # The veth's IPv6 link-local address and route come up on their own time: left out.
    unsettled = ("addresses", "routes6")
    assert ({k: v for k, v in snapshot(outer).items() if k not in unsettled}
            == {k: v for k, v in before_outer.items() if k not in unsettled})
    assert not Path(f"/run/wgfast/{name}.json").exists()


def test_down_after_the_namespace_is_gone(netns_pool, tmp_path: Path, daemon: str):
    """Deleting NS deletes the interface (and so ends the daemon); `down` then cleans up what
    is left here and does not bring NS back."""
    needs_tun()
    needs_cmd(daemon_command(daemon)[0])
    outer, inside = netns_pool.namespace(), netns_pool.namespace()
    outer.daemon = daemon  # type: ignore[attr-defined]
    name = f"wgg{tmp_path.name[-8:]}"[:15]
    path = write_config(tmp_path, name, f"""[Interface]
PrivateKey = {keys.to_base64(keys.generate_private_key())}
Address = {TUNNEL[0]}/24

[Peer]
PublicKey = {keys.to_base64(keys.KeyPair.generate().public)}
AllowedIPs = 10.75.9.0/24
""")
    result = wgfast(outer, "up", str(path), "--netns", inside.name)
    assert result.returncode == 0, result.stderr
    assert inside.link_exists(name)
    subprocess.run(["ip", "netns", "del", inside.name], check=True)
    result = wgfast(outer, "down", name)
    assert result.returncode == 0, result.stderr
    assert not Path(f"/var/run/netns/{inside.name}").exists()
    assert not Path(f"/run/wgfast/{name}.json").exists()
    assert not Path(f"/var/run/wireguard/{name}.sock").exists()
    assert outer.pids() == []  # the daemon is gone
