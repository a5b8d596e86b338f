"""wgfastd under hostile input and under its own move: checks the device issue still lacked.

- Garbage on the UDP port: a bounded, seeded batch of random datagrams (random sizes 0..1500,
  truncated and oversized handshake-type messages, right-size handshake messages with random
  contents, type-4 data messages with unknown receiver indexes, a few datagrams larger than the
  MTU) sent from inside the peer's namespace to wgfastd's port. wgfastd must stay up and the
  tunnel must still carry a ping and a TCP transfer afterwards. The drops are counted by reason
  where anyone can read them: wgfastd appends its counters to get=1 replies as extra device keys
  (`wgfast_drop_<reason>` from the data plane, `wgfast_handshake_drop_<reason>` from the
  protocol core), which `wg` ignores and `wgfast show --json` lists under "counters"; the
  protocol core's debug log line for each handshake-type datagram it rejects is checked too.
- wgfastd's own outer address changes mid-transfer (the peer is wireguard-go): the old address
  is removed while a paced TCP transfer runs, the kernel picks the new source for wgfastd's
  wildcard-bound socket, wireguard-go learns the new endpoint from authenticated data, and the
  transfer arrives whole (SHA-256).

All traffic stays inside the namespaces each test creates; every wait is bounded.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from support.daemons import REPO
from support.netns import NetnsPool, wait_for
from support.tunnel import (
    OUTER4,
    SINK,
    TRANSFER_BYTES,
    Side,
    dump_peer,
    first_ping,
    make_pair,
    ping,
    tcp_transfer,
)

# Sends a seeded batch of hostile datagrams to argv[1]:argv[2]; prints how many of each kind.
# Handshake sizes: initiation 148, response 92, cookie reply 64; data messages are >= 32 bytes.
GARBAGE = """
import random, socket, struct, sys, time
host, port, seed, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
HANDSHAKE = {1: 148, 2: 92, 3: 64}
sent = {"random": 0, "handshake_bad_size": 0, "handshake_right_size": 0, "data_unknown_index": 0,
        "oversized": 0}
def send(kind, payload):
    sock.sendto(payload, (host, port))
    sent[kind] += 1
    if sum(sent.values()) % 50 == 0:  # paced: the point is malformed input, not a flood
        time.sleep(0.005)
for _ in range(count):
    send("random", rng.randbytes(rng.randint(0, 1500)))
