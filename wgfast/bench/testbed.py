"""A throwaway two-host network for benchmarks: two network namespaces joined by a veth pair,
optionally one WireGuard interface in each, and everything removed again.

    with Testbed() as bed:                      # namespaces + veth, addressed and up
        bed.start_tunnel(WGFAST_COMMAND)        # a daemon per side, configured over UAPI
        bed.a.run("iperf3", "-c", bed.b.inner)

The two WireGuard interfaces get different names because the UAPI socket directory
(/var/run/wireguard) is shared by every namespace. Teardown (on exit, exception or Ctrl-C)
stops every process inside the namespaces (TERM, then KILL; all of them were started here),
removes the UAPI sockets, and deletes the namespaces, which takes the veth pair and any TUN
interface with them. `leftovers()` reports anything still present, for tests.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from wgfast import keys
from wgfast.process import module_command, module_env
from wgfast.uapi import ChangeSet, DeviceStatus, Endpoint, PeerChange, UAPIClient, socket_path
from wgfast.uapi import parse_allowed_ip as _prefix

log = logging.getLogger(__name__)

IP = "ip"
OUTER = ("10.243.0.1", "10.243.0.2")
INNER = ("10.244.0.1", "10.244.0.2")
OUTER_PREFIX_LEN = 24
INNER_PREFIX_LEN = 24
LISTEN_PORTS = (51871, 51872)
TUNNEL_MTU = 1420  # the wg-quick default on a 1500-byte outer link
DAEMON_START_TIMEOUT = 15.0
STOP_GRACE_SECONDS = 2.0
NAME_PREFIX = "wgfb"  # every namespace and interface this module makes starts with it

# `wgfast` as a daemon command: the running interpreter and this very package (see
# module_command), so a bench from the source tree measures the source tree's compiled data plane
# and an installed one the installed package, whatever the working directory.
WGFAST_COMMAND = tuple(module_command("wgfast.daemon"))
DAEMON_LOG_LEVEL = "error"  # what a failed round shows of each daemon's log
LOG_TAIL_LINES = 20


class TestbedError(RuntimeError):
    """The testbed could not be built (a command failed, a daemon did not come up)."""

    __test__ = False  # not a pytest class despite the name


def requirements_missing() -> list[str]:
    """What this machine lacks for a tunnel testbed, in words; empty when all is there."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (network namespaces, veth and TUN devices need CAP_NET_ADMIN)")
    if not os.path.exists("/dev/net/tun"):
        missing.append("/dev/net/tun (the tun kernel module)")
    if shutil.which(IP) is None:
        missing.append("the `ip` command (iproute2)")
    return missing


def unique_suffix() -> str:
    return f"{os.getpid() % 0x1000:03x}{uuid.uuid4().hex[:6]}"


