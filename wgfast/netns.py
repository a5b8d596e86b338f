"""Network namespaces: where `ip netns` keeps them, and running work inside one.

A namespace is a property of a thread, and what a thread opens while inside (sockets, netlink
handles, /proc/sys/net files) stays in that namespace for good. So `run_in_netns` starts a
short-lived thread that enters the namespace, does the work and ends, while the caller's thread
stays where it was. Shared by `wgfast up --netns` (routes, sysctls and nftables inside the
namespace), the daemon (following its link into another namespace) and the API. Namespaces are
told apart by the identity of their /proc files (`NetnsId`), which `wgfast up` records.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

NETNS_DIRECTORY = "/var/run/netns"  # where `ip netns add NAME` keeps its namespaces
CLONE_NEWNET = 0x40000000

T = TypeVar("T")


def netns_path(netns: str) -> str:
    """The file of a namespace given by name (`ip netns add NAME`) or by path."""
    return netns if os.sep in netns else os.path.join(NETNS_DIRECTORY, netns)


def netns_exists(netns: str) -> bool:
    return os.path.exists(netns_path(netns))


def _enter(namespace_fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(namespace_fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def run_in_netns_fd(namespace_fd: int, work: Callable[[], T], name: str = "netns") -> T:
    """Run `work` on a thread that entered the namespace of `namespace_fd`; return its result
    or raise its exception here. The fd stays the caller's."""
    outcome: dict[str, Any] = {}

    def enter_and_work() -> None:
        try:
            _enter(namespace_fd)
            outcome["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            outcome["error"] = exc

    thread = threading.Thread(target=enter_and_work, name=f"wgfast-{name}")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def run_in_netns(netns: str | None, work: Callable[[], T]) -> T:
    """Run `work` inside the namespace `netns` (a name or a path; None: right here)."""
    if netns is None:
        return work()
    fd = os.open(netns_path(netns), os.O_RDONLY | os.O_CLOEXEC)
    try:
        return run_in_netns_fd(fd, work, f"netns-{netns}")
    finally:
        os.close(fd)


NetnsId = tuple[int, int]  # (device, inode) of a namespace's file: equal for the same namespace


def _id_of(path: str) -> NetnsId | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def current_netns() -> NetnsId:
    """This thread's network namespace."""
    found = _id_of("/proc/thread-self/ns/net")
    assert found is not None
    return found


def describe_netns(netns: NetnsId) -> str:
    """A person's name for a namespace: its `ip netns` name, "the initial network namespace",
    or that of a process inside it."""
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir(NETNS_DIRECTORY)):
            if _id_of(os.path.join(NETNS_DIRECTORY, name)) == netns:
                return f"network namespace {name}"
    if _id_of("/proc/1/ns/net") == netns:
        return "the initial network namespace"
    pid = _process_in(netns)
    return f"the network namespace of process {pid}" if pid else "a network namespace now gone"


def netns_alive(netns: NetnsId) -> bool:
    """Whether the namespace still exists: named by `ip netns`, or holding a process."""
    with contextlib.suppress(OSError):
        for name in os.listdir(NETNS_DIRECTORY):
            if _id_of(os.path.join(NETNS_DIRECTORY, name)) == netns:
                return True
    return _process_in(netns) is not None


def _process_in(netns: NetnsId) -> int | None:
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _id_of(f"/proc/{entry}/ns/net") == netns:
            return int(entry)
    return None
