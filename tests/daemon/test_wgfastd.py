"""wgfastd as a process: launch/readiness, UAPI over its socket with the stock `wg`, wg-quick,
shutdown paths. Runs as root inside network namespaces the tests create and remove.

The daemon's device is the real interface (wgfast.daemon.interface.Interface, data plane and
all); these tests cover its launch, UAPI and lifecycle, while traffic through the tunnel is
covered by test_interop.py and the other tunnel tests beside it.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from support import needs_cmd, needs_tun
from support.daemons import REPO
from support.netns import Netns, NetnsPool, unique_name, wait_for
from wgfast.process import process_alive, socket_owner_pid
from wgfast.uapi import (
    ERRNO_INVALID,
    ERRNO_IO,
    ERRNO_PROTOCOL,
    UAPIClient,
    UAPIError,
    socket_path,
)


def wgfastd_env(log_file: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("WG_PROCESS_FOREGROUND", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    if log_file is not None:
        env["LOG_LEVEL"] = "verbose"
        env["WGFAST_LOG_FILE"] = str(log_file)
    return env


class Daemon:
    """One launched wgfastd inside a namespace."""

    def __init__(self, ns: Netns, interface: str, log_file: Path) -> None:
        self.ns = ns
        self.interface = interface
        self.log_file = log_file
        self.path = socket_path(interface)

    def launch(self) -> subprocess.CompletedProcess:
        return self.ns.run(
            sys.executable, "-m", "wgfast.daemon", self.interface,
            check=False, env=wgfastd_env(self.log_file),
        )  # fmt: skip

    def pid(self) -> int:
        pid = socket_owner_pid(self.path)
        if pid is None:
            raise AssertionError(f"no wgfastd process serves {self.path}")
        return pid

    def wg(self, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        return self.ns.run("wg", *args, check=check, **kw)

    def log(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else "(no log)"

    def gone(self, pid: int) -> bool:
        return (
            not process_alive(pid)
            and not os.path.exists(self.path)
            and not self.ns.link_exists(self.interface)
        )


@pytest.fixture
def daemon(netns_pool: NetnsPool, tmp_path: Path):
    needs_tun()
    needs_cmd("wg")
    ns = netns_pool.namespace()
    d = Daemon(ns, unique_name("wgf"), tmp_path / "wgfastd.log")
    result = d.launch()
    assert result.returncode == 0, f"{result.stderr}\n{d.log()}"
    yield d
    # The pool kills anything left in the namespace; the socket file is outside it.
    if os.path.exists(d.path):
        try:
            os.kill(d.pid(), signal.SIGTERM)
        except AssertionError:
            pass
        wait_for(lambda: not os.path.exists(d.path), 5)
        if os.path.exists(d.path):
            os.unlink(d.path)


def test_launch_returns_once_interface_and_socket_exist(daemon: Daemon):
    # Checked right after the launcher returned: no waiting.
    st = os.stat(daemon.path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(daemon.path)).st_mode) == 0o755
    link = daemon.ns.run("ip", "-d", "link", "show", "dev", daemon.interface).stdout
    assert "mtu 1420" in link and "tun" in link
    assert daemon.wg("show", daemon.interface).stdout.startswith(f"interface: {daemon.interface}")
    assert daemon.pid() != os.getpid()


CONFIG = textwrap.dedent(
    """\
    [Interface]
    PrivateKey = {priv}
    ListenPort = 51820
    FwMark = 0x1234

    [Peer]
    PublicKey = {pub_a}
    PresharedKey = {psk}
    AllowedIPs = 10.0.0.0/24, fd00::/64
    Endpoint = 192.0.2.1:51820
    PersistentKeepalive = 25

    [Peer]
    PublicKey = {pub_b}
    AllowedIPs = 10.1.0.0/16
    Endpoint = [2001:db8::1]:443
    """
)


def _keys(daemon: Daemon) -> dict[str, str]:
    def genkey() -> str:
        return daemon.wg("genkey").stdout.strip()

    def pubkey(private: str) -> str:
        return daemon.wg("pubkey", input=private + "\n").stdout.strip()

    return {
        "priv": genkey(),
        "pub_a": pubkey(genkey()),
        "pub_b": pubkey(genkey()),
        "psk": daemon.wg("genpsk").stdout.strip(),
    }


def _normalise(conf: str) -> list[str]:
    return sorted(line.replace(" ", "") for line in conf.splitlines() if line.strip())


def test_wg_setconf_show_showconf_syncconf(daemon: Daemon, tmp_path: Path):
    keys = _keys(daemon)
    conf = tmp_path / "wg.conf"
    conf.write_text(CONFIG.format(**keys))
    daemon.wg("setconf", daemon.interface, str(conf))

    shown = daemon.wg("showconf", daemon.interface).stdout
    assert _normalise(shown) == _normalise(conf.read_text())

    dump = daemon.wg("show", daemon.interface, "dump").stdout.splitlines()
    assert dump[0].split("\t")[2:4] == ["51820", "0x1234"]
    peers = {line.split("\t")[0]: line.split("\t") for line in dump[1:]}
    assert peers[keys["pub_a"]][2:5] == ["192.0.2.1:51820", "10.0.0.0/24,fd00::/64", "0"]
    assert peers[keys["pub_a"]][7] == "25"

    # syncconf to a config without peer B removes exactly B.
    conf.write_text(CONFIG.format(**keys).split("\n\n[Peer]\nPublicKey = " + keys["pub_b"])[0])
    daemon.wg("syncconf", daemon.interface, str(conf))
    assert daemon.wg("show", daemon.interface, "peers").stdout.split() == [keys["pub_a"]]

    daemon.wg("set", daemon.interface, "peer", keys["pub_a"], "allowed-ips", "10.5.0.0/16")
    assert daemon.wg("show", daemon.interface, "allowed-ips").stdout.split() == [
        keys["pub_a"],
        "10.5.0.0/16",
    ]
    daemon.wg("set", daemon.interface, "peer", keys["pub_a"], "remove")
    assert daemon.wg("show", daemon.interface, "peers").stdout.strip() == ""


def _exchange(path: str, request: bytes, half_close: bool = False) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        reply = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            reply += chunk
            if reply.endswith(b"\n\n") and not half_close:
                break
        return reply


def test_uapi_errors_leave_configuration_unchanged(daemon: Daemon):
    client = UAPIClient(daemon.path)
    good = "private_key=" + "11" * 32 + "\nlisten_port=1234\npublic_key=" + "22" * 32
    client.set(good + "\nallowed_ip=10.0.0.0/8\n")
    before = client.get()

    bad_requests = [
        ("listen_port=2\nbogus=1\n", ERRNO_INVALID),
        ("listen_port=2\npublic_key=" + "33" * 32 + "\nallowed_ip=10.0.0.0/33\n", ERRNO_INVALID),
        ("public_key=" + "33" * 32 + "\nendpoint=nohost:1\n", ERRNO_INVALID),
        ("private_key=" + "gg" * 32 + "\n", ERRNO_INVALID),
        ("listen_port\n", ERRNO_PROTOCOL),
    ]
    for body, expected in bad_requests:
        with pytest.raises(UAPIError) as err:
            client.set(body)
        assert err.value.errno == expected, body
        assert client.get() == before, f"{body!r} changed the configuration"

    # Truncated: EOF before the blank line -> refused, nothing applied.
    reply = _exchange(daemon.path, b"set=1\nlisten_port=9\n", half_close=True)
    assert reply == f"errno={ERRNO_PROTOCOL}\n\n".encode()
    # A line over the limit -> EIO and the connection closes.
    reply = _exchange(daemon.path, b"set=1\nallowed_ip=" + b"1" * 100_000 + b"\n\n")
    assert reply == f"errno={ERRNO_IO}\n\n".encode()
    # Unknown operation -> connection closed without a reply.
    assert _exchange(daemon.path, b"hello=1\n\n", half_close=True) == b""
    # Binary junk in a value.
    reply = _exchange(daemon.path, b"set=1\nlisten_port=\xff\xfe\n\n")
    assert reply == f"errno={ERRNO_INVALID}\n\n".encode()
    assert client.get() == before
    assert process_alive(daemon.pid())


def test_many_requests_on_one_connection(daemon: Daemon):
    requests = b"get=1\n\n" + b"set=1\nlisten_port=4321\n\n" + b"get=1\n\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(daemon.path)
        sock.sendall(requests)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply == b"errno=0\n\n" + b"errno=0\n\n" + b"listen_port=4321\nerrno=0\n\n"


def test_sigterm_removes_interface_and_socket(daemon: Daemon):
    pid = daemon.pid()
    os.kill(pid, signal.SIGTERM)
    assert wait_for(lambda: daemon.gone(pid), 5), daemon.log()


def test_deleting_the_interface_ends_the_daemon(daemon: Daemon):
    pid = daemon.pid()
    daemon.ns.run("ip", "link", "del", "dev", daemon.interface)
    assert wait_for(lambda: daemon.gone(pid), 5), daemon.log()
    assert "interface removed" in daemon.log()


def test_removing_the_socket_ends_the_daemon(daemon: Daemon):
    pid = daemon.pid()
    os.unlink(daemon.path)
    assert wait_for(lambda: daemon.gone(pid), 5), daemon.log()
    assert "socket file removed" in daemon.log()


def test_interface_moves_to_another_netns_and_daemon_stays(daemon: Daemon, netns_pool: NetnsPool):
    other = netns_pool.namespace()
    pid = daemon.pid()
    daemon.ns.run("ip", "link", "set", "dev", daemon.interface, "netns", other.name)
    assert other.link_exists(daemon.interface)
    assert process_alive(pid)
    UAPIClient(daemon.path).set("listen_port=777\n")
    assert UAPIClient(daemon.path).get().listen_port == 777
    # Deleting it in its new namespace still ends the daemon.
    other.run("ip", "link", "del", "dev", daemon.interface)
    assert wait_for(lambda: not process_alive(pid) and not os.path.exists(daemon.path), 5)


def test_launch_failure_exits_nonzero_with_reason(daemon: Daemon, tmp_path: Path):
    second = Daemon(daemon.ns, daemon.interface, tmp_path / "second.log")
    result = second.launch()
    assert result.returncode != 0
    assert "wgfastd:" in result.stderr and daemon.interface in result.stderr
    assert process_alive(daemon.pid()), "the first daemon must survive"
    bad = Daemon(daemon.ns, "x" * 16, tmp_path / "bad.log").launch()
    assert bad.returncode != 0 and "interface name" in bad.stderr


# Makes the daemon (the launcher's child: WG_PROCESS_FOREGROUND=1) fail to import its compiled
# extension, as an unbuilt source tree would: a failure before it can report anything itself.
BROKEN_IMPORT = """
import builtins, os
if os.environ.get("WG_PROCESS_FOREGROUND") == "1":
    _real = builtins.__import__
    def _fake(name, globals=None, locals=None, fromlist=(), level=0):
        if name == "wgfast._native" or (name == "wgfast" and fromlist and "_native" in fromlist):
            raise ImportError("simulated: no module named wgfast._native (not built)")
        return _real(name, globals, locals, fromlist, level)
    builtins.__import__ = _fake
