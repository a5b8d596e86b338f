"""Packets staged for peers that cannot start a handshake (no endpoint) cannot starve the others,
and are freed when their handshake gives up.

wgfastd runs with the test hook WGFAST_TEST_TIME_SCALE, so REKEY_ATTEMPT_TIME (after which a
handshake gives up and drops what was staged for it) is a few seconds. While forty peers without
an endpoint are flooded, the real peer's session is restarted and a burst is sent to it at once:
all of the burst waits for the new handshake in the shared pool of staged buffers and arrives.
Then, the flood over, the pool empties within REKEY_ATTEMPT_TIME (and a margin).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.netns import NetnsPool, wait_for
from support.tunnel import Side, first_ping, genkey, make_pair
from wgfast import _native
from wgfast.protocol.messages import TEST_TIME_SCALE_ENV
from wgfast.uapi import UAPIClient

TIME_SCALE = 0.05  # REKEY_ATTEMPT_TIME 4.5 s, REKEY_TIMEOUT 0.25 s
REKEY_ATTEMPT_TIME = 90 * TIME_SCALE
STRANDED_PEERS = 40
FLOOD_PER_PEER = 200
BURST = 50
BURST_PORT = 5331

# Sends argv[2] datagrams to each of the hosts 10.240.N.1 for N < argv[1].
FLOOD = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(int(sys.argv[2])):
    for n in range(int(sys.argv[1])):
        s.sendto(b"x" * 64, (f"10.240.{n}.1", 9))
"""

# Counts datagrams on argv[1]:argv[2] until argv[3] arrived or 5 s passed; prints the count.
COUNT = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(0.2)
print("ready", flush=True)
got, deadline = 0, time.monotonic() + 5
while got < int(sys.argv[3]) and time.monotonic() < deadline:
    try:
        s.recv(2048)
        got += 1
    except TimeoutError:
        pass
print(got, flush=True)
"""

# Sends argv[3] datagrams to argv[1]:argv[2] back to back.
BURST_SENDER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[3])):
    s.sendto(i.to_bytes(4, "big") * 16, (sys.argv[1], int(sys.argv[2])))
"""


def staged_held(side: Side) -> int:
    """The data plane's gauge of held staged buffers, from get=1 (`wg` shows no such key)."""
    for line in UAPIClient.for_interface(side.interface).get_text().splitlines():
        key, _, value = line.partition("=")
        if key == "wgfast_dp_staged_held":
            return int(value)
    return 0  # listed only when nonzero


@pytest.mark.slow
def test_stranded_peers_do_not_starve_the_pool(netns_pool: NetnsPool, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(TEST_TIME_SCALE_ENV, str(TIME_SCALE))
    a, b = make_pair(netns_pool, ("wgfastd", "wgfastd"), tmp_path, psk=False, outer=4)
    first_ping(a, b.inner4)
    stranded = []
    for n in range(STRANDED_PEERS):
        _, public = genkey(a.ns)
        stranded += ["peer", public, "allowed-ips", f"10.240.{n}.0/24"]
    a.wg("set", a.interface, *stranded)
    a.ns.run("ip", "route", "add", "10.240.0.0/16", "dev", a.interface)

    a.ns.run(sys.executable, "-c", FLOOD, str(STRANDED_PEERS), str(FLOOD_PER_PEER), timeout=60)
    held = staged_held(a)
    assert 0 < held <= _native.DP_STRANDED_MAX, held

    # The real peer's session restarts; a burst for it waits for the handshake, all of it.
    counter = b.ns.popen(sys.executable, "-c", COUNT, b.inner4, str(BURST_PORT), str(BURST),
                         stdout=subprocess.PIPE, text=True)
    try:
        assert counter.stdout is not None and counter.stdout.readline().strip() == "ready"
        a.wg("set", a.interface, "peer", b.public_key, "remove")
        a.wg("set", a.interface, "peer", b.public_key, "endpoint", f"{b.outer4}:{b.port}",
             "allowed-ips", f"{b.inner4}/32,{b.inner6}/128")
        a.ns.run(sys.executable, "-c", BURST_SENDER, b.inner4, str(BURST_PORT), str(BURST))
        out, _ = counter.communicate(timeout=10)
    finally:
        if counter.poll() is None:
            counter.kill()
            counter.wait()
    assert int(out.strip()) == BURST, "the burst lost packets while the pool was flooded"

    # The flood is over: each stranded handshake gives up and frees what it held.
    started = time.monotonic()
    assert wait_for(lambda: staged_held(a) == 0, 3 * REKEY_ATTEMPT_TIME, 0.2), staged_held(a)
    assert time.monotonic() - started <= 3 * REKEY_ATTEMPT_TIME
