#!/usr/bin/env python3
"""Wake-ups of an idle daemon: how often an up interface with no traffic and no timer due runs.

A script, not a test (run as root): for each daemon command (wgfastd by default, plus every
--against, each a wireguard-go-compatible command run in the foreground) and each peer count,
it starts the daemon in a fresh network namespace, configures N peers (random keys, an endpoint
and a /32 each; no persistent keepalive, no traffic, so no timer is due), brings the link up,
lets it settle, then counts the context switches of all the daemon's threads over --seconds
(/proc/PID/task/*/status: voluntary + nonvoluntary). An idle daemon that polls nothing makes
none. IPv6 is off on the interface, or the kernel's own housekeeping (router solicitations, MLD
reports) would be packets into the TUN, which wake any implementation. The namespaces are
removed at the end.

    sudo python3 bench/bench_idle_wakeups.py [--peers 1,10000] [--seconds 60] \
        [--against wireguard-go-offload] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from bench_many_peers import wait_for_socket, write_config

SETTLE_SECONDS = 5.0


@dataclass
class Result:
    daemon: str
    peers: int
    seconds: float
    wakeups: int
    threads: int


def context_switches(pid: int) -> tuple[int, int]:
    """(switches summed over the threads, thread count) of process `pid` now."""
    total = threads = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except FileNotFoundError:
            continue  # a thread that just ended
        threads += 1
        for line in status.splitlines():
            if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                total += int(line.split()[1])
    return total, threads


def measure(name: str, argv: list[str], peers: int, seconds: float, env: dict[str, str],
            config: Path) -> Result:  # fmt: skip
    tag = uuid.uuid4().hex[:6]
    ns, interface = f"wgfidle-{tag}", f"wgi{tag}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv, interface], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for_socket(interface, proc)
        run = ["ip", "netns", "exec", ns]
        subprocess.run([*run, "sysctl", "-q", "-w", f"net.ipv6.conf.{interface}.disable_ipv6=1"],
                       check=True)  # fmt: skip
        subprocess.run([*run, "ip", "link", "set", "up", "dev", interface], check=True)
        subprocess.run([*run, "wg", "setconf", interface, str(config)], check=True, timeout=300)
        time.sleep(SETTLE_SECONDS)  # the set's own aftermath (a report, a GC) is not counted
        before, _ = context_switches(proc.pid)  # ip netns exec execs: proc.pid is the daemon
        time.sleep(seconds)
        after, threads = context_switches(proc.pid)
        return Result(name, peers, seconds, after - before, threads)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        subprocess.run(["ip", "netns", "del", ns], check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", default="1,10000", help="comma-separated peer counts")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--wgfastd", default="wgfastd", help="the wgfastd command to measure")
    parser.add_argument("--against", action="append", default=[],
                        help="another wireguard-go-compatible command (repeatable)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (network namespaces, TUN devices)")
    env = dict(os.environ, LOG_LEVEL="error", WG_PROCESS_FOREGROUND="1")
    daemons = [("wgfastd", [*shlex.split(args.wgfastd), "-f"])]
    daemons += [(Path(shlex.split(c)[0]).name, [*shlex.split(c), "-f"]) for c in args.against]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for peers in (int(p) for p in args.peers.split(",")):
            config = Path(tmp) / f"{peers}.conf"
            write_config(config, peers)
            for name, argv in daemons:
                results.append(measure(name, argv, peers, args.seconds, env, config))
                if not args.json:
                    r = results[-1]
                    print(f"{r.daemon:>22}: {r.peers:>6} peers, {r.wakeups} wake-ups in "
                          f"{r.seconds:.0f} s ({r.threads} threads)", flush=True)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
