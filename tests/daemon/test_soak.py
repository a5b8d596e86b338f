"""Soak: a wgfastd <-> wgfastd tunnel under constant traffic while it rekeys every few seconds.

Both daemons run with the test hook WGFAST_TEST_TIME_SCALE (wgfast.protocol.messages) so
REKEY_AFTER_TIME is REKEY_AFTER_TIME_SCALED seconds; the initiator (the side that knows an
endpoint) rekeys each time its current keypair is that old and it sends, so constant traffic
means a rekey every few seconds. For SOAK_SECONDS (45 by default, in CI: about ten rekeys):

- one TCP connection lives for the whole run: a paced sender streams numbered chunks at
  STREAM_RATE bytes/s, the sink hashes what arrives; both SHA-256 digests and lengths must
  match, the connection must never fail, and the longest pause in arrival is reported;
- a pinger sends an ICMP echo the other way every PING_INTERVAL; every one must be answered;
- every SAMPLE_INTERVAL, for both daemons: open file descriptors (/proc/PID/fd), handshakes and
  keypairs alive (wgfast_handshakes_in_flight: peers whose handshake holds a receiver index in
  the Python protocol core; wgfast_dp_keypairs_live: keypair slots holding keys in the data
  plane; both read from the daemon's get=1 reply, wgfast.daemon.counters), VmRSS, and the
  latest-handshake time.

Asserts: more than MIN_REKEYS rekeys survived, no connection broken, file descriptors,
handshakes in flight and live keypairs flat (bounded, and no higher at the end than at the
start). Peak RSS (VmHWM) is
reported in a one-line summary (run pytest with -s to see it).

A longer run (documented in the README):

    WGFAST_SOAK_SECONDS=3600 pytest tests/daemon/test_soak.py -s
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.netns import NetnsPool
from support.tunnel import Side, daemon_pid, first_ping, make_pair, rss_kib
from wgfast.protocol.messages import TEST_TIME_SCALE_ENV
from wgfast.uapi import SOCKET_DIRECTORY

SOAK_SECONDS = float(os.environ.get("WGFAST_SOAK_SECONDS", "45"))
TIME_SCALE = 0.03  # REKEY_AFTER_TIME 3.6 s, REJECT_AFTER_TIME 5.4 s, REKEY_TIMEOUT 0.15 s
REKEY_AFTER_TIME_SCALED = 120 * TIME_SCALE
# At least 60% of the rekeys the timer allows (20 in 120 s): every one of them must survive.
MIN_REKEYS = int(0.6 * SOAK_SECONDS / REKEY_AFTER_TIME_SCALED)
STREAM_RATE = 2 * 1024 * 1024  # bytes/s through the one TCP connection
STREAM_PORT = 5321
PING_INTERVAL = 1.0
PING_TIMEOUT = 3.0
SAMPLE_INTERVAL = 0.5
WARM_UP = 5.0  # seconds of samples left out of the flatness checks (sessions settling)
KEYPAIRS_PER_PEER = 3  # previous, current, next
FD_SLACK = 2  # transient descriptors (a UAPI connection being served while sampled)
PEAK_RSS_LIMIT_KIB = 256 * 1024

# Receives one TCP stream to its end; prints length, SHA-256 and the longest gap between reads.
SINK = """
import hashlib, json, socket, sys, time
srv = socket.create_server((sys.argv[1], int(sys.argv[2])))
srv.settimeout(30)
print("listening", flush=True)
conn, _ = srv.accept()
conn.settimeout(30)
digest, total, longest, last = hashlib.sha256(), 0, 0.0, time.monotonic()
while chunk := conn.recv(1 << 16):
    now = time.monotonic()
    longest, last = max(longest, now - last), now
    digest.update(chunk)
    total += len(chunk)
print(json.dumps({"bytes": total, "sha256": digest.hexdigest(), "longest_gap": longest}),
      flush=True)
"""

# Streams numbered 64 KiB chunks at argv[3] bytes/s for argv[4] seconds over one connection;
# prints length and SHA-256 of what it sent. Any socket error ends it with a nonzero status.
PACED_STREAM = """
import hashlib, json, os, socket, sys, time
address, port, rate, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
block = os.urandom(64 * 1024 - 8)
digest, total, seq = hashlib.sha256(), 0, 0
with socket.create_connection((address, port), timeout=30) as conn:
    print("connected", flush=True)
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        due = start + total / rate
        if due > time.monotonic():
            time.sleep(due - time.monotonic())
        chunk = seq.to_bytes(8, "big") + block
        conn.sendall(chunk)
        digest.update(chunk)
        total += len(chunk)
        seq += 1
