"""Driven live as other software drives it: every `set` on an up device carrying traffic works,
keeps what it does not change, and ends sessions exactly where the reference does.

Each case of the table runs twice, with both ends wireguard-go-offload (the reference: its
outcome is the expected one) and with both ends wgfastd. In each run a TCP transfer crosses the
tunnel while the change is made; its SHA-256 must match on arrival, `wg show` must be complete
afterwards, and whether a new handshake happened (the session did not survive) must be the same
for wgfastd as for the reference.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.netns import NetnsPool
from support.tunnel import SINK, Side, first_ping, genkey, make_pair, ping

TRANSFER_PORT = 5321
TRANSFER_SECONDS = 3.0
CHUNK = 32 * 1024
IMPLEMENTATIONS = ("wireguard-go-offload", "wgfastd")  # the reference first

# Streams argv[3] bytes of random data to argv[1]:argv[2] over argv[4] seconds, evenly, and
# prints the SHA-256 of what it sent.
PACED_SOURCE = """
import hashlib, os, socket, sys, time
total, seconds = int(sys.argv[3]), float(sys.argv[4])
digest, sent, start = hashlib.sha256(), 0, time.monotonic()
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30) as conn:
    print("connected", flush=True)
    while sent < total:
        chunk = os.urandom(min(32768, total - sent))
        conn.sendall(chunk)
        digest.update(chunk)
        sent += len(chunk)
        ahead = sent / total * seconds - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
