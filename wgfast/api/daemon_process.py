"""Starting and stopping the userspace daemon behind one interface, by its command.

The API never imports the daemon: it runs `python -m wgfast.daemon INTERFACE` of this very
wgfast (wgfast.process.module_command), or another wireguard-go-compatible command, exactly as
wg-quick runs wireguard-go. Such a command is a launcher: it creates the TUN link and the UAPI
socket, leaves a daemon behind and exits, 0 once the daemon serves, 1 with a reason otherwise.

    process = start_daemon("wg0", netns="blue")      # DaemonStartError with the reason
    ...
    stop_daemon(process)                             # process gone, link and socket too

With `netns` the launcher runs inside that network namespace, so the link is created there and
the daemon lives there (as `ip netns exec NAME COMMAND` would run it, without that command's
/etc/netns and /sys remounts). Creating the link here and moving it would not do: wireguard-go
tears its device down when its link leaves its namespace.

The launcher's output goes to a temporary file, never to a pipe: wireguard-go's daemon keeps the
launcher's stdout and stderr for its log, so a pipe read to its end would wait for the daemon's
exit. The file is read for the reason when the launcher fails.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shlex
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from wgfast.errors import DaemonStartError, LinkError
from wgfast.netns import netns_path, run_in_netns
from wgfast.process import module_command, module_env, process_alive, socket_server_pid
from wgfast.uapi import SOCKET_DIRECTORY, ChangeSet, UAPIClient, socket_path

Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

DEFAULT_DAEMON_MODULE = "wgfast.daemon"
START_TIMEOUT = 30.0  # wgfastd's launcher itself waits up to 30 s for its daemon
SOCKET_TIMEOUT = 5.0  # after a launcher said ready, for its socket and daemon to show
STOP_TIMEOUT = 5.0  # for a daemon to exit after SIGTERM (then SIGKILL)
REASON_LIMIT = 16384  # bytes of launcher output kept as a failure's reason

DaemonCommand = str | Sequence[str]


def daemon_argv(daemon: DaemonCommand | None) -> list[str]:
    """The launcher's argv without the interface: this wgfast's daemon by default, else a
    shell-quoted string ("wireguard-go") or an argv list."""
    if daemon is None:
        return module_command(DEFAULT_DAEMON_MODULE)
    if isinstance(daemon, str):
        return shlex.split(daemon)
    return list(daemon)


@dataclass
class DaemonProcess:
    """A daemon this process started: which interface, where, and the daemon's pid."""

    interface: str
    command: list[str]
    netns: str | None = None
    pid: int | None = None
    socket: str = ""
    stopped: bool = field(default=False, compare=False)

    @property
    def command_text(self) -> str:
        return shlex.join(self.command)


def _launch(argv: list[str], env: dict[str, str], timeout: float) -> tuple[int | None, str]:
    """Run the launcher to its exit; return (exit status or None on timeout, its output)."""
    with tempfile.TemporaryFile() as output:
        try:
            result = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=output,
                                    stderr=output, cwd="/", timeout=timeout, check=False)
            returncode: int | None = result.returncode
        except subprocess.TimeoutExpired:
            returncode = None
        output.seek(0)
        text = output.read(REASON_LIMIT).decode("utf-8", "replace")
    return returncode, text


def start_daemon(interface: str, *, daemon: DaemonCommand | None = None,
                 netns: str | None = None, socket_directory: str = SOCKET_DIRECTORY,
                 timeout: float = START_TIMEOUT) -> DaemonProcess:
    """Start the daemon for `interface` (inside `netns` when given) and wait until it serves
    its UAPI socket. Raises DaemonStartError with the launcher's own words on failure, having
    stopped whatever it started."""
    argv = [*daemon_argv(daemon), interface]
    process = DaemonProcess(interface, argv, netns, socket=socket_path(interface,
                                                                       socket_directory))
    if netns is not None and not os.path.exists(netns_path(netns)):
        raise DaemonStartError(process.command_text, None, f"no network namespace {netns}")
    env = module_env()  # a `python -m wgfast.daemon` command imports this wgfast
    env.pop("WG_PROCESS_FOREGROUND", None)  # the launcher must detach and return when ready
    try:
        # A child forked by a thread that entered the namespace starts inside it.
        returncode, output = run_in_netns(netns, lambda: _launch(argv, env, timeout))
    except FileNotFoundError:
        raise DaemonStartError(process.command_text, None,
                               f"`{argv[0]}` not found") from None
    except PermissionError as exc:
        raise DaemonStartError(process.command_text, None, str(exc)) from None
    if returncode != 0:
        # A launcher that failed leaves nothing behind; one that hung may have: clean up what
        # serves this interface's socket in that namespace (never a daemon found elsewhere).
        if returncode is None:
            _stop_leftover(process)
            output += f"\n(no answer within {timeout:.0f} s)"
        raise DaemonStartError(process.command_text, returncode, output.strip())
    deadline = time.monotonic() + SOCKET_TIMEOUT
    while time.monotonic() < deadline:
        if os.path.exists(process.socket):
            process.pid = socket_server_pid(process.socket)
            if process.pid is not None:
                return process
        time.sleep(0.02)
    _stop_leftover(process)
    raise DaemonStartError(process.command_text, None,
                           f"the launcher exited 0 but nothing serves {process.socket}"
                           + (f"; it said: {output.strip()}" if output.strip() else ""))


