"""wgfastd under handshake floods, in network namespaces; bounded in count and time.

The defence is the data plane's, in C before anything is queued for Python
(csrc/dataplane_handshake.c): mac1 on every initiation and response; a response or cookie reply
must name an index of ours; "under load" when the control queue holds WGF_DP_UNDER_LOAD_QUEUE
datagrams (and 1 s after); then an initiation or response without a valid mac2 gets a cookie
reply made in C, and one with a valid mac2 must pass its source's token bucket. Python only sees
what it will process.

One wireguard-go peer (A) and wgfastd (B, its protocol times scaled by WGFAST_TEST_TIME_SCALE so
that a session rekeys within seconds). For each kind of flood, FLOOD_RUNS times, a flooder in A's
namespace sends as fast as one Python process can (unpaced `sendto` from FLOOD_SOCKETS ports of
A's own address; the MACs computed here with hashlib, from the protocol's definition):

    bad_mac1        initiations whose mac1 is wrong
    valid_mac1      initiations with a valid mac1 and random contents (each would cost B a
                    Diffie-Hellman if it reached Python), from the real peer's address
    cookie_garbage  type 3 datagrams for random receiver indices
    mix             the three, interleaved

and during each:
- B starts a fresh session with A just before the flood (B is the initiator), and while a
  steady ping B -> A runs through the flood, that session rekeys (B's latest handshake moves on;
  under load: B's initiation, A's response answered with a cookie reply from C, B's retry, A's
  response with mac2) with at most 15% of the pings unanswered and never a second without an
  answer: "an established session rekeys without breaking";
- then A forgets its session and starts a handshake: the time from then to the first answered
  ping stays within HANDSHAKE_LIMIT (two of wireguard-go's 5 s retries and slack: its first
  initiation may be answered with a cookie reply, the retry carries mac2);
- wgfastd's Python thread (the asyncio loop, the process's main thread) stays under
  PYTHON_CPU_LIMIT of a core over the flood, read from /proc/PID/task/PID/stat;
- every datagram the flooder sent is accounted for: in the data plane's drop counters or its
  handshake_messages_up (wgfast show --json), or dropped by the kernel before the data plane
  read it (UDP RcvbufErrors in B's namespace, veth drops), within the few handshake messages
  the real peers exchanged meanwhile.

CI runs FLOOD_RUNS = 1 per kind (about 12 s each). The issue's measurement (10 runs per kind;
prints the worst time to handshake per kind and the Python thread's CPU):

    cd tests && WGFAST_FLOOD_RUNS=10 PYTHONPATH=.. pytest -p no:cacheprovider -q -s \
        daemon/test_flood.py -k kinds
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.netns import NetnsPool
from support.tunnel import Side, daemon_pid, dump_peer, first_ping, make_pair, ping
from wgfast.protocol.messages import TEST_TIME_SCALE_ENV

FLOOD_RUNS = int(os.environ.get("WGFAST_FLOOD_RUNS", "1"))
KINDS = ("bad_mac1", "valid_mac1", "cookie_garbage", "mix")
TIME_SCALE = 0.04  # REKEY_AFTER_TIME 4.8 s, REJECT_AFTER_TIME 7.2 s, REKEY_TIMEOUT 0.2 s
REKEY_PHASE = 6.5  # seconds of steady pings B -> A, past REKEY_AFTER_TIME
# "Without breaking": never a second without an answer, and at most 15% of the pings lost (the
# flood sender and the receive thread share two cores: when the flood outruns the receive thread
# the kernel drops up to a tenth of what reaches the socket, the real peer's datagrams with the
# rest; measured over 40 runs: at most 7 of 65 lost, at most 3 in a row).
REKEY_PINGS_LOST_MAX = 9  # of REKEY_PHASE / 0.1 s = 65
REKEY_LONGEST_GAP = 10  # pings in a row, 1 s
HANDSHAKE_LIMIT = 11.0
HANDSHAKE_GIVE_UP = 25.0
PYTHON_CPU_LIMIT = 0.10
FLOOD_SOCKETS = 16
ACCOUNTING_SLACK = 200  # the real peers' own handshake datagrams and late data during a run
FLOOD_LIMIT_SECONDS = 60.0  # the flooder stops by itself after this, whatever happens
FLOOD_COUNT = 50_000_000

# argv: host port responder_public_base64 seconds count rate sockets [kind]. rate 0: as fast as
# it can. Stops at SIGINT, after `seconds` or `count`. Prints "flooding", then a JSON summary.
FLOODER = r"""
import base64, hashlib, json, os, select, signal, socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
responder = base64.b64decode(sys.argv[3])
seconds, count = float(sys.argv[4]), int(sys.argv[5])
rate, nsock = int(sys.argv[6]), int(sys.argv[7])
kind = sys.argv[8] if len(sys.argv) > 8 else "valid_mac1"
# WireGuard: mac1 = MAC(HASH("mac1----" || S_pub_responder), msg[0:116]), MAC = keyed BLAKE2s-128.
mac1_key = hashlib.blake2s(b"mac1----" + responder).digest()
def initiation(valid):
    body = b"\x01\0\0\0" + os.urandom(4 + 32 + 48 + 28)  # sender, ephemeral, static, timestamp
    mac1 = hashlib.blake2s(body, digest_size=16, key=mac1_key).digest()
    if not valid:
        mac1 = bytes([mac1[0] ^ 1]) + mac1[1:]
    return body + mac1 + bytes(16)  # no mac2: we have no cookie
