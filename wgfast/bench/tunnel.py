"""`wgfast bench` (tunnel mode): how fast a wgfast tunnel is on this machine, and against what.

For every round and every implementation (wgfast first, then each `--against`, interleaved
A B A B so that drift of the machine hits all of them alike) a fresh `Testbed` is built: two
namespaces, a veth pair, and (except for "veth", the bare path) one daemon per side configured
over UAPI. Then:

1. handshake time: one datagram is sent into the tunnel from side a; the time until a's UAPI
   reports a handshake;
2. for every size and both directions, the traffic tool (iperf3 with JSON output, else
   wgfast.bench.traffic) runs for `duration` seconds; around it we read the sender's and the
   receiver's UAPI counters (tx_bytes / rx_bytes of the one peer), the receiving tunnel
   interface's packet counter, and the CPU time of both daemons.

The UAPI counters must cover the bytes the traffic tool reports as received (WireGuard counts
whole encrypted datagrams, so more than the payload): otherwise the traffic did not go through
the tunnel — a misrouted run would be measuring the bare veth — and the run fails loudly.

Rows: one per (implementation, round, size, direction), `stat="round"`, and one median row per
(implementation, size, direction), `stat="median"`, whose `ratio_vs_wgfast` compares its median
throughput with wgfast's.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from wgfast.bench.testbed import WGFAST_COMMAND, Host, Testbed, TestbedError
from wgfast.process import module_command, module_env

log = logging.getLogger(__name__)

DEFAULT_DURATION = 5.0
DEFAULT_REPEAT = 3
DEFAULT_TCP_SIZE = 131072  # iperf3's default TCP write length
DEFAULT_UDP_SIZE = 1392  # fills a 1420-byte tunnel MTU: 1420 - 20 (IPv4) - 8 (UDP)
MAX_UDP_PAYLOAD = 65507  # 65535 - 20 (IPv4) - 8 (UDP)
MAX_TCP_WRITE = 1 << 24
TRAFFIC_PORT = 5211
HANDSHAKE_TIMEOUT = 10.0
HANDSHAKE_POLL_SECONDS = 0.002
TOOL_GRACE_SECONDS = 30.0
PROBE_PORT = 9  # discard

# Sends one datagram into the tunnel; prints CLOCK_MONOTONIC just before (shared by all
# network namespaces, so the parent can time the handshake from it).
PROBE = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
print(time.monotonic(), flush=True)
s.sendto(b"wgfast-bench", (sys.argv[1], int(sys.argv[2])))
"""


# An interval of a traffic report is a point of the plot if it lasted this share of its width.
FULL_INTERVAL_SHARE = 0.9


class BenchError(RuntimeError):
    """The measurement cannot be trusted or could not be made."""


@dataclass(frozen=True)
class Impl:
    """One implementation under test: a daemon command, or None for the bare veth path."""

    name: str
    command: tuple[str, ...] | None

    @classmethod
    def wgfast(cls) -> Impl:
        return cls("wgfast", WGFAST_COMMAND)

    @classmethod
    def parse(cls, text: str) -> Impl:
        """`--against` value: `none` (bare veth) or a wireguard-go-compatible command line."""
        if text.strip() == "none":
            return cls("veth", None)
        argv = shlex.split(text)
        if not argv:
            raise BenchError("--against needs a command (or `none`)")
        path = shutil.which(argv[0])
        if path is None:
            raise BenchError(f"--against {text!r}: command {argv[0]!r} not found")
        return cls(os.path.basename(argv[0]), (path, *argv[1:]))


