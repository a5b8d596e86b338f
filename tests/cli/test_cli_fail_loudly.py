"""`wgfast up`/`down` fail loudly and leave nothing behind, in the ways a new user met:

- a ListenPort that cannot be bound fails `up` (exit 1, the reason, everything rolled back),
  whether it was taken before `up` (refused before anything starts; with either daemon) or
  taken while `up` ran (the daemon reports the failed bind at link up; wgfastd only, as
  wireguard-go reports its configured port even when it could not bind it);
- LOG_LEVEL does not hang `up`, and the daemon's log then goes to up's own output;
- `down` from another network namespace refuses, naming the one the interface belongs to; the
  state of an interface whose daemon and namespace are gone is cleaned by the next `up`;
- `down` prints what it undoes, in wg-quick's `[#]` style;
- an unresolvable Endpoint fails once, before any daemon starts;
- the daemon is `wgfastd` for pidof/pgrep/ps;
- `--help` lists the environment knobs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import needs_cmd, needs_tun
from support.cli import snapshot, wgfast, write_config
from support.daemons import WGFASTD, daemon_command, daemon_env
from support.netns import Netns, unique_name, wait_for
from wgfast import keys
from wgfast.cli import main as cli_main
from wgfast.cli import quick
from wgfast.process import process_alive, socket_owner_pid
from wgfast.uapi import socket_path

BUSY_PORT = 51907

# Binds UDP argv[1] on every address, writes its pid to argv[2] once bound, then waits.
PORT_HOLDER = """
import os, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
time.sleep(60)
"""


def config(listen_port: int = 0, interface_extra: str = "", endpoint: str = "127.0.0.1:51820"
           ) -> str:
    return f"""[Interface]