print(json.dumps({"bytes": total, "sha256": digest.hexdigest()}), flush=True)
"""

# ICMP echo every argv[2] s for argv[3] s to argv[1]; an echo unanswered within argv[4] s is lost.
# Prints {"sent", "answered", "lost"} as JSON.
PINGER = """
import json, os, select, socket, struct, sys, time
addr, interval, seconds, timeout = sys.argv[1], *map(float, sys.argv[2:5])
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
ident = os.getpid() & 0xFFFF
def checksum(data):
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF
pending, answered, sent = {}, 0, 0
start = time.monotonic()
next_send = start
while True:
    now = time.monotonic()
    if now - start < seconds and now >= next_send:
        body = struct.pack("!HH", ident, sent & 0xFFFF) + b"wgfast-soak" * 8
        header = struct.pack("!BBH", 8, 0, checksum(struct.pack("!BBH", 8, 0, 0) + body))
        sock.sendto(header + body, (addr, 0))
        pending[sent & 0xFFFF] = now
        sent += 1
        next_send += interval
    pending = {s: t for s, t in pending.items() if now - t < timeout}
    if now - start >= seconds and not pending:
        break
    if select.select([sock], [], [], 0.05)[0]:
        packet = sock.recv(65536)
        icmp = packet[(packet[0] & 15) * 4:]
        if icmp[0] == 0 and icmp[4:6] == struct.pack("!H", ident):
            seq = struct.unpack("!H", icmp[6:8])[0]
            if pending.pop(seq, None) is not None:
                answered += 1
print(json.dumps({"sent": sent, "answered": answered, "lost": sent - answered}), flush=True)
"""


def uapi_get(interface: str) -> dict[str, list[str]]:
    """The daemon's get=1 reply as {key: [values in order]} (the socket is a file: no netns)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(f"{SOCKET_DIRECTORY}/{interface}.sock")
        sock.sendall(b"get=1\n\n")
        reply = b""
        while not reply.endswith(b"\n\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    values: dict[str, list[str]] = {}
    for line in reply.decode().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values.setdefault(key, []).append(value)
    assert values.get("errno") == ["0"], reply
    return values


@dataclass
class Sample:
    at: float
    fds: int
    handshakes: int  # handshakes holding a receiver index (Python)
    dp_keypairs: int  # data-plane slots holding keys
    rss_kib: int
    handshake_sec: int


@dataclass
class DaemonSampler:
    """Samples one wgfastd in the background; `failures` keeps any sampling error."""

    side: Side
    pid: int
    samples: list[Sample] = field(default_factory=list)
    handshakes: set[int] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample(self, at: float) -> None:
        fds = len(os.listdir(f"/proc/{self.pid}/fd"))
        reply = uapi_get(self.side.interface)
        handshake = int(reply.get("last_handshake_time_sec", ["0"])[0])
        if handshake:
            self.handshakes.add(handshake)
        self.samples.append(Sample(
            at, fds, int(reply.get("wgfast_handshakes_in_flight", ["0"])[0]),
            int(reply.get("wgfast_dp_keypairs_live", ["0"])[0]),
            rss_kib(self.pid, "VmRSS"), handshake,
        ))  # fmt: skip

    def run(self, start: float) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL):
            try:
                self.sample(time.monotonic() - start)
            except Exception as exc:  # reported by the test, not lost in the thread
                self.failures.append(repr(exc))

    def stop(self) -> None:
        self._stop.set()

    def steady(self) -> list[Sample]:
        return [s for s in self.samples if s.at >= WARM_UP]


