"""Two WireGuard ends in two network namespaces, and traffic through the tunnel between them.

Two namespaces joined by a veth pair (the "outer" network, IPv4 and IPv6); in each, one WireGuard
implementation (wgfastd, wireguard-go, or wireguard-go built with offloads) configured with the
stock `wg`. Only the initiator is given the other's endpoint, so the roles are fixed and the
responder must learn its peer's address from the handshake. Traffic helpers: ping (ICMP over a
raw socket), a TCP transfer checked by SHA-256, iperf3; and `wg show` and /proc readings of an
end (dump_peer, daemon_pid, rss_kib). Every wait is bounded.

Used by the daemon tests (tests/daemon/test_interop.py and the tests built on its pairs).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from support import needs_cmd, needs_tun
from support.daemons import REPO
from support.netns import Netns, NetnsPool, unique_name
from wgfast.process import socket_owner_pid
from wgfast.uapi import socket_path

WIREGUARD_GO = "/usr/bin/wireguard-go"
WIREGUARD_GO_OFFLOAD = "/usr/local/bin/wireguard-go-offload"

OUTER4 = ("10.231.0.1", "10.231.0.2")
OUTER6 = ("fd00:231::1", "fd00:231::2")
INNER4 = ("10.232.0.1", "10.232.0.2")
INNER6 = ("fd00:232::1", "fd00:232::2")
LISTEN_PORTS = (51821, 51822)

TRANSFER_BYTES = 20 * 1024 * 1024
TRANSFER_PORT = 5301
IPERF_PORT = 5302
IPERF_SECONDS = 2

# Receives one TCP stream to its end and prints its length and SHA-256.
SINK = """
import hashlib, socket, sys
srv = socket.create_server((sys.argv[1], int(sys.argv[2])), family=socket.AF_INET6
                           if ":" in sys.argv[1] else socket.AF_INET)
srv.settimeout(30)
print("listening", flush=True)
conn, _ = srv.accept()
conn.settimeout(30)
digest, total = hashlib.sha256(), 0
while chunk := conn.recv(1 << 16):
    digest.update(chunk)
    total += len(chunk)
print(total, digest.hexdigest(), flush=True)
"""

# ICMP echo over a raw socket (no dependency on the ping package): argv address count timeout.
# Exits 0 when every request got its reply within the timeout.
PING = """
import os, select, socket, struct, sys, time
addr, count, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
v6 = ":" in addr
sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW,
                     socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
ident = os.getpid() & 0xFFFF
def checksum(data):
    data += b"\\0" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF
for seq in range(count):
    body = struct.pack("!HH", ident, seq) + b"wgfast-ping" * 8
    kind = 128 if v6 else 8
    header = struct.pack("!BBH", kind, 0, 0)
    if not v6:  # the kernel fills in the ICMPv6 checksum, not the ICMPv4 one
        header = struct.pack("!BBH", kind, 0, checksum(header + body))
    sock.sendto(header + body, (addr, 0))
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            sys.exit(f"no reply to echo {seq} from {addr}")
        packet = sock.recv(65536)
        icmp = packet if v6 else packet[(packet[0] & 15) * 4:]
        if icmp[0] == (129 if v6 else 0) and icmp[4:8] == struct.pack("!HH", ident, seq):
            break
    time.sleep(0.1)
"""

# Sends a file over one TCP connection.
SOURCE = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30) as conn, \\
        open(sys.argv[3], "rb") as f:
    conn.sendfile(f)
"""


@dataclass
class Side:
    ns: Netns
    kind: str  # "wgfastd", "wireguard-go" or "wireguard-go-offload"
    interface: str
    private_key: str
    public_key: str
    port: int
    outer4: str
    outer6: str
    inner4: str
    inner6: str

    def wg(self, *args: str) -> str:
        return self.ns.run("wg", *args).stdout


def genkey(ns: Netns) -> tuple[str, str]:
    """A new (private, public) key pair in base64, made by `wg` in `ns`."""
    private = ns.run("wg", "genkey").stdout.strip()
    public = ns.run("wg", "pubkey", input=private + "\n").stdout.strip()
    return private, public