@dataclass
class Settings:
    impls: list[Impl]
    repeat: int = DEFAULT_REPEAT
    streams: int = 1
    udp: bool = False
    sizes: list[int] | None = None
    duration: float = DEFAULT_DURATION
    tool: str = ""  # "iperf3" or "builtin"; empty: iperf3 when installed

    def __post_init__(self) -> None:
        if not self.tool:
            self.tool = "iperf3" if shutil.which("iperf3") else "builtin"
        if not self.sizes:
            self.sizes = [DEFAULT_UDP_SIZE if self.udp else DEFAULT_TCP_SIZE]
        largest = MAX_UDP_PAYLOAD if self.udp else MAX_TCP_WRITE
        if any(not 1 <= size <= largest for size in self.sizes):
            raise BenchError(f"sizes must be between 1 and {largest} bytes for {self.proto}")
        if self.duration <= 0:
            raise BenchError("--duration must be positive")

    @property
    def proto(self) -> str:
        return "udp" if self.udp else "tcp"


@dataclass
class Traffic:
    """What the traffic tool reported for one direction."""

    tool: str
    received_bytes: int
    seconds: float
    interval_s: float
    interval_gbit_s: list[float]


@dataclass
class Row:
    impl: str
    stat: str
    round: int | None
    proto: str
    size: int
    streams: int
    direction: str
    gbit_s: float
    pps: float
    tunnel_rx_bytes: int | None
    tunnel_tx_bytes: int | None
    tool: str = ""
    tool_bytes: int = 0
    seconds: float = 0.0
    cpu_sender_pct: float | None = None
    cpu_receiver_pct: float | None = None
    handshake_ms: float | None = None
    counters_before: dict | None = None
    counters_after: dict | None = None
    interval_s: float = 0.0
    interval_gbit_s: list[float] = field(default_factory=list)
    ratio_vs_wgfast: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def key(self) -> tuple:
        return (self.impl, self.proto, self.size, self.streams, self.direction)


TrafficRunner = Callable[[Settings, Host, Host, str, int], Traffic]


# --- traffic tools ------------------------------------------------------------------------------


