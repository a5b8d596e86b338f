"""wgfastd: the userspace WireGuard daemon, a drop-in for `wireguard-go INTERFACE`.

The launching process starts a foreground child in a new session and waits on a readiness
pipe: it exits 0 only once the child reports that the TUN interface and the UAPI socket exist
(wg-quick runs `wg setconf` right after), and otherwise exits 1 with the child's reason on
stderr. Until it is ready the child's stderr is a pipe the launcher reads, so that a failure
before the child can report one (an import error, a crash) still reaches the launcher's stderr;
once ready the child's output goes where its log goes. The child names itself `wgfastd
INTERFACE` (wgfast.daemon.proctitle) and serves until SIGTERM/SIGINT, until its interface is
deleted (a read error on the TUN fd) or until its UAPI socket file is removed; then it deletes
both and exits.

The interface is wgfast.daemon.interface.Interface: UDP sockets, the compiled data plane on its
own thread, and the handshakes and timers on this process's asyncio loop.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time

from wgfast import __version__
from wgfast.daemon.interface import THREADS_ENV_VAR, Interface
from wgfast.daemon.offload import ENV_VAR as OFFLOAD_ENV_VAR
from wgfast.daemon.proctitle import set_process_name
from wgfast.daemon.tun import DEFAULT_MTU, TunDevice, adopt_tun, check_interface_name, create_tun
from wgfast.daemon.uapi_server import SocketRemovalWatcher, UAPIServer, open_uapi_socket
from wgfast.process import module_command, module_env
from wgfast.protocol.messages import TEST_TIME_SCALE, TEST_TIME_SCALE_ENV
from wgfast.uapi import socket_path

log = logging.getLogger("wgfastd")

ENV_FOREGROUND = "WG_PROCESS_FOREGROUND"
ENV_TUN_FD = "WG_TUN_FD"
ENV_UAPI_FD = "WG_UAPI_FD"
ENV_LOG_LEVEL = "LOG_LEVEL"
ENV_LOG_FILE = "WGFAST_LOG_FILE"
ENV_JOURNAL = "JOURNAL_STREAM"  # set by systemd when stderr is the journal
ENV_READY_FD = "WGFAST_READY_FD"  # private: launcher -> daemon readiness pipe
ENV_OUTPUT_FD = "WGFAST_OUTPUT_FD"  # private: where the daemon's stderr goes once it is ready
REPORT_TAIL_BYTES = 16384  # of the child's output before it was ready, kept for a failure

READY_TIMEOUT_SECONDS = 30.0
EXIT_OK = 0
EXIT_SETUP_FAILED = 1
EXIT_FAILED = 1  # as wireguard-go: any error ends the process with 1

HELP_EPILOG = f"""\
environment:
  {ENV_FOREGROUND}=1    same as --foreground
  {ENV_LOG_LEVEL}=verbose|error|silent   log detail (default: error)
  {ENV_LOG_FILE}=PATH   append log lines to PATH
  {ENV_TUN_FD}, {ENV_UAPI_FD}   use an already open TUN device / listening UAPI socket
  {OFFLOAD_ENV_VAR}=on|off|LIST   offloads: on (default), off, or a comma list of tun
      (TUN TSO/USO with a virtio-net header), gso (UDP GSO on send), gro (UDP GRO on receive)
  {THREADS_ENV_VAR}=1|2   the data plane's threads: 2 (default) receives on its own thread,
      1 runs both directions in one loop
  {TEST_TIME_SCALE_ENV}=S   test hook, off by default: multiply the protocol's timers
      (REKEY_AFTER_TIME, REJECT_AFTER_TIME, REKEY_TIMEOUT, KEEPALIVE_TIMEOUT...) by S in (0, 1]