def launch(side: Side, log_dir: Path, prefix: tuple[str, ...] = ()) -> None:
    """Start `side`'s daemon in its namespace, behind the command `prefix` (e.g. an `unshare`
    into a time namespace); wgfastd logs verbosely to log_dir/INTERFACE.log."""
    env = dict(os.environ)
    env.pop("WG_PROCESS_FOREGROUND", None)
    if side.kind == "wgfastd":
        env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
        env["LOG_LEVEL"] = "verbose"
        env["WGFAST_LOG_FILE"] = str(log_dir / f"{side.interface}.log")
        argv = [*prefix, sys.executable, "-m", "wgfast.daemon", side.interface]
        side.ns.run(*argv, env=env, timeout=30)
        return
    # wireguard-go's daemon keeps the launcher's stdout/stderr: do not wait on a pipe.
    env["LOG_LEVEL"] = "silent"
    binary = WIREGUARD_GO if side.kind == "wireguard-go" else WIREGUARD_GO_OFFLOAD
    side.ns.run(*prefix, binary, side.interface, env=env, timeout=30, capture_output=False,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def make_pair(
    pool: NetnsPool, kinds: tuple[str, str], tmp_path: Path, *, psk: bool, outer: int,
    launch_prefix: tuple[str, ...] = (),
) -> tuple[Side, Side]:
    """Two configured, running ends; sides[0] is the initiator (it alone knows an endpoint).
    `launch_prefix` goes before each daemon's command (see launch)."""
    needs_tun()
    needs_cmd("wg")
    for kind in kinds:
        if kind == "wireguard-go":
            needs_cmd(WIREGUARD_GO)
        elif kind == "wireguard-go-offload":
            needs_cmd(WIREGUARD_GO_OFFLOAD)
    a_ns, b_ns = pool.namespace(), pool.namespace()
    a_if, b_if = pool.veth(a_ns, OUTER4[0] + "/24", b_ns, OUTER4[1] + "/24")
    for ns, ifname, addr in ((a_ns, a_if, OUTER6[0]), (b_ns, b_if, OUTER6[1])):
        ns.run("ip", "-6", "addr", "add", addr + "/64", "dev", ifname, "nodad")
    sides = []
    for i, (ns, kind) in enumerate(((a_ns, kinds[0]), (b_ns, kinds[1]))):
        private, public = genkey(ns)
        side = Side(ns, kind, unique_name("wgi"), private, public, LISTEN_PORTS[i],
                    OUTER4[i], OUTER6[i], INNER4[i], INNER6[i])  # fmt: skip
        launch(side, tmp_path, launch_prefix)
        sides.append(side)
    initiator, responder = sides
    psk_file = tmp_path / "psk"
    if psk:
        psk_file.write_text(initiator.ns.run("wg", "genpsk").stdout)
    for me, other in ((initiator, responder), (responder, initiator)):
        key_file = tmp_path / f"{me.interface}.key"
        key_file.write_text(me.private_key + "\n")
        args = ["set", me.interface, "private-key", str(key_file), "listen-port", str(me.port),
                "peer", other.public_key,
                "allowed-ips", f"{other.inner4}/32,{other.inner6}/128"]  # fmt: skip
        if psk:
            args += ["preshared-key", str(psk_file)]
        if me is initiator:
            host = other.outer4 if outer == 4 else f"[{other.outer6}]"
            args += ["endpoint", f"{host}:{other.port}"]
        me.wg(*args)
        me.ns.run("ip", "addr", "add", me.inner4 + "/24", "dev", me.interface)
        me.ns.run("ip", "-6", "addr", "add", me.inner6 + "/64", "dev", me.interface, "nodad")
        me.ns.run("ip", "link", "set", "mtu", "1420", "up", "dev", me.interface)
    return initiator, responder


def ping(src: Side, dst_addr: str, count: int = 3, check: bool = True):
    return src.ns.run(sys.executable, "-c", PING, dst_addr, str(count), "2", check=check,
                      timeout=30)  # fmt: skip


def first_ping(src: Side, dst_addr: str) -> None:
    """The first packets wait for the handshake: retry for a bounded few seconds."""
    deadline = time.monotonic() + 10
    while True:
        result = ping(src, dst_addr, count=1, check=False)
        if result.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"no reply from {dst_addr} through the tunnel:\n{result.stderr}")


def tcp_transfer(sender: Side, receiver: Side, address: str, tmp_path: Path) -> None:
    payload = os.urandom(TRANSFER_BYTES)
    data_file = tmp_path / "payload.bin"
    data_file.write_bytes(payload)
    sink = receiver.ns.popen(
        sys.executable, "-c", SINK, address, str(TRANSFER_PORT),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert sink.stdout is not None
        assert sink.stdout.readline().strip() == "listening"
        sender.ns.run(sys.executable, "-c", SOURCE, address, str(TRANSFER_PORT), str(data_file),
                      timeout=60)  # fmt: skip
        out, err = sink.communicate(timeout=60)
    finally:
        if sink.poll() is None:
            sink.kill()
            sink.wait()
    length, digest = out.split()
    assert int(length) == TRANSFER_BYTES, err
    assert digest == hashlib.sha256(payload).hexdigest()


def iperf3_end(client: Side, server: Side, address: str, *extra: str) -> dict:
    """One iperf3 run of IPERF_SECONDS from client to server's address (`extra`: more client
    options, e.g. -R or -u); its report's "end" section, which has a "sum_received"."""
    needs_cmd("iperf3")
    srv = server.ns.popen("iperf3", "-s", "-1", "-B", address, "-p", str(IPERF_PORT),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        args = ["iperf3", "-c", address, "-p", str(IPERF_PORT), "-t", str(IPERF_SECONDS), "-J",
                *extra]
        report: dict = {}
        for _ in range(20):  # the server needs a moment to listen
            result = client.ns.run(*args, check=False, timeout=30)
            report = json.loads(result.stdout or "{}")
            if result.returncode == 0 and "error" not in report:
                break
            time.sleep(0.1)
        assert "sum_received" in report.get("end", {}), report.get("error", report)
        return report["end"]
    finally:
        _reap(srv)


def iperf(client: Side, server: Side, address: str, reverse: bool = False) -> float:
    """One TCP stream for IPERF_SECONDS; returns the receiver's Gbit/s."""
    received = iperf3_end(client, server, address, *(["-R"] if reverse else []))["sum_received"]
    assert received["bytes"] > 0
    return received["bits_per_second"] / 1e9


def _reap(proc: subprocess.Popen) -> None:
    """Wait briefly for a one-shot server to finish, then kill it."""
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def dump_peer(side: Side) -> list[str]:
    lines = side.wg("show", side.interface, "dump").splitlines()
    assert len(lines) == 2, lines
    return lines[1].split("\t")


def daemon_pid(side: Side) -> int:
    """The pid of the daemon serving `side`'s UAPI socket."""
    pid = socket_owner_pid(socket_path(side.interface))
    if pid is None:
        raise AssertionError(f"no daemon serves {side.interface}'s UAPI socket")
    return pid


def rss_kib(pid: int, field: str) -> int:
    """A memory figure of `pid` in KiB from /proc/PID/status (`field`: VmRSS, VmHWM, ...)."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    assert match, status
    return int(match.group(1))