def run_iperf3(settings: Settings, sender: Host, receiver: Host, address: str,
               size: int) -> Traffic:
    server = receiver.popen("iperf3", "-s", "-1", "-J", "-B", address, "-p", str(TRAFFIC_PORT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        argv = ["iperf3", "-c", address, "-p", str(TRAFFIC_PORT), "-J",
                "-t", str(settings.duration), "-P", str(settings.streams), "-l", str(size)]
        if settings.udp:
            argv += ["-u", "-b", "0"]
        report: dict = {}
        for _attempt in range(50):  # the server needs a moment before it listens
            result = sender.run(*argv, check=False,
                                timeout=settings.duration + TOOL_GRACE_SECONDS)
            report = json.loads(result.stdout or "{}")
            if result.returncode == 0 and "error" not in report:
                break
            time.sleep(0.1)
        else:
            raise BenchError(f"iperf3 failed: {report.get('error', result.stderr.strip())}")
        server_out, _ = server.communicate(timeout=TOOL_GRACE_SECONDS)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    received = report["end"]["sum_received"]
    return Traffic("iperf3", int(received["bytes"]), float(received["seconds"]), 1.0,
                   iperf3_intervals(server_out, report, settings.duration))


def iperf3_intervals(server_out: str, client_report: dict, duration: float) -> list[float]:
    """Gbit/s of each full second the server saw (the client's if the server said nothing),
    at most `duration` of them. iperf3's trailing interval is whatever was left after the last
    full second (often a few milliseconds, at a meaningless rate): not a point of the plot."""
    try:
        sums = [interval["sum"] for interval in json.loads(server_out)["intervals"]]
    except (ValueError, KeyError):
        sums = [interval["sum"] for interval in client_report.get("intervals", [])]
    full = [s["bits_per_second"] / 1e9 for s in sums
            if s.get("seconds", 1.0) >= FULL_INTERVAL_SHARE]
    return full[:int(duration)]


def run_builtin(settings: Settings, sender: Host, receiver: Host, address: str,
                size: int) -> Traffic:
    tool = module_command("wgfast.bench.traffic")
    common = ["--proto", settings.proto, "--port", str(TRAFFIC_PORT),
              "--streams", str(settings.streams), "--duration", str(settings.duration)]
    env = module_env()
    server = receiver.popen(*tool, "recv", "--bind", address, *common, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise BenchError(f"built-in receiver did not start: {server.stderr.read()}")
        sender.run(*tool, "send", "--to", address, "--size", str(size), *common, env=env,
                   timeout=settings.duration + TOOL_GRACE_SECONDS)
        out, err = server.communicate(timeout=TOOL_GRACE_SECONDS)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    try:
        report = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BenchError(f"built-in receiver failed: {err.strip()}") from None
    width = report["interval_s"]
    full = int(float(report["seconds"]) / width)  # the last slice may be partial: not a point
    points = [b * 8 / width / 1e9 for b in report["interval_bytes"][:full]]
    return Traffic("builtin", int(report["bytes"]), float(report["seconds"]), width,
                   points[:int(settings.duration / width)])


def traffic_runner(settings: Settings) -> TrafficRunner:
    return run_iperf3 if settings.tool == "iperf3" else run_builtin


# --- one testbed ---------------------------------------------------------------------------------


def measure_handshake(bed: Testbed) -> float:
    """Seconds from the first datagram sent into a's tunnel until a's UAPI shows a handshake."""
    result = bed.a.run(sys.executable, "-c", PROBE, bed.b.inner, str(PROBE_PORT))
    sent_at = float(result.stdout.split()[0])
    deadline = time.monotonic() + HANDSHAKE_TIMEOUT
    while time.monotonic() < deadline:
        peers = bed.status(bed.a).peers
        if peers and peers[0].last_handshake_time_sec:
            return time.monotonic() - sent_at
        time.sleep(HANDSHAKE_POLL_SECONDS)
    raise BenchError(f"no handshake within {HANDSHAKE_TIMEOUT:.0f} s "
                     f"({shlex.join(bed.tunnel_command or ())})")


def _peer_counters(bed: Testbed, host: Host) -> dict[str, int]:
    peers = bed.status(host).peers
    if len(peers) != 1:
        raise BenchError(f"{host.tunnel}: expected one peer over UAPI, found {len(peers)}")
    return {"rx_bytes": peers[0].rx_bytes, "tx_bytes": peers[0].tx_bytes}


def measure_direction(bed: Testbed, impl: Impl, settings: Settings, run_traffic: TrafficRunner,
                      sender: Host, receiver: Host, size: int, round_no: int,
                      handshake_s: float | None) -> Row:
    tunnel = impl.command is not None
    address = receiver.inner if tunnel else receiver.outer
    receive_link = receiver.tunnel if tunnel else receiver.veth
    before: dict = {}
    if tunnel:
        before = {"sender": _peer_counters(bed, sender), "receiver": _peer_counters(bed, receiver)}
    link_before = receiver.link_stats(receive_link)
    cpu_before = (bed.daemon_cpu_seconds(sender), bed.daemon_cpu_seconds(receiver))
    started = time.monotonic()
    traffic = run_traffic(settings, sender, receiver, address, size)
    wall = time.monotonic() - started
    cpu_after = (bed.daemon_cpu_seconds(sender), bed.daemon_cpu_seconds(receiver))
    link_after = receiver.link_stats(receive_link)
    seconds = traffic.seconds if traffic.seconds > 0 else wall
    direction = f"{'a' if sender is bed.a else 'b'}->{'a' if receiver is bed.a else 'b'}"
    row = Row(impl=impl.name, stat="round", round=round_no, proto=settings.proto, size=size,
              streams=settings.streams, direction=direction,
              gbit_s=traffic.received_bytes * 8 / seconds / 1e9,
              pps=(link_after["rx_packets"] - link_before["rx_packets"]) / seconds,
              tunnel_rx_bytes=None, tunnel_tx_bytes=None, tool=traffic.tool,
              tool_bytes=traffic.received_bytes, seconds=seconds,
              handshake_ms=None if handshake_s is None else handshake_s * 1e3,
              interval_s=traffic.interval_s, interval_gbit_s=traffic.interval_gbit_s)
    if tunnel:
        row.cpu_sender_pct = (cpu_after[0] - cpu_before[0]) / wall * 100
        row.cpu_receiver_pct = (cpu_after[1] - cpu_before[1]) / wall * 100
        after = {"sender": _peer_counters(bed, sender), "receiver": _peer_counters(bed, receiver)}
        row.counters_before, row.counters_after = before, after
        row.tunnel_tx_bytes = after["sender"]["tx_bytes"] - before["sender"]["tx_bytes"]
        row.tunnel_rx_bytes = after["receiver"]["rx_bytes"] - before["receiver"]["rx_bytes"]
        check_counters(row)
    return row


def check_counters(row: Row) -> None:
    """The tunnel's own counters must account for every byte the traffic tool received."""
    if row.tool_bytes <= 0:
        raise BenchError(f"{row.impl} {row.direction}: the traffic tool received nothing")
    short = [f"{name}={value}" for name, value in
             (("sender tx_bytes", row.tunnel_tx_bytes), ("receiver rx_bytes", row.tunnel_rx_bytes))
             if value is None or value < row.tool_bytes]
    if short:
        raise BenchError(
            f"COUNTER CHECK FAILED for {row.impl} {row.direction}: {row.tool} received "
            f"{row.tool_bytes} bytes but the tunnel's UAPI counters moved only "
            f"{', '.join(short)} (before {row.counters_before}, after {row.counters_after}): "
            "the traffic did not cross the tunnel")


def measure_impl_round(impl: Impl, settings: Settings, round_no: int,
                       run_traffic: TrafficRunner | None = None,
                       progress: Callable[[str], None] = lambda msg: None) -> list[Row]:
    run_traffic = run_traffic or traffic_runner(settings)
    rows = []
    with Testbed() as bed:
        try:
            handshake_s = None
            if impl.command is not None:
                progress(f"{impl.name} round {round_no}: starting {shlex.join(impl.command)}")
                bed.start_tunnel(impl.command)
                handshake_s = measure_handshake(bed)
            assert settings.sizes is not None
            for size in settings.sizes:
                for sender, receiver in ((bed.a, bed.b), (bed.b, bed.a)):
                    progress(f"{impl.name} round {round_no}: {settings.proto} {size} B x "
                             f"{settings.streams} {'a->b' if sender is bed.a else 'b->a'} "
                             f"for {settings.duration:g} s")
                    row = measure_direction(bed, impl, settings, run_traffic, sender, receiver,
                                            size, round_no, handshake_s)
                    progress(f"    {row.gbit_s:.2f} Gbit/s, {row.pps / 1e3:.0f} kpps")
                    rows.append(row)
        except BenchError as exc:  # a daemon may say why (start-up failures say it already)
            tails = bed.daemon_log_tails()
            if tails:
                raise BenchError(f"{exc}\n{tails}") from exc
            raise
    return rows


# --- the whole run ------------------------------------------------------------------------------


def _median(values: Sequence[float | int | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def medians(rounds: list[Row]) -> list[Row]:
    groups: dict[tuple, list[Row]] = {}
    for row in rounds:
        groups.setdefault(row.key, []).append(row)
    out = []
    for key, rows in groups.items():
        first = rows[0]
        rx, tx = _median([r.tunnel_rx_bytes for r in rows]), _median([r.tunnel_tx_bytes
                                                                       for r in rows])
        out.append(Row(
            impl=first.impl, stat="median", round=None, proto=first.proto, size=first.size,
            streams=first.streams, direction=first.direction,
            gbit_s=statistics.median(r.gbit_s for r in rows),
            pps=statistics.median(r.pps for r in rows),
            tunnel_rx_bytes=None if rx is None else int(rx),
            tunnel_tx_bytes=None if tx is None else int(tx),
            tool=first.tool, tool_bytes=int(statistics.median(r.tool_bytes for r in rows)),
            seconds=statistics.median(r.seconds for r in rows),
            cpu_sender_pct=_median([r.cpu_sender_pct for r in rows]),
            cpu_receiver_pct=_median([r.cpu_receiver_pct for r in rows]),
            handshake_ms=_median([r.handshake_ms for r in rows])))
        del key
    baseline = {r.key[1:]: r.gbit_s for r in out if r.impl == "wgfast"}
    for row in out:
        base = baseline.get(row.key[1:])
        if base:
            row.ratio_vs_wgfast = row.gbit_s / base
    return out


def run(settings: Settings, run_traffic: TrafficRunner | None = None,
        progress: Callable[[str], None] = lambda msg: None) -> list[Row]:
    """Every round of every implementation, interleaved; round rows then median rows."""
    rounds: list[Row] = []
    for round_no in range(1, settings.repeat + 1):
        for impl in settings.impls:
            try:
                rounds += measure_impl_round(impl, settings, round_no, run_traffic, progress)
            except (TestbedError, BenchError) as exc:
                raise BenchError(f"{impl.name} round {round_no}: {exc}") from exc
    return rounds + medians(rounds)


# --- output ---------------------------------------------------------------------------------------


def _cell(value: float | None, spec: str, unit: str = "") -> str:
    return "-" if value is None else format(value, spec) + unit


def format_table(rows: list[Row], settings: Settings) -> str:
    lines = [f"Tunnel throughput: {settings.proto}, {settings.streams} stream(s), "
             f"{settings.duration:g} s per direction, median of {settings.repeat} round(s), "
             f"traffic by {settings.tool}",
             f"  {'impl':<22} {'size':>6} {'dir':>4} {'Gbit/s':>7} {'kpps':>7} "
             f"{'CPU send':>8} {'CPU recv':>8} {'handshake':>9} {'vs wgfast':>9}"]
    for r in rows:
        if r.stat != "median":
            continue
        lines.append(
            f"  {r.impl:<22} {r.size:>6} {r.direction:>4} {r.gbit_s:>7.2f} {r.pps / 1e3:>7.1f} "
            f"{_cell(r.cpu_sender_pct, '.0f', '%'):>8} {_cell(r.cpu_receiver_pct, '.0f', '%'):>8} "
            f"{_cell(r.handshake_ms, '.1f', ' ms'):>9} {_cell(r.ratio_vs_wgfast, '.2f', 'x'):>9}")
    lines.append("  CPU: each side's daemon process, % of one core (veth: no daemon). kpps: "
                 "packets the receiving interface counted\n  (offloading implementations hand "
                 "it GRO-merged packets). Tunnel UAPI counters checked against the bytes "
                 "received.")
    return "\n".join(lines)


def plot(rows: list[Row], path: str) -> None:
    """Throughput over time (round 1 of each implementation and direction, first size) and,
    with several sizes, median throughput over size. Needs matplotlib (the `plot` extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [r for r in rows if r.stat == "round"]
    med = [r for r in rows if r.stat == "median"]
    sizes = sorted({r.size for r in med})
    fig, axes = plt.subplots(1, 2 if len(sizes) > 1 else 1, figsize=(12 if len(sizes) > 1 else 7,
                                                                     4.5), squeeze=False)
    ax = axes[0][0]
    for r in rounds:
        if r.round == 1 and r.size == sizes[0] and r.interval_gbit_s:
            times = [(i + 1) * r.interval_s for i in range(len(r.interval_gbit_s))]
            ax.plot(times, r.interval_gbit_s, marker=".", label=f"{r.impl} {r.direction}")
    ax.set_xlabel("seconds")
    ax.set_ylabel("Gbit/s")
    ax.set_title(f"throughput over time ({sizes[0]} B, round 1)")
    ax.legend()
    if len(sizes) > 1:
        ax = axes[0][1]
        for key in sorted({(r.impl, r.direction) for r in med}):
            points = sorted((r.size, r.gbit_s) for r in med if (r.impl, r.direction) == key)
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o",
                    label=f"{key[0]} {key[1]}")
        ax.set_xscale("log")
        ax.set_xlabel("write / datagram size (bytes)")
        ax.set_ylabel("Gbit/s (median)")
        ax.set_title("throughput over size")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