"""


def test_import_failure_reaches_the_launcher(netns_pool: NetnsPool, tmp_path: Path):
    needs_tun()
    ns = netns_pool.namespace()
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BROKEN_IMPORT)
    interface = unique_name("wgf")
    env = wgfastd_env()
    env["PYTHONPATH"] = os.pathsep.join((str(site), env["PYTHONPATH"]))
    result = ns.run(sys.executable, "-m", "wgfast.daemon", interface, check=False, env=env)
    assert result.returncode == 1
    assert "wgfastd: daemon did not report readiness" in result.stderr
    assert "ImportError: simulated: no module named wgfast._native" in result.stderr
    assert not ns.link_exists(interface) and not os.path.exists(socket_path(interface))


def test_unbindable_port_at_link_up_is_loud(daemon: Daemon):
    """wg-quick sets the port while the link is down; the bind happens at up. When it fails the
    daemon logs it at error level, and get=1 claims no port and says why (wgfast_bind_error);
    a later set with a free port brings the device up."""
    holder = daemon.ns.popen(sys.executable, "-c", HOLD_PORT, "51911", stdout=subprocess.PIPE,
                             text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "bound"
        daemon.wg("set", daemon.interface, "listen-port", "51911")
        daemon.ns.run("ip", "link", "set", "up", "dev", daemon.interface)
        assert wait_for(lambda: "Address already in use" in daemon.log(), 5), daemon.log()
        assert "ERROR" in next(line for line in daemon.log().splitlines()
                               if "cannot bring the device up: UDP port 51911" in line)
        state = UAPIClient(daemon.path).get_text().splitlines()
        assert not any(line.startswith("listen_port=") for line in state)
        assert f"wgfast_bind_error={errno.EADDRINUSE}" in state
        assert daemon.wg("show", daemon.interface, "listen-port").stdout.strip() == "0"
        daemon.wg("set", daemon.interface, "listen-port", "51912")
        assert daemon.wg("show", daemon.interface, "listen-port").stdout.strip() == "51912"
        assert "wgfast_bind_error" not in UAPIClient(daemon.path).get_text()
    finally:
        holder.kill()
        holder.wait()


HOLD_PORT = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("bound", flush=True)
time.sleep(60)
"""