logging: in the foreground wgfastd logs to stderr. Daemonized, it logs to {ENV_LOG_FILE} when
that is set; otherwise to the launching process's stdout/stderr when {ENV_LOG_LEVEL} is set to
verbose or error (as wireguard-go does; the launcher's output then stays open for the daemon's
lifetime) or when that stderr is the systemd journal ({ENV_JOURNAL} set, as under
wgfast@.service); and nowhere otherwise. A failure before it is ready always reaches the
launcher's stderr.
"""


def _log_level() -> int | None:
    """LOG_LEVEL -> logging level; None means silent. wireguard-go defaults to errors only."""
    value = os.environ.get(ENV_LOG_LEVEL, "")
    if value in ("verbose", "debug"):
        return logging.DEBUG
    if value == "silent":
        return None
    return logging.ERROR


def _setup_logging(interface: str) -> None:
    level = _log_level()
    root = logging.getLogger()
    root.handlers.clear()
    if level is None:
        root.addHandler(logging.NullHandler())
        root.setLevel(logging.CRITICAL + 1)
        return
    log_file = os.environ.get(ENV_LOG_FILE)
    handler: logging.Handler = (
        logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(logging.Formatter(f"%(levelname)s: ({interface}) %(asctime)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)


class Readiness:
    """The child's end of the readiness pipe (a no-op in a plain foreground run)."""

    def __init__(self) -> None:
        fd_text = os.environ.pop(ENV_READY_FD, "")
        self.fd = int(fd_text) if fd_text.isdigit() else -1
        if self.fd >= 0:
            os.set_inheritable(self.fd, False)

    def _send(self, message: str) -> None:
        if self.fd < 0:
            return
        try:
            os.write(self.fd, message.encode()[:4000] + b"\n")
        except OSError:
            pass
        os.close(self.fd)
        self.fd = -1

    def ready(self, interface: str) -> None:
        _switch_output()  # before the report: the launcher stops reading at it
        self._send(f"ready {interface}")

    def failed(self, reason: str) -> None:
        log.error("%s", reason)
        self._send(f"error {reason}")


def _switch_output() -> None:
    """From the launcher's pipe to where the log goes once the daemon runs (ENV_OUTPUT_FD)."""
    fd_text = os.environ.pop(ENV_OUTPUT_FD, "")
    if not fd_text.isdigit():
        return
    fd = int(fd_text)
    sys.stderr.flush()
    os.dup2(fd, 2)
    os.close(fd)


def _keeps_output() -> bool:
    """Whether a daemonized wgfastd logs to the launcher's stdout/stderr (see HELP_EPILOG)."""
    if os.environ.get(ENV_LOG_FILE) or _log_level() is None:
        return False
    return ENV_LOG_LEVEL in os.environ or ENV_JOURNAL in os.environ


def _open_tun(interface: str) -> TunDevice:
    fd_text = os.environ.pop(ENV_TUN_FD, "")
    if fd_text:
        return adopt_tun(int(fd_text), DEFAULT_MTU)
    return create_tun(interface, DEFAULT_MTU)


def _open_uapi(interface: str) -> tuple[socket.socket, str]:
    path = socket_path(interface)
    fd_text = os.environ.pop(ENV_UAPI_FD, "")
    if fd_text:
        listener = socket.socket(fileno=int(fd_text))
        listener.setblocking(False)
        return listener, path
    return open_uapi_socket(path), path