def cookie_garbage():
    return b"\x03\0\0\0" + os.urandom(60)  # a random receiver index, nonce, cookie
makers = {"bad_mac1": [lambda: initiation(False)], "valid_mac1": [lambda: initiation(True)],
          "cookie_garbage": [cookie_garbage],
          "mix": [lambda: initiation(False), lambda: initiation(True), cookie_garbage]}[kind]
pool = [makers[i % len(makers)]() for i in range(1023)]
socks = []
for _ in range(nsock):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind(("0.0.0.0", 0))
    s.setblocking(False)
    socks.append(s)
poller = select.epoll()
for s in socks:
    poller.register(s.fileno(), select.EPOLLIN)
by_fd = {s.fileno(): s for s in socks}
sent = cookies = other = send_errors = 0
stop = False
def on_sigint(signum, frame):
    global stop
    stop = True
signal.signal(signal.SIGINT, on_sigint)
def drain():
    global cookies, other
    for fd, _ in poller.poll(0):
        s = by_fd[fd]
        while True:
            try:
                data = s.recv(2048)
            except BlockingIOError:
                break
            if len(data) == 64 and data[0] == 3:
                cookies += 1
            else:
                other += 1
start = time.monotonic()
print("flooding", flush=True)
BURST = 256
targets = [(s.sendto, i) for i, s in enumerate(socks)]
address = (host, port)
while not stop and sent < count and time.monotonic() - start < seconds:
    for i in range(BURST):
        try:
            socks[i % nsock].sendto(pool[(sent + i) % 1023], address)
        except (BlockingIOError, ConnectionRefusedError, OSError):
            send_errors += 1
    sent += BURST
    drain()
    if rate > 0:
        ahead = sent / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
sent -= send_errors  # what the kernel took
elapsed = time.monotonic() - start
end = time.monotonic() + 0.5
while time.monotonic() < end:
    drain()
    time.sleep(0.05)
print(json.dumps({"kind": kind, "sent": sent, "seconds": round(elapsed, 2),
                  "rate": round(sent / max(elapsed, 1e-9)), "cookie_replies": cookies,
                  "other_replies": other, "send_errors": send_errors,
                  "source_ports": nsock}), flush=True)
"""

# argv: addr seconds interval. Echo requests at a steady pace; prints a JSON summary of how many
# were answered and the longest run of unanswered ones.
STEADY_PING = r"""
import json, os, select, socket, struct, sys, time
addr, seconds, interval = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
ident = os.getpid() & 0xFFFF
def checksum(data):
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF
answered, sent = set(), 0
start = time.monotonic()
while time.monotonic() - start < seconds:
    body = struct.pack("!HH", ident, sent) + b"wgfast-ping" * 4
    header = struct.pack("!BBH", 8, 0, 0)
    sock.sendto(struct.pack("!BBH", 8, 0, checksum(header + body)) + body, (addr, 0))
    sent += 1
    due = start + sent * interval
    while (left := due - time.monotonic()) > 0 and select.select([sock], [], [], left)[0]:
        packet = sock.recv(65536)
        icmp = packet[(packet[0] & 15) * 4:]
        if icmp[0] == 0 and struct.unpack("!H", icmp[4:6])[0] == ident:
            answered.add(struct.unpack("!H", icmp[6:8])[0])