def test_under_systemd_the_log_reaches_the_journal(netns_pool: NetnsPool, tmp_path: Path):
    """systemd sets JOURNAL_STREAM when stderr is the journal: without LOG_LEVEL the daemon then
    keeps that stderr for its error-level log, rather than /dev/null (where it went before)."""
    needs_tun()
    ns = netns_pool.namespace()
    interface = unique_name("wgf")
    env = wgfastd_env()
    env.pop("LOG_LEVEL", None)
    env.pop("WGFAST_LOG_FILE", None)
    env["JOURNAL_STREAM"] = "0:0"
    journal = tmp_path / "journal"
    holder = ns.popen(sys.executable, "-c", HOLD_PORT, "51913", stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "bound"
        with journal.open("w") as out:
            launched = subprocess.run(ns.command(sys.executable, "-m", "wgfast.daemon", interface),
                                      env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                      timeout=30, check=False)
        assert launched.returncode == 0, journal.read_text()
        ns.run("wg", "set", interface, "listen-port", "51913")
        ns.run("ip", "link", "set", "up", "dev", interface)
        assert wait_for(lambda: "cannot bring the device up: UDP port 51913"
                        in journal.read_text(), 5), journal.read_text()
    finally:
        holder.kill()
        holder.wait()
        ns.run("ip", "link", "delete", "dev", interface, check=False)
        wait_for(lambda: not os.path.exists(socket_path(interface)), 5)


def test_help_lists_every_knob():
    result = subprocess.run([sys.executable, "-m", "wgfast.daemon", "--help"],
                            capture_output=True, text=True, env=wgfastd_env(), timeout=30)
    assert result.returncode == 0
    for knob in ("WG_PROCESS_FOREGROUND", "LOG_LEVEL", "WGFAST_LOG_FILE", "WG_TUN_FD",
                 "WG_UAPI_FD", "WGFAST_OFFLOAD", "WGFAST_DATAPLANE_THREADS",
                 "WGFAST_TEST_TIME_SCALE", "JOURNAL_STREAM"):
        assert knob in result.stdout, knob


def test_foreground_flag_and_env(netns_pool: NetnsPool, tmp_path: Path):
    needs_tun()
    ns = netns_pool.namespace()
    interface = unique_name("wgf")
    env = wgfastd_env()
    env["LOG_LEVEL"] = "verbose"
    proc = ns.popen(
        sys.executable, "-m", "wgfast.daemon", "--foreground", interface,
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert wait_for(lambda: os.path.exists(socket_path(interface)), 10)
        assert proc.poll() is None, "foreground wgfastd must not return"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert "shutting down: received SIGINT" in err
        assert not os.path.exists(socket_path(interface))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_wg_quick_up_and_down(daemon: Daemon, tmp_path: Path):
    needs_cmd("wg-quick")
    if os.path.exists("/sys/module/wireguard"):
        pytest.skip("kernel WireGuard present: wg-quick would not use a userspace daemon")
    # A fresh name: wg-quick starts the daemon itself.
    interface = unique_name("wgq")
    wrapper = tmp_path / "wgfastd"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m wgfast.daemon "$@"\n')
    wrapper.chmod(0o755)
    keys = _keys(daemon)
    conf = tmp_path / f"{interface}.conf"
    conf.write_text(
        f"[Interface]\nPrivateKey = {keys['priv']}\nAddress = 10.77.0.1/24\n\n"
        f"[Peer]\nPublicKey = {keys['pub_a']}\nAllowedIPs = 10.78.0.0/16\n"
    )
    env = wgfastd_env()
    env["WG_QUICK_USERSPACE_IMPLEMENTATION"] = str(wrapper)
    up = daemon.ns.run("wg-quick", "up", str(conf), env=env, check=False)
    assert up.returncode == 0, up.stderr
    try:
        assert daemon.wg("show", interface, "peers").stdout.split() == [keys["pub_a"]]
        routes = daemon.ns.run("ip", "route", "show", "dev", interface).stdout
        assert "10.78.0.0/16" in routes
        # The link wg-quick brought up is a TUN device (on a kernel with WireGuard, wg-quick
        # would have made a kernel one and never reached userspace), held open by wgfastd.
        flags = daemon.ns.run("cat", f"/sys/class/net/{interface}/tun_flags", check=False)
        assert flags.returncode == 0, f"{interface} is not a TUN device"
        holders = _tun_holders(interface)
        names = {cmd.split(b"\0")[0] for cmd in holders.values()}
        assert names == {b"wgfastd"}, holders
    finally:
        down = daemon.ns.run("wg-quick", "down", str(conf), env=env, check=False)
    assert down.returncode == 0, down.stderr
    assert wait_for(lambda: not os.path.exists(socket_path(interface)), 5)
    # Nothing left behind: no link, no route, no process holding its TUN.
    assert daemon.ns.run("ip", "link", "show", interface, check=False).returncode != 0
    assert interface not in daemon.ns.run("ip", "route", "show", "table", "all").stdout
    assert wait_for(lambda: not _tun_holders(interface), 5)


def _tun_holders(interface: str) -> dict[int, bytes]:
    """Processes with a TUN descriptor attached to `interface` (from /proc/PID/fdinfo's iff
    line), mapped to their command lines."""
    holders: dict[int, bytes] = {}
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            for fd in (pid_dir / "fd").iterdir():
                if os.readlink(fd) != "/dev/net/tun":
                    continue
                info = (pid_dir / "fdinfo" / fd.name).read_text()
                if f"iff:\t{interface}\n" in info:
                    holders[int(pid_dir.name)] = (pid_dir / "cmdline").read_bytes()
        except OSError:  # the process ended, or is not ours to look at
            continue
    return holders


def test_uapi_client_against_wireguard_go(netns_pool: NetnsPool):
    """The same client and errno expectations hold against wireguard-go itself."""
    needs_tun()
    needs_cmd("wireguard-go")
    ns = netns_pool.namespace()
    interface = unique_name("wgg")
    env = dict(os.environ)
    env.pop("WG_PROCESS_FOREGROUND", None)  # any other value than 1 makes it re-fork forever
    ns.run("wireguard-go", interface, env=env)
    path = socket_path(interface)
    try:
        client = UAPIClient(path)
        client.set("private_key=" + "11" * 32 + "\npublic_key=" + "22" * 32 + "\n")
        status = client.get()
        assert [p.public_key for p in status.peers] == [bytes([0x22]) * 32]
        for body, expected in [("bogus=1\n", ERRNO_INVALID), ("listen_port\n", ERRNO_PROTOCOL)]:
            with pytest.raises(UAPIError) as err:
                client.set(body)
            assert err.value.errno == expected
    finally:
        ns.run("ip", "link", "del", "dev", interface, check=False)
        wait_for(lambda: not os.path.exists(path), 5)


# Runs wgfastd in the foreground with its running state made impossible to change: every set
# fails, and so does the roll-back after it (fault injection, in this process only).
UNCHANGEABLE = """
import sys
from wgfast.daemon import interface, main
def broken(self, *args, **kwargs):
    raise RuntimeError("injected: the running state cannot be changed")
interface.Interface._sync = broken
sys.exit(main.main(["-f", sys.argv[1]]))
"""


def test_inconsistent_state_ends_the_daemon_with_an_error(netns_pool: NetnsPool):
    """No half-dead daemon: a set that fails and cannot be rolled back ends wgfastd with a
    non-zero status, its reason logged, its link and socket removed."""
    needs_tun()
    needs_cmd("wg")
    ns = netns_pool.namespace()
    interface = unique_name("wgx")
    env = wgfastd_env()
    env["LOG_LEVEL"] = "error"
    proc = ns.popen(sys.executable, "-c", UNCHANGEABLE, interface, env=env,
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: os.path.exists(socket_path(interface)), 10), "never came up"
        refused = ns.run("wg", "set", interface, "listen-port", "51999", check=False)
        assert refused.returncode != 0
        assert proc.wait(timeout=5) != 0
        _, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "could not be made consistent" in err and "Traceback" in err, err
    assert not os.path.exists(socket_path(interface))
    assert not ns.link_exists(interface)