async def run_device(interface: str, readiness: Readiness) -> int:
    """Run the daemon in this process until told to stop; return the exit status."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    failure: list[str] = []

    def request_stop(reason: str) -> None:
        if not stopping.is_set():
            log.info("shutting down: %s", reason)
            stopping.set()

    def fail(reason: str) -> None:
        """The interface cannot go on: stop, removing the link and the socket, and exit
        non-zero with the reason in the log."""
        if not stopping.is_set():
            log.error("shutting down: %s", reason)
            failure.append(reason)
            stopping.set()

    # Before anything another process can see (the link, the socket file): a SIGTERM that
    # follows the socket's appearance at once must stop the daemon cleanly, not kill it.
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, request_stop, f"received {signum.name}")
    try:
        tun = _open_tun(interface)
    except (OSError, ValueError) as exc:
        readiness.failed(f"failed to create TUN device {interface}: {exc}")
        return EXIT_SETUP_FAILED
    try:
        device = Interface(tun, request_stop, fail)
    except (OSError, ValueError) as exc:
        tun.close()
        readiness.failed(f"failed to start the data plane for {tun.name}: {exc}")
        return EXIT_SETUP_FAILED
    try:
        listener, path = _open_uapi(tun.name)
    except (OSError, ValueError) as exc:
        device.stop()
        tun.close()
        readiness.failed(f"failed to open UAPI socket for {tun.name}: {exc}")
        return EXIT_SETUP_FAILED
    server = UAPIServer(device, listener, path)
    watcher = SocketRemovalWatcher(path, lambda: request_stop("UAPI socket file removed"))
    try:
        device.start()  # before the server: a set must find the data plane running
        await server.start()
        watcher.start()
        log.info("device %s started", tun.name)
        if TEST_TIME_SCALE != 1.0:
            log.warning("test hook %s=%g: protocol timers shortened", TEST_TIME_SCALE_ENV,
                        TEST_TIME_SCALE)  # fmt: skip
        readiness.ready(tun.name)
        await stopping.wait()
    except Exception as exc:
        readiness.failed(f"failed to start {tun.name}: {exc}")
        return EXIT_SETUP_FAILED
    finally:
        watcher.stop()
        device.stop()
        await server.close()
        tun.close()  # the last fd: the kernel deletes the interface
    return EXIT_FAILED if failure else EXIT_OK


def _launch_daemon(interface: str) -> int:
    """Start the foreground child in its own session and wait for its readiness report."""
    ready_read, ready_write = os.pipe()
    early_read, early_write = os.pipe()  # the child's stderr until it is ready
    keep = _keeps_output()
    output = os.dup(2) if keep else os.open(os.devnull, os.O_WRONLY)
    env = module_env()
    env[ENV_FOREGROUND] = "1"
    env[ENV_READY_FD] = str(ready_write)
    env[ENV_OUTPUT_FD] = str(output)
    try:
        child = subprocess.Popen(
            [*module_command("wgfast.daemon"), interface],
            env=env,
            pass_fds=(ready_write, output),
            stdin=subprocess.DEVNULL,
            stdout=None if keep else subprocess.DEVNULL,
            stderr=early_write,
            start_new_session=True,
            cwd="/",
        )
    finally:
        for fd in (ready_write, early_write, output):
            os.close(fd)
    try:
        message, early = _read_report(ready_read, early_read, READY_TIMEOUT_SECONDS)
    finally:
        os.close(ready_read)
        os.close(early_read)
    if message.startswith("ready "):
        return EXIT_OK
    if message.startswith("error "):
        reason = message[len("error ") :]
    elif message:
        reason = f"unexpected report from daemon: {message!r}"
    else:
        reason = "daemon did not report readiness"
    try:
        status = child.wait(timeout=5)
        reason += f" (daemon exited with status {status})"
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        reason += " (daemon killed)"
    print(f"wgfastd: {reason}", file=sys.stderr)
    if early and not message.startswith("error "):
        # It could not say why: what it wrote is the reason (a traceback, say).
        print(early.rstrip(), file=sys.stderr)
    return EXIT_SETUP_FAILED


def _read_report(ready: int, early: int, timeout: float) -> tuple[str, str]:
    """The child's one-line report (empty if it closed the pipe without one) and the tail of
    what it wrote to stderr meanwhile."""
    deadline = time.monotonic() + timeout
    data, output = b"", b""
    watched = [ready, early]
    while b"\n" not in data and ready in watched:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        readable, _, _ = select.select(watched, [], [], remaining)
        for fd in readable:
            chunk = os.read(fd, 4096)
            if not chunk:
                watched.remove(fd)
            elif fd == ready:
                data += chunk
            else:
                output = (output + chunk)[-REPORT_TAIL_BYTES:]
    if b"\n" not in data and early in watched:  # it died: take what it wrote last
        while select.select([early], [], [], 0.5)[0] and (chunk := os.read(early, 4096)):
            output = (output + chunk)[-REPORT_TAIL_BYTES:]
    return data.decode("utf-8", "replace").strip(), output.decode("utf-8", "replace")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wgfastd",
        description="Userspace WireGuard daemon (drop-in for wireguard-go).",
        epilog=HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-f", "--foreground", action="store_true", help="stay in the foreground")
    parser.add_argument("--version", action="version", version=f"wgfastd v{__version__}")
    parser.add_argument("interface", metavar="INTERFACE", help="interface name, e.g. wg0")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        check_interface_name(args.interface)
    except ValueError as exc:
        print(f"wgfastd: {exc}", file=sys.stderr)
        return EXIT_SETUP_FAILED
    foreground = args.foreground or os.environ.get(ENV_FOREGROUND) == "1"
    if not foreground:
        return _launch_daemon(args.interface)
    set_process_name("wgfastd", args.interface)
    readiness = Readiness()
    _setup_logging(args.interface)
    try:
        return asyncio.run(run_device(args.interface, readiness))
    except BaseException as exc:  # report even unexpected failures to the launcher
        readiness.failed(f"wgfastd crashed: {exc!r}")
        raise