@dataclass
class Host:
    """One namespace: its outer (veth) and inner (tunnel) interfaces and addresses."""

    namespace: str
    veth: str
    outer: str
    inner: str
    tunnel: str  # the WireGuard interface's name (exists only after start_tunnel)
    port: int
    private_key: bytes = field(default_factory=keys.generate_private_key, repr=False)

    @property
    def public_key(self) -> bytes:
        return keys.public_key(self.private_key)

    def command(self, *argv: str) -> list[str]:
        return [IP, "netns", "exec", self.namespace, *argv]

    def run(self, *argv: str, timeout: float = 30.0, check: bool = True,
            **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        result = subprocess.run(self.command(*argv), timeout=timeout, check=False, **kwargs)
        if check and result.returncode != 0:
            raise TestbedError(f"`{shlex.join(argv)}` in {self.namespace} failed "
                               f"({result.returncode}): {(result.stderr or '').strip()}")
        return result

    def popen(self, *argv: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.command(*argv), **kwargs)

    def pids(self) -> list[int]:
        out = subprocess.run([IP, "netns", "pids", self.namespace], capture_output=True,
                             text=True, check=False).stdout
        return [int(p) for p in out.split()]

    def uapi(self) -> UAPIClient:
        return UAPIClient.for_interface(self.tunnel, timeout=5.0)

    def link_stats(self, interface: str) -> dict[str, int]:
        """The kernel's 64-bit counters of an interface in this namespace (rx_/tx_ bytes and
        packets)."""
        text = subprocess.run([IP, "-n", self.namespace, "-s", "-o", "link", "show", "dev",
                               interface], capture_output=True, text=True, check=True).stdout
        return _parse_link_stats(text)


def _parse_link_stats(text: str) -> dict[str, int]:
    # `ip -s -o link` folds the tables onto one line with "\" separators:
    #  ... RX: bytes packets errors ...\    123 4 0 ...\    TX: bytes packets ...\    567 8 ...
    parts = [p.split() for p in text.split("\\")]
    stats: dict[str, int] = {}
    for i, words in enumerate(parts[:-1]):
        if words and words[0] in ("RX:", "TX:"):
            values = parts[i + 1]
            prefix = "rx" if words[0] == "RX:" else "tx"
            stats[f"{prefix}_bytes"] = int(values[0])
            stats[f"{prefix}_packets"] = int(values[1])
    if len(stats) != 4:
        raise TestbedError(f"cannot read interface counters from {text!r}")
    return stats


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop_processes(list_pids: Callable[[], list[int]],
                   grace: float = STOP_GRACE_SECONDS) -> list[int]:
    """Stops every process `list_pids()` names (a namespace's): TERM, then KILL after `grace`
    seconds, then waits (bounded) until they are really gone, so the namespace, kept alive by
    its last process, goes away with `ip netns del`. Returns any that survived."""
    pids = list_pids()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        time.sleep(0.05)
        pids = [p for p in list_pids() if _alive(p)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    # SIGKILL is delivered asynchronously.
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        time.sleep(0.02)
        pids = [p for p in pids if _alive(p)]
    return pids


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Testbed:
    """Two namespaces `a` and `b` joined by a veth pair; see the module docstring."""

    __test__ = False

    def __init__(self) -> None:
        suffix = unique_suffix()
        self.suffix = suffix
        self.a = Host(f"{NAME_PREFIX}-a-{suffix}", f"{NAME_PREFIX}va{suffix}", OUTER[0],
                      INNER[0], f"{NAME_PREFIX}a{suffix}", LISTEN_PORTS[0])
        self.b = Host(f"{NAME_PREFIX}-b-{suffix}", f"{NAME_PREFIX}vb{suffix}", OUTER[1],
                      INNER[1], f"{NAME_PREFIX}b{suffix}", LISTEN_PORTS[1])
        self._created: list[Host] = []
        self.tunnel_command: tuple[str, ...] | None = None
        self.daemon_pids: dict[str, list[int]] = {}
        self._log_dir: str | None = None  # each daemon's output and log, until close()

    @property
    def hosts(self) -> tuple[Host, Host]:
        return self.a, self.b

    # --- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> Testbed:
        try:
            self.build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def build(self) -> None:
        for host in self.hosts:
            _run_checked([IP, "netns", "add", host.namespace])
            self._created.append(host)
            host.run(IP, "link", "set", "lo", "up")
        _run_checked([IP, "link", "add", self.a.veth, "netns", self.a.namespace, "type", "veth",
                      "peer", "name", self.b.veth, "netns", self.b.namespace])
        for host in self.hosts:
            host.run(IP, "addr", "add", f"{host.outer}/{OUTER_PREFIX_LEN}", "dev", host.veth)
            host.run(IP, "link", "set", host.veth, "up")
        log.info("testbed %s: namespaces %s and %s, veth %s <-> %s", self.suffix,
                 self.a.namespace, self.b.namespace, self.a.veth, self.b.veth)

    def close(self) -> None:
        """Remove everything; safe to call twice, and not interruptible by a second Ctrl-C."""
        previous = signal.getsignal(signal.SIGINT)
        in_main = _in_main_thread()
        if in_main:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for host in reversed(self._created):
                self._stop_processes(host)
            for host in self.hosts:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(socket_path(host.tunnel))
            for host in reversed(self._created):
                subprocess.run([IP, "netns", "del", host.namespace], capture_output=True,
                               check=False)
            self._created.clear()
            if self._log_dir is not None:
                shutil.rmtree(self._log_dir, ignore_errors=True)
                self._log_dir = None
        finally:
            if in_main:
                signal.signal(signal.SIGINT, previous)

    @staticmethod
    def _stop_processes(host: Host) -> None:
        survivors = stop_processes(host.pids)
        if survivors:
            log.warning("processes %s in %s survived SIGKILL", survivors, host.namespace)

    def leftovers(self) -> list[str]:
        """Anything of this testbed still present: namespaces, interfaces, sockets, processes."""
        found = []
        namespaces = subprocess.run([IP, "netns", "list"], capture_output=True, text=True,
                                    check=False).stdout
        links = subprocess.run([IP, "-o", "link", "show"], capture_output=True, text=True,
                               check=False).stdout
        for host in self.hosts:
            if host.namespace in namespaces:
                found.append(f"namespace {host.namespace}")
            for name in (host.veth, host.tunnel):
                if f" {name}:" in links or f" {name}@" in links:
                    found.append(f"interface {name} (in the root namespace)")
            if os.path.exists(socket_path(host.tunnel)):
                found.append(f"UAPI socket {socket_path(host.tunnel)}")
        for pids in self.daemon_pids.values():
            found += [f"process {pid}" for pid in pids if _alive(pid)]
        return found

    # --- the tunnel -----------------------------------------------------------------------------

    def start_tunnel(self, command: tuple[str, ...]) -> None:
        """Start `command INTERFACE` (wgfastd or anything wireguard-go-compatible) in both
        namespaces and configure the pair over UAPI: a knows b's endpoint, b learns a's from
        the handshake. The tunnel interfaces get INNER addresses and come up."""
        self.tunnel_command = command
        for host in self.hosts:
            self._start_daemon(host, command)
        for me, other in ((self.a, self.b), (self.b, self.a)):
            peer = PeerChange(other.public_key, allowed_ips=[_prefix(f"{other.inner}/32")])
            if me is self.a:
                peer.endpoint = Endpoint.parse(f"{other.outer}:{other.port}")
            me.uapi().set(ChangeSet(private_key=me.private_key, listen_port=me.port,
                                    replace_peers=True, peers=[peer]))
            me.run(IP, "addr", "add", f"{me.inner}/{INNER_PREFIX_LEN}", "dev", me.tunnel)
            me.run(IP, "link", "set", "dev", me.tunnel, "mtu", str(TUNNEL_MTU), "up")

    def _start_daemon(self, host: Host, command: tuple[str, ...]) -> None:
        """Start one daemon; its output and (wgfastd's) log go to files that a failure shows."""
        if self._log_dir is None:
            self._log_dir = tempfile.mkdtemp(prefix=f"{NAME_PREFIX}-logs-")
        is_wgfast = tuple(command) == WGFAST_COMMAND
        env = module_env() if is_wgfast else dict(os.environ)
        env.pop("WG_PROCESS_FOREGROUND", None)
        env["LOG_LEVEL"] = DAEMON_LOG_LEVEL
        if is_wgfast:
            env["WGFAST_LOG_FILE"] = self._log_path(host, "log")
        before = set(host.pids())
        # A daemon keeps the launcher's stdout/stderr open (wireguard-go's logs there): a file,
        # never a pipe that would not end.
        with open(self._log_path(host, "out"), "wb") as output:
            result = subprocess.run(host.command(*command, host.tunnel), env=env,
                                    stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                                    timeout=DAEMON_START_TIMEOUT, check=False)
        if result.returncode != 0:
            raise TestbedError(f"`{shlex.join(command)} {host.tunnel}` exited with status "
                               f"{result.returncode} in {host.namespace}"
                               f"\n{self.daemon_log_tails()}")
        path = socket_path(host.tunnel)
        deadline = time.monotonic() + DAEMON_START_TIMEOUT
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                raise TestbedError(f"{shlex.join(command)}: no UAPI socket {path} appeared"
                                   f"\n{self.daemon_log_tails()}")
            time.sleep(0.02)
        self.daemon_pids[host.namespace] = sorted(set(host.pids()) - before)

    def _log_path(self, host: Host, kind: str) -> str:
        assert self._log_dir is not None
        return os.path.join(self._log_dir, f"{host.tunnel}.{kind}")

    def daemon_log_tails(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines each daemon printed or logged, labelled; empty if there were none."""
        parts = []
        for host in self.hosts:
            for kind in ("out", "log"):
                if self._log_dir is None or not os.path.exists(self._log_path(host, kind)):
                    continue
                with open(self._log_path(host, kind), errors="replace") as f:
                    tail = f.read().splitlines()[-lines:]
                if tail:
                    what = "output" if kind == "out" else "log"
                    parts.append(f"--- {host.tunnel} {what} (last {len(tail)} lines) ---")
                    parts += tail
        return "\n".join(parts)

    def status(self, host: Host) -> DeviceStatus:
        return host.uapi().get()

    def daemon_cpu_seconds(self, host: Host) -> float:
        return sum(process_cpu_seconds(pid) for pid in self.daemon_pids.get(host.namespace, []))


def _run_checked(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise TestbedError(f"`{shlex.join(argv)}` failed ({result.returncode}): "
                           f"{result.stderr.strip()}")


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
