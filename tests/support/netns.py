"""Network namespaces for tests: created per test, uniquely named, always removed.

    with NetnsPool() as pool:
        a, b = pool.namespace(), pool.namespace()
        pool.veth(a, "10.9.0.1/24", b, "10.9.0.2/24")
        a.run("ping", "-c1", "10.9.0.2")

On exit every process still running inside a namespace the pool created is killed (by pid,
and only those processes), then the namespaces are deleted; veth pairs die with them. Names
carry the pid and a random suffix, so parallel test runs do not collide.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from dataclasses import dataclass, field

from wgfast.bench.testbed import stop_processes

IP = "ip"


def unique_name(prefix: str, length: int = 15) -> str:
    """A name unique across processes; `length` keeps it a valid interface name."""
    suffix = f"{os.getpid() % 100000:x}{uuid.uuid4().hex}"
    return (prefix + suffix)[:length]


@dataclass
class Netns:
    name: str

    def command(self, *argv: str) -> list[str]:
        return [IP, "netns", "exec", self.name, *argv]

    def run(
        self, *argv: str, check: bool = True, timeout: float = 30, **kwargs
    ) -> subprocess.CompletedProcess:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        result = subprocess.run(self.command(*argv), timeout=timeout, **kwargs)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} in {self.name} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )
        return result

    def popen(self, *argv: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.command(*argv), **kwargs)

    def pids(self) -> list[int]:
        out = subprocess.run(
            [IP, "netns", "pids", self.name], capture_output=True, text=True, check=False
        ).stdout
        return [int(p) for p in out.split()]

    def link_exists(self, interface: str) -> bool:
        return self.run(IP, "link", "show", "dev", interface, check=False).returncode == 0


@dataclass
class NetnsPool:
    prefix: str = "wgft"
    namespaces: list[Netns] = field(default_factory=list)

    def namespace(self) -> Netns:
        ns = Netns(unique_name(self.prefix, 30))
        subprocess.run([IP, "netns", "add", ns.name], check=True, capture_output=True)
        self.namespaces.append(ns)
        ns.run(IP, "link", "set", "lo", "up")
        return ns

    def veth(self, a: Netns, a_addr: str, b: Netns, b_addr: str) -> tuple[str, str]:
        """A veth pair between two namespaces, addressed and up; returns the two names."""
        a_if, b_if = unique_name("va"), unique_name("vb")
        subprocess.run(
            [
                IP,
                "link",
                "add",
                a_if,
                "netns",
                a.name,
                "type",
                "veth",
                "peer",
                "name",
                b_if,
                "netns",
                b.name,
            ],
            check=True,
            capture_output=True,
        )
        for ns, ifname, addr in ((a, a_if, a_addr), (b, b_if, b_addr)):
            ns.run(IP, "addr", "add", addr, "dev", ifname)
            ns.run(IP, "link", "set", ifname, "up")
        return a_if, b_if

    def close(self) -> None:
        for ns in reversed(self.namespaces):
            _kill_all(ns)
            subprocess.run([IP, "netns", "del", ns.name], check=False, capture_output=True)
        self.namespaces.clear()

    def __enter__(self) -> NetnsPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _kill_all(ns: Netns) -> None:
    """Stop every process inside `ns` (all were started by the test): TERM, then KILL."""
    stop_processes(ns.pids)


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.02) -> bool:
    """Poll `predicate` until true or `timeout`; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