print(sent, digest.hexdigest(), flush=True)
"""


def latest_handshake(side: Side, peer: Side) -> int:
    """The latest handshake (Unix seconds) `side` had with `peer`."""
    for line in side.wg("show", side.interface, "dump").splitlines()[1:]:
        fields = line.split("\t")
        if fields[0] == peer.public_key:
            return int(fields[4])
    raise AssertionError(f"{peer.public_key} is not a peer of {side.interface}")


def assert_show_complete(side: Side, peers: int) -> None:
    """`wg show` answers with the interface and every peer (not "Protocol error")."""
    result = side.ns.run("wg", "show", side.interface, check=False)
    assert result.returncode == 0, result.stderr
    assert "listening port:" in result.stdout, result.stdout
    assert result.stdout.count("peer:") == peers, result.stdout
    dump = side.wg("show", side.interface, "dump").splitlines()
    assert len(dump) == peers + 1 and int(dump[0].split("\t")[2]) > 0, dump


def write_key(tmp_path: Path, name: str, key: str) -> str:
    path = tmp_path / name
    path.write_text(key + "\n")
    return str(path)


@dataclass
class Run:
    survived: bool  # no new handshake: the session went on


# --- the changes (each on the initiator `a` unless it says otherwise) ------------------------


def listen_port(a: Side, b: Side, tmp_path: Path) -> None:
    a.wg("set", a.interface, "listen-port", "51877")
    assert a.wg("show", a.interface, "listen-port").strip() == "51877"


def listen_port_and_new_peer(a: Side, b: Side, tmp_path: Path) -> None:
    _, newcomer = genkey(a.ns)
    a.wg("set", a.interface, "listen-port", "51878", "peer", newcomer,
         "allowed-ips", "10.66.0.0/24")
    assert a.wg("show", a.interface, "listen-port").strip() == "51878"


def link_mtu(a: Side, b: Side, tmp_path: Path) -> None:
    a.ns.run("ip", "link", "set", "dev", a.interface, "mtu", "1380")


def fwmark(a: Side, b: Side, tmp_path: Path) -> None:
    a.wg("set", a.interface, "fwmark", "0x4d2")
    assert a.wg("show", a.interface, "fwmark").strip() == "0x4d2"


def peer_removed_and_readded(a: Side, b: Side, tmp_path: Path) -> None:
    a.wg("set", a.interface, "peer", b.public_key, "remove")
    a.wg("set", a.interface, "peer", b.public_key, "allowed-ips",
         f"{b.inner4}/32,{b.inner6}/128", "endpoint", f"{b.outer4}:{b.port}")


def allowed_ips_replaced(a: Side, b: Side, tmp_path: Path) -> None:
    a.wg("set", a.interface, "peer", b.public_key, "allowed-ips",
         f"{b.inner4}/32,{b.inner6}/128,10.77.0.0/16")


def syncconf(a: Side, b: Side, tmp_path: Path) -> None:
    """Adds a peer, drops another, narrows the allowed IPs of the one carrying traffic."""
    _, extra = genkey(a.ns)
    _, dropped = genkey(a.ns)
    a.wg("set", a.interface, "peer", dropped, "allowed-ips", "10.88.0.0/24")
    a.wg("set", a.interface, "peer", b.public_key, "allowed-ips",
         f"{b.inner4}/32,{b.inner6}/128,10.99.0.0/16")
    conf = tmp_path / "sync.conf"
    conf.write_text(
        f"[Interface]\nPrivateKey = {a.private_key}\nListenPort = {a.port}\n\n"
        f"[Peer]\nPublicKey = {b.public_key}\nAllowedIPs = {b.inner4}/32, {b.inner6}/128\n"
        f"Endpoint = {b.outer4}:{b.port}\n\n"
        f"[Peer]\nPublicKey = {extra}\nAllowedIPs = 10.89.0.0/24\n")
    a.wg("syncconf", a.interface, str(conf))
    assert sorted(a.wg("show", a.interface, "peers").split()) == sorted([b.public_key, extra])


def private_key_changed_and_restored(a: Side, b: Side, tmp_path: Path) -> None:
    """The responder learns a's new public key; the first ping gets through within 1 s (the
    next packet starts a handshake at once); then the old key comes back, likewise."""
    new_private, new_public = genkey(a.ns)
    for private, public, old_public in ((new_private, new_public, a.public_key),
                                        (a.private_key, a.public_key, new_public)):
        b.wg("set", b.interface, "peer", old_public, "remove", "peer", public,
             "allowed-ips", f"{a.inner4}/32,{a.inner6}/128")
        a.wg("set", a.interface, "private-key", write_key(tmp_path, "pk", private))
        started = time.monotonic()
        ping(a, b.inner4, count=1)  # one echo, two seconds to answer
        assert time.monotonic() - started < 1.0, "the first ping waited for a handshake timer"


def replace_peers(a: Side, b: Side, tmp_path: Path) -> None:
    """`wg setconf` (replace_peers): the same peer, from scratch."""
    conf = tmp_path / "set.conf"
    conf.write_text(
        f"[Interface]\nPrivateKey = {a.private_key}\nListenPort = {a.port}\n\n"
        f"[Peer]\nPublicKey = {b.public_key}\nAllowedIPs = {b.inner4}/32, {b.inner6}/128\n"
        f"Endpoint = {b.outer4}:{b.port}\n")
    a.wg("setconf", a.interface, str(conf))


CASES: dict[str, Callable[[Side, Side, Path], None]] = {
    "listen-port": listen_port,
    "listen-port-and-new-peer": listen_port_and_new_peer,
    "link-mtu": link_mtu,
    "fwmark": fwmark,
    "peer-removed-and-readded": peer_removed_and_readded,
    "allowed-ips-replaced": allowed_ips_replaced,
    "syncconf": syncconf,
    "private-key": private_key_changed_and_restored,
    "replace-peers": replace_peers,
}
PEERS_AFTER = {"listen-port-and-new-peer": 2, "syncconf": 2}


def run_case(pool: NetnsPool, tmp_path: Path, kind: str,
             change: Callable[[Side, Side, Path], None], peers_after: int) -> Run:
    work = tmp_path / kind
    work.mkdir(parents=True)
    a, b = make_pair(pool, (kind, kind), work, psk=False, outer=4)
    first_ping(a, b.inner4)
    ping(b, a.inner4)
    time.sleep(1.1)  # a handshake from now on shows as a later latest-handshake second
    before = latest_handshake(a, b), latest_handshake(b, a)
    total = int(4e6 * TRANSFER_SECONDS)  # 4 MB/s: well within every implementation
    sink = b.ns.popen(sys.executable, "-c", SINK, b.inner4, str(TRANSFER_PORT),
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    source = None
    try:
        assert sink.stdout is not None and sink.stdout.readline().strip() == "listening"
        source = a.ns.popen(sys.executable, "-c", PACED_SOURCE, b.inner4, str(TRANSFER_PORT),
                            str(total), str(TRANSFER_SECONDS), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
        assert source.stdout is not None and source.stdout.readline().strip() == "connected"
        time.sleep(TRANSFER_SECONDS / 3)  # the change lands in the middle of the transfer
        change(a, b, work)
        sent, sent_err = source.communicate(timeout=60)
        received, received_err = sink.communicate(timeout=60)
    finally:
        for proc in (sink, source):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert source.returncode == 0, f"{kind}: the transfer broke: {sent_err}"
    assert sink.returncode == 0, f"{kind}: the sink failed: {received_err}"
    assert received.split() == sent.split(), f"{kind}: {sent!r} != {received!r}"
    assert int(received.split()[0]) == total
    assert_show_complete(a, peers_after)
    assert_show_complete(b, 1)
    ping(a, b.inner4)  # still a working tunnel, both ways
    ping(b, a.inner4)
    after = latest_handshake(a, b), latest_handshake(b, a)
    return Run(survived=after == before)


@pytest.mark.parametrize("case", list(CASES))
def test_live_change_keeps_what_the_reference_keeps(netns_pool: NetnsPool, tmp_path: Path,
                                                    case: str):
    def run(kind: str, attempt: int) -> Run:
        return run_case(netns_pool, tmp_path / str(attempt), kind, CASES[case],
                        PEERS_AFTER.get(case, 1))

    # The two implementations' runs are independent (namespaces of their own): side by side,
    # which halves this test's time.
    with ThreadPoolExecutor(max_workers=2) as side_by_side:
        runs = [side_by_side.submit(run, kind, 0) for kind in ("wireguard-go-offload", "wgfastd")]
        reference, wgfast = (future.result() for future in runs)
    if wgfast.survived != reference.survived:
        # The reference has races of its own (now and then a change wireguard-go survives
        # ends in a second handshake): what it does in two runs of three is its behaviour.
        votes = [reference.survived] + [run("wireguard-go-offload", k).survived for k in (1, 2)]
        reference = Run(survived=votes.count(True) >= 2)
    print(f"{case}: session survived: reference {reference.survived}, wgfastd {wgfast.survived}")
    assert wgfast.survived == reference.survived, (case, reference, wgfast)


def test_change_while_down_then_up(netns_pool: NetnsPool, tmp_path: Path):
    """pyroute2's example order: listen port and a new peer in one set while the link is down,
    then up: the tunnel works (on the new port) and `wg show` is complete."""
    a, b = make_pair(netns_pool, ("wgfastd", "wgfastd"), tmp_path, psk=False, outer=4)
    first_ping(a, b.inner4)
    a.ns.run("ip", "link", "set", "dev", a.interface, "down")
    _, newcomer = genkey(a.ns)
    a.wg("set", a.interface, "listen-port", "51879", "peer", newcomer,
         "allowed-ips", "10.67.0.0/24")
    a.ns.run("ip", "link", "set", "dev", a.interface, "up")
    first_ping(a, b.inner4)
    ping(b, a.inner4)
    assert a.wg("show", a.interface, "listen-port").strip() == "51879"
    assert_show_complete(a, 2)