end = time.monotonic() + 1.0
while (left := end - time.monotonic()) > 0 and select.select([sock], [], [], left)[0]:
    packet = sock.recv(65536)
    icmp = packet[(packet[0] & 15) * 4:]
    if icmp[0] == 0 and struct.unpack("!H", icmp[4:6])[0] == ident:
        answered.add(struct.unpack("!H", icmp[6:8])[0])
longest = run = 0
for seq in range(sent):
    run = 0 if seq in answered else run + 1
    longest = max(longest, run)
print(json.dumps({"sent": sent, "answered": len(answered), "longest_unanswered": longest}))
"""

REPO = str(Path(__file__).resolve().parents[2])
SHOWN_COUNTERS = ("wgfast_drop_", "wgfast_dp_handshake_messages_up", "wgfast_dp_cookie_replies")


def wgfast_counters(side: Side) -> dict[str, int]:
    """The daemon's own counters, as `wgfast show --json` reports them from a get=1 reply."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    out = side.ns.run(sys.executable, "-m", "wgfast.cli", "show", side.interface, "--json",
                      env=env).stdout  # fmt: skip
    return json.loads(out)["counters"]


def kernel_drops(side: Side) -> dict[str, int]:
    """What the kernel dropped in side's namespace before a socket read it: UDP input errors
    (mostly receive-buffer overflows) and the veth's own drops."""
    snmp = side.ns.run("cat", "/proc/net/snmp").stdout.splitlines()
    udp = [line.split()[1:] for line in snmp if line.startswith("Udp:")]
    fields = dict(zip(udp[0], (int(v) for v in udp[1]), strict=True))
    links = json.loads(side.ns.run("ip", "-s", "-j", "link", "show").stdout)
    veth = sum(link["stats64"]["rx"]["dropped"] + link["stats64"]["tx"]["dropped"]
               for link in links if link.get("ifname", "").startswith("veth")
               or link.get("link_type") == "ether")  # fmt: skip
    # InErrors counts the receive-buffer overflows (RcvbufErrors) and the rest (checksums).
    return {"udp_in_errors": fields["InErrors"], "link_drops": veth}


def thread_cpu_seconds(pid: int, tid: int) -> float:
    """utime + stime of one thread, in seconds."""
    stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def latest_handshake(side: Side) -> int:
    return int(dump_peer(side)[4])


def readd_peer(me: Side, other: Side, tmp_path: Path) -> None:
    """`me` forgets `other` and its session, then knows it again (endpoint included)."""
    me.wg("set", me.interface, "peer", other.public_key, "remove")
    me.wg("set", me.interface, "peer", other.public_key, "preshared-key", str(tmp_path / "psk"),
          "endpoint", f"{other.outer4}:{other.port}",
          "allowed-ips", f"{other.inner4}/32,{other.inner6}/128")  # fmt: skip


@dataclass
class RunResult:
    kind: str
    handshake_seconds: float
    python_cpu: float
    rekeyed: bool
    rekey_pings: dict
    flood: dict
    dataplane: dict[str, int]
    kernel: dict[str, int]
    unaccounted: int


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def flood_once(a: Side, b: Side, kind: str, tmp_path: Path) -> RunResult:
    # B starts a fresh session (B the initiator, so B's scaled REKEY_AFTER_TIME applies).
    readd_peer(b, a, tmp_path)
    first_ping(b, a.inner4)
    pid = daemon_pid(b)
    counters_before, kernel_before = wgfast_counters(b), kernel_drops(b)
    kernel_a_before = kernel_drops(a)
    handshake_before = latest_handshake(b)
    cpu_before, wall_before = thread_cpu_seconds(pid, pid), time.monotonic()
    flooder = a.ns.popen(sys.executable, "-c", FLOODER, b.outer4, str(b.port), b.public_key,
                         str(FLOOD_LIMIT_SECONDS), str(FLOOD_COUNT), "0", str(FLOOD_SOCKETS),
                         kind, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)  # fmt: skip
    try:
        assert flooder.stdout is not None
        assert flooder.stdout.readline().strip() == "flooding"
        # The established session rekeys during the flood, under steady traffic.
        pinger = b.ns.run(sys.executable, "-c", STEADY_PING, a.inner4, str(REKEY_PHASE), "0.1",
                          timeout=REKEY_PHASE + 30)  # fmt: skip
        rekey_pings = json.loads(pinger.stdout.strip().splitlines()[-1])
        rekeyed = latest_handshake(b) > handshake_before
        # The real peer forgets its session and handshakes again, in the flood.
        readd_peer(a, b, tmp_path)
        started = time.monotonic()
        handshake_seconds = float("inf")
        while time.monotonic() - started < HANDSHAKE_GIVE_UP:
            if ping(a, b.inner4, count=1, check=False).returncode == 0:
                handshake_seconds = time.monotonic() - started
                break
        assert flooder.poll() is None, "the flood ended early"
        flooder.send_signal(signal.SIGINT)
        out, err = flooder.communicate(timeout=30)
        cpu_after, wall_after = thread_cpu_seconds(pid, pid), time.monotonic()
    finally:
        if flooder.poll() is None:
            flooder.kill()
            flooder.wait()
    assert flooder.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    time.sleep(0.5)  # what the data plane still had to read
    dataplane = delta(wgfast_counters(b), counters_before)
    kernel = delta(kernel_drops(b), kernel_before)
    kernel_a = delta(kernel_drops(a), kernel_a_before)
    kernel["link_drops"] = kernel.get("link_drops", 0) + kernel_a.get("link_drops", 0)
    counted = (sum(v for k, v in dataplane.items() if k.startswith("wgfast_drop_"))
               + dataplane.get("wgfast_dp_handshake_messages_up", 0) + sum(kernel.values()))
    return RunResult(kind, handshake_seconds, (cpu_after - cpu_before) / (wall_after - wall_before),
                     rekeyed, rekey_pings, summary,
                     {k: v for k, v in dataplane.items() if k.startswith(SHOWN_COUNTERS)},
                     kernel, counted - summary["sent"])  # fmt: skip


