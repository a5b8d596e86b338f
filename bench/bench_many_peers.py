#!/usr/bin/env python3
"""Many peers: one `wg setconf` of N peers (default 10,000) on wgfastd and on wireguard-go.

A script, not a test (run as root): it creates a network namespace, starts wgfastd and
wireguard-go there (each in the foreground, so the process it starts is the daemon), writes one
configuration of N peers with random public keys, one /32 allowed IP and an endpoint each, brings
each interface up, times `wg setconf` of it on each interface, checks that `wg show dump` lists
every peer, and reports each daemon's VmRSS before and after. The namespace and everything in
it is removed at the end.

The device issue's goal: setconf under 1 s, wgfastd's RSS under half of wireguard-go's
(wireguard-go 0.0.20231211, Debian 13's build: 2.1 s and 262 MB).

    sudo python3 bench/bench_many_peers.py [--peers N] [--wgfastd PATH] [--wireguard-go PATH]
        [--json]

wgfastd is the installed one (`wgfastd` on PATH, or --wgfastd), whatever the working directory.
A daemon that fails shows its reason: each runs with LOG_LEVEL=error and its stderr is kept.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

SOCKET_DIR = Path("/var/run/wireguard")
DEFAULT_WIREGUARD_GO = "/usr/local/bin/wireguard-go-offload"
READY_TIMEOUT = 30.0
SETCONF_TIMEOUT = 300.0


@dataclass
class Result:
    daemon: str
    peers: int
    setconf_seconds: float
    rss_before_kib: int
    rss_after_kib: int
    peers_listed: int


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def write_config(path: Path, peers: int) -> None:
    """[Interface] with a private key and port, then `peers` peers: 10.(i>>16).(i>>8).(i)/32,
    endpoint 192.0.2.x / 198.18.x.y on a port derived from i."""
    lines = ["[Interface]", f"PrivateKey = {_key()}", "ListenPort = 0", ""]
    for i in range(1, peers + 1):
        lines += [
            "[Peer]",
            f"PublicKey = {_key()}",
            f"AllowedIPs = 10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}/32",
            f"Endpoint = 198.18.{(i >> 8) & 255}.{i & 255}:{1024 + i % 60000}",
            "",
        ]
    path.write_text("\n".join(lines))


def vm_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def wait_for_socket(interface: str, proc: subprocess.Popen, errors: Path) -> None:
    path = SOCKET_DIR / f"{interface}.sock"
    deadline = time.monotonic() + READY_TIMEOUT
    while not path.exists():
        if proc.poll() is not None:
            said = errors.read_text(errors="replace").strip()
            raise RuntimeError(f"{interface}: daemon exited with {proc.returncode}: {said}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{interface}: no UAPI socket after {READY_TIMEOUT} s")
        time.sleep(0.05)
    time.sleep(0.2)  # let it settle before the first RSS reading


def run_one(ns: str, name: str, argv: list[str], interface: str, config: Path, peers: int,
            env: dict[str, str]) -> Result:  # fmt: skip
    errors = config.with_name(f"{interface}.stderr")
    with errors.open("wb") as stderr:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv, interface], env=env,
                                stdout=subprocess.DEVNULL, stderr=stderr)  # fmt: skip
    try:
        wait_for_socket(interface, proc, errors)
        # Up first, so that the setconf also loads the running data plane (peers, endpoints,
        # allowed IPs), not only the configuration.
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "up", "dev", interface],
                       check=True)  # fmt: skip
        time.sleep(0.2)
        rss_before = vm_rss_kib(proc.pid)  # ip netns exec execs: proc.pid is the daemon
        start = time.perf_counter()
        subprocess.run(["ip", "netns", "exec", ns, "wg", "setconf", interface, str(config)],
                       check=True, timeout=SETCONF_TIMEOUT)  # fmt: skip
        elapsed = time.perf_counter() - start
        time.sleep(0.5)  # any work the daemon finishes after replying counts in its RSS
        rss_after = vm_rss_kib(proc.pid)
        dump = subprocess.run(["ip", "netns", "exec", ns, "wg", "show", interface, "dump"],
                              check=True, capture_output=True, text=True,
                              timeout=SETCONF_TIMEOUT).stdout  # fmt: skip
        listed = len(dump.splitlines()) - 1
        return Result(name, peers, elapsed, rss_before, rss_after, listed)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=int, default=10_000)
    parser.add_argument("--wgfastd", help="the wgfastd to run (default: wgfastd on PATH)")
    parser.add_argument("--wireguard-go", default=DEFAULT_WIREGUARD_GO)
    parser.add_argument("--skip-wireguard-go", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (network namespace, TUN devices)")
    for tool in ("ip", "wg"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found")

    wgfastd = args.wgfastd or shutil.which("wgfastd")
    if wgfastd is None:
        sys.exit("wgfastd not found: install wgfast (scripts/install.sh) or pass --wgfastd")
    env = dict(os.environ)
    env["LOG_LEVEL"] = "error"
    env["WG_PROCESS_FOREGROUND"] = "1"
    tag = uuid.uuid4().hex[:6]
    ns = f"wgfbench-{tag}"
    daemons = [("wgfastd", [wgfastd, "-f"], f"wgfb{tag}a")]
    if not args.skip_wireguard_go:
        if not Path(args.wireguard_go).exists():
            sys.exit(f"{args.wireguard_go} not found (or pass --skip-wireguard-go)")
        daemons.append(("wireguard-go", [args.wireguard_go, "-f"], f"wgfb{tag}b"))

    results = []
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "many.conf"
            write_config(config, args.peers)
            for name, argv, interface in daemons:
                results.append(run_one(ns, name, argv, interface, config, args.peers, env))
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)

    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        for r in results:
            print(f"{r.daemon:>13}: {r.peers} peers, setconf {r.setconf_seconds:.2f} s, "
                  f"RSS {r.rss_before_kib / 1024:.1f} MiB before, "
                  f"{r.rss_after_kib / 1024:.1f} MiB after ({r.peers_listed} peers listed)")
        if len(results) == 2:
            ours, theirs = results
            print(f"setconf time ratio wgfastd/wireguard-go: "
                  f"{ours.setconf_seconds / theirs.setconf_seconds:.2f}; RSS ratio: "
                  f"{ours.rss_after_kib / theirs.rss_after_kib:.2f}")  # fmt: skip
    bad = [r.daemon for r in results if r.peers_listed != r.peers]
    if bad:
        print(f"peer count mismatch: {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