def assert_flat(name: str, series: list[int], bound: int) -> None:
    """Bounded throughout, and the last third peaks no higher than the first third."""
    assert series, f"no samples of {name}"
    assert max(series) <= bound, f"{name} exceeded {bound}: {series}"
    third = max(1, len(series) // 3)
    early, late = series[:third], series[-third:]
    assert max(late) <= max(early), f"{name} grew: early {early}, late {late}"


@pytest.mark.slow
def test_soak_rekeys_under_traffic(netns_pool: NetnsPool, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch):  # fmt: skip
    monkeypatch.setenv(TEST_TIME_SCALE_ENV, str(TIME_SCALE))  # both daemons inherit it
    a, b = make_pair(netns_pool, ("wgfastd", "wgfastd"), tmp_path, psk=True, outer=4)
    first_ping(a, b.inner4)
    samplers = [DaemonSampler(a, daemon_pid(a)), DaemonSampler(b, daemon_pid(b))]
    for sampler in samplers:
        sampler.sample(0.0)  # fails the test at once if the gauges cannot be read

    sink = b.ns.popen(sys.executable, "-c", SINK, b.inner4, str(STREAM_PORT),
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    sender = pinger = None
    threads: list[threading.Thread] = []
    try:
        assert sink.stdout is not None
        assert sink.stdout.readline().strip() == "listening"
        sender = a.ns.popen(sys.executable, "-c", PACED_STREAM, b.inner4, str(STREAM_PORT),
                            str(STREAM_RATE), str(SOAK_SECONDS), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
        assert sender.stdout is not None
        assert sender.stdout.readline().strip() == "connected", sender.stderr
        pinger = b.ns.popen(sys.executable, "-c", PINGER, a.inner4, str(PING_INTERVAL),
                            str(SOAK_SECONDS), str(PING_TIMEOUT), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
        start = time.monotonic()
        threads = [threading.Thread(target=s.run, args=(start,), daemon=True) for s in samplers]
        for thread in threads:
            thread.start()
        sent_out, sent_err = sender.communicate(timeout=SOAK_SECONDS + 60)
        sink_out, sink_err = sink.communicate(timeout=60)
        ping_out, ping_err = pinger.communicate(timeout=PING_TIMEOUT + 30)
        elapsed = time.monotonic() - start
    finally:
        for sampler in samplers:
            sampler.stop()
        for thread in threads:
            thread.join(10)
        for proc in (sink, sender, pinger):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()

    broken = int(sender.returncode != 0 or sink.returncode != 0)
    sent = json.loads(sent_out.strip().splitlines()[-1]) if sender.returncode == 0 else {}
    received = json.loads(sink_out.strip().splitlines()[-1]) if sink.returncode == 0 else {}
    broken |= int(sent.get("sha256") != received.get("sha256") or sent.get("bytes") is None)
    pings = json.loads(ping_out.strip().splitlines()[-1]) if pinger.returncode == 0 else {}
    initiator, responder = samplers
    rekeys = len(initiator.handshakes) - 1  # the first handshake is not a rekey
    peaks = [rss_kib(s.pid, "VmHWM") for s in samplers]
    steady = [s.steady() for s in samplers]
    print(f"soak: {elapsed:.0f} s, rekeys survived {rekeys} (responder saw "
          f"{len(responder.handshakes) - 1}), connections broken {broken}, "
          f"{received.get('bytes', 0) / 1e6:.0f} MB streamed (longest gap "
          f"{received.get('longest_gap', float('nan')):.2f} s), pings "
          f"{pings.get('answered')}/{pings.get('sent')}, fds "
          f"{[sorted({x.fds for x in s}) for s in steady]}, handshakes in flight "
          f"{[sorted({x.handshakes for x in s}) for s in steady]}, keypairs live "
          f"{[sorted({x.dp_keypairs for x in s}) for s in steady]}, RSS "
          f"{[(s[0].rss_kib, s[-1].rss_kib) for s in steady if s]} kB first/last, "
          f"peak RSS {peaks} kB")  # fmt: skip

    assert sender.returncode == 0, f"the TCP connection broke (sender): {sent_err}"
    assert sink.returncode == 0, f"the TCP connection broke (sink): {sink_err}"
    assert received["bytes"] == sent["bytes"] and received["sha256"] == sent["sha256"]
    assert received["bytes"] >= STREAM_RATE * SOAK_SECONDS * 0.9, "the stream fell behind"
    assert broken == 0
    assert pinger.returncode == 0, ping_err
    assert pings["sent"] >= SOAK_SECONDS / PING_INTERVAL - 1 and pings["lost"] == 0, pings
    assert rekeys > MIN_REKEYS, sorted(initiator.handshakes)
    assert len(responder.handshakes) - 1 > MIN_REKEYS, sorted(responder.handshakes)
    for sampler, samples in zip(samplers, steady, strict=True):
        assert not sampler.failures, sampler.failures
        assert len(samples) >= (SOAK_SECONDS - WARM_UP) / SAMPLE_INTERVAL / 2, len(samples)
        fds = [s.fds for s in samples]
        assert_flat(f"{sampler.side.interface} open fds", fds, min(fds) + FD_SLACK)
        assert_flat(f"{sampler.side.interface} handshakes in flight",
                    [s.handshakes for s in samples], 1)  # fmt: skip
        assert_flat(f"{sampler.side.interface} data-plane keypairs",
                    [s.dp_keypairs for s in samples], KEYPAIRS_PER_PEER)  # fmt: skip
        # A keypair in use on both sides the whole time: never zero once the tunnel is up.
        assert min(s.dp_keypairs for s in samples) >= 1
    assert max(peaks) < PEAK_RSS_LIMIT_KIB, peaks
