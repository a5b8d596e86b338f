"""Secrets at wgfastd's edges: the UAPI socket (which hands out private keys on get=1, as
wireguard-go does, for `wg showconf`) refuses other users, and no key reaches the log.

- Another user: a client run as `nobody` (setpriv, or a forked child that drops to nobody)
  cannot connect to /var/run/wireguard/NAME.sock, while root can; the socket file is 0600.
- Logs: wgfastd runs with LOG_LEVEL=verbose; after a handshake, pings and a TCP transfer both
  ways, no private key or preshared key of either side appears in its log, as base64 or as hex
  (either case).
"""

from __future__ import annotations

import base64
import os
import pwd
import socket
import stat
import sys
from pathlib import Path

from support import needs_root
from support.netns import NetnsPool
from support.tunnel import first_ping, make_pair, ping, tcp_transfer
from wgfast.uapi import socket_path

# Connects to argv[1] and sends get=1; exit 0 if a reply came, 13 (EACCES) if refused.
CLIENT = r"""
import errno, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print(f"refused: {exc}")
    sys.exit(exc.errno or 1)
s.sendall(b"get=1\n\n")
print(s.recv(4096).decode(errors="replace"))
"""


def _connect_as(uid: int, gid: int, path: str) -> tuple[int, str]:
    """Fork, drop to uid/gid (no supplementary groups), try the socket; (exit code, output)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                s.sendall(b"get=1\n\n")
                reply = s.recv(4096)
                os.write(write_end, b"connected: " + reply[:200])
                code = 0
            except OSError as exc:
                os.write(write_end, f"refused: {exc}".encode())
                code = exc.errno or 1
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        output = f.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output


def test_uapi_socket_refuses_other_users(netns_pool: NetnsPool, tmp_path: Path):
    needs_root()
    a, b = make_pair(netns_pool, ("wgfastd", "wireguard-go"), tmp_path, psk=False, outer=4)
    path = socket_path(a.interface)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o600, oct(mode)
    nobody = pwd.getpwnam("nobody")

    code, output = _connect_as(nobody.pw_uid, nobody.pw_gid, path)
    assert code == 13, output  # EACCES
    # The same through setpriv, a separate process image as `nobody` would run it.
    result = a.ns.run("setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                      "--clear-groups", sys.executable, "-c", CLIENT, path,
                      check=False)  # fmt: skip
    assert result.returncode == 13, result.stdout + result.stderr
    # The control: root gets a get reply (with the private key: the permissions are the guard).
    code, output = _connect_as(0, 0, path)
    assert code == 0 and "private_key=" in output, output


def _forms(key_b64: str) -> list[str]:
    raw = base64.b64decode(key_b64)
    return [key_b64, raw.hex(), raw.hex().upper()]


def test_no_key_material_in_a_verbose_log(netns_pool: NetnsPool, tmp_path: Path):
    a, b = make_pair(netns_pool, ("wgfastd", "wireguard-go"), tmp_path, psk=True, outer=4)
    first_ping(a, b.inner4)
    ping(b, a.inner4)
    tcp_transfer(a, b, b.inner4, tmp_path)
    tcp_transfer(b, a, a.inner4, tmp_path)
    # A second handshake (wgfastd's peer removed and set again, keys and all, over UAPI) and a
    # UAPI get, which carries the keys.
    a.wg("set", a.interface, "peer", b.public_key, "remove")
    a.wg("set", a.interface, "peer", b.public_key, "preshared-key", str(tmp_path / "psk"),
         "endpoint", f"{b.outer4}:{b.port}", "allowed-ips", f"{b.inner4}/32,{b.inner6}/128")
    first_ping(a, b.inner4)
    showconf = a.wg("showconf", a.interface)
    assert a.private_key in showconf  # get=1 does return it (to root), as wireguard-go does

    log_text = (tmp_path / f"{a.interface}.log").read_text()
    # The verbose (debug) log, and it saw the key-carrying set requests.
    assert "DEBUG:" in log_text and "configuration updated" in log_text, log_text[-2000:]
    secrets = {"wgfastd private key": a.private_key, "wireguard-go private key": b.private_key,
               "preshared key": (tmp_path / "psk").read_text().strip()}  # fmt: skip
    for name, key in secrets.items():
        for form in _forms(key):
            assert form not in log_text, f"the {name} appears in wgfastd's log ({form[:6]}...)"
    print(f"wgfastd verbose log: {len(log_text)} bytes, {log_text.count(chr(10))} lines, "
          f"no key in base64 or hex")