def _in_netns(pid: int, netns: str | None) -> bool:
    """Whether process `pid` lives in the namespace `netns` (None: this thread's)."""
    try:
        theirs = os.stat(f"/proc/{pid}/ns/net")
        ours = os.stat(netns_path(netns) if netns else "/proc/thread-self/ns/net")
    except OSError:
        return False
    return (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino)


def _stop_leftover(process: DaemonProcess) -> None:
    pid = socket_server_pid(process.socket) if os.path.exists(process.socket) else None
    if pid is not None and _in_netns(pid, process.netns):
        process.pid = pid
        stop_daemon(process)
    else:
        _delete_link(process)


def _delete_link(process: DaemonProcess) -> None:
    """Delete the interface's link if it exists (in the process's namespace)."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    def delete() -> None:
        with IPRoute() as ipr:
            found = ipr.link_lookup(ifname=process.interface)
            if found:
                with contextlib.suppress(NetlinkError):
                    ipr.link("del", index=found[0])

    with contextlib.suppress(OSError):
        run_in_netns(process.netns, delete)


def wait_stopped(pid: int | None, socket: str, timeout: float) -> bool:
    """Wait (bounded) until `pid` is gone and the socket file removed; True if both."""
    deadline = time.monotonic() + timeout
    while True:
        gone = (pid is None or not process_alive(pid)) and not os.path.exists(socket)
        if gone or time.monotonic() >= deadline:
            return gone
        time.sleep(0.02)


def stop_daemon(process: DaemonProcess, timeout: float = STOP_TIMEOUT) -> None:
    """Stop the daemon: SIGTERM (both wgfastd and wireguard-go then delete their link and
    socket), SIGKILL if it lingers; then make sure the link and the socket file are gone.
    Idempotent."""
    if process.stopped:
        return
    pid = process.pid
    if pid is not None and process_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not wait_stopped(pid, process.socket, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_stopped(pid, "", timeout)
    else:
        # Not known, or already gone: deleting the link ends a daemon that still serves it.
        _delete_link(process)
        wait_stopped(None, process.socket, timeout)
    _delete_link(process)  # a killed daemon's link; gone already after a clean exit
    # A daemon that died without cleaning up leaves its socket file; no one serves it now.
    if os.path.exists(process.socket) and socket_server_pid(process.socket) is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(process.socket)
    process.stopped = True


def _configure_link(process: DaemonProcess, addresses: Sequence[Interface], mtu: int | None,
                    up: bool) -> None:
    """`ip address add` each address, `ip link set mtu MTU up`, in the link's namespace; a
    refusal raises LinkError with the kernel's errno."""
    from pyroute2.netlink.exceptions import NetlinkError

    from wgfast.netlink import Netlink

    net = Netlink(process.netns)
    try:
        index = net.ifindex(process.interface)
        if index is None:
            raise DaemonStartError(process.command_text, None,
                                   f"the daemon serves {process.socket} but there is no link "
                                   f"{process.interface}"
                                   + (f" in network namespace {process.netns}"
                                      if process.netns else ""))
        step = ""
        try:
            for address in addresses:
                step = f"adding address {address}"
                net.ipr.addr("add", index=index, family=(socket.AF_INET if address.version == 4
                                                         else socket.AF_INET6),
                             address=str(address.ip), prefixlen=address.network.prefixlen)
            link: dict[str, object] = {}
            if mtu is not None:
                link["mtu"] = mtu
            if up:
                link["state"] = "up"
            if link:
                step = "setting " + ", ".join(f"{key} {value}" for key, value in link.items())
                net.ipr.link("set", index=index, **link)
        except NetlinkError as exc:
            raise LinkError(exc.code, f"{process.interface}: {step}: "
                                      f"{os.strerror(exc.code)}") from exc
    finally:
        net.close()


def launch_interface(interface: str, *, daemon: DaemonCommand | None = None,
                     netns: str | None = None, addresses: Sequence[Interface] = (),
                     mtu: int | None = None, up: bool = True, changes: ChangeSet | None = None,
                     timeout: float = 10.0) -> DaemonProcess:
    """A ready interface: the daemon started (in `netns`), addresses, MTU and up set through
    rtnetlink, then `changes` applied over UAPI in one set request. Any failure after the
    daemon started stops it (link and socket gone) before the error propagates."""
    if changes is not None:
        changes.validate()  # refuse a bad key or port before starting anything
    process = start_daemon(interface, daemon=daemon, netns=netns)
    try:
        _configure_link(process, addresses, mtu, up)
        if changes is not None:
            UAPIClient(process.socket, timeout).set(changes)
    except BaseException:
        stop_daemon(process)
        raise
    return process