def test_flood_kinds(netns_pool: NetnsPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Each kind of flood: handshake time, rekey, Python CPU and accounting (module docstring)."""
    monkeypatch.setenv(TEST_TIME_SCALE_ENV, str(TIME_SCALE))
    a, b = make_pair(netns_pool, ("wireguard-go", "wgfastd"), tmp_path, psk=True, outer=4)
    first_ping(a, b.inner4)
    pid = daemon_pid(b)
    results: list[RunResult] = []
    for run in range(FLOOD_RUNS):
        for kind in KINDS:
            r = flood_once(a, b, kind, tmp_path)
            results.append(r)
            print(f"run {run + 1} {kind}: handshake {r.handshake_seconds:.1f} s, python "
                  f"{100 * r.python_cpu:.1f}% of a core, rekeyed {r.rekeyed} "
                  f"{r.rekey_pings}, flood {r.flood}, data plane {r.dataplane}, "
                  f"kernel {r.kernel}, unaccounted {r.unaccounted}")  # fmt: skip
    print("worst per kind over", FLOOD_RUNS, "runs:")
    for kind in KINDS:
        mine = [r for r in results if r.kind == kind]
        print(f"  {kind}: handshake {max(r.handshake_seconds for r in mine):.1f} s "
              f"(all {[round(r.handshake_seconds, 1) for r in mine]}), python thread "
              f"{100 * max(r.python_cpu for r in mine):.1f}% of a core, flood "
              f"{min(r.flood['rate'] for r in mine)}-{max(r.flood['rate'] for r in mine)}/s")
    assert daemon_pid(b) == pid, "wgfastd restarted"
    for r in results:
        assert r.handshake_seconds <= HANDSHAKE_LIMIT, r
        assert r.python_cpu < PYTHON_CPU_LIMIT, r
        assert r.rekeyed, f"no rekey during the flood: {r}"
        assert r.rekey_pings["sent"] - r.rekey_pings["answered"] <= REKEY_PINGS_LOST_MAX, r
        assert r.rekey_pings["longest_unanswered"] < REKEY_LONGEST_GAP, r
        assert r.flood["other_replies"] == 0, r  # never a handshake response to the flood
        assert 0 <= r.unaccounted <= ACCOUNTING_SLACK, r
    # What each kind must have cost, by reason.
    for r in results:
        drops = r.dataplane
        reached = r.flood["sent"] - sum(r.kernel.values())  # what the data plane read
        if r.kind == "bad_mac1":
            assert drops.get("wgfast_drop_bad_mac1", 0) >= reached, r
        if r.kind == "cookie_garbage":
            assert drops.get("wgfast_drop_unknown_handshake_index", 0) >= reached, r
        if r.kind in ("valid_mac1", "mix"):
            assert drops.get("wgfast_drop_cookie_required", 0) > 0, r
            assert r.flood["cookie_replies"] > 0, r