for _ in range(count // 10):
    kind = rng.choice(list(HANDSHAKE))
    size = rng.choice([0, 1, 3, 4, 5, HANDSHAKE[kind] - 1, HANDSHAKE[kind] + 1,
                       rng.randint(HANDSHAKE[kind] + 2, 1500)])
    send("handshake_bad_size", (bytes([kind, 0, 0, 0]) + rng.randbytes(1500))[:size])
for _ in range(count // 10):
    kind = rng.choice(list(HANDSHAKE))
    send("handshake_right_size", bytes([kind, 0, 0, 0]) + rng.randbytes(HANDSHAKE[kind] - 4))
for _ in range(count // 10):
    size = rng.choice([4, 15, 16, 31, 32, rng.randint(33, 1500)])
    header = struct.pack("<II", 4, rng.getrandbits(32))
    send("data_unknown_index", (header + rng.randbytes(1500))[:size])
for size in (1501, 1600, 4000, 9000, 20000, 65000):
    send("oversized", bytes([rng.randint(0, 5), 0, 0, 0]) + rng.randbytes(size - 4))
print(" ".join(f"{k}={v}" for k, v in sent.items()), flush=True)
"""

GARBAGE_SEED = 20240517
GARBAGE_COUNT = 2000


def _daemon_alive(side: Side) -> bool:
    """The UAPI socket answers (the daemon serves it from its one event loop)."""
    result = side.ns.run("wg", "show", side.interface, "listen-port", check=False)
    return result.returncode == 0 and result.stdout.strip() == str(side.port)


def wgfast_counters(side: Side) -> dict[str, int]:
    """The daemon's own counters, as `wgfast show --json` reports them from a get=1 reply."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    out = side.ns.run(sys.executable, "-m", "wgfast.cli", "show", side.interface, "--json",
                      env=env).stdout  # fmt: skip
    counters = json.loads(out)["counters"]
    assert all(isinstance(v, int) for v in counters.values()), counters
    return counters


def _delta(after: dict[str, int], before: dict[str, int], prefix: str) -> dict[str, int]:
    return {k[len(prefix):]: after[k] - before.get(k, 0) for k in after
            if k.startswith(prefix) and after[k] != before.get(k, 0)}  # fmt: skip


def test_garbage_datagrams_are_dropped_and_the_tunnel_survives(netns_pool: NetnsPool,
                                                               tmp_path: Path):  # fmt: skip
    a, b = make_pair(netns_pool, ("wgfastd", "wireguard-go"), tmp_path, psk=False, outer=4)
    first_ping(a, b.inner4)
    log_file = tmp_path / f"{a.interface}.log"
    drops_before = log_file.read_text().count("dropped datagram")
    rx_before = int(dump_peer(a)[5])
    counters_before = wgfast_counters(a)
    # Only nonzero counters are reported; the first ping moved these.
    assert counters_before["wgfast_dp_recvmmsg_calls"] > 0, counters_before
    assert counters_before["wgfast_dp_handshake_messages_up"] > 0, counters_before

    result = b.ns.run(sys.executable, "-c", GARBAGE, a.outer4, str(a.port), str(GARBAGE_SEED),
                      str(GARBAGE_COUNT), timeout=60)  # fmt: skip
    sent = dict(item.split("=") for item in result.stdout.split())
    total = sum(int(v) for v in sent.values())
    assert total == GARBAGE_COUNT + 3 * (GARBAGE_COUNT // 10) + 6

    assert _daemon_alive(a), "wgfastd stopped answering after the garbage"
    # Counted by reason, read from outside the daemon, before the tunnel carries more traffic.
    # Random first bytes are almost never a valid type; short or long handshake types are the
    # wrong size; type-4 messages name unknown receiver indexes; 20000 and 65000 bytes do not
    # fit a plain receive buffer; right-size handshake messages never reach the protocol core:
    # the data plane finds no valid mac1 on an initiation and no index of ours in a response or
    # cookie reply.
    right_size = int(sent["handshake_right_size"])
    counters_after = wgfast_counters(a)
    dp_drops = _delta(counters_after, counters_before, "wgfast_drop_")
    core_drops = _delta(counters_after, counters_before, "wgfast_handshake_drop_")
    print(f"data-plane drops: {dp_drops}; protocol-core drops: {core_drops}")
    assert dp_drops.get("bad_type", 0) >= int(sent["random"]) * 9 // 10, dp_drops
    assert dp_drops.get("bad_size", 0) >= int(sent["handshake_bad_size"]) // 2, dp_drops
    # (two in six type-4 sizes are 32 bytes or more; the rest are too short for a data message)
    assert dp_drops.get("unknown_index", 0) >= int(sent["data_unknown_index"]) // 6, dp_drops
    # The 20000 and 65000-byte datagrams overflow a plain receive buffer (truncated); with UDP GRO
    # on, buffers are 64 KiB, they fit, and their first byte decides the reason instead.
    assert dp_drops.get("truncated", 0) in (0, 2), dp_drops
    refused = dp_drops.get("bad_mac1", 0) + dp_drops.get("unknown_handshake_index", 0)
    assert refused == right_size, dp_drops
    assert dp_drops.get("bad_mac1", 0) > 0 and dp_drops.get("unknown_handshake_index", 0) > 0
    assert sum(core_drops.values()) == 0, core_drops
    # Every datagram sent is accounted for: dropped by the data plane or by the protocol core.
    assert sum(dp_drops.values()) + sum(core_drops.values()) == total, (dp_drops, core_drops)
    # `wg` still parses the reply with the extra keys.
    assert _daemon_alive(a)
    ping(a, b.inner4)
    ping(b, a.inner4)
    tcp_transfer(b, a, a.inner4, tmp_path)
    assert _daemon_alive(a)
    # The transfer's payload arrived through the tunnel after the garbage.
    assert int(dump_peer(a)[5]) - rx_before >= TRANSFER_BYTES

    # None of it reached the protocol core, which logs each rejection it makes (the data plane
    # counts its own, a flood's worth of log lines would be a flood of its own).
    logged = log_file.read_text().count("dropped datagram") - drops_before
    assert logged == 0, logged
    print(f"garbage sent: {total} datagrams ({result.stdout.strip()})")


# Sends argv[3] over TCP in 64 KiB chunks, pausing 10 ms after each, so the transfer lasts long
# enough (about 2 s for 12 MiB) for the sender's address to change under it.
PACED_SOURCE = """
import socket, sys, time
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30) as conn, \\
        open(sys.argv[3], "rb") as f:
    print("connected", flush=True)
    while chunk := f.read(1 << 16):
        conn.sendall(chunk)
        time.sleep(0.01)
"""


ROAM_BYTES = 12 * 1024 * 1024
ROAM_PORT = 5303
NEW_OUTER = "10.233.0.1"


def test_wgfastd_roams_mid_transfer_and_wireguard_go_follows(netns_pool: NetnsPool,
                                                             tmp_path: Path):  # fmt: skip
    a, b = make_pair(netns_pool, ("wgfastd", "wireguard-go"), tmp_path, psk=True, outer=4)
    first_ping(a, b.inner4)
    assert dump_peer(b)[2] == f"{OUTER4[0]}:{a.port}"
    a_veth = a.ns.run("ip", "-o", "-4", "addr", "show", "to", OUTER4[0]).stdout.split()[1]
    b_veth = b.ns.run("ip", "-o", "-4", "addr", "show", "to", OUTER4[1]).stdout.split()[1]
    # The new address is in another subnet, so removing the old one cannot take it along.
    a.ns.run("ip", "addr", "add", NEW_OUTER + "/24", "dev", a_veth)
    b.ns.run("ip", "route", "add", "10.233.0.0/24", "dev", b_veth)

    payload = os.urandom(ROAM_BYTES)
    data_file = tmp_path / "roam.bin"
    data_file.write_bytes(payload)
    sink = b.ns.popen(sys.executable, "-c", SINK, b.inner4, str(ROAM_PORT),
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    source: subprocess.Popen | None = None
    try:
        assert sink.stdout is not None
        assert sink.stdout.readline().strip() == "listening"
        source = a.ns.popen(sys.executable, "-c", PACED_SOURCE, b.inner4, str(ROAM_PORT),
                            str(data_file), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
        assert source.stdout is not None
        assert source.stdout.readline().strip() == "connected"
        time.sleep(0.5)
        assert source.poll() is None, "the transfer ended before the move"
        # The move: the old address goes; the kernel now picks NEW_OUTER as the source for
        # wgfastd's wildcard-bound socket once a route to the peer exists again.
        a.ns.run("ip", "addr", "del", OUTER4[0] + "/24", "dev", a_veth)
        a.ns.run("ip", "route", "add", "10.231.0.0/24", "dev", a_veth, "src", NEW_OUTER)
        moved_while_running = source.poll() is None
        source_rc = source.wait(timeout=60)
        out, err = sink.communicate(timeout=60)
    finally:
        for proc in (source, sink):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert moved_while_running, "the transfer ended before the move completed"
    assert source_rc == 0, source.stderr.read() if source.stderr else ""
    length, digest = out.split()
    assert int(length) == ROAM_BYTES, err
    assert digest == hashlib.sha256(payload).hexdigest()
    assert wait_for(lambda: dump_peer(b)[2] == f"{NEW_OUTER}:{a.port}", 5), dump_peer(b)
    ping(b, a.inner4)  # wireguard-go's replies reach wgfastd at its new address


# Captures the transport data messages its own namespace sends to argv[1]:argv[2] (an ETH_P_ALL
# packet socket sees outgoing packets too) for at most argv[3] seconds, then sends each captured
# message argv[4] more times from a new socket (another source port): replays of authentic
# packets.
REPLAY = """
import socket, struct, sys, time
host, port, seconds, copies = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
cap = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(3))  # ETH_P_ALL
cap.settimeout(0.2)
captured = []
print("capturing", flush=True)
deadline = time.monotonic() + seconds
while time.monotonic() < deadline and len(captured) < 40:
    try:
        pkt = cap.recv(65535)
    except socket.timeout:
        continue
    ihl = (pkt[0] & 15) * 4
    if pkt[0] >> 4 != 4 or pkt[9] != 17 or socket.inet_ntoa(pkt[16:20]) != host:
        continue
    if struct.unpack("!H", pkt[ihl + 2:ihl + 4])[0] != port:
        continue
    payload = pkt[ihl + 8:]
    if payload[:1] == b"\\x04" and len(payload) >= 32:
        captured.append(payload)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sent = 0
for _ in range(copies):
    for p in captured:
        sock.sendto(p, (host, port))
        sent += 1
    time.sleep(0.002)
print(f"captured={len(captured)} sent={sent}", flush=True)
"""
REPLAY_COPIES = 50


def test_replayed_data_packets_are_dropped_and_do_not_move_the_endpoint(
    netns_pool: NetnsPool, tmp_path: Path
):
    a, b = make_pair(netns_pool, ("wgfastd", "wireguard-go"), tmp_path, psk=True, outer=4)
    first_ping(a, b.inner4)
    endpoint_before = dump_peer(a)[2]
    assert endpoint_before == f"{b.outer4}:{b.port}"
    counters_before = wgfast_counters(a)
    replayer = b.ns.popen(sys.executable, "-c", REPLAY, a.outer4, str(a.port), "3",
                          str(REPLAY_COPIES), stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert replayer.stdout is not None
        assert replayer.stdout.readline().strip() == "capturing"
        ping(b, a.inner4, count=5)  # wireguard-go seals these: authentic packets to replay
        out, _ = replayer.communicate(timeout=60)
    finally:
        if replayer.poll() is None:
            replayer.kill()
            replayer.wait()
    stats = dict(item.split("=") for item in out.split())
    captured, sent = int(stats["captured"]), int(stats["sent"])
    assert captured >= 5 and sent == captured * REPLAY_COPIES, stats
    assert wait_for(lambda: _delta(wgfast_counters(a), counters_before, "wgfast_drop_")
                    .get("replay", 0) >= sent, 5), _delta(wgfast_counters(a), counters_before,
                                                          "wgfast_drop_")  # fmt: skip
    drops = _delta(wgfast_counters(a), counters_before, "wgfast_drop_")
    assert drops.get("auth", 0) == 0, drops  # authentic packets: the replay window, not the tag
    # Replays came from another source port, yet the endpoint did not roam to them.
    assert dump_peer(a)[2] == endpoint_before
    assert _daemon_alive(a)
    ping(a, b.inner4)
    ping(b, a.inner4)