PrivateKey = {keys.to_base64(keys.generate_private_key())}
ListenPort = {listen_port}
Address = 10.71.0.1/24
{interface_extra}
[Peer]
PublicKey = {keys.to_base64(keys.KeyPair.generate().public)}
AllowedIPs = 10.71.0.0/24
Endpoint = {endpoint}
"""


@pytest.fixture
def ns(netns_pool, daemon) -> Netns:
    needs_tun()
    needs_cmd(daemon_command(daemon)[0])
    namespace = netns_pool.namespace()
    namespace.daemon = daemon  # type: ignore[attr-defined]
    return namespace


def left_behind(name: str) -> list[str]:
    found = []
    if os.path.exists(socket_path(name)):
        found.append(f"UAPI socket {socket_path(name)}")
    if os.path.exists(quick.state_path(name)):
        found.append(f"state {quick.state_path(name)}")
    return found


def test_listen_port_taken_before_up(ns: Netns, tmp_path: Path):
    first, second = unique_name("wgb"), unique_name("wgb")
    one = write_config(tmp_path, first, config(BUSY_PORT))
    assert wgfast(ns, "up", str(one)).returncode == 0
    try:
        before = snapshot(ns)
        two = write_config(tmp_path, second, config(BUSY_PORT))
        result = wgfast(ns, "up", str(two))
        assert result.returncode == 1
        assert f"ListenPort {BUSY_PORT} is already in use" in result.stderr
        assert "[#] " not in result.stderr  # refused before anything was started
        assert snapshot(ns) == before
        assert left_behind(second) == []
    finally:
        assert wgfast(ns, "down", first).returncode == 0


@pytest.mark.parametrize("daemon", [WGFASTD])
def test_listen_port_taken_while_up_runs(ns: Netns, tmp_path: Path, daemon: str):
    """PreUp runs after the port check and before the daemon binds at link up: a port taken
    there makes the daemon fail its bind, which `up` must notice and roll back."""
    name = unique_name("wgb")
    pid_file = tmp_path / "holder.pid"
    holder = tmp_path / "holder.py"
    holder.write_text(PORT_HOLDER)
    take_port = (f"PreUp = setsid {sys.executable} {holder} {BUSY_PORT} {pid_file} "
                 f"</dev/null >/dev/null 2>&1 & while [ ! -s {pid_file} ]; do sleep 0.05; done")
    path = write_config(tmp_path, name, config(BUSY_PORT, take_port))
    before = snapshot(ns)
    try:
        result = wgfast(ns, "up", str(path))
        assert result.returncode == 1, result.stderr
        assert (f"the daemon cannot listen on UDP port {BUSY_PORT}: "
                f"{os.strerror(98)}") in result.stderr
        assert "[#] rolling back" in result.stderr
        assert snapshot(ns) == before
        assert left_behind(name) == []
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_log_level_does_not_hang_up(ns: Netns, tmp_path: Path):
    """With LOG_LEVEL the daemon keeps up's output for its log: up's output is a file here, as
    a pipe read to its end would stay open as long as the daemon runs."""
    name = unique_name("wgl")
    path = write_config(tmp_path, name, config())
    env = daemon_env(ns.daemon)  # type: ignore[attr-defined]
    env["LOG_LEVEL"] = "error"
    output = tmp_path / "up.out"
    started = time.monotonic()
    with output.open("w") as out:
        up = subprocess.run(ns.command(sys.executable, "-m", "wgfast.cli", "up", str(path)),
                            env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                            timeout=30, check=False)
    assert up.returncode == 0, output.read_text()
    assert time.monotonic() - started < 10, "up waited for something"
    assert quick.Journal.load(quick.state_path(name)).daemon_pid() is not None
    down = wgfast(ns, "down", name)
    assert down.returncode == 0, down.stderr
    assert left_behind(name) == []


@pytest.mark.parametrize("daemon", [WGFASTD])
def test_down_from_another_namespace_refuses(netns_pool, tmp_path: Path, daemon: str):
    needs_tun()
    home, elsewhere = netns_pool.namespace(), netns_pool.namespace()
    home.daemon = elsewhere.daemon = daemon  # type: ignore[attr-defined]
    name = unique_name("wgn")
    path = write_config(tmp_path, name, config())
    assert wgfast(home, "up", str(path)).returncode == 0
    try:
        result = wgfast(elsewhere, "down", name)
        assert result.returncode == 1
        assert f"{name} was brought up in network namespace {home.name}" in result.stderr
        assert home.link_exists(name) and os.path.exists(socket_path(name))
    finally:
        result = wgfast(home, "down", name)
    assert result.returncode == 0, result.stderr
    assert left_behind(name) == []


@pytest.mark.parametrize("daemon", [WGFASTD])
def test_state_of_a_deleted_namespace_is_cleaned_by_the_next_up(netns_pool, tmp_path: Path,
                                                               daemon: str):
    needs_tun()
    gone, next_home = netns_pool.namespace(), netns_pool.namespace()
    gone.daemon = next_home.daemon = daemon  # type: ignore[attr-defined]
    name = unique_name("wgs")
    path = write_config(tmp_path, name, config())
    assert wgfast(gone, "up", str(path)).returncode == 0
    pid = quick.Journal.load(quick.state_path(name)).daemon_pid()
    assert pid is not None
    # The namespace's processes are killed without a chance to clean up (as a crash, or
    # `ip netns pids | xargs kill -9`), then the namespace goes, and its link with it.
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: not process_alive(pid), 10)
    subprocess.run(["ip", "netns", "del", gone.name], check=True)
    assert os.path.exists(quick.state_path(name))  # nobody ran down
    result = wgfast(next_home, "up", str(path))
    assert result.returncode == 0, result.stderr
    assert "note: removed the state of" in result.stderr
    assert next_home.link_exists(name)
    result = wgfast(next_home, "down", name)
    assert result.returncode == 0, result.stderr
    assert left_behind(name) == []


def test_down_prints_its_steps(ns: Netns, tmp_path: Path):
    name = unique_name("wgd")
    path = write_config(tmp_path, name, config())
    up = wgfast(ns, "up", str(path))
    assert up.returncode == 0, up.stderr
    down = wgfast(ns, "down", name)
    assert down.returncode == 0, down.stderr
    steps = [line for line in down.stderr.splitlines() if line.startswith("[#] ")]
    assert f"[#] rm -f {socket_path(name)}" in steps, down.stderr
    assert any(line.startswith("[#] ip address del 10.71.0.1/24") for line in steps), steps


def test_unresolvable_endpoint_fails_once_before_any_daemon(ns: Netns, tmp_path: Path):
    name = unique_name("wgr")
    path = write_config(tmp_path, name, config(endpoint="no-such-host.invalid:51820"))
    before = snapshot(ns)
    result = wgfast(ns, "up", str(path))
    assert result.returncode == 1
    assert result.stderr.count("no-such-host.invalid") == 1, result.stderr
    assert "[#] " not in result.stderr  # nothing was started
    assert snapshot(ns) == before
    assert left_behind(name) == []


@pytest.mark.parametrize("daemon", [WGFASTD])
def test_the_daemon_is_named_wgfastd(ns: Netns, tmp_path: Path, daemon: str):
    needs_cmd("pidof")
    needs_cmd("pgrep")
    name = unique_name("wgp")
    path = write_config(tmp_path, name, config())
    assert wgfast(ns, "up", str(path)).returncode == 0
    try:
        pid = socket_owner_pid(socket_path(name))
        assert pid is not None
        pidof = subprocess.run(["pidof", "wgfastd"], capture_output=True, text=True)
        assert str(pid) in pidof.stdout.split()
        pgrep = subprocess.run(["pgrep", "-f", f"^wgfastd {name}"], capture_output=True,
                               text=True)
        assert pgrep.stdout.split() == [str(pid)]
        ps = subprocess.run(["ps", "-o", "comm=,args=", "-p", str(pid)], capture_output=True,
                            text=True)
        assert ps.stdout.split() == ["wgfastd", "wgfastd", name]
    finally:
        assert wgfast(ns, "down", name).returncode == 0


def test_help_lists_the_environment(capsys):
    for argv in (["--help"], ["up", "--help"], ["down", "--help"]):
        with pytest.raises(SystemExit):
            cli_main.main(argv)
        text = capsys.readouterr().out
        assert "WGFAST_DAEMON=CMD" in text and "WGFAST_RUN_DIR=DIR" in text
    assert f"(default: {quick.DEFAULT_DAEMON})" in cli_main.QUICK_ENVIRONMENT
    assert f"(default: {quick.RUN_DIRECTORY})" in cli_main.QUICK_ENVIRONMENT
